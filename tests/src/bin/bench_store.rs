//! `skolebro-bench-store`: how fast central applies a 100,000-student snapshot, on SQLite and
//! on PostgreSQL, and, as the floor for PostgreSQL, a `COPY` of the same rows into a table of
//! the same shape in the same run. The roster comes from the synthetic generator through the
//! agent's own reader, so the records are what an agent would send.

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use futures_util::SinkExt;
use skolebro_central::store::{IncomingBatch, PostgresStore, SqliteStore, Store, Timestamp};
use skolebro_protocol::envelope::{ChainHead, DeviceId, DeviceSigningKey, Payload, Seq, SiteId};
use skolebro_protocol::{Digest, Record, Roster, SiteSecret};
use skolebro_roster::reader::{read_export, Format, ReaderOptions};
use skolebro_tests::harness::drop_postgres_schema;
use skolebro_tests::rostergen::Generated;

#[derive(Parser)]
#[command(about = "Benchmarks central applying a snapshot")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    students: usize,
    /// libpq-style connection string of the PostgreSQL to measure.
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )]
    postgres: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let roster = roster(args.students, &dir.path().join("export.csv"))?;
    let records = roster.schools.len()
        + roster.students.len()
        + roster.groups.len()
        + roster.enrollments.len();
    println!(
        "snapshot: {} students, {records} records",
        roster.students.len()
    );

    let sqlite = SqliteStore::open(dir.path().join("central.db")).await?;
    let took = apply(&sqlite, &roster).await?;
    report("SQLite store apply", records, took);

    let schema = format!("skolebro_bench_{}", hex::encode(random::<4>()?));
    let postgres = PostgresStore::connect(&args.postgres, &schema, 4)
        .await
        .context("PostgreSQL (is it running on 127.0.0.1:5432?)")?;
    let result = async {
        let took = apply(&postgres, &roster).await?;
        report("PostgreSQL store apply", records, took);
        let copy = copy(&args.postgres, &schema, &roster).await?;
        report("PostgreSQL COPY of the rows", records, copy);
        println!(
            "PostgreSQL apply / COPY: {:.2}x",
            took.as_secs_f64() / copy.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    drop_postgres_schema(&args.postgres, &schema).await?;
    result
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    Ok(bytes)
}

fn roster(students: usize, path: &Path) -> anyhow::Result<Roster> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    Generated::new(students, 1).write_elevliste(&mut out, false)?;
    drop(out);
    let (_, validated) = read_export(path, Some(Format::Elevliste), &ReaderOptions::default())?;
    Ok(validated.roster)
}

fn secret() -> SiteSecret {
    SiteSecret::from_bytes([5; 32])
}

/// Registers a device and applies the roster as its first batch, a snapshot; only the apply
/// is timed.
async fn apply(store: &dyn Store, roster: &Roster) -> anyhow::Result<Duration> {
    let device = DeviceId::new("bench-pi")?;
    let site = SiteId::new("46500")?;
    let key = DeviceSigningKey::from_bytes([6; 32]).verifying_key();
    store.register_device(&device, &site, &key).await?;
    store.set_site_secret(&site, &secret()).await?;
    let batch = IncomingBatch {
        device,
        site,
        seq: Seq::FIRST,
        prev: [0; 32],
        next_head: ChainHead::after(Seq::FIRST, [1; 32]),
        payload: Payload::Snapshot(roster.clone()),
        at: Timestamp::now(),
        bytes: 0,
    };
    let start = Instant::now();
    store.apply(batch).await?;
    Ok(start.elapsed())
}

/// `COPY`s the rows the store would write (handle, digest, JSON record, validity) into a
/// table of the same shape: what PostgreSQL itself needs to take the data in.
async fn copy(config: &str, schema: &str, roster: &Roster) -> anyhow::Result<Duration> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // `record` has the type of the store's column (`json`), so the floor parses the JSON
    // exactly as the store's insert must.
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.copy_floor (
                site text NOT NULL, entity text NOT NULL, handle bytea NOT NULL,
                digest bytea NOT NULL, record json NOT NULL, valid_from bigint NOT NULL,
                valid_to bigint, is_current boolean NOT NULL, transaction_time bigint NOT NULL)"
        ))
        .await?;
    let mut rows = String::new();
    let now = Timestamp::now().unix_millis();
    let mut row = |entity: &str, key: &str, digest: Digest, json: String| {
        let handle = secret().handle(entity_of(entity), key);
        let json = json.replace('\\', "\\\\");
        rows.push_str(&format!(
            "46500\t{entity}\t\\\\x{}\t\\\\x{}\t{json}\t{now}\t\\N\tt\t{now}\n",
            hex::encode(handle.as_bytes()),
            hex::encode(digest.as_bytes()),
        ));
    };
    for r in &roster.schools {
        row("schools", r.key(), Digest::of(r), serde_json::to_string(r)?);
    }
    for r in &roster.students {
        row(
            "students",
            r.key(),
            Digest::of(r),
            serde_json::to_string(r)?,
        );
    }
    for r in &roster.groups {
        row("groups", r.key(), Digest::of(r), serde_json::to_string(r)?);
    }
    for r in &roster.enrollments {
        row(
            "enrollments",
            r.key(),
            Digest::of(r),
            serde_json::to_string(r)?,
        );
    }
    let start = Instant::now();
    let sink = client
        .copy_in(&format!("COPY {schema}.copy_floor FROM STDIN"))
        .await?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(rows)).await?;
    sink.finish().await?;
    Ok(start.elapsed())
}

fn entity_of(name: &str) -> skolebro_protocol::Entity {
    use skolebro_protocol::Entity;
    match name {
        "schools" => Entity::School,
        "students" => Entity::Student,
        "groups" => Entity::Group,
        _ => Entity::Enrollment,
    }
}

fn report(what: &str, records: usize, took: Duration) {
    println!(
        "{what:<30} {:>8.3} s   {:>9.0} records/s",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );
}
