//! The roster model with FINT semantics. Readers in the agent produce it, validation cleans
//! it, the differ turns two of them into a `Delta`, and central stores it with history.
//!
//! Records refer to each other by source keys (the SAS's own identifiers) so a record can be
//! sent alone in a delta; central resolves the references.
//!
//! Text fields are `CompactString`s: keys, names and class codes are short, so they live
//! inside the record instead of in a heap allocation each. A 100,000-student roster then
//! fits the Pi's memory budget.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::national_id::{CivilDate, NationalId};

/// A school (FINT `Skole`). The skolenummer is its key: the SAS and the county both use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub skolenummer: CompactString,
    pub organisasjonsnummer: Option<CompactString>,
    pub kommunenummer: Option<CompactString>,
    pub fylkesnummer: Option<CompactString>,
    pub name: CompactString,
}

/// Gender as the SAS states it. Each reader maps its own coding (elevliste `M`/`K`, IMS
/// `1`/`2`, ISO 5218) to this, so a change of coding is never a change of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    Female,
    Male,
    Unknown,
}

/// A student (FINT `Elev` with its `Person`). The class placement is not here: it is an
/// [`Enrollment`], so a class move changes one enrollment, not the student.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    /// The SAS's key for the person; the record handle is derived from it.
    pub source_key: CompactString,
    /// `None` when the export carries no id or one that failed validation; the deviation
    /// report then names the row, so the school can fix it in the SAS.
    pub national_id: Option<NationalId>,
    /// Feide name or SAS user name.
    pub username: Option<CompactString>,
    pub given_name: CompactString,
    pub middle_name: Option<CompactString>,
    pub family_name: CompactString,
    pub birth_date: Option<CivilDate>,
    pub gender: Gender,
    pub email: Option<CompactString>,
}

/// A basisgruppe (FINT `Basisgruppe`): the class a student belongs to at a school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub source_key: CompactString,
    pub name: CompactString,
    pub grade: Option<CompactString>,
    /// Skolenummer of the school the group belongs to.
    pub school: CompactString,
    pub school_year: Option<CompactString>,
}

/// A student's relation to a school and, within it, to a basisgruppe (FINT `Elevforhold`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub source_key: CompactString,
    pub student: CompactString,
    /// Skolenummer.
    pub school: CompactString,
    /// Source key of the basisgruppe, if the export names one.
    pub group: Option<CompactString>,
}

/// The four kinds of record, used to keep handles of different kinds apart and to label
/// counts and deviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entity {
    School,
    Student,
    Group,
    Enrollment,
}

impl Entity {
    pub const ALL: [Entity; 4] = [
        Entity::School,
        Entity::Student,
        Entity::Group,
        Entity::Enrollment,
    ];

    /// The plural used in reports and JSON documents.
    pub fn plural(self) -> &'static str {
        match self {
            Entity::School => "schools",
            Entity::Student => "students",
            Entity::Group => "groups",
            Entity::Enrollment => "enrollments",
        }
    }
}

/// What every roster record offers the differ: a kind and a key unique within that kind.
pub trait Record: Serialize {
    const ENTITY: Entity;
    fn key(&self) -> &str;
}

impl Record for School {
    const ENTITY: Entity = Entity::School;
    fn key(&self) -> &str {
        &self.skolenummer
    }
}

impl Record for Student {
    const ENTITY: Entity = Entity::Student;
    fn key(&self) -> &str {
        &self.source_key
    }
}

impl Record for Group {
    const ENTITY: Entity = Entity::Group;
    fn key(&self) -> &str {
        &self.source_key
    }
}

impl Record for Enrollment {
    const ENTITY: Entity = Entity::Enrollment;
    fn key(&self) -> &str {
        &self.source_key
    }
}

/// One export's worth of records after validation: no two records of a kind share a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub schools: Vec<School>,
    pub students: Vec<Student>,
    pub groups: Vec<Group>,
    pub enrollments: Vec<Enrollment>,
}

impl Roster {
    /// Number of records of one kind, for reports and the safety filter.
    pub fn count(&self, entity: Entity) -> usize {
        match entity {
            Entity::School => self.schools.len(),
            Entity::Student => self.students.len(),
            Entity::Group => self.groups.len(),
            Entity::Enrollment => self.enrollments.len(),
        }
    }
}
