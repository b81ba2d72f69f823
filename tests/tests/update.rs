//! Remote update end to end with real processes (issue 6, DESIGN decision 7). Two real builds
//! of the agent: A, the test build, and B, the same sources built once into
//! `<target>/update-b` with `SKOLEBRO_VERSION=9.0.0` (no debug info, so the artifact is
//! small). `skolebro-provision init` makes the platform's keys, `skolebro-central serve` runs
//! on them, and `skolebro-provision release` signs and registers each release. Every agent
//! has its own install root seeded with A (`releases/0.1.0/`, `current`), enrolls from its
//! own config stick for its own site (so each release's rollout names exactly the agents it
//! is meant for), and runs under a supervisor loop in the test that starts
//! `<install_root>/current/skolebro-agent run` again whenever it exits, as systemd's
//! `Restart=always` does.
//!
//! The agents run side by side, one per case: a good release; one whose health check fails
//! and one that crashes at start (both via the `test-hooks` file beside B's binary); a
//! corrupted artifact, a bad signature, a wrong target and an older version; and one agent
//! aborted (`SKOLEBRO_TEST_ABORT_AT`) at each step of its install. Central's counts, rollbacks
//! and refusals are read back through its operator listener. When the test fails, its folder
//! is kept and the logs are printed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use skolebro_agent::update::{TARGET, VERSION};
use skolebro_protocol::release::ReleaseSigningKey;
use skolebro_tests::harness::{
    self, binaries, get_json, http_post_json, one_at_a_time, print_log_tail, two_free_ports,
    workspace_root, Process, PATIENCE, POLL,
};

/// The version build B reports.
const B_VERSION: &str = "9.0.0";
/// Each start of a release on trial has this long to pass its health check.
const TRIAL_SECONDS: u64 = 45;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// How long one step of the scenario may take. An install moves a ~30 MB debug build
/// through download, SHA-256, copy and fsync, several times over in the kill-at-every-step
/// case; on a busy 2-CPU machine that took over three minutes, far beyond the harness's
/// [`PATIENCE`] for a single request.
const UPDATE_PATIENCE: Duration = Duration::from_secs(6 * PATIENCE.as_secs());

/// Polls `done` until it holds, failing after [`UPDATE_PATIENCE`] with `what` and `detail()`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < UPDATE_PATIENCE,
            "timed out after {UPDATE_PATIENCE:?} waiting for {what}: {}",
            detail()
        );
        std::thread::sleep(POLL);
    }
}

/// The target folder the test binaries are built in.
fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"))
}

/// Builds B once: the agent with `SKOLEBRO_VERSION=9.0.0`, in its own target folder so the
/// test build (A) stays as it is; later runs only check that it is up to date.
fn build_b() -> PathBuf {
    let root = workspace_root();
    let target = target_dir().join("update-b");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("SKOLEBRO_VERSION", B_VERSION)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0")
        .args(["build", "-p", "skolebro-agent", "--bin", "skolebro-agent"])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cannot run cargo build");
    assert!(status.success(), "building B failed: {status}");
    println!(
        "built B ({B_VERSION}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    target.join("debug").join("skolebro-agent")
}

// ---------------------------------------------------------------------------------------------
// The platform

struct Platform {
    /// `None` once kept for a failed test.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    device_port: u16,
    admin: SocketAddr,
    central: Option<Process>,
}

impl Platform {
    /// `init`, then central on its `central.toml` (with the release key) on free ports. The
    /// folder is under the target folder, so agents' binaries can be hard links of A.
    fn start() -> Platform {
        let scratch = target_dir().join("tmp");
        std::fs::create_dir_all(&scratch).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("skolebro-update-")
            .tempdir_in(&scratch)
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
        platform.cli(&["init", "--dir", path_str(&keys)]);
        let config = keys.join("central.toml");
        let written = std::fs::read_to_string(&config).unwrap();
        assert!(written.contains("release_key"), "{written}");
        let moved = harness::on_ports(&written, device_port, admin_port);
        std::fs::write(&config, moved).unwrap();
        platform.central = Some(harness::start_central(
            &platform.path,
            &config,
            platform.admin,
        ));
        platform
    }

    fn keys(&self) -> PathBuf {
        self.path.join("keys")
    }

    /// Runs `skolebro-provision ARGS`, which must succeed; its stdout.
    fn cli(&self, args: &[&str]) -> String {
        harness::provision_ok(&self.path, args)
    }

    /// Signs `binary` as `version` for `target` and registers it with central; its id.
    fn release(&self, binary: &Path, version: &str, target: &str) -> String {
        let out = self.path.join("releases-out");
        let admin = format!("http://{}", self.admin);
        self.cli(&[
            "release",
            "--keys",
            path_str(&self.keys()),
            "--binary",
            path_str(binary),
            "--version",
            version,
            "--target",
            target,
            "--out",
            path_str(&out),
            "--admin-url",
            &admin,
        ]);
        format!("{version}-{target}")
    }

    /// Offers release `id` to the agents of `sites`.
    fn roll_out(&self, id: &str, sites: &[&str]) {
        let (status, body) = http_post_json(
            self.admin,
            &format!("/admin/releases/{id}/rollout"),
            &json!({ "sites": sites }),
        )
        .expect("POST rollout");
        assert!(
            (200..300).contains(&status),
            "rollout of {id}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Central's entry for release `id` in `GET /admin/releases`.
    fn release_report(&self, id: &str) -> Value {
        let all = get_json(self.admin, "/admin/releases").expect("GET /admin/releases");
        all["releases"]
            .as_array()
            .and_then(|list| list.iter().find(|r| r["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }

    /// The last heartbeat central got from `device`, and when (Unix ms).
    fn last_heartbeat(&self, device: &str) -> (Value, i64) {
        let devices = get_json(self.admin, "/admin/devices").unwrap_or(Value::Null);
        let entry = devices["devices"]
            .as_array()
            .and_then(|list| list.iter().find(|d| d["device"] == device).cloned())
            .unwrap_or(Value::Null);
        (
            entry["last_heartbeat"].clone(),
            entry["last_heartbeat_unix_ms"].as_i64().unwrap_or(0),
        )
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut central) = self.central.take() {
            central.kill();
        }
        if std::thread::panicking() {
            print_log_tail(&self.path, "central.log");
            if let Some(dir) = self.dir.take() {
                eprintln!("----- the test folder is kept: {}", dir.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An agent under its supervisor

/// One start of the agent by the supervisor: the release `current` named, and how it ended.
#[derive(Debug, Clone)]
struct Start {
    release: String,
    exit: Option<ExitStatus>,
}

struct Agent {
    name: &'static str,
    dir: PathBuf,
    site: String,
    stop: Arc<AtomicBool>,
    starts: Arc<Mutex<Vec<Start>>>,
    supervisor: Option<JoinHandle<()>>,
}

impl Agent {
    /// An agent in `<platform>/<name>` for site `4601-<skolenummer>`: A installed as the
    /// only release, a config stick for its site, and `release_key` (default: the
    /// platform's). Not started yet.
    fn new(platform: &Platform, name: &'static str, skolenummer: u32, release_key: &Path) -> Agent {
        let dir = platform.path.join(name);
        let a = dir.join("install/releases").join(VERSION);
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(dir.join("drop")).unwrap();
        if std::fs::hard_link(&binaries().agent, a.join("skolebro-agent")).is_err() {
            std::fs::copy(&binaries().agent, a.join("skolebro-agent")).unwrap();
        }
        std::os::unix::fs::symlink(format!("releases/{VERSION}"), dir.join("install/current"))
            .unwrap();
        std::fs::write(dir.join("synchronized"), "").unwrap();
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                r#"state_dir = "state"
stick_roots = ["media"]
stick_key = "{stick_key}"
release_key = "{release_key}"
install_root = "install"
trial_seconds = {TRIAL_SECONDS}
clock_synced_file = "synchronized"
panel = "none"
settle_ms = 100
rescan_seconds = 1
heartbeat_seconds = 1

[uplink]
backoff_initial_ms = 100
backoff_max_ms = 1000
"#,
                stick_key = platform.keys().join("stick.pub").display(),
                release_key = release_key.display(),
            ),
        )
        .unwrap();
        let stick = dir.join("media").join("STICK");
        std::fs::create_dir_all(&stick).unwrap();
        let central_url = format!("https://127.0.0.1:{}", platform.device_port);
        let admin_url = format!("http://{}", platform.admin);
        let skolenummer = skolenummer.to_string();
        platform.cli(&[
            "stick",
            "--keys",
            path_str(&platform.keys()),
            "--out",
            path_str(&stick),
            "--fylke",
            "46",
            "--kommune",
            "4601",
            "--skolenummer",
            &skolenummer,
            "--name",
            "Testskulen",
            "--central-url",
            &central_url,
            "--admin-url",
            &admin_url,
            "--drop-dir",
            path_str(&dir.join("drop")),
        ]);
        Agent {
            name,
            dir,
            site: format!("4601-{skolenummer}"),
            stop: Arc::new(AtomicBool::new(false)),
            starts: Arc::default(),
            supervisor: None,
        }
    }

    fn install(&self) -> PathBuf {
        self.dir.join("install")
    }

    /// Puts `lines` into the `test-hooks` file of release `version` (created if needed).
    fn hooks(&self, version: &str, lines: &str) {
        let dir = self.install().join("releases").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("test-hooks"), lines).unwrap();
    }

    /// The supervisor: starts `current/skolebro-agent run` and starts it again 300 ms after
    /// it exits, until the agent is dropped. The n-th start gets `SKOLEBRO_TEST_ABORT_AT`
    /// from `aborts[n]`, if there is one.
    fn supervise(&mut self, aborts: &[&'static str]) {
        let (dir, stop, starts) = (self.dir.clone(), self.stop.clone(), self.starts.clone());
        let mut aborts: VecDeque<&'static str> = aborts.iter().copied().collect();
        self.supervisor = Some(std::thread::spawn(move || {
            let log = dir.join("agent.log");
            while !stop.load(Ordering::SeqCst) {
                let current = dir.join("install/current");
                let release = std::fs::read_link(&current)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|e| format!("no current: {e}"));
                let log_file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                let mut command = Command::new(current.join("skolebro-agent"));
                command
                    .current_dir(&dir)
                    .env("RUST_LOG", "info")
                    .env_remove("SKOLEBRO_TEST_CLOCK")
                    .env_remove("SKOLEBRO_TEST_ABORT_AT")
                    .arg("--config")
                    .arg(dir.join("agent.toml"))
                    .arg("run")
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().unwrap())
                    .stderr(log_file);
                if let Some(step) = aborts.pop_front() {
                    command.env("SKOLEBRO_TEST_ABORT_AT", step);
                }
                let index = {
                    let mut starts = starts.lock();
                    starts.push(Start {
                        release: release.clone(),
                        exit: None,
                    });
                    starts.len() - 1
                };
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(e) => {
                        starts.lock()[index].release = format!("{release}: {e}");
                        std::thread::sleep(Duration::from_millis(300));
                        continue;
                    }
                };
                let status = loop {
                    if stop.load(Ordering::SeqCst) {
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                    match child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                        Err(_) => break None,
                    }
                };
                starts.lock()[index].exit = status;
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
    }

    fn starts(&self) -> Vec<Start> {
        self.starts.lock().clone()
    }

    fn status(&self) -> Option<Value> {
        let bytes = std::fs::read(self.dir.join("state/status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The device id, once enrolled.
    fn device(&self) -> String {
        let mut device = None;
        wait_for(
            &format!("{} to enroll", self.name),
            || {
                device = self.status().and_then(|s| {
                    s["provisioning"]["device"]
                        .as_str()
                        .filter(|_| s["state"] == "healthy")
                        .map(str::to_owned)
                });
                device.is_some()
            },
            || format!("{:?}", self.status()),
        );
        device.unwrap_or_default()
    }

    /// The release folder `current` names.
    fn current(&self) -> String {
        std::fs::read_link(self.install().join("current"))
            .map(|t| t.display().to_string())
            .unwrap_or_default()
    }

    fn releases(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.install().join("releases"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("skolebro-agent").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
        if std::thread::panicking() {
            print_log_tail(&self.dir, "agent.log");
        }
    }
}

/// The entry for `device` in a release's `rollbacks` or `refusals`.
fn reason_of(list: &Value, device: &str) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|r| r["device"] == device)
        .and_then(|r| r["reason"].as_str())
        .map(str::to_owned)
}

fn aborted(start: &Start) -> bool {
    start.exit.and_then(|s| s.signal()) == Some(libc::SIGABRT)
}

#[test]
fn releases_install_roll_back_are_refused_and_survive_a_kill_at_every_step() {
    let _one = one_at_a_time();
    let started = Instant::now();
    binaries();
    let b = build_b();
    let platform = Platform::start();
    let key = platform.keys().join("release.pub");
    let other_key = platform.path.join("other-release.pub");
    std::fs::write(
        &other_key,
        ReleaseSigningKey::from_bytes([7; 32])
            .verifying_key()
            .to_hex()
            + "\n",
    )
    .unwrap();

    // The releases: B for this target; and for the refusals, an artifact central will serve
    // corrupted, an older version, and a release for another target.
    let other_target = if TARGET.starts_with("x86_64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let good = platform.release(&b, B_VERSION, TARGET);
    // These two are signed under versions B does not report, which `release` refuses for a
    // binary it can ask: a copy it cannot run, as it could not run a build for another
    // target, is signed as given.
    let inert = platform.path.join("skolebro-agent-b.inert");
    std::fs::copy(&b, &inert).unwrap();
    std::fs::set_permissions(&inert, std::fs::Permissions::from_mode(0o644)).unwrap();
    let corrupt = platform.release(&inert, "8.0.0", TARGET);
    let older = platform.release(&inert, "0.0.1", TARGET);
    let foreign = platform.release(&b, B_VERSION, other_target);
    let stored = platform
        .keys()
        .join("releases")
        .join(format!("{corrupt}.bin"));
    let mut bytes = std::fs::read(&stored).expect("central stores the artifact");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    println!(
        "releases registered after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut healthy = Agent::new(&platform, "healthy", 10001, &key);
    let mut unhealthy = Agent::new(&platform, "unhealthy", 10002, &key);
    let mut crashing = Agent::new(&platform, "crashing", 10003, &key);
    let mut killed = Agent::new(&platform, "killed", 10004, &key);
    let mut forged = Agent::new(&platform, "forged", 10005, &other_key);
    let mut corrupted = Agent::new(&platform, "corrupted", 10006, &key);
    let mut old = Agent::new(&platform, "old", 10007, &key);
    let mut wrong = Agent::new(&platform, "wrong-target", 10008, &key);
    unhealthy.hooks(B_VERSION, "SKOLEBRO_TEST_FAIL_HEALTH=1\n");
    crashing.hooks(B_VERSION, "SKOLEBRO_TEST_CRASH_AT_START=1\n");
    // As if central had the wrong idea of this device's platform.
    wrong.hooks(
        VERSION,
        &format!("SKOLEBRO_TEST_REPORT_TARGET={other_target}\n"),
    );
    let b_sites = [&healthy, &unhealthy, &crashing, &killed, &forged].map(|a| a.site.as_str());
    platform.roll_out(&good, &b_sites);
    platform.roll_out(&corrupt, &[&corrupted.site]);
    platform.roll_out(&older, &[&old.site]);
    platform.roll_out(&foreign, &[&wrong.site]);

    // A at each step of its install, then B at its trial (twice: the second start of A
    // finishes the install without the hook mattering).
    killed.supervise(&["download", "verify", "unpack", "switch", "trial", "trial"]);
    for agent in [
        &mut healthy,
        &mut unhealthy,
        &mut crashing,
        &mut forged,
        &mut corrupted,
        &mut old,
        &mut wrong,
    ] {
        agent.supervise(&[]);
    }
    let devices: Vec<String> = [
        &healthy, &unhealthy, &crashing, &killed, &forged, &corrupted, &old, &wrong,
    ]
    .iter()
    .map(|a| a.device())
    .collect();
    let [healthy_id, unhealthy_id, crashing_id, killed_id, forged_id, corrupted_id, old_id, wrong_id] =
        <[String; 8]>::try_from(devices).unwrap();
    println!(
        "agents enrolled after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Refusals: each reported with its reason, and the running release keeps working (the
    // same process, A still current, nothing installed, heartbeats still arriving).
    for (agent, device, release, why) in [
        (&forged, &forged_id, &good, "signature"),
        (&corrupted, &corrupted_id, &corrupt, "SHA-256"),
        (&old, &old_id, &older, "does not go up"),
        (&wrong, &wrong_id, &foreign, "is for"),
    ] {
        let mut reason = None;
        wait_for(
            &format!("{} to refuse {release}", agent.name),
            || {
                reason = reason_of(&platform.release_report(release)["refusals"], device);
                reason.is_some()
            },
            || platform.release_report(release).to_string(),
        );
        let reason = reason.unwrap_or_default();
        assert!(reason.contains(why), "{}: {reason}", agent.name);
        let (_, refused_at) = platform.last_heartbeat(device);
        wait_for(
            &format!("{} to keep sending heartbeats", agent.name),
            || platform.last_heartbeat(device).1 > refused_at,
            || format!("{:?}", platform.last_heartbeat(device)),
        );
        assert_eq!(platform.last_heartbeat(device).0["version"], VERSION);
        let starts = agent.starts();
        assert_eq!(starts.len(), 1, "{}: {starts:?}", agent.name);
        assert!(starts[0].exit.is_none(), "{}: {starts:?}", agent.name);
        assert_eq!(agent.current(), format!("releases/{VERSION}"));
        assert_eq!(agent.releases(), [VERSION]);
        let parts = std::fs::read_dir(agent.dir.join("state/update"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(parts, 0, "{}: a refused download is deleted", agent.name);
        println!("{}: refused ({reason})", agent.name);
    }

    // The good release: installed, on trial, healthy; central counts it.
    wait_for(
        "the good release to pass its trial",
        || {
            platform.last_heartbeat(&healthy_id).0["version"] == B_VERSION
                && !healthy.install().join("trial.json").exists()
        },
        || {
            format!(
                "{:?} {:?}",
                platform.last_heartbeat(&healthy_id),
                healthy.starts()
            )
        },
    );
    assert_eq!(healthy.current(), format!("releases/{B_VERSION}"));
    let starts = healthy.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(
        starts[0].exit.map(|s| s.code()),
        Some(Some(0)),
        "A exits to restart"
    );
    assert_eq!(starts[1].release, format!("releases/{B_VERSION}"));
    println!(
        "healthy: on {B_VERSION} after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The failing releases roll back on their own, and central sees why.
    for (agent, device, why) in [
        (&unhealthy, &unhealthy_id, "health check"),
        (&crashing, &crashing_id, "starts"),
    ] {
        let mut reason = None;
        wait_for(
            &format!("{} to roll back", agent.name),
            || {
                reason = reason_of(&platform.release_report(&good)["rollbacks"], device);
                reason.is_some()
            },
            || format!("{} {:?}", platform.release_report(&good), agent.starts()),
        );
        let reason = reason.unwrap_or_default();
        assert!(reason.contains(why), "{}: {reason}", agent.name);
        assert_eq!(agent.current(), format!("releases/{VERSION}"));
        wait_for(
            &format!("{} to run A again", agent.name),
            || platform.last_heartbeat(device).0["version"] == VERSION,
            || format!("{:?}", platform.last_heartbeat(device)),
        );
        println!("{}: rolled back ({reason})", agent.name);
    }
    let crashes = crashing
        .starts()
        .iter()
        .filter(|s| s.exit.and_then(|e| e.code()) == Some(101))
        .count();
    assert_eq!(crashes, 3, "{:?}", crashing.starts());

    // Aborted at every step, the agent always came back up on a working release and ends on B.
    wait_for(
        "the agent killed at every step to pass its trial on B",
        || {
            platform.last_heartbeat(&killed_id).0["version"] == B_VERSION
                && !killed.install().join("trial.json").exists()
        },
        || format!("{:?}", killed.starts()),
    );
    let starts = killed.starts();
    let log = killed.log();
    for step in ["download", "verify", "unpack", "switch", "trial"] {
        assert!(
            log.contains(&format!("SKOLEBRO_TEST_ABORT_AT={step}: aborting")),
            "no abort at {step}"
        );
    }
    assert!(
        log.contains("continuing the download"),
        "the download resumed"
    );
    assert_eq!(
        starts.iter().filter(|s| aborted(s)).count(),
        5,
        "{starts:?}"
    );
    for start in &starts {
        assert!(
            start.release == format!("releases/{VERSION}")
                || start.release == format!("releases/{B_VERSION}"),
            "{starts:?}"
        );
    }
    assert_eq!(killed.current(), format!("releases/{B_VERSION}"));

    // Central's counts for B: five devices offered it, one refused it; two kept it, two
    // rolled it back.
    let expected = [
        ("offered", 5),
        ("downloaded", 4),
        ("installed", 4),
        ("healthy", 2),
        ("rolled_back", 2),
    ];
    wait_for(
        "central's counts of the good release",
        || {
            let counts = &platform.release_report(&good)["counts"];
            expected.iter().all(|(what, n)| counts[what] == *n)
        },
        || platform.release_report(&good).to_string(),
    );
    for agent in [&healthy, &killed] {
        assert_eq!(agent.releases(), [VERSION, B_VERSION], "{}", agent.name);
    }
    for (who, text) in [
        ("agent", healthy.log() + &killed.log()),
        (
            "central",
            std::fs::read_to_string(platform.path.join("central.log")).unwrap_or_default(),
        ),
    ] {
        assert!(
            !text.contains("BEGIN PRIVATE KEY"),
            "the {who} log holds a key"
        );
    }
    println!("done after {:.1} s", started.elapsed().as_secs_f64());
}
