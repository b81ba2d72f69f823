//! The operator and read endpoints (docs/API.md, "Operator and read endpoints"), served as
//! plain HTTP on the loopback listener of [`crate::server`].
//!
//! They are the other end of the data flow: what the ingest stored is read back here (the
//! current roster, the roster at a past time, counts), and operators look at the fleet and
//! queue commands that [`crate::ingest`] hands out with the next heartbeat. There is no
//! authentication yet, which is why the listener belongs on loopback behind a proxy. The
//! roster answers carry personal data by design; nothing of it is logged.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use skolebro_protocol::{DeviceId, SiteId};

use crate::fleet::Command;
use crate::ingest::store_failure;
use crate::reply;
use crate::server::AppState;
use crate::store::Timestamp;

/// Largest operator request body: a command is a few dozen bytes.
const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;

/// The operator listener's routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/sites/{site}/roster", get(get_roster))
        .route("/v1/sites/{site}/counts", get(get_counts))
        .route("/admin/devices", get(get_devices))
        .route("/admin/devices/{device}/commands", post(post_command))
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

/// Every device central has heard from (or queued a command for) since it started, with its
/// registration and chain head from the store.
async fn get_devices(State(state): State<Arc<AppState>>) -> Response {
    let mut devices = Vec::new();
    for (device, activity) in state.fleet.snapshot() {
        let record = match state.store.device(&device).await {
            Ok(record) => record,
            Err(error) => return store_failure(&error),
        };
        let head = match state.store.chain_head(&device).await {
            Ok(head) => head,
            Err(error) => return store_failure(&error),
        };
        devices.push(json!({
            "device": device,
            "site": record.as_ref().map(|record| record.site.clone()),
            "revoked": record.as_ref().map(|record| record.revoked),
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
