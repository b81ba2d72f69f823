//! Mutual TLS on loopback with real rustls: a small tokio-rustls server built from
//! `tls::server_config` answers each request with the identity it read from the client
//! certificate, and reqwest clients built from `tls::client` (or deliberately broken ones)
//! talk to it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::CertificateError;
use skolebro_protocol::{DeviceId, SiteId};
use skolebro_provisioning::pki::{
    self, CertificateAuthority, DevPki, DeviceKey, PkiError, Validity,
};
use skolebro_provisioning::tls::{self, DeviceIdentity, ServerOptions, TlsError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn year() -> Validity {
    Validity::from_now(365 * DAY)
}

fn device() -> DeviceId {
    DeviceId::new("pi-0042").unwrap()
}

fn site() -> SiteId {
    SiteId::new("oslo.sentrum-vgs").unwrap()
}

/// A loopback server for one test; it lives until the test's runtime ends.
struct Server {
    addr: SocketAddr,
    /// Why the server refused handshakes, in order: lets a test check that a client was
    /// turned away for the reason it is about (rustls' error variants, not wording).
    refusals: Arc<Mutex<Vec<rustls::Error>>>,
}

impl Server {
    /// Waits briefly for the server side of a failed handshake to be recorded.
    async fn refusal(&self) -> Option<rustls::Error> {
        for _ in 0..100 {
            if let Some(e) = self.refusals.lock().first() {
                return Some(e.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

/// Every connection whose handshake succeeds gets one HTTP/1.1 response whose body is
/// "<device> <site>" as read from the client certificate.
async fn start_server(config: Arc<rustls::ServerConfig>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let acceptor = TlsAcceptor::from(config);
    let record = refusals.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let mut stream = match acceptor.accept(tcp).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        if let Some(e) = rustls_error(&e) {
                            record.lock().push(e);
                        }
                        return;
                    }
                };
                let body = match DeviceIdentity::from_connection(stream.get_ref().1) {
                    Ok(id) => format!("{} {}", id.device, id.site),
                    Err(e) => format!("no identity: {e}"),
                };
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { addr, refusals }
}

/// The rustls error somewhere in an error's chain. `io::Error` hides its payload from
/// `source()`, so it is unwrapped explicitly.
fn rustls_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found.clone());
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

async fn start_dev_server(pki: &DevPki) -> Server {
    let config = tls::server_config(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        pki.device_ca.cert_pem(),
    )
    .unwrap();
    start_server(config).await
}

async fn get(client: &reqwest::Client, addr: SocketAddr) -> Result<String, reqwest::Error> {
    client
        .get(format!("https://{addr}/whoami"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// A rustls client config for the dev PKI's server that presents no certificate at all.
fn config_without_client_cert(server_ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test]
async fn a_device_certificate_from_the_device_ca_connects_and_is_identified_as_its_device_and_site()
{
    let pki = DevPki::generate(year()).unwrap();
    let creds = pki
        .device_ca
        .issue_device(&device(), &site(), year())
        .unwrap();
    let server = start_dev_server(&pki).await;

    let client = tls::client(&creds.cert_pem, &creds.key_pem, pki.central_ca.cert_pem()).unwrap();

    assert_eq!(
        get(&client, server.addr).await.unwrap(),
        "pi-0042 oslo.sentrum-vgs"
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = DevPki::generate(year()).unwrap();
    let server = start_dev_server(&pki).await;

    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config_without_client_cert(pki.central_ca.cert_pem()))
        .build()
        .unwrap();

    assert!(get(&client, server.addr).await.is_err());
    let refusal = server.refusal().await;
    assert!(
        matches!(refusal, Some(rustls::Error::NoCertificatesPresented)),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn a_device_certificate_from_another_ca_is_refused() {
    // The rogue CA even has the same name as the real one, so webpki finds the real CA as
    // issuer and then refuses the signature; a differently named CA gives UnknownIssuer.
    let pki = DevPki::generate(year()).unwrap();
    let rogue_ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let creds = rogue_ca.issue_device(&device(), &site(), year()).unwrap();
    let server = start_dev_server(&pki).await;

    let client = tls::client(&creds.cert_pem, &creds.key_pem, pki.central_ca.cert_pem()).unwrap();

    assert!(get(&client, server.addr).await.is_err());
    let refusal = server.refusal().await;
    assert!(
        matches!(
            refusal,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            ))
        ),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn an_expired_device_certificate_is_refused() {
    let pki = DevPki::generate(year()).unwrap();
    let now = SystemTime::now();
    let expired = Validity::between(now - 2 * DAY, now - DAY).unwrap();
    let creds = pki
        .device_ca
        .issue_device(&device(), &site(), expired)
        .unwrap();
    let server = start_dev_server(&pki).await;

    let client = tls::client(&creds.cert_pem, &creds.key_pem, pki.central_ca.cert_pem()).unwrap();

    assert!(get(&client, server.addr).await.is_err());
    let refusal = server.refusal().await;
    assert!(
        matches!(
            refusal,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn a_certificate_issued_from_the_devices_csr_connects_with_the_key_that_never_left_the_device(
) {
    let pki = DevPki::generate(year()).unwrap();
    let server = start_dev_server(&pki).await;

    // On the Pi: make a key, send only the CSR.
    let key = DeviceKey::generate().unwrap();
    let csr = key.csr(&device()).unwrap();
    // At central: enrollment has decided device and site from the spent token.
    let cert_pem = pki
        .device_ca
        .issue_from_csr(&csr, &device(), &site(), year())
        .unwrap();
    // Back on the Pi.
    let client = tls::client(&cert_pem, &key.private_key_pem(), pki.central_ca.cert_pem()).unwrap();

    assert_eq!(
        get(&client, server.addr).await.unwrap(),
        "pi-0042 oslo.sentrum-vgs"
    );
}

#[tokio::test]
async fn a_csr_with_an_ecdsa_p256_key_is_accepted_too() {
    let pki = DevPki::generate(year()).unwrap();
    let server = start_dev_server(&pki).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pi-0042");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    let cert_pem = pki
        .device_ca
        .issue_from_csr(&csr, &device(), &site(), year())
        .unwrap();
    let client = tls::client(&cert_pem, &key.serialize_pem(), pki.central_ca.cert_pem()).unwrap();

    assert_eq!(
        get(&client, server.addr).await.unwrap(),
        "pi-0042 oslo.sentrum-vgs"
    );
}

#[test]
fn a_csr_from_another_device_is_refused() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let csr = DeviceKey::generate()
        .unwrap()
        .csr(&DeviceId::new("pi-0099").unwrap())
        .unwrap();

    let err = ca
        .issue_from_csr(&csr, &device(), &site(), year())
        .unwrap_err();

    assert!(matches!(err, PkiError::CsrNameMismatch { .. }), "{err}");
}

#[test]
fn a_csr_claiming_another_site_or_a_host_name_is_refused() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    for extra in [
        "urn:skolebro:site:bergen-vgs".to_owned(),
        "central.example.org".to_owned(),
    ] {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pi-0042");
        let san = if extra.starts_with("urn:") {
            rcgen::SanType::URI(extra.clone().try_into().unwrap())
        } else {
            rcgen::SanType::DnsName(extra.clone().try_into().unwrap())
        };
        params.subject_alt_names = vec![san];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();

        let err = ca
            .issue_from_csr(&csr, &device(), &site(), year())
            .unwrap_err();

        assert!(
            matches!(err, PkiError::CsrNameMismatch { .. }),
            "{extra}: {err}"
        );
    }
}

#[test]
fn a_csr_whose_signature_does_not_verify_is_refused() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let csr_pem = DeviceKey::generate().unwrap().csr(&device()).unwrap();
    let mut der =
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
    // The last byte belongs to the signature.
    *der.last_mut().unwrap() ^= 1;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));

    let err = ca
        .issue_from_csr(&tampered, &device(), &site(), year())
        .unwrap_err();

    assert!(matches!(err, PkiError::BadCsr(_)), "{err}");
}

#[tokio::test]
async fn a_device_the_admission_check_refuses_cannot_connect() {
    let pki = DevPki::generate(year()).unwrap();
    let lost = pki
        .device_ca
        .issue_device(&device(), &site(), year())
        .unwrap();
    let other_device = DeviceId::new("pi-0043").unwrap();
    let other = pki
        .device_ca
        .issue_device(&other_device, &site(), year())
        .unwrap();
    let lost_fingerprint = lost.fingerprint().unwrap();
    let options = ServerOptions {
        admit: Some(Arc::new(move |_id: &DeviceIdentity, fp: &str| {
            fp != lost_fingerprint
        })),
        ..ServerOptions::default()
    };
    let config = tls::server_config_with(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        pki.device_ca.cert_pem(),
        options,
    )
    .unwrap();
    let server = start_server(config).await;

    let lost_client =
        tls::client(&lost.cert_pem, &lost.key_pem, pki.central_ca.cert_pem()).unwrap();
    let other_client =
        tls::client(&other.cert_pem, &other.key_pem, pki.central_ca.cert_pem()).unwrap();

    assert!(get(&lost_client, server.addr).await.is_err());
    let refusal = server.refusal().await;
    assert!(
        matches!(
            refusal,
            Some(rustls::Error::InvalidCertificate(CertificateError::Revoked))
        ),
        "{refusal:?}"
    );
    assert_eq!(
        get(&other_client, server.addr).await.unwrap(),
        "pi-0043 oslo.sentrum-vgs"
    );
}

#[tokio::test]
async fn the_agent_trusts_only_the_central_ca_it_was_given() {
    let pki = DevPki::generate(year()).unwrap();
    let creds = pki
        .device_ca
        .issue_device(&device(), &site(), year())
        .unwrap();
    let server = start_dev_server(&pki).await;
    let impostor_ca = CertificateAuthority::generate_central_ca(year()).unwrap();

    let client = tls::client(&creds.cert_pem, &creds.key_pem, impostor_ca.cert_pem()).unwrap();

    let err = get(&client, server.addr).await.unwrap_err();
    let cause = rustls_error(&err);
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_pi_whose_clock_is_behind_connects_once_given_a_time_floor() {
    let mut pki = DevPki::generate(year()).unwrap();
    let now = SystemTime::now();
    // As the Pi sees it after a boot without network time: central's certificate starts
    // tomorrow.
    let from_tomorrow = Validity::between(now + DAY, now + 30 * DAY).unwrap();
    pki.server = pki
        .central_ca
        .issue_server(&["localhost", "127.0.0.1"], from_tomorrow)
        .unwrap();
    let creds = pki
        .device_ca
        .issue_device(&device(), &site(), year())
        .unwrap();
    let server = start_dev_server(&pki).await;

    let without_floor =
        tls::client(&creds.cert_pem, &creds.key_pem, pki.central_ca.cert_pem()).unwrap();
    let with_floor = tls::client_builder(
        &creds.cert_pem,
        &creds.key_pem,
        pki.central_ca.cert_pem(),
        Some(now + 2 * DAY),
    )
    .unwrap()
    .build()
    .unwrap();

    let err = get(&without_floor, server.addr).await.unwrap_err();
    let cause = rustls_error(&err);
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            ))
        ),
        "{err:?}"
    );
    assert_eq!(
        get(&with_floor, server.addr).await.unwrap(),
        "pi-0042 oslo.sentrum-vgs"
    );
}

#[tokio::test]
async fn central_refuses_a_client_that_offers_only_tls_1_2() {
    let pki = DevPki::generate(year()).unwrap();
    let creds = pki
        .device_ca
        .issue_device(&device(), &site(), year())
        .unwrap();
    let server = start_dev_server(&pki).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.central_ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let tls12_only = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(creds.cert_pem.as_bytes()).unwrap()],
        rustls::pki_types::PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls12_only)
        .build()
        .unwrap();

    assert!(get(&client, server.addr).await.is_err());
    let refusal = server.refusal().await;
    assert!(
        matches!(refusal, Some(rustls::Error::PeerIncompatible(_))),
        "{refusal:?}"
    );
}

#[test]
fn a_ca_loaded_back_from_its_pem_files_issues_certificates_that_identify_the_device() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(reloaded.fingerprint(), ca.fingerprint());

    let creds = reloaded.issue_device(&device(), &site(), year()).unwrap();
    let der = CertificateDer::from_pem_slice(creds.cert_pem.as_bytes()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new({
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
                .unwrap();
            roots
        }),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    rustls::server::danger::ClientCertVerifier::verify_client_cert(
        verifier.as_ref(),
        &der,
        &[],
        rustls::pki_types::UnixTime::now(),
    )
    .unwrap();
    assert_eq!(
        DeviceIdentity::from_peer_certificate(&der).unwrap(),
        DeviceIdentity {
            device: device(),
            site: site()
        }
    );
}

#[test]
fn a_ca_key_that_does_not_belong_to_the_certificate_is_refused() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let other = CertificateAuthority::generate_device_ca(year()).unwrap();

    let err = CertificateAuthority::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();

    assert!(matches!(err, PkiError::KeyMismatch), "{err}");
}

#[test]
fn a_server_certificate_carries_no_device_identity() {
    let pki = DevPki::generate(year()).unwrap();
    let der = CertificateDer::from_pem_slice(pki.server.cert_pem.as_bytes()).unwrap();

    let err = DeviceIdentity::from_peer_certificate(&der).unwrap_err();

    assert!(matches!(err, TlsError::NoIdentity(_)), "{err}");
}

#[test]
fn dev_pki_key_files_are_owner_only_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let files = DevPki::generate_dev(dir.path(), year()).unwrap();

    for key in [
        &files.device_ca_key,
        &files.central_ca_key,
        &files.server_key,
    ] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let cert_mode = std::fs::metadata(&files.server_cert)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(cert_mode & 0o600, 0o600);

    let again = DevPki::generate_dev(dir.path(), year()).unwrap_err();
    assert!(
        matches!(&again, PkiError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{again}"
    );
    // The files on disk still belong together: the CA on disk reloads.
    let ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(&files.device_ca_cert).unwrap(),
        &std::fs::read_to_string(&files.device_ca_key).unwrap(),
    )
    .unwrap();
    assert_eq!(ca.fingerprint(), files.device_ca_fingerprint);
}

#[test]
fn fingerprints_are_the_sha256_of_the_certificate_der_in_hex() {
    let pki = DevPki::generate(year()).unwrap();
    let der = CertificateDer::from_pem_slice(pki.server.cert_pem.as_bytes()).unwrap();

    let fp = pki::fingerprint(&pki.server.cert_pem).unwrap();

    assert_eq!(fp.len(), 64);
    assert!(fp
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(fp, pki::fingerprint_der(&der));
    assert_ne!(fp, pki.central_ca.fingerprint());
}

#[test]
fn a_validity_that_ends_before_it_starts_is_refused() {
    let now = SystemTime::now();
    assert!(matches!(
        Validity::between(now, now - DAY),
        Err(PkiError::Validity(_))
    ));
}

#[test]
fn a_validity_beyond_what_a_certificate_can_hold_is_an_error_not_a_panic() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let far = Validity::from_now(Duration::from_secs(20_000 * 365 * 24 * 60 * 60));

    let err = ca.issue_device(&device(), &site(), far).unwrap_err();

    assert!(matches!(err, PkiError::Validity(_)), "{err}");
}

#[test]
fn an_oversized_csr_is_refused_before_it_is_parsed() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let huge = "A".repeat(pki::MAX_CSR_PEM_BYTES + 1);

    let err = ca
        .issue_from_csr(&huge, &device(), &site(), year())
        .unwrap_err();

    assert!(matches!(err, PkiError::BadCsr(_)), "{err}");
}

#[test]
fn a_device_certificate_follows_the_profile_central_relies_on() {
    let ca = CertificateAuthority::generate_device_ca(year()).unwrap();
    let first = ca.issue_device(&device(), &site(), year()).unwrap();
    let key = DeviceKey::generate().unwrap();
    let csr = key.csr(&device()).unwrap();
    let renewed_a = ca.issue_from_csr(&csr, &device(), &site(), year()).unwrap();
    let renewed_b = ca.issue_from_csr(&csr, &device(), &site(), year()).unwrap();

    let der = CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ED25519
    );
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cn, ["pi-0042"]);
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        sans,
        [
            "URI(urn:skolebro:device:pi-0042)",
            "URI(urn:skolebro:site:oslo.sentrum-vgs)"
        ]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());

    // Serial numbers are random, not derived from the key: re-issuing for one key differs.
    let serial = |pem: &str| {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.raw_serial().to_vec()
    };
    assert_eq!(serial(&renewed_a).len(), 16);
    assert_ne!(serial(&renewed_a), serial(&renewed_b));
}
