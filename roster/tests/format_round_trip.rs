//! Generate → write → read round trips for the OneRoster CSV, OneRoster JSON and IMS
//! Enterprise readers, as `round_trip.rs` does for the elevliste. An arbitrary roster of one
//! school, its classes and its pupils is written by small writers of this test's own (not
//! the readers' code), with æøå, quotes, separators and markup characters inside fields, LF
//! or CRLF, and in each encoding the format allows; it is read back with the agent's reader
//! and compared record by record, field by field, so a reader bug shows as a named field of
//! a named record, not only as a wrong count.

use std::path::Path;

use proptest::prelude::*;
use skolebro_protocol::national_id::{CivilDate, NationalId};
use skolebro_protocol::{Enrollment, Gender, Group, School, Student};
use skolebro_roster::reader::{ims_enterprise, oneroster_csv, oneroster_json};
use skolebro_roster::validate::{RosterBuilder, Validated};

mod support;

/// The school every generated pupil attends, by its skolenummer.
const SCHOOL: &str = "46505";

/// One generated pupil: what the writers put in the file.
#[derive(Debug, Clone)]
struct Pupil {
    given: String,
    middle: Option<String>,
    family: String,
    username: Option<String>,
    email: Option<String>,
    gender: Gender,
    /// Year, month and day of birth.
    born: (u16, u8, u8),
    /// Whether the export states a national id (a synthetic one, born on `born`).
    has_id: bool,
    /// The pupil's class, an index into [`Export::classes`].
    class: usize,
}

/// One generated export: a school, its basisgrupper and its pupils.
#[derive(Debug, Clone)]
struct Export {
    school_name: String,
    classes: Vec<String>,
    pupils: Vec<Pupil>,
}

/// A name: starts and ends with a letter, with Norwegian letters, quotes, semicolons,
/// commas, apostrophes, hyphens, ampersands, angle brackets and single spaces in between.
fn name() -> impl Strategy<Value = String> {
    "[A-ZÆØÅa-zæøå]([a-zæøåÆØÅ\";,'&<>-]| [a-zæøå]){0,8}[a-zæøå]"
}

fn gender() -> impl Strategy<Value = Gender> {
    prop_oneof![
        Just(Gender::Unknown),
        Just(Gender::Female),
        Just(Gender::Male)
    ]
}

fn pupil() -> impl Strategy<Value = Pupil> {
    (
        (name(), proptest::option::of(name()), name()),
        proptest::option::of("[a-zæøå][a-zæøå.]{0,6}[a-z]"),
        proptest::option::of("[a-z]{1,6}\\.[a-z]{1,6}@skule\\.example\\.no"),
        gender(),
        (2008u16..=2019, 1u8..=12, 1u8..=28),
        any::<bool>(),
        0usize..8,
    )
        .prop_map(
            |((given, middle, family), username, email, gender, born, has_id, class)| Pupil {
                given,
                middle,
                family,
                username,
                email,
                gender,
                born,
                has_id,
                class,
            },
        )
}

fn export() -> impl Strategy<Value = Export> {
    (
        name(),
        proptest::collection::btree_set("[1-9][A-EÆØÅ,;\"&<]", 1..5),
        proptest::collection::vec(pupil(), 1..25),
    )
        .prop_map(|(school_name, classes, mut pupils)| {
            let classes: Vec<String> = classes.into_iter().collect();
            for pupil in &mut pupils {
                pupil.class %= classes.len();
            }
            Export {
                school_name,
                classes,
                pupils,
            }
        })
}

/// How a file is written: as bytes of UTF-8 (with a BOM or not), Windows-1252, or UTF-16
/// of either byte order (with a BOM or not), with LF or CRLF line ends.
#[derive(Debug, Clone, Copy)]
struct Form {
    encoding: Encoding,
    crlf: bool,
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Windows1252,
    Utf16 { big: bool, bom: bool },
}

/// The encodings every format takes, and Windows-1252 where `legacy` says the format
/// allows it.
fn form(legacy: bool) -> impl Strategy<Value = Form> {
    let utf16 = (any::<bool>(), any::<bool>()).prop_map(|(big, bom)| Encoding::Utf16 { big, bom });
    let encoding = if legacy {
        prop_oneof![
            Just(Encoding::Utf8),
            Just(Encoding::Utf8Bom),
            Just(Encoding::Windows1252),
            utf16,
        ]
        .boxed()
    } else {
        prop_oneof![Just(Encoding::Utf8), Just(Encoding::Utf8Bom), utf16].boxed()
    };
    (encoding, any::<bool>()).prop_map(|(encoding, crlf)| Form { encoding, crlf })
}

impl Form {
    fn end(self) -> &'static str {
        if self.crlf {
            "\r\n"
        } else {
            "\n"
        }
    }

    fn bytes(self, text: &str) -> Vec<u8> {
        match self.encoding {
            Encoding::Utf8 => text.as_bytes().to_vec(),
            Encoding::Utf8Bom => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            Encoding::Windows1252 => {
                let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
                assert!(!unmappable, "every generated letter is in Windows-1252");
                bytes.into_owned()
            }
            Encoding::Utf16 { big, bom } => support::utf16(text, big, bom),
        }
    }
}

fn student_key(index: usize) -> String {
    format!("elev-{index}")
}

fn class_key(index: usize) -> String {
    format!("{SCHOOL}-k{index}")
}

fn iso(born: (u16, u8, u8)) -> String {
    let (year, month, day) = born;
    format!("{year:04}-{month:02}-{day:02}")
}

/// The synthetic national id (month + 80) of the pupil at `index`, born on `born` (2000
/// to 2039, individual numbers 500-999), distinct per index; control digits computed here,
/// not by the validator. `None` in the rare case that none of the index's ten individual
/// numbers gives valid control digits.
fn national_id(index: usize, born: (u16, u8, u8)) -> Option<String> {
    let (year, month, day) = born;
    let control = |digits: &[u32], weights: &[u32]| match 11
        - digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11
    {
        11 => Some(0),
        10 => None,
        k => Some(k),
    };
    (0..10).find_map(|step| {
        let individual = 500 + index * 10 + step;
        let nine = format!("{day:02}{:02}{:02}{individual:03}", month + 80, year % 100);
        let mut digits: Vec<u32> = nine.bytes().map(|b| u32::from(b - b'0')).collect();
        digits.push(control(&digits, &[3, 7, 6, 1, 8, 9, 4, 5, 2])?);
        digits.push(control(&digits, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])?);
        Some(digits.iter().map(|d| d.to_string()).collect())
    })
}

impl Export {
    fn id(&self, index: usize) -> Option<String> {
        let pupil = &self.pupils[index];
        pupil
            .has_id
            .then(|| national_id(index, pupil.born))
            .flatten()
    }

    /// The students as the reader must give them back. `stated_birth` and `stated_gender`:
    /// whether the format carries them; else the birth date is the national id's, and the
    /// gender unknown.
    fn students(&self, stated_birth: bool, stated_gender: bool) -> Vec<Student> {
        self.pupils
            .iter()
            .enumerate()
            .map(|(index, pupil)| {
                let id = self.id(index);
                let birth_date = (stated_birth || id.is_some())
                    .then(|| CivilDate::parse_iso(&iso(pupil.born)).expect("a generated date"));
                Student {
                    source_key: student_key(index).into(),
                    national_id: id.map(|id| NationalId::parse(&id).expect("a valid synthetic id")),
                    username: pupil.username.as_deref().map(Into::into),
                    given_name: pupil.given.as_str().into(),
                    middle_name: pupil.middle.as_deref().map(Into::into),
                    family_name: pupil.family.as_str().into(),
                    birth_date,
                    gender: if stated_gender {
                        pupil.gender
                    } else {
                        Gender::Unknown
                    },
                    email: pupil.email.as_deref().map(Into::into),
                }
            })
            .collect()
    }

    fn groups(&self) -> Vec<Group> {
        self.classes
            .iter()
            .enumerate()
            .map(|(index, name)| Group {
                source_key: class_key(index).into(),
                name: name.as_str().into(),
                grade: None,
                school: SCHOOL.into(),
                school_year: None,
            })
            .collect()
    }

    /// `(student, school, group)` of each enrollment; `with_class` when the format names
    /// the pupils' classes.
    fn enrollments(&self, with_class: bool) -> Vec<(String, String, Option<String>)> {
        self.pupils
            .iter()
            .enumerate()
            .map(|(index, pupil)| {
                (
                    student_key(index),
                    SCHOOL.to_owned(),
                    with_class.then(|| class_key(pupil.class)),
                )
            })
            .collect()
    }

    fn school(&self, name: &str) -> School {
        School {
            skolenummer: SCHOOL.into(),
            organisasjonsnummer: None,
            kommunenummer: None,
            fylkesnummer: None,
            name: name.into(),
        }
    }
}

/// Asserts that `read` holds exactly what was written, record by record.
fn assert_read_back(
    read: &Validated,
    students: Vec<Student>,
    groups: Vec<Group>,
    enrollments: Vec<(String, String, Option<String>)>,
    school: School,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(read.errors(), 0, "{:?}", read.deviations);
    let mut read_students = read.roster.students.clone();
    read_students.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    let mut students = students;
    students.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    prop_assert_eq!(read_students, students);
    let mut read_groups = read.roster.groups.clone();
    read_groups.sort_by(|a, b| a.source_key.cmp(&b.source_key));
    prop_assert_eq!(read_groups, groups);
    let mut read_enrollments: Vec<(String, String, Option<String>)> = read
        .roster
        .enrollments
        .iter()
        .map(|e: &Enrollment| {
            (
                e.student.to_string(),
                e.school.to_string(),
                e.group.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    read_enrollments.sort();
    let mut enrollments = enrollments;
    enrollments.sort();
    prop_assert_eq!(read_enrollments, enrollments);
    prop_assert_eq!(&read.roster.schools, &vec![school]);
    Ok(())
}

/// A comma file's field: quoted (quotes doubled) when it holds a separator or a quote.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_file(header: &str, rows: &[Vec<String>], form: Form) -> Vec<u8> {
    let end = form.end();
    let mut text = format!("{header}{end}");
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        text.push_str(&fields.join(","));
        text.push_str(end);
    }
    form.bytes(&text)
}

/// Writes the export as OneRoster 1.1 CSV files (no manifest: bulk) into `dir`.
fn write_oneroster_csv(export: &Export, form: Form, dir: &Path) {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let orgs = [vec![
        SCHOOL.to_owned(),
        export.school_name.clone(),
        "school".to_owned(),
        SCHOOL.to_owned(),
    ]];
    let classes: Vec<Vec<String>> = export
        .classes
        .iter()
        .enumerate()
        .map(|(index, title)| {
            vec![
                class_key(index),
                title.clone(),
                "homeroom".to_owned(),
                SCHOOL.to_owned(),
            ]
        })
        .collect();
    let mut users = Vec::new();
    let mut demographics = Vec::new();
    let mut enrollments = Vec::new();
    for (index, pupil) in export.pupils.iter().enumerate() {
        users.push(vec![
            student_key(index),
            SCHOOL.to_owned(),
            "student".to_owned(),
            text(&pupil.username),
            pupil.given.clone(),
            pupil.family.clone(),
            text(&pupil.middle),
            export.id(index).unwrap_or_default(),
            text(&pupil.email),
        ]);
        let sex = match pupil.gender {
            Gender::Female => "female",
            Gender::Male => "male",
            _ => "",
        };
        demographics.push(vec![student_key(index), iso(pupil.born), sex.to_owned()]);
        enrollments.push(vec![
            format!("enr-{index}"),
            class_key(pupil.class),
            SCHOOL.to_owned(),
            student_key(index),
            "student".to_owned(),
        ]);
    }
    let files = [
        ("orgs.csv", "sourcedId,name,type,identifier", &orgs[..]),
        (
            "classes.csv",
            "sourcedId,title,classType,schoolSourcedId",
            &classes[..],
        ),
        (
            "users.csv",
            "sourcedId,orgSourcedIds,role,username,givenName,familyName,middleName,identifier,email",
            &users[..],
        ),
        (
            "demographics.csv",
            "sourcedId,birthDate,sex",
            &demographics[..],
        ),
        (
            "enrollments.csv",
            "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role",
            &enrollments[..],
        ),
    ];
    for (file, header, rows) in files {
        std::fs::write(dir.join(file), csv_file(header, rows, form)).expect("a temporary file");
    }
}

/// A JSON string literal; with `ascii` every character outside ASCII is a `\u` escape (as
/// some serializers write them), UTF-16 surrogate pairs included.
fn json_string(text: &str, ascii: bool) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The export as a OneRoster JSON users collection, one field a line.
fn write_oneroster_json(export: &Export, form: Form, ascii: bool) -> Vec<u8> {
    let end = form.end();
    let string = |s: &str| json_string(s, ascii);
    let mut users = Vec::new();
    for (index, pupil) in export.pupils.iter().enumerate() {
        let mut fields = vec![
            format!("\"sourcedId\": {}", string(&student_key(index))),
            "\"status\": \"active\"".to_owned(),
            "\"role\": \"student\"".to_owned(),
            format!("\"givenName\": {}", string(&pupil.given)),
            format!("\"familyName\": {}", string(&pupil.family)),
        ];
        let optional = [
            ("username", pupil.username.clone()),
            ("middleName", pupil.middle.clone()),
            ("identifier", export.id(index)),
            ("email", pupil.email.clone()),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                fields.push(format!("\"{field}\": {}", string(&value)));
            }
        }
        fields.push(format!(
            "\"orgs\": [{{\"sourcedId\": {}, \"type\": \"school\"}}]",
            string(SCHOOL)
        ));
        users.push(format!(
            "  {{{end}    {}{end}  }}",
            fields.join(&format!(",{end}    "))
        ));
    }
    let text = format!(
        "{{\"users\": [{end}{}{end}]}}{end}",
        users.join(&format!(",{end}"))
    );
    form.bytes(&text)
}

/// XML character data; with `numeric` every character outside ASCII is a character
/// reference, as some exporters write them.
fn xml_text(text: &str, numeric: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if numeric && !c.is_ascii() => out.push_str(&format!("&#{};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn sourcedid(id: &str) -> String {
    format!("<sourcedid><source>sas@4601</source><id>{id}</id></sourcedid>")
}

/// The export as a PIFU-IMS Enterprise document: persons, the school and class groups,
/// and one membership per class.
fn write_ims(export: &Export, form: Form, numeric: bool) -> Vec<u8> {
    let end = form.end();
    let x = |s: &str| xml_text(s, numeric);
    let label = match form.encoding {
        Encoding::Windows1252 => "windows-1252",
        Encoding::Utf16 { .. } => "UTF-16",
        Encoding::Utf8 | Encoding::Utf8Bom => "UTF-8",
    };
    let mut text = format!(
        "<?xml version=\"1.0\" encoding=\"{label}\"?>{end}\
         <enterprise xmlns=\"http://pifu.no/xsd/pifu-ims_sas/pifu-ims_sas-1.1\">{end}\
         <properties><datasource>sas@4601</datasource><type>full</type></properties>{end}"
    );
    for (index, pupil) in export.pupils.iter().enumerate() {
        let mut person = format!("<person>{}", sourcedid(&student_key(index)));
        if let Some(id) = export.id(index) {
            person.push_str(&format!("<userid useridtype=\"personNIN\">{id}</userid>"));
        }
        if let Some(username) = &pupil.username {
            person.push_str(&format!(
                "<userid useridtype=\"username\">{}</userid>",
                x(username)
            ));
        }
        person.push_str(&format!(
            "<name><fn>{} {}</fn><n><family>{}</family><given>{}</given>",
            x(&pupil.given),
            x(&pupil.family),
            x(&pupil.family),
            x(&pupil.given)
        ));
        if let Some(middle) = &pupil.middle {
            person.push_str(&format!(
                "<partname partnametype=\"middlename\">{}</partname>",
                x(middle)
            ));
        }
        person.push_str("</n></name><demographics>");
        match pupil.gender {
            Gender::Female => person.push_str("<gender>1</gender>"),
            Gender::Male => person.push_str("<gender>2</gender>"),
            _ => {}
        }
        person.push_str(&format!("<bday>{}</bday></demographics>", iso(pupil.born)));
        if let Some(email) = &pupil.email {
            person.push_str(&format!("<email>{}</email>", x(email)));
        }
        text.push_str(&person);
        text.push_str("</person>");
        text.push_str(end);
    }
    text.push_str(&format!(
        "<group>{}<grouptype><scheme>pifu-ims-go-org</scheme><typevalue level=\"2\">skole\
         </typevalue></grouptype><description><short>{SCHOOL}</short><long>{}</long>\
         </description></group>{end}",
        sourcedid(SCHOOL),
        x(&export.school_name)
    ));
    for (index, name) in export.classes.iter().enumerate() {
        text.push_str(&format!(
            "<group>{}<grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level=\"1\">\
             basisgruppe</typevalue></grouptype><description><short>{}</short></description>\
             <relationship relation=\"1\">{}<label>skole</label></relationship></group>{end}",
            sourcedid(&class_key(index)),
            x(name),
            sourcedid(SCHOOL)
        ));
    }
    for index in 0..export.classes.len() {
        text.push_str(&format!(
            "<membership>{}{end}",
            sourcedid(&class_key(index))
        ));
        for (pupil_index, pupil) in export.pupils.iter().enumerate() {
            if pupil.class == index {
                text.push_str(&format!(
                    "  <member>{}<idtype>1</idtype><role roletype=\"01\"><status>1</status>\
                     </role></member>{end}",
                    sourcedid(&student_key(pupil_index))
                ));
            }
        }
        text.push_str(&format!("</membership>{end}"));
    }
    text.push_str(&format!("</enterprise>{end}"));
    form.bytes(&text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_oneroster_csv_export_reads_back_field_by_field(export in export(), form in form(true)) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        write_oneroster_csv(&export, form, dir.path());
        let mut builder = RosterBuilder::new(Default::default());
        oneroster_csv::read(dir.path(), &mut builder)
            .map_err(|e| TestCaseError::fail(format!("the export reads: {e}")))?;
        assert_read_back(
            &builder.finish(),
            export.students(true, true),
            export.groups(),
            export.enrollments(true),
            export.school(&export.school_name),
        )?;
    }

    #[test]
    fn a_oneroster_json_collection_reads_back_field_by_field(
        export in export(),
        form in form(false),
        ascii in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("users.json");
        std::fs::write(&path, write_oneroster_json(&export, form, ascii)).expect("a temporary file");
        let mut builder = RosterBuilder::new(Default::default());
        oneroster_json::read(&path, &mut builder)
            .map_err(|e| TestCaseError::fail(format!("the collection reads: {e}")))?;
        // The collection names the school only by its sourcedId, and no classes.
        assert_read_back(
            &builder.finish(),
            export.students(false, false),
            Vec::new(),
            export.enrollments(false),
            export.school(SCHOOL),
        )?;
    }

    #[test]
    fn an_ims_enterprise_document_reads_back_field_by_field(
        export in export(),
        form in form(true),
        numeric in any::<bool>(),
    ) {
        let bytes = write_ims(&export, form, numeric);
        let mut builder = RosterBuilder::new(Default::default());
        ims_enterprise::read_from(Path::new("ims.xml"), bytes.as_slice(), &mut builder)
            .map_err(|e| TestCaseError::fail(format!("the document reads: {e}")))?;
        assert_read_back(
            &builder.finish(),
            export.students(true, true),
            export.groups(),
            export.enrollments(true),
            export.school(&export.school_name),
        )?;
    }
}
