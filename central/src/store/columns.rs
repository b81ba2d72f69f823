//! How values the store keeps are written in database columns and read back: entity names,
//! sequence numbers, hashes, sizes and ids. Both backends use these, so the two databases
//! hold the same values the same way.

use skolebro_protocol::{DeviceId, Entity, RecordHandle, Seq, SiteId};

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

/// A stored consumer id ([`crate::store::consumer_id`]), which must be 16 bytes.
pub(crate) fn stored_consumer_id(bytes: &[u8]) -> Result<[u8; 16], StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("a consumer id is {} bytes, not 16", bytes.len())))
}

/// A nullable handle column (`identity`, `renamed_to`) as read, in either database.
pub(crate) fn optional_handle(
    bytes: Option<&[u8]>,
    what: &str,
) -> Result<Option<RecordHandle>, StoreError> {
    bytes
        .map(|bytes| Ok(RecordHandle::from_bytes(bytes32(bytes, what)?)))
        .transpose()
}

/// A device id read from the database.
pub(crate) fn stored_device(device: &str) -> Result<DeviceId, StoreError> {
    DeviceId::new(device)
        .map_err(|_| StoreError::Corrupt(format!("stored device id {device:?} is invalid")))
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

/// One row of a query result as either database hands it over. Each stored row type is read
/// from it by one function beside the type (`TokenRow::read` and the like), so the two
/// backends read a column list the same way.
pub(crate) trait DbRow {
    /// The database's own error, which converts into [`StoreError`].
    type Error;

    /// The column at `index`, as a type both databases convert.
    fn column<T>(&self, index: usize) -> Result<T, Self::Error>
    where
        T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>;

    /// A small integer column: PostgreSQL keeps it in two bytes (`SMALLINT`), SQLite in its
    /// one integer type.
    fn small_int(&self, index: usize) -> Result<i64, Self::Error>;
}

impl DbRow for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn column<T>(&self, index: usize) -> Result<T, rusqlite::Error>
    where
        T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.get(index)
    }

    fn small_int(&self, index: usize) -> Result<i64, rusqlite::Error> {
        self.get(index)
    }
}

impl DbRow for tokio_postgres::Row {
    type Error = tokio_postgres::Error;

    fn column<T>(&self, index: usize) -> Result<T, tokio_postgres::Error>
    where
        T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.try_get(index)
    }

    fn small_int(&self, index: usize) -> Result<i64, tokio_postgres::Error> {
        self.try_get::<_, i16>(index).map(i64::from)
    }
}
