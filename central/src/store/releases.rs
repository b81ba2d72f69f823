//! Agent releases (DESIGN decision 7) as central keeps them: the signed manifest, the rollout
//! policy and the devices' reports, behind [`ReleaseStore`].

use serde::{Deserialize, Serialize};
use skolebro_protocol::release::in_rollout;
use skolebro_protocol::{DeviceId, ReleaseManifest, SiteId, Version as ReleaseVersion};

use super::columns::{bytes32, stored_device, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// A release to register (DESIGN decision 7): the signed manifest as operations made it,
/// with the fields central selects and orders by taken out of it. Central stores manifests
/// only after verifying them, so the fields are the signed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    /// [`ReleaseManifest::id`]: `<version>-<target>`.
    pub id: String,
    pub version: ReleaseVersion,
    pub target: String,
    /// The artifact's length and SHA-256, which an uploaded artifact must match.
    pub size: u64,
    pub sha256: [u8; 32],
    pub allow_downgrade: bool,
    /// The signed manifest bytes, handed to devices as they are.
    pub manifest: Vec<u8>,
    /// When central registered it.
    pub registered: Timestamp,
}

impl NewRelease {
    /// The release a verified manifest describes.
    pub fn new(manifest: &ReleaseManifest, bytes: Vec<u8>, registered: Timestamp) -> NewRelease {
        NewRelease {
            id: manifest.id(),
            version: manifest.version,
            target: manifest.target.clone(),
            size: manifest.size,
            sha256: manifest.sha256,
            allow_downgrade: manifest.allow_downgrade,
            manifest: bytes,
            registered,
        }
    }
}

/// A registered release with its rollout policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// What was registered.
    pub release: NewRelease,
    /// Whether the artifact is stored (it matched the manifest); until then no device is
    /// offered the release.
    pub artifact_stored: bool,
    /// The share of devices in the rollout, 0 to 100, by stable cohort
    /// ([`skolebro_protocol::release::in_rollout`]).
    pub percent: u8,
    /// Sites whose devices are all in the rollout, whatever the percentage.
    pub sites: Vec<SiteId>,
    /// A paused release is offered to no device; its policy is kept for when it resumes.
    pub paused: bool,
}

impl ReleaseRecord {
    /// Whether the rollout policy includes a device of `site` (paused or not): its site is
    /// named, or it is in the first `percent` percent of the release's cohorts.
    pub fn includes(&self, device: &DeviceId, site: &SiteId) -> bool {
        self.sites.contains(site) || in_rollout(&self.release.id, device.as_str(), self.percent)
    }
}

/// A change of a release's rollout policy; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutChange {
    /// The new percentage, 0 to 100.
    pub percent: Option<u8>,
    /// The new list of named sites (replacing the old one).
    pub sites: Option<Vec<SiteId>>,
    /// Pause (`true`) or resume (`false`).
    pub paused: Option<bool>,
}

/// Where a device stands with a release: `offered` is central's own record of handing it out,
/// the others are what the agent reports in its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Offered,
    Downloaded,
    Installed,
    Healthy,
    RolledBack,
    Refused,
}

impl UpdateState {
    /// Every state, in the order an update goes through them.
    pub const ALL: [UpdateState; 6] = [
        UpdateState::Offered,
        UpdateState::Downloaded,
        UpdateState::Installed,
        UpdateState::Healthy,
        UpdateState::RolledBack,
        UpdateState::Refused,
    ];

    /// The stored and reported name (`rolled_back`).
    pub fn name(self) -> &'static str {
        match self {
            UpdateState::Offered => "offered",
            UpdateState::Downloaded => "downloaded",
            UpdateState::Installed => "installed",
            UpdateState::Healthy => "healthy",
            UpdateState::RolledBack => "rolled_back",
            UpdateState::Refused => "refused",
        }
    }

    pub(crate) fn from_name(name: &str) -> Result<UpdateState, StoreError> {
        UpdateState::ALL
            .into_iter()
            .find(|state| state.name() == name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown update state {name:?}")))
    }

    /// Whether the device is done with the release for good: it rolled it back or refused
    /// it, so offering it again would only repeat that.
    pub fn is_final_failure(self) -> bool {
        matches!(self, UpdateState::RolledBack | UpdateState::Refused)
    }
}

/// One step of a device's update, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEvent {
    /// The release's id.
    pub release: String,
    pub device: DeviceId,
    pub state: UpdateState,
    /// Why, for `rolled_back` and `refused`.
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// How many devices reached each state of a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateCounts {
    pub offered: u64,
    pub downloaded: u64,
    pub installed: u64,
    pub healthy: u64,
    pub rolled_back: u64,
    pub refused: u64,
}

impl UpdateCounts {
    pub(crate) fn add(&mut self, state: UpdateState, count: u64) {
        let field = match state {
            UpdateState::Offered => &mut self.offered,
            UpdateState::Downloaded => &mut self.downloaded,
            UpdateState::Installed => &mut self.installed,
            UpdateState::Healthy => &mut self.healthy,
            UpdateState::RolledBack => &mut self.rolled_back,
            UpdateState::Refused => &mut self.refused,
        };
        *field += count;
    }
}

/// A device that rolled back or refused a release, and the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReason {
    pub device: DeviceId,
    pub reason: Option<String>,
}

/// How a release's rollout is going: the operators' view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    pub counts: UpdateCounts,
    /// Devices that rolled the release back, by device id.
    pub rollbacks: Vec<DeviceReason>,
    /// Devices that refused it, by device id.
    pub refusals: Vec<DeviceReason>,
}

/// A release row as both databases read it, before its values are checked.
pub(crate) struct ReleaseRow {
    pub id: String,
    pub major: i64,
    pub minor: i64,
    pub patch: i64,
    pub target: String,
    pub size: i64,
    pub sha256: Vec<u8>,
    pub allow_downgrade: bool,
    pub manifest: Vec<u8>,
    pub registered: i64,
    pub artifact_stored: bool,
    pub percent: i64,
    pub sites: String,
    pub paused: bool,
}

/// The columns a [`ReleaseRow`] is read from, in its field order.
pub(crate) const RELEASE_COLUMNS: &str = "id, major, minor, patch, target, size, sha256, \
     allow_downgrade, manifest, created, artifact_stored, percent, sites, paused";

/// The order releases are listed in: newest version first.
pub(crate) const RELEASE_ORDER: &str = "ORDER BY major DESC, minor DESC, patch DESC, id";

impl ReleaseRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<ReleaseRow, R::Error> {
        Ok(ReleaseRow {
            id: row.column(0)?,
            major: row.column(1)?,
            minor: row.column(2)?,
            patch: row.column(3)?,
            target: row.column(4)?,
            size: row.column(5)?,
            sha256: row.column(6)?,
            allow_downgrade: row.column(7)?,
            manifest: row.column(8)?,
            registered: row.column(9)?,
            artifact_stored: row.column(10)?,
            percent: row.small_int(11)?,
            sites: row.column(12)?,
            paused: row.column(13)?,
        })
    }

    pub(super) fn into_record(self) -> Result<ReleaseRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("release {}: {what}", self.id));
        let number = |n: i64| u32::try_from(n).map_err(|_| corrupt("version out of range"));
        let version = ReleaseVersion::new(
            number(self.major)?,
            number(self.minor)?,
            number(self.patch)?,
        );
        let size = u64::try_from(self.size).map_err(|_| corrupt("negative size"))?;
        let percent = u8::try_from(self.percent)
            .ok()
            .filter(|percent| *percent <= 100)
            .ok_or_else(|| corrupt("percent out of range"))?;
        let sites: Vec<SiteId> =
            serde_json::from_str(&self.sites).map_err(|_| corrupt("sites do not decode"))?;
        Ok(ReleaseRecord {
            release: NewRelease {
                sha256: bytes32(&self.sha256, "release sha256")?,
                id: self.id,
                version,
                target: self.target,
                size,
                allow_downgrade: self.allow_downgrade,
                manifest: self.manifest,
                registered: Timestamp(self.registered),
            },
            artifact_stored: self.artifact_stored,
            percent,
            sites,
            paused: self.paused,
        })
    }
}

/// The stored form of a site list: a JSON array of ids.
pub(crate) fn sites_json(sites: &[SiteId]) -> String {
    serde_json::to_string(sites).unwrap_or_else(|_| "[]".to_owned())
}

/// Folds `(device, state, reason)` rows into a [`ReleaseReport`].
pub(crate) fn release_report(
    rows: impl IntoIterator<Item = (String, String, Option<String>)>,
) -> Result<ReleaseReport, StoreError> {
    let mut report = ReleaseReport::default();
    for (device, state, reason) in rows {
        let state = UpdateState::from_name(&state)?;
        report.counts.add(state, 1);
        let list = match state {
            UpdateState::RolledBack => &mut report.rollbacks,
            UpdateState::Refused => &mut report.refusals,
            _ => continue,
        };
        let device = stored_device(&device)?;
        list.push(DeviceReason { device, reason });
    }
    Ok(report)
}

/// Agent releases, their rollout policy and how devices report on them.
pub trait ReleaseStore: Send + Sync {
    /// Registers a release. The same manifest again changes nothing and returns `false`, so
    /// a `release` run that failed halfway can be repeated; another manifest under the same
    /// id is [`StoreError::ReleaseExists`]. A new release is stored without artifact, at 0
    /// percent, with no sites, not paused: offered to nobody.
    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool>;

    /// Every release, newest version first (then by id).
    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>>;

    /// The release with this id, or `None`.
    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>>;

    /// Records that the release's artifact is stored and matched its manifest.
    /// [`StoreError::UnknownRelease`] for an unknown id.
    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Changes a release's rollout policy. [`StoreError::UnknownRelease`] for an unknown id.
    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()>;

    /// Records a step of a device's update, once per device, release and state: returns
    /// whether it is new. A report about a release central does not know is not stored
    /// (`false`), because the agent may have been updated from elsewhere.
    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool>;

    /// The counts, rollbacks and refusals of a release (all zero for an unknown id).
    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport>;

    /// The releases this device rolled back or refused: never offered to it again.
    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>>;
}
