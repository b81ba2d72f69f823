//! `Core`: the enqueue stage plus what the daemon knows about its progress, behind one lock.
//! Every stage of the running phase (pipeline, push, heartbeat, provisioning) changes the
//! agent's state through it, and every change is written to `status.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use skolebro_protocol::api;
use skolebro_protocol::envelope::ChainHead;
use skolebro_protocol::mask_in_text;
use skolebro_protocol::Entity;
use tokio::sync::watch;

use crate::config::AfterIngest;
use crate::drop_share;
use crate::enqueue::{EnqueueError, Enqueuer, HeldDelta, OfferOutcome};
use crate::outbox::{unix_ms_now, OutboxError, StoredBatch};
use crate::status::{fmt_when, write_status, AgentStatus, Arrival, ProvisioningStatus, RunState};
use crate::watch::file_name;
use skolebro_protocol::api::Command;
use skolebro_roster::deviation::{Deviation, Severity, Tally};
use skolebro_roster::diff::DiffSummary;
use skolebro_roster::validate::Validated;

use super::rejected::move_to_rejected;

pub(super) use skolebro_protocol::api::DeviationCounts;

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
        reasons: held.judgement.reason_texts(),
        causes: held.judgement.reasons.clone(),
        upserts: counts(&|s, e| s.added(e) + s.updated(e)),
        deletes: counts(&|s, e| s.deleted(e)),
        held_since_unix_ms: Some(held.held_at_ms),
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
    /// The export source cannot be reached or holds an export that is refused (cleared by
    /// the next look at it that finds neither).
    source: Option<String>,
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
    /// Where a `drop_share` command from central is applied; `None`: it is refused.
    drop_share: Option<drop_share::Target>,
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
        let mut guard = core.lock();
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
            drop_share: None,
        };
        core.publish();
        core
    }

    /// The enqueue stage, for inspection.
    pub fn enqueuer(&self) -> &Enqueuer {
        &self.enqueuer
    }

    /// Applies central's `drop_share` commands to `target`.
    pub fn with_drop_share(mut self, target: drop_share::Target) -> Core {
        self.drop_share = Some(target);
        self
    }

    /// A file in the drop folder larger than the drop share's size cap: removed unread (it
    /// sits in RAM on the share's tmpfs) and refused in the status.
    pub fn over_size_cap(&mut self, path: &Path, len: u64, cap: u64) {
        let name = file_name(path);
        tracing::warn!(file = %mask_in_text(&name), bytes = len, cap, "file in the drop folder over the drop share's size cap; removed unread");
        let why = format!(
            "it is {} MiB, over the drop share's cap of {} MiB",
            len >> 20,
            cap >> 20
        );
        let mut arrived = arrival(path, None);
        arrived.refused = true;
        arrived.outcome = format!("refused: {why}; removed unread, nothing sent");
        self.status.last_arrival = Some(arrived);
        if let Err(error) = std::fs::remove_file(path) {
            tracing::error!(file = %mask_in_text(&name), %error, "cannot remove the file over the size cap");
        }
        self.problems.export = Some(format!("{}: {why}; not read", mask_in_text(&name)));
        self.publish();
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
    pub fn rejected(&mut self, path: &Path, error: &skolebro_roster::reader::ReadError) {
        let name = file_name(path);
        tracing::warn!(file = %name, kind = %error_kind(error), "export cannot be read; moved to rejected/");
        let note = format!(
            "skolebro-agent could not read this export and did not send it.\n\n{error}\n\n\
             Fix the export in the school administrative system and export it again; \
             `skolebro-agent check FILE` shows the problems.\n"
        );
        self.refused(path, None, &format!("cannot be read ({})", error.kind));
        if let Err(e) = move_to_rejected(path, &note) {
            tracing::error!(file = %name, error = %e, "cannot move the unreadable export aside");
        }
        self.problems.export = Some(format!("export {name} cannot be read: {}", error.kind));
        self.publish();
    }

    /// Puts an export's deviations into the status (and so the next heartbeat).
    /// `tally` counts every deviation; `deviations` holds the rows kept of them.
    fn report_deviations(&mut self, deviations: &[Deviation], tally: &Tally) {
        self.status.deviations = DeviationCounts {
            errors: tally.with_severity(Severity::Error),
            warnings: tally.with_severity(Severity::Warning),
        };
        self.status.deviation_groups = skolebro_roster::deviation::group(deviations, tally);
    }

    /// Refuses an export naming a school the site is not registered with
    /// (`skolebro_roster::site`): nothing of it is enqueued. Its deviations, the `foreign`
    /// ones first, go into the status and the heartbeat, so the school and central see which
    /// school it named; the file goes to `rejected/` with a note saying the same.
    pub fn refuse_foreign_schools(
        &mut self,
        path: &Path,
        export: Validated,
        foreign: Vec<Deviation>,
    ) {
        let name = file_name(path);
        tracing::warn!(file = %name, schools = foreign.len(), "export names schools outside the site; moved to rejected/");
        let reasons: Vec<&str> = foreign.iter().map(|d| d.detail.as_str()).collect();
        let note = format!(
            "skolebro-agent did not send this export: it names a school this site is not \
             registered with.\n\n{}\n\nExport only this site's schools from the school \
             administrative system, or ask central operations to register the school with \
             this site (or move it here).\n",
            reasons.join("\n")
        );
        self.refused(path, None, "it names a school outside this site");
        self.report_foreign_schools(&name, export, foreign);
        if let Err(e) = move_to_rejected(path, &note) {
            tracing::error!(file = %name, error = %e, "cannot move the refused export aside");
        }
    }

    /// Refuses a pulled roster naming a school the site is not registered with, as
    /// [`Core::refuse_foreign_schools`] refuses a file; there is no file to set aside.
    pub fn refuse_foreign_pull(&mut self, name: &str, export: Validated, foreign: Vec<Deviation>) {
        tracing::warn!(source = %name, schools = foreign.len(), "pulled roster names schools outside the site; not sent");
        self.report_foreign_schools(name, export, foreign);
    }

    /// Puts a refused export's deviations, the `foreign` ones first, into the status.
    fn report_foreign_schools(&mut self, name: &str, export: Validated, foreign: Vec<Deviation>) {
        let mut tally = export.tally;
        for deviation in &foreign {
            tally.add(deviation.severity, deviation.code);
        }
        let mut deviations = foreign;
        deviations.extend(export.deviations);
        self.report_deviations(&deviations, &tally);
        self.status.last_export_unix_ms = Some(unix_ms_now());
        self.status.last_export_file = Some(name.to_owned());
        self.problems.export = Some(format!(
            "export {name} names a school outside this site; not sent"
        ));
        // The status first: whoever sees the file moved aside finds the status saying why.
        self.publish();
    }

    /// The agent stopped (crashed, was killed for memory, lost power) or panicked while
    /// reading this export: it is moved aside with a note, not read again, so that one file
    /// cannot stop the school's deliveries (the poison-pill rule, see `reading`).
    pub fn stopped_while_reading(&mut self, path: &Path) {
        let name = file_name(path);
        tracing::warn!(file = %name, "the agent stopped while reading this export; moved to rejected/");
        let note = "skolebro-agent stopped while it was reading this export (it crashed, ran \
             out of memory or lost power), so it set the file aside and did not send it, \
             rather than stop on it again.\n\n\
             Check the export in the school administrative system (is it far larger than \
             usual, or full of empty lines?) and export it again; `skolebro-agent check FILE` \
             shows what it holds. If a fresh export is set aside too, tell the county's \
             operator.\n";
        let problem =
            format!("the agent stopped while reading export {name}; it was set aside, not sent");
        self.set_aside(
            path,
            None,
            "the agent stopped while reading it",
            note,
            problem,
        );
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
        let (written, newest) = (fmt_when(written_unix_ms, now), fmt_when(newest, now));
        tracing::warn!(file = %name, %written, %newest, "export is older than the one taken in; moved to rejected/");
        let note = format!(
            "skolebro-agent did not send this export: it was written {written}, before the \
             export it has already sent (written {newest}). Sending it would turn the county's \
             copy of the school's roster back to an older state.\n\n\
             If this file is meant to replace the newer one, export it again from the school \
             administrative system (or save it anew), so that it is the newest file.\n"
        );
        let problem = format!(
            "export {name} was written {written}, before the one already sent ({newest}); not sent"
        );
        let why = "written before the export already sent";
        self.set_aside(path, Some(written_unix_ms), why, &note, problem);
        true
    }

    /// Refuses an export that holds changes only (a OneRoster or IMS delta) while central
    /// needs the whole roster (a gap, a `resync`, a new chain): a snapshot made of it would
    /// close every record it does not name. Moves it to `rejected/` with a note, and says in
    /// the status that a full export is awaited. Returns whether it was refused.
    pub fn refuse_if_partial(
        &mut self,
        path: &Path,
        export: &Validated,
        written_unix_ms: Option<u64>,
    ) -> bool {
        if !export.partial || !self.needs_full_roster() {
            return false;
        }
        let name = file_name(path);
        tracing::warn!(file = %name, "a delta export while central needs the whole roster; moved to rejected/");
        let note = "skolebro-agent did not send this export: it holds only changes (a delta), \
             and the county's platform needs the school's whole roster first (it asked for a \
             fresh start, or this Pi is new). Sending the changes alone would remove everyone \
             they do not name from the county's copy.\n\n\
             Export the whole roster (a full export, not a delta) from the school \
             administrative system; deltas are taken again after it.\n";
        self.status.awaiting_export_for_snapshot = true;
        let problem = format!(
            "export {name} holds changes only, and central needs the whole roster; not sent"
        );
        let why = "changes only, while the whole roster is needed";
        self.set_aside(path, written_unix_ms, why, note, problem);
        true
    }

    /// Records how long the export about to be ingested took to read and validate; it is
    /// published with the ingest that follows.
    pub fn read_took(&mut self, took: std::time::Duration) {
        self.status.last_export_read_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }

    /// Offers a freshly read export and disposes of its file per `after_ingest`.
    /// `written_unix_ms` is the file's modification time, remembered so an older export
    /// dropped later is refused ([`Core::refuse_if_stale`]).
    pub fn ingest(
        &mut self,
        path: &Path,
        export: Validated,
        written_unix_ms: Option<u64>,
    ) -> Result<OfferOutcome, EnqueueError> {
        let name = file_name(path);
        let arrived = arrival(path, written_unix_ms);
        let outcome = self.offer(&name, export)?;
        self.status.last_arrival = Some(arrived);
        self.arrival_taken_in(&outcome);
        // Remembered no later than now: a file from a host whose clock ran ahead must not
        // make the exports written after its clock is fixed look stale.
        self.status.last_export_written_unix_ms = self
            .status
            .last_export_written_unix_ms
            .max(written_unix_ms.map(|written| written.min(unix_ms_now())));
        // A waiting older export is superseded by this one, whatever became of it.
        if let Some(old) = self.waiting_file.take() {
            if old != path {
                self.dispose(&old);
            }
        }
        match outcome {
            OfferOutcome::Waiting => self.waiting_file = Some(path.to_owned()),
            _ => self.dispose(path),
        }
        self.publish();
        Ok(outcome)
    }

    /// True while central needs a whole roster (a gap, a `resync`, a new chain): a pulling
    /// source must then pull in full, since a delta cannot stand for the roster.
    pub fn needs_full_roster(&self) -> bool {
        self.enqueuer.checkpoint().needs_snapshot
    }

    /// Offers a roster pulled from a OneRoster REST source, named `name` in the status.
    /// `None`: not offered, because the pull is a delta and central needs a whole roster
    /// (see [`Core::needs_full_roster`]); the source pulls in full next.
    pub fn ingest_pulled(
        &mut self,
        name: &str,
        export: Validated,
    ) -> Result<Option<OfferOutcome>, EnqueueError> {
        if export.partial && self.needs_full_roster() {
            tracing::warn!(source = %name, "central needs a whole roster; the delta pull is not offered");
            self.status.awaiting_export_for_snapshot = true;
            self.publish();
            return Ok(None);
        }
        let outcome = self.offer(name, export)?;
        self.publish();
        Ok(Some(outcome))
    }

    /// A pull from the OneRoster REST source failed; nothing of it was offered. Shown in
    /// the status until an export is taken in.
    pub fn pull_failed(&mut self, why: String) {
        self.problems.export = Some(why);
        self.publish();
    }

    /// What the newest look at the export share found wrong (`None`: nothing), for the
    /// status line and the `source_problem` metric.
    pub fn source_problem(&mut self, problem: Option<String>) {
        if self.problems.source != problem {
            self.problems.source = problem;
            self.publish();
        }
    }

    /// Offers an export to the enqueue stage and records the outcome in the status. A
    /// partial export (a delta) is not kept for snapshots: a snapshot made of it would
    /// delete every record it does not name. What a partial export names but lacks is
    /// checked against what was sent first, so its deviations are counted with the rest.
    fn offer(&mut self, name: &str, mut export: Validated) -> Result<OfferOutcome, EnqueueError> {
        self.enqueuer.resolve_references(&mut export);
        self.status.last_export_unix_ms = Some(unix_ms_now());
        self.status.last_export_file = Some(name.to_owned());
        self.status.last_export_students = Some(export.roster.students.len() as u64);
        self.report_deviations(&export.deviations, &export.tally);
        self.problems.export = None;
        let export = Arc::new(export);
        self.latest = (!export.partial).then(|| Arc::clone(&export));
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
        tracing::info!(file = %name, students = self.status.last_export_students, errors = self.status.deviations.errors, warnings = self.status.deviations.warnings, outcome = %describe(&outcome), "export taken in");
        self.status.last_outcome = Some(describe(&outcome));
        Ok(outcome)
    }

    /// Sets a refused file aside in `rejected/` with `note` beside it, and says why: `why`
    /// in the newest arrival, `problem` in the status line.
    fn set_aside(
        &mut self,
        path: &Path,
        written_unix_ms: Option<u64>,
        why: &str,
        note: &str,
        problem: String,
    ) {
        self.refused(path, written_unix_ms, why);
        if let Err(e) = move_to_rejected(path, note) {
            tracing::error!(file = %file_name(path), error = %e, "cannot move the export aside");
        }
        self.problems.export = Some(problem);
        self.publish();
    }

    /// Records a file of the drop folder refused for `why` as the newest arrival.
    fn refused(&mut self, path: &Path, written_unix_ms: Option<u64>, why: &str) {
        let mut arrived = arrival(path, written_unix_ms);
        arrived.refused = true;
        arrived.outcome = format!("refused: {why}; set aside in rejected/, nothing sent");
        self.status.last_arrival = Some(arrived);
    }

    /// Says in the newest arrival what the offer of its export came to; a batch sealed from
    /// it waits for central's acknowledgement ([`crate::status::Arrival::acknowledged`]).
    fn arrival_taken_in(&mut self, outcome: &OfferOutcome) {
        let Some(arrival) = self.status.last_arrival.as_mut().filter(|a| !a.refused) else {
            return;
        };
        arrival.delivered = false;
        arrival.awaiting_seq = None;
        arrival.outcome = match outcome {
            OfferOutcome::Enqueued { seq, .. } => {
                arrival.awaiting_seq = Some(*seq);
                "sealed, waiting for central to acknowledge it".to_owned()
            }
            OfferOutcome::Unchanged => {
                "nothing changed since the last export; nothing to send".to_owned()
            }
            other => describe(other),
        };
    }

    /// The oldest unacknowledged batch.
    pub fn next_batch(&mut self) -> Result<Option<StoredBatch>, OutboxError> {
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
        if let Some(arrival) = &mut self.status.last_arrival {
            arrival.acknowledged(seq);
        }
        if self.enqueuer.is_waiting() {
            let outcome = self.enqueuer.retry()?;
            tracing::info!(outcome = %describe(&outcome), "waiting export retried after an ack");
            if !matches!(outcome, OfferOutcome::Waiting) {
                self.status.last_outcome = Some(describe(&outcome));
                self.arrival_taken_in(&outcome);
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

    /// Why an offered release waits (see [`crate::update::Updater::waiting_for_space`]);
    /// written only if it changed, so the shortage shows once, not every heartbeat.
    pub fn update_waiting(&mut self, waiting: Option<String>) {
        if self.status.update_waiting != waiting {
            self.status.update_waiting = waiting;
            self.publish();
        }
    }

    /// Where central's signed statements stand (`None`: none is checked); written only if
    /// that changed.
    pub fn freshness(&mut self, freshness: Option<crate::status::FreshnessStatus>) {
        if self.status.freshness != freshness {
            self.status.freshness = freshness;
            self.publish();
        }
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
                    self.arrival_taken_in(&outcome);
                }
                None => tracing::warn!(held_id = %held_id, "release for a delta that is not held"),
            },
            Command::DropShare { settings } => match &self.drop_share {
                Some(target) => {
                    if let Err(error) = drop_share::apply(&settings, target) {
                        tracing::error!(%error, "cannot apply the drop share settings from central");
                    }
                }
                None => tracing::warn!("drop share settings from central, but no drop share here"),
            },
            Command::Reject { held_id } => {
                if self.enqueuer.reject(&held_id) {
                    tracing::info!(held_id = %held_id, "held delta rejected");
                    self.status.last_outcome = Some(crate::status::REJECTED_OUTCOME.into());
                    if let Some(arrival) = self.status.last_arrival.as_mut().filter(|a| !a.refused)
                    {
                        arrival.outcome = crate::status::REJECTED_OUTCOME.into();
                    }
                } else {
                    tracing::warn!(held_id = %held_id, "reject for a delta that is not held");
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// The status recomputed and written now: what the heartbeat is made of
    /// (`daemon::heartbeat`).
    pub fn current(&mut self) -> &AgentStatus {
        self.publish();
        &self.status
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
            .or_else(|| p.source.clone())
            .or(stick);
        s.source_problem = p.source.clone();
        s.state = if s.provisioning.revoked {
            RunState::Revoked
        } else if s.provisioning.enrolling {
            RunState::Enrolling
        } else if p.storage.is_some() || p.uplink.is_some() || p.certificate.is_some() {
            RunState::Error
        } else if s.held.is_some() {
            RunState::Holding
        } else if p.export.is_some()
            || p.source.is_some()
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

/// A file of the drop folder as the status shows it: its name masked where it could hold a
/// national id, and when its write ended (its modification time, or now when unknown).
fn arrival(path: &Path, written_unix_ms: Option<u64>) -> Arrival {
    let written = written_unix_ms.or_else(|| {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
        u64::try_from(since.as_millis()).ok()
    });
    Arrival {
        file: mask_in_text(&file_name(path)),
        written_unix_ms: written.unwrap_or_else(unix_ms_now),
        ..Arrival::default()
    }
}

/// A few words on an outcome, for logs and status (counts only).
pub fn describe(outcome: &OfferOutcome) -> String {
    match outcome {
        OfferOutcome::Enqueued {
            seq, kind, summary, ..
        } => format!(
            "sealed as batch {seq} ({kind:?}: {} added, {} changed, {} removed students)",
            summary.added(Entity::Student),
            summary.updated(Entity::Student),
            summary.deleted(Entity::Student)
        ),
        OfferOutcome::Unchanged => "nothing changed".into(),
        OfferOutcome::Held(j) => format!("held for review: {}", j.reason_texts().join("; ")),
        OfferOutcome::Waiting => "waiting for room in the outbox".into(),
    }
}

fn error_kind(error: &skolebro_roster::reader::ReadError) -> &'static str {
    use skolebro_roster::reader::ReadErrorKind as K;
    match error.kind {
        K::Io(_) => "io",
        K::LineTooLong => "line_too_long",
        K::MissingColumn { .. } => "missing_column",
        K::Empty => "empty",
        K::Truncated => "truncated",
        K::Syntax { .. } => "syntax",
        K::TooLarge { .. } => "too_large",
        K::OverBudget { .. } => "over_budget",
    }
}

#[cfg(test)]
mod tests {
    use super::super::rejected::REJECTED_DIR;
    use super::*;

    /// An enqueuer with a fixed identity and default policy, its state in `dir`.
    fn enqueuer_in(dir: &Path) -> Enqueuer {
        use crate::enqueue::Identity;
        use crate::outbox::OutboxConfig;
        use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
        use skolebro_roster::safety::SafetyPolicy;

        let identity = Identity {
            device: skolebro_protocol::DeviceId::new("pi-46505-1").unwrap(),
            site: skolebro_protocol::SiteId::new("46505").unwrap(),
            signing_key: DeviceSigningKey::from_bytes([7; 32]),
            central_key: SealingPrivateKey::from_bytes([9; 32]).public_key(),
            site_secret: skolebro_protocol::SiteSecret::from_bytes([3; 32]),
        };
        Enqueuer::open(
            dir,
            identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_delta_export_is_set_aside_while_central_needs_the_whole_roster() {
        use crate::enqueue::tests::export;

        let dir = tempfile::tempdir().unwrap();
        let mut enqueuer = enqueuer_in(dir.path());
        enqueuer.request_snapshot().unwrap();
        let drop_dir = dir.path().join("drop");
        std::fs::create_dir_all(&drop_dir).unwrap();
        let (full, delta) = (drop_dir.join("full.xml"), drop_dir.join("delta.xml"));
        std::fs::write(&full, "full").unwrap();
        std::fs::write(&delta, "delta").unwrap();
        let (status_tx, _status_rx) = watch::channel(AgentStatus::default());
        let mut core = Core::new(
            enqueuer,
            dir.path().to_owned(),
            AfterIngest::Keep,
            status_tx,
        );
        let mut changes = export(0..3, "1A");
        changes.partial = true;

        assert!(core.refuse_if_partial(&delta, &changes, Some(1_000)));
        assert!(!delta.exists());
        let note = std::fs::read_to_string(drop_dir.join(REJECTED_DIR).join("delta.xml.error.txt"))
            .unwrap();
        assert!(note.contains("whole roster"), "{note}");
        assert_eq!(core.enqueuer().outbox().status().depth, 0);
        assert!(core.status.awaiting_export_for_snapshot);

        // A full export goes in as the snapshot; deltas are taken after it.
        let whole = export(0..30, "1A");
        assert!(!core.refuse_if_partial(&full, &whole, Some(2_000)));
        core.ingest(&full, whole, Some(2_000)).unwrap();
        assert!(!core.needs_full_roster());
        assert!(!core.refuse_if_partial(&full, &changes, Some(3_000)));
    }

    #[test]
    fn an_export_written_before_the_one_taken_in_is_set_aside_and_not_sent() {
        use crate::enqueue::tests::export;

        let dir = tempfile::tempdir().unwrap();
        let open = || enqueuer_in(dir.path());
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
