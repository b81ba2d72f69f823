//! The agent's command line as a user runs it: `check` and `diff` on the shared synthetic
//! exports (`tests/data`), against what each folder's `truth.json` says, and on broken
//! input, which must fail with exit 2 and a message naming file, line and field; and `run`
//! waiting for a config stick, which names a stick root that is itself a stick.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn testdata(path: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data")).join(path)
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .args(args)
        .output()
        .expect("the agent binary runs")
}

fn json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn check(path: &Path) -> (i32, Value) {
    let output = agent(&["check", "--json", path.to_str().unwrap()]);
    (output.status.code().unwrap_or(-1), json(&output))
}

/// `check --json` on `path` with an `agent.toml` holding `settings`.
fn check_configured(settings: &str, path: &Path) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, settings).unwrap();
    agent(&[
        "--config",
        config.to_str().unwrap(),
        "check",
        "--json",
        path.to_str().unwrap(),
    ])
}

fn truth(folder: &str) -> Value {
    let text = std::fs::read_to_string(testdata(folder).join("truth.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn codes(report: &Value) -> BTreeMap<String, u64> {
    let mut codes = BTreeMap::new();
    for deviation in report["deviations"].as_array().unwrap() {
        *codes
            .entry(deviation["code"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    codes
}

const FORMATS: [(&str, &str); 4] = [
    ("elevliste.csv", "elevliste"),
    ("oneroster", "oneroster-csv"),
    ("users.json", "oneroster-json"),
    ("ims-enterprise.xml", "ims-enterprise"),
];

#[test]
fn every_format_of_the_clean_export_matches_its_truth() {
    let truth = truth("clean");
    for (file, format) in FORMATS {
        let (code, report) = check(&testdata("clean").join(file));
        assert_eq!(code, 0, "{file}: {report}");
        assert_eq!(report["format"], format, "{file}");
        assert_eq!(report["counts"]["students"], truth["students"], "{file}");
        assert_eq!(report["counts"]["schools"], truth["schools"], "{file}");
        if format != "oneroster-json" {
            assert_eq!(report["counts"]["groups"], truth["groups"], "{file}");
            assert_eq!(
                report["counts"]["enrollments"], truth["enrollments"],
                "{file}"
            );
        }
        assert!(codes(&report).is_empty(), "{file}: {report}");
    }
}

#[test]
fn every_format_of_the_faulty_export_finds_the_truths_deviations() {
    let truth = truth("faulty");
    for (file, format) in FORMATS {
        let (code, report) = check(&testdata("faulty").join(file));
        assert_eq!(code, 1, "{file} has errors to fix");
        assert_eq!(report["counts"]["students"], truth["students"], "{file}");
        assert_eq!(report["counts"]["schools"], truth["schools"], "{file}");
        if format != "oneroster-json" {
            assert_eq!(report["counts"]["groups"], truth["groups"], "{file}");
            assert_eq!(
                report["counts"]["enrollments"], truth["enrollments"],
                "{file}"
            );
        }
        let found = codes(&report);
        let expected = truth["deviations"].as_object().unwrap();
        for (code, count) in expected {
            let count = count.as_u64().unwrap();
            let got = found.get(code).copied().unwrap_or(0);
            if code == "duplicate_record" && format != "elevliste" {
                // The repeated person also repeats its class membership in these formats.
                assert!(got >= count, "{file}: {code} {got} < {count}");
            } else {
                assert_eq!(got, count, "{file}: {code}");
            }
        }
        // Where enrollments are records of their own, the one of the person refused for a
        // duplicate national id is named too.
        let own_enrollments = matches!(format, "oneroster-csv" | "ims-enterprise");
        for code in found.keys() {
            if code == "dangling_reference" && own_enrollments {
                assert_eq!(found[code], 1, "{file}: {code}");
                continue;
            }
            assert!(expected.contains_key(code), "{file}: unexpected {code}");
        }
    }
}

#[test]
fn the_faulty_elevliste_names_the_lines_and_masks_the_ids() {
    let (_, report) = check(&testdata("faulty/elevliste.csv"));
    let deviations = report["deviations"].as_array().unwrap();
    let lines: Vec<u64> = deviations
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [30, 55, 68, 78, 82, 83]);
    for deviation in deviations {
        let detail = deviation["detail"].as_str().unwrap();
        assert!(
            !detail
                .chars()
                .collect::<Vec<_>>()
                .windows(11)
                .any(|w| w.iter().all(char::is_ascii_digit)),
            "an id in clear: {detail}"
        );
    }
}

fn diff(old: &Path, new: &Path) -> Value {
    let output = agent(&[
        "diff",
        "--json",
        "--today",
        "2026-03-02",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    json(&output)
}

#[test]
fn the_next_export_upserts_arrivals_and_renames_and_deletes_leavers() {
    let delta = truth("clean")["delta_v1_v2"].clone();
    let n = |key: &str| delta[key].as_u64().unwrap();
    for (file, format) in FORMATS {
        let v2 = testdata("clean/v2").join(file);
        if !v2.exists() {
            continue;
        }
        let report = diff(&testdata("clean").join(file), &v2);
        assert_eq!(
            report["upserts"]["students"].as_u64().unwrap(),
            n("students_added") + n("students_renamed"),
            "{file}: {report}"
        );
        assert_eq!(
            report["deletes"]["students"].as_u64().unwrap(),
            n("students_removed"),
            "{file}"
        );
        // A class move changes the enrollment, never the student.
        assert_eq!(
            report["updated"]["students"].as_u64().unwrap(),
            n("students_renamed"),
            "{file}"
        );
        if format != "oneroster-json" {
            assert_eq!(
                report["updated"]["enrollments"].as_u64().unwrap(),
                n("students_moved_class"),
                "{file}: {report}"
            );
        }
        assert_eq!(report["verdict"], "pass", "{file}");
    }
}

#[test]
fn an_export_that_drops_most_students_is_held() {
    let report = diff(
        &testdata("clean/v2/elevliste.csv"),
        &testdata("clean/v3-mass-delete/elevliste.csv"),
    );
    assert_eq!(truth("clean")["delta_v2_v3"]["must_hold"], true);
    assert_eq!(report["verdict"], "hold", "{report}");
    assert_eq!(
        report["deletes"]["students"],
        truth("clean")["delta_v2_v3"]["students_removed"]
    );
    assert!(report["reasons"][0]
        .as_str()
        .unwrap()
        .contains("students would be deleted"));
}

#[test]
fn the_same_export_twice_is_an_empty_delta() {
    for (file, _) in FORMATS {
        let path = testdata("clean").join(file);
        let report = diff(&path, &path);
        for kind in ["upserts", "deletes"] {
            for entity in ["schools", "students", "groups", "enrollments"] {
                assert_eq!(report[kind][entity], 0, "{file} {kind} {entity}");
            }
        }
    }
}

/// Runs `check` on a file that cannot be read and returns its message.
fn unreadable(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let output = agent(&["check", path.to_str().unwrap()]);
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{name}: {message}");
    assert!(
        message.contains(name),
        "the message names the file: {message}"
    );
    message
}

#[test]
fn a_missing_required_column_names_file_line_and_field() {
    let message = unreadable(
        "elevliste.csv",
        "Skolenummer;Klasse;Etternavn;Fornavn\n46505;1A;Nilsen;Oskar\n".as_bytes(),
    );
    assert!(message.contains(":1: field `Fødselsnummer`"), "{message}");
}

#[test]
fn a_comma_separated_file_is_refused_with_its_delimiter_named() {
    let text = std::fs::read_to_string(testdata("clean/elevliste.csv")).unwrap();
    let message = unreadable("elevliste.csv", text.replace(';', ",").as_bytes());
    assert!(message.contains(":1: field `Fylkesnummer,"), "{message}");
    assert!(message.contains("commas"), "{message}");
}

#[test]
fn a_ten_megabyte_line_is_refused_with_its_line() {
    let mut text = std::fs::read_to_string(testdata("clean/elevliste.csv"))
        .unwrap()
        .into_bytes();
    text.extend(std::iter::repeat_n(b'x', 10 << 20));
    text.push(b'\n');
    let message = unreadable("elevliste.csv", &text);
    assert!(message.contains(":62:"), "{message}");
    assert!(message.contains("longer than"), "{message}");
}

#[test]
fn a_file_cut_off_inside_a_row_is_refused() {
    let text = std::fs::read(testdata("clean/elevliste.csv")).unwrap();
    let message = unreadable("elevliste.csv", &text[..text.len() - 40]);
    assert!(message.contains(":61: field `"), "{message}");
    assert!(message.contains("cut off"), "{message}");
}

#[test]
fn truncated_xml_and_json_are_refused() {
    let xml = std::fs::read(testdata("clean/ims-enterprise.xml")).unwrap();
    let message = unreadable("ims-enterprise.xml", &xml[..xml.len() / 2]);
    assert!(message.contains("ims-enterprise"), "{message}");
    let json = std::fs::read(testdata("clean/users.json")).unwrap();
    unreadable("users.json", &json[..json.len() / 2]);
}

#[test]
fn arbitrary_bytes_are_refused_without_a_panic() {
    let mut seed = 0x1234_5678_9abc_def0_u64;
    for round in 0..20 {
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("noise-{round}.csv"));
        std::fs::write(&path, &bytes).unwrap();
        let output = agent(&["check", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(output.status.code(), Some(2), "{stderr}");
    }
}

#[test]
fn both_spellings_of_the_oneroster_formats_are_accepted_and_one_is_printed() {
    let folder = testdata("clean/oneroster");
    let users = testdata("clean/users.json");
    for (path, names, printed) in [
        (
            &folder,
            ["oneroster-csv", "one-roster-csv"],
            "oneroster-csv",
        ),
        (
            &users,
            ["oneroster-json", "one-roster-json"],
            "oneroster-json",
        ),
    ] {
        for name in names {
            let output = agent(&["check", "--json", "--format", name, path.to_str().unwrap()]);
            assert_eq!(output.status.code(), Some(0), "--format {name}: {output:?}");
            assert_eq!(json(&output)["format"], printed, "--format {name}");
            let output = check_configured(&format!("format = \"{name}\"\n"), path);
            assert_eq!(output.status.code(), Some(0), "format = {name}: {output:?}");
            assert_eq!(json(&output)["format"], printed, "format = {name}");
        }
    }
}

#[test]
fn check_lists_the_schools_it_read_with_their_ids() {
    let (code, report) = check(&testdata("pifu-ims/udir-eksempel.xml"));
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["schools"],
        serde_json::json!([{
            "name": "Måneflekken skole",
            "skolenummer": "5234",
            "organisasjonsnummer": "333000333",
            "kommunenummer": "4601",
            "fylkesnummer": "46",
        }])
    );
    let (_, report) = check(&testdata("clean/oneroster"));
    assert_eq!(report["schools"][0]["skolenummer"], "46505");
    assert_eq!(report["schools"][0]["organisasjonsnummer"], Value::Null);

    let path = testdata("pifu-ims/udir-eksempel.xml");
    let output = agent(&["check", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("school Måneflekken skole: skolenummer 5234, organisasjonsnummer 333000333, kommunenummer 4601, fylkesnummer 46"),
        "{text}"
    );
}

#[test]
fn an_unreadable_export_with_json_prints_the_error_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    std::fs::write(
        &path,
        "Skolenummer;Klasse;Etternavn;Fornavn\n46505;1A;Nilsen;Oskar\n",
    )
    .unwrap();
    let output = agent(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let report = json(&output);
    assert_eq!(report["line"], 1, "{report}");
    assert_eq!(report["field"], "Fødselsnummer", "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("elevliste.csv"),
        "{report}"
    );
}

#[test]
fn a_crlf_elevliste_with_a_short_row_and_no_final_newline_is_read() {
    let text = std::fs::read_to_string(testdata("clean/elevliste.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let width = lines[0].split(';').count();
    // Row 3 loses its last field, as exports that drop trailing empty fields write it.
    let short: Vec<&str> = lines[2].split(';').take(width - 1).collect();
    lines[2] = short.join(";");
    let crlf = lines.join("\r\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    std::fs::write(&path, crlf).unwrap();
    let (code, report) = check(&path);
    assert_ne!(code, 2, "{report}");
    assert_eq!(codes(&report).get("short_row"), Some(&1), "{report}");
    assert_eq!(report["counts"]["students"], truth("clean")["students"]);
}

#[test]
fn a_pupil_whose_pifu_id_changed_is_renamed_in_the_diff_not_deleted() {
    let after = testdata("pifu-ims/udir-eksempel.xml");
    let before = std::fs::read_to_string(&after)
        .unwrap()
        .replace("global_ID_01236", "Måne_personid_1236")
        .replace(" sourcedidtype=\"Old\"", "")
        .replace(" sourcedidtype=\"New\"", "");
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("before.xml");
    std::fs::write(&old, before).unwrap();
    let report = diff(&old, &after);
    assert_eq!(report["renamed"]["students"], 1, "{report}");
    assert_eq!(report["added"]["students"], 0, "{report}");
    assert_eq!(report["renamed"]["enrollments"], 1, "{report}");
    assert_eq!(report["verdict"], "pass", "{report}");
}

#[test]
fn a_class_column_renamed_to_an_unknown_name_is_warned_and_the_diff_is_held() {
    let old = testdata("clean/elevliste.csv");
    let text = std::fs::read_to_string(&old).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("elevliste.csv");
    std::fs::write(&new, text.replacen(";Klasse;", ";Klassebetegnelse;", 1)).unwrap();
    let (code, report) = check(&new);
    assert_eq!(code, 0, "{report}");
    assert_eq!(codes(&report).get("unknown_column"), Some(&1), "{report}");
    assert!(
        report["deviations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("`Klassebetegnelse`"),
        "{report}"
    );
    let report = diff(&old, &new);
    assert_eq!(report["verdict"], "hold", "{report}");
    assert!(
        report["reasons"][0].as_str().unwrap().contains("`Klasse`"),
        "{report}"
    );

    // Klassenavn is a name another school system uses for the same column.
    std::fs::write(&new, text.replacen(";Klasse;", ";Klassenavn;", 1)).unwrap();
    let (_, report) = check(&new);
    assert!(codes(&report).is_empty(), "{report}");
    assert_eq!(diff(&old, &new)["verdict"], "pass");
}

/// An elevliste of `rows` pupils whose national ids all fail their control digits (an
/// `invalid_national_id` error each) and who all lack a surname (`missing_required`).
fn faulty_rows(rows: usize) -> String {
    let mut text = String::from("Skolenummer;Klasse;Fødselsnummer;Etternavn;Fornavn\n");
    for row in 0..rows {
        text.push_str(&format!("46505;1A;{:011};;Elev{row}\n", 1_000_000 + row));
    }
    text
}

#[test]
fn check_counts_100000_faults_exactly_keeps_100_rows_of_each_and_says_how_many_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    std::fs::write(&path, faulty_rows(100_000)).unwrap();
    let (code, report) = check(&path);
    assert_eq!(code, 1);
    let counts: BTreeMap<String, u64> = report["deviation_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts["invalid_national_id"], 100_000, "{counts:?}");
    assert_eq!(counts["missing_required"], 100_000, "{counts:?}");
    let listed = codes(&report);
    assert!(listed.values().all(|&n| n <= 100), "{listed:?}");
    let total: u64 = counts.values().sum();
    let kept: u64 = listed.values().sum();
    assert_eq!(report["deviations_omitted"], total - kept);
    assert!(total - kept >= 199_800, "{total} counted, {kept} listed");

    let output = agent(&["check", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("200000 errors and 0 warnings"), "{text}");
    assert!(text.contains("more not listed"), "{text}");
}

#[test]
fn check_all_lists_every_deviation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    std::fs::write(&path, faulty_rows(300)).unwrap();
    let output = agent(&["check", "--json", "--all", path.to_str().unwrap()]);
    let report = json(&output);
    assert_eq!(codes(&report)["invalid_national_id"], 300);
    assert_eq!(report["deviations_omitted"], 0);
}

/// Runs `check` on `path` and watches the child's peak resident memory (`VmHWM`, which only
/// grows) until it exits; killed after two minutes. The last value read is at most a few
/// milliseconds older than the exit.
fn check_peak_rss_kib(path: &Path) -> (Option<i32>, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .args(["check", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the agent binary runs");
    let status_file = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut peak = 0;
    loop {
        if let Some(high) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        }) {
            peak = peak.max(high);
        }
        if let Some(status) = child.try_wait().expect("waiting for check") {
            return (status.code(), peak);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check ran for two minutes; peak so far {peak} KiB");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn fifty_megabytes_of_blank_lines_are_read_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    let mut text = String::from(
        "Skolenummer;Klasse;Fødselsnummer;Etternavn;Fornavn\n46505;1A;;Nilsen;Oskar\n",
    );
    text.push_str(&"\n".repeat(50 << 20));
    text.push_str("46505;1A;;Berg;Kari\n");
    std::fs::write(&path, text).unwrap();
    let (code, peak_kib) = check_peak_rss_kib(&path);
    assert!(code.is_some(), "check ended by a signal");
    assert!(peak_kib > 0, "the child's memory was read");
    // A newline queued per blank line cost 8 bytes each: 400 MiB here.
    assert!(peak_kib < 96 * 1024, "check peaked at {peak_kib} KiB");
}

#[test]
fn an_export_over_the_read_budget_is_refused_naming_its_line_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elevliste.csv");
    let mut text = String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
    for row in 0..20_000 {
        text.push_str(&format!("46505;1A;elev{row};;Nordmann;Kari\n"));
    }
    std::fs::write(&path, text).unwrap();
    let output = check_configured("read_budget_mib = 1\n", &path);
    assert_eq!(output.status.code(), Some(2));
    let report = json(&output);
    assert!(report["line"].as_u64().is_some(), "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("read_budget_mib"), "{reason}");

    // The default budget reads it.
    let (code, report) = check(&path);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["students"], 20_000);
}

/// The exit codes of packaging/README.md ("Exit codes"), the same in all three binaries.
mod exit {
    pub(super) const OK: i32 = 0;
    pub(super) const FAILURE: i32 = 1;
    pub(super) const CONFIG: i32 = 3;
    pub(super) const UNAVAILABLE: i32 = 4;
    pub(super) const NOT_ENROLLED: i32 = 5;
    pub(super) const HOLDING: i32 = 6;
    pub(super) const NOT_RUNNING: i32 = 7;
}

/// `skolebro-agent status` on a state folder holding `status` as its `status.json` (none if
/// `None`), chosen by `SKOLEBRO_STATE_DIR`, with `args` after `status`.
fn status_of(status: Option<Value>, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    if let Some(status) = status {
        std::fs::write(dir.path().join("status.json"), status.to_string()).unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .arg("status")
        .args(args)
        .env("SKOLEBRO_STATE_DIR", dir.path())
        .env_remove("SKOLEBRO_AGENT_CONFIG")
        .output()
        .expect("the agent binary runs")
}

/// A status.json in `state`, written by a running agent (this test's own process id).
fn running(state: &str) -> Value {
    serde_json::json!({
        "state": state,
        "pid": std::process::id(),
        "updated_unix_ms": 1_764_000_000_000u64,
    })
}

#[test]
fn status_exits_with_the_code_of_each_state() {
    let cases = [
        ("healthy", exit::OK),
        ("holding", exit::HOLDING),
        ("central_unreachable", exit::UNAVAILABLE),
        ("not_provisioned", exit::NOT_ENROLLED),
        ("revoked", exit::NOT_ENROLLED),
        ("error", exit::FAILURE),
    ];
    for (state, code) in cases {
        let out = status_of(Some(running(state)), &[]);
        assert_eq!(out.status.code(), Some(code), "{state}");
        let out = status_of(Some(running(state)), &["--json"]);
        assert_eq!(out.status.code(), Some(code), "{state} --json");
        assert_eq!(json(&out)["exit_code"], code, "{state} --json");
    }
    let mut stopped = running("healthy");
    stopped["pid"] = 0.into();
    let out = status_of(Some(stopped), &[]);
    assert_eq!(out.status.code(), Some(exit::NOT_RUNNING));
    let out = status_of(None, &[]);
    assert_eq!(out.status.code(), Some(exit::NOT_RUNNING));
}

#[test]
fn status_after_a_reject_does_not_say_sent_and_acknowledged() {
    let mut status = running("healthy");
    status["last_export_unix_ms"] = 1_764_000_000_000u64.into();
    status["last_ack_unix_ms"] = 1_763_000_000_000u64.into();
    status["last_outcome"] = "held delta rejected by an operator".into();
    let out = status_of(Some(status), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::OK), "{text}");
    assert!(!text.contains("acknowledged"), "{text}");
    assert!(text.contains("rejected at central"), "{text}");
}

#[test]
fn status_does_not_send_school_it_to_check_a_file_already_removed() {
    let mut status = running("healthy");
    status["last_export_file"] = "elevliste.csv".into();
    status["deviations"] = serde_json::json!({"errors": 2, "warnings": 0});
    status["deviation_groups"] = serde_json::json!([
        {"code": "invalid_national_id", "severity": "error", "count": 2, "rows": []}
    ]);
    let out = status_of(Some(status), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 invalid_national_id"), "{text}");
    assert!(text.contains("was removed"), "{text}");
}

#[test]
fn a_missing_config_is_a_config_error_said_once_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("agent.toml");
    for out in [
        agent(&["--config", missing.to_str().unwrap(), "status"]),
        Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
            .arg("status")
            .env("SKOLEBRO_AGENT_CONFIG", &missing)
            .output()
            .unwrap(),
    ] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit::CONFIG), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
        assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    }
}

#[test]
fn run_without_an_identity_file_names_the_setting_and_its_resolved_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\nstick_roots = []\n\
             [central]\nurl = \"https://127.0.0.1:9\"\nca = \"ca.pem\"\nsealing_key = \"{}\"\n\
             [identity]\ndevice = \"pi-1\"\nsite = \"skole-1\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             signing_key = \"signing.key\"\nsite_secret = \"site.secret\"\n",
            "11".repeat(32)
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run did not stop on a missing key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(exit::CONFIG), "{stderr}");
    let resolved = dir.path().join("signing.key");
    assert!(stderr.contains("identity.signing_key"), "{stderr}");
    assert!(stderr.contains(resolved.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour in a pipe: {stderr}");
}

#[test]
fn run_logs_one_json_object_a_line_with_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "state_dir = \"state\"\nstick_roots = [\"sticks\"]\nstick_key = \"stick.pub\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("stick.pub"), "22".repeat(32)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waiting for a stick writes its status; then stop it as systemd does.
    let status_file = dir.path().join("state/status.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !status_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(
        status_file.exists(),
        "the agent never wrote its status: {log}"
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let waiting = lines
        .iter()
        .find(|line| line["fields"]["message"] == "not provisioned; waiting for a config stick")
        .unwrap_or_else(|| panic!("{log}"));
    let roots = waiting["fields"]["roots"].as_str().unwrap();
    assert!(roots.ends_with("sticks") && !roots.contains('['), "{roots}");
}

#[test]
fn a_stick_root_that_is_itself_the_stick_is_named_instead_of_waited_on_in_silence() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The user listed the stick's own mount point instead of the folder it is mounted in.
    let stick = d.join("skolebro-stick");
    std::fs::create_dir_all(stick.join("SKOLEBRO")).unwrap();
    std::fs::write(stick.join("SKOLEBRO").join("BUNDLE.SKB"), b"bundle").unwrap();
    let config = d.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\nstick_roots = [\"{stick}\"]\nstick_key = \"{key}\"\n\
             clock_synced_file = \"{synced}\"\n",
            state = d.join("state").display(),
            stick = stick.display(),
            key = d.join("stick.pub").display(),
            synced = d.join("not-synced").display(),
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the agent starts");
    let started = std::time::Instant::now();
    let said = loop {
        let status = agent(&["status", "--config", config.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if text.contains("holds SKOLEBRO/ itself") || started.elapsed().as_secs() > 30 {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    daemon.kill().unwrap();
    let output = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let parent = d.display().to_string();
    assert!(
        said.contains(&format!("list {parent} in stick_roots")),
        "status: {said}"
    );
    assert!(log.contains("holds SKOLEBRO/ itself"), "log: {log}");
}
