//! The enqueue stage: the last stage on the Pi before the uplink. It takes a validated export,
//! diffs it against the checkpoint's state, runs the safety filter, seals and signs the batch
//! (`protocol::envelope`), appends it to the outbox, and only then advances the checkpoint.
//!
//! The checkpoint and the outbox must never disagree, or a delta would be lost or sent twice
//! with different contents. Every batch goes through three steps: the next checkpoint is
//! written beside the current one (`checkpoint.next`), the envelope is appended and made
//! durable, and the next checkpoint is renamed over the current one. At start-up a leftover
//! `checkpoint.next` is promoted if the outbox holds its batch and discarded if not, so after a
//! crash at any point the two agree again.
//!
//! When the outbox is full the export waits here; a newer export replaces a waiting one, and
//! once acks make room the agent enqueues one delta from the last enqueued state to the newest
//! export (DESIGN decision 4: block and coalesce; nothing central needs is dropped).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skolebro_protocol::envelope::{
    seal, ChainHead, DeviceId, DeviceSigningKey, EnvelopeError, Header, Kind, Payload,
    SealingPublicKey, SiteId,
};
use skolebro_protocol::{HeldReason, SiteSecret};

use crate::outbox::{unix_ms_now, Outbox, OutboxConfig, OutboxError, RecoveryReport};
use crate::state::{Checkpoint, StateError};
use skolebro_roster::diff::{plan, DiffSummary, Fingerprints};
use skolebro_roster::references;
use skolebro_roster::safety::{judge, today, Columns, Judgement, SafetyPolicy, Verdict};
use skolebro_roster::state::State;
use skolebro_roster::validate::Validated;

const CHECKPOINT: &str = "checkpoint";
const NEXT_CHECKPOINT: &str = "checkpoint.next";
const OUTBOX: &str = "outbox";

/// The most one envelope's payload carries, about. A larger delta (the first export of a
/// large school is every record) goes as several chained envelopes, so sealing it never holds
/// more than a few copies of this much, and central applies it in steps of this size.
const MAX_BATCH_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Why a batch could not be enqueued. The export is kept and tried again; nothing enqueued
/// before is affected.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("sealing the batch: {0}")]
    Seal(#[from] EnvelopeError),
}

/// Who the agent is and whom it talks to: set up at enrollment.
#[derive(Clone)]
pub struct Identity {
    pub device: DeviceId,
    pub site: SiteId,
    pub signing_key: DeviceSigningKey,
    /// Central's HPKE key; batches are sealed to it.
    pub central_key: SealingPublicKey,
    /// The per-site key of record handles.
    pub site_secret: SiteSecret,
}

/// What became of an offered export.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferOutcome {
    /// Sealed, durable in the outbox, checkpoint advanced.
    Enqueued {
        seq: u64,
        kind: Kind,
        summary: DiffSummary,
        judgement: Judgement,
    },
    /// Nothing changed since the last enqueued export.
    Unchanged,
    /// The safety filter held the delta; the checkpoint did not move.
    Held(Judgement),
    /// The outbox is full; the export waits (replacing any older waiting one).
    Waiting,
}

/// A delta the safety filter held, kept in memory with its export until an operator
/// releases or rejects it from central (DESIGN decision 5). Only in memory: the export file
/// is removed once held, so no personal data lingers on disk; after a restart the next
/// export is judged afresh.
#[derive(Debug, Clone)]
pub struct HeldDelta {
    /// Opaque id central names in `release` / `reject` commands.
    pub id: String,
    /// Why it was held.
    pub judgement: Judgement,
    /// What it would change, for the heartbeat's counts.
    pub summary: DiffSummary,
    /// When it was held, unix milliseconds.
    pub held_at_ms: u64,
    export: Arc<Validated>,
}

/// The enqueue stage with its checkpoint and outbox.
pub struct Enqueuer {
    dir: PathBuf,
    identity: Identity,
    policy: SafetyPolicy,
    outbox: Outbox,
    checkpoint: Checkpoint,
    waiting: Option<Arc<Validated>>,
    /// The waiting export was released by an operator: it skips the safety filter.
    waiting_released: bool,
    held: Option<HeldDelta>,
}

impl Enqueuer {
    /// Opens the stage in `dir` (the agent's state folder), recovering the outbox and
    /// settling a checkpoint left half-written by a crash.
    pub fn open(
        dir: &Path,
        identity: Identity,
        policy: SafetyPolicy,
        outbox: OutboxConfig,
    ) -> Result<(Enqueuer, RecoveryReport), EnqueueError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (outbox, report) = Outbox::open_dir(dir.join(OUTBOX), outbox)?;
        let current = Checkpoint::load(&dir.join(CHECKPOINT))?.unwrap_or_default();
        let next_path = dir.join(NEXT_CHECKPOINT);
        let mut checkpoint = match Checkpoint::load(&next_path) {
            // The outbox reached the batch the next checkpoint was written for: finish it.
            Ok(Some(next)) if outbox.next_seq() >= next.head.next_seq.0 => {
                next.save(&dir.join(CHECKPOINT))?;
                next
            }
            _ => current,
        };
        remove_if_present(&next_path)?;
        if report.needs_snapshot {
            checkpoint.needs_snapshot = true;
        }
        // Seqs dropped by the outbox's recovery are never reused.
        if outbox.next_seq() > checkpoint.head.next_seq.0 {
            checkpoint.head.next_seq.0 = outbox.next_seq();
        }
        Ok((
            Enqueuer {
                dir: dir.to_owned(),
                identity,
                policy,
                outbox,
                checkpoint,
                waiting: None,
                waiting_released: false,
                held: None,
            },
            report,
        ))
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// True while an export waits for room in the outbox.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Central lost track of this device (a gap): the next batch is a full snapshot. The
    /// checkpoint is saved so a restart does not forget it.
    pub fn request_snapshot(&mut self) -> Result<(), EnqueueError> {
        self.checkpoint.needs_snapshot = true;
        self.checkpoint.save(&self.dir.join(CHECKPOINT))?;
        Ok(())
    }

    /// The delta the safety filter holds for review, if any.
    pub fn held(&self) -> Option<&HeldDelta> {
        self.held.as_ref()
    }

    /// An operator released the held delta `id`: it is enqueued without the safety
    /// thresholds (delay-delete windows still apply). `None` if no held delta has that id
    /// (already released, superseded by a newer export, or lost in a restart).
    pub fn release(&mut self, id: &str) -> Result<Option<OfferOutcome>, EnqueueError> {
        if self.held.as_ref().is_none_or(|h| h.id != id) {
            return Ok(None);
        }
        let Some(held) = self.held.take() else {
            return Ok(None);
        };
        self.waiting = Some(held.export);
        self.waiting_released = true;
        self.retry().map(Some)
    }

    /// An operator rejected the held delta `id`: it is dropped and the checkpoint stays
    /// where it was. Returns whether a held delta had that id.
    pub fn reject(&mut self, id: &str) -> bool {
        if self.held.as_ref().is_some_and(|h| h.id == id) {
            self.held = None;
            true
        } else {
            false
        }
    }

    /// Central answered "gap" with its chain head: the batches it has not acknowledged were
    /// never applied and never will be. The checkpoint continues from central's head and asks
    /// for a full snapshot (saved first, so a crash before the outbox reset still ends in a
    /// snapshot), then the outbox drops its unacknowledged batches and restarts its sequence
    /// at central's expected seq. The caller then offers the newest export.
    pub fn restart_chain(&mut self, head: ChainHead) -> Result<(), EnqueueError> {
        self.checkpoint.head = head;
        self.checkpoint.needs_snapshot = true;
        self.checkpoint.save(&self.dir.join(CHECKPOINT))?;
        self.outbox.reset_to(head.next_seq.0)?;
        Ok(())
    }

    /// Offers a new export. A waiting export is replaced: the newest export supersedes it.
    /// Shared, not copied: the daemon keeps the newest export for a snapshot central may ask
    /// for, and a large school's roster is tens of megabytes.
    pub fn offer(
        &mut self,
        export: impl Into<Arc<Validated>>,
    ) -> Result<OfferOutcome, EnqueueError> {
        self.waiting = Some(export.into());
        self.waiting_released = false;
        self.retry()
    }

    /// Checks what a partial export names but does not hold (a pupil's unchanged record
    /// when only the class changed) against the state central is known to have, and leaves
    /// out, with a deviation, what neither holds ([`references::resolve`]). Called before
    /// [`Enqueuer::offer`], so the deviations reported for the export include these; the
    /// state moves only by the batches this stage appends, so the check holds while the
    /// export waits.
    pub fn resolve_references(&self, export: &mut Validated) {
        references::resolve(export, &self.checkpoint.state, &self.identity.site_secret);
    }

    /// Tries the waiting export again, after acks freed room in the outbox.
    pub fn retry(&mut self) -> Result<OfferOutcome, EnqueueError> {
        let Some(export) = self.waiting.take() else {
            return Ok(OfferOutcome::Unchanged);
        };
        let released = std::mem::take(&mut self.waiting_released);
        let (outcome, summary) = self.enqueue(&export, released)?;
        match &outcome {
            OfferOutcome::Waiting => {
                self.waiting = Some(export);
                self.waiting_released = released;
            }
            OfferOutcome::Held(judgement) => {
                self.held = Some(HeldDelta {
                    id: held_id(),
                    judgement: judgement.clone(),
                    summary,
                    held_at_ms: unix_ms_now(),
                    export,
                });
            }
            // A newer export went through (or matched what was sent): a held one is moot.
            OfferOutcome::Enqueued { .. } | OfferOutcome::Unchanged => self.held = None,
        }
        Ok(outcome)
    }

    fn enqueue(
        &mut self,
        export: &Validated,
        released: bool,
    ) -> Result<(OfferOutcome, DiffSummary), EnqueueError> {
        let secret = &self.identity.site_secret;
        let prints = Fingerprints::of(&export.roster, secret);
        let before = &self.checkpoint.state;
        let (mut plan, summary) = plan(before, export, &prints, secret);
        let snapshot = self.checkpoint.needs_snapshot;
        let judgement = if snapshot {
            Judgement {
                verdict: Verdict::Pass,
                reasons: vec![HeldReason::Resync],
                postponed: 0,
            }
        } else {
            let mut judgement = judge(
                &self.policy,
                before,
                &mut plan,
                &summary,
                Columns {
                    before: &self.checkpoint.columns,
                    after: &export.columns,
                },
                today(),
            );
            if released {
                judgement.verdict = Verdict::Pass;
                judgement.reasons.push(HeldReason::Released);
            }
            judgement
        };
        if judgement.verdict == Verdict::Hold {
            return Ok((OfferOutcome::Held(judgement), summary));
        }
        if !snapshot && plan.is_empty() {
            return Ok((OfferOutcome::Unchanged, summary));
        }

        let seq = if snapshot {
            let state = State::from(&prints);
            drop(prints);
            let payload = Payload::Snapshot(export.roster.clone());
            let columns = export.columns.clone();
            self.append(&payload, |checkpoint| {
                checkpoint.state = state;
                checkpoint.columns = columns;
            })?
        } else {
            // The prints are no longer needed: each piece's digests are taken from its
            // records as the state follows it.
            drop(prints);
            let mut last = None;
            for delta in plan.chunks(&export.roster, MAX_BATCH_PAYLOAD_BYTES) {
                let payload = Payload::Delta(delta);
                let Payload::Delta(delta) = &payload else {
                    unreachable!("built as a delta just above")
                };
                let moved = |checkpoint: &mut Checkpoint| {
                    checkpoint.state.apply(delta);
                    if checkpoint.columns != export.columns {
                        checkpoint.columns.clone_from(&export.columns);
                    }
                };
                match self.append(&payload, moved)? {
                    Some(seq) => last = Some(seq),
                    // The pieces enqueued so far stay: the checkpoint follows them, and the
                    // export's retry diffs against it, so only the rest is sent later.
                    None => return Ok((OfferOutcome::Waiting, summary)),
                }
            }
            last
        };
        let Some(seq) = seq else {
            return Ok((OfferOutcome::Waiting, summary));
        };
        let kind = if snapshot {
            Kind::Snapshot
        } else {
            Kind::Delta
        };
        Ok((
            OfferOutcome::Enqueued {
                seq,
                kind,
                summary,
                judgement,
            },
            summary,
        ))
    }

    /// Seals `payload` as the next envelope of the chain and makes it durable together with
    /// the checkpoint `advance` brings up to date: the next checkpoint is written beside the
    /// current one, the envelope appended and synced, then the next checkpoint renamed over
    /// the current one (see the module doc). `None` if the outbox has no room; nothing
    /// changed then.
    fn append(
        &mut self,
        payload: &Payload,
        advance: impl FnOnce(&mut Checkpoint),
    ) -> Result<Option<u64>, EnqueueError> {
        let header = Header::chained(
            &self.checkpoint.head,
            self.identity.device.clone(),
            self.identity.site.clone(),
            unix_ms_now(),
            payload.kind(),
        );
        let seq = header.seq;
        let envelope = seal(
            header,
            payload,
            &self.identity.central_key,
            &self.identity.signing_key,
        )?;
        let bytes = envelope.to_bytes();
        if !self.outbox.has_room_for(bytes.len()) {
            return Ok(None);
        }

        // The checkpoint is advanced in place (a second copy of a large school's state would
        // be the agent's largest allocation) and reloaded from disk if the append fails.
        advance(&mut self.checkpoint);
        self.checkpoint.head = envelope.next_head();
        self.checkpoint.needs_snapshot = false;
        drop(envelope);
        let next_path = self.dir.join(NEXT_CHECKPOINT);
        let appended = self
            .checkpoint
            .save(&next_path)
            .map_err(EnqueueError::from)
            .and_then(|()| {
                self.outbox
                    .append(seq.0, &bytes)
                    .and_then(|_| self.outbox.sync().map(|_| ()))
                    .map_err(EnqueueError::from)
            });
        if let Err(error) = appended {
            remove_if_present(&next_path)?;
            self.checkpoint = Checkpoint::load(&self.dir.join(CHECKPOINT))?.unwrap_or_default();
            return match error {
                EnqueueError::Outbox(OutboxError::Full { .. }) => Ok(None),
                error => Err(error),
            };
        }
        std::fs::rename(&next_path, self.dir.join(CHECKPOINT)).map_err(|source| {
            StateError::Io {
                path: next_path.clone(),
                source,
            }
        })?;
        sync_dir(&self.dir)?;
        Ok(Some(seq.0))
    }
}

/// A fresh opaque id for a held delta (random; the time if the OS has no randomness).
fn held_id() -> String {
    let mut bytes = [0u8; 6];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("held-{}", hex::encode(bytes)),
        Err(_) => format!("held-{}", unix_ms_now()),
    }
}

fn remove_if_present(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use skolebro_protocol::envelope::{open, ChainHead, Envelope, SealingPrivateKey};
    use skolebro_protocol::Entity;

    use skolebro_roster::reader::elevliste;
    use skolebro_roster::validate::RosterBuilder;

    struct Site {
        identity: Identity,
        central: SealingPrivateKey,
    }

    fn site() -> Site {
        let central = SealingPrivateKey::from_bytes([9; 32]);
        Site {
            identity: Identity {
                device: DeviceId::new("pi-46505-1").unwrap(),
                site: SiteId::new("46505").unwrap(),
                signing_key: DeviceSigningKey::from_bytes([7; 32]),
                central_key: central.public_key(),
                site_secret: SiteSecret::from_bytes([3; 32]),
            },
            central,
        }
    }

    /// An export of students `from..to` (synthetic ids are not needed here: the national id
    /// column holds a plain key, which validation reports and keeps).
    pub(crate) fn export(students: std::ops::Range<u32>, class: &str) -> Validated {
        let mut text =
            String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
        for n in students {
            text.push_str(&format!("46505;{class};elev{n};;Nordmann;Kari{n}\n"));
        }
        let mut builder = RosterBuilder::new(Default::default());
        elevliste::read_from(
            Path::new("test.csv"),
            text.as_bytes(),
            &Default::default(),
            false,
            &mut builder,
        )
        .unwrap();
        builder.finish()
    }

    /// The stage in `dir` with the default safety policy and outbox.
    fn open_default(dir: &Path, site: &Site) -> Enqueuer {
        let (enqueuer, _) = Enqueuer::open(
            dir,
            site.identity.clone(),
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        enqueuer
    }

    fn opened(
        site: &Site,
        enqueuer: &Enqueuer,
        seq: u64,
        head: &ChainHead,
    ) -> skolebro_protocol::envelope::Opened {
        let batch = enqueuer.outbox().peek(seq).unwrap().unwrap();
        open(
            &batch.payload,
            1 << 24,
            &site.identity.device,
            &site.identity.signing_key.verifying_key(),
            head,
            &site.central,
        )
        .unwrap()
    }

    #[test]
    fn an_export_becomes_a_sealed_batch_and_the_checkpoint_follows() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        let first = export(0..30, "1A");
        let outcome = enqueuer.offer(first.clone()).unwrap();
        assert!(
            matches!(
                outcome,
                OfferOutcome::Enqueued {
                    seq: 1,
                    kind: Kind::Delta,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(
            enqueuer.offer(first.clone()).unwrap(),
            OfferOutcome::Unchanged
        );

        let batch = opened(&site, &enqueuer, 1, &ChainHead::genesis());
        let Payload::Delta(delta) = &batch.payload else {
            panic!("a delta")
        };
        assert_eq!(delta.students.upserts.len(), 30);
        let expected = State::of(&first.roster, &site.identity.site_secret);
        assert_eq!(enqueuer.checkpoint().state, expected);
        assert_eq!(enqueuer.checkpoint().head, batch.next_head());

        drop(enqueuer);
        let (reopened, report) = Enqueuer::open(
            dir.path(),
            site.identity.clone(),
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        assert!(report.is_clean());
        assert_eq!(reopened.checkpoint().state, expected);
    }

    #[test]
    fn a_renamed_pupil_is_sealed_as_a_rename_in_the_delta_central_receives() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        let first = export(0..30, "1A");
        enqueuer.offer(first.clone()).unwrap();

        // The source gives one pupil a new key and says which key it replaces.
        let mut renamed = first.clone();
        let from = renamed.roster.students[0].source_key.clone();
        let to = format!("{from}-ny");
        renamed.roster.students[0].source_key = to.as_str().into();
        for enrollment in &mut renamed.roster.enrollments {
            if enrollment.student == from {
                enrollment.source_key = format!("{to}@{}", enrollment.school).into();
                enrollment.student = to.as_str().into();
            }
        }
        renamed.renames.push(skolebro_roster::validate::Rename {
            entity: Entity::Student,
            from: from.to_string(),
            to: to.clone(),
        });
        let outcome = enqueuer.offer(renamed.clone()).unwrap();
        let OfferOutcome::Enqueued {
            seq: 2, summary, ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(summary.renamed(Entity::Student), 1);

        let head = opened(&site, &enqueuer, 1, &ChainHead::genesis()).next_head();
        let batch = opened(&site, &enqueuer, 2, &head);
        let Payload::Delta(delta) = &batch.payload else {
            panic!("a delta")
        };
        let secret = &site.identity.site_secret;
        let pair = (
            secret.handle(Entity::Student, &from),
            secret.handle(Entity::Student, &to),
        );
        assert_eq!(delta.students.renames, [pair]);
        assert_eq!(delta.students.deletes, [pair.0]);
        assert_eq!(delta.students.upserts.len(), 1);
        assert_eq!(delta.students.upserts[0].0, pair.1);
        assert_eq!(delta.enrollments.renames.len(), 1);
        assert_eq!(
            enqueuer.checkpoint().state,
            State::of(&renamed.roster, secret)
        );
    }

    #[test]
    fn a_delta_s_class_move_is_sent_when_central_has_the_pupil_and_refused_when_nothing_does() {
        use skolebro_roster::deviation::{Code, Position};
        use skolebro_roster::validate::Provenance;

        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        let first = export(0..30, "1A");
        enqueuer.offer(first.clone()).unwrap();

        // A delta pull: a new class, one pupil of the first export moved into it (the pupil
        // and the school unchanged, so absent), and one enrollment of a pupil never sent.
        let mut class = first.roster.groups[0].clone();
        class.source_key = "46505-2B".into();
        class.name = "2B".into();
        let mut moved = first.roster.enrollments[0].clone();
        moved.group = Some(class.source_key.clone());
        let mut stranger = moved.clone();
        stranger.student = "16881774198".into();
        stranger.source_key = "16881774198@46505".into();
        let mut builder = RosterBuilder::new(Default::default());
        builder.set_partial();
        builder.begin_file("enrollments.csv");
        builder.group(Position::Line(1), class.clone(), Provenance::Stated);
        builder.enrollment(Position::Line(2), moved.clone());
        builder.enrollment(Position::Line(3), stranger);
        let mut delta = builder.finish();
        assert!(delta.deviations.is_empty(), "{:?}", delta.deviations);

        enqueuer.resolve_references(&mut delta);
        let refused: Vec<_> = delta
            .deviations
            .iter()
            .map(|d| (d.code, d.position, d.detail.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(
                Code::DanglingReference,
                Position::Line(3),
                "enrollment names student 168817***** that neither the export nor the records \
                 sent before hold; it is left out"
            )]
        );
        let outcome = enqueuer.offer(delta).unwrap();
        assert!(
            matches!(outcome, OfferOutcome::Enqueued { seq: 2, .. }),
            "{outcome:?}"
        );

        let head = opened(&site, &enqueuer, 1, &ChainHead::genesis()).next_head();
        let batch = opened(&site, &enqueuer, 2, &head);
        let Payload::Delta(sent) = &batch.payload else {
            panic!("a delta")
        };
        let secret = &site.identity.site_secret;
        let handle = secret.handle(Entity::Enrollment, &moved.source_key);
        assert_eq!(sent.enrollments.upserts, [(handle, moved)]);
        assert!(sent.enrollments.deletes.is_empty());
        assert_eq!(sent.groups.upserts.len(), 1);
        assert!(sent.students.upserts.is_empty() && sent.students.deletes.is_empty());
    }

    #[test]
    fn a_large_export_goes_as_chained_pieces_and_a_full_outbox_waits_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let config = OutboxConfig {
            max_batches: 2,
            ..OutboxConfig::default()
        };
        let (mut enqueuer, _) = Enqueuer::open(
            dir.path(),
            site.identity.clone(),
            SafetyPolicy::default(),
            config,
        )
        .unwrap();
        let large = export(0..30_000, "1A");
        let mut outcome = enqueuer.offer(large.clone()).unwrap();
        assert_eq!(
            outcome,
            OfferOutcome::Waiting,
            "two pieces fit, the rest waits"
        );

        let (mut head, mut seq, mut students) = (ChainHead::genesis(), 1, 0);
        loop {
            while enqueuer.outbox().next_seq() > seq {
                let batch = opened(&site, &enqueuer, seq, &head);
                let Payload::Delta(delta) = &batch.payload else {
                    panic!("a delta")
                };
                students += delta.students.upserts.len();
                head = batch.next_head();
                enqueuer.outbox_mut().ack(seq).unwrap();
                seq += 1;
            }
            if !enqueuer.is_waiting() {
                break;
            }
            outcome = enqueuer.retry().unwrap();
        }
        assert!(
            matches!(outcome, OfferOutcome::Enqueued { .. }),
            "{outcome:?}"
        );
        assert!(seq > 3, "several pieces, not one batch: {seq}");
        assert_eq!(students, 30_000, "every student exactly once");
        let expected = State::of(&large.roster, &site.identity.site_secret);
        assert_eq!(enqueuer.checkpoint().state, expected);
        assert_eq!(enqueuer.checkpoint().head, head);
    }

    #[test]
    fn a_full_outbox_makes_the_newest_export_wait_and_coalesces() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let config = OutboxConfig {
            max_batches: 1,
            ..OutboxConfig::default()
        };
        let (mut enqueuer, _) = Enqueuer::open(
            dir.path(),
            site.identity.clone(),
            SafetyPolicy::default(),
            config,
        )
        .unwrap();
        let first = enqueuer.offer(export(0..30, "1A")).unwrap();
        assert!(matches!(first, OfferOutcome::Enqueued { seq: 1, .. }));
        assert_eq!(
            enqueuer.offer(export(0..31, "1A")).unwrap(),
            OfferOutcome::Waiting
        );
        assert_eq!(
            enqueuer.offer(export(0..32, "1A")).unwrap(),
            OfferOutcome::Waiting
        );
        assert!(enqueuer.is_waiting());

        enqueuer.outbox_mut().ack(1).unwrap();
        let outcome = enqueuer.retry().unwrap();
        assert!(
            matches!(outcome, OfferOutcome::Enqueued { seq: 2, .. }),
            "{outcome:?}"
        );
        let second = enqueuer.outbox().peek(2).unwrap().unwrap();
        let header = Envelope::from_bytes(&second.payload, 1 << 24)
            .unwrap()
            .header()
            .clone();
        let head = ChainHead {
            next_seq: header.seq,
            prev: header.prev,
        };
        let opened = opened(&site, &enqueuer, 2, &head);
        let Payload::Delta(delta) = opened.payload else {
            panic!("a delta")
        };
        assert_eq!(
            delta.students.upserts.len(),
            2,
            "one delta from the last enqueued state to the newest export"
        );
    }

    #[test]
    fn a_held_delta_leaves_the_checkpoint_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut enqueuer, _) = Enqueuer::open(
            dir.path(),
            site().identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        enqueuer.offer(export(0..100, "1A")).unwrap();
        let before = enqueuer.checkpoint().clone();
        let outcome = enqueuer.offer(export(0..10, "1A")).unwrap();
        assert!(matches!(outcome, OfferOutcome::Held(_)), "{outcome:?}");
        assert_eq!(enqueuer.checkpoint(), &before);
        assert_eq!(enqueuer.outbox().status().depth, 1);
    }

    #[test]
    fn after_a_snapshot_request_the_next_batch_is_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        enqueuer.offer(export(0..30, "1A")).unwrap();
        enqueuer.request_snapshot().unwrap();
        let outcome = enqueuer.offer(export(0..30, "1A")).unwrap();
        assert!(
            matches!(
                outcome,
                OfferOutcome::Enqueued {
                    seq: 2,
                    kind: Kind::Snapshot,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert!(!enqueuer.checkpoint().needs_snapshot);
        assert_eq!(enqueuer.checkpoint().state.len(Entity::Student), 30);
    }

    #[test]
    fn a_released_held_delta_is_enqueued_and_a_rejected_one_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut enqueuer, _) = Enqueuer::open(
            dir.path(),
            site().identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        enqueuer.offer(export(0..100, "1A")).unwrap();
        assert!(matches!(
            enqueuer.offer(export(0..10, "1A")).unwrap(),
            OfferOutcome::Held(_)
        ));
        let id = enqueuer.held().unwrap().id.clone();
        assert_eq!(
            enqueuer.held().unwrap().summary.deleted(Entity::Student),
            90
        );
        assert!(!enqueuer.reject("held-unknown"));
        assert_eq!(enqueuer.release("held-unknown").unwrap(), None);
        let released = enqueuer.release(&id).unwrap();
        assert!(
            matches!(released, Some(OfferOutcome::Enqueued { seq: 2, .. })),
            "{released:?}"
        );
        assert!(enqueuer.held().is_none());
        assert_eq!(enqueuer.checkpoint().state.len(Entity::Student), 10);

        enqueuer.offer(export(0..100, "1A")).unwrap();
        assert!(matches!(
            enqueuer.offer(export(0..5, "1A")).unwrap(),
            OfferOutcome::Held(_)
        ));
        let id = enqueuer.held().unwrap().id.clone();
        assert!(enqueuer.reject(&id));
        assert!(enqueuer.held().is_none());
        assert_eq!(enqueuer.checkpoint().state.len(Entity::Student), 100);
    }

    #[test]
    fn a_newer_export_that_passes_supersedes_a_held_delta() {
        let dir = tempfile::tempdir().unwrap();
        let (mut enqueuer, _) = Enqueuer::open(
            dir.path(),
            site().identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        enqueuer.offer(export(0..100, "1A")).unwrap();
        enqueuer.offer(export(0..10, "1A")).unwrap();
        assert!(enqueuer.held().is_some());
        assert_eq!(
            enqueuer.offer(export(0..100, "1A")).unwrap(),
            OfferOutcome::Unchanged
        );
        assert!(enqueuer.held().is_none());
    }

    #[test]
    fn restarting_the_chain_at_centrals_head_sends_a_snapshot_there() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        enqueuer.offer(export(0..30, "1A")).unwrap();
        enqueuer.offer(export(0..31, "1A")).unwrap();
        enqueuer.offer(export(0..32, "1A")).unwrap();
        assert_eq!(enqueuer.outbox().status().depth, 3);
        // Central applied only seq 1 and says so.
        let first = enqueuer.outbox().peek(1).unwrap().unwrap();
        let first = Envelope::from_bytes(&first.payload, 1 << 24).unwrap();
        let central_head = first.next_head();
        enqueuer.restart_chain(central_head).unwrap();
        assert_eq!(enqueuer.outbox().status().depth, 0);
        assert!(enqueuer.checkpoint().needs_snapshot);

        drop(enqueuer);
        let mut enqueuer = open_default(dir.path(), &site);
        let outcome = enqueuer.offer(export(0..32, "1A")).unwrap();
        assert!(
            matches!(
                outcome,
                OfferOutcome::Enqueued {
                    seq: 2,
                    kind: Kind::Snapshot,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let opened = opened(&site, &enqueuer, 2, &central_head);
        assert!(matches!(opened.payload, Payload::Snapshot(_)));
    }

    #[test]
    fn a_next_checkpoint_without_its_batch_is_discarded_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let site = site();
        let mut enqueuer = open_default(dir.path(), &site);
        enqueuer.offer(export(0..30, "1A")).unwrap();
        let kept = enqueuer.checkpoint().clone();
        drop(enqueuer);
        // A crash after writing the next checkpoint, before the append.
        let mut orphan = kept.clone();
        orphan.head.next_seq = orphan.head.next_seq.next();
        orphan.state = State::default();
        orphan.save(&dir.path().join(NEXT_CHECKPOINT)).unwrap();
        let (reopened, _) = Enqueuer::open(
            dir.path(),
            site.identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        assert_eq!(reopened.checkpoint(), &kept);
        assert!(!dir.path().join(NEXT_CHECKPOINT).exists());
    }
}
