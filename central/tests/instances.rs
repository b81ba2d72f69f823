//! Central as more than one process, or one process started twice: everything an operator or
//! a device can observe lives in the store. Real `skolebro-central serve` processes with mutual
//! TLS: a restart keeps the last heartbeat (with its deviation groups) and a queued command,
//! which the next heartbeat then gets; and two centrals on one PostgreSQL schema apply a
//! batch raced to both exactly once, keep the chain head right, and share the fleet view
//! and the sign-in lock; and a records key rotated from the CLI while `serve` runs is
//! followed by it, the rows are resealed in its background and the old key retires.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, Entity, EntityDelta, Header, Kind, Payload,
    Record, SealingPrivateKey, SiteId, SiteSecret,
};
use skolebro_provisioning::{DevPki, Validity};

use common::{free_port, student};

const BIN: &str = env!("CARGO_BIN_EXE_skolebro-central");

/// How long a process may take to start or stop before the test gives up.
const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// The test database, as the store's own tests reach it; `SKOLEBRO_TEST_POSTGRES` overrides.
const DEFAULT_POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

fn postgres_config() -> String {
    std::env::var("SKOLEBRO_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// One central's configuration: its ports and where its store is.
struct Instance {
    config: PathBuf,
    device_port: u16,
    admin_port: u16,
    ui_port: u16,
    log: PathBuf,
}

/// The folder a test's centrals share: PKI, sealing key, one configuration per instance.
struct Setup {
    dir: tempfile::TempDir,
    pki: DevPki,
    sealing: SealingPrivateKey,
    device: DeviceId,
    site: SiteId,
    signing: DeviceSigningKey,
    secret: SiteSecret,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let pki = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).expect("a PKI");
        pki.write_to(&dir.path().join("pki"))
            .expect("the PKI is written");
        let sealing = SealingPrivateKey::from_bytes([7; 32]);
        std::fs::write(
            dir.path().join("sealing.key"),
            format!("{}\n", hex::encode(sealing.to_bytes())),
        )
        .expect("the sealing key is written");
        Setup {
            dir,
            pki,
            sealing,
            device: DeviceId::new("pi-46505").expect("a device id"),
            site: SiteId::new("skole-46505").expect("a site id"),
            signing: DeviceSigningKey::from_bytes([0x31; 32]),
            secret: SiteSecret::from_bytes([0xa1; 32]),
        }
    }

    /// Writes the configuration of instance `name` with `store` as its `[store]` table body.
    fn instance(&self, name: &str, store: &str) -> Instance {
        let (device_port, admin_port, ui_port) = (free_port(), free_port(), free_port());
        let config = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{device_port}\"\n\
                 admin_listen = \"127.0.0.1:{admin_port}\"\n\
                 ui_listen = \"127.0.0.1:{ui_port}\"\n\
                 sealing_key = \"sealing.key\"\n\
                 [tls]\n\
                 cert = \"pki/server.pem\"\n\
                 key = \"pki/server.key\"\n\
                 device_ca = \"pki/device-ca.pem\"\n\
                 [ui]\n\
                 secure_cookie = false\n\
                 [store]\n{store}"
            ),
        )
        .expect("the config is written");
        Instance {
            config,
            device_port,
            admin_port,
            ui_port,
            log: self.dir.path().join(format!("{name}.log")),
        }
    }

    /// Registers the test's device through `instance`'s store with the CLI.
    fn register_device(&self, instance: &Instance) {
        let registered = Command::new(BIN)
            .arg("register-device")
            .arg("--config")
            .arg(&instance.config)
            .args([
                "--device",
                self.device.as_str(),
                "--site",
                self.site.as_str(),
            ])
            .args([
                "--verifying-key",
                &hex::encode(self.signing.verifying_key().to_bytes()),
            ])
            .args(["--site-secret", &hex::encode(self.secret.as_bytes())])
            .output()
            .expect("register-device runs");
        assert!(
            registered.status.success(),
            "register-device failed: {}",
            String::from_utf8_lossy(&registered.stderr)
        );
    }

    /// The device's mutual-TLS client.
    fn device_client(&self) -> reqwest::Client {
        let credentials = self
            .pki
            .device_ca
            .issue_device(
                &self.device,
                &self.site,
                Validity::from_now(Duration::from_secs(600)),
            )
            .expect("a device certificate");
        skolebro_provisioning::tls::client(
            &credentials.cert_pem,
            &credentials.key_pem,
            self.pki.central_ca.cert_pem(),
        )
        .expect("a device client")
    }

    /// The envelope continuing `head` with one upserted pupil, and the head after it.
    fn batch(&self, head: &ChainHead, key: &str) -> (Vec<u8>, ChainHead) {
        let pupil = student(key, "Kari");
        let mut students = EntityDelta {
            upserts: vec![(self.secret.handle(Entity::Student, pupil.key()), pupil)],
            deletes: Vec::new(),
            renames: Vec::new(),
        };
        students.sort();
        let payload = Payload::Delta(Delta {
            students,
            ..Delta::default()
        });
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .unwrap_or(0);
        let header = Header::chained(
            head,
            self.device.clone(),
            self.site.clone(),
            created,
            Kind::Delta,
        );
        let envelope = seal(header, &payload, &self.sealing.public_key(), &self.signing)
            .expect("the envelope seals");
        (envelope.to_bytes(), envelope.next_head())
    }
}

/// A running `serve`, killed when dropped, so a failing test leaves no process behind.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(instance: &Instance) -> Running {
        let log = std::fs::File::create(&instance.log).expect("the log file");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&instance.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts");
        let mut running = Running {
            child,
            log: instance.log.clone(),
        };
        let deadline = Instant::now() + PROCESS_DEADLINE;
        for port in [instance.device_port, instance.admin_port, instance.ui_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = running.child.try_wait() {
                    panic!("serve exited with {status}: {}", running.log());
                }
                assert!(Instant::now() < deadline, "serve did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        running
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ends the process with SIGTERM, as systemd does, and waits (bounded) for a clean exit.
    fn stop(mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(terminated.success());
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the process is waited for") {
                assert!(
                    status.success(),
                    "serve did not exit cleanly: {}",
                    self.log()
                );
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A heartbeat of an agent holding a delta, with a deviation group.
fn holding_heartbeat() -> Value {
    json!({
        "version": "0.1.0",
        "state": "holding",
        "outbox_depth": 1,
        "deviations": {"errors": 2, "warnings": 0},
        "deviation_groups": [{
            "code": "invalid_national_id", "severity": "error", "count": 2,
            "rows": [{"file": "elevliste.csv", "at": "line 3", "detail": "01*******80"}]
        }],
        "held": {"id": "h1", "reasons": ["deletes 40% of students"],
                 "upserts": {}, "deletes": {"students": 400}}
    })
}

async fn post_heartbeat(client: &reqwest::Client, instance: &Instance) -> Value {
    let answer = client
        .post(format!(
            "https://127.0.0.1:{}/v1/heartbeat",
            instance.device_port
        ))
        .json(&holding_heartbeat())
        .send()
        .await
        .expect("the heartbeat is answered");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    answer.json().await.expect("a heartbeat answer")
}

/// A new operator API token made with `operator-token create` through `instance`'s store,
/// for a client named after the call: the instances share the store, and so its tokens.
fn operator_token(instance: &Instance) -> String {
    static CLIENTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let created = Command::new(BIN)
        .args(["operator-token", "create", "--config"])
        .arg(&instance.config)
        .arg(format!("instances-{}-{n}", std::process::id()))
        .output()
        .expect("operator-token create runs");
    assert!(
        created.status.success(),
        "operator-token create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    String::from_utf8(created.stdout)
        .expect("a token")
        .trim()
        .to_owned()
}

async fn queue_command(instance: &Instance, device: &DeviceId, command: Value) {
    let answer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/admin/devices/{device}/commands",
            instance.admin_port
        ))
        .bearer_auth(operator_token(instance))
        .json(&command)
        .send()
        .await
        .expect("the command is answered");
    assert_eq!(answer.status(), reqwest::StatusCode::ACCEPTED);
}

/// The device's entry in `GET /admin/devices`.
async fn device_entry(instance: &Instance, device: &DeviceId) -> Value {
    let devices: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/admin/devices",
            instance.admin_port
        ))
        .bearer_auth(operator_token(instance))
        .send()
        .await
        .expect("the devices are answered")
        .json()
        .await
        .expect("JSON");
    devices["devices"]
        .as_array()
        .and_then(|devices| {
            devices
                .iter()
                .find(|entry| entry["device"] == device.as_str())
        })
        .cloned()
        .expect("the device is listed")
}

#[tokio::test]
async fn a_restarted_central_still_shows_the_last_heartbeat_delivers_the_queued_command_and_keeps_the_sign_in_lock(
) {
    let setup = Setup::new();
    let instance = setup.instance("central", "kind = \"sqlite\"\npath = \"central.db\"\n");
    setup.register_device(&instance);
    let client = setup.device_client();

    let first = Running::start(&instance);
    let answer = post_heartbeat(&client, &instance).await;
    assert_eq!(answer["commands"], json!([]));
    queue_command(&instance, &setup.device, json!({"type": "resync"})).await;
    for _ in 0..4 {
        assert_eq!(
            failed_sign_in(&instance, "kari").await,
            reqwest::StatusCode::UNAUTHORIZED
        );
    }
    first.stop();

    let second = Running::start(&instance);
    let entry = device_entry(&instance, &setup.device).await;
    assert_eq!(entry["last_heartbeat"]["state"], "holding", "{entry}");
    assert_eq!(
        entry["last_heartbeat"]["deviation_groups"][0]["count"], 2,
        "{entry}"
    );
    assert_eq!(entry["last_heartbeat"]["held"]["id"], "h1", "{entry}");
    assert!(entry["last_heartbeat_unix_ms"].is_i64(), "{entry}");
    assert_eq!(entry["queued_commands"], json!([{"type": "resync"}]));
    assert_eq!(
        failed_sign_in(&instance, "kari").await,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        "the failures before the restart still count"
    );

    let answer = post_heartbeat(&client, &instance).await;
    assert_eq!(answer["commands"], json!([{"type": "resync"}]));
    let answer = post_heartbeat(&client, &instance).await;
    assert_eq!(answer["commands"], json!([]), "delivered once");
    let entry = device_entry(&instance, &setup.device).await;
    assert_eq!(entry["queued_commands"], json!([]));
    assert!(
        entry["commands"][0]["delivered_unix_ms"].is_i64(),
        "{entry}"
    );
    second.stop();
}

/// The status of a sign-in as `name` with a wrong password on `instance`'s web interface,
/// filled in as a browser would: the login page's cookie and CSRF field sent back.
async fn failed_sign_in(instance: &Instance, name: &str) -> reqwest::StatusCode {
    let base = format!("http://127.0.0.1:{}", instance.ui_port);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let form = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("the login page");
    let cookie = form
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.split(';').next()?.strip_prefix("skolebro_login="))
        .expect("a login cookie")
        .to_owned();
    let html = form.text().await.expect("the login page's text");
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = &html[at..at + 64];
    http.post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, format!("skolebro_login={cookie}"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!(
            "csrf={csrf}&name={name}&password=wrong-horse-battery"
        ))
        .send()
        .await
        .expect("the login answer")
        .status()
}

/// A PostgreSQL schema of the test's own, dropped afterwards.
async fn drop_schema(schema: &str) {
    let (client, connection) = tokio_postgres::connect(&postgres_config(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("the schema is dropped");
}

async fn count(schema: &str, table: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&postgres_config(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    client
        .query_one(&format!("SELECT COUNT(*) FROM {schema}.{table}"), &[])
        .await
        .expect("counted")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_centrals_on_one_postgres_apply_a_raced_batch_once_and_share_the_fleet_and_the_sign_in_lock(
) {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("system randomness");
    let schema = format!("skolebro_instances_{}", hex::encode(random));
    let store = format!(
        "kind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n",
        postgres_config()
    );
    let outcome = tokio::spawn(raced_batches(store, schema.clone())).await;
    drop_schema(&schema).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn raced_batches(store: String, schema: String) {
    const BATCHES: usize = 4;
    let setup = Setup::new();
    let (a, b) = (setup.instance("a", &store), setup.instance("b", &store));
    setup.register_device(&a);
    let (running_a, running_b) = (Running::start(&a), Running::start(&b));
    let client = setup.device_client();

    let mut head = ChainHead::genesis();
    for n in 0..BATCHES {
        let (envelope, next) = setup.batch(&head, &format!("s{n}"));
        let post = |instance: &Instance| {
            client
                .post(format!(
                    "https://127.0.0.1:{}/v1/batches",
                    instance.device_port
                ))
                .body(envelope.clone())
                .send()
        };
        let (to_a, to_b) = tokio::join!(post(&a), post(&b));
        let mut applied = 0;
        for answer in [to_a, to_b] {
            let answer = answer.expect("the batch is answered");
            assert_eq!(answer.status(), reqwest::StatusCode::OK);
            let ack: Value = answer.json().await.expect("an ack");
            assert_eq!(ack["ack"], n as u64 + 1);
            applied += usize::from(ack["applied"] == true);
        }
        assert_eq!(applied, 1, "batch {} applied by exactly one central", n + 1);
        head = next;
    }

    for instance in [&a, &b] {
        let entry = device_entry(instance, &setup.device).await;
        assert_eq!(entry["chain_head"]["next_seq"], BATCHES as u64 + 1);
        assert_eq!(entry["chain_head"]["prev"], hex::encode(head.prev));
        assert_eq!(entry["last_batch_seq"], BATCHES as u64);
    }
    assert_eq!(count(&schema, "transfers").await, BATCHES as i64);
    assert_eq!(count(&schema, "records").await, BATCHES as i64);

    // The fleet is one: a command queued on A goes out with a heartbeat to B, once.
    queue_command(&a, &setup.device, json!({"type": "resync"})).await;
    let answer = post_heartbeat(&client, &b).await;
    assert_eq!(answer["commands"], json!([{"type": "resync"}]));
    let answer = post_heartbeat(&client, &a).await;
    assert_eq!(answer["commands"], json!([]));
    let entry = device_entry(&a, &setup.device).await;
    assert_eq!(entry["last_heartbeat"]["state"], "holding");

    // The sign-in lock is one: failures on either central count together.
    let mut statuses = Vec::new();
    for instance in [&a, &b, &a, &b, &a, &b] {
        statuses.push(failed_sign_in(instance, "kari").await);
    }
    let unauthorized = reqwest::StatusCode::UNAUTHORIZED;
    let locked = reqwest::StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        statuses,
        [
            unauthorized,
            unauthorized,
            unauthorized,
            unauthorized,
            locked,
            locked
        ],
        "five failures in all lock the name on both"
    );

    running_a.stop();
    running_b.stop();
}

/// Runs `skolebro-central ARGS --config <instance's>` to the end; its stdout, or the test fails
/// with its stderr.
fn central_cli(instance: &Instance, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&instance.config)
        .output()
        .expect("skolebro-central runs");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Posts the next batch (one upserted pupil) to `instance` and checks that it applied.
async fn deliver(setup: &Setup, instance: &Instance, head: &mut ChainHead, key: &str) {
    let (envelope, next) = setup.batch(head, key);
    let answer = setup
        .device_client()
        .post(format!(
            "https://127.0.0.1:{}/v1/batches",
            instance.device_port
        ))
        .body(envelope)
        .send()
        .await
        .expect("the batch is answered");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let ack: Value = answer.json().await.expect("an ack");
    assert_eq!(ack["applied"], true, "{ack}");
    *head = next;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_key_rotated_while_central_serves_is_followed_and_the_old_key_then_retires() {
    const RESEALED_WITHIN: Duration = Duration::from_secs(60);
    let setup = Setup::new();
    let kek = setup.dir.path().join("records.kek");
    let made = Command::new(BIN)
        .args(["keys", "new-kek", "--out"])
        .arg(&kek)
        .output()
        .expect("keys new-kek runs");
    assert!(made.status.success(), "{made:?}");
    let instance = setup.instance(
        "central",
        "kind = \"sqlite\"\npath = \"central.db\"\n[privacy]\nkey_file = \"records.kek\"\n",
    );
    setup.register_device(&instance);
    let running = Running::start(&instance);
    let mut head = ChainHead::genesis();
    for n in 0..3 {
        deliver(&setup, &instance, &mut head, &format!("s{n}")).await;
    }

    let rotated = central_cli(&instance, &["keys", "rotate-dek", "--max-batches", "0"]);
    assert!(rotated.contains("records key 3 active"), "{rotated}");
    // Applied at once: perhaps still under the old key, until serve notices the rotation.
    deliver(&setup, &instance, &mut head, "s3").await;

    let deadline = Instant::now() + RESEALED_WITHIN;
    loop {
        let status = central_cli(&instance, &["keys", "status"]);
        if status.contains("rows to reseal: 0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not reseal within {RESEALED_WITHIN:?}: {status}\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        running.log().contains("a new records key is active"),
        "serve followed the rotation: {}",
        running.log()
    );
    // From now on serve seals under the new key: a new batch leaves nothing to reseal.
    deliver(&setup, &instance, &mut head, "s4").await;
    let status = central_cli(&instance, &["keys", "status"]);
    assert!(status.contains("rows to reseal: 0"), "{status}");
    assert!(status.contains("3\trecords\tactive"), "{status}");

    let retired = central_cli(&instance, &["keys", "retire", "--key-id", "1"]);
    assert!(retired.contains("retired records key 1"), "{retired}");

    let export: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/admin/sites/{}/export",
            instance.admin_port, setup.site
        ))
        .bearer_auth(operator_token(&instance))
        .send()
        .await
        .expect("the export is answered")
        .json()
        .await
        .expect("JSON");
    let history = export["files"]
        .as_array()
        .and_then(|files| files.iter().find(|file| file["name"] == "history.jsonl"))
        .and_then(|file| file["text"].as_str())
        .unwrap_or_else(|| panic!("no history.jsonl in {export}"));
    for n in 0..5 {
        assert!(history.contains(&format!("\"s{n}\"")), "s{n} in {history}");
    }
    assert!(!history.contains("~s"), "every row opened: {history}");
    running.stop();
}
