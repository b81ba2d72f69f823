//! The web interface's answer when a handler does not render its page: the login redirect,
//! a "not found" or "not allowed" page with the operator's menu, or the store-failure page.
//! Handlers return `Result<Response, PageError>` and refuse with `?`, as the JSON listeners
//! do with `ApiError`; here the answer is a page, not JSON, in the request's language.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::html::{page, see_other};
use super::text::current;
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
    NotFound { nav: Markup },
    /// 404 for a release that does not exist, with a way back to the releases.
    NoSuchRelease { nav: Markup },
    /// 403 with a reason: an action the operator's role does not allow, or a stale form.
    Forbidden { nav: Markup, why: String },
    /// A transfer window the form asked for that cannot be created, with the reason.
    WindowRefused { nav: Markup, why: String },
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError::Store(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let lang = current();
        match self {
            PageError::SignIn => see_other("/login"),
            PageError::Store(error) => {
                tracing::error!(%error, "the operator interface could not read or write the store");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    lang.t(
                        "Sentralen når ikke lageret sitt",
                        "Central cannot reach its store",
                    ),
                    html! {},
                    "/fleet",
                    html! { p { (lang.t(
                        "Prøv igjen om et minutt. Feilen står i sentralens logg.",
                        "Try again in a minute. The fault is in central's log.",
                    )) } },
                )
            }
            PageError::NotFound { nav } => page(
                StatusCode::NOT_FOUND,
                lang.t("Finnes ikke", "Not found"),
                nav,
                "/fleet",
                html! { p { (lang.t(
                    "Her finnes ingen slik lokasjon, enhet eller token.",
                    "There is no such site, device or token here.",
                )) } },
            ),
            PageError::NoSuchRelease { nav } => page(
                StatusCode::NOT_FOUND,
                lang.t("Finnes ikke", "Not found"),
                nav,
                "/releases",
                html! { p {
                    (lang.t("Her finnes ingen slik versjon. ", "There is no such release. "))
                    a href="/releases" { (lang.t("Tilbake til versjonene", "Back to the releases")) } "."
                } },
            ),
            PageError::Forbidden { nav, why } => page(
                StatusCode::FORBIDDEN,
                lang.t("Ikke tillatt", "Not allowed"),
                nav,
                "/fleet",
                html! { p.bad { (why) } },
            ),
            PageError::WindowRefused { nav, why } => page(
                StatusCode::BAD_REQUEST,
                lang.t("Vinduet ble ikke opprettet", "The window was not created"),
                nav,
                "/windows",
                html! {
                    p.bad { (why) }
                    p { a href="/windows" { (lang.t(
                        "Tilbake til overføringsvinduene",
                        "Back to the transfer windows",
                    )) } }
                },
            ),
        }
    }
}
