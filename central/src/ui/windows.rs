//! The transfer windows page: each county's delivery periods for its admission office, in
//! plain words (upcoming, open, closed and frozen), with how many of the county's sites
//! delivered inside each window and which came in late.
//!
//! It reads the same reports as `GET /admin/windows` (`crate::windows`), restricted to the
//! sites the operator may see; a municipality operator sees only its own county's windows
//! (the first two digits of its kommune). Operations create windows here, with an audit
//! line written before the store is asked. The frozen elevliste itself stays on the operator
//! listener (`GET /admin/exports/elevliste?window=ID`), as the file carries personal data.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use skolebro_protocol::SiteSchool;

use super::auth::{CsrfForm, Operator};
use super::error::PageError;
use super::html::{escape, escape_path, page, see_other};
use crate::audit;
use crate::state::UiState;
use crate::store::{Fylke, Role, Timestamp, TransferWindow, WindowState, MAX_WINDOW_NAME_LEN};
use crate::windows::{
    audit_words, early_refusal, late_for, parse_new_window, refusal, Overview, WindowReport,
};

/// Whose windows an operator sees.
enum Counties {
    /// Every county's: operations and read-only accounts.
    Every,
    /// One county's: a municipality account's, the first two digits of its kommune.
    Own(Fylke),
    /// None: a municipality account whose kommune names no county (the account checks make
    /// this impossible, but it must not fall back to every county).
    Nothing,
}

fn counties_of(operator: &Operator) -> Counties {
    match (operator.user.role, &operator.user.kommune) {
        (Role::Municipality, Some(kommune)) => {
            Fylke::of_kommune(kommune).map_or(Counties::Nothing, Counties::Own)
        }
        (Role::Municipality, None) => Counties::Nothing,
        (Role::Operations | Role::ReadOnly, _) => Counties::Every,
    }
}

/// A window's state in words an operator and the admission office act on.
fn state_words(window: &TransferWindow, now: Timestamp) -> String {
    match window.state_at(now) {
        WindowState::Upcoming => format!(
            "<span class=\"note\">Upcoming: opens {}</span>",
            escape(&window.opens.to_string())
        ),
        WindowState::Open => format!(
            "<span class=\"ok\">Open until {}</span>",
            escape(&window.closes.to_string())
        ),
        WindowState::Closed => format!(
            "<span class=\"warn\">Closed on {}, frozen: its elevliste stays as of the \
             deadline</span>",
            escape(&window.closes.to_string())
        ),
    }
}

/// The "delivered" and "late" cells of a window's row.
fn report_cells(report: &WindowReport<'_>) -> (String, String) {
    let delivered = format!(
        "{} of {} sites delivered inside the window",
        report.delivered.len(),
        report.sites.len()
    );
    let late_sites = report.late_sites();
    let late = if late_sites.is_empty() {
        "<span class=\"note\">none</span>".to_owned()
    } else {
        let links: Vec<String> = late_sites
            .iter()
            .map(|site| {
                format!(
                    "<a href=\"/sites/{}\">{}</a>",
                    escape_path(site.as_str()),
                    escape(site.as_str())
                )
            })
            .collect();
        format!(
            "<span class=\"warn\">{} late transfers from {} sites:</span> {}",
            report.late.len(),
            late_sites.len(),
            links.join(", ")
        )
    };
    (delivered, late)
}

/// The note on a site page's transfer applied at `at`: which window it was late for, if
/// any, given the schools the site is registered with.
pub(crate) fn late_note(
    windows: &[TransferWindow],
    schools: &[SiteSchool],
    at: Timestamp,
) -> String {
    let counties = schools
        .iter()
        .filter_map(|school| Fylke::of_kommune(&school.kommunenummer))
        .collect();
    match late_for(windows, &counties, at) {
        Some(window) => format!(
            "<span class=\"warn\">Late for {}</span>",
            escape(&window.name)
        ),
        None => String::new(),
    }
}

/// `GET /windows`: the windows the operator may see, by county, with their reports.
pub(crate) async fn windows_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let store = state.app.store.as_ref();
    let mut body = String::from(
        "<p>The counties' admission offices take deliveries inside their transfer windows. \
         Batches that arrive later are applied and kept like any other, and shown here as \
         late; a closed window's elevliste stays as it was at the deadline.</p>",
    );
    let county = match counties_of(&operator) {
        Counties::Every => None,
        Counties::Own(county) => Some(county),
        Counties::Nothing => {
            body.push_str("<p>Your account names no county.</p>");
            return Ok(page(
                StatusCode::OK,
                "Transfer windows",
                &operator.nav(),
                &body,
            ));
        }
    };
    let view = operator.view(store).await?;
    let mut overview = Overview::load(store, county).await?;
    overview.counties.retain(|site, _| view.sees(site));
    if operator.user.role == Role::Municipality {
        body.push_str("<p class=\"note\">Counts cover the sites of your kommune.</p>");
    }
    let now = Timestamp::now();
    let reports = overview.reports();
    if reports.is_empty() {
        body.push_str("<p id=\"no-windows\">No transfer windows are set.</p>");
    }
    let mut current: Option<Fylke> = None;
    for report in &reports {
        let window = report.window;
        if current != Some(window.fylke) {
            if current.is_some() {
                body.push_str("</table>");
            }
            current = Some(window.fylke);
            let _ = write!(
                body,
                "<h2>County {county}</h2><table id=\"windows-{county}\"><tr><th>Window</th>\
                 <th>Opens</th><th>Closes</th><th>State</th><th>Delivered</th><th>Late</th>\
                 </tr>",
                county = window.fylke,
            );
        }
        let (delivered, late) = report_cells(report);
        let _ = write!(
            body,
            "<tr><td>{name} <span class=\"note\">(id {id})</span></td><td>{opens}</td>\
             <td>{closes}</td><td>{state}</td><td>{delivered}</td><td>{late}</td></tr>",
            name = escape(&window.name),
            id = window.id,
            opens = escape(&window.opens.to_string()),
            closes = escape(&window.closes.to_string()),
            state = state_words(window, now),
        );
    }
    if current.is_some() {
        body.push_str("</table>");
    }
    if operator.is_operations() {
        let _ = write!(
            body,
            "<h2>New window</h2><form method=\"post\" action=\"/windows\">{csrf}\
             <p><label>County (fylkesnummer, two digits)<br>\
             <input type=\"text\" name=\"fylke\" id=\"fylke\" size=\"2\" maxlength=\"2\" required>\
             </label></p><p><label>Name<br><input type=\"text\" name=\"name\" id=\"name\" \
             size=\"40\" maxlength=\"{MAX_WINDOW_NAME_LEN}\" required></label></p>\
             <p><label>Opens (RFC 3339, e.g. 2027-02-01T00:00:00+01:00, or a date)<br>\
             <input type=\"text\" name=\"opens\" id=\"opens\" size=\"30\" required></label></p>\
             <p><label>Closes: the deadline<br>\
             <input type=\"text\" name=\"closes\" id=\"closes\" size=\"30\" required></label></p>\
             <p><button type=\"submit\" id=\"create-window\">Create window</button></p></form>",
            csrf = operator.csrf_field(),
        );
    }
    Ok(page(
        StatusCode::OK,
        "Transfer windows",
        &operator.nav(),
        &body,
    ))
}

/// The new-window form; times as text, checked by the same rules as the operator API's.
#[derive(Debug, Deserialize)]
pub(crate) struct WindowForm {
    csrf: String,
    fylke: String,
    name: String,
    opens: String,
    closes: String,
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

/// `POST /windows`: operations only; checks the window, writes the audit line, creates it.
pub(crate) async fn post_window(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<WindowForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden("Only operations may create a transfer window."));
    }
    let window = parse_new_window(
        &form.fylke,
        &form.name,
        &form.opens,
        &form.closes,
        &operator.user.name,
    )
    .map_err(|why| refused(&operator, why))?;
    let store = state.app.store.as_ref();
    if let Some(error) = early_refusal(store, &window).await? {
        return Err(refused(&operator, refusal(&error).unwrap_or_default()));
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
        Err(error) => match refusal(&error) {
            Some(why) => Err(refused(&operator, why)),
            None => Err(error.into()),
        },
    }
}
