//! [`FleetStore`] on SQLite: last heartbeats and the command queue, each heartbeat recorded
//! and its commands handed over in one `BEGIN IMMEDIATE` transaction, so a command is
//! delivered once even when two processes share the file. The types and the trait are in
//! `crate::store::fleet`; the PostgreSQL version of each method is in `postgres/fleet.rs`.

use std::collections::HashMap;

use rusqlite::{params, Connection, TransactionBehavior};
use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::DeviceId;

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fleet::{
    delivered, encode, DeviceActivity, FleetRows, FleetStore, COMMANDS_SQL,
    DELIVERED_COMMANDS_KEPT, LAST_BATCHES_SQL, MAX_QUEUED_COMMANDS,
};
use crate::store::timestamp::Timestamp;

impl FleetStore for SqliteStore {
    fn record_heartbeat<'a>(
        &'a self,
        device: &'a DeviceId,
        heartbeat: &'a Heartbeat,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<Command>> {
        let device = device.as_str().to_owned();
        let heartbeat = encode(heartbeat);
        Box::pin(self.call(move |conn| {
            let heartbeat = heartbeat?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO device_heartbeats (device, at, heartbeat) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (device) DO UPDATE SET at = excluded.at, heartbeat = excluded.heartbeat \
                 WHERE device_heartbeats.at <= excluded.at",
            )?
            .execute(params![device, at.0, heartbeat])?;
            let taken = tx
                .prepare_cached(
                    "UPDATE device_commands SET delivered = ?2 \
                     WHERE device = ?1 AND delivered IS NULL RETURNING id, command",
                )?
                .query_map(params![device, at.0], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<Vec<(i64, String)>, _>>()?;
            if !taken.is_empty() {
                prune_delivered(&tx, &device)?;
            }
            let commands = delivered(taken)?;
            tx.commit()?;
            Ok(commands)
        }))
    }

    fn queue_command<'a>(
        &'a self,
        device: &'a DeviceId,
        command: &'a Command,
        at: Timestamp,
    ) -> StoreFuture<'a, usize> {
        let device = device.clone();
        let command = encode(command);
        Box::pin(self.call(move |conn| {
            let command = command?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let waiting: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM device_commands WHERE device = ?1 AND delivered IS NULL",
                )?
                .query_row([device.as_str()], |row| row.get(0))?;
            let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
            if waiting >= MAX_QUEUED_COMMANDS {
                return Err(StoreError::CommandQueueFull(device));
            }
            tx.prepare_cached(
                "INSERT INTO device_commands (device, command, queued) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![device.as_str(), command, at.0])?;
            tx.commit()?;
            Ok(waiting + 1)
        }))
    }

    fn fleet_activity(&self) -> StoreFuture<'_, HashMap<DeviceId, DeviceActivity>> {
        Box::pin(self.call(|conn| {
            // One read transaction, so the three reads agree with each other.
            let tx = conn.transaction()?;
            let rows = FleetRows {
                heartbeats: tx
                    .prepare_cached("SELECT device, at, heartbeat FROM device_heartbeats")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect::<Result<_, _>>()?,
                commands: tx
                    .prepare_cached(COMMANDS_SQL)?
                    .query_map([], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?,
                last_batches: tx
                    .prepare_cached(LAST_BATCHES_SQL)?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect::<Result<_, _>>()?,
            };
            drop(tx);
            rows.into_activity()
        }))
    }
}

/// Drops the device's delivered commands beyond the newest [`DELIVERED_COMMANDS_KEPT`].
fn prune_delivered(conn: &Connection, device: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM device_commands WHERE device = ?1 AND delivered IS NOT NULL AND id NOT IN \
         (SELECT id FROM device_commands WHERE device = ?1 AND delivered IS NOT NULL \
          ORDER BY id DESC LIMIT ?2)",
    )?
    .execute(params![device, DELIVERED_COMMANDS_KEPT as i64])?;
    Ok(())
}
