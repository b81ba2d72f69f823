//! Any bytes as an IMS Enterprise / PIFU-IMS XML export, read as `check` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{lines, read_and_check, scratch, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("export.xml");
    std::fs::write(&path, data).expect("the export is written");
    read_and_check(&path, Format::ImsEnterprise, Some(lines(data)), false);
});
