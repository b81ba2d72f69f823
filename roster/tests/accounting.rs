//! Exact record accounting (`skolebro_roster::accounting`): every data record an export
//! holds ends up in the roster (or a tombstone), named by a deviation, or left out by design
//! as no roster data; none is dropped without a word. Checked on every export the
//! repository holds (`tests/data`, `tests/corpus`), and on generated exports whose records
//! this test counts itself, each record drawn from a menu of faults, so that the readers'
//! own count of what they saw is checked too. The fuzz targets assert the same on any bytes.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use skolebro_roster::accounting::Accounting;
use skolebro_roster::reader::{read_export, Format, ReaderOptions};
use skolebro_roster::validate::ValidationOptions;

/// The options `check` reads with, with accounting on.
fn options(pipelined: bool) -> ReaderOptions {
    ReaderOptions {
        validation: ValidationOptions {
            account_records: true,
            ..ValidationOptions::default()
        },
        pipelined,
        ..ReaderOptions::default()
    }
}

/// Reads `path` and hands back the accounting, asserting it is complete.
fn accounted(path: &Path, format: Option<Format>, pipelined: bool) -> Accounting {
    let (_, validated) = read_export(path, format, &options(pipelined))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let accounting = validated.accounting.expect("accounting was asked for");
    assert!(
        accounting.is_complete(),
        "{}: records dropped without a word: {accounting:?}",
        path.display()
    );
    accounting
}

/// Every export the repository holds, as `check` would be pointed at it.
fn exports() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let mut found = Vec::new();
    let mut folders = vec![root.join("data"), root.join("corpus")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name == "oneroster" || name == "export" {
                    found.push(path);
                } else if name != "LICENSES" {
                    folders.push(path);
                }
            } else if name.ends_with(".xml")
                || name.ends_with(".zip")
                || name == "users.json"
                || name == "elevliste.csv"
                || (folder.to_string_lossy().contains("wis-skole") && name.ends_with(".csv"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_record_of_every_export_in_the_repository_is_kept_or_named() {
    let exports = exports();
    assert!(exports.len() >= 20, "found only {exports:?}");
    let mut deviated = 0;
    for path in &exports {
        let accounting = accounted(path, None, true);
        assert!(accounting.seen > 0, "{}: no records seen", path.display());
        deviated += accounting.deviated;
    }
    assert!(
        deviated > 0,
        "the faulty exports have records with deviations"
    );
}

/// One elevliste row, as a fault (or none) makes it.
#[derive(Debug, Clone, Copy)]
enum Row {
    Sound,
    /// The row before it once more.
    Repeat,
    /// Another person with the national id of the row before it.
    SameId,
    BadId,
    NoId,
    NoSchool,
    NoName,
    /// Fewer fields than the header.
    Short,
    /// Three fields only: still a row, with its key and school missing.
    Stub,
}

fn elevliste_row() -> impl Strategy<Value = Row> {
    prop_oneof![
        4 => Just(Row::Sound),
        1 => Just(Row::Repeat),
        1 => Just(Row::SameId),
        1 => Just(Row::BadId),
        1 => Just(Row::NoId),
        1 => Just(Row::NoSchool),
        1 => Just(Row::NoName),
        1 => Just(Row::Short),
        1 => Just(Row::Stub),
    ]
}

/// A synthetic national id (month + 80) with valid control digits, one per `n`.
fn synthetic_id(n: usize) -> String {
    let day = 1 + n % 28;
    let serial = 100 + n % 900;
    let base = format!("{day:02}8817{serial:03}");
    let digits: Vec<u32> = base.bytes().map(|b| u32::from(b - b'0')).collect();
    let weights1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let weights2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let control = |digits: &[u32], weights: &[u32]| {
        let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    match control(&digits, &weights1) {
        Some(k1) => {
            let mut with = digits.clone();
            with.push(k1);
            match control(&with, &weights2) {
                Some(k2) => format!("{base}{k1}{k2}"),
                None => synthetic_id(n + 1000),
            }
        }
        None => synthetic_id(n + 1000),
    }
}

/// An elevliste of `rows`, with a blank line wherever `blank` says; returns the text and the
/// data rows it holds.
fn elevliste(rows: &[Row], blank: &[bool], crlf: bool) -> (String, u64) {
    let end = if crlf { "\r\n" } else { "\n" };
    let mut text = format!("Skolenummer;Klasse;Fødselsnummer;Etternavn;Fornavn{end}");
    let mut last: Option<String> = None;
    let mut count = 0;
    for (i, row) in rows.iter().enumerate() {
        let id = synthetic_id(i);
        let line = match row {
            Row::Sound => format!("46505;1A;{id};Nordmann;Kari"),
            Row::Repeat => last
                .clone()
                .unwrap_or(format!("46505;1A;{id};Nordmann;Kari")),
            Row::SameId => {
                let previous = last
                    .as_deref()
                    .and_then(|l| l.split(';').nth(2))
                    .filter(|id| !id.is_empty())
                    .unwrap_or(&id)
                    .to_owned();
                format!("46505;1B;{previous};Berg;Ola")
            }
            Row::BadId => format!("46505;1A;{}0;Nordmann;Kari", &id[..10]),
            Row::NoId => "46505;1A;;Nordmann;Kari".to_owned(),
            Row::NoSchool => format!(";1A;{id};Nordmann;Kari"),
            Row::NoName => format!("46505;1A;{id};;"),
            Row::Short => format!("46505;1A;{id};Nordmann"),
            Row::Stub => "46505;1A;".to_owned(),
        };
        text.push_str(&line);
        text.push_str(end);
        count += 1;
        if blank.get(i).copied().unwrap_or(false) {
            text.push_str(end);
        }
        last = Some(line);
    }
    (text, count)
}

/// One OneRoster JSON user, as a fault (or none) makes it.
#[derive(Debug, Clone, Copy)]
enum User {
    Student,
    Teacher,
    NotAnObject,
    NoSourcedId,
    NoName,
    Deleted,
    /// The user before it once more.
    Repeat,
    NoSchool,
    BadId,
}

fn json_user() -> impl Strategy<Value = User> {
    prop_oneof![
        4 => Just(User::Student),
        1 => Just(User::Teacher),
        1 => Just(User::NotAnObject),
        1 => Just(User::NoSourcedId),
        1 => Just(User::NoName),
        1 => Just(User::Deleted),
        1 => Just(User::Repeat),
        1 => Just(User::NoSchool),
        1 => Just(User::BadId),
    ]
}

fn users_json(users: &[User]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let orgs = r#""orgs": [{"sourcedId": "46505", "type": "school"}]"#;
        let id = synthetic_id(i);
        let text = match user {
            User::Student => format!(
                r#"{{"sourcedId": "u{i}", "role": "student", "givenName": "Kari", "familyName": "Nordmann", "identifier": "{id}", {orgs}}}"#
            ),
            User::Teacher => format!(
                r#"{{"sourcedId": "u{i}", "role": "teacher", "givenName": "Lise", "familyName": "Lærer", {orgs}}}"#
            ),
            User::NotAnObject => format!("[{i}]"),
            User::NoSourcedId => format!(
                r#"{{"role": "student", "givenName": "Kari", "familyName": "Nordmann", {orgs}}}"#
            ),
            User::NoName => format!(r#"{{"sourcedId": "u{i}", "role": "student", {orgs}}}"#),
            User::Deleted => format!(
                r#"{{"sourcedId": "u{i}", "status": "tobedeleted", "role": "student", {orgs}}}"#
            ),
            User::Repeat => out.last().cloned().unwrap_or_else(|| "{}".to_owned()),
            User::NoSchool => format!(
                r#"{{"sourcedId": "u{i}", "role": "student", "givenName": "Kari", "familyName": "Nordmann", "orgs": []}}"#
            ),
            User::BadId => format!(
                r#"{{"sourcedId": "u{i}", "role": "student", "givenName": "Kari", "familyName": "Nordmann", "identifier": "1234", {orgs}}}"#
            ),
        };
        out.push(text);
    }
    format!("{{\"users\": [\n{}\n]}}\n", out.join(",\n"))
}

/// One OneRoster CSV enrollment row, as a fault (or none) makes it.
#[derive(Debug, Clone, Copy)]
enum Member {
    Homeroom,
    Scheduled,
    Teacher,
    UnknownUser,
    /// Of the student `users.csv` refuses (a second person with a national id).
    RefusedUser,
    NoClass,
    UnknownClass,
}

fn member() -> impl Strategy<Value = Member> {
    prop_oneof![
        3 => Just(Member::Homeroom),
        1 => Just(Member::Scheduled),
        1 => Just(Member::Teacher),
        1 => Just(Member::UnknownUser),
        1 => Just(Member::RefusedUser),
        1 => Just(Member::NoClass),
        1 => Just(Member::UnknownClass),
    ]
}

/// A OneRoster 1.1 folder of `users` users (as for JSON) and `members` enrollments; returns
/// the data rows it holds.
fn write_oneroster(dir: &Path, users: &[User], members: &[Member]) -> u64 {
    let id = synthetic_id(7);
    let orgs = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
                o1,,,Fana skule,school,46505,d1\n\
                d1,,,Bergen,district,4601,\n\
                ,,,Nameless,school,,\n";
    let classes = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds\n\
                   c1,,,1A,01,,,homeroom,,o1,\n\
                   c2,,,Matte,01,,,scheduled,,o1,\n";
    let mut rows = 3 + 2;
    let mut text = String::from(
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n",
    );
    // The refused pair: the second person has the first one's national id.
    text.push_str(&format!(
        "first,,,true,o1,student,,,Kari,Nordmann,,{id},,,,,,\n\
         refused,,,true,o1,student,,,Ola,Berg,,{id},,,,,,\n"
    ));
    rows += 2;
    for (i, user) in users.iter().enumerate() {
        let id = synthetic_id(100 + i);
        let line = match user {
            User::Student | User::Repeat => {
                format!("u{i},,,true,o1,student,,,Kari,Nordmann,,{id},,,,,,")
            }
            User::Teacher => format!("u{i},,,true,o1,teacher,,,Lise,Lærer,,,,,,,,"),
            User::NotAnObject => format!(",,,true,o1,student,,,Kari,{i},,,,,,,,"),
            User::NoSourcedId => ",,,true,o1,student,,,Kari,Nordmann,,,,,,,,".to_owned(),
            User::NoName => format!("u{i},,,true,o1,student,,,,,,,,,,,,"),
            User::Deleted => format!("u{i},tobedeleted,,true,o1,student,,,Kari,Nordmann,,,,,,,,"),
            User::NoSchool => format!("u{i},,,true,,student,,,Kari,Nordmann,,,,,,,,"),
            User::BadId => format!("u{i},,,true,o1,student,,,Kari,Nordmann,,1234,,,,,,"),
        };
        text.push_str(&line);
        text.push('\n');
        rows += 1;
    }
    let mut enrollments = String::from(
        "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate,status,dateLastModified\n",
    );
    for (i, member) in members.iter().enumerate() {
        let line = match member {
            Member::Homeroom => format!("e{i},c1,o1,first,student,,,,,"),
            Member::Scheduled => format!("e{i},c2,o1,first,student,,,,,"),
            Member::Teacher => format!("e{i},c1,o1,first,teacher,,,,,"),
            Member::UnknownUser => format!("e{i},c1,o1,nobody,student,,,,,"),
            Member::RefusedUser => format!("e{i},c1,o1,refused,student,,,,,"),
            Member::NoClass => format!("e{i},,o1,first,student,,,,,"),
            Member::UnknownClass => format!("e{i},c9,o1,first,student,,,,,"),
        };
        enrollments.push_str(&line);
        enrollments.push('\n');
        rows += 1;
    }
    std::fs::write(dir.join("orgs.csv"), orgs).unwrap();
    std::fs::write(dir.join("classes.csv"), classes).unwrap();
    std::fs::write(dir.join("users.csv"), text).unwrap();
    std::fs::write(dir.join("enrollments.csv"), enrollments).unwrap();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_elevliste_row_is_kept_or_named_whatever_its_faults(
        rows in proptest::collection::vec(elevliste_row(), 0..40),
        blank in proptest::collection::vec(any::<bool>(), 0..40),
        crlf: bool,
        pipelined: bool,
    ) {
        let (text, count) = elevliste(&rows, &blank, crlf);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elevliste.csv");
        std::fs::write(&path, text).unwrap();
        let accounting = accounted(&path, Some(Format::Elevliste), pipelined);
        prop_assert_eq!(accounting.seen, count);
        prop_assert_eq!(accounting.outside, 0, "every elevliste row is a pupil");
    }

    #[test]
    fn every_user_of_a_json_collection_is_kept_or_named_whatever_its_faults(
        users in proptest::collection::vec(json_user(), 0..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        std::fs::write(&path, users_json(&users)).unwrap();
        let accounting = accounted(&path, Some(Format::OneRosterJson), false);
        prop_assert_eq!(accounting.seen, users.len() as u64);
        let teachers = users.iter().filter(|u| matches!(u, User::Teacher)).count() as u64;
        // A repeat of a teacher is one more.
        prop_assert!(accounting.outside >= teachers, "{:?}", accounting);
    }

    #[test]
    fn every_row_of_a_oneroster_folder_is_kept_or_named_whatever_its_faults(
        users in proptest::collection::vec(json_user(), 0..20),
        members in proptest::collection::vec(member(), 0..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rows = write_oneroster(dir.path(), &users, &members);
        let accounting = accounted(dir.path(), Some(Format::OneRosterCsv), false);
        prop_assert_eq!(accounting.seen, rows);
    }
}
