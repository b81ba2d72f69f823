//! [`OperatorTokenStore`] on SQLite: the operator API's clients and their tokens' hashes.
//! The types and the trait are in `crate::store::operator_tokens`; the PostgreSQL version of
//! each method is in `postgres/operator_tokens.rs`.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::operator_tokens::{OperatorClient, OperatorTokenStore};
use crate::store::timestamp::Timestamp;

impl OperatorTokenStore for SqliteStore {
    fn create_operator_token<'a>(
        &'a self,
        name: &'a str,
        token_sha256: &'a [u8; 32],
        created: Timestamp,
    ) -> StoreFuture<'a, ()> {
        let (name, hash) = (name.to_owned(), *token_sha256);
        Box::pin(self.call(move |conn| {
            let written = conn.execute(
                "INSERT INTO operator_tokens (name, token_sha256, created) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256, \
                 created = excluded.created, revoked = NULL \
                 WHERE operator_tokens.revoked IS NOT NULL",
                params![name, &hash[..], created.0],
            )?;
            if written == 0 {
                return Err(StoreError::OperatorClientExists(name));
            }
            Ok(())
        }))
    }

    fn operator_clients(&self) -> StoreFuture<'_, Vec<OperatorClient>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT name, created, revoked FROM operator_tokens ORDER BY name",
            )?;
            let clients = statement
                .query_map([], |row| OperatorClient::read(row))?
                .collect::<Result<_, _>>()?;
            Ok(clients)
        }))
    }

    fn revoke_operator_token<'a>(&'a self, name: &'a str, at: Timestamp) -> StoreFuture<'a, ()> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| {
            let known = conn.execute(
                "UPDATE operator_tokens SET revoked = COALESCE(revoked, ?2) WHERE name = ?1",
                params![name, at.0],
            )?;
            if known == 0 {
                return Err(StoreError::OperatorClientUnknown(name));
            }
            Ok(())
        }))
    }

    fn operator_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<String>> {
        let hash = *token_sha256;
        Box::pin(self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT name FROM operator_tokens \
                     WHERE token_sha256 = ?1 AND revoked IS NULL",
                )?
                .query_row([&hash[..]], |row| row.get(0))
                .optional()?)
        }))
    }
}
