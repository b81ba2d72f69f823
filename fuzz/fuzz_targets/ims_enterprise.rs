//! Any bytes as an IMS Enterprise / PIFU-IMS XML export, read as `check` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{export_file, lines, read_and_check, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = export_file("export.xml", data);
    // Records are counted by the reader only: elements may share a line.
    read_and_check(&path, Format::ImsEnterprise, Some(lines(data)), None, false);
});
