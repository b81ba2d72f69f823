//! The daemon's state as systemd shows it: a one-line `STATUS=` for `systemctl status`, sent
//! through [`skolebro_systemd`] whenever the line changes (not on every `status.json` write, so
//! a quiet agent sends nothing).

use std::sync::Arc;

use tokio::sync::watch;

use crate::status::{AgentStatus, RunState};
use skolebro_systemd::Notifier;

/// Sends the status line on every change of it until the daemon stops.
pub(super) async fn report_status(
    systemd: Arc<Notifier>,
    mut status: watch::Receiver<AgentStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sent = String::new();
    loop {
        let line = status_line(&status.borrow_and_update());
        if line != sent {
            systemd.status(&line);
            sent = line;
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// What `systemctl status skolebro-agent` shows: the state in words, then what waits in the
/// outbox. Counts and states only: no file name, no pupil.
fn status_line(status: &AgentStatus) -> String {
    let state = match status.state {
        RunState::Starting => "starting".to_owned(),
        RunState::NotProvisioned => "waiting for a config stick".to_owned(),
        RunState::Enrolling => "enrolling with central".to_owned(),
        RunState::Healthy => "healthy".to_owned(),
        RunState::Holding => {
            "holding an export back until an operator releases or rejects it at central".to_owned()
        }
        RunState::CentralUnreachable => "central unreachable, retrying".to_owned(),
        RunState::Error => match &status.last_error {
            Some(error) => format!("error: {error}"),
            None => "error".to_owned(),
        },
        RunState::Revoked => "revoked by central: needs a new config stick".to_owned(),
        RunState::Stopped => "stopped".to_owned(),
    };
    match status.outbox_depth {
        0 => state,
        1 => format!("{state}; 1 batch waiting to be sent"),
        n => format!("{state}; {n} batches waiting to be sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_state_and_what_waits_in_the_outbox() {
        let mut status = AgentStatus {
            state: RunState::Healthy,
            ..AgentStatus::default()
        };
        assert_eq!(status_line(&status), "healthy");
        status.outbox_depth = 1;
        assert_eq!(status_line(&status), "healthy; 1 batch waiting to be sent");
        status.state = RunState::CentralUnreachable;
        status.outbox_depth = 3;
        assert_eq!(
            status_line(&status),
            "central unreachable, retrying; 3 batches waiting to be sent"
        );
        status.state = RunState::Error;
        status.outbox_depth = 0;
        status.last_error = Some("outbox is full".to_owned());
        assert_eq!(status_line(&status), "error: outbox is full");
    }
}
