//! Operator accounts of the web interface: how `skolebro-central add-user` checks and hashes
//! an account, how a sign-in's password is verified, and how guessing is slowed.
//!
//! Passwords are hashed with argon2id; only the PHC string is stored. Guessing is slowed per
//! account name: [`LOGIN_FAILURES_ALLOWED`] failed sign-ins lock a name for [`LOGIN_LOCK`]
//! (`LOGIN_ALLOWANCE`, counted in the store's `sign_in` area, so every central process on
//! one database sees the same lock and a restart clears none). The web interface's sign-in
//! (`crate::ui::auth`) drives this module; it knows nothing of HTTP.

use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::Argon2;

use crate::store::{ConsumerScope, Role, SignInAllowance, Timestamp, UiUser};

/// Shortest password `add-user` and `reset-password` accept.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The password hash of a disabled account (`skolebro-central disable-user`): not a PHC
/// string, so no password verifies against it and sign-in refuses it like a wrong password,
/// while the account and its audit trail stay. `reset-password` enables it again.
pub const DISABLED_HASH: &str = "!disabled";

/// Longest account name: names are for people, and they end up in every audit line.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Failed sign-ins an account name may have at once: enough for a person who mistypes, far
/// too few to guess a password.
pub const LOGIN_FAILURES_ALLOWED: u32 = 5;

/// How long a name stays locked once its failures are used up; after that one more attempt
/// comes back per this time, and all of them after [`LOGIN_FAILURES_ALLOWED`] times it.
pub const LOGIN_LOCK: Duration = Duration::from_secs(15 * 60);

/// The sign-in limit, per account name as typed (unknown names too, so a 429 says nothing
/// about which names exist). Not per peer address: the interface sits behind a TLS proxy,
/// where every request comes from the proxy, and a per-address lock would lock out everyone.
pub(crate) const LOGIN_ALLOWANCE: SignInAllowance = SignInAllowance {
    capacity: LOGIN_FAILURES_ALLOWED,
    period: LOGIN_LOCK.saturating_mul(LOGIN_FAILURES_ALLOWED),
};

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

/// Checks a new password's length: what `add-user` and `reset-password` refuse.
pub fn check_password(password: &str) -> Result<(), NewUserError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(NewUserError::ShortPassword);
    }
    Ok(())
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
    check_password(password)?;
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
pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
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

/// 32 random bytes: a session id, a CSRF token, the dummy password.
pub(crate) fn random_id() -> Result<[u8; 32], getrandom::Error> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id)?;
    Ok(id)
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
}
