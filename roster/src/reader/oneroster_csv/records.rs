//! The member files that become roster records: `orgs.csv` schools, `classes.csv`
//! homerooms, `users.csv` students and `enrollments.csv` enrollments, each row pushed into
//! the [`RosterBuilder`] (or a tombstone, in delta mode) with the line it came from. The
//! mapping of a class and of an enrollment ([`class`], [`enrollment`]) takes the fields, not
//! the row, so the REST reader (`reader::oneroster_rest`) maps a page's objects through the
//! same code.

use std::collections::HashMap;
use std::io::BufRead;

use compact_str::CompactString;

use skolebro_protocol::{Enrollment, Entity, Gender, Group, School, Student};

use super::manifest::{is_deletion, Mode};
use super::state::State;
use crate::deviation::{shown_key, Code, Position, Severity};
use crate::reader::error::ReadError;
use crate::reader::table::{Row, Table};
use crate::validate::{Provenance, RosterBuilder, StudentRow};

/// Reports a row with fewer fields than its header; the missing ones read as empty.
pub(super) fn report_short(builder: &mut RosterBuilder, row: &Row<'_>) {
    if let Some((found, width)) = row.short() {
        let detail = format!(
            "the row has {found} of the header's {width} fields; the missing ones are read as empty"
        );
        builder.deviation(
            Position::Line(row.line),
            Code::ShortRow,
            Severity::Warning,
            detail,
        );
    }
}

fn missing(builder: &mut RosterBuilder, at: Position, field: &str, what: &str) {
    let detail = format!("{field} is empty; the {what} is left out");
    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
}

struct OrgRow {
    line: u64,
    sourced_id: String,
    kind: String,
    identifier: Option<String>,
    name: Option<String>,
    parent: Option<String>,
    deleted: bool,
}

/// Reads `orgs.csv`. Schools are pushed after the whole file is read, since a school's
/// municipality may come after it.
pub(super) fn read_orgs<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let kind = table.require("type", &["type"])?;
    let name = table.column(&["name"]);
    let identifier = table.column(&["identifier"]);
    let parent = table.column(&["parentSourcedId"]);
    let status = table.column(&["status"]);
    let mut orgs = Vec::new();
    while let Some(row) = table.next_row()? {
        builder.record_seen(Position::Line(row.line));
        report_short(builder, &row);
        let Some(id) = row.text(Some(sourced_id)) else {
            missing(builder, Position::Line(row.line), "sourcedId", "org");
            continue;
        };
        orgs.push(OrgRow {
            line: row.line,
            sourced_id: id.into(),
            kind: row.text(Some(kind)).unwrap_or_default().into(),
            identifier: row.text(identifier).map(Into::into),
            name: row.text(name).map(Into::into),
            parent: row.text(parent).map(Into::into),
            deleted: is_deletion(&row, status, mode),
        });
    }
    let identifiers: HashMap<&str, (&str, Option<&str>)> = orgs
        .iter()
        .map(|o| {
            (
                o.sourced_id.as_str(),
                (o.kind.as_str(), o.identifier.as_deref()),
            )
        })
        .collect();
    for org in &orgs {
        if !org.kind.eq_ignore_ascii_case("school") {
            // A district or department: what a school's numbers come from, no record.
            builder.outside_roster(Position::Line(org.line));
            state
                .other_orgs
                .insert(org.sourced_id.clone(), org.kind.clone());
            continue;
        }
        let skolenummer = org
            .identifier
            .clone()
            .unwrap_or_else(|| org.sourced_id.clone());
        state
            .skolenummer
            .insert(org.sourced_id.clone(), skolenummer.clone());
        if org.deleted {
            builder.tombstone(Position::Line(org.line), Entity::School, skolenummer);
            continue;
        }
        let kommunenummer = org
            .parent
            .as_deref()
            .and_then(|p| identifiers.get(p))
            .filter(|(kind, _)| !kind.eq_ignore_ascii_case("school"))
            .and_then(|(_, identifier)| *identifier)
            .filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned);
        let school = School {
            name: org
                .name
                .clone()
                .unwrap_or_else(|| skolenummer.clone())
                .into(),
            skolenummer: skolenummer.into(),
            organisasjonsnummer: None,
            fylkesnummer: kommunenummer
                .as_ref()
                .map(|k| k[..2].to_owned())
                .map(Into::into),
            kommunenummer: kommunenummer.map(Into::into),
        };
        builder.school(Position::Line(org.line), school, Provenance::Stated);
    }
    Ok(())
}

/// Which reader's field names a deviation uses: a `classes.csv` column or a REST object's
/// field, so the school is told where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Csv,
    Rest,
}

impl Dialect {
    fn school(self) -> &'static str {
        match self {
            Dialect::Csv => "schoolSourcedId",
            Dialect::Rest => "school",
        }
    }

    fn user(self) -> &'static str {
        match self {
            Dialect::Csv => "userSourcedId",
            Dialect::Rest => "user",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Dialect::Csv => "classSourcedId",
            Dialect::Rest => "class",
        }
    }
}

/// A class as a reader found it, a `classes.csv` row or a REST `classes` object, for the
/// one mapping of OneRoster classes onto basisgrupper ([`class`]).
pub(crate) struct ClassFields {
    pub(crate) id: Option<CompactString>,
    pub(crate) class_type: Option<String>,
    pub(crate) school: Option<CompactString>,
    /// `title`, else `classCode`: the group's name.
    pub(crate) name: Option<CompactString>,
    pub(crate) grades: Option<CompactString>,
    pub(crate) school_year: Option<String>,
    /// `tobedeleted` in a delta.
    pub(crate) deleted: bool,
}

/// Maps one class: a homeroom becomes a group; every class is remembered so enrollments in
/// scheduled classes can be told apart from enrollments in unknown ones.
pub(crate) fn class(
    fields: ClassFields,
    at: Position,
    dialect: Dialect,
    state: &mut State,
    builder: &mut RosterBuilder,
) {
    let Some(id) = fields.id else {
        missing(builder, at, "sourcedId", "class");
        return;
    };
    let kind = fields.class_type;
    let homeroom = kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("homeroom"));
    if fields.deleted {
        if homeroom || kind.is_none() {
            builder.tombstone(at, Entity::Group, id.clone().into());
        } else {
            builder.outside_roster(at);
        }
        state.homeroom.insert(id.into(), homeroom);
        return;
    }
    state.homeroom.insert(id.clone().into(), homeroom);
    if !homeroom {
        // A scheduled class: remembered above, not a roster record.
        builder.outside_roster(at);
        return;
    }
    let Some(school_id) = fields.school else {
        missing(builder, at, dialect.school(), "class");
        return;
    };
    if let Some(why) = state.not_a_school(&school_id) {
        let detail = format!(
            "homeroom {id}: {} names {why}; it is left out",
            dialect.school()
        );
        builder.deviation(at, Code::DanglingReference, Severity::Error, detail);
        return;
    }
    let group = Group {
        name: fields.name.unwrap_or_else(|| id.clone()),
        source_key: id,
        grade: fields.grades,
        school: state.school(school_id.into()).into(),
        school_year: fields.school_year.map(Into::into),
    };
    builder.group(at, group, Provenance::Stated);
}

/// Reads `classes.csv` through [`class`].
pub(super) fn read_classes<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let class_type = table.require("classType", &["classType"])?;
    let school = table.require("schoolSourcedId", &["schoolSourcedId"])?;
    let title = table.column(&["title"]);
    let class_code = table.column(&["classCode"]);
    let grades = table.column(&["grades"]);
    let terms = table.column(&["termSourcedIds"]);
    let status = table.column(&["status"]);
    while let Some(row) = table.next_row()? {
        builder.record_seen(Position::Line(row.line));
        report_short(builder, &row);
        let school_year = row.get(terms).and_then(|terms| {
            terms
                .split(',')
                .find_map(|term| state.school_year(term.trim()))
        });
        let fields = ClassFields {
            id: row.text(Some(sourced_id)),
            class_type: row.get(Some(class_type)).map(Into::into),
            school: row.text(Some(school)),
            name: row.text(title).or_else(|| row.text(class_code)),
            grades: row.text(grades),
            school_year,
            deleted: is_deletion(&row, status, mode),
        };
        class(
            fields,
            Position::Line(row.line),
            Dialect::Csv,
            state,
            builder,
        );
    }
    Ok(())
}

/// Reads `users.csv`: students become records (or tombstones in delta mode); other users
/// are skipped. The role is the 1.1 `role` column or, in 1.2, `roles.csv`.
pub(super) fn read_users<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let given_name = table.require("givenName", &["givenName"])?;
    let family_name = table.require("familyName", &["familyName"])?;
    let role = if state.has_roles {
        table.column(&["role"])
    } else {
        Some(table.require("role", &["role"])?)
    };
    let identifier = table.column(&["identifier"]);
    let username = table.column(&["username"]);
    let middle_name = table.column(&["middleName"]);
    let email = table.column(&["email"]);
    let status = table.column(&["status"]);
    let orgs = table.column(&["orgSourcedIds"]);
    let primary_org = table.column(&["primaryOrgSourcedId"]);
    while let Some(row) = table.next_row()? {
        builder.record_seen(Position::Line(row.line));
        report_short(builder, &row);
        let at = Position::Line(row.line);
        let id = row.text(Some(sourced_id));
        let stated_role = row.get(role);
        let is_student = stated_role
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("student"))
            || id
                .as_ref()
                .is_some_and(|id| state.student_roles.contains(id.as_str()));
        if is_deletion(&row, status, mode) {
            // A deletion may come without its role; only a stated other role rules it out.
            let other = stated_role.is_some()
                || id
                    .as_ref()
                    .is_some_and(|id| state.other_roles.contains(id.as_str()));
            match (id, is_student || !other) {
                (Some(id), true) => builder.tombstone(at, Entity::Student, id.into()),
                (None, true) => missing(builder, at, "sourcedId", "deletion"),
                (_, false) => builder.outside_roster(at),
            }
            continue;
        }
        if !is_student {
            if let (Some(id), Some(role)) = (id, stated_role) {
                state.other_users.insert(id.into(), role.into_owned());
            }
            builder.outside_roster(at);
            continue;
        }
        let Some(id) = id else {
            missing(builder, at, "sourcedId", "user");
            continue;
        };
        let mut name = |column: usize, field: &str| {
            row.text(Some(column)).unwrap_or_else(|| {
                let detail = format!("{field} is empty");
                builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                String::new().into()
            })
        };
        let given_name = name(given_name, "givenName");
        let family_name = name(family_name, "familyName");
        let (gender, birth_date) = state
            .demographics
            .get(id.as_str())
            .copied()
            .unwrap_or((Gender::Unknown, None));
        // A delta's student row states its schools as much as a bulk file's does: the link
        // goes out as an upsert, so a student first seen in a delta is reachable too.
        let stated = row.get(orgs).into_iter().chain(row.get(primary_org));
        let stated: Vec<String> = stated
            .flat_map(|list| {
                list.split(',')
                    .map(|o| o.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .chain(
                state
                    .student_orgs
                    .get(id.as_str())
                    .into_iter()
                    .flatten()
                    .cloned(),
            )
            .collect();
        for org in stated {
            if let Some(skolenummer) = state.skolenummer.get(&org) {
                let link = (at, id.to_string(), skolenummer.clone());
                if !state.school_links.contains(&link) {
                    state.school_links.push(link);
                }
            }
        }
        let student = Student {
            source_key: id,
            national_id: None,
            username: row.text(username),
            given_name,
            middle_name: row.text(middle_name),
            family_name,
            birth_date,
            gender,
            email: row.text(email),
        };
        builder.student(
            at,
            StudentRow {
                student,
                national_id: row.text(identifier),
                key_is_national_id: false,
            },
        );
    }
    Ok(())
}

/// An enrollment as a reader found it, an `enrollments.csv` row or a REST `enrollments`
/// object, for the one mapping onto roster enrollments ([`enrollment`]).
pub(crate) struct EnrollmentFields {
    pub(crate) id: Option<CompactString>,
    pub(crate) class: Option<CompactString>,
    pub(crate) school: Option<CompactString>,
    pub(crate) user: Option<CompactString>,
    pub(crate) role: Option<String>,
    /// `tobedeleted` in a delta.
    pub(crate) deleted: bool,
}

/// Maps one enrollment: a student's enrollment in a homeroom is the student's enrollment
/// at the school, in that basisgruppe. Enrollments in scheduled classes and of teachers are
/// not roster records; one naming an unknown class, school or student goes on, for the
/// builder to report as dangling.
pub(crate) fn enrollment(
    fields: EnrollmentFields,
    at: Position,
    dialect: Dialect,
    state: &mut State,
    builder: &mut RosterBuilder,
) {
    let role = fields.role;
    let deletion = fields.deleted;
    let is_student = role
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("student"));
    // A deletion may come without its role.
    if !(is_student || deletion && role.is_none()) {
        builder.outside_roster(at);
        return;
    }
    let class_id = fields.class;
    // A class the export lists but not as a homeroom; unknown classes go on, so the
    // builder reports them as dangling.
    if class_id
        .as_ref()
        .is_some_and(|c| state.homeroom.get(c.as_str()) == Some(&false))
    {
        builder.outside_roster(at);
        return;
    }
    let Some(id) = fields.id else {
        missing(builder, at, "sourcedId", "enrollment");
        return;
    };
    if deletion {
        builder.tombstone(at, Entity::Enrollment, id.into());
        return;
    }
    let field = if fields.user.is_none() {
        dialect.user()
    } else if fields.school.is_none() {
        dialect.school()
    } else {
        dialect.class()
    };
    let (Some(class_id), Some(school_id), Some(user_id)) = (class_id, fields.school, fields.user)
    else {
        missing(builder, at, field, "enrollment");
        return;
    };
    if let Some(why) = state.not_a_school(&school_id) {
        let detail = format!(
            "enrollment {id}: {} names {why}; it is left out",
            dialect.school()
        );
        builder.deviation(at, Code::DanglingReference, Severity::Error, detail);
        return;
    }
    if let Some(role) = state.other_users.get(user_id.as_str()) {
        let detail = format!(
            "enrollment {id} makes user {} a student, but users.csv gives the user the \
             role `{role}`; it is left out",
            shown_key(&user_id)
        );
        builder.deviation(at, Code::DanglingReference, Severity::Warning, detail);
        return;
    }
    let school = state.school(school_id.into());
    state.enrolled.insert((user_id.to_string(), school.clone()));
    builder.enrollment(
        at,
        Enrollment {
            source_key: id,
            student: user_id,
            school: school.into(),
            group: Some(class_id),
        },
    );
}

/// Reads `enrollments.csv` through [`enrollment`].
pub(super) fn read_enrollments<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let class = table.require("classSourcedId", &["classSourcedId"])?;
    let school = table.require("schoolSourcedId", &["schoolSourcedId"])?;
    let user = table.require("userSourcedId", &["userSourcedId"])?;
    let role = table.require("role", &["role"])?;
    let status = table.column(&["status"]);
    while let Some(row) = table.next_row()? {
        builder.record_seen(Position::Line(row.line));
        report_short(builder, &row);
        let fields = EnrollmentFields {
            id: row.text(Some(sourced_id)),
            class: row.text(Some(class)),
            school: row.text(Some(school)),
            user: row.text(Some(user)),
            role: row.get(Some(role)).map(Into::into),
            deleted: is_deletion(&row, status, mode),
        };
        enrollment(
            fields,
            Position::Line(row.line),
            Dialect::Csv,
            state,
            builder,
        );
    }
    Ok(())
}

/// Gives a student whom only `users.csv` (`orgSourcedIds`, `primaryOrgSourcedId`) or
/// `roles.csv` (`orgSourcedId`) ties to a school an enrollment at that school without a
/// class, keyed `student@skolenummer` as the IMS reader keys them, so that scoped consumers
/// reach the student. A homeroom enrollment at the school makes it unnecessary.
pub(crate) fn link_schools(state: &State, builder: &mut RosterBuilder) {
    for (at, student, school) in &state.school_links {
        if state.enrolled.contains(&(student.clone(), school.clone())) {
            continue;
        }
        builder.enrollment(
            *at,
            Enrollment {
                source_key: format!("{student}@{school}").into(),
                student: student.as_str().into(),
                school: school.as_str().into(),
                group: None,
            },
        );
    }
}
