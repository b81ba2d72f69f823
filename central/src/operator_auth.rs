//! Who may call the operator API (`admin_listen`, `crate::api::operator`): named clients,
//! each with one bearer token. Operations make a token with `skolebro-central
//! operator-token create NAME`, which prints it once; the client (a script, `skolebro-provision`
//! through `SKOLEBRO_ADMIN_TOKEN` or `--admin-token-file`) sends it as `Authorization: Bearer
//! <token>` with every request, and the listener's door finds the client's name by the
//! token's hash (`OperatorTokenStore`) and audits every change the request makes as
//! `api:<name>`. `revoke NAME` makes the token worthless at once.
//!
//! A token is 256 random bits, so central keeps only its plain SHA-256 (as for the consumer
//! API's tokens, `consumer_auth`): neither the database nor a backup of it can call the API.
//! Tokens are never logged nor written to the audit log; client names are.

use sha2::{Digest as _, Sha256};

use crate::audit;
use crate::store::{OperatorClient, Store, StoreError, Timestamp};

/// Longest client name: a name is for the audit log and the list.
pub const MAX_CLIENT_NAME_LEN: usize = 64;

/// An operator API token as made: shown once, to the operator who made it. Its `Debug`
/// leaves the token out, so it cannot reach a log by accident.
pub struct OperatorToken(String);

impl OperatorToken {
    /// The token's text, 64 lower-case hex characters: to print once, or to send.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(…)")
    }
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum OperatorTokenError {
    /// The name is not one the audit log can carry as `api:<name>`.
    #[error(
        "an operator API client's name is 1 to {MAX_CLIENT_NAME_LEN} characters of a-z, A-Z, \
         0-9, '.', '_' or '-'"
    )]
    InvalidName,
    /// The system would not give random bytes.
    #[error("the system has no randomness to make a token from")]
    NoRandomness,
    /// The store refused ([`StoreError::OperatorClientExists`],
    /// [`StoreError::OperatorClientUnknown`]) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The audit log's actor for client `name`: `api:<name>`.
pub fn actor(name: &str) -> String {
    format!("api:{name}")
}

/// Whether `name` may name a client: 1 to [`MAX_CLIENT_NAME_LEN`] of `[A-Za-z0-9._-]`.
pub fn valid_client_name(name: &str) -> bool {
    (1..=MAX_CLIENT_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Makes a token for client `name` (a revoked client's name gets a new one), audited as
/// `create_operator_token` by `actor` before it is stored; only its hash is kept.
pub async fn create(
    store: &dyn Store,
    actor: &str,
    name: &str,
) -> Result<OperatorToken, OperatorTokenError> {
    if !valid_client_name(name) {
        return Err(OperatorTokenError::InvalidName);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| OperatorTokenError::NoRandomness)?;
    let token = OperatorToken(hex::encode(bytes));
    if let Some(client) = clients(store).await?.iter().find(|c| c.name == name) {
        if client.revoked.is_none() {
            return Err(StoreError::OperatorClientExists(name.to_owned()).into());
        }
    }
    audit::record(store, actor, "create_operator_token", name, "created").await?;
    store
        .create_operator_token(name, &token_hash(token.reveal()), Timestamp::now())
        .await?;
    Ok(token)
}

/// Revokes the token of client `name`, audited as `revoke_operator_token` by `actor` first;
/// an unknown name is [`StoreError::OperatorClientUnknown`] and writes no line.
pub async fn revoke(store: &dyn Store, actor: &str, name: &str) -> Result<(), OperatorTokenError> {
    if !clients(store).await?.iter().any(|c| c.name == name) {
        return Err(StoreError::OperatorClientUnknown(name.to_owned()).into());
    }
    audit::record(store, actor, "revoke_operator_token", name, "revoked").await?;
    store.revoke_operator_token(name, Timestamp::now()).await?;
    Ok(())
}

/// Every client, by name, without tokens.
pub async fn clients(store: &dyn Store) -> Result<Vec<OperatorClient>, StoreError> {
    store.operator_clients().await
}

/// The name of the client whose good token `token` is; `None` for anything else (unknown,
/// revoked, malformed), whichever the reason.
pub(crate) async fn client_of(
    store: &dyn Store,
    token: &str,
) -> Result<Option<String>, StoreError> {
    let token = token.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    store
        .operator_token_client(&token_hash(&token.to_ascii_lowercase()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_name_is_short_and_plain_so_the_audit_log_can_carry_it() {
        for name in ["prometheus", "provision.kari", "demo_1", "a-b"] {
            assert!(valid_client_name(name), "{name}");
        }
        let long = "x".repeat(MAX_CLIENT_NAME_LEN + 1);
        for name in ["", "kari nordmann", "a:b", "ø", "a/b", long.as_str()] {
            assert!(!valid_client_name(name), "{name}");
        }
        assert_eq!(actor("prometheus"), "api:prometheus");
    }

    #[test]
    fn a_token_does_not_show_in_debug_output() {
        let token = OperatorToken("ab".repeat(32));
        assert!(!format!("{token:?}").contains("abab"));
    }
}
