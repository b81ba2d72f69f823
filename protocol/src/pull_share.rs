//! The pull share's settings as the stick carries them to the agent (issue 20, pull mode):
//! where the SAS writes its export on the school's file server (server, port, share, folder,
//! which files), the account the agent signs in as, and that account's password as its NT
//! hash only. Operations write them on a stick (`skolebro-provision stick --pull-server …`,
//! in the signed bundle, format 4); the agent stores them in its state folder after enrolling
//! and pulls from that share through `smbclient --pw-nt-hash` (`agent::share`) unless its
//! `agent.toml` names a `[source]` of its own. The defaults of a setting left out
//! ([`DEFAULT_PORT`] and the others) live here, so the stick's flags and `agent.toml`'s
//! `[source]` cannot drift apart.
//!
//! Why the hash and not the password: NTLM signs in with the NT hash (MD4 of the password's
//! UTF-16LE, [`crate::drop_share::nt_hash`]) in place of the password, so the stick and the
//! Pi never hold the password in clear, and a school that changes the account's password
//! elsewhere is not told it by a lost stick. The hash still opens the share to whoever holds
//! it, so it is a secret: never logged, never in a status, `Debug` shows only that it is set.

use std::fmt;

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
    /// The file server's host name or IPv4 address.
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
            .finish()
    }
}

impl PullShare {
    /// The first setting that cannot be used, with why, named as the stick's flag names it
    /// (without `--pull-`); `None` when all can. Every text reaches `smbclient`'s command
    /// line or the file its password is read from, so none may hold a line break or other
    /// control character, `"` (which its commands cannot quote), `;` (where they split), `%`
    /// (which splits a user from a password) or `:`; the server is a host name or IPv4
    /// address; the share, user and domain hold no `/` or `\`; and the hash is 32 hex digits.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let texts = [
            ("server", self.server.as_str(), false),
            ("share", self.share.as_str(), false),
            ("folder", self.folder.as_str(), true),
            ("pattern", self.pattern.as_str(), false),
            ("user", self.user.as_str(), false),
            ("domain", self.domain.as_deref().unwrap_or("-"), false),
        ];
        for (name, text, empty_ok) in texts {
            if !empty_ok && text.trim().is_empty() {
                return Some((name, "must not be empty"));
            }
            if text.len() > MAX_SETTING_LEN {
                return Some((name, "is longer than 253 bytes"));
            }
            if text
                .chars()
                .any(|c| matches!(c, '"' | ';' | '%' | ':') || c.is_control())
            {
                return Some((
                    name,
                    "must not hold `\"`, `;`, `%`, `:` or control characters",
                ));
            }
        }
        let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.');
        if !self.server.chars().all(host_char) || self.server.starts_with('-') {
            return Some(("server", "must be a host name or an IPv4 address"));
        }
        let plain_name = |text: &str| !text.contains(['/', '\\']);
        if !plain_name(&self.share) {
            return Some(("share", "must not hold `/` or `\\`"));
        }
        if !plain_name(&self.user) || !self.domain.as_deref().is_none_or(plain_name) {
            return Some(("user", "the user and domain must not hold `/` or `\\`"));
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
    fn a_server_is_a_host_name_and_names_hold_no_slashes() {
        for server in ["fil server", "-x", "fe80::1", "a/b"] {
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
    fn debug_never_shows_the_hash() {
        let shown = format!("{:?}", share());
        assert!(!shown.contains(&nt_hash("Pull-share-pass-1")), "{shown}");
        assert!(shown.contains("(set)") && shown.contains("skolebro-les"));
    }
}
