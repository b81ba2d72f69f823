//! The platform's key folder: what `skolebro-provision init` makes once per platform, and what
//! every later `stick` reads.
//!
//! The folder holds the device CA (central signs device certificates with it at enrollment),
//! central's TLS CA and server certificate, the stick-signing key (bundles on sticks, checked
//! by every agent), central's HPKE sealing key pair (agents seal every payload to it) and the
//! release-signing key (update manifests) with the offline root key that co-signs its
//! rotations (`crate::rotate`), central's statement key (the signed time and
//! freshness statement in every heartbeat answer, `protocol::statement`), plus a
//! `central.toml` that runs central on these files. Private keys are written 0600 and never over an existing file: replacing a CA or
//! the stick key would orphan every certificate and stick made with the old one.
//!
//! Ed25519 and X25519 keys are stored as 64 lowercase hex characters and a newline (seed or
//! private key in `*.key`, public key in `*.pub`), the format central's `sealing_key` setting
//! and the agent's `stick_key` setting read.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use skolebro_protocol::{
    ReleaseSigningKey, ReleaseVerifyingKey, RootSigningKey, SealingPrivateKey, SealingPublicKey,
    StatementSigningKey, StickSigningKey, StickVerifyingKey,
};

use crate::error::ProvisionError;
use crate::pki::{self, CertificateAuthority, DevPki, Validity};

/// The folder holding the platform keys, and the names of the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFolder {
    dir: PathBuf,
}

/// One key or certificate `init` made, and the SHA-256 fingerprint operations compare when
/// they install a public key elsewhere (an agent package, central's host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// What the key is for, in words.
    pub what: &'static str,
    /// The files holding it, private one last.
    pub files: [&'static str; 2],
    /// SHA-256, lowercase hex: of the certificate's DER for certificates, of the 32 public
    /// key bytes for Ed25519 and X25519 keys.
    pub sha256: String,
}

/// Server names `init` puts into central's certificate when none are given: enough for
/// central and agents on one machine (the demo, tests).
pub const DEFAULT_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

impl KeyFolder {
    /// Device CA certificate.
    pub const DEVICE_CA_CERT: &'static str = DevPki::DEVICE_CA_CERT;
    /// Device CA private key; central needs it to enroll devices.
    pub const DEVICE_CA_KEY: &'static str = DevPki::DEVICE_CA_KEY;
    /// Central's TLS CA certificate; goes onto every stick.
    pub const CENTRAL_CA_CERT: &'static str = DevPki::CENTRAL_CA_CERT;
    /// Central's TLS CA private key.
    pub const CENTRAL_CA_KEY: &'static str = DevPki::CENTRAL_CA_KEY;
    /// Central's server certificate.
    pub const SERVER_CERT: &'static str = DevPki::SERVER_CERT;
    /// Central's server private key.
    pub const SERVER_KEY: &'static str = DevPki::SERVER_KEY;
    /// The stick-signing key's seed, hex.
    pub const STICK_KEY: &'static str = "stick.key";
    /// The stick-signing public key, hex; installed with every agent.
    pub const STICK_PUB: &'static str = "stick.pub";
    /// Central's X25519 sealing private key, hex.
    pub const SEALING_KEY: &'static str = "sealing.key";
    /// Central's X25519 sealing public key, hex; goes onto every stick.
    pub const SEALING_PUB: &'static str = "sealing.pub";
    /// The release-signing key's seed, hex.
    pub const RELEASE_KEY: &'static str = "release.key";
    /// The release-signing public key, hex; installed with every agent.
    pub const RELEASE_PUB: &'static str = "release.pub";
    /// The offline root key's seed, hex: it co-signs every release key rotation
    /// (`skolebro-provision rotate-key release`) and never leaves this folder.
    pub const ROOT_KEY: &'static str = "root.key";
    /// The root key's public half, hex; installed with every agent beside `release.pub`.
    pub const ROOT_PUB: &'static str = "root.pub";
    /// Central's statement key's seed, hex: central signs its statements with it.
    pub const STATEMENT_KEY: &'static str = "statement.key";
    /// The statement key's public half, hex; central hands it to devices at enrollment.
    pub const STATEMENT_PUB: &'static str = "statement.pub";
    /// Central's key-encryption key for sealing records at rest (`[privacy] key_file`), hex;
    /// it stays in this folder, never in the database or its backups.
    pub const RECORDS_KEK: &'static str = "records.kek";
    /// A configuration for `skolebro-central serve` using the files above.
    pub const CENTRAL_CONFIG: &'static str = "central.toml";

    /// Every file `init` writes; it refuses to start if any of them exists.
    pub const FILES: [&'static str; 18] = [
        Self::DEVICE_CA_CERT,
        Self::DEVICE_CA_KEY,
        Self::CENTRAL_CA_CERT,
        Self::CENTRAL_CA_KEY,
        Self::SERVER_CERT,
        Self::SERVER_KEY,
        Self::STICK_KEY,
        Self::STICK_PUB,
        Self::SEALING_KEY,
        Self::SEALING_PUB,
        Self::RELEASE_KEY,
        Self::RELEASE_PUB,
        Self::ROOT_KEY,
        Self::ROOT_PUB,
        Self::STATEMENT_KEY,
        Self::STATEMENT_PUB,
        Self::RECORDS_KEK,
        Self::CENTRAL_CONFIG,
    ];

    /// A key folder at `dir`, for reading keys `init` wrote there earlier.
    pub fn new(dir: impl Into<PathBuf>) -> KeyFolder {
        KeyFolder { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the `KeyFolder::*` files.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Makes all platform keys and writes them into `dir` (created 0700 if missing), with a
    /// server certificate for `server_names` ([`DEFAULT_SERVER_NAMES`] when empty). Checks
    /// first that none of [`KeyFolder::FILES`] exists, so a second run changes nothing.
    /// Returns the folder and the fingerprints to print.
    pub fn init(
        dir: &Path,
        server_names: &[String],
    ) -> Result<(KeyFolder, Vec<Fingerprint>), ProvisionError> {
        let folder = KeyFolder::new(dir);
        for file in KeyFolder::FILES {
            let path = folder.path(file);
            if path.symlink_metadata().is_ok() {
                return Err(ProvisionError::AlreadyExists(path));
            }
        }
        let names: Vec<&str> = if server_names.is_empty() {
            DEFAULT_SERVER_NAMES.to_vec()
        } else {
            server_names.iter().map(String::as_str).collect()
        };

        // Everything is made in memory first, so a refused server name writes nothing.
        let ca_validity = Validity::from_now(pki::DEFAULT_CA_LIFETIME);
        let device_ca = CertificateAuthority::generate_device_ca(ca_validity)?;
        let central_ca = CertificateAuthority::generate_central_ca(ca_validity)?;
        let server =
            central_ca.issue_server(&names, Validity::from_now(pki::DEFAULT_LEAF_LIFETIME))?;
        let stick = StickSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
        let sealing = SealingPrivateKey::generate().map_err(|_| ProvisionError::Randomness)?;
        // A key of its own, so a leaked stick key cannot sign an update (and the other way
        // round).
        let release = ReleaseSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
        // Offline like the release key, and used only to rotate it: a leaked release key
        // alone cannot rotate itself to the thief's key.
        let root = RootSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
        // Online like the TLS key, so it can only state the time and what is current.
        let statement = StatementSigningKey::generate().map_err(|_| ProvisionError::Randomness)?;
        let mut records_kek = [0u8; 32];
        getrandom::fill(&mut records_kek).map_err(|_| ProvisionError::Randomness)?;

        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| ProvisionError::io(dir, error))?;

        pki::write_private_key(&folder.path(Self::DEVICE_CA_KEY), &device_ca.key_pem())?;
        pki::write_private_key(&folder.path(Self::CENTRAL_CA_KEY), &central_ca.key_pem())?;
        pki::write_private_key(&folder.path(Self::SERVER_KEY), &server.key_pem)?;
        pki::write_private_key(&folder.path(Self::STICK_KEY), &hex_line(&stick.to_bytes()))?;
        pki::write_private_key(
            &folder.path(Self::SEALING_KEY),
            &hex_line(&sealing.to_bytes()),
        )?;
        pki::write_private_key(
            &folder.path(Self::RELEASE_KEY),
            &hex_line(&release.to_bytes()),
        )?;
        pki::write_private_key(&folder.path(Self::ROOT_KEY), &hex_line(&root.to_bytes()))?;
        pki::write_private_key(
            &folder.path(Self::STATEMENT_KEY),
            &hex_line(&statement.to_bytes()),
        )?;
        pki::write_private_key(&folder.path(Self::RECORDS_KEK), &hex_line(&records_kek))?;
        let device_ca_fp =
            pki::write_certificate(&folder.path(Self::DEVICE_CA_CERT), device_ca.cert_pem())?;
        let central_ca_fp =
            pki::write_certificate(&folder.path(Self::CENTRAL_CA_CERT), central_ca.cert_pem())?;
        let server_fp = pki::write_certificate(&folder.path(Self::SERVER_CERT), &server.cert_pem)?;
        let stick_pub = stick.verifying_key().to_bytes();
        let sealing_pub = sealing.public_key().to_bytes();
        let release_pub = release.verifying_key().to_bytes();
        write_new_public(&folder.path(Self::STICK_PUB), &hex_line(&stick_pub))?;
        write_new_public(&folder.path(Self::SEALING_PUB), &hex_line(&sealing_pub))?;
        write_new_public(&folder.path(Self::RELEASE_PUB), &hex_line(&release_pub))?;
        let root_pub = root.verifying_key().to_bytes();
        write_new_public(&folder.path(Self::ROOT_PUB), &hex_line(&root_pub))?;
        let statement_pub = statement.verifying_key().to_bytes();
        write_new_public(&folder.path(Self::STATEMENT_PUB), &hex_line(&statement_pub))?;
        write_new_public(&folder.path(Self::CENTRAL_CONFIG), &central_config())?;

        let fingerprints = vec![
            Fingerprint {
                what: "device CA",
                files: [Self::DEVICE_CA_CERT, Self::DEVICE_CA_KEY],
                sha256: device_ca_fp,
            },
            Fingerprint {
                what: "central CA",
                files: [Self::CENTRAL_CA_CERT, Self::CENTRAL_CA_KEY],
                sha256: central_ca_fp,
            },
            Fingerprint {
                what: "central server certificate",
                files: [Self::SERVER_CERT, Self::SERVER_KEY],
                sha256: server_fp,
            },
            Fingerprint {
                what: "stick-signing key",
                files: [Self::STICK_PUB, Self::STICK_KEY],
                sha256: public_key_fingerprint(&stick_pub),
            },
            Fingerprint {
                what: "sealing key",
                files: [Self::SEALING_PUB, Self::SEALING_KEY],
                sha256: public_key_fingerprint(&sealing_pub),
            },
            Fingerprint {
                what: "release-signing key",
                files: [Self::RELEASE_PUB, Self::RELEASE_KEY],
                sha256: public_key_fingerprint(&release_pub),
            },
            Fingerprint {
                what: "root key",
                files: [Self::ROOT_PUB, Self::ROOT_KEY],
                sha256: public_key_fingerprint(&root_pub),
            },
            Fingerprint {
                what: "statement key",
                files: [Self::STATEMENT_PUB, Self::STATEMENT_KEY],
                sha256: public_key_fingerprint(&statement_pub),
            },
        ];
        Ok((folder, fingerprints))
    }

    /// The stick-signing key from `stick.key`, checked against `stick.pub`: a pair that does
    /// not match would produce sticks every agent refuses.
    pub fn stick_signing_key(&self) -> Result<StickSigningKey, ProvisionError> {
        let private_path = self.path(Self::STICK_KEY);
        let key = StickSigningKey::from_hex(&read(&private_path)?).map_err(|error| {
            ProvisionError::KeyFile {
                path: private_path.clone(),
                reason: error.to_string(),
            }
        })?;
        if key.verifying_key() != self.stick_verifying_key()? {
            return Err(ProvisionError::KeyMismatch {
                private: private_path,
                public: self.path(Self::STICK_PUB),
            });
        }
        Ok(key)
    }

    /// The stick-signing public key from `stick.pub`: what the agents check bundles against.
    pub fn stick_verifying_key(&self) -> Result<StickVerifyingKey, ProvisionError> {
        let path = self.path(Self::STICK_PUB);
        StickVerifyingKey::from_hex(&read(&path)?).map_err(|error| ProvisionError::KeyFile {
            path,
            reason: error.to_string(),
        })
    }

    /// The release-signing key from `release.key`, checked against `release.pub`: a pair
    /// that does not match would sign manifests every agent and central refuse.
    pub fn release_signing_key(&self) -> Result<ReleaseSigningKey, ProvisionError> {
        let private_path = self.path(Self::RELEASE_KEY);
        let key = ReleaseSigningKey::from_hex(&read(&private_path)?).map_err(|error| {
            ProvisionError::KeyFile {
                path: private_path.clone(),
                reason: error.to_string(),
            }
        })?;
        if key.verifying_key() != self.release_verifying_key()? {
            return Err(ProvisionError::KeyMismatch {
                private: private_path,
                public: self.path(Self::RELEASE_PUB),
            });
        }
        Ok(key)
    }

    /// The release-signing public key from `release.pub`: what agents and central check
    /// manifests against.
    pub fn release_verifying_key(&self) -> Result<ReleaseVerifyingKey, ProvisionError> {
        let path = self.path(Self::RELEASE_PUB);
        ReleaseVerifyingKey::from_hex(&read(&path)?).map_err(|error| ProvisionError::KeyFile {
            path,
            reason: error.to_string(),
        })
    }

    /// Central's sealing public key from `sealing.pub`, for the stick.
    pub fn sealing_public_key(&self) -> Result<SealingPublicKey, ProvisionError> {
        let path = self.path(Self::SEALING_PUB);
        let bytes = decode_hex32(&read(&path)?).ok_or_else(|| ProvisionError::KeyFile {
            path: path.clone(),
            reason: "must be 64 hex characters (32 bytes)".into(),
        })?;
        SealingPublicKey::from_bytes(bytes).map_err(|_| ProvisionError::KeyFile {
            path,
            reason: "not an X25519 public key".into(),
        })
    }

    /// Central's CA certificate (PEM) from `central-ca.pem`, for the stick. Checked to be a
    /// certificate, so a stick never carries a CA the agent cannot load.
    pub fn central_ca_pem(&self) -> Result<String, ProvisionError> {
        let path = self.path(Self::CENTRAL_CA_CERT);
        let pem = read(&path)?;
        pki::fingerprint(&pem).map_err(|error| ProvisionError::KeyFile {
            path,
            reason: error.to_string(),
        })?;
        Ok(pem)
    }
}

/// SHA-256 of a 32-byte public key, lowercase hex: the fingerprint `init` prints for Ed25519
/// and X25519 keys.
pub fn public_key_fingerprint(public_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public_key))
}

/// Where `init`'s `central.toml` puts central's SQLite database, relative to the key
/// folder: beside it, not in it. The key folder is what operations keep offline (all but
/// the keys central needs); the database is central's working data, written every night
/// and backed up on its own schedule.
pub const CENTRAL_DB: &str = "../central.db";

/// The address of the operator web interface in `init`'s `central.toml`: on loopback,
/// for the TLS-terminating proxy in front of it.
pub const UI_LISTEN: &str = "127.0.0.1:8082";

/// The `central.toml` `init` writes: central on loopback, every key path relative to the
/// folder (central resolves relative paths against the config's folder), SQLite beside the
/// folder ([`CENTRAL_DB`]), the web interface on [`UI_LISTEN`].
fn central_config() -> String {
    format!(
        "# skolebro-central serve --config {config}\n\
         # Written by `skolebro-provision init`; paths are relative to this folder.\n\
         listen = \"127.0.0.1:8443\"\n\
         admin_listen = \"127.0.0.1:8080\"\n\
         # The operator web interface, plain HTTP: put a TLS-terminating proxy in front of\n\
         # it (its session cookie is `Secure`); accounts: skolebro-central add-user.\n\
         ui_listen = \"{ui_listen}\"\n\
         sealing_key = \"{sealing}\"\n\
         release_key = \"{release}\"\n\
         statement_key = \"{statement}\"\n\
         releases_dir = \"releases\"\n\
         \n\
         [tls]\n\
         cert = \"{cert}\"\n\
         key = \"{key}\"\n\
         device_ca = \"{device_ca}\"\n\
         device_ca_key = \"{device_ca_key}\"\n\
         \n\
         # Seals national ids, names and e-mail in the database; keep a copy of this key\n\
         # apart from the database's backups: without it they cannot be read.\n\
         [privacy]\n\
         key_file = \"{records_kek}\"\n\
         \n\
         # Outside this folder, which is kept offline but for the keys central needs.\n\
         [store]\n\
         kind = \"sqlite\"\n\
         path = \"{db}\"\n",
        config = KeyFolder::CENTRAL_CONFIG,
        ui_listen = UI_LISTEN,
        db = CENTRAL_DB,
        sealing = KeyFolder::SEALING_KEY,
        release = KeyFolder::RELEASE_PUB,
        statement = KeyFolder::STATEMENT_KEY,
        cert = KeyFolder::SERVER_CERT,
        key = KeyFolder::SERVER_KEY,
        device_ca = KeyFolder::DEVICE_CA_CERT,
        device_ca_key = KeyFolder::DEVICE_CA_KEY,
        records_kek = KeyFolder::RECORDS_KEK,
    )
}

pub(crate) fn hex_line(bytes: &[u8; 32]) -> String {
    format!("{}\n", hex::encode(bytes))
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
    Some(bytes)
}

/// Reads a key file of the folder; one that cannot be read is a [`ProvisionError::KeyFile`]
/// like one that holds no key, so every binary reports both as a config error.
pub(crate) fn read(path: &Path) -> Result<String, ProvisionError> {
    std::fs::read_to_string(path).map_err(|error| ProvisionError::KeyFile {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// Writes a public file (0644), never over an existing one, flushed to disk.
pub(crate) fn write_new_public(path: &Path, contents: &str) -> Result<(), ProvisionError> {
    let io = |error| ProvisionError::io(path, error);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_every_file_with_private_keys_readable_only_by_the_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let (folder, fingerprints) = KeyFolder::init(&dir, &[]).unwrap();
        for file in KeyFolder::FILES {
            assert!(folder.path(file).is_file(), "{file} is missing");
        }
        for file in KeyFolder::FILES
            .iter()
            .filter(|f| f.ends_with(".key") || f.ends_with(".kek"))
        {
            assert_eq!(mode(&folder.path(file)), 0o600, "{file}");
        }
        for file in [
            "stick.pub",
            "sealing.pub",
            "release.pub",
            "root.pub",
            "central-ca.pem",
        ] {
            assert_eq!(mode(&folder.path(file)), 0o644, "{file}");
        }
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(fingerprints.len(), 8);
        assert!(fingerprints.iter().all(|fp| fp.sha256.len() == 64));
    }

    #[test]
    fn hex_key_files_are_64_lowercase_hex_characters_and_a_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        for file in [
            "stick.key",
            "stick.pub",
            "sealing.key",
            "sealing.pub",
            "release.key",
            "release.pub",
            "root.key",
            "root.pub",
            "statement.key",
            "statement.pub",
        ] {
            let text = std::fs::read_to_string(folder.path(file)).unwrap();
            assert_eq!(text.len(), 65, "{file}");
            assert!(text.ends_with('\n'));
            assert!(text[..64]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn keys_written_by_init_load_back_as_pairs() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, fingerprints) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let stick = folder.stick_signing_key().unwrap();
        assert_eq!(stick.verifying_key(), folder.stick_verifying_key().unwrap());
        let sealing_key = std::fs::read_to_string(folder.path("sealing.key")).unwrap();
        let sealing = SealingPrivateKey::from_bytes(decode_hex32(&sealing_key).unwrap());
        assert_eq!(
            sealing.public_key(),
            folder.sealing_public_key().unwrap(),
            "sealing.pub is the public half of sealing.key"
        );
        let ca = CertificateAuthority::from_pem(
            &folder.central_ca_pem().unwrap(),
            &std::fs::read_to_string(folder.path("central-ca.key")).unwrap(),
        )
        .unwrap();
        let device_ca = CertificateAuthority::from_pem(
            &std::fs::read_to_string(folder.path("device-ca.pem")).unwrap(),
            &std::fs::read_to_string(folder.path("device-ca.key")).unwrap(),
        )
        .unwrap();
        let printed: Vec<&str> = fingerprints.iter().map(|fp| fp.sha256.as_str()).collect();
        assert!(printed.contains(&ca.fingerprint().as_str()));
        assert!(printed.contains(&device_ca.fingerprint().as_str()));
        assert!(
            printed.contains(&public_key_fingerprint(&stick.verifying_key().to_bytes()).as_str())
        );
    }

    #[test]
    fn init_refuses_to_overwrite_and_leaves_the_folder_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let before = std::fs::read_to_string(folder.path("stick.key")).unwrap();
        let error = KeyFolder::init(tmp.path(), &[]).unwrap_err();
        assert!(matches!(error, ProvisionError::AlreadyExists(_)), "{error}");
        assert_eq!(
            std::fs::read_to_string(folder.path("stick.key")).unwrap(),
            before
        );
    }

    #[test]
    fn one_existing_key_file_stops_init_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("release.pub"), "old\n").unwrap();
        let error = KeyFolder::init(tmp.path(), &[]).unwrap_err();
        assert!(error.to_string().contains("release.pub"), "{error}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bad_server_name_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let error = KeyFolder::init(&dir, &["not a host name".to_owned()]).unwrap_err();
        assert!(matches!(error, ProvisionError::Pki(_)), "{error}");
        assert!(!dir.exists());
    }

    #[test]
    fn a_stick_key_that_does_not_match_its_public_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, _) = KeyFolder::init(tmp.path(), &[]).unwrap();
        let other = StickSigningKey::from_bytes([3; 32]).verifying_key();
        std::fs::write(folder.path("stick.pub"), format!("{}\n", other.to_hex())).unwrap();
        assert!(matches!(
            folder.stick_signing_key(),
            Err(ProvisionError::KeyMismatch { .. })
        ));
    }
}
