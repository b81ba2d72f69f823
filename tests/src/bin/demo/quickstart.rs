//! The quickstart: central and an agent on loopback, end to end, in one process. It makes a
//! dev PKI and keys in the demo folder ([`Setup`]), starts central on SQLite with all its
//! listeners and a one-time operator account, starts the agent daemon on a drop folder,
//! registers each export's schools with the site (as making its stick would) and drops the
//! exports in one after the other (the sample exports shipped in the repo unless others are
//! given), and after each waits until central holds exactly what the export holds, or the
//! agent held or refused it, which it then explains. Everything crosses real mutual TLS and
//! the real outbox; nothing is mocked. With `--serve` it then hands over to `serve.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use skolebro_agent::config::AgentConfig;
use skolebro_agent::daemon::{self, DaemonHandle, REJECTED_DIR};
use skolebro_agent::status::AgentStatus;
use skolebro_central::seal::{Kek, SealScope};
use skolebro_central::store::{sealing, SqliteStore, Store, Timestamp};
use skolebro_central::{serve, ServerParts, UiSettings};
use skolebro_protocol::api::HeldDelta;
use skolebro_protocol::envelope::SealingPrivateKey;
use skolebro_protocol::{Entity, Roster, SiteId, SiteSchool, SiteSecret};
use skolebro_provisioning::pki::DevPki;
use skolebro_roster::diff::{diff, Fingerprints};
use skolebro_roster::state::State;
use skolebro_roster::validate::Validated;
use skolebro_tests::expected::{read_as_agent, same};
use tokio::sync::watch;

use crate::serve::{self as serving, Signals};
use crate::setup::{Setup, DEVICE, SITE};
use crate::{Args, Out};

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

/// Any free port on loopback: the demo's listeners are for this machine only.
const LOOPBACK: &str = "127.0.0.1:0";

/// What became of the exports.
pub(crate) enum Delivery {
    /// Every export arrived; central holds exactly the last one.
    Arrived,
    /// The agent's safety filter held this export back for review.
    Held(HeldDelta),
    /// The agent refused the export; the note beside it in `rejected/` says why.
    Refused(PathBuf),
    /// Nothing arrived within [`PATIENCE`].
    Late,
}

impl Delivery {
    fn arrived(&self) -> bool {
        matches!(self, Delivery::Arrived)
    }
}

/// Runs the demo in `dir`. The summary goes to `out` as it happens. True when central ends
/// up holding exactly the last export.
pub(crate) async fn run(dir: &Path, args: &Args, out: &Out) -> anyhow::Result<bool> {
    // Before anything runs, so a Ctrl-C from now on stops the demo in order.
    let mut signals = Signals::new().context("listening for signals")?;
    let exports = read_exports(&args.export)?;
    say!(out, "skolebro demo in {}", dir.display());

    let setup = Setup::create(dir)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("central.db")).await?);
    // Sealed at rest as a provisioned central is: the key-encryption key beside the database
    // in the demo folder (`skolebro-provision init` keeps it in the key folder instead).
    let kek_file = dir.join("records.kek");
    let kek = if kek_file.exists() {
        Kek::read_file(&kek_file)?
    } else {
        let kek = Kek::generate()?;
        kek.write_new(&kek_file)?;
        kek
    };
    sealing::unlock(
        store.as_ref(),
        &kek,
        SealScope::IdsAndNames,
        Timestamp::now(),
    )
    .await?;
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
    let operator = serving::operator_account(store.as_ref()).await?;
    let central = serve(ServerParts {
        store: Arc::clone(&store),
        tls: skolebro_central::device_tls_config(
            &read(&dir.join(DevPki::SERVER_CERT))?,
            &read(&dir.join(DevPki::SERVER_KEY))?,
            &read(&dir.join(DevPki::DEVICE_CA_CERT))?,
        )?,
        sealing_key: SealingPrivateKey::from_bytes(setup.sealing_key.to_bytes()),
        device_listen: LOOPBACK.parse()?,
        admin_listen: LOOPBACK.parse()?,
        consumer_listen: Some(LOOPBACK.parse()?),
        consumer_public_url: None,
        ui: Some(UiSettings {
            listen: LOOPBACK.parse()?,
            // Plain HTTP on loopback: a `Secure` cookie would never come back.
            secure_cookie: false,
            session_lifetime: Duration::from_secs(8 * 3600),
        }),
        http_limits: skolebro_central::HttpLimits::default(),
        max_batch_bytes: 16 << 20,
        // The demo registers its device itself (above) rather than enrolling it.
        enroll: skolebro_central::EnrollSettings::default(),
        // Nor does it update its agent.
        releases: skolebro_central::ReleaseSettings {
            key: None,
            dir: dir.join("releases"),
            statement_key: None,
        },
        retention: skolebro_central::retention::RetentionPolicy::default(),
    })
    .await?;
    let urls = serving::Urls::of(&central)?;
    say!(
        out,
        "central: mTLS on {}, operator API on {}",
        central.device_addr,
        urls.admin
    );
    say!(
        out,
        "operator interface: {} (sign in as {} with password {}; an account of this run only)",
        urls.ui,
        operator.name,
        operator.password
    );

    let config_path = setup.write_agent_config(dir, central.device_addr)?;
    let agent = daemon::start(AgentConfig::load(&config_path)?).await?;
    say!(
        out,
        "agent:   {DEVICE} for site {SITE}, drop folder {}",
        dir.join("drop").display()
    );

    let delivered = tokio::select! {
        delivered = deliver_all(dir, &exports, &setup, store.as_ref(), &agent.status, out) => delivered,
        signal = signals.next() => Err(anyhow::anyhow!("interrupted by {signal} while delivering")),
    };
    let result = match delivered {
        Ok((delivery, county)) => {
            let ended = Ended {
                delivery,
                counts: counts(store.as_ref(), &setup.site).await?,
            };
            summarise(dir, args, out, &ended);
            if args.serve {
                let client = serving::consumer_client(
                    urls.admin_addr,
                    &operator.admin_token,
                    county.as_deref(),
                )
                .await?;
                let session = serving::Session {
                    dir,
                    urls: &urls,
                    operator: &operator,
                    client: &client,
                    counts: &ended.counts,
                    held: ended.held(),
                    equal: ended.delivery.arrived(),
                };
                serving::wait(&session, args.json, out, &mut signals).await?;
            } else if args.json {
                let mut document = serde_json::json!({
                    "counts": ended.counts,
                    "equal": ended.delivery.arrived(),
                });
                if let Some(held) = ended.held() {
                    document["held"] = serde_json::to_value(held)?;
                }
                if args.keep || !ended.delivery.arrived() {
                    document["dir"] = dir.display().to_string().into();
                }
                out.json(&document)?;
            }
            Ok(ended.delivery.arrived())
        }
        Err(error) => Err(error),
    };
    stop(agent).await;
    central.shutdown().await;
    result
}

/// How the deliveries ended, with central's counts then.
struct Ended {
    delivery: Delivery,
    counts: serde_json::Value,
}

impl Ended {
    fn held(&self) -> Option<&HeldDelta> {
        match &self.delivery {
            Delivery::Held(held) => Some(held),
            _ => None,
        }
    }
}

/// The exports to deliver: `paths` in order, or the samples.
fn read_exports(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if paths.is_empty() {
        return Ok(SAMPLES
            .iter()
            .map(|(name, text)| (name.to_string(), text.as_bytes().to_vec()))
            .collect());
    }
    paths
        .iter()
        .map(|path| {
            std::fs::read(path)
                .map(|bytes| (path.display().to_string(), bytes))
                .with_context(|| format!("reading {}", path.display()))
        })
        .collect()
}

/// Central's current counts for `site`, as JSON.
async fn counts(store: &dyn Store, site: &SiteId) -> anyhow::Result<serde_json::Value> {
    let counts = store.counts(site).await?;
    Ok(serde_json::json!({
        "schools": counts.schools,
        "students": counts.students,
        "groups": counts.groups,
        "enrollments": counts.enrollments,
    }))
}

/// The end of the summary: where to look, if the folder stays, and whether central holds
/// the last export.
fn summarise(dir: &Path, args: &Args, out: &Out, ended: &Ended) {
    say!(out);
    if args.keep || args.serve || !ended.delivery.arrived() {
        say!(out, "where to look:");
        say!(
            out,
            "  {}/central.db            central's store (SQLite): table records, with valid_from/valid_to",
            dir.display()
        );
        say!(
            out,
            "  {}/agent.toml            the agent's config; `skolebro-agent status --config` it",
            dir.display()
        );
        say!(
            out,
            "  {}/state/                the agent's checkpoint, outbox and status.json",
            dir.display()
        );
    }
    say!(
        out,
        "  central's state {} the last export",
        if ended.delivery.arrived() {
            "equals"
        } else {
            "DIFFERS FROM"
        }
    );
}

/// Registers the schools `export` names with the demo's site, as making its stick would
/// have: central refuses a batch naming a school its site is not registered with. Returns
/// the county (fylkesnummer) of its first school, for the demo's consumer client.
async fn register_schools(
    store: &dyn Store,
    site: &SiteId,
    export: &Validated,
) -> anyhow::Result<Option<String>> {
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
    Ok(schools
        .first()
        .and_then(|school| school.kommunenummer.get(..2))
        .map(str::to_owned))
}

async fn stop(agent: DaemonHandle) {
    if let Err(error) = agent.stop().await {
        tracing::warn!(%error, "the agent did not stop cleanly");
    }
}

/// Drops each export in turn and waits until central holds it, stopping at the first that
/// does not arrive. Returns what became of them and the county of the last one's schools.
async fn deliver_all(
    dir: &Path,
    exports: &[(String, Vec<u8>)],
    setup: &Setup,
    store: &dyn Store,
    status: &watch::Receiver<AgentStatus>,
    out: &Out,
) -> anyhow::Result<(Delivery, Option<String>)> {
    let mut previous: Option<Validated> = None;
    let mut delivery = Delivery::Late;
    let mut county = None;
    for (n, (name, bytes)) in exports.iter().enumerate() {
        let file_name = Path::new(name).file_name().map_or_else(
            || format!("export-{n}"),
            |f| f.to_string_lossy().into_owned(),
        );
        // Read the way the agent will, for the comparison once central has it.
        let expected = read_as_agent(&dir.join("expected"), &file_name, bytes)?;
        say!(out);
        say!(
            out,
            "export {}: {name}: {} schools, {} students, {} groups, {} enrollments",
            n + 1,
            expected.roster.count(Entity::School),
            expected.roster.count(Entity::Student),
            expected.roster.count(Entity::Group),
            expected.roster.count(Entity::Enrollment),
        );
        if let Some(before) = &previous {
            print_delta(before, &expected, &setup.site_secret, out);
        }
        county = register_schools(store, &setup.site, &expected).await?;
        let started = Instant::now();
        let drop = dir.join("drop");
        drop_into(&drop, &file_name, bytes)?;
        let watched = Watched {
            store,
            site: &setup.site,
            status,
            rejected_note: drop
                .join(REJECTED_DIR)
                .join(format!("{file_name}.error.txt")),
        };
        delivery = watched.until_settled(&expected.roster).await?;
        let seconds = started.elapsed().as_secs_f64();
        match &delivery {
            Delivery::Arrived => {
                let counts = store.counts(&setup.site).await?;
                say!(
                    out,
                    "  arrived after {seconds:.2} s: central holds {} schools, {} students, {} groups, {} enrollments",
                    counts.schools,
                    counts.students,
                    counts.groups,
                    counts.enrollments
                );
            }
            Delivery::Held(held) => {
                say!(
                    out,
                    "  held by the safety filter: {}",
                    held.reasons.join("; ")
                );
                say!(
                    out,
                    "  central keeps the previous export; an operator releases or rejects the held \
                     delta on the operator interface's held page (--serve keeps it running)"
                );
            }
            Delivery::Refused(note) => {
                say!(out, "  refused by the agent; why is in {}", note.display())
            }
            Delivery::Late => say!(out, "  NOT arrived after {seconds:.0} s"),
        }
        if !delivery.arrived() {
            break;
        }
        previous = Some(expected);
    }
    Ok((delivery, county))
}

fn print_delta(before: &Validated, after: &Validated, secret: &SiteSecret, out: &Out) {
    let old = State::of(&before.roster, secret);
    let prints = Fingerprints::of(&after.roster, secret);
    let (_, summary) = diff(&old, after, &prints, secret);
    for entity in Entity::ALL {
        say!(
            out,
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

/// Where one dropped export's fate shows: central's roster, the agent's status (a held
/// delta) and the agent's `rejected/` folder (a refused export's note).
struct Watched<'a> {
    store: &'a dyn Store,
    site: &'a SiteId,
    status: &'a watch::Receiver<AgentStatus>,
    rejected_note: PathBuf,
}

impl Watched<'_> {
    /// Waits until central holds `expected`, the agent holds or refuses the export, or
    /// [`PATIENCE`] runs out.
    async fn until_settled(&self, expected: &Roster) -> anyhow::Result<Delivery> {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if same(&self.store.current_roster(self.site).await?, expected) {
                return Ok(Delivery::Arrived);
            }
            let held = self.status.borrow().held.clone();
            if let Some(held) = held {
                return Ok(Delivery::Held(held));
            }
            if self.rejected_note.is_file() {
                return Ok(Delivery::Refused(self.rejected_note.clone()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Delivery::Late)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
