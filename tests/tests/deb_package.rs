//! The Debian packages of the agent and of central: builds each with `cargo deb` for the host
//! (dev profile, to reuse the test build) and checks what `dpkg-deb` finds in it: the binary,
//! the hardened systemd unit, the udev rules, the default or example config, the man pages and
//! shell completions, the maintainer script that creates the service user, and the agent's
//! optional SMB drop share (Samba include, tmpfs mount unit). The arm64 and
//! armhf packages of the agent for the Pi are built and checked by `.ci/arm`.
//!
//! Skips with a message when `cargo deb` or `dpkg-deb` is missing, unless
//! `SKOLEBRO_REQUIRE_CARGO_DEB=1` is set (as `.ci/arm` does, after installing cargo-deb).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use skolebro_tests::harness::{binaries, workspace_root};

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn works(command: &mut Command) -> bool {
    command
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Option<&'static str> {
    if !works(cargo().args(["deb", "--version"])) {
        return Some("cargo-deb is not installed (cargo install --locked cargo-deb)");
    }
    if !works(Command::new("dpkg-deb").arg("--version")) {
        return Some("dpkg-deb is not installed (apt-get install dpkg)");
    }
    None
}

fn run(command: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        status.success(),
        "{command:?} failed ({status}):\n{}\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout).expect("UTF-8 output")
}

/// The value of `key=` in a systemd unit; the test fails if the unit lacks the key.
fn mount_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next()
        .unwrap_or_else(|| panic!("the unit lacks `{key}=`:\n{unit}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Skips (returning `None`) when the tools are missing and CI does not require them.
fn tools_or_skip() -> Option<()> {
    if let Some(why) = missing_tools() {
        assert!(
            std::env::var_os("SKOLEBRO_REQUIRE_CARGO_DEB").is_none(),
            "SKOLEBRO_REQUIRE_CARGO_DEB is set but {why}"
        );
        println!("skipping the Debian package test: {why}");
        eprintln!("skipping the Debian package test: {why}");
        return None;
    }
    Some(())
}

/// Writes the package's man pages and completions where its cargo-deb assets expect them
/// (`target/release/generated`, which the dev profile reads as `target/debug/generated`),
/// then builds the package into `out` and returns its path.
fn build_package(package: &str, binary: &Path, out: &Path) -> PathBuf {
    let root = workspace_root();
    let generated = binary.with_file_name("generated");
    run(Command::new(binary)
        .args(["manual", "--out"])
        .arg(&generated));
    // The dev profile reuses what `cargo test` just built; --fast keeps xz quick.
    run(cargo()
        .current_dir(&root)
        .args([
            "deb",
            "-p",
            package,
            "--profile",
            "dev",
            "--fast",
            "--no-dbgsym",
            "-o",
        ])
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("output dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package expected: {debs:?}");
    debs[0].clone()
}

/// The package's file list, as `dpkg-deb --contents` prints it.
struct Contents(String);

impl Contents {
    fn of(deb: &Path) -> Self {
        Self(run(Command::new("dpkg-deb").arg("--contents").arg(deb)))
    }

    fn entry(&self, path: &str) -> &str {
        self.0
            .lines()
            .find(|line| line.ends_with(path))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{}", self.0))
    }

    /// "-rwxr-xr-x 0/0 2101968 2026-11-27 00:00 ./usr/bin/skolebro-agent": the mode, and
    /// whether root owns it.
    fn mode_of_root_file(&self, path: &str) -> String {
        let mut fields = self.entry(path).split_whitespace();
        let mode = fields.next().unwrap_or_default().to_owned();
        let owner = fields.next().unwrap_or_default();
        assert!(owner == "0/0" || owner == "root/root", "{path}: {owner}");
        mode
    }

    /// Man pages for the binary and each of its commands, and completions for three shells.
    fn assert_manual(&self, binary: &str, commands: &[&str]) {
        let mut files = vec![
            format!("./usr/share/man/man1/{binary}.1"),
            format!("./usr/share/bash-completion/completions/{binary}"),
            format!("./usr/share/zsh/vendor-completions/_{binary}"),
            format!("./usr/share/fish/vendor_completions.d/{binary}.fish"),
        ];
        files.extend(
            commands
                .iter()
                .map(|command| format!("./usr/share/man/man1/{binary}-{command}.1")),
        );
        for file in &files {
            assert_eq!(self.mode_of_root_file(file), "-rw-r--r--", "{file}");
        }
        assert!(
            !self.0.contains("-manual.1"),
            "the hidden manual command has no page:\n{}",
            self.0
        );
        for line in self
            .0
            .lines()
            .filter(|line| line.contains("/man1/") && !line.ends_with('/'))
        {
            assert!(
                line.contains(&format!("/man1/{binary}")),
                "another binary's page in the package: {line}"
            );
        }
    }

    /// No key material: the trusted public keys only come with `--variant release`, and
    /// private keys never.
    fn assert_no_keys(&self) {
        for line in self.0.lines() {
            let lower = line.to_lowercase();
            assert!(
                !lower.contains("/keys/") && !lower.contains(".key") && !lower.contains(".pem"),
                "unexpected key file in the package: {line}"
            );
        }
    }
}

#[test]
fn the_agent_package_holds_the_binary_unit_rules_manual_and_maintainer_script() {
    if tools_or_skip().is_none() {
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let deb = &build_package("skolebro-agent", &binaries().agent, out.path());

    // Control fields.
    let fields = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .args(["Package", "Version", "Depends", "Section"]));
    assert!(fields.contains("Package: skolebro-agent\n"), "{fields}");
    assert!(fields.contains("Version: 0."), "{fields}");
    assert!(
        fields.contains("adduser"),
        "postinst needs adduser: {fields}"
    );
    assert!(fields.contains("Section: admin"), "{fields}");

    // Files and their modes.
    let contents = Contents::of(deb);
    assert_eq!(
        contents.mode_of_root_file("./usr/bin/skolebro-agent"),
        "-rwxr-xr-x"
    );
    for file in [
        "./usr/lib/systemd/system/skolebro-agent.service",
        "./usr/lib/udev/rules.d/99-skolebro-stick.rules",
        "./usr/lib/udev/rules.d/60-skolebro-watchdog.rules",
        "./etc/skolebro/agent.toml",
        "./usr/share/doc/skolebro-agent/README.md",
        "./usr/share/skolebro-agent/samba/skolebro-drop-share.conf",
        "./usr/lib/systemd/system/srv-skolebro-drop.mount",
        "./usr/lib/tmpfiles.d/skolebro-drop.conf",
    ] {
        assert_eq!(contents.mode_of_root_file(file), "-rw-r--r--", "{file}");
    }
    contents.assert_manual("skolebro-agent", &["check", "run", "status", "provision"]);
    contents.assert_no_keys();

    // Unpack files and control members to read them.
    let unpacked = out.path().join("unpacked");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&unpacked));

    let unit = read(&unpacked.join("usr/lib/systemd/system/skolebro-agent.service"));
    let unit_lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "User=skolebro",
        "Type=notify",
        "WatchdogSec=60s",
        "ExecStart=/var/lib/skolebro/current/skolebro-agent run --config /etc/skolebro/agent.toml",
        "StartLimitIntervalSec=0",
        "Restart=always",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "StateDirectory=skolebro",
        "ReadWritePaths=/var/lib/skolebro",
        "DeviceAllow=/dev/gpiochip0 rw",
        "DeviceAllow=/dev/watchdog rw",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit_lines.contains(&line), "unit lacks `{line}`:\n{unit}");
    }
    // Nothing else made writable behind the state folder's back, but the drop share's tmpfs.
    let writable: Vec<&&str> = unit_lines
        .iter()
        .filter(|l| l.starts_with("ReadWritePaths="))
        .collect();
    assert_eq!(
        writable,
        [
            &"ReadWritePaths=/var/lib/skolebro",
            &"ReadWritePaths=-/srv/skolebro/drop"
        ]
    );

    // The drop share's folder is a size-capped tmpfs, never the SD card, and off by default
    // (no [Install] target enabled by the package's scripts).
    let mount = read(&unpacked.join("usr/lib/systemd/system/srv-skolebro-drop.mount"));
    let mount_lines: Vec<&str> = mount.lines().map(str::trim).collect();
    for line in [
        "What=tmpfs",
        "Type=tmpfs",
        "Where=/srv/skolebro/drop",
        "Options=size=64m,mode=0700,nosuid,nodev,noexec",
        "RequiredBy=smbd.service",
    ] {
        assert!(
            mount_lines.contains(&line),
            "mount unit lacks `{line}`:\n{mount}"
        );
    }
    // The drop folder the packaged agent.toml names for the share is that tmpfs, capped.
    let agent_toml = read(&unpacked.join("etc/skolebro/agent.toml"));
    let drop_dir = agent_toml
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix("drop_dir = "))
        .map(|v| v.trim_matches('"'))
        .next()
        .unwrap_or_else(|| panic!("agent.toml names no drop_dir for the share:\n{agent_toml}"));
    assert_eq!(mount_value(&mount, "Type"), "tmpfs", "{mount}");
    assert_eq!(mount_value(&mount, "Where"), drop_dir, "{mount}");
    let size_cap = mount_value(&mount, "Options")
        .split(',')
        .find_map(|option| option.strip_prefix("size="))
        .unwrap_or_else(|| panic!("the drop folder's tmpfs has no size cap:\n{mount}"));
    assert!(
        size_cap.ends_with('m') && size_cap.trim_end_matches('m').parse::<u32>().is_ok(),
        "the cap is not in MiB: {size_cap}"
    );
    let tmpfiles = read(&unpacked.join("usr/lib/tmpfiles.d/skolebro-drop.conf"));
    assert!(
        tmpfiles
            .lines()
            .any(|l| l == "z /srv/skolebro/drop 0730 skolebro skolebro-drop -"),
        "{tmpfiles}"
    );
    // The share: SMB3 only, encrypted, no guest, one account, write-only, capped.
    let share = read(&unpacked.join("usr/share/skolebro-agent/samba/skolebro-drop-share.conf"));
    let settings: Vec<(String, String)> = share
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    for (key, value) in [
        ("server min protocol", "SMB3"),
        ("server smb encrypt", "required"),
        ("map to guest", "Never"),
        ("restrict anonymous", "2"),
        ("path", "/srv/skolebro/drop"),
        ("valid users", "skolebro-drop"),
        ("force user", "skolebro-drop"),
        ("guest ok", "no"),
        ("browseable", "no"),
        ("create mask", "0240"),
        ("force create mode", "0240"),
        ("directory mask", "0"),
        (
            "passdb backend",
            "smbpasswd:/var/lib/skolebro/drop-share.smbpasswd",
        ),
    ] {
        assert!(
            settings.iter().any(|(k, v)| k == key && v == value),
            "the share lacks `{key} = {value}`:\n{share}"
        );
    }
    assert!(share.contains("[global]") && share.contains("[SKOLEBRO]"));
    // The account's sign-in name is mapped onto skolebro-drop by a map the agent writes.
    let global = share.split("[SKOLEBRO]").next().unwrap_or_default();
    assert!(
        global
            .lines()
            .any(|l| l.trim() == "username map = /var/lib/skolebro/drop-share.usermap"),
        "[global] lacks the agent's username map:\n{share}"
    );
    let fields = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Suggests"));
    assert!(
        fields.contains("samba") && fields.contains("smbclient"),
        "{fields}"
    );

    let stick = read(&unpacked.join("usr/lib/udev/rules.d/99-skolebro-stick.rules"));
    for needle in [
        r#"ENV{ID_BUS}!="usb""#,
        r#"ENV{ID_FS_LABEL}!="SKOLEBRO*""#,
        r#"TAG+="systemd""#,
        "/usr/bin/systemd-mount",
        "--options=ro,",
        "/run/media/skolebro-stick",
    ] {
        assert!(
            stick.contains(needle),
            "stick rule lacks `{needle}`:\n{stick}"
        );
    }

    let control = unpacked.join("DEBIAN");
    let postinst_path = control.join("postinst");
    let postinst = read(&postinst_path);
    assert!(postinst.starts_with("#!/bin/sh"), "{postinst}");
    assert!(
        postinst.contains("adduser --system --group"),
        "postinst does not create the user:\n{postinst}"
    );
    assert!(postinst.contains("adduser skolebro gpio"), "{postinst}");
    assert!(
        postinst.contains("skolebro-drop") && postinst.contains("adduser skolebro skolebro-drop"),
        "postinst does not create the drop share's account:\n{postinst}"
    );
    assert!(
        postinst.contains("/var/lib/skolebro") && postinst.contains("current.tmp"),
        "postinst does not install the first release:\n{postinst}"
    );
    assert!(
        !postinst.contains("#DEBHELPER#"),
        "cargo-deb did not fill in the systemd snippets:\n{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("skolebro-agent.service"),
        "postinst does not enable the unit:\n{postinst}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&postinst_path)
        .expect("postinst")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "postinst must be executable");
    run(Command::new("sh").arg("-n").arg(&postinst_path));

    let conffiles = read(&control.join("conffiles"));
    assert!(
        conffiles.lines().any(|l| l == "/etc/skolebro/agent.toml"),
        "{conffiles}"
    );

    // The packaged binary is the agent and runs (host build).
    let version = run(Command::new(unpacked.join("usr/bin/skolebro-agent")).arg("--version"));
    assert!(version.starts_with("skolebro-agent "), "{version}");
}

#[test]
fn the_central_package_holds_the_binary_hardened_unit_example_config_and_manual() {
    if tools_or_skip().is_none() {
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let deb = &build_package("skolebro-central", &binaries().central, out.path());

    let fields = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .args(["Package", "Depends", "Section"]));
    assert!(fields.contains("Package: skolebro-central\n"), "{fields}");
    assert!(fields.contains("adduser"), "{fields}");

    let contents = Contents::of(deb);
    assert_eq!(
        contents.mode_of_root_file("./usr/bin/skolebro-central"),
        "-rwxr-xr-x"
    );
    for file in [
        "./usr/lib/systemd/system/skolebro-central.service",
        "./usr/share/doc/skolebro-central/central.toml.example",
        "./usr/share/doc/skolebro-central/README.md",
        "./usr/share/doc/skolebro-central/prometheus-alerts.yml",
    ] {
        assert_eq!(contents.mode_of_root_file(file), "-rw-r--r--", "{file}");
    }
    contents.assert_manual("skolebro-central", &["serve", "add-user", "site"]);
    contents.assert_no_keys();
    assert!(
        !contents.0.contains("./etc/skolebro/central.toml"),
        "the config is the operator's to write: the unit waits for it"
    );

    let unpacked = out.path().join("unpacked");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&unpacked));
    let unit = read(&unpacked.join("usr/lib/systemd/system/skolebro-central.service"));
    let unit_lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "User=skolebro-central",
        "ConditionPathExists=/etc/skolebro/central.toml",
        "ExecStart=/usr/bin/skolebro-central serve",
        "Type=notify",
        "WatchdogSec=60s",
        "StateDirectory=skolebro-central",
        "ReadWritePaths=/var/lib/skolebro-central",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit_lines.contains(&line), "unit lacks `{line}`:\n{unit}");
    }

    let postinst_path = unpacked.join("DEBIAN/postinst");
    let postinst = read(&postinst_path);
    assert!(
        postinst.contains("adduser --system --group") && postinst.contains("skolebro-central"),
        "postinst does not create the user:\n{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("skolebro-central.service"),
        "postinst does not enable the unit:\n{postinst}"
    );
    run(Command::new("sh").arg("-n").arg(&postinst_path));

    // The example config is one central reads: every key path is where `skolebro-provision
    // init --dir /etc/skolebro/keys` writes it, and the store is in the state folder.
    let example = read(&unpacked.join("usr/share/doc/skolebro-central/central.toml.example"));
    let config = skolebro_central::CentralConfig::parse(&example, Path::new("/etc/skolebro"))
        .unwrap_or_else(|e| panic!("the example config does not parse: {e}\n{example}"));
    let keys = tempfile::tempdir().expect("temp dir");
    run(Command::new(&binaries().provision)
        .args(["init", "--dir"])
        .arg(keys.path().join("keys")));
    for line in example
        .lines()
        .filter(|line| line.contains("/etc/skolebro/keys/"))
    {
        let file = line
            .rsplit('/')
            .next()
            .and_then(|tail| tail.strip_suffix('"'))
            .unwrap_or_else(|| panic!("a key path line: {line}"));
        assert!(
            keys.path().join("keys").join(file).exists(),
            "`init` writes no {file}, which the example config names"
        );
    }
    assert!(format!("{config:?}").contains("/var/lib/skolebro-central/central.db"));

    let version = run(Command::new(unpacked.join("usr/bin/skolebro-central")).arg("--version"));
    assert!(version.starts_with("skolebro-central "), "{version}");
}
