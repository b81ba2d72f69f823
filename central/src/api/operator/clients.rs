//! `POST /admin/clients`, `GET /admin/clients` and `POST /admin/clients/{id}/revoke`: the
//! consumers' OAuth2 clients ([`crate::consumer_auth`]). A client's secret is in the
//! creation answer only; a lost one means a new client.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::consumer_auth::{new_client, MAX_CLIENT_NAME_LEN};
use crate::state::AppState;
use crate::store::{ConsumerScope, StoreError};

/// What operations post to create a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewClientBody {
    name: String,
    scope: ConsumerScope,
}

/// `POST /admin/clients`: a new client with a fresh id and secret.
pub(crate) async fn post_client(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<NewClientBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request("invalid_client", detail.to_owned());
    let Ok(Json(body)) = body else {
        return Err(invalid(
            "expected {\"name\": \"…\", \"scope\": {\"county\": \"46\"} or {\"kommune\": \"4601\"}}",
        ));
    };
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME_LEN {
        return Err(invalid("name is 1 to 256 characters"));
    }
    if !body.scope.is_valid() {
        return Err(invalid(
            "a county is 2 digits (fylkesnummer), a kommune 4 (kommunenummer)",
        ));
    }
    let Some((client, secret)) = new_client(name, body.scope) else {
        tracing::error!("system randomness unavailable; no consumer client created");
        return Err(ApiError::Internal);
    };
    let detail = match &client.scope {
        ConsumerScope::County(code) => format!("{name}: county {code}"),
        ConsumerScope::Kommune(code) => format!("{name}: kommune {code}"),
    };
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "create_client",
        &client.id,
        &detail,
    )
    .await?;
    state.store.create_consumer_client(&client).await?;
    tracing::info!(client = client.id, %detail, "consumer client created");
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "client_id": client.id,
            "client_secret": secret,
            "name": client.name,
            "scope": client.scope,
        })),
    )
        .into_response())
}

/// `GET /admin/clients`: every client, oldest first, without its secret's hash.
pub(crate) async fn get_clients(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let clients = state.store.list_consumer_clients().await?;
    Ok(Json(
        clients
            .iter()
            .map(|client| {
                json!({
                    "client_id": client.id,
                    "name": client.name,
                    "scope": client.scope,
                    "created_unix": client.created.unix_millis().div_euclid(1000),
                    "revoked": client.revoked,
                })
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// `POST /admin/clients/{id}/revoke`: the client's secret and live tokens stop working now.
pub(crate) async fn post_revoke_client(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("unknown_client", "no consumer client has this id");
    // Ids are 24 hex characters; anything else names no client and stays out of the log.
    if id.len() != 24 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(unknown());
    }
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "revoke_client",
        &id,
        "revoked",
    )
    .await?;
    match state.store.revoke_consumer_client(&id).await {
        Ok(()) => {
            tracing::info!(client = id, "consumer client revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(StoreError::ClientUnknown) => Err(unknown()),
        Err(error) => Err(error.into()),
    }
}
