//! Start-up recovery: rebuilds the outbox index from the files and repairs what a crash or
//! a failing disk left behind.
//!
//! What is cut, what is reset, and why:
//!
//! - **Torn tail** (the last frame of the newest segment is incomplete, fails its checksum and
//!   is followed only by zero bytes or nothing, or is all zeros): the file is truncated at the
//!   last good frame and [`Finding::TornTail`] is reported. No snapshot is needed: a frame is
//!   only reported durable (and only handed to the uplink) after its fsync returned, and a torn
//!   frame is exactly one whose fsync never returned, so its sequence number may be reused.
//!   (A durable last frame that rots later looks the same and is cut the same way; the caller
//!   notices because its own last-enqueued seq is then above [`RecoveryReport::next_seq`]` - 1`.)
//! - **Damage in the middle** (a bad frame followed by more data or by later segments, a frame
//!   whose seq does not follow its predecessor, or unacknowledged seqs missing, e.g. a deleted
//!   segment): everything unacknowledged is dropped, the ack pointer is moved past every seq
//!   that could still be on disk, and the report says `needs_snapshot`. Dropping only the
//!   frames after the damage would keep deltas that a snapshot supersedes anyway, and sending
//!   deltas after a hole would make central apply them on top of a state it never had. Moving
//!   the pointer past every possibly-written seq (bounded from the byte counts: a frame is at
//!   least [`HEADER_LEN`] bytes) guarantees no seq is ever reused for different content, so
//!   central's dedup-by-seq can never swallow the snapshot.
//!   Damage confined to a segment whose frames are all acknowledged is harmless: the segment
//!   is removed and reported, without a snapshot.
//! - **Unsynced survivors**: after a process crash (not a power cut) frames that were written
//!   but never fsynced are still readable; recovery fsyncs every segment it keeps before
//!   treating their frames as durable.
//! - **Ack pointer**: a leftover `ack.tmp` (crash between write and rename) is removed; the
//!   `ack` file is still the old, valid value. A missing or garbled `ack` file falls back to
//!   "one before the first seq of the oldest segment" (segments are deleted only after the
//!   ack covering them was durable, so this never skips an unacknowledged frame; at worst it
//!   resends acknowledged ones, which central deduplicates by seq), and is rewritten.

use std::fmt;

use super::error::{io_err, OutboxError};
use super::segment::{parse_frame, parse_segment_name, FrameMeta, Parsed, Segment, HEADER_LEN};
use super::storage::Storage;

/// Name of the ack pointer file.
pub const ACK_FILE: &str = "ack";
/// Name of the temporary file `write_atomic` renames over [`ACK_FILE`].
pub const ACK_TMP: &str = "ack.tmp";
const ACK_MAGIC: &[u8; 8] = b"SKOBXAK1";

/// Encodes the ack pointer: magic (8) | seq u64 LE (8) | CRC-32C of the first 16 bytes (4).
pub fn encode_ack(seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    v.extend_from_slice(ACK_MAGIC);
    v.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// Decodes the ack pointer; `None` if the file is not exactly a valid pointer.
pub fn decode_ack(data: &[u8]) -> Option<u64> {
    if data.len() != 20 || &data[..8] != ACK_MAGIC {
        return None;
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&data[16..20]);
    if crc32c::crc32c(&data[..16]) != u32::from_le_bytes(crc) {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&data[8..16]);
    Some(u64::from_le_bytes(seq))
}

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// The file ends inside the frame.
    Incomplete,
    /// The CRC-32C does not match.
    BadChecksum,
    /// The checksum matches but the seq is not the one that must come next.
    WrongSeq {
        /// Seq the position requires.
        expected: u64,
        /// Seq stored in the frame.
        found: u64,
    },
}

/// One thing recovery found, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The newest segment ended in a torn frame; it was cut.
    TornTail {
        /// Segment file name.
        segment: String,
        /// Offset of the first byte cut (the end of the last good frame).
        offset: u64,
        /// How many bytes were cut.
        cut_bytes: u64,
    },
    /// A damaged frame with data after it; everything unacknowledged was dropped.
    CorruptFrame {
        /// Segment file name.
        segment: String,
        /// Offset of the damaged frame.
        offset: u64,
        /// Seq that should have been at this offset.
        expected_seq: u64,
        /// What was wrong.
        fault: FrameFault,
    },
    /// A damaged frame in a segment whose frames were all acknowledged; the segment was removed.
    DamagedAckedSegmentRemoved {
        /// Segment file name.
        segment: String,
        /// Offset of the damaged frame.
        offset: u64,
        /// What was wrong.
        fault: FrameFault,
    },
    /// Unacknowledged seqs are on no segment (a segment file was deleted or lost).
    MissingFrames {
        /// First missing seq.
        from_seq: u64,
        /// Last missing seq.
        to_seq: u64,
    },
    /// Segments exist but the ack pointer file does not.
    AckPointerMissing {
        /// The value used instead.
        fallback: u64,
    },
    /// The ack pointer file is not a valid pointer.
    AckPointerDamaged {
        /// The value used instead.
        fallback: u64,
    },
    /// A temporary file of an interrupted atomic write was removed.
    StaleTempFile {
        /// Its name.
        name: String,
    },
    /// A file that is not the outbox's was left alone.
    UnknownFile {
        /// Its name.
        name: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::TornTail {
                segment,
                offset,
                cut_bytes,
            } => write!(
                f,
                "torn tail in {segment}: cut {cut_bytes} bytes at offset {offset}"
            ),
            Finding::CorruptFrame {
                segment,
                offset,
                expected_seq,
                fault,
            } => write!(
                f,
                "damaged frame in {segment} at offset {offset} (expected seq {expected_seq}): {fault:?}"
            ),
            Finding::DamagedAckedSegmentRemoved {
                segment,
                offset,
                fault,
            } => write!(
                f,
                "damaged frame in fully acknowledged {segment} at offset {offset} ({fault:?}); segment removed"
            ),
            Finding::MissingFrames { from_seq, to_seq } => {
                write!(f, "unacknowledged seqs {from_seq}..={to_seq} are missing")
            }
            Finding::AckPointerMissing { fallback } => {
                write!(f, "ack pointer missing; resending after seq {fallback}")
            }
            Finding::AckPointerDamaged { fallback } => {
                write!(f, "ack pointer damaged; resending after seq {fallback}")
            }
            Finding::StaleTempFile { name } => write!(f, "removed stale temporary file {name}"),
            Finding::UnknownFile { name } => write!(f, "ignored unknown file {name}"),
        }
    }
}

/// What start-up recovery found and did. The caller logs it; if `needs_snapshot` is set it
/// must send a full snapshot (with seq [`RecoveryReport::next_seq`]) instead of a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Everything noteworthy, in the order found. Empty after a clean shutdown.
    pub findings: Vec<Finding>,
    /// Unacknowledged data was lost or could not be trusted, so deltas would build on a state
    /// central does not have: send a full snapshot.
    pub needs_snapshot: bool,
    /// Seqs that were dropped unsent (inclusive range), when `needs_snapshot` is set. An upper
    /// bound: some of them may never have existed.
    pub dropped: Option<(u64, u64)>,
    /// The ack pointer after recovery.
    pub ack_seq: u64,
    /// The seq the next append must carry.
    pub next_seq: u64,
    /// Unacknowledged batches recovered.
    pub unacked: u64,
}

impl RecoveryReport {
    /// True when nothing had to be repaired (findings about unknown files aside).
    pub fn is_clean(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f, Finding::UnknownFile { .. }))
    }

    /// The torn tail that was cut, if any.
    pub fn torn_tail(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| matches!(f, Finding::TornTail { .. }))
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbox recovered: {} unacknowledged, ack {}, next seq {}",
            self.unacked, self.ack_seq, self.next_seq
        )?;
        if self.needs_snapshot {
            write!(f, "; NEEDS FULL SNAPSHOT")?;
            if let Some((a, b)) = self.dropped {
                write!(f, " (dropped seqs {a}..={b})")?;
            }
        }
        for finding in &self.findings {
            write!(f, "; {finding}")?;
        }
        Ok(())
    }
}

pub(super) struct Recovered {
    pub segments: Vec<Segment>,
    pub ack_seq: u64,
    pub report: RecoveryReport,
}

fn frames_upper_bound(first_seq_minus_one: u64, bytes: u64) -> u64 {
    first_seq_minus_one.saturating_add(bytes.div_ceil(HEADER_LEN as u64))
}

/// Scans the directory, repairs it and returns the index. Only I/O errors fail; no content of
/// any file can make it panic.
pub(super) fn recover<S: Storage>(storage: &mut S) -> Result<Recovered, OutboxError> {
    let mut findings = Vec::new();
    let mut seg_names: Vec<(u64, String)> = Vec::new();
    let mut has_ack = false;
    for name in storage.list().map_err(|e| io_err(storage, "", e))? {
        if let Some(first) = parse_segment_name(&name) {
            seg_names.push((first, name));
        } else if name == ACK_FILE {
            has_ack = true;
        } else if name == ACK_TMP {
            storage
                .remove(&name)
                .map_err(|e| io_err(storage, &name, e))?;
            findings.push(Finding::StaleTempFile { name });
        } else {
            findings.push(Finding::UnknownFile { name });
        }
    }
    seg_names.sort();

    let fallback = seg_names
        .first()
        .map(|(first, _)| first.saturating_sub(1))
        .unwrap_or(0);
    let mut rewrite_ack = false;
    let mut ack = if has_ack {
        let data = storage
            .read_all(ACK_FILE)
            .map_err(|e| io_err(storage, ACK_FILE, e))?;
        match decode_ack(&data) {
            Some(v) => v,
            None => {
                findings.push(Finding::AckPointerDamaged { fallback });
                rewrite_ack = true;
                fallback
            }
        }
    } else {
        if !seg_names.is_empty() {
            findings.push(Finding::AckPointerMissing { fallback });
        }
        rewrite_ack = true;
        fallback
    };

    let mut segments: Vec<Segment> = Vec::new();
    // Once set: the highest seq that could be on disk at or after the damage.
    let mut damage_bound: Option<u64> = None;
    let count = seg_names.len();
    for (i, (first, name)) in seg_names.iter().enumerate() {
        let data = storage
            .read_all(name)
            .map_err(|e| io_err(storage, name, e))?;
        let mut seg = Segment::new(name.clone(), *first);
        seg.bytes = data.len() as u64;
        seg.synced_bytes = seg.bytes;
        seg.entry_synced = true;
        if let Some(bound) = damage_bound.as_mut() {
            *bound = (*bound).max(frames_upper_bound(first.saturating_sub(1), seg.bytes));
            segments.push(seg);
            continue;
        }
        let mut off = 0usize;
        let mut expected = *first;
        let mut bad = None;
        while off < data.len() {
            match parse_frame(&data, off) {
                Parsed::Good(h) if h.seq == expected => {
                    seg.frames.push(FrameMeta {
                        seq: h.seq,
                        offset: off as u64,
                        len: h.len,
                        appended_at_ms: h.appended_at_ms,
                    });
                    off += h.frame_len() as usize;
                    expected = expected.saturating_add(1);
                }
                Parsed::Good(h) => {
                    bad = Some((
                        FrameFault::WrongSeq {
                            expected,
                            found: h.seq,
                        },
                        off + h.frame_len() as usize,
                    ));
                    break;
                }
                Parsed::BadChecksum(h) => {
                    bad = Some((FrameFault::BadChecksum, off + h.frame_len() as usize));
                    break;
                }
                Parsed::Incomplete => {
                    bad = Some((FrameFault::Incomplete, data.len()));
                    break;
                }
            }
        }
        let Some((fault, frame_end)) = bad else {
            segments.push(seg);
            continue;
        };
        let is_last = i + 1 == count;
        let rest_is_zero = data[off..].iter().all(|b| *b == 0)
            || (fault == FrameFault::BadChecksum
                && data
                    .get(frame_end..)
                    .is_some_and(|r| r.iter().all(|b| *b == 0)));
        let tail_like = is_last && (fault == FrameFault::Incomplete || rest_is_zero);
        if tail_like {
            storage
                .truncate(name, off as u64)
                .map_err(|e| io_err(storage, name, e))?;
            findings.push(Finding::TornTail {
                segment: name.clone(),
                offset: off as u64,
                cut_bytes: (data.len() - off) as u64,
            });
            seg.bytes = off as u64;
            seg.synced_bytes = seg.bytes;
            segments.push(seg);
            continue;
        }
        let next_first = seg_names.get(i + 1).map(|(f, _)| *f);
        if expected <= ack && next_first.is_some_and(|n| n <= ack.saturating_add(1)) {
            // Every seq this segment can hold is acknowledged: drop it, no harm done.
            storage.remove(name).map_err(|e| io_err(storage, name, e))?;
            findings.push(Finding::DamagedAckedSegmentRemoved {
                segment: name.clone(),
                offset: off as u64,
                fault,
            });
            continue;
        }
        findings.push(Finding::CorruptFrame {
            segment: name.clone(),
            offset: off as u64,
            expected_seq: expected,
            fault,
        });
        damage_bound = Some(frames_upper_bound(
            expected.saturating_sub(1),
            (data.len() - off) as u64,
        ));
        segments.push(seg);
    }

    // Unacknowledged frames must run without a hole from ack + 1 to the last one.
    if damage_bound.is_none() {
        let mut want = ack.saturating_add(1);
        let mut last_good = ack;
        'outer: for seg in &segments {
            for fr in &seg.frames {
                if fr.seq <= ack {
                    continue;
                }
                if fr.seq != want {
                    if fr.seq > want {
                        findings.push(Finding::MissingFrames {
                            from_seq: want,
                            to_seq: fr.seq - 1,
                        });
                    } else {
                        findings.push(Finding::CorruptFrame {
                            segment: seg.name.clone(),
                            offset: fr.offset,
                            expected_seq: want,
                            fault: FrameFault::WrongSeq {
                                expected: want,
                                found: fr.seq,
                            },
                        });
                    }
                    damage_bound = Some(last_good);
                    break 'outer;
                }
                last_good = fr.seq;
                want = want.saturating_add(1);
            }
        }
    }

    let mut needs_snapshot = false;
    let mut dropped = None;
    if let Some(bound) = damage_bound {
        // Reset: nothing unacknowledged can be trusted; move the pointer past every seq that
        // could be on disk, so none is ever reused.
        let mut highest = bound.max(ack);
        for seg in &segments {
            if let Some(last) = seg.frames.last() {
                highest = highest.max(last.seq);
            }
            highest = highest.max(frames_upper_bound(
                seg.first_seq.saturating_sub(1),
                seg.bytes,
            ));
        }
        needs_snapshot = true;
        if highest > ack {
            dropped = Some((ack + 1, highest));
        }
        ack = highest;
        rewrite_ack = true;
    }

    if rewrite_ack {
        storage
            .write_atomic(ACK_FILE, &encode_ack(ack))
            .map_err(|e| io_err(storage, ACK_FILE, e))?;
    }

    // Remove segments with nothing unacknowledged (and, after a reset, all of them).
    let mut removed_any = false;
    let mut kept = Vec::new();
    for seg in segments {
        let keep = !needs_snapshot && seg.frames.last().is_some_and(|f| f.seq > ack);
        if keep {
            kept.push(seg);
        } else {
            storage
                .remove(&seg.name)
                .map_err(|e| io_err(storage, &seg.name, e))?;
            removed_any = true;
        }
    }
    // What recovery read may still sit unsynced in the page cache (the previous process
    // died, the machine did not): make it durable before anything of it is sent.
    for seg in &kept {
        storage
            .sync(&seg.name)
            .map_err(|e| io_err(storage, &seg.name, e))?;
    }
    if removed_any || !kept.is_empty() {
        storage.sync_dir().map_err(|e| io_err(storage, "", e))?;
    }

    let last_seq = kept
        .last()
        .and_then(|s| s.frames.last())
        .map(|f| f.seq)
        .unwrap_or(ack)
        .max(ack);
    let report = RecoveryReport {
        findings,
        needs_snapshot,
        dropped,
        ack_seq: ack,
        next_seq: last_seq.saturating_add(1),
        unacked: last_seq - ack,
    };
    Ok(Recovered {
        segments: kept,
        ack_seq: ack,
        report,
    })
}
