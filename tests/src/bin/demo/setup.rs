//! The keys and certificates of the demo's one site, written into the demo folder the way
//! provisioning would leave them, and the agent's config pointing at them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
use skolebro_protocol::{DeviceId, SiteId, SiteSecret};
use skolebro_provisioning::pki::{write_private_key, DevPki, Validity};

pub(crate) const DEVICE: &str = "demo-pi";
pub(crate) const SITE: &str = "demo-site";

/// The keys and certificates of one demo site, written into the demo folder.
pub(crate) struct Setup {
    pub device: DeviceId,
    pub site: SiteId,
    pub signing_key: DeviceSigningKey,
    pub sealing_key: SealingPrivateKey,
    pub site_secret: SiteSecret,
}

impl Setup {
    pub(crate) fn create(dir: &Path) -> anyhow::Result<Setup> {
        let validity = Validity::from_now(Duration::from_secs(30 * 24 * 3600));
        let pki = DevPki::generate(validity)?;
        pki.write_to(dir)?;
        let device = DeviceId::new(DEVICE)?;
        let site = SiteId::new(SITE)?;
        let credentials = pki.device_ca.issue_device(&device, &site, validity)?;
        std::fs::write(dir.join("device.pem"), &credentials.cert_pem)?;
        write_private_key(&dir.join("device.key"), &credentials.key_pem)?;

        let signing_key = DeviceSigningKey::generate()?;
        write_private_key(
            &dir.join("signing.key"),
            &hex::encode(signing_key.to_bytes()),
        )?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let site_secret = SiteSecret::from_bytes(secret);
        write_private_key(&dir.join("site.secret"), &hex::encode(secret))?;
        let sealing_key = SealingPrivateKey::generate()?;
        write_private_key(
            &dir.join("sealing.key"),
            &hex::encode(sealing_key.to_bytes()),
        )?;
        Ok(Setup {
            device,
            site,
            signing_key,
            sealing_key,
            site_secret,
        })
    }

    pub(crate) fn write_agent_config(
        &self,
        dir: &Path,
        central: std::net::SocketAddr,
    ) -> anyhow::Result<PathBuf> {
        let path = dir.join("agent.toml");
        let text = format!(
            r#"# Written by `skolebro-demo`.
state_dir = "state"
drop_dir = "drop"
after_ingest = "delete"
heartbeat_seconds = 5

[central]
url = "https://127.0.0.1:{port}"
ca = "{central_ca}"
sealing_key = "{sealing}"

[identity]
device = "{DEVICE}"
site = "{SITE}"
cert = "device.pem"
key = "device.key"
signing_key = "signing.key"
site_secret = "site.secret"
"#,
            port = central.port(),
            central_ca = DevPki::CENTRAL_CA_CERT,
            sealing = hex::encode(self.sealing_key.public_key().to_bytes()),
        );
        std::fs::write(&path, text)?;
        if !path.exists() {
            bail!("could not write {}", path.display());
        }
        Ok(path)
    }
}
