//! What the roster crate's integration tests share: writing text as Windows tools save
//! "Unicode" text, for the readers' UTF-16 decoding to be tested against.

/// `text` in UTF-16, big-endian or little, led by a BOM or not.
pub(crate) fn utf16(text: &str, big: bool, bom: bool) -> Vec<u8> {
    bom.then_some(0xFEFF)
        .into_iter()
        .chain(text.encode_utf16())
        .flat_map(|unit| {
            if big {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            }
        })
        .collect()
}
