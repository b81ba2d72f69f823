//! Who is using the web interface, and what they may see and do.
//!
//! Accounts come from `skolebro-central add-user` (password hashed with argon2id; only the
//! PHC string is stored). Signing in creates a session: 32 random bytes in a cookie
//! (`HttpOnly; SameSite=Strict; Path=/`, plus `Secure` unless configured off for loopback),
//! stored only as their SHA-256 with an expiry, so a copy of the database holds no usable
//! cookie. Each session has its own CSRF token, which every form carries and every POST must
//! echo; the login form, which comes before any session, uses a double-submit cookie instead.
//!
//! What an account sees follows its role: operations and read-only accounts see every site;
//! a municipality account sees the sites whose current school records carry its
//! kommunenummer (the same test the consumer scopes use, [`ConsumerScope::covers`]). A site
//! or device outside an account's view answers exactly as one that does not exist.
//!
//! Handlers name the signed-in [`Operator`] as an argument (it is an extractor): without a
//! live session the request is answered with the redirect to the login page before the
//! handler runs; a POST handler then checks its form's CSRF token with [`Operator::form`].
//!
//! Guessing is slowed per account name ([`crate::accounts`]): after
//! `LOGIN_FAILURES_ALLOWED` failed sign-ins a name is locked, and while it is locked its
//! sign-ins are refused (429) without the password being checked. The count is in the store,
//! so it holds across restarts and for every central process on one database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use skolebro_protocol::SiteId;
use subtle::ConstantTimeEq as _;

use maud::{html, Markup};

use super::error::PageError;
use super::html::{page, see_other};
use super::text::{current, Lang, Noun, LANG_COOKIE};
use crate::accounts::{
    random_id, verify_password, LOGIN_ALLOWANCE, LOGIN_FAILURES_ALLOWED, MAX_NAME_LEN,
};
use crate::audit;
use crate::rate_limit::retry_after_seconds;
use crate::state::UiState;
use crate::store::{Role, Store, StoreError, Timestamp, UiUser};

/// The session cookie's name.
const SESSION_COOKIE: &str = "skolebro_session";

/// The login form's double-submit cookie: the login POST has no session to hold a token.
const LOGIN_COOKIE: &str = "skolebro_login";

/// The signed-in operator of a request.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    pub user: UiUser,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    session_sha256: [u8; 32],
}

/// The sites an operator may see.
#[derive(Debug)]
pub(crate) enum View {
    /// Every site: operations and read-only accounts.
    All,
    /// Only these: a municipality account's kommune.
    Only(HashSet<SiteId>),
}

impl View {
    /// Whether the operator may see `site` (and its devices, transfers and held deltas).
    pub(super) fn sees(&self, site: &SiteId) -> bool {
        match self {
            View::All => true,
            View::Only(sites) => sites.contains(site),
        }
    }
}

impl Operator {
    /// Whether the operator may release and reject held deltas (of the sites it sees).
    pub(super) fn may_decide_held(&self) -> bool {
        matches!(self.user.role, Role::Operations | Role::Municipality)
    }

    /// Whether the operator may revoke tokens and devices and read the audit log.
    pub(super) fn is_operations(&self) -> bool {
        self.user.role == Role::Operations
    }

    /// Whether `token`, from a submitted form, is this session's CSRF token.
    fn csrf_ok(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    /// The submitted form, if it arrived whole and carries this session's CSRF token;
    /// otherwise the "form expired" refusal.
    pub(super) fn form<T: CsrfForm>(
        &self,
        form: Result<Form<T>, FormRejection>,
    ) -> Result<T, PageError> {
        match form {
            Ok(Form(form)) if self.csrf_ok(form.csrf()) => Ok(form),
            _ => Err(self.forbidden(current().t(
                "Skjemaet er utløpt. Last inn siden på nytt og prøv igjen.",
                "The form expired. Reload the page and try again.",
            ))),
        }
    }

    /// 403 with a reason, for an action this operator's role does not allow.
    pub(super) fn forbidden(&self, why: &str) -> PageError {
        PageError::Forbidden {
            nav: self.nav(),
            why: why.to_owned(),
        }
    }

    /// 404 for a site, device or token that does not exist or is outside the view.
    pub(super) fn not_found(&self) -> PageError {
        PageError::NotFound { nav: self.nav() }
    }

    /// The sites this operator may see. A municipality sees the sites registered with a
    /// school of its kommune: the registration decides, never the records a device sent, so
    /// a device naming another kommune's school cannot put its site in that kommune's view.
    pub(super) async fn view(&self, store: &dyn Store) -> Result<View, StoreError> {
        match (self.user.role, &self.user.kommune) {
            (Role::Municipality, Some(kommune)) => {
                let schools = store.registered_schools().await?;
                Ok(View::Only(
                    schools
                        .into_iter()
                        .filter(|(_, school)| school.kommunenummer == *kommune)
                        .map(|(site, _)| site)
                        .collect(),
                ))
            }
            // A municipality account without a kommune cannot exist (the table's check),
            // but if it did it would see nothing rather than everything.
            (Role::Municipality, None) => Ok(View::Only(HashSet::new())),
            (Role::Operations | Role::ReadOnly, _) => Ok(View::All),
        }
    }

    /// The menu of the pages this operator may open, with the logout form. The menu is a
    /// list, so a screen reader says how many pages there are, and each item wraps as a whole
    /// on a phone.
    pub(super) fn nav(&self) -> Markup {
        let lang = current();
        let scope = match &self.user.kommune {
            Some(kommune) => format!("{} {kommune}", lang.t("kommune", "municipality")),
            None => match (lang, self.user.role) {
                (Lang::Nb, Role::Operations) => "drift".to_owned(),
                (Lang::Nb, Role::ReadOnly) => "kun lesing".to_owned(),
                (_, role) => role.as_str().replace('_', "-"),
            },
        };
        html! {
            nav { ul {
                li { a href="/fleet" { (lang.t("Flåten", "Fleet")) } }
                li { a href="/held" { (lang.t("Holdte endringer", "Held deltas")) } }
                li { a href="/releases" { (lang.t("Versjoner", "Releases")) } }
                li { a href="/windows" { (lang.t("Overføringsvinduer", "Transfer windows")) } }
                li { a href="/reads" { (lang.t("Oppslag", "Reads")) } }
                @if self.user.role != Role::Municipality {
                    li { a href="/tokens" { (lang.t("Pinner og tokens", "Sticks and tokens")) } }
                }
                @if matches!(self.user.role, Role::Operations | Role::Municipality) {
                    li { a href="/privacy" { (lang.t("Personvern", "Privacy")) } }
                }
                @if self.is_operations() {
                    li { a href="/audit" { (lang.t("Revisjonslogg", "Audit log")) } }
                }
            } }
            form method="post" action="/logout" {
                (self.csrf_field())
                span { (self.user.name) " (" (scope) ")" } " "
                button type="submit" { (lang.t("Logg ut", "Log out")) }
            }
        }
    }

    /// The hidden form field carrying the CSRF token.
    pub(super) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// A form that carries the session's CSRF token, as every form of a signed-in page does.
pub(crate) trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// The form of a POST that carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct EmptyForm {
    csrf: String,
}

impl CsrfForm for EmptyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The signed-in operator of the request's session cookie; a request without a live
/// session is answered with the redirect to the login page.
impl FromRequestParts<Arc<UiState>> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<UiState>,
    ) -> Result<Operator, PageError> {
        let id = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(decode_id)
            .ok_or(PageError::SignIn)?;
        let session_sha256: [u8; 32] = Sha256::digest(id).into();
        let session = state
            .app
            .store
            .session(&session_sha256, Timestamp::now())
            .await?
            .ok_or(PageError::SignIn)?;
        Ok(Operator {
            user: session.user,
            csrf: session.csrf,
            session_sha256,
        })
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A 32-byte random id as its 64 hex characters; anything else is no id.
fn decode_id(text: &str) -> Option<[u8; 32]> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

/// A `Set-Cookie` value with the interface's attributes; `max_age` 0 deletes it.
fn set_cookie(state: &UiState, name: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.settings.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn login_page(state: &UiState, status: StatusCode, message: Markup) -> Response {
    let lang = current();
    let title = lang.t("Logg inn", "Sign in");
    let Ok(token) = random_id() else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            title,
            html! {},
            "/login",
            html! { p { (lang.t(
                "Sentralen mangler tilfeldighet til et innloggingsskjema akkurat nå; prøv igjen.",
                "Central has no randomness for a login form right now; try again.",
            )) } },
        );
    };
    let token = hex::encode(token);
    let body = html! {
        (message)
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            p { label { (lang.t("Navn", "Name")) br;
                input type="text" name="name" id="name" autocomplete="username" required; } }
            p { label { (lang.t("Passord", "Password")) br;
                input type="password" name="password" id="password"
                    autocomplete="current-password" required; } }
            p { button type="submit" id="sign-in" { (title) } }
        }
    };
    with_cookie(
        page(status, title, html! {}, "/login", body),
        set_cookie(state, LOGIN_COOKIE, &token, 3600),
    )
}

/// A message above the login form.
fn bad(text: &str) -> Markup {
    html! { p.bad { (text) } }
}

/// `GET /login`.
pub(crate) async fn get_login(State(state): State<Arc<UiState>>) -> Response {
    login_page(&state, StatusCode::OK, html! {})
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    name: String,
    password: String,
}

/// `POST /login`: checks the form's token against its cookie, then the password; a wrong
/// name and a wrong password get the same answer.
pub(crate) async fn post_login(
    State(state): State<Arc<UiState>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Some(Form(form)) = form.ok() else {
        return Ok(login_page(
            &state,
            StatusCode::BAD_REQUEST,
            bad(current().t("Fyll inn begge feltene.", "Fill in both fields.")),
        ));
    };
    let cookie_token = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if cookie_token.is_empty() || !bool::from(cookie_token.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Ok(login_page(
            &state,
            StatusCode::FORBIDDEN,
            bad(current().t(
                "Skjemaet er utløpt. Logg inn på nytt.",
                "The form expired. Sign in again.",
            )),
        ));
    }
    // The name tried is recorded and counted as written, bounded: it may be a mistyped
    // password. Each attempt is counted before its password is checked, so guesses sent in
    // parallel cannot outrun the count; a successful sign-in gives the allowance back.
    let tried: String = form.name.chars().take(MAX_NAME_LEN).collect();
    let store = state.app.store.as_ref();
    let now = Timestamp::now();
    if let Some(wait) = store.take_sign_in(&tried, LOGIN_ALLOWANCE, now).await? {
        tracing::warn!("sign-in refused: the name is locked after failed sign-ins");
        return Ok(locked(&state, wait));
    }
    let user = store.user(&form.name).await?;
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let verified = verify_password(form.password, hash).await;
    let Some(user) = user.filter(|_| verified) else {
        audit::record(store, &tried, "login_failed", "", "wrong name or password").await?;
        if let Some(wait) = store.sign_in_ready(&tried, LOGIN_ALLOWANCE, now).await? {
            // The lock holds even if its line cannot be written: it fails closed.
            let detail = format!(
                "{LOGIN_FAILURES_ALLOWED} failed sign-ins: locked for {} min",
                retry_after_seconds(wait).div_ceil(60)
            );
            audit::record(store, &tried, "login_locked", "", &detail).await?;
            return Ok(locked(&state, wait));
        }
        return Ok(login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            bad(current().t("Feil navn eller passord.", "Wrong name or password.")),
        ));
    };
    store.forget_sign_ins(&tried).await?;
    let (Ok(id), Ok(csrf)) = (random_id(), random_id()) else {
        return Ok(login_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            bad(current().t(
                "Sentralen mangler tilfeldighet akkurat nå; prøv igjen.",
                "Central has no randomness right now; try again.",
            )),
        ));
    };
    let now = Timestamp::now();
    let lifetime = state.settings.session_lifetime;
    let expires = Timestamp(
        now.0
            .saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
    );
    let id_sha256: [u8; 32] = Sha256::digest(id).into();
    audit::record(store, &user.name, "login", "", "signed in").await?;
    store
        .create_session(&id_sha256, &user.name, &hex::encode(csrf), expires, now)
        .await?;
    tracing::info!(operator = user.name, "operator signed in");
    let response = with_cookie(
        see_other("/fleet"),
        set_cookie(&state, SESSION_COOKIE, &hex::encode(id), lifetime.as_secs()),
    );
    Ok(with_cookie(
        response,
        set_cookie(&state, LOGIN_COOKIE, "", 0),
    ))
}

/// 429 for a locked name, with `Retry-After`, in words, and a fresh form for another name.
fn locked(state: &UiState, wait: Duration) -> Response {
    let seconds = retry_after_seconds(wait);
    let minutes = seconds.div_ceil(60);
    let message = html! { p.bad #locked { @match current() {
        Lang::Nb => {
            "For mange mislykkede innlogginger for dette navnet. Det kan logge inn igjen om "
            (current().count(minutes, Noun::Minute))
            "; til da sjekkes ikke noe passord for det. Var det ikke deg, si fra til driften."
        }
        Lang::English => {
            "Too many failed sign-ins for this name. It can sign in again in "
            (current().count(minutes, Noun::Minute))
            "; until then no password is checked for it. If this was not you, tell operations."
        }
    } } };
    let mut response = login_page(state, StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// `POST /logout`: ends the session in the store and deletes the cookie.
pub(crate) async fn post_logout(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    let store = state.app.store.as_ref();
    audit::record(store, &operator.user.name, "logout", "", "signed out").await?;
    store.delete_session(&operator.session_sha256).await?;
    Ok(with_cookie(
        see_other("/login"),
        set_cookie(&state, SESSION_COOKIE, "", 0),
    ))
}

/// The query of the header's language link.
#[derive(Debug, Deserialize)]
pub(crate) struct LanguageQuery {
    to: String,
    back: Option<String>,
}

/// `GET /language?to=en&back=/held`: keeps the chosen language in a cookie for a year and
/// goes back to the page the link was on (a path of this interface, nothing else).
pub(crate) async fn get_language(
    State(state): State<Arc<UiState>>,
    query: Result<axum::extract::Query<LanguageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return see_other("/fleet");
    };
    let back = query
        .back
        .filter(|back| {
            back.starts_with('/')
                && !back.starts_with("//")
                && back
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%".contains(&b))
        })
        .unwrap_or_else(|| "/fleet".to_owned());
    let Some(lang) = Lang::from_code(&query.to) else {
        return see_other(&back);
    };
    with_cookie(
        see_other(&back),
        set_cookie(&state, LANG_COOKIE, lang.code(), 365 * 24 * 3600),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; skolebro_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(decode_id("abc"), None);
        assert_eq!(decode_id(&"ab".repeat(32)), Some([0xab; 32]));
    }
}
