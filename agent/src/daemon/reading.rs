//! The poison-pill rule of the pipeline stage: before an export is read, the daemon records
//! in its state folder which file it is reading, durably, and removes the record once the
//! read is over. A record found at the next start means the process died while reading that
//! file (out of memory, a crash, a power cut in the middle); the pipeline then sets the file
//! aside in `rejected/` instead of reading it again, so one file that kills the agent cannot
//! make it crash in a loop and stop the school's deliveries.
//!
//! The record also holds the file's size and modification time: if the SAS has since
//! written a new export under the same name, that file is not the one that was being read,
//! and it is read as usual.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::state::write_atomic_private;

/// The record's name in the state folder.
const MARKER: &str = "reading";

/// The record of the export being read, in one state folder.
pub(super) struct ReadingMarker {
    path: PathBuf,
}

/// What identifies one version of an export file: its path, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    path: PathBuf,
    size: u64,
    modified_ns: u128,
}

impl Version {
    fn of(path: &Path) -> io::Result<Version> {
        let meta = std::fs::metadata(path)?;
        let modified_ns = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Ok(Version {
            path: path.to_owned(),
            size: meta.len(),
            modified_ns,
        })
    }

    /// Size and time on the first line, the path on the second: a path may hold spaces.
    fn to_text(&self) -> Option<String> {
        let path = self.path.to_str()?;
        Some(format!("{} {}\n{path}\n", self.size, self.modified_ns))
    }

    fn from_text(text: &str) -> Option<Version> {
        let (first, path) = text.split_once('\n')?;
        let (size, modified_ns) = first.split_once(' ')?;
        Some(Version {
            path: PathBuf::from(path.strip_suffix('\n').unwrap_or(path)),
            size: size.parse().ok()?,
            modified_ns: modified_ns.parse().ok()?,
        })
    }
}

impl ReadingMarker {
    /// The record kept in `state_dir`.
    pub(super) fn in_state(state_dir: &Path) -> ReadingMarker {
        ReadingMarker {
            path: state_dir.join(MARKER),
        }
    }

    /// Records, durably, that `export` is about to be read. A path that is not UTF-8 is
    /// recorded by its size and time alone, and then matches no file at the next start.
    pub(super) fn begin(&self, export: &Path) -> io::Result<()> {
        let version = Version::of(export)?;
        let text = version.to_text().unwrap_or_default();
        write_atomic_private(&self.path, text.as_bytes())
    }

    /// The read is over, however it ended: the record goes, durably, so a later crash does
    /// not blame this file.
    pub(super) fn end(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let folder = self.path.parent().unwrap_or(Path::new("."));
        File::open(folder)?.sync_all()
    }

    /// The export the previous process was reading when it stopped, if that file is still
    /// there unchanged. The record is removed either way.
    pub(super) fn left_behind(&self) -> io::Result<Option<PathBuf>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let found = Version::from_text(&text)
            .filter(|recorded| Version::of(&recorded.path).ok().as_ref() == Some(recorded))
            .map(|recorded| recorded.path);
        self.end()?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_ended_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("elever.csv");
        std::fs::write(&export, "x").unwrap();
        let marker = ReadingMarker::in_state(dir.path());
        marker.begin(&export).unwrap();
        marker.end().unwrap();
        assert_eq!(marker.left_behind().unwrap(), None);
        marker.end().unwrap();
    }

    #[test]
    fn a_read_that_never_ended_names_its_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("elever med mellomrom.csv");
        std::fs::write(&export, "x").unwrap();
        ReadingMarker::in_state(dir.path()).begin(&export).unwrap();
        // The process dies here; the next one looks.
        let marker = ReadingMarker::in_state(dir.path());
        assert_eq!(marker.left_behind().unwrap(), Some(export));
        assert_eq!(marker.left_behind().unwrap(), None, "the record is gone");
    }

    #[test]
    fn a_file_written_anew_under_the_same_name_is_not_blamed() {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("elever.csv");
        std::fs::write(&export, "x").unwrap();
        ReadingMarker::in_state(dir.path()).begin(&export).unwrap();
        std::fs::write(&export, "the next export").unwrap();
        let marker = ReadingMarker::in_state(dir.path());
        assert_eq!(marker.left_behind().unwrap(), None);
        assert!(export.exists());
    }
}
