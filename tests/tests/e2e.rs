//! End to end with real processes: the built `skolebro-central` and `skolebro-agent`
//! binaries, started as child processes on loopback, each test in its own temp folder with a
//! fresh dev PKI, keys, `central.toml` (SQLite) and `agent.toml`. Exports are dropped into
//! the agent's drop folder the way a SAS should (written beside it, renamed in), and
//! central's state is read back through its operator listener (plain HTTP on loopback). The
//! agent and central are SIGKILLed at random moments to show that the outbox, the chain and
//! the store's transactions make delivery exactly-once however the processes die.
//!
//! The binaries are built once per test run and the tests run one at a time (see
//! [`skolebro_tests::harness`]). Every wait polls with a deadline; nothing relies on a
//! fixed sleep. When a test fails, its folder is kept and the processes' logs are printed;
//! `SKOLEBRO_E2E_KEEP=1` keeps the folders of passing tests too, `SKOLEBRO_E2E_SEED=n`
//! repeats a run's random choices.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use skolebro_agent::config::AgentConfig;
use skolebro_agent::outbox::{MemStorage, Outbox};
use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
use skolebro_protocol::{DeviceId, Roster, SiteId};
use skolebro_provisioning::pki::{write_private_key, DevPki, Validity};
use skolebro_tests::expected::{counts_of, same};
use skolebro_tests::harness::{
    self, binaries, one_at_a_time, print_log_tail, two_free_ports, unix_ms_now, Process, PATIENCE,
    POLL,
};
use skolebro_tests::rostergen::{Churn, Generated, Rng};

const DEVICE: &str = "e2e-pi";
const SITE: &str = "e2e-site";

/// A seed from the clock, printed so a failing run can be repeated with `SKOLEBRO_E2E_SEED`.
fn seed() -> u64 {
    let seed = std::env::var("SKOLEBRO_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| unix_ms_now() as u64);
    println!("seed {seed} (repeat with SKOLEBRO_E2E_SEED={seed})");
    seed
}

/// An export as the bytes of an elevliste.
fn elevliste(generated: &Generated) -> Vec<u8> {
    let mut bytes = Vec::new();
    generated
        .write_elevliste(&mut bytes, false)
        .expect("writing to memory");
    bytes
}

// ---------------------------------------------------------------------------------------------
// One site: central and an agent in a temp folder

/// A temp folder with a dev PKI, keys, `central.toml` and `agent.toml` for one device of one
/// site, the device registered, and the processes started in it.
struct Site {
    /// `None` once kept for a failed test.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    admin: SocketAddr,
    central: Option<Process>,
    agent: Option<Process>,
}

impl Site {
    fn new() -> Site {
        let binaries = binaries();
        let dir = tempfile::Builder::new()
            .prefix("skolebro-e2e-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_owned();
        let d = path.as_path();

        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).expect("dev PKI");
        pki.write_to(d).expect("writing the dev PKI");
        let device = DeviceId::new(DEVICE).unwrap();
        let site = SiteId::new(SITE).unwrap();
        let credentials = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .expect("device certificate");
        std::fs::write(d.join("device.pem"), &credentials.cert_pem).unwrap();
        write_private_key(&d.join("device.key"), &credentials.key_pem).unwrap();

        let signing_key = DeviceSigningKey::generate().expect("signing key");
        write_private_key(&d.join("signing.key"), &hex::encode(signing_key.to_bytes())).unwrap();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("randomness");
        write_private_key(&d.join("site.secret"), &hex::encode(secret)).unwrap();
        let sealing_key = SealingPrivateKey::generate().expect("sealing key");
        write_private_key(&d.join("sealing.key"), &hex::encode(sealing_key.to_bytes())).unwrap();
        // Central seals records at rest under this key-encryption key, as provisioned.
        let mut records_kek = [0u8; 32];
        getrandom::fill(&mut records_kek).expect("randomness");
        write_private_key(&d.join("records.kek"), &hex::encode(records_kek)).unwrap();

        let (device_port, admin_port) = two_free_ports();
        std::fs::write(
            d.join("central.toml"),
            format!(
                r#"listen = "127.0.0.1:{device_port}"
admin_listen = "127.0.0.1:{admin_port}"
sealing_key = "sealing.key"

[tls]
cert = "{cert}"
key = "{key}"
device_ca = "{device_ca}"

[privacy]
key_file = "records.kek"

[store]
kind = "sqlite"
path = "central.db"
"#,
                cert = DevPki::SERVER_CERT,
                key = DevPki::SERVER_KEY,
                device_ca = DevPki::DEVICE_CA_CERT,
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("agent.toml"),
            format!(
                r#"state_dir = "state"
drop_dir = "drop"
after_ingest = "delete"
settle_ms = 100
rescan_seconds = 1
heartbeat_seconds = 1
panel = "none"

[central]
url = "https://127.0.0.1:{device_port}"
ca = "{central_ca}"
sealing_key = "{sealing}"

[identity]
device = "{DEVICE}"
site = "{SITE}"
cert = "device.pem"
key = "device.key"
signing_key = "signing.key"
site_secret = "site.secret"

[uplink]
backoff_initial_ms = 100
backoff_max_ms = 1000
"#,
                central_ca = DevPki::CENTRAL_CA_CERT,
                sealing = hex::encode(sealing_key.public_key().to_bytes()),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("drop")).unwrap();

        let output = Command::new(&binaries.central)
            .current_dir(d)
            .arg("register-device")
            .arg("--config")
            .arg(d.join("central.toml"))
            .args(["--device", DEVICE, "--site", SITE])
            .args([
                "--verifying-key",
                &hex::encode(signing_key.verifying_key().to_bytes()),
            ])
            .args(["--site-secret", &hex::encode(secret)])
            .output()
            .expect("running skolebro-central register-device");
        assert!(
            output.status.success(),
            "register-device failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        Site {
            dir: Some(dir),
            path,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            central: None,
            agent: None,
        }
    }

    /// Registers the schools `generated` writes with the site, with `skolebro-central site
    /// register` as operations would: central refuses a batch naming any other school.
    fn register_schools(&self, generated: &Generated) {
        let d = self.dir();
        let mut command = Command::new(&binaries().central);
        command
            .current_dir(d)
            .args(["site", "register", "--config"])
            .arg(d.join("central.toml"))
            .args(["--site", SITE]);
        for school in generated.registration() {
            command.arg("--school").arg(school.to_string());
        }
        let output = command
            .output()
            .expect("running skolebro-central site register");
        assert!(
            output.status.success(),
            "site register failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn dir(&self) -> &Path {
        &self.path
    }

    fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// Starts `skolebro-central serve` and waits until its operator listener answers.
    fn start_central(&mut self) {
        assert!(self.central.is_none(), "central is already running");
        self.central = Some(harness::start_central(
            self.dir(),
            &self.dir().join("central.toml"),
            self.admin,
        ));
    }

    fn kill_central(&mut self) {
        if let Some(mut central) = self.central.take() {
            central.kill();
        }
    }

    /// Starts `skolebro-agent run` and waits until it has opened its state folder (its
    /// `status.json` names its pid).
    fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent is already running");
        let mut command = Command::new(&binaries().agent);
        command
            .current_dir(self.dir())
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(self.dir().join("agent.toml"))
            .arg("run");
        let agent = Process::spawn(&mut command, &self.dir().join("agent.log"));
        let pid = u64::from(agent.pid());
        self.agent = Some(agent);
        self.wait_for("the agent to start", |site| {
            site.status_file()
                .is_some_and(|s| s["pid"].as_u64() == Some(pid))
        });
    }

    fn kill_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            agent.kill();
        }
    }

    /// Writes the export beside the drop folder and renames it in, as a SAS should.
    fn drop_export(&self, name: &str, bytes: &[u8]) {
        let staging = self.dir().join(format!(".{name}.part"));
        std::fs::write(&staging, bytes).unwrap();
        std::fs::rename(&staging, self.dir().join("drop").join(name)).unwrap();
    }

    /// The agent's `status.json`, if there is a readable one.
    fn status_file(&self) -> Option<Value> {
        let bytes = std::fs::read(self.state_dir().join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `skolebro-agent status --json`: status, chain (from the checkpoint) and outbox.
    fn agent_status(&self) -> Value {
        let output = Command::new(&binaries().agent)
            .current_dir(self.dir())
            .arg("--config")
            .arg(self.dir().join("agent.toml"))
            .args(["status", "--json"])
            .output()
            .expect("running skolebro-agent status");
        let status: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        // The exit code says the state (holding, unreachable, ...), as `exit_code` does.
        assert_eq!(
            output.status.code().map(i64::from),
            status["exit_code"].as_i64(),
            "{status}"
        );
        status
    }

    fn get_json(&self, path: &str) -> Option<Value> {
        harness::get_json(self.admin, path)
    }

    fn roster(&self, query: &str) -> Roster {
        harness::roster(self.admin, SITE, query)
    }

    /// Central's chain head for the device: the seq it expects next.
    fn central_next_seq(&self) -> Option<u64> {
        let devices = self.get_json("/admin/devices")?;
        devices["devices"]
            .as_array()?
            .iter()
            .find(|d| d["device"] == DEVICE)?["chain_head"]["next_seq"]
            .as_u64()
    }

    /// Waits until central's current roster equals `expected`. Counts first (cheap), the
    /// whole roster once they match.
    fn wait_until_central_holds(&mut self, expected: &Roster, what: &str) {
        let counts = counts_of(expected);
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < PATIENCE {
            self.check_processes();
            if harness::central_holds(self.admin, SITE, expected) == Some(true) {
                println!(
                    "{what}: central holds it after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            if let Some(seen) = self.get_json(&format!("/v1/sites/{SITE}/counts")) {
                last = seen;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "{what}: central does not hold the export after {PATIENCE:?}: it has {last}, the \
             export {counts}; the agent says {}",
            self.status_file().unwrap_or_default()
        );
    }

    /// Polls `done` until it holds, failing after [`PATIENCE`] or if a process died.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Site) -> bool) {
        let started = Instant::now();
        loop {
            if done(self) {
                return;
            }
            self.check_processes();
            assert!(
                started.elapsed() < PATIENCE,
                "timed out after {PATIENCE:?} waiting for {what}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// A process that was started and not killed must still be running.
    fn check_processes(&mut self) {
        if let Some(central) = &mut self.central {
            assert!(central.is_running(), "central exited on its own");
        }
        if let Some(agent) = &mut self.agent {
            assert!(agent.is_running(), "the agent exited on its own");
        }
    }

    /// Central's chain head equals the agent's checkpoint once the outbox is empty: every
    /// batch the agent sealed was applied, none twice (central would have acked a replay
    /// without moving), none skipped (central would have answered with a gap).
    fn wait_until_chains_agree(&mut self) {
        let started = Instant::now();
        loop {
            let status = self.agent_status();
            let central = self.central_next_seq();
            let agent = status["chain"]["next_seq"].as_u64();
            if let Some(next) = agent.filter(|_| status["outbox"]["depth"] == 0) {
                if central == Some(next) {
                    println!("chain heads agree: next seq {next}");
                    return;
                }
            }
            self.check_processes();
            assert!(
                started.elapsed() < PATIENCE,
                "central's chain head (next seq {central:?}) and the agent's ({status}) do not \
                 agree"
            );
            std::thread::sleep(POLL);
        }
    }

    /// How often central's store recorded each of the device's seqs as applied: `apply`
    /// writes one `transfers` row per batch in the transaction that applies it, so a batch
    /// applied twice would show as two rows. Read from the database file (WAL readers see
    /// what is committed and do not block central).
    fn applied_per_seq(&self) -> BTreeMap<u64, u64> {
        let db = rusqlite::Connection::open(self.dir().join("central.db"))
            .expect("central's database opens");
        db.busy_timeout(PATIENCE).expect("a busy timeout");
        let mut query = db
            .prepare("SELECT seq, COUNT(*) FROM transfers WHERE device = ?1 GROUP BY seq")
            .expect("the transfers query");
        let rows = query
            .query_map([DEVICE], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
            .expect("the transfers are read");
        rows.map(|row| {
            let (seq, count) = row.expect("a transfers row");
            (
                u64::try_from(seq).expect("a seq"),
                u64::try_from(count).expect("a count"),
            )
        })
        .collect()
    }

    /// Exactly-once on the store's facts: the seqs central applied are 1, 2, … with no gap,
    /// each applied once, and they include every seq up to `acked` (central acks only what
    /// it committed). Returns the highest seq applied.
    fn assert_applied_once(&self, acked: u64, what: &str) -> u64 {
        let applied = self.applied_per_seq();
        let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "{what}: seqs applied more than once: {twice:?}"
        );
        let highest = applied.keys().next_back().copied().unwrap_or(0);
        assert_eq!(
            applied.keys().copied().collect::<Vec<_>>(),
            (1..=highest).collect::<Vec<_>>(),
            "{what}: central applied the seqs in order, without a gap"
        );
        assert!(
            highest >= acked,
            "{what}: the agent holds an ack for seq {acked}, central applied only up to {highest}"
        );
        highest
    }

    /// The highest seq the agent's outbox on disk records as acknowledged, read the way
    /// `skolebro-agent outbox` reads it: from a copy, leaving the files as they are.
    fn agent_acked(&self) -> u64 {
        let config = AgentConfig::load(&self.dir().join("agent.toml")).expect("agent.toml");
        let copy = MemStorage::new();
        let dir = self.state_dir().join("outbox");
        for entry in std::fs::read_dir(&dir)
            .expect("the outbox folder")
            .flatten()
        {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let bytes = std::fs::read(entry.path()).expect("an outbox file");
                copy.set_raw(&entry.file_name().to_string_lossy(), bytes);
            }
        }
        let (outbox, _) =
            Outbox::open(copy, config.outbox.outbox_config()).expect("the outbox opens");
        outbox.ack_seq()
    }

    /// Central's log so far, over all its runs.
    fn central_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("central.log")).unwrap_or_default()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill_agent();
        self.kill_central();
        let keep = std::env::var_os("SKOLEBRO_E2E_KEEP").is_some();
        if keep && !std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                println!("the test folder is kept: {}", dir.keep().display());
            }
        }
        if std::thread::panicking() {
            for log in ["central.log", "agent.log"] {
                print_log_tail(self.dir(), log);
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("----- the test folder is kept: {}", dir.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn central_equals_each_export_and_keeps_the_old_versions() {
    let _one = one_at_a_time();
    let mut site = Site::new();
    site.start_central();
    site.start_agent();

    let v1 = Generated::new(300, 11);
    site.register_schools(&v1);
    let v1_bytes = elevliste(&v1);
    let v1_roster = v1.truth();
    site.drop_export("elevliste-1.csv", &v1_bytes);
    site.wait_until_central_holds(&v1_roster, "export 1");
    let between = unix_ms_now();

    let v2 = v1.evolve(
        Churn {
            leave: 0.05,
            arrive: 0.05,
            rename: 0.05,
            move_class: 0.05,
        },
        12,
    );
    let v2_bytes = elevliste(&v2);
    let v2_roster = v2.truth();
    assert!(
        !same(&v1_roster, &v2_roster),
        "the second export changes something"
    );
    // Central stamps versions with its own clock in milliseconds: make sure export 2 cannot
    // land in the millisecond `between` names.
    while unix_ms_now() <= between {
        std::thread::sleep(Duration::from_millis(1));
    }
    site.drop_export("elevliste-2.csv", &v2_bytes);
    site.wait_until_central_holds(&v2_roster, "export 2");

    let then = site.roster(&format!("?as_of={between}"));
    assert!(
        same(&then, &v1_roster),
        "the roster as of between the exports is export 1: {} vs {}",
        counts_of(&then),
        counts_of(&v1_roster)
    );
    let now = site.roster(&format!("?as_of={}", unix_ms_now()));
    assert!(same(&now, &v2_roster), "the roster as of now is export 2");
    assert!(
        !site.dir().join("drop/elevliste-2.csv").exists(),
        "the export was removed once sealed"
    );
    site.wait_until_chains_agree();
}

#[test]
fn an_agent_killed_at_random_moments_still_converges() {
    let _one = one_at_a_time();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut site = Site::new();
    site.start_central();
    site.start_agent();

    let mut generated = Generated::new(400, seed);
    site.register_schools(&generated);
    let first = elevliste(&generated);
    let first_roster = generated.truth();
    site.drop_export("elevliste-000.csv", &first);
    site.wait_until_central_holds(&first_roster, "the first export");

    let mut last_roster = first_roster;
    let mut last = (String::new(), Vec::new());
    let mut acked = 0;
    for round in 1..=20u64 {
        // Now and then two exports arrive before the agent gets to either.
        let exports = if rng.below(4) == 0 { 2 } else { 1 };
        for n in 0..exports {
            generated = generated.evolve(Churn::default(), seed ^ (round << 8 | n));
            let name = format!("elevliste-{round:03}-{n}.csv");
            let bytes = elevliste(&generated);
            last_roster = generated.truth();
            site.drop_export(&name, &bytes);
            last = (name, bytes);
        }
        let delay = Duration::from_millis(rng.below(301));
        std::thread::sleep(delay);
        site.kill_agent();
        // Round by round: an ack the outbox recorded is never lost by a kill, and every
        // acked batch is in central's store exactly once, with nothing applied twice.
        let now_acked = site.agent_acked();
        assert!(
            now_acked >= acked,
            "round {round}: the outbox's ack went back from seq {acked} to {now_acked}"
        );
        acked = now_acked;
        let applied = site.assert_applied_once(acked, &format!("round {round}"));
        println!(
            "round {round}: {exports} export(s), SIGKILL after {delay:?}: acked up to seq \
             {acked}, central applied up to seq {applied}"
        );
        site.start_agent();
    }

    // A kill while the agent read the last export sets that file aside for good (the
    // poison-pill rule: a crash while reading never repeats); the school exports again.
    let (name, bytes) = &last;
    let set_aside = site.dir().join("drop").join("rejected").join(name);
    site.wait_for("the last export to be taken in or set aside", |site| {
        set_aside.exists() || !site.dir().join("drop").join(name).exists()
    });
    if set_aside.exists() {
        println!("the last export was set aside after a kill while reading it; exported again");
        site.drop_export(&format!("again-{name}"), bytes);
    }
    site.wait_until_central_holds(&last_roster, "the last export");
    site.wait_until_chains_agree();
    let next = site.central_next_seq().expect("central's chain head");
    let applied = site.assert_applied_once(next - 1, "at the end");
    assert_eq!(
        applied,
        next - 1,
        "central applied every seq the chain names"
    );
}

#[test]
fn the_agent_converges_after_central_was_down() {
    let _one = one_at_a_time();
    let mut site = Site::new();
    site.start_agent();

    let generated = Generated::new(300, 31);
    site.register_schools(&generated);
    let export = elevliste(&generated);
    let roster = generated.truth();
    site.drop_export("elevliste.csv", &export);
    site.wait_for("the agent to find central unreachable", |site| {
        site.status_file()
            .is_some_and(|s| s["state"] == "central_unreachable")
    });
    let status = site.status_file().unwrap_or_default();
    assert_eq!(status["outbox_depth"], 1, "the batch waits in the outbox");

    site.start_central();
    site.wait_until_central_holds(&roster, "the export sealed while central was down");
    site.wait_until_chains_agree();
}

#[test]
fn central_restarted_mid_apply_converges() {
    let _one = one_at_a_time();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut site = Site::new();
    site.start_central();
    site.start_agent();

    let generated = Generated::new(20_000, seed);
    site.register_schools(&generated);
    let export = elevliste(&generated);
    let roster = generated.truth();
    site.drop_export("elevliste.csv", &export);

    // First kill: while the batch travels. Once it is in the outbox the uplink sends it at
    // once.
    site.wait_for("the agent to seal the export", |site| {
        site.status_file().is_some_and(|s| {
            s["outbox_depth"].as_u64().is_some_and(|depth| depth > 0)
                || !s["last_ack_seq"].is_null()
        })
    });
    let delay = Duration::from_millis(rng.below(201));
    std::thread::sleep(delay);
    site.kill_central();
    println!(
        "central SIGKILLed {delay:?} after the batch was sealed; it had applied it: {}",
        site.central_log().contains("batch applied")
    );
    site.start_central();

    // Second kill: as soon as central writes to its database (the SQLite WAL grows), which
    // is in the middle of applying or committing the batch, unless the ack beat the poll.
    let wal = site.dir().join("central.db-wal");
    let signature = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let before = signature(&wal);
    let started = Instant::now();
    let writing = loop {
        if signature(&wal) != before {
            break true;
        }
        if site
            .status_file()
            .is_some_and(|s| !s["last_ack_seq"].is_null())
        {
            break false;
        }
        site.check_processes();
        assert!(
            started.elapsed() < PATIENCE,
            "central neither wrote nor acked the batch"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    site.kill_central();
    println!(
        "central SIGKILLed {} (it had logged the batch as applied: {})",
        if writing {
            "while writing to its database"
        } else {
            "after the agent had its ack"
        },
        site.central_log().contains("batch applied")
    );

    site.start_central();
    site.wait_until_central_holds(&roster, "the big export");
    site.wait_until_chains_agree();
    // The export's batches (a large export goes in several) are each in the store once,
    // however often they were sent and central killed.
    let next = site.central_next_seq().expect("central's chain head");
    let applied = site.assert_applied_once(next - 1, "after the restarts");
    assert_eq!(
        applied,
        next - 1,
        "central applied every seq the chain names"
    );
    println!("central applied seqs 1 to {applied}, each once");
    let log = site.central_log();
    println!(
        "over its three runs central acked a replay {} time(s)",
        log.matches("already applied").count()
    );
}
