//! Deviations: what is wrong with an export, in terms a school can act on in its SAS. Readers
//! and validation produce them; `check` prints them, and the heartbeat reports them to
//! central grouped by code ([`group`]), with their counts and the first rows of each, so the
//! municipality's operator can tell the school what to fix. A deviation's detail never holds
//! a national id or a name in clear.

use std::fmt;

use serde::{Deserialize, Serialize};
pub use skolebro_protocol::api::{DeviationGroup, DeviationRow};

/// Stable codes: scripts and central group deviations by them, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidNationalId,
    DuplicateNationalId,
    DuplicateRecord,
    DuplicateKey,
    DanglingReference,
    MissingRequired,
    UnknownField,
    SyntheticNationalId,
    /// A header column no field is read from: data the school may think is sent is not.
    UnknownColumn,
    /// A row with fewer fields than the header: the missing ones read as empty.
    ShortRow,
    /// The export names no school at all (an LMS's course-only IMS file): its students
    /// reach no consumer scoped to a school.
    NoSchool,
    /// The export names a school the site is not registered with: a device speaks for its
    /// site's schools only, so nothing of the export is sent (see [`crate::site`]).
    ForeignSchool,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidNationalId => "invalid_national_id",
            Code::DuplicateNationalId => "duplicate_national_id",
            Code::DuplicateRecord => "duplicate_record",
            Code::DuplicateKey => "duplicate_key",
            Code::DanglingReference => "dangling_reference",
            Code::MissingRequired => "missing_required",
            Code::UnknownField => "unknown_field",
            Code::SyntheticNationalId => "synthetic_national_id",
            Code::UnknownColumn => "unknown_column",
            Code::ShortRow => "short_row",
            Code::NoSchool => "no_school",
            Code::ForeignSchool => "foreign_school",
        }
    }
}

/// Errors make `check` fail and keep the record out of the delta; warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    /// The word the heartbeat and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Where in the input a record came from: a line for text formats, or the ordinal of the
/// entry for formats whose parser does not report lines (JSON collections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Position {
    Line(u64),
    Record(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// One thing wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub code: Code,
    pub severity: Severity,
    /// The file the record is in (for a OneRoster folder, the member file).
    pub file: String,
    pub position: Position,
    /// Masked: ids as `058209*****`, no names.
    pub detail: String,
}

impl Serialize for Deviation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Deviation", 5)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("file", &self.file)?;
        match self.position {
            Position::Line(n) => s.serialize_field("line", &n)?,
            Position::Record(n) => s.serialize_field("record", &n)?,
        }
        s.serialize_field("detail", &self.detail)?;
        s.end()
    }
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {severity} [{}] {}",
            self.file,
            match self.position {
                Position::Line(n) | Position::Record(n) => n,
            },
            self.code.as_str(),
            self.detail
        )
    }
}

/// Rows of each code and severity an export's reading keeps in memory, unless the caller
/// asks for every one (`check --all`). A broken export can have a deviation on every row;
/// the counts stay exact, and a hundred rows show the pattern as well as a million.
pub const KEPT_PER_CODE: usize = 100;

/// Exact deviation counts per severity and code, kept whether or not the rows are, so that
/// reports and the heartbeat count every deviation however few rows are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(std::collections::BTreeMap<(Severity, Code), u64>);

impl Tally {
    /// Counts one more deviation and says how many of its code and severity there are now.
    pub fn add(&mut self, severity: Severity, code: Code) -> u64 {
        let count = self.0.entry((severity, code)).or_insert(0);
        *count += 1;
        *count
    }

    /// How many deviations have `severity` and `code`.
    pub fn of(&self, severity: Severity, code: Code) -> u64 {
        self.0.get(&(severity, code)).copied().unwrap_or(0)
    }

    /// How many deviations have `severity`.
    pub fn with_severity(&self, severity: Severity) -> u64 {
        self.0
            .iter()
            .filter(|((s, _), _)| *s == severity)
            .map(|(_, count)| count)
            .sum()
    }

    /// Every deviation counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts, errors first, then by code.
    pub fn iter(&self) -> impl Iterator<Item = (Severity, Code, u64)> + '_ {
        self.0.iter().map(|(&(s, c), &n)| (s, c, n))
    }
}

/// Rows of each code a report carries: enough for a school to see the pattern and find the
/// rows in its SAS, few enough that a broken export of thousands of rows keeps the heartbeat
/// small (central takes at most 64 KiB).
pub const ROWS_PER_GROUP: usize = 10;

/// Longest detail a report carries, in characters.
const MAX_REPORTED_DETAIL: usize = 160;

/// Groups an export's deviations by code and severity, errors first, each with its count
/// (from `tally`, which counts the rows that were not kept too) and its first rows: the form
/// the heartbeat carries and central's site page shows.
pub fn group(deviations: &[Deviation], tally: &Tally) -> Vec<DeviationGroup> {
    let mut groups: std::collections::BTreeMap<(Severity, Code), DeviationGroup> = tally
        .iter()
        .map(|(severity, code, count)| {
            let group = DeviationGroup {
                code: code.as_str().to_owned(),
                severity: severity.as_str().to_owned(),
                count,
                rows: Vec::new(),
            };
            ((severity, code), group)
        })
        .collect();
    for deviation in deviations {
        let Some(group) = groups.get_mut(&(deviation.severity, deviation.code)) else {
            continue;
        };
        if group.rows.len() < ROWS_PER_GROUP {
            group.rows.push(DeviationRow {
                file: reported_file(&deviation.file),
                at: deviation.position.to_string(),
                detail: deviation.detail.chars().take(MAX_REPORTED_DETAIL).collect(),
            });
        }
    }
    groups.into_values().collect()
}

/// The file's name without the folders it sits in: the school knows its drop folder, and
/// central has no use for the device's paths.
fn reported_file(file: &str) -> String {
    let name = std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.into(), |name| name.to_string_lossy());
    name.chars().take(MAX_REPORTED_DETAIL).collect()
}

/// A value from an export as a report may show it: short, and masked when it could be a
/// national id (some SAS systems use the id as a key, or put it in the wrong column).
pub fn shown(value: &str) -> String {
    if value.chars().filter(char::is_ascii_digit).count() >= 6 {
        skolebro_protocol::national_id::mask(value)
    } else {
        value.chars().take(40).collect()
    }
}

/// A record key as a report shows it: in clear, so the school can find the record, except
/// for any run of eleven digits (a national id used as the key, as elevliste rows are keyed,
/// or inside an enrollment key `id@skolenummer`), which is masked as national ids are.
pub fn shown_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 11 {
            out.push_str(&skolebro_protocol::national_id::mask(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in key.chars().take(MAX_REPORTED_DETAIL) {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shown_in_clear_but_national_ids_in_them_are_masked() {
        assert_eq!(shown_key("global_ID_01236"), "global_ID_01236");
        assert_eq!(shown_key("u-1234567"), "u-1234567");
        assert_eq!(shown_key("16881774198"), "168817*****");
        assert_eq!(shown_key("16881774198@46505"), "168817*****@46505");
    }

    fn tally_of(deviations: &[Deviation]) -> Tally {
        let mut tally = Tally::default();
        for d in deviations {
            tally.add(d.severity, d.code);
        }
        tally
    }

    #[test]
    fn a_group_counts_the_rows_that_were_not_kept() {
        let rows = [deviation(Code::ShortRow, Severity::Warning, 2)];
        let mut tally = tally_of(&rows);
        for _ in 0..500 {
            tally.add(Severity::Warning, Code::ShortRow);
        }
        let groups = group(&rows, &tally);
        assert_eq!((groups[0].count, groups[0].rows.len()), (501, 1));
    }

    fn deviation(code: Code, severity: Severity, line: u64) -> Deviation {
        Deviation {
            code,
            severity,
            file: "/srv/skolebro/drop/elevliste.csv".into(),
            position: Position::Line(line),
            detail: format!("national id 028716***** on line {line}"),
        }
    }

    #[test]
    fn deviations_are_grouped_by_code_errors_first_with_their_first_rows() {
        let mut deviations = vec![deviation(Code::UnknownField, Severity::Warning, 1)];
        deviations
            .extend((2..40).map(|line| deviation(Code::InvalidNationalId, Severity::Error, line)));
        deviations.push(deviation(Code::DuplicateKey, Severity::Error, 41));
        let groups = group(&deviations, &tally_of(&deviations));
        let summary: Vec<_> = groups
            .iter()
            .map(|g| (g.severity.as_str(), g.code.as_str(), g.count, g.rows.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Severity::Error.as_str(),
                    Code::InvalidNationalId.as_str(),
                    38,
                    ROWS_PER_GROUP
                ),
                (Severity::Error.as_str(), Code::DuplicateKey.as_str(), 1, 1),
                (
                    Severity::Warning.as_str(),
                    Code::UnknownField.as_str(),
                    1,
                    1
                ),
            ]
        );
        assert_eq!(groups[0].rows[0].at, "line 2");
        assert_eq!(groups[0].rows[0].file, "elevliste.csv");
        assert_eq!(groups[0].rows[ROWS_PER_GROUP - 1].at, "line 11");
    }

    #[test]
    fn a_group_reads_back_as_it_was_written() {
        let rows = [deviation(Code::MissingRequired, Severity::Error, 7)];
        let groups = group(&rows, &tally_of(&rows));
        let json = serde_json::to_string(&groups).expect("serializes");
        assert!(json.contains("\"code\":\"missing_required\""), "{json}");
        let back: Vec<DeviationGroup> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, groups);
    }
}
