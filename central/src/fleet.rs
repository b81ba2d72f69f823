//! What central knows about its devices between batches: the last heartbeat of each, its last
//! batch, and the operator commands waiting for it.
//!
//! In the data flow it sits beside the store: `POST /v1/heartbeat` records here and takes the
//! queued commands (delivered once), `POST /admin/devices/{device}/commands` queues them, and
//! `GET /admin/devices` reads it together with the store's device records and chain heads.
//! It is memory only for now: a restart forgets heartbeats (the next one arrives within
//! minutes) and queued commands (an operator queues them again). Heartbeats carry counts and
//! states, never personal data.

use std::collections::{HashMap, VecDeque};

use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use skolebro_protocol::{DeviceId, Seq};

use crate::store::Timestamp;

/// At most this many commands wait per device: an operator clicking "resync" a hundred times
/// must not grow central's memory, and a device that never calls in gets nothing new queued.
pub const MAX_QUEUED_COMMANDS: usize = 32;

use skolebro_protocol::api::{Command, Heartbeat};

/// What central has seen of one device since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceActivity {
    /// The last heartbeat and when it arrived.
    pub last_heartbeat: Option<Heartbeat>,
    pub last_heartbeat_at: Option<Timestamp>,
    /// The sequence number of the last batch acked, and when.
    pub last_batch_seq: Option<Seq>,
    pub last_batch_at: Option<Timestamp>,
    /// Commands not yet delivered.
    pub queued_commands: Vec<Command>,
}

#[derive(Debug, Default)]
struct Entry {
    last_heartbeat: Option<(Heartbeat, Timestamp)>,
    last_batch: Option<(Seq, Timestamp)>,
    commands: VecDeque<Command>,
}

/// The queue was full; the command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_QUEUED_COMMANDS} commands are already waiting for this device")]
pub struct QueueFull;

/// The in-memory fleet view. Only registered devices are entered (the handlers check the
/// store first), so its size is bounded by the fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    devices: Mutex<HashMap<DeviceId, Entry>>,
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, Entry>> {
        // Nothing here can be left half-updated by a panic, so a poisoned lock is usable.
        self.devices.lock()
    }

    /// Records a heartbeat and hands over (removes) the commands waiting for the device:
    /// each command is delivered once.
    pub fn heartbeat(
        &self,
        device: &DeviceId,
        heartbeat: Heartbeat,
        at: Timestamp,
    ) -> Vec<Command> {
        let mut devices = self.lock();
        let entry = devices.entry(device.clone()).or_default();
        entry.last_heartbeat = Some((heartbeat, at));
        entry.commands.drain(..).collect()
    }

    /// Records that a batch of the device was acked.
    pub fn batch_acked(&self, device: &DeviceId, seq: Seq, at: Timestamp) {
        self.lock().entry(device.clone()).or_default().last_batch = Some((seq, at));
    }

    /// Queues a command for the device's next heartbeat; returns how many now wait.
    pub fn queue(&self, device: &DeviceId, command: Command) -> Result<usize, QueueFull> {
        let mut devices = self.lock();
        let entry = devices.entry(device.clone()).or_default();
        if entry.commands.len() >= MAX_QUEUED_COMMANDS {
            return Err(QueueFull);
        }
        entry.commands.push_back(command);
        Ok(entry.commands.len())
    }

    /// Every device seen or commanded since start, sorted by id.
    pub fn snapshot(&self) -> Vec<(DeviceId, DeviceActivity)> {
        let devices = self.lock();
        let mut out: Vec<_> = devices
            .iter()
            .map(|(device, entry)| {
                let activity = DeviceActivity {
                    last_heartbeat: entry.last_heartbeat.as_ref().map(|(h, _)| h.clone()),
                    last_heartbeat_at: entry.last_heartbeat.as_ref().map(|(_, at)| *at),
                    last_batch_seq: entry.last_batch.map(|(seq, _)| seq),
                    last_batch_at: entry.last_batch.map(|(_, at)| at),
                    queued_commands: entry.commands.iter().cloned().collect(),
                };
                (device.clone(), activity)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::api::AgentState;

    fn device() -> DeviceId {
        DeviceId::new("pi-1").unwrap()
    }

    fn heartbeat() -> Heartbeat {
        serde_json::from_str(r#"{"version": "0.1.0", "state": "healthy"}"#).unwrap()
    }

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
    }

    #[test]
    fn commands_have_the_documented_json_shape() {
        let json = serde_json::to_value(Command::Release {
            held_id: "h1".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "release", "held_id": "h1"})
        );
        let resync: Command = serde_json::from_str(r#"{"type": "resync"}"#).unwrap();
        assert_eq!(resync, Command::Resync);
        assert!(serde_json::from_str::<Command>(r#"{"type": "explode"}"#).is_err());
    }

    #[test]
    fn queued_commands_are_delivered_once() {
        let fleet = Fleet::default();
        fleet.queue(&device(), Command::Resync).unwrap();
        let first = fleet.heartbeat(&device(), heartbeat(), Timestamp(1));
        let second = fleet.heartbeat(&device(), heartbeat(), Timestamp(2));
        assert_eq!(first, vec![Command::Resync]);
        assert!(second.is_empty());
    }

    #[test]
    fn the_queue_per_device_is_bounded() {
        let fleet = Fleet::default();
        for _ in 0..MAX_QUEUED_COMMANDS {
            fleet.queue(&device(), Command::Resync).unwrap();
        }
        assert_eq!(fleet.queue(&device(), Command::Resync), Err(QueueFull));
    }
}
