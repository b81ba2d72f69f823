//! The batch envelope (DESIGN decision 2): how one `Delta` or one full snapshot travels from a
//! school's Pi to central, sealed, signed and chained.
//!
//! On the agent the data flows diff -> safety filter -> **seal** -> outbox -> uplink: [`seal`]
//! encodes the [`Payload`] with postcard, seals it with HPKE (RFC 9180: DHKEM(X25519,
//! HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to central's public key with the encoded
//! [`Header`] as associated data, and signs header and ciphertext with the device's Ed25519 key.
//! The outbox stores [`Envelope::to_bytes`]; the next header's `prev` is this
//! [`Envelope::digest`].
//!
//! On central the flow is **verify -> chain -> open** -> apply: [`open`] checks the size, the
//! format version, the signature against the device's key, the device id and the chain against
//! the stored [`ChainHead`], and only then decrypts. Central applies the payload and stores
//! [`Opened::next_head`] in one transaction (decision 3), so a batch is applied exactly once.
//!
//! The envelope survives proxies, queues and stores between the two ends, which mTLS alone
//! would not: whoever relays it can neither read it, alter it, drop one unnoticed, nor replay it.
//!
//! # Wire format (version 1)
//! ```text
//! "SKBE"                      4 bytes magic
//! version                     u16 big-endian; read and checked before anything else is decoded
//! header_len  u32 BE, header  postcard-encoded `Header`, at most MAX_HEADER_BYTES
//! enc_len     u32 BE, enc     HPKE encapsulated key, exactly 32 bytes
//! ct_len      u32 BE, ct      HPKE ciphertext of the postcard-encoded `Payload` (AAD = header)
//! sig_len     u32 BE, sig     Ed25519 signature, exactly 64 bytes
//! ```
//! Nothing may follow the signature. The signature covers `SIGNATURE_DOMAIN` followed by every
//! byte before `sig_len` (magic, version, and the three length-prefixed sections), so no
//! section can be moved, resized or swapped without breaking it. The envelope's digest is
//! SHA-256 of all of its bytes, signature included.

use std::convert::Infallible;

use ed25519_dalek::{Signature, Signer as _};
use hpke::rand_core::{TryCryptoRng, TryRng};
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::delta::Delta;
use crate::roster::Roster;

mod error;
mod ids;
mod keys;
mod payload;

pub use error::EnvelopeError;
pub use ids::{DeviceId, InvalidId, Seq, SiteId};
use keys::HpkeKem;
pub use keys::{DeviceSigningKey, DeviceVerifyingKey, SealingPrivateKey, SealingPublicKey};

/// The envelope format this build writes and the only one it reads. A reader never guesses at
/// a format it does not know: an envelope of any other version is refused with
/// [`EnvelopeError::UnknownVersion`].
pub const FORMAT_VERSION: u16 = 1;

/// Marks the bytes as a skolebro envelope, so that a stray file or a response body is refused
/// as [`EnvelopeError::Malformed`] before anything is decoded.
pub const MAGIC: [u8; 4] = *b"SKBE";

/// Upper bound of the encoded header. Ids are at most 64 characters, so a real header is far
/// below this; the bound keeps a hostile length from reaching the header decoder.
pub const MAX_HEADER_BYTES: usize = 1024;

/// HPKE `info`: binds the sealed payload to this protocol and format version, so a ciphertext
/// made for another purpose with central's key cannot be passed off as a batch.
pub const HPKE_INFO: &[u8] = b"skolebro envelope v1";

/// Prefix of every signed message, so a device signature over an envelope can never be
/// mistaken for a signature over anything else the device key signs (CSRs, TLS handshakes).
pub const SIGNATURE_DOMAIN: &[u8] = b"skolebro envelope signature v1\0";

/// Length of an X25519 encapsulated key (RFC 9180 `Nenc`).
const ENC_LEN: usize = 32;
/// Length of an Ed25519 signature.
const SIG_LEN: usize = 64;
/// Magic plus version: the part of the input read before any section.
const PREAMBLE_LEN: usize = MAGIC.len() + 2;

type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// What the payload is, readable from the header before decryption: a snapshot replaces the
/// site's whole roster, a delta changes part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Delta,
    Snapshot,
}

/// The signed, unencrypted part of an envelope. It carries what central needs to place the
/// envelope in the device's chain before it decrypts anything, and nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Must equal the envelope's wire version ([`FORMAT_VERSION`]).
    pub version: u16,
    pub device: DeviceId,
    pub site: SiteId,
    pub seq: Seq,
    /// SHA-256 of the previous envelope's bytes ([`Envelope::digest`]); all zero for the
    /// first envelope, matching [`ChainHead::genesis`].
    pub prev: [u8; 32],
    /// When the agent made the batch, in Unix milliseconds. Passed in by the caller: this
    /// crate reads no clock. Informational only; ordering comes from `seq`.
    pub created_unix_ms: u64,
    pub kind: Kind,
}

impl Header {
    /// The header of the envelope that continues the chain at `head`: the agent keeps the
    /// head of what it has sealed and builds every new header from it.
    pub fn chained(
        head: &ChainHead,
        device: DeviceId,
        site: SiteId,
        created_unix_ms: u64,
        kind: Kind,
    ) -> Header {
        Header {
            version: FORMAT_VERSION,
            device,
            site,
            seq: head.next_seq,
            prev: head.prev,
            created_unix_ms,
            kind,
        }
    }
}

/// Where a device's chain stands: the sequence number the next envelope must carry and the
/// digest it must name as `prev`. Central stores one per device (in the same transaction as
/// the applied payload); the agent keeps one for what it has sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHead {
    pub next_seq: Seq,
    pub prev: [u8; 32],
}

impl ChainHead {
    /// The head of a device that has sent nothing yet.
    pub fn genesis() -> ChainHead {
        ChainHead {
            next_seq: Seq::FIRST,
            prev: [0; 32],
        }
    }

    /// The head after the envelope with sequence number `seq` and digest `digest`.
    pub fn after(seq: Seq, digest: [u8; 32]) -> ChainHead {
        ChainHead {
            next_seq: seq.next(),
            prev: digest,
        }
    }
}

/// What an envelope carries once opened.
///
/// A snapshot is the whole validated [`Roster`] and nothing else: it can carry no deletes, so
/// central reads it unambiguously as "this is everything; whatever is not here is gone".
/// Central derives record handles from the source keys with the site secret it shares with the
/// agent (decision 1), exactly as the agent does.
///
/// Its encoding is versioned by the postcard variant index (the table is in `envelope/payload.rs`):
/// 0 is a delta of the first payload version (no renames), 1 a snapshot, 2 a delta with
/// renames. A delta is written as variant 0 whenever it has no rename, so the common case
/// keeps its bytes and reads at a central that predates renames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Delta(Delta),
    Snapshot(Roster),
}

impl Payload {
    /// The header kind this payload must travel under.
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Delta(_) => Kind::Delta,
            Payload::Snapshot(_) => Kind::Snapshot,
        }
    }
}

/// A sealed, signed batch: what the outbox stores and the uplink sends. Built by [`seal`] or
/// parsed by [`Envelope::from_bytes`]; [`open`] is the only way to its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    header: Header,
    header_bytes: Vec<u8>,
    encapsulated_key: [u8; ENC_LEN],
    ciphertext: Vec<u8>,
    signature: [u8; SIG_LEN],
}

impl Envelope {
    /// Parses the wire format without verifying anything: size, magic, version, section
    /// lengths and header encoding. The outbox uses it to reread what it stored; central
    /// uses [`open`], which calls it first.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> Result<Envelope, EnvelopeError> {
        Ok(parse(bytes, max_bytes)?.envelope)
    }

    /// The header as the envelope states it. Authenticated only once [`open`] succeeds; before
    /// that it is a claim, good for routing or looking up the device key.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The exact encoded header: signed, and the HPKE associated data.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The HPKE encapsulated key (RFC 9180 `enc`).
    pub fn encapsulated_key(&self) -> &[u8; 32] {
        &self.encapsulated_key
    }

    /// The sealed payload.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The device's Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The wire encoding (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.unsigned_bytes();
        push_section(&mut out, &self.signature);
        out
    }

    /// SHA-256 of [`Envelope::to_bytes`]: what the next envelope's `prev` names, so the chain
    /// commits to every byte of every envelope before it.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// The chain head once this envelope is sent: the agent builds the next header from it.
    pub fn next_head(&self) -> ChainHead {
        ChainHead::after(self.header.seq, self.digest())
    }

    /// Everything before the signature section: the part the signature covers.
    fn unsigned_bytes(&self) -> Vec<u8> {
        let len = PREAMBLE_LEN
            + 4 * 4
            + self.header_bytes.len()
            + ENC_LEN
            + self.ciphertext.len()
            + SIG_LEN;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        push_section(&mut out, &self.header_bytes);
        push_section(&mut out, &self.encapsulated_key);
        push_section(&mut out, &self.ciphertext);
        out
    }
}

/// A verified, in-chain, decrypted envelope: what central applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub header: Header,
    pub payload: Payload,
    /// SHA-256 of the envelope's bytes; central's new `prev`.
    pub digest: [u8; 32],
}

impl Opened {
    /// The head central stores, in the same transaction that applies the payload.
    pub fn next_head(&self) -> ChainHead {
        ChainHead::after(self.header.seq, self.digest)
    }
}

/// Agent side: seals `payload` to central and signs the result with the device key.
///
/// The header must be of [`FORMAT_VERSION`], start at `Seq(1)` or later, and its kind must
/// match the payload; otherwise nothing is sealed. Randomness for HPKE comes from the
/// operating system.
pub fn seal(
    header: Header,
    payload: &Payload,
    central: &SealingPublicKey,
    device: &DeviceSigningKey,
) -> Result<Envelope, EnvelopeError> {
    let mut rng = OsRandom { failed: false };
    let sealed = seal_with(header, payload, central, device, &mut rng);
    if rng.failed {
        return Err(EnvelopeError::Randomness);
    }
    sealed
}

/// [`seal`] with the caller's randomness for HPKE's ephemeral key. Only the known-answer
/// vectors (`protocol/tests/vectors`) pass their own, fixed source, so that an envelope's
/// exact bytes can be kept in the repository; everything else calls [`seal`].
pub fn seal_with(
    header: Header,
    payload: &Payload,
    central: &SealingPublicKey,
    device: &DeviceSigningKey,
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Envelope, EnvelopeError> {
    if header.version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion(header.version));
    }
    if header.seq.0 == 0 {
        return Err(EnvelopeError::Malformed("sequence numbers start at 1"));
    }
    if header.kind != payload.kind() {
        return Err(EnvelopeError::Malformed(
            "header kind does not match payload",
        ));
    }
    let plaintext = postcard::to_allocvec(payload)
        .map_err(|_| EnvelopeError::Malformed("payload does not encode"))?;
    seal_plaintext(header, &plaintext, central, device, rng)
}

/// [`seal_with`] for any plaintext, for the envelope fuzz target (`fuzz/`): it seals the
/// fuzzer's bytes as they are, so that [`open`]'s payload decoder sees them behind a valid
/// signature and chain. Compiled only under cargo-fuzz's `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn seal_bytes_for_fuzzing(
    header: Header,
    plaintext: &[u8],
    central: &SealingPublicKey,
    device: &DeviceSigningKey,
) -> Result<Envelope, EnvelopeError> {
    let mut rng = OsRandom { failed: false };
    let sealed = seal_plaintext(header, plaintext, central, device, &mut rng);
    if rng.failed {
        return Err(EnvelopeError::Randomness);
    }
    sealed
}

/// Encrypts the encoded payload to central, binds the header to it and signs the whole.
fn seal_plaintext(
    header: Header,
    plaintext: &[u8],
    central: &SealingPublicKey,
    device: &DeviceSigningKey,
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Envelope, EnvelopeError> {
    let header_bytes = postcard::to_allocvec(&header)
        .map_err(|_| EnvelopeError::Malformed("header does not encode"))?;
    if header_bytes.len() > MAX_HEADER_BYTES {
        return Err(EnvelopeError::Malformed("header too long"));
    }

    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &central.0,
        HPKE_INFO,
        plaintext,
        &header_bytes,
        rng,
    )
    .map_err(|_| EnvelopeError::Encrypt)?;
    let limit = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    if ciphertext.len() > limit {
        return Err(EnvelopeError::Oversized {
            size: ciphertext.len(),
            limit,
        });
    }
    let mut encapsulated_key = [0u8; ENC_LEN];
    encapsulated_key.copy_from_slice(&enc.to_bytes());

    let mut envelope = Envelope {
        header,
        header_bytes,
        encapsulated_key,
        ciphertext,
        signature: [0; SIG_LEN],
    };
    let signature = device.0.sign(&signed_message(&envelope.unsigned_bytes()));
    envelope.signature = signature.to_bytes();
    Ok(envelope)
}

/// Central side: verifies, chains and opens one envelope from `expected_device`.
///
/// Checks run cheapest and most fundamental first, and nothing is decrypted before the
/// signature and the chain hold: size (`max_bytes`) -> magic and version -> sections ->
/// header -> signature -> device -> chain against `head` -> HPKE open -> payload decode.
/// On success central applies [`Opened::payload`] and stores [`Opened::next_head`] in one
/// transaction; on [`EnvelopeError::Replay`] it acks the sequence number again.
pub fn open(
    bytes: &[u8],
    max_bytes: usize,
    expected_device: &DeviceId,
    device_key: &DeviceVerifyingKey,
    head: &ChainHead,
    central: &SealingPrivateKey,
) -> Result<Opened, EnvelopeError> {
    let Parsed {
        envelope,
        signed_len,
    } = parse(bytes, max_bytes)?;

    let signature = Signature::from_bytes(&envelope.signature);
    device_key
        .0
        .verify_strict(&signed_message(&bytes[..signed_len]), &signature)
        .map_err(|_| EnvelopeError::BadSignature)?;

    let header = envelope.header;
    if header.device != *expected_device {
        return Err(EnvelopeError::WrongDevice {
            expected: expected_device.clone(),
            got: header.device,
        });
    }

    if header.seq < head.next_seq {
        return Err(EnvelopeError::Replay {
            seq: header.seq,
            expected: head.next_seq,
        });
    }
    if header.seq > head.next_seq {
        return Err(EnvelopeError::Gap {
            expected: head.next_seq,
            got: header.seq,
        });
    }
    if header.prev != head.prev {
        return Err(EnvelopeError::BrokenChain { seq: header.seq });
    }

    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&envelope.encapsulated_key)
        .map_err(|_| EnvelopeError::Decrypt)?;
    let plaintext = hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &central.0,
        &enc,
        HPKE_INFO,
        &envelope.ciphertext,
        &envelope.header_bytes,
    )
    .map_err(|_| EnvelopeError::Decrypt)?;

    let payload: Payload = decode_exact(&plaintext, "payload does not decode")?;
    if payload.kind() != header.kind {
        return Err(EnvelopeError::Malformed(
            "payload does not match header kind",
        ));
    }

    Ok(Opened {
        header,
        payload,
        digest: Sha256::digest(bytes).into(),
    })
}

/// A parsed envelope and how many leading input bytes its signature covers.
struct Parsed {
    envelope: Envelope,
    signed_len: usize,
}

fn parse(bytes: &[u8], max_bytes: usize) -> Result<Parsed, EnvelopeError> {
    if bytes.len() > max_bytes {
        return Err(EnvelopeError::Oversized {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let mut input = Reader { rest: bytes };
    if input.take(MAGIC.len(), "too short for magic")? != MAGIC {
        return Err(EnvelopeError::Malformed("not an envelope (bad magic)"));
    }
    let version = input.take(2, "too short for version")?;
    let version = u16::from_be_bytes([version[0], version[1]]);
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }

    let header_bytes = input.section(MAX_HEADER_BYTES, "header")?;
    let enc = input.section(ENC_LEN, "encapsulated key")?;
    let ciphertext = input.section(usize::MAX, "ciphertext")?;
    let signed_len = bytes.len() - input.rest.len();
    let signature = input.section(SIG_LEN, "signature")?;
    if !input.rest.is_empty() {
        return Err(EnvelopeError::Malformed("trailing bytes after signature"));
    }
    let encapsulated_key: [u8; ENC_LEN] = enc
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("encapsulated key is not 32 bytes"))?;
    let signature: [u8; SIG_LEN] = signature
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("signature is not 64 bytes"))?;

    let header: Header = decode_exact(header_bytes, "header does not decode")?;
    if header.version != version {
        return Err(EnvelopeError::Malformed(
            "header version differs from envelope version",
        ));
    }
    if header.seq.0 == 0 {
        return Err(EnvelopeError::Malformed("sequence numbers start at 1"));
    }

    Ok(Parsed {
        envelope: Envelope {
            header,
            header_bytes: header_bytes.to_vec(),
            encapsulated_key,
            ciphertext: ciphertext.to_vec(),
            signature,
        },
        signed_len,
    })
}

/// Decodes postcard that must fill `bytes` exactly: trailing bytes would be unsigned slack
/// in an otherwise canonical format.
fn decode_exact<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, EnvelopeError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(EnvelopeError::Malformed(what)),
    }
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + unsigned.len());
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(unsigned);
    message
}

fn push_section(out: &mut Vec<u8>, section: &[u8]) {
    // Sections are bounded by u32 when built (seal checks the ciphertext; the others are
    // fixed or small), so the length always fits.
    let len = u32::try_from(section.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(section);
}

/// Bounds-checked reading of untrusted input: every length is checked against what remains
/// before anything is sliced or allocated.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EnvelopeError> {
        if n > self.rest.len() {
            return Err(EnvelopeError::Malformed(what));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn section(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], EnvelopeError> {
        let len = self.take(4, "truncated section length")?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let len = usize::try_from(len).map_err(|_| EnvelopeError::Malformed(what))?;
        if len > max {
            return Err(EnvelopeError::Malformed(what));
        }
        self.take(len, what)
    }
}

/// The OS random number generator in the infallible shape HPKE asks for. A failure is
/// remembered (and zeros handed out) so [`seal`] can refuse with
/// [`EnvelopeError::Randomness`] instead of panicking or sealing with predictable keys.
struct OsRandom {
    failed: bool,
}

impl TryRng for OsRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut buf = [0u8; 4];
        self.try_fill_bytes(&mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut buf = [0u8; 8];
        self.try_fill_bytes(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if getrandom::fill(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
        Ok(())
    }
}

impl TryCryptoRng for OsRandom {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::EntityDelta;
    use crate::handle::SiteSecret;
    use crate::roster::{Entity, Gender, Group, School, Student};
    use proptest::prelude::*;

    const LIMIT: usize = 16 * 1024 * 1024;

    fn device_key() -> DeviceSigningKey {
        DeviceSigningKey::from_bytes([11; 32])
    }

    fn central_key() -> SealingPrivateKey {
        SealingPrivateKey::from_bytes([22; 32])
    }

    fn device_id() -> DeviceId {
        DeviceId::new("pi-46505.oslo_1").unwrap()
    }

    fn site_id() -> SiteId {
        SiteId::new("46505").unwrap()
    }

    fn student(key: &str) -> Student {
        Student {
            source_key: key.to_owned().into(),
            national_id: None,
            username: Some(format!("{key}@skole.no").into()),
            given_name: "Kari".to_owned().into(),
            middle_name: None,
            family_name: "Nordmann".to_owned().into(),
            birth_date: None,
            gender: Gender::Female,
            email: None,
        }
    }

    fn delta() -> Delta {
        let secret = SiteSecret::from_bytes([3; 32]);
        let mut delta = Delta {
            students: EntityDelta {
                upserts: vec![(secret.handle(Entity::Student, "e1"), student("e1"))],
                deletes: vec![secret.handle(Entity::Student, "e0")],
                renames: Vec::new(),
            },
            ..Delta::default()
        };
        delta.students.sort();
        delta
    }

    fn roster() -> Roster {
        Roster {
            schools: vec![School {
                skolenummer: "46505".to_owned().into(),
                organisasjonsnummer: None,
                kommunenummer: Some("0301".to_owned().into()),
                fylkesnummer: None,
                name: "Bjølsen skole".to_owned().into(),
            }],
            students: vec![student("e1"), student("e2")],
            groups: vec![Group {
                source_key: "46505-2A".to_owned().into(),
                name: "2A".to_owned().into(),
                grade: Some("2".to_owned().into()),
                school: "46505".to_owned().into(),
                school_year: None,
            }],
            enrollments: Vec::new(),
        }
    }

    fn header_at(head: &ChainHead, kind: Kind) -> Header {
        Header::chained(head, device_id(), site_id(), 1_700_000_000_000, kind)
    }

    fn sealed_at(head: &ChainHead, payload: &Payload) -> Envelope {
        seal(
            header_at(head, payload.kind()),
            payload,
            &central_key().public_key(),
            &device_key(),
        )
        .unwrap()
    }

    fn first_envelope() -> Envelope {
        sealed_at(&ChainHead::genesis(), &Payload::Delta(delta()))
    }

    fn open_at(bytes: &[u8], head: &ChainHead) -> Result<Opened, EnvelopeError> {
        open(
            bytes,
            LIMIT,
            &device_id(),
            &device_key().verifying_key(),
            head,
            &central_key(),
        )
    }

    fn open_first(bytes: &[u8]) -> Result<Opened, EnvelopeError> {
        open_at(bytes, &ChainHead::genesis())
    }

    /// Re-signs an envelope after a test tampered with it, to reach checks behind the
    /// signature.
    fn resign(mut envelope: Envelope) -> Vec<u8> {
        envelope.signature = device_key()
            .0
            .sign(&signed_message(&envelope.unsigned_bytes()))
            .to_bytes();
        envelope.to_bytes()
    }

    /// Offset of the first header byte in the wire format.
    const HEADER_AT: usize = PREAMBLE_LEN + 4;

    #[test]
    fn a_sealed_delta_opens_to_the_same_delta() {
        let envelope = first_envelope();
        let opened = open_first(&envelope.to_bytes()).unwrap();
        assert_eq!(opened.payload, Payload::Delta(delta()));
        assert_eq!(&opened.header, envelope.header());
        assert_eq!(opened.header.kind, Kind::Delta);
        assert_eq!(opened.digest, envelope.digest());
        assert_eq!(opened.next_head(), envelope.next_head());
        assert_eq!(opened.next_head().next_seq, Seq(2));
    }

    #[test]
    fn a_sealed_snapshot_opens_to_the_same_roster() {
        let envelope = sealed_at(&ChainHead::genesis(), &Payload::Snapshot(roster()));
        let opened = open_first(&envelope.to_bytes()).unwrap();
        assert_eq!(opened.header.kind, Kind::Snapshot);
        assert_eq!(opened.payload, Payload::Snapshot(roster()));
    }

    #[test]
    fn an_envelope_survives_a_round_trip_through_its_bytes() {
        let envelope = first_envelope();
        let parsed = Envelope::from_bytes(&envelope.to_bytes(), LIMIT).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.digest(), envelope.digest());
    }

    #[test]
    fn the_wire_format_starts_with_magic_and_big_endian_version() {
        let bytes = first_envelope().to_bytes();
        assert_eq!(&bytes[..4], b"SKBE");
        assert_eq!(&bytes[4..6], &[0, 1]);
    }

    #[test]
    fn the_wire_format_is_the_parts_as_length_prefixed_sections() {
        let envelope = first_envelope();
        let mut expected = b"SKBE\x00\x01".to_vec();
        let sections: [&[u8]; 4] = [
            envelope.header_bytes(),
            envelope.encapsulated_key(),
            envelope.ciphertext(),
            envelope.signature(),
        ];
        for section in sections {
            expected.extend_from_slice(&(section.len() as u32).to_be_bytes());
            expected.extend_from_slice(section);
        }
        assert_eq!(envelope.to_bytes(), expected);
        assert_eq!(
            envelope.header_bytes(),
            postcard::to_allocvec(envelope.header()).unwrap()
        );
        assert_eq!(
            envelope.digest(),
            <[u8; 32]>::from(Sha256::digest(&expected))
        );
    }

    #[test]
    fn the_wire_bytes_and_the_signed_message_take_one_allocation_of_their_exact_size() {
        // A snapshot envelope is megabytes: a wrong estimate copies it once more, or holds
        // twice its size.
        let bytes = first_envelope().to_bytes();
        assert_eq!(bytes.capacity(), bytes.len());
        let message = signed_message(&bytes);
        assert_eq!(message.capacity(), message.len());
    }

    #[test]
    fn the_os_randomness_source_hands_out_fresh_words() {
        let mut rng = OsRandom { failed: false };
        let words = [
            rng.try_next_u32().unwrap_or_default(),
            rng.try_next_u32().unwrap_or_default(),
        ];
        assert_ne!(words[0], words[1]);
        let longs = [
            rng.try_next_u64().unwrap_or_default(),
            rng.try_next_u64().unwrap_or_default(),
        ];
        assert_ne!(longs[0], longs[1]);
        assert!(!rng.failed);
    }

    #[test]
    fn the_payload_is_not_readable_in_the_envelope() {
        let bytes = first_envelope().to_bytes();
        assert!(!bytes.windows(8).any(|w| w == b"Nordmann"));
    }

    #[test]
    fn each_of_three_chained_envelopes_names_the_digest_of_the_one_before() {
        let mut agent_head = ChainHead::genesis();
        let mut central_head = ChainHead::genesis();
        let mut digests = Vec::new();
        for n in 1..=3u64 {
            let envelope = sealed_at(&agent_head, &Payload::Delta(delta()));
            assert_eq!(envelope.header().seq, Seq(n));
            assert_eq!(
                envelope.header().prev,
                digests.last().copied().unwrap_or([0; 32])
            );
            agent_head = envelope.next_head();
            let opened = open_at(&envelope.to_bytes(), &central_head).unwrap();
            central_head = opened.next_head();
            assert_eq!(central_head, agent_head);
            digests.push(opened.digest);
        }
        assert_eq!(central_head.next_seq, Seq(4));
        assert_ne!(digests[0], digests[1]);
        assert_ne!(digests[1], digests[2]);
    }

    #[test]
    fn a_flipped_bit_in_the_signature_is_a_bad_signature() {
        let mut bytes = first_envelope().to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_eq!(open_first(&bytes), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn a_flipped_bit_in_the_header_is_a_bad_signature() {
        let envelope = first_envelope();
        let mut bytes = envelope.to_bytes();
        // Flip a bit of the prev hash, which decodes whatever its value: it sits after the
        // version (1 byte), device (1 + len), site (1 + len) and seq (1).
        let prev_at =
            HEADER_AT + 1 + 1 + device_id().as_str().len() + 1 + site_id().as_str().len() + 1;
        bytes[prev_at + 5] ^= 0x01;
        let reparsed = Envelope::from_bytes(&bytes, LIMIT).unwrap();
        assert_ne!(reparsed.header().prev, envelope.header().prev);
        assert_eq!(open_first(&bytes), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn a_flipped_bit_in_the_ciphertext_is_a_bad_signature() {
        let envelope = first_envelope();
        let mut bytes = envelope.to_bytes();
        let ct_at = HEADER_AT + envelope.header_bytes().len() + 4 + ENC_LEN + 4;
        bytes[ct_at + 3] ^= 0x80;
        assert_eq!(open_first(&bytes), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn an_envelope_signed_by_another_device_key_is_a_bad_signature() {
        let bytes = first_envelope().to_bytes();
        let other = DeviceSigningKey::from_bytes([12; 32]).verifying_key();
        let result = open(
            &bytes,
            LIMIT,
            &device_id(),
            &other,
            &ChainHead::genesis(),
            &central_key(),
        );
        assert_eq!(result, Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn an_envelope_naming_another_device_is_refused_as_wrong_device() {
        let bytes = first_envelope().to_bytes();
        let expected = DeviceId::new("pi-other").unwrap();
        let result = open(
            &bytes,
            LIMIT,
            &expected,
            &device_key().verifying_key(),
            &ChainHead::genesis(),
            &central_key(),
        );
        assert_eq!(
            result,
            Err(EnvelopeError::WrongDevice {
                expected,
                got: device_id()
            })
        );
    }

    #[test]
    fn an_envelope_ahead_of_the_head_is_a_gap_naming_the_expected_seq() {
        let head = ChainHead {
            next_seq: Seq(5),
            prev: [9; 32],
        };
        let bytes = sealed_at(&head, &Payload::Delta(delta())).to_bytes();
        let result = open_at(&bytes, &ChainHead::genesis());
        assert_eq!(
            result,
            Err(EnvelopeError::Gap {
                expected: Seq(1),
                got: Seq(5)
            })
        );
    }

    #[test]
    fn an_envelope_already_applied_is_a_replay_carrying_its_seq() {
        let envelope = first_envelope();
        let bytes = envelope.to_bytes();
        let head = open_first(&bytes).unwrap().next_head();
        assert_eq!(
            open_at(&bytes, &head),
            Err(EnvelopeError::Replay {
                seq: Seq(1),
                expected: Seq(2)
            })
        );
    }

    #[test]
    fn an_envelope_with_the_expected_seq_but_another_prev_is_a_broken_chain() {
        let first = first_envelope();
        let forked = ChainHead {
            next_seq: Seq(2),
            prev: [7; 32],
        };
        let bytes = sealed_at(&forked, &Payload::Delta(delta())).to_bytes();
        assert_eq!(
            open_at(&bytes, &first.next_head()),
            Err(EnvelopeError::BrokenChain { seq: Seq(2) })
        );
    }

    #[test]
    fn an_envelope_sealed_to_another_central_key_fails_to_decrypt() {
        let other = SealingPrivateKey::from_bytes([23; 32]);
        let envelope = seal(
            header_at(&ChainHead::genesis(), Kind::Delta),
            &Payload::Delta(delta()),
            &other.public_key(),
            &device_key(),
        )
        .unwrap();
        assert_eq!(
            open_first(&envelope.to_bytes()),
            Err(EnvelopeError::Decrypt)
        );
    }

    #[test]
    fn a_correctly_signed_but_altered_ciphertext_fails_to_decrypt() {
        let mut envelope = first_envelope();
        envelope.ciphertext[0] ^= 0x01;
        assert_eq!(open_first(&resign(envelope)), Err(EnvelopeError::Decrypt));
    }

    #[test]
    fn a_ciphertext_moved_under_another_signed_header_fails_to_decrypt() {
        let mut envelope = first_envelope();
        envelope.header.created_unix_ms += 1;
        envelope.header_bytes = postcard::to_allocvec(&envelope.header).unwrap();
        assert_eq!(open_first(&resign(envelope)), Err(EnvelopeError::Decrypt));
    }

    #[test]
    fn an_envelope_over_the_limit_is_oversized_before_anything_is_decoded() {
        let bytes = first_envelope().to_bytes();
        let limit = bytes.len() - 1;
        let result = open(
            &bytes,
            limit,
            &device_id(),
            &device_key().verifying_key(),
            &ChainHead::genesis(),
            &central_key(),
        );
        assert_eq!(
            result,
            Err(EnvelopeError::Oversized {
                size: bytes.len(),
                limit
            })
        );
        let garbage = vec![0xff; 100];
        assert_eq!(
            Envelope::from_bytes(&garbage, 99),
            Err(EnvelopeError::Oversized {
                size: 100,
                limit: 99
            })
        );
    }

    #[test]
    fn an_envelope_exactly_at_the_limit_opens() {
        let bytes = first_envelope().to_bytes();
        let opened = open(
            &bytes,
            bytes.len(),
            &device_id(),
            &device_key().verifying_key(),
            &ChainHead::genesis(),
            &central_key(),
        );
        assert_eq!(opened.map(|o| o.payload), Ok(Payload::Delta(delta())));
    }

    #[test]
    fn sealing_the_same_payload_twice_uses_a_fresh_key_each_time() {
        let (a, b) = (first_envelope(), first_envelope());
        assert_eq!(a.header(), b.header());
        assert_ne!(a.encapsulated_key(), b.encapsulated_key());
        assert_ne!(a.ciphertext(), b.ciphertext());
        assert_ne!(a.signature(), b.signature());
    }

    #[test]
    fn an_unknown_version_is_refused_before_the_rest_is_read() {
        let mut bytes = first_envelope().to_bytes();
        bytes[4..6].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(open_first(&bytes), Err(EnvelopeError::UnknownVersion(2)));
        let mut bare = b"SKBE".to_vec();
        bare.extend_from_slice(&0x0100u16.to_be_bytes());
        assert_eq!(
            Envelope::from_bytes(&bare, LIMIT),
            Err(EnvelopeError::UnknownVersion(256))
        );
    }

    #[test]
    fn sealing_a_header_of_an_unknown_version_is_refused() {
        let mut header = header_at(&ChainHead::genesis(), Kind::Delta);
        header.version = 2;
        let result = seal(
            header,
            &Payload::Delta(delta()),
            &central_key().public_key(),
            &device_key(),
        );
        assert_eq!(result, Err(EnvelopeError::UnknownVersion(2)));
    }

    #[test]
    fn sealing_with_a_kind_that_does_not_match_the_payload_is_refused() {
        let result = seal(
            header_at(&ChainHead::genesis(), Kind::Snapshot),
            &Payload::Delta(delta()),
            &central_key().public_key(),
            &device_key(),
        );
        assert!(matches!(result, Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn sealing_sequence_number_zero_is_refused() {
        let head = ChainHead {
            next_seq: Seq(0),
            prev: [0; 32],
        };
        let result = seal(
            header_at(&head, Kind::Delta),
            &Payload::Delta(delta()),
            &central_key().public_key(),
            &device_key(),
        );
        assert!(matches!(result, Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn bytes_without_the_magic_are_malformed() {
        let mut bytes = first_envelope().to_bytes();
        bytes[0] = b'X';
        assert!(matches!(
            open_first(&bytes),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            open_first(b"SK"),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(open_first(b""), Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn trailing_bytes_after_the_signature_are_malformed() {
        let mut bytes = first_envelope().to_bytes();
        bytes.push(0);
        assert!(matches!(
            open_first(&bytes),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn a_section_length_beyond_the_input_is_malformed_without_allocating() {
        let mut bytes = first_envelope().to_bytes();
        bytes[PREAMBLE_LEN..PREAMBLE_LEN + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open_first(&bytes),
            Err(EnvelopeError::Malformed(_))
        ));
        let envelope = first_envelope();
        let mut bytes = envelope.to_bytes();
        let ct_len_at = HEADER_AT + envelope.header_bytes().len() + 4 + ENC_LEN;
        bytes[ct_len_at..ct_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open_first(&bytes),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn ids_are_short_plain_ascii() {
        assert!(DeviceId::new("pi-46505.oslo_1").is_ok());
        assert!(DeviceId::new("a".repeat(64)).is_ok());
        assert_eq!(DeviceId::new(""), Err(InvalidId));
        assert_eq!(DeviceId::new("a".repeat(65)), Err(InvalidId));
        assert_eq!(SiteId::new("skole/46505"), Err(InvalidId));
        assert_eq!(SiteId::new("bjølsen"), Err(InvalidId));
        assert_eq!(SiteId::new("a b"), Err(InvalidId));
    }

    #[test]
    fn a_header_with_an_invalid_id_does_not_decode() {
        let mut envelope = first_envelope();
        envelope.header.device = ids::unchecked_device_id("bad id");
        envelope.header_bytes = postcard::to_allocvec(&envelope.header).unwrap();
        assert_eq!(
            open_first(&resign(envelope)),
            Err(EnvelopeError::Malformed("header does not decode"))
        );
    }

    #[test]
    fn keys_survive_a_round_trip_through_their_bytes() {
        let device = DeviceSigningKey::generate().unwrap();
        let again = DeviceSigningKey::from_bytes(device.to_bytes());
        assert_eq!(again.verifying_key(), device.verifying_key());
        let public = device.verifying_key();
        assert_eq!(
            DeviceVerifyingKey::from_bytes(public.to_bytes()).unwrap(),
            public
        );

        let central = SealingPrivateKey::generate().unwrap();
        let again = SealingPrivateKey::from_bytes(central.to_bytes());
        assert_eq!(again.public_key(), central.public_key());
        let public = central.public_key();
        assert_eq!(
            SealingPublicKey::from_bytes(public.to_bytes()).unwrap(),
            public
        );
    }

    #[test]
    fn a_low_order_device_key_is_refused() {
        // The identity point: every signature would verify under it without verify_strict.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            DeviceVerifyingKey::from_bytes(identity),
            Err(EnvelopeError::InvalidKey)
        );
    }

    #[test]
    fn sealing_to_a_low_order_central_key_is_refused() {
        let zero = SealingPublicKey::from_bytes([0; 32]).unwrap();
        let result = seal(
            header_at(&ChainHead::genesis(), Kind::Delta),
            &Payload::Delta(delta()),
            &zero,
            &device_key(),
        );
        assert_eq!(result, Err(EnvelopeError::Encrypt));
    }

    #[test]
    fn private_keys_do_not_print_their_key_material() {
        let device = device_key();
        let central = central_key();
        let printed = format!("{device:?} {central:?}");
        assert!(!printed.contains(&hex::encode(device.to_bytes())));
        assert!(!printed.contains(&hex::encode(&device.to_bytes()[..8])));
        assert!(!printed.contains(&hex::encode(central.to_bytes())));
        assert!(!printed.contains(&hex::encode(&central.to_bytes()[..8])));
    }

    #[test]
    fn keys_print_their_public_half_so_a_log_can_tell_them_apart() {
        let (device, central) = (device_key(), central_key());
        let signing = hex::encode(device.verifying_key().to_bytes());
        let sealing = hex::encode(central.public_key().to_bytes());
        assert_eq!(
            format!("{device:?}"),
            format!("DeviceSigningKey(public {})", &signing[..16])
        );
        assert_eq!(
            format!("{:?}", device.verifying_key()),
            format!("DeviceVerifyingKey({signing})")
        );
        assert_eq!(
            format!("{central:?}"),
            format!("SealingPrivateKey(public {})", &sealing[..16])
        );
        assert_eq!(
            format!("{:?}", central.public_key()),
            format!("SealingPublicKey({sealing})")
        );
    }

    #[test]
    fn chain_errors_name_their_sequence_numbers() {
        let gap = EnvelopeError::Gap {
            expected: Seq(3),
            got: Seq(5),
        };
        assert_eq!(gap.to_string(), "sequence gap: expected 3, got 5");
        let replay = EnvelopeError::Replay {
            seq: Seq::FIRST,
            expected: Seq::FIRST.next(),
        };
        assert_eq!(replay.to_string(), "replay of 1; next expected is 2");
        assert_eq!(Seq(u64::MAX).next(), Seq(u64::MAX));
    }

    fn valid_bytes() -> &'static [u8] {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES.get_or_init(|| first_envelope().to_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn opening_arbitrary_bytes_never_panics_and_never_succeeds(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            with_magic in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if with_magic {
                let mut framed = b"SKBE\x00\x01".to_vec();
                framed.extend_from_slice(&bytes);
                bytes = framed;
            }
            prop_assert!(open_first(&bytes).is_err());
        }

        #[test]
        fn opening_an_envelope_with_flipped_bits_never_succeeds(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        ) {
            let original = valid_bytes();
            let mut bytes = original.to_vec();
            for (at, bit) in flips {
                bytes[at.index(original.len())] ^= 1 << bit;
            }
            prop_assume!(bytes != original);
            prop_assert!(open_first(&bytes).is_err());
        }

        #[test]
        fn opening_a_truncated_or_extended_envelope_never_succeeds(
            cut in any::<prop::sample::Index>(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let original = valid_bytes();
            let mut bytes = original[..cut.index(original.len())].to_vec();
            bytes.extend_from_slice(&tail);
            prop_assume!(bytes != original);
            prop_assert!(open_first(&bytes).is_err());
        }
    }
}
