//! The JSON answers both listeners share: errors are `{"error": "<code>", "detail": "<text>"}`
//! (docs/API.md), built in one place so no handler can echo request data into a detail by
//! accident. Details are fixed texts or ids and numbers, never record content.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Seconds an agent is told to wait when central cannot apply now (503): long enough for a
/// database restart or failover, short enough that a school's data is not held up for long.
pub const RETRY_AFTER_SECONDS: u32 = 30;

/// An error answer with the documented body.
pub(crate) fn error(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Response {
    with_fields(status, code, detail, json!({}))
}

/// An error answer with extra fields beside `error` and `detail` (the gap's head).
pub(crate) fn with_fields(
    status: StatusCode,
    code: &'static str,
    detail: impl Into<String>,
    extra: Value,
) -> Response {
    let mut body = json!({"error": code, "detail": detail.into()});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, Json(body)).into_response()
}

/// 503 with `Retry-After`: central cannot serve now, the client should try again later.
pub(crate) fn unavailable(detail: impl Into<String>) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

/// 500 for faults of central itself (corrupt stored data, a crashed worker); the detail
/// stays generic, the log has the cause.
pub(crate) fn internal() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "central failed; the fault is logged",
    )
}

/// 404 for paths that are not part of the API.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
