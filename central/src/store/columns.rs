//! How values the store keeps are written in database columns and read back: entity names,
//! sequence numbers, hashes, sizes and ids. Both backends use these, so the two databases
//! hold the same values the same way.

use skolebro_protocol::{Entity, Seq, SiteId};

use super::error::StoreError;

/// The stored name of an entity kind: readable in SQL, and stable even if `Entity`'s
/// variants are reordered.
pub(crate) fn entity_name(entity: Entity) -> &'static str {
    entity.plural()
}

pub(crate) fn entity_from_name(name: &str) -> Result<Entity, StoreError> {
    Entity::ALL
        .into_iter()
        .find(|entity| entity.plural() == name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown entity {name:?}")))
}

pub(crate) fn seq_to_db(seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq.0).map_err(|_| StoreError::SeqOutOfRange(seq))
}

pub(crate) fn seq_from_db(seq: i64) -> Result<Seq, StoreError> {
    u64::try_from(seq)
        .map(Seq)
        .map_err(|_| StoreError::Corrupt(format!("negative sequence number {seq}")))
}

pub(crate) fn bytes32(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// A site id read from the database.
pub(crate) fn stored_site(site: &str) -> Result<SiteId, StoreError> {
    SiteId::new(site)
        .map_err(|_| StoreError::Corrupt(format!("stored site id {site:?} is invalid")))
}

/// A size or version number as the databases' signed 64-bit integers hold it.
pub(crate) fn u64_to_db(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Config(format!("{what} {value} is out of range")))
}
