//! Provisioning end to end with real processes (issue 5): `skolebro-provision init` makes the
//! platform's keys in a temp folder, `skolebro-central serve` runs on the `central.toml` it
//! wrote (listen addresses moved to free loopback ports), `skolebro-provision stick` writes a
//! config stick into a folder that stands for the mounted stick, and `skolebro-agent` (`run`
//! polling its stick roots, or `provision --from`) enrolls over TLS pinned to the CA on the
//! stick and delivers exports over mutual TLS. Central's state is read back through its
//! operator listener (tokens, devices, rosters); the agent's through its state folder.
//!
//! Keys, tokens and certificates are made at test time; the only export data is the repo's
//! synthetic sample. The agent's clock is the system clock taken as synced (the marker file
//! systemd-timesyncd would create) unless a test injects one with `SKOLEBRO_TEST_CLOCK` (the
//! binaries are debug builds, which read it). When a test fails, its folder is kept and the
//! processes' logs are printed; `SKOLEBRO_E2E_KEEP=1` keeps the folders of passing tests too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use skolebro_protocol::{Roster, StickBody};
use skolebro_provisioning::admin::AdminToken;
use skolebro_provisioning::stick::{self, StickRequest};
use skolebro_provisioning::{AdminClient, KeyFolder};
use skolebro_tests::harness::{
    self, binaries, central_holds, get_json, one_at_a_time, print_log_tail, two_free_ports,
    Process, PATIENCE, POLL,
};
use skolebro_tests::rostergen;

/// The site every stick here is for: kommune 4601, skolenummer 12345.
const SITE: &str = "4601-12345";
/// Where the agent keeps its enrollment.
const ENROLLMENT_FILE: &str = "enrollment.json";
/// The clock floor the agent may persist whatever happens (DESIGN decision 8): not an
/// identity, so a refusal may write it.
const FLOOR_FILE: &str = "time-floor";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn sample(name: &str) -> Vec<u8> {
    let path = skolebro_tests::harness::workspace_root()
        .join("samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir` with its bytes, except the clock floor; empty when `dir` is absent.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != FLOOR_FILE) {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// The platform: keys from `init`, central on them

/// A temp folder with the platform's keys from `skolebro-provision init` (in `keys/`) and
/// central running on them; agents live in subfolders.
struct Platform {
    /// `None` once kept for a failed test.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    device_port: u16,
    admin: SocketAddr,
    central: Option<Process>,
}

impl Platform {
    /// `init`, then central with `enroll` (extra `[enroll]` settings, may be empty).
    fn start(enroll: &str) -> Platform {
        let dir = tempfile::Builder::new()
            .prefix("skolebro-provisioning-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_owned();
        let (device_port, admin_port) = two_free_ports();
        let mut platform = Platform {
            dir: Some(dir),
            path,
            device_port,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            central: None,
        };
        let keys = platform.keys();
        platform.init(&keys);
        // The central.toml `init` wrote, on this test's ports.
        let config = keys.join("central.toml");
        let written = std::fs::read_to_string(&config).unwrap();
        let moved = harness::on_ports(&written, device_port, admin_port);
        assert_ne!(
            moved, written,
            "init's central.toml has the documented ports"
        );
        std::fs::write(&config, format!("{moved}\n[enroll]\n{enroll}\n")).unwrap();
        platform.start_central();
        platform
    }

    fn dir(&self) -> &Path {
        &self.path
    }

    fn keys(&self) -> PathBuf {
        self.dir().join("keys")
    }

    fn central_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.device_port)
    }

    fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// `skolebro-provision init --dir keys` (the default server names cover 127.0.0.1).
    fn init(&self, keys: &Path) {
        let output = self.provision_cli(&["init", "--dir", path_str(keys)]);
        assert!(
            output.status.success(),
            "init failed: {}",
            text(&output.stderr)
        );
    }

    /// Runs `skolebro-provision ARGS` and returns what it did.
    fn provision_cli(&self, args: &[&str]) -> Output {
        harness::provision(self.dir(), args)
    }

    fn start_central(&mut self) {
        self.central = Some(harness::start_central(
            self.dir(),
            &self.keys().join("central.toml"),
            self.admin,
        ));
    }

    /// `skolebro-provision stick` with the keys in `keys` onto `stick_root` (created), the
    /// agent's drop folder `drop_dir`; the token is registered with this central.
    fn write_stick(&self, keys: &Path, stick_root: &Path, drop_dir: &Path) -> PathBuf {
        std::fs::create_dir_all(stick_root).unwrap();
        let central_url = self.central_url();
        let admin_url = self.admin_url();
        let output = self.provision_cli(&[
            "stick",
            "--keys",
            path_str(keys),
            "--out",
            path_str(stick_root),
            "--fylke",
            "46",
            "--kommune",
            "4601",
            "--skolenummer",
            "12345",
            "--name",
            "Testskulen",
            // The school the sample exports name, registered with the site besides its own.
            "--school",
            "4601/46500=Fana skule",
            "--central-url",
            &central_url,
            "--admin-url",
            &admin_url,
            "--drop-dir",
            path_str(drop_dir),
        ]);
        assert!(
            output.status.success(),
            "stick failed: {}",
            text(&output.stderr)
        );
        let bundle = stick_root.join("SKOLEBRO").join("BUNDLE.SKB");
        assert!(bundle.is_file(), "the stick holds {}", bundle.display());
        bundle
    }

    /// `GET /admin/tokens`.
    fn tokens(&self) -> Value {
        get_json(self.admin, "/admin/tokens").expect("GET /admin/tokens")
    }

    /// `GET /admin/devices`, as (device, site, revoked) of each: the stored part of each
    /// entry, without the heartbeat fields that move.
    fn devices(&self) -> Vec<(String, Value, Value)> {
        let answer = get_json(self.admin, "/admin/devices").expect("GET /admin/devices");
        let list = answer.get("devices").unwrap_or(&answer);
        let mut devices: Vec<_> = list
            .as_array()
            .expect("a list of devices")
            .iter()
            .map(|d| {
                (
                    d["device"].as_str().unwrap_or_default().to_owned(),
                    d["site"].clone(),
                    d["revoked"].clone(),
                )
            })
            .collect();
        devices.sort_by(|a, b| a.0.cmp(&b.0));
        devices
    }

    /// Central's chain head for `device`: the seq it expects next.
    fn next_seq(&self, device: &str) -> Option<u64> {
        let answer = get_json(self.admin, "/admin/devices")?;
        answer["devices"]
            .as_array()?
            .iter()
            .find(|d| d["device"] == device)?["chain_head"]["next_seq"]
            .as_u64()
    }

    /// Drops the sample export `name` into `agent`'s drop folder and waits until central's
    /// roster of the site equals what the generator wrote into it (not what a reader makes
    /// of the file, so a reader bug shows); returns that roster.
    fn deliver(&self, agent: &Agent, name: &str) -> Roster {
        let bytes = sample(name);
        let expected = rostergen::sample(name)
            .unwrap_or_else(|| panic!("samples/{name} is not one the generator wrote"))
            .truth();
        let started = Instant::now();
        agent.drop_export(name, &bytes);
        wait_for(&format!("central to hold samples/{name}"), || {
            central_holds(self.admin, SITE, &expected) == Some(true)
        });
        println!(
            "samples/{name}: central holds it after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        expected
    }

    fn central_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("central.log")).unwrap_or_default()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut central) = self.central.take() {
            central.kill();
        }
        if std::env::var_os("SKOLEBRO_E2E_KEEP").is_some() && !std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                println!("the test folder is kept: {}", dir.keep().display());
            }
        }
        if std::thread::panicking() {
            print_log_tail(self.dir(), "central.log");
            for entry in std::fs::read_dir(self.dir())
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.path().join("agent.log").is_file() {
                    print_log_tail(&entry.path(), "agent.log");
                }
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("----- the test folder is kept: {}", dir.keep().display());
            }
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Polls `done` until it holds, failing after [`PATIENCE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// An agent: its own folder, state, stick root and drop folder

/// Which clock an agent runs with.
#[derive(Clone, Copy)]
enum Clock {
    /// The system clock, synced (the timesyncd marker file exists): production's path.
    System,
    /// `SKOLEBRO_TEST_CLOCK=<value>`.
    Test(&'static str),
    /// `SKOLEBRO_TEST_CLOCK=synced:<unix seconds>`.
    SyncedAt(u64),
}

struct Agent {
    dir: PathBuf,
    process: Option<Process>,
}

impl Agent {
    /// A new agent in `<platform>/<name>` with `agent.toml` as the package installs it (plus
    /// quick polling for the test, and `extra`), trusting the stick key of `keys/`.
    fn new(platform: &Platform, name: &str, extra: &str) -> Agent {
        let dir = platform.dir().join(name);
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::create_dir_all(dir.join("drop")).unwrap();
        std::fs::write(dir.join("synchronized"), "").unwrap();
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                r#"state_dir = "state"
stick_roots = ["media"]
stick_key = "{stick_key}"
clock_synced_file = "synchronized"
panel = "none"
settle_ms = 100
rescan_seconds = 1
heartbeat_seconds = 1
{extra}

[uplink]
backoff_initial_ms = 100
backoff_max_ms = 1000
"#,
                stick_key = platform.keys().join("stick.pub").display(),
            ),
        )
        .unwrap();
        Agent { dir, process: None }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Where the stick is "mounted": a folder under the agent's stick root, as
    /// `/media/pi/STICK` is under `/media`.
    fn stick_root(&self) -> PathBuf {
        self.dir.join("media").join("STICK")
    }

    fn drop_dir(&self) -> PathBuf {
        self.dir.join("drop")
    }

    fn command(&self, clock: Clock) -> Command {
        let mut command = Command::new(&binaries().agent);
        command
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .env_remove("SKOLEBRO_TEST_CLOCK")
            .arg("--config")
            .arg(self.dir.join("agent.toml"));
        match clock {
            Clock::System => {}
            Clock::Test(value) => {
                command.env("SKOLEBRO_TEST_CLOCK", value);
            }
            Clock::SyncedAt(unix) => {
                command.env("SKOLEBRO_TEST_CLOCK", format!("synced:{unix}"));
            }
        }
        command
    }

    /// `skolebro-agent provision --from <from>`.
    fn provision(&self, from: &Path, clock: Clock) -> Output {
        let output = self
            .command(clock)
            .arg("provision")
            .arg("--from")
            .arg(from)
            .output()
            .expect("running skolebro-agent provision");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        use std::io::Write as _;
        let _ = log.write_all(&output.stdout);
        let _ = log.write_all(&output.stderr);
        output
    }

    /// `skolebro-agent run`, waiting until its `status.json` names its pid.
    fn start(&mut self, clock: Clock) {
        assert!(self.process.is_none(), "the agent is already running");
        let mut command = self.command(clock);
        command.arg("run");
        let process = Process::spawn(&mut command, &self.dir.join("agent.log"));
        let pid = u64::from(process.pid());
        self.process = Some(process);
        self.wait_for("the agent to start", |status| {
            status["pid"].as_u64() == Some(pid)
        });
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// The agent's `status.json`, if there is a readable one.
    fn status(&self) -> Option<Value> {
        let bytes = std::fs::read(self.state_dir().join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Polls the status until `done` holds; the agent must keep running meanwhile.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) {
        let started = Instant::now();
        loop {
            if self.status().is_some_and(|s| done(&s)) {
                return;
            }
            if let Some(process) = &mut self.process {
                assert!(process.is_running(), "the agent exited on its own");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "timed out after {PATIENCE:?} waiting for {what}; the agent says {}",
                self.status().unwrap_or_default()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Writes an export beside the drop folder and renames it in, as a SAS should.
    fn drop_export(&self, name: &str, bytes: &[u8]) {
        let staging = self.dir.join(format!(".{name}.part"));
        std::fs::write(&staging, bytes).unwrap();
        std::fs::rename(&staging, self.drop_dir().join(name)).unwrap();
    }

    fn enrollment(&self) -> Option<Value> {
        let bytes = std::fs::read(self.state_dir().join(ENROLLMENT_FILE)).ok()?;
        Some(serde_json::from_slice(&bytes).expect("enrollment.json is JSON"))
    }

    fn has_identity(&self) -> bool {
        self.state_dir().join(ENROLLMENT_FILE).exists()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Exit 1 (refused, nothing changed) and a message containing `why`.
fn assert_refused(output: &Output, why: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "refused with exit 1: stdout {} stderr {stderr}",
        text(&output.stdout)
    );
    assert!(stderr.contains(why), "says {why:?}: {stderr}");
    assert!(stderr.contains("nothing changed"), "{stderr}");
}

/// The token on the stick at `bundle`, checked with the platform's stick key (so a test can
/// make sure no log holds it).
fn token_of(platform: &Platform, bundle: &Path) -> String {
    let key = KeyFolder::new(platform.keys())
        .stick_verifying_key()
        .expect("stick.pub");
    StickBody::verify(&std::fs::read(bundle).unwrap(), &key)
        .expect("the stick verifies")
        .token
}

/// Central (with `enroll` settings), and an agent (with `agent_extra` in its agent.toml)
/// running on the synced system clock that enrolled from a fresh stick; and its device id.
fn enrolled(enroll: &str, agent_extra: &str) -> (Platform, Agent, String) {
    let platform = Platform::start(enroll);
    let mut pi = Agent::new(&platform, "pi", agent_extra);
    platform.write_stick(&platform.keys(), &pi.stick_root(), &pi.drop_dir());
    pi.start(Clock::System);
    pi.wait_for("the agent to enroll", |s| {
        s["provisioning"]["device"].is_string() && s["state"] == "healthy"
    });
    let device = pi.status().unwrap()["provisioning"]["device"]
        .as_str()
        .unwrap()
        .to_owned();
    (platform, pi, device)
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn init_and_a_stick_are_all_an_agent_needs_to_enroll_and_deliver_the_sample_export() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let mut pi = Agent::new(&platform, "pi", "");
    // The agent runs before the stick exists, as on a Pi that boots before school IT
    // inserts it.
    pi.start(Clock::System);
    pi.wait_for("waiting for a config stick", |s| {
        s["state"] == "not_provisioned"
    });
    let bundle = platform.write_stick(&platform.keys(), &pi.stick_root(), &pi.drop_dir());
    let token = token_of(&platform, &bundle);
    pi.wait_for("the agent to enroll", |s| {
        s["provisioning"]["device"].is_string() && s["state"] == "healthy"
    });
    let status = pi.status().unwrap();
    let device = status["provisioning"]["device"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status["provisioning"]["site"], SITE);
    assert!(device.starts_with(&format!("{SITE}-")), "{device}");
    assert_eq!(status["provisioning"]["clock_synced"], true);
    let tokens = platform.tokens();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert_eq!(tokens[0]["used_by"], device.as_str());
    assert_eq!(status["provisioning"]["token_id"], tokens[0]["id"]);
    assert_eq!(
        platform.devices(),
        [(device.clone(), Value::from(SITE), Value::from(false))]
    );

    let enrolled: Value =
        serde_json::from_slice(&std::fs::read(pi.state_dir().join(ENROLLMENT_FILE)).unwrap())
            .unwrap();
    assert_eq!(
        enrolled["schools"].as_array().map(Vec::len),
        Some(2),
        "the stick's schools reach the agent: {}",
        enrolled["schools"]
    );
    platform.deliver(&pi, "elevliste.csv");
    let counts = get_json(platform.admin, &format!("/v1/sites/{SITE}/counts")).unwrap();
    assert_eq!(counts["students"], 300, "{counts}");

    // The same stick again, by hand: nothing changes on either side.
    let enrollment = std::fs::read(pi.state_dir().join(ENROLLMENT_FILE)).unwrap();
    let (tokens, devices) = (platform.tokens(), platform.devices());
    let again = pi.provision(&pi.stick_root(), Clock::System);
    assert!(
        again.status.success(),
        "provision of the same stick: {}",
        text(&again.stderr)
    );
    assert!(
        text(&again.stdout).contains("nothing changed"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(
        std::fs::read(pi.state_dir().join(ENROLLMENT_FILE)).unwrap(),
        enrollment
    );
    assert_eq!(platform.tokens(), tokens);
    assert_eq!(platform.devices(), devices);
    // Still the same device, still delivering to the same chain.
    let status = pi.status().unwrap();
    assert_eq!(status["provisioning"]["device"], device.as_str());
    assert!(
        platform.next_seq(&device).is_some_and(|n| n >= 1),
        "central has the device's chain"
    );

    for (who, log) in [("agent", pi.log()), ("central", platform.central_log())] {
        assert!(!log.contains(&token), "the {who} log holds the token");
    }
}

#[test]
fn a_bundle_with_a_flipped_byte_is_refused_and_changes_nothing() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let mut pi = Agent::new(&platform, "pi", "");
    let bundle = platform.write_stick(&platform.keys(), &pi.stick_root(), &pi.drop_dir());
    let good = std::fs::read(&bundle).unwrap();
    let token = token_of(&platform, &bundle);
    let (tokens, devices) = (platform.tokens(), platform.devices());

    let body_len = u32::from_le_bytes(good[5..9].try_into().unwrap()) as usize;
    let flips = [
        ("magic", 0),
        ("version", 4),
        ("body length", 5),
        ("body", 9 + body_len / 2),
        ("last body byte", 9 + body_len - 1),
        ("signature", good.len() - 64),
        ("last signature byte", good.len() - 1),
    ];
    for (what, at) in flips {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&bundle, &bad).unwrap();
        let output = pi.provision(&pi.stick_root(), Clock::System);
        assert_refused(&output, "refused");
        assert!(
            !pi.has_identity(),
            "a flipped {what} byte (offset {at}) left an identity"
        );
        assert!(snapshot(&pi.state_dir()).is_empty(), "{what}");
        println!(
            "a flipped {what} byte (offset {at}): {}",
            text(&output.stderr).trim()
        );
    }

    // The daemon finds the tampered stick by itself and says so.
    pi.start(Clock::System);
    pi.wait_for("the daemon to refuse the stick", |s| {
        s["provisioning"]["stick_refused"]
            .as_str()
            .is_some_and(|r| r.contains("BUNDLE.SKB"))
    });
    let status = pi.status().unwrap();
    assert_eq!(status["state"], "not_provisioned", "{status}");
    assert!(!pi.has_identity());
    assert_eq!(
        platform.tokens(),
        tokens,
        "central's tokens are as they were"
    );
    assert_eq!(
        platform.devices(),
        devices,
        "central's devices are as they were"
    );
    assert!(devices.is_empty());

    // Nothing was spent: the stick as written still enrolls the device.
    std::fs::write(&bundle, &good).unwrap();
    pi.wait_for("the agent to enroll from the good stick", |s| {
        s["provisioning"]["device"].is_string()
    });
    assert!(pi.has_identity());
    assert!(!pi.log().contains(&token), "the agent log holds the token");
}

#[test]
fn an_expired_token_is_refused_and_changes_nothing() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let pi = Agent::new(&platform, "pi", "");
    // A stick written (and its token registered) 20 days ago with the default 14 days:
    // expired 6 days ago.
    let written = unix_now() - 20 * 86_400;
    let site = stick::site_info("46", "4601", "12345", "Testskulen").unwrap();
    let request = StickRequest {
        schools: stick::site_schools(&site, Vec::new()).unwrap(),
        site,
        central_url: platform.central_url(),
        expires_days: stick::DEFAULT_EXPIRES_DAYS,
        settings_toml: stick::agent_settings(None, Some(path_str(&pi.drop_dir()))).unwrap(),
        drop_share: None,
        share_source: None,
    };
    let token = AdminToken::locate(Some(&harness::admin_token_file(platform.dir()))).unwrap();
    let admin = AdminClient::new(&platform.admin_url(), &token).unwrap();
    std::fs::create_dir_all(pi.stick_root()).unwrap();
    let (body, _) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(stick::provision(
            &KeyFolder::new(platform.keys()),
            &request,
            &pi.stick_root(),
            &admin,
            written,
        ))
        .expect("writing the stick");
    assert!(body.token_expires_unix < unix_now());
    let (tokens, devices) = (platform.tokens(), platform.devices());
    assert_eq!(tokens[0]["expires_unix"], body.token_expires_unix);

    // A synced agent sees the expiry itself.
    let output = pi.provision(&pi.stick_root(), Clock::System);
    assert_refused(&output, "expired");
    assert!(!pi.has_identity());
    // An agent whose clock is not synced cannot tell, and asks central, which refuses.
    let output = pi.provision(&pi.stick_root(), Clock::Test("unsynced"));
    assert_refused(&output, "token_expired");
    assert!(!pi.has_identity());
    assert!(snapshot(&pi.state_dir()).is_empty());
    assert_eq!(platform.tokens(), tokens);
    assert_eq!(platform.devices(), devices);
    assert!(devices.is_empty());
}

#[test]
fn a_token_used_a_second_time_by_a_second_device_is_refused_and_changes_nothing() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let first = Agent::new(&platform, "pi-1", "");
    let mut second = Agent::new(&platform, "pi-2", "");
    let bundle = platform.write_stick(&platform.keys(), &first.stick_root(), &first.drop_dir());
    let enrolled = first.provision(&first.stick_root(), Clock::System);
    assert!(enrolled.status.success(), "{}", text(&enrolled.stderr));
    let device = first.enrollment().unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let (tokens, devices) = (platform.tokens(), platform.devices());
    assert_eq!(tokens[0]["used_by"], device.as_str());
    assert_eq!(devices.len(), 1);

    // The same stick in a second device, by hand.
    let output = second.provision(&first.stick_root(), Clock::System);
    assert_refused(&output, "token_used");
    assert!(!second.has_identity());
    assert!(snapshot(&second.state_dir()).is_empty());
    assert_eq!(platform.tokens(), tokens);
    assert_eq!(platform.devices(), devices);

    // And found by the second device's daemon.
    std::fs::create_dir_all(second.stick_root().join("SKOLEBRO")).unwrap();
    std::fs::copy(
        &bundle,
        second.stick_root().join("SKOLEBRO").join("BUNDLE.SKB"),
    )
    .unwrap();
    second.start(Clock::System);
    second.wait_for("central to refuse the second device", |s| {
        s["provisioning"]["enroll_error"]
            .as_str()
            .is_some_and(|e| e.contains("token_used"))
    });
    let status = second.status().unwrap();
    assert_eq!(status["state"], "not_provisioned", "{status}");
    assert!(status["provisioning"]["device"].is_null());
    assert!(!second.has_identity());
    assert_eq!(platform.tokens(), tokens);
    assert_eq!(platform.devices(), devices);
}

#[test]
fn a_bundle_signed_by_another_key_is_refused_and_changes_nothing() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let mut pi = Agent::new(&platform, "pi", "");
    // Another platform's keys: a stick that is well-formed and whose token even this central
    // knows, but signed by a key the agent was not installed with.
    let other = platform.dir().join("other-keys");
    platform.init(&other);
    platform.write_stick(&other, &pi.stick_root(), &pi.drop_dir());
    let (tokens, devices) = (platform.tokens(), platform.devices());
    assert_eq!(tokens.as_array().unwrap().len(), 1);

    let output = pi.provision(&pi.stick_root(), Clock::System);
    assert_refused(&output, "refused");
    assert!(
        text(&output.stderr).contains("signature"),
        "{}",
        text(&output.stderr)
    );
    assert!(!pi.has_identity());
    assert!(snapshot(&pi.state_dir()).is_empty());

    pi.start(Clock::System);
    pi.wait_for("the daemon to refuse the stick", |s| {
        s["provisioning"]["stick_refused"].is_string()
    });
    assert_eq!(pi.status().unwrap()["state"], "not_provisioned");
    assert!(!pi.has_identity());
    assert_eq!(platform.tokens(), tokens);
    assert!(platform.tokens()[0]["used_by"].is_null());
    assert_eq!(platform.devices(), devices);
    assert!(devices.is_empty());
}

#[test]
fn a_revoked_device_is_refused_on_its_next_connection_and_says_so() {
    let _one = one_at_a_time();
    let (platform, mut pi, device) = enrolled("", "");
    let expected = platform.deliver(&pi, "elevliste.csv");
    pi.wait_for("the ack", |s| s["outbox_depth"] == 0);
    let next_seq = platform.next_seq(&device);

    let output = platform.provision_cli(&[
        "revoke",
        "device",
        &device,
        "--admin-url",
        &platform.admin_url(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        platform.devices(),
        [(device.clone(), Value::from(SITE), Value::from(true))]
    );

    pi.drop_export("elevliste.2.csv", &sample("elevliste.2.csv"));
    pi.wait_for("the agent to say it is revoked", |s| {
        s["state"] == "revoked" && s["provisioning"]["revoked"] == true
    });
    let status = pi.status().unwrap();
    assert_eq!(status["outbox_depth"], 1, "the batch waits: {status}");
    // `skolebro-agent status` says so in words too.
    let words = pi.command(Clock::System).arg("status").output().unwrap();
    assert!(
        text(&words.stdout).contains("Revoked by central"),
        "{}",
        text(&words.stdout)
    );
    assert!(
        central_holds(platform.admin, SITE, &expected) == Some(true),
        "central still holds the first export, nothing of the second"
    );
    assert_eq!(
        platform.next_seq(&device),
        next_seq,
        "the chain did not move"
    );
    assert!(
        platform.central_log().contains("device_revoked"),
        "central logs the refusal"
    );
}

#[test]
fn the_certificate_is_renewed_before_it_expires_and_delivery_goes_on_past_its_end() {
    let _one = one_at_a_time();
    // Certificates of 40 s. Central dates them from 5 minutes back (for clock skew), so the
    // agent sees a lifetime of 340 s: renewing with 6 % of it left is 20 s before the end.
    let (platform, mut pi, _) =
        enrolled("cert_lifetime_seconds = 40", "renew_before_fraction = 0.06");
    let first_not_after = pi.status().unwrap()["provisioning"]["cert_not_after_unix"]
        .as_u64()
        .expect("the certificate's end in status");
    assert!(first_not_after <= unix_now() + 41);
    let first_cert = pi.enrollment().unwrap()["cert_pem"].clone();

    platform.deliver(&pi, "elevliste.csv");

    pi.wait_for("the certificate to be renewed", |s| {
        s["provisioning"]["renewed_unix"].is_u64()
            && s["provisioning"]["cert_not_after_unix"]
                .as_u64()
                .is_some_and(|t| t > first_not_after)
    });
    let renewed_at = unix_now();
    assert!(
        renewed_at < first_not_after,
        "renewed before the first certificate ended"
    );
    assert_ne!(pi.enrollment().unwrap()["cert_pem"], first_cert);
    println!(
        "renewed {} s before the first certificate's end",
        first_not_after - renewed_at
    );

    while unix_now() <= first_not_after + 1 {
        std::thread::sleep(POLL);
    }
    // Delivered with the renewed certificate, after the first one ended.
    platform.deliver(&pi, "elevliste.2.csv");
    let status = pi.status().unwrap();
    assert_eq!(status["state"], "healthy", "{status}");
    assert!(platform.central_log().contains("certificate renewed"));
}

#[test]
fn a_clock_years_off_neither_bricks_enrollment_nor_accepts_an_expired_certificate_once_synced() {
    let _one = one_at_a_time();
    let platform = Platform::start("");
    let mut pi = Agent::new(&platform, "pi", "");
    platform.write_stick(&platform.keys(), &pi.stick_root(), &pi.drop_dir());
    // Not synced, and the last good time the agent remembers is from years back: the system
    // clock is not consulted at all, the floor (build time, then the certificate's start) is.
    std::fs::create_dir_all(pi.state_dir()).unwrap();
    std::fs::write(pi.state_dir().join(FLOOR_FILE), "1000000000\n").unwrap();
    let output = pi.provision(&pi.stick_root(), Clock::Test("unsynced"));
    assert!(
        output.status.success(),
        "enrolling on an unsynced clock: {}",
        text(&output.stderr)
    );
    pi.start(Clock::Test("unsynced"));
    pi.wait_for("the agent to run as the enrolled device", |s| {
        s["state"] == "healthy" && s["provisioning"]["device"].is_string()
    });
    let status = pi.status().unwrap();
    assert_eq!(status["provisioning"]["clock_synced"], false);
    let floor = status["provisioning"]["time_floor_unix"].as_u64().unwrap();
    assert!(
        floor > 1_000_000_000 && floor <= unix_now(),
        "the floor moved up to what the agent knows, never past the real time: {floor}"
    );
    let not_after = status["provisioning"]["cert_not_after_unix"]
        .as_u64()
        .unwrap();
    let expected = platform.deliver(&pi, "elevliste.csv");
    pi.wait_for("the ack", |s| s["outbox_depth"] == 0);
    // Central's signed time (every heartbeat answer's statement, checked against the key
    // the enrollment answer carried) is what raised the floor from 2001 to about now.
    pi.wait_for("a signed statement accepted", |s| {
        s["freshness"]["newest_statement_unix_ms"].is_u64()
    });
    let status = pi.status().unwrap();
    let signed = status["freshness"]["newest_statement_unix_ms"]
        .as_u64()
        .unwrap()
        / 1000;
    assert_eq!(status["freshness"]["frozen"], false, "{status}");
    assert!(pi.enrollment().unwrap()["statement_key"].is_string());
    let floor = status["provisioning"]["time_floor_unix"].as_u64().unwrap();
    assert!(
        floor + 3600 >= signed && floor <= unix_now(),
        "the floor {floor} follows central's signed time {signed}"
    );
    let newest_heard = |platform: &Platform| {
        get_json(platform.admin, "/admin/devices")
            .and_then(|d| {
                d["devices"][0]["last_heartbeat"]["freshness"]["newest_statement_unix_ms"].as_u64()
            })
            .unwrap_or(0)
            / 1000
    };

    // The system clock jumps to 2040 and the Pi reboots without network: the unsynced
    // reading moves nothing, so neither certificate looks expired and the floor stays at
    // central's time; heartbeats go on and their statements are accepted.
    pi.kill();
    let restarted = unix_now();
    pi.start(Clock::Test("unsynced:2208988800"));
    pi.wait_for("the agent to run again on the clock set to 2040", |s| {
        s["state"] == "healthy" && s["pid"] != status["pid"]
    });
    wait_for("a statement accepted after the reboot", || {
        newest_heard(&platform) > restarted
    });
    let status = pi.status().unwrap();
    let floor = status["provisioning"]["time_floor_unix"].as_u64().unwrap();
    assert!(floor <= unix_now() && floor < not_after, "floor {floor}");
    assert_eq!(status["provisioning"]["clock_synced"], false);
    assert_eq!(status["freshness"]["refusal"], Value::Null, "{status}");

    // The clock syncs to a time years ahead, past the device certificate's end and central's
    // server certificate's (one year): neither is accepted any more.
    pi.kill();
    let years_ahead = not_after.max(unix_now()) + 3 * 365 * 86_400;
    pi.start(Clock::SyncedAt(years_ahead));
    pi.drop_export("elevliste.2.csv", &sample("elevliste.2.csv"));
    pi.wait_for("the agent to report the expired certificate", |s| {
        s["provisioning"]["clock_synced"] == true
            && s["state"] == "error"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("expired"))
    });
    pi.wait_for("the second export to wait in the outbox", |s| {
        s["outbox_depth"] == 1
    });
    // The event that proves the non-event: several attempts to push the waiting batch, each
    // refused because central's certificate has expired by the agent's clock.
    let refused_pushes = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("central unreachable; retrying") && l.contains("certificate expired")
            })
            .count()
    };
    wait_for("three refused attempts to push the second export", || {
        refused_pushes(&pi.log()) >= 3
    });
    assert_eq!(pi.status().unwrap()["outbox_depth"], 1);
    assert!(
        central_holds(platform.admin, SITE, &expected) == Some(true),
        "central holds the first export only"
    );
    assert!(
        pi.log()
            .contains("invalid peer certificate: certificate expired"),
        "the agent refuses central's certificate, and logs why"
    );
    // The stick it enrolled with is still in, its token long expired by now: that is not a
    // refusal, the device is enrolled with it.
    let status = pi.status().unwrap();
    assert!(
        status["provisioning"]["stick_refused"].is_null(),
        "{status}"
    );
    let again = pi.provision(&pi.stick_root(), Clock::SyncedAt(years_ahead));
    assert!(
        again.status.success() && text(&again.stdout).contains("nothing changed"),
        "the enrollment stick again, years later: {}",
        text(&again.stderr)
    );
}
