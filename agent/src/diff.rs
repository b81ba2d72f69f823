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
