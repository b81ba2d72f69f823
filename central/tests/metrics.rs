//! `GET /metrics`, `/healthz` and `/readyz` on a real central: devices send real batches,
//! heartbeats and broken handshakes over mutual TLS on loopback, then the operator
//! listener's page is scraped over HTTP and read with a Prometheus text parser
//! (`prometheus-parse`), and every counter must have moved by exactly what was sent.

mod common;

use std::time::Duration;

use common::{now_ms, student, Central, CentralOptions};
use prometheus_parse::{Sample, Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;
use skolebro_central::store::{Fylke, NewWindow, Timestamp};
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, Entity, EntityDelta, Header, Payload, Record,
    School, SiteId, SiteSchool, SiteSecret,
};
use skolebro_provisioning::Validity;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SITE: &str = "skole-46505";
const DEVICE: &str = "pi-46505";

/// A registered device of [`SITE`] with its mutual-TLS client.
struct Device {
    id: DeviceId,
    site: SiteId,
    signing: DeviceSigningKey,
    secret: SiteSecret,
    client: reqwest::Client,
}

async fn register(central: &Central) -> Device {
    let id = DeviceId::new(DEVICE).unwrap();
    let site = SiteId::new(SITE).unwrap();
    let client = central.device_client(&id, &site, Validity::from_now(Duration::from_secs(3600)));
    let device = Device {
        signing: DeviceSigningKey::from_bytes([0x5a; 32]),
        secret: SiteSecret::from_bytes([0xa1; 32]),
        id,
        site,
        client,
    };
    central
        .store
        .set_site_secret(&device.site, &device.secret)
        .await
        .expect("the site secret is stored");
    central
        .store
        .register_device(&device.id, &device.site, &device.signing.verifying_key())
        .await
        .expect("the device is registered");
    let school: SiteSchool = "4601/46010=Skule 4601".parse().unwrap();
    central
        .store
        .register_schools(&device.site, &[school], Timestamp(1))
        .await
        .expect("the site's school is registered");
    device
}

impl Device {
    /// The first envelope of the chain: a delta adding two pupils.
    fn first_batch(&self, central: &Central) -> Vec<u8> {
        let pupils = [student("s1", "Kari"), student("s2", "Ola")];
        let mut students = EntityDelta {
            upserts: pupils
                .iter()
                .map(|pupil| {
                    (
                        self.secret.handle(Entity::Student, pupil.key()),
                        pupil.clone(),
                    )
                })
                .collect(),
            deletes: Vec::new(),
            renames: Vec::new(),
        };
        students.sort();
        // A school of kommune 4601, so the site lies in county 46 (transfer windows).
        let school = School {
            skolenummer: "46010".into(),
            organisasjonsnummer: None,
            kommunenummer: Some("4601".into()),
            fylkesnummer: Some("46".into()),
            name: "Skule 4601".into(),
        };
        let schools = EntityDelta {
            upserts: vec![(self.secret.handle(Entity::School, school.key()), school)],
            deletes: Vec::new(),
            renames: Vec::new(),
        };
        let payload = Payload::Delta(Delta {
            schools,
            students,
            ..Delta::default()
        });
        let header = Header::chained(
            &ChainHead::genesis(),
            self.id.clone(),
            self.site.clone(),
            now_ms() as u64,
            payload.kind(),
        );
        seal(
            header,
            &payload,
            &central.sealing.public_key(),
            &self.signing,
        )
        .expect("the envelope seals")
        .to_bytes()
    }

    async fn post_batch(&self, central: &Central, body: Vec<u8>) -> StatusCode {
        self.client
            .post(central.device_url("/v1/batches"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("central answers")
            .status()
    }

    async fn heartbeat(&self, central: &Central) -> StatusCode {
        self.client
            .post(central.device_url("/v1/heartbeat"))
            .json(&json!({
                "version": "0.1.0", "state": "holding", "outbox_depth": 2,
                "outbox_bytes": 4096, "oldest_unacked_age_s": 90,
                "deviations": {"errors": 3, "warnings": 0},
                "deviation_groups": [
                    {"code": "invalid_national_id", "severity": "error", "count": 3, "rows": []}
                ],
                "held": {"id": "h1", "reasons": ["deletes 40% of students"],
                         "upserts": {}, "deletes": {"students": 400},
                         "held_since_unix_ms": 1_780_000_000_500_u64},
                "update": {"release": "0.2.0-aarch64-unknown-linux-gnu", "state": "rolled_back",
                           "reason": "trial failed"}
            }))
            .send()
            .await
            .expect("central answers")
            .status()
    }
}

/// Opens a TCP connection to the device listener, speaks plain HTTP instead of TLS, ends
/// its side and waits until central closes it: one failed handshake, counted before the close.
async fn broken_handshake(central: &Central) {
    let mut tcp = tokio::net::TcpStream::connect(central.running.device_addr)
        .await
        .expect("connects");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tcp.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "central keeps a connection whose handshake failed"
    );
}

/// A transfer window of county 46 that closed a day ago: a site of the county whose batches
/// all came after it missed it.
async fn closed_window(central: &Central) {
    let day = 24 * 3600 * 1000;
    let now = now_ms();
    central
        .store
        .create_window(&NewWindow {
            fylke: Fylke::parse("46").unwrap(),
            name: "Inntak".into(),
            opens: Timestamp(now - 2 * day),
            closes: Timestamp(now - day),
            created: Timestamp(now),
            created_by: "test".into(),
        })
        .await
        .expect("the window is stored");
}

async fn scrape(central: &Central) -> Scrape {
    let response = central
        .admin
        .get(central.admin_url("/metrics"))
        .send()
        .await
        .expect("the operator listener answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("Kari") && !page.contains("Nordmann"),
        "names leak:\n{page}"
    );
    Scrape::parse(page.lines().map(|line| Ok(line.to_owned()))).expect("the page parses")
}

/// The value of the one sample named `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter(|sample| labels.iter().all(|(k, v)| sample.labels.get(k) == Some(v)))
        .collect();
    assert!(matching.len() <= 1, "{metric} {labels:?}: {matching:?}");
    matching.first().map(|sample| match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
        Value::Summary(_) => panic!("{metric} is a summary"),
    })
}

/// A counter's value; a label set never counted is absent from the page, which is 0.
fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, metric, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn the_metrics_page_counts_exactly_what_devices_sent() {
    let central = CentralOptions::default().start().await;
    let device = register(&central).await;

    let before = scrape(&central).await;
    assert_eq!(
        value(&before, "skolebro_devices", &[("state", "never_heard")]),
        Some(1.0)
    );
    assert_eq!(
        value(&before, "skolebro_devices", &[("state", "holding")]),
        Some(0.0)
    );

    let batch = device.first_batch(&central);
    assert_eq!(
        device.post_batch(&central, batch.clone()).await,
        StatusCode::OK
    );
    assert_eq!(device.post_batch(&central, batch).await, StatusCode::OK);
    assert_eq!(
        device
            .post_batch(&central, b"not an envelope".to_vec())
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(device.heartbeat(&central).await, StatusCode::OK);
    broken_handshake(&central).await;
    closed_window(&central).await;

    let after = scrape(&central).await;
    let site = [("site", SITE)];
    let this_device = [("site", SITE), ("device", DEVICE)];
    assert_eq!(
        counter(&after, "skolebro_batches_applied_total", &site),
        1.0
    );
    assert_eq!(
        counter(&after, "skolebro_batches_replayed_total", &site),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "skolebro_batches_refused_total",
            &[("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "skolebro_batch_apply_duration_seconds", &[]),
        Some(1.0)
    );
    assert_eq!(counter(&after, "skolebro_heartbeats_total", &site), 1.0);
    assert_eq!(
        counter(
            &after,
            "skolebro_update_reports_total",
            &[("state", "rolled_back")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "skolebro_tls_handshake_failures_total",
            &[("reason", "error")]
        ),
        1.0
    );
    // One mutual-TLS client, kept alive: at least its one handshake, and nothing failed twice.
    assert!(counter(&after, "skolebro_tls_handshakes_total", &[]) >= 1.0);

    assert_eq!(
        value(&after, "skolebro_devices", &[("state", "holding")]),
        Some(1.0)
    );
    assert_eq!(
        value(&after, "skolebro_devices", &[("state", "never_heard")]),
        Some(0.0)
    );
    let heard = value(
        &after,
        "skolebro_device_last_heartbeat_timestamp_seconds",
        &this_device,
    )
    .expect("the device's last heartbeat");
    let now = now_ms() as f64 / 1000.0;
    assert!(
        (now - 60.0..=now + 1.0).contains(&heard),
        "{heard} vs {now}"
    );
    assert!(value(
        &after,
        "skolebro_device_last_batch_timestamp_seconds",
        &this_device
    )
    .is_some());
    assert_eq!(
        value(&after, "skolebro_device_outbox_depth", &this_device),
        Some(2.0)
    );
    assert_eq!(
        value(&after, "skolebro_device_outbox_bytes", &this_device),
        Some(4096.0)
    );
    assert_eq!(
        value(
            &after,
            "skolebro_device_outbox_oldest_age_seconds",
            &this_device
        ),
        Some(90.0)
    );
    assert_eq!(
        value(&after, "skolebro_device_held_delta", &this_device),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "skolebro_device_held_delta_since_timestamp_seconds",
            &this_device
        ),
        Some(1_780_000_000.5)
    );
    assert_eq!(
        value(
            &after,
            "skolebro_device_deviations",
            &[("device", DEVICE), ("code", "invalid_national_id")]
        ),
        Some(3.0)
    );
    assert_eq!(value(&after, "skolebro_site_window_late", &site), Some(1.0));
    central.stop().await;
}

#[tokio::test]
async fn health_and_readiness_answer_and_the_host_guard_still_holds() {
    let central = CentralOptions::default().start().await;
    for path in ["/healthz", "/readyz"] {
        let response = central
            .admin
            .get(central.admin_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let rebound = central
        .admin
        .get(central.admin_url("/metrics"))
        .header("host", "metrics.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::BAD_REQUEST);
    central.stop().await;
}

/// Every metric the alerting rules and the dashboard in `packaging/` name must be one central
/// exports, so a renamed metric cannot silently disable an alert or a panel.
#[tokio::test]
async fn the_alert_rules_and_dashboard_name_only_metrics_central_exports() {
    let central = CentralOptions::default().start().await;
    let device = register(&central).await;
    // One of each event, so every family has a sample (an empty family prints nothing).
    let batch = device.first_batch(&central);
    assert_eq!(
        device.post_batch(&central, batch.clone()).await,
        StatusCode::OK
    );
    assert_eq!(device.post_batch(&central, batch).await, StatusCode::OK);
    assert_eq!(
        device.post_batch(&central, Vec::new()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(device.heartbeat(&central).await, StatusCode::OK);
    let refused = device
        .client
        .post(central.device_url("/v1/heartbeat"))
        .body("{")
        .send()
        .await
        .expect("central answers");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    broken_handshake(&central).await;
    closed_window(&central).await;
    let exported: Vec<String> = scrape(&central)
        .await
        .samples
        .into_iter()
        .map(|sample| sample.metric)
        .collect();
    central.stop().await;
    let packaging = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging");
    for file in ["prometheus-alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(packaging.join(file)).expect(file);
        let named = metric_names(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        for name in &named {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                exported
                    .iter()
                    .any(|metric| metric == name || metric == base),
                "{file} names {name}, which central does not export"
            );
        }
    }
}

/// The `skolebro_…` words in a file.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("skolebro_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        if !names.contains(&word) {
            names.push(word);
        }
    }
    names
}

#[tokio::test]
async fn the_metrics_page_reports_what_retention_runs_purged_and_when() {
    use skolebro_central::retention::{self, RetentionPolicy};
    use skolebro_central::store::{AuditEntry, Timestamp};

    let central = CentralOptions::default().start().await;
    let before = scrape(&central).await;
    assert_eq!(
        value(
            &before,
            "skolebro_retention_last_run_timestamp_seconds",
            &[]
        ),
        None,
        "no run yet"
    );
    central
        .store
        .append_audit(&AuditEntry {
            at: Timestamp(1_000),
            actor: "ops".to_owned(),
            action: "revoke_device".to_owned(),
            target: "pi-1".to_owned(),
            detail: "lost".to_owned(),
        })
        .await
        .expect("an old audit line");
    let now = Timestamp(1_780_000_000_500);
    let run = retention::run(
        central.store.as_ref(),
        &RetentionPolicy::default(),
        &move || now,
    )
    .await
    .expect("the run finishes");
    assert_eq!(run.audit, 1);
    let after = scrape(&central).await;
    assert_eq!(
        counter(
            &after,
            "skolebro_retention_purged_rows_total",
            &[("kind", "audit")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "skolebro_retention_purged_rows_total",
            &[("kind", "versions")]
        ),
        0.0
    );
    assert_eq!(counter(&after, "skolebro_retention_runs_total", &[]), 1.0);
    assert_eq!(
        value(&after, "skolebro_retention_last_run_timestamp_seconds", &[]),
        Some(1_780_000_000.5)
    );
    central.stop().await;
}
