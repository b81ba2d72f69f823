//! [`FleetStore`] on SQLite: last heartbeats and the command queue, each heartbeat recorded
//! and its commands handed over in one `BEGIN IMMEDIATE` transaction, so a command is
//! delivered once even when two processes share the file; the same transaction adds the
//! heartbeat to the device's day in the site history. The types and the trait are in
//! `crate::store::fleet` and `crate::store::site_history`; the PostgreSQL version of each
//! method is in `postgres/fleet.rs`.

use std::collections::HashMap;

use rusqlite::{params, Connection, TransactionBehavior};
use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::{DeviceId, SiteId};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fleet::{
    delivered, encode, DeviceActivity, FleetRows, FleetStore, COMMANDS_SQL,
    DELIVERED_COMMANDS_KEPT, LAST_BATCHES_SQL, MAX_QUEUED_COMMANDS,
};
use crate::store::site_history::{
    day_groups, HistoryRows, SiteHistory, HISTORY_DAYS, SITE_DAYS_SQL, SITE_DEVIATIONS_SQL,
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
        let held = heartbeat.held.is_some();
        let groups = day_groups(heartbeat);
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
            record_day(&tx, &device, at, held, &groups)?;
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

    fn site_history<'a>(
        &'a self,
        site: &'a SiteId,
        since_day: i64,
    ) -> StoreFuture<'a, SiteHistory> {
        let site = site.as_str().to_owned();
        Box::pin(self.call(move |conn| {
            // One read transaction, so the days and their deviations agree.
            let tx = conn.transaction()?;
            let rows = HistoryRows {
                days: tx
                    .prepare_cached(SITE_DAYS_SQL)?
                    .query_map(params![site, since_day], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<Result<_, _>>()?,
                deviations: tx
                    .prepare_cached(SITE_DEVIATIONS_SQL)?
                    .query_map(params![site, since_day], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?,
            };
            drop(tx);
            rows.into_history()
        }))
    }
}

/// Adds a heartbeat to the device's day: held if any heartbeat that day was, its deviation
/// groups if it is the day's newest; and drops the device's days past [`HISTORY_DAYS`].
fn record_day(
    conn: &Connection,
    device: &str,
    at: Timestamp,
    held: bool,
    groups: &[(String, bool, i64)],
) -> Result<(), StoreError> {
    let day = at.oslo_day();
    let newest: i64 = conn
        .prepare_cached(
            "INSERT INTO device_days (device, day, at, held) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (device, day) DO UPDATE SET at = MAX(device_days.at, excluded.at), \
             held = MAX(device_days.held, excluded.held) RETURNING at",
        )?
        .query_row(params![device, day, at.0, held], |row| row.get(0))?;
    if newest == at.0 {
        conn.prepare_cached("DELETE FROM device_day_deviations WHERE device = ?1 AND day = ?2")?
            .execute(params![device, day])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO device_day_deviations (device, day, code, error, count) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (code, error, count) in groups {
            insert.execute(params![device, day, code, error, count])?;
        }
    }
    let oldest = day - (HISTORY_DAYS - 1);
    for table in ["device_days", "device_day_deviations"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE device = ?1 AND day < ?2"
        ))?
        .execute(params![device, oldest])?;
    }
    Ok(())
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
