//! The mutual-TLS plumbing between the agent's uplink and central's ingest.
//!
//! In the data flow this is the last hop: the outbox hands sealed envelopes to the uplink,
//! which posts them with the reqwest client from [`client`]; central accepts the connection
//! with the rustls configuration from [`server_config`] and learns *who* is sending from
//! [`DeviceIdentity::from_peer_certificate`] before it reads a byte of the body. The envelope
//! is still verified on its own (DESIGN decision 2); TLS decides who may talk at all, and
//! central checks that the envelope's device equals the identity of the connection.
//!
//! Both sides speak TLS 1.3 only, with the ring provider, and trust exactly one CA each: the
//! server trusts the device CA for clients, the agent trusts the central CA for the server
//! (never the system roots, so a public CA, a corporate TLS-inspecting proxy, or anyone who
//! can get a public certificate for central's host name cannot stand in for central).
//!
//! A Pi has no real-time clock (DESIGN decision 8): until NTP syncs it may think it is 1970,
//! and every certificate would look "not yet valid". [`client_builder`] therefore takes a
//! time floor (build time, last time seen good); certificate validity is checked against the
//! later of the system clock and the floor.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::time_provider::TimeProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use skolebro_protocol::envelope::InvalidId;
use skolebro_protocol::{DeviceId, SiteId};

use crate::pki::{fingerprint_der, DEVICE_URI_PREFIX, SITE_URI_PREFIX};

/// Everything that can go wrong building a TLS configuration or reading an identity. Kept
/// apart from [`crate::pki::PkiError`]: these errors come from configuration files and from
/// peers, not from issuing.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The input holds no PEM block of the expected kind, or a malformed one.
    #[error("no usable PEM {0} found in the input")]
    Pem(&'static str),
    /// rustls refused the configuration (e.g. the key does not match the certificate, or a
    /// CA certificate it cannot parse).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. an unparseable CRL).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// reqwest could not build the HTTP client.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The peer certificate is not parseable X.509.
    #[error("peer certificate could not be parsed")]
    BadCertificate,
    /// The peer certificate does not carry exactly one device and one site in our URI SANs,
    /// or its CN disagrees with the device SAN.
    #[error("peer certificate carries no usable device identity: {0}")]
    NoIdentity(&'static str),
    /// A device or site id in the certificate is not a valid id.
    #[error("peer certificate names an invalid id: {0}")]
    InvalidId(#[from] InvalidId),
}

/// Who is on the other end of a connection to central: the device and the site its
/// certificate was issued for. Central uses it to check the envelope's header and to route
/// the payload, and never trusts an id that arrives any other way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceIdentity {
    pub device: DeviceId,
    pub site: SiteId,
}

impl DeviceIdentity {
    /// Reads the identity out of a client certificate (DER) that rustls has already verified:
    /// exactly one `urn:skolebro:device:` and one `urn:skolebro:site:` URI SAN, each a valid
    /// id, and a CN, if present, equal to the device. This only *reads*; it does not verify
    /// the chain, which is the verifier's job. Anything ambiguous is refused rather than
    /// guessed at, since the result decides whose data a batch writes.
    pub fn from_peer_certificate(der: &[u8]) -> Result<DeviceIdentity, TlsError> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| TlsError::BadCertificate)?;
        if !rest.is_empty() {
            return Err(TlsError::BadCertificate);
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|_| TlsError::BadCertificate)?
            .ok_or(TlsError::NoIdentity("no subject alternative names"))?;

        let mut device = None;
        let mut site = None;
        for name in &san.value.general_names {
            let x509_parser::extensions::GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
                if device.replace(DeviceId::new(id)?).is_some() {
                    return Err(TlsError::NoIdentity("more than one device URI"));
                }
            } else if let Some(id) = uri.strip_prefix(SITE_URI_PREFIX) {
                if site.replace(SiteId::new(id)?).is_some() {
                    return Err(TlsError::NoIdentity("more than one site URI"));
                }
            }
        }
        let device = device.ok_or(TlsError::NoIdentity("no device URI"))?;
        let site = site.ok_or(TlsError::NoIdentity("no site URI"))?;

        for cn in cert.subject().iter_common_name() {
            if cn.as_str().ok() != Some(device.as_str()) {
                return Err(TlsError::NoIdentity(
                    "common name differs from the device URI",
                ));
            }
        }
        Ok(DeviceIdentity { device, site })
    }

    /// The identity of the client on an established server connection (for central's
    /// handler, e.g. from `tokio_rustls::server::TlsStream::get_ref().1`).
    pub fn from_connection(conn: &rustls::ServerConnection) -> Result<DeviceIdentity, TlsError> {
        let cert = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or(TlsError::NoIdentity("no client certificate"))?;
        DeviceIdentity::from_peer_certificate(cert)
    }
}

/// Decides during the handshake whether a device with a valid certificate may connect. It
/// gets the identity and the SHA-256 fingerprint (hex) of the presented certificate, so
/// central can revoke a lost device by id, or one certificate of a re-enrolled device by
/// fingerprint without locking out its replacement. It runs inside the TLS handshake, so it
/// must be quick and must not block: look up an in-memory set that central refreshes.
pub type AdmitDevice = Arc<dyn Fn(&DeviceIdentity, &str) -> bool + Send + Sync>;

/// Optional parts of central's TLS configuration; [`Default`] gives neither CRLs nor an
/// admission check.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Certificate revocation lists (PEM) issued by the device CA, checked for the client
    /// certificate by rustls' WebPKI verifier. This is where CRLs go once operations publish
    /// them.
    pub crls_pem: Vec<String>,
    /// A revocation check by identity; see [`AdmitDevice`].
    pub admit: Option<AdmitDevice>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("crls", &self.crls_pem.len())
            .field("admit", &self.admit.is_some())
            .finish()
    }
}

/// Central's rustls configuration: TLS 1.3 only, the given server chain and key, and a
/// client certificate REQUIRED and verified against `device_ca_pem` (chain, validity, and
/// the clientAuth usage). A certificate that verifies but carries no device identity is
/// refused during the handshake too, so every accepted connection has a
/// [`DeviceIdentity`].
pub fn server_config(
    server_cert_chain_pem: &str,
    server_key_pem: &str,
    device_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(
        server_cert_chain_pem,
        server_key_pem,
        device_ca_pem,
        ServerOptions::default(),
    )
}

/// [`server_config`] with CRLs and an admission check.
pub fn server_config_with(
    server_cert_chain_pem: &str,
    server_key_pem: &str,
    device_ca_pem: &str,
    options: ServerOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(device_ca_pem)?;
    let crls = options
        .crls_pem
        .iter()
        .map(|pem| {
            CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
                .map_err(|_| TlsError::Pem("certificate revocation list"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    let verifier = Arc::new(DeviceClientVerifier {
        inner: builder.build()?,
        admit: options.admit,
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(server_cert_chain_pem)?,
            private_key(server_key_pem)?,
        )?;
    Ok(Arc::new(config))
}

/// The agent's rustls configuration: TLS 1.3 only, presenting the device certificate, and
/// trusting only `server_ca_pem` (no system roots). `time_floor` (see the module doc) is the
/// earliest time the server's certificate chain is checked against; `None` uses the system
/// clock as it is. Returned by value because reqwest takes it so; wrap it in
/// an `Arc` for tokio-rustls.
pub fn client_config(
    identity_cert_pem: &str,
    identity_key_pem: &str,
    server_ca_pem: &str,
    time_floor: Option<SystemTime>,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clock = Arc::new(FlooredClock {
        floor: time_floor.map(unix_time),
    });
    let config = ClientConfig::builder_with_details(provider, clock)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(root_store(server_ca_pem)?)
        .with_client_auth_cert(
            certificates(identity_cert_pem)?,
            private_key(identity_key_pem)?,
        )?;
    Ok(config)
}

/// A reqwest builder preconfigured with [`client_config`] and HTTPS only (a request that
/// would go out in clear text is refused rather than sent without the client identity). The
/// caller adds timeouts and the like, then builds.
pub fn client_builder(
    identity_cert_pem: &str,
    identity_key_pem: &str,
    server_ca_pem: &str,
    time_floor: Option<SystemTime>,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let config = client_config(
        identity_cert_pem,
        identity_key_pem,
        server_ca_pem,
        time_floor,
    )?;
    // reqwest's own rustls setup panics without a process-wide provider; ours brings its
    // provider along, but installing ring once keeps any other client in the process working.
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true))
}

/// The agent's HTTP client for central: [`client_builder`] without a time floor, built.
pub fn client(
    identity_cert_pem: &str,
    identity_key_pem: &str,
    server_ca_pem: &str,
) -> Result<reqwest::Client, TlsError> {
    Ok(client_builder(identity_cert_pem, identity_key_pem, server_ca_pem, None)?.build()?)
}

fn root_store(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem("certificate"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("certificate"));
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsError::Pem("private key"))
}

fn unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    )
}

/// The clock the agent checks certificates against: never earlier than the floor.
#[derive(Debug)]
struct FlooredClock {
    floor: Option<UnixTime>,
}

impl TimeProvider for FlooredClock {
    fn current_time(&self) -> Option<UnixTime> {
        let now = unix_time(SystemTime::now());
        Some(match self.floor {
            Some(floor) if floor > now => floor,
            _ => now,
        })
    }
}

/// WebPKI verification against the device CA, then the identity check and the admission
/// hook, so that central never completes a handshake with a client it would refuse anyway.
struct DeviceClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    admit: Option<AdmitDevice>,
}

impl fmt::Debug for DeviceClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceClientVerifier")
            .field("inner", &self.inner)
            .field("admit", &self.admit.is_some())
            .finish()
    }
}

impl ClientCertVerifier for DeviceClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let identity = DeviceIdentity::from_peer_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        })?;
        if let Some(admit) = &self.admit {
            if !admit(&identity, &fingerprint_der(end_entity)) {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
