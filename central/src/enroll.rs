//! Enrollment and renewal (DESIGN decision 6; docs/API.md, "Enrollment"): `POST /v1/enroll`
//! and `POST /v1/renew` on the device listener of [`crate::server`].
//!
//! An enrollment goes: rate limit per peer address -> the body (token, CSR, the device's
//! Ed25519 envelope key) -> the token's SHA-256 looked up in the [`Store`](crate::store::Store) (unknown, revoked,
//! used and expired tokens are refused here, before any work) -> the device id derived from
//! the token's site and the key ([`enrolled_device_id`]) -> a certificate issued from the
//! CSR by the device CA, which checks that the CSR names that device -> [`Store::enroll`](crate::store::Store::enroll),
//! which checks the token again and, in one transaction, registers the device, creates the
//! site's secret if needed and spends the token. The certificate is handed out only after
//! that commit, so a refused enrollment leaves nothing behind: not a spent token, not a
//! usable certificate. The rate limit is a token bucket per address (`rate_limit`, shared
//! with the web interface's sign-in).
//!
//! The token itself is never logged or stored: logs name it by its id (the first 16 hex
//! characters of its SHA-256), like the operators' lists do.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{DeviceId, DeviceVerifyingKey, SiteId, SiteSecret};
use skolebro_provisioning::pki::MAX_CSR_PEM_BYTES;
use skolebro_provisioning::{CertificateAuthority, DeviceIdentity, PkiError, Validity};

use crate::ingest::{authorize, store_failure};
use crate::rate_limit::{retry_after_seconds, RateLimiter};
use crate::reply;
use crate::server::{AppState, PeerAddr};
use crate::store::{enrolled_device_id, token_id, EnrollRequest, StoreError, Timestamp};

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
const MAX_TOKEN_LEN: usize = 256;

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

/// The enrollment state a server keeps: its settings and the rate limit's buckets.
pub(crate) struct Enrollment {
    settings: EnrollSettings,
    limiter: RateLimiter<IpAddr>,
}

impl Enrollment {
    pub(crate) fn new(settings: EnrollSettings) -> Enrollment {
        Enrollment {
            limiter: RateLimiter::new(settings.per_ip_per_minute, Duration::from_secs(60)),
            settings,
        }
    }

    /// The validity of a certificate issued now.
    fn validity(&self) -> Validity {
        Validity::from_now(self.settings.cert_lifetime)
    }
}

#[derive(Debug, Deserialize)]
struct EnrollBody {
    token: String,
    csr_pem: String,
    signing_key: String,
}

#[derive(Debug, Deserialize)]
struct RenewBody {
    csr_pem: String,
}

/// `POST /v1/enroll`: open to connections without a client certificate.
pub(crate) async fn post_enroll(
    State(state): State<Arc<AppState>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(wait) = state.enrollment.limiter.check(&peer.ip(), Instant::now()) {
        tracing::warn!(peer = %peer.ip(), "enrollment refused: rate_limited");
        return rate_limited(wait);
    }
    let Some(ca) = state.enrollment.settings.device_ca.clone() else {
        return enrollment_disabled();
    };
    let body: EnrollBody = match parse(body) {
        Ok(body) => body,
        Err(error) => return error.answer(),
    };
    if body.token.is_empty() || body.token.len() > MAX_TOKEN_LEN {
        return bad_request("the token is missing or too long");
    }
    let Some(verifying_key) = verifying_key(&body.signing_key) else {
        return bad_request("signing_key must be an Ed25519 public key as 64 hex characters");
    };
    let token_sha256: [u8; 32] = Sha256::digest(body.token.as_bytes()).into();
    let token = token_id(&token_sha256);

    // A first look, so a spent or unknown token costs no certificate; the store checks again
    // inside its transaction.
    let now = Timestamp::now();
    let site = match state.store.token(&token_sha256).await {
        Ok(Some(record)) => match record.usable_at(now) {
            Ok(()) => record.site,
            Err(error) => return refuse(&token, &error),
        },
        Ok(None) => return refuse(&token, &StoreError::TokenUnknown),
        Err(error) => return store_failure(&error),
    };
    let Some(device) = enrolled_device_id(&site, &verifying_key) else {
        tracing::error!(token, %site, "the token's site is too long for a device id");
        return bad_request("the token's site is too long for a device id");
    };
    let (cert_pem, not_after) = match issue(&state, &ca, &body.csr_pem, &device, &site).await {
        Ok(issued) => issued,
        Err(response) => return response,
    };
    let mut secret = [0u8; 32];
    if getrandom::fill(&mut secret).is_err() {
        tracing::error!("system randomness unavailable; enrollment not possible");
        return reply::internal();
    }
    let request = EnrollRequest {
        token_sha256,
        verifying_key,
        new_site_secret: SiteSecret::from_bytes(secret),
        at: now,
    };
    let enrolled = match state.store.enroll(&request).await {
        Ok(enrolled) => enrolled,
        Err(error) => return refuse(&token, &error),
    };
    tracing::info!(device = %enrolled.device, site = %enrolled.site, token, "device enrolled");
    // A site that already holds records (a replaced Pi, a new stick) needs the new device's
    // first batch to be a snapshot, so records the school dropped meanwhile are closed; a new
    // site takes an ordinary delta, which the agent can send in small pieces.
    let site_has_records = match state.store.counts(&enrolled.site).await {
        Ok(counts) => counts.schools + counts.students + counts.groups + counts.enrollments > 0,
        Err(error) => {
            tracing::warn!(%error, "cannot count the site's records; the device will send a snapshot");
            true
        }
    };
    (
        StatusCode::OK,
        Json(json!({
            "device": enrolled.device,
            "site": enrolled.site,
            "cert_pem": cert_pem,
            "site_secret": hex::encode(enrolled.site_secret.as_bytes()),
            "not_after_unix": not_after,
            "site_has_records": site_has_records,
        })),
    )
        .into_response()
}

/// `POST /v1/renew`: a new certificate for the connection's device and site, for the key in
/// the CSR (the agent may keep its TLS key or make a new one).
pub(crate) async fn post_renew(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(ca) = state.enrollment.settings.device_ca.clone() else {
        return enrollment_disabled();
    };
    let body: RenewBody = match parse(body) {
        Ok(body) => body,
        Err(error) => return error.answer(),
    };
    if let Err(response) = authorize(&state, &identity).await {
        return response;
    }
    let (cert_pem, not_after) =
        match issue(&state, &ca, &body.csr_pem, &identity.device, &identity.site).await {
            Ok(issued) => issued,
            Err(response) => return response,
        };
    tracing::info!(device = %identity.device, not_after, "certificate renewed");
    (
        StatusCode::OK,
        Json(json!({"cert_pem": cert_pem, "not_after_unix": not_after})),
    )
        .into_response()
}

/// Issues a device certificate from the CSR, on a blocking thread (parsing and signing are
/// CPU work). Returns the PEM and `not_after` in Unix seconds.
async fn issue(
    state: &AppState,
    ca: &Arc<CertificateAuthority>,
    csr_pem: &str,
    device: &DeviceId,
    site: &SiteId,
) -> Result<(String, u64), Response> {
    if csr_pem.len() > MAX_CSR_PEM_BYTES {
        return Err(bad_request(format!(
            "the CSR is over the limit of {MAX_CSR_PEM_BYTES} bytes"
        )));
    }
    let validity = state.enrollment.validity();
    let not_after = unix_seconds(validity.not_after());
    let issued = {
        let ca = Arc::clone(ca);
        let csr_pem = csr_pem.to_owned();
        let device = device.clone();
        let site = site.clone();
        tokio::task::spawn_blocking(move || ca.issue_from_csr(&csr_pem, &device, &site, validity))
            .await
    };
    match issued {
        Ok(Ok(cert_pem)) => Ok((cert_pem, not_after)),
        Ok(Err(
            error @ (PkiError::BadCsr(_)
            | PkiError::Pem(_)
            | PkiError::UnsupportedKeyAlgorithm
            | PkiError::CsrNameMismatch { .. }),
        )) => {
            tracing::warn!(%device, %error, "CSR refused");
            // The texts name ids and parser findings, never key material.
            Err(bad_request(error.to_string()))
        }
        Ok(Err(error)) => {
            tracing::error!(%device, %error, "issuing a device certificate failed");
            Err(reply::internal())
        }
        Err(error) => {
            tracing::error!(%device, %error, "the issuing task failed");
            Err(reply::internal())
        }
    }
}

/// Why a request body is not usable.
enum BodyError {
    /// Over the listener's body limit.
    Oversized,
    /// Cut off, or not the documented JSON.
    Malformed(&'static str),
}

impl BodyError {
    fn answer(self) -> Response {
        match self {
            BodyError::Oversized => reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                "the request body is too large",
            ),
            BodyError::Malformed(detail) => bad_request(detail),
        }
    }
}

/// The body as JSON of type `T`.
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, BodyError> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(BodyError::Oversized);
        }
        Err(_) => return Err(BodyError::Malformed("the body could not be read")),
    };
    serde_json::from_slice(&body)
        .map_err(|_| BodyError::Malformed("the body is not the documented JSON (see docs/API.md)"))
}

fn verifying_key(text: &str) -> Option<DeviceVerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    DeviceVerifyingKey::from_bytes(bytes).ok()
}

/// The answer to an enrollment the store refused (or would refuse). Codes per docs/API.md.
fn refuse(token: &str, error: &StoreError) -> Response {
    let (status, code) = match error {
        StoreError::TokenUnknown => (StatusCode::FORBIDDEN, "token_unknown"),
        StoreError::TokenExpired(_) => (StatusCode::FORBIDDEN, "token_expired"),
        StoreError::TokenUsed(_) => (StatusCode::FORBIDDEN, "token_used"),
        StoreError::TokenRevoked(_) => (StatusCode::FORBIDDEN, "token_revoked"),
        StoreError::DeviceRevoked(_) => (StatusCode::FORBIDDEN, "device_revoked"),
        StoreError::DeviceConflict(_) => (StatusCode::CONFLICT, "device_conflict"),
        _ => return store_failure(error),
    };
    tracing::warn!(token, code, "enrollment refused");
    // The texts name the token's id and device ids, never the token.
    reply::error(status, code, error.to_string())
}

fn bad_request(detail: impl Into<String>) -> Response {
    reply::error(StatusCode::BAD_REQUEST, "bad_request", detail)
}

fn enrollment_disabled() -> Response {
    reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "enrollment_disabled",
        "central holds no device CA key ([tls] device_ca_key)",
    )
}

fn rate_limited(wait: Duration) -> Response {
    let seconds = retry_after_seconds(wait);
    let mut response = reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many enrollment requests from this address; try again in {seconds} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Seconds since 1970 of a time, as the API's `*_unix` fields carry them.
fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_after_header_rounds_up_to_whole_seconds() {
        let response = rate_limited(Duration::from_millis(1_200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn an_issued_certificate_lives_as_configured() {
        let enrollment = Enrollment::new(EnrollSettings {
            cert_lifetime: Duration::from_secs(3_600),
            ..EnrollSettings::default()
        });
        let validity = enrollment.validity();
        let now = unix_seconds(SystemTime::now());
        let not_after = unix_seconds(validity.not_after());
        assert!((now + 3_590..=now + 3_610).contains(&not_after));
    }
}
