//! One simulated device: what a Pi at a school holds (a device certificate from the device
//! CA, an Ed25519 signing key, its site's handle secret) and what it does in a night. Its
//! school's roster comes from the synthetic generator, read back the agent's way and
//! diffed with the agent's differ against what central was last sent; the delta is sealed to
//! central and chained to the last acked envelope, exactly as the agent's outbox makes it.
//! Rosters are regenerated from the seed when needed rather than kept, so thousands of
//! devices fit in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use skolebro_protocol::api::{AgentState, BatchAck, DeviationCounts, Heartbeat};
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, DeviceId, DeviceSigningKey, Entity, Header, Kind, Payload, Roster, SealingPublicKey,
    SiteId, SiteSchool, SiteSecret,
};
use skolebro_provisioning::{CertificateAuthority, Validity};
use skolebro_roster::diff::{diff, Fingerprints};
use skolebro_roster::state::State;
use skolebro_tests::expected::read_as_agent;
use skolebro_tests::rostergen::{Churn, Generated, Rng};
use tokio::sync::Semaphore;

use crate::tally::Tally;

/// Between nightly exports: 2% of the roster changes (leavers, arrivals, renames and class
/// moves, half a percent each).
const NIGHTLY: Churn = Churn {
    leave: 0.005,
    arrive: 0.005,
    rename: 0.005,
    move_class: 0.005,
};

/// The build target a Pi's agent names in its heartbeats.
const PI_TARGET: &str = "aarch64-unknown-linux-gnu";

/// Longest a device waits for one answer before counting a timeout and trying again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before a failed batch is sent again, as the agent's outbox backs off.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A simulated device and its site.
pub(crate) struct Device {
    pub(crate) id: DeviceId,
    pub(crate) site: SiteId,
    pub(crate) signing: DeviceSigningKey,
    pub(crate) secret: SiteSecret,
    /// Pupils at its school in the first export.
    pub(crate) students: usize,
    skolenummer: usize,
    seed: u64,
}

impl Device {
    /// Device number `index` of run `tag`, its school's size drawn from `sizes`: most
    /// schools 150–600 pupils, one in thirty-three 1,500. Keys come from the system's
    /// randomness, as a real device's do.
    pub(crate) fn new(tag: u32, index: usize, sizes: &mut Rng) -> anyhow::Result<Device> {
        let students = if sizes.below(33) == 0 {
            1_500
        } else {
            150 + sizes.below(451) as usize
        };
        let mut secret = [0; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        Ok(Device {
            id: DeviceId::new(format!("lg{tag:05}-pi-{index}"))?,
            site: SiteId::new(format!("lg{tag:05}-skole-{index}"))?,
            signing: DeviceSigningKey::generate()?,
            secret: SiteSecret::from_bytes(secret),
            students,
            // Twelve digits, unique per run and device: central refuses a school that
            // another site holds, and `--central` may point at a store earlier runs used.
            skolenummer: format!("9{tag:05}{index:06}")
                .parse()
                .context("a skolenummer")?,
            seed: u64::from(tag) << 32 | index as u64,
        })
    }

    /// The school its site is registered with before its first export.
    pub(crate) fn school(&self) -> SiteSchool {
        // Only the school numbering matters here, so a roster of one pupil names it.
        Generated::one_school(1, self.skolenummer, self.seed)
            .registration()
            .remove(0)
    }

    /// Its export on night `night` (0: the first export).
    pub(crate) fn export(&self, night: usize) -> Generated {
        let mut generated = Generated::one_school(self.students, self.skolenummer, self.seed);
        for n in 1..=night {
            generated = generated.evolve(NIGHTLY, self.seed ^ (n as u64) << 48);
        }
        generated
    }

    /// What central should hold after the device's exports up to `night` were applied.
    pub(crate) fn truth(&self, night: Option<usize>) -> Roster {
        night
            .map(|night| self.export(night).truth())
            .unwrap_or_default()
    }

    /// Night `night`'s export as the envelope following `head`, the head after it and the
    /// number of records the delta upserts or deletes. `scratch` is the device's own folder
    /// for the agent's reader.
    pub(crate) fn envelope(
        &self,
        night: usize,
        head: &ChainHead,
        central: &SealingPublicKey,
        scratch: &Path,
    ) -> anyhow::Result<(Vec<u8>, ChainHead, usize)> {
        let old = match night.checked_sub(1) {
            Some(before) => State::of(&self.read(before, scratch)?, &self.secret),
            None => State::default(),
        };
        let new = read_as_agent(scratch, "elevliste.csv", &self.elevliste(night)?)?;
        let prints = Fingerprints::of(&new.roster, &self.secret);
        let (delta, _) = diff(&old, &new, &prints, &self.secret);
        let records = Entity::ALL
            .iter()
            .map(|&entity| delta.upserts(entity) + delta.deletes(entity).len())
            .sum();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .unwrap_or(0);
        let header = Header::chained(
            head,
            self.id.clone(),
            self.site.clone(),
            created,
            Kind::Delta,
        );
        let envelope = seal(header, &Payload::Delta(delta), central, &self.signing)?;
        Ok((envelope.to_bytes(), envelope.next_head(), records))
    }

    fn elevliste(&self, night: usize) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.export(night).write_elevliste(&mut bytes, true)?;
        Ok(bytes)
    }

    fn read(&self, night: usize, scratch: &Path) -> anyhow::Result<Roster> {
        Ok(read_as_agent(scratch, "elevliste.csv", &self.elevliste(night)?)?.roster)
    }

    /// Its mutual-TLS client: a certificate from `device_ca` for this device and site,
    /// trusting only `central_ca_pem`.
    pub(crate) fn client(
        &self,
        device_ca: &CertificateAuthority,
        central_ca_pem: &str,
        lifetime: Duration,
    ) -> anyhow::Result<reqwest::Client> {
        let credentials =
            device_ca.issue_device(&self.id, &self.site, Validity::from_now(lifetime))?;
        Ok(skolebro_provisioning::tls::client_builder(
            &credentials.cert_pem,
            &credentials.key_pem,
            central_ca_pem,
            None,
        )?
        .timeout(REQUEST_TIMEOUT)
        .build()?)
    }
}

/// What every device task shares: where central is, the run's clock, the bound on requests
/// in flight and the tally.
pub(crate) struct Night {
    pub(crate) device_url: String,
    pub(crate) sealing: SealingPublicKey,
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
    pub(crate) window: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) nights: usize,
    /// At most this many requests in flight at once, fleet-wide.
    pub(crate) gate: Semaphore,
    pub(crate) tally: Tally,
    pub(crate) scratch: std::path::PathBuf,
}

impl Night {
    /// A moment in `[from, from + span)`, drawn from `rng`.
    fn within(&self, from: Duration, span: Duration, rng: &mut Rng) -> Instant {
        let millis = span.as_millis() as u64;
        self.start + from + Duration::from_millis(rng.below(millis))
    }
}

/// The device's exports of the night, each at a random moment of its window (the first
/// export in the first window, night `n`'s delta in window `n + 1`), each sent until acked
/// or the run's end. Returns the last night central acked and the last night sent, if any:
/// an export whose ack was lost when the run ended may still have been applied.
pub(crate) async fn deliver(
    device: Arc<Device>,
    client: reqwest::Client,
    night: Arc<Night>,
) -> (Option<usize>, Option<usize>) {
    let mut rng = Rng::new(device.seed ^ 0xde11_7e57);
    let scratch = night.scratch.join(device.id.as_str());
    let mut head = ChainHead::genesis();
    let mut acked = None;
    let mut sent = None;
    for export in 0..=night.nights {
        let at = night.within(night.window * export as u32, night.window, &mut rng);
        tokio::time::sleep_until(at.into()).await;
        let prepared = {
            let (device, night, scratch, head) = (
                Arc::clone(&device),
                Arc::clone(&night),
                scratch.clone(),
                head,
            );
            tokio::task::spawn_blocking(move || {
                device.envelope(export, &head, &night.sealing, &scratch)
            })
            .await
        };
        let (envelope, next, records) = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(error)) => {
                eprintln!("{}: cannot make export {export}: {error:#}", device.id);
                night.tally.error("prepare", 1);
                break;
            }
            Err(_) => {
                night.tally.error("prepare", 1);
                break;
            }
        };
        sent = Some(export);
        if !send(&client, &night, envelope, records).await {
            break;
        }
        head = next;
        acked = Some(export);
    }
    let missing = night.nights + 1 - acked.map_or(0, |last| last + 1);
    if missing > 0 {
        night.tally.error("unfinished", missing as u64);
    }
    (acked, sent)
}

/// Posts one envelope until central acks it; false when the run ended first or central
/// refused it for good (a 4xx other than 408 and 429).
async fn send(client: &reqwest::Client, night: &Night, envelope: Vec<u8>, records: usize) -> bool {
    let url = format!("{}/v1/batches", night.device_url);
    loop {
        if Instant::now() >= night.deadline {
            return false;
        }
        let outcome = {
            let Ok(_permit) = night.gate.acquire().await else {
                return false;
            };
            let sent = Instant::now();
            match client.post(&url).body(envelope.clone()).send().await {
                Ok(answer) if answer.status().is_success() => match answer.json::<BatchAck>().await
                {
                    Ok(ack) => Ok((sent.elapsed(), ack)),
                    Err(error) => Err(failure("batch", &error)),
                },
                Ok(answer) => Err(format!("batch_http_{}", answer.status().as_u16())),
                Err(error) => Err(failure("batch", &error)),
            }
        };
        match outcome {
            Ok((took, ack)) => {
                night.tally.batch(took, ack.applied, records);
                return true;
            }
            Err(kind) => {
                night.tally.error(&kind, 1);
                let permanent = kind.starts_with("batch_http_4")
                    && !matches!(kind.as_str(), "batch_http_408" | "batch_http_429");
                if permanent {
                    return false;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Heartbeats every interval from a random moment of the first one until the run's end, as
/// a healthy agent with nothing waiting sends them.
pub(crate) async fn heartbeat(device: Arc<Device>, client: reqwest::Client, night: Arc<Night>) {
    let mut rng = Rng::new(device.seed ^ 0x4ea7_b347);
    let url = format!("{}/v1/heartbeat", night.device_url);
    // What the agent's daemon sends when healthy with nothing waiting, its build target
    // included: with a target, central also looks for a release to offer, as it does for
    // every real agent.
    let body = Heartbeat {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        state: AgentState::Healthy,
        outbox_depth: 0,
        outbox_bytes: 0,
        oldest_unacked_age_s: None,
        last_export_unix_ms: None,
        deviations: DeviationCounts::default(),
        deviation_groups: Vec::new(),
        held: None,
        target: Some(PI_TARGET.to_owned()),
        update: None,
        freshness: None,
        arrival: None,
        drop_share: None,
        source_problem: None,
    };
    let mut at = night.within(Duration::ZERO, night.heartbeat, &mut rng);
    while at < night.deadline {
        tokio::time::sleep_until(at.into()).await;
        let Ok(_permit) = night.gate.acquire().await else {
            return;
        };
        let sent = Instant::now();
        match client.post(&url).json(&body).send().await {
            Ok(answer) if answer.status().is_success() => match answer.bytes().await {
                Ok(_) => night.tally.heartbeat(sent.elapsed()),
                Err(error) => night.tally.error(&failure("heartbeat", &error), 1),
            },
            Ok(answer) => night
                .tally
                .error(&format!("heartbeat_http_{}", answer.status().as_u16()), 1),
            Err(error) => night.tally.error(&failure("heartbeat", &error), 1),
        }
        at += night.heartbeat;
    }
}

/// The kind of a failed request, `what` its endpoint: `connect`, `timeout`, `body` or
/// `request`.
fn failure(what: &str, error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("{what}_{kind}")
}
