//! Any bytes as a release manifest offered to the agent, checked as the updater checks an
//! offer (`check_manifest`: base64, signature, body, then id, target, expiry, floor and
//! version). The first byte chooses: an even one passes the rest as the manifest; an odd one
//! frames the rest as a body signed with the trusted release key, with the second byte as the
//! format version, so the decoder and the checks behind the signature are reached.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use skolebro_agent::update::{check_manifest, Device};
use skolebro_fuzz::{signed::frame, CountingAlloc};
use skolebro_protocol::api::ReleaseOffer;
use skolebro_protocol::release::{
    valid_release_id, ReleaseManifest, ReleaseSigningKey, Version, MAGIC,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SEED: [u8; 32] = [3; 32];

fuzz_target!(|data: &[u8]| {
    let bytes = match data {
        [mode, version, body @ ..] if mode & 1 == 1 => frame(MAGIC, *version, body, SEED),
        [_, rest @ ..] => rest.to_vec(),
        [] => return,
    };
    let key = ReleaseSigningKey::from_bytes(SEED);
    let verifying = key.verifying_key();
    let verified = ReleaseManifest::verify(&bytes, &verifying);
    if let Ok(manifest) = &verified {
        assert!(
            valid_release_id(&manifest.id()),
            "a verified manifest's id is unsafe"
        );
        assert!(manifest.expires_unix > manifest.created_unix);
        let again = ReleaseManifest::verify(&manifest.sign(&key), &verifying);
        assert_eq!(
            again.as_ref(),
            Ok(manifest),
            "a manifest signed again reads differently"
        );
    }
    let offer = ReleaseOffer {
        id: verified
            .as_ref()
            .map_or_else(|_| "1.2.3-aarch64-unknown-linux-gnu".to_owned(), |m| m.id()),
        manifest: base64::engine::general_purpose::STANDARD.encode(&bytes),
        artifact: String::new(),
    };
    let target = verified
        .as_ref()
        .map_or("aarch64-unknown-linux-gnu", |m| m.target.as_str());
    for (running, floor) in [
        (Version::new(1, 0, 0), None),
        (Version::new(1, 3, 0), Some(Version::new(1, 1, 0))),
    ] {
        let device = Device {
            running,
            target,
            now_unix: 1_900_000_000,
            floor,
        };
        match check_manifest(&offer, &verifying, device) {
            Ok(manifest) => {
                assert_eq!(
                    verified.as_ref(),
                    Ok(&manifest),
                    "the agent took what does not verify"
                );
                assert!(manifest.permits_upgrade_from(running));
                assert!(!manifest.expired_at(1_900_000_000));
                assert!(floor.is_none_or(|floor| manifest.version >= floor));
            }
            Err(refusal) => {
                let _ = refusal.to_string();
            }
        }
    }
});
