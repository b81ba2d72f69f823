//! What earlier member files tell later ones: the skolenummer of each org, the school year
//! of each academic session, which classes are homerooms, and the roles and demographics of
//! users. The files that only feed this state (`academicSessions.csv`, `roles.csv`,
//! `demographics.csv`) are read here; the files that become roster records read it.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::Gender;

use super::manifest::{is_deletion, Mode};
use crate::deviation::Position;
use crate::reader::error::ReadError;
use crate::reader::table::Table;

/// How deep `parentSourcedId` chains of academic sessions are followed (terms in semesters
/// in a school year); deeper chains, or cycles, stop there.
const MAX_SESSION_DEPTH: usize = 4;

/// What earlier files tell later ones.
#[derive(Default)]
pub(crate) struct State {
    /// Org sourcedId -> skolenummer, for every school.
    pub(crate) skolenummer: HashMap<String, String>,
    /// Org sourcedId -> type, for the orgs that are not schools (districts, departments), so
    /// a reference to one is reported as what it is, not as a missing school.
    pub(crate) other_orgs: HashMap<String, String>,
    /// User sourcedId -> role, for the users `users.csv` lists with a role other than
    /// student, so an enrollment naming one as a student says so.
    pub(crate) other_users: HashMap<String, String>,
    /// Academic sessions by sourcedId.
    sessions: HashMap<String, Session>,
    /// Class sourcedId -> whether it is a homeroom (basisgruppe).
    pub(crate) homeroom: HashMap<String, bool>,
    /// True when the export has a `roles.csv` (OneRoster 1.2).
    pub(super) has_roles: bool,
    /// Users `roles.csv` makes students.
    pub(super) student_roles: HashSet<String>,
    /// Users `roles.csv` gives some other role only.
    pub(super) other_roles: HashSet<String>,
    /// The orgs `roles.csv` makes a user a student at, by user sourcedId.
    pub(super) student_orgs: HashMap<String, Vec<String>>,
    /// Students a users or roles row ties to a school, with where the user was read: `(at,
    /// user sourcedId, skolenummer)`. Those without a homeroom enrollment there get a school
    /// enrollment, as the JSON and IMS readers give them.
    pub(crate) school_links: Vec<(Position, String, String)>,
    /// `(user sourcedId, skolenummer)` of every student enrollment read.
    pub(crate) enrolled: HashSet<(String, String)>,
    /// Sex and birth date from `demographics.csv`, by user sourcedId.
    pub(super) demographics: HashMap<String, (Gender, Option<CivilDate>)>,
}

impl State {
    /// The skolenummer of the org a record names; an unknown org keeps its sourcedId, so
    /// the builder reports the dangling reference.
    pub(crate) fn school(&self, sourced_id: String) -> String {
        match self.skolenummer.get(&sourced_id) {
            Some(skolenummer) => skolenummer.clone(),
            None => sourced_id,
        }
    }

    /// Why a school reference that is not a school's cannot be used, when the export lists
    /// the org as something else.
    pub(crate) fn not_a_school(&self, sourced_id: &str) -> Option<String> {
        self.other_orgs
            .get(sourced_id)
            .map(|kind| format!("org {sourced_id} is of type `{kind}`, not a school"))
    }

    /// The school year a session belongs to, as the school writes it (`2025/2026`): a
    /// school-year session's title, else its parent's, else built from `schoolYear`.
    pub(crate) fn school_year(&self, sourced_id: &str) -> Option<String> {
        let mut session = self.sessions.get(sourced_id)?;
        for _ in 0..MAX_SESSION_DEPTH {
            if session.is_school_year {
                if let Some(title) = &session.title {
                    return Some(title.clone());
                }
            }
            match session.parent.as_deref().and_then(|p| self.sessions.get(p)) {
                Some(parent) => session = parent,
                None => break,
            }
        }
        let year: u16 = session.school_year.as_deref()?.parse().ok()?;
        Some(format!("{}/{year}", year.checked_sub(1)?))
    }
}

struct Session {
    title: Option<String>,
    is_school_year: bool,
    school_year: Option<String>,
    parent: Option<String>,
}

/// Reads `academicSessions.csv`, for the school year of each class.
pub(super) fn read_sessions<R: BufRead>(
    table: &mut Table<R>,
    state: &mut State,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let title = table.column(&["title"]);
    let kind = table.column(&["type"]);
    let school_year = table.column(&["schoolYear"]);
    let parent = table.column(&["parentSourcedId"]);
    while let Some(row) = table.next_row()? {
        let Some(id) = row.text(Some(sourced_id)) else {
            continue;
        };
        let session = Session {
            title: row.text(title).map(Into::into),
            is_school_year: row
                .get(kind)
                .is_some_and(|k| k.eq_ignore_ascii_case("schoolYear")),
            school_year: row.text(school_year).map(Into::into),
            parent: row.text(parent).map(Into::into),
        };
        state.sessions.insert(id.into(), session);
    }
    Ok(())
}

/// Reads the OneRoster 1.2 `roles.csv`: which users hold the student role.
pub(super) fn read_roles<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
) -> Result<(), ReadError> {
    let user = table.require("userSourcedId", &["userSourcedId"])?;
    let role = table.require("role", &["role"])?;
    let org = table.column(&["orgSourcedId"]);
    let status = table.column(&["status"]);
    state.has_roles = true;
    while let Some(row) = table.next_row()? {
        let Some(id) = row.text(Some(user)) else {
            continue;
        };
        let is_student = row
            .get(Some(role))
            .is_some_and(|r| r.eq_ignore_ascii_case("student"));
        if is_student && !is_deletion(&row, status, mode) {
            if let Some(org) = row.text(org) {
                let orgs = state.student_orgs.entry(id.to_string()).or_default();
                orgs.push(org.into());
            }
            state.student_roles.insert(id.into());
        } else if !is_student {
            state.other_roles.insert(id.into());
        }
    }
    Ok(())
}

/// Reads `demographics.csv` (keyed by the user's sourcedId) for sex and birth date.
pub(super) fn read_demographics<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId", "userSourcedId"])?;
    let sex = table.column(&["sex"]);
    let birth_date = table.column(&["birthDate"]);
    let status = table.column(&["status"]);
    while let Some(row) = table.next_row()? {
        let Some(id) = row.text(Some(sourced_id)) else {
            continue;
        };
        if is_deletion(&row, status, mode) {
            continue;
        }
        let gender = match row.get(sex).map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("male") => Gender::Male,
            Some("female") => Gender::Female,
            _ => Gender::Unknown,
        };
        let birth = row.get(birth_date).and_then(|d| CivilDate::parse_iso(&d));
        state.demographics.insert(id.into(), (gender, birth));
    }
    Ok(())
}
