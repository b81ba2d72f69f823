//! Remote update (DESIGN decision 7): releases that cannot brick the Pi. The heartbeat
//! (the daemon's heartbeat loop) reports the agent's target and the oldest update
//! report central has not heard, and hands central's answer to [`Updater::answered`], the
//! offer only if central's signed statement names it as current ([`crate::freshness`]). A
//! release offered there goes through:
//!
//! ```text
//! manifest (signature with release.pub, id, target, not expired, not below the floor,
//!           version goes up or a downgrade replaces exactly the running version)
//!   -> floor.rs (raise <state_dir>/release-floor to the manifest's floor)
//!   -> space.rs (statvfs: artifact + margin fits, else wait for space; reported once)
//!   -> download.rs (<state_dir>/update/<id>.part, resumed with Range)
//!   -> size + SHA-256 -> install.rs (releases/<version>/skolebro-agent)
//!   -> trial.rs switch_to (trial.json, previous, current) -> exit; the supervisor restarts
//!   -> trial.rs on_start in the new release -> health check passes -> healthy
//!                                           \-> fails or crash-loops -> back to previous
//! ```
//!
//! A refused release (bad manifest, bad signature, wrong target, expired, below the floor,
//! not newer, a downgrade for another version, wrong size or checksum) is reported
//! `refused` with the reason, remembered so it is never fetched again,
//! and changes nothing in the install root. Only a binary that runs from
//! `<install_root>/releases/<version>/` updates itself; anywhere else (development, tests,
//! `/usr/bin`) the updater only reports.

pub mod download;
mod error;
pub mod floor;
pub mod hooks;
pub mod install;
pub mod space;
pub mod trial;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use skolebro_protocol::release::{ReleaseError, ReleaseManifest, ReleaseVerifyingKey, Version};
use skolebro_protocol::rotation::KeyRole;
use tokio::sync::watch;

use self::download::DownloadError;
use self::floor::VersionFloor;
use self::hooks::Hooks;
use self::install::{InstallRoot, Ledger};
use self::space::{FreeSpace, Shortage, Statvfs};
use self::trial::{Start, Trial};
use crate::clock::{unix, AgentClock};
use crate::config::AgentConfig;
use crate::trusted_keys::TrustedKeys;
use crate::uplink::Central;

/// The version this build reports and compares releases against (`SKOLEBRO_VERSION` at
/// build time, else the package version).
pub const VERSION: &str = env!("SKOLEBRO_VERSION");
/// The target triple this build was compiled for; a release must name exactly this one.
pub const TARGET: &str = env!("SKOLEBRO_TARGET");
/// The wait before an interrupted download is tried again.
const RETRY: Duration = Duration::from_secs(10);

pub use self::error::{Refusal, UpdateError};
use skolebro_protocol::api::{ReleaseOffer, ReportedState, UpdateReport};

/// What an offered manifest is checked against on this device.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    /// The version this agent runs.
    pub running: Version,
    /// The target triple it was built for.
    pub target: &'a str,
    /// The agent clock's time, Unix seconds (the synced time, else the clock floor).
    pub now_unix: u64,
    /// The persisted version floor, if one was ever set.
    pub floor: Option<Version>,
}

/// Checks an offered manifest before anything is downloaded: the signature against the
/// release key, that it is the release offered, for this target, not expired by the agent's
/// clock, not below the device's version floor, and newer than the running version (or a
/// downgrade naming exactly the running version as the one it replaces).
pub fn check_manifest(
    offer: &ReleaseOffer,
    key: &ReleaseVerifyingKey,
    device: Device<'_>,
) -> Result<ReleaseManifest, Refusal> {
    let Device {
        running,
        target,
        now_unix,
        floor,
    } = device;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(offer.manifest.trim())
        .map_err(|_| Refusal::NotBase64)?;
    let manifest = ReleaseManifest::verify(&bytes, key)?;
    if manifest.id() != offer.id {
        return Err(Refusal::NotTheOffer {
            offered: offer.id.clone(),
            manifest: manifest.id(),
        });
    }
    if manifest.target != target {
        return Err(Refusal::WrongTarget {
            release: manifest.target,
            ours: target.to_owned(),
        });
    }
    if manifest.expired_at(now_unix) {
        return Err(Refusal::Expired {
            expires_unix: manifest.expires_unix,
            now_unix,
        });
    }
    if let Some(floor) = floor.filter(|floor| manifest.version < *floor) {
        return Err(Refusal::BelowFloor {
            release: manifest.version,
            floor,
        });
    }
    if !manifest.permits_upgrade_from(running) {
        return Err(match manifest.replaces {
            Some(replaces) if manifest.allow_downgrade && manifest.version != running => {
                Refusal::NotReplaced {
                    release: manifest.version,
                    replaces,
                    running,
                }
            }
            _ => Refusal::NotNewer {
                release: manifest.version,
                running,
            },
        });
    }
    Ok(manifest)
}

/// Checks the downloaded artifact's length and SHA-256 against the manifest.
pub fn check_artifact(
    manifest: &ReleaseManifest,
    sha256: [u8; 32],
    len: u64,
) -> Result<(), Refusal> {
    if len != manifest.size {
        return Err(Refusal::Size {
            expected: manifest.size,
            got: len,
        });
    }
    if sha256 != manifest.sha256 {
        return Err(Refusal::Checksum);
    }
    Ok(())
}

/// Runs the trial bookkeeping of a start (see [`trial::on_start`]) before the config is
/// read, and the start hooks of a debug build. `Some(code)`: exit at once with it.
pub fn on_start() -> Option<u8> {
    let root = InstallRoot::of_running_binary()?;
    match trial::on_start(&root) {
        Ok(Start::RolledBack(_)) => return Some(0),
        Ok(Start::OnTrial(_)) => hooks::abort_at("trial"),
        Ok(Start::Normal) => {}
        Err(error) => tracing::error!(%error, "cannot check the install root; starting anyway"),
    }
    if Hooks::of(Some(&root.running_dir())).crash_at_start {
        tracing::error!("SKOLEBRO_TEST_CRASH_AT_START: exiting with 101");
        return Some(101);
    }
    None
}

/// What the updater is doing; one per daemon.
#[derive(Debug, Default)]
struct Progress {
    /// The release on trial, if this process is it.
    trial: Option<Trial>,
    /// Why the health check has not passed yet (for the rollback reason).
    health_problem: Option<String>,
    /// An update is under way.
    busy: bool,
    /// No new attempt before this (after an interrupted download).
    not_before: Option<Instant>,
    /// The offer that did not fit on the disk, and why: not downloaded again until the
    /// space is there or central offers something else.
    short: Option<Short>,
}

/// An offer that did not fit on the disk.
#[derive(Debug)]
struct Short {
    offer: ReleaseOffer,
    /// The artifact's size from its manifest.
    size: u64,
    shortage: Shortage,
}

impl Short {
    /// Whether `offer` still waits: it is the same offer and the artifact (the rest of the
    /// download at `part`, and the installed copy in `install_root`) still does not fit.
    /// Otherwise the updater tries again.
    fn holds(
        &self,
        offer: &ReleaseOffer,
        space: &dyn FreeSpace,
        part: &Path,
        install_root: &Path,
    ) -> bool {
        let download_dir = part.parent().unwrap_or(Path::new("."));
        self.offer == *offer
            && space::check(
                space,
                download_dir,
                self.size.saturating_sub(part_len(part)),
                install_root,
                self.size,
            )
            .is_err()
    }
}

/// The updater of a running daemon: owned by the daemon, fed by its heartbeat loop.
#[derive(Debug)]
pub struct Updater {
    /// `None`: this binary does not run from the install root; nothing is installed.
    root: Option<InstallRoot>,
    update_dir: PathBuf,
    keys: TrustedKeys,
    floor: VersionFloor,
    clock: Arc<AgentClock>,
    space: Box<dyn FreeSpace>,
    trial_seconds: u64,
    max_trial_starts: u32,
    hooks: Hooks,
    progress: Mutex<Progress>,
    restart: watch::Sender<bool>,
}

impl Updater {
    /// The updater for `config`, checking expiry against `clock`. It installs only if the
    /// running binary lives in `config.install_root`.
    pub fn open(config: &AgentConfig, clock: Arc<AgentClock>) -> Arc<Updater> {
        let root = InstallRoot::of_running_binary().filter(|root| {
            let same = same_dir(root.path(), &config.install_root);
            if !same {
                tracing::warn!(running_in = %root.path().display(), install_root = %config.install_root.display(), "this binary is not in the configured install_root; updates are off");
            }
            same
        });
        let trial = root
            .as_ref()
            .and_then(|r| trial::load(r).filter(|t| t.version == r.running()));
        Arc::new(Updater {
            hooks: Hooks::of(root.as_ref().map(InstallRoot::running_dir).as_deref()),
            root,
            update_dir: config.state_dir.join("update"),
            keys: TrustedKeys::of(config),
            floor: VersionFloor::in_state_dir(&config.state_dir),
            clock,
            space: Box::new(Statvfs),
            trial_seconds: config.trial_seconds,
            max_trial_starts: config.max_trial_starts,
            progress: Mutex::new(Progress {
                trial,
                ..Progress::default()
            }),
            restart: watch::channel(false).0,
        })
    }

    fn progress(&self) -> parking_lot::MutexGuard<'_, Progress> {
        self.progress.lock()
    }

    /// Becomes true when the daemon should exit for the supervisor to start `current`.
    pub fn restart_wanted(&self) -> watch::Receiver<bool> {
        self.restart.subscribe()
    }

    /// The target the heartbeat reports.
    pub fn target(&self) -> String {
        self.hooks
            .report_target
            .clone()
            .unwrap_or_else(|| TARGET.to_owned())
    }

    /// The oldest report central has not heard yet.
    pub fn report(&self) -> Option<UpdateReport> {
        let root = self.root.as_ref()?;
        Ledger::load(&root.ledger_path()).pending.first().cloned()
    }

    /// A heartbeat failed: remembered as the reason, should the trial run out.
    pub fn heartbeat_failed(&self, why: String) {
        self.progress().health_problem = Some(format!("central did not answer: {why}"));
    }

    /// Central answered a heartbeat that carried `sent`: that report is delivered, the
    /// health check of a release on trial passes, and an offered release is fetched.
    pub fn answered(
        self: &Arc<Self>,
        sent: Option<&UpdateReport>,
        offer: Option<ReleaseOffer>,
        central: &Central,
    ) {
        let Some(root) = &self.root else {
            return;
        };
        let mut progress = self.progress();
        if let Some(sent) = sent {
            let mut ledger = Ledger::load(&root.ledger_path());
            if ledger.pending.first() == Some(sent) {
                ledger.pending.remove(0);
                if let Err(error) = ledger.save(&root.ledger_path()) {
                    tracing::warn!(%error, "cannot write the update ledger");
                }
            }
        }
        if let Some(trial) = progress.trial.take() {
            if self.hooks.fail_health {
                progress.health_problem =
                    Some("the health check failed (SKOLEBRO_TEST_FAIL_HEALTH)".into());
                progress.trial = Some(trial);
            } else if let Err(error) = trial::pass(root, &trial) {
                tracing::error!(%error, "cannot end the trial; trying again at the next heartbeat");
                progress.trial = Some(trial);
            }
            return;
        }
        let Some(offer) = offer else {
            // Nothing offered any more: nothing waits for space either.
            progress.short = None;
            return;
        };
        let waiting = progress.not_before.is_some_and(|t| Instant::now() < t);
        if progress.busy || waiting || Ledger::load(&root.ledger_path()).skips(&offer.id) {
            return;
        }
        if let Some(short) = &progress.short {
            let part = self.part(&offer.id);
            if short.holds(&offer, self.space.as_ref(), &part, root.path()) {
                return;
            }
            tracing::info!(release = %offer.id, "disk space or the offer changed; trying the update again");
            progress.short = None;
        }
        progress.busy = true;
        drop(progress);
        tokio::spawn(self.clone().update(root.clone(), offer, central.clone()));
    }

    /// Fetches, checks and installs `offer`; on success asks for a restart into it.
    async fn update(self: Arc<Self>, root: InstallRoot, offer: ReleaseOffer, central: Central) {
        tracing::info!(release = %offer.id, "central offers a release");
        let result = self.fetch_and_install(&root, &offer, &central).await;
        let mut progress = self.progress();
        match result {
            Ok(Ok(())) => {
                tracing::info!(release = %offer.id, "installed; restarting into it");
                let _ = self.restart.send(true);
                return;
            }
            Ok(Err(Stop::Short(size, shortage))) => {
                // Reported once, here and in the status; the heartbeat does not retry it.
                tracing::warn!(release = %offer.id, %shortage, "update waits for disk space");
                progress.short = Some(Short {
                    offer,
                    size,
                    shortage,
                });
            }
            Ok(Err(Stop::Refused(refusal))) => {
                tracing::warn!(release = %offer.id, reason = %refusal, "release refused; the running release stays");
                let mut ledger = Ledger::load(&root.ledger_path());
                ledger.push(UpdateReport::new(
                    &offer.id,
                    ReportedState::Refused,
                    Some(refusal.to_string()),
                ));
                ledger.skip(&offer.id);
                if let Err(error) = ledger.save(&root.ledger_path()) {
                    tracing::error!(%error, "cannot write the update ledger");
                }
                let _ = std::fs::remove_file(self.part(&offer.id));
            }
            Err(error) => {
                tracing::warn!(release = %offer.id, %error, "update interrupted; trying again later");
                progress.not_before = Some(Instant::now() + RETRY);
            }
        }
        progress.busy = false;
    }

    fn part(&self, id: &str) -> PathBuf {
        self.update_dir.join(format!("{id}.part"))
    }

    /// Why the update is waiting for disk space, for the status: `None` when it is not.
    pub fn waiting_for_space(&self) -> Option<String> {
        self.progress()
            .short
            .as_ref()
            .map(|short| format!("release {}: {}", short.offer.id, short.shortage))
    }

    /// The steps of one update. The outer error: try again later; the inner: refused or
    /// waiting for disk space.
    async fn fetch_and_install(
        &self,
        root: &InstallRoot,
        offer: &ReleaseOffer,
        central: &Central,
    ) -> Result<Result<(), Stop>, UpdateError> {
        let key = self.keys.release().map_err(|error| {
            let (path, reason) = error.into_path_and_reason(self.keys.installed(KeyRole::Release));
            UpdateError::Key { path, reason }
        })?;
        let running: Version = VERSION
            .parse()
            .map_err(|e: ReleaseError| UpdateError::Layout(format!("this build's version: {e}")))?;
        let device = Device {
            running,
            target: TARGET,
            now_unix: unix(self.clock.now()),
            floor: self.floor.load()?,
        };
        let manifest = match check_manifest(offer, &key, device) {
            Ok(manifest) => manifest,
            Err(refusal) => return Ok(Err(Stop::Refused(refusal))),
        };
        if let Some(floor) = manifest.floor {
            self.floor.raise(floor)?;
        }
        std::fs::create_dir_all(&self.update_dir)
            .map_err(|e| UpdateError::io(&self.update_dir, e))?;
        let part = self.part(&offer.id);
        let still_to_fetch = manifest.size.saturating_sub(part_len(&part));
        if let Err(shortage) = space::check(
            self.space.as_ref(),
            &self.update_dir,
            still_to_fetch,
            root.path(),
            manifest.size,
        ) {
            return Ok(Err(Stop::Short(manifest.size, shortage)));
        }
        let resumed_from =
            match download::fetch(central, &offer.artifact, &part, manifest.size).await {
                Ok(from) => from,
                Err(DownloadError::TooLarge(size)) => {
                    return Ok(Err(Stop::Refused(Refusal::Oversized(size))))
                }
                Err(error) => return Err(error.into()),
            };
        hooks::abort_at("verify");
        let path = part.clone();
        let (sha256, len) = tokio::task::spawn_blocking(move || download::digest(&path))
            .await
            .map_err(|e| UpdateError::Task(e.to_string()))?
            .map_err(|e| UpdateError::io(&part, e))?;
        if let Err(refusal) = check_artifact(&manifest, sha256, len) {
            if resumed_from > 0 {
                // The part from before may be what is wrong: fetch it whole once more.
                std::fs::remove_file(&part).map_err(|e| UpdateError::io(&part, e))?;
                return Err(UpdateError::Resumed(refusal));
            }
            return Ok(Err(Stop::Refused(refusal)));
        }
        let mut ledger = Ledger::load(&root.ledger_path());
        ledger.push(UpdateReport::new(
            &offer.id,
            ReportedState::Downloaded,
            None,
        ));
        ledger.save(&root.ledger_path())?;
        let version = manifest.version.to_string();
        let (install_root, from) = (root.clone(), part.clone());
        let (seconds, max_starts, id) =
            (self.trial_seconds, self.max_trial_starts, offer.id.clone());
        tokio::task::spawn_blocking(move || {
            install_root.install(&version, &from)?;
            trial::switch_to(
                &install_root,
                &id,
                &version,
                seconds,
                max_starts,
                trial::uninterrupted,
            )
        })
        .await
        .map_err(|e| UpdateError::Task(e.to_string()))??;
        let _ = std::fs::remove_file(&part);
        Ok(Ok(()))
    }

    /// Rolls the release on trial back once its window is over without a passing health
    /// check; does nothing when this process is not on trial.
    pub async fn watch_trial(self: Arc<Self>) {
        let Some(root) = self.root.clone() else {
            return;
        };
        let Some(seconds) = self.progress().trial.as_ref().map(|t| t.seconds) else {
            return;
        };
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let mut progress = self.progress();
        let Some(trial) = progress.trial.take() else {
            return;
        };
        let why = progress
            .health_problem
            .clone()
            .unwrap_or_else(|| "central never answered a heartbeat".into());
        let reason = format!(
            "release {} did not pass its health check within {seconds} s: {why}",
            trial.version
        );
        match trial::roll_back(&root, &trial, reason) {
            Ok(Start::RolledBack(_)) => {
                let _ = self.restart.send(true);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the rollback failed"),
        }
    }
}

/// Why an update stopped short of installing, other than "try again later".
#[derive(Debug)]
enum Stop {
    /// The release is refused for good (reported, remembered).
    Refused(Refusal),
    /// The artifact of this many bytes does not fit; waits for space.
    Short(u64, Shortage),
}

/// The length of a partial download, 0 when there is none.
fn part_len(part: &Path) -> u64 {
    std::fs::metadata(part).map(|m| m.len()).unwrap_or(0)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;
    use skolebro_protocol::release::ReleaseSigningKey;

    const T: &str = "x86_64-unknown-linux-gnu";
    /// The tests' "now": the manifests below were signed a second before.
    const NOW: u64 = 1_900_000_000;

    /// A manifest for `version` on `target`, signed now and valid for a day.
    fn manifest(version: Version, target: &str) -> ReleaseManifest {
        ReleaseManifest {
            version,
            target: target.into(),
            size: 3,
            sha256: sha2::Sha256::digest(b"abc").into(),
            allow_downgrade: false,
            created_unix: NOW - 1,
            expires_unix: NOW + 86_400,
            replaces: None,
            floor: None,
        }
    }

    fn offer(key: &ReleaseSigningKey, manifest: &ReleaseManifest) -> ReleaseOffer {
        ReleaseOffer {
            id: manifest.id(),
            manifest: base64::engine::general_purpose::STANDARD.encode(manifest.sign(key)),
            artifact: format!("/v1/releases/{}/artifact", manifest.id()),
        }
    }

    fn device(running: Version, floor: Option<Version>) -> Device<'static> {
        Device {
            running,
            target: T,
            now_unix: NOW,
            floor,
        }
    }

    #[test]
    fn manifests_are_refused_for_each_reason_and_a_good_one_passes() {
        let key = ReleaseSigningKey::from_bytes([5; 32]);
        let other = ReleaseSigningKey::from_bytes([6; 32]);
        let running = Version::new(1, 0, 0);
        let check = |offer: &ReleaseOffer| {
            check_manifest(offer, &key.verifying_key(), device(running, None))
        };

        let manifest_110 = manifest(Version::new(1, 1, 0), T);
        let good = offer(&key, &manifest_110);
        assert_eq!(check(&good), Ok(manifest_110.clone()));
        assert_eq!(
            check_artifact(&manifest_110, sha2::Sha256::digest(b"abc").into(), 3),
            Ok(())
        );
        assert_eq!(
            check_artifact(&manifest_110, sha2::Sha256::digest(b"abd").into(), 3),
            Err(Refusal::Checksum)
        );
        assert!(matches!(
            check_artifact(&manifest_110, [0; 32], 4),
            Err(Refusal::Size { .. })
        ));

        let forged = offer(&other, &manifest_110);
        assert_eq!(
            check(&forged),
            Err(Refusal::Manifest(ReleaseError::BadSignature))
        );
        let arm = offer(
            &key,
            &manifest(Version::new(1, 1, 0), "aarch64-unknown-linux-gnu"),
        );
        assert!(matches!(check(&arm), Err(Refusal::WrongTarget { .. })));
        for v in [Version::new(0, 9, 0), running] {
            let old = offer(&key, &manifest(v, T));
            assert!(matches!(check(&old), Err(Refusal::NotNewer { .. })), "{v}");
        }
        let mut swapped = good.clone();
        swapped.id = "9.9.9-x86_64-unknown-linux-gnu".into();
        assert!(matches!(check(&swapped), Err(Refusal::NotTheOffer { .. })));
        let mut garbage = good;
        garbage.manifest = "!!".into();
        assert_eq!(check(&garbage), Err(Refusal::NotBase64));
    }

    #[test]
    fn an_expired_manifest_is_refused_in_words() {
        let key = ReleaseSigningKey::from_bytes([5; 32]);
        let mut stale = manifest(Version::new(1, 1, 0), T);
        stale.created_unix = NOW - 31 * 86_400;
        stale.expires_unix = NOW - 86_400;
        let refusal = check_manifest(
            &offer(&key, &stale),
            &key.verifying_key(),
            device(Version::new(1, 0, 0), None),
        )
        .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Expired {
                expires_unix: NOW - 86_400,
                now_unix: NOW
            }
        );
        assert_eq!(
            refusal.to_string(),
            "the manifest expired at 2030-03-16T17:46:40.000Z (this agent's clock says \
             2030-03-17T17:46:40.000Z); operations sign the release again"
        );
        // The very second it expires, it is expired.
        stale.expires_unix = NOW;
        assert!(matches!(
            check_manifest(
                &offer(&key, &stale),
                &key.verifying_key(),
                device(Version::new(1, 0, 0), None)
            ),
            Err(Refusal::Expired { .. })
        ));
    }

    #[test]
    fn a_replayed_downgrade_is_refused_unless_it_replaces_the_running_version_and_expires_soon() {
        let key = ReleaseSigningKey::from_bytes([5; 32]);
        let running = Version::new(1, 3, 0);
        let check = |m: &ReleaseManifest| {
            check_manifest(&offer(&key, m), &key.verifying_key(), device(running, None))
        };
        let mut downgrade = manifest(Version::new(1, 2, 0), T);
        downgrade.allow_downgrade = true;
        downgrade.replaces = Some(running);
        assert_eq!(check(&downgrade), Ok(downgrade.clone()));

        let unnamed = ReleaseManifest {
            replaces: None,
            ..downgrade.clone()
        };
        assert_eq!(
            check(&unnamed),
            Err(Refusal::Manifest(ReleaseError::DowngradeWithoutReplaces))
        );
        let elsewhere = ReleaseManifest {
            replaces: Some(Version::new(1, 4, 0)),
            ..downgrade.clone()
        };
        assert_eq!(
            check(&elsewhere),
            Err(Refusal::NotReplaced {
                release: Version::new(1, 2, 0),
                replaces: Version::new(1, 4, 0),
                running
            })
        );
        let long = ReleaseManifest {
            expires_unix: downgrade.created_unix + 30 * 86_400,
            ..downgrade.clone()
        };
        assert!(matches!(
            check(&long),
            Err(Refusal::Manifest(ReleaseError::DowngradeTooLong { .. }))
        ));
    }

    #[test]
    fn the_floor_refuses_lower_versions_even_as_a_downgrade_and_survives_a_restart() {
        let key = ReleaseSigningKey::from_bytes([5; 32]);
        let state = tempfile::tempdir().unwrap();
        let running = Version::new(1, 3, 0);
        let mut raising = manifest(Version::new(1, 4, 0), T);
        raising.floor = Some(Version::new(1, 3, 0));
        let floor = VersionFloor::in_state_dir(state.path());
        let accepted = check_manifest(
            &offer(&key, &raising),
            &key.verifying_key(),
            device(running, floor.load().unwrap()),
        )
        .unwrap();
        floor.raise(accepted.floor.unwrap()).unwrap();

        // A restart: the floor is read again from the state folder.
        let kept = VersionFloor::in_state_dir(state.path()).load().unwrap();
        assert_eq!(kept, Some(Version::new(1, 3, 0)));
        let mut back = manifest(Version::new(1, 2, 9), T);
        back.allow_downgrade = true;
        back.replaces = Some(running);
        assert_eq!(
            check_manifest(
                &offer(&key, &back),
                &key.verifying_key(),
                device(running, kept)
            ),
            Err(Refusal::BelowFloor {
                release: Version::new(1, 2, 9),
                floor: Version::new(1, 3, 0)
            })
        );
        // Without the floor the same downgrade would pass: the floor is what refuses it.
        assert!(check_manifest(
            &offer(&key, &back),
            &key.verifying_key(),
            device(running, None)
        )
        .is_ok());
    }

    /// Free bytes that a test changes while the updater waits.
    #[derive(Debug)]
    struct Free(parking_lot::Mutex<u64>);

    impl FreeSpace for Free {
        fn available(&self, _path: &Path) -> std::io::Result<u64> {
            Ok(*self.0.lock())
        }
    }

    #[test]
    fn a_full_disk_waits_until_space_frees_up_or_the_offer_changes() {
        let key = ReleaseSigningKey::from_bytes([5; 32]);
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("update").join("1.1.0-x.part");
        let mut big = manifest(Version::new(1, 1, 0), T);
        big.size = 50 * 1024 * 1024;
        let offered = offer(&key, &big);
        let free = Free(parking_lot::Mutex::new(big.size));
        let shortage = space::check(&free, dir.path(), big.size, dir.path(), big.size).unwrap_err();
        assert!(shortage.to_string().contains("not enough disk space"));
        let short = Short {
            offer: offered.clone(),
            size: big.size,
            shortage,
        };
        assert!(short.holds(&offered, &free, &part, dir.path()));
        let newer = offer(&key, &manifest(Version::new(1, 2, 0), T));
        assert!(!short.holds(&newer, &free, &part, dir.path()));
        *free.0.lock() = big.size + space::MARGIN_BYTES;
        assert!(!short.holds(&offered, &free, &part, dir.path()));
    }
}
