//! Any bytes as a OneRoster JSON export, read as `check` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{export_file, json_records, lines, read_and_check, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = export_file("users.json", data);
    read_and_check(
        &path,
        Format::OneRosterJson,
        Some(lines(data)),
        json_records(data),
        false,
    );
});
