//! The SMB share source (`[source] kind = "smb-share"`): the first stage of the data flow
//! for a SAS that writes its export to a share on the school's file server rather than to
//! the Pi. This module knows the share and nothing of the daemon: it lists the export folder,
//! copies one file into a local folder, and deletes or moves a file on the share, each as one
//! run of Samba's `smbclient` (SMB3 only, encryption required, so every message is signed
//! and sealed). The daemon (`daemon::share_pull`) decides when: it waits until a file is
//! stable, copies it into the drop folder, where the watcher and the pipeline take it as if
//! it had been dropped there, and removes it from the share once central acknowledged it.
//!
//! Why a separate program and not a library: docs/ARCHITECTURE.md ("The SMB client"). The
//! password is handed to `smbclient` by the name of its file (`PASSWD_FILE`), so it never
//! passes through the agent's memory, a command line, a log, the status or an error: errors
//! carry the server's NT status code in words, never `smbclient`'s output as it stands. A
//! share the config stick gave ([`crate::share_source`]) comes with the account's NT hash
//! in that file instead of the password, and `smbclient` is told so (`--pw-nt-hash`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use skolebro_protocol::civil_time::days_from_civil;
use skolebro_protocol::pull_share::{
    DEFAULT_PATTERN, DEFAULT_POLL_SECONDS, DEFAULT_PORT, DEFAULT_STABLE_SECONDS,
};

/// What becomes of a pulled export on the share once central acknowledged it: one type for
/// `agent.toml`'s `after` and the config stick's, so both read the same texts.
pub use skolebro_protocol::AfterPull;

/// `[source] kind = "smb-share"`: the share the SAS writes its export to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSource {
    /// The file server's host name or address.
    pub server: String,
    /// The SMB port; 445 unless the server listens elsewhere.
    #[serde(default = "ShareSource::default_port")]
    pub port: u16,
    /// The share's name (`\\server\<share>`).
    pub share: String,
    /// The folder inside the share the SAS writes into (`/` or `\` between parts); the
    /// share's top when empty.
    #[serde(default)]
    pub folder: String,
    /// Which files are exports: `*` and `?` wildcards, matched case-insensitively, as
    /// Windows does. Temporary names (`*.tmp`, `*.part`, `~` at the end, hidden) never are.
    #[serde(default = "ShareSource::default_pattern")]
    pub pattern: String,
    /// The account the agent signs in as (only this account should read the folder).
    pub user: String,
    /// The account's domain or workgroup, when the server wants one.
    #[serde(default)]
    pub domain: Option<String>,
    /// File holding the account's password and nothing else; refused unless only its owner
    /// may read it (0600): whoever holds it reads every pupil of the school.
    pub password_file: PathBuf,
    /// Seconds between two looks at the share.
    #[serde(default = "ShareSource::default_poll_seconds")]
    pub poll_seconds: u64,
    /// A file is taken once its size and time stayed the same this long (a SAS writing in
    /// place); a file renamed into the folder is stable the same way.
    #[serde(default = "ShareSource::default_stable_seconds")]
    pub stable_seconds: u64,
    /// What becomes of an export on the share once central acknowledged it: `"delete"`, or
    /// `"move:<folder>"` (a folder of the share only the agent's account can read) where the
    /// county forbids deleting; the config stick can say the same (format 5).
    #[serde(default)]
    pub after: AfterPull,
    /// Seconds one `smbclient` run may take (a copy of the largest export included).
    #[serde(default = "ShareSource::default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The `smbclient` program (Debian's `smbclient` package).
    #[serde(default = "ShareSource::default_smbclient")]
    pub smbclient: PathBuf,
    /// Given by the config stick ([`crate::share_source`]), never by `agent.toml`: its
    /// password file holds the account's NT hash, which `smbclient` takes with
    /// `--pw-nt-hash` in place of the password.
    #[serde(skip)]
    pub from_stick: bool,
}

impl ShareSource {
    fn default_port() -> u16 {
        DEFAULT_PORT
    }
    fn default_pattern() -> String {
        DEFAULT_PATTERN.to_owned()
    }
    fn default_poll_seconds() -> u64 {
        u64::from(DEFAULT_POLL_SECONDS)
    }
    fn default_stable_seconds() -> u64 {
        u64::from(DEFAULT_STABLE_SECONDS)
    }
    pub(crate) fn default_timeout_seconds() -> u64 {
        600
    }
    pub(crate) fn default_smbclient() -> PathBuf {
        PathBuf::from("smbclient")
    }

    /// The share as `status.json` shows it: where, as whom, from the stick or `agent.toml`.
    pub fn shown(&self) -> crate::status::ShareSourceShown {
        crate::status::ShareSourceShown {
            server: self.server.clone(),
            share: self.share.clone(),
            folder: self.folder.clone(),
            user: self.user.clone(),
            after: self.after.clone(),
            from: if self.from_stick {
                "stick"
            } else {
                "agent.toml"
            }
            .to_owned(),
        }
    }

    /// Checks the settings before the daemon starts; the error names the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let plain = |key: &'static str, value: &str, empty_ok: bool| {
            if !empty_ok && value.trim().is_empty() {
                return Err((key, "must not be empty".to_owned()));
            }
            if !is_plain_name(value) {
                return Err((
                    key,
                    "must not hold `\"`, `;`, `%` or control characters".into(),
                ));
            }
            Ok(())
        };
        plain("source.server", &self.server, false)?;
        plain("source.share", &self.share, false)?;
        plain("source.folder", &self.folder, true)?;
        plain("source.user", &self.user, false)?;
        if let Some(domain) = &self.domain {
            plain("source.domain", domain, false)?;
        }
        if let AfterPull::Move(folder) = &self.after {
            plain("source.after", folder, false)?;
        }
        if self.after.stays_in(&self.folder) {
            return Err((
                "source.after",
                "must move exports out of the export folder, or they are pulled again".into(),
            ));
        }
        if self.port == 0 {
            return Err(("source.port", "must not be 0".into()));
        }
        if self.poll_seconds == 0 {
            return Err(("source.poll_seconds", "must be at least 1".into()));
        }
        if self.timeout_seconds == 0 {
            return Err(("source.timeout_seconds", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Whether `text` can be given to `smbclient` inside double quotes: its command line splits
/// at `;` whatever the quotes, and cannot quote a `"`; `%` would split a user name.
fn is_plain_name(text: &str) -> bool {
    !text
        .chars()
        .any(|c| matches!(c, '"' | ';' | '%') || c.is_control())
}

/// Whether a listed name is a single file name: the copy lands at `drop_dir/<name>`, so a
/// name with a path separator or a dot-dot from a broken or hostile file server must not
/// steer it out of the drop folder.
fn is_one_file_name(name: &str) -> bool {
    !name.contains(['/', '\\']) && name != "." && name != ".."
}

/// Why a step on the share failed. The messages name the server, share, file and what the
/// server answered; never the password or `smbclient`'s own output.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("password file {path}: {reason}")]
    Password { path: PathBuf, reason: String },
    #[error("cannot run {program}: {reason} (is the smbclient package installed?)")]
    Program { program: String, reason: String },
    #[error("share {unc}: {what}: {said}")]
    Refused {
        unc: String,
        what: String,
        said: String,
    },
    #[error("share {unc}: {what} took longer than {seconds} s and was stopped")]
    TimedOut {
        unc: String,
        what: String,
        seconds: u64,
    },
    #[error("share {unc}: {name} was cut short while it was copied ({got} of {expected} bytes); nothing of it was used")]
    Short {
        unc: String,
        name: String,
        got: u64,
        expected: u64,
    },
    #[error("local copy {path}: {reason}")]
    Local { path: PathBuf, reason: String },
}

/// One export file the share lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub len: u64,
    /// Its last write time on the server, in Unix ms (whole seconds, as `smbclient` lists).
    pub modified_unix_ms: i64,
}

/// What one look at the export folder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The exports the agent can copy.
    pub files: Vec<RemoteFile>,
    /// Names of exports that hold `"`, `;` or `%`, which `smbclient`'s commands cannot
    /// name: they stay on the share until renamed, so the daemon says so rather than
    /// leaving the school wondering why an export never arrives.
    pub unsupported: Vec<String>,
}

/// The share, reached through `smbclient`.
#[derive(Debug, Clone)]
pub struct Share {
    source: ShareSource,
}

impl Share {
    pub fn new(source: ShareSource) -> Share {
        Share { source }
    }

    /// `\\server\share`, for messages.
    pub fn unc(&self) -> String {
        format!(r"\\{}\{}", self.source.server, self.source.share)
    }

    pub fn source(&self) -> &ShareSource {
        &self.source
    }

    /// The files of the export folder that match the pattern, excluding folders; those whose
    /// names `smbclient` could not be given back are set apart, for the daemon to warn of.
    pub async fn list(&self) -> Result<Listing, ShareError> {
        let said = self
            .run("listing the export folder", "ls", Duration::from_secs(60))
            .await?;
        let (files, unsupported) = said
            .lines()
            .filter_map(parse_listing_line)
            .filter(|f| {
                is_one_file_name(&f.name)
                    && crate::watch::is_candidate(&f.name)
                    && matches_pattern(&self.source.pattern, &f.name)
            })
            .partition::<Vec<_>, _>(|f| is_plain_name(&f.name));
        Ok(Listing {
            files,
            unsupported: unsupported.into_iter().map(|f| f.name).collect(),
        })
    }

    /// Copies `file` into `local` (whose folder must exist), bytes only; fails unless the
    /// copy has exactly the listed size.
    pub async fn copy(&self, file: &RemoteFile, local: &Path) -> Result<(), ShareError> {
        let local_text =
            local
                .to_str()
                .filter(|p| is_plain_name(p))
                .ok_or_else(|| ShareError::Local {
                    path: local.to_owned(),
                    reason: "the path cannot be given to smbclient".into(),
                })?;
        let timeout = Duration::from_secs(self.source.timeout_seconds);
        let what = format!("copying {}", file.name);
        let copied = self
            .run(
                &what,
                &format!("get \"{}\" \"{local_text}\"", file.name),
                timeout,
            )
            .await;
        let got = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        match copied {
            Err(ShareError::Refused { said, .. })
                if got < file.len && said.contains("connection") =>
            {
                Err(ShareError::Short {
                    unc: self.unc(),
                    name: file.name.clone(),
                    got,
                    expected: file.len,
                })
            }
            Err(error) => Err(error),
            Ok(_) if got != file.len => Err(ShareError::Short {
                unc: self.unc(),
                name: file.name.clone(),
                got,
                expected: file.len,
            }),
            Ok(_) => Ok(()),
        }
    }

    /// Deletes `name` from the export folder, or moves it into the `after` folder.
    pub async fn finish(&self, name: &str, now_unix_ms: i64) -> Result<(), ShareError> {
        let command = match &self.source.after {
            AfterPull::Delete => format!("del \"{name}\""),
            AfterPull::Move(folder) => {
                let base = self.source.folder.trim_matches(['/', '\\']);
                let folder = folder.trim_matches(['/', '\\']);
                // `rename` takes paths from the share's top.
                let from = if base.is_empty() {
                    name.to_owned()
                } else {
                    format!("{base}/{name}")
                };
                format!("rename \"{from}\" \"{folder}/{now_unix_ms}-{name}\"")
            }
        };
        let what = match &self.source.after {
            AfterPull::Delete => format!("deleting {name}"),
            AfterPull::Move(folder) => format!("moving {name} into {folder}"),
        };
        self.run(&what, &command, Duration::from_secs(60))
            .await
            .map(drop)
    }

    /// Runs `smbclient` with `command` in the export folder; its output when it worked.
    async fn run(
        &self,
        what: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<String, ShareError> {
        let s = &self.source;
        check_password_file(&s.password_file)?;
        let mut cmd = tokio::process::Command::new(&s.smbclient);
        cmd.arg(format!("//{}/{}", s.server, s.share))
            .args(["-p", &s.port.to_string()])
            .args(["-U", &s.user])
            .args(["-m", "SMB3"])
            .arg("--option=client min protocol=SMB3")
            .arg("--client-protection=encrypt");
        if s.from_stick {
            cmd.arg("--pw-nt-hash");
        }
        if let Some(domain) = &s.domain {
            cmd.args(["-W", domain]);
        }
        let folder = s.folder.trim_matches(['/', '\\']);
        let full = if folder.is_empty() || command.starts_with("rename") {
            command.to_owned()
        } else {
            format!("cd \"{folder}\"; {command}")
        };
        cmd.args(["-c", &full])
            // smbclient reads the password from the file itself: it never passes through here.
            .env("PASSWD_FILE", &s.password_file)
            .env_remove("PASSWD")
            .env_remove("PASSWD_FD")
            // Listed times in UTC, in English.
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| ShareError::Program {
            program: s.smbclient.display().to_string(),
            reason: e.to_string(),
        })?;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(ShareError::Program {
                    program: s.smbclient.display().to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ShareError::TimedOut {
                    unc: self.unc(),
                    what: what.to_owned(),
                    seconds: timeout.as_secs(),
                })
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let status = nt_status(&stdout).or_else(|| nt_status(&stderr));
        if output.status.success() && status.is_none() {
            return Ok(stdout);
        }
        let said = match status {
            Some(code) => explain(&code),
            None => format!(
                "smbclient failed ({})",
                output
                    .status
                    .code()
                    .map_or("killed".to_owned(), |c| format!("exit code {c}"))
            ),
        };
        Err(ShareError::Refused {
            unc: self.unc(),
            what: what.to_owned(),
            said,
        })
    }
}

/// Refuses a password file others may read, or one that is missing.
fn check_password_file(path: &Path) -> Result<(), ShareError> {
    use std::os::unix::fs::PermissionsExt as _;
    let refuse = |reason: String| ShareError::Password {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| refuse(e.to_string()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "others may read it (mode {:o}); make it 0600",
            mode & 0o777
        )));
    }
    Ok(())
}

/// The first `NT_STATUS_…` code in `text`.
fn nt_status(text: &str) -> Option<String> {
    let start = text.find("NT_STATUS_")?;
    let code: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(code)
}

/// What an NT status code means for school IT.
fn explain(code: &str) -> String {
    let words = match code {
        "NT_STATUS_LOGON_FAILURE" | "NT_STATUS_WRONG_PASSWORD" | "NT_STATUS_NO_SUCH_USER" => {
            "the file server refused the user name or password"
        }
        "NT_STATUS_ACCOUNT_LOCKED_OUT" => "the account is locked out",
        "NT_STATUS_ACCOUNT_DISABLED" => "the account is disabled",
        "NT_STATUS_PASSWORD_EXPIRED" | "NT_STATUS_PASSWORD_MUST_CHANGE" => {
            "the account's password has expired"
        }
        "NT_STATUS_BAD_NETWORK_NAME" => "the share does not exist",
        "NT_STATUS_ACCESS_DENIED" => "the account may not do this",
        "NT_STATUS_OBJECT_NAME_NOT_FOUND"
        | "NT_STATUS_OBJECT_PATH_NOT_FOUND"
        | "NT_STATUS_NO_SUCH_FILE" => "not found",
        "NT_STATUS_OBJECT_NAME_COLLISION" => "a file of that name is already there",
        "NT_STATUS_SHARING_VIOLATION" => "the file is open in another program",
        "NT_STATUS_CONNECTION_REFUSED"
        | "NT_STATUS_HOST_UNREACHABLE"
        | "NT_STATUS_NETWORK_UNREACHABLE"
        | "NT_STATUS_IO_TIMEOUT"
        | "NT_STATUS_BAD_NETWORK_PATH" => "the file server cannot be reached",
        "NT_STATUS_CONNECTION_DISCONNECTED"
        | "NT_STATUS_CONNECTION_RESET"
        | "NT_STATUS_CONNECTION_ABORTED"
        | "NT_STATUS_END_OF_FILE"
        | "NT_STATUS_NETWORK_NAME_DELETED"
        | "NT_STATUS_PIPE_BROKEN" => "the connection to the file server broke off",
        "NT_STATUS_NOT_SUPPORTED" | "NT_STATUS_INVALID_NETWORK_RESPONSE" => {
            "the file server offers no SMB3 with encryption"
        }
        _ => return format!("the file server answered {code}"),
    };
    format!("{words} ({code})")
}

/// One line of `smbclient`'s `ls`: two spaces, the name (padded to 30), seven attribute
/// letters, a space, the size (at least 8 wide), two spaces and the time as `asctime`
/// writes it (24 characters). Folders, `.` and `..`, and lines of any other shape are `None`.
fn parse_listing_line(line: &str) -> Option<RemoteFile> {
    let body = line.strip_prefix("  ")?;
    let time_at = body.len().checked_sub(24)?;
    let (head, time) = (body.get(..time_at)?, body.get(time_at..)?);
    let head = head.strip_suffix("  ")?;
    let digits = head.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let len: u64 = head.get(head.len() - digits..)?.parse().ok()?;
    let width = digits.max(8);
    let (head, field) = head.split_at_checked(head.len().checked_sub(width)?)?;
    if !field.trim_start().bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let head = head.strip_suffix(' ')?;
    let attr_at = head.len().checked_sub(7)?;
    let (name, attrs) = (head.get(..attr_at)?, head.get(attr_at..)?);
    if attrs.contains('D') {
        return None;
    }
    let name = name.trim_end();
    if name.is_empty() {
        return None;
    }
    Some(RemoteFile {
        name: name.to_owned(),
        len,
        modified_unix_ms: parse_asctime(time)?,
    })
}

/// `Sun Dec  6 13:00:00 2026` (UTC) in Unix ms.
fn parse_asctime(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let day: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let (h, m, s): (i64, i64, i64) = (
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
    );
    let year: i64 = parts.next()?.parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + m) * 60_000 + s * 1000)
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character), ignoring case.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative glob with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_line_gives_name_size_and_time_and_folders_are_left_out() {
        let line = format!(
            "  {:<30}{:>7} {:>8}  {}",
            "elevliste.csv", "A", 51234, "Sun Dec  6 13:00:07 2026"
        );
        let file = parse_listing_line(&line).expect("a file");
        assert_eq!(file.name, "elevliste.csv");
        assert_eq!(file.len, 51234);
        assert_eq!(
            file.modified_unix_ms,
            days_from_civil(2026, 12, 6) * 86_400_000 + 13 * 3_600_000 + 7_000
        );
        let long = format!(
            "  {}{:>7} {:>8}  {}",
            "a name with spaces that is longer than thirty.csv",
            "N",
            10_737_418_240u64,
            "Mon Jan  5 01:02:03 2026"
        );
        let file = parse_listing_line(&long).expect("a long name");
        assert_eq!(
            file.name,
            "a name with spaces that is longer than thirty.csv"
        );
        assert_eq!(file.len, 10_737_418_240);
        let dir = format!(
            "  {:<30}{:>7} {:>8}  {}",
            "..", "D", 0, "Sun Dec  6 13:00:07 2026"
        );
        assert_eq!(parse_listing_line(&dir), None);
        for junk in [
            "",
            "\t\t1234 blocks of size 4096. 77 blocks available",
            "  x",
            "Try \"help\" to get a list of possible commands.",
        ] {
            assert_eq!(parse_listing_line(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_listed_name_that_would_leave_the_drop_folder_is_not_a_file_name() {
        for name in ["elevliste.csv", "Elevliste 2026.CSV", "..csv"] {
            assert!(is_one_file_name(name), "{name}");
        }
        for name in ["../../etc/cron.d/x", r"..\x.csv", "a/b.csv", ".", ".."] {
            assert!(!is_one_file_name(name), "{name}");
        }
    }

    #[test]
    fn patterns_match_like_windows_wildcards_without_case() {
        assert!(matches_pattern("*", "elevliste.csv"));
        assert!(matches_pattern("elev*.CSV", "Elevliste-2026.csv"));
        assert!(matches_pattern("export-????.xml", "export-0612.xml"));
        assert!(!matches_pattern("export-????.xml", "export-061.xml"));
        assert!(!matches_pattern("*.csv", "elevliste.csv.tmp"));
        assert!(matches_pattern("*a*b*c", "xaxxbxxxc"));
    }

    #[test]
    fn a_status_code_is_put_in_words_and_nothing_else_of_the_output_is_kept() {
        let said = "session setup failed: NT_STATUS_LOGON_FAILURE\n";
        let code = nt_status(said).expect("a code");
        assert_eq!(
            explain(&code),
            "the file server refused the user name or password (NT_STATUS_LOGON_FAILURE)"
        );
        assert_eq!(
            explain("NT_STATUS_SOMETHING_NEW"),
            "the file server answered NT_STATUS_SOMETHING_NEW"
        );
    }
}
