//! The privacy page and a site's exit in the web interface: one pupil's access export
//! (a JSON download) and erasure by national id, the tombstones erasures left with the
//! `erased_subject_returned` flag when a later batch carried the pupil again, and, on a
//! site's exit page, the site's export (a JSON download) and purge. Each calls the domain
//! module the CLI and the operator API call (`crate::subject`, `crate::site_exit`), as the
//! signed-in operator, audited. Operations reach every site, a municipality's operators the
//! sites of their kommune; read-only accounts neither (an export discloses a pupil). Erasure
//! asks first with the reason, as revoking does; a purge asks for the site id to be typed.
//! The national id is never logged; pages show it masked.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;
use skolebro_protocol::{NationalId, SiteId};

use super::auth::{CsrfForm, Operator, View};
use super::error::PageError;
use super::held::{confirmation, reason_of, Confirmation};
use super::html::{download, escape_path, page, see_other};
use super::pages::MAX_REASON_LEN;
use super::text::{current, when};
use crate::audit;
use crate::site_exit;
use crate::state::UiState;
use crate::store::{Role, Timestamp};
use crate::subject;

/// The sites an operator's privacy actions reach, or the refusal for a read-only account.
async fn reach(operator: &Operator, state: &UiState) -> Result<Option<Vec<SiteId>>, PageError> {
    if !matches!(operator.user.role, Role::Operations | Role::Municipality) {
        return Err(operator.forbidden(current().t(
            "Bare driften og kommunens operatører kan se og slette en elevs opplysninger.",
            "Only operations and a municipality's operators may export or erase a pupil's data.",
        )));
    }
    Ok(match operator.view(state.app.store.as_ref()).await? {
        View::All => None,
        View::Only(sites) => {
            let mut sites: Vec<SiteId> = sites.into_iter().collect();
            sites.sort();
            Some(sites)
        }
    })
}

fn parse_id(operator: &Operator, text: &str) -> Result<NationalId, PageError> {
    NationalId::parse(text).map_err(|error| {
        operator.forbidden(&format!(
            "{} {error}",
            current().t(
                "Det er ikke et fødselsnummer:",
                "That is not a national id:"
            )
        ))
    })
}

/// `GET /privacy`: the export and erase forms and the tombstones.
pub(crate) async fn privacy_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let within = reach(&operator, &state).await?;
    let now = Timestamp::now();
    let tombstones: Vec<_> = state
        .app
        .store
        .tombstones()
        .await?
        .into_iter()
        .filter(|tombstone| {
            within
                .as_ref()
                .is_none_or(|sites| sites.contains(&tombstone.site))
        })
        .collect();
    let body = html! {
        p { (lang.t(
            "Alt sentralen har om én elev, etter fødselsnummer: hver versjon av elev- og elevforholdsradene på hvert sted, og hvilke konsumenter som har skolen i sitt omfang. Fødselsnummeret lagres ikke og vises bare maskert.",
            "Everything central holds of one pupil, by national id: every version of the student and enrollment records at each site, and the consumers whose scope covers the school. The national id is not kept and shown only masked.",
        )) }
        h2 { (lang.t("Innsyn (last ned JSON)", "Access (download JSON)")) }
        form method="post" action="/privacy/export" {
            (operator.csrf_field())
            label { (lang.t("Fødselsnummer", "National id")) " "
                input type="text" name="national_id" id="export-id" size="11" maxlength="11"
                    inputmode="numeric" autocomplete="off" required; }
            " " button type="submit" id="export" { (lang.t("Last ned", "Download")) }
        }
        h2 { (lang.t("Sletting", "Erasure")) }
        form method="post" action="/privacy/erase" {
            (operator.csrf_field())
            p { label { (lang.t("Fødselsnummer", "National id")) " "
                input type="text" name="national_id" id="erase-id" size="11" maxlength="11"
                    inputmode="numeric" autocomplete="off" required; } }
            p { label { (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                input type="text" name="reason" id="erase-reason" size="60"
                    maxlength=(MAX_REASON_LEN) required; } }
            button type="submit" id="erase" { (lang.t("Slett …", "Erase …")) }
        }
        h2 { (lang.t("Slettede elever", "Erased pupils")) }
        @if tombstones.is_empty() {
            p.note { (lang.t("Ingen.", "None.")) }
        } @else {
            table #tombstones tabindex="0" {
                caption { (lang.t("Gravsteiner: elever som ikke lagres igjen uten at noen ser det", "Tombstones: pupils not stored again unseen")) }
                thead { tr {
                    th scope="col" { (lang.t("Sted", "Site")) }
                    th scope="col" { (lang.t("Slettet", "Erased")) }
                    th scope="col" { (lang.t("Av", "By")) }
                    th scope="col" { (lang.t("Begrunnelse", "Reason")) }
                    th scope="col" { (lang.t("Sendt igjen", "Sent again")) }
                    th scope="col" { (lang.t("Handling", "Action")) }
                } }
                tbody {
                    @for tombstone in &tombstones {
                        tr {
                            td { (tombstone.site.as_str()) }
                            td { (when(Some(tombstone.erased_at), now)) }
                            td { (tombstone.erased_by) }
                            td { (tombstone.reason) }
                            td {
                                @if tombstone.returned > 0 {
                                    span.bad title="erased_subject_returned" {
                                        (tombstone.returned) " "
                                        (lang.t("poster holdt tilbake", "records held back"))
                                    }
                                    " " (when(tombstone.returned_at, now))
                                } @else {
                                    span.note { "0" }
                                }
                            }
                            td {
                                form.inline method="post" action="/privacy/tombstones/clear" {
                                    (operator.csrf_field())
                                    input type="hidden" name="site" value=(tombstone.site.as_str());
                                    input type="hidden" name="subject" value=(tombstone.subject);
                                    button type="submit" { (lang.t("Opphev …", "Clear …")) }
                                }
                            }
                        }
                    }
                }
            }
            p.note { (lang.t(
                "En elev som skolen sender igjen etter slettingen, lagres ikke: radene holdes tilbake og telles her til sperren oppheves. Etter det lagrer sentralen eleven fra skolens neste eksport.",
                "A pupil the school sends again after the erasure is not stored: the records are held back and counted here until the tombstone is cleared. After that central stores the pupil from the school's next export.",
            )) }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Personvern", "Privacy"),
        operator.nav(),
        "/privacy",
        body,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportForm {
    csrf: String,
    national_id: String,
}

impl CsrfForm for ExportForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /privacy/export`: the pupil's export as a JSON download, audited.
pub(crate) async fn post_export(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<ExportForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    let within = reach(&operator, &state).await?;
    let id = parse_id(&operator, &form.national_id)?;
    let store = state.app.store.as_ref();
    let export = subject::export(store, &id, within.as_deref(), Timestamp::now()).await?;
    audit::record(
        store,
        &operator.user.name,
        "subject_export",
        &id.masked(),
        &format!(
            "{} record versions at {} site(s), {} consumer client(s)",
            export.versions(),
            export.sites().len(),
            export.consumers.len()
        ),
    )
    .await?;
    let bytes = serde_json::to_vec_pretty(&export.to_json()).unwrap_or_default();
    Ok(download("subject-export.json", "application/json", bytes))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EraseForm {
    csrf: String,
    national_id: String,
    #[serde(default)]
    reason: String,
    confirmed: Option<String>,
}

impl CsrfForm for EraseForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /privacy/erase`: asks first (what would go, the reason), then erases, audited.
pub(crate) async fn post_erase(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<EraseForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    let within = reach(&operator, &state).await?;
    let id = parse_id(&operator, &form.national_id)?;
    let store = state.app.store.as_ref();
    if form.confirmed.as_deref() != Some("yes") {
        let found = subject::export(store, &id, within.as_deref(), Timestamp::now()).await?;
        let sites = found
            .sites()
            .iter()
            .map(SiteId::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        return Ok(confirmation(
            &operator,
            Confirmation {
                title: lang.t("Slette eleven?", "Erase the pupil?"),
                warning: html! {
                    (lang.t("Sentralen sletter ", "Central deletes "))
                    strong { (found.versions()) }
                    (lang.t(" versjoner av ", " versions of the records of "))
                    strong { (found.subject) }
                    (lang.t(" på ", " at "))
                    (sites)
                    (lang.t(
                        ". Det kan ikke gjøres om. En sperre hindrer at skolens neste eksport lagrer eleven igjen uten at noen ser det.",
                        ". This cannot be undone. A tombstone keeps the school's next export from storing the pupil again unseen.",
                    ))
                },
                action: "/privacy/erase",
                hidden: &[("national_id", id.as_str())],
                reason: form.reason.trim(),
                button: lang.t("Ja, slett", "Yes, erase"),
                back: "/privacy",
            },
        ));
    }
    let reason = reason_of(&operator, &form.reason)?;
    let erased = subject::erase(
        store,
        &id,
        within.as_deref(),
        &operator.user.name,
        reason,
        Timestamp::now(),
    )
    .await?;
    tracing::info!(
        operator = operator.user.name,
        versions = erased.versions,
        sites = erased.sites.len(),
        "subject erased"
    );
    Ok(see_other("/privacy"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClearForm {
    csrf: String,
    site: String,
    subject: String,
    #[serde(default)]
    reason: String,
    confirmed: Option<String>,
}

impl CsrfForm for ClearForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /privacy/tombstones/clear`: asks first with the reason, then removes the tombstone.
pub(crate) async fn post_clear(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<ClearForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    let within = reach(&operator, &state).await?;
    let Ok(site) = SiteId::new(form.site.clone()) else {
        return Err(operator.not_found());
    };
    if within.as_ref().is_some_and(|sites| !sites.contains(&site)) {
        return Err(operator.not_found());
    }
    if form.confirmed.as_deref() != Some("yes") {
        return Ok(confirmation(
            &operator,
            Confirmation {
                title: lang.t("Oppheve sperren?", "Clear the tombstone?"),
                warning: html! {
                    (lang.t(
                        "Skolens neste eksport som har med eleven, lagres igjen på ",
                        "The school's next export that carries the pupil is stored again at ",
                    ))
                    strong { (site.as_str()) } "."
                },
                action: "/privacy/tombstones/clear",
                hidden: &[("site", site.as_str()), ("subject", &form.subject)],
                reason: form.reason.trim(),
                button: lang.t("Ja, opphev", "Yes, clear it"),
                back: "/privacy",
            },
        ));
    }
    let reason = reason_of(&operator, &form.reason)?;
    let store = state.app.store.as_ref();
    if !subject::clear_tombstone(store, &site, &form.subject, &operator.user.name, reason).await? {
        return Err(operator.not_found());
    }
    Ok(see_other("/privacy"))
}

/// The refusal of a site's exit to anyone but operations.
fn operations_only(operator: &Operator) -> Result<(), PageError> {
    if operator.is_operations() {
        return Ok(());
    }
    Err(operator.forbidden(current().t(
        "Bare driften kan eksportere eller fjerne et sted.",
        "Only operations may export or purge a site.",
    )))
}

/// `GET /sites/{site}/exit`: operations only; the site's export and its purge.
pub(crate) async fn exit_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    operations_only(&operator)?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    if !state.app.store.sites().await?.contains(&site) {
        return Err(operator.not_found());
    }
    let path = escape_path(site.as_str());
    let body = html! {
        h2 { (lang.t("Eksport", "Export")) }
        p { (lang.t(
            "Stedets data i åpne formater: nåværende elever som OneRoster 1.1 CSV og elevliste, hver versjon sentralen har (JSON Lines), og et manifest med SHA-256 for hver fil, samlet i én JSON-fil.",
            "The site's data in open formats: its current roster as OneRoster 1.1 CSV and the elevliste, every version central holds (JSON Lines), and a manifest with each file's SHA-256, in one JSON file.",
        )) }
        form method="post" action={ "/sites/" (path) "/export" } {
            (operator.csrf_field())
            button type="submit" id="site-export" { (lang.t("Last ned eksporten", "Download the export")) }
        }
        h2 { (lang.t("Fjern stedet", "Purge the site")) }
        p.warn { (lang.t(
            "Sletter hver versjon av hver post på stedet, tilbakekaller enhetene og ubrukte tokens, og fjerner skolene, overføringene og nøkkelen. Det kan ikke gjøres om.",
            "Deletes every version of every record of the site, revokes its devices and unused tokens, and removes its schools, transfers and handle secret. This cannot be undone.",
        )) }
        form method="post" action={ "/sites/" (path) "/purge" } {
            (operator.csrf_field())
            p { label { (lang.t("Skriv stedets id for å bekrefte", "Type the site id to confirm")) " "
                input type="text" name="confirm" id="purge-confirm" autocomplete="off" required; } }
            p { label { (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                input type="text" name="reason" id="purge-reason" size="60"
                    maxlength=(MAX_REASON_LEN) required; } }
            button type="submit" id="site-purge" { (lang.t("Fjern stedet", "Purge the site")) }
        }
    };
    Ok(page(
        StatusCode::OK,
        &format!("{} {}", lang.t("Avslutning:", "Exit:"), site.as_str()),
        operator.nav(),
        &format!("/sites/{path}/exit"),
        body,
    ))
}

/// `POST /sites/{site}/export`: operations only; the site's export as a JSON download,
/// audited.
pub(crate) async fn post_site_export(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
    form: Result<Form<super::auth::EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    operations_only(&operator)?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    if !store.sites().await?.contains(&site) {
        return Err(operator.not_found());
    }
    let export = site_exit::export(store, &site, Timestamp::now()).await?;
    audit::record(
        store,
        &operator.user.name,
        "site_export",
        site.as_str(),
        &format!("{} files, {} versions", export.files.len(), export.versions),
    )
    .await?;
    let bytes = serde_json::to_vec_pretty(&export.to_json()).unwrap_or_default();
    Ok(download(
        &format!("site-export-{}.json", escape_path(site.as_str())),
        "application/json",
        bytes,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PurgeForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    reason: String,
}

impl CsrfForm for PurgeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /sites/{site}/purge`: operations only, with the site id typed and a reason.
pub(crate) async fn post_site_purge(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
    form: Result<Form<PurgeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    operations_only(&operator)?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    if !store.sites().await?.contains(&site) {
        return Err(operator.not_found());
    }
    if form.confirm.trim() != site.as_str() {
        return Err(operator.forbidden(lang.t(
            "Stedets id ble ikke skrevet riktig; ingenting ble endret.",
            "The site id was not typed as it is; nothing was changed.",
        )));
    }
    let reason = reason_of(&operator, &form.reason)?;
    let purged = site_exit::purge(store, &site, &operator.user.name, reason).await?;
    tracing::info!(%site, records = purged.records, operator = operator.user.name, "site purged");
    Ok(see_other("/fleet"))
}
