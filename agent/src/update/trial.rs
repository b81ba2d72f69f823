//! The trial of a newly installed release (DESIGN decision 7): the last stage of an update.
//! The updater ([`super`]) writes `trial.json` and switches `current`; the supervisor starts
//! the new release, which counts each of its starts here before it even reads its config
//! ([`on_start`]). It keeps the release only once the health check passed ([`pass`]: config
//! loaded, outbox opened, central answered a heartbeat); too many starts, or a start whose
//! window ran out, switch `current` back to `previous` ([`roll_back`]) and leave a
//! `rolled_back` report for central in the ledger.
//!
//! Each step is ordered so a crash anywhere is recovered by the next start: the report is
//! written before the switch it describes, and `trial.json` goes last.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::hooks;
use super::install::{remove_durably, write_durably, InstallRoot, Ledger, CURRENT, PREVIOUS};
use skolebro_protocol::api::{ReportedState, UpdateReport};

use super::error::UpdateError;

/// The trial file in the install root.
pub const TRIAL: &str = "trial.json";

/// A release on trial: what it is, what it replaced, and its allowance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The release id (`<version>-<target>`), as central names it.
    pub release: String,
    /// Its folder under `releases/`.
    pub version: String,
    /// The folder of the release it replaced: where a failed trial goes back to.
    pub from: String,
    /// How long each start has to pass the health check.
    pub seconds: u64,
    /// More starts than this without passing roll the release back.
    pub max_starts: u32,
    /// Starts counted so far.
    pub starts: u32,
}

/// What [`on_start`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// No trial concerns this process.
    Normal,
    /// This process is the release on trial (its start already counted).
    OnTrial(Trial),
    /// The release on trial was switched back; the process should exit for the supervisor
    /// to start the previous one. Holds the reason.
    RolledBack(String),
}

fn trial_path(root: &InstallRoot) -> PathBuf {
    root.path().join(TRIAL)
}

/// Reads `trial.json`, if there is a readable one.
pub fn load(root: &InstallRoot) -> Option<Trial> {
    let bytes = std::fs::read(trial_path(root)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn save(root: &InstallRoot, trial: &Trial) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec_pretty(trial)
        .map_err(|e| UpdateError::Layout(format!("encoding the trial: {e}")))?;
    write_durably(&trial_path(root), &bytes)
}

/// A point in [`switch_to`] where a power cut may fall, in the order the switch reaches
/// them. The switch tells its step hook each one it reached, so the tests can stop the real
/// switch there, as the power would, and start whatever `current` then names; the updater's
/// hook is [`uninterrupted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchStep {
    /// Nothing written yet.
    Begun,
    /// `trial.json` is durable; both links still name the running release.
    TrialWritten,
    /// A new link `previous.tmp` exists beside `previous`, not yet renamed over it.
    PreviousLinkMade,
    /// `previous` names the running release.
    PreviousPointed,
    /// A new link `current.tmp` names the release on trial, not yet renamed over `current`.
    CurrentLinkMade,
    /// `current` names the release on trial: the switch is done.
    CurrentPointed,
}

impl SwitchStep {
    /// Every step, in the order [`switch_to`] reaches them.
    pub const ALL: [SwitchStep; 6] = [
        SwitchStep::Begun,
        SwitchStep::TrialWritten,
        SwitchStep::PreviousLinkMade,
        SwitchStep::PreviousPointed,
        SwitchStep::CurrentLinkMade,
        SwitchStep::CurrentPointed,
    ];
}

/// The step hook of the updater's switch: every step goes on. Only a debug build run with
/// `SKOLEBRO_TEST_ABORT_AT=switch` (see the `hooks` module) aborts, once `previous` moved,
/// for the process tests; a release build never stops.
pub fn uninterrupted(step: SwitchStep) -> Result<(), UpdateError> {
    if step == SwitchStep::PreviousPointed {
        hooks::abort_at("switch");
    }
    Ok(())
}

/// Puts `version` (release `release`, already installed) on trial and makes it `current`:
/// `trial.json`, then `previous` = the running release, then `current`. A crash before the
/// last rename leaves the running release current, and the next start drops the trial.
/// `reached` hears each [`SwitchStep`] as it is reached; an error from it stops the switch
/// there.
pub fn switch_to(
    root: &InstallRoot,
    release: &str,
    version: &str,
    seconds: u64,
    max_starts: u32,
    mut reached: impl FnMut(SwitchStep) -> Result<(), UpdateError>,
) -> Result<(), UpdateError> {
    reached(SwitchStep::Begun)?;
    save(
        root,
        &Trial {
            release: release.to_owned(),
            version: version.to_owned(),
            from: root.running().to_owned(),
            seconds,
            max_starts,
            starts: 0,
        },
    )?;
    reached(SwitchStep::TrialWritten)?;
    root.point_with(PREVIOUS, root.running(), || {
        reached(SwitchStep::PreviousLinkMade)
    })?;
    reached(SwitchStep::PreviousPointed)?;
    root.point_with(CURRENT, version, || reached(SwitchStep::CurrentLinkMade))?;
    reached(SwitchStep::CurrentPointed)
}

/// Called first thing at every start of `run`: recovers leftovers, then counts the start of
/// a release on trial and rolls it back if it had its starts.
pub fn on_start(root: &InstallRoot) -> Result<Start, UpdateError> {
    root.recover()?;
    let Some(mut trial) = load(root) else {
        return Ok(Start::Normal);
    };
    if trial.version != root.running() {
        // The switch never happened, or a rollback finished: the trial is over. Unless
        // `current` is the release on trial, whose own start will count.
        if root.link(CURRENT).as_deref() != Some(trial.version.as_str()) {
            remove_durably(&trial_path(root))?;
        }
        return Ok(Start::Normal);
    }
    trial.starts = trial.starts.saturating_add(1);
    if trial.starts > trial.max_starts {
        let reason = format!(
            "release {} did not pass its health check in {} starts",
            trial.version, trial.max_starts
        );
        return roll_back(root, &trial, reason);
    }
    if trial.starts == 1 {
        let mut ledger = Ledger::load(&root.ledger_path());
        ledger.push(UpdateReport::new(
            &trial.release,
            ReportedState::Installed,
            None,
        ));
        ledger.save(&root.ledger_path())?;
    }
    save(root, &trial)?;
    tracing::info!(release = %trial.release, start = trial.starts, max_starts = trial.max_starts, seconds = trial.seconds, "this release is on trial");
    Ok(Start::OnTrial(trial))
}

/// The release on trial failed: report why, switch `current` back to `previous`, end the
/// trial. If `previous` is not the release the trial replaced (it cannot be, short of
/// someone editing the install root) the release stays: a running release beats none.
pub fn roll_back(root: &InstallRoot, trial: &Trial, reason: String) -> Result<Start, UpdateError> {
    if root.link(PREVIOUS).as_deref() != Some(trial.from.as_str()) {
        tracing::error!(release = %trial.release, from = %trial.from, %reason, "the trial failed but the previous release is gone; keeping this one");
        remove_durably(&trial_path(root))?;
        return Ok(Start::Normal);
    }
    tracing::error!(release = %trial.release, back_to = %trial.from, %reason, "rolling back");
    let mut ledger = Ledger::load(&root.ledger_path());
    ledger.push(UpdateReport::new(
        &trial.release,
        ReportedState::RolledBack,
        Some(reason.clone()),
    ));
    ledger.skip(&trial.release);
    ledger.save(&root.ledger_path())?;
    root.point(CURRENT, &trial.from)?;
    remove_durably(&trial_path(root))?;
    Ok(Start::RolledBack(reason))
}

/// The release on trial passed its health check: it stays. Reports `healthy`, ends the
/// trial and removes releases no link names.
pub fn pass(root: &InstallRoot, trial: &Trial) -> Result<(), UpdateError> {
    let mut ledger = Ledger::load(&root.ledger_path());
    ledger.push(UpdateReport::new(
        &trial.release,
        ReportedState::Healthy,
        None,
    ));
    ledger.save(&root.ledger_path())?;
    remove_durably(&trial_path(root))?;
    tracing::info!(release = %trial.release, "the release passed its trial");
    root.prune()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::install::{BINARY, RELEASES};

    /// An install root with releases `versions`, `current` at the first.
    fn seeded(versions: &[&str]) -> (tempfile::TempDir, InstallRoot) {
        let dir = tempfile::tempdir().unwrap();
        for v in versions {
            let d = dir.path().join(RELEASES).join(v);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(BINARY), format!("binary {v}")).unwrap();
        }
        let root = InstallRoot::at(dir.path(), versions[0]);
        root.point(CURRENT, versions[0]).unwrap();
        (dir, root)
    }

    fn as_running(root: &InstallRoot, version: &str) -> InstallRoot {
        InstallRoot::at(root.path(), version)
    }

    fn ledger(root: &InstallRoot) -> Ledger {
        Ledger::load(&root.ledger_path())
    }

    #[test]
    fn a_trial_counts_its_starts_and_rolls_back_after_too_many() {
        let (_dir, old) = seeded(&["1.0.0", "2.0.0"]);
        switch_to(&old, "2.0.0-x", "2.0.0", 60, 2, uninterrupted).unwrap();
        assert_eq!(old.link(CURRENT).as_deref(), Some("2.0.0"));
        assert_eq!(old.link(PREVIOUS).as_deref(), Some("1.0.0"));
        let new = as_running(&old, "2.0.0");
        for n in 1..=2 {
            match on_start(&new).unwrap() {
                Start::OnTrial(t) => assert_eq!(t.starts, n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ledger(&new).pending[0].state, ReportedState::Installed);
        assert_eq!(ledger(&new).pending.len(), 1, "installed is reported once");
        let Start::RolledBack(reason) = on_start(&new).unwrap() else {
            panic!("the third start rolls back")
        };
        assert!(reason.contains("2 starts"), "{reason}");
        assert_eq!(new.link(CURRENT).as_deref(), Some("1.0.0"));
        assert!(load(&new).is_none());
        let l = ledger(&new);
        assert_eq!(l.pending[1].state, ReportedState::RolledBack);
        assert!(l.skips("2.0.0-x"));
        // The previous release starts normally afterwards.
        assert_eq!(on_start(&old).unwrap(), Start::Normal);
    }

    #[test]
    fn passing_the_trial_keeps_the_release_and_prunes_older_ones() {
        let (_dir, old) = seeded(&["1.0.0", "0.9.0", "2.0.0"]);
        switch_to(&old, "2.0.0-x", "2.0.0", 60, 3, uninterrupted).unwrap();
        let new = as_running(&old, "2.0.0");
        let Start::OnTrial(trial) = on_start(&new).unwrap() else {
            panic!()
        };
        pass(&new, &trial).unwrap();
        assert!(load(&new).is_none());
        assert_eq!(on_start(&new).unwrap(), Start::Normal);
        assert_eq!(new.link(CURRENT).as_deref(), Some("2.0.0"));
        assert!(!new.path().join(RELEASES).join("0.9.0").exists());
        assert!(new.path().join(RELEASES).join("1.0.0").exists());
        let states: Vec<_> = ledger(&new).pending.iter().map(|r| r.state).collect();
        assert_eq!(states, [ReportedState::Installed, ReportedState::Healthy]);
    }

    #[test]
    fn a_power_cut_at_each_step_of_the_real_switch_leaves_a_current_that_starts() {
        let (_dir, old) = seeded(&["1.0.0", "2.0.0"]);
        let mut seen = Vec::new();
        switch_to(&old, "2.0.0-x", "2.0.0", 60, 3, |step| {
            seen.push(step);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            SwitchStep::ALL,
            "the switch reaches every step in order"
        );

        // The real switch, stopped at each step as a power cut stops it, then a start of
        // whatever `current` names.
        for cut in SwitchStep::ALL {
            let (_dir, old) = seeded(&["1.0.0", "2.0.0"]);
            let stopped = switch_to(&old, "2.0.0-x", "2.0.0", 60, 3, |step| {
                if step == cut {
                    Err(UpdateError::Layout(format!("power cut at {step:?}")))
                } else {
                    Ok(())
                }
            });
            assert!(stopped.is_err(), "{cut:?}: the switch stopped there");
            let current = old.link(CURRENT).expect("current names a release");
            let start = on_start(&as_running(&old, &current)).unwrap();
            for leftover in ["current.tmp", "previous.tmp"] {
                assert!(
                    !old.path().join(leftover).exists(),
                    "{cut:?}: the half-made {leftover} is removed"
                );
            }
            if cut == SwitchStep::CurrentPointed {
                assert_eq!(current, "2.0.0");
                let Start::OnTrial(trial) = start else {
                    panic!("{cut:?}: the new release starts on trial, not {start:?}")
                };
                assert_eq!((trial.from.as_str(), trial.starts), ("1.0.0", 1));
                assert_eq!(old.link(PREVIOUS).as_deref(), Some("1.0.0"));
            } else {
                assert_eq!(current, "1.0.0", "{cut:?}: the running release stays");
                assert_eq!(start, Start::Normal, "{cut:?}");
                assert!(load(&old).is_none(), "{cut:?}: the stale trial is dropped");
            }
        }
    }

    #[test]
    fn a_crash_inside_a_rollback_is_finished_by_the_next_start() {
        let (_dir, old) = seeded(&["1.0.0", "2.0.0"]);
        switch_to(&old, "2.0.0-x", "2.0.0", 60, 1, uninterrupted).unwrap();
        let new = as_running(&old, "2.0.0");
        let Start::OnTrial(trial) = on_start(&new).unwrap() else {
            panic!()
        };
        // Crash after `current` went back but before trial.json was removed.
        let mut ledger = ledger(&new);
        ledger.skip(&trial.release);
        ledger.save(&new.ledger_path()).unwrap();
        new.point(CURRENT, "1.0.0").unwrap();
        assert_eq!(on_start(&old).unwrap(), Start::Normal);
        assert!(load(&old).is_none());
        // A `current` damaged outright is pointed at `previous`.
        std::fs::remove_file(old.path().join(CURRENT)).unwrap();
        std::os::unix::fs::symlink("releases/nowhere", old.path().join(CURRENT)).unwrap();
        on_start(&old).unwrap();
        assert_eq!(old.link(CURRENT).as_deref(), Some("1.0.0"));
    }
}
