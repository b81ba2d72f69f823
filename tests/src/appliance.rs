//! An unattended Pi's quiet life, as real processes, for the idle test (`tests/idle.rs`) and
//! the idle benchmark (`skolebro-bench-idle`): a platform (`skolebro-provision init` and
//! `skolebro-central serve` on what it wrote), agents brought into each mode a Pi spends its
//! days in, and what `/proc` says an agent costs (CPU time, wake-ups, bytes written), which
//! is what heats a Pi in a cupboard and wears out its SD card.
//!
//! Everything runs on loopback in temp folders; the only export data is the repo's synthetic
//! sample and the synthetic roster generator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
use skolebro_protocol::{DeviceId, SiteId};
use skolebro_provisioning::pki::{write_private_key, DevPki, Validity};

use crate::harness::{self, binaries, two_free_ports, Process, PATIENCE, POLL};

/// The mode an agent idles in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[identity]` in `agent.toml`, no stick; its central is not there, so heartbeats fail.
    IdentityByConfig,
    /// Enrolled from a config stick, central up, nothing to send.
    EnrolledByStick,
    /// No identity: polling the stick roots.
    WaitingForStick,
    /// Enrolled from a stick, then central went away; an export waits in the outbox.
    CentralDown,
    /// Enrolled from a stick, holding a delta that deletes too much for review.
    HoldingDelta,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::IdentityByConfig,
        Mode::EnrolledByStick,
        Mode::WaitingForStick,
        Mode::CentralDown,
        Mode::HoldingDelta,
    ];

    /// A short name, for folders and tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::IdentityByConfig => "identity-by-config",
            Mode::EnrolledByStick => "enrolled-by-stick",
            Mode::WaitingForStick => "waiting-for-stick",
            Mode::CentralDown => "central-down",
            Mode::HoldingDelta => "holding-delta",
        }
    }
}

/// What `/proc` says a process has cost so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// User plus system CPU time of all its threads, dead ones included.
    pub cpu: Duration,
    /// Voluntary context switches of its live threads: how often it went to sleep, which is
    /// how often something woke it.
    pub wakeups: u64,
    /// Bytes it caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
    pub write_bytes: u64,
}

/// Why a process's cost could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not in the expected format")]
    Format { path: String },
}

fn read_proc(path: String) -> Result<String, CostError> {
    std::fs::read_to_string(&path).map_err(|source| CostError::Io { path, source })
}

/// Clock ticks per second, the unit of `utime` and `stime` (`getconf CLK_TCK`; 100 on every
/// Linux this runs on).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Reads what process `pid` has cost so far.
pub fn cost(pid: u32) -> Result<Cost, CostError> {
    let path = format!("/proc/{pid}/stat");
    let stat = read_proc(path.clone())?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    // Then come state (field 3) onwards; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (tick(14 - 3), tick(15 - 3)) else {
        return Err(CostError::Format { path });
    };
    let ticks = utime + stime;
    let per_second = clock_ticks();
    let cpu = Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second);

    let mut wakeups = 0;
    let tasks = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&tasks).map_err(|source| CostError::Io {
        path: tasks.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        wakeups += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }

    let path = format!("/proc/{pid}/io");
    let io = read_proc(path.clone())?;
    let write_bytes = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(CostError::Format { path })?;
    Ok(Cost {
        cpu,
        wakeups,
        write_bytes,
    })
}

/// The most resident memory process `pid` has held so far, in KiB (`VmHWM` of
/// `/proc/<pid>/status`): what a server must be sized for, which the current RSS after a
/// load has passed understates.
pub fn peak_rss_kib(pid: u32) -> Result<u64, CostError> {
    let path = format!("/proc/{pid}/status");
    read_proc(path.clone())?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(CostError::Format { path })
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// `skolebro-provision init` in `dir/keys` and central serving on it (log `dir/central.log`).
pub struct Platform {
    dir: PathBuf,
    device_port: u16,
    admin: SocketAddr,
    central: Option<Process>,
}

impl Platform {
    /// Makes the platform's keys in `dir/keys` and starts central on free loopback ports.
    pub fn start(dir: &Path) -> Platform {
        Platform::start_with(dir, "")
    }

    /// [`Platform::start`] with central also serving its consumer endpoints (OAuth2 and
    /// OneRoster) on a free loopback port, returned with the platform.
    pub fn start_serving_consumers(dir: &Path) -> (Platform, SocketAddr) {
        let (port, _) = two_free_ports();
        let consumers = SocketAddr::from(([127, 0, 0, 1], port));
        let platform = Platform::start_with(dir, &format!("consumer_listen = \"{consumers}\"\n"));
        (platform, consumers)
    }

    /// The admin listener (plain HTTP on loopback).
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Starts central with `top_level` (top-level `central.toml` keys) before what
    /// `skolebro-provision init` wrote.
    fn start_with(dir: &Path, top_level: &str) -> Platform {
        std::fs::create_dir_all(dir).expect("platform folder");
        let keys = dir.join("keys");
        let output = Command::new(&binaries().provision)
            .current_dir(dir)
            .args(["init", "--dir", path_str(&keys)])
            .output()
            .expect("running skolebro-provision init");
        assert!(
            output.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (device_port, admin_port) = two_free_ports();
        let config = keys.join("central.toml");
        let written = std::fs::read_to_string(&config).expect("init wrote central.toml");
        let moved = harness::on_ports(&written, device_port, admin_port);
        assert_ne!(
            moved, written,
            "init's central.toml has the documented ports"
        );
        std::fs::write(&config, format!("{top_level}{moved}")).expect("writing central.toml");
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        let central = harness::start_central(dir, &config, admin);
        Platform {
            dir: dir.to_owned(),
            device_port,
            admin,
            central: Some(central),
        }
    }

    /// The last lines of central's log, for a failed run.
    pub fn print_log_tail(&self) {
        harness::print_log_tail(&self.dir, "central.log");
    }

    /// Central's trusted stick key, for the agents' `stick_key`.
    pub fn stick_key(&self) -> PathBuf {
        self.dir.join("keys").join("stick.pub")
    }

    /// Kills central, as when its machine goes down.
    pub fn stop_central(&mut self) {
        if let Some(mut central) = self.central.take() {
            central.kill();
        }
    }

    /// `skolebro-provision stick` for `agent`: a fresh token, onto the agent's stick root.
    pub fn write_stick(&self, agent: &Agent) {
        self.write_stick_with(agent, &[]);
    }

    /// [`Platform::write_stick`] with more of `skolebro-provision stick`'s options (e.g. the
    /// drop share's).
    pub fn write_stick_with(&self, agent: &Agent, options: &[&str]) {
        let stick = agent.stick_root();
        std::fs::create_dir_all(&stick).expect("stick folder");
        let output = Command::new(&binaries().provision)
            .current_dir(&self.dir)
            .args(["stick", "--keys", path_str(&self.dir.join("keys"))])
            .args(["--out", path_str(&stick)])
            .args([
                "--fylke",
                "46",
                "--kommune",
                "4601",
                "--skolenummer",
                "12345",
            ])
            .args(["--name", "Testskulen"])
            // The school the sample export names, registered with the site besides its own.
            .args(["--school", "4601/46500=Fana skule"])
            .args([
                "--central-url",
                &format!("https://127.0.0.1:{}", self.device_port),
            ])
            .args(["--admin-url", &format!("http://{}", self.admin)])
            .arg("--admin-token-file")
            .arg(harness::admin_token_file(&self.dir))
            .args(["--drop-dir", path_str(&agent.drop_dir())])
            .args(options)
            .output()
            .expect("running skolebro-provision stick");
        assert!(
            output.status.success(),
            "stick failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// One agent in its own folder (`agent.toml`, `state/`, `drop/`, `media/`, `agent.log`).
pub struct Agent {
    dir: PathBuf,
    process: Option<Process>,
}

/// The `agent.toml` settings every agent here shares: a synced clock, no panel, exports
/// taken in quickly.
const COMMON_SETTINGS: &str = r#"state_dir = "state"
stick_roots = ["media"]
clock_synced_file = "synchronized"
panel = "none"
settle_ms = 100
"#;

/// How often an agent beats and rescans its drop folder.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub heartbeat_seconds: u64,
    pub rescan_seconds: u64,
}

impl Cadence {
    /// What `agent.toml` defaults to, as on a school's Pi.
    pub const PRODUCTION: Cadence = Cadence {
        heartbeat_seconds: 60,
        rescan_seconds: 30,
    };
    /// Six times as often as production, so a short idle period in a test holds several
    /// heartbeats and rescans.
    pub const BUSY: Cadence = Cadence {
        heartbeat_seconds: 10,
        rescan_seconds: 5,
    };
}

impl Agent {
    /// An agent in `dir` beating at `cadence`, with `settings` appended to the settings
    /// every mode shares (a synced clock, no panel, exports taken in quickly).
    pub fn new(dir: &Path, cadence: Cadence, settings: &str) -> Agent {
        for sub in ["media", "drop"] {
            std::fs::create_dir_all(dir.join(sub)).expect("agent folders");
        }
        std::fs::write(dir.join("synchronized"), "").expect("clock marker");
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                "{COMMON_SETTINGS}heartbeat_seconds = {}\nrescan_seconds = {}\n{settings}\n",
                cadence.heartbeat_seconds, cadence.rescan_seconds
            ),
        )
        .expect("writing agent.toml");
        Agent {
            dir: dir.to_owned(),
            process: None,
        }
    }

    /// An agent that trusts `platform`'s stick key and has no identity yet.
    pub fn for_sticks(dir: &Path, cadence: Cadence, platform: &Platform) -> Agent {
        Agent::new(
            dir,
            cadence,
            &format!("stick_key = \"{}\"", platform.stick_key().display()),
        )
    }

    /// An agent whose identity is in `agent.toml` (a dev PKI made here) and whose central
    /// listens on nothing. Its drop folder is [`Agent::drop_dir`], as a stick sets it for the
    /// others.
    pub fn by_config(dir: &Path, cadence: Cadence) -> Agent {
        std::fs::create_dir_all(dir).expect("agent folder");
        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).expect("dev PKI");
        pki.write_to(dir).expect("writing the dev PKI");
        let device = DeviceId::new("idle-pi").expect("device id");
        let site = SiteId::new("idle-site").expect("site id");
        let credentials = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .expect("device certificate");
        std::fs::write(dir.join("device.pem"), &credentials.cert_pem).expect("device.pem");
        write_private_key(&dir.join("device.key"), &credentials.key_pem).expect("device.key");
        let signing = DeviceSigningKey::generate().expect("signing key");
        write_private_key(&dir.join("signing.key"), &hex::encode(signing.to_bytes()))
            .expect("signing.key");
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("randomness");
        write_private_key(&dir.join("site.secret"), &hex::encode(secret)).expect("site.secret");
        let sealing = SealingPrivateKey::generate().expect("sealing key");
        let (dead_port, _) = two_free_ports();
        Agent::new(
            dir,
            cadence,
            &format!(
                r#"drop_dir = "drop"

[central]
url = "https://127.0.0.1:{dead_port}"
ca = "{ca}"
sealing_key = "{sealing}"

[identity]
device = "idle-pi"
site = "idle-site"
cert = "device.pem"
key = "device.key"
signing_key = "signing.key"
site_secret = "site.secret"
"#,
                ca = DevPki::CENTRAL_CA_CERT,
                sealing = hex::encode(sealing.public_key().to_bytes()),
            ),
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stick_root(&self) -> PathBuf {
        self.dir.join("media").join("STICK")
    }

    pub fn drop_dir(&self) -> PathBuf {
        self.dir.join("drop")
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Whether the agent was started and still runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::is_running)
    }

    /// Waits until the agent has exited on its own (it was started to crash); fails after
    /// [`PATIENCE`].
    pub fn wait_for_exit(&mut self, what: &str) {
        let started = Instant::now();
        while self.is_running() {
            if started.elapsed() > PATIENCE {
                self.print_log_tail();
                panic!("timed out after {PATIENCE:?} waiting for the agent to exit ({what})");
            }
            std::thread::sleep(POLL);
        }
        self.process = None;
    }

    /// `skolebro-agent run` on the system clock (log `agent.log`); waits until `status.json`
    /// names its pid.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// [`Agent::start`] with test variables set, such as `SKOLEBRO_TEST_ABORT_AT` (see
    /// `skolebro_agent::update::hooks`).
    pub fn start_with(&mut self, env: &[(&str, &str)]) {
        let mut command = Command::new(&binaries().agent);
        command
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .env_remove("SKOLEBRO_TEST_CLOCK")
            .env_remove("SKOLEBRO_TEST_ABORT_AT")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .arg("run");
        let process = Process::spawn(&mut command, &self.dir.join("agent.log"));
        let pid = u64::from(process.pid());
        self.process = Some(process);
        self.wait_for("the agent to start", |s| s["pid"].as_u64() == Some(pid));
    }

    /// The agent's `status.json`, if there is a readable one.
    pub fn status(&self) -> Option<Value> {
        let bytes = std::fs::read(self.dir.join("state").join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `skolebro-agent status --json`, as school IT's monitor reads it: `status.json` and
    /// what the CLI adds from the state folder (the outbox, the drop share's settings and
    /// last failure); bounded by [`PATIENCE`].
    pub fn status_command(&self) -> Value {
        let child = Command::new(&binaries().agent)
            .current_dir(&self.dir)
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running skolebro-agent status");
        let output = harness::wait_bounded(child, "skolebro-agent status");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// The site the agent enrolled for, from its status.
    pub fn site(&self) -> String {
        self.status().expect("status")["provisioning"]["site"]
            .as_str()
            .expect("an enrolled site")
            .to_owned()
    }

    /// Polls the status until `done` holds; the agent must keep running meanwhile.
    pub fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) {
        let started = Instant::now();
        loop {
            if self.status().is_some_and(|s| done(&s)) {
                return;
            }
            assert!(self.is_running(), "the agent exited on its own ({what})");
            assert!(
                started.elapsed() < PATIENCE,
                "timed out after {PATIENCE:?} waiting for {what}; the agent says {}",
                self.status().unwrap_or_default()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Writes an export beside the drop folder and renames it in, as a SAS should.
    pub fn drop_export(&self, name: &str, bytes: &[u8]) {
        let staging = self.dir.join(format!(".{name}.part"));
        std::fs::write(&staging, bytes).expect("staging the export");
        std::fs::rename(&staging, self.drop_dir().join(name)).expect("renaming the export in");
    }

    /// Waits until the agent has taken in everything in its drop folder and its outbox is
    /// empty (central holds it all).
    pub fn wait_until_delivered(&mut self, what: &str) {
        let drop_dir = self.drop_dir();
        self.wait_for(what, |s| {
            s["outbox_depth"] == 0
                && s["state"] == "healthy"
                && std::fs::read_dir(&drop_dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .all(|e| e.path().is_dir())
        });
    }

    /// The last lines of the agent's log, for a failed run.
    pub fn print_log_tail(&self) {
        harness::print_log_tail(&self.dir, "agent.log");
    }
}

/// The repo's synthetic sample export.
pub fn sample() -> Vec<u8> {
    let path = harness::workspace_root()
        .join("samples")
        .join("elevliste.csv");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every mode at once: two platforms (the second's central is killed once its agent has
/// enrolled) and one agent per mode, each settled in its mode when this returns.
pub struct Fleet {
    pub platforms: Vec<Platform>,
    pub agents: Vec<(Mode, Agent)>,
}

impl Fleet {
    /// Brings up an agent in each mode under `dir`, beating at `cadence`.
    pub fn start(dir: &Path, cadence: Cadence) -> Fleet {
        let platform = Platform::start(&dir.join("platform"));
        let doomed = Platform::start(&dir.join("doomed"));
        let mut agents = Vec::new();
        for mode in Mode::ALL {
            let home = dir.join(mode.name());
            let agent = match mode {
                Mode::IdentityByConfig => Agent::by_config(&home, cadence),
                Mode::CentralDown => {
                    let agent = Agent::for_sticks(&home, cadence, &doomed);
                    doomed.write_stick(&agent);
                    agent
                }
                Mode::EnrolledByStick | Mode::HoldingDelta => {
                    let agent = Agent::for_sticks(&home, cadence, &platform);
                    platform.write_stick(&agent);
                    agent
                }
                Mode::WaitingForStick => Agent::for_sticks(&home, cadence, &platform),
            };
            agents.push((mode, agent));
        }
        let mut fleet = Fleet {
            platforms: vec![platform, doomed],
            agents,
        };
        // Started together: the enrollments overlap.
        for (_, agent) in &mut fleet.agents {
            agent.start();
        }
        for (mode, agent) in &mut fleet.agents {
            settle(*mode, agent, &mut fleet.platforms[1]);
        }
        fleet
    }

    /// The agent idling in `mode`.
    pub fn agent(&mut self, mode: Mode) -> &mut Agent {
        let (_, agent) = self
            .agents
            .iter_mut()
            .find(|(m, _)| *m == mode)
            .expect("the fleet has every mode");
        agent
    }
}

impl Drop for Fleet {
    /// The processes die with the fleet (each [`Process`] kills its child); after a failure
    /// their logs are printed first.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for platform in &self.platforms {
            harness::print_log_tail(&platform.dir, "central.log");
        }
        for (_, agent) in &self.agents {
            agent.print_log_tail();
        }
    }
}

fn enrolled(status: &Value) -> bool {
    status["provisioning"]["device"].is_string() && status["state"] == "healthy"
}

/// Waits until `agent` is in `mode`, doing what the mode needs on the way.
fn settle(mode: Mode, agent: &mut Agent, doomed: &mut Platform) {
    match mode {
        Mode::WaitingForStick => {
            agent.wait_for("waiting for a stick", |s| s["state"] == "not_provisioned")
        }
        Mode::IdentityByConfig => {
            agent.wait_for("the data flow to run", |s| s["state"] == "healthy")
        }
        Mode::EnrolledByStick => {
            agent.wait_for("the agent to enroll", enrolled);
        }
        Mode::CentralDown => {
            agent.wait_for("the agent to enroll", enrolled);
            doomed.stop_central();
            // An export sealed while central is away waits in the outbox, retried with
            // backoff.
            agent.drop_export("elevliste.csv", &sample());
            agent.wait_for("central to be unreachable", |s| {
                s["unreachable_since_unix_ms"].is_u64() && s["outbox_depth"] == 1
            });
        }
        Mode::HoldingDelta => {
            agent.wait_for("the agent to enroll", enrolled);
            let full = sample();
            agent.drop_export("elevliste.csv", &full);
            agent.wait_until_delivered("the first export to reach central");
            // The header and the first 30 pupils: 90% of the school would be deleted.
            let text = String::from_utf8_lossy(&full).into_owned();
            let kept: Vec<&str> = text.lines().take(31).collect();
            agent.drop_export(
                "elevliste-2.csv",
                format!("{}\n", kept.join("\n")).as_bytes(),
            );
            agent.wait_for("the delta to be held", |s| s["state"] == "holding");
        }
    }
}
