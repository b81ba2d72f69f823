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
    ///
    /// Any `i64` is taken: a time can come from an agent's heartbeat. In the last two hours
    /// `i64` milliseconds hold (292 million years from now) Oslo's clock has no `i64` value,
    /// and the instant is given as it is, in UTC, with the zone `UTC`.
    pub fn oslo(self) -> (UtcDateTime, &'static str) {
        const HOUR_MS: i64 = 3_600_000;
        const DAY_MS: i64 = 86_400_000;
        let year = UtcDateTime::from_unix_millis(self.0).year;
        // In `i128`: in the first and the last year `i64` holds, a change of the clocks can
        // fall outside it.
        let clocks_change = |month: i64| {
            let day = days_from_civil(year, month, 31);
            // 1970-01-01 was a Thursday: day 0 is weekday 4 counted from Sunday.
            let last_sunday = day - (day + 4).rem_euclid(7);
            i128::from(last_sunday) * i128::from(DAY_MS) + i128::from(HOUR_MS)
        };
        let summer = clocks_change(3)..clocks_change(10);
        let (offset, zone) = if summer.contains(&i128::from(self.0)) {
            (2 * HOUR_MS, "CEST")
        } else {
            (HOUR_MS, "CET")
        };
        match self.0.checked_add(offset) {
            Some(local) => (UtcDateTime::from_unix_millis(local), zone),
            None => (UtcDateTime::from_unix_millis(self.0), "UTC"),
        }
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

    #[test]
    fn oslo_shows_the_ends_of_i64_and_years_past_9999_without_overflowing() {
        let (first, zone) = Timestamp(i64::MIN).oslo();
        assert_eq!(
            (first.to_string(), zone),
            ("-292275055-05-16T18:47:04.192Z".to_owned(), "CEST")
        );
        let (last, zone) = Timestamp(i64::MAX).oslo();
        assert_eq!(
            (last.to_string(), zone),
            ("292278994-08-17T07:12:55.807Z".to_owned(), "UTC")
        );
        // 10000-01-01T00:00:00Z, a day count `CivilDate` no longer holds.
        let (new_year, zone) = Timestamp(253_402_300_800_000).oslo();
        assert_eq!(
            (new_year.to_string(), zone),
            ("10000-01-01T01:00:00.000Z".to_owned(), "CET")
        );
        let (summer, zone) = Timestamp(253_402_300_800_000 + 200 * 86_400_000).oslo();
        assert_eq!((summer.month, summer.hour, zone), (7, 2, "CEST"));
        assert_eq!(Timestamp(i64::MAX).oslo_day(), 106_751_991_167);
    }

    #[test]
    fn oslo_keeps_summer_time_until_two_hours_before_the_end_of_i64() {
        let (_, zone) = Timestamp(i64::MAX - 2 * 3_600_000).oslo();
        assert_eq!(zone, "CEST");
        let (_, zone) = Timestamp(i64::MAX - 2 * 3_600_000 + 1).oslo();
        assert_eq!(zone, "UTC");
    }

    /// Any `i64`, with the first and the last year of the range, where the clocks' changes
    /// fall outside it, as likely as the rest.
    fn any_millis() -> impl proptest::strategy::Strategy<Value = i64> {
        const YEAR_MS: i64 = 366 * 86_400_000;
        proptest::prop_oneof![
            proptest::prelude::any::<i64>(),
            i64::MIN..i64::MIN + YEAR_MS,
            i64::MAX - YEAR_MS..=i64::MAX,
        ]
    }

    proptest::proptest! {
        #[test]
        fn oslo_and_its_day_never_panic_for_any_i64(ms in any_millis()) {
            let (local, zone) = Timestamp(ms).oslo();
            let _ = Timestamp(ms).oslo_day();
            proptest::prop_assert!(["CET", "CEST", "UTC"].contains(&zone));
            proptest::prop_assert!((1..=12).contains(&local.month) && (0..24).contains(&local.hour));
        }
    }
}
