//! Key rotations at central (issue 18, "Keys that can be rotated"): operations publish a
//! rotation statement of the stick or the release key ([`skolebro_protocol::rotation`]),
//! [`publish`] keeps it in the store, and every heartbeat answer carries all of them
//! ([`for_answer`]), so a device that was offline during a rotation catches up with its next
//! heartbeat. Central holds neither key's private half nor the root key, so it cannot forge a
//! rotation; it checks what it can before storing: the statement's form, and for a release
//! rotation the current release key's signature, since central follows the release key
//! itself ([`current_release_key`]) to check the manifests operations register.

use base64::Engine as _;
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

/// The release key manifests must verify with now: `configured` (`release_key`, sequence 0),
/// followed through every published release rotation it signed, in sequence order. `None`
/// without a configured key.
pub(crate) async fn current_release_key(
    store: &dyn Store,
    configured: Option<&ReleaseVerifyingKey>,
) -> Result<Option<Rotated<ReleaseVerifyingKey>>, StoreError> {
    let Some(key) = configured.copied() else {
        return Ok(None);
    };
    let mut current = Rotated { sequence: 0, key };
    for rotation in store.key_rotations().await? {
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
    Ok(Some(current))
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
pub(crate) async fn for_answer(store: &dyn Store) -> Result<Vec<String>, StoreError> {
    let engine = base64::engine::general_purpose::STANDARD;
    Ok(store
        .key_rotations()
        .await?
        .iter()
        .map(|rotation| engine.encode(&rotation.statement))
        .collect())
}
