//! The heartbeat loop of the running phase: every few minutes it posts the agent's state
//! from [`Core`] with the uplink ([`Central::heartbeat`]), applies central's commands to the
//! core, checks central's signed statement ([`Freshness`]: the signed time, and whether the
//! offer is current), applies central's key rotations ([`TrustedKeys`]) and hands the offer
//! that passes to the [`Updater`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use crate::freshness::Freshness;
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
/// part of the answer, once its statement holds, to the updater.
pub(super) async fn heartbeat_loop(
    core: Shared,
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
        let mut heartbeat = with_core(&core, |c| c.heartbeat()).await;
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
