//! [`RecordStore`] on SQLite: applying a batch's plan with its new chain head, and reading
//! rosters, versions, counts and transfers. The types and the trait are in
//! `crate::store::records`; the PostgreSQL version of each method is in `postgres/records.rs`.

use std::collections::HashMap;

use compact_str::CompactString;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use skolebro_protocol::{Digest, Entity, RecordHandle, Roster, School, SiteId, SiteSecret};

use super::devices::{read_device, read_secret};
use super::paging::refresh_flags;
use super::subjects::{mark_returned, read_tombstones};
use super::{blocking, SqliteStore};
use crate::seal::Sealer;
use crate::store::columns::{
    bytes32, entity_from_name, entity_name, optional_handle, seq_to_db, stored_consumer_id,
    stored_site,
};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::paging::{
    closed_since_sql, enrollments_of_sql, hex_list, page_sql, refresh_after, scope_sites,
    site_schools_sql, students_of_sql, Dialect, PageSql,
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

impl SqliteStore {
    async fn apply_batch(&self, batch: IncomingBatch) -> Result<ApplyOutcome, StoreError> {
        // A cheap look first, without the write lock: replays and gaps, the common failures
        // of a retrying agent, are answered without encoding the payload.
        let device = batch.device.clone();
        let site = batch.site.clone();
        let (state, secret) = self
            .call(move |conn| Ok((read_device(conn, &device)?, read_secret(conn, &site)?)))
            .await?;
        if let ChainCheck::AlreadyApplied(head) = check_batch(&batch, state.as_ref())? {
            return Ok(ApplyOutcome::AlreadyApplied { head });
        }
        let secret = secret.ok_or_else(|| StoreError::NoSiteSecret(batch.site.clone()))?;

        // Check handles and encode (and seal) records outside the connection's lock.
        let sealer = self.sealer();
        let (batch, secret, sealer, prepared) = blocking(move || {
            let prepared = prepare(&batch.payload, &secret, &sealer)?;
            Ok((batch, secret, sealer, prepared))
        })
        .await?;

        self.call(move |conn| apply_prepared(conn, &batch, &secret, &sealer, prepared))
            .await
    }
}

/// The write half of `apply`: one `BEGIN IMMEDIATE` transaction that re-checks the chain,
/// writes the plan and advances the head.
fn apply_prepared(
    conn: &mut Connection,
    batch: &IncomingBatch,
    secret: &SiteSecret,
    sealer: &Sealer,
    prepared: Prepared,
) -> Result<ApplyOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state = read_device(&tx, &batch.device)?;
    if let ChainCheck::AlreadyApplied(head) = check_batch(batch, state.as_ref())? {
        return Ok(ApplyOutcome::AlreadyApplied { head });
    }
    // The secret may have been set anew between the first look and the lock (only possible
    // while the site has no records); handles must be checked against the one in force.
    let prepared = match read_secret(&tx, &batch.site)? {
        Some(stored) if stored == *secret => prepared,
        Some(stored) => prepare(&batch.payload, &stored, sealer)?,
        None => return Err(StoreError::NoSiteSecret(batch.site.clone())),
    };
    super::sealing::check_records_key(&tx, sealer)?;

    let site = batch.site.as_str();
    let tombstones = read_tombstones(&tx, Some(site))?;
    let (prepared, held) = hold_erased(prepared, &tombstones, sealer)?;
    let current = read_current(&tx, site, &prepared)?;
    let renamed = read_renamed(&tx, site)?;
    let plan = plan(&prepared, current, &renamed)?;
    let at = batch.at.0;
    let snapshot = matches!(prepared, Prepared::Snapshot { .. });
    let enrolled = snapshot_enrolled(&prepared).unwrap_or_default();
    let mut closed = Vec::new();
    {
        let mut close = tx.prepare_cached(
            "UPDATE records SET valid_to = ?1, is_current = 0 WHERE id = ?2 AND is_current \
             RETURNING entity, student",
        )?;
        for id in &plan.close {
            let row = close
                .query_row(params![at, id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
                })
                .optional()?;
            if let (Some((entity, student)), false) = (row, snapshot) {
                let student = optional_handle(student.as_deref(), "student")?;
                closed.push((entity_from_name(&entity)?, student));
            }
        }
        let mut renamed = tx.prepare_cached("UPDATE records SET renamed_to = ?2 WHERE id = ?1")?;
        for (id, to) in &plan.renamed_to {
            renamed.execute(params![id, &to.as_bytes()[..]])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO records \
             (site, entity, handle, digest, record, valid_from, valid_to, is_current, \
              transaction_time, identity, consumer_id, key_id, school, student, enrolled, \
              grouped) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 1, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for Insert { row, identity } in &plan.insert {
            let consumer = consumer_id(identity.as_ref().unwrap_or(&row.handle));
            insert.execute(params![
                site,
                entity_name(row.entity),
                &row.handle.as_bytes()[..],
                &row.digest.as_bytes()[..],
                row.json,
                at,
                identity.as_ref().map(|identity| &identity.as_bytes()[..]),
                &consumer[..],
                row.key_id,
                row.school,
                row.student.as_ref().map(|student| &student.as_bytes()[..]),
                row.enrolled_at_insert(&enrolled),
                row.grouped,
            ])?;
        }
    }
    refresh_flags(&tx, site, &refresh_after(snapshot, &plan.insert, &closed))?;
    tx.execute(
        "UPDATE devices SET next_seq = ?2, prev = ?3 WHERE device = ?1",
        params![
            batch.device.as_str(),
            seq_to_db(batch.next_head.next_seq)?,
            &batch.next_head.prev[..],
        ],
    )?;
    let changes = plan.changes;
    let [added, changed, removed, unchanged, renamed] = changes_to_db(&changes);
    tx.execute(
        "INSERT INTO transfers \
         (site, device, seq, at, snapshot, added, changed, removed, unchanged, bytes, renamed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
            renamed,
        ],
    )?;
    mark_returned(&tx, site, &held, batch.at)?;
    tx.commit()?;
    Ok(ApplyOutcome::Applied(changes))
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
                "SELECT id, entity, handle, digest, identity FROM records \
                 WHERE site = ?1 AND is_current",
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
                        identity: optional_handle(
                            row.get::<_, Option<Vec<u8>>>(4)?.as_deref(),
                            "identity",
                        )?,
                    },
                );
            }
        }
        Some(keys) => {
            let mut statement = conn.prepare_cached(
                "SELECT id, digest, identity FROM records \
                 WHERE site = ?1 AND entity = ?2 AND handle = ?3 AND is_current",
            )?;
            for (entity, handle) in keys {
                let found = statement
                    .query_row(
                        params![site, entity_name(entity), &handle.as_bytes()[..]],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, Vec<u8>>(1)?,
                                row.get::<_, Option<Vec<u8>>>(2)?,
                            ))
                        },
                    )
                    .optional()?;
                if let Some((id, digest, identity)) = found {
                    let digest = Digest::from_bytes(bytes32(&digest, "digest")?);
                    let identity = optional_handle(identity.as_deref(), "identity")?;
                    current.insert(
                        (entity, handle),
                        Current {
                            id,
                            digest,
                            identity,
                        },
                    );
                }
            }
        }
    }
    Ok(current)
}

/// The site's current records whose identity is not their own handle.
fn read_renamed(conn: &Connection, site: &str) -> Result<RenamedIdentities, StoreError> {
    let mut identities = HashMap::new();
    for entity in Entity::ALL {
        // Per kind, so the query names the partial index's columns.
        let mut statement = conn.prepare_cached(
            "SELECT handle, identity FROM records \
             WHERE site = ?1 AND entity = ?2 AND is_current AND identity IS NOT NULL",
        )?;
        let mut rows = statement.query(params![site, entity_name(entity)])?;
        while let Some(row) = rows.next()? {
            let handle = RecordHandle::from_bytes(bytes32(&row.get::<_, Vec<u8>>(0)?, "handle")?);
            let identity =
                RecordHandle::from_bytes(bytes32(&row.get::<_, Vec<u8>>(1)?, "identity")?);
            identities.insert((entity, handle), identity);
        }
    }
    Ok(identities)
}

/// Reads the versions a roster query selects; `sql` yields `entity, record`.
fn read_roster(
    sealer: &Sealer,
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Roster, StoreError> {
    let mut roster = Roster::default();
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        let entity = entity_from_name(&row.get::<_, String>(0)?)?;
        push_record(sealer, &mut roster, entity, &row.get::<_, String>(1)?)?;
    }
    sort_roster(&mut roster);
    Ok(roster)
}

impl SqliteStore {
    /// The current records of `entity` at one site that belong to the students with
    /// `students` as keys, read by `sql` (parameters: the site, the keys' handles): the
    /// students themselves, or their enrollments.
    fn of_students<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
        entity: Entity,
        sql: fn(Dialect) -> String,
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        let site = site.clone();
        let students = students.to_vec();
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let secret =
                read_secret(conn, &site)?.ok_or_else(|| StoreError::NoSiteSecret(site.clone()))?;
            let handles: Vec<RecordHandle> = students
                .iter()
                .map(|key| secret.handle(Entity::Student, key))
                .collect();
            let mut statement = conn.prepare_cached(&sql(Dialect::Sqlite))?;
            let mut rows = statement.query(params![site.as_str(), hex_list(&handles)])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(current_record(&sealer, row, 0, entity)?);
            }
            Ok(records)
        }))
    }
}

/// The statements of a consumer page ([`page_sql`]) and the values of their parameters
/// before the page's limit and offset.
fn page_statements(
    conn: &Connection,
    page: &ConsumerPage,
) -> Result<(PageSql, Vec<Value>), StoreError> {
    let list = |items: &[String]| serde_json::Value::from(items.to_vec()).to_string();
    let site_schools = conn
        .prepare_cached(&site_schools_sql(Dialect::Sqlite))?
        .query_map([list(&scope_sites(page))], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<Vec<(String, Option<String>)>, _>>()?;
    let sql = page_sql(page, &site_schools, Dialect::Sqlite);
    let mut values: Vec<Value> = sql
        .lists
        .iter()
        .map(|items| Value::Text(list(items)))
        .collect();
    values.extend(page.modified.iter().map(|(_, at)| Value::Integer(at.0)));
    values.extend(page.ids.iter().map(|(_, id)| Value::Blob(id.to_vec())));
    Ok((sql, values))
}

/// A current record from the columns handle, record, `valid_from` and identity, starting
/// at column `from`.
fn current_record(
    sealer: &Sealer,
    row: &rusqlite::Row<'_>,
    from: usize,
    entity: Entity,
) -> Result<CurrentRecord, StoreError> {
    Ok(CurrentRecord {
        handle: RecordHandle::from_bytes(bytes32(&row.get::<_, Vec<u8>>(from)?, "handle")?),
        record: decode(sealer, entity, &row.get::<_, String>(from + 1)?)?,
        modified: Timestamp(row.get(from + 2)?),
        identity: RecordHandle::from_bytes(bytes32(&row.get::<_, Vec<u8>>(from + 3)?, "identity")?),
    })
}

impl RecordStore for SqliteStore {
    fn apply(&self, batch: IncomingBatch) -> StoreFuture<'_, ApplyOutcome> {
        Box::pin(self.apply_batch(batch))
    }

    fn current_roster<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Roster> {
        let site = site.clone();
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            read_roster(
                &sealer,
                conn,
                "SELECT entity, record FROM records WHERE site = ?1 AND is_current",
                [site.as_str()],
            )
        }))
    }

    fn roster_as_of<'a>(&'a self, site: &'a SiteId, at: Timestamp) -> StoreFuture<'a, Roster> {
        let site = site.clone();
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            read_roster(
                &sealer,
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
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT record, valid_from, valid_to, is_current, transaction_time, renamed_to \
                 FROM ( \
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
                    record: decode(&sealer, entity, &row.get::<_, String>(0)?)?,
                    valid_from: Timestamp(row.get(1)?),
                    valid_to: row.get::<_, Option<i64>>(2)?.map(Timestamp),
                    is_current: row.get(3)?,
                    transaction_time: Timestamp(row.get(4)?),
                    renamed_to: optional_handle(
                        row.get::<_, Option<Vec<u8>>>(5)?.as_deref(),
                        "renamed_to",
                    )?,
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
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT handle, record, valid_from, COALESCE(identity, handle) FROM records \
                 WHERE site = ?1 AND entity = ?2 AND is_current ORDER BY handle",
            )?;
            let mut rows = statement.query(params![site.as_str(), entity_name(entity)])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(current_record(&sealer, row, 0, entity)?);
            }
            Ok(records)
        }))
    }

    fn renamed_identities<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, HashMap<(Entity, RecordHandle), RecordHandle>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| read_renamed(conn, site.as_str())))
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

    fn transfers<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, Vec<Transfer>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE site = ?1 \
                 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows =
                statement.query_map(params![site.as_str(), limit], |row| TransferRow::read(row))?;
            let mut transfers = Vec::new();
            for row in rows {
                transfers.push(row?.into_transfer()?);
            }
            Ok(transfers)
        }))
    }

    fn consumer_page<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, PagedRecords> {
        let page = page.clone();
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            let (sql, mut values) = page_statements(conn, &page)?;
            let total: i64 = conn
                .prepare_cached(&sql.count)?
                .query_row(params_from_iter(values.iter()), |row| row.get(0))?;
            values.push(Value::Integer(
                i64::try_from(page.limit).unwrap_or(i64::MAX),
            ));
            values.push(Value::Integer(
                i64::try_from(page.offset).unwrap_or(i64::MAX),
            ));
            let mut statement = conn.prepare_cached(&sql.select)?;
            let mut rows = statement.query(params_from_iter(values.iter()))?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                let site = stored_site(&row.get::<_, String>(0)?)?;
                records.push((site, current_record(&sealer, row, 1, page.entity)?));
            }
            Ok(PagedRecords {
                records,
                total: u64::try_from(total).unwrap_or_default(),
            })
        }))
    }

    fn enrollments_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        // Enrollments name their student by the handle of its key (`records.student`).
        self.of_students(site, students, Entity::Enrollment, enrollments_of_sql)
    }

    fn roster_closed_since<'a>(
        &'a self,
        site: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Roster> {
        let site = site.clone();
        let sealer = self.sealer();
        Box::pin(self.call(move |conn| {
            read_roster(
                &sealer,
                conn,
                &closed_since_sql(Dialect::Sqlite),
                params![site.as_str(), at.0],
            )
        }))
    }

    fn students_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>> {
        self.of_students(site, students, Entity::Student, students_of_sql)
    }

    fn consumer_ids<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, Vec<[u8; 16]>> {
        let page = page.clone();
        Box::pin(self.call(move |conn| {
            let (sql, values) = page_statements(conn, &page)?;
            let mut statement = conn.prepare_cached(&sql.ids)?;
            let mut rows = statement.query(params_from_iter(values.iter()))?;
            let mut ids = Vec::new();
            while let Some(row) = rows.next()? {
                ids.push(stored_consumer_id(&row.get::<_, Vec<u8>>(0)?)?);
            }
            Ok(ids)
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
                let transfer = TransferRow::read(row)?.into_transfer()?;
                transfers.push((stored_site(&site)?, transfer));
            }
            Ok(transfers)
        }))
    }

    fn site_transfers_since<'a>(
        &'a self,
        site: &'a SiteId,
        since: Timestamp,
    ) -> StoreFuture<'a, Vec<Transfer>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE site = ?1 AND at >= ?2 \
                 ORDER BY at, id"
            ))?;
            let rows = statement.query_map(params![site.as_str(), since.0], |row| {
                TransferRow::read(row)
            })?;
            let mut transfers = Vec::new();
            for row in rows {
                transfers.push(row?.into_transfer()?);
            }
            Ok(transfers)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite;

    /// The secret is read again under the write lock: a batch whose handles were checked
    /// against a secret set anew in between is checked once more, against the one in force,
    /// and refused rather than stored under handles no longer the site's.
    #[tokio::test]
    async fn a_batch_prepared_under_a_replaced_secret_is_checked_again_and_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("central.db"))
            .await
            .expect("the store opens");
        let (batch, old) = suite::a_secret_replaced_before_the_write(&store).await;
        let sealer = store.sealer();
        let prepared = prepare(&batch.payload, &old, &sealer).expect("the old secret's handles");
        let written = batch.clone();

        let result = store
            .call(move |conn| apply_prepared(conn, &batch, &old, &sealer, prepared))
            .await;
        suite::refused_under_the_secret_in_force(&store, &written, result).await;
    }
}
