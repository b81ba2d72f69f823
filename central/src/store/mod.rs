//! Central's store: devices, site secrets, chain heads and every roster record with history.
//!
//! It sits at the end of central's ingest: HTTP (mTLS) -> look up the [`DeviceRecord`] and the
//! [`ChainHead`] here -> verify and open the envelope (`skolebro_protocol::envelope::open`) ->
//! [`Store::apply`], which checks the chain again, applies the payload and stores the new head
//! in **one** database transaction (DESIGN decision 3). The re-check inside the transaction is
//! what makes apply exactly-once: two requests carrying the same envelope may both pass
//! `open`, but only one of them finds the head still expecting its sequence number; the other
//! gets [`Outcome::AlreadyApplied`] and is acked without touching a record.
//!
//! Records are kept per site and record handle, versioned as the county's `elev` table is
//! (DESIGN decision 9): a change closes the current version (`valid_to` set, `is_current`
//! false) and inserts a new current one; a delete only closes. Nothing is ever overwritten, so
//! [`Store::roster_as_of`] can answer what a school's roster was at any earlier time.
//!
//! Two backends implement the same [`Store`] trait: [`SqliteStore`], the embedded default,
//! and [`PostgresStore`], the production store. What a batch means (which versions to close,
//! which to insert) is decided once, in this module (`prepare` and `plan`); the backends
//! only read current versions and write the plan, so they cannot disagree on semantics.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skolebro_protocol::release::in_rollout;
use skolebro_protocol::{
    ChainHead, DeviceId, DeviceVerifyingKey, Digest, Enrollment, Entity, EntityDelta, Group,
    Opened, Payload, Record, RecordHandle, ReleaseManifest, Roster, School, Seq, SiteId,
    SiteSecret, Student, Version as ReleaseVersion,
};

pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod suite;
mod windows;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use windows::{Fylke, NewWindow, TransferWindow, WindowState, MAX_WINDOW_NAME_LEN};
pub(crate) use windows::{WindowRow, WINDOW_COLUMNS, WINDOW_ORDER};

/// The future every [`Store`] method returns.
///
/// Boxed rather than `async fn` in the trait: an `async fn` in a trait makes the trait
/// unusable as `dyn Store`, and the HTTP layer keeps one `Arc<dyn Store>` in its state so the
/// backend is chosen at start-up, not at compile time. One allocation per call is nothing next
/// to a database round trip. Call sites stay plain: `store.apply(batch).await?`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What central keeps about one registered device, as the ingest needs it to open an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The only site this device may write to: a device's envelopes naming another site are
    /// refused, so one school's Pi cannot change another school's roster.
    pub site: SiteId,
    /// The Ed25519 key the device's envelopes must be signed with, from enrollment.
    pub verifying_key: DeviceVerifyingKey,
    /// Set when operations revoke a lost or stolen device; its batches are then refused.
    pub revoked: bool,
}

/// The device id enrollment gives a device: `"<site>-<first 8 hex of SHA-256(key)>"`, where
/// the key is the 32 bytes of the device's Ed25519 envelope key (docs/API.md). Derived, not
/// chosen, so the agent knows its id (and puts it in its CSR) before it asks, and a token
/// can only ever register the key it was spent on. `None` when the site id is too long to
/// leave room for the suffix; central refuses such sites when a token is created.
pub fn enrolled_device_id(site: &SiteId, key: &DeviceVerifyingKey) -> Option<DeviceId> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.to_bytes());
    DeviceId::new(format!("{site}-{}", hex::encode(&digest[..4]))).ok()
}

/// The longest site id a token may name: the device ids enrollment derives
/// ([`enrolled_device_id`]) add 9 characters and must stay within the 64 of an id.
pub const MAX_ENROLLABLE_SITE_LEN: usize = 55;

/// The id an enrollment token is listed, logged and revoked by: the first 16 hex characters
/// of the token's SHA-256. It names the token without being able to spend it.
pub fn token_id(token_sha256: &[u8; 32]) -> String {
    hex::encode(&token_sha256[..8])
}

/// A one-time enrollment token to register: central keeps only the token's SHA-256, so its
/// database (or a backup of it) cannot enroll anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// SHA-256 of the token's text (its hex characters as written on the stick).
    pub token_sha256: [u8; 32],
    /// The site a device enrolled with this token belongs to.
    pub site: SiteId,
    /// The school's name, for the operators' lists.
    pub site_name: String,
    /// When the token was registered.
    pub created: Timestamp,
    /// From this time on the token is refused.
    pub expires: Timestamp,
}

/// An enrollment token as the operators see it: everything but the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// See [`token_id`].
    pub id: String,
    pub site: SiteId,
    pub site_name: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    /// The device that spent the token, once one has.
    pub used_by: Option<DeviceId>,
    /// When it was spent.
    pub used_at: Option<Timestamp>,
    /// Revoked by an operator (a lost stick): refused from then on.
    pub revoked: bool,
}

impl TokenRecord {
    /// Whether the token may enroll a device at `at`; otherwise the refusal, in the order an
    /// operator would look for the cause (revoked, spent, expired). The enrollment handler
    /// asks before issuing a certificate, and the store asks again inside its transaction.
    pub fn usable_at(&self, at: Timestamp) -> Result<(), StoreError> {
        if self.revoked {
            Err(StoreError::TokenRevoked(self.id.clone()))
        } else if self.used_by.is_some() {
            Err(StoreError::TokenUsed(self.id.clone()))
        } else if at >= self.expires {
            Err(StoreError::TokenExpired(self.id.clone()))
        } else {
            Ok(())
        }
    }
}

/// One enrollment, as [`Store::enroll`] carries it out.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// SHA-256 of the token the device presented.
    pub token_sha256: [u8; 32],
    /// The device's Ed25519 envelope key; the device id derives from it and the token's site.
    pub verifying_key: DeviceVerifyingKey,
    /// A fresh random secret, stored only if the site has none yet. Made by the caller so
    /// the store needs no randomness of its own.
    pub new_site_secret: SiteSecret,
    /// When the enrollment happens: checked against the token's expiry, recorded as its use.
    pub at: Timestamp,
}

/// What an enrollment registered: the device, its site, and the site's handle secret for the
/// device to key its record handles with (DESIGN decision 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub device: DeviceId,
    pub site: SiteId,
    pub site_secret: SiteSecret,
}

/// Whose data a consumer client may read: the schools of one county (fylkesnummer, two
/// digits) or of one kommune (kommunenummer, four digits). In JSON `{"county": "46"}` or
/// `{"kommune": "4601"}`, as operations write it when they create the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsumerScope {
    County(String),
    Kommune(String),
}

impl ConsumerScope {
    /// Whether the code has the shape its kind needs: a county is two digits, a kommune
    /// four. Anything else would match no school and hide a typo as an empty answer.
    pub fn is_valid(&self) -> bool {
        let (code, len) = match self {
            ConsumerScope::County(code) => (code, 2),
            ConsumerScope::Kommune(code) => (code, 4),
        };
        code.len() == len && code.bytes().all(|b| b.is_ascii_digit())
    }

    /// Whether a school lies inside the scope. A school without a fylkesnummer belongs to
    /// the county its kommunenummer starts with (a kommunenummer is the county's two digits
    /// and two of its own), so an export that leaves out the county still reaches it; a
    /// school with neither number belongs to no scope.
    pub fn covers(&self, school: &School) -> bool {
        let kommune = school.kommunenummer.as_deref().map(str::trim);
        match self {
            ConsumerScope::Kommune(code) => kommune == Some(code.as_str()),
            ConsumerScope::County(code) => match school.fylkesnummer.as_deref().map(str::trim) {
                Some(county) if !county.is_empty() => county == code,
                _ => kommune.is_some_and(|k| k.len() == 4 && k.starts_with(code.as_str())),
            },
        }
    }

    /// The stored kind and code.
    pub(crate) fn to_db(&self) -> (&'static str, &str) {
        match self {
            ConsumerScope::County(code) => ("county", code),
            ConsumerScope::Kommune(code) => ("kommune", code),
        }
    }

    pub(crate) fn from_db(kind: &str, code: String) -> Result<ConsumerScope, StoreError> {
        match kind {
            "county" => Ok(ConsumerScope::County(code)),
            "kommune" => Ok(ConsumerScope::Kommune(code)),
            other => Err(StoreError::Corrupt(format!("unknown scope kind {other:?}"))),
        }
    }
}

/// A consumer's OAuth2 client (a county's admission office, an LMS), as operations create
/// it. Only a salted SHA-256 of its secret is kept: the secret is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerClient {
    /// The client id the consumer authenticates with; not secret.
    pub id: String,
    /// Who the client is, for the operators' list.
    pub name: String,
    /// The only schools the client may read.
    pub scope: ConsumerScope,
    /// Random salt hashed before the secret.
    pub secret_salt: [u8; 16],
    /// SHA-256 of the salt followed by the secret's text.
    pub secret_sha256: [u8; 32],
    pub created: Timestamp,
    /// Revoked by operations: its secret and tokens are refused from then on.
    pub revoked: bool,
}

/// What an operator account may see and do in the web interface (`crate::ui`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The platform team: every site, every action.
    Operations,
    /// A municipality's operator: only the sites whose schools lie in its kommune, and the
    /// held deltas of those sites.
    Municipality,
    /// Looks at everything operations sees, changes nothing.
    ReadOnly,
}

impl Role {
    /// The stored and command-line name: `operations`, `municipality` or `read_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operations => "operations",
            Role::Municipality => "municipality",
            Role::ReadOnly => "read_only",
        }
    }

    /// The role with this name, or `None`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Operations, Role::Municipality, Role::ReadOnly]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// An operator account. Only an argon2id hash of the password is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiUser {
    /// The name the operator signs in with.
    pub name: String,
    pub role: Role,
    /// The kommunenummer of a [`Role::Municipality`] account; `None` for the others.
    pub kommune: Option<String>,
    /// The password's argon2id hash as a PHC string (algorithm, parameters, salt, hash).
    pub password_hash: String,
    pub created: Timestamp,
}

/// A signed-in session as the web interface finds it by its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// Whose session it is, as the account stands now (a changed role applies at once).
    pub user: UiUser,
    /// The token every form of the session carries, checked on every POST.
    pub csrf: String,
    pub expires: Timestamp,
}

/// One line of the audit log: who did what, when, to what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The account's name (or the name tried, for a failed login).
    pub actor: String,
    /// What was done: `login`, `logout`, `release`, `reject`, `revoke_token`, …
    pub action: String,
    /// What it was done to: a device, a token id, a site; empty when nothing.
    pub target: String,
    /// The operator's reason or the outcome, in words.
    pub detail: String,
}

/// One applied batch of a site, as the site's page lists its transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub device: DeviceId,
    pub seq: Seq,
    /// When central applied it.
    pub at: Timestamp,
    /// A full snapshot rather than a delta.
    pub snapshot: bool,
    /// What it did to the site's records.
    pub changes: Changes,
    /// The envelope's size as central received it: what the school's uplink carried, which
    /// the record counts alone do not tell (0 for batches applied before it was kept).
    pub bytes: u64,
}

/// One current version of a record with what the consumer API needs beside the content:
/// its handle (to name it without its key) and since when it has been as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRecord {
    pub handle: RecordHandle,
    pub record: AnyRecord,
    /// `valid_from` of the current version: OneRoster's `dateLastModified`.
    pub modified: Timestamp,
}

/// A release to register (DESIGN decision 7): the signed manifest as operations made it,
/// with the fields central selects and orders by taken out of it. Central stores manifests
/// only after verifying them, so the fields are the signed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    /// [`ReleaseManifest::id`]: `<version>-<target>`.
    pub id: String,
    pub version: ReleaseVersion,
    pub target: String,
    /// The artifact's length and SHA-256, which an uploaded artifact must match.
    pub size: u64,
    pub sha256: [u8; 32],
    pub allow_downgrade: bool,
    /// The signed manifest bytes, handed to devices as they are.
    pub manifest: Vec<u8>,
    /// When central registered it.
    pub registered: Timestamp,
}

impl NewRelease {
    /// The release a verified manifest describes.
    pub fn new(manifest: &ReleaseManifest, bytes: Vec<u8>, registered: Timestamp) -> NewRelease {
        NewRelease {
            id: manifest.id(),
            version: manifest.version,
            target: manifest.target.clone(),
            size: manifest.size,
            sha256: manifest.sha256,
            allow_downgrade: manifest.allow_downgrade,
            manifest: bytes,
            registered,
        }
    }
}

/// A registered release with its rollout policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// What was registered.
    pub release: NewRelease,
    /// Whether the artifact is stored (it matched the manifest); until then no device is
    /// offered the release.
    pub artifact_stored: bool,
    /// The share of devices in the rollout, 0 to 100, by stable cohort
    /// ([`skolebro_protocol::release::in_rollout`]).
    pub percent: u8,
    /// Sites whose devices are all in the rollout, whatever the percentage.
    pub sites: Vec<SiteId>,
    /// A paused release is offered to no device; its policy is kept for when it resumes.
    pub paused: bool,
}

impl ReleaseRecord {
    /// Whether the rollout policy includes a device of `site` (paused or not): its site is
    /// named, or it is in the first `percent` percent of the release's cohorts.
    pub fn includes(&self, device: &DeviceId, site: &SiteId) -> bool {
        self.sites.contains(site) || in_rollout(&self.release.id, device.as_str(), self.percent)
    }
}

/// A change of a release's rollout policy; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutChange {
    /// The new percentage, 0 to 100.
    pub percent: Option<u8>,
    /// The new list of named sites (replacing the old one).
    pub sites: Option<Vec<SiteId>>,
    /// Pause (`true`) or resume (`false`).
    pub paused: Option<bool>,
}

/// Where a device stands with a release: `offered` is central's own record of handing it out,
/// the others are what the agent reports in its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Offered,
    Downloaded,
    Installed,
    Healthy,
    RolledBack,
    Refused,
}

impl UpdateState {
    /// Every state, in the order an update goes through them.
    pub const ALL: [UpdateState; 6] = [
        UpdateState::Offered,
        UpdateState::Downloaded,
        UpdateState::Installed,
        UpdateState::Healthy,
        UpdateState::RolledBack,
        UpdateState::Refused,
    ];

    /// The stored and reported name (`rolled_back`).
    pub fn name(self) -> &'static str {
        match self {
            UpdateState::Offered => "offered",
            UpdateState::Downloaded => "downloaded",
            UpdateState::Installed => "installed",
            UpdateState::Healthy => "healthy",
            UpdateState::RolledBack => "rolled_back",
            UpdateState::Refused => "refused",
        }
    }

    pub(crate) fn from_name(name: &str) -> Result<UpdateState, StoreError> {
        UpdateState::ALL
            .into_iter()
            .find(|state| state.name() == name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown update state {name:?}")))
    }

    /// Whether the device is done with the release for good: it rolled it back or refused
    /// it, so offering it again would only repeat that.
    pub fn is_final_failure(self) -> bool {
        matches!(self, UpdateState::RolledBack | UpdateState::Refused)
    }
}

/// One step of a device's update, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEvent {
    /// The release's id.
    pub release: String,
    pub device: DeviceId,
    pub state: UpdateState,
    /// Why, for `rolled_back` and `refused`.
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// How many devices reached each state of a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateCounts {
    pub offered: u64,
    pub downloaded: u64,
    pub installed: u64,
    pub healthy: u64,
    pub rolled_back: u64,
    pub refused: u64,
}

impl UpdateCounts {
    pub(crate) fn add(&mut self, state: UpdateState, count: u64) {
        let field = match state {
            UpdateState::Offered => &mut self.offered,
            UpdateState::Downloaded => &mut self.downloaded,
            UpdateState::Installed => &mut self.installed,
            UpdateState::Healthy => &mut self.healthy,
            UpdateState::RolledBack => &mut self.rolled_back,
            UpdateState::Refused => &mut self.refused,
        };
        *field += count;
    }
}

/// A device that rolled back or refused a release, and the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReason {
    pub device: DeviceId,
    pub reason: Option<String>,
}

/// How a release's rollout is going: the operators' view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    pub counts: UpdateCounts,
    /// Devices that rolled the release back, by device id.
    pub rollbacks: Vec<DeviceReason>,
    /// Devices that refused it, by device id.
    pub refusals: Vec<DeviceReason>,
}

/// A point in time as Unix milliseconds (UTC).
///
/// A plain integer keeps the store free of a date crate and compares the same in SQLite and
/// PostgreSQL; [`fmt::Display`] renders RFC 3339 for people and JSON documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time from the system clock. Central runs on a server with a synchronised
    /// clock, unlike the Pi (DESIGN decision 8), so transaction times come from here.
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms))
            }
        }
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn unix_millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-03-10T14:05:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAY_MS: i64 = 86_400_000;
        let days = self.0.div_euclid(DAY_MS);
        let ms = self.0.rem_euclid(DAY_MS);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

impl Timestamp {
    /// Parses an RFC 3339 time (`2026-11-01T00:00:00Z`, with optional fractions of a second
    /// and a `+01:00`-style offset) or a bare date (`2026-11-01`, midnight UTC), as consumers
    /// write them in filters and `as_of` parameters. `None` for anything else.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let bytes = text.as_bytes();
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            let digits = bytes.get(range)?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        };
        if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
            return None;
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let date_ms = days_from_civil(year, month, day) * 86_400_000;
        if bytes.len() == 10 {
            return Some(Timestamp(date_ms));
        }
        if !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
            || bytes.get(13) != Some(&b':')
            || bytes.get(16) != Some(&b':')
        {
            return None;
        }
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut at = 19;
        let mut millis = 0;
        if bytes.get(at) == Some(&b'.') {
            let start = at + 1;
            at = start;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            // Milliseconds: the first three digits, padded; finer digits are dropped.
            let mut digits = text.get(start..at.min(start + 3))?.to_owned();
            while digits.len() < 3 {
                digits.push('0');
            }
            millis = digits.parse().ok()?;
        }
        let offset_minutes = match bytes.get(at) {
            Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
            Some(sign @ (b'+' | b'-'))
                if at + 6 == bytes.len() && bytes.get(at + 3) == Some(&b':') =>
            {
                let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 60 + minutes;
                if *sign == b'-' {
                    -offset
                } else {
                    offset
                }
            }
            _ => return None,
        };
        let seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Some(Timestamp(date_ms + seconds * 1000 + millis))
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`), the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`), so formatting needs no date crate.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One opened envelope, ready to apply: everything [`Store::apply`] needs in one value.
///
/// It carries the chain position the envelope was verified against (`seq` and `prev`) so the
/// store can check, inside its transaction, that the head has not moved since; and it owns the
/// payload so a large snapshot is moved to the database worker, never copied.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The device whose chain the batch continues; its head is the one checked and advanced.
    pub device: DeviceId,
    /// The site whose records change; must be the device's registered site.
    pub site: SiteId,
    /// The envelope's sequence number.
    pub seq: Seq,
    /// The digest the envelope names as its predecessor.
    pub prev: [u8; 32],
    /// The head to store once applied: `seq + 1` and this envelope's digest.
    pub next_head: ChainHead,
    /// The opened delta or snapshot.
    pub payload: Payload,
    /// Transaction time: becomes `valid_from`, `valid_to` and `transaction_time` of the
    /// versions this batch opens and closes.
    pub at: Timestamp,
    /// The envelope's size in bytes as received, kept with the transfer so operators see
    /// what each batch cost the school's uplink; the opened payload no longer tells.
    pub bytes: u64,
}

impl Batch {
    /// The batch for an envelope of `bytes` bytes that `open` accepted, applied at `at`.
    pub fn from_opened(opened: Opened, bytes: u64, at: Timestamp) -> Batch {
        let next_head = opened.next_head();
        Batch {
            device: opened.header.device,
            site: opened.header.site,
            seq: opened.header.seq,
            prev: opened.header.prev,
            next_head,
            payload: opened.payload,
            at,
            bytes,
        }
    }
}

/// What [`Store::apply`] did with a batch. Both outcomes are acked to the agent: the batch is
/// stored either way, and the agent's outbox may let go of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now, in the same transaction that stored the new head.
    Applied(Changes),
    /// Applied before (a retry, a duplicate request, a replay): nothing was changed. `head`
    /// is the stored head, whose `next_seq` the ack names.
    AlreadyApplied { head: ChainHead },
}

/// How many records a batch added, changed, removed and left alone, for the ingest's log and
/// the operators' view of a transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Records with no current version before.
    pub added: u64,
    /// Records whose content changed: old version closed, new one inserted.
    pub changed: u64,
    /// Records closed by a delete or by their absence from a snapshot.
    pub removed: u64,
    /// Records upserted (or in a snapshot) with the content already stored.
    pub unchanged: u64,
}

/// Current records of a site by kind, for the operators' view and the consumer API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Current schools (FINT `Skole`).
    pub schools: u64,
    /// Current students (FINT `Elev`).
    pub students: u64,
    /// Current basisgrupper.
    pub groups: u64,
    /// Current enrollments (FINT `Elevforhold`).
    pub enrollments: u64,
}

impl Counts {
    fn set(&mut self, entity: Entity, count: u64) {
        match entity {
            Entity::School => self.schools = count,
            Entity::Student => self.students = count,
            Entity::Group => self.groups = count,
            Entity::Enrollment => self.enrollments = count,
        }
    }
}

/// A record of any kind, as one version in a record's history holds it.
///
/// Tagged with its kind in JSON (`{"entity": "student", "record": {…}}`), so a consumer
/// reading a history needs no other context to decode it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", content = "record", rename_all = "snake_case")]
pub enum AnyRecord {
    School(School),
    Student(Student),
    Group(Group),
    Enrollment(Enrollment),
}

/// One version of a record: what the county's `elev` table calls a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The record's content during this version.
    pub record: AnyRecord,
    /// From when (inclusive) this content was the school's record.
    pub valid_from: Timestamp,
    /// Until when (exclusive) it was; `None` while it is current.
    pub valid_to: Option<Timestamp>,
    pub is_current: bool,
    /// When central stored this version.
    pub transaction_time: Timestamp,
}

/// Everything that can go wrong in the store. Batch problems the ingest answers differently
/// (a gap asks for a snapshot, a broken chain is an alarm, a handle mismatch a refusal) have
/// their own variants; database failures keep their source for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database failed (I/O, lock timeout, constraint); the transaction was rolled
    /// back.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed or is unreachable; the transaction was rolled back.
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The batch is ahead of the stored head: batches between were lost. The agent answers a
    /// gap with a snapshot chained onto the head `expected` belongs to.
    #[error("sequence gap: expected {expected}, got {got}")]
    Gap { expected: Seq, got: Seq },
    /// The sequence number is the expected one but `prev` is not the stored head's digest:
    /// the device's chain forked (restored backup, cloned SD card).
    #[error("batch {seq} does not chain onto the batch applied before it")]
    BrokenChain { seq: Seq },
    /// The batch's `next_head` does not follow its `seq`: a caller bug, refused rather than
    /// stored, because a wrong head would break every later batch of the device.
    #[error("batch {seq} names {next} as the next sequence number")]
    InvalidHead { seq: Seq, next: Seq },
    /// A sequence number beyond what the databases' signed 64-bit integers hold.
    #[error("sequence number {0} is out of range")]
    SeqOutOfRange(Seq),
    /// An upsert's handle is not the handle central computes from the record's key with the
    /// site secret: the agent holds another secret, or the delta is inconsistent. Storing it
    /// would make the record unreachable by later deletes.
    #[error("{entity:?} upsert carries handle {handle:?}, which does not match its key")]
    HandleMismatch {
        entity: Entity,
        handle: RecordHandle,
    },
    /// One batch names the same record twice (two upserts, upsert and delete, or two records
    /// with one key in a snapshot); which one wins would be a guess.
    #[error("{entity:?} record {handle:?} appears twice in one batch")]
    DuplicateRecord {
        entity: Entity,
        handle: RecordHandle,
    },
    /// The device never enrolled; its batches have no chain to continue.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// Operations revoked the device (lost, stolen, replaced); it may not write any more.
    #[error("device {0} is revoked")]
    DeviceRevoked(DeviceId),
    /// The batch names another site than the device was registered for.
    #[error("device {device} belongs to site {registered}, not {claimed}")]
    WrongSite {
        device: DeviceId,
        registered: SiteId,
        claimed: SiteId,
    },
    /// [`Store::register_device`] for an id already registered with another key or site.
    /// Re-registering must not silently hand a device's chain to a new key.
    #[error("device {0} is already registered with another key or site")]
    DeviceConflict(DeviceId),
    /// The site has no secret yet, so central cannot check or compute record handles.
    #[error("site {0} has no secret")]
    NoSiteSecret(SiteId),
    /// [`Store::set_site_secret`] with a new secret for a site that already has records:
    /// their handles were computed with the old secret, and deletes would stop matching.
    #[error("site {0} already holds records under another secret")]
    SiteSecretInUse(SiteId),
    /// The database was migrated by a newer build; this one refuses to guess at its schema.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// Stored data does not decode (a record's JSON, a key, an entity name).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// No enrollment token has this hash (or, for a revoke, this id).
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The token's expiry has passed. The field is the token's id, never the token.
    #[error("enrollment token {0} has expired")]
    TokenExpired(String),
    /// The token already enrolled a device: a stick is good for one device only.
    #[error("enrollment token {0} is already used")]
    TokenUsed(String),
    /// An operator revoked the token.
    #[error("enrollment token {0} is revoked")]
    TokenRevoked(String),
    /// A token with this hash, or with the same id, is already registered.
    #[error("enrollment token {0} is already registered")]
    TokenExists(String),
    /// No release has this id.
    #[error("unknown release {0}")]
    UnknownRelease(String),
    /// A release with this id is registered with another manifest: a version and target
    /// name exactly one artifact.
    #[error("release {0} is already registered with another manifest")]
    ReleaseExists(String),
    /// A consumer client with this id already exists.
    #[error("consumer client {0} already exists")]
    ClientExists(String),
    /// No consumer client has this id.
    #[error("unknown consumer client")]
    ClientUnknown,
    /// An operator account with this name already exists.
    #[error("operator account {0} already exists")]
    UserExists(String),
    /// A transfer window's name is empty or longer than [`MAX_WINDOW_NAME_LEN`].
    #[error("a transfer window's name is 1 to {MAX_WINDOW_NAME_LEN} characters")]
    WindowName,
    /// A transfer window would close before (or when) it opens.
    #[error("a transfer window must close after it opens (opens {opens}, closes {closes})")]
    WindowCloses { opens: Timestamp, closes: Timestamp },
    /// A transfer window would overlap another window of its county: a late batch would be
    /// on time for one and late for the other.
    #[error("the transfer window overlaps window {existing} of county {fylke}")]
    WindowOverlap { fylke: Fylke, existing: i64 },
    /// The store was configured with something it cannot use (e.g. a schema name).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The blocking worker running a database call panicked or was cancelled.
    #[error("store worker failed: {0}")]
    Worker(String),
}

/// Central's store. One implementation per database; the ingest, the operator interface and
/// the consumer API hold it as `Arc<dyn Store>`.
///
/// Sites and devices are identified by the ids from the envelope header; records by their
/// handle, the HMAC of their source key under the site secret (DESIGN decision 1), which is
/// what a delete carries.
pub trait Store: Send + Sync {
    /// Registers a device for a site with its enrollment key. Registering the same device
    /// again with the same site and key does nothing, so enrollment can be retried; with
    /// another site or key it fails with [`StoreError::DeviceConflict`].
    fn register_device<'a>(
        &'a self,
        device: &'a DeviceId,
        site: &'a SiteId,
        verifying_key: &'a DeviceVerifyingKey,
    ) -> StoreFuture<'a, ()>;

    /// Marks a device revoked, so none of its batches is applied any more. Revoking an
    /// unknown device fails with [`StoreError::UnknownDevice`], so a typo is not mistaken for
    /// success.
    fn revoke_device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ()>;

    /// The device's site, key and revocation, or `None` if it never enrolled.
    fn device<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Option<DeviceRecord>>;

    /// Every registered device with its site, key and revocation, sorted by id: the
    /// operators' fleet list, which survives restarts unlike the heartbeats.
    fn list_devices(&self) -> StoreFuture<'_, Vec<(DeviceId, DeviceRecord)>>;

    /// Registers an enrollment token by its hash. A second token with the same hash or id is
    /// refused with [`StoreError::TokenExists`].
    fn create_token<'a>(&'a self, token: &'a NewToken) -> StoreFuture<'a, ()>;

    /// The token with this hash, or `None`: enrollment's look before it issues a certificate.
    fn token<'a>(&'a self, token_sha256: &'a [u8; 32]) -> StoreFuture<'a, Option<TokenRecord>>;

    /// Every token, newest first.
    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>>;

    /// Revokes the token with this id (see [`token_id`]), used or not; again is no error. An
    /// unknown id is [`StoreError::TokenUnknown`].
    fn revoke_token<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Enrolls a device with a one-time token, all in one transaction: the token must be
    /// known, not revoked, not used and not expired at `request.at`
    /// ([`TokenRecord::usable_at`]); the device ([`enrolled_device_id`] of the token's site
    /// and the key) is registered as [`Store::register_device`] does (a revoked device stays
    /// refused: [`StoreError::DeviceRevoked`]); the site gets `request.new_site_secret`
    /// unless it has a secret already; and the token is marked used by the device. Any
    /// refusal changes nothing.
    fn enroll<'a>(&'a self, request: &'a EnrollRequest) -> StoreFuture<'a, Enrolled>;

    /// Where the device's chain stands: the head its next envelope must continue.
    /// [`ChainHead::genesis`] for a device that has had nothing applied (or is unknown).
    fn chain_head<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, ChainHead>;

    /// Stores the site's handle secret. Setting the stored secret again does nothing; a
    /// different one is refused with [`StoreError::SiteSecretInUse`] once the site has
    /// records, because their handles would no longer match.
    fn set_site_secret<'a>(
        &'a self,
        site: &'a SiteId,
        secret: &'a SiteSecret,
    ) -> StoreFuture<'a, ()>;

    /// The site's handle secret, for enrollment to hand to a new device of the same site.
    fn site_secret<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Option<SiteSecret>>;

    /// Applies one batch exactly once, in one transaction with the device's new chain head.
    ///
    /// Inside the transaction the stored head decides: a head past `batch.seq` means the
    /// batch was applied before ([`Outcome::AlreadyApplied`], nothing changed); a head before
    /// it is a [`StoreError::Gap`]; a head at it with another `prev` is a
    /// [`StoreError::BrokenChain`]. The device must be registered for `batch.site` and not
    /// revoked. The site secret is read from the store, not passed in, so a caller cannot
    /// check handles against another site's secret.
    ///
    /// A delta's upserts version a record only if its content changed; its deletes close the
    /// current version. A snapshot is the whole roster: records missing from it are closed,
    /// changed ones versioned, unchanged ones left alone. Every upsert's handle must be the
    /// one central computes from the record's key ([`StoreError::HandleMismatch`]). On any
    /// error nothing is changed.
    fn apply(&self, batch: Batch) -> StoreFuture<'_, Outcome>;

    /// The site's roster as it stands: every current version, sorted by key within each
    /// kind so the same roster always reads the same.
    fn current_roster<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Roster>;

    /// The site's roster as it stood at `at`: the versions with
    /// `valid_from <= at < valid_to` (or still open), sorted like [`Store::current_roster`].
    fn roster_as_of<'a>(&'a self, site: &'a SiteId, at: Timestamp) -> StoreFuture<'a, Roster>;

    /// How many current records of each kind the site has, without loading them.
    fn counts<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Counts>;

    /// Every version of one record, oldest first: what a consumer asking "what changed for
    /// this student" reads.
    fn history<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
        handle: &'a RecordHandle,
    ) -> StoreFuture<'a, Vec<Version>>;

    /// The current version of every record of one kind at a site, with its handle and the
    /// time it took its present content, sorted by handle: what the consumer API lists.
    fn current_records<'a>(
        &'a self,
        site: &'a SiteId,
        entity: Entity,
    ) -> StoreFuture<'a, Vec<CurrentRecord>>;

    /// The current school records of every site, sorted by site and skolenummer. Their
    /// fylkesnummer and kommunenummer decide which consumers and exports reach a site.
    fn current_schools(&self) -> StoreFuture<'_, Vec<(SiteId, School)>>;

    /// Registers a consumer client. An id that exists is [`StoreError::ClientExists`].
    fn create_consumer_client<'a>(&'a self, client: &'a ConsumerClient) -> StoreFuture<'a, ()>;

    /// The client with this id, revoked or not, or `None`.
    fn consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConsumerClient>>;

    /// Every consumer client, oldest first.
    fn list_consumer_clients(&self) -> StoreFuture<'_, Vec<ConsumerClient>>;

    /// Revokes a client: its secret and every token it holds are refused from now on. Again
    /// is no error; an unknown id is [`StoreError::ClientUnknown`].
    fn revoke_consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Stores a bearer token of `client` by its SHA-256, valid until `expires`, and drops
    /// the tokens that expired before `now`, so the table holds only live tokens.
    fn create_consumer_token<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        client: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// The client a bearer token belongs to, if the token is known, has not expired at `at`
    /// and its client is not revoked; otherwise `None`, whichever the reason, so an answer
    /// never tells a guesser how close it came.
    fn consumer_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<ConsumerClient>>;

    /// Creates an operator account. A name that exists is [`StoreError::UserExists`].
    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()>;

    /// The account with this name, or `None`.
    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>>;

    /// Stores a session of `user` by the SHA-256 of its id, with its CSRF token, valid until
    /// `expires`, and drops the sessions that expired before `now`, so the table holds only
    /// live sessions.
    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// The session with this id hash if it has not expired at `at`, with its account.
    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>>;

    /// Ends a session (logout); an unknown one is no error.
    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()>;

    /// Appends one line to the audit log.
    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()>;

    /// The newest `limit` lines of the audit log, newest first.
    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// The site's newest `limit` applied batches, newest first. [`Store::apply`] records
    /// each in the transaction that applies it.
    fn transfers<'a>(&'a self, site: &'a SiteId, limit: u32) -> StoreFuture<'a, Vec<Transfer>>;

    /// Every site's batches applied at or after `since`, oldest first: what a transfer
    /// window's report (delivered in time, late) is derived from.
    fn transfers_since(&self, since: Timestamp) -> StoreFuture<'_, Vec<(SiteId, Transfer)>>;

    /// Creates a transfer window and returns it with its id. A name out of bounds is
    /// [`StoreError::WindowName`], a window closing before it opens
    /// [`StoreError::WindowCloses`], one overlapping another window of its county
    /// [`StoreError::WindowOverlap`]; the overlap is checked in the inserting transaction.
    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow>;

    /// The transfer windows of one county, or of all with `None`, by county and opening.
    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>>;

    /// The window with this id, or `None`.
    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>>;

    /// Registers a release. The same manifest again changes nothing and returns `false`, so
    /// a `release` run that failed halfway can be repeated; another manifest under the same
    /// id is [`StoreError::ReleaseExists`]. A new release is stored without artifact, at 0
    /// percent, with no sites, not paused: offered to nobody.
    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool>;

    /// Every release, newest version first (then by id).
    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>>;

    /// The release with this id, or `None`.
    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>>;

    /// Records that the release's artifact is stored and matched its manifest.
    /// [`StoreError::UnknownRelease`] for an unknown id.
    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Changes a release's rollout policy. [`StoreError::UnknownRelease`] for an unknown id.
    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()>;

    /// Records a step of a device's update, once per device, release and state: returns
    /// whether it is new. A report about a release central does not know is not stored
    /// (`false`), because the agent may have been updated from elsewhere.
    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool>;

    /// The counts, rollbacks and refusals of a release (all zero for an unknown id).
    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport>;

    /// The releases this device rolled back or refused: never offered to it again.
    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>>;
}

// ---------------------------------------------------------------------------------------------
// Backend-neutral helpers: the meaning of a batch, decided once for both databases.

/// The stored name of an entity kind: readable in SQL, and stable even if `Entity`'s
/// variants are reordered.
pub(crate) fn entity_name(entity: Entity) -> &'static str {
    entity.plural()
}

pub(crate) fn entity_from_name(name: &str) -> Result<Entity, StoreError> {
    Entity::ALL
        .into_iter()
        .find(|entity| entity.plural() == name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown entity {name:?}")))
}

pub(crate) fn seq_to_db(seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq.0).map_err(|_| StoreError::SeqOutOfRange(seq))
}

pub(crate) fn seq_from_db(seq: i64) -> Result<Seq, StoreError> {
    u64::try_from(seq)
        .map(Seq)
        .map_err(|_| StoreError::Corrupt(format!("negative sequence number {seq}")))
}

pub(crate) fn bytes32(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// A token row as both databases read it (times in Unix milliseconds), before its ids are
/// checked.
pub(crate) struct TokenRow {
    pub token_sha256: Vec<u8>,
    pub site: String,
    pub site_name: String,
    pub created: i64,
    pub expires: i64,
    pub used_by: Option<String>,
    pub used_at: Option<i64>,
    pub revoked: bool,
}

/// The columns a [`TokenRow`] is read from, in its field order.
pub(crate) const TOKEN_COLUMNS: &str =
    "token_sha256, site, site_name, created, expires, used_by, used_at, revoked";

impl TokenRow {
    pub fn into_record(self) -> Result<TokenRecord, StoreError> {
        let site = SiteId::new(self.site.as_str()).map_err(|_| {
            StoreError::Corrupt(format!("stored site id {:?} is invalid", self.site))
        })?;
        let used_by = self
            .used_by
            .map(|device| {
                DeviceId::new(device.as_str()).map_err(|_| {
                    StoreError::Corrupt(format!("stored device id {device:?} is invalid"))
                })
            })
            .transpose()?;
        Ok(TokenRecord {
            id: token_id(&bytes32(&self.token_sha256, "token hash")?),
            site,
            site_name: self.site_name,
            created: Timestamp(self.created),
            expires: Timestamp(self.expires),
            used_by,
            used_at: self.used_at.map(Timestamp),
            revoked: self.revoked,
        })
    }
}

/// A consumer client row as both databases read it, before its fields are checked.
pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub scope_kind: String,
    pub scope_code: String,
    pub secret_salt: Vec<u8>,
    pub secret_sha256: Vec<u8>,
    pub created: i64,
    pub revoked: bool,
}

/// The columns a [`ClientRow`] is read from, in its field order.
pub(crate) const CLIENT_COLUMNS: &str =
    "id, name, scope_kind, scope_code, secret_salt, secret_sha256, created, revoked";

impl ClientRow {
    pub fn into_client(self) -> Result<ConsumerClient, StoreError> {
        let secret_salt = <[u8; 16]>::try_from(self.secret_salt.as_slice())
            .map_err(|_| StoreError::Corrupt("stored client salt is not 16 bytes".to_owned()))?;
        Ok(ConsumerClient {
            scope: ConsumerScope::from_db(&self.scope_kind, self.scope_code)?,
            secret_sha256: bytes32(&self.secret_sha256, "client secret hash")?,
            secret_salt,
            id: self.id,
            name: self.name,
            created: Timestamp(self.created),
            revoked: self.revoked,
        })
    }
}

/// An operator account row as both databases read it, before its role is checked.
pub(crate) struct UserRow {
    pub name: String,
    pub role: String,
    pub kommune: Option<String>,
    pub password_hash: String,
    pub created: i64,
}

/// The columns a [`UserRow`] is read from, in its field order (qualified, for joins).
pub(crate) const USER_COLUMNS: &str =
    "ui_users.name, ui_users.role, ui_users.kommune, ui_users.password_hash, ui_users.created";

impl UserRow {
    pub fn into_user(self) -> Result<UiUser, StoreError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {:?}", self.role)))?;
        Ok(UiUser {
            name: self.name,
            role,
            kommune: self.kommune,
            password_hash: self.password_hash,
            created: Timestamp(self.created),
        })
    }
}

/// A transfer row as both databases read it, before its ids and counts are checked.
pub(crate) struct TransferRow {
    pub device: String,
    pub seq: i64,
    pub at: i64,
    pub snapshot: bool,
    pub counts: [i64; 4],
    pub bytes: i64,
}

/// The columns a [`TransferRow`] is read from, in its field order.
pub(crate) const TRANSFER_COLUMNS: &str =
    "device, seq, at, snapshot, added, changed, removed, unchanged, bytes";

impl TransferRow {
    pub fn into_transfer(self) -> Result<Transfer, StoreError> {
        let count = |n: i64| {
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
        };
        let [added, changed, removed, unchanged] = self.counts;
        Ok(Transfer {
            device: DeviceId::new(&self.device).map_err(|_| {
                StoreError::Corrupt(format!("stored device id {:?} is invalid", self.device))
            })?,
            seq: seq_from_db(self.seq)?,
            at: Timestamp(self.at),
            snapshot: self.snapshot,
            changes: Changes {
                added: count(added)?,
                changed: count(changed)?,
                removed: count(removed)?,
                unchanged: count(unchanged)?,
            },
            bytes: u64::try_from(self.bytes)
                .map_err(|_| StoreError::Corrupt(format!("negative size {}", self.bytes)))?,
        })
    }
}

/// The four counts of a batch's changes as the databases store them.
pub(crate) fn changes_to_db(changes: &Changes) -> [i64; 4] {
    let db = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    [
        db(changes.added),
        db(changes.changed),
        db(changes.removed),
        db(changes.unchanged),
    ]
}

/// A batch's size as the databases store it (a signed 64-bit integer).
pub(crate) fn bytes_to_db(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// A site id read from the database.
pub(crate) fn stored_site(site: &str) -> Result<SiteId, StoreError> {
    SiteId::new(site)
        .map_err(|_| StoreError::Corrupt(format!("stored site id {site:?} is invalid")))
}

/// Decodes a stored school record, for [`Store::current_schools`].
pub(crate) fn decode_school(json: &str) -> Result<School, StoreError> {
    match decode(Entity::School, json)? {
        AnyRecord::School(school) => Ok(school),
        _ => Err(StoreError::Corrupt(
            "a school row holds another record".to_owned(),
        )),
    }
}

pub(crate) fn device_record(
    site: &str,
    verifying_key: &[u8],
    revoked: bool,
) -> Result<DeviceRecord, StoreError> {
    let site = SiteId::new(site)
        .map_err(|_| StoreError::Corrupt(format!("stored site id {site:?} is invalid")))?;
    let verifying_key = DeviceVerifyingKey::from_bytes(bytes32(verifying_key, "device key")?)
        .map_err(|_| StoreError::Corrupt("stored device key is not a valid key".to_owned()))?;
    Ok(DeviceRecord {
        site,
        verifying_key,
        revoked,
    })
}

/// The device row as `apply` reads it inside its transaction.
pub(crate) struct DeviceState {
    pub site: String,
    pub revoked: bool,
    pub head: ChainHead,
}

/// Whether the stored head lets `batch` be applied now.
pub(crate) enum ChainCheck {
    Apply,
    AlreadyApplied(ChainHead),
}

/// The checks `apply` makes against the device row, before and again inside its transaction.
pub(crate) fn check_batch(
    batch: &Batch,
    device: Option<&DeviceState>,
) -> Result<ChainCheck, StoreError> {
    let Some(device) = device else {
        return Err(StoreError::UnknownDevice(batch.device.clone()));
    };
    if device.site != batch.site.as_str() {
        let registered = SiteId::new(device.site.as_str())
            .map_err(|_| StoreError::Corrupt("stored site id is invalid".to_owned()))?;
        return Err(StoreError::WrongSite {
            device: batch.device.clone(),
            registered,
            claimed: batch.site.clone(),
        });
    }
    if device.revoked {
        return Err(StoreError::DeviceRevoked(batch.device.clone()));
    }
    if batch.seq.0 == 0 || batch.next_head.next_seq != batch.seq.next() {
        return Err(StoreError::InvalidHead {
            seq: batch.seq,
            next: batch.next_head.next_seq,
        });
    }
    seq_to_db(batch.next_head.next_seq)?;
    match device.head.next_seq.cmp(&batch.seq) {
        std::cmp::Ordering::Greater => Ok(ChainCheck::AlreadyApplied(device.head)),
        std::cmp::Ordering::Less => Err(StoreError::Gap {
            expected: device.head.next_seq,
            got: batch.seq,
        }),
        std::cmp::Ordering::Equal if device.head.prev != batch.prev => {
            Err(StoreError::BrokenChain { seq: batch.seq })
        }
        std::cmp::Ordering::Equal => Ok(ChainCheck::Apply),
    }
}

/// One version to insert: a record with its handle, digest and JSON encoding.
#[derive(Debug)]
pub(crate) struct Row {
    pub entity: Entity,
    pub handle: RecordHandle,
    /// The protocol's canonical digest of the record: equal digests mean equal content, which
    /// a JSON comparison cannot promise (key order and spacing are not part of the content).
    pub digest: Digest,
    pub json: String,
}

/// A payload checked and encoded, before any database is touched, so the write lock is held
/// only for reading current versions and writing.
#[derive(Debug)]
pub(crate) enum Prepared {
    Delta {
        upserts: Vec<Row>,
        deletes: Vec<(Entity, RecordHandle)>,
    },
    Snapshot {
        rows: Vec<Row>,
    },
}

impl Prepared {
    /// The records whose current versions the plan needs: those the delta names, or `None`
    /// for a snapshot, which needs all of the site's.
    pub fn touched(&self) -> Option<Vec<(Entity, RecordHandle)>> {
        match self {
            Prepared::Delta { upserts, deletes } => Some(
                upserts
                    .iter()
                    .map(|row| (row.entity, row.handle))
                    .chain(deletes.iter().copied())
                    .collect(),
            ),
            Prepared::Snapshot { .. } => None,
        }
    }
}

/// Checks a payload against the site secret and encodes its records.
///
/// Upserts must carry the handle central computes from their key; snapshot records get
/// theirs computed. No record may appear twice.
///
/// Encoding (an HMAC for the handle, a SHA-256 digest and the JSON of every record) is most
/// of the CPU an apply costs, so it runs on all cores ([`par_map`]); the checks then run in
/// payload order, so which error a bad delta gets does not depend on the thread count. A
/// snapshot's rows come out sorted by [`row_order`], the order of the records' index, so the
/// backends insert them in index order and duplicates sit next to each other.
pub(crate) fn prepare(payload: &Payload, secret: &SiteSecret) -> Result<Prepared, StoreError> {
    match payload {
        Payload::Delta(delta) => {
            let mut seen = HashSet::new();
            let mut upserts = Vec::new();
            delta_rows(&delta.schools, secret, &mut seen, &mut upserts)?;
            delta_rows(&delta.students, secret, &mut seen, &mut upserts)?;
            delta_rows(&delta.groups, secret, &mut seen, &mut upserts)?;
            delta_rows(&delta.enrollments, secret, &mut seen, &mut upserts)?;
            let mut deletes = Vec::new();
            for entity in Entity::ALL {
                for handle in delta.deletes(entity) {
                    claim(&mut seen, entity, *handle)?;
                    deletes.push((entity, *handle));
                }
            }
            Ok(Prepared::Delta { upserts, deletes })
        }
        Payload::Snapshot(roster) => {
            let mut rows = Vec::with_capacity(
                Entity::ALL
                    .into_iter()
                    .map(|entity| roster.count(entity))
                    .sum(),
            );
            snapshot_rows(&roster.schools, secret, &mut rows)?;
            snapshot_rows(&roster.students, secret, &mut rows)?;
            snapshot_rows(&roster.groups, secret, &mut rows)?;
            snapshot_rows(&roster.enrollments, secret, &mut rows)?;
            rows.sort_unstable_by(row_order);
            if let Some(pair) = rows
                .windows(2)
                .find(|pair| (pair[0].entity, pair[0].handle) == (pair[1].entity, pair[1].handle))
            {
                return Err(StoreError::DuplicateRecord {
                    entity: pair[0].entity,
                    handle: pair[0].handle,
                });
            }
            Ok(Prepared::Snapshot { rows })
        }
    }
}

/// The order of the records' indexes, `(entity, handle)` within a site, as both databases
/// compare them (entity names as bytes, handles as bytes). Rows inserted in this order land
/// next to each other in the index instead of at random pages: for a large batch that is the
/// difference between appending to a few hot pages and touching a cold page per row.
pub(crate) fn row_order(a: &Row, b: &Row) -> std::cmp::Ordering {
    entity_name(a.entity)
        .cmp(entity_name(b.entity))
        .then_with(|| a.handle.cmp(&b.handle))
}

fn claim(
    seen: &mut HashSet<(Entity, RecordHandle)>,
    entity: Entity,
    handle: RecordHandle,
) -> Result<(), StoreError> {
    if seen.insert((entity, handle)) {
        Ok(())
    } else {
        Err(StoreError::DuplicateRecord { entity, handle })
    }
}

fn row<R: Record>(record: &R, handle: RecordHandle) -> Result<Row, StoreError> {
    let json = serde_json::to_string(record)
        .map_err(|error| StoreError::Corrupt(format!("record does not encode: {error}")))?;
    Ok(Row {
        entity: R::ENTITY,
        handle,
        digest: Digest::of(record),
        json,
    })
}

fn delta_rows<R: Record + Sync>(
    delta: &EntityDelta<R>,
    secret: &SiteSecret,
    seen: &mut HashSet<(Entity, RecordHandle)>,
    out: &mut Vec<Row>,
) -> Result<(), StoreError> {
    // Encoded in parallel with the handle each record should carry; checked in order.
    let encoded = par_map(&delta.upserts, |(handle, record)| {
        let expected = secret.handle(R::ENTITY, record.key());
        (expected == *handle).then(|| row(record, *handle))
    });
    for ((handle, _), encoded) in delta.upserts.iter().zip(encoded) {
        let Some(encoded) = encoded else {
            return Err(StoreError::HandleMismatch {
                entity: R::ENTITY,
                handle: *handle,
            });
        };
        claim(seen, R::ENTITY, *handle)?;
        out.push(encoded?);
    }
    Ok(())
}

fn snapshot_rows<R: Record + Sync>(
    records: &[R],
    secret: &SiteSecret,
    out: &mut Vec<Row>,
) -> Result<(), StoreError> {
    for encoded in par_map(records, |record| {
        row(record, secret.handle(R::ENTITY, record.key()))
    }) {
        out.push(encoded?);
    }
    Ok(())
}

/// Below this many items [`par_map`] stays on the calling thread: starting threads costs
/// more than encoding a delta of a few hundred records.
const PARALLEL_MIN: usize = 4_096;

/// `items.iter().map(f).collect()`, on up to as many threads as the machine has cores, each
/// taking one contiguous part; the results keep the input order. Scoped std threads, started
/// per call: an apply is rare and large enough that a pool would buy nothing.
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || items.len() < PARALLEL_MIN {
        return items.iter().map(f).collect();
    }
    let part = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let others: Vec<_> = items
            .chunks(part)
            .skip(1)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        out.extend(items[..part].iter().map(f));
        for other in others {
            match other.join() {
                Ok(results) => out.extend(results),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// The current version of a record as the plan needs it: its row id and content digest.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub id: i64,
    pub digest: Digest,
}

pub(crate) type CurrentVersions = HashMap<(Entity, RecordHandle), Current>;

/// What to write for one batch: versions to close (by row id), then versions to insert.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub close: Vec<i64>,
    pub insert: Vec<&'a Row>,
    pub changes: Changes,
}

/// Decides which versions a prepared batch closes and inserts, given the current versions of
/// the records it touches (all of the site's for a snapshot). The versions to insert come out
/// in [`row_order`].
pub(crate) fn plan(prepared: &Prepared, mut current: CurrentVersions) -> Plan<'_> {
    let mut plan = Plan::default();
    match prepared {
        Prepared::Delta { upserts, deletes } => {
            // `prepare` let no record appear twice, so each current version is taken once.
            for row in upserts {
                plan.upsert(row, current.remove(&(row.entity, row.handle)));
            }
            for key in deletes {
                if let Some(existing) = current.remove(key) {
                    plan.close.push(existing.id);
                    plan.changes.removed += 1;
                }
            }
            plan.insert.sort_unstable_by(|a, b| row_order(a, b));
        }
        Prepared::Snapshot { rows } => {
            plan.insert.reserve(rows.len());
            for row in rows {
                plan.upsert(row, current.remove(&(row.entity, row.handle)));
            }
            // What is left was not in the snapshot: closed.
            let mut missing: Vec<i64> = current.into_values().map(|existing| existing.id).collect();
            missing.sort_unstable();
            plan.changes.removed = missing.len() as u64;
            plan.close.extend(missing);
        }
    }
    plan
}

impl<'a> Plan<'a> {
    fn upsert(&mut self, row: &'a Row, existing: Option<Current>) {
        match existing {
            Some(existing) if existing.digest == row.digest => self.changes.unchanged += 1,
            Some(existing) => {
                self.close.push(existing.id);
                self.insert.push(row);
                self.changes.changed += 1;
            }
            None => {
                self.insert.push(row);
                self.changes.added += 1;
            }
        }
    }
}

/// Adds a stored record to a roster being read.
pub(crate) fn push_record(
    roster: &mut Roster,
    entity: Entity,
    json: &str,
) -> Result<(), StoreError> {
    match decode(entity, json)? {
        AnyRecord::School(record) => roster.schools.push(record),
        AnyRecord::Student(record) => roster.students.push(record),
        AnyRecord::Group(record) => roster.groups.push(record),
        AnyRecord::Enrollment(record) => roster.enrollments.push(record),
    }
    Ok(())
}

/// Decodes a stored record's JSON as the kind its row says it is.
pub(crate) fn decode(entity: Entity, json: &str) -> Result<AnyRecord, StoreError> {
    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
        serde_json::from_str(json)
            .map_err(|error| StoreError::Corrupt(format!("stored record does not decode: {error}")))
    }
    Ok(match entity {
        Entity::School => AnyRecord::School(parse(json)?),
        Entity::Student => AnyRecord::Student(parse(json)?),
        Entity::Group => AnyRecord::Group(parse(json)?),
        Entity::Enrollment => AnyRecord::Enrollment(parse(json)?),
    })
}

/// Puts a roster read from the database in key order, which neither database promises
/// without an index on the key.
pub(crate) fn sort_roster(roster: &mut Roster) {
    roster.schools.sort_by(|a, b| a.key().cmp(b.key()));
    roster.students.sort_by(|a, b| a.key().cmp(b.key()));
    roster.groups.sort_by(|a, b| a.key().cmp(b.key()));
    roster.enrollments.sort_by(|a, b| a.key().cmp(b.key()));
}

pub(crate) fn set_count(counts: &mut Counts, entity: &str, count: i64) -> Result<(), StoreError> {
    let count =
        u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("negative count {count}")))?;
    counts.set(entity_from_name(entity)?, count);
    Ok(())
}

/// A release row as both databases read it, before its values are checked.
pub(crate) struct ReleaseRow {
    pub id: String,
    pub major: i64,
    pub minor: i64,
    pub patch: i64,
    pub target: String,
    pub size: i64,
    pub sha256: Vec<u8>,
    pub allow_downgrade: bool,
    pub manifest: Vec<u8>,
    pub registered: i64,
    pub artifact_stored: bool,
    pub percent: i64,
    pub sites: String,
    pub paused: bool,
}

/// The columns a [`ReleaseRow`] is read from, in its field order.
pub(crate) const RELEASE_COLUMNS: &str = "id, major, minor, patch, target, size, sha256, \
     allow_downgrade, manifest, created, artifact_stored, percent, sites, paused";

/// The order releases are listed in: newest version first.
pub(crate) const RELEASE_ORDER: &str = "ORDER BY major DESC, minor DESC, patch DESC, id";

impl ReleaseRow {
    pub fn into_record(self) -> Result<ReleaseRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("release {}: {what}", self.id));
        let number = |n: i64| u32::try_from(n).map_err(|_| corrupt("version out of range"));
        let version = ReleaseVersion::new(
            number(self.major)?,
            number(self.minor)?,
            number(self.patch)?,
        );
        let size = u64::try_from(self.size).map_err(|_| corrupt("negative size"))?;
        let percent = u8::try_from(self.percent)
            .ok()
            .filter(|percent| *percent <= 100)
            .ok_or_else(|| corrupt("percent out of range"))?;
        let sites: Vec<SiteId> =
            serde_json::from_str(&self.sites).map_err(|_| corrupt("sites do not decode"))?;
        Ok(ReleaseRecord {
            release: NewRelease {
                sha256: bytes32(&self.sha256, "release sha256")?,
                id: self.id,
                version,
                target: self.target,
                size,
                allow_downgrade: self.allow_downgrade,
                manifest: self.manifest,
                registered: Timestamp(self.registered),
            },
            artifact_stored: self.artifact_stored,
            percent,
            sites,
            paused: self.paused,
        })
    }
}

/// The stored form of a site list: a JSON array of ids.
pub(crate) fn sites_json(sites: &[SiteId]) -> String {
    serde_json::to_string(sites).unwrap_or_else(|_| "[]".to_owned())
}

/// A size or version number as the databases' signed 64-bit integers hold it.
pub(crate) fn u64_to_db(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Config(format!("{what} {value} is out of range")))
}

/// Folds `(device, state, reason)` rows into a [`ReleaseReport`].
pub(crate) fn release_report(
    rows: impl IntoIterator<Item = (String, String, Option<String>)>,
) -> Result<ReleaseReport, StoreError> {
    let mut report = ReleaseReport::default();
    for (device, state, reason) in rows {
        let state = UpdateState::from_name(&state)?;
        report.counts.add(state, 1);
        let list = match state {
            UpdateState::RolledBack => &mut report.rollbacks,
            UpdateState::Refused => &mut report.refusals,
            _ => continue,
        };
        let device = DeviceId::new(device.as_str())
            .map_err(|_| StoreError::Corrupt(format!("stored device id {device:?} is invalid")))?;
        list.push(DeviceReason { device, reason });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc_3339_in_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_773_151_500_123).to_string(),
            "2026-03-10T14:05:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rfc_3339_times_parse_back_to_what_they_print() {
        for ms in [0, 1_773_151_500_123, 951_782_400_000, -1, 4_102_444_799_999] {
            let text = Timestamp(ms).to_string();
            assert_eq!(
                Timestamp::parse_rfc3339(&text),
                Some(Timestamp(ms)),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2026-03-10T15:05:00+01:00"),
            Some(Timestamp(1_773_151_500_000))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-03-10T14:05:00.1234Z"),
            Some(Timestamp(1_773_151_500_123))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2000-02-29"),
            Some(Timestamp(951_782_400_000))
        );
        for bad in [
            "",
            "2026-02-30",
            "2026-13-01T00:00:00Z",
            "2026-03-10T14:05:00",
            "2026-03-10T24:00:00Z",
            "2026-03-10T14:05:00.Z",
            "2026-03-10T14:05:00+0100",
            "2026-3-10",
            "x026-03-10",
            "2026-03-10T14:05:00Zjunk",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_scope_covers_schools_by_county_or_kommune() {
        let school = |county: Option<&str>, kommune: Option<&str>| School {
            skolenummer: "46505".into(),
            organisasjonsnummer: None,
            kommunenummer: kommune.map(Into::into),
            fylkesnummer: county.map(Into::into),
            name: "Fana skule".into(),
        };
        let county = ConsumerScope::County("46".to_owned());
        let kommune = ConsumerScope::Kommune("4601".to_owned());
        assert!(county.covers(&school(Some("46"), Some("4601"))));
        assert!(county.covers(&school(None, Some("4601"))));
        assert!(!county.covers(&school(Some("03"), Some("4601"))));
        assert!(!county.covers(&school(None, None)));
        assert!(kommune.covers(&school(Some("46"), Some("4601"))));
        assert!(!kommune.covers(&school(Some("46"), Some("4602"))));
        assert!(!kommune.covers(&school(Some("46"), None)));
        assert!(county.is_valid() && kommune.is_valid());
        assert!(!ConsumerScope::County("4601".to_owned()).is_valid());
        assert!(!ConsumerScope::Kommune("46a1".to_owned()).is_valid());
    }
}
