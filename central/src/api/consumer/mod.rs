//! The consumer listener's handlers: the OAuth2 token endpoint ([`token`]) and the
//! read-only OneRoster 1.1 rostering service it guards, also served in 1.2's shapes under
//! 1.2's base for a client that asks for that ([`oneroster`]), for a county's
//! admission office or an LMS, whose errors [`imsx`] writes in OneRoster's status shape.
//! Plain HTTP, served by [`crate::server`] when `consumer_listen` is set.

mod imsx;
mod oneroster;
mod token;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::map_response;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::error::not_found;
use crate::oneroster::v1p2::BASE_V1P2;
use crate::oneroster::BASE;
use crate::state::AppState;

/// Largest request body on this listener: a token request is a few hundred bytes.
const MAX_CONSUMER_BODY_BYTES: usize = 8 * 1024;

/// The consumer listener's routes. The token endpoint keeps OAuth2's error shape (RFC 6749
/// section 5.2); everything else answers errors in OneRoster's, a path outside [`BASE`] and
/// [`BASE_V1P2`] too (a OneRoster client asking another version's base reads the `404` it
/// gets).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let oneroster = Router::new()
        .route(&format!("{BASE}/{{*path}}"), get(oneroster::get_resource))
        .route(
            &format!("{BASE_V1P2}/{{*path}}"),
            get(oneroster::get_resource),
        )
        .layer(map_response(imsx::rewrite));
    Router::new()
        .route("/oauth/token", post(token::post_token))
        .merge(oneroster)
        .fallback(unknown_path)
        .layer(DefaultBodyLimit::max(MAX_CONSUMER_BODY_BYTES))
        .with_state(state)
}

/// A path the listener does not serve: `404` in OneRoster's status shape.
async fn unknown_path() -> Response {
    imsx::rewrite(not_found().await.into_response()).await
}
