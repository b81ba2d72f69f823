//! `skolebro-provision`: the operations CLI. `init` makes the platform's keys, `stick` writes a
//! signed config stick for a school, `release` signs an agent build for remote update,
//! `rotate-key` rotates the stick or the release key, `list`
//! and `revoke` manage tokens and devices through central's admin API. The work lives in the library; this file parses arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use skolebro_protocol::rotation::KeyRole;
use skolebro_provisioning::admin::{self, AdminClient, AdminToken, DeviceEntry, TokenEntry};
use skolebro_provisioning::keys::KeyFolder;
use skolebro_provisioning::manual;
use skolebro_provisioning::ops::{self, Exit};
use skolebro_provisioning::pull_share::{pull_share, PullFlags};
use skolebro_provisioning::release::{self, ReleaseRequest};
use skolebro_provisioning::rotate;
use skolebro_provisioning::stick::{self, StickRequest};
use skolebro_provisioning::ProvisionError;

/// Operations tooling for skolebro: platform keys, config sticks, enrollment tokens and
/// devices.
#[derive(Debug, Parser)]
#[command(name = "skolebro-provision", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Make the platform's keys in a new folder: device CA, central's CA and server
    /// certificate, stick-signing key, central's sealing key pair, release-signing key, and a
    /// central.toml using them. Refuses to overwrite existing keys.
    Init {
        /// The folder for the keys (created, mode 0700).
        #[arg(long, value_name = "KEYS")]
        dir: PathBuf,
        /// A DNS name or IP address for central's server certificate; repeat for several.
        /// Default: localhost and 127.0.0.1.
        #[arg(long = "server-name", value_name = "NAME")]
        server_names: Vec<String>,
    },
    /// Write a signed config stick for one school. The stick's one-time token is registered
    /// with central first; nothing is written unless central accepted it.
    Stick {
        /// The folder `init` made.
        #[arg(long, value_name = "KEYS")]
        keys: PathBuf,
        /// Where the stick is mounted; the bundle goes to SKOLEBRO/BUNDLE.SKB under it.
        #[arg(long, value_name = "STICK_ROOT")]
        out: PathBuf,
        /// The county number, 2 digits (e.g. 46).
        #[arg(long)]
        fylke: String,
        /// The municipality number, 4 digits starting with the fylke (e.g. 4601).
        #[arg(long)]
        kommune: String,
        /// The school's number (digits).
        #[arg(long)]
        skolenummer: String,
        /// The school's name, for people reading lists.
        #[arg(long)]
        name: String,
        /// Central's device address, https://host:port.
        #[arg(long, value_name = "URL")]
        central_url: String,
        /// Central's admin API.
        #[arg(long, value_name = "URL", default_value = admin::DEFAULT_ADMIN_URL)]
        admin_url: String,
        /// A file holding the operator API token (`skolebro-central operator-token create`);
        /// without it the token is read from SKOLEBRO_ADMIN_TOKEN.
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
        /// How many days the token stays valid.
        #[arg(long, value_name = "DAYS", default_value_t = stick::DEFAULT_EXPIRES_DAYS)]
        expires_days: u32,
        /// Agent settings for the school, in agent.toml syntax, without the central and
        /// identity tables or state_dir (enrollment and the device set those).
        #[arg(long, value_name = "FILE.toml")]
        settings: Option<PathBuf>,
        /// The export drop folder on the Pi (sets drop_dir in the settings).
        #[arg(long, value_name = "PATH")]
        drop_dir: Option<String>,
        /// Another school the site's export names besides the one above, as
        /// KOMMUNE/SKOLENUMMER[/ORGNR]=NAME or KOMMUNE//ORGNR=NAME; repeat for each. Central
        /// and the agent refuse records of any school not registered here.
        #[arg(long = "school", value_name = "SCHOOL")]
        schools: Vec<skolebro_protocol::SiteSchool>,
        /// Turns the Pi's SMB drop share on with the password on this file's first line; the
        /// stick carries only Samba's NT hash of it. Without it the share is left alone.
        #[arg(long, value_name = "PATH")]
        share_password_file: Option<PathBuf>,
        /// The drop share's account: the name its writer signs in with, any name of letters,
        /// digits, `-`, `_` and `.`; the Pi maps it onto its `skolebro-drop` user.
        #[arg(long, value_name = "NAME", default_value = "skolebro-drop")]
        share_account: String,
        /// The largest file, in MiB, the agent takes from the drop share.
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        share_size_mib: u32,
        /// The share the agent pulls exports from (all or none of the --pull-* flags).
        #[command(flatten)]
        pull: Box<PullFlags>,
    },
    /// Sign an agent build for remote update: writes OUT/<id>.bin (a copy of the binary) and
    /// OUT/<id>.skm (the manifest signed with release.key), where the id is
    /// <version>-<target>. With --admin-url, registers both with central; the release is
    /// offered to no device until its rollout is set.
    Release {
        /// The folder `init` made.
        #[arg(long, value_name = "KEYS")]
        keys: PathBuf,
        /// The agent binary to release.
        #[arg(long, value_name = "PATH")]
        binary: PathBuf,
        /// The version the binary reports, MAJOR.MINOR.PATCH; a binary whose own `--version`
        /// says otherwise is refused (one that cannot run here, built for another target,
        /// is not checked).
        #[arg(long, value_name = "X.Y.Z")]
        version: String,
        /// The target triple it was built for (e.g. aarch64-unknown-linux-gnu).
        #[arg(long, value_name = "TRIPLE")]
        target: String,
        /// Let agents on exactly the --replaces version install this older one, to undo a
        /// bad release (the manifest then expires within 72 h).
        #[arg(long, requires = "replaces")]
        allow_downgrade: bool,
        /// The bad version a downgrade replaces (with --allow-downgrade).
        #[arg(long, value_name = "X.Y.Z", requires = "allow_downgrade")]
        replaces: Option<String>,
        /// How long agents accept the manifest: 30d, 72h, 90m or seconds [default: 30d, a
        /// downgrade 24h].
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// The lowest version agents may ever install again (kept on every device that
        /// sees this manifest).
        #[arg(long, value_name = "X.Y.Z")]
        floor: Option<String>,
        /// The folder for the artifact and the manifest (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Central's admin API, to register the release with.
        #[arg(long, value_name = "URL")]
        admin_url: Option<String>,
        /// A file holding the operator API token (`skolebro-central operator-token create`);
        /// without it the token is read from SKOLEBRO_ADMIN_TOKEN.
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
    },
    /// Rotate the stick key or the release key: make a new key pair, sign the rotation with
    /// the current key (and root.key for the release key), publish it to central, which
    /// hands it to every device with the next heartbeat, and only then put the new key in
    /// place (the old one is kept as <role>-<n>.key.retired).
    RotateKey {
        /// Which key.
        role: RotateWhat,
        /// The folder `init` made.
        #[arg(long, value_name = "KEYS")]
        keys: PathBuf,
        /// Central's admin API.
        #[arg(long, value_name = "URL", default_value = admin::DEFAULT_ADMIN_URL)]
        admin_url: String,
        /// A file holding the operator API token (`skolebro-central operator-token create`);
        /// without it the token is read from SKOLEBRO_ADMIN_TOKEN.
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
    },
    /// List enrollment tokens or devices known to central.
    List {
        /// What to list.
        what: ListWhat,
        /// Central's admin API.
        #[arg(long, value_name = "URL", default_value = admin::DEFAULT_ADMIN_URL)]
        admin_url: String,
        /// A file holding the operator API token (`skolebro-central operator-token create`);
        /// without it the token is read from SKOLEBRO_ADMIN_TOKEN.
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an enrollment token (by its id) or a device, at central.
    Revoke {
        /// What to revoke.
        what: RevokeWhat,
        /// The token id (16 hex characters, as `list tokens` shows) or the device id.
        id: String,
        /// Central's admin API.
        #[arg(long, value_name = "URL", default_value = admin::DEFAULT_ADMIN_URL)]
        admin_url: String,
        /// A file holding the operator API token (`skolebro-central operator-token create`);
        /// without it the token is read from SKOLEBRO_ADMIN_TOKEN.
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
    },
    /// Writes the man pages and shell completions into a folder (the packages run this).
    #[command(hide = true)]
    Manual {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListWhat {
    Tokens,
    Devices,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RotateWhat {
    Stick,
    Release,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RevokeWhat {
    Token,
    Device,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            ops::report("skolebro-provision", error.as_ref());
            exit_kind(&error).into()
        }
    }
}

/// The exit code of a failure, from the table the three binaries share (packaging/README.md,
/// "Exit codes"): a bad option is a usage error, a key folder that cannot be used a config
/// error, central's admin API out of reach unavailable, anything else (a refusal) a failure.
fn exit_kind(error: &anyhow::Error) -> Exit {
    let kind = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ProvisionError>());
    match kind {
        Some(
            ProvisionError::InvalidField { .. }
            | ProvisionError::Settings { .. }
            | ProvisionError::AdminToken(_),
        ) => Exit::Usage,
        Some(
            ProvisionError::KeyFile { .. }
            | ProvisionError::KeyMismatch { .. }
            | ProvisionError::Pki(_),
        ) => Exit::Config,
        Some(ProvisionError::AdminUnreachable { .. }) => Exit::Unavailable,
        Some(ProvisionError::StickNotWritten { error, .. })
            if matches!(**error, ProvisionError::AdminUnreachable { .. }) =>
        {
            Exit::Unavailable
        }
        _ => Exit::Failure,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Manual { out } => {
            for path in manual::write(Cli::command(), &out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Init { dir, server_names } => init(dir, &server_names),
        Command::Stick {
            keys,
            out,
            fylke,
            kommune,
            skolenummer,
            name,
            central_url,
            admin_url,
            admin_token_file,
            expires_days,
            settings,
            drop_dir,
            schools,
            share_password_file,
            share_account,
            share_size_mib,
            pull,
        } => {
            let site = stick::site_info(&fylke, &kommune, &skolenummer, &name)?;
            let request = StickRequest {
                schools: stick::site_schools(&site, schools)?,
                site,
                central_url: stick::central_url(&central_url)?,
                expires_days,
                settings_toml: stick::agent_settings(settings.as_deref(), drop_dir.as_deref())?,
                drop_share: stick::drop_share(
                    share_password_file.as_deref(),
                    &share_account,
                    share_size_mib,
                )?,
                share_source: pull_share(&pull)?,
            };
            let token = AdminToken::locate(admin_token_file.as_deref())?;
            let admin = AdminClient::new(&admin_url, &token)?;
            let keys = KeyFolder::new(keys);
            let now = now_unix()?;
            let (body, path) =
                runtime()?.block_on(stick::provision(&keys, &request, &out, &admin, now))?;
            println!("wrote {}", path.display());
            println!("site      {} ({})", body.site_id, body.site.name);
            for school in &body.schools {
                println!("school    {school}");
            }
            println!("central   {}", body.central_url);
            if let Some(pull) = &body.share_source {
                let folder = pull.folder.trim_matches(['/', '\\']);
                println!(
                    "pulls     \\\\{}\\{}\\{folder} as {}, then {}",
                    pull.server, pull.share, pull.user, pull.after
                );
            }
            println!("token id  {}", body.token_id());
            println!(
                "expires   {} ({} days)",
                utc(body.token_expires_unix),
                expires_days
            );
            Ok(())
        }
        Command::RotateKey {
            role,
            keys,
            admin_url,
            admin_token_file,
        } => {
            let role = match role {
                RotateWhat::Stick => KeyRole::Stick,
                RotateWhat::Release => KeyRole::Release,
            };
            let admin = AdminClient::new(
                &admin_url,
                &AdminToken::locate(admin_token_file.as_deref())?,
            )?;
            let rotated =
                runtime()?.block_on(rotate::rotate(&KeyFolder::new(keys), role, &admin))?;
            println!(
                "rotated   {} key to sequence {}",
                rotated.role, rotated.sequence
            );
            println!("public    {}", rotated.public.display());
            println!("sha256    {}", rotated.fingerprint);
            println!(
                "statement {} (published to central)",
                rotated.statement.display()
            );
            Ok(())
        }
        Command::Release {
            keys,
            binary,
            version,
            target,
            allow_downgrade: _,
            replaces,
            expires_in,
            floor,
            out,
            admin_url,
            admin_token_file,
        } => {
            let mut request = ReleaseRequest::new(binary, &version, &target, replaces.as_deref())?;
            if let Some(text) = expires_in {
                request = request.expires_in(&text)?;
            }
            if let Some(text) = floor {
                request = request.with_floor(&text)?;
            }
            // Check the URL and the binary before anything is written.
            let admin = match admin_url {
                Some(url) => Some(AdminClient::new(
                    &url,
                    &AdminToken::locate(admin_token_file.as_deref())?,
                )?),
                None => None,
            };
            match release::check_binary_version(&request.binary, &request.version)? {
                release::VersionCheck::Matches => {}
                release::VersionCheck::Unchecked(why) => eprintln!(
                    "warning: {why}; its version is not checked, so make sure it reports {}",
                    request.version
                ),
            }
            let built = release::build(&KeyFolder::new(keys), &request, &out, now_unix()?)?;
            println!("wrote {}", built.artifact_path.display());
            println!("wrote {}", built.manifest_path.display());
            println!("release   {}", built.manifest.id());
            println!("size      {} bytes", built.manifest.size);
            println!("sha256    {}", hex::encode(built.manifest.sha256));
            println!(
                "expires   {} (Unix {})",
                skolebro_protocol::civil_time::UtcDateTime::from_unix_millis(
                    i64::try_from(built.manifest.expires_unix.saturating_mul(1000))
                        .unwrap_or(i64::MAX)
                ),
                built.manifest.expires_unix
            );
            if let Some(replaces) = built.manifest.replaces {
                println!("downgrade allowed from {replaces} only");
            }
            if let Some(floor) = built.manifest.floor {
                println!("floor     {floor}");
            }
            if let Some(admin) = admin {
                runtime()?.block_on(release::register(&admin, &built))?;
                println!(
                    "registered with central; set its rollout with POST /admin/releases/{}/rollout",
                    built.manifest.id()
                );
            }
            Ok(())
        }
        Command::List {
            what,
            admin_url,
            admin_token_file,
            json,
        } => {
            let token = AdminToken::locate(admin_token_file.as_deref())?;
            let admin = AdminClient::new(&admin_url, &token)?;
            let runtime = runtime()?;
            match what {
                ListWhat::Tokens => {
                    let tokens = runtime.block_on(admin.tokens())?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&tokens)?);
                    } else {
                        print_tokens(&tokens, now_unix()?);
                    }
                }
                ListWhat::Devices => {
                    let devices = runtime.block_on(admin.devices())?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&devices)?);
                    } else {
                        print_devices(&devices);
                    }
                }
            }
            Ok(())
        }
        Command::Revoke {
            what,
            id,
            admin_url,
            admin_token_file,
        } => {
            let token = AdminToken::locate(admin_token_file.as_deref())?;
            let admin = AdminClient::new(&admin_url, &token)?;
            match what {
                RevokeWhat::Token => runtime()?.block_on(admin.revoke_token(&id))?,
                RevokeWhat::Device => runtime()?.block_on(admin.revoke_device(&id))?,
            }
            println!("revoked {} {id}", what_word(what));
            Ok(())
        }
    }
}

fn init(dir: PathBuf, server_names: &[String]) -> anyhow::Result<()> {
    let (folder, fingerprints) = KeyFolder::init(&dir, server_names)?;
    println!("platform keys written to {}", folder.dir().display());
    let width = fingerprints
        .iter()
        .map(|fp| fp.what.len())
        .max()
        .unwrap_or(0);
    for fp in &fingerprints {
        println!(
            "  {:width$}  sha256:{}  {}, {}",
            fp.what, fp.sha256, fp.files[0], fp.files[1]
        );
    }
    println!(
        "install {} and {} with every agent; keep the *.key files offline except those central needs",
        KeyFolder::STICK_PUB,
        KeyFolder::RELEASE_PUB
    );
    println!(
        "run central with: skolebro-central serve --config {}",
        folder.path(KeyFolder::CENTRAL_CONFIG).display()
    );
    Ok(())
}

fn print_tokens(tokens: &[TokenEntry], now: u64) {
    if tokens.is_empty() {
        println!("no tokens");
        return;
    }
    let rows = tokens
        .iter()
        .map(|token| {
            let state = if token.revoked {
                "revoked".to_owned()
            } else if let Some(device) = &token.used_by {
                match token.used_unix {
                    Some(at) => format!("used by {device} at {}", utc(at)),
                    None => format!("used by {device}"),
                }
            } else if now >= token.expires_unix {
                "expired".to_owned()
            } else {
                "unused".to_owned()
            };
            vec![
                token.id.clone(),
                token.site.clone(),
                token.site_name.clone(),
                utc(token.expires_unix),
                state,
            ]
        })
        .collect();
    print_table(&["TOKEN ID", "SITE", "SCHOOL", "EXPIRES", "STATE"], rows);
}

fn print_devices(devices: &[DeviceEntry]) {
    if devices.is_empty() {
        println!("no devices");
        return;
    }
    let rows = devices
        .iter()
        .map(|device| {
            let state = match device.revoked {
                Some(true) => "revoked",
                Some(false) => "active",
                None => "not registered",
            };
            let heard = device
                .last_heartbeat_unix_ms
                .map_or_else(|| "never".to_owned(), |ms| utc(ms / 1000));
            vec![
                device.device.clone(),
                device.site.clone().unwrap_or_else(|| "-".to_owned()),
                state.to_owned(),
                heard,
            ]
        })
        .collect();
    print_table(&["DEVICE", "SITE", "STATE", "LAST HEARD"], rows);
}

fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn what_word(what: RevokeWhat) -> &'static str {
    match what {
        RevokeWhat::Token => "token",
        RevokeWhat::Device => "device",
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`, or the number if it is out of range.
fn utc(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(
            || unix.to_string(),
            |t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()),
        )
}

fn now_unix() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}
