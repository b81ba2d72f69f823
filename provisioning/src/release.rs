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
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use skolebro_protocol::release::{valid_target, MAX_TARGET_LEN};
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

/// What operations asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// The agent binary to release.
    pub binary: PathBuf,
    pub version: Version,
    /// The target triple the binary was built for.
    pub target: String,
    /// Let agents on a newer version install this one (to undo a bad release).
    pub allow_downgrade: bool,
}

impl ReleaseRequest {
    /// Checks the version (`MAJOR.MINOR.PATCH`) and the target (a plain triple, which
    /// becomes part of the release's id, file names and URLs).
    pub fn new(
        binary: PathBuf,
        version: &str,
        target: &str,
        allow_downgrade: bool,
    ) -> Result<ReleaseRequest, ProvisionError> {
        let version = version
            .parse()
            .map_err(
                |error: skolebro_protocol::ReleaseError| ProvisionError::InvalidField {
                    field: "--version",
                    reason: error.to_string(),
                },
            )?;
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
            allow_downgrade,
        })
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
        allow_downgrade: request.allow_downgrade,
        created_unix: now_unix,
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
            ReleaseRequest::new(binary, "1.4.0", "aarch64-unknown-linux-gnu", false).unwrap();
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
            ReleaseRequest::new(binary, "1.0.0", "x86_64-unknown-linux-gnu", false).unwrap();
        let out = tmp.path().join("out");
        assert!(matches!(
            build(&keys, &request, &out, 1),
            Err(ProvisionError::KeyMismatch { .. })
        ));
        assert!(!out.exists());
    }

    #[test]
    fn versions_targets_and_empty_binaries_are_checked_and_named() {
        let bad_version = ReleaseRequest::new("a".into(), "1.2", "x86_64-unknown-linux-gnu", false);
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
                    ReleaseRequest::new("a".into(), "1.2.3", target, false),
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
            ReleaseRequest::new(empty, "1.2.3", "x86_64-unknown-linux-gnu", true).unwrap();
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
}
