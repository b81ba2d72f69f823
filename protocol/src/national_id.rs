//! Norwegian national ids (fødselsnummer, D-, H- and FH-numbers) and the calendar dates
//! they encode.
//!
//! Ids are parsed once, at the edge: the export readers in the agent hand every raw value
//! to [`NationalId::parse`], and a value that fails becomes a deviation in the school's
//! report (shown through [`mask`]) instead of a field of a record. Validation, the differ,
//! the wire and central therefore only ever hold a [`NationalId`], which cannot be invalid,
//! and none of them checks an id again.
//!
//! An id is personal data. The `Display` and `Debug` forms of [`NationalId`] are masked,
//! so a stray `{}` or `{:?}` in a log line cannot leak one; the clear value is reachable
//! only through [`NationalId::as_str`] and serialization, which exist for the trip to
//! central.
//!
//! The rules, as Skatteetaten publishes them and as python-stdnum and NAV's fnrvalidator
//! implement them:
//!
//! - The digits are `DDMMYYIIIKK`: birth date, individual number, two control digits.
//! - A D-number adds 40 to the day, an H-number adds 40 to the month (NAV's synthetic
//!   numbers do the same and so read as H-numbers), and Skatteetaten's synthetic test
//!   numbers (Tenor) add 80 to the month, also on top of a D-number's day. An FH-number
//!   starts with 8 or 9 and encodes no date at all.
//! - The individual number and the year together give the century.
//! - The first control digit must leave a remainder of 0 under the weights
//!   `3 7 6 1 8 9 4 5 2 1`; the series issued from 2032 also allow 1, 2 and 3, and both
//!   stay valid side by side. The weights `5 4 3 2 7 6 5 4 3 2 1` over all eleven digits
//!   must leave 0.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

pub use crate::civil_time::CivilDate;

/// What kind of number an id is.
///
/// The kind decides what an id can tell us: only the first three encode a birth date. The
/// deviation report also names it, since a school that registers a pupil under a D-number
/// or an H-number usually has a real fødselsnummer to replace it with later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum IdKind {
    /// An ordinary fødselsnummer, issued at birth or on moving to Norway.
    Fodselsnummer,
    /// A D-number (day + 40), issued to people with a temporary connection to Norway. A
    /// D-number whose month also carries + 40 (NAV's synthetic D-numbers) is still a
    /// D-number.
    DNumber,
    /// An H-number (month + 40), an auxiliary number from the health sector. NAV's
    /// synthetic numbers use the same offset and therefore also read as H-numbers.
    HNumber,
    /// An FH-number (first digit 8 or 9), the health sector's common auxiliary number. It
    /// encodes no birth date, only control digits.
    FhNumber,
}

/// 11-digit Norwegian national id, always valid once constructed.
///
/// The only way in is [`NationalId::parse`] (or deserializing, which calls it), so holding
/// one proves the control digits, the date and the century were checked. `Display` and
/// `Debug` print the masked form; use [`NationalId::as_str`] where the clear value is
/// really needed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NationalId {
    /// ASCII digits.
    digits: [u8; 11],
}

/// Weights of the first control digit: digits 1-9 and the control digit itself.
const K1_WEIGHTS: [u32; 10] = [3, 7, 6, 1, 8, 9, 4, 5, 2, 1];

/// Weights of the second control digit: digits 1-10 and the control digit itself.
const K2_WEIGHTS: [u32; 11] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1];

/// The largest remainder the first control digit may leave. Before 2032 only 0 was used;
/// Skatteetaten's series from 2032 add 1, 2 and 3, and old ids stay valid.
const MAX_K1_REMAINDER: u32 = 3;

impl NationalId {
    /// Parses and validates an id as it appears in an export.
    ///
    /// Surrounding ASCII whitespace is trimmed, because fixed-width and CSV exports pad
    /// fields; nothing else is forgiven (no inner spaces or dashes, no non-ASCII
    /// whitespace), so an id has one spelling and the differ never sees two forms of it.
    /// Errors never contain the input.
    pub fn parse(s: &str) -> Result<NationalId, NationalIdError> {
        let s = s.trim_ascii();
        let found = s.chars().count();
        if found != 11 {
            return Err(NationalIdError::Length { found });
        }
        // Eleven characters fit eleven bytes only if they are all ASCII.
        let digits: [u8; 11] = s
            .as_bytes()
            .try_into()
            .map_err(|_| NationalIdError::NonDigit)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(NationalIdError::NonDigit);
        }
        let id = NationalId { digits };
        if !id.control_digits_match() {
            return Err(NationalIdError::Checksum);
        }
        if id.kind() != IdKind::FhNumber {
            id.decode_birth_date()?;
        }
        Ok(id)
    }

    /// What kind of number this is, read from the offsets on the day and the month.
    pub fn kind(&self) -> IdKind {
        match (self.digit(0), self.digit(2)) {
            (8..=9, _) => IdKind::FhNumber,
            (4..=7, _) => IdKind::DNumber,
            (_, 4..=5) => IdKind::HNumber,
            _ => IdKind::Fodselsnummer,
        }
    }

    /// Whether this is one of Skatteetaten's synthetic test numbers (month + 80, possibly
    /// on a D-number).
    ///
    /// Test systems and demo exports carry them; a production roster should not, so the
    /// agent can flag them. NAV's synthetic numbers (month + 40) cannot be told apart from
    /// H-numbers and are not counted here.
    pub fn is_synthetic(&self) -> bool {
        self.kind() != IdKind::FhNumber && self.digit(2) >= 8
    }

    /// The birth date the id encodes, or `None` for an FH-number, which encodes none.
    ///
    /// The century comes from the individual number. Skatteetaten warns that this stops
    /// holding for ids issued from 2032, so where the population register's own birth date
    /// is known, prefer it.
    pub fn birth_date(&self) -> Option<CivilDate> {
        if self.kind() == IdKind::FhNumber {
            return None;
        }
        // `parse` checked the date, so this is `Some` for every id that exists.
        self.decode_birth_date().ok()
    }

    /// The id in clear, for the wire and for lookups in central. Callers must not log it.
    pub fn as_str(&self) -> &str {
        // `parse`, the only constructor, admits nothing but ASCII digits.
        std::str::from_utf8(&self.digits).expect("a NationalId holds only ASCII digits")
    }

    /// The first six digits followed by `*****`, e.g. `058209*****`: enough for a person
    /// to recognise a row in a report, not enough to identify anyone.
    pub fn masked(&self) -> String {
        let mut out: String = self.digits[..6].iter().map(|&b| char::from(b)).collect();
        out.push_str("*****");
        out
    }

    /// The value of the digit at `index`.
    fn digit(&self, index: usize) -> u8 {
        self.digits[index] - b'0'
    }

    /// The value of the digits in `range`, read as one decimal number.
    fn number(&self, range: std::ops::Range<usize>) -> u16 {
        range.fold(0, |acc, i| acc * 10 + u16::from(self.digit(i)))
    }

    fn control_digits_match(&self) -> bool {
        let remainder = |weights: &[u32]| -> u32 {
            let sum: u32 = weights
                .iter()
                .zip(0..)
                .map(|(w, i)| w * u32::from(self.digit(i)))
                .sum();
            sum % 11
        };
        remainder(&K1_WEIGHTS) <= MAX_K1_REMAINDER && remainder(&K2_WEIGHTS) == 0
    }

    /// Decodes the birth date of an id that is not an FH-number.
    fn decode_birth_date(&self) -> Result<CivilDate, NationalIdError> {
        let day = match self.number(0..2) {
            d @ 1..=31 => d,
            d @ 41..=71 => d - 40,
            _ => return Err(NationalIdError::Date),
        };
        let month = match self.number(2..4) {
            m @ 1..=12 => m,
            m @ 41..=52 => m - 40,
            m @ 81..=92 => m - 80,
            _ => return Err(NationalIdError::Date),
        };
        let year = self.number(4..6);
        let century = match (self.number(6..9), year) {
            (0..=499, _) => 1900,
            (500..=749, 54..=99) => 1800,
            (500..=999, 0..=39) => 2000,
            (900..=999, 40..=99) => 1900,
            _ => return Err(NationalIdError::Century),
        };
        // Both are at most 31 by the matches above.
        let (month, day) = (month as u8, day as u8);
        CivilDate::new(century + year, month, day).ok_or(NationalIdError::Date)
    }
}

impl fmt::Debug for NationalId {
    /// Prints `NationalId(058209*****)`, so a derived `Debug` on a record cannot leak an id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NationalId")
            .field(&format_args!("{}", self.masked()))
            .finish()
    }
}

impl fmt::Display for NationalId {
    /// Prints the masked form only, so logging never leaks an id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.masked())
    }
}

impl Serialize for NationalId {
    /// Writes the eleven digits in clear: central needs the real id to match pupils.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NationalId {
    /// Reads the eleven digits and validates them with [`NationalId::parse`], so the wire
    /// keeps the promise that a `NationalId` is valid.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NationalIdVisitor)
    }
}

struct NationalIdVisitor;

impl de::Visitor<'_> for NationalIdVisitor {
    type Value = NationalId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an 11-digit Norwegian national id")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NationalId, E> {
        // The error names the rule that failed, never the value.
        NationalId::parse(v).map_err(|e| E::custom(format_args!("invalid national id: {e}")))
    }
}

/// Masks any raw value for a report: all but its last five characters, at most six, then
/// `*****` (an 11-digit value shows as `058209*****`, like [`NationalId::masked`]).
///
/// Reports must point at a bad value without repeating it, and a bad value can be
/// anything an export holds, so this counts characters, not bytes, always hides at least
/// five, and never panics. A valid id is better shown with
/// [`NationalId::masked`].
pub fn mask(raw: &str) -> String {
    let shown = raw.chars().count().saturating_sub(5).min(6);
    let mut out: String = raw.chars().take(shown).collect();
    out.push_str("*****");
    out
}

/// Characters that may stand alone between the digit groups of a national id as people
/// write it: `018112-78714`, `018112 78714` (a no-break space too), `018112.78714`.
const ID_SEPARATORS: [char; 4] = [' ', '-', '.', '\u{a0}'];

/// Masks everything in free text that may be a national id, for text that leaves the
/// machine it was made on (an error, a report row, a page): every run of 11 or more
/// digits, counting digits broken only by a single space, hyphen, dot or no-break space as
/// one run, keeps its first six digits and stars the rest, separators kept
/// (`018112-78714` -> `018112-*****`).
///
/// Deliberately greedy: a date with a time (`2026-11-27 12.30`, 12 digits) is masked too,
/// since a missed id cannot be taken back and an over-masked date costs only legibility.
/// Shorter numbers (a line, a school number, a date) stay as they are.
pub fn mask_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < chars.len() {
        if !chars[at].is_ascii_digit() {
            out.push(chars[at]);
            at += 1;
            continue;
        }
        let (start, mut end, mut digits) = (at, at, 0);
        loop {
            while chars.get(end).is_some_and(char::is_ascii_digit) {
                end += 1;
                digits += 1;
            }
            let separated = chars.get(end).is_some_and(|c| ID_SEPARATORS.contains(c))
                && chars.get(end + 1).is_some_and(char::is_ascii_digit);
            if !separated {
                break;
            }
            end += 1;
        }
        let mut shown = 0;
        for &c in &chars[start..end] {
            if !c.is_ascii_digit() || digits < 11 {
                out.push(c);
            } else if shown < 6 {
                out.push(c);
                shown += 1;
            } else {
                out.push('*');
            }
        }
        at = end;
    }
    out
}

/// Why a value is not a national id.
///
/// The variants name the rule that failed and never carry the value, so an error can be
/// logged or put in a report as it is; pair it with [`mask`] to say which value it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    /// Wrong number of characters after trimming surrounding ASCII whitespace.
    #[error("must be 11 digits, found {found} characters")]
    Length {
        /// Characters (not bytes) found.
        found: usize,
    },
    /// Eleven characters, but not all ASCII digits.
    #[error("must contain only digits")]
    NonDigit,
    /// A control digit is wrong: usually a typo, or two digits swapped.
    #[error("control digits do not match")]
    Checksum,
    /// The control digits match but the day or month (after the D-, H- and synthetic
    /// offsets) is not a day the calendar has.
    #[error("does not encode a real calendar date")]
    Date,
    /// The individual number is not issued for any century this two-digit year can be in.
    #[error("individual number does not fit any century for this birth year")]
    Century,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use IdKind::{DNumber, FhNumber, Fodselsnummer, HNumber};

    /// Valid ids: (id, kind, synthetic, birth date).
    ///
    /// No id here belongs to a real person. Each is either a published test vector of a
    /// public validator, whose source is named beside it, or a synthetic id (month + 80)
    /// computed for this file.
    const VALID: &[(&str, IdKind, bool, Option<&str>)] = &[
        // navikt/fnrvalidator, tests/fnr.spec.ts (its README: all numbers are generated).
        ("13097248022", Fodselsnummer, false, Some("1972-09-13")),
        ("29029648784", Fodselsnummer, false, Some("1996-02-29")),
        ("29020075838", Fodselsnummer, false, Some("2000-02-29")),
        ("15021951940", Fodselsnummer, false, Some("2019-02-15")),
        ("53097248016", DNumber, false, Some("1972-09-13")),
        ("13527248013", HNumber, false, Some("1972-12-13")),
        ("10915596784", Fodselsnummer, true, Some("1955-11-10")),
        ("68467038838", DNumber, false, Some("1970-06-28")),
        ("50846202355", DNumber, true, Some("1962-04-10")),
        ("02013299997", Fodselsnummer, false, Some("2032-01-02")),
        ("30108299920", Fodselsnummer, false, Some("1982-10-30")),
        ("30108299939", Fodselsnummer, false, Some("1982-10-30")),
        ("70108299914", DNumber, false, Some("1982-10-30")),
        // python-stdnum, stdnum/no/fodselsnummer.py and tests/test_no_fodselsnummer.doctest.
        ("15108695088", Fodselsnummer, false, Some("1986-10-15")),
        ("26111593816", Fodselsnummer, false, Some("2015-11-26")),
        ("11111598403", Fodselsnummer, false, Some("2015-11-11")),
        ("18061592527", Fodselsnummer, false, Some("2015-06-18")),
        ("10048744732", Fodselsnummer, false, Some("1987-04-10")),
        ("13049958441", Fodselsnummer, false, Some("1899-04-13")),
        ("23114038547", Fodselsnummer, false, Some("1940-11-23")),
        ("82938389280", FhNumber, false, None),
        // Synthetic (month + 80), as in this repository's test data.
        ("16881774198", Fodselsnummer, true, Some("2017-08-16")),
        ("25811885633", Fodselsnummer, true, Some("2018-01-25")),
        // Synthetic, first control digit from the 2032 rule (remainders 1 and 3): the old
        // rule would need a control digit of 10 here, so no pre-2032 id has these digits.
        ("14922050504", Fodselsnummer, true, Some("2020-12-14")),
        ("14922050520", Fodselsnummer, true, Some("2020-12-14")),
        // Synthetic D-number, 2032 rule (remainder 1).
        ("53831000801", DNumber, true, Some("1910-03-13")),
    ];

    /// Invalid ids and the error each must produce.
    const INVALID: &[(&str, NationalIdError)] = &[
        // navikt/fnrvalidator, tests/fnr.spec.ts.
        ("1234567890", NationalIdError::Length { found: 10 }),
        ("123456789101", NationalIdError::Length { found: 12 }),
        ("1234567891A", NationalIdError::NonDigit),
        ("13097248032", NationalIdError::Checksum),
        ("13097248023", NationalIdError::Checksum),
        ("29020112345", NationalIdError::Checksum),
        ("32127248022", NationalIdError::Checksum),
        ("02013299987", NationalIdError::Checksum),
        ("02013299996", NationalIdError::Checksum),
        // python-stdnum, stdnum/no/fodselsnummer.py and tests/test_no_fodselsnummer.doctest.
        ("15108695077", NationalIdError::Checksum),
        ("26111593817", NationalIdError::Checksum),
        ("26111593826", NationalIdError::Checksum),
        ("26111593875", NationalIdError::Checksum),
        ("42485176432123", NationalIdError::Length { found: 14 }),
        ("a0gzaB30529", NationalIdError::NonDigit),
        ("19575770838", NationalIdError::Date),
        ("45014054018", NationalIdError::Century),
        // Synthetic, control digits valid: 31 February, 29 February 2019 and 1900, day 32.
        ("31821974146", NationalIdError::Date),
        ("29821974168", NationalIdError::Date),
        ("29820012346", NationalIdError::Date),
        ("32821974185", NationalIdError::Date),
        // Synthetic: first control digit leaves remainder 4, beyond even the 2032 rule.
        ("14922050539", NationalIdError::Checksum),
        ("", NationalIdError::Length { found: 0 }),
    ];

    fn id(s: &str) -> NationalId {
        match NationalId::parse(s) {
            Ok(id) => id,
            Err(e) => panic!("test vector {s} rejected: {e}"),
        }
    }

    fn date(s: &str) -> CivilDate {
        match CivilDate::parse_iso(s) {
            Some(d) => d,
            None => panic!("test date {s} rejected"),
        }
    }

    #[test]
    fn published_and_synthetic_valid_ids_parse_with_their_kind_and_birth_date() {
        for &(raw, kind, synthetic, birth) in VALID {
            let parsed = id(raw);
            assert_eq!(parsed.as_str(), raw);
            assert_eq!(parsed.kind(), kind, "{raw}");
            assert_eq!(parsed.is_synthetic(), synthetic, "{raw}");
            assert_eq!(parsed.birth_date(), birth.map(date), "{raw}");
        }
    }

    #[test]
    fn invalid_ids_are_rejected_with_the_rule_they_break() {
        for (raw, expected) in INVALID {
            assert_eq!(NationalId::parse(raw).as_ref(), Err(expected), "{raw}");
        }
    }

    #[test]
    fn d_number_adds_forty_to_the_day() {
        let d_number = id("53097248016");
        assert_eq!(d_number.kind(), DNumber);
        assert_eq!(d_number.birth_date(), Some(date("1972-09-13")));
    }

    #[test]
    fn h_number_adds_forty_to_the_month() {
        let h_number = id("13527248013");
        assert_eq!(h_number.kind(), HNumber);
        assert!(!h_number.is_synthetic());
        assert_eq!(h_number.birth_date(), Some(date("1972-12-13")));
    }

    #[test]
    fn synthetic_number_adds_eighty_to_the_month() {
        let synthetic = id("16881774198");
        assert_eq!(synthetic.kind(), Fodselsnummer);
        assert!(synthetic.is_synthetic());
        assert_eq!(synthetic.birth_date(), Some(date("2017-08-16")));
    }

    #[test]
    fn synthetic_d_number_adds_forty_to_the_day_and_eighty_to_the_month() {
        let synthetic = id("50846202355");
        assert_eq!(synthetic.kind(), DNumber);
        assert!(synthetic.is_synthetic());
        assert_eq!(synthetic.birth_date(), Some(date("1962-04-10")));
    }

    #[test]
    fn d_number_with_forty_added_to_the_month_is_still_a_d_number() {
        let nav_synthetic_d_number = id("68467038838");
        assert_eq!(nav_synthetic_d_number.kind(), DNumber);
        assert!(!nav_synthetic_d_number.is_synthetic());
    }

    #[test]
    fn fh_number_is_checked_for_control_digits_only_and_encodes_no_birth_date() {
        let fh_number = id("82938389280");
        assert_eq!(fh_number.kind(), FhNumber);
        assert_eq!(fh_number.birth_date(), None);
        assert!(!fh_number.is_synthetic());
        // Same digits, last one changed.
        assert_eq!(
            NationalId::parse("82938389281"),
            Err(NationalIdError::Checksum)
        );
    }

    #[test]
    fn first_control_digit_may_come_from_the_2032_rule_where_the_old_rule_has_none() {
        for raw in ["14922050504", "14922050512", "14922050520"] {
            assert!(NationalId::parse(raw).is_ok(), "{raw}");
        }
        for raw in ["14922050539", "14922050598"] {
            assert_eq!(NationalId::parse(raw), Err(NationalIdError::Checksum));
        }
    }

    #[test]
    fn both_control_digit_rules_stay_valid_for_the_same_birth_date() {
        assert!(NationalId::parse("30108299920").is_ok());
        assert!(NationalId::parse("30108299939").is_ok());
    }

    #[test]
    fn thirty_first_of_february_is_not_a_date() {
        assert_eq!(NationalId::parse("31821974146"), Err(NationalIdError::Date));
        assert_eq!(CivilDate::new(2019, 2, 31), None);
    }

    #[test]
    fn twenty_ninth_of_february_needs_a_leap_year() {
        assert!(NationalId::parse("29020075838").is_ok());
        assert!(NationalId::parse("29029648784").is_ok());
        assert_eq!(NationalId::parse("29821974168"), Err(NationalIdError::Date));
        assert_eq!(NationalId::parse("29820012346"), Err(NationalIdError::Date));
    }

    #[test]
    fn individual_number_and_year_pick_the_century() {
        assert_eq!(id("13049958441").birth_date().map(|d| d.year()), Some(1899));
        assert_eq!(id("13097248022").birth_date().map(|d| d.year()), Some(1972));
        assert_eq!(id("10915596784").birth_date().map(|d| d.year()), Some(1955));
        assert_eq!(id("15021951940").birth_date().map(|d| d.year()), Some(2019));
        assert_eq!(
            NationalId::parse("45014054018"),
            Err(NationalIdError::Century)
        );
    }

    #[test]
    fn a_future_birth_date_is_accepted_because_parsing_never_reads_the_clock() {
        // python-stdnum rejects this one as "not born yet"; it is otherwise valid.
        assert_eq!(id("18103970861").birth_date(), Some(date("2039-10-18")));
    }

    #[test]
    fn surrounding_ascii_whitespace_is_trimmed() {
        assert_eq!(id(" \t16881774198\r\n").as_str(), "16881774198");
    }

    #[test]
    fn inner_and_non_ascii_whitespace_is_not_forgiven() {
        assert_eq!(
            NationalId::parse("168817 74198"),
            Err(NationalIdError::Length { found: 12 })
        );
        assert_eq!(
            NationalId::parse("\u{a0}16881774198"),
            Err(NationalIdError::Length { found: 12 })
        );
        assert_eq!(
            NationalId::parse("168817-4198"),
            Err(NationalIdError::NonDigit)
        );
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert_eq!(
            NationalId::parse("1688177419é"),
            Err(NationalIdError::NonDigit)
        );
        assert_eq!(
            NationalId::parse("１６８８１７７４１９８"),
            Err(NationalIdError::NonDigit)
        );
        assert_eq!(
            NationalId::parse("ééé"),
            Err(NationalIdError::Length { found: 3 })
        );
    }

    #[test]
    fn error_messages_never_contain_the_id() {
        for (raw, _) in INVALID {
            if let Err(e) = NationalId::parse(raw) {
                let shown = format!("{e} {e:?}");
                assert!(raw.len() < 3 || !shown.contains(raw), "{shown}");
            }
        }
    }

    #[test]
    fn display_and_debug_print_only_the_masked_form() {
        let synthetic = id("16881774198");
        assert_eq!(synthetic.masked(), "168817*****");
        assert_eq!(synthetic.to_string(), "168817*****");
        assert_eq!(format!("{synthetic:?}"), "NationalId(168817*****)");
        assert_eq!(
            format!("{synthetic:#?}"),
            "NationalId(\n    168817*****,\n)"
        );
        assert_eq!(format!("[{synthetic:>12}]"), "[ 168817*****]");
        assert_eq!(
            format!("{:?}", Some(synthetic)),
            "Some(NationalId(168817*****))"
        );
    }

    #[test]
    fn mask_hides_at_least_five_characters_and_shows_at_most_six() {
        assert_eq!(mask(""), "*****");
        assert_eq!(mask("1"), "*****");
        assert_eq!(mask("1234"), "*****");
        assert_eq!(mask("1688177419"), "16881*****");
        assert_eq!(mask("16881774198"), "168817*****");
        assert_eq!(mask("168817741988"), "168817*****");
        assert_eq!(mask("not a number at all"), "not a *****");
    }

    #[test]
    fn ids_in_text_are_masked_joined_or_separated_and_short_numbers_are_kept() {
        assert_eq!(
            mask_in_text("id 01811278714 on 2026-11-27, skole 46500"),
            "id 018112***** on 2026-11-27, skole 46500"
        );
        assert_eq!(mask_in_text("018112-78714"), "018112-*****");
        assert_eq!(mask_in_text("(018112 78714)"), "(018112 *****)");
        assert_eq!(mask_in_text("018112\u{a0}78714."), "018112\u{a0}*****.");
        assert_eq!(mask_in_text("01.81.12 787 14"), "01.81.12 *** **");
        assert_eq!(mask_in_text("12345678901234"), "123456********");
        assert_eq!(mask_in_text("line 12, 13 and 14"), "line 12, 13 and 14");
        assert_eq!(mask_in_text("018112--78714"), "018112--78714");
        assert_eq!(mask_in_text("Kari, æøå, 7"), "Kari, æøå, 7");
        assert_eq!(mask_in_text(""), "");
    }

    #[test]
    fn mask_counts_characters_not_bytes() {
        assert_eq!(mask("æøåÆØÅæøåÆØÅ"), "æøåÆØÅ*****");
        assert_eq!(mask("é1234"), "*****");
        assert_eq!(mask("é12345"), "é*****");
    }

    #[test]
    fn ids_serialize_as_the_eleven_digit_string() {
        let synthetic = id("16881774198");
        assert_eq!(
            postcard::to_allocvec(&synthetic).ok(),
            postcard::to_allocvec("16881774198").ok()
        );
    }

    #[test]
    fn deserializing_an_invalid_id_fails() {
        for (raw, _) in INVALID {
            let bytes = postcard::to_allocvec(raw).unwrap_or_default();
            assert!(postcard::from_bytes::<NationalId>(&bytes).is_err(), "{raw}");
        }
    }

    #[test]
    fn an_id_sent_as_a_number_is_refused_saying_what_was_expected() {
        let error = serde_json::from_str::<NationalId>("16881774198").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("expected an 11-digit Norwegian national id"),
            "{error}"
        );
    }

    #[test]
    fn civil_date_rejects_days_the_calendar_does_not_have() {
        assert!(CivilDate::new(2000, 2, 29).is_some());
        assert!(CivilDate::new(2024, 2, 29).is_some());
        assert_eq!(CivilDate::new(1900, 2, 29), None);
        assert_eq!(CivilDate::new(2019, 2, 29), None);
        assert_eq!(CivilDate::new(2019, 4, 31), None);
        assert_eq!(CivilDate::new(2019, 0, 1), None);
        assert_eq!(CivilDate::new(2019, 13, 1), None);
        assert_eq!(CivilDate::new(2019, 1, 0), None);
        assert_eq!(CivilDate::new(10_000, 1, 1), None);
    }

    #[test]
    fn civil_date_reads_and_writes_only_yyyy_mm_dd() {
        let d = date("0987-06-05");
        assert_eq!((d.year(), d.month(), d.day()), (987, 6, 5));
        assert_eq!(d.to_string(), "0987-06-05");
        for bad in [
            "2019-02-29",
            "2019-2-28",
            " 2019-02-28",
            "2019-02-28T00:00",
            "2019/02/28",
            "+019-02-28",
            "2019-0a-28",
            "20190228",
            "2019-02-2é",
            "",
        ] {
            assert_eq!(CivilDate::parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_dates_order_chronologically() {
        assert!(date("1999-12-31") < date("2000-01-01"));
        assert!(date("2000-01-31") < date("2000-02-01"));
        assert!(date("2000-02-01") < date("2000-02-02"));
    }

    #[test]
    fn deserializing_an_impossible_civil_date_fails() {
        let bytes = postcard::to_allocvec(&(2019u16, 2u8, 29u8)).unwrap_or_default();
        assert!(postcard::from_bytes::<CivilDate>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&(2020u16, 2u8, 29u8)).unwrap_or_default();
        assert_eq!(
            postcard::from_bytes::<CivilDate>(&bytes).ok(),
            Some(date("2020-02-29"))
        );
    }

    /// How a generated id marks its kind.
    #[derive(Debug, Clone, Copy)]
    enum Shape {
        Plain,
        D,
        H,
        Synthetic,
        SyntheticD,
    }

    /// Appends both control digits to nine digits, the first leaving `rest` (0 is the old
    /// rule, 1-3 the 2032 rule), or `None` where a control digit would have to be 10.
    /// Computed independently of the module's own check.
    fn with_control_digits(nine: &str, rest: u32) -> Option<String> {
        let digits: Vec<u32> = nine.chars().filter_map(|c| c.to_digit(10)).collect();
        let weighted = |weights: &[u32], digits: &[u32]| -> u32 {
            weights.iter().zip(digits).map(|(w, d)| w * d).sum::<u32>() % 11
        };
        let k1 = (rest + 11 - weighted(&[3, 7, 6, 1, 8, 9, 4, 5, 2], &digits)) % 11;
        if k1 == 10 {
            return None;
        }
        let ten = [digits.as_slice(), &[k1]].concat();
        let k2 = (11 - weighted(&[5, 4, 3, 2, 7, 6, 5, 4, 3, 2], &ten)) % 11;
        if k2 == 10 {
            return None;
        }
        Some(format!("{nine}{k1}{k2}"))
    }

    /// An individual number issued for `year`, chosen by `seed`.
    fn individual_for(year: u16, seed: u16) -> u16 {
        match year {
            1855..=1899 => 500 + seed % 250,
            1940..=1999 if seed >= 500 => 900 + seed % 100,
            1900..=1999 => seed % 500,
            _ => 500 + seed % 500,
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Plain),
            Just(Shape::D),
            Just(Shape::H),
            Just(Shape::Synthetic),
            Just(Shape::SyntheticD),
        ]
    }

    /// A valid id built from its parts, with the kind, synthetic flag and date it encodes.
    fn generated_id() -> impl Strategy<Value = (String, IdKind, bool, CivilDate)> {
        (
            1855u16..=2039,
            1u8..=12,
            1u8..=31,
            0u16..1000,
            shape(),
            0u32..=3,
        )
            .prop_filter_map(
                "a control digit would be 10",
                |(year, month, day, seed, shape, rest)| {
                    let birth = (1..=day)
                        .rev()
                        .find_map(|d| CivilDate::new(year, month, d))?;
                    let (day_add, month_add, kind, synthetic) = match shape {
                        Shape::Plain => (0, 0, Fodselsnummer, false),
                        Shape::D => (40, 0, DNumber, false),
                        Shape::H => (0, 40, HNumber, false),
                        Shape::Synthetic => (0, 80, Fodselsnummer, true),
                        Shape::SyntheticD => (40, 80, DNumber, true),
                    };
                    let nine = format!(
                        "{:02}{:02}{:02}{:03}",
                        birth.day() + day_add,
                        birth.month() + month_add,
                        year % 100,
                        individual_for(year, seed)
                    );
                    Some((with_control_digits(&nine, rest)?, kind, synthetic, birth))
                },
            )
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
            let _ = NationalId::parse(&s);
            let _ = mask(&s);
            let _ = CivilDate::parse_iso(&s);
        }

        #[test]
        fn parse_never_panics_on_digit_heavy_strings(s in "[0-9 \t]{0,14}") {
            if let Ok(parsed) = NationalId::parse(&s) {
                prop_assert_eq!(parsed.as_str(), s.trim_ascii());
                prop_assert_eq!(parsed.kind() == FhNumber, parsed.birth_date().is_none());
            }
        }

        #[test]
        fn generated_ids_parse_and_round_trip_their_birth_date(
            (raw, kind, synthetic, birth) in generated_id()
        ) {
            let parsed = NationalId::parse(&raw);
            prop_assert!(parsed.is_ok(), "{} rejected: {:?}", raw, parsed);
            if let Ok(parsed) = parsed {
                prop_assert_eq!(parsed.kind(), kind);
                prop_assert_eq!(parsed.is_synthetic(), synthetic);
                prop_assert_eq!(parsed.birth_date(), Some(birth));
                prop_assert_eq!(CivilDate::parse_iso(&birth.to_string()), Some(birth));
            }
        }

        #[test]
        fn generated_fh_numbers_parse_without_a_birth_date(
            first in 8u32..=9, rest in "[0-9]{8}", k1_rest in 0u32..=3
        ) {
            if let Some(raw) = with_control_digits(&format!("{first}{rest}"), k1_rest) {
                let parsed = NationalId::parse(&raw);
                prop_assert!(parsed.is_ok(), "{} rejected", raw);
                if let Ok(parsed) = parsed {
                    prop_assert_eq!(parsed.kind(), FhNumber);
                    prop_assert_eq!(parsed.birth_date(), None);
                }
            }
        }

        #[test]
        fn a_single_mistyped_digit_is_always_caught(
            (raw, _, _, _) in generated_id(), position in 0usize..11, delta in 1u8..=9
        ) {
            let mut bytes = raw.into_bytes();
            bytes[position] = b'0' + (bytes[position] - b'0' + delta) % 10;
            let typo = String::from_utf8(bytes).unwrap_or_default();
            prop_assert_eq!(NationalId::parse(&typo), Err(NationalIdError::Checksum));
        }

        #[test]
        fn ids_survive_a_postcard_round_trip((raw, _, _, _) in generated_id()) {
            let original = NationalId::parse(&raw);
            prop_assert!(original.is_ok());
            if let Ok(original) = original {
                let bytes = postcard::to_allocvec(&original);
                prop_assert!(bytes.is_ok());
                let bytes = bytes.unwrap_or_default();
                prop_assert_eq!(postcard::from_bytes::<NationalId>(&bytes).ok(), Some(original));
            }
        }

        #[test]
        fn civil_dates_survive_a_postcard_round_trip(
            year in 0u16..=9999, month in 1u8..=12, day in 1u8..=31
        ) {
            if let Some(original) = CivilDate::new(year, month, day) {
                let bytes = postcard::to_allocvec(&original).unwrap_or_default();
                prop_assert_eq!(postcard::from_bytes::<CivilDate>(&bytes).ok(), Some(original));
                prop_assert_eq!(CivilDate::parse_iso(&original.to_string()), Some(original));
            }
        }
    }
}
