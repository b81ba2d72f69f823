//! The agent's configuration file (`agent.toml`). Sticks write it during provisioning; school
//! IT never edits it by hand, so every field has a sensible default and unknown keys are
//! refused rather than silently ignored.
//!
//! The file serves two kinds of use. `check` and `diff` need only the reader, validation and
//! safety settings, so everything the daemon needs (`[central]`, `[identity]`) may be absent;
//! `run` calls [`AgentConfig::daemon`], which names the first missing key. Relative paths are
//! resolved against the folder of the config file, so a stick can carry a self-contained
//! config folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::outbox::OutboxConfig;
use crate::panel::PanelConfig;
use crate::reader::{ColumnProfile, Format, ReaderOptions};
use crate::safety::SafetyPolicy;
use crate::validate::ValidationOptions;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A setting `run` needs is absent; names it as written in `agent.toml`.
    #[error("agent.toml: `{0}` is required to run the daemon")]
    Missing(&'static str),
    /// A setting has a value the daemon cannot use.
    #[error("agent.toml: `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The settings the pipeline stages read.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Forces a format instead of detecting it.
    pub format: Option<Format>,
    pub validation: ValidationOptions,
    /// Extra elevliste header names per field, for SAS variants.
    pub columns: ColumnProfile,
    pub safety: SafetyPolicy,
    /// The front panel and hardware watchdog (`panel = "none"` or a `[panel]` table).
    pub panel: PanelConfig,
    /// Where the checkpoint, outbox and `status.json` live. Holds no personal data in clear.
    pub state_dir: PathBuf,
    /// The folder the SAS drops its export into; `<state_dir>/drop` when absent.
    pub drop_dir: Option<PathBuf>,
    /// What happens to an export file once it has been taken in.
    pub after_ingest: AfterIngest,
    /// The drop folder is rescanned this often even without file events, because inotify
    /// misses changes made over SMB/NFS by another host.
    pub rescan_seconds: u64,
    /// A file is complete once its size and mtime stayed the same this long (a file renamed
    /// into place counts as complete at once).
    pub settle_ms: u64,
    /// How often the agent reports its state to central and picks up commands.
    pub heartbeat_seconds: u64,
    /// Central's address and keys; required by `run`.
    pub central: Option<CentralConfig>,
    /// The device's identity from enrollment; required by `run`.
    pub identity: Option<IdentityConfig>,
    pub outbox: OutboxSettings,
    pub uplink: UplinkSettings,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            format: None,
            validation: ValidationOptions::default(),
            columns: ColumnProfile::default(),
            safety: SafetyPolicy::default(),
            panel: PanelConfig::default(),
            state_dir: PathBuf::from("/var/lib/skolebro"),
            drop_dir: None,
            after_ingest: AfterIngest::Delete,
            rescan_seconds: 30,
            settle_ms: 2000,
            heartbeat_seconds: 60,
            central: None,
            identity: None,
            outbox: OutboxSettings::default(),
            uplink: UplinkSettings::default(),
        }
    }
}

/// What to do with an export file after it was taken in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    /// Remove it once its batch is durable in the outbox (or it changed nothing, or its delta
    /// is held in memory): the TO-BE leaves no personal-data files behind.
    #[default]
    Delete,
    /// Leave it where it is (for a SAS that overwrites one file in place, or for testing).
    Keep,
}

/// `[central]`: where batches go and whom they are sealed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Base URL of central's device listener, e.g. `https://central.example:8443`.
    pub url: String,
    /// PEM file with central's CA: the only CA the uplink trusts.
    pub ca: PathBuf,
    /// Hex of central's 32-byte X25519 public key; batches are sealed to it.
    pub sealing_key: String,
}

/// `[identity]`: who this device is, from enrollment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub device: String,
    pub site: String,
    /// PEM client certificate for mutual TLS.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// File with the hex Ed25519 seed batches are signed with (mode 0600).
    pub signing_key: PathBuf,
    /// File with the hex per-site secret that keys record handles (mode 0600).
    pub site_secret: PathBuf,
}

/// `[outbox]`: the outbox's hard bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    pub max_bytes: u64,
    pub max_batches: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        let d = OutboxConfig::default();
        OutboxSettings {
            max_bytes: d.max_bytes,
            max_batches: d.max_batches,
        }
    }
}

impl OutboxSettings {
    /// The outbox configuration with these bounds and the default segment and fsync policy.
    pub fn outbox_config(&self) -> OutboxConfig {
        OutboxConfig {
            max_bytes: self.max_bytes,
            max_batches: self.max_batches,
            ..OutboxConfig::default()
        }
    }
}

/// `[uplink]`: retry pacing towards central.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkSettings {
    /// First retry ceiling after a failure.
    pub backoff_initial_ms: u64,
    /// Longest wait between two attempts, however long central is away.
    pub backoff_max_ms: u64,
}

impl Default for UplinkSettings {
    fn default() -> Self {
        UplinkSettings {
            backoff_initial_ms: 500,
            backoff_max_ms: 300_000,
        }
    }
}

impl UplinkSettings {
    pub fn initial(&self) -> Duration {
        Duration::from_millis(self.backoff_initial_ms.max(1))
    }

    pub fn max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms.max(self.backoff_initial_ms).max(1))
    }
}

/// The parts of the config that `run` cannot do without, checked and borrowed.
#[derive(Debug, Clone, Copy)]
pub struct DaemonParts<'a> {
    pub central: &'a CentralConfig,
    pub identity: &'a IdentityConfig,
}

impl AgentConfig {
    /// Reads `path` and resolves relative paths against its folder.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config: AgentConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Toml {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let base = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        config.resolve_paths(base);
        Ok(config)
    }

    /// Makes every relative path absolute against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        if let Some(drop) = &mut self.drop_dir {
            fix(drop);
        }
        if let Some(central) = &mut self.central {
            fix(&mut central.ca);
        }
        if let Some(identity) = &mut self.identity {
            fix(&mut identity.cert);
            fix(&mut identity.key);
            fix(&mut identity.signing_key);
            fix(&mut identity.site_secret);
        }
    }

    /// The drop folder: `drop_dir`, or `<state_dir>/drop`.
    pub fn drop_dir(&self) -> PathBuf {
        self.drop_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("drop"))
    }

    /// Checks that everything `run` needs is there, naming the first missing key.
    pub fn daemon(&self) -> Result<DaemonParts<'_>, ConfigError> {
        let central = self
            .central
            .as_ref()
            .ok_or(ConfigError::Missing("[central] url, ca, sealing_key"))?;
        let identity = self.identity.as_ref().ok_or(ConfigError::Missing(
            "[identity] device, site, cert, key, signing_key, site_secret",
        ))?;
        if !central.url.starts_with("https://") {
            return Err(ConfigError::Invalid {
                key: "central.url",
                reason: "must start with https:// (batches only travel over mutual TLS)".into(),
            });
        }
        if self.heartbeat_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "heartbeat_seconds",
                reason: "must be at least 1".into(),
            });
        }
        Ok(DaemonParts { central, identity })
    }

    pub fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            validation: self.validation,
            columns: self.columns.clone(),
            pipelined: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config: AgentConfig = toml::from_str(
            r#"
            format = "elevliste"
            [validation]
            reject_synthetic_ids = true
            [columns]
            national_id = ["Personnr."]
            [safety]
            max_deleted_fraction = 0.2
            delay_delete = [{ from = "2026-06-20", to = "2026-08-15" }]
            "#,
        )
        .unwrap();
        assert!(config.validation.reject_synthetic_ids);
        assert_eq!(config.safety.max_deleted_fraction, 0.2);
        assert_eq!(config.safety.min_roster, 20);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<AgentConfig>("rejekt_synthetic = true").is_err());
        assert!(toml::from_str::<AgentConfig>(
            "[central]\nurl = \"https://x\"\nca = \"ca.pem\"\nsealing_key = \"00\"\nextra = 1"
        )
        .is_err());
    }

    #[test]
    fn an_empty_config_has_the_documented_defaults() {
        let config: AgentConfig = toml::from_str("").unwrap();
        assert_eq!(config.state_dir, Path::new("/var/lib/skolebro"));
        assert_eq!(config.drop_dir(), Path::new("/var/lib/skolebro/drop"));
        assert_eq!(config.after_ingest, AfterIngest::Delete);
        assert_eq!(config.rescan_seconds, 30);
        assert_eq!(config.settle_ms, 2000);
        assert_eq!(config.heartbeat_seconds, 60);
        assert_eq!(config.uplink.backoff_initial_ms, 500);
        assert_eq!(config.uplink.backoff_max_ms, 300_000);
        assert_eq!(config.outbox.outbox_config(), OutboxConfig::default());
    }

    #[test]
    fn a_daemon_config_parses_and_resolves_paths_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            r#"
            state_dir = "state"
            after_ingest = "keep"
            rescan_seconds = 5
            settle_ms = 100
            heartbeat_seconds = 10
            panel = "none"
            [central]
            url = "https://127.0.0.1:8443"
            ca = "central-ca.pem"
            sealing_key = "0101010101010101010101010101010101010101010101010101010101010101"
            [identity]
            device = "pi-1"
            site = "46505"
            cert = "device.pem"
            key = "device.key"
            signing_key = "/etc/skolebro/signing.key"
            site_secret = "site.secret"
            [outbox]
            max_batches = 5
            [uplink]
            backoff_initial_ms = 10
            backoff_max_ms = 1000
            "#,
        )
        .unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(config.drop_dir(), dir.path().join("state/drop"));
        assert_eq!(config.after_ingest, AfterIngest::Keep);
        let parts = config.daemon().unwrap();
        assert_eq!(parts.central.ca, dir.path().join("central-ca.pem"));
        assert_eq!(parts.identity.cert, dir.path().join("device.pem"));
        assert_eq!(
            parts.identity.signing_key,
            Path::new("/etc/skolebro/signing.key")
        );
        assert_eq!(config.outbox.max_batches, 5);
        assert_eq!(config.outbox.max_bytes, OutboxConfig::default().max_bytes);
        assert_eq!(config.uplink.max(), Duration::from_millis(1000));
    }

    #[test]
    fn run_names_the_missing_section() {
        let config: AgentConfig = toml::from_str("").unwrap();
        let error = config.daemon().unwrap_err().to_string();
        assert!(error.contains("[central]"), "{error}");
        let config: AgentConfig =
            toml::from_str("[central]\nurl = \"https://x\"\nca = \"ca.pem\"\nsealing_key = \"00\"")
                .unwrap();
        let error = config.daemon().unwrap_err().to_string();
        assert!(error.contains("[identity]"), "{error}");
    }

    #[test]
    fn a_missing_key_inside_a_section_is_named() {
        let error =
            toml::from_str::<AgentConfig>("[central]\nurl = \"https://x\"\nca = \"ca.pem\"")
                .unwrap_err()
                .to_string();
        assert!(error.contains("sealing_key"), "{error}");
    }
}
