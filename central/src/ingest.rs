//! The device endpoints (docs/API.md, "Device endpoints"): `POST /v1/batches` and
//! `POST /v1/heartbeat`, served on the mutual-TLS listener of [`crate::server`], whose router
//! also carries enrollment and renewal (`enroll.rs`) and release downloads (`release.rs`).
//!
//! A batch goes: body read up to `max_batch_bytes` (413 beyond, before the rest is read) ->
//! the envelope's *claimed* header ([`Envelope::from_bytes`]) -> checked against the
//! connection's certificate ([`DeviceIdentity`]: same device, same site) and the store's
//! device record (known, not revoked, same site) -> [`open`] against the stored chain head
//! (signature, chain, decryption; on a blocking thread, since a 16 MiB snapshot takes a
//! while) -> [`Store::apply`](crate::store::Store::apply), which re-checks the chain inside
//! its transaction, so a batch raced in by two requests is applied once and acked twice
//! (DESIGN decisions 2 and 3). Nothing is stored unless every check passed.
//!
//! Logs name devices, sequence numbers, error codes and counts, never record content.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt as _;
use serde_json::json;
use skolebro_protocol::envelope::open;
use skolebro_protocol::{ChainHead, Envelope, EnvelopeError, Seq};
use skolebro_provisioning::DeviceIdentity;

use crate::fleet::Heartbeat;
use crate::reply;
use crate::server::AppState;
use crate::store::{Batch, DeviceRecord, Outcome, StoreError, Timestamp};

/// Largest heartbeat body: a heartbeat is a few hundred bytes; the bound keeps a broken agent
/// from making central parse megabytes of JSON.
pub const MAX_HEARTBEAT_BYTES: usize = 64 * 1024;

/// How long one batch body may take to arrive. A 16 MiB snapshot over a school's 1 Mbit/s
/// uplink takes about two minutes; a connection slower than this is stalled, not slow.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(300);

/// After refusing an oversized body, central reads and discards at most this much more of
/// it (for at most [`DRAIN_TIMEOUT`]) before answering, so the client, still sending, reads
/// the 413 instead of a connection reset. A body beyond this is cut off.
const DRAIN_CAP: u64 = 4 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The device listener's routes, with the connection's [`DeviceIdentity`] expected as a
/// request extension (the server inserts it per connection, and lets only enrollment
/// through without one).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/batches", post(post_batch))
        .route("/v1/heartbeat", post(post_heartbeat))
        .route(crate::server::ENROLL_PATH, post(crate::enroll::post_enroll))
        .route("/v1/renew", post(crate::enroll::post_renew))
        .route(
            "/v1/releases/{id}/artifact",
            get(crate::release::get_artifact),
        )
        .fallback(reply::not_found)
        .layer(DefaultBodyLimit::max(MAX_HEARTBEAT_BYTES))
        .with_state(state)
}

async fn post_batch(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    request: Request,
) -> Response {
    let limit = state.max_batch_bytes;
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_limited(request, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::Oversized)) => {
            tracing::warn!(device = %identity.device, limit, "batch refused: oversized");
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                format!("the batch is over the limit of {limit} bytes"),
            );
        }
        Ok(Err(ReadError::Failed)) => {
            tracing::debug!(device = %identity.device, "batch body could not be read");
            return reply::error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "the body could not be read",
            );
        }
        Err(_) => {
            tracing::warn!(device = %identity.device, "batch body timed out");
            return reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the body did not arrive in time",
            );
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

async fn ingest(state: &Arc<AppState>, identity: &DeviceIdentity, body: Vec<u8>) -> Response {
    let limit = state.max_batch_bytes;
    let header = match Envelope::from_bytes(&body, limit) {
        Ok(envelope) => envelope.header().clone(),
        Err(error) => return refuse_envelope(identity, None, &error),
    };
    let device = &identity.device;
    let seq = header.seq;
    if header.device != identity.device {
        tracing::warn!(%device, %seq, claimed = %header.device, "batch refused: wrong_device");
        return reply::error(
            StatusCode::FORBIDDEN,
            "wrong_device",
            format!(
                "the envelope names device {}, the certificate {device}",
                header.device
            ),
        );
    }
    if header.site != identity.site {
        tracing::warn!(%device, %seq, "batch refused: wrong_site (certificate)");
        return reply::error(
            StatusCode::FORBIDDEN,
            "wrong_site",
            format!(
                "the envelope names site {}, the certificate {}",
                header.site, identity.site
            ),
        );
    }
    let record = match authorize(state, identity).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let head = match state.store.chain_head(device).await {
        Ok(head) => head,
        Err(error) => return store_failure(&error),
    };
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
            return ack(state, identity, seq, false);
        }
        Ok(Err(EnvelopeError::Gap { expected, got })) => {
            tracing::warn!(%device, %expected, %got, "batch refused: gap");
            return gap(&head);
        }
        Ok(Err(error)) => return refuse_envelope(identity, Some(seq), &error),
        Err(error) => {
            tracing::error!(%device, %seq, %error, "opening the envelope failed");
            return reply::internal();
        }
    };

    match state
        .store
        .apply(Batch::from_opened(opened, bytes, Timestamp::now()))
        .await
    {
        Ok(Outcome::Applied(changes)) => {
            tracing::info!(
                %device,
                %seq,
                added = changes.added,
                changed = changes.changed,
                removed = changes.removed,
                unchanged = changes.unchanged,
                "batch applied"
            );
            ack(state, identity, seq, true)
        }
        Ok(Outcome::AlreadyApplied { .. }) => {
            tracing::info!(%device, %seq, "batch applied concurrently: acked again");
            ack(state, identity, seq, false)
        }
        Err(StoreError::Gap { expected, got }) => {
            tracing::warn!(%device, %expected, %got, "batch refused by the store: gap");
            match state.store.chain_head(device).await {
                Ok(head) => gap(&head),
                Err(error) => store_failure(&error),
            }
        }
        Err(error) => refuse_apply(identity, seq, &error),
    }
}

/// Whether the connection's device may write: registered, not revoked, and registered for
/// the site its certificate names. Asked per request, so a device revoked while its
/// connection is open is refused from its next request on.
pub(crate) async fn authorize(
    state: &AppState,
    identity: &DeviceIdentity,
) -> Result<DeviceRecord, Response> {
    let device = &identity.device;
    let record = match state.store.device(device).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::warn!(%device, "request refused: unknown_device");
            return Err(reply::error(
                StatusCode::FORBIDDEN,
                "unknown_device",
                format!("device {device} is not registered"),
            ));
        }
        Err(error) => return Err(store_failure(&error)),
    };
    if record.revoked {
        tracing::warn!(%device, "request refused: device_revoked");
        return Err(reply::error(
            StatusCode::FORBIDDEN,
            "device_revoked",
            format!("device {device} is revoked"),
        ));
    }
    if record.site != identity.site {
        tracing::warn!(%device, "request refused: wrong_site (registration)");
        return Err(reply::error(
            StatusCode::FORBIDDEN,
            "wrong_site",
            format!("device {device} is registered for another site"),
        ));
    }
    Ok(record)
}

fn ack(state: &AppState, identity: &DeviceIdentity, seq: Seq, applied: bool) -> Response {
    state
        .fleet
        .batch_acked(&identity.device, seq, Timestamp::now());
    (
        StatusCode::OK,
        Json(json!({"ack": seq.0, "applied": applied})),
    )
        .into_response()
}

fn gap(head: &ChainHead) -> Response {
    reply::with_fields(
        StatusCode::CONFLICT,
        "gap",
        format!(
            "central expects sequence number {}; send a snapshot chained on this head",
            head.next_seq
        ),
        json!({"expected_seq": head.next_seq.0, "prev": hex::encode(head.prev)}),
    )
}

/// The answer to an envelope `open` (or the parser) refused. Codes per docs/API.md.
fn refuse_envelope(identity: &DeviceIdentity, seq: Option<Seq>, error: &EnvelopeError) -> Response {
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
            return reply::internal();
        }
    };
    match seq {
        Some(seq) => tracing::warn!(device = %identity.device, %seq, code, "batch refused"),
        None => tracing::warn!(device = %identity.device, code, "batch refused"),
    }
    // The error texts hold only ids, numbers and fixed words, never payload content.
    reply::error(status, code, error.to_string())
}

/// The answer to a batch the store refused (other than a gap).
fn refuse_apply(identity: &DeviceIdentity, seq: Seq, error: &StoreError) -> Response {
    let (status, code) = match error {
        StoreError::BrokenChain { .. } => (StatusCode::BAD_REQUEST, "broken_chain"),
        StoreError::HandleMismatch { .. } => (StatusCode::BAD_REQUEST, "handle_mismatch"),
        StoreError::DuplicateRecord { .. }
        | StoreError::InvalidHead { .. }
        | StoreError::SeqOutOfRange(_) => (StatusCode::BAD_REQUEST, "malformed"),
        StoreError::UnknownDevice(_) => (StatusCode::FORBIDDEN, "unknown_device"),
        StoreError::DeviceRevoked(_) => (StatusCode::FORBIDDEN, "device_revoked"),
        StoreError::WrongSite { .. } => (StatusCode::FORBIDDEN, "wrong_site"),
        StoreError::NoSiteSecret(site) => {
            tracing::error!(device = %identity.device, %seq, %site, "site has no secret; batch not applied");
            return reply::unavailable(format!("site {site} is not set up at central yet"));
        }
        _ => return store_failure(error),
    };
    tracing::warn!(device = %identity.device, %seq, code, "batch refused by the store");
    // Handles in these texts are keyed hashes, not personal data.
    reply::error(status, code, error.to_string())
}

/// The answer when the store fails rather than refuses: unavailable (503, retry) when the
/// database is, internal (500) when stored data or the build is at fault.
pub(crate) fn store_failure(error: &StoreError) -> Response {
    match error {
        StoreError::Sqlite(_) | StoreError::Postgres(_) | StoreError::Worker(_) => {
            tracing::error!(%error, "store unavailable");
            reply::unavailable("central cannot reach its store; try again later")
        }
        _ => {
            tracing::error!(%error, "store failed");
            reply::internal()
        }
    }
}

async fn post_heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Read as bytes and parsed here rather than with `Json`, so a missing content type is no
    // reason to lose a heartbeat, and every refusal has the documented error body.
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                format!("a heartbeat is at most {MAX_HEARTBEAT_BYTES} bytes"),
            );
        }
        Err(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "the body could not be read",
            );
        }
    };
    let heartbeat: Heartbeat = match serde_json::from_slice(&body) {
        Ok(heartbeat) => heartbeat,
        Err(error) => {
            tracing::debug!(device = %identity.device, line = error.line(), "heartbeat refused: malformed");
            return reply::error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "the heartbeat is not the documented JSON",
            );
        }
    };
    if let Err(response) = authorize(&state, &identity).await {
        return response;
    }
    tracing::debug!(
        device = %identity.device,
        state = ?heartbeat.state,
        outbox_depth = heartbeat.outbox_depth,
        "heartbeat"
    );
    if let Some(report) = &heartbeat.update {
        if let Err(error) = crate::release::record_report(&state, &identity.device, report).await {
            return store_failure(&error);
        }
    }
    let release = match &heartbeat.target {
        Some(target) => {
            match crate::release::offer(&state, &identity, &heartbeat.version, target).await {
                Ok(release) => release,
                Err(error) => return store_failure(&error),
            }
        }
        None => None,
    };
    let commands = state
        .fleet
        .heartbeat(&identity.device, heartbeat, Timestamp::now());
    if !commands.is_empty() {
        tracing::info!(device = %identity.device, count = commands.len(), "commands delivered");
    }
    (
        StatusCode::OK,
        Json(json!({"commands": commands, "release": release})),
    )
        .into_response()
}
