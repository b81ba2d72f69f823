//! The device listener's handlers (docs/API.md, "Device endpoints"), served over mutual TLS
//! by [`crate::server`]: batches ([`batches`]), heartbeats ([`heartbeat`]), enrollment and
//! renewal ([`enroll`]) and release downloads ([`release`]); [`metered`] counts batch and
//! heartbeat answers for `GET /metrics`.
//!
//! The server decides once per connection who the caller is and attaches the certificate's
//! `DeviceIdentity` and the [`PeerAddr`] to each request; a connection without a
//! certificate reaches only [`ENROLL_PATH`]. Every other handler checks the device against
//! the store again per request (`caller::authorize`), so a device revoked while its connection is
//! open is refused from its next request on.

mod batches;
mod caller;
mod enroll;
mod heartbeat;
mod metered;
mod release;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::api::error::not_found;
use crate::state::AppState;

/// The one device endpoint a connection without a client certificate may use.
pub(crate) const ENROLL_PATH: &str = "/v1/enroll";

pub(crate) use caller::PeerAddr;
pub(crate) use heartbeat::MAX_HEARTBEAT_BYTES;

/// The device listener's routes, with the connection's `DeviceIdentity` expected as a
/// request extension (the server inserts it per connection, and lets only enrollment
/// through without one).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/batches",
            post(batches::post_batch)
                .route_layer(from_fn_with_state(Arc::clone(&state), metered::count_batch)),
        )
        .route(
            "/v1/heartbeat",
            post(heartbeat::post_heartbeat).route_layer(from_fn_with_state(
                Arc::clone(&state),
                metered::count_heartbeat,
            )),
        )
        .route(ENROLL_PATH, post(enroll::post_enroll))
        .route("/v1/renew", post(enroll::post_renew))
        .route("/v1/releases/{id}/artifact", get(release::get_artifact))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_HEARTBEAT_BYTES))
        .with_state(state)
}
