//! Retention: how long central keeps record history, records that left and audit lines, and
//! the job that deletes what is older (docs/PRIVACY.md, "How long").
//!
//! In the data flow it sits beside the ingest, on the store's other end: batches add and
//! close versions (`store::RecordStore::apply`); this job removes closed versions once they
//! are older than their county's period. A period is counted in school years, which start on
//! 1 August at midnight in Oslo (22:00 UTC on 31 July, summer time): with the default of 2, history from the start of last school year
//! on is kept. A site's county comes from its current school records and its registered
//! schools; a site in two counties keeps the longer period, a site in none the default.
//! Three kinds go: closed versions of records that live on (`versions`), every version of a
//! record that left once it left before its period (`departed`), and audit lines older than
//! `[privacy] audit_days` (`audit`). Each delete is one bounded transaction
//! ([`PURGE_BATCH`] rows), so the ingest is never blocked long and a run stopped half-way
//! (a restart, a failed database call) loses nothing: the next run continues where it
//! stood, and a run with nothing left to do deletes nothing. Each run leaves one audit line
//! and a row its metrics are read from (`skolebro_retention_*` on `/metrics`). `serve` runs
//! it every [`RUN_INTERVAL`]; `skolebro-central retention run` runs it once (cron, a test).
//!
//! A closed transfer window's elevliste is the counties' rosters as of its deadline; it can
//! be generated again exactly while no version valid at the deadline can have been purged,
//! which [`RetentionPolicy::window_file_kept`] tells and the export answers in words.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use skolebro_protocol::civil_time::{civil_from_days, days_from_civil};
use skolebro_protocol::SiteId;

use crate::store::{AuditEntry, Fylke, RetentionRun, Store, StoreError, Timestamp, TransferWindow};
use crate::windows::site_counties;

/// School years kept when `[privacy]` does not say: the current one and the one before, so
/// a question in the autumn about last spring can still be answered.
pub const DEFAULT_SCHOOL_YEARS: u32 = 2;

/// Days an audit line is kept when `[privacy] audit_days` is not set: five years.
pub const DEFAULT_AUDIT_DAYS: u64 = 5 * 365;

/// Rows deleted per transaction.
pub const PURGE_BATCH: u32 = 1000;

/// How often `serve` runs the job.
pub const RUN_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// The actor of the job's audit lines.
pub const ACTOR: &str = "retention";

const DAY_MS: i64 = 86_400_000;

/// The month a school year starts in (August).
const SCHOOL_YEAR_MONTH: i64 = 8;

/// How long one county keeps records, in school years counting the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// Closed versions of records that live on.
    pub record_school_years: u32,
    /// Records that left, counted from the school year they left in.
    pub departed_school_years: u32,
}

/// The first times still kept under some [`Periods`] at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Closed versions closed before this go.
    pub versions: Timestamp,
    /// Records that left before this go.
    pub departed: Timestamp,
}

impl Periods {
    /// The cut-offs at `now`.
    pub fn cutoffs(&self, now: Timestamp) -> Cutoffs {
        Cutoffs {
            versions: school_years_back(now, self.record_school_years),
            departed: school_years_back(now, self.departed_school_years),
        }
    }

    /// The longer of two periods, each kind on its own.
    fn longest(self, other: Periods) -> Periods {
        Periods {
            record_school_years: self.record_school_years.max(other.record_school_years),
            departed_school_years: self.departed_school_years.max(other.departed_school_years),
        }
    }
}

/// One county's `[privacy.fylke."NN"]` table: either period, the rest as `[privacy]` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountyRetentionConfig {
    pub record_school_years: Option<u32>,
    pub departed_school_years: Option<u32>,
}

/// The whole policy: the default periods, each county's own, and the audit lines' period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub default: Periods,
    pub counties: BTreeMap<Fylke, Periods>,
    pub audit_days: u64,
}

impl Default for RetentionPolicy {
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            default: Periods {
                record_school_years: DEFAULT_SCHOOL_YEARS,
                departed_school_years: DEFAULT_SCHOOL_YEARS,
            },
            counties: BTreeMap::new(),
            audit_days: DEFAULT_AUDIT_DAYS,
        }
    }
}

/// Most school years a period may keep: longer is a register, not a roster.
const MAX_SCHOOL_YEARS: u32 = 20;

impl RetentionPolicy {
    /// The policy `[privacy]`'s settings describe, or what is wrong with them in words
    /// (naming the setting).
    pub fn from_settings(
        record_school_years: u32,
        departed_school_years: u32,
        audit_days: u64,
        fylke: &BTreeMap<String, CountyRetentionConfig>,
    ) -> Result<RetentionPolicy, String> {
        let years = |value: u32, name: &str| {
            if (1..=MAX_SCHOOL_YEARS).contains(&value) {
                Ok(value)
            } else {
                Err(format!(
                    "{name} must be between 1 and {} school years",
                    MAX_SCHOOL_YEARS
                ))
            }
        };
        let default = Periods {
            record_school_years: years(record_school_years, "privacy.record_school_years")?,
            departed_school_years: years(departed_school_years, "privacy.departed_school_years")?,
        };
        if !(30..=7300).contains(&audit_days) {
            return Err("privacy.audit_days must be between 30 and 7300".to_owned());
        }
        let mut counties = BTreeMap::new();
        for (code, county) in fylke {
            let Some(fylke) = Fylke::parse(code) else {
                return Err(format!(
                    "privacy.fylke.{code:?}: a county is a fylkesnummer, two digits"
                ));
            };
            let name = |field: &str| format!("privacy.fylke.\"{code}\".{field}");
            let periods = Periods {
                record_school_years: match county.record_school_years {
                    Some(value) => years(value, &name("record_school_years"))?,
                    None => default.record_school_years,
                },
                departed_school_years: match county.departed_school_years {
                    Some(value) => years(value, &name("departed_school_years"))?,
                    None => default.departed_school_years,
                },
            };
            counties.insert(fylke, periods);
        }
        Ok(RetentionPolicy {
            default,
            counties,
            audit_days,
        })
    }

    /// The periods of a site in `counties`: the longest of theirs, the default for none.
    pub fn periods_for(&self, counties: &BTreeSet<Fylke>) -> Periods {
        counties
            .iter()
            .map(|county| self.counties.get(county).copied().unwrap_or(self.default))
            .reduce(Periods::longest)
            .unwrap_or(self.default)
    }

    /// Whether the closed `window`'s frozen elevliste can still be generated exactly at
    /// `now`: `Ok` while every version valid at its deadline is inside its county's periods,
    /// otherwise the sentence an operator is answered with.
    pub fn window_file_kept(&self, window: &TransferWindow, now: Timestamp) -> Result<(), String> {
        let periods = self.periods_for(&BTreeSet::from([window.fylke]));
        let cutoffs = periods.cutoffs(now);
        let kept_from = cutoffs.versions.max(cutoffs.departed);
        if window.closes >= kept_from {
            return Ok(());
        }
        Err(format!(
            "transfer window {} ({}) closed on {}, before the history county {} keeps \
             (from {}: {} school years of versions, {} for pupils who left); its frozen \
             elevliste can no longer be generated as it was at the deadline",
            window.id,
            window.name,
            window.closes.to_string().get(..10).unwrap_or_default(),
            window.fylke,
            kept_from.to_string().get(..10).unwrap_or_default(),
            periods.record_school_years,
            periods.departed_school_years,
        ))
    }
}

/// Oslo's offset from UTC on 1 August. Summer time (CEST, UTC+2) runs from the last Sunday
/// of March to the last Sunday of October, so a school year always starts at 22:00 UTC on
/// 31 July; the offset matters only at that boundary, so it is the one used.
const OSLO_AUGUST_OFFSET_MS: i64 = 2 * 3_600_000;

/// The start (1 August, 00:00 in Oslo) of the school year `at` lies in.
pub fn school_year_start(at: Timestamp) -> Timestamp {
    school_years_back(at, 1)
}

/// The start of the school year `years - 1` before the one `at` lies in: the first moment a
/// period of `years` school years keeps at `at`.
fn school_years_back(at: Timestamp, years: u32) -> Timestamp {
    let (year, month, _) = civil_from_days((at.0 + OSLO_AUGUST_OFFSET_MS).div_euclid(DAY_MS));
    let current = if month >= SCHOOL_YEAR_MONTH {
        year
    } else {
        year - 1
    };
    let first = current - i64::from(years.max(1) - 1);
    Timestamp(days_from_civil(first, SCHOOL_YEAR_MONTH, 1) * DAY_MS - OSLO_AUGUST_OFFSET_MS)
}

/// The counties each site lies in: from its current school records and from the schools
/// registered with it (which outlive the records of a site whose pupils all left).
async fn counties_of_sites(
    store: &dyn Store,
) -> Result<BTreeMap<SiteId, BTreeSet<Fylke>>, StoreError> {
    let mut counties = site_counties(store.current_schools().await?);
    for (site, school) in store.registered_schools().await? {
        if let Some(fylke) = Fylke::of_kommune(&school.kommunenummer) {
            counties.entry(site).or_default().insert(fylke);
        }
    }
    Ok(counties)
}

/// What one bounded delete removes.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Versions(&'a SiteId),
    Departed(&'a SiteId),
    Audit,
}

/// Repeats one kind's bounded delete until it deletes fewer than [`PURGE_BATCH`] rows.
async fn drain(store: &dyn Store, kind: Kind<'_>, before: Timestamp) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = match kind {
            Kind::Versions(site) => {
                store
                    .purge_closed_versions(site, before, PURGE_BATCH)
                    .await?
            }
            Kind::Departed(site) => store.purge_departed(site, before, PURGE_BATCH).await?,
            Kind::Audit => store.purge_audit(before, PURGE_BATCH).await?,
        };
        total += deleted;
        if deleted < u64::from(PURGE_BATCH) {
            return Ok(total);
        }
    }
}

/// One run of the job at the time `clock` tells (read once at the start, for the cut-offs,
/// and once at the end): purges every site by its counties' periods and the audit lines,
/// records the run and writes its audit line. Returns what it deleted.
pub async fn run(
    store: &dyn Store,
    policy: &RetentionPolicy,
    clock: &(dyn Fn() -> Timestamp + Sync),
) -> Result<RetentionRun, StoreError> {
    let started = clock();
    let counties = counties_of_sites(store).await?;
    let none = BTreeSet::new();
    let mut run = RetentionRun {
        started,
        finished: started,
        versions: 0,
        departed: 0,
        audit: 0,
    };
    for site in store.sites().await? {
        let cutoffs = policy
            .periods_for(counties.get(&site).unwrap_or(&none))
            .cutoffs(started);
        run.versions += drain(store, Kind::Versions(&site), cutoffs.versions).await?;
        run.departed += drain(store, Kind::Departed(&site), cutoffs.departed).await?;
    }
    let audit_ms = i64::try_from(policy.audit_days).unwrap_or(i64::MAX / DAY_MS) * DAY_MS;
    let audit_before = Timestamp(started.0.saturating_sub(audit_ms));
    run.audit = drain(store, Kind::Audit, audit_before).await?;
    run.finished = clock().max(started);
    store.record_retention_run(&run).await?;
    store
        .append_audit(&AuditEntry {
            at: run.finished,
            actor: ACTOR.to_owned(),
            action: "retention_run".to_owned(),
            target: "records".to_owned(),
            detail: format!(
                "purged {} closed versions, {} versions of records that left, {} audit lines \
                 (default: {} school years of versions, {} for records that left; audit {} days)",
                run.versions,
                run.departed,
                run.audit,
                policy.default.record_school_years,
                policy.default.departed_school_years,
                policy.audit_days,
            ),
        })
        .await?;
    Ok(run)
}

/// Runs the job now and then every [`RUN_INTERVAL`] until the returned task is aborted. A
/// failed run is logged and tried again at the next tick: what it deleted stays deleted,
/// the rest waits.
pub fn spawn(store: Arc<dyn Store>, policy: RetentionPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RUN_INTERVAL);
        loop {
            ticks.tick().await;
            match run(store.as_ref(), &policy, &Timestamp::now).await {
                Ok(run) => tracing::info!(
                    versions = run.versions,
                    departed = run.departed,
                    audit = run.audit,
                    "retention run finished"
                ),
                Err(error) => {
                    tracing::error!(%error, "the retention run failed; next run continues")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("a test time")
    }

    #[test]
    fn a_school_year_starts_on_the_first_of_august_at_midnight_in_oslo() {
        // Midnight in Oslo on 1 August is 22:00 UTC on 31 July (summer time).
        assert_eq!(
            school_year_start(at("2026-07-31T22:00:00Z")),
            at("2026-07-31T22:00:00Z")
        );
        assert_eq!(
            school_year_start(at("2026-07-31T23:59:59Z")),
            at("2026-07-31T22:00:00Z")
        );
        assert_eq!(
            school_year_start(at("2026-07-31T21:59:59Z")),
            at("2025-07-31T22:00:00Z")
        );
        assert_eq!(
            school_year_start(at("2026-08-01T00:00:00Z")),
            at("2026-07-31T22:00:00Z")
        );
        assert_eq!(
            school_year_start(at("2027-03-15")),
            at("2026-07-31T22:00:00Z")
        );
        let periods = Periods {
            record_school_years: 2,
            departed_school_years: 1,
        };
        let cutoffs = periods.cutoffs(at("2027-03-15"));
        assert_eq!(cutoffs.versions, at("2025-07-31T22:00:00Z"));
        assert_eq!(cutoffs.departed, at("2026-07-31T22:00:00Z"));
    }
}
