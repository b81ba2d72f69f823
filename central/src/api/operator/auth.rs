//! The operator listener's second door, behind [`super::guard`]: every request but the
//! monitoring ones (`/metrics`, `/healthz`, `/readyz`, which carry no personal data and
//! change nothing) must carry `Authorization: Bearer <token>` with a good token of a named
//! client (`crate::operator_auth`). Without one, with a revoked one or a wrong one the answer
//! is `401 operator_token_required` and no handler runs, so nothing is read or changed. A
//! request that passes carries its client as [`OperatorCaller`], which the handlers write
//! to the audit log as `api:<name>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::api::error::ApiError;
use crate::operator_auth;
use crate::state::AppState;

/// The client a request came from, as its token named it.
#[derive(Debug, Clone)]
pub(crate) struct OperatorCaller {
    /// `api:<name>`: who the audit log says acted.
    pub actor: String,
}

/// Serves `request` only with a good operator token, passing its client on as an
/// [`OperatorCaller`]; otherwise `401 operator_token_required`.
pub(crate) async fn operator_client(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        });
    let client = match token {
        Some(token) => operator_auth::client_of(state.store.as_ref(), token).await,
        None => Ok(None),
    };
    match client {
        Ok(Some(name)) => {
            request.extensions_mut().insert(OperatorCaller {
                actor: operator_auth::actor(&name),
            });
            next.run(request).await
        }
        Ok(None) => unauthorized(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "operator_token_required",
        "send Authorization: Bearer <token> with a token from \
         `skolebro-central operator-token create`; it may have been revoked",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"skolebro-operator\""),
    );
    response
}
