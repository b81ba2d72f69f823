//! The README's first command, `skolebro-demo`, run as a real process: `--json` keeps stdout
//! pure JSON, a held export is explained, and `--serve` hands out credentials that work
//! against its real listeners until SIGTERM ends it cleanly and removes its folder. Each
//! run is bounded in time and killed if the test fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use skolebro_tests::harness::{http_request, use_admin_token};

/// How long one demo run may take before the test gives up on it (it takes a few seconds).
const PATIENCE: Duration = Duration::from_secs(50);

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/elevliste.csv");

/// A demo process, killed when the test ends before it did.
struct Demo {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skolebro-demo"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Demo {
            child,
            stdout: receiver,
            stderr,
        }
    }

    /// The next line on stdout, within the demo's patience.
    fn next_line(&self) -> Option<String> {
        self.stdout.recv_timeout(PATIENCE).ok()
    }

    /// Waits for the demo to exit: its status, everything else it wrote on stdout, and its
    /// stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the demo") {
                break status;
            }
            assert!(started.elapsed() < PATIENCE, "the demo did not end in time");
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines = std::mem::replace(&mut self.stdout, mpsc::channel().1)
            .iter()
            .collect();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .expect("stderr reader");
        (status, lines, stderr)
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The demo folder a JSON document names, to check and remove.
fn dir_of(document: &Value) -> PathBuf {
    PathBuf::from(
        document["dir"]
            .as_str()
            .expect("the document names the folder"),
    )
}

/// `http://127.0.0.1:PORT/rest` split into the address and `/rest`.
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    (host.parse().expect("a socket address"), path.to_owned())
}

/// `POST` of an OAuth2 client-credentials grant with the credentials in the form (both are
/// hex, so nothing needs escaping): status and body.
fn token_request(url: &str, id: &str, secret: &str) -> (u16, Value) {
    let (addr, path) = split_url(url);
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, json(body))
}

/// `GET url` with a bearer token: status and body.
fn get_with_token(url: &str, token: &str) -> (u16, Value) {
    let (addr, path) = split_url(url);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked answer: {head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, json(body))
}

#[test]
fn json_mode_prints_nothing_but_one_json_document_and_removes_the_folder() {
    let demo = Demo::start(&["--json"]);
    let (status, lines, stderr) = demo.finish();
    assert!(status.success(), "the demo failed: {stderr}");
    assert_eq!(lines.len(), 1, "stdout: {lines:?}");
    let document = json(&lines[0]);
    assert_eq!(document["equal"], true, "{document}");
    assert_eq!(document["counts"]["students"], 300, "{document}");
    assert!(document.get("dir").is_none(), "{document}");
    // The summary went to stderr, and no log line with it.
    assert!(
        stderr.contains("central's state equals the last export"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(" INFO "),
        "log lines in the summary: {stderr}"
    );
    let folder = stderr
        .lines()
        .find_map(|l| l.strip_prefix("skolebro demo in "))
        .expect("the summary names the folder");
    assert!(!Path::new(folder).exists(), "{folder} was not removed");
}

#[test]
fn a_held_export_is_explained_and_the_kept_folder_named_in_the_json() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(SAMPLE).unwrap();
    // The header and the first 150 of 300 students: half the school would be deleted.
    let half: String = sample.lines().take(151).map(|l| format!("{l}\n")).collect();
    let half_path = tmp.path().join("elevliste.half.csv");
    std::fs::write(&half_path, half).unwrap();
    let demo = Demo::start(&[
        "--json",
        "--keep",
        "--export",
        SAMPLE,
        "--export",
        half_path.to_str().unwrap(),
    ]);
    let (status, lines, stderr) = demo.finish();
    assert_eq!(lines.len(), 1, "stdout: {lines:?}");
    let document = json(&lines[0]);
    let dir = dir_of(&document);
    let kept = dir.join("central.db").is_file();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(kept, "--keep did not keep {}", dir.display());
    assert_eq!(document["equal"], false, "{document}");
    assert_eq!(document["counts"]["students"], 300, "{document}");
    assert_eq!(document["held"]["deletes"]["students"], 150, "{document}");
    assert!(
        stderr.contains("held by the safety filter: 150 of 300 students would be deleted"),
        "{stderr}"
    );
}

#[test]
fn serve_hands_out_working_credentials_and_ends_cleanly_on_sigterm() {
    let demo = Demo::start(&["--serve", "--json"]);
    let line = demo.next_line().expect("the demo printed its listeners");
    let served = json(&line);
    let text = |key: &str| {
        served[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {served}"))
            .to_owned()
    };
    let dir = dir_of(&served);
    assert!(dir.join("central.db").is_file());
    assert_eq!(served["equal"], true, "{served}");
    let consumer = text("consumer_url");
    assert!(consumer.ends_with("/ims/oneroster/v1p1"), "{consumer}");

    let (status, token) = token_request(
        &text("token_url"),
        &text("consumer_client_id"),
        &text("consumer_client_secret"),
    );
    assert_eq!(status, 200, "{token}");
    let token = token["access_token"].as_str().expect("a bearer token");
    let (status, users) = get_with_token(&format!("{consumer}/users?limit=1000"), token);
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["users"].as_array().map(Vec::len), Some(300));

    let (ui, _) = split_url(&text("ui_url"));
    let (status, page) = http_request(ui, "GET", "/login", None).expect("the login page");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("<form"));
    let (admin, _) = split_url(&text("admin_url"));
    let (status, _) = http_request(admin, "GET", "/admin/clients", None).expect("the operator API");
    assert_eq!(status, 401, "the operator API wants a token");
    use_admin_token(admin, &text("admin_token"));
    let (status, _) = http_request(admin, "GET", "/admin/clients", None).expect("the operator API");
    assert_eq!(status, 200);
    assert!(!text("ui_password").is_empty());

    demo.terminate();
    let (status, rest, stderr) = demo.finish();
    assert!(status.success(), "not a clean exit: {status}: {stderr}");
    assert!(rest.is_empty(), "more on stdout after the object: {rest:?}");
    assert!(!dir.exists(), "{} was not removed", dir.display());
}
