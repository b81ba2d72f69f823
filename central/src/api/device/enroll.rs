//! `POST /v1/enroll` and `POST /v1/renew` on the device listener (docs/API.md,
//! "Enrollment"): the HTTP side of [`crate::enroll`]. Enrollment is open to connections
//! without a client certificate; renewal is for the connection's own device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::api::{self, Enrolled, RenewRequest, Renewed};
use skolebro_protocol::{DeviceId, SiteId, SiteSecret};
use skolebro_provisioning::pki::MAX_CSR_PEM_BYTES;
use skolebro_provisioning::{CertificateAuthority, DeviceIdentity, PkiError};

use super::caller::{authorize, PeerAddr};
use crate::api::error::ApiError;
use crate::enroll::{unix_seconds, verifying_key, MAX_TOKEN_LEN};
use crate::rate_limit::retry_after_seconds;
use crate::state::AppState;
use crate::store::{enrolled_device_id, token_id, EnrollRequest, StoreError, Timestamp};

/// `POST /v1/enroll`: open to connections without a client certificate.
pub(crate) async fn post_enroll(
    State(state): State<Arc<AppState>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Err(wait) = state.enroller.check_rate(peer.ip(), Instant::now()) {
        tracing::warn!(peer = %peer.ip(), "enrollment refused: rate_limited");
        return Err(rate_limited(wait));
    }
    let ca = state.enroller.device_ca().ok_or_else(enrollment_disabled)?;
    let body: api::EnrollRequest = parse(body)?;
    if body.token.is_empty() || body.token.len() > MAX_TOKEN_LEN {
        return Err(bad_request("the token is missing or too long"));
    }
    let Some(verifying_key) = verifying_key(&body.signing_key) else {
        return Err(bad_request(
            "signing_key must be an Ed25519 public key as 64 hex characters",
        ));
    };
    let token_sha256: [u8; 32] = Sha256::digest(body.token.as_bytes()).into();
    let token = token_id(&token_sha256);

    // A first look, so a spent or unknown token costs no certificate; the store checks again
    // inside its transaction.
    let now = Timestamp::now();
    let site = match state.store.token(&token_sha256).await? {
        Some(record) => match record.usable_at(now) {
            Ok(()) => record.site,
            Err(error) => return Err(refuse(&token, error)),
        },
        None => return Err(refuse(&token, StoreError::TokenUnknown)),
    };
    let Some(device) = enrolled_device_id(&site, &verifying_key) else {
        tracing::error!(token, %site, "the token's site is too long for a device id");
        return Err(bad_request("the token's site is too long for a device id"));
    };
    let (cert_pem, not_after) = issue(&state, &ca, &body.csr_pem, &device, &site).await?;
    let mut secret = [0u8; 32];
    if getrandom::fill(&mut secret).is_err() {
        tracing::error!("system randomness unavailable; enrollment not possible");
        return Err(ApiError::Internal);
    }
    let request = EnrollRequest {
        token_sha256,
        verifying_key,
        new_site_secret: SiteSecret::from_bytes(secret),
        at: now,
    };
    let enrolled = state
        .store
        .enroll(&request)
        .await
        .map_err(|error| refuse(&token, error))?;
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
    Ok((
        StatusCode::OK,
        Json(Enrolled {
            device: enrolled.device.to_string(),
            site: enrolled.site.to_string(),
            cert_pem,
            site_secret: hex::encode(enrolled.site_secret.as_bytes()),
            not_after_unix: not_after,
            site_has_records,
            statement_key: state
                .releases
                .statement_key
                .as_ref()
                .map(|key| key.verifying_key().to_hex()),
        }),
    )
        .into_response())
}

/// `POST /v1/renew`: a new certificate for the connection's device and site, for the key in
/// the CSR (the agent may keep its TLS key or make a new one).
pub(crate) async fn post_renew(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ca = state.enroller.device_ca().ok_or_else(enrollment_disabled)?;
    let body: RenewRequest = parse(body)?;
    authorize(&state, &identity).await?;
    let (cert_pem, not_after) =
        issue(&state, &ca, &body.csr_pem, &identity.device, &identity.site).await?;
    tracing::info!(device = %identity.device, not_after, "certificate renewed");
    Ok((
        StatusCode::OK,
        Json(Renewed {
            cert_pem,
            not_after_unix: not_after,
        }),
    )
        .into_response())
}

/// Issues a device certificate from the CSR, on a blocking thread (parsing and signing are
/// CPU work). Returns the PEM and `not_after` in Unix seconds.
async fn issue(
    state: &AppState,
    ca: &Arc<CertificateAuthority>,
    csr_pem: &str,
    device: &DeviceId,
    site: &SiteId,
) -> Result<(String, u64), ApiError> {
    if csr_pem.len() > MAX_CSR_PEM_BYTES {
        return Err(bad_request(format!(
            "the CSR is over the limit of {MAX_CSR_PEM_BYTES} bytes"
        )));
    }
    let validity = state.enroller.validity();
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
            Err(ApiError::Internal)
        }
        Err(error) => {
            tracing::error!(%device, %error, "the issuing task failed");
            Err(ApiError::Internal)
        }
    }
}

/// The body as JSON of type `T`: 413 over the listener's body limit, 400 when cut off or
/// not the documented JSON.
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                "the request body is too large",
            ));
        }
        Err(_) => return Err(bad_request("the body could not be read")),
    };
    serde_json::from_slice(&body)
        .map_err(|_| bad_request("the body is not the documented JSON (see docs/API.md)"))
}

/// The answer to an enrollment the store refused (or would refuse). Codes per docs/API.md.
fn refuse(token: &str, error: StoreError) -> ApiError {
    let (status, code) = match &error {
        StoreError::TokenUnknown => (StatusCode::FORBIDDEN, "token_unknown"),
        StoreError::TokenExpired(_) => (StatusCode::FORBIDDEN, "token_expired"),
        StoreError::TokenUsed(_) => (StatusCode::FORBIDDEN, "token_used"),
        StoreError::TokenRevoked(_) => (StatusCode::FORBIDDEN, "token_revoked"),
        StoreError::DeviceRevoked(_) => (StatusCode::FORBIDDEN, "device_revoked"),
        StoreError::DeviceConflict(_) => (StatusCode::CONFLICT, "device_conflict"),
        _ => return error.into(),
    };
    tracing::warn!(token, code, "enrollment refused");
    // The texts name the token's id and device ids, never the token.
    ApiError::new(status, code, error.to_string())
}

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_request", detail)
}

fn enrollment_disabled() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "enrollment_disabled",
        "central holds no device CA key ([tls] device_ca_key)",
    )
}

fn rate_limited(wait: Duration) -> ApiError {
    let seconds = retry_after_seconds(wait);
    ApiError::RateLimited {
        detail: format!("too many enrollment requests from this address; try again in {seconds} s"),
        retry_after: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::header;

    #[test]
    fn the_retry_after_header_rounds_up_to_whole_seconds() {
        let response = rate_limited(Duration::from_millis(1_200)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
