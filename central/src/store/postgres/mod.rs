//! The production store (DESIGN decision 9): PostgreSQL through tokio-postgres.
//!
//! Central reaches its database over loopback or a private network, so connections are plain
//! (`NoTls`): the only TLS in central is the agents' mutual TLS at the ingest. A small built-in
//! pool keeps a few connections open, each with `search_path` set to the store's schema, so one
//! database can hold several stores (the tests create a schema each).
//!
//! Exactly-once: [`RecordStore::apply`] runs in one READ COMMITTED transaction that first locks
//! the site's row and then the device's row (`SELECT … FOR UPDATE`, always in that order, so
//! two applies never deadlock). A second apply of the same batch waits on the lock, then reads
//! the head the first one committed and changes nothing. Locking the site, not only the device,
//! also keeps two devices of one site (an old and a replacement Pi) from writing the same
//! records at once. New versions are written with one binary `COPY` into the records table
//! inside that transaction, so a snapshot of a large school is one stream, not a statement per
//! record; see `migrations/postgres/0001_init.sql` for the schema choices that keep it close to
//! a bare `COPY` (a `json` column, partial indexes, no per-row foreign key).
//!
//! The pool keeps part of its connections for short requests (heartbeats, reads, small
//! writes): long jobs (an apply, a reseal pass, a retention purge, a subject's erasure) take
//! a "bulk" permit as well as a connection, and there are `reserved` fewer of those than
//! connections, so a night of applies cannot make every heartbeat wait behind it
//! (docs/BENCHMARKS.md, "A night of a fleet against central").
//!
//! This file holds the connection pool and the migrations; each store trait is implemented in
//! the file named like its area (`devices.rs`, `records.rs`, …), as in `sqlite/`.
//!
//! [`RecordStore::apply`]: crate::store::RecordStore::apply

mod access_log;
mod consumers;
mod devices;
mod fleet;
mod key_rotations;
mod operator_tokens;
mod operators;
mod paging;
mod records;
mod releases;
mod retention;
mod sealing;
mod sign_in;
mod sites;
mod subjects;
mod tokens;
mod windows;

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

use crate::seal::Sealer;
use crate::store::error::StoreError;

/// The schema, in order. Each migration runs once, in its own transaction, and is recorded in
/// `schema_version`; embedding them means a binary always carries the schema it expects. A
/// version not recorded runs even when a later one has: a database that took a migration
/// from a build with a gap in the list still gets the missing one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_enrollment.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_releases.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_consumers.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_operator_ui.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_transfer_windows.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_transfer_bytes.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_shared_state.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_record_identity.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_site_schools.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_access_log.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/postgres/0012_consumer_paging.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/postgres/0013_operator_tokens.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/postgres/0015_sealed_records.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/postgres/0016_retention.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/postgres/0017_subject_tombstones.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/postgres/0018_key_rotations.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/postgres/0019_site_history.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/postgres/0020_consumer_columns.sql"),
    ),
    (
        21,
        include_str!("../../../migrations/postgres/0021_grouped_enrollments.sql"),
    ),
    (
        22,
        include_str!("../../../migrations/postgres/0022_grouped_at_current_schools.sql"),
    ),
    (
        23,
        include_str!("../../../migrations/postgres/0023_change_feed.sql"),
    ),
];

/// Central's store in a PostgreSQL schema.
pub struct PostgresStore {
    pool: Pool,
    /// The keys of sealing at rest in force (`crate::seal`); clear until `sealing::unlock`.
    sealer: parking_lot::RwLock<Arc<Sealer>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore(schema {})", self.pool.schema)
    }
}

impl PostgresStore {
    /// Connects with a libpq-style `config` (`host=127.0.0.1 port=5432 user=postgres
    /// dbname=central`), creates `schema` if needed and brings it up to date. At most
    /// `max_connections` connections are open at once (at least one), and long jobs hold at
    /// most `max_connections - reserved` of them (at least one, so a reserve of the whole
    /// pool still lets them run, one at a time).
    ///
    /// `schema` must be a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63
    /// characters): it is written into SQL, so nothing else is accepted.
    pub async fn connect(
        config: &str,
        schema: &str,
        max_connections: usize,
        reserved: usize,
    ) -> Result<PostgresStore, StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Config(format!(
                "schema name {schema:?} is not a plain lower-case identifier"
            )));
        }
        let config: Config = config.parse()?;
        let max_connections = max_connections.max(1);
        let store = PostgresStore {
            pool: Pool {
                config,
                schema: schema.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(max_connections),
                bulk: Semaphore::new(max_connections.saturating_sub(reserved).max(1)),
            },
            sealer: parking_lot::RwLock::new(Arc::new(Sealer::clear())),
        };
        let mut conn = store.pool.get().await?;
        migrate(&mut conn, schema).await?;
        drop(conn);
        Ok(store)
    }

    /// The keys in force, for one call's reads and writes.
    fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read())
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }
}

fn valid_schema(schema: &str) -> bool {
    let mut bytes = schema.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && schema.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    // Two centrals starting at once would otherwise both create the schema or run a
    // migration; the lock is per schema, so stores in other schemas do not wait.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('skolebro-migrate:' || $1::text))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (version INTEGER PRIMARY KEY)"
    ))
    .await?;
    let mut applied = HashSet::new();
    for row in tx
        .query(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await?
    {
        applied.insert(i64::from(row.try_get::<_, i32>(0)?));
    }
    let found = applied.iter().max().copied().unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (version, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.batch_execute(sql).await?;
            let version = i32::try_from(*version)
                .map_err(|_| StoreError::Config(format!("migration {version} out of range")))?;
            tx.execute(
                &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
                &[&version],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A few reusable connections, each with `search_path` set to the store's schema.
///
/// Small on purpose (no dependency): a permit bounds the open connections, idle ones wait in
/// a list, and a connection that broke is dropped instead of returned. Long jobs also take a
/// permit of `bulk`, which has fewer, so the rest stay free for short requests.
struct Pool {
    config: Config,
    schema: String,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    bulk: Semaphore,
}

impl Pool {
    /// A connection for a short request: any of the pool's.
    async fn get(&self) -> Result<PooledClient<'_>, StoreError> {
        self.connection(None).await
    }

    /// A connection for a long job (an apply, a reseal pass, a purge, an erasure): waits for
    /// a bulk permit first, so long jobs never hold the connections kept for short requests,
    /// nor queue for a connection ahead of them once all bulk permits are taken.
    async fn get_bulk(&self) -> Result<PooledClient<'_>, StoreError> {
        let bulk = self
            .bulk
            .acquire()
            .await
            .map_err(|error| StoreError::Worker(error.to_string()))?;
        self.connection(Some(bulk)).await
    }

    async fn connection<'a>(
        &'a self,
        bulk: Option<SemaphorePermit<'a>>,
    ) -> Result<PooledClient<'a>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| StoreError::Worker(error.to_string()))?;
        loop {
            let idle = self.idle.lock().pop();
            match idle {
                Some(client) if client.is_closed() => continue,
                Some(client) => {
                    return Ok(PooledClient {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                        _bulk: bulk,
                    })
                }
                None => break,
            }
        }
        let (client, connection) = self.config.connect(NoTls).await?;
        // The connection task ends when the client is dropped or the server goes away; a
        // failure then shows as a closed client, which the pool discards.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .await?;
        Ok(PooledClient {
            client: Some(client),
            pool: self,
            _permit: permit,
            _bulk: bulk,
        })
    }
}

/// A connection borrowed from the pool; returned to it when dropped. A transaction left open
/// by a cancelled request has already queued its ROLLBACK by then (tokio-postgres does so
/// when a `Transaction` is dropped), so the next user starts clean.
struct PooledClient<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
    /// Held by a long job's connection ([`Pool::get_bulk`]).
    _bulk: Option<SemaphorePermit<'a>>,
}

impl Deref for PooledClient<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Present from construction until drop.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a pooled client is present until dropped"),
        }
    }
}

impl DerefMut for PooledClient<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.client {
            Some(client) => client,
            None => unreachable!("a pooled client is present until dropped"),
        }
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool.idle.lock().push(client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::FutureExt;
    use skolebro_protocol::api::Heartbeat;
    use skolebro_protocol::DeviceId;

    use super::*;
    use crate::store::prelude::*;
    use crate::store::suite::{self, Fixture};
    use crate::store::Timestamp;

    /// The test database: trust authentication on loopback, as on the project's machines.
    /// `SKOLEBRO_TEST_POSTGRES` overrides it.
    const DEFAULT_CONFIG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

    fn config() -> String {
        std::env::var("SKOLEBRO_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_CONFIG.to_owned())
    }

    /// A store in a schema of its own, dropped by `cleanup`, so tests running in parallel or
    /// again after a crash never see each other's rows.
    struct PostgresFixture {
        store: Arc<PostgresStore>,
        schema: String,
    }

    impl Fixture for PostgresFixture {
        fn store(&self) -> Arc<dyn Store> {
            Arc::clone(&self.store) as Arc<dyn Store>
        }

        async fn cleanup(self) {
            drop(self.store);
            let (client, connection) = match config().parse::<Config>() {
                Ok(config) => match config.connect(NoTls).await {
                    Ok(pair) => pair,
                    Err(_) => return,
                },
                Err(_) => return,
            };
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .await;
        }
    }

    async fn open() -> PostgresFixture {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("system randomness");
        let schema = format!("skolebro_test_{}", hex::encode(random));
        let store = PostgresStore::connect(&config(), &schema, 4, 1)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL at {:?} is needed for these tests ({error}); start it with \
                     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
                    config()
                )
            });
        PostgresFixture {
            store: Arc::new(store),
            schema,
        }
    }

    suite::store_suite!(open);
    // The sealing cases unlock keys of their own, so they run on the plain fixture only.
    suite::store_suite!(@each open;
        a_records_key_rotation_interrupted_and_resumed_keeps_every_record_readable,
        a_kek_rotation_rewraps_the_keys_and_the_old_kek_no_longer_opens_them,
        clear_rows_from_before_sealing_read_and_are_sealed_by_the_reseal_job,
    );

    /// The twin of SQLite's case: the secret is read again under the site's lock.
    #[tokio::test]
    async fn a_batch_prepared_under_a_replaced_secret_is_checked_again_and_refused() {
        let fixture = open().await;
        let schema = fixture.schema.clone();
        suite::run(fixture, |store| async move {
            let (batch, old) = suite::a_secret_replaced_before_the_write(store.as_ref()).await;
            let this = PostgresStore::connect(&config(), &schema, 4, 1)
                .await
                .expect("a store on the test's schema");
            let sealer = this.sealer();
            let prepared = crate::store::planning::prepare(&batch.payload, &old, &sealer)
                .expect("the old secret's handles");
            let mut conn = this.pool.get_bulk().await.expect("a connection");
            let result = records::apply_prepared(&mut conn, &batch, &old, &sealer, prepared).await;
            drop(conn);
            suite::refused_under_the_secret_in_force(store.as_ref(), &batch, result).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_records_key_rotated_while_another_instance_applies_leaves_every_row_readable() {
        let fixture = open().await;
        let schema = fixture.schema.clone();
        suite::run(fixture, |store| async move {
            let other = PostgresStore::connect(&config(), &schema, 4, 1)
                .await
                .expect("a second store on the same schema");
            suite::a_records_key_rotated_while_another_instance_applies_leaves_every_row_readable(
                store.as_ref(),
                &other,
            )
            .await;
        })
        .await;
    }

    /// The whole suite again with sealing at rest unlocked (names too): every behaviour of
    /// the store holds on sealed rows.
    mod sealed {
        use super::*;
        use crate::seal::{Kek, SealScope};

        async fn open_sealed() -> PostgresFixture {
            let fixture = open().await;
            let kek = Kek::generate().expect("a key");
            crate::store::sealing::unlock(
                fixture.store.as_ref(),
                &kek,
                SealScope::IdsAndNames,
                crate::store::Timestamp(0),
            )
            .await
            .expect("sealing unlocks");
            fixture
        }

        suite::store_suite!(open_sealed);
    }

    #[test]
    fn only_plain_schema_names_are_accepted() {
        assert!(valid_schema("skolebro_test_0a1b"));
        assert!(valid_schema("public"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema("a;drop table x"));
        assert!(!valid_schema("Public"));
        assert!(!valid_schema(&"a".repeat(64)));
    }

    #[tokio::test]
    async fn a_heartbeat_gets_a_connection_while_long_jobs_hold_every_bulk_one() {
        let fixture = open().await;
        let store = Arc::clone(&fixture.store);
        let outcome = tokio::spawn(async move {
            // The fixture's pool: 4 connections, 1 kept from long jobs.
            let mut long_jobs = Vec::new();
            for _ in 0..3 {
                let conn = store.pool.get_bulk().await.expect("a bulk connection");
                conn.batch_execute("SELECT 1")
                    .await
                    .expect("a live connection");
                long_jobs.push(conn);
            }
            assert_eq!(store.pool.bulk.available_permits(), 0);
            let heartbeat: Heartbeat = serde_json::from_value(serde_json::json!({
                "version": "0.1.0",
                "state": "healthy",
                "deviation_groups": [
                    {"code": "unknown_field", "severity": "warning", "count": 2, "rows": []}
                ]
            }))
            .expect("a heartbeat");
            let device = DeviceId::new("pi-reserve").expect("a device id");
            let recorded = tokio::time::timeout(
                Duration::from_secs(10),
                store.record_heartbeat(&device, &heartbeat, Timestamp(1_000)),
            )
            .await
            .expect("the heartbeat does not wait for the long jobs");
            assert_eq!(recorded.expect("recorded"), vec![]);
            // Another long job waits until one of the first three ends.
            let mut waiting = Box::pin(store.pool.get_bulk());
            assert!(waiting.as_mut().now_or_never().is_none());
            drop(long_jobs.pop());
            tokio::time::timeout(Duration::from_secs(10), waiting)
                .await
                .expect("a bulk connection once one is free")
                .expect("a connection");
        })
        .await;
        fixture.cleanup().await;
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    #[tokio::test]
    async fn connecting_twice_to_one_schema_migrates_once() {
        let fixture = open().await;
        let again = PostgresStore::connect(&config(), &fixture.schema, 1, 0)
            .await
            .expect("a second store on the same schema");
        let conn = again.pool.get().await.expect("a connection");
        let versions: i64 = conn
            .query_one("SELECT COUNT(*) FROM schema_version", &[])
            .await
            .expect("schema versions")
            .get(0);
        assert_eq!(versions, MIGRATIONS.len() as i64);
        drop(conn);
        drop(again);
        fixture.cleanup().await;
    }
}
