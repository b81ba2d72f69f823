//! The agent's configuration: the installed `agent.toml` (`/etc/skolebro/agent.toml`, from
//! the package; edited only for the hardware of one box) merged with what enrollment left in
//! the state folder. School IT never edits a config file by hand, so every field has a
//! sensible default and unknown keys are refused rather than silently ignored.
//!
//! The file serves two kinds of use. `check` and `diff` need only the reader, validation and
//! safety settings, so everything the daemon needs (`[central]`, `[identity]`) may be absent;
//! `run` calls [`AgentConfig::daemon`], which names the first missing key. Relative paths are
//! resolved against the folder of the config file.
//!
//! # Merging with the enrollment
//! Enrollment never edits `agent.toml`. It writes `<state_dir>/enrollment.json` (see
//! [`crate::provision`]), which holds the device's identity, central's address and keys, and
//! the site settings the config stick carried ([`SiteSettings`]). The effective config is:
//! 1. the defaults,
//! 2. overridden by every key `agent.toml` sets,
//! 3. overridden by every key the stick's settings set ([`AgentConfig::with_site_settings`]);
//!    a table such as `[safety]` replaces the whole table. The stick is the site's signed,
//!    newest word on how its exports look and are judged; `agent.toml` keeps what only the
//!    box knows (`state_dir`, `stick_roots`, `stick_key`, `clock_synced_file`,
//!    `drop_share_passdb`, `drop_share_usermap`, `drop_share_unix_user` and the update
//!    settings `release_key`, `root_key`, `install_root`, `trial_seconds`, `max_trial_starts`), which a
//!    stick may not set.
//! 4. The enrollment's identity and central replace `[central]`/`[identity]` of `agent.toml`,
//!    which remain for devices set up by hand (development, tests).
//! 5. The share the stick names to pull exports from ([`crate::share_source`]) becomes
//!    `[source]` unless `agent.toml` has a `[source]` table of its own, which always wins
//!    ([`AgentConfig::with_stick_source`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::outbox::OutboxConfig;
use crate::panel::PanelConfig;
use crate::share::ShareSource;
use skolebro_protocol::SiteSchool;
use skolebro_roster::reader::{ColumnProfile, Format, ReaderOptions};
use skolebro_roster::safety::SafetyPolicy;
use skolebro_roster::validate::ValidationOptions;

/// Where the package installs `agent.toml`; every command reads it when no `--config` (or
/// `SKOLEBRO_AGENT_CONFIG`) names another file.
pub const DEFAULT_PATH: &str = "/etc/skolebro/agent.toml";

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is part of the message (not a separate `source`), so it is printed once.
    #[error("config file {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Toml {
        path: PathBuf,
        error: Box<toml::de::Error>,
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
    /// Where exports come from: the drop folder (the default), or a OneRoster REST service
    /// the agent pulls from (`[source] kind = "oneroster-rest"`).
    pub source: SourceConfig,
    /// Whether `agent.toml` names a `[source]` itself: then it wins over the pull share a
    /// config stick gave ([`AgentConfig::with_stick_source`]).
    #[serde(skip)]
    pub source_in_file: bool,
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
    /// Folders searched for a mounted config stick: `<root>/*/SKOLEBRO/BUNDLE.SKB` and
    /// `<root>/*/*/SKOLEBRO/BUNDLE.SKB` (e.g. `/media/pi/STICK/...`).
    pub stick_roots: Vec<PathBuf>,
    /// The stick-signing public key installed with the agent (64 hex characters); a bundle
    /// signed by any other key is refused.
    pub stick_key: PathBuf,
    /// The certificate is renewed once less than this fraction of its lifetime remains.
    pub renew_before_fraction: f64,
    /// The system clock counts as synced while this file exists (systemd-timesyncd creates
    /// it; DESIGN decision 8, see [`crate::clock`]).
    pub clock_synced_file: PathBuf,
    /// The release-signing public key installed with the agent (64 hex characters); an
    /// update whose manifest it does not verify is refused (DESIGN decision 7).
    pub release_key: PathBuf,
    /// The offline root key's public half installed with the agent (64 hex characters): a
    /// rotation of the release key must carry its signature too ([`crate::trusted_keys`]).
    /// Missing on older devices, which then refuse release key rotations.
    pub root_key: PathBuf,
    /// Where releases live: `releases/<version>/skolebro-agent`, the `current` link the
    /// service starts, `previous` and `trial.json` (see [`crate::update`]).
    pub install_root: PathBuf,
    /// How long each start of a new release has to pass its health check.
    pub trial_seconds: u64,
    /// A new release started more often than this without passing is rolled back.
    pub max_trial_starts: u32,
    /// The schools the site is registered with, from the enrollment (never from
    /// `agent.toml`): an export naming another school is refused. Empty: none is refused.
    #[serde(skip)]
    pub site_schools: Vec<SiteSchool>,
    /// The memory, in MiB, the records of one export may take while it is read (`run`,
    /// `check` and `diff`). An export over it is refused (moved to `rejected/` with a note)
    /// rather than read until the Pi runs out. The default, 256 MiB, holds about 370,000
    /// students with their enrollments.
    pub read_budget_mib: u64,
    /// Where to serve Prometheus metrics (`GET /metrics`, no personal data), e.g.
    /// `127.0.0.1:9464`; none by default. Any address the Pi has may be given, so a scraper
    /// on the school's network can reach it: the figures name no pupil.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// After this many days without a fresh statement from central (see
    /// [`crate::freshness`]), the agent reports its offers as frozen: in `status`, on the
    /// front panel and in its heartbeat.
    pub freshness_days: u64,
    /// The SMB drop share's passdb (Samba's `smbpasswd` format), which the agent writes
    /// from the settings a stick or central carries ([`crate::drop_share`]) and `smbd`
    /// reads (`passdb backend = smbpasswd:<this file>`). Only the box knows it.
    pub drop_share_passdb: PathBuf,
    /// The SMB drop share's username map, which the agent writes from the same settings so
    /// that their account, any valid sign-in name, is mapped onto `drop_share_unix_user`
    /// (`username map = <this file>` in the package's include). Only the box knows it.
    pub drop_share_usermap: PathBuf,
    /// The Unix user every sign-in name of the drop share is mapped onto and whose passdb
    /// entry holds the password: `skolebro-drop`, which the package creates.
    pub drop_share_unix_user: String,
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
            source: SourceConfig::DropFolder,
            source_in_file: false,
            drop_dir: None,
            after_ingest: AfterIngest::Delete,
            rescan_seconds: 30,
            settle_ms: 2000,
            heartbeat_seconds: 60,
            central: None,
            identity: None,
            outbox: OutboxSettings::default(),
            uplink: UplinkSettings::default(),
            stick_roots: ["/media", "/run/media", "/mnt"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            stick_key: PathBuf::from("/etc/skolebro/keys/stick.pub"),
            renew_before_fraction: 0.33,
            clock_synced_file: PathBuf::from("/run/systemd/timesync/synchronized"),
            release_key: PathBuf::from("/etc/skolebro/keys/release.pub"),
            root_key: PathBuf::from("/etc/skolebro/keys/root.pub"),
            install_root: PathBuf::from("/var/lib/skolebro"),
            trial_seconds: 300,
            max_trial_starts: 3,
            site_schools: Vec::new(),
            read_budget_mib: 256,
            metrics_listen: None,
            freshness_days: 7,
            drop_share_passdb: PathBuf::from("/var/lib/skolebro/drop-share.smbpasswd"),
            drop_share_usermap: PathBuf::from("/var/lib/skolebro/drop-share.usermap"),
            drop_share_unix_user: "skolebro-drop".to_owned(),
        }
    }
}

/// The settings a config stick carries for its site (`StickBody::settings_toml`): every key
/// of `agent.toml` except those only the box knows or that enrollment writes. Each key set
/// here overrides `agent.toml` (see the module doc); unknown and box-only keys are refused,
/// so a stick cannot, say, swap the key sticks are checked with.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    pub format: Option<Format>,
    pub validation: Option<ValidationOptions>,
    pub columns: Option<ColumnProfile>,
    pub safety: Option<SafetyPolicy>,
    pub panel: Option<PanelConfig>,
    /// A relative path is taken against the state folder.
    pub drop_dir: Option<PathBuf>,
    pub after_ingest: Option<AfterIngest>,
    pub rescan_seconds: Option<u64>,
    pub settle_ms: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    pub outbox: Option<OutboxSettings>,
    pub uplink: Option<UplinkSettings>,
    pub renew_before_fraction: Option<f64>,
}

impl SiteSettings {
    /// Parses a stick's settings. The error names the offending key, never a value.
    pub fn parse(text: &str) -> Result<SiteSettings, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Toml {
            path: PathBuf::from("the stick's settings"),
            error: Box::new(error),
        })
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

/// `[source]`: where exports come from. A SAS that writes files uses the drop folder; one
/// that serves OneRoster REST (as Norwegian vendors increasingly do) is pulled from on a
/// schedule, and the pulled roster goes through the same validation, diff, safety filter
/// and outbox as a file would.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// Exports are files dropped into `drop_dir` (see [`crate::watch`]).
    #[default]
    DropFolder,
    /// The agent pulls from a OneRoster REST service (see [`crate::pull`]); boxed, as the
    /// config is cloned into each stage and most sites use the drop folder.
    OnerosterRest(Box<RestSource>),
    /// The agent copies exports from a share on the school's file server into the drop
    /// folder (see [`crate::share`]) and removes each from the share once central has it.
    SmbShare(Box<ShareSource>),
}

/// `[source] kind = "oneroster-rest"`: a OneRoster 1.1/1.2 REST service with OAuth2 client
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSource {
    /// The rostering service's base, e.g.
    /// `https://sas.example/ims/oneroster/rostering/v1p2`; `schools` and `students` are
    /// read under it. `https://`, or `http://` to a loopback address only.
    pub base_url: String,
    /// The OAuth2 token endpoint (client-credentials grant).
    pub token_url: String,
    pub client_id: String,
    /// File holding the client secret; refused unless only its owner may read it (0600),
    /// because anyone holding the secret reads every pupil of the school.
    pub client_secret_file: PathBuf,
    /// The OAuth2 `scope` asked for, if the SAS wants one (OneRoster 1.2 names
    /// `https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Minutes between two pulls.
    #[serde(default = "RestSource::default_every_minutes")]
    pub every_minutes: u64,
    /// Records asked for per page (`limit`).
    #[serde(default = "RestSource::default_page_size")]
    pub page_size: u32,
    /// Pull only what changed since the last pull (`dateLastModified` filter), with a full
    /// pull every `full_every_hours`; otherwise every pull is full.
    #[serde(default)]
    pub delta: bool,
    #[serde(default = "RestSource::default_full_every_hours")]
    pub full_every_hours: u64,
    /// PEM file with the CA (or CAs) the SAS's certificate must chain to: the only ones
    /// trusted for it. Required for `https://`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM certificate and key the agent shows the SAS, for a SAS that wants mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Tries per request before the pull is given up (429, 5xx, a dropped connection).
    #[serde(default = "RestSource::default_attempts")]
    pub attempts: u32,
    /// First wait between tries when the SAS gives no `Retry-After`; doubled each time.
    #[serde(default = "RestSource::default_retry_ms")]
    pub retry_initial_ms: u64,
    /// Seconds one request may take, its body included.
    #[serde(default = "RestSource::default_timeout_seconds")]
    pub timeout_seconds: u64,
}

impl RestSource {
    fn default_every_minutes() -> u64 {
        60
    }
    fn default_page_size() -> u32 {
        500
    }
    fn default_full_every_hours() -> u64 {
        24
    }
    fn default_attempts() -> u32 {
        6
    }
    fn default_retry_ms() -> u64 {
        1000
    }
    fn default_timeout_seconds() -> u64 {
        120
    }

    /// Checks the settings before the daemon starts, naming the key at fault.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        for (key, url) in [
            ("source.base_url", &self.base_url),
            ("source.token_url", &self.token_url),
        ] {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| invalid(key, &format!("not a URL: {e}")))?;
            match parsed.scheme() {
                "https" if self.ca.is_none() => {
                    return Err(invalid("source.ca", "required for an https:// source"))
                }
                "https" => {}
                "http" if is_loopback(&parsed) => {}
                _ => {
                    return Err(invalid(
                        key,
                        "must start with https:// (http:// only to a loopback address)",
                    ))
                }
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(invalid(
                "source.client_cert",
                "client_cert and client_key go together",
            ));
        }
        if self.every_minutes == 0 || self.full_every_hours == 0 || self.attempts == 0 {
            return Err(invalid(
                "source.every_minutes",
                "every_minutes, full_every_hours and attempts must be at least 1",
            ));
        }
        if !(1..=10_000).contains(&self.page_size) {
            return Err(invalid("source.page_size", "must be 1 to 10000"));
        }
        Ok(())
    }
}

/// True for a URL whose host is a loopback address or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
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
    /// Hex of central's statement key (`statement.pub`): heartbeat answers' statements are
    /// checked against it (see [`crate::freshness`]). Optional: without it no statement is
    /// checked, as with a central that signs none.
    #[serde(default)]
    pub statement_key: Option<String>,
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
        // Absolute, so every message names the file and the paths it resolves unambiguously.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        let mut config: AgentConfig = toml::from_str(&text).map_err(|error| ConfigError::Toml {
            path: path.to_owned(),
            error: Box::new(error),
        })?;
        let base = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        config.resolve_paths(base);
        config.source_in_file = text
            .parse::<toml::Table>()
            .is_ok_and(|table| table.contains_key("source"));
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
        for root in &mut self.stick_roots {
            fix(root);
        }
        fix(&mut self.stick_key);
        fix(&mut self.clock_synced_file);
        fix(&mut self.release_key);
        fix(&mut self.root_key);
        fix(&mut self.install_root);
        fix(&mut self.drop_share_passdb);
        fix(&mut self.drop_share_usermap);
        if let Some(central) = &mut self.central {
            fix(&mut central.ca);
        }
        if let SourceConfig::SmbShare(share) = &mut self.source {
            fix(&mut share.password_file);
        }
        if let SourceConfig::OnerosterRest(rest) = &mut self.source {
            fix(&mut rest.client_secret_file);
            for path in [&mut rest.ca, &mut rest.client_cert, &mut rest.client_key]
                .into_iter()
                .flatten()
            {
                fix(path);
            }
        }
        if let Some(identity) = &mut self.identity {
            fix(&mut identity.cert);
            fix(&mut identity.key);
            fix(&mut identity.signing_key);
            fix(&mut identity.site_secret);
        }
    }

    /// The config with a stick's site settings applied over it (see the module doc).
    pub fn with_site_settings(mut self, site: &SiteSettings) -> AgentConfig {
        let site = site.clone();
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(value) = site.$field {
                    self.$field = value;
                }
            )*};
        }
        take!(
            validation,
            columns,
            safety,
            panel,
            after_ingest,
            rescan_seconds,
            settle_ms,
            heartbeat_seconds,
            outbox,
            uplink,
            renew_before_fraction
        );
        if site.format.is_some() {
            self.format = site.format;
        }
        if let Some(drop) = site.drop_dir {
            self.drop_dir = Some(self.state_dir.join(drop));
        }
        self
    }

    /// The config with `stick_source`, the pull share a config stick gave
    /// ([`crate::share_source`]), as its source, unless `agent.toml` names a `[source]`
    /// itself (which always wins) or the stick gave none.
    pub fn with_stick_source(mut self, stick_source: Option<ShareSource>) -> AgentConfig {
        if let (false, Some(share)) = (self.source_in_file, stick_source) {
            self.source = SourceConfig::SmbShare(Box::new(share));
        }
        self
    }

    /// Where the drop share's settings are applied ([`crate::drop_share::apply`]).
    pub fn drop_share_target(&self) -> crate::drop_share::Target {
        crate::drop_share::Target {
            passdb: self.drop_share_passdb.clone(),
            usermap: self.drop_share_usermap.clone(),
            unix_user: self.drop_share_unix_user.clone(),
            state_dir: self.state_dir.clone(),
            passwd: PathBuf::from("/etc/passwd"),
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
        self.check_daemon_settings()?;
        Ok(DaemonParts { central, identity })
    }

    /// Checks the settings `run` uses whoever provisioned the device.
    pub fn check_daemon_settings(&self) -> Result<(), ConfigError> {
        if !(self.renew_before_fraction > 0.0 && self.renew_before_fraction < 1.0) {
            return Err(ConfigError::Invalid {
                key: "renew_before_fraction",
                reason: "must be between 0 and 1 (e.g. 0.33)".into(),
            });
        }
        if self.trial_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "trial_seconds",
                reason: "must be at least 1".into(),
            });
        }
        if self.heartbeat_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "heartbeat_seconds",
                reason: "must be at least 1".into(),
            });
        }
        if self.freshness_days == 0 {
            return Err(ConfigError::Invalid {
                key: "freshness_days",
                reason: "must be at least 1".into(),
            });
        }
        if let SourceConfig::OnerosterRest(rest) = &self.source {
            rest.check()?;
        }
        if let SourceConfig::SmbShare(share) = &self.source {
            share
                .check()
                .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
            // The copy leaving the drop folder is how the share source knows an export was
            // taken in; one that stays would never be removed from the share.
            if self.after_ingest == AfterIngest::Keep {
                return Err(ConfigError::Invalid {
                    key: "after_ingest",
                    reason: "must be \"delete\" with `[source] kind = \"smb-share\"`".into(),
                });
            }
        }
        Ok(())
    }

    pub fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            validation: self.validation,
            columns: self.columns.clone(),
            pipelined: true,
            memory_budget: Some(self.read_budget_mib << 20),
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
    fn a_oneroster_rest_source_parses_and_plain_http_is_only_for_loopback() {
        let text = |base: &str, extra: &str| {
            format!(
                r#"
                [source]
                kind = "oneroster-rest"
                base_url = "{base}"
                token_url = "{base}/token"
                client_id = "agent"
                client_secret_file = "sas.secret"
                {extra}
                "#
            )
        };
        let mut config: AgentConfig = toml::from_str(&text(
            "http://127.0.0.1:8081/ims/oneroster/v1p1",
            "delta = true",
        ))
        .unwrap();
        config.check_daemon_settings().unwrap();
        config.resolve_paths(Path::new("/etc/skolebro"));
        let SourceConfig::OnerosterRest(rest) = &config.source else {
            panic!("not the REST source: {:?}", config.source);
        };
        assert!(rest.delta);
        assert_eq!((rest.page_size, rest.every_minutes), (500, 60));
        assert_eq!(
            rest.client_secret_file,
            Path::new("/etc/skolebro/sas.secret")
        );

        let remote: AgentConfig = toml::from_str(&text("http://sas.example", "")).unwrap();
        assert!(remote.check_daemon_settings().is_err());
        let unpinned: AgentConfig = toml::from_str(&text("https://sas.example", "")).unwrap();
        let error = unpinned.check_daemon_settings().unwrap_err().to_string();
        assert!(error.contains("source.ca"), "{error}");
        assert!(
            toml::from_str::<AgentConfig>(&text("https://sas.example", "pagesize = 5")).is_err()
        );
        assert_eq!(AgentConfig::default().source, SourceConfig::DropFolder);
    }

    #[test]
    fn the_stick_s_pull_share_is_the_source_unless_agent_toml_names_a_source_table() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let settings = skolebro_protocol::PullShare {
            server: "filserver.skule.example.no".into(),
            port: 445,
            share: "Eksport".into(),
            folder: String::new(),
            pattern: "*".into(),
            user: "skolebro-les".into(),
            domain: None,
            password_nt_hash: skolebro_protocol::drop_share::nt_hash("Pull-share-pass-1"),
            poll_seconds: 60,
            stable_seconds: 10,
            after: crate::share::AfterPull::Delete,
        };
        crate::share_source::store(&state, Some(&settings)).unwrap();
        let with = |toml_text: &str| {
            let path = dir.path().join("agent.toml");
            std::fs::write(&path, toml_text).unwrap();
            let config = AgentConfig::load(&path).unwrap();
            config.with_stick_source(crate::share_source::load(&state).unwrap())
        };
        let pulled = with("state_dir = \"state\"\n");
        let SourceConfig::SmbShare(share) = &pulled.source else {
            panic!("not the stick's share: {:?}", pulled.source);
        };
        assert!(share.from_stick);
        assert_eq!(share.shown().from, "stick");
        let dropped = with("state_dir = \"state\"\n[source]\nkind = \"drop-folder\"\n");
        assert_eq!(dropped.source, SourceConfig::DropFolder);
        let nothing = AgentConfig::default().with_stick_source(None);
        assert_eq!(nothing.source, SourceConfig::DropFolder);
    }

    #[test]
    fn an_smb_share_source_parses_with_defaults_and_refuses_keep_quotes_and_a_move_into_its_own_folder(
    ) {
        let text = |extra: &str| {
            format!(
                r#"
                {extra}
                [source]
                kind = "smb-share"
                server = "filserver.skole.example"
                share = "Eksport"
                folder = "SAS/elever"
                user = "skolebro"
                password_file = "share.password"
                after = "move:hentet"
                "#
            )
        };
        let mut config: AgentConfig = toml::from_str(&text("")).unwrap();
        config.check_daemon_settings().unwrap();
        config.resolve_paths(Path::new("/etc/skolebro"));
        let SourceConfig::SmbShare(share) = &config.source else {
            panic!("not the share source: {:?}", config.source);
        };
        assert_eq!((share.port, share.pattern.as_str()), (445, "*"));
        assert_eq!((share.poll_seconds, share.stable_seconds), (60, 10));
        assert_eq!(share.after, crate::share::AfterPull::Move("hentet".into()));
        assert_eq!(
            share.password_file,
            Path::new("/etc/skolebro/share.password")
        );
        let keep: AgentConfig = toml::from_str(&text("after_ingest = \"keep\"")).unwrap();
        let error = keep.check_daemon_settings().unwrap_err().to_string();
        assert!(error.contains("after_ingest"), "{error}");
        let quoted: AgentConfig =
            toml::from_str(&text("").replace("Eksport", "Eks\\\"port")).unwrap();
        let error = quoted.check_daemon_settings().unwrap_err().to_string();
        assert!(error.contains("source.share"), "{error}");
        assert!(toml::from_str::<AgentConfig>(&text("").replace("move:hentet", "keep")).is_err());
        let into_itself = text("").replace("move:hentet", "move:/sas/Elever/");
        let looping: AgentConfig = toml::from_str(&into_itself).unwrap();
        let error = looping.check_daemon_settings().unwrap_err().to_string();
        assert!(error.contains("source.after"), "{error}");
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

    #[test]
    fn stick_settings_override_agent_toml_and_box_only_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "state_dir = \"state\"\nrescan_seconds = 7\nsettle_ms = 10\n[safety]\nmin_roster = 5\n",
        )
        .unwrap();
        let installed = AgentConfig::load(&path).unwrap();
        let site = SiteSettings::parse(
            "drop_dir = \"inbox\"\nrescan_seconds = 60\nformat = \"elevliste\"\n[safety]\nmax_deleted_fraction = 0.2\n",
        )
        .unwrap();
        let config = installed.with_site_settings(&site);
        assert_eq!(config.rescan_seconds, 60);
        assert_eq!(config.settle_ms, 10, "a key the stick does not set stays");
        assert_eq!(config.format, Some(Format::Elevliste));
        assert_eq!(config.drop_dir(), dir.path().join("state/inbox"));
        // A table replaces the whole table.
        assert_eq!(config.safety.max_deleted_fraction, 0.2);
        assert_eq!(config.safety.min_roster, SafetyPolicy::default().min_roster);
        for key in [
            "state_dir = \"/\"",
            "stick_key = \"k.pub\"",
            "stick_roots = [\"/\"]",
            "clock_synced_file = \"/\"",
            "release_key = \"k.pub\"",
            "root_key = \"k.pub\"",
            "install_root = \"/\"",
            "trial_seconds = 1",
            "drop_share_passdb = \"p\"",
            "drop_share_usermap = \"m\"",
            "drop_share_unix_user = \"root\"",
            "[central]\nurl = \"https://x\"\nca = \"c\"\nsealing_key = \"00\"",
        ] {
            assert!(SiteSettings::parse(key).is_err(), "{key}");
        }
    }

    #[test]
    fn the_stick_defaults_are_as_documented() {
        let config = AgentConfig::default();
        assert_eq!(
            config.stick_roots,
            [
                Path::new("/media"),
                Path::new("/run/media"),
                Path::new("/mnt")
            ]
        );
        assert_eq!(config.stick_key, Path::new("/etc/skolebro/keys/stick.pub"));
        assert_eq!(config.renew_before_fraction, 0.33);
        assert_eq!(
            config.release_key,
            Path::new("/etc/skolebro/keys/release.pub")
        );
        assert_eq!(config.root_key, Path::new("/etc/skolebro/keys/root.pub"));
        assert_eq!(config.install_root, Path::new("/var/lib/skolebro"));
        assert_eq!((config.trial_seconds, config.max_trial_starts), (300, 3));
        let bad: AgentConfig = toml::from_str("renew_before_fraction = 1.5").unwrap();
        assert!(bad.check_daemon_settings().is_err());
    }
}
