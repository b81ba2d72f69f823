//! [`SubjectStore`] on SQLite: a pupil's records by national id, their erasure with its
//! tombstones, and the tombstones `apply` reads. The types, the trait and what a tombstone
//! does to a batch are in `crate::store::subjects`; the PostgreSQL version of each method is
//! in `postgres/subjects.rs`.

use rusqlite::{params, Connection, TransactionBehavior};
use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::paging::refresh_flags;
use super::SqliteStore;
use crate::store::columns::{bytes32, entity_name, stored_site};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::paging::{sites_to_refresh_after_erasure, Refresh};
use crate::store::subjects::{
    student_keys_to_db, subject_hash, SubjectStore, Tombstone, TombstoneRow, TOMBSTONE_COLUMNS,
};
use crate::store::timestamp::Timestamp;

/// The tombstones of one site, or of every site: what `apply` holds a batch against.
pub(super) fn read_tombstones(
    conn: &Connection,
    site: Option<&str>,
) -> Result<Vec<Tombstone>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOMBSTONE_COLUMNS} FROM subject_tombstones \
         WHERE ?1 IS NULL OR site = ?1 ORDER BY erased_at DESC, site, subject"
    ))?;
    let rows = statement.query_map([site], |row| TombstoneRow::read(row))?;
    let mut tombstones = Vec::new();
    for row in rows {
        tombstones.push(row?.into_tombstone()?);
    }
    Ok(tombstones)
}

/// Counts the records of erased pupils a batch applied at `at` carried and `apply` held back.
pub(super) fn mark_returned(
    conn: &Connection,
    site: &str,
    held: &[(String, u64)],
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached(
        "UPDATE subject_tombstones SET returned = returned + ?3, returned_at = ?4 \
         WHERE site = ?1 AND subject = ?2",
    )?;
    for (subject, count) in held {
        let count = i64::try_from(*count).unwrap_or(i64::MAX);
        statement.execute(params![site, subject, count, at.0])?;
    }
    Ok(())
}

impl SubjectStore for SqliteStore {
    fn subject_hash(&self, value: &str) -> String {
        subject_hash(&self.sealer(), value)
    }

    fn students_with_national_id<'a>(
        &'a self,
        national_id: &'a str,
    ) -> StoreFuture<'a, Vec<(SiteId, RecordHandle)>> {
        let forms = [self.sealer().lookup(national_id), national_id.to_owned()];
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT site, handle FROM records WHERE entity = 'students' \
                 AND json_extract(record, '$.national_id') IN (?1, ?2) ORDER BY site, handle",
            )?;
            let mut rows = statement.query(params![forms[0], forms[1]])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                let site = stored_site(&row.get::<_, String>(0)?)?;
                let handle = bytes32(&row.get::<_, Vec<u8>>(1)?, "record handle")?;
                found.push((site, RecordHandle::from_bytes(handle)));
            }
            Ok(found)
        }))
    }

    fn enrollments_naming<'a>(
        &'a self,
        site: &'a SiteId,
        student_keys: &'a [String],
    ) -> StoreFuture<'a, Vec<RecordHandle>> {
        let sealer = self.sealer();
        let forms: Vec<String> = student_keys
            .iter()
            .flat_map(|key| [sealer.lookup(key), key.clone()])
            .collect();
        let forms = serde_json::Value::from(forms).to_string();
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT handle FROM records WHERE site = ?1 AND entity = 'enrollments' \
                 AND json_extract(record, '$.student') IN (SELECT value FROM json_each(?2)) \
                 ORDER BY handle",
            )?;
            let mut rows = statement.query(params![site.as_str(), forms])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                let handle = bytes32(&row.get::<_, Vec<u8>>(0)?, "record handle")?;
                found.push(RecordHandle::from_bytes(handle));
            }
            Ok(found)
        }))
    }

    fn erase_subject<'a>(
        &'a self,
        records: &'a [(SiteId, Entity, RecordHandle)],
        tombstones: &'a [Tombstone],
    ) -> StoreFuture<'a, u64> {
        let records = records.to_vec();
        let tombstones = tombstones.to_vec();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = 0;
            {
                let mut delete = tx.prepare_cached(
                    "DELETE FROM records WHERE site = ?1 AND entity = ?2 AND handle = ?3",
                )?;
                for (site, entity, handle) in &records {
                    deleted += delete.execute(params![
                        site.as_str(),
                        entity_name(*entity),
                        &handle.as_bytes()[..]
                    ])? as u64;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO subject_tombstones \
                     (subject, site, student_keys, erased_at, erased_by, reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (site, subject) DO UPDATE SET \
                       student_keys = excluded.student_keys, erased_at = excluded.erased_at, \
                       erased_by = excluded.erased_by, reason = excluded.reason, \
                       returned = 0, returned_at = NULL",
                )?;
                for tombstone in &tombstones {
                    insert.execute(params![
                        tombstone.subject,
                        tombstone.site.as_str(),
                        student_keys_to_db(&tombstone.student_keys),
                        tombstone.erased_at.0,
                        tombstone.erased_by,
                        tombstone.reason,
                    ])?;
                }
            }
            for site in sites_to_refresh_after_erasure(&records) {
                refresh_flags(&tx, site, &Refresh::Site)?;
            }
            tx.commit()?;
            Ok(deleted)
        }))
    }

    fn tombstones(&self) -> StoreFuture<'_, Vec<Tombstone>> {
        Box::pin(self.call(|conn| read_tombstones(conn, None)))
    }

    fn clear_tombstone<'a>(&'a self, site: &'a SiteId, subject: &'a str) -> StoreFuture<'a, bool> {
        let site = site.clone();
        let subject = subject.to_owned();
        Box::pin(self.call(move |conn| {
            let removed = conn.execute(
                "DELETE FROM subject_tombstones WHERE site = ?1 AND subject = ?2",
                params![site.as_str(), subject],
            )?;
            Ok(removed > 0)
        }))
    }
}
