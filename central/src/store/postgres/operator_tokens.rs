//! [`OperatorTokenStore`] on PostgreSQL: the operator API's clients and their tokens'
//! hashes. The types and the trait are in `crate::store::operator_tokens`; the SQLite
//! version of each method is in `sqlite/operator_tokens.rs`.

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::operator_tokens::{OperatorClient, OperatorTokenStore};
use crate::store::timestamp::Timestamp;

impl OperatorTokenStore for PostgresStore {
    fn create_operator_token<'a>(
        &'a self,
        name: &'a str,
        token_sha256: &'a [u8; 32],
        created: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let written = conn
                .execute(
                    "INSERT INTO operator_tokens (name, token_sha256, created) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256, \
                     created = excluded.created, revoked = NULL \
                     WHERE operator_tokens.revoked IS NOT NULL",
                    &[&name, &&token_sha256[..], &created.0],
                )
                .await?;
            if written == 0 {
                return Err(StoreError::OperatorClientExists(name.to_owned()));
            }
            Ok(())
        })
    }

    fn operator_clients(&self) -> StoreFuture<'_, Vec<OperatorClient>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT name, created, revoked FROM operator_tokens ORDER BY name",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(OperatorClient::read)
                .collect::<Result<_, _>>()?)
        })
    }

    fn revoke_operator_token<'a>(&'a self, name: &'a str, at: Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let known = conn
                .execute(
                    "UPDATE operator_tokens SET revoked = COALESCE(revoked, $2) WHERE name = $1",
                    &[&name, &at.0],
                )
                .await?;
            if known == 0 {
                return Err(StoreError::OperatorClientUnknown(name.to_owned()));
            }
            Ok(())
        })
    }

    fn operator_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .query_opt(
                    "SELECT name FROM operator_tokens \
                     WHERE token_sha256 = $1 AND revoked IS NULL",
                    &[&&token_sha256[..]],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }
}
