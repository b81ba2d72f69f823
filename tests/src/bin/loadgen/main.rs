//! `skolebro-loadgen`: a night of a whole fleet against central. It enrolls N simulated
//! devices (certificates from the device CA, Ed25519 signing keys, each with a synthetic
//! school of its own), then every device delivers its first export (a full delta) and, for
//! each further night, a 2% delta, each at a random moment of its window, and heartbeats at
//! the configured interval, all over mutual TLS with a bound on requests in flight and on
//! the run's length. It reports throughput, latency percentiles, errors by kind and
//! central's CPU and peak memory (from `/proc` of the centrals it started), and checks that
//! central holds exactly what each device's last acked export said.
//!
//! Without `--central` it starts its own: K `skolebro-central serve` processes on one store
//! (SQLite, or a fresh PostgreSQL schema dropped afterwards) and, for K > 1, HAProxy in
//! front as a TCP proxy. Build in release first; the central binary is looked for beside
//! this one. Numbers and the machine they were taken on: docs/BENCHMARKS.md.

mod device;
mod platform;
mod tally;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;
use skolebro_tests::harness::central_holds;
use skolebro_tests::rostergen::Rng;
use tokio::sync::Semaphore;

use crate::device::{Device, Night};
use crate::platform::{Central, StoreKind, Usage};
use crate::tally::Tally;

/// The test database, as the store's own tests reach it.
const DEFAULT_POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";
/// How long after the run's end answers still in flight are waited for.
const GRACE: Duration = Duration::from_secs(70);

#[derive(Parser)]
#[command(about = "Simulates a night of a fleet of devices against central")]
struct Args {
    /// Simulated devices, each with a site and a school of its own.
    #[arg(long)]
    devices: usize,
    /// The store of the centrals this run starts.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// Central instances this run starts on that store; more than one go behind HAProxy.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Each export goes out at a random moment of a window this long.
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// Nightly deltas after the first export, one window each.
    #[arg(long, default_value_t = 1)]
    nights: usize,
    /// Seconds between a device's heartbeats.
    #[arg(long, default_value_t = 60)]
    heartbeat_seconds: u64,
    /// The run's length; by default the exports' windows and one heartbeat interval more
    /// (with `--heartbeats-only`, three heartbeat intervals).
    #[arg(long)]
    duration_seconds: Option<u64>,
    /// No exports: the devices only heartbeat, as on a school day between two nights.
    #[arg(long)]
    heartbeats_only: bool,
    /// Requests in flight at once, fleet-wide.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// End with one line of JSON with the figures.
    #[arg(long)]
    json: bool,
    /// A running central's device listener (`https://host:port`) instead of starting one.
    #[arg(long, requires_all = ["config", "admin"])]
    central: Option<String>,
    /// That central's configuration file: its store, device CA and sealing key.
    #[arg(long, requires = "central")]
    config: Option<PathBuf>,
    /// That central's operator listener (`host:port`), for the check at the end; its operator
    /// API token comes from `SKOLEBRO_ADMIN_TOKEN`.
    #[arg(long, requires = "central")]
    admin: Option<SocketAddr>,
    /// libpq-style connection string for `--store postgres`.
    #[arg(long, default_value = DEFAULT_POSTGRES)]
    postgres: String,
    /// The `skolebro-central` binary; by default the one beside this binary.
    #[arg(long)]
    central_binary: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.devices == 0 || args.instances == 0 || args.concurrency == 0 {
        bail!("--devices, --instances and --concurrency must be at least 1");
    }
    if args.heartbeat_seconds == 0 {
        bail!("--heartbeat-seconds must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let (central, started) = match &args.central {
        Some(url) => {
            let (Some(config), Some(admin)) = (&args.config, args.admin) else {
                bail!("--central needs --config and --admin");
            };
            (platform::existing(url, config, admin)?, None)
        }
        None => {
            let binary = match &args.central_binary {
                Some(path) => path.clone(),
                None => std::env::current_exe()?.with_file_name("skolebro-central"),
            };
            if !binary.is_file() {
                bail!(
                    "{} not found: build it first (cargo build --release -p skolebro-central)",
                    binary.display()
                );
            }
            let (central, started) = platform::prepare(
                dir.path(),
                binary,
                args.store,
                args.instances,
                &args.postgres,
            )?;
            (central, Some(started))
        }
    };
    run(&args, &central, started, dir.path()).await
}

async fn run(
    args: &Args,
    central: &Central,
    mut started: Option<platform::Started>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let mut tag = [0u8; 2];
    getrandom::fill(&mut tag).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let tag = u32::from(u16::from_le_bytes(tag)) % 100_000;
    let mut sizes = Rng::new(u64::from(tag) + 1);
    let devices = (0..args.devices)
        .map(|index| Device::new(tag, index, &mut sizes).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pupils: usize = devices.iter().map(|device| device.students).sum();

    let registering = Instant::now();
    platform::register(&central.config, &devices)
        .await
        .context("registering the devices")?;
    let registered = registering.elapsed();
    if let Some(started) = &mut started {
        started.start()?;
    }
    let window = Duration::from_secs(args.window_seconds);
    let heartbeat = Duration::from_secs(args.heartbeat_seconds);
    let nights = if args.heartbeats_only {
        heartbeat * 3
    } else {
        window * (args.nights as u32 + 1) + heartbeat
    };
    let duration = args.duration_seconds.map_or(nights, Duration::from_secs);
    let lifetime = duration + GRACE + Duration::from_secs(3600);
    let clients = devices
        .iter()
        .map(|device| device.client(&central.device_ca, &central.central_ca_pem, lifetime))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!(
        "{} devices, {pupils} pupils in their first exports; registered in {:.1} s; \
         {} central instance(s) on {:?}{}",
        devices.len(),
        registered.as_secs_f64(),
        args.instances,
        args.store,
        if args.instances > 1 {
            " behind HAProxy"
        } else {
            ""
        },
    );

    let start = Instant::now();
    let night = Arc::new(Night {
        device_url: central.device_url.clone(),
        sealing: central.sealing.clone(),
        start,
        deadline: start + duration,
        window,
        heartbeat,
        nights: args.nights,
        gate: Semaphore::new(args.concurrency),
        tally: Tally::default(),
        scratch: dir.join("scratch"),
    });
    let mut deliveries = tokio::task::JoinSet::new();
    let mut heartbeats = tokio::task::JoinSet::new();
    for (index, (device, client)) in devices.iter().zip(clients).enumerate() {
        let (device, night) = (Arc::clone(device), Arc::clone(&night));
        heartbeats.spawn(device::heartbeat(
            Arc::clone(&device),
            client.clone(),
            Arc::clone(&night),
        ));
        if !args.heartbeats_only {
            deliveries.spawn(async move { (index, device::deliver(device, client, night).await) });
        }
    }
    let mut acked: Vec<Delivered> = vec![(None, None); devices.len()];
    let ending = tokio::time::sleep_until((start + duration + GRACE).into());
    tokio::pin!(ending);
    loop {
        tokio::select! {
            joined = deliveries.join_next() => match joined {
                Some(Ok((index, last))) => acked[index] = last,
                Some(Err(_)) => night.tally.error("task", 1),
                None => break,
            },
            () = &mut ending => {
                night.tally.error("unfinished", deliveries.len() as u64);
                deliveries.abort_all();
                break;
            }
        }
    }
    tokio::select! {
        () = async { while heartbeats.join_next().await.is_some() {} } => {}
        () = &mut ending => heartbeats.abort_all(),
    }
    let elapsed = start.elapsed();
    let usage = match &started {
        Some(started) => started.usage()?,
        None => Usage::default(),
    };

    let checking = Instant::now();
    let exact = check(central.admin, &devices, &acked).await?;
    let checked = checking.elapsed();
    if let Some(started) = started {
        started.stop().await?;
    }
    report(args, &night.tally, start, elapsed, usage, exact, checked);
    Ok(())
}

/// A device's last acked and last sent export (`device::deliver`).
type Delivered = (Option<usize>, Option<usize>);

/// Whether central holds, for every device's site, the roster of the device's last acked
/// export (nothing, for a device that got none through), or of the export after it that
/// was sent when the run ended without an ack, read back from an operator
/// listener. Four readers at a time: the check must not take longer than the night.
async fn check(
    admin: SocketAddr,
    devices: &[Arc<Device>],
    acked: &[Delivered],
) -> anyhow::Result<bool> {
    let mut readers = tokio::task::JoinSet::new();
    let work: Vec<_> = devices.iter().cloned().zip(acked.iter().copied()).collect();
    for share in work.chunks(work.len().div_ceil(4)) {
        let share = share.to_vec();
        readers.spawn_blocking(move || {
            share.iter().all(|(device, (acked, sent))| {
                let site = device.site.as_str();
                let holds = central_holds(admin, site, &device.truth(*acked)) == Some(true)
                    || (sent != acked
                        && central_holds(admin, site, &device.truth(*sent)) == Some(true));
                if !holds {
                    eprintln!("central does not hold what {} sent", device.id);
                }
                holds
            })
        });
    }
    let mut exact = true;
    while let Some(share) = readers.join_next().await {
        exact &= share.context("a checker")?;
    }
    Ok(exact)
}

fn report(
    args: &Args,
    tally: &Tally,
    start: Instant,
    elapsed: Duration,
    usage: Usage,
    exact: bool,
    checked: Duration,
) {
    let batches = tally.batches_applied();
    let records = tally.records_applied();
    let span = tally
        .batch_span(start)
        .unwrap_or(elapsed)
        .as_secs_f64()
        .max(f64::EPSILON);
    let batch = tally.batch_latency();
    let heartbeat = tally.heartbeat_latency();
    let errors = tally.errors();
    println!(
        "ran {:.1} s; batches applied {batches} ({:.1}/s over the {span:.1} s to the last ack), \
         records applied {records} ({:.0}/s)",
        elapsed.as_secs_f64(),
        batches as f64 / span,
        records as f64 / span,
    );
    println!(
        "batch apply ms     p50 {:>8.1}  p99 {:>8.1}  max {:>8.1}",
        batch.p50, batch.p99, batch.max
    );
    println!(
        "heartbeat ms       p50 {:>8.1}  p99 {:>8.1}  max {:>8.1}   ({} heartbeats, {:.1}/s)",
        heartbeat.p50,
        heartbeat.p99,
        heartbeat.max,
        tally.heartbeats(),
        tally.heartbeats() as f64 / elapsed.as_secs_f64(),
    );
    println!("errors             {errors:?}");
    if args.central.is_none() {
        println!(
            "central            {:.1} s CPU, {:.1} MiB peak RSS (largest instance)",
            usage.cpu_s, usage.peak_rss_mib
        );
    }
    println!(
        "central holds exactly what every device sent: {exact} (checked in {:.1} s)",
        checked.as_secs_f64()
    );
    if args.json {
        let line = json!({
            "devices": args.devices,
            "batches_applied": batches,
            "records_applied": records,
            "batch_apply_ms": batch.to_json(),
            "heartbeat_ms": heartbeat.to_json(),
            "errors": errors,
            "central_cpu_s": (usage.cpu_s * 100.0).round() / 100.0,
            "central_peak_rss_mib": (usage.peak_rss_mib * 10.0).round() / 10.0,
            "exact": exact,
        });
        println!("{line}");
    }
}
