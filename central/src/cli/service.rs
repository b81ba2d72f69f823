//! What `serve` tells systemd (`Type=notify` in packaging/skolebro-central.service):
//! `READY=1` once every listener is bound and the store opened, so units ordered after
//! central start only then; a `STATUS=` line saying whether the store answers, which
//! `systemctl status` shows operations without a look at the logs; `WATCHDOG=1` while the
//! runtime runs its timers (a wedged process is restarted); `STOPPING=1` on the way out.
//!
//! The watchdog is fed whether or not the store answers: a restart does not bring a database
//! back, and a central that restarts in a loop serves nothing either. The status line says it.

use std::sync::Arc;
use std::time::Duration;

use skolebro_central::store::Store;
use skolebro_central::RunningServer;
use skolebro_systemd::Notifier;
use tokio::task::JoinHandle;

/// How often the status line is refreshed when systemd set no watchdog.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// Tells systemd that central is ready and keeps its status line and watchdog current until
/// the returned task is aborted; `None` outside systemd.
pub(crate) fn spawn(running: &RunningServer, store: Arc<dyn Store>) -> Option<Service> {
    let notifier = Arc::new(Notifier::from_env()?);
    let listening = format!("serving devices on {}", running.device_addr);
    notifier.status(&listening);
    notifier.ready();
    let interval = notifier
        .watchdog()
        .map_or(STATUS_INTERVAL, |watchdog| watchdog / 2);
    let task = tokio::spawn({
        let notifier = Arc::clone(&notifier);
        async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                let problem = store.windows(None).await.err().map(|e| e.to_string());
                notifier.status(&match problem {
                    None => listening.clone(),
                    Some(error) => format!("store unreachable: {error}"),
                });
                notifier.watchdog_alive();
            }
        }
    });
    Some(Service { notifier, task })
}

/// The notification task of a running `serve`.
pub(crate) struct Service {
    notifier: Arc<Notifier>,
    task: JoinHandle<()>,
}

impl Service {
    /// Says `STOPPING=1` and ends the status and watchdog task: what follows is a shutdown,
    /// not a hang.
    pub(crate) fn stopping(self) {
        self.task.abort();
        self.notifier.stopping();
    }
}
