//! Known-answer vectors for what the agent keeps on disk: an outbox segment with its ack
//! pointer, a checkpoint, and the enrollment file. The bytes in `tests/vectors/` were produced once (see its
//! README); each test encodes the same values again and requires the same bytes, checks the
//! documented layout by hand, and reads the kept files with today's code (the outbox through
//! its start-up recovery, the checkpoint through `Checkpoint::load`), so an agent after an
//! update still reads what the one before it wrote.

use std::path::PathBuf;

use skolebro_agent::outbox::recovery::{encode_ack, ACK_FILE};
use skolebro_agent::outbox::segment::{encode_frame, segment_name, HEADER_LEN};
use skolebro_agent::outbox::{MemStorage, Outbox, OutboxConfig};
use skolebro_agent::provision::enrollment::{DeviceEnrollment, ENROLLMENT_FILE};
use skolebro_agent::state::Checkpoint;
use skolebro_protocol::envelope::ChainHead;
use skolebro_protocol::{Entity, Gender, Roster, School, Seq, SiteSecret, Student};
use skolebro_roster::state::State;

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

/// The three batches of the kept segment: (seq, appended at, payload).
fn batches() -> Vec<(u64, u64, Vec<u8>)> {
    vec![
        (1, 1_780_000_000_000, b"SKBE first envelope".to_vec()),
        (2, 1_780_000_001_500, vec![0xff; 40]),
        (3, 1_780_000_003_000, (0..=255u8).collect()),
    ]
}

#[test]
fn an_outbox_segment_and_ack_pointer_match_the_kept_vectors_and_recover() {
    let produced: Vec<u8> = batches()
        .iter()
        .flat_map(|(seq, at, payload)| encode_frame(*seq, *at, payload))
        .collect();
    let segment = kept("outbox-00000000000000000001.seg", &produced);
    let ack = kept("outbox-ack", &encode_ack(1));

    // The layout as segment.rs documents it: len, crc, seq, appended_at, all little-endian.
    let mut offset = 0;
    for (seq, at, payload) in batches() {
        let field = |at: usize, len: usize| &segment[offset + at..offset + at + len];
        assert_eq!(field(0, 4), (payload.len() as u32).to_le_bytes());
        assert_eq!(field(8, 8), seq.to_le_bytes());
        assert_eq!(field(16, 8), at.to_le_bytes());
        assert_eq!(field(HEADER_LEN, payload.len()), payload.as_slice());
        offset += HEADER_LEN + payload.len();
    }
    assert_eq!(offset, segment.len());
    assert_eq!(&ack[..8], b"SKOBXAK1");
    assert_eq!(ack[8..16], 1u64.to_le_bytes());

    // Today's outbox opens the kept files as it would at start-up: seq 1 acknowledged, 2 and
    // 3 pending with their times and bytes, and 4 next.
    let storage = MemStorage::new();
    storage.set_raw(&segment_name(1), segment);
    storage.set_raw(ACK_FILE, ack);
    let (outbox, report) = Outbox::open(storage, OutboxConfig::default()).expect("it opens");
    assert!(report.torn_tail().is_none(), "{report}");
    assert!(!report.needs_snapshot, "{report}");
    assert_eq!(outbox.ack_seq(), 1);
    assert_eq!(outbox.next_seq(), 4);
    let pending: Vec<(u64, u64, Vec<u8>)> = outbox
        .pending(0)
        .map(|batch| {
            let batch = batch.expect("an intact batch");
            (batch.seq, batch.appended_at_ms, batch.payload)
        })
        .collect();
    assert_eq!(pending, batches()[1..]);
}

/// A checkpoint of a two-record roster under a fixed secret, after seq 3, with the export's
/// `columns`.
fn checkpoint(columns: &[&str]) -> Checkpoint {
    let roster = Roster {
        schools: vec![School {
            skolenummer: "46500".into(),
            organisasjonsnummer: None,
            kommunenummer: Some("4601".into()),
            fylkesnummer: Some("46".into()),
            name: "Fana skule".into(),
        }],
        students: vec![Student {
            source_key: "elev1".into(),
            national_id: None,
            username: None,
            given_name: "Åse".into(),
            middle_name: None,
            family_name: "Søreide".into(),
            birth_date: None,
            gender: Gender::Female,
            email: None,
        }],
        ..Roster::default()
    };
    Checkpoint {
        state: State::of(&roster, &SiteSecret::from_bytes([0x5e; 32])),
        head: ChainHead::after(Seq(3), [0x3c; 32]),
        needs_snapshot: true,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
    }
}

#[test]
fn a_checkpoint_matches_the_kept_vector_and_loads() {
    let today = checkpoint(&["Klasse", "Fødselsnummer"]);
    let mut produced = Vec::new();
    today.write_to(&mut produced).expect("encoded");
    let kept = kept("checkpoint-v1-columns", &produced);
    assert_eq!(&kept[..5], b"SKBS\x01", "magic and version");
    let loaded = Checkpoint::load(&vector_path("checkpoint-v1-columns"))
        .expect("the kept checkpoint loads")
        .expect("it is there");
    assert_eq!(loaded, today);
    assert_eq!(loaded.head.next_seq, Seq(4));
    assert_eq!(loaded.state.len(Entity::Student), 1);
    assert_eq!(loaded.state.len(Entity::School), 1);
}

#[test]
fn a_checkpoint_written_before_columns_existed_still_loads() {
    // `checkpoint-v1` was written by the build before `Checkpoint::columns` (see the README):
    // this release reads it, with no columns.
    let loaded = Checkpoint::load(&vector_path("checkpoint-v1"))
        .expect("the older checkpoint loads")
        .expect("it is there");
    assert_eq!(loaded, checkpoint(&[]));
}

/// An enrollment with placeholder PEM text (the file is read without parsing it; no real key
/// or certificate is kept in the repository) and test constants for the hex secrets.
fn enrollment() -> DeviceEnrollment {
    DeviceEnrollment {
        device: "pi-vector".into(),
        site: "4601-46500".into(),
        token_id: "0123456789abcdef".into(),
        enrolled_unix: 1_780_000_000,
        renewed_unix: Some(1_780_600_000),
        central_url: "https://central.example.no:8443".into(),
        central_ca_pem: "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n"
            .into(),
        sealing_key: "ce".repeat(32),
        cert_pem: "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n".into(),
        key_pem: "placeholder, not a key".into(),
        signing_key: "0d".repeat(32),
        site_secret: "5e".repeat(32),
        settings_toml: "[safety]\nmax_deleted_fraction = 0.1\n".into(),
        site_has_records: false,
        schools: Vec::new(),
    }
}

/// Loads the kept file `name` as the agent's `enrollment.json`.
fn load_enrollment(name: &str) -> DeviceEnrollment {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::copy(vector_path(name), dir.path().join(ENROLLMENT_FILE)).expect("copied");
    DeviceEnrollment::load(dir.path())
        .expect("the kept enrollment loads")
        .expect("it is there")
}

#[test]
fn the_enrollment_file_matches_the_kept_vector_and_loads() {
    let dir = tempfile::tempdir().expect("a temp dir");
    enrollment().save(dir.path()).expect("saved");
    let produced = std::fs::read(dir.path().join(ENROLLMENT_FILE)).expect("written");
    kept("enrollment.json", &produced);
    assert_eq!(load_enrollment("enrollment.json"), enrollment());
}

#[test]
fn an_enrollment_from_before_site_has_records_loads_as_needing_a_snapshot() {
    // The kept vector without the field, as agents wrote it before it existed: such a device
    // takes the safe side and starts with a full snapshot.
    let old = load_enrollment("enrollment-before-site-has-records.json");
    assert_eq!(
        old,
        DeviceEnrollment {
            site_has_records: true,
            ..enrollment()
        }
    );
}
