//! OneRoster REST collections read a page at a time, the first stage of the pipeline for a
//! site whose SAS serves its roster over OneRoster REST: the agent's pull (`agent::pull`)
//! fetches the pages and hands each body here, in the order `schools` (or `orgs`),
//! `students`, `classes`, `enrollments`, and every record goes into one [`RosterBuilder`].
//! No page's JSON is kept once read; what later pages need of earlier ones is a few strings
//! per record ([`RestRoster`]).
//!
//! The mapping is the file readers': users through the OneRoster JSON reader
//! (`oneroster_json`), classes and enrollments through the OneRoster CSV reader's
//! (`oneroster_csv::records::class` and `enrollment`), fed from each object's fields
//! instead of a row's columns. So a homeroom is a group and other classes are not, a
//! student's enrollment in a homeroom is its enrollment at the school in that group, one
//! naming an unknown student, class or school is a dangling reference, and a student whom
//! no enrollment places at a school its `orgs` names gets an enrollment there without a
//! class (`student@skolenummer`), made once the enrollments are read. A `tobedeleted`
//! object is a tombstone.
//!
//! A delta (the pull's `dateLastModified` filter) makes no such class-less enrollment: its
//! students restate schools the full pull linked, and one changed student would otherwise
//! gain an enrollment its service never had. A student new in a delta with no class gets
//! its school's enrollment at the next full pull.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use super::error::ReadError;
use super::oneroster_csv::records::{
    class, enrollment, link_schools, ClassFields, Dialect, EnrollmentFields,
};
use super::oneroster_csv::state::State;
use super::oneroster_json::{read_users, syntax, text, OrgDirectory, SchoolLinks};
use crate::deviation::Position;
use crate::validate::RosterBuilder;

/// What the pages of one pull tell later pages: the service's schools, which classes are
/// homerooms, and which students an enrollment placed at which school.
#[derive(Default)]
pub struct RestRoster {
    orgs: OrgDirectory,
    state: State,
    partial: bool,
}

impl RestRoster {
    /// A pull of everything (`partial` false), or of what changed since a time (`partial`
    /// true: a delta, whose students make no class-less enrollments).
    pub fn new(partial: bool) -> RestRoster {
        RestRoster {
            partial,
            ..RestRoster::default()
        }
    }

    /// Reads a page of the `schools` (or `orgs`) collection. Returns how many orgs it held.
    pub fn read_orgs_page(&mut self, input: impl Read, name: &str) -> Result<u64, ReadError> {
        let count = self.orgs.read_page(input, name)?;
        for (id, skolenummer) in self.orgs.skolenummer() {
            self.state
                .skolenummer
                .insert(id.to_owned(), skolenummer.to_owned());
        }
        for (id, kind) in self.orgs.others() {
            self.state.other_orgs.insert(id.to_owned(), kind.to_owned());
        }
        Ok(count)
    }

    /// The schools read so far.
    pub fn schools(&self) -> usize {
        self.orgs.len()
    }

    /// Reads a page of the `students` (or `users`) collection into the builder. Returns how
    /// many users it held.
    pub fn read_users_page(
        &mut self,
        input: impl Read,
        name: &str,
        builder: &mut RosterBuilder,
    ) -> Result<u64, ReadError> {
        builder.begin_file(name);
        let links = if self.partial {
            SchoolLinks::Skip
        } else {
            SchoolLinks::Defer(&mut self.state.school_links)
        };
        read_users(input, Path::new(name), builder, &self.orgs, links)
    }

    /// Reads a page of the `classes` collection: homerooms become groups. Returns how many
    /// classes it held.
    pub fn read_classes_page(
        &mut self,
        input: impl Read,
        name: &str,
        builder: &mut RosterBuilder,
    ) -> Result<u64, ReadError> {
        let objects = page(input, name, "classes", builder)?;
        let count = objects.len() as u64;
        for (at, object) in objects {
            let fields = self.class_fields(&object);
            class(fields, at, Dialect::Rest, &mut self.state, builder);
        }
        Ok(count)
    }

    /// Reads a page of the `enrollments` collection: students' enrollments in homerooms
    /// become enrollments. Returns how many enrollments it held.
    pub fn read_enrollments_page(
        &mut self,
        input: impl Read,
        name: &str,
        builder: &mut RosterBuilder,
    ) -> Result<u64, ReadError> {
        let objects = page(input, name, "enrollments", builder)?;
        let count = objects.len() as u64;
        for (at, object) in objects {
            let fields = EnrollmentFields {
                id: text(object.get("sourcedId")).map(Into::into),
                class: reference(&object, "class").map(Into::into),
                school: reference(&object, "school").map(Into::into),
                user: reference(&object, "user").map(Into::into),
                role: text(object.get("role")),
                deleted: is_deleted(&object),
            };
            enrollment(fields, at, Dialect::Rest, &mut self.state, builder);
        }
        Ok(count)
    }

    /// Ends the pull: the class-less enrollments of students no enrollment placed at a
    /// school their `orgs` name (none in a delta).
    pub fn finish(self, builder: &mut RosterBuilder) {
        builder.begin_file("students (their orgs)");
        link_schools(&self.state, builder);
    }

    /// A class object's fields. The school year is the class's `metadata.schoolYear` (as
    /// central's own consumer API writes it) when there is one.
    fn class_fields(&self, object: &Map<String, Value>) -> ClassFields {
        let grades = object
            .get("grades")
            .and_then(Value::as_array)
            .map(|grades| {
                grades
                    .iter()
                    .filter_map(|g| text(Some(g)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|grades| !grades.is_empty())
            .or_else(|| text(object.get("grades")));
        let school_year =
            text(object.get("metadata").and_then(|m| m.get("schoolYear"))).or_else(|| {
                object
                    .get("terms")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|term| text(term.get("sourcedId")))
                    .find_map(|term| self.state.school_year(&term))
            });
        ClassFields {
            id: text(object.get("sourcedId")).map(Into::into),
            class_type: text(object.get("classType")),
            school: reference(object, "school").map(Into::into),
            name: text(object.get("title"))
                .or_else(|| text(object.get("classCode")))
                .map(Into::into),
            grades: grades.map(Into::into),
            school_year,
            deleted: is_deleted(object),
        }
    }
}

/// One JSON object of a page.
type Object = Map<String, Value>;

/// The objects of one page, `{"<key>": [ … ]}`, each at its position in the page, which
/// the builder notes as a record seen; an entry that is not an object is a deviation there.
/// A page is at most what the pull allows one body to be, and is dropped when its objects
/// are mapped.
fn page(
    input: impl Read,
    name: &str,
    key: &str,
    builder: &mut RosterBuilder,
) -> Result<Vec<(Position, Object)>, ReadError> {
    let refuse = || {
        syntax(
            Path::new(name),
            format!("not a OneRoster {key} collection: expected {{\"{key}\": [ … ]}}"),
        )
    };
    // Type errors are told in words of our own: serde_json's would quote the value.
    let document: Map<String, Value> = serde_json::from_reader(input).map_err(|_| refuse())?;
    let Some((_, Value::Array(entries))) = document.into_iter().find(|(k, _)| k == key) else {
        return Err(refuse());
    };
    builder.begin_file(name);
    let mut objects = Vec::with_capacity(entries.len());
    for (n, entry) in entries.into_iter().enumerate() {
        let at = Position::Record(n as u64 + 1);
        builder.record_seen(at);
        match entry {
            Value::Object(object) => objects.push((at, object)),
            _ => not_an_object(builder, at),
        }
    }
    Ok(objects)
}

/// The sourcedId of a GUIDRef field (`{"sourcedId": …, "type": …}`), or a bare id.
fn reference(object: &Map<String, Value>, field: &str) -> Option<String> {
    let value = object.get(field)?;
    text(value.get("sourcedId")).or_else(|| text(Some(value)))
}

fn is_deleted(object: &Map<String, Value>) -> bool {
    text(object.get("status")).is_some_and(|s| s.eq_ignore_ascii_case("tobedeleted"))
}

fn not_an_object(builder: &mut RosterBuilder, at: Position) {
    use crate::deviation::{Code, Severity};
    let detail = "the entry is not a JSON object; it is left out".to_owned();
    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
}

#[cfg(test)]
mod tests {
    use skolebro_protocol::Entity;

    use super::*;
    use crate::deviation::Code;
    use crate::validate::{Tombstone, Validated};

    const ORGS: &str = r#"{"orgs": [
        {"sourcedId": "9f1c", "type": "school", "name": "Fana skule", "identifier": "46505",
         "metadata": {"kommunenummer": "4601"}},
        {"sourcedId": "d1", "type": "district", "name": "Bergen"}
    ]}"#;

    fn student(id: &str, national_id: &str) -> String {
        format!(
            r#"{{"sourcedId": "{id}", "role": "student", "givenName": "Oskar",
                "familyName": "Nilsen", "identifier": "{national_id}",
                "orgs": [{{"sourcedId": "9f1c", "type": "org"}}]}}"#
        )
    }

    /// Reads one page of each collection, in the pull's order.
    fn pull(partial: bool, users: &[String], classes: &str, enrollments: &str) -> Validated {
        let mut builder = RosterBuilder::new(Default::default());
        let mut rest = RestRoster::new(partial);
        rest.read_orgs_page(ORGS.as_bytes(), "schools page 1")
            .unwrap();
        let users = format!(r#"{{"users": [{}]}}"#, users.join(","));
        rest.read_users_page(users.as_bytes(), "students page 1", &mut builder)
            .unwrap();
        rest.read_classes_page(classes.as_bytes(), "classes page 1", &mut builder)
            .unwrap();
        rest.read_enrollments_page(enrollments.as_bytes(), "enrollments page 1", &mut builder)
            .unwrap();
        rest.finish(&mut builder);
        builder.finish()
    }

    const CLASSES: &str = r#"{"classes": [
        {"sourcedId": "c4b", "classType": "homeroom", "title": "4B", "grades": ["4"],
         "school": {"sourcedId": "9f1c", "type": "org"}, "metadata": {"schoolYear": "2025/2026"}},
        {"sourcedId": "math", "classType": "scheduled", "title": "Matte",
         "school": {"sourcedId": "9f1c", "type": "org"}}
    ]}"#;

    #[test]
    fn a_homeroom_is_a_group_at_the_school_its_org_id_names_and_a_scheduled_class_is_not() {
        let users = [student("u1", "16881774198")];
        let validated = pull(false, &users, CLASSES, r#"{"enrollments": []}"#);
        assert_eq!(validated.deviations, vec![]);
        let groups = &validated.roster.groups;
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].source_key, "c4b");
        assert_eq!(groups[0].name, "4B");
        assert_eq!(groups[0].grade.as_deref(), Some("4"));
        assert_eq!(groups[0].school, "46505");
        assert_eq!(groups[0].school_year.as_deref(), Some("2025/2026"));
    }

    #[test]
    fn a_homeroom_enrollment_places_the_student_in_its_group_and_no_class_less_one_is_made() {
        let users = [student("u1", "16881774198"), student("u2", "25811885633")];
        let enrollments = r#"{"enrollments": [
            {"sourcedId": "e1", "role": "student", "user": {"sourcedId": "u1", "type": "user"},
             "class": {"sourcedId": "c4b", "type": "class"}, "school": {"sourcedId": "9f1c", "type": "org"}},
            {"sourcedId": "e2", "role": "student", "user": {"sourcedId": "u1"},
             "class": {"sourcedId": "math"}, "school": {"sourcedId": "9f1c"}},
            {"sourcedId": "e3", "role": "teacher", "user": {"sourcedId": "t1"},
             "class": {"sourcedId": "c4b"}, "school": {"sourcedId": "9f1c"}}
        ]}"#;
        let validated = pull(false, &users, CLASSES, enrollments);
        assert_eq!(validated.deviations, vec![]);
        let mut enrollments: Vec<(String, String, String, Option<String>)> = validated
            .roster
            .enrollments
            .iter()
            .map(|e| {
                (
                    e.source_key.to_string(),
                    e.student.to_string(),
                    e.school.to_string(),
                    e.group.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        enrollments.sort();
        assert_eq!(
            enrollments,
            vec![
                ("e1".into(), "u1".into(), "46505".into(), Some("c4b".into())),
                ("u2@46505".into(), "u2".into(), "46505".into(), None),
            ],
            "u1 is in 4B only; u2, in no homeroom, is at the school without a class"
        );
    }

    #[test]
    fn an_enrollment_naming_an_unknown_student_class_or_a_district_is_a_deviation() {
        let users = [student("u1", "16881774198")];
        let enrollments = r#"{"enrollments": [
            {"sourcedId": "e1", "role": "student", "user": {"sourcedId": "nobody"},
             "class": {"sourcedId": "c4b"}, "school": {"sourcedId": "9f1c"}},
            {"sourcedId": "e2", "role": "student", "user": {"sourcedId": "u1"},
             "class": {"sourcedId": "gone"}, "school": {"sourcedId": "9f1c"}},
            {"sourcedId": "e3", "role": "student", "user": {"sourcedId": "u1"},
             "class": {"sourcedId": "c4b"}, "school": {"sourcedId": "d1"}},
            {"sourcedId": "e4", "role": "student", "class": {"sourcedId": "c4b"},
             "school": {"sourcedId": "9f1c"}}
        ]}"#;
        let validated = pull(false, &users, CLASSES, enrollments);
        let details: Vec<(Code, &str)> = validated
            .deviations
            .iter()
            .map(|d| (d.code, d.detail.as_str()))
            .collect();
        assert_eq!(details.len(), 4, "{details:#?}");
        assert!(details
            .iter()
            .any(|(code, detail)| *code == Code::DanglingReference
                && detail.contains("district")
                && detail.contains("school names")));
        assert!(details
            .iter()
            .any(|(code, detail)| *code == Code::MissingRequired && detail.starts_with("user ")));
        let dangling = details
            .iter()
            .filter(|(code, detail)| {
                *code == Code::DanglingReference && detail.contains("does not contain")
            })
            .count();
        assert_eq!(dangling, 2, "the unknown student and the unknown class");
        // As in the file readers, an enrollment the export states stands for the student's
        // place at the school even when it dangles: no class-less one is made beside it.
        assert!(validated.roster.enrollments.is_empty());
    }

    #[test]
    fn a_delta_carries_tombstones_for_classes_and_enrollments_and_makes_no_class_less_enrollment() {
        let users = [student("u1", "16881774198")];
        let classes = r#"{"classes": [{"sourcedId": "c4b", "status": "tobedeleted",
            "classType": "homeroom", "school": {"sourcedId": "9f1c"}}]}"#;
        let enrollments = r#"{"enrollments": [{"sourcedId": "e1", "status": "tobedeleted",
            "role": "student", "user": {"sourcedId": "u1"}, "class": {"sourcedId": "c4b"},
            "school": {"sourcedId": "9f1c"}}]}"#;
        let validated = pull(true, &users, classes, enrollments);
        assert_eq!(validated.deviations, vec![]);
        assert!(validated.roster.enrollments.is_empty());
        assert_eq!(validated.roster.students.len(), 1);
        assert_eq!(
            validated.tombstones,
            vec![
                Tombstone {
                    entity: Entity::Group,
                    key: "c4b".into()
                },
                Tombstone {
                    entity: Entity::Enrollment,
                    key: "e1".into()
                },
            ]
        );
    }

    #[test]
    fn a_page_that_is_not_its_collection_names_the_page_without_quoting_it() {
        let mut builder = RosterBuilder::new(Default::default());
        let mut rest = RestRoster::new(false);
        for body in [
            &br#"{"classes": "16881774198"}"#[..],
            br#"{"users": []}"#,
            b"{\"classes\": [",
        ] {
            let error = rest
                .read_classes_page(body, "classes page 4", &mut builder)
                .unwrap_err()
                .to_string();
            assert!(error.contains("classes page 4"), "{error}");
            assert!(!error.contains("16881774198"), "{error}");
        }
    }
}
