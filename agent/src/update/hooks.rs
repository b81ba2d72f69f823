//! Test hooks of the updater, read only by debug builds (like `SKOLEBRO_TEST_CLOCK`, see
//! [`crate::clock`]); a release build ignores them. They let the process tests make one
//! release misbehave without a special build: a file `test-hooks` beside a release's binary
//! (`<install_root>/releases/<version>/test-hooks`, lines `KEY=1`) holds
//! `SKOLEBRO_TEST_FAIL_HEALTH` (its health check never passes), `SKOLEBRO_TEST_CRASH_AT_START`
//! (it exits with 101 right after its start was counted) and `SKOLEBRO_TEST_REPORT_TARGET=<triple>`
//! (its heartbeat names another target, as a misconfigured central would answer it). The
//! environment variable `SKOLEBRO_TEST_ABORT_AT=<step>` aborts the process, like a power cut,
//! at one step of an install: `download` (after the first piece), `verify`, `unpack`,
//! `switch` or `trial`; or at `read`, when the daemon has recorded the export it is about to
//! read (the poison-pill test).

use std::path::Path;

/// The file beside a release's binary.
pub const FILE: &str = "test-hooks";

/// How the running release misbehaves for a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub fail_health: bool,
    pub crash_at_start: bool,
    pub report_target: Option<String>,
}

impl Hooks {
    /// The hooks of the running release, whose folder is `release_dir`; none in a release
    /// build or outside an install root.
    pub fn of(release_dir: Option<&Path>) -> Hooks {
        let mut hooks = Hooks::default();
        let Some(release_dir) = release_dir.filter(|_| cfg!(debug_assertions)) else {
            return hooks;
        };
        let path = release_dir.join(FILE);
        let Ok(text) = std::fs::read_to_string(path) else {
            return hooks;
        };
        for line in text.lines() {
            match line.trim().split_once('=') {
                Some(("SKOLEBRO_TEST_FAIL_HEALTH", v)) => hooks.fail_health = v.trim() == "1",
                Some(("SKOLEBRO_TEST_CRASH_AT_START", v)) => hooks.crash_at_start = v.trim() == "1",
                Some(("SKOLEBRO_TEST_REPORT_TARGET", v)) => {
                    hooks.report_target = Some(v.trim().to_owned())
                }
                _ => {}
            }
        }
        tracing::warn!(?hooks, "test hooks active");
        hooks
    }
}

/// Aborts the process at `step` when a debug build runs with `SKOLEBRO_TEST_ABORT_AT=<step>`.
pub fn abort_at(step: &str) {
    if cfg!(debug_assertions) && std::env::var("SKOLEBRO_TEST_ABORT_AT").is_ok_and(|s| s == step) {
        eprintln!("SKOLEBRO_TEST_ABORT_AT={step}: aborting");
        std::process::abort();
    }
}
