//! `skolebro-central keys`: the keys of sealing at rest (`skolebro_central::seal`): a new
//! key-encryption key, their state, rotating the KEK (rewrap only) or the records key (reseal
//! in batches), resuming a reseal and retiring an old key. Every change is audited.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use skolebro_central::seal::Kek;
use skolebro_central::store::{sealing, AuditEntry, Timestamp};
use skolebro_central::{sites, CentralConfig};

use super::config_file::{CONFIG_ENV, DEFAULT_CONFIG};

/// `skolebro-central keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Write a new random key-encryption key to a new file (0600): for a new central or a
    /// KEK rotation. Refuses to overwrite a file.
    NewKek {
        /// Where to write it.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// The data keys (id, purpose, whether active, which KEK wraps them) and how many rows
    /// are not yet under the active records key.
    Status {
        /// The configuration file, for the store and the KEK.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Rewrap every data key under a new KEK; no record is touched. Then point
    /// `[privacy] key_file` at the new file (the old one no longer opens the database).
    RotateKek {
        /// The configuration file, naming the current KEK.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The new KEK's file (`keys new-kek`).
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Make a new records key and reseal every row under it in batches. It may run while
    /// central serves: every running `serve` notices the new key within seconds, seals new
    /// rows under it and reseals the rest in the background (so `--max-batches 0` leaves the
    /// whole reseal to them). An interrupted run loses nothing: `keys reseal` (or `serve`)
    /// resumes it.
    RotateDek {
        /// The configuration file, for the store and the KEK.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Rows per transaction.
        #[arg(long, default_value_t = sealing::RESEAL_BATCH)]
        batch: u32,
        /// Stop after this many batches (the rest is left for `keys reseal`).
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Resume resealing the rows not under the active records key.
    Reseal {
        /// The configuration file, for the store and the KEK.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Rows per transaction.
        #[arg(long, default_value_t = sealing::RESEAL_BATCH)]
        batch: u32,
        /// Stop after this many batches.
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Remove an old records key once no row is sealed under it (`keys status`: rows to
    /// reseal 0); refused while any row still is.
    Retire {
        /// The configuration file, for the store and the KEK.
        #[arg(long, value_name = "PATH", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The key's id, as `keys status` lists it.
        #[arg(long, value_name = "ID")]
        key_id: u32,
    },
}

pub(super) async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let audit = |action: &str, detail: String| AuditEntry {
        at: Timestamp::now(),
        actor: sites::cli_actor(),
        action: action.to_owned(),
        target: "seal_keys".to_owned(),
        detail,
    };
    match command {
        KeysCommand::NewKek { out } => {
            let kek = Kek::generate()?;
            kek.write_new(&out)?;
            println!("wrote key-encryption key {} to {}", kek.id(), out.display());
        }
        KeysCommand::Status { config } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            for key in store.seal_keys().await? {
                println!(
                    "{}\t{}\t{}\twrapped by KEK {}",
                    key.id,
                    key.purpose.name(),
                    if key.active { "active" } else { "-" },
                    key.kek
                );
            }
            println!("rows to reseal: {}", store.rows_to_reseal().await?);
        }
        KeysCommand::RotateKek {
            config,
            new_key_file,
        } => {
            let config = CentralConfig::load(&config)?;
            let old = config
                .privacy
                .kek()?
                .context("no [privacy] key_file or SKOLEBRO_CENTRAL_KEK to rotate from")?;
            let new = Kek::read_file(&new_key_file)?;
            let store = config.open_store().await?;
            let detail = format!("KEK {} -> {}", old.id(), new.id());
            store.append_audit(&audit("rotate_kek", detail)).await?;
            sealing::rotate_kek(store.as_ref(), &old, &new).await?;
            println!(
                "rewrapped the data keys under KEK {}; set [privacy] key_file to {}",
                new.id(),
                new_key_file.display()
            );
        }
        KeysCommand::RotateDek {
            config,
            batch,
            max_batches,
        } => {
            let config = CentralConfig::load(&config)?;
            let kek = config
                .privacy
                .kek()?
                .context("no [privacy] key_file or SKOLEBRO_CENTRAL_KEK")?;
            let store = config.open_store().await?;
            store
                .append_audit(&audit("rotate_dek", "new records key".to_owned()))
                .await?;
            let id = sealing::rotate_records_key(
                store.as_ref(),
                &kek,
                config.privacy.seal_scope(),
                Timestamp::now(),
            )
            .await?;
            let left = sealing::reseal(store.as_ref(), batch, max_batches).await?;
            println!("records key {id} active; rows left to reseal: {left}");
        }
        KeysCommand::Reseal {
            config,
            batch,
            max_batches,
        } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            let left = sealing::reseal(store.as_ref(), batch, max_batches).await?;
            println!("rows left to reseal: {left}");
        }
        KeysCommand::Retire { config, key_id } => {
            let store = CentralConfig::load(&config)?.open_store().await?;
            if !store.retire_seal_key(key_id).await? {
                anyhow::bail!("key {key_id} is active, unknown, or still seals rows");
            }
            store
                .append_audit(&audit("retire_dek", format!("records key {key_id}")))
                .await?;
            println!("retired records key {key_id}");
        }
    }
    Ok(())
}
