//! The one error answer of the JSON listeners (device, operator, consumer): every handler
//! returns `Result<_, ApiError>` and refuses with `?`. The body is
//! `{"error": "<code>", "detail": "<text>"}` (docs/API.md), built here so no handler can echo
//! request data into a detail by accident: details are fixed texts or ids and numbers, never
//! record content. Each error answer also carries its code and detail as [`ErrorParts`], from
//! which the consumer listener writes OneRoster's status payload on its OneRoster paths. A [`StoreError`] that reaches a handler's `?` is a failure of the store,
//! not a refusal: 503 with `Retry-After` when the database is unreachable, 500 otherwise.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use skolebro_protocol::api::{BatchGap, ErrorBody};
use skolebro_protocol::ChainHead;

use crate::store::StoreError;

/// Seconds an agent is told to wait when central cannot apply now (503): long enough for a
/// database restart or failover, short enough that a school's data is not held up for long.
pub(crate) const RETRY_AFTER_SECONDS: u32 = 30;

/// An answer other than success, as the contract documents it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A refusal with its status, code and detail and nothing more.
    Refused {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    /// 409 `gap`: the batch does not follow the device's chain head, which the answer
    /// carries so the agent can send a snapshot chained on it.
    Gap(ChainHead),
    /// 503 with `Retry-After`: central cannot serve now, the client should try again later.
    Unavailable(String),
    /// 429 with `Retry-After` in whole seconds.
    RateLimited { detail: String, retry_after: u64 },
    /// An OAuth2 error (RFC 6749 section 5.2) in central's shape: never cached, and a 401
    /// names the Basic scheme.
    OAuth {
        status: StatusCode,
        code: &'static str,
        detail: &'static str,
    },
    /// 401 `invalid_token` on the consumer listener, naming the Bearer scheme.
    InvalidBearer,
    /// 416 for a download range past the end of an artifact of `len` bytes.
    RangeNotSatisfiable { len: u64 },
    /// 500 for faults of central itself (corrupt stored data, a crashed worker); the detail
    /// stays generic, the log has the cause.
    Internal,
    /// The store failed rather than refused.
    Store(StoreError),
}

impl ApiError {
    /// A refusal with the documented body.
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 403 with `code`.
    pub(crate) fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 404 with `code`.
    pub(crate) fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 409 with `code`.
    pub(crate) fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }

    /// 404 `unknown_release` for a release central does not have (or not its artifact).
    pub(crate) fn unknown_release(id: &str) -> Self {
        ApiError::not_found("unknown_release", format!("central knows no release {id}"))
    }

    /// 404 `unknown_release` for a path segment that cannot be a release id.
    pub(crate) fn not_a_release_id() -> Self {
        ApiError::not_found("unknown_release", "a release id is <version>-<target>")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Store(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Refused {
                status,
                code,
                detail,
            } => body(status, code, detail, json!({})),
            ApiError::Gap(head) => body(
                StatusCode::CONFLICT,
                "gap",
                format!(
                    "central expects sequence number {}; send a snapshot chained on this head",
                    head.next_seq
                ),
                serde_json::to_value(BatchGap {
                    expected_seq: head.next_seq.0,
                    prev: hex::encode(head.prev),
                })
                .unwrap_or_default(),
            ),
            ApiError::Unavailable(detail) => unavailable(detail),
            ApiError::RateLimited {
                detail,
                retry_after,
            } => {
                let mut response = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    detail,
                    json!({}),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            ApiError::OAuth {
                status,
                code,
                detail,
            } => {
                let mut response = body(status, code, detail, json!({}));
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
            ApiError::InvalidBearer => {
                let mut response = body(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "send a bearer token from POST /oauth/token; it may have expired",
                    json!({}),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"skolebro\""),
                );
                response
            }
            ApiError::RangeNotSatisfiable { len } => {
                let mut response = body(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the artifact is {len} bytes"),
                    json!({}),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                response
            }
            ApiError::Internal => internal(),
            ApiError::Store(error) => match error {
                StoreError::Sqlite(_) | StoreError::Postgres(_) | StoreError::Worker(_) => {
                    tracing::error!(%error, "store unavailable");
                    unavailable("central cannot reach its store; try again later".to_owned())
                }
                _ => {
                    tracing::error!(%error, "store failed");
                    internal()
                }
            },
        }
    }
}

/// The code and detail of an error answer, kept in the response's extensions so a
/// listener that answers in another shape (the consumer listener's OneRoster status,
/// `crate::api::consumer`) rewrites the body from them instead of parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorParts {
    pub code: &'static str,
    pub detail: String,
}

/// An error body with extra fields beside `error` and `detail` (the gap's head).
fn body(
    status: StatusCode,
    code: &'static str,
    detail: impl Into<String>,
    extra: Value,
) -> Response {
    let detail = detail.into();
    let mut body = serde_json::to_value(ErrorBody {
        error: code.to_owned(),
        detail: detail.clone(),
    })
    .unwrap_or_default();
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = (status, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(ErrorParts { code, detail });
    response
}

fn unavailable(detail: String) -> Response {
    let mut response = body(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        detail,
        json!({}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

fn internal() -> Response {
    body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "central failed; the fault is logged",
        json!({}),
    )
}

/// 404 for paths that are not part of the API: every JSON listener's fallback.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}
