//! The uplink: the device's HTTP client to central over mutual TLS (docs/API.md), below the
//! daemon's push and heartbeat loops that drive it. It posts one envelope to
//! `POST /v1/batches` and classifies central's answer ([`BatchAnswer`]: ack, gap, refusal,
//! revocation, busy, unreachable), posts heartbeats and reads back central's commands and
//! offered release, fetches release artifacts for the updater, and computes the retry delays
//! ([`Backoff`]: exponential with full jitter up to a cap). It keeps no state of its own
//! beyond the client: what an answer means for the outbox is the caller's business.
//!
//! The same client renews the device's certificate (`POST /v1/renew`); the renewed client
//! replaces the old one for every clone of [`Central`] at once.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use skolebro_protocol::api::{BatchAck, BatchGap, ErrorBody, RenewRequest};
use skolebro_protocol::envelope::{ChainHead, Seq};

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
pub enum BatchAnswer {
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

use skolebro_protocol::api::{Command, Heartbeat, HeartbeatAnswer, Renewed};

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
        *self.client.write() = client;
    }

    fn client(&self) -> reqwest::Client {
        self.client.read().clone()
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
    pub async fn post_batch(&self, envelope: Vec<u8>) -> BatchAnswer {
        let response = self
            .client()
            .post(format!("{}/v1/batches", self.url))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(envelope)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return BatchAnswer::Unreachable(error_chain(&error)),
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
            Err(error) if status.is_success() => {
                return BatchAnswer::Unreachable(error_chain(&error))
            }
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

    /// Posts a heartbeat and returns central's commands, offered release and signed
    /// statement (checked by the caller, [`crate::freshness`]). Unknown
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
        let statement = body
            .get("statement")
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        // A rotation that is not a string is skipped like an unknown command: the ones that
        // are still get checked, and a device that misses one refuses the later ones.
        let key_rotations = body
            .get("key_rotations")
            .and_then(|r| r.as_array())
            .map(|all| {
                all.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(HeartbeatAnswer {
            commands,
            release,
            statement,
            key_rotations,
        })
    }
}

/// Passes a successful response through; turns any other into an error, reading the
/// `{"error": code}` body (`device_revoked` becomes [`UplinkError::Revoked`]).
async fn refusal(response: reqwest::Response) -> Result<reqwest::Response, UplinkError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok())
        .unwrap_or_default()
        .error;
    if status == StatusCode::FORBIDDEN && code == "device_revoked" {
        return Err(UplinkError::Revoked);
    }
    Err(UplinkError::Status {
        status: status.as_u16(),
        code,
    })
}

/// Turns central's status and JSON body into a [`BatchAnswer`] (docs/API.md's table).
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &serde_json::Value,
) -> BatchAnswer {
    let code = ErrorBody::deserialize(body).unwrap_or_default().error;
    if status.is_success() {
        return match BatchAck::deserialize(body) {
            Ok(BatchAck { ack, applied }) => BatchAnswer::Ack { seq: ack, applied },
            Err(_) => BatchAnswer::Refused {
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
            Some((seq, prev)) if seq > 0 => BatchAnswer::Gap {
                head: ChainHead {
                    next_seq: Seq(seq),
                    prev,
                },
            },
            _ => BatchAnswer::Refused {
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
        return BatchAnswer::Revoked;
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return BatchAnswer::Unavailable {
            status: status.as_u16(),
            retry_after,
        };
    }
    BatchAnswer::Refused {
        status: status.as_u16(),
        code,
    }
}

/// The error and its sources in one line (reqwest's top-level message alone says little).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
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
            BatchAnswer::Ack {
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
            BatchAnswer::Gap {
                head: ChainHead {
                    next_seq: Seq(3),
                    prev: [0xab; 32]
                }
            }
        );
        assert!(matches!(
            classify(StatusCode::CONFLICT, None, &json(r#"{"error": "gap"}"#)),
            BatchAnswer::Refused { status: 409, .. }
        ));
        assert_eq!(
            classify(
                StatusCode::BAD_REQUEST,
                None,
                &json(r#"{"error": "bad_signature"}"#)
            ),
            BatchAnswer::Refused {
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
            BatchAnswer::Unavailable {
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
