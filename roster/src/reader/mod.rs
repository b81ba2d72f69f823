//! Export readers: the first stage of the pipeline. Each reader streams one export format
//! into a [`RosterBuilder`], which validates as it goes; nothing here keeps the file's text in
//! memory. The format is detected from the path and the first bytes unless the caller names
//! it.
//!
//! A reader fails with a [`ReadError`] only when the input cannot be read at all (not the
//! format, a missing required column, a line too long); problems with single records are
//! deviations, and reading goes on.

pub mod elevliste;
pub mod ims_enterprise;
pub mod oneroster_csv;
pub mod oneroster_json;
pub mod table;

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::validate::{RosterBuilder, Validated, ValidationOptions};

pub use elevliste::ColumnProfile;

/// The longest physical line a text reader accepts. SAS rows are a few hundred bytes; a
/// longer line is a broken or hostile file, refused before it fills memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The export formats the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Elevliste,
    OneRosterCsv,
    OneRosterJson,
    ImsEnterprise,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Elevliste => "elevliste",
            Format::OneRosterCsv => "oneroster-csv",
            Format::OneRosterJson => "oneroster-json",
            Format::ImsEnterprise => "ims-enterprise",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// Settings that change how exports are read and validated, taken from the agent config.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    pub validation: ValidationOptions,
    /// Extra header names for elevliste columns, for SAS variants.
    pub columns: ColumnProfile,
    /// Parse and validate on two threads. Worth it for one large export; a caller reading
    /// two exports at once already keeps both cores busy and turns it off.
    pub pipelined: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            validation: ValidationOptions::default(),
            columns: ColumnProfile::default(),
            pipelined: true,
        }
    }
}

/// Reads and validates one export.
pub fn read_export(
    path: &Path,
    format: Option<Format>,
    options: &ReaderOptions,
) -> Result<(Format, Validated), ReadError> {
    let format = match format {
        Some(format) => format,
        None => detect(path)?,
    };
    let mut builder = RosterBuilder::new(options.validation);
    match format {
        Format::Elevliste => {
            elevliste::read(path, &options.columns, options.pipelined, &mut builder)?
        }
        Format::OneRosterCsv => oneroster_csv::read(path, &mut builder)?,
        Format::OneRosterJson => oneroster_json::read(path, &mut builder)?,
        Format::ImsEnterprise => ims_enterprise::read(path, &mut builder)?,
    }
    Ok((format, builder.finish()))
}

/// Detects the format: a folder or `.zip` is OneRoster CSV; otherwise the first
/// non-blank character decides (`<` XML, `{` JSON, anything else elevliste).
pub fn detect(path: &Path) -> Result<Format, ReadError> {
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if path.is_dir() || is_zip {
        return Ok(Format::OneRosterCsv);
    }
    let file = File::open(path).map_err(|e| ReadError::new(path, e.into()))?;
    let mut head = Vec::with_capacity(512);
    file.take(512)
        .read_to_end(&mut head)
        .map_err(|e| ReadError::new(path, e.into()))?;
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    Ok(
        match text.iter().find(|b| !b.is_ascii_whitespace()).copied() {
            Some(b'<') => Format::ImsEnterprise,
            Some(b'{') | Some(b'[') => Format::OneRosterJson,
            _ => Format::Elevliste,
        },
    )
}

/// Opens a file for a streaming reader, buffered.
pub fn open(path: &Path) -> Result<BufReader<File>, ReadError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| ReadError::new(path, e.into()))
}

/// Wraps a byte stream so that a line longer than [`MAX_LINE_BYTES`] ends the read with an
/// error instead of growing a buffer without bound. It also notes where newlines are, so a
/// parser that reads ahead can still tell which line a record starts on.
pub struct LineLimit<R> {
    inner: R,
    line: u64,
    run: usize,
    offset: u64,
    newlines: VecDeque<u64>,
}

impl<R: BufRead> LineLimit<R> {
    pub fn new(inner: R) -> LineLimit<R> {
        LineLimit {
            inner,
            line: 1,
            run: 0,
            offset: 0,
            newlines: VecDeque::new(),
        }
    }

    /// The 1-based line the stream has reached.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Forgets newlines before byte `offset` and says how many there were, and whether the
    /// last of them sits right before `offset`. The caller keeps the running line count; the
    /// queue holds only what the parser has not reached yet.
    pub fn newlines_before(&mut self, offset: u64) -> (u64, bool) {
        let mut passed = 0;
        let mut last = None;
        while let Some(at) = self.newlines.front().copied().filter(|&at| at < offset) {
            self.newlines.pop_front();
            passed += 1;
            last = Some(at);
        }
        (passed, last.is_some_and(|at| at + 1 == offset))
    }
}

/// The marker error [`LineLimit`] returns; readers map it to [`ReadErrorKind::LineTooLong`].
#[derive(Debug)]
pub struct LineTooLong;

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line longer than {MAX_LINE_BYTES} bytes")
    }
}

impl std::error::Error for LineTooLong {}

/// True when an I/O error is [`LineLimit`]'s refusal.
pub fn is_line_too_long(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LineTooLong>())
}

impl<R: BufRead> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let available = self.inner.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        self.inner.consume(n);
        let mut start = 0;
        for at in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.run += at - start;
            if self.run > MAX_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    LineTooLong,
                ));
            }
            self.line += 1;
            self.run = 0;
            self.newlines.push_back(self.offset + at as u64);
            start = at + 1;
        }
        self.run += n - start;
        if self.run > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                LineTooLong,
            ));
        }
        self.offset += n as u64;
        Ok(n)
    }
}
