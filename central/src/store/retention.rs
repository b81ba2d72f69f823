//! Retention and a site's exit in the store: the bounded deletes the retention job
//! (`crate::retention`) repeats, the runs it records for the metrics, and what `site export`
//! and `site purge` (`crate::site_exit`) read and remove. Which period applies to which site
//! is decided above the store, from the county policy; here each call names its site, its
//! cut-off time and the most rows it may delete, and deletes them in one transaction, so a
//! purge never holds the records (or, on SQLite, the database) long and a stopped run leaves
//! nothing half done. No statement here reads a record's content: what a version holds is
//! the records area's business. [`RetentionStore`] is implemented in `sqlite/retention.rs`
//! and `postgres/retention.rs`.

use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// What one retention run deleted, as [`RetentionStore::record_retention_run`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRun {
    pub started: Timestamp,
    pub finished: Timestamp,
    /// Closed versions of records that still have a current version (or continue under a
    /// new key), older than their county's period.
    pub versions: u64,
    /// Versions of records that left (no current version), once the departure is older than
    /// the county's period for them.
    pub departed: u64,
    /// Audit lines older than the audit period.
    pub audit: u64,
}

/// Every recorded run summed, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionTotals {
    pub runs: u64,
    /// When the newest run finished.
    pub last_finished: Option<Timestamp>,
    pub versions: u64,
    pub departed: u64,
    pub audit: u64,
}

/// What removing a site's remains did, once its records are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForgottenSite {
    /// Devices of the site revoked now (those revoked before are not counted).
    pub devices_revoked: u64,
    /// Unused, unrevoked enrollment tokens of the site revoked now.
    pub tokens_revoked: u64,
    /// Registered schools removed from the site.
    pub schools: u64,
    /// Transfer rows removed.
    pub transfers: u64,
}

/// Retention's and a site's exit's deletes.
pub trait RetentionStore: Send + Sync {
    /// Every site with a handle secret (every site that can hold records), sorted.
    fn sites(&self) -> StoreFuture<'_, Vec<SiteId>>;

    /// Deletes at most `limit` closed versions of `site` that were closed before `before`,
    /// of records that still have a current version or were renamed (their history goes
    /// on under the new key), in one transaction; returns how many went. A caller repeats
    /// while it gets `limit`.
    fn purge_closed_versions<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64>;

    /// Deletes at most `limit` versions of records of `site` that left: no current version,
    /// not renamed, and no version closed at or after `before` (they left before it), in
    /// one transaction; returns how many went.
    fn purge_departed<'a>(
        &'a self,
        site: &'a SiteId,
        before: Timestamp,
        limit: u32,
    ) -> StoreFuture<'a, u64>;

    /// Deletes at most `limit` of the oldest audit lines from before `before`, with the
    /// retention runs as old, in one transaction; returns how many audit lines went.
    fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64>;

    /// Keeps what a finished run deleted, for [`RetentionStore::retention_totals`].
    fn record_retention_run<'a>(&'a self, run: &'a RetentionRun) -> StoreFuture<'a, ()>;

    /// Every kept run summed, with the newest one's end.
    fn retention_totals(&self) -> StoreFuture<'_, RetentionTotals>;

    /// Every record of `site` (current or not) by kind and handle, each once, sorted: what a
    /// site's export reads each record's history for.
    fn site_record_handles<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, Vec<(Entity, RecordHandle)>>;

    /// Deletes at most `limit` versions of `site`, of any age, in one transaction; returns
    /// how many went. A caller repeats while it gets `limit`: what `site purge` does first.
    fn purge_site_records<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, u64>;

    /// Once `site` has no records left: revokes its devices and unused enrollment tokens,
    /// removes its registered schools, transfers, devices' heartbeats, day history and queued commands,
    /// and its handle secret, in one transaction. Refused (`StoreError::Conflict`) while a
    /// record of the site is left.
    fn forget_site<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, ForgottenSite>;
}

/// The totals as both databases read them, checked.
pub(crate) fn totals_from_db(
    runs: i64,
    last: Option<i64>,
    [versions, departed, audit]: [i64; 3],
) -> Result<RetentionTotals, StoreError> {
    let count = |n: i64| {
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative purge count {n}")))
    };
    Ok(RetentionTotals {
        runs: count(runs)?,
        last_finished: last.map(Timestamp),
        versions: count(versions)?,
        departed: count(departed)?,
        audit: count(audit)?,
    })
}
