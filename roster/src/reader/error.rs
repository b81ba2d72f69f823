//! Why a read ends: the error every format reader returns when an export cannot be read at
//! all, and opening the export's file, the first place it can happen.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::format::Format;
use super::stream::MAX_LINE_BYTES;

/// Why an export could not be read at all. It names the file, and the line and field when
/// the failure has one, so the school can find the spot.
#[derive(Debug, thiserror::Error)]
#[error("{}{}{}: {kind}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), field.as_ref().map(|f| format!(": field `{f}`")).unwrap_or_default())]
pub struct ReadError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub field: Option<String>,
    pub kind: ReadErrorKind,
}

/// What went wrong, without the where.
#[derive(Debug, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("required column is missing (columns found: {found})")]
    MissingColumn { found: String },
    #[error("the header row is missing: the file is empty")]
    Empty,
    #[error("the file ends in the middle of a row: it was cut off (copied or saved while still being written?)")]
    Truncated,
    #[error("not valid {format}: {reason}")]
    Syntax { format: Format, reason: String },
    #[error("the export is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    /// The records read would take more memory than reading may use: refused, not read on.
    #[error("its records need more than the {} MiB of memory reading an export may use (`read_budget_mib` in agent.toml); it was not read", budget >> 20)]
    OverBudget { budget: u64 },
}

impl ReadError {
    pub fn new(file: &Path, kind: ReadErrorKind) -> ReadError {
        ReadError {
            file: file.to_owned(),
            line: None,
            field: None,
            kind,
        }
    }

    pub fn at_line(mut self, line: u64) -> ReadError {
        self.line = Some(line);
        self
    }

    pub fn in_field(mut self, field: impl Into<String>) -> ReadError {
        self.field = Some(field.into());
        self
    }
}

/// Opens a file for a streaming reader, buffered.
pub fn open(path: &Path) -> Result<BufReader<File>, ReadError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| ReadError::new(path, e.into()))
}
