//! Sealing at rest: the national ids (and, by `[privacy] seal_names`, the names, username and
//! e-mail) of the records central keeps are encrypted before they reach the `records` table,
//! and opened again when the store reads them back, so every reader of the store (consumer
//! API, elevliste export, web interface, transfer windows) sees clear records and a copied
//! database file or backup shows none of them.
//!
//! Envelope encryption. A key-encryption key ([`Kek`]) is read from a file (`[privacy]
//! key_file`, 0600) or the `SKOLEBRO_CENTRAL_KEK` environment variable and never written to
//! the database. It wraps the data keys (DEKs) the database keeps in `seal_keys`: one
//! *records* key seals record fields (XChaCha20-Poly1305, a random 192-bit nonce per
//! record), one *lookup* key makes the keyed hashes (HMAC-SHA256) that stand in for
//! national ids and student keys wherever SQL compares them, so an enrollment still finds its
//! student and a subject can be found by national id without the clear value in the
//! database. Rotating the KEK rewraps the keys only; rotating the records key reseals rows in
//! bounded batches, each row naming the key it is sealed under (`records.key_id`). The lookup
//! key is not rotated with it: rows sealed under two records keys still compare equal.
//!
//! Where: `store::planning` seals each row it is about to insert ([`Sealer::seal_record`]);
//! `store::records::decode` opens every row it reads ([`Sealer::open_record`]). A row's
//! clear fields sit in one sealed object under the key `"~s"` of its JSON; a field SQL
//! compares keeps its place with its keyed hash (`"~h…"`), the others leave the JSON. The
//! protocol digest is computed over the clear record before sealing, so comparing contents
//! across batches works as before. Rows written before sealing (schema 12 and older) have no
//! `"~s"` and read as they are until the reseal job seals them.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value};
use sha2::Sha256;
use skolebro_protocol::Entity;

/// Bytes in a key-encryption key and in each data key.
pub const KEY_LEN: usize = 32;

/// The environment variable a KEK may come from instead of `[privacy] key_file`: 64 hex
/// digits, for platforms that hand secrets to services through the environment.
pub const KEK_ENV: &str = "SKOLEBRO_CENTRAL_KEK";

/// The JSON key a sealed row keeps its sealed fields under.
const SEALED_FIELD: &str = "~s";

/// The prefix of a keyed hash standing in for a clear value.
const HASH_PREFIX: &str = "~h";

/// Bytes of the nonce of XChaCha20-Poly1305.
const NONCE_LEN: usize = 24;

/// Why sealing, opening or a key failed. None of them carries a sealed or clear value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key file is readable by others than its owner.
    #[error("{0}: the key-encryption key must be readable by its owner only (chmod 600)")]
    Permissions(PathBuf),
    /// The key text is not 64 hex digits.
    #[error("the key-encryption key is not 64 hex digits")]
    KeyFormat,
    /// The KEK does not open the data keys the database holds: another central's key file,
    /// an old key after a rotation, or a typo.
    #[error(
        "the key-encryption key (id {given}) does not open this database's data keys \
         (wrapped under {stored}): wrong [privacy] key_file or {KEK_ENV}"
    )]
    WrongKek { given: String, stored: String },
    /// A row names a records key the database does not hold (retired too early, or the row
    /// came from another database).
    #[error("a record is sealed under key {0}, which this database does not hold")]
    UnknownKey(u32),
    /// Another process made a new records key active after this one loaded its keys: it
    /// must load them again before it reseals (the background task does so within seconds).
    #[error("the records key was rotated since this central loaded its keys")]
    Rotated,
    /// A sealed row was read by a store that was opened without a key.
    #[error("records are sealed at rest, but no key-encryption key is configured")]
    Locked,
    /// A sealed value does not open: altered, or sealed under another key with the same id.
    #[error("a sealed record does not open (altered or sealed under another key)")]
    Open,
    /// The operating system's randomness failed.
    #[error("no randomness for a nonce or key")]
    Randomness,
    /// A record's JSON is not an object, or a sealed object is not JSON.
    #[error("record does not encode for sealing: {0}")]
    Json(String),
}

/// The key-encryption key: wraps the data keys in `seal_keys`, never stored in the database.
pub struct Kek([u8; KEY_LEN]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.id())
    }
}

impl Drop for Kek {
    fn drop(&mut self) {
        self.0 = [0; KEY_LEN];
    }
}

impl Kek {
    /// A new random key, for `skolebro-provision init`, the demo and a rotation.
    pub fn generate() -> Result<Kek, SealError> {
        Ok(Kek(random()?))
    }

    /// The key from its text: 64 hex digits, surrounding white space ignored.
    pub fn from_hex(text: &str) -> Result<Kek, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::KeyFormat)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SealError::KeyFormat)?;
        Ok(Kek(key))
    }

    /// Reads the key file, refusing one that its group or others may read.
    pub fn read_file(path: &Path) -> Result<Kek, SealError> {
        let io = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SealError::Permissions(path.to_path_buf()));
        }
        Kek::from_hex(&std::fs::read_to_string(path).map_err(io)?)
    }

    /// Writes the key as hex to a new file, 0600; refuses to overwrite one.
    pub fn write_new(&self, path: &Path) -> Result<(), SealError> {
        let io = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        writeln!(file, "{}", hex::encode(self.0)).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// A short public id of the key (not the key): which KEK wraps the stored keys, for
    /// error messages and the `seal_keys` table.
    pub fn id(&self) -> String {
        hex::encode(&keyed_hash(&self.0, b"skolebro-kek-id-v1")[..8])
    }

    /// Wraps a data key under this KEK, bound to its id and purpose.
    pub(crate) fn wrap(&self, key: &DataKey) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &key.secret,
                        aad: &wrap_aad(key.id, key.purpose),
                    },
                )
                .map_err(|_| SealError::Open)?,
        );
        Ok(out)
    }

    /// Opens a wrapped data key; `None` if this KEK did not wrap it.
    pub(crate) fn unwrap(&self, id: u32, purpose: KeyPurpose, wrapped: &[u8]) -> Option<DataKey> {
        if wrapped.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let clear = cipher
            .decrypt(
                &XNonce::try_from(nonce).ok()?,
                Payload {
                    msg: sealed,
                    aad: &wrap_aad(id, purpose),
                },
            )
            .ok()?;
        Some(DataKey {
            id,
            purpose,
            secret: clear.try_into().ok()?,
        })
    }
}

fn wrap_aad(id: u32, purpose: KeyPurpose) -> Vec<u8> {
    let mut aad = b"skolebro-dek-v1:".to_vec();
    aad.extend(purpose.name().as_bytes());
    aad.extend(id.to_be_bytes());
    aad
}

/// What a data key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Seals record fields; rotated with a reseal of the rows.
    Records,
    /// Keys the hashes SQL compares; kept across records-key rotations.
    Lookup,
}

impl KeyPurpose {
    /// The name in `seal_keys.purpose`.
    pub fn name(self) -> &'static str {
        match self {
            KeyPurpose::Records => "records",
            KeyPurpose::Lookup => "lookup",
        }
    }

    /// The purpose a `seal_keys.purpose` names.
    pub fn from_name(name: &str) -> Option<KeyPurpose> {
        match name {
            "records" => Some(KeyPurpose::Records),
            "lookup" => Some(KeyPurpose::Lookup),
            _ => None,
        }
    }
}

/// A data key in the clear, in memory only.
#[derive(Clone)]
pub struct DataKey {
    pub id: u32,
    pub purpose: KeyPurpose,
    secret: [u8; KEY_LEN],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({}, {})", self.id, self.purpose.name())
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.secret = [0; KEY_LEN];
    }
}

impl DataKey {
    /// A new random data key.
    pub fn generate(id: u32, purpose: KeyPurpose) -> Result<DataKey, SealError> {
        Ok(DataKey {
            id,
            purpose,
            secret: random()?,
        })
    }
}

/// A data key as `seal_keys` holds it: wrapped under a KEK named by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub id: u32,
    pub purpose: KeyPurpose,
    pub wrapped: Vec<u8>,
    /// [`Kek::id`] of the KEK that wrapped it.
    pub kek: String,
    /// The records key new rows are sealed under (exactly one records key is).
    pub active: bool,
}

/// Which fields are sealed: national ids always; names, username and e-mail by setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SealScope {
    /// National ids, student keys (which are often national ids) and birth dates.
    #[default]
    Ids,
    /// Also names, username and e-mail.
    IdsAndNames,
}

/// How a sealed field stays in a row's JSON.
#[derive(Clone, Copy)]
enum Kept {
    /// As its keyed hash, because SQL compares it (or a subject is looked up by it).
    Hash,
    /// Not at all.
    Gone,
}

/// The fields of a record of `entity` that `scope` seals.
fn sealed_fields(entity: Entity, scope: SealScope) -> &'static [(&'static str, Kept)] {
    const STUDENT_IDS: &[(&str, Kept)] = &[
        ("source_key", Kept::Hash),
        ("national_id", Kept::Hash),
        ("birth_date", Kept::Gone),
    ];
    const STUDENT_ALL: &[(&str, Kept)] = &[
        ("source_key", Kept::Hash),
        ("national_id", Kept::Hash),
        ("birth_date", Kept::Gone),
        ("username", Kept::Gone),
        ("given_name", Kept::Gone),
        ("middle_name", Kept::Gone),
        ("family_name", Kept::Gone),
        ("email", Kept::Gone),
    ];
    const ENROLLMENT: &[(&str, Kept)] = &[("source_key", Kept::Gone), ("student", Kept::Hash)];
    match (entity, scope) {
        (Entity::Student, SealScope::Ids) => STUDENT_IDS,
        (Entity::Student, SealScope::IdsAndNames) => STUDENT_ALL,
        (Entity::Enrollment, _) => ENROLLMENT,
        (Entity::School | Entity::Group, _) => &[],
    }
}

/// Whether a stored field holds a keyed hash ([`Sealer::lookup`]) rather than a clear value.
pub fn is_keyed_hash(stored: &str) -> bool {
    stored.starts_with(HASH_PREFIX)
}

/// Whether records of `entity` carry personal data to seal: the kinds the reseal job visits.
pub fn seals(entity: Entity) -> bool {
    matches!(entity, Entity::Student | Entity::Enrollment)
}

/// The keys in force, held by the store: seals rows it writes, opens rows it reads.
///
/// A store opened without a KEK holds [`Sealer::clear`]: it writes clear rows (as before
/// sealing existed) and refuses to read sealed ones.
pub struct Sealer {
    active: Option<u32>,
    records: HashMap<u32, XChaCha20Poly1305>,
    lookup: Option<Hmac<Sha256>>,
    scope: SealScope,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("active", &self.active)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// No keys: rows are written clear.
    pub fn clear() -> Sealer {
        Sealer {
            active: None,
            records: HashMap::new(),
            lookup: None,
            scope: SealScope::Ids,
        }
    }

    /// Seals new rows under `active`, opens rows sealed under it or any of `records`, and
    /// hashes with `lookup`.
    pub fn new(
        active: &DataKey,
        records: &[DataKey],
        lookup: &DataKey,
        scope: SealScope,
    ) -> Result<Sealer, SealError> {
        let mut ciphers = HashMap::new();
        for key in records.iter().chain(std::iter::once(active)) {
            ciphers.insert(key.id, XChaCha20Poly1305::new(&key.secret.into()));
        }
        let lookup = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&lookup.secret)
            .map_err(|_| SealError::KeyFormat)?;
        Ok(Sealer {
            active: Some(active.id),
            records: ciphers,
            lookup: Some(lookup),
            scope,
        })
    }

    /// The records key new rows are sealed under; `None` when rows are written clear.
    pub fn active(&self) -> Option<u32> {
        self.active
    }

    /// The keyed hash that stands in the database for `value` (a national id or a student
    /// key); the clear value when the store has no key.
    pub fn lookup(&self, value: &str) -> String {
        match &self.lookup {
            None => value.to_owned(),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(value.as_bytes());
                let digest = mac.finalize().into_bytes();
                format!("{HASH_PREFIX}{}", hex::encode(&digest[..16]))
            }
        }
    }

    /// The stored form of a record's JSON: its sealed fields moved into one sealed object
    /// under `SEALED_FIELD`, with the key id the row was sealed under (`None`: clear).
    pub fn seal_record(
        &self,
        entity: Entity,
        record: Value,
    ) -> Result<(String, Option<u32>), SealError> {
        let fields = sealed_fields(entity, self.scope);
        let (Some(active), false) = (self.active, fields.is_empty()) else {
            return Ok((to_json(&record)?, None));
        };
        let Value::Object(mut object) = record else {
            return Err(SealError::Json("not an object".to_owned()));
        };
        let mut sealed = Map::new();
        for (field, kept) in fields {
            match object.remove(*field) {
                None => {}
                // Nothing to hide: stays as it was.
                Some(Value::Null) => {
                    object.insert((*field).to_owned(), Value::Null);
                }
                Some(value) => {
                    if let (Kept::Hash, Value::String(text)) = (kept, &value) {
                        object.insert((*field).to_owned(), Value::String(self.lookup(text)));
                    }
                    sealed.insert((*field).to_owned(), value);
                }
            }
        }
        let clear = to_json(&Value::Object(sealed))?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let cipher = self
            .records
            .get(&active)
            .ok_or(SealError::UnknownKey(active))?;
        let mut blob = nonce.to_vec();
        blob.extend(
            cipher
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: clear.as_bytes(),
                        aad: &record_aad(entity, active),
                    },
                )
                .map_err(|_| SealError::Open)?,
        );
        let token = format!(
            "{active}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
        );
        object.insert(SEALED_FIELD.to_owned(), Value::String(token));
        Ok((to_json(&Value::Object(object))?, Some(active)))
    }

    /// The clear JSON of a stored row: a clear row as it is, a sealed one with its sealed
    /// fields back in place.
    pub fn open_record(&self, entity: Entity, stored: &str) -> Result<Value, SealError> {
        let value: Value =
            serde_json::from_str(stored).map_err(|error| SealError::Json(error.to_string()))?;
        let Value::Object(mut object) = value else {
            return Ok(value);
        };
        let Some(token) = object.remove(SEALED_FIELD) else {
            return Ok(Value::Object(object));
        };
        let Value::String(token) = token else {
            return Err(SealError::Open);
        };
        let (id, blob) = token.split_once('.').ok_or(SealError::Open)?;
        let id: u32 = id.parse().map_err(|_| SealError::Open)?;
        if self.active.is_none() {
            return Err(SealError::Locked);
        }
        let cipher = self.records.get(&id).ok_or(SealError::UnknownKey(id))?;
        let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SealError::Open)?;
        if blob.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let clear = cipher
            .decrypt(
                &XNonce::try_from(nonce).map_err(|_| SealError::Open)?,
                Payload {
                    msg: sealed,
                    aad: &record_aad(entity, id),
                },
            )
            .map_err(|_| SealError::Open)?;
        let Value::Object(fields) =
            serde_json::from_slice(&clear).map_err(|error| SealError::Json(error.to_string()))?
        else {
            return Err(SealError::Open);
        };
        object.extend(fields);
        Ok(Value::Object(object))
    }
}

fn record_aad(entity: Entity, id: u32) -> Vec<u8> {
    let mut aad = b"skolebro-record-v1:".to_vec();
    aad.extend(entity.plural().as_bytes());
    aad.extend(id.to_be_bytes());
    aad
}

fn to_json(value: &Value) -> Result<String, SealError> {
    serde_json::to_string(value).map_err(|error| SealError::Json(error.to_string()))
}

fn keyed_hash(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|_| SealError::Randomness)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(scope: SealScope) -> Sealer {
        let records = DataKey::generate(1, KeyPurpose::Records).expect("a key");
        let lookup = DataKey::generate(2, KeyPurpose::Lookup).expect("a key");
        Sealer::new(&records, &[], &lookup, scope).expect("a sealer")
    }

    fn student() -> Value {
        serde_json::json!({
            "source_key": "16881774198",
            "national_id": "16881774198",
            "username": "oskar.nilsen",
            "given_name": "Oskar",
            "middle_name": null,
            "family_name": "Nilsen",
            "birth_date": "2017-08-16",
            "gender": "male",
            "email": "elev1@skule.example.no"
        })
    }

    #[test]
    fn a_sealed_student_reads_back_as_it_was_and_shows_no_id_or_name() {
        let sealer = sealer(SealScope::IdsAndNames);
        let (stored, key) = sealer
            .seal_record(Entity::Student, student())
            .expect("seals");
        assert_eq!(key, Some(1));
        for clear in ["16881774198", "Oskar", "Nilsen", "elev1@", "2017-08-16"] {
            assert!(!stored.contains(clear), "{clear} in {stored}");
        }
        let opened = sealer.open_record(Entity::Student, &stored).expect("opens");
        assert_eq!(opened, student());
    }

    #[test]
    fn names_stay_clear_unless_the_setting_seals_them() {
        let (stored, _) = sealer(SealScope::Ids)
            .seal_record(Entity::Student, student())
            .expect("seals");
        assert!(stored.contains("Oskar"));
        assert!(!stored.contains("16881774198"));
    }

    #[test]
    fn an_enrollment_names_its_student_by_the_same_keyed_hash_as_the_student_row() {
        let sealer = sealer(SealScope::Ids);
        let enrollment = serde_json::json!({
            "source_key": "16881774198@46505", "student": "16881774198",
            "school": "46505", "group": "46505-3C"
        });
        let (stored, _) = sealer
            .seal_record(Entity::Enrollment, enrollment.clone())
            .expect("seals");
        let stored: Value = serde_json::from_str(&stored).expect("json");
        let (student, _) = sealer
            .seal_record(Entity::Student, student())
            .expect("seals");
        let student: Value = serde_json::from_str(&student).expect("json");
        assert_eq!(stored["student"], student["source_key"]);
        assert_eq!(stored["school"], "46505");
        assert!(stored.get("source_key").is_none());
    }

    #[test]
    fn a_clear_row_from_before_sealing_reads_as_it_is() {
        let clear = serde_json::to_string(&student()).expect("json");
        let opened = sealer(SealScope::Ids)
            .open_record(Entity::Student, &clear)
            .expect("reads");
        assert_eq!(opened, student());
    }

    #[test]
    fn an_altered_sealed_row_or_another_key_is_refused() {
        let one = sealer(SealScope::Ids);
        let (stored, _) = one.seal_record(Entity::Student, student()).expect("seals");
        assert!(matches!(
            sealer(SealScope::Ids).open_record(Entity::Student, &stored),
            Err(SealError::Open)
        ));
        assert!(matches!(
            Sealer::clear().open_record(Entity::Student, &stored),
            Err(SealError::Locked)
        ));
        let altered = stored.replace("\"~s\":\"1.", "\"~s\":\"1.A");
        assert!(one.open_record(Entity::Student, &altered).is_err());
    }

    #[test]
    fn a_data_key_unwraps_only_under_the_kek_that_wrapped_it() {
        let kek = Kek::generate().expect("a kek");
        let key = DataKey::generate(3, KeyPurpose::Records).expect("a key");
        let wrapped = kek.wrap(&key).expect("wraps");
        let back = kek
            .unwrap(3, KeyPurpose::Records, &wrapped)
            .expect("unwraps");
        assert_eq!(back.secret, key.secret);
        assert!(kek.unwrap(4, KeyPurpose::Records, &wrapped).is_none());
        assert!(kek.unwrap(3, KeyPurpose::Lookup, &wrapped).is_none());
        let other = Kek::generate().expect("a kek");
        assert!(other.unwrap(3, KeyPurpose::Records, &wrapped).is_none());
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("records.kek");
        let kek = Kek::generate().expect("a kek");
        kek.write_new(&path).expect("writes");
        assert_eq!(Kek::read_file(&path).expect("reads").id(), kek.id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Kek::read_file(&path),
            Err(SealError::Permissions(_))
        ));
    }
}
