//! Validation: every reader pushes the records it finds into a [`RosterBuilder`], which parses
//! national ids once, drops repeats and conflicts, resolves references, and records a
//! [`Deviation`] for each problem. What comes out is a [`Roster`] in which keys are unique and
//! references resolve, ready for the differ.

use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use skolebro_protocol::national_id::mask;
use skolebro_protocol::{
    Enrollment, Entity, Group, NationalId, NationalIdError, Record, Roster, School, Student,
};

use crate::accounting::{Accounting, Ledger, Mark};
use crate::deviation::{shown_key, Code, Deviation, Position, Severity, Tally, KEPT_PER_CODE};

/// Site policy that changes what counts as a deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ValidationOptions {
    /// Production sites set this so that Skatteetaten's synthetic test numbers (month + 80)
    /// are reported instead of flowing to central as if they were people.
    #[serde(default)]
    pub reject_synthetic_ids: bool,
    /// Keep every deviation's row, not only the first [`KEPT_PER_CODE`] of each code
    /// (`check --all`). Counts are exact either way.
    #[serde(skip)]
    pub keep_every_deviation: bool,
    /// Keep a ledger of every record the reader meets and say in [`Validated::accounting`]
    /// what became of each (see [`crate::accounting`]): the fuzz targets and the readers'
    /// tests check that none is dropped without a word. Costs an entry per record.
    #[serde(skip)]
    pub account_records: bool,
}

/// How a record got into the export: stated as a record of its own (a row in `orgs.csv`), or
/// implied by columns of another record (the school columns repeated on every elevliste row).
/// Implied records repeat by nature, so only a conflicting repeat is a deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Stated,
    Implied,
}

/// What happened to a student pushed into the builder, so a row-based reader knows whether to
/// push the records the same row implies (its enrollment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted,
    /// An exact repeat of a record already accepted.
    Repeated,
    Rejected,
}

/// A student as a reader found it: the national id still raw, to be parsed here once.
#[derive(Debug, Clone)]
pub struct StudentRow {
    pub student: Student,
    pub national_id: Option<CompactString>,
    /// Set by readers whose key column is the national id itself (elevliste): two people
    /// under one key are then two people with one id.
    pub key_is_national_id: bool,
}

/// A record the export says to delete (OneRoster delta `tobedeleted`, IMS `recstatus` 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub entity: Entity,
    pub key: String,
}

/// A record the export says carries a new key: the source changed its id (PIFU-IMS
/// `sourcedid` `Old` and `New`). The record is keyed by `to`; `from` is the key it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub entity: Entity,
    pub from: String,
    pub to: String,
}

/// A record of a partial export that names a record the export does not hold (an
/// enrollment whose student did not change, a class whose school did not). It is kept,
/// because in a delta the record named is usually one the receiver already has; what was
/// sent decides ([`crate::references`]), which the builder cannot see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideReference {
    /// The naming record's kind: a group or an enrollment.
    pub entity: Entity,
    /// The naming record's key.
    pub key: CompactString,
    /// Where it was read, for the deviation if nothing holds what it names.
    pub file: String,
    pub position: Position,
}

/// The validated content of one export.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    pub roster: Roster,
    /// The export holds only changes (OneRoster delta mode, an IMS delta): records it lacks
    /// are unchanged, not gone.
    pub partial: bool,
    /// The records of a partial export whose references the export alone does not resolve;
    /// always empty for a full export, whose dangling references are left out instead.
    pub outside_references: Vec<OutsideReference>,
    pub tombstones: Vec<Tombstone>,
    /// Key changes the export states; see [`Rename`].
    pub renames: Vec<Rename>,
    /// The fields a tabular export has, by their canonical column names (`Klasse` whether
    /// the header says `Klasse` or `Klassenavn`), so that the safety filter can tell when a
    /// column the previous export had is gone. Empty for other formats.
    pub columns: Vec<String>,
    /// The deviations' rows, in the order found: the first [`KEPT_PER_CODE`] of each code and
    /// severity, or all of them when [`ValidationOptions::keep_every_deviation`] is set.
    pub deviations: Vec<Deviation>,
    /// Every deviation counted, kept row or not.
    pub tally: Tally,
    /// What became of each record read, when [`ValidationOptions::account_records`] asked.
    pub accounting: Option<Accounting>,
}

impl Validated {
    /// Deviations of severity error, counted whether their rows were kept or not.
    pub fn errors(&self) -> u64 {
        self.tally.with_severity(Severity::Error)
    }

    /// Deviations whose rows were not kept.
    pub fn omitted(&self) -> u64 {
        self.tally.total() - self.deviations.len() as u64
    }
}

/// Where a record was read, kept for reports made after the whole export is read.
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// Index into the builder's file names.
    file: usize,
    at: Position,
    /// Every record this one refers to was already there when it arrived, so `finish` need
    /// not look again (unless it drops records).
    resolved: bool,
}

/// Records of one kind, indexed by key, with where each was read. The index holds positions
/// in `records`, not copies of the keys, so a large roster is not stored twice.
struct Table<T> {
    records: Vec<T>,
    origins: Vec<Origin>,
    index: HashTable<usize>,
    hasher: DefaultHashBuilder,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            records: Vec::new(),
            origins: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

enum Insert {
    New,
    Same,
    Conflict,
}

impl<T: Record + PartialEq> Table<T> {
    fn reserve(&mut self, additional: usize) {
        self.records.reserve(additional);
        self.origins.reserve(additional);
        let Table {
            records,
            index,
            hasher,
            ..
        } = self;
        index.reserve(additional, |&i| hasher.hash_one(records[i].key()));
    }

    /// The key's hash, and the position of the record with that key if there is one.
    fn lookup(&self, key: &str) -> (u64, Option<usize>) {
        let hash = self.hasher.hash_one(key);
        let found = self
            .index
            .find(hash, |&i| self.records[i].key() == key)
            .copied();
        (hash, found)
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.lookup(key).1
    }

    fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Adds a record whose key [`Table::lookup`] did not find.
    fn push(&mut self, hash: u64, record: T, origin: Origin) {
        let Table {
            records,
            origins,
            index,
            hasher,
        } = self;
        index.insert_unique(hash, records.len(), |&i| hasher.hash_one(records[i].key()));
        records.push(record);
        origins.push(origin);
    }

    fn insert(&mut self, record: T, origin: Origin) -> Insert {
        match self.lookup(record.key()) {
            (_, Some(i)) if self.records[i] == record => Insert::Same,
            (_, Some(_)) => Insert::Conflict,
            (hash, None) => {
                self.push(hash, record, origin);
                Insert::New
            }
        }
    }
}

/// Collects records from a reader and validates them. One builder per export.
pub struct RosterBuilder {
    options: ValidationOptions,
    /// Names of the files read so far; origins refer to them by index.
    files: Vec<String>,
    schools: Table<School>,
    students: Table<Student>,
    groups: Table<Group>,
    enrollments: Table<Enrollment>,
    /// Which student key holds each national id, to catch two people with one id.
    id_owners: HashSet<NationalId>,
    /// Students refused for a conflict, with where: their enrollments go with them, named in
    /// a deviation of their own unless they come from the same row.
    rejected_students: HashMap<CompactString, (usize, Position)>,
    tombstones: Vec<Tombstone>,
    renames: Vec<Rename>,
    columns: Vec<String>,
    deviations: Vec<Deviation>,
    tally: Tally,
    partial: bool,
    /// Bytes the records held are estimated to take, against `budget`.
    held: u64,
    budget: Option<u64>,
    /// Where the records first took more than the budget.
    over_budget: Option<(String, Position)>,
    /// Every record seen and what became of it, when asked for.
    ledger: Option<Ledger>,
}

impl RosterBuilder {
    pub fn new(options: ValidationOptions) -> RosterBuilder {
        RosterBuilder {
            options,
            files: vec![String::new()],
            schools: Table::default(),
            students: Table::default(),
            groups: Table::default(),
            enrollments: Table::default(),
            id_owners: HashSet::new(),
            rejected_students: HashMap::new(),
            tombstones: Vec::new(),
            renames: Vec::new(),
            columns: Vec::new(),
            deviations: Vec::new(),
            tally: Tally::default(),
            partial: false,
            held: 0,
            budget: None,
            over_budget: None,
            ledger: options.account_records.then(Ledger::default),
        }
    }

    /// Names a data record the reader met at `at` in the current file (a row, a JSON
    /// element, an XML record): with accounting on, each must end up kept, named by a
    /// deviation, or [`RosterBuilder::outside_roster`].
    pub fn record_seen(&mut self, at: Position) {
        let file = self.files.len() - 1;
        if let Some(ledger) = &mut self.ledger {
            ledger.seen(file, at);
        }
    }

    /// Says that the record at `at` is left out by design, as no roster data (a teacher, a
    /// district, an enrollment in a scheduled class), not for a fault.
    pub fn outside_roster(&mut self, at: Position) {
        self.mark(self.files.len() - 1, at, Mark::Outside);
    }

    /// Says that the record at `at` adds nothing the roster does not hold already (an
    /// enrollment at a school that the learner's class enrollment there covers, a deletion
    /// an addition in the same export supersedes).
    pub fn merged(&mut self, at: Position) {
        self.kept(at);
    }

    fn mark(&mut self, file: usize, at: Position, mark: Mark) {
        if let Some(ledger) = &mut self.ledger {
            ledger.mark(file, at, mark);
        }
    }

    fn kept(&mut self, at: Position) {
        self.mark(self.files.len() - 1, at, Mark::Kept);
    }

    /// Bounds the memory the records read may take, estimated per record: once they would
    /// take more, further records are not kept and [`RosterBuilder::over_budget`] says where
    /// that happened, so the reader refuses the export instead of the process running out.
    pub fn set_budget(&mut self, bytes: u64) {
        self.budget = Some(bytes);
    }

    /// The file and position at which the records read went over the budget, if they did.
    pub fn over_budget(&self) -> Option<&(String, Position)> {
        self.over_budget.as_ref()
    }

    /// Counts a record about to be kept against the budget; false (and nothing kept) once
    /// the budget is spent.
    fn afford<T>(&mut self, at: Position, heap: usize) -> bool {
        if self.over_budget.is_some() {
            return false;
        }
        // The record, where it was read, its slot in the index, and its longer strings;
        // twice that, since the vectors they sit in grow by doubling. A student with an
        // enrollment is counted as about 720 bytes: a 100,000-student elevliste as 69 MiB,
        // where `check` on it peaks at 59 MiB.
        let bytes = std::mem::size_of::<T>() + std::mem::size_of::<Origin>() + 16 + heap;
        self.held += 2 * bytes as u64;
        if self.budget.is_some_and(|budget| self.held > budget) {
            self.over_budget = Some((self.files[self.files.len() - 1].clone(), at));
            return false;
        }
        true
    }

    /// Marks the export as holding changes only, so the differ deletes only what it names.
    pub fn set_partial(&mut self) {
        self.partial = true;
    }

    /// Makes room for about `students` students and their enrollments up front, so a large
    /// export does not pay for repeated reallocation; a reader that knows its file size
    /// calls this with an estimate.
    pub fn expect_students(&mut self, students: usize) {
        self.students.reserve(students);
        self.enrollments.reserve(students);
        self.id_owners.reserve(students);
    }

    /// Names the file that the following records come from, as deviations will show it.
    pub fn begin_file(&mut self, name: &str) {
        self.files.push(name.to_owned());
    }

    /// Records a deviation a reader found itself (an unknown field, a missing value).
    pub fn deviation(&mut self, at: Position, code: Code, severity: Severity, detail: String) {
        let origin = self.origin(at);
        self.deviation_at(&origin, code, severity, detail);
    }

    fn deviation_at(&mut self, origin: &Origin, code: Code, severity: Severity, detail: String) {
        self.mark(origin.file, origin.at, Mark::Deviated);
        let count = self.tally.add(severity, code);
        if count > KEPT_PER_CODE as u64 && !self.options.keep_every_deviation {
            return;
        }
        self.deviations.push(Deviation {
            code,
            severity,
            file: self.files[origin.file].clone(),
            position: origin.at,
            detail,
        });
    }

    fn origin(&self, at: Position) -> Origin {
        Origin {
            file: self.files.len() - 1,
            at,
            resolved: false,
        }
    }

    pub fn school(&mut self, at: Position, school: School, provenance: Provenance) {
        let key = school.skolenummer.clone();
        self.insert_other(at, school, provenance, |t| &mut t.schools, &key);
    }

    pub fn group(&mut self, at: Position, group: Group, provenance: Provenance) {
        let key = group.source_key.clone();
        self.insert_other(at, group, provenance, |t| &mut t.groups, &key);
    }

    pub fn enrollment(&mut self, at: Position, enrollment: Enrollment) {
        if let Some(&refused) = self.rejected_students.get(&enrollment.student) {
            if refused == (self.files.len() - 1, at) {
                // The row's own deviation says that it is left out.
                return;
            }
            let detail = format!(
                "enrollment names student {}, left out for its own deviation; the enrollment is \
                 left out too",
                shown_key(&enrollment.student)
            );
            self.deviation(at, Code::DanglingReference, Severity::Error, detail);
            return;
        }
        let key = enrollment.source_key.clone();
        // Readers usually push a student, then its enrollment: the references are cheap to
        // check now, while they are in cache.
        let resolved = self.students.contains(&enrollment.student)
            && self.schools.contains(&enrollment.school)
            && enrollment
                .group
                .as_deref()
                .is_none_or(|g| self.groups.contains(g));
        let origin = Origin {
            resolved,
            ..self.origin(at)
        };
        let strings = [
            Some(&enrollment.source_key),
            Some(&enrollment.student),
            Some(&enrollment.school),
            enrollment.group.as_ref(),
        ];
        if !self.afford::<Enrollment>(at, heap_bytes(&strings)) {
            return;
        }
        match self.enrollments.insert(enrollment, origin) {
            Insert::New => self.kept(at),
            Insert::Same => self.report_repeat(at, Entity::Enrollment, &key),
            Insert::Conflict => self.report_conflict(at, Entity::Enrollment, &key),
        }
    }

    /// Records that the export deletes the record keyed `key`, as the record at `at` says.
    pub fn tombstone(&mut self, at: Position, entity: Entity, key: String) {
        self.kept(at);
        self.tombstones.push(Tombstone { entity, key });
    }

    /// Records the fields of a tabular export (see [`Validated::columns`]).
    pub fn set_columns(&mut self, columns: Vec<String>) {
        self.columns = columns;
    }

    /// Notes that the record keyed `to` is the one the source keyed `from` before.
    pub fn renamed(&mut self, entity: Entity, from: String, to: String) {
        self.renames.push(Rename { entity, from, to });
    }

    /// Validates a student's national id and admits the student unless it repeats or
    /// conflicts with one already admitted.
    pub fn student(&mut self, at: Position, row: StudentRow) -> Admission {
        let StudentRow {
            mut student,
            national_id,
            key_is_national_id,
        } = row;
        student.national_id = national_id
            .as_deref()
            .and_then(|raw| self.parse_national_id(at, raw));
        if student.birth_date.is_none() {
            student.birth_date = student.national_id.and_then(|id| id.birth_date());
        }

        let (hash, found) = self.students.lookup(&student.source_key);
        if let Some(i) = found {
            if self.students.records[i] == student {
                self.report_repeat(at, Entity::Student, &student.source_key);
                return Admission::Repeated;
            }
            let (code, detail) = if key_is_national_id {
                (
                    Code::DuplicateNationalId,
                    format!(
                        "national id {} is already used by another person; this row is left out",
                        mask(&student.source_key)
                    ),
                )
            } else {
                (
                    Code::DuplicateKey,
                    format!(
                        "student key {} appears again with different content; the first is kept",
                        shown_key(&student.source_key)
                    ),
                )
            };
            self.deviation(at, code, Severity::Error, detail);
            return Admission::Rejected;
        }

        if let Some(id) = student.national_id {
            if self.id_owners.contains(&id) {
                let detail = format!(
                    "national id {} is already used by another person; this record is left out",
                    id.masked()
                );
                self.deviation(at, Code::DuplicateNationalId, Severity::Error, detail);
                let refused = (self.files.len() - 1, at);
                self.rejected_students.insert(student.source_key, refused);
                return Admission::Rejected;
            }
        }
        if !self.afford::<Student>(at, heap_bytes(&student_strings(&student))) {
            return Admission::Rejected;
        }
        if let Some(id) = student.national_id {
            self.id_owners.insert(id);
        }
        let origin = self.origin(at);
        self.students.push(hash, student, origin);
        self.kept(at);
        Admission::Accepted
    }

    fn parse_national_id(&mut self, at: Position, raw: &str) -> Option<NationalId> {
        match NationalId::parse(raw) {
            Ok(id) if id.is_synthetic() && self.options.reject_synthetic_ids => {
                let detail = format!(
                    "national id {} is a synthetic test number, refused on this site",
                    id.masked()
                );
                self.deviation(at, Code::SyntheticNationalId, Severity::Error, detail);
                None
            }
            Ok(id) => Some(id),
            Err(error) => {
                let detail = match error {
                    NationalIdError::Length { .. } | NationalIdError::NonDigit => {
                        format!("national id {}: {error}", mask(raw))
                    }
                    _ => format!("national id {} {error}", mask(raw)),
                };
                self.deviation(at, Code::InvalidNationalId, Severity::Error, detail);
                None
            }
        }
    }

    fn insert_other<T: Record + PartialEq>(
        &mut self,
        at: Position,
        record: T,
        provenance: Provenance,
        table: impl FnOnce(&mut Self) -> &mut Table<T>,
        key: &str,
    ) {
        if !self.afford::<T>(at, 0) {
            return;
        }
        let origin = self.origin(at);
        match table(self).insert(record, origin) {
            Insert::New => self.kept(at),
            // Merged into the identical record the roster holds.
            Insert::Same if provenance == Provenance::Implied => self.kept(at),
            Insert::Same => self.report_repeat(at, T::ENTITY, key),
            Insert::Conflict => self.report_conflict(at, T::ENTITY, key),
        }
    }

    fn report_repeat(&mut self, at: Position, entity: Entity, key: &str) {
        let detail = format!(
            "{} {} repeats an earlier record exactly; the repeat is ignored",
            singular(entity),
            shown_entity_key(entity, key)
        );
        self.deviation(at, Code::DuplicateRecord, Severity::Warning, detail);
    }

    fn report_conflict(&mut self, at: Position, entity: Entity, key: &str) {
        let detail = format!(
            "{} key {} appears again with different content; the first is kept",
            singular(entity),
            shown_entity_key(entity, key)
        );
        self.deviation(at, Code::DuplicateKey, Severity::Error, detail);
    }

    /// Resolves references and hands over the roster. In a full export, records whose
    /// references do not resolve are left out, each with a `dangling_reference` error. In a
    /// partial export they are kept and listed in [`Validated::outside_references`]: a
    /// record the export lacks is unchanged there, not missing.
    pub fn finish(mut self) -> Validated {
        let mut outside = Vec::new();
        let groups = std::mem::take(&mut self.groups);
        let group_count = groups.records.len();
        let mut kept_groups = Table::default();
        // Groups of a partial export kept with a school the export lacks: enrollments naming
        // them depend on that school too.
        let mut outside_groups = HashSet::new();
        for (group, origin) in groups.records.into_iter().zip(groups.origins) {
            if self.schools.contains(&group.school) {
                kept_groups.insert(group, origin);
            } else if self.partial {
                outside.push(self.outside_reference(Entity::Group, &group.source_key, &origin));
                outside_groups.insert(group.source_key.clone());
                kept_groups.insert(group, origin);
            } else {
                let detail = format!(
                    "group {} names school {} that the export does not contain",
                    group.source_key, group.school
                );
                self.deviation_at(&origin, Code::DanglingReference, Severity::Error, detail);
            }
        }

        let groups_dropped = kept_groups.records.len() != group_count;
        // Filtered in place: the enrollments of a large school are megabytes, and the reader
        // reserved room for them up front; the spare room is handed back at the end.
        let Table {
            records: mut enrollments,
            origins,
            ..
        } = std::mem::take(&mut self.enrollments);
        let mut origins = origins.into_iter();
        enrollments.retain(|enrollment| {
            let Some(origin) = origins.next() else {
                return true;
            };
            let depends_outside = enrollment
                .group
                .as_ref()
                .is_some_and(|g| outside_groups.contains(g));
            let missing = if origin.resolved && !groups_dropped && !depends_outside {
                None
            } else if !self.students.contains(&enrollment.student) {
                Some(format!("student {}", shown_key(&enrollment.student)))
            } else if !self.schools.contains(&enrollment.school) {
                Some(format!("school {}", enrollment.school))
            } else {
                match &enrollment.group {
                    Some(g) if !kept_groups.contains(g) => Some(format!("group {g}")),
                    _ => None,
                }
            };
            if missing.is_none() && !depends_outside {
                return true;
            }
            if self.partial {
                let key = &enrollment.source_key;
                outside.push(self.outside_reference(Entity::Enrollment, key, &origin));
                return true;
            }
            let Some(what) = missing else {
                return true;
            };
            let detail = format!("enrollment names {what} that the export does not contain");
            self.deviation_at(&origin, Code::DanglingReference, Severity::Error, detail);
            false
        });
        enrollments.shrink_to_fit();
        let mut students = self.students.records;
        students.shrink_to_fit();

        Validated {
            roster: Roster {
                schools: self.schools.records,
                students,
                groups: kept_groups.records,
                enrollments,
            },
            partial: self.partial,
            outside_references: outside,
            tombstones: self.tombstones,
            renames: self.renames,
            columns: self.columns,
            deviations: self.deviations,
            tally: self.tally,
            accounting: self.ledger.map(|ledger| ledger.close(&self.files)),
        }
    }

    /// Notes that the record read at `origin` names what a partial export lacks.
    fn outside_reference(&self, entity: Entity, key: &str, origin: &Origin) -> OutsideReference {
        OutsideReference {
            entity,
            key: key.into(),
            file: self.files[origin.file].clone(),
            position: origin.at,
        }
    }
}

/// A student's strings, for [`heap_bytes`].
fn student_strings(student: &Student) -> [Option<&CompactString>; 6] {
    [
        Some(&student.source_key),
        student.username.as_ref(),
        Some(&student.given_name),
        student.middle_name.as_ref(),
        Some(&student.family_name),
        student.email.as_ref(),
    ]
}

/// Bytes the strings hold outside their record: a string keeps up to 24 bytes inline.
fn heap_bytes(strings: &[Option<&CompactString>]) -> usize {
    strings
        .iter()
        .flatten()
        .filter(|s| s.is_heap_allocated())
        .map(|s| s.capacity())
        .sum()
}

/// Student and enrollment keys may be national ids (elevliste), so reports mask those; a
/// SAS's own keys are shown as they are, so the school can find the record.
fn shown_entity_key(entity: Entity, key: &str) -> String {
    match entity {
        Entity::Student | Entity::Enrollment => shown_key(key),
        Entity::School | Entity::Group => key.to_owned(),
    }
}

fn singular(entity: Entity) -> &'static str {
    match entity {
        Entity::School => "school",
        Entity::Student => "student",
        Entity::Group => "group",
        Entity::Enrollment => "enrollment",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::national_id::CivilDate;
    use skolebro_protocol::Gender;

    /// Two of Skatteetaten's synthetic numbers (month + 80).
    const ID_A: &str = "16881774198";
    const ID_B: &str = "25811885633";

    fn school(skolenummer: &str, name: &str) -> School {
        School {
            skolenummer: skolenummer.into(),
            organisasjonsnummer: None,
            kommunenummer: None,
            fylkesnummer: None,
            name: name.into(),
        }
    }

    fn group(key: &str, school: &str) -> Group {
        Group {
            source_key: key.into(),
            name: "1A".into(),
            grade: None,
            school: school.into(),
            school_year: None,
        }
    }

    fn student(key: &str, family_name: &str) -> Student {
        Student {
            source_key: key.into(),
            national_id: None,
            username: None,
            given_name: "Kari".into(),
            middle_name: None,
            family_name: family_name.into(),
            birth_date: None,
            gender: Gender::Female,
            email: None,
        }
    }

    fn row(key: &str, national_id: Option<&str>) -> StudentRow {
        StudentRow {
            student: student(key, "Nordmann"),
            national_id: national_id.map(CompactString::from),
            key_is_national_id: false,
        }
    }

    fn enrollment(student: &str, school: &str, group: Option<&str>) -> Enrollment {
        Enrollment {
            source_key: format!("{student}@{school}").into(),
            student: student.into(),
            school: school.into(),
            group: group.map(CompactString::from),
        }
    }

    fn line(n: u64) -> Position {
        Position::Line(n)
    }

    /// A builder holding school 46505 and its group 46505-1A, read from `elever.csv`.
    fn builder(options: ValidationOptions) -> RosterBuilder {
        let mut builder = RosterBuilder::new(options);
        builder.begin_file("elever.csv");
        builder.school(line(1), school("46505", "Fana skule"), Provenance::Stated);
        builder.group(line(2), group("46505-1A", "46505"), Provenance::Stated);
        builder
    }

    /// The code, line and detail of every deviation kept.
    fn reported(validated: &Validated) -> Vec<(Code, Position, &str)> {
        validated
            .deviations
            .iter()
            .map(|d| (d.code, d.position, d.detail.as_str()))
            .collect()
    }

    #[test]
    fn a_clean_export_comes_out_whole_with_no_deviation() {
        let mut builder = builder(ValidationOptions::default());
        assert_eq!(
            builder.student(line(3), row("elev1", Some(ID_A))),
            Admission::Accepted
        );
        builder.enrollment(line(3), enrollment("elev1", "46505", Some("46505-1A")));
        let validated = builder.finish();
        assert!(
            validated.deviations.is_empty(),
            "{:?}",
            validated.deviations
        );
        assert_eq!(validated.errors(), 0);
        let roster = &validated.roster;
        assert_eq!(
            (
                roster.schools.len(),
                roster.groups.len(),
                roster.students.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(roster.enrollments.len(), 1);
        let id = roster.students[0].national_id.expect("the id is valid");
        assert_eq!(id.as_str(), ID_A);
    }

    #[test]
    fn a_student_without_a_birth_date_takes_the_one_its_national_id_encodes() {
        let mut builder = builder(ValidationOptions::default());
        builder.student(line(3), row("elev1", Some(ID_A)));
        let mut dated = row("elev2", Some(ID_B));
        let stated = CivilDate::new(2012, 3, 4);
        dated.student.birth_date = stated;
        builder.student(line(4), dated);
        let students = builder.finish().roster.students;
        assert_eq!(students[0].birth_date, CivilDate::new(2017, 8, 16));
        assert_eq!(
            students[1].birth_date, stated,
            "a stated birth date is kept"
        );
    }

    #[test]
    fn a_synthetic_national_id_is_refused_only_on_a_site_that_rejects_them() {
        let mut lenient = builder(ValidationOptions::default());
        lenient.student(line(3), row("elev1", Some(ID_A)));
        let validated = lenient.finish();
        assert!(validated.deviations.is_empty());
        assert!(validated.roster.students[0].national_id.is_some());

        let mut strict = builder(ValidationOptions {
            reject_synthetic_ids: true,
            ..ValidationOptions::default()
        });
        assert_eq!(
            strict.student(line(3), row("elev1", Some(ID_A))),
            Admission::Accepted
        );
        let validated = strict.finish();
        assert_eq!(
            reported(&validated),
            [(
                Code::SyntheticNationalId,
                line(3),
                "national id 168817***** is a synthetic test number, refused on this site"
            )]
        );
        assert_eq!(validated.roster.students[0].national_id, None);
        assert_eq!(validated.errors(), 1);
    }

    #[test]
    fn an_invalid_national_id_is_reported_masked_and_the_student_kept_without_it() {
        let mut builder = builder(ValidationOptions::default());
        builder.student(line(3), row("elev1", Some("1688177")));
        builder.student(line(4), row("elev2", Some("16881774199")));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::InvalidNationalId,
                    line(3),
                    "national id 16*****: must be 11 digits, found 7 characters"
                ),
                (
                    Code::InvalidNationalId,
                    line(4),
                    "national id 168817***** control digits do not match"
                ),
            ]
        );
        assert_eq!(validated.roster.students.len(), 2);
        assert!(validated
            .roster
            .students
            .iter()
            .all(|s| s.national_id.is_none()));
    }

    #[test]
    fn an_exact_repeat_of_a_stated_record_is_a_warning_and_of_an_implied_one_is_silent() {
        let mut builder = builder(ValidationOptions::default());
        builder.school(line(3), school("46505", "Fana skule"), Provenance::Stated);
        builder.group(line(4), group("46505-1A", "46505"), Provenance::Implied);
        builder.school(line(5), school("46505", "Fana skule"), Provenance::Implied);
        assert_eq!(
            builder.student(line(6), row("elev1", None)),
            Admission::Accepted
        );
        assert_eq!(
            builder.student(line(7), row("elev1", None)),
            Admission::Repeated
        );
        builder.enrollment(line(6), enrollment("elev1", "46505", None));
        builder.enrollment(line(7), enrollment("elev1", "46505", None));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::DuplicateRecord,
                    line(3),
                    "school 46505 repeats an earlier record exactly; the repeat is ignored"
                ),
                (
                    Code::DuplicateRecord,
                    line(7),
                    "student elev1 repeats an earlier record exactly; the repeat is ignored"
                ),
                (
                    Code::DuplicateRecord,
                    line(7),
                    "enrollment elev1@46505 repeats an earlier record exactly; the repeat is \
                     ignored"
                ),
            ]
        );
        assert!(validated
            .deviations
            .iter()
            .all(|d| d.severity == Severity::Warning));
        assert_eq!(validated.errors(), 0);
        let roster = &validated.roster;
        assert_eq!((roster.schools.len(), roster.groups.len()), (1, 1));
        assert_eq!((roster.students.len(), roster.enrollments.len()), (1, 1));
    }

    #[test]
    fn a_key_that_comes_again_with_other_content_keeps_the_first_record() {
        let mut builder = builder(ValidationOptions::default());
        builder.school(line(3), school("46505", "Fana skole"), Provenance::Implied);
        builder.group(line(4), group("46505-1A", "46506"), Provenance::Stated);
        builder.student(line(5), row("elev1", None));
        let mut other = row("elev1", None);
        other.student.family_name = "Hansen".into();
        assert_eq!(builder.student(line(6), other), Admission::Rejected);
        builder.enrollment(line(5), enrollment("elev1", "46505", None));
        builder.enrollment(line(6), enrollment("elev1", "46505", Some("46505-1A")));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::DuplicateKey,
                    line(3),
                    "school key 46505 appears again with different content; the first is kept"
                ),
                (
                    Code::DuplicateKey,
                    line(4),
                    "group key 46505-1A appears again with different content; the first is \
                     kept"
                ),
                (
                    Code::DuplicateKey,
                    line(6),
                    "student key elev1 appears again with different content; the first is kept"
                ),
                (
                    Code::DuplicateKey,
                    line(6),
                    "enrollment key elev1@46505 appears again with different content; the \
                     first is kept"
                ),
            ]
        );
        assert_eq!(validated.errors(), 4);
        let roster = &validated.roster;
        assert_eq!(roster.schools[0].name, "Fana skule");
        assert_eq!(roster.groups[0].school, "46505");
        assert_eq!(roster.students[0].family_name, "Nordmann");
        assert_eq!(roster.enrollments[0].group, None);
    }

    #[test]
    fn a_second_person_under_a_national_id_key_is_reported_with_the_id_masked() {
        let mut builder = builder(ValidationOptions::default());
        let person = |family_name: &str| StudentRow {
            student: student(ID_A, family_name),
            national_id: Some(ID_A.into()),
            key_is_national_id: true,
        };
        assert_eq!(
            builder.student(line(3), person("Nordmann")),
            Admission::Accepted
        );
        assert_eq!(
            builder.student(line(4), person("Hansen")),
            Admission::Rejected
        );
        builder.student(line(5), person("Nordmann"));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::DuplicateNationalId,
                    line(4),
                    "national id 168817***** is already used by another person; this row is \
                     left out"
                ),
                (
                    Code::DuplicateRecord,
                    line(5),
                    "student 168817***** repeats an earlier record exactly; the repeat is \
                     ignored"
                ),
            ]
        );
        assert_eq!(validated.roster.students.len(), 1);
    }

    #[test]
    fn two_students_with_one_national_id_keep_the_first_and_lose_the_second_with_its_enrollment() {
        let mut builder = builder(ValidationOptions::default());
        assert_eq!(
            builder.student(line(3), row("elev1", Some(ID_A))),
            Admission::Accepted
        );
        builder.enrollment(line(3), enrollment("elev1", "46505", None));
        assert_eq!(
            builder.student(line(4), row("elev2", Some(ID_A))),
            Admission::Rejected
        );
        builder.enrollment(line(4), enrollment("elev2", "46505", None));
        assert_eq!(
            builder.student(line(5), row("elev3", Some(ID_B))),
            Admission::Accepted
        );
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [(
                Code::DuplicateNationalId,
                line(4),
                "national id 168817***** is already used by another person; this record is \
                 left out"
            )]
        );
        let keys = |records: &[Student]| -> Vec<String> {
            records.iter().map(|s| s.source_key.to_string()).collect()
        };
        assert_eq!(keys(&validated.roster.students), ["elev1", "elev3"]);
        assert_eq!(validated.roster.enrollments.len(), 1);
        assert_eq!(validated.roster.enrollments[0].student, "elev1");
    }

    #[test]
    fn an_enrollment_naming_what_the_export_lacks_is_left_out_as_a_dangling_reference() {
        let mut builder = builder(ValidationOptions::default());
        builder.student(line(3), row("elev1", None));
        builder.enrollment(line(4), enrollment("elev1", "46505", Some("46505-1A")));
        builder.enrollment(line(5), enrollment("elev2", "46505", None));
        builder.enrollment(line(6), enrollment("elev1", "99999", None));
        let mut lost = enrollment("elev1", "46505", Some("46505-9Z"));
        lost.source_key = "elev1@46505-9Z".into();
        builder.enrollment(line(7), lost);
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::DanglingReference,
                    line(5),
                    "enrollment names student elev2 that the export does not contain"
                ),
                (
                    Code::DanglingReference,
                    line(6),
                    "enrollment names school 99999 that the export does not contain"
                ),
                (
                    Code::DanglingReference,
                    line(7),
                    "enrollment names group 46505-9Z that the export does not contain"
                ),
            ]
        );
        assert_eq!(validated.errors(), 3);
        assert_eq!(validated.roster.enrollments.len(), 1);
        assert_eq!(
            validated.roster.enrollments[0].group.as_deref(),
            Some("46505-1A")
        );
    }

    #[test]
    fn a_partial_export_keeps_an_enrollment_naming_what_it_lacks_for_the_differ_to_check() {
        let mut builder = RosterBuilder::new(ValidationOptions {
            account_records: true,
            ..ValidationOptions::default()
        });
        builder.set_partial();
        builder.begin_file("enrollments.csv");
        for n in 2..=5 {
            builder.record_seen(line(n));
        }
        builder.group(line(2), group("46505-2B", "46505"), Provenance::Stated);
        builder.enrollment(line(3), enrollment("elev1", "46505", Some("46505-2B")));
        builder.enrollment(line(4), enrollment("elev2", "46505", Some("46505-1A")));
        let mut whole = enrollment("elev3", "46505", None);
        whole.source_key = "elev3@46505".into();
        builder.student(line(5), row("elev3", None));
        builder.school(line(5), school("46505", "Fana skule"), Provenance::Implied);
        builder.enrollment(line(5), whole);
        let validated = builder.finish();
        assert!(
            validated.deviations.is_empty(),
            "{:?}",
            validated.deviations
        );
        assert_eq!(validated.roster.groups.len(), 1);
        assert_eq!(validated.roster.enrollments.len(), 3);
        let outside: Vec<_> = validated
            .outside_references
            .iter()
            .map(|r| (r.entity, r.key.as_str(), r.file.as_str(), r.position))
            .collect();
        assert_eq!(
            outside,
            [
                (
                    Entity::Enrollment,
                    "elev1@46505",
                    "enrollments.csv",
                    line(3)
                ),
                (
                    Entity::Enrollment,
                    "elev2@46505",
                    "enrollments.csv",
                    line(4)
                ),
            ]
        );
        let accounting = validated.accounting.expect("asked for");
        assert!(accounting.is_complete(), "{accounting:?}");
        assert_eq!(accounting.kept, 4);
    }

    #[test]
    fn a_partial_export_keeps_a_group_whose_school_it_lacks_and_the_enrollments_naming_it() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_partial();
        builder.group(line(1), group("46505-2B", "46505"), Provenance::Stated);
        builder.student(line(2), row("elev1", None));
        builder.enrollment(line(2), enrollment("elev1", "46505", Some("46505-2B")));
        let validated = builder.finish();
        assert!(validated.deviations.is_empty());
        let outside: Vec<_> = validated
            .outside_references
            .iter()
            .map(|r| (r.entity, r.key.as_str()))
            .collect();
        assert_eq!(
            outside,
            [
                (Entity::Group, "46505-2B"),
                (Entity::Enrollment, "elev1@46505")
            ]
        );
        assert_eq!(validated.roster.enrollments.len(), 1);
    }

    #[test]
    fn a_full_export_still_leaves_out_an_enrollment_naming_what_it_lacks() {
        let mut builder = builder(ValidationOptions::default());
        builder.enrollment(line(3), enrollment("elev2", "46505", Some("46505-1A")));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [(
                Code::DanglingReference,
                line(3),
                "enrollment names student elev2 that the export does not contain"
            )]
        );
        assert!(validated.outside_references.is_empty());
        assert!(validated.roster.enrollments.is_empty());
    }

    #[test]
    fn a_group_whose_school_is_missing_is_left_out_with_its_enrollments() {
        let mut builder = builder(ValidationOptions::default());
        builder.group(line(3), group("99999-1A", "99999"), Provenance::Stated);
        builder.student(line(4), row("elev1", None));
        builder.student(line(5), row("elev2", None));
        builder.enrollment(line(6), enrollment("elev1", "46505", Some("99999-1A")));
        builder.enrollment(line(7), enrollment("elev2", "46505", Some("46505-1A")));
        builder.enrollment(line(8), enrollment("elev3", "46505", None));
        let validated = builder.finish();
        assert_eq!(
            reported(&validated),
            [
                (
                    Code::DanglingReference,
                    line(3),
                    "group 99999-1A names school 99999 that the export does not contain"
                ),
                (
                    Code::DanglingReference,
                    line(6),
                    "enrollment names group 99999-1A that the export does not contain"
                ),
                (
                    Code::DanglingReference,
                    line(8),
                    "enrollment names student elev3 that the export does not contain"
                ),
            ]
        );
        let groups: Vec<_> = validated
            .roster
            .groups
            .iter()
            .map(|g| &g.source_key)
            .collect();
        assert_eq!(groups, ["46505-1A"]);
        assert_eq!(validated.roster.enrollments.len(), 1);
        assert_eq!(validated.roster.enrollments[0].student, "elev2");
    }

    #[test]
    fn an_enrollment_read_before_what_it_names_resolves_once_the_export_is_read() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.enrollment(line(1), enrollment("elev1", "46505", Some("46505-1A")));
        builder.group(line(2), group("46505-1A", "46505"), Provenance::Stated);
        builder.student(line(3), row("elev1", None));
        builder.school(line(4), school("46505", "Fana skule"), Provenance::Stated);
        let validated = builder.finish();
        assert!(
            validated.deviations.is_empty(),
            "{:?}",
            validated.deviations
        );
        assert_eq!(validated.roster.enrollments.len(), 1);
    }

    #[test]
    fn only_the_first_rows_of_a_code_are_kept_unless_every_one_is_asked_for() {
        let flood = |options: ValidationOptions| {
            let mut builder = builder(options);
            for n in 0..150 {
                builder.deviation(
                    line(n),
                    Code::MissingRequired,
                    Severity::Error,
                    n.to_string(),
                );
            }
            builder.deviation(line(150), Code::UnknownField, Severity::Warning, "x".into());
            builder.finish()
        };
        let validated = flood(ValidationOptions::default());
        assert_eq!(validated.deviations.len(), KEPT_PER_CODE + 1);
        assert_eq!(validated.deviations[KEPT_PER_CODE - 1].detail, "99");
        assert_eq!(validated.deviations[KEPT_PER_CODE].code, Code::UnknownField);
        assert_eq!(validated.errors(), 150);
        assert_eq!(validated.omitted(), 50);

        let validated = flood(ValidationOptions {
            keep_every_deviation: true,
            ..ValidationOptions::default()
        });
        assert_eq!(validated.deviations.len(), 151);
        assert_eq!(validated.omitted(), 0);
    }

    #[test]
    fn a_deviation_names_the_file_being_read_when_it_was_found() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.begin_file("orgs.csv");
        builder.deviation(line(2), Code::UnknownField, Severity::Warning, "a".into());
        builder.begin_file("users.csv");
        builder.deviation(line(3), Code::UnknownField, Severity::Warning, "b".into());
        let files: Vec<_> = builder
            .finish()
            .deviations
            .into_iter()
            .map(|d| d.file)
            .collect();
        assert_eq!(files, ["orgs.csv", "users.csv"]);
    }

    #[test]
    fn what_a_reader_states_about_the_export_is_handed_on() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        let whole = RosterBuilder::new(ValidationOptions::default()).finish();
        assert!(!whole.partial);
        builder.set_partial();
        builder.tombstone(line(9), Entity::Student, "elev9".into());
        builder.renamed(Entity::Student, "elev1".into(), "elev101".into());
        builder.set_columns(vec!["Fornavn".into(), "Klasse".into()]);
        builder.expect_students(10);
        let validated = builder.finish();
        assert!(validated.partial);
        assert_eq!(
            validated.tombstones,
            [Tombstone {
                entity: Entity::Student,
                key: "elev9".into()
            }]
        );
        assert_eq!(
            validated.renames,
            [Rename {
                entity: Entity::Student,
                from: "elev1".into(),
                to: "elev101".into()
            }]
        );
        assert_eq!(validated.columns, ["Fornavn", "Klasse"]);
    }

    /// What [`RosterBuilder::afford`] counts for a record of type `T` holding no string
    /// outside itself.
    fn cost<T>() -> u64 {
        2 * (std::mem::size_of::<T>() + std::mem::size_of::<Origin>() + 16) as u64
    }

    #[test]
    fn records_past_the_budget_are_not_kept_and_the_place_is_named() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_budget(2 * cost::<School>());
        builder.begin_file("orgs.csv");
        builder.school(line(1), school("1", "A"), Provenance::Stated);
        builder.school(line(2), school("2", "B"), Provenance::Stated);
        assert_eq!(
            builder.over_budget(),
            None,
            "a budget spent exactly is kept"
        );
        builder.begin_file("more.csv");
        builder.school(line(3), school("3", "C"), Provenance::Stated);
        builder.school(line(4), school("4", "D"), Provenance::Stated);
        assert_eq!(
            builder.over_budget(),
            Some(&("more.csv".to_owned(), line(3)))
        );
        assert_eq!(builder.finish().roster.schools.len(), 2);

        let mut tight = RosterBuilder::new(ValidationOptions::default());
        tight.set_budget(2 * cost::<School>() - 1);
        tight.school(line(1), school("1", "A"), Provenance::Stated);
        tight.school(line(2), school("2", "B"), Provenance::Stated);
        assert_eq!(tight.over_budget(), Some(&(String::new(), line(2))));

        let mut unbounded = RosterBuilder::new(ValidationOptions::default());
        for n in 0..100u64 {
            unbounded.school(line(n), school(&n.to_string(), "A"), Provenance::Stated);
        }
        assert_eq!(unbounded.over_budget(), None);
        assert_eq!(unbounded.finish().roster.schools.len(), 100);
    }

    #[test]
    fn a_student_s_long_strings_count_against_the_budget() {
        let budget = cost::<Student>() + cost::<Enrollment>();
        let mut short = RosterBuilder::new(ValidationOptions::default());
        short.set_budget(budget);
        assert_eq!(
            short.student(line(1), row("elev1", None)),
            Admission::Accepted
        );
        short.enrollment(line(1), enrollment("elev1", "46505", None));
        assert_eq!(short.over_budget(), None);

        let long = "a family name longer than a string keeps inline";
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_budget(cost::<Student>());
        let mut wordy = row("elev1", None);
        wordy.student.family_name = long.into();
        assert_eq!(builder.student(line(1), wordy), Admission::Rejected);
        assert_eq!(builder.over_budget(), Some(&(String::new(), line(1))));

        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_budget(budget);
        builder.student(line(1), row("elev1", None));
        builder.enrollment(line(1), enrollment("elev1", long, None));
        assert_eq!(builder.over_budget(), Some(&(String::new(), line(1))));
        assert!(builder.finish().roster.enrollments.is_empty());
    }
}
