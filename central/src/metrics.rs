//! Central's Prometheus metrics (docs/API.md, "Metrics and health"): what the operator
//! listener's `GET /metrics` answers, in the Prometheus text format (0.0.4) written by
//! `prometheus-client`.
//!
//! Two kinds, kept apart on purpose. **Events** this process saw are counters and a
//! histogram in [`Metrics`], held in `AppState` and moved by the device listener: batches
//! applied, replayed and refused by error code and the time to answer an applied one
//! (`api::device::metered`), heartbeats and reported update outcomes, TLS handshakes and
//! their failures (`server`). They restart at zero with the process, which Prometheus'
//! `rate()` expects. **State** the fleet is in is read from the store at scrape time
//! ([`Metrics::encode`]): devices by state, each device's last heartbeat and batch, its
//! outbox, deviations by code and whether it holds a delta, and whether each site missed its
//! county's last closed transfer window, and what the retention job purged (rows by kind,
//! the last run's end; `crate::retention`). Being read from the store, it is the same
//! whichever central process is scraped or ran the job.
//!
//! Labels carry site ids, device ids and fixed codes only, never a national id or a name.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use skolebro_protocol::api::{AgentState, ReportedState};
use skolebro_protocol::{DeviceId, SiteId};

use crate::store::prelude::*;
use crate::store::{Fylke, StoreError, Timestamp, Transfer, TransferWindow, WindowState};
use crate::windows::{reports, site_counties, SiteCounties};

/// The `Content-Type` of a `/metrics` answer.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A site, as the label of per-site counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

/// A refusal's error code (docs/API.md), as the label of refusal counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// One device of one site.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    site: String,
    device: String,
}

/// One deviation code on one device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviationLabels {
    site: String,
    device: String,
    code: String,
}

/// What the retention job purged: `versions`, `departed` or `audit`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// A device state, or an update outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// The counters and the histogram of what this process saw, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    batches_applied: Family<SiteLabel, Counter>,
    batches_replayed: Family<SiteLabel, Counter>,
    batches_refused: Family<ReasonLabel, Counter>,
    apply_seconds: Histogram,
    heartbeats: Family<SiteLabel, Counter>,
    heartbeats_refused: Family<ReasonLabel, Counter>,
    update_reports: Family<StateLabel, Counter>,
    tls_handshakes: Counter,
    tls_failures: Family<ReasonLabel, Counter>,
}

/// How a TLS handshake on the device listener ended: failures are not logged above debug
/// level (scanners are not incidents), so this count is where a wave of them shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// The client is through; what it may do is decided after.
    Completed,
    /// Refused by rustls: no TLS, a certificate not from the device CA, no common version.
    Failed,
    /// Not finished within `server::HANDSHAKE_TIMEOUT`.
    TimedOut,
    /// Not started: the listener already held `[http] max_device_connections`, so the
    /// connection was closed right after accept.
    Refused,
}

impl Metrics {
    /// Every counter at zero.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("skolebro");
        let r = &mut registry;
        // 5 ms to about 82 s: a small delta to a 16 MiB snapshot over a slow uplink.
        let apply_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        r.register(
            "batch_apply_duration_seconds",
            "Time from a batch request's start (body included) to its applied answer",
            apply_seconds.clone(),
        );
        Metrics {
            batches_applied: registered(
                r,
                "batches_applied",
                "Batches applied (acked with applied=true), by site",
            ),
            batches_replayed: registered(
                r,
                "batches_replayed",
                "Batches acked again without change (already applied), by site",
            ),
            batches_refused: registered(
                r,
                "batches_refused",
                "Batches refused, by the answer's error code (docs/API.md)",
            ),
            apply_seconds,
            heartbeats: registered(r, "heartbeats", "Heartbeats recorded, by site"),
            heartbeats_refused: registered(
                r,
                "heartbeats_refused",
                "Heartbeats refused, by the answer's error code",
            ),
            update_reports: registered(
                r,
                "update_reports",
                "Update steps devices reported, by state (downloaded, installed, healthy, rolled_back, refused)",
            ),
            tls_handshakes: registered(
                r,
                "tls_handshakes",
                "TLS handshakes completed on the device listener",
            ),
            tls_failures: registered(
                r,
                "tls_handshake_failures",
                "TLS handshakes on the device listener that failed (error), timed out (timeout) or were not started because the listener was full (full)",
            ),
            registry,
        }
    }

    /// A batch of `site` applied, answered `elapsed` after its request started.
    pub(crate) fn batch_applied(&self, site: &SiteId, elapsed: Duration) {
        self.batches_applied.get_or_create(&site_label(site)).inc();
        self.apply_seconds.observe(elapsed.as_secs_f64());
    }

    /// A batch of `site` acked again: it had been applied before.
    pub(crate) fn batch_replayed(&self, site: &SiteId) {
        self.batches_replayed.get_or_create(&site_label(site)).inc();
    }

    /// A batch refused with the error code `reason`.
    pub(crate) fn batch_refused(&self, reason: &str) {
        self.batches_refused
            .get_or_create(&reason_label(reason))
            .inc();
    }

    /// A heartbeat of `site` recorded.
    pub(crate) fn heartbeat(&self, site: &SiteId) {
        self.heartbeats.get_or_create(&site_label(site)).inc();
    }

    /// A heartbeat refused with the error code `reason`.
    pub(crate) fn heartbeat_refused(&self, reason: &str) {
        self.heartbeats_refused
            .get_or_create(&reason_label(reason))
            .inc();
    }

    /// An update step a device reported (and central recorded).
    pub(crate) fn update_reported(&self, state: ReportedState) {
        let state = match state {
            ReportedState::Downloaded => "downloaded",
            ReportedState::Installed => "installed",
            ReportedState::Healthy => "healthy",
            ReportedState::RolledBack => "rolled_back",
            ReportedState::Refused => "refused",
            ReportedState::Unknown => "unknown",
        };
        self.update_reports
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .inc();
    }

    /// A TLS handshake on the device listener ended so.
    pub(crate) fn handshake(&self, outcome: Handshake) {
        match outcome {
            Handshake::Completed => {
                self.tls_handshakes.inc();
            }
            Handshake::Failed => {
                self.tls_failures
                    .get_or_create(&reason_label("error"))
                    .inc();
            }
            Handshake::TimedOut => {
                self.tls_failures
                    .get_or_create(&reason_label("timeout"))
                    .inc();
            }
            Handshake::Refused => {
                self.tls_failures.get_or_create(&reason_label("full")).inc();
            }
        }
    }

    /// The `/metrics` page: this process's counters, then the fleet's state read from
    /// `store` now.
    pub(crate) async fn encode(&self, store: &dyn Store) -> Result<String, StoreError> {
        let fleet = fleet_registry(store, Timestamp::now()).await?;
        let mut page = String::new();
        prometheus_text::encode(&mut page, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut page, &fleet))
            .map_err(|_| StoreError::Corrupt("the metrics page could not be written".into()))?;
        Ok(page)
    }
}

/// A new metric at zero, registered under `name`.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

fn site_label(site: &SiteId) -> SiteLabel {
    SiteLabel {
        site: site.to_string(),
    }
}

fn reason_label(reason: &str) -> ReasonLabel {
    ReasonLabel {
        reason: reason.to_owned(),
    }
}

/// A device's state as the `skolebro_devices` gauge names it.
fn state_name(state: AgentState) -> &'static str {
    match state {
        AgentState::Healthy => "healthy",
        AgentState::Holding => "holding",
        AgentState::CentralUnreachable => "central_unreachable",
        AgentState::Error => "error",
        AgentState::Enrolling => "enrolling",
        AgentState::NotProvisioned => "not_provisioned",
        AgentState::Unknown => "unknown",
    }
}

/// Every state `skolebro_devices` reports, so a state with no device reads 0, not absent.
const DEVICE_STATES: [&str; 9] = [
    "healthy",
    "holding",
    "central_unreachable",
    "error",
    "enrolling",
    "not_provisioned",
    "unknown",
    "never_heard",
    "revoked",
];

fn seconds(at: Timestamp) -> f64 {
    at.0 as f64 / 1000.0
}

/// A fresh registry of gauges describing the fleet as the store has it at `now`.
async fn fleet_registry(store: &dyn Store, now: Timestamp) -> Result<Registry, StoreError> {
    let devices = store.list_devices().await?;
    let activity = store.fleet_activity().await?;
    let missed = missed_windows(store, now).await?;
    let retention = store.retention_totals().await?;

    let mut registry = Registry::with_prefix("skolebro");
    let by_state = Family::<StateLabel, Gauge>::default();
    let last_heartbeat =
        Family::<DeviceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let last_batch = Family::<DeviceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let outbox_depth = Family::<DeviceLabels, Gauge>::default();
    let outbox_bytes = Family::<DeviceLabels, Gauge>::default();
    let outbox_age = Family::<DeviceLabels, Gauge>::default();
    let held = Family::<DeviceLabels, Gauge>::default();
    let held_since = Family::<DeviceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let deviations = Family::<DeviationLabels, Gauge>::default();
    let window_late = Family::<SiteLabel, Gauge>::default();

    let mut counts: BTreeMap<&'static str, i64> =
        DEVICE_STATES.iter().map(|state| (*state, 0)).collect();
    for (device, record) in &devices {
        let labels = device_labels(&record.site, device);
        let seen = activity.get(device);
        let heartbeat = seen.and_then(|seen| seen.last_heartbeat.as_ref());
        let state = if record.revoked {
            "revoked"
        } else {
            heartbeat.map_or("never_heard", |heartbeat| state_name(heartbeat.state))
        };
        *counts.entry(state).or_default() += 1;
        if let Some(at) = seen.and_then(|seen| seen.last_heartbeat_at) {
            last_heartbeat.get_or_create(&labels).set(seconds(at));
        }
        if let Some(at) = seen.and_then(|seen| seen.last_batch_at) {
            last_batch.get_or_create(&labels).set(seconds(at));
        }
        let Some(heartbeat) = heartbeat else {
            continue;
        };
        outbox_depth
            .get_or_create(&labels)
            .set(saturating(heartbeat.outbox_depth));
        outbox_bytes
            .get_or_create(&labels)
            .set(saturating(heartbeat.outbox_bytes));
        if let Some(age) = heartbeat.oldest_unacked_age_s {
            outbox_age.get_or_create(&labels).set(saturating(age));
        }
        held.get_or_create(&labels)
            .set(i64::from(heartbeat.held.is_some()));
        if let Some(since) = heartbeat.held.as_ref().and_then(|h| h.held_since_unix_ms) {
            held_since
                .get_or_create(&labels)
                .set(seconds(Timestamp(since.try_into().unwrap_or(i64::MAX))));
        }
        for group in &heartbeat.deviation_groups {
            deviations
                .get_or_create(&DeviationLabels {
                    site: labels.site.clone(),
                    device: labels.device.clone(),
                    code: group.code.clone(),
                })
                .set(saturating(group.count));
        }
    }
    for (state, count) in counts {
        by_state
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(count);
    }
    for (site, late) in missed {
        window_late
            .get_or_create(&SiteLabel {
                site: site.to_string(),
            })
            .set(i64::from(late));
    }

    registry.register(
        "devices",
        "Registered devices by the state of their last heartbeat (never_heard: none yet; revoked)",
        by_state,
    );
    registry.register(
        "device_last_heartbeat_timestamp_seconds",
        "When central last recorded a heartbeat of the device (Unix seconds)",
        last_heartbeat,
    );
    registry.register(
        "device_last_batch_timestamp_seconds",
        "When central last applied a batch of the device (Unix seconds)",
        last_batch,
    );
    registry.register(
        "device_outbox_depth",
        "Envelopes waiting in the device's outbox, as its last heartbeat said",
        outbox_depth,
    );
    registry.register(
        "device_outbox_bytes",
        "Bytes of the device's outbox, as its last heartbeat said",
        outbox_bytes,
    );
    registry.register(
        "device_outbox_oldest_age_seconds",
        "Age of the oldest unacked envelope when the device last sent a heartbeat",
        outbox_age,
    );
    registry.register(
        "device_held_delta",
        "1 when the device's last heartbeat reports a delta held for review",
        held,
    );
    registry.register(
        "device_held_delta_since_timestamp_seconds",
        "When the device began to hold the delta it reports (Unix seconds)",
        held_since,
    );
    registry.register(
        "device_deviations",
        "Deviations in the device's last export, by code",
        deviations,
    );
    let purged = Family::<KindLabel, Counter>::default();
    for (kind, rows) in [
        ("versions", retention.versions),
        ("departed", retention.departed),
        ("audit", retention.audit),
    ] {
        purged
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc_by(rows);
    }
    registry.register(
        "retention_purged_rows",
        "Rows the retention job purged over its kept runs, by kind (versions: closed versions \
         of living records; departed: versions of records that left; audit: audit lines)",
        purged,
    );
    let runs = Counter::<u64>::default();
    runs.inc_by(retention.runs);
    registry.register("retention_runs", "Retention runs kept in the store", runs);
    if let Some(at) = retention.last_finished {
        let last = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        last.set(seconds(at));
        registry.register(
            "retention_last_run_timestamp_seconds",
            "When the last retention run finished (Unix seconds)",
            last,
        );
    }
    registry.register(
        "site_window_late",
        "1 when the site delivered nothing inside its county's last closed transfer window",
        window_late,
    );
    Ok(registry)
}

fn device_labels(site: &SiteId, device: &DeviceId) -> DeviceLabels {
    DeviceLabels {
        site: site.to_string(),
        device: device.to_string(),
    }
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// For every site in a county with a closed window: whether it missed the county's last
/// closed window. Only those windows' transfers are read, so a scrape costs the same in a
/// window's tenth year as in its first.
async fn missed_windows(
    store: &dyn Store,
    now: Timestamp,
) -> Result<BTreeMap<SiteId, bool>, StoreError> {
    let windows = last_closed(store.windows(None).await?, now);
    let Some(since) = windows.iter().map(|window| window.opens).min() else {
        return Ok(BTreeMap::new());
    };
    let counties = site_counties(store.current_schools().await?);
    let transfers = store.transfers_since(since).await?;
    Ok(missed(&windows, &counties, &transfers))
}

/// The last window of each county that had closed by `now`.
fn last_closed(windows: Vec<TransferWindow>, now: Timestamp) -> Vec<TransferWindow> {
    let mut last: BTreeMap<Fylke, TransferWindow> = BTreeMap::new();
    for window in windows {
        if window.state_at(now) != WindowState::Closed {
            continue;
        }
        if last
            .get(&window.fylke)
            .is_none_or(|seen| seen.closes < window.closes)
        {
            last.insert(window.fylke, window);
        }
    }
    last.into_values().collect()
}

/// Whether each site of the windows' counties had no batch applied inside its county's
/// window (`true`: missed it); one window per county.
fn missed(
    windows: &[TransferWindow],
    counties: &SiteCounties,
    transfers: &[(SiteId, Transfer)],
) -> BTreeMap<SiteId, bool> {
    let mut missed: BTreeMap<SiteId, bool> = BTreeMap::new();
    for report in reports(windows, counties, transfers) {
        for site in &report.sites {
            *missed.entry(site.clone()).or_insert(false) |= !report.delivered.contains(site);
        }
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::store::Changes;

    #[test]
    fn every_agent_state_has_a_listed_gauge_label() {
        for state in [
            AgentState::Healthy,
            AgentState::Holding,
            AgentState::CentralUnreachable,
            AgentState::Error,
            AgentState::Enrolling,
            AgentState::NotProvisioned,
            AgentState::Unknown,
        ] {
            assert!(DEVICE_STATES.contains(&state_name(state)), "{state:?}");
        }
    }

    fn window(id: i64, fylke: &str, opens: i64, closes: i64) -> TransferWindow {
        TransferWindow {
            id,
            fylke: Fylke::parse(fylke).unwrap(),
            name: format!("window {id}"),
            opens: Timestamp(opens),
            closes: Timestamp(closes),
            created: Timestamp(0),
            created_by: "test".into(),
        }
    }

    fn applied(device: &str, at: i64) -> Transfer {
        Transfer {
            device: DeviceId::new(device).unwrap(),
            seq: skolebro_protocol::Seq(1),
            at: Timestamp(at),
            snapshot: false,
            changes: Changes::default(),
            bytes: 0,
        }
    }

    #[test]
    fn a_site_missed_its_window_when_nothing_arrived_inside_the_last_closed_one() {
        let on_time = SiteId::new("4601-1").unwrap();
        let late = SiteId::new("4601-2").unwrap();
        let elsewhere = SiteId::new("0301-1").unwrap();
        let county = |fylke: &str| BTreeSet::from([Fylke::parse(fylke).unwrap()]);
        // An older closed window both missed, the last closed one, and one still open.
        let windows = vec![
            window(1, "46", 0, 100),
            window(2, "46", 1_000, 2_000),
            window(3, "46", 5_000, 9_000),
        ];
        let windows = last_closed(windows, Timestamp(6_000));
        assert_eq!(windows.iter().map(|w| w.id).collect::<Vec<_>>(), [2]);
        let counties = [
            (on_time.clone(), county("46")),
            (late.clone(), county("46")),
            (elsewhere.clone(), county("03")),
        ]
        .into_iter()
        .collect();
        let transfers = vec![
            (on_time.clone(), applied("pi-1", 1_500)),
            (late.clone(), applied("pi-2", 2_500)),
        ];
        let missed = missed(&windows, &counties, &transfers);
        assert_eq!(missed.get(&on_time), Some(&false));
        assert_eq!(missed.get(&late), Some(&true));
        // A county without a closed window says nothing about its sites.
        assert_eq!(missed.get(&elsewhere), None);
    }

    #[test]
    fn counters_appear_on_the_page_with_their_labels() {
        let metrics = Metrics::new();
        let site = SiteId::new("skole-46505").unwrap();
        metrics.batch_applied(&site, Duration::from_millis(20));
        metrics.batch_refused("bad_signature");
        metrics.batch_refused("bad_signature");
        metrics.handshake(Handshake::TimedOut);
        let mut page = String::new();
        prometheus_text::encode(&mut page, &metrics.registry).unwrap();
        assert!(page.contains("skolebro_batches_applied_total{site=\"skole-46505\"} 1\n"));
        assert!(page.contains("skolebro_batches_refused_total{reason=\"bad_signature\"} 2\n"));
        assert!(page.contains("skolebro_tls_handshake_failures_total{reason=\"timeout\"} 1\n"));
        assert!(page.contains("skolebro_batch_apply_duration_seconds_count 1\n"));
    }
}
