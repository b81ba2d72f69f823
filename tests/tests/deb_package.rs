//! The Debian package of the agent: builds it with `cargo deb` for the host (dev profile, to
//! reuse the test build) and checks what `dpkg-deb` finds in it: the binary, the hardened
//! systemd unit, the udev rules, the default config, the maintainer script that creates
//! the service user, and the optional SMB drop share (Samba include, tmpfs mount unit). The arm64 and armhf packages for the Pi are built and checked by `.ci/arm`.
//!
//! Skips with a message when `cargo deb` or `dpkg-deb` is missing, unless
//! `SKOLEBRO_REQUIRE_CARGO_DEB=1` is set (as `.ci/arm` does, after installing cargo-deb).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

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

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_agent_package_holds_the_binary_unit_rules_and_maintainer_script() {
    if let Some(why) = missing_tools() {
        assert!(
            std::env::var_os("SKOLEBRO_REQUIRE_CARGO_DEB").is_none(),
            "SKOLEBRO_REQUIRE_CARGO_DEB is set but {why}"
        );
        println!("skipping the Debian package test: {why}");
        eprintln!("skipping the Debian package test: {why}");
        return;
    }
    let root = workspace_root();
    let out = tempfile::tempdir().expect("temp dir");

    // The dev profile reuses what `cargo test` just built; --fast keeps xz quick.
    run(cargo()
        .current_dir(&root)
        .args([
            "deb",
            "-p",
            "skolebro-agent",
            "--profile",
            "dev",
            "--fast",
            "--no-dbgsym",
            "-o",
        ])
        .arg(out.path()));
    let debs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .expect("output dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package expected: {debs:?}");
    let deb = &debs[0];

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
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    let entry = |path: &str| -> &str {
        contents
            .lines()
            .find(|line| line.ends_with(path))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{contents}"))
    };
    // "-rwxr-xr-x 0/0 2101968 2026-11-27 00:00 ./usr/bin/skolebro-agent"
    let mode_and_owner = |path: &str| -> (String, String) {
        let mut fields = entry(path).split_whitespace();
        let mode = fields.next().unwrap_or_default().to_owned();
        let owner = fields.next().unwrap_or_default().to_owned();
        (mode, owner)
    };
    let is_root = |owner: &str| owner == "0/0" || owner == "root/root";
    let (mode, owner) = mode_and_owner("./usr/bin/skolebro-agent");
    assert_eq!(mode, "-rwxr-xr-x");
    assert!(is_root(&owner), "{owner}");
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
        let (mode, owner) = mode_and_owner(file);
        assert_eq!(mode, "-rw-r--r--", "{file}");
        assert!(is_root(&owner), "{file}: {owner}");
    }
    // No key material in the default package: the trusted public keys only come with
    // `--variant release`, and private keys never.
    for line in contents.lines() {
        let lower = line.to_lowercase();
        assert!(
            !lower.contains("/keys/") && !lower.contains(".key") && !lower.contains(".pem"),
            "unexpected key file in the package: {line}"
        );
    }

    // Unpack files and control members to read them.
    let unpacked = out.path().join("unpacked");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&unpacked));

    let unit = read(&unpacked.join("usr/lib/systemd/system/skolebro-agent.service"));
    let unit_lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "User=skolebro",
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
    ] {
        assert!(
            settings.iter().any(|(k, v)| k == key && v == value),
            "the share lacks `{key} = {value}`:\n{share}"
        );
    }
    assert!(share.contains("[global]") && share.contains("[SKOLEBRO]"));
    let fields = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Suggests"));
    assert!(fields.contains("samba"), "{fields}");

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
