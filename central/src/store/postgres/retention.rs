//! [`RetentionStore`] on PostgreSQL: bounded deletes of old versions, departed records and
//! audit lines, the runs' totals, and a site's removal. The types and the trait are in
//! `crate::store::retention`; the SQLite version of each method is in `sqlite/retention.rs`.

use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::PostgresStore;
use crate::store::columns::{bytes32, entity_from_name, stored_site, u64_to_db};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::retention::{
    totals_from_db, ForgottenSite, RetentionRun, RetentionStore, RetentionTotals,
};
use crate::store::timestamp::Timestamp;

/// Closed versions of a site closed before a time whose record lives on: a current version
/// under the same handle, or a rename on some version of it. Parameters: 1 site, 2 before,
/// 3 limit. One statement is one transaction.
const CLOSED_VERSIONS: &str = "\
    DELETE FROM records WHERE id IN ( \
      SELECT r.id FROM records r \
      WHERE r.site = $1 AND NOT r.is_current AND r.valid_to < $2 \
        AND (EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                     AND c.handle = r.handle AND c.is_current) \
          OR EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                     AND c.handle = r.handle AND NOT c.is_current AND c.renamed_to IS NOT NULL)) \
      ORDER BY r.valid_to LIMIT $3)";

/// Versions of a site's records that left before a time: none current, none renamed, none
/// closed at or after it. Parameters: 1 site, 2 before, 3 limit.
const DEPARTED: &str = "\
    DELETE FROM records WHERE id IN ( \
      SELECT r.id FROM records r \
      WHERE r.site = $1 AND NOT r.is_current AND r.valid_to < $2 \
        AND NOT EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                        AND c.handle = r.handle AND c.is_current) \
        AND NOT EXISTS (SELECT 1 FROM records c WHERE c.site = r.site AND c.entity = r.entity \
                        AND c.handle = r.handle AND NOT c.is_current \
                        AND (c.valid_to >= $2 OR c.renamed_to IS NOT NULL)) \
      ORDER BY r.valid_to LIMIT $3)";

impl RetentionStore for PostgresStore {
    fn sites(&self) -> StoreFuture<'_, Vec<SiteId>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query("SELECT site FROM sites ORDER BY site", &[])
                .await?;
            rows.iter()
                .map(|row| stored_site(row.try_get(0)?))
                .collect()
        })
    }

    fn purge_closed_versions<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64> {
        Box::pin(self.bounded_delete(CLOSED_VERSIONS, site, before, limit))
    }

    fn purge_departed<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64> {
        Box::pin(self.bounded_delete(DEPARTED, site, before, limit))
    }

    fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut conn = self.pool.get_bulk().await?;
            let tx = conn.transaction().await?;
            let deleted = tx
                .execute(
                    "DELETE FROM audit_log WHERE id IN \
                     (SELECT id FROM audit_log WHERE at < $1 ORDER BY at, id LIMIT $2)",
                    &[&before.0, &i64::from(limit)],
                )
                .await?;
            tx.execute(
                "DELETE FROM retention_runs WHERE finished < $1",
                &[&before.0],
            )
            .await?;
            tx.commit().await?;
            Ok(deleted)
        })
    }

    fn record_retention_run<'a>(&'a self, run: &'a RetentionRun) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute(
                "INSERT INTO retention_runs (started, finished, versions, departed, audit) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &run.started.0,
                    &run.finished.0,
                    &u64_to_db(run.versions, "purged versions")?,
                    &u64_to_db(run.departed, "purged departed")?,
                    &u64_to_db(run.audit, "purged audit lines")?,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn retention_totals(&self) -> StoreFuture<'_, RetentionTotals> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .query_one(
                    "SELECT COUNT(*), MAX(finished), COALESCE(SUM(versions), 0)::BIGINT, \
                            COALESCE(SUM(departed), 0)::BIGINT, COALESCE(SUM(audit), 0)::BIGINT \
                     FROM retention_runs",
                    &[],
                )
                .await?;
            totals_from_db(
                row.try_get(0)?,
                row.try_get(1)?,
                [row.try_get(2)?, row.try_get(3)?, row.try_get(4)?],
            )
        })
    }

    fn site_record_handles<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, Vec<(Entity, RecordHandle)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT DISTINCT entity, handle FROM records WHERE site = $1 \
                     ORDER BY entity, handle",
                    &[&site.as_str()],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let entity = entity_from_name(row.try_get(0)?)?;
                    let handle = bytes32(row.try_get(1)?, "record handle")?;
                    Ok((entity, RecordHandle::from_bytes(handle)))
                })
                .collect()
        })
    }

    fn purge_site_records<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let conn = self.pool.get_bulk().await?;
            let deleted = conn
                .execute(
                    "DELETE FROM records WHERE id IN \
                     (SELECT id FROM records WHERE site = $1 LIMIT $2)",
                    &[&site.as_str(), &i64::from(limit)],
                )
                .await?;
            Ok(deleted)
        })
    }

    fn forget_site<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, ForgottenSite> {
        Box::pin(async move {
            let mut conn = self.pool.get_bulk().await?;
            let tx = conn.transaction().await?;
            let site_name = site.as_str();
            // The site's row first: an apply of the site locks it too, so no batch can add a
            // record between the check and the deletes.
            tx.query_opt(
                "SELECT site FROM sites WHERE site = $1 FOR UPDATE",
                &[&site_name],
            )
            .await?;
            let left: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM records WHERE site = $1)",
                    &[&site_name],
                )
                .await?
                .try_get(0)?;
            if left {
                return Err(StoreError::SiteHasRecords(site.clone()));
            }
            tx.execute(
                "DELETE FROM device_heartbeats WHERE device IN \
                 (SELECT device FROM devices WHERE site = $1)",
                &[&site_name],
            )
            .await?;
            tx.execute(
                "DELETE FROM device_commands WHERE device IN \
                 (SELECT device FROM devices WHERE site = $1)",
                &[&site_name],
            )
            .await?;
            for table in ["device_days", "device_day_deviations"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE device IN \
                         (SELECT device FROM devices WHERE site = $1)"
                    ),
                    &[&site_name],
                )
                .await?;
            }
            let forgotten = ForgottenSite {
                devices_revoked: tx
                    .execute(
                        "UPDATE devices SET revoked = TRUE WHERE site = $1 AND NOT revoked",
                        &[&site_name],
                    )
                    .await?,
                tokens_revoked: tx
                    .execute(
                        "UPDATE enrollment_tokens SET revoked = TRUE \
                         WHERE site = $1 AND NOT revoked AND used_by IS NULL",
                        &[&site_name],
                    )
                    .await?,
                schools: tx
                    .execute("DELETE FROM site_schools WHERE site = $1", &[&site_name])
                    .await?,
                transfers: tx
                    .execute("DELETE FROM transfers WHERE site = $1", &[&site_name])
                    .await?,
            };
            tx.execute("DELETE FROM sites WHERE site = $1", &[&site_name])
                .await?;
            tx.commit().await?;
            Ok(forgotten)
        })
    }
}

impl PostgresStore {
    /// Runs one of the bounded record deletes above; one statement is one transaction.
    async fn bounded_delete(
        &self,
        sql: &str,
        site: &SiteId,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let conn = self.pool.get_bulk().await?;
        let deleted = conn
            .execute(sql, &[&site.as_str(), &before.0, &i64::from(limit)])
            .await?;
        Ok(deleted)
    }
}
