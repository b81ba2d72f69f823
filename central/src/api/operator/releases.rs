//! The release endpoints of the operator listener: `POST /admin/releases` registers a
//! signed manifest, `PUT /admin/releases/{id}/artifact` uploads its artifact (hashed while
//! it streams to `releases_dir`), and `POST /admin/releases/{id}/rollout|pause|resume`
//! change who is offered it, through [`crate::release::apply_rollout`], the path the web
//! interface's releases page takes too. Each writes its audit line first.

use std::path::Path as FilePath;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::ReleaseManifest;
use tokio::io::AsyncWriteExt as _;

use crate::api::error::ApiError;
use crate::api::operator::auth::OperatorCaller;
use crate::audit;
use crate::key_rotation;
use crate::release::{apply_rollout, release_id, rollout_change, sync_dir, write_file};
use crate::state::AppState;
use crate::store::{
    NewRelease, ReleaseRecord, ReleaseReport, RolloutChange, StoreError, Timestamp,
};

/// `POST /admin/releases`: registers a release by its signed manifest.
pub(crate) async fn post_release(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The configured key followed through the published release key rotations.
    let Some(key) =
        key_rotation::current_release_key(state.store.as_ref(), state.releases.key.as_ref())
            .await?
            .map(|current| current.key)
    else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "releases_disabled",
            "central has no release_key configured",
        ));
    };
    let Ok(body) = body else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
            format!(
                "a manifest is at most {} bytes",
                skolebro_protocol::release::MAX_MANIFEST_BYTES
            ),
        ));
    };
    let manifest = match ReleaseManifest::verify(&body, &key) {
        Ok(manifest) => manifest,
        Err(error) => {
            tracing::warn!(%error, "release manifest refused");
            return Err(ApiError::bad_request("invalid_manifest", error.to_string()));
        }
    };
    let id = manifest.id();
    let detail = format!(
        "version {} for {}, {} bytes",
        manifest.version, manifest.target, manifest.size
    );
    audit::record(
        state.store.as_ref(),
        &caller.actor,
        "register_release",
        &id,
        &detail,
    )
    .await?;
    let release = NewRelease::new(&manifest, body.to_vec(), Timestamp::now());
    let new = match state.store.create_release(&release).await {
        Ok(new) => new,
        Err(StoreError::ReleaseExists(_)) => {
            return Err(ApiError::conflict(
                "release_exists",
                format!("release {id} is registered with another manifest"),
            ))
        }
        Err(error) => return Err(error.into()),
    };
    // The copy beside the artifact, for operators; written after the store accepted the
    // manifest, so a refused one never replaces it. Registering again rewrites it.
    if let Err(error) = write_file(&state.releases.manifest_path(&id), &body).await {
        tracing::error!(release = id, %error, "writing the manifest failed");
        return Err(ApiError::Internal);
    }
    if new {
        tracing::info!(release = id, size = manifest.size, "release registered");
    }
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

/// `PUT /admin/releases/{id}/artifact`: streams the artifact into a temporary file in
/// `releases_dir` while hashing it, and keeps it as `<id>.bin` only if its size and SHA-256
/// are the manifest's. A body longer than the manifest's size is cut off at once.
pub(crate) async fn put_artifact(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = release_id(&id).ok_or_else(ApiError::not_a_release_id)?;
    let release = state
        .store
        .release(id)
        .await?
        .ok_or_else(|| ApiError::unknown_release(id))?;
    let temp = state.releases.dir.join(format!(
        ".{id}.{}.part",
        hex::encode(Timestamp::now().0.to_be_bytes())
    ));
    let received = receive(&temp, request.into_body(), release.release.size).await;
    let refuse = |detail: String| {
        tracing::warn!(release = id, detail, "artifact refused");
        ApiError::bad_request("artifact_mismatch", detail)
    };
    let refused = match received {
        Ok((size, _)) if size != release.release.size => refuse(format!(
            "the artifact is {size} bytes, the manifest says {}",
            release.release.size
        )),
        Ok((_, sha256)) if sha256 != release.release.sha256 => {
            refuse("the artifact's SHA-256 is not the manifest's".to_owned())
        }
        Ok((size, _)) => {
            let detail = format!("{size} bytes, SHA-256 as in the manifest");
            let store = state.store.as_ref();
            if let Err(error) =
                audit::record(store, &caller.actor, "upload_artifact", id, &detail).await
            {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(error.into());
            }
            let kept = tokio::fs::rename(&temp, state.releases.artifact_path(id)).await;
            let kept = match kept {
                Ok(()) => sync_dir(&state.releases.dir).await,
                Err(error) => Err(error),
            };
            if let Err(error) = kept {
                tracing::error!(release = id, %error, "storing the artifact failed");
                ApiError::Internal
            } else {
                match state.store.set_artifact_stored(id).await {
                    Ok(()) => {
                        tracing::info!(release = id, "release artifact stored");
                        return Ok(StatusCode::NO_CONTENT.into_response());
                    }
                    Err(error) => error.into(),
                }
            }
        }
        Err(Received::TooLong) => refuse(format!(
            "the artifact is longer than the manifest's {} bytes",
            release.release.size
        )),
        Err(Received::Body) => ApiError::bad_request("malformed", "the body could not be read"),
        Err(Received::Disk(error)) => {
            tracing::error!(release = id, %error, "writing the artifact failed");
            ApiError::Internal
        }
    };
    // Nothing of a refused upload is kept (after a rename there is nothing to remove).
    let _ = tokio::fs::remove_file(&temp).await;
    Err(refused)
}

enum Received {
    TooLong,
    Body,
    Disk(std::io::Error),
}

/// Writes a body to `path`, flushed, hashing it on the way; stops once it passes `limit`.
async fn receive(path: &FilePath, mut body: Body, limit: u64) -> Result<(u64, [u8; 32]), Received> {
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
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
    body: Result<Json<RolloutBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request("invalid_rollout", detail);
    let Ok(Json(body)) = body else {
        return Err(invalid(
            "expected {\"percent\": 0..100} and/or {\"sites\": [\"<site id>\", ...]}",
        ));
    };
    let change = rollout_change(body.percent, body.sites).map_err(invalid)?;
    change_rollout(&state, &caller.actor, &id, change).await
}

/// `POST /admin/releases/{id}/pause`: the release is offered to no device until resumed.
/// Devices that already installed it keep it.
pub(crate) async fn post_pause(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let change = RolloutChange {
        paused: Some(true),
        ..RolloutChange::default()
    };
    change_rollout(&state, &caller.actor, &id, change).await
}

/// `POST /admin/releases/{id}/resume`: offered again under its policy.
pub(crate) async fn post_resume(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<OperatorCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let change = RolloutChange {
        paused: Some(false),
        ..RolloutChange::default()
    };
    change_rollout(&state, &caller.actor, &id, change).await
}

async fn change_rollout(
    state: &AppState,
    actor: &str,
    id: &str,
    change: RolloutChange,
) -> Result<Response, ApiError> {
    let id = release_id(id).ok_or_else(ApiError::not_a_release_id)?;
    match apply_rollout(state.store.as_ref(), actor, id, &change).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::UnknownRelease(_)) => Err(ApiError::unknown_release(id)),
        Err(error) => Err(error.into()),
    }
}

/// `GET /admin/releases`: every release, newest first, with its policy and its counts.
pub(crate) async fn get_releases(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let releases = state.store.releases().await?;
    let mut out = Vec::with_capacity(releases.len());
    for release in &releases {
        let report = state.store.release_report(&release.release.id).await?;
        out.push(release_json(release, &report));
    }
    Ok(Json(json!({"releases": out})).into_response())
}

fn release_json(record: &ReleaseRecord, report: &ReleaseReport) -> Value {
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
