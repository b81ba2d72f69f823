//! The one error type of the operations commands ([`crate::keys`], [`crate::stick`],
//! [`crate::release`], [`crate::admin`]). Every variant names the file, field or URL involved, because the reader
//! is an operator at a terminal who must know what to fix.

use std::path::PathBuf;

use skolebro_protocol::{ReleaseError, StickError};

use crate::pki::PkiError;

/// Everything that can stop `init`, `stick`, `release`, `list` or `revoke`. The cause is part of the
/// message (not a separate `source`), so `anyhow` prints it once.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A file or folder could not be read or written.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `init` found a key file in place: keys are never overwritten, because a replaced CA or
    /// stick key would orphan every certificate and stick made with the old one.
    #[error("{0} already exists; refusing to overwrite platform keys")]
    AlreadyExists(PathBuf),
    /// Making or writing a certificate or CA key failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A key file does not hold what its name says (e.g. not 64 hex characters).
    #[error("{path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// `stick.key` and `stick.pub` do not belong together, so agents installed with the
    /// public key would refuse every stick signed with the private one.
    #[error("{private} and {public} are not the same key pair")]
    KeyMismatch { private: PathBuf, public: PathBuf },
    /// No operator API token was given, or its file cannot be used: central's admin API
    /// answers nothing without one (`skolebro-central operator-token create NAME` makes one).
    #[error("{0}")]
    AdminToken(String),
    /// A command-line value is not acceptable; `field` names the option or argument as
    /// typed (`--kommune`, `token id`).
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// The agent settings for the stick are not acceptable.
    #[error("{path}: {reason}")]
    Settings { path: PathBuf, reason: String },
    /// The signed bundle would be refused by every agent (too large, or it does not verify
    /// with the folder's `stick.pub`).
    #[error("the bundle would be refused: {0}")]
    Bundle(#[from] StickError),
    /// The signed release manifest would be refused by every agent and by central.
    #[error("the release manifest would be refused: {0}")]
    Release(#[from] ReleaseError),
    /// The binary to release does not report the version it is released as.
    #[error("--binary {binary}: {reason}")]
    BinaryVersion { binary: PathBuf, reason: String },
    /// The operating system's random number generator failed; no key or token was made.
    #[error("system randomness unavailable")]
    Randomness,
    /// Central's admin API could not be reached (nothing listening, timeout, bad URL).
    #[error("cannot reach central's admin API at {url}: {error}")]
    AdminUnreachable { url: String, error: String },
    /// Central's admin API answered, but refused the request.
    #[error("central refused {request}: HTTP {status}: {message}")]
    AdminRefused {
        request: String,
        status: u16,
        message: String,
    },
    /// Central's admin API answered with something this tool does not understand.
    #[error("unexpected answer from central to {request}: {reason}")]
    AdminAnswer { request: String, reason: String },
    /// Central knows no token or device with this id.
    #[error("central knows no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    /// Central accepted the token but the bundle could not be written onto the stick. The
    /// token was then revoked again (or, if that failed too, must be revoked by hand), so no
    /// usable token exists without a stick.
    #[error("{error}; {token}")]
    StickNotWritten {
        /// Why the stick was not written.
        error: Box<ProvisionError>,
        /// What became of the registered token.
        token: String,
    },
}

impl ProvisionError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> ProvisionError {
        ProvisionError::Io {
            path: path.into(),
            error,
        }
    }
}
