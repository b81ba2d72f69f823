//! The quickstart: central and an agent on loopback, end to end, in one process. It makes a
//! dev PKI and keys in a fresh folder ([`Setup`]), starts central on SQLite, starts the agent
//! daemon on a drop folder, registers each export's schools with the site (as making its
//! stick would) and drops the exports in one after the other (the sample exports shipped in
//! the repo unless others are given), and after each waits until central holds exactly what
//! the export holds. Everything crosses real mutual TLS and the real outbox;
//! nothing is mocked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use skolebro_agent::config::AgentConfig;
use skolebro_agent::daemon::{self, DaemonHandle};
use skolebro_central::store::{SqliteStore, Store, Timestamp};
use skolebro_central::{serve, ServerParts};
use skolebro_protocol::envelope::SealingPrivateKey;
use skolebro_protocol::{Entity, Roster, SiteId, SiteSchool, SiteSecret};
use skolebro_provisioning::pki::DevPki;
use skolebro_roster::diff::{diff, Fingerprints};
use skolebro_roster::state::State;
use skolebro_roster::validate::Validated;
use skolebro_tests::expected::{read_as_agent, same};

use crate::setup::{Setup, DEVICE, SITE};

/// The sample exports shipped in the repo, built into the binary so the demo works from any
/// folder.
const SAMPLES: [(&str, &str); 2] = [
    (
        "samples/elevliste.csv",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../samples/elevliste.csv"
        )),
    ),
    (
        "samples/elevliste.2.csv",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../samples/elevliste.2.csv"
        )),
    ),
];

/// How long one export may take to reach central before the demo gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs the demo. Progress goes to stdout as it happens; with `json` the last line is one
/// JSON document with central's current counts. True when central ends up holding exactly
/// the last export.
pub(crate) async fn run(exports: Vec<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("skolebro-demo-")
        .tempdir()?
        .keep();
    println!("skolebro demo in {}", dir.display());

    let exports: Vec<(String, Vec<u8>)> = if exports.is_empty() {
        SAMPLES
            .iter()
            .map(|(name, text)| (name.to_string(), text.as_bytes().to_vec()))
            .collect()
    } else {
        exports
            .iter()
            .map(|path| {
                std::fs::read(path)
                    .map(|bytes| (path.display().to_string(), bytes))
                    .with_context(|| format!("reading {}", path.display()))
            })
            .collect::<anyhow::Result<_>>()?
    };

    let setup = Setup::create(&dir)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("central.db")).await?);
    store
        .register_device(
            &setup.device,
            &setup.site,
            &setup.signing_key.verifying_key(),
        )
        .await?;
    store
        .set_site_secret(&setup.site, &setup.site_secret)
        .await?;
    let central = serve(ServerParts {
        store: Arc::clone(&store),
        tls: skolebro_central::device_tls_config(
            &read(&dir.join(DevPki::SERVER_CERT))?,
            &read(&dir.join(DevPki::SERVER_KEY))?,
            &read(&dir.join(DevPki::DEVICE_CA_CERT))?,
        )?,
        sealing_key: SealingPrivateKey::from_bytes(setup.sealing_key.to_bytes()),
        device_listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        consumer_listen: None,
        consumer_public_url: None,
        ui: None,
        http_limits: skolebro_central::HttpLimits::default(),
        max_batch_bytes: 16 << 20,
        // The demo registers its device itself (above) rather than enrolling it.
        enroll: skolebro_central::EnrollSettings::default(),
        // Nor does it update its agent.
        releases: skolebro_central::ReleaseSettings {
            key: None,
            dir: dir.join("releases"),
        },
    })
    .await?;
    println!(
        "central: mTLS on {}, operator API on http://{}",
        central.device_addr, central.admin_addr
    );

    let config_path = setup.write_agent_config(&dir, central.device_addr)?;
    let agent = daemon::start(AgentConfig::load(&config_path)?).await?;
    println!(
        "agent:   {DEVICE} for site {SITE}, drop folder {}",
        dir.join("drop").display()
    );

    let result = deliver_all(&dir, &exports, &setup, store.as_ref()).await;
    stop(agent).await;
    central.shutdown().await;
    let equal = result?;

    let counts = store.counts(&setup.site).await?;
    let counts = serde_json::json!({
        "schools": counts.schools,
        "students": counts.students,
        "groups": counts.groups,
        "enrollments": counts.enrollments,
    });
    println!();
    println!("where to look:");
    println!("  {}/central.db            central's store (SQLite): table records, with valid_from/valid_to", dir.display());
    println!(
        "  {}/agent.toml            the agent's config; `skolebro-agent status --config` it",
        dir.display()
    );
    println!(
        "  {}/state/                the agent's checkpoint, outbox and status.json",
        dir.display()
    );
    println!(
        "  central's state {} the last export",
        if equal { "equals" } else { "DIFFERS FROM" }
    );
    if json {
        println!(
            "{}",
            serde_json::json!({ "counts": counts, "equal": equal, "dir": dir.display().to_string() })
        );
    }
    Ok(equal)
}

/// Registers the schools `export` names with the demo's site, as making its stick would
/// have: central refuses a batch naming a school its site is not registered with.
async fn register_schools(
    store: &dyn Store,
    site: &SiteId,
    export: &Validated,
) -> anyhow::Result<()> {
    let schools = export
        .roster
        .schools
        .iter()
        .map(SiteSchool::of_record)
        .collect::<Result<Vec<_>, _>>()
        .context("a school of the export cannot be registered")?;
    store
        .register_schools(site, &schools, Timestamp::now())
        .await?;
    Ok(())
}

async fn stop(agent: DaemonHandle) {
    if let Err(error) = agent.stop().await {
        tracing::warn!(%error, "the agent did not stop cleanly");
    }
}

/// Drops each export in turn and waits until central holds it. True when central's current
/// roster equals the last export.
async fn deliver_all(
    dir: &Path,
    exports: &[(String, Vec<u8>)],
    setup: &Setup,
    store: &dyn Store,
) -> anyhow::Result<bool> {
    let mut previous: Option<Validated> = None;
    let mut equal = false;
    for (n, (name, bytes)) in exports.iter().enumerate() {
        let file_name = Path::new(name).file_name().map_or_else(
            || format!("export-{n}"),
            |f| f.to_string_lossy().into_owned(),
        );
        // Read the way the agent will, for the comparison once central has it.
        let expected = read_as_agent(&dir.join("expected"), &file_name, bytes)?;
        println!();
        println!(
            "export {}: {name}: {} schools, {} students, {} groups, {} enrollments",
            n + 1,
            expected.roster.count(Entity::School),
            expected.roster.count(Entity::Student),
            expected.roster.count(Entity::Group),
            expected.roster.count(Entity::Enrollment),
        );
        if let Some(before) = &previous {
            print_delta(before, &expected, &setup.site_secret);
        }
        register_schools(store, &setup.site, &expected).await?;
        let started = Instant::now();
        drop_into(&dir.join("drop"), &file_name, bytes)?;
        equal = wait_until_central_holds(store, &setup.site, &expected.roster).await?;
        let counts = store.counts(&setup.site).await?;
        println!(
            "  {} after {:.2} s: central holds {} schools, {} students, {} groups, {} enrollments",
            if equal { "arrived" } else { "NOT arrived" },
            started.elapsed().as_secs_f64(),
            counts.schools,
            counts.students,
            counts.groups,
            counts.enrollments
        );
        if !equal {
            break;
        }
        previous = Some(expected);
    }
    Ok(equal)
}

fn print_delta(before: &Validated, after: &Validated, secret: &SiteSecret) {
    let old = State::of(&before.roster, secret);
    let prints = Fingerprints::of(&after.roster, secret);
    let (_, summary) = diff(&old, after, &prints, secret);
    for entity in Entity::ALL {
        println!(
            "  delta {:<12} {:>4} added {:>4} changed {:>4} deleted",
            entity.plural(),
            summary.added(entity),
            summary.updated(entity),
            summary.deleted(entity)
        );
    }
}

/// Writes the export beside the drop folder and renames it in, as a SAS should: the agent
/// takes a renamed file as complete at once.
fn drop_into(drop: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(drop)?;
    let staging = drop.with_file_name(format!(".{name}.part"));
    std::fs::write(&staging, bytes)?;
    std::fs::rename(&staging, drop.join(name))?;
    Ok(())
}

async fn wait_until_central_holds(
    store: &dyn Store,
    site: &SiteId,
    expected: &Roster,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if same(&store.current_roster(site).await?, expected) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
