//! Any bytes as a OneRoster CSV export in a zip. An input starting with `PK` is the zip file
//! itself (lying sizes, bombs, broken directories); any other input is split into files as
//! for the folder target and zipped, stored or deflated, so the reader's CSV paths are
//! reached through the archive too.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::{export_file, read_and_check, split_files, CountingAlloc};
use skolebro_roster::reader::Format;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn zipped(data: &[u8]) -> Vec<u8> {
    let method = if data.first().is_some_and(|b| b & 1 == 1) {
        CompressionMethod::Deflated
    } else {
        CompressionMethod::Stored
    };
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, body) in split_files(data) {
        writer.start_file(name, options).expect("a member starts");
        writer.write_all(&body).expect("a member is written");
    }
    writer
        .finish()
        .expect("the archive is written")
        .into_inner()
}

fuzz_target!(|data: &[u8]| {
    let path = if data.starts_with(b"PK") {
        export_file("export.zip", data)
    } else {
        export_file("export.zip", &zipped(data))
    };
    // Deviation lines count lines inside members, which a zip's bytes do not bound.
    read_and_check(&path, Format::OneRosterCsv, None, None, false);
});
