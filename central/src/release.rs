//! Remote update at central (DESIGN decision 7): the release registry, the artifacts on
//! disk, the rollout policy and what each device is offered.
//!
//! In the flow: `skolebro-provision release` posts a signed manifest to
//! `POST /admin/releases` (verified here against `release_key`, stored in the [`Store`]) and
//! uploads the artifact to `PUT /admin/releases/{id}/artifact` (hashed while it streams to
//! `releases_dir`, kept only if its size and SHA-256 are the manifest's). Operators set the
//! rollout (a percentage of stable cohorts and/or named sites) and may pause and resume it.
//! Each heartbeat (`crate::api::device`) records the update step the agent reports and gets
//! `offer`: the newest release for the device's target that its policy includes, unless the
//! device runs that version or has rolled it back or refused it. The agent downloads the
//! artifact from `GET /v1/releases/{id}/artifact`, with `Range` so a school's flaky uplink
//! can resume, and checks everything against the signed manifest itself: central is trusted
//! with the choice of release, never with its content.
//!
//! Registering, uploading and every change of a rollout write an audit line first, whether
//! they come from the operator API or the web interface's releases page, which changes
//! rollouts through the same `apply_rollout`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use skolebro_protocol::release::valid_release_id;
use skolebro_protocol::statement::manifest_digest;
use skolebro_protocol::{DeviceId, ReleaseManifest, ReleaseVerifyingKey, SiteId, Version};
use skolebro_protocol::{Statement, StatementSigningKey};
use skolebro_provisioning::DeviceIdentity;
use tokio::io::AsyncWriteExt as _;

use crate::audit;
use crate::store::{
    PublishedRotation, RolloutChange, Store, StoreError, Timestamp, UpdateEvent, UpdateState,
};

/// Longest reason kept from an agent's report; longer ones are cut, so a broken agent cannot
/// fill the database through its heartbeats.
pub const MAX_REASON_CHARS: usize = 512;

/// Most sites one rollout may name; a county has a few hundred schools.
pub const MAX_ROLLOUT_SITES: usize = 1000;

/// Where releases live and what they must be signed with. Without a key, central refuses
/// to register releases (503) but serves the ones it has.
#[derive(Debug, Clone)]
pub struct ReleaseSettings {
    /// The platform's release key (`release.pub`); manifests are registered only if they
    /// verify against it.
    pub key: Option<ReleaseVerifyingKey>,
    /// The folder holding `<id>.bin` (artifacts) and `<id>.skm` (manifests). Created at start.
    pub dir: PathBuf,
    /// Central's statement key (`statement.key`): every heartbeat answer carries a
    /// [`Statement`] signed with it (the time, and the manifest offered as current), and the
    /// enrollment answer its public half. Without it answers carry none, as from an older
    /// central, and devices check none.
    pub statement_key: Option<StatementSigningKey>,
}

/// How long a statement is valid: a day, as TUF's timestamp role. A device that heartbeats
/// every minute gets a new one each time; the day bounds what a replay can still say.
pub const STATEMENT_VALIDITY_MS: u64 = 86_400_000;

/// Central's statement for `device` now, signed with `key`, naming `offer`'s manifest as
/// current (none when nothing is offered), base64 for the answer. `None` for a manifest
/// that is not base64 (never stored: it was verified when registered).
pub(crate) fn statement(
    key: &StatementSigningKey,
    device: &DeviceId,
    target: Option<&str>,
    offer: Option<&ReleaseOffer>,
    now: Timestamp,
) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let current = match offer {
        Some(offer) => Some(manifest_digest(&engine.decode(offer.manifest.trim()).ok()?)),
        None => None,
    };
    let issued_unix_ms = u64::try_from(now.unix_millis()).unwrap_or(0);
    let statement = Statement {
        device: device.to_string(),
        target: target.map(str::to_owned),
        issued_unix_ms,
        expires_unix_ms: issued_unix_ms + STATEMENT_VALIDITY_MS,
        current,
    };
    Some(engine.encode(statement.sign(key)))
}

impl ReleaseSettings {
    pub(crate) fn artifact_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    pub(crate) fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.skm"))
    }
}

use skolebro_protocol::api::{ReleaseOffer, ReportedState, UpdateReport};

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
    store: &dyn Store,
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
    if store.record_update(&event).await? {
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
/// policy includes the device, that the device has not rolled back or refused, and whose
/// manifest the device would still take ([`offerable`]). It is offered only if its version
/// is not the one the device runs; the first offer is counted.
pub(crate) async fn offer(
    store: &dyn Store,
    settings: &ReleaseSettings,
    rotations: &[PublishedRotation],
    identity: &DeviceIdentity,
    running: &str,
    target: &str,
) -> Result<Option<ReleaseOffer>, StoreError> {
    let failed = store.failed_releases(&identity.device).await?;
    // The configured key followed through the published release key rotations: a manifest
    // signed with a rotated-out key is one every device refuses.
    let key = crate::key_rotation::follow_release_key(rotations, settings.key.as_ref())
        .map(|current| current.key);
    let releases = store.releases().await?;
    let now_unix = u64::try_from(Timestamp::now().unix_millis() / 1000).unwrap_or(0);
    let Some(chosen) = releases.into_iter().find(|release| {
        release.artifact_stored
            && !release.paused
            && release.release.target == target
            && !failed.contains(&release.release.id)
            && release.includes(&identity.device, &identity.site)
            && offerable(key.as_ref(), &release.release.manifest, now_unix)
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
    if store.record_update(&event).await? {
        tracing::info!(device = %identity.device, release = id, "release offered");
    }
    Ok(Some(ReleaseOffer {
        manifest: base64::engine::general_purpose::STANDARD.encode(&chosen.release.manifest),
        artifact: format!("/v1/releases/{id}/artifact"),
        id,
    }))
}

/// Whether a stored manifest is still one a device would take at `now_unix`: it verifies
/// against the release key trusted now (a manifest signed with a rotated-out key, or of a retired format no longer does) and has not
/// expired. Offering one the device must refuse would only turn into a `refused` report, and
/// a refused release is never offered to that device again. Without a release key central
/// cannot read the manifest and offers it as stored; the device still checks.
fn offerable(key: Option<&ReleaseVerifyingKey>, manifest: &[u8], now_unix: u64) -> bool {
    let Some(key) = key else {
        return true;
    };
    ReleaseManifest::verify(manifest, key).is_ok_and(|manifest| !manifest.expired_at(now_unix))
}

/// The id from a path, if it has the form of a release id; anything else cannot name a
/// release (and never becomes a file name).
pub(crate) fn release_id(id: &str) -> Option<&str> {
    valid_release_id(id).then_some(id)
}

/// Writes a whole small file atomically: a temporary name, flushed, renamed.
pub(crate) async fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

pub(crate) async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
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

/// Changes a release's rollout on behalf of `actor`: the one path for the operator API and
/// the web interface. The release must exist; then the audit line is written, and only if
/// it was is the policy changed. [`StoreError::UnknownRelease`] for an unknown id.
pub(crate) async fn apply_rollout(
    store: &dyn Store,
    actor: &str,
    id: &str,
    change: &RolloutChange,
) -> Result<(), StoreError> {
    audited_rollout(store, actor, id, change, None).await
}

/// [`apply_rollout`] with the operator's reason in the audit line: the web interface asks
/// for one before it pauses a rollout.
pub(crate) async fn apply_rollout_because(
    store: &dyn Store,
    actor: &str,
    id: &str,
    change: &RolloutChange,
    reason: &str,
) -> Result<(), StoreError> {
    audited_rollout(store, actor, id, change, Some(reason)).await
}

async fn audited_rollout(
    store: &dyn Store,
    actor: &str,
    id: &str,
    change: &RolloutChange,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    if store.release(id).await?.is_none() {
        return Err(StoreError::UnknownRelease(id.to_owned()));
    }
    let (action, mut detail) = rollout_words(change);
    if let Some(reason) = reason {
        detail = format!("{detail}: {reason}");
    }
    audit::record(store, actor, action, id, &detail).await?;
    store.change_rollout(id, change).await?;
    tracing::info!(release = id, actor, action, %detail, "rollout changed");
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

#[cfg(test)]
mod tests {
    use super::*;

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
