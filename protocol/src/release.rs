//! The signed release manifest (DESIGN decision 7): what tells an agent that an artifact is
//! a real skolebro release, for its platform, and newer than what it runs.
//!
//! Operations write it: `skolebro-provision release` hashes the agent binary, fills a
//! [`ReleaseManifest`] (version, target triple, size, SHA-256) and signs it with the
//! platform's release key ([`ReleaseManifest::sign`]). Central stores it and hands it to the
//! devices in a rollout with their heartbeat answer; it cannot forge one, because it holds
//! only the public key. The agent checks the manifest against the release key installed with
//! it ([`ReleaseManifest::verify`]), then the downloaded artifact against the manifest's size
//! and hash, the target against its own, and the version against its own
//! ([`ReleaseManifest::permits_upgrade_from`]) before it installs anything.
//!
//! # Wire format (version 2)
//! ```text
//! "SKBR"        4 bytes magic
//! version       1 byte, FORMAT_VERSION
//! body_len      u32 little-endian
//! body          postcard-encoded `ReleaseManifest`, body_len bytes
//! signature     Ed25519, 64 bytes, over every byte before it (magic to the end of the body)
//! ```
//! The framing is the stick bundle's (`signed`) with its own magic and its own key,
//! so neither kind of signature can pass for the other. A manifest is at most
//! [`MAX_MANIFEST_BYTES`].
//!
//! Version 2 added `expires_unix`, `replaces` and `floor` after `created_unix` (issue 18):
//! a version 1 manifest was valid forever, so one signed with `allow_downgrade` could be
//! replayed to roll devices back to a release with a known hole. A version 1 manifest is
//! still read and its signature checked, then refused with [`ReleaseError::Retired`].
//! A downgrade must name the exact version it replaces and expire within
//! [`MAX_DOWNGRADE_VALIDITY_SECS`] of its signing; both are checked here, so neither central
//! nor an agent accepts a manifest that breaks them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::signed::{self, FrameError};

/// Marks the bytes as a skolebro release manifest.
pub const MAGIC: [u8; 4] = *b"SKBR";

/// The manifest format this build writes and the only one it accepts.
pub const FORMAT_VERSION: u8 = 2;

/// The format before manifests expired: still read, so it is refused in words
/// ([`ReleaseError::Retired`]) rather than as an unknown version.
pub const RETIRED_FORMAT_VERSION: u8 = 1;

/// Longest a manifest that allows a downgrade may be valid, from `created_unix` to
/// `expires_unix`: 72 hours. A downgrade undoes one bad release now; a long-lived one is
/// what a replay attack needs.
pub const MAX_DOWNGRADE_VALIDITY_SECS: u64 = 72 * 3600;

/// Upper bound of a whole manifest. A real one is about 150 bytes; the bound keeps central
/// and the agent from reading more than this of anything claiming to be one.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Longest target triple accepted. Real ones (`armv7-unknown-linux-gnueabihf`) are about 30.
pub const MAX_TARGET_LEN: usize = 64;

/// The manifest's framing (see [`crate::signed`]).
const FORMAT: signed::Format = signed::Format {
    magic: MAGIC,
    version: FORMAT_VERSION,
    max_bytes: MAX_MANIFEST_BYTES,
};

/// The retired version 1 framing, read only to refuse it in words.
const RETIRED_FORMAT: signed::Format = signed::Format {
    magic: MAGIC,
    version: RETIRED_FORMAT_VERSION,
    max_bytes: MAX_MANIFEST_BYTES,
};

/// Every reason a manifest, a version or a release key is refused; each has its own variant
/// so an agent can report exactly why it refused an update (a bad signature is an alarm, an
/// older version is routine).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The input is larger than [`MAX_MANIFEST_BYTES`]; checked before anything is read.
    #[error("release manifest is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The input ends before the manifest its own length field describes.
    #[error("release manifest is truncated")]
    Truncated,
    /// The input does not start with [`MAGIC`]: not a release manifest at all.
    #[error("not a release manifest (bad magic)")]
    BadMagic,
    /// A manifest of a format version this build does not know.
    #[error("unsupported release manifest version {0}")]
    UnsupportedVersion(u8),
    /// The signature does not verify against the release key: the manifest was altered, or
    /// signed by another key than the platform's.
    #[error("release manifest signature does not verify against the release key")]
    BadSignature,
    /// Correctly signed but not a well-formed manifest (trailing bytes, a body that does not
    /// decode, a target that is not a plain triple).
    #[error("malformed release manifest: {0}")]
    Malformed(&'static str),
    /// Text that is not a `MAJOR.MINOR.PATCH` version.
    #[error("{0:?} is not a version (MAJOR.MINOR.PATCH)")]
    InvalidVersion(String),
    /// Key bytes or key text that do not form a usable release key.
    #[error("invalid release key: {0}")]
    InvalidKey(&'static str),
    /// The operating system's random number generator failed; no key was generated.
    #[error("system randomness unavailable")]
    Randomness,
    /// A correctly signed manifest of a retired format (version 1 has no expiry, so it
    /// would be valid forever); operations sign the release again.
    #[error(
        "release manifest format {0} has no expiry and is no longer accepted; sign the release again"
    )]
    Retired(u8),
    /// A manifest that allows a downgrade without naming the exact version it replaces.
    #[error("a downgrade manifest must name the exact version it replaces")]
    DowngradeWithoutReplaces,
    /// A manifest that allows a downgrade and stays valid longer than
    /// [`MAX_DOWNGRADE_VALIDITY_SECS`].
    #[error(
        "a downgrade manifest is valid for {validity_secs} s, over the limit of {limit_secs} s"
    )]
    DowngradeTooLong { validity_secs: u64, limit_secs: u64 },
}

impl From<FrameError> for ReleaseError {
    fn from(error: FrameError) -> ReleaseError {
        match error {
            FrameError::TooLarge { size, limit } => ReleaseError::TooLarge { size, limit },
            FrameError::Truncated => ReleaseError::Truncated,
            FrameError::BadMagic => ReleaseError::BadMagic,
            FrameError::UnsupportedVersion(version) => ReleaseError::UnsupportedVersion(version),
            FrameError::BadSignature => ReleaseError::BadSignature,
            FrameError::Malformed(what) => ReleaseError::Malformed(what),
        }
    }
}

/// A release's version, `MAJOR.MINOR.PATCH`, ordered numerically (so 1.10.0 is after
/// 1.9.0). No pre-release or build suffixes: a version names exactly one artifact per
/// target, and "goes up" must have one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// The version `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Version {
    type Err = ReleaseError;

    /// Three decimal numbers separated by dots, each without a sign or a leading zero (so
    /// every version has one spelling, and the release id made from it is unique).
    fn from_str(text: &str) -> Result<Version, ReleaseError> {
        let invalid = || ReleaseError::InvalidVersion(text.chars().take(64).collect());
        let number = |part: Option<&str>| -> Result<u32, ReleaseError> {
            let part = part.ok_or_else(invalid)?;
            let canonical = !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            if !canonical {
                return Err(invalid());
            }
            part.parse().map_err(|_| invalid())
        };
        let mut parts = text.split('.');
        let version = Version::new(
            number(parts.next())?,
            number(parts.next())?,
            number(parts.next())?,
        );
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(version)
    }
}

/// What a signed manifest says about one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub version: Version,
    /// The Rust target triple the artifact runs on, e.g. `aarch64-unknown-linux-gnu`; an
    /// agent installs only artifacts for its own compile-time target.
    pub target: String,
    /// The artifact's length in bytes.
    pub size: u64,
    /// SHA-256 of the artifact.
    pub sha256: [u8; 32],
    /// Whether agents on a newer version may install this one: set only to undo a bad
    /// release, because versions never go backwards otherwise (DESIGN decision 7).
    pub allow_downgrade: bool,
    /// When operations signed it, Unix seconds.
    pub created_unix: u64,
    /// After this moment (Unix seconds) no agent installs it: a signed manifest cannot be
    /// replayed forever. Later than `created_unix`.
    pub expires_unix: u64,
    /// The exact version this release replaces; required when `allow_downgrade` is set, and
    /// an agent running any other version refuses the downgrade.
    pub replaces: Option<Version>,
    /// The lowest version ever allowed again: an agent keeps the highest floor it has seen
    /// in a valid manifest and refuses anything below it, downgrade or not.
    pub floor: Option<Version>,
}

/// The version 1 body, kept only to check and refuse such manifests in words; its fields
/// are decoded so a malformed body is still told apart from a retired one.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[allow(dead_code)]
struct RetiredManifest {
    version: Version,
    target: String,
    size: u64,
    sha256: [u8; 32],
    allow_downgrade: bool,
    created_unix: u64,
}

impl ReleaseManifest {
    /// The manifest bytes, signed with the platform's release key. A target that is not a
    /// plain triple ([`valid_target`]) makes a manifest [`ReleaseManifest::verify`] refuses,
    /// so the caller checks the target first.
    pub fn sign(&self, key: &ReleaseSigningKey) -> Vec<u8> {
        FORMAT.sign(self, &key.0)
    }

    /// Checks manifest bytes against the release key and returns the manifest. Size, magic,
    /// version, length and signature are checked before the body is decoded, and the target
    /// must be a plain triple so the release id is safe in paths and URLs. Never panics,
    /// whatever the bytes.
    pub fn verify(
        bytes: &[u8],
        key: &ReleaseVerifyingKey,
    ) -> Result<ReleaseManifest, ReleaseError> {
        if bytes.len() <= MAX_MANIFEST_BYTES
            && bytes.starts_with(&MAGIC)
            && bytes.get(4) == Some(&RETIRED_FORMAT_VERSION)
        {
            // The signature is checked first: a forged old manifest is an alarm, not routine.
            let retired: RetiredManifest = RETIRED_FORMAT.verify(bytes, &key.0)?;
            if !valid_target(&retired.target) {
                return Err(ReleaseError::Malformed("the target is not a plain triple"));
            }
            return Err(ReleaseError::Retired(RETIRED_FORMAT_VERSION));
        }
        let manifest: ReleaseManifest = FORMAT.verify(bytes, &key.0)?;
        if !valid_target(&manifest.target) {
            return Err(ReleaseError::Malformed("the target is not a plain triple"));
        }
        if manifest.expires_unix <= manifest.created_unix {
            return Err(ReleaseError::Malformed("it expires before it was signed"));
        }
        if manifest.floor.is_some_and(|floor| manifest.version < floor) {
            return Err(ReleaseError::Malformed(
                "the version is below its own floor",
            ));
        }
        if manifest.allow_downgrade {
            if manifest.replaces.is_none() {
                return Err(ReleaseError::DowngradeWithoutReplaces);
            }
            let validity_secs = manifest.expires_unix - manifest.created_unix;
            if validity_secs > MAX_DOWNGRADE_VALIDITY_SECS {
                return Err(ReleaseError::DowngradeTooLong {
                    validity_secs,
                    limit_secs: MAX_DOWNGRADE_VALIDITY_SECS,
                });
            }
        }
        Ok(manifest)
    }

    /// Whether the manifest has expired at `now_unix` (the agent's clock).
    pub fn expired_at(&self, now_unix: u64) -> bool {
        now_unix >= self.expires_unix
    }

    /// The release's id, `<version>-<target>` (e.g. `1.2.3-aarch64-unknown-linux-gnu`): one
    /// artifact per version and platform, and what central, its API and its files name it by.
    pub fn id(&self) -> String {
        format!("{}-{}", self.version, self.target)
    }

    /// Whether an agent running `running` may install this release: a newer version always,
    /// the same or an older one only if the manifest allows a downgrade and names `running`
    /// as the version it replaces (so it cannot be replayed on another version).
    pub fn permits_upgrade_from(&self, running: Version) -> bool {
        self.version > running
            || (self.allow_downgrade && self.version != running && self.replaces == Some(running))
    }
}

/// Whether `target` is a plain target triple: 1 to [`MAX_TARGET_LEN`] characters of `a-z`,
/// `0-9`, `_`, `.` and `-`, starting with a letter or digit. Nothing else can become part of
/// a release id, a file name or a URL.
pub fn valid_target(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= MAX_TARGET_LEN
        && target
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && target
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Whether `id` has the form of a release id, [`ReleaseManifest::id`]: a version, `-`, and a
/// plain target triple. Central and the tools check ids from URLs with it before they become
/// file names.
pub fn valid_release_id(id: &str) -> bool {
    id.split_once('-')
        .is_some_and(|(version, target)| version.parse::<Version>().is_ok() && valid_target(target))
}

/// Whether a device belongs to the first `percent` percent of a release's rollout. The
/// cohort is `u16::from_be_bytes(SHA-256(release id + "/" + device id)[..2]) % 100 <
/// percent`: stable, so raising the percentage only ever adds devices, and different per
/// release, so the same schools are not always first.
pub fn in_rollout(release_id: &str, device: &str, percent: u8) -> bool {
    let digest = Sha256::digest(format!("{release_id}/{device}").as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % 100 < u16::from(percent)
}

/// The platform's Ed25519 key that signs release manifests. It stays with operations
/// (written by `skolebro-provision init` as `release.key`), apart from the stick key so a
/// leak of one cannot sign the other's blobs; agents and central hold only the
/// [`ReleaseVerifyingKey`].
#[derive(Clone)]
pub struct ReleaseSigningKey(ed25519_dalek::SigningKey);

/// The release key's public half (`release.pub`), installed with every agent and given to
/// central: a manifest is used only if it verifies against this key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReleaseVerifyingKey(ed25519_dalek::VerifyingKey);

signed::key_pair_methods!(
    ReleaseSigningKey,
    ReleaseVerifyingKey,
    ReleaseError,
    "release"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::{PREAMBLE_LEN, SIG_LEN};
    use crate::stick::{StickBody, StickSigningKey};
    use ed25519_dalek::Signer as _;
    use proptest::prelude::*;

    fn signing_key() -> ReleaseSigningKey {
        ReleaseSigningKey::from_bytes([3; 32])
    }

    fn manifest() -> ReleaseManifest {
        ReleaseManifest {
            version: Version::new(1, 2, 3),
            target: "aarch64-unknown-linux-gnu".into(),
            size: 7_340_032,
            sha256: [0x5a; 32],
            allow_downgrade: false,
            created_unix: 1_900_000_000,
            expires_unix: 1_900_000_000 + 30 * 86_400,
            replaces: None,
            floor: Some(Version::new(1, 0, 0)),
        }
    }

    /// A downgrade to 1.2.3 from exactly 1.3.0, valid for a day.
    fn downgrade() -> ReleaseManifest {
        ReleaseManifest {
            allow_downgrade: true,
            replaces: Some(Version::new(1, 3, 0)),
            expires_unix: 1_900_000_000 + 86_400,
            ..manifest()
        }
    }

    #[test]
    fn a_signed_manifest_verifies_to_the_same_manifest() {
        let key = signing_key();
        let bytes = manifest().sign(&key);
        assert_eq!(&bytes[..4], b"SKBR");
        assert_eq!(bytes[4], FORMAT_VERSION);
        let len = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        assert_eq!(bytes.len(), PREAMBLE_LEN + len + SIG_LEN);
        assert_eq!(
            ReleaseManifest::verify(&bytes, &key.verifying_key()),
            Ok(manifest())
        );
        assert_eq!(manifest().id(), "1.2.3-aarch64-unknown-linux-gnu");
        assert!(valid_release_id(&manifest().id()));
        for bad in ["", "1.2.3", "1.2.3-", "1.2-x86_64", "1.2.3-../x", "1.2.3-A"] {
            assert!(!valid_release_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_single_flipped_byte_is_refused() {
        let key = signing_key();
        let public = key.verifying_key();
        let bytes = manifest().sign(&key);
        for position in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut tampered = bytes.clone();
                tampered[position] ^= flip;
                assert!(
                    ReleaseManifest::verify(&tampered, &public).is_err(),
                    "flipping byte {position} with {flip:#04x} was accepted"
                );
            }
        }
    }

    #[test]
    fn flipped_bytes_are_refused_for_the_reason_of_their_section() {
        let key = signing_key();
        let public = key.verifying_key();
        let bytes = manifest().sign(&key);
        let flipped = |position: usize| {
            let mut tampered = bytes.clone();
            tampered[position] ^= 0x01;
            ReleaseManifest::verify(&tampered, &public)
        };
        assert_eq!(flipped(0), Err(ReleaseError::BadMagic));
        assert_eq!(flipped(4), Err(ReleaseError::UnsupportedVersion(3)));
        assert_eq!(flipped(PREAMBLE_LEN), Err(ReleaseError::BadSignature));
        assert_eq!(flipped(bytes.len() - 1), Err(ReleaseError::BadSignature));
    }

    #[test]
    fn a_manifest_signed_by_another_key_is_refused() {
        let bytes = manifest().sign(&ReleaseSigningKey::from_bytes([4; 32]));
        assert_eq!(
            ReleaseManifest::verify(&bytes, &signing_key().verifying_key()),
            Err(ReleaseError::BadSignature)
        );
    }

    #[test]
    fn a_manifest_is_no_stick_bundle_even_under_the_same_key() {
        // One seed for both kinds: only the signed magic keeps them apart.
        let stick_public = StickSigningKey::from_bytes([3; 32]).verifying_key();
        let mut relabelled = manifest().sign(&signing_key());
        relabelled[..4].copy_from_slice(b"SKBS");
        assert!(StickBody::verify(&relabelled, &stick_public).is_err());
        assert_eq!(
            ReleaseManifest::verify(&relabelled, &signing_key().verifying_key()),
            Err(ReleaseError::BadMagic)
        );
    }

    #[test]
    fn truncated_and_padded_manifests_are_refused() {
        let key = signing_key();
        let bytes = manifest().sign(&key);
        for len in 0..bytes.len() {
            assert!(
                ReleaseManifest::verify(&bytes[..len], &key.verifying_key()).is_err(),
                "a manifest cut to {len} bytes was accepted"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(
            ReleaseManifest::verify(&padded, &key.verifying_key()),
            Err(ReleaseError::Malformed(
                "trailing bytes after the signature"
            ))
        );
        let huge = vec![0u8; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            ReleaseManifest::verify(&huge, &key.verifying_key()),
            Err(ReleaseError::TooLarge {
                size: MAX_MANIFEST_BYTES + 1,
                limit: MAX_MANIFEST_BYTES
            })
        );
    }

    #[test]
    fn a_signed_manifest_with_a_target_that_is_not_a_triple_is_refused() {
        let key = signing_key();
        for target in ["", "../../etc", "Aarch64", "a b", &"x".repeat(65)] {
            let mut bad = manifest();
            bad.target = target.into();
            assert_eq!(
                ReleaseManifest::verify(&bad.sign(&key), &key.verifying_key()),
                Err(ReleaseError::Malformed("the target is not a plain triple")),
                "{target:?}"
            );
        }
    }

    #[test]
    fn a_signed_body_that_does_not_decode_is_malformed() {
        let key = signing_key();
        let body = [0xffu8; 16];
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        let signature = key.0.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        assert_eq!(
            ReleaseManifest::verify(&bytes, &key.verifying_key()),
            Err(ReleaseError::Malformed("body does not decode"))
        );
    }

    #[test]
    fn versions_parse_print_and_order_numerically() {
        let v: Version = "1.10.0".parse().unwrap();
        assert_eq!(v, Version::new(1, 10, 0));
        assert_eq!(v.to_string(), "1.10.0");
        assert!(v > "1.9.12".parse().unwrap());
        assert!("0.1.0".parse::<Version>().unwrap() < "0.1.1".parse().unwrap());
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "01.2.3",
            "1.2.-3",
            "+1.2.3",
            "1.2.3-rc1",
            "4294967296.0.0",
            " 1.2.3",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn an_upgrade_must_go_up_unless_a_downgrade_replaces_exactly_the_running_version() {
        let m = manifest();
        assert!(m.permits_upgrade_from(Version::new(1, 2, 2)));
        assert!(!m.permits_upgrade_from(Version::new(1, 2, 3)));
        assert!(!m.permits_upgrade_from(Version::new(2, 0, 0)));
        let d = downgrade();
        assert!(d.permits_upgrade_from(Version::new(1, 3, 0)));
        assert!(!d.permits_upgrade_from(Version::new(2, 0, 0)));
        assert!(!d.permits_upgrade_from(Version::new(1, 2, 3)));
    }

    #[test]
    fn a_signed_downgrade_without_replaces_or_with_a_long_validity_is_refused() {
        let key = signing_key();
        let public = key.verifying_key();
        assert_eq!(
            ReleaseManifest::verify(&downgrade().sign(&key), &public),
            Ok(downgrade())
        );
        let unnamed = ReleaseManifest {
            replaces: None,
            ..downgrade()
        };
        assert_eq!(
            ReleaseManifest::verify(&unnamed.sign(&key), &public),
            Err(ReleaseError::DowngradeWithoutReplaces)
        );
        let long = ReleaseManifest {
            expires_unix: 1_900_000_000 + MAX_DOWNGRADE_VALIDITY_SECS + 1,
            ..downgrade()
        };
        assert_eq!(
            ReleaseManifest::verify(&long.sign(&key), &public),
            Err(ReleaseError::DowngradeTooLong {
                validity_secs: MAX_DOWNGRADE_VALIDITY_SECS + 1,
                limit_secs: MAX_DOWNGRADE_VALIDITY_SECS
            })
        );
    }

    #[test]
    fn a_manifest_expiring_before_its_signing_or_below_its_own_floor_is_malformed() {
        let key = signing_key();
        let stillborn = ReleaseManifest {
            expires_unix: 1_900_000_000,
            ..manifest()
        };
        assert_eq!(
            ReleaseManifest::verify(&stillborn.sign(&key), &key.verifying_key()),
            Err(ReleaseError::Malformed("it expires before it was signed"))
        );
        let under = ReleaseManifest {
            floor: Some(Version::new(1, 2, 4)),
            ..manifest()
        };
        assert_eq!(
            ReleaseManifest::verify(&under.sign(&key), &key.verifying_key()),
            Err(ReleaseError::Malformed(
                "the version is below its own floor"
            ))
        );
        assert!(!manifest().expired_at(manifest().expires_unix - 1));
        assert!(manifest().expired_at(manifest().expires_unix));
    }

    #[test]
    fn a_version_1_manifest_is_checked_then_refused_as_retired() {
        let old = RetiredManifest {
            version: Version::new(1, 2, 3),
            target: "aarch64-unknown-linux-gnu".into(),
            size: 1,
            sha256: [0; 32],
            allow_downgrade: true,
            created_unix: 1,
        };
        let bytes = RETIRED_FORMAT.sign(&old, &signing_key().0);
        assert_eq!(
            ReleaseManifest::verify(&bytes, &signing_key().verifying_key()),
            Err(ReleaseError::Retired(1))
        );
        let forged = RETIRED_FORMAT.sign(&old, &ReleaseSigningKey::from_bytes([4; 32]).0);
        assert_eq!(
            ReleaseManifest::verify(&forged, &signing_key().verifying_key()),
            Err(ReleaseError::BadSignature)
        );
    }

    #[test]
    fn rollout_cohorts_are_stable_and_grow_with_the_percentage() {
        let id = manifest().id();
        let devices: Vec<String> = (0..1000).map(|n| format!("4601-12345-{n:08x}")).collect();
        let members = |percent| {
            devices
                .iter()
                .filter(|d| in_rollout(&id, d, percent))
                .count()
        };
        assert_eq!(members(0), 0);
        assert_eq!(members(100), 1000);
        let ten = members(10);
        assert!((50..=150).contains(&ten), "{ten} of 1000 at 10%");
        for device in &devices {
            if in_rollout(&id, device, 10) {
                assert!(in_rollout(&id, device, 11));
            }
        }
        // The documented formula, spelt out once.
        let digest = Sha256::digest(format!("{id}/{}", devices[0]).as_bytes());
        let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
        assert!(in_rollout(&id, &devices[0], (bucket + 1) as u8));
        assert!(!in_rollout(&id, &devices[0], bucket as u8));
    }

    #[test]
    fn keys_round_trip_through_their_hex_files() {
        let key = ReleaseSigningKey::generate().unwrap();
        let again = ReleaseSigningKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes());
        let public = ReleaseVerifyingKey::from_hex(&format!("{}\n", key.verifying_key().to_hex()));
        assert_eq!(public, Ok(key.verifying_key()));
        assert!(ReleaseVerifyingKey::from_hex("abcd").is_err());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            ReleaseVerifyingKey::from_bytes(identity),
            Err(ReleaseError::InvalidKey(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ReleaseManifest::verify(&bytes, &signing_key().verifying_key());
        }

        #[test]
        fn arbitrary_bytes_behind_a_valid_preamble_never_panic(
            len in any::<u32>(),
            rest in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(FORMAT_VERSION);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&rest);
            prop_assert!(ReleaseManifest::verify(&bytes, &signing_key().verifying_key()).is_err());
        }

        #[test]
        fn arbitrary_text_never_panics_as_a_version(text in ".{0,40}") {
            if let Ok(version) = text.parse::<Version>() {
                prop_assert_eq!(version.to_string(), text);
            }
        }
    }
}
