//! Signed blobs made from fuzz bytes, so that the stick and release decoders behind the
//! signature are reached: a frame (`crate::signed` in the protocol) around any body, signed
//! with a key the target trusts.

use ed25519_dalek::Signer as _;

/// `magic`, `version`, the body's length, the body, and an Ed25519 signature over all of it
/// by the key of `seed`.
pub fn frame(magic: [u8; 4], version: u8, body: &[u8], seed: [u8; 32]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.push(version);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(body);
    let signature = ed25519_dalek::SigningKey::from_bytes(&seed).sign(&out);
    out.extend_from_slice(&signature.to_bytes());
    out
}
