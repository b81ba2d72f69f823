//! Any text as a consumer's OneRoster `filter` parameter, through central's filter parser
//! (`skolebro_central::oneroster::fuzz_filter`, which asserts the invariants: a refusal is a
//! value, a filter written out parses back to itself, checking and matching answer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    // Query parameters reach the parser as UTF-8 text; other bytes are refused before it.
    if let Ok(text) = std::str::from_utf8(data) {
        skolebro_central::oneroster::fuzz_filter(text);
    }
});
