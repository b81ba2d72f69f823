//! [`DeviceStore`] on SQLite: registering and revoking devices, their chain heads and site
//! secrets, and the device and secret reads `records` and `tokens` reuse inside their
//! transactions. The types and the trait are in `crate::store::devices`; the PostgreSQL version
//! of each method is in `postgres/devices.rs`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use skolebro_protocol::{ChainHead, DeviceId, DeviceVerifyingKey, SiteId, SiteSecret};

use super::SqliteStore;
use crate::store::columns::{bytes32, seq_from_db, stored_device};
use crate::store::devices::{device_record, DeviceRecord, DeviceStore};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::records::DeviceState;

pub(super) fn read_device(
    conn: &Connection,
    device: &DeviceId,
) -> Result<Option<DeviceState>, StoreError> {
    let row = conn
        .prepare_cached("SELECT site, revoked, next_seq, prev FROM devices WHERE device = ?1")?
        .query_row([device.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    row.map(|(site, revoked, next_seq, prev)| {
        Ok(DeviceState {
            site,
            revoked,
            head: ChainHead {
                next_seq: seq_from_db(next_seq)?,
                prev: bytes32(&prev, "chain head digest")?,
            },
        })
    })
    .transpose()
}

pub(super) fn read_secret(
    conn: &Connection,
    site: &SiteId,
) -> Result<Option<SiteSecret>, StoreError> {
    let secret: Option<Vec<u8>> = conn
        .prepare_cached("SELECT secret FROM sites WHERE site = ?1")?
        .query_row([site.as_str()], |row| row.get(0))
        .optional()?;
    secret
        .map(|bytes| Ok(SiteSecret::from_bytes(bytes32(&bytes, "site secret")?)))
        .transpose()
}

/// Registers a device inside a transaction, or finds it registered with the same site and
/// key (anything else is [`StoreError::DeviceConflict`]). Returns whether the device is
/// revoked.
pub(super) fn register(
    tx: &Connection,
    device: &DeviceId,
    site: &SiteId,
    key: &[u8; 32],
) -> Result<bool, StoreError> {
    let existing: Option<(String, Vec<u8>, bool)> = tx
        .query_row(
            "SELECT site, verifying_key, revoked FROM devices WHERE device = ?1",
            [device.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    match existing {
        Some((stored_site, stored_key, revoked))
            if stored_site == site.as_str() && stored_key == key =>
        {
            Ok(revoked)
        }
        Some(_) => Err(StoreError::DeviceConflict(device.clone())),
        None => {
            tx.execute(
                "INSERT INTO devices (device, site, verifying_key) VALUES (?1, ?2, ?3)",
                params![device.as_str(), site.as_str(), &key[..]],
            )?;
            Ok(false)
        }
    }
}

impl DeviceStore for SqliteStore {
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()> {
        let device = device.clone();
        let site = site.clone();
        let key = verifying_key.to_bytes();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            register(&tx, &device, &site, &key)?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT device, site, verifying_key, revoked FROM devices ORDER BY device",
            )?;
            let mut rows = statement.query([])?;
            let mut devices = Vec::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let device = stored_device(&id)?;
                let record = device_record(
                    &row.get::<_, String>(1)?,
                    &row.get::<_, Vec<u8>>(2)?,
                    row.get(3)?,
                )?;
                devices.push((device, record));
            }
            Ok(devices)
        }))
    }

    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let updated = conn.execute(
                "UPDATE devices SET revoked = 1 WHERE device = ?1",
                [device.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::UnknownDevice(device));
            }
            Ok(())
        }))
    }

    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let row: Option<(String, Vec<u8>, bool)> = conn
                .query_row(
                    "SELECT site, verifying_key, revoked FROM devices WHERE device = ?1",
                    [device.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            row.map(|(site, key, revoked)| device_record(&site, &key, revoked))
                .transpose()
        }))
    }

    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            Ok(read_device(conn, &device)?.map_or_else(ChainHead::genesis, |state| state.head))
        }))
    }

    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()> {
        let site = site.clone();
        let secret = secret.clone();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match read_secret(&tx, &site)? {
                Some(stored) if stored == secret => return Ok(()),
                Some(_) => {
                    // Both halves, so each can use its partial index.
                    let in_use: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM records WHERE site = ?1 AND is_current) \
                         OR EXISTS (SELECT 1 FROM records WHERE site = ?1 AND NOT is_current)",
                        [site.as_str()],
                        |row| row.get(0),
                    )?;
                    if in_use {
                        return Err(StoreError::SiteSecretInUse(site));
                    }
                    tx.execute(
                        "UPDATE sites SET secret = ?2 WHERE site = ?1",
                        params![site.as_str(), &secret.as_bytes()[..]],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO sites (site, secret) VALUES (?1, ?2)",
                        params![site.as_str(), &secret.as_bytes()[..]],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| read_secret(conn, &site)))
    }
}
