//! Any bytes as a stick bundle, read as the agent reads a stick (`read_stick`: the file, the
//! signature, the body, then its content and settings). The first byte chooses: an even one
//! passes the rest as the file; an odd one frames the rest as a body signed with the trusted
//! key, with the second byte as the format version, so the decoder and the content checks
//! behind the signature are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skolebro_agent::provision::stick::read_stick;
use skolebro_fuzz::{scratch, signed::frame, CountingAlloc};
use skolebro_protocol::stick::{StickBody, StickSigningKey, MAGIC};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SEED: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let bytes = match data {
        [mode, version, body @ ..] if mode & 1 == 1 => frame(MAGIC, *version, body, SEED),
        [_, rest @ ..] => rest.to_vec(),
        [] => return,
    };
    let key = StickSigningKey::from_bytes(SEED);
    let verifying = key.verifying_key();
    let path = scratch().join("BUNDLE.SKB");
    std::fs::write(&path, &bytes).expect("the bundle is written");
    let verified = StickBody::verify(&bytes, &verifying);
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000);
    match read_stick(&path, &verifying, Some(now)) {
        Ok(stick) => {
            let body = verified.expect("what the agent accepts verifies");
            assert!(body == stick.body);
            // Signed again, a body reads back as itself.
            let again = StickBody::verify(&stick.body.sign(&key), &verifying)
                .expect("a body signed again verifies");
            assert!(again == stick.body);
            assert_eq!(stick.token_id, stick.body.token_id());
        }
        Err(refusal) => {
            // Refusals name what is wrong, never the token.
            if let Ok(body) = verified {
                if body.token.len() >= 8 {
                    assert!(
                        !refusal.to_string().contains(&body.token),
                        "a refusal shows the token"
                    );
                    assert!(
                        !format!("{refusal:?}").contains(&body.token),
                        "a refusal shows the token"
                    );
                }
            }
        }
    }
});
