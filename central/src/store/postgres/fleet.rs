//! [`FleetStore`] on PostgreSQL: last heartbeats and the command queue, shared by every
//! central process on the database. A heartbeat takes its commands with one `UPDATE …
//! RETURNING` on the waiting rows: a second heartbeat of the same device on another central
//! waits for those row locks, then finds them delivered and skips them, so each command is
//! delivered once. Queuing counts and inserts under a per-device advisory lock, so two
//! centrals cannot both add the last free place. The types and the trait are in
//! `crate::store::fleet`; the SQLite version of each method is in `sqlite/fleet.rs`.

use std::collections::HashMap;

use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::DeviceId;

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fleet::{
    delivered, encode, DeviceActivity, FleetRows, FleetStore, COMMANDS_SQL,
    DELIVERED_COMMANDS_KEPT, LAST_BATCHES_SQL, MAX_QUEUED_COMMANDS,
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
}
