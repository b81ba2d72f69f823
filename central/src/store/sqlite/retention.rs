//! [`RetentionStore`] on SQLite: bounded deletes of old versions, departed records and audit
//! lines, the runs' totals, and a site's removal. The types and the trait are in
//! `crate::store::retention`; the PostgreSQL version of each method is in
//! `postgres/retention.rs`.

use rusqlite::{params, TransactionBehavior};
use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::SqliteStore;
use crate::store::columns::{bytes32, entity_from_name, stored_site, u64_to_db};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::retention::{
    totals_from_db, ForgottenSite, RetentionRun, RetentionStore, RetentionTotals,
};
use crate::store::timestamp::Timestamp;

/// Closed versions of a site closed before a time whose record lives on: a current version
/// under the same handle, or a rename on some version of it. Parameters: 1 site, 2 before,
/// 3 limit.
const CLOSED_VERSIONS: &str = "\
    DELETE FROM records WHERE id IN ( \
      SELECT r.id FROM records r \
      WHERE r.site = ?1 AND NOT r.is_current AND r.valid_to < ?2 \
        AND (EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                     AND c.handle = r.handle AND c.is_current) \
          OR EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                     AND c.handle = r.handle AND NOT c.is_current AND c.renamed_to IS NOT NULL)) \
      ORDER BY r.valid_to LIMIT ?3)";

/// Versions of a site's records that left before a time: none current, none renamed, none
/// closed at or after it. Parameters: 1 site, 2 before, 3 limit.
const DEPARTED: &str = "\
    DELETE FROM records WHERE id IN ( \
      SELECT r.id FROM records r \
      WHERE r.site = ?1 AND NOT r.is_current AND r.valid_to < ?2 \
        AND NOT EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                        AND c.handle = r.handle AND c.is_current) \
        AND NOT EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                        AND c.handle = r.handle AND NOT c.is_current \
                        AND (c.valid_to >= ?2 OR c.renamed_to IS NOT NULL)) \
      ORDER BY r.valid_to LIMIT ?3)";

impl RetentionStore for SqliteStore {
    fn sites(&self) -> StoreFuture<'_, Vec<SiteId>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached("SELECT site FROM sites ORDER BY site")?;
            let mut rows = statement.query([])?;
            let mut sites = Vec::new();
            while let Some(row) = rows.next()? {
                sites.push(stored_site(&row.get::<_, String>(0)?)?);
            }
            Ok(sites)
        }))
    }

    fn purge_closed_versions<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64> {
        let site = site.clone();
        Box::pin(
            self.call(move |conn| {
                bounded_delete(conn, CLOSED_VERSIONS, site.as_str(), before, limit)
            }),
        )
    }

    fn purge_departed<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64> {
        let site = site.clone();
        Box::pin(
            self.call(move |conn| bounded_delete(conn, DEPARTED, site.as_str(), before, limit)),
        )
    }

    fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM audit_log WHERE id IN \
                     (SELECT id FROM audit_log WHERE at < ?1 ORDER BY at, id LIMIT ?2)",
                )?
                .execute(params![before.0, i64::from(limit)])?;
            tx.prepare_cached("DELETE FROM retention_runs WHERE finished < ?1")?
                .execute([before.0])?;
            tx.commit()?;
            Ok(deleted as u64)
        }))
    }

    fn record_retention_run<'a>(&'a self, run: &'a RetentionRun) -> StoreFuture<'a, ()> {
        let run = *run;
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO retention_runs (started, finished, versions, departed, audit) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                run.started.0,
                run.finished.0,
                u64_to_db(run.versions, "purged versions")?,
                u64_to_db(run.departed, "purged departed")?,
                u64_to_db(run.audit, "purged audit lines")?,
            ])?;
            Ok(())
        }))
    }

    fn retention_totals(&self) -> StoreFuture<'_, RetentionTotals> {
        Box::pin(self.call(|conn| {
            let (runs, last, versions, departed, audit): (i64, Option<i64>, i64, i64, i64) = conn
                .prepare_cached(
                    "SELECT COUNT(*), MAX(finished), COALESCE(SUM(versions), 0), \
                            COALESCE(SUM(departed), 0), COALESCE(SUM(audit), 0) \
                     FROM retention_runs",
                )?
                .query_row([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?;
            totals_from_db(runs, last, [versions, departed, audit])
        }))
    }

    fn site_record_handles<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, Vec<(Entity, RecordHandle)>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT entity, handle FROM records WHERE site = ?1 \
                 ORDER BY entity, handle",
            )?;
            let mut rows = statement.query([site.as_str()])?;
            let mut handles = Vec::new();
            while let Some(row) = rows.next()? {
                let entity = entity_from_name(&row.get::<_, String>(0)?)?;
                let handle = bytes32(&row.get::<_, Vec<u8>>(1)?, "record handle")?;
                handles.push((entity, RecordHandle::from_bytes(handle)));
            }
            Ok(handles)
        }))
    }

    fn purge_site_records<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, u64> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM records WHERE id IN \
                     (SELECT id FROM records WHERE site = ?1 LIMIT ?2)",
                )?
                .execute(params![site.as_str(), i64::from(limit)])?;
            tx.commit()?;
            Ok(deleted as u64)
        }))
    }

    fn forget_site<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, ForgottenSite> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let site = site.as_str();
            let left: i64 = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM records WHERE site = ?1)",
                [site],
                |row| row.get(0),
            )?;
            if left != 0 {
                return Err(StoreError::SiteHasRecords(stored_site(site)?));
            }
            tx.execute(
                "DELETE FROM device_heartbeats WHERE device IN \
                 (SELECT device FROM devices WHERE site = ?1)",
                [site],
            )?;
            tx.execute(
                "DELETE FROM device_commands WHERE device IN \
                 (SELECT device FROM devices WHERE site = ?1)",
                [site],
            )?;
            for table in ["device_days", "device_day_deviations"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE device IN \
                         (SELECT device FROM devices WHERE site = ?1)"
                    ),
                    [site],
                )?;
            }
            let forgotten = ForgottenSite {
                devices_revoked: tx.execute(
                    "UPDATE devices SET revoked = 1 WHERE site = ?1 AND revoked = 0",
                    [site],
                )? as u64,
                tokens_revoked: tx.execute(
                    "UPDATE enrollment_tokens SET revoked = 1 \
                     WHERE site = ?1 AND revoked = 0 AND used_by IS NULL",
                    [site],
                )? as u64,
                schools: tx.execute("DELETE FROM site_schools WHERE site = ?1", [site])? as u64,
                transfers: tx.execute("DELETE FROM transfers WHERE site = ?1", [site])? as u64,
            };
            tx.execute("DELETE FROM sites WHERE site = ?1", [site])?;
            tx.commit()?;
            Ok(forgotten)
        }))
    }
}

/// Runs one of the bounded record deletes above in its own transaction.
fn bounded_delete(
    conn: &mut rusqlite::Connection,
    sql: &str,
    site: &str,
    before: Timestamp,
    limit: u32,
) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let deleted = tx
        .prepare_cached(sql)?
        .execute(params![site, before.0, i64::from(limit)])?;
    tx.commit()?;
    Ok(deleted as u64)
}
