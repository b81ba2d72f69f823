//! Crash test with real processes for the enqueue stage: a child enqueues a stream of
//! changing exports (seal, append, fsync, checkpoint) and reports each seq once it is
//! enqueued; the parent SIGKILLs it at random moments, at least 100 times, reopens the stage,
//! and checks that the checkpoint and the outbox agree: every reported batch is there, the
//! checkpoint's chain continues exactly after the last durable batch, and replaying every
//! batch in the outbox (opened with central's key) gives exactly the checkpoint's state. So no
//! delta is lost, and none is sent twice with different contents.
//!
//! Replaying is incremental (batches are only ever appended), so the test stays fast.
//!
//! The child is this test binary, re-executed with `SKOLEBRO_ENQUEUE_CHILD=<dir>`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skolebro_agent::enqueue::{Enqueuer, Identity, OfferOutcome};
use skolebro_agent::outbox::OutboxConfig;
use skolebro_protocol::envelope::{
    open, ChainHead, DeviceId, DeviceSigningKey, Payload, SealingPrivateKey, SiteId,
};
use skolebro_protocol::SiteSecret;
use skolebro_roster::reader::elevliste;
use skolebro_roster::safety::SafetyPolicy;
use skolebro_roster::state::State;
use skolebro_roster::validate::{RosterBuilder, Validated};

const CHILD_ENV: &str = "SKOLEBRO_ENQUEUE_CHILD";
const CHILD_TEST: &str = "enqueue_crash_child_enqueues_until_killed";
const KILLS: usize = 100;

fn central() -> SealingPrivateKey {
    SealingPrivateKey::from_bytes([11; 32])
}

fn identity() -> Identity {
    Identity {
        device: DeviceId::new("pi-crash").unwrap(),
        site: SiteId::new("46505").unwrap(),
        signing_key: DeviceSigningKey::from_bytes([12; 32]),
        central_key: central().public_key(),
        site_secret: SiteSecret::from_bytes([13; 32]),
    }
}

/// Export number `n`: a roster that changes a little from one number to the next.
fn export(n: u64) -> Validated {
    let mut text = String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
    for student in (n % 5)..(40 + n % 7) {
        let class = if (student + n) % 9 == 0 { "2B" } else { "2A" };
        text.push_str(&format!(
            "46505;{class};elev{student};;Nordmann{};Kari\n",
            n % 3
        ));
    }
    let mut builder = RosterBuilder::new(Default::default());
    elevliste::read_from(
        Path::new("crash.csv"),
        text.as_bytes(),
        &Default::default(),
        false,
        &mut builder,
    )
    .expect("the generated export reads");
    builder.finish()
}

fn open_stage(dir: &Path) -> Enqueuer {
    let policy = SafetyPolicy {
        min_roster: 1000,
        ..SafetyPolicy::default()
    };
    Enqueuer::open(dir, identity(), policy, OutboxConfig::default())
        .expect("the stage opens")
        .0
}

#[test]
fn enqueue_crash_child_enqueues_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut stage = open_stage(Path::new(&dir));
    let out = std::io::stdout();
    writeln!(out.lock(), "READY").expect("stdout");
    let until = Instant::now() + Duration::from_secs(5);
    let mut n = stage.checkpoint().head.next_seq.0;
    while Instant::now() < until {
        if let OfferOutcome::Enqueued { seq, .. } = stage.offer(export(n)).expect("enqueue") {
            let mut o = out.lock();
            writeln!(o, "SEQ {seq}").expect("stdout");
            o.flush().expect("stdout");
        }
        n += 1;
    }
}

#[test]
fn checkpoint_and_outbox_agree_after_sigkill_at_random_moments() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("state");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("enqueue crash seed {rng}");
    let mut reported = Vec::new();
    // Batches only ever get appended, so each round replays only what is new.
    let mut head = ChainHead::genesis();
    let mut state = State::default();
    let mut seqs = Vec::new();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.split("SEQ ")
                        .nth(1)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .collect::<Vec<_>>()
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(5 + rng % 60));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        reported.extend(reader.join().expect("reader"));

        // Reopen as the next start would, and check that both sides agree.
        let stage = open_stage(&dir);
        let checkpoint = stage.checkpoint().clone();
        for batch in stage.outbox().pending(head.next_seq.0) {
            let batch = batch.expect("an intact batch");
            let opened = open(
                &batch.payload,
                1 << 24,
                &identity().device,
                &identity().signing_key.verifying_key(),
                &head,
                &central(),
            )
            .unwrap_or_else(|e| panic!("round {round}: batch {} opens: {e}", batch.seq));
            match &opened.payload {
                Payload::Delta(delta) => state.apply(delta),
                Payload::Snapshot(roster) => state = State::of(roster, &identity().site_secret),
            }
            head = opened.next_head();
            seqs.push(batch.seq);
        }
        assert_eq!(
            checkpoint.head, head,
            "round {round}: the chain continues after the last batch"
        );
        assert_eq!(
            checkpoint.state, state,
            "round {round}: the checkpoint is the outbox replayed"
        );
        for seq in &reported {
            assert!(
                seqs.contains(seq),
                "round {round}: reported batch {seq} is in the outbox"
            );
        }
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}: in order"
        );
    }
    // Under load a child may be killed before it enqueues anything; across all rounds some
    // must have got through, or the test proved nothing.
    assert!(!reported.is_empty(), "the children enqueued nothing");
}
