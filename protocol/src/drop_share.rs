//! The SMB drop share's settings as the stick and central carry them to the agent (issue
//! 20): whether the Pi offers the share, which account may write to it, how large a file it
//! takes, and the account's password as Samba's hash only. Operations write them on a stick
//! (`skolebro-provision stick --share-password-file …`, in the signed bundle, format 3) and
//! change them later from central (the `drop_share` command of a heartbeat answer); the
//! agent writes them into the share's username map and passdb (`agent::drop_share`).
//!
//! Why the hash and not the password: Samba keeps nothing but the NT hash (MD4 of the
//! password's UTF-16LE) in its passdb, so the Pi, the stick and central's command queue never
//! need the password in clear; the person who chose it tells school IT. The hash still opens
//! the share to whoever holds it (NTLM takes it in place of the password), so it is treated
//! as a secret: never logged, never in a status, `Debug` shows only that it is set.

use std::fmt;

use md4::{Digest as _, Md4};
use serde::{Deserialize, Serialize};

/// Longest account name Samba and Debian's `adduser` both take.
pub const MAX_ACCOUNT_LEN: usize = 32;

/// The share's settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropShare {
    /// Whether the share takes writes: off, its passdb holds no account, so no one signs in.
    pub enabled: bool,
    /// The name the share's writer signs in with: a sign-in name only, which the agent maps
    /// onto the Unix user the package creates (`skolebro-drop`), so any valid name works.
    pub account: String,
    /// The largest file, in MiB, the agent takes from the share; a larger one is removed
    /// unread and refused in the status.
    pub size_cap_mib: u32,
    /// The account's NT hash ([`nt_hash`]) as 32 lowercase hex digits; `None` keeps the
    /// password the Pi has.
    pub password_nt_hash: Option<String>,
}

impl fmt::Debug for DropShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropShare")
            .field("enabled", &self.enabled)
            .field("account", &self.account)
            .field("size_cap_mib", &self.size_cap_mib)
            .field(
                "password_nt_hash",
                &self.password_nt_hash.as_ref().map(|_| "(set)"),
            )
            .finish()
    }
}

impl DropShare {
    /// Whether the settings can be applied: an account name of letters, digits, `-`, `_`
    /// and `.` not starting with `-` (it becomes a line of Samba's passdb, where `:` and a
    /// line break would forge another entry), a cap of at least 1 MiB, and a hash of 32 hex
    /// digits.
    pub fn is_valid(&self) -> bool {
        let account_ok = !self.account.is_empty()
            && self.account.len() <= MAX_ACCOUNT_LEN
            && !self.account.starts_with('-')
            && self
                .account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let hash_ok = self
            .password_nt_hash
            .as_ref()
            .is_none_or(|hash| hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        account_ok && self.size_cap_mib >= 1 && hash_ok
    }
}

/// The settings in force, without the hash: what the agent caps files by, its `status`
/// shows and its heartbeat reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Whether the share takes sign-ins.
    pub enabled: bool,
    /// The name the share's writer signs in with.
    pub account: String,
    /// The largest file the agent takes from the share, in MiB.
    pub size_cap_mib: u32,
}

/// What became of the share's settings on the Pi: the settings last applied and, if the
/// attempt after them failed, why. The agent keeps it in `<state>/drop-share.json`, shows it
/// in `status` and reports it in its heartbeat, so school IT and the operators both see that
/// a stick's or central's settings did not take, not only the Pi's log. Never the hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShareStatus {
    /// The settings in force; `None` before any were applied.
    #[serde(flatten)]
    pub applied: Option<Applied>,
    /// When they were applied, Unix ms.
    pub applied_unix_ms: Option<u64>,
    /// Why the last attempt failed, if it came after the last that worked.
    pub last_error: Option<String>,
    /// When it failed, Unix ms.
    pub last_error_unix_ms: Option<u64>,
}

/// Samba's NT hash of `password`: MD4 over its UTF-16LE code units, as 32 lowercase hex
/// digits (what `smbpasswd` stores).
pub fn nt_hash(password: &str) -> String {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hex::encode(Md4::digest(&utf16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> DropShare {
        DropShare {
            enabled: true,
            account: "skolebro-drop".into(),
            size_cap_mib: 64,
            password_nt_hash: Some(nt_hash("Drop-share-pass-1")),
        }
    }

    #[test]
    fn md4_gives_the_answers_of_rfc_1320() {
        for (input, digest) in [
            ("", "31d6cfe0d16ae931b73c59d7e0c089c0"),
            ("a", "bde52cb31de33e46245e05fbdbd6fb24"),
            ("abc", "a448017aaf21d8525fc10ae87aa6729d"),
            ("message digest", "d9130a8164549fe818874806e1c7014b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "e33b4ddc9c38f2199c3e7b164fcc0536",
            ),
        ] {
            assert_eq!(
                hex::encode(Md4::digest(input.as_bytes())),
                digest,
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_nt_hash_is_samba_s() {
        assert_eq!(nt_hash("password"), "8846f7eaee8fb117ad06bdd830b7586c");
        assert_eq!(nt_hash(""), "31d6cfe0d16ae931b73c59d7e0c089c0");
    }

    #[test]
    fn an_account_that_could_forge_a_passdb_line_is_invalid() {
        assert!(share().is_valid());
        for account in ["", "a:b", "a\nb", "-x", "ø", &"a".repeat(33)] {
            let bad = DropShare {
                account: account.to_owned(),
                ..share()
            };
            assert!(!bad.is_valid(), "{account:?}");
        }
        let no_cap = DropShare {
            size_cap_mib: 0,
            ..share()
        };
        assert!(!no_cap.is_valid());
        let short = DropShare {
            password_nt_hash: Some("abc".into()),
            ..share()
        };
        assert!(!short.is_valid());
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let shown = format!("{:?}", share());
        assert!(!shown.contains(&nt_hash("Drop-share-pass-1")), "{shown}");
        assert!(shown.contains("(set)"));
    }
}
