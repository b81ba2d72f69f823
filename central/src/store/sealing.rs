//! The data keys of sealing at rest (`crate::seal`) as the store keeps them, and the key work
//! done through the store: unlocking at start-up, rotating the key-encryption key (rewrap
//! only), rotating the records key, and the reseal job that moves rows onto the active key
//! in bounded batches. Both backends implement [`SealStore`]; the functions here are written
//! once against it.
//!
//! Start-up ([`unlock`]) comes right after the store opens: it makes the first keys of a new
//! database, or opens the stored ones with the KEK, refusing a KEK that did not wrap them.
//! From then on the store seals what it writes and opens what it reads.
//!
//! A records key may be rotated while central serves (`keys rotate-dek` from another
//! process, or several centrals on one PostgreSQL): each running `serve` keeps a follower
//! ([`spawn_follower`]) that asks the store for the active key id every few seconds, loads
//! the keys again when it changed, and then reseals in the background. A row an instance
//! wrote under the old key before it noticed is picked up by its own passes afterwards,
//! since a pass visits every row not under the active key.

use std::sync::Arc;

use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;
use super::Store;
use crate::seal::{DataKey, Kek, KeyPurpose, SealError, SealScope, Sealer, WrappedKey};

/// The keys of sealing at rest in the database, and the rows sealed under them.
pub trait SealStore: Send + Sync {
    /// Every data key the database holds, wrapped, by id.
    fn seal_keys(&self) -> StoreFuture<'_, Vec<WrappedKey>>;

    /// Adds wrapped keys in one transaction; an active records key among them takes over
    /// from the one active before.
    fn add_seal_keys(&self, keys: Vec<WrappedKey>, at: Timestamp) -> StoreFuture<'_, ()>;

    /// Replaces the wrapped form and KEK id of the keys named, in one transaction: a KEK
    /// rotation, which touches no record.
    fn rewrap_seal_keys(&self, keys: Vec<WrappedKey>) -> StoreFuture<'_, ()>;

    /// Removes an inactive records key, if no row is sealed under it any more; `false`
    /// (and nothing removed) otherwise. An apply sealing under the key at the same time
    /// either commits first (and the key stays) or is refused ([`SealError::UnknownKey`]).
    fn retire_seal_key(&self, key_id: u32) -> StoreFuture<'_, bool>;

    /// The id of the records key stored as active: one small row, cheap enough to ask every
    /// few seconds, so that a running central notices a rotation made by another process.
    fn active_records_key(&self) -> StoreFuture<'_, Option<u32>>;

    /// The records key this handle seals new rows under (`None`: rows are written clear).
    fn records_key_in_force(&self) -> Option<u32>;

    /// Puts `sealer` in force for every later write and read of records.
    fn set_sealer(&self, sealer: Arc<Sealer>);

    /// Reseals up to `limit` rows of students and enrollments with an id above `after` that
    /// are not sealed under the active records key (clear rows from before sealing among
    /// them), in one transaction. Returns the last id visited, or `None` when no such row is
    /// left after `after` (or the store holds no key). Resumable from any id: a row already
    /// under the active key is not visited again. Refused with [`SealError::Rotated`] when
    /// the key in force is no longer the stored active one: resealing under it would undo
    /// another process's rotation.
    fn reseal(&self, after: i64, limit: u32) -> StoreFuture<'_, Option<i64>>;

    /// How many rows of students and enrollments are not under the active records key.
    fn rows_to_reseal(&self) -> StoreFuture<'_, u64>;

    /// Whether any row of a student or an enrollment is stored in clear (written before
    /// sealing, or by a central without a key).
    fn has_clear_records(&self) -> StoreFuture<'_, bool>;
}

/// Rows per reseal transaction: small enough that an apply waiting for the write lock
/// waits milliseconds, large enough that a county's rows take seconds, not minutes.
pub const RESEAL_BATCH: u32 = 2_000;

/// Opens the store's data keys with `kek` (making them on a database that has none) and puts
/// them in force. Fails with [`SealError::WrongKek`] when `kek` did not wrap them, so central
/// refuses to start rather than write rows nobody can read with the stored keys.
pub async fn unlock(
    store: &dyn Store,
    kek: &Kek,
    scope: SealScope,
    at: Timestamp,
) -> Result<Arc<Sealer>, StoreError> {
    let mut stored = store.seal_keys().await?;
    if stored.is_empty() {
        let records = DataKey::generate(1, KeyPurpose::Records)?;
        let lookup = DataKey::generate(2, KeyPurpose::Lookup)?;
        let new = vec![wrapped(kek, &records, true)?, wrapped(kek, &lookup, false)?];
        let added = store.add_seal_keys(new, at).await;
        stored = store.seal_keys().await?;
        // Another central sharing the database may have made them first: its keys count.
        if stored.is_empty() {
            added?;
        }
    }
    let sealer = Arc::new(open_keys(kek, &stored, scope)?);
    store.set_sealer(Arc::clone(&sealer));
    Ok(sealer)
}

/// Makes a new records key, active from now on, and puts it in force. The rows sealed under
/// the old one stay readable; [`reseal`] moves them over.
pub async fn rotate_records_key(
    store: &dyn Store,
    kek: &Kek,
    scope: SealScope,
    at: Timestamp,
) -> Result<u32, StoreError> {
    let stored = store.seal_keys().await?;
    // Checks the KEK before adding a key under it.
    open_keys(kek, &stored, scope)?;
    let id = stored.iter().map(|key| key.id).max().unwrap_or(0) + 1;
    let key = DataKey::generate(id, KeyPurpose::Records)?;
    store
        .add_seal_keys(vec![wrapped(kek, &key, true)?], at)
        .await?;
    unlock(store, kek, scope, at).await?;
    Ok(id)
}

/// Rewraps every data key from `old` to `new`. No record is touched; afterwards only `new`
/// opens the database.
pub async fn rotate_kek(store: &dyn Store, old: &Kek, new: &Kek) -> Result<(), StoreError> {
    let stored = store.seal_keys().await?;
    let mut rewrapped = Vec::with_capacity(stored.len());
    for key in &stored {
        let clear = old
            .unwrap(key.id, key.purpose, &key.wrapped)
            .ok_or_else(|| wrong_kek(old, key))?;
        rewrapped.push(wrapped(new, &clear, key.active)?);
    }
    store.rewrap_seal_keys(rewrapped).await
}

/// Runs the reseal job from the start: batches of `batch` rows, at most `max_batches` of
/// them (`None`: until no row is left). Returns how many rows are left. Stopping (by the
/// bound, an error or the process ending) loses nothing: each batch commits on its own and
/// the next run finds the rows still to do.
pub async fn reseal(
    store: &dyn Store,
    batch: u32,
    max_batches: Option<u64>,
) -> Result<u64, StoreError> {
    let mut after = 0;
    let mut done = 0;
    while max_batches.is_none_or(|max| done < max) {
        match store.reseal(after, batch.max(1)).await? {
            Some(last) => after = last,
            None => break,
        }
        done += 1;
    }
    store.rows_to_reseal().await
}

/// How often a running central asks the store whether the records key changed.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads the keys again when the store's active records key is not the one in force (another
/// process rotated it). Returns whether it did.
pub async fn follow(store: &dyn Store, kek: &Kek, scope: SealScope) -> Result<bool, StoreError> {
    let stored = store.active_records_key().await?;
    if stored.is_none() || stored == store.records_key_in_force() {
        return Ok(false);
    }
    unlock(store, kek, scope, Timestamp::now()).await?;
    Ok(true)
}

/// Reseals every row not under the active records key, one batch at a time with `pause`
/// between so applies and reads go on meanwhile, pass after pass until none is left (a pass
/// skips rows an apply holds). Returns whether there was any. Stopping loses nothing: each
/// batch commits on its own.
pub async fn reseal_in_background(
    store: &dyn Store,
    pause: std::time::Duration,
) -> Result<bool, StoreError> {
    let mut passes = 0;
    while store.rows_to_reseal().await? > 0 {
        let mut after = 0;
        while let Some(last) = store.reseal(after, RESEAL_BATCH).await? {
            after = last;
            tokio::time::sleep(pause).await;
        }
        passes += 1;
        // Rows an apply held were skipped: the next pass comes after a pause, not at once.
        tokio::time::sleep(pause).await;
    }
    Ok(passes > 0)
}

/// The follower of a running `serve`: every [`FOLLOW_EVERY`], puts a records key rotated
/// by another process in force ([`follow`]); at start and after each rotation it noticed,
/// reseals the rows left under older keys ([`reseal_in_background`]). An error is logged
/// and the work tried again at the next tick; the task runs until it is aborted.
pub fn spawn_follower(
    store: Arc<dyn Store>,
    kek: Kek,
    scope: SealScope,
    pause: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(FOLLOW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resealing = true;
        loop {
            ticks.tick().await;
            match follow(store.as_ref(), &kek, scope).await {
                Ok(true) => {
                    tracing::info!(
                        key = store.records_key_in_force(),
                        "a new records key is active: new rows are sealed under it"
                    );
                    resealing = true;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot follow the records key; trying again");
                }
            }
            if resealing {
                match reseal_in_background(store.as_ref(), pause).await {
                    Ok(resealed) => {
                        if resealed {
                            tracing::info!("every record is under the active records key");
                        }
                        resealing = false;
                    }
                    Err(error) => tracing::warn!(%error, "reseal interrupted; trying again"),
                }
            }
        }
    })
}

/// The sealer for the stored keys, opened with `kek`.
fn open_keys(kek: &Kek, stored: &[WrappedKey], scope: SealScope) -> Result<Sealer, StoreError> {
    let mut active = None;
    let mut records = Vec::new();
    let mut lookup = None;
    for key in stored {
        let clear = kek
            .unwrap(key.id, key.purpose, &key.wrapped)
            .ok_or_else(|| wrong_kek(kek, key))?;
        match (key.purpose, key.active) {
            (KeyPurpose::Records, true) => active = Some(clear),
            (KeyPurpose::Records, false) => records.push(clear),
            (KeyPurpose::Lookup, _) => lookup = Some(clear),
        }
    }
    match (active, lookup) {
        (Some(active), Some(lookup)) => Ok(Sealer::new(&active, &records, &lookup, scope)?),
        _ => Err(StoreError::Corrupt(
            "seal_keys lacks an active records key or a lookup key".to_owned(),
        )),
    }
}

fn wrapped(kek: &Kek, key: &DataKey, active: bool) -> Result<WrappedKey, SealError> {
    Ok(WrappedKey {
        id: key.id,
        purpose: key.purpose,
        wrapped: kek.wrap(key)?,
        kek: kek.id(),
        active,
    })
}

fn wrong_kek(kek: &Kek, key: &WrappedKey) -> StoreError {
    StoreError::Seal(SealError::WrongKek {
        given: kek.id(),
        stored: key.kek.clone(),
    })
}
