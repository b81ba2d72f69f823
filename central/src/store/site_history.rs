//! A site's history by Oslo day, as the store keeps it for the site page's charts: for each
//! of its devices and each day, whether a delta was held that day and the deviations, by
//! code, of that day's newest heartbeat. Central keeps only each device's last heartbeat
//! otherwise (`super::fleet`), which shows neither a hold that ended without an operator's
//! decision nor how deviations went over the weeks.
//!
//! The backends write it in `record_heartbeat`, in the heartbeat's transaction, and drop a
//! device's rows older than [`HISTORY_DAYS`] there too, so the tables stay at one row per
//! device and day and one per device, day and code. Codes, severities and counts only: a
//! group's masked example rows are not kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use skolebro_protocol::api::Heartbeat;

use super::error::StoreError;

/// Days of history kept per device, today included: the site page's chart covers as many.
pub const HISTORY_DAYS: i64 = 90;

/// How many rows carried one deviation code on one day, over a site's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayDeviation {
    /// Days since 1970-01-01 on Oslo's calendar ([`super::Timestamp::oslo_day`]).
    pub day: i64,
    pub code: String,
    /// An error keeps the record out; a warning does not.
    pub error: bool,
    /// The sum over the site's devices of what each last reported that day.
    pub count: u64,
}

/// A site's days with a held delta and its deviations by day and code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteHistory {
    /// Days on which a heartbeat of one of the site's devices carried a held delta.
    pub held_days: BTreeSet<i64>,
    /// By day, then code.
    pub deviations: Vec<DayDeviation>,
}

/// A heartbeat's deviation groups as the history keeps them: `(code, error, count)`, one per
/// code (counts of a code named twice added up), as the store's integers.
pub(crate) fn day_groups(heartbeat: &Heartbeat) -> Vec<(String, bool, i64)> {
    let mut codes: BTreeMap<&str, (bool, u64)> = BTreeMap::new();
    for group in &heartbeat.deviation_groups {
        let entry = codes.entry(&group.code).or_default();
        entry.0 |= group.severity == "error";
        entry.1 = entry.1.saturating_add(group.count);
    }
    codes
        .into_iter()
        .map(|(code, (error, count))| {
            (
                code.to_owned(),
                error,
                i64::try_from(count).unwrap_or(i64::MAX),
            )
        })
        .collect()
}

/// The history rows of a site's devices as both backends read them: `(day, held)` per
/// device and day, `(day, code, error, count)` per device, day and code.
#[derive(Debug, Default)]
pub(crate) struct HistoryRows {
    pub days: Vec<(i64, bool)>,
    pub deviations: Vec<(i64, String, bool, i64)>,
}

impl HistoryRows {
    /// Adds the devices' rows up per day and code.
    pub(crate) fn into_history(self) -> Result<SiteHistory, StoreError> {
        let held_days = self
            .days
            .into_iter()
            .filter(|(_, held)| *held)
            .map(|(day, _)| day)
            .collect();
        let mut sums: BTreeMap<(i64, String), (bool, u64)> = BTreeMap::new();
        for (day, code, error, count) in self.deviations {
            let count = u64::try_from(count)
                .map_err(|_| StoreError::Corrupt(format!("negative deviation count {count}")))?;
            let entry = sums.entry((day, code)).or_default();
            entry.0 |= error;
            entry.1 = entry.1.saturating_add(count);
        }
        let deviations = sums
            .into_iter()
            .map(|((day, code), (error, count))| DayDeviation {
                day,
                code,
                error,
                count,
            })
            .collect();
        Ok(SiteHistory {
            held_days,
            deviations,
        })
    }
}

/// A site's device days from a first day on; `$1` the site, `$2` the first day (SQLite
/// numbers `$`-parameters in the order they appear, which is the same here).
pub(crate) const SITE_DAYS_SQL: &str = "SELECT d.day, d.held FROM device_days d \
     JOIN devices v ON v.device = d.device WHERE v.site = $1 AND d.day >= $2";

/// A site's device deviations from a first day on, parameters as [`SITE_DAYS_SQL`].
pub(crate) const SITE_DEVIATIONS_SQL: &str =
    "SELECT x.day, x.code, x.error, x.count FROM device_day_deviations x \
     JOIN devices v ON v.device = x.device WHERE v.site = $1 AND x.day >= $2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_named_twice_in_one_heartbeat_is_kept_once_with_its_counts_added() {
        let heartbeat: Heartbeat = serde_json::from_value(serde_json::json!({
            "version": "0.1.0",
            "state": "healthy",
            "deviation_groups": [
                {"code": "unknown_field", "severity": "warning", "count": 2, "rows": []},
                {"code": "unknown_field", "severity": "warning", "count": 3, "rows": []},
                {"code": "invalid_national_id", "severity": "error", "count": 1, "rows": []}
            ]
        }))
        .expect("a heartbeat");
        assert_eq!(
            day_groups(&heartbeat),
            vec![
                ("invalid_national_id".to_owned(), true, 1),
                ("unknown_field".to_owned(), false, 5)
            ]
        );
    }

    #[test]
    fn the_devices_of_a_site_are_added_up_per_day_and_code() {
        let rows = HistoryRows {
            days: vec![(10, false), (10, true), (11, false)],
            deviations: vec![
                (10, "unknown_field".into(), false, 2),
                (10, "unknown_field".into(), false, 3),
                (11, "unknown_field".into(), false, 1),
            ],
        };
        let history = rows.into_history().expect("a history");
        assert_eq!(history.held_days, BTreeSet::from([10]));
        let counts: Vec<_> = history
            .deviations
            .iter()
            .map(|d| (d.day, d.count))
            .collect();
        assert_eq!(counts, vec![(10, 5), (11, 1)]);
    }
}
