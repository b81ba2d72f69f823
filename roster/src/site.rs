//! The site check: an export naming a school its site is not registered with is refused
//! whole, before it is diffed or sealed. The agent's pipeline runs it right after the
//! reader, with the schools its config stick carried (`skolebro_protocol::site`); central
//! checks every batch again on its own (`403 wrong_school`), so this check spares the school
//! a refused transfer and tells it why, in the deviation report it already reads.

use skolebro_protocol::{School, SiteSchool};

use crate::deviation::{Code, Deviation, Position, Severity};
use crate::validate::Validated;

/// One error deviation per school of `export` that none of `registered` covers, naming the
/// school (its numbers and name are public registry data, not personal data). Empty when
/// every school is registered, and when `registered` is empty: a device whose stick carried
/// no schools (an older stick) refuses none, and central still checks.
pub fn foreign_schools(
    export: &Validated,
    registered: &[SiteSchool],
    file: &str,
) -> Vec<Deviation> {
    if registered.is_empty() {
        return Vec::new();
    }
    let own: Vec<String> = registered.iter().map(ToString::to_string).collect();
    export
        .roster
        .schools
        .iter()
        .filter(|school| !registered.iter().any(|own| own.covers(school)))
        .map(|school| Deviation {
            code: Code::ForeignSchool,
            severity: Severity::Error,
            file: file.to_owned(),
            position: Position::Line(1),
            detail: format!(
                "school {} is not one of this site's schools ({}); nothing of this export \
                 is sent",
                describe(school),
                own.join("; ")
            ),
        })
        .collect()
}

/// A school as the deviation names it: skolenummer, name and kommune.
fn describe(school: &School) -> String {
    let kommune = school.kommunenummer.as_deref().unwrap_or("unknown");
    format!(
        "{} \"{}\" (kommune {kommune})",
        school.skolenummer, school.name
    )
}

#[cfg(test)]
mod tests {
    use skolebro_protocol::Roster;

    use super::*;

    fn school(kommune: &str, skolenummer: &str, name: &str) -> School {
        School {
            skolenummer: skolenummer.into(),
            organisasjonsnummer: None,
            kommunenummer: Some(kommune.into()),
            fylkesnummer: None,
            name: name.into(),
        }
    }

    fn export(schools: Vec<School>) -> Validated {
        Validated {
            roster: Roster {
                schools,
                ..Roster::default()
            },
            ..Validated::default()
        }
    }

    #[test]
    fn a_school_outside_the_site_is_an_error_naming_the_school() {
        let registered = ["4602/777=Ny skole".parse::<SiteSchool>().unwrap()];
        let export = export(vec![
            school("4602", "777", "Ny skole"),
            school("4601", "46500", "Fana skule"),
        ]);
        let found = foreign_schools(&export, &registered, "elevliste.csv");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, Code::ForeignSchool);
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(found[0].file, "elevliste.csv");
        assert!(
            found[0]
                .detail
                .contains("46500 \"Fana skule\" (kommune 4601)")
                && found[0].detail.contains("4602/777=Ny skole"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn an_export_of_the_sites_own_schools_or_a_site_without_registration_passes() {
        let export = export(vec![school("4602", "777", "Ny skole")]);
        let registered = ["4602/777=Ny skole".parse::<SiteSchool>().unwrap()];
        assert_eq!(foreign_schools(&export, &registered, "e.csv"), []);
        assert_eq!(foreign_schools(&export, &[], "e.csv"), []);
    }
}
