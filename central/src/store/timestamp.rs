//! The store's time type: Unix milliseconds, compared as integers by both databases and
//! written and read as RFC 3339 through `skolebro_protocol::civil_time`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skolebro_protocol::civil_time::{days_from_civil, parse_rfc3339_millis, UtcDateTime};

/// A point in time as Unix milliseconds (UTC).
///
/// A plain integer keeps the store free of a date crate and compares the same in SQLite and
/// PostgreSQL; [`fmt::Display`] renders RFC 3339 for people and JSON documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time from the system clock. Central runs on a server with a synchronised
    /// clock, unlike the Pi (DESIGN decision 8), so transaction times come from here.
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms))
            }
        }
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time (`2026-11-01T00:00:00Z`, with optional fractions of a second
    /// and a `+01:00`-style offset) or a bare date (`2026-11-01`, midnight UTC), as consumers
    /// write them in filters and `as_of` parameters. `None` for anything else.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        parse_rfc3339_millis(text).map(Timestamp)
    }
    /// This instant as Oslo's wall clock and the zone's name: CEST (UTC+2) from 01:00 UTC on
    /// the last Sunday of March to 01:00 UTC on the last Sunday of October, CET (UTC+1)
    /// otherwise, as the EU's rules have had it since 1996. Here, not in the interface,
    /// because the store counts the site history by Oslo day too.
    pub fn oslo(self) -> (UtcDateTime, &'static str) {
        const HOUR_MS: i64 = 3_600_000;
        let year = UtcDateTime::from_unix_millis(self.0).year;
        let last_sunday = |month: i64| {
            let day = days_from_civil(year, month, 31);
            // 1970-01-01 was a Thursday: day 0 is weekday 4 counted from Sunday.
            day - (day + 4).rem_euclid(7)
        };
        let summer_starts = last_sunday(3) * 86_400_000 + HOUR_MS;
        let summer_ends = last_sunday(10) * 86_400_000 + HOUR_MS;
        let (offset, zone) = if (summer_starts..summer_ends).contains(&self.0) {
            (2 * HOUR_MS, "CEST")
        } else {
            (HOUR_MS, "CET")
        };
        (UtcDateTime::from_unix_millis(self.0 + offset), zone)
    }

    /// The day this instant falls on in Oslo, counted in days since 1970-01-01: what the
    /// charts call a night and the site history keys its rows by.
    pub fn oslo_day(self) -> i64 {
        let (local, _) = self.oslo();
        days_from_civil(local.year, local.month, local.day)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-03-10T14:05:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        UtcDateTime::from_unix_millis(self.0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc_3339_in_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_773_151_500_123).to_string(),
            "2026-03-10T14:05:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rfc_3339_times_parse_back_to_what_they_print() {
        for ms in [0, 1_773_151_500_123, 951_782_400_000, -1, 4_102_444_799_999] {
            let text = Timestamp(ms).to_string();
            assert_eq!(
                Timestamp::parse_rfc3339(&text),
                Some(Timestamp(ms)),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2026-03-10T15:05:00+01:00"),
            Some(Timestamp(1_773_151_500_000))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-03-10T14:05:00.1234Z"),
            Some(Timestamp(1_773_151_500_123))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2000-02-29"),
            Some(Timestamp(951_782_400_000))
        );
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
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }
}
