//! The heartbeat loop of the running phase: every few minutes it posts the agent's state
//! from [`Core`] with the uplink ([`Central::heartbeat`]), applies central's commands to the
//! core, checks central's signed statement ([`Freshness`]: the signed time, and whether the
//! offer is current), applies central's key rotations ([`TrustedKeys`]) and hands the offer
//! that passes to the [`Updater`].
//!
//! The body ([`body`]) is the status `status.json` holds, in the protocol's shape: counts,
//! states, the held delta's counts, and in words only what the agent masked itself (the
//! newest arrival's file name) or wrote itself (outcomes, the drop share's and the source's
//! errors), each cut to the protocol's bound. The drop share's outcome is read from disk
//! before the core's lock is taken, as the update and freshness parts are read outside it:
//! the lock serialises the enqueue stage, which a status file on a slow SD card must not hold
//! up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skolebro_protocol::api::Heartbeat;
use skolebro_protocol::drop_share::ShareStatus;
use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use crate::drop_share;
use crate::freshness::Freshness;
use crate::outbox::unix_ms_now;
use crate::status::AgentStatus;
use crate::trusted_keys::TrustedKeys;
use crate::update::Updater;
use crate::uplink::{Central, UplinkError};

/// What takes central's answer besides the core: the statement check, the trusted keys,
/// then the updater.
pub(super) struct Answers {
    pub updater: Arc<Updater>,
    pub freshness: Arc<Freshness>,
    pub keys: TrustedKeys,
}

/// Reports the agent's state every `every`, applies central's commands and hands the update
/// part of the answer, once its statement holds, to the updater. `state_dir` is the state
/// folder, where the drop share's outcome is read.
pub(super) async fn heartbeat_loop(
    core: Shared,
    state_dir: PathBuf,
    central: Central,
    every: Duration,
    answers: Answers,
    wake_uplink: mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Answers {
        updater,
        freshness,
        keys,
    } = answers;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let waiting = updater.waiting_for_space();
        with_core(&core, move |c| c.update_waiting(waiting)).await;
        let share = drop_share::status(&state_dir);
        let mut heartbeat = with_core(&core, move |c| body(c.current(), share)).await;
        heartbeat.target = Some(updater.target());
        heartbeat.update = updater.report();
        heartbeat.freshness = freshness.report();
        match central.heartbeat(&heartbeat).await {
            Ok(answer) => {
                // Before the offer: a manifest signed with a rotated key is checked with it.
                if !answer.key_rotations.is_empty() {
                    let keys = keys.clone();
                    let rotations = answer.key_rotations.clone();
                    // Each result is logged where it happens.
                    let _ = tokio::task::spawn_blocking(move || keys.apply(&rotations)).await;
                }
                let received = freshness.receive(answer.statement.as_deref(), answer.release);
                let status = freshness.status();
                with_core(&core, move |c| c.freshness(status)).await;
                updater.answered(heartbeat.update.as_ref(), received.offer, &central);
                for command in answer.commands {
                    tracing::info!(command = %command_words(&command), "command from central");
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
                // Days without central count towards frozen as well.
                let status = freshness.status();
                with_core(&core, move |c| c.freshness(status)).await;
            }
        }
    }
}

/// The heartbeat body for `status`, with `drop_share`, what became of the share's settings;
/// the loop adds the update and freshness parts, which live outside the core. No disk here:
/// it runs under the core's lock.
fn body(status: &AgentStatus, drop_share: Option<ShareStatus>) -> Heartbeat {
    let now = unix_ms_now();
    let mut heartbeat = Heartbeat {
        version: crate::update::VERSION.to_owned(),
        state: status.state.api_state(),
        outbox_depth: status.outbox_depth,
        outbox_bytes: status.outbox_bytes,
        oldest_unacked_age_s: status
            .oldest_unacked_unix_ms
            .map(|t| now.saturating_sub(t) / 1000),
        last_export_unix_ms: status
            .last_export_unix_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        deviations: status.deviations,
        deviation_groups: status.deviation_groups.clone(),
        held: status.held.clone(),
        target: Some(crate::update::TARGET.to_owned()),
        update: None,
        freshness: None,
        arrival: status.last_arrival.clone(),
        drop_share,
        source_problem: status.source_problem.clone(),
    };
    heartbeat.clip_texts();
    heartbeat
}

/// A command from central in words for the log (`reject held delta held-1`).
fn command_words(command: &skolebro_protocol::api::Command) -> String {
    use skolebro_protocol::api::Command;
    match command {
        Command::Resync => "send a full snapshot".to_owned(),
        Command::Release { held_id } => format!("release held delta {held_id}"),
        Command::Reject { held_id } => format!("reject held delta {held_id}"),
        Command::DropShare { settings } => format!(
            "drop share {} for {}, cap {} MiB{}",
            if settings.enabled { "on" } else { "off" },
            settings.account,
            settings.size_cap_mib,
            if settings.password_nt_hash.is_some() {
                ", new password"
            } else {
                ""
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Arrival, RunState};

    #[test]
    fn the_body_carries_the_newest_arrival_the_share_s_outcome_and_the_source_s_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut status = AgentStatus {
            state: RunState::Healthy,
            ..AgentStatus::default()
        };
        let before = body(&status, drop_share::status(dir.path()));
        assert_eq!(
            (before.arrival, before.drop_share, before.source_problem),
            (None, None, None)
        );
        std::fs::write(
            dir.path().join("drop-share.json"),
            r#"{"enabled": false, "account": "sas-eksport", "size_cap_mib": 1,
                "applied_unix_ms": 1, "last_error": "no password on this Pi",
                "last_error_unix_ms": 2}"#,
        )
        .unwrap();
        status.last_arrival = Some(Arrival {
            file: "elevliste.csv".into(),
            written_unix_ms: 3,
            outcome: "refused: ".repeat(100),
            refused: true,
            ..Arrival::default()
        });
        status.source_problem = Some("the share refused the account".into());
        let heartbeat = body(&status, drop_share::status(dir.path()));
        let arrival = heartbeat.arrival.expect("the arrival");
        assert!(arrival.refused && arrival.file == "elevliste.csv");
        assert_eq!(
            arrival.outcome.chars().count(),
            skolebro_protocol::api::MAX_REPORT_CHARS,
            "cut to the protocol's bound"
        );
        let share = heartbeat.drop_share.expect("the share's outcome");
        assert_eq!(share.last_error.as_deref(), Some("no password on this Pi"));
        assert_eq!(
            share.applied.map(|a| a.account).as_deref(),
            Some("sas-eksport")
        );
        assert_eq!(
            heartbeat.source_problem.as_deref(),
            Some("the share refused the account")
        );
    }

    #[test]
    fn the_body_cuts_the_share_s_error_it_is_handed() {
        let share = ShareStatus {
            last_error: Some("x".repeat(2000)),
            last_error_unix_ms: Some(2),
            ..ShareStatus::default()
        };
        let heartbeat = body(&AgentStatus::default(), Some(share));
        let error = heartbeat
            .drop_share
            .and_then(|s| s.last_error)
            .expect("the share's error");
        assert_eq!(
            error.chars().count(),
            skolebro_protocol::api::MAX_REPORT_CHARS
        );
    }
}
