//! The subcommands of `skolebro-central`. Each is a variant of [`CliCommand`] and a function
//! here; a new command adds both and one arm in [`run`].

mod audit_line;
mod config_file;
mod keys;
mod password;
mod service;
mod subject;

use audit_line::audit_cli;
use config_file::{CONFIG_ENV, DEFAULT_CONFIG};
pub(crate) use keys::KeysCommand;
pub(crate) use subject::{NotConfirmed as SubjectNotConfirmed, SubjectCommand};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use skolebro_central::store::{sealing, Role, Timestamp, UiUser};
use skolebro_central::{
    access_log, accounts, operator_auth, retention, site_exit, sites, CentralConfig,
};
use skolebro_protocol::{DeviceId, DeviceVerifyingKey, SiteId, SiteSchool, SiteSecret};
use skolebro_provisioning::ops::{self, LogFormat};

/// The central platform of skolebro: receives sealed roster batches from the schools' agents
/// over mutual TLS and keeps every record with its history.
#[derive(Debug, Parser)]
#[command(name = "skolebro-central", version)]
pub(crate) struct Cli {
    /// How the log on stderr is written.
    #[arg(long, global = true, value_enum, env = ops::LOG_FORMAT_ENV, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: CliCommand,
}

/// An operator account's role, as `add-user --role` takes it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// Every site, every action.
    Operations,
    /// Only its kommune's schools (needs --kommune).
    Municipality,
    /// Sees what operations sees, changes nothing.
    #[value(name = "read_only")]
    ReadOnly,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Operations => Role::Operations,
            RoleArg::Municipality => Role::Municipality,
            RoleArg::ReadOnly => Role::ReadOnly,
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum CliCommand {
    /// Run the platform: the device listener (mutual TLS) and the operator listener, until
    /// SIGTERM or Ctrl-C.
    Serve {
        /// The configuration file (TOML); relative paths in it are relative to its folder.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Register a device for a site with its envelope-signing key, and set the site's
    /// handle secret, for a device set up by hand instead of enrolling with a config stick
    /// (tests, the demo's way).
    RegisterDevice {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The device id, as in its certificate.
        #[arg(long, value_name = "ID")]
        device: String,
        /// The site the device serves, as in its certificate.
        #[arg(long, value_name = "ID")]
        site: String,
        /// The device's Ed25519 verifying key, 64 hex characters.
        #[arg(long, value_name = "HEX")]
        verifying_key: String,
        /// The site's record-handle secret, 64 hex characters.
        #[arg(long, value_name = "HEX")]
        site_secret: String,
        /// A school the site's exports name, as KOMMUNE/SKOLENUMMER[/ORGNR]=NAME or
        /// KOMMUNE//ORGNR=NAME, registered with the site as a stick's token registers its
        /// schools; repeat for each. Batches naming any other school are refused.
        #[arg(long = "school", value_name = "SCHOOL")]
        schools: Vec<SiteSchool>,
    },
    /// The schools each site is registered with: which schools a site's devices may send
    /// records of, and what the web interface names and scopes the site by. Each change is
    /// written to the audit log first, as `cli:<login name>`.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Retention (docs/PRIVACY.md): `serve` runs it every six hours; `retention run` runs it
    /// once, for cron or after changing `[privacy]`.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// One pupil's data by national id (docs/PRIVACY.md, "A pupil's data"): the access
    /// export as JSON, erasure with a tombstone per site, and the tombstones. The national id
    /// is never printed or audited in clear.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// The operator API's clients (`admin_listen`): each script or tool that calls it gets
    /// a named bearer token, and its changes are audited as `api:<name>`. Making and revoking
    /// a token is written to the audit log as `cli:<login name>`.
    #[command(subcommand)]
    OperatorToken(OperatorTokenCommand),
    /// The keys of sealing at rest: the key-encryption key (KEK, `[privacy] key_file`) and
    /// the data keys it wraps in the database. Every change is written to the audit log.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create an account for the operator web interface. The password, at least 12
    /// characters, is asked for without echo on a terminal, or read from the first line of
    /// stdin otherwise (scripts); it stays out of the shell history and the process list, and
    /// only its argon2id hash is stored.
    AddUser {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The name the operator signs in with.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// What the account may see and do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The kommunenummer of a municipality account (four digits).
        #[arg(long, value_name = "NUMBER")]
        kommune: Option<String>,
    },
    /// List the operator accounts: name, role, kommune, created, and whether disabled.
    ListUsers {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator account: it can no longer sign in, and its open sessions end at
    /// once. The account and its audit trail stay; `reset-password` enables it again.
    DisableUser {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The account's name.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Set a new password for an operator account (enabling a disabled one) and end its open
    /// sessions. The password, at least 12 characters, is read as for `add-user`.
    ResetPassword {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The account's name.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Writes the man pages and shell completions into a folder (the package runs this).
    #[command(hide = true)]
    Manual {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// What `skolebro-central retention` does.
#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Purge once what `[privacy]` no longer keeps (closed record versions, records that
    /// left, audit lines), in bounded transactions; safe while `serve` runs, and a second
    /// run purges nothing new. Prints what went as one JSON line.
    Run {
        /// The configuration file, for the store and the `[privacy]` policy.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// What `skolebro-central site` does.
#[derive(Debug, Subcommand)]
pub(crate) enum SiteCommand {
    /// Register schools with a site (a site made before sticks carried schools, or a school
    /// the site takes on). A school another site holds is refused: that is a move.
    Register {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The site id.
        #[arg(long, value_name = "ID")]
        site: String,
        /// KOMMUNE/SKOLENUMMER[/ORGNR]=NAME or KOMMUNE//ORGNR=NAME; repeat for each.
        #[arg(long = "school", value_name = "SCHOOL", required = true)]
        schools: Vec<SiteSchool>,
    },
    /// Move a registered school to another site: the old site's batches naming it are
    /// refused from now on, the new site's accepted.
    Move {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The school by its numbers, with the name it is to carry:
        /// KOMMUNE/SKOLENUMMER[/ORGNR]=NAME or KOMMUNE//ORGNR=NAME.
        #[arg(long, value_name = "SCHOOL")]
        school: SiteSchool,
        /// The site it moves to.
        #[arg(long, value_name = "ID")]
        to: String,
    },
    /// List every site's registered schools.
    List {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Write a leaving site's data in open formats into a new folder: its current roster as
    /// OneRoster 1.1 CSV (`oneroster/`) and as the elevliste, every version central holds
    /// (`history.jsonl`), and `manifest.json` with each file's SHA-256. The files hold
    /// personal data and are written readable by their owner only.
    Export {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The site id.
        #[arg(value_name = "SITE")]
        site: String,
        /// The folder to write (created; must not hold an export already).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Remove a site from central: every record version, its registered schools,
    /// transfers and handle secret; its devices and unused enrollment tokens are revoked.
    /// Asks for the site id to be typed to confirm (or `--yes`); audited with the reason.
    Purge {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The site id.
        #[arg(value_name = "SITE")]
        site: String,
        /// Why (the agreement ending, the school closing): kept in the audit log.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Do not ask: the command line is the confirmation (scripts).
        #[arg(long)]
        yes: bool,
    },
}

/// What `skolebro-central operator-token` does.
#[derive(Debug, Subcommand)]
pub(crate) enum OperatorTokenCommand {
    /// Make a token for a client and print it once, alone on stdout (redirect it into the
    /// client's token file); central keeps only its SHA-256. A revoked client's name may be
    /// given a new token; a client with a good token must be revoked first.
    Create {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The client's name: 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' or '-'.
        name: String,
    },
    /// List the clients: name, created, and when revoked (or `active`).
    List {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Revoke a client's token: every request with it is refused (401) from now on.
    Revoke {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The client's name.
        name: String,
    },
}

/// Runs one command to completion.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        CliCommand::Serve { config } => serve(config).await,
        CliCommand::Manual { out } => {
            for path in skolebro_provisioning::manual::write(Cli::command(), &out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        CliCommand::RegisterDevice {
            config,
            device,
            site,
            verifying_key,
            site_secret,
            schools,
        } => {
            let keys = (verifying_key.as_str(), site_secret.as_str());
            register_device(config, &device, &site, keys, &schools).await
        }
        CliCommand::Site(command) => site(command).await,
        CliCommand::Retention(RetentionCommand::Run { config }) => retention_run(config).await,
        CliCommand::Subject(command) => subject::subject_command(command).await,
        CliCommand::OperatorToken(command) => operator_token(command).await,
        CliCommand::Keys(command) => keys::keys(command).await,
        CliCommand::AddUser {
            config,
            name,
            role,
            kommune,
        } => add_user(config, &name, role.role(), kommune.as_deref()).await,
        CliCommand::ListUsers { config, json } => list_users(config, json).await,
        CliCommand::DisableUser { config, name } => disable_user(config, &name).await,
        CliCommand::ResetPassword { config, name } => reset_password(config, &name).await,
    }
}

async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let config = CentralConfig::load(&config)?;
    let parts = config.server_parts().await?;
    let store = Arc::clone(&parts.store);
    let running = skolebro_central::serve(parts).await?;
    // Follows a records key rotated by another process (`keys rotate-dek`, another central)
    // and reseals rows left under older keys, meanwhile.
    let follower = config.privacy.kek()?.map(|kek| {
        let pause = std::time::Duration::from_millis(50);
        sealing::spawn_follower(Arc::clone(&store), kek, config.privacy.seal_scope(), pause)
    });
    let purge = access_log::spawn_purge(Arc::clone(&store), config.privacy.access_log_retention());
    let retention = retention::spawn(Arc::clone(&store), config.privacy.retention_policy()?);
    let systemd = service::spawn(&running, store);
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        match shutdown_signal().await {
            Ok(signal) => tracing::info!(signal, "shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
        }
        if let Some(systemd) = systemd {
            systemd.stopping();
        }
        handle.shutdown();
    });
    running.stopped().await;
    purge.abort();
    retention.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    Ok(())
}

async fn retention_run(config: PathBuf) -> anyhow::Result<()> {
    let config = CentralConfig::load(&config)?;
    let policy = config.privacy.retention_policy()?;
    let store = config.open_store().await?;
    let run = retention::run(store.as_ref(), &policy, &Timestamp::now).await?;
    println!(
        "{}",
        serde_json::json!({
            "started": run.started.to_string(),
            "finished": run.finished.to_string(),
            "purged": {
                "versions": run.versions,
                "departed": run.departed,
                "audit": run.audit,
            },
        })
    );
    Ok(())
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C), naming which.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

async fn register_device(
    config: PathBuf,
    device: &str,
    site: &str,
    (verifying_key, site_secret): (&str, &str),
    schools: &[SiteSchool],
) -> anyhow::Result<()> {
    let device = DeviceId::new(device).context("--device")?;
    let site = SiteId::new(site).context("--site")?;
    let verifying_key = DeviceVerifyingKey::from_bytes(hex32(verifying_key, "--verifying-key")?)
        .context("--verifying-key is not a usable Ed25519 key")?;
    let site_secret = SiteSecret::from_bytes(hex32(site_secret, "--site-secret")?);
    let config = CentralConfig::load(&config)?;
    let store = config.open_store().await?;
    if !schools.is_empty() {
        sites::register_schools(store.as_ref(), &sites::cli_actor(), &site, schools).await?;
    }
    store.set_site_secret(&site, &site_secret).await?;
    store
        .register_device(&device, &site, &verifying_key)
        .await?;
    println!("registered device {device} for site {site}");
    Ok(())
}

async fn site(command: SiteCommand) -> anyhow::Result<()> {
    match command {
        SiteCommand::Register {
            config,
            site,
            schools,
        } => {
            let site = SiteId::new(site).context("--site")?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            sites::register_schools(store.as_ref(), &sites::cli_actor(), &site, &schools).await?;
            for school in &schools {
                println!("registered {school} with site {site}");
            }
        }
        SiteCommand::Move { config, school, to } => {
            let to = SiteId::new(to).context("--to")?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            let from =
                sites::move_school(store.as_ref(), &sites::cli_actor(), &school, &to).await?;
            let from: Vec<String> = from.iter().map(ToString::to_string).collect();
            println!("moved {school} from site {} to site {to}", from.join(", "));
        }
        SiteCommand::List { config } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            for (site, school) in store.registered_schools().await? {
                println!("{site}\t{school}");
            }
        }
        SiteCommand::Export { config, site, out } => {
            let site = SiteId::new(site).context("SITE")?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            let export = site_exit::export(store.as_ref(), &site, Timestamp::now()).await?;
            export
                .write_to(&out)
                .with_context(|| format!("writing the export to {}", out.display()))?;
            audit_cli(
                store.as_ref(),
                "site_export",
                site.as_str(),
                &format!("{} files, {} versions", export.files.len(), export.versions),
            )
            .await?;
            println!(
                "exported site {site} to {}: {} files, {} record versions",
                out.display(),
                export.files.len() + 1,
                export.versions
            );
        }
        SiteCommand::Purge {
            config,
            site,
            reason,
            yes,
        } => {
            let site = SiteId::new(site).context("SITE")?;
            if reason.trim().is_empty() {
                return Err(NotConfirmed("--reason must say why".to_owned()).into());
            }
            let store = CentralConfig::load(&config)?.open_store().await?;
            if !yes {
                eprint!(
                    "This deletes every record of site {site} and revokes its devices. \
                     Type the site id to confirm: "
                );
                let mut typed = String::new();
                std::io::stdin()
                    .read_line(&mut typed)
                    .context("reading the confirmation")?;
                if typed.trim() != site.as_str() {
                    return Err(NotConfirmed(format!(
                        "the confirmation did not match {site}; nothing was changed"
                    ))
                    .into());
                }
            }
            let purged =
                site_exit::purge(store.as_ref(), &site, &sites::cli_actor(), reason.trim()).await?;
            println!(
                "purged site {site}: {} record versions, {} devices and {} enrollment tokens \
                 revoked, {} schools and {} transfers removed",
                purged.records,
                purged.forgotten.devices_revoked,
                purged.forgotten.tokens_revoked,
                purged.forgotten.schools,
                purged.forgotten.transfers
            );
        }
    }
    Ok(())
}

/// `site purge` was not confirmed, or lacked its reason: nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotConfirmed(String);

async fn operator_token(command: OperatorTokenCommand) -> anyhow::Result<()> {
    match command {
        OperatorTokenCommand::Create { config, name } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            let token = operator_auth::create(store.as_ref(), &sites::cli_actor(), &name).await?;
            println!("{}", token.reveal());
            eprintln!(
                "made the operator API token of {name}; it is shown only now. Send it as \
                 `Authorization: Bearer <token>` (skolebro-provision: SKOLEBRO_ADMIN_TOKEN \
                 or --admin-token-file)"
            );
        }
        OperatorTokenCommand::List { config } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            let clients = operator_auth::clients(store.as_ref()).await?;
            if clients.is_empty() {
                println!("no operator API clients");
            }
            for client in clients {
                let state = match client.revoked {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!("{}\t{}\t{state}", client.name, client.created);
            }
        }
        OperatorTokenCommand::Revoke { config, name } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            operator_auth::revoke(store.as_ref(), &sites::cli_actor(), &name).await?;
            println!("revoked the operator API token of {name}");
        }
    }
    Ok(())
}

fn hex32(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).with_context(|| format!("{what} is not hex"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("{what} must be 32 bytes (64 hex characters)"))
}

async fn add_user(
    config: PathBuf,
    name: &str,
    role: Role,
    kommune: Option<&str>,
) -> anyhow::Result<()> {
    // The config first: a typo in its path should not cost the operator a typed password.
    let config = CentralConfig::load(&config)?;
    let password = password::read(&format!("Password for {name}"))?;
    let user = accounts::new_user(name, role.as_str(), kommune, &password)?;
    let store = config.open_store().await?;
    store.create_user(&user).await?;
    println!("created {} account {name}", user.role.as_str());
    Ok(())
}

async fn list_users(config: PathBuf, json: bool) -> anyhow::Result<()> {
    let store = CentralConfig::load(&config)?.open_store().await?;
    let users = store.users().await?;
    let disabled = |user: &UiUser| user.password_hash == accounts::DISABLED_HASH;
    if json {
        let users: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "name": user.name,
                    "role": user.role.as_str(),
                    "kommune": user.kommune,
                    "created_unix_ms": user.created.0,
                    "disabled": disabled(user),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(users));
        return Ok(());
    }
    if users.is_empty() {
        println!("no accounts");
    }
    for user in &users {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            user.name,
            user.role.as_str(),
            user.kommune.as_deref().unwrap_or("-"),
            user.created,
            if disabled(user) { "disabled" } else { "active" }
        );
    }
    Ok(())
}

async fn disable_user(config: PathBuf, name: &str) -> anyhow::Result<()> {
    let store = CentralConfig::load(&config)?.open_store().await?;
    audit_cli(
        store.as_ref(),
        "disable_user",
        name,
        "disabled; its sessions ended",
    )
    .await?;
    if !store
        .replace_password_hash(name, accounts::DISABLED_HASH)
        .await?
    {
        return Err(NoSuchAccount(name.to_owned()).into());
    }
    println!("disabled account {name}; its sessions are ended");
    Ok(())
}

async fn reset_password(config: PathBuf, name: &str) -> anyhow::Result<()> {
    let store = CentralConfig::load(&config)?.open_store().await?;
    if store.user(name).await?.is_none() {
        return Err(NoSuchAccount(name.to_owned()).into());
    }
    let password = password::read(&format!("New password for {name}"))?;
    accounts::check_password(&password)?;
    let hash = accounts::hash_password(&password)?;
    audit_cli(
        store.as_ref(),
        "reset_password",
        name,
        "password reset; its sessions ended",
    )
    .await?;
    if !store.replace_password_hash(name, &hash).await? {
        return Err(NoSuchAccount(name.to_owned()).into());
    }
    println!("new password set for {name}; its sessions are ended");
    Ok(())
}

/// `disable-user` or `reset-password` named an account that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("no operator account is named {0:?}")]
pub(crate) struct NoSuchAccount(String);
