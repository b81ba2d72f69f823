//! `GET /reads`: the consumer access log (`crate::access_log`) for operators: who read
//! personal data through the consumer API, when, with which filter, how many records and
//! from which sites, newest first, filterable by client (`?client=`) and by site (`?site=`),
//! paged by `?before=` (the last row's number). A municipality operator sees only the reads
//! touching sites with schools in its kommune (the same [`View`] as the other pages), and of
//! each read only those sites; a site outside the view answers as one that does not exist.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use skolebro_protocol::SiteId;

use super::auth::{Operator, View};
use super::error::PageError;
use super::html::{escape_path, page};
use super::text::current;
use super::text::when;
use crate::state::UiState;
use crate::store::{ReadFilter, Timestamp};

/// Reads listed per page.
const READS_SHOWN: u32 = 100;

/// The page's query: all optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadsQuery {
    client: Option<String>,
    site: Option<String>,
    before: Option<i64>,
}

/// A query parameter for a link: percent-encoded.
fn param(name: &str, value: &str) -> String {
    format!("{name}={}", escape_path(value))
}

/// `GET /reads`: the access log rows this operator may see.
pub(crate) async fn reads_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    query: Result<Query<ReadsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Ok(Query(query)) = query else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let site = match query.site.as_deref().filter(|site| !site.is_empty()) {
        Some(site) => match SiteId::new(site) {
            Ok(site) if view.sees(&site) => Some(site),
            _ => return Err(operator.not_found()),
        },
        None => None,
    };
    let client = query.client.filter(|client| !client.is_empty());
    let sites = match (&site, &view) {
        (Some(site), _) => Some(vec![site.clone()]),
        (None, View::All) => None,
        (None, View::Only(sites)) => Some(sites.iter().cloned().collect()),
    };
    let filter = ReadFilter {
        client: client.clone(),
        sites,
    };
    let reads = store.reads(&filter, query.before, READS_SHOWN).await?;
    let now = Timestamp::now();

    let lang = current();
    let sees = |site: &&SiteId| view.sees(site);
    let next = (reads.len() == READS_SHOWN as usize).then(|| {
        let mut next = Vec::new();
        if let Some(client) = &client {
            next.push(param("client", client));
        }
        if let Some(site) = &site {
            next.push(param("site", site.as_str()));
        }
        if let Some(last) = reads.last() {
            next.push(format!("before={}", last.id));
        }
        format!("/reads?{}", next.join("&"))
    });
    let body = html! {
        p.note { (lang.t(
            "Hvert svar fra mottaker-API-et med personopplysninger (brukere, demografi, \
             gruppemedlemskap) logges før det sendes. Fødselsnumre i filtre er maskert.",
            "Every consumer API answer carrying personal data (users, demographics, \
             enrollments) is logged before it is sent. National ids in filters are masked.",
        )) }
        @if client.is_some() || site.is_some() {
            p {
                (lang.t("Oppslag av ", "Reads of "))
                @if let Some(client) = &client {
                    (lang.t("mottaker ", "client ")) code { (client) }
                }
                @if client.is_some() && site.is_some() { (lang.t(" ved ", " at ")) }
                @if let Some(site) = &site {
                    (lang.t("lokasjon ", "site ")) a href={ "/sites/" (escape_path(site.as_str())) } { (site.as_str()) }
                }
                ". " a href="/reads" { (lang.t("Alle oppslag", "All reads")) } "."
            }
        }
        @if reads.is_empty() {
            p { (lang.t("Ingen oppslag er logget.", "No reads logged.")) }
        } @else {
            table #reads tabindex="0" {
                caption { (lang.t("Nyeste oppslag først", "Newest reads first")) }
                tr {
                    th scope="col" { (lang.t("Når", "When")) }
                    th scope="col" { (lang.t("Mottaker", "Client")) }
                    th scope="col" { (lang.t("Endepunkt", "Endpoint")) }
                    th scope="col" { "Filter" }
                    th scope="col" { (lang.t("Poster", "Records")) }
                    th scope="col" { (lang.t("Lokasjoner", "Sites")) }
                }
                @for read in &reads {
                    tr {
                        td { (when(Some(read.at), now)) }
                        td {
                            a href={ "/reads?" (param("client", &read.client)) } { (read.client_name) }
                            " " span.note { (read.client) }
                        }
                        td { code { (read.endpoint) } }
                        td { @if let Some(filter) = &read.filter { code { (filter) } } }
                        td { (read.records) }
                        td {
                            @for (i, site) in read.sites.iter().filter(sees).enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/reads?" (param("site", site.as_str())) } { (site.as_str()) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &next {
                p { a href=(next) { (lang.t("Eldre oppslag", "Older reads")) } }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Oppslag", "Reads"),
        operator.nav(),
        "/reads",
        body,
    ))
}
