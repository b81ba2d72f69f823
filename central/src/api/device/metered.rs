//! The device listener's metrics layer: wraps `POST /v1/batches` and `POST /v1/heartbeat`
//! and counts each answer in [`crate::metrics::Metrics`] by what it was, read from the
//! response's extensions rather than its body: the [`BatchAck`] `batches::ack` puts there
//! (applied or replayed), or the [`ErrorParts`] of every `ApiError` answer. A batch applied
//! is also timed from the request's start, its body's arrival included. The handlers stay
//! free of metric calls; what a refusal's code is stays decided in one place, the handler.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use skolebro_protocol::api::BatchAck;
use skolebro_provisioning::DeviceIdentity;

use crate::api::error::ErrorParts;
use crate::state::AppState;

/// What a refusal without an error body is counted as (an extractor's plain rejection).
const UNCODED: &str = "other";

/// Counts a batch answer: applied (and its time), replayed, or refused by code.
pub(super) async fn count_batch(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let site = request
        .extensions()
        .get::<DeviceIdentity>()
        .map(|identity| identity.site.clone());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    match (response.extensions().get::<BatchAck>(), site) {
        (Some(ack), Some(site)) if ack.applied => metrics.batch_applied(&site, started.elapsed()),
        (Some(_), Some(site)) => metrics.batch_replayed(&site),
        _ => metrics.batch_refused(code(&response)),
    }
    response
}

/// Counts a heartbeat answer: recorded, or refused by code.
pub(super) async fn count_heartbeat(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let site = request
        .extensions()
        .get::<DeviceIdentity>()
        .map(|identity| identity.site.clone());
    let response = next.run(request).await;
    match site {
        Some(site) if response.status().is_success() => state.metrics.heartbeat(&site),
        _ => state.metrics.heartbeat_refused(code(&response)),
    }
    response
}

fn code(response: &Response) -> &'static str {
    response
        .extensions()
        .get::<ErrorParts>()
        .map_or(UNCODED, |parts| parts.code)
}
