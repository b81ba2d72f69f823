//! The keys of the envelope: the device's Ed25519 pair that signs, central's X25519 pair that
//! seals. Each wraps its library type so that loading checks what must be checked (weak
//! Ed25519 points) and `Debug` never prints a private key.

use std::fmt;

use hpke::{Deserializable as _, Kem as _, Serializable as _};

use super::error::EnvelopeError;

/// The HPKE KEM of format version 1 (DHKEM(X25519, HKDF-SHA256)).
pub(super) type HpkeKem = hpke::kem::X25519HkdfSha256;

/// A device's Ed25519 signing key. It never leaves the device; central holds the
/// [`DeviceVerifyingKey`] from enrollment.
#[derive(Clone)]
pub struct DeviceSigningKey(pub(super) ed25519_dalek::SigningKey);

impl DeviceSigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<DeviceSigningKey, EnvelopeError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| EnvelopeError::Randomness)?;
        let key = DeviceSigningKey::from_bytes(seed);
        seed.fill(0);
        Ok(key)
    }

    /// Loads a key from its 32-byte seed, as stored on the device.
    pub fn from_bytes(seed: [u8; 32]) -> DeviceSigningKey {
        DeviceSigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed, for storing the key on the device.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half, which enrollment hands to central.
    pub fn verifying_key(&self) -> DeviceVerifyingKey {
        DeviceVerifyingKey(self.0.verifying_key())
    }
}

impl fmt::Debug for DeviceSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceSigningKey(public {})",
            hex::encode(&self.0.verifying_key().to_bytes()[..8])
        )
    }
}

/// A device's Ed25519 public key, as central stores it per device.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceVerifyingKey(pub(super) ed25519_dalek::VerifyingKey);

impl DeviceVerifyingKey {
    /// Loads a key. Refuses bytes that are not a curve point and low-order ("weak") keys,
    /// for which signatures could be forged.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<DeviceVerifyingKey, EnvelopeError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| EnvelopeError::InvalidKey)?;
        if key.is_weak() {
            return Err(EnvelopeError::InvalidKey);
        }
        Ok(DeviceVerifyingKey(key))
    }

    /// The 32-byte compressed point, for storing.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for DeviceVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceVerifyingKey({})", hex::encode(self.0.to_bytes()))
    }
}

/// Central's X25519 private key for opening envelopes. Only central holds it; a stolen Pi or
/// outbox therefore reveals no payload.
#[derive(Clone)]
pub struct SealingPrivateKey(pub(super) <HpkeKem as hpke::Kem>::PrivateKey);

impl SealingPrivateKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<SealingPrivateKey, EnvelopeError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| EnvelopeError::Randomness)?;
        let key = SealingPrivateKey::from_bytes(seed);
        seed.fill(0);
        Ok(key)
    }

    /// Loads a key from 32 bytes. X25519 clamps any 32 bytes into a valid scalar, so this
    /// cannot fail; [`SealingPrivateKey::to_bytes`] returns the clamped form.
    pub fn from_bytes(bytes: [u8; 32]) -> SealingPrivateKey {
        // X25519 private keys are exactly 32 bytes, so deserialisation cannot fail here; the
        // fallback derives a key from the same bytes rather than panicking.
        match <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(&bytes) {
            Ok(key) => SealingPrivateKey(key),
            Err(_) => SealingPrivateKey(HpkeKem::derive_keypair(&bytes).0),
        }
    }

    /// The 32 (clamped) key bytes, for storing.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.to_bytes());
        out
    }

    /// The public half, which goes on provisioning sticks (decision 6).
    pub fn public_key(&self) -> SealingPublicKey {
        SealingPublicKey(HpkeKem::sk_to_pk(&self.0))
    }
}

impl fmt::Debug for SealingPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealingPrivateKey(public {})",
            hex::encode(&self.public_key().to_bytes()[..8])
        )
    }
}

/// Central's X25519 public key, which agents seal every payload to.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingPublicKey(pub(super) <HpkeKem as hpke::Kem>::PublicKey);

impl SealingPublicKey {
    /// Loads a key. Any 32 bytes decode; a low-order point is refused when sealing
    /// ([`EnvelopeError::Encrypt`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<SealingPublicKey, EnvelopeError> {
        <HpkeKem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map(SealingPublicKey)
            .map_err(|_| EnvelopeError::InvalidKey)
    }

    /// The 32-byte Montgomery u-coordinate, for sticks and configuration.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.to_bytes());
        out
    }
}

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", hex::encode(self.to_bytes()))
    }
}
