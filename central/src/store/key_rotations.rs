//! Published key rotations as the store keeps them (issue 18, "Keys that can be rotated"):
//! written by the operator API (`POST /admin/key-rotations`, what `skolebro-provision
//! rotate-key` calls) and read for every heartbeat answer, which carries them all to the
//! device ([`skolebro_protocol::rotation`]). [`KeyRotationStore`] is what the backends
//! implement in their `key_rotations.rs`.

use super::error::StoreFuture;
use super::timestamp::Timestamp;

/// One published rotation: its role and sequence as read from the statement, and the
/// statement's bytes exactly as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRotation {
    /// `stick` or `release` (`KeyRole::name`).
    pub role: String,
    pub sequence: u64,
    pub statement: Vec<u8>,
    pub published: Timestamp,
}

/// The key rotations operations published.
pub trait KeyRotationStore: Send + Sync {
    /// Stores a rotation. Returns `false` when the very same statement was published before
    /// (a retry); another statement of the same role and sequence is
    /// [`StoreError::KeyRotationExists`].
    ///
    /// [`StoreError::KeyRotationExists`]: super::StoreError::KeyRotationExists
    fn publish_key_rotation<'a>(&'a self, rotation: &'a PublishedRotation)
        -> StoreFuture<'a, bool>;

    /// Every published rotation, by role name and sequence.
    fn key_rotations(&self) -> StoreFuture<'_, Vec<PublishedRotation>>;
}
