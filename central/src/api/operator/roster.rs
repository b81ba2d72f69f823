//! `GET /v1/sites/{site}/roster` and `GET /v1/sites/{site}/counts`: what the ingest stored,
//! read back, now or as of a past time (the records are bitemporal).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use skolebro_protocol::SiteId;

use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::Timestamp;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RosterQuery {
    /// Unix milliseconds; absent for the current roster.
    as_of: Option<i64>,
}

/// The site from the path, if it is a valid id *and* central knows it (it has a secret).
/// An unknown site is 404, not an empty roster: a mistyped site must not read as "every
/// student left".
pub(super) async fn known_site(state: &AppState, site: &str) -> Result<SiteId, ApiError> {
    let Ok(site) = SiteId::new(site) else {
        return Err(ApiError::bad_request(
            "invalid_site",
            "a site id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ));
    };
    match state.store.site_secret(&site).await? {
        Some(_) => Ok(site),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_site",
            format!("central knows no site {site}"),
        )),
    }
}

pub(crate) async fn get_roster(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
    query: Result<Query<RosterQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the only parameter is as_of, in Unix milliseconds",
        ));
    };
    let site = known_site(&state, &site).await?;
    let roster = match query.as_of {
        None => state.store.current_roster(&site).await?,
        Some(at) => state.store.roster_as_of(&site, Timestamp(at)).await?,
    };
    tracing::debug!(
        %site,
        as_of = %query.as_of.map_or_else(|| "now".to_owned(), |at| at.to_string()),
        students = roster.students.len(),
        "roster read"
    );
    Ok(Json(roster).into_response())
}

pub(crate) async fn get_counts(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
) -> Result<Response, ApiError> {
    let site = known_site(&state, &site).await?;
    Ok(Json(state.store.counts(&site).await?).into_response())
}
