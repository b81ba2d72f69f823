//! The SMB drop share's settings on the Pi (issue 20): where the settings a stick or a
//! central command carries ([`DropShare`]) become Samba's. Beside the data flow, not in it:
//! provisioning applies a stick's settings after enrolling, the daemon applies a
//! `drop_share` command, and the pipeline asks [`size_cap_bytes`] before it reads a file.
//!
//! Samba reads the share's one account from a passdb file the agent owns
//! (`drop_share_passdb`, `passdb backend = smbpasswd:<file>` in the package's include), in
//! Samba's own `smbpasswd` format: one line, the account and its NT hash, nothing else. So
//! the agent, which runs without root, changes the password by rewriting that file (0600,
//! atomically; `smbd` reads it at each sign-in), and turns the share off by emptying it: no
//! account, no sign-in. The password never exists on the Pi in clear. What was applied,
//! without the hash, is kept in `<state_dir>/drop-share.json` for the size cap.

use std::path::{Path, PathBuf};

use skolebro_protocol::DropShare;

use crate::state::write_atomic_private;

/// The settings applied last, without the hash: the size cap the pipeline enforces.
const APPLIED_FILE: &str = "drop-share.json";

/// Why settings could not be applied. Never carries the hash.
#[derive(Debug, thiserror::Error)]
pub enum DropShareError {
    #[error("the drop share settings are not valid (account, size cap or hash)")]
    Invalid,
    #[error("the drop share account {0} is not a Unix user on this Pi (/etc/passwd)")]
    NoSuchUser(String),
    #[error("the drop share has no password yet: the first settings must carry one")]
    NoPassword,
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What the agent keeps of the applied settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Applied {
    enabled: bool,
    account: String,
    size_cap_mib: u32,
}

/// Where the settings go: the passdb `smbd` reads, the state folder, and the user list the
/// account's uid is read from (`/etc/passwd`; another file in tests).
#[derive(Debug, Clone)]
pub struct Target {
    pub passdb: PathBuf,
    pub state_dir: PathBuf,
    pub passwd: PathBuf,
}

/// Applies `settings`: writes the passdb (the account and its hash when on; empty when off)
/// and records what was applied. A settings without a hash keeps the hash the passdb holds.
pub fn apply(settings: &DropShare, target: &Target) -> Result<(), DropShareError> {
    if !settings.is_valid() {
        return Err(DropShareError::Invalid);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| DropShareError::Io { path, error }
    };
    let line = if settings.enabled {
        let hash = match &settings.password_nt_hash {
            Some(hash) => hash.to_ascii_uppercase(),
            None => current_hash(&target.passdb).ok_or(DropShareError::NoPassword)?,
        };
        let uid = uid_of(&target.passwd, &settings.account)
            .ok_or_else(|| DropShareError::NoSuchUser(settings.account.clone()))?;
        // The last change time must be set: Samba takes 0 as "must change at next sign-in"
        // and refuses the account.
        let changed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_secs());
        format!(
            "{}:{uid}:{}:{hash}:[U          ]:LCT-{changed:08X}:\n",
            settings.account,
            "X".repeat(32)
        )
    } else {
        String::new()
    };
    write_atomic_private(&target.passdb, line.as_bytes()).map_err(io(&target.passdb))?;
    let applied = Applied {
        enabled: settings.enabled,
        account: settings.account.clone(),
        size_cap_mib: settings.size_cap_mib,
    };
    let path = target.state_dir.join(APPLIED_FILE);
    let bytes = serde_json::to_vec(&applied).map_err(|e| DropShareError::Io {
        path: path.clone(),
        error: std::io::Error::other(e),
    })?;
    write_atomic_private(&path, &bytes).map_err(io(&path))?;
    tracing::info!(enabled = settings.enabled, account = %settings.account, size_cap_mib = settings.size_cap_mib, password_changed = settings.password_nt_hash.is_some(), "drop share settings applied");
    Ok(())
}

/// The largest file the drop folder takes, in bytes, once settings were applied; `None`
/// before (the share's tmpfs is then the only cap).
pub fn size_cap_bytes(state_dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(state_dir.join(APPLIED_FILE)).ok()?;
    let applied: Applied = serde_json::from_slice(&bytes).ok()?;
    Some(u64::from(applied.size_cap_mib) << 20)
}

/// The NT hash of the passdb's entry, if it has one.
fn current_hash(passdb: &Path) -> Option<String> {
    let text = std::fs::read_to_string(passdb).ok()?;
    let hash = text.lines().next()?.split(':').nth(3)?;
    (hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit())).then(|| hash.to_owned())
}

/// The uid of `account` in a passwd file.
fn uid_of(passwd: &Path, account: &str) -> Option<u32> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == account).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::drop_share::nt_hash;

    fn target(dir: &Path) -> Target {
        std::fs::write(
            dir.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nskolebro-drop:x:998:998::/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        Target {
            passdb: dir.join("drop-share.smbpasswd"),
            state_dir: dir.to_owned(),
            passwd: dir.join("passwd"),
        }
    }

    fn share(password: Option<&str>) -> DropShare {
        DropShare {
            enabled: true,
            account: "skolebro-drop".into(),
            size_cap_mib: 16,
            password_nt_hash: password.map(nt_hash),
        }
    }

    #[test]
    fn the_passdb_holds_the_account_and_its_hash_only_readable_by_the_agent() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        assert_eq!(
            apply(&share(None), &target).unwrap_err().to_string(),
            DropShareError::NoPassword.to_string()
        );
        apply(&share(Some("password")), &target).unwrap();
        let passdb = std::fs::read_to_string(&target.passdb).unwrap();
        let expected = format!(
            "skolebro-drop:998:{}:8846F7EAEE8FB117AD06BDD830B7586C:[U          ]:LCT-",
            "X".repeat(32)
        );
        assert!(passdb.starts_with(&expected), "{passdb}");
        let changed = passdb[expected.len()..].trim_end_matches(":\n");
        assert!(
            u64::from_str_radix(changed, 16).unwrap() > 1_700_000_000,
            "{passdb}"
        );
        let mode = std::fs::metadata(&target.passdb)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(size_cap_bytes(dir.path()), Some(16 << 20));
        let applied = std::fs::read_to_string(dir.path().join(APPLIED_FILE)).unwrap();
        assert!(
            !applied.to_ascii_uppercase().contains("8846F7EA"),
            "{applied}"
        );
    }

    #[test]
    fn settings_without_a_password_keep_the_hash_and_off_empties_the_passdb() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        apply(&share(Some("password")), &target).unwrap();
        let before = std::fs::read_to_string(&target.passdb).unwrap();
        let bigger = DropShare {
            size_cap_mib: 32,
            ..share(None)
        };
        apply(&bigger, &target).unwrap();
        assert_eq!(std::fs::read_to_string(&target.passdb).unwrap(), before);
        assert_eq!(size_cap_bytes(dir.path()), Some(32 << 20));
        let off = DropShare {
            enabled: false,
            ..share(None)
        };
        apply(&off, &target).unwrap();
        assert_eq!(std::fs::read_to_string(&target.passdb).unwrap(), "");
    }

    #[test]
    fn an_account_that_is_no_unix_user_is_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        let stranger = DropShare {
            account: "nobody-here".into(),
            ..share(Some("password"))
        };
        assert!(matches!(
            apply(&stranger, &target),
            Err(DropShareError::NoSuchUser(_))
        ));
        assert!(!target.passdb.exists());
        assert_eq!(size_cap_bytes(dir.path()), None);
    }
}
