//! `skolebro-bench`: the roster pipeline's benchmark. It generates synthetic elevliste exports,
//! runs the real `skolebro-agent` binary on them as a child process, and reports wall time and
//! peak RSS (from `wait4`'s rusage), next to the raw `csv`-crate parse of the same file as the
//! floor. Build the agent in release mode first; the bench looks for it and the generator
//! beside itself.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Benchmarks check and diff on synthetic exports")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    students: usize,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The agent binary; defaults to `skolebro-agent` beside this binary.
    #[arg(long)]
    agent: Option<PathBuf>,
}

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let agent = match args.agent {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("skolebro-agent"),
    };
    if !agent.exists() {
        bail!(
            "{} not found: run `cargo build --release -p skolebro-agent` first",
            agent.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let old = dir.path().join("elevliste.csv");
    let new = dir.path().join("elevliste.2.csv");
    generate(
        &agent.with_file_name("skolebro-rostergen"),
        args.students,
        &old,
    )?;
    let size = std::fs::metadata(&old)?.len();
    println!(
        "input: {} students, {:.1} MiB elevliste; {} runs each, median wall, max peak RSS",
        args.students,
        size as f64 / (1 << 20) as f64,
        args.runs
    );

    let floor = median(
        (0..args.runs)
            .map(|_| csv_floor(&old))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    println!(
        "csv crate raw parse (floor)   {:>8.3} s",
        floor.as_secs_f64()
    );

    let check = measure(args.runs, || {
        run_child(&agent, &["check", "--json", path_str(&old)?])
    })?;
    report("skolebro-agent check", &check);
    let diff = measure(args.runs, || {
        run_child(
            &agent,
            &["diff", "--json", path_str(&old)?, path_str(&new)?],
        )
    })?;
    report("skolebro-agent diff", &diff);
    Ok(())
}

/// Writes the two exports with the generator binary, so this process never holds a roster:
/// Linux counts a parent's peak RSS into a child it spawns, which would inflate the figures.
fn generate(rostergen: &Path, students: usize, out: &Path) -> anyhow::Result<()> {
    let status = Command::new(rostergen)
        .args([
            "--students",
            &students.to_string(),
            "--evolve",
            "1",
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", rostergen.display()))?;
    if !status.success() {
        bail!("{} failed: {status}", rostergen.display());
    }
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("temporary path is not UTF-8")
}

/// Reads every record with the csv crate and nothing else: the least any reader must do.
fn csv_floor(path: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(BufReader::new(File::open(path)?));
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    std::hint::black_box(rows);
    Ok(start.elapsed())
}

fn measure(runs: usize, mut run: impl FnMut() -> anyhow::Result<Sample>) -> anyhow::Result<Sample> {
    let mut samples = (0..runs)
        .map(|_| run())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_rss_kib = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    samples.sort_by_key(|s| s.wall);
    let wall = samples
        .get(samples.len() / 2)
        .map_or(Duration::ZERO, |s| s.wall);
    Ok(Sample { wall, max_rss_kib })
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn report(what: &str, sample: &Sample) {
    println!(
        "{what:<29} {:>8.3} s   peak RSS {:>6.1} MiB",
        sample.wall.as_secs_f64(),
        sample.max_rss_kib as f64 / 1024.0
    );
}

/// Runs the agent and reaps it with `wait4`, which reports the child's own peak RSS.
// wait4 is the one call that gives a child's peak RSS and CPU time together.
#[allow(unsafe_code)]
fn run_child(agent: &Path, args: &[&str]) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let child = Command::new(agent)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", agent.display()))?;
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: rusage is plain old data, and wait4 writes it for the child we just spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage point at live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if code != 0 {
        bail!("{} {args:?} exited with {code}", agent.display());
    }
    Ok(Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    })
}
