//! Crash test with real processes for the enqueue stage: a child enqueues a stream of
//! changing exports (seal, append, fsync, checkpoint) and reports each seq once it is
//! enqueued; the parent SIGKILLs it at random moments, at least 100 times, reopens the stage,
//! and checks that the checkpoint and the outbox agree: every reported batch is there, the
//! checkpoint's chain continues exactly after the last durable batch, and replaying every
//! batch in the outbox (opened with central's key) gives exactly the checkpoint's state. So no
//! delta is lost, and none is sent twice with different contents.
//!
//! Each round kills at a random moment of one of three kinds: right after spawn, after the
//! child said READY (stage open), or after it reported its first enqueued seq. Every round
//! checks that the child died of the SIGKILL (not of a panic), shows the child's stderr when
//! it fails, and the rounds killed after progress check that the outbox grew.
//!
//! Replaying is incremental (batches are only ever appended), so the test stays fast.
//!
//! The child is this test binary, re-executed with `SKOLEBRO_ENQUEUE_CHILD=<dir>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
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

/// What a round's kill comes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAfter {
    /// A random moment after spawn, often while the stage opens and recovers.
    Spawn,
    /// A random moment after the child said READY (its stage open), often inside the first
    /// offer.
    Ready,
    /// A random moment after the child reported its first enqueued seq: this round must
    /// leave more batches in the outbox than it found.
    Progress,
}

/// What the parent saw of one child: its stdout lines as they come, its stderr at the end.
struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Child {
    fn spawn(exe: &Path, dir: &Path) -> Child {
        let mut process = Command::new(exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let out = process.stdout.take().expect("child stdout");
        let err = process.stderr.take().expect("child stderr");
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            // stderr only explains a failure; a read error leaves it shorter.
            let _ = BufReader::new(err).read_to_string(&mut text);
            text
        });
        Child {
            process,
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Waits (bounded) for a stdout line for which `wanted` holds, keeping every line seen.
    fn wait_for_line(&mut self, seen: &mut Vec<String>, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = wanted(&line);
                    seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// SIGKILLs the child and returns its exit status, every stdout line left and its stderr.
    fn kill(&mut self, seen: &mut Vec<String>) -> (ExitStatus, String) {
        self.process.kill().expect("SIGKILL");
        let status = self.process.wait().expect("wait");
        if let Some(stdout) = self.stdout.take() {
            stdout.join().expect("stdout reader");
        }
        seen.extend(self.lines.try_iter());
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A failed assertion must not leave the child enqueueing behind the test.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The seq a stdout line reports, if it reports one (libtest may print its "test NAME ..."
/// before it on the same line).
fn reported_seq(line: &str) -> Option<u64> {
    line.split("SEQ ")
        .nth(1)
        .and_then(|n| n.trim().parse::<u64>().ok())
}

#[test]
fn checkpoint_and_outbox_agree_after_sigkill_at_random_moments() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("state");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = std::env::var("SKOLEBRO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("enqueue crash seed {rng} (set SKOLEBRO_CRASH_SEED to replay)");
    let mut next_random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut reported = Vec::new();
    // Batches only ever get appended, so each round replays only what is new.
    let mut head = ChainHead::genesis();
    let mut state = State::default();
    let mut seqs = Vec::new();
    let mut kinds = [0usize; 3];
    for round in 0..KILLS {
        let kill_after = match next_random() % 3 {
            0 => KillAfter::Spawn,
            1 => KillAfter::Ready,
            _ => KillAfter::Progress,
        };
        kinds[kill_after as usize] += 1;
        let before = seqs.len();
        let mut child = Child::spawn(&exe, &dir);
        let mut lines = Vec::new();
        let delay = Duration::from_millis(next_random() % 40);
        let waited = match kill_after {
            KillAfter::Spawn => true,
            KillAfter::Ready => child.wait_for_line(&mut lines, |l| l.contains("READY")),
            KillAfter::Progress => child.wait_for_line(&mut lines, |l| reported_seq(l).is_some()),
        };
        if waited {
            std::thread::sleep(delay);
        }
        let (status, stderr) = child.kill(&mut lines);
        assert!(
            waited,
            "round {round}: the child never got {kill_after:?} ({status}); its stderr:\n{stderr}"
        );
        // A child that panicked (exit 101) or returned was not killed: the round proves
        // nothing about a crash, and the panic is a bug of its own.
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child must die by the kill, not {status}; its stderr:\n{stderr}"
        );
        let this_round: Vec<u64> = lines.iter().filter_map(|l| reported_seq(l)).collect();
        reported.extend_from_slice(&this_round);

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
        for seq in &this_round {
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
        if kill_after == KillAfter::Progress {
            assert!(
                seqs.len() > before,
                "round {round}: the child reported {this_round:?} but the outbox still ends at \
                 seq {before}"
            );
        }
    }
    eprintln!(
        "enqueue crash: {KILLS} kills ({} after spawn, {} after READY, {} after progress), \
         {} batches reported, {} in the outbox",
        kinds[0],
        kinds[1],
        kinds[2],
        reported.len(),
        seqs.len()
    );
    assert!(
        kinds[KillAfter::Progress as usize] > 0,
        "no round waited for progress"
    );
}
