//! `skolebro-agent`: the command line of the agent on the Pi. `check` tells school IT what an
//! export contains and what is wrong with it; `diff` shows what would be sent to central.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skolebro_agent::config::AgentConfig;
use skolebro_agent::diff::{diff, Fingerprints};
use skolebro_agent::reader::{read_export, Format, ReadError, ReaderOptions};
use skolebro_agent::report;
use skolebro_agent::safety::{judge, today};
use skolebro_agent::state::State;
use skolebro_agent::validate::Validated;
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::SiteSecret;

#[derive(Parser)]
#[command(
    name = "skolebro-agent",
    version,
    about = "The skolebro agent on the school's Pi"
)]
struct Cli {
    /// Agent config (agent.toml); defaults apply without one.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What an export contains and what is wrong with it. Exit 0: no errors; 1: errors to fix;
    /// 2: the file cannot be read.
    Check {
        export: PathBuf,
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long)]
        json: bool,
    },
    /// The delta from one export to the next, and whether the safety filter would hold it.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long)]
        json: bool,
        /// The date the safety filter's delay-delete windows are checked against.
        #[arg(long, value_parser = parse_date)]
        today: Option<CivilDate>,
    },
}

fn parse_date(text: &str) -> Result<CivilDate, String> {
    CivilDate::parse_iso(text).ok_or_else(|| format!("`{text}` is not a date (YYYY-MM-DD)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skolebro-agent: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = match &cli.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    match cli.command {
        Command::Check {
            export,
            format,
            json,
        } => {
            let (format, validated) = read(&export, format, &config)?;
            if json {
                println!("{}", report::check_json(&export, format, &validated));
            } else {
                print!("{}", report::check_text(&export, format, &validated));
            }
            Ok(ExitCode::from(u8::from(validated.errors() > 0)))
        }
        Command::Diff {
            old,
            new,
            format,
            json,
            today: date,
        } => {
            let secret = SiteSecret::from_bytes(random_secret()?);
            // The two exports are independent: read and fingerprint them on both cores.
            let options = ReaderOptions {
                pipelined: false,
                ..config.reader_options()
            };
            let format = format.or(config.format);
            let (before, new) = std::thread::scope(|scope| {
                let before = scope.spawn(|| {
                    read_export(&old, format, &options)
                        .map(|(_, old)| State::of(&old.roster, &secret))
                });
                let new = read_export(&new, format, &options).map(|(_, new)| {
                    let prints = Fingerprints::of(&new.roster, &secret);
                    (new, prints)
                });
                (before.join(), new)
            });
            let before =
                before.map_err(|_| anyhow::anyhow!("reading the old export panicked"))??;
            let (new, prints) = new?;
            let (mut delta, summary) = diff(&before, &new, &prints, &secret);
            let judgement = judge(
                &config.safety,
                &before,
                &mut delta,
                &summary,
                date.unwrap_or_else(today),
            );
            if json {
                println!("{}", report::diff_json(&delta, &summary, &judgement));
            } else {
                print!("{}", report::diff_text(&delta, &summary, &judgement));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(
    path: &Path,
    format: Option<Format>,
    config: &AgentConfig,
) -> Result<(Format, Validated), ReadError> {
    read_export(path, format.or(config.format), &config.reader_options())
}

/// A throwaway handle key: `diff` compares two files in one run, so handles only need to
/// agree within it.
fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    Ok(bytes)
}
