//! The embedded store (DESIGN decision 9): one SQLite file in WAL mode, for a central that
//! runs on one machine, the quickstart demo and the end-to-end tests.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool (`spawn_blocking`) with
//! the one connection behind a mutex; the HTTP workers never wait on the disk. One connection
//! is enough: SQLite has a single writer anyway, and WAL lets other processes (a backup, an
//! operator's `sqlite3`) read while central writes.
//!
//! Writes are the plan from `store::plan`, inserted through one cached prepared statement in
//! index order (`store::row_order`), so a large snapshot appends to the records table and its
//! current-version index instead of touching a random page per row; the schema's partial
//! indexes (see `migrations/sqlite/0001_init.sql`) mean a new version maintains one index.
//!
//! Exactly-once: [`Store::apply`] opens its transaction with `BEGIN IMMEDIATE`, which takes
//! the database's write lock before the device's chain head is read. No other writer, in this
//! process or another, can apply a batch between that read and the commit that stores the new
//! head, so a second apply of the same batch reads the advanced head and changes nothing.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use skolebro_protocol::{
    ChainHead, DeviceId, DeviceVerifyingKey, Digest, Entity, RecordHandle, Roster, School, SiteId,
    SiteSecret,
};

use super::{
    bytes32, check_batch, device_record, enrolled_device_id, entity_from_name, entity_name, plan,
    prepare, push_record, release_report, seq_from_db, seq_to_db, set_count, sites_json,
    sort_roster, token_id, u64_to_db, Batch, ChainCheck, Counts, Current, CurrentVersions,
    DeviceRecord, DeviceState, EnrollRequest, Enrolled, NewRelease, NewToken, Outcome, Prepared,
    ReleaseRecord, ReleaseReport, ReleaseRow, RolloutChange, Store, StoreError, StoreFuture,
    Timestamp, TokenRecord, TokenRow, UpdateEvent, UpdateState, Version, RELEASE_COLUMNS,
    RELEASE_ORDER, TOKEN_COLUMNS,
};
use super::{
    bytes_to_db, changes_to_db, decode, decode_school, stored_site, AuditEntry, ClientRow,
    ConsumerClient, CurrentRecord, Transfer, TransferRow, UiSession, UiUser, UserRow,
    CLIENT_COLUMNS, TRANSFER_COLUMNS, USER_COLUMNS,
};
use super::{Fylke, NewWindow, TransferWindow, WindowRow, WINDOW_COLUMNS, WINDOW_ORDER};

/// The schema, in order. Each migration runs once, in its own transaction, and is recorded in
/// `schema_version`; embedding them means a binary always carries the schema it expects. A
/// version not recorded runs even when a later one has: a database that took a migration
/// from a build with a gap in the list still gets the missing one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_enrollment.sql"),
    ),
    (3, include_str!("../../migrations/sqlite/0003_releases.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_consumers.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_operator_ui.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_transfer_windows.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_transfer_bytes.sql"),
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
        })
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

    async fn apply_batch(&self, batch: Batch) -> Result<Outcome, StoreError> {
        // A cheap look first, without the write lock: replays and gaps, the common failures
        // of a retrying agent, are answered without encoding the payload.
        let device = batch.device.clone();
        let site = batch.site.clone();
        let (state, secret) = self
            .call(move |conn| Ok((read_device(conn, &device)?, read_secret(conn, &site)?)))
            .await?;
        if let ChainCheck::AlreadyApplied(head) = check_batch(&batch, state.as_ref())? {
            return Ok(Outcome::AlreadyApplied { head });
        }
        let secret = secret.ok_or_else(|| StoreError::NoSiteSecret(batch.site.clone()))?;

        // Check handles and encode records outside the connection's lock.
        let (batch, secret, prepared) = blocking(move || {
            let prepared = prepare(&batch.payload, &secret)?;
            Ok((batch, secret, prepared))
        })
        .await?;

        self.call(move |conn| apply_prepared(conn, &batch, &secret, prepared))
            .await
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while the lock was held leaves the connection usable: an open rusqlite
    // transaction rolls back when it is dropped during unwinding.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    run_migrations(conn, MIGRATIONS)
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

fn read_device(conn: &Connection, device: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
    let row = conn
        .prepare_cached("SELECT site, revoked, next_seq, prev FROM devices WHERE device = ?1")?
        .query_row([device.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    row.map(|(site, revoked, next_seq, prev)| {
        Ok(DeviceState {
            site,
            revoked,
            head: ChainHead {
                next_seq: seq_from_db(next_seq)?,
                prev: bytes32(&prev, "chain head digest")?,
            },
        })
    })
    .transpose()
}

fn read_secret(conn: &Connection, site: &SiteId) -> Result<Option<SiteSecret>, StoreError> {
    let secret: Option<Vec<u8>> = conn
        .prepare_cached("SELECT secret FROM sites WHERE site = ?1")?
        .query_row([site.as_str()], |row| row.get(0))
        .optional()?;
    secret
        .map(|bytes| Ok(SiteSecret::from_bytes(bytes32(&bytes, "site secret")?)))
        .transpose()
}

/// Registers a device inside a transaction, or finds it registered with the same site and
/// key (anything else is [`StoreError::DeviceConflict`]). Returns whether the device is
/// revoked.
fn register(
    tx: &Connection,
    device: &DeviceId,
    site: &SiteId,
    key: &[u8; 32],
) -> Result<bool, StoreError> {
    let existing: Option<(String, Vec<u8>, bool)> = tx
        .query_row(
            "SELECT site, verifying_key, revoked FROM devices WHERE device = ?1",
            [device.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    match existing {
        Some((stored_site, stored_key, revoked))
            if stored_site == site.as_str() && stored_key == key =>
        {
            Ok(revoked)
        }
        Some(_) => Err(StoreError::DeviceConflict(device.clone())),
        None => {
            tx.execute(
                "INSERT INTO devices (device, site, verifying_key) VALUES (?1, ?2, ?3)",
                params![device.as_str(), site.as_str(), &key[..]],
            )?;
            Ok(false)
        }
    }
}

fn read_token(
    conn: &Connection,
    token_sha256: &[u8; 32],
) -> Result<Option<TokenRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_sha256 = ?1"
    ))?
    .query_row([&token_sha256[..]], token_row)
    .optional()?
    .map(TokenRow::into_record)
    .transpose()
}

fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        token_sha256: row.get(0)?,
        site: row.get(1)?,
        site_name: row.get(2)?,
        created: row.get(3)?,
        expires: row.get(4)?,
        used_by: row.get(5)?,
        used_at: row.get(6)?,
        revoked: row.get(7)?,
    })
}

/// [`Store::enroll`] in one `BEGIN IMMEDIATE` transaction; any refusal returns before the
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

fn release_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        id: row.get(0)?,
        major: row.get(1)?,
        minor: row.get(2)?,
        patch: row.get(3)?,
        target: row.get(4)?,
        size: row.get(5)?,
        sha256: row.get(6)?,
        allow_downgrade: row.get(7)?,
        manifest: row.get(8)?,
        registered: row.get(9)?,
        artifact_stored: row.get(10)?,
        percent: row.get(11)?,
        sites: row.get(12)?,
        paused: row.get(13)?,
    })
}

fn read_release(conn: &Connection, id: &str) -> Result<Option<ReleaseRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?1"
    ))?
    .query_row([id], release_row)
    .optional()?
    .map(ReleaseRow::into_record)
    .transpose()
}

/// [`Store::create_release`]: insert, or find the same manifest under the id.
fn create_release(conn: &mut Connection, release: &NewRelease) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = tx.execute(
        "INSERT INTO releases \
         (id, major, minor, patch, target, size, sha256, allow_downgrade, manifest, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        params![
            release.id,
            release.version.major,
            release.version.minor,
            release.version.patch,
            release.target,
            u64_to_db(release.size, "artifact size")?,
            &release.sha256[..],
            release.allow_downgrade,
            release.manifest,
            release.registered.0,
        ],
    )?;
    if inserted == 0 {
        let stored: Vec<u8> = tx.query_row(
            "SELECT manifest FROM releases WHERE id = ?1",
            [release.id.as_str()],
            |row| row.get(0),
        )?;
        if stored != release.manifest {
            return Err(StoreError::ReleaseExists(release.id.clone()));
        }
    }
    tx.commit()?;
    Ok(inserted == 1)
}

/// [`Store::change_rollout`]: each given setting in one transaction.
fn change_rollout(
    conn: &mut Connection,
    id: &str,
    change: &RolloutChange,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let known = tx
        .query_row("SELECT 1 FROM releases WHERE id = ?1", [id], |_| Ok(()))
        .optional()?;
    if known.is_none() {
        return Err(StoreError::UnknownRelease(id.to_owned()));
    }
    if let Some(percent) = change.percent {
        tx.execute(
            "UPDATE releases SET percent = ?2 WHERE id = ?1",
            params![id, percent],
        )?;
    }
    if let Some(sites) = &change.sites {
        tx.execute(
            "UPDATE releases SET sites = ?2 WHERE id = ?1",
            params![id, sites_json(sites)],
        )?;
    }
    if let Some(paused) = change.paused {
        tx.execute(
            "UPDATE releases SET paused = ?2 WHERE id = ?1",
            params![id, paused],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The write half of `apply`: one `BEGIN IMMEDIATE` transaction that re-checks the chain,
/// writes the plan and advances the head.
fn apply_prepared(
    conn: &mut Connection,
    batch: &Batch,
    secret: &SiteSecret,
    prepared: Prepared,
) -> Result<Outcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state = read_device(&tx, &batch.device)?;
    if let ChainCheck::AlreadyApplied(head) = check_batch(batch, state.as_ref())? {
        return Ok(Outcome::AlreadyApplied { head });
    }
    // The secret may have been set anew between the first look and the lock (only possible
    // while the site has no records); handles must be checked against the one in force.
    let prepared = match read_secret(&tx, &batch.site)? {
        Some(stored) if stored == *secret => prepared,
        Some(stored) => prepare(&batch.payload, &stored)?,
        None => return Err(StoreError::NoSiteSecret(batch.site.clone())),
    };

    let site = batch.site.as_str();
    let current = read_current(&tx, site, &prepared)?;
    let plan = plan(&prepared, current);
    let at = batch.at.0;
    {
        let mut close = tx.prepare_cached(
            "UPDATE records SET valid_to = ?1, is_current = 0 WHERE id = ?2 AND is_current",
        )?;
        for id in &plan.close {
            close.execute(params![at, id])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO records \
             (site, entity, handle, digest, record, valid_from, valid_to, is_current, \
              transaction_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 1, ?6)",
        )?;
        for row in &plan.insert {
            insert.execute(params![
                site,
                entity_name(row.entity),
                &row.handle.as_bytes()[..],
                &row.digest.as_bytes()[..],
                row.json,
                at,
            ])?;
        }
    }
    tx.execute(
        "UPDATE devices SET next_seq = ?2, prev = ?3 WHERE device = ?1",
        params![
            batch.device.as_str(),
            seq_to_db(batch.next_head.next_seq)?,
            &batch.next_head.prev[..],
        ],
    )?;
    let changes = plan.changes;
    let [added, changed, removed, unchanged] = changes_to_db(&changes);
    tx.execute(
        "INSERT INTO transfers \
         (site, device, seq, at, snapshot, added, changed, removed, unchanged, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            site,
            batch.device.as_str(),
            seq_to_db(batch.seq)?,
            at,
            matches!(prepared, Prepared::Snapshot { .. }),
            added,
            changed,
            removed,
            unchanged,
            bytes_to_db(batch.bytes),
        ],
    )?;
    tx.commit()?;
    Ok(Outcome::Applied(changes))
}

/// The current versions a plan needs: the named records for a delta, all for a snapshot.
fn read_current(
    conn: &Connection,
    site: &str,
    prepared: &Prepared,
) -> Result<CurrentVersions, StoreError> {
    let mut current = CurrentVersions::new();
    match prepared.touched() {
        None => {
            let mut statement = conn.prepare_cached(
                "SELECT id, entity, handle, digest FROM records WHERE site = ?1 AND is_current",
            )?;
            let mut rows = statement.query([site])?;
            while let Some(row) = rows.next()? {
                let entity = entity_from_name(&row.get::<_, String>(1)?)?;
                let handle =
                    RecordHandle::from_bytes(bytes32(&row.get::<_, Vec<u8>>(2)?, "handle")?);
                let digest = Digest::from_bytes(bytes32(&row.get::<_, Vec<u8>>(3)?, "digest")?);
                current.insert(
                    (entity, handle),
                    Current {
                        id: row.get(0)?,
                        digest,
                    },
                );
            }
        }
        Some(keys) => {
            let mut statement = conn.prepare_cached(
                "SELECT id, digest FROM records \
                 WHERE site = ?1 AND entity = ?2 AND handle = ?3 AND is_current",
            )?;
            for (entity, handle) in keys {
                let found = statement
                    .query_row(
                        params![site, entity_name(entity), &handle.as_bytes()[..]],
                        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
                    )
                    .optional()?;
                if let Some((id, digest)) = found {
                    let digest = Digest::from_bytes(bytes32(&digest, "digest")?);
                    current.insert((entity, handle), Current { id, digest });
                }
            }
        }
    }
    Ok(current)
}

/// Reads the versions a roster query selects; `sql` yields `entity, record`.
fn read_roster(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Roster, StoreError> {
    let mut roster = Roster::default();
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        let entity = entity_from_name(&row.get::<_, String>(0)?)?;
        push_record(&mut roster, entity, &row.get::<_, String>(1)?)?;
    }
    sort_roster(&mut roster);
    Ok(roster)
}

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: row.get(0)?,
        role: row.get(1)?,
        kommune: row.get(2)?,
        password_hash: row.get(3)?,
        created: row.get(4)?,
    })
}

fn audit_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        at: Timestamp(row.get(0)?),
        actor: row.get(1)?,
        action: row.get(2)?,
        target: row.get(3)?,
        detail: row.get(4)?,
    })
}

fn transfer_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        device: row.get(0)?,
        seq: row.get(1)?,
        at: row.get(2)?,
        snapshot: row.get(3)?,
        counts: [row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?],
        bytes: row.get(8)?,
    })
}

fn client_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok(ClientRow {
        id: row.get(0)?,
        name: row.get(1)?,
        scope_kind: row.get(2)?,
        scope_code: row.get(3)?,
        secret_salt: row.get(4)?,
        secret_sha256: row.get(5)?,
        created: row.get(6)?,
        revoked: row.get(7)?,
    })
}

impl Store for SqliteStore {
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()> {
        let device = device.clone();
        let site = site.clone();
        let key = verifying_key.to_bytes();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            register(&tx, &device, &site, &key)?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT device, site, verifying_key, revoked FROM devices ORDER BY device",
            )?;
            let mut rows = statement.query([])?;
            let mut devices = Vec::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let device = DeviceId::new(id.as_str()).map_err(|_| {
                    StoreError::Corrupt(format!("stored device id {id:?} is invalid"))
                })?;
                let record = device_record(
                    &row.get::<_, String>(1)?,
                    &row.get::<_, Vec<u8>>(2)?,
                    row.get(3)?,
                )?;
                devices.push((device, record));
            }
            Ok(devices)
        }))
    }

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
            let rows = statement.query_map([], token_row)?;
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

    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let updated = conn.execute(
                "UPDATE devices SET revoked = 1 WHERE device = ?1",
                [device.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::UnknownDevice(device));
            }
            Ok(())
        }))
    }

    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let row: Option<(String, Vec<u8>, bool)> = conn
                .query_row(
                    "SELECT site, verifying_key, revoked FROM devices WHERE device = ?1",
                    [device.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            row.map(|(site, key, revoked)| device_record(&site, &key, revoked))
                .transpose()
        }))
    }

    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            Ok(read_device(conn, &device)?.map_or_else(ChainHead::genesis, |state| state.head))
        }))
    }

    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()> {
        let site = site.clone();
        let secret = secret.clone();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match read_secret(&tx, &site)? {
                Some(stored) if stored == secret => return Ok(()),
                Some(_) => {
                    // Both halves, so each can use its partial index.
                    let in_use: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM records WHERE site = ?1 AND is_current) \
                         OR EXISTS (SELECT 1 FROM records WHERE site = ?1 AND NOT is_current)",
                        [site.as_str()],
                        |row| row.get(0),
                    )?;
                    if in_use {
                        return Err(StoreError::SiteSecretInUse(site));
                    }
                    tx.execute(
                        "UPDATE sites SET secret = ?2 WHERE site = ?1",
                        params![site.as_str(), &secret.as_bytes()[..]],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO sites (site, secret) VALUES (?1, ?2)",
                        params![site.as_str(), &secret.as_bytes()[..]],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| read_secret(conn, &site)))
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, Outcome> {
        Box::pin(self.apply_batch(batch))
    }

    fn current_roster<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Roster> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            read_roster(
                conn,
                "SELECT entity, record FROM records WHERE site = ?1 AND is_current",
                [site.as_str()],
            )
        }))
    }

    fn roster_as_of<'a>(&'a self, site: &'a SiteId, at: Timestamp) -> StoreFuture<'a, Roster> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            read_roster(
                conn,
                "SELECT entity, record FROM records \
                 WHERE site = ?1 AND is_current AND valid_from <= ?2 \
                 UNION ALL \
                 SELECT entity, record FROM records \
                 WHERE site = ?1 AND NOT is_current AND valid_from <= ?2 AND valid_to > ?2",
                params![site.as_str(), at.0],
            )
        }))
    }

    fn counts<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Counts> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut counts = Counts::default();
            let mut statement = conn.prepare_cached(
                "SELECT entity, COUNT(*) FROM records \
                 WHERE site = ?1 AND is_current GROUP BY entity",
            )?;
            let mut rows = statement.query([site.as_str()])?;
            while let Some(row) = rows.next()? {
                set_count(&mut counts, &row.get::<_, String>(0)?, row.get(1)?)?;
            }
            Ok(counts)
        }))
    }

    fn history<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
        handle: &'a RecordHandle,
    ) -> StoreFuture<'a, Vec<Version>> {
        let site = site.clone();
        let handle = *handle;
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT record, valid_from, valid_to, is_current, transaction_time FROM ( \
                   SELECT * FROM records \
                   WHERE site = ?1 AND entity = ?2 AND handle = ?3 AND is_current \
                   UNION ALL \
                   SELECT * FROM records \
                   WHERE site = ?1 AND entity = ?2 AND handle = ?3 AND NOT is_current \
                 ) ORDER BY valid_from, id",
            )?;
            let mut rows = statement.query(params![
                site.as_str(),
                entity_name(entity),
                &handle.as_bytes()[..]
            ])?;
            let mut versions = Vec::new();
            while let Some(row) = rows.next()? {
                versions.push(Version {
                    record: super::decode(entity, &row.get::<_, String>(0)?)?,
                    valid_from: Timestamp(row.get(1)?),
                    valid_to: row.get::<_, Option<i64>>(2)?.map(Timestamp),
                    is_current: row.get(3)?,
                    transaction_time: Timestamp(row.get(4)?),
                });
            }
            Ok(versions)
        }))
    }

    fn current_records<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT handle, record, valid_from FROM records \
                 WHERE site = ?1 AND entity = ?2 AND is_current ORDER BY handle",
            )?;
            let mut rows = statement.query(params![site.as_str(), entity_name(entity)])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(CurrentRecord {
                    handle: RecordHandle::from_bytes(bytes32(
                        &row.get::<_, Vec<u8>>(0)?,
                        "handle",
                    )?),
                    record: decode(entity, &row.get::<_, String>(1)?)?,
                    modified: Timestamp(row.get(2)?),
                });
            }
            Ok(records)
        }))
    }

    fn current_schools(&self) -> StoreFuture<'_, Vec<(SiteId, School)>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT site, record FROM records WHERE is_current AND entity = 'schools'",
            )?;
            let mut rows = statement.query([])?;
            let mut schools = Vec::new();
            while let Some(row) = rows.next()? {
                let site = stored_site(&row.get::<_, String>(0)?)?;
                schools.push((site, decode_school(&row.get::<_, String>(1)?)?));
            }
            schools.sort_by(|(a, x), (b, y)| (a, &x.skolenummer).cmp(&(b, &y.skolenummer)));
            Ok(schools)
        }))
    }

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
            .query_row([id.as_str()], client_row)
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
            let rows = statement.query_map([], client_row)?;
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
            .query_row(params![&token_sha256[..], at.0], client_row)
            .optional()?
            .map(ClientRow::into_client)
            .transpose()
        }))
    }

    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool> {
        let release = release.clone();
        Box::pin(self.call(move |conn| create_release(conn, &release)))
    }

    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases {RELEASE_ORDER}"
            ))?;
            let rows = statement.query_map([], release_row)?;
            let mut releases = Vec::new();
            for row in rows {
                releases.push(row?.into_record()?);
            }
            Ok(releases)
        }))
    }

    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| read_release(conn, &id)))
    }

    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let updated = conn.execute(
                "UPDATE releases SET artifact_stored = 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id));
            }
            Ok(())
        }))
    }

    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        let change = change.clone();
        Box::pin(self.call(move |conn| change_rollout(conn, &id, &change)))
    }

    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool> {
        let event = event.clone();
        Box::pin(self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO release_updates (release, device, state, reason, at) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM releases WHERE id = ?1) \
                 ON CONFLICT DO NOTHING",
                params![
                    event.release,
                    event.device.as_str(),
                    event.state.name(),
                    event.reason,
                    event.at.0,
                ],
            )?;
            Ok(inserted == 1)
        }))
    }

    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT device, state, reason FROM release_updates WHERE release = ?1 \
                 ORDER BY device, state",
            )?;
            let rows = statement
                .query_map([id.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            release_report(rows)
        }))
    }

    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT release FROM release_updates \
                 WHERE device = ?1 AND state IN (?2, ?3) ORDER BY release",
            )?;
            let rows = statement.query_map(
                params![
                    device.as_str(),
                    UpdateState::RolledBack.name(),
                    UpdateState::Refused.name()
                ],
                |row| row.get(0),
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        }))
    }

    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()> {
        let user = user.clone();
        Box::pin(self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO ui_users (name, role, kommune, password_hash, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    user.name,
                    user.role.as_str(),
                    user.kommune,
                    user.password_hash,
                    user.created.0
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::UserExists(user.name));
            }
            Ok(())
        }))
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM ui_users WHERE name = ?1"
            ))?
            .query_row([name.as_str()], user_row)
            .optional()?
            .map(UserRow::into_user)
            .transpose()
        }))
    }

    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        let id_sha256 = *id_sha256;
        let (user, csrf) = (user.to_owned(), csrf.to_owned());
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM ui_sessions WHERE expires <= ?1", [now.0])?;
            tx.execute(
                "INSERT INTO ui_sessions (id_sha256, user, csrf, expires) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![&id_sha256[..], user, csrf, expires.0],
            )?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>> {
        let id_sha256 = *id_sha256;
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, ui_sessions.csrf, ui_sessions.expires \
                 FROM ui_sessions JOIN ui_users ON ui_users.name = ui_sessions.user \
                 WHERE ui_sessions.id_sha256 = ?1 AND ui_sessions.expires > ?2"
            ))?
            .query_row(params![&id_sha256[..], at.0], |row| {
                Ok((
                    user_row(row)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })
            .optional()?
            .map(|(user, csrf, expires)| {
                Ok(UiSession {
                    user: user.into_user()?,
                    csrf,
                    expires: Timestamp(expires),
                })
            })
            .transpose()
        }))
    }

    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()> {
        let id_sha256 = *id_sha256;
        Box::pin(self.call(move |conn| {
            conn.execute(
                "DELETE FROM ui_sessions WHERE id_sha256 = ?1",
                [&id_sha256[..]],
            )?;
            Ok(())
        }))
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()> {
        let entry = entry.clone();
        Box::pin(self.call(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    entry.at.0,
                    entry.actor,
                    entry.action,
                    entry.target,
                    entry.detail
                ],
            )?;
            Ok(())
        }))
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT at, actor, action, target, detail FROM audit_log \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = statement.query_map([limit], audit_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn transfers<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, Vec<Transfer>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE site = ?1 \
                 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![site.as_str(), limit], transfer_row)?;
            let mut transfers = Vec::new();
            for row in rows {
                transfers.push(row?.into_transfer()?);
            }
            Ok(transfers)
        }))
    }

    fn transfers_since(&self, since: Timestamp) -> StoreFuture<'_, Vec<(SiteId, Transfer)>> {
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TRANSFER_COLUMNS}, site FROM transfers WHERE at >= ?1 ORDER BY at, id"
            ))?;
            let mut rows = statement.query([since.0])?;
            let mut transfers = Vec::new();
            while let Some(row) = rows.next()? {
                let site: String = row.get("site")?;
                // The site by name: the transfer's own columns come first, by position.
                let transfer = transfer_row(row)?.into_transfer()?;
                transfers.push((stored_site(&site)?, transfer));
            }
            Ok(transfers)
        }))
    }

    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow> {
        let window = window.clone();
        Box::pin(self.call(move |conn| {
            window.check()?;
            // The write lock first, so no other window of the county slips in between the
            // overlap check and the insert.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = read_windows(&tx, Some(window.fylke))?;
            if let Some(other) = existing.iter().find(|other| window.overlaps(other)) {
                return Err(StoreError::WindowOverlap {
                    fylke: window.fylke,
                    existing: other.id,
                });
            }
            tx.execute(
                "INSERT INTO transfer_windows (fylke, name, opens, closes, created, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    window.fylke.to_string(),
                    window.name,
                    window.opens.0,
                    window.closes.0,
                    window.created.0,
                    window.created_by
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(window.stored(id))
        }))
    }

    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>> {
        Box::pin(self.call(move |conn| read_windows(conn, fylke)))
    }

    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>> {
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WINDOW_COLUMNS} FROM transfer_windows WHERE id = ?1"
            ))?
            .query_row([id], window_row)
            .optional()?
            .map(WindowRow::into_window)
            .transpose()
        }))
    }
}

/// The windows of one county (or all), in [`WINDOW_ORDER`].
fn read_windows(
    conn: &Connection,
    fylke: Option<Fylke>,
) -> Result<Vec<TransferWindow>, StoreError> {
    let county = fylke.map(|fylke| fylke.to_string());
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {WINDOW_COLUMNS} FROM transfer_windows \
         WHERE ?1 IS NULL OR fylke = ?1 {WINDOW_ORDER}"
    ))?;
    let rows = statement.query_map([county], window_row)?;
    let mut windows = Vec::new();
    for row in rows {
        windows.push(row?.into_window()?);
    }
    Ok(windows)
}

fn window_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WindowRow> {
    Ok(WindowRow {
        id: row.get(0)?,
        fylke: row.get(1)?,
        name: row.get(2)?,
        opens: row.get(3)?,
        closes: row.get(4)?,
        created: row.get(5)?,
        created_by: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
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
