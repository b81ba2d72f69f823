//! `GET /admin/devices`, `POST /admin/devices/{device}/commands` and
//! `POST /admin/devices/{device}/revoke`: the fleet as the store knows it (devices, chain
//! heads, last heartbeats and commands), and the operators' commands and revocations.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use skolebro_protocol::DeviceId;

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::state::AppState;
use crate::store::{StoreError, Timestamp};
use skolebro_protocol::api::Command;

/// Every registered device (from the store, so the list survives restarts) with its site,
/// revocation and chain head, its last heartbeat and batch, and its commands: those waiting
/// and the last few delivered, with their delivery state.
pub(crate) async fn get_devices(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let registered = state.store.list_devices().await?;
    let mut activities = state.store.fleet_activity().await?;
    let mut devices = Vec::with_capacity(registered.len());
    for (device, record) in registered {
        let head = state.store.chain_head(&device).await?;
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
            "queued_commands": activity.waiting(),
            "commands": activity.commands.iter().map(|queued| json!({
                "command": queued.command,
                "queued_unix_ms": queued.queued_at.unix_millis(),
                "delivered_unix_ms": queued.delivered_at.map(Timestamp::unix_millis),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"devices": devices})).into_response())
}

fn device_id(device: String) -> Result<DeviceId, ApiError> {
    DeviceId::new(device).map_err(|_| {
        ApiError::bad_request(
            "invalid_device",
            "a device id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        )
    })
}

fn unknown_device(device: &DeviceId) -> ApiError {
    ApiError::not_found(
        "unknown_device",
        format!("device {device} is not registered"),
    )
}

pub(crate) async fn post_command(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(device): Path<String>,
    command: Result<Json<Command>, JsonRejection>,
) -> Result<Response, ApiError> {
    let device = device_id(device)?;
    let command = match command {
        Ok(Json(command)) if command.is_valid() => command,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_command",
                "expected {\"type\": \"resync\"}, or release / reject with a held_id",
            ))
        }
    };
    if state.store.device(&device).await?.is_none() {
        return Err(unknown_device(&device));
    }
    let (action, detail) = match &command {
        Command::Resync => ("resync", "a full snapshot asked for".to_owned()),
        Command::Release { held_id } => ("release", format!("held delta {held_id}")),
        Command::Reject { held_id } => ("reject", format!("held delta {held_id}")),
        Command::DropShare { settings } => (
            "drop_share",
            format!(
                "drop share {} for account {}, size cap {} MiB{}",
                if settings.enabled { "on" } else { "off" },
                settings.account,
                settings.size_cap_mib,
                if settings.password_nt_hash.is_some() {
                    ", password changed"
                } else {
                    ""
                }
            ),
        ),
    };
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        action,
        device.as_str(),
        &detail,
    )
    .await?;
    match state
        .store
        .queue_command(&device, &command, Timestamp::now())
        .await
    {
        Ok(queued) => {
            tracing::info!(%device, queued, "command queued");
            Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))).into_response())
        }
        Err(full @ StoreError::CommandQueueFull(_)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            full.to_string(),
        )),
        Err(error) => Err(error.into()),
    }
}

/// `POST /admin/devices/{device}/revoke`: the device's connections are refused from its next
/// one on (and its batches and heartbeats at once, on a connection already open).
pub(crate) async fn post_revoke_device(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(device): Path<String>,
) -> Result<Response, ApiError> {
    let device = device_id(device)?;
    if state.store.device(&device).await?.is_none() {
        return Err(unknown_device(&device));
    }
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "revoke_device",
        device.as_str(),
        "revoked",
    )
    .await?;
    match state.store.revoke_device(&device).await {
        Ok(()) => {
            tracing::info!(%device, "device revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(StoreError::UnknownDevice(_)) => Err(unknown_device(&device)),
        Err(error) => Err(error.into()),
    }
}
