//! Disk space before a download (issue 18): the updater asks a [`FreeSpace`] how many bytes
//! the file systems of `<state_dir>/update` (the download) and the install root (the
//! installed copy) still have for an unprivileged writer, and starts a download only if the
//! artifact plus [`MARGIN_BYTES`] fits on both ([`check`]). A full disk is an answer, not an
//! interruption: the updater reports it once and waits until space frees up or the offer
//! changes, instead of downloading into `ENOSPC` on every heartbeat. [`Statvfs`] is the
//! production answer; the trait is the seam tests use to play a full disk.

use std::path::Path;

/// Room left beside the artifact: the SD card also holds the outbox, logs and the status
/// file, which must not be starved by an update.
pub const MARGIN_BYTES: u64 = 32 * 1024 * 1024;

/// Free bytes on the file system holding a path.
pub trait FreeSpace: Send + Sync + std::fmt::Debug {
    /// Bytes an unprivileged process may still write on the file system of `path`.
    fn available(&self, path: &Path) -> std::io::Result<u64>;
}

/// The real file systems, through `statvfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn available(&self, path: &Path) -> std::io::Result<u64> {
        let stat = rustix::fs::statvfs(path)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

/// Not enough room for a download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not enough disk space for the update: {needed} bytes needed in {place}, {available} free")]
pub struct Shortage {
    /// Where the space is missing (a folder).
    pub place: String,
    pub needed: u64,
    pub available: u64,
}

/// Whether `still_to_fetch` more bytes of the download in `download_dir` and an installed
/// copy of `size` bytes in `install_root` fit, each with [`MARGIN_BYTES`] to spare. A
/// file system that cannot be asked counts as full, with the reason in the log.
pub fn check(
    space: &dyn FreeSpace,
    download_dir: &Path,
    still_to_fetch: u64,
    install_root: &Path,
    size: u64,
) -> Result<(), Shortage> {
    for (dir, bytes) in [(download_dir, still_to_fetch), (install_root, size)] {
        let needed = bytes.saturating_add(MARGIN_BYTES);
        let available = space.available(dir).unwrap_or_else(|error| {
            tracing::warn!(dir = %dir.display(), %error, "cannot ask the file system for free space");
            0
        });
        if available < needed {
            return Err(Shortage {
                place: dir.display().to_string(),
                needed,
                available,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Free space per folder, as a test sets it.
    #[derive(Debug)]
    struct Fixed(Vec<(PathBuf, u64)>);

    impl FreeSpace for Fixed {
        fn available(&self, path: &Path) -> std::io::Result<u64> {
            self.0
                .iter()
                .find(|(dir, _)| dir == path)
                .map(|(_, free)| *free)
                .ok_or_else(|| std::io::Error::other("no such file system"))
        }
    }

    #[test]
    fn the_artifact_and_the_margin_must_fit_on_both_file_systems() {
        let (download, root) = (Path::new("/state/update"), Path::new("/opt/skolebro"));
        let size = 10 * 1024 * 1024;
        let enough = size + MARGIN_BYTES;
        let space = Fixed(vec![(download.into(), enough), (root.into(), enough)]);
        assert_eq!(check(&space, download, size, root, size), Ok(()));
        // A resumed download needs only the rest of the bytes in its folder.
        let tight = Fixed(vec![
            (download.into(), MARGIN_BYTES + 1),
            (root.into(), enough),
        ]);
        assert_eq!(check(&tight, download, 1, root, size), Ok(()));
        assert_eq!(
            check(&tight, download, 2, root, size),
            Err(Shortage {
                place: "/state/update".into(),
                needed: MARGIN_BYTES + 2,
                available: MARGIN_BYTES + 1,
            })
        );
        let small_root = Fixed(vec![(download.into(), enough), (root.into(), enough - 1)]);
        let shortage = check(&small_root, download, size, root, size).unwrap_err();
        assert_eq!(shortage.place, "/opt/skolebro");
        assert!(
            shortage.to_string().contains("not enough disk space"),
            "{shortage}"
        );
    }

    #[test]
    fn a_file_system_that_cannot_be_asked_counts_as_full() {
        let space = Fixed(Vec::new());
        let shortage = check(&space, Path::new("/x"), 1, Path::new("/y"), 1).unwrap_err();
        assert_eq!(shortage.available, 0);
    }

    #[test]
    fn statvfs_reports_the_free_space_of_a_real_folder() {
        let dir = tempfile::tempdir().unwrap();
        let free = Statvfs.available(dir.path()).unwrap();
        assert!(free > 0, "a writable temporary folder has room");
        assert!(Statvfs.available(&dir.path().join("missing")).is_err());
    }
}
