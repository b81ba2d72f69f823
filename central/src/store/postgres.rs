//! The production store (DESIGN decision 9): PostgreSQL through tokio-postgres.
//!
//! Central reaches its database over loopback or a private network, so connections are
//! plain (`NoTls`): the only TLS in central is the agents' mutual TLS at the ingest. A small
//! built-in pool keeps a few connections open, each with `search_path` set to the store's
//! schema, so one database can hold several stores (the tests create a schema each).
//!
//! Exactly-once: [`Store::apply`] runs in one READ COMMITTED transaction that first locks the
//! site's row and then the device's row (`SELECT … FOR UPDATE`, always in that order, so two
//! applies never deadlock). A second apply of the same batch waits on the lock, then reads
//! the head the first one committed and changes nothing. Locking the site, not only the
//! device, also keeps two devices of one site (an old and a replacement Pi) from writing the
//! same records at once. New versions are written with one binary `COPY` into the records
//! table inside that transaction, so a snapshot of a large school is one stream, not a
//! statement per record; see `migrations/postgres/0001_init.sql` for the schema choices that
//! keep it close to a bare `COPY` (a `json` column, partial indexes, no per-row foreign key).

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use skolebro_protocol::{
    ChainHead, DeviceId, DeviceVerifyingKey, Digest, Entity, RecordHandle, Roster, School, SiteId,
    SiteSecret,
};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, GenericClient, NoTls};

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
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_enrollment.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_releases.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_consumers.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_operator_ui.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_transfer_windows.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_transfer_bytes.sql"),
    ),
];

/// Version ids per `UPDATE … WHERE id = ANY($1)` closing versions: keeps each message well
/// below PostgreSQL's limits while closing a whole school's roster takes a few statements.
const CHUNK: usize = 5_000;

/// The binary COPY's column types, in the order `apply` writes them.
///
/// `record` is a `json` column written as `TEXT`: the binary format of `json` is its text
/// (`json_recv` reads the bytes as text and validates them), so the JSON goes over the wire
/// as it is, without a text-COPY escape pass.
const COPY_TYPES: [Type; 9] = [
    Type::TEXT,  // site
    Type::TEXT,  // entity
    Type::BYTEA, // handle
    Type::BYTEA, // digest
    Type::TEXT,  // record (json)
    Type::INT8,  // valid_from
    Type::INT8,  // valid_to
    Type::BOOL,  // is_current
    Type::INT8,  // transaction_time
];

/// Central's store in a PostgreSQL schema.
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore(schema {})", self.pool.schema)
    }
}

impl PostgresStore {
    /// Connects with a libpq-style `config` (`host=127.0.0.1 port=5432 user=postgres
    /// dbname=central`), creates `schema` if needed and brings it up to date. At most
    /// `max_connections` connections are open at once (at least one).
    ///
    /// `schema` must be a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63
    /// characters): it is written into SQL, so nothing else is accepted.
    pub async fn connect(
        config: &str,
        schema: &str,
        max_connections: usize,
    ) -> Result<PostgresStore, StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Config(format!(
                "schema name {schema:?} is not a plain lower-case identifier"
            )));
        }
        let config: Config = config.parse()?;
        let store = PostgresStore {
            pool: Pool {
                config,
                schema: schema.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(max_connections.max(1)),
            },
        };
        let mut conn = store.pool.get().await?;
        migrate(&mut conn, schema).await?;
        drop(conn);
        Ok(store)
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }

    async fn apply_batch(&self, batch: Batch) -> Result<Outcome, StoreError> {
        let mut conn = self.pool.get().await?;
        // A cheap look first, without locks: replays and gaps, the common failures of a
        // retrying agent, are answered without encoding the payload.
        let state = read_device(&*conn, &batch.device, false).await?;
        if let ChainCheck::AlreadyApplied(head) = check_batch(&batch, state.as_ref())? {
            return Ok(Outcome::AlreadyApplied { head });
        }
        let secret = read_secret(&*conn, &batch.site, false)
            .await?
            .ok_or_else(|| StoreError::NoSiteSecret(batch.site.clone()))?;

        // Check handles and encode records off the async workers.
        let (batch, secret, prepared) = tokio::task::spawn_blocking(move || {
            let prepared = prepare(&batch.payload, &secret)?;
            Ok::<_, StoreError>((batch, secret, prepared))
        })
        .await
        .map_err(|error| StoreError::Worker(error.to_string()))??;

        let tx = conn.transaction().await?;
        // Lock order: site, then device (see the module documentation).
        let prepared = match read_secret(&tx, &batch.site, true).await? {
            Some(stored) if stored == secret => prepared,
            // Set anew since the first look (possible only while the site has no records):
            // handles must be checked against the secret in force.
            Some(stored) => prepare(&batch.payload, &stored)?,
            None => return Err(StoreError::NoSiteSecret(batch.site.clone())),
        };
        let state = read_device(&tx, &batch.device, true).await?;
        if let ChainCheck::AlreadyApplied(head) = check_batch(&batch, state.as_ref())? {
            return Ok(Outcome::AlreadyApplied { head });
        }

        let site = batch.site.as_str();
        let current = read_current(&tx, site, &prepared).await?;
        let plan = plan(&prepared, current);
        let at = batch.at.0;
        for ids in plan.close.chunks(CHUNK) {
            tx.execute(
                "UPDATE records SET valid_to = $2, is_current = false \
                 WHERE id = ANY($1) AND is_current",
                &[&ids, &at],
            )
            .await?;
        }
        if !plan.insert.is_empty() {
            // Binary COPY into the table itself, inside this transaction: the rows are
            // streamed as they are encoded, and the server decodes no text.
            let sink = tx
                .copy_in(
                    "COPY records (site, entity, handle, digest, record, valid_from, valid_to, \
                     is_current, transaction_time) FROM STDIN (FORMAT binary)",
                )
                .await?;
            let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
            let mut writer = std::pin::pin!(writer);
            let no_end: Option<i64> = None;
            for row in &plan.insert {
                writer
                    .as_mut()
                    .write(&[
                        &site,
                        &entity_name(row.entity),
                        &&row.handle.as_bytes()[..],
                        &&row.digest.as_bytes()[..],
                        &row.json.as_str(),
                        &at,
                        &no_end,
                        &true,
                        &at,
                    ])
                    .await?;
            }
            writer.finish().await?;
        }
        tx.execute(
            "UPDATE devices SET next_seq = $2, prev = $3 WHERE device = $1",
            &[
                &batch.device.as_str(),
                &seq_to_db(batch.next_head.next_seq)?,
                &&batch.next_head.prev[..],
            ],
        )
        .await?;
        let changes = plan.changes;
        let [added, changed, removed, unchanged] = changes_to_db(&changes);
        tx.execute(
            "INSERT INTO transfers \
             (site, device, seq, at, snapshot, added, changed, removed, unchanged, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &site,
                &batch.device.as_str(),
                &seq_to_db(batch.seq)?,
                &at,
                &matches!(prepared, Prepared::Snapshot { .. }),
                &added,
                &changed,
                &removed,
                &unchanged,
                &bytes_to_db(batch.bytes),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Applied(changes))
    }

    async fn read_roster(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Roster, StoreError> {
        let conn = self.pool.get().await?;
        let mut roster = Roster::default();
        for row in conn.query(sql, params).await? {
            let entity = entity_from_name(row.try_get(0)?)?;
            push_record(&mut roster, entity, row.try_get(1)?)?;
        }
        sort_roster(&mut roster);
        Ok(roster)
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

async fn read_device<C: GenericClient + Sync>(
    client: &C,
    device: &DeviceId,
    for_update: bool,
) -> Result<Option<DeviceState>, StoreError> {
    let sql = if for_update {
        "SELECT site, revoked, next_seq, prev FROM devices WHERE device = $1 FOR UPDATE"
    } else {
        "SELECT site, revoked, next_seq, prev FROM devices WHERE device = $1"
    };
    let Some(row) = client.query_opt(sql, &[&device.as_str()]).await? else {
        return Ok(None);
    };
    Ok(Some(DeviceState {
        site: row.try_get(0)?,
        revoked: row.try_get(1)?,
        head: ChainHead {
            next_seq: seq_from_db(row.try_get(2)?)?,
            prev: bytes32(row.try_get(3)?, "chain head digest")?,
        },
    }))
}

async fn read_secret<C: GenericClient + Sync>(
    client: &C,
    site: &SiteId,
    for_update: bool,
) -> Result<Option<SiteSecret>, StoreError> {
    let sql = if for_update {
        "SELECT secret FROM sites WHERE site = $1 FOR UPDATE"
    } else {
        "SELECT secret FROM sites WHERE site = $1"
    };
    let Some(row) = client.query_opt(sql, &[&site.as_str()]).await? else {
        return Ok(None);
    };
    Ok(Some(SiteSecret::from_bytes(bytes32(
        row.try_get(0)?,
        "site secret",
    )?)))
}

/// Registers a device inside a transaction, or finds it registered with the same site and
/// key (anything else is [`StoreError::DeviceConflict`]), and locks its row. Returns whether
/// the device is revoked.
///
/// `ON CONFLICT DO NOTHING` and a locking re-read: two enrollments of one device at once
/// neither fail on the primary key nor both believe they registered.
async fn register<C: GenericClient + Sync>(
    client: &C,
    device: &DeviceId,
    site: &SiteId,
    key: &[u8; 32],
) -> Result<bool, StoreError> {
    client
        .execute(
            "INSERT INTO devices (device, site, verifying_key) VALUES ($1, $2, $3) \
             ON CONFLICT (device) DO NOTHING",
            &[&device.as_str(), &site.as_str(), &&key[..]],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT site, verifying_key, revoked FROM devices WHERE device = $1 FOR UPDATE",
            &[&device.as_str()],
        )
        .await?;
    let stored_site: &str = row.try_get(0)?;
    let stored_key: &[u8] = row.try_get(1)?;
    if stored_site != site.as_str() || stored_key != key {
        return Err(StoreError::DeviceConflict(device.clone()));
    }
    Ok(row.try_get(2)?)
}

fn token_row(row: &tokio_postgres::Row) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        token_sha256: row.try_get(0)?,
        site: row.try_get(1)?,
        site_name: row.try_get(2)?,
        created: row.try_get(3)?,
        expires: row.try_get(4)?,
        used_by: row.try_get(5)?,
        used_at: row.try_get(6)?,
        revoked: row.try_get(7)?,
    })
}

async fn read_token<C: GenericClient + Sync>(
    client: &C,
    token_sha256: &[u8; 32],
    for_update: bool,
) -> Result<Option<TokenRecord>, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_sha256 = $1{lock}");
    match client.query_opt(&sql, &[&&token_sha256[..]]).await? {
        Some(row) => Ok(Some(token_row(&row)?.into_record()?)),
        None => Ok(None),
    }
}

fn release_row(row: &tokio_postgres::Row) -> Result<ReleaseRow, StoreError> {
    Ok(ReleaseRow {
        id: row.try_get(0)?,
        major: row.try_get(1)?,
        minor: row.try_get(2)?,
        patch: row.try_get(3)?,
        target: row.try_get(4)?,
        size: row.try_get(5)?,
        sha256: row.try_get(6)?,
        allow_downgrade: row.try_get(7)?,
        manifest: row.try_get(8)?,
        registered: row.try_get(9)?,
        artifact_stored: row.try_get(10)?,
        percent: i64::from(row.try_get::<_, i16>(11)?),
        sites: row.try_get(12)?,
        paused: row.try_get(13)?,
    })
}

/// The current versions a plan needs: the named records for a delta, all for a snapshot.
async fn read_current<C: GenericClient + Sync>(
    client: &C,
    site: &str,
    prepared: &Prepared,
) -> Result<CurrentVersions, StoreError> {
    let rows = match prepared.touched() {
        None => {
            client
                .query(
                    "SELECT id, entity, handle, digest FROM records \
                     WHERE site = $1 AND is_current",
                    &[&site],
                )
                .await?
        }
        Some(keys) => {
            let entities: Vec<&str> = keys
                .iter()
                .map(|(entity, _)| entity_name(*entity))
                .collect();
            let handles: Vec<&[u8]> = keys
                .iter()
                .map(|(_, handle)| &handle.as_bytes()[..])
                .collect();
            // One index probe of `records_current` per named record.
            client
                .query(
                    "SELECT r.id, r.entity, r.handle, r.digest \
                     FROM UNNEST($2::text[], $3::bytea[]) AS k (entity, handle) \
                     JOIN records r ON r.site = $1 AND r.entity = k.entity \
                      AND r.handle = k.handle AND r.is_current",
                    &[&site, &entities, &handles],
                )
                .await?
        }
    };
    let mut current = CurrentVersions::with_capacity(rows.len());
    for row in rows {
        let entity = entity_from_name(row.try_get(1)?)?;
        let handle = RecordHandle::from_bytes(bytes32(row.try_get(2)?, "handle")?);
        let digest = Digest::from_bytes(bytes32(row.try_get(3)?, "digest")?);
        current.insert(
            (entity, handle),
            Current {
                id: row.try_get(0)?,
                digest,
            },
        );
    }
    Ok(current)
}

fn user_row(row: &tokio_postgres::Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        name: row.try_get(0)?,
        role: row.try_get(1)?,
        kommune: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        created: row.try_get(4)?,
    })
}

fn transfer_row(row: &tokio_postgres::Row) -> Result<TransferRow, StoreError> {
    Ok(TransferRow {
        device: row.try_get(0)?,
        seq: row.try_get(1)?,
        at: row.try_get(2)?,
        snapshot: row.try_get(3)?,
        counts: [
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
        ],
        bytes: row.try_get(8)?,
    })
}

fn client_row(row: &tokio_postgres::Row) -> Result<ClientRow, StoreError> {
    Ok(ClientRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        scope_kind: row.try_get(2)?,
        scope_code: row.try_get(3)?,
        secret_salt: row.try_get(4)?,
        secret_sha256: row.try_get(5)?,
        created: row.try_get(6)?,
        revoked: row.try_get(7)?,
    })
}

impl Store for PostgresStore {
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            register(&tx, device, site, &verifying_key.to_bytes()).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT device, site, verifying_key, revoked FROM devices ORDER BY device",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let id: &str = row.try_get(0)?;
                    let device = DeviceId::new(id).map_err(|_| {
                        StoreError::Corrupt(format!("stored device id {id:?} is invalid"))
                    })?;
                    let record = device_record(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?;
                    Ok((device, record))
                })
                .collect()
        })
    }

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
                .map(|row| token_row(row)?.into_record())
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

    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let updated = conn
                .execute(
                    "UPDATE devices SET revoked = true WHERE device = $1",
                    &[&device.as_str()],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownDevice(device.clone()));
            }
            Ok(())
        })
    }

    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let Some(row) = conn
                .query_opt(
                    "SELECT site, verifying_key, revoked FROM devices WHERE device = $1",
                    &[&device.as_str()],
                )
                .await?
            else {
                return Ok(None);
            };
            device_record(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?).map(Some)
        })
    }

    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            Ok(read_device(&*conn, device, false)
                .await?
                .map_or_else(ChainHead::genesis, |state| state.head))
        })
    }

    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO sites (site, secret) VALUES ($1, $2) ON CONFLICT (site) DO NOTHING",
                &[&site.as_str(), &&secret.as_bytes()[..]],
            )
            .await?;
            // The site row is locked from here on, as apply locks it: no batch can add
            // records between the check below and the update.
            match read_secret(&tx, site, true).await? {
                Some(stored) if stored == *secret => {}
                _ => {
                    // Both halves, so each can use its partial index.
                    let in_use: bool = tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM records WHERE site = $1 AND is_current) \
                             OR EXISTS (SELECT 1 FROM records WHERE site = $1 AND NOT is_current)",
                            &[&site.as_str()],
                        )
                        .await?
                        .try_get(0)?;
                    if in_use {
                        return Err(StoreError::SiteSecretInUse(site.clone()));
                    }
                    tx.execute(
                        "UPDATE sites SET secret = $2 WHERE site = $1",
                        &[&site.as_str(), &&secret.as_bytes()[..]],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_secret(&*conn, site, false).await
        })
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, Outcome> {
        Box::pin(self.apply_batch(batch))
    }

    fn current_roster<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            self.read_roster(
                "SELECT entity, record::text FROM records WHERE site = $1 AND is_current",
                &[&site.as_str()],
            )
            .await
        })
    }

    fn roster_as_of<'a>(&'a self, site: &'a SiteId, at: Timestamp) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            self.read_roster(
                "SELECT entity, record::text FROM records \
                 WHERE site = $1 AND is_current AND valid_from <= $2 \
                 UNION ALL \
                 SELECT entity, record::text FROM records \
                 WHERE site = $1 AND NOT is_current AND valid_from <= $2 AND valid_to > $2",
                &[&site.as_str(), &at.0],
            )
            .await
        })
    }

    fn counts<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Counts> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let mut counts = Counts::default();
            for row in conn
                .query(
                    "SELECT entity, COUNT(*) FROM records \
                     WHERE site = $1 AND is_current GROUP BY entity",
                    &[&site.as_str()],
                )
                .await?
            {
                set_count(&mut counts, row.try_get(0)?, row.try_get(1)?)?;
            }
            Ok(counts)
        })
    }

    fn history<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
        handle: &'a RecordHandle,
    ) -> StoreFuture<'a, Vec<Version>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT record::text, valid_from, valid_to, is_current, transaction_time \
                     FROM ( \
                       SELECT * FROM records \
                       WHERE site = $1 AND entity = $2 AND handle = $3 AND is_current \
                       UNION ALL \
                       SELECT * FROM records \
                       WHERE site = $1 AND entity = $2 AND handle = $3 AND NOT is_current \
                     ) AS versions ORDER BY valid_from, id",
                    &[
                        &site.as_str(),
                        &entity_name(entity),
                        &&handle.as_bytes()[..],
                    ],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Version {
                        record: super::decode(entity, row.try_get(0)?)?,
                        valid_from: Timestamp(row.try_get(1)?),
                        valid_to: row.try_get::<_, Option<i64>>(2)?.map(Timestamp),
                        is_current: row.try_get(3)?,
                        transaction_time: Timestamp(row.try_get(4)?),
                    })
                })
                .collect()
        })
    }

    fn current_records<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT handle, record::text, valid_from FROM records \
                     WHERE site = $1 AND entity = $2 AND is_current ORDER BY handle",
                    &[&site.as_str(), &entity_name(entity)],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(CurrentRecord {
                        handle: RecordHandle::from_bytes(bytes32(row.try_get(0)?, "handle")?),
                        record: decode(entity, row.try_get(1)?)?,
                        modified: Timestamp(row.try_get(2)?),
                    })
                })
                .collect()
        })
    }

    fn current_schools(&self) -> StoreFuture<'_, Vec<(SiteId, School)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT site, record::text FROM records \
                     WHERE is_current AND entity = 'schools'",
                    &[],
                )
                .await?;
            let mut schools = rows
                .iter()
                .map(|row| {
                    Ok((
                        stored_site(row.try_get(0)?)?,
                        decode_school(row.try_get(1)?)?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            schools.sort_by(|(a, x), (b, y)| (a, &x.skolenummer).cmp(&(b, &y.skolenummer)));
            Ok(schools)
        })
    }

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
                Some(row) => Ok(Some(client_row(&row)?.into_client()?)),
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
                .map(|row| client_row(row)?.into_client())
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
                Some(row) => Ok(Some(client_row(&row)?.into_client()?)),
                None => Ok(None),
            }
        })
    }

    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let size = u64_to_db(release.size, "artifact size")?;
            let inserted = conn
                .execute(
                    "INSERT INTO releases (id, major, minor, patch, target, size, sha256, \
                     allow_downgrade, manifest, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                    &[
                        &release.id,
                        &i64::from(release.version.major),
                        &i64::from(release.version.minor),
                        &i64::from(release.version.patch),
                        &release.target,
                        &size,
                        &&release.sha256[..],
                        &release.allow_downgrade,
                        &release.manifest,
                        &release.registered.0,
                    ],
                )
                .await?;
            if inserted == 0 {
                let row = conn
                    .query_one(
                        "SELECT manifest FROM releases WHERE id = $1",
                        &[&release.id],
                    )
                    .await?;
                let stored: &[u8] = row.try_get(0)?;
                if stored != release.manifest.as_slice() {
                    return Err(StoreError::ReleaseExists(release.id.clone()));
                }
            }
            Ok(inserted == 1)
        })
    }

    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    &format!("SELECT {RELEASE_COLUMNS} FROM releases {RELEASE_ORDER}"),
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| release_row(row)?.into_record())
                .collect()
        })
    }

    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .query_opt(
                    &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.map(|row| release_row(&row)?.into_record()).transpose()
        })
    }

    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let updated = conn
                .execute(
                    "UPDATE releases SET artifact_stored = true WHERE id = $1",
                    &[&id],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id.to_owned()));
            }
            Ok(())
        })
    }

    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            // One statement: a setting left out keeps its stored value.
            let percent = change.percent.map(i16::from);
            let sites = change.sites.as_deref().map(sites_json);
            let updated = conn
                .execute(
                    "UPDATE releases SET percent = COALESCE($2, percent), \
                     sites = COALESCE($3, sites), paused = COALESCE($4, paused) WHERE id = $1",
                    &[&id, &percent, &sites, &change.paused],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id.to_owned()));
            }
            Ok(())
        })
    }

    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let inserted = conn
                .execute(
                    "INSERT INTO release_updates (release, device, state, reason, at) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE EXISTS (SELECT 1 FROM releases WHERE id = $1) \
                     ON CONFLICT DO NOTHING",
                    &[
                        &event.release,
                        &event.device.as_str(),
                        &event.state.name(),
                        &event.reason,
                        &event.at.0,
                    ],
                )
                .await?;
            Ok(inserted == 1)
        })
    }

    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT device, state, reason FROM release_updates WHERE release = $1 \
                     ORDER BY device, state",
                    &[&id],
                )
                .await?;
            let rows = rows
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            release_report(rows)
        })
    }

    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT DISTINCT release FROM release_updates \
                     WHERE device = $1 AND state IN ($2, $3) ORDER BY release",
                    &[
                        &device.as_str(),
                        &UpdateState::RolledBack.name(),
                        &UpdateState::Refused.name(),
                    ],
                )
                .await?;
            rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
        })
    }

    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let inserted = conn
                .execute(
                    "INSERT INTO ui_users (name, role, kommune, password_hash, created) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &user.name,
                        &user.role.as_str(),
                        &user.kommune,
                        &user.password_hash,
                        &user.created.0,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::UserExists(user.name.clone()));
            }
            Ok(())
        })
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM ui_users WHERE name = $1");
            match conn.query_opt(&sql, &[&name]).await? {
                Some(row) => Ok(Some(user_row(&row)?.into_user()?)),
                None => Ok(None),
            }
        })
    }

    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute("DELETE FROM ui_sessions WHERE expires <= $1", &[&now.0])
                .await?;
            tx.execute(
                "INSERT INTO ui_sessions (id_sha256, \"user\", csrf, expires) \
                 VALUES ($1, $2, $3, $4)",
                &[&&id_sha256[..], &user, &csrf, &expires.0],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {USER_COLUMNS}, ui_sessions.csrf, ui_sessions.expires \
                 FROM ui_sessions JOIN ui_users ON ui_users.name = ui_sessions.\"user\" \
                 WHERE ui_sessions.id_sha256 = $1 AND ui_sessions.expires > $2"
            );
            match conn.query_opt(&sql, &[&&id_sha256[..], &at.0]).await? {
                Some(row) => Ok(Some(UiSession {
                    user: user_row(&row)?.into_user()?,
                    csrf: row.try_get(5)?,
                    expires: Timestamp(row.try_get(6)?),
                })),
                None => Ok(None),
            }
        })
    }

    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute(
                "DELETE FROM ui_sessions WHERE id_sha256 = $1",
                &[&&id_sha256[..]],
            )
            .await?;
            Ok(())
        })
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.at.0,
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.detail,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT at, actor, action, target, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditEntry {
                        at: Timestamp(row.try_get(0)?),
                        actor: row.try_get(1)?,
                        action: row.try_get(2)?,
                        target: row.try_get(3)?,
                        detail: row.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn transfers<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, Vec<Transfer>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE site = $1 \
                 ORDER BY id DESC LIMIT $2"
            );
            let rows = conn
                .query(&sql, &[&site.as_str(), &i64::from(limit)])
                .await?;
            rows.iter()
                .map(|row| transfer_row(row)?.into_transfer())
                .collect()
        })
    }

    fn transfers_since(&self, since: Timestamp) -> StoreFuture<'_, Vec<(SiteId, Transfer)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS}, site FROM transfers WHERE at >= $1 ORDER BY at, id"
            );
            let rows = conn.query(&sql, &[&since.0]).await?;
            rows.iter()
                .map(|row| {
                    // The site by name: the transfer's own columns come first, by position.
                    let site: String = row.try_get("site")?;
                    Ok((stored_site(&site)?, transfer_row(row)?.into_transfer()?))
                })
                .collect()
        })
    }

    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow> {
        Box::pin(async move {
            window.check()?;
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            // Self-conflicting but open to readers: two creations wait for each other, so
            // no other window of the county slips in between the overlap check and the insert.
            tx.batch_execute("LOCK TABLE transfer_windows IN SHARE ROW EXCLUSIVE MODE")
                .await?;
            let existing = read_windows(&tx, Some(window.fylke)).await?;
            if let Some(other) = existing.iter().find(|other| window.overlaps(other)) {
                return Err(StoreError::WindowOverlap {
                    fylke: window.fylke,
                    existing: other.id,
                });
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO transfer_windows \
                     (fylke, name, opens, closes, created, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &window.fylke.to_string(),
                        &window.name,
                        &window.opens.0,
                        &window.closes.0,
                        &window.created.0,
                        &window.created_by,
                    ],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(window.clone().stored(id))
        })
    }

    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_windows(&*conn, fylke).await
        })
    }

    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {WINDOW_COLUMNS} FROM transfer_windows WHERE id = $1");
            match conn.query_opt(&sql, &[&id]).await? {
                Some(row) => Ok(Some(window_row(&row)?.into_window()?)),
                None => Ok(None),
            }
        })
    }
}

/// The windows of one county (or all), in [`WINDOW_ORDER`].
async fn read_windows<C: GenericClient + Sync>(
    conn: &C,
    fylke: Option<Fylke>,
) -> Result<Vec<TransferWindow>, StoreError> {
    let county = fylke.map(|fylke| fylke.to_string());
    let sql = format!(
        "SELECT {WINDOW_COLUMNS} FROM transfer_windows \
         WHERE $1::text IS NULL OR fylke = $1 {WINDOW_ORDER}"
    );
    let rows = conn.query(&sql, &[&county]).await?;
    rows.iter()
        .map(|row| window_row(row)?.into_window())
        .collect()
}

fn window_row(row: &tokio_postgres::Row) -> Result<WindowRow, StoreError> {
    Ok(WindowRow {
        id: row.try_get(0)?,
        fylke: row.try_get(1)?,
        name: row.try_get(2)?,
        opens: row.try_get(3)?,
        closes: row.try_get(4)?,
        created: row.try_get(5)?,
        created_by: row.try_get(6)?,
    })
}

/// A few reusable connections, each with `search_path` set to the store's schema.
///
/// Small on purpose (no dependency): a permit bounds the open connections, idle ones wait in
/// a list, and a connection that broke is dropped instead of returned.
struct Pool {
    config: Config,
    schema: String,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

impl Pool {
    async fn get(&self) -> Result<PooledClient<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| StoreError::Worker(error.to_string()))?;
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(client) if client.is_closed() => continue,
                Some(client) => {
                    return Ok(PooledClient {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
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
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::suite::{self, Fixture};

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
        let store = PostgresStore::connect(&config(), &schema, 4)
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
    async fn connecting_twice_to_one_schema_migrates_once() {
        let fixture = open().await;
        let again = PostgresStore::connect(&config(), &fixture.schema, 1)
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
