//! `skolebro-central`: the platform's binary. The commands live in `cli.rs`; this file only
//! sets up logging, runs the one that was asked for, and turns a failure into one line on
//! stderr and an exit code of the table all three binaries share
//! (`skolebro_provisioning::ops::Exit`, packaging/README.md "Exit codes").

mod cli;

use std::process::ExitCode;

use clap::Parser as _;
use skolebro_central::accounts::NewUserError;
use skolebro_central::config::ConfigError;
use skolebro_central::operator_auth::OperatorTokenError;
use skolebro_central::store::StoreError;
use skolebro_provisioning::ops::{self, Exit};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ops::init_logging(cli.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            ops::report("skolebro-central", error.as_ref());
            exit_kind(&error).into()
        }
    }
}

/// The kind of a failure: a database that cannot be reached is unavailable, any other
/// problem with the config or the files it names is a config error, a refused argument
/// (account name, role, short password, unknown account, operator API client name, a
/// national id whose control digits fail, an unconfirmed purge or erasure) a usage error.
fn exit_kind(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if let Some(error) = cause.downcast_ref::<ConfigError>() {
            return match error {
                ConfigError::Store(StoreError::Postgres(e)) if e.code().is_none() => {
                    Exit::Unavailable
                }
                ConfigError::Store(_) => Exit::Failure,
                _ => Exit::Config,
            };
        }
        if let Some(StoreError::Postgres(e)) = cause.downcast_ref::<StoreError>() {
            if e.code().is_none() {
                return Exit::Unavailable;
            }
        }
        if cause.is::<NewUserError>()
            || cause.is::<cli::NoSuchAccount>()
            || cause.is::<cli::NotConfirmed>()
            || cause.is::<cli::SubjectNotConfirmed>()
            || cause.is::<skolebro_protocol::NationalIdError>()
        {
            return Exit::Usage;
        }
        if let Some(error) = cause.downcast_ref::<OperatorTokenError>() {
            return match error {
                OperatorTokenError::Store(StoreError::Postgres(e)) if e.code().is_none() => {
                    Exit::Unavailable
                }
                OperatorTokenError::InvalidName
                | OperatorTokenError::Store(
                    StoreError::OperatorClientExists(_) | StoreError::OperatorClientUnknown(_),
                ) => Exit::Usage,
                _ => Exit::Failure,
            };
        }
    }
    Exit::Failure
}
