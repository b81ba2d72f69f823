//! `GET /v1/releases/{id}/artifact` on the device listener: the artifact of a release
//! [`crate::release`] offered, whole or from a `Range`, so a school's flaky uplink can resume
//! a download. The agent checks it against the signed manifest itself.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use skolebro_provisioning::DeviceIdentity;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::caller::authorize;
use crate::api::error::ApiError;
use crate::release::release_id;
use crate::state::AppState;

/// How much of an artifact is read from disk per chunk of a download.
const CHUNK_BYTES: usize = 64 * 1024;

/// `GET /v1/releases/{id}/artifact` on the device listener: the artifact, whole or from a
/// `Range` (`bytes=N-`, `bytes=N-M` or `bytes=-N`), so an interrupted download resumes.
pub(crate) async fn get_artifact(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<DeviceIdentity>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &identity).await?;
    let id = release_id(&id).ok_or_else(ApiError::not_a_release_id)?;
    match state.store.release(id).await? {
        Some(release) if release.artifact_stored => {}
        _ => return Err(ApiError::unknown_release(id)),
    }
    let path = state.releases.artifact_path(id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(release = id, %error, "the stored artifact cannot be opened");
            return Err(ApiError::Internal);
        }
    };
    let len = match file.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(error) => {
            tracing::error!(release = id, %error, "the stored artifact cannot be read");
            return Err(ApiError::Internal);
        }
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_range);
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len),
        Some(range) => match range.resolve(len) {
            Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
            None => return Err(ApiError::RangeNotSatisfiable { len }),
        },
    };
    if let Err(error) = file.seek(SeekFrom::Start(start)).await {
        tracing::error!(release = id, %error, "seeking in the artifact failed");
        return Err(ApiError::Internal);
    }
    tracing::debug!(device = %identity.device, release = id, start, end, "artifact download");
    let stream = futures_util::stream::unfold((file, end - start), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
        let mut buffer = vec![0u8; want];
        match file.read(&mut buffer).await {
            // The file shrank under us: end the body short, the client sees the length differ.
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), (file, left - read as u64)))
            }
            Err(error) => Some((Err(error), (file, 0))),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// One byte range of a `Range` header, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `N-` or `N-M` (inclusive).
    From { start: u64, last: Option<u64> },
    /// `-N`: the last N bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open span `[start, end)` of a `len`-byte file, or `None` if unsatisfiable.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { start, last } => {
                if start >= len {
                    return None;
                }
                let end = last.map_or(len, |last| last.saturating_add(1).min(len));
                Some((start, end))
            }
            ByteRange::Suffix(n) if n == 0 || len == 0 => None,
            ByteRange::Suffix(n) => Some((len.saturating_sub(n), len)),
        }
    }
}

/// A single-range `bytes=` header, or `None` for anything else, which is then ignored and
/// the whole artifact sent (RFC 9110 lets a server ignore a Range it does not support).
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    let (first, last) = spec.split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    if first.trim().is_empty() {
        return number(last).map(ByteRange::Suffix);
    }
    let start = number(first)?;
    let last = if last.trim().is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    if last.is_some_and(|last| last < start) {
        return None;
    }
    Some(ByteRange::From { start, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_documented_and_anything_else_is_ignored() {
        assert_eq!(
            parse_range("bytes=100-"),
            Some(ByteRange::From {
                start: 100,
                last: None
            })
        );
        assert_eq!(
            parse_range("bytes=0-99"),
            Some(ByteRange::From {
                start: 0,
                last: Some(99)
            })
        );
        assert_eq!(parse_range("bytes=-10"), Some(ByteRange::Suffix(10)));
        for ignored in [
            "",
            "bytes=",
            "bytes=a-",
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,4-5",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_length_or_are_unsatisfiable() {
        let from = |start, last| ByteRange::From { start, last };
        assert_eq!(from(0, None).resolve(10), Some((0, 10)));
        assert_eq!(from(4, Some(5)).resolve(10), Some((4, 6)));
        assert_eq!(from(4, Some(500)).resolve(10), Some((4, 10)));
        assert_eq!(from(10, None).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 10)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 10)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(0), None);
    }
}
