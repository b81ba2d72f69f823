//! The SMB drop share's settings on the Pi (issue 20): where the settings a stick or a
//! central command carries ([`DropShare`]) become Samba's. Beside the data flow, not in it:
//! provisioning applies a stick's settings after enrolling, the daemon applies a
//! `drop_share` command, the pipeline asks [`size_cap_bytes`] before it reads a file, and
//! `skolebro-agent status` shows [`status`].
//!
//! The account in the settings is a sign-in name only, any valid name (`sas-eksport`): Samba
//! maps it onto the one Unix user the package creates (`skolebro-drop`, [`Target::unix_user`])
//! through a username map file the agent owns (`drop_share_usermap`, `username map = <file>`
//! in the package's include). Samba applies that map before it checks the password, so the
//! password is the Unix user's entry in a passdb file the agent also owns
//! (`drop_share_passdb`, `passdb backend = smbpasswd:<file>`), in Samba's own `smbpasswd`
//! format: one line, the Unix user and its NT hash, nothing else. The map also sends the Unix
//! user's own name to no account, so only the sign-in name the settings give signs in, and a
//! name the settings no longer give is refused. The agent, which runs without root, changes
//! the name or the password by rewriting these files (0600, atomically; `smbd` reads them at
//! each sign-in), and turns the share off by emptying both: no account, no sign-in. The
//! password never exists on the Pi in clear. What was applied, without the hash, and why the
//! last attempt failed, if it did, is kept in `<state_dir>/drop-share.json` for the size cap
//! and the status.

use std::path::{Path, PathBuf};

use skolebro_protocol::DropShare;

/// Kept in protocol: the heartbeat carries the status to central as `status.json` shows it.
pub use skolebro_protocol::drop_share::{Applied, ShareStatus};

use crate::outbox::unix_ms_now;
use crate::state::write_atomic_private;

/// The settings applied last, without the hash, and the outcome of the last attempt.
const APPLIED_FILE: &str = "drop-share.json";

/// The account the username map sends the Unix user's own name to: no passdb entry has it,
/// so signing in with the Unix user's name fails whatever the password.
const NO_SIGN_IN: &str = "skolebro-drop-share-unmapped";

/// Why settings could not be applied. Never carries the hash: its text is shown in the status.
#[derive(Debug, thiserror::Error)]
pub enum DropShareError {
    #[error(
        "the drop share settings are not valid: the account must be 1 to 32 letters, digits, \
         '-', '_' or '.' not starting with '-', the size cap at least 1 MiB and the hash 32 hex \
         digits"
    )]
    Invalid,
    #[error(
        "the drop share's Unix user {0} is not in /etc/passwd on this Pi (the package creates \
         it; reinstall skolebro-agent)"
    )]
    NoSuchUser(String),
    #[error(
        "the drop share has no password on this Pi (none was set, or the share was turned off): \
         settings that turn it on must carry one"
    )]
    NoPassword,
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Where the settings go: the passdb and username map `smbd` reads, the Unix user every
/// sign-in name is mapped onto, the state folder, and the user list the Unix user's uid is
/// read from (`/etc/passwd`; another file in tests).
#[derive(Debug, Clone)]
pub struct Target {
    pub passdb: PathBuf,
    pub usermap: PathBuf,
    /// `skolebro-drop`, which the package creates; the tests use `root`.
    pub unix_user: String,
    pub state_dir: PathBuf,
    pub passwd: PathBuf,
}

/// Applies `settings`: writes the username map and the passdb (the sign-in name mapped onto
/// the Unix user, and the Unix user's hash, when on; both empty when off), and records the
/// outcome for the status, an error included. A settings without a hash keeps the hash the
/// passdb holds. Nothing is written but the record when the settings cannot be applied.
pub fn apply(settings: &DropShare, target: &Target) -> Result<(), DropShareError> {
    let written = write_settings(settings, target);
    let recorded = record(&target.state_dir, settings, written.as_ref().err());
    if let (Err(_), Err(error)) = (&written, &recorded) {
        tracing::warn!(%error, "cannot record for the status that the drop share settings failed");
    }
    written?;
    recorded?;
    tracing::info!(enabled = settings.enabled, account = %settings.account, unix_user = %target.unix_user, size_cap_mib = settings.size_cap_mib, password_changed = settings.password_nt_hash.is_some(), "drop share settings applied");
    Ok(())
}

/// The drop share's settings and last outcome, once settings were applied or tried.
pub fn status(state_dir: &Path) -> Option<ShareStatus> {
    let bytes = std::fs::read(state_dir.join(APPLIED_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The largest file the drop folder takes, in bytes, once settings were applied; `None`
/// before (the share's tmpfs is then the only cap).
pub fn size_cap_bytes(state_dir: &Path) -> Option<u64> {
    let applied = status(state_dir)?.applied?;
    Some(u64::from(applied.size_cap_mib) << 20)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DropShareError {
    let path = path.to_owned();
    move |error| DropShareError::Io { path, error }
}

/// Writes the username map and the passdb, after checking everything they need. On, the map
/// is written first, so the Unix user's own name never signs in with a new password; off,
/// the passdb is emptied first.
fn write_settings(settings: &DropShare, target: &Target) -> Result<(), DropShareError> {
    if !settings.is_valid() {
        return Err(DropShareError::Invalid);
    }
    if !settings.enabled {
        write_atomic_private(&target.passdb, b"").map_err(io_error(&target.passdb))?;
        return write_atomic_private(&target.usermap, b"").map_err(io_error(&target.usermap));
    }
    let hash = match &settings.password_nt_hash {
        Some(hash) => hash.to_ascii_uppercase(),
        None => current_hash(&target.passdb).ok_or(DropShareError::NoPassword)?,
    };
    let uid = uid_of(&target.passwd, &target.unix_user)
        .ok_or_else(|| DropShareError::NoSuchUser(target.unix_user.clone()))?;
    // The last change time must be set: Samba takes 0 as "must change at next sign-in" and
    // refuses the account.
    let changed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_secs());
    let line = format!(
        "{}:{uid}:{}:{hash}:[U          ]:LCT-{changed:08X}:\n",
        target.unix_user,
        "X".repeat(32)
    );
    let map = usermap(&settings.account, &target.unix_user);
    write_atomic_private(&target.usermap, map.as_bytes()).map_err(io_error(&target.usermap))?;
    write_atomic_private(&target.passdb, line.as_bytes()).map_err(io_error(&target.passdb))
}

/// Samba's username map for `account` (smb.conf(5), "username map"): the sign-in name
/// becomes the Unix user, and mapping stops there (`!`); the Unix user's own name, unless it
/// is the sign-in name, becomes [`NO_SIGN_IN`]. Samba compares names without case, and so
/// does this.
fn usermap(account: &str, unix_user: &str) -> String {
    let mut map = format!(
        "# skolebro-agent writes this file from the drop share's settings.\n!{unix_user} = {account}\n"
    );
    if !account.eq_ignore_ascii_case(unix_user) {
        map.push_str(&format!("{NO_SIGN_IN} = {unix_user}\n"));
    }
    map
}

/// Records the outcome of an attempt in `<state_dir>/drop-share.json`: the settings when it
/// worked, the error's text (never the hash) when it failed, keeping the settings in force.
fn record(
    state_dir: &Path,
    settings: &DropShare,
    failed: Option<&DropShareError>,
) -> Result<(), DropShareError> {
    let now = unix_ms_now();
    let mut share = status(state_dir).unwrap_or_default();
    match failed {
        None => {
            share.applied = Some(Applied {
                enabled: settings.enabled,
                account: settings.account.clone(),
                size_cap_mib: settings.size_cap_mib,
            });
            share.applied_unix_ms = Some(now);
            share.last_error = None;
            share.last_error_unix_ms = None;
        }
        Some(error) => {
            share.last_error = Some(error.to_string());
            share.last_error_unix_ms = Some(now);
        }
    }
    let path = state_dir.join(APPLIED_FILE);
    let bytes = serde_json::to_vec(&share).map_err(|e| DropShareError::Io {
        path: path.clone(),
        error: std::io::Error::other(e),
    })?;
    write_atomic_private(&path, &bytes).map_err(io_error(&path))
}

/// The NT hash of the passdb's entry, if it has one.
fn current_hash(passdb: &Path) -> Option<String> {
    let text = std::fs::read_to_string(passdb).ok()?;
    let hash = text.lines().next()?.split(':').nth(3)?;
    (hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit())).then(|| hash.to_owned())
}

/// The uid of `user` in a passwd file.
fn uid_of(passwd: &Path, user: &str) -> Option<u32> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

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
            usermap: dir.join("drop-share.usermap"),
            unix_user: "skolebro-drop".into(),
            state_dir: dir.to_owned(),
            passwd: dir.join("passwd"),
        }
    }

    fn share(password: Option<&str>) -> DropShare {
        DropShare {
            enabled: true,
            account: "sas-eksport".into(),
            size_cap_mib: 16,
            password_nt_hash: password.map(nt_hash),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_passdb_holds_the_unix_user_and_its_hash_only_readable_by_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        assert_eq!(
            apply(&share(None), &target).unwrap_err().to_string(),
            DropShareError::NoPassword.to_string()
        );
        apply(&share(Some("password")), &target).unwrap();
        let passdb = read(&target.passdb);
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
        assert_eq!(mode(&target.passdb), 0o600);
        assert_eq!(size_cap_bytes(dir.path()), Some(16 << 20));
        let applied = read(&dir.path().join(APPLIED_FILE));
        assert!(
            !applied.to_ascii_uppercase().contains("8846F7EA"),
            "{applied}"
        );
    }

    #[test]
    fn the_username_map_sends_the_account_to_the_unix_user_and_the_unix_user_s_name_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        apply(&share(Some("password")), &target).unwrap();
        assert_eq!(
            read(&target.usermap),
            format!(
                "# skolebro-agent writes this file from the drop share's settings.\n\
                 !skolebro-drop = sas-eksport\n{NO_SIGN_IN} = skolebro-drop\n"
            )
        );
        assert_eq!(mode(&target.usermap), 0o600);
        let same = DropShare {
            account: "Skolebro-Drop".into(),
            ..share(None)
        };
        apply(&same, &target).unwrap();
        assert_eq!(
            read(&target.usermap),
            "# skolebro-agent writes this file from the drop share's settings.\n\
             !skolebro-drop = Skolebro-Drop\n"
        );
    }

    #[test]
    fn settings_without_a_password_keep_the_hash_and_off_empties_the_passdb_and_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        apply(&share(Some("password")), &target).unwrap();
        let before = read(&target.passdb);
        let renamed = DropShare {
            account: "sas-eksport2".into(),
            size_cap_mib: 32,
            ..share(None)
        };
        apply(&renamed, &target).unwrap();
        let hash_of = |passdb: &str| passdb.split(':').nth(3).unwrap().to_owned();
        assert_eq!(hash_of(&read(&target.passdb)), hash_of(&before));
        assert!(read(&target.usermap).contains("!skolebro-drop = sas-eksport2\n"));
        assert_eq!(size_cap_bytes(dir.path()), Some(32 << 20));
        let off = DropShare {
            enabled: false,
            ..share(None)
        };
        apply(&off, &target).unwrap();
        assert_eq!(read(&target.passdb), "");
        assert_eq!(read(&target.usermap), "");
    }

    #[test]
    fn an_invalid_account_is_refused_and_nothing_written_but_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = target(dir.path());
        let forged = DropShare {
            account: "a\nroot".into(),
            ..share(Some("password"))
        };
        assert!(matches!(
            apply(&forged, &target),
            Err(DropShareError::Invalid)
        ));
        assert!(!target.passdb.exists());
        assert!(!target.usermap.exists());
        assert_eq!(size_cap_bytes(dir.path()), None);
        let status = status(dir.path()).unwrap();
        assert_eq!(status.applied, None);
        assert_eq!(
            status.last_error.as_deref(),
            Some(DropShareError::Invalid.to_string().as_str())
        );
    }

    #[test]
    fn a_missing_unix_user_is_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target {
            unix_user: "nobody-here".into(),
            ..target(dir.path())
        };
        assert!(matches!(
            apply(&share(Some("password")), &target),
            Err(DropShareError::NoSuchUser(_))
        ));
        assert!(!target.passdb.exists());
        assert!(!target.usermap.exists());
        assert_eq!(size_cap_bytes(dir.path()), None);
    }

    #[test]
    fn a_failure_is_recorded_without_the_hash_keeping_the_settings_in_force_until_one_works() {
        let dir = tempfile::tempdir().unwrap();
        let good = target(dir.path());
        apply(&share(Some("password")), &good).unwrap();
        let before = status(dir.path()).unwrap();
        assert_eq!(before.last_error, None);
        assert!(before.applied_unix_ms.is_some());
        let missing = Target {
            unix_user: "nobody-here".into(),
            ..good.clone()
        };
        let changed = DropShare {
            size_cap_mib: 64,
            ..share(Some("Drop-share-pass-2"))
        };
        apply(&changed, &missing).unwrap_err();
        let failed = status(dir.path()).unwrap();
        assert_eq!(failed.applied, before.applied, "the settings in force stay");
        assert_eq!(size_cap_bytes(dir.path()), Some(16 << 20));
        let error = failed.last_error.unwrap();
        assert!(error.contains("nobody-here"), "{error}");
        assert!(failed.last_error_unix_ms.is_some());
        let file = read(&dir.path().join(APPLIED_FILE)).to_ascii_lowercase();
        assert!(!file.contains(&nt_hash("Drop-share-pass-2")), "{file}");
        apply(&changed, &good).unwrap();
        let fixed = status(dir.path()).unwrap();
        assert_eq!((fixed.last_error, fixed.last_error_unix_ms), (None, None));
        assert_eq!(size_cap_bytes(dir.path()), Some(64 << 20));
    }

    #[test]
    fn a_record_from_before_the_outcome_was_kept_still_gives_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(APPLIED_FILE),
            r#"{"enabled":true,"account":"skolebro-drop","size_cap_mib":8}"#,
        )
        .unwrap();
        assert_eq!(size_cap_bytes(dir.path()), Some(8 << 20));
    }
}
