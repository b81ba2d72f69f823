//! Central's signed statement (issue 18; TUF's timestamp role): the one thing central signs
//! itself, carried in every heartbeat answer. It says two things and nothing else: **the
//! time** by central's clock, which the agent's clock floor may advance to (DESIGN decision
//! 8), and **what is current** for one device: the SHA-256 of the release manifest central
//! offers it now, or none, valid until a near expiry. It never authorises an artifact: the
//! release key still signs every manifest, and the agent checks the manifest as before. What
//! the statement adds is that a replayed or withheld ("frozen") offer shows: an agent refuses
//! an offer whose statement is expired, older than the newest it has seen, or names another
//! manifest, and says so when no fresh statement came for days.
//!
//! Central signs with its statement key (`statement.key`, made by `skolebro-provision init`,
//! an online key like the TLS key, apart from the offline stick and release keys); the agent
//! learns the public half from central's enrollment answer (over TLS pinned to the CA on the
//! signed stick), or from `agent.toml` when set up by hand.
//!
//! # Wire format (version 1)
//! ```text
//! "SKBT"        4 bytes magic
//! version       1 byte, FORMAT_VERSION
//! body_len      u32 little-endian
//! body          postcard-encoded `Statement`, body_len bytes
//! signature     Ed25519, 64 bytes, over every byte before it (magic to the end of the body)
//! ```
//! The framing is the stick bundle's and the manifest's (`signed.rs`) with its own
//! magic and key, so no other signature passes for a statement. In JSON it travels as
//! base64 (standard, padded), like the manifest.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::signed::{self, FrameError};

/// Marks the bytes as central's statement.
pub const MAGIC: [u8; 4] = *b"SKBT";

/// The statement format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Upper bound of a whole statement; a real one is about 200 bytes.
pub const MAX_STATEMENT_BYTES: usize = 4 * 1024;

/// Longest a statement may be valid, from `issued_unix_ms` to `expires_unix_ms`: 7 days. A
/// statement is meant to live for about a day; one valid longer is what a freeze needs, so
/// even central's key cannot make one.
pub const MAX_STATEMENT_VALIDITY_MS: u64 = 7 * 86_400_000;

/// The statement's framing (see [`crate::signed`]).
const FORMAT: signed::Format = signed::Format {
    magic: MAGIC,
    version: FORMAT_VERSION,
    max_bytes: MAX_STATEMENT_BYTES,
};

/// Every reason a statement or a statement key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("statement is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("statement is truncated")]
    Truncated,
    #[error("not a statement of central (bad magic)")]
    BadMagic,
    #[error("unsupported statement version {0}")]
    UnsupportedVersion(u8),
    /// Not signed by the statement key this device knows: an alarm, not routine.
    #[error("statement signature does not verify against central's statement key")]
    BadSignature,
    #[error("malformed statement: {0}")]
    Malformed(&'static str),
    /// The statement is for another device.
    #[error("the statement is for device {statement}, not {ours}")]
    WrongDevice { statement: String, ours: String },
    /// Its validity is over by the agent's clock.
    #[error(
        "the statement expired at {expires_unix_ms} ms (this agent's clock says {now_unix_ms} ms)"
    )]
    Expired {
        expires_unix_ms: u64,
        now_unix_ms: u64,
    },
    /// Issued before the newest statement this device accepted: a replay.
    #[error("the statement was issued at {issued_unix_ms} ms, before the newest seen ({newest_unix_ms} ms): a replay")]
    Replayed {
        issued_unix_ms: u64,
        newest_unix_ms: u64,
    },
    /// The offer's manifest is not the one the statement names as current.
    #[error("the offered manifest is not the one central's statement names as current")]
    NotCurrent,
    #[error("invalid statement key: {0}")]
    InvalidKey(&'static str),
    #[error("system randomness unavailable")]
    Randomness,
}

impl From<FrameError> for StatementError {
    fn from(error: FrameError) -> StatementError {
        match error {
            FrameError::TooLarge { size, limit } => StatementError::TooLarge { size, limit },
            FrameError::Truncated => StatementError::Truncated,
            FrameError::BadMagic => StatementError::BadMagic,
            FrameError::UnsupportedVersion(v) => StatementError::UnsupportedVersion(v),
            FrameError::BadSignature => StatementError::BadSignature,
            FrameError::Malformed(what) => StatementError::Malformed(what),
        }
    }
}

/// What central states to one device in one heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The device it is for, so one device's statement cannot be replayed to another.
    pub device: String,
    /// The target triple the device reported, if any.
    pub target: Option<String>,
    /// Central's clock when it signed, Unix ms: the signed time.
    pub issued_unix_ms: u64,
    /// After this (Unix ms) the statement says nothing any more. Later than
    /// `issued_unix_ms`, and at most [`MAX_STATEMENT_VALIDITY_MS`] after it.
    pub expires_unix_ms: u64,
    /// [`manifest_digest`] of the release manifest central offers the device in the same
    /// answer; `None`: central offers it nothing.
    pub current: Option<[u8; 32]>,
}

impl Statement {
    /// The statement bytes, signed with central's statement key.
    pub fn sign(&self, key: &StatementSigningKey) -> Vec<u8> {
        FORMAT.sign(self, &key.0)
    }

    /// Checks statement bytes against central's statement key and returns the statement:
    /// framing and signature first, then that its validity is positive and bounded. Never
    /// panics, whatever the bytes.
    pub fn verify(bytes: &[u8], key: &StatementVerifyingKey) -> Result<Statement, StatementError> {
        let statement: Statement = FORMAT.verify(bytes, &key.0)?;
        if statement.expires_unix_ms <= statement.issued_unix_ms {
            return Err(StatementError::Malformed("it expires before it was issued"));
        }
        if statement.expires_unix_ms - statement.issued_unix_ms > MAX_STATEMENT_VALIDITY_MS {
            return Err(StatementError::Malformed(
                "it is valid for longer than a statement may be",
            ));
        }
        Ok(statement)
    }

    /// Checks a verified statement for `device` at the agent's time `now_unix_ms`, given the
    /// issue time of the newest statement the device accepted before (`None`: none yet).
    /// The same statement again is not refused (it is no older); an older one is a replay.
    pub fn check(
        &self,
        device: &str,
        now_unix_ms: u64,
        newest_unix_ms: Option<u64>,
    ) -> Result<(), StatementError> {
        if self.device != device {
            return Err(StatementError::WrongDevice {
                statement: self.device.clone(),
                ours: device.to_owned(),
            });
        }
        if now_unix_ms >= self.expires_unix_ms {
            return Err(StatementError::Expired {
                expires_unix_ms: self.expires_unix_ms,
                now_unix_ms,
            });
        }
        if let Some(newest) = newest_unix_ms.filter(|newest| self.issued_unix_ms < *newest) {
            return Err(StatementError::Replayed {
                issued_unix_ms: self.issued_unix_ms,
                newest_unix_ms: newest,
            });
        }
        Ok(())
    }

    /// Whether the statement names exactly `manifest` (the signed manifest's bytes) as
    /// current: an offer is taken only then.
    pub fn names_current(&self, manifest: &[u8]) -> bool {
        self.current == Some(manifest_digest(manifest))
    }
}

/// SHA-256 of a signed manifest's bytes, as a statement names it.
pub fn manifest_digest(manifest: &[u8]) -> [u8; 32] {
    Sha256::digest(manifest).into()
}

/// Central's Ed25519 key that signs statements (`statement.key`, written by
/// `skolebro-provision init`, read by `skolebro-central serve`).
#[derive(Clone)]
pub struct StatementSigningKey(ed25519_dalek::SigningKey);

/// The statement key's public half: in central's enrollment answer, kept by the agent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatementVerifyingKey(ed25519_dalek::VerifyingKey);

signed::key_pair_methods!(
    StatementSigningKey,
    StatementVerifyingKey,
    StatementError,
    "statement"
);

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_900_000_000_000;

    fn key() -> StatementSigningKey {
        StatementSigningKey::from_bytes([5; 32])
    }

    fn statement() -> Statement {
        Statement {
            device: "4601-12345-0a0b0c0d".into(),
            target: Some("aarch64-unknown-linux-gnu".into()),
            issued_unix_ms: NOW,
            expires_unix_ms: NOW + 86_400_000,
            current: Some(manifest_digest(b"SKBR manifest")),
        }
    }

    #[test]
    fn a_signed_statement_verifies_and_names_its_manifest() {
        let bytes = statement().sign(&key());
        let back = Statement::verify(&bytes, &key().verifying_key()).unwrap();
        assert_eq!(back, statement());
        assert!(back.names_current(b"SKBR manifest"));
        assert!(!back.names_current(b"SKBR another manifest"));
        assert_eq!(
            back.check("4601-12345-0a0b0c0d", NOW + 1, Some(NOW)),
            Ok(())
        );
    }

    #[test]
    fn another_key_a_flipped_bit_or_another_kind_of_blob_is_refused() {
        let bytes = statement().sign(&key());
        let other = StatementSigningKey::from_bytes([6; 32]).verifying_key();
        assert_eq!(
            Statement::verify(&bytes, &other),
            Err(StatementError::BadSignature)
        );
        let mut flipped = bytes.clone();
        flipped[12] ^= 1;
        assert_eq!(
            Statement::verify(&flipped, &key().verifying_key()),
            Err(StatementError::BadSignature)
        );
        let mut manifest = bytes;
        manifest[..4].copy_from_slice(b"SKBR");
        assert_eq!(
            Statement::verify(&manifest, &key().verifying_key()),
            Err(StatementError::BadMagic)
        );
    }

    #[test]
    fn a_statement_valid_too_long_or_not_at_all_is_malformed_even_when_signed() {
        for expires in [NOW, NOW - 1, NOW + MAX_STATEMENT_VALIDITY_MS + 1] {
            let bytes = Statement {
                expires_unix_ms: expires,
                ..statement()
            }
            .sign(&key());
            assert!(matches!(
                Statement::verify(&bytes, &key().verifying_key()),
                Err(StatementError::Malformed(_))
            ));
        }
    }

    #[test]
    fn an_expired_a_replayed_or_another_devices_statement_is_refused() {
        let s = statement();
        let device = "4601-12345-0a0b0c0d";
        assert!(matches!(
            s.check(device, s.expires_unix_ms, None),
            Err(StatementError::Expired { .. })
        ));
        assert!(matches!(
            s.check(device, NOW, Some(NOW + 1)),
            Err(StatementError::Replayed { .. })
        ));
        assert!(matches!(
            s.check("4601-12345-ffffffff", NOW, None),
            Err(StatementError::WrongDevice { .. })
        ));
        // The very statement seen last is no replay.
        assert_eq!(s.check(device, NOW, Some(NOW)), Ok(()));
    }

    #[test]
    fn garbage_never_panics() {
        let key = key().verifying_key();
        for len in 0..80 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            assert!(Statement::verify(&bytes, &key).is_err());
        }
    }
}
