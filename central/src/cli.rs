//! The subcommands of `skolebro-central`. Each is a variant of [`CliCommand`] and a function
//! here; a new command adds both and one arm in [`run`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use skolebro_central::{access_log, sites, CentralConfig};
use skolebro_protocol::{DeviceId, DeviceVerifyingKey, SiteId, SiteSchool, SiteSecret};

/// The central platform of skolebro: receives sealed roster batches from the schools' agents
/// over mutual TLS and keeps every record with its history.
#[derive(Debug, Parser)]
#[command(name = "skolebro-central", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum CliCommand {
    /// Run the platform: the device listener (mutual TLS) and the operator listener, until
    /// SIGTERM or Ctrl-C.
    Serve {
        /// The configuration file (TOML); relative paths in it are relative to its folder.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Register a device for a site with its envelope-signing key, and set the site's
    /// handle secret, for a device set up by hand instead of enrolling with a config stick
    /// (tests, the demo's way).
    RegisterDevice {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH")]
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
    /// Create an account for the operator web interface. The password is read from the
    /// first line of stdin (so it stays out of the shell history and the process list) and
    /// only its argon2id hash is stored.
    AddUser {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// The name the operator signs in with.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// operations (every site), municipality (its kommune's schools) or read_only.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// The kommunenummer of a municipality account (four digits).
        #[arg(long, value_name = "NUMBER")]
        kommune: Option<String>,
    },
}

/// What `skolebro-central site` does.
#[derive(Debug, Subcommand)]
pub(crate) enum SiteCommand {
    /// Register schools with a site (a site made before sticks carried schools, or a school
    /// the site takes on). A school another site holds is refused: that is a move.
    Register {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH")]
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
        #[arg(long, value_name = "PATH")]
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
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
}

/// Runs one command to completion.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        CliCommand::Serve { config } => serve(config).await,
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
        CliCommand::AddUser {
            config,
            name,
            role,
            kommune,
        } => add_user(config, &name, &role, kommune.as_deref()).await,
    }
}

async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let config = CentralConfig::load(&config)?;
    let parts = config.server_parts().await?;
    let store = Arc::clone(&parts.store);
    let running = skolebro_central::serve(parts).await?;
    let purge = access_log::spawn_purge(store, config.privacy.access_log_retention());
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        match shutdown_signal().await {
            Ok(signal) => tracing::info!(signal, "shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
        }
        handle.shutdown();
    });
    running.stopped().await;
    purge.abort();
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
    role: &str,
    kommune: Option<&str>,
) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    let user = skolebro_central::ui::new_user(name, role, kommune, password)?;
    let config = CentralConfig::load(&config)?;
    let store = config.open_store().await?;
    store.create_user(&user).await?;
    println!("created {} account {name}", user.role.as_str());
    Ok(())
}
