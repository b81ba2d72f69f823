//! `GET /metrics`, `GET /healthz` and `GET /readyz` on the operator listener (docs/API.md,
//! "Metrics and health"): what Prometheus and a load balancer or systemd watchdog ask. They
//! sit behind the same [`super::guard`] as the rest of the listener, which a scraper passes
//! by naming the listener (`127.0.0.1:<port>`) as its target: its `Host` is then the
//! listener's own, and it sends no `Origin`.
//!
//! `/healthz` says only that the process answers; `/readyz` that it can also reach its store
//! (503 otherwise, so a balancer sends devices to another central); `/metrics` is
//! [`crate::metrics::Metrics::encode`]: counters of this process and the fleet's state read
//! from the store now.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// The Prometheus page.
pub(super) async fn get_metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = state.metrics.encode(state.store.as_ref()).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response())
}

/// 200 while the process serves requests.
pub(super) async fn get_healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// 200 when the store answers a query; otherwise the store's failure (503 when it cannot be
/// reached).
pub(super) async fn get_readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // The windows table is a handful of rows: a real round trip that costs nothing.
    state.store.windows(None).await?;
    Ok((StatusCode::OK, "ready\n").into_response())
}
