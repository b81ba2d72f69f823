//! Civil time in UTC: the one place where a count of days or milliseconds since 1970 becomes
//! a calendar date and time of day, and where RFC 3339 text is written and read. The
//! validated date type, [`CivilDate`] (a pupil's birth date, a delay-delete window's ends),
//! lives here too.
//!
//! Central's store keeps times as Unix milliseconds and prints and parses them here; the
//! agent's safety filter asks for today's date and its status lines print clock times from
//! the same functions, so every date in the project is computed one way.
//!
//! For the agent: `date_from_days` is the safety filter's "today", and `UtcDateTime` gives the
//! status lines their `YYYY-MM-DD` and `HH:MM`.
//!
//! The calendar maths is Howard Hinnant's pair of algorithms (`days_from_civil` and
//! `civil_from_days`), a dozen lines of integer arithmetic, kept by hand rather than taken
//! from the `time` crate: the project only needs UTC, whole days and millisecond precision,
//! and a date crate's time zones, formats and error types would add more surface than the
//! arithmetic they replace. The tests below pin the algorithms against known dates, leap
//! days and times before 1970.

use std::fmt;

use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;

/// A calendar date (proleptic Gregorian), validated.
///
/// Birth dates travel as this type rather than as strings so that central and the differ
/// compare dates, not spellings, and so that "31 February" cannot reach them. Field order
/// makes the derived `Ord` chronological. Deserialization checks the date like [`new`]
/// does, so the wire cannot smuggle in an impossible one either.
///
/// [`new`]: CivilDate::new
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "UncheckedDate")]
pub struct CivilDate {
    year: u16,
    month: u8,
    day: u8,
}

impl CivilDate {
    /// 1970-01-01, day 0 of Unix time: what a clock before it (or broken) reads as.
    pub const UNIX_EPOCH: CivilDate = CivilDate {
        year: 1970,
        month: 1,
        day: 1,
    };

    /// Builds a date, or `None` if the calendar has no such day (31 February, 29 February
    /// of a year that is not a leap year).
    ///
    /// Years past 9999 are refused too: they have no `YYYY` form, and every date must
    /// survive a trip through `Display` and [`CivilDate::parse_iso`].
    pub fn new(year: u16, month: u8, day: u8) -> Option<CivilDate> {
        if year > 9999
            || day == 0
            || i64::from(day) > days_in_month(i64::from(year), i64::from(month))
        {
            return None;
        }
        Some(CivilDate { year, month, day })
    }

    /// The year, in full (`2017`, never `17`).
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, `1..=12`.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, `1..=31`.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// Parses exactly `YYYY-MM-DD`, the form exports use for a birth date given on its own.
    ///
    /// Nothing else is accepted (no surrounding whitespace, no sign, no time), so that a
    /// date has one spelling and a garbled export field is reported rather than guessed at.
    pub fn parse_iso(s: &str) -> Option<CivilDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = decimal(&b[0..4])?;
        let month = u8::try_from(decimal(&b[5..7])?).ok()?;
        let day = u8::try_from(decimal(&b[8..10])?).ok()?;
        CivilDate::new(year, month, day)
    }
}

impl fmt::Display for CivilDate {
    /// Writes `YYYY-MM-DD`, the form [`CivilDate::parse_iso`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The wire shape of a [`CivilDate`] before it is checked.
#[derive(Deserialize)]
#[serde(rename = "CivilDate")]
struct UncheckedDate {
    year: u16,
    month: u8,
    day: u8,
}

impl TryFrom<UncheckedDate> for CivilDate {
    type Error = &'static str;

    fn try_from(raw: UncheckedDate) -> Result<Self, Self::Error> {
        CivilDate::new(raw.year, raw.month, raw.day).ok_or("not a real calendar date")
    }
}

/// The value of a run of ASCII digits, or `None` if any byte is not one.
fn decimal(bytes: &[u8]) -> Option<u16> {
    bytes.iter().try_fold(0u16, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u16::try_from(digit).ok()?)
    })
}

/// Whether `year` has a 29 February in the proleptic Gregorian calendar.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` (1 to 12) of `year`; 0 for a month that does not exist, so
/// a date check needs no separate test of the month.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`), the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The [`CivilDate`] a day count since 1970-01-01 falls on, or `None` outside the years
/// 0 to 9999 a `CivilDate` holds.
pub fn date_from_days(days: i64) -> Option<CivilDate> {
    let (year, month, day) = civil_from_days(days);
    CivilDate::new(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    )
}

/// A moment split into its UTC calendar date and time of day, to the millisecond.
///
/// [`fmt::Display`] writes RFC 3339 with milliseconds (`2026-03-10T14:05:00.123Z`); callers
/// that show only part of it (a date, `HH:MM`) format the fields they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    pub year: i64,
    /// 1 to 12.
    pub month: i64,
    /// 1 to 31.
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
}

impl UtcDateTime {
    /// The UTC date and time `unix_ms` milliseconds after 1970-01-01T00:00:00Z (before it
    /// for a negative count).
    pub fn from_unix_millis(unix_ms: i64) -> UtcDateTime {
        let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
        let ms = unix_ms.rem_euclid(DAY_MS);
        UtcDateTime {
            year,
            month,
            day,
            hour: ms / 3_600_000,
            minute: ms / 60_000 % 60,
            second: ms / 1000 % 60,
            millisecond: ms % 1000,
        }
    }

    /// The calendar date alone, `YYYY-MM-DD`.
    pub fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The time of day to the minute, `HH:MM`, as status lines show a clock time.
    pub fn hour_minute_text(&self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }
}

impl fmt::Display for UtcDateTime {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-03-10T14:05:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}T{:02}:{:02}:{:02}.{:03}Z",
            self.date_text(),
            self.hour,
            self.minute,
            self.second,
            self.millisecond
        )
    }
}

/// Parses an RFC 3339 time (`2026-11-01T00:00:00Z`, with optional fractions of a second and
/// a `+01:00`-style offset) or a bare date (`2026-11-01`, midnight UTC) into Unix
/// milliseconds. Fractions finer than a millisecond are dropped. `None` for anything else.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = bytes.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * DAY_MS;
    if bytes.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
    {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Milliseconds: the first three digits, padded; finer digits are dropped.
        let mut digits = text.get(start..at.min(start + 3))?.to_owned();
        while digits.len() < 3 {
            digits.push('0');
        }
        millis = digits.parse().ok()?;
    }
    let offset_minutes = match bytes.get(at) {
        Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == bytes.len() && bytes.get(at + 3) == Some(&b':') => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(date_ms + seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(unix_ms: i64) -> String {
        UtcDateTime::from_unix_millis(unix_ms).to_string()
    }

    #[test]
    fn days_since_epoch_become_calendar_dates() {
        let date = |days| date_from_days(days).map(|date| date.to_string());
        assert_eq!(date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date(20_514).as_deref(), Some("2026-03-02"));
        assert_eq!(date(11_016).as_deref(), Some("2000-02-29"));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(date_from_days(-800_000), None);
    }

    #[test]
    fn civil_dates_and_day_counts_are_inverse() {
        for days in [-719_468, -1, 0, 1, 11_016, 20_514, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert!(is_leap_year(2000) && is_leap_year(2024));
        assert!(!is_leap_year(1900) && !is_leap_year(2026));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2026, 4), 30);
        assert_eq!(days_in_month(2026, 13), 0);
    }

    #[test]
    fn times_format_as_rfc_3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_773_151_500_123), "2026-03-10T14:05:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        let noon = UtcDateTime::from_unix_millis(1_764_000_000_000);
        assert_eq!(noon.date_text(), "2025-11-24");
        assert_eq!(noon.hour_minute_text(), "16:00");
    }

    #[test]
    fn rfc_3339_text_parses_back_to_what_it_prints() {
        for ms in [0, 1_773_151_500_123, 951_782_400_000, -1, 4_102_444_799_999] {
            let text = rfc3339(ms);
            assert_eq!(parse_rfc3339_millis(&text), Some(ms), "{text}");
        }
        assert_eq!(
            parse_rfc3339_millis("2026-03-10T15:05:00+01:00"),
            Some(1_773_151_500_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-03-10T14:05:00.1234Z"),
            Some(1_773_151_500_123)
        );
        assert_eq!(parse_rfc3339_millis("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "",
            "2026-02-30",
            "2026-13-01T00:00:00Z",
            "2026-03-10T14:05:00",
            "2026-03-10T24:00:00Z",
            "2026-03-10T14:05:00.Z",
            "2026-03-10T14:05:00+0100",
            "2026-3-10",
            "x026-03-10",
            "2026-03-10T14:05:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }
}
