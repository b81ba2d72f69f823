//! [`ConsumerStore`] on SQLite: consumer clients and their bearer tokens. The types and the
//! trait are in `crate::store::consumers`; the PostgreSQL version of each method is in
//! `postgres/consumers.rs`.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::consumers::{ClientRow, ConsumerClient, ConsumerStore, CLIENT_COLUMNS};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::timestamp::Timestamp;

impl ConsumerStore for SqliteStore {
    fn create_consumer_client<'a>(&'a self, client: &'a ConsumerClient) -> StoreFuture<'a, ()> {
        let client = client.clone();
        Box::pin(self.call(move |conn| {
            let (kind, code) = client.scope.to_db();
            let inserted = conn.execute(
                "INSERT INTO consumer_clients \
                 (id, name, scope_kind, scope_code, secret_salt, secret_sha256, created, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                params![
                    client.id,
                    client.name,
                    kind,
                    code,
                    &client.secret_salt[..],
                    &client.secret_sha256[..],
                    client.created.0,
                    client.revoked,
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::ClientExists(client.id));
            }
            Ok(())
        }))
    }

    fn consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConsumerClient>> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM consumer_clients WHERE id = ?1"
            ))?
            .query_row([id.as_str()], |row| ClientRow::read(row))
            .optional()?
            .map(ClientRow::into_client)
            .transpose()
        }))
    }

    fn list_consumer_clients(&self) -> StoreFuture<'_, Vec<ConsumerClient>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM consumer_clients ORDER BY created, id"
            ))?;
            let rows = statement.query_map([], |row| ClientRow::read(row))?;
            let mut clients = Vec::new();
            for row in rows {
                clients.push(row?.into_client()?);
            }
            Ok(clients)
        }))
    }

    fn revoke_consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let updated = tx.execute(
                "UPDATE consumer_clients SET revoked = 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::ClientUnknown);
            }
            tx.execute(
                "DELETE FROM consumer_tokens WHERE client = ?1",
                [id.as_str()],
            )?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn create_consumer_token<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        client: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        let token_sha256 = *token_sha256;
        let client = client.to_owned();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM consumer_tokens WHERE expires <= ?1", [now.0])?;
            tx.execute(
                "INSERT INTO consumer_tokens (token_sha256, client, expires) VALUES (?1, ?2, ?3)",
                params![&token_sha256[..], client, expires.0],
            )?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn consumer_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<ConsumerClient>> {
        let token_sha256 = *token_sha256;
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM consumer_clients \
                 WHERE NOT revoked AND id = (SELECT client FROM consumer_tokens \
                                             WHERE token_sha256 = ?1 AND expires > ?2)"
            ))?
            .query_row(params![&token_sha256[..], at.0], |row| ClientRow::read(row))
            .optional()?
            .map(ClientRow::into_client)
            .transpose()
        }))
    }
}
