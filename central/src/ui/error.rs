//! The web interface's answer when a handler does not render its page: the login redirect,
//! a "not found" or "not allowed" page with the operator's menu, or the store-failure page.
//! Handlers return `Result<Response, PageError>` and refuse with `?`, as the JSON listeners
//! do with `ApiError`; here the answer is a page, not JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::html::{escape, page, see_other};
use crate::store::StoreError;

/// A page other than the one asked for.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No live session: a redirect to the login page.
    SignIn,
    /// The store failed: the cause goes to the log, not to the browser.
    Store(StoreError),
    /// 404 for a site, device or token that does not exist or is outside the operator's
    /// view: both look alike. `nav` is the operator's menu.
    NotFound { nav: String },
    /// 404 for a release that does not exist, with a way back to the releases.
    NoSuchRelease { nav: String },
    /// 403 with a reason: an action the operator's role does not allow, or a stale form.
    Forbidden { nav: String, why: String },
    /// A transfer window the form asked for that cannot be created, with the reason.
    WindowRefused { nav: String, why: String },
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError::Store(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => see_other("/login"),
            PageError::Store(error) => {
                tracing::error!(%error, "the operator interface could not read or write the store");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Central cannot reach its store",
                    "",
                    "<p>Try again in a minute. The fault is in central's log.</p>",
                )
            }
            PageError::NotFound { nav } => page(
                StatusCode::NOT_FOUND,
                "Not found",
                &nav,
                "<p>There is no such site, device or token here.</p>",
            ),
            PageError::NoSuchRelease { nav } => page(
                StatusCode::NOT_FOUND,
                "Not found",
                &nav,
                "<p>There is no such release. <a href=\"/releases\">Back to the releases</a>.</p>",
            ),
            PageError::Forbidden { nav, why } => page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                &nav,
                &format!("<p class=\"bad\">{}</p>", escape(&why)),
            ),
            PageError::WindowRefused { nav, why } => page(
                StatusCode::BAD_REQUEST,
                "The window was not created",
                &nav,
                &format!(
                    "<p class=\"bad\">{}</p><p><a href=\"/windows\">Back to the transfer windows</a></p>",
                    escape(&why)
                ),
            ),
        }
    }
}
