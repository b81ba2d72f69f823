//! The daemon (`skolebro-agent run`): wires the stages of the data flow together on a tokio
//! runtime and keeps `status.json` up to date.
//!
//! Its life has two phases (`lifecycle`). Without an identity (no enrollment in the state
//! folder, no `[identity]` in `agent.toml`) it waits for a config stick: it polls the stick
//! roots every few seconds, shows "not provisioned" on the panel, and enrolls from the first
//! stick that passes ([`crate::provision`]). With an identity it runs the data flow below,
//! while a provisioning loop keeps watching for a new stick (a new token re-provisions: the
//! data flow stops, the chain starts afresh for the new device, and it starts again), renews
//! the certificate before it runs out, and notices central revoking the device.
//!
//! ```text
//! watch::run ──paths──▶ pipeline (read + validate on a blocking thread, Enqueuer::offer)
//!     ▲ retry                 │ wake
//!     └───────────────────────┘──▶ uplink::push_loop ──▶ central /v1/batches
//!                                  uplink::heartbeat_loop ◀─▶ central /v1/heartbeat
//!                                         └──▶ update::Updater (offered releases, trial)
//! ```
//! With `[source] kind = "oneroster-rest"` the pulling stage (`pulling`, over [`crate::pull`])
//! takes the place of the watcher and the pipeline: it pulls the roster from the SAS on a
//! schedule and offers it to the same enqueue stage. With `[source] kind = "smb-share"` the share stage
//! (`share_pull`, over [`crate::share`]) runs beside the watcher: it copies each stable
//! export from the school's file server into the drop folder, and removes it from the share
//! once central acknowledged it. Stages talk through bounded channels. The enqueue stage ([`Enqueuer`]: checkpoint and
//! outbox) lives in one [`Core`] behind a mutex; every operation on it runs on a blocking
//! thread because it fsyncs.
//!
//! Files: with `after_ingest = "delete"` an export is removed once its batch is durable in
//! the outbox, or once it is known to change nothing, or once its delta is held (the held
//! export is kept in memory for release; see [`HeldDelta`](crate::enqueue::HeldDelta)). An
//! export waiting for room in the outbox keeps its file until it is enqueued or a newer export
//! supersedes it. A file that cannot be read at all is moved to `<drop>/rejected/` with a
//! `.error.txt` beside it so school IT can look at it; only the newest rejected file is kept,
//! so personal data does not pile up there, and a rejected file is never read again. So is an
//! export the SAS wrote before the newest one taken in (by the file's modification time, kept
//! in `status.json`): a stale file dropped late would otherwise turn central's roster back.
//! And so is an export the agent stopped while reading (the poison-pill rule: `reading`
//! records the file before each read, and the next start sets a recorded file aside).
//!
//! The newest validated export is kept in memory: after a gap or a `resync` command the agent
//! needs a full snapshot, and the export file is gone by then. After a restart there is none
//! until the SAS drops the next export; the checkpoint's `needs_snapshot` survives, so that
//! export goes out as the snapshot.

mod core;
mod front_panel;
mod heartbeat;
mod phase;
mod pipeline;
mod pulling;
mod push;
mod reading;
mod rejected;
mod service;
mod share_pull;
mod sticks;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

pub use self::core::{describe, with_core, Core, Shared};
use self::front_panel::drive_panel;
pub use self::phase::DaemonError;
use self::phase::{CoreSlot, Life, PhaseEnd, WakeSlot};
use self::pipeline::pipeline;
pub use self::rejected::REJECTED_DIR;
use self::sticks::{provisioning_loop, waiting, StickWatch};
use crate::clock::{unix, AgentClock};
use crate::config::{AgentConfig, SourceConfig};
use crate::enqueue::Enqueuer;
use crate::freshness::Freshness;
use crate::identity::DeviceCredentials;
use crate::provision::{self, DeviceEnrollment, EnrollmentError};
use crate::status::{AgentStatus, ProvisioningStatus};
use crate::trusted_keys::TrustedKeys;
use crate::update::Updater;
use crate::uplink::{Backoff, Central};
use skolebro_systemd::Notifier;

/// A running daemon: its status feed and the means to stop it.
pub struct DaemonHandle {
    /// Every status the daemon writes, as it writes it (also in `status.json`).
    pub status: watch::Receiver<AgentStatus>,
    /// Becomes true when an update wants the process restarted by its supervisor.
    pub restart: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
    systemd: Option<Arc<Notifier>>,
}

impl DaemonHandle {
    /// Asks the daemon to stop, and waits until it has (current steps finish, the outbox is
    /// closed, `status.json` says `stopped`).
    pub async fn stop(self) -> Result<(), DaemonError> {
        if let Some(systemd) = &self.systemd {
            systemd.stopping();
        }
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(DaemonError::Task(error.to_string())),
        }
    }
}

/// The identity the daemon runs as, and the config that goes with it.
struct Device {
    /// `agent.toml` with the stick's site settings applied (see [`crate::config`]).
    config: AgentConfig,
    creds: DeviceCredentials,
    /// `None` for a device set up by hand in `agent.toml`.
    enrollment: Option<DeviceEnrollment>,
}

/// Who the device is: its enrollment, else the identity `agent.toml` names, else nobody.
/// An enrolled device pulls from the share its stick named unless `agent.toml` names a
/// `[source]` (see [`crate::config`]).
fn resolve(installed: &AgentConfig) -> Result<Option<Device>, DaemonError> {
    if let Some(enrollment) = DeviceEnrollment::load(&installed.state_dir)? {
        let mut config = installed
            .clone()
            .with_site_settings(&enrollment.settings()?)
            .with_stick_source(crate::share_source::load(&installed.state_dir)?);
        config.site_schools = enrollment.schools.clone();
        config.check_daemon_settings()?;
        let creds = enrollment.credentials()?;
        return Ok(Some(Device {
            config,
            creds,
            enrollment: Some(enrollment),
        }));
    }
    if installed.central.is_some() || installed.identity.is_some() {
        let creds = DeviceCredentials::load(installed)?;
        return Ok(Some(Device {
            config: installed.clone(),
            creds,
            enrollment: None,
        }));
    }
    Ok(None)
}

/// Starts the daemon on the current tokio runtime (which must be multi-threaded or have
/// blocking threads available) and returns at once. For the in-process demo and tests.
/// An identity that is configured but cannot be loaded fails here; no identity at all
/// starts the daemon waiting for a config stick.
pub async fn start(config: AgentConfig) -> Result<DaemonHandle, DaemonError> {
    config.check_daemon_settings()?;
    resolve(&config)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| EnrollmentError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    let clock = Arc::new(AgentClock::open(
        Some(&config.state_dir),
        &config.clock_synced_file,
    )?);
    let (status_tx, status_rx) = watch::channel(AgentStatus::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(addr) = config.metrics_listen {
        crate::metrics::serve(addr, status_rx.clone(), stop_rx.clone()).await?;
    }
    let updater = Updater::open(&config, clock.clone());
    let restart = updater.restart_wanted();
    tokio::spawn(updater.clone().watch_trial());
    let systemd = Notifier::from_env().map(Arc::new);
    if let Some(notifier) = &systemd {
        tokio::spawn(service::report_status(
            notifier.clone(),
            status_rx.clone(),
            stop_rx.clone(),
        ));
    }
    let task = tokio::spawn(lifecycle(
        config,
        clock,
        updater,
        status_tx,
        systemd.clone(),
        stop_rx,
    ));
    // Started: the state folder, the clock and the listeners are open. Whatever the phase
    // (waiting for a stick, running), systemd may now count the service as up.
    if let Some(notifier) = &systemd {
        notifier.ready();
    }
    Ok(DaemonHandle {
        status: status_rx,
        restart,
        stop: stop_tx,
        task,
        systemd,
    })
}

/// Runs the daemon until `shutdown` completes (e.g. SIGTERM) or an update wants a restart
/// (the supervisor then starts the `current` release), then stops it cleanly.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let mut handle = start(config).await?;
    tokio::pin!(shutdown);
    let mut restart = handle.restart.clone();
    // Stop early if the daemon fails on its own.
    let finished = tokio::select! {
        _ = &mut shutdown => None,
        _ = restart.wait_for(|wanted| *wanted) => None,
        result = &mut handle.task => Some(result),
    };
    match finished {
        None => {
            tracing::info!("shutting down");
            handle.stop().await
        }
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(DaemonError::Task(error.to_string())),
    }
}

/// The daemon's life: wait for a stick or run as the device, over and over, until stopped.
/// The front panel runs alongside for the whole life, showing whatever phase is current.
async fn lifecycle(
    installed: AgentConfig,
    clock: Arc<AgentClock>,
    updater: Arc<Updater>,
    status_tx: watch::Sender<AgentStatus>,
    systemd: Option<Arc<Notifier>>,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let live: CoreSlot = Arc::new(Mutex::new(None));
    let poke = Arc::new(tokio::sync::Notify::new());
    let (panel_stop_tx, panel_stop_rx) = watch::channel(false);
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let front_panel = {
        let (panel, live, status, poke) = (
            installed.panel.clone(),
            live.clone(),
            status_tx.subscribe(),
            poke.clone(),
        );
        tokio::task::spawn_blocking(move || {
            drive_panel(
                &panel,
                &live,
                status,
                &wake_tx,
                &poke,
                systemd.as_deref(),
                &panel_stop_rx,
            )
        })
    };
    // The panel's "sync now" goes to whichever uplink runs; forward it.
    let current_wake: WakeSlot = Arc::new(Mutex::new(None));
    let forward = {
        let current_wake = current_wake.clone();
        tokio::spawn(async move {
            while wake_rx.recv().await.is_some() {
                let target = current_wake.lock().clone();
                if let Some(target) = target {
                    let _ = target.try_send(());
                }
            }
        })
    };
    let mut sticks = StickWatch::default();
    let result = loop {
        let phase = match resolve(&installed) {
            Err(error) => Err(error),
            Ok(None) => {
                waiting(
                    &installed,
                    &clock,
                    &status_tx,
                    &mut sticks,
                    &poke,
                    stop.clone(),
                )
                .await
            }
            Ok(Some(device)) => {
                let life = Life {
                    installed: &installed,
                    clock: &clock,
                    updater: &updater,
                    status_tx: &status_tx,
                    live: &live,
                    current_wake: &current_wake,
                    poke: &poke,
                };
                running(device, &life, &mut sticks, stop.clone()).await
            }
        };
        match phase {
            Ok(PhaseEnd::Provisioned) => continue,
            Ok(PhaseEnd::Stopped) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    let _ = panel_stop_tx.send(true);
    forward.abort();
    if front_panel.await.is_err() {
        tracing::warn!("the front panel thread ended abnormally");
    }
    tracing::info!("stopped");
    result
}

/// The phase with an identity: the data flow of [`supervise`], plus the provisioning loop
/// (new sticks, renewal, an enrollment changed by `skolebro-agent provision`).
async fn running(
    device: Device,
    life: &Life<'_>,
    sticks: &mut StickWatch,
    mut stop: watch::Receiver<bool>,
) -> Result<PhaseEnd, DaemonError> {
    let Life {
        installed,
        clock,
        updater,
        status_tx,
        live,
        current_wake,
        ..
    } = *life;
    let Device {
        config,
        creds,
        enrollment,
    } = device;
    let client = provision::central_client(
        &creds.cert_pem,
        &creds.key_pem,
        &creds.ca_pem,
        clock.clone(),
    )?;
    let central = Central::new(client, &creds.url);

    let state_dir = config.state_dir.clone();
    let identity = creds.identity.clone();
    let policy = config.safety.clone();
    let outbox = config.outbox.outbox_config();
    let dir = state_dir.clone();
    let site_has_records = enrollment.as_ref().map(|e| e.site_has_records);
    let (enqueuer, report) = tokio::task::spawn_blocking(move || {
        if let Some(site_has_records) = site_has_records {
            if provision::settle_chain(&dir, &identity, outbox.clone(), site_has_records)? {
                tracing::info!(device = %identity.device, site_has_records, "new device: the chain starts afresh");
            }
        }
        Enqueuer::open(&dir, identity, policy, outbox).map_err(DaemonError::from)
    })
    .await
    .map_err(|e| DaemonError::Task(e.to_string()))??;
    if !report.is_clean() {
        let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        tracing::warn!(findings = %findings.join("; "), needs_snapshot = report.needs_snapshot, "outbox recovered from an unclean stop");
    }
    let core: Shared = Arc::new(Mutex::new(
        Core::new(enqueuer, state_dir, config.after_ingest, status_tx.clone())
            .with_drop_share(config.drop_share_target()),
    ));
    let device_id = creds.identity.device.to_string();
    let site_id = creds.identity.site.to_string();
    let roots: Vec<String> = installed
        .stick_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let validity = enrollment
        .as_ref()
        .and_then(DeviceEnrollment::cert_validity)
        .or_else(|| skolebro_provisioning::tls::certificate_validity(&creds.cert_pem).ok());
    {
        let e = enrollment.clone();
        let share_source = match &config.source {
            SourceConfig::SmbShare(share) => Some(share.shown()),
            _ => None,
        };
        let synced = clock.is_synced();
        let floor = unix(clock.floor());
        with_core(&core, move |c| {
            c.provisioning(|p| {
                *p = ProvisioningStatus {
                    device: Some(device_id),
                    site: Some(site_id),
                    token_id: e.as_ref().map(|e| e.token_id.clone()),
                    enrolled_unix: e.as_ref().map(|e| e.enrolled_unix),
                    renewed_unix: e.as_ref().and_then(|e| e.renewed_unix),
                    cert_not_after_unix: validity.map(|(_, to)| unix(to)),
                    stick_roots: roots,
                    share_source,
                    clock_synced: synced,
                    time_floor_unix: floor,
                    ..ProvisioningStatus::default()
                }
            })
        })
        .await;
    }
    *live.lock() = Some(core.clone());

    let (inner_stop_tx, inner_stop_rx) = watch::channel(false);
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    *current_wake.lock() = Some(wake_tx.clone());
    let freshness = Arc::new(Freshness::open(
        &config.state_dir,
        creds.statement_key,
        creds.identity.device.as_str(),
        clock.clone(),
        config.freshness_days,
    ));
    {
        let status = freshness.status();
        with_core(&core, move |c| c.freshness(status)).await;
    }
    let mut flow = tokio::spawn(supervise(
        config.clone(),
        core.clone(),
        central.clone(),
        heartbeat::Answers {
            updater: updater.clone(),
            freshness,
            keys: TrustedKeys::of(&config),
        },
        wake_tx,
        wake_rx,
        inner_stop_rx,
    ));
    let watch_loop = provisioning_loop(life, &config, &core, &central, enrollment, sticks);
    let end = tokio::select! {
        _ = stop.changed() => Ok(PhaseEnd::Stopped),
        end = watch_loop => Ok(end),
        joined = &mut flow => match joined {
            Ok(Ok(())) => Ok(PhaseEnd::Stopped),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(DaemonError::Task(error.to_string())),
        },
    };
    let _ = inner_stop_tx.send(true);
    if !flow.is_finished() {
        match flow.await {
            Ok(Err(error)) => tracing::error!(%error, "the data flow stopped with an error"),
            Err(error) => tracing::error!(%error, "the data flow ended abnormally"),
            Ok(Ok(())) => {}
        }
    }
    *current_wake.lock() = None;
    *live.lock() = None;
    end
}

async fn supervise(
    config: AgentConfig,
    core: Shared,
    central: Central,
    answers: heartbeat::Answers,
    wake_tx: mpsc::Sender<()>,
    wake_rx: mpsc::Receiver<()>,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    // Anything already in the outbox goes out at once.
    let _ = wake_tx.try_send(());

    // The source: the drop folder's watcher and pipeline (fed from the export share too,
    // where there is one), or the OneRoster REST puller.
    let mut extra = Vec::new();
    if let SourceConfig::SmbShare(share) = config.source.clone() {
        extra.push(tokio::spawn(share_pull::share_loop(
            config.clone(),
            *share,
            core.clone(),
            stop.clone(),
        )));
    }
    let (source, pipeline) = match config.source.clone() {
        SourceConfig::DropFolder | SourceConfig::SmbShare(_) => {
            let (ready_tx, ready_rx) = mpsc::channel::<PathBuf>(4);
            let (retry_tx, retry_rx) = mpsc::channel::<PathBuf>(16);
            let watcher = crate::watch::run(
                config.drop_dir(),
                Duration::from_millis(config.settle_ms),
                Duration::from_secs(config.rescan_seconds.max(1)),
                ready_tx,
                retry_rx,
                stop.clone(),
            );
            let watcher = tokio::spawn(async move { watcher.await.map_err(DaemonError::from) });
            let pipeline = tokio::spawn(pipeline(
                config.clone(),
                core.clone(),
                ready_rx,
                retry_tx,
                wake_tx.clone(),
                stop.clone(),
            ));
            (watcher, Some(pipeline))
        }
        SourceConfig::OnerosterRest(rest) => {
            let puller = pulling::pull_loop(
                config.clone(),
                *rest,
                core.clone(),
                wake_tx.clone(),
                stop.clone(),
            );
            let puller = tokio::spawn(async move {
                puller.await;
                Ok(())
            });
            (puller, None)
        }
    };
    let pusher = tokio::spawn(push::push_loop(
        core.clone(),
        central.clone(),
        Backoff::new(config.uplink.initial(), config.uplink.max()),
        wake_rx,
        stop.clone(),
    ));
    let heartbeat = tokio::spawn(heartbeat::heartbeat_loop(
        core.clone(),
        config.state_dir.clone(),
        central,
        Duration::from_secs(config.heartbeat_seconds.max(1)),
        answers,
        wake_tx,
        stop.clone(),
    ));

    let watched = source.await;
    // The source ends on shutdown, or on an error: either way, stop the others.
    let mut result = match watched {
        Ok(result) => result,
        Err(error) => Err(DaemonError::Task(error.to_string())),
    };
    if result.is_err() {
        tracing::error!("the export source failed; stopping");
    }
    for task in pipeline.into_iter().chain(extra).chain([pusher, heartbeat]) {
        if result.is_err() {
            task.abort();
        }
        if let Err(error) = task.await {
            if !error.is_cancelled() && result.is_ok() {
                result = Err(DaemonError::Task(error.to_string()));
            }
        }
    }
    with_core(&core, |c| c.stopped()).await;
    result
}

/// The whole daemon on a temp folder with central unreachable: a dropped export is taken
/// in, sealed and removed, a bad one is moved aside, and shutdown is clean.
#[cfg(test)]
mod run_tests {
    use std::path::Path;
    use std::time::Instant;

    use skolebro_provisioning::pki::{DevPki, Validity};

    use super::front_panel::panel_state;
    use super::*;
    use crate::config::{CentralConfig, IdentityConfig, UplinkSettings};
    use crate::outbox::unix_ms_now;
    use crate::status::{describe_status, RunState};

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_runtime_shut_down_under_a_running_daemon_does_not_wait_for_it_forever() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            state_dir: dir.path().join("state"),
            ..AgentConfig::default()
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let handle = runtime.block_on(async {
                let handle = start(config).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                handle
            });
            // As when a test panics or `main` returns without stopping the daemon.
            drop(runtime);
            drop(handle);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the runtime's shutdown waited for the daemon's threads"
        );
    }

    /// An agent config in `d` with an identity from a dev PKI for site 46505 and a central
    /// that does not listen: exports are sealed into the outbox and wait there.
    fn offline_config(d: &Path) -> AgentConfig {
        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).unwrap();
        let device = skolebro_protocol::DeviceId::new("pi-1").unwrap();
        let site = skolebro_protocol::SiteId::new("46505").unwrap();
        let creds = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .unwrap();
        std::fs::write(d.join("device.pem"), &creds.cert_pem).unwrap();
        std::fs::write(d.join("device.key"), &creds.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), pki.central_ca.cert_pem()).unwrap();
        std::fs::write(d.join("signing.key"), "07".repeat(32)).unwrap();
        std::fs::write(d.join("site.secret"), "03".repeat(32)).unwrap();
        // Nothing listens on this port: the listener is dropped at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        AgentConfig {
            state_dir: d.join("state"),
            settle_ms: 50,
            rescan_seconds: 1,
            heartbeat_seconds: 3600,
            central: Some(CentralConfig {
                url: format!("https://127.0.0.1:{port}"),
                ca: d.join("ca.pem"),
                sealing_key: hex::encode(
                    skolebro_protocol::envelope::SealingPrivateKey::from_bytes([9; 32])
                        .public_key()
                        .to_bytes(),
                ),
                statement_key: None,
            }),
            identity: Some(IdentityConfig {
                device: "pi-1".into(),
                site: "46505".into(),
                cert: d.join("device.pem"),
                key: d.join("device.key"),
                signing_key: d.join("signing.key"),
                site_secret: d.join("site.secret"),
            }),
            uplink: UplinkSettings {
                backoff_initial_ms: 10,
                backoff_max_ms: 100,
            },
            ..AgentConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_export_is_sealed_and_removed_while_central_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = offline_config(d);
        let drop_dir = config.drop_dir();
        let handle = start(config.clone()).await.unwrap();

        let mut text =
            String::from("Skolenummer;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n");
        for n in 0..25 {
            text.push_str(&format!("46505;1A;elev{n};;Nordmann;Kari{n}\n"));
        }
        std::fs::create_dir_all(&drop_dir).unwrap();
        std::fs::write(drop_dir.join("elever.tmp"), &text).unwrap();
        std::fs::rename(drop_dir.join("elever.tmp"), drop_dir.join("elever.csv")).unwrap();
        std::fs::write(drop_dir.join("broken.xml"), "<enterprise><person>").unwrap();

        let status = handle.status.clone();
        until("the export to be sealed and removed", || {
            let s = status.borrow();
            s.outbox_depth == 1 && !drop_dir.join("elever.csv").exists()
        })
        .await;
        until("the bad export to be moved aside", || {
            drop_dir
                .join(REJECTED_DIR)
                .join("broken.xml.error.txt")
                .exists()
        })
        .await;
        until("central to be reported unreachable", || {
            status.borrow().unreachable_since_unix_ms.is_some()
        })
        .await;
        {
            let s = status.borrow();
            assert_eq!(s.last_export_students, Some(25));
            assert_eq!(s.last_export_file.as_deref(), Some("elever.csv"));
        }
        handle.stop().await.unwrap();
        let on_disk = AgentStatus::load(&config.state_dir).unwrap();
        assert_eq!(on_disk.state, RunState::Stopped);
        assert_eq!(
            on_disk.outbox_depth, 1,
            "the batch waits on disk for central"
        );
    }

    /// Writes an elevliste of `students` pupils at school `skolenummer` of kommune 4601 into
    /// `drop_dir` as `name`, renamed into place so it is complete at once.
    fn drop_elevliste(drop_dir: &Path, name: &str, skolenummer: &str, students: usize) {
        let mut text = String::from(
            "Kommunenummer;Skolenummer;Skolenavn;Klasse;Elevnummer;Fødselsnummer;Etternavn;Fornavn\n",
        );
        for n in 0..students {
            text.push_str(&format!(
                "4601;{skolenummer};Skule {skolenummer};1A;elev{n};;Nordmann;Kari{n}\n"
            ));
        }
        std::fs::create_dir_all(drop_dir).unwrap();
        std::fs::write(drop_dir.join("export.tmp"), &text).unwrap();
        std::fs::rename(drop_dir.join("export.tmp"), drop_dir.join(name)).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_export_naming_a_school_outside_the_site_is_refused_and_nothing_is_enqueued() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            site_schools: vec!["4601/46505=Skule 46505".parse().unwrap()],
            ..offline_config(dir.path())
        };
        let drop_dir = config.drop_dir();
        let handle = start(config.clone()).await.unwrap();
        let status = handle.status.clone();

        drop_elevliste(&drop_dir, "fremmed.csv", "46500", 3);
        let note = drop_dir.join(REJECTED_DIR).join("fremmed.csv.error.txt");
        until("the foreign export to be moved aside", || note.exists()).await;
        let note = std::fs::read_to_string(&note).unwrap();
        assert!(
            note.contains("46500 \"Skule 46500\" (kommune 4601)"),
            "{note}"
        );
        {
            let s = status.borrow();
            assert_eq!(s.outbox_depth, 0, "nothing of it was enqueued");
            let group = s
                .deviation_groups
                .iter()
                .find(|group| group.code == "foreign_school")
                .expect("a foreign_school deviation");
            assert_eq!(group.severity, "error");
            assert!(group.rows[0].detail.contains("46500"), "{group:?}");
            assert_eq!(s.state, RunState::Error);
        }

        drop_elevliste(&drop_dir, "egen.csv", "46505", 3);
        until("the site's own export to be sealed", || {
            status.borrow().outbox_depth == 1
        })
        .await;
        assert_eq!(status.borrow().last_export_students, Some(3));
        handle.stop().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_identity_the_daemon_waits_for_a_stick_and_refuses_a_foreign_one() {
        use crate::provision::testing::{body, write_bundle};
        use skolebro_protocol::stick::StickSigningKey;

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let platform = StickSigningKey::from_bytes([1; 32]);
        std::fs::write(
            d.join("stick.pub"),
            format!("{}\n", platform.verifying_key().to_hex()),
        )
        .unwrap();
        let config = AgentConfig {
            state_dir: d.join("state"),
            stick_roots: vec![d.join("media")],
            stick_key: d.join("stick.pub"),
            clock_synced_file: d.join("not-synced"),
            ..AgentConfig::default()
        };
        let handle = start(config.clone()).await.unwrap();
        let status = handle.status.clone();
        until("the waiting state", || {
            status.borrow().state == RunState::NotProvisioned
        })
        .await;
        let text = describe_status(&status.borrow(), true, unix_ms_now(), None);
        assert!(text.starts_with("Waiting for a config stick"), "{text}");

        let stick = d.join("media").join("STICK");
        write_bundle(&stick, &body(), &StickSigningKey::from_bytes([2; 32]));
        until("the foreign stick to be refused", || {
            status.borrow().provisioning.stick_refused.is_some()
        })
        .await;
        {
            let s = status.borrow();
            assert_eq!(s.state, RunState::NotProvisioned);
            assert_eq!(panel_state(&s), crate::panel::AgentState::Error);
            let reason = s.provisioning.stick_refused.clone().unwrap();
            assert!(
                reason.contains("BUNDLE.SKB") && reason.contains("signature"),
                "{reason}"
            );
            let text = describe_status(&s, true, unix_ms_now(), None);
            assert!(text.contains("Stick refused"), "{text}");
        }
        assert!(!config
            .state_dir
            .join(crate::provision::enrollment::ENROLLMENT_FILE)
            .exists());
        std::fs::remove_dir_all(&stick).unwrap();
        until("the refusal to clear with the stick gone", || {
            status.borrow().provisioning.stick_refused.is_none()
        })
        .await;
        assert_eq!(
            panel_state(&status.borrow()),
            crate::panel::AgentState::NotProvisioned
        );
        handle.stop().await.unwrap();
        let on_disk = AgentStatus::load(&config.state_dir).unwrap();
        assert_eq!(on_disk.state, RunState::Stopped);
    }

    #[test]
    fn a_frozen_healthy_device_blinks_as_central_unreachable() {
        use crate::panel::AgentState;
        let mut status = AgentStatus {
            state: RunState::Healthy,
            ..AgentStatus::default()
        };
        assert_eq!(panel_state(&status), AgentState::Healthy);
        status.freshness = Some(crate::status::FreshnessStatus {
            frozen: true,
            ..Default::default()
        });
        assert_eq!(panel_state(&status), AgentState::CentralUnreachable);
        status.state = RunState::Holding;
        assert_eq!(panel_state(&status), AgentState::HoldingDelta);
    }
}
