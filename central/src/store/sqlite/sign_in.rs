//! [`SignInStore`] on SQLite: each attempt reads, refills and writes its name's bucket in
//! one `BEGIN IMMEDIATE` transaction, so two attempts at once (or two processes on the file)
//! cannot both take the last one. The arithmetic and the trait are in
//! `crate::store::sign_in`; the PostgreSQL version of each method is in `postgres/sign_in.rs`.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sign_in::{Bucket, SignInAllowance, SignInStore};
use crate::store::timestamp::Timestamp;

impl SignInStore for SqliteStore {
    fn take_sign_in<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM sign_in_failures WHERE at < ?1")?
                .execute([allowance.refilled_before(now).0])?;
            let (bucket, wait) = allowance.take(read_bucket(&tx, &name)?, now);
            tx.prepare_cached(
                "INSERT INTO sign_in_failures (name, available, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET available = excluded.available, at = excluded.at",
            )?
            .execute(params![name, bucket.available, bucket.at.0])?;
            tx.commit()?;
            Ok(wait)
        }))
    }

    fn sign_in_ready<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| Ok(allowance.ready(read_bucket(conn, &name)?, now))))
    }

    fn forget_sign_ins<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| {
            conn.prepare_cached("DELETE FROM sign_in_failures WHERE name = ?1")?
                .execute([name])?;
            Ok(())
        }))
    }
}

fn read_bucket(conn: &Connection, name: &str) -> Result<Option<Bucket>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT available, at FROM sign_in_failures WHERE name = ?1")?
        .query_row([name], |row| {
            Ok(Bucket {
                available: row.get(0)?,
                at: Timestamp(row.get(1)?),
            })
        })
        .optional()?)
}
