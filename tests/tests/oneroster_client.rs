//! Central's consumer API as a client from another ecosystem syncs from it: a running
//! `skolebro-demo --serve` is read by `tests/python/oneroster_client_sync.py` through the
//! generated Python OneRoster 1.1 client `oneroster_client` (PyPI
//! `strongmind-oneroster-client`, installed pinned by `.ci/run`): every collection, every
//! object by id, the lists under each kind of parent, and a sync of the users under a
//! filter that follows `Link: rel="next"` to the end. Under `CI=true` a missing library
//! fails the test; elsewhere it is skipped with the reason printed. Both processes are
//! bounded in time and killed if the test fails.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the demo may take to start, and the client to sync (a few seconds each; debug
/// builds on a loaded machine take longer).
const PATIENCE: Duration = Duration::from_secs(120);

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/python/oneroster_client_sync.py"
);

/// A child process killed when the test ends before it did.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether `python3` can import the client library; the reason when it cannot.
fn library() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import oneroster_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "python3 cannot import oneroster_client (pip install \
             strongmind-oneroster-client==2.0.5): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("python3 does not run: {error}")),
    }
}

#[test]
fn a_python_oneroster_client_reads_every_endpoint_and_syncs_a_filter_by_its_links() {
    if let Err(reason) = library() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "under CI the OneRoster client library must be installed: {reason}"
        );
        eprintln!("skipped: {reason}");
        return;
    }

    let mut demo = Command::new(env!("CARGO_BIN_EXE_skolebro-demo"))
        .args(["--serve", "--json"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = demo.stdout.take().expect("piped stdout");
    let mut demo = Killed(demo);
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let line = receiver
        .recv_timeout(PATIENCE)
        .expect("the demo printed its listeners");
    let served: Value = serde_json::from_str(&line).expect("one JSON object");
    let text = |key: &str| {
        served[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in the demo's object"))
            .to_owned()
    };

    let mut client = Killed(
        Command::new("python3")
            .arg(SCRIPT)
            .env("SKOLEBRO_CONSUMER_URL", text("consumer_url"))
            .env("SKOLEBRO_TOKEN_URL", text("token_url"))
            .env("SKOLEBRO_CLIENT_ID", text("consumer_client_id"))
            .env("SKOLEBRO_CLIENT_SECRET", text("consumer_client_secret"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 starts"),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.0.try_wait().expect("waiting for the client") {
            break status;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the Python client did not finish its sync in {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut pipe) = client.0.stdout.take() {
        pipe.read_to_string(&mut out).expect("the client's stdout");
    }
    if let Some(mut pipe) = client.0.stderr.take() {
        pipe.read_to_string(&mut err).expect("the client's stderr");
    }
    assert!(status.success(), "the Python client failed: {err}");
    let counts: Value = serde_json::from_str(out.trim()).expect("the client's counts");

    // The demo's county: 300 students at one school in 40 basisgrupper.
    assert_eq!(counts["lists"]["users"], 300, "{counts}");
    assert_eq!(counts["lists"]["enrollments"], 300, "{counts}");
    assert_eq!(counts["lists"]["classes"], 40, "{counts}");
    assert_eq!(counts["lists"]["orgs"], 1, "{counts}");
    assert_eq!(counts["lists"]["teachers"], 0, "{counts}");
    assert_eq!(counts["under"]["schools/{id}/students"], 300, "{counts}");
    let filtered = counts["filtered"].as_u64().expect("a count");
    let pages = counts["pages"].as_u64().expect("a count");
    assert!(
        (1..300).contains(&filtered) && pages == filtered.div_ceil(7),
        "the filtered sync read {filtered} users in {pages} pages of 7"
    );

    // SIGTERM, so the demo removes its folder as it does on Ctrl-C.
    let status = Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM failed");
    let started = Instant::now();
    while demo.0.try_wait().expect("waiting for the demo").is_none() {
        assert!(
            started.elapsed() < PATIENCE,
            "the demo did not end on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
