//! The data keys of sealing at rest (`crate::seal`) as the store keeps them, and the key work
//! done through the store: unlocking at start-up, rotating the key-encryption key (rewrap
//! only), rotating the records key, and the reseal job that moves rows onto the active key
//! in bounded batches. Both backends implement [`SealStore`]; the functions here are written
//! once against it.
//!
//! Start-up ([`unlock`]) comes right after the store opens: it makes the first keys of a new
//! database, or opens the stored ones with the KEK, refusing a KEK that did not wrap them.
//! From then on the store seals what it writes and opens what it reads.

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
    /// (and nothing removed) otherwise.
    fn retire_seal_key(&self, key_id: u32) -> StoreFuture<'_, bool>;

    /// Puts `sealer` in force for every later write and read of records.
    fn set_sealer(&self, sealer: Arc<Sealer>);

    /// Reseals up to `limit` rows of students and enrollments with an id above `after` that
    /// are not sealed under the active records key (clear rows from before sealing among
    /// them), in one transaction. Returns the last id visited, or `None` when no such row is
    /// left after `after` (or the store holds no key). Resumable from any id: a row already
    /// under the active key is not visited again.
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

/// The reseal job in the background of `serve`: after a records-key rotation that was
/// interrupted, moves the rows still under an older key onto the active one, one batch at a
/// time with a pause between, so applies and reads go on meanwhile. Ends when no row is
/// left; logs and ends on an error (the next start resumes).
pub fn spawn_reseal(
    store: Arc<dyn Store>,
    pause: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut after = 0;
        let mut resealed: u64 = 0;
        loop {
            match store.reseal(after, RESEAL_BATCH).await {
                Ok(Some(last)) => {
                    after = last;
                    resealed += u64::from(RESEAL_BATCH);
                }
                Ok(None) => match store.rows_to_reseal().await {
                    // Rows skipped while an apply held them: another pass.
                    Ok(left) if left > 0 => after = 0,
                    Ok(_) => {
                        if resealed > 0 {
                            tracing::info!("reseal job done: every record is under the active key");
                        }
                        return;
                    }
                    Err(error) => {
                        tracing::error!(%error, "reseal job stopped; the next start resumes it");
                        return;
                    }
                },
                Err(error) => {
                    tracing::error!(%error, "reseal job stopped; the next start resumes it");
                    return;
                }
            }
            tokio::time::sleep(pause).await;
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
