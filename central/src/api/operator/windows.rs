//! `GET /admin/windows` and `POST /admin/windows`: the counties' transfer windows with the
//! reports [`crate::windows`] derives, and new windows, checked as the web form checks them.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::state::AppState;
use crate::store::{Fylke, StoreError, Timestamp, TransferWindow};
use crate::windows::{
    audit_words, early_refusal, parse_new_window, refusal, Overview, WindowRefusal,
};

fn window_json(window: &TransferWindow, now: Timestamp) -> Value {
    json!({
        "id": window.id,
        "fylke": window.fylke,
        "name": window.name,
        "opens": window.opens.to_string(),
        "closes": window.closes.to_string(),
        "created": window.created.to_string(),
        "created_by": window.created_by,
        "state": window.state_at(now),
    })
}

/// The query of `GET /admin/windows`; unknown parameters are refused, not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsQuery {
    /// Only this county's windows.
    fylke: Option<String>,
}

/// `GET /admin/windows[?fylke=46]`: every window with its state, its county's sites, those
/// that delivered inside it and its late batches.
pub(crate) async fn get_windows(
    State(state): State<Arc<AppState>>,
    query: Result<Query<WindowsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let fylke = match query {
        Ok(Query(WindowsQuery { fylke: None })) => None,
        Ok(Query(WindowsQuery { fylke: Some(code) })) if Fylke::parse(&code).is_some() => {
            Fylke::parse(&code)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "the only parameter is fylke, a county number of two digits",
            ))
        }
    };
    let overview = Overview::load(state.store.as_ref(), fylke).await?;
    let now = Timestamp::now();
    let windows: Vec<Value> = overview
        .reports()
        .iter()
        .map(|report| {
            let mut value = window_json(report.window, now);
            value["sites"] = json!(report.sites.len());
            value["delivered"] = json!(report.delivered);
            value["late"] = report
                .late
                .iter()
                .map(|(site, transfer)| {
                    json!({
                        "site": site,
                        "device": transfer.device,
                        "seq": transfer.seq.0,
                        "at": transfer.at.to_string(),
                    })
                })
                .collect();
            value
        })
        .collect();
    Ok(Json(json!({"windows": windows})).into_response())
}

/// The body of `POST /admin/windows`: times as text, so a bad one gets its own message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWindowBody {
    fylke: String,
    name: String,
    opens: String,
    closes: String,
}

/// `POST /admin/windows`: creates a window of a county.
pub(crate) async fn post_window(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Json<NewWindowBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let invalid = |detail: String| ApiError::bad_request("invalid_window", detail);
    let refused = |error: StoreError| match refusal(&error) {
        Some(why @ WindowRefusal::Overlap { .. }) => {
            ApiError::conflict("window_overlap", why.to_string())
        }
        Some(why) => invalid(why.to_string()),
        None => error.into(),
    };
    let Ok(Json(body)) = body else {
        return Err(invalid(
            "expected {\"fylke\": \"46\", \"name\": \"…\", \"opens\": \"<RFC 3339>\", \
             \"closes\": \"<RFC 3339>\"}"
                .to_owned(),
        ));
    };
    let window = parse_new_window(
        &body.fylke,
        &body.name,
        &body.opens,
        &body.closes,
        &caller.actor,
    )
    .map_err(|why| invalid(why.to_string()))?;
    match early_refusal(state.store.as_ref(), &window).await {
        Ok(None) => {}
        Ok(Some(error)) | Err(error) => return Err(refused(error)),
    }
    let (target, detail) = audit_words(&window);
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "create_window",
        &target,
        &detail,
    )
    .await?;
    match state.store.create_window(&window).await {
        Ok(created) => {
            tracing::info!(window = created.id, fylke = %created.fylke, opens = %created.opens, closes = %created.closes, "transfer window created");
            Ok((
                StatusCode::CREATED,
                Json(window_json(&created, Timestamp::now())),
            )
                .into_response())
        }
        Err(error) => Err(refused(error)),
    }
}
