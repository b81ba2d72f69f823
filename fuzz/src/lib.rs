//! What the fuzz targets share: a heap counter to hold readers to their memory budget, a
//! scratch folder per process for the files a reader must be handed, and the invariants every
//! export reader keeps, asserted the same way for each format.
//!
//! The targets sit at the edge of the data flow, where outside bytes come in: an export in
//! the drop folder (read by `skolebro-agent check` and the daemon through
//! `skolebro_roster::reader::read_export`), an envelope at central, a stick, a release
//! manifest, the outbox's own files after a crash, and a consumer's `filter` parameter.

pub mod signed;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use skolebro_protocol::mask_in_text;
use skolebro_roster::deviation::{Position, KEPT_PER_CODE};
use skolebro_roster::reader::{read_export, Format, ReadErrorKind, ReaderOptions};
use skolebro_roster::report;
use skolebro_roster::validate::ValidationOptions;

/// The read budget the reader targets run under: small, so that the refusal path is reached
/// by inputs libFuzzer can make, and the heap bound below means something.
pub const READ_BUDGET: u64 = 1 << 20;

/// Heap a read may take beyond [`READ_BUDGET`]: the reader's fixed buffers (a line of up to
/// `MAX_LINE_BYTES`, the csv and XML parsers' buffers, the pipeline's batches, a zip
/// member's inflater). Not a function of the input: bytes that inflate or repeat must not
/// make a read take more.
pub const READ_OVERHEAD: usize = 16 << 20;

/// Bytes live on the Rust heap now, and the most since the last [`reset_peak`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak. Each target installs it with
/// `#[global_allocator]`; libFuzzer's own C++ allocations are not counted.
pub struct CountingAlloc;

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// caller's obligations are passed on as they are; the counters are plain atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; see the impl.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; see the impl.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded; see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; see the impl.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

/// Starts a measurement: the peak becomes what is live now, which is returned.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The most bytes live since [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// This process's own folder, on tmpfs where there is one, removed when the process ends.
fn base() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = Path::new("/dev/shm");
        let builder = &mut tempfile::Builder::new();
        builder.prefix("skolebro-fuzz-");
        if parent.is_dir() {
            builder.tempdir_in(parent)
        } else {
            builder.tempdir()
        }
        .expect("a scratch folder")
    })
    .path()
}

/// A folder of this process's own, emptied for each input: for a target that must start
/// from nothing (the outbox's recovery).
pub fn scratch() -> PathBuf {
    let dir = base().join("export");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("the scratch folder empties");
    }
    std::fs::create_dir(&dir).expect("the scratch folder");
    dir
}

/// Writes `bytes` as the file `name` in this process's folder, over the last input's, and
/// returns its path: readers take paths, as `check` hands them the export's. The file is
/// rewritten in place, so an input costs one write, not a folder made and removed.
pub fn export_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = base().join(name);
    std::fs::write(&path, bytes).expect("the export is written");
    path
}

/// Makes this process's export folder hold exactly `files`: members of the last input
/// that this one lacks are removed, the others written over. Returns the folder.
pub fn export_folder(files: &[(&str, Vec<u8>)]) -> PathBuf {
    static WRITTEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = base().join("folder");
    let mut written = WRITTEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if written.is_empty() && !dir.is_dir() {
        std::fs::create_dir(&dir).expect("the export folder");
    }
    for name in written.iter() {
        if !files.iter().any(|(n, _)| n == name) {
            std::fs::remove_file(dir.join(name)).expect("a member of the last input goes");
        }
    }
    written.clear();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("a member is written");
        written.push((*name).to_owned());
    }
    dir
}

/// Asserts that `text` holds nothing [`mask_in_text`] would mask: no run of eleven digits,
/// separated or not, leaves the reader.
///
/// Line by line, and only lines with eleven digits or more: `mask_in_text` changes nothing
/// else (a run never crosses a line feed, which is no separator), and calling it on every
/// report took a quarter of a reader target's time.
pub fn assert_masked(what: &str, text: &str) {
    for line in text.split('\n') {
        if line.bytes().filter(u8::is_ascii_digit).count() < 11 {
            continue;
        }
        assert_eq!(
            mask_in_text(line),
            line,
            "{what} carries what may be a national id in clear"
        );
    }
}

/// [`assert_masked`] on every string of a JSON document, as a reader of it sees them (its
/// escapes, `\u0018`, are not text a national id could hide in).
pub fn assert_json_masked(what: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) => assert_masked(what, text),
        serde_json::Value::Array(items) => items.iter().for_each(|v| assert_json_masked(what, v)),
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                assert_masked(what, key);
                assert_json_masked(what, v);
            }
        }
        _ => {}
    }
}

/// Reads `path` as `check` does (the agent's reader options with the read budget) and asserts
/// the invariants the reader tests assert:
///
/// - no panic, and a refusal is a `ReadError` value whose text masks national ids;
/// - the heap stays within [`READ_BUDGET`] plus [`READ_OVERHEAD`], whatever the bytes;
/// - deviations: rows kept per code at most [`KEPT_PER_CODE`], never more than counted,
///   every one masked and, for a text file of `lines` lines, on a line the file has;
/// - the roster: keys unique per kind, every reference resolves;
/// - every record the reader met is in the roster (or a tombstone), named by a deviation,
///   or left out by design as no roster data, and, where `records` counts the input's data
///   records independently of the reader, the reader met exactly that many;
/// - `check`'s text and JSON reports render and mask national ids.
pub fn read_and_check(
    path: &Path,
    format: Format,
    lines: Option<u64>,
    records: Option<u64>,
    pipelined: bool,
) {
    let options = ReaderOptions {
        validation: ValidationOptions {
            account_records: true,
            ..ValidationOptions::default()
        },
        pipelined,
        memory_budget: Some(READ_BUDGET),
        ..ReaderOptions::default()
    };
    let before = reset_peak();
    let read = read_export(path, Some(format), &options);
    let used = peak().saturating_sub(before);
    assert!(
        used <= READ_BUDGET as usize + READ_OVERHEAD,
        "reading took {used} bytes of heap, over the budget"
    );
    let validated = match read {
        Err(error) => {
            assert_masked("a read error", &error.to_string());
            assert_json_masked("a read error as JSON", &report::read_error_json(&error));
            if let ReadErrorKind::OverBudget { budget } = error.kind {
                assert_eq!(budget, READ_BUDGET);
            }
            return;
        }
        Ok((read_as, validated)) => {
            assert_eq!(read_as, format);
            validated
        }
    };

    let mut kept: BTreeMap<_, u64> = BTreeMap::new();
    for deviation in &validated.deviations {
        *kept
            .entry((deviation.severity, deviation.code))
            .or_default() += 1;
        assert_masked("a deviation", &deviation.to_string());
        if let (Position::Line(line), Some(lines)) = (deviation.position, lines) {
            assert!(
                (1..=lines + 1).contains(&line),
                "a deviation on line {line} of a file of {lines} lines: {deviation}"
            );
        }
    }
    for ((severity, code), rows) in kept {
        assert!(rows <= KEPT_PER_CODE as u64, "{rows} rows kept of {code:?}");
        assert!(rows <= validated.tally.of(severity, code));
    }
    assert!(validated.deviations.len() as u64 <= validated.tally.total());

    let accounting = validated
        .accounting
        .as_ref()
        .expect("accounting was asked for");
    assert!(
        accounting.is_complete(),
        "records dropped without a word: {accounting:?}"
    );
    if let Some(records) = records {
        assert_eq!(
            accounting.seen, records,
            "the reader met {} records of the {records} the input holds: {accounting:?}",
            accounting.seen
        );
    }

    let roster = &validated.roster;
    let schools = unique(
        roster
            .schools
            .iter()
            .map(|s| s.skolenummer.as_str())
            .collect(),
        "school",
    );
    let students = unique(
        roster
            .students
            .iter()
            .map(|s| s.source_key.as_str())
            .collect(),
        "student",
    );
    let groups = unique(
        roster
            .groups
            .iter()
            .map(|g| g.source_key.as_str())
            .collect(),
        "group",
    );
    unique(
        roster
            .enrollments
            .iter()
            .map(|e| e.source_key.as_str())
            .collect(),
        "enrollment",
    );
    for group in &roster.groups {
        assert!(
            schools.contains(group.school.as_str()),
            "a group's school is missing"
        );
    }
    for enrollment in &roster.enrollments {
        assert!(
            students.contains(enrollment.student.as_str()),
            "an enrollment's student is missing"
        );
        assert!(
            schools.contains(enrollment.school.as_str()),
            "an enrollment's school is missing"
        );
        if let Some(group) = &enrollment.group {
            assert!(
                groups.contains(group.as_str()),
                "an enrollment's group is missing"
            );
        }
    }
    let ids: Vec<_> = roster
        .students
        .iter()
        .filter_map(|s| s.national_id.as_ref())
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "two students with one national id"
    );

    assert_masked(
        "check's report",
        &report::check_text(path, format, &validated),
    );
    assert_json_masked(
        "check's JSON report",
        &report::check_json(path, format, &validated),
    );
}

/// The keys of one kind of record, asserting that no two records share one.
fn unique<'a>(keys: Vec<&'a str>, kind: &str) -> HashSet<&'a str> {
    let count = keys.len();
    let set: HashSet<&str> = keys.into_iter().collect();
    assert_eq!(set.len(), count, "two {kind} records with one key");
    set
}

/// Lines in a text file, for bounding the lines deviations name: every line ends in, or
/// follows, a line feed or a carriage return (counted as bytes, so UTF-16 is covered too).
pub fn lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1
}

/// The data rows of an elevliste, counted without the reader: the records after the header
/// that hold anything but blanks, as the csv crate splits semicolon text. Only for plain
/// ASCII without NUL bytes, whose encoding and line ends no reader can take otherwise;
/// `None` for anything else.
pub fn elevliste_records(bytes: &[u8]) -> Option<u64> {
    if !bytes.iter().all(|&b| b.is_ascii() && b != 0) {
        return None;
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut count = 0;
    let mut record = csv::ByteRecord::new();
    let mut header = true;
    while reader.read_byte_record(&mut record).ok()? {
        if std::mem::take(&mut header) {
            continue;
        }
        if !record
            .iter()
            .all(|field| field.iter().all(u8::is_ascii_whitespace))
        {
            count += 1;
        }
    }
    Some(count)
}

/// The users of a OneRoster JSON document, counted without the reader: the elements of a
/// bare array, or of the object's `users` array plus one for a `user` object. `None` unless
/// the bytes parse as JSON holding the string `"users"` or `"user"` once at most (a
/// repeated key is read twice by a streaming reader and once here).
pub fn json_records(bytes: &[u8]) -> Option<u64> {
    let occurs = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
    if occurs(b"\"users\"") + occurs(b"\"user\"") > 1 {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(bytes).ok()? {
        serde_json::Value::Array(users) => Some(users.len() as u64),
        serde_json::Value::Object(map) => {
            let users = match map.get("users") {
                Some(serde_json::Value::Array(users)) => users.len() as u64,
                _ => 0,
            };
            Some(users + u64::from(map.contains_key("user")))
        }
        _ => None,
    }
}

/// The OneRoster CSV files an export folder may hold.
pub const ONEROSTER_FILES: [&str; 10] = [
    "manifest.csv",
    "users.csv",
    "orgs.csv",
    "classes.csv",
    "enrollments.csv",
    "academicSessions.csv",
    "courses.csv",
    "demographics.csv",
    "roles.csv",
    "userProfiles.csv",
];

/// Splits a fuzz input into the files of a OneRoster export: each file starts with a line
/// `--- <name>` naming one of [`ONEROSTER_FILES`] (any other name goes to `users.csv`); text
/// before the first such line is `users.csv`. A file named twice is written once, the last
/// one winning. Text, so the corpus stays readable and libFuzzer's mutations stay in files.
pub fn split_files(data: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut files: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    let mut current = "users.csv";
    // Text before the first name line makes `users.csv` only if there is any.
    let mut named = false;
    let mut body = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"--- ") {
            if named || !body.is_empty() {
                files.insert(current, std::mem::take(&mut body));
            }
            named = true;
            let name = String::from_utf8_lossy(name);
            let name = name.trim();
            current = ONEROSTER_FILES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(name))
                .copied()
                .unwrap_or("users.csv");
            continue;
        }
        body.extend_from_slice(line);
    }
    files.insert(current, body);
    files.into_iter().collect()
}
