//! Known-answer files for central's store: a database as a build at a given schema left it,
//! kept under `tests/vectors/schema-<N>/` (see its README) as a SQLite file and as a
//! PostgreSQL dump. Central opens an older database in place and migrates it, so every
//! database an earlier release wrote must still open with today's code and read back what
//! that release stored: each is opened here with today's store and checked field by field,
//! area by area, and then takes the device's next batch.
//!
//! The kept databases were written once, by this test with `SKOLEBRO_WRITE_VECTORS=1`,
//! through the store's own API (not by hand-written SQL), from the fixed inputs below. Their
//! bytes depend on the database's version, so they are compared by what they hold, not byte
//! for byte.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use skolebro_central::store::prelude::*;
use skolebro_central::store::{
    enrolled_device_id, AnyRecord, AuditEntry, Changes, ConsumerClient, ConsumerScope,
    EnrollRequest, Fylke, IncomingBatch, NewRelease, NewToken, NewWindow, PostgresStore, Read,
    ReadFilter, Role, RolloutChange, SqliteStore, Timestamp, UiUser, UpdateEvent, UpdateState,
};
use skolebro_protocol::api::{AgentState, Command, DeviationCounts, Heartbeat};
use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, DeviceVerifyingKey, Enrollment, Entity,
    EntityDelta, Gender, Group, NationalId, Payload, Record, ReleaseManifest, ReleaseSigningKey,
    Roster, School, Seq, SiteId, SiteSchool, SiteSecret, Student, Version,
};

/// Set to write the kept database afresh (see `tests/vectors/README.md`).
const WRITE: &str = "SKOLEBRO_WRITE_VECTORS";

/// The newest schema a kept database was written at; the generator writes only this one.
const NEWEST_KEPT_SCHEMA: i64 = 11;

/// The fixed "now" of the kept database: every timestamp is an offset from it.
const T0: i64 = 1_780_000_000_000;

fn kept_database(schema: i64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("schema-{schema}"))
        .join("central.db")
}

fn site() -> SiteId {
    SiteId::new("4601-46500").expect("a site id")
}

fn secret() -> SiteSecret {
    SiteSecret::from_bytes([0x5e; 32])
}

fn device_key() -> DeviceVerifyingKey {
    DeviceSigningKey::from_bytes([0x0d; 32]).verifying_key()
}

fn device() -> DeviceId {
    enrolled_device_id(&site(), &device_key()).expect("a device id")
}

fn token_sha256() -> [u8; 32] {
    [0x70; 32]
}

fn school() -> School {
    School {
        skolenummer: "46500".into(),
        organisasjonsnummer: Some("974600951".into()),
        kommunenummer: Some("4601".into()),
        fylkesnummer: Some("46".into()),
        name: "Fana skule".into(),
    }
}

fn site_school() -> SiteSchool {
    SiteSchool::new("4601", Some("46500"), Some("974600951"), "Fana skule").expect("a school")
}

/// A pupil with a synthetic national id (birth month + 80).
fn student(key: &str, national_id: &str, given_name: &str) -> Student {
    Student {
        source_key: key.into(),
        national_id: Some(NationalId::parse(national_id).expect("a synthetic id")),
        username: Some(format!("{key}@skule.example.no").into()),
        given_name: given_name.into(),
        middle_name: None,
        family_name: "Sæther".into(),
        birth_date: CivilDate::parse_iso("2016-07-02"),
        gender: Gender::Female,
        email: None,
    }
}

fn group() -> Group {
    Group {
        source_key: "46500-4B".into(),
        name: "4B".into(),
        grade: Some("4".into()),
        school: "46500".into(),
        school_year: Some("2025/2026".into()),
    }
}

fn enrollment(student: &str) -> Enrollment {
    Enrollment {
        source_key: format!("{student}@46500").into(),
        student: student.into(),
        school: "46500".into(),
        group: Some("46500-4B".into()),
    }
}

/// The first batch: the whole roster, Åse and Ola in 4B.
fn first_roster() -> Roster {
    Roster {
        schools: vec![school()],
        students: vec![
            student("elev-1", "02871662943", "Åse"),
            student("elev-2", "02871662943", "Ola"),
        ],
        groups: vec![group()],
        enrollments: vec![enrollment("elev-1"), enrollment("elev-2")],
    }
}

/// The roster after the second batch: Ola's key changed to `elev-2b` (a rename).
fn current_roster() -> Roster {
    Roster {
        schools: vec![school()],
        students: vec![
            student("elev-1", "02871662943", "Åse"),
            student("elev-2b", "02871662943", "Ola"),
        ],
        groups: vec![group()],
        enrollments: vec![enrollment("elev-1"), enrollment("elev-2b")],
    }
}

/// The rename of `elev-2` to `elev-2b`, with its enrollment, as the agent's differ sends it.
fn rename_delta() -> Payload {
    let secret = secret();
    let renamed = student("elev-2b", "02871662943", "Ola");
    let renamed_enrollment = enrollment("elev-2b");
    let (old_student, new_student) = (
        secret.handle(Entity::Student, "elev-2"),
        secret.handle(Entity::Student, renamed.key()),
    );
    let (old_enrollment, new_enrollment) = (
        secret.handle(Entity::Enrollment, "elev-2@46500"),
        secret.handle(Entity::Enrollment, renamed_enrollment.key()),
    );
    Payload::Delta(Delta {
        students: EntityDelta {
            upserts: vec![(new_student, renamed)],
            deletes: vec![old_student],
            renames: vec![(old_student, new_student)],
        },
        enrollments: EntityDelta {
            upserts: vec![(new_enrollment, renamed_enrollment)],
            deletes: vec![old_enrollment],
            renames: vec![(old_enrollment, new_enrollment)],
        },
        ..Delta::default()
    })
}

/// The digest of envelope `seq`: any fixed 32 bytes do for the store.
fn digest(seq: u64) -> [u8; 32] {
    let mut digest = [0xd1; 32];
    digest[..8].copy_from_slice(&seq.to_be_bytes());
    digest
}

fn batch(seq: u64, payload: Payload, at: i64) -> IncomingBatch {
    IncomingBatch {
        device: device(),
        site: site(),
        seq: Seq(seq),
        prev: if seq == 1 { [0; 32] } else { digest(seq - 1) },
        next_head: ChainHead::after(Seq(seq), digest(seq)),
        payload,
        at: Timestamp(at),
        bytes: 1000 + seq,
    }
}

fn consumer() -> ConsumerClient {
    ConsumerClient {
        id: "c-vector".into(),
        name: "Vitnemålsportalen".into(),
        scope: ConsumerScope::Kommune("4601".into()),
        secret_salt: [0x11; 16],
        secret_sha256: [0x22; 32],
        created: Timestamp(T0),
        revoked: false,
    }
}

fn operator() -> UiUser {
    UiUser {
        name: "drift".into(),
        role: Role::Operations,
        kommune: None,
        password_hash: "placeholder, not a password hash".into(),
        created: Timestamp(T0),
    }
}

fn audit() -> AuditEntry {
    AuditEntry {
        at: Timestamp(T0 + 6_000),
        actor: "drift".into(),
        action: "release.rollout".into(),
        target: release_id(),
        detail: "50 %".into(),
    }
}

fn release_id() -> String {
    "1.4.2-aarch64-unknown-linux-gnu".into()
}

fn release() -> NewRelease {
    let manifest = ReleaseManifest {
        version: Version::new(1, 4, 2),
        target: "aarch64-unknown-linux-gnu".into(),
        size: 7_340_032,
        sha256: [0xa5; 32],
        allow_downgrade: false,
        created_unix: 1_780_000_000,
        expires_unix: 1_780_000_000 + 30 * 86_400,
        replaces: None,
        floor: None,
    };
    NewRelease {
        id: release_id(),
        version: manifest.version,
        target: manifest.target.clone(),
        size: manifest.size,
        sha256: manifest.sha256,
        allow_downgrade: manifest.allow_downgrade,
        manifest: manifest.sign(&ReleaseSigningKey::from_bytes([0x4e; 32])),
        registered: Timestamp(T0 + 5_000),
    }
}

fn window() -> NewWindow {
    NewWindow {
        fylke: Fylke::parse("46").expect("a fylke"),
        name: "Skulestart 2026".into(),
        opens: Timestamp(T0 + 86_400_000),
        closes: Timestamp(T0 + 7 * 86_400_000),
        created: Timestamp(T0 + 7_000),
        created_by: "drift".into(),
    }
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        version: "1.4.2".into(),
        state: AgentState::Healthy,
        outbox_depth: 0,
        outbox_bytes: 0,
        oldest_unacked_age_s: None,
        last_export_unix_ms: Some(T0 + 2_000),
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

fn read() -> Read {
    Read {
        id: 0,
        at: Timestamp(T0 + 9_000),
        client: consumer().id,
        client_name: consumer().name,
        endpoint: "/ims/oneroster/v1p1/students".into(),
        filter: None,
        records: 2,
        sites: vec![site()],
    }
}

/// Stores the fixed inputs through the store's API, as central would have in use.
async fn write_store(store: &dyn Store) {
    store
        .create_token(&NewToken {
            token_sha256: token_sha256(),
            site: site(),
            site_name: "Fana skule".into(),
            created: Timestamp(T0),
            expires: Timestamp(T0 + 86_400_000),
        })
        .await
        .expect("a token");
    store
        .enroll(&EnrollRequest {
            token_sha256: token_sha256(),
            verifying_key: device_key(),
            new_site_secret: secret(),
            at: Timestamp(T0 + 1_000),
        })
        .await
        .expect("the device enrolls");
    store
        .register_schools(&site(), &[site_school()], Timestamp(T0 + 1_000))
        .await
        .expect("the site's school");
    store
        .apply(batch(1, Payload::Snapshot(first_roster()), T0 + 2_000))
        .await
        .expect("the snapshot applies");
    store
        .apply(batch(2, rename_delta(), T0 + 3_000))
        .await
        .expect("the rename applies");
    store
        .create_consumer_client(&consumer())
        .await
        .expect("a consumer");
    store
        .create_consumer_token(
            &[0x33; 32],
            &consumer().id,
            Timestamp(T0 + 3_600_000),
            Timestamp(T0),
        )
        .await
        .expect("a consumer token");
    store.create_user(&operator()).await.expect("an operator");
    store
        .create_session(
            &[0x44; 32],
            "drift",
            "csrf-vector",
            Timestamp(T0 + 3_600_000),
            Timestamp(T0),
        )
        .await
        .expect("a session");
    store.append_audit(&audit()).await.expect("an audit entry");
    store.create_release(&release()).await.expect("a release");
    store
        .set_artifact_stored(&release_id())
        .await
        .expect("its artifact");
    store
        .change_rollout(
            &release_id(),
            &RolloutChange {
                percent: Some(50),
                sites: Some(vec![site()]),
                paused: Some(false),
            },
        )
        .await
        .expect("its rollout");
    store
        .record_update(&UpdateEvent {
            release: release_id(),
            device: device(),
            state: UpdateState::Healthy,
            reason: None,
            at: Timestamp(T0 + 8_000),
        })
        .await
        .expect("an update report");
    store.create_window(&window()).await.expect("a window");
    store
        .queue_command(&device(), &Command::Resync, Timestamp(T0 + 4_000))
        .await
        .expect("a command");
    store
        .record_heartbeat(&device(), &heartbeat(), Timestamp(T0 + 5_000))
        .await
        .expect("a heartbeat");
    store.log_read(&read()).await.expect("a read");
}

/// Writes the kept SQLite database of [`NEWEST_KEPT_SCHEMA`] through today's store API.
async fn write_database(path: &Path) {
    {
        // Small pages keep the file small: it is mostly one page per table and index.
        let conn = Connection::open(path).expect("a database");
        conn.execute_batch("PRAGMA page_size = 512; VACUUM;")
            .expect("the page size is set");
    }
    let store = SqliteStore::open(path).await.expect("the store opens");
    write_store(&store).await;
    drop(store);
    // One self-contained file: the WAL folded in, then compacted.
    let conn = Connection::open(path).expect("the database");
    conn.execute_batch("PRAGMA journal_mode = DELETE; VACUUM;")
        .expect("the WAL is folded in");
}

/// The schema versions recorded in the database at `path`, read without migrating it.
fn recorded_schema(path: &Path) -> Vec<i64> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the kept database opens read-only");
    let mut statement = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .expect("a query");
    statement
        .query_map([], |row| row.get(0))
        .expect("versions")
        .collect::<Result<_, _>>()
        .expect("versions read")
}

#[tokio::test]
async fn a_database_written_at_schema_11_opens_with_todays_code_and_reads_back_what_it_holds() {
    let kept = kept_database(NEWEST_KEPT_SCHEMA);
    // A kept database stands for what is already deployed: it is written once, when missing,
    // and never over.
    if std::env::var_os(WRITE).is_some() && !kept.exists() {
        write_database(&kept).await;
        assert_eq!(
            recorded_schema(&kept).last(),
            Some(&NEWEST_KEPT_SCHEMA),
            "today's schema is newer: keep schema-{NEWEST_KEPT_SCHEMA} as it is and add a \
             folder and a test for the new schema"
        );
    }
    assert_eq!(
        recorded_schema(&kept),
        (1..=NEWEST_KEPT_SCHEMA).collect::<Vec<_>>(),
        "the kept database is at schema {NEWEST_KEPT_SCHEMA}"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("central.db");
    std::fs::copy(&kept, &path).expect("copied");
    let store = SqliteStore::open(&path)
        .await
        .expect("today's code opens the kept database");

    check_store(&store).await;
}

/// Reads back, area by area, what [`write_store`] stored, then applies the device's next
/// batch on top.
async fn check_store(store: &dyn Store) {
    // Enrollment: the token spent by the device, the device, the site's secret and school.
    let token = store
        .token(&token_sha256())
        .await
        .expect("reads")
        .expect("the token is there");
    assert_eq!(token.site, site());
    assert_eq!(token.site_name, "Fana skule");
    assert_eq!(
        (token.created, token.expires),
        (Timestamp(T0), Timestamp(T0 + 86_400_000))
    );
    assert_eq!(token.used_by, Some(device()));
    assert_eq!(token.used_at, Some(Timestamp(T0 + 1_000)));
    assert!(!token.revoked);
    let record = store
        .device(&device())
        .await
        .expect("reads")
        .expect("the device is there");
    assert_eq!(record.site, site());
    assert_eq!(record.verifying_key, device_key());
    assert!(!record.revoked);
    assert_eq!(
        store.site_secret(&site()).await.expect("reads"),
        Some(secret())
    );
    assert_eq!(
        store.site_schools(&site()).await.expect("reads"),
        vec![site_school()]
    );
    assert_eq!(
        store.chain_head(&device()).await.expect("reads"),
        ChainHead::after(Seq(2), digest(2))
    );

    // Records: the roster after the rename, Ola keeping her first identity, and the history.
    assert_eq!(
        store.current_roster(&site()).await.expect("reads"),
        current_roster()
    );
    let students = store
        .current_records(&site(), Entity::Student)
        .await
        .expect("reads");
    let renamed_handle = secret().handle(Entity::Student, "elev-2b");
    let ola = students
        .iter()
        .find(|record| record.handle == renamed_handle)
        .expect("Ola under her new key");
    assert_eq!(ola.identity, secret().handle(Entity::Student, "elev-2"));
    assert_eq!(ola.modified, Timestamp(T0 + 3_000));
    assert!(matches!(&ola.record, AnyRecord::Student(s) if s.given_name == "Ola"));
    assert_eq!(
        store
            .renamed_identities(&site())
            .await
            .expect("reads")
            .len(),
        2,
        "the student and the enrollment"
    );
    let history = store
        .history(
            &site(),
            Entity::Student,
            &secret().handle(Entity::Student, "elev-2"),
        )
        .await
        .expect("reads");
    assert_eq!(history.len(), 1, "the first key's one version, closed");
    assert_eq!(history[0].valid_from, Timestamp(T0 + 2_000));
    assert_eq!(history[0].valid_to, Some(Timestamp(T0 + 3_000)));
    let transfers = store.transfers(&site(), 10).await.expect("reads");
    let transfers: Vec<_> = transfers
        .iter()
        .map(|t| {
            (
                t.device.clone(),
                t.seq,
                t.at,
                t.snapshot,
                t.changes,
                t.bytes,
            )
        })
        .collect();
    assert_eq!(
        transfers,
        vec![
            (
                device(),
                Seq(2),
                Timestamp(T0 + 3_000),
                false,
                Changes {
                    renamed: 2,
                    ..Changes::default()
                },
                1002
            ),
            (
                device(),
                Seq(1),
                Timestamp(T0 + 2_000),
                true,
                Changes {
                    added: 6,
                    ..Changes::default()
                },
                1001
            ),
        ]
    );

    // Consumers, operators and their audit.
    assert_eq!(
        store.consumer_client("c-vector").await.expect("reads"),
        Some(consumer())
    );
    assert_eq!(
        store
            .consumer_token_client(&[0x33; 32], Timestamp(T0 + 1))
            .await
            .expect("reads"),
        Some(consumer())
    );
    assert_eq!(store.user("drift").await.expect("reads"), Some(operator()));
    let session = store
        .session(&[0x44; 32], Timestamp(T0 + 1))
        .await
        .expect("reads")
        .expect("the session is there");
    assert_eq!(session.user, operator());
    assert_eq!(session.csrf, "csrf-vector");
    assert_eq!(session.expires, Timestamp(T0 + 3_600_000));
    assert_eq!(store.audit_log(10).await.expect("reads"), vec![audit()]);

    // Releases, their rollout and the update reports.
    let stored = store
        .release(&release_id())
        .await
        .expect("reads")
        .expect("the release is there");
    assert_eq!(stored.release, release());
    assert!(stored.artifact_stored);
    assert_eq!(stored.percent, 50);
    assert_eq!(stored.sites, vec![site()]);
    assert!(!stored.paused);
    let report = store.release_report(&release_id()).await.expect("reads");
    assert_eq!(report.counts.healthy, 1);
    assert_eq!(report.counts.refused, 0);

    // Transfer windows, the fleet and the access log.
    let windows = store.windows(None).await.expect("reads");
    assert_eq!(windows.len(), 1);
    let kept_window = &windows[0];
    assert_eq!(
        (
            kept_window.fylke,
            kept_window.name.as_str(),
            kept_window.opens,
            kept_window.closes,
            kept_window.created,
            kept_window.created_by.as_str()
        ),
        (
            window().fylke,
            window().name.as_str(),
            window().opens,
            window().closes,
            window().created,
            window().created_by.as_str()
        )
    );
    let fleet = store.fleet_activity().await.expect("reads");
    let activity = fleet.get(&device()).expect("the device's activity");
    assert_eq!(activity.last_heartbeat, Some(heartbeat()));
    assert_eq!(activity.last_heartbeat_at, Some(Timestamp(T0 + 5_000)));
    assert_eq!(activity.last_batch_seq, Some(Seq(2)));
    assert_eq!(activity.commands.len(), 1);
    assert_eq!(activity.commands[0].command, Command::Resync);
    assert_eq!(activity.commands[0].queued_at, Timestamp(T0 + 4_000));
    assert_eq!(
        activity.commands[0].delivered_at,
        Some(Timestamp(T0 + 5_000))
    );
    let reads = store
        .reads(&ReadFilter::default(), None, 10)
        .await
        .expect("reads");
    assert_eq!(reads.len(), 1);
    assert_eq!(
        Read {
            id: 0,
            ..reads[0].clone()
        },
        read()
    );

    // And today's code carries on from it: the device's next batch applies.
    let next = Payload::Delta(Delta {
        students: EntityDelta {
            deletes: vec![secret().handle(Entity::Student, "elev-1")],
            ..EntityDelta::default()
        },
        ..Delta::default()
    });
    store
        .apply(batch(3, next, T0 + 10_000))
        .await
        .expect("the next batch applies");
    assert_eq!(store.counts(&site()).await.expect("counts").students, 1);
}

// The same database in PostgreSQL, central's production store: a plain `pg_dump` of the
// schema the build at schema 11 wrote, loaded under a fresh schema name and opened with
// today's `PostgresStore`.

/// The schema the kept dump was written in; the test loads it under a fresh name.
const DUMPED_SCHEMA: &str = "skolebro_vectors_schema_11";

/// The test database, as the store's own tests reach it; `SKOLEBRO_TEST_POSTGRES` overrides.
fn postgres_config() -> String {
    std::env::var("SKOLEBRO_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned())
}

fn kept_dump(schema: i64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("schema-{schema}"))
        .join("central-postgres.sql")
}

async fn postgres_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_config(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL at {:?} is needed for this test ({error})",
                postgres_config()
            )
        });
    tokio::spawn(connection);
    client
}

/// Writes the kept dump of [`NEWEST_KEPT_SCHEMA`]: the fixed inputs stored through today's
/// `PostgresStore` in [`DUMPED_SCHEMA`], dumped with `pg_dump --inserts` as plain SQL, the
/// schema dropped.
async fn write_dump(path: &Path) {
    let client = postgres_client().await;
    let drop_schema = format!("DROP SCHEMA IF EXISTS {DUMPED_SCHEMA} CASCADE");
    client.batch_execute(&drop_schema).await.expect("dropped");
    let store = PostgresStore::connect(&postgres_config(), DUMPED_SCHEMA, 2, 0)
        .await
        .expect("the store connects");
    write_store(&store).await;
    drop(store);
    let output = std::process::Command::new("pg_dump")
        .args([
            "--schema",
            DUMPED_SCHEMA,
            "--inserts",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--dbname",
        ])
        .arg(postgres_config())
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // pg_dump brackets its output in psql's `\restrict` meta-commands (with a random key),
    // which only psql understands; the dump is loaded as plain SQL, so they are left out.
    let dump = String::from_utf8(output.stdout).expect("the dump is UTF-8");
    let sql: String = dump
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .flat_map(|line| [line, "\n"])
        .collect();
    std::fs::write(path, sql).expect("the dump is written");
    client.batch_execute(&drop_schema).await.expect("dropped");
}

#[tokio::test]
async fn a_postgres_schema_dumped_at_schema_11_loads_and_reads_back_what_it_holds() {
    let kept = kept_dump(NEWEST_KEPT_SCHEMA);
    if std::env::var_os(WRITE).is_some() && !kept.exists() {
        write_dump(&kept).await;
    }
    let dump = std::fs::read_to_string(&kept).expect("the kept dump");
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("system randomness");
    let schema = format!("skolebro_test_{}", hex::encode(random));
    // On its own task, so the schema is dropped even when a check fails.
    let outcome = tokio::spawn(load_and_check(dump, schema.clone())).await;
    postgres_client()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("the test schema is dropped");
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the check did not finish: {error}"),
        }
    }
}

/// Loads `dump` under the name `schema`, checks it recorded schema 11, and opens it with
/// today's `PostgresStore` for [`check_store`].
async fn load_and_check(dump: String, schema: String) {
    let client = postgres_client().await;
    client
        .batch_execute(&dump.replace(DUMPED_SCHEMA, &schema))
        .await
        .expect("the kept dump loads");
    let versions: Vec<i64> = client
        .query(
            &format!("SELECT version FROM {schema}.schema_version ORDER BY version"),
            &[],
        )
        .await
        .expect("versions read")
        .iter()
        .map(|row| i64::from(row.get::<_, i32>(0)))
        .collect();
    assert_eq!(
        versions,
        (1..=NEWEST_KEPT_SCHEMA).collect::<Vec<_>>(),
        "the kept dump is at schema {NEWEST_KEPT_SCHEMA}"
    );
    let store = PostgresStore::connect(&postgres_config(), &schema, 2, 0)
        .await
        .expect("today's code opens the kept schema");
    check_store(&store).await;
}
