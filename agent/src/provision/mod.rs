//! Provisioning by config stick and the certificate lifecycle (DESIGN decision 6): the step
//! before the data flow. A stick's bundle is found and checked ([`stick`]); the device makes
//! its own TLS key ([`DeviceKey`], Ed25519) and envelope signing key, and sends only a CSR,
//! the stick's one-time token and the signing public key to central's `POST /v1/enroll`, over
//! TLS pinned to the CA on the stick (no system roots, no client certificate yet). Central's
//! answer (certificate, device id, site secret) is checked and stored with the stick's
//! content as one [`DeviceEnrollment`] ([`enrollment`]); the daemon then starts the chain afresh
//! for the new device and runs. Nothing is written before central said yes, so a refused
//! stick or enrollment changes nothing; the same stick inserted again (same token id) is a
//! no-op. Later, [`renew`] replaces the certificate and key over mutual TLS before expiry.
//!
//! Logs and errors name files, ids and reasons, never the token, a key or a secret.

pub mod enrollment;
pub mod stick;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use skolebro_protocol::api::{EnrollRequest, Enrolled, ErrorBody};
use skolebro_protocol::envelope::{DeviceId, DeviceSigningKey, SiteId};
use skolebro_protocol::stick::StickVerifyingKey;
use skolebro_protocol::PullShare;
use skolebro_provisioning::pki::{DeviceKey, PkiError};
use skolebro_provisioning::tls::{self, ClientIdentity, TlsError};

pub use enrollment::{settle_chain, DeviceEnrollment, EnrollmentError};
pub use stick::{bundle_path, find_bundles, read_stick, stick_root_hint, Refusal, VerifiedStick};

use crate::clock::{unix, AgentClock};
use crate::config::AgentConfig;
use crate::identity::hex32;
use crate::trusted_keys::TrustedKeys;
use crate::uplink::{error_chain, Central, UplinkError};

/// Why provisioning or renewal did not happen. Either way nothing on disk changed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The stick key installed with the agent is missing or unusable: no stick can be trusted.
    #[error("stick_key ({}): {reason}", path.display())]
    StickKey { path: PathBuf, reason: String },
    /// The stick was refused (see [`Refusal`]).
    #[error("config stick {}: refused: {reason}", path.display())]
    Refused { path: PathBuf, reason: Refusal },
    /// Central refused the enrollment (`token_used`, `token_expired`, ...). Final for this
    /// stick, except `rate_limited` and `enrollment_disabled`.
    #[error("central refused the enrollment: {status} {code}")]
    CentralRefused { status: u16, code: String },
    /// Central could not be reached (network, TLS, timeout).
    #[error("central unreachable: {0}")]
    Unreachable(String),
    /// Central answered something this agent cannot use.
    #[error("central's answer is not usable: {0}")]
    BadAnswer(String),
    /// Renewal over mutual TLS failed.
    #[error("renewal: {0}")]
    Renew(#[from] UplinkError),
    #[error("TLS client: {0}")]
    Tls(#[from] TlsError),
    #[error("device key: {0}")]
    Key(#[from] PkiError),
    #[error("device signing key: {0}")]
    SigningKey(String),
    #[error(transparent)]
    Storage(#[from] EnrollmentError),
}

impl ProvisionError {
    /// Whether trying the same stick again later can succeed (central busy or away).
    pub fn is_transient(&self) -> bool {
        match self {
            ProvisionError::Unreachable(_) => true,
            ProvisionError::CentralRefused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// What [`provision`] did.
#[derive(Debug)]
pub enum Provisioned {
    /// The device enrolled; the new enrollment is stored.
    Enrolled(DeviceEnrollment),
    /// The device is already enrolled with this stick's token: nothing changed.
    AlreadyEnrolled(DeviceEnrollment),
}

/// Reads the stick key this device trusts now ([`TrustedKeys::stick`]): the newest rotated
/// one, else the one installed with the agent (`stick_key`, the `stick.pub` format).
pub fn load_stick_key(config: &AgentConfig) -> Result<StickVerifyingKey, ProvisionError> {
    TrustedKeys::of(config).stick().map_err(|error| {
        let (path, reason) = error.into_path_and_reason(&config.stick_key);
        ProvisionError::StickKey { path, reason }
    })
}

/// The device id central assigns: `<site>-<first 8 hex of SHA-256 of the signing public
/// key's 32 bytes>`, known before enrolling so the CSR can name it.
pub fn device_id(site: &SiteId, signing: &DeviceSigningKey) -> Result<DeviceId, ProvisionError> {
    let digest = Sha256::digest(signing.verifying_key().to_bytes());
    DeviceId::new(format!("{site}-{}", hex::encode(&digest[..4])))
        .map_err(|_| ProvisionError::BadAnswer("the site id makes no valid device id".into()))
}

/// Provisions from the bundle at `bundle`: checks it, and unless the device is already
/// enrolled with its token, enrolls with central and stores the enrollment in `state_dir`
/// with the pull share the stick names, if any ([`crate::share_source`]), then applies the
/// stick's drop share settings, if it carries any, to `drop_share` (a failure shows in
/// `status`, see [`crate::drop_share::status`]).
pub async fn provision(
    state_dir: &Path,
    key: &StickVerifyingKey,
    clock: &Arc<AgentClock>,
    bundle: &Path,
    drop_share: &crate::drop_share::Target,
) -> Result<Provisioned, ProvisionError> {
    let refused = |reason: Refusal| ProvisionError::Refused {
        path: bundle.to_owned(),
        reason,
    };
    // The token's expiry matters only for a new enrollment: the stick this device enrolled
    // with, inserted again (or left in) after its token ran out, is still a no-op.
    let stick = read_stick(bundle, key, None).map_err(refused)?;
    if let Some(current) = DeviceEnrollment::load(state_dir)? {
        if current.token_id == stick.token_id {
            return Ok(Provisioned::AlreadyEnrolled(current));
        }
    }
    if let Some(now) = clock.synced_now() {
        stick
            .body
            .check_expiry(unix(now))
            .map_err(|e| refused(Refusal::Bundle(e)))?;
    }
    tracing::info!(file = %bundle.display(), site = %stick.body.site_id, token_id = %stick.token_id, "enrolling with central");
    let enrollment = enroll(&stick, clock).await?;
    // Stored before the enrollment, so the daemon never starts on an enrollment without the
    // source its stick gave; central spent the token, so a failure is logged, not returned.
    store_share_source(state_dir, stick.body.share_source.as_ref());
    enrollment.save(state_dir)?;
    if let Some((not_before, _)) = enrollment.cert_validity() {
        clock.advance(not_before);
    }
    clock.persist();
    tracing::info!(device = %enrollment.device, site = %enrollment.site, token_id = %enrollment.token_id, "enrolled");
    // The share is not what enrolls the device: a failure is logged, `apply` records it for
    // `status`, and enrollment stands.
    if let Some(settings) = &stick.body.drop_share {
        if let Err(error) = crate::drop_share::apply(settings, drop_share) {
            tracing::error!(%error, "cannot apply the stick's drop share settings");
        }
    }
    Ok(Provisioned::Enrolled(enrollment))
}

/// Stores the stick's pull share (or takes back an earlier stick's), logging what it did:
/// the server, share, folder, user and what becomes of a pulled export, never the hash.
fn store_share_source(state_dir: &Path, settings: Option<&PullShare>) {
    let settings = match settings {
        Some(settings) if !settings.is_valid() => {
            let (name, reason) = settings.problem().unwrap_or(("share", "is invalid"));
            tracing::error!(
                setting = name,
                reason,
                "the stick's pull share cannot be used; the export source stays as agent.toml says"
            );
            None
        }
        other => other,
    };
    match crate::share_source::store(state_dir, settings) {
        Ok(()) => {
            if let Some(s) = settings {
                tracing::info!(server = %s.server, share = %s.share, folder = %s.folder, user = %s.user, after = %s.after, "the stick's pull share is the export source unless agent.toml names a [source]");
            }
        }
        Err(error) => tracing::error!(%error, "cannot store the stick's pull share"),
    }
}

async fn enroll(
    stick: &VerifiedStick,
    clock: &Arc<AgentClock>,
) -> Result<DeviceEnrollment, ProvisionError> {
    let body = &stick.body;
    let signing =
        DeviceSigningKey::generate().map_err(|e| ProvisionError::SigningKey(e.to_string()))?;
    let device = device_id(&body.site_id, &signing)?;
    let tls_key = DeviceKey::generate()?;
    let csr_pem = tls_key.csr(&device)?;
    let client = tls::pinned_client_builder(None, &body.central_ca_pem, clock.clone())?
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(TlsError::from)?;
    let response = client
        .post(format!(
            "{}/v1/enroll",
            body.central_url.trim_end_matches('/')
        ))
        .json(&EnrollRequest {
            token: body.token.clone(),
            csr_pem,
            signing_key: hex::encode(signing.verifying_key().to_bytes()),
        })
        .send()
        .await
        .map_err(|e| ProvisionError::Unreachable(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let error: ErrorBody = response.json().await.unwrap_or_default();
        return Err(ProvisionError::CentralRefused {
            status: status.as_u16(),
            code: error.error,
        });
    }
    let answer: Enrolled = response
        .json()
        .await
        .map_err(|e| ProvisionError::BadAnswer(e.to_string()))?;
    if answer.device != device.as_str() || answer.site != body.site_id.as_str() {
        return Err(ProvisionError::BadAnswer(format!(
            "central enrolled device {} for site {}, not {device} for {}",
            answer.device, answer.site, body.site_id
        )));
    }
    let key_pem = tls_key.private_key_pem();
    check_certificate(&answer.cert_pem, &key_pem, &device, &body.site_id)?;
    hex32(&answer.site_secret)
        .ok_or_else(|| ProvisionError::BadAnswer("the site secret is not 64 hex digits".into()))?;
    if let Some(key) = &answer.statement_key {
        skolebro_protocol::StatementVerifyingKey::from_hex(key).map_err(|_| {
            ProvisionError::BadAnswer("the statement key is not an Ed25519 public key".into())
        })?;
    }
    Ok(DeviceEnrollment {
        device: answer.device,
        site: answer.site,
        token_id: stick.token_id.clone(),
        enrolled_unix: unix(clock.now()),
        renewed_unix: None,
        central_url: body.central_url.trim_end_matches('/').to_owned(),
        central_ca_pem: body.central_ca_pem.clone(),
        sealing_key: hex::encode(body.sealing_key),
        cert_pem: answer.cert_pem,
        key_pem,
        signing_key: hex::encode(signing.to_bytes()),
        site_secret: answer.site_secret.trim().to_owned(),
        settings_toml: body.settings_toml.clone(),
        site_has_records: answer.site_has_records,
        schools: body.schools.clone(),
        statement_key: answer.statement_key,
    })
}

/// Renews the certificate of `current` through `central` (mutual TLS with the current
/// certificate), with a fresh TLS key, and stores the result in `state_dir`. Returns the new
/// enrollment; the caller rebuilds its client from it.
pub async fn renew(
    state_dir: &Path,
    central: &Central,
    current: &DeviceEnrollment,
    clock: &AgentClock,
) -> Result<DeviceEnrollment, ProvisionError> {
    let device = DeviceId::new(current.device.clone())
        .map_err(|_| ProvisionError::BadAnswer("the stored device id is not valid".into()))?;
    let site = SiteId::new(current.site.clone())
        .map_err(|_| ProvisionError::BadAnswer("the stored site id is not valid".into()))?;
    let tls_key = DeviceKey::generate()?;
    let renewed = central.renew(&tls_key.csr(&device)?).await?;
    let key_pem = tls_key.private_key_pem();
    check_certificate(&renewed.cert_pem, &key_pem, &device, &site)?;
    let next = DeviceEnrollment {
        cert_pem: renewed.cert_pem,
        key_pem,
        renewed_unix: Some(unix(clock.now())),
        ..current.clone()
    };
    next.save(state_dir)?;
    if let Some((not_before, _)) = next.cert_validity() {
        clock.advance(not_before);
    }
    Ok(next)
}

/// The reqwest client for central with `enrollment`'s certificate, checked against `clock`.
pub fn central_client(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    clock: Arc<AgentClock>,
) -> Result<reqwest::Client, TlsError> {
    Ok(
        tls::pinned_client_builder(Some(ClientIdentity { cert_pem, key_pem }), ca_pem, clock)?
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .build()?,
    )
}

/// Refuses a certificate that is not for `key_pem`, `device` and `site`.
fn check_certificate(
    cert_pem: &str,
    key_pem: &str,
    device: &DeviceId,
    site: &SiteId,
) -> Result<(), ProvisionError> {
    if !tls::certificate_matches_key(cert_pem, key_pem)? {
        return Err(ProvisionError::BadAnswer(
            "the certificate is not for the key the device sent".into(),
        ));
    }
    let named = tls::certificate_identity(cert_pem)?;
    if &named.device != device || &named.site != site {
        return Err(ProvisionError::BadAnswer(format!(
            "the certificate names device {} of site {}",
            named.device, named.site
        )));
    }
    Ok(())
}

/// Bundles for the tests of this module and of the daemon.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use skolebro_protocol::stick::{StickBody, StickSigningKey};
    use skolebro_protocol::{SiteId, SiteInfo};

    /// A stick body for site 4601-12345 with a little of each kind of setting.
    pub(crate) fn body() -> StickBody {
        StickBody {
            site: SiteInfo {
                fylke: "46".into(),
                kommune: "4601".into(),
                skolenummer: "12345".into(),
                name: "Testskolen".into(),
            },
            site_id: SiteId::new("4601-12345").unwrap(),
            central_url: "https://127.0.0.1:1".into(),
            central_ca_pem: String::new(),
            sealing_key: skolebro_protocol::SealingPrivateKey::from_bytes([9; 32])
                .public_key()
                .to_bytes(),
            token: "ab".repeat(32),
            token_expires_unix: u64::MAX,
            written_unix: 1_764_000_000,
            settings_toml: "rescan_seconds = 5\nformat = \"elevliste\"\n".into(),
            schools: vec!["4601/12345=Testskolen".parse().unwrap()],
            drop_share: None,
            share_source: None,
        }
    }

    /// Writes `body` signed by `key` at `<root>/SKOLEBRO/BUNDLE.SKB`.
    pub(crate) fn write_bundle(root: &Path, body: &StickBody, key: &StickSigningKey) -> PathBuf {
        let dir = root.join("SKOLEBRO");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("BUNDLE.SKB");
        std::fs::write(&path, body.sign(key)).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use skolebro_protocol::stick::StickSigningKey;

    use super::testing::{body, write_bundle};
    use super::*;
    use crate::enqueue::Identity;
    use crate::outbox::OutboxConfig;
    use crate::state::Checkpoint;

    /// A drop share passdb in the state folder, which these stick bodies never write.
    fn share_target(state: &Path) -> crate::drop_share::Target {
        crate::drop_share::Target {
            passdb: state.join("drop-share.smbpasswd"),
            usermap: state.join("drop-share.usermap"),
            unix_user: "skolebro-drop".into(),
            state_dir: state.to_owned(),
            passwd: PathBuf::from("/etc/passwd"),
        }
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }

    fn clock(dir: &Path) -> Arc<AgentClock> {
        Arc::new(AgentClock::open(Some(dir), &dir.join("no-sync-marker")).unwrap())
    }

    fn enrollment(token_id: String) -> DeviceEnrollment {
        DeviceEnrollment {
            device: "4601-12345-0a0b0c0d".into(),
            site: "4601-12345".into(),
            token_id,
            enrolled_unix: 1_764_000_000,
            renewed_unix: None,
            central_url: "https://127.0.0.1:1".into(),
            central_ca_pem: String::new(),
            sealing_key: "09".repeat(32),
            cert_pem: String::new(),
            key_pem: String::new(),
            signing_key: "07".repeat(32),
            site_secret: "03".repeat(32),
            settings_toml: String::new(),
            site_has_records: true,
            schools: Vec::new(),
            statement_key: None,
        }
    }

    #[tokio::test]
    async fn a_refused_stick_changes_nothing_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        enrollment("1111111111111111".into()).save(&state).unwrap();
        std::fs::write(state.join("checkpoint"), b"whatever was there").unwrap();
        let before = snapshot(&state);
        let key = StickSigningKey::from_bytes([1; 32]);
        let stick = dir.path().join("stick");
        let path = write_bundle(&stick, &body(), &key);
        let good = std::fs::read(&path).unwrap();

        // Signed by another key.
        let foreign = StickSigningKey::from_bytes([2; 32]).verifying_key();
        let error = provision(
            &state,
            &foreign,
            &clock(&state),
            &path,
            &share_target(&state),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ProvisionError::Refused { .. }), "{error}");
        assert!(error.to_string().contains("BUNDLE.SKB"), "{error}");
        assert!(!error.to_string().contains(&body().token));
        // Tampered with: one byte flipped in the body.
        let mut bad = good.clone();
        bad[40] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let error = provision(
            &state,
            &key.verifying_key(),
            &clock(&state),
            &path,
            &share_target(&state),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ProvisionError::Refused { .. }), "{error}");
        // Expired, on a synced clock.
        let mut expired = body();
        expired.token_expires_unix = 1;
        write_bundle(&stick, &expired, &key);
        std::fs::write(dir.path().join("synced"), "").unwrap();
        let synced = Arc::new(AgentClock::open(Some(&state), &dir.path().join("synced")).unwrap());
        let error = provision(
            &state,
            &key.verifying_key(),
            &synced,
            &path,
            &share_target(&state),
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        std::fs::remove_file(state.join(crate::clock::FLOOR_FILE)).ok();
        assert_eq!(snapshot(&state), before);
    }

    #[tokio::test]
    async fn the_same_stick_inserted_again_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let key = StickSigningKey::from_bytes([1; 32]);
        let path = write_bundle(&dir.path().join("stick"), &body(), &key);
        enrollment(body().token_id()).save(&state).unwrap();
        let before = snapshot(&state);
        // Central (127.0.0.1:1) is never asked: the token id matches.
        let done = provision(
            &state,
            &key.verifying_key(),
            &clock(&state),
            &path,
            &share_target(&state),
        )
        .await
        .unwrap();
        assert!(matches!(done, Provisioned::AlreadyEnrolled(_)));
        assert_eq!(snapshot(&state), before);
    }

    #[tokio::test]
    async fn the_same_stick_after_its_token_expired_is_still_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let key = StickSigningKey::from_bytes([1; 32]);
        let mut expired = body();
        expired.token_expires_unix = 1;
        let path = write_bundle(&dir.path().join("stick"), &expired, &key);
        enrollment(expired.token_id()).save(&state).unwrap();
        let before = snapshot(&state);
        std::fs::write(dir.path().join("synced"), "").unwrap();
        let synced = Arc::new(AgentClock::open(Some(&state), &dir.path().join("synced")).unwrap());
        let done = provision(
            &state,
            &key.verifying_key(),
            &synced,
            &path,
            &share_target(&state),
        )
        .await
        .unwrap();
        assert!(matches!(done, Provisioned::AlreadyEnrolled(_)));
        std::fs::remove_file(state.join(crate::clock::FLOOR_FILE)).ok();
        assert_eq!(snapshot(&state), before);
    }

    #[tokio::test]
    async fn a_new_token_goes_to_central_and_a_failure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let key = StickSigningKey::from_bytes([1; 32]);
        let pki = skolebro_provisioning::DevPki::generate(
            skolebro_provisioning::Validity::from_now(Duration::from_secs(86_400)),
        )
        .unwrap();
        let mut stick = body();
        stick.central_ca_pem = pki.central_ca.cert_pem().to_owned();
        let path = write_bundle(&dir.path().join("stick"), &stick, &key);
        enrollment("1111111111111111".into()).save(&state).unwrap();
        let before = snapshot(&state);
        let error = provision(
            &state,
            &key.verifying_key(),
            &clock(&state),
            &path,
            &share_target(&state),
        )
        .await
        .unwrap_err();
        assert!(error.is_transient(), "{error}");
        std::fs::remove_file(state.join(crate::clock::FLOOR_FILE)).ok();
        assert_eq!(snapshot(&state), before);
    }

    #[test]
    fn a_new_device_starts_its_chain_afresh_and_the_same_device_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let identity = |device: &str| Identity {
            device: DeviceId::new(device).unwrap(),
            site: SiteId::new("4601-12345").unwrap(),
            signing_key: DeviceSigningKey::from_bytes([7; 32]),
            central_key: skolebro_protocol::SealingPrivateKey::from_bytes([9; 32]).public_key(),
            site_secret: skolebro_protocol::SiteSecret::from_bytes([3; 32]),
        };
        let mut old = Checkpoint::default();
        old.head.next_seq.0 = 42;
        old.save(&dir.path().join("checkpoint")).unwrap();
        assert!(settle_chain(
            dir.path(),
            &identity("pi-old"),
            OutboxConfig::default(),
            true
        )
        .unwrap());
        let fresh = Checkpoint::load(&dir.path().join("checkpoint"))
            .unwrap()
            .unwrap();
        assert_eq!(
            fresh,
            Checkpoint {
                needs_snapshot: true,
                ..Checkpoint::default()
            }
        );
        // Same device again: untouched.
        let mut advanced = fresh.clone();
        advanced.head.next_seq.0 = 7;
        advanced.needs_snapshot = false;
        advanced.save(&dir.path().join("checkpoint")).unwrap();
        assert!(!settle_chain(
            dir.path(),
            &identity("pi-old"),
            OutboxConfig::default(),
            true
        )
        .unwrap());
        assert_eq!(
            Checkpoint::load(&dir.path().join("checkpoint")).unwrap(),
            Some(advanced)
        );
        // A new device: fresh again.
        assert!(settle_chain(
            dir.path(),
            &identity("pi-new"),
            OutboxConfig::default(),
            true
        )
        .unwrap());
        let reset = Checkpoint::load(&dir.path().join("checkpoint"))
            .unwrap()
            .unwrap();
        assert!(reset.needs_snapshot);
        assert_eq!(reset.head, skolebro_protocol::ChainHead::genesis());
        // A new device for a site central holds nothing of: an ordinary delta comes first,
        // from an empty state.
        assert!(settle_chain(
            dir.path(),
            &identity("pi-first"),
            OutboxConfig::default(),
            false
        )
        .unwrap());
        let first = Checkpoint::load(&dir.path().join("checkpoint"))
            .unwrap()
            .unwrap();
        assert_eq!(first, Checkpoint::default());
    }

    #[test]
    fn the_enrollment_file_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let e = enrollment("2222222222222222".into());
        e.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(enrollment::ENROLLMENT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(DeviceEnrollment::load(dir.path()).unwrap(), Some(e.clone()));
        assert!(!format!("{e:?}").contains(&"07".repeat(32)));
    }

    #[test]
    fn the_device_id_is_the_site_and_a_hash_of_the_signing_key() {
        let site = SiteId::new("4601-12345").unwrap();
        let key = DeviceSigningKey::from_bytes([7; 32]);
        let id = device_id(&site, &key).unwrap();
        let digest = Sha256::digest(key.verifying_key().to_bytes());
        assert_eq!(
            id.as_str(),
            format!("4601-12345-{}", hex::encode(&digest[..4]))
        );
    }
}
