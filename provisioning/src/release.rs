//! Making a release (DESIGN decision 7): `skolebro-provision release`.
//!
//! The flow is check -> hash -> sign -> write -> (register): the version and target are
//! checked ([`ReleaseRequest::new`]); the binary is read once, hashed and copied to
//! `<out>/<id>.bin`; a [`ReleaseManifest`] naming its size and SHA-256 is signed with the
//! platform's release key and checked against `release.pub` before `<out>/<id>.skm` is
//! written ([`build`]). With an admin URL, both go to central ([`register`]): the manifest
//! first (central verifies it with its copy of `release.pub`), then the artifact, which
//! central checks against the manifest. Nothing is rolled out yet: a new release is offered
//! to no device until an operator sets its rollout.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use skolebro_protocol::release::{valid_target, MAX_DOWNGRADE_VALIDITY_SECS, MAX_TARGET_LEN};
use skolebro_protocol::{ReleaseManifest, Version};

use crate::admin::AdminClient;
use crate::error::ProvisionError;
use crate::keys::KeyFolder;

/// File extension of an artifact in the output folder: `<id>.bin`.
pub const ARTIFACT_EXTENSION: &str = "bin";

/// File extension of a signed manifest in the output folder: `<id>.skm`.
pub const MANIFEST_EXTENSION: &str = "skm";

/// Largest artifact accepted. The agent binary is about 10 MiB; a much larger file is the
/// wrong file, and every Pi would download it over a school's uplink.
pub const MAX_ARTIFACT_BYTES: u64 = 256 * 1024 * 1024;

/// How long a release manifest is valid unless `--expires-in` says otherwise: 30 days, long
/// enough for a staged rollout, short enough that an old manifest cannot be replayed for
/// long.
pub const DEFAULT_VALIDITY_SECS: u64 = 30 * 86_400;

/// How long a downgrade manifest is valid unless `--expires-in` says otherwise: a day, well
/// within [`MAX_DOWNGRADE_VALIDITY_SECS`].
pub const DEFAULT_DOWNGRADE_VALIDITY_SECS: u64 = 86_400;

/// What operations asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// The agent binary to release.
    pub binary: PathBuf,
    pub version: Version,
    /// The target triple the binary was built for.
    pub target: String,
    /// `Some(v)`: a downgrade that agents running exactly `v` may install (to undo the bad
    /// release `v`).
    pub replaces: Option<Version>,
    /// Seconds from signing until the manifest expires.
    pub validity_secs: u64,
    /// The lowest version agents may ever install again, signed into the manifest.
    pub floor: Option<Version>,
}

/// `text` as a version, or an error naming `field`.
fn parse_version(field: &'static str, text: &str) -> Result<Version, ProvisionError> {
    text.parse().map_err(
        |error: skolebro_protocol::ReleaseError| ProvisionError::InvalidField {
            field,
            reason: error.to_string(),
        },
    )
}

/// A validity such as `30d`, `72h`, `90m` or `3600` (seconds): at least a minute.
pub fn parse_validity(text: &str) -> Result<u64, ProvisionError> {
    let invalid = || ProvisionError::InvalidField {
        field: "--expires-in",
        reason: format!(
            "{:?} is not a duration of at least a minute (e.g. 30d, 72h, 90m, 3600)",
            text.chars().take(32).collect::<String>()
        ),
    };
    let (number, unit) = match text.char_indices().last() {
        Some((at, 'd')) => (&text[..at], 86_400),
        Some((at, 'h')) => (&text[..at], 3_600),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 's')) => (&text[..at], 1),
        _ => (text, 1),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let secs = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(invalid)?;
    if secs < 60 {
        return Err(invalid());
    }
    Ok(secs)
}

impl ReleaseRequest {
    /// Checks the version (`MAJOR.MINOR.PATCH`) and the target (a plain triple, which
    /// becomes part of the release's id, file names and URLs). `replaces` makes it a
    /// downgrade from exactly that version. The manifest is valid for
    /// [`DEFAULT_VALIDITY_SECS`] (a downgrade [`DEFAULT_DOWNGRADE_VALIDITY_SECS`]) and has
    /// no floor until [`ReleaseRequest::expires_in`] and [`ReleaseRequest::with_floor`] say
    /// otherwise.
    pub fn new(
        binary: PathBuf,
        version: &str,
        target: &str,
        replaces: Option<&str>,
    ) -> Result<ReleaseRequest, ProvisionError> {
        let version = parse_version("--version", version)?;
        let replaces = replaces
            .map(|text| parse_version("--replaces", text))
            .transpose()?;
        if replaces.is_some_and(|replaced| replaced <= version) {
            return Err(ProvisionError::InvalidField {
                field: "--replaces",
                reason: format!("a downgrade to {version} replaces a newer version"),
            });
        }
        if !valid_target(target) {
            return Err(ProvisionError::InvalidField {
                field: "--target",
                reason: format!(
                    "{target:?} is not a target triple (1 to {MAX_TARGET_LEN} characters of \
                     a-z, 0-9, '_', '.' and '-', e.g. aarch64-unknown-linux-gnu)"
                ),
            });
        }
        Ok(ReleaseRequest {
            binary,
            version,
            target: target.to_owned(),
            replaces,
            validity_secs: if replaces.is_some() {
                DEFAULT_DOWNGRADE_VALIDITY_SECS
            } else {
                DEFAULT_VALIDITY_SECS
            },
            floor: None,
        })
    }

    /// The manifest expires `text` (see [`parse_validity`]) after signing; a downgrade at
    /// most [`MAX_DOWNGRADE_VALIDITY_SECS`] after.
    pub fn expires_in(mut self, text: &str) -> Result<ReleaseRequest, ProvisionError> {
        let secs = parse_validity(text)?;
        if self.replaces.is_some() && secs > MAX_DOWNGRADE_VALIDITY_SECS {
            return Err(ProvisionError::InvalidField {
                field: "--expires-in",
                reason: format!(
                    "a downgrade manifest may be valid for at most {} h",
                    MAX_DOWNGRADE_VALIDITY_SECS / 3600
                ),
            });
        }
        self.validity_secs = secs;
        Ok(self)
    }

    /// Signs `text` as the floor: agents never install a version below it again. It may
    /// not be above the release itself.
    pub fn with_floor(mut self, text: &str) -> Result<ReleaseRequest, ProvisionError> {
        let floor = parse_version("--floor", text)?;
        if floor > self.version {
            return Err(ProvisionError::InvalidField {
                field: "--floor",
                reason: format!("the floor {floor} is above the release {}", self.version),
            });
        }
        self.floor = Some(floor);
        Ok(self)
    }
}

/// How long the binary may take to answer `--version` before the check gives up on it.
pub const VERSION_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What asking the binary for its version found, when it did not refuse the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCheck {
    /// The binary says the version it is released as.
    Matches,
    /// The binary cannot be run here (built for another target, not executable), so its
    /// version is taken as given; the reason is for operations to read.
    Unchecked(String),
}

/// Runs `binary --version` and compares what it says (the last word of its first line,
/// `skolebro-agent 1.3.0`) with `version`: a release signed with a version its binary does
/// not report would be installed, then report the old version in every heartbeat and be
/// offered again forever. A binary that says another version, or none, is refused. One
/// that cannot be run on this machine, as a build for the Pi usually cannot, is
/// [`VersionCheck::Unchecked`].
pub fn check_binary_version(
    binary: &Path,
    version: &Version,
) -> Result<VersionCheck, ProvisionError> {
    let mut child = match Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            return Ok(VersionCheck::Unchecked(format!(
                "cannot run {} here ({error})",
                binary.display()
            )))
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < VERSION_CHECK_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            outcome => {
                // Still running, or not waitable: it is not answering `--version`.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProvisionError::BinaryVersion {
                    binary: binary.to_owned(),
                    reason: match outcome {
                        Err(error) => format!("cannot wait for `--version`: {error}"),
                        _ => format!(
                            "did not answer `--version` within {} s",
                            VERSION_CHECK_TIMEOUT.as_secs()
                        ),
                    },
                });
            }
        }
    };
    let mut said = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // `--version` is one short line; more is not an agent's answer.
        let _ = stdout.by_ref().take(4096).read_to_string(&mut said);
    }
    let first = said.lines().next().unwrap_or("").trim();
    let reported = first
        .rsplit(' ')
        .next()
        .and_then(|word| word.parse::<Version>().ok());
    match reported {
        Some(reported) if status.success() && reported == *version => Ok(VersionCheck::Matches),
        Some(reported) if status.success() => Err(ProvisionError::BinaryVersion {
            binary: binary.to_owned(),
            reason: format!(
                "its `--version` says {reported}, not {version}; release it as {reported}, or \
                 build it with SKOLEBRO_VERSION={version}"
            ),
        }),
        _ => Err(ProvisionError::BinaryVersion {
            binary: binary.to_owned(),
            reason: format!(
                "`--version` did not say a version ({status}: {:?}); is it the agent?",
                first.chars().take(80).collect::<String>()
            ),
        }),
    }
}

/// A release written to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRelease {
    pub manifest: ReleaseManifest,
    /// The signed manifest's bytes, as written to [`BuiltRelease::manifest_path`].
    pub manifest_bytes: Vec<u8>,
    /// `<out>/<id>.bin`, a copy of the binary.
    pub artifact_path: PathBuf,
    /// `<out>/<id>.skm`.
    pub manifest_path: PathBuf,
}

/// Writes the artifact and its signed manifest into `out` (created if missing). The
/// manifest is verified with the folder's `release.pub` before it is written, so a key pair
/// that does not match fails here, not on every Pi. Each file is written under a temporary
/// name, flushed and renamed, so an interrupted run leaves no half file under a release's
/// name; the manifest goes last, so a manifest always has its artifact beside it.
pub fn build(
    keys: &KeyFolder,
    request: &ReleaseRequest,
    out: &Path,
    now_unix: u64,
) -> Result<BuiltRelease, ProvisionError> {
    let key = keys.release_signing_key()?;
    let artifact = std::fs::read(&request.binary)
        .map_err(|error| ProvisionError::io(&request.binary, error))?;
    let size = u64::try_from(artifact.len()).unwrap_or(u64::MAX);
    if size == 0 || size > MAX_ARTIFACT_BYTES {
        return Err(ProvisionError::InvalidField {
            field: "--binary",
            reason: format!(
                "{} is {size} bytes; an artifact is 1 byte to {MAX_ARTIFACT_BYTES} bytes",
                request.binary.display()
            ),
        });
    }
    let manifest = ReleaseManifest {
        version: request.version,
        target: request.target.clone(),
        size,
        sha256: Sha256::digest(&artifact).into(),
        allow_downgrade: request.replaces.is_some(),
        created_unix: now_unix,
        expires_unix: now_unix.saturating_add(request.validity_secs),
        replaces: request.replaces,
        floor: request.floor,
    };
    let manifest_bytes = manifest.sign(&key);
    ReleaseManifest::verify(&manifest_bytes, &keys.release_verifying_key()?)?;

    std::fs::create_dir_all(out).map_err(|error| ProvisionError::io(out, error))?;
    let id = manifest.id();
    let artifact_path = out.join(format!("{id}.{ARTIFACT_EXTENSION}"));
    let manifest_path = out.join(format!("{id}.{MANIFEST_EXTENSION}"));
    write_atomically(&artifact_path, &artifact)?;
    write_atomically(&manifest_path, &manifest_bytes)?;
    File::open(out)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| ProvisionError::io(out, error))?;
    Ok(BuiltRelease {
        manifest,
        manifest_bytes,
        artifact_path,
        manifest_path,
    })
}

/// Registers a built release with central: the manifest (`POST /admin/releases`), then the
/// artifact (`PUT /admin/releases/{id}/artifact`). Registering the same release again is
/// harmless, so a run that failed halfway is simply repeated.
pub async fn register(admin: &AdminClient, built: &BuiltRelease) -> Result<(), ProvisionError> {
    let expected = built.manifest.id();
    let id = admin.register_release(&built.manifest_bytes).await?;
    if id != expected {
        return Err(ProvisionError::AdminAnswer {
            request: "POST /admin/releases".to_owned(),
            reason: format!("release id {id:?}, expected {expected:?}"),
        });
    }
    let artifact = std::fs::read(&built.artifact_path)
        .map_err(|error| ProvisionError::io(&built.artifact_path, error))?;
    admin.upload_release_artifact(&id, artifact).await
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let written = (|| {
        let io = |error| ProvisionError::io(&temp, error);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp, path).map_err(|error| ProvisionError::io(path, error))
    })();
    if written.is_err() {
        // Leave no half-written file behind; the original error is what matters.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::ReleaseError;

    fn keys(dir: &Path) -> KeyFolder {
        KeyFolder::init(&dir.join("keys"), &[]).unwrap().0
    }

    #[test]
    fn a_release_is_a_copy_of_the_binary_and_a_manifest_that_verifies_with_release_pub() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = keys(tmp.path());
        let binary = tmp.path().join("skolebro-agent");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let request =
            ReleaseRequest::new(binary, "1.4.0", "aarch64-unknown-linux-gnu", None).unwrap();
        let out = tmp.path().join("out");
        let built = build(&keys, &request, &out, 1_900_000_000).unwrap();

        assert_eq!(
            built.artifact_path,
            out.join("1.4.0-aarch64-unknown-linux-gnu.bin")
        );
        assert_eq!(
            std::fs::read(&built.artifact_path).unwrap(),
            b"\x7fELF not really"
        );
        let bytes = std::fs::read(&built.manifest_path).unwrap();
        assert_eq!(bytes, built.manifest_bytes);
        let manifest =
            ReleaseManifest::verify(&bytes, &keys.release_verifying_key().unwrap()).unwrap();
        assert_eq!(manifest.size, b"\x7fELF not really".len() as u64);
        assert_eq!(
            manifest.sha256,
            <[u8; 32]>::from(Sha256::digest(b"\x7fELF not really"))
        );
        assert_eq!(manifest.version, Version::new(1, 4, 0));
        assert!(!manifest.allow_downgrade);
        assert_eq!(manifest.created_unix, 1_900_000_000);
        assert_eq!(manifest.expires_unix, 1_900_000_000 + DEFAULT_VALIDITY_SECS);
        assert_eq!((manifest.replaces, manifest.floor), (None, None));
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_manifest_from_another_key_pair_is_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = keys(tmp.path());
        let other = KeyFolder::init(&tmp.path().join("other"), &[]).unwrap().0;
        std::fs::copy(
            other.path(KeyFolder::RELEASE_PUB),
            keys.path(KeyFolder::RELEASE_PUB),
        )
        .unwrap();
        let binary = tmp.path().join("agent");
        std::fs::write(&binary, b"x").unwrap();
        let request =
            ReleaseRequest::new(binary, "1.0.0", "x86_64-unknown-linux-gnu", None).unwrap();
        let out = tmp.path().join("out");
        assert!(matches!(
            build(&keys, &request, &out, 1),
            Err(ProvisionError::KeyMismatch { .. })
        ));
        assert!(!out.exists());
    }

    #[test]
    fn versions_targets_and_empty_binaries_are_checked_and_named() {
        let bad_version = ReleaseRequest::new("a".into(), "1.2", "x86_64-unknown-linux-gnu", None);
        assert!(matches!(
            bad_version,
            Err(ProvisionError::InvalidField {
                field: "--version",
                ..
            })
        ));
        for target in ["", "../x", "X86_64", "a/b"] {
            assert!(
                matches!(
                    ReleaseRequest::new("a".into(), "1.2.3", target, None),
                    Err(ProvisionError::InvalidField {
                        field: "--target",
                        ..
                    })
                ),
                "{target:?}"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let keys = keys(tmp.path());
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let request =
            ReleaseRequest::new(empty, "1.2.3", "x86_64-unknown-linux-gnu", Some("1.2.4")).unwrap();
        assert!(matches!(
            build(&keys, &request, tmp.path(), 1),
            Err(ProvisionError::InvalidField {
                field: "--binary",
                ..
            })
        ));
        assert!(matches!(
            ReleaseManifest::verify(b"", &keys.release_verifying_key().unwrap()),
            Err(ReleaseError::Truncated)
        ));
    }

    #[test]
    fn a_downgrade_names_what_it_replaces_and_expires_within_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = keys(tmp.path());
        let binary = tmp.path().join("agent");
        std::fs::write(&binary, b"x").unwrap();
        let t = "x86_64-unknown-linux-gnu";
        let request = ReleaseRequest::new(binary.clone(), "1.0.0", t, Some("1.1.0"))
            .unwrap()
            .with_floor("0.9.0")
            .unwrap();
        let built = build(&keys, &request, &tmp.path().join("out"), 1_000).unwrap();
        assert!(built.manifest.allow_downgrade);
        assert_eq!(built.manifest.replaces, Some(Version::new(1, 1, 0)));
        assert_eq!(built.manifest.floor, Some(Version::new(0, 9, 0)));
        assert_eq!(
            built.manifest.expires_unix,
            1_000 + DEFAULT_DOWNGRADE_VALIDITY_SECS
        );
        let downgrade = || ReleaseRequest::new(binary.clone(), "1.0.0", t, Some("1.1.0")).unwrap();
        assert!(downgrade().expires_in("72h").is_ok());
        assert!(matches!(
            downgrade().expires_in("73h"),
            Err(ProvisionError::InvalidField {
                field: "--expires-in",
                ..
            })
        ));
        assert!(matches!(
            ReleaseRequest::new(binary.clone(), "1.0.0", t, Some("1.0.0")),
            Err(ProvisionError::InvalidField {
                field: "--replaces",
                ..
            })
        ));
        assert!(matches!(
            downgrade().with_floor("1.0.1"),
            Err(ProvisionError::InvalidField {
                field: "--floor",
                ..
            })
        ));
    }

    #[test]
    fn validities_are_read_in_days_hours_minutes_or_seconds() {
        assert_eq!(parse_validity("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_validity("72h").unwrap(), 72 * 3_600);
        assert_eq!(parse_validity("90m").unwrap(), 5_400);
        assert_eq!(parse_validity("3600").unwrap(), 3_600);
        assert_eq!(parse_validity("120s").unwrap(), 120);
        for bad in ["", "d", "59", "1.5h", "-3d", "3w", "99999999999999999999d"] {
            assert!(parse_validity(bad).is_err(), "{bad:?}");
        }
    }
}
