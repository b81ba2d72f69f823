//! The pull share's settings as the stick carries them to the agent (issue 20, pull mode):
//! where the SAS writes its export on the school's file server (server, port, share, folder,
//! which files), the account the agent signs in as, and that account's password as its NT
//! hash only. Operations write them on a stick (`skolebro-provision stick --pull-server …`,
//! in the signed bundle, format 4; format 5 added [`PullShare::after`]); the agent stores
//! them in its state folder after enrolling and pulls from that share through `smbclient
//! --pw-nt-hash` (`agent::share`) unless its `agent.toml` names a `[source]` of its own. The
//! defaults of a setting left out ([`DEFAULT_PORT`] and the others) live here, so the stick's
//! flags and `agent.toml`'s `[source]` cannot drift apart.
//!
//! Why the hash and not the password: NTLM signs in with the NT hash (MD4 of the password's
//! UTF-16LE, [`crate::drop_share::nt_hash`]) in place of the password, so the stick and the
//! Pi never hold the password in clear, and a school that changes the account's password
//! elsewhere is not told it by a lost stick. The hash still opens the share to whoever holds
//! it, so it is a secret: never logged, never in a status, `Debug` shows only that it is set.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest text any setting may hold: a DNS name's limit, and more than a share, folder,
/// pattern, user or domain name needs.
pub const MAX_SETTING_LEN: usize = 253;

/// The SMB port when none is given: the one every Windows and Samba file server listens on.
pub const DEFAULT_PORT: u16 = 445;

/// Which files are exports when no pattern is given: every file of the export folder (the
/// agent still never takes temporary or hidden names).
pub const DEFAULT_PATTERN: &str = "*";

/// Seconds between two looks at the share when none is given: an export arrives within a
/// minute, and the file server sees one short session a minute.
pub const DEFAULT_POLL_SECONDS: u32 = 60;

/// Seconds a file must stay unchanged before it is copied when none is given: long enough for
/// a SAS writing in place to have finished, short beside the poll.
pub const DEFAULT_STABLE_SECONDS: u32 = 10;

/// The share the agent pulls exports from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullShare {
    /// The file server's host name, IPv4 address or IPv6 address (as `smbclient` takes it:
    /// without brackets or a zone).
    pub server: String,
    /// The SMB port (445 unless the server listens elsewhere).
    pub port: u16,
    /// The share's name (`\\server\<share>`).
    pub share: String,
    /// The folder inside the share the SAS writes into; the share's top when empty.
    pub folder: String,
    /// Which files are exports (`*` and `?` wildcards, as Windows matches them).
    pub pattern: String,
    /// The account the agent signs in as.
    pub user: String,
    /// The account's domain or workgroup, when the server wants one.
    pub domain: Option<String>,
    /// The account's NT hash as 32 lowercase hex digits.
    pub password_nt_hash: String,
    /// Seconds between two looks at the share.
    pub poll_seconds: u32,
    /// Seconds a file's size and time must stay the same before it is copied.
    pub stable_seconds: u32,
    /// What becomes of an export on the share once central acknowledged it (format version
    /// 5; a format 4 stick deletes).
    pub after: AfterPull,
}

/// What the agent does with a pulled export on the share once central acknowledged it. Its
/// text, on the stick, in `agent.toml`'s `after` and after `--pull-after`, is `delete` or
/// `move:<folder>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AfterPull {
    /// Delete it, so the share's export folder stays empty.
    #[default]
    Delete,
    /// Move it into this folder of the share, a path from the share's top (named `<Unix
    /// ms>-<name>` there, so a later export of the same name never overwrites it): where the
    /// county forbids deleting, a folder only the agent's account can read.
    Move(String),
}

impl AfterPull {
    /// Whether moving leaves the export in `export_folder` itself, where the next poll would
    /// take it again and again: the same folder, ignoring case, `/` or `\`, and slashes at
    /// either end, as a Windows file server does.
    pub fn stays_in(&self, export_folder: &str) -> bool {
        let plain = |folder: &str| {
            folder
                .trim_matches(['/', '\\'])
                .replace('\\', "/")
                .to_lowercase()
        };
        match self {
            AfterPull::Delete => false,
            AfterPull::Move(folder) => plain(folder) == plain(export_folder),
        }
    }
}

impl FromStr for AfterPull {
    type Err = String;

    fn from_str(text: &str) -> Result<AfterPull, String> {
        if text == "delete" {
            return Ok(AfterPull::Delete);
        }
        match text.strip_prefix("move:") {
            Some(folder) if !folder.trim().is_empty() => Ok(AfterPull::Move(folder.to_owned())),
            _ => Err(format!(
                "`after` is \"delete\" or \"move:<folder>\", not {text:?}"
            )),
        }
    }
}

impl TryFrom<String> for AfterPull {
    type Error = String;

    fn try_from(text: String) -> Result<AfterPull, String> {
        text.parse()
    }
}

impl fmt::Display for AfterPull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfterPull::Delete => f.write_str("delete"),
            AfterPull::Move(folder) => write!(f, "move:{folder}"),
        }
    }
}

impl From<AfterPull> for String {
    fn from(after: AfterPull) -> String {
        after.to_string()
    }
}

/// A format 4 stick's pull share: [`PullShare`] before it carried [`PullShare::after`]. Only
/// read (the tests write one, to read it back).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct PullShareV4 {
    pub(crate) server: String,
    pub(crate) port: u16,
    pub(crate) share: String,
    pub(crate) folder: String,
    pub(crate) pattern: String,
    pub(crate) user: String,
    pub(crate) domain: Option<String>,
    pub(crate) password_nt_hash: String,
    pub(crate) poll_seconds: u32,
    pub(crate) stable_seconds: u32,
}

impl From<PullShareV4> for PullShare {
    fn from(v4: PullShareV4) -> PullShare {
        PullShare {
            server: v4.server,
            port: v4.port,
            share: v4.share,
            folder: v4.folder,
            pattern: v4.pattern,
            user: v4.user,
            domain: v4.domain,
            password_nt_hash: v4.password_nt_hash,
            poll_seconds: v4.poll_seconds,
            stable_seconds: v4.stable_seconds,
            after: AfterPull::Delete,
        }
    }
}

impl fmt::Debug for PullShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullShare")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("share", &self.share)
            .field("folder", &self.folder)
            .field("pattern", &self.pattern)
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("password_nt_hash", &"(set)")
            .field("poll_seconds", &self.poll_seconds)
            .field("stable_seconds", &self.stable_seconds)
            .field("after", &self.after)
            .finish()
    }
}

impl PullShare {
    /// The first setting that cannot be used, with why, named as the stick's flag names it
    /// (without `--pull-`); `None` when all can. Every text reaches `smbclient`'s command
    /// line or the file its password is read from, so none may hold a line break or other
    /// control character, `"` (which its commands cannot quote), `;` (where they split), `%`
    /// (which splits a user from a password) or `:`, but for the `:`s of an IPv6 address;
    /// the server is a host name or an IPv4 or IPv6 address (`smbclient //::1/share` reaches
    /// a server on `::1`; `[::1]` and a zone such as `%eth0` do not); the share, user and
    /// domain hold no `/` or `\`; a folder exports are moved into is not the export folder;
    /// and the hash is 32 hex digits.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let ipv6 = self.server.parse::<Ipv6Addr>().is_ok();
        let moved_into = match &self.after {
            AfterPull::Delete => "-",
            AfterPull::Move(folder) => folder.as_str(),
        };
        let texts = [
            ("server", self.server.as_str(), false),
            ("share", self.share.as_str(), false),
            ("folder", self.folder.as_str(), true),
            ("pattern", self.pattern.as_str(), false),
            ("user", self.user.as_str(), false),
            ("domain", self.domain.as_deref().unwrap_or("-"), false),
            ("after", moved_into, false),
        ];
        for (name, text, empty_ok) in texts {
            if !empty_ok && text.trim().is_empty() {
                return Some((name, "must not be empty"));
            }
            if text.len() > MAX_SETTING_LEN {
                return Some((name, "is longer than 253 bytes"));
            }
            let colon_ok = ipv6 && name == "server";
            if text
                .chars()
                .any(|c| matches!(c, '"' | ';' | '%') || (c == ':' && !colon_ok) || c.is_control())
            {
                return Some((
                    name,
                    "must not hold `\"`, `;`, `%`, `:` or control characters",
                ));
            }
        }
        let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.');
        if !ipv6 && (!self.server.chars().all(host_char) || self.server.starts_with('-')) {
            return Some((
                "server",
                "must be a host name, an IPv4 address or an IPv6 address without brackets",
            ));
        }
        let plain_name = |text: &str| !text.contains(['/', '\\']);
        if !plain_name(&self.share) {
            return Some(("share", "must not hold `/` or `\\`"));
        }
        if !plain_name(&self.user) || !self.domain.as_deref().is_none_or(plain_name) {
            return Some(("user", "the user and domain must not hold `/` or `\\`"));
        }
        if self.after.stays_in(&self.folder) {
            return Some((
                "after",
                "must move exports out of the export folder, or they are pulled again",
            ));
        }
        if self.port == 0 {
            return Some(("port", "must not be 0"));
        }
        if self.poll_seconds == 0 {
            return Some(("poll-seconds", "must be at least 1"));
        }
        let hash = &self.password_nt_hash;
        if hash.len() != 32 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(("password-file", "the NT hash is not 32 hex digits"));
        }
        None
    }

    /// Whether every setting can be used ([`PullShare::problem`] finds none).
    pub fn is_valid(&self) -> bool {
        self.problem().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop_share::nt_hash;

    fn share() -> PullShare {
        PullShare {
            server: "filserver.skule.example.no".into(),
            port: 445,
            share: "Eksport".into(),
            folder: "sas/elevliste".into(),
            pattern: "*.csv".into(),
            user: "skolebro-les".into(),
            domain: Some("SKULE".into()),
            password_nt_hash: nt_hash("Pull-share-pass-1"),
            poll_seconds: 60,
            stable_seconds: 10,
            after: AfterPull::Move("hentet".into()),
        }
    }

    #[test]
    fn settings_that_could_reach_smbclient_s_command_line_as_more_than_a_name_are_invalid() {
        assert_eq!(share().problem(), None);
        for bad in ["", "a\"b", "a;b", "a%b", "a:b", "a\nb", &"a".repeat(254)] {
            for field in ["server", "share", "pattern", "user", "domain"] {
                let mut settings = share();
                match field {
                    "server" => settings.server = bad.to_owned(),
                    "share" => settings.share = bad.to_owned(),
                    "pattern" => settings.pattern = bad.to_owned(),
                    "user" => settings.user = bad.to_owned(),
                    _ => settings.domain = Some(bad.to_owned()),
                }
                assert_eq!(
                    settings.problem().map(|(name, _)| name),
                    Some(field),
                    "{field} = {bad:?}"
                );
            }
        }
        let folder = PullShare {
            folder: "a\r\nb".into(),
            ..share()
        };
        assert_eq!(folder.problem().map(|(name, _)| name), Some("folder"));
        assert!(PullShare {
            folder: String::new(),
            domain: None,
            ..share()
        }
        .is_valid());
    }

    #[test]
    fn a_server_is_a_host_name_or_an_address_and_names_hold_no_slashes() {
        for server in [
            "filserver",
            "10.0.0.5",
            "::1",
            "fd00:5::10",
            "a::b",
            "::ffff:10.0.0.5",
        ] {
            let good = PullShare {
                server: server.into(),
                ..share()
            };
            assert_eq!(good.problem(), None, "{server:?}");
        }
        for server in [
            "fil server",
            "-x",
            "a/b",
            "[::1]",
            "fe80::1%eth0",
            "::1::2",
            "::1:",
        ] {
            let bad = PullShare {
                server: server.into(),
                ..share()
            };
            assert_eq!(bad.problem().map(|(n, _)| n), Some("server"), "{server:?}");
        }
        let share_slash = PullShare {
            share: "a\\b".into(),
            ..share()
        };
        assert_eq!(share_slash.problem().map(|(n, _)| n), Some("share"));
        let user_slash = PullShare {
            user: "SKULE\\les".into(),
            ..share()
        };
        assert_eq!(user_slash.problem().map(|(n, _)| n), Some("user"));
    }

    #[test]
    fn a_zero_port_or_poll_and_a_hash_that_is_not_32_hex_digits_are_invalid() {
        assert!(!PullShare { port: 0, ..share() }.is_valid());
        assert!(!PullShare {
            poll_seconds: 0,
            ..share()
        }
        .is_valid());
        for hash in ["", "abc", &"g".repeat(32), &"a".repeat(33)] {
            let bad = PullShare {
                password_nt_hash: hash.to_owned(),
                ..share()
            };
            assert!(!bad.is_valid(), "{hash:?}");
        }
    }

    #[test]
    fn after_is_delete_or_a_move_into_a_folder_and_reads_back_from_its_text() {
        assert_eq!("delete".parse(), Ok(AfterPull::Delete));
        assert_eq!("move:taken".parse(), Ok(AfterPull::Move("taken".into())));
        for bad in ["move:", "move: ", "keep", "Delete", ""] {
            assert!(bad.parse::<AfterPull>().is_err(), "{bad:?}");
        }
        for after in [AfterPull::Delete, AfterPull::Move("sas/hentet".into())] {
            assert_eq!(after.to_string().parse(), Ok(after.clone()));
            let json = serde_json::to_string(&after).unwrap();
            assert_eq!(json, format!("\"{after}\""));
            assert_eq!(serde_json::from_str::<AfterPull>(&json).unwrap(), after);
        }
        assert!(serde_json::from_str::<AfterPull>("\"keep\"").is_err());
        assert_eq!(AfterPull::default(), AfterPull::Delete);
    }

    #[test]
    fn a_move_folder_is_checked_like_the_other_texts_and_must_leave_the_export_folder() {
        let moving = |folder: &str| PullShare {
            after: AfterPull::Move(folder.into()),
            ..share()
        };
        for bad in ["a\"b", "a;b", "a%b", "a:b", "a\nb", &"a".repeat(254)] {
            assert_eq!(
                moving(bad).problem().map(|(n, _)| n),
                Some("after"),
                "{bad:?}"
            );
        }
        for same in ["sas/elevliste", "/SAS\\Elevliste/", "sas\\elevliste"] {
            assert_eq!(
                moving(same).problem().map(|(n, _)| n),
                Some("after"),
                "{same:?}"
            );
        }
        assert!(moving("sas/elevliste/hentet").is_valid());
        assert!(moving("hentet").is_valid());
        let at_the_top = PullShare {
            folder: String::new(),
            ..moving("/")
        };
        assert_eq!(at_the_top.problem().map(|(n, _)| n), Some("after"));
        assert!(PullShare {
            after: AfterPull::Delete,
            ..share()
        }
        .is_valid());
        assert!(!AfterPull::Delete.stays_in("sas"));
    }

    #[test]
    fn a_format_4_pull_share_reads_as_one_that_deletes() {
        let v4 = PullShareV4 {
            server: "filserver".into(),
            port: 445,
            share: "Eksport".into(),
            folder: "sas".into(),
            pattern: "*.csv".into(),
            user: "skolebro-les".into(),
            domain: None,
            password_nt_hash: nt_hash("Pull-share-pass-1"),
            poll_seconds: 60,
            stable_seconds: 10,
        };
        let bytes = postcard::to_allocvec(&v4).unwrap();
        let read: PullShare = postcard::from_bytes::<PullShareV4>(&bytes).unwrap().into();
        assert_eq!(read.after, AfterPull::Delete);
        assert_eq!(
            (read.server.as_str(), read.folder.as_str()),
            ("filserver", "sas")
        );
        assert!(read.is_valid());
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let shown = format!("{:?}", share());
        assert!(!shown.contains(&nt_hash("Pull-share-pass-1")), "{shown}");
        assert!(shown.contains("(set)") && shown.contains("skolebro-les"));
    }
}
