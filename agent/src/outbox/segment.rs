//! The on-disk frame and segment-file format of the outbox.
//!
//! A segment file is a plain concatenation of frames, with no file header, named after the
//! sequence number of its first frame, zero-padded to 20 digits so that names sort in sequence
//! order (`00000000000000000001.seg`). Every frame is self-describing and checksummed, so a
//! segment can be validated without any other file.
//!
//! Frame layout, all integers **little-endian** (24-byte header, then the payload):
//!
//! ```text
//! offset  size  field
//!      0     4  len            payload length in bytes (u32)
//!      4     4  crc            CRC-32C of bytes [0..4) ++ [8..24+len)  (len, seq, appended_at, payload)
//!      8     8  seq            the caller's sequence number (u64)
//!     16     8  appended_at    wall-clock time of the append, unix milliseconds (u64)
//!     24   len  payload        the opaque sealed envelope
//! ```
//!
//! The checksum is **CRC-32C** (Castagnoli polynomial 0x1EDC6F41, reflected; the CRC used by
//! iSCSI, ext4 metadata and SCTP), not the CRC-32 of zip/Ethernet: it has better error detection
//! for the frame sizes we write and is hardware-accelerated on ARMv8 (the Pi 3/4/5) and x86.
//! It covers every header field except itself, so a flipped bit in `len`, `seq` or the
//! timestamp is caught as well as one in the payload.

/// Bytes in a frame header (len, crc, seq, appended_at).
pub const HEADER_LEN: usize = 24;

/// Suffix of segment file names; anything else in the directory is not a segment.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// The header fields of one frame as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Checksum stored in the frame.
    pub crc: u32,
    /// Sequence number stored in the frame.
    pub seq: u64,
    /// Append time, unix milliseconds.
    pub appended_at_ms: u64,
}

impl FrameHeader {
    /// Total bytes the frame occupies on disk (header plus payload).
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// What was found at one offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame whose checksum matches.
    Good(FrameHeader),
    /// A complete frame (by its length field) whose checksum does not match.
    BadChecksum(FrameHeader),
    /// Fewer bytes remain than the header, or than the header's length field claims.
    Incomplete,
}

/// Computes the frame checksum: CRC-32C over `len`, `seq`, `appended_at` and the payload.
pub fn frame_crc(len: u32, seq: u64, appended_at_ms: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &appended_at_ms.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Encodes one frame. The caller has already checked that `payload` fits in a u32 length.
pub fn encode_frame(seq: u64, appended_at_ms: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = frame_crc(len, seq, appended_at_ms, payload);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_at_ms.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads only the header at `offset`, without checking the checksum; `None` if fewer than
/// [`HEADER_LEN`] bytes remain.
pub fn read_header(data: &[u8], offset: usize) -> Option<FrameHeader> {
    let end = offset.checked_add(HEADER_LEN)?;
    if end > data.len() {
        return None;
    }
    let h = &data[offset..end];
    Some(FrameHeader {
        len: le_u32(h, 0),
        crc: le_u32(h, 4),
        seq: le_u64(h, 8),
        appended_at_ms: le_u64(h, 16),
    })
}

/// Parses and verifies the frame at `offset` of a segment's bytes. Never panics on any input:
/// every length comes from the file and is bounds-checked.
pub fn parse_frame(data: &[u8], offset: usize) -> Parsed {
    let Some(header) = read_header(data, offset) else {
        return Parsed::Incomplete;
    };
    let start = offset + HEADER_LEN;
    let Some(end) = start.checked_add(header.len as usize) else {
        return Parsed::Incomplete;
    };
    if end > data.len() {
        return Parsed::Incomplete;
    }
    let crc = frame_crc(
        header.len,
        header.seq,
        header.appended_at_ms,
        &data[start..end],
    );
    if crc == header.crc {
        Parsed::Good(header)
    } else {
        Parsed::BadChecksum(header)
    }
}

/// Verifies a frame read back whole (header plus payload) and returns its header and payload.
pub fn verify_frame(frame: &[u8]) -> Option<(FrameHeader, &[u8])> {
    match parse_frame(frame, 0) {
        Parsed::Good(h) if h.frame_len() == frame.len() as u64 => Some((h, &frame[HEADER_LEN..])),
        _ => None,
    }
}

/// The file name of the segment whose first frame has sequence number `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back to its first sequence number; `None` for other files.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Index entry of one frame (the payload stays on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub seq: u64,
    pub offset: u64,
    pub len: u32,
    pub appended_at_ms: u64,
}

impl FrameMeta {
    pub(crate) fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Index of one segment file.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub name: String,
    pub first_seq: u64,
    pub bytes: u64,
    pub synced_bytes: u64,
    pub entry_synced: bool,
    pub frames: Vec<FrameMeta>,
}

impl Segment {
    pub(crate) fn new(name: String, first_seq: u64) -> Self {
        Self {
            name,
            first_seq,
            bytes: 0,
            synced_bytes: 0,
            entry_synced: false,
            frames: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_the_castagnoli_variant() {
        // The standard CRC-32C check value (RFC 3720 / "123456789").
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn a_frame_round_trips_and_any_flipped_bit_is_caught() {
        let frame = encode_frame(7, 1_700_000_000_000, b"hello");
        let (h, p) = verify_frame(&frame).expect("good frame");
        assert_eq!((h.seq, h.len, p), (7, 5, &b"hello"[..]));
        for bit in 0..frame.len() * 8 {
            let mut f = frame.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            assert!(verify_frame(&f).is_none(), "bit {bit} not caught");
        }
    }

    #[test]
    fn a_frame_read_back_with_bytes_beyond_its_length_field_is_refused() {
        // The checksum covers only the bytes the length field claims; more would reach the
        // uplink unchecked.
        let mut frame = encode_frame(7, 1_700_000_000_000, b"hello");
        frame.push(b'!');
        assert_eq!(verify_frame(&frame), None);
    }

    #[test]
    fn segment_names_sort_by_sequence_and_parse_back() {
        assert_eq!(segment_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("ack"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.seg"), None);
    }

    #[test]
    fn a_file_whose_name_is_not_twenty_digits_is_no_segment_even_if_it_parses_as_a_number() {
        // Recovery would otherwise read a stray file as frames, and remove or reset over it.
        for name in [
            "1.seg",
            "000000000000000000001.seg",
            "+0000000000000000001.seg",
        ] {
            assert_eq!(parse_segment_name(name), None, "{name}");
        }
    }
}
