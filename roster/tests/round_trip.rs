//! Generate → write → read round trips for the elevliste: arbitrary pupils are written by a
//! writer of this test's own (not the reader's code), in UTF-8 with or without a BOM, in
//! Windows-1252 or in UTF-16 of either byte order with or without a BOM, with LF or CRLF, with æøå, quotes and semicolons inside fields, and read
//! back with the agent's reader. Every field must come back as written, so a reader bug shows
//! as a named field of a named pupil, not only as a wrong count.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use skolebro_roster::reader::elevliste;
use skolebro_roster::validate::RosterBuilder;

mod support;

const SCHOOL: &str = "46500";

/// One generated pupil: what the writer puts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pupil {
    given: String,
    middle: Option<String>,
    family: String,
    class: String,
    email: Option<String>,
}

/// How the file is written.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Windows1252,
    /// As Windows "Unicode" text: UTF-16, `big` endian or not, with a BOM or not.
    Utf16 {
        big: bool,
        bom: bool,
    },
}

/// A name: starts and ends with a letter, with Norwegian letters, quotes, semicolons,
/// commas, apostrophes, hyphens and single spaces in between.
fn name() -> impl Strategy<Value = String> {
    "[A-ZÆØÅa-zæøå]([a-zæøåÆØÅ\";,'-]| [a-zæøå]){0,8}[a-zæøå]"
}

fn pupil() -> impl Strategy<Value = Pupil> {
    (
        name(),
        proptest::option::of(name()),
        name(),
        "[1-9][A-EÆØÅ;\"]",
        proptest::option::of("[a-z]{1,6}\\.[a-z]{1,6}@skule\\.example\\.no"),
    )
        .prop_map(|(given, middle, family, class, email)| Pupil {
            given,
            middle,
            family,
            class,
            email,
        })
}

/// One field of a semicolon file: quoted (quotes doubled) when it holds a separator or a
/// quote, as a SAS writes it.
fn field(text: &str) -> String {
    if text.contains([';', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The elevliste of `pupils`, keyed `elev<index>`, as bytes.
fn write(pupils: &[Pupil], crlf: bool, encoding: Encoding) -> Vec<u8> {
    let end = if crlf { "\r\n" } else { "\n" };
    let mut text =
        format!("Skolenummer;Skolenavn;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn;Mellomnavn;E-post{end}");
    for (index, pupil) in pupils.iter().enumerate() {
        let fields = [
            SCHOOL.to_owned(),
            "Fana skule".to_owned(),
            pupil.class.clone(),
            format!("elev{index}"),
            String::new(),
            pupil.family.clone(),
            pupil.given.clone(),
            pupil.middle.clone().unwrap_or_default(),
            pupil.email.clone().unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| field(f)).collect();
        text.push_str(&row.join(";"));
        text.push_str(end);
    }
    match encoding {
        Encoding::Utf8 => text.into_bytes(),
        Encoding::Utf8Bom => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
        Encoding::Windows1252 => {
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
            assert!(!unmappable, "every generated letter is in Windows-1252");
            bytes.into_owned()
        }
        Encoding::Utf16 { big, bom } => support::utf16(&text, big, bom),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn an_elevliste_reads_back_field_by_field(
        pupils in proptest::collection::vec(pupil(), 1..30),
        crlf in any::<bool>(),
        encoding in prop_oneof![
            Just(Encoding::Utf8),
            Just(Encoding::Utf8Bom),
            Just(Encoding::Windows1252),
            (any::<bool>(), any::<bool>()).prop_map(|(big, bom)| Encoding::Utf16 { big, bom }),
        ],
    ) {
        let bytes = write(&pupils, crlf, encoding);
        let mut builder = RosterBuilder::new(Default::default());
        elevliste::read_from(
            Path::new("elevliste.csv"),
            bytes.as_slice(),
            &Default::default(),
            false,
            &mut builder,
        )
        .map_err(|e| TestCaseError::fail(format!("the file reads: {e}")))?;
        let read = builder.finish();
        prop_assert_eq!(read.errors(), 0, "{:?}", read.deviations);

        let students: BTreeMap<String, Pupil> = read
            .roster
            .students
            .iter()
            .map(|s| {
                let enrollment = read
                    .roster
                    .enrollments
                    .iter()
                    .find(|e| e.student == s.source_key)
                    .expect("each pupil is enrolled");
                let group = read
                    .roster
                    .groups
                    .iter()
                    .find(|g| Some(&g.source_key) == enrollment.group.as_ref())
                    .expect("in a class of the roster");
                (
                    s.source_key.to_string(),
                    Pupil {
                        given: s.given_name.to_string(),
                        middle: s.middle_name.as_ref().map(ToString::to_string),
                        family: s.family_name.to_string(),
                        class: group.name.to_string(),
                        email: s.email.as_ref().map(ToString::to_string),
                    },
                )
            })
            .collect();
        let expected: BTreeMap<String, Pupil> = pupils
            .iter()
            .enumerate()
            .map(|(index, pupil)| (format!("elev{index}"), pupil.clone()))
            .collect();
        prop_assert_eq!(students, expected);
        prop_assert_eq!(read.roster.schools.len(), 1);
        prop_assert_eq!(read.roster.schools[0].name.as_str(), "Fana skule");
    }
}
