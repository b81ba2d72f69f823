//! The pipeline stage of the running phase: each complete export the watcher hands over is
//! read and validated on a blocking thread, refused if it names a school outside the site's
//! registration (the schools the stick carried), and otherwise offered to the enqueue stage
//! in [`Core`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use crate::config::AgentConfig;
use crate::enqueue::OfferOutcome;
use crate::watch::file_name;
use skolebro_roster::reader::read_export;
use skolebro_roster::site::foreign_schools;

/// Reads each complete export and offers it.
pub(super) async fn pipeline(
    config: AgentConfig,
    core: Shared,
    mut ready: mpsc::Receiver<PathBuf>,
    retry: mpsc::Sender<PathBuf>,
    wake: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let options = config.reader_options();
    loop {
        let path = tokio::select! {
            path = ready.recv() => match path { Some(path) => path, None => return },
            _ = stop.changed() => return,
        };
        let written = written_unix_ms(&path);
        if let Some(written) = written {
            let p = path.clone();
            if with_core(&core, move |c| c.refuse_if_stale(&p, written)).await {
                continue;
            }
        }
        let (format, opts, p) = (config.format, options.clone(), path.clone());
        let read = tokio::task::spawn_blocking(move || read_export(&p, format, &opts)).await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(file = %file_name(&path), %error, "reading the export panicked");
                continue;
            }
        };
        match read {
            Err(error) => {
                let p = path.clone();
                with_core(&core, move |c| c.rejected(&p, &error)).await;
            }
            Ok((_, export)) => {
                let foreign = foreign_schools(&export, &config.site_schools, &file_name(&path));
                if !foreign.is_empty() {
                    let p = path.clone();
                    with_core(&core, move |c| {
                        c.refuse_foreign_schools(&p, export, foreign)
                    })
                    .await;
                    continue;
                }
                let p = path.clone();
                let outcome = with_core(&core, move |c| c.ingest(&p, export, written)).await;
                match outcome {
                    Ok(OfferOutcome::Enqueued { .. }) => {
                        let _ = wake.try_send(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(file = %file_name(&path), %error, "cannot enqueue; will retry at the next rescan");
                        let _ = retry.try_send(path);
                    }
                }
            }
        }
    }
}

/// A file's modification time in unix ms, if the file system keeps one.
fn written_unix_ms(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
