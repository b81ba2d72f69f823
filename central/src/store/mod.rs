//! Central's store: devices, site secrets, chain heads and every roster record with history.
//!
//! It sits at the end of central's ingest: HTTP (mTLS) -> look up the [`DeviceRecord`] and the
//! [`ChainHead`] here -> verify and open the envelope (`skolebro_protocol::envelope::open`) ->
//! [`RecordStore::apply`], which checks the chain again, applies the payload and stores the new
//! head in **one** database transaction (DESIGN decision 3). The re-check inside the
//! transaction is what makes apply exactly-once: two requests carrying the same envelope may
//! both pass `open`, but only one of them finds the head still expecting its sequence number;
//! the other gets [`ApplyOutcome::AlreadyApplied`] and is acked without touching a record.
//!
//! Records are kept per site and record handle, versioned as the county's `elev` table is
//! (DESIGN decision 9): a change closes the current version (`valid_to` set, `is_current`
//! false) and inserts a new current one; a delete only closes. Nothing is ever overwritten, so
//! [`RecordStore::roster_as_of`] can answer what a school's roster was at any earlier time.
//!
//! [`Store`] is the sum of one trait per area, each declared beside the area's types: devices
//! and chain heads (`devices`), roster records and batches (`records`), enrollment tokens
//! (`tokens`), consumer clients (`consumers`), operator accounts and audit (`operators`),
//! releases (`releases`), transfer windows (`windows`), the last heartbeats and command
//! queue of the fleet (`fleet`), the sign-in lock (`sign_in`), the schools each site is
//! registered with (`sites`), the consumer access log (`access_log`), retention's and a
//! site's exit's deletes (`retention`), the operator API's clients (`operator_tokens`),
//! the data keys of sealing at rest (`sealing`), the published key rotations
//! (`key_rotations`), and one pupil's records across sites with the tombstones an erasure
//! leaves (`subjects`). Two backends
//! implement them all:
//! [`SqliteStore`], the embedded default, and [`PostgresStore`], the production store, each
//! split into files named like the areas, so a method's two versions sit in same-named files.
//! What a batch means (which versions to close, which to insert) is decided once, in
//! `planning`; the backends only read current versions and write the plan, so they cannot
//! disagree on semantics. Callers bring the area traits into scope with `use
//! crate::store::prelude::*;`.
//!
//! [`ChainHead`]: skolebro_protocol::ChainHead

mod access_log;
mod columns;
mod consumers;
mod devices;
mod error;
mod fleet;
mod fylke;
mod key_rotations;
mod operator_tokens;
mod operators;
mod paging;
mod planning;
pub mod postgres;
mod records;
mod releases;
mod retention;
pub mod sealing;
mod sign_in;
mod site_history;
mod sites;
pub mod sqlite;
mod subjects;
#[cfg(test)]
mod suite;
mod timestamp;
mod tokens;
mod windows;

pub use access_log::{AccessLogStore, Read, ReadFilter, MAX_LOGGED_FILTER_LEN};
pub use consumers::{ConsumerClient, ConsumerScope, ConsumerStore};
pub use devices::{enrolled_device_id, DeviceRecord, DeviceStore, MAX_ENROLLABLE_SITE_LEN};
pub use error::{StoreError, StoreFuture, MAX_WINDOW_NAME_LEN};
pub use fleet::{
    DeviceActivity, FleetStore, QueuedCommand, DELIVERED_COMMANDS_KEPT, MAX_QUEUED_COMMANDS,
};
pub use fylke::Fylke;
pub use key_rotations::{KeyRotationStore, PublishedRotation};
pub use operator_tokens::{OperatorClient, OperatorTokenStore};
pub use operators::{AuditEntry, AuditFilter, OperatorStore, Role, UiSession, UiUser};
pub use postgres::PostgresStore;
pub(crate) use records::sort_roster;
pub use records::{
    consumer_id, consumer_id_from_hex, AnyRecord, ApplyOutcome, Changes, Compare, ConsumerPage,
    Counts, CurrentRecord, IncomingBatch, PagedRecords, RecordStore, Transfer, Version,
};
pub use releases::{
    DeviceReason, NewRelease, ReleaseRecord, ReleaseReport, ReleaseStore, RolloutChange,
    UpdateCounts, UpdateEvent, UpdateState,
};
pub use retention::{ForgottenSite, RetentionRun, RetentionStore, RetentionTotals};
pub use sealing::SealStore;
pub use sign_in::{SignInAllowance, SignInStore};
pub use site_history::{DayDeviation, SiteHistory, HISTORY_DAYS};
pub use sites::SiteStore;
pub use sqlite::SqliteStore;
pub use subjects::{SubjectStore, Tombstone};
pub use timestamp::Timestamp;
pub use tokens::{token_id, EnrollRequest, Enrolled, NewToken, TokenRecord, TokenStore};
pub use windows::{NewWindow, TransferWindow, WindowState, WindowStore};

/// The area traits, for `use crate::store::prelude::*;` wherever a store method is called:
/// a method of a supertrait of [`Store`] needs its trait in scope, even on `dyn Store`.
pub mod prelude {
    pub use super::{
        AccessLogStore, ConsumerStore, DeviceStore, FleetStore, KeyRotationStore, OperatorStore,
        OperatorTokenStore, RecordStore, ReleaseStore, RetentionStore, SealStore, SignInStore,
        SiteStore, Store, SubjectStore, TokenStore, WindowStore,
    };
}

/// Central's store. One implementation per database; the ingest, the operator interface and
/// the consumer API hold it as `Arc<dyn Store>`.
///
/// Sites and devices are identified by the ids from the envelope header; records by their
/// handle, the HMAC of their source key under the site secret (DESIGN decision 1), which is
/// what a delete carries.
pub trait Store
where
    Self: DeviceStore + TokenStore + RecordStore + ConsumerStore,
    Self: OperatorStore + ReleaseStore + WindowStore,
    Self: FleetStore
        + SignInStore
        + SiteStore
        + AccessLogStore
        + RetentionStore
        + OperatorTokenStore
        + SealStore
        + SubjectStore
        + KeyRotationStore,
{
}

impl<T> Store for T where
    T: DeviceStore
        + TokenStore
        + RecordStore
        + ConsumerStore
        + OperatorStore
        + ReleaseStore
        + WindowStore
        + FleetStore
        + SignInStore
        + SiteStore
        + AccessLogStore
        + RetentionStore
        + OperatorTokenStore
        + SealStore
        + SubjectStore
        + KeyRotationStore
        + ?Sized
{
}
