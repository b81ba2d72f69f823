//! What central knows about its devices between batches, as the store keeps it: the last
//! heartbeat of each device (state, outbox, deviation groups, held delta), its last batch,
//! and the operators' commands with their delivery state; and the [`FleetStore`] trait the
//! backends implement in their `fleet.rs`, with the per-day history each heartbeat adds to
//! (`super::site_history`).
//!
//! In the data flow it sits beside the records: `POST /v1/heartbeat` records the heartbeat
//! and takes the waiting commands in one transaction (each command delivered once, also when
//! two centrals answer two heartbeats of one device at once), `POST
//! /admin/devices/{device}/commands` and the web interface's held-delta form queue them, and
//! the fleet pages and `GET /admin/devices` read it with the device records. Being in the
//! store, it survives a restart and is the same for every central process on one database.
//! Heartbeats carry counts, states and masked deviations, never personal data.

use std::collections::HashMap;

use serde::Serialize;
use skolebro_protocol::api::{Command, Heartbeat};
use skolebro_protocol::{DeviceId, Seq, SiteId};

use super::columns::{seq_from_db, stored_device};
use super::error::{StoreError, StoreFuture};
use super::site_history::SiteHistory;
use super::timestamp::Timestamp;

/// At most this many commands wait per device: an operator clicking "resync" a hundred times
/// must not grow the table, and a device that never calls in gets nothing new queued.
pub const MAX_QUEUED_COMMANDS: usize = 32;

/// Delivered commands kept per device, newest first, so the operator sees what went out
/// and when; older ones are dropped when a heartbeat delivers new ones.
pub const DELIVERED_COMMANDS_KEPT: usize = 8;

/// One operator command and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedCommand {
    /// What the device is told.
    pub command: Command,
    /// When an operator queued it.
    pub queued_at: Timestamp,
    /// When a heartbeat answer carried it to the device; `None` while it waits.
    pub delivered_at: Option<Timestamp>,
}

/// What central has heard from one device and what waits for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceActivity {
    /// The last heartbeat and when it arrived.
    pub last_heartbeat: Option<Heartbeat>,
    pub last_heartbeat_at: Option<Timestamp>,
    /// The sequence number of the last batch applied, and when.
    pub last_batch_seq: Option<Seq>,
    pub last_batch_at: Option<Timestamp>,
    /// The commands waiting and the last few delivered, oldest first.
    pub commands: Vec<QueuedCommand>,
}

impl DeviceActivity {
    /// The commands not yet delivered, oldest first: what the next heartbeat gets.
    pub fn waiting(&self) -> Vec<Command> {
        self.commands
            .iter()
            .filter(|queued| queued.delivered_at.is_none())
            .map(|queued| queued.command.clone())
            .collect()
    }
}

/// The last heartbeats, the command queue and the last batches of the fleet.
pub trait FleetStore: Send + Sync {
    /// Keeps `heartbeat` as the device's last (unless a later one is already kept) and hands
    /// over the commands waiting for it, oldest first, marking them delivered at `at` in the
    /// same transaction: each command is delivered once, whichever central answers. The
    /// same transaction adds the heartbeat to the device's history for `at`'s Oslo day
    /// (held that day; its deviations by code if it is the day's newest) and drops the
    /// device's days older than [`super::HISTORY_DAYS`].
    fn record_heartbeat<'a>(
        &'a self,
        device: &'a DeviceId,
        heartbeat: &'a Heartbeat,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<Command>>;

    /// Queues `command` for the device's next heartbeat; returns how many now wait. Fails
    /// with [`StoreError::CommandQueueFull`] when [`MAX_QUEUED_COMMANDS`] already wait.
    fn queue_command<'a>(
        &'a self,
        device: &'a DeviceId,
        command: &'a Command,
        at: Timestamp,
    ) -> StoreFuture<'a, usize>;

    /// Every device heard from, commanded or with a batch applied, by id.
    fn fleet_activity(&self) -> StoreFuture<'_, HashMap<DeviceId, DeviceActivity>>;

    /// The history of the site's devices from Oslo day `since_day` on, added up per day.
    fn site_history<'a>(&'a self, site: &'a SiteId, since_day: i64)
        -> StoreFuture<'a, SiteHistory>;
}

/// The fleet's rows as both backends read them, before decoding: the decoding (and what a
/// corrupt row means) is written once, here.
#[derive(Debug, Default)]
pub(crate) struct FleetRows {
    /// `(device, at, heartbeat JSON)`.
    pub heartbeats: Vec<(String, i64, String)>,
    /// `(device, command JSON, queued, delivered)`, in queue order.
    pub commands: Vec<(String, String, i64, Option<i64>)>,
    /// `(device, seq, at)` of each device's newest transfer.
    pub last_batches: Vec<(String, i64, i64)>,
}

impl FleetRows {
    pub(crate) fn into_activity(self) -> Result<HashMap<DeviceId, DeviceActivity>, StoreError> {
        let mut fleet: HashMap<DeviceId, DeviceActivity> = HashMap::new();
        for (device, at, heartbeat) in self.heartbeats {
            let activity = fleet.entry(stored_device(&device)?).or_default();
            activity.last_heartbeat = Some(decode(&heartbeat, "heartbeat")?);
            activity.last_heartbeat_at = Some(Timestamp(at));
        }
        for (device, command, queued, delivered) in self.commands {
            fleet
                .entry(stored_device(&device)?)
                .or_default()
                .commands
                .push(QueuedCommand {
                    command: decode(&command, "command")?,
                    queued_at: Timestamp(queued),
                    delivered_at: delivered.map(Timestamp),
                });
        }
        for (device, seq, at) in self.last_batches {
            let activity = fleet.entry(stored_device(&device)?).or_default();
            activity.last_batch_seq = Some(seq_from_db(seq)?);
            activity.last_batch_at = Some(Timestamp(at));
        }
        Ok(fleet)
    }
}

/// The newest transfer of each device: its last batch.
pub(crate) const LAST_BATCHES_SQL: &str = "SELECT t.device, t.seq, t.at FROM transfers t \
     JOIN (SELECT device, MAX(id) AS id FROM transfers GROUP BY device) newest \
     ON t.id = newest.id";

/// The queue and the kept delivered commands of every device, in queue order.
pub(crate) const COMMANDS_SQL: &str =
    "SELECT device, command, queued, delivered FROM device_commands ORDER BY id";

/// A heartbeat or command as it is stored.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// A stored heartbeat or command, read back.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("stored {what} does not parse: {error}")))
}

/// Decodes the commands a heartbeat took, `(id, JSON)` in any order, oldest first.
pub(crate) fn delivered(mut rows: Vec<(i64, String)>) -> Result<Vec<Command>, StoreError> {
    rows.sort_by_key(|(id, _)| *id);
    rows.iter()
        .map(|(_, command)| decode(command, "command"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::api::AgentState;

    #[test]
    fn the_documented_heartbeat_parses() {
        let text = r#"{"version": "0.1.0", "state": "holding", "outbox_depth": 0, "outbox_bytes": 0,
            "oldest_unacked_age_s": null, "last_export_unix_ms": 1764000000000,
            "deviations": {"errors": 0, "warnings": 1},
            "held": {"id": "h1", "reasons": ["deletes 40% of students"],
                     "upserts": {"students": 3}, "deletes": {"students": 400}}}"#;
        let parsed: Heartbeat = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.state, AgentState::Holding);
        assert_eq!(parsed.held.unwrap().deletes["students"], 400);
    }

    #[test]
    fn an_unknown_state_from_a_newer_agent_is_kept_as_unknown() {
        let parsed: Heartbeat =
            serde_json::from_str(r#"{"version": "9.0.0", "state": "dreaming"}"#).unwrap();
        assert_eq!(parsed.state, AgentState::Unknown);
        let stored: Heartbeat = decode(&encode(&parsed).unwrap(), "heartbeat").unwrap();
        assert_eq!(stored.state, AgentState::Unknown);
    }

    #[test]
    fn delivered_commands_come_out_oldest_first() {
        let rows = vec![
            (7, r#"{"type": "reject", "held_id": "h2"}"#.to_owned()),
            (3, r#"{"type": "resync"}"#.to_owned()),
        ];
        assert_eq!(
            delivered(rows).unwrap(),
            vec![
                Command::Resync,
                Command::Reject {
                    held_id: "h2".into()
                }
            ]
        );
    }

    #[test]
    fn a_corrupt_stored_command_is_an_error_not_a_skip() {
        let rows = FleetRows {
            commands: vec![("pi-1".into(), "{".into(), 1, None)],
            ..FleetRows::default()
        };
        assert!(matches!(rows.into_activity(), Err(StoreError::Corrupt(_))));
    }
}
