//! [`SealStore`] on PostgreSQL: the wrapped data keys in `seal_keys` and the reseal job's
//! batches, each in one transaction. The trait and the key work are in
//! `crate::store::sealing`; the SQLite version of each method is in `sqlite/sealing.rs`.

use std::sync::Arc;

use super::PostgresStore;
use crate::seal::{KeyPurpose, SealError, Sealer, WrappedKey};
use crate::store::columns::entity_from_name;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sealing::SealStore;
use crate::store::timestamp::Timestamp;

/// The rows the reseal job visits, with the active key as parameter 1.
const TO_RESEAL: &str =
    "entity IN ('students', 'enrollments') AND (key_id IS NULL OR key_id <> $1)";

/// The records key stored as active.
const ACTIVE_KEY: &str = "SELECT key_id FROM seal_keys WHERE purpose = 'records' AND active";

/// Refuses, inside an apply's transaction, to write rows sealed under a records key the
/// database no longer holds (retired while this central had not yet noticed a rotation).
/// `FOR SHARE` holds the key's row until the commit, so a retirement waits for the apply and
/// then finds its rows (see `retire_seal_key`).
pub(super) async fn check_records_key(
    tx: &tokio_postgres::Transaction<'_>,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let Some(active) = sealer.active() else {
        return Ok(());
    };
    let held = tx
        .query_opt(
            "SELECT 1 FROM seal_keys WHERE key_id = $1 AND purpose = 'records' FOR SHARE",
            &[&db_key_id(active)?],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(SealError::UnknownKey(active).into()),
    }
}

fn db_key_id(id: u32) -> Result<i32, StoreError> {
    i32::try_from(id).map_err(|_| StoreError::Corrupt(format!("key id {id} out of range")))
}

fn key_id_from_db(id: i32) -> Result<u32, StoreError> {
    u32::try_from(id).map_err(|_| StoreError::Corrupt(format!("key id {id} out of range")))
}

impl SealStore for PostgresStore {
    fn seal_keys(&self) -> StoreFuture<'_, Vec<WrappedKey>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT key_id, purpose, wrapped, kek, active FROM seal_keys \
                     ORDER BY key_id",
                    &[],
                )
                .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in rows {
                let purpose: String = row.try_get(1)?;
                keys.push(WrappedKey {
                    id: key_id_from_db(row.try_get(0)?)?,
                    purpose: KeyPurpose::from_name(&purpose).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown key purpose {purpose:?}"))
                    })?,
                    wrapped: row.try_get(2)?,
                    kek: row.try_get(3)?,
                    active: row.try_get(4)?,
                });
            }
            Ok(keys)
        })
    }

    fn add_seal_keys(&self, keys: Vec<WrappedKey>, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            for key in &keys {
                if key.active {
                    tx.execute(
                        "UPDATE seal_keys SET active = false WHERE purpose = $1 AND active",
                        &[&key.purpose.name()],
                    )
                    .await?;
                }
                tx.execute(
                    "INSERT INTO seal_keys (key_id, purpose, wrapped, kek, created, active) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &db_key_id(key.id)?,
                        &key.purpose.name(),
                        &key.wrapped,
                        &key.kek,
                        &at.0,
                        &key.active,
                    ],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn rewrap_seal_keys(&self, keys: Vec<WrappedKey>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            for key in &keys {
                tx.execute(
                    "UPDATE seal_keys SET wrapped = $2, kek = $3 WHERE key_id = $1",
                    &[&db_key_id(key.id)?, &key.wrapped, &key.kek],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn retire_seal_key(&self, key_id: u32) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let id = db_key_id(key_id)?;
            // The DELETE first: it waits for an apply holding the key (`check_records_key`),
            // and the count after it, in a snapshot of its own, then sees that apply's rows.
            // No reseal seals a row under this key meanwhile: it seals under the active key
            // only, which this one is not (the DELETE requires it).
            let deleted = tx
                .execute(
                    "DELETE FROM seal_keys \
                     WHERE key_id = $1 AND purpose = 'records' AND NOT active",
                    &[&id],
                )
                .await?
                == 1;
            let in_use: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM records WHERE key_id = $1)",
                    &[&id],
                )
                .await?
                .try_get(0)?;
            if !deleted || in_use {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    fn active_records_key(&self) -> StoreFuture<'_, Option<u32>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn.query_opt(ACTIVE_KEY, &[]).await?;
            row.map(|row| key_id_from_db(row.try_get(0)?)).transpose()
        })
    }

    fn records_key_in_force(&self) -> Option<u32> {
        self.sealer().active()
    }

    fn set_sealer(&self, sealer: Arc<Sealer>) {
        *self.sealer.write() = sealer;
    }

    fn reseal(&self, after: i64, limit: u32) -> StoreFuture<'_, Option<i64>> {
        Box::pin(async move {
            let sealer = self.sealer();
            let Some(active) = sealer.active() else {
                return Ok(None);
            };
            let mut conn = self.pool.get_bulk().await?;
            let tx = conn.transaction().await?;
            // FOR SHARE: a rotation (which clears `active` on this row) waits for this batch.
            let stored = tx
                .query_opt(&format!("{ACTIVE_KEY} FOR SHARE"), &[])
                .await?
                .map(|row| row.try_get::<_, i32>(0))
                .transpose()?;
            if stored != Some(db_key_id(active)?) {
                return Err(SealError::Rotated.into());
            }
            // SKIP LOCKED: a row an apply is closing right now is left for the next pass
            // rather than waited on (or deadlocked with).
            let rows = tx
                .query(
                    &format!(
                        "SELECT id, entity, record::text FROM records \
                         WHERE id > $2 AND {TO_RESEAL} ORDER BY id LIMIT $3 \
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&db_key_id(active)?, &after, &i64::from(limit)],
                )
                .await?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut records = Vec::with_capacity(rows.len());
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                let entity = entity_from_name(row.try_get(1)?)?;
                let clear = sealer.open_record(entity, row.try_get(2)?)?;
                let (json, key_id) = sealer.seal_record(entity, clear)?;
                ids.push(row.try_get::<_, i64>(0)?);
                records.push(json);
                keys.push(key_id.map(db_key_id).transpose()?);
            }
            if !ids.is_empty() {
                tx.execute(
                    "UPDATE records r SET record = k.record::json, key_id = k.key_id \
                     FROM UNNEST($1::bigint[], $2::text[], $3::int4[]) AS k (id, record, key_id) \
                     WHERE r.id = k.id",
                    &[&ids, &records, &keys],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(ids.last().copied())
        })
    }

    fn rows_to_reseal(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let sealer = self.sealer();
            let Some(active) = sealer.active() else {
                return Ok(0);
            };
            let conn = self.pool.get().await?;
            let count: i64 = conn
                .query_one(
                    &format!("SELECT COUNT(*) FROM records WHERE {TO_RESEAL}"),
                    &[&db_key_id(active)?],
                )
                .await?
                .try_get(0)?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
    }

    fn has_clear_records(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            Ok(conn
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM records \
                     WHERE key_id IS NULL AND entity IN ('students', 'enrollments'))",
                    &[],
                )
                .await?
                .try_get(0)?)
        })
    }
}
