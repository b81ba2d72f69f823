//! The front panel's loop (the LED, the button and the watchdog) over the panel binding in
//! [`crate::panel`]: it runs on its own thread for the daemon's whole life.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::phase::CoreSlot;
use crate::status::{AgentStatus, RunState};

/// How long the core may stay busy (an export being read and sealed holds it) before the
/// watchdog stops being kicked and the hardware resets the Pi.
const CORE_DEADLINE: Duration = Duration::from_secs(120);

/// The front panel's loop, on its own thread for the daemon's whole life: every `TICK_MS` it
/// shows the daemon's state on the LED, reads the button (a short press pushes the outbox
/// now; a long hold looks at the stick again, even one already handled), and kicks the
/// watchdog as long as the core of the running phase answers. With `panel = "none"` and no
/// watchdog there is nothing to do, and it only waits to be stopped.
pub(super) fn drive_panel(
    config: &crate::panel::PanelConfig,
    live: &CoreSlot,
    status: watch::Receiver<AgentStatus>,
    wake: &mpsc::Sender<()>,
    poke: &tokio::sync::Notify,
    stop: &watch::Receiver<bool>,
) {
    use crate::panel::{Gesture, Panel, PanelKind, TICK_MS};
    if config.kind == PanelKind::None && config.watchdog.is_none() {
        // Nothing to show, read or kick: sleep until stopped instead of waking the Pi 20
        // times a second for nothing. This runs on a blocking thread of the daemon's runtime.
        let mut stop = stop.clone();
        tokio::runtime::Handle::current().block_on(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        return;
    }
    let mut panel = match Panel::open(config) {
        Ok(panel) => panel,
        Err(error) => {
            tracing::error!(%error, "front panel unavailable; running without it");
            return;
        }
    };
    let tick = Duration::from_millis(u64::from(TICK_MS));
    let deadline = u32::try_from(CORE_DEADLINE.as_millis() / tick.as_millis()).unwrap_or(u32::MAX);
    let core_task = panel.register("core", deadline).ok();
    let mut shown = None;
    // A lifecycle that was dropped rather than stopped (its runtime shut down under it)
    // never sends `true`: a closed channel ends the thread too, or the runtime's shutdown
    // would wait for this loop forever.
    while !*stop.borrow() && stop.has_changed().is_ok() {
        std::thread::sleep(tick);
        let state = panel_state(&status.borrow());
        if shown != Some(state) {
            panel.show(state);
            shown = Some(state);
        }
        if let Some(task) = core_task {
            let core = live.lock().clone();
            let answers = core.is_none_or(|core| core.try_lock().is_some());
            if answers {
                let _ = panel.alive(task);
            }
        }
        let ticked = panel.tick();
        for fault in &ticked.faults {
            tracing::warn!("front panel: {fault}");
        }
        match ticked.gesture {
            Some(Gesture::SyncNow) => {
                tracing::info!("button: sync now");
                let _ = wake.try_send(());
            }
            Some(Gesture::Reprovision) => {
                tracing::info!("button: looking at the config stick again");
                poke.notify_one();
            }
            None => {}
        }
    }
}

/// The LED pattern for a status: a refused stick shows as an error while it is inserted, and
/// a healthy device whose offers are frozen (no fresh signed statement for days) as central
/// unreachable: central answers, but not with anything the device can trust as current.
pub(super) fn panel_state(status: &AgentStatus) -> crate::panel::AgentState {
    use crate::panel::AgentState;
    let frozen = status.freshness.as_ref().is_some_and(|f| f.frozen);
    match status.state {
        RunState::Starting | RunState::Healthy if frozen => AgentState::CentralUnreachable,
        RunState::NotProvisioned
            if status.provisioning.stick_refused.is_some()
                || status.provisioning.enroll_error.is_some() =>
        {
            AgentState::Error
        }
        RunState::NotProvisioned => AgentState::NotProvisioned,
        RunState::Enrolling => AgentState::Enrolling,
        RunState::Holding => AgentState::HoldingDelta,
        RunState::CentralUnreachable => AgentState::CentralUnreachable,
        RunState::Error | RunState::Revoked => AgentState::Error,
        RunState::Starting | RunState::Healthy | RunState::Stopped => AgentState::Healthy,
    }
}
