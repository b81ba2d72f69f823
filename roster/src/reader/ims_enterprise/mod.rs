//! IMS Enterprise 1.1 XML in the Norwegian PIFU-IMS profile: the "IMS-E" file school
//! admin systems send to learning platforms. Like every reader it is the first stage of the
//! pipeline: it streams the export into a [`RosterBuilder`], which validates it on the way
//! to the differ.
//!
//! The file is read with a streaming XML parser, one event at a time. IMS-E lists persons
//! first and memberships last, and only a membership says whether a person is a learner, so
//! the reader keeps the parsed records (not the file's text) until the document ends, then
//! pushes schools, basisgrupper, students and enrollments, in that order. Memory therefore
//! grows with the roster; a single tag or text longer than
//! [`MAX_LINE_BYTES`](crate::reader::MAX_LINE_BYTES), nesting deeper than [`MAX_DEPTH`], an
//! element with more than [`MAX_ATTRIBUTES`] attributes, or a broken document ends the read with a [`ReadError`] that names the line.
//!
//! What the profile says, as read here:
//! - `person`: `sourcedid/id` is the key; `userid useridtype="personNIN"` the national id;
//!   `userid` of type `username`, else a Feide type, the username; `name/n` the names;
//!   `demographics/gender` in IMS coding (1 female, 2 male); `demographics/bday`; `email`.
//!   Only persons with a learner role (`roletype="01"`) in some membership become students.
//! - `group`: scheme `pifu-ims-go-org` typevalue `skole` is a school, `skoleeier` its owner
//!   (which gives the school's kommunenummer when it has one); scheme `pifu-ims-go-grp`
//!   typevalue `basisgruppe` is a class, tied to its school by `relationship relation="1"`.
//!   Other groups (undervisningsgrupper and the like) are not part of the roster.
//! - `membership`: the learners of a basisgruppe become enrollments; membership of the
//!   school group alone gives an enrollment without a class.
//! - `recstatus` 3 (element or attribute) deletes a record: it becomes a tombstone.
//!
//! Elements the profile adds beyond these are skipped without a deviation.

mod emit;
mod input;
mod parser;
mod records;

use std::io::BufRead;
use std::path::Path;

use super::encoding::Text;
use super::error::{open, ReadError};
use crate::validate::RosterBuilder;
use parser::Parser;

pub use parser::{MAX_ATTRIBUTES, MAX_DEPTH};

/// Reads an IMS Enterprise export into the builder.
pub fn read(path: &Path, builder: &mut RosterBuilder) -> Result<(), ReadError> {
    read_from(path, open(path)?, builder)
}

/// Reads an IMS Enterprise export from any buffered byte stream; `path` names it in errors
/// and deviations. Nothing reaches the builder unless the whole document parses, so a
/// truncated file cannot pass for a roster that lost its last students. A UTF-16 document is
/// decoded to UTF-8 first; its declaration's `UTF-16` label is then read as the parser
/// already reads it on a byte-readable file.
pub fn read_from<R: BufRead>(
    path: &Path,
    input: R,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let input = Text::new(input).map_err(|e| ReadError::new(path, e.into()))?;
    let export = Parser::new(path, input).parse()?;
    builder.begin_file(&path.display().to_string());
    export.emit(builder);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use skolebro_protocol::national_id::CivilDate;
    use skolebro_protocol::{Entity, Gender};

    use crate::deviation::{Code, Position, Severity};
    use crate::reader::error::ReadErrorKind;
    use crate::reader::format::Format;
    use crate::reader::stream::MAX_LINE_BYTES;
    use crate::validate::{Validated, ValidationOptions};

    const CLEAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/clean/ims-enterprise.xml"
    );
    const CLEAN_V2: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/clean/v2/ims-enterprise.xml"
    );
    const FAULTY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/faulty/ims-enterprise.xml"
    );

    const UDIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/pifu-ims/udir-eksempel.xml"
    );

    fn read_path(path: &Path) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read(path, &mut builder)?;
        Ok(builder.finish())
    }

    fn read_text(text: &str) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read_from(Path::new("inline.xml"), text.as_bytes(), &mut builder)?;
        Ok(builder.finish())
    }

    fn codes(validated: &Validated) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for d in &validated.deviations {
            *counts.entry(d.code.as_str()).or_default() += 1;
        }
        counts
    }

    fn syntax_reason(result: Result<Validated, ReadError>) -> (Option<u64>, String) {
        match result {
            Err(ReadError {
                line,
                kind:
                    ReadErrorKind::Syntax {
                        format: Format::ImsEnterprise,
                        reason,
                    },
                ..
            }) => (line, reason),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn the_clean_export_yields_the_roster_truth_json_describes() {
        let v = read_path(Path::new(CLEAN)).unwrap();
        assert_eq!(v.roster.students.len(), 60);
        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.groups.len(), 25);
        assert_eq!(v.roster.enrollments.len(), 60);
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        assert!(v.tombstones.is_empty());
        assert!(!v.partial);
    }

    #[test]
    fn the_clean_export_maps_schools_classes_and_people_as_the_profile_says() {
        let v = read_path(Path::new(CLEAN)).unwrap();
        let school = &v.roster.schools[0];
        assert_eq!(school.skolenummer, "46505");
        assert_eq!(school.name, "Fana skule");
        assert_eq!(school.kommunenummer.as_deref(), Some("4601"));
        assert_eq!(school.fylkesnummer.as_deref(), Some("46"));
        let class = v
            .roster
            .groups
            .iter()
            .find(|g| g.source_key == "46505-3C")
            .unwrap();
        assert_eq!(class.name, "3C");
        assert_eq!(class.school, "46505");

        let first = &v.roster.students[0];
        assert_eq!(first.source_key, "46505-elev-000001");
        assert_eq!(first.username.as_deref(), Some("elev1"));
        assert_eq!(first.family_name, "Nilsen");
        assert_eq!(first.given_name, "Oskar");
        assert_eq!(first.middle_name.as_deref(), Some("Kristian"));
        assert_eq!(first.gender, Gender::Male);
        assert!(first.national_id.is_some());
        assert!(first.birth_date.is_some());
        let enrollment = v
            .roster
            .enrollments
            .iter()
            .find(|e| e.student == "46505-elev-000001")
            .unwrap();
        assert_eq!(enrollment.source_key, "46505-elev-000001@46505");
        assert_eq!(enrollment.group.as_deref(), Some("46505-3C"));
    }

    #[test]
    fn a_pifu_school_gets_its_organisation_municipality_and_county_numbers() {
        let v = read_path(Path::new(UDIR)).unwrap();
        let found: Vec<(Code, Severity)> =
            v.deviations.iter().map(|d| (d.code, d.severity)).collect();
        assert_eq!(
            found,
            [(Code::DanglingReference, Severity::Warning)],
            "{:?}",
            v.deviations
        );
        assert!(
            v.deviations[0]
                .detail
                .contains("person global_ID_01235 is a learner only in group global_ID_org_2"),
            "the teacher is named as what she is: {:?}",
            v.deviations
        );
        let school = &v.roster.schools[0];
        assert_eq!(school.name, "Måneflekken skole");
        assert_eq!(
            school.skolenummer, "5234",
            "the Vigo number, not the sourcedid"
        );
        assert_eq!(school.organisasjonsnummer.as_deref(), Some("333000333"));
        assert_eq!(school.kommunenummer.as_deref(), Some("4601"));
        assert_eq!(school.fylkesnummer.as_deref(), Some("46"));
        assert_eq!(v.roster.groups[0].school, "5234");
    }

    /// Found by the `ims_enterprise` fuzz target: a group id first used by a teaching group
    /// and then by a basisgruppe left the basisgruppe out without a deviation.
    #[test]
    fn a_group_id_used_again_for_another_kind_of_group_is_named_not_dropped() {
        let text = r#"<enterprise>
<group><sourcedid><id>46505</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue level="2">skole</typevalue></grouptype><description><short>Fana skule</short></description></group>
<group><sourcedid><id>46505-8A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level="1">undervisningsgruppe</typevalue></grouptype><description><short>8A</short></description><relationship relation="1"><sourcedid><id>46505</id></sourcedid></relationship></group>
<group><sourcedid><id>46505-8A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level="1">basisgruppe</typevalue></grouptype><description><short>8A</short></description><relationship relation="1"><sourcedid><id>46505</id></sourcedid></relationship></group>
<group><sourcedid><id>46505</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level="1">basisgruppe</typevalue></grouptype><description><short>5A</short></description><relationship relation="1"><sourcedid><id>46505</id></sourcedid></relationship></group>
</enterprise>"#;
        let mut builder = RosterBuilder::new(ValidationOptions {
            account_records: true,
            ..Default::default()
        });
        read_from(Path::new("inline.xml"), text.as_bytes(), &mut builder).unwrap();
        let v = builder.finish();
        let accounting = v.accounting.as_ref().unwrap();
        assert!(accounting.is_complete(), "{accounting:?}");
        let named: Vec<(Code, Position)> =
            v.deviations.iter().map(|d| (d.code, d.position)).collect();
        assert_eq!(
            named,
            [
                (Code::DuplicateKey, Position::Line(4)),
                (Code::DuplicateKey, Position::Line(5)),
            ],
            "{:?}",
            v.deviations
        );
        assert!(v.roster.groups.is_empty());
        assert_eq!(v.roster.schools.len(), 1);
    }

    /// Found by the `ims_enterprise` fuzz target: a basisgruppe without a school made its id
    /// stand for nothing, so a later basisgruppe of the same id with a school vanished.
    #[test]
    fn a_basisgruppe_after_one_of_the_same_id_without_a_school_is_still_read() {
        let text = r#"<enterprise>
<group><sourcedid><id>46505</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue level="2">skole</typevalue></grouptype><description><short>Fana skule</short></description></group>
<group><sourcedid><id>46505-6C</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level="1">basisgruppe</typevalue></grouptype><description><short>6C</short></description></group>
<group><sourcedid><id>46505-6C</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue level="1">basisgruppe</typevalue></grouptype><description><short>6C</short></description><relationship relation="1"><sourcedid><id>46505</id></sourcedid></relationship></group>
</enterprise>"#;
        let mut builder = RosterBuilder::new(ValidationOptions {
            account_records: true,
            ..Default::default()
        });
        read_from(Path::new("inline.xml"), text.as_bytes(), &mut builder).unwrap();
        let v = builder.finish();
        let accounting = v.accounting.as_ref().unwrap();
        assert!(accounting.is_complete(), "{accounting:?}");
        let named: Vec<(Code, Position)> =
            v.deviations.iter().map(|d| (d.code, d.position)).collect();
        assert_eq!(
            named,
            [(Code::MissingRequired, Position::Line(3))],
            "{:?}",
            v.deviations
        );
        assert_eq!(v.roster.groups.len(), 1);
        assert_eq!(v.roster.groups[0].school, "46505");
    }

    #[test]
    fn a_school_with_only_an_organisation_number_is_keyed_by_it() {
        let text = UDIR_SCHOOL_ONLY;
        let v = read_text(text).unwrap();
        let school = &v.roster.schools[0];
        assert_eq!(school.skolenummer, "333000333");
        assert_eq!(school.organisasjonsnummer.as_deref(), Some("333000333"));
        assert_eq!(school.kommunenummer, None);
    }

    const UDIR_SCHOOL_ONLY: &str = r#"<enterprise>
<group><sourcedid><id>global_ID_org_17</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue level="2">skole</typevalue></grouptype><description><short>Måneflekken skole</short></description>
<extension><pifu_id type="organizationNumber"><pifu_value>NO333000333</pifu_value><pifu_scope>Enhetsregisteret</pifu_scope><pifu_unique>1</pifu_unique></pifu_id></extension></group>
</enterprise>"#;

    #[test]
    fn a_person_with_an_old_and_a_new_sourcedid_is_keyed_by_the_new_and_remembers_the_old() {
        let v = read_path(Path::new(UDIR)).unwrap();
        let keys: Vec<&str> = v
            .roster
            .students
            .iter()
            .map(|s| s.source_key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["global_ID_01236", "global_ID_01237"],
            "the teacher is no student"
        );
        let enrollments: Vec<(&str, Option<&str>)> = v
            .roster
            .enrollments
            .iter()
            .map(|e| (e.source_key.as_str(), e.group.as_deref()))
            .collect();
        assert_eq!(
            enrollments,
            [
                ("global_ID_01237@5234", None),
                (
                    "global_ID_01236@5234",
                    Some("global_ID_basis_Måneflekken_7A")
                ),
            ]
        );
        let renames: Vec<(Entity, &str, &str)> = v
            .renames
            .iter()
            .map(|r| (r.entity, r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(
            renames,
            [(Entity::Student, "Måne_personid_1236", "global_ID_01236")]
        );
    }

    /// Udir's example as the export before the pupil's id changed: the Old id is the key.
    fn before_the_new_id() -> String {
        std::fs::read_to_string(UDIR)
            .unwrap()
            .replace("global_ID_01236", "Måne_personid_1236")
            .replace(" sourcedidtype=\"Old\"", "")
            .replace(" sourcedidtype=\"New\"", "")
    }

    #[test]
    fn a_changed_id_is_a_rename_in_the_diff_not_a_removal_and_an_addition() {
        use crate::diff::{plan, Fingerprints};
        use crate::state::State;
        use skolebro_protocol::SiteSecret;

        let secret = SiteSecret::from_bytes([7; 32]);
        let before = read_text(&before_the_new_id()).unwrap();
        assert!(before.renames.is_empty());
        let old = State::of(&before.roster, &secret);
        let after = read_path(Path::new(UDIR)).unwrap();
        let prints = Fingerprints::of(&after.roster, &secret);
        let (planned, summary) = plan(&old, &after, &prints, &secret);
        for entity in [Entity::Student, Entity::Enrollment] {
            assert_eq!(summary.renamed(entity), 1, "{entity:?}");
            assert_eq!(summary.added(entity), 0, "{entity:?}");
            assert_eq!(summary.deleted(entity), 0, "{entity:?}");
        }
        let gone = secret.handle(Entity::Student, "Måne_personid_1236");
        assert_eq!(
            planned.students.deletes,
            [gone],
            "the old key goes in the same delta"
        );
        let delta = planned.to_delta(&after.roster);
        let new_key = secret.handle(Entity::Student, "global_ID_01236");
        assert_eq!(
            delta.students.renames,
            [(gone, new_key)],
            "central is told the two keys are one pupil"
        );
        assert_eq!(delta.enrollments.renames.len(), 1);

        // A partial export names no deletions, yet the old key must go, or central would
        // hold the pupil twice.
        let mut partial = after.clone();
        partial.partial = true;
        let (planned, summary) = plan(&old, &partial, &prints, &secret);
        assert_eq!(planned.students.deletes, [gone]);
        assert_eq!(summary.renamed(Entity::Student), 1);

        // An open delay-delete window postpones deletions, but not the end of a rename.
        let (mut planned, summary) = plan(&old, &after, &prints, &secret);
        let policy: crate::safety::SafetyPolicy =
            toml::from_str("delay_delete = [{ from = \"2026-06-20\", to = \"2026-08-15\" }]")
                .unwrap();
        let today = CivilDate::parse_iso("2026-07-01").unwrap();
        let no_columns = crate::safety::Columns::default();
        let judgement =
            crate::safety::judge(&policy, &old, &mut planned, &summary, no_columns, today);
        assert_eq!(judgement.postponed, 0, "{judgement:?}");
        assert_eq!(planned.students.deletes, [gone]);
    }

    #[test]
    fn a_course_only_export_without_a_school_says_so_once() {
        let text = r#"<enterprise>
<group><sourcedid><id>course-1</id></sourcedid><grouptype><typevalue level="1">Course</typevalue></grouptype><description><short>Maths</short></description></group>
<person><sourcedid><id>p1</id></sourcedid><name><n><family>Nilsen</family><given>Oskar</given></n></name></person>
<person><sourcedid><id>p2</id></sourcedid><name><n><family>Berg</family><given>Kari</given></n></name></person>
<membership><sourcedid><id>course-1</id></sourcedid>
<member><sourcedid><id>p1</id></sourcedid><idtype>1</idtype><role roletype="Learner"/></member>
<member><sourcedid><id>p2</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
</membership></enterprise>"#;
        let v = read_text(text).unwrap();
        let found: Vec<(Code, Severity)> =
            v.deviations.iter().map(|d| (d.code, d.severity)).collect();
        assert_eq!(found, [(Code::NoSchool, Severity::Warning)]);
        assert!(v.deviations[0].detail.contains("no school"));
    }

    #[test]
    fn the_next_clean_export_reads_without_deviations() {
        let v = read_path(Path::new(CLEAN_V2)).unwrap();
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        assert_eq!(v.roster.students.len(), v.roster.enrollments.len());
        assert_eq!(v.roster.schools.len(), 1);
    }

    #[test]
    fn the_faulty_export_yields_the_distinct_people_and_reports_each_fault() {
        let v = read_path(Path::new(FAULTY)).unwrap();
        assert_eq!(v.roster.students.len(), 80);
        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.groups.len(), 28);
        assert_eq!(v.roster.enrollments.len(), 80);
        let counts = codes(&v);
        assert_eq!(counts.get("invalid_national_id"), Some(&4), "{counts:?}");
        assert_eq!(counts.get("duplicate_national_id"), Some(&1), "{counts:?}");
        assert!(
            counts.get("duplicate_record").is_some_and(|&n| n >= 1),
            "{counts:?}"
        );
        let others: Vec<_> = v
            .deviations
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .filter(|d| !matches!(d.code, Code::InvalidNationalId | Code::DuplicateNationalId))
            .collect();
        // The refused person's membership goes with it, named on its own line.
        assert_eq!(others.len(), 1, "{others:?}");
        assert_eq!(others[0].code, Code::DanglingReference);
        assert!(others[0].detail.contains("left out for its own deviation"));
    }

    #[test]
    fn deviations_point_at_the_line_of_the_record_and_never_show_an_id_in_clear() {
        let v = read_path(Path::new(FAULTY)).unwrap();
        let text = std::fs::read_to_string(FAULTY).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for d in &v.deviations {
            let Position::Line(n) = d.position else {
                panic!("IMS deviations have lines: {d:?}");
            };
            let line = lines[(n - 1) as usize].trim_start();
            assert!(
                line.starts_with("<person>") || line.starts_with("<member>"),
                "{d:?} points at {line:?}"
            );
            assert!(!has_eleven_digits(&d.detail), "{d:?}");
        }
    }

    fn has_eleven_digits(s: &str) -> bool {
        let mut run = 0;
        for c in s.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            if run >= 11 {
                return true;
            }
        }
        false
    }

    const SMALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<enterprise>
  <properties><datasource>sas</datasource><type>full</type></properties>
  <group><sourcedid><id>eier</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skoleeier</typevalue></grouptype><description><short>4601</short></description></group>
  <group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype><description><short>S1</short><long>Liten skule</long></description><relationship relation="1"><sourcedid><id>eier</id></sourcedid></relationship></group>
  <group><sourcedid><id>S1-1A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype><description><short>1A</short></description><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
  <group><sourcedid><id>S1-NOR</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>undervisningsgruppe</typevalue></grouptype><description><short>Norsk</short></description><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
  <group recstatus="3"><sourcedid><id>S1-9Z</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype></group>
  <person><sourcedid><id>p-girl</id></sourcedid><userid useridtype="personFeide">girl@feide</userid><name><n><family>A&amp;B</family><given>Kari</given></n></name><demographics><gender>1</gender><bday>2015-03-04</bday></demographics></person>
  <person><sourcedid><id>p-boy</id></sourcedid><userid useridtype="personFeide">boy@feide</userid><userid useridtype="username">boy</userid><name><n><family>Berg</family><given>Ola</given></n></name><demographics><gender>2</gender></demographics></person>
  <person><sourcedid><id>p-teacher</id></sourcedid><name><n><family>Lærer</family><given>Lise</given></n></name><demographics><gender>1</gender></demographics></person>
  <person><recstatus>3</recstatus><sourcedid><id>p-gone</id></sourcedid></person>
  <person><sourcedid><id>p-school-only</id></sourcedid><name><n><family>Dahl</family><given>Per</given></n></name></person>
  <membership><sourcedid><id>S1-1A</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"><status>1</status></role></member>
    <member><sourcedid><id>p-boy</id></sourcedid><idtype>1</idtype><role roletype="01"><status>1</status></role></member>
    <member><sourcedid><id>p-teacher</id></sourcedid><idtype>1</idtype><role roletype="02"><status>1</status></role></member>
  </membership>
  <membership><sourcedid><id>S1-NOR</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
  </membership>
  <membership><sourcedid><id>S1</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
    <member><sourcedid><id>p-school-only</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
  </membership>
</enterprise>
"#;

    #[test]
    fn a_small_export_maps_learners_staff_deletes_and_ims_gender() {
        let v = read_text(SMALL).unwrap();
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        let keys: Vec<&str> = v
            .roster
            .students
            .iter()
            .map(|s| s.source_key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["p-girl", "p-boy", "p-school-only"],
            "the teacher is no student"
        );

        let girl = &v.roster.students[0];
        assert_eq!(girl.gender, Gender::Female, "IMS 1 is female");
        assert_eq!(girl.family_name, "A&B");
        assert_eq!(girl.username.as_deref(), Some("girl@feide"));
        assert_eq!(girl.birth_date, CivilDate::parse_iso("2015-03-04"));
        let boy = &v.roster.students[1];
        assert_eq!(boy.gender, Gender::Male, "IMS 2 is male");
        assert_eq!(
            boy.username.as_deref(),
            Some("boy"),
            "username beats a Feide name"
        );

        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.schools[0].name, "Liten skule");
        assert_eq!(
            v.roster.groups.len(),
            1,
            "undervisningsgrupper are not basisgrupper"
        );

        let enrollments: Vec<(&str, Option<&str>)> = v
            .roster
            .enrollments
            .iter()
            .map(|e| (e.source_key.as_str(), e.group.as_deref()))
            .collect();
        assert_eq!(
            enrollments,
            [
                ("p-girl@S1", Some("S1-1A")),
                ("p-boy@S1", Some("S1-1A")),
                ("p-school-only@S1", None),
            ]
        );

        let tombstones: Vec<(Entity, &str)> = v
            .tombstones
            .iter()
            .map(|t| (t.entity, t.key.as_str()))
            .collect();
        assert_eq!(
            tombstones,
            [(Entity::Group, "S1-9Z"), (Entity::Student, "p-gone")]
        );
    }

    #[test]
    fn a_deleted_membership_becomes_an_enrollment_tombstone_in_a_delta() {
        let text = r#"<enterprise><properties><type>Delta</type></properties>
<group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype></group>
<group><sourcedid><id>S1-1A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
<membership><sourcedid><id>S1-1A</id></sourcedid>
<member recstatus="3"><sourcedid><id>p1</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
</membership></enterprise>"#;
        let v = read_text(text).unwrap();
        assert!(v.partial);
        assert!(v.roster.students.is_empty());
        assert_eq!(v.tombstones.len(), 1);
        assert_eq!(v.tombstones[0].entity, Entity::Enrollment);
        assert_eq!(v.tombstones[0].key, "p1@S1");
    }

    #[test]
    fn a_person_without_a_key_or_a_name_is_reported_by_line() {
        let text = "<enterprise>\n<person><name><n><given>X</given></n></name></person>\n\
<person><sourcedid><id>p1</id></sourcedid></person>\n\
<membership><sourcedid><id>nowhere</id></sourcedid><member><sourcedid><id>p1</id></sourcedid><role roletype=\"01\"/></member></membership>\n\
</enterprise>";
        let v = read_text(text).unwrap();
        let found: Vec<(Code, Position)> =
            v.deviations.iter().map(|d| (d.code, d.position)).collect();
        assert_eq!(
            found,
            [
                (Code::MissingRequired, Position::Line(2)),
                (Code::MissingRequired, Position::Line(3)),
                (Code::MissingRequired, Position::Line(3)),
                (Code::NoSchool, Position::Line(1)),
                (Code::DanglingReference, Position::Line(4)),
            ]
        );
        // A SAS key is no national id: it is shown as it is, so the school can find it.
        assert!(
            v.deviations[1].detail.contains("person p1:"),
            "{:?}",
            v.deviations
        );
    }

    #[test]
    fn a_membership_of_an_unknown_person_is_left_for_validation_to_report() {
        let text = r#"<enterprise>
<group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype></group>
<membership><sourcedid><id>S1</id></sourcedid><member><sourcedid><id>ghost</id></sourcedid><role roletype="01"/></member></membership>
</enterprise>"#;
        let v = read_text(text).unwrap();
        assert_eq!(codes(&v).get("dangling_reference"), Some(&1));
    }

    #[test]
    fn broken_documents_are_syntax_errors_with_a_line() {
        let cases = [
            ("", "empty"),
            ("just some text\n", "not XML"),
            ("<roster><person/></roster>", "wrong root"),
            ("<enterprise>\n<person>\n<sourcedid>", "truncated"),
            (
                "<enterprise>\n<person></group>\n</enterprise>",
                "unbalanced",
            ),
            (
                "<enterprise><person a=\"1\" a=\"2\"/></enterprise>",
                "duplicate attribute",
            ),
            ("<enterprise/><enterprise/>", "two roots"),
            ("<enterprise>&bogus;</enterprise>", "unknown entity"),
            ("<enterprise><person><email>\u{0}x", "truncated after junk"),
        ];
        for (text, what) in cases {
            let (line, reason) = syntax_reason(read_text(text));
            assert!(line.is_some(), "{what}: {reason}");
        }
        let (line, _) = syntax_reason(read_text("<enterprise>\n\n<person></group>\n</enterprise>"));
        assert_eq!(line, Some(3));
    }

    #[test]
    fn an_element_with_95000_attributes_is_refused_naming_its_line_and_the_bound() {
        let attributes: String = (0..95_000).map(|i| format!(" a{i}=\"\"")).collect();
        let text = format!("<enterprise>\n<person{attributes}/>\n</enterprise>");
        assert!(
            text.len() < MAX_LINE_BYTES,
            "under the tag bound, so this bound refuses it"
        );
        let (line, reason) = syntax_reason(read_text(&text));
        assert_eq!(line, Some(2), "{reason}");
        assert!(
            reason.contains(&format!(
                "<person> has more than {MAX_ATTRIBUTES} attributes"
            )),
            "{reason}"
        );
    }

    #[test]
    fn a_repeated_attribute_is_named_with_its_element() {
        let text =
            "<enterprise>\n<person><role a=\"1\" roletype=\"01\" a=\"2\"/></person></enterprise>";
        let (line, reason) = syntax_reason(read_text(text));
        assert_eq!(line, Some(2), "{reason}");
        assert!(
            reason.contains("<role> has the attribute `a` twice"),
            "{reason}"
        );
    }

    #[test]
    fn invalid_utf8_is_a_syntax_error_not_a_panic() {
        let mut builder = RosterBuilder::new(Default::default());
        let bytes: &[u8] = b"<enterprise><person><email>\xff\xfe</email></person></enterprise>";
        let result = read_from(Path::new("x.xml"), bytes, &mut builder);
        assert!(matches!(
            result,
            Err(ReadError {
                kind: ReadErrorKind::Syntax { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_declared_latin1_export_is_decoded() {
        let mut bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><enterprise><person><sourcedid><id>p</id></sourcedid><name><n><family>L\xe6rer</family><given>O</given></n></name></person><membership><sourcedid><id>g</id></sourcedid><member><sourcedid><id>p</id></sourcedid><role roletype=\"01\"/></member></membership></enterprise>".to_vec();
        bytes.push(b'\n');
        let mut builder = RosterBuilder::new(Default::default());
        read_from(Path::new("x.xml"), &bytes[..], &mut builder).unwrap();
        let v = builder.finish();
        assert_eq!(v.roster.students[0].family_name, "Lærer");
    }

    #[test]
    fn spaces_beside_an_entity_reference_are_kept_and_the_value_is_trimmed_whole() {
        let text = "<enterprise><person><sourcedid><id>p</id></sourcedid><name><n>\n  \
<family> Nilsen &amp; Berg </family>\n  <given>&#197;se &lt;3</given>\n</n></name></person>\
<membership><sourcedid><id>g</id></sourcedid><member><sourcedid><id>p</id></sourcedid>\
<role roletype=\"01\"/></member></membership></enterprise>";
        let v = read_text(text).unwrap();
        assert_eq!(v.roster.students[0].family_name, "Nilsen & Berg");
        assert_eq!(v.roster.students[0].given_name, "Åse <3");
    }

    #[test]
    fn a_utf16_label_on_a_byte_readable_file_is_read_as_utf8_and_unknown_labels_are_refused() {
        let text = "<?xml version=\"1.0\" encoding=\"utf-16\"?><enterprise/>";
        assert!(read_text(text).is_ok());
        let text = "<?xml version=\"1.0\" encoding=\"x-nonsense\"?><enterprise/>";
        let (_, reason) = syntax_reason(read_text(text));
        assert!(reason.contains("encoding"), "{reason}");
    }

    #[test]
    fn a_record_whose_start_tag_spans_lines_is_placed_at_its_first_line() {
        let text = "<enterprise>\n<person\n recstatus=\"1\"\n><sourcedid><id>p</id></sourcedid></person>\n\
<membership><sourcedid><id>g</id></sourcedid><member><sourcedid><id>p</id></sourcedid><role roletype=\"01\"/></member></membership></enterprise>";
        let v = read_text(text).unwrap();
        let lines: Vec<Position> = v
            .deviations
            .iter()
            .filter(|d| d.code == Code::MissingRequired)
            .map(|d| d.position)
            .collect();
        assert_eq!(lines, [Position::Line(2), Position::Line(2)]);
    }

    #[test]
    fn an_oversized_text_or_deep_nesting_is_refused() {
        let long = format!(
            "<enterprise><person><email>{}</email></person></enterprise>",
            "x".repeat(MAX_LINE_BYTES + 10)
        );
        let (_, reason) = syntax_reason(read_text(&long));
        assert!(reason.contains("longer"), "{reason}");

        let long_tag = format!(
            "<enterprise><person {}/></enterprise>",
            "a".repeat(MAX_LINE_BYTES + 10)
        );
        let (_, reason) = syntax_reason(read_text(&long_tag));
        assert!(reason.contains("longer"), "{reason}");

        let deep = format!("<enterprise>{}", "<a>".repeat(MAX_DEPTH + 1));
        let (_, reason) = syntax_reason(read_text(&deep));
        assert!(reason.contains("deeper"), "{reason}");
    }

    fn read_bytes(bytes: &[u8]) -> Result<(), ReadError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, bytes).expect("write temp file");
        let mut builder = RosterBuilder::new(Default::default());
        let result = read(file.path(), &mut builder);
        builder.finish();
        result
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_bytes(&bytes);
        }

        #[test]
        fn mutated_or_truncated_exports_never_panic(
            cut in 0usize..50_000,
            edits in proptest::collection::vec((0usize..50_000, any::<u8>()), 0..8),
        ) {
            let mut bytes = std::fs::read(CLEAN).expect("clean test data");
            for (at, byte) in edits {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            bytes.truncate(cut.min(bytes.len()));
            let _ = read_bytes(&bytes);
        }
    }
}
