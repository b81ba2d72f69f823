//! The install root on disk (DESIGN decision 7): every release in `releases/<version>/`, the
//! `current` link the supervisor starts (`<install_root>/current/skolebro-agent`), the
//! `previous` link a failed trial rolls back to, and [`Ledger`]: the reports central has not
//! yet heard and the releases never to try again. The updater ([`super`]) writes here after
//! a release passed verification; the trial ([`super::trial`]) reads and switches back.
//!
//! Power may fail at any moment, so every change is a file written beside its final name,
//! fsynced and renamed over it, and a link is switched by making a new link and renaming it
//! over the old one (both atomic on one file system), followed by an fsync of the folder.
//! `current` only ever names a folder whose binary is complete; [`InstallRoot::recover`]
//! removes what a crash left half done.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hooks;
use skolebro_protocol::api::UpdateReport;

use super::error::UpdateError;

/// The folder of all releases inside the install root.
pub const RELEASES: &str = "releases";
/// The link the supervisor starts.
pub const CURRENT: &str = "current";
/// The link a failed trial rolls back to.
pub const PREVIOUS: &str = "previous";
/// The agent's binary inside a release folder.
pub const BINARY: &str = "skolebro-agent";
/// The updater's reports and refusals.
pub const LEDGER: &str = "update-ledger.json";
/// How many undelivered reports are kept: enough for one install's whole story.
const MAX_PENDING: usize = 16;

/// An install root and which of its releases this process runs.
#[derive(Debug, Clone)]
pub struct InstallRoot {
    root: PathBuf,
    /// The folder name (the version) under `releases/` of the running binary.
    running: String,
}

impl InstallRoot {
    /// The install root the running binary lives in (`<root>/releases/<version>/skolebro-agent`),
    /// found from the executable's path so that a trial can be counted before the config is
    /// read (a release that cannot read the config must still roll back). `None` when the
    /// binary runs from anywhere else (development, the tests, `/usr/bin`): then nothing is
    /// ever installed or rolled back.
    pub fn of_running_binary() -> Option<InstallRoot> {
        let exe = std::env::current_exe().ok()?;
        let release = exe.parent()?;
        let releases = release.parent()?;
        if releases.file_name()? != RELEASES || exe.file_name()? != BINARY {
            return None;
        }
        Some(InstallRoot {
            root: releases.parent()?.to_owned(),
            running: release.file_name()?.to_str()?.to_owned(),
        })
    }

    /// An install root at `root` whose running release is `running` (for tests).
    pub fn at(root: &Path, running: &str) -> InstallRoot {
        InstallRoot {
            root: root.to_owned(),
            running: running.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The version folder name of the running release.
    pub fn running(&self) -> &str {
        &self.running
    }

    /// The folder of the running release (its binary and any test hooks).
    pub fn running_dir(&self) -> PathBuf {
        self.release_dir(&self.running)
    }

    fn release_dir(&self, version: &str) -> PathBuf {
        self.root.join(RELEASES).join(version)
    }

    /// The version a link (`current` or `previous`) names, if it names a release folder
    /// that holds a binary.
    pub fn link(&self, name: &str) -> Option<String> {
        let target = fs::read_link(self.root.join(name)).ok()?;
        let version = target.file_name()?.to_str()?.to_owned();
        self.release_dir(&version)
            .join(BINARY)
            .is_file()
            .then_some(version)
    }

    /// Points link `name` at `releases/<version>`: a new link beside it renamed over it.
    pub fn point(&self, name: &str, version: &str) -> Result<(), UpdateError> {
        self.point_with(name, version, || Ok(()))
    }

    /// [`InstallRoot::point`], calling `made` once the new link exists beside the old one and
    /// before it is renamed over it: the one moment inside a switch where a power cut leaves
    /// a half-made link, which the switch's fault hook (see `trial::SwitchStep`) must reach.
    pub fn point_with(
        &self,
        name: &str,
        version: &str,
        made: impl FnOnce() -> Result<(), UpdateError>,
    ) -> Result<(), UpdateError> {
        let link = self.root.join(name);
        let temp = self.root.join(format!("{name}.tmp"));
        remove_if_present(&temp)?;
        let target = Path::new(RELEASES).join(version);
        std::os::unix::fs::symlink(&target, &temp).map_err(|e| UpdateError::io(&temp, e))?;
        made()?;
        fs::rename(&temp, &link).map_err(|e| UpdateError::io(&link, e))?;
        sync_dir(&self.root)
    }

    /// Copies `artifact` into `releases/<version>/skolebro-agent` (mode 0755), complete and
    /// fsynced before it gets its name. Other files in that folder (a test's `test-hooks`)
    /// stay.
    pub fn install(&self, version: &str, artifact: &Path) -> Result<(), UpdateError> {
        use std::os::unix::fs::PermissionsExt as _;
        if version == self.running {
            return Err(UpdateError::Layout(format!(
                "release {version} is the one running"
            )));
        }
        let dir = self.release_dir(version);
        fs::create_dir_all(&dir).map_err(|e| UpdateError::io(&dir, e))?;
        let binary = dir.join(BINARY);
        let temp = dir.join(format!("{BINARY}.tmp"));
        fs::copy(artifact, &temp).map_err(|e| UpdateError::io(&temp, e))?;
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))
            .map_err(|e| UpdateError::io(&temp, e))?;
        File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| UpdateError::io(&temp, e))?;
        hooks::abort_at("unpack");
        fs::rename(&temp, &binary).map_err(|e| UpdateError::io(&binary, e))?;
        sync_dir(&dir)?;
        sync_dir(&self.root.join(RELEASES))
    }

    /// Removes what an interrupted install or switch left behind, and makes sure `current`
    /// names a release that starts: if it names none (a crash before the first switch, or a
    /// damaged link), it is pointed at `previous`, else at the running release.
    pub fn recover(&self) -> Result<(), UpdateError> {
        for name in [CURRENT, PREVIOUS] {
            remove_if_present(&self.root.join(format!("{name}.tmp")))?;
        }
        if let Ok(entries) = fs::read_dir(self.root.join(RELEASES)) {
            for entry in entries.flatten() {
                remove_if_present(&entry.path().join(format!("{BINARY}.tmp")))?;
            }
        }
        if self.link(CURRENT).is_none() {
            let fallback = self.link(PREVIOUS).unwrap_or_else(|| self.running.clone());
            tracing::warn!(release = %fallback, "`current` names no release; pointing it back");
            self.point(CURRENT, &fallback)?;
        }
        Ok(())
    }

    /// Deletes release folders that neither `current` nor `previous` names (after a trial
    /// passed: the Pi's card is small).
    pub fn prune(&self) -> Result<(), UpdateError> {
        let keep = [self.link(CURRENT), self.link(PREVIOUS)];
        let dir = self.root.join(RELEASES);
        let entries = fs::read_dir(&dir).map_err(|e| UpdateError::io(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.iter().flatten().all(|k| *k != name) {
                tracing::info!(release = %name, "removing an old release");
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| UpdateError::io(&path, e))?;
            }
        }
        Ok(())
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join(LEDGER)
    }
}

/// What the updater must remember across restarts and releases: the reports central has
/// not heard yet (oldest first; one goes with each heartbeat until one succeeds) and the
/// releases refused or rolled back here, which are never downloaded again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ledger {
    pub pending: Vec<UpdateReport>,
    pub skipped: Vec<String>,
}

impl Ledger {
    /// Reads the ledger; a missing or unreadable one is empty (it holds nothing a release
    /// needs to start).
    pub fn load(path: &Path) -> Ledger {
        fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> Result<(), UpdateError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| UpdateError::Layout(format!("encoding the ledger: {e}")))?;
        write_durably(path, &bytes)
    }

    /// Queues a report, dropping the oldest beyond `MAX_PENDING`.
    pub fn push(&mut self, report: UpdateReport) {
        self.pending.push(report);
        let excess = self.pending.len().saturating_sub(MAX_PENDING);
        self.pending.drain(..excess);
    }

    /// Never try `release` again.
    pub fn skip(&mut self, release: &str) {
        if !self.skipped.iter().any(|s| s == release) {
            self.skipped.push(release.to_owned());
        }
    }

    pub fn skips(&self, release: &str) -> bool {
        self.skipped.iter().any(|s| s == release)
    }
}

fn remove_if_present(path: &Path) -> Result<(), UpdateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UpdateError::io(path, e)),
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), UpdateError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| UpdateError::io(dir, e))
}

/// Writes `bytes` to `path` durably: a temp file beside it, fsynced, renamed over it.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    crate::state::write_atomic_with(path, |file| file.write_all(bytes))
        .map_err(|e| UpdateError::io(path, e))
}

/// Removes `path` durably (a missing file is fine).
pub fn remove_durably(path: &Path) -> Result<(), UpdateError> {
    remove_if_present(path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::ReportedState;

    fn seeded() -> (tempfile::TempDir, InstallRoot) {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join(RELEASES).join("1.0.0");
        fs::create_dir_all(&release).unwrap();
        fs::write(release.join(BINARY), "old").unwrap();
        let root = InstallRoot::at(dir.path(), "1.0.0");
        root.point(CURRENT, "1.0.0").unwrap();
        (dir, root)
    }

    #[test]
    fn an_install_never_touches_current_and_a_crash_inside_it_is_cleaned_up() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, root) = seeded();
        let artifact = dir.path().join("artifact");
        fs::write(&artifact, "new release").unwrap();
        // A crash after the copy, before the rename: only the .tmp exists.
        let new = dir.path().join(RELEASES).join("2.0.0");
        fs::create_dir_all(&new).unwrap();
        fs::write(new.join("skolebro-agent.tmp"), "half").unwrap();
        fs::write(new.join(super::hooks::FILE), "SKOLEBRO_TEST_FAIL_HEALTH=1").unwrap();
        root.recover().unwrap();
        assert!(!new.join("skolebro-agent.tmp").exists());
        assert_eq!(root.link(CURRENT).as_deref(), Some("1.0.0"));
        assert_eq!(root.link(PREVIOUS), None);

        root.install("2.0.0", &artifact).unwrap();
        assert_eq!(fs::read(new.join(BINARY)).unwrap(), b"new release");
        let mode = fs::metadata(new.join(BINARY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(new.join(super::hooks::FILE).exists(), "other files stay");
        assert_eq!(root.link(CURRENT).as_deref(), Some("1.0.0"));
        assert!(matches!(
            root.install("1.0.0", &artifact),
            Err(UpdateError::Layout(_))
        ));
        assert_eq!(
            fs::read(dir.path().join(RELEASES).join("1.0.0").join(BINARY)).unwrap(),
            b"old"
        );
    }

    #[test]
    fn a_link_to_a_folder_without_a_binary_names_no_release() {
        let (dir, root) = seeded();
        fs::create_dir_all(dir.path().join(RELEASES).join("3.0.0")).unwrap();
        root.point(PREVIOUS, "3.0.0").unwrap();
        assert_eq!(root.link(PREVIOUS), None);
        // `current` naming it is pointed back at the running release.
        root.point(CURRENT, "3.0.0").unwrap();
        root.recover().unwrap();
        assert_eq!(root.link(CURRENT).as_deref(), Some("1.0.0"));
    }

    #[test]
    fn the_ledger_keeps_the_newest_reports_and_each_skip_once() {
        let (_dir, root) = seeded();
        let mut ledger = Ledger::load(&root.ledger_path());
        assert_eq!(ledger, Ledger::default());
        for n in 0..(MAX_PENDING + 4) {
            ledger.push(UpdateReport::new(
                &format!("{n}.0.0-x"),
                ReportedState::Refused,
                None,
            ));
        }
        ledger.skip("1.0.0-x");
        ledger.skip("1.0.0-x");
        ledger.save(&root.ledger_path()).unwrap();
        let read = Ledger::load(&root.ledger_path());
        assert_eq!(read.pending.len(), MAX_PENDING);
        assert_eq!(read.pending[0].release, "4.0.0-x");
        assert_eq!(read.skipped, ["1.0.0-x"]);
        assert!(read.skips("1.0.0-x") && !read.skips("2.0.0-x"));
    }
}
