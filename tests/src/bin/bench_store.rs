//! `skolebro-bench-store`: how fast central applies a 100,000-student snapshot, on SQLite and
//! on PostgreSQL, and, as the floor for PostgreSQL, a `COPY` of the same rows into a table of
//! the same shape in the same run; then what one page of the consumer API's `users` costs
//! the store once the county's students are in it (`limit=100` at offset 50,000 in
//! `sourcedId` order, read as the consumer API's paged path reads it), beside what the
//! in-memory path read for every page before (every current student, enrollment and school
//! of the site), one page of `enrollments` at the same offset (the page and its count), and,
//! after a nightly delta (300 pupils renamed, 200 gone with their enrollments), the first
//! page of a change feed of `users` from before it (what changed, and what was deleted).
//! The roster comes from the synthetic generator through the agent's own
//! reader, so the records are what an agent would send. Each is measured twice: records in
//! clear, then sealed at rest (national ids, names and e-mail; `central::seal`).

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use futures_util::SinkExt;
use skolebro_central::seal::{Kek, SealScope};
use skolebro_central::store::{
    consumer_id, sealing, AnyRecord, Compare, ConsumerPage, IncomingBatch, PostgresStore,
    SqliteStore, Store, Timestamp,
};
use skolebro_protocol::envelope::{ChainHead, DeviceId, DeviceSigningKey, Payload, Seq, SiteId};
use skolebro_protocol::Entity;
use skolebro_protocol::{Delta, Digest, Record, Roster, SiteSecret};
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
    /// Timed reads of each consumer page measurement; the first is reported apart (a cold
    /// cache), the median and slowest of the rest after it.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Keeps the SQLite databases and the PostgreSQL schemas (their names are printed), so
    /// the consumer page's plans can be read afterwards (`EXPLAIN`).
    #[arg(long)]
    keep: bool,
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

    let mut applies = Vec::new();
    for sealed in [false, true] {
        // Sealing at rest on: national ids, names and e-mail sealed under a fresh key.
        let label = if sealed { "sealed" } else { "clear" };
        let kek = if sealed { Some(Kek::generate()?) } else { None };
        let db = dir.path().join(format!("central-{label}.db"));
        let sqlite = SqliteStore::open(&db).await?;
        unlock(&sqlite, kek.as_ref()).await?;
        let took = apply(&sqlite, &roster).await?;
        report(&format!("SQLite store apply, {label}"), records, took);
        pages(&sqlite, &format!("SQLite {label}"), args.runs).await?;
        feed(&sqlite, &roster, &format!("SQLite {label}"), args.runs).await?;
        applies.push(("SQLite", sealed, took));

        let schema = format!("skolebro_bench_{}", hex::encode(random::<4>()?));
        let postgres = PostgresStore::connect(&args.postgres, &schema, 4, 0)
            .await
            .context("PostgreSQL (is it running on 127.0.0.1:5432?)")?;
        let result = async {
            unlock(&postgres, kek.as_ref()).await?;
            let took = apply(&postgres, &roster).await?;
            report(&format!("PostgreSQL store apply, {label}"), records, took);
            // What autovacuum does within minutes of a large insert: the new rows marked
            // visible to all, so the page's count and offset run on the index alone.
            vacuum(&args.postgres, &schema).await?;
            pages(&postgres, &format!("PostgreSQL {label}"), args.runs).await?;
            feed(
                &postgres,
                &roster,
                &format!("PostgreSQL {label}"),
                args.runs,
            )
            .await?;
            applies.push(("PostgreSQL", sealed, took));
            if !sealed {
                let copy = copy(&args.postgres, &schema, &roster).await?;
                report("PostgreSQL COPY of the rows", records, copy);
                println!(
                    "PostgreSQL apply / COPY: {:.2}x",
                    took.as_secs_f64() / copy.as_secs_f64()
                );
            }
            anyhow::Ok(())
        }
        .await;
        if args.keep {
            println!("kept: PostgreSQL schema {schema}");
        } else {
            drop_postgres_schema(&args.postgres, &schema).await?;
        }
        result?;
    }
    for store in ["SQLite", "PostgreSQL"] {
        let time = |sealed| {
            applies
                .iter()
                .find(|(name, on, _)| *name == store && *on == sealed)
                .map(|(_, _, took)| took.as_secs_f64())
        };
        if let (Some(clear), Some(sealed)) = (time(false), time(true)) {
            println!("{store} apply sealed / clear: {:.2}x", sealed / clear);
        }
    }
    if args.keep {
        // Left in place for reading; removing it is the reader's to do.
        println!("kept: SQLite databases in {}", dir.keep().display());
    }
    Ok(())
}

/// Puts sealing at rest in force on `store` when a key is given (the names too, the
/// costlier setting); leaves it clear otherwise.
async fn unlock(store: &dyn Store, kek: Option<&Kek>) -> anyhow::Result<()> {
    if let Some(kek) = kek {
        sealing::unlock(store, kek, SealScope::IdsAndNames, Timestamp::now()).await?;
    }
    Ok(())
}

/// Times one page of `users` (`limit=100`, offset 50,000, by `sourcedId`) as the consumer
/// API's paged path reads it: the scope's schools, the page with its count, and for the
/// page's site its secret, renamed records, schools and the page's enrollments. Then, for
/// contrast, the reads the whole-roster path made for every page.
async fn pages(store: &dyn Store, name: &str, runs: usize) -> anyhow::Result<()> {
    let paged = || async {
        let start = Instant::now();
        let query = ConsumerPage {
            offset: 50_000,
            ..county_page(store, Entity::Student).await?
        };
        let page = store.consumer_page(&query).await?;
        let Some((site, _)) = page.records.first() else {
            anyhow::bail!("the page at offset 50,000 is empty");
        };
        store.site_secret(site).await?;
        store.renamed_identities(site).await?;
        store.current_records(site, Entity::School).await?;
        let keys: Vec<_> = page
            .records
            .iter()
            .filter_map(|(_, current)| match &current.record {
                AnyRecord::Student(student) => Some(student.source_key.clone()),
                _ => None,
            })
            .collect();
        let enrollments = store.enrollments_of(site, &keys).await?;
        anyhow::ensure!(
            page.records.len() == 100 && enrollments.len() >= 100,
            "a full page with its enrollments"
        );
        Ok::<_, anyhow::Error>((start.elapsed(), page.total))
    };
    let whole = || async {
        let start = Instant::now();
        let site = SiteId::new("46500")?;
        for entity in [Entity::School, Entity::Enrollment, Entity::Student] {
            store.current_records(&site, entity).await?;
        }
        Ok::<_, anyhow::Error>(start.elapsed())
    };
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..runs.max(2) {
        let (took, count) = paged().await?;
        times.push(took);
        total = count;
    }
    timings(&format!("{name} users page, store-paged"), &times, total);
    let mut times = Vec::new();
    for _ in 0..runs.max(2) {
        times.push(whole().await?);
    }
    timings(
        &format!("{name} users page, whole-roster reads"),
        &times,
        total,
    );
    let county = county_page(store, Entity::Enrollment).await?;
    let enrollments = || async {
        let start = Instant::now();
        let query = ConsumerPage {
            offset: 50_000,
            ..county.clone()
        };
        let page = store.consumer_page(&query).await?;
        anyhow::ensure!(page.records.len() == 100, "a full page of enrollments");
        Ok::<_, anyhow::Error>((start.elapsed(), page.total))
    };
    let mut times = Vec::new();
    for _ in 0..runs.max(2) {
        let (took, count) = enrollments().await?;
        times.push(took);
        total = count;
    }
    timings(
        &format!("{name} enrollments page, store-paged"),
        &times,
        total,
    );
    Ok(())
}

/// Applies a nightly delta to the county's site (300 pupils renamed, the next 200 gone with
/// their enrollments), then times the first page (`limit=100`) of a change feed of `users`
/// from before it, read as the consumer API's store-paged feed reads the store
/// (`central::oneroster::feed`): the records closed since, the pupils they name as they
/// stand, which of those ids are still listed, every id changed since (to merge the
/// deletions into), the page's records by id, and their enrollments.
async fn feed(store: &dyn Store, roster: &Roster, name: &str, runs: usize) -> anyhow::Result<()> {
    let site = SiteId::new("46500")?;
    let device = DeviceId::new("bench-pi")?;
    let since = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let secret = secret();
    let mut delta = Delta::default();
    for student in &roster.students[..300] {
        let mut renamed = student.clone();
        renamed.family_name = "Omdøpt".into();
        delta
            .students
            .upserts
            .push((secret.handle(Entity::Student, &renamed.source_key), renamed));
    }
    let gone: Vec<_> = roster.students[300..500]
        .iter()
        .map(|student| student.source_key.clone())
        .collect();
    delta.students.deletes = gone
        .iter()
        .map(|key| secret.handle(Entity::Student, key))
        .collect();
    delta.enrollments.deletes = roster
        .enrollments
        .iter()
        .filter(|enrollment| gone.contains(&enrollment.student))
        .map(|enrollment| secret.handle(Entity::Enrollment, &enrollment.source_key))
        .collect();
    delta.students.sort();
    delta.enrollments.sort();
    let head = store.chain_head(&device).await?;
    store
        .apply(IncomingBatch {
            device,
            site: site.clone(),
            seq: head.next_seq,
            prev: head.prev,
            next_head: ChainHead::after(head.next_seq, [2; 32]),
            payload: Payload::Delta(delta),
            at: Timestamp::now(),
            bytes: 0,
        })
        .await?;
    let county = county_page(store, Entity::Student).await?;
    let page = || async {
        let start = Instant::now();
        let query = ConsumerPage {
            modified: vec![(Compare::GreaterOrEqual, since)],
            ..county.clone()
        };
        let closed = store.roster_closed_since(&site, since).await?;
        let moved: Vec<_> = closed
            .students
            .iter()
            .map(|student| student.source_key.clone())
            .chain(closed.enrollments.iter().map(|e| e.student.clone()))
            .collect();
        let standing = store.students_of(&site, &moved).await?;
        store.enrollments_of(&site, &moved).await?;
        let candidates: Vec<[u8; 16]> = closed
            .students
            .iter()
            .map(|student| consumer_id(&secret.handle(Entity::Student, &student.source_key)))
            .collect();
        let listed = store
            .consumer_ids(&ConsumerPage {
                modified: Vec::new(),
                within: Some(candidates.clone()),
                ..query.clone()
            })
            .await?;
        let changed = store.consumer_ids(&query).await?;
        let mut merged: Vec<[u8; 16]> = changed.clone();
        merged.extend(candidates.iter().filter(|id| !listed.contains(id)));
        merged.sort();
        let first: Vec<[u8; 16]> = merged
            .iter()
            .take(100)
            .filter(|id| changed.contains(id))
            .copied()
            .collect();
        let within = first.len() as u64;
        let records = store
            .consumer_page(&ConsumerPage {
                within: Some(first),
                limit: within,
                ..query.clone()
            })
            .await?
            .records;
        let keys: Vec<_> = records
            .iter()
            .filter_map(|(_, current)| match &current.record {
                AnyRecord::Student(student) => Some(student.source_key.clone()),
                _ => None,
            })
            .collect();
        store.enrollments_of(&site, &keys).await?;
        anyhow::ensure!(
            (closed.students.len(), standing.len(), changed.len(), listed.len()) == (500, 300, 300, 300),
            "the delta's 500 closed versions and 300 renamed pupils standing and listed, not {} {} {} {}",
            closed.students.len(),
            standing.len(),
            changed.len(),
            listed.len()
        );
        Ok::<_, anyhow::Error>((start.elapsed(), merged.len() as u64))
    };
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..runs.max(2) {
        let (took, count) = page().await?;
        times.push(took);
        total = count;
    }
    timings(
        &format!("{name} users feed page, store-paged"),
        &times,
        total,
    );
    Ok(())
}

/// The first page (`limit=100`) of `entity` for a county-46 client: the county's schools by
/// site, as the consumer API gives that client's scope.
async fn county_page(store: &dyn Store, entity: Entity) -> anyhow::Result<ConsumerPage> {
    let schools = store
        .current_schools()
        .await?
        .into_iter()
        .filter(|(_, school)| school.fylkesnummer.as_deref() == Some("46"))
        .map(|(site, school)| (site, school.skolenummer))
        .collect();
    Ok(ConsumerPage {
        entity,
        schools,
        modified: Vec::new(),
        ids: Vec::new(),
        within: None,
        descending: false,
        offset: 0,
        limit: 100,
    })
}

/// Prints the first (cold) time, then the median and slowest of the others.
fn timings(what: &str, times: &[Duration], total: u64) {
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let mut warm: Vec<Duration> = times[1..].to_vec();
    warm.sort();
    println!(
        "{what:<45} first {:>8.1} ms   median {:>8.1} ms   slowest {:>8.1} ms   ({total} in the list)",
        ms(&times[0]),
        ms(&warm[warm.len() / 2]),
        ms(&warm[warm.len() - 1]),
    );
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
/// Vacuums and analyses the bench schema's `records` on a connection of its own.
async fn vacuum(config: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("VACUUM (ANALYZE) {schema}.records"))
        .await?;
    Ok(())
}

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
