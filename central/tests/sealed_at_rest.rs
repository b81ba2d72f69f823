//! Sealing at rest, seen from outside the store: a real sample export (tests/data/clean,
//! 60 pupils) is applied through the store's API with sealing on, then the SQLite files are
//! copied and the PostgreSQL schema is dumped with `pg_dump`, and none of the export's
//! national ids, names, usernames or e-mail addresses may be found in them, in clear or in
//! hex, base64 or UTF-16. The same run without a key finds them, so the search is shown to
//! work. Readers still get every record back in clear through the store, and the kept
//! schema-11 database opens and is sealed in place.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use skolebro_central::seal::{Kek, SealScope};
use skolebro_central::store::prelude::*;
use skolebro_central::store::{sealing, IncomingBatch, PostgresStore, SqliteStore, Timestamp};
use skolebro_protocol::{
    ChainHead, DeviceId, DeviceSigningKey, Payload, Record as _, Roster, Seq, SiteId, SiteSecret,
};
use skolebro_roster::reader::{read_export, Format, ReaderOptions};

const POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

fn sample() -> Roster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/clean/elevliste.csv");
    let (_, validated) = read_export(&path, Some(Format::Elevliste), &ReaderOptions::default())
        .expect("the sample export reads");
    // In key order, as the store reads a roster back.
    let mut roster = validated.roster;
    roster.schools.sort_by(|a, b| a.key().cmp(b.key()));
    roster.students.sort_by(|a, b| a.key().cmp(b.key()));
    roster.groups.sort_by(|a, b| a.key().cmp(b.key()));
    roster.enrollments.sort_by(|a, b| a.key().cmp(b.key()));
    roster
}

/// The personal values of the export, each as the bytes to look for. A name shorter than
/// six letters is looked for with its JSON quotes: bare, it could turn up by chance inside
/// random base64 of sealed values.
fn needles(roster: &Roster) -> Vec<String> {
    let mut values = Vec::new();
    for student in &roster.students {
        values.push(student.source_key.to_string());
        if let Some(id) = &student.national_id {
            values.push(id.as_str().to_owned());
        }
        let names = [
            Some(&student.given_name),
            student.middle_name.as_ref(),
            Some(&student.family_name),
            student.username.as_ref(),
        ];
        for name in names.into_iter().flatten() {
            if name.chars().count() >= 6 {
                values.push(name.to_string());
            } else if !name.is_empty() {
                values.push(format!("\"{name}\""));
            }
        }
        if let Some(email) = &student.email {
            values.push(email.to_string());
        }
    }
    values.sort();
    values.dedup();
    assert!(values.len() > 150, "the sample has ids, names and e-mails");
    values
}

/// `value` in the encodings a careless store might use: clear, hex (both cases), base64
/// (standard and URL-safe, at each of the three alignments inside a longer encoded text)
/// and UTF-16 (both byte orders).
fn encodings(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = vec![
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        hex::encode_upper(bytes).into_bytes(),
        bytes.iter().flat_map(|&b| [b, 0]).collect::<Vec<u8>>(),
        bytes.iter().flat_map(|&b| [0, b]).collect::<Vec<u8>>(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3usize {
            // With `shift` bytes before it, the value's own characters start after
            // `ceil(shift * 4 / 3)` characters and are whole up to the last full group.
            let mut padded = vec![0u8; shift];
            padded.extend(bytes);
            let text = engine.encode(&padded);
            let start = (shift * 4).div_ceil(3);
            let end = (padded.len() / 3) * 4;
            if end > start + 4 {
                out.push(text.as_bytes()[start..end].to_vec());
            }
        }
    }
    out
}

/// The values of `needles` found in `haystack`, in any encoding.
fn found(haystack: &[u8], needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|value| {
            encodings(value)
                .iter()
                .any(|encoded| memchr::memmem::find(haystack, encoded).is_some())
        })
        .cloned()
        .collect()
}

fn site() -> SiteId {
    SiteId::new("4601-46505").expect("a site id")
}

/// Registers a device and applies the sample as its first snapshot.
async fn apply_sample(store: &dyn Store, roster: &Roster) {
    let device = DeviceId::new("pi-46505").expect("a device id");
    store
        .set_site_secret(&site(), &SiteSecret::from_bytes([0x5e; 32]))
        .await
        .expect("the secret is set");
    store
        .register_device(
            &device,
            &site(),
            &DeviceSigningKey::from_bytes([7; 32]).verifying_key(),
        )
        .await
        .expect("the device registers");
    let head = ChainHead::genesis();
    store
        .apply(IncomingBatch {
            device,
            site: site(),
            seq: head.next_seq,
            prev: head.prev,
            next_head: ChainHead::after(Seq(1), [0xd1; 32]),
            payload: Payload::Snapshot(roster.clone()),
            at: Timestamp(1_000),
            bytes: 1_000,
        })
        .await
        .expect("the sample applies");
    // Compared without printing: a failure must not put the export in the test log.
    assert!(
        store.current_roster(&site()).await.expect("reads") == *roster,
        "readers get every record back in clear"
    );
}

/// Every file of the SQLite database (main file, WAL), concatenated, as a copy would take them.
fn sqlite_files(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the folder reads") {
        let path: PathBuf = entry.expect("an entry").path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).expect("the copy reads"));
        }
    }
    bytes
}

async fn sqlite_after_sample(kek: Option<&Kek>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let roster = sample();
    {
        let store = SqliteStore::open(dir.path().join("central.db"))
            .await
            .expect("opens");
        if let Some(kek) = kek {
            sealing::unlock(&store, kek, SealScope::IdsAndNames, Timestamp(1))
                .await
                .expect("unlocks");
        }
        apply_sample(&store, &roster).await;
    }
    let copy = tempfile::tempdir().expect("a temp dir");
    for entry in std::fs::read_dir(dir.path()).expect("reads") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().expect("a name").to_owned();
        std::fs::copy(&path, copy.path().join(name)).expect("copies");
    }
    sqlite_files(copy.path())
}

async fn postgres_dump_after_sample(kek: Option<&Kek>) -> Vec<u8> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("randomness");
    let schema = format!("skolebro_test_{}", hex::encode(random));
    let roster = sample();
    let store = PostgresStore::connect(POSTGRES, &schema, 2, 0)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 is needed for this test");
    if let Some(kek) = kek {
        sealing::unlock(&store, kek, SealScope::IdsAndNames, Timestamp(1))
            .await
            .expect("unlocks");
    }
    apply_sample(&store, &roster).await;
    let dump = Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-n",
            &schema,
        ])
        .output()
        .expect("pg_dump runs");
    let drop = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
        .arg(format!("DROP SCHEMA {schema} CASCADE"))
        .output();
    assert!(dump.status.success(), "pg_dump: {:?}", dump);
    assert!(
        drop.is_ok_and(|out| out.status.success()),
        "the schema drops"
    );
    dump.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_sqlite_file_holds_no_national_id_name_or_email_of_the_export() {
    let roster = sample();
    let needles = needles(&roster);
    let clear = sqlite_after_sample(None).await;
    assert!(
        found(&clear, &needles).len() > needles.len() / 2,
        "without a key the values are there to find"
    );
    let kek = Kek::generate().expect("a key");
    let sealed = sqlite_after_sample(Some(&kek)).await;
    assert_eq!(found(&sealed, &needles), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_holds_no_national_id_name_or_email_of_the_export() {
    let roster = sample();
    let needles = needles(&roster);
    let clear = postgres_dump_after_sample(None).await;
    assert!(
        found(&clear, &needles).len() > needles.len() / 2,
        "without a key the values are there to find"
    );
    let kek = Kek::generate().expect("a key");
    let sealed = postgres_dump_after_sample(Some(&kek)).await;
    assert_eq!(found(&sealed, &needles), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_schema_11_database_opens_reads_and_is_sealed_in_place() {
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/schema-11/central.db");
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("central.db");
    std::fs::copy(&kept, &path).expect("the kept database copies");
    let store = SqliteStore::open(&path).await.expect("opens");
    let site = SiteId::new("4601-46500").expect("a site id");
    let before = store.current_roster(&site).await.expect("reads");
    assert!(!before.students.is_empty());
    assert!(store.has_clear_records().await.expect("answers"));
    let kek = Kek::generate().expect("a key");
    sealing::unlock(&store, &kek, SealScope::IdsAndNames, Timestamp(1))
        .await
        .expect("unlocks");
    assert_eq!(
        store.current_roster(&site).await.expect("reads"),
        before,
        "clear rows read before the reseal"
    );
    assert_eq!(sealing::reseal(&store, 3, None).await.expect("reseals"), 0);
    assert!(!store.has_clear_records().await.expect("answers"));
    assert_eq!(store.current_roster(&site).await.expect("reads"), before);
    drop(store);
    let bytes = sqlite_files(dir.path());
    for student in &before.students {
        if let Some(id) = &student.national_id {
            assert!(found(&bytes, &[id.as_str().to_owned()]).is_empty());
        }
    }
}
