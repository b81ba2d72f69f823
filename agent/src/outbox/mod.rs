//! The outbox: a bounded, crash-safe, on-disk queue of sealed envelopes.
//!
//! Place in the data flow: `seal` produces an envelope with a sequence number ->
//! [`Outbox::append`] stores it durably -> the uplink reads unacknowledged envelopes in order
//! with [`Outbox::peek`] / [`Outbox::pending`] and sends them -> central acknowledges a seq ->
//! [`Outbox::ack`] moves the ack pointer and deletes segments that hold only acknowledged
//! envelopes. A power cut anywhere in between loses nothing that `append` reported durable
//! (design decision 4: "bounded outbox that never loses data").
//!
//! The outbox does not know the envelope format: it stores opaque bytes plus the caller's
//! `seq` (strictly increasing by one), so the protocol crate can change without touching this.
//!
//! On disk (see [`segment`] for the byte layout): append-only segment files named after their
//! first seq, each a run of frames `len | crc32c | seq | appended_at | payload` with CRC-32C
//! (Castagnoli), rotated at [`OutboxConfig::segment_bytes`]; and an `ack` file with the highest
//! acknowledged seq, replaced atomically (temp file, fsync, rename, fsync directory). Start-up
//! recovery ([`recovery`]) cuts a torn tail and resets past damage in the middle, asking for
//! a full snapshot rather than sending data it cannot trust.
//!
//! Bounds ([`OutboxConfig::max_bytes`], [`OutboxConfig::max_batches`]) are hard: an append that
//! would cross one fails with [`OutboxError::Full`] and writes nothing. Blocking and coalescing
//! (one delta from the last enqueued state to the newest export once room frees) is the
//! caller's policy; [`Outbox::has_room_for`] lets it check first.
//!
//! Disk errors (ENOSPC, EIO on write or fsync) are returned as [`OutboxError::Io`] after the
//! partial write was rolled back; if even the rollback fails the outbox turns
//! [`OutboxError::Failed`] until it is reopened (recovery then cuts whatever was left).

mod error;
pub mod recovery;
pub mod segment;
pub mod storage;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use error::OutboxError;
pub use recovery::{Finding, FrameFault, RecoveryReport};
pub use storage::{Fault, FsStorage, MemStorage, Storage};

use error::{io_err, Result};
use recovery::{encode_ack, ACK_FILE};
use segment::{encode_frame, segment_name, verify_frame, FrameMeta, Parsed, Segment, HEADER_LEN};

/// When appended frames are fsynced. Explicit because it trades envelopes-per-second against
/// how much an append can lose on power cut, and the Pi's SD card makes fsync expensive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every `append` writes and fsyncs before it returns: a returned append is durable.
    /// Simplest and safest; one fsync per batch is cheap at the agent's batch rate.
    PerBatch,
    /// `append` only writes; frames become durable when the caller calls [`Outbox::sync`],
    /// when [`Outbox::flush_due`] finds the oldest unsynced frame older than `max_delay_ms`,
    /// or on the next append after that. One fsync then covers many frames. A frame counts
    /// as enqueued only once [`Outbox::durable_seq`] reaches its ticket; the uplink never
    /// sees frames that are not durable.
    GroupCommit {
        /// Longest a written frame may stay unsynced, provided the caller calls
        /// [`Outbox::flush_due`] at [`Outbox::flush_deadline`].
        max_delay_ms: u64,
    },
}

/// Outbox settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Hard bound on the bytes of all segment files (frame headers and acknowledged frames in
    /// not-yet-deleted segments included), so the SD card never fills because of the outbox.
    pub max_bytes: u64,
    /// Hard bound on unacknowledged batches, so a long outage cannot queue unbounded work.
    pub max_batches: u64,
    /// A segment is closed and a new one started when the next frame would make it larger
    /// than this. Smaller segments free space sooner after acks; larger mean fewer files.
    pub segment_bytes: u64,
    /// When appends are fsynced.
    pub fsync: FsyncPolicy,
}

impl Default for OutboxConfig {
    /// 64 MiB, 10 000 batches, 4 MiB segments, fsync per batch.
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_batches: 10_000,
            segment_bytes: 4 * 1024 * 1024,
            fsync: FsyncPolicy::PerBatch,
        }
    }
}

/// Proof of an append. Under group commit the batch is enqueued only once
/// [`Outbox::is_durable`] says so (or `durable_seq() >= ticket.seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendTicket {
    /// The seq appended.
    pub seq: u64,
}

/// One unacknowledged batch read back for the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// Sequence number.
    pub seq: u64,
    /// When it was appended, unix milliseconds.
    pub appended_at_ms: u64,
    /// The envelope bytes, checksum-verified.
    pub payload: Vec<u8>,
}

/// The oldest batch central has not acknowledged, for "stuck since" alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestUnacked {
    /// Its seq.
    pub seq: u64,
    /// Its append time, unix milliseconds (stored in the frame, so it survives restarts).
    pub appended_at_ms: u64,
}

/// A snapshot of the outbox's state for `skolebro-agent status` and the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Unacknowledged batches (counted against `max_batches`).
    pub depth: u64,
    /// Bytes of unacknowledged frames (headers included).
    pub unacked_bytes: u64,
    /// Bytes of all segment files (counted against `max_bytes`).
    pub disk_bytes: u64,
    /// Segment files.
    pub segments: usize,
    /// Highest acknowledged seq.
    pub ack_seq: u64,
    /// Highest durable seq.
    pub durable_seq: u64,
    /// Seq the next append must carry.
    pub next_seq: u64,
    /// The oldest unacknowledged batch.
    pub oldest_unacked: Option<OldestUnacked>,
    /// Byte bound.
    pub max_bytes: u64,
    /// Batch bound.
    pub max_batches: u64,
    /// Whether a failed rollback has frozen the outbox.
    pub failed: bool,
}

impl Status {
    /// How long the oldest unacknowledged batch has waited, measured against `now_ms` (unix
    /// milliseconds); zero if the clock went backwards.
    pub fn oldest_unacked_age(&self, now_ms: u64) -> Option<Duration> {
        self.oldest_unacked
            .map(|o| Duration::from_millis(now_ms.saturating_sub(o.appended_at_ms)))
    }
}

/// Per-frame diagnostics without payloads (the payloads are personal data, sealed or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Segment file.
    pub segment: String,
    /// Offset in the segment.
    pub offset: u64,
    /// Seq stored in the frame.
    pub seq: u64,
    /// Payload length.
    pub len: u32,
    /// Whether the CRC-32C matches.
    pub crc_ok: bool,
    /// Append time, unix milliseconds.
    pub appended_at_ms: u64,
    /// Whether central has acknowledged it.
    pub acked: bool,
    /// Whether it is fsynced.
    pub durable: bool,
}

/// Wall-clock now in unix milliseconds (0 if the clock is before 1970, as on an unsynced Pi).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The outbox over a [`Storage`]. Not thread-safe by itself: one owner (the daemon's outbox
/// task) appends, reads and acks.
#[derive(Debug)]
pub struct Outbox<S: Storage = FsStorage> {
    storage: S,
    config: OutboxConfig,
    segments: VecDeque<Segment>,
    ack_seq: u64,
    durable_seq: u64,
    unsynced_since: Option<Instant>,
    failed: bool,
}

impl Outbox<FsStorage> {
    /// Opens (creating if needed) the outbox in `dir` on real files and runs recovery.
    pub fn open_dir(dir: impl AsRef<Path>, config: OutboxConfig) -> Result<(Self, RecoveryReport)> {
        let dir = dir.as_ref();
        let storage = FsStorage::new(dir).map_err(|source| OutboxError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open(storage, config)
    }
}

impl<S: Storage> Outbox<S> {
    /// Opens the outbox on `storage`, repairing what a crash left (see [`recovery`]). The
    /// report must be logged; if it says `needs_snapshot`, the next batch must be a full
    /// snapshot.
    pub fn open(mut storage: S, config: OutboxConfig) -> Result<(Self, RecoveryReport)> {
        let rec = recovery::recover(&mut storage)?;
        let durable_seq = rec
            .segments
            .last()
            .and_then(|s| s.frames.last())
            .map_or(rec.ack_seq, |f| f.seq.max(rec.ack_seq));
        let outbox = Self {
            storage,
            config,
            segments: rec.segments.into(),
            ack_seq: rec.ack_seq,
            durable_seq,
            unsynced_since: None,
            failed: false,
        };
        Ok((outbox, rec.report))
    }

    /// The settings in force.
    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    fn last_frame(&self) -> Option<&FrameMeta> {
        self.segments.back().and_then(|s| s.frames.last())
    }

    /// The seq the next append must carry (when the outbox holds nothing unacknowledged,
    /// any higher seq is accepted too, e.g. after a snapshot restarted the chain).
    pub fn next_seq(&self) -> u64 {
        let last = self.last_frame().map_or(0, |f| f.seq).max(self.ack_seq);
        last.saturating_add(1)
    }

    /// Highest seq that is durable on disk: appends up to it survive a power cut. Under
    /// `PerBatch` this is the last append.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Whether the append behind `ticket` is durable (and so enqueued).
    pub fn is_durable(&self, ticket: AppendTicket) -> bool {
        ticket.seq <= self.durable_seq
    }

    /// Highest acknowledged seq.
    pub fn ack_seq(&self) -> u64 {
        self.ack_seq
    }

    /// Whether a failed rollback has frozen the outbox until reopen.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn depth(&self) -> u64 {
        self.last_frame()
            .map_or(0, |f| f.seq.saturating_sub(self.ack_seq))
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Whether a payload of `len` bytes could be appended now without crossing a bound. The
    /// caller's "block and coalesce" policy asks this before sealing a batch.
    pub fn has_room_for(&self, len: usize) -> bool {
        let need = HEADER_LEN as u64 + len as u64;
        self.depth() < self.config.max_batches
            && self.disk_bytes().saturating_add(need) <= self.config.max_bytes
    }

    /// Appends one envelope with the caller's `seq`.
    ///
    /// Under `PerBatch` the frame is durable when this returns Ok. Under `GroupCommit` it is
    /// written and becomes durable at the next sync (see [`FsyncPolicy`]). On any error nothing
    /// of this frame remains: `Full`/`TooLarge`/`OutOfOrder` write nothing, and an I/O error
    /// rolls the partial write back (under `GroupCommit` a failed fsync also drops the other
    /// not-yet-durable frames; [`Outbox::next_seq`] then tells where to resume).
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<AppendTicket> {
        if self.failed {
            return Err(OutboxError::Failed);
        }
        let frame_len = HEADER_LEN as u64 + payload.len() as u64;
        if u32::try_from(payload.len()).is_err() || frame_len > self.config.max_bytes {
            return Err(OutboxError::TooLarge {
                len: payload.len(),
                max_bytes: self.config.max_bytes.min(u64::from(u32::MAX)),
            });
        }
        let last_unacked = self
            .last_frame()
            .map(|f| f.seq)
            .filter(|s| *s > self.ack_seq);
        let contiguous = match last_unacked {
            Some(last) if seq == last.saturating_add(1) => true,
            Some(last) => {
                return Err(OutboxError::OutOfOrder {
                    expected: last.saturating_add(1),
                    got: seq,
                })
            }
            None if seq <= self.ack_seq || seq == u64::MAX => {
                return Err(OutboxError::OutOfOrder {
                    expected: self.ack_seq.saturating_add(1),
                    got: seq,
                })
            }
            None => self
                .last_frame()
                .is_some_and(|f| f.seq.saturating_add(1) == seq),
        };
        if !self.has_room_for(payload.len()) {
            return Err(OutboxError::Full {
                needed_bytes: frame_len,
                bytes: self.disk_bytes(),
                max_bytes: self.config.max_bytes,
                batches: self.depth(),
                max_batches: self.config.max_batches,
            });
        }
        if last_unacked.is_none() && seq > self.ack_seq + 1 {
            // The caller skipped seqs (e.g. after a reset). Record that nothing before `seq`
            // belongs here, so recovery does not mistake the gap for lost segments.
            self.write_ack(seq - 1)?;
            self.durable_seq = self.durable_seq.max(seq - 1);
        }

        let rotate = match self.segments.back() {
            None => true,
            Some(s) => {
                !contiguous
                    || s.frames.is_empty()
                    || (s.bytes > 0 && s.bytes + frame_len > self.config.segment_bytes)
            }
        };
        if rotate {
            if matches!(self.config.fsync, FsyncPolicy::GroupCommit { .. }) {
                // Only the newest segment may hold unsynced frames.
                self.sync_inner()?;
            }
            self.segments
                .push_back(Segment::new(segment_name(seq), seq));
        }

        let appended_at_ms = unix_ms_now();
        let frame = encode_frame(seq, appended_at_ms, payload);
        let Some(seg) = self.segments.back() else {
            return Err(OutboxError::Failed);
        };
        let name = seg.name.clone();
        let prev_len = seg.bytes;
        if let Err(e) = self.storage.append(&name, &frame) {
            self.undo_append(prev_len);
            return Err(io_err(&self.storage, &name, e));
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.frames.push(FrameMeta {
                seq,
                offset: prev_len,
                len: payload.len() as u32,
                appended_at_ms,
            });
            seg.bytes += frame_len;
        }
        match self.config.fsync {
            FsyncPolicy::PerBatch => {
                self.sync_inner()?;
            }
            FsyncPolicy::GroupCommit { max_delay_ms } => {
                let since = *self.unsynced_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(max_delay_ms) {
                    self.sync_inner()?;
                }
            }
        }
        Ok(AppendTicket { seq })
    }

    /// Removes a frame that failed to write (wholly or partly) from the newest segment.
    fn undo_append(&mut self, prev_len: u64) {
        let Some(seg) = self.segments.back() else {
            return;
        };
        let name = seg.name.clone();
        let res = if prev_len == 0 {
            self.storage.remove(&name)
        } else {
            self.storage.truncate(&name, prev_len)
        };
        if prev_len == 0 {
            self.segments.pop_back();
        }
        if res.is_err() {
            self.failed = true;
        }
    }

    /// Makes every appended frame durable now and returns [`Outbox::durable_seq`]. On error
    /// the frames that were not durable are rolled back (they are not enqueued).
    pub fn sync(&mut self) -> Result<u64> {
        if self.failed {
            return Err(OutboxError::Failed);
        }
        self.sync_inner()
    }

    /// Syncs if the oldest unsynced frame has waited `max_delay_ms` or longer; call it at
    /// [`Outbox::flush_deadline`]. Returns [`Outbox::durable_seq`].
    pub fn flush_due(&mut self) -> Result<u64> {
        match self.flush_deadline() {
            Some(deadline) if Instant::now() >= deadline => self.sync(),
            _ => Ok(self.durable_seq),
        }
    }

    /// When the unsynced frames must be synced to honour `max_delay_ms` (None: nothing
    /// pending). The daemon sleeps until then and calls [`Outbox::flush_due`].
    pub fn flush_deadline(&self) -> Option<Instant> {
        let since = self.unsynced_since?;
        let delay = match self.config.fsync {
            FsyncPolicy::PerBatch => 0,
            FsyncPolicy::GroupCommit { max_delay_ms } => max_delay_ms,
        };
        Some(since + Duration::from_millis(delay))
    }

    fn sync_inner(&mut self) -> Result<u64> {
        let Some(seg) = self.segments.back() else {
            self.unsynced_since = None;
            return Ok(self.durable_seq);
        };
        if seg.synced_bytes == seg.bytes && seg.entry_synced {
            self.unsynced_since = None;
            return Ok(self.durable_seq);
        }
        let name = seg.name.clone();
        let new_entry = !seg.entry_synced;
        let mut res = self.storage.sync(&name);
        if res.is_ok() && new_entry {
            res = self.storage.sync_dir();
        }
        if let Err(e) = res {
            self.rollback_unsynced();
            return Err(io_err(&self.storage, &name, e));
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.synced_bytes = seg.bytes;
            seg.entry_synced = true;
            if let Some(f) = seg.frames.last() {
                self.durable_seq = self.durable_seq.max(f.seq);
            }
        }
        self.unsynced_since = None;
        Ok(self.durable_seq)
    }

    /// After a failed fsync: cut the newest segment back to what was durable.
    fn rollback_unsynced(&mut self) {
        self.unsynced_since = None;
        let Some(seg) = self.segments.back_mut() else {
            return;
        };
        let keep = seg.synced_bytes;
        let name = seg.name.clone();
        let res = if keep == 0 {
            self.segments.pop_back();
            self.storage.remove(&name)
        } else {
            seg.frames.retain(|f| f.offset < keep);
            seg.bytes = keep;
            self.storage.truncate(&name, keep)
        };
        if res.is_err() {
            self.failed = true;
        }
    }

    fn write_ack(&mut self, seq: u64) -> Result<()> {
        self.storage
            .write_atomic(ACK_FILE, &encode_ack(seq))
            .map_err(|e| io_err(&self.storage, ACK_FILE, e))?;
        self.ack_seq = seq;
        Ok(())
    }

    /// Records that central has applied every batch up to `seq`, durably, and deletes the
    /// segments that hold nothing newer. Acks at or below the pointer are ignored (central
    /// re-acks duplicates). If deleting a segment fails the ack still stands; the error is
    /// returned and the deletion is retried on the next ack or at start-up.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if self.failed {
            return Err(OutboxError::Failed);
        }
        if seq <= self.ack_seq {
            return Ok(());
        }
        if seq > self.durable_seq {
            return Err(OutboxError::AckAhead {
                acked: seq,
                durable: self.durable_seq,
            });
        }
        self.write_ack(seq)?;
        let mut removed = false;
        while let Some(seg) = self.segments.front() {
            if seg.frames.last().is_some_and(|f| f.seq > self.ack_seq) {
                break;
            }
            let name = seg.name.clone();
            self.storage
                .remove(&name)
                .map_err(|e| io_err(&self.storage, &name, e))?;
            self.segments.pop_front();
            removed = true;
        }
        if removed {
            self.storage
                .sync_dir()
                .map_err(|e| io_err(&self.storage, "", e))?;
        }
        Ok(())
    }

    /// Restarts the sequence at `next_seq`, discarding every stored batch, acknowledged or
    /// not. For the gap protocol: when central answers that the chain has a hole, the
    /// unacknowledged batches were never applied and never will be (each is chained on a
    /// head central does not have), so the agent drops them and continues from central's
    /// head with a full snapshot. Afterwards [`Outbox::next_seq`] is `next_seq` and the ack
    /// pointer is `next_seq - 1`, which may be lower than before if central lost history.
    ///
    /// Segments are removed before the ack pointer is rewritten: a crash in between leaves
    /// an empty outbox with the old pointer, never old frames that look unacknowledged.
    pub fn reset_to(&mut self, next_seq: u64) -> Result<()> {
        if self.failed {
            return Err(OutboxError::Failed);
        }
        if next_seq == 0 || next_seq == u64::MAX {
            return Err(OutboxError::OutOfOrder {
                expected: self.ack_seq.saturating_add(1),
                got: next_seq,
            });
        }
        while let Some(seg) = self.segments.front() {
            let name = seg.name.clone();
            self.storage
                .remove(&name)
                .map_err(|e| io_err(&self.storage, &name, e))?;
            self.segments.pop_front();
        }
        self.storage
            .sync_dir()
            .map_err(|e| io_err(&self.storage, "", e))?;
        self.unsynced_since = None;
        self.write_ack(next_seq - 1)?;
        self.durable_seq = next_seq - 1;
        Ok(())
    }

    fn find(&self, seq: u64) -> Option<(&Segment, &FrameMeta)> {
        let seg = self.segments.iter().rev().find(|s| s.first_seq <= seq)?;
        let idx = usize::try_from(seq - seg.first_seq).ok()?;
        let fr = seg.frames.get(idx)?;
        (fr.seq == seq).then_some((seg, fr))
    }

    /// The first unacknowledged, durable batch with seq >= `from_seq`, read back from disk and
    /// checksum-verified, or None. The uplink calls it with the seq after the last one it sent.
    pub fn peek(&self, from_seq: u64) -> Result<Option<StoredBatch>> {
        let seq = from_seq.max(self.ack_seq.saturating_add(1));
        if seq > self.durable_seq {
            return Ok(None);
        }
        let Some((seg, fr)) = self.find(seq) else {
            return Ok(None);
        };
        let bytes = self
            .storage
            .read_at(&seg.name, fr.offset, fr.frame_len() as usize)
            .map_err(|e| io_err(&self.storage, &seg.name, e))?;
        match verify_frame(&bytes) {
            Some((h, payload)) if h.seq == seq => Ok(Some(StoredBatch {
                seq,
                appended_at_ms: h.appended_at_ms,
                payload: payload.to_vec(),
            })),
            _ => Err(OutboxError::Corrupt {
                segment: seg.name.clone(),
                seq,
            }),
        }
    }

    /// Iterates over the unacknowledged durable batches from `from_seq` on, in seq order.
    pub fn pending(&self, from_seq: u64) -> Pending<'_, S> {
        Pending {
            outbox: self,
            next: from_seq,
            done: false,
        }
    }

    /// Depth, bytes and the oldest unacknowledged batch, for status displays and alarms.
    pub fn status(&self) -> Status {
        let mut unacked_bytes = 0;
        let mut oldest = None;
        for seg in &self.segments {
            for f in seg.frames.iter().filter(|f| f.seq > self.ack_seq) {
                unacked_bytes += f.frame_len();
                if oldest.is_none() {
                    oldest = Some(OldestUnacked {
                        seq: f.seq,
                        appended_at_ms: f.appended_at_ms,
                    });
                }
            }
        }
        Status {
            depth: self.depth(),
            unacked_bytes,
            disk_bytes: self.disk_bytes(),
            segments: self.segments.len(),
            ack_seq: self.ack_seq,
            durable_seq: self.durable_seq,
            next_seq: self.next_seq(),
            oldest_unacked: oldest,
            max_bytes: self.config.max_bytes,
            max_batches: self.config.max_batches,
            failed: self.failed,
        }
    }

    /// Reads every frame of every segment from disk and reports its header and whether its
    /// checksum holds, never the payload. For `skolebro-agent status --verbose` and support.
    pub fn inspect(&self) -> Result<Vec<FrameInfo>> {
        let mut out = Vec::new();
        for seg in &self.segments {
            let data = self
                .storage
                .read_all(&seg.name)
                .map_err(|e| io_err(&self.storage, &seg.name, e))?;
            let mut off = 0usize;
            while off < data.len() {
                let (h, crc_ok) = match segment::parse_frame(&data, off) {
                    Parsed::Good(h) => (h, true),
                    Parsed::BadChecksum(h) => (h, false),
                    Parsed::Incomplete => break,
                };
                out.push(FrameInfo {
                    segment: seg.name.clone(),
                    offset: off as u64,
                    seq: h.seq,
                    len: h.len,
                    crc_ok,
                    appended_at_ms: h.appended_at_ms,
                    acked: h.seq <= self.ack_seq,
                    durable: (off as u64) < seg.synced_bytes,
                });
                off += h.frame_len() as usize;
            }
        }
        Ok(out)
    }
}

/// Iterator returned by [`Outbox::pending`]; stops after the first error.
#[derive(Debug)]
pub struct Pending<'a, S: Storage> {
    outbox: &'a Outbox<S>,
    next: u64,
    done: bool,
}

impl<S: Storage> Iterator for Pending<'_, S> {
    type Item = Result<StoredBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.outbox.peek(self.next) {
            Ok(Some(b)) => {
                self.next = b.seq.saturating_add(1);
                Some(Ok(b))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod reset_tests {
    use super::*;

    fn small() -> OutboxConfig {
        OutboxConfig {
            max_bytes: 4_000,
            max_batches: 20,
            segment_bytes: 200,
            fsync: FsyncPolicy::PerBatch,
        }
    }

    #[test]
    fn reset_to_discards_unacknowledged_batches_and_restarts_the_sequence() {
        let mem = MemStorage::new();
        let (mut ob, _) = Outbox::open(mem.clone(), small()).unwrap();
        for seq in 1..=6 {
            ob.append(seq, &[seq as u8; 50]).unwrap();
        }
        ob.ack(2).unwrap();
        ob.reset_to(4).unwrap();
        assert_eq!(ob.next_seq(), 4);
        assert_eq!(ob.ack_seq(), 3);
        assert_eq!(ob.status().depth, 0);
        assert!(ob.peek(0).unwrap().is_none());
        ob.append(4, b"snapshot").unwrap();
        assert_eq!(ob.peek(0).unwrap().unwrap().payload, b"snapshot");

        drop(ob);
        let (reopened, report) = Outbox::open(mem, small()).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(reopened.ack_seq(), 3);
        assert_eq!(reopened.peek(0).unwrap().unwrap().seq, 4);
    }

    #[test]
    fn reset_to_may_move_the_ack_pointer_back_when_central_lost_history() {
        let mem = MemStorage::new();
        let (mut ob, _) = Outbox::open(mem.clone(), small()).unwrap();
        for seq in 1..=5 {
            ob.append(seq, &[1; 20]).unwrap();
        }
        ob.ack(5).unwrap();
        ob.reset_to(2).unwrap();
        assert_eq!(ob.next_seq(), 2);
        ob.append(2, b"snapshot").unwrap();
        drop(ob);
        let (reopened, report) = Outbox::open(mem, small()).unwrap();
        assert!(!report.needs_snapshot, "{report:?}");
        assert_eq!(
            reopened
                .pending(0)
                .map(|b| b.unwrap().seq)
                .collect::<Vec<_>>(),
            [2]
        );
    }

    #[test]
    fn reset_to_zero_is_refused() {
        let (mut ob, _) = Outbox::open(MemStorage::new(), small()).unwrap();
        assert!(matches!(
            ob.reset_to(0),
            Err(OutboxError::OutOfOrder { .. })
        ));
    }
}
