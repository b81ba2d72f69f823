//! Any bytes as an elevliste, read as `check` reads it (see `skolebro_fuzz::read_and_check`),
//! on one thread or pipelined as the daemon reads a large export.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{lines, read_and_check, scratch, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("elevliste.csv");
    std::fs::write(&path, data).expect("the export is written");
    // The last byte picks the mode, so the same text is tried both ways.
    let pipelined = data.last().is_some_and(|b| b & 1 == 1);
    read_and_check(&path, Format::Elevliste, Some(lines(data)), pipelined);
});
