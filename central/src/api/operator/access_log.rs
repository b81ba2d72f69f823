//! `GET /admin/access-log`: the consumer access log (`crate::access_log`) for operations'
//! scripts, the JSON twin of the web interface's Reads page: newest first, optionally one
//! client's (`client=`), those touching one site (`site=`) or any site registered with a
//! school of one kommune (`kommune=`, as a municipality's operators see them), paged with
//! `before=` (the last row's `id`) and `limit=` (at most [`MAX_READS`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use skolebro_protocol::SiteId;

use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::{ConsumerScope, ReadFilter};

/// Most rows in one answer, and the number given without `limit`.
const MAX_READS: u32 = 1000;

/// The query: all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLogQuery {
    client: Option<String>,
    site: Option<String>,
    kommune: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /admin/access-log?client=&site=&kommune=&before=&limit=`: `{"reads": […]}`, newest first.
pub(crate) async fn get_access_log(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AccessLogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request("invalid_query", detail.to_owned());
    let Ok(Query(query)) = query else {
        return Err(invalid(
            "the parameters are client, site, kommune, before (a row id) and limit (1 to 1000)",
        ));
    };
    let site = match query.site.filter(|site| !site.is_empty()) {
        Some(site) => Some(SiteId::new(site).map_err(|_| invalid("site is not a site id"))?),
        None => None,
    };
    let mut sites = site.map(|site| vec![site]);
    if let Some(kommune) = query.kommune.filter(|kommune| !kommune.is_empty()) {
        if !ConsumerScope::Kommune(kommune.clone()).is_valid() {
            return Err(invalid("kommune is a kommunenummer, four digits"));
        }
        let mut in_kommune: Vec<SiteId> = state
            .store
            .registered_schools()
            .await?
            .into_iter()
            .filter(|(_, school)| school.kommunenummer == kommune)
            .map(|(site, _)| site)
            .collect();
        in_kommune.sort();
        in_kommune.dedup();
        sites = Some(match sites {
            // A site and a kommune: the site, if it lies in the kommune.
            Some(asked) => asked
                .into_iter()
                .filter(|site| in_kommune.contains(site))
                .collect(),
            None => in_kommune,
        });
    }
    let limit = query.limit.unwrap_or(MAX_READS);
    if limit == 0 || limit > MAX_READS {
        return Err(invalid("limit is 1 to 1000"));
    }
    let filter = ReadFilter {
        client: query.client.filter(|client| !client.is_empty()),
        sites,
    };
    let reads = state.store.reads(&filter, query.before, limit).await?;
    let reads: Vec<_> = reads
        .iter()
        .map(|read| {
            json!({
                "id": read.id,
                "at_unix_ms": read.at.unix_millis(),
                "client_id": read.client,
                "client_name": read.client_name,
                "endpoint": read.endpoint,
                "filter": read.filter,
                "records": read.records,
                "sites": read.sites.iter().map(|site| site.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "reads": reads })).into_response())
}
