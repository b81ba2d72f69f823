//! The `skolebro-provision` binary as operations run it: `init` into a fresh folder, and a
//! `stick` that cannot reach central, which must fail clearly and leave the stick untouched.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};
use skolebro_provisioning::pki;

/// The exit codes of packaging/README.md ("Exit codes"), the same in all three binaries.
const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const CONFIG: i32 = 3;
const UNAVAILABLE: i32 = 4;

/// Runs `skolebro-provision ARGS` with an operator API token in `SKOLEBRO_ADMIN_TOKEN`, as
/// an operator's shell would have it; no central here knows it.
fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skolebro-provision"))
        .args(args)
        .env("SKOLEBRO_ADMIN_TOKEN", "ab".repeat(32))
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

/// The manifest at `path`, verified with the key folder's `release.pub`.
fn signed_manifest(keys: &Path, path: &Path) -> skolebro_protocol::ReleaseManifest {
    let public = skolebro_protocol::ReleaseVerifyingKey::from_hex(
        &std::fs::read_to_string(keys.join("release.pub")).unwrap(),
    )
    .unwrap();
    skolebro_protocol::ReleaseManifest::verify(&std::fs::read(path).unwrap(), &public).unwrap()
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
        "statement.key",
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
        "statement.pub",
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
    for public in ["stick.pub", "sealing.pub", "release.pub", "statement.pub"] {
        let fp = hex_key_fingerprint(&keys.join(public));
        assert!(
            stdout.contains(&fp),
            "{public} fingerprint not printed:\n{stdout}"
        );
    }
    for secret in ["stick.key", "sealing.key", "release.key", "statement.key"] {
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
    assert!(
        config.contains("statement_key = \"statement.key\""),
        "{config}"
    );
}

#[test]
fn init_keeps_central_db_out_of_the_key_folder_and_serves_the_web_interface() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    init(&keys);
    let text = std::fs::read_to_string(keys.join("central.toml")).unwrap();
    let config: toml::Table = text.parse().unwrap();
    let db = config["store"]["path"].as_str().expect("a store path");
    // Central resolves it against the config's folder, the key folder.
    let resolved = std::path::absolute(keys.join(db)).unwrap();
    let mut normal = PathBuf::new();
    for part in resolved.components() {
        match part {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    assert!(
        !normal.starts_with(&keys),
        "{db} is inside {}",
        keys.display()
    );
    assert_eq!(normal, tmp.path().join("central.db"));
    let ui: std::net::SocketAddr = config["ui_listen"].as_str().unwrap().parse().unwrap();
    assert!(ui.ip().is_loopback(), "{ui}");
}

/// A key folder and an agent binary to release, in `tmp`: (keys, binary, out folder).
fn release_inputs(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let keys = tmp.join("keys");
    init(&keys);
    let binary = tmp.join("skolebro-agent");
    std::fs::write(&binary, b"\x7fELF agent build").unwrap();
    (keys, binary, tmp.join("out"))
}

/// `skolebro-provision release` of `binary` as `version` for `target`, plus `extra`.
fn release(
    inputs: &(PathBuf, PathBuf, PathBuf),
    version: &str,
    target: &str,
    extra: &[&str],
) -> Output {
    let (keys, binary, out_dir) = inputs;
    let mut args = vec![
        "release",
        "--keys",
        keys.to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
        "--version",
        version,
        "--target",
        target,
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    provision(&args)
}

#[test]
fn release_writes_the_artifact_and_a_manifest_signed_with_release_key() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = release_inputs(tmp.path());
    let (keys, _, out_dir) = &inputs;
    let out = release(&inputs, "1.3.0", "armv7-unknown-linux-gnueabihf", &[]);
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
    let manifest = signed_manifest(keys, &out_dir.join(format!("{id}.skm")));
    assert_eq!(manifest.id(), id);
    assert_eq!(manifest.size, b"\x7fELF agent build".len() as u64);
    assert!(!manifest.allow_downgrade);
    assert_eq!(
        manifest.expires_unix - manifest.created_unix,
        30 * 86_400,
        "valid for 30 days by default"
    );
}

#[test]
fn a_downgrade_release_names_what_it_replaces_expires_soon_and_signs_the_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = release_inputs(tmp.path());
    let (keys, _, out_dir) = &inputs;
    let release = |extra: &[&str]| release(&inputs, "1.2.0", "aarch64-unknown-linux-gnu", extra);
    // A downgrade without the version it replaces is refused by the command line.
    assert!(!release(&["--allow-downgrade"]).status.success());
    let long = release(&[
        "--allow-downgrade",
        "--replaces",
        "1.3.0",
        "--expires-in",
        "30d",
    ]);
    let refused = text(&long.stderr);
    assert!(
        !long.status.success() && refused.contains("--expires-in"),
        "{refused}"
    );
    assert!(!out_dir.exists());

    let out = release(&[
        "--allow-downgrade",
        "--replaces",
        "1.3.0",
        "--expires-in",
        "48h",
        "--floor",
        "1.1.0",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("downgrade allowed from 1.3.0 only")
            && stdout.contains("expires   "),
        "{stdout} {}",
        text(&out.stderr)
    );
    let manifest = signed_manifest(keys, &out_dir.join("1.2.0-aarch64-unknown-linux-gnu.skm"));
    assert!(manifest.allow_downgrade);
    assert_eq!(manifest.replaces, Some("1.3.0".parse().unwrap()));
    assert_eq!(manifest.floor, Some("1.1.0".parse().unwrap()));
    assert_eq!(manifest.expires_unix - manifest.created_unix, 48 * 3600);
}

/// A stand-in agent in `dir` that answers `--version` with `version`, executable.
fn agent_saying(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join(format!("agent-{version}"));
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"skolebro-agent {version}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `release` run until it is not refused for a busy executable: another test thread may
/// have forked while the stand-in agent was open for writing (ETXTBSY).
fn release_not_busy(inputs: &(PathBuf, PathBuf, PathBuf), version: &str) -> Output {
    let mut tries = 0;
    loop {
        let out = release(inputs, version, "x86_64-unknown-linux-gnu", &[]);
        tries += 1;
        if tries == 5 || !text(&out.stderr).contains("busy") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn release_refuses_a_binary_whose_own_version_says_otherwise_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (keys, _, out_dir) = release_inputs(tmp.path());
    let binary = agent_saying(tmp.path(), "1.2.0");
    let inputs = (keys, binary, out_dir.clone());

    let refused = release_not_busy(&inputs, "1.3.0");
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("--binary") && stderr.contains("says 1.2.0, not 1.3.0"),
        "{stderr}"
    );
    assert!(!out_dir.exists());

    let signed = release_not_busy(&inputs, "1.2.0");
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    assert!(
        !text(&signed.stderr).contains("warning"),
        "{}",
        text(&signed.stderr)
    );
    assert!(out_dir.join("1.2.0-x86_64-unknown-linux-gnu.skm").is_file());
}

#[test]
fn a_binary_that_cannot_run_here_is_released_with_a_warning_that_its_version_is_unchecked() {
    let tmp = tempfile::tempdir().unwrap();
    // `release_inputs`' binary is not executable, as a build for another target cannot run.
    let inputs = release_inputs(tmp.path());
    let out = release(&inputs, "1.3.0", "aarch64-unknown-linux-gnu", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: cannot run") && stderr.contains("make sure it reports 1.3.0"),
        "{stderr}"
    );
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
    assert_eq!(
        out.status.code(),
        Some(USAGE),
        "a bad option is a usage error"
    );
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
    assert_eq!(out.status.code(), Some(FAILURE));
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
    assert_eq!(out.status.code(), Some(UNAVAILABLE), "central out of reach");
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

/// `stick` for a school in `kommune`, with `dir` as both key folder and stick, and `extra`
/// options: for refusals that must come before a key or central is needed.
fn stick_in(dir: &Path, kommune: &str, extra: &[&str]) -> Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "stick",
        "--keys",
        dir,
        "--out",
        dir,
        "--fylke",
        "46",
        "--kommune",
        kommune,
        "--skolenummer",
        "12345",
        "--name",
        "Eksempel skole",
        "--central-url",
        "https://127.0.0.1:8443",
    ];
    args.extend_from_slice(extra);
    provision(&args)
}

#[test]
fn a_stick_with_a_kommune_outside_its_fylke_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stick_in(tmp.path(), "0301", &[]);
    assert_eq!(out.status.code(), Some(USAGE));
    assert!(
        text(&out.stderr).contains("--kommune"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_stick_with_half_the_pull_share_flags_is_refused_naming_the_missing_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stick_in(
        tmp.path(),
        "4601",
        &[
            "--pull-server",
            "filserver.skule.example.no",
            "--pull-share",
            "Eksport",
            "--pull-user",
            "skolebro-les",
        ],
    );
    assert_eq!(out.status.code(), Some(USAGE));
    assert!(
        text(&out.stderr).contains("--pull-password-file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_pull_after_that_is_neither_delete_nor_a_move_out_of_the_export_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("pull.password");
    std::fs::write(&password, "Pull-share-pass-1\n").unwrap();
    let stick = tmp.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    for after in [
        "keep",
        "move:",
        "move:eksport",
        "move:/Eksport/",
        "move:a;b",
    ] {
        let out = stick_in(
            &stick,
            "4601",
            &[
                "--pull-server",
                "filserver.skule.example.no",
                "--pull-share",
                "Eksport",
                "--pull-folder",
                "eksport",
                "--pull-user",
                "skolebro-les",
                "--pull-password-file",
                password.to_str().unwrap(),
                "--pull-after",
                after,
            ],
        );
        assert_eq!(out.status.code(), Some(USAGE), "{after}");
        assert!(
            text(&out.stderr).contains("--pull-after"),
            "{after}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read_dir(&stick).unwrap().count(), 0, "{after}");
    }
}

#[test]
fn a_stick_from_a_key_folder_without_keys_is_a_config_error_naming_the_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let stick = tmp.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
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
        "http://127.0.0.1:9",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(CONFIG), "{stderr}");
    assert!(stderr.contains(keys.to_str().unwrap()), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn a_command_that_calls_central_without_an_operator_token_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skolebro-provision"))
        .args(["list", "tokens", "--admin-url", "http://127.0.0.1:9"])
        .env_remove("SKOLEBRO_ADMIN_TOKEN")
        .output()
        .expect("the binary runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{stderr}");
    assert!(
        stderr.contains("SKOLEBRO_ADMIN_TOKEN") && stderr.contains("--admin-token-file"),
        "{stderr}"
    );
    let empty = tmp.path().join("admin.token");
    std::fs::write(&empty, "\n").unwrap();
    let out = provision(&[
        "revoke",
        "device",
        "pi-1",
        "--admin-token-file",
        empty.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{stderr}");
    assert!(stderr.contains(empty.to_str().unwrap()), "{stderr}");
}
