//! [`RecordStore`] on PostgreSQL: applying a batch's plan with its new chain head, and reading
//! rosters, versions, counts and transfers. The types and the trait are in
//! `crate::store::records`; the SQLite version of each method is in `sqlite/records.rs`.

use std::collections::HashMap;

use compact_str::CompactString;
use skolebro_protocol::{Digest, Entity, RecordHandle, Roster, School, SiteId, SiteSecret};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient};

use super::devices::{read_device, read_secret};
use super::paging::refresh_flags;
use super::subjects::{mark_returned, read_tombstones};
use super::PostgresStore;
use crate::seal::Sealer;
use crate::store::columns::{
    bytes32, entity_from_name, entity_name, optional_handle, seq_to_db, stored_consumer_id,
    stored_site,
};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::paging::{
    closed_since_sql, enrollments_of_sql, page_sql, refresh_after, scope_sites, site_schools_sql,
    students_of_sql, Dialect, PageSql,
};
use crate::store::planning::{
    plan, prepare, snapshot_enrolled, Current, CurrentVersions, Insert, Prepared, RenamedIdentities,
};
use crate::store::records::{
    bytes_to_db, changes_to_db, check_batch, decode, decode_school, push_record, set_count,
    sort_roster, ApplyOutcome, ChainCheck, Counts, CurrentRecord, IncomingBatch, RecordStore,
    Transfer, TransferRow, Version, TRANSFER_COLUMNS,
};
use crate::store::records::{consumer_id, ConsumerPage, PagedRecords};
use crate::store::subjects::hold_erased;
use crate::store::timestamp::Timestamp;

/// Version ids per `UPDATE … WHERE id = ANY($1)` closing versions: keeps each message well
/// below PostgreSQL's limits while closing a whole school's roster takes a few statements.
const CHUNK: usize = 5_000;

/// The binary COPY's column types, in the order `apply` writes them.
///
/// `record` is a `json` column written as `TEXT`: the binary format of `json` is its text
/// (`json_recv` reads the bytes as text and validates them), so the JSON goes over the wire
/// as it is, without a text-COPY escape pass.
const COPY_TYPES: [Type; 16] = [
    Type::TEXT,  // site
    Type::TEXT,  // entity
    Type::BYTEA, // handle
    Type::BYTEA, // digest
    Type::TEXT,  // record (json)
    Type::INT8,  // valid_from
    Type::INT8,  // valid_to
    Type::BOOL,  // is_current
    Type::INT8,  // transaction_time
    Type::BYTEA, // identity
    Type::BYTEA, // consumer_id
    Type::INT4,  // key_id
    Type::TEXT,  // school
    Type::BYTEA, // student
    Type::BOOL,  // enrolled
    Type::BOOL,  // grouped
];

/// Rows a snapshot inserts from which `records` is analysed after it commits (`ANALYZE
/// records`, a sample of the table): a fresh county's first snapshot otherwise leaves the
/// planner guessing at an empty table, and its consumer pages take plans that read every
/// row. Not `VACUUM`: in a night when thousands of schools deliver, a vacuum of the whole
/// table after each large snapshot would compete with the applies; autovacuum marks the new
/// rows visible to all (which index-only scans need) within minutes of a large insert.
const ANALYZE_AFTER: usize = 10_000;

impl PostgresStore {
    async fn apply_batch(&self, batch: IncomingBatch) -> Result<ApplyOutcome, StoreError> {
        let mut conn = self.pool.get_bulk().await?;
        // A cheap look first, without locks: replays and gaps, the common failures of a
        // retrying agent, are answered without encoding the payload.
        let state = read_device(&*conn, &batch.device, false).await?;
        if let ChainCheck::AlreadyApplied(head) = check_batch(&batch, state.as_ref())? {
            return Ok(ApplyOutcome::AlreadyApplied { head });
        }
        let secret = read_secret(&*conn, &batch.site, false)
            .await?
            .ok_or_else(|| StoreError::NoSiteSecret(batch.site.clone()))?;

        // Check handles and encode records off the async workers.
        let sealer = self.sealer();
        let (batch, secret, sealer, prepared) = tokio::task::spawn_blocking(move || {
            let prepared = prepare(&batch.payload, &secret, &sealer)?;
            Ok::<_, StoreError>((batch, secret, sealer, prepared))
        })
        .await
        .map_err(|error| StoreError::Worker(error.to_string()))??;

        apply_prepared(&mut conn, &batch, &secret, &sealer, prepared).await
    }

    async fn read_roster(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Roster, StoreError> {
        let conn = self.pool.get().await?;
        let sealer = self.sealer();
        let mut roster = Roster::default();
        for row in conn.query(sql, params).await? {
            let entity = entity_from_name(row.try_get(0)?)?;
            push_record(&sealer, &mut roster, entity, row.try_get(1)?)?;
        }
        sort_roster(&mut roster);
        Ok(roster)
    }
}

impl PostgresStore {
    /// The current records of `entity` at one site that belong to the students with
    /// `students` as keys, read by `sql` (parameters: the site, the keys' handles): the
    /// students themselves, or their enrollments.
    async fn of_students(
        &self,
        site: &SiteId,
        students: &[CompactString],
        entity: Entity,
        sql: fn(Dialect) -> String,
    ) -> Result<Vec<CurrentRecord>, StoreError> {
        let sealer = self.sealer();
        let conn = self.pool.get().await?;
        let secret = read_secret(&*conn, site, false)
            .await?
            .ok_or_else(|| StoreError::NoSiteSecret(site.clone()))?;
        let handles: Vec<RecordHandle> = students
            .iter()
            .map(|key| secret.handle(Entity::Student, key))
            .collect();
        let handles: Vec<&[u8]> = handles.iter().map(|h| &h.as_bytes()[..]).collect();
        conn.query(&sql(Dialect::Postgres), &[&site.as_str(), &handles])
            .await?
            .iter()
            .map(|row| current_record(&sealer, row, 0, entity))
            .collect()
    }
}

/// The statements of a consumer page ([`page_sql`]), given the current schools of its
/// sites.
async fn page_statements(
    conn: &impl GenericClient,
    page: &ConsumerPage,
) -> Result<PageSql, StoreError> {
    let site_schools = conn
        .query(&site_schools_sql(Dialect::Postgres), &[&scope_sites(page)])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<(String, Option<String>)>, StoreError>>()?;
    Ok(page_sql(page, &site_schools, Dialect::Postgres))
}

/// The values of a consumer page's parameters before its limit and offset: the lists, the
/// `modified` bounds, then the `ids` bounds (`ids`, as bytes).
fn page_values<'a>(
    sql: &'a PageSql,
    page: &'a ConsumerPage,
    ids: &'a [&'a [u8]],
) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut values: Vec<&(dyn ToSql + Sync)> = sql
        .lists
        .iter()
        .map(|list| list as &(dyn ToSql + Sync))
        .collect();
    values.extend(
        page.modified
            .iter()
            .map(|(_, at)| &at.0 as &(dyn ToSql + Sync)),
    );
    values.extend(ids.iter().map(|id| id as &(dyn ToSql + Sync)));
    values
}

/// The write half of `apply`: one transaction that takes the site's and the device's locks,
/// re-checks the secret and the chain under them, writes the plan and advances the head.
/// `prepared` holds the batch's rows as checked against `secret` at the first look.
pub(super) async fn apply_prepared(
    conn: &mut Client,
    batch: &IncomingBatch,
    secret: &SiteSecret,
    sealer: &Sealer,
    prepared: Prepared,
) -> Result<ApplyOutcome, StoreError> {
    let tx = conn.transaction().await?;
    // The refreshes of `enrolled` and `grouped` over a whole site run in about 50 ms on
    // 100,000 rows, but the server's JIT, which their cost estimate triggers, spends
    // 0.3–0.5 s compiling each (docs/BENCHMARKS.md): off for this transaction only.
    tx.batch_execute("SET LOCAL jit = off").await?;
    // Lock order: site, then device (see the module documentation).
    let prepared = match read_secret(&tx, &batch.site, true).await? {
        Some(stored) if stored == *secret => prepared,
        // Set anew since the first look (possible only while the site has no records):
        // handles must be checked against the secret in force.
        Some(stored) => prepare(&batch.payload, &stored, sealer)?,
        None => return Err(StoreError::NoSiteSecret(batch.site.clone())),
    };
    let state = read_device(&tx, &batch.device, true).await?;
    if let ChainCheck::AlreadyApplied(head) = check_batch(batch, state.as_ref())? {
        return Ok(ApplyOutcome::AlreadyApplied { head });
    }
    super::sealing::check_records_key(&tx, sealer).await?;

    let site = batch.site.as_str();
    let tombstones = read_tombstones(&tx, Some(site)).await?;
    let (prepared, held) = hold_erased(prepared, &tombstones, sealer)?;
    let current = read_current(&tx, site, &prepared).await?;
    let renamed = read_renamed(&tx, site).await?;
    let plan = plan(&prepared, current, &renamed)?;
    let at = batch.at.0;
    let snapshot = matches!(prepared, Prepared::Snapshot { .. });
    let enrolled = snapshot_enrolled(&prepared).unwrap_or_default();
    let mut closed = Vec::new();
    for ids in plan.close.chunks(CHUNK) {
        let rows = tx
            .query(
                "UPDATE records SET valid_to = $2, is_current = false \
                 WHERE id = ANY($1) AND is_current RETURNING entity, student",
                &[&ids, &at],
            )
            .await?;
        if !snapshot {
            for row in rows {
                let student = optional_handle(row.try_get(1)?, "student")?;
                closed.push((entity_from_name(row.try_get(0)?)?, student));
            }
        }
    }
    if !plan.renamed_to.is_empty() {
        let ids: Vec<i64> = plan.renamed_to.iter().map(|(id, _)| *id).collect();
        let to: Vec<&[u8]> = plan
            .renamed_to
            .iter()
            .map(|(_, to)| &to.as_bytes()[..])
            .collect();
        tx.execute(
            "UPDATE records r SET renamed_to = k.renamed_to \
             FROM UNNEST($1::bigint[], $2::bytea[]) AS k (id, renamed_to) WHERE r.id = k.id",
            &[&ids, &to],
        )
        .await?;
    }
    if !plan.insert.is_empty() {
        // Binary COPY into the table itself, inside this transaction: the rows are
        // streamed as they are encoded, and the server decodes no text.
        let sink = tx
            .copy_in(
                "COPY records (site, entity, handle, digest, record, valid_from, valid_to, \
                 is_current, transaction_time, identity, consumer_id, key_id, school, \
                 student, enrolled, grouped) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
        let mut writer = std::pin::pin!(writer);
        let no_end: Option<i64> = None;
        for Insert { row, identity } in &plan.insert {
            let consumer = consumer_id(identity.as_ref().unwrap_or(&row.handle));
            let identity = identity.as_ref().map(|identity| &identity.as_bytes()[..]);
            let key_id = row
                .key_id
                .map(i32::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt("key id out of range".to_owned()))?;
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
                    &identity,
                    &&consumer[..],
                    &key_id,
                    &row.school,
                    &row.student.as_ref().map(|student| &student.as_bytes()[..]),
                    &row.enrolled_at_insert(&enrolled),
                    &row.grouped,
                ])
                .await?;
        }
        writer.finish().await?;
    }
    refresh_flags(&tx, site, &refresh_after(snapshot, &plan.insert, &closed)).await?;
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
    let [added, changed, removed, unchanged, renamed] = changes_to_db(&changes);
    tx.execute(
        "INSERT INTO transfers \
         (site, device, seq, at, snapshot, added, changed, removed, unchanged, bytes, \
          renamed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            &renamed,
        ],
    )
    .await?;
    mark_returned(&tx, site, &held, batch.at).await?;
    tx.commit().await?;
    if snapshot && plan.insert.len() >= ANALYZE_AFTER {
        // The batch is in: a failure here costs speed, not data, so it is only logged.
        if let Err(error) = conn.batch_execute("ANALYZE records").await {
            tracing::warn!(%error, "analysing records after a large snapshot failed");
        }
    }
    Ok(ApplyOutcome::Applied(changes))
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
                    "SELECT id, entity, handle, digest, identity FROM records \
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
                    "SELECT r.id, r.entity, r.handle, r.digest, r.identity \
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
                identity: optional_handle(row.try_get(4)?, "identity")?,
            },
        );
    }
    Ok(current)
}

/// The site's current records whose identity is not their own handle.
async fn read_renamed<C: GenericClient + Sync>(
    client: &C,
    site: &str,
) -> Result<RenamedIdentities, StoreError> {
    let rows = client
        .query(
            "SELECT entity, handle, identity FROM records \
             WHERE site = $1 AND is_current AND identity IS NOT NULL",
            &[&site],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (
                    entity_from_name(row.try_get(0)?)?,
                    RecordHandle::from_bytes(bytes32(row.try_get(1)?, "handle")?),
                ),
                RecordHandle::from_bytes(bytes32(row.try_get(2)?, "identity")?),
            ))
        })
        .collect()
}

/// A current record from the columns handle, record (as text), `valid_from` and identity,
/// starting at column `from`.
fn current_record(
    sealer: &Sealer,
    row: &tokio_postgres::Row,
    from: usize,
    entity: Entity,
) -> Result<CurrentRecord, StoreError> {
    Ok(CurrentRecord {
        handle: RecordHandle::from_bytes(bytes32(row.try_get(from)?, "handle")?),
        record: decode(sealer, entity, row.try_get(from + 1)?)?,
        modified: Timestamp(row.try_get(from + 2)?),
        identity: RecordHandle::from_bytes(bytes32(row.try_get(from + 3)?, "identity")?),
    })
}

impl RecordStore for PostgresStore {
    fn apply(&self, batch: IncomingBatch) -> StoreFuture<'_, ApplyOutcome> {
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
            let sealer = self.sealer();
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT record::text, valid_from, valid_to, is_current, transaction_time, \
                            renamed_to \
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
                        record: decode(&sealer, entity, row.try_get(0)?)?,
                        valid_from: Timestamp(row.try_get(1)?),
                        valid_to: row.try_get::<_, Option<i64>>(2)?.map(Timestamp),
                        is_current: row.try_get(3)?,
                        transaction_time: Timestamp(row.try_get(4)?),
                        renamed_to: optional_handle(row.try_get(5)?, "renamed_to")?,
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
            let sealer = self.sealer();
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT handle, record::text, valid_from, COALESCE(identity, handle) \
                     FROM records \
                     WHERE site = $1 AND entity = $2 AND is_current ORDER BY handle",
                    &[&site.as_str(), &entity_name(entity)],
                )
                .await?;
            rows.iter()
                .map(|row| current_record(&sealer, row, 0, entity))
                .collect()
        })
    }

    fn consumer_page<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, PagedRecords> {
        Box::pin(async move {
            let sealer = self.sealer();
            let conn = self.pool.get().await?;
            let sql = page_statements(&*conn, page).await?;
            let ids: Vec<&[u8]> = page.ids.iter().map(|(_, id)| &id[..]).collect();
            let mut values = page_values(&sql, page, &ids);
            let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
            let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
            let counted = values.len();
            values.push(&limit);
            values.push(&offset);
            // The count and the page each walk an index: on two connections at once.
            let other = self.pool.get().await?;
            let (total, rows) = tokio::try_join!(
                other.query_one(&sql.count, &values[..counted]),
                conn.query(&sql.select, &values)
            )?;
            let total: i64 = total.try_get(0)?;
            let records = rows
                .iter()
                .map(|row| {
                    let site = stored_site(row.try_get(0)?)?;
                    Ok((site, current_record(&sealer, row, 1, page.entity)?))
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(PagedRecords {
                records,
                total: u64::try_from(total).unwrap_or_default(),
            })
        })
    }

    fn consumer_ids<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, Vec<[u8; 16]>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = page_statements(&*conn, page).await?;
            let ids: Vec<&[u8]> = page.ids.iter().map(|(_, id)| &id[..]).collect();
            let values = page_values(&sql, page, &ids);
            conn.query(&sql.ids, &values)
                .await?
                .iter()
                .map(|row| stored_consumer_id(row.try_get(0)?))
                .collect()
        })
    }

    fn roster_closed_since<'a>(
        &'a self,
        site: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            self.read_roster(
                &closed_since_sql(Dialect::Postgres),
                &[&site.as_str(), &at.0],
            )
            .await
        })
    }

    fn students_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        Box::pin(self.of_students(site, students, Entity::Student, students_of_sql))
    }

    fn enrollments_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        // Enrollments name their student by the handle of its key (`records.student`).
        Box::pin(self.of_students(site, students, Entity::Enrollment, enrollments_of_sql))
    }

    fn renamed_identities<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, HashMap<(Entity, RecordHandle), RecordHandle>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_renamed(&*conn, site.as_str()).await
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
                .map(|row| TransferRow::read(row)?.into_transfer())
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
                    Ok((
                        stored_site(&site)?,
                        TransferRow::read(row)?.into_transfer()?,
                    ))
                })
                .collect()
        })
    }

    fn site_transfers_since<'a>(
        &'a self,
        site: &'a SiteId,
        since: Timestamp,
    ) -> StoreFuture<'a, Vec<Transfer>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE site = $1 AND at >= $2 \
                 ORDER BY at, id"
            );
            let rows = conn.query(&sql, &[&site.as_str(), &since.0]).await?;
            rows.iter()
                .map(|row| TransferRow::read(row)?.into_transfer())
                .collect()
        })
    }
}
