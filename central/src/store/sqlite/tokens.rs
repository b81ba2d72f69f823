//! [`TokenStore`] on SQLite: registering, listing and revoking enrollment tokens, and
//! enrollment in one transaction. The types and the trait are in `crate::store::tokens`; the
//! PostgreSQL version of each method is in `postgres/tokens.rs`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::devices::{read_secret, register};
use super::SqliteStore;
use crate::store::devices::enrolled_device_id;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::tokens::{
    token_id, EnrollRequest, Enrolled, NewToken, TokenRecord, TokenRow, TokenStore, TOKEN_COLUMNS,
};

fn read_token(
    conn: &Connection,
    token_sha256: &[u8; 32],
) -> Result<Option<TokenRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_sha256 = ?1"
    ))?
    .query_row([&token_sha256[..]], |row| TokenRow::read(row))
    .optional()?
    .map(TokenRow::into_record)
    .transpose()
}

/// [`TokenStore::enroll`] in one `BEGIN IMMEDIATE` transaction; any refusal returns before the
/// commit, so the transaction rolls back and nothing changes.
fn enroll(conn: &mut Connection, request: &EnrollRequest) -> Result<Enrolled, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let token = read_token(&tx, &request.token_sha256)?.ok_or(StoreError::TokenUnknown)?;
    token.usable_at(request.at)?;
    let site = token.site;
    let device = enrolled_device_id(&site, &request.verifying_key).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "token {} names a site too long for a device id",
            token.id
        ))
    })?;
    if register(&tx, &device, &site, &request.verifying_key.to_bytes())? {
        return Err(StoreError::DeviceRevoked(device));
    }
    let site_secret = match read_secret(&tx, &site)? {
        Some(secret) => secret,
        None => {
            tx.execute(
                "INSERT INTO sites (site, secret) VALUES (?1, ?2)",
                params![site.as_str(), &request.new_site_secret.as_bytes()[..]],
            )?;
            request.new_site_secret.clone()
        }
    };
    tx.execute(
        "UPDATE enrollment_tokens SET used_by = ?2, used_at = ?3 WHERE token_sha256 = ?1",
        params![&request.token_sha256[..], device.as_str(), request.at.0],
    )?;
    tx.commit()?;
    Ok(Enrolled {
        device,
        site,
        site_secret,
    })
}

impl TokenStore for SqliteStore {
    fn create_token<'a>(&'a self, token: &'a NewToken) -> StoreFuture<'a, ()> {
        let token = token.clone();
        Box::pin(self.call(move |conn| {
            let id = token_id(&token.token_sha256);
            let inserted = conn.execute(
                "INSERT INTO enrollment_tokens \
                 (token_sha256, id, site, site_name, created, expires) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    &token.token_sha256[..],
                    id,
                    token.site.as_str(),
                    token.site_name,
                    token.created.0,
                    token.expires.0,
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::TokenExists(id));
            }
            Ok(())
        }))
    }

    fn token<'a>(&'a self, token_sha256: &'a [u8; 32]) -> StoreFuture<'a, Option<TokenRecord>> {
        let token_sha256 = *token_sha256;
        Box::pin(self.call(move |conn| read_token(conn, &token_sha256)))
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created DESC, id"
            ))?;
            let rows = statement.query_map([], |row| TokenRow::read(row))?;
            let mut tokens = Vec::new();
            for row in rows {
                tokens.push(row?.into_record()?);
            }
            Ok(tokens)
        }))
    }

    fn revoke_token<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let updated = conn.execute(
                "UPDATE enrollment_tokens SET revoked = 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::TokenUnknown);
            }
            Ok(())
        }))
    }

    fn enroll<'a>(&'a self, request: &'a EnrollRequest) -> StoreFuture<'a, Enrolled> {
        let request = request.clone();
        Box::pin(self.call(move |conn| enroll(conn, &request)))
    }
}
