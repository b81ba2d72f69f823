//! Key rotations at central (issue 18, "Keys that can be rotated"): operations publish a
//! rotation statement of the stick or the release key ([`skolebro_protocol::rotation`]),
//! [`publish`] keeps it in the store, and every heartbeat answer carries all of them
//! ([`for_answer`]), so a device that was offline during a rotation catches up with its next
//! heartbeat. Central holds neither key's private half nor the root key, so it cannot forge a
//! rotation; it checks what it can before storing: the statement's form, and for a release
//! rotation the current release key's signature, since central follows the release key
//! itself ([`current_release_key`]) to check the manifests operations register.
//!
//! Heartbeats read the rotations through a [`RotationCache`]: the list changes a few times a
//! year, and reading it from the store twice per heartbeat was a third of a heartbeat's
//! queries at a fleet's scale (issue 15). Registering a release and publishing a rotation
//! still read the store itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use skolebro_protocol::rotation::{KeyRole, KeyRotation, Rotated, RotationError};
use skolebro_protocol::ReleaseVerifyingKey;

use crate::store::prelude::*;
use crate::store::{PublishedRotation, StoreError, Timestamp};

/// Why a published rotation was not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// Not a rotation statement, or a release rotation the release key central follows did
    /// not sign.
    #[error("{0}")]
    Invalid(RotationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a heartbeat may answer from the rotations this process read last. A rotation
/// published through another instance reaches that instance's devices at most this much
/// later; one published through this instance, at once ([`RotationCache::forget`]).
pub(crate) const ROTATIONS_FRESH_FOR: Duration = Duration::from_secs(5);

/// The published rotations as this process last read them, for the heartbeat path. The
/// table only grows, and a device that misses a rotation in one answer gets it in the next,
/// so an answer a few seconds behind the store loses nothing; every instance on a shared
/// store catches up within [`ROTATIONS_FRESH_FOR`].
pub(crate) struct RotationCache {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, Arc<[PublishedRotation]>)>>,
}

impl RotationCache {
    pub(crate) fn new(fresh_for: Duration) -> RotationCache {
        RotationCache {
            fresh_for,
            last: Mutex::new(None),
        }
    }

    /// The rotations read within `fresh_for`, or read now. Heartbeats arriving together at
    /// expiry may each read once; that is a handful of reads, not one per heartbeat.
    pub(crate) async fn get(
        &self,
        store: &dyn Store,
    ) -> Result<Arc<[PublishedRotation]>, StoreError> {
        if let Some((read_at, rotations)) = &*self.last.lock() {
            if read_at.elapsed() < self.fresh_for {
                return Ok(Arc::clone(rotations));
            }
        }
        let rotations: Arc<[PublishedRotation]> = store.key_rotations().await?.into();
        *self.last.lock() = Some((Instant::now(), Arc::clone(&rotations)));
        Ok(rotations)
    }

    /// Drops what was read, so the next heartbeat carries a rotation this process has just
    /// published.
    pub(crate) fn forget(&self) {
        *self.last.lock() = None;
    }
}

/// The release key manifests must verify with now, read from the store: see
/// [`follow_release_key`].
pub(crate) async fn current_release_key(
    store: &dyn Store,
    configured: Option<&ReleaseVerifyingKey>,
) -> Result<Option<Rotated<ReleaseVerifyingKey>>, StoreError> {
    Ok(follow_release_key(
        &store.key_rotations().await?,
        configured,
    ))
}

/// `configured` (`release_key`, sequence 0) followed through every release rotation of
/// `rotations` it signed, in sequence order. `None` without a configured key.
pub(crate) fn follow_release_key(
    rotations: &[PublishedRotation],
    configured: Option<&ReleaseVerifyingKey>,
) -> Option<Rotated<ReleaseVerifyingKey>> {
    let key = configured.copied()?;
    let mut current = Rotated { sequence: 0, key };
    for rotation in rotations {
        if rotation.role != KeyRole::Release.name() {
            continue;
        }
        // A `release_key` installed after a rotation is that rotation's key already.
        let to_current = KeyRotation::read_unchecked(&rotation.statement)
            .is_ok_and(|claimed| claimed.new_key == current.key.to_bytes());
        if to_current {
            current.sequence = current.sequence.max(rotation.sequence);
            continue;
        }
        match KeyRotation::verify_release_by_current_key(
            &rotation.statement,
            &current.key,
            current.sequence,
        ) {
            Ok(rotated) => current = rotated,
            Err(error) => {
                tracing::warn!(sequence = rotation.sequence, %error, "a published release key rotation does not follow the release key");
            }
        }
    }
    Some(current)
}

/// Checks and stores a rotation statement; returns it as read, and whether it is new (the
/// same statement again is a retry, not an error).
pub(crate) async fn publish(
    store: &dyn Store,
    configured_release_key: Option<&ReleaseVerifyingKey>,
    statement: &[u8],
    now: Timestamp,
) -> Result<(KeyRotation, bool), PublishError> {
    let rotation = KeyRotation::read_unchecked(statement).map_err(PublishError::Invalid)?;
    let retry = store
        .key_rotations()
        .await?
        .iter()
        .any(|published| published.statement == statement);
    if rotation.role == KeyRole::Release && !retry {
        if let Some(current) = current_release_key(store, configured_release_key).await? {
            KeyRotation::verify_release_by_current_key(statement, &current.key, current.sequence)
                .map_err(PublishError::Invalid)?;
        }
    }
    let new = store
        .publish_key_rotation(&PublishedRotation {
            role: rotation.role.name().to_owned(),
            sequence: rotation.sequence,
            statement: statement.to_vec(),
            published: now,
        })
        .await?;
    Ok((rotation, new))
}

/// Every published rotation, base64, for a heartbeat answer.
pub(crate) fn for_answer(rotations: &[PublishedRotation]) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    rotations
        .iter()
        .map(|rotation| engine.encode(&rotation.statement))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn rotation(sequence: u64) -> PublishedRotation {
        PublishedRotation {
            role: KeyRole::Stick.name().to_owned(),
            sequence,
            statement: vec![sequence as u8; 8],
            published: Timestamp::now(),
        }
    }

    async fn sequences(cache: &RotationCache, store: &dyn Store) -> Vec<u64> {
        let rotations = cache.get(store).await.unwrap();
        rotations
            .iter()
            .map(|published| published.sequence)
            .collect()
    }

    async fn store_with(rotations: &[PublishedRotation]) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("central.db"))
            .await
            .unwrap();
        for published in rotations {
            assert!(store.publish_key_rotation(published).await.unwrap());
        }
        (dir, store)
    }

    #[tokio::test]
    async fn a_fresh_cache_answers_without_the_rotation_another_instance_just_published() {
        let (_dir, store) = store_with(&[rotation(1)]).await;
        let cache = RotationCache::new(Duration::from_secs(3600));
        assert_eq!(sequences(&cache, &store).await, [1]);

        // Another instance on the same store publishes: this one answers from what it read
        // until the cache goes stale.
        store.publish_key_rotation(&rotation(2)).await.unwrap();
        assert_eq!(sequences(&cache, &store).await, [1]);

        // Publishing through this instance forgets what was read.
        cache.forget();
        assert_eq!(sequences(&cache, &store).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_stale_cache_reads_the_store_again() {
        let (_dir, store) = store_with(&[]).await;
        let cache = RotationCache::new(Duration::ZERO);
        assert!(sequences(&cache, &store).await.is_empty());
        store.publish_key_rotation(&rotation(1)).await.unwrap();
        assert_eq!(sequences(&cache, &store).await, [1]);
    }

    #[test]
    fn the_heartbeat_answer_carries_each_statement_in_base64() {
        assert_eq!(
            for_answer(&[rotation(1), rotation(2)]),
            ["AQEBAQEBAQE=", "AgICAgICAgI="]
        );
    }
}
