//! `POST /admin/key-rotations` (docs/API.md): operations publish a key rotation statement
//! (`skolebro-provision rotate-key`), which [`crate::key_rotation::publish`] checks as far as
//! central can and stores; every heartbeat answer then carries it. The audit line is written
//! first.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use skolebro_protocol::rotation::{KeyRotation, MAX_ROTATION_BYTES};

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::key_rotation::{self, PublishError};
use crate::state::AppState;
use crate::store::{StoreError, Timestamp};

/// `POST /admin/key-rotations`: the body is the statement's bytes. `201` for a new rotation,
/// `200` for the same statement again, `409` for another statement of the same role and
/// sequence.
pub(crate) async fn post_key_rotation(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Ok(body) = body else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
            format!("a key rotation is at most {MAX_ROTATION_BYTES} bytes"),
        ));
    };
    let claimed = KeyRotation::read_unchecked(&body)
        .map_err(|error| ApiError::bad_request("invalid_rotation", error.to_string()))?;
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "publish_key_rotation",
        claimed.role.name(),
        &format!("sequence {}", claimed.sequence),
    )
    .await?;
    let published = key_rotation::publish(
        state.store.as_ref(),
        state.releases.key.as_ref(),
        &body,
        Timestamp::now(),
    )
    .await;
    state.rotations.forget();
    let (rotation, new) = match published {
        Ok(published) => published,
        Err(PublishError::Invalid(error)) => {
            tracing::warn!(%error, "key rotation refused");
            return Err(ApiError::bad_request("invalid_rotation", error.to_string()));
        }
        Err(PublishError::Store(StoreError::KeyRotationExists(role, sequence))) => {
            return Err(ApiError::conflict(
                "rotation_exists",
                format!("another {role} key rotation {sequence} is published"),
            ));
        }
        Err(PublishError::Store(error)) => return Err(error.into()),
    };
    let status = if new {
        tracing::info!(role = %rotation.role, sequence = rotation.sequence, "key rotation published");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = json!({"role": rotation.role.name(), "sequence": rotation.sequence});
    Ok((status, Json(answer)).into_response())
}
