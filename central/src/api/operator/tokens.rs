//! `POST /admin/tokens`, `GET /admin/tokens` and `POST /admin/tokens/{id}/revoke`: the
//! config sticks' one-time enrollment tokens, known to central only by their SHA-256.
//!
//! Registering a stick's token also registers its site's schools (the same schools the
//! stick carries to the agent): sites are made when their sticks are, so this is where
//! central learns which schools a site's devices may speak for (`crate::store::SiteStore`).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use skolebro_protocol::{SiteId, SiteSchool};

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::state::AppState;
use crate::store::{
    token_id, NewToken, StoreError, Timestamp, TokenRecord, MAX_ENROLLABLE_SITE_LEN,
};

/// Longest school name a token may carry: names are for people's lists, not documents.
const MAX_SITE_NAME_LEN: usize = 256;

/// A token to register, as `skolebro-provision stick` posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTokenBody {
    /// SHA-256 of the token's text, 64 hex characters.
    token_sha256: String,
    site: String,
    site_name: String,
    expires_unix: u64,
    /// The site's schools. Optional, so an older `skolebro-provision` can still register a
    /// token; its site then has no school until an operator registers one, and its batches
    /// naming a school are refused.
    #[serde(default)]
    schools: Vec<SiteSchool>,
}

/// Longest list of schools one token may register: a site is one school or a handful.
const MAX_SCHOOLS: usize = 64;

/// `POST /admin/tokens`: registers a stick's enrollment token by its hash.
pub(crate) async fn post_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Ok(Json(body)) = body else {
        return Err(invalid_token(
            "expected {\"token_sha256\", \"site\", \"site_name\", \"expires_unix\", \"schools\"}",
        ));
    };
    let Some(token_sha256) = hex::decode(&body.token_sha256)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
    else {
        return Err(invalid_token("token_sha256 must be 64 hex characters"));
    };
    let site = match SiteId::new(body.site) {
        Ok(site) if site.as_str().len() <= MAX_ENROLLABLE_SITE_LEN => site,
        _ => {
            return Err(invalid_token(format!(
                "a site id is 1 to {MAX_ENROLLABLE_SITE_LEN} characters of A-Z, a-z, 0-9, \
                 '.', '_' or '-'"
            )))
        }
    };
    if body.site_name.chars().count() > MAX_SITE_NAME_LEN {
        return Err(invalid_token(format!(
            "site_name is at most {MAX_SITE_NAME_LEN} characters"
        )));
    }
    let Some(expires) = body
        .expires_unix
        .checked_mul(1000)
        .and_then(|ms| i64::try_from(ms).ok())
    else {
        return Err(invalid_token("expires_unix is out of range"));
    };
    if body.schools.len() > MAX_SCHOOLS {
        return Err(invalid_token(format!(
            "a site has at most {MAX_SCHOOLS} schools"
        )));
    }
    let schools = body
        .schools
        .into_iter()
        .map(SiteSchool::checked)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid_token(error.to_string()))?;
    let token = NewToken {
        token_sha256,
        site,
        site_name: body.site_name,
        created: Timestamp::now(),
        expires: Timestamp(expires),
    };
    let id = token_id(&token_sha256);
    let keys: Vec<String> = schools.iter().map(SiteSchool::key).collect();
    let detail = format!(
        "site {}, expires {}, schools [{}]",
        token.site,
        token.expires,
        keys.join(", ")
    );
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "create_token",
        &id,
        &detail,
    )
    .await?;
    match state
        .store
        .register_schools(&token.site, &schools, token.created)
        .await
    {
        Ok(()) => {}
        Err(StoreError::SchoolElsewhere { school, site }) => {
            return Err(ApiError::conflict(
                "school_elsewhere",
                format!(
                    "school {school} is registered with site {site};                      `skolebro-central site move` moves it"
                ),
            ))
        }
        Err(error) => return Err(error.into()),
    }
    match state.store.create_token(&token).await {
        Ok(()) => {
            tracing::info!(token = id, site = %token.site, expires = %token.expires, "enrollment token registered");
            Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
        }
        Err(StoreError::TokenExists(_)) => Err(ApiError::conflict(
            "token_exists",
            format!("a token with id {id} is already registered"),
        )),
        Err(error) => Err(error.into()),
    }
}

fn invalid_token(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_token", detail)
}

/// `GET /admin/tokens`: every token, newest first, without its hash.
pub(crate) async fn get_tokens(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(tokens.iter().map(token_json).collect::<Vec<_>>()).into_response())
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
pub(crate) async fn post_revoke_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("unknown_token", "no enrollment token has this id");
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(unknown());
    }
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "revoke_token",
        &id,
        "revoked",
    )
    .await?;
    match state.store.revoke_token(&id).await {
        Ok(()) => {
            tracing::info!(token = id, "enrollment token revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(StoreError::TokenUnknown) => Err(unknown()),
        Err(error) => Err(error.into()),
    }
}
