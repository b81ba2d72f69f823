//! [`KeyRotationStore`] on SQLite: the published key rotations. The types and the trait are
//! in `crate::store::key_rotations`; the PostgreSQL version of each method is in
//! `postgres/key_rotations.rs`.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::key_rotations::{KeyRotationStore, PublishedRotation};
use crate::store::timestamp::Timestamp;

impl KeyRotationStore for SqliteStore {
    fn publish_key_rotation<'a>(
        &'a self,
        rotation: &'a PublishedRotation,
    ) -> StoreFuture<'a, bool> {
        let rotation = rotation.clone();
        Box::pin(self.call(move |conn| {
            let sequence = i64::try_from(rotation.sequence).map_err(|_| {
                StoreError::KeyRotationExists(rotation.role.clone(), rotation.sequence)
            })?;
            let written = conn.execute(
                "INSERT INTO key_rotations (role, sequence, statement, published) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (role, sequence) DO NOTHING",
                params![
                    rotation.role,
                    sequence,
                    rotation.statement,
                    rotation.published.0
                ],
            )?;
            if written == 1 {
                return Ok(true);
            }
            let kept: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT statement FROM key_rotations WHERE role = ?1 AND sequence = ?2",
                    params![rotation.role, sequence],
                    |row| row.get(0),
                )
                .optional()?;
            match kept {
                Some(kept) if kept == rotation.statement => Ok(false),
                _ => Err(StoreError::KeyRotationExists(
                    rotation.role,
                    rotation.sequence,
                )),
            }
        }))
    }

    fn key_rotations(&self) -> StoreFuture<'_, Vec<PublishedRotation>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT role, sequence, statement, published FROM key_rotations \
                 ORDER BY role, sequence",
            )?;
            let rotations = statement
                .query_map([], |row| {
                    Ok(PublishedRotation {
                        role: row.get(0)?,
                        sequence: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        statement: row.get(2)?,
                        published: Timestamp(row.get(3)?),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rotations)
        }))
    }
}
