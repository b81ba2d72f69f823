//! Any bytes as an elevliste, read as `check` reads it (see `skolebro_fuzz::read_and_check`),
//! on one thread or pipelined as the daemon reads a large export.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{elevliste_records, export_file, lines, read_and_check, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = export_file("elevliste.csv", data);
    // The last byte picks the mode, so the same text is tried both ways.
    let pipelined = data.last().is_some_and(|b| b & 1 == 1);
    read_and_check(
        &path,
        Format::Elevliste,
        Some(lines(data)),
        elevliste_records(data),
        pipelined,
    );
});
