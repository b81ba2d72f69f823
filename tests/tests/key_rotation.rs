//! Key rotation end to end with real processes (issue 18, "Keys that can be rotated"):
//! `skolebro-provision init` makes the platform's keys, `skolebro-central serve` runs on them,
//! and two agents enroll from config sticks, each running from its own install root (so its
//! updater checks the releases central offers). One agent is stopped; operations rotate the
//! stick key and the release key with `skolebro-provision rotate-key`; the running agent
//! takes both rotations from its next heartbeat answer, and the stopped one when it runs
//! again. Afterwards a config stick signed with the old stick key and a manifest signed with
//! the old release key are refused, and a stick and a manifest signed with the new keys are
//! taken. Every process is killed when the test ends, and the folder is kept if it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use skolebro_agent::config::AgentConfig;
use skolebro_agent::trusted_keys::TrustedKeys;
use skolebro_agent::update::{TARGET, VERSION};
use skolebro_protocol::release::{ReleaseError, ReleaseManifest, ReleaseSigningKey, Version};
use skolebro_protocol::statement::manifest_digest;
use skolebro_tests::harness::{
    self, binaries, get_json, http_post_json, http_request, print_log_tail, two_free_ports,
    Process, PATIENCE, POLL,
};

/// The artifact of every release the test registers; no agent gets as far as downloading it.
const ARTIFACT: &[u8] = b"x";

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Polls `done` until it holds, failing after [`PATIENCE`] with `what` and `detail()`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}: {}",
            detail()
        );
        std::thread::sleep(POLL);
    }
}

struct Platform {
    /// `None` once kept for a failed test.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    device_port: u16,
    admin: SocketAddr,
    central: Option<Process>,
}

impl Platform {
    fn start() -> Platform {
        let dir = tempfile::Builder::new()
            .prefix("skolebro-rotation-")
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
        platform.cli(&["init", "--dir", path_str(&platform.keys())]);
        let config = platform.keys().join("central.toml");
        let written = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            harness::on_ports(&written, device_port, admin_port),
        )
        .unwrap();
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

    /// Runs `skolebro-provision ARGS` with the operator API token; it must succeed.
    fn cli(&self, args: &[&str]) -> String {
        harness::provision_ok(&self.path, args)
    }

    /// A config stick for site `4601-<skolenummer>` at `<platform>/<name>`, signed with the
    /// stick key the folder holds now.
    fn stick(&self, name: &str, skolenummer: u32, drop: &Path) -> PathBuf {
        let stick = self.path.join(name);
        std::fs::create_dir_all(&stick).unwrap();
        self.cli(&[
            "stick",
            "--keys",
            path_str(&self.keys()),
            "--out",
            path_str(&stick),
            "--fylke",
            "46",
            "--kommune",
            "4601",
            "--skolenummer",
            &skolenummer.to_string(),
            "--name",
            "Testskulen",
            "--central-url",
            &format!("https://127.0.0.1:{}", self.device_port),
            "--admin-url",
            &format!("http://{}", self.admin),
            "--drop-dir",
            path_str(drop),
        ]);
        stick
    }

    /// Registers a manifest of `version` for this platform signed with the key in `key_file`,
    /// with a one-byte artifact (central offers only releases it has the artifact of);
    /// central's status and body for the manifest.
    fn register(&self, version: Version, key_file: &str) -> (u16, String) {
        let manifest = self.manifest(version, key_file);
        let (status, body) = http_request(self.admin, "POST", "/admin/releases", Some(&manifest))
            .expect("POST /admin/releases");
        if status == 201 {
            let path = format!("/admin/releases/{version}-{TARGET}/artifact");
            let (uploaded, answer) =
                http_request(self.admin, "PUT", &path, Some(ARTIFACT)).expect("PUT artifact");
            assert!(
                (200..300).contains(&uploaded),
                "{path}: {uploaded} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A manifest of `version` for this platform and [`ARTIFACT`], signed with the key in
    /// `key_file`.
    fn manifest(&self, version: Version, key_file: &str) -> Vec<u8> {
        let key = ReleaseSigningKey::from_hex(
            &std::fs::read_to_string(self.keys().join(key_file)).unwrap(),
        )
        .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let manifest = ReleaseManifest {
            version,
            target: TARGET.to_owned(),
            size: ARTIFACT.len() as u64,
            // SHA-256, as the statement names manifests by.
            sha256: manifest_digest(ARTIFACT),
            allow_downgrade: false,
            created_unix: now,
            expires_unix: now + 86_400,
            replaces: None,
            floor: None,
        };
        manifest.sign(&key)
    }

    fn roll_out(&self, id: &str, site: &str) {
        let (status, body) = http_post_json(
            self.admin,
            &format!("/admin/releases/{id}/rollout"),
            &json!({ "sites": [site] }),
        )
        .expect("POST rollout");
        assert!(
            (200..300).contains(&status),
            "rollout of {id}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Why `device` refused release `id`, once it reported it.
    fn refusal(&self, id: &str, device: &str) -> Option<String> {
        let all = get_json(self.admin, "/admin/releases")?;
        all["releases"].as_array()?.iter().find(|r| r["id"] == id)?["refusals"]
            .as_array()?
            .iter()
            .find(|r| r["device"] == device)?["reason"]
            .as_str()
            .map(str::to_owned)
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

/// An agent in `<platform>/<name>` running from its own install root.
struct Agent {
    name: &'static str,
    dir: PathBuf,
    site: String,
    process: Option<Process>,
}

impl Agent {
    fn new(platform: &Platform, name: &'static str, skolenummer: u32) -> Agent {
        let dir = platform.path.join(name);
        let release = dir.join("install/releases").join(VERSION);
        std::fs::create_dir_all(&release).unwrap();
        std::fs::create_dir_all(dir.join("drop")).unwrap();
        std::fs::copy(&binaries().agent, release.join("skolebro-agent")).unwrap();
        std::os::unix::fs::symlink(format!("releases/{VERSION}"), dir.join("install/current"))
            .unwrap();
        std::fs::write(dir.join("synchronized"), "").unwrap();
        let keys = platform.keys();
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                r#"state_dir = "state"
stick_roots = ["media"]
stick_key = "{stick}"
release_key = "{release}"
root_key = "{root}"
install_root = "install"
clock_synced_file = "synchronized"
panel = "none"
settle_ms = 100
rescan_seconds = 1
heartbeat_seconds = 1

[uplink]
backoff_initial_ms = 100
backoff_max_ms = 1000
"#,
                // Copies, as an image installs them: rotate-key replaces the folder's files.
                stick = install_key(&keys, &dir, "stick.pub").display(),
                release = install_key(&keys, &dir, "release.pub").display(),
                root = install_key(&keys, &dir, "root.pub").display(),
            ),
        )
        .unwrap();
        let drop = dir.join("drop");
        let stick = platform.stick(&format!("{name}-stick"), skolenummer, &drop);
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::rename(stick, dir.join("media/STICK")).unwrap();
        Agent {
            name,
            dir,
            site: format!("4601-{skolenummer}"),
            process: None,
        }
    }

    fn start(&mut self) {
        let mut command = Command::new(self.dir.join("install/current/skolebro-agent"));
        command
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .arg("run");
        self.process = Some(Process::spawn(&mut command, &self.dir.join("agent.log")));
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// The device id, once enrolled and healthy.
    fn device(&self) -> String {
        let mut device = None;
        wait_for(
            &format!("{} to enroll", self.name),
            || {
                device = status(&self.dir).and_then(|s| {
                    s["provisioning"]["device"]
                        .as_str()
                        .filter(|_| s["state"] == "healthy")
                        .map(str::to_owned)
                });
                device.is_some()
            },
            || format!("{:?}", status(&self.dir)),
        );
        device.unwrap_or_default()
    }

    /// Waits until the agent trusts rotation 1 of both keys.
    fn wait_for_rotations(&self) {
        let file = self.dir.join("state/trusted-keys");
        let read = || std::fs::read_to_string(&file).unwrap_or_default();
        wait_for(
            &format!("{} to take both rotations", self.name),
            || {
                let text = read();
                text.contains("stick 1 ") && text.contains("release 1 ")
            },
            read,
        );
    }

    /// `skolebro-agent provision --from STICK`: its exit code and stderr.
    fn provision(&self, stick: &Path) -> (Option<i32>, String) {
        let output = Command::new(self.dir.join("install/current/skolebro-agent"))
            .current_dir(&self.dir)
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .arg("provision")
            .arg("--from")
            .arg(stick)
            .output()
            .expect("running skolebro-agent provision");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            print_log_tail(&self.dir, "agent.log");
        }
    }
}

fn install_key(keys: &Path, agent: &Path, file: &str) -> PathBuf {
    let installed = agent.join(file);
    std::fs::copy(keys.join(file), &installed).unwrap();
    installed
}

fn status(dir: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(dir.join("state/status.json")).ok()?).ok()
}

#[test]
fn both_keys_rotate_on_a_running_fleet_and_an_agent_offline_during_it_catches_up() {
    // Built (or found up to date) first, so the time below is the scenario's alone.
    binaries();
    let started = Instant::now();
    let platform = Platform::start();
    let mut online = Agent::new(&platform, "online", 10001);
    let mut offline = Agent::new(&platform, "offline", 10002);
    online.start();
    offline.start();
    online.device();
    let offline_id = offline.device();
    // Made before the rotation, with the stick key and the release key of then.
    let old_stick = platform.stick("old-stick", 10003, &online.dir.join("drop"));
    let (status, body) = platform.register(Version::new(0, 0, 2), "release.key");
    assert_eq!(status, 201, "{body}");

    offline.stop();
    let admin_url = format!("http://{}", platform.admin);
    let keys = platform.keys();
    for role in ["stick", "release"] {
        let rotated = platform.cli(&[
            "rotate-key",
            role,
            "--keys",
            path_str(&keys),
            "--admin-url",
            &admin_url,
        ]);
        assert!(rotated.contains("sequence 1"), "{rotated}");
    }
    assert!(platform.keys().join("release-0.key.retired").is_file());

    // Central follows the release key: the old one registers nothing any more.
    let (status, body) = platform.register(Version::new(0, 0, 4), "release-0.key.retired");
    assert_eq!(status, 400, "{body}");
    let (status, body) = platform.register(Version::new(0, 0, 3), "release.key");
    assert_eq!(status, 201, "{body}");

    online.wait_for_rotations();
    let (code, stderr) = online.provision(&old_stick);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("signature"), "{stderr}");
    // The release key the online agent trusts now (read as its updater reads it) refuses a
    // manifest signed with the old key and takes one signed with the new key.
    let config = AgentConfig::load(&online.dir.join("agent.toml")).expect("the agent's config");
    let trusted = TrustedKeys::of(&config)
        .release()
        .expect("the trusted release key");
    let old = platform.manifest(Version::new(0, 0, 2), "release-0.key.retired");
    assert_eq!(
        ReleaseManifest::verify(&old, &trusted),
        Err(ReleaseError::BadSignature)
    );
    let new = platform.manifest(Version::new(0, 0, 3), "release.key");
    assert!(ReleaseManifest::verify(&new, &trusted).is_ok());

    // The agent that missed the rotation takes it from its first heartbeat answer.
    offline.start();
    offline.wait_for_rotations();
    let (code, stderr) = offline.provision(&old_stick);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("signature"), "{stderr}");
    let new_release = format!("0.0.3-{TARGET}");
    platform.roll_out(&new_release, &offline.site);
    let mut reason = None;
    wait_for(
        "the caught-up agent to check the release signed with the new key",
        || {
            reason = platform.refusal(&new_release, &offline_id);
            reason.is_some()
        },
        || format!("{:?}", get_json(platform.admin, "/admin/releases")),
    );
    // Its signature held: what stops it is only that it is older than the running one.
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("does not go up"), "{reason}");

    // A stick signed with the new key enrolls.
    let new_stick = platform.stick("new-stick", 10004, &offline.dir.join("drop"));
    let (code, stderr) = offline.provision(&new_stick);
    assert_eq!(code, Some(0), "{stderr}");
    println!(
        "both keys rotated and checked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
