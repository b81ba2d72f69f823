//! What central knows about its devices between batches: the last heartbeat of each, its last
//! batch, and the operator commands waiting for it.
//!
//! In the data flow it sits beside the store: `POST /v1/heartbeat` records here and takes the
//! queued commands (delivered once), `POST /admin/devices/{device}/commands` queues them, and
//! `GET /admin/devices` reads it together with the store's device records and chain heads.
//! It is memory only for now: a restart forgets heartbeats (the next one arrives within
//! minutes) and queued commands (an operator queues them again). Heartbeats carry counts and
//! states, never personal data.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use skolebro_protocol::{DeviceId, Seq};

use crate::release::UpdateReport;
use crate::store::Timestamp;

/// At most this many commands wait per device: an operator clicking "resync" a hundred times
/// must not grow central's memory, and a device that never calls in gets nothing new queued.
pub const MAX_QUEUED_COMMANDS: usize = 32;

/// Longest `held_id` accepted in a command; the agent's ids are far shorter.
pub const MAX_HELD_ID_LEN: usize = 128;

/// What the agent is doing, as it reports it (docs/API.md). Unknown states from a newer agent
/// are kept as [`AgentState::Unknown`] rather than refusing its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Healthy,
    Holding,
    CentralUnreachable,
    Error,
    Updating,
    Enrolling,
    NotProvisioned,
    #[serde(other)]
    Unknown,
}

/// Validation findings of the last export, by severity: what the fleet page shows at a glance
/// (the site page shows them by code, see [`DeviationGroup`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationCounts {
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub warnings: u64,
}

/// The deviations of one code and severity in the last export, with the first rows as the
/// agent's `check` prints them (national ids masked, no names), so a municipality operator
/// can tell the school what to fix in its SAS without a visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationGroup {
    /// The agent's stable code, e.g. `invalid_national_id`.
    pub code: String,
    /// `error` (the record is kept out) or `warning`.
    pub severity: String,
    /// All of them, not only the rows carried.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub rows: Vec<DeviationRow>,
}

/// One reported deviation: where it is in the export and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationRow {
    pub file: String,
    /// `line 12`, or `record 3` for formats without lines.
    pub at: String,
    pub detail: String,
}

/// A delta the agent's safety filter holds for review (DESIGN decision 5), described by
/// counts per kind so an operator can release or reject it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDelta {
    /// The agent's id for the held delta, named again by `release` / `reject`.
    pub id: String,
    /// Why it was held (thresholds exceeded), in words.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Records it would add or change, by kind (`{"students": 12, …}`).
    #[serde(default)]
    pub upserts: BTreeMap<String, u64>,
    /// Records it would delete, by kind.
    #[serde(default)]
    pub deletes: BTreeMap<String, u64>,
}

/// One heartbeat as the agent posts it (docs/API.md). Fields beyond `version` and `state`
/// default when missing, so an older or newer agent still gets its commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version, for watching a rollout.
    pub version: String,
    pub state: AgentState,
    /// Envelopes waiting in the agent's outbox.
    #[serde(default)]
    pub outbox_depth: u64,
    /// Bytes they take on disk.
    #[serde(default)]
    pub outbox_bytes: u64,
    /// Age of the oldest envelope not yet acked, if any.
    #[serde(default)]
    pub oldest_unacked_age_s: Option<u64>,
    /// When the agent last read an export.
    #[serde(default)]
    pub last_export_unix_ms: Option<i64>,
    #[serde(default)]
    pub deviations: DeviationCounts,
    /// The same deviations by code, with their first rows; empty from agents that do not
    /// report them.
    #[serde(default)]
    pub deviation_groups: Vec<DeviationGroup>,
    /// The delta held for review, if any.
    #[serde(default)]
    pub held: Option<HeldDelta>,
    /// The target triple the agent was built for; without it no release is offered.
    #[serde(default)]
    pub target: Option<String>,
    /// The agent's latest update step, repeated until a heartbeat gets through.
    #[serde(default)]
    pub update: Option<UpdateReport>,
}

/// An operator's instruction to one device, delivered with its next heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Send a full snapshot next (after a restore at central, or to settle a doubt).
    Resync,
    /// Send the held delta after all.
    Release { held_id: String },
    /// Drop the held delta.
    Reject { held_id: String },
}

impl Command {
    /// Whether the command is well-formed: a held id that is non-empty and short.
    pub fn is_valid(&self) -> bool {
        match self {
            Command::Resync => true,
            Command::Release { held_id } | Command::Reject { held_id } => {
                !held_id.is_empty() && held_id.len() <= MAX_HELD_ID_LEN
            }
        }
    }
}

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
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
