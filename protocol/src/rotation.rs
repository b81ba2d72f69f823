//! Key rotation statements (issue 18, "Keys that can be rotated"): how the stick key and the
//! release key installed with every agent change without re-imaging a device. Operations
//! make a [`KeyRotation`] with `skolebro-provision rotate-key`, signed by the **current** key
//! of that role, and for the release key also by the offline **root** key, whose public half
//! (`root.pub`) the agent ships (TUF's root role). Central stores the statement and hands
//! every one it has to every device in the heartbeat answer; it holds no signing key for
//! either role, so it can withhold a rotation but never forge one. The agent checks each in
//! order against the key it trusts now, persists the new key and from then on refuses the
//! old one.
//!
//! The release key needs the root as well because it is the key that changes what runs on
//! the device: a leaked release key alone must not be enough to rotate it to the thief's
//! key. A leaked stick key can only enroll devices, which central gates by token.
//!
//! # Wire format (version 1)
//! ```text
//! "SKBK"        4 bytes magic
//! version       1 byte, FORMAT_VERSION
//! body_len      u32 little-endian
//! body          postcard-encoded `KeyRotation`, body_len bytes
//! signature     Ed25519 by the role's current key, 64 bytes, over magic to the end of body
//! root sig.     release only: Ed25519 by the root key, 64 bytes, over every byte before it
//! ```
//! The first four parts are the framing of the other signed blobs (`signed.rs`) with their own
//! magic. In JSON a statement travels as base64 (standard, padded).

use serde::{Deserialize, Serialize};

use crate::release::ReleaseVerifyingKey;
use crate::signed::{self, FrameError, SIG_LEN};
use crate::{ReleaseSigningKey, StickSigningKey, StickVerifyingKey};

/// Marks the bytes as a key rotation statement.
pub const MAGIC: [u8; 4] = *b"SKBK";

/// The rotation format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Upper bound of a whole statement; a real one is under 200 bytes.
pub const MAX_ROTATION_BYTES: usize = 1024;

/// The framing of the part signed by the current key (see [`crate::signed`]).
const FORMAT: signed::Format = signed::Format {
    magic: MAGIC,
    version: FORMAT_VERSION,
    max_bytes: MAX_ROTATION_BYTES,
};

/// Every reason a rotation statement or a root key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("key rotation is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("key rotation is truncated")]
    Truncated,
    #[error("not a key rotation (bad magic)")]
    BadMagic,
    #[error("unsupported key rotation version {0}")]
    UnsupportedVersion(u8),
    /// Not signed by the key this device trusts for the role: an alarm, not routine.
    #[error("key rotation signature does not verify against the {0} key this device trusts")]
    BadSignature(KeyRole),
    /// A release rotation the root key did not sign.
    #[error("release key rotation signature does not verify against the root key")]
    BadRootSignature,
    /// A release rotation reached a device that has no root key (`root.pub`): older devices
    /// cannot rotate their release key and need a new image.
    #[error("this device has no root key (root.pub), so it cannot check a release key rotation")]
    NoRootKey,
    #[error("malformed key rotation: {0}")]
    Malformed(&'static str),
    /// A rotation for the other role than the key it was checked with.
    #[error("a {statement} key rotation was checked as a {expected} key rotation")]
    WrongRole {
        statement: KeyRole,
        expected: KeyRole,
    },
    /// A rotation not newer than the key the device trusts: a replay, or one applied before.
    #[error("key rotation {sequence} is not newer than the trusted key's {trusted}")]
    Replayed { sequence: u64, trusted: u64 },
    #[error("invalid root key: {0}")]
    InvalidKey(&'static str),
    #[error("system randomness unavailable")]
    Randomness,
}

impl From<FrameError> for RotationError {
    fn from(error: FrameError) -> RotationError {
        match error {
            FrameError::TooLarge { size, limit } => RotationError::TooLarge { size, limit },
            FrameError::Truncated => RotationError::Truncated,
            FrameError::BadMagic => RotationError::BadMagic,
            FrameError::UnsupportedVersion(v) => RotationError::UnsupportedVersion(v),
            FrameError::BadSignature => RotationError::Malformed("signature does not verify"),
            FrameError::Malformed(what) => RotationError::Malformed(what),
        }
    }
}

/// Which installed key a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyRole {
    /// The stick key: config sticks are checked with it.
    Stick,
    /// The release key: release manifests are checked with it.
    Release,
}

impl KeyRole {
    /// The role's name in files, URLs and on the command line: `stick` or `release`.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Stick => "stick",
            KeyRole::Release => "release",
        }
    }

    /// The role named `name` ([`KeyRole::name`]).
    pub fn from_name(name: &str) -> Option<KeyRole> {
        [KeyRole::Stick, KeyRole::Release]
            .into_iter()
            .find(|role| role.name() == name)
    }
}

impl std::fmt::Display for KeyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One rotation: from the role's key of sequence `sequence - 1` (the key installed with the
/// agent is sequence 0) to `new_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub role: KeyRole,
    /// Counts the role's rotations from 1; a device takes only one above the key it trusts.
    pub sequence: u64,
    /// The new public key, 32 bytes.
    pub new_key: [u8; 32],
    /// When operations signed it, Unix seconds; for the record, not checked.
    pub issued_unix: u64,
}

/// A key a device may trust from now on, with its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated<K> {
    pub sequence: u64,
    pub key: K,
}

impl KeyRotation {
    /// The statement bytes of a stick key rotation, signed with the current stick key.
    pub fn sign_stick(&self, current: &StickSigningKey) -> Vec<u8> {
        FORMAT.sign(self, &dalek_signing(current.to_bytes()))
    }

    /// The statement bytes of a release key rotation, signed with the current release key
    /// and then with the root key.
    pub fn sign_release(&self, current: &ReleaseSigningKey, root: &RootSigningKey) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        let mut bytes = FORMAT.sign(self, &dalek_signing(current.to_bytes()));
        let signature = root.0.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        bytes
    }

    /// What a statement claims, **unchecked**: for choosing the key that checks it, and for
    /// central, which stores statements it cannot check. Never panics, whatever the bytes.
    pub fn read_unchecked(bytes: &[u8]) -> Result<KeyRotation, RotationError> {
        let (rotation, frame_len): (KeyRotation, usize) = FORMAT.peek(bytes)?;
        let expected = match rotation.role {
            KeyRole::Stick => frame_len,
            KeyRole::Release => frame_len + SIG_LEN,
        };
        if bytes.len() != expected {
            return Err(RotationError::Malformed(
                "trailing or missing signature bytes",
            ));
        }
        Ok(rotation)
    }

    /// Checks a stick key rotation against the stick key a device trusts now (of sequence
    /// `trusted`) and returns the new key. Never panics, whatever the bytes.
    pub fn verify_stick(
        bytes: &[u8],
        current: &StickVerifyingKey,
        trusted: u64,
    ) -> Result<Rotated<StickVerifyingKey>, RotationError> {
        let rotation = verify_current(bytes, KeyRole::Stick, current.to_bytes(), trusted)?;
        let key = StickVerifyingKey::from_bytes(rotation.new_key)
            .map_err(|_| RotationError::Malformed("the new key is not a usable Ed25519 key"))?;
        Ok(Rotated {
            sequence: rotation.sequence,
            key,
        })
    }

    /// Checks a release key rotation against the release key a device trusts now (of
    /// sequence `trusted`) and against the root key, and returns the new key. A device
    /// without a root key refuses it ([`RotationError::NoRootKey`]). Never panics.
    pub fn verify_release(
        bytes: &[u8],
        current: &ReleaseVerifyingKey,
        root: Option<&RootVerifyingKey>,
        trusted: u64,
    ) -> Result<Rotated<ReleaseVerifyingKey>, RotationError> {
        let rotated = KeyRotation::verify_release_by_current_key(bytes, current, trusted)?;
        let root = root.ok_or(RotationError::NoRootKey)?;
        let (signed, signature) = bytes.split_at(bytes.len().saturating_sub(SIG_LEN));
        let signature: [u8; SIG_LEN] = signature
            .try_into()
            .map_err(|_| RotationError::Malformed("root signature is not 64 bytes"))?;
        root.0
            .verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&signature))
            .map_err(|_| RotationError::BadRootSignature)?;
        Ok(rotated)
    }

    /// Checks a release key rotation against the current release key only, **not** the root
    /// key: for central, which holds no root key and only follows the release key to check
    /// the manifests operations register. A device uses [`KeyRotation::verify_release`].
    pub fn verify_release_by_current_key(
        bytes: &[u8],
        current: &ReleaseVerifyingKey,
        trusted: u64,
    ) -> Result<Rotated<ReleaseVerifyingKey>, RotationError> {
        let rotation = verify_current(bytes, KeyRole::Release, current.to_bytes(), trusted)?;
        let key = ReleaseVerifyingKey::from_bytes(rotation.new_key)
            .map_err(|_| RotationError::Malformed("the new key is not a usable Ed25519 key"))?;
        Ok(Rotated {
            sequence: rotation.sequence,
            key,
        })
    }
}

/// The checks every rotation passes: its framing, its role, the current key's signature
/// over the frame, and a sequence above `trusted`.
fn verify_current(
    bytes: &[u8],
    role: KeyRole,
    current: [u8; 32],
    trusted: u64,
) -> Result<KeyRotation, RotationError> {
    let claimed = KeyRotation::read_unchecked(bytes)?;
    if claimed.role != role {
        return Err(RotationError::WrongRole {
            statement: claimed.role,
            expected: role,
        });
    }
    let frame = match role {
        KeyRole::Stick => bytes,
        KeyRole::Release => &bytes[..bytes.len().saturating_sub(SIG_LEN)],
    };
    let current = signed::verifying_key(current).map_err(RotationError::Malformed)?;
    let rotation: KeyRotation = FORMAT
        .verify(frame, &current)
        .map_err(|error| match error {
            FrameError::BadSignature => RotationError::BadSignature(role),
            other => other.into(),
        })?;
    if rotation.sequence <= trusted {
        return Err(RotationError::Replayed {
            sequence: rotation.sequence,
            trusted,
        });
    }
    if rotation.new_key == current.to_bytes() {
        return Err(RotationError::Malformed("the new key is the current key"));
    }
    Ok(rotation)
}

fn dalek_signing(seed: [u8; 32]) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// The offline root key (`root.key`, made by `skolebro-provision init`): it co-signs every
/// release key rotation.
#[derive(Clone)]
pub struct RootSigningKey(ed25519_dalek::SigningKey);

/// The root key's public half (`root.pub`), installed with every agent beside `release.pub`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RootVerifyingKey(ed25519_dalek::VerifyingKey);

signed::key_pair_methods!(RootSigningKey, RootVerifyingKey, RotationError, "root");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReleaseSigningKey;

    fn stick_rotation(sequence: u64, new: &StickSigningKey) -> KeyRotation {
        KeyRotation {
            role: KeyRole::Stick,
            sequence,
            new_key: new.verifying_key().to_bytes(),
            issued_unix: 1_900_000_000,
        }
    }

    fn release_rotation(sequence: u64, new: &ReleaseSigningKey) -> KeyRotation {
        KeyRotation {
            role: KeyRole::Release,
            sequence,
            new_key: new.verifying_key().to_bytes(),
            issued_unix: 1_900_000_000,
        }
    }

    fn root() -> RootSigningKey {
        RootSigningKey::from_bytes([0x70; 32])
    }

    #[test]
    fn a_stick_rotation_signed_by_the_current_key_yields_the_new_key() {
        let (old, new) = (
            StickSigningKey::from_bytes([1; 32]),
            StickSigningKey::from_bytes([2; 32]),
        );
        let bytes = stick_rotation(1, &new).sign_stick(&old);
        let rotated = KeyRotation::verify_stick(&bytes, &old.verifying_key(), 0).unwrap();
        assert_eq!(rotated.sequence, 1);
        assert_eq!(rotated.key, new.verifying_key());
        assert_eq!(
            KeyRotation::read_unchecked(&bytes),
            Ok(stick_rotation(1, &new))
        );
    }

    #[test]
    fn a_rotation_signed_by_another_key_is_refused() {
        let (old, new) = (
            StickSigningKey::from_bytes([1; 32]),
            StickSigningKey::from_bytes([2; 32]),
        );
        // Signed by the new key itself: what a thief of nothing but central would try.
        let bytes = stick_rotation(1, &new).sign_stick(&new);
        assert_eq!(
            KeyRotation::verify_stick(&bytes, &old.verifying_key(), 0),
            Err(RotationError::BadSignature(KeyRole::Stick))
        );
        let mut flipped = stick_rotation(1, &new).sign_stick(&old);
        flipped[12] ^= 1;
        assert!(KeyRotation::verify_stick(&flipped, &old.verifying_key(), 0).is_err());
    }

    #[test]
    fn a_replayed_or_older_sequence_is_refused() {
        let (old, new) = (
            StickSigningKey::from_bytes([1; 32]),
            StickSigningKey::from_bytes([2; 32]),
        );
        let bytes = stick_rotation(2, &new).sign_stick(&old);
        for trusted in [2, 3] {
            assert_eq!(
                KeyRotation::verify_stick(&bytes, &old.verifying_key(), trusted),
                Err(RotationError::Replayed {
                    sequence: 2,
                    trusted
                })
            );
        }
        assert!(KeyRotation::verify_stick(&bytes, &old.verifying_key(), 1).is_ok());
    }

    #[test]
    fn a_rotation_of_the_other_role_is_refused() {
        let old = ReleaseSigningKey::from_bytes([3; 32]);
        let new = ReleaseSigningKey::from_bytes([4; 32]);
        let release = release_rotation(1, &new).sign_release(&old, &root());
        let stick_key = StickSigningKey::from_bytes([3; 32]).verifying_key();
        assert_eq!(
            KeyRotation::verify_stick(&release, &stick_key, 0),
            Err(RotationError::WrongRole {
                statement: KeyRole::Release,
                expected: KeyRole::Stick
            })
        );
        let stick = stick_rotation(1, &StickSigningKey::from_bytes([2; 32]))
            .sign_stick(&StickSigningKey::from_bytes([3; 32]));
        assert_eq!(
            KeyRotation::verify_release(
                &stick,
                &old.verifying_key(),
                Some(&root().verifying_key()),
                0
            ),
            Err(RotationError::WrongRole {
                statement: KeyRole::Stick,
                expected: KeyRole::Release
            })
        );
    }

    #[test]
    fn a_release_rotation_needs_the_root_signature_and_a_root_key() {
        let old = ReleaseSigningKey::from_bytes([3; 32]);
        let new = ReleaseSigningKey::from_bytes([4; 32]);
        let root_key = root().verifying_key();
        let bytes = release_rotation(1, &new).sign_release(&old, &root());
        let rotated =
            KeyRotation::verify_release(&bytes, &old.verifying_key(), Some(&root_key), 0).unwrap();
        assert_eq!(rotated.key, new.verifying_key());
        assert_eq!(
            KeyRotation::verify_release(&bytes, &old.verifying_key(), None, 0),
            Err(RotationError::NoRootKey)
        );
        // The stolen release key alone: the thief signs as root with a key of his own.
        let forged =
            release_rotation(1, &new).sign_release(&old, &RootSigningKey::from_bytes([9; 32]));
        assert_eq!(
            KeyRotation::verify_release(&forged, &old.verifying_key(), Some(&root_key), 0),
            Err(RotationError::BadRootSignature)
        );
        // Central follows the release key without the root.
        assert_eq!(
            KeyRotation::verify_release_by_current_key(&forged, &old.verifying_key(), 0),
            Ok(rotated)
        );
        // Without its root signature it is no release rotation at all.
        assert!(KeyRotation::verify_release(
            &bytes[..bytes.len() - 64],
            &old.verifying_key(),
            Some(&root_key),
            0
        )
        .is_err());
    }

    #[test]
    fn a_rotation_to_the_current_key_is_malformed() {
        let old = StickSigningKey::from_bytes([1; 32]);
        let bytes = stick_rotation(1, &old).sign_stick(&old);
        assert_eq!(
            KeyRotation::verify_stick(&bytes, &old.verifying_key(), 0),
            Err(RotationError::Malformed("the new key is the current key"))
        );
    }

    #[test]
    fn roles_are_named_for_files_and_the_command_line() {
        for role in [KeyRole::Stick, KeyRole::Release] {
            assert_eq!(KeyRole::from_name(role.name()), Some(role));
        }
        assert_eq!(KeyRole::from_name("root"), None);
    }

    #[test]
    fn garbage_never_panics() {
        let stick = StickSigningKey::from_bytes([1; 32]).verifying_key();
        let release = ReleaseSigningKey::from_bytes([1; 32]).verifying_key();
        let root_key = root().verifying_key();
        for len in 0..200 {
            let mut bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            if len > 9 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = FORMAT_VERSION;
            }
            assert!(KeyRotation::verify_stick(&bytes, &stick, 0).is_err());
            assert!(KeyRotation::verify_release(&bytes, &release, Some(&root_key), 0).is_err());
        }
    }
}
