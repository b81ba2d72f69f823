//! The uplink: the last stage on the Pi. It reads unacknowledged envelopes from the outbox in
//! seq order and posts them to central's `POST /v1/batches` over mutual TLS (docs/API.md);
//! central's `{"ack": n}` moves the outbox's ack pointer, which frees room for the enqueue
//! stage. A separate heartbeat loop reports the agent's state and carries central's commands
//! (resync, release or reject a held delta) back, and the update state both ways: the
//! agent's target and its oldest unheard update report out, an offered release back to
//! [`crate::update`], which fetches the artifact over the same client.
//!
//! Failures never drop data: a batch stays in the outbox until central acknowledges it.
//! Unreachable or busy central (connection errors, 5xx, `503` with `Retry-After`) is retried
//! with exponential backoff and full jitter up to a cap, for as long as it takes; a refusal
//! (4xx other than 409) is logged, shown as the `error` state and retried at the cap, since
//! only an operator can fix it. A `409 gap` means central's chain head is behind ours: the
//! agent drops its unacknowledged batches, continues from central's head and sends a full
//! snapshot of the newest export ([`crate::daemon`] holds it in memory). A `403
//! device_revoked` means central revoked this device: it is shown as such until a new config
//! stick enrolls the device again.
//!
//! The same client renews the device's certificate (`POST /v1/renew`); the renewed client
//! replaces the old one for every clone of [`Central`] at once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use skolebro_protocol::api::{BatchAck, BatchGap, RenewRequest};
use skolebro_protocol::envelope::{ChainHead, Seq};
use tokio::sync::{mpsc, watch};

use crate::daemon::{with_core, Shared};
use crate::identity::hex32;

/// Exponential backoff with full jitter (AWS' "full jitter": a uniformly random wait between
/// zero and the current ceiling), so a fleet of Pis that lost central at the same moment does
/// not come back in lockstep. The ceiling doubles per failure up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The current ceiling: `initial * 2^failures`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before the next attempt after one more failure. `random` is any uniformly
    /// distributed u64 (tests pass fixed values). A server's `Retry-After` is honoured as a
    /// lower bound (central knows when it will be back), still capped at `max` so a bogus
    /// header cannot park the agent for days.
    pub fn next_delay(&mut self, retry_after: Option<Duration>, random: u64) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(random % ceiling_ms.saturating_add(1));
        match retry_after {
            Some(after) => after.min(self.max).max(jittered),
            None => jittered,
        }
    }

    /// A success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A random u64 for jitter (0 if the OS has no randomness: the wait is then simply short).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// What central answered to one batch, reduced to what the uplink acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Applied (or already applied): everything up to `seq` can leave the outbox.
    Ack { seq: u64, applied: bool },
    /// The chain has a hole; continue from central's head with a snapshot.
    Gap { head: ChainHead },
    /// Central refused the batch; retrying as is will not help until someone acts.
    Refused { status: u16, code: String },
    /// Central revoked this device (`403 device_revoked`).
    Revoked,
    /// Central is there but cannot apply now.
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer at all (DNS, connection, TLS, timeout).
    Unreachable(String),
}

pub use skolebro_protocol::api::{Command, Heartbeat, HeartbeatAnswer, Renewed};

/// Why a heartbeat got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("central unreachable: {0}")]
    Unreachable(String),
    #[error("central answered {status} {code}")]
    Status { status: u16, code: String },
    #[error("central revoked this device")]
    Revoked,
    #[error("central's answer is not the expected JSON: {0}")]
    Body(String),
}

/// Central's device endpoints over one mutual-TLS client. Clones share the client, so a
/// renewal ([`Central::replace_client`]) reaches every loop that holds one.
#[derive(Debug, Clone)]
pub struct Central {
    client: Arc<RwLock<reqwest::Client>>,
    url: String,
}

impl Central {
    /// `url` is the base URL (`https://host:8443`), `client` one built by
    /// `skolebro_provisioning::tls::client_builder` with the device's certificate.
    pub fn new(client: reqwest::Client, url: &str) -> Central {
        Central {
            client: Arc::new(RwLock::new(client)),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    /// Swaps in a client with a renewed certificate; requests in flight finish on the old
    /// one.
    pub fn replace_client(&self, client: reqwest::Client) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks central for a new certificate for the key in `csr_pem` (same device and site).
    pub async fn renew(&self, csr_pem: &str) -> Result<Renewed, UplinkError> {
        let response = self
            .client()
            .post(format!("{}/v1/renew", self.url))
            .json(&RenewRequest {
                csr_pem: csr_pem.to_owned(),
            })
            .send()
            .await
            .map_err(|e| UplinkError::Unreachable(error_chain(&e)))?;
        let response = refusal(response).await?;
        response
            .json()
            .await
            .map_err(|e| UplinkError::Body(e.to_string()))
    }

    /// Posts one envelope and classifies the answer.
    pub async fn post_batch(&self, envelope: Vec<u8>) -> Answer {
        let response = self
            .client()
            .post(format!("{}/v1/batches", self.url))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(envelope)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Answer::Unreachable(error_chain(&error)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: serde_json::Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            Err(error) if status.is_success() => return Answer::Unreachable(error_chain(&error)),
            Err(_) => serde_json::Value::Null,
        };
        classify(status, retry_after, &body)
    }

    /// `GET` of a release artifact (`path` as central named it), from byte `from` on.
    pub async fn artifact(&self, path: &str, from: u64) -> Result<reqwest::Response, UplinkError> {
        let mut request = self.client().get(format!("{}{}", self.url, path));
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        request
            .send()
            .await
            .map_err(|e| UplinkError::Unreachable(error_chain(&e)))
    }

    /// Posts a heartbeat and returns central's commands and offered release. Unknown
    /// command types are logged and skipped, so central can add commands before every
    /// agent knows them; an offer that does not parse is logged and ignored.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatAnswer, UplinkError> {
        let response = self
            .client()
            .post(format!("{}/v1/heartbeat", self.url))
            .json(heartbeat)
            .send()
            .await
            .map_err(|e| UplinkError::Unreachable(error_chain(&e)))?;
        let response = refusal(response).await?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| UplinkError::Body(e.to_string()))?;
        let commands = body
            .get("commands")
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default();
        let release = match body.get("release") {
            None | Some(serde_json::Value::Null) => None,
            Some(offer) => match serde_json::from_value(offer.clone()) {
                Ok(offer) => Some(offer),
                Err(error) => {
                    tracing::warn!(%error, "ignoring a release offer this agent cannot read");
                    None
                }
            },
        };
        let commands = commands
            .into_iter()
            .filter_map(|c| match serde_json::from_value::<Command>(c.clone()) {
                Ok(command) => Some(command),
                Err(_) => {
                    let kind = c.get("type").and_then(|t| t.as_str()).unwrap_or("?");
                    tracing::warn!(
                        command = kind,
                        "ignoring a command this agent does not know"
                    );
                    None
                }
            })
            .collect();
        Ok(HeartbeatAnswer { commands, release })
    }
}

/// Passes a successful response through; turns any other into an error, reading the
/// `{"error": code}` body (`device_revoked` becomes [`UplinkError::Revoked`]).
async fn refusal(response: reqwest::Response) -> Result<reqwest::Response, UplinkError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: serde_json::Value = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let code = body
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_owned();
    if status == StatusCode::FORBIDDEN && code == "device_revoked" {
        return Err(UplinkError::Revoked);
    }
    Err(UplinkError::Status {
        status: status.as_u16(),
        code,
    })
}

/// Turns central's status and JSON body into an [`Answer`] (docs/API.md's table).
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &serde_json::Value,
) -> Answer {
    let code = body
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_owned();
    if status.is_success() {
        return match BatchAck::deserialize(body) {
            Ok(BatchAck { ack, applied }) => Answer::Ack { seq: ack, applied },
            Err(_) => Answer::Refused {
                status: status.as_u16(),
                code: "no ack in answer".into(),
            },
        };
    }
    if status == StatusCode::CONFLICT {
        let head = BatchGap::deserialize(body)
            .ok()
            .and_then(|gap| Some((gap.expected_seq, hex32(&gap.prev)?)));
        return match head {
            Some((seq, prev)) if seq > 0 => Answer::Gap {
                head: ChainHead {
                    next_seq: Seq(seq),
                    prev,
                },
            },
            _ => Answer::Refused {
                status: 409,
                code: if code.is_empty() {
                    "conflict without a chain head".into()
                } else {
                    code
                },
            },
        };
    }
    if status == StatusCode::FORBIDDEN && code == "device_revoked" {
        return Answer::Revoked;
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Answer::Unavailable {
            status: status.as_u16(),
            retry_after,
        };
    }
    Answer::Refused {
        status: status.as_u16(),
        code,
    }
}

/// The error and its sources in one line (reqwest's top-level message alone says little).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Sleeps `delay`, or less if shutdown is asked for. Returns false on shutdown.
async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// Pushes the outbox to central until shutdown: one batch at a time, in seq order, always
/// the oldest unacknowledged one (so a restart simply resumes). `wake` is poked whenever a
/// batch was enqueued.
pub async fn push_loop(
    core: Shared,
    central: Central,
    mut backoff: Backoff,
    mut wake: mpsc::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The head we last restarted at, to notice central repeating the same gap.
    let mut last_gap: Option<ChainHead> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = with_core(&core, |c| c.next_batch()).await;
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                tokio::select! {
                    _ = wake.recv() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            Err(error) => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(%error, ?delay, "cannot read the next batch from the outbox");
                if !pause(delay, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let seq = batch.seq;
        let size = batch.payload.len();
        // The post is not raced against shutdown: a request in flight finishes (it is
        // bounded by the client's timeout) so the ack is not lost with the process.
        let answer = central.post_batch(batch.payload).await;
        match answer {
            Answer::Ack {
                seq: acked,
                applied,
            } => {
                tracing::info!(seq, acked, applied, bytes = size, "central acknowledged");
                backoff.reset();
                last_gap = None;
                let result = with_core(&core, move |c| c.acked(acked)).await;
                if let Err(error) = result {
                    tracing::error!(%error, "recording the ack failed");
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
            Answer::Gap { head } => {
                tracing::warn!(
                    seq,
                    expected = head.next_seq.0,
                    "central reports a gap: restarting the chain at central's head with a snapshot"
                );
                if last_gap == Some(head) {
                    // The same gap right after restarting there: do not spin.
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
                last_gap = Some(head);
                let result = with_core(&core, move |c| c.gap(head)).await;
                if let Err(error) = result {
                    tracing::error!(%error, "restarting the chain failed");
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
            Answer::Refused { status, code } => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(seq, status, code = %code, ?delay, "central refused the batch; keeping it");
                let message = format!("central refused batch {seq}: {status} {code}");
                with_core(&core, move |c| c.uplink_refused(message)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            Answer::Revoked => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(
                    seq,
                    ?delay,
                    "central revoked this device; a new config stick enrolls it again"
                );
                with_core(&core, |c| c.revoked()).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            Answer::Unavailable {
                status,
                retry_after,
            } => {
                let delay = backoff.next_delay(retry_after, random_u64());
                tracing::warn!(
                    seq,
                    status,
                    ?retry_after,
                    ?delay,
                    "central unavailable; retrying"
                );
                let message = format!("central answered {status}");
                with_core(&core, move |c| c.unreachable(message)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            Answer::Unreachable(error) => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::warn!(seq, %error, ?delay, "central unreachable; retrying");
                with_core(&core, move |c| c.unreachable(error)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Reports the agent's state every `every`, applies central's commands and hands the update
/// part of the answer to `updater`.
pub async fn heartbeat_loop(
    core: Shared,
    central: Central,
    every: Duration,
    updater: Arc<crate::update::Updater>,
    wake_uplink: mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut heartbeat = with_core(&core, |c| c.heartbeat()).await;
        heartbeat.target = Some(updater.target());
        heartbeat.update = updater.report();
        match central.heartbeat(&heartbeat).await {
            Ok(answer) => {
                updater.answered(heartbeat.update.as_ref(), answer.release, &central);
                for command in answer.commands {
                    tracing::info!(?command, "command from central");
                    let result = with_core(&core, move |c| c.command(command)).await;
                    match result {
                        Ok(()) => {
                            let _ = wake_uplink.try_send(());
                        }
                        Err(error) => tracing::error!(%error, "applying the command failed"),
                    }
                }
            }
            Err(UplinkError::Revoked) => {
                tracing::error!("central revoked this device; a new config stick enrolls it again");
                updater.heartbeat_failed("this device is revoked".into());
                with_core(&core, |c| c.revoked()).await;
            }
            Err(error) => {
                tracing::debug!(%error, "heartbeat not delivered");
                updater.heartbeat_failed(error.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_doubling_ceiling() {
        let mut backoff = Backoff::new(ms(500), ms(300_000));
        for (failure, ceiling) in [500u64, 1000, 2000, 4000].into_iter().enumerate() {
            assert_eq!(backoff.ceiling(), ms(ceiling), "after {failure} failures");
            let mut probe = backoff.clone();
            assert_eq!(probe.next_delay(None, 0), ms(0));
            let mut probe = backoff.clone();
            assert_eq!(
                probe.next_delay(None, u64::MAX),
                ms(u64::MAX % (ceiling + 1))
            );
            let mut probe = backoff.clone();
            assert_eq!(probe.next_delay(None, ceiling), ms(ceiling));
            for random in [1, 77, 12345, u64::MAX / 3] {
                let mut probe = backoff.clone();
                assert!(probe.next_delay(None, random) <= ms(ceiling));
            }
            backoff.next_delay(None, 0);
        }
    }

    #[test]
    fn the_ceiling_stops_at_the_cap_however_long_central_is_down() {
        let mut backoff = Backoff::new(ms(500), ms(300_000));
        for _ in 0..10_000 {
            assert!(backoff.next_delay(None, random_u64()) <= ms(300_000));
        }
        assert_eq!(backoff.ceiling(), ms(300_000));
        backoff.reset();
        assert_eq!(backoff.ceiling(), ms(500));
    }

    #[test]
    fn retry_after_is_a_lower_bound_but_never_beyond_the_cap() {
        let mut backoff = Backoff::new(ms(500), ms(60_000));
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(30)), 0),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(3600)), 0),
            ms(60_000)
        );
        // A jittered wait longer than Retry-After is kept.
        let mut backoff = Backoff::new(ms(10_000), ms(60_000));
        assert_eq!(backoff.next_delay(Some(ms(1)), 9_000), ms(9_000));
    }

    #[test]
    fn answers_are_classified_as_the_api_says() {
        let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            classify(
                StatusCode::OK,
                None,
                &json(r#"{"ack": 7, "applied": false}"#)
            ),
            Answer::Ack {
                seq: 7,
                applied: false
            }
        );
        let prev = "ab".repeat(32);
        assert_eq!(
            classify(
                StatusCode::CONFLICT,
                None,
                &json(&format!(
                    r#"{{"error": "gap", "expected_seq": 3, "prev": "{prev}"}}"#
                ))
            ),
            Answer::Gap {
                head: ChainHead {
                    next_seq: Seq(3),
                    prev: [0xab; 32]
                }
            }
        );
        assert!(matches!(
            classify(StatusCode::CONFLICT, None, &json(r#"{"error": "gap"}"#)),
            Answer::Refused { status: 409, .. }
        ));
        assert_eq!(
            classify(
                StatusCode::BAD_REQUEST,
                None,
                &json(r#"{"error": "bad_signature"}"#)
            ),
            Answer::Refused {
                status: 400,
                code: "bad_signature".into()
            }
        );
        assert_eq!(
            classify(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Duration::from_secs(5)),
                &serde_json::Value::Null
            ),
            Answer::Unavailable {
                status: 503,
                retry_after: Some(Duration::from_secs(5))
            }
        );
    }

    #[test]
    fn commands_parse_from_the_api_shapes() {
        let parsed: Vec<Command> = serde_json::from_str(
            r#"[{"type": "resync"}, {"type": "release", "held_id": "h1"}, {"type": "reject", "held_id": "h2"}]"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                Command::Resync,
                Command::Release {
                    held_id: "h1".into()
                },
                Command::Reject {
                    held_id: "h2".into()
                }
            ]
        );
    }
}

/// The uplink against a small mutual-TLS server on loopback (rustls on std threads, built
/// from `skolebro_provisioning`'s dev PKI) that scripts central's answers: a 503 with
/// `Retry-After`, an ack, a gap, and the ack of the snapshot sent after the gap.
#[cfg(test)]
mod tls_tests {
    use std::io::Write as _;
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use skolebro_protocol::envelope::{
        DeviceId, DeviceSigningKey, Envelope, Kind, SealingPrivateKey, SiteId,
    };
    use skolebro_protocol::SiteSecret;
    use skolebro_provisioning::pki::{DevPki, Validity};
    use skolebro_provisioning::tls;
    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::config::AfterIngest;
    use crate::daemon::{Core, RunState};
    use crate::enqueue::tests::export;
    use crate::enqueue::{Enqueuer, Identity};
    use crate::outbox::OutboxConfig;
    use crate::safety::SafetyPolicy;

    /// What the scripted central saw: (seq, kind, status answered).
    type Seen = Arc<Mutex<Vec<(u64, Kind, u16)>>>;

    fn serve(config: Arc<rustls::ServerConfig>) -> (u16, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut central_head: Option<ChainHead> = None;
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let Some(body) = read_request(&mut stream) else {
                    continue;
                };
                let Ok(envelope) = Envelope::from_bytes(&body, 1 << 24) else {
                    continue;
                };
                let header = envelope.header().clone();
                let mut log = log.lock().unwrap();
                let first = log.is_empty();
                let (status, extra, answer) = match (header.seq.0, header.kind) {
                    _ if first => (503, "retry-after: 1\r\n", String::new()),
                    (1, _) => {
                        central_head = Some(envelope.next_head());
                        (200, "", r#"{"ack": 1, "applied": true}"#.to_owned())
                    }
                    (2, Kind::Delta) => {
                        let head = central_head.unwrap_or(ChainHead::genesis());
                        (
                            409,
                            "",
                            format!(
                                r#"{{"error": "gap", "expected_seq": {}, "prev": "{}"}}"#,
                                head.next_seq.0,
                                hex::encode(head.prev)
                            ),
                        )
                    }
                    (2, Kind::Snapshot) if Some(header.prev) == central_head.map(|h| h.prev) => {
                        (200, "", r#"{"ack": 2, "applied": true}"#.to_owned())
                    }
                    _ => (400, "", r#"{"error": "broken_chain"}"#.to_owned()),
                };
                log.push((header.seq.0, header.kind, status));
                drop(log);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes());
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        (port, seen)
    }

    fn read_request(stream: &mut impl std::io::Read) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        while data.len() < head_end + len {
            let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&chunk[..n]);
        }
        Some(data[head_end..head_end + len].to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_uplink_retries_a_busy_central_pushes_in_order_and_answers_a_gap_with_a_snapshot() {
        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).unwrap();
        let device = DeviceId::new("pi-46505-1").unwrap();
        let site = SiteId::new("46505").unwrap();
        let creds = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .unwrap();
        let server = tls::server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            pki.device_ca.cert_pem(),
        )
        .unwrap();
        let (port, seen) = serve(server);
        let client = tls::client_builder(
            &creds.cert_pem,
            &creds.key_pem,
            pki.central_ca.cert_pem(),
            None,
        )
        .unwrap()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
        let central = Central::new(client, &format!("https://127.0.0.1:{port}/"));

        let dir = tempfile::tempdir().unwrap();
        let identity = Identity {
            device,
            site,
            signing_key: DeviceSigningKey::from_bytes([7; 32]),
            central_key: SealingPrivateKey::from_bytes([9; 32]).public_key(),
            site_secret: SiteSecret::from_bytes([3; 32]),
        };
        let (enqueuer, _) = Enqueuer::open(
            dir.path(),
            identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        let (status_tx, status_rx) = watch::channel(Default::default());
        let mut core = Core::new(
            enqueuer,
            dir.path().to_owned(),
            AfterIngest::Keep,
            status_tx,
        );
        for n in 30..33 {
            core.ingest(Path::new("elever.csv"), export(0..n, "1A"), None)
                .unwrap();
        }
        assert_eq!(core.enqueuer().outbox().status().depth, 3);
        let core: Shared = Arc::new(Mutex::new(core));

        let (_wake_tx, wake_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = watch::channel(false);
        let backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
        let pusher = tokio::spawn(push_loop(core.clone(), central, backoff, wake_rx, stop_rx));

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = {
                let core = core.lock().unwrap();
                let outbox = core.enqueuer().outbox().status();
                outbox.ack_seq == 2 && outbox.depth == 0
            };
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seen: {:?}",
                seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        pusher.await.unwrap();

        assert_eq!(
            *seen.lock().unwrap(),
            [
                (1, Kind::Delta, 503),
                (1, Kind::Delta, 200),
                (2, Kind::Delta, 409),
                (2, Kind::Snapshot, 200),
            ]
        );
        let core = core.lock().unwrap();
        let checkpoint = core.enqueuer().checkpoint();
        assert_eq!(checkpoint.head.next_seq.0, 3);
        assert!(!checkpoint.needs_snapshot);
        let status = status_rx.borrow().clone();
        assert_eq!(status.state, RunState::Healthy);
        assert_eq!(status.last_ack_seq, Some(2));
        assert_eq!(status.unreachable_since_unix_ms, None);
    }
}
