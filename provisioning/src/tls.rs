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
//! or years ahead, and every certificate would look "not yet valid" or "expired". The agent's
//! client therefore checks central's certificate against a [`CertificateClock`], asked at
//! every handshake: once the clock is synced, against the real time (an expired certificate
//! is refused); before that, the system clock is ignored and the real time is only known to
//! be no earlier than a floor (build time, last time seen good), so a certificate is accepted
//! if it is valid at some time from the floor on ([`TimeReading::AtLeast`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
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
/// admission check, and requires a client certificate.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Let clients without a certificate complete the handshake, so a device that has none
    /// yet can enroll over the same listener. A certificate that *is* presented is verified
    /// exactly as before; the server must then refuse every request of an anonymous
    /// connection except enrollment (central answers 401).
    pub allow_unauthenticated: bool,
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
            .field("allow_unauthenticated", &self.allow_unauthenticated)
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

/// [`server_config`] with CRLs, an admission check, or anonymous clients allowed
/// ([`ServerOptions`]).
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
    if options.allow_unauthenticated {
        builder = builder.allow_unauthenticated();
    }
    let verifier = Arc::new(DeviceClientVerifier {
        inner: builder.build()?,
        admit: options.admit,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(server_cert_chain_pem)?,
            private_key(server_key_pem)?,
        )?;
    // Stateless session tickets: a device reconnecting within the ticket's lifetime (rustls:
    // 6 hours, keys rotated) resumes without a full handshake, whichever of thousands of
    // devices it is; the default in-memory cache holds only 256 sessions. A resumed
    // connection carries the client certificate the session began with, and central checks
    // revocation per connection, after the handshake, so resumption skips no check.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// What the agent knows about the time when it checks central's certificate (DESIGN
/// decision 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeReading {
    /// The system clock is synced: certificates are checked against this time, so an expired
    /// one is refused.
    Synced(SystemTime),
    /// The clock is not synced and may read anything: the real time is only known to be no
    /// earlier than this floor. A certificate is accepted if it is valid at some time from the
    /// floor on: one that expired before the floor is refused, one that starts after it is
    /// not held against the device.
    AtLeast(SystemTime),
}

/// Where [`TimeReading`]s come from. Asked at every handshake, because the agent's client
/// lives for days and its clock may sync in the meantime.
pub trait CertificateClock: Send + Sync + fmt::Debug {
    fn reading(&self) -> TimeReading;
}

/// The system clock, taken as synced: for machines whose clock is known good (central's
/// tests, operations' tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl CertificateClock for SystemClock {
    fn reading(&self) -> TimeReading {
        TimeReading::Synced(SystemTime::now())
    }
}

/// A clock that is never synced, with a fixed floor: what [`client_builder`]'s `time_floor`
/// means.
#[derive(Debug, Clone, Copy)]
struct FixedFloor(SystemTime);

impl CertificateClock for FixedFloor {
    fn reading(&self) -> TimeReading {
        TimeReading::AtLeast(self.0)
    }
}

/// The device's certificate and private key (PEM), presented to central in the handshake.
#[derive(Clone, Copy)]
pub struct ClientIdentity<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

impl fmt::Debug for ClientIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// The agent's rustls configuration: TLS 1.3 only, presenting the device certificate, and
/// trusting only `server_ca_pem` (no system roots). `time_floor` (see the module doc): `None`
/// checks central's certificate against the system clock as it is; `Some(floor)` treats the
/// clock as unsynced with that floor. Returned by value because reqwest takes it so; wrap it
/// in an `Arc` for tokio-rustls.
pub fn client_config(
    identity_cert_pem: &str,
    identity_key_pem: &str,
    server_ca_pem: &str,
    time_floor: Option<SystemTime>,
) -> Result<ClientConfig, TlsError> {
    pinned_client_config(
        Some(ClientIdentity {
            cert_pem: identity_cert_pem,
            key_pem: identity_key_pem,
        }),
        server_ca_pem,
        floor_clock(time_floor),
    )
}

/// The agent's rustls configuration with its own clock: TLS 1.3 only, trusting only
/// `server_ca_pem`, checking central's certificate against `clock`, and presenting
/// `identity` if there is one. Enrollment connects without an identity (it has no
/// certificate yet; central lets only `POST /v1/enroll` through without one), pinned to the
/// CA on the stick.
pub fn pinned_client_config(
    identity: Option<ClientIdentity<'_>>,
    server_ca_pem: &str,
    clock: Arc<dyn CertificateClock>,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        WebPkiServerVerifier::builder_with_provider(root_store(server_ca_pem)?, provider.clone())
            .build()?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClockedServerVerifier { inner, clock }));
    let config = match identity {
        Some(identity) => builder.with_client_auth_cert(
            certificates(identity.cert_pem)?,
            private_key(identity.key_pem)?,
        )?,
        None => builder.with_no_client_auth(),
    };
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
    pinned_client_builder(
        Some(ClientIdentity {
            cert_pem: identity_cert_pem,
            key_pem: identity_key_pem,
        }),
        server_ca_pem,
        floor_clock(time_floor),
    )
}

/// A reqwest builder preconfigured with [`pinned_client_config`] and HTTPS only.
pub fn pinned_client_builder(
    identity: Option<ClientIdentity<'_>>,
    server_ca_pem: &str,
    clock: Arc<dyn CertificateClock>,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let config = pinned_client_config(identity, server_ca_pem, clock)?;
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

/// The validity period (not before, not after) of the first certificate in `cert_pem`: the
/// agent schedules renewal from it and shows it in `status`.
pub fn certificate_validity(cert_pem: &str) -> Result<(SystemTime, SystemTime), TlsError> {
    let der = certificates(cert_pem)?
        .into_iter()
        .next()
        .ok_or(TlsError::Pem("certificate"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| TlsError::BadCertificate)?;
    let validity = cert.validity();
    Ok((
        x509_time(validity.not_before.timestamp()),
        x509_time(validity.not_after.timestamp()),
    ))
}

/// Whether the first certificate in `cert_pem` certifies the public key of `key_pem`. The
/// agent checks a certificate central returned before storing it beside its key, so a mixed
/// up answer cannot leave it with a pair that fails every handshake.
pub fn certificate_matches_key(cert_pem: &str, key_pem: &str) -> Result<bool, TlsError> {
    let der = certificates(cert_pem)?
        .into_iter()
        .next()
        .ok_or(TlsError::Pem("certificate"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| TlsError::BadCertificate)?;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|_| TlsError::Pem("private key"))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// The device and site the first certificate in `cert_pem` names: the agent checks that a
/// certificate central returned is for the device it asked for.
pub fn certificate_identity(cert_pem: &str) -> Result<DeviceIdentity, TlsError> {
    let der = certificates(cert_pem)?
        .into_iter()
        .next()
        .ok_or(TlsError::Pem("certificate"))?;
    DeviceIdentity::from_peer_certificate(&der)
}

fn floor_clock(time_floor: Option<SystemTime>) -> Arc<dyn CertificateClock> {
    match time_floor {
        Some(floor) => Arc::new(FixedFloor(floor)),
        None => Arc::new(SystemClock),
    }
}

/// A certificate time (seconds since the epoch, possibly before it) as a `SystemTime`.
fn x509_time(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(after) => SystemTime::UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// WebPKI verification of central's certificate against the pinned CA, at the time the
/// [`CertificateClock`] allows (see [`TimeReading`]) instead of the time rustls passes in.
#[derive(Debug)]
struct ClockedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    clock: Arc<dyn CertificateClock>,
}

impl ClockedServerVerifier {
    /// The time to verify the chain at: the synced time, or for an unsynced clock the
    /// latest of the floor and the start of every certificate presented, so only a
    /// certificate that ended before the floor fails on time.
    fn time_for(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> UnixTime {
        let at = match self.clock.reading() {
            TimeReading::Synced(now) => now,
            TimeReading::AtLeast(floor) => std::iter::once(end_entity)
                .chain(intermediates)
                .filter_map(|der| {
                    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
                    Some(x509_time(cert.validity().not_before.timestamp()))
                })
                .fold(floor, SystemTime::max),
        };
        unix_time(at)
    }
}

impl ServerCertVerifier for ClockedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let at = self.time_for(end_entity, intermediates);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
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
        self.inner.client_auth_mandatory()
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

/// Session resumption between the agent's and central's configurations, in memory.
#[cfg(test)]
mod resumption_tests {
    use super::*;
    use crate::pki::{DevPki, Validity};
    use rustls::{ClientConnection, HandshakeKind, ServerConnection};
    use skolebro_protocol::{DeviceId, SiteId};

    const DAY: Duration = Duration::from_secs(86_400);

    /// Runs one handshake to the end over in-memory buffers, and the identity central sees.
    fn handshake(
        client: &Arc<ClientConfig>,
        server: &Arc<ServerConfig>,
    ) -> (HandshakeKind, DeviceIdentity) {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(Arc::clone(client), name).unwrap();
        let mut server = ServerConnection::new(Arc::clone(server)).unwrap();
        let mut wire = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        // The tickets come after the handshake; the client keeps them for the next one.
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        let kind = client.handshake_kind().unwrap();
        (kind, DeviceIdentity::from_connection(&server).unwrap())
    }

    #[test]
    fn a_device_resumes_after_hundreds_of_others_connected_and_keeps_its_identity() {
        let validity = Validity::from_now(30 * DAY);
        let pki = DevPki::generate(validity).unwrap();
        let device = DeviceId::new("pi-fana").unwrap();
        let site = SiteId::new("fana").unwrap();
        let credentials = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .unwrap();
        let server = server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            pki.device_ca.cert_pem(),
        )
        .unwrap();
        // Each config keeps its own sessions, as each device of a fleet does.
        let device_config = || {
            Arc::new(
                client_config(
                    &credentials.cert_pem,
                    &credentials.key_pem,
                    pki.central_ca.cert_pem(),
                    None,
                )
                .unwrap(),
            )
        };
        let first_device = device_config();
        let (first, identity) = handshake(&first_device, &server);
        assert_eq!(first, HandshakeKind::Full);
        assert_eq!(identity.device, device);
        // More devices connect than a server-side session cache holds (rustls: 256).
        for _ in 0..300 {
            handshake(&device_config(), &server);
        }
        let (again, identity) = handshake(&first_device, &server);
        assert_eq!(again, HandshakeKind::Resumed);
        assert_eq!((identity.device, identity.site), (device, site));
    }
}

/// The clock rules of the agent's verifier (DESIGN decision 8), checked on central's
/// certificate directly: an unsynced clock years off either way does not brick the device,
/// a synced clock refuses an expired certificate.
#[cfg(test)]
mod client_clock_tests {
    use super::*;
    use crate::pki::{DevPki, Validity};

    const DAY: Duration = Duration::from_secs(86_400);
    const YEARS: Duration = Duration::from_secs(5 * 365 * 86_400);

    fn verify(pki: &DevPki, reading: TimeReading) -> Result<ServerCertVerified, rustls::Error> {
        #[derive(Debug)]
        struct Fixed(TimeReading);
        impl CertificateClock for Fixed {
            fn reading(&self) -> TimeReading {
                self.0
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(
            root_store(pki.central_ca.cert_pem()).unwrap(),
            provider,
        )
        .build()
        .unwrap();
        let verifier = ClockedServerVerifier {
            inner,
            clock: Arc::new(Fixed(reading)),
        };
        let ee = certificates(&pki.server.cert_pem).unwrap().remove(0);
        verifier.verify_server_cert(
            &ee,
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        )
    }

    #[test]
    fn an_unsynced_clock_years_off_either_way_is_ignored_and_a_synced_one_refuses_expiry() {
        let now = SystemTime::now();
        let pki = DevPki::generate(Validity::from_now(30 * DAY)).unwrap();
        // Unsynced, floor a little in the past (build time): the system clock, whatever it
        // says, plays no part.
        assert!(verify(&pki, TimeReading::AtLeast(now - 10 * DAY)).is_ok());
        // Unsynced with a floor before the certificate starts: still accepted.
        assert!(verify(&pki, TimeReading::AtLeast(now - YEARS)).is_ok());
        // Synced: the real time decides.
        assert!(verify(&pki, TimeReading::Synced(now)).is_ok());
        assert!(verify(&pki, TimeReading::Synced(now + YEARS)).is_err());
        assert!(verify(&pki, TimeReading::Synced(now - YEARS)).is_err());
        // Unsynced, but the floor says the certificate is over: refused.
        assert!(verify(&pki, TimeReading::AtLeast(now + YEARS)).is_err());
    }

    #[test]
    fn validity_and_key_match_are_read_from_the_certificate() {
        let validity = Validity::from_now(30 * DAY);
        let pki = DevPki::generate(validity).unwrap();
        let (from, to) = certificate_validity(&pki.server.cert_pem).unwrap();
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(from), secs(validity.not_before()));
        assert_eq!(secs(to), secs(validity.not_after()));
        assert!(certificate_matches_key(&pki.server.cert_pem, &pki.server.key_pem).unwrap());
        assert!(!certificate_matches_key(&pki.server.cert_pem, &pki.central_ca.key_pem()).unwrap());
    }
}
