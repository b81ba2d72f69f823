//! The safety filter (DESIGN decision 5): the last stage before a delta is sealed. A broken
//! export that drops most students looks exactly like a mass deletion, so a delta that deletes
//! or changes more than configured fractions of the roster is held for an operator instead of
//! sent. Delay-delete windows postpone deletions (summer, year rollover) without losing them:
//! the postponed handles stay in the state, so the next diff after the window deletes them.

use std::fmt;

use serde::{Deserialize, Deserializer};
use skolebro_protocol::civil_time;
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{Delta, Entity, HeldReason, RecordHandle};

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

/// The filter's answer, with reasons an operator can read: structured, so central can say
/// them in its operator's language, and in English through their `Display`.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<HeldReason>,
    /// Deletions taken out of the delta because a delay-delete window is open.
    pub postponed: usize,
}

impl Judgement {
    /// The reasons in English, as the agent's reports, logs and status say them.
    pub fn reason_texts(&self) -> Vec<String> {
        self.reasons.iter().map(ToString::to_string).collect()
    }
}

/// A policy fraction (0.10) as the whole percent a reason names (10).
fn whole_percent(fraction: f64) -> u32 {
    (fraction * 100.0).round() as u32
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
        reasons.push(HeldReason::ColumnVanished {
            column: column.clone(),
        });
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
            reasons.push(HeldReason::DeletionsPostponed {
                count: postponed as u64,
                from: window.from.to_string(),
                to: window.to.to_string(),
            });
        }
    }

    let students = old.len(Entity::Student);
    if students >= policy.min_roster && students > 0 {
        let deleted = deleted_students as f64 / students as f64;
        if deleted > policy.max_deleted_fraction {
            verdict = Verdict::Hold;
            reasons.push(HeldReason::TooManyDeletes {
                would: deleted_students as u64,
                of: students as u64,
                limit_percent: whole_percent(policy.max_deleted_fraction),
            });
        }
        let updated: usize = Entity::ALL.iter().map(|&e| summary.updated(e)).sum();
        let total = old.total();
        let changed = updated as f64 / total as f64;
        if changed > policy.max_updated_fraction {
            verdict = Verdict::Hold;
            reasons.push(HeldReason::TooManyUpdates {
                would: updated as u64,
                of: total as u64,
                limit_percent: whole_percent(policy.max_updated_fraction),
            });
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
                renames: Vec::new(),
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
        assert_eq!(
            judgement.reasons,
            [HeldReason::ColumnVanished {
                column: "Klasse".into()
            }]
        );
        assert!(judgement.reason_texts()[0].contains("`Klasse`"));
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

    /// `deleting(n, 0)` with `updated` of its students changed instead.
    fn updating(n: u8, updated: usize) -> (State, Delta, DiffSummary) {
        let (state, delta, mut summary) = deleting(n, 0);
        summary.updated[Entity::Student as usize] = updated;
        (state, delta, summary)
    }

    fn verdict(
        policy: &SafetyPolicy,
        (state, mut delta, summary): (State, Delta, DiffSummary),
    ) -> Verdict {
        judge(
            policy,
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        )
        .verdict
    }

    #[test]
    fn changing_exactly_three_quarters_of_the_records_passes_and_one_more_is_held() {
        let policy = SafetyPolicy::default();
        assert_eq!(verdict(&policy, updating(100, 75)), Verdict::Pass);
        let (state, mut delta, summary) = updating(100, 76);
        let judgement = judge(
            &policy,
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Hold);
        assert_eq!(
            judgement.reason_texts(),
            ["76 of 100 records would change (76%, limit 75%)"]
        );
    }

    #[test]
    fn the_update_limit_counts_records_of_every_kind_against_all_records() {
        let (state, mut delta, mut summary) = deleting(100, 0);
        summary.updated[Entity::Student as usize] = 40;
        summary.updated[Entity::Enrollment as usize] = 36;
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Hold);
    }

    #[test]
    fn the_fractions_apply_from_exactly_min_roster_students() {
        let policy = SafetyPolicy {
            min_roster: 40,
            ..SafetyPolicy::default()
        };
        // Half the students gone: held at 40 students, not judged at 39.
        assert_eq!(verdict(&policy, deleting(39, 20)), Verdict::Pass);
        assert_eq!(verdict(&policy, deleting(40, 20)), Verdict::Hold);
        assert_eq!(verdict(&policy, updating(39, 39)), Verdict::Pass);
        assert_eq!(verdict(&policy, updating(40, 40)), Verdict::Hold);
        // The default threshold is 20 students.
        assert_eq!(
            verdict(&SafetyPolicy::default(), deleting(19, 19)),
            Verdict::Pass
        );
        assert_eq!(
            verdict(&SafetyPolicy::default(), deleting(20, 3)),
            Verdict::Hold
        );
    }

    fn summer() -> SafetyPolicy {
        SafetyPolicy {
            delay_delete: vec![DateWindow {
                from: day("2026-06-20"),
                to: day("2026-08-15"),
            }],
            ..SafetyPolicy::default()
        }
    }

    #[test]
    fn the_delay_window_includes_its_first_and_last_day_and_no_other() {
        for (today, postponed) in [
            ("2026-06-19", 0),
            ("2026-06-20", 5),
            ("2026-08-15", 5),
            ("2026-08-16", 0),
        ] {
            let (state, mut delta, summary) = deleting(100, 5);
            let judgement = judge(
                &summer(),
                &state,
                &mut delta,
                &summary,
                Columns::default(),
                day(today),
            );
            assert_eq!(judgement.postponed, postponed, "on {today}");
            assert_eq!(
                delta.students.deletes.len(),
                5 - postponed,
                "on {today}: deletions left in the delta"
            );
            assert_eq!(judgement.verdict, Verdict::Pass, "on {today}");
        }
    }

    /// A complete export of students `from..to`, keyed `elev{n}`.
    fn export(from: u8, to: u8) -> crate::validate::Validated {
        let roster = skolebro_protocol::Roster {
            students: (from..to)
                .map(|n| skolebro_protocol::Student {
                    source_key: format!("elev{n}").into(),
                    national_id: None,
                    username: None,
                    given_name: "Kari".into(),
                    middle_name: None,
                    family_name: "Nordmann".into(),
                    birth_date: None,
                    gender: skolebro_protocol::Gender::Female,
                    email: None,
                })
                .collect(),
            ..skolebro_protocol::Roster::default()
        };
        crate::validate::Validated {
            roster,
            ..crate::validate::Validated::default()
        }
    }

    #[test]
    fn deletions_postponed_on_the_last_day_of_the_window_go_out_the_day_after() {
        use crate::diff::{diff, Fingerprints};
        let secret = skolebro_protocol::SiteSecret::from_bytes([7; 32]);
        let mut state = State::of(&export(0, 100).roster, &secret);
        // Five students left; the export no longer has them.
        let after = export(5, 100);
        let prints = Fingerprints::of(&after.roster, &secret);

        let (mut delta, summary) = diff(&state, &after, &prints, &secret);
        let judgement = judge(
            &summer(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-08-15"),
        );
        assert_eq!((judgement.verdict, judgement.postponed), (Verdict::Pass, 5));
        state.apply(&delta);
        assert_eq!(state.len(Entity::Student), 100, "postponed, still there");

        // The same export the day after: the next diff deletes them, and they are sent.
        let (mut delta, summary) = diff(&state, &after, &prints, &secret);
        let judgement = judge(
            &summer(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-08-16"),
        );
        assert_eq!((judgement.verdict, judgement.postponed), (Verdict::Pass, 0));
        let gone: Vec<RecordHandle> = (0..5u8)
            .map(|n| secret.handle(Entity::Student, &format!("elev{n}")))
            .collect();
        let mut deleted = delta.students.deletes.clone();
        deleted.sort();
        let mut expected = gone.clone();
        expected.sort();
        assert_eq!(deleted, expected, "exactly the five who left are deleted");
        state.apply(&delta);
        assert_eq!(state.len(Entity::Student), 95);
        assert!(gone.iter().all(|h| !state.contains(Entity::Student, h)));
    }

    #[test]
    fn the_verdicts_read_pass_and_hold() {
        assert_eq!(Verdict::Pass.to_string(), "pass");
        assert_eq!(Verdict::Hold.to_string(), "hold");
    }

    #[test]
    fn a_delay_window_is_read_from_the_config_as_iso_dates_and_a_bad_date_is_refused() {
        let policy: SafetyPolicy = toml::from_str(
            "min_roster = 5\ndelay_delete = [{ from = \"2026-06-20\", to = \"2026-08-15\" }]",
        )
        .unwrap();
        assert_eq!(policy.delay_delete, summer().delay_delete);
        assert_eq!(policy.min_roster, 5);
        assert_eq!(policy.max_deleted_fraction, 0.10, "the default stands");
        let error = toml::from_str::<SafetyPolicy>(
            "delay_delete = [{ from = \"2026-02-30\", to = \"2026-08-15\" }]",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("`2026-02-30` is not a date"),
            "{error}"
        );
    }

    #[test]
    fn columns_are_compared_only_when_both_exports_name_theirs() {
        let before = ["Klasse".to_owned()];
        assert_eq!(vanished_columns(&before, &[]), Vec::<String>::new());
        assert_eq!(vanished_columns(&[], &before), Vec::<String>::new());
        assert_eq!(
            vanished_columns(&before, &["Trinn".to_owned()]),
            ["Klasse".to_owned()]
        );
        let (state, mut delta, summary) = deleting(100, 0);
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns {
                before: &before,
                after: &[],
            },
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Pass);
        assert!(judgement.reasons.is_empty(), "{judgement:?}");
    }

    #[test]
    fn an_empty_state_is_not_judged_by_fractions_even_without_a_min_roster() {
        let policy = SafetyPolicy {
            min_roster: 0,
            ..SafetyPolicy::default()
        };
        let (state, mut delta, mut summary) = deleting(0, 0);
        summary.updated[Entity::Student as usize] = 5;
        let judgement = judge(
            &policy,
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(judgement.verdict, Verdict::Pass, "{judgement:?}");
    }

    #[test]
    fn a_held_deletion_says_how_many_of_how_many_and_the_limit() {
        let (state, mut delta, summary) = deleting(100, 11);
        let judgement = judge(
            &SafetyPolicy::default(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-03-02"),
        );
        assert_eq!(
            judgement.reasons,
            [HeldReason::TooManyDeletes {
                would: 11,
                of: 100,
                limit_percent: 10
            }]
        );
        assert_eq!(
            judgement.reason_texts(),
            ["11 of 100 students would be deleted (11%, limit 10%)"]
        );
    }

    #[test]
    fn an_open_window_is_named_only_when_it_postponed_something() {
        let (state, mut delta, summary) = deleting(100, 5);
        let judgement = judge(
            &summer(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-07-01"),
        );
        assert_eq!(
            judgement.reason_texts(),
            ["5 deletions postponed: delay-delete window 2026-06-20 to 2026-08-15 is open"]
        );
        let (state, mut delta, summary) = deleting(100, 0);
        let judgement = judge(
            &summer(),
            &state,
            &mut delta,
            &summary,
            Columns::default(),
            day("2026-07-01"),
        );
        assert!(judgement.reasons.is_empty(), "{judgement:?}");
        assert_eq!(judgement.postponed, 0);
    }

    #[test]
    fn the_delete_that_completes_a_rename_goes_out_inside_the_window() {
        use crate::diff::{plan, Fingerprints};
        let secret = skolebro_protocol::SiteSecret::from_bytes([7; 32]);
        let state = State::of(&export(0, 100).roster, &secret);
        // elev0 took the key elev200; elev1 to elev4 left.
        let mut after = export(5, 100);
        let mut renamed = export(0, 1).roster.students[0].clone();
        renamed.source_key = "elev200".into();
        after.roster.students.push(renamed);
        after.renames.push(crate::validate::Rename {
            entity: Entity::Student,
            from: "elev0".to_owned(),
            to: "elev200".to_owned(),
        });
        let prints = Fingerprints::of(&after.roster, &secret);
        let (mut plan, summary) = plan(&state, &after, &prints, &secret);
        let judgement = judge(
            &summer(),
            &state,
            &mut plan,
            &summary,
            Columns::default(),
            day("2026-07-01"),
        );
        assert_eq!((judgement.verdict, judgement.postponed), (Verdict::Pass, 4));
        assert_eq!(
            plan.students.deletes,
            [secret.handle(Entity::Student, "elev0")],
            "only the old key of the renamed pupil is deleted"
        );
    }

    #[test]
    fn today_is_the_utc_date_the_system_clock_gives() {
        let utc_date = || {
            let out = std::process::Command::new("date")
                .args(["-u", "+%F"])
                .output()
                .expect("the date program runs");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let before = utc_date();
        let today = today().to_string();
        let after = utc_date();
        // Midnight may pass between the readings.
        assert!(
            today == before || today == after,
            "{today}, {before}, {after}"
        );
    }
}
