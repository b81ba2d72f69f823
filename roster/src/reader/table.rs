//! Delimited text tables, shared by the elevliste and OneRoster CSV readers: header lookup by
//! name with aliases, quoted fields, LF or CRLF, a UTF-8 BOM, and per-field encoding
//! detection (UTF-8, else Windows-1252, which also covers ISO-8859-1's letters), so that æ, ø
//! and å come out right whatever the SAS wrote.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use compact_str::CompactString;

use super::encoding::Text;
use super::error::{ReadError, ReadErrorKind};
use super::stream::{is_line_too_long, LineLimit};

/// A table being streamed row by row.
pub struct Table<R: BufRead> {
    csv: csv::Reader<LineLimit<Text<R>>>,
    file: PathBuf,
    headers: Vec<String>,
    normalized: Vec<String>,
    record: csv::ByteRecord,
    /// Newlines the parser has passed so far.
    newlines: u64,
}

/// One row, borrowed from the table until the next row is read.
pub struct Row<'a> {
    record: &'a csv::ByteRecord,
    /// The 1-based line the row starts on.
    pub line: u64,
    /// Fields in the header.
    width: usize,
}

impl<'a> Row<'a> {
    /// The trimmed field in `column`, or `None` when the row has no such field or it is
    /// blank.
    pub fn get(&self, column: Option<usize>) -> Option<Cow<'a, str>> {
        let bytes = self.record.get(column?)?;
        let text = decode(bytes);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == text.len() {
            Some(text)
        } else {
            Some(Cow::Owned(trimmed.to_owned()))
        }
    }

    /// The field as an owned string, for records that keep it.
    pub fn text(&self, column: Option<usize>) -> Option<CompactString> {
        self.get(column).map(|text| CompactString::from(&*text))
    }

    /// Number of fields in the row.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    pub fn is_empty(&self) -> bool {
        is_blank(self.record)
    }

    /// `(fields, header's fields)` when the row has fewer fields than the header: a row
    /// whose writer left trailing fields out, read as if they were empty.
    pub fn short(&self) -> Option<(usize, usize)> {
        (self.record.len() < self.width).then_some((self.record.len(), self.width))
    }
}

impl<R: BufRead> Table<R> {
    /// Starts reading a table and reads its header row. A UTF-16 file is decoded first.
    pub fn new(path: &Path, input: R, delimiter: u8) -> Result<Table<R>, ReadError> {
        let input = Text::new(input).map_err(|e| ReadError::new(path, e.into()))?;
        let csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(LineLimit::new(input));
        let mut table = Table {
            csv,
            file: path.to_owned(),
            headers: Vec::new(),
            normalized: Vec::new(),
            record: csv::ByteRecord::new(),
            newlines: 0,
        };
        if !table.read_record()? {
            return Err(ReadError::new(path, ReadErrorKind::Empty));
        }
        table.headers = table
            .record
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let text = decode(field);
                let text = if i == 0 {
                    text.trim_start_matches('\u{feff}')
                } else {
                    &text
                };
                text.trim().to_owned()
            })
            .collect();
        table.normalized = table.headers.iter().map(|h| normalize(h)).collect();
        Ok(table)
    }

    /// The header names as written.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The column whose header matches one of `aliases`, compared without case, accents,
    /// spaces or punctuation (`Fødselsnummer` matches `fodselsnummer`).
    pub fn column(&self, aliases: &[&str]) -> Option<usize> {
        aliases.iter().find_map(|alias| {
            let alias = normalize(alias);
            self.normalized.iter().position(|h| *h == alias)
        })
    }

    /// Like [`Table::column`], but a missing column is an error naming it.
    pub fn require(&self, name: &str, aliases: &[&str]) -> Result<usize, ReadError> {
        self.column(aliases).ok_or_else(|| {
            ReadError::new(
                &self.file,
                ReadErrorKind::MissingColumn {
                    found: self.headers.join(", "),
                },
            )
            .at_line(1)
            .in_field(name)
        })
    }

    /// How many fields a finished row has at least: up to the header's last named column.
    fn named_width(&self) -> usize {
        self.headers
            .iter()
            .rposition(|name| !name.trim().is_empty())
            .map_or(0, |last| last + 1)
    }

    /// The next row that holds anything, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, ReadError> {
        loop {
            if !self.read_record()? {
                return Ok(None);
            }
            let (line, terminated) = self.record_line();
            if is_blank(&self.record) {
                continue;
            }
            // Only the last row can be unterminated. Ending inside a quoted field, or short
            // of the header's named fields, it is a row the writer had not finished: a short
            // row with its line end is a complete row with fields left out, reported by the
            // reader. Trailing columns without a name (a header ending in `,,`, as Moodle's
            // OneRoster fixtures have) are not waited for: no writer fills them.
            let cut = !terminated
                && (self.csv.get_ref().inside_quotes() || self.record.len() < self.named_width());
            if cut {
                return Err(ReadError::new(&self.file, ReadErrorKind::Truncated)
                    .at_line(line)
                    .in_field(
                        self.headers
                            .get(self.record.len().saturating_sub(1))
                            .cloned()
                            .unwrap_or_default(),
                    ));
            }
            return Ok(Some(Row {
                record: &self.record,
                line,
                width: self.headers.len(),
            }));
        }
    }

    /// The line the record just read starts on, and whether a line end closed it. The csv
    /// parser's own line count skips blank lines, so it is worked out from where the record
    /// ends: the newlines before that point, less the record's terminator and any newlines
    /// inside quoted fields.
    fn record_line(&mut self) -> (u64, bool) {
        let end = self.csv.position().byte();
        let (passed, ends_with_lf) = self.csv.get_mut().newlines_before(end);
        let terminated = ends_with_lf || self.csv.get_ref().newline_at(end);
        self.newlines += passed;
        let inside: u64 = self
            .record
            .iter()
            .map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64)
            .sum();
        let line = (self.newlines + 1)
            .saturating_sub(u64::from(ends_with_lf))
            .saturating_sub(inside);
        (line, terminated)
    }

    fn read_record(&mut self) -> Result<bool, ReadError> {
        self.csv.read_byte_record(&mut self.record).map_err(|e| {
            let line = e
                .position()
                .map_or_else(|| self.csv.get_ref().line(), |p| p.line());
            let kind = match e.into_kind() {
                csv::ErrorKind::Io(io) if is_line_too_long(&io) => ReadErrorKind::LineTooLong,
                csv::ErrorKind::Io(io) => ReadErrorKind::Io(io),
                other => ReadErrorKind::Io(std::io::Error::other(format!("{other:?}"))),
            };
            ReadError::new(&self.file, kind).at_line(line)
        })
    }
}

fn is_blank(record: &csv::ByteRecord) -> bool {
    record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// Decodes a field: UTF-8 when it is valid UTF-8, otherwise Windows-1252. Latin-1 text with
/// Norwegian letters is never valid UTF-8, so the guess is safe per field.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// Folds a header name for comparison: lower case, æ/ø/å to ae/o/a, letters and digits only.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'æ' => out.push_str("ae"),
            'ø' | 'ö' => out.push('o'),
            'å' | 'ä' => out.push('a'),
            c if c.is_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_letters_decode_to_norwegian() {
        assert_eq!(decode(b"M\xe6hle V\xe5gen Bj\xf8rn"), "Mæhle Vågen Bjørn");
    }

    #[test]
    fn header_names_match_without_accents_or_case() {
        assert_eq!(normalize("Fødselsnummer"), normalize("FODSELSNUMMER"));
        assert_eq!(normalize("E-post"), "epost");
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn rows_report_the_line_they_start_on() {
        for text in [
            "a;b\n1;2\n\n3;4\n",
            "a;b\r\n1;2\r\n\r\n3;4\r\n",
            "a;b\n1;\"x\ny\"\n3;4\n",
        ] {
            let mut table = Table::new(Path::new("t.csv"), text.as_bytes(), b';').unwrap();
            let first = table.next_row().unwrap().unwrap().line;
            let second = table.next_row().unwrap().unwrap().line;
            assert_eq!((first, second), (2, 4), "{text:?}");
        }
    }

    #[test]
    fn rows_after_many_blank_lines_keep_their_line_and_the_newlines_are_not_queued() {
        for blank in ["\n", "\r\n", " \n", " \r\n"] {
            let text = format!("a;b\n1;2\n{}3;4\r\n5;6", blank.repeat(100_000));
            let mut table = Table::new(Path::new("t.csv"), text.as_bytes(), b';').unwrap();
            let first = table.next_row().unwrap().unwrap().line;
            let second = table.next_row().unwrap().unwrap().line;
            let third = table.next_row().unwrap().unwrap().line;
            let queued = table.csv.get_ref().most_queued();
            assert_eq!((first, second, third), (2, 100_003, 100_004), "{blank:?}");
            assert!(queued < 10_000, "{blank:?}: {queued} newlines queued");
        }
    }
}

#[cfg(test)]
mod crlf_tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<(u64, usize)>, ReadError> {
        let mut table = Table::new(Path::new("t.csv"), text.as_bytes(), b';')?;
        let mut out = Vec::new();
        while let Some(row) = table.next_row()? {
            out.push((row.line, row.len()));
        }
        Ok(out)
    }

    #[test]
    fn a_short_row_reads_alike_with_crlf_and_lf() {
        for text in [
            "a;b;c\n1;2\n3;4;5\n",
            "a;b;c\r\n1;2\r\n3;4;5\r\n",
            "a;b;c\r\n1;2\r\n3;4;5",
            "a;b;c\n1;2\n3;4;5",
        ] {
            assert_eq!(rows(text).unwrap(), [(2, 2), (3, 3)], "{text:?}");
        }
    }

    #[test]
    fn an_unterminated_last_row_with_every_named_field_is_finished() {
        assert_eq!(rows("a;b;;\r\n1;2;3;4\r\n5;6").unwrap(), [(2, 4), (3, 2)]);
        assert_eq!(rows("a;b;;\n1;2\n5;6").unwrap(), [(2, 2), (3, 2)]);
        assert!(rows("a;b;;\n1;2\n5").is_err(), "short of a named field");
    }

    #[test]
    fn a_file_that_ends_inside_a_quoted_field_or_short_of_its_last_row_is_cut_off() {
        for text in [
            "a;b;c\r\n1;2;3\r\n4;\"fi",
            "a;b;c\n1;2;3\n4;5",
            "a;b;c\r\n1;2;3\r\n4;5",
        ] {
            let error = rows(text).unwrap_err();
            assert!(
                matches!(error.kind, ReadErrorKind::Truncated),
                "{text:?}: {error}"
            );
            assert_eq!(error.line, Some(3), "{text:?}");
        }
    }
}
