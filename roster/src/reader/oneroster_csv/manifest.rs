//! `manifest.csv`: which member files the export sends, and whether each is bulk or delta.
//! It is read first; every other file is opened through it, so a file the manifest promises
//! must be there, and a delta file's `tobedeleted` rows become deletions.

use std::collections::HashMap;
use std::io::BufRead;

use super::source::Source;
use crate::deviation::{shown, Code, Position, Severity};
use crate::reader::error::{ReadError, ReadErrorKind};
use crate::reader::format::Format;
use crate::reader::table::{Row, Table};
use crate::validate::RosterBuilder;

/// How the manifest says a file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
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
pub(super) struct Manifest {
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
pub(super) fn read_manifest(
    source: &mut Source,
    builder: &mut RosterBuilder,
) -> Result<Manifest, ReadError> {
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
pub(super) type Opened<'a> = Option<(Mode, Table<Box<dyn BufRead + 'a>>)>;

/// Opens `{entity}.csv` and names it to the builder. `users.csv` is required unless the
/// manifest says it is absent; any file the manifest promises must be there.
pub(super) fn open_table<'a>(
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
    let table = Table::new(&member, input, b',')?;
    for column in table.headers().iter().filter(|h| {
        !h.is_empty()
            && !spec_columns(entity)
                .iter()
                .any(|c| c.eq_ignore_ascii_case(h))
    }) {
        let detail = format!(
            "column `{}` is not a OneRoster {entity}.csv column and is not read: its data is \
             not sent",
            column.chars().take(40).collect::<String>()
        );
        builder.deviation(
            Position::Line(1),
            Code::UnknownColumn,
            Severity::Warning,
            detail,
        );
    }
    Ok(Some((mode, table)))
}

/// The columns OneRoster 1.1 and 1.2 define for each member file this reader opens. A column
/// outside these (a vendor's `metadata.*` extension, a misspelling) is named in an
/// `unknown_column` warning; spec columns outside the roster model (phone, password, race)
/// are not read by design, as docs/FORMATS.md lists.
fn spec_columns(entity: &str) -> &'static [&'static str] {
    const COMMON: [&str; 3] = ["sourcedId", "status", "dateLastModified"];
    match entity {
        "orgs" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "name",
            "type",
            "identifier",
            "parentSourcedId",
        ],
        "academicSessions" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "title",
            "type",
            "startDate",
            "endDate",
            "parentSourcedId",
            "schoolYear",
        ],
        "classes" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "title",
            "grades",
            "courseSourcedId",
            "classCode",
            "classType",
            "location",
            "schoolSourcedId",
            "termSourcedIds",
            "subjects",
            "subjectCodes",
            "periods",
            "resources",
        ],
        "roles" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "userSourcedId",
            "roleType",
            "role",
            "beginDate",
            "endDate",
            "orgSourcedId",
            "userProfileSourcedId",
        ],
        "demographics" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "birthDate",
            "sex",
            "americanIndianOrAlaskaNative",
            "asian",
            "blackOrAfricanAmerican",
            "nativeHawaiianOrOtherPacificIslander",
            "white",
            "demographicRaceTwoOrMoreRaces",
            "hispanicOrLatinoEthnicity",
            "countryOfBirthCode",
            "stateOfBirthAbbreviation",
            "cityOfBirth",
            "publicSchoolResidenceStatus",
        ],
        "users" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "enabledUser",
            "orgSourcedIds",
            "role",
            "username",
            "userIds",
            "givenName",
            "familyName",
            "middleName",
            "identifier",
            "email",
            "sms",
            "phone",
            "agentSourcedIds",
            "grades",
            "password",
            "userMasterIdentifier",
            "resourceSourcedIds",
            "preferredGivenName",
            "preferredMiddleName",
            "preferredFamilyName",
            "primaryOrgSourcedId",
            "pronouns",
        ],
        "enrollments" => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            "classSourcedId",
            "schoolSourcedId",
            "userSourcedId",
            "role",
            "primary",
            "beginDate",
            "endDate",
        ],
        _ => &[],
    }
}

/// True when a delta-mode row asks for its record to be deleted.
pub(super) fn is_deletion(row: &Row<'_>, status: Option<usize>, mode: Mode) -> bool {
    mode == Mode::Delta
        && row
            .get(status)
            .is_some_and(|s| s.eq_ignore_ascii_case("tobedeleted"))
}
