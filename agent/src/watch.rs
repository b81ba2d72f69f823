//! The drop-folder watcher: the first stage of the daemon. It notices export files in the
//! drop folder (inotify through `notify`, plus a periodic rescan because inotify misses
//! changes made by another host over SMB or NFS), waits until each file is complete, and
//! hands its path to the pipeline over a bounded channel.
//!
//! A file is complete when its size and mtime have stayed the same for `settle` (a SAS that
//! writes in place), or at once when it was renamed into the folder (a SAS that writes a
//! temporary file and renames it, the safe way). A path is handed on once per version: it is
//! handed on again only if its size or mtime change, or if the pipeline asks for a retry.
//! Hidden files, temporary names (`*.tmp`, `*.part`, `*~`), empty files and sub-folders
//! (`rejected/`) are ignored: an SMB client (Windows, `smbclient`) creates the file first and
//! may write nothing into it for longer than `settle`, and an empty file is never an export.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};

/// What identifies one version of a file: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub len: u64,
    pub modified: SystemTime,
}

#[derive(Debug, Clone)]
struct Entry {
    signature: Signature,
    stable_since: Instant,
    renamed: bool,
    dispatched: bool,
}

/// Decides when files are complete. Pure bookkeeping (the caller supplies observations and
/// the time), so it is tested without a file system or a clock.
#[derive(Debug, Clone)]
pub struct Settler {
    settle: Duration,
    files: HashMap<PathBuf, Entry>,
    renamed: HashSet<PathBuf>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            files: HashMap::new(),
            renamed: HashSet::new(),
        }
    }

    /// A rename into the folder ended at `path`: its next version counts as complete at once.
    pub fn renamed_into_place(&mut self, path: &Path) {
        if let Some(entry) = self.files.get_mut(path) {
            entry.renamed = true;
            entry.dispatched = false;
        } else {
            self.renamed.insert(path.to_owned());
        }
    }

    /// Records what a scan saw of `path` at `now`. A new size or mtime restarts the wait and
    /// makes the file due again.
    pub fn observe(&mut self, path: &Path, signature: Signature, now: Instant) {
        let renamed = self.renamed.remove(path);
        match self.files.get_mut(path) {
            Some(entry) if entry.signature == signature => entry.renamed |= renamed,
            Some(entry) => {
                *entry = Entry {
                    signature,
                    stable_since: now,
                    renamed,
                    dispatched: false,
                }
            }
            None => {
                self.files.insert(
                    path.to_owned(),
                    Entry {
                        signature,
                        stable_since: now,
                        renamed,
                        dispatched: false,
                    },
                );
            }
        }
    }

    /// Forgets files a scan no longer found (ingested and removed, or moved away).
    pub fn retain_present(&mut self, present: &HashSet<PathBuf>) {
        self.files.retain(|path, _| present.contains(path));
    }

    /// The files that became complete and were not handed on yet, oldest mtime first; they
    /// are marked as handed on. A complete file never overtakes an older one that is still
    /// settling (e.g. one renamed in just after the agent started, beside exports that were
    /// already there): each export is diffed against the one before it, so out of order
    /// central would get the newer roster and then an older one.
    pub fn take_ready(&mut self, now: Instant) -> Vec<PathBuf> {
        let settle = self.settle;
        let complete =
            |e: &Entry| e.renamed || now.saturating_duration_since(e.stable_since) >= settle;
        let oldest_settling = self
            .files
            .values()
            .filter(|e| !e.dispatched && !complete(e))
            .map(|e| e.signature.modified)
            .min();
        let mut ready: Vec<(SystemTime, PathBuf)> = self
            .files
            .iter_mut()
            .filter(|(_, e)| {
                !e.dispatched
                    && complete(e)
                    && oldest_settling.is_none_or(|oldest| e.signature.modified < oldest)
            })
            .map(|(path, e)| {
                e.dispatched = true;
                (e.signature.modified, path.clone())
            })
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, path)| path).collect()
    }

    /// Lets `path` be handed on again (the pipeline could not finish it for a reason that
    /// may pass, e.g. a disk error).
    pub fn retry(&mut self, path: &Path) {
        if let Some(entry) = self.files.get_mut(path) {
            entry.dispatched = false;
        }
    }

    /// Whether some file is still waiting to settle (the watcher then looks again soon).
    pub fn has_unsettled(&self) -> bool {
        self.files.values().any(|e| !e.dispatched)
    }
}

/// Whether a name in the drop folder may be an export.
pub fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".error.txt"))
}

/// The regular files in `dir` that may be exports, with their signatures. Empty files are
/// left out: they are being created (an SMB writer opens the file before its first write), and
/// one that stays empty holds nothing to send; once it has bytes it is seen as a new file.
pub fn scan(dir: &Path) -> std::io::Result<Vec<(PathBuf, Signature)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name();
        if !meta.is_file() || meta.len() == 0 || !is_candidate(&name.to_string_lossy()) {
            continue;
        }
        out.push((
            entry.path(),
            Signature {
                len: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            },
        ));
    }
    Ok(out)
}

/// Whether a file event can mean a new, grown, renamed or removed file, and so is worth a
/// scan. Opening or reading something in the folder is not: each scan opens the folder
/// itself, and inotify reports that open, so a watcher that rescanned on every event would
/// feed itself and keep a core busy forever.
pub fn may_change_a_file(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("drop folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("watching {}: {source}", path.display())]
    Notify {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Watches `dir` until shutdown, sending each complete file to `ready`. `retry` brings back
/// paths the pipeline wants handed on again. Blocks (awaits) on a full `ready` channel, so a
/// slow pipeline slows the watcher rather than queueing without bound.
pub async fn run(
    dir: PathBuf,
    settle: Duration,
    rescan: Duration,
    ready: mpsc::Sender<PathBuf>,
    mut retry: mpsc::Receiver<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WatchError> {
    std::fs::create_dir_all(&dir).map_err(|source| WatchError::Io {
        path: dir.clone(),
        source,
    })?;
    // notify calls back on its own thread: it pokes a one-slot channel (coalescing bursts of
    // events) and remembers rename targets; a full slot is fine, a scan is coming anyway.
    let (poke_tx, mut poke_rx) = mpsc::channel::<()>(1);
    let renames: Arc<parking_lot::Mutex<Vec<PathBuf>>> = Arc::default();
    let overflow = Arc::new(AtomicBool::new(false));
    let handler = {
        let renames = renames.clone();
        let overflow = overflow.clone();
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else {
                overflow.store(true, Ordering::Relaxed);
                let _ = poke_tx.try_send(());
                return;
            };
            if !may_change_a_file(&event.kind) {
                return;
            }
            if let EventKind::Modify(notify::event::ModifyKind::Name(mode)) = event.kind {
                use notify::event::RenameMode;
                let target = match mode {
                    RenameMode::To => event.paths.first().cloned(),
                    RenameMode::Both => event.paths.get(1).cloned(),
                    _ => None,
                };
                if let Some(target) = target {
                    let mut list = renames.lock();
                    if list.len() < 1024 {
                        list.push(target);
                    }
                }
            }
            let _ = poke_tx.try_send(());
        }
    };
    let mut watcher =
        notify::recommended_watcher(handler).map_err(|source| WatchError::Notify {
            path: dir.clone(),
            source,
        })?;
    if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        // Rescans still work (e.g. inotify watches exhausted): degrade, do not die.
        tracing::warn!(dir = %dir.display(), %error, "no file events; relying on rescans");
    }
    tracing::info!(dir = %dir.display(), "watching the drop folder");

    let mut settler = Settler::new(settle);
    let quick = (settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
    let mut next_rescan = Instant::now();
    loop {
        let now = Instant::now();
        let renamed = std::mem::take(&mut *renames.lock());
        for path in renamed {
            settler.renamed_into_place(&path);
        }
        overflow.store(false, Ordering::Relaxed);
        match scan(&dir) {
            Ok(files) => {
                let present = files.iter().map(|(p, _)| p.clone()).collect();
                settler.retain_present(&present);
                for (path, signature) in files {
                    settler.observe(&path, signature, now);
                }
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot scan the drop folder")
            }
        }
        for path in settler.take_ready(now) {
            tracing::info!(file = %file_name(&path), "export complete");
            tokio::select! {
                sent = ready.send(path) => if sent.is_err() { return Ok(()) },
                _ = shutdown.changed() => return Ok(()),
            }
        }
        if now >= next_rescan {
            next_rescan = now + rescan;
        }
        let wait = if settler.has_unsettled() {
            quick
        } else {
            next_rescan.saturating_duration_since(Instant::now())
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = poke_rx.recv() => {}
            Some(path) = retry.recv() => settler.retry(&path),
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    drop(watcher);
    Ok(())
}

/// The file name alone, for logs (the folder can name the school; the name is what IT sees).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(len: u64, secs: u64) -> Signature {
        Signature {
            len,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_file_is_complete_once_size_and_mtime_are_stable_for_the_settle_time() {
        let mut settler = Settler::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let path = Path::new("/drop/elever.csv");
        settler.observe(path, sig(100, 1), t0);
        assert!(settler.take_ready(t0).is_empty());
        // Still growing: the wait restarts.
        settler.observe(path, sig(200, 2), t0 + Duration::from_secs(1));
        assert!(settler
            .take_ready(t0 + Duration::from_millis(2500))
            .is_empty());
        settler.observe(path, sig(200, 2), t0 + Duration::from_secs(3));
        assert_eq!(settler.take_ready(t0 + Duration::from_secs(3)), [path]);
        // Handed on once per version.
        assert!(settler.take_ready(t0 + Duration::from_secs(10)).is_empty());
        assert!(!settler.has_unsettled());
        // A new version is due again.
        settler.observe(path, sig(300, 9), t0 + Duration::from_secs(11));
        assert!(settler.has_unsettled());
        assert_eq!(settler.take_ready(t0 + Duration::from_secs(13)), [path]);
    }

    #[test]
    fn a_file_renamed_into_place_is_complete_at_once() {
        let mut settler = Settler::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let path = Path::new("/drop/elever.csv");
        settler.renamed_into_place(path);
        settler.observe(path, sig(100, 1), t0);
        assert_eq!(settler.take_ready(t0), [path]);
    }

    #[test]
    fn a_renamed_file_waits_for_older_files_that_are_still_settling() {
        let mut settler = Settler::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let older = Path::new("/drop/monday.csv");
        let newer = Path::new("/drop/tuesday.csv");
        settler.observe(older, sig(100, 1), t0);
        settler.renamed_into_place(newer);
        settler.observe(newer, sig(100, 2), t0);
        assert!(
            settler.take_ready(t0).is_empty(),
            "the older one settles first"
        );
        assert_eq!(
            settler.take_ready(t0 + Duration::from_secs(2)),
            [older, newer]
        );
    }

    #[test]
    fn a_retried_path_is_handed_on_again_and_vanished_files_are_forgotten() {
        let mut settler = Settler::new(Duration::ZERO);
        let t0 = Instant::now();
        let a = Path::new("/drop/a.csv");
        let b = Path::new("/drop/b.csv");
        settler.observe(a, sig(1, 5), t0);
        settler.observe(b, sig(1, 3), t0);
        assert_eq!(settler.take_ready(t0), [b, a], "oldest mtime first");
        settler.retry(a);
        assert_eq!(settler.take_ready(t0), [a]);
        settler.retain_present(&HashSet::from([b.to_owned()]));
        settler.retry(a);
        assert!(settler.take_ready(t0).is_empty());
    }

    #[test]
    fn temporary_and_hidden_names_are_not_exports() {
        assert!(is_candidate("elever.csv"));
        assert!(is_candidate("oneroster.zip"));
        for name in [
            ".elever.csv",
            "elever.csv.tmp",
            "elever.part",
            "elever.csv~",
            "x.error.txt",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
    }

    #[test]
    fn opening_or_reading_is_no_reason_to_scan_but_writing_is() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
        };
        for quiet in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(!may_change_a_file(&quiet), "{quiet:?}");
        }
        for change in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Other,
        ] {
            assert!(may_change_a_file(&change), "{change:?}");
        }
    }

    #[tokio::test]
    async fn scanning_an_unchanged_folder_raises_no_event_worth_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elever.csv"), "x").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    let _ = tx.send((event.kind, event.paths));
                }
            })
            .unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();
        for _ in 0..3 {
            assert_eq!(scan(dir.path()).unwrap().len(), 1);
            let _ = std::fs::read(dir.path().join("elever.csv")).unwrap();
        }
        std::fs::write(dir.path().join("neste.csv"), "y").unwrap();
        // Events arrive in order: everything before the write's events came from the scans.
        let mut seen = Vec::new();
        let (kind, paths) = loop {
            let (kind, paths) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("the write is reported")
                .unwrap();
            if may_change_a_file(&kind) {
                break (kind, paths);
            }
            seen.push(kind);
        };
        assert!(matches!(kind, EventKind::Create(_)), "{kind:?}");
        assert_eq!(paths, [dir.path().join("neste.csv")]);
        assert!(!seen.is_empty(), "the scans were reported, as opens");
    }

    #[test]
    fn scan_lists_regular_files_but_not_subfolders_or_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elever.csv"), "x").unwrap();
        std::fs::write(dir.path().join("being-created.csv"), "").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("rejected")).unwrap();
        let found = scan(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, dir.path().join("elever.csv"));
        assert_eq!(found[0].1.len, 1);
    }
}
