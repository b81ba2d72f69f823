//! Any bytes as a OneRoster CSV export folder: the input is split into its files (`--- name`
//! lines, see `skolebro_fuzz::split_files`) and the folder read as `check` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{export_folder, read_and_check, split_files, CountingAlloc};
use skolebro_roster::reader::Format;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let dir = export_folder(&split_files(data));
    // Lines are per member file; the bound over all of them still holds for each.
    read_and_check(
        &dir,
        Format::OneRosterCsv,
        Some(skolebro_fuzz::lines(data)),
        None,
        false,
    );
});
