//! The pages of the web interface and the actions behind their forms.
//!
//! Each GET handler takes the signed-in [`Operator`], works out which sites it may see
//! ([`View`]), reads the store and the fleet view, and renders a table; each POST handler also
//! checks the form's CSRF token and the operator's role, writes the audit line, acts, and
//! redirects back. Pages show ids, counts, states and times, never a national id or a name of
//! a pupil: heartbeats carry deviations masked as the agent's `check` prints them (and
//! [`super::deviations`] masks them again), and the roster itself stays behind the operator
//! API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::html;
use skolebro_protocol::SiteId;

use super::auth::{EmptyForm, Operator, View};
use super::deviations::deviation_table;
use super::error::PageError;
use super::fleet::{school_names, visible_devices};
use super::html::{escape_path, human_bytes, page, see_other};
use super::share::share_section;
use super::text::{current, when, Lang, Noun};
use super::trends::site_charts;
use super::windows::late_note;
use crate::audit;
use crate::state::UiState;
use crate::store::{StoreError, Timestamp};

/// Transfers listed on a site's page.
const TRANSFERS_SHOWN: u32 = 50;

/// Longest reason an operator may give; it is stored in the audit log.
pub(super) const MAX_REASON_LEN: usize = 500;

/// `GET /`: the fleet for a signed-in operator, the login page for anyone else.
pub(crate) async fn home() -> Response {
    see_other("/fleet")
}

/// Unknown paths, and sites or devices outside the operator's view, all look alike.
pub(crate) async fn not_found() -> Response {
    let lang = current();
    page(
        StatusCode::NOT_FOUND,
        lang.t("Finnes ikke", "Not found"),
        html! {},
        "/fleet",
        html! { p {
            (lang.t("Her finnes ingen slik side. ", "There is no such page. "))
            a href="/fleet" { (lang.t("Tilbake til flåten", "Back to the fleet")) } "."
        } },
    )
}

/// `GET /sites/{site}`: a school's transfers over time and what to fix in its SAS.
pub(crate) async fn site(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    if !view.sees(&site) || store.site_secret(&site).await?.is_none() {
        return Err(operator.not_found());
    }
    let (devices, schools) = visible_devices(&state, &view).await?;
    let counts = store.counts(&site).await?;
    let transfers = store.transfers(&site, TRANSFERS_SHOWN).await?;
    let windows = store.windows(None).await?;
    let site_schools = schools.get(&site).map_or(&[][..], Vec::as_slice);
    let now = Timestamp::now();
    let site_devices: Vec<_> = devices
        .iter()
        .filter(|row| row.record.site == site)
        .collect();
    let reported = site_devices
        .iter()
        .any(|row| row.activity.last_heartbeat.is_some());
    let holding: Vec<_> = site_devices
        .iter()
        .filter(|row| {
            row.activity
                .last_heartbeat
                .as_ref()
                .is_some_and(|h| h.held.is_some())
        })
        .collect();
    let heartbeats: Vec<_> = site_devices
        .iter()
        .map(|row| (&row.device, row.activity.last_heartbeat.as_ref()))
        .collect();
    let charts = site_charts(store, lang, &site, &heartbeats, &windows, site_schools, now).await?;
    let here = format!("/sites/{}", escape_path(site.as_str()));

    let body = html! {
        p { (school_names(&schools, &site)) }
        @for row in &holding {
            p.warn id={ "holds-back-" (row.device.as_str()) } {
                (row.device.as_str())
                (lang.t(
                    " holder tilbake en eksport til vurdering: ",
                    " holds an export back for review: ",
                ))
                a href="/held" { (lang.t("se Holdte endringer", "see Held deltas")) } "."
            }
        }
        p {
            @match lang {
                Lang::Nb => {
                    "Sentralen har " (lang.count(counts.students, Noun::Student)) ", "
                    (lang.count(counts.groups, Noun::Group)) " og "
                    (lang.count(counts.enrollments, Noun::Enrollment)) " for denne lokasjonen."
                }
                Lang::English => {
                    "Central holds " (lang.count(counts.students, Noun::Student)) ", "
                    (lang.count(counts.groups, Noun::Group)) " and "
                    (lang.count(counts.enrollments, Noun::Enrollment)) " for this site."
                }
            }
        }
        p { a href={ "/reads?site=" (escape_path(site.as_str())) } {
            (lang.t("Mottakeres oppslag i denne lokasjonens data", "Reads of this site's data by consumers"))
        } }
        (charts)
        @if operator.is_operations() {
            p { a href={ "/sites/" (escape_path(site.as_str())) "/exit" } #site-exit {
                (lang.t("Eksporter eller fjern stedet", "Export or purge the site"))
            } }
        }
        h2 { (lang.t("Avvik å rette i SAS", "Deviations to fix in the SAS")) }
        @for row in &site_devices {
            @if let Some(heartbeat) = &row.activity.last_heartbeat {
                p {
                    (lang.t("Den siste eksporten ", "The last export read by "))
                    (row.device.as_str())
                    (lang.t(" leste, har ", " has "))
                    strong { (lang.count(heartbeat.deviations.errors, Noun::Error)) }
                    (lang.t(" og ", " and "))
                    (lang.count(heartbeat.deviations.warnings, Noun::Warning))
                    " (" (when(row.activity.last_heartbeat_at, now)) ")."
                }
                @if let Some(table) = deviation_table(lang, &heartbeat.deviation_groups) {
                    (table)
                }
            }
        }
        @if reported {
            p.note {
                (lang.t(
                    "Fødselsnumre er maskert og navn utelatt. På skolens side viser ",
                    "National ids are masked and names left out. On the school's side, ",
                ))
                code { "skolebro-agent check EXPORT" }
                (lang.t(" hver rad.", " lists every row."))
            }
        } @else {
            p.note { (lang.t(
                "Ingen enhet på denne lokasjonen har rapportert ennå.",
                "No device of this site has reported yet.",
            )) }
        }
        (share_section(lang, &heartbeats, now))
        h2 { (lang.t("Overføringer", "Transfers")) }
        @if transfers.is_empty() {
            p { (lang.t(
                "Ingen bunt er tatt inn for denne lokasjonen ennå.",
                "No batch has been applied for this site yet.",
            )) }
        } @else {
            table #transfers tabindex="0" {
                caption { (lang.t("Siste overføringer", "Latest transfers")) }
                tr {
                    th scope="col" { (lang.t("Tatt inn", "Applied")) }
                    th scope="col" { (lang.t("Enhet", "Device")) }
                    th scope="col" { (lang.t("Bunt", "Batch")) }
                    th scope="col" { (lang.t("Slag", "Kind")) }
                    th scope="col" { (lang.t("Størrelse", "Size")) }
                    th scope="col" { (lang.t("Lagt til", "Added")) }
                    th scope="col" { (lang.t("Endret", "Changed")) }
                    th scope="col" { (lang.t("Fjernet", "Removed")) }
                    th scope="col" { (lang.t("Omdøpt", "Renamed")) }
                    th scope="col" { (lang.t("Uendret", "Unchanged")) }
                    th scope="col" { (lang.t("Frist", "Deadline")) }
                }
                @for transfer in &transfers {
                    tr {
                        td { (when(Some(transfer.at), now)) }
                        td { (transfer.device.as_str()) }
                        td { "#" (transfer.seq.0) }
                        td { (if transfer.snapshot { lang.t("fullt bilde", "snapshot") } else { lang.t("endring", "delta") }) }
                        td {
                            @if transfer.bytes == 0 {
                                span.note { (lang.t("ikke registrert", "not recorded")) }
                            } @else {
                                (human_bytes(transfer.bytes))
                            }
                        }
                        td { (transfer.changes.added) }
                        td { (transfer.changes.changed) }
                        td { (transfer.changes.removed) }
                        td { (transfer.changes.renamed) }
                        td { (transfer.changes.unchanged) }
                        td { (late_note(&windows, site_schools, transfer.at)) }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        &format!("{} {site}", lang.t("Lokasjon", "Site")),
        operator.nav(),
        &here,
        body,
    ))
}

/// Counts of records by kind ("281 elever, 3 grupper"), in the page's language for the
/// kinds it knows.
pub(super) fn kinds(lang: Lang, counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return lang.t("ingen", "none").to_owned();
    }
    counts
        .iter()
        .map(|(kind, n)| {
            let noun = match kind.as_str() {
                "students" => Some(Noun::Student),
                "groups" => Some(Noun::Group),
                "enrollments" => Some(Noun::Enrollment),
                "schools" => Some(Noun::School),
                _ => None,
            };
            noun.map_or_else(|| format!("{n} {kind}"), |noun| lang.count(*n, noun))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /tokens`: the sticks' enrollment tokens; issuing one stays in the CLI.
pub(crate) async fn tokens(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let view = operator.view(state.app.store.as_ref()).await?;
    if matches!(view, View::Only(_)) {
        return Err(operator.not_found());
    }
    let tokens = state.app.store.list_tokens().await?;
    let now = Timestamp::now();
    let body = html! {
        p {
            (lang.t("En konfigurasjonspinne lages med ", "A config stick is made with "))
            code { "skolebro-provision stick" }
            (lang.t(
                ", som signerer pinnens pakke med pinnenøkkelen; den nøkkelen kommer aldri nær \
                 denne tjeneren, så pinner utstedes ikke fra denne siden. Kommandoen registrerer \
                 pinnens engangstoken her.",
                ", which signs the stick's bundle with the stick key; that key never comes near \
                 this server, so sticks are not issued from this page. The command registers the \
                 stick's one-time token here.",
            ))
        }
        @if tokens.is_empty() {
            p { (lang.t("Ingen tokens er registrert.", "No tokens are registered.")) }
        } @else {
            table #tokens tabindex="0" {
                caption { (lang.t("Innmeldingstokens", "Enrollment tokens")) }
                tr {
                    th scope="col" { "Token" }
                    th scope="col" { (lang.t("Lokasjon", "Site")) }
                    th scope="col" { (lang.t("Skole", "School")) }
                    th scope="col" { (lang.t("Laget", "Created")) }
                    th scope="col" { (lang.t("Utløper", "Expires")) }
                    th scope="col" { (lang.t("Tilstand", "State")) }
                    th scope="col" { }
                }
                @for token in &tokens {
                    tr {
                        td { code { (token.id) } }
                        td { (token.site.as_str()) }
                        td { (token.site_name) }
                        td { (lang.time(token.created)) }
                        td { (lang.time(token.expires)) }
                        td {
                            @if token.revoked {
                                span.bad { (lang.t("tilbakekalt", "revoked")) }
                            } @else if let Some(device) = &token.used_by {
                                (lang.t("brukt av ", "used by ")) (device.as_str()) " " (when(token.used_at, now))
                            } @else if now >= token.expires {
                                span.note { (lang.t("utløpt", "expired")) }
                            } @else {
                                span.ok { (lang.t("ubrukt", "unused")) }
                            }
                        }
                        td {
                            @if operator.is_operations() && !token.revoked {
                                form.inline method="post" action={ "/tokens/" (escape_path(&token.id)) "/revoke" } {
                                    (operator.csrf_field())
                                    button type="submit" { (lang.t("Tilbakekall", "Revoke")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Pinner og tokens", "Sticks and tokens"),
        operator.nav(),
        "/tokens",
        body,
    ))
}

/// `POST /tokens/{id}/revoke`: operations only; a lost stick's token is refused from now on.
pub(crate) async fn post_revoke_token(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden(current().t(
            "Bare driften kan tilbakekalle et token.",
            "Only operations may revoke a token.",
        )));
    }
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(operator.not_found());
    }
    let store = state.app.store.as_ref();
    audit::record(store, &operator.user.name, "revoke_token", &id, "revoked").await?;
    match store.revoke_token(&id).await {
        Ok(()) => Ok(see_other("/tokens")),
        Err(StoreError::TokenUnknown) => Err(operator.not_found()),
        Err(error) => Err(error.into()),
    }
}
