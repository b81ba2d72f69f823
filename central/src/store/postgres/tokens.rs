//! [`TokenStore`] on PostgreSQL: registering, listing and revoking enrollment tokens, and
//! enrollment in one transaction. The types and the trait are in `crate::store::tokens`; the
//! SQLite version of each method is in `sqlite/tokens.rs`.

use tokio_postgres::GenericClient;

use super::devices::{read_secret, register};
use super::PostgresStore;
use crate::store::devices::enrolled_device_id;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::tokens::{
    token_id, EnrollRequest, Enrolled, NewToken, TokenRecord, TokenRow, TokenStore, TOKEN_COLUMNS,
};

async fn read_token<C: GenericClient + Sync>(
    client: &C,
    token_sha256: &[u8; 32],
    for_update: bool,
) -> Result<Option<TokenRecord>, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_sha256 = $1{lock}");
    match client.query_opt(&sql, &[&&token_sha256[..]]).await? {
        Some(row) => Ok(Some(TokenRow::read(&row)?.into_record()?)),
        None => Ok(None),
    }
}

impl TokenStore for PostgresStore {
    fn create_token<'a>(&'a self, token: &'a NewToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let id = token_id(&token.token_sha256);
            let inserted = conn
                .execute(
                    "INSERT INTO enrollment_tokens \
                     (token_sha256, id, site, site_name, created, expires) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &&token.token_sha256[..],
                        &id,
                        &token.site.as_str(),
                        &token.site_name,
                        &token.created.0,
                        &token.expires.0,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::TokenExists(id));
            }
            Ok(())
        })
    }

    fn token<'a>(&'a self, token_sha256: &'a [u8; 32]) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_token(&*conn, token_sha256, false).await
        })
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql =
                format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created DESC, id");
            conn.query(&sql, &[])
                .await?
                .iter()
                .map(|row| TokenRow::read(row)?.into_record())
                .collect()
        })
    }

    fn revoke_token<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let updated = conn
                .execute(
                    "UPDATE enrollment_tokens SET revoked = true WHERE id = $1",
                    &[&id],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::TokenUnknown);
            }
            Ok(())
        })
    }

    fn enroll<'a>(&'a self, request: &'a EnrollRequest) -> StoreFuture<'a, Enrolled> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            // Lock order: token, site, device. The site before the device, as apply locks
            // them, so an enrollment and an apply never deadlock. Any refusal returns before
            // the commit; dropping the transaction rolls it back.
            let token = read_token(&tx, &request.token_sha256, true)
                .await?
                .ok_or(StoreError::TokenUnknown)?;
            token.usable_at(request.at)?;
            let site = token.site;
            let device = enrolled_device_id(&site, &request.verifying_key).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "token {} names a site too long for a device id",
                    token.id
                ))
            })?;
            tx.execute(
                "INSERT INTO sites (site, secret) VALUES ($1, $2) ON CONFLICT (site) DO NOTHING",
                &[&site.as_str(), &&request.new_site_secret.as_bytes()[..]],
            )
            .await?;
            let site_secret = read_secret(&tx, &site, true)
                .await?
                .ok_or_else(|| StoreError::Corrupt("the site row vanished".to_owned()))?;
            if register(&tx, &device, &site, &request.verifying_key.to_bytes()).await? {
                return Err(StoreError::DeviceRevoked(device));
            }
            tx.execute(
                "UPDATE enrollment_tokens SET used_by = $2, used_at = $3 WHERE token_sha256 = $1",
                &[&&request.token_sha256[..], &device.as_str(), &request.at.0],
            )
            .await?;
            tx.commit().await?;
            Ok(Enrolled {
                device,
                site,
                site_secret,
            })
        })
    }
}
