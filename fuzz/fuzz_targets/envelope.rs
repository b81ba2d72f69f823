//! Any bytes at central's envelope decoder and opener (`skolebro_protocol::envelope`), in
//! three ways chosen by the first byte:
//!
//! 0. the bytes as they came: `Envelope::from_bytes` and `open` refuse them with a value,
//!    and what parses writes back to the same bytes;
//! 1. the bytes re-signed with the device's key once they parse, so the device, chain and
//!    HPKE checks behind the signature are reached;
//! 2. the bytes as the plaintext of an envelope sealed and signed as the agent would, so
//!    the payload decoder is reached; a payload that opens seals and opens again to itself.
#![no_main]

use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;
use skolebro_fuzz::CountingAlloc;
use skolebro_protocol::envelope::{
    open, seal, seal_bytes_for_fuzzing, ChainHead, DeviceId, DeviceSigningKey, Envelope,
    EnvelopeError, Header, Kind, SealingPrivateKey, SiteId, FORMAT_VERSION, SIGNATURE_DOMAIN,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Central's envelope size bound is configurable; the fuzzer's inputs are far smaller.
const MAX_BYTES: usize = 1 << 20;
const DEVICE_SEED: [u8; 32] = [1; 32];

fn central() -> SealingPrivateKey {
    SealingPrivateKey::from_bytes([2; 32])
}

fn device() -> DeviceId {
    DeviceId::new("dev-fuzz").expect("a device id")
}

fn as_received(bytes: &[u8]) {
    let key = DeviceSigningKey::from_bytes(DEVICE_SEED).verifying_key();
    if let Ok(envelope) = Envelope::from_bytes(bytes, MAX_BYTES) {
        assert_eq!(
            envelope.to_bytes(),
            bytes,
            "a parsed envelope writes back differently"
        );
    }
    let opened = open(
        bytes,
        MAX_BYTES,
        &device(),
        &key,
        &ChainHead::genesis(),
        &central(),
    );
    // Nothing but the device key signs: random bytes never open.
    assert!(
        opened.is_err(),
        "an envelope opened without the device's signature"
    );
}

fn resigned(bytes: &[u8]) {
    let Ok(envelope) = Envelope::from_bytes(bytes, MAX_BYTES) else {
        return;
    };
    let signing = ed25519_dalek::SigningKey::from_bytes(&DEVICE_SEED);
    let signed_len = bytes.len() - 4 - 64;
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(&bytes[..signed_len]);
    let mut resigned = bytes.to_vec();
    resigned[signed_len + 4..].copy_from_slice(&signing.sign(&message).to_bytes());
    let header = envelope.header();
    let head = ChainHead {
        next_seq: header.seq,
        prev: header.prev,
    };
    let key = DeviceSigningKey::from_bytes(DEVICE_SEED).verifying_key();
    match open(
        &resigned,
        MAX_BYTES,
        &header.device,
        &key,
        &head,
        &central(),
    ) {
        // Without central's key nothing the fuzzer makes decrypts.
        Err(EnvelopeError::Decrypt) => {}
        Err(EnvelopeError::BadSignature) => {
            panic!("a signature made with the device key was refused")
        }
        Err(_) => {}
        Ok(_) => panic!("an envelope opened without being sealed to central"),
    }
}

fn sealed(kind: Kind, plaintext: &[u8]) {
    let device_key = DeviceSigningKey::from_bytes(DEVICE_SEED);
    let central = central();
    let header = Header::chained(
        &ChainHead::genesis(),
        device(),
        SiteId::new("site-fuzz").expect("a site id"),
        1_900_000_000_000,
        kind,
    );
    assert_eq!(header.version, FORMAT_VERSION);
    let envelope = seal_bytes_for_fuzzing(header, plaintext, &central.public_key(), &device_key)
        .expect("any plaintext seals");
    let bytes = envelope.to_bytes();
    let verifying = device_key.verifying_key();
    let opened = match open(
        &bytes,
        MAX_BYTES,
        &device(),
        &verifying,
        &ChainHead::genesis(),
        &central,
    ) {
        Ok(opened) => opened,
        Err(EnvelopeError::Malformed(_)) => return,
        Err(other) => panic!("a sealed envelope was refused for {other:?}, not its payload"),
    };
    assert_eq!(opened.payload.kind(), kind);
    let again = seal(
        opened.header.clone(),
        &opened.payload,
        &central.public_key(),
        &device_key,
    )
    .expect("an opened payload seals again");
    let reopened = open(
        &again.to_bytes(),
        MAX_BYTES,
        &device(),
        &verifying,
        &ChainHead::genesis(),
        &central,
    )
    .expect("a payload sealed again opens");
    assert_eq!(reopened.payload, opened.payload);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => as_received(rest),
        1 => resigned(rest),
        2 => sealed(Kind::Delta, rest),
        _ => sealed(Kind::Snapshot, rest),
    }
});
