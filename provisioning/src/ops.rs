//! What the three operations binaries (`skolebro-agent`, `skolebro-central`,
//! `skolebro-provision`) share at their edge, so an operator, a script or systemd meets one
//! convention everywhere: the exit codes ([`Exit`]), how an error is printed ([`report`]) and
//! how logs are written ([`init_logging`]). packaging/README.md ("Exit codes, logs and
//! environment") documents the same table; each binary's `main` maps its errors onto it.

use std::error::Error;
use std::io::IsTerminal as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The exit code of every command of the three binaries. A script tells the kind of failure
/// from the code alone: a wrong command line (fix the call) from a bad config (fix the file)
/// from a peer that is down (try again later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; or, for `skolebro-agent status`, the agent is healthy.
    Ok,
    /// The work failed or found problems: a refusal, a failed write, an export with errors
    /// to fix (`check`), an agent in error (`status`).
    Failure,
    /// The command line is wrong, or an input file it names cannot be read (clap's own code
    /// for usage errors).
    Usage,
    /// The configuration cannot be used: the config file or a key or certificate it names is
    /// missing, unreadable or invalid.
    Config,
    /// A service the command needs cannot be reached: central, its admin API, the database.
    Unavailable,
    /// `skolebro-agent status`: the device is not enrolled (waiting for a config stick) or
    /// was revoked.
    NotEnrolled,
    /// `skolebro-agent status`: the agent holds an export for review at central.
    Holding,
    /// `skolebro-agent status`: no agent process is running.
    NotRunning,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Unavailable => 4,
            Exit::NotEnrolled => 5,
            Exit::Holding => 6,
            Exit::NotRunning => 7,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code())
    }
}

/// `error` and its causes on one line, each said once: a cause whose text the message
/// already holds (many errors here put their cause in their own message, as an operator at a
/// terminal reads it best) is left out instead of repeated as `: cause: cause`.
pub fn message(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Prints `program: <error and causes, once>` on stderr: the one way the three binaries
/// report a failure (never a Rust `Debug` dump or a backtrace).
pub fn report(program: &str, error: &(dyn Error + 'static)) {
    eprintln!("{program}: {}", message(error));
}

/// The log formats of `--log-format` and [`LOG_FORMAT_ENV`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, for people and journald; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The environment variable that sets the log format where the command line cannot (a
/// systemd unit's `Environment=`); `--log-format` wins over it.
pub const LOG_FORMAT_ENV: &str = "SKOLEBRO_LOG_FORMAT";

/// The log filter from `RUST_LOG` (`debug`, `skolebro_agent=debug,info`: a level per target),
/// info when it is unset or not understood. Targets and levels are all the binaries need;
/// tracing-subscriber's `EnvFilter` would also match spans and fields, and its regex engine
/// alone was 212 KiB of the agent's code on the Pi (docs/BENCHMARKS.md).
pub fn log_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Logs to stderr (journald picks them up) in `format`, filtered by [`log_filter`].
/// Colour only when stderr is a terminal: escape codes in the journal or a file are noise.
/// Field values are written as the call sites give them, in words: no call site logs a Rust
/// `Debug` rendering.
pub fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    // A second call (a test running two commands in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(log_filter())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(log_filter())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Repeats {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connecting to the database")]
    struct Adds {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let error = Repeats {
            path: "/etc/skolebro/agent.toml",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(message(&error), "/etc/skolebro/agent.toml: no such file");
    }

    #[test]
    fn a_cause_not_in_the_message_is_kept() {
        let error = Adds {
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(message(&error), "connecting to the database: refused");
    }

    #[test]
    fn every_exit_code_is_distinct() {
        let all = [
            Exit::Ok,
            Exit::Failure,
            Exit::Usage,
            Exit::Config,
            Exit::Unavailable,
            Exit::NotEnrolled,
            Exit::Holding,
            Exit::NotRunning,
        ];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
