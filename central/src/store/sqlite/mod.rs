//! The embedded store (DESIGN decision 9): one SQLite file in WAL mode, for a central that runs
//! on one machine, the quickstart demo and the end-to-end tests.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool (`spawn_blocking`) with
//! the one connection behind a mutex; the HTTP workers never wait on the disk. One connection
//! is enough: SQLite has a single writer anyway, and WAL lets other processes (a backup, an
//! operator's `sqlite3`) read while central writes.
//!
//! Writes are the plan from `store::planning::plan`, inserted through one cached prepared
//! statement in index order (`store::planning::row_order`), so a large snapshot appends to the
//! records table and its current-version index instead of touching a random page per row; the
//! schema's partial indexes (see `migrations/sqlite/0001_init.sql`) mean a new version
//! maintains one index.
//!
//! Exactly-once: [`RecordStore::apply`] opens its transaction with `BEGIN IMMEDIATE`, which
//! takes the database's write lock before the device's chain head is read. No other writer, in
//! this process or another, can apply a batch between that read and the commit that stores the
//! new head, so a second apply of the same batch reads the advanced head and changes nothing.
//!
//! This file holds the connection, its settings and the migrations; each store trait is
//! implemented in the file named like its area (`devices.rs`, `records.rs`, …), as in
//! `postgres/`.
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
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard, RwLock};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use skolebro_protocol::RecordHandle;

use crate::seal::Sealer;
use crate::store::columns::bytes32;
use crate::store::error::StoreError;
use crate::store::records::consumer_id;

/// The schema, in order. Each migration runs once, in its own transaction, and is recorded in
/// `schema_version`; embedding them means a binary always carries the schema it expects. A
/// version not recorded runs even when a later one has: a database that took a migration
/// from a build with a gap in the list still gets the missing one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_enrollment.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_releases.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_consumers.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_operator_ui.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_transfer_windows.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_transfer_bytes.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_shared_state.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_record_identity.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_site_schools.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_access_log.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/sqlite/0012_consumer_paging.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/sqlite/0013_operator_tokens.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/sqlite/0015_sealed_records.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/sqlite/0016_retention.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/sqlite/0017_subject_tombstones.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/sqlite/0018_key_rotations.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/sqlite/0019_site_history.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/sqlite/0020_consumer_columns.sql"),
    ),
    (
        21,
        include_str!("../../../migrations/sqlite/0021_grouped_enrollments.sql"),
    ),
    (
        22,
        include_str!("../../../migrations/sqlite/0022_grouped_at_current_schools.sql"),
    ),
    (
        23,
        include_str!("../../../migrations/sqlite/0023_change_feed.sql"),
    ),
];

/// The page cache of the connection, in KiB (see `configure`).
const CACHE_KIB: i64 = 64 * 1024;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Central's store in one SQLite file. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// The keys of sealing at rest in force (`crate::seal`); clear until `sealing::unlock`.
    sealer: Arc<RwLock<Arc<Sealer>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, switches it to WAL and brings its schema up
    /// to date. Fails with [`StoreError::SchemaTooNew`] if a newer build migrated it.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = blocking(move || {
            let mut conn = Connection::open(&path)?;
            configure(&conn)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            sealer: Arc::new(RwLock::new(Arc::new(Sealer::clear()))),
        })
    }

    /// The keys in force, for one call's reads and writes.
    fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read())
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        blocking(move || work(&mut lock(&conn))).await
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while the lock was held leaves the connection usable: an open rusqlite
    // transaction rolls back when it is dropped during unwinding.
    conn.lock()
}

async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Worker(error.to_string()))?
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "the database stays in journal mode {mode}; WAL is needed"
        )));
    }
    // FULL, not NORMAL. In WAL mode NORMAL never corrupts the database, but it syncs the WAL
    // only at checkpoints, so a power cut can roll back the last transactions that had
    // already committed. Central acks a batch once `apply` has committed and the agent's
    // outbox then drops it: with NORMAL an acked batch could vanish, the device's head would
    // fall back behind the agent's, and exactly-once would silently become at-most-once. FULL
    // costs one fsync of the WAL per commit, i.e. per batch, which a large batch does not
    // notice.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // SQLite's default page cache is 2 MiB; a batch that rewrites much of a large site
    // (closing and replacing versions across the table and both indexes) touches far more,
    // and with too small a cache dirty pages are spilled to the WAL mid-transaction and read
    // back. A new site's snapshot mostly appends (rows arrive in index order, see
    // `row_order`), so it needs little; 64 MiB holds a 100,000-student site whole. SQLite
    // fills the cache only as pages are used. A negative size is KiB.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Deleted and rewritten content is overwritten with zeros, not left in free space: when
    // the reseal job seals a row stored in clear (or under an old key), the old bytes must
    // not stay readable in the file (`crate::seal`).
    conn.pragma_update(None, "secure_delete", true)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let has_consumer_ids = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some()
        && conn
            .query_row(
                "SELECT 1 FROM schema_version WHERE version = 12",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
    run_migrations(conn, MIGRATIONS)?;
    if !has_consumer_ids {
        fill_consumer_ids(conn)?;
    }
    Ok(())
}

/// Writes the consumer id of every version that has none: those written before migration 12
/// (see `migrations/sqlite/0012_consumer_paging.sql`), since SQLite cannot compute SHA-256
/// in SQL. Runs once, when that migration is applied; every version inserted since
/// carries its id.
fn fill_consumer_ids(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let missing: Vec<(i64, Vec<u8>)> = tx
        .prepare("SELECT id, COALESCE(identity, handle) FROM records WHERE consumer_id IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    {
        let mut fill = tx.prepare("UPDATE records SET consumer_id = ?2 WHERE id = ?1")?;
        for (id, identity) in missing {
            let identity = RecordHandle::from_bytes(bytes32(&identity, "identity")?);
            fill.execute(rusqlite::params![id, &consumer_id(&identity)[..]])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Runs each of `migrations` that `schema_version` does not record, in the order given.
fn run_migrations(conn: &mut Connection, migrations: &[(i64, &str)]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY) STRICT",
    )?;
    let applied: HashSet<i64> = tx
        .prepare("SELECT version FROM schema_version")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let found = applied.iter().max().copied().unwrap_or(0);
    let known = migrations.last().map_or(0, |(version, _)| *version);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (version, sql) in migrations {
        if !applied.contains(version) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::prelude::*;
    use crate::store::suite::{self, Fixture};

    /// A store in a fresh temporary directory, removed when the fixture is dropped.
    struct SqliteFixture {
        store: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    impl Fixture for SqliteFixture {
        fn store(&self) -> Arc<dyn Store> {
            Arc::clone(&self.store)
        }

        async fn cleanup(self) {}
    }

    async fn open() -> SqliteFixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("central.db"))
            .await
            .expect("the store opens");
        SqliteFixture {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    suite::store_suite!(open);
    // The sealing cases unlock keys of their own, so they run on the plain fixture only.
    suite::store_suite!(@each open;
        a_records_key_rotation_interrupted_and_resumed_keeps_every_record_readable,
        a_kek_rotation_rewraps_the_keys_and_the_old_kek_no_longer_opens_them,
        clear_rows_from_before_sealing_read_and_are_sealed_by_the_reseal_job,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_records_key_rotated_while_another_instance_applies_leaves_every_row_readable() {
        let fixture = open().await;
        let other = SqliteStore::open(fixture._dir.path().join("central.db"))
            .await
            .expect("a second handle on the same file");
        suite::a_records_key_rotated_while_another_instance_applies_leaves_every_row_readable(
            fixture.store.as_ref(),
            &other,
        )
        .await;
    }

    /// The whole suite again with sealing at rest unlocked (names too): every behaviour of
    /// the store holds on sealed rows.
    mod sealed {
        use super::*;
        use crate::seal::{Kek, SealScope};

        async fn open_sealed() -> SqliteFixture {
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

    #[tokio::test]
    async fn reopening_a_database_keeps_its_records_and_migrates_nothing_twice() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("central.db");
        {
            let store = SqliteStore::open(&path).await.expect("the store opens");
            suite::a_delta_shows_up_in_the_current_roster(&store).await;
        }
        let store = SqliteStore::open(&path).await.expect("the store reopens");
        let counts = store.counts(&suite::site_a()).await.expect("counts");
        assert_eq!(counts.students, 2);
        let versions: i64 = store
            .call(|conn| {
                Ok(conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))?)
            })
            .await
            .expect("schema versions");
        assert_eq!(versions, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn a_database_from_before_renames_opens_and_its_records_keep_their_identity() {
        use skolebro_protocol::{Entity, SiteSecret};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("central.db");
        let site = suite::site_a();
        let secret = SiteSecret::from_bytes([0xa1; 32]);
        let handle = secret.handle(Entity::Student, "s1");
        let student = suite::student("s1", "Kari");
        {
            // The schema and a record as the build before renames wrote them.
            let mut conn = Connection::open(&path).expect("a database");
            run_migrations(&mut conn, &MIGRATIONS[..8]).expect("the older schema");
            conn.execute(
                "INSERT INTO sites (site, secret) VALUES (?1, ?2)",
                rusqlite::params![site.as_str(), &secret.as_bytes()[..]],
            )
            .expect("a site");
            conn.execute(
                "INSERT INTO records (site, entity, handle, digest, record, valid_from, \
                 valid_to, is_current, transaction_time) \
                 VALUES (?1, 'students', ?2, ?3, ?4, 1000, NULL, 1, 1000)",
                rusqlite::params![
                    site.as_str(),
                    &handle.as_bytes()[..],
                    &[0u8; 32][..],
                    serde_json::to_string(&student).expect("encodes"),
                ],
            )
            .expect("a record");
        }
        let store = SqliteStore::open(&path)
            .await
            .expect("the older database opens");
        let records = store
            .current_records(&site, Entity::Student)
            .await
            .expect("records read");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].handle, handle);
        assert_eq!(
            records[0].identity, handle,
            "the consumer id stays as it was"
        );
        assert!(store
            .renamed_identities(&site)
            .await
            .expect("identities read")
            .is_empty());
    }

    #[tokio::test]
    async fn migrating_to_0022_ungroups_the_enrollments_at_a_school_their_site_has_no_record_of() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("central.db");
        let site = suite::site_a();
        {
            // As migration 0021 left them: both enrollments grouped, one school held.
            let mut conn = Connection::open(&path).expect("a database");
            let before: Vec<(i64, &str)> = MIGRATIONS
                .iter()
                .copied()
                .filter(|(number, _)| *number < 22)
                .collect();
            run_migrations(&mut conn, &before).expect("the older schema");
            conn.execute(
                "INSERT INTO sites (site, secret) VALUES (?1, ?2)",
                rusqlite::params![site.as_str(), &[0xa1u8; 32][..]],
            )
            .expect("a site");
            let rows = [
                (1u8, "schools", "46505", r#"{"skolenummer":"46505"}"#, false),
                (2, "enrollments", "46505", r#"{"group":"1A"}"#, true),
                (3, "enrollments", "46507", r#"{"group":"2B"}"#, true),
                (4, "enrollments", "46505", r#"{"group":null}"#, false),
            ];
            for (handle, entity, school, record, grouped) in rows {
                conn.execute(
                    "INSERT INTO records (site, entity, handle, digest, record, valid_from, \
                     valid_to, is_current, transaction_time, school, grouped) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 1000, NULL, 1, 1000, ?6, ?7)",
                    rusqlite::params![
                        site.as_str(),
                        entity,
                        &[handle; 32][..],
                        &[0u8; 32][..],
                        record,
                        school,
                        grouped
                    ],
                )
                .expect("a record");
            }
        }
        let store = SqliteStore::open(&path)
            .await
            .expect("the older database opens");
        let grouped: Vec<(u8, bool)> = store
            .call(|conn| {
                let mut statement = conn.prepare(
                    "SELECT handle, grouped FROM records WHERE entity = 'enrollments' \
                     ORDER BY handle",
                )?;
                let rows = statement
                    .query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?[0], row.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .expect("the flags read");
        assert_eq!(grouped, [(2, true), (3, false), (4, false)]);
    }

    #[test]
    fn a_migration_numbered_below_one_already_run_still_runs() {
        let mut conn = Connection::open_in_memory().expect("a database");
        let first = [
            (1, "CREATE TABLE a (x INTEGER)"),
            (3, "CREATE TABLE c (x INTEGER)"),
        ];
        run_migrations(&mut conn, &first).expect("1 and 3 run");
        let merged = [
            (1, "CREATE TABLE a (x INTEGER)"),
            (2, "CREATE TABLE b (x INTEGER)"),
            (3, "CREATE TABLE c (x INTEGER)"),
        ];
        run_migrations(&mut conn, &merged).expect("2 runs, 1 and 3 do not run again");
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b', 'c')",
                [],
                |row| row.get(0),
            )
            .expect("counted");
        assert_eq!(tables, 3);
    }

    #[tokio::test]
    async fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("central.db");
        {
            let store = SqliteStore::open(&path).await.expect("the store opens");
            store
                .call(|conn| Ok(conn.execute("INSERT INTO schema_version VALUES (99)", [])?))
                .await
                .expect("a newer version is recorded");
        }
        let result = SqliteStore::open(&path).await;
        let newest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
        assert!(
            matches!(result, Err(StoreError::SchemaTooNew { found: 99, known }) if known == newest),
            "{result:?}"
        );
    }
}
