//! `skolebro-agent`: the command line of the agent on the Pi. `check` tells school IT what an
//! export contains and what is wrong with it; `diff` shows what would be sent to central;
//! `run` is the daemon ([`skolebro_agent::daemon`]); `status` and `outbox` tell what it is
//! doing, from its state folder, without disturbing it; `provision` enrolls the device from a
//! config stick by hand ([`skolebro_agent::provision`]; the daemon also does it by itself).
//! `run` exits when an update installed a release or rolled one back, for its supervisor
//! (systemd, `Restart=always`) to start `<install_root>/current/skolebro-agent`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use skolebro_agent::clock::AgentClock;
use skolebro_agent::config::{self, AgentConfig, ConfigError};
use skolebro_agent::daemon::{self, DaemonError};
use skolebro_agent::identity::IdentityError;
use skolebro_agent::outbox::{segment::HEADER_LEN, unix_ms_now, MemStorage, Outbox};
use skolebro_agent::provision::{self, ProvisionError, Provisioned};
use skolebro_agent::state::Checkpoint;
use skolebro_agent::status::{self, AgentStatus, RunState};
use skolebro_protocol::envelope::Envelope;
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::SiteSecret;
use skolebro_provisioning::manual;
use skolebro_provisioning::ops::{self, Exit, LogFormat};
use skolebro_roster::diff::{diff, Fingerprints};
use skolebro_roster::reader::{read_export, Format, ReadError, ReaderOptions};
use skolebro_roster::references;
use skolebro_roster::report;
use skolebro_roster::safety::{judge, today, Columns};
use skolebro_roster::state::State;

#[derive(Parser)]
#[command(
    name = "skolebro-agent",
    version = skolebro_agent::update::VERSION,
    about = "The skolebro agent on the school's Pi"
)]
struct Cli {
    /// Agent config [default: /etc/skolebro/agent.toml if it exists, else built-in defaults].
    #[arg(
        long,
        global = true,
        env = "SKOLEBRO_AGENT_CONFIG",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,
    /// The state folder, instead of agent.toml's `state_dir`.
    #[arg(long, global = true, env = "SKOLEBRO_STATE_DIR", value_name = "PATH")]
    state_dir: Option<PathBuf>,
    /// How `run` and `provision` write their log on stderr.
    #[arg(long, global = true, value_enum, env = ops::LOG_FORMAT_ENV, default_value = "text")]
    log_format: LogFormat,
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
        /// List every deviation; by default the first 100 of each kind are listed, and the
        /// rest only counted (a broken export can have one on every row).
        #[arg(long)]
        all: bool,
    },
    /// The daemon: watches the drop folder and pushes sealed batches to central until
    /// SIGTERM or SIGINT. Without an identity it first waits for a config stick.
    Run,
    /// Enrolls this device from a config stick. Exit 0: enrolled, or already enrolled with
    /// this stick (nothing changed); 1: the stick or central refused (nothing changed);
    /// 3: the stick key is missing or unusable; 4: central cannot be reached. A running
    /// daemon switches to the new identity within seconds.
    Provision {
        /// The stick's mount point, or its SKOLEBRO/BUNDLE.SKB file.
        #[arg(long)]
        from: PathBuf,
    },
    /// What the agent is doing, in plain words. Exit 0: healthy; 1: in error; 4: cannot
    /// reach central; 5: not enrolled (or revoked); 6: holding an export for review; 7: not
    /// running.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The outbox of batches not yet acknowledged by central.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
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
    /// Writes the man pages and shell completions into a folder (the packages run this).
    #[command(hide = true)]
    Manual {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Depth, bytes and the age of the oldest unacknowledged batch.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// One line per stored frame: seq, size, checksum, append time and the envelope header
    /// (kind, device, site, created). Never payloads.
    Inspect {
        #[arg(long)]
        json: bool,
    },
}

fn parse_date(text: &str) -> Result<CivilDate, String> {
    CivilDate::parse_iso(text).ok_or_else(|| format!("`{text}` is not a date (YYYY-MM-DD)"))
}

fn main() -> ExitCode {
    return_large_frees_to_the_kernel();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            ops::report("skolebro-agent", error.as_ref());
            exit_kind(&error).into()
        }
    }
}

/// The exit code of a failed command (packaging/README.md, "Exit codes"): a config, key or
/// identity file that cannot be used is a config error wherever it surfaces.
fn exit_kind(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        // The daemon's error is transparent: its chain skips the error it wraps.
        let daemon_config = matches!(
            cause.downcast_ref::<DaemonError>(),
            Some(DaemonError::Config(_) | DaemonError::Identity(_))
        );
        if daemon_config || cause.is::<ConfigError>() || cause.is::<IdentityError>() {
            return Exit::Config;
        }
        match cause.downcast_ref::<ProvisionError>() {
            Some(ProvisionError::StickKey { .. }) => return Exit::Config,
            Some(ProvisionError::Unreachable(_)) => return Exit::Unavailable,
            _ => {}
        }
        if cause.is::<ReadError>() {
            return Exit::Usage;
        }
    }
    Exit::Failure
}

/// The config file to read: `--config` (or `SKOLEBRO_AGENT_CONFIG`), else `default` if it
/// exists, so the installed agent needs no flag; `None` runs on built-in defaults (`check` on
/// a laptop).
fn config_path(explicit: Option<PathBuf>, default: &Path) -> Option<PathBuf> {
    explicit.or_else(|| default.exists().then(|| default.to_owned()))
}

fn load_config(cli: &Cli) -> anyhow::Result<AgentConfig> {
    let mut config = match config_path(cli.config.clone(), Path::new(config::DEFAULT_PATH)) {
        Some(path) => AgentConfig::load(&path)?,
        None => AgentConfig::default(),
    };
    if let Some(dir) = &cli.state_dir {
        config.state_dir = std::path::absolute(dir)
            .map_err(|e| anyhow::anyhow!("--state-dir {}: {e}", dir.display()))?;
    }
    Ok(config)
}

/// Makes glibc serve every allocation of 128 KiB or more (a roster, a state, a batch) from
/// its own mapping, returned to the kernel when freed. By default glibc raises that
/// threshold after the first large free and keeps freed megabytes in its heap: memory a Pi
/// holds for nothing. On a 100,000-student first export this cut the peak RSS by about a
/// fifth (docs/BENCHMARKS.md).
#[allow(unsafe_code)]
fn return_large_frees_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called first thing in main, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(cli.command, Command::Run | Command::Provision { .. }) {
        ops::init_logging(cli.log_format);
    }
    if matches!(cli.command, Command::Run) {
        // Before the config is read: a release that cannot read it is still on trial.
        if let Some(code) = skolebro_agent::update::on_start() {
            return Ok(ExitCode::from(code));
        }
    }
    // The manual is made at packaging time, where no agent.toml need exist.
    let config = match cli.command {
        Command::Manual { .. } => AgentConfig::default(),
        _ => load_config(&cli)?,
    };
    match cli.command {
        Command::Manual { out } => {
            for path in manual::write(Cli::command(), &out)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(daemon::run(config, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Provision { from } => provision_from(&config, &from),
        Command::Status { json } => status(&config, json),
        Command::Outbox {
            command: OutboxCommand::Status { json },
        } => outbox_status(&config, json),
        Command::Outbox {
            command: OutboxCommand::Inspect { json },
        } => outbox_inspect(&config, json),
        Command::Check {
            export,
            format,
            json,
            all,
        } => {
            let mut options = config.reader_options();
            options.validation.keep_every_deviation = all;
            let (format, validated) = match read_export(&export, format.or(config.format), &options)
            {
                Ok(read) => read,
                Err(error) if json => {
                    println!("{}", report::read_error_json(&error));
                    eprintln!("skolebro-agent: {error}");
                    return Ok(Exit::Usage.into());
                }
                Err(error) => return Err(error.into()),
            };
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
                        .map(|(_, old)| (State::of(&old.roster, &secret), old.columns))
                });
                // A partial export's prints wait for its references to be checked against
                // the old export's state.
                let new = read_export(&new, format, &options).map(|(_, new)| {
                    let prints = (!new.partial).then(|| Fingerprints::of(&new.roster, &secret));
                    (new, prints)
                });
                (before.join(), new)
            });
            let (before, old_columns) =
                before.map_err(|_| anyhow::anyhow!("reading the old export panicked"))??;
            let (mut new, prints) = new?;
            references::resolve(&mut new, &before, &secret);
            let prints = prints.unwrap_or_else(|| Fingerprints::of(&new.roster, &secret));
            let (mut delta, summary) = diff(&before, &new, &prints, &secret);
            let judgement = judge(
                &config.safety,
                &before,
                &mut delta,
                &summary,
                Columns {
                    before: &old_columns,
                    after: &new.columns,
                },
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

fn provision_from(config: &AgentConfig, from: &Path) -> anyhow::Result<ExitCode> {
    let clock = Arc::new(AgentClock::open(
        Some(&config.state_dir),
        &config.clock_synced_file,
    )?);
    let key = provision::load_stick_key(config)?;
    let bundle = provision::bundle_path(from);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(provision::provision(
        &config.state_dir,
        &key,
        &clock,
        &bundle,
        &config.drop_share_target(),
    ));
    match result {
        Ok(Provisioned::Enrolled(e)) => {
            println!(
                "Enrolled as device {} for site {} (token {}). The stick can be removed.",
                e.device, e.site, e.token_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Provisioned::AlreadyEnrolled(e)) => {
            println!(
                "Already enrolled with this stick as device {} for site {}; nothing changed.",
                e.device, e.site
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (ProvisionError::Refused { .. } | ProvisionError::CentralRefused { .. })) => {
            eprintln!("skolebro-agent: {error}; nothing changed.");
            Ok(Exit::Failure.into())
        }
        Err(error) => Err(error.into()),
    }
}

/// A throwaway handle key: `diff` compares two files in one run, so handles only need to
/// agree within it.
fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    Ok(bytes)
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A private copy of the outbox: opening the real one runs recovery, which may write, and
/// must not race the running daemon. The copy's recovery changes only memory.
fn outbox_view(config: &AgentConfig) -> anyhow::Result<(Outbox<MemStorage>, MemStorage)> {
    let dir = config.state_dir.join("outbox");
    let mem = MemStorage::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // A segment may be deleted by an ack between listing and reading.
                    if let Ok(bytes) = std::fs::read(entry.path()) {
                        mem.set_raw(&name, bytes);
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", dir.display())),
    }
    let (outbox, _) = Outbox::open(mem.clone(), config.outbox.outbox_config())?;
    Ok((outbox, mem))
}

fn process_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn status(config: &AgentConfig, json: bool) -> anyhow::Result<ExitCode> {
    let now = unix_ms_now();
    let status = match AgentStatus::load(&config.state_dir) {
        Ok(status) => Some(status),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", config.state_dir.display())),
    };
    let checkpoint = Checkpoint::load(&config.state_dir.join("checkpoint"))
        .ok()
        .flatten();
    let (outbox, _) = outbox_view(config)?;
    let outbox = outbox.status();
    let running = status
        .as_ref()
        .is_some_and(|s| s.state != RunState::Stopped && process_alive(s.pid));
    let exit = status_exit(status.as_ref(), running);
    let drop_share = skolebro_agent::drop_share::status(&config.state_dir);
    if json {
        let value = serde_json::json!({
            "exit_code": exit.code(),
            "running": running,
            "status": status,
            "chain": checkpoint.as_ref().map(|c| serde_json::json!({
                "next_seq": c.head.next_seq.0,
                "needs_snapshot": c.needs_snapshot,
            })),
            "drop_share": drop_share,
            "outbox": {
                "depth": outbox.depth,
                "bytes": outbox.unacked_bytes,
                "oldest_unacked_age_s": outbox.oldest_unacked_age(now).map(|d| d.as_secs()),
            },
        });
        println!("{value}");
        return Ok(exit.into());
    }
    match status {
        Some(mut status) => {
            // The outbox on disk is the truth; status.json may be a moment behind.
            status.outbox_depth = outbox.depth;
            status.oldest_unacked_unix_ms = outbox.oldest_unacked.map(|o| o.appended_at_ms);
            let export_file = status
                .last_export_file
                .as_ref()
                .map(|name| config.drop_dir().join(name))
                .filter(|path| path.is_file());
            print!(
                "{}",
                status::describe_status(&status, running, now, export_file.as_deref())
            );
        }
        None => println!(
            "The agent has not run yet here (no {} in {}).",
            status::STATUS_FILE,
            config.state_dir.display()
        ),
    }
    if let Some(share) = &drop_share {
        print!("{}", status::describe_drop_share(share, now));
    }
    if let Some(checkpoint) = checkpoint {
        println!(
            "Chain: the next batch is seq {}{}.",
            checkpoint.head.next_seq.0,
            if checkpoint.needs_snapshot {
                ", a full snapshot"
            } else {
                ""
            }
        );
    }
    Ok(exit.into())
}

/// The exit code of `status` (packaging/README.md, "Exit codes"), so a monitor can act on
/// it without parsing words: what needs someone first (enrollment, a held export), then
/// what fixes itself or needs a look, then whether the agent runs at all.
fn status_exit(status: Option<&AgentStatus>, running: bool) -> Exit {
    let Some(status) = status else {
        return Exit::NotRunning;
    };
    match status.state {
        RunState::NotProvisioned | RunState::Enrolling | RunState::Revoked => Exit::NotEnrolled,
        RunState::Holding => Exit::Holding,
        RunState::CentralUnreachable => Exit::Unavailable,
        RunState::Error => Exit::Failure,
        RunState::Starting | RunState::Healthy | RunState::Stopped if !running => Exit::NotRunning,
        RunState::Starting | RunState::Healthy | RunState::Stopped => Exit::Ok,
    }
}

fn outbox_status(config: &AgentConfig, json: bool) -> anyhow::Result<ExitCode> {
    let (outbox, _) = outbox_view(config)?;
    let status = outbox.status();
    let age = status
        .oldest_unacked_age(unix_ms_now())
        .map(|d| d.as_secs());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "depth": status.depth,
                "bytes": status.unacked_bytes,
                "disk_bytes": status.disk_bytes,
                "segments": status.segments,
                "ack_seq": status.ack_seq,
                "next_seq": status.next_seq,
                "oldest_unacked_age_s": age,
                "max_bytes": status.max_bytes,
                "max_batches": status.max_batches,
            })
        );
    } else {
        println!(
            "{} batches not yet acknowledged ({} bytes; {} of {} bytes on disk in {} segments); last acknowledged seq {}, next seq {}.",
            status.depth,
            status.unacked_bytes,
            status.disk_bytes,
            status.max_bytes,
            status.segments,
            status.ack_seq,
            status.next_seq
        );
        if let Some(age) = age {
            println!("Oldest unacknowledged batch: {}.", status::age(age * 1000));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn outbox_inspect(config: &AgentConfig, json: bool) -> anyhow::Result<ExitCode> {
    let (outbox, mem) = outbox_view(config)?;
    let now = unix_ms_now();
    for frame in outbox.inspect()? {
        // Checked, not `as`: on the 32-bit Pi (armv7) usize is 32 bits and a cast would wrap.
        let body = usize::try_from(frame.offset)
            .ok()
            .and_then(|offset| offset.checked_add(HEADER_LEN))
            .and_then(|start| Some(start..start.checked_add(usize::try_from(frame.len).ok()?)?));
        let header = mem
            .raw(&frame.segment)
            .zip(body)
            .and_then(|(bytes, body)| bytes.get(body).map(<[u8]>::to_vec))
            .filter(|_| frame.crc_ok)
            .and_then(|bytes| Envelope::from_bytes(&bytes, usize::MAX).ok())
            .map(|envelope| envelope.header().clone());
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "seq": frame.seq,
                    "size": frame.len,
                    "crc_ok": frame.crc_ok,
                    "acked": frame.acked,
                    "appended_unix_ms": frame.appended_at_ms,
                    "kind": header.as_ref().map(|h| format!("{:?}", h.kind).to_lowercase()),
                    "device": header.as_ref().map(|h| h.device.to_string()),
                    "site": header.as_ref().map(|h| h.site.to_string()),
                    "created_unix_ms": header.as_ref().map(|h| h.created_unix_ms),
                })
            );
        } else {
            let described = match &header {
                Some(h) => format!(
                    "{:?} device {} site {} created {}",
                    h.kind,
                    h.device,
                    h.site,
                    status::fmt_when(h.created_unix_ms, now)
                ),
                None => "header unreadable".into(),
            };
            println!(
                "seq {} {} bytes crc {} {} appended {} {}",
                frame.seq,
                frame.len,
                if frame.crc_ok { "ok" } else { "BAD" },
                if frame.acked { "acked" } else { "pending" },
                status::fmt_when(frame.appended_at_ms, now),
                described
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_config_is_read_without_a_flag_and_a_flag_wins() {
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("agent.toml");
        assert_eq!(config_path(None, &installed), None);
        std::fs::write(&installed, "").unwrap();
        assert_eq!(config_path(None, &installed), Some(installed.clone()));
        let other = dir.path().join("other.toml");
        assert_eq!(config_path(Some(other.clone()), &installed), Some(other));
    }
}
