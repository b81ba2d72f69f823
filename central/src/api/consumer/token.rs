//! `POST /oauth/token` on the consumer listener: the OAuth2 client-credentials grant
//! (RFC 6749 section 4.4), and the bearer check every OneRoster request passes. The hashing
//! and the token's lifetime are [`crate::consumer_auth`]'s.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::api::error::ApiError;
use crate::consumer_auth::{issue_token, secret_matches, token_client, TOKEN_LIFETIME};
use crate::state::AppState;
use crate::store::ConsumerClient;

/// The form of a token request. Unknown parameters are ignored, as RFC 6749 asks.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An OAuth2 error answer (RFC 6749 section 5.2), in central's error shape.
fn oauth_error(status: StatusCode, code: &'static str, detail: &'static str) -> ApiError {
    ApiError::OAuth {
        status,
        code,
        detail,
    }
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

/// `POST /oauth/token`: answers a bearer token for a known, unrevoked client whose secret
/// matches; every other client gets the same `invalid_client`, whatever was wrong.
pub(crate) async fn post_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Ok(Form(form)) = form else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body with grant_type",
        ));
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ))
        }
        None => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            ))
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
        return Err(unauthorized());
    };
    let client = match state.store.consumer_client(&id).await? {
        Some(client) if !client.revoked && secret_matches(&client, &secret) => client,
        _ => {
            tracing::info!("consumer token refused: bad client credentials");
            return Err(unauthorized());
        }
    };
    let Some(token) = issue_token(state.store.as_ref(), &client).await? else {
        tracing::error!("system randomness unavailable; no consumer token issued");
        return Err(ApiError::Internal);
    };
    tracing::debug!(client = client.id, "consumer token issued");
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        })),
    )
        .into_response())
}

/// The client behind the request's bearer token, or the 401 to answer: a missing, malformed,
/// unknown or expired token and a revoked client all get the same answer.
pub(crate) async fn bearer_client(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<ConsumerClient, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(ApiError::InvalidBearer)?;
    token_client(state.store.as_ref(), token)
        .await?
        .ok_or(ApiError::InvalidBearer)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

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
