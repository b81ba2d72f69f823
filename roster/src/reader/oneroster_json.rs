//! OneRoster JSON: the users collection `{"users": [ … ]}` as a OneRoster REST API returns
//! it, saved to a file by the SAS or a script. It is the first stage of the pipeline for such
//! sites: users are parsed one at a time and pushed into the [`RosterBuilder`], so memory
//! grows with the roster, not with the file's text.
//!
//! Users with the role `student` (the 1.1 `role`, or a `roles` entry of 1.2) become students;
//! `identifier` is the national id. Each school in a student's `orgs` (and in its student
//! `roles`) is an implied school, keyed by the org's sourcedId because the collection names
//! nothing else about it, and the student's enrollment there. The collection names no
//! classes, so there are no groups. A `tobedeleted` student becomes a tombstone.
//!
//! Fields that OneRoster does not define are reported once per file as warnings: a SAS that
//! misspells `identifier` sends students without national ids, and the school should hear
//! why. Teachers, guardians and other roles are skipped.
//!
//! The agent's OneRoster REST source reads the same collection a page at a time
//! ([`read_page`]) into one builder, after reading the service's `orgs` into an
//! [`OrgDirectory`]: a REST service's org ids are its own, and only the org's `identifier`
//! (the skolenummer) and `metadata` tell which school it is.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use skolebro_protocol::{Enrollment, Entity, Gender, School, Student};

use super::encoding::Text;
use super::error::{open, ReadError, ReadErrorKind};
use super::format::Format;
use crate::deviation::{shown, Code, Position, Severity};
use crate::validate::{Admission, Provenance, RosterBuilder, StudentRow};

/// The longest single user record read. A user is a few hundred bytes; a longer one is a
/// broken or hostile file, refused before one string fills memory.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// At most this many distinct unknown field names are reported per file; a file with more
/// is not a OneRoster file at all, and the report would drown the real problems.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// The fields of the OneRoster 1.1 and 1.2 user object (and the GUIDRef `href`/`type`).
const KNOWN_FIELDS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "metadata",
    "username",
    "userIds",
    "enabledUser",
    "givenName",
    "familyName",
    "middleName",
    "role",
    "roles",
    "identifier",
    "email",
    "sms",
    "phone",
    "agents",
    "orgs",
    "grades",
    "password",
    "userMasterIdentifier",
    "preferredFirstName",
    "preferredMiddleName",
    "preferredLastName",
    "preferredGivenName",
    "preferredFamilyName",
    "pronouns",
    "primaryOrg",
    "userProfiles",
    "resourceSourcedIds",
    "resources",
    "demographics",
    "href",
    "type",
];

/// Reads a OneRoster JSON users collection into the builder.
///
/// Fails only when the file is not JSON, is not a users collection, or holds a user record
/// longer than [`MAX_RECORD_BYTES`]; the error names the line. Problems with single users are
/// deviations.
pub fn read(path: &Path, builder: &mut RosterBuilder) -> Result<(), ReadError> {
    let input = Text::new(open(path)?).map_err(|e| ReadError::new(path, e.into()))?;
    builder.begin_file(&path.display().to_string());
    read_users(
        input,
        path,
        builder,
        &OrgDirectory::default(),
        SchoolLinks::Enroll,
    )
    .map(|_| ())
}

/// Reads one page of a users collection, as a OneRoster REST service answers it, into the
/// builder; `name` says where it came from in deviations and errors (`users page 3`). Org
/// references are resolved through `orgs`; an org it does not know is keyed by its
/// sourcedId, as in a file. Returns how many user records the page held, so the caller can
/// tell a short page from the end of the collection.
pub fn read_page(
    input: impl Read,
    name: &str,
    builder: &mut RosterBuilder,
    orgs: &OrgDirectory,
) -> Result<u64, ReadError> {
    builder.begin_file(name);
    read_users(input, Path::new(name), builder, orgs, SchoolLinks::Enroll)
}

/// What a student's schools (its `orgs`) make besides the implied school.
pub(super) enum SchoolLinks<'l> {
    /// An enrollment at each, keyed `student@skolenummer`: a users collection read alone
    /// names no classes, so this is the only enrollment the student gets.
    Enroll,
    /// Noted, `(where, student, skolenummer)`, for a reader that reads the enrollments
    /// collection afterwards and makes an enrollment only where it names none.
    Defer(&'l mut Vec<(Position, String, String)>),
    /// Nothing: a delta's student restates a school the full pull already linked.
    Skip,
}

pub(super) fn read_users(
    input: impl Read,
    path: &Path,
    builder: &mut RosterBuilder,
    orgs: &OrgDirectory,
    links: SchoolLinks<'_>,
) -> Result<u64, ReadError> {
    let guard = Rc::new(Guard::default());
    let input = Guarded {
        inner: input,
        guard: Rc::clone(&guard),
    };
    let mut users = Users {
        builder,
        orgs,
        links,
        guard: Rc::clone(&guard),
        record: 0,
        reported: HashSet::new(),
        found: false,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    DocumentSeed(&mut users)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| json_error(path, &e, &guard))?;
    if !users.found {
        return Err(syntax(
            path,
            "the document has no `users` collection".to_owned(),
        ));
    }
    Ok(users.record)
}

/// The schools of a OneRoster service's `orgs` collection, by sourcedId: a user's org
/// reference names only the sourcedId, which a REST service makes up itself, while the
/// site check and central know a school by its skolenummer (the org's `identifier`) and
/// organisasjonsnummer.
#[derive(Debug, Clone, Default)]
pub struct OrgDirectory {
    schools: HashMap<String, School>,
    /// The orgs that are not schools, sourcedId -> type, so a class or enrollment naming one
    /// is told what it names.
    others: HashMap<String, String>,
}

impl OrgDirectory {
    /// Reads one page of an `orgs` collection (`{"orgs": [ … ]}`); orgs that are not
    /// schools (districts, departments) are skipped. Returns how many orgs the page held.
    pub fn read_page(&mut self, input: impl Read, name: &str) -> Result<u64, ReadError> {
        #[derive(serde::Deserialize)]
        struct Page {
            orgs: Vec<Value>,
        }
        let page: Page = serde_json::from_reader(input).map_err(|_| {
            syntax(
                Path::new(name),
                "not a OneRoster orgs collection".to_owned(),
            )
        })?;
        let count = page.orgs.len() as u64;
        for org in page.orgs {
            let kind = text(org.get("type"));
            let is_school = kind
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case("school"));
            let Some(id) = text(org.get("sourcedId")) else {
                continue;
            };
            if !is_school {
                self.others.insert(id, kind.unwrap_or_default());
                continue;
            }
            let metadata =
                |field: &str| text(org.get("metadata").and_then(|m| m.get(field))).map(Into::into);
            let skolenummer = text(org.get("identifier")).unwrap_or_else(|| id.clone());
            let school = School {
                name: text(org.get("name"))
                    .unwrap_or_else(|| skolenummer.clone())
                    .into(),
                skolenummer: skolenummer.into(),
                organisasjonsnummer: metadata("organisasjonsnummer"),
                kommunenummer: metadata("kommunenummer"),
                fylkesnummer: metadata("fylkesnummer"),
            };
            self.schools.insert(id, school);
        }
        Ok(count)
    }

    /// How many schools are known.
    pub fn len(&self) -> usize {
        self.schools.len()
    }

    /// True when no school is known.
    pub fn is_empty(&self) -> bool {
        self.schools.is_empty()
    }

    /// Each school's sourcedId and skolenummer.
    pub(super) fn skolenummer(&self) -> impl Iterator<Item = (&str, &str)> {
        self.schools
            .iter()
            .map(|(id, school)| (id.as_str(), school.skolenummer.as_str()))
    }

    /// Each org that is not a school, with its type.
    pub(super) fn others(&self) -> impl Iterator<Item = (&str, &str)> {
        self.others
            .iter()
            .map(|(id, kind)| (id.as_str(), kind.as_str()))
    }

    /// The school an org reference names: the directory's, or one keyed by the id itself.
    fn school(&self, id: &str) -> School {
        self.schools.get(id).cloned().unwrap_or_else(|| School {
            skolenummer: id.into(),
            organisasjonsnummer: None,
            kommunenummer: None,
            fylkesnummer: None,
            name: id.into(),
        })
    }
}

pub(super) fn syntax(path: &Path, reason: String) -> ReadError {
    ReadError::new(
        path,
        ReadErrorKind::Syntax {
            format: Format::OneRosterJson,
            reason,
        },
    )
}

/// Turns a parser error into a read error with its line. Type errors are told in words of
/// our own: serde_json's would quote the offending value, which may be a national id.
fn json_error(path: &Path, error: &serde_json::Error, guard: &Guard) -> ReadError {
    use serde_json::error::Category;
    let reason = if guard.tripped.get() {
        format!("a user record is longer than {MAX_RECORD_BYTES} bytes")
    } else {
        match error.classify() {
            Category::Io => {
                let io = std::io::Error::other(error.to_string());
                return ReadError::new(path, io.into());
            }
            Category::Data => {
                "not a OneRoster users collection: expected {\"users\": [ … ]}".to_owned()
            }
            Category::Syntax | Category::Eof => {
                let message = error.to_string();
                let message = match message.rfind(" at line ") {
                    Some(end) => message[..end].to_owned(),
                    None => message,
                };
                match error.column() {
                    0 => message,
                    column => format!("{message} (column {column})"),
                }
            }
        }
    };
    let error_line = error.line() as u64;
    let read_error = syntax(path, reason);
    if error_line > 0 {
        read_error.at_line(error_line)
    } else {
        read_error
    }
}

/// Bounds how much text one user record may span. The count is reset before each user and
/// each top-level key, and paused while a value we skip is skipped (skipping stores
/// nothing).
#[derive(Default)]
struct Guard {
    count: Cell<u64>,
    paused: Cell<bool>,
    tripped: Cell<bool>,
}

impl Guard {
    fn reset(&self) {
        self.count.set(0);
    }
}

/// The file's bytes, counted against the [`Guard`].
struct Guarded<R> {
    inner: R,
    guard: Rc<Guard>,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.guard.paused.get() {
            let count = self.guard.count.get() + n as u64;
            self.guard.count.set(count);
            if count > MAX_RECORD_BYTES {
                self.guard.tripped.set(true);
                return Err(std::io::Error::other("record too long"));
            }
        }
        Ok(n)
    }
}

/// Turns user objects into builder calls, one at a time.
struct Users<'b> {
    builder: &'b mut RosterBuilder,
    orgs: &'b OrgDirectory,
    links: SchoolLinks<'b>,
    guard: Rc<Guard>,
    /// 1-based index of the last user read.
    record: u64,
    /// Unknown field names already reported.
    reported: HashSet<String>,
    /// True once a users collection was seen.
    found: bool,
}

/// The whole document: an object whose `users` (or single `user`) is read, other keys
/// skipped; or, leniently, a bare array of users.
struct DocumentSeed<'u, 'b>(&'u mut Users<'b>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a OneRoster users collection")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let users = self.0;
        loop {
            users.guard.reset();
            let Some(key) = map.next_key::<String>()? else {
                break;
            };
            match key.as_str() {
                "users" => map.next_value_seed(UsersSeed(&mut *users))?,
                "user" => {
                    users.found = true;
                    users.guard.reset();
                    let value: Value = map.next_value()?;
                    users.user(value);
                }
                _ => {
                    users.guard.paused.set(true);
                    let skipped = map.next_value::<IgnoredAny>();
                    users.guard.paused.set(false);
                    skipped?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        UsersSeed(self.0).visit_seq(seq)
    }
}

/// The `users` array, read element by element.
struct UsersSeed<'u, 'b>(&'u mut Users<'b>);

impl<'de> DeserializeSeed<'de> for UsersSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let users = self.0;
        users.found = true;
        loop {
            users.guard.reset();
            let Some(value) = seq.next_element::<Value>()? else {
                break;
            };
            users.user(value);
        }
        Ok(())
    }
}

impl Users<'_> {
    /// Handles one user object.
    fn user(&mut self, value: Value) {
        self.record += 1;
        let at = Position::Record(self.record);
        self.builder.record_seen(at);
        let Value::Object(user) = value else {
            let detail = "the entry is not a JSON object; it is left out".to_owned();
            self.builder
                .deviation(at, Code::MissingRequired, Severity::Error, detail);
            return;
        };
        self.report_unknown_fields(at, &user);
        if !is_student(&user) {
            self.builder.outside_roster(at);
            return;
        }
        let schools: Vec<School> = schools(&user)
            .iter()
            .map(|org| self.orgs.school(org))
            .collect();
        let Some(id) = text(user.get("sourcedId")) else {
            let detail = "sourcedId is empty; the user is left out".to_owned();
            self.builder
                .deviation(at, Code::MissingRequired, Severity::Error, detail);
            return;
        };
        let deleted =
            text(user.get("status")).is_some_and(|s| s.eq_ignore_ascii_case("tobedeleted"));
        if deleted {
            for school in schools {
                self.builder.tombstone(
                    at,
                    Entity::Enrollment,
                    enrollment_key(&id, &school.skolenummer),
                );
            }
            self.builder.tombstone(at, Entity::Student, id);
            return;
        }

        let mut name = |field: &str| {
            text(user.get(field)).unwrap_or_else(|| {
                let detail = format!("{field} is empty");
                self.builder
                    .deviation(at, Code::MissingRequired, Severity::Error, detail);
                String::new()
            })
        };
        let given_name = name("givenName");
        let family_name = name("familyName");
        let student = Student {
            source_key: id.clone().into(),
            national_id: None,
            username: text(user.get("username")).map(Into::into),
            given_name: given_name.into(),
            middle_name: text(user.get("middleName")).map(Into::into),
            family_name: family_name.into(),
            birth_date: None,
            gender: Gender::Unknown,
            email: text(user.get("email")).map(Into::into),
        };
        let admission = self.builder.student(
            at,
            StudentRow {
                student,
                national_id: text(user.get("identifier")).map(Into::into),
                key_is_national_id: false,
            },
        );
        // A repeat or a rejected student implies nothing further: the first one's school
        // and enrollment stand, and repeating them would report one fault twice.
        if admission != Admission::Accepted {
            return;
        }
        if schools.is_empty() {
            let others = other_orgs(&user);
            let detail = if others.is_empty() {
                "the student names no school in `orgs`; no enrollment is made".to_owned()
            } else {
                format!(
                    "the student's `orgs` name no school, only {}; no enrollment is made",
                    others.join(", ")
                )
            };
            self.builder
                .deviation(at, Code::MissingRequired, Severity::Warning, detail);
        }
        for school in schools {
            let key = school.skolenummer.clone();
            self.builder.school(at, school, Provenance::Implied);
            match &mut self.links {
                SchoolLinks::Enroll => self.builder.enrollment(
                    at,
                    Enrollment {
                        source_key: enrollment_key(&id, &key).into(),
                        student: id.clone().into(),
                        school: key,
                        group: None,
                    },
                ),
                SchoolLinks::Defer(links) => links.push((at, id.clone(), key.into())),
                SchoolLinks::Skip => {}
            }
        }
    }

    /// Reports each field name OneRoster does not define, once per file, at the first user
    /// that has it.
    fn report_unknown_fields(&mut self, at: Position, user: &Map<String, Value>) {
        for field in user.keys() {
            if KNOWN_FIELDS.contains(&field.as_str())
                || self.reported.len() >= MAX_UNKNOWN_FIELDS
                || !self.reported.insert(field.clone())
            {
                continue;
            }
            let hint = KNOWN_FIELDS
                .iter()
                .find(|known| is_near(field, known))
                .map(|known| format!(" (did you mean `{known}`?)"))
                .unwrap_or_default();
            let detail = format!(
                "field `{}` is not a OneRoster user field; it is ignored{hint}",
                shown(field)
            );
            self.builder
                .deviation(at, Code::UnknownField, Severity::Warning, detail);
        }
    }
}

fn enrollment_key(student: &str, school: &str) -> String {
    format!("{student}@{school}")
}

/// True for a student: `role` is `student`, or one of the 1.2 `roles` is.
fn is_student(user: &Map<String, Value>) -> bool {
    let student =
        |value: Option<&Value>| text(value).is_some_and(|r| r.eq_ignore_ascii_case("student"));
    student(user.get("role"))
        || user
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().any(|r| student(r.get("role"))))
}

/// The schools a student is at: `orgs` entries, and the orgs of its 1.2 student `roles`,
/// each once. An org reference typed `school` or (as the REST binding's GUIDRef has it)
/// `org`, or untyped, counts; `district` and other owners do not.
fn schools(user: &Map<String, Value>) -> Vec<String> {
    let school = |org: &Value| -> Option<String> {
        let kind = text(org.get("type"));
        let is_school = kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("school") || k.eq_ignore_ascii_case("org"));
        is_school.then(|| text(org.get("sourcedId"))).flatten()
    };
    let from_orgs = user
        .get("orgs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(school);
    let from_roles = user
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|role| text(role.get("role")).is_some_and(|r| r.eq_ignore_ascii_case("student")))
        .filter_map(|role| role.get("org").and_then(school));
    let mut schools: Vec<String> = Vec::new();
    for school in from_orgs.chain(from_roles) {
        if !schools.contains(&school) {
            schools.push(school);
        }
    }
    schools
}

/// The orgs a student names that are not schools, as `id (type)`: a student placed in a
/// department is told apart from one with no org at all.
fn other_orgs(user: &Map<String, Value>) -> Vec<String> {
    user.get("orgs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|org| {
            let id = text(org.get("sourcedId"))?;
            let kind = text(org.get("type"))?;
            Some(format!("{id} (type `{kind}`)"))
        })
        .collect()
}

/// A string field, trimmed; numbers are taken as written (a SAS may send ids unquoted).
pub(super) fn text(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// True when `field` is one or two edits from `known`: a likely misspelling.
fn is_near(field: &str, known: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (field.chars().collect(), known.chars().collect());
    if a.len() < 5 || a.len().abs_diff(b.len()) > 2 || a.len() > 64 {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(!ca.eq_ignore_ascii_case(cb));
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::validate::{Tombstone, Validated};

    const CLEAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/clean/users.json"
    );
    const FAULTY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/faulty/users.json"
    );

    fn read_path(path: &Path) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read(path, &mut builder)?;
        Ok(builder.finish())
    }

    fn read_text(text: &[u8]) -> Result<Validated, ReadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        std::fs::write(&path, text).unwrap();
        read_path(&path)
    }

    fn count(validated: &Validated, code: Code) -> usize {
        validated
            .deviations
            .iter()
            .filter(|d| d.code == code)
            .count()
    }

    #[test]
    fn the_clean_users_collection_gives_students_their_school_and_no_groups() {
        let validated = read_path(Path::new(CLEAN)).unwrap();
        assert_eq!(validated.deviations, vec![]);
        let roster = &validated.roster;
        assert_eq!(roster.students.len(), 60);
        assert_eq!(roster.schools.len(), 1);
        assert_eq!(roster.groups.len(), 0);
        assert_eq!(roster.enrollments.len(), 60);
        assert_eq!(roster.schools[0].skolenummer, "46505");
        assert!(roster.students.iter().all(|s| s.national_id.is_some()));
        assert_eq!(roster.enrollments[0].group, None);
    }

    #[test]
    fn the_faulty_users_collection_reports_each_fault() {
        let validated = read_path(Path::new(FAULTY)).unwrap();
        assert_eq!(validated.roster.students.len(), 80);
        assert_eq!(validated.roster.schools.len(), 1);
        assert_eq!(count(&validated, Code::InvalidNationalId), 4);
        assert_eq!(count(&validated, Code::DuplicateNationalId), 1);
        assert!(count(&validated, Code::DuplicateRecord) >= 1);
        let others = validated.deviations.iter().filter(|d| {
            !matches!(
                d.code,
                Code::InvalidNationalId | Code::DuplicateNationalId | Code::DuplicateRecord
            )
        });
        assert_eq!(others.count(), 0, "{:#?}", validated.deviations);
        assert!(validated
            .deviations
            .iter()
            .all(|d| matches!(d.position, Position::Record(_))));
    }

    #[test]
    fn an_unknown_field_is_one_warning_however_many_users_have_it() {
        let validated = read_text(
            br#"{"users": [
                {"sourcedId": "u1", "role": "student", "givenName": "Oskar", "familyName": "Nilsen",
                 "identfier": "16881774198", "orgs": [{"sourcedId": "46505", "type": "school"}]},
                {"sourcedId": "u2", "role": "student", "givenName": "Thea", "familyName": "Maehle",
                 "identfier": "25811885633", "orgs": [{"sourcedId": "46505", "type": "school"}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(validated.roster.students.len(), 2);
        assert_eq!(validated.deviations.len(), 1, "{:#?}", validated.deviations);
        let warning = &validated.deviations[0];
        assert_eq!(warning.code, Code::UnknownField);
        assert_eq!(warning.severity, Severity::Warning);
        assert_eq!(warning.position, Position::Record(1));
        assert!(
            warning.detail.contains("did you mean `identifier`"),
            "{}",
            warning.detail
        );
    }

    #[test]
    fn malformed_json_is_a_syntax_error_with_its_line() {
        let error = read_text(b"{\"users\": [\n  {\"sourcedId\": \"u1\",\n  ]\n}").unwrap_err();
        assert!(matches!(
            error.kind,
            ReadErrorKind::Syntax {
                format: Format::OneRosterJson,
                ..
            }
        ));
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn a_type_error_does_not_quote_the_value() {
        let error = read_text(br#"{"users": "16881774198"}"#).unwrap_err();
        assert!(!error.to_string().contains("16881774198"), "{error}");
    }

    #[test]
    fn a_document_without_users_is_refused() {
        let error = read_text(br#"{"orgs": []}"#).unwrap_err();
        assert!(matches!(error.kind, ReadErrorKind::Syntax { .. }));
    }

    #[test]
    fn a_user_longer_than_the_record_limit_is_refused() {
        let mut text = br#"{"users": [{"sourcedId": ""#.to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES as usize + 10));
        text.extend_from_slice(br#""}]}"#);
        let error = read_text(&text).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }

    #[test]
    fn large_values_outside_the_users_are_skipped_without_limit() {
        let mut text = br#"{"metadata": ""#.to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES as usize + 10));
        text.extend_from_slice(br#"", "users": []}"#);
        let validated = read_text(&text).unwrap();
        assert!(validated.roster.students.is_empty());
    }

    #[test]
    fn a_deleted_student_becomes_tombstones_for_it_and_its_enrollment() {
        let validated = read_text(
            br#"{"users": [{"sourcedId": "u1", "status": "tobedeleted", "role": "student",
                "givenName": "Oskar", "familyName": "Nilsen", "orgs": [{"sourcedId": "46505", "type": "school"}]}]}"#,
        )
        .unwrap();
        assert!(validated.roster.students.is_empty());
        assert_eq!(
            validated.tombstones,
            vec![
                Tombstone {
                    entity: Entity::Enrollment,
                    key: "u1@46505".into()
                },
                Tombstone {
                    entity: Entity::Student,
                    key: "u1".into()
                },
            ]
        );
    }

    #[test]
    fn one_roster_1_2_roles_make_a_student_and_name_its_school() {
        let validated = read_text(
            br#"{"users": [
                {"sourcedId": "u1", "givenName": "Oskar", "familyName": "Nilsen", "identifier": "16881774198",
                 "roles": [{"roleType": "primary", "role": "student", "org": {"href": "x", "sourcedId": "46505", "type": "org"}}]},
                {"sourcedId": "t1", "givenName": "Kari", "familyName": "Laerer",
                 "roles": [{"roleType": "primary", "role": "teacher", "org": {"sourcedId": "46505", "type": "org"}}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(validated.deviations, vec![]);
        assert_eq!(validated.roster.students.len(), 1);
        assert_eq!(validated.roster.enrollments[0].source_key, "u1@46505");
    }

    #[test]
    fn district_orgs_are_not_schools() {
        let validated = read_text(
            br#"[{"sourcedId": "u1", "role": "student", "givenName": "Oskar", "familyName": "Nilsen",
                 "orgs": [{"sourcedId": "kommune-4601", "type": "district"}, {"sourcedId": "46505", "type": "school"}]}]"#,
        )
        .unwrap();
        assert_eq!(validated.roster.schools.len(), 1);
        assert_eq!(validated.roster.schools[0].skolenummer, "46505");
    }

    #[test]
    fn a_student_without_a_name_is_reported_without_showing_its_id() {
        let validated = read_text(
            br#"{"users": [{"sourcedId": "u1", "role": "student", "givenName": "Oskar",
                "identifier": "16881774198", "orgs": [{"sourcedId": "46505"}]}, 7]}"#,
        )
        .unwrap();
        assert_eq!(count(&validated, Code::MissingRequired), 2);
        assert!(validated
            .deviations
            .iter()
            .all(|d| !d.detail.contains("16881774198") && !d.detail.contains("Oskar")));
    }

    #[test]
    fn a_student_in_a_department_only_is_told_so_not_that_it_names_no_org() {
        let v = read_text(
            br#"{"users": [{"sourcedId": "u1", "role": "student", "givenName": "Oskar",
                "familyName": "Nilsen", "orgs": [{"sourcedId": "d1", "type": "department"}]}]}"#,
        )
        .unwrap();
        assert_eq!(v.deviations.len(), 1);
        assert!(
            v.deviations[0]
                .detail
                .contains("only d1 (type `department`)"),
            "{:?}",
            v.deviations
        );
    }

    #[test]
    fn pages_read_through_an_org_directory_name_schools_by_their_skolenummer() {
        let mut orgs = OrgDirectory::default();
        let listed = orgs
            .read_page(
                &br#"{"orgs": [
                    {"sourcedId": "9f1c", "type": "school", "name": "Fana skule", "identifier": "46505",
                     "metadata": {"kommunenummer": "4601", "organisasjonsnummer": "974600000"}},
                    {"sourcedId": "d1", "type": "district", "name": "Bergen"}
                ]}"#[..],
                "orgs page 1",
            )
            .unwrap();
        assert_eq!((listed, orgs.len()), (2, 1));
        let mut builder = RosterBuilder::new(Default::default());
        for (page, user) in [("u1", "16881774198"), ("u2", "25811885633")]
            .iter()
            .enumerate()
        {
            let text = format!(
                r#"{{"users": [{{"sourcedId": "{}", "role": "student", "givenName": "Oskar",
                    "familyName": "Nilsen", "identifier": "{}",
                    "orgs": [{{"sourcedId": "9f1c", "type": "org"}}]}}]}}"#,
                user.0, user.1
            );
            let name = format!("users page {}", page + 1);
            assert_eq!(
                read_page(text.as_bytes(), &name, &mut builder, &orgs).unwrap(),
                1
            );
        }
        let validated = builder.finish();
        assert_eq!(validated.deviations, vec![]);
        assert_eq!(validated.roster.schools.len(), 1);
        let school = &validated.roster.schools[0];
        assert_eq!(school.skolenummer, "46505");
        assert_eq!(school.kommunenummer.as_deref(), Some("4601"));
        assert_eq!(validated.roster.enrollments[1].source_key, "u2@46505");
    }

    #[test]
    fn a_page_that_is_not_a_users_collection_names_the_page() {
        let mut builder = RosterBuilder::new(Default::default());
        let error = read_page(
            &b"{\"users\": [{"[..],
            "users page 37",
            &mut builder,
            &OrgDirectory::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("users page 37"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_as_users_json_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_text(&bytes);
        }

        #[test]
        fn arbitrary_text_after_a_valid_opening_never_panics(tail in "[\\[\\]{}\",:a-zA-Z0-9 .-]{0,400}") {
            let mut text = br#"{"users": [{"sourcedId": "u1", "role": "student", "#.to_vec();
            text.extend_from_slice(tail.as_bytes());
            let _ = read_text(&text);
        }
    }
}
