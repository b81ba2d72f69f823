//! Devices and chain heads as the store keeps them: the [`DeviceRecord`] the ingest looks up
//! to open an envelope, the device id enrollment derives, and the [`DeviceStore`] trait the
//! backends implement in their `devices.rs`.

use skolebro_protocol::{ChainHead, DeviceId, DeviceVerifyingKey, SiteId, SiteSecret};

use super::columns::{bytes32, stored_site};
use super::error::{StoreError, StoreFuture};

/// What central keeps about one registered device, as the ingest needs it to open an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The only site this device may write to: a device's envelopes naming another site are
    /// refused, so one school's Pi cannot change another school's roster.
    pub site: SiteId,
    /// The Ed25519 key the device's envelopes must be signed with, from enrollment.
    pub verifying_key: DeviceVerifyingKey,
    /// Set when operations revoke a lost or stolen device; its batches are then refused.
    pub revoked: bool,
}

/// The device id enrollment gives a device: `"<site>-<first 8 hex of SHA-256(key)>"`, where
/// the key is the 32 bytes of the device's Ed25519 envelope key (docs/API.md). Derived, not
/// chosen, so the agent knows its id (and puts it in its CSR) before it asks, and a token
/// can only ever register the key it was spent on. `None` when the site id is too long to
/// leave room for the suffix; central refuses such sites when a token is created.
pub fn enrolled_device_id(site: &SiteId, key: &DeviceVerifyingKey) -> Option<DeviceId> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.to_bytes());
    DeviceId::new(format!("{site}-{}", hex::encode(&digest[..4]))).ok()
}

/// The longest site id a token may name: the device ids enrollment derives
/// ([`enrolled_device_id`]) add 9 characters and must stay within the 64 of an id.
pub const MAX_ENROLLABLE_SITE_LEN: usize = 55;

pub(crate) fn device_record(
    site: &str,
    verifying_key: &[u8],
    revoked: bool,
) -> Result<DeviceRecord, StoreError> {
    let site = stored_site(site)?;
    let verifying_key = DeviceVerifyingKey::from_bytes(bytes32(verifying_key, "device key")?)
        .map_err(|_| StoreError::Corrupt("stored device key is not a valid key".to_owned()))?;
    Ok(DeviceRecord {
        site,
        verifying_key,
        revoked,
    })
}

/// Devices, their site secrets and chain heads: what the ingest looks up before it opens an
/// envelope, and what enrollment registers.
pub trait DeviceStore: Send + Sync {
    /// Registers a device for a site with its enrollment key. Registering the same device
    /// again with the same site and key does nothing, so enrollment can be retried; with
    /// another site or key it fails with [`StoreError::DeviceConflict`].
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()>;

    /// Marks a device revoked, so none of its batches is applied any more. Revoking an
    /// unknown device fails with [`StoreError::UnknownDevice`], so a typo is not mistaken for
    /// success.
    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()>;

    /// The device's site, key and revocation, or `None` if it never enrolled.
    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>>;

    /// Every registered device with its site, key and revocation, sorted by id: the
    /// operators' fleet list, which survives restarts unlike the heartbeats.
    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>>;

    /// Where the device's chain stands: the head its next envelope must continue.
    /// [`ChainHead::genesis`] for a device that has had nothing applied (or is unknown).
    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead>;

    /// Stores the site's handle secret. Setting the stored secret again does nothing; a
    /// different one is refused with [`StoreError::SiteSecretInUse`] once the site has
    /// records, because their handles would no longer match.
    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()>;

    /// The site's handle secret, for enrollment to hand to a new device of the same site.
    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>>;
}
