//! The OneRoster REST source over TLS as configured: a fake SAS on loopback behind rustls
//! (a certificate issued by a CA of the test's own), once requiring a client certificate
//! and once not. The agent trusts only the CA its `ca` names (no system roots), shows the
//! certificate `client_cert` and `client_key` name when set, and a pull that cannot
//! complete the handshake hands nothing on.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use skolebro_agent::config::RestSource;
use skolebro_agent::pull::{PullError, PullKind, Pulled, RestClient};
use skolebro_protocol::{DeviceId, SiteId};
use skolebro_provisioning::pki::{Credentials, DevPki, Validity};
use skolebro_provisioning::tls::{server_config_with, ServerOptions};
use skolebro_roster::reader::ReaderOptions;

/// One page of each collection: a school, a pupil, her homeroom and her enrollment in it.
async fn answer(request: Request<Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
    let school = json!({"sourcedId": "org-1", "type": "org"});
    let body = match request.uri().path() {
        "/token" => json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}),
        "/or/schools" => json!({"orgs": [{
            "sourcedId": "org-1", "type": "school", "name": "Fana skule", "identifier": "46505",
            "metadata": {"kommunenummer": "4601"}}]}),
        "/or/students" => json!({"users": [{
            "sourcedId": "elev-1", "status": "active", "role": "student", "givenName": "Kari",
            "familyName": "Nordmann", "orgs": [school]}]}),
        "/or/classes" => json!({"classes": [{
            "sourcedId": "klasse-1", "status": "active", "classType": "homeroom", "title": "5A",
            "grades": ["5"], "school": school}]}),
        "/or/enrollments" => json!({"enrollments": [{
            "sourcedId": "innmelding-1", "status": "active", "role": "student",
            "user": {"sourcedId": "elev-1", "type": "user"},
            "class": {"sourcedId": "klasse-1", "type": "class"}, "school": school}]}),
        _ => {
            let mut missing = Response::new(Body::empty());
            *missing.status_mut() = StatusCode::NOT_FOUND;
            return Ok(missing);
        }
    };
    let mut response = Response::new(Body::from(body.to_string()));
    response
        .headers_mut()
        .insert("x-total-count", hyper::header::HeaderValue::from(1));
    Ok(response)
}

/// Serves [`answer`] over TLS with the dev PKI's server certificate on a loopback port;
/// `mutual` requires a client certificate of the device CA.
async fn start(pki: &DevPki, mutual: bool) -> SocketAddr {
    let options = ServerOptions {
        allow_unauthenticated: !mutual,
        ..ServerOptions::default()
    };
    let config = server_config_with(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        pki.device_ca.cert_pem(),
        options,
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service_fn(answer))
                    .await;
            });
        }
    });
    addr
}

/// The source's settings: `https://` to `addr`, trusting the CA in `ca_pem`, showing
/// `identity` if given.
fn source(
    dir: &Path,
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Credentials>,
) -> RestSource {
    use std::os::unix::fs::PermissionsExt as _;
    let secret = dir.join("client.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = dir.join("sas-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let mut settings = format!(
        r#"base_url = "https://{addr}/or"
           token_url = "https://{addr}/token"
           client_id = "agent"
           client_secret_file = "{secret}"
           ca = "{ca}"
           attempts = 2
           retry_initial_ms = 10
           timeout_seconds = 10
        "#,
        secret = secret.display(),
        ca = ca.display(),
    );
    if let Some(identity) = identity {
        let (cert, key) = (dir.join("agent.pem"), dir.join("agent.key"));
        std::fs::write(&cert, &identity.cert_pem).unwrap();
        std::fs::write(&key, &identity.key_pem).unwrap();
        settings.push_str(&format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    toml::from_str(&settings).unwrap()
}

async fn pull(rest: &RestSource) -> Result<Pulled, PullError> {
    let mut client = RestClient::new(rest).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        client.pull(PullKind::Full, &ReaderOptions::default()),
    )
    .await
    .expect("the pull ended within a minute")
}

/// Whether the pull failed at its first request, the token's, with `why` in the TLS error.
fn refused_in_handshake(result: Result<Pulled, PullError>, why: &str) -> bool {
    matches!(&result, Err(PullError::GaveUp { what, last, .. })
        if what == "the token request" && last.contains(why))
}

#[tokio::test]
async fn a_pull_trusts_only_the_configured_ca_and_shows_the_client_certificate_when_one_is_set() {
    let validity = Validity::from_now(Duration::from_secs(86_400));
    let pki = DevPki::generate(validity).unwrap();
    let other = DevPki::generate(validity).unwrap();
    let identity = pki
        .device_ca
        .issue_device(
            &DeviceId::new("pi-fana").unwrap(),
            &SiteId::new("fana").unwrap(),
            validity,
        )
        .unwrap();
    let pinned = start(&pki, false).await;
    let mutual = start(&pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.central_ca.cert_pem();

    // Server-pinned: the SAS's CA is trusted, and no client certificate is needed.
    let pulled = pull(&source(dir.path(), pinned, ca, None)).await.unwrap();
    assert_eq!(pulled.export.roster.students.len(), 1);
    assert_eq!(pulled.export.roster.enrollments.len(), 1);
    // A certificate from any other CA is refused, though it names the right host.
    let elsewhere = other.central_ca.cert_pem();
    let refused = pull(&source(dir.path(), pinned, elsewhere, None)).await;
    assert!(refused_in_handshake(refused, "invalid peer certificate"));

    // Mutual: the SAS takes the agent's certificate, and turns away an agent without one.
    let pulled = pull(&source(dir.path(), mutual, ca, Some(&identity)))
        .await
        .unwrap();
    assert_eq!(pulled.export.roster.students.len(), 1);
    let refused = pull(&source(dir.path(), mutual, ca, None)).await;
    assert!(refused_in_handshake(refused, "CertificateRequired"));
}
