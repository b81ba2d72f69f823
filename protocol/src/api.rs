//! The JSON bodies of central's device API (docs/API.md): what the agent's uplink posts and
//! reads, and what central's device handlers parse and answer. One definition for both ends,
//! so a field cannot drift between them; the envelope inside `POST /v1/batches` is binary and
//! lives in [`crate::envelope`].
//!
//! Readers are lenient where the other end may be newer: missing optional fields default and
//! unknown states parse as `Unknown`, so an older central still hands a newer agent its
//! commands and the other way round.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::drop_share::ShareStatus;
use crate::held::HeldReason;

/// Longest `held_id` accepted in a command; the agent's ids are far shorter.
pub const MAX_HELD_ID_LEN: usize = 128;

/// What the agent is doing, in the heartbeat's `state`. A state this build does not know,
/// from a newer agent, is kept as [`AgentState::Unknown`] rather than refusing the heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Exports flow; nothing waits for anyone.
    Healthy,
    /// The safety filter holds a delta until an operator releases or rejects it.
    Holding,
    /// Batches wait in the outbox because central does not answer.
    CentralUnreachable,
    /// The agent cannot go on without help (configuration, disk, identity).
    Error,
    /// A config stick is being enrolled.
    Enrolling,
    /// No identity yet: the agent waits for a config stick.
    NotProvisioned,
    /// A state a newer agent reports and this build does not know.
    #[serde(other)]
    Unknown,
}

/// Validation findings of the last export, by severity: what the fleet page shows at a glance
/// (the site page shows them by code, see [`DeviationGroup`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationCounts {
    /// Findings that kept a record out of the delta.
    #[serde(default)]
    pub errors: u64,
    /// Findings reported only.
    #[serde(default)]
    pub warnings: u64,
}

/// The deviations of one code and severity in the last export, with the first rows as the
/// agent's `check` prints them (national ids masked, no names), so a municipality operator
/// can tell the school what to fix in its SAS without a visit. Code and severity stay text so
/// central shows codes a newer agent adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationGroup {
    /// The agent's stable code, e.g. `invalid_national_id`.
    pub code: String,
    /// `error` (the record is kept out) or `warning`.
    pub severity: String,
    /// All of them, not only the rows carried.
    #[serde(default)]
    pub count: u64,
    /// The first few in file order (the agent sends at most ten).
    #[serde(default)]
    pub rows: Vec<DeviationRow>,
}

/// One reported deviation: where it is in the export and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationRow {
    /// The export file's name, without the device's folders.
    pub file: String,
    /// `line 12`, or `record 3` for formats without lines.
    pub at: String,
    /// What is wrong, with national ids masked and no names.
    pub detail: String,
}

/// A delta the agent's safety filter holds for review (DESIGN decision 5), described by
/// counts per kind so an operator can release or reject it. Never records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDelta {
    /// The agent's id for the held delta, named again by `release` / `reject`.
    pub id: String,
    /// Why it was held (thresholds exceeded), in English words.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The same reasons as structure, one for each of `reasons` in its order, so central
    /// can say them in the operator's language; left out by older agents, whose `reasons`
    /// central then shows as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<HeldReason>,
    /// Records it would add or change, by kind (`{"students": 12, …}`).
    #[serde(default)]
    pub upserts: BTreeMap<String, u64>,
    /// Records it would delete, by kind.
    #[serde(default)]
    pub deletes: BTreeMap<String, u64>,
    /// When the agent began to hold it (Unix ms), so central can tell how long a school's
    /// roster has waited for a decision; `None` from agents that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since_unix_ms: Option<u64>,
}

impl HeldDelta {
    /// Each reason's English text with its structure, when the agent sent one for every
    /// reason (an older agent sends none; a count that does not match is not trusted to
    /// pair up). A reason of a kind this build does not know has none either.
    pub fn reasons_with_causes(&self) -> impl Iterator<Item = (&str, Option<&HeldReason>)> {
        let paired = self.causes.len() == self.reasons.len();
        self.reasons.iter().enumerate().map(move |(index, text)| {
            let cause = self
                .causes
                .get(index)
                .filter(|cause| paired && **cause != HeldReason::Unknown);
            (text.as_str(), cause)
        })
    }
}

/// The states of an update the agent reports; central adds `offered` itself. A state this
/// build does not know is kept as [`ReportedState::Unknown`] and not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedState {
    /// The artifact is on the device and matches the manifest.
    Downloaded,
    /// Installed beside the running release; the agent restarts into it.
    Installed,
    /// The new release passed its trial.
    Healthy,
    /// The trial failed and the previous release runs again.
    RolledBack,
    /// The device will not install it (signature, target, version order).
    Refused,
    /// A state a newer agent reports and this build does not know.
    #[serde(other)]
    Unknown,
}

/// One update step for central: which release, what became of it, and why (for
/// `rolled_back` and `refused`). Carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The release's id.
    pub release: String,
    /// What became of it.
    pub state: ReportedState,
    /// Why, for `rolled_back` and `refused`.
    #[serde(default)]
    pub reason: Option<String>,
}

impl UpdateReport {
    /// A report of `state` for the release `release`.
    pub fn new(release: &str, state: ReportedState, reason: Option<String>) -> UpdateReport {
        UpdateReport {
            release: release.to_owned(),
            state,
            reason,
        }
    }
}

/// The body of `POST /v1/heartbeat`: counts and codes only, no personal data. Fields beyond
/// `version` and `state` default when missing, so an older or newer agent still gets its
/// commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version, for watching a rollout.
    pub version: String,
    /// What the agent is doing.
    pub state: AgentState,
    /// Envelopes waiting in the agent's outbox.
    #[serde(default)]
    pub outbox_depth: u64,
    /// Bytes they take on disk.
    #[serde(default)]
    pub outbox_bytes: u64,
    /// Age of the oldest envelope not yet acked, if any.
    #[serde(default)]
    pub oldest_unacked_age_s: Option<u64>,
    /// When the agent last read an export.
    #[serde(default)]
    pub last_export_unix_ms: Option<i64>,
    /// The last export's findings, by severity.
    #[serde(default)]
    pub deviations: DeviationCounts,
    /// The same deviations by code, with their first rows; empty from agents that do not
    /// report them.
    #[serde(default)]
    pub deviation_groups: Vec<DeviationGroup>,
    /// The delta held for review, if any.
    #[serde(default)]
    pub held: Option<HeldDelta>,
    /// The target triple the agent was built for; without it no release is offered.
    #[serde(default)]
    pub target: Option<String>,
    /// The agent's oldest update step central has not acknowledged by answering, repeated
    /// until a heartbeat gets through. Left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateReport>,
    /// How fresh central's signed statements are on this device; left out by agents that
    /// know no statement key (and by older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// The newest file that arrived in the drop folder and what became of it, as the
    /// agent's `status` shows it (its name masked); left out before any, and by older
    /// agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// What became of the drop share's settings on the Pi (never the password's hash); left
    /// out before any were applied or tried, and by older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_share: Option<ShareStatus>,
    /// Why the share the agent pulls exports from cannot be read; left out when it can, in
    /// push mode, and by older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_problem: Option<String>,
}

impl Heartbeat {
    /// Cuts the texts the agent reports in words (file name, outcome, errors) to
    /// [`MAX_REPORT_CHARS`] each, so a long error cannot crowd the rest out of the body
    /// central caps.
    pub fn clip_texts(&mut self) {
        if let Some(arrival) = &mut self.arrival {
            clip(&mut arrival.file);
            clip(&mut arrival.outcome);
        }
        let errors = [
            self.drop_share.as_mut().and_then(|s| s.last_error.as_mut()),
            self.source_problem.as_mut(),
        ];
        for text in errors.into_iter().flatten() {
            clip(text);
        }
    }
}

/// Longest text in characters the heartbeat carries for an arrival, a drop share error or a
/// source problem ([`Heartbeat::clip_texts`]); the agent's are far shorter.
pub const MAX_REPORT_CHARS: usize = 512;

/// Cuts `text` to [`MAX_REPORT_CHARS`] characters, the last of them `…` when it was longer.
pub fn clip(text: &mut String) {
    let mut starts = text
        .char_indices()
        .map(|(at, _)| at)
        .skip(MAX_REPORT_CHARS - 1);
    if let (Some(last_kept), Some(_longer)) = (starts.next(), starts.next()) {
        text.truncate(last_kept);
        text.push('…');
    }
}

/// A file that arrived in the drop folder (in push mode, the SMB drop share), as the agent's
/// `status.json` keeps it and its heartbeat reports it: school IT and the operators see that
/// an export landed and reached central, or why it was refused. Its name is masked where it
/// could hold a national id; nothing else of its content is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Arrival {
    /// The file's name, masked ([`crate::mask_in_text`]).
    pub file: String,
    /// When its write ended (the file's modification time), Unix ms.
    pub written_unix_ms: u64,
    /// What became of it, in a few English words: delivered to central, nothing changed,
    /// held for review, waiting for central, or refused with the reason.
    pub outcome: String,
    /// Set aside in `rejected/`, nothing of it sent.
    pub refused: bool,
    /// Central acknowledged every batch sealed from it.
    pub delivered: bool,
    /// The last batch sealed from it, until central acknowledges it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_seq: Option<u64>,
}

impl Arrival {
    /// Marks the arrival delivered once central acknowledged up to `seq`.
    pub fn acknowledged(&mut self, seq: u64) {
        if self.awaiting_seq.is_some_and(|awaiting| awaiting <= seq) {
            self.awaiting_seq = None;
            self.delivered = true;
            self.outcome = "delivered to central".to_owned();
        }
    }
}

/// What the agent reports about central's signed statements ([`crate::statement`]): a
/// device that gets no fresh one is answered by a replayed or frozen central, and an
/// operator should know even if the device cannot tell which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// When central issued the newest statement the agent accepted (central's clock, Unix
    /// ms); `None`: none yet.
    #[serde(default)]
    pub newest_statement_unix_ms: Option<u64>,
    /// No fresh statement for the agent's `freshness_days` (7 by default).
    #[serde(default)]
    pub frozen: bool,
}

/// An operator's instruction to one device, delivered once with a heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Send a full snapshot next (after a restore at central, or to settle a doubt).
    Resync,
    /// Send the held delta after all.
    Release {
        /// The [`HeldDelta::id`] the operator saw.
        held_id: String,
    },
    /// Drop the held delta.
    Reject {
        /// The [`HeldDelta::id`] the operator saw.
        held_id: String,
    },
    /// Apply these SMB drop share settings (on/off, account, size cap, password as Samba's
    /// hash): how an operator changes the share's password without a new stick.
    DropShare {
        settings: crate::drop_share::DropShare,
    },
}

impl Command {
    /// Whether the command is well-formed: a held id that is non-empty and short, drop share
    /// settings that can be applied ([`crate::drop_share::DropShare::is_valid`]).
    pub fn is_valid(&self) -> bool {
        match self {
            Command::Resync => true,
            Command::Release { held_id } | Command::Reject { held_id } => {
                !held_id.is_empty() && held_id.len() <= MAX_HELD_ID_LEN
            }
            Command::DropShare { settings } => settings.is_valid(),
        }
    }
}

/// A release central offers in a heartbeat answer. The agent checks the manifest against its
/// own key; central's choice is never trusted with content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOffer {
    /// The release's id (`<version>-<target>`).
    pub id: String,
    /// The signed manifest, base64 (standard, padded).
    pub manifest: String,
    /// Central's path of the artifact (`/v1/releases/<id>/artifact`).
    pub artifact: String,
}

/// Central's answer to a heartbeat. The agent reads it command by command (an unknown
/// command type from a newer central is skipped, not fatal), so this is the shape central
/// writes and the agent's result after skipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Operators' instructions queued for this device, oldest first.
    #[serde(default)]
    pub commands: Vec<Command>,
    /// A release meant for this device, if any.
    #[serde(default)]
    pub release: Option<ReleaseOffer>,
    /// Central's signed [`crate::statement::Statement`] for this answer (the time, and the
    /// manifest `release` carries as current), base64 (standard, padded). Left out by a
    /// central without a statement key, and by older centrals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Every key rotation operations published ([`crate::rotation`]), each base64 (standard,
    /// padded), by role and sequence. Central cannot forge one: the device checks each
    /// against the key it trusts and skips those it applied before. Left out when there is
    /// none, and by older centrals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rotations: Vec<String>,
}

/// Central's `200` answer to `POST /v1/batches`: everything up to `ack` is applied;
/// `applied` is false for a replay (acked again, nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    /// The sequence number applied (or applied before).
    pub ack: u64,
    /// False for a replay: acked again, nothing changed.
    #[serde(default = "yes")]
    pub applied: bool,
}

/// Central's `409` answer to `POST /v1/batches`: the chain has a hole, continue from this
/// head (`prev` is 64 hex) with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchGap {
    /// The sequence number central expects next.
    pub expected_seq: u64,
    /// The digest the next envelope must name as `prev`, 64 hex.
    pub prev: String,
}

/// The body of `POST /v1/renew`: a CSR for the same device (the same or a new TLS key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The certificate signing request, PEM.
    pub csr_pem: String,
}

/// Central's answer to `POST /v1/renew`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    /// The new device certificate, PEM.
    pub cert_pem: String,
    /// When it runs out, Unix seconds.
    pub not_after_unix: u64,
}

/// The body of `POST /v1/enroll`: the stick's one-time token, a CSR for the device's TLS
/// key, and the public half of its envelope-signing key (64 hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The stick's one-time token (central keeps only its hash).
    pub token: String,
    /// The certificate signing request for the device's TLS key, PEM.
    pub csr_pem: String,
    /// The Ed25519 public key the device signs envelopes with, 64 hex.
    pub signing_key: String,
}

/// Central's answer to `POST /v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The device id central registered.
    pub device: String,
    /// The site the device may write to.
    pub site: String,
    /// The device certificate, PEM.
    pub cert_pem: String,
    /// The site secret record handles are keyed with, 64 hex.
    pub site_secret: String,
    /// When the certificate runs out, Unix seconds.
    pub not_after_unix: u64,
    /// Whether central already holds records for the site: then the device's first batch
    /// must be a snapshot. Absent from an older central: assume records.
    #[serde(default = "yes")]
    pub site_has_records: bool,
    /// The public half of central's statement key, 64 hex: the device keeps it and checks
    /// every heartbeat answer's statement against it. Absent from a central without one
    /// (and from older centrals): the device then checks no statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_key: Option<String>,
}

fn yes() -> bool {
    true
}

/// The body of every refusal on the device, operator and consumer APIs: a stable code for
/// programs and a sentence for people. Some codes add fields beside these (`gap` carries a
/// [`BatchGap`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code, e.g. `device_revoked` (docs/API.md lists them per endpoint).
    #[serde(default)]
    pub error: String,
    /// What happened, for a person reading a log.
    #[serde(default)]
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let text = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value, "{text}");
    }

    fn full_heartbeat() -> Heartbeat {
        Heartbeat {
            version: "0.1.0".into(),
            state: AgentState::Holding,
            outbox_depth: 2,
            outbox_bytes: 900,
            oldest_unacked_age_s: Some(30),
            last_export_unix_ms: Some(1_764_000_000_000),
            deviations: DeviationCounts {
                errors: 0,
                warnings: 1,
            },
            deviation_groups: vec![DeviationGroup {
                code: "unknown_field".into(),
                severity: "warning".into(),
                count: 1,
                rows: vec![DeviationRow {
                    file: "elevliste.csv".into(),
                    at: "line 1".into(),
                    detail: "column Foresatt is not read".into(),
                }],
            }],
            held: Some(HeldDelta {
                id: "h1".into(),
                reasons: vec!["deletes 40% of students".into()],
                causes: Vec::new(),
                upserts: [("students".to_owned(), 3)].into(),
                deletes: [("students".to_owned(), 400)].into(),
                held_since_unix_ms: None,
            }),
            target: Some("aarch64-unknown-linux-gnu".into()),
            update: Some(UpdateReport::new(
                "1.2.0-aarch64-unknown-linux-gnu",
                ReportedState::RolledBack,
                Some("health check failed".into()),
            )),
            freshness: None,
            arrival: None,
            drop_share: None,
            source_problem: None,
        }
    }

    #[test]
    fn every_body_round_trips() {
        round_trip(&full_heartbeat());
        round_trip(&Heartbeat {
            held: None,
            update: None,
            target: None,
            ..full_heartbeat()
        });
        for command in [
            Command::Resync,
            Command::Release {
                held_id: "h1".into(),
            },
            Command::Reject {
                held_id: "h2".into(),
            },
        ] {
            round_trip(&command);
        }
        round_trip(&HeartbeatAnswer {
            commands: vec![Command::Resync],
            release: Some(ReleaseOffer {
                id: "1.2.0-x".into(),
                manifest: "AAAA".into(),
                artifact: "/v1/releases/1.2.0-x/artifact".into(),
            }),
            statement: Some("U0tCVA==".into()),
            key_rotations: vec!["U0tCSw==".into()],
        });
        round_trip(&BatchAck {
            ack: 7,
            applied: false,
        });
        round_trip(&BatchGap {
            expected_seq: 3,
            prev: "ab".repeat(32),
        });
        round_trip(&RenewRequest {
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
        });
        round_trip(&Renewed {
            cert_pem: "-----BEGIN CERTIFICATE-----".into(),
            not_after_unix: 1_800_000_000,
        });
        round_trip(&EnrollRequest {
            token: "tok".into(),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
            signing_key: "cd".repeat(32),
        });
        round_trip(&Enrolled {
            device: "skole-46505-0123456789abcdef".into(),
            site: "skole-46505".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----".into(),
            site_secret: "ef".repeat(32),
            not_after_unix: 1_800_000_000,
            site_has_records: false,
            statement_key: Some("ab".repeat(32)),
        });
        round_trip(&Heartbeat {
            freshness: Some(Freshness {
                newest_statement_unix_ms: Some(1_780_000_000_000),
                frozen: true,
            }),
            ..full_heartbeat()
        });
        round_trip(&HeldDelta {
            id: "held-1".into(),
            reasons: vec!["released by an operator".into()],
            causes: vec![HeldReason::Released],
            upserts: BTreeMap::new(),
            deletes: BTreeMap::new(),
            held_since_unix_ms: Some(1_780_000_000_000),
        });
        round_trip(&ErrorBody {
            error: "device_revoked".into(),
            detail: "this device was revoked".into(),
        });
    }

    #[test]
    fn the_agents_heartbeat_bytes_are_unchanged() {
        let json = serde_json::to_value(full_heartbeat()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "0.1.0", "state": "holding", "outbox_depth": 2, "outbox_bytes": 900,
                "oldest_unacked_age_s": 30, "last_export_unix_ms": 1_764_000_000_000u64,
                "deviations": {"errors": 0, "warnings": 1},
                "deviation_groups": [{"code": "unknown_field", "severity": "warning", "count": 1,
                  "rows": [{"file": "elevliste.csv", "at": "line 1",
                            "detail": "column Foresatt is not read"}]}],
                "held": {"id": "h1", "reasons": ["deletes 40% of students"],
                         "upserts": {"students": 3}, "deletes": {"students": 400}},
                "target": "aarch64-unknown-linux-gnu",
                "update": {"release": "1.2.0-aarch64-unknown-linux-gnu", "state": "rolled_back",
                           "reason": "health check failed"}
            })
        );
        let without_update = serde_json::to_value(Heartbeat {
            update: None,
            ..full_heartbeat()
        })
        .unwrap();
        assert!(without_update.get("update").is_none());
    }

    #[test]
    fn the_documented_heartbeat_parses() {
        let text = r#"{"version": "0.1.0", "state": "healthy", "outbox_depth": 0, "outbox_bytes": 0,
            "oldest_unacked_age_s": null, "last_export_unix_ms": 1764000000000,
            "deviations": {"errors": 0, "warnings": 1},
            "deviation_groups": [{"code": "unknown_field", "severity": "warning", "count": 1,
              "rows": [{"file": "elevliste.csv", "at": "line 1", "detail": "column Foresatt is not read"}]}],
            "held": null,
            "target": "aarch64-unknown-linux-gnu",
            "update": {"release": "1.2.0-aarch64-unknown-linux-gnu", "state": "rolled_back",
                       "reason": "health check failed: central did not answer"}}"#;
        let parsed: Heartbeat = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.state, AgentState::Healthy);
        assert_eq!(parsed.last_export_unix_ms, Some(1_764_000_000_000));
        assert_eq!(parsed.deviation_groups[0].rows[0].at, "line 1");
        assert_eq!(parsed.update.unwrap().state, ReportedState::RolledBack);
    }

    #[test]
    fn reasons_pair_with_their_causes_only_when_the_agent_sent_one_for_each() {
        let cause = HeldReason::TooManyDeletes {
            would: 11,
            of: 100,
            limit_percent: 10,
        };
        let mut held = HeldDelta {
            id: "h1".into(),
            reasons: vec![cause.to_string(), "a newer reason".into()],
            causes: vec![cause.clone(), HeldReason::Unknown],
            upserts: BTreeMap::new(),
            deletes: BTreeMap::new(),
            held_since_unix_ms: None,
        };
        let pairs: Vec<_> = held.reasons_with_causes().collect();
        assert_eq!(
            pairs,
            [
                (held.reasons[0].as_str(), Some(&cause)),
                ("a newer reason", None)
            ]
        );
        held.causes.pop();
        assert!(held.reasons_with_causes().all(|(_, cause)| cause.is_none()));
        let older: HeldDelta =
            serde_json::from_str(r#"{"id": "h1", "reasons": ["deletes 40% of students"]}"#)
                .unwrap();
        assert!(older.causes.is_empty());
        assert_eq!(
            older.reasons_with_causes().collect::<Vec<_>>(),
            [("deletes 40% of students", None)]
        );
    }

    #[test]
    fn a_minimal_heartbeat_from_an_older_agent_parses_with_defaults() {
        let parsed: Heartbeat =
            serde_json::from_str(r#"{"version": "0.1.0", "state": "enrolling"}"#).unwrap();
        assert_eq!(parsed.state, AgentState::Enrolling);
        assert_eq!(parsed.deviations, DeviationCounts::default());
        assert!(parsed.deviation_groups.is_empty() && parsed.held.is_none());
        assert_eq!((parsed.target, parsed.update), (None, None));
    }

    fn share_reports() -> Heartbeat {
        Heartbeat {
            arrival: Some(Arrival {
                file: "elevliste-028716*****.csv".into(),
                written_unix_ms: 1_780_000_000_000,
                outcome: "delivered to central".into(),
                refused: false,
                delivered: true,
                awaiting_seq: None,
            }),
            drop_share: Some(ShareStatus {
                applied: Some(crate::drop_share::Applied {
                    enabled: true,
                    account: "sas-eksport".into(),
                    size_cap_mib: 64,
                }),
                applied_unix_ms: Some(1_779_000_000_000),
                last_error: Some("the drop share has no password on this Pi".into()),
                last_error_unix_ms: Some(1_780_000_000_000),
            }),
            source_problem: Some("the share refused the account".into()),
            ..full_heartbeat()
        }
    }

    #[test]
    fn a_heartbeat_without_the_share_reports_parses_and_one_with_them_round_trips() {
        let older: Heartbeat =
            serde_json::from_value(serde_json::to_value(full_heartbeat()).expect("JSON"))
                .expect("an older agent's heartbeat parses");
        assert_eq!(
            (older.arrival, older.drop_share, older.source_problem),
            (None, None, None)
        );
        round_trip(&share_reports());
        let json = serde_json::to_value(share_reports()).expect("JSON");
        assert_eq!(json["arrival"]["delivered"], true);
        assert!(json["arrival"].get("awaiting_seq").is_none(), "{json}");
        assert_eq!(
            json["drop_share"],
            serde_json::json!({"enabled": true, "account": "sas-eksport", "size_cap_mib": 64,
                "applied_unix_ms": 1_779_000_000_000u64,
                "last_error": "the drop share has no password on this Pi",
                "last_error_unix_ms": 1_780_000_000_000u64}),
            "the settings sit beside the outcome, as in the agent's drop-share.json"
        );
        let never_applied: ShareStatus =
            serde_json::from_str(r#"{"last_error": "invalid", "last_error_unix_ms": 1}"#)
                .expect("a failure before any settings took");
        assert_eq!(never_applied.applied, None);
    }

    #[test]
    fn reported_texts_are_cut_to_the_bound_on_a_character_boundary() {
        let mut heartbeat = share_reports();
        let long = "ø".repeat(MAX_REPORT_CHARS + 10);
        if let Some(arrival) = &mut heartbeat.arrival {
            arrival.outcome = long.clone();
        }
        heartbeat.source_problem = Some(long);
        heartbeat.clip_texts();
        let outcome = heartbeat.arrival.map(|a| a.outcome).unwrap_or_default();
        assert_eq!(outcome.chars().count(), MAX_REPORT_CHARS);
        assert!(outcome.ends_with("ø…"), "{outcome}");
        assert_eq!(heartbeat.source_problem.as_deref(), Some(outcome.as_str()));
        let mut short = "x".repeat(MAX_REPORT_CHARS);
        clip(&mut short);
        assert_eq!(
            short,
            "x".repeat(MAX_REPORT_CHARS),
            "a text at the bound stays whole"
        );
    }

    #[test]
    fn unknown_states_from_a_newer_agent_are_kept_as_unknown() {
        let parsed: Heartbeat =
            serde_json::from_str(r#"{"version": "9.0.0", "state": "updating"}"#).unwrap();
        assert_eq!(parsed.state, AgentState::Unknown);
        let report: UpdateReport =
            serde_json::from_str(r#"{"release": "9.0.0-x", "state": "teleported"}"#).unwrap();
        assert_eq!(report.state, ReportedState::Unknown);
        assert_eq!(report.reason, None);
    }

    #[test]
    fn the_documented_answers_parse() {
        let answer: HeartbeatAnswer = serde_json::from_str(
            r#"{"commands": [{"type": "resync"}, {"type": "release", "held_id": "h1"},
                             {"type": "reject", "held_id": "h2"}],
                "release": {"id": "1.2.0-aarch64-unknown-linux-gnu", "manifest": "AAAA",
                            "artifact": "/v1/releases/1.2.0-aarch64-unknown-linux-gnu/artifact"}}"#,
        )
        .unwrap();
        assert_eq!(answer.commands.len(), 3);
        assert_eq!(answer.release.unwrap().manifest, "AAAA");
        let none: HeartbeatAnswer =
            serde_json::from_str(r#"{"commands": [], "release": null}"#).unwrap();
        assert_eq!(none.release, None);
        let ack: BatchAck = serde_json::from_str(r#"{"ack": 5, "applied": true}"#).unwrap();
        assert_eq!(
            ack,
            BatchAck {
                ack: 5,
                applied: true
            }
        );
        let gap: BatchGap = serde_json::from_str(&format!(
            r#"{{"error": "gap", "expected_seq": 4, "prev": "{}"}}"#,
            "00".repeat(32)
        ))
        .unwrap();
        assert_eq!(gap.expected_seq, 4);
        let renewed: Renewed =
            serde_json::from_str(r#"{"cert_pem": "pem", "not_after_unix": 1800000000}"#).unwrap();
        assert_eq!(renewed.not_after_unix, 1_800_000_000);
        let enrolled: Enrolled = serde_json::from_str(
            r#"{"device": "d", "site": "s", "cert_pem": "pem", "site_secret": "00",
                "not_after_unix": 1800000000}"#,
        )
        .unwrap();
        assert!(
            enrolled.site_has_records,
            "an older central's answer means records"
        );
        let refused: ErrorBody =
            serde_json::from_str(r#"{"error": "token_spent", "detail": "used"}"#).unwrap();
        assert_eq!(refused.error, "token_spent");
        let bare: ErrorBody = serde_json::from_str("{}").unwrap();
        assert_eq!(bare, ErrorBody::default());
    }

    #[test]
    fn commands_have_the_documented_json_shape_and_limits() {
        let json = serde_json::to_value(Command::Release {
            held_id: "h1".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "release", "held_id": "h1"})
        );
        assert!(serde_json::from_str::<Command>(r#"{"type": "explode"}"#).is_err());
        assert!(Command::Resync.is_valid());
        assert!(!Command::Reject {
            held_id: String::new()
        }
        .is_valid());
        assert!(!Command::Release {
            held_id: "h".repeat(MAX_HELD_ID_LEN + 1)
        }
        .is_valid());
    }
}
