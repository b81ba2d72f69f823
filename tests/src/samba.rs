//! A real SMB server for the end-to-end tests of the SMB drop share and the SMB pull source:
//! Debian's `smbd`, started as the test's child on a loopback port with its own `smb.conf`,
//! passdb, lock, state and pid folders in a temp folder, serving one share `SKOLEBRO` to one
//! account over SMB3 with encryption required and no guest, as the agent's package sets it up
//! on a Pi (`packaging/samba/`). Writers are Samba's own `smbclient`, which speaks to it the way
//! a Windows PC or a SAS's export job does.
//!
//! The server is killed when its [`SmbServer`] is dropped, and every wait is bounded by
//! [`PATIENCE`]. Where `smbd` is not installed the tests say so and pass, except under
//! `CI=true`, where a missing `smbd` fails them (`.ci/run` installs it).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::appliance::{Agent, Cadence, Platform};
use crate::harness::{free_port, wait_bounded, Process, PATIENCE, POLL};

/// The share's name, as the package's `smb.conf` include names it.
pub const SHARE: &str = "SKOLEBRO";
/// The one account that may write to the share, unless the agent's username map names
/// another ([`SmbServer::start_with_passdb`]).
pub const ACCOUNT: &str = "skolebro";

const SMBD: &str = "/usr/sbin/smbd";

/// What the account may do on the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// The Pi's drop share: the account creates and renames files but cannot list the folder
    /// or read a file back (files are written as `nobody`, mode 0200, into a folder that
    /// grants others write and search only).
    WriteOnly,
    /// A school file server's export share, as the SAS's account and the pulling agent see
    /// it: list, read, write, delete.
    ReadWrite,
}

/// Whether this machine has IPv6 loopback (`::1`), for a file server reached by its IPv6
/// address; some containers have none.
pub fn ipv6_loopback() -> bool {
    TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)).is_ok()
}

/// Whether `smbd` and `smbclient` are installed. Without them a test prints why it did
/// nothing and returns, unless `CI=true`, where it fails: CI must run these tests.
pub fn available() -> bool {
    let found = Path::new(SMBD).is_file()
        && Command::new("smbclient")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "smbd or smbclient is missing under CI=true; .ci/run installs samba and smbclient"
        );
        eprintln!(
            "skipped: {SMBD} or smbclient is not installed (apt-get install samba smbclient)"
        );
    }
    found
}

/// A running `smbd` serving one share.
pub struct SmbServer {
    dir: PathBuf,
    config: PathBuf,
    addr: SocketAddr,
    account: String,
    password: String,
    process: Process,
}

impl SmbServer {
    /// Writes a configuration for a share of `share_path` in `dir` (made if missing), adds
    /// [`ACCOUNT`] with `password`, starts `smbd` on a free loopback port and waits until the
    /// port answers. Must run as root, as `smbd` does.
    pub fn start(dir: &Path, share_path: &Path, mode: ShareMode, password: &str) -> SmbServer {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        SmbServer::start_with(dir, share_path, mode, Passdb::Tdb(password), ip)
    }

    /// Like [`SmbServer::start`], but listening on `ip` only: `::1` for a file server the
    /// agent reaches by its IPv6 address ([`ipv6_loopback`] says whether it can).
    pub fn start_at(
        ip: IpAddr,
        dir: &Path,
        share_path: &Path,
        mode: ShareMode,
        password: &str,
    ) -> SmbServer {
        SmbServer::start_with(dir, share_path, mode, Passdb::Tdb(password), ip)
    }

    /// Like [`SmbServer::start`], but the account comes from files someone else writes (the
    /// agent, from the drop share's settings), as the package's include has them; `smbd`
    /// reads both at each sign-in: `passdb`, in Samba's `smbpasswd` format, holds the Unix
    /// user `root` and its hash, and `usermap`, the username map, maps the sign-in name onto
    /// `root`. The client helpers sign in as `account` with `password`.
    pub fn start_with_passdb(
        dir: &Path,
        share_path: &Path,
        mode: ShareMode,
        passdb: &Path,
        usermap: &Path,
        account: &str,
        password: &str,
    ) -> SmbServer {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut server =
            SmbServer::start_with(dir, share_path, mode, Passdb::File { passdb, usermap }, ip);
        account.clone_into(&mut server.account);
        password.clone_into(&mut server.password);
        server
    }

    fn start_with(
        dir: &Path,
        share_path: &Path,
        mode: ShareMode,
        passdb: Passdb,
        ip: IpAddr,
    ) -> SmbServer {
        for sub in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
            std::fs::create_dir_all(dir.join(sub)).expect("smbd folders");
        }
        std::fs::create_dir_all(share_path).expect("the share's folder");
        if mode == ShareMode::WriteOnly {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(share_path, std::fs::Permissions::from_mode(0o733))
                .expect("chmod the share's folder");
        }
        let port = free_port();
        let config = dir.join("smb.conf");
        // Samba's accounts are Unix users: the share's account is mapped onto root here (the
        // package creates a system user), and files are still written as `nobody`.
        let own_map = dir.join("users.map");
        let (backend, usermap) = match passdb {
            Passdb::Tdb(_) => (
                format!("tdbsam:{}/private/passdb.tdb", dir.display()),
                own_map.as_path(),
            ),
            Passdb::File { passdb, usermap } => {
                (format!("smbpasswd:{}", passdb.display()), usermap)
            }
        };
        let addr = SocketAddr::new(ip, port);
        let conf = smb_conf(dir, share_path, addr, mode, &backend, usermap);
        std::fs::write(&config, conf).expect("smb.conf");
        let password = match passdb {
            Passdb::Tdb(password) => password,
            Passdb::File { .. } => {
                return SmbServer {
                    dir: dir.to_owned(),
                    process: spawn_smbd(dir, &config, addr),
                    config,
                    addr,
                    account: String::new(),
                    password: String::new(),
                };
            }
        };
        std::fs::write(&own_map, format!("root = {ACCOUNT}\n")).expect("users.map");
        let mut add = Command::new("smbpasswd")
            .arg("-c")
            .arg(&config)
            .args(["-a", "-s", "root"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running smbpasswd");
        add.stdin
            .take()
            .expect("smbpasswd's stdin")
            .write_all(format!("{password}\n{password}\n").as_bytes())
            .expect("the password to smbpasswd");
        let added = wait_bounded(add, "smbpasswd");
        assert!(
            added.status.success(),
            "smbpasswd -a failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let process = spawn_smbd(dir, &config, addr);
        SmbServer {
            dir: dir.to_owned(),
            config,
            addr,
            account: ACCOUNT.to_owned(),
            password: password.to_owned(),
            process,
        }
    }

    /// Starts `smbd` again after [`SmbServer::stop`], on the same port, share and accounts:
    /// a file server that was down and is back.
    pub fn start_again(&mut self) {
        self.stop();
        self.process = spawn_smbd(&self.dir, &self.config, self.addr);
    }

    /// Where `smbd` listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Makes the client helpers sign in as `account` from now on: the name the drop share's
    /// settings give changed.
    pub fn sign_in_as(&mut self, account: &str) {
        account.clone_into(&mut self.account);
    }

    /// Runs `smbclient` with `commands` (`-c`) as the account with `password`, SMB3 with
    /// encryption required; bounded by [`PATIENCE`].
    pub fn client_as(&self, password: &str, commands: &str) -> Output {
        let child = self
            .client_command(password, commands)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running smbclient");
        wait_bounded(child, "smbclient")
    }

    /// [`SmbServer::client_as`] with the right password.
    pub fn client(&self, commands: &str) -> Output {
        self.client_as(&self.password, commands)
    }

    /// `put local remote`, asserting it worked: one write in place.
    pub fn put(&self, local: &Path, remote: &str) {
        let output = self.client(&format!("put \"{}\" \"{remote}\"", local.display()));
        assert!(
            output.status.success(),
            "smbclient put {remote}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `put` under a temporary name, then `rename`, in one session: how Windows programs
    /// that save safely write.
    pub fn put_then_rename(&self, local: &Path, temporary: &str, remote: &str) {
        let output = self.client(&format!(
            "put \"{}\" \"{temporary}\"; rename \"{temporary}\" \"{remote}\"",
            local.display()
        ));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && !said.contains("NT_STATUS_"),
            "smbclient put {temporary} and rename to {remote}: {said}"
        );
    }

    /// A writer that is still running: `smbclient` putting `bytes` to `remote`, fed through a
    /// FIFO (made here in the server's folder) by a thread of its own, and never told the
    /// end: it holds the file open and waits for more until [`StreamingPut::disconnect`].
    /// Its output goes to `smbd`'s folder (`<remote>.smbclient.log`).
    pub fn start_streaming_put(&self, remote: &str, bytes: Vec<u8>) -> StreamingPut {
        let fifo = self.dir.join(format!("{remote}.fifo"));
        let made = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("running mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        let log = std::fs::File::create(self.dir.join(format!("{remote}.smbclient.log")))
            .expect("smbclient's log");
        let client = self
            .client_command(
                &self.password,
                &format!("put \"{}\" \"{remote}\"", fifo.display()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("running smbclient");
        // Opening the FIFO waits for smbclient to open it, and writing waits for it to read:
        // both on the feeder's thread, which ends with an error once smbclient is killed.
        let feeder = std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo)?;
            pipe.write_all(&bytes)?;
            // Held open: smbclient must not see an end of file.
            std::thread::sleep(PATIENCE);
            Ok(())
        });
        StreamingPut {
            client: Some(client),
            feeder: Some(feeder),
        }
    }

    fn client_command(&self, password: &str, commands: &str) -> Command {
        let mut command = Command::new("smbclient");
        command
            .process_group(0)
            .arg(format!("//{}/{SHARE}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string()])
            .args(["-U", &format!("{}%{password}", self.account)])
            .args(["-m", "SMB3"])
            .arg("--option=client smb encrypt=required")
            .args(["-c", commands]);
        command
    }

    /// The last lines of `smbd.log`, for a failed test.
    pub fn print_log_tail(&self) {
        crate::harness::print_log_tail(&self.dir, "smbd.log");
    }

    /// Stops `smbd` and its per-connection children (its process group): SIGTERM first,
    /// SIGKILL to the group if the parent is still there after five seconds.
    pub fn stop(&mut self) {
        let group = format!("-{}", self.process.pid());
        if self.process.is_running() {
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let started = Instant::now();
            while self.process.is_running() && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(POLL);
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        self.process.kill();
    }
}

impl Drop for SmbServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tail();
        }
        self.stop();
    }
}

/// `smbclient` sending a file that never ends; killed when dropped.
pub struct StreamingPut {
    client: Option<Child>,
    feeder: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl StreamingPut {
    /// Kills the writer mid-file (SIGKILL: its connection drops without an SMB close).
    pub fn disconnect(&mut self) {
        if let Some(mut client) = self.client.take() {
            let _ = client.kill();
            let _ = client.wait();
        }
        // The feeder's write fails (broken pipe) or it was already sleeping; either way it
        // is not waited for, so a stuck FIFO cannot hang the test.
        drop(self.feeder.take());
    }
}

impl Drop for StreamingPut {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Starts `smbd` with `config` and waits until it listens on `addr`.
fn spawn_smbd(dir: &Path, config: &Path, addr: SocketAddr) -> Process {
    let mut command = Command::new(SMBD);
    // A process group of its own: in the test's group, a writer killed mid-file was seen
    // to bring SIGTERM to the test runner and cargo too (smbd signalling its group).
    command
        .process_group(0)
        .arg("--foreground")
        .arg("--no-process-group")
        .arg(format!("--configfile={}", config.display()))
        .arg("--debug-stdout");
    let mut process = Process::spawn(&mut command, &dir.join("smbd.log"));
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            process.is_running(),
            "smbd exited; see {}/smbd.log",
            dir.display()
        );
        assert!(
            started.elapsed() < PATIENCE,
            "smbd did not listen on {addr} within {PATIENCE:?}"
        );
        std::thread::sleep(POLL);
    }
    process
}

/// Where `smbd` finds the account.
enum Passdb<'a> {
    /// Its own passdb, the account added with `smbpasswd` and this password, and its own
    /// username map.
    Tdb(&'a str),
    /// A file in `smbpasswd` format and a username map that someone else writes.
    File { passdb: &'a Path, usermap: &'a Path },
}

/// The test server's `smb.conf`: what `packaging/samba/skolebro-drop-share.conf` sets for
/// the share, plus what a private server on a loopback port needs.
fn smb_conf(
    dir: &Path,
    share_path: &Path,
    addr: SocketAddr,
    mode: ShareMode,
    backend: &str,
    usermap: &Path,
) -> String {
    let d = dir.display();
    let access = match mode {
        ShareMode::WriteOnly => {
            "  force user = nobody\n  force group = nogroup\n  create mask = 0200\n  \
             force create mode = 0200\n  directory mask = 0\n"
        }
        ShareMode::ReadWrite => "  force user = root\n",
    };
    format!(
        r#"[global]
  netbios name = SKOLEBROTEST
  workgroup = WORKGROUP
  server role = standalone server
  interfaces = {ip}
  bind interfaces only = yes
  smb ports = {port}
  disable netbios = yes
  server min protocol = SMB3
  server smb encrypt = required
  map to guest = Never
  restrict anonymous = 2
  passdb backend = {backend}
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  ncalrpc dir = {d}/ncalrpc
  log level = 1
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  server services = smb
  username map = {usermap}

[{SHARE}]
  path = {share}
  valid users = root
  read only = no
  guest ok = no
  browseable = no
  case sensitive = yes
  preserve case = yes
  short preserve case = yes
{access}"#,
        share = share_path.display(),
        usermap = usermap.display(),
        ip = addr.ip(),
        port = addr.port(),
    )
}

/// An agent pulling from `smb`'s share folder `eksport` (`*.csv`, polled every second, a file
/// taken once stable for a second), its password in a 0600 file, with a stick from
/// `platform` waiting in its stick folder.
pub fn pulling_agent(dir: &Path, platform: &Platform, smb: &SmbServer, password: &str) -> Agent {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).expect("agent folder");
    let password_file = dir.join("share.password");
    std::fs::write(&password_file, format!("{password}\n")).expect("password file");
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600");
    let agent = Agent::new(
        dir,
        Cadence::BUSY,
        &format!(
            r#"stick_key = "{key}"
[source]
kind = "smb-share"
server = "127.0.0.1"
port = {port}
share = "{share}"
folder = "eksport"
pattern = "*.csv"
user = "{user}"
password_file = "share.password"
poll_seconds = 1
stable_seconds = 1
"#,
            key = platform.stick_key().display(),
            port = smb.addr().port(),
            share = SHARE,
            user = ACCOUNT,
        ),
    );
    platform.write_stick(&agent);
    agent
}
