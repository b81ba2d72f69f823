//! Any bytes as an outbox segment found after a crash: written as a segment file in a fresh
//! folder (with or without an `ack` file) and the outbox opened as the agent opens it, which
//! runs recovery. The first byte chooses the segment's first seq, whether the rest is the
//! file's bytes as they are or a list of frames encoded with good checksums (so recovery's
//! checks of lengths and seqs behind the checksum are reached), and how many bytes of the
//! end are cut off as by a power cut. The second byte is the ack pointer, if any.
//!
//! Asserted, as the outbox tests assert after damage: opening never fails on bad bytes;
//! what it recovers reads back in order, one seq after another from the ack pointer, all of
//! it checksum-verified; an append then works; and a second opening finds nothing to repair
//! and the same batches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_agent::outbox::recovery::{encode_ack, ACK_FILE};
use skolebro_agent::outbox::segment::{encode_frame, segment_name};
use skolebro_agent::outbox::{Outbox, OutboxConfig, StoredBatch};
use skolebro_fuzz::{scratch, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Frames from `[seq step, payload length, payload...]` records: each seq is the last plus
/// the step read as a signed byte, so gaps, repeats and going backwards all occur.
fn frames(first_seq: u64, mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut first = true;
    while let [step, len, rest @ ..] = data {
        if !first {
            seq = seq.wrapping_add_signed(i64::from(*step as i8));
        }
        first = false;
        let len = usize::from(*len).min(rest.len());
        out.extend_from_slice(&encode_frame(seq, 1_900_000_000_000, &rest[..len]));
        data = &rest[len..];
    }
    out
}

fn read_all(outbox: &Outbox) -> Vec<StoredBatch> {
    outbox
        .pending(0)
        .collect::<Result<Vec<_>, _>>()
        .expect("recovered batches read back")
}

fuzz_target!(|data: &[u8]| {
    let [control, ack, rest @ ..] = data else {
        return;
    };
    let first_seq = u64::from(control & 0b111);
    let mut segment = if control & 0b1000 != 0 {
        frames(first_seq.max(1), rest)
    } else {
        rest.to_vec()
    };
    let cut = usize::from(control >> 4).min(segment.len());
    segment.truncate(segment.len() - cut);

    let dir = scratch();
    std::fs::write(dir.join(segment_name(first_seq)), &segment).expect("the segment is written");
    if ack & 0x80 != 0 {
        std::fs::write(dir.join(ACK_FILE), encode_ack(u64::from(ack & 0x0f))).expect("ack");
    } else if ack & 0x40 != 0 {
        std::fs::write(dir.join(ACK_FILE), &rest[..rest.len().min(20)]).expect("ack");
    }
    let config = OutboxConfig {
        segment_bytes: 4096,
        ..OutboxConfig::default()
    };

    let (mut outbox, report) =
        Outbox::open_dir(&dir, config.clone()).expect("recovery opens any segment");
    let _ = report.to_string();
    assert_eq!(outbox.ack_seq(), report.ack_seq);
    assert_eq!(outbox.next_seq(), report.next_seq);
    assert!(report.next_seq > report.ack_seq, "{report}");
    let batches = read_all(&outbox);
    assert_eq!(batches.len() as u64, report.unacked, "{report}");
    for (i, batch) in batches.iter().enumerate() {
        assert_eq!(batch.seq, report.ack_seq + 1 + i as u64, "{report}");
    }
    if let Some(last) = batches.last() {
        assert_eq!(last.seq + 1, report.next_seq, "{report}");
    }
    let _ = outbox.status();
    outbox.inspect().expect("a recovered outbox inspects");

    let next = outbox.next_seq();
    outbox
        .append(next, b"after recovery")
        .expect("a recovered outbox appends");
    assert_eq!(
        outbox.peek(next).expect("peek").map(|b| b.payload),
        Some(b"after recovery".to_vec())
    );
    drop(outbox);

    let (outbox, again) = Outbox::open_dir(&dir, config).expect("the outbox opens again");
    assert!(
        again.is_clean(),
        "recovery left something to repair: {report} then {again}"
    );
    assert!(!again.needs_snapshot, "{again}");
    let reread = read_all(&outbox);
    assert_eq!(reread.len(), batches.len() + 1);
    for (before, after) in batches.iter().zip(&reread) {
        assert_eq!(before.seq, after.seq);
        assert_eq!(before.payload, after.payload);
    }
});
