//! The change between two exports of one site, as the agent's differ computes it and central
//! applies it. Upserts carry whole records (they travel sealed); deletes carry only handles,
//! so a deleted person's data never leaves the school again.

use serde::{Deserialize, Serialize};

use crate::handle::RecordHandle;
use crate::roster::{Enrollment, Entity, Group, School, Student};

/// Upserts and deletes of one kind of record, each sorted by handle so that the same change
/// always encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityDelta<T> {
    pub upserts: Vec<(RecordHandle, T)>,
    pub deletes: Vec<RecordHandle>,
}

impl<T> Default for EntityDelta<T> {
    fn default() -> Self {
        EntityDelta {
            upserts: Vec::new(),
            deletes: Vec::new(),
        }
    }
}

impl<T> EntityDelta<T> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }

    /// Puts upserts and deletes in handle order, the order the wire format promises.
    pub fn sort(&mut self) {
        self.upserts.sort_by_key(|upsert| upsert.0);
        self.deletes.sort();
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
