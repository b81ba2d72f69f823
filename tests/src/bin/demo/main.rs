//! `skolebro-demo`: the quickstart, central and an agent on loopback in one process (see
//! `quickstart.rs`). This file reads the command line, sets up logging and says by its exit
//! code whether central ended up holding the last export.

mod quickstart;
mod setup;

use std::path::PathBuf;

use clap::Parser;

/// The quickstart: a dev PKI, central on SQLite and an agent, on loopback, delivering the
/// sample exports (or `--export` files, in order). Exits 0 only if central ends up holding
/// exactly the last export.
#[derive(Debug, Parser)]
#[command(name = "skolebro-demo", version)]
struct Args {
    /// An export to deliver instead of the samples; repeat for several, applied in order.
    #[arg(long, value_name = "PATH")]
    export: Vec<PathBuf>,
    /// End with one JSON document on stdout: `{"counts": {...}, "equal": bool, "dir": ...}`.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let equal = runtime.block_on(quickstart::run(args.export, args.json))?;
    if equal {
        Ok(())
    } else {
        anyhow::bail!("central's current state does not equal the last export")
    }
}
