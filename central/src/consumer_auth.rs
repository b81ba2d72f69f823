//! Who may read through the consumer API: OAuth2 clients with the client-credentials grant
//! (RFC 6749 section 4.4), each scoped to one county or one kommune.
//!
//! Operations create a client on the operator listener (`POST /admin/clients`) and hand its
//! id and secret, shown once, to the consumer. The consumer trades them at `POST
//! /oauth/token` on the consumer listener for a bearer token that lives
//! [`TOKEN_LIFETIME`], and sends that with every OneRoster request (`crate::oneroster`).
//! Central keeps only hashes: a salted SHA-256 of each secret and a SHA-256 of each token
//! (both are 256 random bits, so a slow password hash would buy nothing), so neither the
//! database nor a backup of it can authenticate as anyone. Secrets and tokens are never
//! logged, nor written to the audit log; client ids are.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::admin::audit_api;
use crate::ingest::store_failure;
use crate::reply;
use crate::server::AppState;
use crate::store::{ConsumerClient, ConsumerScope, StoreError, Timestamp};

/// How long a bearer token is good for: long enough for a nightly sync to page through a
/// county, short enough that a leaked token is soon worthless.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Longest client name: names are for the operators' list.
const MAX_CLIENT_NAME_LEN: usize = 256;

/// `N` random bytes as lower-case hex: a client id, a client secret or a bearer token.
fn random_hex<const N: usize>() -> Option<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn secret_hash(salt: &[u8; 16], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `secret` is the client's, compared in constant time so the answer's timing says
/// nothing about how much of a guess was right.
fn secret_matches(client: &ConsumerClient, secret: &str) -> bool {
    bool::from(secret_hash(&client.secret_salt, secret).ct_eq(&client.secret_sha256))
}

/// What operations post to create a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewClientBody {
    name: String,
    scope: ConsumerScope,
}

/// `POST /admin/clients`: a new client with a fresh id and secret. The secret is in this
/// answer only; a lost one means a new client.
pub(crate) async fn post_client(
    State(state): State<Arc<AppState>>,
    body: Result<Json<NewClientBody>, JsonRejection>,
) -> Response {
    let invalid =
        |detail: &str| reply::error(StatusCode::BAD_REQUEST, "invalid_client", detail.to_owned());
    let Ok(Json(body)) = body else {
        return invalid(
            "expected {\"name\": \"…\", \"scope\": {\"county\": \"46\"} or {\"kommune\": \"4601\"}}",
        );
    };
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME_LEN {
        return invalid("name is 1 to 256 characters");
    }
    if !body.scope.is_valid() {
        return invalid("a county is 2 digits (fylkesnummer), a kommune 4 (kommunenummer)");
    }
    let (Some(id), Some(secret)) = (random_hex::<12>(), random_hex::<32>()) else {
        tracing::error!("system randomness unavailable; no consumer client created");
        return reply::internal();
    };
    let mut salt = [0u8; 16];
    if getrandom::fill(&mut salt).is_err() {
        tracing::error!("system randomness unavailable; no consumer client created");
        return reply::internal();
    }
    let client = ConsumerClient {
        secret_sha256: secret_hash(&salt, &secret),
        secret_salt: salt,
        id,
        name: name.to_owned(),
        scope: body.scope,
        created: Timestamp::now(),
        revoked: false,
    };
    let detail = match &client.scope {
        ConsumerScope::County(code) => format!("{name}: county {code}"),
        ConsumerScope::Kommune(code) => format!("{name}: kommune {code}"),
    };
    if let Err(response) = audit_api(&state, "create_client", &client.id, &detail).await {
        return response;
    }
    match state.store.create_consumer_client(&client).await {
        Ok(()) => {
            tracing::info!(client = client.id, scope = ?client.scope, "consumer client created");
            (
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, "no-store")],
                Json(json!({
                    "client_id": client.id,
                    "client_secret": secret,
                    "name": client.name,
                    "scope": client.scope,
                })),
            )
                .into_response()
        }
        Err(error) => store_failure(&error),
    }
}

/// `GET /admin/clients`: every client, oldest first, without its secret's hash.
pub(crate) async fn get_clients(State(state): State<Arc<AppState>>) -> Response {
    match state.store.list_consumer_clients().await {
        Ok(clients) => Json(
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
        .into_response(),
        Err(error) => store_failure(&error),
    }
}

/// `POST /admin/clients/{id}/revoke`: the client's secret and live tokens stop working now.
pub(crate) async fn post_revoke_client(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let unknown = || {
        reply::error(
            StatusCode::NOT_FOUND,
            "unknown_client",
            "no consumer client has this id",
        )
    };
    // Ids are 24 hex characters; anything else names no client and stays out of the log.
    if id.len() != 24 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return unknown();
    }
    if let Err(response) = audit_api(&state, "revoke_client", &id, "revoked").await {
        return response;
    }
    match state.store.revoke_consumer_client(&id).await {
        Ok(()) => {
            tracing::info!(client = id, "consumer client revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(StoreError::ClientUnknown) => unknown(),
        Err(error) => store_failure(&error),
    }
}

/// The form of a token request. Unknown parameters are ignored, as RFC 6749 asks.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An OAuth2 error answer (RFC 6749 section 5.2), in central's error shape.
fn oauth_error(status: StatusCode, code: &'static str, detail: &str) -> Response {
    let mut response = reply::error(status, code, detail.to_owned());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"skolebro\""),
        );
    }
    response
}

/// The client id and secret from HTTP Basic (preferred by RFC 6749) or, failing that, from
/// the form. `Err` for a Basic header that does not decode.
fn credentials(headers: &HeaderMap, form: &TokenForm) -> Result<Option<(String, String)>, ()> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?;
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Err(());
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = decoded.split_once(':').ok_or(())?;
        return Ok(Some((id.to_owned(), secret.to_owned())));
    }
    match (&form.client_id, &form.client_secret) {
        (Some(id), Some(secret)) => Ok(Some((id.clone(), secret.clone()))),
        _ => Ok(None),
    }
}

/// `POST /oauth/token` (consumer listener): the client-credentials grant. Answers a bearer
/// token for a known, unrevoked client whose secret matches; every other client gets the
/// same `invalid_client`, whatever was wrong.
pub(crate) async fn post_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body with grant_type",
        );
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            )
        }
    }
    let unauthorized = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client, wrong secret, or a revoked client",
        )
    };
    let Ok(Some((id, secret))) = credentials(&headers, &form) else {
        return unauthorized();
    };
    let client = match state.store.consumer_client(&id).await {
        Ok(Some(client)) if !client.revoked && secret_matches(&client, &secret) => client,
        Ok(_) => {
            tracing::info!("consumer token refused: bad client credentials");
            return unauthorized();
        }
        Err(error) => return store_failure(&error),
    };
    let Some(token) = random_hex::<32>() else {
        tracing::error!("system randomness unavailable; no consumer token issued");
        return reply::internal();
    };
    let now = Timestamp::now();
    let lifetime_ms = i64::try_from(TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let expires = Timestamp(now.0.saturating_add(lifetime_ms));
    if let Err(error) = state
        .store
        .create_consumer_token(&token_hash(&token), &client.id, expires, now)
        .await
    {
        return store_failure(&error);
    }
    tracing::debug!(client = client.id, "consumer token issued");
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        })),
    )
        .into_response()
}

/// The client behind the request's bearer token, or the 401 to answer: a missing, malformed,
/// unknown or expired token and a revoked client all get the same answer.
pub(crate) async fn bearer_client(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<ConsumerClient, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    let refuse = || {
        let mut response = reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send a bearer token from POST /oauth/token; it may have expired",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"skolebro\""),
        );
        response
    };
    let Some(token) = token else {
        return Err(refuse());
    };
    match state
        .store
        .consumer_token_client(&token_hash(&token.to_ascii_lowercase()), Timestamp::now())
        .await
    {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(refuse()),
        Err(error) => Err(store_failure(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_its_own_salted_hash() {
        let salt = [9; 16];
        let client = ConsumerClient {
            id: "c".to_owned(),
            name: "n".to_owned(),
            scope: ConsumerScope::County("46".to_owned()),
            secret_salt: salt,
            secret_sha256: secret_hash(&salt, "right"),
            created: Timestamp(0),
            revoked: false,
        };
        assert!(secret_matches(&client, "right"));
        assert!(!secret_matches(&client, "wrong"));
        assert_ne!(secret_hash(&[8; 16], "right"), client.secret_sha256);
    }

    #[test]
    fn credentials_come_from_basic_first_then_the_form() {
        let form = TokenForm {
            grant_type: None,
            client_id: Some("form-id".to_owned()),
            client_secret: Some("form-secret".to_owned()),
        };
        let mut headers = HeaderMap::new();
        assert_eq!(
            credentials(&headers, &form),
            Ok(Some(("form-id".to_owned(), "form-secret".to_owned())))
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("id:se:cret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        assert_eq!(
            credentials(&headers, &form),
            Ok(Some(("id".to_owned(), "se:cret".to_owned())))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(credentials(&headers, &form), Err(()));
    }
}
