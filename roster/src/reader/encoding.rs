//! The export's text encoding, found before any reader parses it. Windows tools write
//! "Unicode" text as UTF-16 (little-endian with a BOM, sometimes big-endian, sometimes
//! without a BOM); every reader parses bytes that ASCII delimiters and tags can be found in,
//! so a UTF-16 file is decoded to UTF-8 on the way in, as a stream. A UTF-8 BOM is dropped;
//! anything else passes through untouched: the readers deal with UTF-8 and Windows-1252
//! themselves.

use std::io::{self, BufRead, Read};

use encoding_rs::{CoderResult, Decoder, Encoding, UTF_16BE, UTF_16LE};

/// The UTF-8 byte order mark, which Windows tools write and the JSON parser refuses.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes looked at to tell UTF-16 without a BOM: a few lines of header.
const SNIFF_BYTES: usize = 512;

/// The UTF-16 byte order of text that starts with `head`, if it is UTF-16: by its BOM, or
/// without one by the NUL bytes every ASCII character has as its high byte. Text in UTF-8 or
/// Windows-1252 has no NUL bytes, so most pairs having a NUL on the same side decides.
pub fn utf16_order(head: &[u8]) -> Option<&'static Encoding> {
    match head {
        [0xFF, 0xFE, ..] => return Some(UTF_16LE),
        [0xFE, 0xFF, ..] => return Some(UTF_16BE),
        _ => {}
    }
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let (mut low_nul, mut high_nul) = (0, 0);
    for pair in head.chunks_exact(2) {
        match (pair[0], pair[1]) {
            (0, b) if b != 0 => high_nul += 1,
            (a, 0) if a != 0 => low_nul += 1,
            _ => {}
        }
    }
    // Three in four pairs: ASCII-heavy text, as every export's header and ids are.
    if high_nul * 4 >= pairs * 3 {
        Some(UTF_16BE)
    } else if low_nul * 4 >= pairs * 3 {
        Some(UTF_16LE)
    } else {
        None
    }
}

/// An export's bytes as UTF-8 when they were UTF-16, else as they are. Built with
/// [`Text::new`] on a buffered stream, which it peeks at without consuming.
pub enum Text<R> {
    /// Not UTF-16: passed through.
    Bytes(R),
    /// UTF-16, decoded as it is read.
    Utf16(Utf16<R>),
}

impl<R: BufRead> Text<R> {
    /// Looks at the start of `input` and decodes it from UTF-16 if it is UTF-16.
    pub fn new(mut input: R) -> io::Result<Text<R>> {
        let head = input.fill_buf()?;
        if head.starts_with(UTF8_BOM) {
            input.consume(UTF8_BOM.len());
            return Ok(Text::Bytes(input));
        }
        Ok(match utf16_order(head) {
            Some(encoding) => Text::Utf16(Utf16 {
                inner: input,
                // Removes the BOM when there is one; without it, decodes in `encoding`.
                decoder: encoding.new_decoder_with_bom_removal(),
                out: vec![0; 64 * 1024].into_boxed_slice(),
                pos: 0,
                filled: 0,
                done: false,
            }),
            None => Text::Bytes(input),
        })
    }

    /// The encoding the file was decoded from, when it was not read as it is.
    pub fn decoded_from(&self) -> Option<&'static Encoding> {
        match self {
            Text::Bytes(_) => None,
            Text::Utf16(utf16) => Some(utf16.decoder.encoding()),
        }
    }
}

impl<R: BufRead> Read for Text<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Text::Bytes(inner) => inner.read(out),
            Text::Utf16(utf16) => utf16.read(out),
        }
    }
}

impl<R: BufRead> BufRead for Text<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Text::Bytes(inner) => inner.fill_buf(),
            Text::Utf16(utf16) => utf16.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Text::Bytes(inner) => inner.consume(amt),
            Text::Utf16(utf16) => utf16.consume(amt),
        }
    }
}

/// A UTF-16 stream decoded to UTF-8 a buffer at a time. An unpaired surrogate becomes
/// U+FFFD, which the readers then see as an odd character in that field.
pub struct Utf16<R> {
    inner: R,
    decoder: Decoder,
    out: Box<[u8]>,
    pos: usize,
    filled: usize,
    done: bool,
}

impl<R: BufRead> Read for Utf16<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.read(out)?;
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Utf16<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.filled && !self.done {
            self.pos = 0;
            self.filled = 0;
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            let (result, read, written, _) =
                self.decoder.decode_to_utf8(input, &mut self.out, last);
            self.inner.consume(read);
            self.filled = written;
            if last && result == CoderResult::InputEmpty {
                self.done = true;
            }
        }
        Ok(&self.out[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, encoding: &'static Encoding, bom: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for unit in text.encode_utf16() {
            let pair = if encoding == UTF_16LE {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            };
            bytes.extend_from_slice(&pair);
        }
        if bom {
            let mark = if encoding == UTF_16LE {
                [0xFF, 0xFE]
            } else {
                [0xFE, 0xFF]
            };
            bytes.splice(0..0, mark);
        }
        bytes
    }

    fn decoded(bytes: &[u8]) -> (Option<&'static Encoding>, String) {
        // A small buffer, so characters and surrogate pairs straddle its refills.
        let input = io::BufReader::with_capacity(5, bytes);
        let mut text = Text::new(input).unwrap();
        let from = text.decoded_from();
        let mut out = String::new();
        text.read_to_string(&mut out).unwrap();
        (from, out)
    }

    #[test]
    fn utf16_in_either_order_with_or_without_a_bom_decodes_to_the_same_text() {
        let text = "Fylkesnummer;Etternavn\r\n46;Mæhle Øystein 🦀\r\n";
        for encoding in [UTF_16LE, UTF_16BE] {
            for bom in [true, false] {
                let (from, out) = decoded(&utf16(text, encoding, bom));
                assert_eq!(from, Some(encoding), "{} bom {bom}", encoding.name());
                assert_eq!(out, text, "{} bom {bom}", encoding.name());
            }
        }
    }

    #[test]
    fn utf8_and_windows_1252_pass_through_untouched() {
        for bytes in [
            "Fylkesnummer;Etternavn\n46;Mæhle\n".as_bytes(),
            b"Fylkesnummer;Etternavn\n46;M\xe6hle\n",
            b"",
            b"a",
        ] {
            let (from, out) = {
                let mut text = Text::new(bytes).unwrap();
                let mut out = Vec::new();
                let from = text.decoded_from();
                text.read_to_end(&mut out).unwrap();
                (from, out)
            };
            assert_eq!(from, None);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn a_utf8_bom_is_dropped() {
        let mut text = Text::new("\u{feff}{\"users\": []}".as_bytes()).unwrap();
        let mut out = String::new();
        text.read_to_string(&mut out).unwrap();
        assert_eq!(out, "{\"users\": []}");
    }

    #[test]
    fn a_stray_nul_in_ascii_text_is_not_taken_for_utf16() {
        assert_eq!(
            utf16_order(b"Skolenummer;Navn\0;Klasse\n46505;x;1A\n"),
            None
        );
    }
}
