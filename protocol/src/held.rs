//! Why the agent's safety filter held a delta (or took something out of it), as structure
//! rather than words. The agent says it in English in its own logs and status; central's web
//! interface says it in the operator's language (bokmål by default, issue 16), with counts in
//! the right number. It travels in the heartbeat's held delta beside the English text
//! ([`crate::api::HeldDelta::causes`]), so an older central still shows the text and a newer
//! central falls back to the text an older agent sends.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One finding of the safety filter. The English rendering ([`fmt::Display`]) is the text the
/// agent has always sent, so logs and older centrals read the same words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeldReason {
    /// The export last sent had a column this one lacks (renamed in the SAS?): its data would
    /// be removed from every record, so the delta is held whatever its size.
    ColumnVanished {
        /// The column's header, as the export wrote it.
        column: String,
    },
    /// More of the students would be deleted than the policy allows.
    TooManyDeletes {
        /// Students the delta would delete.
        would: u64,
        /// Students there are now.
        of: u64,
        /// The policy's limit, in whole percent.
        limit_percent: u32,
    },
    /// More of the records (of every kind) would change than the policy allows.
    TooManyUpdates {
        /// Records the delta would change.
        would: u64,
        /// Records there are now.
        of: u64,
        /// The policy's limit, in whole percent.
        limit_percent: u32,
    },
    /// Deletions taken out of the delta while a delay-delete window is open; the next diff
    /// after the window deletes them.
    DeletionsPostponed {
        /// How many.
        count: u64,
        /// The window's first day, `YYYY-MM-DD`.
        from: String,
        /// Its last day, `YYYY-MM-DD`.
        to: String,
    },
    /// The delta is a full snapshot, sent to resynchronise with central.
    Resync,
    /// An operator released the delta the filter had held.
    Released,
    /// A reason a newer agent gives and this build does not know: shown by its text.
    #[serde(other)]
    Unknown,
}

/// `would` as a percentage of `of` (0 for an empty roster), as the thresholds compare it.
pub fn percent(would: u64, of: u64) -> f64 {
    if of == 0 {
        return 0.0;
    }
    would as f64 * 100.0 / of as f64
}

impl fmt::Display for HeldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeldReason::ColumnVanished { column } => write!(
                f,
                "the previous export had a `{column}` column and this one has none: its data \
                 would be removed from every record (renamed? see the unknown_column warnings)"
            ),
            HeldReason::TooManyDeletes {
                would,
                of,
                limit_percent,
            } => write!(
                f,
                "{would} of {of} students would be deleted ({:.0}%, limit {limit_percent}%)",
                percent(*would, *of)
            ),
            HeldReason::TooManyUpdates {
                would,
                of,
                limit_percent,
            } => write!(
                f,
                "{would} of {of} records would change ({:.0}%, limit {limit_percent}%)",
                percent(*would, *of)
            ),
            HeldReason::DeletionsPostponed { count, from, to } => write!(
                f,
                "{count} deletions postponed: delay-delete window {from} to {to} is open"
            ),
            HeldReason::Resync => f.write_str("full snapshot to resynchronise with central"),
            HeldReason::Released => f.write_str("released by an operator"),
            HeldReason::Unknown => f.write_str("a reason this version does not know"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_reads_in_english_as_the_agent_always_wrote_it() {
        let deletes = HeldReason::TooManyDeletes {
            would: 151,
            of: 300,
            limit_percent: 10,
        };
        assert_eq!(
            deletes.to_string(),
            "151 of 300 students would be deleted (50%, limit 10%)"
        );
        let updates = HeldReason::TooManyUpdates {
            would: 76,
            of: 100,
            limit_percent: 75,
        };
        assert_eq!(
            updates.to_string(),
            "76 of 100 records would change (76%, limit 75%)"
        );
        let postponed = HeldReason::DeletionsPostponed {
            count: 5,
            from: "2026-06-20".into(),
            to: "2026-08-15".into(),
        };
        assert_eq!(
            postponed.to_string(),
            "5 deletions postponed: delay-delete window 2026-06-20 to 2026-08-15 is open"
        );
        let column = HeldReason::ColumnVanished {
            column: "Klasse".into(),
        };
        assert!(column.to_string().contains("`Klasse` column"));
    }

    #[test]
    fn a_reason_travels_tagged_by_its_kind_and_an_unknown_kind_still_reads() {
        let reason = HeldReason::TooManyDeletes {
            would: 11,
            of: 100,
            limit_percent: 10,
        };
        let json = serde_json::to_value(&reason).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "too_many_deletes", "would": 11, "of": 100,
                               "limit_percent": 10})
        );
        assert_eq!(serde_json::from_value::<HeldReason>(json).unwrap(), reason);
        let newer: HeldReason =
            serde_json::from_str(r#"{"kind": "moon_phase", "phase": "full"}"#).unwrap();
        assert_eq!(newer, HeldReason::Unknown);
    }

    #[test]
    fn the_share_of_an_empty_roster_is_nothing() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
