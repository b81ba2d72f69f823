//! `skolebro-rostergen`: writes synthetic exports (synthetic ids only) for samples, tests and
//! benchmarks.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use skolebro_tests::rostergen::{Churn, Generated};

#[derive(Parser)]
#[command(about = "Writes synthetic elevliste exports")]
struct Args {
    /// Number of students.
    #[arg(long, default_value_t = 1000)]
    students: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write this many later exports, each evolved from the one before.
    #[arg(long, default_value_t = 0)]
    evolve: usize,
    /// Line ends as Windows writes them.
    #[arg(long)]
    crlf: bool,
    /// Output file; later exports get `.2`, `.3`, … before the extension.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut roster = Generated::new(args.students, args.seed);
    for version in 1..=args.evolve + 1 {
        let path = if version == 1 {
            args.out.clone()
        } else {
            let stem = args.out.file_stem().unwrap_or_default().to_string_lossy();
            let ext = args
                .out
                .extension()
                .map(|e| e.to_string_lossy())
                .unwrap_or_default();
            args.out.with_file_name(format!("{stem}.{version}.{ext}"))
        };
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        roster.write_elevliste(&mut out, args.crlf)?;
        std::io::Write::flush(&mut out)?;
        println!("{}: {} students", path.display(), roster.pupils.len());
        roster = roster.evolve(Churn::default(), args.seed + version as u64);
    }
    Ok(())
}
