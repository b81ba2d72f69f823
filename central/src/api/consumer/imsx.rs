//! The OneRoster status payload on the consumer listener: every error answer of a OneRoster
//! path leaves the handlers as central's `ApiError` and is rewritten here, by a response
//! layer, into the `imsx_StatusInfo` shape OneRoster 1.1 clients read (REST binding section
//! 3.3), keeping the status code and headers (`WWW-Authenticate`, `Retry-After`). The code
//! and detail come from the response's [`ErrorParts`], so nothing is parsed back.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::ErrorParts;

/// The OneRoster code minor of an error: the specification's vocabulary, chosen by the
/// status and, for a 400, by central's code.
fn code_minor(status: StatusCode, code: &str) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => match code {
            "invalid_filter_field" => "invalid_filter_field",
            "invalid_selection_field" => "invalid_selection_field",
            _ => "invaliddata",
        },
        StatusCode::UNAUTHORIZED => "unauthorisedrequest",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "unknownobject",
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "server_busy",
        _ => "internal_server_error",
    }
}

/// The `imsx_StatusInfo` body of a failure.
pub(crate) fn status_info(status: StatusCode, parts: &ErrorParts) -> Value {
    json!({
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": parts.detail,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [{
                "imsx_codeMinorFieldName": "TargetEndSystem",
                "imsx_codeMinorFieldValue": code_minor(status, parts.code),
            }],
        },
    })
}

/// The response layer: an error answer in central's shape becomes the same answer in
/// OneRoster's; every other response passes unchanged.
pub(crate) async fn rewrite(response: Response) -> Response {
    let Some(parts) = response.extensions().get::<ErrorParts>().cloned() else {
        return response;
    };
    let status = response.status();
    let mut headers = response.headers().clone();
    headers.remove(header::CONTENT_LENGTH);
    let mut rewritten = (status, Json(status_info(status, &parts))).into_response();
    for (name, value) in &headers {
        if !rewritten.headers().contains_key(name) {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;

    async fn rewritten(error: ApiError) -> (StatusCode, Response) {
        let response = rewrite(error.into_response()).await;
        (response.status(), response)
    }

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn refusals_become_imsx_status_with_the_specifications_code_minor() {
        for (error, status, minor) in [
            (
                ApiError::bad_request("invalid_filter_field", "no such field"),
                StatusCode::BAD_REQUEST,
                "invalid_filter_field",
            ),
            (
                ApiError::bad_request("invalid_limit", "limit"),
                StatusCode::BAD_REQUEST,
                "invaliddata",
            ),
            (
                ApiError::not_found("unknown_object", "no user with this sourcedId"),
                StatusCode::NOT_FOUND,
                "unknownobject",
            ),
            (
                ApiError::InvalidBearer,
                StatusCode::UNAUTHORIZED,
                "unauthorisedrequest",
            ),
            (
                ApiError::Internal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
            ),
        ] {
            let (got, response) = rewritten(error).await;
            assert_eq!(got, status);
            let bearer = response.headers().get(header::WWW_AUTHENTICATE).cloned();
            let body = body(response).await;
            assert_eq!(body["imsx_codeMajor"], "failure");
            assert_eq!(body["imsx_severity"], "error");
            assert!(body["imsx_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()));
            assert_eq!(
                body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"],
                minor
            );
            assert!(body.get("error").is_none());
            if status == StatusCode::UNAUTHORIZED {
                assert!(bearer.is_some(), "the Bearer challenge is kept");
            }
        }
    }

    #[tokio::test]
    async fn answers_that_are_not_errors_pass_unchanged() {
        let response = rewrite(Json(json!({"users": []})).into_response()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, json!({"users": []}));
    }
}
