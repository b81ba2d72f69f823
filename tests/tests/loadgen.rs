//! Central scaled out (issue 15): two `skolebro-central serve` processes on one PostgreSQL
//! schema behind HAProxy, which passes TLS through so each central still sees the device's
//! certificate. `skolebro-loadgen` starts all three, enrolls 20 simulated devices and runs a
//! short night through the proxy: every device's first export, real sealed and chained
//! envelopes over mutual TLS, and heartbeats. Afterwards central must hold exactly what
//! every device sent. This is the scenario, not a benchmark: it bounds the run's length and
//! asserts no speed (docs/BENCHMARKS.md has the figures).
//!
//! HAProxy comes from the Debian archive (`apt-get install -y haproxy`, as `.ci/run` does).
//! Without it the test is skipped, except under CI (`CI=true`), where it fails.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use skolebro_tests::harness::{binaries, one_at_a_time, Process, POLL};

const LOADGEN: &str = env!("CARGO_BIN_EXE_skolebro-loadgen");
/// The night's length; the loadgen waits at most 70 s more for answers in flight and then
/// checks what central holds.
const NIGHT_SECONDS: u64 = 40;
/// How long the whole run may take before the test kills it.
const DEADLINE: Duration = Duration::from_secs(240);

/// Whether a missing HAProxy fails the test rather than skipping it.
fn haproxy_required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1")
}

fn haproxy_installed() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn twenty_devices_through_haproxy_to_two_centrals_on_one_postgres_leave_central_holding_exactly_what_they_sent(
) {
    if !haproxy_installed() {
        assert!(
            !haproxy_required(),
            "haproxy is not installed (apt-get install -y haproxy); CI needs it for this test"
        );
        eprintln!("skipped: haproxy is not installed (apt-get install -y haproxy)");
        return;
    }
    let _one = one_at_a_time();
    let central = &binaries().central;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let log = dir.path().join("loadgen.log");
    let mut command = Command::new(LOADGEN);
    command
        .args(["--devices", "20", "--store", "postgres", "--instances", "2"])
        .args(["--nights", "0", "--window-seconds", "10"])
        .args(["--heartbeat-seconds", "5"])
        .args(["--duration-seconds", &NIGHT_SECONDS.to_string()])
        .arg("--central-binary")
        .arg(central)
        .arg("--json");
    if let Ok(postgres) = std::env::var("SKOLEBRO_TEST_POSTGRES") {
        command.args(["--postgres", &postgres]);
    }
    let mut loadgen = Process::spawn(&mut command, &log);
    let started = Instant::now();
    while loadgen.is_running() {
        assert!(
            started.elapsed() < DEADLINE,
            "the loadgen did not finish in {DEADLINE:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(POLL);
    }
    let output = std::fs::read_to_string(&log).expect("the loadgen's output");
    let figures: Value = output
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("the loadgen ends with a JSON line:\n{output}"));
    assert_eq!(figures["devices"], 20, "{output}");
    assert_eq!(
        figures["batches_applied"], 20,
        "every first export applied once: {output}"
    );
    assert_eq!(figures["errors"], serde_json::json!({}), "{output}");
    assert!(
        figures["heartbeat_ms"]["max"].as_f64() > Some(0.0),
        "heartbeats were answered: {output}"
    );
    assert!(
        figures["central_cpu_s"].as_f64() > Some(0.0),
        "central's CPU time was read from /proc: {output}"
    );
    assert_eq!(figures["exact"], true, "{output}");
}
