//! The operator and read endpoints (docs/API.md, "Operator and read endpoints"), served as
//! plain HTTP on the loopback listener of [`crate::server`].
//!
//! They are the other end of the data flow: what the ingest stored is read back here (the
//! current roster, the roster at a past time, counts), and operators look at the fleet and
//! queue commands that [`crate::ingest`] hands out with the next heartbeat. They are also the
//! start of a device's life: `skolebro-provision stick` registers the stick's enrollment
//! token here (only its SHA-256), and operators list and revoke tokens and devices.
//! Operations also create and revoke the consumers' OAuth2 clients here
//! (`crate::consumer_auth`) and download a county's elevliste (`crate::elevliste_export`),
//! frozen at a transfer window's deadline once it has passed (`crate::windows`).
//! Releases are registered, uploaded and rolled out here too (`release.rs`).
//! There is no authentication yet, which is why the listener belongs on loopback behind a
//! proxy. The roster answers carry personal data by design; nothing of it is logged.
//!
//! Every action that changes something writes a line to the audit log first (the same log
//! the web interface writes and shows, as [`API_ACTOR`]) and is refused if it cannot be
//! written. Lines name ids and outcomes, never a token, a secret or a hash of one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use skolebro_protocol::{DeviceId, SiteId};

use crate::consumer_auth::{get_clients, post_client, post_revoke_client};
use crate::elevliste_export::get_elevliste;
use crate::fleet::Command;
use crate::ingest::store_failure;
use crate::release;
use crate::reply;
use crate::server::AppState;
use crate::store::{
    token_id, NewToken, StoreError, Timestamp, TokenRecord, MAX_ENROLLABLE_SITE_LEN,
};
use crate::windows;

/// Longest school name a token may carry: names are for people's lists, not documents.
const MAX_SITE_NAME_LEN: usize = 256;

/// Largest operator request body: a command is a few dozen bytes.
const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;

/// Who the audit log names for the operator API's actions. The listener has no accounts,
/// and the server attaches no peer address to its requests (it is meant for loopback), so
/// the line says which door was used; the host's own access control says who stood there.
pub(crate) const API_ACTOR: &str = "operator-api";

/// Writes the audit line of an operator API action before the action, or gives the
/// store-failure answer that refuses it: an action without its line must not happen.
pub(crate) async fn audit_api(
    state: &AppState,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), Response> {
    crate::ui::audit(state.store.as_ref(), API_ACTOR, action, target, detail)
        .await
        .map_err(|error| store_failure(&error))
}

/// The operator listener's routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/sites/{site}/roster", get(get_roster))
        .route("/v1/sites/{site}/counts", get(get_counts))
        .route("/admin/devices", get(get_devices))
        .route("/admin/devices/{device}/commands", post(post_command))
        .route("/admin/devices/{device}/revoke", post(post_revoke_device))
        .route("/admin/tokens", get(get_tokens).post(post_token))
        .route("/admin/tokens/{id}/revoke", post(post_revoke_token))
        .route(
            "/admin/releases",
            get(release::get_releases)
                .post(release::post_release)
                .layer(DefaultBodyLimit::max(
                    skolebro_protocol::release::MAX_MANIFEST_BYTES,
                )),
        )
        .route(
            "/admin/releases/{id}/artifact",
            // Streamed to disk and bounded by the manifest's size, not held in memory.
            put(release::put_artifact).layer(DefaultBodyLimit::disable()),
        )
        .route("/admin/releases/{id}/rollout", post(release::post_rollout))
        .route("/admin/releases/{id}/pause", post(release::post_pause))
        .route("/admin/releases/{id}/resume", post(release::post_resume))
        .route("/admin/clients", get(get_clients).post(post_client))
        .route("/admin/clients/{id}/revoke", post(post_revoke_client))
        .route("/admin/exports/elevliste", get(get_elevliste))
        .route(
            "/admin/windows",
            get(windows::get_windows).post(windows::post_window),
        )
        .fallback(reply::not_found)
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterQuery {
    /// Unix milliseconds; absent for the current roster.
    as_of: Option<i64>,
}

/// The site from the path, if it is a valid id *and* central knows it (it has a secret).
/// An unknown site is 404, not an empty roster: a mistyped site must not read as "every
/// student left".
async fn known_site(state: &AppState, site: &str) -> Result<SiteId, Response> {
    let Ok(site) = SiteId::new(site) else {
        return Err(reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_site",
            "a site id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ));
    };
    match state.store.site_secret(&site).await {
        Ok(Some(_)) => Ok(site),
        Ok(None) => Err(reply::error(
            StatusCode::NOT_FOUND,
            "unknown_site",
            format!("central knows no site {site}"),
        )),
        Err(error) => Err(store_failure(&error)),
    }
}

async fn get_roster(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
    query: Result<Query<RosterQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the only parameter is as_of, in Unix milliseconds",
        );
    };
    let site = match known_site(&state, &site).await {
        Ok(site) => site,
        Err(response) => return response,
    };
    let roster = match query.as_of {
        None => state.store.current_roster(&site).await,
        Some(at) => state.store.roster_as_of(&site, Timestamp(at)).await,
    };
    match roster {
        Ok(roster) => {
            tracing::debug!(%site, as_of = ?query.as_of, students = roster.students.len(), "roster read");
            Json(roster).into_response()
        }
        Err(error) => store_failure(&error),
    }
}

async fn get_counts(State(state): State<Arc<AppState>>, Path(site): Path<String>) -> Response {
    let site = match known_site(&state, &site).await {
        Ok(site) => site,
        Err(response) => return response,
    };
    match state.store.counts(&site).await {
        Ok(counts) => Json(counts).into_response(),
        Err(error) => store_failure(&error),
    }
}

/// Every registered device (from the store, so the list survives restarts) with its site,
/// revocation and chain head, and what central has heard from it since it started.
async fn get_devices(State(state): State<Arc<AppState>>) -> Response {
    let registered = match state.store.list_devices().await {
        Ok(registered) => registered,
        Err(error) => return store_failure(&error),
    };
    let mut activities: HashMap<_, _> = state.fleet.snapshot().into_iter().collect();
    let mut devices = Vec::with_capacity(registered.len());
    for (device, record) in registered {
        let head = match state.store.chain_head(&device).await {
            Ok(head) => head,
            Err(error) => return store_failure(&error),
        };
        let activity = activities.remove(&device).unwrap_or_default();
        devices.push(json!({
            "device": device,
            "site": record.site,
            "revoked": record.revoked,
            "chain_head": {"next_seq": head.next_seq.0, "prev": hex::encode(head.prev)},
            "last_heartbeat": activity.last_heartbeat,
            "last_heartbeat_unix_ms": activity.last_heartbeat_at.map(Timestamp::unix_millis),
            "last_batch_seq": activity.last_batch_seq.map(|seq| seq.0),
            "last_batch_unix_ms": activity.last_batch_at.map(Timestamp::unix_millis),
            "queued_commands": activity.queued_commands,
        }));
    }
    Json(json!({"devices": devices})).into_response()
}

async fn post_command(
    State(state): State<Arc<AppState>>,
    Path(device): Path<String>,
    command: Result<Json<Command>, JsonRejection>,
) -> Response {
    let Ok(device) = DeviceId::new(device) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            "a device id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        );
    };
    let command = match command {
        Ok(Json(command)) if command.is_valid() => command,
        _ => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "invalid_command",
                "expected {\"type\": \"resync\"}, or release / reject with a held_id",
            )
        }
    };
    match state.store.device(&device).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return reply::error(
                StatusCode::NOT_FOUND,
                "unknown_device",
                format!("device {device} is not registered"),
            )
        }
        Err(error) => return store_failure(&error),
    }
    let (action, detail) = match &command {
        Command::Resync => ("resync", "a full snapshot asked for".to_owned()),
        Command::Release { held_id } => ("release", format!("held delta {held_id}")),
        Command::Reject { held_id } => ("reject", format!("held delta {held_id}")),
    };
    if let Err(response) = audit_api(&state, action, device.as_str(), &detail).await {
        return response;
    }
    match state.fleet.queue(&device, command) {
        Ok(queued) => {
            tracing::info!(%device, queued, "command queued");
            (StatusCode::ACCEPTED, Json(json!({"queued": queued}))).into_response()
        }
        Err(full) => reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            full.to_string(),
        ),
    }
}

/// `POST /admin/devices/{device}/revoke`: the device's connections are refused from its next
/// one on (and its batches and heartbeats at once, on a connection already open).
async fn post_revoke_device(
    State(state): State<Arc<AppState>>,
    Path(device): Path<String>,
) -> Response {
    let Ok(device) = DeviceId::new(device) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            "a device id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        );
    };
    let unknown = || {
        reply::error(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("device {device} is not registered"),
        )
    };
    match state.store.device(&device).await {
        Ok(Some(_)) => {}
        Ok(None) => return unknown(),
        Err(error) => return store_failure(&error),
    }
    if let Err(response) = audit_api(&state, "revoke_device", device.as_str(), "revoked").await {
        return response;
    }
    match state.store.revoke_device(&device).await {
        Ok(()) => {
            tracing::info!(%device, "device revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(StoreError::UnknownDevice(_)) => unknown(),
        Err(error) => store_failure(&error),
    }
}

/// A token to register, as `skolebro-provision stick` posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// SHA-256 of the token's text, 64 hex characters.
    token_sha256: String,
    site: String,
    site_name: String,
    expires_unix: u64,
}

/// `POST /admin/tokens`: registers a stick's enrollment token by its hash.
async fn post_token(
    State(state): State<Arc<AppState>>,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return invalid_token(
            "expected {\"token_sha256\", \"site\", \"site_name\", \"expires_unix\"}",
        );
    };
    let Some(token_sha256) = hex::decode(&body.token_sha256)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
    else {
        return invalid_token("token_sha256 must be 64 hex characters");
    };
    let site = match SiteId::new(body.site) {
        Ok(site) if site.as_str().len() <= MAX_ENROLLABLE_SITE_LEN => site,
        _ => {
            return invalid_token(format!(
                "a site id is 1 to {MAX_ENROLLABLE_SITE_LEN} characters of A-Z, a-z, 0-9, \
                 '.', '_' or '-'"
            ))
        }
    };
    if body.site_name.chars().count() > MAX_SITE_NAME_LEN {
        return invalid_token(format!(
            "site_name is at most {MAX_SITE_NAME_LEN} characters"
        ));
    }
    let Some(expires) = body
        .expires_unix
        .checked_mul(1000)
        .and_then(|ms| i64::try_from(ms).ok())
    else {
        return invalid_token("expires_unix is out of range");
    };
    let token = NewToken {
        token_sha256,
        site,
        site_name: body.site_name,
        created: Timestamp::now(),
        expires: Timestamp(expires),
    };
    let id = token_id(&token_sha256);
    let detail = format!("site {}, expires {}", token.site, token.expires);
    if let Err(response) = audit_api(&state, "create_token", &id, &detail).await {
        return response;
    }
    match state.store.create_token(&token).await {
        Ok(()) => {
            tracing::info!(token = id, site = %token.site, expires = %token.expires, "enrollment token registered");
            (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
        }
        Err(StoreError::TokenExists(_)) => reply::error(
            StatusCode::CONFLICT,
            "token_exists",
            format!("a token with id {id} is already registered"),
        ),
        Err(error) => store_failure(&error),
    }
}

fn invalid_token(detail: impl Into<String>) -> Response {
    reply::error(StatusCode::BAD_REQUEST, "invalid_token", detail)
}

/// `GET /admin/tokens`: every token, newest first, without its hash.
async fn get_tokens(State(state): State<Arc<AppState>>) -> Response {
    match state.store.list_tokens().await {
        Ok(tokens) => Json(tokens.iter().map(token_json).collect::<Vec<_>>()).into_response(),
        Err(error) => store_failure(&error),
    }
}

fn token_json(token: &TokenRecord) -> serde_json::Value {
    let seconds = |at: Timestamp| at.unix_millis().div_euclid(1000);
    json!({
        "id": token.id,
        "site": token.site,
        "site_name": token.site_name,
        "created_unix": seconds(token.created),
        "expires_unix": seconds(token.expires),
        "used_by": token.used_by,
        "used_unix": token.used_at.map(seconds),
        "revoked": token.revoked,
    })
}

/// `POST /admin/tokens/{id}/revoke`: a lost stick's token is refused from now on.
async fn post_revoke_token(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let unknown = || {
        reply::error(
            StatusCode::NOT_FOUND,
            "unknown_token",
            "no enrollment token has this id",
        )
    };
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return unknown();
    }
    if let Err(response) = audit_api(&state, "revoke_token", &id, "revoked").await {
        return response;
    }
    match state.store.revoke_token(&id).await {
        Ok(()) => {
            tracing::info!(token = id, "enrollment token revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(StoreError::TokenUnknown) => unknown(),
        Err(error) => store_failure(&error),
    }
}
