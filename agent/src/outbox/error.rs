//! How the outbox fails, and the one way its modules turn an I/O error into an
//! [`OutboxError`] that names the file.

use std::io;
use std::path::PathBuf;

use super::storage::Storage;

/// Everything that can go wrong, so the daemon can decide to wait (Full), give up on one
/// batch (TooLarge), or alarm (Io, Failed) instead of crashing.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Appending would cross a bound; nothing was written. Wait for acks, then coalesce.
    #[error(
        "outbox full: {batches}/{max_batches} batches, {bytes}+{needed_bytes}/{max_bytes} bytes"
    )]
    Full {
        /// Bytes the frame would need.
        needed_bytes: u64,
        /// Bytes in use.
        bytes: u64,
        /// The byte bound.
        max_bytes: u64,
        /// Unacknowledged batches.
        batches: u64,
        /// The batch bound.
        max_batches: u64,
    },
    /// The payload can never fit, even in an empty outbox; waiting would not help.
    #[error("batch of {len} bytes can never fit (frame limit {max_bytes} bytes)")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The byte bound (or the u32 frame length limit, whichever is smaller).
        max_bytes: u64,
    },
    /// The caller's seq does not follow the last one, which would break the chain central
    /// checks.
    #[error("seq {got} out of order: expected {expected}")]
    OutOfOrder {
        /// The seq required (when the outbox holds nothing unacknowledged, any higher one is
        /// accepted too).
        expected: u64,
        /// The seq given.
        got: u64,
    },
    /// An ack for a seq that was never durably appended; central and agent disagree.
    #[error("ack for seq {acked} but only up to {durable} is durable")]
    AckAhead {
        /// Seq acknowledged.
        acked: u64,
        /// Highest durable seq.
        durable: u64,
    },
    /// A disk operation failed; the outbox was rolled back to a consistent state.
    #[error("outbox I/O on {}: {source}", path.display())]
    Io {
        /// File (or directory) concerned.
        path: PathBuf,
        /// The OS error (ENOSPC, EIO, ...).
        #[source]
        source: io::Error,
    },
    /// A rollback after a disk error failed too; appends and acks are refused until the outbox
    /// is reopened, so nothing is written on top of an unknown state.
    #[error("outbox failed after a disk error; reopen it to recover")]
    Failed,
    /// A frame failed its checksum when read back for sending; it will not be sent.
    /// Reopening runs recovery, which handles it.
    #[error("frame seq {seq} in {segment} is corrupt on disk")]
    Corrupt {
        /// Segment file.
        segment: String,
        /// Seq of the frame.
        seq: u64,
    },
}

pub(super) type Result<T> = std::result::Result<T, OutboxError>;

/// An I/O failure on the outbox file `name`, named by its full path.
pub(super) fn io_err<S: Storage>(storage: &S, name: &str, source: io::Error) -> OutboxError {
    OutboxError::Io {
        path: storage.path_of(name),
        source,
    }
}
