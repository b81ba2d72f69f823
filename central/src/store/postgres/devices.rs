//! [`DeviceStore`] on PostgreSQL: registering and revoking devices, their chain heads and site
//! secrets, and the device and secret reads `records` and `tokens` reuse inside their
//! transactions. The types and the trait are in `crate::store::devices`; the SQLite version of
//! each method is in `sqlite/devices.rs`.

use skolebro_protocol::{ChainHead, DeviceId, DeviceVerifyingKey, SiteId, SiteSecret};
use tokio_postgres::GenericClient;

use super::PostgresStore;
use crate::store::columns::{bytes32, seq_from_db, stored_device};
use crate::store::devices::{device_record, DeviceRecord, DeviceStore};
use crate::store::error::{StoreError, StoreFuture};
use crate::store::records::DeviceState;

pub(super) async fn read_device<C: GenericClient + Sync>(
    client: &C,
    device: &DeviceId,
    for_update: bool,
) -> Result<Option<DeviceState>, StoreError> {
    let sql = if for_update {
        "SELECT site, revoked, next_seq, prev FROM devices WHERE device = $1 FOR UPDATE"
    } else {
        "SELECT site, revoked, next_seq, prev FROM devices WHERE device = $1"
    };
    let Some(row) = client.query_opt(sql, &[&device.as_str()]).await? else {
        return Ok(None);
    };
    Ok(Some(DeviceState {
        site: row.try_get(0)?,
        revoked: row.try_get(1)?,
        head: ChainHead {
            next_seq: seq_from_db(row.try_get(2)?)?,
            prev: bytes32(row.try_get(3)?, "chain head digest")?,
        },
    }))
}

pub(super) async fn read_secret<C: GenericClient + Sync>(
    client: &C,
    site: &SiteId,
    for_update: bool,
) -> Result<Option<SiteSecret>, StoreError> {
    let sql = if for_update {
        "SELECT secret FROM sites WHERE site = $1 FOR UPDATE"
    } else {
        "SELECT secret FROM sites WHERE site = $1"
    };
    let Some(row) = client.query_opt(sql, &[&site.as_str()]).await? else {
        return Ok(None);
    };
    Ok(Some(SiteSecret::from_bytes(bytes32(
        row.try_get(0)?,
        "site secret",
    )?)))
}

/// Registers a device inside a transaction, or finds it registered with the same site and
/// key (anything else is [`StoreError::DeviceConflict`]), and locks its row. Returns whether
/// the device is revoked.
///
/// `ON CONFLICT DO NOTHING` and a locking re-read: two enrollments of one device at once
/// neither fail on the primary key nor both believe they registered.
pub(super) async fn register<C: GenericClient + Sync>(
    client: &C,
    device: &DeviceId,
    site: &SiteId,
    key: &[u8; 32],
) -> Result<bool, StoreError> {
    client
        .execute(
            "INSERT INTO devices (device, site, verifying_key) VALUES ($1, $2, $3) \
             ON CONFLICT (device) DO NOTHING",
            &[&device.as_str(), &site.as_str(), &&key[..]],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT site, verifying_key, revoked FROM devices WHERE device = $1 FOR UPDATE",
            &[&device.as_str()],
        )
        .await?;
    let stored_site: &str = row.try_get(0)?;
    let stored_key: &[u8] = row.try_get(1)?;
    if stored_site != site.as_str() || stored_key != key {
        return Err(StoreError::DeviceConflict(device.clone()));
    }
    Ok(row.try_get(2)?)
}

impl DeviceStore for PostgresStore {
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            register(&tx, device, site, &verifying_key.to_bytes()).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT device, site, verifying_key, revoked FROM devices ORDER BY device",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let id: &str = row.try_get(0)?;
                    let device = stored_device(id)?;
                    let record = device_record(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?;
                    Ok((device, record))
                })
                .collect()
        })
    }

    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let updated = conn
                .execute(
                    "UPDATE devices SET revoked = true WHERE device = $1",
                    &[&device.as_str()],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownDevice(device.clone()));
            }
            Ok(())
        })
    }

    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let Some(row) = conn
                .query_opt(
                    "SELECT site, verifying_key, revoked FROM devices WHERE device = $1",
                    &[&device.as_str()],
                )
                .await?
            else {
                return Ok(None);
            };
            device_record(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?).map(Some)
        })
    }

    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            Ok(read_device(&*conn, device, false)
                .await?
                .map_or_else(ChainHead::genesis, |state| state.head))
        })
    }

    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO sites (site, secret) VALUES ($1, $2) ON CONFLICT (site) DO NOTHING",
                &[&site.as_str(), &&secret.as_bytes()[..]],
            )
            .await?;
            // The site row is locked from here on, as apply locks it: no batch can add
            // records between the check below and the update.
            match read_secret(&tx, site, true).await? {
                Some(stored) if stored == *secret => {}
                _ => {
                    // Both halves, so each can use its partial index.
                    let in_use: bool = tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM records WHERE site = $1 AND is_current) \
                             OR EXISTS (SELECT 1 FROM records WHERE site = $1 AND NOT is_current)",
                            &[&site.as_str()],
                        )
                        .await?
                        .try_get(0)?;
                    if in_use {
                        return Err(StoreError::SiteSecretInUse(site.clone()));
                    }
                    tx.execute(
                        "UPDATE sites SET secret = $2 WHERE site = $1",
                        &[&site.as_str(), &&secret.as_bytes()[..]],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_secret(&*conn, site, false).await
        })
    }
}
