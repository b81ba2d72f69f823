//! Roster records with their history, and the batches that change them: the
//! [`IncomingBatch`] the ingest hands to [`RecordStore::apply`], what applying it did, and the versions, counts and
//! transfers the operators' views and the consumer API read back. What a batch means is
//! decided in `planning`; the checks of the chain against the stored head are here.

use std::collections::HashMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{
    ChainHead, DeviceId, Enrollment, Entity, Group, Opened, Payload, Record, RecordHandle, Roster,
    School, Seq, SiteId, Student,
};

use super::columns::{entity_from_name, seq_from_db, seq_to_db, stored_device, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;
use crate::seal::Sealer;

/// One applied batch of a site, as the site's page lists its transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub device: DeviceId,
    pub seq: Seq,
    /// When central applied it.
    pub at: Timestamp,
    /// A full snapshot rather than a delta.
    pub snapshot: bool,
    /// What it did to the site's records.
    pub changes: Changes,
    /// The envelope's size as central received it: what the school's uplink carried, which
    /// the record counts alone do not tell (0 for batches applied before it was kept).
    pub bytes: u64,
}

/// One current version of a record with what the consumer API needs beside the content:
/// its handle, its identity (to name it without its key, the same across renames) and since
/// when it has been as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRecord {
    pub handle: RecordHandle,
    /// The handle of the record's first version: its own handle unless the source renamed
    /// it, then the handle it had before. Consumer ids derive from this, so they survive a
    /// rename.
    pub identity: RecordHandle,
    pub record: AnyRecord,
    /// `valid_from` of the current version: OneRoster's `dateLastModified`.
    pub modified: Timestamp,
}

/// One opened envelope, ready to apply: everything [`RecordStore::apply`] needs in one value.
///
/// It carries the chain position the envelope was verified against (`seq` and `prev`) so the
/// store can check, inside its transaction, that the head has not moved since; and it owns the
/// payload so a large snapshot is moved to the database worker, never copied.
#[derive(Debug, Clone)]
pub struct IncomingBatch {
    /// The device whose chain the batch continues; its head is the one checked and advanced.
    pub device: DeviceId,
    /// The site whose records change; must be the device's registered site.
    pub site: SiteId,
    /// The envelope's sequence number.
    pub seq: Seq,
    /// The digest the envelope names as its predecessor.
    pub prev: [u8; 32],
    /// The head to store once applied: `seq + 1` and this envelope's digest.
    pub next_head: ChainHead,
    /// The opened delta or snapshot.
    pub payload: Payload,
    /// Transaction time: becomes `valid_from`, `valid_to` and `transaction_time` of the
    /// versions this batch opens and closes.
    pub at: Timestamp,
    /// The envelope's size in bytes as received, kept with the transfer so operators see
    /// what each batch cost the school's uplink; the opened payload no longer tells.
    pub bytes: u64,
}

impl IncomingBatch {
    /// The batch for an envelope of `bytes` bytes that `open` accepted, applied at `at`.
    pub fn from_opened(opened: Opened, bytes: u64, at: Timestamp) -> IncomingBatch {
        let next_head = opened.next_head();
        IncomingBatch {
            device: opened.header.device,
            site: opened.header.site,
            seq: opened.header.seq,
            prev: opened.header.prev,
            next_head,
            payload: opened.payload,
            at,
            bytes,
        }
    }
}

/// What [`RecordStore::apply`] did with a batch. Both outcomes are acked to the agent: the
/// batch is stored either way, and the agent's outbox may let go of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied now, in the same transaction that stored the new head.
    Applied(Changes),
    /// Applied before (a retry, a duplicate request, a replay): nothing was changed. `head`
    /// is the stored head, whose `next_seq` the ack names.
    AlreadyApplied { head: ChainHead },
}

/// How many records a batch added, changed, removed and left alone, for the ingest's log and
/// the operators' view of a transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Records with no current version before.
    pub added: u64,
    /// Records whose content changed: old version closed, new one inserted.
    pub changed: u64,
    /// Records closed by a delete or by their absence from a snapshot.
    pub removed: u64,
    /// Records the source gave a new key: the new handle continues the old one's identity,
    /// and the old version is closed as renamed, counted neither as added nor as removed.
    #[serde(default)]
    pub renamed: u64,
    /// Records upserted (or in a snapshot) with the content already stored.
    pub unchanged: u64,
}

/// Current records of a site by kind, for the operators' view and the consumer API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Current schools (FINT `Skole`).
    pub schools: u64,
    /// Current students (FINT `Elev`).
    pub students: u64,
    /// Current basisgrupper.
    pub groups: u64,
    /// Current enrollments (FINT `Elevforhold`).
    pub enrollments: u64,
}

impl Counts {
    fn set(&mut self, entity: Entity, count: u64) {
        match entity {
            Entity::School => self.schools = count,
            Entity::Student => self.students = count,
            Entity::Group => self.groups = count,
            Entity::Enrollment => self.enrollments = count,
        }
    }
}

/// A record of any kind, as one version in a record's history holds it.
///
/// Tagged with its kind in JSON (`{"entity": "student", "record": {…}}`), so a consumer
/// reading a history needs no other context to decode it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", content = "record", rename_all = "snake_case")]
pub enum AnyRecord {
    School(School),
    Student(Student),
    Group(Group),
    Enrollment(Enrollment),
}

/// One version of a record: what the county's `elev` table calls a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The record's content during this version.
    pub record: AnyRecord,
    /// From when (inclusive) this content was the school's record.
    pub valid_from: Timestamp,
    /// Until when (exclusive) it was; `None` while it is current.
    pub valid_to: Option<Timestamp>,
    pub is_current: bool,
    /// When central stored this version.
    pub transaction_time: Timestamp,
    /// Set on the version a rename closed: the handle the record continues under.
    pub renamed_to: Option<RecordHandle>,
}

/// A transfer row as both databases read it, before its ids and counts are checked.
pub(crate) struct TransferRow {
    pub device: String,
    pub seq: i64,
    pub at: i64,
    pub snapshot: bool,
    pub counts: [i64; 4],
    pub bytes: i64,
    pub renamed: i64,
}

/// The columns a [`TransferRow`] is read from, in its field order.
pub(crate) const TRANSFER_COLUMNS: &str =
    "device, seq, at, snapshot, added, changed, removed, unchanged, bytes, renamed";

impl TransferRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<TransferRow, R::Error> {
        Ok(TransferRow {
            device: row.column(0)?,
            seq: row.column(1)?,
            at: row.column(2)?,
            snapshot: row.column(3)?,
            counts: [
                row.column(4)?,
                row.column(5)?,
                row.column(6)?,
                row.column(7)?,
            ],
            bytes: row.column(8)?,
            renamed: row.column(9)?,
        })
    }

    pub(super) fn into_transfer(self) -> Result<Transfer, StoreError> {
        let count = |n: i64| {
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
        };
        let [added, changed, removed, unchanged] = self.counts;
        Ok(Transfer {
            device: stored_device(&self.device)?,
            seq: seq_from_db(self.seq)?,
            at: Timestamp(self.at),
            snapshot: self.snapshot,
            changes: Changes {
                added: count(added)?,
                changed: count(changed)?,
                removed: count(removed)?,
                unchanged: count(unchanged)?,
                renamed: count(self.renamed)?,
            },
            bytes: u64::try_from(self.bytes)
                .map_err(|_| StoreError::Corrupt(format!("negative size {}", self.bytes)))?,
        })
    }
}

/// The five counts of a batch's changes as the databases store them: added, changed,
/// removed, unchanged, renamed.
pub(crate) fn changes_to_db(changes: &Changes) -> [i64; 5] {
    let db = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    [
        db(changes.added),
        db(changes.changed),
        db(changes.removed),
        db(changes.unchanged),
        db(changes.renamed),
    ]
}

/// A batch's size as the databases store it (a signed 64-bit integer).
pub(crate) fn bytes_to_db(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Decodes a stored school record, for [`RecordStore::current_schools`].
/// Schools hold no personal data and are never sealed.
pub(crate) fn decode_school(json: &str) -> Result<School, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Corrupt(format!("stored school does not decode: {error}")))
}

/// The device row as `apply` reads it inside its transaction.
pub(crate) struct DeviceState {
    pub site: String,
    pub revoked: bool,
    pub head: ChainHead,
}

/// Whether the stored head lets `batch` be applied now.
pub(crate) enum ChainCheck {
    Apply,
    AlreadyApplied(ChainHead),
}

/// The checks `apply` makes against the device row, before and again inside its transaction.
pub(crate) fn check_batch(
    batch: &IncomingBatch,
    device: Option<&DeviceState>,
) -> Result<ChainCheck, StoreError> {
    let Some(device) = device else {
        return Err(StoreError::UnknownDevice(batch.device.clone()));
    };
    if device.site != batch.site.as_str() {
        let registered = SiteId::new(device.site.as_str())
            .map_err(|_| StoreError::Corrupt("stored site id is invalid".to_owned()))?;
        return Err(StoreError::WrongSite {
            device: batch.device.clone(),
            registered,
            claimed: batch.site.clone(),
        });
    }
    if device.revoked {
        return Err(StoreError::DeviceRevoked(batch.device.clone()));
    }
    if batch.seq.0 == 0 || batch.next_head.next_seq != batch.seq.next() {
        return Err(StoreError::InvalidHead {
            seq: batch.seq,
            next: batch.next_head.next_seq,
        });
    }
    seq_to_db(batch.next_head.next_seq)?;
    match device.head.next_seq.cmp(&batch.seq) {
        std::cmp::Ordering::Greater => Ok(ChainCheck::AlreadyApplied(device.head)),
        std::cmp::Ordering::Less => Err(StoreError::Gap {
            expected: device.head.next_seq,
            got: batch.seq,
        }),
        std::cmp::Ordering::Equal if device.head.prev != batch.prev => {
            Err(StoreError::BrokenChain { seq: batch.seq })
        }
        std::cmp::Ordering::Equal => Ok(ChainCheck::Apply),
    }
}

/// Adds a stored record to a roster being read.
pub(crate) fn push_record(
    sealer: &Sealer,
    roster: &mut Roster,
    entity: Entity,
    json: &str,
) -> Result<(), StoreError> {
    match decode(sealer, entity, json)? {
        AnyRecord::School(record) => roster.schools.push(record),
        AnyRecord::Student(record) => roster.students.push(record),
        AnyRecord::Group(record) => roster.groups.push(record),
        AnyRecord::Enrollment(record) => roster.enrollments.push(record),
    }
    Ok(())
}

/// Decodes a stored record's JSON as the kind its row says it is, opening its sealed fields
/// (a row written before sealing reads as it is).
pub(crate) fn decode(sealer: &Sealer, entity: Entity, json: &str) -> Result<AnyRecord, StoreError> {
    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
        serde_json::from_str(json)
            .map_err(|error| StoreError::Corrupt(format!("stored record does not decode: {error}")))
    }
    fn parse_value<T: serde::de::DeserializeOwned>(
        value: serde_json::Value,
    ) -> Result<T, StoreError> {
        serde_json::from_value(value)
            .map_err(|error| StoreError::Corrupt(format!("stored record does not decode: {error}")))
    }
    Ok(match entity {
        Entity::School => AnyRecord::School(parse(json)?),
        Entity::Group => AnyRecord::Group(parse(json)?),
        Entity::Student => AnyRecord::Student(parse_value(sealer.open_record(entity, json)?)?),
        Entity::Enrollment => {
            AnyRecord::Enrollment(parse_value(sealer.open_record(entity, json)?)?)
        }
    })
}

/// Puts a roster read from the database in key order, which neither database promises
/// without an index on the key.
pub(crate) fn sort_roster(roster: &mut Roster) {
    roster.schools.sort_by(|a, b| a.key().cmp(b.key()));
    roster.students.sort_by(|a, b| a.key().cmp(b.key()));
    roster.groups.sort_by(|a, b| a.key().cmp(b.key()));
    roster.enrollments.sort_by(|a, b| a.key().cmp(b.key()));
}

pub(crate) fn set_count(counts: &mut Counts, entity: &str, count: i64) -> Result<(), StoreError> {
    let count =
        u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("negative count {count}")))?;
    counts.set(entity_from_name(entity)?, count);
    Ok(())
}

/// The roster records with their history, and the batches that changed them: the ingest
/// writes here, the operators' views and the consumer API read.
pub trait RecordStore: Send + Sync {
    /// Applies one batch exactly once, in one transaction with the device's new chain head.
    ///
    /// Inside the transaction the stored head decides: a head past `batch.seq` means the
    /// batch was applied before ([`ApplyOutcome::AlreadyApplied`], nothing changed); a head before
    /// it is a [`StoreError::Gap`]; a head at it with another `prev` is a
    /// [`StoreError::BrokenChain`]. The device must be registered for `batch.site` and not
    /// revoked. The site secret is read from the store, not passed in, so a caller cannot
    /// check handles against another site's secret.
    ///
    /// A delta's upserts version a record only if its content changed; its deletes close the
    /// current version. A snapshot is the whole roster: records missing from it are closed,
    /// changed ones versioned, unchanged ones left alone. Every upsert's handle must be the
    /// one central computes from the record's key ([`StoreError::HandleMismatch`]). On any
    /// error nothing is changed.
    fn apply(&self, batch: IncomingBatch) -> StoreFuture<'_, ApplyOutcome>;

    /// The site's roster as it stands: every current version, sorted by key within each
    /// kind so the same roster always reads the same.
    fn current_roster<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Roster>;

    /// The site's roster as it stood at `at`: the versions with
    /// `valid_from <= at < valid_to` (or still open), sorted like [`RecordStore::current_roster`].
    fn roster_as_of<'a>(&'a self, site: &'a SiteId, at: Timestamp) -> StoreFuture<'a, Roster>;

    /// How many current records of each kind the site has, without loading them.
    fn counts<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Counts>;

    /// Every version of one record, oldest first: what a consumer asking "what changed for
    /// this student" reads.
    fn history<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
        handle: &'a RecordHandle,
    ) -> StoreFuture<'a, Vec<Version>>;

    /// The current version of every record of one kind at a site, with its handle and the
    /// time it took its present content, sorted by handle: what the consumer API lists.
    fn current_records<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
    ) -> StoreFuture<'a, Vec<CurrentRecord>>;

    /// The site's current records of every kind whose identity is not their own handle
    /// (renamed by their source), as `(entity, handle) -> identity`: what the consumer API
    /// resolves a reference by key through, so a renamed student's enrollments point at the
    /// id the student keeps.
    fn renamed_identities<'a>(
        &'a self,
        site: &'a SiteId,
    ) -> StoreFuture<'a, HashMap<(Entity, RecordHandle), RecordHandle>>;

    /// The current school records of every site, sorted by site and skolenummer. Their
    /// fylkesnummer and kommunenummer decide which consumers and exports reach a site.
    fn current_schools(&self) -> StoreFuture<'_, Vec<(SiteId, School)>>;

    /// One page of the current records a consumer may read, in consumer id order, with the
    /// size of the whole list: what the consumer API serves a list from when the request's
    /// filter and sort can be said in SQL. Costs the page and a count over an index, so a
    /// county-wide sync pays per page what the page holds.
    fn consumer_page<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, PagedRecords>;

    /// The current enrollments of the students with `students` as keys at one site, sorted
    /// by handle: what places a page of students at their schools.
    fn enrollments_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>>;

    /// The versions of the site's records that stood at `at` and were closed since
    /// (`valid_from <= at < valid_to`), sorted like [`RecordStore::current_roster`]: where a
    /// change feed finds what its client may have to remove, without reading the records
    /// nothing has touched since.
    fn roster_closed_since<'a>(
        &'a self,
        site: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Roster>;

    /// The current students with `students` as keys at one site, sorted by handle: the
    /// pupils a change feed's closed enrollments named, as they stand now.
    fn students_of<'a>(
        &'a self,
        site: &'a SiteId,
        students: &'a [CompactString],
    ) -> StoreFuture<'a, Vec<CurrentRecord>>;

    /// Every consumer id of the list [`RecordStore::consumer_page`] cuts `page` from, in
    /// its order (the page's offset and limit aside): what a change feed merges the ids of
    /// its deletions into, so it reads one page of records however long the list.
    fn consumer_ids<'a>(&'a self, page: &'a ConsumerPage) -> StoreFuture<'a, Vec<[u8; 16]>>;

    /// The site's newest `limit` applied batches, newest first. [`RecordStore::apply`] records
    /// each in the transaction that applies it.
    fn transfers<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, Vec<Transfer>>;

    /// Every site's batches applied at or after `since`, oldest first: what a transfer
    /// window's report (delivered in time, late) is derived from.
    fn transfers_since(&self, since: Timestamp) -> StoreFuture<'_, Vec<(SiteId, Transfer)>>;

    /// One site's batches applied at or after `since`, oldest first: what the site page's
    /// chart of the last nights is drawn from, however many batches a night had.
    fn site_transfers_since<'a>(
        &'a self,
        site: &'a SiteId,
        since: Timestamp,
    ) -> StoreFuture<'a, Vec<Transfer>>;
}

/// The id the consumer API names a record by, as bytes: the first 16 bytes of SHA-256 over a
/// label and the record's identity (its first version's handle). Its hex is the record's
/// OneRoster `sourcedId`: stable across renames, unique across sites, and unlinkable to the
/// handles devices keep. The store keeps it beside every version (`consumer_id`), so a
/// list in `sourcedId` order is a range of an index rather than a sort of every record.
pub fn consumer_id(identity: &RecordHandle) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"skolebro-oneroster-v1");
    hasher.update(identity.as_bytes());
    let mut id = [0; 16];
    id.copy_from_slice(&hasher.finalize()[..16]);
    id
}

/// The consumer id a `sourcedId` names, if it is one as the store keeps them: 32 lowercase
/// hex digits, whose text order is the bytes' order. Any other text names no stored record
/// (the in-memory path compares it as text).
pub fn consumer_id_from_hex(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0; 16];
    hex::decode_to_slice(text, &mut id).ok()?;
    Some(id)
}

/// A comparison a consumer's filter makes, pushed into the store's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Compare {
    /// Whether the comparison bounds a value from below (`>`, `>=`): a change feed's
    /// `dateLastModified` bound.
    pub(crate) fn is_lower_bound(self) -> bool {
        matches!(self, Compare::Greater | Compare::GreaterOrEqual)
    }

    /// The operator in SQL, in both databases.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Compare::Equal => "=",
            Compare::NotEqual => "<>",
            Compare::Greater => ">",
            Compare::GreaterOrEqual => ">=",
            Compare::Less => "<",
            Compare::LessOrEqual => "<=",
        }
    }
}

/// One page of the current records of one kind that a consumer may read, in consumer id
/// order: what [`RecordStore::consumer_page`] reads so that a page of a county-wide list
/// costs the page (and an index count), not every record of the county.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPage {
    /// The kind listed.
    pub entity: Entity,
    /// The schools of the consumer's scope, as `(site, skolenummer)`. A school lists
    /// itself; a basisgruppe, an enrollment with a basisgruppe, and a student with an
    /// enrollment are listed if their school is one of these.
    pub schools: Vec<(SiteId, CompactString)>,
    /// Bounds on the time each record took its present content, all of which must hold.
    pub modified: Vec<(Compare, Timestamp)>,
    /// Bounds on the consumer id ([`consumer_id`]), all of which must hold.
    pub ids: Vec<(Compare, [u8; 16])>,
    /// Only the records with these consumer ids, when set: how a change feed learns which
    /// of the objects its client could read then are still listed.
    pub within: Option<Vec<[u8; 16]>>,
    /// Highest consumer id first.
    pub descending: bool,
    /// Records skipped before the page.
    pub offset: u64,
    /// Most records in the page.
    pub limit: u64,
}

/// What [`RecordStore::consumer_page`] answers: the page, each record with its site, and
/// how many records the whole list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedRecords {
    pub records: Vec<(SiteId, CurrentRecord)>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use skolebro_protocol::{Delta, DeviceId, Payload, Seq, SiteId};

    use super::*;

    fn site() -> SiteId {
        SiteId::new("skole-46505").expect("a valid site id")
    }

    fn device() -> DeviceId {
        DeviceId::new("pi-46505").expect("a valid device id")
    }

    /// The device row of a registered, unrevoked device whose stored head is `head`.
    fn registered(head: ChainHead) -> DeviceState {
        DeviceState {
            site: site().as_str().to_owned(),
            revoked: false,
            head,
        }
    }

    /// The batch that continues the chain at `head`, as the ingest builds it.
    fn batch_at(head: ChainHead) -> IncomingBatch {
        IncomingBatch {
            device: device(),
            site: site(),
            seq: head.next_seq,
            prev: head.prev,
            next_head: ChainHead::after(head.next_seq, [0xd1; 32]),
            payload: Payload::Delta(Delta::default()),
            at: Timestamp(1000),
            bytes: 1000,
        }
    }

    fn head_after_one() -> ChainHead {
        ChainHead::after(Seq(1), [0x11; 32])
    }

    #[test]
    fn a_batch_continuing_the_stored_head_is_applied() {
        let head = head_after_one();
        let check = check_batch(&batch_at(head), Some(&registered(head)));
        assert!(matches!(check, Ok(ChainCheck::Apply)));
    }

    #[test]
    fn a_batch_behind_the_stored_head_is_already_applied_and_names_the_head() {
        let stored = ChainHead::after(Seq(3), [0x33; 32]);
        let check = check_batch(&batch_at(head_after_one()), Some(&registered(stored)));
        assert!(matches!(check, Ok(ChainCheck::AlreadyApplied(head)) if head == stored));
    }

    #[test]
    fn a_batch_past_the_stored_head_is_a_gap() {
        let check = check_batch(
            &batch_at(head_after_one()),
            Some(&registered(ChainHead::genesis())),
        );
        assert!(matches!(
            check,
            Err(StoreError::Gap {
                expected: Seq(1),
                got: Seq(2)
            })
        ));
    }

    #[test]
    fn a_batch_at_the_head_naming_another_predecessor_breaks_the_chain() {
        let mut batch = batch_at(head_after_one());
        batch.prev = [0x66; 32];
        let check = check_batch(&batch, Some(&registered(head_after_one())));
        assert!(matches!(
            check,
            Err(StoreError::BrokenChain { seq: Seq(2) })
        ));
    }

    #[test]
    fn a_batch_numbered_zero_is_an_invalid_head_even_when_its_next_head_follows() {
        let mut batch = batch_at(ChainHead::genesis());
        batch.seq = Seq(0);
        batch.next_head = ChainHead::after(Seq(0), [0xd1; 32]);
        let check = check_batch(&batch, Some(&registered(ChainHead::genesis())));
        assert!(matches!(
            check,
            Err(StoreError::InvalidHead {
                seq: Seq(0),
                next: Seq(1)
            })
        ));
    }

    #[test]
    fn a_batch_whose_next_head_does_not_follow_its_seq_is_an_invalid_head() {
        let mut batch = batch_at(head_after_one());
        batch.next_head.next_seq = Seq(5);
        let check = check_batch(&batch, Some(&registered(head_after_one())));
        assert!(matches!(
            check,
            Err(StoreError::InvalidHead {
                seq: Seq(2),
                next: Seq(5)
            })
        ));
    }

    #[test]
    fn a_batch_from_an_unknown_a_revoked_or_another_sites_device_is_refused() {
        let head = head_after_one();
        let batch = batch_at(head);
        assert!(matches!(
            check_batch(&batch, None),
            Err(StoreError::UnknownDevice(_))
        ));
        let mut revoked = registered(head);
        revoked.revoked = true;
        assert!(matches!(
            check_batch(&batch, Some(&revoked)),
            Err(StoreError::DeviceRevoked(_))
        ));
        let mut elsewhere = registered(head);
        elsewhere.site = "skole-46506".to_owned();
        assert!(matches!(
            check_batch(&batch, Some(&elsewhere)),
            Err(StoreError::WrongSite { .. })
        ));
    }

    /// The transfer row the databases would hold for `changes` and `bytes`.
    fn stored_transfer(changes: &Changes, bytes: u64) -> TransferRow {
        let [added, changed, removed, unchanged, renamed] = changes_to_db(changes);
        TransferRow {
            device: device().as_str().to_owned(),
            seq: 2,
            at: 1000,
            snapshot: true,
            counts: [added, changed, removed, unchanged],
            bytes: bytes_to_db(bytes),
            renamed,
        }
    }

    #[test]
    fn a_transfers_counts_and_size_read_back_as_they_were_stored() {
        let changes = Changes {
            added: 5,
            changed: 4,
            removed: 3,
            renamed: 2,
            unchanged: 7,
        };
        let transfer = stored_transfer(&changes, 12_700)
            .into_transfer()
            .expect("the row reads");
        assert_eq!(transfer.changes, changes);
        assert_eq!(transfer.bytes, 12_700);
        assert_eq!(transfer.seq, Seq(2));
        assert!(transfer.snapshot);
    }

    #[test]
    fn counts_and_sizes_past_the_databases_integers_are_stored_as_the_largest() {
        let huge = Changes {
            added: u64::MAX,
            ..Changes::default()
        };
        assert_eq!(changes_to_db(&huge), [i64::MAX, 0, 0, 0, 0]);
        assert_eq!(bytes_to_db(u64::MAX), i64::MAX);
    }

    #[test]
    fn a_negative_stored_count_or_size_reads_as_corrupt() {
        let mut row = stored_transfer(&Changes::default(), 10);
        row.counts[2] = -1;
        assert!(matches!(row.into_transfer(), Err(StoreError::Corrupt(_))));
        let mut row = stored_transfer(&Changes::default(), 10);
        row.bytes = -1;
        assert!(matches!(row.into_transfer(), Err(StoreError::Corrupt(_))));
    }
}
