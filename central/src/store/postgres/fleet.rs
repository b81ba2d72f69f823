//! [`FleetStore`] on PostgreSQL: last heartbeats and the command queue, shared by every
//! central process on the database. A heartbeat takes its commands with one `UPDATE …
//! RETURNING` on the waiting rows: a second heartbeat of the same device on another central
//! waits for those row locks, then finds them delivered and skips them, so each command is
//! delivered once. Queuing counts and inserts under a per-device advisory lock, so two
//! centrals cannot both add the last free place. A heartbeat adds itself to the device's day
//! in the site history in the same transaction; the upsert of the day's row locks it, so two
//! heartbeats of one device and day take turns deciding which is the day's newest. A
//! heartbeat is two statements, three when it takes commands (plus BEGIN and COMMIT), each
//! one round trip: it arrives during the night's applies and should not wait long on
//! anything (docs/BENCHMARKS.md). The types
//! and the trait are in `crate::store::fleet` and `crate::store::site_history`; the SQLite
//! version of each method is in `sqlite/fleet.rs`.

use std::collections::HashMap;

use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::{DeviceId, SiteId};
use tokio_postgres::types::Type;

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
            let day = at.oslo_day();
            let oldest = day - (HISTORY_DAYS - 1);
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let rows = tx
                .query_typed(
                    HEARTBEAT_SQL,
                    &[
                        (&device, Type::TEXT),
                        (&at.0, Type::INT8),
                        (&heartbeat, Type::TEXT),
                        (&day, Type::INT8),
                        (&held, Type::BOOL),
                        (&oldest, Type::INT8),
                    ],
                )
                .await?;
            let mut newest = None;
            let mut taken = Vec::new();
            for row in &rows {
                newest = Some(row.try_get::<_, i64>(0)?);
                if let Some(id) = row.try_get::<_, Option<i64>>(1)? {
                    taken.push((id, row.try_get::<_, String>(2)?));
                }
            }
            if newest == Some(at.0) {
                replace_day_codes(&tx, device, day, &groups).await?;
            }
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

/// A heartbeat's writes but its deviation codes, in one statement (one round trip, sent
/// with its parameters' types so nothing is prepared first): the last heartbeat, the
/// device's day (held if any heartbeat that day was; its newest heartbeat's time, returned,
/// which tells whether this one's codes are the day's), the device's days past
/// [`HISTORY_DAYS`] dropped, and its waiting commands taken. One row per command taken, or
/// one with no command. `$1` device, `$2` time, `$3` heartbeat, `$4` Oslo day, `$5` held,
/// `$6` the oldest day kept. The parts touch different rows, so they do not depend on the
/// order PostgreSQL runs them in.
const HEARTBEAT_SQL: &str = "WITH beat AS (\
     INSERT INTO device_heartbeats (device, at, heartbeat) VALUES ($1, $2, $3) \
     ON CONFLICT (device) DO UPDATE SET at = EXCLUDED.at, heartbeat = EXCLUDED.heartbeat \
     WHERE device_heartbeats.at <= EXCLUDED.at), \
     day AS (INSERT INTO device_days (device, day, at, held) VALUES ($1, $4, $2, $5) \
     ON CONFLICT (device, day) DO UPDATE SET at = GREATEST(device_days.at, EXCLUDED.at), \
     held = device_days.held OR EXCLUDED.held RETURNING at), \
     old_days AS (DELETE FROM device_days WHERE device = $1 AND day < $6), \
     old_deviations AS (DELETE FROM device_day_deviations WHERE device = $1 AND day < $6), \
     taken AS (UPDATE device_commands SET delivered = $2 \
     WHERE device = $1 AND delivered IS NULL RETURNING id, command) \
     SELECT day.at, taken.id, taken.command FROM day LEFT JOIN taken ON TRUE";

/// Makes `groups` the device's codes of `day`, for the day's newest heartbeat, in one
/// statement: a code's row is written only if its severity or count changed, and the codes
/// it no longer reports are dropped, so a device that reports the same all day writes
/// nothing here. A separate statement from [`HEARTBEAT_SQL`] on purpose: it runs after that
/// one locked the day's row, so its snapshot sees the codes another heartbeat of the day
/// committed meanwhile.
async fn replace_day_codes(
    tx: &tokio_postgres::Transaction<'_>,
    device: &str,
    day: i64,
    groups: &[(String, bool, i64)],
) -> Result<(), StoreError> {
    let codes: Vec<&str> = groups.iter().map(|(code, _, _)| code.as_str()).collect();
    let errors: Vec<bool> = groups.iter().map(|(_, error, _)| *error).collect();
    let counts: Vec<i64> = groups.iter().map(|(_, _, count)| *count).collect();
    tx.query_typed(
        "WITH kept AS (\
         INSERT INTO device_day_deviations (device, day, code, error, count) \
         SELECT $1, $2, g.code, g.error, g.count FROM unnest($3, $4, $5) AS g (code, error, count) \
         ON CONFLICT (device, day, code) DO UPDATE SET error = EXCLUDED.error, count = EXCLUDED.count \
         WHERE (device_day_deviations.error, device_day_deviations.count) \
         IS DISTINCT FROM (EXCLUDED.error, EXCLUDED.count)) \
         DELETE FROM device_day_deviations WHERE device = $1 AND day = $2 AND code <> ALL ($3)",
        &[
            (&device, Type::TEXT),
            (&day, Type::INT8),
            (&codes, Type::TEXT_ARRAY),
            (&errors, Type::BOOL_ARRAY),
            (&counts, Type::INT8_ARRAY),
        ],
    )
    .await?;
    Ok(())
}
