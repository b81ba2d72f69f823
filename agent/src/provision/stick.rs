//! Finding a config stick and deciding whether to trust it: the first step of provisioning.
//! A bundle is looked for at `<root>/*/SKOLEBRO/BUNDLE.SKB` and `<root>/*/*/SKOLEBRO/BUNDLE.SKB`
//! under each of `stick_roots` (udev's `/run/media/skolebro-stick`, a desktop's
//! `/media/pi/STICK`), read with a size limit, and checked against the stick key installed
//! with the agent: signature first, then, if the clock is synced, the token's expiry (central
//! is the authority on it; an unsynced Pi leaves the decision to central), then the content
//! enrollment relies on. Nothing here writes anything.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use skolebro_protocol::envelope::SealingPublicKey;
use skolebro_protocol::stick::{
    StickBody, StickError, StickVerifyingKey, BUNDLE_DIR, BUNDLE_FILE, MAX_BUNDLE_BYTES,
};

use crate::clock::unix;
use crate::config::SiteSettings;

/// Why a stick was refused. Names what is wrong, never the token or a key.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("cannot be read: {0}")]
    Unreadable(std::io::Error),
    /// The bundle itself: too large, damaged, tampered with, signed by another key, expired.
    #[error(transparent)]
    Bundle(#[from] StickError),
    #[error("its agent settings are not valid: {0}")]
    Settings(String),
    /// Signed, but content enrollment cannot use.
    #[error("{0}")]
    Content(&'static str),
}

/// A bundle that passed every check, ready to enroll with.
pub struct VerifiedStick {
    /// The file it was read from.
    pub path: PathBuf,
    pub body: StickBody,
    pub settings: SiteSettings,
    /// [`StickBody::token_id`]: safe to show, unlike the token.
    pub token_id: String,
}

impl std::fmt::Debug for VerifiedStick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedStick")
            .field("path", &self.path)
            .field("site", &self.body.site_id)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// The bundle file for `skolebro-agent provision --from PATH`: PATH itself if it is a file,
/// else `PATH/SKOLEBRO/BUNDLE.SKB` (PATH is the stick's mount point).
pub fn bundle_path(from: &Path) -> PathBuf {
    if from.is_file() {
        from.to_owned()
    } else {
        from.join(BUNDLE_DIR).join(BUNDLE_FILE)
    }
}

/// Every bundle one or two folders below a root, in a stable order. Unreadable folders are
/// skipped: a root that does not exist is the normal case.
pub fn find_bundles(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
        for first in subfolders(root) {
            let bundle = first.join(BUNDLE_DIR).join(BUNDLE_FILE);
            if bundle.is_file() {
                found.push(bundle);
            }
            for second in subfolders(&first) {
                let bundle = second.join(BUNDLE_DIR).join(BUNDLE_FILE);
                if bundle.is_file() {
                    found.push(bundle);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What to tell someone whose stick root is itself a stick: a root holding `SKOLEBRO/`
/// directly is a stick's mount point, and [`find_bundles`] looks one and two folders below
/// each root, so that stick would never be found and the agent would wait in silence.
/// `None` when no root is one.
pub fn stick_root_hint(roots: &[PathBuf]) -> Option<String> {
    let root = roots.iter().find(|root| root.join(BUNDLE_DIR).is_dir())?;
    let parent = root.parent().map_or_else(
        || "its parent folder".to_owned(),
        |p| p.display().to_string(),
    );
    Some(format!(
        "the stick root {} holds {BUNDLE_DIR}/ itself: it is the stick, but sticks are looked \
         for in the folders below a stick root; list {parent} in stick_roots instead",
        root.display()
    ))
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    folders
}

/// Reads the bundle at `path` and checks it (see the module doc). `synced_now` is the real
/// time if the clock is synced; without it the token's expiry is left to central.
pub fn read_stick(
    path: &Path,
    key: &StickVerifyingKey,
    synced_now: Option<SystemTime>,
) -> Result<VerifiedStick, Refusal> {
    let file = std::fs::File::open(path).map_err(Refusal::Unreadable)?;
    let mut bytes = Vec::new();
    // One byte more than allowed, so an oversized bundle is refused as such.
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Unreadable)?;
    let body = StickBody::verify(&bytes, key)?;
    if let Some(now) = synced_now {
        body.check_expiry(unix(now))?;
    }
    if !body.central_url.starts_with("https://") {
        return Err(Refusal::Content("central's address is not an https:// URL"));
    }
    if SealingPublicKey::from_bytes(body.sealing_key).is_err() {
        return Err(Refusal::Content(
            "central's sealing key is not an X25519 key",
        ));
    }
    if body.site.site_id().ok().as_ref() != Some(&body.site_id) {
        return Err(Refusal::Content("the site id does not match the site"));
    }
    let settings =
        SiteSettings::parse(&body.settings_toml).map_err(|e| Refusal::Settings(e.to_string()))?;
    Ok(VerifiedStick {
        path: path.to_owned(),
        token_id: body.token_id(),
        body,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::testing::{body, write_bundle};
    use skolebro_protocol::stick::StickSigningKey;

    #[test]
    fn bundles_are_found_one_or_two_folders_below_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let key = StickSigningKey::from_bytes([1; 32]);
        let root = dir.path().join("media");
        let one = root.join("STICK");
        let two = root.join("pi").join("OTHER");
        let deep = root.join("a").join("b").join("c");
        for folder in [&one, &two, &deep] {
            write_bundle(folder, &body(), &key);
        }
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let found = find_bundles(&[root.clone(), dir.path().join("missing")]);
        assert_eq!(
            found,
            [
                one.join("SKOLEBRO/BUNDLE.SKB"),
                two.join("SKOLEBRO/BUNDLE.SKB")
            ]
        );
        assert_eq!(bundle_path(&one), one.join("SKOLEBRO/BUNDLE.SKB"));
        assert_eq!(bundle_path(&found[0]), found[0]);
    }

    #[test]
    fn a_good_stick_verifies_and_expiry_counts_only_on_a_synced_clock() {
        let dir = tempfile::tempdir().unwrap();
        let key = StickSigningKey::from_bytes([1; 32]);
        let mut expired = body();
        expired.token_expires_unix = 1_000;
        let path = write_bundle(dir.path(), &expired, &key);
        let verifying = key.verifying_key();
        let stick = read_stick(&path, &verifying, None).unwrap();
        assert_eq!(stick.token_id, expired.token_id());
        assert_eq!(stick.settings.rescan_seconds, Some(5));
        let refused = read_stick(&path, &verifying, Some(SystemTime::now())).unwrap_err();
        assert!(
            matches!(refused, Refusal::Bundle(StickError::Expired { .. })),
            "{refused}"
        );
    }

    #[test]
    fn every_flipped_byte_and_a_foreign_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = StickSigningKey::from_bytes([1; 32]);
        let path = write_bundle(dir.path(), &body(), &key);
        let good = std::fs::read(&path).unwrap();
        let verifying = key.verifying_key();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(read_stick(&path, &verifying, None).is_err(), "byte {i}");
        }
        std::fs::write(&path, &good).unwrap();
        let foreign = StickSigningKey::from_bytes([2; 32]).verifying_key();
        let refused = read_stick(&path, &foreign, None).unwrap_err();
        assert!(matches!(refused, Refusal::Bundle(StickError::BadSignature)));
        // The message names the reason, never the token.
        assert!(!refused.to_string().contains(&body().token));
    }

    #[test]
    fn settings_a_stick_may_not_carry_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = StickSigningKey::from_bytes([1; 32]);
        let mut sneaky = body();
        sneaky.settings_toml = "stick_key = \"/tmp/mine.pub\"\n".into();
        let path = write_bundle(dir.path(), &sneaky, &key);
        let refused = read_stick(&path, &key.verifying_key(), None).unwrap_err();
        assert!(matches!(refused, Refusal::Settings(_)), "{refused}");
    }
}
