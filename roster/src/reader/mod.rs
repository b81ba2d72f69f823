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
pub mod oneroster_rest;
pub mod stream;
pub mod table;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use skolebro_protocol::mask_in_text;

use crate::deviation::Position;
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
    /// The memory, in bytes, the records of one export may take while it is read (an
    /// estimate per record); an export over it is refused with
    /// [`ReadErrorKind::OverBudget`] naming where. `None`: unbounded.
    pub memory_budget: Option<u64>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            validation: ValidationOptions::default(),
            columns: ColumnProfile::default(),
            pipelined: true,
            memory_budget: None,
        }
    }
}

/// Reads and validates one export.
///
/// Everything it hands back is masked with [`mask_in_text`]: an error's field and reason,
/// and every deviation's file and detail, since these texts leave the reader (`check`,
/// `rejected/*.error.txt`, the heartbeat) and a key, a header cell or a member name of a
/// hostile or mistaken export can hold a national id, also written `018112-78714`.
pub fn read_export(
    path: &Path,
    format: Option<Format>,
    options: &ReaderOptions,
) -> Result<(Format, Validated), ReadError> {
    match read_unmasked(path, format, options) {
        Ok((format, mut validated)) => {
            for deviation in &mut validated.deviations {
                mask_in_place(&mut deviation.detail);
                mask_in_place(&mut deviation.file);
            }
            Ok((format, validated))
        }
        Err(error) => Err(error.masked()),
    }
}

/// Replaces `text` with its masked form when masking changes it.
fn mask_in_place(text: &mut String) {
    let masked = mask_in_text(text);
    if masked != *text {
        *text = masked;
    }
}

impl ReadError {
    /// The error with what may be a national id masked in every text it carries (the file
    /// too: a zip member's name comes from the export).
    fn masked(mut self) -> ReadError {
        if let Some(field) = &mut self.field {
            mask_in_place(field);
        }
        match &mut self.kind {
            ReadErrorKind::MissingColumn { found } => mask_in_place(found),
            ReadErrorKind::Syntax { reason, .. } => mask_in_place(reason),
            _ => {}
        }
        let file = self.file.to_string_lossy();
        let masked = mask_in_text(&file);
        if masked != file {
            self.file = PathBuf::from(masked);
        }
        self
    }
}

fn read_unmasked(
    path: &Path,
    format: Option<Format>,
    options: &ReaderOptions,
) -> Result<(Format, Validated), ReadError> {
    let format = match format {
        Some(format) => format,
        None => detect(path)?,
    };
    let mut builder = RosterBuilder::new(options.validation);
    if let Some(budget) = options.memory_budget {
        builder.set_budget(budget);
    }
    match format {
        Format::Elevliste => {
            elevliste::read(path, &options.columns, options.pipelined, &mut builder)?
        }
        Format::OneRosterCsv => oneroster_csv::read(path, &mut builder)?,
        Format::OneRosterJson => oneroster_json::read(path, &mut builder)?,
        Format::ImsEnterprise => ims_enterprise::read(path, &mut builder)?,
    }
    if let (Some(budget), Some((file, at))) = (options.memory_budget, builder.over_budget()) {
        let error = ReadError::new(Path::new(file), ReadErrorKind::OverBudget { budget });
        return Err(match at {
            Position::Line(line) => error.at_line(*line),
            Position::Record(record) => error.in_field(format!("record {record}")),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An elevliste of `rows` pupils with valid synthetic-free keys.
    fn export(dir: &Path, rows: usize) -> std::path::PathBuf {
        let mut text =
            String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
        for row in 0..rows {
            text.push_str(&format!("46505;1A;elev{row};;Nordmann;Kari\n"));
        }
        let path = dir.join("elevliste.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn an_export_whose_records_outgrow_the_memory_budget_is_refused_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = export(dir.path(), 20_000);
        let options = ReaderOptions {
            memory_budget: Some(1 << 20),
            ..ReaderOptions::default()
        };
        let error = read_export(&path, None, &options).unwrap_err();
        assert!(matches!(error.kind, ReadErrorKind::OverBudget { budget } if budget == 1 << 20));
        let line = error.line.expect("the line where the budget ran out");
        assert!((1_000..20_000).contains(&line), "{error}");
        let message = error.to_string();
        assert!(message.contains("elevliste.csv:"), "{message}");
        assert!(message.contains("more than the 1 MiB"), "{message}");

        let roomy = ReaderOptions {
            memory_budget: Some(64 << 20),
            ..ReaderOptions::default()
        };
        let (_, validated) = read_export(&path, None, &roomy).unwrap();
        assert_eq!(validated.roster.students.len(), 20_000);
    }

    /// Found by the `elevliste` fuzz target: a header cell holding a long digit run was
    /// listed in clear among the columns found.
    #[test]
    fn a_missing_column_error_masks_a_national_id_among_the_columns_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elevliste.csv");
        std::fs::write(&path, "46505;1A;16881774198;Nordmann;Kari\n").unwrap();
        let error =
            read_export(&path, Some(Format::Elevliste), &ReaderOptions::default()).unwrap_err();
        assert!(
            matches!(error.kind, ReadErrorKind::MissingColumn { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(!message.contains("16881774198"), "{message}");
        assert!(message.contains("168817*****"), "{message}");
    }

    /// Found by the `oneroster_csv` fuzz target: a deviation named the enrollment key
    /// `enr-s-222-12345-987532` in clear, whose digits joined by hyphens are as long as a
    /// national id written `018112-78714`.
    #[test]
    fn a_deviation_masks_a_key_whose_digits_run_as_long_as_a_national_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("orgs.csv"),
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
             46505,,,Fana skule,school,46505,\n\
             dep-1,,,Realfag,department,,46505\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            "sourcedId,status,role,givenName,familyName,identifier\nu1,,student,Kari,Nordmann,\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("enrollments.csv"),
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role\n\
             enr-s-222-12345-987532,,,c1,dep-1,u1,student\n",
        )
        .unwrap();
        let (_, validated) = read_export(
            dir.path(),
            Some(Format::OneRosterCsv),
            &ReaderOptions::default(),
        )
        .unwrap();
        let texts: Vec<String> = validated.deviations.iter().map(|d| d.to_string()).collect();
        assert!(
            texts.iter().any(|t| t.contains("enr-s-222-123**-******")),
            "{texts:#?}"
        );
        for text in &texts {
            assert!(!text.contains("12345-987532"), "{text}");
        }
    }

    #[test]
    fn records_left_out_do_not_count_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut text =
            String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
        for row in 0..20_000 {
            text.push_str(&format!("46505;1A;elev{row};16881774198;Nordmann;Kari\n"));
        }
        let path = dir.path().join("elevliste.csv");
        std::fs::write(&path, text).unwrap();
        let options = ReaderOptions {
            memory_budget: Some(1 << 20),
            ..ReaderOptions::default()
        };
        let (_, validated) = read_export(&path, None, &options).unwrap();
        assert_eq!(
            validated.roster.students.len(),
            1,
            "one person per national id"
        );
        assert_eq!(validated.errors(), 19_999);
    }
}
