//! `GET /admin/sites/{site}/export` and `POST /admin/sites/{site}/purge`: a leaving school's
//! data in open formats and its removal, as `skolebro-central site export|purge` do
//! ([`crate::site_exit`]). The export answers the files inline (all are text) with the
//! manifest; the purge needs the site id repeated in `confirm` and a `reason`, and is
//! audited first. The export carries personal data by design; nothing of it is logged.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::OperatorCaller;
use super::roster::known_site;
use crate::api::error::ApiError;
use crate::audit;
use crate::site_exit;
use crate::state::AppState;
use crate::store::Timestamp;

/// `GET /admin/sites/{site}/export`: `{"manifest": {…}, "files": [{"name", "sha256",
/// "text"}]}`, the same files `site export` writes.
pub(crate) async fn get_export(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(site): Path<String>,
) -> Result<Response, ApiError> {
    let site = known_site(&state, &site).await?;
    let export = site_exit::export(state.store.as_ref(), &site, Timestamp::now()).await?;
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "site_export",
        site.as_str(),
        &format!("{} files, {} versions", export.files.len(), export.versions),
    )
    .await?;
    Ok(Json(export.to_json()).into_response())
}

/// The body of a purge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeRequest {
    /// The site id again: the confirmation a typed command asks for.
    confirm: String,
    /// Why, for the audit log.
    reason: String,
}

/// `POST /admin/sites/{site}/purge` with `{"confirm": "<site>", "reason": "…"}`: what went.
pub(crate) async fn post_purge(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(site): Path<String>,
    body: Result<Json<PurgeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Json(request)) = body else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body is {\"confirm\": \"<site id>\", \"reason\": \"<why>\"}",
        ));
    };
    let site = known_site(&state, &site).await?;
    if request.confirm != site.as_str() {
        return Err(ApiError::bad_request(
            "not_confirmed",
            format!("confirm must repeat the site id {site}; nothing was changed"),
        ));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason says why, in 1 to 1000 characters",
        ));
    }
    let purged = site_exit::purge(state.store.as_ref(), &site, &caller.actor, reason).await?;
    tracing::info!(%site, records = purged.records, "site purged");
    Ok(Json(json!({
        "site": site.as_str(),
        "records": purged.records,
        "devices_revoked": purged.forgotten.devices_revoked,
        "tokens_revoked": purged.forgotten.tokens_revoked,
        "schools": purged.forgotten.schools,
        "transfers": purged.forgotten.transfers,
    }))
    .into_response())
}
