//! The front panel's loop (the LED, the button and the watchdog) over the panel binding in
//! [`crate::panel`]: it runs on its own thread for the daemon's whole life.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::phase::CoreSlot;
use crate::status::{AgentStatus, RunState};
use skolebro_systemd::Notifier;

/// How long the core may stay busy (an export being read and sealed holds it) before the
/// watchdog stops being kicked and the hardware resets the Pi.
const CORE_DEADLINE: Duration = Duration::from_secs(120);

/// The front panel's loop, on its own thread for the daemon's whole life: every tick it
/// shows the daemon's state on the LED, reads the button (a short press pushes the outbox
/// now; a long hold looks at the stick again, even one already handled), and kicks the
/// hardware watchdog and feeds systemd's (`WatchdogSec=`) as long as the core of the running
/// phase answers. With a panel or a hardware watchdog it ticks every `TICK_MS`; with only
/// systemd's watchdog, at half its interval; with none of them there is nothing to do, and it
/// only waits to be stopped.
pub(super) fn drive_panel(
    config: &crate::panel::PanelConfig,
    live: &CoreSlot,
    status: watch::Receiver<AgentStatus>,
    wake: &mpsc::Sender<()>,
    poke: &tokio::sync::Notify,
    systemd: Option<&Notifier>,
    stop: &watch::Receiver<bool>,
) {
    use crate::panel::{Gesture, Panel, PanelKind, TICK_MS};
    let systemd_watchdog = systemd.and_then(Notifier::watchdog);
    let tick = if config.kind != PanelKind::None || config.watchdog.is_some() {
        Duration::from_millis(u64::from(TICK_MS))
    } else if let Some(interval) = systemd_watchdog {
        (interval / 2).max(Duration::from_millis(u64::from(TICK_MS)))
    } else {
        // Nothing to show, read or kick: sleep until stopped instead of waking the Pi 20
        // times a second for nothing. This runs on a blocking thread of the daemon's runtime.
        let mut stop = stop.clone();
        tokio::runtime::Handle::current().block_on(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        return;
    };
    let mut panel = match Panel::open(config) {
        Ok(panel) => panel,
        Err(error) if systemd_watchdog.is_some() => {
            tracing::error!(%error, "front panel unavailable; feeding systemd's watchdog only");
            Panel::none()
        }
        Err(error) => {
            tracing::error!(%error, "front panel unavailable; running without it");
            return;
        }
    };
    let deadline = u32::try_from(CORE_DEADLINE.as_millis() / tick.as_millis().max(1))
        .unwrap_or(u32::MAX)
        .max(1);
    let core_task = panel.register("core", deadline).ok();
    let mut shown = None;
    // systemd wants a `WATCHDOG=1` within its interval; at the panel's 50 ms tick, sending one
    // per tick would wake it 20 times a second, so send at half the interval.
    let feed_every = systemd_watchdog.map(|interval| interval / 2);
    let mut fed_at: Option<Instant> = None;
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
        if let (Some(systemd), Some(every)) = (systemd, feed_every) {
            if ticked.alive && fed_at.is_none_or(|at| at.elapsed() >= every) {
                systemd.watchdog_alive();
                fed_at = Some(Instant::now());
            }
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
