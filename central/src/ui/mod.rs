//! The operator web interface: server-rendered HTML for operations and the municipalities'
//! operators, served on its own listener (`ui_listen`) so it can sit behind a TLS proxy of
//! its own while the JSON operator API stays on loopback. It is the fourth listener beside
//! the three JSON ones in `crate::api`, and kept apart from them because it answers with
//! pages, not JSON (`error::PageError` rather than `ApiError`).
//!
//! It reads what the rest of central already keeps: the store's devices, tokens, school
//! records, transfers and audit log, last heartbeats and command queues. Its actions are the operator API's (release or reject a held delta,
//! revoke a token or a device), with an account, a role and a reason attached, and every one
//! of them lands in the audit log (`crate::audit`). `auth` signs operators in and out and
//! gives handlers the signed-in `auth::Operator` as an extractor; `pages` renders the
//! site and token pages; `fleet`, `held` and `audit_log` the fleet, held-delta and audit
//! pages (`held_reasons` says an agent's reasons for holding in the page's language); `releases` shows the releases and
//! changes their rollouts; `windows` shows and sets the counties' transfer windows; `reads` lists the consumer access
//! log; `share` says what a device reported of the school's share (the newest file, the share's settings); `privacy` exports and erases one pupil's data and offers a site's export and purge;
//! `charts` draws the site and fleet pages' pictures as SVG with a text alternative, from what `trends` reads; `html` is the page frame, and `text` the language a request is served in (bokmål by
//! default, English on request) with the words pages share. Everything works without JavaScript: links, plain forms, and
//! redirects after each POST.
//!
//! The listener speaks plain HTTP. Beyond loopback it belongs behind a TLS-terminating
//! proxy, and the session cookie carries `Secure` (the default), so a browser sends it only
//! over HTTPS.

mod audit_log;
mod auth;
mod charts;
mod deviations;
mod error;
mod fleet;
mod held;
mod held_reasons;
mod html;
mod pages;
mod privacy;
mod reads;
mod releases;
mod share;
mod text;
mod trends;
mod windows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use crate::accounts::{
    hash_password, new_user, NewUserError, LOGIN_FAILURES_ALLOWED, LOGIN_LOCK,
};
use crate::state::UiState;
pub use crate::state::{UiSettings, DEFAULT_SESSION_LIFETIME};

/// Largest form body: a reason and a few ids.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The interface's routes.
pub(crate) fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::get_login).post(auth::post_login))
        .route("/language", get(auth::get_language))
        .route("/logout", post(auth::post_logout))
        .route("/fleet", get(fleet::fleet))
        .route("/sites/{site}", get(pages::site))
        .route("/held", get(held::held))
        .route("/devices/{device}/held", post(held::post_held))
        .route(
            "/devices/{device}/revoke",
            get(held::get_revoke_device).post(held::post_revoke_device),
        )
        .route("/tokens", get(pages::tokens))
        .route("/tokens/{id}/revoke", post(pages::post_revoke_token))
        .route("/audit", get(audit_log::audit_page))
        .route("/reads", get(reads::reads_page))
        .route("/privacy", get(privacy::privacy_page))
        .route("/privacy/export", post(privacy::post_export))
        .route("/privacy/erase", post(privacy::post_erase))
        .route("/privacy/tombstones/clear", post(privacy::post_clear))
        .route("/sites/{site}/exit", get(privacy::exit_page))
        .route("/sites/{site}/export", post(privacy::post_site_export))
        .route("/sites/{site}/purge", post(privacy::post_site_purge))
        .route("/releases", get(releases::releases))
        .route("/releases/{id}/rollout", post(releases::post_rollout))
        .route(
            "/releases/{id}/pause",
            get(releases::get_pause).post(releases::post_pause),
        )
        .route("/releases/{id}/resume", post(releases::post_resume))
        .route(
            "/windows",
            get(windows::windows_page).post(windows::post_window),
        )
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(text::with_language))
        .with_state(state)
}
