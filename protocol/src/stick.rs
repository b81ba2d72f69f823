//! The signed stick bundle (DESIGN decision 6): what a USB config stick carries so that a
//! school's Pi can enroll itself without anyone copying a key or a config file by hand.
//!
//! Operations write it: `skolebro-provision stick` fills a [`StickBody`] (site, central's
//! address, CA certificate and sealing key, a one-time enrollment token, the agent's
//! settings), registers the token with central, signs the body with the platform's stick key
//! ([`StickBody::sign`]) and writes the bytes to `SKOLEBRO/BUNDLE.SKB` on the stick. The agent
//! reads it: it finds the file, checks it against the stick key installed with the agent
//! ([`StickBody::verify`]) and the token's expiry ([`StickBody::check_expiry`]), and only then
//! uses anything in it to enroll. A bundle that fails any check changes nothing on the device.
//!
//! The bundle carries no personal data, and its token is spent at the first enrollment, so a
//! lost stick is useless once its Pi has enrolled (or once the token expires).
//!
//! # Wire format (version 5; versions 1 to 4 are still read)
//! ```text
//! "SKBS"        4 bytes magic
//! version       1 byte, FORMAT_VERSION (5), or 1 to 4 for a stick written before it
//! body_len      u32 little-endian
//! body          postcard-encoded `StickBody`, body_len bytes (version 1: without `schools`,
//!               version 2: without `drop_share`, version 3: without `share_source`,
//!               version 4: without `share_source.after`)
//! signature     Ed25519, 64 bytes, over every byte before it (magic to the end of the body)
//! ```
//! Nothing may follow the signature, and the whole bundle is at most [`MAX_BUNDLE_BYTES`].
//! The signed bytes begin with the magic, so a stick signature can never be mistaken for a
//! signature over anything else.
//!
//! Version 2 added the site's registered schools ([`StickBody::schools`]). A version 1 stick
//! still verifies and reads with no schools: its agent then refuses no school, and central
//! still does. Version 3 added the SMB drop share's settings ([`StickBody::drop_share`]); an
//! older stick reads without them, and its Pi's share keeps what school IT set by hand.
//! Version 4 added the share the agent pulls exports from ([`StickBody::share_source`]); an
//! older stick reads without it, and its agent takes its source from `agent.toml`.
//! Version 5 added what becomes of a pulled export once central has it
//! ([`PullShare::after`]: deleted, or moved into a folder of the share, as the text
//! `delete` or `move:<folder>`); a version 4 stick's share deletes.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::drop_share::DropShare;
use crate::envelope::{InvalidId, SiteId};
use crate::pull_share::{PullShare, PullShareV4};
use crate::signed::{self, FrameError};
use crate::site::SiteSchool;

/// Marks the bytes as a skolebro stick bundle, so a stray file on a stick is refused as
/// [`StickError::BadMagic`] before anything is decoded.
pub const MAGIC: [u8; 4] = *b"SKBS";

/// The bundle format this build writes. It reads this one and [`OLDEST_FORMAT_VERSION`]; a
/// bundle of another version is refused ([`StickError::UnsupportedVersion`]) rather than
/// guessed at.
pub const FORMAT_VERSION: u8 = 5;

/// The oldest bundle format this build still reads: version 1, before sticks carried the
/// site's schools, so sticks written by an older `skolebro-provision` keep working.
pub const OLDEST_FORMAT_VERSION: u8 = 1;

/// Version 2: the site's schools, before sticks carried the drop share's settings.
const SCHOOLS_FORMAT_VERSION: u8 = 2;

/// Version 3: the drop share's settings, before sticks carried the pull share's.
const DROP_SHARE_FORMAT_VERSION: u8 = 3;

/// Version 4: the pull share's settings, before they said what becomes of a pulled export.
const PULL_SHARE_FORMAT_VERSION: u8 = 4;

/// Upper bound of a whole bundle. A real one is a few KiB (mostly the CA certificate and the
/// settings); the bound keeps a hostile file on a stick from costing the Pi more than a read
/// of 1 MiB.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// Folder on the stick that holds the bundle. Upper case and 8.3-safe, because sticks are
/// FAT32 and are written on whatever machine operations use.
pub const BUNDLE_DIR: &str = "SKOLEBRO";

/// The bundle's file name inside [`BUNDLE_DIR`], 8.3-safe like the folder.
pub const BUNDLE_FILE: &str = "BUNDLE.SKB";

/// The bundle's framing (see [`crate::signed`]).
const FORMAT: signed::Format = signed::Format {
    magic: MAGIC,
    version: FORMAT_VERSION,
    max_bytes: MAX_BUNDLE_BYTES,
};

/// Every reason a bundle or a stick key is refused. Each refusal has its own variant so the
/// agent can tell an operator exactly why a stick was not used (a tampered stick is an alarm,
/// an expired one just needs a new stick).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StickError {
    /// The input is larger than [`MAX_BUNDLE_BYTES`]; checked before anything is read from it.
    #[error("stick bundle is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The input ends before the bundle its own length field describes.
    #[error("stick bundle is truncated")]
    Truncated,
    /// The input does not start with [`MAGIC`]: not a stick bundle at all.
    #[error("not a stick bundle (bad magic)")]
    BadMagic,
    /// A bundle of a format version this build does not know.
    #[error("unsupported stick bundle version {0}")]
    UnsupportedVersion(u8),
    /// The signature does not verify against the stick key: the bundle was altered, or
    /// signed by another key than the platform's.
    #[error("stick bundle signature does not verify against the stick key")]
    BadSignature,
    /// Correctly signed but not a well-formed bundle (trailing bytes, a body that does not
    /// decode).
    #[error("malformed stick bundle: {0}")]
    Malformed(&'static str),
    /// The enrollment token expired; the stick must be written again.
    #[error("the stick's enrollment token expired at {expires_unix} (now {now_unix})")]
    Expired { expires_unix: u64, now_unix: u64 },
    /// Key bytes or key text that do not form a usable stick key.
    #[error("invalid stick key: {0}")]
    InvalidKey(&'static str),
    /// The operating system's random number generator failed; no key was generated.
    #[error("system randomness unavailable")]
    Randomness,
}

impl From<FrameError> for StickError {
    fn from(error: FrameError) -> StickError {
        match error {
            FrameError::TooLarge { size, limit } => StickError::TooLarge { size, limit },
            FrameError::Truncated => StickError::Truncated,
            FrameError::BadMagic => StickError::BadMagic,
            FrameError::UnsupportedVersion(version) => StickError::UnsupportedVersion(version),
            FrameError::BadSignature => StickError::BadSignature,
            FrameError::Malformed(what) => StickError::Malformed(what),
        }
    }
}

/// The school a stick is for, as operations know it: the Norwegian county (fylke, 2 digits),
/// municipality (kommune, 4 digits) and school number, plus a name for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub fylke: String,
    pub kommune: String,
    pub skolenummer: String,
    pub name: String,
}

impl SiteInfo {
    /// The site id `<kommune>-<skolenummer>` (e.g. `4601-12345`): unique nationally, because
    /// school numbers are unique within a municipality, and readable in logs.
    pub fn site_id(&self) -> Result<SiteId, InvalidId> {
        SiteId::new(format!("{}-{}", self.kommune, self.skolenummer))
    }
}

/// Everything a Pi needs to enroll and start work: which site it serves, where central is and
/// how to recognise it, what to seal to, the one-time token, and the site's agent settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickBody {
    pub site: SiteInfo,
    /// `<kommune>-<skolenummer>`, see [`SiteInfo::site_id`].
    pub site_id: SiteId,
    /// `https://host:port` of central's device listener.
    pub central_url: String,
    /// Central's CA certificate (PEM): the only CA the agent trusts for central.
    pub central_ca_pem: String,
    /// Central's X25519 public key, which every payload is sealed to.
    pub sealing_key: [u8; 32],
    /// The one-time enrollment token: 32 random bytes as lowercase hex. Never logged; lists
    /// and logs show [`StickBody::token_id`].
    pub token: String,
    /// When the token stops being accepted, Unix seconds.
    pub token_expires_unix: u64,
    /// When the stick was written, Unix seconds.
    pub written_unix: u64,
    /// The site's agent settings (agent.toml syntax) without `[central]`, `[identity]` or
    /// `state_dir`, which enrollment and the device itself decide.
    pub settings_toml: String,
    /// The schools the site is registered with at central (format version 2): the agent
    /// refuses an export naming any other. Empty for a version 1 stick, whose agent then
    /// refuses none (central still does).
    pub schools: Vec<SiteSchool>,
    /// The SMB drop share's settings (format version 3), password as Samba's hash only;
    /// `None` leaves the share as school IT set it up by hand.
    pub drop_share: Option<DropShare>,
    /// The share on the school's file server the agent pulls exports from (format version
    /// 4, with what becomes of a pulled export since version 5), password as its NT hash
    /// only; `None` leaves the source to `agent.toml`.
    pub share_source: Option<PullShare>,
}

/// A version 1 body: [`StickBody`] before it carried the site's schools. Only read (the
/// tests write one, to read it back).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StickBodyV1 {
    site: SiteInfo,
    site_id: SiteId,
    central_url: String,
    central_ca_pem: String,
    sealing_key: [u8; 32],
    token: String,
    token_expires_unix: u64,
    written_unix: u64,
    settings_toml: String,
}

impl From<StickBodyV1> for StickBody {
    fn from(v1: StickBodyV1) -> StickBody {
        StickBody {
            site: v1.site,
            site_id: v1.site_id,
            central_url: v1.central_url,
            central_ca_pem: v1.central_ca_pem,
            sealing_key: v1.sealing_key,
            token: v1.token,
            token_expires_unix: v1.token_expires_unix,
            written_unix: v1.written_unix,
            settings_toml: v1.settings_toml,
            schools: Vec::new(),
            drop_share: None,
            share_source: None,
        }
    }
}

/// A version 2 body: [`StickBody`] before it carried the drop share's settings. Only read.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StickBodyV2 {
    site: SiteInfo,
    site_id: SiteId,
    central_url: String,
    central_ca_pem: String,
    sealing_key: [u8; 32],
    token: String,
    token_expires_unix: u64,
    written_unix: u64,
    settings_toml: String,
    schools: Vec<SiteSchool>,
}

impl From<StickBodyV2> for StickBody {
    fn from(v2: StickBodyV2) -> StickBody {
        StickBody {
            site: v2.site,
            site_id: v2.site_id,
            central_url: v2.central_url,
            central_ca_pem: v2.central_ca_pem,
            sealing_key: v2.sealing_key,
            token: v2.token,
            token_expires_unix: v2.token_expires_unix,
            written_unix: v2.written_unix,
            settings_toml: v2.settings_toml,
            schools: v2.schools,
            drop_share: None,
            share_source: None,
        }
    }
}

/// A version 3 body: [`StickBody`] before it carried the pull share's settings. Only read.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StickBodyV3 {
    site: SiteInfo,
    site_id: SiteId,
    central_url: String,
    central_ca_pem: String,
    sealing_key: [u8; 32],
    token: String,
    token_expires_unix: u64,
    written_unix: u64,
    settings_toml: String,
    schools: Vec<SiteSchool>,
    drop_share: Option<DropShare>,
}

impl From<StickBodyV3> for StickBody {
    fn from(v3: StickBodyV3) -> StickBody {
        StickBody {
            site: v3.site,
            site_id: v3.site_id,
            central_url: v3.central_url,
            central_ca_pem: v3.central_ca_pem,
            sealing_key: v3.sealing_key,
            token: v3.token,
            token_expires_unix: v3.token_expires_unix,
            written_unix: v3.written_unix,
            settings_toml: v3.settings_toml,
            schools: v3.schools,
            drop_share: v3.drop_share,
            share_source: None,
        }
    }
}

/// A version 4 body: [`StickBody`] before its pull share said what becomes of a pulled
/// export ([`PullShareV4`]). Only read.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StickBodyV4 {
    site: SiteInfo,
    site_id: SiteId,
    central_url: String,
    central_ca_pem: String,
    sealing_key: [u8; 32],
    token: String,
    token_expires_unix: u64,
    written_unix: u64,
    settings_toml: String,
    schools: Vec<SiteSchool>,
    drop_share: Option<DropShare>,
    share_source: Option<PullShareV4>,
}

impl From<StickBodyV4> for StickBody {
    fn from(v4: StickBodyV4) -> StickBody {
        StickBody {
            site: v4.site,
            site_id: v4.site_id,
            central_url: v4.central_url,
            central_ca_pem: v4.central_ca_pem,
            sealing_key: v4.sealing_key,
            token: v4.token,
            token_expires_unix: v4.token_expires_unix,
            written_unix: v4.written_unix,
            settings_toml: v4.settings_toml,
            schools: v4.schools,
            drop_share: v4.drop_share,
            share_source: v4.share_source.map(PullShare::from),
        }
    }
}

impl fmt::Debug for StickBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token, not even in a panic message; its id is enough to find it.
        f.debug_struct("StickBody")
            .field("site", &self.site)
            .field("site_id", &self.site_id)
            .field("central_url", &self.central_url)
            .field("central_ca_pem", &self.central_ca_pem)
            .field("sealing_key", &hex::encode(self.sealing_key))
            .field("token_id", &self.token_id())
            .field("token_expires_unix", &self.token_expires_unix)
            .field("written_unix", &self.written_unix)
            .field("settings_toml", &self.settings_toml)
            .field("schools", &self.schools)
            .field("drop_share", &self.drop_share)
            .field("share_source", &self.share_source)
            .finish()
    }
}

impl StickBody {
    /// The bundle bytes, signed with the platform's stick key. The body is never larger than
    /// the caller's strings; the caller keeps the settings small enough for the whole to stay
    /// within [`MAX_BUNDLE_BYTES`], or [`StickBody::verify`] will refuse the result.
    pub fn sign(&self, key: &StickSigningKey) -> Vec<u8> {
        FORMAT.sign(self, &key.0)
    }

    /// Checks a bundle read from a stick and returns its body. Checks run cheapest first and
    /// nothing is decoded before the signature holds: size, magic, version, length,
    /// signature, then the body. A version 1 bundle reads with no schools, a version 1 or 2
    /// one without drop share settings, a version 1 to 3 one without a pull share, and a
    /// version 4 one's pull share deletes what it pulled. Never panics, whatever the bytes.
    pub fn verify(bytes: &[u8], key: &StickVerifyingKey) -> Result<StickBody, StickError> {
        let accepted = [
            OLDEST_FORMAT_VERSION,
            SCHOOLS_FORMAT_VERSION,
            DROP_SHARE_FORMAT_VERSION,
            PULL_SHARE_FORMAT_VERSION,
            FORMAT_VERSION,
        ];
        let (version, body) = FORMAT.verify_frame(bytes, &key.0, &accepted)?;
        match version {
            OLDEST_FORMAT_VERSION => Ok(signed::decode::<StickBodyV1>(body)?.into()),
            SCHOOLS_FORMAT_VERSION => Ok(signed::decode::<StickBodyV2>(body)?.into()),
            DROP_SHARE_FORMAT_VERSION => Ok(signed::decode::<StickBodyV3>(body)?.into()),
            PULL_SHARE_FORMAT_VERSION => Ok(signed::decode::<StickBodyV4>(body)?.into()),
            _ => Ok(signed::decode(body)?),
        }
    }

    /// Refuses a bundle whose token has expired at `now_unix` (the token is valid strictly
    /// before `token_expires_unix`). Separate from [`StickBody::verify`] because this crate
    /// reads no clock: the agent passes the time it trusts (DESIGN decision 8).
    pub fn check_expiry(&self, now_unix: u64) -> Result<(), StickError> {
        if now_unix >= self.token_expires_unix {
            return Err(StickError::Expired {
                expires_unix: self.token_expires_unix,
                now_unix,
            });
        }
        Ok(())
    }

    /// The token's id, [`token_id`] of the token: what lists, logs and the admin API show.
    pub fn token_id(&self) -> String {
        token_id(&self.token)
    }
}

/// SHA-256 of the token's text (its lowercase hex, as written on the stick and sent to
/// `/v1/enroll`): the only form central stores, so a leaked database cannot enroll a device.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The first 16 hex characters of [`token_sha256`]: enough to tell tokens apart in a list,
/// and safe to print, unlike the token.
pub fn token_id(token: &str) -> String {
    hex::encode(&token_sha256(token)[..8])
}

/// The platform's Ed25519 key that signs stick bundles. It stays with operations (written by
/// `skolebro-provision init` as `stick.key`); agents hold only the [`StickVerifyingKey`].
#[derive(Clone)]
pub struct StickSigningKey(ed25519_dalek::SigningKey);

signed::key_pair_methods!(StickSigningKey, StickVerifyingKey, StickError, "stick");

/// The stick key's public half, installed with the agent: a bundle is used only if it
/// verifies against this key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StickVerifyingKey(ed25519_dalek::VerifyingKey);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull_share::AfterPull;
    use crate::signed::{PREAMBLE_LEN, SIG_LEN};
    use ed25519_dalek::Signer as _;
    use proptest::prelude::*;

    fn signing_key() -> StickSigningKey {
        StickSigningKey::from_bytes([7; 32])
    }

    fn body() -> StickBody {
        let site = SiteInfo {
            fylke: "46".into(),
            kommune: "4601".into(),
            skolenummer: "12345".into(),
            name: "Eksempel skole".into(),
        };
        StickBody {
            site_id: site.site_id().unwrap(),
            site,
            central_url: "https://127.0.0.1:8443".into(),
            central_ca_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
            sealing_key: [9; 32],
            token: "ab".repeat(32),
            token_expires_unix: 2_000_000_000,
            written_unix: 1_900_000_000,
            settings_toml: "drop_dir = \"/srv/export\"\n".into(),
            schools: vec![crate::site::SiteSchool::new(
                "4601",
                Some("12345"),
                None,
                "Eksempel skole",
            )
            .unwrap()],
            drop_share: Some(DropShare {
                enabled: true,
                account: "skolebro-drop".into(),
                size_cap_mib: 64,
                password_nt_hash: Some(crate::drop_share::nt_hash("Drop-share-pass-1")),
            }),
            share_source: Some(PullShare {
                server: "filserver.skule.example.no".into(),
                port: 445,
                share: "Eksport".into(),
                folder: "sas".into(),
                pattern: "*.csv".into(),
                user: "skolebro-les".into(),
                domain: None,
                password_nt_hash: crate::drop_share::nt_hash("Pull-share-pass-1"),
                poll_seconds: 60,
                stable_seconds: 10,
                after: AfterPull::Move("hentet".into()),
            }),
        }
    }

    #[test]
    fn a_version_1_bundle_still_verifies_and_reads_without_schools() {
        let key = signing_key();
        let body = body();
        let v1 = StickBodyV1 {
            site: body.site.clone(),
            site_id: body.site_id.clone(),
            central_url: body.central_url.clone(),
            central_ca_pem: body.central_ca_pem.clone(),
            sealing_key: body.sealing_key,
            token: body.token.clone(),
            token_expires_unix: body.token_expires_unix,
            written_unix: body.written_unix,
            settings_toml: body.settings_toml.clone(),
        };
        let format_v1 = signed::Format {
            version: OLDEST_FORMAT_VERSION,
            ..FORMAT
        };
        let bytes = format_v1.sign(&v1, &key.0);
        let read = StickBody::verify(&bytes, &key.verifying_key()).unwrap();
        assert_eq!(read.schools, []);
        assert_eq!(
            StickBody {
                schools: Vec::new(),
                drop_share: None,
                share_source: None,
                ..body
            },
            read
        );
    }

    #[test]
    fn a_version_2_bundle_still_verifies_and_reads_without_drop_share_settings() {
        let key = signing_key();
        let body = body();
        let v2 = StickBodyV2 {
            site: body.site.clone(),
            site_id: body.site_id.clone(),
            central_url: body.central_url.clone(),
            central_ca_pem: body.central_ca_pem.clone(),
            sealing_key: body.sealing_key,
            token: body.token.clone(),
            token_expires_unix: body.token_expires_unix,
            written_unix: body.written_unix,
            settings_toml: body.settings_toml.clone(),
            schools: body.schools.clone(),
        };
        let format_v2 = signed::Format {
            version: SCHOOLS_FORMAT_VERSION,
            ..FORMAT
        };
        let read = StickBody::verify(&format_v2.sign(&v2, &key.0), &key.verifying_key()).unwrap();
        assert_eq!(
            StickBody {
                drop_share: None,
                share_source: None,
                ..body
            },
            read
        );
    }

    #[test]
    fn a_version_3_bundle_still_verifies_and_reads_without_a_pull_share() {
        let key = signing_key();
        let body = body();
        let v3 = StickBodyV3 {
            site: body.site.clone(),
            site_id: body.site_id.clone(),
            central_url: body.central_url.clone(),
            central_ca_pem: body.central_ca_pem.clone(),
            sealing_key: body.sealing_key,
            token: body.token.clone(),
            token_expires_unix: body.token_expires_unix,
            written_unix: body.written_unix,
            settings_toml: body.settings_toml.clone(),
            schools: body.schools.clone(),
            drop_share: body.drop_share.clone(),
        };
        let format_v3 = signed::Format {
            version: DROP_SHARE_FORMAT_VERSION,
            ..FORMAT
        };
        let read = StickBody::verify(&format_v3.sign(&v3, &key.0), &key.verifying_key()).unwrap();
        assert_eq!(
            StickBody {
                share_source: None,
                ..body
            },
            read
        );
    }

    #[test]
    fn a_version_4_bundle_still_verifies_and_its_pull_share_deletes() {
        let key = signing_key();
        let body = body();
        let share = body.share_source.clone().unwrap();
        let v4 = StickBodyV4 {
            site: body.site.clone(),
            site_id: body.site_id.clone(),
            central_url: body.central_url.clone(),
            central_ca_pem: body.central_ca_pem.clone(),
            sealing_key: body.sealing_key,
            token: body.token.clone(),
            token_expires_unix: body.token_expires_unix,
            written_unix: body.written_unix,
            settings_toml: body.settings_toml.clone(),
            schools: body.schools.clone(),
            drop_share: body.drop_share.clone(),
            share_source: Some(PullShareV4 {
                server: share.server.clone(),
                port: share.port,
                share: share.share.clone(),
                folder: share.folder.clone(),
                pattern: share.pattern.clone(),
                user: share.user.clone(),
                domain: share.domain.clone(),
                password_nt_hash: share.password_nt_hash.clone(),
                poll_seconds: share.poll_seconds,
                stable_seconds: share.stable_seconds,
            }),
        };
        let format_v4 = signed::Format {
            version: PULL_SHARE_FORMAT_VERSION,
            ..FORMAT
        };
        let read = StickBody::verify(&format_v4.sign(&v4, &key.0), &key.verifying_key()).unwrap();
        assert_eq!(
            StickBody {
                share_source: Some(PullShare {
                    after: AfterPull::Delete,
                    ..share
                }),
                ..body
            },
            read
        );
    }

    #[test]
    fn a_signed_bundle_verifies_to_the_same_body() {
        let key = signing_key();
        let bytes = body().sign(&key);
        assert_eq!(&bytes[..4], b"SKBS");
        assert_eq!(bytes[4], FORMAT_VERSION);
        let len = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        assert_eq!(bytes.len(), PREAMBLE_LEN + len + SIG_LEN);
        assert_eq!(StickBody::verify(&bytes, &key.verifying_key()), Ok(body()));
    }

    #[test]
    fn every_single_flipped_byte_is_refused() {
        let key = signing_key();
        let public = key.verifying_key();
        let bytes = body().sign(&key);
        for position in 0..bytes.len() {
            for flip in [0x01u8, 0xff] {
                let mut tampered = bytes.clone();
                tampered[position] ^= flip;
                assert!(
                    StickBody::verify(&tampered, &public).is_err(),
                    "flipping byte {position} with {flip:#04x} was accepted"
                );
            }
        }
    }

    #[test]
    fn flipped_bytes_are_refused_for_the_reason_of_their_section() {
        let key = signing_key();
        let public = key.verifying_key();
        let bytes = body().sign(&key);
        let flipped = |position: usize| {
            let mut tampered = bytes.clone();
            tampered[position] ^= 0x01;
            StickBody::verify(&tampered, &public)
        };
        assert_eq!(flipped(0), Err(StickError::BadMagic));
        // Version 5 with bit 0 flipped is 4, which is read but signed over other bytes.
        assert_eq!(flipped(4), Err(StickError::BadSignature));
        assert_eq!(flipped(PREAMBLE_LEN), Err(StickError::BadSignature));
        assert_eq!(flipped(bytes.len() - 1), Err(StickError::BadSignature));
    }

    #[test]
    fn a_bundle_signed_by_another_key_is_refused() {
        let bytes = body().sign(&StickSigningKey::from_bytes([8; 32]));
        assert_eq!(
            StickBody::verify(&bytes, &signing_key().verifying_key()),
            Err(StickError::BadSignature)
        );
    }

    #[test]
    fn an_expired_token_is_refused_by_check_expiry() {
        let body = body();
        assert_eq!(body.check_expiry(body.token_expires_unix - 1), Ok(()));
        assert_eq!(
            body.check_expiry(body.token_expires_unix),
            Err(StickError::Expired {
                expires_unix: body.token_expires_unix,
                now_unix: body.token_expires_unix,
            })
        );
        assert!(body.check_expiry(u64::MAX).is_err());
    }

    #[test]
    fn truncated_bundles_are_refused_at_every_length() {
        let key = signing_key();
        let bytes = body().sign(&key);
        for len in 0..bytes.len() {
            let result = StickBody::verify(&bytes[..len], &key.verifying_key());
            assert!(result.is_err(), "a bundle cut to {len} bytes was accepted");
        }
        assert_eq!(
            StickBody::verify(&bytes[..bytes.len() - 1], &key.verifying_key()),
            Err(StickError::Truncated)
        );
        assert_eq!(
            StickBody::verify(&[], &key.verifying_key()),
            Err(StickError::Truncated)
        );
    }

    #[test]
    fn trailing_bytes_after_the_signature_are_refused() {
        let key = signing_key();
        let mut bytes = body().sign(&key);
        bytes.push(0);
        assert_eq!(
            StickBody::verify(&bytes, &key.verifying_key()),
            Err(StickError::Malformed("trailing bytes after the signature"))
        );
    }

    #[test]
    fn an_oversized_bundle_is_refused_before_it_is_read() {
        let key = signing_key();
        let mut big = body();
        big.settings_toml = "#".repeat(MAX_BUNDLE_BYTES);
        let bytes = big.sign(&key);
        assert_eq!(
            StickBody::verify(&bytes, &key.verifying_key()),
            Err(StickError::TooLarge {
                size: bytes.len(),
                limit: MAX_BUNDLE_BYTES
            })
        );
    }

    #[test]
    fn a_length_field_past_the_end_is_truncated_not_a_panic() {
        let key = signing_key();
        let mut bytes = body().sign(&key);
        bytes[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            StickBody::verify(&bytes, &key.verifying_key()),
            Err(StickError::Truncated)
        );
    }

    #[test]
    fn garbage_is_refused_as_not_a_bundle() {
        let public = signing_key().verifying_key();
        assert_eq!(
            StickBody::verify(b"[central]\nurl = \"x\"\n", &public),
            Err(StickError::BadMagic)
        );
        let mut wrong_version = body().sign(&signing_key());
        wrong_version[4] = 6;
        assert_eq!(
            StickBody::verify(&wrong_version, &public),
            Err(StickError::UnsupportedVersion(6))
        );
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
            StickBody::verify(&bytes, &key.verifying_key()),
            Err(StickError::Malformed("body does not decode"))
        );
    }

    #[test]
    fn keys_round_trip_through_their_hex_files() {
        let key = StickSigningKey::generate().unwrap();
        let file = format!("{}\n", key.to_hex());
        assert_eq!(file.len(), 65);
        let again = StickSigningKey::from_hex(&file).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes());
        let public = StickVerifyingKey::from_hex(&format!("{}\n", key.verifying_key().to_hex()));
        assert_eq!(public, Ok(key.verifying_key()));
        assert!(StickVerifyingKey::from_hex("abcd").is_err());
        assert!(StickSigningKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_weak_verifying_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            StickVerifyingKey::from_bytes(identity),
            Err(StickError::InvalidKey(_))
        ));
    }

    #[test]
    fn the_token_id_is_the_start_of_the_token_hash_and_debug_hides_the_token() {
        let body = body();
        assert_eq!(
            body.token_id(),
            hex::encode(token_sha256(&body.token))[..16]
        );
        let debug = format!("{body:?}");
        assert!(!debug.contains(&body.token));
        assert!(debug.contains(&body.token_id()));
        let pull_hash = &body.share_source.as_ref().unwrap().password_nt_hash;
        assert!(!debug.contains(pull_hash.as_str()));
        assert!(!format!("{:?}", signing_key()).contains(&signing_key().to_hex()));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = StickBody::verify(&bytes, &signing_key().verifying_key());
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
            prop_assert!(StickBody::verify(&bytes, &signing_key().verifying_key()).is_err());
        }
    }
}
