//! Central's signed statements on the device (issue 18, TUF's timestamp role; the format is
//! `skolebro_protocol::statement`). The heartbeat loop hands every answer's statement and
//! release offer to [`Freshness::receive`] before the updater sees the offer:
//!
//! ```text
//! answer.statement -> base64 -> Statement::verify (central's statement key, from the
//!   enrollment answer or [central] statement_key) -> for this device, not expired by the
//!   agent clock, not older than the newest accepted (a replay)
//!   -> clock floor advances to its signed time (DESIGN decision 8)
//!   -> the offer passes only if the statement names its manifest as current
//! ```
//!
//! A refused statement passes no offer and moves neither the floor nor the newest time; the
//! release itself is not refused (it may be fine; the answer around it is not), so it is
//! neither reported nor remembered. When no fresh statement has come for `freshness_days`,
//! the device's offers are **frozen**: a replayed or withheld answer, or a central whose
//! clock or key went wrong. The status, the front panel and the heartbeat say so.
//!
//! A device that knows no statement key (an older central enrolled it, or `agent.toml`
//! names none) checks nothing here and takes offers as before.
//!
//! `<state_dir>/freshness` keeps the newest accepted statement's time, so a replay is still
//! refused after a restart, and the time the device began to expect statements, so a device
//! that never got one is reported frozen too. It is written when the newest time moved by an
//! hour or more, or when an offer was taken (SD-card wear: not at every heartbeat).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use skolebro_protocol::api::{self, ReleaseOffer};
use skolebro_protocol::statement::StatementError;
use skolebro_protocol::{Statement, StatementVerifyingKey};

use crate::clock::AgentClock;
use crate::status::FreshnessStatus;

/// The file in the state folder.
pub const FRESHNESS_FILE: &str = "freshness";

/// The newest time is written again once it moved this far (an SD card wears).
const PERSIST_EVERY_MS: u64 = 3_600_000;

const DAY_MS: u64 = 86_400_000;

/// What `<state_dir>/freshness` holds (JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    /// Central's time in the newest statement accepted, Unix ms.
    #[serde(default)]
    newest_statement_unix_ms: Option<u64>,
    /// When this device began to expect statements (the agent clock), Unix ms.
    #[serde(default)]
    since_unix_ms: u64,
}

#[derive(Debug)]
struct Seen {
    kept: Kept,
    /// The newest time as the file holds it.
    persisted: Option<u64>,
    /// Why the last statement was refused, in words without times (the status is written
    /// only when it changes), until one is accepted.
    refusal: Option<&'static str>,
}

/// A refused statement: the words for the log, and the kind for the status.
struct Refused {
    words: String,
    kind: &'static str,
}

impl Refused {
    fn new(kind: &'static str) -> Refused {
        Refused {
            words: kind.to_owned(),
            kind,
        }
    }
}

impl From<StatementError> for Refused {
    fn from(error: StatementError) -> Refused {
        let kind = match &error {
            StatementError::Expired { .. } => "it expired",
            StatementError::Replayed { .. } => "it is older than the newest seen (a replay)",
            StatementError::WrongDevice { .. } => "it is for another device",
            StatementError::NotCurrent => "it names another manifest than the one offered",
            StatementError::BadSignature => "it is not signed with central's statement key",
            _ => "it is not a well-formed statement",
        };
        Refused {
            words: error.to_string(),
            kind,
        }
    }
}

/// The device's view of central's statements; one per running phase, shared by the
/// heartbeat loop.
#[derive(Debug)]
pub struct Freshness {
    key: Option<StatementVerifyingKey>,
    device: String,
    clock: Arc<AgentClock>,
    file: PathBuf,
    frozen_after_ms: u64,
    seen: Mutex<Seen>,
}

/// A heartbeat answer's offer after the statement check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The offer to hand to the updater: the answer's, if its statement holds.
    pub offer: Option<ReleaseOffer>,
    /// Why the statement (and with it any offer) was refused.
    pub refusal: Option<String>,
}

impl Freshness {
    /// The freshness of `device`, checking statements against `key` (`None`: checks
    /// nothing), frozen after `days` without a fresh one, kept in `state_dir`.
    pub fn open(
        state_dir: &Path,
        key: Option<StatementVerifyingKey>,
        device: &str,
        clock: Arc<AgentClock>,
        days: u64,
    ) -> Freshness {
        let file = state_dir.join(FRESHNESS_FILE);
        let read = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Kept>(&bytes).ok());
        let fresh = Freshness {
            key,
            device: device.to_owned(),
            frozen_after_ms: days.saturating_mul(DAY_MS),
            seen: Mutex::new(Seen {
                kept: read.unwrap_or_default(),
                persisted: read.and_then(|k| k.newest_statement_unix_ms),
                refusal: None,
            }),
            clock,
            file,
        };
        if fresh.key.is_some() && read.is_none() {
            // From now on statements are expected: a device that never gets one is frozen
            // after the same days as one whose statements stopped.
            let mut seen = fresh.seen.lock();
            seen.kept.since_unix_ms = fresh.now_ms();
            fresh.persist(&mut seen);
        }
        fresh
    }

    /// Whether statements are checked at all (a statement key is known).
    pub fn checks(&self) -> bool {
        self.key.is_some()
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// Checks an answer's `statement` (base64) and passes `offer` on only if it holds and
    /// names the offer's manifest as current; an accepted statement advances the clock floor
    /// to its signed time.
    pub fn receive(&self, statement: Option<&str>, offer: Option<ReleaseOffer>) -> Received {
        let Some(key) = &self.key else {
            return Received {
                offer,
                refusal: None,
            };
        };
        match self.accept(key, statement, offer.as_ref()) {
            Ok(()) => Received {
                offer,
                refusal: None,
            },
            Err(Refused {
                words: refusal,
                kind,
            }) => {
                match &offer {
                    Some(offer) => {
                        tracing::warn!(release = %offer.id, %refusal, "central's statement refused; the offer is not taken")
                    }
                    None => tracing::warn!(%refusal, "central's statement refused"),
                }
                self.seen.lock().refusal = Some(kind);
                Received {
                    offer: None,
                    refusal: Some(refusal),
                }
            }
        }
    }

    fn accept(
        &self,
        key: &StatementVerifyingKey,
        statement: Option<&str>,
        offer: Option<&ReleaseOffer>,
    ) -> Result<(), Refused> {
        let text = statement
            .ok_or_else(|| Refused::new("central's answer carries no signed statement"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| Refused::new("central's statement is not base64"))?;
        let statement = Statement::verify(&bytes, key)?;
        let now_ms = self.now_ms();
        let mut seen = self.seen.lock();
        statement.check(&self.device, now_ms, seen.kept.newest_statement_unix_ms)?;
        if let Some(offer) = offer {
            let manifest = base64::engine::general_purpose::STANDARD
                .decode(offer.manifest.trim())
                .map_err(|_| Refused::new("the offered manifest is not base64"))?;
            if !statement.names_current(&manifest) {
                return Err(StatementError::NotCurrent.into());
            }
        }
        let issued = statement.issued_unix_ms;
        self.clock
            .advance(UNIX_EPOCH + Duration::from_millis(issued));
        let newest = seen.kept.newest_statement_unix_ms.unwrap_or(0).max(issued);
        seen.kept.newest_statement_unix_ms = Some(newest);
        seen.refusal = None;
        let due = seen
            .persisted
            .is_none_or(|p| newest.saturating_sub(p) >= PERSIST_EVERY_MS);
        if due || offer.is_some() {
            self.persist(&mut seen);
        }
        Ok(())
    }

    fn persist(&self, seen: &mut Seen) {
        let bytes = serde_json::to_vec(&seen.kept).unwrap_or_default();
        match crate::state::write_atomic(&self.file, &bytes) {
            Ok(()) => seen.persisted = seen.kept.newest_statement_unix_ms,
            Err(error) => {
                tracing::warn!(file = %self.file.display(), %error, "cannot keep the newest statement's time")
            }
        }
    }

    /// Whether no fresh statement came for `freshness_days` by the agent clock.
    fn frozen(&self, seen: &Seen) -> bool {
        let since = seen
            .kept
            .newest_statement_unix_ms
            .unwrap_or(seen.kept.since_unix_ms);
        self.now_ms().saturating_sub(since) >= self.frozen_after_ms
    }

    /// What the heartbeat reports; `None` when no statement is checked.
    pub fn report(&self) -> Option<api::Freshness> {
        self.key.as_ref()?;
        let seen = self.seen.lock();
        Some(api::Freshness {
            newest_statement_unix_ms: seen.kept.newest_statement_unix_ms,
            frozen: self.frozen(&seen),
        })
    }

    /// What `status.json` shows; `None` when no statement is checked. The newest time is
    /// the one kept on disk, which moves hourly, not at every heartbeat: `status.json` is
    /// written only when something in it changes (SD-card wear).
    pub fn status(&self) -> Option<FreshnessStatus> {
        self.key.as_ref()?;
        let seen = self.seen.lock();
        Some(FreshnessStatus {
            newest_statement_unix_ms: seen.persisted,
            frozen: self.frozen(&seen),
            refusal: seen.refusal.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::statement::manifest_digest;
    use skolebro_protocol::{ReleaseManifest, ReleaseSigningKey, StatementSigningKey, Version};
    use skolebro_provisioning::tls::{CertificateClock as _, TimeReading};

    const DEVICE: &str = "4601-12345-0a0b0c0d";
    /// Thirty days after this build: later than the floor any clock starts from.
    fn t0() -> u64 {
        crate::clock::unix(crate::clock::build_time()) + 30 * 86_400
    }
    /// 2040-01-01: where a bad RTC hat or a wrong manual setting leaves the clock.
    const Y2040: u64 = 2_208_988_800;

    fn key() -> StatementSigningKey {
        StatementSigningKey::from_bytes([0x54; 32])
    }

    fn signed(issued_unix: u64, current: Option<&[u8]>) -> String {
        let statement = Statement {
            device: DEVICE.into(),
            target: Some("aarch64-unknown-linux-gnu".into()),
            issued_unix_ms: issued_unix * 1000,
            expires_unix_ms: issued_unix * 1000 + DAY_MS,
            current: current.map(manifest_digest),
        };
        base64::engine::general_purpose::STANDARD.encode(statement.sign(&key()))
    }

    fn manifest(version: u32) -> Vec<u8> {
        ReleaseManifest {
            version: Version::new(1, version, 0),
            target: "aarch64-unknown-linux-gnu".into(),
            size: 10,
            sha256: [1; 32],
            allow_downgrade: false,
            created_unix: t0(),
            expires_unix: t0() + 30 * 86_400,
            replaces: None,
            floor: None,
        }
        .sign(&ReleaseSigningKey::from_bytes([3; 32]))
    }

    fn offer(manifest: &[u8]) -> ReleaseOffer {
        ReleaseOffer {
            id: "1.1.0-aarch64-unknown-linux-gnu".into(),
            manifest: base64::engine::general_purpose::STANDARD.encode(manifest),
            artifact: "/v1/releases/1.1.0-aarch64-unknown-linux-gnu/artifact".into(),
        }
    }

    fn freshness(dir: &Path, clock: AgentClock) -> Freshness {
        Freshness::open(dir, Some(key().verifying_key()), DEVICE, Arc::new(clock), 7)
    }

    fn unix(clock: &AgentClock) -> u64 {
        crate::clock::unix(clock.floor())
    }

    #[test]
    fn a_fresh_statement_naming_the_offer_passes_it_and_advances_an_unsynced_floor() {
        let dir = tempfile::tempdir().unwrap();
        // Behind: an unsynced clock reading 1970, as after a boot without network.
        let fresh = freshness(dir.path(), AgentClock::injected(dir.path(), false, 0));
        assert!(
            unix(&fresh.clock) < t0(),
            "the floor starts at the build time"
        );
        let m = manifest(1);
        let received = fresh.receive(Some(&signed(t0(), Some(&m))), Some(offer(&m)));
        assert_eq!(received.refusal, None);
        assert_eq!(received.offer, Some(offer(&m)));
        assert!(
            unix(&fresh.clock) >= t0(),
            "central's signed time raised the floor"
        );
        let report = fresh.report().unwrap();
        assert_eq!(report.newest_statement_unix_ms, Some(t0() * 1000));
        assert!(!report.frozen);

        // After a reboot, still without network: the floor and the newest time were kept.
        let again = freshness(dir.path(), AgentClock::injected(dir.path(), false, 0));
        assert!(unix(&again.clock) >= t0());
        assert_eq!(
            again.report().unwrap().newest_statement_unix_ms,
            Some(t0() * 1000)
        );
    }

    #[test]
    fn an_unsynced_clock_set_to_2040_moves_nothing_and_certificates_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        // Ahead: the system clock reads 2040 but was never synced.
        let fresh = freshness(dir.path(), AgentClock::injected(dir.path(), false, Y2040));
        assert!(fresh
            .receive(Some(&signed(t0(), None)), None)
            .refusal
            .is_none());
        assert!(
            unix(&fresh.clock) < t0() + 60,
            "the floor is central's time, not 2040"
        );
        // A reboot still without network: the floor read back is central's time, so a
        // certificate valid for 90 days from t0() is not taken as expired.
        let clock = AgentClock::injected(dir.path(), false, Y2040);
        let not_after = t0() + 90 * 86_400;
        match clock.reading() {
            TimeReading::AtLeast(floor) => {
                let floor = crate::clock::unix(floor);
                assert!((t0()..not_after).contains(&floor), "floor {floor}");
            }
            TimeReading::Synced(_) => panic!("an unsynced clock reads as synced"),
        }
        // A statement central signed now is not judged expired by the 2040 reading either.
        let fresh = freshness(dir.path(), clock);
        assert!(fresh
            .receive(Some(&signed(t0() + 3600, None)), None)
            .refusal
            .is_none());
        assert!(!fresh.report().unwrap().frozen);
    }

    #[test]
    fn a_replayed_statement_is_refused_with_its_offer_and_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 7200),
        );
        let old = manifest(1);
        let replayed = signed(t0(), Some(&old));
        assert!(fresh
            .receive(Some(&signed(t0() + 3600, None)), None)
            .refusal
            .is_none());
        let received = fresh.receive(Some(&replayed), Some(offer(&old)));
        assert_eq!(received.offer, None);
        assert!(
            received.refusal.as_deref().unwrap().contains("replay"),
            "{received:?}"
        );
        assert_eq!(
            fresh.status().unwrap().newest_statement_unix_ms,
            Some((t0() + 3600) * 1000)
        );
        // Still refused after a restart: the newest time was kept.
        let again = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 7200),
        );
        assert!(again
            .receive(Some(&replayed), Some(offer(&old)))
            .offer
            .is_none());
    }

    #[test]
    fn an_expired_a_foreign_an_unsigned_or_a_missing_statement_passes_no_offer() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(1);
        // Synced two days after t0(): a statement issued at t0() expired a day ago.
        let fresh = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 2 * 86_400),
        );
        let expired = fresh.receive(Some(&signed(t0(), Some(&m))), Some(offer(&m)));
        assert!(expired.refusal.unwrap().contains("expired"));
        assert_eq!(expired.offer, None);
        let other_manifest = fresh.receive(
            Some(&signed(t0() + 2 * 86_400, Some(&manifest(2)))),
            Some(offer(&m)),
        );
        assert!(other_manifest.refusal.unwrap().contains("not the one"));
        let forged = StatementSigningKey::from_bytes([9; 32]);
        let bytes = Statement {
            device: DEVICE.into(),
            target: None,
            issued_unix_ms: (t0() + 2 * 86_400) * 1000,
            expires_unix_ms: (t0() + 3 * 86_400) * 1000,
            current: Some(manifest_digest(&m)),
        }
        .sign(&forged);
        let forged = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(fresh
            .receive(Some(&forged), Some(offer(&m)))
            .offer
            .is_none());
        let missing = fresh.receive(None, Some(offer(&m)));
        assert!(missing.refusal.unwrap().contains("no signed statement"));
        assert_eq!(fresh.status().unwrap().newest_statement_unix_ms, None);
    }

    #[test]
    fn no_fresh_statement_for_seven_days_is_reported_frozen() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = freshness(dir.path(), AgentClock::injected(dir.path(), true, t0()));
        assert!(fresh
            .receive(Some(&signed(t0(), None)), None)
            .refusal
            .is_none());
        assert!(!fresh.report().unwrap().frozen);
        // Six days on, only the old statement comes back: not fresh, not frozen yet.
        let six = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 6 * 86_400),
        );
        assert!(six
            .receive(Some(&signed(t0(), None)), None)
            .refusal
            .is_some());
        assert!(!six.report().unwrap().frozen);
        // Eight days on: frozen, in the heartbeat and the status.
        let eight = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 8 * 86_400),
        );
        assert!(eight.report().unwrap().frozen);
        assert!(eight.status().unwrap().frozen);
        // A fresh statement thaws it.
        assert!(eight
            .receive(Some(&signed(t0() + 8 * 86_400, None)), None)
            .refusal
            .is_none());
        assert!(!eight.report().unwrap().frozen);
    }

    #[test]
    fn a_device_that_never_got_a_statement_is_frozen_after_the_same_days() {
        let dir = tempfile::tempdir().unwrap();
        let first = freshness(dir.path(), AgentClock::injected(dir.path(), true, t0()));
        assert!(!first.report().unwrap().frozen);
        let later = freshness(
            dir.path(),
            AgentClock::injected(dir.path(), true, t0() + 8 * 86_400),
        );
        assert_eq!(
            later.report(),
            Some(api::Freshness {
                newest_statement_unix_ms: None,
                frozen: true
            })
        );
    }

    #[test]
    fn without_a_statement_key_offers_pass_unchecked_and_nothing_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AgentClock::injected(dir.path(), true, t0()));
        let plain = Freshness::open(dir.path(), None, DEVICE, clock, 7);
        let m = manifest(1);
        assert_eq!(plain.receive(None, Some(offer(&m))).offer, Some(offer(&m)));
        assert_eq!((plain.report(), plain.status()), (None, None));
        assert!(!dir.path().join(FRESHNESS_FILE).exists());
    }
}
