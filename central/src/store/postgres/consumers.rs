//! [`ConsumerStore`] on PostgreSQL: consumer clients and their bearer tokens. The types and the
//! trait are in `crate::store::consumers`; the SQLite version of each method is in
//! `sqlite/consumers.rs`.

use super::PostgresStore;
use crate::store::consumers::{ClientRow, ConsumerClient, ConsumerStore, CLIENT_COLUMNS};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::timestamp::Timestamp;

impl ConsumerStore for PostgresStore {
    fn create_consumer_client<'a>(&'a self, client: &'a ConsumerClient) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let (kind, code) = client.scope.to_db();
            let inserted = conn
                .execute(
                    "INSERT INTO consumer_clients \
                     (id, name, scope_kind, scope_code, secret_salt, secret_sha256, created, \
                      revoked) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[
                        &client.id,
                        &client.name,
                        &kind,
                        &code,
                        &&client.secret_salt[..],
                        &&client.secret_sha256[..],
                        &client.created.0,
                        &client.revoked,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::ClientExists(client.id.clone()));
            }
            Ok(())
        })
    }

    fn consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConsumerClient>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM consumer_clients WHERE id = $1");
            match conn.query_opt(&sql, &[&id]).await? {
                Some(row) => Ok(Some(ClientRow::read(&row)?.into_client()?)),
                None => Ok(None),
            }
        })
    }

    fn list_consumer_clients(&self) -> StoreFuture<'_, Vec<ConsumerClient>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM consumer_clients ORDER BY created, id");
            conn.query(&sql, &[])
                .await?
                .iter()
                .map(|row| ClientRow::read(row)?.into_client())
                .collect()
        })
    }

    fn revoke_consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let updated = tx
                .execute(
                    "UPDATE consumer_clients SET revoked = true WHERE id = $1",
                    &[&id],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::ClientUnknown);
            }
            tx.execute("DELETE FROM consumer_tokens WHERE client = $1", &[&id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn create_consumer_token<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        client: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute("DELETE FROM consumer_tokens WHERE expires <= $1", &[&now.0])
                .await?;
            tx.execute(
                "INSERT INTO consumer_tokens (token_sha256, client, expires) VALUES ($1, $2, $3)",
                &[&&token_sha256[..], &client, &expires.0],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn consumer_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<ConsumerClient>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {CLIENT_COLUMNS} FROM consumer_clients \
                 WHERE NOT revoked AND id = (SELECT client FROM consumer_tokens \
                                             WHERE token_sha256 = $1 AND expires > $2)"
            );
            match conn.query_opt(&sql, &[&&token_sha256[..], &at.0]).await? {
                Some(row) => Ok(Some(ClientRow::read(&row)?.into_client()?)),
                None => Ok(None),
            }
        })
    }
}
