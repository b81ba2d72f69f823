//! What the end-to-end tests in `tests/tests/` share: the built binaries, child processes that
//! die with their test, free loopback ports, plain HTTP to central's operator listener with
//! an operator API token made as operations make one, and
//! whether central holds a roster (compared as in [`crate::expected`]). The roster a test
//! expects comes from the generator's ground truth ([`crate::rostergen::Generated::truth`]),
//! never from reading the export with the code under test.
//!
//! The binaries are built once per test run (`cargo build --bins -p skolebro-agent -p
//! skolebro-central -p skolebro-provisioning`, dev profile, so the agent reads
//! `SKOLEBRO_TEST_CLOCK`). Tests run one at a time ([`one_at_a_time`]): each starts several
//! processes, and the CI machines have two cores.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use skolebro_protocol::Roster;

use crate::expected::{counts_of, same};

/// How long central may take to hold an export (or a process to come up) before a test
/// fails. Generous: a loaded two-core CI machine running debug builds is slow.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// Between two polls.
pub const POLL: Duration = Duration::from_millis(100);

/// The built binaries.
pub struct Binaries {
    pub agent: PathBuf,
    pub central: PathBuf,
    /// `skolebro-provision`, the operations CLI.
    pub provision: PathBuf,
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// Whether [`binaries`] builds release binaries rather than debug ones.
static RELEASE_BUILDS: AtomicBool = AtomicBool::new(false);

/// Makes [`binaries`] build and name the release binaries: a benchmark that starts the real
/// processes measures what ships, not a debug build. Tests keep the debug builds, which
/// `cargo test` has mostly built already. Must come before the first [`binaries`] call.
pub fn use_release_builds() {
    RELEASE_BUILDS.store(true, Ordering::Relaxed);
}

/// Builds the binaries once per test run and names them.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let root = workspace_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = RELEASE_BUILDS.load(Ordering::Relaxed);
        let started = Instant::now();
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--bins",
                "-p",
                "skolebro-agent",
                "-p",
                "skolebro-central",
                "-p",
                "skolebro-provisioning",
            ])
            .args(release.then_some("--release"))
            .status()
            .expect("cannot run cargo build");
        assert!(status.success(), "building the binaries failed: {status}");
        println!(
            "built the binaries in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| root.join(dir))
            .unwrap_or_else(|| root.join("target"));
        let built = target.join(if release { "release" } else { "debug" });
        let binaries = Binaries {
            agent: built.join("skolebro-agent"),
            central: built.join("skolebro-central"),
            provision: built.join("skolebro-provision"),
        };
        for binary in [&binaries.agent, &binaries.central, &binaries.provision] {
            assert!(binary.is_file(), "{} was not built", binary.display());
        }
        binaries
    })
}

/// Waits for `child` at most [`PATIENCE`], killing it after that. Its output is read once
/// it exited, so it must fit in a pipe (64 KiB): for short commands.
pub fn wait_bounded(mut child: Child, what: &str) -> std::process::Output {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > PATIENCE => {
                let _ = child.kill();
                panic!("{what} did not finish within {PATIENCE:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    child.wait_with_output().expect("the output of a child")
}

/// One test at a time: each runs several processes, and a kill at a "random moment" or a
/// deadline means little on an overloaded machine.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
}

/// A child process that is SIGKILLed (and reaped) when dropped, so none outlives its test.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Process {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown code runs, as when the power goes.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The operator API client every harness central has a token for: its changes are audited
/// as `api:harness`.
pub const OPERATOR_CLIENT: &str = "harness";

/// The operator API tokens of the centrals this process started, by their operator
/// listener's address: [`http_request`] sends the one of the address it calls.
static ADMIN_TOKENS: Mutex<Vec<(SocketAddr, String)>> = Mutex::new(Vec::new());

/// Makes [`http_request`] send `token` to the operator listener at `admin` from now on: the
/// token of a central this process did not start with [`start_central`] (the demo's).
pub fn use_admin_token(admin: SocketAddr, token: &str) {
    let mut tokens = ADMIN_TOKENS.lock();
    tokens.retain(|(addr, _)| *addr != admin);
    tokens.push((admin, token.to_owned()));
}

/// Where [`start_central`] keeps the operator API token of the central in `dir`, for
/// `skolebro-provision --admin-token-file`.
pub fn admin_token_file(dir: &Path) -> PathBuf {
    dir.join("admin.token")
}

/// Runs `skolebro-provision ARGS` in `dir` as an operator's shell would: with the operator
/// API token of the central in `dir` in `SKOLEBRO_ADMIN_TOKEN`, once it has one (`init` needs
/// none).
pub fn provision(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(&binaries().provision);
    if let Ok(token) = std::fs::read_to_string(admin_token_file(dir)) {
        command.env("SKOLEBRO_ADMIN_TOKEN", token.trim());
    }
    command
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running skolebro-provision")
}

/// [`provision`], which must succeed; its stdout.
pub fn provision_ok(dir: &Path, args: &[&str]) -> String {
    let output = provision(dir, args);
    assert!(
        output.status.success(),
        "skolebro-provision {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The operator API token of the central in `dir`: the one in [`admin_token_file`], or a
/// new one made with `skolebro-central operator-token create` (as operations make one) and
/// written there, mode 0600, for a central started for the first time.
pub fn admin_token(dir: &Path, config: &Path) -> String {
    let file = admin_token_file(dir);
    if let Ok(token) = std::fs::read_to_string(&file) {
        return token.trim().to_owned();
    }
    let output = Command::new(&binaries().central)
        .current_dir(dir)
        .args(["operator-token", "create", "--config"])
        .arg(config)
        .arg(OPERATOR_CLIENT)
        .output()
        .expect("running skolebro-central operator-token create");
    assert!(
        output.status.success(),
        "operator-token create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("a token")
        .trim()
        .to_owned();
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .expect("the token file");
        writeln!(out, "{token}").expect("the token is written");
    }
    token
}

/// Starts `skolebro-central serve --config <config>` in `dir` (log: `dir/central.log`) and
/// waits until its operator listener at `admin` answers, with the operator API token of
/// [`admin_token`], which [`http_request`] then sends to `admin`.
pub fn start_central(dir: &Path, config: &Path, admin: SocketAddr) -> Process {
    use_admin_token(admin, &admin_token(dir, config));
    let mut command = Command::new(&binaries().central);
    command
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .arg("serve")
        .arg("--config")
        .arg(config);
    let mut central = Process::spawn(&mut command, &dir.join("central.log"));
    let started = Instant::now();
    while !matches!(http_get(admin, "/admin/devices"), Ok((200, _))) {
        assert!(central.is_running(), "central exited on its own");
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for central's operator listener"
        );
        std::thread::sleep(POLL);
    }
    central
}

/// The `central.toml` that `skolebro-provision init` wrote (`written`), moved from its
/// documented ports to a test's own, so tests can run side by side (the web interface, which
/// these tests do not visit, to any free port).
pub fn on_ports(written: &str, device_port: u16, admin_port: u16) -> String {
    written
        .replace(
            "ui_listen = \"127.0.0.1:8082\"",
            "ui_listen = \"127.0.0.1:0\"",
        )
        .replace(
            "listen = \"127.0.0.1:8443\"",
            &format!("listen = \"127.0.0.1:{device_port}\""),
        )
        .replace(
            "admin_listen = \"127.0.0.1:8080\"",
            &format!("admin_listen = \"127.0.0.1:{admin_port}\""),
        )
}

/// Two free loopback ports, distinct (both are held until both are known).
pub fn two_free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A loopback port free at the time of asking, for a process that is told its port in a
/// configuration file.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Drops a PostgreSQL schema a test or benchmark made for itself, with everything in it.
pub async fn drop_postgres_schema(
    conninfo: &str,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
}

pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One `GET` over HTTP/1.1 with `Connection: close`: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_request(addr, "GET", path, None)
}

/// `POST path` with a JSON body on central's operator listener: status and body.
pub fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &Value,
) -> std::io::Result<(u16, Vec<u8>)> {
    http_request(addr, "POST", path, Some(body.to_string().as_bytes()))
}

/// One request over HTTP/1.1 with `Connection: close` (a body is sent as JSON): status and
/// body. To a central [`start_central`] started, with its operator API token.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let content = match body {
        Some(body) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        None => String::new(),
    };
    let authorization = ADMIN_TOKENS
        .lock()
        .iter()
        .find(|(admin, _)| *admin == addr)
        .map(|(_, token)| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{authorization}{content}Connection: close\r\n\r\n"
    )?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let body = raw[end + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(&body).ok_or_else(|| bad("broken chunked body"))?
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `GET path` on central's operator listener as JSON, if it answers 200.
pub fn get_json(admin: SocketAddr, path: &str) -> Option<Value> {
    match http_get(admin, path) {
        Ok((200, body)) => Some(serde_json::from_slice(&body).expect("central answers JSON")),
        _ => None,
    }
}

/// Central's current roster of `site` (`GET /v1/sites/{site}/roster{query}`).
pub fn roster(admin: SocketAddr, site: &str, query: &str) -> Roster {
    let path = format!("/v1/sites/{site}/roster{query}");
    let (status, body) = http_get(admin, &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("a roster as JSON")
}

/// Whether central's current roster of `site` equals `expected`: counts first (cheap), the
/// whole roster once they match. `None` when central does not answer.
pub fn central_holds(admin: SocketAddr, site: &str, expected: &Roster) -> Option<bool> {
    let seen = get_json(admin, &format!("/v1/sites/{site}/counts"))?;
    let counts = counts_of(expected);
    let kinds = ["schools", "students", "groups", "enrollments"];
    Some(kinds.iter().all(|k| seen[k] == counts[k]) && same(&roster(admin, site, ""), expected))
}

/// Prints the last lines of the log `dir/log` to stderr (for a failed test).
pub fn print_log_tail(dir: &Path, log: &str) {
    let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(150)..];
    eprintln!(
        "----- {log} (last {} of {} lines) -----",
        tail.len(),
        lines.len()
    );
    for line in tail {
        eprintln!("{line}");
    }
}

/// Prints the named logs (`central.log`, `agent.log` in their folders) when the test that
/// holds it fails: keep one alive for the test's length. The processes die with their owners.
pub struct LogsOnFailure(pub Vec<(PathBuf, &'static str)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (dir, log) in &self.0 {
                print_log_tail(dir, log);
            }
        }
    }
}

/// The national ids of the students central holds for `site`.
pub fn national_ids(admin: SocketAddr, site: &str) -> std::collections::BTreeSet<String> {
    roster(admin, site, "")
        .students
        .iter()
        .filter_map(|s| s.national_id.as_ref().map(|id| id.as_str().to_owned()))
        .collect()
}

/// The names of the regular files directly in `dir` (none if it cannot be read).
pub fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
