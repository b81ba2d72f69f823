//! `POST /admin/subjects/export`, `POST /admin/subjects/erase`, `GET
//! /admin/subjects/tombstones` and `POST /admin/subjects/tombstones/clear`: one pupil's
//! access export and erasure by national id, as `skolebro-central subject` does
//! ([`crate::subject`]). The national id travels in the body, never in the path or query,
//! so no proxy or access log keeps it; it is never logged, and audited only masked. A body
//! may name a `kommune` (four digits): the request then reaches only the sites registered
//! with a school of that kommune, as a municipality's operators see them. The export
//! carries personal data by design; nothing of it is logged.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use skolebro_protocol::{NationalId, SiteId};

use super::auth::OperatorCaller;
use crate::api::error::ApiError;
use crate::audit;
use crate::state::AppState;
use crate::store::{ConsumerScope, Timestamp};
use crate::subject;

/// The body of an export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    national_id: String,
    kommune: Option<String>,
}

/// The body of an erasure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseRequest {
    national_id: String,
    /// The national id again: the confirmation a typed command asks for.
    confirm: String,
    /// Why, for the audit log and the tombstone.
    reason: String,
    kommune: Option<String>,
}

/// The body of clearing a tombstone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearRequest {
    national_id: String,
    site: String,
    reason: String,
}

fn parse_id(text: &str) -> Result<NationalId, ApiError> {
    NationalId::parse(text).map_err(|error| {
        ApiError::bad_request(
            "invalid_national_id",
            format!("national_id is not a national id: {error}"),
        )
    })
}

fn parse_reason(text: &str) -> Result<&str, ApiError> {
    let reason = text.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason says why, in 1 to 1000 characters",
        ));
    }
    Ok(reason)
}

/// The sites a request with `kommune` reaches: `None` (every site) without one.
async fn scope(state: &AppState, kommune: Option<&str>) -> Result<Option<Vec<SiteId>>, ApiError> {
    let Some(kommune) = kommune else {
        return Ok(None);
    };
    if !ConsumerScope::Kommune(kommune.to_owned()).is_valid() {
        return Err(ApiError::bad_request(
            "invalid_kommune",
            "kommune is a kommunenummer, four digits",
        ));
    }
    Ok(Some(
        subject::kommune_sites(state.store.as_ref(), kommune).await?,
    ))
}

fn invalid_body(shape: &str) -> ApiError {
    ApiError::bad_request("invalid_body", format!("the body is {shape}"))
}

/// `POST /admin/subjects/export` with `{"national_id", "kommune"?}`: the export's JSON.
pub(crate) async fn post_export(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<ExportRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Json(request)) = body else {
        return Err(invalid_body(
            "{\"national_id\": \"…\", \"kommune\": \"…\" (optional)}",
        ));
    };
    let id = parse_id(&request.national_id)?;
    let within = scope(&state, request.kommune.as_deref()).await?;
    let store = state.store.as_ref();
    let export = subject::export(store, &id, within.as_deref(), Timestamp::now()).await?;
    audit::record(
        store,
        &caller.actor,
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
    Ok(Json(export.to_json()).into_response())
}

/// `POST /admin/subjects/erase` with `{"national_id", "confirm", "reason", "kommune"?}`:
/// `{"subject": masked, "versions", "sites"}`.
pub(crate) async fn post_erase(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<EraseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Json(request)) = body else {
        return Err(invalid_body(
            "{\"national_id\", \"confirm\" (the national id again), \"reason\", \"kommune\" (optional)}",
        ));
    };
    let id = parse_id(&request.national_id)?;
    if NationalId::parse(&request.confirm).ok().as_ref() != Some(&id) {
        return Err(ApiError::bad_request(
            "not_confirmed",
            "confirm must repeat the national id; nothing was changed",
        ));
    }
    let reason = parse_reason(&request.reason)?;
    let within = scope(&state, request.kommune.as_deref()).await?;
    let erased = subject::erase(
        state.store.as_ref(),
        &id,
        within.as_deref(),
        &caller.actor,
        reason,
        Timestamp::now(),
    )
    .await?;
    tracing::info!(
        versions = erased.versions,
        sites = erased.sites.len(),
        "subject erased"
    );
    Ok(Json(json!({
        "subject": id.masked(),
        "versions": erased.versions,
        "sites": erased.sites.iter().map(SiteId::as_str).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /admin/subjects/tombstones`: `{"tombstones": [{"site", "erased_at", "erased_by",
/// "reason", "returned", "returned_at"}]}`, newest first, without the pupil.
pub(crate) async fn get_tombstones(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let tombstones = state.store.tombstones().await?;
    Ok(Json(json!({
        "tombstones": tombstones.iter().map(subject::tombstone_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST /admin/subjects/tombstones/clear` with `{"national_id", "site", "reason"}`:
/// `{"cleared": true}`, or 404 `no_tombstone`.
pub(crate) async fn post_clear(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<ClearRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Json(request)) = body else {
        return Err(invalid_body("{\"national_id\", \"site\", \"reason\"}"));
    };
    let id = parse_id(&request.national_id)?;
    let site = SiteId::new(request.site)
        .map_err(|_| ApiError::bad_request("invalid_site", "site is not a site id"))?;
    let reason = parse_reason(&request.reason)?;
    let store = state.store.as_ref();
    let hash = store.subject_hash(id.as_str());
    if !subject::clear_tombstone(store, &site, &hash, &caller.actor, reason).await? {
        return Err(ApiError::not_found(
            "no_tombstone",
            format!("{} has no tombstone at site {site}", id.masked()),
        ));
    }
    Ok(Json(json!({"cleared": true})).into_response())
}
