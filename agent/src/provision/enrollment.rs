//! What enrollment leaves on the device: one file, `<state_dir>/enrollment.json` (mode
//! 0600, written atomically), holding the device's identity (device and site id, TLS
//! certificate and key, envelope signing key, site secret), central's address, CA and sealing
//! key, the stick's token id and its site settings. One file, so a crash or a renewal can
//! never leave a certificate beside the wrong key, or a new identity beside an old CA; it is
//! the commit point of enrollment and of every renewal. `agent.toml` is never touched (see
//! [`crate::config`] for how the two merge).
//!
//! The chain of envelopes belongs to one device. `<state_dir>/chain-device` names the device
//! the checkpoint and outbox were last reset for; when the enrollment names another device,
//! [`settle_chain`] drops the old outbox and starts a fresh checkpoint, before the daemon
//! opens them. Its first batch is a full snapshot if central already held records of the
//! site, and an ordinary delta (sent in small pieces) for a site new to central.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use skolebro_protocol::envelope::ChainHead;

use crate::config::{ConfigError, SiteSettings};
use skolebro_protocol::envelope::{DeviceId, DeviceSigningKey, SealingPublicKey, SiteId};
use skolebro_protocol::{SiteSchool, SiteSecret, StatementVerifyingKey};

use crate::enqueue::{EnqueueError, Enqueuer, Identity};
use crate::identity::{hex32, DeviceCredentials, IdentityError};
use crate::outbox::OutboxConfig;
use crate::state::{write_atomic, write_atomic_private, Checkpoint};
use skolebro_roster::safety::SafetyPolicy;

/// The enrollment file in the state folder.
pub const ENROLLMENT_FILE: &str = "enrollment.json";
/// Names the device the chain (checkpoint and outbox) belongs to.
pub const CHAIN_DEVICE_FILE: &str = "chain-device";
/// The enqueue stage's checkpoint in the state folder.
const CHECKPOINT_FILE: &str = "checkpoint";

/// Why the enrollment file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable enrollment ({reason})", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("resetting the chain for the new device: {0}")]
    Chain(#[from] EnqueueError),
}

/// The device's enrollment, as stored. Secrets are hex or PEM text; `Debug` shows only ids.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEnrollment {
    pub device: String,
    pub site: String,
    /// The id of the stick's token (never the token).
    pub token_id: String,
    pub enrolled_unix: u64,
    /// When the certificate was last renewed.
    pub renewed_unix: Option<u64>,
    pub central_url: String,
    pub central_ca_pem: String,
    /// Central's X25519 public key, hex.
    pub sealing_key: String,
    /// The device's TLS certificate and its key (PEM).
    pub cert_pem: String,
    pub key_pem: String,
    /// The Ed25519 seed that signs envelopes, hex.
    pub signing_key: String,
    /// The per-site secret that keys record handles, hex.
    pub site_secret: String,
    /// The stick's site settings (TOML).
    pub settings_toml: String,
    /// Central already held records of the site when the device enrolled, so the device's
    /// first batch must be a full snapshot (see [`settle_chain`]). Files written before this
    /// field existed read as `true`, the safe side.
    #[serde(default = "snapshot_by_default")]
    pub site_has_records: bool,
    /// The schools the site is registered with, from the stick: the pipeline refuses an
    /// export naming any other. Empty for a stick without schools (format version 1) and
    /// for files written before this field existed: then no school is refused here, and
    /// central still refuses foreign schools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schools: Vec<SiteSchool>,
    /// Central's statement key (hex) from its enrollment answer: every heartbeat answer's
    /// statement is checked against it ([`crate::freshness`]). `None` from a central without
    /// one and in files written before this field existed: then no statement is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_key: Option<String>,
}

fn snapshot_by_default() -> bool {
    true
}

impl std::fmt::Debug for DeviceEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEnrollment")
            .field("device", &self.device)
            .field("site", &self.site)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

impl DeviceEnrollment {
    /// The enrollment in `state_dir`, or `None` if the device has not been enrolled.
    pub fn load(state_dir: &Path) -> Result<Option<DeviceEnrollment>, EnrollmentError> {
        let path = state_dir.join(ENROLLMENT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EnrollmentError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EnrollmentError::Damaged {
                path,
                reason: e.to_string(),
            })
    }

    /// Replaces the enrollment in `state_dir` atomically, mode 0600.
    pub fn save(&self, state_dir: &Path) -> Result<(), EnrollmentError> {
        let path = state_dir.join(ENROLLMENT_FILE);
        let io = |source| EnrollmentError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| EnrollmentError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic_private(&path, &bytes).map_err(io)
    }

    /// The stick's site settings.
    pub fn settings(&self) -> Result<SiteSettings, ConfigError> {
        SiteSettings::parse(&self.settings_toml)
    }

    /// The certificate's validity period, if it can be read.
    pub fn cert_validity(&self) -> Option<(SystemTime, SystemTime)> {
        skolebro_provisioning::tls::certificate_validity(&self.cert_pem).ok()
    }
}

/// Makes the chain in `state_dir` belong to `identity`'s device: if it was last reset for
/// another device (or never), the outbox's unacknowledged batches are dropped (they are
/// signed by the old device and chained on its head), and a fresh checkpoint asks for a full
/// snapshot if `site_has_records` (central's word at enrollment). Returns whether it reset.
/// Call it before the daemon opens its [`Enqueuer`].
pub fn settle_chain(
    state_dir: &Path,
    identity: &Identity,
    outbox: OutboxConfig,
    site_has_records: bool,
) -> Result<bool, EnrollmentError> {
    let marker = state_dir.join(CHAIN_DEVICE_FILE);
    let current = std::fs::read_to_string(&marker).unwrap_or_default();
    if current.trim() == identity.device.as_str() {
        return Ok(false);
    }
    let (mut enqueuer, _) =
        Enqueuer::open(state_dir, identity.clone(), SafetyPolicy::default(), outbox)?;
    enqueuer.restart_chain(ChainHead::genesis())?;
    drop(enqueuer);
    let checkpoint = state_dir.join(CHECKPOINT_FILE);
    Checkpoint {
        needs_snapshot: site_has_records,
        ..Checkpoint::default()
    }
    .save(&checkpoint)
    .map_err(EnqueueError::from)?;
    write_atomic(&marker, format!("{}\n", identity.device).as_bytes()).map_err(|source| {
        EnrollmentError::Io {
            path: marker.clone(),
            source,
        }
    })?;
    Ok(true)
}
impl DeviceEnrollment {
    /// The identity this enrollment stored, as the daemon runs with it.
    pub fn credentials(&self) -> Result<DeviceCredentials, IdentityError> {
        let enrollment = self;
        let invalid = |what: &str, reason| IdentityError::Invalid {
            what: format!("enrollment: {what}"),
            reason,
        };
        let device = DeviceId::new(enrollment.device.clone())
            .map_err(|_| invalid("device", "not a valid device id"))?;
        let site = SiteId::new(enrollment.site.clone())
            .map_err(|_| invalid("site", "not a valid site id"))?;
        let sealing = hex32(&enrollment.sealing_key)
            .ok_or_else(|| invalid("sealing_key", "expected 64 hex digits (32 bytes)"))?;
        let central_key = SealingPublicKey::from_bytes(sealing)
            .map_err(|_| invalid("sealing_key", "not an X25519 public key"))?;
        let seed = hex32(&enrollment.signing_key)
            .ok_or_else(|| invalid("signing_key", "expected 64 hex digits (32 bytes)"))?;
        let secret = hex32(&enrollment.site_secret)
            .ok_or_else(|| invalid("site_secret", "expected 64 hex digits (32 bytes)"))?;
        let statement_key = match &enrollment.statement_key {
            None => None,
            Some(hex) => Some(
                StatementVerifyingKey::from_hex(hex)
                    .map_err(|_| invalid("statement_key", "not an Ed25519 public key"))?,
            ),
        };
        Ok(DeviceCredentials {
            identity: Identity {
                device,
                site,
                signing_key: DeviceSigningKey::from_bytes(seed),
                central_key,
                site_secret: SiteSecret::from_bytes(secret),
            },
            url: enrollment.central_url.trim_end_matches('/').to_owned(),
            cert_pem: enrollment.cert_pem.clone(),
            key_pem: enrollment.key_pem.clone(),
            ca_pem: enrollment.central_ca_pem.clone(),
            statement_key,
        })
    }
}
