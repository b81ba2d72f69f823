//! `skolebro-demo`: the quickstart, central and an agent on loopback in one process (see
//! `quickstart.rs`), and with `--serve` central left running for people and OneRoster
//! clients to try (`serve.rs`). This file reads the command line, makes the demo folder and
//! sends the log into it, removes the folder afterwards unless asked to keep it, and says by
//! its exit code whether central ended up holding the last export.

/// One line of the demo's summary for people: on stdout, or on stderr with `--json` so that
/// stdout carries nothing but JSON.
macro_rules! say {
    ($out:expr) => {
        $out.line(format_args!(""))
    };
    ($out:expr, $($arg:tt)*) => {
        $out.line(format_args!($($arg)*))
    };
}

mod quickstart;
mod serve;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use skolebro_provisioning::ops;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The quickstart: a dev PKI, central on SQLite and an agent, on loopback, delivering the
/// sample exports (or `--export` files, in order). Exits 0 only if central ends up holding
/// exactly the last export.
#[derive(Debug, Parser)]
#[command(name = "skolebro-demo", version)]
struct Args {
    /// An export to deliver instead of the samples; repeat for several, applied in order.
    #[arg(long, value_name = "PATH")]
    export: Vec<PathBuf>,
    /// Print only JSON on stdout (the summary for people goes to stderr): without --serve
    /// one document at the end, `{"counts": {...}, "equal": bool, ...}`; with --serve one
    /// line with the listeners' URLs and the demo's credentials, before it waits.
    #[arg(long)]
    json: bool,
    /// Keep the demo folder (keys, central.db, the agent's state, demo.log) afterwards; the
    /// JSON then names it as "dir". A failed demo keeps it anyway.
    #[arg(long)]
    keep: bool,
    /// After the exports arrived, keep central (device, operator, web interface and consumer
    /// listeners) and the agent running until Ctrl-C or SIGTERM, with one-time demo
    /// credentials printed.
    #[arg(long)]
    serve: bool,
    /// Log to stderr instead of to demo.log in the demo folder.
    #[arg(short, long)]
    verbose: bool,
}

/// Where the summary for people goes; see [`say!`].
pub(crate) struct Out {
    json: bool,
}

impl Out {
    pub(crate) fn line(&self, text: std::fmt::Arguments<'_>) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// Prints a JSON document as one line on stdout and flushes it, so a reader waiting for
    /// the line gets it while the demo goes on running.
    pub(crate) fn json(&self, value: &serde_json::Value) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{value}")?;
        stdout.flush()
    }
}

/// The name of the log file in the demo folder.
const LOG_FILE: &str = "demo.log";

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-demo-")
        .tempdir()
        .context("making the demo folder")?
        .keep();
    init_logging(&dir, args.verbose)?;
    let out = Out { json: args.json };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(quickstart::run(&dir, &args, &out));
    // Nothing may be writing into the folder while it is removed.
    drop(runtime);
    let equal = matches!(result, Ok(true));
    if args.keep || !equal {
        say!(out, "kept the demo folder {}", dir.display());
        if !args.verbose {
            say!(out, "  its log is {}", dir.join(LOG_FILE).display());
        }
    } else {
        remove(&dir, &out);
    }
    // When central differs from the last export the summary has already said so and why.
    Ok(if result? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends the log to `demo.log` in the demo folder, so it never interleaves with the summary,
/// or with `-v` to stderr.
fn init_logging(dir: &Path, verbose: bool) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt();
    if verbose {
        let subscriber = builder.with_writer(std::io::stderr).finish();
        subscriber.with(ops::log_filter()).init();
    } else {
        let path = dir.join(LOG_FILE);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let subscriber = builder
            .with_ansi(false)
            .with_writer(Arc::new(file))
            .finish();
        subscriber.with(ops::log_filter()).init();
    }
    Ok(())
}

fn remove(dir: &Path, out: &Out) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => say!(out, "removed the demo folder (--keep keeps it)"),
        Err(error) => say!(out, "could not remove {}: {error}", dir.display()),
    }
}
