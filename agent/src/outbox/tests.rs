//! Outbox tests: behaviour on MemStorage, a model-based proptest, and named faults on real
//! files.

use std::collections::VecDeque;
use std::path::Path;

use proptest::prelude::*;

use super::segment::{encode_frame, parse_frame, parse_segment_name, segment_name, Parsed};
use super::*;

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn small(fsync: FsyncPolicy) -> OutboxConfig {
    OutboxConfig {
        max_bytes: 2_000,
        max_batches: 20,
        segment_bytes: 200,
        fsync,
    }
}

fn open_mem(mem: &MemStorage, cfg: OutboxConfig) -> (Outbox<MemStorage>, RecoveryReport) {
    Outbox::open(mem.clone(), cfg).expect("open")
}

fn pending_seqs<S: Storage>(ob: &Outbox<S>) -> Vec<u64> {
    ob.pending(0).map(|b| b.expect("read").seq).collect()
}

#[test]
fn appended_batches_come_back_in_order_and_acks_delete_whole_segments() {
    let mem = MemStorage::new();
    let (mut ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean());
    for seq in 1..=10 {
        let t = ob.append(seq, &payload(seq, 40)).expect("append");
        assert!(ob.is_durable(t));
    }
    let segs_before = mem.names().iter().filter(|n| n.ends_with(".seg")).count();
    assert!(
        segs_before >= 3,
        "64-byte frames in 200-byte segments rotate"
    );
    let got: Vec<StoredBatch> = ob.pending(0).collect::<Result<_>>().expect("read");
    assert_eq!(got.len(), 10);
    for b in &got {
        assert_eq!(b.payload, payload(b.seq, 40));
    }
    assert_eq!(ob.peek(4).expect("peek").map(|b| b.seq), Some(4));
    ob.ack(7).expect("ack");
    assert_eq!(pending_seqs(&ob), vec![8, 9, 10]);
    assert!(!mem.names().contains(&segment_name(1)));
    ob.ack(10).expect("ack");
    assert!(mem.names().iter().all(|n| !n.ends_with(".seg")));
    assert_eq!(ob.next_seq(), 11);
    ob.append(11, b"x")
        .expect("append after everything was acked");
    drop(ob);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![11]);
}

#[test]
fn a_full_outbox_by_batch_count_returns_full_and_writes_nothing() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    for seq in 1..=20 {
        ob.append(seq, b"a").expect("append");
    }
    assert!(!ob.has_room_for(1));
    let before = mem
        .names()
        .into_iter()
        .map(|n| mem.raw(&n))
        .collect::<Vec<_>>();
    assert!(matches!(ob.append(21, b"a"), Err(OutboxError::Full { .. })));
    let after = mem
        .names()
        .into_iter()
        .map(|n| mem.raw(&n))
        .collect::<Vec<_>>();
    assert_eq!(before, after);
    ob.ack(1).expect("ack");
    ob.append(21, b"a").expect("room again after an ack");
}

#[test]
fn a_full_outbox_by_bytes_never_exceeds_the_bound() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    let mut seq = 1;
    loop {
        match ob.append(seq, &payload(seq, 150)) {
            Ok(_) => seq += 1,
            Err(OutboxError::Full { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(ob.status().disk_bytes <= 2_000);
    }
    let on_disk: usize = mem
        .names()
        .iter()
        .filter(|n| n.ends_with(".seg"))
        .filter_map(|n| mem.raw(n))
        .map(|d| d.len())
        .sum();
    assert!(on_disk <= 2_000);
    assert_eq!(on_disk as u64, ob.status().disk_bytes);
}

#[test]
fn a_payload_larger_than_the_byte_bound_is_too_large_not_full() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    let err = ob.append(1, &vec![0u8; 2_000]).expect_err("too large");
    assert!(
        matches!(err, OutboxError::TooLarge { len: 2_000, .. }),
        "{err}"
    );
    assert_eq!(ob.next_seq(), 1);
}

#[test]
fn a_seq_that_does_not_follow_the_last_one_is_rejected() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, b"a").expect("append");
    assert!(matches!(
        ob.append(3, b"a"),
        Err(OutboxError::OutOfOrder {
            expected: 2,
            got: 3
        })
    ));
    assert!(matches!(
        ob.append(1, b"a"),
        Err(OutboxError::OutOfOrder { .. })
    ));
}

#[test]
fn skipping_seqs_on_an_empty_outbox_is_not_mistaken_for_lost_segments() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(500, b"first")
        .expect("any seq starts an empty outbox");
    ob.append(501, b"second").expect("append");
    drop(ob);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean() && !rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), vec![500, 501]);
}

#[test]
fn a_disk_that_fills_up_mid_append_rolls_back_and_recovers_when_space_frees() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, &payload(1, 50)).expect("append");
    let used: usize = mem
        .names()
        .iter()
        .filter_map(|n| mem.raw(n))
        .map(|d| d.len())
        .sum();
    mem.set_capacity(Some(used + 30));
    let err = ob.append(2, &payload(2, 50)).expect_err("ENOSPC");
    assert!(matches!(err, OutboxError::Io { .. }), "{err}");
    assert!(!ob.is_failed());
    assert_eq!(mem.raw(&segment_name(1)).map(|d| d.len()), Some(74));
    mem.set_capacity(None);
    ob.append(2, &payload(2, 50))
        .expect("append once space is back");
    drop(ob);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1, 2]);
}

#[test]
fn an_fsync_error_rolls_the_frame_back() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, b"one").expect("append");
    mem.inject(Fault::SyncFails);
    assert!(matches!(ob.append(2, b"two"), Err(OutboxError::Io { .. })));
    assert_eq!(ob.next_seq(), 2);
    assert_eq!(ob.durable_seq(), 1);
    ob.append(2, b"two").expect("retry");
    mem.crash();
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1, 2]);
}

#[test]
fn a_failed_rollback_freezes_the_outbox_until_reopen() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, b"one").expect("append");
    mem.inject(Fault::ShortAppend { written: 10 });
    mem.inject(Fault::TruncateFails);
    assert!(matches!(ob.append(2, b"two"), Err(OutboxError::Io { .. })));
    assert!(ob.is_failed());
    assert!(matches!(ob.append(2, b"two"), Err(OutboxError::Failed)));
    assert!(matches!(ob.ack(1), Err(OutboxError::Failed)));
    assert_eq!(pending_seqs(&ob), vec![1], "reading still works");
    drop(ob);
    let (mut ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.torn_tail().is_some(), "{rep}");
    assert!(!rep.needs_snapshot);
    ob.append(2, b"two").expect("append after reopen");
    assert_eq!(pending_seqs(&ob), vec![1, 2]);
}

#[test]
fn group_commit_frames_count_only_once_synced_and_a_crash_drops_the_rest() {
    let mem = MemStorage::new();
    let cfg = small(FsyncPolicy::GroupCommit {
        max_delay_ms: 3_600_000,
    });
    let (mut ob, _) = open_mem(&mem, cfg.clone());
    let t1 = ob.append(1, b"one").expect("append");
    assert!(!ob.is_durable(t1));
    assert_eq!(
        ob.peek(0).expect("peek"),
        None,
        "uplink never sees unsynced frames"
    );
    assert!(matches!(ob.ack(1), Err(OutboxError::AckAhead { .. })));
    assert_eq!(ob.sync().expect("sync"), 1);
    assert!(ob.is_durable(t1));
    ob.append(2, b"two").expect("append");
    ob.append(3, b"three").expect("append");
    assert!(ob.flush_deadline().is_some());
    assert_eq!(ob.flush_due().expect("not due yet"), 1);
    drop(ob);
    mem.crash();
    let (ob, rep) = open_mem(&mem, cfg);
    assert!(!rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1]);
    assert_eq!(ob.next_seq(), 2);
}

#[test]
fn group_commit_flush_due_syncs_once_the_delay_has_passed() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::GroupCommit { max_delay_ms: 20 }));
    ob.append(1, b"one").expect("append");
    assert_eq!(ob.durable_seq(), 0);
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(ob.flush_due().expect("flush"), 1);
    assert_eq!(ob.flush_deadline(), None);
}

#[test]
fn a_failed_group_commit_sync_drops_exactly_the_unsynced_frames() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(
        &mem,
        small(FsyncPolicy::GroupCommit {
            max_delay_ms: 3_600_000,
        }),
    );
    ob.append(1, b"one").expect("append");
    ob.sync().expect("sync");
    ob.append(2, b"two").expect("append");
    ob.append(3, b"three").expect("append");
    mem.inject(Fault::SyncFails);
    assert!(ob.sync().is_err());
    assert_eq!((ob.durable_seq(), ob.next_seq()), (1, 2));
    ob.append(2, b"two again").expect("append");
    ob.sync().expect("sync");
    assert_eq!(pending_seqs(&ob), vec![1, 2]);
}

#[test]
fn the_oldest_unacknowledged_age_survives_a_restart() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    let before = unix_ms_now();
    ob.append(1, b"one").expect("append");
    ob.append(2, b"two").expect("append");
    ob.ack(1).expect("ack");
    drop(ob);
    let (ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    let st = ob.status();
    let oldest = st.oldest_unacked.expect("one unacked");
    assert_eq!(oldest.seq, 2);
    assert!(oldest.appended_at_ms >= before && oldest.appended_at_ms <= unix_ms_now());
    assert_eq!((st.depth, st.ack_seq, st.next_seq), (1, 1, 3));
    assert!(st.oldest_unacked_age(unix_ms_now() + 1_000).expect("age") >= Duration::from_secs(1));
}

#[test]
fn inspect_lists_every_frame_header_but_no_payload() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    for seq in 1..=5 {
        ob.append(seq, &payload(seq, 30)).expect("append");
    }
    ob.ack(1).expect("ack");
    let frames = ob.inspect().expect("inspect");
    assert_eq!(
        frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(frames.iter().all(|f| f.crc_ok && f.len == 30 && f.durable));
    assert_eq!(frames.iter().filter(|f| f.acked).count(), 1);
}

#[test]
fn the_wall_clock_reads_as_milliseconds_since_1970() {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let now = unix_ms_now();
    assert!(
        now >= before && now < before + 10_000,
        "{now} against {before}"
    );
}

#[test]
fn the_settings_in_force_are_the_ones_the_outbox_was_opened_with() {
    let mem = MemStorage::new();
    let cfg = small(FsyncPolicy::GroupCommit { max_delay_ms: 7 });
    let (ob, _) = open_mem(&mem, cfg.clone());
    assert_eq!(ob.config(), &cfg);
}

#[test]
fn a_frame_exactly_as_large_as_the_byte_bound_fits_an_empty_outbox() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    let fits = 2_000 - HEADER_LEN;
    assert!(ob.has_room_for(fits));
    assert!(!ob.has_room_for(fits + 1));
    ob.append(1, &vec![7u8; fits])
        .expect("a frame of exactly max_bytes");
    assert_eq!(ob.status().disk_bytes, 2_000);
    assert_eq!(pending_seqs(&ob), vec![1]);
}

#[test]
fn a_seq_at_or_below_the_acknowledged_one_is_refused_once_everything_is_acknowledged() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    for seq in 1..=3 {
        ob.append(seq, b"a").expect("append");
    }
    ob.ack(3).expect("ack");
    for seq in [3, 2, 0, u64::MAX] {
        assert!(
            matches!(
                ob.append(seq, b"b"),
                Err(OutboxError::OutOfOrder { expected: 4, got }) if got == seq
            ),
            "seq {seq}"
        );
    }
    assert!(mem.names().iter().all(|n| !n.ends_with(".seg")));
    ob.append(4, b"b").expect("the next seq");
}

#[test]
fn appending_the_next_seq_to_an_acknowledged_outbox_writes_no_ack_pointer() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    mem.inject(Fault::WriteAtomicFails);
    ob.append(1, b"a")
        .expect("no pointer to write before seq 1");
    assert_eq!(mem.pending_faults(), vec![Fault::WriteAtomicFails]);
    assert_eq!(ob.ack_seq(), 0);
}

/// An outbox whose ack of seq 1 could not remove the segment holding it: the pointer is at
/// 1 and the segment, whose frames are all acknowledged, is still there.
fn acked_but_not_removed(mem: &MemStorage) -> Outbox<MemStorage> {
    let (mut ob, _) = open_mem(mem, small(FsyncPolicy::PerBatch));
    ob.append(1, b"one").expect("append");
    mem.inject(Fault::RemoveFails);
    assert!(ob.ack(1).is_err());
    assert_eq!(ob.ack_seq(), 1);
    assert!(mem.names().contains(&segment_name(1)));
    ob
}

#[test]
fn the_seq_after_an_acknowledged_segment_left_on_disk_continues_that_segment() {
    let mem = MemStorage::new();
    let mut ob = acked_but_not_removed(&mem);
    ob.append(2, b"two").expect("the next seq");
    assert!(!mem.names().contains(&segment_name(2)), "{:?}", mem.names());
    assert_eq!(pending_seqs(&ob), vec![2]);
}

#[test]
fn a_skip_after_an_acknowledged_segment_left_on_disk_starts_a_segment_of_its_own() {
    let mem = MemStorage::new();
    let mut ob = acked_but_not_removed(&mem);
    ob.append(5, b"five").expect("a skip past the pointer");
    assert!(mem.names().contains(&segment_name(5)), "{:?}", mem.names());
    drop(ob);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean() && !rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), vec![5]);
}

#[test]
fn a_frame_that_exactly_fills_a_segment_stays_in_it() {
    let mem = MemStorage::new();
    let frame = HEADER_LEN as u64 + 16;
    let cfg = OutboxConfig {
        segment_bytes: 2 * frame,
        ..small(FsyncPolicy::PerBatch)
    };
    let (mut ob, _) = open_mem(&mem, cfg);
    for seq in 1..=3 {
        ob.append(seq, &payload(seq, 16)).expect("append");
    }
    let segments: Vec<String> = mem
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    assert_eq!(segments, vec![segment_name(1), segment_name(3)]);
}

#[test]
fn a_skip_counts_only_once_synced_under_group_commit() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(
        &mem,
        small(FsyncPolicy::GroupCommit {
            max_delay_ms: 3_600_000,
        }),
    );
    ob.append(500, b"first")
        .expect("any seq starts an empty outbox");
    assert_eq!(ob.durable_seq(), 499);
    assert_eq!(ob.peek(0).expect("peek"), None, "not synced yet");
    ob.sync().expect("sync");
    assert_eq!(ob.peek(0).expect("peek").map(|b| b.seq), Some(500));
}

#[test]
fn after_a_reset_the_next_frame_counts_only_once_synced() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(
        &mem,
        small(FsyncPolicy::GroupCommit {
            max_delay_ms: 3_600_000,
        }),
    );
    ob.append(1, b"one").expect("append");
    ob.sync().expect("sync");
    ob.reset_to(10).expect("reset");
    assert_eq!((ob.ack_seq(), ob.durable_seq(), ob.next_seq()), (9, 9, 10));
    ob.append(10, b"ten").expect("append");
    assert_eq!(ob.peek(0).expect("peek"), None, "not synced yet");
    ob.sync().expect("sync");
    assert_eq!(ob.peek(0).expect("peek").map(|b| b.seq), Some(10));
}

#[test]
fn a_valid_frame_of_another_seq_where_a_batch_should_be_is_corrupt_not_served() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, &payload(1, 30)).expect("append");
    ob.append(2, &payload(2, 30)).expect("append");
    let raw = mem.raw(&segment_name(1)).expect("the segment");
    let frame = raw.len() / 2;
    let second = raw[frame..].to_vec();
    mem.set_raw(&segment_name(1), [second.clone(), second].concat());
    assert!(matches!(
        ob.peek(1),
        Err(OutboxError::Corrupt { seq: 1, .. })
    ));
}

#[test]
fn the_status_counts_the_bytes_of_the_unacknowledged_frames_only() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    for seq in 1..=3 {
        ob.append(seq, &payload(seq, 10 * seq as usize))
            .expect("append");
    }
    ob.ack(1).expect("ack");
    let status = ob.status();
    let header = HEADER_LEN as u64;
    assert_eq!(status.unacked_bytes, (header + 20) + (header + 30));
    assert_eq!(
        status.disk_bytes,
        (header + 10) + (header + 20) + (header + 30)
    );
}

#[test]
fn inspect_marks_the_frame_after_the_last_sync_not_durable() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(
        &mem,
        small(FsyncPolicy::GroupCommit {
            max_delay_ms: 3_600_000,
        }),
    );
    ob.append(1, b"one").expect("append");
    ob.sync().expect("sync");
    ob.append(2, b"two").expect("append");
    let frames = ob.inspect().expect("inspect");
    let durable: Vec<(u64, bool)> = frames.iter().map(|f| (f.seq, f.durable)).collect();
    assert_eq!(durable, vec![(1, true), (2, false)]);
    assert_eq!(frames[1].offset, HEADER_LEN as u64 + 3);
}

#[test]
fn a_failed_ack_write_leaves_the_pointer_where_it_was() {
    let mem = MemStorage::new();
    let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    ob.append(1, b"one").expect("append");
    mem.inject(Fault::WriteAtomicFails);
    assert!(ob.ack(1).is_err());
    assert_eq!(ob.ack_seq(), 0);
    assert_eq!(pending_seqs(&ob), vec![1]);
    ob.ack(1).expect("ack");
    assert_eq!(pending_seqs(&ob), Vec::<u64>::new());
}

#[test]
fn a_garbage_segment_never_panics_recovery() {
    let mem = MemStorage::new();
    for len in 0..200usize {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        mem.set_raw(&segment_name(1), junk.clone());
        mem.set_raw(&segment_name(9), junk);
        mem.set_raw("ack", vec![1, 2, 3]);
        let (mut ob, _) = open_mem(&mem, small(FsyncPolicy::PerBatch));
        let next = ob.next_seq();
        ob.append(next, b"ok").expect("usable after recovery");
        for n in mem.names() {
            mem.delete_raw(&n);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Model-based test: the outbox against a VecDeque.

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Ack(usize),
    Sync,
    Restart,
    Crash,
    CorruptTail(usize),
    ShortAppend(usize),
    SyncFails,
}

fn op_strategy(faults: bool) -> BoxedStrategy<Op> {
    let base = prop_oneof![
        6 => (0usize..80).prop_map(Op::Append),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Sync),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        1 => any::<usize>().prop_map(Op::CorruptTail),
    ];
    if faults {
        prop_oneof![
            12 => base,
            1 => (0usize..40).prop_map(Op::ShortAppend),
            1 => Just(Op::SyncFails),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

enum Disk {
    Mem(MemStorage),
    Fs(std::path::PathBuf),
}

impl Disk {
    fn storage(&self) -> Box<dyn Storage> {
        match self {
            Disk::Mem(m) => Box::new(m.clone()),
            Disk::Fs(p) => Box::new(FsStorage::new(p).expect("dir")),
        }
    }

    fn crash(&self) {
        if let Disk::Mem(m) = self {
            m.crash();
        }
    }

    /// Cuts the newest segment somewhere inside its last frame (a torn write).
    /// Returns None if there was no frame, else whether bytes of the frame remain (torn).
    fn corrupt_tail(&self, n: usize) -> Option<bool> {
        let names = match self {
            Disk::Mem(m) => m.names(),
            Disk::Fs(p) => FsStorage::new(p).expect("dir").list().expect("list"),
        };
        let last = names
            .iter()
            .filter(|n| parse_segment_name(n).is_some())
            .max()?;
        let data = self.storage().read_all(last).expect("read");
        let mut off = 0;
        let mut last_off = None;
        while let Parsed::Good(h) = parse_frame(&data, off) {
            last_off = Some((off, h.frame_len() as usize));
            off += h.frame_len() as usize;
        }
        let (start, len) = last_off?;
        let cut = start + n % len;
        match self {
            Disk::Mem(m) => m.set_raw(last, data[..cut].to_vec()),
            Disk::Fs(p) => std::fs::write(p.join(last), &data[..cut]).expect("write"),
        }
        Some(cut > start)
    }

    fn inject(&self, f: Fault) -> bool {
        match self {
            Disk::Mem(m) => {
                m.inject(f);
                true
            }
            Disk::Fs(_) => false,
        }
    }

    fn sync_faults_queued(&self) -> usize {
        match self {
            Disk::Mem(m) => m
                .pending_faults()
                .iter()
                .filter(|f| **f == Fault::SyncFails)
                .count(),
            Disk::Fs(_) => 0,
        }
    }
}

enum OpKind {
    Reopen,
    Other,
}

#[derive(Default, Debug)]
struct Model {
    durable: VecDeque<(u64, Vec<u8>)>,
    unsynced: VecDeque<(u64, Vec<u8>)>,
    ack: u64,
}

impl Model {
    fn next_seq(&self) -> u64 {
        self.unsynced
            .back()
            .or(self.durable.back())
            .map_or(self.ack + 1, |(s, _)| s + 1)
    }
}

fn run_model(
    disk: Disk,
    fsync: FsyncPolicy,
    ops: Vec<Op>,
) -> std::result::Result<(), TestCaseError> {
    let cfg = small(fsync);
    let (mut ob, rep) = Outbox::open(disk.storage(), cfg.clone()).expect("open");
    prop_assert!(rep.is_clean());
    let mut m = Model::default();
    for op in ops {
        let sync_faults_before = disk.sync_faults_queued();
        let op_kind = match op {
            Op::Restart | Op::Crash | Op::CorruptTail(_) => OpKind::Reopen,
            _ => OpKind::Other,
        };
        match op {
            Op::Append(len) => {
                let seq = ob.next_seq();
                prop_assert_eq!(seq, m.next_seq());
                let p = payload(seq, len);
                let room = ob.has_room_for(len);
                match ob.append(seq, &p) {
                    Ok(t) => {
                        prop_assert!(room);
                        if ob.is_durable(t) {
                            m.unsynced.push_back((seq, p));
                            m.durable.append(&mut m.unsynced);
                        } else {
                            m.unsynced.push_back((seq, p));
                        }
                    }
                    Err(OutboxError::Full { .. }) => prop_assert!(!room),
                    Err(OutboxError::Io { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("append: {e}"))),
                }
            }
            Op::Ack(k) => {
                if !m.durable.is_empty() {
                    let idx = k % m.durable.len();
                    let seq = m.durable[idx].0;
                    ob.ack(seq)
                        .map_err(|e| TestCaseError::fail(format!("ack: {e}")))?;
                    m.ack = seq;
                    m.durable.drain(..=idx);
                }
            }
            Op::Sync => {
                if ob.sync().is_ok() {
                    m.durable.append(&mut m.unsynced);
                }
            }
            Op::Restart | Op::Crash | Op::CorruptTail(_) => {
                drop(ob);
                let mut torn = false;
                if matches!(op, Op::Restart) {
                    // A process restart keeps what was written (the page cache survives).
                    m.durable.append(&mut m.unsynced);
                } else {
                    disk.crash();
                    if matches!(disk, Disk::Mem(_)) {
                        m.unsynced.clear();
                    } else {
                        m.durable.append(&mut m.unsynced);
                    }
                }
                if let Op::CorruptTail(n) = op {
                    if let Some(t) = disk.corrupt_tail(n) {
                        m.durable.pop_back();
                        torn = t;
                    }
                }
                // A queued fault may hit recovery itself: it must fail cleanly, and a retry
                // (the daemon restarting again) must then succeed.
                let mut tries = 0;
                let (o, rep) = loop {
                    match Outbox::open(disk.storage(), cfg.clone()) {
                        Ok(v) => break v,
                        Err(OutboxError::Io { .. }) if tries < 10 => tries += 1,
                        Err(e) => return Err(TestCaseError::fail(format!("reopen: {e}"))),
                    }
                };
                ob = o;
                prop_assert!(!rep.needs_snapshot, "{}", rep);
                if torn {
                    prop_assert!(rep.torn_tail().is_some(), "{}", rep);
                }
            }
            Op::ShortAppend(n) => {
                disk.inject(Fault::ShortAppend { written: n });
            }
            Op::SyncFails => {
                disk.inject(Fault::SyncFails);
            }
        }
        if disk.sync_faults_queued() < sync_faults_before && !matches!(op_kind, OpKind::Reopen) {
            m.unsynced.retain(|(s, _)| *s <= ob.durable_seq());
        }
        // Frames that became durable through a rotation or a due flush.
        while m
            .unsynced
            .front()
            .is_some_and(|(s, _)| *s <= ob.durable_seq())
        {
            if let Some(f) = m.unsynced.pop_front() {
                m.durable.push_back(f);
            }
        }
        prop_assert!(!ob.is_failed());
        prop_assert_eq!(ob.next_seq(), m.next_seq());
        let st = ob.status();
        prop_assert!(st.disk_bytes <= cfg.max_bytes);
        prop_assert_eq!(st.depth, (m.durable.len() + m.unsynced.len()) as u64);
        let got: Vec<(u64, Vec<u8>)> = ob
            .pending(0)
            .map(|b| b.map(|b| (b.seq, b.payload)))
            .collect::<Result<_>>()
            .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
        prop_assert_eq!(got, m.durable.iter().cloned().collect::<Vec<_>>());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_outbox_behaves_like_a_queue_through_crashes_and_faults_per_batch(
        ops in prop::collection::vec(op_strategy(true), 1..120)
    ) {
        run_model(Disk::Mem(MemStorage::new()), FsyncPolicy::PerBatch, ops)?;
    }

    #[test]
    fn the_outbox_behaves_like_a_queue_through_crashes_and_faults_group_commit(
        ops in prop::collection::vec(op_strategy(true), 1..120)
    ) {
        run_model(
            Disk::Mem(MemStorage::new()),
            FsyncPolicy::GroupCommit { max_delay_ms: 3_600_000 },
            ops,
        )?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_outbox_behaves_like_a_queue_on_real_files(
        ops in prop::collection::vec(op_strategy(false), 1..60)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        run_model(Disk::Fs(dir.path().join("outbox")), FsyncPolicy::PerBatch, ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Named faults on real files.

fn fs_cfg() -> OutboxConfig {
    OutboxConfig {
        segment_bytes: 300,
        ..OutboxConfig::default()
    }
}

fn fill(dir: &Path, seqs: std::ops::RangeInclusive<u64>) {
    let (mut ob, _) = Outbox::open_dir(dir, fs_cfg()).expect("open");
    for seq in seqs {
        ob.append(seq, &payload(seq, 60)).expect("append");
    }
}

fn segs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

fn check_payloads(ob: &Outbox<FsStorage>, expect: &[u64]) {
    let got: Vec<StoredBatch> = ob.pending(0).collect::<Result<_>>().expect("read");
    assert_eq!(got.iter().map(|b| b.seq).collect::<Vec<_>>(), expect);
    for b in got {
        assert_eq!(b.payload, payload(b.seq, 60));
    }
}

#[test]
fn a_tail_truncated_at_every_byte_offset_of_the_last_frame_is_cut_at_startup() {
    let src = tempfile::tempdir().expect("tempdir");
    fill(src.path(), 1..=3);
    let seg = segs(src.path()).pop().expect("segment");
    let data = std::fs::read(src.path().join(&seg)).expect("read");
    let ack = std::fs::read(src.path().join("ack")).expect("ack");
    let frame = 24 + 60;
    let last_start = data.len() - frame;
    for cut in last_start..data.len() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(&seg), &data[..cut]).expect("write");
        std::fs::write(dir.path().join("ack"), &ack).expect("write");
        let (mut ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
        assert!(!rep.needs_snapshot, "cut {cut}: {rep}");
        assert_eq!(
            rep.torn_tail().is_some(),
            cut > last_start,
            "cut {cut}: {rep}"
        );
        check_payloads(&ob, &[1, 2]);
        assert_eq!(ob.next_seq(), 3);
        assert_eq!(
            std::fs::metadata(dir.path().join(&seg))
                .expect("meta")
                .len(),
            last_start as u64
        );
        ob.append(3, &payload(3, 60)).expect("append");
        drop(ob);
        let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("reopen");
        assert!(rep.is_clean(), "{rep}");
        check_payloads(&ob, &[1, 2, 3]);
    }
}

#[test]
fn an_io_error_names_the_file_on_disk_in_memory_and_behind_a_box() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox_dir = dir.path().join("outbox");
    let (mut ob, _) =
        Outbox::open(FsStorage::new(&outbox_dir).expect("dir"), fs_cfg()).expect("open");
    std::fs::remove_dir_all(&outbox_dir).expect("the folder goes away");
    let error = ob.append(1, b"one").expect_err("no folder to write in");
    let segment = outbox_dir.join(segment_name(1));
    assert!(
        matches!(&error, OutboxError::Io { path, .. } if *path == segment),
        "{error:?}"
    );

    let mem = MemStorage::new();
    let boxed: Box<dyn Storage> = Box::new(mem.clone());
    let (mut ob, _) = Outbox::open(boxed, small(FsyncPolicy::PerBatch)).expect("open");
    ob.append(1, b"one").expect("append");
    ob.append(2, b"two").expect("append");
    mem.inject(Fault::WriteAtomicFails);
    let error = ob.ack(1).expect_err("the pointer cannot be written");
    assert!(
        matches!(&error, OutboxError::Io { path, .. } if *path == Path::new("mem:").join(ACK_FILE)),
        "{error:?}"
    );
}

#[test]
fn removing_a_file_already_gone_is_no_error_but_any_other_failure_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut storage = FsStorage::new(dir.path()).expect("dir");
    storage.remove("gone.seg").expect("already gone is removed");
    std::fs::create_dir(dir.path().join("folder.seg")).expect("a folder by that name");
    assert!(
        storage.remove("folder.seg").is_err(),
        "a folder is no file to remove"
    );
}

fn flip(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).expect("read");
    data[offset] ^= 0x40;
    std::fs::write(path, data).expect("write");
}

#[test]
fn a_checksum_flipped_in_the_last_frame_is_cut_as_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=3);
    let seg = segs(dir.path()).pop().expect("segment");
    let len = std::fs::metadata(dir.path().join(&seg))
        .expect("meta")
        .len() as usize;
    flip(&dir.path().join(&seg), len - 5);
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep.torn_tail().is_some() && !rep.needs_snapshot, "{rep}");
    check_payloads(&ob, &[1, 2]);
}

#[test]
fn a_checksum_flipped_in_a_middle_frame_resets_and_asks_for_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=3); // one segment: 3 x 84 bytes
    let seg = segs(dir.path()).pop().expect("segment");
    flip(&dir.path().join(&seg), 84 + 30);
    let (mut ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep.needs_snapshot, "{rep}");
    assert!(rep.findings.iter().any(|f| matches!(
        f,
        Finding::CorruptFrame {
            expected_seq: 2,
            fault: FrameFault::BadChecksum,
            ..
        }
    )));
    check_payloads(&ob, &[]);
    assert!(ob.next_seq() > 3, "no seq that may be on disk is reused");
    let (lo, hi) = rep.dropped.expect("dropped range");
    assert!(lo == 1 && hi >= 3);
    let next = ob.next_seq();
    ob.append(next, &payload(next, 60))
        .expect("snapshot goes in");
    drop(ob);
    let (_, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("reopen");
    assert!(rep.is_clean() && !rep.needs_snapshot, "{rep}");
}

#[test]
fn a_corrupt_frame_in_an_older_segment_resets_even_when_later_segments_are_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=10);
    let names = segs(dir.path());
    assert!(names.len() >= 3);
    flip(&dir.path().join(&names[0]), 10);
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep.needs_snapshot, "{rep}");
    assert!(ob.next_seq() > 10);
    assert!(segs(dir.path()).is_empty());
}

#[test]
fn a_torn_ack_pointer_temp_file_is_removed_and_the_old_pointer_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=4);
    {
        let (mut ob, _) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
        ob.ack(2).expect("ack");
    }
    std::fs::write(dir.path().join("ack.tmp"), b"SKOB").expect("write");
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep
        .findings
        .iter()
        .any(|f| matches!(f, Finding::StaleTempFile { .. })));
    assert_eq!(ob.ack_seq(), 2);
    check_payloads(&ob, &[3, 4]);
    assert!(!dir.path().join("ack.tmp").exists());
}

#[test]
fn a_garbled_ack_pointer_loses_nothing_and_resends_from_the_oldest_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=10);
    {
        let (mut ob, _) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
        ob.ack(5).expect("ack");
    }
    let oldest = parse_segment_name(&segs(dir.path())[0]).expect("name");
    std::fs::write(dir.path().join("ack"), b"\x00garbage").expect("write");
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(!rep.needs_snapshot, "{rep}");
    assert!(rep
        .findings
        .iter()
        .any(|f| matches!(f, Finding::AckPointerDamaged { .. })));
    assert_eq!(ob.ack_seq(), oldest - 1);
    let expect: Vec<u64> = (oldest..=10).collect();
    check_payloads(&ob, &expect);
    drop(ob);
    let (_, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("reopen");
    assert!(rep.is_clean(), "the pointer was rewritten: {rep}");
}

#[test]
fn a_missing_middle_segment_is_reported_and_needs_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=12);
    let names = segs(dir.path());
    assert!(names.len() >= 3);
    std::fs::remove_file(dir.path().join(&names[1])).expect("rm");
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep.needs_snapshot, "{rep}");
    assert!(rep
        .findings
        .iter()
        .any(|f| matches!(f, Finding::MissingFrames { .. })));
    check_payloads(&ob, &[]);
    assert!(ob.next_seq() > 12);
}

#[test]
fn a_missing_oldest_unacknowledged_segment_needs_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 1..=12);
    let names = segs(dir.path());
    std::fs::remove_file(dir.path().join(&names[0])).expect("rm");
    let (ob, rep) = Outbox::open_dir(dir.path(), fs_cfg()).expect("open");
    assert!(rep.needs_snapshot, "{rep}");
    assert!(ob.next_seq() > 12);
}

// ---------------------------------------------------------------------------------------
// The recovery report: what the daemon logs at start-up.

#[test]
fn a_report_with_a_finding_is_not_clean_and_its_log_line_names_the_finding() {
    let report = RecoveryReport {
        findings: vec![
            Finding::MissingFrames {
                from_seq: 4,
                to_seq: 6,
            },
            Finding::UnknownFile {
                name: "notes.txt".to_owned(),
            },
        ],
        needs_snapshot: true,
        dropped: Some((4, 9)),
        ack_seq: 9,
        next_seq: 10,
        unacked: 0,
    };
    assert!(!report.is_clean());
    assert_eq!(
        report.to_string(),
        "outbox recovered: 0 unacknowledged, ack 9, next seq 10; NEEDS FULL SNAPSHOT \
         (dropped seqs 4..=9); unacknowledged seqs 4..=6 are missing; \
         ignored unknown file notes.txt"
    );
}

#[test]
fn a_report_finding_only_unknown_files_is_clean() {
    let report = RecoveryReport {
        findings: vec![Finding::UnknownFile {
            name: "notes.txt".to_owned(),
        }],
        needs_snapshot: false,
        dropped: None,
        ack_seq: 3,
        next_seq: 4,
        unacked: 0,
    };
    assert!(report.is_clean());
    assert_eq!(report.torn_tail(), None);
}

/// A segment of checksummed frames, `seqs` in that order, as a crashed or meddled-with disk
/// may hold them.
fn segment_of(seqs: &[u64]) -> Vec<u8> {
    seqs.iter()
        .flat_map(|&seq| encode_frame(seq, 1_000, &payload(seq, 10)))
        .collect()
}

#[test]
fn a_checksummed_frame_out_of_sequence_inside_a_segment_is_damage_at_its_offset() {
    let mem = MemStorage::new();
    mem.set_raw(&segment_name(1), segment_of(&[1, 5]));
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.needs_snapshot, "{rep}");
    assert_eq!(
        rep.findings,
        vec![
            Finding::AckPointerMissing { fallback: 0 },
            Finding::CorruptFrame {
                segment: segment_name(1),
                offset: (HEADER_LEN + 10) as u64,
                expected_seq: 2,
                fault: FrameFault::WrongSeq {
                    expected: 2,
                    found: 5
                },
            },
        ]
    );
    assert_eq!(pending_seqs(&ob), Vec::<u64>::new());
}

#[test]
fn a_segment_whose_first_frame_is_not_the_seq_its_name_says_is_damage() {
    let mem = MemStorage::new();
    mem.set_raw(&segment_name(1), segment_of(&[7, 8]));
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.needs_snapshot, "{rep}");
    assert!(rep.findings.contains(&Finding::CorruptFrame {
        segment: segment_name(1),
        offset: 0,
        expected_seq: 1,
        fault: FrameFault::WrongSeq {
            expected: 1,
            found: 7
        },
    }));
    assert_eq!(pending_seqs(&ob), Vec::<u64>::new());
}

// ---------------------------------------------------------------------------------------
// Recovery's repairs on hand-made segments: what is cut, removed or skipped, to the byte.

/// Bytes of one frame of [`segment_of`] (its payloads are 10 bytes).
const FRAME: usize = HEADER_LEN + 10;

/// `segment` with one payload byte of its `index`th frame flipped, so that frame's checksum
/// no longer matches while its length field still spans the same bytes.
fn with_bad_checksum(mut segment: Vec<u8>, index: usize) -> Vec<u8> {
    segment[index * FRAME + HEADER_LEN + 3] ^= 0x40;
    segment
}

/// A directory holding `segments` (named by their first seq) and an intact ack pointer.
fn disk_with(ack: u64, segments: &[(u64, Vec<u8>)]) -> MemStorage {
    let mem = MemStorage::new();
    mem.set_raw(ACK_FILE, encode_ack(ack));
    for (first, data) in segments {
        mem.set_raw(&segment_name(*first), data.clone());
    }
    mem
}

#[test]
fn a_bad_checksum_in_the_newest_frame_followed_by_zeros_is_a_torn_tail_cut_whole() {
    let mut data = with_bad_checksum(segment_of(&[1, 2]), 1);
    data.extend_from_slice(&[0; 30]);
    let mem = disk_with(0, &[(1, data)]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert_eq!(
        rep.findings,
        vec![Finding::TornTail {
            segment: segment_name(1),
            offset: FRAME as u64,
            cut_bytes: (FRAME + 30) as u64,
        }]
    );
    assert!(!rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1]);
    assert_eq!(ob.next_seq(), 2);
    assert_eq!(mem.raw(&segment_name(1)).map(|d| d.len()), Some(FRAME));
}

#[test]
fn damage_under_the_ack_pointer_in_the_newest_segment_resets_as_later_frames_may_be_unacknowledged()
{
    let mem = disk_with(2, &[(1, with_bad_checksum(segment_of(&[1, 2, 3]), 1))]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert_eq!(
        rep.findings,
        vec![Finding::CorruptFrame {
            segment: segment_name(1),
            offset: FRAME as u64,
            expected_seq: 2,
            fault: FrameFault::BadChecksum,
        }]
    );
    assert!(rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), Vec::<u64>::new());
    assert!(
        ob.next_seq() > 3,
        "seq 3 may be on disk and is never reused"
    );
}

#[test]
fn damage_in_a_fully_acknowledged_older_segment_removes_it_without_a_snapshot() {
    let mem = disk_with(
        3,
        &[
            (1, with_bad_checksum(segment_of(&[1, 2, 3]), 2)),
            (4, segment_of(&[4, 5])),
        ],
    );
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert_eq!(
        rep.findings,
        vec![Finding::DamagedAckedSegmentRemoved {
            segment: segment_name(1),
            offset: (2 * FRAME) as u64,
            fault: FrameFault::BadChecksum,
        }]
    );
    assert!(!rep.needs_snapshot && rep.dropped.is_none(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![4, 5]);
    assert_eq!((ob.ack_seq(), ob.next_seq()), (3, 6));
    assert!(!mem.names().contains(&segment_name(1)));
}

#[test]
fn a_reset_skips_as_many_seqs_as_the_segment_s_bytes_could_hold_frames_and_no_more() {
    // 3 frames of 34 bytes: 102 bytes, room for at most 5 frames of a bare header each.
    let mem = disk_with(0, &[(1, segment_of(&[1, 2, 9]))]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.needs_snapshot, "{rep}");
    assert_eq!(rep.dropped, Some((1, 5)));
    assert_eq!((ob.ack_seq(), ob.next_seq()), (5, 6));
}

#[test]
fn unacknowledged_seqs_on_no_segment_are_named_exactly() {
    let mem = disk_with(0, &[(1, segment_of(&[1, 2])), (5, segment_of(&[5, 6]))]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert_eq!(
        rep.findings,
        vec![Finding::MissingFrames {
            from_seq: 3,
            to_seq: 4
        }]
    );
    assert!(rep.needs_snapshot, "{rep}");
    assert_eq!(pending_seqs(&ob), Vec::<u64>::new());
}

#[test]
fn a_reset_with_nothing_unacknowledged_on_disk_reports_no_dropped_seqs() {
    // The ack pointer is past every seq the segment could hold: its removal was interrupted.
    let mem = disk_with(9, &[(1, with_bad_checksum(segment_of(&[1, 2, 3]), 1))]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.needs_snapshot, "{rep}");
    assert_eq!(rep.dropped, None);
    assert_eq!((ob.ack_seq(), ob.next_seq()), (9, 10));
    assert!(mem.names().iter().all(|n| !n.ends_with(".seg")));
}

#[test]
fn a_segment_acknowledged_to_its_last_frame_before_a_crash_is_removed_at_start_up() {
    // The ack pointer was written; the process died before it deleted the segment.
    let mem = disk_with(3, &[(1, segment_of(&[1, 2, 3])), (4, segment_of(&[4, 5]))]);
    let (ob, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean(), "{rep}");
    assert!(!mem.names().contains(&segment_name(1)));
    assert_eq!(ob.status().segments, 1);
    assert_eq!(pending_seqs(&ob), vec![4, 5]);
}

#[test]
fn the_report_counts_the_unacknowledged_batches_recovered() {
    let mem = disk_with(1, &[(1, segment_of(&[1, 2, 3]))]);
    let (_, rep) = open_mem(&mem, small(FsyncPolicy::PerBatch));
    assert!(rep.is_clean(), "{rep}");
    assert_eq!((rep.ack_seq, rep.next_seq, rep.unacked), (1, 4, 2));
}

#[test]
fn frames_a_dead_process_left_unsynced_are_made_durable_by_recovery_with_their_file_entry() {
    let mem = MemStorage::new();
    let cfg = small(FsyncPolicy::GroupCommit {
        max_delay_ms: 3_600_000,
    });
    let (mut ob, _) = open_mem(&mem, cfg.clone());
    ob.append(1, b"one").expect("append");
    // The process dies before its group commit; the machine keeps running.
    drop(ob);
    let (ob, rep) = open_mem(&mem, cfg.clone());
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1]);
    drop(ob);
    // A power cut now loses nothing recovery has handed out.
    mem.crash();
    let (ob, rep) = open_mem(&mem, cfg);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(pending_seqs(&ob), vec![1]);
}
