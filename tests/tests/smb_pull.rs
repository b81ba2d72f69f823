//! Pull mode with real SMB: the SAS writes its export to a share on the school's file server
//! (Debian's `smbd`, [`skolebro_tests::samba`], in read-write mode), the ways Windows writes
//! (`smbclient` in place, and under a temporary name then renamed), and the agent
//! (`[source] kind = "smb-share"`) reads it from there: central holds each export and the
//! share's folder is empty afterwards. A wrong password, a share that goes away in the
//! middle of a copy and a 10 GB file are refused in words, with nothing sent; once the
//! password is right and the server is back, the next poll delivers.
//!
//! Every wait is bounded; `smbd`, central and the agent are killed when the test ends, and on
//! failure their logs are printed.
//!
//! The share's settings come from `agent.toml` (`[source] kind = "smb-share"`), or from the
//! config stick (`skolebro-provision stick --pull-*`), which the agent stores 0600 in its
//! state folder, the password as its NT hash only; a stick that says `--pull-after
//! move:<folder>` has each delivered export moved into that folder of the share, and the stick
//! may name the server by its IPv6 address (the stick's test does, where `::1` exists).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skolebro_tests::appliance::{sample, Agent, Cadence, Platform};
use skolebro_tests::harness::{
    files_in, national_ids, one_at_a_time, LogsOnFailure, PATIENCE, POLL,
};
use skolebro_tests::samba::{self, pulling_agent, ShareMode, SmbServer};

const PASSWORD: &str = "Export-share-pass-1";

/// Where the file server listens unless a test says otherwise.
const IPV4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Central, and the school's file server (in read-write mode, [`PASSWORD`] for its
/// account, listening on `ip`) sharing `<dir>/share`, whose export folder `eksport` is
/// returned with them.
fn central_and_share(dir: &Path, ip: IpAddr) -> (Platform, SmbServer, PathBuf) {
    let platform = Platform::start(&dir.join("central"));
    let backing = dir.join("share");
    let folder = backing.join("eksport");
    std::fs::create_dir_all(&folder).expect("the export folder");
    let smb = SmbServer::start_at(
        ip,
        &dir.join("smbd"),
        &backing,
        ShareMode::ReadWrite,
        PASSWORD,
    );
    (platform, smb, folder)
}

/// Waits until central holds `count` pupils for `site` and the share folder is empty;
/// returns how long after `written` central held them.
fn wait_held_and_gone(
    platform: &Platform,
    site: &str,
    count: usize,
    folder: &Path,
    written: Instant,
) -> Duration {
    while national_ids(platform.admin(), site).len() != count {
        assert!(
            written.elapsed() < PATIENCE,
            "central did not come to hold {count} pupils within {PATIENCE:?}"
        );
        std::thread::sleep(POLL);
    }
    let held = written.elapsed();
    while !files_in(folder).is_empty() {
        assert!(
            written.elapsed() < PATIENCE,
            "{:?} still on the share {PATIENCE:?} after the write",
            files_in(folder)
        );
        std::thread::sleep(POLL);
    }
    held
}

fn source_problem(agent: &Agent) -> String {
    agent.status().expect("status")["source_problem"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn exports_written_to_the_school_share_are_pulled_to_central_and_leave_the_share() {
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbpull-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let (platform, smb, folder) = central_and_share(d, IPV4);
    let mut agent = pulling_agent(&d.join("agent"), &platform, &smb, PASSWORD);
    let _logs = LogsOnFailure(vec![
        (d.join("central"), "central.log"),
        (d.join("agent"), "agent.log"),
    ]);
    agent.start();
    agent.wait_for("enrollment", |s| s["provisioning"]["site"].is_string());
    let site = agent.site();

    // In place, as an export job writing straight onto the share does.
    let local = d.join("elevliste.csv");
    std::fs::write(&local, sample()).expect("the export");
    smb.put(&local, "eksport/elevliste.csv");
    let took = wait_held_and_gone(&platform, &site, 300, &folder, Instant::now());
    println!("in place: central held 300 pupils {took:.2?} after the write ended");

    // A name smbclient cannot be given (its commands split at `;`) is not read: one warning
    // in the log and a status line while it is there, its digits masked in both.
    let odd = folder.join("elevliste;01811200000.csv");
    std::fs::write(&odd, sample()).expect("an export with a `;` in its name");
    let shown = "elevliste;018112*****.csv";
    agent.wait_for("the unsupported name in the status", |s| {
        s["source_problem"]
            .as_str()
            .is_some_and(|p| p.contains(shown))
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = std::fs::read_to_string(agent.dir().join("agent.log")).expect("agent.log");
    assert_eq!(
        log.matches("smbclient cannot be given").count(),
        1,
        "one warning for the name, not one per poll:\n{log}"
    );
    assert!(log.contains(shown) && !log.contains("01811200000"), "{log}");
    assert!(!source_problem(&agent).contains("01811200000"));
    std::fs::remove_file(&odd).expect("school IT renames it");
    agent.wait_for("no line for it once it is gone", |s| {
        !s["source_problem"]
            .as_str()
            .is_some_and(|p| p.contains(shown))
    });

    // Under a temporary name, renamed at the end.
    let text = String::from_utf8(sample()).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&local, format!("{}\n", lines[..lines.len() - 5].join("\n")))
        .expect("the second export");
    smb.put_then_rename(
        &local,
        "eksport/elevliste-2.csv.tmp",
        "eksport/elevliste-2.csv",
    );
    let took = wait_held_and_gone(&platform, &site, 295, &folder, Instant::now());
    println!("renamed: central held 295 pupils {took:.2?} after the rename");
    agent.wait_for("an acknowledged, empty outbox", |s| {
        s["outbox_depth"] == 0 && s["last_export_file"] == "elevliste-2.csv"
    });
    assert!(
        files_in(&agent.drop_dir()).is_empty(),
        "no copy left behind"
    );
    // The agent records the removal once smbclient's delete returned, a moment after the
    // file is gone from the share.
    let share_json = agent.dir().join("state").join("share.json");
    let started = Instant::now();
    loop {
        let state = std::fs::read_to_string(&share_json).expect("share.json");
        if state.trim() == "[]" {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "something still waits to be removed: {state}"
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_wrong_password_a_share_gone_mid_copy_and_a_10_gb_file_are_refused_in_words_with_nothing_sent()
{
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbpull-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let (platform, mut smb, folder) = central_and_share(d, IPV4);
    let wrong = "Not-the-password-9";
    let mut agent = pulling_agent(&d.join("agent"), &platform, &smb, wrong);
    let _logs = LogsOnFailure(vec![
        (d.join("central"), "central.log"),
        (d.join("agent"), "agent.log"),
    ]);
    agent.start();
    agent.wait_for("enrollment", |s| s["provisioning"]["site"].is_string());
    let site = agent.site();
    let local = d.join("elevliste.csv");
    std::fs::write(&local, sample()).expect("the export");
    smb.put(&local, "eksport/elevliste.csv");

    // A wrong password: said in words, the export stays on the share, nothing is sent.
    agent.wait_for("the refused password in the status", |s| {
        s["source_problem"]
            .as_str()
            .is_some_and(|p| p.contains("refused the user name or password"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = agent.status().expect("status");
    assert!(
        status["last_export_file"].is_null(),
        "nothing taken in: {status}"
    );
    assert_eq!(status["outbox_depth"], 0);
    assert!(national_ids(platform.admin(), &site).is_empty());
    assert_eq!(files_in(&folder), ["elevliste.csv"]);
    for (what, text) in [
        ("status.json", status.to_string()),
        (
            "agent.log",
            std::fs::read_to_string(agent.dir().join("agent.log")).unwrap_or_default(),
        ),
    ] {
        assert!(!text.contains(wrong), "the password is in {what}");
    }
    // The right password in its file: the next poll delivers, the share is emptied.
    std::fs::write(agent.dir().join("share.password"), format!("{PASSWORD}\n"))
        .expect("the right password");
    wait_held_and_gone(&platform, &site, 300, &folder, Instant::now());
    let held = national_ids(platform.admin(), &site);
    agent.wait_for("the problem to clear", |s| s["source_problem"].is_null());

    // 10 GB (sparse) on the share: refused by its size before a byte is read.
    let huge = folder.join("huge.csv");
    let made = std::process::Command::new("truncate")
        .args(["-s", "10G"])
        .arg(&huge)
        .status()
        .expect("truncate");
    assert!(made.success());
    agent.wait_for("the 10 GB file refused in the status", |s| {
        s["source_problem"]
            .as_str()
            .is_some_and(|p| p.contains("huge.csv is 10240 MiB, over the read budget"))
    });
    let parts = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("huge"))
    };
    assert!(!parts(&agent.drop_dir()), "nothing of it was copied");
    assert_eq!(
        agent.status().expect("status")["last_export_file"],
        "elevliste.csv"
    );
    std::fs::remove_file(&huge).expect("removing the huge file");
    agent.wait_for("the problem to clear", |s| s["source_problem"].is_null());

    // A copy cut short: the server goes away while the agent reads a large export (the
    // sample, then 24 MiB of blank lines, which the reader skips).
    let mut big = sample_without_last(7);
    big.resize(big.len() + (24 << 20), b'\n');
    std::fs::write(&local, &big).expect("the big export");
    smb.put(&local, "eksport/elevliste-3.csv");
    let part = agent.drop_dir().join(".elevliste-3.csv.smb-part");
    let started = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 256 << 10 {
        assert!(
            started.elapsed() < PATIENCE,
            "the agent did not start copying within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    smb.stop();
    agent.wait_for("the cut copy in the status", |s| {
        s["source_problem"].as_str().is_some_and(|p| {
            p.contains("cut short") || p.contains("broke off") || p.contains("cannot be reached")
        })
    });
    println!("cut copy: {}", source_problem(&agent));
    let log = std::fs::read_to_string(agent.dir().join("agent.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot copy the export from the share")
                && l.contains("elevliste-3.csv")),
        "the cut copy is logged as not taken"
    );
    assert!(!part.exists(), "the partial copy is gone");
    assert!(files_in(&agent.drop_dir()).is_empty());
    let status = agent.status().expect("status");
    assert_eq!(status["last_export_file"], "elevliste.csv", "{status}");
    assert_eq!(status["outbox_depth"], 0);
    assert_eq!(
        national_ids(platform.admin(), &site),
        held,
        "nothing was sent"
    );
    // The server is back: the next poll copies it whole and delivers it.
    smb.start_again();
    wait_held_and_gone(&platform, &site, 293, &folder, Instant::now());
    agent.wait_for("the problem to clear", |s| s["source_problem"].is_null());
}

#[test]
fn a_stick_naming_the_share_makes_the_agent_pull_from_it_and_move_what_it_delivered_with_the_hash_kept_0600_and_never_shown(
) {
    use std::os::unix::fs::PermissionsExt as _;
    if !samba::available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-smbpull-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    // The stick names the server by its IPv6 address (`smbclient //::1/…`), where this
    // machine has IPv6 loopback.
    let ip = if samba::ipv6_loopback() {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        eprintln!("no IPv6 loopback here: the file server is on 127.0.0.1 instead of ::1");
        IPV4
    };
    let (platform, smb, folder) = central_and_share(d, ip);
    // Where the county forbids deleting: delivered exports go to a folder beside the export
    // folder, which only the agent's account can read.
    let taken = d.join("share").join("hentet");
    std::fs::create_dir_all(&taken).expect("the folder delivered exports move into");
    // No [source] in agent.toml: the share comes from the stick, the password from a file on
    // the operator's machine, of which only the NT hash goes onto the stick.
    let agent_dir = d.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent folder");
    let mut agent = Agent::new(
        &agent_dir,
        Cadence::BUSY,
        &format!("stick_key = \"{}\"\n", platform.stick_key().display()),
    );
    let password_file = d.join("operator").join("pull.password");
    std::fs::create_dir_all(password_file.parent().expect("a folder")).expect("operator folder");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
    let port = smb.addr().port().to_string();
    let server = ip.to_string();
    platform.write_stick_with(
        &agent,
        &[
            "--pull-server",
            &server,
            "--pull-port",
            &port,
            "--pull-share",
            samba::SHARE,
            "--pull-folder",
            "eksport",
            "--pull-pattern",
            "*.csv",
            "--pull-user",
            samba::ACCOUNT,
            "--pull-password-file",
            password_file.to_str().expect("a UTF-8 path"),
            "--pull-poll-seconds",
            "1",
            "--pull-stable-seconds",
            "1",
            "--pull-after",
            "move:hentet",
        ],
    );
    let _logs = LogsOnFailure(vec![
        (d.join("central"), "central.log"),
        (agent_dir.clone(), "agent.log"),
    ]);
    agent.start();
    agent.wait_for("enrollment", |s| s["provisioning"]["site"].is_string());
    let site = agent.site();

    let local = d.join("elevliste.csv");
    std::fs::write(&local, sample()).expect("the export");
    smb.put(&local, "eksport/elevliste.csv");
    let took = wait_held_and_gone(&platform, &site, 300, &folder, Instant::now());
    println!("from the stick's share: central held 300 pupils {took:.2?} after the write ended");
    // Moved, not deleted: once in `hentet`, named `<Unix ms>-elevliste.csv`, bytes unchanged.
    let started = Instant::now();
    while files_in(&taken).is_empty() {
        assert!(
            started.elapsed() < PATIENCE,
            "nothing moved into hentet within {PATIENCE:?}"
        );
        std::thread::sleep(POLL);
    }
    let moved = files_in(&taken);
    assert_eq!(moved.len(), 1, "{moved:?}");
    let (stamp, name) = moved[0].split_once('-').expect("<Unix ms>-<name>");
    assert!(
        stamp.parse::<u64>().is_ok() && name == "elevliste.csv",
        "{moved:?}"
    );
    assert_eq!(
        std::fs::read(taken.join(&moved[0])).expect("the moved export"),
        sample()
    );
    assert!(files_in(&folder).is_empty(), "the export folder is empty");

    let status = agent.status().expect("status");
    let shown = &status["provisioning"]["share_source"];
    assert_eq!(shown["server"], server, "{status}");
    assert_eq!(shown["share"], samba::SHARE);
    assert_eq!(shown["folder"], "eksport");
    assert_eq!(shown["user"], samba::ACCOUNT);
    assert_eq!(shown["after"], "move:hentet");
    assert_eq!(shown["from"], "stick");

    let state = agent.dir().join("state");
    let hash_file = state.join("share-source.nthash");
    for file in [state.join("share-source.json"), hash_file.clone()] {
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let hash = skolebro_protocol::drop_share::nt_hash(PASSWORD);
    assert_eq!(
        std::fs::read_to_string(&hash_file)
            .expect("the hash file")
            .trim(),
        hash
    );
    // Neither the password nor its hash in any other file of the agent's: its log, its
    // status, its state folder (the stick, which carries the hash, is not the agent's).
    let mut files = vec![agent.dir().to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path == agent.stick_root() {
            continue;
        }
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).expect("a folder of the agent's");
            files.extend(entries.flatten().map(|e| e.path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(
            !text.contains(&PASSWORD.to_lowercase()),
            "the password is in {}",
            path.display()
        );
        if path != hash_file {
            assert!(!text.contains(&hash), "the hash is in {}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "agent.log, status.json and the state were read"
    );
    let log = std::fs::read_to_string(agent.dir().join("agent.log")).expect("agent.log");
    assert!(
        log.contains("the stick's pull share is the export source"),
        "{log}"
    );
}

/// The sample export without its last `less` pupils.
fn sample_without_last(less: usize) -> Vec<u8> {
    let text = String::from_utf8(sample()).expect("the sample is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    format!("{}\n", lines[..lines.len() - less].join("\n")).into_bytes()
}
