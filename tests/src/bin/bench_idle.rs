//! `skolebro-bench-idle`: what an unattended agent costs a Pi. It brings up the real agent in
//! each idle mode ([`skolebro_tests::appliance`]) at production's heartbeat and rescan
//! cadence, lets it settle for `--warmup`, leaves it alone for `--seconds`, and reports per mode the CPU share, wake-ups per
//! minute and bytes written to storage per day (`/proc/<pid>/io` `write_bytes`, extrapolated;
//! the agent's log goes to a file here and counts, so its share is shown beside it: on a Pi
//! the log goes to journald, which writes it instead).
//! Then the enrolled agent takes a first export of a `--students` school and the next
//! night's export of it, and the bytes each caused to be written are reported: the SD card's
//! wear per nightly delta.
//!
//! The agents are the workspace's debug builds (built first, as for the end-to-end tests);
//! run it with `--dir` on the storage to measure (a tmpfs counts no `write_bytes`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use skolebro_tests::appliance::{cost, Cadence, Cost, Fleet, Mode};
use skolebro_tests::rostergen::{Churn, Generated};

#[derive(Parser)]
#[command(about = "Measures what an idle agent costs: CPU, wake-ups, bytes written")]
struct Args {
    /// How long the agents are left idle.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// How long the agents settle before the measurement (the last writes of the export
    /// the central-down agent took in land in the first half minute).
    #[arg(long, default_value_t = 60)]
    warmup: u64,
    /// The school's size for the nightly delta.
    #[arg(long, default_value_t = 500)]
    students: usize,
    /// A folder on the storage to measure (a temp folder inside it is used and removed).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const DAY: f64 = 86_400.0;

fn elevliste(generated: &Generated) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    generated.write_elevliste(&mut bytes, false)?;
    Ok(bytes)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let parent = args.dir.unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("skolebro-bench-idle-")
        .tempdir_in(&parent)
        .with_context(|| format!("a temp folder in {}", parent.display()))?;
    let mut fleet = Fleet::start(dir.path(), Cadence::PRODUCTION);
    let costs = |fleet: &Fleet| -> anyhow::Result<Vec<Cost>> {
        fleet
            .agents
            .iter()
            .map(|(mode, agent)| {
                let pid = agent.pid().context("every agent was started")?;
                cost(pid).with_context(|| mode.name())
            })
            .collect()
    };

    let logs = |fleet: &Fleet| -> Vec<u64> {
        fleet
            .agents
            .iter()
            .map(|(_, agent)| {
                std::fs::metadata(agent.dir().join("agent.log")).map_or(0, |m| m.len())
            })
            .collect()
    };
    std::thread::sleep(Duration::from_secs(args.warmup));
    let before = costs(&fleet)?;
    let logs_before = logs(&fleet);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let after = costs(&fleet)?;
    let logs_after = logs(&fleet);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "idle for {wall:.0} s, heartbeat every {} s, rescan every {} s:",
        Cadence::PRODUCTION.heartbeat_seconds,
        Cadence::PRODUCTION.rescan_seconds
    );
    println!(
        "{:<20} {:>8} {:>14} {:>16} {:>18}",
        "mode", "cpu", "wake-ups/min", "written/day", "of which log/day"
    );
    let rows = fleet
        .agents
        .iter()
        .zip(before.iter().zip(&after))
        .zip(logs_before.iter().zip(&logs_after));
    for (((mode, _), (before, after)), (log_before, log_after)) in rows {
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let wakeups = after.wakeups.saturating_sub(before.wakeups) as f64;
        let written = after.write_bytes.saturating_sub(before.write_bytes) as f64;
        let logged = log_after.saturating_sub(*log_before) as f64;
        println!(
            "{:<20} {:>7.3}% {:>14.0} {:>12.1} KiB {:>14.1} KiB",
            mode.name(),
            cpu / wall * 100.0,
            wakeups / wall * 60.0,
            written / wall * DAY / 1024.0,
            logged / wall * DAY / 1024.0
        );
    }

    let agent = fleet.agent(Mode::EnrolledByStick);
    let pid = agent.pid().context("the enrolled agent runs")?;
    let first = Generated::new(args.students, 1);
    let next = first.evolve(Churn::default(), 2);
    for (what, name, generated) in [
        ("first export", "elevliste.csv", &first),
        ("nightly delta", "elevliste-2.csv", &next),
    ] {
        let bytes = elevliste(generated)?;
        let before = cost(pid)?;
        agent.drop_export(name, &bytes);
        agent.wait_until_delivered(&format!("the {what} to reach central"));
        let after = cost(pid)?;
        println!(
            "{what} of {} students ({:.0} KiB export): {:.1} KiB written",
            args.students,
            bytes.len() as f64 / 1024.0,
            after.write_bytes.saturating_sub(before.write_bytes) as f64 / 1024.0
        );
    }
    Ok(())
}
