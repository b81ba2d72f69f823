//! Config sticks and the certificate: the waiting phase (no identity yet, look for a stick
//! and enroll from it) and, while the device runs, the provisioning loop (a new stick
//! re-provisions, the certificate is renewed before it runs out, a revocation is noticed).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::core::{with_core, Shared};
use super::phase::{DaemonError, Life, PhaseEnd};
use crate::clock::{unix, AgentClock};
use crate::config::AgentConfig;
use crate::outbox::unix_ms_now;
use crate::provision::{self, DeviceEnrollment, ProvisionError, Provisioned};
use crate::status::{fmt_when, write_status, AgentStatus, ProvisioningStatus, RunState};
use crate::uplink::{Central, UplinkError};

/// How often the stick roots are searched for a config stick.
const STICK_POLL: Duration = Duration::from_secs(3);
/// First wait before a failed renewal or a transient enrollment failure is tried again.
const RETRY_INITIAL: Duration = Duration::from_secs(30);
/// Longest such wait.
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// What the stick watcher has already dealt with, so a stick left in is handled once.
#[derive(Default)]
pub(super) struct StickWatch {
    /// Bundles handled, by path, with the size and mtime they had.
    seen: BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
    /// Bundles whose enrollment failed for a passing reason: tried again after a while.
    retry: BTreeMap<PathBuf, (std::time::Instant, Duration)>,
    /// The file the current refusal is about.
    refused: Option<PathBuf>,
}

/// What one look at the stick roots found.
enum StickEvent {
    /// Nothing new; `refusal_cleared` when the refused stick was removed.
    Nothing {
        refusal_cleared: bool,
    },
    /// A stick was refused (file and reason, ready for status).
    Refused(String),
    /// Central refused the enrollment, or could not be reached.
    EnrollFailed(String),
    Provisioned,
}

impl StickWatch {
    fn forget_all(&mut self) {
        self.seen.clear();
        self.retry.clear();
    }

    /// Looks at the stick roots once and provisions from the first new bundle. `enrolling`
    /// is called before talking to central.
    async fn look<F, Fut>(
        &mut self,
        config: &AgentConfig,
        clock: &Arc<AgentClock>,
        mut enrolling: F,
    ) -> StickEvent
    where
        F: FnMut(bool) -> Fut,
        Fut: Future<Output = ()>,
    {
        let found = provision::find_bundles(&config.stick_roots);
        self.seen.retain(|p, _| found.contains(p));
        self.retry.retain(|p, _| found.contains(p));
        let refusal_cleared = match &self.refused {
            Some(p) if !found.contains(p) => {
                self.refused = None;
                true
            }
            _ => false,
        };
        for path in found {
            let stamp = std::fs::metadata(&path)
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            if self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            if let Some((at, _)) = self.retry.get(&path) {
                if std::time::Instant::now() < *at {
                    continue;
                }
            }
            let key = match provision::load_stick_key(config) {
                Ok(key) => key,
                Err(error) => {
                    tracing::error!(%error, "a config stick is inserted but the stick key is not usable");
                    self.seen.insert(path.clone(), stamp);
                    self.refused = Some(path);
                    return StickEvent::Refused(error.to_string());
                }
            };
            enrolling(true).await;
            let target = config.drop_share_target();
            let result = provision::provision(&config.state_dir, &key, clock, &path, &target).await;
            enrolling(false).await;
            match result {
                Ok(Provisioned::Enrolled(_)) => {
                    self.seen.insert(path, stamp);
                    self.refused = None;
                    return StickEvent::Provisioned;
                }
                Ok(Provisioned::AlreadyEnrolled(e)) => {
                    tracing::info!(file = %path.display(), device = %e.device, token_id = %e.token_id, "config stick already used by this device; nothing to do");
                    self.seen.insert(path, stamp);
                }
                Err(error @ ProvisionError::Refused { .. }) => {
                    tracing::warn!(%error, "config stick refused; nothing changed");
                    self.seen.insert(path.clone(), stamp);
                    self.refused = Some(path);
                    return StickEvent::Refused(error.to_string());
                }
                Err(error) if error.is_transient() => {
                    let wait = self
                        .retry
                        .get(&path)
                        .map_or(RETRY_INITIAL, |(_, w)| (*w * 2).min(RETRY_MAX));
                    tracing::warn!(file = %path.display(), %error, ?wait, "enrollment failed; trying the stick again later");
                    self.retry
                        .insert(path, (std::time::Instant::now() + wait, wait));
                    return StickEvent::EnrollFailed(error.to_string());
                }
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "enrollment failed; nothing changed");
                    self.seen.insert(path, stamp);
                    return StickEvent::EnrollFailed(error.to_string());
                }
            }
        }
        StickEvent::Nothing { refusal_cleared }
    }
}

/// The phase without an identity: shows "waiting for a config stick" and looks for one.
pub(super) async fn waiting(
    config: &AgentConfig,
    clock: &Arc<AgentClock>,
    status_tx: &watch::Sender<AgentStatus>,
    sticks: &mut StickWatch,
    poke: &tokio::sync::Notify,
    mut stop: watch::Receiver<bool>,
) -> Result<PhaseEnd, DaemonError> {
    let mut status = AgentStatus {
        state: RunState::NotProvisioned,
        provisioning: ProvisioningStatus {
            stick_roots: config
                .stick_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect(),
            ..ProvisioningStatus::default()
        },
        ..AgentStatus::default()
    };
    tracing::info!(roots = %status.provisioning.stick_roots.join(", "), "not provisioned; waiting for a config stick");
    let publish = |status: &mut AgentStatus| {
        status.pid = std::process::id();
        status.version = crate::update::VERSION.to_owned();
        status.updated_unix_ms = unix_ms_now();
        status.provisioning.clock_synced = clock.is_synced();
        status.provisioning.time_floor_unix = unix(clock.floor());
        status.state = if status.provisioning.enrolling {
            RunState::Enrolling
        } else {
            RunState::NotProvisioned
        };
        status.last_error = status
            .provisioning
            .stick_refused
            .clone()
            .or_else(|| status.provisioning.enroll_error.clone());
        write_status(&config.state_dir, status, status_tx);
    };
    publish(&mut status);
    // The hint about a stick root that is itself a stick, shown as the stick's refusal while
    // no stick was really refused.
    let mut hint: Option<String> = None;
    loop {
        let event = {
            let cell = parking_lot::Mutex::new(&mut status);
            sticks
                .look(config, clock, |on| {
                    let mut s = cell.lock();
                    s.provisioning.enrolling = on;
                    publish(&mut s);
                    std::future::ready(())
                })
                .await
        };
        match event {
            StickEvent::Provisioned => return Ok(PhaseEnd::Provisioned),
            StickEvent::Refused(reason) => {
                status.provisioning.stick_refused = Some(reason);
                publish(&mut status);
            }
            StickEvent::EnrollFailed(reason) => {
                status.provisioning.enroll_error = Some(reason);
                publish(&mut status);
            }
            StickEvent::Nothing { refusal_cleared } => {
                if refusal_cleared {
                    status.provisioning.stick_refused = None;
                    status.provisioning.enroll_error = None;
                    publish(&mut status);
                }
            }
        }
        let misplaced = provision::stick_root_hint(&config.stick_roots);
        if misplaced != hint {
            if let Some(text) = &misplaced {
                tracing::warn!("{text}");
            }
        }
        let shown = &status.provisioning.stick_refused;
        let next = if shown.is_none() || *shown == hint {
            misplaced.clone()
        } else {
            shown.clone()
        };
        hint = misplaced;
        if next != status.provisioning.stick_refused {
            status.provisioning.stick_refused = next;
            publish(&mut status);
        }
        tokio::select! {
            _ = tokio::time::sleep(STICK_POLL) => {}
            _ = poke.notified() => sticks.forget_all(),
            _ = stop.changed() => {
                status.state = RunState::Stopped;
                status.updated_unix_ms = unix_ms_now();
                write_status(&config.state_dir, &status, status_tx);
                return Ok(PhaseEnd::Stopped);
            }
        }
    }
}

/// Watches for sticks, renews the certificate and notices an enrollment changed by another
/// process, while the data flow runs. Returns when the device was re-provisioned.
pub(super) async fn provisioning_loop(
    life: &Life<'_>,
    config: &AgentConfig,
    core: &Shared,
    central: &Central,
    mut enrollment: Option<DeviceEnrollment>,
    sticks: &mut StickWatch,
) -> PhaseEnd {
    let Life {
        installed,
        clock,
        poke,
        ..
    } = *life;
    let mut renew_after: Option<std::time::Instant> = None;
    let mut renew_wait = RETRY_INITIAL;
    loop {
        // Another process (`skolebro-agent provision`) may have enrolled the device anew.
        let on_disk = DeviceEnrollment::load(&config.state_dir).ok().flatten();
        if on_disk.as_ref().map(|e| &e.token_id) != enrollment.as_ref().map(|e| &e.token_id) {
            tracing::info!("the enrollment changed on disk; restarting as the new device");
            return PhaseEnd::Provisioned;
        }

        let event = {
            let core = core.clone();
            sticks
                .look(installed, clock, move |on| {
                    let core = core.clone();
                    async move { with_core(&core, move |c| c.provisioning(|p| p.enrolling = on)).await }
                })
                .await
        };
        match event {
            StickEvent::Provisioned => return PhaseEnd::Provisioned,
            StickEvent::Refused(reason) => {
                with_core(core, move |c| {
                    c.provisioning(|p| p.stick_refused = Some(reason))
                })
                .await
            }
            StickEvent::EnrollFailed(reason) => {
                with_core(core, move |c| {
                    c.provisioning(|p| p.enroll_error = Some(reason))
                })
                .await
            }
            StickEvent::Nothing { refusal_cleared } => {
                if refusal_cleared {
                    with_core(core, |c| {
                        c.provisioning(|p| {
                            p.stick_refused = None;
                            p.enroll_error = None;
                        })
                    })
                    .await
                }
            }
        }

        let synced_now = clock.synced_now();
        let floor = unix(clock.floor());
        with_core(core, move |c| {
            c.provisioning(|p| {
                p.clock_synced = synced_now.is_some();
                // The floor is reported by the hour, so the status file is not rewritten
                // every few seconds.
                if floor.abs_diff(p.time_floor_unix) >= 3600 {
                    p.time_floor_unix = floor;
                }
            })
        })
        .await;

        if let Some(current) = &enrollment {
            let due = current.cert_validity().map(|(from, to)| {
                let lifetime = to.duration_since(from).unwrap_or_default();
                let early = lifetime.mul_f64(config.renew_before_fraction.clamp(0.0, 1.0));
                (to.checked_sub(early).unwrap_or(from), to)
            });
            let expired = match (synced_now, due) {
                (Some(now), Some((_, to))) if now >= to => Some(format!(
                    "the device certificate expired at {}; insert a new config stick",
                    fmt_when(unix(to) * 1000, unix_ms_now())
                )),
                _ => None,
            };
            with_core(core, move |c| c.certificate_problem(expired)).await;
            let waited = renew_after.is_none_or(|t| std::time::Instant::now() >= t);
            if let (Some((renew_at, _)), true) = (due, waited) {
                if clock.now() >= renew_at {
                    match provision::renew(&config.state_dir, central, current, clock).await {
                        Ok(next) => match provision::central_client(
                            &next.cert_pem,
                            &next.key_pem,
                            &next.central_ca_pem,
                            clock.clone(),
                        ) {
                            Ok(client) => {
                                central.replace_client(client);
                                let not_after = next.cert_validity().map(|(_, to)| unix(to));
                                let renewed = next.renewed_unix;
                                tracing::info!(device = %next.device, not_after, "certificate renewed");
                                with_core(core, move |c| {
                                    c.provisioning(|p| {
                                        p.cert_not_after_unix = not_after;
                                        p.renewed_unix = renewed;
                                    })
                                })
                                .await;
                                enrollment = Some(next);
                                renew_after = None;
                                renew_wait = RETRY_INITIAL;
                            }
                            Err(error) => {
                                tracing::error!(%error, "the renewed certificate cannot be used");
                            }
                        },
                        Err(ProvisionError::Renew(UplinkError::Revoked)) => {
                            tracing::error!(
                                "central revoked this device; a new config stick enrolls it again"
                            );
                            with_core(core, |c| c.revoked()).await;
                            renew_after = Some(std::time::Instant::now() + RETRY_MAX);
                        }
                        Err(error) => {
                            tracing::warn!(%error, wait = ?renew_wait, "certificate renewal failed; trying again later");
                            renew_after = Some(std::time::Instant::now() + renew_wait);
                            renew_wait = (renew_wait * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
        }

        tokio::select! {
            _ = tokio::time::sleep(STICK_POLL) => {}
            _ = poke.notified() => sticks.forget_all(),
        }
    }
}
