//! [`FleetStore`] on PostgreSQL: last heartbeats and the command queue, shared by every
//! central process on the database. A heartbeat takes its commands with one `UPDATE …
//! RETURNING` on the waiting rows: a second heartbeat of the same device on another central
//! waits for those row locks, then finds them delivered and skips them, so each command is
//! delivered once. Queuing counts and inserts under a per-device advisory lock, so two
//! centrals cannot both add the last free place. A heartbeat adds itself to the device's day
//! in the site history in the same transaction; the upsert of the day's row locks it, so two
//! heartbeats of one device and day take turns deciding which is the day's newest. The types
//! and the trait are in `crate::store::fleet` and `crate::store::site_history`; the SQLite
//! version of each method is in `sqlite/fleet.rs`.

use std::collections::HashMap;

use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::{DeviceId, SiteId};

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fleet::{
    delivered, encode, DeviceActivity, FleetRows, FleetStore, COMMANDS_SQL,
    DELIVERED_COMMANDS_KEPT, LAST_BATCHES_SQL, MAX_QUEUED_COMMANDS,
};
use crate::store::site_history::{
    day_groups, HistoryRows, SiteHistory, HISTORY_DAYS, SITE_DAYS_SQL, SITE_DEVIATIONS_SQL,
};
use crate::store::timestamp::Timestamp;

impl FleetStore for PostgresStore {
    fn record_heartbeat<'a>(
        &'a self,
        device: &'a DeviceId,
        heartbeat: &'a Heartbeat,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<Command>> {
        Box::pin(async move {
            let held = heartbeat.held.is_some();
            let groups = day_groups(heartbeat);
            let heartbeat = encode(heartbeat)?;
            let device = device.as_str();
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO device_heartbeats (device, at, heartbeat) VALUES ($1, $2, $3) \
                 ON CONFLICT (device) DO UPDATE SET at = EXCLUDED.at, heartbeat = EXCLUDED.heartbeat \
                 WHERE device_heartbeats.at <= EXCLUDED.at",
                &[&device, &at.0, &heartbeat],
            )
            .await?;
            record_day(&tx, device, at, held, &groups).await?;
            let taken = tx
                .query(
                    "UPDATE device_commands SET delivered = $2 \
                     WHERE device = $1 AND delivered IS NULL RETURNING id, command",
                    &[&device, &at.0],
                )
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(i64, String)>, StoreError>>()?;
            if !taken.is_empty() {
                let kept = DELIVERED_COMMANDS_KEPT as i64;
                tx.execute(
                    "DELETE FROM device_commands WHERE device = $1 AND delivered IS NOT NULL \
                     AND id NOT IN (SELECT id FROM device_commands \
                     WHERE device = $1 AND delivered IS NOT NULL ORDER BY id DESC LIMIT $2)",
                    &[&device, &kept],
                )
                .await?;
            }
            let commands = delivered(taken)?;
            tx.commit().await?;
            Ok(commands)
        })
    }

    fn queue_command<'a>(
        &'a self,
        device: &'a DeviceId,
        command: &'a Command,
        at: Timestamp,
    ) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let encoded = encode(command)?;
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            // Not the device's row: a batch apply holds that one for its whole transaction.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('skolebro-commands:' || $1::text))",
                &[&device.as_str()],
            )
            .await?;
            let waiting: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM device_commands WHERE device = $1 AND delivered IS NULL",
                    &[&device.as_str()],
                )
                .await?
                .try_get(0)?;
            let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
            if waiting >= MAX_QUEUED_COMMANDS {
                return Err(StoreError::CommandQueueFull(device.clone()));
            }
            tx.execute(
                "INSERT INTO device_commands (device, command, queued) VALUES ($1, $2, $3)",
                &[&device.as_str(), &encoded, &at.0],
            )
            .await?;
            tx.commit().await?;
            Ok(waiting + 1)
        })
    }

    fn fleet_activity(&self) -> StoreFuture<'_, HashMap<DeviceId, DeviceActivity>> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            // One snapshot for the three reads, so they agree with each other.
            let tx = conn
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut rows = FleetRows::default();
            for row in tx
                .query("SELECT device, at, heartbeat FROM device_heartbeats", &[])
                .await?
            {
                rows.heartbeats
                    .push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
            for row in tx.query(COMMANDS_SQL, &[]).await? {
                rows.commands.push((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
            for row in tx.query(LAST_BATCHES_SQL, &[]).await? {
                rows.last_batches
                    .push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
            tx.commit().await?;
            rows.into_activity()
        })
    }

    fn site_history<'a>(
        &'a self,
        site: &'a SiteId,
        since_day: i64,
    ) -> StoreFuture<'a, SiteHistory> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            // One snapshot, so the days and their deviations agree.
            let tx = conn
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let site = site.as_str();
            let mut rows = HistoryRows::default();
            for row in tx.query(SITE_DAYS_SQL, &[&site, &since_day]).await? {
                rows.days.push((row.try_get(0)?, row.try_get(1)?));
            }
            for row in tx.query(SITE_DEVIATIONS_SQL, &[&site, &since_day]).await? {
                rows.deviations.push((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
            tx.commit().await?;
            rows.into_history()
        })
    }
}

/// Adds a heartbeat to the device's day: held if any heartbeat that day was, its deviation
/// groups if it is the day's newest; and drops the device's days past [`HISTORY_DAYS`].
async fn record_day(
    tx: &tokio_postgres::Transaction<'_>,
    device: &str,
    at: Timestamp,
    held: bool,
    groups: &[(String, bool, i64)],
) -> Result<(), StoreError> {
    let day = at.oslo_day();
    let newest: i64 = tx
        .query_one(
            "INSERT INTO device_days (device, day, at, held) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device, day) DO UPDATE SET at = GREATEST(device_days.at, EXCLUDED.at), \
             held = device_days.held OR EXCLUDED.held RETURNING at",
            &[&device, &day, &at.0, &held],
        )
        .await?
        .try_get(0)?;
    if newest == at.0 {
        tx.execute(
            "DELETE FROM device_day_deviations WHERE device = $1 AND day = $2",
            &[&device, &day],
        )
        .await?;
        for (code, error, count) in groups {
            tx.execute(
                "INSERT INTO device_day_deviations (device, day, code, error, count) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&device, &day, code, error, count],
            )
            .await?;
        }
    }
    let oldest = day - (HISTORY_DAYS - 1);
    for table in ["device_days", "device_day_deviations"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE device = $1 AND day < $2"),
            &[&device, &oldest],
        )
        .await?;
    }
    Ok(())
}
