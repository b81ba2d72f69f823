//! The pulling stage of the running phase, in place of the watcher and the pipeline when the
//! site's SAS serves OneRoster REST (`[source] kind = "oneroster-rest"`): every
//! `every_minutes` it pulls the roster with [`crate::pull`], runs the site check on it and
//! offers it to the enqueue stage in [`Core`], as the pipeline does with a file.
//!
//! Full or delta: a pull is full when `delta` is off, when no full pull was taken in yet,
//! when the last one is `full_every_hours` old, and whenever central needs a whole roster
//! (a gap or a `resync`); otherwise it asks for what changed since the last pull taken in
//! began, by the service's clock (the `Date` of its first answer, which is truncated to the
//! second and so never later than the read; less [`OVERLAP`] of the Pi's clock if it sends
//! none). The service's clock matters: its change feed reports as `tobedeleted` what could be
//! read at `since`, so a `since` before the records existed would miss their deletion. (One
//! that was created within the second before that first answer and deleted later is still
//! missed, and goes at the next full pull: a missed deletion waits, it never deletes wrongly.)
//! What was taken in is remembered in
//! `<state_dir>/pull.json`, and only after the enqueue stage took the export (enqueued, or
//! found unchanged): a pull that failed, waited for room or was held is asked for again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use crate::config::{AgentConfig, RestSource};
use crate::enqueue::OfferOutcome;
use crate::pull::{now_unix_ms, PullKind, Pulled, RestClient};
use crate::state::write_atomic_private;
use skolebro_roster::site::foreign_schools;

/// Without the service's `Date`, a delta asks from this long before the last pull taken in
/// started by the Pi's clock: a record stamped by a clock a little behind the Pi's is asked
/// for twice rather than missed (twice is harmless: it diffs as unchanged).
pub(super) const OVERLAP: Duration = Duration::from_secs(300);

/// The record of the pulls taken in, kept in the state folder.
const PULL_STATE: &str = "pull.json";

/// What `pull.json` holds: when the last full pull taken in started (by the Pi's clock) and
/// the `since` of the next delta (by the service's clock), in Unix ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PullState {
    last_full_unix_ms: Option<i64>,
    last_unix_ms: Option<i64>,
}

impl PullState {
    fn load(path: &Path) -> PullState {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self, path: &Path) {
        let saved = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomic_private(path, &bytes));
        if let Err(error) = saved {
            tracing::error!(%error, "cannot record the pull taken in; the next pull is full");
        }
    }

    /// What the next pull asks for.
    fn next(&self, rest: &RestSource, now: i64, central_needs_all: bool) -> PullKind {
        let full_every =
            i64::try_from(rest.full_every_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        match (self.last_full_unix_ms, self.last_unix_ms) {
            (Some(full), Some(last))
                if rest.delta && !central_needs_all && now.saturating_sub(full) < full_every =>
            {
                PullKind::Since(last)
            }
            _ => PullKind::Full,
        }
    }
}

/// Pulls on the schedule until stopped.
pub(super) async fn pull_loop(
    config: AgentConfig,
    rest: RestSource,
    core: Shared,
    wake: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let options = config.reader_options();
    let state_path: PathBuf = config.state_dir.join(PULL_STATE);
    let every = Duration::from_secs(rest.every_minutes.saturating_mul(60).max(1));
    let mut client: Option<RestClient> = None;
    loop {
        if client.is_none() {
            match RestClient::new(&rest) {
                Ok(made) => client = Some(made),
                Err(error) => {
                    tracing::error!(%error, "cannot set up the OneRoster REST source");
                    let why = format!("pulling from the SAS: {error}");
                    with_core(&core, move |c| c.pull_failed(why)).await;
                }
            }
        }
        if let Some(client) = client.as_mut() {
            let state = PullState::load(&state_path);
            let needs_all = with_core(&core, |c| c.needs_full_roster()).await;
            let kind = state.next(&rest, now_unix_ms(), needs_all);
            let started = now_unix_ms();
            tracing::info!(?kind, "pulling from the SAS");
            let pulled = tokio::select! {
                pulled = client.pull(kind, &options) => pulled,
                _ = stop.changed() => return,
            };
            match pulled {
                Ok(pulled) => {
                    let since = match pulled.began_at_service_ms {
                        Some(service) => service,
                        None => started.saturating_sub(OVERLAP.as_millis() as i64),
                    };
                    if offer(&config, &core, &wake, kind, pulled).await {
                        let taken = PullState {
                            last_full_unix_ms: match kind {
                                PullKind::Full => Some(started),
                                PullKind::Since(_) => state.last_full_unix_ms,
                            },
                            last_unix_ms: Some(since),
                        };
                        taken.save(&state_path);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "pull from the SAS failed; nothing of it was used");
                    let why = format!("pulling from the SAS failed: {error}");
                    with_core(&core, move |c| c.pull_failed(why)).await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs the site check on a complete pull and offers it. True when the enqueue stage took it
/// (enqueued, or unchanged), so the pull counts as taken in; false when it was refused, not
/// offered, waits for room or is held.
async fn offer(
    config: &AgentConfig,
    core: &Shared,
    wake: &mpsc::Sender<()>,
    kind: PullKind,
    pulled: Pulled,
) -> bool {
    let Pulled {
        export,
        pages,
        records,
        ..
    } = pulled;
    let name = match kind {
        PullKind::Full => format!("OneRoster REST full pull ({pages} pages, {records} records)"),
        PullKind::Since(_) => {
            format!("OneRoster REST delta pull ({pages} pages, {records} records)")
        }
    };
    let foreign = foreign_schools(&export, &config.site_schools, &name);
    if !foreign.is_empty() {
        with_core(core, move |c| c.refuse_foreign_pull(&name, export, foreign)).await;
        return false;
    }
    let outcome = with_core(core, move |c| c.ingest_pulled(&name, export)).await;
    match outcome {
        Ok(Some(OfferOutcome::Enqueued { .. })) => {
            let _ = wake.try_send(());
            true
        }
        Ok(Some(OfferOutcome::Unchanged)) => true,
        Ok(Some(OfferOutcome::Waiting | OfferOutcome::Held(_)) | None) => false,
        Err(error) => {
            tracing::error!(%error, "cannot enqueue the pulled roster; the next pull tries again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(delta: bool) -> RestSource {
        toml::from_str::<RestSource>(&format!(
            r#"base_url = "http://127.0.0.1:1/or"
               token_url = "http://127.0.0.1:1/token"
               client_id = "agent"
               client_secret_file = "secret"
               delta = {delta}
               full_every_hours = 24"#
        ))
        .unwrap()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_delta_is_asked_only_after_a_full_pull_was_taken_in_and_not_when_central_needs_all() {
        let now = 100 * HOUR;
        let never = PullState::default();
        assert_eq!(never.next(&rest(true), now, false), PullKind::Full);
        let recent = PullState {
            last_full_unix_ms: Some(now - 2 * HOUR),
            last_unix_ms: Some(now - HOUR),
        };
        assert_eq!(
            recent.next(&rest(true), now, false),
            PullKind::Since(now - HOUR)
        );
        assert_eq!(recent.next(&rest(true), now, true), PullKind::Full);
        assert_eq!(recent.next(&rest(false), now, false), PullKind::Full);
        let stale = PullState {
            last_full_unix_ms: Some(now - 25 * HOUR),
            ..recent
        };
        assert_eq!(stale.next(&rest(true), now, false), PullKind::Full);
    }
}
