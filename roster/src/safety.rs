//! The safety filter (DESIGN decision 5): the last stage before a delta is sealed. A broken
//! export that drops most students looks exactly like a mass deletion, so a delta that deletes
//! or changes more than configured fractions of the roster is held for an operator instead of
//! sent. Delay-delete windows postpone deletions (summer, year rollover) without losing them:
//! the postponed handles stay in the state, so the next diff after the window deletes them.

use std::fmt;

use serde::{Deserialize, Deserializer};
use skolebro_protocol::civil_time;
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{Delta, Entity, RecordHandle};

use crate::diff::{DeltaPlan, DiffSummary};
use crate::state::State;

/// Thresholds and windows, from the `[safety]` table of the agent config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyPolicy {
    /// Hold when more than this fraction of the students would be deleted.
    pub max_deleted_fraction: f64,
    /// Hold when more than this fraction of existing records would change.
    pub max_updated_fraction: f64,
    /// Below this many students the fractions say little (one leaver in a class of five is
    /// 20%), so they are not applied.
    pub min_roster: usize,
    /// Date ranges, inclusive, in which deletions are postponed.
    pub delay_delete: Vec<DateWindow>,
}

impl Default for SafetyPolicy {
    /// Clever holds a sync above 10% deleted or 75% updated; these follow it.
    fn default() -> Self {
        SafetyPolicy {
            max_deleted_fraction: 0.10,
            max_updated_fraction: 0.75,
            min_roster: 20,
            delay_delete: Vec::new(),
        }
    }
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DateWindow {
    #[serde(deserialize_with = "iso_date")]
    pub from: CivilDate,
    #[serde(deserialize_with = "iso_date")]
    pub to: CivilDate,
}

fn iso_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CivilDate, D::Error> {
    let text = String::deserialize(deserializer)?;
    CivilDate::parse_iso(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD)")))
}

/// Pass the delta on, or hold it for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Hold,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Hold => "hold",
        })
    }
}

/// The filter's answer, with reasons an operator can read.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// Deletions taken out of the delta because a delay-delete window is open.
    pub postponed: usize,
}

/// Judges a delta against the state it applies to. Inside a delay-delete window the deletes
/// are taken out of `delta` before the thresholds are applied.
pub fn judge(
    policy: &SafetyPolicy,
    old: &State,
    delta: &mut impl Deletions,
    summary: &DiffSummary,
    columns: Columns<'_>,
    today: CivilDate,
) -> Judgement {
    let mut reasons = Vec::new();
    let mut verdict = Verdict::Pass;
    // A column that vanished takes its data out of every record at once (classes vanish
    // when `Klasse` is renamed to something the reader does not know), and the deltas that
    // follow look like ordinary changes: held whatever their size.
    let vanished = vanished_columns(columns.before, columns.after);
    for column in &vanished {
        verdict = Verdict::Hold;
        reasons.push(format!(
            "the previous export had a `{column}` column and this one has none: its data \
             would be removed from every record (renamed? see the unknown_column warnings)"
        ));
    }
    let mut postponed = 0;
    let mut deleted_students = summary.deleted(Entity::Student);
    if let Some(window) = policy
        .delay_delete
        .iter()
        .find(|w| w.from <= today && today <= w.to)
    {
        for entity in Entity::ALL {
            let deletes = std::mem::take(delta.deletes_mut(entity));
            let renames: Vec<RecordHandle> = deletes
                .iter()
                .filter(|h| delta.completes_rename(entity, h))
                .copied()
                .collect();
            postponed += deletes.len() - renames.len();
            *delta.deletes_mut(entity) = renames;
        }
        deleted_students = 0;
        if postponed > 0 {
            reasons.push(format!(
                "{postponed} deletions postponed: delay-delete window {} to {} is open",
                window.from, window.to
            ));
        }
    }

    let students = old.len(Entity::Student);
    if students >= policy.min_roster && students > 0 {
        let deleted = deleted_students as f64 / students as f64;
        if deleted > policy.max_deleted_fraction {
            verdict = Verdict::Hold;
            reasons.push(format!(
                "{deleted_students} of {students} students would be deleted ({:.0}%, limit {:.0}%)",
                deleted * 100.0,
                policy.max_deleted_fraction * 100.0
            ));
        }
        let updated: usize = Entity::ALL.iter().map(|&e| summary.updated(e)).sum();
        let total = old.total();
        let changed = updated as f64 / total as f64;
        if changed > policy.max_updated_fraction {
            verdict = Verdict::Hold;
            reasons.push(format!(
                "{updated} of {total} records would change ({:.0}%, limit {:.0}%)",
                changed * 100.0,
                policy.max_updated_fraction * 100.0
            ));
        }
    }
    Judgement {
        verdict,
        reasons,
        postponed,
    }
}

/// The fields of the export last sent and of the export judged (`Validated::columns`), so
/// a column that vanished is seen. Empty slices when either is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    pub before: &'a [String],
    pub after: &'a [String],
}

/// The fields `before` had that `after` lacks. An export of another format (no columns on
/// one side) is not compared.
pub fn vanished_columns(before: &[String], after: &[String]) -> Vec<String> {
    if before.is_empty() || after.is_empty() {
        return Vec::new();
    }
    before
        .iter()
        .filter(|column| !after.contains(column))
        .cloned()
        .collect()
}

/// The part of a delta the safety filter changes: its deletions, which an open delay-delete
/// window postpones. The `diff` report judges a copied [`Delta`]; the enqueue stage judges a
/// [`DeltaPlan`] before any record is copied.
pub trait Deletions {
    fn deletes_mut(&mut self, entity: Entity) -> &mut Vec<RecordHandle>;

    /// Whether deleting `handle` completes a rename; such a delete is never postponed,
    /// since the new key is sent now and central would hold the record twice.
    fn completes_rename(&self, _entity: Entity, _handle: &RecordHandle) -> bool {
        false
    }
}

impl Deletions for Delta {
    fn deletes_mut(&mut self, entity: Entity) -> &mut Vec<RecordHandle> {
        Delta::deletes_mut(self, entity)
    }
}

impl Deletions for DeltaPlan {
    fn deletes_mut(&mut self, entity: Entity) -> &mut Vec<RecordHandle> {
        DeltaPlan::deletes_mut(self, entity)
    }

    fn completes_rename(&self, entity: Entity, handle: &RecordHandle) -> bool {
        self.is_renamed(entity, handle)
    }
}

/// Today's date in UTC, from the system clock.
pub fn today() -> CivilDate {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_time::date_from_days((seconds / 86_400) as i64).unwrap_or(CivilDate::UNIX_EPOCH)
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use skolebro_protocol::{EntityDelta, RecordHandle};

    /// A state of `n` students and a delta deleting the first `deleted` of them.
    fn deleting(n: u8, deleted: u8) -> (State, Delta, DiffSummary) {
        let handles: Vec<RecordHandle> =
            (0..n).map(|i| RecordHandle::from_bytes([i; 32])).collect();
        let mut state = State::default();
        let mut full = Delta::default();
        for h in &handles {
            full.students.upserts.push((
                *h,
                skolebro_protocol::Student {
                    source_key: "x".into(),
                    national_id: None,
                    username: None,
                    given_name: "A".into(),
                    middle_name: None,
                    family_name: "B".into(),
                    birth_date: None,
                    gender: skolebro_protocol::Gender::Unknown,
                    email: None,
                },
            ));
        }
        state.apply(&full);
        let delta = Delta {
            students: EntityDelta {
                upserts: Vec::new(),
                deletes: handles[..usize::from(deleted)].to_vec(),
            },
            ..Delta::default()
        };
        let mut summary = DiffSummary::default();
        summary.deleted[Entity::Student as usize] = usize::from(deleted);
        (state, delta, summary)
    }

    fn day(text: &str) -> CivilDate {
        CivilDate::parse_iso(text).unwrap()
    }

    #[test]
    fn a_column_the_previous_export_had_is_held_with_its_name() {
        let (state, mut delta, summary) = deleting(100, 0);
        let before = ["Klasse".to_owned(), "Trinn".to_owned()];
        let mut judge_with = |after: &[String]| {
            judge(
                &SafetyPolicy::default(),
                &state,
                &mut delta,
                &summary,
                Columns {
                    before: &before,
                    after,
                },
                day("2026-03-02"),
            )
        };
        let judgement = judge_with(&["Trinn".to_owned()]);
        assert_eq!(judgement.verdict, Verdict::Hold);
        assert!(judgement.reasons[0].contains("`Klasse`"), "{judgement:?}");
        let judgement = judge_with(&["Trinn".to_owned(), "Klasse".to_owned()]);
        assert_eq!(judgement.verdict, Verdict::Pass);
    }

    #[test]
    fn deleting_more_than_a_tenth_of_the_students_is_held() {
        let (state, mut delta, summary) = deleting(100, 11);
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Hold);
        let (state, mut delta, summary) = deleting(100, 10);
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Pass);
    }

    #[test]
    fn a_small_roster_is_not_judged_by_fractions() {
        let (state, mut delta, summary) = deleting(10, 5);
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Pass);
    }

    #[test]
    fn deletions_inside_a_delay_window_are_postponed_not_lost() {
        let policy = SafetyPolicy {
            delay_delete: vec![DateWindow {
                from: day("2026-06-20"),
                to: day("2026-08-15"),
            }],
            ..SafetyPolicy::default()
        };
        let (mut state, mut delta, summary) = deleting(100, 50);
        let judgement = judge(
            &policy,
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-07-01"),
        );
        assert_eq!(judgement.verdict, Verdict::Pass);
        assert_eq!(judgement.postponed, 50);
        assert!(delta.students.deletes.is_empty());
        state.apply(&delta);
        assert_eq!(
            state.len(Entity::Student),
            100,
            "the postponed students stay in the state"
        );
    }
}
