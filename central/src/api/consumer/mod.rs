//! The consumer listener's handlers: the OAuth2 token endpoint ([`token`]) and the
//! read-only OneRoster 1.1 subset it guards ([`oneroster`]), for a county's admission office
//! or an LMS. Plain HTTP, served by [`crate::server`] when `consumer_listen` is set.

mod oneroster;
mod token;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::api::error::not_found;
use crate::oneroster::BASE;
use crate::state::AppState;

/// Largest request body on this listener: a token request is a few hundred bytes.
const MAX_CONSUMER_BODY_BYTES: usize = 8 * 1024;

/// The consumer listener's routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/oauth/token", post(token::post_token))
        .route(
            &format!("{BASE}/{{collection}}"),
            get(oneroster::get_collection),
        )
        .route(
            &format!("{BASE}/{{collection}}/{{id}}"),
            get(oneroster::get_one),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_CONSUMER_BODY_BYTES))
        .with_state(state)
}
