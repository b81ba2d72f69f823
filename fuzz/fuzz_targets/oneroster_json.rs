//! Any bytes as a OneRoster JSON export, read as `check` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{lines, read_and_check, scratch, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("users.json");
    std::fs::write(&path, data).expect("the export is written");
    read_and_check(&path, Format::OneRosterJson, Some(lines(data)), false);
});
