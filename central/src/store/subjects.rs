//! One pupil across every site, by national id: what a subject access export reads and a
//! subject erasure deletes (`crate::subject`), and the tombstones an erasure leaves. A
//! tombstone keeps a keyed hash of the national id and of the pupil's student keys at one
//! site, never the clear value; [`hold_erased`] is what `apply` does with it, once for both
//! backends: a later batch's records of an erased pupil are held back (not stored) and
//! counted on the tombstone, so the pupil does not come back unseen; an operator clears the
//! tombstone to let the school's next export store the pupil again. [`SubjectStore`] is
//! implemented in `sqlite/subjects.rs` and `postgres/subjects.rs`.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::error::{StoreError, StoreFuture};
use super::planning::{Prepared, Row};
use super::timestamp::Timestamp;
use crate::seal::{is_keyed_hash, Sealer};

/// A pupil erased at one site, as the tombstone keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The keyed hash of the national id ([`SubjectStore::subject_hash`]).
    pub subject: String,
    pub site: SiteId,
    /// The same hashes of the pupil's student keys at the site, which enrollments name.
    pub student_keys: Vec<String>,
    pub erased_at: Timestamp,
    /// The operator who erased: an account name, `cli:<login>` or `api:<client>`.
    pub erased_by: String,
    pub reason: String,
    /// Records of the pupil later batches carried and central held back.
    pub returned: u64,
    /// When the newest such batch was applied.
    pub returned_at: Option<Timestamp>,
}

/// Subject access and erasure in the store.
pub trait SubjectStore: Send + Sync {
    /// The hash a tombstone keeps for `value` (a national id or a student key).
    fn subject_hash(&self, value: &str) -> String;

    /// Every student record (site and handle) any version of which carries `national_id`,
    /// whether the row is sealed or clear, sorted.
    fn students_with_national_id<'a>(
        &'a self,
        national_id: &'a str,
    ) -> StoreFuture<'a, Vec<(SiteId, RecordHandle)>>;

    /// Every enrollment of `site` any version of which names one of `student_keys` (clear
    /// keys; sealed rows are matched by their keyed hash), sorted by handle.
    fn enrollments_naming<'a>(
        &'a self,
        site: &'a SiteId,
        student_keys: &'a [String],
    ) -> StoreFuture<'a, Vec<RecordHandle>>;

    /// Deletes every version of `records` and writes `tombstones` (replacing one for the
    /// same pupil and site), in one transaction; returns how many versions went.
    fn erase_subject<'a>(
        &'a self,
        records: &'a [(SiteId, Entity, RecordHandle)],
        tombstones: &'a [Tombstone],
    ) -> StoreFuture<'a, u64>;

    /// Every tombstone, newest erasure first.
    fn tombstones(&self) -> StoreFuture<'_, Vec<Tombstone>>;

    /// Removes the tombstone of `subject` at `site`, so the school's next export stores the
    /// pupil again; `false` if there was none.
    fn clear_tombstone<'a>(&'a self, site: &'a SiteId, subject: &'a str) -> StoreFuture<'a, bool>;
}

/// The hash a tombstone keeps for `value`: the lookup key's keyed hash when the store seals
/// (the form sealed rows hold), otherwise an unkeyed SHA-256 (`~u`), so a central without
/// sealing keeps no clear id in its tombstones either.
pub(crate) fn subject_hash(sealer: &Sealer, value: &str) -> String {
    if sealer.active().is_some() {
        return sealer.lookup(value);
    }
    let mut hasher = Sha256::new();
    hasher.update(b"skolebro-subject-v1:");
    hasher.update(value.as_bytes());
    format!("~u{}", hex::encode(&hasher.finalize()[..16]))
}

/// A field of a row about to be stored, as a tombstone compares it: a sealed row already
/// holds the keyed hash, a clear one is hashed here.
fn stored_hash(sealer: &Sealer, stored: &str) -> String {
    if is_keyed_hash(stored) {
        stored.to_owned()
    } else {
        subject_hash(sealer, stored)
    }
}

/// The site's tombstones as [`hold_erased`] looks them up: each hash (national id or
/// student key) to the tombstone's subject.
fn by_hash(tombstones: &[Tombstone]) -> HashMap<&str, &str> {
    let mut hashes = HashMap::new();
    for tombstone in tombstones {
        hashes.insert(tombstone.subject.as_str(), tombstone.subject.as_str());
        for key in &tombstone.student_keys {
            hashes.insert(key.as_str(), tombstone.subject.as_str());
        }
    }
    hashes
}

/// The tombstoned subject a row about to be stored belongs to, if any: a student by its
/// national id or key, an enrollment by the student it names.
fn erased_subject<'t>(
    row: &Row,
    hashes: &HashMap<&str, &'t str>,
    sealer: &Sealer,
) -> Result<Option<&'t str>, StoreError> {
    let fields: &[&str] = match row.entity {
        Entity::Student => &["national_id", "source_key"],
        Entity::Enrollment => &["student"],
        Entity::School | Entity::Group => return Ok(None),
    };
    let value: Value = serde_json::from_str(&row.json)
        .map_err(|error| StoreError::Corrupt(format!("record does not decode: {error}")))?;
    for field in fields {
        if let Some(Value::String(stored)) = value.get(*field) {
            if let Some(subject) = hashes.get(stored_hash(sealer, stored).as_str()) {
                return Ok(Some(subject));
            }
        }
    }
    Ok(None)
}

/// Takes the records of erased pupils out of a prepared batch of a site with
/// `tombstones`: they are not stored. Returns what is left to apply and, per tombstoned
/// subject, how many records were held back. A delta's rename whose new record is held
/// back is dropped (its old record is still closed by the delete).
pub(crate) fn hold_erased(
    prepared: Prepared,
    tombstones: &[Tombstone],
    sealer: &Sealer,
) -> Result<(Prepared, Vec<(String, u64)>), StoreError> {
    if tombstones.is_empty() {
        return Ok((prepared, Vec::new()));
    }
    let hashes = by_hash(tombstones);
    let mut held: HashMap<String, u64> = HashMap::new();
    let prepared = match prepared {
        Prepared::Snapshot { rows } => Prepared::Snapshot {
            rows: split(rows, &hashes, sealer, &mut held)?.kept,
        },
        Prepared::Delta {
            upserts,
            deletes,
            renames,
        } => {
            let Split { kept, dropped } = split(upserts, &hashes, sealer, &mut held)?;
            let renames = renames
                .into_iter()
                .filter(|(entity, _, to)| !dropped.contains(&(*entity, *to)))
                .collect();
            Prepared::Delta {
                upserts: kept,
                deletes,
                renames,
            }
        }
    };
    let mut held: Vec<(String, u64)> = held.into_iter().collect();
    held.sort();
    Ok((prepared, held))
}

/// A batch's rows split by [`hold_erased`]: those to store, and the records held back.
struct Split {
    kept: Vec<Row>,
    dropped: Vec<(Entity, RecordHandle)>,
}

/// Splits `rows` into those to store and those of tombstoned subjects, counting the latter
/// per subject in `held`.
fn split(
    rows: Vec<Row>,
    hashes: &HashMap<&str, &str>,
    sealer: &Sealer,
    held: &mut HashMap<String, u64>,
) -> Result<Split, StoreError> {
    let subjects = rows
        .iter()
        .map(|row| erased_subject(row, hashes, sealer))
        .collect::<Result<Vec<_>, _>>()?;
    // An erased pupil's student record found by its national id under a key the tombstone
    // does not know: its enrollments name that key, and are held back with it, or they
    // would name a student central does not store.
    let students: HashMap<RecordHandle, &str> = rows
        .iter()
        .zip(&subjects)
        .filter(|(row, _)| row.entity == Entity::Student)
        .filter_map(|(row, subject)| Some((row.handle, (*subject)?)))
        .collect();
    let mut kept = Vec::with_capacity(rows.len());
    let mut dropped = Vec::new();
    for (row, subject) in rows.into_iter().zip(subjects) {
        let subject = subject.or_else(|| {
            (row.entity == Entity::Enrollment)
                .then(|| students.get(row.student.as_ref()?).copied())
                .flatten()
        });
        match subject {
            Some(subject) => {
                *held.entry(subject.to_owned()).or_default() += 1;
                dropped.push((row.entity, row.handle));
            }
            None => kept.push(row),
        }
    }
    Ok(Split { kept, dropped })
}

/// A tombstone row as both databases read it, before its fields are checked.
pub(crate) struct TombstoneRow {
    pub subject: String,
    pub site: String,
    pub student_keys: String,
    pub erased_at: i64,
    pub erased_by: String,
    pub reason: String,
    pub returned: i64,
    pub returned_at: Option<i64>,
}

/// The columns a [`TombstoneRow`] is read from, in its field order.
pub(crate) const TOMBSTONE_COLUMNS: &str =
    "subject, site, student_keys, erased_at, erased_by, reason, returned, returned_at";

impl TombstoneRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: super::columns::DbRow + ?Sized>(
        row: &R,
    ) -> Result<TombstoneRow, R::Error> {
        Ok(TombstoneRow {
            subject: row.column(0)?,
            site: row.column(1)?,
            student_keys: row.column(2)?,
            erased_at: row.column(3)?,
            erased_by: row.column(4)?,
            reason: row.column(5)?,
            returned: row.column(6)?,
            returned_at: row.column(7)?,
        })
    }

    pub(crate) fn into_tombstone(self) -> Result<Tombstone, StoreError> {
        Ok(Tombstone {
            subject: self.subject,
            site: super::columns::stored_site(&self.site)?,
            student_keys: serde_json::from_str(&self.student_keys).map_err(|error| {
                StoreError::Corrupt(format!("tombstone's student keys do not decode: {error}"))
            })?,
            erased_at: Timestamp(self.erased_at),
            erased_by: self.erased_by,
            reason: self.reason,
            returned: u64::try_from(self.returned)
                .map_err(|_| StoreError::Corrupt(format!("negative count {}", self.returned)))?,
            returned_at: self.returned_at.map(Timestamp),
        })
    }
}

/// A tombstone's student keys as stored: a JSON array.
pub(crate) fn student_keys_to_db(keys: &[String]) -> String {
    Value::from(keys.to_vec()).to_string()
}
