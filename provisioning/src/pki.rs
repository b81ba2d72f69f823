//! The certificate authorities behind skolebro's mutual TLS, and the certificates they issue.
//!
//! Operations run this (through `skolebro-provision`, and central's enrollment) before any
//! batch moves: a **device CA** signs one client certificate per Pi, a **central CA** signs the
//! server certificate the agents check central against. The two CAs are separate so that a
//! device certificate can never pass as central, and either can be rotated without the other.
//! Enrollment follows DESIGN decision 6: the Pi makes its own key ([`DeviceKey`]), only a CSR
//! leaves it, and central decides which device and site the certificate names
//! ([`CertificateAuthority::issue_from_csr`]). [`crate::tls`] then turns these PEM strings into
//! rustls configurations and reads the identity back out of a presented certificate.
//!
//! # Certificate profile
//! - **Keys: Ed25519**, for every key this module generates. rustls + ring verify Ed25519 in
//!   TLS 1.3 and in certificate chains, and reqwest's rustls backend loads it; signatures are
//!   deterministic, so a Pi with little entropy right after boot cannot leak its key through a
//!   repeated nonce (ECDSA's failure mode); keys and signatures are small and fast on ARM; and
//!   the project already relies on Ed25519 for envelope signatures. A CSR may also carry an
//!   ECDSA P-256 key, so that a device with a secure element (which usually offers only P-256)
//!   can enroll without a change of CA.
//! - **CAs**: subject `CN=<name>, O=skolebro`, basic constraints CA with path length 0 (they
//!   sign leaves only), key usage keyCertSign + cRLSign + digitalSignature.
//! - **Server certificate**: `CN=<first name>`, one SAN per name (DNS, or IP when the name
//!   parses as an address; the dev PKI uses `localhost` and `127.0.0.1`), extended key usage
//!   serverAuth.
//! - **Device certificate**: `CN=<device id>`, and exactly two URI SANs,
//!   `urn:skolebro:device:<device>` and `urn:skolebro:site:<site>`, extended key usage
//!   clientAuth. The identity is read from the SANs, not from the subject: URIs are the
//!   standard place for a non-DNS identity, are typed and namespaced (they cannot be confused
//!   with a host name, and a `urn:` never matches a TLS server name), and keep device and site
//!   as two separate values instead of one string to split. The CN repeats the device id for
//!   people reading logs and `openssl x509 -text`.
//! - **Serial numbers** are 16 random bytes (rcgen would otherwise derive them from the public
//!   key, so re-issuing for the same key would repeat a serial and confuse revocation).
//! - **Validity** is always a parameter ([`Validity`]); fresh certificates are back-dated by
//!   [`CLOCK_SKEW`] so a verifier whose clock is slightly behind the issuer's accepts them.
//!
//! Private keys leave this module only as PKCS#8 PEM strings and are written with
//! [`write_private_key`] (mode 0600, never over an existing file).

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
    SanType, SerialNumber, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{DeviceId, SiteId};
use x509_parser::prelude::FromDer as _;

/// Prefix of the URI SAN that names the device; the rest is the [`DeviceId`].
pub const DEVICE_URI_PREFIX: &str = "urn:skolebro:device:";
/// Prefix of the URI SAN that names the site; the rest is the [`SiteId`].
pub const SITE_URI_PREFIX: &str = "urn:skolebro:site:";

/// Upper bound of a CSR central will parse. A real one is well under 1 KiB; the bound keeps
/// an enrollment request from making the parser chew on megabytes.
pub const MAX_CSR_PEM_BYTES: usize = 8 * 1024;

/// How far [`Validity::from_now`] back-dates `not_before`: enough for ordinary clock drift
/// between the machine that issues and the one that verifies, short enough not to matter.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Lifetime suggested for the two CAs. Rotating a CA means re-enrolling or re-provisioning
/// every device, so it lives long; its key stays offline with operations.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime suggested for device and server certificates: a year, renewed by re-enrollment,
/// so a lost device that was never revoked stops working on its own.
pub const DEFAULT_LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Everything that can go wrong when making, loading or writing keys and certificates. The
/// CSR variants are separate because central answers them to a device differently (a bad
/// request, not an internal error).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to make a key or a certificate from our parameters.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The input holds no PEM block of the expected kind.
    #[error("no PEM {0} found in the input")]
    Pem(&'static str),
    /// A PEM certificate that x509 cannot parse.
    #[error("certificate could not be parsed")]
    BadCertificate,
    /// A CA certificate and a private key that do not belong together: every certificate
    /// issued with them would fail to verify, so loading them is refused.
    #[error("the private key does not belong to the CA certificate")]
    KeyMismatch,
    /// `not_after` is not later than `not_before`, or a time rcgen cannot encode.
    #[error("invalid validity period: {0}")]
    Validity(&'static str),
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The CSR is not a parseable PKCS#10 request, its signature does not verify (the sender
    /// does not hold the key), or it asks for an extension a device certificate never has.
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
    /// The CSR's key is neither Ed25519 nor ECDSA P-256.
    #[error("certificate signing request uses an unsupported key algorithm")]
    UnsupportedKeyAlgorithm,
    /// The CSR claims a name other than the device and site the enrollment is for: the CSR
    /// came from another device, or the token was used for the wrong one.
    #[error("certificate signing request claims {claimed:?}, the enrollment is for {expected:?}")]
    CsrNameMismatch { claimed: String, expected: String },
    /// The operating system's random number generator failed; nothing was issued.
    #[error("system randomness unavailable")]
    Randomness,
    /// Writing a key or certificate file failed. A key file that already exists is reported
    /// here too (`AlreadyExists`): keys are never overwritten.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// When a certificate is valid. A parameter everywhere, because tests need certificates that
/// expired yesterday or start tomorrow, and operations choose lifetimes per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Validity {
    /// Valid from [`CLOCK_SKEW`] ago for `lifetime` from now: what a freshly issued
    /// certificate should get.
    pub fn from_now(lifetime: Duration) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now
                .checked_sub(CLOCK_SKEW)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            not_after: now.checked_add(lifetime).unwrap_or(now),
        }
    }

    /// An explicit period, for certificates that must be expired or not yet valid (tests,
    /// clock-floor checks). Refused when it ends before it starts.
    pub fn between(not_before: SystemTime, not_after: SystemTime) -> Result<Validity, PkiError> {
        if not_after <= not_before {
            return Err(PkiError::Validity(
                "not_after must be later than not_before",
            ));
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    /// Start of the period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the period.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<(), PkiError> {
        if self.not_after <= self.not_before {
            return Err(PkiError::Validity(
                "not_after must be later than not_before",
            ));
        }
        params.not_before = offset_date_time(self.not_before)?;
        params.not_after = offset_date_time(self.not_after)?;
        Ok(())
    }
}

/// `SystemTime` to rcgen's time type without `From`, which panics outside years -9999..=9999.
fn offset_date_time(t: SystemTime) -> Result<time::OffsetDateTime, PkiError> {
    let seconds = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs()).ok().map(|s| -s),
    };
    seconds
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(PkiError::Validity(
            "a time outside what a certificate can hold",
        ))
}

/// A PEM certificate together with the PEM private key it was issued for. Only returned where
/// this module made the key itself: the server certificate, and device certificates for
/// development and tests. Production devices use [`DeviceKey`] and a CSR instead.
#[derive(Clone)]
pub struct Credentials {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM. Write it with [`write_private_key`].
    pub key_pem: String,
}

impl Credentials {
    /// SHA-256 of the certificate's DER, hex: what operations print and compare.
    pub fn fingerprint(&self) -> Result<String, PkiError> {
        fingerprint(&self.cert_pem)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key, not even in a panic message.
        f.debug_struct("Credentials")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A CA that can issue certificates: its certificate and its signing key. Used twice, as the
/// device CA (signs client certificates) and as the central CA (signs the server
/// certificate); the roles differ only in what is issued, so one type serves both.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &fingerprint_der(&self.cert_der))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA with a fresh Ed25519 key. `common_name` says which CA it is
    /// ("skolebro device CA", "skolebro central CA"), for the people who read the chain.
    pub fn generate(common_name: &str, validity: Validity) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        validity.apply(&mut params)?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA that signs device client certificates.
    pub fn generate_device_ca(validity: Validity) -> Result<Self, PkiError> {
        Self::generate("skolebro device CA", validity)
    }

    /// The CA that signs central's server certificate; agents trust only this CA.
    pub fn generate_central_ca(validity: Validity) -> Result<Self, PkiError> {
        Self::generate("skolebro central CA", validity)
    }

    /// Loads a CA from its PEM certificate and PEM private key, as written by
    /// [`CertificateAuthority::cert_pem`] and [`CertificateAuthority::key_pem`]: operations
    /// and central keep the CA on disk between runs. Refuses a key that does not belong to
    /// the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| PkiError::Pem("certificate"))?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| PkiError::Pem("private key"))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|_| PkiError::BadCertificate)?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(CertificateAuthority {
            cert_pem: pem_of(&cert_der),
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM: what goes onto the stick (central CA) or into central's
    /// client verifier (device CA).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM, to store with [`write_private_key`].
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// SHA-256 of the CA certificate's DER, hex, for operations to print and compare.
    pub fn fingerprint(&self) -> String {
        fingerprint_der(&self.cert_der)
    }

    /// A server certificate and fresh Ed25519 key for central, valid for every name in
    /// `names` (DNS names, or IP addresses such as `127.0.0.1`). The first name is also the
    /// subject CN.
    pub fn issue_server(
        &self,
        names: &[&str],
        validity: Validity,
    ) -> Result<Credentials, PkiError> {
        let first = names
            .first()
            .ok_or_else(|| PkiError::InvalidServerName(String::new()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(first);
        for name in names {
            params.subject_alt_names.push(server_san(name)?);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf_common(&mut params, validity)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Credentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A device certificate together with a key made here. For the demo and tests only: a
    /// real device makes its own key and sends a CSR ([`CertificateAuthority::issue_from_csr`]),
    /// so its private key never exists anywhere else.
    pub fn issue_device(
        &self,
        device: &DeviceId,
        site: &SiteId,
        validity: Validity,
    ) -> Result<Credentials, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let params = self.device_params(device, site, validity)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Credentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a device certificate for the key in `csr_pem` (DESIGN decision 6). The caller,
    /// central's enrollment, has already decided from the spent token which device and site
    /// this is; the CSR contributes only its public key, and proves possession of it by its
    /// signature. A CSR that claims any other name (a CN other than `device`, a SAN other than
    /// the device's or site's URI), asks to be a CA, carries an extension a device certificate
    /// never has, or uses a key other than Ed25519 or ECDSA P-256 is refused. The CSR must
    /// name the device in its CN, so that a CSR from the wrong Pi is caught rather than
    /// silently certified under another name. Returns the certificate, PEM.
    pub fn issue_from_csr(
        &self,
        csr_pem: &str,
        device: &DeviceId,
        site: &SiteId,
        validity: Validity,
    ) -> Result<String, PkiError> {
        if csr_pem.len() > MAX_CSR_PEM_BYTES {
            return Err(PkiError::BadCsr(format!(
                "{} bytes, over the limit of {MAX_CSR_PEM_BYTES}",
                csr_pem.len()
            )));
        }
        let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|_| PkiError::Pem("certificate request"))?;
        // rcgen parses the request and verifies its signature.
        let csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                .map_err(|e| PkiError::BadCsr(e.to_string()))?;

        check_csr_key(&parsed.certification_request_info.subject_pki, &csr)?;
        check_csr_names(&parsed, &csr, device, site)?;
        if !matches!(csr.params.is_ca, IsCa::NoCa | IsCa::ExplicitNoCa) {
            return Err(PkiError::BadCsr("requests a CA certificate".into()));
        }

        let params = self.device_params(device, site, validity)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }

    fn device_params(
        &self,
        device: &DeviceId,
        site: &SiteId,
        validity: Validity,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(device.as_str());
        params.subject_alt_names = vec![
            SanType::URI(Ia5String::try_from(device_uri(device))?),
            SanType::URI(Ia5String::try_from(site_uri(site))?),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf_common(&mut params, validity)?;
        Ok(params)
    }

    fn leaf_common(
        &self,
        params: &mut CertificateParams,
        validity: Validity,
    ) -> Result<(), PkiError> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        validity.apply(params)
    }
}

/// A device's own TLS key, made on the Pi during enrollment. It never leaves the device: only
/// [`DeviceKey::csr`] does. Separate from the device's envelope signing key, so a TLS
/// handshake signature and an envelope signature can never be confused.
pub struct DeviceKey {
    key: KeyPair,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey").finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A fresh Ed25519 key (see the module doc for why Ed25519).
    pub fn generate() -> Result<DeviceKey, PkiError> {
        Ok(DeviceKey {
            key: KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
        })
    }

    /// Loads the key the agent stored at enrollment, to make a new CSR for renewal.
    pub fn from_pem(key_pem: &str) -> Result<DeviceKey, PkiError> {
        Ok(DeviceKey {
            key: KeyPair::from_pem(key_pem).map_err(|_| PkiError::Pem("private key"))?,
        })
    }

    /// The private key, PKCS#8 PEM, for the agent to store with [`write_private_key`] and to
    /// present in TLS with the certificate central returns.
    pub fn private_key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A CSR naming `device` in its CN and in a device URI SAN, signed by this key. It names
    /// no site: central decides the site from the enrollment token.
    pub fn csr(&self, device: &DeviceId) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(device.as_str());
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(device_uri(device))?)];
        Ok(params.serialize_request(&self.key)?.pem()?)
    }
}

/// A CA pair and server certificate for running central and agents on loopback: the demo,
/// end-to-end tests, a developer's machine. Production central certificates use the same
/// [`CertificateAuthority`] calls with real host names.
pub struct DevPki {
    /// Signs device certificates; central's client verifier trusts it.
    pub device_ca: CertificateAuthority,
    /// Signs the server certificate; agents trust only it.
    pub central_ca: CertificateAuthority,
    /// Central's server certificate for `localhost` and `127.0.0.1`.
    pub server: Credentials,
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki")
            .field("device_ca", &self.device_ca)
            .field("central_ca", &self.central_ca)
            .finish_non_exhaustive()
    }
}

/// Where [`DevPki::write_to`] put each file, and the fingerprints to print next to them.
#[derive(Debug, Clone)]
pub struct DevPkiFiles {
    pub device_ca_cert: PathBuf,
    pub device_ca_key: PathBuf,
    pub central_ca_cert: PathBuf,
    pub central_ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub device_ca_fingerprint: String,
    pub central_ca_fingerprint: String,
    pub server_fingerprint: String,
}

impl DevPki {
    /// File names inside the directory given to [`DevPki::write_to`].
    pub const DEVICE_CA_CERT: &'static str = "device-ca.pem";
    pub const DEVICE_CA_KEY: &'static str = "device-ca.key";
    pub const CENTRAL_CA_CERT: &'static str = "central-ca.pem";
    pub const CENTRAL_CA_KEY: &'static str = "central-ca.key";
    pub const SERVER_CERT: &'static str = "server.pem";
    pub const SERVER_KEY: &'static str = "server.key";

    /// Both CAs and a server certificate for `localhost` / `127.0.0.1`, all with `validity`,
    /// in memory.
    pub fn generate(validity: Validity) -> Result<DevPki, PkiError> {
        let device_ca = CertificateAuthority::generate_device_ca(validity)?;
        let central_ca = CertificateAuthority::generate_central_ca(validity)?;
        let server = central_ca.issue_server(&["localhost", "127.0.0.1"], validity)?;
        Ok(DevPki {
            device_ca,
            central_ca,
            server,
        })
    }

    /// Generates and writes a dev PKI into `dir` (created if missing) in one step, for a
    /// developer's loopback setup; `skolebro-provision init` makes the full platform folder.
    pub fn generate_dev(dir: &Path, validity: Validity) -> Result<DevPkiFiles, PkiError> {
        DevPki::generate(validity)?.write_to(dir)
    }

    /// Writes certificates (0644) and keys (0600) into `dir` under the `DevPki::*` names.
    /// Refuses to overwrite existing key files, so a second run cannot replace a CA that has
    /// already issued certificates.
    pub fn write_to(&self, dir: &Path) -> Result<DevPkiFiles, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = DevPkiFiles {
            device_ca_cert: dir.join(Self::DEVICE_CA_CERT),
            device_ca_key: dir.join(Self::DEVICE_CA_KEY),
            central_ca_cert: dir.join(Self::CENTRAL_CA_CERT),
            central_ca_key: dir.join(Self::CENTRAL_CA_KEY),
            server_cert: dir.join(Self::SERVER_CERT),
            server_key: dir.join(Self::SERVER_KEY),
            device_ca_fingerprint: self.device_ca.fingerprint(),
            central_ca_fingerprint: self.central_ca.fingerprint(),
            server_fingerprint: self.server.fingerprint()?,
        };
        write_private_key(&files.device_ca_key, &self.device_ca.key_pem())?;
        write_private_key(&files.central_ca_key, &self.central_ca.key_pem())?;
        write_private_key(&files.server_key, &self.server.key_pem)?;
        write_certificate(&files.device_ca_cert, self.device_ca.cert_pem())?;
        write_certificate(&files.central_ca_cert, self.central_ca.cert_pem())?;
        write_certificate(&files.server_cert, &self.server.cert_pem)?;
        Ok(files)
    }
}

/// Writes a private key PEM with mode 0600 (owner read/write only), flushed to disk. Never
/// replaces an existing file (the error is `Io` with kind `AlreadyExists`): losing a CA key
/// to a mistyped path would orphan every certificate it issued, and an existing file might
/// have looser permissions that a rewrite would keep.
pub fn write_private_key(path: &Path, key_pem: &str) -> Result<(), PkiError> {
    write_file(path, key_pem, 0o600, true)
}

/// Writes a certificate PEM (mode 0644; certificates are public) and returns its fingerprint
/// for the caller to print. Replaces an existing certificate: renewal does exactly that.
pub fn write_certificate(path: &Path, cert_pem: &str) -> Result<String, PkiError> {
    let fp = fingerprint(cert_pem)?;
    write_file(path, cert_pem, 0o644, false)?;
    Ok(fp)
}

fn write_file(path: &Path, contents: &str, mode: u32, create_new: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// SHA-256 of the DER of the first certificate in `cert_pem`, lowercase hex (64 characters):
/// what operations print when they make a CA or a stick, and compare when a device enrolls.
pub fn fingerprint(cert_pem: &str) -> Result<String, PkiError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| PkiError::Pem("certificate"))?;
    Ok(fingerprint_der(&der))
}

/// SHA-256 of a certificate's DER, lowercase hex: the same value as [`fingerprint`], for a
/// certificate already in DER, such as a TLS peer certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The device URI SAN for `device`.
pub fn device_uri(device: &DeviceId) -> String {
    format!("{DEVICE_URI_PREFIX}{device}")
}

/// The site URI SAN for `site`.
pub fn site_uri(site: &SiteId) -> String {
    format!("{SITE_URI_PREFIX}{site}")
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "skolebro");
    dn
}

fn server_san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // Reuse rustls' idea of a valid DNS name: a SAN it could never match is a mistake.
    match rustls::pki_types::ServerName::try_from(name) {
        Ok(rustls::pki_types::ServerName::DnsName(_)) => Ia5String::try_from(name)
            .map(SanType::DnsName)
            .map_err(|_| PkiError::InvalidServerName(name.to_owned())),
        _ => Err(PkiError::InvalidServerName(name.to_owned())),
    }
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| PkiError::Randomness)?;
    // Positive, and never a leading zero byte: a canonical 16-byte DER INTEGER.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

/// Accepts Ed25519 and ECDSA P-256 keys, and checks that the algorithm rcgen inferred from the
/// CSR's signature matches the key itself (rcgen infers it from the signature OID, which for
/// ECDSA does not name the curve).
fn check_csr_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    csr: &CertificateSigningRequestParams,
) -> Result<(), PkiError> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
    let expected: &SignatureAlgorithm = if spki.algorithm.algorithm == OID_SIG_ED25519 {
        &rcgen::PKCS_ED25519
    } else if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256)
    {
        &rcgen::PKCS_ECDSA_P256_SHA256
    } else {
        return Err(PkiError::UnsupportedKeyAlgorithm);
    };
    if csr.public_key.algorithm() != expected {
        return Err(PkiError::UnsupportedKeyAlgorithm);
    }
    Ok(())
}

fn check_csr_names(
    parsed: &x509_parser::certification_request::X509CertificationRequest<'_>,
    csr: &CertificateSigningRequestParams,
    device: &DeviceId,
    site: &SiteId,
) -> Result<(), PkiError> {
    let subject = &parsed.certification_request_info.subject;
    let mut common_names = subject.iter_common_name();
    let cn = match (common_names.next(), common_names.next()) {
        (Some(cn), None) => cn
            .as_str()
            .map_err(|_| PkiError::BadCsr("common name is not a string".into()))?,
        (None, _) => {
            return Err(PkiError::CsrNameMismatch {
                claimed: "no common name".into(),
                expected: device.to_string(),
            })
        }
        (Some(_), Some(_)) => {
            return Err(PkiError::CsrNameMismatch {
                claimed: "several common names".into(),
                expected: device.to_string(),
            })
        }
    };
    if cn != device.as_str() {
        return Err(PkiError::CsrNameMismatch {
            claimed: cn.to_owned(),
            expected: device.to_string(),
        });
    }
    let allowed = [device_uri(device), site_uri(site)];
    for san in &csr.params.subject_alt_names {
        let ok = matches!(san, SanType::URI(uri) if allowed.iter().any(|a| a == uri.as_str()));
        if !ok {
            return Err(PkiError::CsrNameMismatch {
                claimed: format!("{san:?}"),
                expected: allowed.join(", "),
            });
        }
    }
    Ok(())
}
