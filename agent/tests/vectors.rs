//! Known-answer vectors for what the agent keeps on disk: an outbox segment with its ack
//! pointer, a checkpoint, and the enrollment file. The bytes in `tests/vectors/` were produced
//! once (see its README); each test encodes the same values again and requires the same bytes,
//! checks the documented layout by hand, and reads the kept files with today's code (the
//! outbox through its start-up recovery, the checkpoint through `Checkpoint::load`), so an
//! agent after an update still reads what the one before it wrote.
//!
//! Beside the single formats, `tests/vectors/state-<version>/` keeps a whole state folder and
//! install root as the agent of that release wrote them, and every one of them is opened the
//! way the daemon starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use skolebro_agent::clock::{unix, AgentClock};
use skolebro_agent::enqueue::{Enqueuer, Identity, OfferOutcome};
use skolebro_agent::outbox::recovery::{encode_ack, ACK_FILE};
use skolebro_agent::outbox::segment::{encode_frame, segment_name, HEADER_LEN};
use skolebro_agent::outbox::{MemStorage, Outbox, OutboxConfig};
use skolebro_agent::provision::enrollment::{settle_chain, DeviceEnrollment, ENROLLMENT_FILE};
use skolebro_agent::state::Checkpoint;
use skolebro_agent::status::{write_status, AgentStatus, ProvisioningStatus, RunState};
use skolebro_agent::update::floor::VersionFloor;
use skolebro_agent::update::install::{InstallRoot, Ledger};
use skolebro_agent::update::trial::{self, Trial};
use skolebro_protocol::api::{ReportedState, UpdateReport};
use skolebro_protocol::envelope::{
    open, ChainHead, DeviceId, DeviceSigningKey, Payload, SealingPrivateKey, SiteId,
};
use skolebro_protocol::{
    Entity, Gender, Roster, School, Seq, SiteSchool, SiteSecret, Student, Version,
};
use skolebro_roster::reader::elevliste;
use skolebro_roster::safety::SafetyPolicy;
use skolebro_roster::state::State;
use skolebro_roster::validate::{RosterBuilder, Validated};
use tokio::sync::watch;

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
        statement_key: None,
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
fn an_enrollment_naming_the_sites_schools_matches_the_kept_vector_and_loads() {
    // The schools the stick registered the site with (bundle format 2): written only when
    // there are any, so `enrollment.json` above has none.
    let with_schools = DeviceEnrollment {
        schools: vec![
            SiteSchool::new("4601", Some("46500"), Some("974600951"), "Fana skule")
                .expect("a school"),
            SiteSchool::new("4601", None, Some("974600000"), "Fana skule avd. Nord")
                .expect("a school"),
        ],
        ..enrollment()
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    with_schools.save(dir.path()).expect("saved");
    let produced = std::fs::read(dir.path().join(ENROLLMENT_FILE)).expect("written");
    kept("enrollment-with-schools.json", &produced);
    let loaded = load_enrollment("enrollment-with-schools.json");
    assert_eq!(loaded.schools[1].skolenummer, None);
    assert_eq!(loaded, with_schools);
}

#[test]
fn an_enrollment_keeping_centrals_statement_key_matches_the_kept_vector_and_loads() {
    // Central's statement key from the enrollment answer: written only when central sent
    // one, so the files above have none and still load.
    let with_key = DeviceEnrollment {
        statement_key: Some(
            skolebro_protocol::StatementSigningKey::from_bytes([0x54; 32])
                .verifying_key()
                .to_hex(),
        ),
        ..enrollment()
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    with_key.save(dir.path()).expect("saved");
    let produced = std::fs::read(dir.path().join(ENROLLMENT_FILE)).expect("written");
    kept("enrollment-with-statement-key.json", &produced);
    assert_eq!(
        load_enrollment("enrollment-with-statement-key.json"),
        with_key
    );
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

// A whole state folder as a release left it.
//
// `tests/vectors/state-<version>/` holds the files the agent of that release wrote, through
// its own code (see the README): `state/` is its state folder, `install/` the files its updater
// keeps in the install root. Every kept folder must open with today's code as the daemon
// opens it at start-up, and read back the same values.

/// The prefix of the kept state folders; the rest is the release that wrote them.
const STATE_FOLDER_PREFIX: &str = "state-";

/// The identity the kept state folders belong to: the values of [`enrollment`], with
/// central's sealing key from the test seed `[0xce; 32]`.
fn identity() -> Identity {
    Identity {
        device: DeviceId::new("pi-vector").expect("a device id"),
        site: SiteId::new("4601-46500").expect("a site id"),
        signing_key: DeviceSigningKey::from_bytes([0x0d; 32]),
        central_key: central_key().public_key(),
        site_secret: SiteSecret::from_bytes([0x5e; 32]),
    }
}

fn central_key() -> SealingPrivateKey {
    SealingPrivateKey::from_bytes([0xce; 32])
}

/// The safety filter of the kept folders: rosters this small are not judged by the share of
/// records they delete, so the second export goes through.
fn policy() -> SafetyPolicy {
    SafetyPolicy {
        min_roster: 1000,
        ..SafetyPolicy::default()
    }
}

/// An elevliste export of `rows` (class, pupil number, synthetic national id, family and
/// given name), all at school 46500.
fn export(rows: &[(&str, &str, &str, &str, &str)]) -> Validated {
    let mut text = String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
    for (class, number, national_id, family, given) in rows {
        text.push_str(&format!(
            "46500;{class};{number};{national_id};{family};{given}\n"
        ));
    }
    let mut builder = RosterBuilder::new(Default::default());
    elevliste::read_from(
        Path::new("elevliste.csv"),
        text.as_bytes(),
        &Default::default(),
        false,
        &mut builder,
    )
    .expect("the export reads");
    builder.finish()
}

/// The exports the kept folders were written from, in order: Åse and Ola, then Ola left and
/// Kari came, then (offered by the reading test) Kari moved class.
fn exports() -> [Validated; 3] {
    [
        export(&[
            ("4B", "elev1", "02871662943", "Søreide", "Åse"),
            ("4B", "elev2", "", "Nordmann", "Ola"),
        ]),
        export(&[
            ("4B", "elev1", "02871662943", "Søreide", "Åse"),
            ("4A", "elev3", "", "Nordmann", "Kari"),
        ]),
        export(&[
            ("4B", "elev1", "02871662943", "Søreide", "Åse"),
            ("4B", "elev3", "", "Nordmann", "Kari"),
        ]),
    ]
}

/// The `status.json` of the kept folders.
fn status() -> AgentStatus {
    AgentStatus {
        state: RunState::Healthy,
        version: "0.1.0".into(),
        pid: 4242,
        updated_unix_ms: 1_780_000_010_000,
        last_export_unix_ms: Some(1_780_000_002_000),
        last_export_file: Some("elevliste.csv".into()),
        last_export_students: Some(2),
        last_export_written_unix_ms: Some(1_780_000_001_000),
        last_outcome: Some("sent as batch 2".into()),
        last_ack_seq: Some(0),
        outbox_depth: 2,
        outbox_bytes: 2048,
        oldest_unacked_unix_ms: Some(1_780_000_001_500),
        provisioning: ProvisioningStatus {
            device: Some("pi-vector".into()),
            site: Some("4601-46500".into()),
            token_id: Some("0123456789abcdef".into()),
            enrolled_unix: Some(1_780_000_000),
            clock_synced: true,
            time_floor_unix: 1_780_000_000,
            ..ProvisioningStatus::default()
        },
        ..AgentStatus::default()
    }
}

/// The time floor of the kept folders, in Unix seconds: far past any build time (2096), so
/// the floor read back is the persisted one and not the build's.
const TIME_FLOOR_UNIX: u64 = 4_000_000_000;

/// The release the kept install root runs, and the one it put on trial.
const RUNNING: &str = "1.4.1";
const ON_TRIAL: &str = "1.4.2";

fn ledger() -> Ledger {
    let mut ledger = Ledger::default();
    ledger.push(UpdateReport {
        release: "1.4.0-aarch64-unknown-linux-gnu".into(),
        state: ReportedState::RolledBack,
        reason: Some("release 1.4.0 did not pass its health check in 3 starts".into()),
    });
    ledger.skip("1.4.0-aarch64-unknown-linux-gnu");
    ledger
}

/// Writes a state folder and install root with today's code, from the fixed inputs above,
/// into `kept` (its `state/` and `install/`), regular files only.
fn write_state_folder(kept: &Path) {
    let work = tempfile::tempdir().expect("a temp dir");
    let state = work.path().join("state");
    let install = work.path().join("install");
    std::fs::create_dir_all(&state).expect("a state folder");
    std::fs::create_dir_all(&install).expect("an install root");
    enrollment().save(&state).expect("the enrollment is saved");
    assert!(settle_chain(&state, &identity(), OutboxConfig::default(), true).expect("settled"));
    let (mut enqueuer, _) = Enqueuer::open(&state, identity(), policy(), OutboxConfig::default())
        .expect("the stage opens");
    let [first, second, _] = exports();
    for export in [first, second] {
        let outcome = enqueuer.offer(export).expect("offered");
        assert!(
            matches!(outcome, OfferOutcome::Enqueued { .. }),
            "{outcome:?}"
        );
    }
    drop(enqueuer);
    write_status(&state, &status(), &watch::channel(AgentStatus::default()).0);
    VersionFloor::in_state_dir(&state)
        .raise(Version::new(1, 3, 0))
        .expect("the floor is raised");
    AgentClock::open(Some(&state), &state.join("no-sync-marker"))
        .expect("the clock opens")
        .advance(UNIX_EPOCH + Duration::from_secs(TIME_FLOOR_UNIX));
    let root = InstallRoot::at(&install, RUNNING);
    trial::switch_to(
        &root,
        "1.4.2-aarch64-unknown-linux-gnu",
        ON_TRIAL,
        300,
        3,
        trial::uninterrupted,
    )
    .expect("a release on trial");
    ledger()
        .save(&root.ledger_path())
        .expect("the ledger is saved");

    copy_files(work.path(), kept);
}

/// Copies the regular files under `from` to `to`, keeping the folders (not symbolic links:
/// the install root's `current` and `previous` point at release folders not kept here).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).expect("a folder") {
        let entry = entry.expect("an entry");
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            copy_files(&entry.path(), &to.join(entry.file_name()));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copied");
        }
    }
}

/// Every kept state folder, oldest release first.
fn kept_state_folders() -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(vector_path(""))
        .expect("the vectors folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(STATE_FOLDER_PREFIX))
        })
        .collect();
    folders.sort();
    folders
}

#[test]
fn every_kept_state_folder_opens_with_todays_code_and_reads_back_what_its_release_wrote() {
    // A kept folder stands for what a release already left on devices: it is written once,
    // when missing, and never over.
    let name = format!("{STATE_FOLDER_PREFIX}{}", env!("CARGO_PKG_VERSION"));
    if std::env::var_os(WRITE).is_some() && !vector_path(&name).exists() {
        write_state_folder(&vector_path(&name));
    }
    let folders = kept_state_folders();
    assert!(!folders.is_empty(), "no kept state folder");
    for folder in folders {
        let work = tempfile::tempdir().expect("a temp dir");
        copy_files(&folder, work.path());
        let state = work.path().join("state");
        let name = folder.display();

        // Enrollment and the chain's device, as the daemon reads them before anything else.
        let loaded = DeviceEnrollment::load(&state)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .expect("an enrollment");
        assert_eq!(loaded, enrollment(), "{name}");
        assert!(
            !settle_chain(&state, &identity(), OutboxConfig::default(), true).expect("settled"),
            "{name}: the kept chain belongs to the kept device and is not reset"
        );

        // The checkpoint and the outbox, opened together, agree: both batches pending, and
        // the checkpoint's head after the second one.
        let (mut enqueuer, report) =
            Enqueuer::open(&state, identity(), policy(), OutboxConfig::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.torn_tail().is_none(), "{name}: {report}");
        assert!(!report.needs_snapshot, "{name}: {report}");
        let checkpoint = enqueuer.checkpoint().clone();
        assert!(!checkpoint.needs_snapshot, "{name}");
        assert_eq!(checkpoint.state.len(Entity::Student), 2, "{name}");
        assert_eq!(checkpoint.state.len(Entity::School), 1, "{name}");
        assert_eq!(checkpoint.state.len(Entity::Group), 2, "{name}");
        assert_eq!(checkpoint.state.len(Entity::Enrollment), 2, "{name}");
        assert_eq!(enqueuer.outbox().ack_seq(), 0, "{name}");
        assert_eq!(enqueuer.outbox().next_seq(), 3, "{name}");
        let mut head = ChainHead::genesis();
        let mut payloads = Vec::new();
        for batch in enqueuer.outbox().pending(0) {
            let batch = batch.unwrap_or_else(|e| panic!("{name}: {e}"));
            let opened = open(
                &batch.payload,
                1 << 20,
                &identity().device,
                &identity().signing_key.verifying_key(),
                &head,
                &central_key(),
            )
            .unwrap_or_else(|e| panic!("{name}: batch {}: {e}", batch.seq));
            head = opened.next_head();
            payloads.push(opened.payload);
        }
        assert_eq!(
            checkpoint.head, head,
            "{name}: the checkpoint follows the outbox"
        );
        let [Payload::Snapshot(roster), Payload::Delta(delta)] = payloads.as_slice() else {
            panic!("{name}: a snapshot and a delta, not {payloads:?}")
        };
        let given: Vec<&str> = roster
            .students
            .iter()
            .map(|s| s.given_name.as_str())
            .collect();
        assert_eq!(given, ["Åse", "Ola"], "{name}");
        assert_eq!(delta.students.upserts.len(), 1, "{name}: Kari");
        assert_eq!(delta.students.upserts[0].1.given_name, "Kari", "{name}");
        assert_eq!(delta.students.deletes.len(), 1, "{name}: Ola");

        // Today's code carries the chain on.
        let [_, _, third] = exports();
        let outcome = enqueuer
            .offer(third)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(outcome, OfferOutcome::Enqueued { seq: 3, .. }),
            "{name}: {outcome:?}"
        );

        // The status, the release floor, and the updater's ledger and trial.
        assert_eq!(
            AgentStatus::load(&state).expect("status.json reads"),
            status()
        );
        assert_eq!(
            VersionFloor::in_state_dir(&state)
                .load()
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            Some(Version::new(1, 3, 0))
        );
        let clock = AgentClock::open(Some(&state), &state.join("no-sync-marker"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let floor = unix(clock.floor());
        assert!(
            (TIME_FLOOR_UNIX..TIME_FLOOR_UNIX + 60).contains(&floor),
            "{name}: the persisted time floor, not {floor}"
        );
        let root = InstallRoot::at(&work.path().join("install"), ON_TRIAL);
        assert_eq!(Ledger::load(&root.ledger_path()), ledger(), "{name}");
        assert_eq!(
            trial::load(&root),
            Some(Trial {
                release: "1.4.2-aarch64-unknown-linux-gnu".into(),
                version: ON_TRIAL.into(),
                from: RUNNING.into(),
                seconds: 300,
                max_starts: 3,
                starts: 0,
            }),
            "{name}"
        );
    }
}
