//! The version floor (issue 18): the lowest release version this device will ever install
//! again. A signed manifest may carry a `floor`; once the updater has checked such a
//! manifest ([`super::check_manifest`]: signature, target, not expired) it raises the floor
//! kept in `<state_dir>/release-floor`, and every later manifest below it is refused, a
//! downgrade included. The floor only goes up, and is replaced atomically, so a crash leaves
//! the old floor or the new one, never none.

use std::path::{Path, PathBuf};

use skolebro_protocol::release::Version;

use super::UpdateError;
use crate::state::write_atomic;

/// The floor file in the state folder: one `MAJOR.MINOR.PATCH` line.
pub const FLOOR_FILE: &str = "release-floor";

/// The persisted floor of one device.
#[derive(Debug, Clone)]
pub struct VersionFloor {
    path: PathBuf,
}

impl VersionFloor {
    /// The floor kept in `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> VersionFloor {
        VersionFloor {
            path: state_dir.join(FLOOR_FILE),
        }
    }

    /// The floor on disk; `None` when none was ever set. A file that does not hold a
    /// version is an error, not "no floor": forgetting the floor is what an attacker wants.
    pub fn load(&self) -> Result<Option<Version>, UpdateError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| UpdateError::Floor {
                    path: self.path.clone(),
                    reason: format!("{e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(UpdateError::io(&self.path, e)),
        }
    }

    /// Raises the floor to `floor` if that is above the one kept; never lowers it. Returns
    /// the floor in force afterwards.
    pub fn raise(&self, floor: Version) -> Result<Version, UpdateError> {
        match self.load()? {
            Some(kept) if kept >= floor => Ok(kept),
            _ => {
                write_atomic(&self.path, format!("{floor}\n").as_bytes())
                    .map_err(|e| UpdateError::io(&self.path, e))?;
                tracing::info!(%floor, "raised the release version floor");
                Ok(floor)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_survives_a_reopen_and_is_never_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let floor = VersionFloor::in_state_dir(dir.path());
        assert_eq!(floor.load().unwrap(), None);
        assert_eq!(
            floor.raise(Version::new(1, 2, 0)).unwrap(),
            Version::new(1, 2, 0)
        );
        assert_eq!(
            floor.raise(Version::new(1, 1, 9)).unwrap(),
            Version::new(1, 2, 0)
        );
        let reopened = VersionFloor::in_state_dir(dir.path());
        assert_eq!(reopened.load().unwrap(), Some(Version::new(1, 2, 0)));
        assert_eq!(
            reopened.raise(Version::new(2, 0, 0)).unwrap(),
            Version::new(2, 0, 0)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FLOOR_FILE)).unwrap(),
            "2.0.0\n"
        );
        assert!(!dir.path().join("release-floor.tmp").exists());
    }

    #[test]
    fn a_floor_file_that_holds_no_version_is_an_error_not_an_absent_floor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FLOOR_FILE), "garbage\n").unwrap();
        let floor = VersionFloor::in_state_dir(dir.path());
        assert!(matches!(floor.load(), Err(UpdateError::Floor { .. })));
        assert!(floor.raise(Version::new(1, 0, 0)).is_err());
    }
}
