//! The bounded byte stream the text readers read a file through: a line longer than
//! [`MAX_LINE_BYTES`] ends the read instead of filling memory.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, Read};

/// The longest physical line a text reader accepts. SAS rows are a few hundred bytes; a
/// longer line is a broken or hostile file, refused before it fills memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Wraps a byte stream so that a line longer than [`MAX_LINE_BYTES`] ends the read with an
/// error instead of growing a buffer without bound. It also notes where newlines are, so a
/// parser that reads ahead can still tell which line a record starts on.
///
/// Only the newlines of the last buffer handed out are kept by position. The csv parser
/// reads through a buffer it empties before asking for more, so when `read` is called every
/// byte handed out before has been parsed, and each record still to come ends at or past
/// them: of those newlines only their count and where the last one sits are needed. So a
/// file of blank lines, which the parser skips without returning a record, costs nothing
/// per line.
pub struct LineLimit<R> {
    inner: R,
    line: u64,
    run: usize,
    offset: u64,
    newlines: VecDeque<u64>,
    /// Newlines of earlier buffers not yet reported by [`LineLimit::newlines_before`].
    folded: u64,
    /// Where the last of those sits.
    folded_last: Option<u64>,
    #[cfg(test)]
    most_queued: usize,
    /// Double quotes read so far. Quoting pairs them, so an odd count at the end means the
    /// file ends inside a quoted field: it was cut off.
    quotes: u64,
}

impl<R: BufRead> LineLimit<R> {
    pub fn new(inner: R) -> LineLimit<R> {
        LineLimit {
            inner,
            line: 1,
            run: 0,
            offset: 0,
            newlines: VecDeque::new(),
            folded: 0,
            folded_last: None,
            #[cfg(test)]
            most_queued: 0,
            quotes: 0,
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
        let mut passed = std::mem::take(&mut self.folded);
        let mut last = self.folded_last.take().filter(|&at| at < offset);
        while let Some(at) = self.newlines.front().copied().filter(|&at| at < offset) {
            self.newlines.pop_front();
            passed += 1;
            last = Some(at);
        }
        (passed, last.is_some_and(|at| at + 1 == offset))
    }

    /// Whether a newline sits right at `offset`: after [`LineLimit::newlines_before`], a
    /// record ending there ended at the carriage return of a CRLF (the parser stops at the CR
    /// and skips the LF with the next row).
    pub fn newline_at(&self, offset: u64) -> bool {
        self.newlines.front() == Some(&offset)
    }

    /// The most newlines held by position at once, for the tests that bound them.
    #[cfg(test)]
    pub(super) fn most_queued(&self) -> usize {
        self.most_queued
    }

    /// Whether the bytes read so far leave a quoted field open.
    pub fn inside_quotes(&self) -> bool {
        self.quotes % 2 == 1
    }
}

/// The marker error [`LineLimit`] returns; readers map it to
/// [`ReadErrorKind::LineTooLong`](super::error::ReadErrorKind::LineTooLong).
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
        if let Some(&last) = self.newlines.back() {
            self.folded += self.newlines.len() as u64;
            self.folded_last = Some(last);
            self.newlines.clear();
        }
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
        #[cfg(test)]
        {
            self.most_queued = self.most_queued.max(self.newlines.len());
        }
        self.run += n - start;
        self.quotes += memchr::memchr_iter(b'"', &buf[..n]).count() as u64;
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
