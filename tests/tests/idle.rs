//! Idle means idle (issue 18): a Pi in a school cupboard spends nearly all its life with
//! nothing to do, and must then cost next to nothing. The real agent binary runs in each mode
//! it idles in — identity by config, enrolled by stick, waiting for a stick, central down,
//! holding a delta — all at once (see [`skolebro_tests::appliance`]), and over 20 s of wall
//! time each may use at most 1% of it as CPU time (`utime + stime` from `/proc/<pid>/stat`),
//! heartbeating and rescanning six times as often as in production.
//!
//! This is a bound on work done, not on speed: an agent that rescans its drop folder in a
//! loop (each scan's open of the folder raised an inotify event, which asked for the next
//! scan) used 95–100% of a core, a hundred times the bound.

use std::time::{Duration, Instant};

use skolebro_tests::appliance::{cost, Cadence, Cost, Fleet};
use skolebro_tests::harness::one_at_a_time;

/// How long the agents are left alone.
const IDLE: Duration = Duration::from_secs(20);
/// The share of the wall time an idle agent may spend on a CPU.
const MAX_CPU_SHARE: f64 = 0.01;

#[test]
fn an_idle_agent_uses_under_one_percent_of_a_core_in_every_mode() {
    let _one = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-idle-")
        .tempdir()
        .expect("temp dir");
    let mut fleet = Fleet::start(dir.path(), Cadence::BUSY);

    let costs = |fleet: &Fleet| -> Vec<Cost> {
        fleet
            .agents
            .iter()
            .map(|(mode, agent)| {
                let pid = agent.pid().expect("every agent was started");
                cost(pid).unwrap_or_else(|e| panic!("{}: {e}", mode.name()))
            })
            .collect()
    };
    let before = costs(&fleet);
    let started = Instant::now();
    while started.elapsed() < IDLE {
        std::thread::sleep(Duration::from_millis(500));
        for (mode, agent) in &mut fleet.agents {
            assert!(agent.is_running(), "{} exited on its own", mode.name());
        }
    }
    let after = costs(&fleet);
    let wall = started.elapsed();

    let mut too_busy = Vec::new();
    for (((mode, _), before), after) in fleet.agents.iter().zip(&before).zip(&after) {
        let cpu = after.cpu.saturating_sub(before.cpu);
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        let wakeups = after.wakeups.saturating_sub(before.wakeups);
        println!(
            "{:<20} cpu {:>6.0} ms ({:.2}%), {wakeups} wake-ups in {:.1} s",
            mode.name(),
            cpu.as_secs_f64() * 1000.0,
            share * 100.0,
            wall.as_secs_f64()
        );
        if share >= MAX_CPU_SHARE {
            too_busy.push(format!("{} at {:.1}%", mode.name(), share * 100.0));
        }
    }
    assert!(
        too_busy.is_empty(),
        "idle agents used over {}% of the wall time: {}",
        MAX_CPU_SHARE * 100.0,
        too_busy.join(", ")
    );
}
