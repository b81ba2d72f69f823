//! The share stage of the running phase, beside the watcher and the pipeline when the SAS
//! writes its export to a share on the school's file server (`[source] kind = "smb-share"`):
//! every `poll_seconds` it lists the share's export folder through [`crate::share`], copies
//! each export whose size and time stayed the same for `stable_seconds` into the drop
//! folder (under a hidden name, then renamed: the watcher takes it at once), and the
//! pipeline reads it as any dropped file.
//!
//! An export leaves the share only after central has it: once its copy left the drop folder
//! (taken in: enqueued, found unchanged, held or set aside) and the outbox is empty and no
//! delta is held, which means central acknowledged every batch, this export's included (an
//! export that made no delta is acknowledged at once). It is then deleted, or moved where
//! `after` says, and only if it is still the version that was copied: one the SAS rewrote
//! since is left to be copied in turn. What was copied and not yet removed is kept in
//! `<state_dir>/share.json`, so a restart neither copies it again nor forgets to remove it.
//!
//! A file over the read budget is refused by its listed size, before a byte of it is read.
//! An export whose name holds `"`, `;` or `%` (which `smbclient` cannot be given) stays on
//! the share: one warning per name, masked, and a status line while it is there.
//! A share that is down, a refused password or a copy cut short is a status line and the
//! `source_problem` metric, and the next poll tries again: never an exit, so never a crash
//! loop under systemd.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use skolebro_protocol::national_id::mask_in_text;
use tokio::sync::watch;

use super::core::{with_core, Shared};
use crate::config::AgentConfig;
use crate::outbox::unix_ms_now;
use crate::share::{RemoteFile, Share, ShareSource};
use crate::state::write_atomic_private;
use crate::watch::{Settler, Signature};

/// The record of exports copied from the share and not yet removed from it.
const SHARE_STATE: &str = "share.json";

/// One export copied into the drop folder: which version of which file on the share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Copied {
    name: String,
    len: u64,
    modified_unix_ms: i64,
}

impl Copied {
    fn is(&self, file: &RemoteFile) -> bool {
        self.name == file.name
            && self.len == file.len
            && self.modified_unix_ms == file.modified_unix_ms
    }
}

fn load(path: &Path) -> Vec<Copied> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save(path: &Path, copied: &[Copied]) {
    let saved = serde_json::to_vec(copied)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic_private(path, &bytes));
    if let Err(error) = saved {
        tracing::error!(%error, "cannot record the exports copied from the share");
    }
}

/// Looks at the share on the schedule until stopped.
pub(super) async fn share_loop(
    config: AgentConfig,
    source: ShareSource,
    core: Shared,
    mut stop: watch::Receiver<bool>,
) {
    remove_partial_copies(&config.drop_dir());
    let every = Duration::from_secs(source.poll_seconds.max(1));
    let stable = Duration::from_secs(source.stable_seconds);
    let mut poller = Poller {
        share: Share::new(source),
        drop_dir: config.drop_dir(),
        state_path: config.state_dir.join(SHARE_STATE),
        budget_bytes: config.read_budget_mib.saturating_mul(1 << 20),
        settler: Settler::new(stable),
        copied: load(&config.state_dir.join(SHARE_STATE)),
        warned: HashSet::new(),
    };
    loop {
        let problem = tokio::select! {
            problem = poller.poll(&core) => problem,
            _ = stop.changed() => return,
        };
        with_core(&core, move |c| c.source_problem(problem)).await;
        // A file still being written is looked at again once it may have settled.
        let wait = if poller.settler.has_unsettled() {
            every.min(stable.max(Duration::from_secs(1)))
        } else {
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Removes the hidden partial copies a process stopped mid-copy left in the drop folder
/// (the watcher never takes them; the next poll copies the file again).
fn remove_partial_copies(drop_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(drop_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(PART_SUFFIX) {
            if let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = %name, %error, "cannot remove a partial copy");
            }
        }
    }
}

/// The end of a partial copy's hidden name in the drop folder.
const PART_SUFFIX: &str = ".smb-part";

struct Poller {
    share: Share,
    drop_dir: PathBuf,
    state_path: PathBuf,
    budget_bytes: u64,
    settler: Settler,
    copied: Vec<Copied>,
    /// The (masked) unsupported names already warned of, while they stay on the share.
    warned: HashSet<String>,
}

impl Poller {
    /// One look at the share: removes what central has, copies what is stable. What went
    /// wrong, in words, for the status.
    async fn poll(&mut self, core: &Shared) -> Option<String> {
        let (files, unsupported) = match self.share.list().await {
            Ok(listing) => (listing.files, listing.unsupported),
            Err(error) => {
                tracing::warn!(%error, "cannot look at the export share; trying at the next poll");
                return Some(format!("the export share: {error}"));
            }
        };
        let mut problem = self.finish_acknowledged(&files, core).await;
        if let Some(unsupported) = self.warn_unsupported(unsupported) {
            problem.get_or_insert(unsupported);
        }

        let now = Instant::now();
        let mut present = HashSet::new();
        for file in &files {
            let key = PathBuf::from(&file.name);
            present.insert(key.clone());
            if self.copied.iter().any(|c| c.name == file.name) {
                continue;
            }
            if file.len > self.budget_bytes {
                let refused = format!(
                    "the export share: {} is {} MiB, over the read budget of {} MiB \
                     (read_budget_mib); it is not read",
                    file.name,
                    file.len >> 20,
                    self.budget_bytes >> 20
                );
                tracing::warn!(file = %file.name, bytes = file.len, "export on the share is over the read budget; not read");
                problem.get_or_insert(refused);
                continue;
            }
            let modified = SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(file.modified_unix_ms).unwrap_or(0));
            self.settler.observe(
                &key,
                Signature {
                    len: file.len,
                    modified,
                },
                now,
            );
        }
        self.settler.retain_present(&present);
        for key in self.settler.take_ready(now) {
            let Some(file) = files.iter().find(|f| Path::new(&f.name) == key) else {
                continue;
            };
            if let Err(error) = self.copy_in(file).await {
                tracing::warn!(file = %file.name, %error, "cannot copy the export from the share; trying at the next poll");
                self.settler.retry(&key);
                problem.get_or_insert(format!("the export share: {error}"));
            }
        }
        problem
    }

    /// Warns once per name of an export `smbclient` cannot be given (masked, as a name may
    /// hold a national id), and returns the status line while any is on the share.
    fn warn_unsupported(&mut self, names: Vec<String>) -> Option<String> {
        let masked: Vec<String> = names.iter().map(|n| mask_in_text(n)).collect();
        for name in &masked {
            if !self.warned.contains(name) {
                tracing::warn!(file = %name, "an export on the share has `\"`, `;` or `%` in its name, which smbclient cannot be given; it is not read until it is renamed");
            }
        }
        self.warned = masked.iter().cloned().collect();
        (!masked.is_empty()).then(|| {
            format!(
                "the export share: {} not read: `\"`, `;` and `%` cannot be read from a share; rename it",
                masked.join(", ")
            )
        })
    }

    /// Copies `file` into the drop folder: under a hidden name first, with the share's
    /// time as its modification time (the pipeline's order of exports), then renamed.
    async fn copy_in(&mut self, file: &RemoteFile) -> Result<(), String> {
        let target = self.drop_dir.join(&file.name);
        if target.exists() {
            return Err(format!(
                "{} is still in the drop folder from an earlier copy",
                file.name
            ));
        }
        let part = self.drop_dir.join(format!(".{}{PART_SUFFIX}", file.name));
        let started = Instant::now();
        let copied = self.share.copy(file, &part).await;
        let placed = copied.map_err(|e| e.to_string()).and_then(|()| {
            let modified = SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(file.modified_unix_ms).unwrap_or(0));
            std::fs::File::options()
                .write(true)
                .open(&part)
                .and_then(|f| f.set_modified(modified))
                .and_then(|()| std::fs::rename(&part, &target))
                .map_err(|e| format!("local copy in {}: {e}", self.drop_dir.display()))
        });
        if let Err(error) = placed {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
        tracing::info!(file = %file.name, bytes = file.len, ms = started.elapsed().as_millis() as u64, "export copied from the share");
        self.copied.push(Copied {
            name: file.name.clone(),
            len: file.len,
            modified_unix_ms: file.modified_unix_ms,
        });
        save(&self.state_path, &self.copied);
        Ok(())
    }

    /// Removes from the share each copied export central acknowledged (see the module
    /// doc); forgets those gone from the share or rewritten since.
    async fn finish_acknowledged(&mut self, files: &[RemoteFile], core: &Shared) -> Option<String> {
        if self.copied.is_empty() {
            return None;
        }
        let acknowledged = with_core(core, |c| {
            c.status().outbox_depth == 0 && c.status().held.is_none()
        })
        .await;
        let mut problem = None;
        let mut keep = Vec::new();
        let before = self.copied.len();
        for copied in std::mem::take(&mut self.copied) {
            if self.drop_dir.join(&copied.name).exists() || !acknowledged {
                keep.push(copied);
                continue;
            }
            if !files.iter().any(|f| copied.is(f)) {
                tracing::info!(file = %copied.name, "the copied export is gone from the share or was rewritten; nothing to remove");
                continue;
            }
            match self.share.finish(&copied.name, unix_ms_now() as i64).await {
                Ok(()) => {
                    tracing::info!(file = %copied.name, "central has the export; removed from the share")
                }
                Err(error) => {
                    tracing::warn!(file = %copied.name, %error, "cannot remove the export from the share; trying at the next poll");
                    problem.get_or_insert(format!("the export share: {error}"));
                    keep.push(copied);
                }
            }
        }
        self.copied = keep;
        // Only entries go, so an unchanged count is an unchanged list: while central has not
        // acknowledged, a poll writes nothing to the SD card.
        if self.copied.len() != before {
            save(&self.state_path, &self.copied);
        }
        problem
    }
}
