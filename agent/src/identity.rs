//! Loads the device's identity for the daemon: the keys that sign and seal batches (handed
//! to [`crate::enqueue::Enqueuer`]) and the PEM material of the mutual-TLS client (handed to
//! the uplink). It comes from the enrollment a config stick made (converted where the
//! enrollment is kept, in `provision`), or, on a device set up by hand, from the files
//! `[central]` and `[identity]` of `agent.toml` name ([`DeviceCredentials::load`]). Nothing
//! here is generated; without either, the daemon waits for a config stick.

use std::path::{Path, PathBuf};

use skolebro_protocol::envelope::{DeviceId, DeviceSigningKey, SealingPublicKey, SiteId};
use skolebro_protocol::{SiteSecret, StatementVerifyingKey};

use crate::config::{AgentConfig, ConfigError};
use crate::enqueue::Identity;

/// Why the device's identity could not be loaded. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file a setting names cannot be read; names the setting (`identity.signing_key`)
    /// and the path it resolved to.
    #[error("{key} ({}): {error}", path.display())]
    Io {
        key: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: &'static str },
}

/// Everything the daemon needs to talk to central as this device.
#[derive(Clone)]
pub struct DeviceCredentials {
    /// Keys for sealing and signing batches.
    pub identity: Identity,
    /// Base URL of central's device listener, without a trailing slash.
    pub url: String,
    /// The client certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
    /// Central's CA (PEM), the only CA the uplink trusts.
    pub ca_pem: String,
    /// Central's statement key, if this device knows one: statements in heartbeat answers
    /// are checked against it ([`crate::freshness`]).
    pub statement_key: Option<StatementVerifyingKey>,
}

impl DeviceCredentials {
    /// Reads the files named in `[central]` and `[identity]`.
    pub fn load(config: &AgentConfig) -> Result<DeviceCredentials, IdentityError> {
        let parts = config.daemon()?;
        let central = parts.central;
        let ids = parts.identity;
        let device = DeviceId::new(ids.device.clone()).map_err(|_| IdentityError::Invalid {
            what: "identity.device".into(),
            reason: "not a valid device id",
        })?;
        let site = SiteId::new(ids.site.clone()).map_err(|_| IdentityError::Invalid {
            what: "identity.site".into(),
            reason: "not a valid site id",
        })?;
        let sealing = hex32(&central.sealing_key).ok_or(IdentityError::Invalid {
            what: "central.sealing_key".into(),
            reason: "expected 64 hex digits (32 bytes)",
        })?;
        let central_key =
            SealingPublicKey::from_bytes(sealing).map_err(|_| IdentityError::Invalid {
                what: "central.sealing_key".into(),
                reason: "not an X25519 public key",
            })?;
        let statement_key =
            match &central.statement_key {
                None => None,
                Some(hex) => Some(StatementVerifyingKey::from_hex(hex).map_err(|_| {
                    IdentityError::Invalid {
                        what: "central.statement_key".into(),
                        reason: "expected an Ed25519 public key as 64 hex digits",
                    }
                })?),
            };
        let seed = secret_file("identity.signing_key", &ids.signing_key)?;
        let site_secret = secret_file("identity.site_secret", &ids.site_secret)?;
        Ok(DeviceCredentials {
            identity: Identity {
                device,
                site,
                signing_key: DeviceSigningKey::from_bytes(seed),
                central_key,
                site_secret: SiteSecret::from_bytes(site_secret),
            },
            url: central.url.trim_end_matches('/').to_owned(),
            cert_pem: read("identity.cert", &ids.cert)?,
            key_pem: read("identity.key", &ids.key)?,
            ca_pem: read("central.ca", &central.ca)?,
            statement_key,
        })
    }
}

fn read(key: &'static str, path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|error| IdentityError::Io {
        key,
        path: path.to_owned(),
        error,
    })
}

/// Reads a 32-byte secret written as hex. A file others can read is used but warned about:
/// refusing would stop the school's transfers over a permission bit.
fn secret_file(key: &'static str, path: &Path) -> Result<[u8; 32], IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "secret file is readable by others; chmod 600 it");
            }
        }
    }
    let text = read(key, path)?;
    hex32(text.trim()).ok_or_else(|| IdentityError::Invalid {
        what: format!("{key} ({})", path.display()),
        reason: "expected 64 hex digits (32 bytes)",
    })
}

/// Parses exactly 32 bytes of hex.
pub fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex32_accepts_exactly_32_bytes() {
        assert_eq!(hex32(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(hex32(&"ab".repeat(31)), None);
        assert_eq!(hex32("zz"), None);
    }

    #[test]
    fn credentials_load_from_the_files_the_config_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("signing.key"), "07".repeat(32)).unwrap();
        std::fs::write(d.join("site.secret"), format!("{}\n", "03".repeat(32))).unwrap();
        std::fs::write(d.join("device.pem"), "CERT").unwrap();
        std::fs::write(d.join("device.key"), "KEY").unwrap();
        std::fs::write(d.join("ca.pem"), "CA").unwrap();
        let central = skolebro_protocol::envelope::SealingPrivateKey::from_bytes([9; 32]);
        let text = format!(
            "[central]\nurl = \"https://127.0.0.1:8443/\"\nca = \"ca.pem\"\nsealing_key = \"{}\"\n\
             [identity]\ndevice = \"pi-1\"\nsite = \"46505\"\ncert = \"device.pem\"\nkey = \"device.key\"\n\
             signing_key = \"signing.key\"\nsite_secret = \"site.secret\"\n",
            hex::encode(central.public_key().to_bytes())
        );
        std::fs::write(d.join("agent.toml"), text).unwrap();
        let config = AgentConfig::load(&d.join("agent.toml")).unwrap();
        let creds = DeviceCredentials::load(&config).unwrap();
        assert_eq!(creds.url, "https://127.0.0.1:8443");
        assert_eq!(creds.identity.device.as_str(), "pi-1");
        assert_eq!(creds.identity.signing_key.to_bytes(), [7; 32]);
        assert_eq!(creds.ca_pem, "CA");
    }

    #[test]
    fn an_invalid_sealing_key_is_named_in_the_error() {
        let mut config: AgentConfig = toml::from_str(
            "[central]\nurl = \"https://x\"\nca = \"ca.pem\"\nsealing_key = \"00\"\n\
             [identity]\ndevice = \"pi-1\"\nsite = \"1\"\ncert = \"c\"\nkey = \"k\"\nsigning_key = \"s\"\nsite_secret = \"t\"",
        )
        .unwrap();
        config.resolve_paths(Path::new("/nonexistent"));
        let error = DeviceCredentials::load(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("central.sealing_key"), "{error}");
    }
}
