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
//! Guessing is slowed per account name: [`LOGIN_FAILURES_ALLOWED`] failed sign-ins lock a
//! name for [`LOGIN_LOCK`], and while it is locked its sign-ins are refused (429) without
//! the password being checked. The count is kept in memory (`rate_limit`): a restart
//! forgets it, which is acceptable for a limit that only has to make guessing slow.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::Argon2;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use skolebro_protocol::SiteId;
use subtle::ConstantTimeEq as _;

use super::{audit, escape, page, see_other, store_failure, UiState};
use crate::rate_limit::{retry_after_seconds, RateLimiter};
use crate::store::{ConsumerScope, Role, Store, StoreError, Timestamp, UiUser};

/// The session cookie's name.
const SESSION_COOKIE: &str = "skolebro_session";

/// The login form's double-submit cookie: the login POST has no session to hold a token.
const LOGIN_COOKIE: &str = "skolebro_login";

/// Shortest password `add-user` accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Longest account name: names are for people, and they end up in every audit line.
const MAX_NAME_LEN: usize = 64;

/// Failed sign-ins an account name may have at once: enough for a person who mistypes, far
/// too few to guess a password.
pub const LOGIN_FAILURES_ALLOWED: u32 = 5;

/// How long a name stays locked once its failures are used up; after that one more attempt
/// comes back per this time, and all of them after [`LOGIN_FAILURES_ALLOWED`] times it.
pub const LOGIN_LOCK: Duration = Duration::from_secs(15 * 60);

/// The sign-in limit, per account name as typed (unknown names too, so a 429 says nothing
/// about which names exist). Not per peer address: the interface sits behind a TLS proxy,
/// where every request comes from the proxy, and a per-address lock would lock out everyone.
pub(crate) fn login_limiter() -> RateLimiter<String> {
    RateLimiter::new(
        LOGIN_FAILURES_ALLOWED,
        LOGIN_LOCK.saturating_mul(LOGIN_FAILURES_ALLOWED),
    )
}

/// The hash a failed login for an unknown name is verified against, so it takes as long as
/// one for a known name: made once, of a random password nobody has.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = random_id().map(hex::encode).unwrap_or_default();
        hash_password(&password).unwrap_or_default()
    })
}

/// Why an account cannot be created as asked.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    #[error(
        "an account name is 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_', '-' or '@'"
    )]
    Name,
    #[error("the role is operations, municipality or read_only")]
    Role,
    #[error("a municipality account needs --kommune with a four-digit kommunenummer, and only it")]
    Kommune,
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
    #[error("the password cannot be hashed: {0}")]
    Hash(String),
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, NewUserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| NewUserError::Hash(error.to_string()))
}

/// Checks and builds a new account, hashing its password: what `add-user` stores.
pub fn new_user(
    name: &str,
    role: &str,
    kommune: Option<&str>,
    password: &str,
) -> Result<UiUser, NewUserError> {
    let valid_name = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !valid_name {
        return Err(NewUserError::Name);
    }
    let role = Role::parse(role).ok_or(NewUserError::Role)?;
    let kommune = match (role, kommune) {
        (Role::Municipality, Some(code)) if ConsumerScope::Kommune(code.to_owned()).is_valid() => {
            Some(code.to_owned())
        }
        (Role::Operations | Role::ReadOnly, None) => None,
        _ => return Err(NewUserError::Kommune),
    };
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(NewUserError::ShortPassword);
    }
    Ok(UiUser {
        name: name.to_owned(),
        role,
        kommune,
        password_hash: hash_password(password)?,
        created: Timestamp::now(),
    })
}

/// Verifies a password against a stored hash off the async workers (argon2 is meant to be
/// slow). Without a hash (no such account) it verifies against [`dummy_hash`] and fails, so
/// both cases take as long. Any failure, a malformed hash included, is a wrong password.
async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        let verified = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        verified && known
    })
    .await
    .unwrap_or(false)
}

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
    pub fn sees(&self, site: &SiteId) -> bool {
        match self {
            View::All => true,
            View::Only(sites) => sites.contains(site),
        }
    }
}

impl Operator {
    /// Whether the operator may release and reject held deltas (of the sites it sees).
    pub fn may_decide_held(&self) -> bool {
        matches!(self.user.role, Role::Operations | Role::Municipality)
    }

    /// Whether the operator may revoke tokens and devices and read the audit log.
    pub fn is_operations(&self) -> bool {
        self.user.role == Role::Operations
    }

    /// Whether `token`, from a submitted form, is this session's CSRF token.
    pub fn csrf_ok(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    /// The sites this operator may see, from the current school records.
    pub async fn view(&self, store: &dyn Store) -> Result<View, StoreError> {
        match (self.user.role, &self.user.kommune) {
            (Role::Municipality, Some(kommune)) => {
                let scope = ConsumerScope::Kommune(kommune.clone());
                let schools = store.current_schools().await?;
                Ok(View::Only(
                    schools
                        .into_iter()
                        .filter(|(_, school)| scope.covers(school))
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

    /// The menu of the pages this operator may open, with the logout form.
    pub fn nav(&self) -> String {
        let mut nav = String::from(
            "<a href=\"/fleet\">Fleet</a><a href=\"/held\">Held deltas</a>\
             <a href=\"/releases\">Releases</a><a href=\"/windows\">Transfer windows</a>",
        );
        if self.user.role != Role::Municipality {
            nav.push_str("<a href=\"/tokens\">Sticks and tokens</a>");
        }
        if self.is_operations() {
            nav.push_str("<a href=\"/audit\">Audit log</a>");
        }
        let scope = match &self.user.kommune {
            Some(kommune) => format!("municipality {}", escape(kommune)),
            None => self.user.role.as_str().replace('_', "-"),
        };
        nav.push_str(&format!(
            "<form method=\"post\" action=\"/logout\">{}<span>{} ({scope})</span> \
             <button type=\"submit\">Log out</button></form>",
            self.csrf_field(),
            escape(&self.user.name),
        ));
        nav
    }

    /// The hidden form field carrying the CSRF token.
    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(&self.csrf)
        )
    }
}

/// The signed-in operator, or the answer for a request without a live session: a redirect
/// to the login page.
pub(crate) async fn operator(state: &UiState, headers: &HeaderMap) -> Result<Operator, Response> {
    let Some(id) = cookie(headers, SESSION_COOKIE).and_then(decode_id) else {
        return Err(see_other("/login"));
    };
    let session_sha256: [u8; 32] = Sha256::digest(id).into();
    match state
        .app
        .store
        .session(&session_sha256, Timestamp::now())
        .await
    {
        Ok(Some(session)) => Ok(Operator {
            user: session.user,
            csrf: session.csrf,
            session_sha256,
        }),
        Ok(None) => Err(see_other("/login")),
        Err(error) => Err(store_failure(&error)),
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

fn random_id() -> Result<[u8; 32], getrandom::Error> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id)?;
    Ok(id)
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

fn login_page(state: &UiState, status: StatusCode, message: &str) -> Response {
    let Ok(token) = random_id() else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign in",
            "",
            "<p>Central has no randomness for a login form right now; try again.</p>",
        );
    };
    let token = hex::encode(token);
    let body = format!(
        "{message}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <p><label>Name<br><input type=\"text\" name=\"name\" id=\"name\" \
         autocomplete=\"username\" required></label></p>\
         <p><label>Password<br><input type=\"password\" name=\"password\" id=\"password\" \
         autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>"
    );
    with_cookie(
        page(status, "Sign in", "", &body),
        set_cookie(state, LOGIN_COOKIE, &token, 3600),
    )
}

/// `GET /login`.
pub(crate) async fn get_login(State(state): State<Arc<UiState>>) -> Response {
    login_page(&state, StatusCode::OK, "")
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
) -> Response {
    let Some(Form(form)) = form.ok() else {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            "<p class=\"bad\">Fill in both fields.</p>",
        );
    };
    let cookie_token = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if cookie_token.is_empty() || !bool::from(cookie_token.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            "<p class=\"bad\">The form expired. Sign in again.</p>",
        );
    }
    // The name tried is recorded and counted as written, bounded: it may be a mistyped
    // password. Each attempt is counted before its password is checked, so guesses sent in
    // parallel cannot outrun the count; a successful sign-in gives the allowance back.
    let tried: String = form.name.chars().take(MAX_NAME_LEN).collect();
    let now = Instant::now();
    if let Err(wait) = state.login_limiter.check(&tried, now) {
        tracing::warn!("sign-in refused: the name is locked after failed sign-ins");
        return locked(&state, wait);
    }
    let store = state.app.store.as_ref();
    let user = match store.user(&form.name).await {
        Ok(user) => user,
        Err(error) => return store_failure(&error),
    };
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let verified = verify_password(form.password, hash).await;
    let Some(user) = user.filter(|_| verified) else {
        if let Err(error) = audit(store, &tried, "login_failed", "", "wrong name or password").await
        {
            return store_failure(&error);
        }
        if let Err(wait) = state.login_limiter.ready(&tried, now) {
            // The lock holds even if its line cannot be written: it fails closed.
            let detail = format!(
                "{LOGIN_FAILURES_ALLOWED} failed sign-ins: locked for {} min",
                retry_after_seconds(wait).div_ceil(60)
            );
            if let Err(error) = audit(store, &tried, "login_locked", "", &detail).await {
                return store_failure(&error);
            }
            return locked(&state, wait);
        }
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            "<p class=\"bad\">Wrong name or password.</p>",
        );
    };
    state.login_limiter.forget(&tried);
    let (Ok(id), Ok(csrf)) = (random_id(), random_id()) else {
        return login_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "<p class=\"bad\">Central has no randomness right now; try again.</p>",
        );
    };
    let now = Timestamp::now();
    let lifetime = state.settings.session_lifetime;
    let expires = Timestamp(
        now.0
            .saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
    );
    let id_sha256: [u8; 32] = Sha256::digest(id).into();
    if let Err(error) = audit(store, &user.name, "login", "", "signed in").await {
        return store_failure(&error);
    }
    if let Err(error) = store
        .create_session(&id_sha256, &user.name, &hex::encode(csrf), expires, now)
        .await
    {
        return store_failure(&error);
    }
    tracing::info!(operator = user.name, "operator signed in");
    let response = with_cookie(
        see_other("/fleet"),
        set_cookie(&state, SESSION_COOKIE, &hex::encode(id), lifetime.as_secs()),
    );
    with_cookie(response, set_cookie(&state, LOGIN_COOKIE, "", 0))
}

/// 429 for a locked name, with `Retry-After`, in words, and a fresh form for another name.
fn locked(state: &UiState, wait: Duration) -> Response {
    let seconds = retry_after_seconds(wait);
    let message = format!(
        "<p class=\"bad\" id=\"locked\">Too many failed sign-ins for this name. It can sign \
         in again in {} minutes; until then no password is checked for it. If this was not \
         you, tell operations.</p>",
        seconds.div_ceil(60)
    );
    let mut response = login_page(state, StatusCode::TOO_MANY_REQUESTS, &message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

/// `POST /logout`: ends the session in the store and deletes the cookie.
pub(crate) async fn post_logout(
    State(state): State<Arc<UiState>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let operator = match operator(&state, &headers).await {
        Ok(operator) => operator,
        Err(response) => return response,
    };
    if !form
        .ok()
        .is_some_and(|Form(form)| operator.csrf_ok(&form.csrf))
    {
        return super::pages::forbidden(
            &operator,
            "The form expired. Reload the page and try again.",
        );
    }
    let store = state.app.store.as_ref();
    if let Err(error) = audit(store, &operator.user.name, "logout", "", "signed out").await {
        return store_failure(&error);
    }
    if let Err(error) = store.delete_session(&operator.session_sha256).await {
        return store_failure(&error);
    }
    with_cookie(
        see_other("/login"),
        set_cookie(&state, SESSION_COOKIE, "", 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked_before_they_are_hashed() {
        let password = "correct horse battery";
        assert!(matches!(
            new_user("bad name", "operations", None, password),
            Err(NewUserError::Name)
        ));
        assert!(matches!(
            new_user("kari", "admin", None, password),
            Err(NewUserError::Role)
        ));
        assert!(matches!(
            new_user("kari", "municipality", None, password),
            Err(NewUserError::Kommune)
        ));
        assert!(matches!(
            new_user("kari", "municipality", Some("46"), password),
            Err(NewUserError::Kommune)
        ));
        assert!(matches!(
            new_user("ops", "operations", Some("4601"), password),
            Err(NewUserError::Kommune)
        ));
        assert!(matches!(
            new_user("kari", "municipality", Some("4601"), "short"),
            Err(NewUserError::ShortPassword)
        ));
        let user = new_user("kari", "municipality", Some("4601"), password).unwrap();
        assert_eq!(user.role, Role::Municipality);
        assert!(user.password_hash.starts_with("$argon2id$"));
        assert!(!user.password_hash.contains(password));
    }

    #[tokio::test]
    async fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
        assert!(!verify_password("anything".into(), Some("not a hash".into())).await);
    }

    #[test]
    fn five_failures_lock_a_name_for_fifteen_minutes_and_no_other() {
        let limiter = login_limiter();
        let start = Instant::now();
        let kari = "kari".to_owned();
        for _ in 0..LOGIN_FAILURES_ALLOWED {
            assert!(limiter.check(&kari, start).is_ok());
        }
        let wait = limiter.check(&kari, start).expect_err("locked");
        assert_eq!(retry_after_seconds(wait), LOGIN_LOCK.as_secs());
        assert!(limiter.check(&"ops".to_owned(), start).is_ok());
        let later = start + LOGIN_LOCK + Duration::from_secs(1);
        assert!(limiter.check(&kari, later).is_ok(), "one more attempt");
        assert!(limiter.check(&kari, later).is_err(), "and only one");
    }

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
