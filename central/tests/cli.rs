//! The `skolebro-central` binary as operations run it: a configuration file with paths
//! relative to it, `register-device`, `operator-token`, then `serve` until SIGTERM. One batch
//! goes through the real process, and its log is checked for the personal data it must never
//! contain.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
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

    let created = Command::new(BIN)
        .args(["operator-token", "create", "--config"])
        .arg(&config)
        .arg("ops-script")
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "operator-token create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "the token alone on stdout");

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
    let counts_url = format!("http://127.0.0.1:{admin_port}/v1/sites/skole-46505/counts");
    let counts: serde_json::Value = reqwest::Client::new()
        .get(&counts_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["students"], 1);

    let revoked = Command::new(BIN)
        .args(["operator-token", "revoke", "--config"])
        .arg(&config)
        .arg("ops-script")
        .output()
        .unwrap();
    assert!(revoked.status.success());
    let refused = reqwest::Client::new()
        .get(&counts_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let listed = Command::new(BIN)
        .args(["operator-token", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.starts_with("ops-script\t") && listed.contains("\trevoked "),
        "{listed}"
    );
    assert!(!listed.contains(&token), "{listed}");
    let unknown = Command::new(BIN)
        .args(["operator-token", "revoke", "--config"])
        .arg(&config)
        .arg("nobody")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(USAGE));

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

/// The exit codes of packaging/README.md ("Exit codes"), the same in all three binaries.
const USAGE: i32 = 2;
const CONFIG: i32 = 3;
const UNAVAILABLE: i32 = 4;

/// Runs `skolebro-central ARGS` with `stdin` piped in (not a terminal: the password is read
/// from its first line, as a script gives it).
fn central(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn sqlite_config(dir: &Path) -> String {
    write_config(dir, free_port(), free_port());
    dir.join("central.toml").to_str().unwrap().to_owned()
}

#[test]
fn accounts_are_added_from_stdin_listed_disabled_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let add = |name: &str, password: &str| {
        central(
            &[
                "add-user",
                "--config",
                &config,
                "--name",
                name,
                "--role",
                "read_only",
            ],
            &format!("{password}\n"),
        )
    };
    let out = add("kari", "correct horse battery");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = add("ola", "short");
    assert_eq!(short.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));

    let listed = |json: bool| {
        let mut args = vec!["list-users", "--config", &config];
        if json {
            args.push("--json");
        }
        let out = central(&args, "");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let users: serde_json::Value = serde_json::from_str(&listed(true)).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["name"], "kari");
    assert_eq!(users[0]["role"], "read_only");
    assert_eq!(users[0]["disabled"], false);

    let out = central(&["disable-user", "--config", &config, "--name", "kari"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed(false).contains("kari\tread_only\t-\t"));
    assert!(listed(false).trim_end().ends_with("disabled"));

    let out = central(
        &["reset-password", "--config", &config, "--name", "kari"],
        "another horse battery\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed(false).trim_end().ends_with("active"));

    let unknown = central(
        &["disable-user", "--config", &config, "--name", "nobody"],
        "",
    );
    assert_eq!(unknown.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"nobody\""));
}

#[test]
fn add_user_help_lists_the_roles_and_the_minimum_length_and_refuses_another_role() {
    let help = central(&["add-user", "--help"], "");
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "operations",
        "municipality",
        "read_only",
        "at least 12 characters",
    ] {
        assert!(text.contains(word), "{word} missing from: {text}");
    }
    let out = central(
        &[
            "add-user", "--config", "x.toml", "--name", "kari", "--role", "admin",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(USAGE));
}

#[test]
fn a_missing_config_is_a_config_error_said_once_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("central.toml");
    let out = central(&["list-users", "--config", missing.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(CONFIG), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
}

#[test]
fn the_config_path_comes_from_the_environment_and_a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let out = Command::new(BIN)
        .arg("serve")
        .env("SKOLEBRO_CENTRAL_CONFIG", &config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(CONFIG), "{stderr}");
    assert!(stderr.contains("tls.cert"), "which key: {stderr}");
    let resolved = dir.path().join("pki/server.pem");
    assert!(
        stderr.contains(resolved.to_str().unwrap()),
        "the resolved path: {stderr}"
    );
}

#[test]
fn an_unreachable_postgres_is_unavailable_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "sealing_key = \"sealing.key\"\n\
             [tls]\n\
             cert = \"c.pem\"\n\
             key = \"k.pem\"\n\
             device_ca = \"ca.pem\"\n\
             [store]\n\
             kind = \"postgres\"\n\
             url = \"host=127.0.0.1 port={port} user=postgres dbname=test connect_timeout=5\"\n"
        ),
    )
    .unwrap();
    let out = central(&["list-users", "--config", config.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(UNAVAILABLE), "{stderr}");
    assert!(stderr.contains("refused"), "the cause: {stderr}");
}

#[test]
fn serve_logs_json_lines_without_colour_or_debug_text() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).unwrap();
    pki.write_to(&dir.path().join("pki")).unwrap();
    std::fs::write(dir.path().join("sealing.key"), hex::encode([7u8; 32])).unwrap();
    let (device_port, admin_port) = (free_port(), free_port());
    write_config(dir.path(), device_port, admin_port);
    let mut server = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("central.toml"))
        .env("SKOLEBRO_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(admin_port, &mut server);
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{log}");
    assert!(!log.contains('\u{1b}'), "colour in a pipe: {log}");
    assert!(!log.contains("Some(") && !log.contains("None"), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let listening = lines
        .iter()
        .find(|line| line["fields"]["message"] == "central is listening")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(listening["fields"]["consumer_addr"], "off");
}

/// Kills a server the test started when the test ends, also when it fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next datagram on `socket` within `within`, or `None`.
fn next_notification(
    socket: &std::os::unix::net::UnixDatagram,
    within: Duration,
) -> Option<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn serve_tells_systemd_it_is_ready_what_it_serves_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).unwrap();
    pki.write_to(&dir.path().join("pki")).unwrap();
    std::fs::write(dir.path().join("sealing.key"), hex::encode([7u8; 32])).unwrap();
    let (device_port, admin_port) = (free_port(), free_port());
    write_config(dir.path(), device_port, admin_port);
    let socket_path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.path().join("central.toml"))
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = next_notification(&socket, Duration::from_secs(30));
    assert_eq!(
        status.as_deref(),
        Some(format!("STATUS=serving devices on 127.0.0.1:{device_port}").as_str())
    );
    assert_eq!(
        next_notification(&socket, Duration::from_secs(5)).as_deref(),
        Some("READY=1")
    );
    // The device port answers once central said it is ready.
    assert!(std::net::TcpStream::connect(("127.0.0.1", device_port)).is_ok());
    // A watchdog of 1 s is fed every half second, with the status line refreshed before it.
    let mut fed = 0;
    while fed < 2 {
        let message = next_notification(&socket, Duration::from_secs(3))
            .expect("the watchdog is fed within its interval");
        match message.as_str() {
            "WATCHDOG=1" => fed += 1,
            line => assert!(line.starts_with("STATUS=serving devices on"), "{line}"),
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = std::iter::from_fn(|| next_notification(&socket, Duration::from_secs(10)))
        .find(|message| message == "STOPPING=1");
    assert!(stopping.is_some(), "central says STOPPING=1 on SIGTERM");
    assert!(server.0.wait().unwrap().success());
}

/// Reads `from` until `wanted` has arrived (or the deadline passes), returning all read.
fn read_until(from: &mut impl std::io::Read, wanted: &str, deadline: Instant) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains(wanted) {
        assert!(
            Instant::now() < deadline,
            "no {wanted:?} in {:?}",
            String::from_utf8_lossy(&seen)
        );
        match from.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn add_user_on_a_terminal_asks_twice_and_never_echoes_the_password() {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave_path = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path.to_str().unwrap())
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "add-user",
            "--config",
            &config,
            "--name",
            "kari",
            "--role",
            "operations",
        ])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut terminal = std::fs::File::from(master);
    let mut prompts = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let password = "correct horse battery";
    read_until(&mut prompts, "Password for kari: ", deadline);
    terminal
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    read_until(&mut prompts, "Again: ", deadline);
    terminal
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("add-user did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("created operations account kari"),
        "{stdout}"
    );
    // What the terminal showed: everything the line discipline echoed back. The child and
    // this test no longer hold the terminal's other end, so the read ends (EIO) at its end.
    let mut shown = Vec::new();
    let _ = terminal.read_to_end(&mut shown);
    let shown = String::from_utf8_lossy(&shown);
    assert!(
        !shown.contains("horse"),
        "the password was echoed: {shown:?}"
    );
}

/// The `n`th synthetic national id (month + 80) born in 2010, with valid control digits.
fn synthetic_id(n: u32) -> String {
    let control = |digits: &[u32], weights: &[u32]| match 11
        - digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11
    {
        11 => Some(0),
        10 => None,
        k => Some(k),
    };
    let mut individual = 500 + n * 7;
    loop {
        let head = format!("{:02}{:02}10{individual:03}", 1 + n % 28, 81 + n % 12);
        let mut digits: Vec<u32> = head.bytes().map(|b| u32::from(b - b'0')).collect();
        if let Some(k1) = control(&digits, &[3, 7, 6, 1, 8, 9, 4, 5, 2]) {
            digits.push(k1);
            if let Some(k2) = control(&digits, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) {
                digits.push(k2);
                return digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
            }
        }
        individual += 1;
    }
}

/// Stores a school with one class and two pupils for `site` in the store at `db`, the second
/// pupil changed once, as two batches of a registered device would.
async fn a_school_with_history(db: &Path, site: &SiteId, national_id: &str) {
    use skolebro_central::store::prelude::*;
    use skolebro_central::store::{IncomingBatch, SqliteStore, Timestamp};
    use skolebro_protocol::{Enrollment, Group, NationalId, School};

    let store = SqliteStore::open(db).await.expect("the store opens");
    let secret = SiteSecret::from_bytes([0xa1; 32]);
    let device = DeviceId::new("pi-46505").unwrap();
    store.set_site_secret(site, &secret).await.unwrap();
    store
        .register_device(
            &device,
            site,
            &DeviceSigningKey::from_bytes([0x31; 32]).verifying_key(),
        )
        .await
        .unwrap();
    let pupil = |key: &str, given: &str, id: Option<&str>| Student {
        source_key: key.into(),
        national_id: id.map(|id| NationalId::parse(id).expect("a synthetic id")),
        username: None,
        given_name: given.into(),
        middle_name: None,
        family_name: "Hjelmeland".into(),
        birth_date: None,
        gender: Gender::Female,
        email: None,
    };
    fn delta<R: Record + Clone>(secret: &SiteSecret, records: &[R]) -> EntityDelta<R> {
        let mut delta = EntityDelta {
            renames: Vec::new(),
            upserts: records
                .iter()
                .map(|record| (secret.handle(R::ENTITY, record.key()), record.clone()))
                .collect(),
            deletes: Vec::new(),
        };
        delta.sort();
        delta
    }
    let school = School {
        skolenummer: "46505".into(),
        organisasjonsnummer: Some("974600951".into()),
        kommunenummer: Some("4601".into()),
        fylkesnummer: Some("46".into()),
        name: "Bjølsen skole".into(),
    };
    let group = Group {
        source_key: "10A".into(),
        name: "10A".into(),
        grade: Some("10".into()),
        school: "46505".into(),
        school_year: Some("2026/2027".into()),
    };
    let enrollments: Vec<Enrollment> = ["s1", "s2"]
        .iter()
        .map(|student| Enrollment {
            source_key: format!("{student}-10A").into(),
            student: (*student).into(),
            school: "46505".into(),
            group: Some("10A".into()),
        })
        .collect();
    let payloads = [
        Payload::Delta(Delta {
            schools: delta(&secret, &[school]),
            students: delta(
                &secret,
                &[
                    pupil("s1", "Ingeborg", Some(national_id)),
                    pupil("s2", "Sigrid", None),
                ],
            ),
            groups: delta(&secret, &[group]),
            enrollments: delta(&secret, &enrollments),
        }),
        Payload::Delta(Delta {
            students: delta(&secret, &[pupil("s2", "Sigrun", None)]),
            ..Delta::default()
        }),
    ];
    for (at, payload) in payloads.into_iter().enumerate() {
        let head = store.chain_head(&device).await.unwrap();
        let mut digest = [0xd1; 32];
        digest[0] = at as u8;
        store
            .apply(IncomingBatch {
                device: device.clone(),
                site: site.clone(),
                seq: head.next_seq,
                prev: head.prev,
                next_head: ChainHead::after(head.next_seq, digest),
                payload,
                at: Timestamp(1_780_000_000_000 + at as i64 * 1000),
                bytes: 100,
            })
            .await
            .expect("the batch applies");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_site_is_exported_with_checksums_and_purged_only_once_confirmed() {
    use sha2::Digest as _;
    use skolebro_central::store::prelude::*;
    use skolebro_central::store::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let site = SiteId::new("skole-46505").unwrap();
    let national_id = synthetic_id(3);
    a_school_with_history(&dir.path().join("central.db"), &site, &national_id).await;

    let out_dir = dir.path().join("export");
    let out = out_dir.to_str().unwrap();
    let exported = central(
        &[
            "site",
            "export",
            "--config",
            &config,
            site.as_str(),
            "--out",
            out,
        ],
        "",
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for name in [
        "oneroster/manifest.csv",
        "oneroster/orgs.csv",
        "oneroster/users.csv",
        "oneroster/classes.csv",
        "oneroster/enrollments.csv",
        "elevliste.csv",
        "history.jsonl",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for file in files {
        let bytes = std::fs::read(out_dir.join(file["name"].as_str().unwrap())).unwrap();
        assert_eq!(file["bytes"], bytes.len());
        assert_eq!(file["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(out_dir.join("history.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "personal data readable by others: {mode:o}"
        );
    }
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap();
    let users = read("oneroster/users.csv");
    assert!(users.starts_with("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,"));
    assert_eq!(users.lines().count(), 3, "a header and two pupils: {users}");
    assert!(
        users.contains("Sigrun") && !users.contains("Sigrid"),
        "current only"
    );
    assert_eq!(read("oneroster/enrollments.csv").lines().count(), 3);
    let elevliste = read("elevliste.csv");
    assert!(elevliste.contains(&national_id), "{elevliste}");
    assert_eq!(
        manifest["elevliste_left_out"], 1,
        "Sigrun has no national id"
    );
    let history = read("history.jsonl");
    assert_eq!(
        history.lines().count(),
        7,
        "6 records, one of them changed once"
    );
    assert!(history.contains("Sigrid") && history.contains("Sigrun"));
    assert_eq!(manifest["versions"], 7);

    // A second export into the same folder is refused; the first stays whole.
    let again = central(
        &[
            "site",
            "export",
            "--config",
            &config,
            site.as_str(),
            "--out",
            out,
        ],
        "",
    );
    assert!(!again.status.success());

    let purge = |stdin: &str, extra: &[&str]| {
        let mut args = vec![
            "site",
            "purge",
            "--config",
            &config,
            site.as_str(),
            "--reason",
            "processor agreement ended",
        ];
        args.extend_from_slice(extra);
        central(&args, stdin)
    };
    let refused = purge("skole-46506\n", &[]);
    assert_eq!(refused.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was changed"));
    let store = SqliteStore::open(dir.path().join("central.db"))
        .await
        .unwrap();
    assert_eq!(store.counts(&site).await.unwrap().students, 2);

    let purged = purge(&format!("{site}\n"), &[]);
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    assert!(String::from_utf8_lossy(&purged.stdout).contains("7 record versions"));
    assert_eq!(store.site_record_handles(&site).await.unwrap(), []);
    assert!(store.site_secret(&site).await.unwrap().is_none());
    let device = DeviceId::new("pi-46505").unwrap();
    assert!(store.device(&device).await.unwrap().unwrap().revoked);
    let audit = store.audit_log(10).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|line| (line.action.as_str(), line.detail.as_str()))
        .collect();
    assert!(
        actions.contains(&("site_purge", "processor agreement ended")),
        "{actions:?}"
    );
    assert!(actions.iter().any(|(action, _)| *action == "site_purged"));
    assert!(actions.iter().any(|(action, _)| *action == "site_export"));

    // Nothing is left to export.
    let gone = central(
        &[
            "site",
            "export",
            "--config",
            &config,
            site.as_str(),
            "--out",
            &format!("{out}-2"),
        ],
        "",
    );
    assert!(!gone.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_run_purges_by_the_countys_policy_once_and_says_what_went() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let site = SiteId::new("skole-46505").unwrap();
    // Applied in May 2026, with one version closed then.
    a_school_with_history(&dir.path().join("central.db"), &site, &synthetic_id(4)).await;
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "[privacy]\nrecord_school_years = 3\n[privacy.fylke.\"46\"]\nrecord_school_years = 1\n",
    );
    std::fs::write(&config, text).unwrap();

    let run = || {
        let out = central(&["retention", "run", "--config", &config], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        line["purged"].clone()
    };
    // County 46 keeps one school year: the version closed in May 2026 is before 1 August.
    assert_eq!(
        run(),
        serde_json::json!({"versions": 1, "departed": 0, "audit": 0})
    );
    assert_eq!(
        run(),
        serde_json::json!({"versions": 0, "departed": 0, "audit": 0}),
        "a second run finds nothing"
    );

    let bad = dir.path().join("bad.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[privacy.fylke.\"4\"]\nrecord_school_years = 1\n");
    std::fs::write(&bad, text).unwrap();
    let refused = central(&["retention", "run", "--config", bad.to_str().unwrap()], "");
    assert_eq!(refused.status.code(), Some(CONFIG));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("fylkesnummer"));
}

/// Writes the config of `write_config` with `[privacy] key_file = kek`, and the files
/// `serve` reads before it opens the store.
fn sealed_config(dir: &Path, kek: &str) -> PathBuf {
    if !dir.join("pki").exists() {
        let pki = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).unwrap();
        pki.write_to(&dir.join("pki")).unwrap();
        std::fs::write(dir.join("sealing.key"), hex::encode([7u8; 32])).unwrap();
    }
    write_config(dir, free_port(), free_port());
    let path = dir.join("central.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("[privacy]\nkey_file = \"{kek}\"\n"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn central_refuses_to_start_with_another_kek_and_a_rotated_kek_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    for kek in ["a.kek", "b.kek"] {
        let out = central(
            &[
                "keys",
                "new-kek",
                "--out",
                dir.path().join(kek).to_str().unwrap(),
            ],
            "",
        );
        assert!(out.status.success(), "{out:?}");
    }
    // The first start with a.kek makes the data keys, wrapped under it.
    let config = sealed_config(dir.path(), "a.kek");
    let out = central(
        &["keys", "status", "--config", config.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("records\tactive"));

    let config = sealed_config(dir.path(), "b.kek");
    let out = central(&["serve", "--config", config.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(CONFIG), "{stderr}");
    assert!(
        stderr.contains("does not open this database's data keys"),
        "{stderr}"
    );

    let config = sealed_config(dir.path(), "a.kek");
    let new = dir.path().join("b.kek");
    let out = central(
        &[
            "keys",
            "rotate-kek",
            "--config",
            config.to_str().unwrap(),
            "--new-key-file",
            new.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let out = central(
        &["keys", "status", "--config", config.to_str().unwrap()],
        "",
    );
    assert_eq!(out.status.code(), Some(CONFIG), "a.kek no longer opens it");
    let config = sealed_config(dir.path(), "b.kek");
    let out = central(
        &["keys", "status", "--config", config.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pupil_is_exported_and_erased_by_national_id_which_is_never_printed_in_clear() {
    use skolebro_central::store::prelude::*;
    use skolebro_central::store::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let site = SiteId::new("skole-46505").unwrap();
    let national_id = synthetic_id(5);
    let masked = format!("{}*****", &national_id[..6]);
    a_school_with_history(&dir.path().join("central.db"), &site, &national_id).await;
    let subject = |verb: &str, extra: &[&str], stdin: &str| {
        let mut args = vec!["subject", verb, "--config", &config];
        args.extend_from_slice(extra);
        central(&args, stdin)
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    let mut wrong = national_id.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let refused = subject("export", &["--national-id", &wrong], "");
    assert_eq!(refused.status.code(), Some(USAGE));
    assert!(text(&refused.stderr).contains("control digits"));
    assert!(
        !text(&refused.stderr).contains(&wrong),
        "the id is not echoed"
    );

    let exported = subject("export", &["--national-id", &national_id], "");
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let export: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(export["subject"], masked);
    assert_eq!(export["sites"], serde_json::json!(["skole-46505"]));
    assert_eq!(
        export["records"][0]["versions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        export["records"].as_array().unwrap().len(),
        2,
        "the student and the enrollment: {export}"
    );
    let file = dir.path().join("subject.json");
    let to_file = subject(
        "export",
        &[
            "--national-id",
            &national_id,
            "--out",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(to_file.status.success());
    assert!(text(&to_file.stderr).contains(&masked));
    assert!(!text(&to_file.stderr).contains(&national_id));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "personal data readable by others: {mode:o}"
        );
    }

    let erase = |stdin: &str, extra: &[&str]| {
        let mut args = vec![
            "--national-id",
            national_id.as_str(),
            "--reason",
            "the pupil asked (case 2026/17)",
        ];
        args.extend_from_slice(extra);
        subject("erase", &args, stdin)
    };
    let unconfirmed = erase("12345\n", &[]);
    assert_eq!(unconfirmed.status.code(), Some(USAGE));
    assert!(text(&unconfirmed.stderr).contains("nothing was changed"));
    let store = SqliteStore::open(dir.path().join("central.db"))
        .await
        .unwrap();
    assert_eq!(store.counts(&site).await.unwrap().students, 2);

    let erased = erase(&format!("{national_id}\n"), &[]);
    assert!(erased.status.success(), "{}", text(&erased.stderr));
    let said = text(&erased.stdout) + &text(&erased.stderr);
    assert!(
        said.contains(&masked) && said.contains("2 record versions"),
        "{said}"
    );
    assert!(!said.contains(&national_id), "{said}");
    let counts = store.counts(&site).await.unwrap();
    assert_eq!((counts.students, counts.enrollments), (1, 1));

    let listed = subject("tombstones", &[], "");
    let listed = text(&listed.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("skole-46505") && listed.contains("case 2026/17"));
    assert!(!listed.contains(&national_id));

    let clear = |site: &str| {
        subject(
            "clear",
            &[
                "--national-id",
                &national_id,
                "--site",
                site,
                "--reason",
                "in error",
            ],
            "",
        )
    };
    assert!(clear("skole-46505").status.success());
    assert_eq!(clear("skole-46505").status.code(), Some(USAGE), "none left");

    let audit = store.audit_log(20).await.unwrap();
    assert!(audit.iter().any(|line| line.action == "subject_erase"
        && line.target == masked
        && line.detail == "the pupil asked (case 2026/17)"));
    for action in [
        "subject_export",
        "subject_erased",
        "subject_tombstone_clear",
    ] {
        assert!(audit.iter().any(|line| line.action == action), "{action}");
    }
    assert!(audit
        .iter()
        .all(|line| !line.target.contains(&national_id) && !line.detail.contains(&national_id)));
}
