//! The interface's words: which language a request is served in, the phrases every page
//! shares (counts with their plurals, times in Europe/Oslo, "for 3 min siden"), and the
//! choice between a Norwegian bokmål and an English text at each call site.
//!
//! Norwegian bokmål is the default: the municipalities' operators read it. English is
//! chosen with the language link in the page header (a `skolebro_lang` cookie) or, before
//! that, by the browser's `Accept-Language`. The router's middleware ([`with_language`])
//! works the choice out once per request and keeps it for the request's task, so that an
//! error page rendered far from the handler (a store failure) speaks the same language as
//! the page it replaces. Pages take the [`Lang`] as a value ([`current`]) and pick their
//! words with [`Lang::t`], so each text sits next to its translation.

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use skolebro_protocol::civil_time::{days_from_civil, UtcDateTime};

use crate::store::Timestamp;

/// The cookie that keeps the language a person chose with the header's link.
pub(crate) const LANG_COOKIE: &str = "skolebro_lang";

/// A language the interface speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    /// Norwegian bokmål, the default.
    #[default]
    Nb,
    English,
}

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being answered; bokmål outside a request.
pub(crate) fn current() -> Lang {
    LANG.try_with(|lang| *lang).unwrap_or_default()
}

/// Middleware: works out the request's language and serves the request in it.
pub(crate) async fn with_language(request: Request, next: Next) -> Response {
    let lang = Lang::of_request(request.headers());
    let mut response = LANG.scope(lang, next.run(request)).await;
    // Caches and proxies must not hand one person's language to another.
    response.headers_mut().append(
        header::VARY,
        header::HeaderValue::from_static("Cookie, Accept-Language"),
    );
    response
}

impl Lang {
    /// The `lang` attribute's value and the cookie's.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::English => "en",
        }
    }

    /// The language a code names: `nb`, `no` and `nn` read bokmål (nynorsk readers read
    /// it too), `en` English.
    pub(crate) fn from_code(code: &str) -> Option<Lang> {
        let primary = code.split(['-', '_']).next().unwrap_or("").trim();
        if primary.eq_ignore_ascii_case("en") {
            Some(Lang::English)
        } else if ["nb", "no", "nn"]
            .iter()
            .any(|nb| primary.eq_ignore_ascii_case(nb))
        {
            Some(Lang::Nb)
        } else {
            None
        }
    }

    /// The request's language: the cookie if it names one, else the first language of
    /// `Accept-Language` (by weight) the interface speaks, else bokmål.
    pub(crate) fn of_request(headers: &HeaderMap) -> Lang {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == LANG_COOKIE)
            .and_then(|(_, value)| Lang::from_code(value));
        if let Some(lang) = cookie {
            return lang;
        }
        let mut best: Option<(u16, Lang)> = None;
        for value in headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|value| value.to_str().ok())
        {
            for item in value.split(',') {
                let mut parts = item.split(';');
                let Some(lang) = parts.next().and_then(Lang::from_code) else {
                    continue;
                };
                let weight = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(1000, quality);
                if best.is_none_or(|(w, _)| weight > w) {
                    best = Some((weight, lang));
                }
            }
        }
        best.filter(|(w, _)| *w > 0)
            .map_or(Lang::Nb, |(_, lang)| lang)
    }

    /// The bokmål or the English text.
    pub(crate) fn t(self, nb: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Nb => nb,
            Lang::English => en,
        }
    }

    /// A count with its noun in the right number: "1 elev", "2 elever", "1 student".
    pub(crate) fn count(self, n: u64, noun: Noun) -> String {
        let (one, more) = noun.forms(self);
        format!("{n} {}", if n == 1 { one } else { more })
    }

    /// A time in Europe/Oslo, to the minute, with its zone: "06.12.2026 04:18 CET" in
    /// bokmål, "2026-12-06 04:18 CET" in English.
    pub(crate) fn time(self, at: Timestamp) -> String {
        let (local, zone) = at.oslo();
        match self {
            Lang::Nb => format!(
                "{:02}.{:02}.{} {:02}:{:02} {zone}",
                local.day, local.month, local.year, local.hour, local.minute
            ),
            Lang::English => format!(
                "{}-{:02}-{:02} {:02}:{:02} {zone}",
                local.year, local.month, local.day, local.hour, local.minute
            ),
        }
    }

    /// How far `at` is from `now` in words: "for 3 min siden", "om 2 dager", "3 min ago".
    /// Any two instants are taken (an agent's times among them): the distance is counted
    /// unsigned, which holds even from `i64::MIN` to `i64::MAX`, and under a second reads
    /// as past.
    pub(crate) fn relative(self, at: Timestamp, now: Timestamp) -> String {
        let seconds = now.0.abs_diff(at.0) / 1000;
        let past = at <= now || seconds == 0;
        let amount = match seconds {
            0..=59 => self.count(seconds, Noun::Second),
            60..=3599 => format!("{} min", seconds / 60),
            3600..=86_399 => self.count(seconds / 3600, Noun::Hour),
            _ => self.count(seconds / 86_400, Noun::Day),
        };
        match (self, past) {
            (Lang::Nb, true) => format!("for {amount} siden"),
            (Lang::Nb, false) => format!("om {amount}"),
            (Lang::English, true) => format!("{amount} ago"),
            (Lang::English, false) => format!("in {amount}"),
        }
    }
}

/// A weight of `Accept-Language` (`q=0.8`) in thousandths; unreadable weights count as 0.
fn quality(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
    match (whole, digits.parse::<u16>()) {
        ("1", _) => 1000,
        ("0", Ok(thousandths)) => thousandths,
        _ => 0,
    }
}

/// The things pages count, each with its singular and plural in both languages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Noun {
    School,
    Student,
    Group,
    Enrollment,
    Error,
    Warning,
    Device,
    Site,
    OtherSite,
    Second,
    Hour,
    Day,
    Minute,
    LateTransfer,
    Night,
    ChangedRecord,
    Code,
    Record,
    Deletion,
}

impl Noun {
    fn forms(self, lang: Lang) -> (&'static str, &'static str) {
        match (lang, self) {
            (Lang::Nb, Noun::School) => ("skole", "skoler"),
            (Lang::Nb, Noun::Student) => ("elev", "elever"),
            (Lang::Nb, Noun::Group) => ("gruppe", "grupper"),
            (Lang::Nb, Noun::Enrollment) => ("gruppemedlemskap", "gruppemedlemskap"),
            (Lang::Nb, Noun::Error) => ("feil", "feil"),
            (Lang::Nb, Noun::Warning) => ("advarsel", "advarsler"),
            (Lang::Nb, Noun::Device) => ("enhet", "enheter"),
            (Lang::Nb, Noun::Site) => ("lokasjon", "lokasjoner"),
            (Lang::Nb, Noun::OtherSite) => ("annen lokasjon", "andre lokasjoner"),
            (Lang::Nb, Noun::Second) => ("sekund", "sekunder"),
            (Lang::Nb, Noun::Hour) => ("time", "timer"),
            (Lang::Nb, Noun::Day) => ("dag", "dager"),
            (Lang::Nb, Noun::Minute) => ("minutt", "minutter"),
            (Lang::Nb, Noun::LateTransfer) => ("sen overføring", "sene overføringer"),
            (Lang::Nb, Noun::Night) => ("natt", "netter"),
            (Lang::Nb, Noun::ChangedRecord) => ("endret post", "endrede poster"),
            (Lang::Nb, Noun::Code) => ("kode", "koder"),
            (Lang::Nb, Noun::Record) => ("post", "poster"),
            (Lang::Nb, Noun::Deletion) => ("sletting", "slettinger"),
            (Lang::English, Noun::School) => ("school", "schools"),
            (Lang::English, Noun::Student) => ("student", "students"),
            (Lang::English, Noun::Group) => ("group", "groups"),
            (Lang::English, Noun::Enrollment) => ("enrollment", "enrollments"),
            (Lang::English, Noun::Error) => ("error", "errors"),
            (Lang::English, Noun::Warning) => ("warning", "warnings"),
            (Lang::English, Noun::Device) => ("device", "devices"),
            (Lang::English, Noun::Site) => ("site", "sites"),
            (Lang::English, Noun::OtherSite) => ("other site", "other sites"),
            (Lang::English, Noun::Second) => ("s", "s"),
            (Lang::English, Noun::Hour) => ("h", "h"),
            (Lang::English, Noun::Day) => ("day", "days"),
            (Lang::English, Noun::Minute) => ("minute", "minutes"),
            (Lang::English, Noun::LateTransfer) => ("late transfer", "late transfers"),
            (Lang::English, Noun::Night) => ("night", "nights"),
            (Lang::English, Noun::ChangedRecord) => ("changed record", "changed records"),
            (Lang::English, Noun::Code) => ("code", "codes"),
            (Lang::English, Noun::Record) => ("record", "records"),
            (Lang::English, Noun::Deletion) => ("deletion", "deletions"),
        }
    }
}

/// The instant Oslo's wall clock shows `local` (a UTC-shaped date and time read as Oslo's):
/// the earlier of the two when the clocks go back, `None` for the hour skipped when they go
/// forward.
pub(crate) fn from_oslo(local: UtcDateTime) -> Option<Timestamp> {
    const HOUR_MS: i64 = 3_600_000;
    let local_ms = days_from_civil(local.year, local.month, local.day) * 86_400_000
        + ((local.hour * 60 + local.minute) * 60 + local.second) * 1000
        + local.millisecond;
    [2 * HOUR_MS, HOUR_MS]
        .into_iter()
        .map(|offset| Timestamp(local_ms - offset))
        .find(|at| at.oslo().0 == UtcDateTime::from_unix_millis(local_ms))
}

/// A time in Oslo with how long ago (or how soon) it is, or "never".
pub(super) fn when(at: Option<Timestamp>, now: Timestamp) -> maud::Markup {
    let lang = current();
    match at {
        None => maud::html! { span.note { (lang.t("aldri", "never")) } },
        Some(at) => maud::html! {
            (lang.time(at)) " " span.note { "(" (lang.relative(at, now)) ")" }
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ms(text: &str) -> Timestamp {
        Timestamp(skolebro_protocol::civil_time::parse_rfc3339_millis(text).expect("a time"))
    }

    #[test]
    fn oslo_changes_to_summer_time_on_the_last_sundays_of_march_and_october() {
        let nb = Lang::Nb;
        assert_eq!(nb.time(ms("2026-03-29T00:59:00Z")), "29.03.2026 01:59 CET");
        assert_eq!(nb.time(ms("2026-03-29T01:00:00Z")), "29.03.2026 03:00 CEST");
        assert_eq!(nb.time(ms("2026-10-25T00:59:59Z")), "25.10.2026 02:59 CEST");
        assert_eq!(nb.time(ms("2026-10-25T01:00:00Z")), "25.10.2026 02:00 CET");
        assert_eq!(nb.time(ms("2026-12-31T23:30:00Z")), "01.01.2027 00:30 CET");
        assert_eq!(
            Lang::English.time(ms("2027-03-28T12:05:59.999Z")),
            "2027-03-28 14:05 CEST"
        );
    }

    #[test]
    fn oslo_wall_clock_times_map_back_to_their_instant_across_both_changes() {
        let wall = |text: &str| UtcDateTime::from_unix_millis(ms(text).0);
        let back = |text: &str| from_oslo(wall(text)).map(|at| at.to_string());
        assert_eq!(
            back("2027-02-01T00:00:00Z").as_deref(),
            Some("2027-01-31T23:00:00.000Z")
        );
        assert_eq!(
            back("2027-06-01T12:30:00Z").as_deref(),
            Some("2027-06-01T10:30:00.000Z")
        );
        assert_eq!(back("2026-03-29T02:30:00Z"), None, "skipped in spring");
        assert_eq!(
            back("2026-10-25T02:30:00Z").as_deref(),
            Some("2026-10-25T00:30:00.000Z"),
            "the first of the two in autumn"
        );
    }

    #[test]
    fn counts_take_the_plural_their_number_asks_for() {
        assert_eq!(Lang::Nb.count(1, Noun::Student), "1 elev");
        assert_eq!(Lang::Nb.count(2, Noun::Student), "2 elever");
        assert_eq!(Lang::Nb.count(0, Noun::Student), "0 elever");
        assert_eq!(Lang::English.count(1, Noun::Warning), "1 warning");
        assert_eq!(Lang::English.count(281, Noun::Student), "281 students");
    }

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = Timestamp(1_000_000_000);
        let before = |s: i64| Timestamp(now.0 - s * 1000);
        assert_eq!(Lang::Nb.relative(before(180), now), "for 3 min siden");
        assert_eq!(Lang::Nb.relative(before(1), now), "for 1 sekund siden");
        assert_eq!(Lang::Nb.relative(before(7200), now), "for 2 timer siden");
        assert_eq!(Lang::Nb.relative(before(86_400), now), "for 1 dag siden");
        assert_eq!(Lang::Nb.relative(before(-3 * 86_400), now), "om 3 dager");
        assert_eq!(Lang::English.relative(before(180), now), "3 min ago");
        assert_eq!(Lang::English.relative(before(-3600), now), "in 1 h");
        assert_eq!(
            Lang::Nb.relative(Timestamp(now.0 + 999), now),
            "for 0 sekunder siden"
        );
    }

    /// 10000-01-01T00:00:00Z, past the four-digit years.
    const YEAR_10000: Timestamp = Timestamp(253_402_300_800_000);

    #[test]
    fn relative_times_span_the_whole_of_i64_without_overflowing() {
        let (min, max) = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        assert_eq!(Lang::Nb.relative(min, max), "for 213503982334 dager siden");
        assert_eq!(Lang::English.relative(max, min), "in 213503982334 days");
        assert_eq!(Lang::Nb.relative(min, min), "for 0 sekunder siden");
        let now = ms("2026-12-06T14:00:00Z");
        assert_eq!(Lang::Nb.relative(YEAR_10000, now), "om 2912103 dager");
        assert_eq!(Lang::English.relative(now, YEAR_10000), "2912103 days ago");
    }

    #[test]
    fn times_at_the_ends_of_i64_and_past_9999_render() {
        assert_eq!(
            Lang::Nb.time(Timestamp(i64::MIN)),
            "16.05.-292275055 18:47 CEST"
        );
        assert_eq!(
            Lang::English.time(Timestamp(i64::MAX)),
            "292278994-08-17 07:12 UTC"
        );
        assert_eq!(Lang::Nb.time(YEAR_10000), "01.01.10000 01:00 CET");
        let now = ms("2026-12-06T14:00:00Z");
        for (at, shown) in [
            (i64::MIN, "16.05.-292275055 18:47 CEST"),
            (i64::MAX, "17.08.292278994 07:12 UTC"),
            (YEAR_10000.0, "01.01.10000 01:00 CET"),
        ] {
            let page = when(Some(Timestamp(at)), now).into_string();
            assert!(page.starts_with(shown), "{page}");
        }
    }

    proptest::proptest! {
        #[test]
        fn times_in_words_never_panic_for_any_i64(
            at in proptest::prop_oneof![
                proptest::prelude::any::<i64>(),
                i64::MAX - 86_400_000..=i64::MAX,
                proptest::strategy::Just(i64::MIN),
            ],
            now in proptest::prelude::any::<i64>(),
        ) {
            for lang in [Lang::Nb, Lang::English] {
                let _ = lang.time(Timestamp(at));
                let _ = lang.relative(Timestamp(at), Timestamp(now));
            }
            let _ = when(Some(Timestamp(at)), Timestamp(now));
        }
    }

    #[test]
    fn the_cookie_then_accept_language_then_bokmal_decide_the_language() {
        let headers = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(name, HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(Lang::of_request(&headers(&[])), Lang::Nb);
        let english = headers(&[(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")]);
        assert_eq!(Lang::of_request(&english), Lang::English);
        let prefers_norwegian = headers(&[(header::ACCEPT_LANGUAGE, "de, en;q=0.5, nn;q=0.8")]);
        assert_eq!(Lang::of_request(&prefers_norwegian), Lang::Nb);
        let unknown = headers(&[(header::ACCEPT_LANGUAGE, "de, fr;q=0.8")]);
        assert_eq!(Lang::of_request(&unknown), Lang::Nb);
        let chosen = headers(&[
            (header::ACCEPT_LANGUAGE, "en"),
            (header::COOKIE, "a=1; skolebro_lang=nb"),
        ]);
        assert_eq!(Lang::of_request(&chosen), Lang::Nb);
        let chosen = headers(&[(header::COOKIE, "skolebro_lang=en")]);
        assert_eq!(Lang::of_request(&chosen), Lang::English);
    }
}
