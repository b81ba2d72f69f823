//! OneRoster CSV (1.1 and 1.2): the set of comma files, in a folder or a `.zip`, that many SAS
//! and LMS products export. It is the first stage of the pipeline for such sites: each member
//! file is streamed row by row through [`Table`] into the [`RosterBuilder`], which validates
//! and resolves references; nothing here holds a file's text in memory.
//!
//! What becomes what:
//! - `orgs.csv` rows of type `school` are schools. The skolenummer is the org's `identifier`
//!   (its sourcedId when that is blank); every school reference elsewhere is a sourcedId and
//!   is translated through that map. A parent org whose identifier is four digits is the
//!   municipality: its kommunenummer, and the first two digits the fylkesnummer.
//! - `classes.csv` rows of class type `homeroom` are basisgrupper; scheduled classes are not.
//! - `users.csv` users with role `student` (1.1 `role` column, or a 1.2 `roles.csv` row) are
//!   students; `identifier` is the national id. `demographics.csv` adds sex and birth date.
//! - `enrollments.csv` student rows in a homeroom class are enrollments.
//!
//! `manifest.csv` says which files are there and whether each is bulk or delta; in delta
//! mode `tobedeleted` rows become tombstones instead of records. Everything else (courses,
//! teachers, results, line items, resources) is of no use to the roster and is not read.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{Enrollment, Entity, Gender, Group, School, Student};

use super::error::{open, ReadError, ReadErrorKind};
use super::format::Format;
use super::table::{Row, Table};
use crate::deviation::{shown, Code, Position, Severity};
use crate::validate::{Provenance, RosterBuilder, StudentRow};

/// The largest member of a `.zip` export read, uncompressed. Real rosters are a few MiB; a
/// bigger member is a broken or hostile archive (a zip bomb), refused before it is inflated.
pub const MAX_MEMBER_BYTES: u64 = 512 << 20;

/// More entries than any OneRoster export has; a bigger central directory is refused.
const MAX_ZIP_ENTRIES: usize = 10_000;

/// How deep `parentSourcedId` chains of academic sessions are followed (terms in semesters
/// in a school year); deeper chains, or cycles, stop there.
const MAX_SESSION_DEPTH: usize = 4;

/// Reads a OneRoster CSV export, a folder or a `.zip`, into the builder.
///
/// Fails only when the export cannot be read: no `users.csv`, a file the manifest lists is
/// missing, a required column is missing, a member is too large, or an unreadable manifest.
pub fn read(path: &Path, builder: &mut RosterBuilder) -> Result<(), ReadError> {
    let mut source = Source::open(path)?;
    let manifest = read_manifest(&mut source, builder)?;
    let mut state = State::default();

    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "orgs", builder)? {
        read_orgs(&mut table, mode, &mut state, builder)?;
    }
    if let Some((_, mut table)) = open_table(&mut source, &manifest, "academicSessions", builder)? {
        read_sessions(&mut table, &mut state)?;
    }
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "classes", builder)? {
        read_classes(&mut table, mode, &mut state, builder)?;
    }
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "roles", builder)? {
        read_roles(&mut table, mode, &mut state)?;
    }
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "demographics", builder)? {
        read_demographics(&mut table, mode, &mut state)?;
    }
    // Users before enrollments: the builder drops the enrollments of a student it rejected
    // only if it has seen the rejection when the enrollment arrives.
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "users", builder)? {
        read_users(&mut table, mode, &state, builder)?;
    }
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "enrollments", builder)? {
        read_enrollments(&mut table, mode, &state, builder)?;
    }
    Ok(())
}

/// How the manifest says a file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The whole set: status is ignored.
    Bulk,
    /// Changes only: `tobedeleted` rows are deletions.
    Delta,
    /// Not sent.
    Absent,
}

/// What `manifest.csv` says. Without a manifest the export is read as 1.1 bulk with
/// whatever files it has.
#[derive(Default)]
struct Manifest {
    /// `file.X` entries by the lower-cased X.
    files: HashMap<String, Mode>,
}

impl Manifest {
    /// The mode of a file: as listed, or bulk when the manifest does not name it.
    fn mode(&self, entity: &str) -> Mode {
        self.files
            .get(&entity.to_ascii_lowercase())
            .copied()
            .unwrap_or(Mode::Bulk)
    }

    /// True when the manifest promises the file, so its absence is an error.
    fn promises(&self, entity: &str) -> bool {
        matches!(
            self.files.get(&entity.to_ascii_lowercase()),
            Some(Mode::Bulk | Mode::Delta)
        )
    }
}

/// Reads `manifest.csv` if there is one.
fn read_manifest(source: &mut Source, builder: &mut RosterBuilder) -> Result<Manifest, ReadError> {
    let mut manifest = Manifest::default();
    let Some((member, input)) = source.member("manifest.csv")? else {
        return Ok(manifest);
    };
    builder.begin_file("manifest.csv");
    let mut table = Table::new(&member, input, b',')?;
    let name = table.require("propertyName", &["propertyName"])?;
    let value = table.require("value", &["value"])?;
    while let Some(row) = table.next_row()? {
        let (Some(property), Some(setting)) = (row.get(Some(name)), row.get(Some(value))) else {
            continue;
        };
        let syntax = |reason: String| {
            ReadError::new(
                &member,
                ReadErrorKind::Syntax {
                    format: Format::OneRosterCsv,
                    reason,
                },
            )
            .at_line(row.line)
            .in_field("value")
        };
        if property.eq_ignore_ascii_case("oneroster.version") {
            if !matches!(setting.as_ref(), "1.0" | "1.1" | "1.2") && !setting.starts_with("1.2.") {
                return Err(syntax(format!(
                    "OneRoster version {} is not supported (1.1 and 1.2 are)",
                    shown(&setting)
                )));
            }
        } else if let Some(file) = property.strip_prefix("file.") {
            let mode = match setting.to_ascii_lowercase().as_str() {
                "bulk" => Mode::Bulk,
                "delta" => Mode::Delta,
                "absent" => Mode::Absent,
                _ => {
                    return Err(syntax(format!(
                        "file mode {} is not bulk, delta or absent",
                        shown(&setting)
                    )))
                }
            };
            manifest.files.insert(file.to_ascii_lowercase(), mode);
        }
    }
    Ok(manifest)
}

/// A member file's table, with the file's mode, or `None` when the export does not send it.
type Opened<'a> = Option<(Mode, Table<Box<dyn BufRead + 'a>>)>;

/// Opens `{entity}.csv` and names it to the builder. `users.csv` is required unless the
/// manifest says it is absent; any file the manifest promises must be there.
fn open_table<'a>(
    source: &'a mut Source,
    manifest: &Manifest,
    entity: &str,
    builder: &mut RosterBuilder,
) -> Result<Opened<'a>, ReadError> {
    let mode = manifest.mode(entity);
    if mode == Mode::Absent {
        return Ok(None);
    }
    let name = format!("{entity}.csv");
    let root = source.root().to_owned();
    let Some((member, input)) = source.member(&name)? else {
        if entity == "users" || manifest.promises(entity) {
            let io = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the export has no {name}"),
            );
            return Err(ReadError::new(&root.join(&name), io.into()));
        }
        return Ok(None);
    };
    builder.begin_file(&name);
    if mode == Mode::Delta {
        // The builder knows one export-wide mode: any delta file makes the export partial.
        builder.set_partial();
    }
    Ok(Some((mode, Table::new(&member, input, b',')?)))
}

/// Where the member files are: a folder, or the entries of a zip archive.
enum Source {
    Folder {
        root: PathBuf,
        /// Lower-cased file name -> path.
        files: HashMap<String, PathBuf>,
    },
    Zip {
        root: PathBuf,
        archive: zip::ZipArchive<BufReader<File>>,
        /// Lower-cased file name -> (entry index, entry name).
        files: HashMap<String, (usize, String)>,
    },
}

impl Source {
    fn open(path: &Path) -> Result<Source, ReadError> {
        if path.is_dir() {
            Source::open_folder(path)
        } else {
            Source::open_zip(path)
        }
    }

    /// Lists a folder's files; when it holds no export files but exactly one folder, the
    /// export is taken to be in that folder (an unpacked zip with a top folder).
    fn open_folder(path: &Path) -> Result<Source, ReadError> {
        let list = |dir: &Path| -> Result<(HashMap<String, PathBuf>, Vec<PathBuf>), ReadError> {
            let mut files = HashMap::new();
            let mut dirs = Vec::new();
            let entries = std::fs::read_dir(dir).map_err(|e| ReadError::new(dir, e.into()))?;
            for entry in entries {
                let entry = entry.map_err(|e| ReadError::new(dir, e.into()))?;
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    files.insert(name.to_ascii_lowercase(), path);
                }
            }
            Ok((files, dirs))
        };
        let (files, dirs) = list(path)?;
        let has_export = |files: &HashMap<String, PathBuf>| {
            files.contains_key("users.csv") || files.contains_key("manifest.csv")
        };
        if let ([only], false) = (dirs.as_slice(), has_export(&files)) {
            let (inner, _) = list(only)?;
            if has_export(&inner) {
                return Ok(Source::Folder {
                    root: only.clone(),
                    files: inner,
                });
            }
        }
        Ok(Source::Folder {
            root: path.to_owned(),
            files,
        })
    }

    /// Reads a zip's central directory. Members may sit at the top or in one top folder;
    /// a member path that climbs out (`..`) or is absolute makes the archive refused.
    fn open_zip(path: &Path) -> Result<Source, ReadError> {
        let refuse = |reason: String| {
            ReadError::new(
                path,
                ReadErrorKind::Syntax {
                    format: Format::OneRosterCsv,
                    reason,
                },
            )
        };
        let mut archive = zip::ZipArchive::new(open(path)?)
            .map_err(|e| refuse(format!("not a zip archive: {e}")))?;
        if archive.len() > MAX_ZIP_ENTRIES {
            return Err(refuse(format!(
                "the archive has {} entries, more than the {MAX_ZIP_ENTRIES} allowed",
                archive.len()
            )));
        }
        let mut files: HashMap<String, (usize, usize, String)> = HashMap::new();
        for index in 0..archive.len() {
            let entry = archive
                .by_index(index)
                .map_err(|e| refuse(format!("entry {index} cannot be read: {e}")))?;
            let name = entry.name().to_owned();
            let Some(enclosed) = entry.enclosed_name() else {
                return Err(
                    refuse("an entry's path leaves the archive (`..` or absolute)".into())
                        .in_field(shown(&name)),
                );
            };
            if entry.is_dir() || name.starts_with("__MACOSX") {
                continue;
            }
            let depth = enclosed
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count();
            let Some(file) = enclosed.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if depth > 2 {
                continue;
            }
            let key = file.to_ascii_lowercase();
            match files.get(&key) {
                Some(&(_, d, _)) if d < depth => {}
                Some(&(_, d, ref other)) if d == depth => {
                    return Err(refuse(format!(
                        "two entries are named {file}: {} and {}",
                        shown(other),
                        shown(&name)
                    )));
                }
                _ => {
                    files.insert(key, (index, depth, name));
                }
            }
        }
        Ok(Source::Zip {
            root: path.to_owned(),
            archive,
            files: files
                .into_iter()
                .map(|(key, (index, _, name))| (key, (index, name)))
                .collect(),
        })
    }

    /// The folder or archive, for error messages.
    fn root(&self) -> &Path {
        match self {
            Source::Folder { root, .. } | Source::Zip { root, .. } => root,
        }
    }

    /// Opens a member file by name (without case), with the path errors should show.
    fn member(&mut self, name: &str) -> Result<Option<Member<'_>>, ReadError> {
        let key = name.to_ascii_lowercase();
        match self {
            Source::Folder { files, .. } => {
                let Some(path) = files.get(&key) else {
                    return Ok(None);
                };
                let input: Box<dyn BufRead> = Box::new(open(path)?);
                Ok(Some((path.clone(), input)))
            }
            Source::Zip {
                root,
                archive,
                files,
            } => {
                let Some((index, entry_name)) = files.get(&key) else {
                    return Ok(None);
                };
                let path = root.join(entry_name);
                let entry = archive.by_index(*index).map_err(|e| {
                    ReadError::new(&path, std::io::Error::other(e.to_string()).into())
                })?;
                if entry.size() > MAX_MEMBER_BYTES {
                    return Err(ReadError::new(
                        &path,
                        ReadErrorKind::TooLarge {
                            limit: MAX_MEMBER_BYTES,
                        },
                    ));
                }
                let limited = Capped {
                    inner: entry,
                    left: MAX_MEMBER_BYTES,
                };
                let input: Box<dyn BufRead + '_> =
                    Box::new(BufReader::with_capacity(64 * 1024, limited));
                Ok(Some((path, input)))
            }
        }
    }
}

/// A member file: the path errors show, and its bytes.
type Member<'a> = (PathBuf, Box<dyn BufRead + 'a>);

/// A zip member's stream, cut off with an error past [`MAX_MEMBER_BYTES`]: the size in the
/// archive's directory is only a claim, and inflating must stop even if it lies.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(std::io::Error::other(format!(
                "the member inflates to more than {MAX_MEMBER_BYTES} bytes"
            ))),
        }
    }
}

/// What earlier files tell later ones.
#[derive(Default)]
struct State {
    /// Org sourcedId -> skolenummer, for every school.
    skolenummer: HashMap<String, String>,
    /// Academic sessions by sourcedId.
    sessions: HashMap<String, Session>,
    /// Class sourcedId -> whether it is a homeroom (basisgruppe).
    homeroom: HashMap<String, bool>,
    /// True when the export has a `roles.csv` (OneRoster 1.2).
    has_roles: bool,
    /// Users `roles.csv` makes students.
    student_roles: HashSet<String>,
    /// Users `roles.csv` gives some other role only.
    other_roles: HashSet<String>,
    /// Sex and birth date from `demographics.csv`, by user sourcedId.
    demographics: HashMap<String, (Gender, Option<CivilDate>)>,
}

impl State {
    /// The skolenummer of the org a record names; an unknown org keeps its sourcedId, so
    /// the builder reports the dangling reference.
    fn school(&self, sourced_id: String) -> String {
        match self.skolenummer.get(&sourced_id) {
            Some(skolenummer) => skolenummer.clone(),
            None => sourced_id,
        }
    }

    /// The school year a session belongs to, as the school writes it (`2025/2026`): a
    /// school-year session's title, else its parent's, else built from `schoolYear`.
    fn school_year(&self, sourced_id: &str) -> Option<String> {
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

/// True when a delta-mode row asks for its record to be deleted.
fn is_deletion(row: &Row<'_>, status: Option<usize>, mode: Mode) -> bool {
    mode == Mode::Delta
        && row
            .get(status)
            .is_some_and(|s| s.eq_ignore_ascii_case("tobedeleted"))
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
fn read_orgs<R: BufRead>(
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
            builder.tombstone(Entity::School, skolenummer);
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

/// Reads `academicSessions.csv`, for the school year of each class.
fn read_sessions<R: BufRead>(table: &mut Table<R>, state: &mut State) -> Result<(), ReadError> {
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

/// Reads `classes.csv`: homerooms become groups; every class is remembered so enrollments
/// in scheduled classes can be told apart from enrollments in unknown ones.
fn read_classes<R: BufRead>(
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
        let at = Position::Line(row.line);
        let Some(id) = row.text(Some(sourced_id)) else {
            missing(builder, at, "sourcedId", "class");
            continue;
        };
        let kind = row.get(Some(class_type));
        let homeroom = kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("homeroom"));
        if is_deletion(&row, status, mode) {
            if homeroom || kind.is_none() {
                builder.tombstone(Entity::Group, id.clone().into());
            }
            state.homeroom.insert(id.into(), homeroom);
            continue;
        }
        state.homeroom.insert(id.clone().into(), homeroom);
        if !homeroom {
            continue;
        }
        let Some(school_id) = row.text(Some(school)) else {
            missing(builder, at, "schoolSourcedId", "class");
            continue;
        };
        let school_year = row.get(terms).and_then(|terms| {
            terms
                .split(',')
                .find_map(|term| state.school_year(term.trim()))
        });
        let group = Group {
            name: row
                .text(title)
                .or_else(|| row.text(class_code))
                .unwrap_or_else(|| id.clone()),
            source_key: id,
            grade: row.text(grades),
            school: state.school(school_id.into()).into(),
            school_year: school_year.map(Into::into),
        };
        builder.group(at, group, Provenance::Stated);
    }
    Ok(())
}

/// Reads the OneRoster 1.2 `roles.csv`: which users hold the student role.
fn read_roles<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &mut State,
) -> Result<(), ReadError> {
    let user = table.require("userSourcedId", &["userSourcedId"])?;
    let role = table.require("role", &["role"])?;
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
            state.student_roles.insert(id.into());
        } else if !is_student {
            state.other_roles.insert(id.into());
        }
    }
    Ok(())
}

/// Reads `demographics.csv` (keyed by the user's sourcedId) for sex and birth date.
fn read_demographics<R: BufRead>(
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

/// Reads `users.csv`: students become records (or tombstones in delta mode); other users
/// are skipped. The role is the 1.1 `role` column or, in 1.2, `roles.csv`.
fn read_users<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &State,
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
    while let Some(row) = table.next_row()? {
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
            if let (Some(id), true) = (id, is_student || !other) {
                builder.tombstone(Entity::Student, id.into());
            }
            continue;
        }
        if !is_student {
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

/// Reads `enrollments.csv`: a student's enrollment in a homeroom is the student's
/// enrollment at the school, in that basisgruppe. Enrollments in scheduled classes and of
/// teachers are not roster records.
fn read_enrollments<R: BufRead>(
    table: &mut Table<R>,
    mode: Mode,
    state: &State,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let sourced_id = table.require("sourcedId", &["sourcedId"])?;
    let class = table.require("classSourcedId", &["classSourcedId"])?;
    let school = table.require("schoolSourcedId", &["schoolSourcedId"])?;
    let user = table.require("userSourcedId", &["userSourcedId"])?;
    let role = table.require("role", &["role"])?;
    let status = table.column(&["status"]);
    while let Some(row) = table.next_row()? {
        let at = Position::Line(row.line);
        let role = row.get(Some(role));
        let deletion = is_deletion(&row, status, mode);
        let is_student = role
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("student"));
        // A deletion may come without its role.
        if !(is_student || deletion && role.is_none()) {
            continue;
        }
        let class_id = row.text(Some(class));
        // A class the export lists but not as a homeroom; unknown classes go on, so the
        // builder reports them as dangling.
        if class_id
            .as_ref()
            .is_some_and(|c| state.homeroom.get(c.as_str()) == Some(&false))
        {
            continue;
        }
        let Some(id) = row.text(Some(sourced_id)) else {
            missing(builder, at, "sourcedId", "enrollment");
            continue;
        };
        if deletion {
            builder.tombstone(Entity::Enrollment, id.into());
            continue;
        }
        let (Some(class_id), Some(school_id), Some(user_id)) =
            (class_id, row.text(Some(school)), row.text(Some(user)))
        else {
            let field = if row.get(Some(user)).is_none() {
                "userSourcedId"
            } else if row.get(Some(school)).is_none() {
                "schoolSourcedId"
            } else {
                "classSourcedId"
            };
            missing(builder, at, field, "enrollment");
            continue;
        };
        builder.enrollment(
            at,
            Enrollment {
                source_key: id,
                student: user_id,
                school: state.school(school_id.into()).into(),
                group: Some(class_id),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;
    use crate::validate::{Tombstone, Validated};

    const CLEAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/clean/oneroster"
    );
    const FAULTY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/faulty/oneroster"
    );

    fn read_path(path: &Path) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read(path, &mut builder)?;
        Ok(builder.finish())
    }

    fn count(validated: &Validated, code: Code) -> usize {
        validated
            .deviations
            .iter()
            .filter(|d| d.code == code)
            .count()
    }

    fn counts(validated: &Validated) -> [usize; 4] {
        let roster = &validated.roster;
        [
            roster.students.len(),
            roster.schools.len(),
            roster.groups.len(),
            roster.enrollments.len(),
        ]
    }

    fn write_files(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn the_clean_export_reads_without_deviations() {
        let validated = read_path(Path::new(CLEAN)).unwrap();
        assert_eq!(validated.deviations, vec![]);
        assert!(!validated.partial);
        assert_eq!(counts(&validated), [60, 1, 25, 60]);
        let school = &validated.roster.schools[0];
        assert_eq!(school.skolenummer, "46505");
        assert_eq!(school.name, "Fana skule");
        assert_eq!(school.kommunenummer.as_deref(), Some("4601"));
        assert_eq!(school.fylkesnummer.as_deref(), Some("46"));
        let group = &validated.roster.groups[0];
        assert_eq!(group.school, "46505");
        assert_eq!(group.school_year.as_deref(), Some("2025/2026"));
        assert!(validated
            .roster
            .students
            .iter()
            .all(|s| s.national_id.is_some()));
        assert!(validated.tombstones.is_empty());
    }

    #[test]
    fn the_faulty_export_reports_each_fault_and_keeps_the_well_formed_people() {
        let validated = read_path(Path::new(FAULTY)).unwrap();
        assert_eq!(counts(&validated), [80, 1, 28, 80]);
        assert_eq!(count(&validated, Code::InvalidNationalId), 4);
        assert_eq!(count(&validated, Code::DuplicateNationalId), 1);
        assert!(count(&validated, Code::DuplicateRecord) >= 1);
        let others = validated.deviations.iter().filter(|d| {
            d.severity == Severity::Error
                && !matches!(d.code, Code::InvalidNationalId | Code::DuplicateNationalId)
        });
        assert_eq!(others.count(), 0, "{:#?}", validated.deviations);
        assert!(validated
            .deviations
            .iter()
            .all(|d| d.file.ends_with(".csv") && matches!(d.position, Position::Line(_))));
    }

    fn zip_folder(folder: &Path, zip_path: &Path, top: &str) {
        let file = File::create(zip_path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut entries: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_str().unwrap();
            zip.start_file(format!("{top}{name}"), options).unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn a_zip_of_the_clean_export_reads_like_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let flat = dir.path().join("flat.zip");
        zip_folder(Path::new(CLEAN), &flat, "");
        let validated = read_path(&flat).unwrap();
        assert_eq!(validated.deviations, vec![]);
        assert_eq!(counts(&validated), [60, 1, 25, 60]);
        assert_eq!(
            validated.roster,
            read_path(Path::new(CLEAN)).unwrap().roster
        );
    }

    #[test]
    fn a_zip_with_the_files_in_one_top_folder_reads_too() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("nested.zip");
        zip_folder(Path::new(CLEAN), &nested, "export-2026-01-15/");
        let validated = read_path(&nested).unwrap();
        assert_eq!(counts(&validated), [60, 1, 25, 60]);
    }

    #[test]
    fn a_zip_member_that_climbs_out_of_the_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("../users.csv", options).unwrap();
        zip.write_all(b"sourcedId,givenName,familyName,role\n")
            .unwrap();
        zip.finish().unwrap();
        let error = read_path(&path).unwrap_err();
        assert!(
            matches!(error.kind, ReadErrorKind::Syntax { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_a_read_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.zip");
        std::fs::write(&path, b"PK\x03\x04 not really").unwrap();
        assert!(read_path(&path).is_err());
    }

    const USERS_12: &str = "\
sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns
u1,,,true,elev1,,Oskar,Nilsen,,16881774198,elev1@skule.example.no,,,,03,,M1,,Ossi,,,s1,
u2,,,true,elev2,,Thea,Mæhle,Andre,25811885633,,,,,02,,M2,,,,,s1,
t1,,,true,laerer1,,Kari,Lærer,,,,,,,,,M3,,,,,s1,
";
    const ROLES_12: &str = "\
sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId
r1,,,u1,primary,student,,,s1,
r2,,,u2,primary,student,,,s1,
r3,,,t1,primary,teacher,,,s1,
";

    #[test]
    fn a_one_roster_1_2_export_takes_roles_from_roles_csv() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("manifest.csv", "propertyName,value\noneroster.version,1.2\nfile.users,bulk\nfile.roles,bulk\nfile.orgs,bulk\nfile.demographics,bulk\nfile.courses,absent\n"),
                ("orgs.csv", "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\ns1,,,Fana skule,school,,\n"),
                ("users.csv", USERS_12),
                ("roles.csv", ROLES_12),
                ("demographics.csv", "sourcedId,status,dateLastModified,birthDate,sex\nu2,,,2018-01-25,female\n"),
            ],
        );
        let validated = read_path(dir.path()).unwrap();
        assert_eq!(validated.deviations, vec![]);
        let students = &validated.roster.students;
        assert_eq!(students.len(), 2);
        assert_eq!(students[0].source_key, "u1");
        assert_eq!(students[0].given_name, "Oskar");
        assert_eq!(students[0].gender, Gender::Unknown);
        assert_eq!(students[1].middle_name.as_deref(), Some("Andre"));
        assert_eq!(students[1].gender, Gender::Female);
        assert!(students[1].national_id.is_some());
        // An org without identifier is keyed by its sourcedId.
        assert_eq!(validated.roster.schools[0].skolenummer, "s1");
    }

    #[test]
    fn a_one_roster_1_2_users_file_without_roles_file_or_role_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &[("users.csv", USERS_12)]);
        let error = read_path(dir.path()).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("role"));
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn a_delta_export_turns_deleted_rows_into_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.users,delta\nfile.enrollments,delta\nfile.orgs,absent\nfile.classes,absent\n"),
                ("users.csv", "sourcedId,status,dateLastModified,role,givenName,familyName,identifier\nu1,active,2026-01-15,student,Oskar,Nilsen,16881774198\nu2,tobedeleted,2026-01-15,student,Thea,Mæhle,25811885633\nt1,tobedeleted,2026-01-15,teacher,Kari,Lærer,\n"),
                ("enrollments.csv", "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role\ne2,tobedeleted,2026-01-15,c1,s1,u2,student\ne3,tobedeleted,2026-01-15,c1,s1,t1,teacher\n"),
            ],
        );
        let validated = read_path(dir.path()).unwrap();
        assert!(validated.partial);
        assert_eq!(validated.roster.students.len(), 1);
        assert_eq!(
            validated.tombstones,
            vec![
                Tombstone {
                    entity: Entity::Student,
                    key: "u2".into()
                },
                Tombstone {
                    entity: Entity::Enrollment,
                    key: "e2".into()
                },
            ]
        );
    }

    #[test]
    fn in_bulk_mode_the_status_column_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[(
                "users.csv",
                "sourcedId,status,role,givenName,familyName\nu1,tobedeleted,student,Oskar,Nilsen\n",
            )],
        );
        let validated = read_path(dir.path()).unwrap();
        assert_eq!(validated.roster.students.len(), 1);
        assert!(validated.tombstones.is_empty());
    }

    #[test]
    fn an_export_without_users_csv_is_a_read_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("orgs.csv", "sourcedId,name,type\ns1,Skule,school\n")],
        );
        let error = read_path(dir.path()).unwrap_err();
        assert!(error.file.ends_with("users.csv"), "{error}");
    }

    #[test]
    fn a_file_the_manifest_promises_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("manifest.csv", "propertyName,value\nfile.classes,bulk\n"),
                ("users.csv", "sourcedId,role,givenName,familyName\n"),
            ],
        );
        let error = read_path(dir.path()).unwrap_err();
        assert!(error.file.ends_with("classes.csv"), "{error}");
    }

    #[test]
    fn a_users_file_without_a_required_column_names_the_column_at_line_one() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("users.csv", "sourcedId,role,givenName\nu1,student,Oskar\n")],
        );
        let error = read_path(dir.path()).unwrap_err();
        assert!(error.file.ends_with("users.csv"));
        assert_eq!(error.line, Some(1));
        assert_eq!(error.field.as_deref(), Some("familyName"));
    }

    #[test]
    fn a_student_without_sourced_id_is_a_missing_required_deviation() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("users.csv", "sourcedId,role,givenName,familyName,identifier\n,student,Oskar,Nilsen,16881774198\n")],
        );
        let validated = read_path(dir.path()).unwrap();
        assert!(validated.roster.students.is_empty());
        assert_eq!(validated.deviations.len(), 1);
        let deviation = &validated.deviations[0];
        assert_eq!(deviation.code, Code::MissingRequired);
        assert_eq!(deviation.file, "users.csv");
        assert_eq!(deviation.position, Position::Line(2));
        assert!(!deviation.detail.contains("Oskar") && !deviation.detail.contains("16881774198"));
    }

    #[test]
    fn enrollments_in_scheduled_classes_and_of_teachers_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("orgs.csv", "sourcedId,name,type,identifier\ns1,Skule,school,46505\n"),
                ("classes.csv", "sourcedId,title,classType,schoolSourcedId\nh1,10A,homeroom,s1\nm1,Matte,scheduled,s1\n"),
                ("users.csv", "sourcedId,role,givenName,familyName\nu1,student,Oskar,Nilsen\nt1,teacher,Kari,Lærer\n"),
                ("enrollments.csv", "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\ne1,h1,s1,u1,student\ne2,m1,s1,u1,student\ne3,h1,s1,t1,teacher\n"),
            ],
        );
        let validated = read_path(dir.path()).unwrap();
        assert_eq!(validated.deviations, vec![]);
        assert_eq!(counts(&validated), [1, 1, 1, 1]);
        let enrollment = &validated.roster.enrollments[0];
        assert_eq!(enrollment.school, "46505");
        assert_eq!(enrollment.group.as_deref(), Some("h1"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_as_users_csv_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("users.csv"), &bytes).unwrap();
            let _ = read_path(dir.path());
        }

        #[test]
        fn arbitrary_rows_under_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = b"sourcedId,status,role,givenName,familyName,identifier\n".to_vec();
            bytes.extend_from_slice(&tail);
            std::fs::write(dir.path().join("users.csv"), &bytes).unwrap();
            let _ = read_path(dir.path());
        }
    }
}
