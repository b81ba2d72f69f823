//! The agent's status model: what `status.json` holds, what `skolebro-agent status` prints
//! from it, and how it is written. The daemon fills it in; the CLI and the front panel read
//! it. Below the daemon: it names no stage.

use skolebro_protocol::civil_time::UtcDateTime;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skolebro_protocol::api::{AgentState, DeviationCounts, HeldDelta};
use tokio::sync::watch;

use crate::drop_share::ShareStatus;
/// Kept in protocol: the heartbeat carries the newest arrival to central as `status.json`
/// shows it.
pub use skolebro_protocol::api::Arrival;

/// Name of the status file in the state folder.
pub const STATUS_FILE: &str = "status.json";

/// `last_outcome` once an operator rejected the held delta at central: the newest export
/// was then never sent, whatever central acknowledged before.
pub const REJECTED_OUTCOME: &str = "held delta rejected by an operator";

/// What the agent is doing, in the words of docs/API.md's heartbeat `state` (plus the two
/// local ones `starting` and `stopped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Starting,
    /// No identity yet: waiting for a config stick.
    NotProvisioned,
    /// Enrolling with central from a config stick.
    Enrolling,
    Healthy,
    Holding,
    CentralUnreachable,
    Error,
    /// Central revoked this device; only a new config stick brings it back.
    Revoked,
    Stopped,
}

impl RunState {
    /// The heartbeat's word for it.
    pub fn api_state(self) -> AgentState {
        match self {
            RunState::Starting | RunState::Healthy | RunState::Stopped => AgentState::Healthy,
            RunState::Holding => AgentState::Holding,
            RunState::CentralUnreachable => AgentState::CentralUnreachable,
            RunState::Error | RunState::Revoked => AgentState::Error,
            RunState::NotProvisioned => AgentState::NotProvisioned,
            RunState::Enrolling => AgentState::Enrolling,
        }
    }
}

/// The content of `status.json`: what `skolebro-agent status` prints and the heartbeat
/// sends. Written atomically after every step, so a reader never sees half of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentStatus {
    pub state: RunState,
    /// The version of the running release (see [`crate::update`]).
    pub version: String,
    /// The daemon's process id, so `status` can tell a stale file from a running agent.
    pub pid: u32,
    /// When the file was last written: when something in it last changed, or at most
    /// [`STATUS_REFRESH_MS`] ago while the agent runs ("last seen" once it stopped).
    pub updated_unix_ms: u64,
    pub last_export_unix_ms: Option<u64>,
    pub last_export_file: Option<String>,
    pub last_export_students: Option<u64>,
    /// How long reading and validating the newest export took, in ms: the figure to watch
    /// as a school grows or the Pi ages.
    pub last_export_read_ms: Option<u64>,
    /// When the newest export taken in was written (its file's modification time). An
    /// export written earlier is refused: sent after it, it would turn central's roster back.
    pub last_export_written_unix_ms: Option<u64>,
    /// What became of the newest export, in a few words.
    pub last_outcome: Option<String>,
    pub deviations: DeviationCounts,
    /// The same deviations by code, with their first rows (masked), for central's site page.
    pub deviation_groups: Vec<skolebro_protocol::api::DeviationGroup>,
    pub last_ack_seq: Option<u64>,
    pub last_ack_unix_ms: Option<u64>,
    pub unreachable_since_unix_ms: Option<u64>,
    pub last_error: Option<String>,
    pub held: Option<HeldDelta>,
    pub held_since_unix_ms: Option<u64>,
    pub outbox_depth: u64,
    pub outbox_bytes: u64,
    pub oldest_unacked_unix_ms: Option<u64>,
    /// Central needs a full snapshot and the agent has no export in memory to make it from:
    /// the next export the SAS drops is sent as the snapshot.
    pub awaiting_export_for_snapshot: bool,
    /// Enrollment, certificate and clock.
    pub provisioning: ProvisioningStatus,
    /// Why an offered release waits (not enough disk space for it); `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_waiting: Option<String>,
    /// Central's signed statements (see `crate::freshness`); `None` when none is checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<FreshnessStatus>,
    /// The newest file that arrived in the drop folder (in push mode, the SMB drop share)
    /// and what became of it: school IT saves an export from the office PC and sees here
    /// that it landed and reached central, or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_arrival: Option<Arrival>,
    /// What is wrong with the export source the agent pulls from (the SMB share cannot be
    /// reached, refused the account, or holds an export over the read budget); `None` when
    /// nothing is, or the source is the drop folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_problem: Option<String>,
}

/// The freshness part of `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FreshnessStatus {
    /// Central's time in the newest statement accepted, Unix ms, as kept on disk (to within
    /// the hour; the heartbeat carries the exact one).
    pub newest_statement_unix_ms: Option<u64>,
    /// No fresh statement for `freshness_days`: offers may be replayed or withheld.
    pub frozen: bool,
    /// Why the last statement was refused, until one is accepted.
    pub refusal: Option<String>,
}

/// Where the device stands with enrollment, in `status.json` (ids and times only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvisioningStatus {
    /// The device and site the agent runs as (`None` while not provisioned).
    pub device: Option<String>,
    pub site: Option<String>,
    /// The id of the token the device enrolled with (`None` when set up by hand).
    pub token_id: Option<String>,
    pub enrolled_unix: Option<u64>,
    pub cert_not_after_unix: Option<u64>,
    pub renewed_unix: Option<u64>,
    /// Enrolling from a stick right now.
    pub enrolling: bool,
    /// The last stick refused, while it is still inserted: file and reason.
    pub stick_refused: Option<String>,
    /// Why the last enrollment failed (central refused the token, or was unreachable).
    pub enroll_error: Option<String>,
    /// Central answered `device_revoked`.
    pub revoked: bool,
    /// The folders searched for a stick.
    pub stick_roots: Vec<String>,
    /// Whether the system clock is synced, and the floor certificates are checked against
    /// until it is (DESIGN decision 8).
    pub clock_synced: bool,
    pub time_floor_unix: u64,
    /// The share on the school's file server the agent pulls exports from, when it pulls
    /// from one: where, as whom, and who said so. Never its password or hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_source: Option<ShareSourceShown>,
}

/// The pull share in `status.json`, so school IT sees which share and account the agent
/// uses without reading a file that holds its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShareSourceShown {
    pub server: String,
    pub share: String,
    pub folder: String,
    pub user: String,
    /// What becomes of an export on the share once central has it (`"delete"` or
    /// `"move:<folder>"`), so school IT knows where a pulled export went.
    pub after: crate::share::AfterPull,
    /// `"stick"` when the config stick named the share, `"agent.toml"` when the box's
    /// `[source]` did.
    pub from: String,
}

impl AgentStatus {
    /// Reads `status.json` from `state_dir`.
    pub fn load(state_dir: &Path) -> std::io::Result<AgentStatus> {
        let bytes = std::fs::read(state_dir.join(STATUS_FILE))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// How often a status that did not change is written again anyway, so that `updated_unix_ms`
/// says when a stopped agent was last seen to within this. Rewriting it at every heartbeat
/// would write the SD card 1,440 times a day for nothing.
pub const STATUS_REFRESH_MS: u64 = 3_600_000;

/// Whether `status` says nothing new beside `written`, the status last written: equal but for
/// the time, and written less than [`STATUS_REFRESH_MS`] ago. A `written` without a time is
/// the channel's starting value, never on disk, so the first status is always written.
fn says_nothing_new(status: &AgentStatus, written: &AgentStatus) -> bool {
    written.updated_unix_ms != 0
        && status
            .updated_unix_ms
            .saturating_sub(written.updated_unix_ms)
            < STATUS_REFRESH_MS
        && *status
            == AgentStatus {
                updated_unix_ms: status.updated_unix_ms,
                ..written.clone()
            }
}

/// Writes `status.json` atomically, readable by the agent's user only (mode 0600: its texts
/// name files and reasons of a school's exports), and tells watchers, unless it says nothing
/// new (the same status but for its time, written less than an hour ago).
pub fn write_status(state_dir: &Path, status: &AgentStatus, tx: &watch::Sender<AgentStatus>) {
    if says_nothing_new(status, &tx.borrow()) {
        return;
    }
    let path = state_dir.join(STATUS_FILE);
    match serde_json::to_vec_pretty(status) {
        Ok(bytes) => {
            if let Err(error) = crate::state::write_atomic_private(&path, &bytes) {
                tracing::warn!(%error, "cannot write status.json");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot encode status.json"),
    }
    tx.send_replace(status.clone());
}

/// A unix-ms time as `HH:MM` (UTC) if it is today, else `YYYY-MM-DD HH:MM`.
pub fn fmt_when(unix_ms: u64, now_ms: u64) -> String {
    let (date, hm) = split(unix_ms);
    let (today, _) = split(now_ms);
    if date == today {
        format!("{hm} UTC")
    } else {
        format!("{date} {hm} UTC")
    }
}

fn split(unix_ms: u64) -> (String, String) {
    let time = UtcDateTime::from_unix_millis(i64::try_from(unix_ms).unwrap_or(i64::MAX));
    (time.date_text(), time.hour_minute_text())
}

/// A duration in plain words ("20 min", "3 h 5 min", "2 days").
pub fn age(ms: u64) -> String {
    let min = ms / 60_000;
    match min {
        0 => format!("{} s", ms / 1000),
        1..=59 => format!("{min} min"),
        60..=2879 => format!("{} h {} min", min / 60, min % 60),
        _ => format!("{} days", min / 1440),
    }
}

/// The drop share's lines in `skolebro-agent status`: the settings in force and, when the
/// last settings from a stick or central could not be applied, why, so school IT sees it
/// without reading the log. Empty before any settings were applied or tried.
pub fn describe_drop_share(share: &ShareStatus, now_ms: u64) -> String {
    let mut out = String::new();
    if let Some(applied) = &share.applied {
        let when = share
            .applied_unix_ms
            .map(|t| format!(", applied {}", fmt_when(t, now_ms)))
            .unwrap_or_default();
        if applied.enabled {
            out.push_str(&format!(
                "Drop share: on for account {} (files up to {} MiB){when}.\n",
                applied.account, applied.size_cap_mib
            ));
        } else {
            out.push_str(&format!("Drop share: off{when}.\n"));
        }
    }
    if let Some(error) = &share.last_error {
        let when = share
            .last_error_unix_ms
            .map(|t| format!(" ({})", fmt_when(t, now_ms)))
            .unwrap_or_default();
        out.push_str(&format!(
            "The last drop share settings were not applied{when}: {error}.\n"
        ));
    }
    out
}

/// What `skolebro-agent status` prints: the agent's state in plain words. `export_file` is
/// where the newest export still lies, or `None` once the agent removed it (`after_ingest =
/// "delete"`): then its deviations are listed here instead of pointing at `check`.
pub fn describe_status(
    status: &AgentStatus,
    running: bool,
    now_ms: u64,
    export_file: Option<&Path>,
) -> String {
    let mut out = String::new();
    if !running {
        out.push_str(&format!(
            "The agent is not running (last seen {}).\n",
            fmt_when(status.updated_unix_ms, now_ms)
        ));
    }
    let export = match (status.last_export_unix_ms, status.last_export_students) {
        (Some(t), Some(n)) => format!("last export {} ({n} students)", fmt_when(t, now_ms)),
        (Some(t), None) => format!("last export {}", fmt_when(t, now_ms)),
        _ => "no export yet".into(),
    };
    let outbox = if status.outbox_depth == 0 {
        "outbox empty".to_owned()
    } else {
        let oldest = status
            .oldest_unacked_unix_ms
            .map(|t| format!(", oldest {}", age(now_ms.saturating_sub(t))))
            .unwrap_or_default();
        format!("{} batches queued{oldest}", status.outbox_depth)
    };
    let rejected = status.last_outcome.as_deref() == Some(REJECTED_OUTCOME);
    let acked = match status.last_ack_unix_ms {
        _ if rejected => "rejected at central by an operator and not sent".to_owned(),
        Some(t) if status.outbox_depth == 0 => {
            format!("sent and acknowledged {}", fmt_when(t, now_ms))
        }
        Some(t) => format!("last acknowledged {}", fmt_when(t, now_ms)),
        None => "nothing acknowledged yet".into(),
    };
    let line = match status.state {
        RunState::Holding => {
            let held = status.held.as_ref();
            let reasons = held.map(|h| h.reasons.join("; ")).unwrap_or_default();
            let id = held.map(|h| h.id.as_str()).unwrap_or("?");
            format!(
                "Holding a delta for review: {reasons}. Release or reject it from central (held id {id}); {export}; {outbox}."
            )
        }
        RunState::CentralUnreachable => format!(
            "Waiting for central since {} ({outbox}); {export}.",
            status
                .unreachable_since_unix_ms
                .map(|t| fmt_when(t, now_ms))
                .unwrap_or_else(|| "?".into())
        ),
        RunState::Error => format!(
            "Error: {}. {export}; {outbox}.",
            status.last_error.as_deref().unwrap_or("unknown")
        ),
        RunState::Starting => format!("Starting: {export}; {outbox}."),
        RunState::NotProvisioned => {
            let p = &status.provisioning;
            let mut line = format!(
                "Waiting for a config stick (looking in {}).",
                if p.stick_roots.is_empty() {
                    "no folders".to_owned()
                } else {
                    p.stick_roots.join(", ")
                }
            );
            if let Some(reason) = &p.stick_refused {
                line.push_str(&format!(" Stick refused: {reason}."));
            }
            if let Some(reason) = &p.enroll_error {
                line.push_str(&format!(" Enrollment failed: {reason}."));
            }
            line
        }
        RunState::Enrolling => "Enrolling with central from the config stick.".to_owned(),
        RunState::Revoked => format!(
            "Revoked by central: this device may no longer send. Insert a new config stick to enroll it again; {outbox}."
        ),
        RunState::Healthy | RunState::Stopped => {
            format!("Healthy: {export}, {acked}; {outbox}.")
        }
    };
    out.push_str(&line);
    out.push('\n');
    if let Some(waiting) = &status.update_waiting {
        out.push_str(&format!("Update waiting: {waiting}.\n"));
    }
    if let Some(fresh) = status
        .freshness
        .as_ref()
        .filter(|_| status.state != RunState::Stopped)
    {
        if fresh.frozen {
            let since = match fresh.newest_statement_unix_ms {
                Some(t) => format!("since {}", fmt_when(t, now_ms)),
                None => "ever".to_owned(),
            };
            out.push_str(&format!(
                "Frozen: no fresh signed statement from central {since}; its offers may be replayed or withheld. Tell operations.\n"
            ));
        }
        if let Some(refusal) = &fresh.refusal {
            out.push_str(&format!(
                "Central's last statement was refused: {refusal}.\n"
            ));
        }
    }
    if let Some(arrival) = &status.last_arrival {
        out.push_str(&format!(
            "Last file dropped: {}, written {}: {}.\n",
            arrival.file,
            fmt_when(arrival.written_unix_ms, now_ms),
            arrival.outcome
        ));
    }
    let p = &status.provisioning;
    if let (Some(device), Some(site)) = (&p.device, &p.site) {
        let how = match &p.token_id {
            Some(token) => format!("with stick token {token}"),
            None => "by hand in agent.toml".to_owned(),
        };
        let until = p
            .cert_not_after_unix
            .map(|t| format!("; certificate valid until {}", fmt_when(t * 1000, now_ms)))
            .unwrap_or_default();
        let renewed = p
            .renewed_unix
            .map(|t| format!(", renewed {}", fmt_when(t * 1000, now_ms)))
            .unwrap_or_default();
        out.push_str(&format!(
            "Enrolled as device {device} for site {site} ({how}){until}{renewed}.\n"
        ));
    }
    if let Some(share) = &p.share_source {
        let folder = share.folder.trim_matches(['/', '\\']).replace('/', "\\");
        let by = if share.from == "stick" {
            "the config stick"
        } else {
            "agent.toml"
        };
        let then = match &share.after {
            crate::share::AfterPull::Delete => "deletes each from the share".to_owned(),
            crate::share::AfterPull::Move(into) => format!(
                "moves each into \\\\{}\\{}\\{}",
                share.server,
                share.share,
                into.trim_matches(['/', '\\']).replace('/', "\\")
            ),
        };
        out.push_str(&format!(
            "Pulls exports from \\\\{}\\{}\\{folder} as {} (set by {by}) and {then} once central has it.\n",
            share.server, share.share, share.user
        ));
    }
    if status.state != RunState::Stopped && !p.clock_synced && p.time_floor_unix > 0 {
        out.push_str(&format!(
            "The clock is not synced: certificates are checked against no earlier than {}.\n",
            fmt_when(p.time_floor_unix * 1000, now_ms)
        ));
    }
    if status.deviations.errors + status.deviations.warnings > 0 {
        out.push_str(&format!(
            "The last export had {} errors and {} warnings to fix in the school system",
            status.deviations.errors, status.deviations.warnings
        ));
        match export_file {
            Some(path) => out.push_str(&format!(
                " (`skolebro-agent check {}` lists them).\n",
                path.display()
            )),
            None => {
                let groups: Vec<String> = status
                    .deviation_groups
                    .iter()
                    .map(|g| format!("{} {} ({})", g.count, g.code, g.severity))
                    .collect();
                out.push_str(": ");
                out.push_str(&groups.join(", "));
                out.push_str(". The file was removed after reading; run `skolebro-agent check` on the next export before it is dropped.\n");
            }
        }
    }
    if status.awaiting_export_for_snapshot {
        out.push_str("Central needs a full snapshot: it goes out with the next export.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn an_unchanged_status_is_not_rewritten_until_the_refresh_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = watch::channel(AgentStatus::default());
        let written = |updated_unix_ms| {
            let on_disk = AgentStatus::load(dir.path()).unwrap();
            assert_eq!(on_disk.updated_unix_ms, updated_unix_ms);
            assert_eq!(tx.borrow().updated_unix_ms, updated_unix_ms);
        };
        let t0 = 1_764_000_000_000;
        let mut status = AgentStatus {
            state: RunState::Healthy,
            updated_unix_ms: t0,
            ..AgentStatus::default()
        };
        write_status(dir.path(), &status, &tx);
        written(t0);
        status.updated_unix_ms = t0 + 60_000;
        write_status(dir.path(), &status, &tx);
        written(t0);
        status.state = RunState::CentralUnreachable;
        write_status(dir.path(), &status, &tx);
        written(t0 + 60_000);
        status.updated_unix_ms = t0 + 60_000 + STATUS_REFRESH_MS;
        write_status(dir.path(), &status, &tx);
        written(t0 + 60_000 + STATUS_REFRESH_MS);
    }

    #[test]
    fn the_drop_share_lines_give_the_settings_in_force_and_why_the_last_ones_failed() {
        use crate::drop_share::Applied;
        let now = 1_764_000_000_000;
        assert_eq!(describe_drop_share(&ShareStatus::default(), now), "");
        let mut share = ShareStatus {
            applied: Some(Applied {
                enabled: true,
                account: "sas-eksport".into(),
                size_cap_mib: 64,
            }),
            applied_unix_ms: Some(now - 60_000),
            ..ShareStatus::default()
        };
        let text = describe_drop_share(&share, now);
        assert_eq!(
            text,
            format!(
                "Drop share: on for account sas-eksport (files up to 64 MiB), applied {}.\n",
                fmt_when(now - 60_000, now)
            )
        );
        share.last_error = Some("the drop share's Unix user skolebro-drop is missing".into());
        share.last_error_unix_ms = Some(now);
        let text = describe_drop_share(&share, now);
        assert!(
            text.contains("The last drop share settings were not applied (")
                && text.ends_with(": the drop share's Unix user skolebro-drop is missing.\n"),
            "{text}"
        );
        share.applied = Some(Applied {
            enabled: false,
            account: "sas-eksport".into(),
            size_cap_mib: 64,
        });
        assert!(describe_drop_share(&share, now).starts_with("Drop share: off, applied "));
    }

    #[test]
    fn the_pull_share_is_shown_with_who_set_it_and_nothing_when_there_is_none() {
        let now = 1_764_000_000_000;
        let mut status = AgentStatus {
            state: RunState::Healthy,
            ..AgentStatus::default()
        };
        status.provisioning.share_source = Some(ShareSourceShown {
            server: "filserver".into(),
            share: "Eksport".into(),
            folder: "sas/elever".into(),
            user: "skolebro-les".into(),
            after: crate::share::AfterPull::Move("sas/hentet".into()),
            from: "stick".into(),
        });
        let text = describe_status(&status, true, now, None);
        assert!(
            text.contains(
                r"Pulls exports from \\filserver\Eksport\sas\elever as skolebro-les (set by the config stick) and moves each into \\filserver\Eksport\sas\hentet once central has it."
            ),
            "{text}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json["provisioning"]["share_source"]["after"],
            "move:sas/hentet"
        );
        if let Some(share) = status.provisioning.share_source.as_mut() {
            share.after = crate::share::AfterPull::Delete;
        }
        let text = describe_status(&status, true, now, None);
        assert!(
            text.contains("and deletes each from the share once central has it."),
            "{text}"
        );
        status.provisioning.share_source = None;
        assert!(!describe_status(&status, true, now, None).contains("Pulls"));
        let json = serde_json::to_value(&status).unwrap();
        assert!(json["provisioning"].get("share_source").is_none());
    }

    #[test]
    fn a_frozen_device_says_so_and_names_a_refused_statement() {
        let now = 1_764_000_000_000;
        let mut status = AgentStatus {
            state: RunState::Healthy,
            freshness: Some(FreshnessStatus {
                newest_statement_unix_ms: Some(now - 8 * 86_400_000),
                frozen: true,
                refusal: Some("it is older than the newest seen (a replay)".into()),
            }),
            ..AgentStatus::default()
        };
        let text = describe_status(&status, true, now, None);
        assert!(
            text.contains("Frozen: no fresh signed statement from central since"),
            "{text}"
        );
        assert!(
            text.contains("refused: it is older than the newest seen"),
            "{text}"
        );
        status.freshness = Some(FreshnessStatus::default());
        let text = describe_status(&status, true, now, None);
        assert!(
            !text.contains("Frozen") && !text.contains("refused"),
            "{text}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["freshness"]["frozen"], false);
        status.freshness = None;
        assert!(serde_json::to_value(&status)
            .unwrap()
            .get("freshness")
            .is_none());
    }

    #[test]
    fn a_dropped_file_is_shown_with_when_it_was_written_and_delivered_once_acknowledged() {
        let now = 1_764_000_000_000;
        let mut arrival = Arrival {
            file: "elevliste.csv".into(),
            written_unix_ms: now - 120_000,
            outcome: "sealed, waiting for central to acknowledge it".into(),
            awaiting_seq: Some(4),
            ..Arrival::default()
        };
        arrival.acknowledged(3);
        assert!(!arrival.delivered);
        arrival.acknowledged(5);
        assert!(arrival.delivered && arrival.awaiting_seq.is_none());
        let mut status = AgentStatus {
            state: RunState::Healthy,
            last_arrival: Some(arrival),
            ..AgentStatus::default()
        };
        let text = describe_status(&status, true, now, None);
        assert!(
            text.contains("Last file dropped: elevliste.csv, written ")
                && text.contains(": delivered to central.\n"),
            "{text}"
        );
        status.last_arrival = None;
        assert!(!describe_status(&status, true, now, None).contains("Last file"));
        assert!(serde_json::to_value(&status)
            .unwrap()
            .get("last_arrival")
            .is_none());
    }

    #[test]
    fn after_a_reject_the_status_does_not_say_sent_and_acknowledged() {
        let now = 1_764_000_000_000;
        let rejected = AgentStatus {
            state: RunState::Healthy,
            last_export_unix_ms: Some(now - 60_000),
            last_ack_unix_ms: Some(now - 3_600_000),
            last_outcome: Some(REJECTED_OUTCOME.into()),
            ..AgentStatus::default()
        };
        let text = describe_status(&rejected, true, now, None);
        assert!(!text.contains("acknowledged"), "{text}");
        assert!(text.contains("rejected at central"), "{text}");
    }

    #[test]
    fn deviations_of_a_removed_export_are_listed_not_sent_to_check() {
        let now = 1_764_000_000_000;
        let status = AgentStatus {
            state: RunState::Healthy,
            deviations: DeviationCounts {
                errors: 3,
                warnings: 0,
            },
            deviation_groups: vec![skolebro_protocol::api::DeviationGroup {
                code: "invalid_national_id".into(),
                severity: "error".into(),
                count: 3,
                rows: Vec::new(),
            }],
            ..AgentStatus::default()
        };
        let removed = describe_status(&status, true, now, None);
        assert!(
            removed.contains("3 invalid_national_id (error)"),
            "{removed}"
        );
        assert!(!removed.contains("`skolebro-agent check`)"), "{removed}");
        let kept = describe_status(&status, true, now, Some(Path::new("/srv/drop/elev.csv")));
        assert!(
            kept.contains("`skolebro-agent check /srv/drop/elev.csv`"),
            "{kept}"
        );
    }

    #[test]
    fn clock_shows_the_date_only_for_other_days() {
        let noon = 1_764_000_000_000; // 2025-11-24 16:00 UTC
        assert_eq!(fmt_when(noon, noon + 60_000), "16:00 UTC");
        assert_eq!(fmt_when(noon, noon + 86_400_000), "2025-11-24 16:00 UTC");
    }

    #[test]
    fn status_json_is_readable_by_the_agent_user_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = watch::channel(AgentStatus::default());
        write_status(dir.path(), &AgentStatus::default(), &tx);
        let path = dir.path().join(STATUS_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            AgentStatus::load(dir.path()).unwrap(),
            AgentStatus::default()
        );
    }

    #[test]
    fn the_status_reads_as_plain_words() {
        let now = 1_764_000_000_000;
        let healthy = AgentStatus {
            state: RunState::Healthy,
            last_export_unix_ms: Some(now - 60_000),
            last_export_students: Some(300),
            last_ack_unix_ms: Some(now - 30_000),
            ..AgentStatus::default()
        };
        let text = describe_status(&healthy, true, now, None);
        assert!(
            text.starts_with("Healthy: last export 15:59 UTC (300 students), sent and acknowledged 15:59 UTC; outbox empty."),
            "{text}"
        );
        let waiting = AgentStatus {
            state: RunState::CentralUnreachable,
            unreachable_since_unix_ms: Some(now - 20 * 60_000),
            outbox_depth: 3,
            oldest_unacked_unix_ms: Some(now - 20 * 60_000),
            ..AgentStatus::default()
        };
        let text = describe_status(&waiting, true, now, None);
        assert!(
            text.starts_with(
                "Waiting for central since 15:40 UTC (3 batches queued, oldest 20 min)"
            ),
            "{text}"
        );
        let holding = AgentStatus {
            state: RunState::Holding,
            held: Some(HeldDelta {
                id: "held-1".into(),
                reasons: vec!["48 of 59 students would be deleted (81%, limit 10%)".into()],
                causes: Vec::new(),
                upserts: BTreeMap::new(),
                deletes: BTreeMap::new(),
                held_since_unix_ms: None,
            }),
            ..AgentStatus::default()
        };
        let text = describe_status(&holding, false, now, None);
        assert!(text.contains("not running"), "{text}");
        assert!(
            text.contains("Holding a delta for review: 48 of 59 students would be deleted"),
            "{text}"
        );
    }
}
