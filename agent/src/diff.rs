//! The differ: compares a validated export with the state central is known to have and
//! produces the `Delta` that brings central up to date. A full export implies deletes for
//! everything it no longer holds; a partial export (OneRoster delta mode, IMS delta) deletes
//! only what it names.

use skolebro_protocol::{
    Delta, Digest, Entity, EntityDelta, Record, RecordHandle, Roster, SiteSecret,
};

use crate::state::State;
use crate::validate::Validated;

/// How many records of each kind were added, changed or removed: the safety filter's input
/// and the `diff` report's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffSummary {
    pub added: [usize; 4],
    pub updated: [usize; 4],
    pub deleted: [usize; 4],
}

impl DiffSummary {
    pub fn added(&self, entity: Entity) -> usize {
        self.added[entity as usize]
    }

    pub fn updated(&self, entity: Entity) -> usize {
        self.updated[entity as usize]
    }

    pub fn deleted(&self, entity: Entity) -> usize {
        self.deleted[entity as usize]
    }
}

/// The handle and digest of every record of an export, in roster order: the expensive part
/// of a diff (an HMAC and a SHA-256 per record), kept separate so it can run on the thread
/// that read the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints {
    pub schools: Vec<(RecordHandle, Digest)>,
    pub students: Vec<(RecordHandle, Digest)>,
    pub groups: Vec<(RecordHandle, Digest)>,
    pub enrollments: Vec<(RecordHandle, Digest)>,
}

impl Fingerprints {
    pub fn of(roster: &Roster, secret: &SiteSecret) -> Fingerprints {
        fn prints<R: Record>(records: &[R], secret: &SiteSecret) -> Vec<(RecordHandle, Digest)> {
            records
                .iter()
                .map(|r| (secret.handle(R::ENTITY, r.key()), Digest::of(r)))
                .collect()
        }
        Fingerprints {
            schools: prints(&roster.schools, secret),
            students: prints(&roster.students, secret),
            groups: prints(&roster.groups, secret),
            enrollments: prints(&roster.enrollments, secret),
        }
    }
}

/// The delta from `old` to the export, in handle order. `prints` are the export's
/// [`Fingerprints`] under the site's secret.
pub fn diff(
    old: &State,
    new: &Validated,
    prints: &Fingerprints,
    secret: &SiteSecret,
) -> (Delta, DiffSummary) {
    let mut summary = DiffSummary::default();
    let roster = &new.roster;
    let deletes = |entity: Entity| -> Option<Vec<RecordHandle>> {
        new.partial.then(|| {
            new.tombstones
                .iter()
                .filter(|t| t.entity == entity)
                .map(|t| secret.handle(entity, &t.key))
                .filter(|h| old.contains(entity, h))
                .collect()
        })
    };
    let mut delta = Delta {
        schools: diff_entity(
            old,
            &roster.schools,
            &prints.schools,
            deletes(Entity::School),
            &mut summary,
        ),
        students: diff_entity(
            old,
            &roster.students,
            &prints.students,
            deletes(Entity::Student),
            &mut summary,
        ),
        groups: diff_entity(
            old,
            &roster.groups,
            &prints.groups,
            deletes(Entity::Group),
            &mut summary,
        ),
        enrollments: diff_entity(
            old,
            &roster.enrollments,
            &prints.enrollments,
            deletes(Entity::Enrollment),
            &mut summary,
        ),
    };
    delta.schools.sort();
    delta.students.sort();
    delta.groups.sort();
    delta.enrollments.sort();
    (delta, summary)
}

/// Diffs one kind by walking the export's records and the old state side by side in handle
/// order. `explicit_deletes` is `Some` for partial exports; for full exports every handle in
/// `old` that the export lacks is deleted.
fn diff_entity<R: Record + Clone>(
    old: &State,
    records: &[R],
    prints: &[(RecordHandle, Digest)],
    explicit_deletes: Option<Vec<RecordHandle>>,
    summary: &mut DiffSummary,
) -> EntityDelta<R> {
    let entity = R::ENTITY;
    let mut new: Vec<(RecordHandle, Digest, usize)> = prints
        .iter()
        .enumerate()
        .map(|(i, &(handle, digest))| (handle, digest, i))
        .collect();
    new.sort_unstable_by_key(|entry| entry.0);

    let mut upserts = Vec::new();
    let mut implied_deletes = Vec::new();
    let mut before = old.entries(entity).iter().peekable();
    for &(handle, digest, i) in &new {
        while let Some((gone, _)) = before.next_if(|(h, _)| *h < handle) {
            implied_deletes.push(*gone);
        }
        match before.next_if(|(h, _)| *h == handle) {
            Some((_, old_digest)) if *old_digest == digest => {}
            Some(_) => {
                summary.updated[entity as usize] += 1;
                upserts.push((handle, records[i].clone()));
            }
            None => {
                summary.added[entity as usize] += 1;
                upserts.push((handle, records[i].clone()));
            }
        }
    }
    implied_deletes.extend(before.map(|(h, _)| *h));

    let deletes = match explicit_deletes {
        Some(mut deletes) => {
            deletes.retain(|h| new.binary_search_by(|(n, _, _)| n.cmp(h)).is_err());
            deletes
        }
        None => implied_deletes,
    };
    summary.deleted[entity as usize] += deletes.len();
    EntityDelta { upserts, deletes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact_str::CompactString;
    use proptest::prelude::*;
    use skolebro_protocol::{Enrollment, Gender, Group, School, Student};

    fn secret() -> SiteSecret {
        SiteSecret::from_bytes([42; 32])
    }

    /// A roster from (student number, family name variant, class) triples; keys are unique.
    fn roster(rows: &[(u8, u8, u8)]) -> Validated {
        let mut seen = std::collections::BTreeSet::new();
        let mut roster = Roster {
            schools: vec![School {
                skolenummer: "46505".into(),
                organisasjonsnummer: None,
                kommunenummer: Some("4601".into()),
                fylkesnummer: Some("46".into()),
                name: "Fana skule".into(),
            }],
            ..Roster::default()
        };
        for class in 0..4u8 {
            roster.groups.push(Group {
                source_key: CompactString::from(format!("46505-{class}A")),
                name: CompactString::from(format!("{class}A")),
                grade: Some(CompactString::from(class.to_string())),
                school: "46505".into(),
                school_year: None,
            });
        }
        for &(number, family, class) in rows {
            if !seen.insert(number) {
                continue;
            }
            let key = CompactString::from(format!("elev{number}"));
            roster.students.push(Student {
                source_key: key.clone(),
                national_id: None,
                username: None,
                given_name: "Kari".into(),
                middle_name: None,
                family_name: CompactString::from(format!("Nordmann{}", family % 3)),
                birth_date: None,
                gender: Gender::Female,
                email: None,
            });
            roster.enrollments.push(Enrollment {
                source_key: CompactString::from(format!("{key}@46505")),
                student: key,
                school: "46505".into(),
                group: Some(CompactString::from(format!("46505-{}A", class % 4))),
            });
        }
        Validated {
            roster,
            ..Validated::default()
        }
    }

    fn delta(old: &Validated, new: &Validated) -> (State, Delta) {
        let before = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        (before.clone(), diff(&before, new, &prints, &secret()).0)
    }

    proptest! {
        #[test]
        fn applying_the_diff_of_a_to_b_to_the_state_of_a_gives_the_state_of_b(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            b in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let (a, b) = (roster(&a), roster(&b));
            let (mut state, delta) = delta(&a, &b);
            state.apply(&delta);
            prop_assert_eq!(state, State::of(&b.roster, &secret()));
        }

        #[test]
        fn the_diff_of_an_export_with_itself_is_empty(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let a = roster(&a);
            prop_assert!(delta(&a, &a).1.is_empty());
        }

        #[test]
        fn a_diff_is_in_handle_order(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            b in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let (_, delta) = delta(&roster(&a), &roster(&b));
            prop_assert!(delta.students.upserts.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(delta.students.deletes.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(delta.enrollments.upserts.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn a_class_move_changes_the_enrollment_and_not_the_student() {
        let (_, delta) = delta(&roster(&[(1, 0, 0)]), &roster(&[(1, 0, 1)]));
        assert!(delta.students.is_empty());
        assert_eq!(delta.enrollments.upserts.len(), 1);
        assert!(delta.enrollments.deletes.is_empty());
    }

    #[test]
    fn a_partial_export_deletes_only_what_it_names() {
        let old = roster(&[(1, 0, 0), (2, 0, 0)]);
        let mut partial = roster(&[]);
        partial.roster.groups.clear();
        partial.partial = true;
        partial.tombstones.push(crate::validate::Tombstone {
            entity: Entity::Student,
            key: "elev2".into(),
        });
        let (_, delta) = delta(&old, &partial);
        assert_eq!(
            delta.students.deletes,
            [secret().handle(Entity::Student, "elev2")]
        );
        assert!(delta.enrollments.deletes.is_empty());
        assert!(delta.groups.deletes.is_empty());
    }
}
