//! Export readers: the first stage of the pipeline. Each reader streams one export format
//! into a [`RosterBuilder`], which validates as it goes; nothing here keeps the file's text in
//! memory. The format is detected from the path and the first bytes unless the caller names
//! it.
//!
//! A reader fails with a [`ReadError`] only when the input cannot be read at all (not the
//! format, a missing required column, a line too long); problems with single records are
//! deviations, and reading goes on.

pub mod elevliste;
pub mod encoding;
pub mod error;
pub mod format;
pub mod ims_enterprise;
pub mod oneroster_csv;
pub mod oneroster_json;
pub mod stream;
pub mod table;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::validate::{RosterBuilder, Validated, ValidationOptions};

pub use elevliste::ColumnProfile;
pub use error::{open, ReadError, ReadErrorKind};
pub use format::Format;
pub use stream::{is_line_too_long, LineLimit, LineTooLong, MAX_LINE_BYTES};

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
/// non-blank character decides (`<` XML, `{` JSON, anything else elevliste), in UTF-16 too.
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
    let text = match encoding::utf16_order(&head) {
        Some(utf16) => utf16
            .decode_with_bom_removal(&head)
            .0
            .into_owned()
            .into_bytes(),
        None => head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head).to_vec(),
    };
    Ok(
        match text.iter().find(|b| !b.is_ascii_whitespace()).copied() {
            Some(b'<') => Format::ImsEnterprise,
            Some(b'{') | Some(b'[') => Format::OneRosterJson,
            _ => Format::Elevliste,
        },
    )
}
