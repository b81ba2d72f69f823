//! `skolebro-provision rotate-key stick|release` (issue 18, "Keys that can be rotated"):
//! replaces the stick key or the release key of the key folder without re-imaging a device.
//! It makes the new key pair, signs a [`KeyRotation`] to it with the current key (and, for
//! the release key, with the offline root key, `root.key`), publishes the statement to
//! central, which hands it to every device with the next heartbeat answer, and only then
//! puts the new key in place: `<role>.key` and `<role>.pub` are the new pair, the old ones
//! are kept as `<role>-<sequence>.key.retired` / `.pub.retired`, `<role>.sequence` counts
//! the role's rotations, and `<role>-<sequence>.rotation` keeps the statement.
//!
//! Until central accepted the statement the new key waits as `<role>.key.next`, so a refused
//! or unreachable publish leaves the folder as it was, and a key central already hands out
//! is never lost.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use skolebro_protocol::rotation::{KeyRole, KeyRotation, RootSigningKey};
use skolebro_protocol::{ReleaseSigningKey, StickSigningKey};

use crate::admin::AdminClient;
use crate::error::ProvisionError;
use crate::keys::{hex_line, read, write_new_public, KeyFolder};
use crate::pki;

/// What a rotation did: the role, the new key's sequence and the files now in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub role: KeyRole,
    pub sequence: u64,
    /// The new public key file, to install on the images made from now on.
    pub public: PathBuf,
    /// The statement as published.
    pub statement: PathBuf,
    /// SHA-256 of the new public key, lowercase hex.
    pub fingerprint: String,
}

/// A rotation signed and the new key waiting beside the old, before central has it.
#[derive(Debug)]
pub struct Prepared {
    role: KeyRole,
    sequence: u64,
    new_public: [u8; 32],
    statement: Vec<u8>,
}

impl Prepared {
    /// The statement's bytes, for central.
    pub fn statement(&self) -> &[u8] {
        &self.statement
    }
}

/// Signs the next rotation of `role` in `folder` to a fresh key and writes the new key as
/// `<role>.key.next`; nothing else changes. Refuses when a `.next` key is there already (an
/// earlier rotation did not finish: operations look at it first).
pub fn prepare(folder: &KeyFolder, role: KeyRole) -> Result<Prepared, ProvisionError> {
    let next_path = next_key_path(folder, role);
    if next_path.symlink_metadata().is_ok() {
        return Err(ProvisionError::AlreadyExists(next_path));
    }
    let sequence = current_sequence(folder, role)? + 1;
    let issued_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (new_seed, new_public, statement) = match role {
        KeyRole::Stick => {
            let current = folder.stick_signing_key()?;
            let new = StickSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
            let public = new.verifying_key().to_bytes();
            let rotation = KeyRotation {
                role,
                sequence,
                new_key: public,
                issued_unix,
            };
            (new.to_bytes(), public, rotation.sign_stick(&current))
        }
        KeyRole::Release => {
            let current = folder.release_signing_key()?;
            let root = root_signing_key(folder)?;
            let new = ReleaseSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
            let public = new.verifying_key().to_bytes();
            let rotation = KeyRotation {
                role,
                sequence,
                new_key: public,
                issued_unix,
            };
            (
                new.to_bytes(),
                public,
                rotation.sign_release(&current, &root),
            )
        }
    };
    pki::write_private_key(&next_path, &hex_line(&new_seed))?;
    Ok(Prepared {
        role,
        sequence,
        new_public,
        statement,
    })
}

/// Puts a published rotation's key in place: retires the old pair, moves the new one in and
/// counts the rotation.
pub fn finish(folder: &KeyFolder, prepared: &Prepared) -> Result<Rotated, ProvisionError> {
    let role = prepared.role.name();
    let old = prepared.sequence - 1;
    let statement = folder.path(&format!("{role}-{}.rotation", prepared.sequence));
    std::fs::write(&statement, &prepared.statement)
        .map_err(|error| ProvisionError::io(&statement, error))?;
    let (key, public) = (
        folder.path(&format!("{role}.key")),
        folder.path(&format!("{role}.pub")),
    );
    for (from, to) in [
        (&key, folder.path(&format!("{role}-{old}.key.retired"))),
        (&public, folder.path(&format!("{role}-{old}.pub.retired"))),
        (&next_key_path(folder, prepared.role), key.clone()),
    ] {
        std::fs::rename(from, &to).map_err(|error| ProvisionError::io(from, error))?;
    }
    write_new_public(&public, &hex_line(&prepared.new_public))?;
    let counter = sequence_path(folder, prepared.role);
    std::fs::write(&counter, format!("{}\n", prepared.sequence))
        .map_err(|error| ProvisionError::io(&counter, error))?;
    Ok(Rotated {
        role: prepared.role,
        sequence: prepared.sequence,
        public,
        statement,
        fingerprint: crate::keys::public_key_fingerprint(&prepared.new_public),
    })
}

/// Drops a prepared rotation central did not take: the `.next` key goes, nothing else
/// changed.
pub fn abandon(folder: &KeyFolder, prepared: Prepared) -> Result<(), ProvisionError> {
    let next = next_key_path(folder, prepared.role);
    std::fs::remove_file(&next).map_err(|error| ProvisionError::io(&next, error))
}

/// The whole rotation: [`prepare`], publish to central, then [`finish`] (or [`abandon`] when
/// central refused or was out of reach).
pub async fn rotate(
    folder: &KeyFolder,
    role: KeyRole,
    admin: &AdminClient,
) -> Result<Rotated, ProvisionError> {
    let prepared = prepare(folder, role)?;
    if let Err(error) = admin.publish_key_rotation(prepared.statement()).await {
        abandon(folder, prepared)?;
        return Err(error);
    }
    finish(folder, &prepared)
}

/// The sequence of the role's key in the folder: `<role>.sequence`, 0 before any rotation.
pub fn current_sequence(folder: &KeyFolder, role: KeyRole) -> Result<u64, ProvisionError> {
    let path = sequence_path(folder, role);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| ProvisionError::KeyFile {
            path,
            reason: "must hold the number of the key's last rotation".into(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(ProvisionError::io(&path, error)),
    }
}

/// The root key from `root.key`, checked against `root.pub`.
fn root_signing_key(folder: &KeyFolder) -> Result<RootSigningKey, ProvisionError> {
    let private = folder.path(KeyFolder::ROOT_KEY);
    let key_file = |path: &Path, reason: String| ProvisionError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let key = RootSigningKey::from_hex(&read(&private)?)
        .map_err(|error| key_file(&private, error.to_string()))?;
    let public_path = folder.path(KeyFolder::ROOT_PUB);
    let public = skolebro_protocol::RootVerifyingKey::from_hex(&read(&public_path)?)
        .map_err(|error| key_file(&public_path, error.to_string()))?;
    if key.verifying_key() != public {
        return Err(ProvisionError::KeyMismatch {
            private,
            public: public_path,
        });
    }
    Ok(key)
}

fn next_key_path(folder: &KeyFolder, role: KeyRole) -> PathBuf {
    folder.path(&format!("{}.key.next", role.name()))
}

fn sequence_path(folder: &KeyFolder, role: KeyRole) -> PathBuf {
    folder.path(&format!("{}.sequence", role.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::{ReleaseVerifyingKey, RootVerifyingKey, StickVerifyingKey};

    #[test]
    fn a_finished_stick_rotation_verifies_with_the_old_key_and_retires_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let old = folder.stick_verifying_key().unwrap();
        let prepared = prepare(&folder, KeyRole::Stick).unwrap();
        assert!(folder.path("stick.key.next").is_file());
        assert_eq!(
            folder.stick_verifying_key().unwrap(),
            old,
            "nothing moved yet"
        );
        let rotated = finish(&folder, &prepared).unwrap();
        assert_eq!(rotated.sequence, 1);
        let new = folder.stick_signing_key().unwrap().verifying_key();
        let checked = KeyRotation::verify_stick(prepared.statement(), &old, 0).unwrap();
        assert_eq!(checked.key, new);
        let retired = read(&folder.path("stick-0.pub.retired")).unwrap();
        assert_eq!(StickVerifyingKey::from_hex(&retired).unwrap(), old);
        assert!(folder.path("stick-0.key.retired").is_file());
        assert!(!folder.path("stick.key.next").exists());
        assert_eq!(current_sequence(&folder, KeyRole::Stick).unwrap(), 1);
        // The next one is signed by the new key.
        let second = prepare(&folder, KeyRole::Stick).unwrap();
        assert!(KeyRotation::verify_stick(second.statement(), &new, 1).is_ok());
    }

    #[test]
    fn a_release_rotation_carries_the_root_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let old = folder.release_verifying_key().unwrap();
        let root = RootVerifyingKey::from_hex(&read(&folder.path("root.pub")).unwrap()).unwrap();
        let prepared = prepare(&folder, KeyRole::Release).unwrap();
        finish(&folder, &prepared).unwrap();
        let checked =
            KeyRotation::verify_release(prepared.statement(), &old, Some(&root), 0).unwrap();
        assert_eq!(
            checked.key,
            ReleaseVerifyingKey::from_hex(&read(&folder.path("release.pub")).unwrap()).unwrap()
        );
        assert!(
            folder.release_signing_key().is_ok(),
            "release.key matches release.pub"
        );
    }

    #[test]
    fn an_abandoned_rotation_leaves_the_folder_as_it_was_and_a_leftover_next_key_stops_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let before = folder.stick_verifying_key().unwrap();
        let prepared = prepare(&folder, KeyRole::Stick).unwrap();
        assert!(matches!(
            prepare(&folder, KeyRole::Stick),
            Err(ProvisionError::AlreadyExists(_))
        ));
        abandon(&folder, prepared).unwrap();
        assert_eq!(folder.stick_verifying_key().unwrap(), before);
        assert_eq!(current_sequence(&folder, KeyRole::Stick).unwrap(), 0);
        assert!(!folder.path("stick.key.next").exists());
    }
}
