//! The elevliste for a county's admission office (inntakskontoret): the semicolon file
//! schools used to export from their SAS and upload by hand before each November deadline
//! (the seed's AS-IS), now generated from what central holds, per county and grade.
//!
//! It is written in the shape the agent's elevliste reader reads (`skolebro_roster::reader`),
//! with the columns the county's own table has (fylkesnummer, kommunenummer, skolenummer,
//! klasse, fødselsnummer, names) and the rest the roster knows: UTF-8 with a byte-order mark
//! (so spreadsheet programs show æ, ø and å), CRLF line ends, a header row, fields quoted
//! only when they hold a semicolon, a quote or a line break. One row per student enrolled in
//! a basisgruppe of the grade at a school of the county. A student without a valid national
//! id cannot be matched by the admission office: such rows are left out and counted in the
//! `X-Skolebro-Left-Out` header, and the school fixes the id in its SAS.
//!
//! Served on the operator listener (`GET /admin/exports/elevliste`,
//! `crate::api::operator`); this module only generates the file, which carries
//! personal data by design, and nothing of it is logged. Asked for a transfer window
//! (`window=ID`), it is the window's county, and once the window has closed the file is
//! generated as of its deadline: the records are bitemporal, so a late batch, applied and
//! kept like any other, leaves the window's file exactly as it was at the deadline.

use std::collections::HashMap;
use std::fmt::Write as _;

use skolebro_protocol::{Gender, Roster, SiteId};

use crate::store::{ConsumerScope, Store, StoreError, Timestamp};

/// The header row, in the agent reader's column names.
pub(crate) const HEADER: [&str; 16] = [
    "Fylkesnummer",
    "Kommunenummer",
    "Skolenummer",
    "Skolenavn",
    "Organisasjonsnummer",
    "Klasse",
    "Trinn",
    "Skoleår",
    "Fødselsnummer",
    "Etternavn",
    "Fornavn",
    "Mellomnavn",
    "Fødselsdato",
    "Kjønn",
    "E-post",
    "Brukernavn",
];

/// A generated elevliste: the file's bytes and how many students were left out for want of
/// a valid national id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elevliste {
    pub bytes: Vec<u8>,
    pub rows: usize,
    pub left_out: usize,
}

/// Builds the elevliste of `county` (fylkesnummer) and `grade` (trinn, compared as text)
/// from central's store: the current rosters, or with `as_of` the rosters as they stood
/// then (for a transfer window's deadline). The sites considered are those with a current
/// school in the county.
pub(crate) async fn generate(
    store: &dyn Store,
    county: &str,
    grade: &str,
    as_of: Option<Timestamp>,
) -> Result<Elevliste, StoreError> {
    let scope = ConsumerScope::County(county.to_owned());
    let mut sites: Vec<SiteId> = Vec::new();
    for (site, school) in store.current_schools().await? {
        if scope.covers(&school) && sites.last() != Some(&site) {
            sites.push(site);
        }
    }
    let mut rows: Vec<[String; 16]> = Vec::new();
    let mut left_out = 0;
    for site in &sites {
        let roster = match as_of {
            None => store.current_roster(site).await?,
            Some(at) => store.roster_as_of(site, at).await?,
        };
        left_out += rows_of(&roster, Some(&scope), Some(grade.trim()), &mut rows);
    }
    Ok(written(rows, left_out))
}

/// The elevliste of one site's whole roster, every grade and school: the open-format copy
/// of its current pupils that `site export` writes when a school leaves
/// (`crate::site_exit`).
pub(crate) fn of_site(roster: &Roster) -> Elevliste {
    let mut rows: Vec<[String; 16]> = Vec::new();
    let left_out = rows_of(roster, None, None, &mut rows);
    written(rows, left_out)
}

/// The file of `rows`, sorted, with its header.
fn written(mut rows: Vec<[String; 16]>, left_out: usize) -> Elevliste {
    rows.sort_unstable_by(|a, b| {
        // School, class, family name, given name, national id.
        (&a[2], &a[5], &a[9], &a[10], &a[8]).cmp(&(&b[2], &b[5], &b[9], &b[10], &b[8]))
    });
    let mut text = String::with_capacity(128 * (rows.len() + 1));
    text.push('\u{feff}');
    write_row(&mut text, HEADER.iter().copied());
    for row in &rows {
        write_row(&mut text, row.iter().map(String::as_str));
    }
    Elevliste {
        bytes: text.into_bytes(),
        rows: rows.len(),
        left_out,
    }
}

/// Adds the rows of one site's roster, of the schools `scope` covers and the basisgrupper
/// of `grade` (every school and grade for `None`); returns how many students were left out.
fn rows_of(
    roster: &Roster,
    scope: Option<&ConsumerScope>,
    grade: Option<&str>,
    out: &mut Vec<[String; 16]>,
) -> usize {
    let schools: HashMap<&str, _> = roster
        .schools
        .iter()
        .filter(|school| scope.is_none_or(|scope| scope.covers(school)))
        .map(|school| (school.skolenummer.as_str(), school))
        .collect();
    let groups: HashMap<&str, _> = roster
        .groups
        .iter()
        .filter(|group| {
            grade.is_none_or(|grade| group.grade.as_deref().map(str::trim) == Some(grade))
        })
        .map(|group| (group.source_key.as_str(), group))
        .collect();
    let students: HashMap<&str, _> = roster
        .students
        .iter()
        .map(|student| (student.source_key.as_str(), student))
        .collect();
    let mut left_out = 0;
    for enrollment in &roster.enrollments {
        let (Some(school), Some(group), Some(student)) = (
            schools.get(enrollment.school.as_str()),
            enrollment.group.as_deref().and_then(|g| groups.get(g)),
            students.get(enrollment.student.as_str()),
        ) else {
            continue;
        };
        let Some(national_id) = &student.national_id else {
            left_out += 1;
            continue;
        };
        let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
        out.push([
            text(school.fylkesnummer.as_deref()),
            text(school.kommunenummer.as_deref()),
            school.skolenummer.to_string(),
            school.name.to_string(),
            text(school.organisasjonsnummer.as_deref()),
            group.name.to_string(),
            text(group.grade.as_deref()),
            text(group.school_year.as_deref()),
            national_id.as_str().to_owned(),
            student.family_name.to_string(),
            student.given_name.to_string(),
            text(student.middle_name.as_deref()),
            student
                .birth_date
                .map(|date| date.to_string())
                .unwrap_or_default(),
            match student.gender {
                Gender::Male => "M",
                Gender::Female => "K",
                Gender::Unknown => "",
            }
            .to_owned(),
            text(student.email.as_deref()),
            text(student.username.as_deref()),
        ]);
    }
    left_out
}

/// The first characters that make a spreadsheet program read a cell as a formula (OWASP's
/// CSV injection list): a name such as `=HYPERLINK(…)` typed into a school's SAS would
/// otherwise run when the admission office opens the file.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Writes one line: fields joined by semicolons, then CRLF. A field starting with one of
/// [`FORMULA_STARTS`] is neutralised as OWASP recommends: prefixed with a single quote, which
/// spreadsheets take as "text" and do not show, and quoted, so no separator inside it can
/// start a new cell. Other fields are quoted (quotes doubled) only when they hold a
/// semicolon, a quote or a line break.
fn write_row<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (at, field) in fields.enumerate() {
        if at > 0 {
            out.push(';');
        }
        if field.starts_with(FORMULA_STARTS) {
            let _ = write!(out, "\"'{}\"", field.replace('"', "\"\""));
        } else if field.contains([';', '"', '\r', '\n']) {
            let _ = write!(out, "\"{}\"", field.replace('"', "\"\""));
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        write_row(
            &mut out,
            ["46", "Fana; skule", "Å \"B\"", "a\nb"].into_iter(),
        );
        assert_eq!(out, "46;\"Fana; skule\";\"Å \"\"B\"\"\";\"a\nb\"\r\n");
    }

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        let mut out = String::new();
        write_row(
            &mut out,
            [
                "=HYPERLINK(\"http://x\";\"y\")",
                "+47",
                "-Anne",
                "@SUM(A1)",
                "\tTab",
                "\rCR",
                "Anne-Lise",
                "a=b",
            ]
            .into_iter(),
        );
        assert_eq!(
            out,
            "\"'=HYPERLINK(\"\"http://x\"\";\"\"y\"\")\";\"'+47\";\"'-Anne\";\"'@SUM(A1)\";\
             \"'\tTab\";\"'\rCR\";Anne-Lise;a=b\r\n"
        );
    }
}
