//! The daemon (`skolebro-agent run`): wires the stages of the data flow together on a tokio
//! runtime and keeps `status.json` up to date.
//!
//! Its life has two phases ([`lifecycle`]). Without an identity (no enrollment in the state
//! folder, no `[identity]` in `agent.toml`) it waits for a config stick: it polls the stick
//! roots every few seconds, shows "not provisioned" on the panel, and enrolls from the first
//! stick that passes ([`crate::provision`]). With an identity it runs the data flow below,
//! while a provisioning loop keeps watching for a new stick (a new token re-provisions: the
//! data flow stops, the chain starts afresh for the new device, and it starts again), renews
//! the certificate before it runs out, and notices central revoking the device.
//!
//! ```text
//! watch::run ──paths──▶ pipeline (read + validate on a blocking thread, Enqueuer::offer)
//!     ▲ retry                 │ wake
//!     └───────────────────────┘──▶ uplink::push_loop ──▶ central /v1/batches
//!                                  uplink::heartbeat_loop ◀─▶ central /v1/heartbeat
//!                                         └──▶ update::Updater (offered releases, trial)
//! ```
//! Stages talk through bounded channels. The enqueue stage ([`Enqueuer`]: checkpoint and
//! outbox) lives in one [`Core`] behind a mutex; every operation on it runs on a blocking
//! thread because it fsyncs.
//!
//! Files: with `after_ingest = "delete"` an export is removed once its batch is durable in
//! the outbox, or once it is known to change nothing, or once its delta is held (the held
//! export is kept in memory for release; see [`HeldDelta`](crate::enqueue::HeldDelta)). An
//! export waiting for room in the outbox keeps its file until it is enqueued or a newer export
//! supersedes it. A file that cannot be read at all is moved to `<drop>/rejected/` with a
//! `.error.txt` beside it so school IT can look at it; only the newest rejected file is kept,
//! so personal data does not pile up there, and a rejected file is never read again. So is an
//! export the SAS wrote before the newest one taken in (by the file's modification time, kept
//! in `status.json`): a stale file dropped late would otherwise turn central's roster back.
//!
//! The newest validated export is kept in memory: after a gap or a `resync` command the agent
//! needs a full snapshot, and the export file is gone by then. After a restart there is none
//! until the SAS drops the next export; the checkpoint's `needs_snapshot` survives, so that
//! export goes out as the snapshot.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use skolebro_protocol::api::{self, AgentState};
use skolebro_protocol::envelope::ChainHead;
use skolebro_protocol::Entity;
use tokio::sync::{mpsc, watch};

use crate::clock::{unix, AgentClock, ClockError};
use crate::config::{AfterIngest, AgentConfig, ConfigError};
use crate::deviation::Severity;
use crate::diff::DiffSummary;
use crate::enqueue::{EnqueueError, Enqueuer, HeldDelta, Outcome};
use crate::identity::{DeviceCredentials, IdentityError};
use crate::outbox::{unix_ms_now, Batch, OutboxError};
use crate::provision::{self, Enrollment, EnrollmentError, ProvisionError, Provisioned};
use crate::reader::read_export;
use crate::update::Updater;
use crate::uplink::{self, Backoff, Central, Command, Heartbeat, UplinkError};
use crate::validate::Validated;
use crate::watch::file_name;

/// Name of the status file in the state folder.
pub const STATUS_FILE: &str = "status.json";
/// Folder inside the drop folder for exports that could not be read.
pub const REJECTED_DIR: &str = "rejected";

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Enrollment(#[from] EnrollmentError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("state folder: {0}")]
    Enqueue(#[from] EnqueueError),
    #[error("TLS client: {0}")]
    Tls(#[from] skolebro_provisioning::tls::TlsError),
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    #[error("a daemon task failed: {0}")]
    Task(String),
}

/// What the agent is doing, in the words of docs/API.md's heartbeat `state` (plus the two
/// local ones `starting` and `stopped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Starting,
    /// No identity yet: waiting for a config stick.
    NotProvisioned,
    /// Enrolling with central from a config stick.
    Enrolling,
    Healthy,
    Holding,
    CentralUnreachable,
    Error,
    /// Central revoked this device; only a new config stick brings it back.
    Revoked,
    Stopped,
}

impl RunState {
    /// The heartbeat's word for it.
    pub fn api_state(self) -> AgentState {
        match self {
            RunState::Starting | RunState::Healthy | RunState::Stopped => AgentState::Healthy,
            RunState::Holding => AgentState::Holding,
            RunState::CentralUnreachable => AgentState::CentralUnreachable,
            RunState::Error | RunState::Revoked => AgentState::Error,
            RunState::NotProvisioned => AgentState::NotProvisioned,
            RunState::Enrolling => AgentState::Enrolling,
        }
    }
}

pub use skolebro_protocol::api::DeviationCounts;

/// A held delta as reported to central and in `status.json`: counts and the filter's
/// reasons, never records.
fn held_report(held: &HeldDelta) -> api::HeldDelta {
    let counts = |f: &dyn Fn(&DiffSummary, Entity) -> usize| {
        Entity::ALL
            .iter()
            .map(|&e| (e.plural().to_owned(), f(&held.summary, e) as u64))
            .collect()
    };
    api::HeldDelta {
        id: held.id.clone(),
        reasons: held.judgement.reasons.clone(),
        upserts: counts(&|s, e| s.added(e) + s.updated(e)),
        deletes: counts(&|s, e| s.deleted(e)),
    }
}

/// The wire form of the pipeline's deviation groups (codes and severities as text).
fn api_groups(groups: &[crate::deviation::DeviationGroup]) -> Vec<api::DeviationGroup> {
    groups
        .iter()
        .map(|g| api::DeviationGroup {
            code: g.code.as_str().to_owned(),
            severity: match g.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            }
            .to_owned(),
            count: g.count,
            rows: g
                .rows
                .iter()
                .map(|r| api::DeviationRow {
                    file: r.file.clone(),
                    at: r.at.clone(),
                    detail: r.detail.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The content of `status.json`: what `skolebro-agent status` prints and the heartbeat
/// sends. Written atomically after every step, so a reader never sees half of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentStatus {
    pub state: RunState,
    /// The version of the running release (see [`crate::update`]).
    pub version: String,
    /// The daemon's process id, so `status` can tell a stale file from a running agent.
    pub pid: u32,
    pub updated_unix_ms: u64,
    pub last_export_unix_ms: Option<u64>,
    pub last_export_file: Option<String>,
    pub last_export_students: Option<u64>,
    /// When the newest export taken in was written (its file's modification time). An
    /// export written earlier is refused: sent after it, it would turn central's roster back.
    pub last_export_written_unix_ms: Option<u64>,
    /// What became of the newest export, in a few words.
    pub last_outcome: Option<String>,
    pub deviations: DeviationCounts,
    /// The same deviations by code, with their first rows (masked), for central's site page.
    pub deviation_groups: Vec<crate::deviation::DeviationGroup>,
    pub last_ack_seq: Option<u64>,
    pub last_ack_unix_ms: Option<u64>,
    pub unreachable_since_unix_ms: Option<u64>,
    pub last_error: Option<String>,
    pub held: Option<api::HeldDelta>,
    pub held_since_unix_ms: Option<u64>,
    pub outbox_depth: u64,
    pub outbox_bytes: u64,
    pub oldest_unacked_unix_ms: Option<u64>,
    /// Central needs a full snapshot and the agent has no export in memory to make it from:
    /// the next export the SAS drops is sent as the snapshot.
    pub awaiting_export_for_snapshot: bool,
    /// Enrollment, certificate and clock.
    pub provisioning: ProvisioningStatus,
}

/// Where the device stands with enrollment, in `status.json` (ids and times only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvisioningStatus {
    /// The device and site the agent runs as (`None` while not provisioned).
    pub device: Option<String>,
    pub site: Option<String>,
    /// The id of the token the device enrolled with (`None` when set up by hand).
    pub token_id: Option<String>,
    pub enrolled_unix: Option<u64>,
    pub cert_not_after_unix: Option<u64>,
    pub renewed_unix: Option<u64>,
    /// Enrolling from a stick right now.
    pub enrolling: bool,
    /// The last stick refused, while it is still inserted: file and reason.
    pub stick_refused: Option<String>,
    /// Why the last enrollment failed (central refused the token, or was unreachable).
    pub enroll_error: Option<String>,
    /// Central answered `device_revoked`.
    pub revoked: bool,
    /// The folders searched for a stick.
    pub stick_roots: Vec<String>,
    /// Whether the system clock is synced, and the floor certificates are checked against
    /// until it is (DESIGN decision 8).
    pub clock_synced: bool,
    pub time_floor_unix: u64,
}

impl AgentStatus {
    /// Reads `status.json` from `state_dir`.
    pub fn load(state_dir: &Path) -> std::io::Result<AgentStatus> {
        let bytes = std::fs::read(state_dir.join(STATUS_FILE))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// Problems that put the agent in the `error` state until the matching success clears them.
#[derive(Debug, Default)]
struct Problems {
    /// The newest export could not be read (cleared by the next good export).
    export: Option<String>,
    /// Central refused a batch (cleared by the next ack).
    uplink: Option<String>,
    /// The outbox or checkpoint failed (cleared by the next successful enqueue or ack).
    storage: Option<String>,
    /// The device's certificate is over on a synced clock, or could not be renewed.
    certificate: Option<String>,
}

/// The enqueue stage plus what the daemon knows about its progress. One owner at a time
/// (behind [`Shared`]); every method is synchronous and may block on disk.
pub struct Core {
    enqueuer: Enqueuer,
    state_dir: PathBuf,
    after_ingest: AfterIngest,
    latest: Option<Arc<Validated>>,
    waiting_file: Option<PathBuf>,
    problems: Problems,
    status: AgentStatus,
    status_tx: watch::Sender<AgentStatus>,
}

/// The core shared by the daemon's tasks.
pub type Shared = Arc<Mutex<Core>>;

/// Runs `f` on the core on a blocking thread (the core fsyncs), holding the lock for the
/// whole step so steps never interleave. A poisoned lock (a panic in an earlier step) is
/// taken over: the on-disk state is crash-safe by construction.
pub async fn with_core<T: Send + 'static>(
    core: &Shared,
    f: impl FnOnce(&mut Core) -> T + Send + 'static,
) -> T {
    let core = core.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut guard = core.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    })
    .await;
    match joined {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

impl Core {
    /// Wraps an opened enqueuer. `status_tx` receives every status written.
    pub fn new(
        enqueuer: Enqueuer,
        state_dir: PathBuf,
        after_ingest: AfterIngest,
        status_tx: watch::Sender<AgentStatus>,
    ) -> Core {
        let status = AgentStatus::load(&state_dir).unwrap_or_default();
        let provisioning = ProvisioningStatus {
            revoked: false,
            enrolling: false,
            ..status.provisioning.clone()
        };
        let mut core = Core {
            enqueuer,
            state_dir,
            after_ingest,
            latest: None,
            waiting_file: None,
            problems: Problems::default(),
            status: AgentStatus {
                state: RunState::Starting,
                held: None,
                held_since_unix_ms: None,
                last_error: None,
                unreachable_since_unix_ms: None,
                provisioning,
                ..status
            },
            status_tx,
        };
        core.publish();
        core
    }

    /// The enqueue stage, for inspection.
    pub fn enqueuer(&self) -> &Enqueuer {
        &self.enqueuer
    }

    /// The newest status.
    pub fn status(&self) -> &AgentStatus {
        &self.status
    }

    /// Keeps `export` as the newest one (for snapshots) without offering it.
    pub fn remember(&mut self, export: Validated) {
        self.latest = Some(Arc::new(export));
    }

    /// An export file could not be read: moved aside (see the module doc).
    pub fn rejected(&mut self, path: &Path, error: &crate::reader::ReadError) {
        let name = file_name(path);
        tracing::warn!(file = %name, kind = %error_kind(error), "export cannot be read; moved to rejected/");
        let note = format!(
            "skolebro-agent could not read this export and did not send it.\n\n{error}\n\n\
             Fix the export in the school administrative system and export it again; \
             `skolebro-agent check FILE` shows the problems.\n"
        );
        if let Err(e) = move_to_rejected(path, &note) {
            tracing::error!(file = %name, error = %e, "cannot move the unreadable export aside");
        }
        self.problems.export = Some(format!("export {name} cannot be read: {}", error.kind));
        self.publish();
    }

    /// Refuses an export written before the newest one taken in: moves it to `rejected/`
    /// with a note saying why, and says so in the status. Returns whether it was refused.
    pub fn refuse_if_stale(&mut self, path: &Path, written_unix_ms: u64) -> bool {
        let Some(newest) = self
            .status
            .last_export_written_unix_ms
            .filter(|newest| written_unix_ms < *newest)
        else {
            return false;
        };
        let name = file_name(path);
        let now = unix_ms_now();
        let (written, newest) = (clock(written_unix_ms, now), clock(newest, now));
        tracing::warn!(file = %name, %written, %newest, "export is older than the one taken in; moved to rejected/");
        let note = format!(
            "skolebro-agent did not send this export: it was written {written}, before the \
             export it has already sent (written {newest}). Sending it would turn the county's \
             copy of the school's roster back to an older state.\n\n\
             If this file is meant to replace the newer one, export it again from the school \
             administrative system (or save it anew), so that it is the newest file.\n"
        );
        if let Err(e) = move_to_rejected(path, &note) {
            tracing::error!(file = %name, error = %e, "cannot move the stale export aside");
        }
        self.problems.export = Some(format!(
            "export {name} was written {written}, before the one already sent ({newest}); not sent"
        ));
        self.publish();
        true
    }

    /// Offers a freshly read export and disposes of its file per `after_ingest`.
    /// `written_unix_ms` is the file's modification time, remembered so an older export
    /// dropped later is refused ([`Core::refuse_if_stale`]).
    pub fn ingest(
        &mut self,
        path: &Path,
        export: Validated,
        written_unix_ms: Option<u64>,
    ) -> Result<Outcome, EnqueueError> {
        let name = file_name(path);
        self.status.last_export_unix_ms = Some(unix_ms_now());
        self.status.last_export_file = Some(name.clone());
        self.status.last_export_students = Some(export.roster.students.len() as u64);
        let mut counts = DeviationCounts::default();
        for d in &export.deviations {
            match d.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
            }
        }
        self.status.deviations = counts;
        self.status.deviation_groups = crate::deviation::group(&export.deviations);
        self.problems.export = None;
        let export = Arc::new(export);
        self.latest = Some(Arc::clone(&export));
        let result = self.enqueuer.offer(export);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.problems.storage = Some(format!("enqueueing {name}: {error}"));
                self.publish();
                return Err(error);
            }
        };
        self.problems.storage = None;
        self.status.awaiting_export_for_snapshot = false;
        // Remembered no later than now: a file from a host whose clock ran ahead must not
        // make the exports written after its clock is fixed look stale.
        self.status.last_export_written_unix_ms = self
            .status
            .last_export_written_unix_ms
            .max(written_unix_ms.map(|written| written.min(unix_ms_now())));
        tracing::info!(file = %name, students = self.status.last_export_students, errors = counts.errors, warnings = counts.warnings, outcome = %describe(&outcome), "export taken in");
        self.status.last_outcome = Some(describe(&outcome));
        // A waiting older export is superseded by this one, whatever became of it.
        if let Some(old) = self.waiting_file.take() {
            if old != path {
                self.dispose(&old);
            }
        }
        match outcome {
            Outcome::Waiting => self.waiting_file = Some(path.to_owned()),
            _ => self.dispose(path),
        }
        self.publish();
        Ok(outcome)
    }

    /// The oldest unacknowledged batch.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, OutboxError> {
        self.enqueuer.outbox().peek(0)
    }

    /// Central acknowledged everything up to `seq`: the outbox frees room and a waiting
    /// export is tried again.
    pub fn acked(&mut self, seq: u64) -> Result<(), EnqueueError> {
        self.enqueuer.outbox_mut().ack(seq)?;
        self.status.last_ack_seq = Some(seq);
        self.status.last_ack_unix_ms = Some(unix_ms_now());
        self.status.unreachable_since_unix_ms = None;
        self.problems.uplink = None;
        if self.enqueuer.is_waiting() {
            let outcome = self.enqueuer.retry()?;
            tracing::info!(outcome = %describe(&outcome), "waiting export retried after an ack");
            if !matches!(outcome, Outcome::Waiting) {
                self.status.last_outcome = Some(describe(&outcome));
                if let Some(file) = self.waiting_file.take() {
                    self.dispose(&file);
                }
            }
        }
        self.problems.storage = None;
        self.publish();
        Ok(())
    }

    /// Central reported a gap: restart the chain at its head and send a snapshot of the
    /// newest export, or wait for the next export if none is in memory.
    pub fn gap(&mut self, head: ChainHead) -> Result<(), EnqueueError> {
        self.enqueuer.restart_chain(head)?;
        self.status.unreachable_since_unix_ms = None;
        self.problems.uplink = None;
        self.snapshot_now()
    }

    /// Offers the newest export again; the checkpoint already asks for a snapshot.
    fn snapshot_now(&mut self) -> Result<(), EnqueueError> {
        match self.latest.clone() {
            Some(export) => {
                let outcome = self.enqueuer.offer(export)?;
                tracing::info!(outcome = %describe(&outcome), "snapshot offered");
                self.status.last_outcome = Some(describe(&outcome));
                self.status.awaiting_export_for_snapshot = false;
            }
            None => {
                tracing::warn!("central needs a snapshot; waiting for the next export");
                self.status.awaiting_export_for_snapshot = true;
            }
        }
        self.publish();
        Ok(())
    }

    /// Central refused a batch (4xx other than 409).
    pub fn uplink_refused(&mut self, message: String) {
        self.problems.uplink = Some(message);
        self.publish();
    }

    /// Central answered `device_revoked`.
    pub fn revoked(&mut self) {
        self.status.provisioning.revoked = true;
        self.publish();
    }

    /// Changes the enrollment part of the status; written only if something changed.
    pub fn provisioning(&mut self, change: impl FnOnce(&mut ProvisioningStatus)) {
        let before = self.status.provisioning.clone();
        change(&mut self.status.provisioning);
        if before != self.status.provisioning {
            self.publish();
        }
    }

    /// A certificate problem (expired, not renewable), or `None` once it is solved.
    pub fn certificate_problem(&mut self, problem: Option<String>) {
        if self.problems.certificate != problem {
            self.problems.certificate = problem;
            self.publish();
        }
    }

    /// Central could not be reached or could not apply.
    pub fn unreachable(&mut self, why: String) {
        if self.status.unreachable_since_unix_ms.is_none() {
            self.status.unreachable_since_unix_ms = Some(unix_ms_now());
        }
        tracing::debug!(why = %why, "central unreachable");
        self.publish();
    }

    /// Applies a command from central.
    pub fn command(&mut self, command: Command) -> Result<(), EnqueueError> {
        match command {
            Command::Resync => {
                self.enqueuer.request_snapshot()?;
                self.snapshot_now()?;
            }
            Command::Release { held_id } => match self.enqueuer.release(&held_id)? {
                Some(outcome) => {
                    tracing::info!(held_id = %held_id, outcome = %describe(&outcome), "held delta released");
                    self.status.last_outcome = Some(describe(&outcome));
                }
                None => tracing::warn!(held_id = %held_id, "release for a delta that is not held"),
            },
            Command::Reject { held_id } => {
                if self.enqueuer.reject(&held_id) {
                    tracing::info!(held_id = %held_id, "held delta rejected");
                    self.status.last_outcome = Some("held delta rejected by an operator".into());
                } else {
                    tracing::warn!(held_id = %held_id, "reject for a delta that is not held");
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// The heartbeat body for the current state.
    pub fn heartbeat(&mut self) -> Heartbeat {
        self.publish();
        let now = unix_ms_now();
        Heartbeat {
            version: crate::update::VERSION.to_owned(),
            state: self.status.state.api_state(),
            outbox_depth: self.status.outbox_depth,
            outbox_bytes: self.status.outbox_bytes,
            oldest_unacked_age_s: self
                .status
                .oldest_unacked_unix_ms
                .map(|t| now.saturating_sub(t) / 1000),
            last_export_unix_ms: self
                .status
                .last_export_unix_ms
                .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            deviations: self.status.deviations,
            deviation_groups: api_groups(&self.status.deviation_groups),
            held: self.status.held.clone(),
            target: Some(crate::update::TARGET.to_owned()),
            update: None,
        }
    }

    /// Marks the daemon stopped and writes the final status.
    pub fn stopped(&mut self) {
        self.publish();
        self.status.state = RunState::Stopped;
        self.write_status();
    }

    /// Recomputes the derived fields, writes `status.json` and tells watchers.
    fn publish(&mut self) {
        let outbox = self.enqueuer.outbox().status();
        let s = &mut self.status;
        s.pid = std::process::id();
        s.version = crate::update::VERSION.to_owned();
        s.updated_unix_ms = unix_ms_now();
        s.outbox_depth = outbox.depth;
        s.outbox_bytes = outbox.unacked_bytes;
        s.oldest_unacked_unix_ms = outbox.oldest_unacked.map(|o| o.appended_at_ms);
        s.held = self.enqueuer.held().map(held_report);
        s.held_since_unix_ms = self.enqueuer.held().map(|h| h.held_at_ms);
        let p = &self.problems;
        let stick = s
            .provisioning
            .stick_refused
            .clone()
            .or_else(|| s.provisioning.enroll_error.clone());
        s.last_error = p
            .storage
            .clone()
            .or_else(|| p.uplink.clone())
            .or_else(|| p.certificate.clone())
            .or_else(|| p.export.clone())
            .or(stick);
        s.state = if s.provisioning.revoked {
            RunState::Revoked
        } else if s.provisioning.enrolling {
            RunState::Enrolling
        } else if p.storage.is_some() || p.uplink.is_some() || p.certificate.is_some() {
            RunState::Error
        } else if s.held.is_some() {
            RunState::Holding
        } else if p.export.is_some()
            || s.provisioning.stick_refused.is_some()
            || s.provisioning.enroll_error.is_some()
        {
            RunState::Error
        } else if s.unreachable_since_unix_ms.is_some() {
            RunState::CentralUnreachable
        } else {
            RunState::Healthy
        };
        self.write_status();
    }

    fn write_status(&mut self) {
        write_status(&self.state_dir, &self.status, &self.status_tx);
    }

    fn dispose(&self, path: &Path) {
        if self.after_ingest == AfterIngest::Keep {
            return;
        }
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(file = %file_name(path), "export removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::error!(file = %file_name(path), %error, "cannot remove the export")
            }
        }
    }
}

/// Writes `status.json` atomically and tells watchers.
fn write_status(state_dir: &Path, status: &AgentStatus, tx: &watch::Sender<AgentStatus>) {
    let path = state_dir.join(STATUS_FILE);
    match serde_json::to_vec_pretty(status) {
        Ok(bytes) => {
            if let Err(error) = crate::state::write_atomic(&path, &bytes) {
                tracing::warn!(%error, "cannot write status.json");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot encode status.json"),
    }
    tx.send_replace(status.clone());
}

/// A few words on an outcome, for logs and status (counts only).
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Enqueued {
            seq, kind, summary, ..
        } => format!(
            "sealed as batch {seq} ({kind:?}: {} added, {} changed, {} removed students)",
            summary.added(Entity::Student),
            summary.updated(Entity::Student),
            summary.deleted(Entity::Student)
        ),
        Outcome::Unchanged => "nothing changed".into(),
        Outcome::Held(j) => format!("held for review: {}", j.reasons.join("; ")),
        Outcome::Waiting => "waiting for room in the outbox".into(),
    }
}

fn error_kind(error: &crate::reader::ReadError) -> &'static str {
    use crate::reader::ReadErrorKind as K;
    match error.kind {
        K::Io(_) => "io",
        K::LineTooLong => "line_too_long",
        K::MissingColumn { .. } => "missing_column",
        K::Empty => "empty",
        K::Truncated => "truncated",
        K::Syntax { .. } => "syntax",
        K::TooLarge { .. } => "too_large",
    }
}

/// Moves an export that will not be sent into `rejected/` with a note for school IT beside
/// it, removing older rejected files first so at most one lingers.
fn move_to_rejected(path: &Path, note_text: &str) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let dir = parent.join(REJECTED_DIR);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    let name = path.file_name().unwrap_or_default();
    let target = dir.join(name);
    std::fs::rename(path, &target)?;
    let mut note = target.into_os_string();
    note.push(".error.txt");
    std::fs::write(note, note_text)
}

/// How often the stick roots are searched for a config stick.
const STICK_POLL: Duration = Duration::from_secs(3);
/// First wait before a failed renewal or a transient enrollment failure is tried again.
const RETRY_INITIAL: Duration = Duration::from_secs(30);
/// Longest such wait.
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// A running daemon: its status feed and the means to stop it.
pub struct DaemonHandle {
    /// Every status the daemon writes, as it writes it (also in `status.json`).
    pub status: watch::Receiver<AgentStatus>,
    /// Becomes true when an update wants the process restarted by its supervisor.
    pub restart: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl DaemonHandle {
    /// Asks the daemon to stop, and waits until it has (current steps finish, the outbox is
    /// closed, `status.json` says `stopped`).
    pub async fn stop(self) -> Result<(), DaemonError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(DaemonError::Task(error.to_string())),
        }
    }
}

/// The identity the daemon runs as, and the config that goes with it.
struct Device {
    /// `agent.toml` with the stick's site settings applied (see [`crate::config`]).
    config: AgentConfig,
    creds: DeviceCredentials,
    /// `None` for a device set up by hand in `agent.toml`.
    enrollment: Option<Enrollment>,
}

/// Who the device is: its enrollment, else the identity `agent.toml` names, else nobody.
fn resolve(installed: &AgentConfig) -> Result<Option<Device>, DaemonError> {
    if let Some(enrollment) = Enrollment::load(&installed.state_dir)? {
        let config = installed
            .clone()
            .with_site_settings(&enrollment.settings()?);
        config.check_daemon_settings()?;
        let creds = DeviceCredentials::from_enrollment(&enrollment)?;
        return Ok(Some(Device {
            config,
            creds,
            enrollment: Some(enrollment),
        }));
    }
    if installed.central.is_some() || installed.identity.is_some() {
        let creds = DeviceCredentials::load(installed)?;
        return Ok(Some(Device {
            config: installed.clone(),
            creds,
            enrollment: None,
        }));
    }
    Ok(None)
}

/// Starts the daemon on the current tokio runtime (which must be multi-threaded or have
/// blocking threads available) and returns at once. For the in-process demo and tests.
/// An identity that is configured but cannot be loaded fails here; no identity at all
/// starts the daemon waiting for a config stick.
pub async fn start(config: AgentConfig) -> Result<DaemonHandle, DaemonError> {
    config.check_daemon_settings()?;
    resolve(&config)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| EnrollmentError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    let clock = Arc::new(AgentClock::open(
        Some(&config.state_dir),
        &config.clock_synced_file,
    )?);
    let (status_tx, status_rx) = watch::channel(AgentStatus::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let updater = Updater::open(&config);
    let restart = updater.restart_wanted();
    tokio::spawn(updater.clone().watch_trial());
    let task = tokio::spawn(lifecycle(config, clock, updater, status_tx, stop_rx));
    Ok(DaemonHandle {
        status: status_rx,
        restart,
        stop: stop_tx,
        task,
    })
}

/// Runs the daemon until `shutdown` completes (e.g. SIGTERM) or an update wants a restart
/// (the supervisor then starts the `current` release), then stops it cleanly.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let mut handle = start(config).await?;
    tokio::pin!(shutdown);
    let mut restart = handle.restart.clone();
    // Stop early if the daemon fails on its own.
    let finished = tokio::select! {
        _ = &mut shutdown => None,
        _ = restart.wait_for(|wanted| *wanted) => None,
        result = &mut handle.task => Some(result),
    };
    match finished {
        None => {
            tracing::info!("shutting down");
            handle.stop().await
        }
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(DaemonError::Task(error.to_string())),
    }
}

/// What ended a phase of the daemon's life.
enum PhaseEnd {
    /// The device was (re-)provisioned: start over with the new identity.
    Provisioned,
    Stopped,
}

/// The daemon's life: wait for a stick or run as the device, over and over, until stopped.
/// The front panel runs alongside for the whole life, showing whatever phase is current.
async fn lifecycle(
    installed: AgentConfig,
    clock: Arc<AgentClock>,
    updater: Arc<Updater>,
    status_tx: watch::Sender<AgentStatus>,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let live: CoreSlot = Arc::new(Mutex::new(None));
    let poke = Arc::new(tokio::sync::Notify::new());
    let (panel_stop_tx, panel_stop_rx) = watch::channel(false);
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let front_panel = {
        let (panel, live, status, poke) = (
            installed.panel.clone(),
            live.clone(),
            status_tx.subscribe(),
            poke.clone(),
        );
        tokio::task::spawn_blocking(move || {
            drive_panel(&panel, &live, status, &wake_tx, &poke, &panel_stop_rx)
        })
    };
    // The panel's "sync now" goes to whichever uplink runs; forward it.
    let current_wake: Arc<Mutex<Option<mpsc::Sender<()>>>> = Arc::new(Mutex::new(None));
    let forward = {
        let current_wake = current_wake.clone();
        tokio::spawn(async move {
            while wake_rx.recv().await.is_some() {
                let target = current_wake
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(target) = target {
                    let _ = target.try_send(());
                }
            }
        })
    };
    let mut sticks = StickWatch::default();
    let result = loop {
        let phase = match resolve(&installed) {
            Err(error) => Err(error),
            Ok(None) => {
                waiting(
                    &installed,
                    &clock,
                    &status_tx,
                    &mut sticks,
                    &poke,
                    stop.clone(),
                )
                .await
            }
            Ok(Some(device)) => {
                running(
                    device,
                    &installed,
                    &clock,
                    &updater,
                    &status_tx,
                    &live,
                    &current_wake,
                    &mut sticks,
                    &poke,
                    stop.clone(),
                )
                .await
            }
        };
        match phase {
            Ok(PhaseEnd::Provisioned) => continue,
            Ok(PhaseEnd::Stopped) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    let _ = panel_stop_tx.send(true);
    forward.abort();
    if front_panel.await.is_err() {
        tracing::warn!("the front panel thread ended abnormally");
    }
    tracing::info!("stopped");
    result
}

/// The core of the running phase, if any, for the panel's liveness check.
type CoreSlot = Arc<Mutex<Option<Shared>>>;

/// What the stick watcher has already dealt with, so a stick left in is handled once.
#[derive(Default)]
struct StickWatch {
    /// Bundles handled, by path, with the size and mtime they had.
    seen: BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
    /// Bundles whose enrollment failed for a passing reason: tried again after a while.
    retry: BTreeMap<PathBuf, (std::time::Instant, Duration)>,
    /// The file the current refusal is about.
    refused: Option<PathBuf>,
}

/// What one look at the stick roots found.
enum StickEvent {
    /// Nothing new; `refusal_cleared` when the refused stick was removed.
    Nothing {
        refusal_cleared: bool,
    },
    /// A stick was refused (file and reason, ready for status).
    Refused(String),
    /// Central refused the enrollment, or could not be reached.
    EnrollFailed(String),
    Provisioned,
}

impl StickWatch {
    fn forget_all(&mut self) {
        self.seen.clear();
        self.retry.clear();
    }

    /// Looks at the stick roots once and provisions from the first new bundle. `enrolling`
    /// is called before talking to central.
    async fn look<F, Fut>(
        &mut self,
        config: &AgentConfig,
        clock: &Arc<AgentClock>,
        mut enrolling: F,
    ) -> StickEvent
    where
        F: FnMut(bool) -> Fut,
        Fut: Future<Output = ()>,
    {
        let found = provision::find_bundles(&config.stick_roots);
        self.seen.retain(|p, _| found.contains(p));
        self.retry.retain(|p, _| found.contains(p));
        let refusal_cleared = match &self.refused {
            Some(p) if !found.contains(p) => {
                self.refused = None;
                true
            }
            _ => false,
        };
        for path in found {
            let stamp = std::fs::metadata(&path)
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            if self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            if let Some((at, _)) = self.retry.get(&path) {
                if std::time::Instant::now() < *at {
                    continue;
                }
            }
            let key = match provision::load_stick_key(&config.stick_key) {
                Ok(key) => key,
                Err(error) => {
                    tracing::error!(%error, "a config stick is inserted but the stick key is not usable");
                    self.seen.insert(path.clone(), stamp);
                    self.refused = Some(path);
                    return StickEvent::Refused(error.to_string());
                }
            };
            enrolling(true).await;
            let result = provision::provision(&config.state_dir, &key, clock, &path).await;
            enrolling(false).await;
            match result {
                Ok(Provisioned::Enrolled(_)) => {
                    self.seen.insert(path, stamp);
                    self.refused = None;
                    return StickEvent::Provisioned;
                }
                Ok(Provisioned::AlreadyEnrolled(e)) => {
                    tracing::info!(file = %path.display(), device = %e.device, token_id = %e.token_id, "config stick already used by this device; nothing to do");
                    self.seen.insert(path, stamp);
                }
                Err(error @ ProvisionError::Refused { .. }) => {
                    tracing::warn!(%error, "config stick refused; nothing changed");
                    self.seen.insert(path.clone(), stamp);
                    self.refused = Some(path);
                    return StickEvent::Refused(error.to_string());
                }
                Err(error) if error.is_transient() => {
                    let wait = self
                        .retry
                        .get(&path)
                        .map_or(RETRY_INITIAL, |(_, w)| (*w * 2).min(RETRY_MAX));
                    tracing::warn!(file = %path.display(), %error, ?wait, "enrollment failed; trying the stick again later");
                    self.retry
                        .insert(path, (std::time::Instant::now() + wait, wait));
                    return StickEvent::EnrollFailed(error.to_string());
                }
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "enrollment failed; nothing changed");
                    self.seen.insert(path, stamp);
                    return StickEvent::EnrollFailed(error.to_string());
                }
            }
        }
        StickEvent::Nothing { refusal_cleared }
    }
}

/// The phase without an identity: shows "waiting for a config stick" and looks for one.
async fn waiting(
    config: &AgentConfig,
    clock: &Arc<AgentClock>,
    status_tx: &watch::Sender<AgentStatus>,
    sticks: &mut StickWatch,
    poke: &tokio::sync::Notify,
    mut stop: watch::Receiver<bool>,
) -> Result<PhaseEnd, DaemonError> {
    let mut status = AgentStatus {
        state: RunState::NotProvisioned,
        provisioning: ProvisioningStatus {
            stick_roots: config
                .stick_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect(),
            ..ProvisioningStatus::default()
        },
        ..AgentStatus::default()
    };
    tracing::info!(roots = ?status.provisioning.stick_roots, "not provisioned; waiting for a config stick");
    let publish = |status: &mut AgentStatus| {
        status.pid = std::process::id();
        status.version = crate::update::VERSION.to_owned();
        status.updated_unix_ms = unix_ms_now();
        status.provisioning.clock_synced = clock.is_synced();
        status.provisioning.time_floor_unix = unix(clock.floor());
        status.state = if status.provisioning.enrolling {
            RunState::Enrolling
        } else {
            RunState::NotProvisioned
        };
        status.last_error = status
            .provisioning
            .stick_refused
            .clone()
            .or_else(|| status.provisioning.enroll_error.clone());
        write_status(&config.state_dir, status, status_tx);
    };
    publish(&mut status);
    loop {
        let event = {
            let cell = std::sync::Mutex::new(&mut status);
            sticks
                .look(config, clock, |on| {
                    let mut s = cell.lock().unwrap_or_else(|p| p.into_inner());
                    s.provisioning.enrolling = on;
                    publish(&mut s);
                    std::future::ready(())
                })
                .await
        };
        match event {
            StickEvent::Provisioned => return Ok(PhaseEnd::Provisioned),
            StickEvent::Refused(reason) => {
                status.provisioning.stick_refused = Some(reason);
                publish(&mut status);
            }
            StickEvent::EnrollFailed(reason) => {
                status.provisioning.enroll_error = Some(reason);
                publish(&mut status);
            }
            StickEvent::Nothing { refusal_cleared } => {
                if refusal_cleared {
                    status.provisioning.stick_refused = None;
                    status.provisioning.enroll_error = None;
                    publish(&mut status);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(STICK_POLL) => {}
            _ = poke.notified() => sticks.forget_all(),
            _ = stop.changed() => {
                status.state = RunState::Stopped;
                status.updated_unix_ms = unix_ms_now();
                write_status(&config.state_dir, &status, status_tx);
                return Ok(PhaseEnd::Stopped);
            }
        }
    }
}

/// The phase with an identity: the data flow of [`supervise`], plus the provisioning loop
/// (new sticks, renewal, an enrollment changed by `skolebro-agent provision`).
#[allow(clippy::too_many_arguments)]
async fn running(
    device: Device,
    installed: &AgentConfig,
    clock: &Arc<AgentClock>,
    updater: &Arc<Updater>,
    status_tx: &watch::Sender<AgentStatus>,
    live: &CoreSlot,
    current_wake: &Arc<Mutex<Option<mpsc::Sender<()>>>>,
    sticks: &mut StickWatch,
    poke: &tokio::sync::Notify,
    mut stop: watch::Receiver<bool>,
) -> Result<PhaseEnd, DaemonError> {
    let Device {
        config,
        creds,
        enrollment,
    } = device;
    let client = provision::central_client(
        &creds.cert_pem,
        &creds.key_pem,
        &creds.ca_pem,
        clock.clone(),
    )?;
    let central = Central::new(client, &creds.url);

    let state_dir = config.state_dir.clone();
    let identity = creds.identity.clone();
    let policy = config.safety.clone();
    let outbox = config.outbox.outbox_config();
    let dir = state_dir.clone();
    let site_has_records = enrollment.as_ref().map(|e| e.site_has_records);
    let (enqueuer, report) = tokio::task::spawn_blocking(move || {
        if let Some(site_has_records) = site_has_records {
            if provision::settle_chain(&dir, &identity, outbox.clone(), site_has_records)? {
                tracing::info!(device = %identity.device, site_has_records, "new device: the chain starts afresh");
            }
        }
        Enqueuer::open(&dir, identity, policy, outbox).map_err(DaemonError::from)
    })
    .await
    .map_err(|e| DaemonError::Task(e.to_string()))??;
    if !report.is_clean() {
        tracing::warn!(report = ?report, "outbox recovered from an unclean stop");
    }
    let core: Shared = Arc::new(Mutex::new(Core::new(
        enqueuer,
        state_dir,
        config.after_ingest,
        status_tx.clone(),
    )));
    let device_id = creds.identity.device.to_string();
    let site_id = creds.identity.site.to_string();
    let roots: Vec<String> = installed
        .stick_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let validity = enrollment
        .as_ref()
        .and_then(Enrollment::cert_validity)
        .or_else(|| skolebro_provisioning::tls::certificate_validity(&creds.cert_pem).ok());
    {
        let e = enrollment.clone();
        let synced = clock.is_synced();
        let floor = unix(clock.floor());
        with_core(&core, move |c| {
            c.provisioning(|p| {
                *p = ProvisioningStatus {
                    device: Some(device_id),
                    site: Some(site_id),
                    token_id: e.as_ref().map(|e| e.token_id.clone()),
                    enrolled_unix: e.as_ref().map(|e| e.enrolled_unix),
                    renewed_unix: e.as_ref().and_then(|e| e.renewed_unix),
                    cert_not_after_unix: validity.map(|(_, to)| unix(to)),
                    stick_roots: roots,
                    clock_synced: synced,
                    time_floor_unix: floor,
                    ..ProvisioningStatus::default()
                }
            })
        })
        .await;
    }
    *live.lock().unwrap_or_else(|p| p.into_inner()) = Some(core.clone());

    let (inner_stop_tx, inner_stop_rx) = watch::channel(false);
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    *current_wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake_tx.clone());
    let mut flow = tokio::spawn(supervise(
        config.clone(),
        core.clone(),
        central.clone(),
        updater.clone(),
        wake_tx,
        wake_rx,
        inner_stop_rx,
    ));
    let watch_loop = provisioning_loop(
        installed, &config, clock, &core, &central, enrollment, sticks, poke,
    );
    let end = tokio::select! {
        _ = stop.changed() => Ok(PhaseEnd::Stopped),
        end = watch_loop => Ok(end),
        joined = &mut flow => match joined {
            Ok(Ok(())) => Ok(PhaseEnd::Stopped),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(DaemonError::Task(error.to_string())),
        },
    };
    let _ = inner_stop_tx.send(true);
    if !flow.is_finished() {
        match flow.await {
            Ok(Err(error)) => tracing::error!(%error, "the data flow stopped with an error"),
            Err(error) => tracing::error!(%error, "the data flow ended abnormally"),
            Ok(Ok(())) => {}
        }
    }
    *current_wake.lock().unwrap_or_else(|p| p.into_inner()) = None;
    *live.lock().unwrap_or_else(|p| p.into_inner()) = None;
    end
}

/// Watches for sticks, renews the certificate and notices an enrollment changed by another
/// process, while the data flow runs. Returns when the device was re-provisioned.
#[allow(clippy::too_many_arguments)]
async fn provisioning_loop(
    installed: &AgentConfig,
    config: &AgentConfig,
    clock: &Arc<AgentClock>,
    core: &Shared,
    central: &Central,
    mut enrollment: Option<Enrollment>,
    sticks: &mut StickWatch,
    poke: &tokio::sync::Notify,
) -> PhaseEnd {
    let mut renew_after: Option<std::time::Instant> = None;
    let mut renew_wait = RETRY_INITIAL;
    loop {
        // Another process (`skolebro-agent provision`) may have enrolled the device anew.
        let on_disk = Enrollment::load(&config.state_dir).ok().flatten();
        if on_disk.as_ref().map(|e| &e.token_id) != enrollment.as_ref().map(|e| &e.token_id) {
            tracing::info!("the enrollment changed on disk; restarting as the new device");
            return PhaseEnd::Provisioned;
        }

        let event = {
            let core = core.clone();
            sticks
                .look(installed, clock, move |on| {
                    let core = core.clone();
                    async move { with_core(&core, move |c| c.provisioning(|p| p.enrolling = on)).await }
                })
                .await
        };
        match event {
            StickEvent::Provisioned => return PhaseEnd::Provisioned,
            StickEvent::Refused(reason) => {
                with_core(core, move |c| {
                    c.provisioning(|p| p.stick_refused = Some(reason))
                })
                .await
            }
            StickEvent::EnrollFailed(reason) => {
                with_core(core, move |c| {
                    c.provisioning(|p| p.enroll_error = Some(reason))
                })
                .await
            }
            StickEvent::Nothing { refusal_cleared } => {
                if refusal_cleared {
                    with_core(core, |c| {
                        c.provisioning(|p| {
                            p.stick_refused = None;
                            p.enroll_error = None;
                        })
                    })
                    .await
                }
            }
        }

        let synced_now = clock.synced_now();
        let floor = unix(clock.floor());
        with_core(core, move |c| {
            c.provisioning(|p| {
                p.clock_synced = synced_now.is_some();
                // The floor is reported by the hour, so the status file is not rewritten
                // every few seconds.
                if floor.abs_diff(p.time_floor_unix) >= 3600 {
                    p.time_floor_unix = floor;
                }
            })
        })
        .await;

        if let Some(current) = &enrollment {
            let due = current.cert_validity().map(|(from, to)| {
                let lifetime = to.duration_since(from).unwrap_or_default();
                let early = lifetime.mul_f64(config.renew_before_fraction.clamp(0.0, 1.0));
                (to.checked_sub(early).unwrap_or(from), to)
            });
            let expired = match (synced_now, due) {
                (Some(now), Some((_, to))) if now >= to => Some(format!(
                    "the device certificate expired at {}; insert a new config stick",
                    crate::daemon::clock(unix(to) * 1000, unix_ms_now())
                )),
                _ => None,
            };
            with_core(core, move |c| c.certificate_problem(expired)).await;
            let waited = renew_after.is_none_or(|t| std::time::Instant::now() >= t);
            if let (Some((renew_at, _)), true) = (due, waited) {
                if clock.now() >= renew_at {
                    match provision::renew(&config.state_dir, central, current, clock).await {
                        Ok(next) => match provision::central_client(
                            &next.cert_pem,
                            &next.key_pem,
                            &next.central_ca_pem,
                            clock.clone(),
                        ) {
                            Ok(client) => {
                                central.replace_client(client);
                                let not_after = next.cert_validity().map(|(_, to)| unix(to));
                                let renewed = next.renewed_unix;
                                tracing::info!(device = %next.device, not_after, "certificate renewed");
                                with_core(core, move |c| {
                                    c.provisioning(|p| {
                                        p.cert_not_after_unix = not_after;
                                        p.renewed_unix = renewed;
                                    })
                                })
                                .await;
                                enrollment = Some(next);
                                renew_after = None;
                                renew_wait = RETRY_INITIAL;
                            }
                            Err(error) => {
                                tracing::error!(%error, "the renewed certificate cannot be used");
                            }
                        },
                        Err(ProvisionError::Renew(UplinkError::Revoked)) => {
                            tracing::error!(
                                "central revoked this device; a new config stick enrolls it again"
                            );
                            with_core(core, |c| c.revoked()).await;
                            renew_after = Some(std::time::Instant::now() + RETRY_MAX);
                        }
                        Err(error) => {
                            tracing::warn!(%error, wait = ?renew_wait, "certificate renewal failed; trying again later");
                            renew_after = Some(std::time::Instant::now() + renew_wait);
                            renew_wait = (renew_wait * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
        }

        tokio::select! {
            _ = tokio::time::sleep(STICK_POLL) => {}
            _ = poke.notified() => sticks.forget_all(),
        }
    }
}

async fn supervise(
    config: AgentConfig,
    core: Shared,
    central: Central,
    updater: Arc<Updater>,
    wake_tx: mpsc::Sender<()>,
    wake_rx: mpsc::Receiver<()>,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let (ready_tx, ready_rx) = mpsc::channel::<PathBuf>(4);
    let (retry_tx, retry_rx) = mpsc::channel::<PathBuf>(16);
    // Anything already in the outbox goes out at once.
    let _ = wake_tx.try_send(());

    let watcher = tokio::spawn(crate::watch::run(
        config.drop_dir(),
        Duration::from_millis(config.settle_ms),
        Duration::from_secs(config.rescan_seconds.max(1)),
        ready_tx,
        retry_rx,
        stop.clone(),
    ));
    let pipeline = tokio::spawn(pipeline(
        config.clone(),
        core.clone(),
        ready_rx,
        retry_tx,
        wake_tx.clone(),
        stop.clone(),
    ));
    let pusher = tokio::spawn(uplink::push_loop(
        core.clone(),
        central.clone(),
        Backoff::new(config.uplink.initial(), config.uplink.max()),
        wake_rx,
        stop.clone(),
    ));
    let heartbeat = tokio::spawn(uplink::heartbeat_loop(
        core.clone(),
        central,
        Duration::from_secs(config.heartbeat_seconds.max(1)),
        updater,
        wake_tx,
        stop.clone(),
    ));

    let watched = watcher.await;
    // The watcher ends on shutdown, or on an error: either way, stop the others.
    let mut result = match watched {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(DaemonError::from(error)),
        Err(error) => Err(DaemonError::Task(error.to_string())),
    };
    if result.is_err() {
        tracing::error!("the watcher failed; stopping");
    }
    for task in [pipeline, pusher, heartbeat] {
        if result.is_err() {
            task.abort();
        }
        if let Err(error) = task.await {
            if !error.is_cancelled() && result.is_ok() {
                result = Err(DaemonError::Task(error.to_string()));
            }
        }
    }
    with_core(&core, |c| c.stopped()).await;
    result
}

/// How long the core may stay busy (an export being read and sealed holds it) before the
/// watchdog stops being kicked and the hardware resets the Pi.
const CORE_DEADLINE: Duration = Duration::from_secs(120);

/// The front panel's loop, on its own thread for the daemon's whole life: every `TICK_MS` it
/// shows the daemon's state on the LED, reads the button (a short press pushes the outbox
/// now; a long hold looks at the stick again, even one already handled), and kicks the
/// watchdog as long as the core of the running phase answers. With `panel = "none"` it only
/// supervises, which costs nothing.
fn drive_panel(
    config: &crate::panel::PanelConfig,
    live: &CoreSlot,
    status: watch::Receiver<AgentStatus>,
    wake: &mpsc::Sender<()>,
    poke: &tokio::sync::Notify,
    stop: &watch::Receiver<bool>,
) {
    use crate::panel::{Gesture, Panel, TICK_MS};
    let mut panel = match Panel::open(config) {
        Ok(panel) => panel,
        Err(error) => {
            tracing::error!(%error, "front panel unavailable; running without it");
            return;
        }
    };
    let tick = Duration::from_millis(u64::from(TICK_MS));
    let deadline = u32::try_from(CORE_DEADLINE.as_millis() / tick.as_millis()).unwrap_or(u32::MAX);
    let core_task = panel.register("core", deadline).ok();
    let mut shown = None;
    // A lifecycle that was dropped rather than stopped (its runtime shut down under it)
    // never sends `true`: a closed channel ends the thread too, or the runtime's shutdown
    // would wait for this loop forever.
    while !*stop.borrow() && stop.has_changed().is_ok() {
        std::thread::sleep(tick);
        let state = panel_state(&status.borrow());
        if shown != Some(state) {
            panel.show(state);
            shown = Some(state);
        }
        if let Some(task) = core_task {
            let core = live.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let answers = core.is_none_or(|core| core.try_lock().is_ok());
            if answers {
                let _ = panel.alive(task);
            }
        }
        let ticked = panel.tick();
        for fault in &ticked.faults {
            tracing::warn!("front panel: {fault}");
        }
        match ticked.gesture {
            Some(Gesture::SyncNow) => {
                tracing::info!("button: sync now");
                let _ = wake.try_send(());
            }
            Some(Gesture::Reprovision) => {
                tracing::info!("button: looking at the config stick again");
                poke.notify_one();
            }
            None => {}
        }
    }
}

/// The LED pattern for a status: a refused stick shows as an error while it is inserted.
fn panel_state(status: &AgentStatus) -> crate::panel::AgentState {
    use crate::panel::AgentState;
    match status.state {
        RunState::NotProvisioned
            if status.provisioning.stick_refused.is_some()
                || status.provisioning.enroll_error.is_some() =>
        {
            AgentState::Error
        }
        RunState::NotProvisioned => AgentState::NotProvisioned,
        RunState::Enrolling => AgentState::Enrolling,
        RunState::Holding => AgentState::HoldingDelta,
        RunState::CentralUnreachable => AgentState::CentralUnreachable,
        RunState::Error | RunState::Revoked => AgentState::Error,
        RunState::Starting | RunState::Healthy | RunState::Stopped => AgentState::Healthy,
    }
}

/// Reads each complete export and offers it.
async fn pipeline(
    config: AgentConfig,
    core: Shared,
    mut ready: mpsc::Receiver<PathBuf>,
    retry: mpsc::Sender<PathBuf>,
    wake: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let options = config.reader_options();
    loop {
        let path = tokio::select! {
            path = ready.recv() => match path { Some(path) => path, None => return },
            _ = stop.changed() => return,
        };
        let written = written_unix_ms(&path);
        if let Some(written) = written {
            let p = path.clone();
            if with_core(&core, move |c| c.refuse_if_stale(&p, written)).await {
                continue;
            }
        }
        let (format, opts, p) = (config.format, options.clone(), path.clone());
        let read = tokio::task::spawn_blocking(move || read_export(&p, format, &opts)).await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(file = %file_name(&path), %error, "reading the export panicked");
                continue;
            }
        };
        match read {
            Err(error) => {
                let p = path.clone();
                with_core(&core, move |c| c.rejected(&p, &error)).await;
            }
            Ok((_, export)) => {
                let p = path.clone();
                let outcome = with_core(&core, move |c| c.ingest(&p, export, written)).await;
                match outcome {
                    Ok(Outcome::Enqueued { .. }) => {
                        let _ = wake.try_send(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(file = %file_name(&path), %error, "cannot enqueue; will retry at the next rescan");
                        let _ = retry.try_send(path);
                    }
                }
            }
        }
    }
}

/// A file's modification time in unix ms, if the file system keeps one.
fn written_unix_ms(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// A unix-ms time as `HH:MM` (UTC) if it is today, else `YYYY-MM-DD HH:MM`.
pub fn clock(unix_ms: u64, now_ms: u64) -> String {
    let (date, hm) = split(unix_ms);
    let (today, _) = split(now_ms);
    if date == today {
        format!("{hm} UTC")
    } else {
        format!("{date} {hm} UTC")
    }
}

fn split(unix_ms: u64) -> (String, String) {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}", rem / 3600, (rem % 3600) / 60),
    )
}

/// A duration in plain words ("20 min", "3 h 5 min", "2 days").
pub fn age(ms: u64) -> String {
    let min = ms / 60_000;
    match min {
        0 => format!("{} s", ms / 1000),
        1..=59 => format!("{min} min"),
        60..=2879 => format!("{} h {} min", min / 60, min % 60),
        _ => format!("{} days", min / 1440),
    }
}

/// What `skolebro-agent status` prints: the agent's state in plain words.
pub fn describe_status(status: &AgentStatus, running: bool, now_ms: u64) -> String {
    let mut out = String::new();
    if !running {
        out.push_str(&format!(
            "The agent is not running (last seen {}).\n",
            clock(status.updated_unix_ms, now_ms)
        ));
    }
    let export = match (status.last_export_unix_ms, status.last_export_students) {
        (Some(t), Some(n)) => format!("last export {} ({n} students)", clock(t, now_ms)),
        (Some(t), None) => format!("last export {}", clock(t, now_ms)),
        _ => "no export yet".into(),
    };
    let outbox = if status.outbox_depth == 0 {
        "outbox empty".to_owned()
    } else {
        let oldest = status
            .oldest_unacked_unix_ms
            .map(|t| format!(", oldest {}", age(now_ms.saturating_sub(t))))
            .unwrap_or_default();
        format!("{} batches queued{oldest}", status.outbox_depth)
    };
    let acked = match status.last_ack_unix_ms {
        Some(t) if status.outbox_depth == 0 => {
            format!("sent and acknowledged {}", clock(t, now_ms))
        }
        Some(t) => format!("last acknowledged {}", clock(t, now_ms)),
        None => "nothing acknowledged yet".into(),
    };
    let line = match status.state {
        RunState::Holding => {
            let held = status.held.as_ref();
            let reasons = held.map(|h| h.reasons.join("; ")).unwrap_or_default();
            let id = held.map(|h| h.id.as_str()).unwrap_or("?");
            format!(
                "Holding a delta for review: {reasons}. Release or reject it from central (held id {id}); {export}; {outbox}."
            )
        }
        RunState::CentralUnreachable => format!(
            "Waiting for central since {} ({outbox}); {export}.",
            status
                .unreachable_since_unix_ms
                .map(|t| clock(t, now_ms))
                .unwrap_or_else(|| "?".into())
        ),
        RunState::Error => format!(
            "Error: {}. {export}; {outbox}.",
            status.last_error.as_deref().unwrap_or("unknown")
        ),
        RunState::Starting => format!("Starting: {export}; {outbox}."),
        RunState::NotProvisioned => {
            let p = &status.provisioning;
            let mut line = format!(
                "Waiting for a config stick (looking in {}).",
                if p.stick_roots.is_empty() {
                    "no folders".to_owned()
                } else {
                    p.stick_roots.join(", ")
                }
            );
            if let Some(reason) = &p.stick_refused {
                line.push_str(&format!(" Stick refused: {reason}."));
            }
            if let Some(reason) = &p.enroll_error {
                line.push_str(&format!(" Enrollment failed: {reason}."));
            }
            line
        }
        RunState::Enrolling => "Enrolling with central from the config stick.".to_owned(),
        RunState::Revoked => format!(
            "Revoked by central: this device may no longer send. Insert a new config stick to enroll it again; {outbox}."
        ),
        RunState::Healthy | RunState::Stopped => {
            format!("Healthy: {export}, {acked}; {outbox}.")
        }
    };
    out.push_str(&line);
    out.push('\n');
    let p = &status.provisioning;
    if let (Some(device), Some(site)) = (&p.device, &p.site) {
        let how = match &p.token_id {
            Some(token) => format!("with stick token {token}"),
            None => "by hand in agent.toml".to_owned(),
        };
        let until = p
            .cert_not_after_unix
            .map(|t| format!("; certificate valid until {}", clock(t * 1000, now_ms)))
            .unwrap_or_default();
        let renewed = p
            .renewed_unix
            .map(|t| format!(", renewed {}", clock(t * 1000, now_ms)))
            .unwrap_or_default();
        out.push_str(&format!(
            "Enrolled as device {device} for site {site} ({how}){until}{renewed}.\n"
        ));
    }
    if status.state != RunState::Stopped && !p.clock_synced && p.time_floor_unix > 0 {
        out.push_str(&format!(
            "The clock is not synced: certificates are checked against no earlier than {}.\n",
            clock(p.time_floor_unix * 1000, now_ms)
        ));
    }
    if status.deviations.errors + status.deviations.warnings > 0 {
        out.push_str(&format!(
            "The last export had {} errors and {} warnings to fix in the school system (`skolebro-agent check`).\n",
            status.deviations.errors, status.deviations.warnings
        ));
    }
    if status.awaiting_export_for_snapshot {
        out.push_str("Central needs a full snapshot: it goes out with the next export.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_the_date_only_for_other_days() {
        let noon = 1_764_000_000_000; // 2025-11-24 16:00 UTC
        assert_eq!(clock(noon, noon + 60_000), "16:00 UTC");
        assert_eq!(clock(noon, noon + 86_400_000), "2025-11-24 16:00 UTC");
    }

    #[test]
    fn the_status_reads_as_plain_words() {
        let now = 1_764_000_000_000;
        let healthy = AgentStatus {
            state: RunState::Healthy,
            last_export_unix_ms: Some(now - 60_000),
            last_export_students: Some(300),
            last_ack_unix_ms: Some(now - 30_000),
            ..AgentStatus::default()
        };
        let text = describe_status(&healthy, true, now);
        assert!(
            text.starts_with("Healthy: last export 15:59 UTC (300 students), sent and acknowledged 15:59 UTC; outbox empty."),
            "{text}"
        );
        let waiting = AgentStatus {
            state: RunState::CentralUnreachable,
            unreachable_since_unix_ms: Some(now - 20 * 60_000),
            outbox_depth: 3,
            oldest_unacked_unix_ms: Some(now - 20 * 60_000),
            ..AgentStatus::default()
        };
        let text = describe_status(&waiting, true, now);
        assert!(
            text.starts_with(
                "Waiting for central since 15:40 UTC (3 batches queued, oldest 20 min)"
            ),
            "{text}"
        );
        let holding = AgentStatus {
            state: RunState::Holding,
            held: Some(api::HeldDelta {
                id: "held-1".into(),
                reasons: vec!["48 of 59 students would be deleted (81%, limit 10%)".into()],
                upserts: BTreeMap::new(),
                deletes: BTreeMap::new(),
            }),
            ..AgentStatus::default()
        };
        let text = describe_status(&holding, false, now);
        assert!(text.contains("not running"), "{text}");
        assert!(
            text.contains("Holding a delta for review: 48 of 59 students would be deleted"),
            "{text}"
        );
    }

    #[test]
    fn an_unreadable_export_is_moved_aside_and_only_the_newest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.csv");
        let second = dir.path().join("b.csv");
        std::fs::write(&first, "x").unwrap();
        std::fs::write(&second, "y").unwrap();
        move_to_rejected(&first, "bad").unwrap();
        move_to_rejected(&second, "worse").unwrap();
        let rejected = dir.path().join(REJECTED_DIR);
        let mut names: Vec<_> = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b.csv", "b.csv.error.txt"]);
        assert!(!second.exists());
    }

    #[test]
    fn an_export_written_before_the_one_taken_in_is_set_aside_and_not_sent() {
        use crate::enqueue::tests::export;
        use crate::enqueue::Identity;
        use crate::outbox::OutboxConfig;
        use crate::safety::SafetyPolicy;
        use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};

        let dir = tempfile::tempdir().unwrap();
        let identity = Identity {
            device: skolebro_protocol::DeviceId::new("pi-46505-1").unwrap(),
            site: skolebro_protocol::SiteId::new("46505").unwrap(),
            signing_key: DeviceSigningKey::from_bytes([7; 32]),
            central_key: SealingPrivateKey::from_bytes([9; 32]).public_key(),
            site_secret: skolebro_protocol::SiteSecret::from_bytes([3; 32]),
        };
        let open = || {
            Enqueuer::open(
                dir.path(),
                identity.clone(),
                SafetyPolicy::default(),
                OutboxConfig::default(),
            )
            .unwrap()
            .0
        };
        let drop_dir = dir.path().join("drop");
        std::fs::create_dir_all(&drop_dir).unwrap();
        let (newer, older) = (drop_dir.join("b.csv"), drop_dir.join("a.csv"));
        std::fs::write(&newer, "b").unwrap();
        std::fs::write(&older, "a").unwrap();
        let (status_tx, _status_rx) = watch::channel(AgentStatus::default());
        let mut core = Core::new(open(), dir.path().to_owned(), AfterIngest::Keep, status_tx);
        assert!(!core.refuse_if_stale(&newer, 2_000_000));
        core.ingest(&newer, export(0..30, "1A"), Some(2_000_000))
            .unwrap();
        let depth = core.enqueuer().outbox().status().depth;

        // An export written at the same time is taken in; one written earlier is not.
        assert!(!core.refuse_if_stale(&newer, 2_000_000));
        assert!(core.refuse_if_stale(&older, 1_999_999));
        assert!(!older.exists());
        let note =
            std::fs::read_to_string(drop_dir.join(REJECTED_DIR).join("a.csv.error.txt")).unwrap();
        assert!(note.contains("turn the county's copy"), "{note}");
        assert_eq!(core.enqueuer().outbox().status().depth, depth);
        assert!(core
            .status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("before the one already sent")));

        // A file from a clock that ran ahead counts as written now, not in the future.
        let ahead = unix_ms_now() + 86_400_000;
        core.ingest(&newer, export(0..31, "1A"), Some(ahead))
            .unwrap();
        assert!(!core.refuse_if_stale(&newer, unix_ms_now() + 1_000));

        // The newest export's time survives a restart (it is kept in status.json).
        drop(core);
        let (status_tx, _status_rx) = watch::channel(AgentStatus::default());
        let mut core = Core::new(open(), dir.path().to_owned(), AfterIngest::Keep, status_tx);
        std::fs::write(&older, "a").unwrap();
        assert!(core.refuse_if_stale(&older, 1_000_000));
    }
}

/// The whole daemon on a temp folder with central unreachable: a dropped export is taken
/// in, sealed and removed, a bad one is moved aside, and shutdown is clean.
#[cfg(test)]
mod run_tests {
    use std::time::Instant;

    use skolebro_provisioning::pki::{DevPki, Validity};

    use super::*;
    use crate::config::{CentralConfig, IdentityConfig, UplinkSettings};

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_runtime_shut_down_under_a_running_daemon_does_not_wait_for_it_forever() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            state_dir: dir.path().join("state"),
            ..AgentConfig::default()
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let handle = runtime.block_on(async {
                let handle = start(config).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                handle
            });
            // As when a test panics or `main` returns without stopping the daemon.
            drop(runtime);
            drop(handle);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the runtime's shutdown waited for the daemon's threads"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_export_is_sealed_and_removed_while_central_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).unwrap();
        let device = skolebro_protocol::DeviceId::new("pi-1").unwrap();
        let site = skolebro_protocol::SiteId::new("46505").unwrap();
        let creds = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .unwrap();
        std::fs::write(d.join("device.pem"), &creds.cert_pem).unwrap();
        std::fs::write(d.join("device.key"), &creds.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), pki.central_ca.cert_pem()).unwrap();
        std::fs::write(d.join("signing.key"), "07".repeat(32)).unwrap();
        std::fs::write(d.join("site.secret"), "03".repeat(32)).unwrap();
        // Nothing listens on this port: the listener is dropped at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = AgentConfig {
            state_dir: d.join("state"),
            settle_ms: 50,
            rescan_seconds: 1,
            heartbeat_seconds: 3600,
            central: Some(CentralConfig {
                url: format!("https://127.0.0.1:{port}"),
                ca: d.join("ca.pem"),
                sealing_key: hex::encode(
                    skolebro_protocol::envelope::SealingPrivateKey::from_bytes([9; 32])
                        .public_key()
                        .to_bytes(),
                ),
            }),
            identity: Some(IdentityConfig {
                device: "pi-1".into(),
                site: "46505".into(),
                cert: d.join("device.pem"),
                key: d.join("device.key"),
                signing_key: d.join("signing.key"),
                site_secret: d.join("site.secret"),
            }),
            uplink: UplinkSettings {
                backoff_initial_ms: 10,
                backoff_max_ms: 100,
            },
            ..AgentConfig::default()
        };
        let drop_dir = config.drop_dir();
        let handle = start(config.clone()).await.unwrap();

        let mut text =
            String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
        for n in 0..25 {
            text.push_str(&format!("46505;1A;elev{n};;Nordmann;Kari{n}\n"));
        }
        std::fs::create_dir_all(&drop_dir).unwrap();
        std::fs::write(drop_dir.join("elever.tmp"), &text).unwrap();
        std::fs::rename(drop_dir.join("elever.tmp"), drop_dir.join("elever.csv")).unwrap();
        std::fs::write(drop_dir.join("broken.xml"), "<enterprise><person>").unwrap();

        let status = handle.status.clone();
        until("the export to be sealed and removed", || {
            let s = status.borrow();
            s.outbox_depth == 1 && !drop_dir.join("elever.csv").exists()
        })
        .await;
        until("the bad export to be moved aside", || {
            drop_dir
                .join(REJECTED_DIR)
                .join("broken.xml.error.txt")
                .exists()
        })
        .await;
        until("central to be reported unreachable", || {
            status.borrow().unreachable_since_unix_ms.is_some()
        })
        .await;
        {
            let s = status.borrow();
            assert_eq!(s.last_export_students, Some(25));
            assert_eq!(s.last_export_file.as_deref(), Some("elever.csv"));
        }
        handle.stop().await.unwrap();
        let on_disk = AgentStatus::load(&config.state_dir).unwrap();
        assert_eq!(on_disk.state, RunState::Stopped);
        assert_eq!(
            on_disk.outbox_depth, 1,
            "the batch waits on disk for central"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_identity_the_daemon_waits_for_a_stick_and_refuses_a_foreign_one() {
        use crate::provision::testing::{body, write_bundle};
        use skolebro_protocol::stick::StickSigningKey;

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let platform = StickSigningKey::from_bytes([1; 32]);
        std::fs::write(
            d.join("stick.pub"),
            format!("{}\n", platform.verifying_key().to_hex()),
        )
        .unwrap();
        let config = AgentConfig {
            state_dir: d.join("state"),
            stick_roots: vec![d.join("media")],
            stick_key: d.join("stick.pub"),
            clock_synced_file: d.join("not-synced"),
            ..AgentConfig::default()
        };
        let handle = start(config.clone()).await.unwrap();
        let status = handle.status.clone();
        until("the waiting state", || {
            status.borrow().state == RunState::NotProvisioned
        })
        .await;
        let text = describe_status(&status.borrow(), true, unix_ms_now());
        assert!(text.starts_with("Waiting for a config stick"), "{text}");

        let stick = d.join("media").join("STICK");
        write_bundle(&stick, &body(), &StickSigningKey::from_bytes([2; 32]));
        until("the foreign stick to be refused", || {
            status.borrow().provisioning.stick_refused.is_some()
        })
        .await;
        {
            let s = status.borrow();
            assert_eq!(s.state, RunState::NotProvisioned);
            assert_eq!(panel_state(&s), crate::panel::AgentState::Error);
            let reason = s.provisioning.stick_refused.clone().unwrap();
            assert!(
                reason.contains("BUNDLE.SKB") && reason.contains("signature"),
                "{reason}"
            );
            let text = describe_status(&s, true, unix_ms_now());
            assert!(text.contains("Stick refused"), "{text}");
        }
        assert!(!config
            .state_dir
            .join(crate::provision::enrollment::ENROLLMENT_FILE)
            .exists());
        std::fs::remove_dir_all(&stick).unwrap();
        until("the refusal to clear with the stick gone", || {
            status.borrow().provisioning.stick_refused.is_none()
        })
        .await;
        assert_eq!(
            panel_state(&status.borrow()),
            crate::panel::AgentState::NotProvisioned
        );
        handle.stop().await.unwrap();
        let on_disk = AgentStatus::load(&config.state_dir).unwrap();
        assert_eq!(on_disk.state, RunState::Stopped);
    }
}
