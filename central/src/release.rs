//! Remote update at central (DESIGN decision 7): the release registry, the artifacts on
//! disk, the rollout policy and what each device is offered.
//!
//! In the flow: `skolebro-provision release` posts a signed manifest to
//! `POST /admin/releases` (verified here against `release_key`, stored in the [`Store`]) and
//! uploads the artifact to `PUT /admin/releases/{id}/artifact` (hashed while it streams to
//! `releases_dir`, kept only if its size and SHA-256 are the manifest's). Operators set the
//! rollout (a percentage of stable cohorts and/or named sites) and may pause and resume it.
//! Each heartbeat ([`crate::ingest`]) records the update step the agent reports and gets
//! [`offer`]: the newest release for the device's target that its policy includes, unless the
//! device runs that version or has rolled it back or refused it. The agent downloads the
//! artifact from `GET /v1/releases/{id}/artifact`, with `Range` so a school's flaky uplink
//! can resume, and checks everything against the signed manifest itself: central is trusted
//! with the choice of release, never with its content.
//!
//! Registering, uploading and every change of a rollout write an audit line first, whether
//! they come from the operator API or the web interface's releases page, which changes
//! rollouts through the same `apply_rollout`.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::release::valid_release_id;
use skolebro_protocol::{DeviceId, ReleaseManifest, ReleaseVerifyingKey, SiteId, Version};
use skolebro_provisioning::DeviceIdentity;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::admin::{audit_api, API_ACTOR};
use crate::ingest::{authorize, store_failure};
use crate::reply;
use crate::server::AppState;
use crate::store::{
    NewRelease, ReleaseRecord, RolloutChange, Store, StoreError, Timestamp, UpdateEvent,
    UpdateState,
};
use crate::ui::audit;

/// Longest reason kept from an agent's report; longer ones are cut, so a broken agent cannot
/// fill the database through its heartbeats.
pub const MAX_REASON_CHARS: usize = 512;

/// Most sites one rollout may name; a county has a few hundred schools.
pub const MAX_ROLLOUT_SITES: usize = 1000;

/// How much of an artifact is read from disk per chunk of a download.
const CHUNK_BYTES: usize = 64 * 1024;

/// Where releases live and what they must be signed with. Without a key, central refuses
/// to register releases (503) but serves the ones it has.
#[derive(Debug, Clone)]
pub struct ReleaseSettings {
    /// The platform's release key (`release.pub`); manifests are registered only if they
    /// verify against it.
    pub key: Option<ReleaseVerifyingKey>,
    /// The folder holding `<id>.bin` (artifacts) and `<id>.skm` (manifests). Created at start.
    pub dir: PathBuf,
}

impl ReleaseSettings {
    fn artifact_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.skm"))
    }
}

pub use skolebro_protocol::api::{ReleaseOffer, ReportedState, UpdateReport};

/// The store's name for a reported state; `None` for a state this build does not know.
fn to_store(state: ReportedState) -> Option<UpdateState> {
    Some(match state {
        ReportedState::Downloaded => UpdateState::Downloaded,
        ReportedState::Installed => UpdateState::Installed,
        ReportedState::Healthy => UpdateState::Healthy,
        ReportedState::RolledBack => UpdateState::RolledBack,
        ReportedState::Refused => UpdateState::Refused,
        ReportedState::Unknown => return None,
    })
}

/// Records the update step a heartbeat reports, once per device, release and state. A
/// report of an unknown release or state is logged and dropped.
pub(crate) async fn record_report(
    state: &AppState,
    device: &DeviceId,
    report: &UpdateReport,
) -> Result<(), StoreError> {
    let Some(update_state) = to_store(report.state) else {
        tracing::debug!(%device, "update report with an unknown state ignored");
        return Ok(());
    };
    if !valid_release_id(&report.release) {
        tracing::debug!(%device, "update report naming no valid release ignored");
        return Ok(());
    }
    let reason = report
        .reason
        .as_deref()
        .map(|reason| reason.chars().take(MAX_REASON_CHARS).collect::<String>());
    let event = UpdateEvent {
        release: report.release.clone(),
        device: device.clone(),
        state: update_state,
        reason,
        at: Timestamp::now(),
    };
    if state.store.record_update(&event).await? {
        match &event.reason {
            Some(reason) => tracing::info!(
                %device, release = event.release, state = update_state.name(), reason,
                "update reported"
            ),
            None => tracing::info!(
                %device, release = event.release, state = update_state.name(),
                "update reported"
            ),
        }
    }
    Ok(())
}

/// The release to offer a device in its heartbeat answer, as JSON, or `None`: the newest
/// release (by version) for `target` whose artifact is stored, that is not paused, whose
/// policy includes the device, and that the device has not rolled back or refused. It is
/// offered only if its version is not the one the device runs; the first offer is counted.
pub(crate) async fn offer(
    state: &AppState,
    identity: &DeviceIdentity,
    running: &str,
    target: &str,
) -> Result<Option<ReleaseOffer>, StoreError> {
    let failed = state.store.failed_releases(&identity.device).await?;
    let releases = state.store.releases().await?;
    let Some(chosen) = releases.into_iter().find(|release| {
        release.artifact_stored
            && !release.paused
            && release.release.target == target
            && !failed.contains(&release.release.id)
            && release.includes(&identity.device, &identity.site)
    }) else {
        return Ok(None);
    };
    if running.parse::<Version>().ok() == Some(chosen.release.version) {
        return Ok(None);
    }
    let id = chosen.release.id;
    let event = UpdateEvent {
        release: id.clone(),
        device: identity.device.clone(),
        state: UpdateState::Offered,
        reason: None,
        at: Timestamp::now(),
    };
    if state.store.record_update(&event).await? {
        tracing::info!(device = %identity.device, release = id, "release offered");
    }
    Ok(Some(ReleaseOffer {
        manifest: base64::engine::general_purpose::STANDARD.encode(&chosen.release.manifest),
        artifact: format!("/v1/releases/{id}/artifact"),
        id,
    }))
}

fn unknown_release(id: &str) -> Response {
    reply::error(
        StatusCode::NOT_FOUND,
        "unknown_release",
        format!("central knows no release {id}"),
    )
}

/// The id from a path, if it has the form of a release id; anything else cannot name a
/// release (and never becomes a file name).
fn release_id(id: &str) -> Option<&str> {
    valid_release_id(id).then_some(id)
}

fn not_a_release_id() -> Response {
    reply::error(
        StatusCode::NOT_FOUND,
        "unknown_release",
        "a release id is <version>-<target>",
    )
}

/// `POST /admin/releases`: registers a release by its signed manifest.
pub(crate) async fn post_release(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(key) = &state.releases.key else {
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "releases_disabled",
            "central has no release_key configured",
        );
    };
    let Ok(body) = body else {
        return reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
            format!(
                "a manifest is at most {} bytes",
                skolebro_protocol::release::MAX_MANIFEST_BYTES
            ),
        );
    };
    let manifest = match ReleaseManifest::verify(&body, key) {
        Ok(manifest) => manifest,
        Err(error) => {
            tracing::warn!(%error, "release manifest refused");
            return reply::error(
                StatusCode::BAD_REQUEST,
                "invalid_manifest",
                error.to_string(),
            );
        }
    };
    let id = manifest.id();
    let detail = format!(
        "version {} for {}, {} bytes",
        manifest.version, manifest.target, manifest.size
    );
    if let Err(response) = audit_api(&state, "register_release", &id, &detail).await {
        return response;
    }
    let release = NewRelease::new(&manifest, body.to_vec(), Timestamp::now());
    let new = match state.store.create_release(&release).await {
        Ok(new) => new,
        Err(StoreError::ReleaseExists(_)) => {
            return reply::error(
                StatusCode::CONFLICT,
                "release_exists",
                format!("release {id} is registered with another manifest"),
            )
        }
        Err(error) => return store_failure(&error),
    };
    // The copy beside the artifact, for operators; written after the store accepted the
    // manifest, so a refused one never replaces it. Registering again rewrites it.
    if let Err(error) = write_file(&state.releases.manifest_path(&id), &body).await {
        tracing::error!(release = id, %error, "writing the manifest failed");
        return reply::internal();
    }
    if new {
        tracing::info!(release = id, size = manifest.size, "release registered");
    }
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

/// `PUT /admin/releases/{id}/artifact`: streams the artifact into a temporary file in
/// `releases_dir` while hashing it, and keeps it as `<id>.bin` only if its size and SHA-256
/// are the manifest's. A body longer than the manifest's size is cut off at once.
pub(crate) async fn put_artifact(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    let Some(id) = release_id(&id) else {
        return not_a_release_id();
    };
    let release = match state.store.release(id).await {
        Ok(Some(release)) => release,
        Ok(None) => return unknown_release(id),
        Err(error) => return store_failure(&error),
    };
    let temp = state.releases.dir.join(format!(
        ".{id}.{}.part",
        hex::encode(Timestamp::now().0.to_be_bytes())
    ));
    let received = receive(&temp, request.into_body(), release.release.size).await;
    let refuse = |detail: String| {
        tracing::warn!(release = id, detail, "artifact refused");
        reply::error(StatusCode::BAD_REQUEST, "artifact_mismatch", detail)
    };
    let response = match received {
        Ok((size, _)) if size != release.release.size => refuse(format!(
            "the artifact is {size} bytes, the manifest says {}",
            release.release.size
        )),
        Ok((_, sha256)) if sha256 != release.release.sha256 => {
            refuse("the artifact's SHA-256 is not the manifest's".to_owned())
        }
        Ok((size, _)) => {
            let detail = format!("{size} bytes, SHA-256 as in the manifest");
            if let Err(response) = audit_api(&state, "upload_artifact", id, &detail).await {
                let _ = tokio::fs::remove_file(&temp).await;
                return response;
            }
            let kept = tokio::fs::rename(&temp, state.releases.artifact_path(id)).await;
            let kept = match kept {
                Ok(()) => sync_dir(&state.releases.dir).await,
                Err(error) => Err(error),
            };
            if let Err(error) = kept {
                tracing::error!(release = id, %error, "storing the artifact failed");
                reply::internal()
            } else {
                match state.store.set_artifact_stored(id).await {
                    Ok(()) => {
                        tracing::info!(release = id, "release artifact stored");
                        return StatusCode::NO_CONTENT.into_response();
                    }
                    Err(error) => store_failure(&error),
                }
            }
        }
        Err(Received::TooLong) => refuse(format!(
            "the artifact is longer than the manifest's {} bytes",
            release.release.size
        )),
        Err(Received::Body) => reply::error(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body could not be read",
        ),
        Err(Received::Disk(error)) => {
            tracing::error!(release = id, %error, "writing the artifact failed");
            reply::internal()
        }
    };
    // Nothing of a refused upload is kept (after a rename there is nothing to remove).
    let _ = tokio::fs::remove_file(&temp).await;
    response
}

enum Received {
    TooLong,
    Body,
    Disk(std::io::Error),
}

/// Writes a body to `path`, flushed, hashing it on the way; stops once it passes `limit`.
async fn receive(path: &Path, mut body: Body, limit: u64) -> Result<(u64, [u8; 32]), Received> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(Received::Disk)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Received::Body)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size = size.saturating_add(data.len() as u64);
        if size > limit {
            return Err(Received::TooLong);
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(Received::Disk)?;
    }
    file.sync_all().await.map_err(Received::Disk)?;
    Ok((size, hasher.finalize().into()))
}

/// Writes a whole small file atomically: a temporary name, flushed, renamed.
async fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = tokio::fs::File::create(&temp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    tokio::fs::rename(&temp, path).await?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).await?;
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// The body of `POST /admin/releases/{id}/rollout`: a percentage, sites, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolloutBody {
    percent: Option<u8>,
    sites: Option<Vec<String>>,
}

/// `POST /admin/releases/{id}/rollout`: sets the percentage and/or the named sites.
pub(crate) async fn post_rollout(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<RolloutBody>, JsonRejection>,
) -> Response {
    let invalid = |detail: &str| reply::error(StatusCode::BAD_REQUEST, "invalid_rollout", detail);
    let Ok(Json(body)) = body else {
        return invalid("expected {\"percent\": 0..100} and/or {\"sites\": [\"<site id>\", ...]}");
    };
    match rollout_change(body.percent, body.sites) {
        Ok(change) => change_rollout(&state, &id, change).await,
        Err(detail) => invalid(detail),
    }
}

/// A rollout as an operator asks for it, checked: the one check for the JSON endpoint and
/// the web interface's form, so both accept the same. `Err` says what is wrong, in words.
pub(crate) fn rollout_change(
    percent: Option<u8>,
    sites: Option<Vec<String>>,
) -> Result<RolloutChange, &'static str> {
    if percent.is_none() && sites.is_none() {
        return Err("name a percent, sites, or both");
    }
    if percent.is_some_and(|percent| percent > 100) {
        return Err("percent is 0 to 100");
    }
    let sites = match sites {
        None => None,
        Some(sites) if sites.len() > MAX_ROLLOUT_SITES => {
            return Err("too many sites in one rollout")
        }
        Some(sites) => Some(
            sites
                .into_iter()
                .map(SiteId::new)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "a site id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")?,
        ),
    };
    Ok(RolloutChange {
        percent,
        sites,
        paused: None,
    })
}

/// `POST /admin/releases/{id}/pause`: the release is offered to no device until resumed.
/// Devices that already installed it keep it.
pub(crate) async fn post_pause(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let change = RolloutChange {
        paused: Some(true),
        ..RolloutChange::default()
    };
    change_rollout(&state, &id, change).await
}

/// `POST /admin/releases/{id}/resume`: offered again under its policy.
pub(crate) async fn post_resume(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let change = RolloutChange {
        paused: Some(false),
        ..RolloutChange::default()
    };
    change_rollout(&state, &id, change).await
}

async fn change_rollout(state: &AppState, id: &str, change: RolloutChange) -> Response {
    let Some(id) = release_id(id) else {
        return not_a_release_id();
    };
    match apply_rollout(state.store.as_ref(), API_ACTOR, id, &change).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(StoreError::UnknownRelease(_)) => unknown_release(id),
        Err(error) => store_failure(&error),
    }
}

/// Changes a release's rollout on behalf of `actor`: the one path for the operator API and
/// the web interface. The release must exist; then the audit line is written, and only if
/// it was is the policy changed. [`StoreError::UnknownRelease`] for an unknown id.
pub(crate) async fn apply_rollout(
    store: &dyn Store,
    actor: &str,
    id: &str,
    change: &RolloutChange,
) -> Result<(), StoreError> {
    if store.release(id).await?.is_none() {
        return Err(StoreError::UnknownRelease(id.to_owned()));
    }
    let (action, detail) = rollout_words(change);
    audit(store, actor, action, id, &detail).await?;
    store.change_rollout(id, change).await?;
    tracing::info!(release = id, actor, action, percent = ?change.percent, sites = ?change.sites, "rollout changed");
    Ok(())
}

/// The audit action and detail of a rollout change.
fn rollout_words(change: &RolloutChange) -> (&'static str, String) {
    match change.paused {
        Some(true) => return ("pause_rollout", "paused".to_owned()),
        Some(false) => return ("resume_rollout", "resumed".to_owned()),
        None => {}
    }
    let mut words = Vec::new();
    if let Some(percent) = change.percent {
        words.push(format!("{percent} % of devices"));
    }
    match change.sites.as_deref() {
        Some([]) => words.push("no named sites".to_owned()),
        Some(sites) => words.push(format!(
            "sites: {}",
            sites
                .iter()
                .map(SiteId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => {}
    }
    ("set_rollout", words.join("; "))
}

/// `GET /admin/releases`: every release, newest first, with its policy and its counts.
pub(crate) async fn get_releases(State(state): State<Arc<AppState>>) -> Response {
    let releases = match state.store.releases().await {
        Ok(releases) => releases,
        Err(error) => return store_failure(&error),
    };
    let mut out = Vec::with_capacity(releases.len());
    for release in &releases {
        let report = match state.store.release_report(&release.release.id).await {
            Ok(report) => report,
            Err(error) => return store_failure(&error),
        };
        out.push(release_json(release, &report));
    }
    Json(json!({"releases": out})).into_response()
}

fn release_json(record: &ReleaseRecord, report: &crate::store::ReleaseReport) -> Value {
    let release = &record.release;
    json!({
        "id": release.id,
        "version": release.version.to_string(),
        "target": release.target,
        "size": release.size,
        "sha256": hex::encode(release.sha256),
        "allow_downgrade": release.allow_downgrade,
        "registered_unix_ms": release.registered.unix_millis(),
        "artifact": record.artifact_stored,
        "percent": record.percent,
        "sites": record.sites,
        "paused": record.paused,
        "counts": report.counts,
        "rollbacks": report.rollbacks,
        "refusals": report.refusals,
    })
}

/// `GET /v1/releases/{id}/artifact` on the device listener: the artifact, whole or from a
/// `Range` (`bytes=N-`, `bytes=N-M` or `bytes=-N`), so an interrupted download resumes.
pub(crate) async fn get_artifact(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&state, &identity).await {
        return response;
    }
    let Some(id) = release_id(&id) else {
        return not_a_release_id();
    };
    match state.store.release(id).await {
        Ok(Some(release)) if release.artifact_stored => {}
        Ok(_) => return unknown_release(id),
        Err(error) => return store_failure(&error),
    }
    let path = state.releases.artifact_path(id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(release = id, %error, "the stored artifact cannot be opened");
            return reply::internal();
        }
    };
    let len = match file.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(error) => {
            tracing::error!(release = id, %error, "the stored artifact cannot be read");
            return reply::internal();
        }
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_range);
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len),
        Some(range) => match range.resolve(len) {
            Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
            None => {
                let mut response = reply::error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the artifact is {len} bytes"),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        },
    };
    if let Err(error) = file.seek(SeekFrom::Start(start)).await {
        tracing::error!(release = id, %error, "seeking in the artifact failed");
        return reply::internal();
    }
    tracing::debug!(device = %identity.device, release = id, start, end, "artifact download");
    let stream = futures_util::stream::unfold((file, end - start), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
        let mut buffer = vec![0u8; want];
        match file.read(&mut buffer).await {
            // The file shrank under us: end the body short, the client sees the length differ.
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), (file, left - read as u64)))
            }
            Err(error) => Some((Err(error), (file, 0))),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// One byte range of a `Range` header, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `N-` or `N-M` (inclusive).
    From { start: u64, last: Option<u64> },
    /// `-N`: the last N bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open span `[start, end)` of a `len`-byte file, or `None` if unsatisfiable.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { start, last } => {
                if start >= len {
                    return None;
                }
                let end = last.map_or(len, |last| last.saturating_add(1).min(len));
                Some((start, end))
            }
            ByteRange::Suffix(n) if n == 0 || len == 0 => None,
            ByteRange::Suffix(n) => Some((len.saturating_sub(n), len)),
        }
    }
}

/// A single-range `bytes=` header, or `None` for anything else, which is then ignored and
/// the whole artifact sent (RFC 9110 lets a server ignore a Range it does not support).
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    let (first, last) = spec.split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    if first.trim().is_empty() {
        return number(last).map(ByteRange::Suffix);
    }
    let start = number(first)?;
    let last = if last.trim().is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    if last.is_some_and(|last| last < start) {
        return None;
    }
    Some(ByteRange::From { start, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_documented_and_anything_else_is_ignored() {
        assert_eq!(
            parse_range("bytes=100-"),
            Some(ByteRange::From {
                start: 100,
                last: None
            })
        );
        assert_eq!(
            parse_range("bytes=0-99"),
            Some(ByteRange::From {
                start: 0,
                last: Some(99)
            })
        );
        assert_eq!(parse_range("bytes=-10"), Some(ByteRange::Suffix(10)));
        for ignored in [
            "",
            "bytes=",
            "bytes=a-",
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,4-5",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_length_or_are_unsatisfiable() {
        let from = |start, last| ByteRange::From { start, last };
        assert_eq!(from(0, None).resolve(10), Some((0, 10)));
        assert_eq!(from(4, Some(5)).resolve(10), Some((4, 6)));
        assert_eq!(from(4, Some(500)).resolve(10), Some((4, 10)));
        assert_eq!(from(10, None).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 10)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 10)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(0), None);
    }

    #[test]
    fn a_rollout_is_checked_once_for_both_doors_and_audited_in_words() {
        assert!(rollout_change(None, None).is_err());
        assert!(rollout_change(Some(101), None).is_err());
        assert!(rollout_change(None, Some(vec!["no/site".to_owned()])).is_err());
        assert!(rollout_change(None, Some(vec!["s".to_owned(); MAX_ROLLOUT_SITES + 1])).is_err());
        let change = rollout_change(Some(30), Some(vec!["fana".to_owned(), "os".to_owned()]))
            .expect("a valid rollout");
        assert_eq!(
            rollout_words(&change),
            ("set_rollout", "30 % of devices; sites: fana, os".to_owned())
        );
        let cleared = rollout_change(None, Some(Vec::new())).expect("clearing the sites");
        assert_eq!(rollout_words(&cleared).1, "no named sites");
        let pause = RolloutChange {
            paused: Some(true),
            ..RolloutChange::default()
        };
        assert_eq!(rollout_words(&pause).0, "pause_rollout");
    }

    #[test]
    fn the_documented_update_report_parses_and_unknown_states_are_kept() {
        let report: UpdateReport = serde_json::from_str(
            r#"{"release": "1.2.3-aarch64-unknown-linux-gnu", "state": "rolled_back",
                "reason": "health check failed: central did not answer"}"#,
        )
        .unwrap();
        assert_eq!(to_store(report.state), Some(UpdateState::RolledBack));
        let newer: UpdateReport =
            serde_json::from_str(r#"{"release": "x", "state": "teleported"}"#).unwrap();
        assert_eq!(newer.state, ReportedState::Unknown);
        assert_eq!(to_store(newer.state), None);
    }
}
