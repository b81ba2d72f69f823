//! The elevliste: the semicolon file Norwegian SAS systems export for the county's admission
//! office. One row per student with the school and class repeated on every row; columns are
//! found by header name, with aliases for the spellings SAS variants use, and a column
//! profile in the agent config adds more.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use compact_str::CompactString;
use hashbrown::HashMap;
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{Enrollment, Gender, Group, Record, School, Student};

use super::error::{open, ReadError, ReadErrorKind};
use super::format::Format;
use super::table::{Row, Table};
use crate::deviation::{Code, Position, Severity};
use crate::validate::{Admission, Provenance, RosterBuilder, StudentRow};

/// The columns an elevliste can have, as the config's column profile names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// A SAS person key, when the export has one; otherwise the national id is the key.
    StudentKey,
    NationalId,
    Username,
    GivenName,
    MiddleName,
    FamilyName,
    BirthDate,
    Gender,
    Email,
    Class,
    Grade,
    SchoolYear,
    Skolenummer,
    SchoolName,
    Organisasjonsnummer,
    Kommunenummer,
    Fylkesnummer,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::StudentKey => "Elevnummer",
            Field::NationalId => "Fødselsnummer",
            Field::Username => "Brukernavn",
            Field::GivenName => "Fornavn",
            Field::MiddleName => "Mellomnavn",
            Field::FamilyName => "Etternavn",
            Field::BirthDate => "Fødselsdato",
            Field::Gender => "Kjønn",
            Field::Email => "E-post",
            Field::Class => "Klasse",
            Field::Grade => "Trinn",
            Field::SchoolYear => "Skoleår",
            Field::Skolenummer => "Skolenummer",
            Field::SchoolName => "Skolenavn",
            Field::Organisasjonsnummer => "Organisasjonsnummer",
            Field::Kommunenummer => "Kommunenummer",
            Field::Fylkesnummer => "Fylkesnummer",
        }
    }

    /// Header names seen in SAS exports, compared without case, accents or punctuation.
    /// Where each comes from is listed in docs/FORMATS.md (`Klassenavn`, `Klassetrinn` and a
    /// five-digit `Personnummer` beside `Fødselsdato` are WIS Skole's import format).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::StudentKey => &["Elevnummer", "Elev-ID", "ElevId", "sourcedId", "Personkey"],
            Field::NationalId => &[
                "Fødselsnummer",
                "Fodselsnummer",
                "Fødselsnr",
                "fnr",
                "Personnummer",
                "Personnr",
                "NIN",
                "personNIN",
            ],
            Field::Username => &["Brukernavn", "Feidenavn", "Feide", "Username"],
            Field::GivenName => &["Fornavn", "Givenname", "Firstname"],
            Field::MiddleName => &["Mellomnavn", "Middlename"],
            Field::FamilyName => &["Etternavn", "Familyname", "Lastname", "Surname"],
            Field::BirthDate => &["Fødselsdato", "Fodselsdato", "Birthdate"],
            Field::Gender => &["Kjønn", "Kjonn", "Gender", "Sex"],
            Field::Email => &["E-post", "Epost", "E-mail", "Email", "Epostadresse"],
            Field::Class => &[
                "Klasse",
                "Klassenavn",
                "Basisgruppe",
                "Basisgruppenavn",
                "Gruppe",
                "Class",
            ],
            Field::Grade => &["Trinn", "Klassetrinn", "Årstrinn", "Grade"],
            Field::SchoolYear => &["Skoleår", "Skolear", "Skoleaar", "Schoolyear"],
            Field::Skolenummer => &["Skolenummer", "Skolenr", "Skole-nr", "Schoolnumber"],
            Field::SchoolName => &["Skolenavn", "Skole", "Schoolname"],
            Field::Organisasjonsnummer => &["Organisasjonsnummer", "Orgnr", "Org.nr"],
            Field::Kommunenummer => &["Kommunenummer", "Kommunenr", "Knr"],
            Field::Fylkesnummer => &["Fylkesnummer", "Fylkesnr", "Fnr-fylke"],
        }
    }
}

/// Extra header names per field, for SAS variants the built-in aliases do not know. Set in
/// the agent config as `[reader.columns]`, e.g. `national_id = ["Personnr."]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct ColumnProfile(pub BTreeMap<Field, Vec<String>>);

/// Resolved column positions for one file.
struct Columns {
    student_key: Option<usize>,
    national_id: usize,
    username: Option<usize>,
    given_name: usize,
    middle_name: Option<usize>,
    family_name: usize,
    birth_date: Option<usize>,
    gender: Option<usize>,
    email: Option<usize>,
    class: Option<usize>,
    grade: Option<usize>,
    school_year: Option<usize>,
    skolenummer: usize,
    school_name: Option<usize>,
    organisasjonsnummer: Option<usize>,
    kommunenummer: Option<usize>,
    fylkesnummer: Option<usize>,
}

impl Columns {
    fn find<R: BufRead>(table: &Table<R>, profile: &ColumnProfile) -> Result<Columns, ReadError> {
        let find = |field: Field| {
            let extra = profile.0.get(&field);
            let extra: Vec<&str> = extra
                .iter()
                .flat_map(|v| v.iter().map(String::as_str))
                .collect();
            table
                .column(&extra)
                .or_else(|| table.column(field.aliases()))
        };
        let require = |field: Field| {
            find(field)
                .ok_or(field)
                .or_else(|field| table.require(field.name(), field.aliases()))
        };
        let columns = Columns {
            student_key: find(Field::StudentKey),
            national_id: require(Field::NationalId)?,
            username: find(Field::Username),
            given_name: require(Field::GivenName)?,
            middle_name: find(Field::MiddleName),
            family_name: require(Field::FamilyName)?,
            birth_date: find(Field::BirthDate),
            gender: find(Field::Gender),
            email: find(Field::Email),
            class: find(Field::Class),
            grade: find(Field::Grade),
            school_year: find(Field::SchoolYear),
            skolenummer: require(Field::Skolenummer)?,
            school_name: find(Field::SchoolName),
            organisasjonsnummer: find(Field::Organisasjonsnummer),
            kommunenummer: find(Field::Kommunenummer),
            fylkesnummer: find(Field::Fylkesnummer),
        };
        Ok(columns)
    }

    /// The canonical names of the fields the header has.
    fn fields(&self) -> Vec<String> {
        let optional = [
            (Field::StudentKey, self.student_key),
            (Field::Username, self.username),
            (Field::MiddleName, self.middle_name),
            (Field::BirthDate, self.birth_date),
            (Field::Gender, self.gender),
            (Field::Email, self.email),
            (Field::Class, self.class),
            (Field::Grade, self.grade),
            (Field::SchoolYear, self.school_year),
            (Field::SchoolName, self.school_name),
            (Field::Organisasjonsnummer, self.organisasjonsnummer),
            (Field::Kommunenummer, self.kommunenummer),
            (Field::Fylkesnummer, self.fylkesnummer),
        ];
        optional
            .iter()
            .filter(|(_, column)| column.is_some())
            .map(|(field, _)| field.name().to_owned())
            .collect()
    }

    /// The header columns no field is read from, by position and name.
    fn unread<'t, R: BufRead>(&self, table: &'t Table<R>) -> Vec<&'t str> {
        let used = [
            self.student_key,
            Some(self.national_id),
            self.username,
            Some(self.given_name),
            self.middle_name,
            Some(self.family_name),
            self.birth_date,
            self.gender,
            self.email,
            self.class,
            self.grade,
            self.school_year,
            Some(self.skolenummer),
            self.school_name,
            self.organisasjonsnummer,
            self.kommunenummer,
            self.fylkesnummer,
        ];
        table
            .headers()
            .iter()
            .enumerate()
            .filter(|(i, name)| !name.is_empty() && !used.contains(&Some(*i)))
            .map(|(_, name)| name.as_str())
            .collect()
    }
}

/// Reads an elevliste into the builder. With `pipelined`, parsing and validation run on two
/// threads; callers that already read several exports at once pass `false`.
pub fn read(
    path: &Path,
    profile: &ColumnProfile,
    pipelined: bool,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    if let Ok(meta) = std::fs::metadata(path) {
        // Rows are about 90 bytes; a generous guess only reserves address space.
        builder.expect_students(usize::try_from(meta.len() / 48).unwrap_or(0).min(1 << 22));
    }
    read_from(path, open(path)?, profile, pipelined, builder)
}

/// Reads an elevliste from any buffered stream; `path` names it in errors and deviations.
pub fn read_from<R: BufRead + Send>(
    path: &Path,
    input: R,
    profile: &ColumnProfile,
    pipelined: bool,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let mut table = Table::new(path, input, b';')?;
    refuse_other_delimiters(path, table.headers())?;
    let columns = Columns::find(&table, profile)?;
    builder.begin_file(&path.display().to_string());
    builder.set_columns(columns.fields());
    for name in columns.unread(&table) {
        let detail = format!(
            "column `{}` is not read: its data is not sent (rename it to a known column name \
             or map it in the agent's column profile)",
            name.chars().take(40).collect::<String>()
        );
        builder.deviation(
            Position::Line(1),
            Code::UnknownColumn,
            Severity::Warning,
            detail,
        );
    }
    if pipelined {
        return read_pipelined(table, &columns, builder);
    }
    let mut implied = Implied::default();
    while let Some(row) = table.next_row()? {
        admit(parse_row(&row, &columns, &mut implied), builder);
    }
    Ok(())
}

/// Two stages on two threads, joined by a bounded channel: one parses rows into records,
/// the other validates them. Parsing and validation cost about the same, so a large export
/// takes half the wall time, and the channel's bound keeps memory flat.
fn read_pipelined<R: BufRead + Send>(
    mut table: Table<R>,
    columns: &Columns,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
        let parser = scope.spawn(move || -> Result<(), ReadError> {
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            let mut implied = Implied::default();
            while let Some(row) = table.next_row()? {
                batch.push(parse_row(&row, columns, &mut implied));
                if batch.len() == BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    if batches.send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            // The receiver only goes away once this thread is done.
            let _ = batches.send(batch);
            Ok(())
        });
        for batch in received {
            for parsed in batch {
                admit(parsed, builder);
            }
        }
        parser
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Rows per message between the stages, and messages in flight: enough to keep both threads
/// busy, small enough that memory does not grow with the file and that a batch stays below
/// the allocator's mmap threshold (a batch that is mapped and unmapped each time costs more
/// than the parsing).
const BATCH_ROWS: usize = 64;
const BATCHES_IN_FLIGHT: usize = 16;

/// One row, parsed but not yet validated, or why it cannot be used at all.
type Parsed = Result<ParsedRow, Unusable>;

/// A row without the values that key it; it is reported and left out.
struct Unusable {
    at: Position,
    missing: Field,
}

/// The records one elevliste row holds. The school and class repeat on every row, so they
/// are passed on only when they differ from what was last passed on for their key.
struct ParsedRow {
    at: Position,
    /// The fields the row has, when fewer than the header's.
    short: Option<(usize, usize)>,
    student: StudentRow,
    missing: Vec<Field>,
    school: Option<School>,
    group: Option<Group>,
    enrollment: Enrollment,
}

/// The schools and classes the parser has passed on, by key.
#[derive(Default)]
struct Implied {
    schools: HashMap<CompactString, School>,
    groups: HashMap<CompactString, Group>,
}

impl Implied {
    /// `Some(record)` when the record is new or differs from the last one with its key.
    fn changed<R: Record + Clone + PartialEq>(
        seen: &mut HashMap<CompactString, R>,
        record: R,
    ) -> Option<R> {
        match seen.get(record.key()) {
            Some(last) if *last == record => None,
            _ => {
                seen.insert(record.key().into(), record.clone());
                Some(record)
            }
        }
    }
}

/// A file written with commas or tabs reads as one wide column; say so instead of listing
/// every column as missing.
fn refuse_other_delimiters(path: &Path, headers: &[String]) -> Result<(), ReadError> {
    let [only] = headers else {
        return Ok(());
    };
    for (delimiter, name) in [(',', "commas"), ('\t', "tabs"), ('|', "pipes")] {
        if only.contains(delimiter) {
            return Err(ReadError::new(
                path,
                ReadErrorKind::Syntax {
                    format: Format::Elevliste,
                    reason: format!("the header is separated by {name}, not semicolons"),
                },
            )
            .at_line(1)
            .in_field(only.chars().take(40).collect::<String>()));
        }
    }
    Ok(())
}

fn parse_row(row: &Row<'_>, columns: &Columns, implied: &mut Implied) -> Parsed {
    let at = Position::Line(row.line);
    let national_id = row.text(Some(columns.national_id)).map(|id| {
        match row.get(columns.birth_date).and_then(|d| ddmmyy(&d)) {
            Some(date) if id.len() == 5 && id.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{date}{id}").into()
            }
            _ => id,
        }
    });
    let key = row
        .text(columns.student_key)
        .or_else(|| national_id.clone());
    let (Some(key), Some(skolenummer)) = (key, row.text(Some(columns.skolenummer))) else {
        let missing = if row.get(Some(columns.skolenummer)).is_none() {
            Field::Skolenummer
        } else {
            Field::NationalId
        };
        return Err(Unusable { at, missing });
    };
    let mut missing = Vec::new();
    let mut name = |field: Field, column: usize| {
        row.text(Some(column)).unwrap_or_else(|| {
            missing.push(field);
            CompactString::default()
        })
    };
    let given_name = name(Field::GivenName, columns.given_name);
    let family_name = name(Field::FamilyName, columns.family_name);

    let student = Student {
        source_key: key.clone(),
        national_id: None,
        username: row.text(columns.username),
        given_name,
        middle_name: row.text(columns.middle_name),
        family_name,
        birth_date: row.get(columns.birth_date).and_then(|d| birth_date(&d)),
        gender: gender(row.get(columns.gender).as_deref()),
        email: row.text(columns.email),
    };
    let school = School {
        skolenummer: skolenummer.clone(),
        organisasjonsnummer: row.text(columns.organisasjonsnummer),
        kommunenummer: row.text(columns.kommunenummer),
        fylkesnummer: row.text(columns.fylkesnummer),
        name: row
            .text(columns.school_name)
            .unwrap_or_else(|| skolenummer.clone()),
    };
    let group = row.text(columns.class).map(|class| Group {
        source_key: joined(&skolenummer, '-', &class),
        name: class,
        grade: row.text(columns.grade),
        school: skolenummer.clone(),
        school_year: row.text(columns.school_year),
    });
    let enrollment = Enrollment {
        source_key: joined(&key, '@', &skolenummer),
        student: key,
        school: skolenummer,
        group: group.as_ref().map(|g| g.source_key.clone()),
    };
    let school = Implied::changed(&mut implied.schools, school);
    let group = group.and_then(|g| Implied::changed(&mut implied.groups, g));
    Ok(ParsedRow {
        at,
        short: row.short(),
        student: StudentRow {
            student,
            national_id,
            key_is_national_id: columns.student_key.is_none(),
        },
        missing,
        school,
        group,
        enrollment,
    })
}

/// The six digits DDMMYY of a birth date written `DD.MM.YYYY`, `DD.MM.YY`, `DDMMYY` or
/// `YYYY-MM-DD`: what a five-digit personnummer (the individual number and control digits,
/// as WIS Skole exports it) completes into an eleven-digit national id. The date is not
/// checked here; the national id's own check catches a wrong one.
fn ddmmyy(text: &str) -> Option<String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(['.', '-', '/']).collect();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [day, month, year] if day.len() == 2 && month.len() == 2 && matches!(year.len(), 2 | 4) => {
            [day, month, year]
                .iter()
                .all(|p| all_digits(p))
                .then(|| format!("{day}{month}{}", &year[year.len() - 2..]))
        }
        [year, month, day] if year.len() == 4 && month.len() == 2 && day.len() == 2 => {
            [day, month, year]
                .iter()
                .all(|p| all_digits(p))
                .then(|| format!("{day}{month}{}", &year[2..]))
        }
        [six] if six.len() == 6 && all_digits(six) => Some((*six).to_owned()),
        _ => None,
    }
}

/// A birth date in ISO form or, as Norwegian exports write it, `DD.MM.YYYY`.
fn birth_date(text: &str) -> Option<CivilDate> {
    CivilDate::parse_iso(text).or_else(|| {
        let parts: Vec<&str> = text.trim().split('.').collect();
        match parts.as_slice() {
            [day, month, year] if year.len() == 4 => {
                CivilDate::parse_iso(&format!("{year}-{month:0>2}-{day:0>2}"))
            }
            _ => None,
        }
    })
}

/// `a`, `separator`, `b` as one key, without the formatting machinery (this runs for every
/// row of every export).
fn joined(a: &str, separator: char, b: &str) -> CompactString {
    let mut key = CompactString::with_capacity(a.len() + 1 + b.len());
    key.push_str(a);
    key.push(separator);
    key.push_str(b);
    key
}

/// Validates one parsed row. The school and class a row names exist whatever becomes of its
/// student; the enrollment counts only if the student is admitted.
fn admit(parsed: Parsed, builder: &mut RosterBuilder) {
    builder.record_seen(match &parsed {
        Ok(row) => row.at,
        Err(unusable) => unusable.at,
    });
    let row = match parsed {
        Ok(row) => row,
        Err(Unusable { at, missing }) => {
            let detail = format!("{} is empty; the row is left out", missing.name());
            builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
            return;
        }
    };
    let ParsedRow {
        at,
        short,
        student,
        missing,
        school,
        group,
        enrollment,
    } = row;
    if let Some((found, width)) = short {
        let detail = format!(
            "the row has {found} of the header's {width} fields; the missing ones are read as empty"
        );
        builder.deviation(at, Code::ShortRow, Severity::Warning, detail);
    }
    for field in missing {
        let detail = format!("{} is empty", field.name());
        builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
    }
    if let Some(school) = school {
        builder.school(at, school, Provenance::Implied);
    }
    if let Some(group) = group {
        builder.group(at, group, Provenance::Implied);
    }
    if builder.student(at, student) == Admission::Accepted {
        builder.enrollment(at, enrollment);
    }
}

/// Maps the codings SAS exports use: `M`/`K` (mann/kvinne), `G`/`J` (gutt/jente), English
/// words, and ISO 5218 digits.
fn gender(value: Option<&str>) -> Gender {
    match value.map(|v| v.trim().to_lowercase()).as_deref() {
        Some("m" | "mann" | "g" | "gutt" | "male" | "1") => Gender::Male,
        Some("k" | "kvinne" | "j" | "jente" | "f" | "female" | "2") => Gender::Female,
        _ => Gender::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_text(
        bytes: &[u8],
        profile: &ColumnProfile,
        pipelined: bool,
    ) -> Result<crate::validate::Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read_from(
            Path::new("test.csv"),
            bytes,
            profile,
            pipelined,
            &mut builder,
        )?;
        Ok(builder.finish())
    }

    const HEADER: &str = "Skolenummer;Skolenavn;Klasse;Trinn;Fødselsnummer;Etternavn;Fornavn;Kjønn";

    #[test]
    fn windows_1252_names_come_out_as_norwegian_letters() {
        let text =
            format!("{HEADER}\r\n46505;Fana skule;1A;1;16881774198;M\u{e6}hle;\u{d8}ystein;M\r\n");
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        let validated = read_text(&bytes, &ColumnProfile::default(), false).unwrap();
        assert_eq!(validated.roster.students[0].family_name, "Mæhle");
        assert_eq!(validated.roster.students[0].given_name, "Øystein");
    }

    #[test]
    fn a_bom_and_quoted_fields_are_read() {
        let text =
            format!("\u{feff}{HEADER}\n46505;\"Fana; skule\";1A;1;16881774198;Nilsen;Oskar;K\n");
        let validated = read_text(text.as_bytes(), &ColumnProfile::default(), true).unwrap();
        assert_eq!(validated.roster.schools[0].name, "Fana; skule");
        assert_eq!(validated.roster.students[0].gender, Gender::Female);
        assert!(
            validated.deviations.is_empty(),
            "{:?}",
            validated.deviations
        );
    }

    #[test]
    fn a_column_profile_maps_a_sas_variant() {
        let text =
            "Skolenr;ID-nr elev;Etternavn;Fornavn;Basisgr.\n46505;16881774198;Nilsen;Oskar;1A\n";
        assert!(read_text(text.as_bytes(), &ColumnProfile::default(), false).is_err());
        let profile: ColumnProfile =
            toml::from_str("national_id = [\"ID-nr elev\"]\nclass = [\"Basisgr.\"]").unwrap();
        let validated = read_text(text.as_bytes(), &profile, false).unwrap();
        assert_eq!(validated.roster.groups[0].name, "1A");
        assert!(validated.roster.students[0].national_id.is_some());
    }

    #[test]
    fn a_short_row_in_a_crlf_file_is_a_deviation_on_that_row_not_a_cut_off_file() {
        let text = format!(
            "{HEADER}\r\n46505;Fana skule;1A;1;16881774198;Nilsen;Oskar;M\r\n46505;Fana skule;1A;1;01818012345\r\n46505;Fana skule;1B;1;16881774198;Berg;Kari;K"
        );
        for pipelined in [false, true] {
            let v = read_text(text.as_bytes(), &ColumnProfile::default(), pipelined).unwrap();
            let found: Vec<(Code, Position)> =
                v.deviations.iter().map(|d| (d.code, d.position)).collect();
            assert!(
                found.contains(&(Code::ShortRow, Position::Line(3))),
                "{found:?}"
            );
            assert!(
                found.contains(&(Code::MissingRequired, Position::Line(3))),
                "{found:?}"
            );
        }
    }

    #[test]
    fn wis_skole_columns_are_read_and_a_five_digit_personnummer_is_completed() {
        let text =
            "Skolenummer;Klassetrinn;Klassenavn;Etternavn;Fornavn;Fødselsdato;Personnummer\n\
                    46505;10;10-A;Nilsen;Oskar;16.88.2017;74198\n";
        let v = read_text(text.as_bytes(), &ColumnProfile::default(), false).unwrap();
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        assert_eq!(v.roster.groups[0].name, "10-A");
        assert_eq!(v.roster.groups[0].grade.as_deref(), Some("10"));
        let id = v.roster.students[0]
            .national_id
            .as_ref()
            .expect("a national id");
        assert_eq!(id.masked(), "168817*****");
    }

    #[test]
    fn every_column_that_is_not_read_is_named_in_a_warning() {
        let text = format!("{HEADER};Postnummer;;Kontaktlærer\n46505;Fana skule;1A;1;16881774198;Nilsen;Oskar;M;5003;;Lise\n");
        let v = read_text(text.as_bytes(), &ColumnProfile::default(), false).unwrap();
        let unknown: Vec<&str> = v
            .deviations
            .iter()
            .filter(|d| d.code == Code::UnknownColumn)
            .map(|d| d.detail.as_str())
            .collect();
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(unknown[0].contains("`Postnummer`"));
        assert!(unknown[1].contains("`Kontaktlærer`"));
        assert_eq!(
            v.columns,
            ["Kjønn", "Klasse", "Trinn", "Skolenavn"],
            "the optional fields found; required ones are always there"
        );
    }

    #[test]
    fn ddmmyy_takes_the_date_forms_exports_use() {
        for text in ["21.03.1987", "21.03.87", "210387", "1987-03-21"] {
            assert_eq!(ddmmyy(text).as_deref(), Some("210387"), "{text}");
        }
        assert_eq!(ddmmyy("21.3.1987"), None);
        assert_eq!(birth_date("21.03.1987"), CivilDate::parse_iso("1987-03-21"));
    }

    #[test]
    fn both_ways_of_reading_agree() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/faulty/elevliste.csv"
        );
        let bytes = std::fs::read(path).unwrap();
        let one = read_text(&bytes, &ColumnProfile::default(), false).unwrap();
        let two = read_text(&bytes, &ColumnProfile::default(), true).unwrap();
        assert_eq!(one.roster, two.roster);
        assert_eq!(one.deviations, two.deviations);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), pipelined: bool) {
            let _ = read_text(&bytes, &ColumnProfile::default(), pipelined);
        }

        #[test]
        fn arbitrary_rows_under_a_valid_header_never_panic(rows in proptest::collection::vec("[0-9A-Za-zæøå;\"\r\n ]{0,80}", 0..20)) {
            let text = format!("{HEADER}\n{}", rows.join("\n"));
            let _ = read_text(text.as_bytes(), &ColumnProfile::default(), true);
        }
    }
}
