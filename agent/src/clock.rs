//! The agent's idea of the time (DESIGN decision 8). A Pi has no real-time clock: after a
//! boot without network it may think it is 1970, or years ahead after a bad RTC hat. Until
//! the system clock is synced, nothing is decided on it: the real time is only known to be no
//! earlier than a **floor**, the latest of the build time baked in at compile time
//! (`build.rs`), the last good time persisted in `<state_dir>/time-floor`, the start of the
//! certificate central issued, and the time in central's signed statement of the newest
//! heartbeat answer ([`crate::freshness`]); the floor advances with the monotonic clock while
//! the agent runs. Once synced (systemd-timesyncd's `/run/systemd/timesync/synchronized`
//! exists), the real time is used, so an expired certificate is refused, and the floor
//! follows it. Nothing else moves the floor: an unsynced system clock is never read, so a
//! clock that jumped to 2040 cannot make every certificate look expired after a reboot.
//!
//! Central's certificate is checked against this clock ([`AgentClock`] is the TLS client's
//! [`CertificateClock`]); the stick's token expiry is checked only when synced (central is
//! the authority on it); renewal is scheduled from [`AgentClock::now`].
//!
//! Debug builds read `SKOLEBRO_TEST_CLOCK` for process tests: `synced` (the system clock,
//! taken as synced), `synced:<unix seconds>` (synced, running from that time), `unsynced`, or
//! `unsynced:<unix seconds>` (a system clock reading that time, never synced: it must change
//! nothing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use skolebro_provisioning::tls::{CertificateClock, TimeReading};

/// The floor file in the state folder: decimal unix seconds.
pub const FLOOR_FILE: &str = "time-floor";

/// The floor is written to disk at most this often (an SD card wears).
const PERSIST_EVERY: Duration = Duration::from_secs(3600);

/// Why the clock could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// `SKOLEBRO_TEST_CLOCK` holds something this build does not understand.
    #[error("SKOLEBRO_TEST_CLOCK={0:?}: expected `synced`, `synced:<unix seconds>`, `unsynced` or `unsynced:<unix seconds>`")]
    TestClock(String),
}

/// Where the clock's readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The system clock; synced when the marker file exists.
    System,
    /// A test's clock: synced from `start_unix` (or the system clock) on, or never synced.
    #[cfg(debug_assertions)]
    Test {
        synced: bool,
        start_unix: Option<u64>,
    },
}

#[derive(Debug)]
struct Floor {
    /// A time the real time was known to be past, at `since`.
    at: SystemTime,
    since: Instant,
    /// What the floor file holds.
    persisted: SystemTime,
}

impl Floor {
    fn now(&self) -> SystemTime {
        self.at + self.since.elapsed()
    }
}

/// The agent's clock: a floor that only moves forward, and the synced system time when
/// there is one. Shared by the TLS client, renewal and enrollment.
#[derive(Debug)]
pub struct AgentClock {
    source: Source,
    synced_file: PathBuf,
    floor_file: Option<PathBuf>,
    /// When a test clock started running.
    #[cfg(debug_assertions)]
    started: Instant,
    floor: Mutex<Floor>,
}

/// The time this agent was built (from `build.rs`).
pub fn build_time() -> SystemTime {
    let seconds = env!("SKOLEBRO_BUILD_UNIX").parse::<u64>().unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Seconds since the epoch (0 for a time before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AgentClock {
    /// The clock of an agent whose state lives in `state_dir` (`None`: nothing persisted, for
    /// one-shot commands), synced when `synced_file` exists.
    pub fn open(state_dir: Option<&Path>, synced_file: &Path) -> Result<AgentClock, ClockError> {
        let floor_file = state_dir.map(|d| d.join(FLOOR_FILE));
        let persisted = floor_file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .unwrap_or(UNIX_EPOCH);
        Ok(AgentClock {
            source: source()?,
            synced_file: synced_file.to_owned(),
            floor_file,
            #[cfg(debug_assertions)]
            started: Instant::now(),
            floor: Mutex::new(Floor {
                at: build_time().max(persisted),
                since: Instant::now(),
                persisted,
            }),
        })
    }

    /// The real time, if the clock is synced.
    pub fn synced_now(&self) -> Option<SystemTime> {
        let now = match self.source {
            Source::System => self.synced_file.exists().then(SystemTime::now)?,
            #[cfg(debug_assertions)]
            Source::Test { synced, start_unix } => {
                if !synced {
                    return None;
                }
                match start_unix {
                    Some(s) => UNIX_EPOCH + Duration::from_secs(s) + self.started.elapsed(),
                    None => SystemTime::now(),
                }
            }
        };
        self.advance(now);
        Some(now)
    }

    /// Whether the system clock is synced.
    pub fn is_synced(&self) -> bool {
        self.synced_now().is_some()
    }

    /// The earliest the real time can be.
    pub fn floor(&self) -> SystemTime {
        self.lock().now()
    }

    /// The best known time: the synced time, or else the floor (which is never later than
    /// the real time, so a renewal is at worst a little late, never early).
    pub fn now(&self) -> SystemTime {
        self.synced_now().unwrap_or_else(|| self.floor())
    }

    /// Raises the floor to `t`, a time known to have passed (a synced reading, the start of
    /// a certificate central just issued, or central's signed time), and persists it now and
    /// then. Never an unsynced reading of the system clock.
    pub fn advance(&self, t: SystemTime) {
        let mut floor = self.lock();
        if t > floor.now() {
            floor.at = t;
            floor.since = Instant::now();
        }
        let now = floor.now();
        let due = now
            .duration_since(floor.persisted)
            .is_ok_and(|d| d >= PERSIST_EVERY);
        if let (true, Some(file)) = (due, &self.floor_file) {
            match crate::state::write_atomic(file, format!("{}\n", unix(now)).as_bytes()) {
                Ok(()) => floor.persisted = now,
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "cannot persist the time floor")
                }
            }
        }
    }

    /// Writes the floor now (after an enrollment, so a reboot right after keeps it).
    pub fn persist(&self) {
        let mut floor = self.lock();
        let now = floor.now();
        if let Some(file) = &self.floor_file {
            match crate::state::write_atomic(file, format!("{}\n", unix(now)).as_bytes()) {
                Ok(()) => floor.persisted = now,
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "cannot persist the time floor")
                }
            }
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Floor> {
        self.floor.lock()
    }
}

#[cfg(test)]
impl AgentClock {
    /// A clock with an injected system time for unit tests: `synced` or not, reading
    /// `start_unix` now and running on from there. An unsynced one is never read.
    pub(crate) fn injected(state_dir: &Path, synced: bool, start_unix: u64) -> AgentClock {
        let mut clock =
            AgentClock::open(Some(state_dir), &state_dir.join("no-sync-marker")).expect("a clock");
        clock.source = Source::Test {
            synced,
            start_unix: Some(start_unix),
        };
        clock
    }
}

impl CertificateClock for AgentClock {
    fn reading(&self) -> TimeReading {
        match self.synced_now() {
            Some(now) => TimeReading::Synced(now),
            None => TimeReading::AtLeast(self.floor()),
        }
    }
}

#[cfg(debug_assertions)]
fn source() -> Result<Source, ClockError> {
    let Ok(text) = std::env::var("SKOLEBRO_TEST_CLOCK") else {
        return Ok(Source::System);
    };
    let bad = || ClockError::TestClock(text.clone());
    match text.trim() {
        "synced" => Ok(Source::Test {
            synced: true,
            start_unix: None,
        }),
        "unsynced" => Ok(Source::Test {
            synced: false,
            start_unix: None,
        }),
        other => {
            let (synced, seconds) = match other.split_once(':') {
                Some(("synced", seconds)) => (true, seconds),
                Some(("unsynced", seconds)) => (false, seconds),
                _ => return Err(bad()),
            };
            Ok(Source::Test {
                synced,
                start_unix: Some(seconds.trim().parse().map_err(|_| bad())?),
            })
        }
    }
}

#[cfg(not(debug_assertions))]
fn source() -> Result<Source, ClockError> {
    Ok(Source::System)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    fn clock(dir: &Path, synced: bool) -> AgentClock {
        let marker = dir.join("synchronized");
        if synced {
            std::fs::write(&marker, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&marker);
        }
        let mut clock = AgentClock::open(Some(dir), &marker).unwrap();
        clock.source = Source::System;
        clock
    }

    #[test]
    fn the_floor_starts_at_the_build_time_or_the_persisted_time_whichever_is_later() {
        let dir = tempfile::tempdir().unwrap();
        let c = clock(dir.path(), false);
        assert!(c.floor() >= build_time());
        assert_eq!(c.synced_now(), None);
        let later = SystemTime::now() + 3 * YEAR;
        std::fs::write(dir.path().join(FLOOR_FILE), format!("{}\n", unix(later))).unwrap();
        let c = clock(dir.path(), false);
        assert!(unix(c.floor()) >= unix(later));
        assert!(matches!(c.reading(), TimeReading::AtLeast(t) if unix(t) >= unix(later)));
    }

    #[test]
    fn a_synced_clock_is_used_as_is_and_advances_the_persisted_floor() {
        let dir = tempfile::tempdir().unwrap();
        let c = clock(dir.path(), true);
        let now = c.synced_now().unwrap();
        assert!(now.duration_since(SystemTime::now()).unwrap_or_default() < YEAR);
        assert!(matches!(c.reading(), TimeReading::Synced(_)));
        // Synced and more than an hour past the (missing) persisted floor: written.
        let text = std::fs::read_to_string(dir.path().join(FLOOR_FILE)).unwrap();
        assert!(text.trim().parse::<u64>().unwrap() + 5 >= unix(SystemTime::now()));
    }

    #[test]
    fn the_floor_never_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = clock(dir.path(), false);
        let ahead = SystemTime::now() + YEAR;
        c.advance(ahead);
        c.advance(UNIX_EPOCH);
        assert!(c.floor() >= ahead);
        c.persist();
        let c = clock(dir.path(), false);
        assert!(unix(c.floor()) >= unix(ahead));
    }
}
