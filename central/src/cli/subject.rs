//! `skolebro-central subject`: one pupil's data by national id (`skolebro_central::subject`):
//! the access export as JSON, erasure with its tombstones, the tombstones' list and clearing
//! one. The national id is parsed (control digits checked) and never printed or audited in
//! clear: every line names it masked.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use skolebro_central::store::Timestamp;
use skolebro_central::{sites, subject, CentralConfig};
use skolebro_protocol::{NationalId, SiteId};

use super::audit_line::audit_cli;
use super::config_file::{CONFIG_ENV, DEFAULT_CONFIG};

/// A subject command that was not confirmed, lacked its reason, or found no tombstone to
/// clear: nothing was changed (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotConfirmed(String);

/// `skolebro-central subject …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SubjectCommand {
    /// Everything central holds of one pupil, as JSON: every version of the pupil's student
    /// and enrollment records with their sites, the consumer clients whose scope covers the
    /// pupil's schools with their newest logged read, and earlier erasures. Audited.
    Export {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The pupil's national id (fødselsnummer, D- or H-number).
        #[arg(long, value_name = "ID")]
        national_id: String,
        /// Write the JSON to this new file (0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Delete every version of one pupil's records at every site and leave a tombstone per
    /// site, so a later batch carrying the pupil is held back, not stored. Asks for the
    /// national id to be typed again (or `--yes`); audited with the reason.
    Erase {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The pupil's national id.
        #[arg(long, value_name = "ID")]
        national_id: String,
        /// Why (the pupil's request, the case number): kept in the audit log and on the
        /// tombstone.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Do not ask: the command line is the confirmation (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// The tombstones erasures left: site, when, by whom, why, and how many records later
    /// batches carried that were held back.
    Tombstones {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Remove a pupil's tombstone at one site, so the school's next export that carries the
    /// pupil stores the pupil again (an erasure made in error, a pupil who came back).
    /// Audited with the reason.
    Clear {
        /// The configuration file, for the store it names.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The pupil's national id.
        #[arg(long, value_name = "ID")]
        national_id: String,
        /// The site whose tombstone goes.
        #[arg(long, value_name = "ID")]
        site: String,
        /// Why: kept in the audit log.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Parses a national id from the command line; the error says what is wrong, never the id.
fn national_id(text: &str) -> anyhow::Result<NationalId> {
    NationalId::parse(text).context("--national-id")
}

fn reason(text: &str) -> Result<&str, NotConfirmed> {
    let reason = text.trim();
    if reason.is_empty() {
        return Err(NotConfirmed("--reason must say why".to_owned()));
    }
    Ok(reason)
}

/// Writes `bytes` to a new file readable by its owner only: it holds personal data.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub(crate) async fn subject_command(command: SubjectCommand) -> anyhow::Result<()> {
    match command {
        SubjectCommand::Export {
            config,
            national_id: id,
            out,
        } => {
            let id = national_id(&id)?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            let export = subject::export(store.as_ref(), &id, None, Timestamp::now()).await?;
            let summary = format!(
                "{} record versions at {} site(s), {} consumer client(s)",
                export.versions(),
                export.sites().len(),
                export.consumers.len()
            );
            audit_cli(store.as_ref(), "subject_export", &id.masked(), &summary).await?;
            let mut json = serde_json::to_vec_pretty(&export.to_json())?;
            json.push(b'\n');
            match out {
                Some(out) => {
                    write_private(&out, &json)
                        .with_context(|| format!("writing the export to {}", out.display()))?;
                    eprintln!("exported {}: {summary} to {}", id.masked(), out.display());
                }
                None => std::io::stdout().write_all(&json)?,
            }
        }
        SubjectCommand::Erase {
            config,
            national_id: id,
            reason: why,
            yes,
        } => {
            let id = national_id(&id)?;
            let why = reason(&why)?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            if !yes {
                eprint!(
                    "This deletes every record of {} at every site. Type the national id \
                     again to confirm: ",
                    id.masked()
                );
                let mut typed = String::new();
                std::io::stdin()
                    .read_line(&mut typed)
                    .context("reading the confirmation")?;
                if NationalId::parse(typed.trim()).ok().as_ref() != Some(&id) {
                    return Err(NotConfirmed(
                        "the confirmation did not match; nothing was changed".to_owned(),
                    )
                    .into());
                }
            }
            let erased = subject::erase(
                store.as_ref(),
                &id,
                None,
                &sites::cli_actor(),
                why,
                Timestamp::now(),
            )
            .await?;
            let sites: Vec<&str> = erased.sites.iter().map(SiteId::as_str).collect();
            println!(
                "erased {}: {} record versions at {} site(s) ({}); a tombstone holds back \
                 later batches carrying the pupil",
                id.masked(),
                erased.versions,
                sites.len(),
                sites.join(", ")
            );
        }
        SubjectCommand::Tombstones { config } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            for tombstone in store.tombstones().await? {
                println!("{}", subject::tombstone_json(&tombstone));
            }
        }
        SubjectCommand::Clear {
            config,
            national_id: id,
            site,
            reason: why,
        } => {
            let id = national_id(&id)?;
            let site = SiteId::new(site).context("--site")?;
            let why = reason(&why)?;
            let store = CentralConfig::load(&config)?.open_store().await?;
            let hash = store.subject_hash(id.as_str());
            let cleared =
                subject::clear_tombstone(store.as_ref(), &site, &hash, &sites::cli_actor(), why)
                    .await?;
            if !cleared {
                return Err(NotConfirmed(format!(
                    "{} has no tombstone at site {site}; nothing was changed",
                    id.masked()
                ))
                .into());
            }
            println!("cleared the tombstone of {} at site {site}", id.masked());
        }
    }
    Ok(())
}
