//! What central is known to have: for every record, its handle and the digest of its content,
//! and nothing else (DESIGN decision 1). The differ compares a new export against it, and
//! the safety filter measures a delta by it. It is built from an export's fingerprints in
//! [`crate::diff`]; the agent persists it in its checkpoint.

use serde::{Deserialize, Serialize};
use skolebro_protocol::{Delta, Digest, Entity, EntityDelta, Record, RecordHandle};

/// Handle -> digest of one kind of record, sorted by handle with no handle twice. Sorted,
/// not hashed: the differ walks an export and the state side by side (a merge join), which
/// touches memory in order, and the file is written in the same order.
pub type Entries = Vec<(RecordHandle, Digest)>;

/// Handle -> digest for each kind of record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    schools: Entries,
    students: Entries,
    groups: Entries,
    enrollments: Entries,
}

impl State {
    /// The state holding the handle -> digest pairs `of` each kind gives, in any order; a
    /// handle listed twice is kept once.
    pub(crate) fn from_unordered<'a>(of: impl Fn(Entity) -> &'a [(RecordHandle, Digest)]) -> State {
        let sorted = |entity| {
            let mut entries = of(entity).to_vec();
            entries.sort_unstable_by_key(|entry: &(RecordHandle, Digest)| entry.0);
            entries.dedup_by_key(|entry| entry.0);
            entries
        };
        State {
            schools: sorted(Entity::School),
            students: sorted(Entity::Student),
            groups: sorted(Entity::Group),
            enrollments: sorted(Entity::Enrollment),
        }
    }

    pub fn entries(&self, entity: Entity) -> &[(RecordHandle, Digest)] {
        match entity {
            Entity::School => &self.schools,
            Entity::Student => &self.students,
            Entity::Group => &self.groups,
            Entity::Enrollment => &self.enrollments,
        }
    }

    fn entries_mut(&mut self, entity: Entity) -> &mut Entries {
        match entity {
            Entity::School => &mut self.schools,
            Entity::Student => &mut self.students,
            Entity::Group => &mut self.groups,
            Entity::Enrollment => &mut self.enrollments,
        }
    }

    pub fn len(&self, entity: Entity) -> usize {
        self.entries(entity).len()
    }

    pub fn total(&self) -> usize {
        Entity::ALL.iter().map(|&e| self.len(e)).sum()
    }

    pub fn contains(&self, entity: Entity, handle: &RecordHandle) -> bool {
        self.entries(entity)
            .binary_search_by(|(h, _)| h.cmp(handle))
            .is_ok()
    }

    /// The state after central applies `delta`, whose upserts and deletes are sorted by
    /// handle (as the differ makes them).
    pub fn apply(&mut self, delta: &Delta) {
        // In place, without a second copy of the entries: the state of a large school is
        // megabytes per kind, and the first export applies to it in many pieces.
        fn apply_one<R: Record>(entries: &mut Entries, delta: &EntityDelta<R>) {
            let before = entries.len();
            let find = |entries: &Entries, handle: &RecordHandle| {
                entries[..before].binary_search_by(|(h, _)| h.cmp(handle))
            };
            let inserts = delta
                .upserts
                .iter()
                .filter(|(h, _)| find(entries, h).is_err())
                .count();
            entries.reserve_exact(inserts);
            for (handle, record) in &delta.upserts {
                let digest = Digest::of(record);
                match find(entries, handle) {
                    Ok(i) => entries[i].1 = digest,
                    Err(_) => entries.push((*handle, digest)),
                }
            }
            if !delta.deletes.is_empty() {
                entries.retain(|(h, _)| delta.deletes.binary_search(h).is_err());
            }
            entries.sort_unstable_by_key(|entry| entry.0);
        }
        apply_one(self.entries_mut(Entity::School), &delta.schools);
        apply_one(self.entries_mut(Entity::Student), &delta.students);
        apply_one(self.entries_mut(Entity::Group), &delta.groups);
        apply_one(self.entries_mut(Entity::Enrollment), &delta.enrollments);
    }
}
