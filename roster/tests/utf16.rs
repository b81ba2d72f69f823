//! UTF-16 exports, as Windows tools save "Unicode" text: the test data's exports, rewritten
//! in UTF-16 little-endian with a BOM and big-endian (with and without one), must read to
//! the same roster, with the same deviations, as the UTF-8 files they were made from.

use std::path::{Path, PathBuf};

use skolebro_roster::reader::{detect, read_export, Format, ReaderOptions};
use skolebro_roster::validate::Validated;

mod support;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(path)
}

/// A test export's text: UTF-8, or Windows-1252 as the faulty elevliste is written.
fn text_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(e.as_bytes())
            .0
            .into_owned(),
    }
}

fn read(path: &Path) -> (Format, Validated) {
    read_export(path, None, &ReaderOptions::default())
        .unwrap_or_else(|e| panic!("{} reads: {e}", path.display()))
}

/// The roster and the deviations without the file names, which differ by copy.
fn same(one: &Validated, other: &Validated, what: &str) {
    assert_eq!(one.roster, other.roster, "{what}");
    let strip = |v: &Validated| -> Vec<_> {
        v.deviations
            .iter()
            .map(|d| (d.code, d.severity, d.position, d.detail.clone()))
            .collect()
    };
    assert_eq!(strip(one), strip(other), "{what}");
    assert!(
        !one.roster.students.is_empty(),
        "{what}: the export has students"
    );
}

const ORDERS: [(bool, bool, &str); 3] = [
    (false, true, "UTF-16LE with a BOM"),
    (true, true, "UTF-16BE with a BOM"),
    (true, false, "UTF-16BE without a BOM"),
];

#[test]
fn elevliste_json_and_ims_exports_in_utf16_read_as_their_utf8_originals() {
    let dir = tempfile::tempdir().unwrap();
    for (original, format) in [
        ("clean/elevliste.csv", Format::Elevliste),
        ("faulty/elevliste.csv", Format::Elevliste),
        ("clean/users.json", Format::OneRosterJson),
        ("faulty/users.json", Format::OneRosterJson),
        ("clean/ims-enterprise.xml", Format::ImsEnterprise),
        ("faulty/ims-enterprise.xml", Format::ImsEnterprise),
    ] {
        let path = data(original);
        let (found, expected) = read(&path);
        assert_eq!(found, format, "{original}");
        let text = text_of(&path);
        for (big, bom, order) in ORDERS {
            let copy = dir.path().join(path.file_name().expect("a file name"));
            std::fs::write(&copy, support::utf16(&text, big, bom)).unwrap();
            let what = format!("{original} in {order}");
            assert_eq!(detect(&copy).unwrap(), format, "{what}");
            let (_, decoded) = read(&copy);
            same(&expected, &decoded, &what);
        }
    }
}

#[test]
fn a_oneroster_folder_whose_files_are_utf16_reads_as_its_utf8_original() {
    for (original, (big, bom, order)) in ["clean/oneroster", "faulty/oneroster"]
        .into_iter()
        .flat_map(|folder| ORDERS.map(|order| (folder, order)))
    {
        let original = data(original);
        let (_, expected) = read(&original);
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&original).unwrap() {
            let entry = entry.unwrap();
            let text = text_of(&entry.path());
            std::fs::write(
                dir.path().join(entry.file_name()),
                support::utf16(&text, big, bom),
            )
            .unwrap();
        }
        let (format, decoded) = read(dir.path());
        assert_eq!(format, Format::OneRosterCsv);
        let what = format!("{} in {order}", original.display());
        same(&expected, &decoded, &what);
    }
}
