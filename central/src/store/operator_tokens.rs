//! The operator API's clients as the store keeps them: a name and the SHA-256 of its bearer
//! token, written by `skolebro-central operator-token` (`crate::operator_auth`) and read by
//! the operator listener's door (`api::operator::auth`) on every request, which audits the
//! request's action under the name it finds here. [`OperatorTokenStore`] is what the
//! backends implement in their `operator_tokens.rs`.

use super::columns::DbRow;
use super::error::StoreFuture;
use super::timestamp::Timestamp;

/// An operator API client as listed: never its token, nor the token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorClient {
    /// The name its actions are audited under, as `api:<name>`.
    pub name: String,
    pub created: Timestamp,
    /// When its token was revoked; `None` while the token is good.
    pub revoked: Option<Timestamp>,
}

impl OperatorClient {
    /// Reads `name, created, revoked` from a row of either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<OperatorClient, R::Error> {
        Ok(OperatorClient {
            name: row.column(0)?,
            created: Timestamp(row.column(1)?),
            revoked: row.column::<Option<i64>>(2)?.map(Timestamp),
        })
    }
}

/// The operator API's named clients and their bearer tokens, by hash.
pub trait OperatorTokenStore: Send + Sync {
    /// Stores the token of client `name` by its SHA-256. A name whose token is revoked gets
    /// the new token (and loses the revocation); a name with a good token is
    /// [`StoreError::OperatorClientExists`].
    ///
    /// [`StoreError::OperatorClientExists`]: super::StoreError::OperatorClientExists
    fn create_operator_token<'a>(
        &'a self,
        name: &'a str,
        token_sha256: &'a [u8; 32],
        created: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// Every client, by name.
    fn operator_clients(&self) -> StoreFuture<'_, Vec<OperatorClient>>;

    /// Revokes the token of client `name` at `at`: refused from now on. Again is no error
    /// (the first time stays); an unknown name is [`StoreError::OperatorClientUnknown`].
    ///
    /// [`StoreError::OperatorClientUnknown`]: super::StoreError::OperatorClientUnknown
    fn revoke_operator_token<'a>(&'a self, name: &'a str, at: Timestamp) -> StoreFuture<'a, ()>;

    /// The name of the client whose good token has this hash, or `None` for an unknown or
    /// revoked one alike.
    fn operator_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<String>>;
}
