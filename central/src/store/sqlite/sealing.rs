//! [`SealStore`] on SQLite: the wrapped data keys in `seal_keys` and the reseal job's batches,
//! each in one `BEGIN IMMEDIATE` transaction. The trait and the key work are in
//! `crate::store::sealing`; the PostgreSQL version of each method is in `postgres/sealing.rs`.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension as _, TransactionBehavior};

use super::SqliteStore;
use crate::seal::{KeyPurpose, SealError, Sealer, WrappedKey};
use crate::store::columns::entity_from_name;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sealing::SealStore;
use crate::store::timestamp::Timestamp;

/// The rows the reseal job visits, with the active key as parameter 1.
const TO_RESEAL: &str =
    "entity IN ('students', 'enrollments') AND (key_id IS NULL OR key_id <> ?1)";

/// The records key stored as active.
const ACTIVE_KEY: &str = "SELECT key_id FROM seal_keys WHERE purpose = 'records' AND active = 1";

/// Refuses, inside an apply's write transaction, to write rows sealed under a records key the
/// database no longer holds (retired while this central had not yet noticed a rotation). The
/// transaction holds the write lock, so no retirement can come between this and the commit.
pub(super) fn check_records_key(
    tx: &rusqlite::Transaction<'_>,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let Some(active) = sealer.active() else {
        return Ok(());
    };
    let held: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM seal_keys WHERE key_id = ?1 AND purpose = 'records')",
        [active],
        |row| row.get(0),
    )?;
    if held {
        Ok(())
    } else {
        Err(SealError::UnknownKey(active).into())
    }
}

impl SealStore for SqliteStore {
    fn seal_keys(&self) -> StoreFuture<'_, Vec<WrappedKey>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT key_id, purpose, wrapped, kek, active FROM seal_keys ORDER BY key_id",
            )?;
            let mut rows = statement.query([])?;
            let mut keys = Vec::new();
            while let Some(row) = rows.next()? {
                let purpose: String = row.get(1)?;
                keys.push(WrappedKey {
                    id: row.get(0)?,
                    purpose: KeyPurpose::from_name(&purpose).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown key purpose {purpose:?}"))
                    })?,
                    wrapped: row.get(2)?,
                    kek: row.get(3)?,
                    active: row.get(4)?,
                });
            }
            Ok(keys)
        }))
    }

    fn add_seal_keys(&self, keys: Vec<WrappedKey>, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in &keys {
                if key.active {
                    tx.execute(
                        "UPDATE seal_keys SET active = 0 WHERE purpose = ?1 AND active = 1",
                        [key.purpose.name()],
                    )?;
                }
                tx.execute(
                    "INSERT INTO seal_keys (key_id, purpose, wrapped, kek, created, active) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        key.id,
                        key.purpose.name(),
                        key.wrapped,
                        key.kek,
                        at.0,
                        key.active
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn rewrap_seal_keys(&self, keys: Vec<WrappedKey>) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in &keys {
                tx.execute(
                    "UPDATE seal_keys SET wrapped = ?2, kek = ?3 WHERE key_id = ?1",
                    params![key.id, key.wrapped, key.kek],
                )?;
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn retire_seal_key(&self, key_id: u32) -> StoreFuture<'_, bool> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let in_use: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM records WHERE key_id = ?1)",
                [key_id],
                |row| row.get(0),
            )?;
            let removed = !in_use
                && tx.execute(
                    "DELETE FROM seal_keys \
                     WHERE key_id = ?1 AND purpose = 'records' AND active = 0",
                    [key_id],
                )? == 1;
            tx.commit()?;
            Ok(removed)
        }))
    }

    fn active_records_key(&self) -> StoreFuture<'_, Option<u32>> {
        Box::pin(self.call(|conn| {
            Ok(conn
                .query_row(ACTIVE_KEY, [], |row| row.get(0))
                .optional()?)
        }))
    }

    fn records_key_in_force(&self) -> Option<u32> {
        self.sealer().active()
    }

    fn set_sealer(&self, sealer: Arc<Sealer>) {
        *self.sealer.write() = sealer;
    }

    fn reseal(&self, after: i64, limit: u32) -> StoreFuture<'_, Option<i64>> {
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let Some(active) = sealer.active() else {
                return Ok(None);
            };
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<u32> = tx.query_row(ACTIVE_KEY, [], |row| row.get(0)).optional()?;
            if stored != Some(active) {
                return Err(SealError::Rotated.into());
            }
            let mut last = None;
            {
                let mut select = tx.prepare_cached(&format!(
                    "SELECT id, entity, record FROM records WHERE id > ?2 AND {TO_RESEAL} \
                     ORDER BY id LIMIT ?3"
                ))?;
                let mut update =
                    tx.prepare_cached("UPDATE records SET record = ?2, key_id = ?3 WHERE id = ?1")?;
                let mut rows = select.query(params![active, after, limit])?;
                while let Some(row) = rows.next()? {
                    let id: i64 = row.get(0)?;
                    let entity = entity_from_name(&row.get::<_, String>(1)?)?;
                    let clear = sealer.open_record(entity, &row.get::<_, String>(2)?)?;
                    let (json, key_id) = sealer.seal_record(entity, clear)?;
                    update.execute(params![id, json, key_id])?;
                    last = Some(id);
                }
            }
            tx.commit()?;
            if last.is_none() {
                // Done: the WAL still holds the pages as they were before resealing; copy
                // them into the file (zeroed where `secure_delete` cleared them) and empty it.
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(last)
        }))
    }

    fn rows_to_reseal(&self) -> StoreFuture<'_, u64> {
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let Some(active) = sealer.active() else {
                return Ok(0);
            };
            let count: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM records WHERE {TO_RESEAL}"),
                [active],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(count).unwrap_or_default())
        }))
    }

    fn has_clear_records(&self) -> StoreFuture<'_, bool> {
        Box::pin(self.call(|conn| {
            Ok(conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM records \
                 WHERE key_id IS NULL AND entity IN ('students', 'enrollments'))",
                [],
                |row| row.get(0),
            )?)
        }))
    }
}
