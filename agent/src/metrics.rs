//! The agent's optional local Prometheus listener (`metrics_listen` in `agent.toml`): what
//! `GET /metrics` answers, for operations that scrape their Pis directly rather than only
//! watch central's view of them.
//!
//! Everything is read from the status the daemon already publishes ([`AgentStatus`], the
//! same that `status.json` and the heartbeat carry), at scrape time, into a fresh registry:
//! the listener adds no state of its own and cannot disagree with `skolebro-agent status`.
//! It sits beside the data flow and only reads: the daemon starts it with the status feed
//! and stops it with the rest. Labels carry fixed codes and states only, never a national id
//! or a name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::outbox::unix_ms_now;
use crate::status::{AgentStatus, RunState};

/// The `Content-Type` of a `/metrics` answer (Prometheus text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every [`RunState`] by its label, so a scrape shows a 0 for the states the agent is not in
/// (Prometheus alerts on `== 1` need the series to exist).
const STATES: [(RunState, &str); 9] = [
    (RunState::Starting, "starting"),
    (RunState::NotProvisioned, "not_provisioned"),
    (RunState::Enrolling, "enrolling"),
    (RunState::Healthy, "healthy"),
    (RunState::Holding, "holding"),
    (RunState::CentralUnreachable, "central_unreachable"),
    (RunState::Error, "error"),
    (RunState::Revoked, "revoked"),
    (RunState::Stopped, "stopped"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviationLabels {
    code: String,
    severity: String,
}

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr} (metrics_listen): {source}")]
pub struct MetricsError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds `addr` and serves `GET /metrics` from `status` until `stop` turns true. Binding
/// happens before this returns, so a port in use stops the daemon at start with a message
/// naming the setting, rather than leaving operations with a silent gap in their graphs.
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<AgentStatus>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError { addr, source })?;
    tracing::info!(%addr, "serving metrics");
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "metrics listener: cannot accept");
                        continue;
                    }
                },
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let status = status.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = answer(&request, &status.borrow(), unix_ms_now());
                    async move { Ok::<_, Infallible>(answer) }
                });
                // A scraper that hangs up early is no concern of the agent's.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

/// The answer to one request: the metrics for `GET /metrics`, 404 or 405 otherwise.
fn answer(request: &Request<Incoming>, status: &AgentStatus, now_ms: u64) -> Response<Full<Bytes>> {
    let (code, content_type, body) = if request.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics is served here\n".to_owned(),
        )
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_owned(),
        )
    } else {
        (StatusCode::OK, CONTENT_TYPE, render(status, now_ms))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// The Prometheus text of `status` as it stands at `now_ms`.
pub fn render(status: &AgentStatus, now_ms: u64) -> String {
    let registry = registry(status, now_ms);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

fn registry(status: &AgentStatus, now_ms: u64) -> Registry {
    let mut registry = Registry::with_prefix("skolebro_agent");
    let info = Family::<VersionLabel, Gauge>::default();
    info.get_or_create(&VersionLabel {
        version: status.version.clone(),
    })
    .set(1);
    registry.register("info", "The running release (always 1)", info);

    let state = Family::<StateLabel, Gauge>::default();
    for (run_state, label) in STATES {
        state
            .get_or_create(&StateLabel {
                state: label.to_owned(),
            })
            .set(i64::from(status.state == run_state));
    }
    registry.register("state", "1 for the state the agent is in", state);

    let count = |help: &'static str, name: &'static str, value: u64, registry: &mut Registry| {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, gauge);
    };
    count(
        "Envelopes waiting in the outbox for central",
        "outbox_depth",
        status.outbox_depth,
        &mut registry,
    );
    count(
        "Bytes the outbox takes on disk",
        "outbox_bytes",
        status.outbox_bytes,
        &mut registry,
    );
    count(
        "Age of the oldest envelope central has not acknowledged (0 when none waits)",
        "outbox_oldest_age_seconds",
        status
            .oldest_unacked_unix_ms
            .map_or(0, |at| now_ms.saturating_sub(at) / 1000),
        &mut registry,
    );
    count(
        "1 when the safety filter holds a delta for an operator's review",
        "held_delta",
        u64::from(status.held.is_some()),
        &mut registry,
    );
    count(
        "1 when the export source (the SMB share) cannot be reached or holds a refused export",
        "source_problem",
        u64::from(status.source_problem.is_some()),
        &mut registry,
    );
    count(
        "1 when an offered release waits for free disk space",
        "update_waiting_for_space",
        u64::from(status.update_waiting.is_some()),
        &mut registry,
    );
    if let Some(students) = status.last_export_students {
        count(
            "Students in the newest export taken in",
            "export_students",
            students,
            &mut registry,
        );
    }

    let seconds =
        |help: &'static str, name: &'static str, ms: Option<u64>, registry: &mut Registry| {
            if let Some(ms) = ms {
                let gauge = Gauge::<f64, AtomicU64>::default();
                gauge.set(ms as f64 / 1000.0);
                registry.register(name, help, gauge);
            }
        };
    seconds(
        "When the newest export was read (Unix seconds)",
        "last_export_timestamp_seconds",
        status.last_export_unix_ms,
        &mut registry,
    );
    seconds(
        "How long reading and validating the newest export took",
        "export_read_seconds",
        status.last_export_read_ms,
        &mut registry,
    );
    seconds(
        "When central last acknowledged a batch (Unix seconds)",
        "last_ack_timestamp_seconds",
        status.last_ack_unix_ms,
        &mut registry,
    );
    seconds(
        "Since when central has been unreachable (Unix seconds; absent while it answers)",
        "central_unreachable_since_timestamp_seconds",
        status.unreachable_since_unix_ms,
        &mut registry,
    );
    seconds(
        "Since when the held delta has been held (Unix seconds)",
        "held_delta_since_timestamp_seconds",
        status.held_since_unix_ms,
        &mut registry,
    );

    let deviations = Family::<DeviationLabels, Gauge>::default();
    for group in &status.deviation_groups {
        deviations
            .get_or_create(&DeviationLabels {
                code: group.code.clone(),
                severity: group.severity.clone(),
            })
            .set(i64::try_from(group.count).unwrap_or(i64::MAX));
    }
    registry.register(
        "deviations",
        "Deviations in the newest export, by code",
        deviations,
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::api::{DeviationGroup, HeldDelta};

    fn holding() -> AgentStatus {
        AgentStatus {
            state: RunState::Holding,
            version: "1.4.0".into(),
            outbox_depth: 3,
            outbox_bytes: 12_288,
            oldest_unacked_unix_ms: Some(1_000_000),
            last_export_unix_ms: Some(1_500_000),
            last_export_read_ms: Some(250),
            last_export_students: Some(300),
            held: Some(HeldDelta {
                id: "held-1".into(),
                reasons: vec!["281 of 300 students would be deleted".into()],
                causes: Vec::new(),
                upserts: Default::default(),
                deletes: Default::default(),
                held_since_unix_ms: Some(1_200_000),
            }),
            held_since_unix_ms: Some(1_200_000),
            deviation_groups: vec![DeviationGroup {
                code: "invalid_national_id".into(),
                severity: "error".into(),
                count: 2,
                rows: Vec::new(),
            }],
            ..AgentStatus::default()
        }
    }

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .map(|line| &line[series.len() + 1..])
    }

    #[test]
    fn a_holding_agent_shows_its_state_outbox_held_delta_and_deviations() {
        let text = render(&holding(), 1_090_000);
        assert_eq!(
            line(&text, "skolebro_agent_state{state=\"holding\"}"),
            Some("1")
        );
        assert_eq!(
            line(&text, "skolebro_agent_state{state=\"healthy\"}"),
            Some("0")
        );
        assert_eq!(line(&text, "skolebro_agent_outbox_depth"), Some("3"));
        assert_eq!(line(&text, "skolebro_agent_outbox_bytes"), Some("12288"));
        assert_eq!(
            line(&text, "skolebro_agent_outbox_oldest_age_seconds"),
            Some("90")
        );
        assert_eq!(line(&text, "skolebro_agent_held_delta"), Some("1"));
        assert_eq!(
            line(&text, "skolebro_agent_held_delta_since_timestamp_seconds"),
            Some("1200.0")
        );
        assert_eq!(
            line(&text, "skolebro_agent_export_read_seconds"),
            Some("0.25")
        );
        assert_eq!(
            line(
                &text,
                "skolebro_agent_deviations{code=\"invalid_national_id\",severity=\"error\"}"
            ),
            Some("2")
        );
        assert_eq!(
            line(&text, "skolebro_agent_info{version=\"1.4.0\"}"),
            Some("1")
        );
    }

    #[test]
    fn what_the_agent_does_not_know_yet_is_left_out_not_shown_as_zero_time() {
        let text = render(&AgentStatus::default(), 1_000);
        assert_eq!(
            line(&text, "skolebro_agent_state{state=\"starting\"}"),
            Some("1")
        );
        assert_eq!(
            line(&text, "skolebro_agent_outbox_oldest_age_seconds"),
            Some("0")
        );
        assert!(!text.contains("last_ack_timestamp_seconds "), "{text}");
        assert!(!text.contains("export_read_seconds "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
