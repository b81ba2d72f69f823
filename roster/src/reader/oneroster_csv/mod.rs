//! OneRoster CSV (1.1 and 1.2): the set of comma files, in a folder or a `.zip`, that many SAS
//! and LMS products export. It is the first stage of the pipeline for such sites: each member
//! file is streamed row by row through [`Table`](crate::reader::table::Table) into the
//! [`RosterBuilder`], which validates and resolves references; nothing here holds a file's
//! text in memory.
//!
//! What becomes what:
//! - `orgs.csv` rows of type `school` are schools. The skolenummer is the org's `identifier`
//!   (its sourcedId when that is blank); every school reference elsewhere is a sourcedId and
//!   is translated through that map. A parent org whose identifier is four digits is the
//!   municipality: its kommunenummer, and the first two digits the fylkesnummer.
//! - `classes.csv` rows of class type `homeroom` are basisgrupper; scheduled classes are not.
//! - `users.csv` users with role `student` (1.1 `role` column, or a 1.2 `roles.csv` row) are
//!   students; `identifier` is the national id. `demographics.csv` adds sex and birth date.
//! - `enrollments.csv` student rows in a homeroom class are enrollments. A student whom
//!   only `users.csv` (`orgSourcedIds`, `primaryOrgSourcedId`) or `roles.csv`
//!   (`orgSourcedId`) ties to a school gets an enrollment there without a class, keyed
//!   `student@skolenummer`, as the IMS and JSON readers give one.
//!
//! `manifest.csv` says which files are there and whether each is bulk or delta; in delta
//! mode `tobedeleted` rows become tombstones instead of records. Everything else (courses,
//! teachers, results, line items, resources) is of no use to the roster and is not read.

mod manifest;
pub(super) mod records;
mod source;
pub(super) mod state;

use std::path::Path;

use crate::reader::error::ReadError;
use crate::validate::RosterBuilder;
use manifest::{open_table, read_manifest};
use records::{link_schools, read_classes, read_enrollments, read_orgs, read_users};
use source::Source;
use state::{read_demographics, read_roles, read_sessions, State};

pub use source::MAX_MEMBER_BYTES;

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
        read_users(&mut table, mode, &mut state, builder)?;
    }
    if let Some((mode, mut table)) = open_table(&mut source, &manifest, "enrollments", builder)? {
        read_enrollments(&mut table, mode, &mut state, builder)?;
    }
    // The file the links were read from, for the position of their enrollments.
    builder.begin_file("users.csv");
    link_schools(&state, builder);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use proptest::prelude::*;
    use skolebro_protocol::{Entity, Gender};

    use super::*;
    use crate::deviation::{Code, Position, Severity};
    use crate::reader::error::ReadErrorKind;
    use crate::validate::{Tombstone, Validated};

    const CLEAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/clean/oneroster");
    const FAULTY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/faulty/oneroster"
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
    fn a_member_that_is_a_symbolic_link_is_refused_without_reading_its_target() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.txt");
        std::fs::write(&secret, "02871662943,Nilsen,Oskar\n").unwrap();
        let export = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(CLEAN).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, export.path().join(path.file_name().unwrap())).unwrap();
        }
        let manifest = export.path().join("manifest.csv");
        let _ = std::fs::remove_file(&manifest);
        std::os::unix::fs::symlink(&secret, &manifest).unwrap();

        let error = read_path(export.path()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("manifest.csv"), "{text}");
        assert!(text.contains("symbolic link"), "{text}");
        assert!(
            !text.contains("Nilsen") && !text.contains("02871662943"),
            "{text}"
        );
    }

    #[test]
    fn the_faulty_export_reports_each_fault_and_keeps_the_well_formed_people() {
        let validated = read_path(Path::new(FAULTY)).unwrap();
        assert_eq!(counts(&validated), [80, 1, 28, 80]);
        assert_eq!(count(&validated, Code::InvalidNationalId), 4);
        assert_eq!(count(&validated, Code::DuplicateNationalId), 1);
        assert!(count(&validated, Code::DuplicateRecord) >= 1);
        // The refused student's enrollment goes with it, named on its own line.
        let others: Vec<_> = validated
            .deviations
            .iter()
            .filter(|d| {
                d.severity == Severity::Error
                    && !matches!(d.code, Code::InvalidNationalId | Code::DuplicateNationalId)
            })
            .collect();
        assert_eq!(others.len(), 1, "{others:#?}");
        assert_eq!(
            (others[0].code, others[0].file.as_str()),
            (Code::DanglingReference, "enrollments.csv")
        );
        assert!(others[0].detail.contains("left out for its own deviation"));
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

    #[test]
    fn a_student_tied_to_a_school_only_by_users_or_roles_gets_a_school_enrollment() {
        let orgs = "sourcedId,name,type,identifier\ns1,Skule,school,46505\n";
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("orgs.csv", orgs),
                ("users.csv", "sourcedId,role,givenName,familyName,orgSourcedIds\nu1,student,Oskar,Nilsen,s1\nu2,student,Kari,Berg,\"s1,s9\"\nt1,teacher,Kari,Lærer,s1\n"),
                ("classes.csv", "sourcedId,title,classType,schoolSourcedId\nh1,10A,homeroom,s1\n"),
                ("enrollments.csv", "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\ne1,h1,s1,u2,student\n"),
            ],
        );
        let v = read_path(dir.path()).unwrap();
        assert_eq!(v.deviations, vec![]);
        let enrollments: Vec<(&str, &str, Option<&str>)> = v
            .roster
            .enrollments
            .iter()
            .map(|e| (e.source_key.as_str(), e.school.as_str(), e.group.as_deref()))
            .collect();
        assert_eq!(
            enrollments,
            [("e1", "46505", Some("h1")), ("u1@46505", "46505", None)]
        );

        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("manifest.csv", "propertyName,value\noneroster.version,1.2\nfile.users,bulk\nfile.roles,bulk\nfile.orgs,bulk\n"),
                ("orgs.csv", orgs),
                ("users.csv", USERS_12),
                ("roles.csv", ROLES_12),
            ],
        );
        let v = read_path(dir.path()).unwrap();
        let keys: Vec<&str> = v
            .roster
            .enrollments
            .iter()
            .map(|e| e.source_key.as_str())
            .collect();
        assert_eq!(keys, ["u1@46505", "u2@46505"]);
    }

    #[test]
    fn a_department_or_a_teacher_named_where_a_school_or_student_belongs_is_called_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[
                ("orgs.csv", "sourcedId,name,type,identifier\ns1,Skule,school,46505\nd1,Realfag,department,\n"),
                ("classes.csv", "sourcedId,title,classType,schoolSourcedId\nh1,10A,homeroom,s1\nh2,10B,homeroom,d1\n"),
                ("users.csv", "sourcedId,role,givenName,familyName\nu1,student,Oskar,Nilsen\nt1,teacher,Kari,Lærer\n"),
                ("enrollments.csv", "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\ne1,h1,s1,u1,student\ne2,h1,d1,u1,student\ne3,h1,s1,t1,student\n"),
            ],
        );
        let v = read_path(dir.path()).unwrap();
        let details: Vec<&str> = v.deviations.iter().map(|d| d.detail.as_str()).collect();
        assert_eq!(details.len(), 3, "{details:?}");
        assert!(
            details[0].contains("org d1 is of type `department`, not a school"),
            "{details:?}"
        );
        assert!(
            details[1].contains("org d1 is of type `department`"),
            "{details:?}"
        );
        assert!(details[2].contains("role `teacher`"), "{details:?}");
        assert!(
            details.iter().all(|d| !d.contains("does not contain")),
            "{details:?}"
        );
    }

    #[test]
    fn a_short_crlf_row_is_a_warning_on_its_line_not_a_cut_off_file() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("users.csv", "sourcedId,role,givenName,familyName,identifier\r\nu1,student,Oskar,Nilsen\r\nu2,student,Kari,Berg,25811885633")],
        );
        let v = read_path(dir.path()).unwrap();
        assert_eq!(v.roster.students.len(), 2);
        let found: Vec<(Code, Position)> =
            v.deviations.iter().map(|d| (d.code, d.position)).collect();
        assert_eq!(found, [(Code::ShortRow, Position::Line(2))]);
    }

    #[test]
    fn a_column_oneroster_does_not_define_is_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        write_files(
            dir.path(),
            &[("users.csv", "sourcedId,role,givenName,familyName,identifer,metadata.klasse\nu1,student,Oskar,Nilsen,16881774198,10A\n")],
        );
        let v = read_path(dir.path()).unwrap();
        let unknown: Vec<&str> = v
            .deviations
            .iter()
            .filter(|d| d.code == Code::UnknownColumn)
            .map(|d| d.detail.as_str())
            .collect();
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(unknown[0].contains("`identifer`"));
        assert!(unknown[1].contains("`metadata.klasse`"));
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
