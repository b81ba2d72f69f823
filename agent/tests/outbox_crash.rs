//! Crash test with real processes: a child appends to an outbox on real files (fsync per
//! batch) and reports each seq once `append` returned; the parent SIGKILLs it at random
//! moments, reopens the outbox and checks that every reported seq is there, intact and in
//! order, and that the next child continues from the next seq.
//!
//! Each round kills at a random moment of one of three kinds: right after spawn, after the
//! child said START (outbox open), or after it reported its first appended seq. Every round
//! checks that the child died of the SIGKILL (not of a panic), shows the child's stderr when
//! it fails, and the rounds killed after progress check that the outbox grew.
//!
//! The child is this same test binary, re-executed with `SKOLEBRO_OUTBOX_CHILD=<dir>` and a
//! filter that runs only `outbox_crash_child_appends_until_killed`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skolebro_agent::outbox::{FsyncPolicy, Outbox, OutboxConfig};

const CHILD_ENV: &str = "SKOLEBRO_OUTBOX_CHILD";
const CHILD_TEST: &str = "outbox_crash_child_appends_until_killed";
const KILLS: usize = 200;

fn config() -> OutboxConfig {
    OutboxConfig {
        segment_bytes: 16 * 1024,
        fsync: FsyncPolicy::PerBatch,
        ..OutboxConfig::default()
    }
}

/// The payload of `seq`: its length and every byte follow from the seq, so the parent can
/// verify a frame without having seen it written.
fn payload(seq: u64) -> Vec<u8> {
    let len = 40 + (seq.wrapping_mul(7919) % 700) as usize;
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a round's kill comes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAfter {
    /// A random moment after spawn, often while the outbox opens and recovers.
    Spawn,
    /// A random moment after the child said START (its outbox open), often inside the
    /// first append.
    Start,
    /// A random moment after the child reported its first appended seq: this round must
    /// leave more batches in the outbox than it found.
    Progress,
}

/// The child, SIGKILLed and reaped when dropped: a failed assertion must not leave it
/// appending behind the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Child mode: does nothing unless the parent set `SKOLEBRO_OUTBOX_CHILD`.
#[test]
fn outbox_crash_child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (mut ob, _report) = Outbox::open_dir(Path::new(&dir), config()).expect("child open");
    let mut seq = ob.next_seq();
    let out = std::io::stdout();
    {
        let mut o = out.lock();
        writeln!(o, "START {seq}").expect("stdout");
        o.flush().expect("stdout");
    }
    // A safety net if the parent dies: never run longer than a few seconds.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        ob.append(seq, &payload(seq)).expect("child append");
        let mut o = out.lock();
        writeln!(o, "SEQ {seq}").expect("stdout");
        o.flush().expect("stdout");
        seq += 1;
    }
}

#[test]
fn outbox_survives_sigkill_at_random_moments_without_losing_a_reported_batch() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let started = Instant::now();
    let seed = std::env::var("SKOLEBRO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash test seed {seed} (set SKOLEBRO_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let tmp = tempfile::Builder::new()
        .prefix("skolebro-outbox-crash")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    let dir = tmp.path().join("outbox");
    let exe = std::env::current_exe().expect("current exe");

    let mut expected_next = 1u64;
    let mut acked = 0u64;
    let mut reported_max = 0u64;
    let mut total_reported = 0usize;
    let mut torn_tails = 0usize;
    let mut killed_before_start = 0usize;

    let mut kinds = [0usize; 3];
    for round in 0..KILLS {
        let kill_after = match rng.next() % 4 {
            0 => KillAfter::Spawn,
            1 => KillAfter::Start,
            _ => KillAfter::Progress,
        };
        kinds[kill_after as usize] += 1;
        let found_before = expected_next - 1;
        let mut child = Killed(
            Command::new(&exe)
                .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child"),
        );
        let stdout = child.0.stdout.take().expect("child stdout");
        let stderr = child.0.stderr.take().expect("child stderr");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            // The child's stderr only explains a failure; a read error leaves it shorter.
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let delay = Duration::from_millis(rng.next() % 31);
        let mut lines = Vec::new();
        // libtest may print "test NAME ... " on the START line first.
        let waited = match kill_after {
            KillAfter::Spawn => true,
            KillAfter::Start => wait_for_line(&rx, &mut lines, |l| l.contains("START ")),
            KillAfter::Progress => wait_for_line(&rx, &mut lines, |l| l.starts_with("SEQ ")),
        };
        if waited {
            std::thread::sleep(delay);
        }
        child.0.kill().expect("SIGKILL child");
        let status = child.0.wait().expect("wait child");
        reader.join().expect("reader thread");
        let errors = errors.join().expect("stderr thread");
        assert!(
            waited,
            "round {round}: the child never got {kill_after:?} ({status}); its stderr:\n{errors}"
        );
        // A child that panicked (exit 101) or returned has not been killed at all.
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child must die by the kill, not {status}; its stderr:\n{errors}"
        );
        lines.extend(rx.try_iter());

        let mut reported = Vec::new();
        let mut start = None;
        for l in &lines {
            if let Some(at) = l.find("START ") {
                start = Some(l[at + 6..].trim().parse::<u64>().expect("START n"));
            } else if let Some(n) = l.strip_prefix("SEQ ") {
                reported.push(n.parse::<u64>().expect("SEQ n"));
            }
        }
        match start {
            Some(s) => assert_eq!(
                s, expected_next,
                "round {round}: the child must continue from the next seq"
            ),
            None => {
                killed_before_start += 1;
                assert!(reported.is_empty());
            }
        }
        for (i, s) in reported.iter().enumerate() {
            assert_eq!(
                *s,
                expected_next + i as u64,
                "round {round}: reports in order"
            );
        }
        total_reported += reported.len();
        if let Some(last) = reported.last() {
            reported_max = reported_max.max(*last);
        }

        let (mut ob, report) = Outbox::open_dir(&dir, config()).expect("parent reopen");
        assert!(!report.needs_snapshot, "round {round}: {report}");
        if report.torn_tail().is_some() {
            torn_tails += 1;
        }
        let mut seqs = Vec::new();
        for b in ob.pending(0) {
            let b = b.expect("read back");
            assert_eq!(
                b.payload,
                payload(b.seq),
                "round {round}: seq {} intact",
                b.seq
            );
            seqs.push(b.seq);
        }
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "round {round}: frames in order, no hole");
        }
        if let Some(first) = seqs.first() {
            assert_eq!(
                *first,
                acked + 1,
                "round {round}: nothing unacked lost at the front"
            );
        }
        let last_present = seqs.last().copied().unwrap_or(acked);
        assert!(
            last_present >= reported_max,
            "round {round}: reported seq {reported_max} missing (outbox ends at {last_present})"
        );
        expected_next = ob.next_seq();
        assert_eq!(expected_next, last_present + 1);
        if kill_after == KillAfter::Progress {
            assert!(
                last_present > found_before,
                "round {round}: the child reported {reported:?} but the outbox still ends at \
                 seq {found_before}"
            );
        }
        // Ack some of it now and then, so segments are deleted between crashes too.
        if rng.next() % 3 == 0 && last_present > acked + 10 {
            let upto = acked + (rng.next() % (last_present - acked));
            if upto > acked {
                ob.ack(upto).expect("ack");
                acked = upto;
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "crash test: {KILLS} kills ({} after spawn, {} after START, {} after progress; \
         {killed_before_start} before the child started appending), {total_reported} reported \
         seqs verified, {torn_tails} torn tails cut, {:.1} s",
        kinds[0],
        kinds[1],
        kinds[2],
        elapsed.as_secs_f64()
    );
    assert!(
        kinds[KillAfter::Progress as usize] > 0,
        "no round waited for progress"
    );
    assert!(
        total_reported > KILLS,
        "the children must actually have appended"
    );
}

/// Waits (bounded) for a stdout line for which `wanted` holds, keeping every line seen.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    wanted: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
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
