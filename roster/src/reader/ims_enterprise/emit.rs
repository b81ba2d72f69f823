//! Emitting: from file records to roster records. Once the document has parsed, the
//! [`Export`] pushes schools, basisgrupper, students and enrollments into the
//! [`RosterBuilder`], in that order, since only then is every group and membership known.

use std::collections::{HashMap, HashSet};

use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{Enrollment, Entity, Gender, Group, School, Student};

use super::records::{old_ids, Export, GroupRec};
use crate::deviation::{shown_key, Code, Position, Severity};
use crate::validate::{Admission, Provenance, RosterBuilder, StudentRow};

/// What a group id stands for, once all groups are known.
#[derive(Debug, Clone)]
enum GroupKind {
    /// A school, with its skolenummer.
    School(String),
    /// A basisgruppe, with its school's skolenummer.
    Basis(String),
    /// Known but not a roster record (owner, undervisningsgruppe, deleted, unusable).
    Other,
}

fn has_type(g: &GroupRec, scheme: &str, typevalue: &str) -> bool {
    g.types.iter().any(|(s, values)| {
        s.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(scheme))
            && values.iter().any(|v| v.eq_ignore_ascii_case(typevalue))
    })
}

/// The parent named by `relationship relation="1"`.
fn parent(g: &GroupRec) -> Option<&str> {
    g.relationships
        .iter()
        .filter(|(relation, _)| relation.as_deref().is_none_or(|r| r == "1"))
        .find_map(|(_, id)| id.as_deref())
}

/// A 9-digit organisation number, as NSR has it, with or without `NO` and `MVA`.
fn organisasjonsnummer(id: &str) -> Option<String> {
    let digits: String = id.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits.strip_prefix("NO").unwrap_or(&digits);
    let digits = digits.strip_suffix("MVA").unwrap_or(digits);
    (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_owned())
}

/// The kommunenummer (4 digits) or fylkesnummer (2 digits) a school owner states in its
/// short description or at the end of its id (`kommune-4601`).
fn owner_numbers(g: &GroupRec) -> (Option<String>, Option<String>) {
    let digits = |s: &str| -> Option<String> {
        let tail: String = s.chars().rev().take_while(char::is_ascii_digit).collect();
        let tail: String = tail.chars().rev().collect();
        matches!(tail.len(), 2 | 4).then_some(tail)
    };
    let number = g
        .short
        .as_deref()
        .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        .and_then(digits)
        .or_else(|| g.key().and_then(digits));
    match number {
        Some(n) if n.len() == 4 => (Some(n.clone()), Some(n[..2].to_owned())),
        Some(n) => (None, Some(n)),
        None => (None, None),
    }
}

/// The skolenummer of a school group. Where the export states one it is used as is: the
/// `skolenummer` extension, else an IMS `org/id` that is not an organisation number. PIFU-IMS
/// itself has no skolenummer; of the ids it gives (`extension/pifu_id`) the Vigo number is
/// the school number counties and their SAS use, then the GSI number (grunnskoler), then the
/// organisation number, which every PIFU school must have. Only a school with none of these
/// is keyed by its `sourcedid`, which means nothing outside the file.
fn skolenummer(g: &GroupRec, key: &str) -> String {
    g.school_number
        .clone()
        .or_else(|| {
            g.org_id
                .clone()
                .filter(|id| organisasjonsnummer(id).is_none())
        })
        .or_else(|| {
            ["vigoNumber", "gsiNumber"]
                .iter()
                .find_map(|kind| g.pifu_id(kind).map(str::to_owned))
        })
        .or_else(|| {
            g.pifu_id("organizationNumber")
                .and_then(organisasjonsnummer)
        })
        .unwrap_or_else(|| key.to_owned())
}

/// The kommunenummer and fylkesnummer of a school: PIFU's `municipalityNumber` and
/// `countyNumber` ids on the school, else on its owner, else what the owner's description
/// or id says; a fylkesnummer not stated is the kommunenummer's first two digits.
fn area_numbers(school: &GroupRec, owner: Option<&GroupRec>) -> (Option<String>, Option<String>) {
    let stated = |kind: &str, len: usize| {
        let valid = |v: &&str| v.len() == len && v.bytes().all(|b| b.is_ascii_digit());
        school
            .pifu_id(kind)
            .filter(valid)
            .or_else(|| owner.and_then(|o| o.pifu_id(kind)).filter(valid))
            .map(str::to_owned)
    };
    let (guessed_kommune, guessed_fylke) = owner.map(owner_numbers).unwrap_or((None, None));
    let kommunenummer = stated("municipalityNumber", 4).or(guessed_kommune);
    let fylkesnummer = stated("countyNumber", 2)
        .or_else(|| kommunenummer.as_ref().map(|k| k[..2].to_owned()))
        .or(guessed_fylke);
    (kommunenummer, fylkesnummer)
}

/// The school year a `timeframe` spans, as `2025/2026` (one year when it does not span two).
fn school_year(g: &GroupRec) -> Option<String> {
    let year = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.get(..4))
            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    };
    match (year(&g.begin), year(&g.end)) {
        (Some(b), Some(e)) if b != e => Some(format!("{b}/{e}")),
        (Some(b), _) => Some(b),
        (None, e) => e,
    }
}

/// IMS coding, not ISO 5218: 1 is female, 2 male, anything else unknown.
fn gender(value: Option<&str>) -> Gender {
    match value.map(str::trim) {
        Some("1") => Gender::Female,
        Some("2") => Gender::Male,
        _ => Gender::Unknown,
    }
}

impl Export {
    pub(super) fn emit(self, builder: &mut RosterBuilder) {
        if self.partial {
            builder.set_partial();
        }
        // The records the export holds, for the builder's accounting; a membership's records
        // are its members, seen where its group is known (see `emit_enrollments`).
        for person in &self.persons {
            builder.record_seen(Position::Line(person.line));
        }
        for group in &self.groups {
            builder.record_seen(Position::Line(group.line));
        }
        let kinds = self.emit_groups(builder);

        // A person is a student when some membership gives it a current learner role. Where
        // the export has schools, that membership must be of a school or a basisgruppe (or
        // of a group the file lacks, which is reported): Udir's example makes a teacher a
        // learner at the school owner for a course elsewhere, and she is no pupil here.
        let has_schools = kinds.values().any(|k| matches!(k, GroupKind::School(_)));
        let mut learners: HashSet<&str> = HashSet::new();
        let mut elsewhere: HashMap<&str, &str> = HashMap::new();
        for m in &self.memberships {
            let group = m.group.as_deref();
            let counts = !has_schools
                || group.is_none_or(|g| !matches!(kinds.get(g), Some(GroupKind::Other)));
            for person in m
                .members
                .iter()
                .filter(|x| x.is_learner(m.deleted))
                .filter_map(|x| x.person.as_deref())
            {
                if counts {
                    learners.insert(person);
                } else if let Some(group) = group {
                    elsewhere.entry(person).or_insert(group);
                }
            }
        }

        let mut in_file: HashSet<&str> = HashSet::new();
        let mut deleted: HashSet<&str> = HashSet::new();
        let mut accepted: HashSet<&str> = HashSet::new();
        for person in &self.persons {
            let at = Position::Line(person.line);
            let Some(key) = person.key() else {
                builder.deviation(
                    at,
                    Code::MissingRequired,
                    Severity::Error,
                    "person without sourcedid/id; it is left out".to_owned(),
                );
                continue;
            };
            in_file.insert(key);
            if person.deleted {
                deleted.insert(key);
                builder.tombstone(at, Entity::Student, key.to_owned());
                continue;
            }
            if !learners.contains(key) {
                if let Some(group) = elsewhere.get(key) {
                    let detail = format!(
                        "person {} is a learner only in group {group}, which is no school or \
                         basisgruppe; not read as a student",
                        shown_key(key)
                    );
                    builder.deviation(at, Code::DanglingReference, Severity::Warning, detail);
                } else {
                    // Staff, or a learner in courses only: no pupil of the roster.
                    builder.outside_roster(at);
                }
                continue;
            }
            let mut name = |field: Option<&String>, what: &str| {
                field.cloned().unwrap_or_else(|| {
                    let detail = format!("person {}: {what} is missing", shown_key(key));
                    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                    String::new()
                })
            };
            let given_name = name(person.given.as_ref(), "name/n/given");
            let family_name = name(person.family.as_ref(), "name/n/family");
            let student = Student {
                source_key: key.to_owned().into(),
                national_id: None,
                username: person
                    .username
                    .as_ref()
                    .map(|(_, u)| u.clone())
                    .map(Into::into),
                given_name: given_name.into(),
                middle_name: person.middle.clone().map(Into::into),
                family_name: family_name.into(),
                birth_date: person.bday.as_deref().and_then(CivilDate::parse_iso),
                gender: gender(person.gender.as_deref()),
                email: person.email.clone().map(Into::into),
            };
            let row = StudentRow {
                student,
                national_id: person.national_id.clone().map(Into::into),
                key_is_national_id: false,
            };
            if builder.student(at, row) == Admission::Accepted {
                accepted.insert(key);
                for old in old_ids(&person.ids).filter(|old| *old != key) {
                    builder.renamed(Entity::Student, old.to_owned(), key.to_owned());
                }
            }
        }

        if !accepted.is_empty() && !has_schools && !self.partial {
            builder.deviation(
                Position::Line(1),
                Code::NoSchool,
                Severity::Warning,
                format!(
                    "the export has {} students but no school (no group of scheme \
                     pifu-ims-go-org, type skole): no consumer scoped to a school reaches them",
                    accepted.len()
                ),
            );
        }
        let persons = Persons {
            in_file: &in_file,
            deleted: &deleted,
            accepted: &accepted,
        };
        self.emit_enrollments(builder, &kinds, &persons);
    }

    /// Pushes schools and basisgrupper; returns what each group id stands for.
    fn emit_groups(&self, builder: &mut RosterBuilder) -> HashMap<String, GroupKind> {
        let mut kinds: HashMap<String, GroupKind> = HashMap::new();
        let mut owners: HashMap<&str, &GroupRec> = HashMap::new();
        for group in &self.groups {
            let Some(key) = group.key() else {
                builder.deviation(
                    Position::Line(group.line),
                    Code::MissingRequired,
                    Severity::Error,
                    "group without sourcedid/id; it is left out".to_owned(),
                );
                continue;
            };
            let at = Position::Line(group.line);
            let kind = if group.deleted {
                if has_type(group, "pifu-ims-go-org", "skole") {
                    builder.tombstone(at, Entity::School, skolenummer(group, key));
                } else if has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                    builder.tombstone(at, Entity::Group, key.to_owned());
                } else {
                    builder.outside_roster(at);
                }
                GroupKind::Other
            } else if has_type(group, "pifu-ims-go-org", "skole") {
                GroupKind::School(skolenummer(group, key))
            } else if has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                GroupKind::Basis(String::new())
            } else {
                if has_type(group, "pifu-ims-go-org", "skoleeier") {
                    owners.entry(key).or_insert(group);
                }
                // A school owner, a course, a teaching group: no roster record.
                builder.outside_roster(at);
                GroupKind::Other
            };
            match kinds.get(key) {
                None => {
                    kinds.insert(key.to_owned(), kind);
                }
                // The id already stands for another kind of group: the later loops read a
                // group as its id's first kind, so this one would vanish without a word.
                // (A group read as no roster record was noted as such above.)
                Some(first)
                    if std::mem::discriminant(first) != std::mem::discriminant(&kind)
                        && !matches!(kind, GroupKind::Other) =>
                {
                    let detail = format!(
                        "group {key} was already read as another kind of group; this one is \
                         left out"
                    );
                    builder.deviation(at, Code::DuplicateKey, Severity::Error, detail);
                }
                Some(_) => {}
            }
        }

        // Schools first, so that basisgrupper can name their skolenummer.
        for group in &self.groups {
            let Some(key) = group.key() else {
                continue;
            };
            if group.deleted || !has_type(group, "pifu-ims-go-org", "skole") {
                continue;
            }
            let Some(GroupKind::School(skolenummer)) = kinds.get(key) else {
                continue;
            };
            let owner = parent(group).and_then(|p| owners.get(p));
            let (kommunenummer, fylkesnummer) = area_numbers(group, owner.copied());
            let school = School {
                skolenummer: skolenummer.clone().into(),
                organisasjonsnummer: group
                    .pifu_id("organizationNumber")
                    .and_then(organisasjonsnummer)
                    .or_else(|| group.org_id.as_deref().and_then(organisasjonsnummer))
                    .map(Into::into),
                kommunenummer: kommunenummer.map(Into::into),
                fylkesnummer: fylkesnummer.map(Into::into),
                name: group
                    .long
                    .clone()
                    .or_else(|| group.full.clone())
                    .or_else(|| group.short.clone())
                    .unwrap_or_else(|| skolenummer.clone())
                    .into(),
            };
            builder.school(Position::Line(group.line), school, Provenance::Stated);
        }

        // Basisgrupper without a school; left out unless another group of the same id has one.
        let mut schoolless = Vec::new();
        for group in &self.groups {
            let Some(key) = group.key() else {
                continue;
            };
            if !matches!(kinds.get(key), Some(GroupKind::Basis(_))) || group.deleted {
                continue;
            }
            if !has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                continue;
            }
            let at = Position::Line(group.line);
            let Some(parent) = parent(group) else {
                let detail = format!(
                    "basisgruppe {key} names no school (relationship relation=\"1\"); it is left out"
                );
                builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                schoolless.push(key);
                continue;
            };
            // An unknown parent is kept as named, so validation reports the dangling school.
            let school = match kinds.get(parent) {
                Some(GroupKind::School(skolenummer)) => skolenummer.clone(),
                _ => parent.to_owned(),
            };
            let record = Group {
                source_key: key.to_owned().into(),
                name: group
                    .short
                    .clone()
                    .or_else(|| group.long.clone())
                    .unwrap_or_else(|| key.to_owned())
                    .into(),
                grade: group.grade.clone().map(Into::into),
                school: school.clone().into(),
                school_year: school_year(group).map(Into::into),
            };
            builder.group(at, record, Provenance::Stated);
            if let Some(GroupKind::Basis(s)) = kinds.get_mut(key) {
                if s.is_empty() {
                    *s = school;
                }
            }
        }
        // An id no basisgruppe with a school took stands for no roster record.
        for key in schoolless {
            if matches!(kinds.get(key), Some(GroupKind::Basis(s)) if s.is_empty()) {
                kinds.insert(key.to_owned(), GroupKind::Other);
            }
        }
        kinds
    }

    fn emit_enrollments(
        &self,
        builder: &mut RosterBuilder,
        kinds: &HashMap<String, GroupKind>,
        persons: &Persons<'_>,
    ) {
        // Where a learner has a basisgruppe, membership of the school adds nothing.
        let mut in_class: HashSet<(&str, &str)> = HashSet::new();
        for m in &self.memberships {
            let Some(GroupKind::Basis(school)) = m.group.as_deref().and_then(|g| kinds.get(g))
            else {
                continue;
            };
            for member in m.members.iter().filter(|x| x.is_learner(m.deleted)) {
                if let Some(person) = member.person.as_deref() {
                    in_class.insert((person, school.as_str()));
                }
            }
        }

        let mut pushed: HashSet<String> = HashSet::new();
        let mut removed: Vec<(String, Position)> = Vec::new();
        for m in &self.memberships {
            let Some(group) = m.group.as_deref() else {
                builder.record_seen(Position::Line(m.line));
                builder.deviation(
                    Position::Line(m.line),
                    Code::MissingRequired,
                    Severity::Error,
                    "membership without sourcedid/id of its group; it is left out".to_owned(),
                );
                continue;
            };
            let kind = kinds.get(group);
            for member in m.members.iter().filter(|x| x.is_person()) {
                let at = Position::Line(member.line);
                builder.record_seen(at);
                let learner = member.is_learner(m.deleted);
                if !learner && !member.is_deleted_learner(m.deleted) {
                    // Staff in a group: no roster record.
                    builder.outside_roster(at);
                    continue;
                }
                let Some(person) = member.person.as_deref() else {
                    let detail =
                        format!("member of group {group} without sourcedid/id; it is left out");
                    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                    continue;
                };
                let (school, class) = match kind {
                    Some(GroupKind::Basis(school)) => (school, Some(group.to_owned())),
                    Some(GroupKind::School(school)) => {
                        if in_class.contains(&(person, school.as_str())) {
                            // The enrollment in the learner's basisgruppe there says it all.
                            builder.merged(at);
                            continue;
                        }
                        (school, None)
                    }
                    Some(GroupKind::Other) => {
                        builder.outside_roster(at);
                        continue;
                    }
                    None => {
                        if learner {
                            let detail = format!(
                                "membership names group {group} that the export does not contain"
                            );
                            builder.deviation(at, Code::DanglingReference, Severity::Error, detail);
                        } else {
                            // Ends a membership of a group neither export knows: nothing to
                            // delete.
                            builder.outside_roster(at);
                        }
                        continue;
                    }
                };
                let key = format!("{person}@{school}");
                if !learner {
                    removed.push((key, at));
                    continue;
                }
                // A person the export holds but deletes takes its memberships along; one
                // validation refused does too, said here; an unknown person is pushed so
                // validation reports it.
                if persons.in_file.contains(person) && !persons.accepted.contains(person) {
                    if persons.deleted.contains(person) {
                        builder.merged(at);
                    } else {
                        let detail = format!(
                            "person {} is left out for its own deviation; its membership of \
                             group {group} is left out too",
                            shown_key(person)
                        );
                        builder.deviation(at, Code::DanglingReference, Severity::Error, detail);
                    }
                    continue;
                }
                pushed.insert(key.clone());
                builder.enrollment(
                    at,
                    Enrollment {
                        source_key: key.into(),
                        student: person.to_owned().into(),
                        school: school.clone().into(),
                        group: class.map(Into::into),
                    },
                );
            }
        }

        // A deleted membership deletes the enrollment unless the learner still has one at
        // that school (a class move is a delete of the old class and an add of the new).
        let mut seen = HashSet::new();
        for (key, at) in removed {
            if !pushed.contains(&key) && seen.insert(key.clone()) {
                builder.tombstone(at, Entity::Enrollment, key);
            } else {
                builder.merged(at);
            }
        }
    }
}

/// The persons of the export by what became of them, for their memberships.
struct Persons<'a> {
    in_file: &'a HashSet<&'a str>,
    deleted: &'a HashSet<&'a str>,
    accepted: &'a HashSet<&'a str>,
}
