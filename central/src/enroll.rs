//! Enrollment and renewal of devices (DESIGN decision 6) as central decides them: the
//! settings, the rate limit per peer address and the certificate validity. The device
//! listener's `POST /v1/enroll` and `POST /v1/renew` (`crate::api::device::enroll`) drive it.
//!
//! An enrollment goes: rate limit per peer address -> the body (token, CSR, the device's
//! Ed25519 envelope key) -> the token's SHA-256 looked up in the store (unknown, revoked,
//! used and expired tokens are refused there, before any work) -> the device id derived from
//! the token's site and the key -> a certificate issued from the CSR by the device CA, which
//! checks that the CSR names that device -> the store's `enroll`, which checks the token
//! again and, in one transaction, registers the device, creates the site's secret if needed
//! and spends the token. The certificate is handed out only after that commit, so a refused
//! enrollment leaves nothing behind. The rate limit is a token bucket per address
//! (`rate_limit`, shared with the web interface's sign-in).
//!
//! The token itself is never logged or stored: logs name it by its id (the first 16 hex
//! characters of its SHA-256), like the operators' lists do.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skolebro_protocol::DeviceVerifyingKey;
use skolebro_provisioning::{CertificateAuthority, Validity};

use crate::rate_limit::RateLimiter;

/// Default lifetime of an issued device certificate: long enough that a Pi switched off over
/// the summer holidays still connects in August, short enough that a lost device that was
/// never revoked stops working on its own. The agent renews well before the end.
pub const DEFAULT_CERT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Default number of enrollment requests one peer address may make per minute: a school's
/// NAT holds one Pi or a few, so ten is plenty for retries, and a token guesser or a flood of
/// CSRs gets nowhere.
pub const DEFAULT_ENROLL_PER_IP_PER_MINUTE: u32 = 10;

/// Longest token accepted. The sticks carry 64 hex characters; the bound keeps a request
/// from making central hash megabytes.
pub(crate) const MAX_TOKEN_LEN: usize = 256;

/// How central enrolls devices: the device CA and the limits. Part of
/// [`crate::ServerParts`]; [`Default`] leaves enrollment disabled.
#[derive(Clone)]
pub struct EnrollSettings {
    /// The device CA with its private key. Without it `/v1/enroll` and `/v1/renew` answer
    /// 503 `enrollment_disabled`: a central that only ingests need not hold the CA key.
    pub device_ca: Option<Arc<CertificateAuthority>>,
    /// Lifetime of the certificates issued.
    pub cert_lifetime: Duration,
    /// Enrollment requests per peer address and minute (a token bucket holding as many).
    pub per_ip_per_minute: u32,
}

impl Default for EnrollSettings {
    fn default() -> EnrollSettings {
        EnrollSettings {
            device_ca: None,
            cert_lifetime: DEFAULT_CERT_LIFETIME,
            per_ip_per_minute: DEFAULT_ENROLL_PER_IP_PER_MINUTE,
        }
    }
}

impl std::fmt::Debug for EnrollSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollSettings")
            .field("device_ca", &self.device_ca)
            .field("cert_lifetime", &self.cert_lifetime)
            .field("per_ip_per_minute", &self.per_ip_per_minute)
            .finish()
    }
}

/// The enrollment state a server keeps: its settings and the rate limit's buckets. (Not
/// a pupil's enrollment in a group, `skolebro_protocol::Enrollment`.)
pub(crate) struct Enroller {
    settings: EnrollSettings,
    limiter: RateLimiter<IpAddr>,
}

impl Enroller {
    pub(crate) fn new(settings: EnrollSettings) -> Enroller {
        Enroller {
            limiter: RateLimiter::new(settings.per_ip_per_minute, Duration::from_secs(60)),
            settings,
        }
    }

    /// Takes one request from `peer`'s allowance, or says how long until there is one.
    pub(crate) fn check_rate(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        self.limiter.check(&peer, now)
    }

    /// The device CA, or `None` when enrollment is disabled.
    pub(crate) fn device_ca(&self) -> Option<Arc<CertificateAuthority>> {
        self.settings.device_ca.clone()
    }

    /// The validity of a certificate issued now.
    pub(crate) fn validity(&self) -> Validity {
        Validity::from_now(self.settings.cert_lifetime)
    }
}

/// An Ed25519 public key as 64 hex characters, as the enrollment body carries it.
pub(crate) fn verifying_key(text: &str) -> Option<DeviceVerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    DeviceVerifyingKey::from_bytes(bytes).ok()
}

/// Seconds since 1970 of a time, as the API's `*_unix` fields carry them.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_lives_as_configured() {
        let enroller = Enroller::new(EnrollSettings {
            cert_lifetime: Duration::from_secs(3_600),
            ..EnrollSettings::default()
        });
        let validity = enroller.validity();
        let now = unix_seconds(SystemTime::now());
        let not_after = unix_seconds(validity.not_after());
        assert!((now + 3_590..=now + 3_610).contains(&not_after));
    }
}
