//! Input: a buffered stream that counts lines and bounds each event. It sits between the
//! export's bytes and the XML parser, so the parser can give every record a line and refuse
//! an oversized tag or text before it fills memory.

use std::io::{self, BufRead, Read};

use crate::reader::stream::{LineTooLong, MAX_LINE_BYTES};

/// A buffered reader that counts the newlines the XML parser has consumed, so an event can
/// be given a line, and refuses to let a single event (tag, text, comment) run past
/// [`MAX_LINE_BYTES`] before the parser has buffered it whole.
pub(super) struct Counted<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    newlines: u64,
    /// Bytes consumed since the last event ended.
    run: usize,
    pub(super) too_long: bool,
}

impl<R: Read> Counted<R> {
    pub(super) fn new(inner: R) -> Counted<R> {
        Counted {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            filled: 0,
            newlines: 0,
            run: 0,
            too_long: false,
        }
    }

    /// The 1-based line of the next byte to be consumed.
    pub(super) fn line(&self) -> u64 {
        self.newlines + 1
    }

    /// Called after each event: the next event starts a new run.
    pub(super) fn event_done(&mut self) {
        self.run = 0;
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.too_long {
            return Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong));
        }
        if self.pos >= self.filled {
            self.pos = 0;
            self.filled = 0;
            self.filled = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        let end = (self.pos + amt).min(self.filled);
        let consumed = &self.buf[self.pos..end];
        self.newlines += consumed.iter().filter(|&&b| b == b'\n').count() as u64;
        self.run += consumed.len();
        if self.run > MAX_LINE_BYTES {
            self.too_long = true;
        }
        self.pos = end;
    }
}
