//! Push mode with real SMB: the Pi's drop share is the agent's drop folder, served by
//! Debian's `smbd` ([`skolebro_tests::samba`]) and written with `smbclient` the ways Windows
//! writes. An export written in place and one written under a temporary name and renamed both
//! reach central, and each is gone from the share within five seconds of central holding it;
//! the account cannot list the share or read a file back; a writer that disconnects mid-file
//! leaves a partial file that is set aside in words and never sent; a second export written
//! while the agent still reads the first is taken after it. The status says when each
//! file arrived and what became of it: delivered, or refused and why; so does central's
//! operator API, from the agent's heartbeat.
//! The stick turns the share on for an account that is no Unix user, with a password carried
//! as Samba's hash only, which the agent writes into the username map and passdb `smbd`
//! reads; central renames the account (the old name is refused) and changes the password the
//! same way, the size cap refuses a larger file, central turns the share off, and settings
//! that cannot be applied show in `skolebro-agent status --json` and, from the heartbeat, at
//! central.
//!
//! Every wait is bounded; `smbd`, central and the agent are killed when the test ends, and on
//! failure their logs are printed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use skolebro_tests::appliance::{sample, Agent, Cadence, Platform};
use skolebro_tests::harness::{
    self, files_in, national_ids, one_at_a_time, LogsOnFailure, PATIENCE, POLL,
};
use skolebro_tests::rostergen::Generated;
use skolebro_tests::samba::{self, ShareMode, SmbServer};

/// How soon after central holds an export it must be gone from the share (issue 20).
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// Waits until central holds `students` pupils for `site`, then until the drop folder has no
/// file left; returns how long after central held them the folder still had one.
fn wait_delivered_and_gone(
    platform: &Platform,
    site: &str,
    students: usize,
    drop_dir: &Path,
) -> Duration {
    let started = Instant::now();
    while national_ids(platform.admin(), site).len() != students {
        assert!(
            started.elapsed() < PATIENCE,
            "central did not come to hold {students} pupils within {PATIENCE:?}"
        );
        std::thread::sleep(POLL);
    }
    let held = Instant::now();
    loop {
        let left = files_in(drop_dir);
        if left.is_empty() {
            return held.elapsed();
        }
        assert!(
            held.elapsed() < GONE_WITHIN,
            "{left:?} still on the share {GONE_WITHIN:?} after central held the export"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the only device's last heartbeat, as central's operator API shows it, passes
/// `done`; bounded by [`PATIENCE`].
fn wait_for_central(platform: &Platform, what: &str, done: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        let heartbeat = harness::get_json(platform.admin(), "/admin/devices")
            .map_or(Value::Null, |d| d["devices"][0]["last_heartbeat"].clone());
        if done(&heartbeat) {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "central did not show {what} within {PATIENCE:?}; its last heartbeat: {heartbeat}"
        );
        std::thread::sleep(POLL);
    }
}

/// The sample export without its last `less` pupils.
fn sample_without_last(less: usize) -> Vec<u8> {
    without_last(&sample(), less)
}

/// The export `bytes` without its last `less` pupils.
fn without_last(bytes: &[u8], less: usize) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).expect("an export in UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    format!("{}\n", lines[..lines.len() - less].join("\n")).into_bytes()
}

/// Rows of exactly `ROW` bytes (the sample's, their e-mail addresses padded), after the
/// sample's header: no multiple of 4 KiB falls between two rows, so wherever a writer's
/// transfer stops the file ends in the middle of a row.
const ROW: usize = 128;

fn padded_rows(count: usize) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8(sample()).expect("the sample is UTF-8");
    let mut lines = text.lines();
    let header = format!("{}\n", lines.next().expect("a header"));
    assert_ne!(header.len() % ROW, 0, "rows must not line up with 4 KiB");
    let rows: Vec<&str> = lines.collect();
    let mut out = Vec::with_capacity(count * ROW);
    for row in rows.iter().cycle().take(count) {
        let (before, domain) = row.rsplit_once('@').expect("an e-mail address");
        let pad = ROW - 1 - row.len();
        out.extend_from_slice(format!("{before}{}@{domain}\n", "x".repeat(pad)).as_bytes());
    }
    (header.into_bytes(), out)
}

/// A central in `dir`, an agent enrolled with its stick, and `smbd` serving the agent's drop
/// folder as a write-only share; their logs are printed if the test fails.
fn enrolled_behind_a_share(dir: &Path) -> (Platform, Agent, SmbServer, LogsOnFailure) {
    let platform = Platform::start(&dir.join("central"));
    let mut agent = Agent::for_sticks(&dir.join("agent"), Cadence::BUSY, &platform);
    platform.write_stick(&agent);
    let smb = SmbServer::start(
        &dir.join("smbd"),
        &agent.drop_dir(),
        ShareMode::WriteOnly,
        "Drop-share-pass-1",
    );
    let logs = LogsOnFailure(vec![
        (dir.join("central"), "central.log"),
        (dir.join("agent"), "agent.log"),
    ]);
    agent.start();
    agent.wait_for("enrollment", |s| s["provisioning"]["site"].is_string());
    (platform, agent, smb, logs)
}

#[test]
fn exports_written_to_the_drop_share_reach_central_and_leave_the_share_and_a_cut_one_does_not() {
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbpush-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let (platform, mut agent, smb, _logs) = enrolled_behind_a_share(d);
    let drop_dir = agent.drop_dir();
    let site = agent.site();

    // In place, as an office PC saving onto the share writes.
    let local = d.join("elevliste.csv");
    std::fs::write(&local, sample()).expect("the export");
    let written = Instant::now();
    smb.put(&local, "elevliste.csv");
    let lingered = wait_delivered_and_gone(&platform, &site, 300, &drop_dir);
    println!(
        "in place: central held 300 pupils {:.2} s after the write ended; on the share {:.2} s after",
        written.elapsed().as_secs_f64() - lingered.as_secs_f64(),
        lingered.as_secs_f64()
    );

    agent.wait_for("the file's arrival delivered, in the status", |s| {
        let arrival = &s["last_arrival"];
        arrival["file"] == "elevliste.csv"
            && arrival["delivered"] == true
            && arrival["outcome"] == "delivered to central"
            && arrival["written_unix_ms"].as_u64().is_some()
    });
    wait_for_central(&platform, "the file's arrival delivered", |h| {
        h["arrival"]["file"] == "elevliste.csv" && h["arrival"]["delivered"] == true
    });

    // Write-only: the account cannot list the share or read anything back.
    std::fs::write(&local, b"not an export").expect("a file");
    let listing = smb.client("ls");
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("NT_STATUS_ACCESS_DENIED"),
        "listing the share is refused: {}",
        String::from_utf8_lossy(&listing.stdout)
    );
    let wrong = smb.client_as("not-the-password", "ls");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stdout).contains("NT_STATUS_LOGON_FAILURE")
            || String::from_utf8_lossy(&wrong.stderr).contains("NT_STATUS_LOGON_FAILURE"),
        "a wrong password is refused"
    );

    // A temporary name renamed at the end, as a SAS's export job that writes safely does.
    std::fs::write(&local, sample_without_last(5)).expect("the second export");
    let written = Instant::now();
    smb.put_then_rename(&local, "elevliste-2.csv.tmp", "elevliste-2.csv");
    let lingered = wait_delivered_and_gone(&platform, &site, 295, &drop_dir);
    println!(
        "renamed: central held 295 pupils {:.2} s after the rename; on the share {:.2} s after",
        written.elapsed().as_secs_f64() - lingered.as_secs_f64(),
        lingered.as_secs_f64()
    );
    let held = national_ids(platform.admin(), &site);
    agent.wait_for("the second export to be delivered", |s| {
        s["outbox_depth"] == 0 && s["last_export_file"] == "elevliste-2.csv"
    });

    // A writer that drops its connection mid-file: the partial file is set aside, unsent.
    let (header, rows) = padded_rows(160_000);
    let mut export = header;
    export.extend_from_slice(&rows);
    export.extend_from_slice(&rows[..ROW / 2]);
    let mut put = smb.start_streaming_put("elevliste-3.csv", export);
    let started = Instant::now();
    let rejected = drop_dir.join("rejected");
    // Wherever it is by now: still on the share, or already set aside as cut short.
    let written = || {
        [&drop_dir, &rejected]
            .iter()
            .filter_map(|dir| std::fs::metadata(dir.join("elevliste-3.csv")).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    while written() < 8 << 20 {
        assert!(
            started.elapsed() < PATIENCE,
            "smbclient wrote no 8 MiB within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    put.disconnect();
    agent.wait_for("the partial export to be set aside", |_| {
        rejected.join("elevliste-3.csv.error.txt").is_file()
    });
    let note = std::fs::read_to_string(rejected.join("elevliste-3.csv.error.txt")).expect("note");
    assert!(note.contains("cut off"), "the note says why: {note}");
    assert!(
        rejected.join("elevliste-3.csv").is_file(),
        "kept for IT to see"
    );
    // Nothing of it was sent: central still holds the second export, the outbox is empty.
    std::thread::sleep(Duration::from_secs(1));
    agent.wait_for("an empty outbox", |s| {
        s["outbox_depth"] == 0 && s["last_export_file"] == "elevliste-2.csv"
    });
    assert_eq!(national_ids(platform.admin(), &site), held);
    assert!(files_in(&drop_dir).is_empty());
    let status = agent.status().expect("status");
    let arrival = &status["last_arrival"];
    assert_eq!(arrival["file"], "elevliste-3.csv", "{status}");
    assert_eq!(arrival["refused"], true, "{status}");
    assert!(
        arrival["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("refused: cannot be read") && o.contains("cut off")),
        "the status says why: {status}"
    );
    wait_for_central(&platform, "the cut file refused and why", |h| {
        h["arrival"]["file"] == "elevliste-3.csv"
            && h["arrival"]["refused"] == true
            && h["arrival"]["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("cut off"))
    });
}

#[test]
fn the_packaged_drop_share_is_valid_samba_configuration_at_the_end_of_any_smb_conf() {
    if !samba::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let include = harness::workspace_root()
        .join("packaging")
        .join("samba")
        .join("skolebro-drop-share.conf");
    // Appended after another share's section, as the README says: it must open [global].
    let conf = dir.path().join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n  workgroup = SCHOOL\n[print$]\n  path = /tmp\ninclude = {}\n",
            include.display()
        ),
    )
    .expect("smb.conf");
    let output = std::process::Command::new("testparm")
        .arg("-s")
        .arg(&conf)
        .output()
        .expect("running testparm (samba-common-bin)");
    let said = String::from_utf8_lossy(&output.stderr);
    let parsed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(
        !said.contains("found in service section") && !said.contains("Unknown parameter"),
        "every setting is known and in its section: {said}"
    );
    let section = |name: &str| -> String {
        let start = parsed
            .find(&format!("[{name}]"))
            .unwrap_or_else(|| panic!("no [{name}] in {parsed}"));
        let rest = &parsed[start + name.len() + 2..];
        rest[..rest.find("\n[").unwrap_or(rest.len())].to_owned()
    };
    let global = section("global");
    for line in [
        "server min protocol = SMB3",
        "server smb encrypt = required",
        "restrict anonymous = 2",
        "username map = /var/lib/skolebro/drop-share.usermap",
    ] {
        assert!(global.contains(line), "[global] lacks `{line}`: {global}");
    }
    let share = section("SKOLEBRO");
    for line in [
        "path = /srv/skolebro/drop",
        "valid users = skolebro-drop",
        "force user = skolebro-drop",
        "create mask = 0240",
        "directory mask = 0000",
        "read only = No",
        "browseable = No",
    ] {
        assert!(share.contains(line), "[SKOLEBRO] lacks `{line}`: {share}");
    }
    assert!(!share.contains("guest ok = Yes"), "{share}");
}

/// Pupils in the first export of [`a_second_export_written_while_the_first_is_read_is_taken_after_it`]:
/// enough that a test build reads it for a good part of a second, so the test sees the read
/// begin and holds it there.
const FIRST_PUPILS: usize = 3_000;

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

#[test]
fn a_second_export_written_while_the_first_is_read_is_taken_after_it() {
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbpush-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let (platform, mut agent, smb, _logs) = enrolled_behind_a_share(d);
    let drop_dir = agent.drop_dir();
    let site = agent.site();

    let generated = Generated::one_school(FIRST_PUPILS, 46_500, 7);
    let mut first = Vec::new();
    generated
        .write_elevliste(&mut first, true)
        .expect("the first export");
    let second = without_last(&first, 5);
    let mut second_ids: Vec<String> = generated
        .pupils
        .iter()
        .map(|p| p.national_id.clone())
        .collect();
    second_ids.truncate(FIRST_PUPILS - 5);

    let local = d.join("elevliste.csv");
    std::fs::write(&local, &first).expect("the first export");
    smb.put(&local, "elevliste.csv");
    let reading = d.join("agent").join("state").join("reading");
    let started = Instant::now();
    while !reading.exists() {
        assert!(
            started.elapsed() < PATIENCE,
            "the agent did not start reading the first export within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Held in the middle of the read, so the second write surely ends during it, however
    // fast the machine reads.
    let pid = agent.pid().expect("the agent runs");
    signal(pid, "-STOP");
    let read_then = std::fs::read_to_string(&reading).unwrap_or_default();
    std::fs::write(&local, &second).expect("the second export");
    smb.put_then_rename(&local, "elevliste-2.csv.tmp", "elevliste-2.csv");
    signal(pid, "-CONT");
    assert!(
        read_then.ends_with("/elevliste.csv\n"),
        "the agent was held while reading the first export, or this test shows nothing; it \
         was reading: {read_then:?}"
    );

    wait_delivered_and_gone(&platform, &site, FIRST_PUPILS - 5, &drop_dir);
    assert_eq!(
        national_ids(platform.admin(), &site),
        second_ids.into_iter().collect(),
        "central holds exactly the second export"
    );
    agent.wait_for("both exports read and delivered", |s| {
        s["outbox_depth"] == 0
            && s["last_export_file"] == "elevliste-2.csv"
            && s["last_arrival"]["file"] == "elevliste-2.csv"
            && s["last_arrival"]["delivered"] == true
    });
    assert!(
        files_in(&drop_dir.join("rejected")).is_empty(),
        "neither export was set aside"
    );
}

/// Sends `settings` to the agent `device` as central's `drop_share` command.
fn send_drop_share(platform: &Platform, device: &str, settings: serde_json::Value) {
    let (status, body) = harness::http_post_json(
        platform.admin(),
        &format!("/admin/devices/{device}/commands"),
        &serde_json::json!({"type": "drop_share", "settings": settings}),
    )
    .expect("POST the drop_share command");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
}

/// Tries `put` as the share's account until `smbd` lets it in or refuses it, as `want_in`
/// says; bounded by [`PATIENCE`].
fn wait_sign_in(smb: &SmbServer, local: &Path, remote: &str, want_in: bool) {
    let started = Instant::now();
    loop {
        let output = smb.client(&format!("put \"{}\" \"{remote}\"", local.display()));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let refused = said.contains("NT_STATUS_LOGON_FAILURE");
        if want_in && output.status.success() && !said.contains("NT_STATUS_") {
            return;
        }
        if !want_in && refused {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the share did not {} within {PATIENCE:?}: {said}",
            if want_in {
                "let the account in"
            } else {
                "refuse the account"
            }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_stick_turns_the_share_on_central_renames_it_changes_its_password_caps_files_and_turns_it_off(
) {
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbsettings-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let platform = Platform::start(&d.join("central"));
    let agent_dir = d.join("agent");
    // The agent maps every sign-in name onto root here (the package's skolebro-drop).
    let mut agent = Agent::new(
        &agent_dir,
        Cadence::BUSY,
        &format!(
            "stick_key = \"{}\"\ndrop_share_passdb = \"drop-share.smbpasswd\"\n\
             drop_share_usermap = \"drop-share.usermap\"\ndrop_share_unix_user = \"root\"",
            platform.stick_key().display()
        ),
    );
    // The stick turns the share on for an account that is no Unix user, with the password
    // as Samba's hash only.
    let first_password = d.join("share.password");
    std::fs::write(&first_password, "Drop-share-pass-1\n").expect("the password file");
    platform.write_stick_with(
        &agent,
        &[
            "--share-password-file",
            first_password.to_str().expect("temp paths are UTF-8"),
            "--share-account",
            "sas-eksport",
            "--share-size-mib",
            "1",
        ],
    );
    let passdb = agent_dir.join("drop-share.smbpasswd");
    let usermap = agent_dir.join("drop-share.usermap");
    for file in [&passdb, &usermap] {
        std::fs::write(file, "").expect("empty: the share is off");
    }
    let password = "Drop-share-pass-2";
    let drop_dir = agent.drop_dir();
    let mut smb = SmbServer::start_with_passdb(
        &d.join("smbd"),
        &drop_dir,
        ShareMode::WriteOnly,
        &passdb,
        &usermap,
        "sas-eksport",
        password,
    );
    let _logs = LogsOnFailure(vec![
        (d.join("central"), "central.log"),
        (agent_dir.clone(), "agent.log"),
    ]);
    agent.start();
    agent.wait_for("enrollment", |s| s["provisioning"]["site"].is_string());
    let site = agent.site();
    let device = agent.status().expect("status")["provisioning"]["device"]
        .as_str()
        .expect("a device id")
        .to_owned();
    let local = d.join("elevliste.csv");
    std::fs::write(&local, sample()).expect("the export");
    let stick_passdb = std::fs::read_to_string(&passdb).expect("the passdb");
    assert!(
        stick_passdb.starts_with("root:0:")
            && stick_passdb.contains(
                &skolebro_protocol::drop_share::nt_hash("Drop-share-pass-1").to_ascii_uppercase()
            ),
        "the stick's settings are applied at enrollment: {stick_passdb}"
    );
    let map = std::fs::read_to_string(&usermap).expect("the username map");
    assert!(map.contains("!root = sas-eksport\n"), "{map}");
    let shown = agent.status_command();
    assert_eq!(shown["drop_share"]["account"], "sas-eksport", "{shown}");
    assert_eq!(shown["drop_share"]["last_error"], Value::Null, "{shown}");
    // The stick's password lets its account in; the helpers' own, not yet.
    let in_with_stick_password = smb.client_as(
        "Drop-share-pass-1",
        &format!("put \"{}\" \"stick.csv\"", local.display()),
    );
    assert!(
        in_with_stick_password.status.success(),
        "{}",
        String::from_utf8_lossy(&in_with_stick_password.stdout)
    );
    wait_delivered_and_gone(&platform, &site, 300, &drop_dir);
    wait_sign_in(&smb, &local, "refused.csv", false);

    // A new name and password from central, the password as its hash: taken at the next
    // sign-in, and the old name no longer signs in, nor the Unix user's own name.
    let hash = skolebro_protocol::drop_share::nt_hash(password);
    send_drop_share(
        &platform,
        &device,
        serde_json::json!({
            "enabled": true, "account": "sas-eksport2", "size_cap_mib": 1,
            "password_nt_hash": hash,
        }),
    );
    smb.sign_in_as("sas-eksport2");
    wait_sign_in(&smb, &local, "elevliste.csv", true);
    wait_delivered_and_gone(&platform, &site, 300, &drop_dir);
    for old in ["sas-eksport", "root"] {
        smb.sign_in_as(old);
        wait_sign_in(&smb, &local, "old-name.csv", false);
    }
    smb.sign_in_as("sas-eksport2");
    let written = std::fs::read_to_string(&passdb).expect("the passdb");
    assert!(written.starts_with("root:0:"), "{written}");
    assert!(!written.contains(password), "only the hash: {written}");
    use std::os::unix::fs::PermissionsExt as _;
    for file in [&passdb, &usermap] {
        let mode = std::fs::metadata(file)
            .expect("the share's files")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }

    // The size cap: a file over 1 MiB is removed unread and refused in the status.
    let big = d.join("big.csv");
    std::fs::write(&big, vec![b'x'; 2 << 20]).expect("a big file");
    smb.put(&big, "stor.csv");
    agent.wait_for("the file over the cap refused", |s| {
        s["last_arrival"]["file"] == "stor.csv"
            && s["last_arrival"]["refused"] == true
            && s["last_arrival"]["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("over the drop share's cap of 1 MiB"))
    });
    assert!(files_in(&drop_dir).is_empty(), "removed from RAM, unread");

    // Off, from central: the account no longer signs in.
    send_drop_share(
        &platform,
        &device,
        serde_json::json!({"enabled": false, "account": "sas-eksport2", "size_cap_mib": 1}),
    );
    wait_sign_in(&smb, &local, "after.csv", false);
    for file in [&passdb, &usermap] {
        assert_eq!(
            std::fs::read_to_string(file).expect("the share's files"),
            "",
            "no account while off: {}",
            file.display()
        );
    }

    // On again without a password: the Pi has none left, so the settings cannot be applied,
    // and `status` says why, not only the log; the share stays off.
    send_drop_share(
        &platform,
        &device,
        serde_json::json!({"enabled": true, "account": "sas-eksport2", "size_cap_mib": 1}),
    );
    let started = Instant::now();
    let shown = loop {
        let shown = agent.status_command();
        if shown["drop_share"]["last_error"].is_string() {
            break shown;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "status --json shows no drop share error within {PATIENCE:?}: {shown}"
        );
        std::thread::sleep(POLL);
    };
    let share = &shown["drop_share"];
    assert!(
        share["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no password on this Pi")),
        "{shown}"
    );
    assert!(share["last_error_unix_ms"].is_u64(), "{shown}");
    assert_eq!(
        share["enabled"], false,
        "the settings in force stay: {shown}"
    );
    assert_eq!(std::fs::read_to_string(&passdb).expect("the passdb"), "");
    wait_sign_in(&smb, &local, "still-off.csv", false);
    wait_for_central(&platform, "the settings that were not applied", |h| {
        let share = &h["drop_share"];
        share["enabled"] == false
            && share["last_error_unix_ms"].is_u64()
            && share["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("no password on this Pi"))
    });

    for log in [
        agent_dir.join("agent.log"),
        d.join("central").join("central.log"),
        agent_dir.join("state").join("drop-share.json"),
    ] {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.to_ascii_lowercase().contains(&hash),
            "{} shows the hash",
            log.display()
        );
    }
}
