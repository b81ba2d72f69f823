//! The audit page: the audit log newest first, filtered by actor, action and site, in pages,
//! with each action said in words rather than by its code.
//!
//! Operations only, as before: the log names every account and every site, so a
//! municipality operator gets the same "not found" as for a page that does not exist. The
//! filter is a plain GET form, kept in the paging links; the store does the filtering and
//! paging ([`crate::store::OperatorStore::audit_search`]), so a page costs the same however
//! long the log has grown. A site's lines are those whose target is the site or one of its
//! devices (a released delta, a revoked device).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use skolebro_protocol::SiteId;

use super::auth::Operator;
use super::error::PageError;
use super::html::{page, paged_link};
use super::text::{current, Lang};
use crate::state::UiState;
use crate::store::AuditFilter;

/// Audit lines listed per page.
const AUDIT_PAGE: u32 = 50;

/// The actions central writes to the audit log, with their words in bokmål and English,
/// in the order the filter offers them.
const ACTIONS: [(&str, &str, &str); 28] = [
    ("login", "Logget inn", "Signed in"),
    ("login_failed", "Mislykket innlogging", "Failed sign-in"),
    (
        "login_locked",
        "Navnet ble låst etter mislykkede innlogginger",
        "Name locked after failed sign-ins",
    ),
    ("logout", "Logget ut", "Signed out"),
    ("release", "Slapp en holdt endring", "Released a held delta"),
    (
        "reject",
        "Avviste en holdt endring",
        "Rejected a held delta",
    ),
    ("revoke_device", "Tilbakekalte en enhet", "Revoked a device"),
    (
        "create_token",
        "Laget et innmeldingstoken",
        "Created an enrollment token",
    ),
    (
        "revoke_token",
        "Tilbakekalte et innmeldingstoken",
        "Revoked an enrollment token",
    ),
    (
        "create_window",
        "Opprettet et overføringsvindu",
        "Created a transfer window",
    ),
    (
        "register_release",
        "Registrerte en utgivelse",
        "Registered a release",
    ),
    (
        "upload_artifact",
        "Lastet opp en programfil",
        "Uploaded a release artifact",
    ),
    ("set_rollout", "Endret en utrulling", "Changed a rollout"),
    (
        "pause_rollout",
        "Satte en utrulling på pause",
        "Paused a rollout",
    ),
    (
        "resume_rollout",
        "Gjenopptok en utrulling",
        "Resumed a rollout",
    ),
    (
        "create_client",
        "Opprettet en mottaker",
        "Created a consumer client",
    ),
    (
        "revoke_client",
        "Tilbakekalte en mottaker",
        "Revoked a consumer client",
    ),
    (
        "create_operator_token",
        "Laget et operatørtoken",
        "Created an operator token",
    ),
    (
        "revoke_operator_token",
        "Tilbakekalte et operatørtoken",
        "Revoked an operator token",
    ),
    (
        "register_schools",
        "Registrerte skolene til en lokasjon",
        "Registered a site's schools",
    ),
    (
        "move_school",
        "Flyttet en skole til en annen lokasjon",
        "Moved a school to another site",
    ),
    (
        "site_export",
        "Eksporterte en lokasjons data",
        "Exported a site's data",
    ),
    (
        "site_purge",
        "Ba om sletting av en lokasjon",
        "Asked to purge a site",
    ),
    (
        "site_purged",
        "Slettet en lokasjons data",
        "Purged a site's data",
    ),
    (
        "retention_run",
        "Slettet gamle data etter oppbevaringsreglene",
        "Purged old data by the retention rules",
    ),
    (
        "rotate_kek",
        "Byttet nøkkelkrypteringsnøkkelen",
        "Rotated the key-encryption key",
    ),
    (
        "rotate_dek",
        "Laget en ny postnøkkel",
        "Made a new records key",
    ),
    (
        "retire_dek",
        "Pensjonerte en postnøkkel",
        "Retired a records key",
    ),
];

/// An action in words; a code this build does not know (from a newer central sharing the
/// store) is shown as it is.
fn action_words(lang: Lang, code: &str) -> &str {
    ACTIONS
        .iter()
        .find(|(known, _, _)| *known == code)
        .map_or(code, |(_, nb, en)| lang.t(nb, en))
}

/// The audit page's query: all optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    site: Option<String>,
    page: Option<String>,
}

impl AuditQuery {
    /// A filter field as given, or `None` when left empty.
    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The link to `page` with the same filters.
    fn link(&self, page: u32) -> String {
        let filters = [
            ("actor", Self::given(&self.actor)),
            ("action", Self::given(&self.action)),
            ("site", Self::given(&self.site)),
        ];
        paged_link("/audit", &filters, page)
    }
}

/// `GET /audit`: operations only; the newest actions first, filtered and paged.
pub(crate) async fn audit_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    if !operator.is_operations() {
        return Err(operator.not_found());
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let store = state.app.store.as_ref();
    let actor = AuditQuery::given(&query.actor);
    let action = AuditQuery::given(&query.action);
    let site = AuditQuery::given(&query.site);
    let mut targets = Vec::new();
    if let Some(site) = site {
        targets.push(site.to_owned());
        if let Ok(site) = SiteId::new(site) {
            targets.extend(
                store
                    .list_devices()
                    .await?
                    .into_iter()
                    .filter(|(_, record)| record.site == site)
                    .map(|(device, _)| device.as_str().to_owned()),
            );
        }
    }
    let filter = AuditFilter {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        targets,
    };
    let page_no = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, u32::MAX / AUDIT_PAGE);
    let mut entries = store
        .audit_search(&filter, (page_no - 1) * AUDIT_PAGE, AUDIT_PAGE + 1)
        .await?;
    let more = entries.len() > AUDIT_PAGE as usize;
    entries.truncate(AUDIT_PAGE as usize);
    let filtered = actor.is_some() || action.is_some() || site.is_some();
    let body = html! {
        form method="get" action="/audit" #audit-filter {
            label { (lang.t("Hvem", "Who")) " "
                input type="text" name="actor" id="actor" size="16" value=[actor]; } " "
            label { (lang.t("Handling", "Action")) " "
                select name="action" id="action" {
                    option value="" { (lang.t("alle", "all")) }
                    @for (code, nb, en) in ACTIONS {
                        option value=(code) selected[action == Some(code)] { (lang.t(nb, en)) }
                    }
                }
            } " "
            label { (lang.t("Lokasjon", "Site")) " "
                input type="text" name="site" id="site" size="16" value=[site]; } " "
            button type="submit" { (lang.t("Vis", "Show")) }
            @if filtered {
                " " a href="/audit" { (lang.t("Vis alt", "Show everything")) }
            }
        }
        @if entries.is_empty() {
            p #no-audit { (lang.t("Ingen handlinger passer til filteret.", "No action matches the filter.")) }
        } @else {
            table #audit tabindex="0" {
                caption { (lang.t("Nyeste handlinger først", "Newest actions first")) }
                tr {
                    th scope="col" { (lang.t("Når", "When")) }
                    th scope="col" { (lang.t("Hvem", "Who")) }
                    th scope="col" { (lang.t("Handling", "Action")) }
                    th scope="col" { (lang.t("På", "On")) }
                    th scope="col" { (lang.t("Detaljer", "Detail")) }
                }
                @for entry in &entries {
                    tr {
                        td { (lang.time(entry.at)) }
                        td { (entry.actor) }
                        td data-action=(entry.action) { (action_words(lang, &entry.action)) }
                        td { (entry.target) }
                        td { (entry.detail) }
                    }
                }
            }
        }
        @if page_no > 1 || more {
            p #pages {
                (lang.t("Side ", "Page ")) (page_no) ". "
                @if page_no > 1 {
                    a href=(query.link(page_no - 1)) rel="prev" { (lang.t("Nyere", "Newer")) } " "
                }
                @if more {
                    a href=(query.link(page_no + 1)) rel="next" { (lang.t("Eldre", "Older")) }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Revisjonslogg", "Audit log"),
        operator.nav(),
        "/audit",
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_words_and_unknown_codes_as_they_are() {
        assert_eq!(action_words(Lang::Nb, "release"), "Slapp en holdt endring");
        assert_eq!(
            action_words(Lang::English, "create_window"),
            "Created a transfer window"
        );
        assert_eq!(
            action_words(Lang::English, "from_the_future"),
            "from_the_future"
        );
        let mut codes: Vec<_> = ACTIONS.iter().map(|(code, _, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ACTIONS.len(), "each action once");
    }

    #[test]
    fn paging_links_keep_the_filter_and_encode_it() {
        let query = AuditQuery {
            actor: Some("kari nordmann".to_owned()),
            action: Some("release".to_owned()),
            site: Some(" ".to_owned()),
            page: Some("3".to_owned()),
        };
        assert_eq!(
            query.link(4),
            "/audit?actor=kari%20nordmann&action=release&page=4"
        );
    }
}
