//! The store's one error enum and the future every store method returns.

use std::future::Future;
use std::pin::Pin;

use skolebro_protocol::{DeviceId, Entity, RecordHandle, Seq, SiteId};

use super::fylke::Fylke;
use super::timestamp::Timestamp;

/// Longest window name, in characters: a name such as "Inntak 2027" is for people's lists.
/// Kept beside [`StoreError::WindowName`], the refusal it bounds.
pub const MAX_WINDOW_NAME_LEN: usize = 100;

/// The future every [`Store`] method returns.
///
/// Boxed rather than `async fn` in the trait: an `async fn` in a trait makes the trait
/// unusable as `dyn Store`, and the HTTP layer keeps one `Arc<dyn Store>` in its state so the
/// backend is chosen at start-up, not at compile time. One allocation per call is nothing next
/// to a database round trip. Call sites stay plain: `store.apply(batch).await?`.
///
/// [`Store`]: super::Store
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Everything that can go wrong in the store. Batch problems the ingest answers differently
/// (a gap asks for a snapshot, a broken chain is an alarm, a handle mismatch a refusal) have
/// their own variants; database failures keep their source for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database failed (I/O, lock timeout, constraint); the transaction was rolled
    /// back.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed or is unreachable; the transaction was rolled back. The message
    /// carries the driver's causes ("error connecting to server: Connection refused"):
    /// the driver's own text alone says neither what nor why.
    #[error("postgresql: {}", postgres_text(.0))]
    Postgres(tokio_postgres::Error),
    /// The batch is ahead of the stored head: batches between were lost. The agent answers a
    /// gap with a snapshot chained onto the head `expected` belongs to.
    #[error("sequence gap: expected {expected}, got {got}")]
    Gap { expected: Seq, got: Seq },
    /// The sequence number is the expected one but `prev` is not the stored head's digest:
    /// the device's chain forked (restored backup, cloned SD card).
    #[error("batch {seq} does not chain onto the batch applied before it")]
    BrokenChain { seq: Seq },
    /// The batch's `next_head` does not follow its `seq`: a caller bug, refused rather than
    /// stored, because a wrong head would break every later batch of the device.
    #[error("batch {seq} names {next} as the next sequence number")]
    InvalidHead { seq: Seq, next: Seq },
    /// A sequence number beyond what the databases' signed 64-bit integers hold.
    #[error("sequence number {0} is out of range")]
    SeqOutOfRange(Seq),
    /// An upsert's handle is not the handle central computes from the record's key with the
    /// site secret: the agent holds another secret, or the delta is inconsistent. Storing it
    /// would make the record unreachable by later deletes.
    #[error("{entity:?} upsert carries handle {handle:?}, which does not match its key")]
    HandleMismatch {
        entity: Entity,
        handle: RecordHandle,
    },
    /// One batch names the same record twice (two upserts, upsert and delete, or two records
    /// with one key in a snapshot); which one wins would be a guess.
    #[error("{entity:?} record {handle:?} appears twice in one batch")]
    DuplicateRecord {
        entity: Entity,
        handle: RecordHandle,
    },
    /// A rename names a new handle the batch does not upsert or an old handle it does not
    /// delete, or names one handle in two renames: half a rename cannot be applied, and
    /// linking records the batch does not change would give two records one identity.
    #[error("{entity:?} rename of {handle:?} lacks its upsert or delete in the same batch")]
    UnpairedRename {
        entity: Entity,
        handle: RecordHandle,
    },
    /// A record the batch stores names one (an enrollment its student, school or group; a
    /// group its school) that neither the batch carries nor central holds: stored, it would
    /// point nowhere. The agent checks the same against what it sent, so this means the two
    /// disagree about what central has.
    #[error(
        "{entity:?} record {handle:?} names {names:?} {missing:?}, which neither the batch nor \
         the site's records hold"
    )]
    DanglingReference {
        entity: Entity,
        handle: RecordHandle,
        names: Entity,
        missing: RecordHandle,
    },
    /// The device never enrolled; its batches have no chain to continue.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// Operations revoked the device (lost, stolen, replaced); it may not write any more.
    #[error("device {0} is revoked")]
    DeviceRevoked(DeviceId),
    /// The batch names another site than the device was registered for.
    #[error("device {device} belongs to site {registered}, not {claimed}")]
    WrongSite {
        device: DeviceId,
        registered: SiteId,
        claimed: SiteId,
    },
    /// [`DeviceStore::register_device`] for an id already registered with another key or site.
    /// Re-registering must not silently hand a device's chain to a new key.
    ///
    /// [`DeviceStore::register_device`]: super::DeviceStore::register_device
    #[error("device {0} is already registered with another key or site")]
    DeviceConflict(DeviceId),
    /// The site has no secret yet, so central cannot check or compute record handles.
    #[error("site {0} has no secret")]
    NoSiteSecret(SiteId),
    /// [`DeviceStore::set_site_secret`] with a new secret for a site that already has records:
    /// their handles were computed with the old secret, and deletes would stop matching.
    ///
    /// [`DeviceStore::set_site_secret`]: super::DeviceStore::set_site_secret
    #[error("site {0} already holds records under another secret")]
    SiteSecretInUse(SiteId),
    /// The database was migrated by a newer build; this one refuses to guess at its schema.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// Stored data does not decode (a record's JSON, a key, an entity name).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Sealing or opening a record failed, or the key-encryption key does not open the
    /// database's data keys (`crate::seal`).
    #[error("sealed at rest: {0}")]
    Seal(#[from] crate::seal::SealError),
    /// No enrollment token has this hash (or, for a revoke, this id).
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The token's expiry has passed. The field is the token's id, never the token.
    #[error("enrollment token {0} has expired")]
    TokenExpired(String),
    /// The token already enrolled a device: a stick is good for one device only.
    #[error("enrollment token {0} is already used")]
    TokenUsed(String),
    /// An operator revoked the token.
    #[error("enrollment token {0} is revoked")]
    TokenRevoked(String),
    /// A token with this hash, or with the same id, is already registered.
    #[error("enrollment token {0} is already registered")]
    TokenExists(String),
    /// No release has this id.
    #[error("unknown release {0}")]
    UnknownRelease(String),
    /// A release with this id is registered with another manifest: a version and target
    /// name exactly one artifact.
    #[error("release {0} is already registered with another manifest")]
    ReleaseExists(String),
    /// A consumer client with this id already exists.
    #[error("consumer client {0} already exists")]
    ClientExists(String),
    /// No consumer client has this id.
    #[error("unknown consumer client")]
    ClientUnknown,
    /// An operator API client with this name holds a token that is not revoked.
    #[error("operator API client {0} has a token; revoke it first")]
    OperatorClientExists(String),
    /// A key rotation of this role and sequence is already published: the one a device may
    /// have applied stays.
    #[error("{0} key rotation {1} is already published")]
    KeyRotationExists(String, u64),
    /// No operator API client has this name.
    #[error("no operator API client is named {0:?}")]
    OperatorClientUnknown(String),
    /// An operator account with this name already exists.
    #[error("operator account {0} already exists")]
    UserExists(String),
    /// A transfer window's name is empty or longer than [`MAX_WINDOW_NAME_LEN`].
    #[error("a transfer window's name is 1 to {MAX_WINDOW_NAME_LEN} characters")]
    WindowName,
    /// A transfer window would close before (or when) it opens.
    #[error("a transfer window must close after it opens (opens {opens}, closes {closes})")]
    WindowCloses { opens: Timestamp, closes: Timestamp },
    /// A transfer window would overlap another window of its county: a late batch would be
    /// on time for one and late for the other.
    #[error("the transfer window overlaps window {existing} of county {fylke}")]
    WindowOverlap { fylke: Fylke, existing: i64 },
    /// [`FleetStore::queue_command`] with [`MAX_QUEUED_COMMANDS`] already waiting.
    ///
    /// [`FleetStore::queue_command`]: super::FleetStore::queue_command
    /// [`MAX_QUEUED_COMMANDS`]: super::MAX_QUEUED_COMMANDS
    #[error("{max} commands are already waiting for device {0}", max = super::MAX_QUEUED_COMMANDS)]
    CommandQueueFull(DeviceId),
    /// A school to register (or move) is registered with another site: a school belongs to
    /// one site, and only an operator's move changes which.
    #[error("school {school} is registered with site {site}")]
    SchoolElsewhere { school: String, site: SiteId },
    /// No site is registered with this school (the move command names it by its numbers).
    #[error("no site is registered with school {0}")]
    UnknownSchool(String),
    /// A site's remains were to be removed while it still holds records: `site purge`
    /// deletes the records first.
    #[error("site {0} still holds records")]
    SiteHasRecords(SiteId),
    /// The store was configured with something it cannot use (e.g. a schema name).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The blocking worker running a database call panicked or was cancelled.
    #[error("store worker failed: {0}")]
    Worker(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(error)
    }
}

/// A PostgreSQL error with its causes, each said once.
fn postgres_text(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
