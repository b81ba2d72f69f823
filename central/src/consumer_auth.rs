//! Who may read through the consumer API: OAuth2 clients with the client-credentials grant
//! (RFC 6749 section 4.4), each scoped to one county or one kommune.
//!
//! Operations create a client on the operator listener (`POST /admin/clients`) and hand its
//! id and secret, shown once, to the consumer. The consumer trades them at `POST
//! /oauth/token` on the consumer listener for a bearer token that lives
//! [`TOKEN_LIFETIME`], and sends that with every OneRoster request (`crate::oneroster`).
//! Central keeps only hashes: a salted SHA-256 of each secret and a SHA-256 of each token
//! (both are 256 random bits, so a slow password hash would buy nothing), so neither the
//! database nor a backup of it can authenticate as anyone. Secrets and tokens are never
//! logged, nor written to the audit log; client ids are.

//!
//! This module holds the hashing, the comparison and the token lifetime; the listeners'
//! handlers (`crate::api::operator` for clients, `crate::api::consumer` for tokens) call it.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::store::{ConsumerClient, ConsumerScope, Store, StoreError, Timestamp};

/// How long a bearer token is good for: long enough for a nightly sync to page through a
/// county, short enough that a leaked token is soon worthless.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Longest client name: names are for the operators' list.
pub(crate) const MAX_CLIENT_NAME_LEN: usize = 256;

/// `N` random bytes as lower-case hex: a client id, a client secret or a bearer token.
fn random_hex<const N: usize>() -> Option<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn secret_hash(salt: &[u8; 16], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `secret` is the client's, compared in constant time so the answer's timing says
/// nothing about how much of a guess was right.
pub(crate) fn secret_matches(client: &ConsumerClient, secret: &str) -> bool {
    bool::from(secret_hash(&client.secret_salt, secret).ct_eq(&client.secret_sha256))
}

/// A new client of `scope` with a fresh id and secret, and the secret itself (shown once,
/// stored only as its salted hash). `None` when the system has no randomness.
pub(crate) fn new_client(name: &str, scope: ConsumerScope) -> Option<(ConsumerClient, String)> {
    let (id, secret) = (random_hex::<12>()?, random_hex::<32>()?);
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).ok()?;
    let client = ConsumerClient {
        secret_sha256: secret_hash(&salt, &secret),
        secret_salt: salt,
        id,
        name: name.to_owned(),
        scope,
        created: Timestamp::now(),
        revoked: false,
    };
    Some((client, secret))
}

/// Issues a bearer token for `client`, stored only as its hash; `Ok(None)` when the system
/// has no randomness.
pub(crate) async fn issue_token(
    store: &dyn Store,
    client: &ConsumerClient,
) -> Result<Option<String>, StoreError> {
    let Some(token) = random_hex::<32>() else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let lifetime_ms = i64::try_from(TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let expires = Timestamp(now.0.saturating_add(lifetime_ms));
    store
        .create_consumer_token(&token_hash(&token), &client.id, expires, now)
        .await?;
    Ok(Some(token))
}

/// The live client a bearer token belongs to, if any: unknown or expired tokens and revoked
/// clients all give `None`.
pub(crate) async fn token_client(
    store: &dyn Store,
    token: &str,
) -> Result<Option<ConsumerClient>, StoreError> {
    store
        .consumer_token_client(&token_hash(&token.to_ascii_lowercase()), Timestamp::now())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_only_its_own_salted_hash() {
        let salt = [9; 16];
        let client = ConsumerClient {
            id: "c".to_owned(),
            name: "n".to_owned(),
            scope: ConsumerScope::County("46".to_owned()),
            secret_salt: salt,
            secret_sha256: secret_hash(&salt, "right"),
            created: Timestamp(0),
            revoked: false,
        };
        assert!(secret_matches(&client, "right"));
        assert!(!secret_matches(&client, "wrong"));
        assert_ne!(secret_hash(&[8; 16], "right"), client.secret_sha256);
    }
}
