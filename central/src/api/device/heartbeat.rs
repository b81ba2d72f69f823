//! `POST /v1/heartbeat` (docs/API.md): a device's state goes into the store as its last
//! heartbeat (`FleetStore::record_heartbeat`, which hands over the commands queued for it in
//! the same transaction), its update step into the release log, and the answer carries those
//! commands, the release [`crate::release::offer`] chooses for it and, with a statement key,
//! central's signed statement of the time and of that offer ([`crate::release::statement`]),
//! and every published key rotation (`crate::key_rotation`, read through the process's
//! short-lived cache).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use skolebro_protocol::api::HeartbeatAnswer;
use skolebro_provisioning::DeviceIdentity;

use super::caller::authorize;
use crate::api::error::ApiError;
use crate::key_rotation;
use crate::release;
use crate::state::AppState;
use crate::store::Timestamp;
use skolebro_protocol::api::Heartbeat;

/// Largest heartbeat body: a heartbeat is a few hundred bytes; the bound keeps a broken agent
/// from making central parse megabytes of JSON.
pub(crate) const MAX_HEARTBEAT_BYTES: usize = 64 * 1024;

pub(crate) async fn post_heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Read as bytes and parsed here rather than with `Json`, so a missing content type is no
    // reason to lose a heartbeat, and every refusal has the documented error body.
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                format!("a heartbeat is at most {MAX_HEARTBEAT_BYTES} bytes"),
            ));
        }
        Err(_) => {
            return Err(ApiError::bad_request(
                "malformed",
                "the body could not be read",
            ));
        }
    };
    let heartbeat: Heartbeat = match serde_json::from_slice(&body) {
        Ok(heartbeat) => heartbeat,
        Err(error) => {
            tracing::debug!(device = %identity.device, line = error.line(), "heartbeat refused: malformed");
            return Err(ApiError::bad_request(
                "malformed",
                "the heartbeat is not the documented JSON",
            ));
        }
    };
    authorize(&state, &identity).await?;
    tracing::debug!(
        device = %identity.device,
        state = ?heartbeat.state,
        outbox_depth = heartbeat.outbox_depth,
        "heartbeat"
    );
    if let Some(report) = &heartbeat.update {
        release::record_report(state.store.as_ref(), &identity.device, report).await?;
    }
    let rotations = state.rotations.get(state.store.as_ref()).await?;
    let release = match &heartbeat.target {
        Some(target) => {
            release::offer(
                state.store.as_ref(),
                &state.releases,
                &rotations,
                &identity,
                &heartbeat.version,
                target,
            )
            .await?
        }
        None => None,
    };
    let commands = state
        .store
        .record_heartbeat(&identity.device, &heartbeat, Timestamp::now())
        .await?;
    // Counted once the heartbeat is through: until then the agent repeats the report.
    if let Some(report) = &heartbeat.update {
        state.metrics.update_reported(report.state);
    }
    if !commands.is_empty() {
        tracing::info!(device = %identity.device, count = commands.len(), "commands delivered");
    }
    // Signed last, so the time it carries is as late as the answer allows.
    let statement = state.releases.statement_key.as_ref().and_then(|key| {
        release::statement(
            key,
            &identity.device,
            heartbeat.target.as_deref(),
            release.as_ref(),
            Timestamp::now(),
        )
    });
    let key_rotations = key_rotation::for_answer(&rotations);
    Ok((
        StatusCode::OK,
        Json(HeartbeatAnswer {
            commands,
            release,
            statement,
            key_rotations,
        }),
    )
        .into_response())
}
