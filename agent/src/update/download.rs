//! Fetching a release's artifact (DESIGN decision 7): the first step of an update, after
//! the manifest verified. Bytes go to `<state_dir>/update/<id>.part` over the uplink's
//! mutual-TLS client; an interrupted download (a lost connection, a restart, a power cut)
//! continues where the file ends with `Range: bytes=N-`. Whether the bytes are the right ones
//! is decided afterwards by [`digest`] against the manifest, never by the transfer.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::Path;

use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use super::hooks;
use crate::uplink::Central;

/// Why a download did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Worth trying again later: central unreachable, the connection dropped, a refusal
    /// that may pass.
    #[error("download interrupted: {0}")]
    Interrupted(String),
    /// Central sent more bytes than the manifest says the artifact has.
    #[error("the artifact is larger than the manifest's {0} bytes")]
    TooLarge(u64),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Fetches `artifact` (central's path for it) into `part` until it holds `size` bytes,
/// continuing a partial file. Returns the offset it continued from (0: a fresh download).
pub async fn fetch(
    central: &Central,
    artifact: &str,
    part: &Path,
    size: u64,
) -> Result<u64, DownloadError> {
    let mut from = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if from > size {
        from = 0;
    }
    if from == size && size > 0 {
        return Ok(from);
    }
    let mut response = central
        .artifact(artifact, from)
        .await
        .map_err(|e| DownloadError::Interrupted(e.to_string()))?;
    let status = response.status();
    let resumed = match status {
        StatusCode::PARTIAL_CONTENT if from > 0 => {
            let starts_at = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if starts_at != Some(from) {
                return Err(DownloadError::Interrupted(format!(
                    "central resumed at {starts_at:?}, not at byte {from}"
                )));
            }
            true
        }
        StatusCode::OK => false,
        StatusCode::RANGE_NOT_SATISFIABLE => {
            File::create(part).map_err(io(part))?;
            return Err(DownloadError::Interrupted(
                "central cannot continue the partial file; starting over".into(),
            ));
        }
        other => {
            return Err(DownloadError::Interrupted(format!(
                "central answered {other}"
            )))
        }
    };
    let mut file = if resumed {
        tracing::info!(from, size, "continuing the download");
        OpenOptions::new()
            .append(true)
            .open(part)
            .map_err(io(part))?
    } else {
        from = 0;
        File::create(part).map_err(io(part))?
    };
    let mut written = from;
    let mut first = true;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                // What arrived is kept; the next attempt continues after it.
                file.sync_all().map_err(io(part))?;
                return Err(DownloadError::Interrupted(e.to_string()));
            }
        };
        written += chunk.len() as u64;
        if written > size {
            return Err(DownloadError::TooLarge(size));
        }
        file.write_all(&chunk).map_err(io(part))?;
        if first {
            first = false;
            hooks::abort_at("download");
        }
    }
    file.sync_all().map_err(io(part))?;
    if written < size {
        return Err(DownloadError::Interrupted(format!(
            "the transfer ended at byte {written} of {size}"
        )));
    }
    Ok(from)
}

/// The SHA-256 and length of the file at `path` (blocking: run it off the async threads).
pub fn digest(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((hasher.finalize().into(), len));
        }
        hasher.update(&buffer[..n]);
        len += n as u64;
    }
}
