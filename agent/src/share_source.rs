//! The pull share a config stick gave (issue 20, pull mode), as the agent keeps it between
//! enrollment and the data flow: `provision` stores the stick's [`PullShare`] in the state
//! folder after enrolling ([`store`]), and the daemon reads it back as its export source
//! ([`load`]) when `agent.toml` names no `[source]` of its own (an explicit `[source]` in
//! `agent.toml` always wins: school IT on the box knows best).
//!
//! Two files, both 0600 and each replaced atomically: `share-source.json` holds the settings
//! without the hash, and `share-source.nthash` holds nothing but the account's NT hash, which
//! `smbclient` reads by the file's name (`PASSWD_FILE`, with `--pw-nt-hash`, see
//! [`crate::share`]). So the hash never passes through a log, a status, an error or a command
//! line, and the settings file can be read while debugging without showing it.

use std::io;
use std::path::{Path, PathBuf};

use skolebro_protocol::PullShare;

use crate::share::{AfterPull, ShareSource};
use crate::state::write_atomic_private;

/// The stick's share settings, without the hash, in the state folder.
pub const SETTINGS_FILE: &str = "share-source.json";

/// The account's NT hash, alone, in the state folder: `smbclient`'s password file.
pub const HASH_FILE: &str = "share-source.nthash";

/// What `share-source.json` holds: the stick's settings but the hash. A file stored before
/// sticks said what becomes of a pulled export (format 4) has no `after`, and deletes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    server: String,
    port: u16,
    share: String,
    folder: String,
    pattern: String,
    user: String,
    domain: Option<String>,
    poll_seconds: u32,
    stable_seconds: u32,
    #[serde(default)]
    after: AfterPull,
}

/// Why the stored share could not be read or written. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum ShareSourceError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: not the stick's share settings: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
}

/// Stores `settings` in `state_dir`, or removes what an earlier stick stored when `None`: a
/// stick is the site's whole word on its source, so one without a pull share takes back
/// what an earlier one gave. The hash is written first, so the settings file never names
/// a password file that is not there.
pub fn store(state_dir: &Path, settings: Option<&PullShare>) -> Result<(), ShareSourceError> {
    let io_error = |name: &str| {
        let path = state_dir.join(name);
        move |error| ShareSourceError::Io { path, error }
    };
    let Some(settings) = settings else {
        for name in [SETTINGS_FILE, HASH_FILE] {
            match std::fs::remove_file(state_dir.join(name)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(name)(error))
                }
                _ => {}
            }
        }
        return Ok(());
    };
    let stored = Stored {
        server: settings.server.clone(),
        port: settings.port,
        share: settings.share.clone(),
        folder: settings.folder.clone(),
        pattern: settings.pattern.clone(),
        user: settings.user.clone(),
        domain: settings.domain.clone(),
        poll_seconds: settings.poll_seconds,
        stable_seconds: settings.stable_seconds,
        after: settings.after.clone(),
    };
    let hash = format!("{}\n", settings.password_nt_hash);
    write_atomic_private(&state_dir.join(HASH_FILE), hash.as_bytes())
        .map_err(io_error(HASH_FILE))?;
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| io_error(SETTINGS_FILE)(e.into()))?;
    write_atomic_private(&state_dir.join(SETTINGS_FILE), &json).map_err(io_error(SETTINGS_FILE))
}

/// The share a stick gave, as the daemon's source, or `None` when no stick gave one. Its
/// password file is the stored hash, `after` is the stick's, and the timeout and the program
/// are the defaults of `[source] kind = "smb-share"`.
pub fn load(state_dir: &Path) -> Result<Option<ShareSource>, ShareSourceError> {
    let path = state_dir.join(SETTINGS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ShareSourceError::Io { path, error }),
    };
    let stored: Stored =
        serde_json::from_slice(&bytes).map_err(|e| ShareSourceError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    Ok(Some(ShareSource {
        server: stored.server,
        port: stored.port,
        share: stored.share,
        folder: stored.folder,
        pattern: stored.pattern,
        user: stored.user,
        domain: stored.domain,
        password_file: state_dir.join(HASH_FILE),
        poll_seconds: u64::from(stored.poll_seconds),
        stable_seconds: u64::from(stored.stable_seconds),
        after: stored.after,
        timeout_seconds: ShareSource::default_timeout_seconds(),
        smbclient: ShareSource::default_smbclient(),
        from_stick: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::drop_share::nt_hash;
    use std::os::unix::fs::PermissionsExt as _;

    fn settings() -> PullShare {
        PullShare {
            server: "filserver.skule.example.no".into(),
            port: 4450,
            share: "Eksport".into(),
            folder: "sas".into(),
            pattern: "*.csv".into(),
            user: "skolebro-les".into(),
            domain: Some("SKULE".into()),
            password_nt_hash: nt_hash("Pull-share-pass-1"),
            poll_seconds: 30,
            stable_seconds: 5,
            after: AfterPull::Move("hentet".into()),
        }
    }

    #[test]
    fn the_stored_share_reads_back_as_a_stick_source_with_the_hash_only_in_its_own_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), Some(&settings())).unwrap();
        for name in [SETTINGS_FILE, HASH_FILE] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let json = std::fs::read_to_string(dir.path().join(SETTINGS_FILE)).unwrap();
        assert!(!json.contains(&settings().password_nt_hash), "{json}");
        let hash = std::fs::read_to_string(dir.path().join(HASH_FILE)).unwrap();
        assert_eq!(hash.trim(), settings().password_nt_hash);

        let source = load(dir.path()).unwrap().unwrap();
        assert!(source.from_stick);
        assert_eq!(source.password_file, dir.path().join(HASH_FILE));
        assert_eq!(
            (source.server.as_str(), source.port, source.share.as_str()),
            ("filserver.skule.example.no", 4450, "Eksport")
        );
        assert_eq!((source.poll_seconds, source.stable_seconds), (30, 5));
        assert_eq!(source.domain.as_deref(), Some("SKULE"));
        assert_eq!(source.after, AfterPull::Move("hentet".into()));
        assert!(json.contains("\"move:hentet\""), "{json}");
        assert_eq!(source.check(), Ok(()));
        assert_eq!(source.shown().after, AfterPull::Move("hentet".into()));

        let deleting = PullShare {
            after: AfterPull::Delete,
            ..settings()
        };
        store(dir.path(), Some(&deleting)).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().after, AfterPull::Delete);
    }

    #[test]
    fn settings_stored_from_a_format_4_stick_without_after_still_load_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), Some(&settings())).unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("after");
        std::fs::write(&path, json.to_string()).unwrap();
        let source = load(dir.path()).unwrap().unwrap();
        assert_eq!(source.after, AfterPull::Delete);
        assert_eq!(source.server, "filserver.skule.example.no");
    }

    #[test]
    fn a_stick_without_a_pull_share_takes_back_what_an_earlier_one_stored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        store(dir.path(), None).unwrap();
        store(dir.path(), Some(&settings())).unwrap();
        store(dir.path(), None).unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(HASH_FILE).exists());
    }

    #[test]
    fn a_settings_file_that_does_not_parse_is_malformed_and_names_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), "{\"server\": 1}").unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains(SETTINGS_FILE), "{error}");
    }
}
