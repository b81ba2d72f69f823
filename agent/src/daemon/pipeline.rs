//! The pipeline stage of the running phase: each complete export the watcher hands over is
//! read and validated on a blocking thread, refused if it names a school outside the site's
//! registration (the schools the stick carried), and otherwise offered to the enqueue stage
//! in [`Core`]. Each read is recorded while it runs ([`ReadingMarker`]); at its start the
//! stage sets aside an export the previous process stopped while reading.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use super::reading::ReadingMarker;
use crate::config::AgentConfig;
use crate::enqueue::OfferOutcome;
use crate::update::hooks;
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
    let marker = Arc::new(ReadingMarker::in_state(&config.state_dir));
    let m = Arc::clone(&marker);
    match tokio::task::spawn_blocking(move || m.left_behind()).await {
        Ok(Ok(Some(path))) => {
            with_core(&core, move |c| c.stopped_while_reading(&path)).await;
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot look for an export the agent stopped while reading");
        }
        Err(error) => tracing::error!(%error, "looking for an interrupted read panicked"),
    }
    loop {
        let path = tokio::select! {
            path = ready.recv() => match path { Some(path) => path, None => return },
            _ = stop.changed() => return,
        };
        let cap = crate::drop_share::size_cap_bytes(&config.state_dir);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Some(cap) = cap.filter(|cap| len > *cap) {
            let p = path.clone();
            with_core(&core, move |c| c.over_size_cap(&p, len, cap)).await;
            continue;
        }
        let written = written_unix_ms(&path);
        if let Some(written) = written {
            let p = path.clone();
            if with_core(&core, move |c| c.refuse_if_stale(&p, written)).await {
                continue;
            }
        }
        let (format, opts, p, m) = (
            config.format,
            options.clone(),
            path.clone(),
            Arc::clone(&marker),
        );
        let started = std::time::Instant::now();
        let read = tokio::task::spawn_blocking(move || {
            if let Err(error) = m.begin(&p) {
                tracing::error!(file = %file_name(&p), %error, "cannot record which export is being read");
            }
            hooks::abort_at("read");
            let read = read_export(&p, format, &opts);
            if let Err(error) = m.end() {
                tracing::error!(%error, "cannot clear the record of the export being read");
            }
            read
        })
        .await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                // A panic is a crash the process survived (in a build that unwinds; the
                // Pi's `pi` profile aborts, and the record left behind does this at the next
                // start): the file goes aside, or every rescan would panic on it again.
                tracing::error!(file = %file_name(&path), %error, "reading the export panicked");
                let _ = marker.end();
                let p = path.clone();
                with_core(&core, move |c| c.stopped_while_reading(&p)).await;
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
                let took = started.elapsed();
                let outcome = with_core(&core, move |c| {
                    c.read_took(took);
                    if c.refuse_if_partial(&p, &export, written) {
                        return Ok(None);
                    }
                    c.ingest(&p, export, written).map(Some)
                })
                .await;
                match outcome {
                    Ok(Some(OfferOutcome::Enqueued { .. })) => {
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
