//! Record handles and digests: what the agent keeps at rest instead of personal data
//! (DESIGN decision 1). A handle is an HMAC of a record's source key under the per-site
//! secret, so the agent's state file names no one; a digest is a hash of the record's
//! canonical encoding, so a change to any field shows up as a new digest.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::roster::{Entity, Record};

/// The per-site key for record handles. Central holds the same secret, so it can compute the
/// handle of any record it stores and apply deletes that carry only a handle.
#[derive(Clone)]
pub struct SiteSecret {
    bytes: [u8; 32],
    /// The MAC with the key already absorbed: handles are computed for every record of every
    /// export, and cloning this saves re-keying each time.
    keyed: Hmac<Sha256>,
}

impl SiteSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> SiteSecret {
        // HMAC-SHA256 accepts keys of any length, so this cannot fail for a 32-byte key.
        let keyed = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&bytes)
            .expect("HMAC-SHA256 takes a key of any length");
        SiteSecret { bytes, keyed }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The handle of a record of `entity` with this source key. The entity is part of the
    /// input so that a student and a group with the same key never collide.
    pub fn handle(&self, entity: Entity, key: &str) -> RecordHandle {
        let mut mac = self.keyed.clone();
        mac.update(&[entity as u8]);
        mac.update(key.as_bytes());
        RecordHandle(mac.finalize().into_bytes().into())
    }
}

impl PartialEq for SiteSecret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SiteSecret {}

impl fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteSecret(..)")
    }
}

/// A record's identity without its key in clear.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordHandle([u8; 32]);

impl RecordHandle {
    pub fn from_bytes(bytes: [u8; 32]) -> RecordHandle {
        RecordHandle(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RecordHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordHandle({})", hex::encode(&self.0[..8]))
    }
}

/// SHA-256 of a record's canonical (postcard) encoding: equal digests mean equal records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of a record. Postcard's encoding is deterministic for our types (no maps), so
    /// the digest is canonical.
    pub fn of<R: Record>(record: &R) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update([R::ENTITY as u8]);
        // Most records take under 256 bytes: encode them on the stack and hash in one call.
        // A larger one is encoded straight into the hasher. Every roster type serialises,
        // and writing into a hasher cannot fail.
        let mut buffer = [0u8; 256];
        match postcard::to_slice(record, &mut buffer) {
            Ok(bytes) => hasher.update(bytes),
            Err(_) => {
                hasher = postcard::serialize_with_flavor(record, HashingFlavor(hasher))
                    .expect("roster records always serialise");
            }
        }
        Digest(hasher.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", hex::encode(&self.0[..8]))
    }
}

/// A postcard output that feeds a hash instead of a buffer.
struct HashingFlavor(Sha256);

impl postcard::ser_flavors::Flavor for HashingFlavor {
    type Output = Sha256;

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update([data]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Sha256> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_of_different_entities_with_one_key_differ() {
        let secret = SiteSecret::from_bytes([7; 32]);
        assert_ne!(
            secret.handle(Entity::Student, "46505-2A"),
            secret.handle(Entity::Group, "46505-2A")
        );
    }

    #[test]
    fn handles_depend_on_the_site_secret() {
        let a = SiteSecret::from_bytes([1; 32]);
        let b = SiteSecret::from_bytes([2; 32]);
        assert_ne!(
            a.handle(Entity::Student, "elev1"),
            b.handle(Entity::Student, "elev1")
        );
    }
}
