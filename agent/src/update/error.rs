//! Why an update step failed, shared by every step of the updater (download, install,
//! trial) and reported upwards by [`super::Updater`].

use std::path::{Path, PathBuf};

use skolebro_protocol::civil_time::UtcDateTime;
use skolebro_protocol::release::{ReleaseError, Version};

use super::download::DownloadError;

/// Why an update step failed for now (a refusal is a [`Refusal`] instead).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("install root: {0}")]
    Layout(String),
    #[error("release key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// A download continued from an earlier part did not verify; the part is deleted and
    /// the next attempt fetches the artifact whole.
    #[error("the resumed download does not verify ({0}); starting over")]
    Resumed(Refusal),
    #[error("an update task failed: {0}")]
    Task(String),
    /// The version floor file holds no version: updates stop rather than forget the floor.
    #[error("version floor {path}: {reason}")]
    Floor { path: PathBuf, reason: String },
    #[error(transparent)]
    Download(#[from] DownloadError),
}

impl UpdateError {
    pub(super) fn io(path: &Path, source: std::io::Error) -> UpdateError {
        UpdateError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Why a release is refused: reported to central as the `refused` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the manifest is not base64")]
    NotBase64,
    #[error(transparent)]
    Manifest(#[from] ReleaseError),
    #[error("the manifest is release {manifest}, not the offered {offered}")]
    NotTheOffer { offered: String, manifest: String },
    #[error("the release is for {release}, this agent runs on {ours}")]
    WrongTarget { release: String, ours: String },
    #[error("version {release} does not go up from {running} and allows no downgrade")]
    NotNewer { release: Version, running: Version },
    /// A downgrade signed for another version than the one running: a replay.
    #[error("the downgrade to {release} replaces {replaces}, but this agent runs {running}")]
    NotReplaced {
        release: Version,
        replaces: Version,
        running: Version,
    },
    /// The manifest's validity is over by the agent's clock (the synced time, or else the
    /// clock floor, which is never later than the real time).
    #[error(
        "the manifest expired at {} (this agent's clock says {}); operations sign the release again",
        rfc3339(*expires_unix),
        rfc3339(*now_unix)
    )]
    Expired { expires_unix: u64, now_unix: u64 },
    /// Below the lowest version this device will install again.
    #[error("version {release} is below this device's version floor {floor}")]
    BelowFloor { release: Version, floor: Version },
    #[error("the artifact is {got} bytes, the manifest says {expected}")]
    Size { expected: u64, got: u64 },
    #[error("the artifact is larger than the manifest's {0} bytes")]
    Oversized(u64),
    #[error("the artifact's SHA-256 does not match the manifest")]
    Checksum,
}

/// Unix seconds as RFC 3339 in UTC, for refusals people read.
fn rfc3339(unix: u64) -> String {
    let millis = i64::try_from(unix)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    UtcDateTime::from_unix_millis(millis).to_string()
}
