//! Known-answer vectors for everything the protocol crate puts on the wire or on a stick:
//! record handles and digests, a sealed envelope, a stick bundle, a release manifest and the
//! JSON of the heartbeat and batch answers. The bytes in `tests/vectors/` were produced once
//! (see its README); each test builds the same value again and compares bytes, and decodes
//! the kept bytes with today's code. A change to a format, a key derivation or a field order
//! fails here, where a round trip through the same code would not notice.

use std::convert::Infallible;
use std::path::PathBuf;

use hpke::rand_core::{TryCryptoRng, TryRng};
use skolebro_protocol::api::{
    AgentState, Arrival, BatchAck, BatchGap, Command, DeviationCounts, Heartbeat, HeartbeatAnswer,
    HeldDelta, ReleaseOffer,
};
use skolebro_protocol::drop_share::{Applied, ShareStatus};
use skolebro_protocol::envelope::{
    open, seal_with, ChainHead, DeviceSigningKey, Header, Kind, Opened, SealingPrivateKey,
    FORMAT_VERSION, HPKE_INFO, SIGNATURE_DOMAIN,
};
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{
    AfterPull, Delta, DeviceId, Digest, DropShare, Enrollment, Entity, Gender, Group, HeldReason,
    NationalId, Payload, PullShare, ReleaseError, ReleaseManifest, ReleaseSigningKey, Roster,
    School, Seq, SiteId, SiteInfo, SiteSecret, StickBody, StickSigningKey, Student, Version,
};

/// Set to write the vectors afresh instead of comparing (see `tests/vectors/README.md`).
const WRITE: &str = "SKOLEBRO_WRITE_VECTORS";

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// The kept bytes of `name`, after checking that today's code produces exactly them. With
/// [`WRITE`] set, `produced` is written first.
fn kept(name: &str, produced: &[u8]) -> Vec<u8> {
    let path = vector_path(name);
    if std::env::var_os(WRITE).is_some() {
        std::fs::write(&path, produced).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let kept = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        kept == produced,
        "{name}: today's code produces other bytes than the kept vector ({} vs {} bytes); a \
         format change needs a new version, not new vectors",
        produced.len(),
        kept.len()
    );
    kept
}

/// A fixed "random" source for HPKE's ephemeral key: 0, 1, 2, … as bytes.
struct Counting(u8);

impl TryRng for Counting {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            *byte = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

impl TryCryptoRng for Counting {}

fn secret() -> SiteSecret {
    SiteSecret::from_bytes([0x5e; 32])
}

/// One record of each kind, with letters outside ASCII and a synthetic national id.
fn roster() -> Roster {
    Roster {
        schools: vec![School {
            skolenummer: "46500".into(),
            organisasjonsnummer: Some("974600951".into()),
            kommunenummer: Some("4601".into()),
            fylkesnummer: Some("46".into()),
            name: "Fana skule".into(),
        }],
        students: vec![Student {
            source_key: "46500-02871662943".into(),
            national_id: Some(NationalId::parse("02871662943").expect("a synthetic id")),
            username: Some("noah.saether".into()),
            given_name: "Noah".into(),
            middle_name: Some("Ærlig".into()),
            family_name: "Sæther-Øvstebø".into(),
            birth_date: CivilDate::parse_iso("2016-07-02"),
            gender: Gender::Male,
            email: Some("elev1@skule.example.no".into()),
        }],
        groups: vec![Group {
            source_key: "46500-4B".into(),
            name: "4B".into(),
            grade: Some("4".into()),
            school: "46500".into(),
            school_year: Some("2025/2026".into()),
        }],
        enrollments: vec![Enrollment {
            source_key: "46500-02871662943@46500".into(),
            student: "46500-02871662943".into(),
            school: "46500".into(),
            group: Some("46500-4B".into()),
        }],
    }
}

/// Each record's handle and digest under [`secret`], one line each.
fn handles_and_digests(roster: &Roster) -> String {
    let secret = secret();
    let mut lines = String::new();
    let mut line = |entity: Entity, key: &str, digest: Digest| {
        lines.push_str(&format!(
            "{entity:?} {key} handle {} digest {}\n",
            hex::encode(secret.handle(entity, key).as_bytes()),
            hex::encode(digest.as_bytes())
        ));
    };
    for school in &roster.schools {
        line(Entity::School, &school.skolenummer, Digest::of(school));
    }
    for student in &roster.students {
        line(Entity::Student, &student.source_key, Digest::of(student));
    }
    for group in &roster.groups {
        line(Entity::Group, &group.source_key, Digest::of(group));
    }
    for enrollment in &roster.enrollments {
        line(
            Entity::Enrollment,
            &enrollment.source_key,
            Digest::of(enrollment),
        );
    }
    lines
}

/// A handle as DESIGN decision 1 and `handle.rs` define it, spelt out with the HMAC crate:
/// HMAC-SHA256 under the site secret of the entity's index (its place in `Entity`: school 0,
/// student 1, group 2, enrollment 3) followed by the source key's UTF-8 bytes.
fn handle_by_hand(secret: [u8; 32], entity_index: u8, key: &str) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&secret)
        .expect("HMAC takes any key length");
    mac.update(&[entity_index]);
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A digest spelt out: SHA-256 of the entity's index followed by the record's postcard bytes.
fn digest_by_hand<R: serde::Serialize>(entity_index: u8, record: &R) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update([entity_index]);
    hasher.update(postcard::to_allocvec(record).expect("postcard"));
    hex::encode(hasher.finalize())
}

#[test]
fn record_handles_and_digests_match_the_kept_vectors() {
    let produced = handles_and_digests(&roster());
    let kept = kept("handles.txt", produced.as_bytes());
    let kept = String::from_utf8(kept).expect("UTF-8");
    assert_eq!(kept.lines().count(), 4, "one line per record");
    // Each kept line, field by field, against the derivation spelt out by hand.
    let roster = roster();
    let expected = [
        (
            "School",
            "46500",
            handle_by_hand([0x5e; 32], 0, "46500"),
            digest_by_hand(0, &roster.schools[0]),
        ),
        (
            "Student",
            "46500-02871662943",
            handle_by_hand([0x5e; 32], 1, "46500-02871662943"),
            digest_by_hand(1, &roster.students[0]),
        ),
        (
            "Group",
            "46500-4B",
            handle_by_hand([0x5e; 32], 2, "46500-4B"),
            digest_by_hand(2, &roster.groups[0]),
        ),
        (
            "Enrollment",
            "46500-02871662943@46500",
            handle_by_hand([0x5e; 32], 3, "46500-02871662943@46500"),
            digest_by_hand(3, &roster.enrollments[0]),
        ),
    ];
    for (line, (entity, key, handle, digest)) in kept.lines().zip(expected) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            fields,
            [entity, key, "handle", &handle, "digest", &digest],
            "{line}"
        );
    }
    // Handles are keyed: another site's secret gives other handles for the same keys.
    let other = SiteSecret::from_bytes([0x5f; 32]);
    let handle = hex::encode(other.handle(Entity::School, "46500").as_bytes());
    assert!(!kept.contains(&handle));
}

fn device() -> DeviceId {
    DeviceId::new("pi-vector").expect("a device id")
}

fn device_key() -> DeviceSigningKey {
    DeviceSigningKey::from_bytes([0x0d; 32])
}

fn central_key() -> SealingPrivateKey {
    SealingPrivateKey::from_bytes([0xce; 32])
}

/// The header of the kept envelopes: seq 1 of the vector device, of `kind`.
fn vector_header(kind: Kind) -> Header {
    Header {
        version: FORMAT_VERSION,
        device: device(),
        site: SiteId::new("4601-46500").expect("a site id"),
        seq: Seq(1),
        prev: [0; 32],
        created_unix_ms: 1_780_000_000_000,
        kind,
    }
}

/// `payload` sealed as seq 1, checked against the kept vector `name`, and the kept bytes
/// opened with today's code.
fn kept_envelope(name: &str, payload: &Payload) -> Opened {
    let header = vector_header(payload.kind());
    let envelope = seal_with(
        header.clone(),
        payload,
        &central_key().public_key(),
        &device_key(),
        &mut Counting(0),
    )
    .expect("sealed");
    let kept = kept(name, &envelope.to_bytes());
    let opened = open(
        &kept,
        1 << 20,
        &device(),
        &device_key().verifying_key(),
        &ChainHead::genesis(),
        &central_key(),
    )
    .expect("the kept envelope opens with today's code");
    assert_eq!(opened.header, header);
    assert_eq!(&opened.payload, payload);
    opened
}

/// The sections of a kept envelope, cut by hand along the wire format that
/// `envelope/mod.rs` documents, not by the crate's parser.
struct WireSections<'a> {
    version: u16,
    header: &'a [u8],
    encapsulated_key: &'a [u8],
    ciphertext: &'a [u8],
    /// Every byte before the signature's length: what the signature covers, after the domain.
    signed: &'a [u8],
    signature: &'a [u8],
}

/// The next `u32` big-endian length-prefixed section at `*at`, which moves past it.
fn section<'a>(bytes: &'a [u8], at: &mut usize) -> &'a [u8] {
    let len = u32::from_be_bytes(bytes[*at..*at + 4].try_into().expect("4 bytes")) as usize;
    let section = &bytes[*at + 4..*at + 4 + len];
    *at += 4 + len;
    section
}

fn wire_sections(bytes: &[u8]) -> WireSections<'_> {
    assert_eq!(&bytes[..4], b"SKBE", "magic");
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    let mut at = 6;
    let header = section(bytes, &mut at);
    let encapsulated_key = section(bytes, &mut at);
    let ciphertext = section(bytes, &mut at);
    let signed = &bytes[..at];
    let signature = section(bytes, &mut at);
    assert_eq!(at, bytes.len(), "nothing follows the signature");
    WireSections {
        version,
        header,
        encapsulated_key,
        ciphertext,
        signed,
        signature,
    }
}

#[test]
fn each_kept_envelope_follows_the_documented_wire_format_section_by_section() {
    use ed25519_dalek::Verifier as _;
    use hpke::Deserializable as _;
    use sha2::Digest as _;
    type Kem = hpke::kem::X25519HkdfSha256;

    // The kept file, the payload it holds, and that payload's postcard variant index (the
    // table in `envelope/payload.rs`).
    let envelopes = [
        ("envelope-v1.bin", Payload::Snapshot(roster()), 1u8),
        ("envelope-delta-v1.bin", Payload::Delta(delta_v1()), 0),
        (
            "envelope-delta-renames.bin",
            Payload::Delta(delta_with_renames()),
            2,
        ),
    ];
    for (name, payload, variant) in envelopes {
        let bytes = std::fs::read(vector_path(name)).expect("the kept envelope");
        let wire = wire_sections(&bytes);
        assert_eq!(wire.version, 1, "{name}: format version");
        assert_eq!(
            wire.header,
            postcard::to_allocvec(&vector_header(payload.kind()))
                .expect("postcard")
                .as_slice(),
            "{name}: the header is the postcard encoding of the fixed header"
        );
        assert_eq!(wire.encapsulated_key.len(), 32, "{name}: X25519 enc");
        assert_eq!(wire.signature.len(), 64, "{name}: Ed25519 signature");

        // The signature by hand: Ed25519 under the device's seed over the domain and every
        // byte before the signature's length.
        let mut message = SIGNATURE_DOMAIN.to_vec();
        message.extend_from_slice(wire.signed);
        let signature =
            ed25519_dalek::Signature::from_slice(wire.signature).expect("64 signature bytes");
        ed25519_dalek::SigningKey::from_bytes(&[0x0d; 32])
            .verifying_key()
            .verify(&message, &signature)
            .unwrap_or_else(|e| panic!("{name}: the signature verifies by hand: {e}"));

        // The ciphertext by hand: HPKE base mode to central's key, info and AAD as documented.
        let central = <Kem as hpke::Kem>::PrivateKey::from_bytes(&[0xce; 32]).expect("a key");
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(wire.encapsulated_key)
            .expect("an encapsulated key");
        let plaintext =
            hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
                &hpke::OpModeR::Base,
                &central,
                &enc,
                HPKE_INFO,
                wire.ciphertext,
                wire.header,
            )
            .unwrap_or_else(|e| panic!("{name}: the payload opens by hand: {e}"));
        assert_eq!(plaintext[0], variant, "{name}: payload variant");
        let decoded: Payload = postcard::from_bytes(&plaintext).expect("the payload decodes");
        assert_eq!(decoded, payload, "{name}");

        // The digest the next envelope chains on is SHA-256 of all the bytes.
        let opened = open(
            &bytes,
            1 << 20,
            &device(),
            &device_key().verifying_key(),
            &ChainHead::genesis(),
            &central_key(),
        )
        .expect("it opens");
        assert_eq!(
            opened.next_head().prev,
            <[u8; 32]>::from(sha2::Sha256::digest(&bytes)),
            "{name}: the chain digest"
        );
    }
}

#[test]
fn a_sealed_envelope_matches_the_kept_vector_and_opens() {
    let opened = kept_envelope("envelope-v1.bin", &Payload::Snapshot(roster()));
    assert_eq!(opened.next_head().next_seq, Seq(2));
}

/// A delta as the format before renames wrote it: a student and its enrollment upserted,
/// one student deleted. No rename, so it is written as `Payload` variant 0 to this day.
fn delta_v1() -> Delta {
    let roster = roster();
    let secret = secret();
    let mut delta = Delta::default();
    let student = roster.students[0].clone();
    let enrollment = roster.enrollments[0].clone();
    delta.students.upserts = vec![(secret.handle(Entity::Student, &student.source_key), student)];
    delta.students.deletes = vec![secret.handle(Entity::Student, "elev-gone")];
    delta.enrollments.upserts = vec![(
        secret.handle(Entity::Enrollment, &enrollment.source_key),
        enrollment,
    )];
    delta
}

#[test]
fn a_sealed_delta_of_the_first_payload_version_matches_the_kept_vector_and_opens() {
    kept_envelope("envelope-delta-v1.bin", &Payload::Delta(delta_v1()));
}

/// A delta with renames: the student and its enrollment carry a new key (a PIFU `Old`/`New`
/// pair), so each is upserted under the new handle, deleted under the old one and named in
/// `renames`. Written as `Payload` variant 2.
fn delta_with_renames() -> Delta {
    let roster = roster();
    let secret = secret();
    let mut delta = Delta::default();
    let student = roster.students[0].clone();
    let enrollment = roster.enrollments[0].clone();
    let (old_student, new_student) = (
        secret.handle(Entity::Student, "elev-old"),
        secret.handle(Entity::Student, &student.source_key),
    );
    let (old_enrollment, new_enrollment) = (
        secret.handle(Entity::Enrollment, "elev-old@46500"),
        secret.handle(Entity::Enrollment, &enrollment.source_key),
    );
    delta.students.upserts = vec![(new_student, student)];
    delta.students.deletes = vec![old_student];
    delta.students.renames = vec![(old_student, new_student)];
    delta.enrollments.upserts = vec![(new_enrollment, enrollment)];
    delta.enrollments.deletes = vec![old_enrollment];
    delta.enrollments.renames = vec![(old_enrollment, new_enrollment)];
    delta
}

#[test]
fn a_sealed_delta_with_renames_matches_the_kept_vector_and_opens() {
    let opened = kept_envelope(
        "envelope-delta-renames.bin",
        &Payload::Delta(delta_with_renames()),
    );
    let Payload::Delta(delta) = opened.payload else {
        panic!("a delta")
    };
    assert_eq!(delta.students.renames.len(), 1);
    assert_eq!(delta.enrollments.renames.len(), 1);
}

fn stick_body() -> StickBody {
    let site = SiteInfo {
        fylke: "46".into(),
        kommune: "4601".into(),
        skolenummer: "46500".into(),
        name: "Fana skule".into(),
    };
    StickBody {
        site_id: site.site_id().expect("a site id"),
        site,
        central_url: "https://central.example.no:8443".into(),
        central_ca_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        sealing_key: central_key().public_key().to_bytes(),
        token: "ab".repeat(32),
        token_expires_unix: 1_780_086_400,
        written_unix: 1_780_000_000,
        settings_toml: "[safety]\nmax_deleted_fraction = 0.1\n".into(),
        schools: vec![
            "4601/46500=Fana skule".parse().expect("a school"),
            "4601//974600000=Fana skule avd. Nord"
                .parse()
                .expect("a school"),
        ],
        drop_share: Some(DropShare {
            enabled: true,
            account: "skolebro-drop".into(),
            size_cap_mib: 64,
            password_nt_hash: Some(skolebro_protocol::drop_share::nt_hash("Drop-share-pass-1")),
        }),
        share_source: Some(PullShare {
            server: "filserver.fana.example.no".into(),
            port: 445,
            share: "Eksport".into(),
            folder: "sas/elevliste".into(),
            pattern: "*.csv".into(),
            user: "skolebro-les".into(),
            domain: Some("FANA".into()),
            password_nt_hash: skolebro_protocol::drop_share::nt_hash("Pull-share-pass-1"),
            poll_seconds: 60,
            stable_seconds: 10,
            after: AfterPull::Move("sas/hentet".into()),
        }),
    }
}

#[test]
fn a_stick_bundle_matches_the_kept_vector_and_verifies() {
    let key = StickSigningKey::from_bytes([0x57; 32]);
    let kept = kept("stick-v5.bin", &stick_body().sign(&key));
    assert_eq!(kept[4], 5, "the kept bundle is of format version 5");
    let body = StickBody::verify(&kept, &key.verifying_key()).expect("the kept bundle verifies");
    assert_eq!(body, stick_body());
}

#[test]
fn a_version_4_stick_bundle_still_verifies_and_its_pull_share_deletes() {
    let key = StickSigningKey::from_bytes([0x57; 32]);
    let kept = std::fs::read(vector_path("stick-v4.bin")).expect("the kept version 4 bundle");
    assert_eq!(kept[4], 4, "the kept bundle is of format version 4");
    let body = StickBody::verify(&kept, &key.verifying_key()).expect("the kept bundle verifies");
    let mut deleting = stick_body();
    if let Some(share) = deleting.share_source.as_mut() {
        share.after = AfterPull::Delete;
    }
    assert_eq!(body, deleting);
}

#[test]
fn a_version_3_stick_bundle_still_verifies_and_carries_no_pull_share() {
    let key = StickSigningKey::from_bytes([0x57; 32]);
    let kept = std::fs::read(vector_path("stick-v3.bin")).expect("the kept version 3 bundle");
    assert_eq!(kept[4], 3, "the kept bundle is of format version 3");
    let body = StickBody::verify(&kept, &key.verifying_key()).expect("the kept bundle verifies");
    assert_eq!(
        body,
        StickBody {
            share_source: None,
            ..stick_body()
        }
    );
}

#[test]
fn a_version_2_stick_bundle_still_verifies_and_carries_no_drop_share_settings() {
    let key = StickSigningKey::from_bytes([0x57; 32]);
    let kept = std::fs::read(vector_path("stick-v2.bin")).expect("the kept version 2 bundle");
    assert_eq!(kept[4], 2, "the kept bundle is of format version 2");
    let body = StickBody::verify(&kept, &key.verifying_key()).expect("the kept bundle verifies");
    assert_eq!(
        body,
        StickBody {
            drop_share: None,
            share_source: None,
            ..stick_body()
        }
    );
}

#[test]
fn a_version_1_stick_bundle_still_verifies_and_carries_no_schools() {
    let key = StickSigningKey::from_bytes([0x57; 32]);
    let kept = std::fs::read(vector_path("stick-v1.bin")).expect("the kept version 1 bundle");
    assert_eq!(kept[4], 1, "the kept bundle is of format version 1");
    let body = StickBody::verify(&kept, &key.verifying_key()).expect("the kept bundle verifies");
    assert_eq!(
        body,
        StickBody {
            schools: Vec::new(),
            drop_share: None,
            share_source: None,
            ..stick_body()
        }
    );
}

/// The version 1 manifest body as it was written before manifests expired: the same
/// fields in the same order, without `expires_unix`, `replaces` and `floor`.
#[derive(serde::Serialize)]
struct ManifestV1 {
    version: Version,
    target: String,
    size: u64,
    sha256: [u8; 32],
    allow_downgrade: bool,
    created_unix: u64,
}

/// The version 1 framing spelt out by hand (magic, version 1, length, postcard body, Ed25519
/// over all of it): today's code no longer writes it, so the test does.
fn manifest_v1_bytes(key_seed: [u8; 32]) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    let today = manifest();
    let body = postcard::to_allocvec(&ManifestV1 {
        version: today.version,
        target: today.target,
        size: today.size,
        sha256: today.sha256,
        allow_downgrade: today.allow_downgrade,
        created_unix: today.created_unix,
    })
    .expect("postcard");
    let mut bytes = b"SKBR".to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&body);
    let signature = ed25519_dalek::SigningKey::from_bytes(&key_seed).sign(&bytes);
    bytes.extend_from_slice(&signature.to_bytes());
    bytes
}

#[test]
fn a_version_1_manifest_matches_the_kept_vector_and_is_refused_as_retired() {
    let key = ReleaseSigningKey::from_bytes([0x4e; 32]);
    let kept = kept("manifest-v1.bin", &manifest_v1_bytes([0x4e; 32]));
    assert_eq!(
        ReleaseManifest::verify(&kept, &key.verifying_key()),
        Err(ReleaseError::Retired(1))
    );
    let refusal = ReleaseManifest::verify(&kept, &key.verifying_key())
        .expect_err("refused")
        .to_string();
    assert!(refusal.contains("no expiry"), "{refusal}");
}

fn manifest() -> ReleaseManifest {
    ReleaseManifest {
        version: "1.4.2".parse::<Version>().expect("a version"),
        target: "aarch64-unknown-linux-gnu".into(),
        size: 7_340_032,
        sha256: [0xa5; 32],
        allow_downgrade: false,
        created_unix: 1_780_000_000,
        expires_unix: 1_780_000_000 + 30 * 86_400,
        replaces: None,
        floor: Some("1.3.0".parse::<Version>().expect("a version")),
    }
}

#[test]
fn a_version_2_release_manifest_matches_the_kept_vector_and_verifies() {
    let key = ReleaseSigningKey::from_bytes([0x4e; 32]);
    let kept = kept("manifest-v2.bin", &manifest().sign(&key));
    assert_eq!(kept[4], 2);
    let read = ReleaseManifest::verify(&kept, &key.verifying_key()).expect("it verifies");
    assert_eq!(read, manifest());
    assert_eq!(read.id(), "1.4.2-aarch64-unknown-linux-gnu");
}

/// `value` as pretty JSON, checked against the kept file, and the kept file read back.
fn json_vector<T>(name: &str, value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut produced = serde_json::to_string_pretty(value).expect("JSON");
    produced.push('\n');
    let kept = kept(name, produced.as_bytes());
    serde_json::from_slice(&kept).expect("the kept JSON reads")
}

/// The heartbeat of `heartbeat.json`: a healthy agent with two batches waiting.
fn healthy_heartbeat() -> Heartbeat {
    Heartbeat {
        version: "1.4.2".into(),
        state: AgentState::Healthy,
        outbox_depth: 2,
        outbox_bytes: 4096,
        oldest_unacked_age_s: Some(30),
        last_export_unix_ms: Some(1_780_000_000_000),
        deviations: DeviationCounts::default(),
        deviation_groups: Vec::new(),
        held: None,
        target: Some("aarch64-unknown-linux-gnu".into()),
        update: None,
        freshness: None,
        arrival: None,
        drop_share: None,
        source_problem: None,
    }
}

#[test]
fn the_heartbeat_json_matches_the_kept_vector() {
    let heartbeat = healthy_heartbeat();
    assert_eq!(json_vector("heartbeat.json", &heartbeat), heartbeat);
}

/// A holding agent's heartbeat with its reasons as structure beside the words (issue 16);
/// `heartbeat.json` stays the shape from before, which must still read.
#[test]
fn a_holding_heartbeat_with_structured_reasons_matches_the_kept_vector() {
    let causes = vec![
        HeldReason::ColumnVanished {
            column: "Klasse".into(),
        },
        HeldReason::TooManyDeletes {
            would: 151,
            of: 300,
            limit_percent: 10,
        },
        HeldReason::TooManyUpdates {
            would: 260,
            of: 340,
            limit_percent: 75,
        },
        HeldReason::DeletionsPostponed {
            count: 3,
            from: "2027-06-20".into(),
            to: "2027-08-15".into(),
        },
    ];
    let heartbeat = Heartbeat {
        version: "1.5.0".into(),
        state: AgentState::Holding,
        outbox_depth: 0,
        outbox_bytes: 0,
        oldest_unacked_age_s: None,
        last_export_unix_ms: Some(1_780_000_000_000),
        deviations: DeviationCounts::default(),
        deviation_groups: Vec::new(),
        held: Some(HeldDelta {
            id: "held-9".into(),
            reasons: causes.iter().map(ToString::to_string).collect(),
            causes,
            upserts: [("students".to_owned(), 4)].into(),
            deletes: [("students".to_owned(), 151)].into(),
            held_since_unix_ms: Some(1_780_000_000_000),
        }),
        target: Some("aarch64-unknown-linux-gnu".into()),
        update: None,
        freshness: None,
        arrival: None,
        drop_share: None,
        source_problem: None,
    };
    assert_eq!(json_vector("heartbeat-held.json", &heartbeat), heartbeat);
}

/// A heartbeat with the drop share's reports (issue 20): the newest arrival, what became of
/// the share's settings, and a source problem; `heartbeat.json` stays the shape from before.
#[test]
fn a_heartbeat_with_the_share_reports_matches_the_kept_vector() {
    let heartbeat = Heartbeat {
        version: "1.6.0".into(),
        outbox_depth: 0,
        outbox_bytes: 0,
        oldest_unacked_age_s: None,
        arrival: Some(Arrival {
            file: "elevliste.csv".into(),
            written_unix_ms: 1_779_999_990_000,
            outcome: "delivered to central".into(),
            refused: false,
            delivered: true,
            awaiting_seq: None,
        }),
        drop_share: Some(ShareStatus {
            applied: Some(Applied {
                enabled: true,
                account: "sas-eksport".into(),
                size_cap_mib: 64,
            }),
            applied_unix_ms: Some(1_779_000_000_000),
            last_error: Some(
                "the drop share has no password on this Pi (none was set, or the share was \
                 turned off): settings that turn it on must carry one"
                    .into(),
            ),
            last_error_unix_ms: Some(1_780_000_000_000),
        }),
        ..healthy_heartbeat()
    };
    assert_eq!(json_vector("heartbeat-share.json", &heartbeat), heartbeat);
}

#[test]
fn the_heartbeat_answer_json_matches_the_kept_vector() {
    let answer = HeartbeatAnswer {
        commands: vec![
            Command::Resync,
            Command::Release {
                held_id: "held-7".into(),
            },
        ],
        release: Some(ReleaseOffer {
            id: "1.4.2-aarch64-unknown-linux-gnu".into(),
            manifest: "U0tCUg==".into(),
            artifact: "/v1/releases/1.4.2-aarch64-unknown-linux-gnu/artifact".into(),
        }),
        statement: None,
        key_rotations: Vec::new(),
    };
    assert_eq!(json_vector("heartbeat-answer.json", &answer), answer);
}

#[test]
fn a_version_1_statement_matches_the_kept_vector_and_verifies() {
    use skolebro_protocol::statement::manifest_digest;
    use skolebro_protocol::{Statement, StatementSigningKey};
    let key = StatementSigningKey::from_bytes([0x54; 32]);
    let statement = Statement {
        device: "4601-12345-0a0b0c0d".into(),
        target: Some("aarch64-unknown-linux-gnu".into()),
        issued_unix_ms: 1_780_000_000_000,
        expires_unix_ms: 1_780_000_000_000 + 86_400_000,
        current: Some(manifest_digest(
            &manifest().sign(&ReleaseSigningKey::from_bytes([0x4e; 32])),
        )),
    };
    let kept = kept("statement-v1.bin", &statement.sign(&key));
    assert_eq!(&kept[..5], b"SKBT\x01");
    let read = Statement::verify(&kept, &key.verifying_key()).expect("it verifies");
    assert_eq!(read, statement);
}

#[test]
fn a_version_1_release_key_rotation_matches_the_kept_vector_and_verifies() {
    use skolebro_protocol::rotation::{KeyRole, KeyRotation, RootSigningKey};
    let (current, root) = (
        ReleaseSigningKey::from_bytes([0x4e; 32]),
        RootSigningKey::from_bytes([0x7e; 32]),
    );
    let next = ReleaseSigningKey::from_bytes([0x4f; 32]).verifying_key();
    let rotation = KeyRotation {
        role: KeyRole::Release,
        sequence: 1,
        new_key: next.to_bytes(),
        issued_unix: 1_780_000_000,
    };
    let kept = kept("rotation-v1.bin", &rotation.sign_release(&current, &root));
    let rotated = KeyRotation::verify_release(
        &kept,
        &current.verifying_key(),
        Some(&root.verifying_key()),
        0,
    )
    .expect("the kept rotation verifies");
    assert_eq!((rotated.sequence, rotated.key), (1, next));
    assert_eq!(KeyRotation::read_unchecked(&kept), Ok(rotation));
}

#[test]
fn the_batch_answers_json_match_the_kept_vectors() {
    let ack = BatchAck {
        ack: 41,
        applied: false,
    };
    assert_eq!(json_vector("batch-ack.json", &ack), ack);
    let gap = BatchGap {
        expected_seq: 42,
        prev: "ab".repeat(32),
    };
    assert_eq!(json_vector("batch-gap.json", &gap), gap);
    // An ack from a central that does not say `applied` means applied.
    let old: BatchAck = serde_json::from_str(r#"{"ack": 41}"#).expect("reads");
    assert!(old.applied);
}
