//! How sealing or opening an envelope fails, one variant per answer central must give.

use super::ids::{DeviceId, Seq};

/// Everything that can go wrong when sealing or opening an envelope. Each failure central must
/// answer differently has its own variant: a replay is acked again, a gap asks for a snapshot,
/// a bad signature is an alarm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The input is larger than the caller's limit. Checked before any byte is decoded, so an
    /// oversized upload costs central nothing but the length check.
    #[error("envelope is {size} bytes, over the limit of {limit}")]
    Oversized { size: usize, limit: usize },
    /// The envelope (or a header handed to [`seal`](super::seal)) has a format version this
    /// build does not know. Refused rather than guessed at.
    #[error("unknown envelope format version {0}")]
    UnknownVersion(u16),
    /// The bytes are not a well-formed envelope (bad magic, truncated, bad lengths, trailing
    /// bytes, undecodable header or payload), or a header/payload handed to [`seal`](super::seal) is
    /// inconsistent.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// The signature does not verify against the given device key: the envelope was altered,
    /// or signed by someone else.
    #[error("signature does not verify against the device key")]
    BadSignature,
    /// Correctly signed, but the header names another device than the one central expected
    /// (the one the key and the TLS client certificate belong to).
    #[error("envelope names device {got}, expected {expected}")]
    WrongDevice { expected: DeviceId, got: DeviceId },
    /// The envelope is ahead of the chain: envelopes between were lost. Central answers with
    /// `expected` (and its head) and the agent sends a snapshot chained onto that head.
    #[error("sequence gap: expected {expected}, got {got}")]
    Gap { expected: Seq, got: Seq },
    /// The envelope is behind the chain: central has applied it already. Central acks `seq`
    /// again without applying anything, so the agent's outbox can move on.
    #[error("replay of {seq}; next expected is {expected}")]
    Replay { seq: Seq, expected: Seq },
    /// The sequence number is the expected one, but `prev` is not the digest of the envelope
    /// central applied last: the agent's chain forked (restored backup, cloned SD card).
    #[error("envelope {seq} does not chain onto the envelope applied before it")]
    BrokenChain { seq: Seq },
    /// Signature and chain are fine but HPKE cannot open the payload: sealed to another
    /// central key, or ciphertext and header do not belong together.
    #[error("payload could not be decrypted")]
    Decrypt,
    /// HPKE refused to seal (e.g. central's public key is a low-order point).
    #[error("payload could not be encrypted")]
    Encrypt,
    /// A key's bytes do not form a usable key.
    #[error("invalid key")]
    InvalidKey,
    /// The operating system's random number generator failed; nothing was sealed or generated.
    #[error("system randomness unavailable")]
    Randomness,
}
