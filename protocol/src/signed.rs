//! The signed-blob framing shared by the stick bundle ([`crate::stick`]) and the release
//! manifest ([`crate::release`]): both are a postcard body behind a magic, a format version
//! and a length, followed by an Ed25519 signature over every byte before it.
//!
//! ```text
//! magic         4 bytes, one per kind of blob ("SKBS" stick, "SKBR" release)
//! version       1 byte
//! body_len      u32 little-endian
//! body          postcard, body_len bytes
//! signature     Ed25519, 64 bytes, over magic to the end of the body
//! ```
//! The magic is signed, so a signature over one kind of blob can never pass for another, and
//! each kind has its own key besides. Checks run cheapest first and nothing is decoded before
//! the signature holds.

use ed25519_dalek::{Signature, Signer as _};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Magic, version and body length: what is read before the body.
pub(crate) const PREAMBLE_LEN: usize = 4 + 1 + 4;
/// Length of an Ed25519 signature.
pub(crate) const SIG_LEN: usize = 64;

/// One kind of signed blob: its magic, the only format version read, and its size bound.
pub(crate) struct Format {
    pub magic: [u8; 4],
    pub version: u8,
    pub max_bytes: usize,
}

/// Why a blob was refused; each kind of blob maps these onto its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    TooLarge { size: usize, limit: usize },
    Truncated,
    BadMagic,
    UnsupportedVersion(u8),
    BadSignature,
    Malformed(&'static str),
}

impl Format {
    /// The framed, signed bytes of `body`.
    pub(crate) fn sign<T: Serialize>(&self, body: &T, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
        let body = postcard::to_allocvec(body).expect("a plain struct always serialises");
        // A body that does not fit a u32 is far beyond any `max_bytes`; writing the saturated
        // length keeps the blob unverifiable instead of wrapping around.
        let body_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len() + SIG_LEN);
        out.extend_from_slice(&self.magic);
        out.push(self.version);
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(&body);
        let signature = key.sign(&out);
        out.extend_from_slice(&signature.to_bytes());
        out
    }

    /// Checks the framing and the signature of `bytes`, then decodes the body. Never panics,
    /// whatever the bytes.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<T, FrameError> {
        let (_, body) = self.verify_frame(bytes, key, &[self.version])?;
        decode(body)
    }

    /// Checks the framing and the signature of `bytes` for any of the `accepted` versions,
    /// and returns the version with the body's bytes, for a kind of blob that still reads an
    /// older version than it writes. Never panics, whatever the bytes.
    pub(crate) fn verify_frame<'a>(
        &self,
        bytes: &'a [u8],
        key: &ed25519_dalek::VerifyingKey,
        accepted: &[u8],
    ) -> Result<(u8, &'a [u8]), FrameError> {
        if bytes.len() > self.max_bytes {
            return Err(FrameError::TooLarge {
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        let magic = bytes.get(..4).ok_or(FrameError::Truncated)?;
        if magic != self.magic {
            return Err(FrameError::BadMagic);
        }
        let version = *bytes.get(4).ok_or(FrameError::Truncated)?;
        if !accepted.contains(&version) {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let len = bytes.get(5..PREAMBLE_LEN).ok_or(FrameError::Truncated)?;
        let body_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        let signed_len = usize::try_from(body_len)
            .ok()
            .and_then(|n| n.checked_add(PREAMBLE_LEN))
            .ok_or(FrameError::Truncated)?;
        let total = signed_len
            .checked_add(SIG_LEN)
            .ok_or(FrameError::Truncated)?;
        if bytes.len() < total {
            return Err(FrameError::Truncated);
        }
        if bytes.len() > total {
            return Err(FrameError::Malformed("trailing bytes after the signature"));
        }
        let (signed, signature) = bytes.split_at(signed_len);
        let signature: [u8; SIG_LEN] = signature
            .try_into()
            .map_err(|_| FrameError::Malformed("signature is not 64 bytes"))?;
        key.verify_strict(signed, &Signature::from_bytes(&signature))
            .map_err(|_| FrameError::BadSignature)?;
        Ok((version, &signed[PREAMBLE_LEN..]))
    }
}

impl Format {
    /// Decodes the body of `bytes` **without** checking the signature, and returns it with
    /// the length of the signed blob (preamble, body and signature): only for choosing the
    /// key that then checks it, never for trusting what it says.
    pub(crate) fn peek<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), FrameError> {
        if bytes.len() > self.max_bytes {
            return Err(FrameError::TooLarge {
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        if bytes.get(..4).ok_or(FrameError::Truncated)? != self.magic {
            return Err(FrameError::BadMagic);
        }
        let version = *bytes.get(4).ok_or(FrameError::Truncated)?;
        if version != self.version {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let len = bytes.get(5..PREAMBLE_LEN).ok_or(FrameError::Truncated)?;
        let body_len = usize::try_from(u32::from_le_bytes([len[0], len[1], len[2], len[3]]))
            .map_err(|_| FrameError::Truncated)?;
        let end = PREAMBLE_LEN
            .checked_add(body_len)
            .ok_or(FrameError::Truncated)?;
        let body = bytes.get(PREAMBLE_LEN..end).ok_or(FrameError::Truncated)?;
        let frame_len = end.checked_add(SIG_LEN).ok_or(FrameError::Truncated)?;
        if bytes.len() < frame_len {
            return Err(FrameError::Truncated);
        }
        Ok((decode(body)?, frame_len))
    }
}

/// Decodes a verified body; the whole body must be one value.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(body) {
        Ok((body, [])) => Ok(body),
        Ok(_) => Err(FrameError::Malformed("trailing bytes after the body")),
        Err(_) => Err(FrameError::Malformed("body does not decode")),
    }
}

/// 32 bytes from the text of a key file: 64 hex characters, surrounding whitespace ignored.
pub(crate) fn decode_key_hex(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
    Some(bytes)
}

/// A fresh Ed25519 key from the operating system's randomness, or `None` if it failed.
pub(crate) fn generate_key() -> Option<ed25519_dalek::SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).ok()?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    seed.fill(0);
    Some(key)
}

/// An Ed25519 public key from its bytes, refusing bytes that are not a curve point and
/// low-order ("weak") keys, for which signatures could be forged.
pub(crate) fn verifying_key(bytes: [u8; 32]) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key")?;
    if key.is_weak() {
        return Err("a weak (low-order) Ed25519 key");
    }
    Ok(key)
}

/// The methods of a blob kind's key pair: `$signing` and `$verifying` are newtypes around
/// `ed25519_dalek::SigningKey` / `VerifyingKey`, `$error` has `InvalidKey(&'static str)` and
/// `Randomness` variants, and `$file` is the stem of the key files (`stick` for `stick.key`
/// and `stick.pub`). One definition, so the stick and the release keys read and write their
/// files alike.
macro_rules! key_pair_methods {
    ($signing:ident, $verifying:ident, $error:ident, $file:literal) => {
        impl $signing {
            /// A fresh key from the operating system's randomness.
            pub fn generate() -> Result<$signing, $error> {
                $crate::signed::generate_key()
                    .map($signing)
                    .ok_or($error::Randomness)
            }

            /// Loads a key from its 32-byte seed.
            pub fn from_bytes(seed: [u8; 32]) -> $signing {
                $signing(ed25519_dalek::SigningKey::from_bytes(&seed))
            }

            /// The 32-byte seed, for storing the key.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            #[doc = concat!("Loads the key from the text of a `", $file, ".key` file: 64 hex")]
            /// characters, surrounding whitespace ignored.
            pub fn from_hex(text: &str) -> Result<$signing, $error> {
                $crate::signed::decode_key_hex(text)
                    .map($signing::from_bytes)
                    .ok_or($error::InvalidKey("a key must be 64 hex characters"))
            }

            #[doc = concat!("The seed as 64 lowercase hex characters: a `", $file, ".key` file")]
            /// holds this and a newline.
            pub fn to_hex(&self) -> String {
                hex::encode(self.to_bytes())
            }

            /// The public half, which is installed with every agent.
            pub fn verifying_key(&self) -> $verifying {
                $verifying(self.0.verifying_key())
            }
        }

        impl std::fmt::Debug for $signing {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Never the seed: the first bytes of the public key tell keys apart.
                write!(
                    f,
                    concat!(stringify!($signing), "(public {})"),
                    hex::encode(&self.0.verifying_key().to_bytes()[..8])
                )
            }
        }

        impl $verifying {
            /// Loads a key. Refuses bytes that are not a curve point and low-order ("weak")
            /// keys, for which signatures could be forged.
            pub fn from_bytes(bytes: [u8; 32]) -> Result<$verifying, $error> {
                $crate::signed::verifying_key(bytes)
                    .map($verifying)
                    .map_err($error::InvalidKey)
            }

            /// The 32-byte compressed point, for storing.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            #[doc = concat!("Loads the key from the text of a `", $file, ".pub` file: 64 hex")]
            /// characters, surrounding whitespace ignored.
            pub fn from_hex(text: &str) -> Result<$verifying, $error> {
                let bytes = $crate::signed::decode_key_hex(text)
                    .ok_or($error::InvalidKey("a key must be 64 hex characters"))?;
                $verifying::from_bytes(bytes)
            }

            #[doc = concat!("The key as 64 lowercase hex characters: a `", $file, ".pub` file")]
            /// holds this and a newline.
            pub fn to_hex(&self) -> String {
                hex::encode(self.to_bytes())
            }
        }

        impl std::fmt::Debug for $verifying {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($verifying), "({})"), self.to_hex())
            }
        }
    };
}

pub(crate) use key_pair_methods;
