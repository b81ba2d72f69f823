//! Writing a config stick (DESIGN decision 6): `skolebro-provision stick`.
//!
//! The flow is check -> sign -> register -> write: the site, central's address and the agent
//! settings are checked first ([`site_info`], [`central_url`], [`agent_settings`]); a fresh
//! one-time token goes into a [`StickBody`] signed with the platform's stick key and checked
//! against `stick.pub` ([`prepare`]); central registers the token's hash through its admin
//! API; and only then is the bundle written onto the stick, atomically ([`write_bundle`]).
//! A stick is therefore usable the moment it is written, and a stick is never written with a
//! token central does not know. If the write fails, the token is revoked again.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use skolebro_protocol::stick::{self, BUNDLE_DIR, BUNDLE_FILE};
use skolebro_protocol::{DropShare, PullShare, SiteInfo, SiteSchool, StickBody};

use crate::admin::{AdminClient, TokenRegistration};
use crate::error::ProvisionError;
use crate::keys::KeyFolder;

/// Default lifetime of a stick's token: long enough to post a stick to a school and have it
/// plugged in, short enough that a lost stick soon stops mattering.
pub const DEFAULT_EXPIRES_DAYS: u32 = 14;

/// Longest token lifetime `stick` accepts.
pub const MAX_EXPIRES_DAYS: u32 = 365;

/// Largest agent settings file accepted for a stick; real settings are a few hundred bytes,
/// and the whole bundle must stay within [`stick::MAX_BUNDLE_BYTES`].
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// Top-level settings a stick must not carry: enrollment writes `central` and `identity`,
/// and where the device keeps its state is the device's business, not the site's.
pub const FORBIDDEN_SETTINGS: [&str; 3] = ["central", "identity", "state_dir"];

/// Temporary name of the bundle while it is written; 8.3-safe like the final name.
const TEMP_FILE: &str = "BUNDLE.TMP";

/// Everything a stick says about its site and its agent, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickRequest {
    pub site: SiteInfo,
    /// The schools the site is registered with ([`site_schools`]): central registers them
    /// with the token, and the stick carries them to the agent.
    pub schools: Vec<SiteSchool>,
    /// Central's device listener, `https://host:port`.
    pub central_url: String,
    /// How many days the token lives, 1 to [`MAX_EXPIRES_DAYS`].
    pub expires_days: u32,
    /// The agent settings (TOML) the stick carries, checked by [`agent_settings`].
    pub settings_toml: String,
    /// The SMB drop share's settings ([`drop_share`]), or `None` to leave the share alone.
    pub drop_share: Option<DropShare>,
    /// The share the agent pulls exports from ([`crate::pull_share::pull_share`]), or `None`
    /// to leave the source to the Pi's `agent.toml`.
    pub share_source: Option<PullShare>,
}

/// A signed bundle ready for the stick, with the body it holds (for the summary to print).
#[derive(Clone)]
pub struct PreparedStick {
    pub body: StickBody,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for PreparedStick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes hold the token; the body's own Debug shows only its id.
        f.debug_struct("PreparedStick")
            .field("body", &self.body)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Checks and builds the site from what operations typed: `fylke` is 2 digits, `kommune` 4
/// digits starting with the fylke (Norwegian municipality numbers do), `skolenummer` 1 to 12
/// digits, `name` a non-empty line of text.
pub fn site_info(
    fylke: &str,
    kommune: &str,
    skolenummer: &str,
    name: &str,
) -> Result<SiteInfo, ProvisionError> {
    let invalid = |field, reason: String| Err(ProvisionError::InvalidField { field, reason });
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if fylke.len() != 2 || !digits(fylke) {
        return invalid("--fylke", format!("{fylke:?} is not 2 digits"));
    }
    if kommune.len() != 4 || !digits(kommune) {
        return invalid("--kommune", format!("{kommune:?} is not 4 digits"));
    }
    if !kommune.starts_with(fylke) {
        return invalid(
            "--kommune",
            format!("{kommune} does not start with the fylke {fylke}"),
        );
    }
    if !(1..=12).contains(&skolenummer.len()) || !digits(skolenummer) {
        return invalid(
            "--skolenummer",
            format!("{skolenummer:?} is not 1 to 12 digits"),
        );
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return invalid(
            "--name",
            "must be 1 to 200 characters on one line".to_owned(),
        );
    }
    Ok(SiteInfo {
        fylke: fylke.to_owned(),
        kommune: kommune.to_owned(),
        skolenummer: skolenummer.to_owned(),
        name: name.to_owned(),
    })
}

/// The schools a site is registered with: the site's own school first, then `others`
/// (the `--school` arguments). A school named twice (the same numbers) is refused, so a
/// typo in one of two lines is not silently dropped.
pub fn site_schools(
    site: &SiteInfo,
    others: Vec<SiteSchool>,
) -> Result<Vec<SiteSchool>, ProvisionError> {
    let own = SiteSchool::new(&site.kommune, Some(&site.skolenummer), None, &site.name).map_err(
        |error| ProvisionError::InvalidField {
            field: "--skolenummer",
            reason: error.to_string(),
        },
    )?;
    let mut schools = vec![own];
    for school in others {
        if schools.iter().any(|known| known.key() == school.key()) {
            return Err(ProvisionError::InvalidField {
                field: "--school",
                reason: format!("{} is named twice", school.key()),
            });
        }
        schools.push(school);
    }
    Ok(schools)
}

/// Checks central's device address: `https://host[:port]`, nothing else, because the agent
/// adds the API paths itself and talks to central only over TLS. Returns it without a
/// trailing slash.
pub fn central_url(url: &str) -> Result<String, ProvisionError> {
    let invalid = |reason: &str| ProvisionError::InvalidField {
        field: "--central-url",
        reason: format!("{url:?}: {reason}"),
    };
    let parsed = reqwest::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
    if parsed.scheme() != "https" {
        return Err(invalid("must start with https://"));
    }
    if parsed.host_str().is_none()
        || parsed.path() != "/"
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(invalid("must be https://host:port and nothing more"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// The agent settings the stick carries: the TOML in `file` (none: empty settings, the
/// agent's defaults), with `drop_dir` set to `drop_dir` if given. Refused: text that is not
/// TOML, larger than [`MAX_SETTINGS_BYTES`], setting one of [`FORBIDDEN_SETTINGS`], or
/// setting `drop_dir` while `--drop-dir` also does. The file's text is kept as written, with
/// its comments.
pub fn agent_settings(
    file: Option<&Path>,
    drop_dir: Option<&str>,
) -> Result<String, ProvisionError> {
    let (path, mut text) = match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| ProvisionError::io(path, error))?;
            (path.to_path_buf(), text)
        }
        None => (PathBuf::from("--drop-dir"), String::new()),
    };
    let settings_error = |reason: String| ProvisionError::Settings {
        path: path.clone(),
        reason,
    };
    if text.len() > MAX_SETTINGS_BYTES {
        return Err(settings_error(format!(
            "{} bytes, over the limit of {MAX_SETTINGS_BYTES}",
            text.len()
        )));
    }
    let table: toml::Table = toml::from_str(&text)
        .map_err(|error| settings_error(format!("not valid TOML: {error}")))?;
    if let Some(key) = FORBIDDEN_SETTINGS
        .iter()
        .find(|key| table.contains_key(**key))
    {
        return Err(settings_error(format!(
            "`{key}` must not be on a stick: enrollment and the device itself set it"
        )));
    }
    if let Some(drop_dir) = drop_dir {
        if table.contains_key("drop_dir") {
            return Err(settings_error(
                "sets `drop_dir` and so does --drop-dir; keep one".to_owned(),
            ));
        }
        if !drop_dir.starts_with('/') {
            return Err(ProvisionError::InvalidField {
                field: "--drop-dir",
                reason: format!("{drop_dir:?} is not an absolute path on the Pi"),
            });
        }
        let mut line = toml::Table::new();
        line.insert(
            "drop_dir".to_owned(),
            toml::Value::String(drop_dir.to_owned()),
        );
        let line = toml::to_string(&line).map_err(|error| ProvisionError::InvalidField {
            field: "--drop-dir",
            reason: error.to_string(),
        })?;
        // A top-level key must come before the first table, so it goes first.
        text = format!("{line}{text}");
    }
    Ok(text)
}

/// A fresh one-time enrollment token: 32 random bytes, lowercase hex.
pub fn new_token() -> Result<String, ProvisionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ProvisionError::Randomness)?;
    let token = hex::encode(bytes);
    bytes.fill(0);
    Ok(token)
}

/// Builds and signs the bundle for `request` with a fresh token, from the keys in `keys`,
/// as of `now_unix`. The result is verified against the folder's `stick.pub`, exactly as an
/// agent will verify it, so a stick this returns is one agents accept.
pub fn prepare(
    keys: &KeyFolder,
    request: &StickRequest,
    now_unix: u64,
) -> Result<PreparedStick, ProvisionError> {
    if !(1..=MAX_EXPIRES_DAYS).contains(&request.expires_days) {
        return Err(ProvisionError::InvalidField {
            field: "--expires-days",
            reason: format!("must be 1 to {MAX_EXPIRES_DAYS}"),
        });
    }
    let site_id = request
        .site
        .site_id()
        .map_err(|error| ProvisionError::InvalidField {
            field: "--skolenummer",
            reason: error.to_string(),
        })?;
    let signing_key = keys.stick_signing_key()?;
    let body = StickBody {
        site: request.site.clone(),
        site_id,
        central_url: request.central_url.clone(),
        central_ca_pem: keys.central_ca_pem()?,
        sealing_key: keys.sealing_public_key()?.to_bytes(),
        token: new_token()?,
        token_expires_unix: now_unix.saturating_add(u64::from(request.expires_days) * 86_400),
        written_unix: now_unix,
        settings_toml: request.settings_toml.clone(),
        schools: request.schools.clone(),
        drop_share: request.drop_share.clone(),
        share_source: request.share_source.clone(),
    };
    let bytes = body.sign(&signing_key);
    let checked = StickBody::verify(&bytes, &keys.stick_verifying_key()?)?;
    checked.check_expiry(now_unix)?;
    Ok(PreparedStick { body, bytes })
}

/// The drop share's settings for a stick: on, for `account`, taking files up to
/// `size_cap_mib`, with the password read from `password_file` (its first line) and kept as
/// Samba's NT hash only. `None` without a password file: the stick leaves the share alone.
pub fn drop_share(
    password_file: Option<&Path>,
    account: &str,
    size_cap_mib: u32,
) -> Result<Option<DropShare>, ProvisionError> {
    let Some(path) = password_file else {
        return Ok(None);
    };
    let share = DropShare {
        enabled: true,
        account: account.to_owned(),
        size_cap_mib,
        password_nt_hash: Some(password_nt_hash(path, "--share-password-file")?),
    };
    if !share.is_valid() {
        return Err(ProvisionError::InvalidField {
            field: "--share-account",
            reason: "an account is letters, digits, `-`, `_` and `.` (at most 32, not starting \
                     with `-`), and --share-size-mib at least 1"
                .to_owned(),
        });
    }
    Ok(Some(share))
}

/// The NT hash of the password on the first line of `path`, the file `flag` names: all of
/// the password a stick ever carries. An empty first line is refused, naming `flag`.
pub(crate) fn password_nt_hash(path: &Path, flag: &'static str) -> Result<String, ProvisionError> {
    let text = std::fs::read_to_string(path).map_err(|error| ProvisionError::io(path, error))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        return Err(ProvisionError::InvalidField {
            field: flag,
            reason: format!("{} holds no password on its first line", path.display()),
        });
    }
    Ok(skolebro_protocol::drop_share::nt_hash(password))
}

/// Writes `bytes` to `<stick_root>/SKOLEBRO/BUNDLE.SKB` atomically: a temporary file in the
/// same folder, flushed, renamed over the bundle, and the folder flushed. A stick pulled out
/// mid-write holds the old bundle or the new one, never half of one. `stick_root` must exist
/// (it is the mount point); the `SKOLEBRO` folder is created.
pub fn write_bundle(stick_root: &Path, bytes: &[u8]) -> Result<PathBuf, ProvisionError> {
    check_stick_root(stick_root)?;
    let dir = stick_root.join(BUNDLE_DIR);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(error) => return Err(ProvisionError::io(&dir, error)),
    }
    let temp = dir.join(TEMP_FILE);
    let target = dir.join(BUNDLE_FILE);
    let written = write_synced(&temp, bytes)
        .and_then(|()| std::fs::rename(&temp, &target).map_err(|e| ProvisionError::io(&target, e)));
    if let Err(error) = written {
        // Leave no half-written file behind; the original error is what matters.
        let _ = std::fs::remove_file(&temp);
        return Err(error);
    }
    File::open(&dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| ProvisionError::io(&dir, error))?;
    Ok(target)
}

/// The stick's mount point must be an existing folder: a missing one means the stick is not
/// mounted, and creating it would write the bundle onto the local disk instead.
fn check_stick_root(stick_root: &Path) -> Result<(), ProvisionError> {
    if stick_root.is_dir() {
        return Ok(());
    }
    Err(ProvisionError::io(
        stick_root,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a folder (is the stick mounted?)",
        ),
    ))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    let io = |error| ProvisionError::io(path, error);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The whole `stick` command: prepare, register the token with central, write the stick.
/// Nothing is written onto the stick unless central accepted the token; if the write then
/// fails, the token is revoked again. Returns the bundle's body (print
/// [`StickBody::token_id`], never the token) and where it was written.
pub async fn provision(
    keys: &KeyFolder,
    request: &StickRequest,
    stick_root: &Path,
    admin: &AdminClient,
    now_unix: u64,
) -> Result<(StickBody, PathBuf), ProvisionError> {
    check_stick_root(stick_root)?;
    let prepared = prepare(keys, request, now_unix)?;
    let body = prepared.body;
    let registration = TokenRegistration {
        token_sha256: hex::encode(stick::token_sha256(&body.token)),
        site: body.site_id.to_string(),
        site_name: body.site.name.clone(),
        expires_unix: body.token_expires_unix,
        schools: body.schools.clone(),
    };
    let id = admin.register_token(&registration).await?;
    if id != body.token_id() {
        let revoked = admin.revoke_token(&id).await;
        return Err(ProvisionError::AdminAnswer {
            request: "POST /admin/tokens".to_owned(),
            reason: format!(
                "token id {id:?}, expected {:?} (the token was {})",
                body.token_id(),
                if revoked.is_ok() {
                    "revoked again"
                } else {
                    "not revoked; revoke it by hand"
                }
            ),
        });
    }
    match write_bundle(stick_root, &prepared.bytes) {
        Ok(path) => Ok((body, path)),
        Err(error) => {
            let token = match admin.revoke_token(&id).await {
                Ok(()) => format!("token {id} was registered with central and has been revoked"),
                Err(revoke) => format!(
                    "token {id} is registered with central and could not be revoked ({revoke}); \
                     run `skolebro-provision revoke token {id}`"
                ),
            };
            Err(ProvisionError::StickNotWritten {
                error: Box::new(error),
                token,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> StickRequest {
        let site = site_info("46", "4601", "12345", "Eksempel skole").unwrap();
        StickRequest {
            schools: site_schools(&site, Vec::new()).unwrap(),
            site,
            central_url: central_url("https://127.0.0.1:8443").unwrap(),
            expires_days: DEFAULT_EXPIRES_DAYS,
            settings_toml: agent_settings(None, Some("/srv/skolebro/drop")).unwrap(),
            drop_share: None,
            share_source: None,
        }
    }

    #[test]
    fn the_share_password_goes_on_the_stick_as_samba_s_hash_only() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("share.password");
        std::fs::write(&file, "Drop-share-pass-1\n").unwrap();
        let share = drop_share(Some(&file), "skolebro-drop", 64)
            .unwrap()
            .unwrap();
        assert_eq!(
            share.password_nt_hash.as_deref(),
            Some(skolebro_protocol::drop_share::nt_hash("Drop-share-pass-1").as_str())
        );
        assert!(share.enabled);
        let (keys, _) = KeyFolder::init(&tmp.path().join("keys"), &[]).unwrap();
        let request = StickRequest {
            drop_share: Some(share.clone()),
            ..request()
        };
        let prepared = prepare(&keys, &request, 1_750_000_000).unwrap();
        assert!(!prepared
            .bytes
            .windows(b"Drop-share-pass-1".len())
            .any(|w| w == b"Drop-share-pass-1"));
        assert_eq!(prepared.body.drop_share, Some(share));
        assert_eq!(drop_share(None, "skolebro-drop", 64).unwrap(), None);
        std::fs::write(&file, "\n").unwrap();
        assert!(drop_share(Some(&file), "skolebro-drop", 64).is_err());
        std::fs::write(&file, "x").unwrap();
        assert!(drop_share(Some(&file), "a:b", 64).is_err());
    }

    #[test]
    fn a_written_stick_verifies_with_the_stick_pub_from_init() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, _) = KeyFolder::init(&tmp.path().join("keys"), &[]).unwrap();
        let stick_root = tmp.path().join("stick");
        std::fs::create_dir(&stick_root).unwrap();
        let now = 1_750_000_000;
        let prepared = prepare(&keys, &request(), now).unwrap();
        let path = write_bundle(&stick_root, &prepared.bytes).unwrap();
        assert_eq!(path, stick_root.join("SKOLEBRO").join("BUNDLE.SKB"));
        assert!(!stick_root.join("SKOLEBRO").join("BUNDLE.TMP").exists());

        let stick_pub = std::fs::read_to_string(keys.path("stick.pub")).unwrap();
        let key = skolebro_protocol::StickVerifyingKey::from_hex(&stick_pub).unwrap();
        let body = StickBody::verify(&std::fs::read(&path).unwrap(), &key).unwrap();
        assert_eq!(body, prepared.body);
        assert_eq!(body.site_id.as_str(), "4601-12345");
        assert_eq!(body.central_url, "https://127.0.0.1:8443");
        assert_eq!(body.token.len(), 64);
        assert_eq!(body.token_expires_unix, now + 14 * 86_400);
        assert_eq!(body.written_unix, now);
        assert_eq!(body.central_ca_pem, keys.central_ca_pem().unwrap());
        assert_eq!(
            body.sealing_key,
            keys.sealing_public_key().unwrap().to_bytes()
        );
        assert_eq!(body.settings_toml, "drop_dir = \"/srv/skolebro/drop\"\n");
        assert!(body.check_expiry(now + 14 * 86_400 - 1).is_ok());
        assert!(body.check_expiry(now + 14 * 86_400).is_err());
    }

    #[test]
    fn writing_again_replaces_the_bundle_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, _) = KeyFolder::init(&tmp.path().join("keys"), &[]).unwrap();
        let first = prepare(&keys, &request(), 1_750_000_000).unwrap();
        let second = prepare(&keys, &request(), 1_750_000_001).unwrap();
        assert_ne!(
            first.body.token, second.body.token,
            "every stick gets a new token"
        );
        write_bundle(tmp.path(), &first.bytes).unwrap();
        let path = write_bundle(tmp.path(), &second.bytes).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), second.bytes);
    }

    #[test]
    fn a_missing_stick_root_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let error = write_bundle(&tmp.path().join("not-mounted"), b"x").unwrap_err();
        assert!(error.to_string().contains("not-mounted"), "{error}");
    }

    #[test]
    fn site_fields_are_checked_and_named_in_the_error() {
        let field = |result: Result<SiteInfo, ProvisionError>| match result {
            Err(ProvisionError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(site_info("4", "4601", "1", "S")), "--fylke");
        assert_eq!(field(site_info("4a", "4601", "1", "S")), "--fylke");
        assert_eq!(field(site_info("46", "460", "1", "S")), "--kommune");
        assert_eq!(field(site_info("46", "0301", "1", "S")), "--kommune");
        assert_eq!(field(site_info("46", "4601", "", "S")), "--skolenummer");
        assert_eq!(field(site_info("46", "4601", "12-3", "S")), "--skolenummer");
        assert_eq!(field(site_info("46", "4601", "1", "  ")), "--name");
        assert_eq!(field(site_info("46", "4601", "1", "a\nb")), "--name");
        assert_eq!(
            site_info("03", "0301", "7", " Oslo skole ").unwrap().name,
            "Oslo skole"
        );
    }

    #[test]
    fn central_must_be_an_https_origin() {
        assert_eq!(
            central_url("https://central.example:8443/").unwrap(),
            "https://central.example:8443"
        );
        for bad in [
            "http://127.0.0.1:8443",
            "https://127.0.0.1:8443/v1",
            "https://u:p@host",
            "127.0.0.1:8443",
        ] {
            assert!(central_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_kept_as_written_and_must_not_name_the_device() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("site.toml");
        let text = "# the school's export\nformat = \"elevliste\"\n\n[safety]\nmax_delete_fraction = 0.1\n";
        std::fs::write(&file, text).unwrap();
        assert_eq!(agent_settings(Some(&file), None).unwrap(), text);
        let with_drop = agent_settings(Some(&file), Some("/srv/drop")).unwrap();
        assert!(with_drop.starts_with("drop_dir = \"/srv/drop\"\n"));
        let table: toml::Table = toml::from_str(&with_drop).unwrap();
        assert!(table["safety"].is_table());

        for bad in [
            "state_dir = \"/var/lib/x\"\n",
            "[central]\nurl = \"https://x\"\n",
            "[identity]\ndevice = \"d\"\n",
            "drop_dir = [\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            let error = agent_settings(Some(&file), None).unwrap_err();
            assert!(
                matches!(&error, ProvisionError::Settings { path, .. } if path == &file),
                "{bad}: {error}"
            );
        }
        std::fs::write(&file, "drop_dir = \"/a\"\n").unwrap();
        assert!(agent_settings(Some(&file), Some("/b")).is_err());
        assert!(agent_settings(None, Some("relative/path")).is_err());
        assert_eq!(agent_settings(None, None).unwrap(), "");
    }

    #[test]
    fn a_site_is_registered_with_its_own_school_first_and_each_other_school_once() {
        let site = site_info("46", "4601", "12345", "Eksempel skole").unwrap();
        let other: SiteSchool = "4601//974600000=Eksempel skole avd. Nord".parse().unwrap();
        let schools = site_schools(&site, vec![other.clone()]).unwrap();
        assert_eq!(schools[0].to_string(), "4601/12345=Eksempel skole");
        assert_eq!(schools[1], other);
        let again: SiteSchool = "4601/12345=Same numbers".parse().unwrap();
        assert!(matches!(
            site_schools(&site, vec![again]),
            Err(ProvisionError::InvalidField {
                field: "--school",
                ..
            })
        ));
    }

    #[test]
    fn the_signed_stick_carries_the_sites_schools() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let prepared = prepare(&keys, &request(), 1_750_000_000).unwrap();
        let read = StickBody::verify(&prepared.bytes, &keys.stick_verifying_key().unwrap());
        assert_eq!(read.unwrap().schools, request().schools);
    }

    #[test]
    fn a_token_lifetime_out_of_range_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        for days in [0, MAX_EXPIRES_DAYS + 1] {
            let request = StickRequest {
                expires_days: days,
                ..request()
            };
            assert!(matches!(
                prepare(&keys, &request, 1_750_000_000),
                Err(ProvisionError::InvalidField {
                    field: "--expires-days",
                    ..
                })
            ));
        }
    }
}
