//! [`KeyRotationStore`] on PostgreSQL: the published key rotations. The types and the trait
//! are in `crate::store::key_rotations`; the SQLite version of each method is in
//! `sqlite/key_rotations.rs`.

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::key_rotations::{KeyRotationStore, PublishedRotation};
use crate::store::timestamp::Timestamp;

impl KeyRotationStore for PostgresStore {
    fn publish_key_rotation<'a>(
        &'a self,
        rotation: &'a PublishedRotation,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let exists = || StoreError::KeyRotationExists(rotation.role.clone(), rotation.sequence);
            let sequence = i64::try_from(rotation.sequence).map_err(|_| exists())?;
            let conn = self.pool.get().await?;
            let written = conn
                .execute(
                    "INSERT INTO key_rotations (role, sequence, statement, published) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (role, sequence) DO NOTHING",
                    &[
                        &rotation.role,
                        &sequence,
                        &rotation.statement,
                        &rotation.published.0,
                    ],
                )
                .await?;
            if written == 1 {
                return Ok(true);
            }
            let kept = conn
                .query_opt(
                    "SELECT statement FROM key_rotations WHERE role = $1 AND sequence = $2",
                    &[&rotation.role, &sequence],
                )
                .await?;
            match kept.map(|row| row.get::<_, Vec<u8>>(0)) {
                Some(kept) if kept == rotation.statement => Ok(false),
                _ => Err(exists()),
            }
        })
    }

    fn key_rotations(&self) -> StoreFuture<'_, Vec<PublishedRotation>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT role, sequence, statement, published FROM key_rotations \
                     ORDER BY role, sequence",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| PublishedRotation {
                    role: row.get(0),
                    sequence: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    statement: row.get(2),
                    published: Timestamp(row.get(3)),
                })
                .collect())
        })
    }
}
