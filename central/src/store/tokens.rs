//! Enrollment tokens: registered by operations, spent once by a device's enrollment. The
//! store keeps only a token's hash; [`TokenStore`] is what the enrollment handler and the
//! operators' token list call.

use skolebro_protocol::{DeviceId, DeviceVerifyingKey, SiteId, SiteSecret};

use super::columns::{bytes32, stored_device, stored_site, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// The id an enrollment token is listed, logged and revoked by: the first 16 hex characters
/// of the token's SHA-256. It names the token without being able to spend it.
pub fn token_id(token_sha256: &[u8; 32]) -> String {
    hex::encode(&token_sha256[..8])
}

/// A one-time enrollment token to register: central keeps only the token's SHA-256, so its
/// database (or a backup of it) cannot enroll anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// SHA-256 of the token's text (its hex characters as written on the stick).
    pub token_sha256: [u8; 32],
    /// The site a device enrolled with this token belongs to.
    pub site: SiteId,
    /// The school's name, for the operators' lists.
    pub site_name: String,
    /// When the token was registered.
    pub created: Timestamp,
    /// From this time on the token is refused.
    pub expires: Timestamp,
}

/// An enrollment token as the operators see it: everything but the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// See [`token_id`].
    pub id: String,
    pub site: SiteId,
    pub site_name: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    /// The device that spent the token, once one has.
    pub used_by: Option<DeviceId>,
    /// When it was spent.
    pub used_at: Option<Timestamp>,
    /// Revoked by an operator (a lost stick): refused from then on.
    pub revoked: bool,
}

impl TokenRecord {
    /// Whether the token may enroll a device at `at`; otherwise the refusal, in the order an
    /// operator would look for the cause (revoked, spent, expired). The enrollment handler
    /// asks before issuing a certificate, and the store asks again inside its transaction.
    pub fn usable_at(&self, at: Timestamp) -> Result<(), StoreError> {
        if self.revoked {
            Err(StoreError::TokenRevoked(self.id.clone()))
        } else if self.used_by.is_some() {
            Err(StoreError::TokenUsed(self.id.clone()))
        } else if at >= self.expires {
            Err(StoreError::TokenExpired(self.id.clone()))
        } else {
            Ok(())
        }
    }
}

/// One enrollment, as [`TokenStore::enroll`] carries it out.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// SHA-256 of the token the device presented.
    pub token_sha256: [u8; 32],
    /// The device's Ed25519 envelope key; the device id derives from it and the token's site.
    pub verifying_key: DeviceVerifyingKey,
    /// A fresh random secret, stored only if the site has none yet. Made by the caller so
    /// the store needs no randomness of its own.
    pub new_site_secret: SiteSecret,
    /// When the enrollment happens: checked against the token's expiry, recorded as its use.
    pub at: Timestamp,
}

/// What an enrollment registered: the device, its site, and the site's handle secret for the
/// device to key its record handles with (DESIGN decision 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub device: DeviceId,
    pub site: SiteId,
    pub site_secret: SiteSecret,
}

/// A token row as both databases read it (times in Unix milliseconds), before its ids are
/// checked.
pub(crate) struct TokenRow {
    pub token_sha256: Vec<u8>,
    pub site: String,
    pub site_name: String,
    pub created: i64,
    pub expires: i64,
    pub used_by: Option<String>,
    pub used_at: Option<i64>,
    pub revoked: bool,
}

/// The columns a [`TokenRow`] is read from, in its field order.
pub(crate) const TOKEN_COLUMNS: &str =
    "token_sha256, site, site_name, created, expires, used_by, used_at, revoked";

impl TokenRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<TokenRow, R::Error> {
        Ok(TokenRow {
            token_sha256: row.column(0)?,
            site: row.column(1)?,
            site_name: row.column(2)?,
            created: row.column(3)?,
            expires: row.column(4)?,
            used_by: row.column(5)?,
            used_at: row.column(6)?,
            revoked: row.column(7)?,
        })
    }

    pub(super) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let site = stored_site(&self.site)?;
        let used_by = self.used_by.as_deref().map(stored_device).transpose()?;
        Ok(TokenRecord {
            id: token_id(&bytes32(&self.token_sha256, "token hash")?),
            site,
            site_name: self.site_name,
            created: Timestamp(self.created),
            expires: Timestamp(self.expires),
            used_by,
            used_at: self.used_at.map(Timestamp),
            revoked: self.revoked,
        })
    }
}

/// Enrollment tokens and the enrollment that spends one.
pub trait TokenStore: Send + Sync {
    /// Registers an enrollment token by its hash. A second token with the same hash or id is
    /// refused with [`StoreError::TokenExists`].
    fn create_token<'a>(&'a self, token: &'a NewToken) -> StoreFuture<'a, ()>;

    /// The token with this hash, or `None`: enrollment's look before it issues a certificate.
    fn token<'a>(&'a self, token_sha256: &'a [u8; 32]) -> StoreFuture<'a, Option<TokenRecord>>;

    /// Every token, newest first.
    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>>;

    /// Revokes the token with this id (see [`token_id`]), used or not; again is no error. An
    /// unknown id is [`StoreError::TokenUnknown`].
    fn revoke_token<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Enrolls a device with a one-time token, all in one transaction: the token must be
    /// known, not revoked, not used and not expired at `request.at`
    /// ([`TokenRecord::usable_at`]); the device ([`enrolled_device_id`] of the token's site
    /// and the key) is registered as [`DeviceStore::register_device`] does (a revoked device stays
    /// refused: [`StoreError::DeviceRevoked`]); the site gets `request.new_site_secret`
    /// unless it has a secret already; and the token is marked used by the device. Any
    /// refusal changes nothing.
    ///
    /// [`enrolled_device_id`]: super::enrolled_device_id
    /// [`DeviceStore::register_device`]: super::DeviceStore::register_device
    fn enroll<'a>(&'a self, request: &'a EnrollRequest) -> StoreFuture<'a, Enrolled>;
}
