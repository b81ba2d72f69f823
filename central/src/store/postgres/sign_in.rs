//! [`SignInStore`] on PostgreSQL: each attempt reads, refills and writes its name's bucket
//! in one transaction under a per-name advisory lock (the row may not exist yet, so there is
//! no row to lock), so two centrals cannot both take a name's last attempt. The arithmetic
//! and the trait are in `crate::store::sign_in`; the SQLite version of each method is in
//! `sqlite/sign_in.rs`.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sign_in::{Bucket, SignInAllowance, SignInStore};
use crate::store::timestamp::Timestamp;

impl SignInStore for PostgresStore {
    fn take_sign_in<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('skolebro-sign-in:' || $1::text))",
                &[&name],
            )
            .await?;
            tx.execute(
                "DELETE FROM sign_in_failures WHERE at < $1",
                &[&allowance.refilled_before(now).0],
            )
            .await?;
            let (bucket, wait) = allowance.take(read_bucket(&tx, name).await?, now);
            tx.execute(
                "INSERT INTO sign_in_failures (name, available, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET available = EXCLUDED.available, at = EXCLUDED.at",
                &[&name, &bucket.available, &bucket.at.0],
            )
            .await?;
            tx.commit().await?;
            Ok(wait)
        })
    }

    fn sign_in_ready<'a>(
        &'a self,
        name: &'a str,
        allowance: SignInAllowance,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            Ok(allowance.ready(read_bucket(&*conn, name).await?, now))
        })
    }

    fn forget_sign_ins<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute("DELETE FROM sign_in_failures WHERE name = $1", &[&name])
                .await?;
            Ok(())
        })
    }
}

async fn read_bucket<C: GenericClient + Sync>(
    conn: &C,
    name: &str,
) -> Result<Option<Bucket>, StoreError> {
    let row = conn
        .query_opt(
            "SELECT available, at FROM sign_in_failures WHERE name = $1",
            &[&name],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(Bucket {
            available: row.try_get(0)?,
            at: Timestamp(row.try_get(1)?),
        })),
        None => Ok(None),
    }
}
