//! [`SubjectStore`] on PostgreSQL: a pupil's records by national id, their erasure with its
//! tombstones, and the tombstones `apply` reads. The types, the trait and what a tombstone
//! does to a batch are in `crate::store::subjects`; the SQLite version of each method is in
//! `sqlite/subjects.rs`.

use skolebro_protocol::{Entity, RecordHandle, SiteId};
use tokio_postgres::GenericClient;

use super::paging::refresh_flags;
use super::PostgresStore;
use crate::store::columns::{bytes32, entity_name, stored_site};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::paging::{sites_to_refresh_after_erasure, Refresh};
use crate::store::subjects::{
    student_keys_to_db, subject_hash, SubjectStore, Tombstone, TombstoneRow, TOMBSTONE_COLUMNS,
};
use crate::store::timestamp::Timestamp;

/// The tombstones of one site, or of every site: what `apply` holds a batch against.
pub(super) async fn read_tombstones<C: GenericClient + Sync>(
    conn: &C,
    site: Option<&str>,
) -> Result<Vec<Tombstone>, StoreError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {TOMBSTONE_COLUMNS} FROM subject_tombstones \
                 WHERE $1::text IS NULL OR site = $1 ORDER BY erased_at DESC, site, subject"
            ),
            &[&site],
        )
        .await?;
    rows.iter()
        .map(|row| TombstoneRow::read(row)?.into_tombstone())
        .collect()
}

/// Counts the records of erased pupils a batch applied at `at` carried and `apply` held back.
pub(super) async fn mark_returned<C: GenericClient + Sync>(
    conn: &C,
    site: &str,
    held: &[(String, u64)],
    at: Timestamp,
) -> Result<(), StoreError> {
    for (subject, count) in held {
        let count = i64::try_from(*count).unwrap_or(i64::MAX);
        conn.execute(
            "UPDATE subject_tombstones SET returned = returned + $3, returned_at = $4 \
             WHERE site = $1 AND subject = $2",
            &[&site, subject, &count, &at.0],
        )
        .await?;
    }
    Ok(())
}

impl SubjectStore for PostgresStore {
    fn subject_hash(&self, value: &str) -> String {
        subject_hash(&self.sealer(), value)
    }

    fn students_with_national_id<'a>(
        &'a self,
        national_id: &'a str,
    ) -> StoreFuture<'a, Vec<(SiteId, RecordHandle)>> {
        let forms = vec![self.sealer().lookup(national_id), national_id.to_owned()];
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT DISTINCT site, handle FROM records WHERE entity = 'students' \
                     AND record->>'national_id' = ANY($1) ORDER BY site, handle",
                    &[&forms],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let site = stored_site(row.try_get(0)?)?;
                    let handle = bytes32(row.try_get(1)?, "record handle")?;
                    Ok((site, RecordHandle::from_bytes(handle)))
                })
                .collect()
        })
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
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT DISTINCT handle FROM records WHERE site = $1 \
                     AND entity = 'enrollments' AND record->>'student' = ANY($2) \
                     ORDER BY handle",
                    &[&site.as_str(), &forms],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(RecordHandle::from_bytes(bytes32(
                        row.try_get(0)?,
                        "record handle",
                    )?))
                })
                .collect()
        })
    }

    fn erase_subject<'a>(
        &'a self,
        records: &'a [(SiteId, Entity, RecordHandle)],
        tombstones: &'a [Tombstone],
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut conn = self.pool.get_bulk().await?;
            let tx = conn.transaction().await?;
            let mut deleted = 0;
            for (site, entity, handle) in records {
                deleted += tx
                    .execute(
                        "DELETE FROM records WHERE site = $1 AND entity = $2 AND handle = $3",
                        &[
                            &site.as_str(),
                            &entity_name(*entity),
                            &&handle.as_bytes()[..],
                        ],
                    )
                    .await?;
            }
            for tombstone in tombstones {
                tx.execute(
                    "INSERT INTO subject_tombstones \
                     (subject, site, student_keys, erased_at, erased_by, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (site, subject) DO UPDATE SET \
                       student_keys = excluded.student_keys, erased_at = excluded.erased_at, \
                       erased_by = excluded.erased_by, reason = excluded.reason, \
                       returned = 0, returned_at = NULL",
                    &[
                        &tombstone.subject,
                        &tombstone.site.as_str(),
                        &student_keys_to_db(&tombstone.student_keys),
                        &tombstone.erased_at.0,
                        &tombstone.erased_by,
                        &tombstone.reason,
                    ],
                )
                .await?;
            }
            for site in sites_to_refresh_after_erasure(records) {
                refresh_flags(&tx, site, &Refresh::Site).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    fn tombstones(&self) -> StoreFuture<'_, Vec<Tombstone>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_tombstones(&*conn, None).await
        })
    }

    fn clear_tombstone<'a>(&'a self, site: &'a SiteId, subject: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let removed = conn
                .execute(
                    "DELETE FROM subject_tombstones WHERE site = $1 AND subject = $2",
                    &[&site.as_str(), &subject],
                )
                .await?;
            Ok(removed > 0)
        })
    }
}
