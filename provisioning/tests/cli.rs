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
    assert!(config.contains("release_key = \"release.pub\""), "{config}");
}

#[test]
fn release_writes_the_artifact_and_a_manifest_signed_with_release_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    init(&keys);
    let binary = tmp.path().join("skolebro-agent");
    std::fs::write(&binary, b"\x7fELF agent build").unwrap();
    let out_dir = tmp.path().join("out");
    let out = provision(&[
        "release",
        "--keys",
        keys.to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
        "--version",
        "1.3.0",
        "--target",
        "armv7-unknown-linux-gnueabihf",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "release failed: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("1.3.0-armv7-unknown-linux-gnueabihf"),
        "{stdout}"
    );
    let id = "1.3.0-armv7-unknown-linux-gnueabihf";
    assert_eq!(
        std::fs::read(out_dir.join(format!("{id}.bin"))).unwrap(),
        b"\x7fELF agent build"
    );
    let public = skolebro_protocol::ReleaseVerifyingKey::from_hex(
        &std::fs::read_to_string(keys.join("release.pub")).unwrap(),
    )
    .unwrap();
    let manifest = skolebro_protocol::ReleaseManifest::verify(
        &std::fs::read(out_dir.join(format!("{id}.skm"))).unwrap(),
        &public,
    )
    .unwrap();
    assert_eq!(manifest.id(), id);
    assert_eq!(manifest.size, b"\x7fELF agent build".len() as u64);
    assert!(!manifest.allow_downgrade);
}

#[test]
fn release_with_a_bad_version_writes_nothing_and_names_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    init(&keys);
    let out_dir = tmp.path().join("out");
    let out = provision(&[
        "release",
        "--keys",
        keys.to_str().unwrap(),
        "--binary",
        keys.join("release.pub").to_str().unwrap(),
        "--version",
        "1.3",
        "--target",
        "aarch64-unknown-linux-gnu",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--version"),
        "{}",
        text(&out.stderr)
    );
    assert!(!out_dir.exists());
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
