//! The Norwegian school year (1 August to 31 July) behind a class's OneRoster academic
//! session: read from the year the export gives a basisgruppe (`2026/2027`, `2026-27`, or
//! OneRoster's lone ending year `2027`), or, when the export gives none, the school year
//! the class last changed in. `crate::oneroster` turns it into an `academicSession` of type
//! `schoolYear` and the classes' courses. Pure.

use skolebro_protocol::civil_time::UtcDateTime;

use crate::store::Timestamp;

/// A school year, by the calendar year it starts in (1 August).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SchoolYear {
    start: u16,
}

impl SchoolYear {
    /// The school year an export's text names: a first year followed by a second (`2026/2027`,
    /// `2026-27`) is the starting year; a year alone is the ending year, as OneRoster's
    /// `schoolYear` writes it. `None` for text without a year.
    pub(crate) fn parse(text: &str) -> Option<SchoolYear> {
        let bytes = text.as_bytes();
        let digits_at = |at: usize| {
            bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = 0;
        while at < bytes.len() {
            let run = digits_at(at);
            if run == 0 {
                at += 1;
                continue;
            }
            if run != 4 {
                at += run;
                continue;
            }
            let year: u16 = text.get(at..at + 4)?.parse().ok()?;
            let after = &bytes[at + 4..];
            let followed =
                matches!(after.first(), Some(b'/' | b'-')) && matches!(digits_at(at + 5), 2 | 4);
            let start = if followed { year } else { year.checked_sub(1)? };
            return Some(SchoolYear { start });
        }
        None
    }

    /// The school year `at` falls in.
    pub(crate) fn containing(at: Timestamp) -> SchoolYear {
        let moment = UtcDateTime::from_unix_millis(at.unix_millis());
        let year = if moment.month >= 8 {
            moment.year
        } else {
            moment.year - 1
        };
        SchoolYear {
            start: u16::try_from(year.clamp(0, i64::from(u16::MAX) - 1)).unwrap_or_default(),
        }
    }

    /// `2026/2027`, as Norwegian schools write it.
    pub(crate) fn title(self) -> String {
        format!("{}/{}", self.start, self.start + 1)
    }

    /// OneRoster's `schoolYear`: the year it ends in.
    pub(crate) fn ending_year(self) -> String {
        (self.start + 1).to_string()
    }

    /// The first day, 1 August.
    pub(crate) fn start_date(self) -> String {
        format!("{:04}-08-01", self.start)
    }

    /// The last day, 31 July.
    pub(crate) fn end_date(self) -> String {
        format!("{:04}-07-31", self.start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_exports_write_a_school_year_reads_as_the_same_year() {
        for text in ["2026/2027", "2026-2027", "2026/27", "2026-27", "2027"] {
            let year = SchoolYear::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(year.title(), "2026/2027", "{text}");
        }
        for text in ["", "ukjent", "26/27", "123456"] {
            assert_eq!(SchoolYear::parse(text), None, "{text}");
        }
    }

    #[test]
    fn a_school_year_runs_from_the_first_of_august_to_the_last_of_july() {
        let year = SchoolYear::parse("2026/2027").unwrap();
        assert_eq!(
            (year.start_date(), year.end_date()),
            ("2026-08-01".to_owned(), "2027-07-31".to_owned())
        );
        assert_eq!(year.ending_year(), "2027");
        let at = |text: &str| SchoolYear::containing(Timestamp::parse_rfc3339(text).unwrap());
        assert_eq!(at("2026-08-01T00:00:00Z"), year);
        assert_eq!(at("2027-07-31T23:59:59Z"), year);
        assert_eq!(at("2026-07-31T23:59:59Z").title(), "2025/2026");
    }
}
