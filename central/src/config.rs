//! Central's configuration file (`skolebro-central serve --config central.toml`).
//!
//! It is the first step of central's start-up: config -> [`CentralConfig::server_parts`]
//! (TLS configuration, sealing key, store) -> [`crate::server::serve`]. The file only names
//! *where* things are; reading the PEM files, the key file and opening the database happen
//! here, once, so the server itself takes ready-made parts and never touches a path (the
//! demo and the tests build those parts in memory).
//!
//! ```toml
//! listen = "127.0.0.1:8443"        # device endpoints, TLS (mutual, except for enrollment)
//! admin_listen = "127.0.0.1:8080"  # operator and read endpoints, plain HTTP; loopback
//!                                  # only (another address is refused at start)
//! consumer_listen = "127.0.0.1:8081"  # optional: OneRoster for consumers, plain HTTP with
//!                                  # OAuth2 bearer tokens; none without it
//! consumer_public_url = "https://api.example.no"  # optional: the URL consumers reach
//!                                  # that listener by (its proxy); the base of OneRoster's
//!                                  # paging links and hrefs, else each request's Host
//! ui_listen = "127.0.0.1:8082"     # optional: the operator web interface, plain HTTP; put
//!                                  # a TLS-terminating proxy in front of it beyond loopback
//! max_batch_bytes = 16777216       # one envelope, at most
//! sealing_key = "keys/sealing.key" # central's X25519 private key, 64 hex characters
//! release_key = "keys/release.pub" # optional: the release-signing public key, 64 hex
//!                                  # characters; without it POST /admin/releases answers
//!                                  # 503 releases_disabled
//! statement_key = "keys/statement.key"  # optional: central's Ed25519 statement key, 64
//!                                  # hex characters; heartbeat answers then carry a signed
//!                                  # statement (the time, the release offered as current)
//! releases_dir = "releases"        # where release artifacts (<id>.bin) and signed
//!                                  # manifests (<id>.skm) are kept; created at start
//!
//! [tls]
//! cert = "pki/server.pem"          # server certificate chain
//! key = "pki/server.key"           # its private key
//! device_ca = "pki/device-ca.pem"  # the CA device certificates must chain to
//! device_ca_key = "pki/device-ca.key"  # optional: its private key, to enroll and renew
//!                                  # devices; without it /v1/enroll and /v1/renew answer
//!                                  # 503 enrollment_disabled
//!
//! [enroll]                         # optional, and so is each setting
//! cert_lifetime_seconds = 7776000  # lifetime of an issued device certificate (90 days)
//! per_ip_per_minute = 10           # enrollment requests per peer address and minute
//!
//! [ui]                             # optional, and so is each setting
//! secure_cookie = true             # session cookie only over HTTPS (the proxy); set false
//!                                  # only to use the interface over plain HTTP on loopback
//! session_hours = 8                # how long a sign-in lasts
//!
//! [http]                           # optional, and so is each setting: the plain HTTP
//!                                  # listeners (operator, consumer, web interface)
//! header_read_timeout_seconds = 30 # a request's headers, on a new or idle connection
//! body_idle_timeout_seconds = 30   # longest pause within a request body (devices too)
//! max_connections = 256            # connections at once, per listener
//! max_device_connections = 4096    # connections at once on the device listener
//!
//! [privacy]                      # optional, and so is each setting
//! access_log_days = 365            # how long the consumer access log keeps a read
//! record_school_years = 2          # closed record versions kept: the current school year
//!                                  # (from 1 August) and the one before
//! departed_school_years = 2        # a pupil who left (no current version), counted from
//!                                  # the school year they left in
//! audit_days = 1825                # how long an audit line is kept
//! [privacy.fylke."46"]             # optional, per county (fylkesnummer): either setting
//! record_school_years = 3
//! key_file = "records.kek"         # key-encryption key of sealing at rest (0600, 64 hex
//!                                  # digits); or SKOLEBRO_CENTRAL_KEK; without: clear
//! seal_names = true                # seal names, username, e-mail beside national ids
//!
//! [store]
//! kind = "sqlite"                  # or "postgres"
//! path = "central.db"              # sqlite: the database file
//! # url = "host=127.0.0.1 user=postgres dbname=central"   # postgres: libpq conninfo
//! # schema = "skolebro"           # postgres: schema to live in (default skolebro)
//! # max_connections = 8           # postgres: pool size (default 8)
//! # reserved_connections = 2      # postgres: of those, kept from long jobs (applies,
//!                                  # purges) for heartbeats and reads (default 2)
//! ```
//!
//! Relative paths are relative to the folder holding the configuration file, so a config and
//! its keys can be moved together. Unknown keys are errors: a misspelt `max_batch_byte` must
//! not silently leave the default in force.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use skolebro_protocol::{ReleaseVerifyingKey, SealingPrivateKey, StatementSigningKey};
use skolebro_provisioning::{CertificateAuthority, PkiError, TlsError};

use crate::enroll::{EnrollSettings, DEFAULT_CERT_LIFETIME, DEFAULT_ENROLL_PER_IP_PER_MINUTE};
use crate::oneroster::PublicUrl;
use crate::release::ReleaseSettings;
/// The per-county table of `[privacy]`, defined beside the policy it becomes.
pub use crate::retention::CountyRetentionConfig;
use crate::retention::RetentionPolicy;
use crate::seal::{Kek, SealError, SealScope, KEK_ENV};
use crate::server::ServerParts;
use crate::store::prelude::*;
use crate::store::{sealing, PostgresStore, SqliteStore, StoreError, Timestamp};

mod http;
pub use http::HttpConfig;

/// Default device listener: loopback, so a fresh install exposes nothing until told to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default operator listener: loopback, the only kind of address the server accepts for it,
/// because it has no authentication yet (docs/API.md).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";
/// Default largest envelope: a full snapshot of a large school fits with room to spare.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Default PostgreSQL schema.
pub const DEFAULT_PG_SCHEMA: &str = "skolebro";
/// Default PostgreSQL pool size.
pub const DEFAULT_PG_MAX_CONNECTIONS: usize = 8;
/// Default PostgreSQL connections kept from long jobs: with 8, a night of applies holds 6
/// and heartbeats find one of the other 2 instead of waiting behind them
/// (docs/BENCHMARKS.md).
pub const DEFAULT_PG_RESERVED_CONNECTIONS: usize = 2;

/// Everything that can go wrong between the configuration file and ready server parts. Each
/// variant names the file involved, so an operator knows which one to fix. The cause is part
/// of the message (not a separate `source`), so `anyhow` prints it once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read; names the setting (`sealing_key`, `tls.cert`, or the
    /// config file itself) and the path it resolved to.
    #[error("{key} ({}): {error}", path.display())]
    Io {
        key: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// The configuration is not valid TOML or does not fit the format.
    #[error("{path}: {error}")]
    Parse {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    /// A value is out of range (e.g. a zero batch limit).
    #[error("{0}")]
    Invalid(String),
    /// The sealing key file does not hold exactly 32 bytes as hex.
    #[error("{0}: the sealing key must be 64 hex characters (32 bytes)")]
    SealingKey(PathBuf),
    /// The TLS files do not make a usable server configuration.
    #[error("TLS configuration ({files}): {error}")]
    Tls {
        /// The three files, for the message.
        files: String,
        error: Box<TlsError>,
    },
    /// The device CA certificate and `device_ca_key` do not make a usable CA (not a key,
    /// or the key of another certificate).
    #[error("device CA ({files}): {error}")]
    DeviceCa {
        /// The two files, for the message.
        files: String,
        error: Box<PkiError>,
    },
    /// The release key file does not hold an Ed25519 public key as 64 hex characters.
    #[error("{path}: {reason}")]
    ReleaseKey { path: PathBuf, reason: String },
    /// The statement key file does not hold an Ed25519 seed as 64 hex characters.
    #[error("{path}: {reason}")]
    StatementKey { path: PathBuf, reason: String },
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(StoreError),
    /// The key-encryption key could not be read, or does not open the database's keys.
    #[error("[privacy] key_file: {0}")]
    Seal(#[from] SealError),
}

impl From<StoreError> for ConfigError {
    fn from(error: StoreError) -> ConfigError {
        match error {
            StoreError::Seal(error) => ConfigError::Seal(error),
            error => ConfigError::Store(error),
        }
    }
}

/// Central's configuration as the file states it, with paths already resolved against the
/// file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Address of the device endpoints (mutual TLS).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the operator and read endpoints (plain HTTP; keep it on loopback).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Address of the consumer endpoints (OneRoster and `/oauth/token`, plain HTTP), if
    /// any. Optional because a central without consumers should expose nothing more; beyond
    /// loopback it belongs behind a TLS-terminating proxy.
    #[serde(default)]
    pub consumer_listen: Option<SocketAddr>,
    /// The URL consumers reach the consumer listener by (`https://api.example.no`), if set:
    /// the base of OneRoster's paging links and `href`s, so they name the public address
    /// whatever `Host` the proxy passes on. Checked by [`PublicUrl::parse`].
    #[serde(default)]
    pub consumer_public_url: Option<String>,
    /// Address of the operator web interface (plain HTTP), if any. Optional like the
    /// consumer listener; beyond loopback it belongs behind a TLS-terminating proxy.
    #[serde(default)]
    pub ui_listen: Option<SocketAddr>,
    /// Cookie and session settings of the web interface.
    #[serde(default)]
    pub ui: UiConfig,
    /// Largest envelope accepted; larger bodies get 413 before they are read in full.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// File holding central's 32-byte HPKE X25519 private key as hex: the key every agent
    /// seals its payloads to.
    pub sealing_key: PathBuf,
    /// File holding the platform's release-signing public key (`release.pub`): releases are
    /// registered only if their manifest verifies against it. Optional, because a central
    /// that does not hand out updates needs no key.
    #[serde(default)]
    pub release_key: Option<PathBuf>,
    /// File holding central's statement key (`statement.key`, a seed as hex): heartbeat
    /// answers carry a statement signed with it, and enrollment answers its public half.
    /// Optional, so a key folder made before statements existed still runs central; its
    /// devices then check no statement.
    #[serde(default)]
    pub statement_key: Option<PathBuf>,
    /// Folder of release artifacts and manifests; default `releases` beside the file.
    #[serde(default = "default_releases_dir")]
    pub releases_dir: PathBuf,
    /// Server certificate, key and the device CA.
    pub tls: TlsConfig,
    /// Where records, devices and chain heads are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// Limits of enrollment and renewal.
    #[serde(default)]
    pub enroll: EnrollConfig,
    /// Timeouts and connection cap of the plain HTTP listeners.
    #[serde(default)]
    pub http: HttpConfig,
    /// The `[privacy]` table; defaults throughout.
    #[serde(default)]
    pub privacy: PrivacyConfig,
}

/// The `[enroll]` table: how long issued certificates live and how fast one address may try
/// to enroll.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    /// Lifetime of an issued device certificate, in seconds.
    #[serde(default = "default_cert_lifetime_seconds")]
    pub cert_lifetime_seconds: u64,
    /// Enrollment requests one peer address may make per minute.
    #[serde(default = "default_per_ip_per_minute")]
    pub per_ip_per_minute: u32,
}

impl Default for EnrollConfig {
    fn default() -> EnrollConfig {
        EnrollConfig {
            cert_lifetime_seconds: default_cert_lifetime_seconds(),
            per_ip_per_minute: default_per_ip_per_minute(),
        }
    }
}

/// The `[privacy]` table: how long what central logs about personal data is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Days a consumer read stays in the access log before `serve` purges it: long enough
    /// for a school or a pupil to ask who read their data, short enough not to become a
    /// second register of who attends where.
    #[serde(default = "default_access_log_days")]
    pub access_log_days: u64,
    /// School years (from 1 August) of closed record versions kept, counting the current
    /// one: 2 keeps this school year's and last school year's history.
    #[serde(default = "default_school_years")]
    pub record_school_years: u32,
    /// School years a record that left (a pupil who moved away, an ended enrollment) is
    /// kept, counting the school year it left in.
    #[serde(default = "default_school_years")]
    pub departed_school_years: u32,
    /// Days an audit line is kept: operators' actions are evidence longer than the records.
    #[serde(default = "default_audit_days")]
    pub audit_days: u64,
    /// Per county (fylkesnummer, two digits), what differs from the settings above.
    #[serde(default)]
    pub fylke: BTreeMap<String, CountyRetentionConfig>,
    /// The key-encryption key of sealing at rest (`crate::seal`): 64 hex digits in a file
    /// only its owner may read. Without it (and without `SKOLEBRO_CENTRAL_KEK` in the
    /// environment) records are stored in clear and central warns at start-up.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Whether names, username and e-mail are sealed beside national ids and birth dates.
    /// On by default; off keeps them readable in the database for a county that needs
    /// that, at less cost per record.
    #[serde(default = "default_seal_names")]
    pub seal_names: bool,
}

impl Default for PrivacyConfig {
    fn default() -> PrivacyConfig {
        PrivacyConfig {
            access_log_days: default_access_log_days(),
            record_school_years: default_school_years(),
            departed_school_years: default_school_years(),
            audit_days: default_audit_days(),
            fylke: BTreeMap::new(),
            key_file: None,
            seal_names: default_seal_names(),
        }
    }
}

fn default_seal_names() -> bool {
    true
}

impl PrivacyConfig {
    /// The retention policy the job applies, checked: each period at least one school year
    /// and at most 20, audit lines at least 30 days and at most 20 years, each county a
    /// fylkesnummer.
    pub fn retention_policy(&self) -> Result<RetentionPolicy, ConfigError> {
        RetentionPolicy::from_settings(
            self.record_school_years,
            self.departed_school_years,
            self.audit_days,
            &self.fylke,
        )
        .map_err(ConfigError::Invalid)
    }

    /// The key-encryption key: from `key_file` if set, else from `SKOLEBRO_CENTRAL_KEK`;
    /// `None` when neither is (records are then stored in clear).
    pub fn kek(&self) -> Result<Option<Kek>, ConfigError> {
        if let Some(path) = &self.key_file {
            return Ok(Some(Kek::read_file(path)?));
        }
        match std::env::var(KEK_ENV) {
            Ok(text) => Ok(Some(Kek::from_hex(&text)?)),
            Err(_) => Ok(None),
        }
    }

    /// Which fields sealing covers.
    pub fn seal_scope(&self) -> SealScope {
        if self.seal_names {
            SealScope::IdsAndNames
        } else {
            SealScope::Ids
        }
    }

    /// The access log's retention as a duration.
    pub fn access_log_retention(&self) -> Duration {
        Duration::from_secs(self.access_log_days * 24 * 3600)
    }
}

fn default_access_log_days() -> u64 {
    crate::access_log::DEFAULT_RETENTION_DAYS
}

fn default_school_years() -> u32 {
    crate::retention::DEFAULT_SCHOOL_YEARS
}

fn default_audit_days() -> u64 {
    crate::retention::DEFAULT_AUDIT_DAYS
}

/// The `[ui]` table: how the web interface's sessions work.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Whether the session cookie carries `Secure`, so browsers send it over HTTPS only.
    /// On by default: the interface is meant to be reached through a TLS proxy.
    #[serde(default = "default_secure_cookie")]
    pub secure_cookie: bool,
    /// How long a sign-in lasts, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

impl Default for UiConfig {
    fn default() -> UiConfig {
        UiConfig {
            secure_cookie: default_secure_cookie(),
            session_hours: default_session_hours(),
        }
    }
}

fn default_secure_cookie() -> bool {
    true
}

fn default_session_hours() -> u64 {
    crate::state::DEFAULT_SESSION_LIFETIME.as_secs() / 3600
}

/// The PEM files of the device listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Central's server certificate chain (leaf first).
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
    /// The CA that issues device certificates; only its certificates may connect.
    pub device_ca: PathBuf,
    /// The device CA's private key, so central can issue certificates at enrollment and
    /// renewal. Optional: a central without it only ingests.
    #[serde(default)]
    pub device_ca_key: Option<PathBuf>,
}

/// Which database holds central's data (DESIGN decision 9): SQLite embedded, PostgreSQL in
/// production.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// One SQLite file, created if missing.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// libpq-style conninfo (`host=… user=… dbname=…`). A password belongs in a
        /// `.pgpass` file or the server's trust rules, not here, but is accepted.
        url: String,
        /// Schema the tables live in, created if missing.
        #[serde(default = "default_pg_schema")]
        schema: String,
        /// At most this many connections at once.
        #[serde(default = "default_pg_max_connections")]
        max_connections: usize,
        /// Connections long jobs (applies, reseal, purges, erasures) may not take, kept for
        /// heartbeats and other short requests; long jobs always keep at least one.
        #[serde(default = "default_pg_reserved_connections")]
        reserved_connections: usize,
    },
}

impl Default for StoreConfig {
    /// `central.db` beside the configuration file: a working store with no extra setup.
    fn default() -> StoreConfig {
        StoreConfig::Sqlite {
            path: PathBuf::from("central.db"),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_batch_bytes() -> usize {
    DEFAULT_MAX_BATCH_BYTES
}

fn default_releases_dir() -> PathBuf {
    PathBuf::from("releases")
}

fn default_pg_schema() -> String {
    DEFAULT_PG_SCHEMA.to_owned()
}

fn default_pg_max_connections() -> usize {
    DEFAULT_PG_MAX_CONNECTIONS
}

fn default_pg_reserved_connections() -> usize {
    DEFAULT_PG_RESERVED_CONNECTIONS
}

fn default_cert_lifetime_seconds() -> u64 {
    DEFAULT_CERT_LIFETIME.as_secs()
}

fn default_per_ip_per_minute() -> u32 {
    DEFAULT_ENROLL_PER_IP_PER_MINUTE
}

impl CentralConfig {
    /// Reads and checks the configuration file at `path`, resolving relative paths against
    /// its folder.
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
        // Absolute, so every message names the file and the paths it resolves unambiguously.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = read_to_string("config file", path)?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        CentralConfig::parse(&text, base).map_err(|error| match error {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                error,
            },
            other => other,
        })
    }

    /// Parses configuration text, resolving relative paths against `base`. Separate from
    /// [`CentralConfig::load`] so tools that write a config can check it before saving.
    pub fn parse(text: &str, base: &Path) -> Result<CentralConfig, ConfigError> {
        let mut config: CentralConfig =
            toml::from_str(text).map_err(|error| ConfigError::Parse {
                path: PathBuf::from("<config>"),
                error: Box::new(error),
            })?;
        if config.max_batch_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_batch_bytes must be greater than 0".to_owned(),
            ));
        }
        if config.enroll.cert_lifetime_seconds == 0 {
            return Err(ConfigError::Invalid(
                "enroll.cert_lifetime_seconds must be greater than 0".to_owned(),
            ));
        }
        if config.enroll.per_ip_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "enroll.per_ip_per_minute must be greater than 0".to_owned(),
            ));
        }
        let http = &config.http;
        if http.header_read_timeout_seconds == 0
            || http.body_idle_timeout_seconds == 0
            || http.max_connections == 0
            || http.max_device_connections == 0
        {
            return Err(ConfigError::Invalid(
                "http.header_read_timeout_seconds, http.body_idle_timeout_seconds, \
                 http.max_connections and http.max_device_connections must be greater than 0"
                    .to_owned(),
            ));
        }
        if config.ui.session_hours == 0 || config.ui.session_hours > 24 * 30 {
            return Err(ConfigError::Invalid(
                "ui.session_hours must be between 1 and 720".to_owned(),
            ));
        }
        if config
            .consumer_public_url
            .as_deref()
            .is_some_and(|url| PublicUrl::parse(url).is_none())
        {
            return Err(ConfigError::Invalid(
                "consumer_public_url must be an http or https URL with a host and an optional \
                 path, without query, fragment or user"
                    .to_owned(),
            ));
        }
        if config.privacy.access_log_days == 0 || config.privacy.access_log_days > 3650 {
            return Err(ConfigError::Invalid(
                "privacy.access_log_days must be between 1 and 3650".to_owned(),
            ));
        }
        config.privacy.retention_policy()?;
        if let StoreConfig::Postgres {
            max_connections, ..
        } = &config.store
        {
            if *max_connections == 0 {
                return Err(ConfigError::Invalid(
                    "store.max_connections must be greater than 0".to_owned(),
                ));
            }
        }
        config.sealing_key = base.join(&config.sealing_key);
        config.release_key = config.release_key.map(|key| base.join(key));
        config.statement_key = config.statement_key.map(|key| base.join(key));
        config.releases_dir = base.join(&config.releases_dir);
        config.privacy.key_file = config.privacy.key_file.map(|key| base.join(key));
        config.tls.cert = base.join(&config.tls.cert);
        config.tls.key = base.join(&config.tls.key);
        config.tls.device_ca = base.join(&config.tls.device_ca);
        config.tls.device_ca_key = config.tls.device_ca_key.map(|key| base.join(key));
        if let StoreConfig::Sqlite { path } = &mut config.store {
            *path = base.join(&*path);
        }
        Ok(config)
    }

    /// Central's sealing key, read from [`CentralConfig::sealing_key`].
    pub fn read_sealing_key(&self) -> Result<SealingPrivateKey, ConfigError> {
        let text = read_to_string("sealing_key", &self.sealing_key)?;
        parse_sealing_key(&text).ok_or_else(|| ConfigError::SealingKey(self.sealing_key.clone()))
    }

    /// The rustls configuration of the device listener: TLS 1.3, client certificates from
    /// the device CA, optional for enrollment ([`crate::server::device_tls_config`]).
    pub fn tls_server_config(&self) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let cert = read_to_string("tls.cert", &self.tls.cert)?;
        let key = read_to_string("tls.key", &self.tls.key)?;
        let device_ca = read_to_string("tls.device_ca", &self.tls.device_ca)?;
        crate::server::device_tls_config(&cert, &key, &device_ca).map_err(|error| {
            ConfigError::Tls {
                files: format!(
                    "{}, {}, {}",
                    self.tls.cert.display(),
                    self.tls.key.display(),
                    self.tls.device_ca.display()
                ),
                error: Box::new(error),
            }
        })
    }

    /// Enrollment's settings: the device CA with its key if `device_ca_key` is set, and the
    /// `[enroll]` limits.
    pub fn enroll_settings(&self) -> Result<EnrollSettings, ConfigError> {
        let device_ca = match &self.tls.device_ca_key {
            None => None,
            Some(key_path) => {
                let cert = read_to_string("tls.device_ca", &self.tls.device_ca)?;
                let key = read_to_string("tls.device_ca_key", key_path)?;
                let ca = CertificateAuthority::from_pem(&cert, &key).map_err(|error| {
                    ConfigError::DeviceCa {
                        files: format!("{}, {}", self.tls.device_ca.display(), key_path.display()),
                        error: Box::new(error),
                    }
                })?;
                Some(Arc::new(ca))
            }
        };
        Ok(EnrollSettings {
            device_ca,
            cert_lifetime: Duration::from_secs(self.enroll.cert_lifetime_seconds),
            per_ip_per_minute: self.enroll.per_ip_per_minute,
        })
    }

    /// The release settings: the key from `release_key`, if set, `releases_dir`, and the
    /// statement key from `statement_key`, if set.
    pub fn release_settings(&self) -> Result<ReleaseSettings, ConfigError> {
        let key = match &self.release_key {
            None => None,
            Some(path) => Some(
                ReleaseVerifyingKey::from_hex(&read_to_string("release_key", path)?).map_err(
                    |error| ConfigError::ReleaseKey {
                        path: path.clone(),
                        reason: error.to_string(),
                    },
                )?,
            ),
        };
        let statement_key = match &self.statement_key {
            None => None,
            Some(path) => Some(
                StatementSigningKey::from_hex(&read_to_string("statement_key", path)?).map_err(
                    |error| ConfigError::StatementKey {
                        path: path.clone(),
                        reason: error.to_string(),
                    },
                )?,
            ),
        };
        Ok(ReleaseSettings {
            key,
            dir: self.releases_dir.clone(),
            statement_key,
        })
    }

    /// Opens (and migrates) the configured store and unlocks sealing at rest with the
    /// configured key-encryption key, refusing a key that does not open the database's
    /// data keys. Rows stored in clear before sealing (schema 12 and older) are sealed
    /// here, before anything is served, so that every lookup by keyed hash finds them.
    pub async fn open_store(&self) -> Result<Arc<dyn Store>, ConfigError> {
        // The key first: a missing or loose key file fails before the database is touched.
        let kek = self.privacy.kek()?;
        let store: Arc<dyn Store> = match &self.store {
            StoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
            StoreConfig::Postgres {
                url,
                schema,
                max_connections,
                reserved_connections,
            } => Arc::new(
                PostgresStore::connect(url, schema, *max_connections, *reserved_connections)
                    .await?,
            ),
        };
        match kek {
            Some(kek) => {
                sealing::unlock(
                    store.as_ref(),
                    &kek,
                    self.privacy.seal_scope(),
                    Timestamp::now(),
                )
                .await?;
                if store.has_clear_records().await? {
                    tracing::info!("sealing the records stored in clear before sealing at rest");
                    sealing::reseal(store.as_ref(), sealing::RESEAL_BATCH, None).await?;
                }
            }
            None => {
                if !store.seal_keys().await?.is_empty() {
                    return Err(ConfigError::Seal(SealError::Locked));
                }
                tracing::warn!(
                    "no [privacy] key_file or {KEK_ENV}: records are stored in clear at rest"
                );
            }
        }
        Ok(store)
    }

    /// Everything [`crate::server::serve`] needs, read and opened. The files are read before
    /// the store is opened, so a typo in a path fails fast without touching the database.
    pub async fn server_parts(&self) -> Result<ServerParts, ConfigError> {
        let tls = self.tls_server_config()?;
        let sealing_key = self.read_sealing_key()?;
        let enroll = self.enroll_settings()?;
        let releases = self.release_settings()?;
        let retention = self.privacy.retention_policy()?;
        let store = self.open_store().await?;
        Ok(ServerParts {
            store,
            tls,
            sealing_key,
            device_listen: self.listen,
            admin_listen: self.admin_listen,
            consumer_listen: self.consumer_listen,
            consumer_public_url: self
                .consumer_public_url
                .as_deref()
                .and_then(PublicUrl::parse),
            ui: self.ui_listen.map(|listen| crate::state::UiSettings {
                listen,
                secure_cookie: self.ui.secure_cookie,
                session_lifetime: Duration::from_secs(self.ui.session_hours * 3600),
            }),
            http_limits: self.http.limits(),
            max_batch_bytes: self.max_batch_bytes,
            enroll,
            releases,
            retention,
        })
    }
}

/// 64 hex characters (surrounding whitespace allowed) as a sealing key, or `None`.
pub fn parse_sealing_key(text: &str) -> Option<SealingPrivateKey> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    Some(SealingPrivateKey::from_bytes(bytes))
}

fn read_to_string(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        key,
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::HttpLimits;

    const MINIMAL: &str = r#"
        sealing_key = "keys/sealing.key"
        [tls]
        cert = "pki/server.pem"
        key = "pki/server.key"
        device_ca = "/etc/skolebro/device-ca.pem"
    "#;

    #[test]
    fn a_consumer_public_url_must_be_a_plain_http_base() {
        let text = format!("consumer_public_url = \"https://api.example.no/\"\n{MINIMAL}");
        let config = CentralConfig::parse(&text, Path::new("/srv/central")).unwrap();
        assert_eq!(
            config.consumer_public_url.as_deref(),
            Some("https://api.example.no/")
        );
        let text = format!("consumer_public_url = \"https://api.example.no/?x=1\"\n{MINIMAL}");
        assert!(matches!(
            CentralConfig::parse(&text, Path::new("/srv/central")),
            Err(ConfigError::Invalid(message)) if message.contains("consumer_public_url")
        ));
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/srv/central")).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(config.consumer_listen, None);
        let text = format!("consumer_listen = \"127.0.0.1:8081\"\n{MINIMAL}");
        let config = CentralConfig::parse(&text, Path::new("/srv/central")).unwrap();
        assert_eq!(
            config.consumer_listen,
            Some("127.0.0.1:8081".parse().unwrap())
        );
        assert_eq!(config.max_batch_bytes, 16 * 1024 * 1024);
        assert_eq!(
            config.store,
            StoreConfig::Sqlite {
                path: PathBuf::from("/srv/central/central.db")
            }
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder_and_absolute_ones_stay() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/srv/central")).unwrap();
        assert_eq!(
            config.sealing_key,
            PathBuf::from("/srv/central/keys/sealing.key")
        );
        assert_eq!(
            config.tls.cert,
            PathBuf::from("/srv/central/pki/server.pem")
        );
        assert_eq!(
            config.tls.device_ca,
            PathBuf::from("/etc/skolebro/device-ca.pem")
        );
    }

    #[test]
    fn http_limits_default_to_the_server_constants_and_zero_is_refused() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/x")).unwrap();
        assert_eq!(config.http.limits(), HttpLimits::default());
        let text = format!("{MINIMAL}\n[http]\nheader_read_timeout_seconds = 5\n");
        let config = CentralConfig::parse(&text, Path::new("/x")).unwrap();
        assert_eq!(
            config.http.limits().header_read_timeout,
            Duration::from_secs(5)
        );
        let text = format!("{MINIMAL}\n[http]\nmax_connections = 0\n");
        assert!(matches!(
            CentralConfig::parse(&text, Path::new("/x")),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn the_access_log_keeps_a_year_by_default_and_zero_days_is_refused() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/x")).unwrap();
        assert_eq!(
            config.privacy.access_log_retention(),
            Duration::from_secs(365 * 24 * 3600)
        );
        let text = format!("{MINIMAL}\n[privacy]\naccess_log_days = 30\n");
        let config = CentralConfig::parse(&text, Path::new("/x")).unwrap();
        assert_eq!(config.privacy.access_log_days, 30);
        let text = format!("{MINIMAL}\n[privacy]\naccess_log_days = 0\n");
        assert!(matches!(
            CentralConfig::parse(&text, Path::new("/x")),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn a_postgres_store_takes_a_conninfo_and_optional_pool_settings() {
        let text = format!(
            "{MINIMAL}\n[store]\nkind = \"postgres\"\nurl = \"host=127.0.0.1 user=postgres dbname=test\"\n"
        );
        let config = CentralConfig::parse(&text, Path::new("/x")).unwrap();
        assert_eq!(
            config.store,
            StoreConfig::Postgres {
                url: "host=127.0.0.1 user=postgres dbname=test".to_owned(),
                schema: DEFAULT_PG_SCHEMA.to_owned(),
                max_connections: DEFAULT_PG_MAX_CONNECTIONS,
                reserved_connections: DEFAULT_PG_RESERVED_CONNECTIONS,
            }
        );
        let sized = format!("{text}max_connections = 12\nreserved_connections = 3\n");
        let config = CentralConfig::parse(&sized, Path::new("/x")).unwrap();
        assert!(matches!(
            config.store,
            StoreConfig::Postgres {
                max_connections: 12,
                reserved_connections: 3,
                ..
            }
        ));
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let top = format!("max_batch_byte = 5\n{MINIMAL}");
        assert!(CentralConfig::parse(&top, Path::new("/x")).is_err());
        let tls = MINIMAL.replace("device_ca", "ca");
        assert!(CentralConfig::parse(&tls, Path::new("/x")).is_err());
        let store =
            format!("{MINIMAL}\n[store]\nkind = \"sqlite\"\npath = \"a.db\"\nurl = \"x\"\n");
        assert!(CentralConfig::parse(&store, Path::new("/x")).is_err());
        let kind = format!("{MINIMAL}\n[store]\nkind = \"mysql\"\n");
        assert!(CentralConfig::parse(&kind, Path::new("/x")).is_err());
    }

    #[test]
    fn enrollment_settings_default_and_resolve_like_the_other_paths() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/srv/central")).unwrap();
        assert_eq!(config.tls.device_ca_key, None);
        assert_eq!(config.enroll.cert_lifetime_seconds, 90 * 24 * 3600);
        assert_eq!(config.enroll.per_ip_per_minute, 10);
        assert!(config.enroll_settings().unwrap().device_ca.is_none());

        let text = MINIMAL.replace(
            "device_ca = ",
            "device_ca_key = \"pki/device-ca.key\"\ndevice_ca = ",
        ) + "\n[enroll]\ncert_lifetime_seconds = 60\nper_ip_per_minute = 3\n";
        let config = CentralConfig::parse(&text, Path::new("/srv/central")).unwrap();
        assert_eq!(
            config.tls.device_ca_key,
            Some(PathBuf::from("/srv/central/pki/device-ca.key"))
        );
        assert_eq!(
            config.enroll,
            EnrollConfig {
                cert_lifetime_seconds: 60,
                per_ip_per_minute: 3
            }
        );
        let zero = format!("{MINIMAL}\n[enroll]\nper_ip_per_minute = 0\n");
        assert!(matches!(
            CentralConfig::parse(&zero, Path::new("/x")),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn the_device_ca_key_loads_and_a_key_of_another_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let validity = skolebro_provisioning::Validity::from_now(Duration::from_secs(60));
        skolebro_provisioning::DevPki::generate_dev(&dir.path().join("pki"), validity).unwrap();
        let with_key = |key: &str| {
            MINIMAL
                .replace("/etc/skolebro/device-ca.pem", "pki/device-ca.pem")
                .replace(
                    "device_ca = ",
                    &format!("device_ca_key = \"pki/{key}\"\ndevice_ca = "),
                )
        };

        let config = CentralConfig::parse(&with_key("device-ca.key"), dir.path()).unwrap();
        assert!(config.enroll_settings().unwrap().device_ca.is_some());

        let config = CentralConfig::parse(&with_key("central-ca.key"), dir.path()).unwrap();
        assert!(matches!(
            config.enroll_settings(),
            Err(ConfigError::DeviceCa { .. })
        ));
    }

    #[test]
    fn release_settings_resolve_like_the_other_paths_and_the_key_is_checked() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/srv/central")).unwrap();
        assert_eq!(config.release_key, None);
        assert_eq!(config.releases_dir, PathBuf::from("/srv/central/releases"));
        assert!(config.release_settings().unwrap().key.is_none());

        let dir = tempfile::tempdir().unwrap();
        let key = skolebro_protocol::ReleaseSigningKey::from_bytes([5; 32]).verifying_key();
        std::fs::write(
            dir.path().join("release.pub"),
            format!("{}\n", key.to_hex()),
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.pub"), "not a key\n").unwrap();
        let with = |file: &str| {
            format!("release_key = \"{file}\"\nreleases_dir = \"/var/lib/rel\"\n{MINIMAL}")
        };
        let config = CentralConfig::parse(&with("release.pub"), dir.path()).unwrap();
        assert_eq!(config.releases_dir, PathBuf::from("/var/lib/rel"));
        assert_eq!(config.release_settings().unwrap().key, Some(key));
        let config = CentralConfig::parse(&with("bad.pub"), dir.path()).unwrap();
        assert!(matches!(
            config.release_settings(),
            Err(ConfigError::ReleaseKey { .. })
        ));
    }

    #[test]
    fn the_statement_key_is_optional_resolved_and_checked() {
        let config = CentralConfig::parse(MINIMAL, Path::new("/srv/central")).unwrap();
        assert!(config.release_settings().unwrap().statement_key.is_none());
        let dir = tempfile::tempdir().unwrap();
        let key = StatementSigningKey::from_bytes([8; 32]);
        std::fs::write(
            dir.path().join("statement.key"),
            format!("{}\n", key.to_hex()),
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.key"), "not a key\n").unwrap();
        let with = |file: &str| format!("statement_key = \"{file}\"\n{MINIMAL}");
        let config = CentralConfig::parse(&with("statement.key"), dir.path()).unwrap();
        let read = config.release_settings().unwrap().statement_key.unwrap();
        assert_eq!(read.verifying_key(), key.verifying_key());
        let config = CentralConfig::parse(&with("bad.key"), dir.path()).unwrap();
        assert!(matches!(
            config.release_settings(),
            Err(ConfigError::StatementKey { .. })
        ));
    }

    #[test]
    fn a_zero_batch_limit_is_refused() {
        let text = format!("max_batch_bytes = 0\n{MINIMAL}");
        assert!(matches!(
            CentralConfig::parse(&text, Path::new("/x")),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn a_sealing_key_is_64_hex_characters() {
        let hex = "11".repeat(32);
        assert!(parse_sealing_key(&format!("{hex}\n")).is_some());
        assert!(parse_sealing_key(&hex[..62]).is_none());
        assert!(parse_sealing_key(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn a_county_overrides_the_default_and_a_site_in_two_keeps_the_longer_period() {
        let mut config = PrivacyConfig::default();
        config.fylke.insert(
            "46".to_owned(),
            CountyRetentionConfig {
                record_school_years: Some(4),
                departed_school_years: None,
            },
        );
        config.fylke.insert(
            "03".to_owned(),
            CountyRetentionConfig {
                record_school_years: Some(1),
                departed_school_years: Some(3),
            },
        );
        let policy = config.retention_policy().expect("a valid policy");
        let county = |code| crate::store::Fylke::parse(code).expect("a county");
        assert_eq!(
            policy.periods_for(&std::collections::BTreeSet::new()),
            policy.default
        );
        assert_eq!(
            policy.periods_for(&std::collections::BTreeSet::from([
                county("46"),
                county("03")
            ])),
            crate::retention::Periods {
                record_school_years: 4,
                departed_school_years: 3
            }
        );
        config.fylke.insert("4".to_owned(), Default::default());
        assert!(config.retention_policy().is_err());
        let mut config = PrivacyConfig {
            record_school_years: 0,
            ..PrivacyConfig::default()
        };
        assert!(config.retention_policy().is_err());
        config.record_school_years = 2;
        config.audit_days = 5;
        assert!(config.retention_policy().is_err());
    }
}
