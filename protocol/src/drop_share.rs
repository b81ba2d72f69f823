//! The SMB drop share's settings as the stick and central carry them to the agent (issue
//! 20): whether the Pi offers the share, which account may write to it, how large a file it
//! takes, and the account's password as Samba's hash only. Operations write them on a stick
//! (`skolebro-provision stick --share-password-file …`, in the signed bundle, format 3) and
//! change them later from central (the `drop_share` command of a heartbeat answer); the
//! agent writes them into the share's passdb and config (`agent::drop_share`).
//!
//! Why the hash and not the password: Samba keeps nothing but the NT hash (MD4 of the
//! password's UTF-16LE) in its passdb, so the Pi, the stick and central's command queue never
//! need the password in clear; the person who chose it tells school IT. The hash still opens
//! the share to whoever holds it (NTLM takes it in place of the password), so it is treated
//! as a secret: never logged, never in a status, `Debug` shows only that it is set.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest account name Samba and Debian's `adduser` both take.
pub const MAX_ACCOUNT_LEN: usize = 32;

/// The share's settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropShare {
    /// Whether the share takes writes: off, its passdb holds no account, so no one signs in.
    pub enabled: bool,
    /// The Samba account (a Unix user on the Pi: the package creates `skolebro-drop`).
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

/// Samba's NT hash of `password`: MD4 over its UTF-16LE code units, as 32 lowercase hex
/// digits (what `smbpasswd` stores).
pub fn nt_hash(password: &str) -> String {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hex::encode(md4(&utf16))
}

/// MD4 (RFC 1320). Only for Samba's NT hash, which is defined by it; nothing else here
/// relies on it.
fn md4(input: &[u8]) -> [u8; 16] {
    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());

    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in message.chunks_exact(64) {
        let mut x = [0u32; 16];
        for (word, bytes) in x.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
        let g = |x: u32, y: u32, z: u32| (x & y) | (x & z) | (y & z);
        let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
        for &i in &[0usize, 4, 8, 12] {
            a = a.wrapping_add(f(b, c, d)).wrapping_add(x[i]).rotate_left(3);
            d = d
                .wrapping_add(f(a, b, c))
                .wrapping_add(x[i + 1])
                .rotate_left(7);
            c = c
                .wrapping_add(f(d, a, b))
                .wrapping_add(x[i + 2])
                .rotate_left(11);
            b = b
                .wrapping_add(f(c, d, a))
                .wrapping_add(x[i + 3])
                .rotate_left(19);
        }
        const K2: u32 = 0x5a82_7999;
        for &i in &[0usize, 1, 2, 3] {
            a = a
                .wrapping_add(g(b, c, d))
                .wrapping_add(x[i])
                .wrapping_add(K2)
                .rotate_left(3);
            d = d
                .wrapping_add(g(a, b, c))
                .wrapping_add(x[i + 4])
                .wrapping_add(K2)
                .rotate_left(5);
            c = c
                .wrapping_add(g(d, a, b))
                .wrapping_add(x[i + 8])
                .wrapping_add(K2)
                .rotate_left(9);
            b = b
                .wrapping_add(g(c, d, a))
                .wrapping_add(x[i + 12])
                .wrapping_add(K2)
                .rotate_left(13);
        }
        const K3: u32 = 0x6ed9_eba1;
        for &i in &[0usize, 2, 1, 3] {
            a = a
                .wrapping_add(h(b, c, d))
                .wrapping_add(x[i])
                .wrapping_add(K3)
                .rotate_left(3);
            d = d
                .wrapping_add(h(a, b, c))
                .wrapping_add(x[i + 8])
                .wrapping_add(K3)
                .rotate_left(9);
            c = c
                .wrapping_add(h(d, a, b))
                .wrapping_add(x[i + 4])
                .wrapping_add(K3)
                .rotate_left(11);
            b = b
                .wrapping_add(h(c, d, a))
                .wrapping_add(x[i + 12])
                .wrapping_add(K3)
                .rotate_left(15);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    out
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
            assert_eq!(hex::encode(md4(input.as_bytes())), digest, "{input:?}");
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
