//! The stick key and the release key this device trusts now (issue 18, "Keys that can be
//! rotated"). The agent is installed with `stick.pub` and `release.pub` (sequence 0); each
//! key rotation in central's heartbeat answer ([`skolebro_protocol::rotation`]) that the key
//! trusted now signed (and, for the release key, the root key of `root.pub` too) replaces it,
//! and the new key is persisted in `<state_dir>/trusted-keys`, so it holds across restarts and
//! the old key is refused from then on. Central cannot forge a rotation; it can only withhold
//! one, and a device that was offline catches up with the next answer, which carries every
//! rotation there is.
//!
//! The file has one line per rotated role, `<role> <sequence> <64 hex>`, replaced atomically.
//! A file that does not read is an error, never "no rotation": falling back to the installed
//! key is what the holder of a leaked old key wants.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use skolebro_protocol::rotation::{KeyRole, KeyRotation, RootVerifyingKey, RotationError};
use skolebro_protocol::{ReleaseVerifyingKey, StickVerifyingKey};

use crate::config::AgentConfig;
use crate::state::write_atomic;

/// The file in the state folder that holds the rotated keys.
pub const TRUSTED_KEYS_FILE: &str = "trusted-keys";

/// Why a key could not be read or a rotation was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// An installed key file or the trusted-keys file is missing or unreadable.
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// A rotation central sent did not verify; the key trusted now stays.
    #[error("{role} key rotation refused: {error}")]
    Refused { role: KeyRole, error: RotationError },
    /// A rotation central sent is not base64 or no rotation statement at all.
    #[error("key rotation from central is unreadable: {0}")]
    Unreadable(String),
}

impl TrustError {
    /// The file it names and the reason, for callers whose own errors name a key file;
    /// `installed` stands in for errors that name none.
    pub fn into_path_and_reason(self, installed: &Path) -> (PathBuf, String) {
        match self {
            TrustError::Key { path, reason } => (path, reason),
            other => (installed.to_owned(), other.to_string()),
        }
    }
}

/// A key this device trusts, with the sequence of the rotation that made it (0: installed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trusted {
    sequence: u64,
    key: [u8; 32],
}

/// Where the trusted keys come from: the installed key files and the state folder's file.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    file: PathBuf,
    stick_pub: PathBuf,
    release_pub: PathBuf,
    root_pub: PathBuf,
}

impl TrustedKeys {
    /// The keys of `config`: `stick_key`, `release_key`, `root_key` and the state folder.
    pub fn of(config: &AgentConfig) -> TrustedKeys {
        TrustedKeys {
            file: config.state_dir.join(TRUSTED_KEYS_FILE),
            stick_pub: config.stick_key.clone(),
            release_pub: config.release_key.clone(),
            root_pub: config.root_key.clone(),
        }
    }

    /// The stick key trusted now: the newest rotated one, else `stick_key`.
    pub fn stick(&self) -> Result<StickVerifyingKey, TrustError> {
        let trusted = self.trusted(KeyRole::Stick)?;
        StickVerifyingKey::from_bytes(trusted.key).map_err(|e| self.key_error(KeyRole::Stick, e))
    }

    /// The release key trusted now: the newest rotated one, else `release_key`.
    pub fn release(&self) -> Result<ReleaseVerifyingKey, TrustError> {
        let trusted = self.trusted(KeyRole::Release)?;
        ReleaseVerifyingKey::from_bytes(trusted.key)
            .map_err(|e| self.key_error(KeyRole::Release, e))
    }

    /// Checks central's rotations (base64, in any order) role by role in sequence order
    /// against the key trusted now, and persists each one that holds before the next is
    /// checked. Rotations applied before, and one to the very key trusted now (a device
    /// imaged with a rotated key), are skipped; after a refused one, the rest of its role
    /// are not tried. Returns what happened to each rotation not applied before:
    /// `Ok((role, sequence))` for a key now trusted.
    pub fn apply(&self, rotations: &[String]) -> Vec<Result<(KeyRole, u64), TrustError>> {
        let mut results = Vec::new();
        let mut claimed = Vec::new();
        for text in rotations {
            let read = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| e.to_string())
                .and_then(|bytes| match KeyRotation::read_unchecked(&bytes) {
                    Ok(rotation) => Ok((rotation.role, rotation.sequence, rotation.new_key, bytes)),
                    Err(e) => Err(e.to_string()),
                });
            match read {
                Ok(rotation) => claimed.push(rotation),
                Err(error) => results.push(Err(TrustError::Unreadable(error))),
            }
        }
        claimed.sort_by_key(|(role, sequence, _, _)| (*role, *sequence));
        let mut refused_roles = Vec::new();
        for (role, sequence, new_key, bytes) in claimed {
            if refused_roles.contains(&role) {
                continue;
            }
            let outcome = self.trusted(role).and_then(|trusted| {
                // A device imaged after a rotation ships its key as sequence 0: the
                // rotations to that key and before it are not for it.
                if sequence <= trusted.sequence || new_key == trusted.key {
                    return Ok(None);
                }
                self.verify(role, &bytes, trusted).map(Some)
            });
            match outcome {
                Ok(None) => {}
                Ok(Some(rotated)) => match self.persist(role, rotated) {
                    Ok(()) => {
                        tracing::info!(%role, sequence, "key rotated; the old key is refused from now on");
                        results.push(Ok((role, sequence)));
                    }
                    Err(error) => {
                        refused_roles.push(role);
                        results.push(Err(error));
                    }
                },
                Err(error) => {
                    tracing::error!(%error, "a key rotation was refused");
                    refused_roles.push(role);
                    results.push(Err(error));
                }
            }
        }
        results
    }

    /// Checks one rotation of `role` against `trusted`, the root key for the release role.
    fn verify(&self, role: KeyRole, bytes: &[u8], trusted: Trusted) -> Result<Trusted, TrustError> {
        let refused = |error| TrustError::Refused { role, error };
        match role {
            KeyRole::Stick => {
                let current = StickVerifyingKey::from_bytes(trusted.key)
                    .map_err(|e| self.key_error(role, e))?;
                KeyRotation::verify_stick(bytes, &current, trusted.sequence)
                    .map(|r| Trusted {
                        sequence: r.sequence,
                        key: r.key.to_bytes(),
                    })
                    .map_err(refused)
            }
            KeyRole::Release => {
                let current = ReleaseVerifyingKey::from_bytes(trusted.key)
                    .map_err(|e| self.key_error(role, e))?;
                let root = self.root()?;
                KeyRotation::verify_release(bytes, &current, root.as_ref(), trusted.sequence)
                    .map(|r| Trusted {
                        sequence: r.sequence,
                        key: r.key.to_bytes(),
                    })
                    .map_err(refused)
            }
        }
    }

    /// `root.pub`, or `None` when this device was installed without one.
    fn root(&self) -> Result<Option<RootVerifyingKey>, TrustError> {
        match std::fs::read_to_string(&self.root_pub) {
            Ok(text) => RootVerifyingKey::from_hex(&text)
                .map(Some)
                .map_err(|e| TrustError::Key {
                    path: self.root_pub.clone(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrustError::Key {
                path: self.root_pub.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The key trusted now for `role`: from the trusted-keys file, else the installed one.
    fn trusted(&self, role: KeyRole) -> Result<Trusted, TrustError> {
        if let Some(trusted) = self.load()?.into_iter().find(|(r, _)| *r == role) {
            return Ok(trusted.1);
        }
        let path = self.installed(role);
        let text = std::fs::read_to_string(path).map_err(|e| TrustError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let key = decode_hex(&text).ok_or_else(|| TrustError::Key {
            path: path.to_owned(),
            reason: "a key must be 64 hex characters".into(),
        })?;
        Ok(Trusted { sequence: 0, key })
    }

    /// Every line of the trusted-keys file; none when there is no file.
    fn load(&self) -> Result<Vec<(KeyRole, Trusted)>, TrustError> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.file_error(e.to_string())),
        };
        text.lines()
            .map(|line| {
                let mut words = line.split(' ');
                let role = words.next().and_then(KeyRole::from_name);
                let sequence = words.next().and_then(|s| s.parse().ok());
                let key = words.next().and_then(decode_hex);
                match (role, sequence, key, words.next()) {
                    (Some(role), Some(sequence), Some(key), None) => {
                        Ok((role, Trusted { sequence, key }))
                    }
                    _ => Err(self.file_error("a line is not `<role> <sequence> <key>`".into())),
                }
            })
            .collect()
    }

    /// Replaces `role`'s line of the trusted-keys file with `trusted`, atomically.
    fn persist(&self, role: KeyRole, trusted: Trusted) -> Result<(), TrustError> {
        let mut all = self.load()?;
        all.retain(|(r, _)| *r != role);
        all.push((role, trusted));
        all.sort_by_key(|(r, _)| *r);
        let text: String = all
            .iter()
            .map(|(r, t)| format!("{r} {} {}\n", t.sequence, hex::encode(t.key)))
            .collect();
        write_atomic(&self.file, text.as_bytes()).map_err(|e| self.file_error(e.to_string()))
    }

    /// The key file installed with the agent for `role` (`stick_key`, `release_key`).
    pub fn installed(&self, role: KeyRole) -> &Path {
        match role {
            KeyRole::Stick => &self.stick_pub,
            KeyRole::Release => &self.release_pub,
        }
    }

    /// A trusted key that is no usable key: named by the file it came from.
    fn key_error(&self, role: KeyRole, error: impl std::fmt::Display) -> TrustError {
        let rotated = self
            .load()
            .is_ok_and(|all| all.iter().any(|(r, _)| *r == role));
        TrustError::Key {
            path: if rotated {
                self.file.clone()
            } else {
                self.installed(role).to_owned()
            },
            reason: error.to_string(),
        }
    }

    fn file_error(&self, reason: String) -> TrustError {
        TrustError::Key {
            path: self.file.clone(),
            reason,
        }
    }
}

/// 32 bytes from 64 hex characters, surrounding whitespace ignored.
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::rotation::RootSigningKey;
    use skolebro_protocol::{ReleaseSigningKey, StickSigningKey};

    struct Device {
        _dir: tempfile::TempDir,
        keys: TrustedKeys,
    }

    fn device(with_root: bool) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, hex: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{hex}\n")).unwrap();
            path
        };
        let keys = TrustedKeys {
            file: dir.path().join(TRUSTED_KEYS_FILE),
            stick_pub: write("stick.pub", stick(0).verifying_key().to_hex()),
            release_pub: write("release.pub", release(0).verifying_key().to_hex()),
            root_pub: if with_root {
                write("root.pub", root().verifying_key().to_hex())
            } else {
                dir.path().join("root.pub")
            },
        };
        Device { _dir: dir, keys }
    }

    fn stick(n: u8) -> StickSigningKey {
        StickSigningKey::from_bytes([0x10 + n; 32])
    }

    fn release(n: u8) -> ReleaseSigningKey {
        ReleaseSigningKey::from_bytes([0x20 + n; 32])
    }

    fn root() -> RootSigningKey {
        RootSigningKey::from_bytes([0x30; 32])
    }

    fn b64(bytes: Vec<u8>) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn stick_rotation(sequence: u64) -> String {
        let n = sequence as u8;
        b64(KeyRotation {
            role: KeyRole::Stick,
            sequence,
            new_key: stick(n).verifying_key().to_bytes(),
            issued_unix: 1,
        }
        .sign_stick(&stick(n - 1)))
    }

    fn release_rotation(sequence: u64) -> String {
        let n = sequence as u8;
        b64(KeyRotation {
            role: KeyRole::Release,
            sequence,
            new_key: release(n).verifying_key().to_bytes(),
            issued_unix: 1,
        }
        .sign_release(&release(n - 1), &root()))
    }

    #[test]
    fn rotations_apply_in_sequence_order_and_survive_a_reopen() {
        let device = device(true);
        let all = [stick_rotation(2), release_rotation(1), stick_rotation(1)];
        let results: Vec<_> = device
            .keys
            .apply(&all)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            results,
            [
                (KeyRole::Stick, 1),
                (KeyRole::Stick, 2),
                (KeyRole::Release, 1)
            ]
        );
        let reopened = device.keys.clone();
        assert_eq!(reopened.stick().unwrap(), stick(2).verifying_key());
        assert_eq!(reopened.release().unwrap(), release(1).verifying_key());
        // The same answer again changes nothing and reports nothing.
        assert!(reopened.apply(&all).is_empty());
    }

    #[test]
    fn a_device_imaged_with_a_rotated_key_skips_the_rotations_up_to_it() {
        let device = device(true);
        std::fs::write(
            &device.keys.stick_pub,
            format!("{}\n", stick(1).verifying_key().to_hex()),
        )
        .unwrap();
        let results = device.keys.apply(&[stick_rotation(1), stick_rotation(2)]);
        assert!(
            matches!(results.as_slice(), [Ok((KeyRole::Stick, 2))]),
            "{results:?}"
        );
        assert_eq!(device.keys.stick().unwrap(), stick(2).verifying_key());
    }

    #[test]
    fn a_rotation_not_signed_by_the_trusted_key_changes_nothing() {
        let device = device(true);
        // Rotation 2 without rotation 1: signed by a key the device does not trust yet.
        let results = device.keys.apply(&[stick_rotation(2)]);
        assert!(matches!(
            results.as_slice(),
            [Err(TrustError::Refused {
                role: KeyRole::Stick,
                error: RotationError::BadSignature(KeyRole::Stick)
            })]
        ));
        assert_eq!(device.keys.stick().unwrap(), stick(0).verifying_key());
        assert!(!device.keys.file.exists());
    }

    #[test]
    fn a_device_without_a_root_key_refuses_a_release_rotation_in_words() {
        let device = device(false);
        let results = device.keys.apply(&[release_rotation(1), stick_rotation(1)]);
        assert!(matches!(results[0], Ok((KeyRole::Stick, 1))));
        match &results[1] {
            Err(error @ TrustError::Refused { .. }) => {
                assert!(error.to_string().contains("no root key"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(device.keys.release().unwrap(), release(0).verifying_key());
    }

    #[test]
    fn an_unreadable_rotation_or_trusted_keys_file_is_an_error() {
        let device = device(true);
        assert!(matches!(
            device.keys.apply(&["not base64!".into()]).as_slice(),
            [Err(TrustError::Unreadable(_))]
        ));
        std::fs::write(&device.keys.file, "stick 1 zz\n").unwrap();
        assert!(matches!(device.keys.stick(), Err(TrustError::Key { .. })));
    }
}
