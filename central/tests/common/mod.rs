//! The fixture the in-process integration tests share: central started with `serve` on
//! loopback port 0, a SQLite store in a temporary folder, a dev PKI made at test time and
//! the device listener's mutual TLS configured from it. Each test binary (`mod common;`)
//! says with [`CentralOptions`] what it needs switched on (a batch limit, enrollment, a
//! release key, the consumer listener, the web interface) and keeps its own domain helpers,
//! often as further `impl Central` blocks, in its own file.

// Each test binary uses a different subset of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject as _;
use skolebro_central::oneroster::PublicUrl;
use skolebro_central::retention::RetentionPolicy;
use skolebro_central::store::{SqliteStore, Store};
use skolebro_central::ui::UiSettings;
use skolebro_central::{
    device_tls_config, serve, EnrollSettings, HttpLimits, ReleaseSettings, RunningServer,
    ServerParts,
};
use skolebro_protocol::{
    DeviceId, Gender, ReleaseVerifyingKey, SealingPrivateKey, SiteId, Student,
};
use skolebro_provisioning::{CertificateAuthority, DevPki, Validity};

/// The operator API client every fixture's central has a token for: its changes are
/// audited as `api:tests`.
pub(crate) const OPERATOR_CLIENT: &str = "tests";

/// What a test wants of the central it starts; [`Default`] is an ingest-only central with
/// a 16 MiB batch limit, enrollment disabled, no release key, and neither the consumer
/// listener nor the web interface, so each test names only what it depends on.
pub(crate) struct CentralOptions {
    /// `max_batch_bytes` of the device listener.
    pub max_batch_bytes: usize,
    /// Enrollment settings; `None` leaves them at [`EnrollSettings::default`] (disabled).
    pub enroll: Option<EnrollmentOptions>,
    /// The release key manifests must verify against; `None` refuses every manifest.
    pub release_key: Option<ReleaseVerifyingKey>,
    /// Whether central opens the consumer (OneRoster) listener on loopback.
    pub consumer_listener: bool,
    /// `consumer_public_url`: the base of the consumer API's links, else the `Host` asked.
    pub consumer_public_url: Option<PublicUrl>,
    /// Whether central opens the operator web interface on loopback.
    pub ui: bool,
    /// Central's sealing key: a fixed one by default, so envelopes are reproducible.
    pub sealing: SealingPrivateKey,
    /// Timeouts and connection cap of the plain HTTP listeners.
    pub http_limits: HttpLimits,
    /// `[privacy]`'s retention policy.
    pub retention: RetentionPolicy,
    /// Central's statement key; `None`: answers carry no statement.
    pub statement_key: Option<skolebro_protocol::StatementSigningKey>,
}

impl Default for CentralOptions {
    fn default() -> CentralOptions {
        CentralOptions {
            max_batch_bytes: 16 * 1024 * 1024,
            enroll: None,
            release_key: None,
            consumer_listener: false,
            consumer_public_url: None,
            ui: false,
            sealing: SealingPrivateKey::from_bytes([7; 32]),
            http_limits: HttpLimits::default(),
            retention: RetentionPolicy::default(),
            statement_key: None,
        }
    }
}

/// Enrollment options with the fixture's own device CA, which exists only once
/// [`CentralOptions::start`] has made the PKI: a test says whether central gets its key, not
/// which key.
pub(crate) struct EnrollmentOptions {
    /// Whether central holds the device CA key; without it enrollment answers 503.
    pub device_ca_key: bool,
    /// Lifetime of the certificates central issues.
    pub cert_lifetime: Duration,
    /// Enrollment requests allowed per peer address and minute.
    pub per_ip_per_minute: u32,
}

impl CentralOptions {
    /// Starts central in process with these options, every listener on `127.0.0.1:0`.
    pub(crate) async fn start(self) -> Central {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("central.db"))
                .await
                .expect("the store opens"),
        );
        let pki =
            DevPki::generate(Validity::from_now(Duration::from_secs(3600))).expect("a dev PKI");
        let tls = device_tls_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            pki.device_ca.cert_pem(),
        )
        .expect("a server TLS configuration");
        let enroll = match self.enroll {
            None => EnrollSettings::default(),
            Some(enrollment) => EnrollSettings {
                // Loaded from PEM, as `serve` loads it from `[tls] device_ca_key`.
                device_ca: enrollment.device_ca_key.then(|| {
                    Arc::new(
                        CertificateAuthority::from_pem(
                            pki.device_ca.cert_pem(),
                            &pki.device_ca.key_pem(),
                        )
                        .expect("the device CA loads"),
                    )
                }),
                cert_lifetime: enrollment.cert_lifetime,
                per_ip_per_minute: enrollment.per_ip_per_minute,
            },
        };
        let loopback = || "127.0.0.1:0".parse().expect("an address");
        let running = serve(ServerParts {
            store: Arc::clone(&store),
            tls,
            sealing_key: self.sealing.clone(),
            device_listen: loopback(),
            admin_listen: loopback(),
            consumer_listen: self.consumer_listener.then(loopback),
            consumer_public_url: self.consumer_public_url.clone(),
            ui: self.ui.then(|| UiSettings {
                listen: loopback(),
                // Plain HTTP on loopback: a Secure cookie would never be sent back.
                secure_cookie: false,
                session_lifetime: Duration::from_secs(3600),
            }),
            http_limits: self.http_limits,
            max_batch_bytes: self.max_batch_bytes,
            enroll,
            releases: ReleaseSettings {
                key: self.release_key,
                dir: dir.path().join("releases"),
                statement_key: self.statement_key.clone(),
            },
            retention: self.retention.clone(),
        })
        .await
        .expect("the server starts");
        let operator_token =
            skolebro_central::operator_auth::create(store.as_ref(), "cli:tests", OPERATOR_CLIENT)
                .await
                .expect("an operator API token");
        let mut bearer =
            reqwest::header::HeaderValue::try_from(format!("Bearer {}", operator_token.reveal()))
                .expect("a header value");
        bearer.set_sensitive(true);
        let admin = reqwest::Client::builder()
            .default_headers(
                [(reqwest::header::AUTHORIZATION, bearer)]
                    .into_iter()
                    .collect(),
            )
            .build()
            .expect("an operator API client");
        Central {
            running,
            store,
            pki,
            sealing: self.sealing,
            http: reqwest::Client::new(),
            admin,
            operator_token: operator_token.reveal().to_owned(),
            dir,
        }
    }
}

/// Central running in process, with what the tests reach past its listeners for: the store
/// to check what was kept, the PKI to issue device certificates, the sealing key to seal
/// envelopes to it, and the temporary folder that holds the database and the releases.
pub(crate) struct Central {
    /// The server; [`Central::stop`] ends it. A test that still needs the folder afterwards
    /// (to read a log in it) moves this out and shuts it down itself, so `Central` must not
    /// implement `Drop`.
    pub running: RunningServer,
    pub store: Arc<dyn Store>,
    pub pki: DevPki,
    pub sealing: SealingPrivateKey,
    /// A plain HTTP client for the consumer listener, and for the operator listener without
    /// a token.
    pub http: reqwest::Client,
    /// A plain HTTP client for the operator listener that sends the token of client
    /// [`OPERATOR_CLIENT`], made with `operator_auth::create` when central started.
    pub admin: reqwest::Client,
    /// That token's text.
    pub operator_token: String,
    /// Kept alive as long as central: the database and the releases live in it.
    pub dir: tempfile::TempDir,
}

impl Central {
    /// A URL on the device (mutual TLS) listener.
    pub(crate) fn device_url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}{path}",
            self.running.device_addr.port()
        )
    }

    /// A URL on the operator (plain HTTP) listener.
    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    /// A URL on the consumer listener; panics if the options did not ask for it.
    pub(crate) fn consumer_url(&self, path: &str) -> String {
        let addr = self.running.consumer_addr.expect("a consumer listener");
        format!("http://{addr}{path}")
    }

    /// The folder central keeps release artifacts and manifests in.
    pub(crate) fn releases_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("releases")
    }

    /// A mutual-TLS client for `device` of `site`, with a certificate from the device CA
    /// valid for `validity`, trusting central's CA: the device side of every ingest test.
    pub(crate) fn device_client(
        &self,
        device: &DeviceId,
        site: &SiteId,
        validity: Validity,
    ) -> reqwest::Client {
        let credentials = self
            .pki
            .device_ca
            .issue_device(device, site, validity)
            .expect("a device certificate");
        skolebro_provisioning::tls::client(
            &credentials.cert_pem,
            &credentials.key_pem,
            self.pki.central_ca.cert_pem(),
        )
        .expect("a device client")
    }

    /// A client without a certificate that trusts central's CA: a device before enrollment,
    /// or anyone else who can reach the device listener.
    pub(crate) fn anonymous(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(
            self.pki.central_ca.cert_pem().as_bytes(),
        ) {
            roots.add(cert.expect("a CA certificate")).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
            .unwrap()
    }

    /// Shuts the server down and waits for its listeners to close, then removes the folder.
    pub(crate) async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Milliseconds since the Unix epoch, as an envelope header's creation time.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as i64)
        .unwrap_or(0)
}

/// A pupil with only what a roster requires: enough for tests about transport, not data.
pub(crate) fn student(key: &str, given_name: &str) -> Student {
    Student {
        source_key: key.into(),
        national_id: None,
        username: None,
        given_name: given_name.into(),
        middle_name: None,
        family_name: "Nordmann".into(),
        birth_date: None,
        gender: Gender::Unknown,
        email: None,
    }
}

/// A loopback port free at the time of asking, for listeners a test cannot bind to port 0
/// itself (a configuration file or another process names the port).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
