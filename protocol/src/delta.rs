//! The change between two exports of one site, as the agent's differ computes it and central
//! applies it. Upserts carry whole records (they travel sealed); deletes carry only handles,
//! so a deleted person's data never leaves the school again. Renames link an old handle to a
//! new one (a PIFU `Old`/`New` sourcedid pair), so central keeps one identity across the
//! change of key; the envelope writes a delta without renames as the first payload version, so
//! such deltas read the same at a central older than this field.

use serde::{Deserialize, Serialize};

use crate::handle::RecordHandle;
use crate::roster::{Enrollment, Entity, Group, School, Student};

/// Upserts, deletes and renames of one kind of record, each sorted by handle so that the same
/// change always encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityDelta<T> {
    pub upserts: Vec<(RecordHandle, T)>,
    pub deletes: Vec<RecordHandle>,
    /// `(old handle, new handle)`: the record deleted under the old handle is the one upserted
    /// under the new, carrying a new key. Both halves travel in the same delta (the new
    /// handle's upsert and the old one's delete), and central carries the old record's
    /// identity over to the new, so a consumer sees one record renamed, not one removed and
    /// another added. Sorted by old handle.
    pub renames: Vec<(RecordHandle, RecordHandle)>,
}

impl<T> Default for EntityDelta<T> {
    fn default() -> Self {
        EntityDelta {
            upserts: Vec::new(),
            deletes: Vec::new(),
            renames: Vec::new(),
        }
    }
}

impl<T> EntityDelta<T> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty() && self.renames.is_empty()
    }

    /// Puts upserts, deletes and renames in handle order, the order the wire format promises.
    pub fn sort(&mut self) {
        self.upserts.sort_by_key(|upsert| upsert.0);
        self.deletes.sort();
        self.renames.sort();
    }
}

/// Everything that changed in a site's roster, entity by entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub schools: EntityDelta<School>,
    pub students: EntityDelta<Student>,
    pub groups: EntityDelta<Group>,
    pub enrollments: EntityDelta<Enrollment>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.schools.is_empty()
            && self.students.is_empty()
            && self.groups.is_empty()
            && self.enrollments.is_empty()
    }

    /// Whether any kind carries a rename: such a delta needs the payload version that has
    /// them, which a central older than renames cannot read.
    pub fn has_renames(&self) -> bool {
        !(self.schools.renames.is_empty()
            && self.students.renames.is_empty()
            && self.groups.renames.is_empty()
            && self.enrollments.renames.is_empty())
    }

    /// The renames of one kind, `(old handle, new handle)`.
    pub fn renames(&self, entity: Entity) -> &[(RecordHandle, RecordHandle)] {
        match entity {
            Entity::School => &self.schools.renames,
            Entity::Student => &self.students.renames,
            Entity::Group => &self.groups.renames,
            Entity::Enrollment => &self.enrollments.renames,
        }
    }

    /// Number of upserted records of one kind.
    pub fn upserts(&self, entity: Entity) -> usize {
        match entity {
            Entity::School => self.schools.upserts.len(),
            Entity::Student => self.students.upserts.len(),
            Entity::Group => self.groups.upserts.len(),
            Entity::Enrollment => self.enrollments.upserts.len(),
        }
    }

    /// Deleted handles of one kind.
    pub fn deletes(&self, entity: Entity) -> &[RecordHandle] {
        match entity {
            Entity::School => &self.schools.deletes,
            Entity::Student => &self.students.deletes,
            Entity::Group => &self.groups.deletes,
            Entity::Enrollment => &self.enrollments.deletes,
        }
    }

    /// Mutable deletes of one kind, for the safety filter that postpones them.
    pub fn deletes_mut(&mut self, entity: Entity) -> &mut Vec<RecordHandle> {
        match entity {
            Entity::School => &mut self.schools.deletes,
            Entity::Student => &mut self.students.deletes,
            Entity::Group => &mut self.groups.deletes,
            Entity::Enrollment => &mut self.enrollments.deletes,
        }
    }
}
