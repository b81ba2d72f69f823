//! The public conformance corpus (`tests/corpus/`): sample exports written by others (spec
//! bodies, LMS and SIS importers, Norwegian providers' documentation), each beside a
//! `PROVENANCE` note and an `EXPECTED` file counted by hand from the data. Every entry is
//! run through the real `skolebro-agent check --json` (and `diff --json` for pairs), and what
//! the agent reports must equal what a person counted: no exit 2 on a sound file, the same
//! schools, students, groups and enrollments, the same deviations by code, and every student
//! record either in the roster or named in a deviation.
//!
//! `EXPECTED` is read at test time, so the expectations stay beside the data. Its format, one
//! `key = value` (or `key >= value`) a line, `#` starting a comment, is described in
//! `tests/corpus/README.md`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skolebro_protocol::NationalId;
use skolebro_tests::harness;

/// One agent run may take this long before it is killed: a corpus file is a few KB, so a
/// run that takes longer hangs.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// The corpus must stay small enough to live in the repository.
const MAX_CORPUS_BYTES: u64 = 400 * 1024;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn entries() -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/corpus is readable")
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_dir() && !path.ends_with("LICENSES"))
        .collect();
    entries.sort();
    entries
}

/// What `EXPECTED` says: each line's key, whether it is a lower bound (`>=`), and its value.
struct Expected {
    lines: Vec<(String, bool, String)>,
}

impl Expected {
    fn read(entry: &Path) -> Expected {
        let path = entry.join("EXPECTED");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, at_least, value) = if let Some((key, value)) = line.split_once(">=") {
                (key, true, value)
            } else if let Some((key, value)) = line.split_once('=') {
                (key, false, value)
            } else {
                panic!(
                    "{}:{}: not `key = value`: {line}",
                    path.display(),
                    number + 1
                );
            };
            let value = value.trim().trim_matches('"').to_owned();
            lines.push((key.trim().to_owned(), at_least, value));
        }
        Expected { lines }
    }

    /// The lines whose key starts with `prefix`, with the prefix taken off.
    fn under(&self, prefix: &str) -> Vec<(String, bool, String)> {
        self.lines
            .iter()
            .filter_map(|(key, at_least, value)| {
                key.strip_prefix(prefix)
                    .map(|rest| (rest.to_owned(), *at_least, value.clone()))
            })
            .collect()
    }

    fn value(&self, key: &str) -> Option<String> {
        self.lines
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, value)| value.clone())
    }
}

/// Exit code, stdout and stderr of one agent run, killed at [`RUN_DEADLINE`].
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn agent(args: &[&str]) -> Run {
    let mut child = Command::new(&harness::binaries().agent)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the agent") {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skolebro-agent {args:?} still ran after {RUN_DEADLINE:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader").unwrap_or_default(),
        stderr: err.join().expect("stderr reader").unwrap_or_default(),
    }
}

/// Mismatches found for one entry; an empty list means the entry reads as counted.
type Problems = Vec<String>;

fn number(value: &str, key: &str, problems: &mut Problems) -> Option<u64> {
    let parsed = value.parse().ok();
    if parsed.is_none() {
        problems.push(format!("EXPECTED {key}: `{value}` is not a number"));
    }
    parsed
}

fn compare(key: &str, got: u64, at_least: bool, want: u64, problems: &mut Problems) {
    let ok = if at_least { got >= want } else { got == want };
    if !ok {
        let op = if at_least { ">=" } else { "=" };
        problems.push(format!("{key}: got {got}, expected {op} {want}"));
    }
}

/// Runs `check --json` on `file` and compares the report with the `check` lines of EXPECTED;
/// each mismatch is added to `found`, naming the file.
fn check(entry: &Path, file: &str, lines: &[(String, bool, String)], found: &mut Problems) {
    let mut problems = Vec::new();
    check_into(entry, file, lines, &mut problems);
    found.extend(problems.into_iter().map(|p| format!("{file}: {p}")));
}

fn check_into(entry: &Path, file: &str, lines: &[(String, bool, String)], problems: &mut Problems) {
    let path = entry.join(file);
    let run = agent(&["check", "--json", path.to_str().expect("UTF-8 path")]);
    let expected_exit: Option<i32> = lines
        .iter()
        .find(|(key, _, _)| key == "exit")
        .and_then(|(_, _, value)| value.parse().ok());
    if run.code == 2 && expected_exit != Some(2) {
        problems.push(format!("exit 2 on a sound file: {}", run.stderr.trim()));
        return;
    }
    let report: Value = match serde_json::from_str(&run.stdout) {
        Ok(report) => report,
        Err(e) => {
            problems.push(format!("stdout is not JSON ({e}): {}", run.stdout));
            return;
        }
    };
    let deviations = report["deviations"].as_array().cloned().unwrap_or_default();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let (mut errors, mut warnings) = (0u64, 0u64);
    for deviation in &deviations {
        let code = deviation["code"].as_str().unwrap_or("?").to_owned();
        *codes.entry(code).or_insert(0) += 1;
        match deviation["severity"].as_str() {
            Some("error") => errors += 1,
            _ => warnings += 1,
        }
    }
    let exit_for_errors = i32::from(errors > 0);
    if expected_exit != Some(2) && run.code != exit_for_errors {
        problems.push(format!(
            "exit {} but the report holds {errors} errors",
            run.code
        ));
    }
    let count = |entity: &str| report["counts"][entity].as_u64().unwrap_or(u64::MAX);
    let mut listed_codes = Vec::new();
    let mut other_codes_allowed = false;
    for (key, at_least, value) in lines {
        let key = key.as_str();
        match key {
            "exit" => {
                if let Some(want) = number(value, key, problems) {
                    compare(
                        "exit",
                        u64::try_from(run.code).unwrap_or(u64::MAX),
                        false,
                        want,
                        problems,
                    );
                }
            }
            "format" => {
                if report["format"] != value.as_str() {
                    problems.push(format!(
                        "format: got {}, expected {value}",
                        report["format"]
                    ));
                }
            }
            "partial" => {
                if report["partial"]
                    .as_bool()
                    .map(|b| b.to_string())
                    .as_deref()
                    != Some(value.as_str())
                {
                    problems.push(format!(
                        "partial: got {}, expected {value}",
                        report["partial"]
                    ));
                }
            }
            "schools" | "students" | "groups" | "enrollments" => {
                if let Some(want) = number(value, key, problems) {
                    compare(key, count(key), *at_least, want, problems);
                }
            }
            "tombstones" => {
                if let Some(want) = number(value, key, problems) {
                    let got = report["tombstones"].as_u64().unwrap_or(u64::MAX);
                    compare(key, got, *at_least, want, problems);
                }
            }
            "errors" | "warnings" | "deviations" => {
                let got = match key {
                    "errors" => errors,
                    "warnings" => warnings,
                    _ => deviations.len() as u64,
                };
                if let Some(want) = number(value, key, problems) {
                    compare(key, got, *at_least, want, problems);
                }
            }
            "student_records" => {
                // Every student record of the file is in the roster or named as left out.
                let dropped = lines
                    .iter()
                    .find(|(k, _, _)| k == "dropped")
                    .and_then(|(_, _, v)| v.parse::<u64>().ok())
                    .unwrap_or(0);
                if let Some(records) = number(value, key, problems) {
                    let students = count("students");
                    if students.saturating_add(dropped) != records {
                        problems.push(format!(
                            "{records} student records in the file, {students} in the roster and \
                             {dropped} named as left out: a record was dropped in silence"
                        ));
                    }
                    let left_out: u64 = [
                        "duplicate_record",
                        "duplicate_national_id",
                        "duplicate_key",
                        "missing_required",
                    ]
                    .iter()
                    .map(|code| codes.get(*code).copied().unwrap_or(0))
                    .sum();
                    if left_out < dropped {
                        problems.push(format!(
                            "{dropped} records left out but only {left_out} deviations name one"
                        ));
                    }
                }
            }
            "dropped" => {}
            "other_codes" => other_codes_allowed = value == "allowed",
            "forbid_detail" => {
                for deviation in &deviations {
                    let detail = deviation["detail"].as_str().unwrap_or("");
                    if detail.contains(value.as_str()) {
                        problems.push(format!("a deviation says `{value}`: {detail}"));
                    }
                }
            }
            _ => {
                if let Some(code) = key.strip_prefix("deviation.") {
                    listed_codes.push(code.to_owned());
                    if let Some(want) = number(value, key, problems) {
                        let got = codes.get(code).copied().unwrap_or(0);
                        compare(key, got, *at_least, want, problems);
                    }
                } else if let Some(rest) = key.strip_prefix("school.") {
                    school(&report, rest, value, problems);
                } else {
                    problems.push(format!("EXPECTED: unknown key `{key}`"));
                }
            }
        }
    }
    if !other_codes_allowed {
        for (code, n) in &codes {
            if !listed_codes.contains(code) {
                problems.push(format!("unexpected deviations: {n} x {code}"));
            }
        }
    }
}

/// `school.<skolenummer or name>.<field> = value|null`: one field of one school of
/// the report's `schools` list, found by its name.
fn school(report: &Value, rest: &str, value: &str, problems: &mut Problems) {
    let Some((name, field)) = rest.rsplit_once('.') else {
        problems.push(format!("EXPECTED: `school.{rest}` names no field"));
        return;
    };
    let schools = report["schools"].as_array().cloned().unwrap_or_default();
    let Some(found) = schools.iter().find(|s| s["name"] == name) else {
        problems.push(format!(
            "schools: no school named `{name}` in the report's `schools` ({})",
            report["schools"]
        ));
        return;
    };
    let got = match &found[field] {
        Value::Null => "null".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if got != value {
        problems.push(format!(
            "school `{name}` {field}: got {got}, expected {value}"
        ));
    }
}

/// Runs `diff --json` from `before` to `after` and compares it with the `diff.` lines.
fn diff(
    entry: &Path,
    before: &str,
    after: &str,
    lines: &[(String, bool, String)],
    problems: &mut Problems,
) {
    let old = entry.join(before);
    let new = entry.join(after);
    let run = agent(&[
        "diff",
        "--json",
        "--today",
        "2026-03-02",
        old.to_str().expect("UTF-8 path"),
        new.to_str().expect("UTF-8 path"),
    ]);
    if run.code != 0 {
        problems.push(format!("diff: exit {}: {}", run.code, run.stderr.trim()));
        return;
    }
    let report: Value = match serde_json::from_str(&run.stdout) {
        Ok(report) => report,
        Err(e) => {
            problems.push(format!("diff: stdout is not JSON ({e}): {}", run.stdout));
            return;
        }
    };
    for (key, at_least, value) in lines {
        match key.as_str() {
            "verdict" => {
                if report["verdict"] != value.as_str() {
                    problems.push(format!(
                        "diff verdict: got {}, expected {value}",
                        report["verdict"]
                    ));
                }
            }
            "reason_contains" => {
                let reasons = report["reasons"].as_array().cloned().unwrap_or_default();
                if !reasons
                    .iter()
                    .any(|r| r.as_str().is_some_and(|r| r.contains(value.as_str())))
                {
                    problems.push(format!(
                        "diff: no reason names `{value}`: {}",
                        report["reasons"]
                    ));
                }
            }
            path => {
                let Some((section, entity)) = path.split_once('.') else {
                    problems.push(format!("EXPECTED: unknown key `diff.{path}`"));
                    continue;
                };
                if let Some(want) = number(value, path, problems) {
                    let got = report[section][entity].as_u64().unwrap_or(u64::MAX);
                    compare(
                        &format!("diff {section}.{entity}"),
                        got,
                        *at_least,
                        want,
                        problems,
                    );
                }
            }
        }
    }
}

/// All mismatches of one entry, each naming the entry.
fn run_entry(entry: &Path) -> Problems {
    let expected = Expected::read(entry);
    let mut problems = Vec::new();
    if let Some(file) = expected.value("check") {
        let lines: Vec<_> = expected
            .lines
            .iter()
            .filter(|(key, _, _)| key != "check")
            .cloned()
            .collect();
        check(entry, &file, &lines, &mut problems);
    }
    if let (Some(before), Some(after)) = (expected.value("before"), expected.value("after")) {
        check(entry, &before, &expected.under("before."), &mut problems);
        check(entry, &after, &expected.under("after."), &mut problems);
        diff(
            entry,
            &before,
            &after,
            &expected.under("diff."),
            &mut problems,
        );
    }
    if expected.value("check").is_none() && expected.value("before").is_none() {
        problems.push("EXPECTED names no `check` file and no `before`/`after` pair".to_owned());
    }
    let name = entry
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    problems
        .into_iter()
        .map(|p| format!("{name}: {p}"))
        .collect()
}

#[test]
fn every_corpus_entry_reads_as_counted_by_hand() {
    let entries = entries();
    assert!(
        entries.len() >= 12,
        "the corpus has {} entries",
        entries.len()
    );
    let problems: Vec<String> = entries.iter().flat_map(|entry| run_entry(entry)).collect();
    assert!(
        problems.is_empty(),
        "{} mismatches against EXPECTED:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_corpus_entry_says_where_it_came_from() {
    let mut sources = std::collections::BTreeSet::new();
    for entry in entries() {
        let path = entry.join("PROVENANCE");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for field in [
            "source:", "url:", "path:", "version:", "licence:", "changes:",
        ] {
            assert!(
                text.contains(field),
                "{}: no `{field}` line",
                path.display()
            );
        }
        let source = text
            .lines()
            .find_map(|line| line.strip_prefix("source:"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        sources.insert(source);
        assert!(
            entry.join("EXPECTED").is_file(),
            "{}: no EXPECTED",
            entry.display()
        );
    }
    assert!(
        sources.len() >= 5,
        "only {} sources: {sources:?}",
        sources.len()
    );
}

/// Every file below `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable corpus folder") {
        let path = entry.expect("a corpus file").path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_corpus_is_small_and_holds_only_synthetic_national_ids() {
    let mut all = Vec::new();
    files(&corpus(), &mut all);
    let total: u64 = all
        .iter()
        .map(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(total <= MAX_CORPUS_BYTES, "the corpus is {total} bytes");
    // The zips are upstream's bytes; their few CSV lines hold no 11-digit number (read by
    // hand, see their PROVENANCE).
    for path in all
        .iter()
        .filter(|p| p.extension().is_none_or(|e| e != "zip"))
    {
        let bytes = std::fs::read(path).expect("readable corpus file");
        for digits in bytes.split(|b| !b.is_ascii_digit()) {
            // An 11-digit run that parses as a national id (date and control digits) must
            // be a synthetic one; phone numbers and the like do not parse.
            let Ok(text) = std::str::from_utf8(digits) else {
                continue;
            };
            if let Ok(id) = NationalId::parse(text) {
                assert!(
                    id.is_synthetic(),
                    "{}: a national id that is not synthetic ({})",
                    path.display(),
                    id.masked()
                );
            }
        }
    }
}
