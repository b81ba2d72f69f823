//! Deviations: what is wrong with an export, in terms a school can act on in its SAS. Readers
//! and validation produce them; `check` prints them, and later the heartbeat reports their
//! counts to central. A deviation's detail never holds a national id or a name in clear.

use std::fmt;

use serde::Serialize;

/// Stable codes: scripts and central group deviations by them, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidNationalId,
    DuplicateNationalId,
    DuplicateRecord,
    DuplicateKey,
    DanglingReference,
    MissingRequired,
    UnknownField,
    SyntheticNationalId,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidNationalId => "invalid_national_id",
            Code::DuplicateNationalId => "duplicate_national_id",
            Code::DuplicateRecord => "duplicate_record",
            Code::DuplicateKey => "duplicate_key",
            Code::DanglingReference => "dangling_reference",
            Code::MissingRequired => "missing_required",
            Code::UnknownField => "unknown_field",
            Code::SyntheticNationalId => "synthetic_national_id",
        }
    }
}

/// Errors make `check` fail and keep the record out of the delta; warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in the input a record came from: a line for text formats, or the ordinal of the
/// entry for formats whose parser does not report lines (JSON collections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Position {
    Line(u64),
    Record(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// One thing wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub code: Code,
    pub severity: Severity,
    /// The file the record is in (for a OneRoster folder, the member file).
    pub file: String,
    pub position: Position,
    /// Masked: ids as `058209*****`, no names.
    pub detail: String,
}

impl Serialize for Deviation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Deviation", 5)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("file", &self.file)?;
        match self.position {
            Position::Line(n) => s.serialize_field("line", &n)?,
            Position::Record(n) => s.serialize_field("record", &n)?,
        }
        s.serialize_field("detail", &self.detail)?;
        s.end()
    }
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {severity} [{}] {}",
            self.file,
            match self.position {
                Position::Line(n) | Position::Record(n) => n,
            },
            self.code.as_str(),
            self.detail
        )
    }
}

/// A value from an export as a report may show it: short, and masked when it could be a
/// national id (some SAS systems use the id as a key, or put it in the wrong column).
pub fn shown(value: &str) -> String {
    if value.chars().filter(char::is_ascii_digit).count() >= 6 {
        skolebro_protocol::national_id::mask(value)
    } else {
        value.chars().take(40).collect()
    }
}
