//! The `skolebro-provision` binary as operations run it: `init` into a fresh folder, and a
//! `stick` that cannot reach central, which must fail clearly and leave the stick untouched.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};
use skolebro_provisioning::pki;

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skolebro-provision"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn hex_key_fingerprint(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let bytes = hex::decode(text.trim()).unwrap();
    hex::encode(Sha256::digest(bytes))
}

fn init(keys: &Path) -> String {
    let out = provision(&["init", "--dir", keys.to_str().unwrap()]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn init_writes_the_key_folder_and_prints_every_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let stdout = init(&keys);

    for file in [
        "device-ca.key",
        "central-ca.key",
        "server.key",
        "stick.key",
        "sealing.key",
        "release.key",
    ] {
        assert_eq!(mode(&keys.join(file)), 0o600, "{file}");
    }
    for file in [
        "device-ca.pem",
        "central-ca.pem",
        "server.pem",
        "stick.pub",
        "sealing.pub",
        "release.pub",
        "central.toml",
    ] {
        assert_eq!(mode(&keys.join(file)), 0o644, "{file}");
    }

    for cert in ["device-ca.pem", "central-ca.pem", "server.pem"] {
        let fp = pki::fingerprint(&std::fs::read_to_string(keys.join(cert)).unwrap()).unwrap();
        assert!(
            stdout.contains(&fp),
            "{cert} fingerprint not printed:\n{stdout}"
        );
    }
    for public in ["stick.pub", "sealing.pub", "release.pub"] {
        let fp = hex_key_fingerprint(&keys.join(public));
        assert!(
            stdout.contains(&fp),
            "{public} fingerprint not printed:\n{stdout}"
        );
    }
    for secret in ["stick.key", "sealing.key", "release.key"] {
        let key = std::fs::read_to_string(keys.join(secret)).unwrap();
        assert!(!stdout.contains(key.trim()), "{secret} was printed");
    }

    let config = std::fs::read_to_string(keys.join("central.toml")).unwrap();
    assert!(config.contains("sealing_key = \"sealing.key\""), "{config}");
    assert!(
        config.contains("device_ca_key = \"device-ca.key\""),
        "{config}"
    );
}

#[test]
fn a_second_init_into_the_same_folder_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    init(&keys);
    let before = std::fs::read(keys.join("device-ca.key")).unwrap();
    let out = provision(&["init", "--dir", keys.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(keys.join("device-ca.key")).unwrap(), before);
}

#[test]
fn a_stick_is_not_written_when_central_cannot_be_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    init(&keys);
    let stick = tmp.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    // A port that was free a moment ago: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_url = format!("http://127.0.0.1:{port}");

    let out = provision(&[
        "stick",
        "--keys",
        keys.to_str().unwrap(),
        "--out",
        stick.to_str().unwrap(),
        "--fylke",
        "46",
        "--kommune",
        "4601",
        "--skolenummer",
        "12345",
        "--name",
        "Eksempel skole",
        "--central-url",
        "https://127.0.0.1:8443",
        "--admin-url",
        &admin_url,
        "--drop-dir",
        "/srv/skolebro/drop",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach central's admin API") && stderr.contains(&admin_url),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&stick).unwrap().count(),
        0,
        "something was written onto the stick"
    );
}

#[test]
fn a_stick_with_a_kommune_outside_its_fylke_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = provision(&[
        "stick",
        "--keys",
        tmp.path().to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
        "--fylke",
        "46",
        "--kommune",
        "0301",
        "--skolenummer",
        "12345",
        "--name",
        "Eksempel skole",
        "--central-url",
        "https://127.0.0.1:8443",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--kommune"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
