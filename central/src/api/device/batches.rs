//! `POST /v1/batches` (docs/API.md, "Device endpoints"): the ingest of a device's sealed
//! batches.
//!
//! A batch goes: body read up to `max_batch_bytes` (413 beyond, before the rest is read) ->
//! the envelope's *claimed* header ([`Envelope::from_bytes`]) -> checked against the
//! connection's certificate ([`DeviceIdentity`]: same device, same site) and the store's
//! device record (known, not revoked, same site) -> [`open`] against the stored chain head
//! (signature, chain, decryption; on a blocking thread, since a 16 MiB snapshot takes a
//! while) -> every school the payload upserts must be one the device's site is registered
//! with ([`refuse_foreign_school`], else `403 wrong_school`) ->
//! [`Store::apply`](crate::store::Store::apply), which re-checks the chain inside its
//! transaction, so a batch raced in by two requests is applied once and acked twice (DESIGN
//! decisions 2 and 3). Nothing is stored unless every check passed.
//!
//! Logs name devices, sequence numbers, error codes and counts, never record content other
//! than a refused school's numbers (public registry data).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::BodyExt as _;
use skolebro_protocol::api::BatchAck;
use skolebro_protocol::envelope::open;
use skolebro_protocol::site::first_foreign;
use skolebro_protocol::{Envelope, EnvelopeError, Opened, Payload, School, Seq, SiteId};
use skolebro_provisioning::DeviceIdentity;

use super::caller::authorize;
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::{ApplyOutcome, IncomingBatch, StoreError, Timestamp};

/// How long one batch body may take to arrive. A 16 MiB snapshot over a school's 1 Mbit/s
/// uplink takes about two minutes; a connection slower than this is stalled, not slow.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(300);

/// After refusing an oversized body, central reads and discards at most this much more of
/// it (for at most [`DRAIN_TIMEOUT`]) before answering, so the client, still sending, reads
/// the 413 instead of a connection reset. A body beyond this is cut off.
const DRAIN_CAP: u64 = 4 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn post_batch(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = state.max_batch_bytes;
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_limited(request, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::Oversized)) => {
            tracing::warn!(device = %identity.device, limit, "batch refused: oversized");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                format!("the batch is over the limit of {limit} bytes"),
            ));
        }
        Ok(Err(ReadError::Failed)) => {
            tracing::debug!(device = %identity.device, "batch body could not be read");
            return Err(ApiError::bad_request(
                "malformed",
                "the body could not be read",
            ));
        }
        Err(_) => {
            tracing::warn!(device = %identity.device, "batch body timed out");
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the body did not arrive in time",
            ));
        }
    };
    ingest(&state, &identity, body).await
}

enum ReadError {
    Oversized,
    Failed,
}

/// Reads a body of at most `limit` bytes. A declared or actual length over the limit stops
/// the reading there: the body is never held in memory beyond `limit`.
async fn read_limited(request: Request, limit: usize) -> Result<Vec<u8>, ReadError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut body = request.into_body();
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|declared| declared > limit_u64) {
        drain(body).await;
        return Err(ReadError::Oversized);
    }
    let capacity = declared
        .and_then(|declared| usize::try_from(declared).ok())
        .unwrap_or(0)
        .min(limit);
    let mut buffer = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.len() > limit - buffer.len() {
            drain(body).await;
            return Err(ReadError::Oversized);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer)
}

/// Reads and discards what is left of a refused body, bounded by [`DRAIN_CAP`] and
/// [`DRAIN_TIMEOUT`].
async fn drain(mut body: Body) {
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > DRAIN_CAP {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

async fn ingest(
    state: &Arc<AppState>,
    identity: &DeviceIdentity,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let limit = state.max_batch_bytes;
    let header = match Envelope::from_bytes(&body, limit) {
        Ok(envelope) => envelope.header().clone(),
        Err(error) => return Err(refuse_envelope(identity, None, &error)),
    };
    let device = &identity.device;
    let seq = header.seq;
    if header.device != identity.device {
        tracing::warn!(%device, %seq, claimed = %header.device, "batch refused: wrong_device");
        return Err(ApiError::forbidden(
            "wrong_device",
            format!(
                "the envelope names device {}, the certificate {device}",
                header.device
            ),
        ));
    }
    if header.site != identity.site {
        tracing::warn!(%device, %seq, "batch refused: wrong_site (certificate)");
        return Err(ApiError::forbidden(
            "wrong_site",
            format!(
                "the envelope names site {}, the certificate {}",
                header.site, identity.site
            ),
        ));
    }
    let record = authorize(state, identity).await?;
    let head = state.store.chain_head(device).await?;
    // The envelope as received, before it is opened: what the school's uplink carried.
    let bytes = u64::try_from(body.len()).unwrap_or(u64::MAX);

    let opened = {
        let state = Arc::clone(state);
        let device = device.clone();
        tokio::task::spawn_blocking(move || {
            open(
                &body,
                state.max_batch_bytes,
                &device,
                &record.verifying_key,
                &head,
                &state.sealing_key,
            )
        })
        .await
    };
    let opened = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(EnvelopeError::Replay { seq, .. })) => {
            tracing::info!(%device, %seq, "batch already applied: acked again");
            return Ok(ack(seq, false));
        }
        Ok(Err(EnvelopeError::Gap { expected, got })) => {
            tracing::warn!(%device, %expected, %got, "batch refused: gap");
            return Err(ApiError::Gap(head));
        }
        Ok(Err(error)) => return Err(refuse_envelope(identity, Some(seq), &error)),
        Err(error) => {
            tracing::error!(%device, %seq, %error, "opening the envelope failed");
            return Err(ApiError::Internal);
        }
    };

    refuse_foreign_school(state, identity, &record.site, &opened).await?;
    match state
        .store
        .apply(IncomingBatch::from_opened(opened, bytes, Timestamp::now()))
        .await
    {
        Ok(ApplyOutcome::Applied(changes)) => {
            tracing::info!(
                %device,
                %seq,
                added = changes.added,
                changed = changes.changed,
                removed = changes.removed,
                renamed = changes.renamed,
                unchanged = changes.unchanged,
                "batch applied"
            );
            Ok(ack(seq, true))
        }
        Ok(ApplyOutcome::AlreadyApplied { .. }) => {
            tracing::info!(%device, %seq, "batch applied concurrently: acked again");
            Ok(ack(seq, false))
        }
        Err(StoreError::Gap { expected, got }) => {
            tracing::warn!(%device, %expected, %got, "batch refused by the store: gap");
            Err(ApiError::Gap(state.store.chain_head(device).await?))
        }
        Err(error) => Err(refuse_apply(identity, seq, error)),
    }
}

/// Refuses a batch that upserts a school the device's site is not registered with (DESIGN
/// decision 1's "one school's Pi cannot change another school's roster", by school): a
/// device speaks for its site's schools only, whatever its export says. A site with no
/// registered school has every school refused.
async fn refuse_foreign_school(
    state: &AppState,
    identity: &DeviceIdentity,
    site: &SiteId,
    opened: &Opened,
) -> Result<(), ApiError> {
    let schools: Vec<&School> = match &opened.payload {
        Payload::Delta(delta) => delta.schools.upserts.iter().map(|(_, s)| s).collect(),
        Payload::Snapshot(roster) => roster.schools.iter().collect(),
    };
    if schools.is_empty() {
        return Ok(());
    }
    let registered = state.store.site_schools(site).await?;
    let Some(foreign) = first_foreign(&registered, schools) else {
        return Ok(());
    };
    // School numbers and names are public registry data, not personal data.
    let kommune = foreign.kommunenummer.as_deref().unwrap_or("-");
    tracing::warn!(
        device = %identity.device,
        seq = %opened.header.seq,
        %site,
        kommune,
        skolenummer = %foreign.skolenummer,
        "batch refused: wrong_school"
    );
    Err(ApiError::forbidden(
        "wrong_school",
        format!(
            "the batch names school {} \"{}\" (kommune {kommune}), which site {site} is not \
             registered with",
            foreign.skolenummer, foreign.name
        ),
    ))
}

/// The `200` answer; the ack also goes into the response's extensions, where the metrics
/// layer (`metered`) tells an apply from a replay.
fn ack(seq: Seq, applied: bool) -> Response {
    let ack = BatchAck {
        ack: seq.0,
        applied,
    };
    let mut response = (StatusCode::OK, Json(ack)).into_response();
    response.extensions_mut().insert(ack);
    response
}

/// The answer to an envelope `open` (or the parser) refused. Codes per docs/API.md.
fn refuse_envelope(identity: &DeviceIdentity, seq: Option<Seq>, error: &EnvelopeError) -> ApiError {
    let (status, code) = match error {
        EnvelopeError::Oversized { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "oversized"),
        EnvelopeError::UnknownVersion(_) => (StatusCode::BAD_REQUEST, "unknown_version"),
        EnvelopeError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
        EnvelopeError::BadSignature => (StatusCode::BAD_REQUEST, "bad_signature"),
        EnvelopeError::BrokenChain { .. } => (StatusCode::BAD_REQUEST, "broken_chain"),
        EnvelopeError::Decrypt => (StatusCode::BAD_REQUEST, "decrypt"),
        EnvelopeError::WrongDevice { .. } => (StatusCode::FORBIDDEN, "wrong_device"),
        // Handled by the caller; listed so every variant has an answer.
        EnvelopeError::Gap { .. } | EnvelopeError::Replay { .. } => (StatusCode::CONFLICT, "gap"),
        EnvelopeError::Encrypt | EnvelopeError::InvalidKey | EnvelopeError::Randomness => {
            tracing::error!(device = %identity.device, %error, "unexpected envelope error");
            return ApiError::Internal;
        }
    };
    match seq {
        Some(seq) => tracing::warn!(device = %identity.device, %seq, code, "batch refused"),
        None => tracing::warn!(device = %identity.device, code, "batch refused"),
    }
    // The error texts hold only ids, numbers and fixed words, never payload content.
    ApiError::new(status, code, error.to_string())
}

/// The answer to a batch the store refused (other than a gap).
fn refuse_apply(identity: &DeviceIdentity, seq: Seq, error: StoreError) -> ApiError {
    let (status, code) = match &error {
        StoreError::BrokenChain { .. } => (StatusCode::BAD_REQUEST, "broken_chain"),
        StoreError::HandleMismatch { .. } => (StatusCode::BAD_REQUEST, "handle_mismatch"),
        StoreError::DanglingReference { .. } => (StatusCode::BAD_REQUEST, "dangling_reference"),
        StoreError::DuplicateRecord { .. }
        | StoreError::UnpairedRename { .. }
        | StoreError::InvalidHead { .. }
        | StoreError::SeqOutOfRange(_) => (StatusCode::BAD_REQUEST, "malformed"),
        StoreError::UnknownDevice(_) => (StatusCode::FORBIDDEN, "unknown_device"),
        StoreError::DeviceRevoked(_) => (StatusCode::FORBIDDEN, "device_revoked"),
        StoreError::WrongSite { .. } => (StatusCode::FORBIDDEN, "wrong_site"),
        StoreError::NoSiteSecret(site) => {
            tracing::error!(device = %identity.device, %seq, %site, "site has no secret; batch not applied");
            return ApiError::Unavailable(format!("site {site} is not set up at central yet"));
        }
        _ => return error.into(),
    };
    tracing::warn!(device = %identity.device, %seq, code, "batch refused by the store");
    // Handles in these texts are keyed hashes, not personal data.
    ApiError::new(status, code, error.to_string())
}
