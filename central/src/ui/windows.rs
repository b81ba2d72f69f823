//! The transfer windows page: each county's delivery periods for its admission office, in
//! plain words (upcoming, open, closed and frozen), with how many of the county's sites
//! delivered inside each window and which came in late.
//!
//! It reads the same reports as `GET /admin/windows` (`crate::windows`), restricted to the
//! sites the operator may see; a municipality operator sees only its own county's windows
//! (the first two digits of its kommune). Operations create windows here, with an audit
//! line written before the store is asked. The frozen elevliste itself stays on the operator
//! listener (`GET /admin/exports/elevliste?window=ID`), as the file carries personal data.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use skolebro_protocol::civil_time::{CivilDate, UtcDateTime};
use skolebro_protocol::SiteSchool;

use super::auth::{CsrfForm, Operator};
use super::error::PageError;
use super::html::{escape_path, page, see_other};
use super::text::{current, from_oslo, Lang, Noun};
use crate::audit;
use crate::state::UiState;
use crate::store::{
    Fylke, Role, StoreError, Timestamp, TransferWindow, WindowState, MAX_WINDOW_NAME_LEN,
};
use crate::windows::{
    audit_words, early_refusal, late_for, new_window, refusal, Overview, WindowEnd, WindowRefusal,
    WindowReport,
};

/// Whose windows an operator sees.
pub(super) enum Counties {
    /// Every county's: operations and read-only accounts.
    Every,
    /// One county's: a municipality account's, the first two digits of its kommune.
    Own(Fylke),
    /// None: a municipality account whose kommune names no county (the account checks make
    /// this impossible, but it must not fall back to every county).
    Nothing,
}

pub(super) fn counties_of(operator: &Operator) -> Counties {
    match (operator.user.role, &operator.user.kommune) {
        (Role::Municipality, Some(kommune)) => {
            Fylke::of_kommune(kommune).map_or(Counties::Nothing, Counties::Own)
        }
        (Role::Municipality, None) => Counties::Nothing,
        (Role::Operations | Role::ReadOnly, _) => Counties::Every,
    }
}

/// A window's state in words an operator and the admission office act on.
fn state_words(lang: Lang, window: &TransferWindow, now: Timestamp) -> Markup {
    match window.state_at(now) {
        WindowState::Upcoming => html! { span.note {
            (lang.t("Kommende: åpner ", "Upcoming: opens ")) (lang.time(window.opens))
        } },
        WindowState::Open => html! { span.ok {
            (lang.t("Åpent til ", "Open until ")) (lang.time(window.closes))
        } },
        WindowState::Closed => html! { span.warn {
            (lang.t("Stengt ", "Closed on ")) (lang.time(window.closes))
            (lang.t(
                ", frosset: elevlisten står som ved fristen",
                ", frozen: its elevliste stays as of the deadline",
            ))
        } },
    }
}

/// The "delivered" and "late" cells of a window's row.
fn report_cells(lang: Lang, report: &WindowReport<'_>) -> (Markup, Markup) {
    let delivered = html! {
        (lang.count(report.sites.len() as u64, Noun::Site)) ", " (report.delivered.len())
        (lang.t(" leverte innenfor vinduet", " delivered inside the window"))
    };
    let late_sites = report.late_sites();
    let late = html! {
        @if late_sites.is_empty() {
            span.note { (lang.t("ingen", "none")) }
        } @else {
            span.warn {
                (lang.count(report.late.len() as u64, Noun::LateTransfer))
                (lang.t(" fra ", " from ")) (lang.count(late_sites.len() as u64, Noun::Site)) ":"
            } " "
            @for (i, site) in late_sites.iter().enumerate() {
                @if i > 0 { ", " }
                a href={ "/sites/" (escape_path(site.as_str())) } { (site.as_str()) }
            }
        }
    };
    (delivered, late)
}

/// The note on a site page's transfer applied at `at`: which window it was late for, if
/// any, given the schools the site is registered with.
pub(crate) fn late_note(
    windows: &[TransferWindow],
    schools: &[SiteSchool],
    at: Timestamp,
) -> Markup {
    let counties = schools
        .iter()
        .filter_map(|school| Fylke::of_kommune(&school.kommunenummer))
        .collect();
    html! {
        @if let Some(window) = late_for(windows, &counties, at) {
            span.warn { (current().t("For sen til ", "Late for ")) (window.name) }
        }
    }
}

/// `GET /windows`: the windows the operator may see, by county, with their reports.
pub(crate) async fn windows_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let title = lang.t("Overføringsvinduer", "Transfer windows");
    let store = state.app.store.as_ref();
    let intro = html! { p { (lang.t(
        "Fylkenes inntakskontorer tar imot leveranser innenfor overføringsvinduene sine. \
         Bunter som kommer senere, tas inn og beholdes som alle andre, og vises her som sene; \
         et stengt vindus elevliste står som den var ved fristen.",
        "The counties' admission offices take deliveries inside their transfer windows. \
         Batches that arrive later are applied and kept like any other, and shown here as \
         late; a closed window's elevliste stays as it was at the deadline.",
    )) } };
    let county = match counties_of(&operator) {
        Counties::Every => None,
        Counties::Own(county) => Some(county),
        Counties::Nothing => {
            let body = html! {
                (intro)
                p { (lang.t("Kontoen din nevner ikke noe fylke.", "Your account names no county.")) }
            };
            return Ok(page(
                StatusCode::OK,
                title,
                operator.nav(),
                "/windows",
                body,
            ));
        }
    };
    let view = operator.view(store).await?;
    let mut overview = Overview::load(store, county).await?;
    overview.counties.retain(|site, _| view.sees(site));
    let now = Timestamp::now();
    let reports = overview.reports();
    // The windows grouped by county, in the order the reports come.
    let mut by_county: Vec<(Fylke, Vec<&WindowReport<'_>>)> = Vec::new();
    for report in &reports {
        match by_county.last_mut() {
            Some((fylke, list)) if *fylke == report.window.fylke => list.push(report),
            _ => by_county.push((report.window.fylke, vec![report])),
        }
    }
    let body = html! {
        (intro)
        @if operator.user.role == Role::Municipality {
            p.note { (lang.t("Tallene gjelder lokasjonene i kommunen din.", "Counts cover the sites of your kommune.")) }
        }
        @if reports.is_empty() {
            p #no-windows { (lang.t("Ingen overføringsvinduer er satt.", "No transfer windows are set.")) }
        }
        @for (fylke, list) in &by_county {
            h2 { (lang.t("Fylke ", "County ")) (fylke) }
            table id={ "windows-" (fylke) } tabindex="0" {
                caption { (lang.t("Vinduene til fylke ", "The windows of county ")) (fylke) }
                tr {
                    th scope="col" { (lang.t("Vindu", "Window")) }
                    th scope="col" { (lang.t("Åpner", "Opens")) }
                    th scope="col" { (lang.t("Stenger", "Closes")) }
                    th scope="col" { (lang.t("Tilstand", "State")) }
                    th scope="col" { (lang.t("Levert", "Delivered")) }
                    th scope="col" { (lang.t("Sene", "Late")) }
                }
                @for report in list {
                    @let window = report.window;
                    @let (delivered, late) = report_cells(lang, report);
                    tr {
                        td { (window.name) " " span.note { "(id " (window.id) ")" } }
                        td { (lang.time(window.opens)) }
                        td { (lang.time(window.closes)) }
                        td { (state_words(lang, window, now)) }
                        td { (delivered) }
                        td { (late) }
                    }
                }
            }
        }
        @if operator.is_operations() {
            h2 { (lang.t("Nytt vindu", "New window")) }
            form method="post" action="/windows" {
                (operator.csrf_field())
                p { label { (lang.t("Fylke (fylkesnummer, to sifre)", "County (fylkesnummer, two digits)")) br;
                    input type="text" name="fylke" id="fylke" size="2" maxlength="2" required; } }
                p { label { (lang.t("Navn", "Name")) br;
                    input type="text" name="name" id="name" size="40" maxlength=(MAX_WINDOW_NAME_LEN) required; } }
                p.note { (lang.t(
                    "Tider er norsk tid. Uten klokkeslett gjelder midnatt ved starten av datoen.",
                    "Times are Oslo time. Without a time of day, midnight at the start of the date applies.",
                )) }
                p { label for="opens" { (lang.t("Åpner", "Opens")) } br;
                    input type="date" name="opens" id="opens" required; " "
                    label { span.vh { (lang.t("Klokkeslett åpner", "Opening time")) }
                        input type="time" name="opens_time" id="opens-time" step="1"; } }
                p { label for="closes" { (lang.t("Stenger: fristen", "Closes: the deadline")) } br;
                    input type="date" name="closes" id="closes" required; " "
                    label { span.vh { (lang.t("Klokkeslett stenger", "Closing time")) }
                        input type="time" name="closes_time" id="closes-time" step="1"; } }
                p { button type="submit" id="create-window" { (lang.t("Opprett vindu", "Create window")) } }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        title,
        operator.nav(),
        "/windows",
        body,
    ))
}

/// The new-window form: a date picker and an optional time of day for each end, in Oslo
/// time, checked by the same rules as the operator API's once read.
#[derive(Debug, Deserialize)]
pub(crate) struct WindowForm {
    csrf: String,
    fylke: String,
    name: String,
    opens: String,
    #[serde(default)]
    opens_time: String,
    closes: String,
    #[serde(default)]
    closes_time: String,
}

/// A date picker's `YYYY-MM-DD` and a time picker's `HH:MM` or `HH:MM:SS` (empty for
/// midnight) as Oslo's wall clock reads them, or why not, in the page's language.
fn oslo_time(lang: Lang, opens: bool, date: &str, time: &str) -> Result<Timestamp, String> {
    let which = if opens {
        lang.t("Åpner", "Opens")
    } else {
        lang.t("Stenger", "Closes")
    };
    let date = CivilDate::parse_iso(date.trim()).ok_or_else(|| {
        format!(
            "{which}: {}",
            lang.t("velg en dato (ÅÅÅÅ-MM-DD).", "choose a date (YYYY-MM-DD).")
        )
    })?;
    let time = time.trim();
    let clock = if time.is_empty() {
        Some((0, 0, 0))
    } else {
        clock_time(time)
    };
    let (hour, minute, second) = clock.ok_or_else(|| {
        format!(
            "{which}: {}",
            lang.t(
                "klokkeslettet skrives TT:MM eller TT:MM:SS.",
                "the time of day is written HH:MM or HH:MM:SS."
            )
        )
    })?;
    from_oslo(UtcDateTime {
        year: i64::from(date.year()),
        month: i64::from(date.month()),
        day: i64::from(date.day()),
        hour,
        minute,
        second,
        millisecond: 0,
    })
    .ok_or_else(|| {
        format!(
            "{which}: {}",
            lang.t(
                "det klokkeslettet finnes ikke i norsk tid den dagen (klokken stilles fram).",
                "that time does not exist in Oslo on that day (the clocks go forward).",
            )
        )
    })
}

/// `HH:MM` or `HH:MM:SS`, as a time picker sends it.
fn clock_time(text: &str) -> Option<(i64, i64, i64)> {
    let mut parts = text.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let part = parts.next()?;
        let value: i64 = part.parse().ok()?;
        (part.len() == 2 && (0..=max).contains(&value)).then_some(value)
    };
    let (hour, minute) = (field(23)?, field(59)?);
    let second = match text.len() {
        5 => 0,
        8 => field(59)?,
        _ => return None,
    };
    Some((hour, minute, second))
}

impl CsrfForm for WindowForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A window the form asked for that cannot be created, with the reason and a way back.
fn refused(operator: &Operator, why: String) -> PageError {
    PageError::WindowRefused {
        nav: operator.nav(),
        why,
    }
}

/// A store error on creating a window: a refusal said in the page's language, or the
/// store's own failure.
fn store_refused(operator: &Operator, lang: Lang, error: StoreError) -> PageError {
    match refusal(&error) {
        Some(why) => refused(operator, refusal_words(lang, &why)),
        None => error.into(),
    }
}

/// Why a window is not created, in `lang`: the operator API's English words, or bokmål.
pub(super) fn refusal_words(lang: Lang, refusal: &WindowRefusal) -> String {
    if lang == Lang::English {
        return refusal.to_string();
    }
    match refusal {
        WindowRefusal::Time(end) => format!(
            "{}: skriv en tid etter RFC 3339, f.eks. 2027-03-01T12:00:00+01:00, eller en dato.",
            match end {
                WindowEnd::Opens => "Åpner",
                WindowEnd::Closes => "Stenger",
            }
        ),
        WindowRefusal::County => "Fylket skrives som fylkesnummer, med to sifre.".to_owned(),
        WindowRefusal::Name => format!("Navnet må ha 1 til {MAX_WINDOW_NAME_LEN} tegn."),
        WindowRefusal::Closes { opens, closes } => format!(
            "Et overføringsvindu må stenge etter at det åpner (åpner {}, stenger {}).",
            lang.time(*opens),
            lang.time(*closes)
        ),
        WindowRefusal::Overlap { fylke, existing } => format!(
            "Vinduet overlapper vindu {existing} i fylke {fylke}. Vinduene i ett fylke kan \
             møtes, men ikke overlappe."
        ),
    }
}

/// `POST /windows`: operations only; checks the window, writes the audit line, creates it.
pub(crate) async fn post_window(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<WindowForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden(current().t(
            "Bare driften kan opprette et overføringsvindu.",
            "Only operations may create a transfer window.",
        )));
    }
    let lang = current();
    let times = oslo_time(lang, true, &form.opens, &form.opens_time).and_then(|opens| {
        Ok((
            opens,
            oslo_time(lang, false, &form.closes, &form.closes_time)?,
        ))
    });
    let window = times
        .and_then(|(opens, closes)| {
            new_window(&form.fylke, &form.name, opens, closes, &operator.user.name)
                .map_err(|why| refusal_words(lang, &why))
        })
        .map_err(|why| refused(&operator, why))?;
    let store = state.app.store.as_ref();
    if let Some(error) = early_refusal(store, &window).await? {
        return Err(store_refused(&operator, lang, error));
    }
    let (target, detail) = audit_words(&window);
    audit::record(
        store,
        &operator.user.name,
        "create_window",
        &target,
        &detail,
    )
    .await?;
    match store.create_window(&window).await {
        Ok(created) => {
            tracing::info!(window = created.id, fylke = %created.fylke, operator = operator.user.name, "transfer window created");
            Ok(see_other("/windows"))
        }
        Err(error) => Err(store_refused(&operator, lang, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picked_date_means_oslo_midnight_and_a_picked_time_oslo_wall_clock() {
        let at = |date: &str, time: &str| {
            oslo_time(Lang::English, true, date, time).map(|at| at.to_string())
        };
        assert_eq!(
            at("2027-02-01", "").as_deref(),
            Ok("2027-01-31T23:00:00.000Z")
        );
        assert_eq!(
            at("2027-06-01", "12:30").as_deref(),
            Ok("2027-06-01T10:30:00.000Z")
        );
        assert_eq!(
            at("2027-06-01", "12:30:15").as_deref(),
            Ok("2027-06-01T10:30:15.000Z")
        );
    }

    #[test]
    fn unreadable_dates_and_times_are_refused_in_the_pages_language() {
        let english = oslo_time(Lang::English, false, "1 March", "").expect_err("refused");
        assert_eq!(english, "Closes: choose a date (YYYY-MM-DD).");
        let bokmal = oslo_time(Lang::Nb, true, "2027-03-01", "25:00").expect_err("refused");
        assert_eq!(bokmal, "Åpner: klokkeslettet skrives TT:MM eller TT:MM:SS.");
        let skipped = oslo_time(Lang::English, true, "2027-03-28", "02:30").expect_err("refused");
        assert!(skipped.contains("does not exist in Oslo"), "{skipped}");
        for bad in ["1:00", "12:5", "12:30:1", "12:30:00:00", "ab:cd"] {
            assert!(clock_time(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_refused_window_is_said_in_bokmal_or_in_the_operator_apis_english() {
        let backwards = WindowRefusal::Closes {
            opens: Timestamp(1_800_000_000_000),
            closes: Timestamp(1_799_000_000_000),
        };
        assert_eq!(
            refusal_words(Lang::Nb, &backwards),
            "Et overføringsvindu må stenge etter at det åpner (åpner 15.01.2027 09:00 CET, \
             stenger 03.01.2027 19:13 CET)."
        );
        assert_eq!(
            refusal_words(Lang::English, &backwards),
            backwards.to_string(),
            "English is the operator API's detail"
        );
        assert_eq!(
            refusal_words(Lang::Nb, &WindowRefusal::County),
            "Fylket skrives som fylkesnummer, med to sifre."
        );
        let overlap = WindowRefusal::Overlap {
            fylke: Fylke::parse("46").expect("a county"),
            existing: 3,
        };
        assert!(
            refusal_words(Lang::Nb, &overlap).starts_with("Vinduet overlapper vindu 3 i fylke 46.")
        );
        assert!(refusal_words(Lang::English, &overlap).contains("overlaps window 3 of county 46"));
        assert_eq!(
            refusal_words(Lang::Nb, &WindowRefusal::Time(WindowEnd::Closes)),
            "Stenger: skriv en tid etter RFC 3339, f.eks. 2027-03-01T12:00:00+01:00, eller en dato."
        );
        assert!(refusal_words(Lang::Nb, &WindowRefusal::Name).starts_with("Navnet må ha 1 til "));
    }
}
