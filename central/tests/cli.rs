//! The `skolebro-central` binary as operations run it: a configuration file with paths
//! relative to it, `register-device`, then `serve` until SIGTERM. One batch goes through the
//! real process, and its log is checked for the personal data it must never contain.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, Entity, EntityDelta, Gender, Header, Kind,
    Payload, Record, SealingPrivateKey, SiteId, SiteSecret, Student,
};
use skolebro_provisioning::{DevPki, Validity};

use common::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_skolebro-central");

fn write_config(dir: &Path, device_port: u16, admin_port: u16) {
    std::fs::write(
        dir.join("central.toml"),
        format!(
            "listen = \"127.0.0.1:{device_port}\"\n\
             admin_listen = \"127.0.0.1:{admin_port}\"\n\
             sealing_key = \"sealing.key\"\n\
             [tls]\n\
             cert = \"pki/server.pem\"\n\
             key = \"pki/server.key\"\n\
             device_ca = \"pki/device-ca.pem\"\n\
             [store]\n\
             kind = \"sqlite\"\n\
             path = \"central.db\"\n"
        ),
    )
    .expect("the config is written");
}

/// Waits until `port` accepts connections, or panics with the server's log.
fn wait_for_port(port: u16, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.try_wait() {
            let mut log = String::new();
            let _ = server.stderr.take().map(|mut e| e.read_to_string(&mut log));
            panic!("the server exited with {status}: {log}");
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn register_device_then_serve_applies_a_batch_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).unwrap();
    pki.write_to(&dir.path().join("pki")).unwrap();
    let sealing = SealingPrivateKey::from_bytes([7; 32]);
    std::fs::write(
        dir.path().join("sealing.key"),
        format!("{}\n", hex::encode(sealing.to_bytes())),
    )
    .unwrap();
    let (device_port, admin_port) = (free_port(), free_port());
    write_config(dir.path(), device_port, admin_port);
    let config = dir.path().join("central.toml");

    let device = DeviceId::new("pi-46505").unwrap();
    let site = SiteId::new("skole-46505").unwrap();
    let signing = DeviceSigningKey::from_bytes([0x31; 32]);
    let secret = SiteSecret::from_bytes([0xa1; 32]);
    let registered = Command::new(BIN)
        .arg("register-device")
        .arg("--config")
        .arg(&config)
        .args(["--device", device.as_str(), "--site", site.as_str()])
        .args([
            "--verifying-key",
            &hex::encode(signing.verifying_key().to_bytes()),
        ])
        .args(["--site-secret", &hex::encode(secret.as_bytes())])
        .output()
        .unwrap();
    assert!(
        registered.status.success(),
        "register-device failed: {}",
        String::from_utf8_lossy(&registered.stderr)
    );

    let mut server = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(device_port, &mut server);
    // Read the log as it comes, so a full pipe never blocks the server.
    let mut stderr = server.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });

    let credentials = pki
        .device_ca
        .issue_device(&device, &site, Validity::from_now(Duration::from_secs(600)))
        .unwrap();
    let client = skolebro_provisioning::tls::client(
        &credentials.cert_pem,
        &credentials.key_pem,
        pki.central_ca.cert_pem(),
    )
    .unwrap();
    let student = Student {
        source_key: "s1".into(),
        national_id: None,
        username: None,
        given_name: "Ingeborg".into(),
        middle_name: None,
        family_name: "Hjelmeland".into(),
        birth_date: None,
        gender: Gender::Female,
        email: None,
    };
    let mut students = EntityDelta {
        renames: Vec::new(),
        upserts: vec![(secret.handle(Entity::Student, student.key()), student)],
        deletes: Vec::new(),
    };
    students.sort();
    let payload = Payload::Delta(Delta {
        students,
        ..Delta::default()
    });
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let header = Header::chained(
        &ChainHead::genesis(),
        device.clone(),
        site.clone(),
        created,
        Kind::Delta,
    );
    let envelope = seal(header, &payload, &sealing.public_key(), &signing).unwrap();
    let answer = client
        .post(format!("https://127.0.0.1:{device_port}/v1/batches"))
        .body(envelope.to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let counts: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{admin_port}/v1/sites/skole-46505/counts"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["students"], 1);

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    let log = log_reader.join().unwrap();
    assert!(status.success(), "serve did not exit cleanly: {log}");
    assert!(log.contains("batch applied"), "no apply in the log: {log}");
    assert!(
        !log.contains("Ingeborg") && !log.contains("Hjelmeland"),
        "the log holds personal data: {log}"
    );
}
