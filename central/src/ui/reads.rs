//! `GET /reads`: the consumer access log (`crate::access_log`) for operators: who read
//! personal data through the consumer API, when, with which filter, how many records and
//! from which sites, newest first, filterable by client (`?client=`) and by site (`?site=`),
//! paged by `?before=` (the last row's number). A municipality operator sees only the reads
//! touching sites with schools in its kommune (the same [`View`] as the other pages), and of
//! each read only those sites; a site outside the view answers as one that does not exist.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use skolebro_protocol::SiteId;

use super::auth::{Operator, View};
use super::error::PageError;
use super::html::{escape, escape_path, page};
use super::pages::when;
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

    let mut body = String::from(
        "<p class=\"note\">Every consumer API answer carrying personal data (users, \
         demographics, enrollments) is logged before it is sent. National ids in filters are \
         masked.</p>",
    );
    let mut shown = Vec::new();
    if let Some(client) = &client {
        shown.push(format!("client <code>{}</code>", escape(client)));
    }
    if let Some(site) = &site {
        shown.push(format!(
            "site <a href=\"/sites/{}\">{}</a>",
            escape_path(site.as_str()),
            escape(site.as_str())
        ));
    }
    if !shown.is_empty() {
        let _ = write!(
            body,
            "<p>Reads of {}. <a href=\"/reads\">All reads</a>.</p>",
            shown.join(" at ")
        );
    }
    if reads.is_empty() {
        body.push_str("<p>No reads logged.</p>");
    } else {
        body.push_str(
            "<table id=\"reads\"><tr><th>When</th><th>Client</th><th>Endpoint</th>\
             <th>Filter</th><th>Records</th><th>Sites</th></tr>",
        );
        for read in &reads {
            let sites: Vec<String> = read
                .sites
                .iter()
                .filter(|site| view.sees(site))
                .map(|site| {
                    format!(
                        "<a href=\"/reads?{}\">{}</a>",
                        param("site", site.as_str()),
                        escape(site.as_str())
                    )
                })
                .collect();
            let _ =
                write!(
                body,
                "<tr><td>{}</td><td><a href=\"/reads?{}\">{}</a> <span class=\"note\">{}</span>\
                 </td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(Some(read.at), now),
                param("client", &read.client),
                escape(&read.client_name),
                escape(&read.client),
                escape(&read.endpoint),
                read.filter
                    .as_deref()
                    .map_or_else(String::new, |filter| format!("<code>{}</code>", escape(filter))),
                read.records,
                sites.join(", "),
            );
        }
        body.push_str("</table>");
        if reads.len() == READS_SHOWN as usize {
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
            let _ = write!(
                body,
                "<p><a href=\"/reads?{}\">Older reads</a></p>",
                next.join("&amp;")
            );
        }
    }
    Ok(page(StatusCode::OK, "Reads", &operator.nav(), &body))
}
