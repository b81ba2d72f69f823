//! The operator listener's handlers (docs/API.md, "Operator and read endpoints"), served as
//! plain HTTP on loopback by [`crate::server`]: the JSON API operations and scripts use.
//!
//! They are the other end of the data flow: what the ingest stored is read back here
//! ([`roster`]: the current roster, the roster at a past time, counts), and operators look
//! at the fleet and queue commands that the device listener hands out with the next
//! heartbeat ([`devices`]). They are also the start of a device's life: `skolebro-provision
//! stick` registers the stick's enrollment token here (only its SHA-256), and operators list
//! and revoke tokens ([`tokens`]) and devices. Operations also create and revoke the
//! consumers' OAuth2 clients ([`clients`]) and read who read what through them
//! ([`access_log`]), download a county's elevliste ([`elevliste`]),
//! frozen at a transfer window's deadline once it has passed ([`windows`]), and register,
//! upload and roll out releases ([`releases`]), publish key rotations ([`key_rotations`]), and export and purge a leaving school
//! ([`site_exit`]), and export or erase one pupil's data by national id ([`subjects`]). The listener serves plain HTTP, so it is
//! bound to loopback only; [`guard`] keeps browsers on the host out (a `Host` naming the
//! listener, no `Origin`), and [`auth`] lets in only the named clients operations gave a
//! bearer token (`skolebro-central operator-token`). Prometheus scrapes `/metrics`, and
//! balancers ask `/healthz` and `/readyz`, here too, without a token ([`monitoring`]). The
//! roster answers carry personal data by design; nothing of it is logged.
//!
//! Every action that changes something writes a line to the audit log first
//! ([`crate::audit`], as the request's client, `api:<name>`) and is refused if it cannot be
//! written.

mod access_log;
mod auth;
mod clients;
mod devices;
mod elevliste;
mod guard;
mod key_rotations;
mod monitoring;
mod releases;
mod roster;
mod site_exit;
mod subjects;
mod tokens;
mod windows;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::api::error::not_found;
use crate::state::AppState;

/// Largest operator request body: a command is a few dozen bytes.
const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;

/// The operator listener's routes: the monitoring ones open, every other one behind
/// [`auth::operator_client`], and all of them behind [`guard::same_host_only`] for the
/// listener bound at `listen`.
pub(crate) fn router(state: Arc<AppState>, listen: SocketAddr) -> Router {
    let authenticated = Router::new()
        .route("/v1/sites/{site}/roster", get(roster::get_roster))
        .route("/v1/sites/{site}/counts", get(roster::get_counts))
        .route("/admin/devices", get(devices::get_devices))
        .route(
            "/admin/devices/{device}/commands",
            post(devices::post_command),
        )
        .route(
            "/admin/devices/{device}/revoke",
            post(devices::post_revoke_device),
        )
        .route(
            "/admin/tokens",
            get(tokens::get_tokens).post(tokens::post_token),
        )
        .route("/admin/tokens/{id}/revoke", post(tokens::post_revoke_token))
        .route(
            "/admin/releases",
            get(releases::get_releases)
                .post(releases::post_release)
                .layer(DefaultBodyLimit::max(
                    skolebro_protocol::release::MAX_MANIFEST_BYTES,
                )),
        )
        .route(
            "/admin/releases/{id}/artifact",
            // Streamed to disk and bounded by the manifest's size, not held in memory.
            put(releases::put_artifact).layer(DefaultBodyLimit::disable()),
        )
        .route("/admin/releases/{id}/rollout", post(releases::post_rollout))
        .route(
            "/admin/key-rotations",
            post(key_rotations::post_key_rotation).layer(DefaultBodyLimit::max(
                skolebro_protocol::rotation::MAX_ROTATION_BYTES,
            )),
        )
        .route("/admin/releases/{id}/pause", post(releases::post_pause))
        .route("/admin/releases/{id}/resume", post(releases::post_resume))
        .route(
            "/admin/clients",
            get(clients::get_clients).post(clients::post_client),
        )
        .route("/admin/access-log", get(access_log::get_access_log))
        .route(
            "/admin/clients/{id}/revoke",
            post(clients::post_revoke_client),
        )
        .route("/admin/exports/elevliste", get(elevliste::get_elevliste))
        .route("/admin/sites/{site}/export", get(site_exit::get_export))
        .route("/admin/sites/{site}/purge", post(site_exit::post_purge))
        .route("/admin/subjects/export", post(subjects::post_export))
        .route("/admin/subjects/erase", post(subjects::post_erase))
        .route("/admin/subjects/tombstones", get(subjects::get_tombstones))
        .route(
            "/admin/subjects/tombstones/clear",
            post(subjects::post_clear),
        )
        .route(
            "/admin/windows",
            get(windows::get_windows).post(windows::post_window),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::operator_client,
        ));
    Router::new()
        .route("/metrics", get(monitoring::get_metrics))
        .route("/healthz", get(monitoring::get_healthz))
        .route("/readyz", get(monitoring::get_readyz))
        .merge(authenticated)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            listen,
            guard::same_host_only,
        ))
}
