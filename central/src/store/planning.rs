//! What a batch means, decided once for both databases: [`prepare`] checks and encodes a
//! payload before any database is touched, [`plan`] turns it and the current versions into
//! the versions to close and insert. The backends only read current versions and write the
//! plan, so they cannot disagree on semantics.
//!
//! A record keeps one identity across renames: a version stores `identity` only when it
//! differs from its own handle (the handle of the record's first version, carried from the
//! renamed record), and every new version of a record carries its current version's identity.

use std::collections::{HashMap, HashSet};

use skolebro_protocol::{Digest, Entity, EntityDelta, Payload, Record, RecordHandle, SiteSecret};

use super::columns::entity_name;
use super::error::StoreError;
use super::records::Changes;
use crate::seal::Sealer;

/// One version to insert: a record with its handle, digest and JSON encoding.
#[derive(Debug)]
pub(crate) struct Row {
    pub entity: Entity,
    pub handle: RecordHandle,
    /// The protocol's canonical digest of the record: equal digests mean equal content, which
    /// a JSON comparison cannot promise (key order and spacing are not part of the content).
    pub digest: Digest,
    /// The stored JSON: sealed by the store's [`Sealer`] when it holds keys.
    pub json: String,
    /// The records key `json` is sealed under; `None` for a clear row.
    pub key_id: Option<u32>,
    /// The skolenummer a school, basisgruppe or enrollment belongs to, kept beside the JSON
    /// (`records.school`) so consumer scope is checked on an index. Not personal data.
    pub school: Option<String>,
    /// The handle of the student an enrollment names (`records.student`): the student's key
    /// may be a national id, so the column holds the handle the site secret makes of it,
    /// never the key, and matches the student row's own `handle`.
    pub student: Option<RecordHandle>,
    /// Whether an enrollment names a basisgruppe: what `records.grouped` is inserted with.
    /// OneRoster's `enrollments` lists only those at a current school of their site; the
    /// reference check ([`plan`]) holds the school current at insert, and the refresh after
    /// each write (`store::paging::refresh_grouped_sql`) clears the flag when it is not.
    pub grouped: bool,
    /// The handles of the school a group or an enrollment names and of the group an
    /// enrollment names, so [`plan`] can refuse a record naming one central does not hold.
    pub school_handle: Option<RecordHandle>,
    pub group: Option<RecordHandle>,
}

impl Row {
    /// The records this one names: a group its school; an enrollment its student, school
    /// and group. Each must be current at central once the batch is applied.
    pub(crate) fn names(&self) -> impl Iterator<Item = (Entity, RecordHandle)> {
        let student = self.student.map(|h| (Entity::Student, h));
        let school = self.school_handle.map(|h| (Entity::School, h));
        let group = self.group.map(|h| (Entity::Group, h));
        [student, school, group].into_iter().flatten()
    }
}

/// A payload checked and encoded, before any database is touched, so the write lock is held
/// only for reading current versions and writing.
#[derive(Debug)]
pub(crate) enum Prepared {
    Delta {
        upserts: Vec<Row>,
        deletes: Vec<(Entity, RecordHandle)>,
        /// `(entity, old handle, new handle)`: each new handle is among `upserts`, each old
        /// among `deletes`.
        renames: Vec<(Entity, RecordHandle, RecordHandle)>,
    },
    Snapshot {
        rows: Vec<Row>,
    },
}

impl Prepared {
    /// The records whose current versions the plan needs: those the delta changes and
    /// those its upserts name but do not carry (a class move names a pupil the delta does
    /// not change), or `None` for a snapshot, which needs all of the site's.
    pub(super) fn touched(&self) -> Option<Vec<(Entity, RecordHandle)>> {
        match self {
            Prepared::Delta {
                upserts, deletes, ..
            } => {
                let mut keys: Vec<_> = upserts
                    .iter()
                    .map(|row| (row.entity, row.handle))
                    .chain(deletes.iter().copied())
                    .collect();
                let carried: HashSet<_> = keys.iter().copied().collect();
                let mut named = HashSet::new();
                keys.extend(
                    upserts
                        .iter()
                        .flat_map(Row::names)
                        .filter(|name| !carried.contains(name) && named.insert(*name)),
                );
                Some(keys)
            }
            Prepared::Snapshot { .. } => None,
        }
    }
}

/// Checks a payload against the site secret and encodes its records.
///
/// Upserts must carry the handle central computes from their key; snapshot records get
/// theirs computed. No record may appear twice. A rename's new handle must be upserted and
/// its old handle deleted by the same delta, each in one rename only.
///
/// Encoding (an HMAC for the handle, a SHA-256 digest and the JSON of every record) is most
/// of the CPU an apply costs, so it runs on all cores ([`par_map`]); the checks then run in
/// payload order, so which error a bad delta gets does not depend on the thread count. A
/// snapshot's rows come out sorted by [`row_order`], the order of the records' index, so the
/// backends insert them in index order and duplicates sit next to each other.
pub(crate) fn prepare(
    payload: &Payload,
    secret: &SiteSecret,
    sealer: &Sealer,
) -> Result<Prepared, StoreError> {
    match payload {
        Payload::Delta(delta) => {
            let mut seen = HashSet::new();
            let mut upserts = Vec::new();
            delta_rows(&delta.schools, secret, sealer, &mut seen, &mut upserts)?;
            delta_rows(&delta.students, secret, sealer, &mut seen, &mut upserts)?;
            delta_rows(&delta.groups, secret, sealer, &mut seen, &mut upserts)?;
            delta_rows(&delta.enrollments, secret, sealer, &mut seen, &mut upserts)?;
            let mut deletes = Vec::new();
            for entity in Entity::ALL {
                for handle in delta.deletes(entity) {
                    claim(&mut seen, entity, *handle)?;
                    deletes.push((entity, *handle));
                }
            }
            let renames = paired_renames(delta, &upserts, &deletes)?;
            Ok(Prepared::Delta {
                upserts,
                deletes,
                renames,
            })
        }
        Payload::Snapshot(roster) => {
            let mut rows = Vec::with_capacity(
                Entity::ALL
                    .into_iter()
                    .map(|entity| roster.count(entity))
                    .sum(),
            );
            snapshot_rows(&roster.schools, secret, sealer, &mut rows)?;
            snapshot_rows(&roster.students, secret, sealer, &mut rows)?;
            snapshot_rows(&roster.groups, secret, sealer, &mut rows)?;
            snapshot_rows(&roster.enrollments, secret, sealer, &mut rows)?;
            rows.sort_unstable_by(row_order);
            if let Some(pair) = rows
                .windows(2)
                .find(|pair| (pair[0].entity, pair[0].handle) == (pair[1].entity, pair[1].handle))
            {
                return Err(StoreError::DuplicateRecord {
                    entity: pair[0].entity,
                    handle: pair[0].handle,
                });
            }
            Ok(Prepared::Snapshot { rows })
        }
    }
}

/// The order of the records' indexes, `(entity, handle)` within a site, as both databases
/// compare them (entity names as bytes, handles as bytes). Rows inserted in this order land
/// next to each other in the index instead of at random pages: for a large batch that is the
/// difference between appending to a few hot pages and touching a cold page per row.
pub(crate) fn row_order(a: &Row, b: &Row) -> std::cmp::Ordering {
    entity_name(a.entity)
        .cmp(entity_name(b.entity))
        .then_with(|| a.handle.cmp(&b.handle))
}

/// The delta's renames, each checked to have its new handle upserted and its old handle
/// deleted in this delta, and no handle in two renames.
fn paired_renames(
    delta: &skolebro_protocol::Delta,
    upserts: &[Row],
    deletes: &[(Entity, RecordHandle)],
) -> Result<Vec<(Entity, RecordHandle, RecordHandle)>, StoreError> {
    if !delta.has_renames() {
        return Ok(Vec::new());
    }
    let upserted: HashSet<(Entity, RecordHandle)> =
        upserts.iter().map(|row| (row.entity, row.handle)).collect();
    let deleted: HashSet<&(Entity, RecordHandle)> = deletes.iter().collect();
    let mut named = HashSet::new();
    let mut renames = Vec::new();
    for entity in Entity::ALL {
        for &(from, to) in delta.renames(entity) {
            let unpaired = |handle| StoreError::UnpairedRename { entity, handle };
            if !deleted.contains(&(entity, from)) || !named.insert((entity, from)) {
                return Err(unpaired(from));
            }
            if !upserted.contains(&(entity, to)) || !named.insert((entity, to)) {
                return Err(unpaired(to));
            }
            renames.push((entity, from, to));
        }
    }
    Ok(renames)
}

fn claim(
    seen: &mut HashSet<(Entity, RecordHandle)>,
    entity: Entity,
    handle: RecordHandle,
) -> Result<(), StoreError> {
    if seen.insert((entity, handle)) {
        Ok(())
    } else {
        Err(StoreError::DuplicateRecord { entity, handle })
    }
}

fn row<R: Record>(
    record: &R,
    handle: RecordHandle,
    secret: &SiteSecret,
    sealer: &Sealer,
) -> Result<Row, StoreError> {
    let value = serde_json::to_value(record)
        .map_err(|error| StoreError::Corrupt(format!("record does not encode: {error}")))?;
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).map(str::to_owned);
    let school = match R::ENTITY {
        Entity::School => text("skolenummer"),
        Entity::Group | Entity::Enrollment => text("school"),
        Entity::Student => None,
    };
    let student = match R::ENTITY {
        Entity::Enrollment => text("student").map(|key| secret.handle(Entity::Student, &key)),
        _ => None,
    };
    let school_handle = match R::ENTITY {
        Entity::Group | Entity::Enrollment => {
            text("school").map(|key| secret.handle(Entity::School, &key))
        }
        Entity::School | Entity::Student => None,
    };
    let group = match R::ENTITY {
        Entity::Enrollment => text("group").map(|key| secret.handle(Entity::Group, &key)),
        _ => None,
    };
    let grouped = group.is_some();
    // The digest is over the clear record: the protocol's, as the agent computed it.
    let (json, key_id) = sealer.seal_record(R::ENTITY, value)?;
    Ok(Row {
        entity: R::ENTITY,
        handle,
        digest: Digest::of(record),
        json,
        key_id,
        school,
        student,
        grouped,
        school_handle,
        group,
    })
}

impl Row {
    /// The `enrolled` flag this row is inserted with ([`snapshot_enrolled`]'s students).
    /// Written right at insert, a snapshot's students need no second write: the refresh
    /// that follows it flips only flags that are wrong, and for a county's snapshot of
    /// 100,000 students those would otherwise be all of them.
    pub(crate) fn enrolled_at_insert(&self, enrolled: &HashSet<RecordHandle>) -> bool {
        self.entity == Entity::Student && enrolled.contains(&self.handle)
    }
}

/// The students a snapshot leaves enrolled: those an enrollment of the snapshot names at a
/// school of the snapshot (`records.enrolled`, written as each student row is inserted).
/// `None` for a delta, whose students' flags are refreshed in SQL after the write.
pub(crate) fn snapshot_enrolled(prepared: &Prepared) -> Option<HashSet<RecordHandle>> {
    let Prepared::Snapshot { rows } = prepared else {
        return None;
    };
    let schools: HashSet<&str> = rows
        .iter()
        .filter(|row| row.entity == Entity::School)
        .filter_map(|row| row.school.as_deref())
        .collect();
    Some(
        rows.iter()
            .filter(|row| row.entity == Entity::Enrollment)
            .filter(|row| row.school.as_deref().is_some_and(|s| schools.contains(s)))
            .filter_map(|row| row.student)
            .collect(),
    )
}

fn delta_rows<R: Record + Sync>(
    delta: &EntityDelta<R>,
    secret: &SiteSecret,
    sealer: &Sealer,
    seen: &mut HashSet<(Entity, RecordHandle)>,
    out: &mut Vec<Row>,
) -> Result<(), StoreError> {
    // Encoded in parallel with the handle each record should carry; checked in order.
    let encoded = par_map(&delta.upserts, |(handle, record)| {
        let expected = secret.handle(R::ENTITY, record.key());
        (expected == *handle).then(|| row(record, *handle, secret, sealer))
    });
    for ((handle, _), encoded) in delta.upserts.iter().zip(encoded) {
        let Some(encoded) = encoded else {
            return Err(StoreError::HandleMismatch {
                entity: R::ENTITY,
                handle: *handle,
            });
        };
        claim(seen, R::ENTITY, *handle)?;
        out.push(encoded?);
    }
    Ok(())
}

fn snapshot_rows<R: Record + Sync>(
    records: &[R],
    secret: &SiteSecret,
    sealer: &Sealer,
    out: &mut Vec<Row>,
) -> Result<(), StoreError> {
    for encoded in par_map(records, |record| {
        row(
            record,
            secret.handle(R::ENTITY, record.key()),
            secret,
            sealer,
        )
    }) {
        out.push(encoded?);
    }
    Ok(())
}

/// Below this many items [`par_map`] stays on the calling thread: starting threads costs
/// more than encoding a delta of a few hundred records.
const PARALLEL_MIN: usize = 4_096;

/// `items.iter().map(f).collect()`, on up to as many threads as the machine has cores, each
/// taking one contiguous part; the results keep the input order. Scoped std threads, started
/// per call: an apply is rare and large enough that a pool would buy nothing.
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || items.len() < PARALLEL_MIN {
        return items.iter().map(f).collect();
    }
    let part = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let others: Vec<_> = items
            .chunks(part)
            .skip(1)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        out.extend(items[..part].iter().map(f));
        for other in others {
            match other.join() {
                Ok(results) => out.extend(results),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// The current version of a record as the plan needs it: its row id, content digest and
/// stored identity (`None`: its own handle).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub id: i64,
    pub digest: Digest,
    pub identity: Option<RecordHandle>,
}

/// One version to insert, with the identity to store beside it (`None`: its own handle).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Insert<'a> {
    pub row: &'a Row,
    pub identity: Option<RecordHandle>,
}

pub(crate) type CurrentVersions = HashMap<(Entity, RecordHandle), Current>;

/// What to write for one batch: versions to close (by row id), the new handle to note on
/// those a rename closed, then versions to insert.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub close: Vec<i64>,
    pub renamed_to: Vec<(i64, RecordHandle)>,
    pub insert: Vec<Insert<'a>>,
    pub changes: Changes,
    /// Identities renamed records carry away from their own handle: a new record whose
    /// handle is one of them gets another identity ([`reused_key_identity`]).
    taken: HashSet<(Entity, RecordHandle)>,
}

/// The site's current records whose identity is not their own handle, as
/// `(entity, handle) -> identity`.
pub(crate) type RenamedIdentities = HashMap<(Entity, RecordHandle), RecordHandle>;

/// Decides which versions a prepared batch closes and inserts, given the current versions of
/// the records it touches (all of the site's for a snapshot) and the site's renamed current
/// records. The versions to insert come out in [`row_order`].
///
/// A record the batch stores may name one the batch does not carry when central holds it
/// (a delta's class move names an unchanged pupil); one naming a record neither the batch
/// nor central holds is refused ([`StoreError::DanglingReference`]), since stored it would
/// point nowhere.
pub(crate) fn plan<'a>(
    prepared: &'a Prepared,
    mut current: CurrentVersions,
    renamed: &RenamedIdentities,
) -> Result<Plan<'a>, StoreError> {
    check_references(prepared, &current)?;
    let mut plan = Plan {
        taken: renamed
            .iter()
            .map(|(&(entity, _), &identity)| (entity, identity))
            .collect(),
        ..Plan::default()
    };
    match prepared {
        Prepared::Delta {
            upserts,
            deletes,
            renames,
        } => {
            // New handle -> old handle of each rename.
            let renamed_from: HashMap<(Entity, RecordHandle), RecordHandle> = renames
                .iter()
                .map(|&(entity, from, to)| ((entity, to), from))
                .collect();
            // Old handle -> new handle of the renames that carried an identity over.
            let mut continued: HashMap<(Entity, RecordHandle), RecordHandle> = HashMap::new();
            // `prepare` let no record appear twice, so each current version is taken once.
            for row in upserts {
                let key = (row.entity, row.handle);
                let existing = current.remove(&key);
                let old = renamed_from.get(&key).and_then(|from| {
                    let old = current.get(&(row.entity, *from))?;
                    Some((*from, old.identity.unwrap_or(*from)))
                });
                match (existing, old) {
                    // The new handle is new here and the old one is current: one record,
                    // renamed. Its identity goes over to the new handle.
                    (None, Some((from, identity))) => {
                        plan.insert.push(Insert {
                            row,
                            identity: (identity != row.handle).then_some(identity),
                        });
                        plan.changes.renamed += 1;
                        continued.insert((row.entity, from), row.handle);
                    }
                    (existing, _) => plan.upsert(row, existing),
                }
            }
            for key in deletes {
                if let Some(existing) = current.remove(key) {
                    plan.close.push(existing.id);
                    match continued.get(key) {
                        Some(to) => plan.renamed_to.push((existing.id, *to)),
                        None => plan.changes.removed += 1,
                    }
                }
            }
            plan.insert.sort_unstable_by(|a, b| row_order(a.row, b.row));
        }
        Prepared::Snapshot { rows } => {
            plan.insert.reserve(rows.len());
            for row in rows {
                plan.upsert(row, current.remove(&(row.entity, row.handle)));
            }
            // What is left was not in the snapshot: closed.
            let mut missing: Vec<i64> = current.into_values().map(|existing| existing.id).collect();
            missing.sort_unstable();
            plan.changes.removed = missing.len() as u64;
            plan.close.extend(missing);
        }
    }
    Ok(plan)
}

/// Refuses a batch storing a record that names one neither the batch carries nor, for a
/// delta, central holds after it (current and not deleted by the same delta).
fn check_references(prepared: &Prepared, current: &CurrentVersions) -> Result<(), StoreError> {
    let (rows, deleted): (&[Row], HashSet<(Entity, RecordHandle)>) = match prepared {
        Prepared::Delta {
            upserts, deletes, ..
        } => (upserts, deletes.iter().copied().collect()),
        Prepared::Snapshot { rows } => (rows, HashSet::new()),
    };
    let delta = matches!(prepared, Prepared::Delta { .. });
    let carried: HashSet<(Entity, RecordHandle)> =
        rows.iter().map(|row| (row.entity, row.handle)).collect();
    for row in rows {
        for name in row.names() {
            let held = carried.contains(&name)
                || (delta && current.contains_key(&name) && !deleted.contains(&name));
            if !held {
                return Err(StoreError::DanglingReference {
                    entity: row.entity,
                    handle: row.handle,
                    names: name.0,
                    missing: name.1,
                });
            }
        }
    }
    Ok(())
}

impl<'a> Plan<'a> {
    fn upsert(&mut self, row: &'a Row, existing: Option<Current>) {
        match existing {
            Some(existing) if existing.digest == row.digest => self.changes.unchanged += 1,
            Some(existing) => {
                self.close.push(existing.id);
                self.insert.push(Insert {
                    row,
                    identity: existing.identity,
                });
                self.changes.changed += 1;
            }
            None => {
                self.insert.push(Insert {
                    row,
                    identity: reused_key_identity(&self.taken, row.entity, row.handle),
                });
                self.changes.added += 1;
            }
        }
    }
}

/// The identity of a new record whose key a renamed record had as its first key: that
/// record's consumer id derives from this handle, so the new record, another person, must not
/// share it. `None` (its own handle) when the handle is free, else the first of a chain of
/// SHA-256 values over the handle that no current record carries.
fn reused_key_identity(
    taken: &HashSet<(Entity, RecordHandle)>,
    entity: Entity,
    handle: RecordHandle,
) -> Option<RecordHandle> {
    use sha2::{Digest as _, Sha256};

    let mut candidate = handle;
    while taken.contains(&(entity, candidate)) {
        let mut hasher = Sha256::new();
        hasher.update(b"skolebro reused key identity");
        hasher.update(candidate.as_bytes());
        candidate = RecordHandle::from_bytes(hasher.finalize().into());
    }
    (candidate != handle).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(entity: Entity, handle: u8) -> Row {
        Row {
            entity,
            handle: RecordHandle::from_bytes([handle; 32]),
            digest: Digest::from_bytes([0; 32]),
            json: String::new(),
            key_id: None,
            school: None,
            student: None,
            grouped: false,
            school_handle: None,
            group: None,
        }
    }

    #[test]
    fn only_a_student_a_snapshot_enrolls_is_inserted_enrolled() {
        let enrolled = HashSet::from([RecordHandle::from_bytes([1; 32])]);
        assert!(stored(Entity::Student, 1).enrolled_at_insert(&enrolled));
        assert!(!stored(Entity::Student, 2).enrolled_at_insert(&enrolled));
        // Another kind's row under the same handle bytes is never flagged.
        assert!(!stored(Entity::Enrollment, 1).enrolled_at_insert(&enrolled));
        assert!(!stored(Entity::Student, 1).enrolled_at_insert(&HashSet::new()));
    }
}
