//! References a partial export leaves to the receiver. Validation keeps a delta's record
//! that names a record the delta lacks ([`OutsideReference`]: an enrollment whose pupil did
//! not change, a class whose school did not); this stage, between validation and the
//! differ, checks each against the [`State`] central is known to have. What neither the
//! export nor the state holds is left out with a `dangling_reference` error, as validation
//! leaves out a full export's; the rest goes on to the differ, and central checks it once
//! more against what it holds.

use std::collections::{HashMap, HashSet};

use skolebro_protocol::{Enrollment, Entity, Group, Record, SiteSecret};

use crate::deviation::{shown_key, Code, Deviation, Severity, KEPT_PER_CODE};
use crate::state::State;
use crate::validate::{OutsideReference, Validated};

/// Checks the export's [`Validated::outside_references`] against `sent`, the state central is
/// known to have under `secret`, and leaves out each record naming one that neither holds.
/// A record the export deletes or renames away counts as not held. Afterwards the export
/// has no outside references left to check, so a second call changes nothing.
pub fn resolve(export: &mut Validated, sent: &State, secret: &SiteSecret) {
    let outside = std::mem::take(&mut export.outside_references);
    if outside.is_empty() {
        return;
    }
    let going: HashSet<(Entity, &str)> = export
        .tombstones
        .iter()
        .map(|t| (t.entity, t.key.as_str()))
        .chain(export.renames.iter().map(|r| (r.entity, r.from.as_str())))
        .collect();
    let roster = &export.roster;
    let schools: HashSet<&str> = roster.schools.iter().map(Record::key).collect();
    let students: HashSet<&str> = roster.students.iter().map(Record::key).collect();
    let groups: HashMap<&str, &Group> = roster.groups.iter().map(|g| (g.key(), g)).collect();
    let enrollments: HashMap<&str, &Enrollment> =
        roster.enrollments.iter().map(|e| (e.key(), e)).collect();
    let sent_holds = |entity: Entity, key: &str| {
        !going.contains(&(entity, key)) && sent.contains(entity, &secret.handle(entity, key))
    };

    let mut refused: Vec<(&OutsideReference, String)> = Vec::new();
    let mut refused_groups: HashSet<&str> = HashSet::new();
    // Groups first: an enrollment of a partial export naming one of its groups was kept as
    // an outside reference too, and goes if its group goes.
    for reference in outside.iter().filter(|r| r.entity == Entity::Group) {
        let Some(group) = groups.get(reference.key.as_str()) else {
            continue;
        };
        if !schools.contains(group.school.as_str()) && !sent_holds(Entity::School, &group.school) {
            let what = format!("group {} names school {}", group.source_key, group.school);
            refused.push((reference, what));
            refused_groups.insert(group.key());
        }
    }
    for reference in outside.iter().filter(|r| r.entity == Entity::Enrollment) {
        let Some(enrollment) = enrollments.get(reference.key.as_str()) else {
            continue;
        };
        let student = enrollment.student.as_str();
        let school = enrollment.school.as_str();
        let missing = if !students.contains(student) && !sent_holds(Entity::Student, student) {
            Some(format!("student {}", shown_key(student)))
        } else if !schools.contains(school) && !sent_holds(Entity::School, school) {
            Some(format!("school {school}"))
        } else {
            enrollment.group.as_deref().and_then(|group| {
                let held = if groups.contains_key(group) {
                    !refused_groups.contains(group)
                } else {
                    sent_holds(Entity::Group, group)
                };
                (!held).then(|| format!("group {group}"))
            })
        };
        if let Some(what) = missing {
            refused.push((reference, format!("enrollment names {what}")));
        }
    }
    if refused.is_empty() {
        return;
    }

    let gone = |entity: Entity| -> HashSet<String> {
        refused
            .iter()
            .filter(|(r, _)| r.entity == entity)
            .map(|(r, _)| r.key.to_string())
            .collect()
    };
    let (gone_groups, gone_enrollments) = (gone(Entity::Group), gone(Entity::Enrollment));
    let mut deviations = Vec::with_capacity(refused.len());
    for (reference, what) in &refused {
        deviations.push(Deviation {
            code: Code::DanglingReference,
            severity: Severity::Error,
            file: reference.file.clone(),
            position: reference.position,
            detail: format!(
                "{what} that neither the export nor the records sent before hold; it is left out"
            ),
        });
    }
    let roster = &mut export.roster;
    roster
        .groups
        .retain(|g| !gone_groups.contains(g.source_key.as_str()));
    roster
        .enrollments
        .retain(|e| !gone_enrollments.contains(e.source_key.as_str()));
    for deviation in deviations {
        let count = export.tally.add(deviation.severity, deviation.code);
        if count <= KEPT_PER_CODE as u64 {
            export.deviations.push(deviation);
        }
    }
}

#[cfg(test)]
mod tests {
    use compact_str::CompactString;
    use skolebro_protocol::{Gender, Roster, School, Student};

    use super::*;
    use crate::deviation::Position;
    use crate::validate::{Provenance, RosterBuilder, StudentRow, Tombstone, ValidationOptions};

    fn secret() -> SiteSecret {
        SiteSecret::from_bytes([7; 32])
    }

    fn school(skolenummer: &str) -> School {
        School {
            skolenummer: skolenummer.into(),
            organisasjonsnummer: None,
            kommunenummer: None,
            fylkesnummer: None,
            name: "Fana skule".into(),
        }
    }

    fn student(key: &str) -> Student {
        Student {
            source_key: key.into(),
            national_id: None,
            username: None,
            given_name: "Kari".into(),
            middle_name: None,
            family_name: "Nordmann".into(),
            birth_date: None,
            gender: Gender::Female,
            email: None,
        }
    }

    fn group(key: &str, school: &str) -> Group {
        Group {
            source_key: key.into(),
            name: key.into(),
            grade: None,
            school: school.into(),
            school_year: None,
        }
    }

    fn enrollment(student: &str, school: &str, group: &str) -> Enrollment {
        Enrollment {
            source_key: format!("{student}@{school}").into(),
            student: student.into(),
            school: school.into(),
            group: Some(CompactString::from(group)),
        }
    }

    /// What central was sent: school 46505 with class 1A and pupils elev1 and elev2 in it.
    fn sent() -> State {
        let roster = Roster {
            schools: vec![school("46505")],
            students: vec![student("elev1"), student("elev2")],
            groups: vec![group("46505-1A", "46505")],
            enrollments: vec![
                enrollment("elev1", "46505", "46505-1A"),
                enrollment("elev2", "46505", "46505-1A"),
            ],
        };
        State::of(&roster, &secret())
    }

    /// A delta read from `enrollments.csv`: each enrollment on its own line from 2.
    fn delta(groups: &[Group], enrollments: &[Enrollment]) -> Validated {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_partial();
        builder.begin_file("enrollments.csv");
        for (n, group) in (1..).zip(groups) {
            builder.group(Position::Line(n), group.clone(), Provenance::Stated);
        }
        for (n, enrollment) in (2..).zip(enrollments) {
            builder.enrollment(Position::Line(n), enrollment.clone());
        }
        builder.finish()
    }

    fn details(export: &Validated) -> Vec<(Position, &str)> {
        export
            .deviations
            .iter()
            .map(|d| {
                assert_eq!(
                    (d.code, d.severity),
                    (Code::DanglingReference, Severity::Error)
                );
                (d.position, d.detail.as_str())
            })
            .collect()
    }

    #[test]
    fn a_class_move_naming_a_pupil_and_class_central_has_is_kept() {
        let mut export = delta(
            &[group("46505-2B", "46505")],
            &[enrollment("elev1", "46505", "46505-2B")],
        );
        resolve(&mut export, &sent(), &secret());
        assert!(export.deviations.is_empty(), "{:?}", export.deviations);
        assert_eq!(export.roster.groups.len(), 1);
        assert_eq!(export.roster.enrollments.len(), 1);
        assert!(export.outside_references.is_empty());
    }

    #[test]
    fn a_reference_neither_the_delta_nor_what_was_sent_holds_is_left_out_masked() {
        const ID: &str = "16881774198";
        let mut export = delta(
            &[group("99999-1A", "99999")],
            &[
                enrollment(ID, "46505", "46505-1A"),
                enrollment("elev1", "46505", "46505-9Z"),
                enrollment("elev2", "46505", "99999-1A"),
                enrollment("elev2", "46506", "46505-1A"),
            ],
        );
        resolve(&mut export, &sent(), &secret());
        assert_eq!(
            details(&export),
            [
                (
                    Position::Line(1),
                    "group 99999-1A names school 99999 that neither the export nor the records \
                     sent before hold; it is left out"
                ),
                (
                    Position::Line(2),
                    "enrollment names student 168817***** that neither the export nor the \
                     records sent before hold; it is left out"
                ),
                (
                    Position::Line(3),
                    "enrollment names group 46505-9Z that neither the export nor the records \
                     sent before hold; it is left out"
                ),
                (
                    Position::Line(4),
                    "enrollment names group 99999-1A that neither the export nor the records \
                     sent before hold; it is left out"
                ),
                (
                    Position::Line(5),
                    "enrollment names school 46506 that neither the export nor the records \
                     sent before hold; it is left out"
                ),
            ]
        );
        assert_eq!(export.errors(), 5);
        assert!(export.roster.groups.is_empty());
        assert!(export.roster.enrollments.is_empty());
    }

    #[test]
    fn a_pupil_the_delta_deletes_is_no_longer_there_to_name() {
        let mut export = delta(&[], &[enrollment("elev2", "46505", "46505-1A")]);
        export.tombstones.push(Tombstone {
            entity: Entity::Student,
            key: "elev2".into(),
        });
        resolve(&mut export, &sent(), &secret());
        assert_eq!(export.errors(), 1);
        assert!(export.roster.enrollments.is_empty());
    }

    #[test]
    fn what_the_delta_holds_itself_needs_nothing_sent() {
        let mut builder = RosterBuilder::new(ValidationOptions::default());
        builder.set_partial();
        builder.school(Position::Line(1), school("46507"), Provenance::Stated);
        builder.student(
            Position::Line(2),
            StudentRow {
                student: student("elev7"),
                national_id: None,
                key_is_national_id: false,
            },
        );
        builder.enrollment(Position::Line(2), enrollment("elev7", "46507", "46505-1A"));
        let mut export = builder.finish();
        assert_eq!(export.outside_references.len(), 1);
        resolve(&mut export, &sent(), &secret());
        assert_eq!(export.errors(), 0);
        assert_eq!(export.roster.enrollments.len(), 1);
        resolve(&mut export, &State::default(), &secret());
        assert_eq!(export.errors(), 0, "a second call checks nothing again");
    }
}
