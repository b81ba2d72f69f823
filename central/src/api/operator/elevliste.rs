//! `GET /admin/exports/elevliste`: a county's elevliste for its admission office, generated
//! by [`crate::elevliste_export`], as a file attachment. Asked for a transfer window, it is
//! the window's county, frozen at its deadline once it has closed. The file carries personal
//! data by design; nothing of it is logged. Once the window's deadline lies before the
//! history its county keeps (`crate::retention`), the file can no longer be built as it was,
//! and the answer says so (410 `window_beyond_retention`) rather than serve a different one.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::elevliste_export::generate;
use crate::state::AppState;
use crate::store::{ConsumerScope, Timestamp};

/// The query of an export request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// Fylkesnummer, two digits; with `window` it may be left out (it is the window's).
    county: Option<String>,
    /// Trinn, as the SAS writes it (`10`).
    grade: String,
    /// RFC 3339; absent for the current rosters.
    as_of: Option<String>,
    /// A transfer window's id: its county, and once it has closed its deadline as `as_of`.
    window: Option<i64>,
}

/// `GET /admin/exports/elevliste?county=46&grade=10[&as_of=<RFC 3339>]` or
/// `?window=<id>&grade=10`: the file, as an attachment named for county and grade.
pub(crate) async fn get_elevliste(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request("invalid_query", detail.to_owned());
    let Ok(Query(query)) = query else {
        return Err(invalid(
            "the parameters are grade, county or window (a number), and optionally as_of",
        ));
    };
    if let Some(county) = &query.county {
        if !ConsumerScope::County(county.clone()).is_valid() {
            return Err(invalid("county is a fylkesnummer, two digits"));
        }
    }
    let grade = query.grade.trim();
    if grade.is_empty() || grade.len() > 8 || !grade.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "grade is a trinn such as 10 (letters and digits, at most 8)",
        ));
    }
    if query.window.is_some() && query.as_of.is_some() {
        return Err(invalid(
            "window and as_of exclude each other: a closed window is as of closes",
        ));
    }
    let (county, as_of) = match query.window {
        Some(id) => {
            let Some(window) = state.store.window(id).await? else {
                return Err(ApiError::not_found(
                    "unknown_window",
                    format!("no transfer window has id {id}"),
                ));
            };
            let county = window.fylke.to_string();
            if query.county.as_ref().is_some_and(|asked| *asked != county) {
                return Err(invalid(
                    "county differs from the window's county; leave it out",
                ));
            }
            let now = Timestamp::now();
            let as_of = window.frozen_as_of(now);
            if as_of.is_some() {
                if let Err(words) = state.retention.window_file_kept(&window, now) {
                    return Err(ApiError::new(
                        StatusCode::GONE,
                        "window_beyond_retention",
                        words,
                    ));
                }
            }
            (county, as_of)
        }
        None => {
            let Some(county) = query.county.clone() else {
                return Err(invalid("county (a fylkesnummer) or window is required"));
            };
            match query.as_of.as_deref().map(Timestamp::parse_rfc3339) {
                None => (county, None),
                Some(Some(at)) => (county, Some(at)),
                Some(None) => {
                    return Err(invalid(
                        "as_of is an RFC 3339 time, e.g. 2026-11-15T23:59:59Z",
                    ))
                }
            }
        }
    };
    let elevliste = generate(&*state.store, &county, grade, as_of).await?;
    tracing::info!(
        county,
        window = query.window,
        grade,
        as_of = ?as_of.map(|at| at.to_string()),
        rows = elevliste.rows,
        left_out = elevliste.left_out,
        "elevliste exported"
    );
    let disposition = format!("attachment; filename=\"elevliste-{county}-{grade}.csv\"");
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        elevliste.bytes,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        HeaderName::from_static("x-skolebro-left-out"),
        HeaderValue::from(elevliste.left_out),
    );
    if let Some(Ok(value)) = as_of.map(|at| HeaderValue::from_str(&at.to_string())) {
        headers.insert(HeaderName::from_static("x-skolebro-as-of"), value);
    }
    Ok(response)
}
