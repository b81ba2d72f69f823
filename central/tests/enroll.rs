//! Enrollment and the certificate lifecycle over real TLS on loopback: central runs
//! in-process on port 0 with a SQLite store in a temporary folder and a device CA made at
//! test time; tokens are registered through the operator API as `skolebro-provision stick`
//! registers them; devices make their own keys and send only a CSR, as the agent does. Every
//! refusal is checked to change nothing.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_central::store::enrolled_device_id;
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, Entity, EntityDelta, Header, Payload, Record,
    SiteId, SiteSecret,
};
use skolebro_provisioning::DeviceKey;

use common::{student, Central, CentralOptions, EnrollmentOptions};

const SITE: &str = "4601-12345";

impl Central {
    /// Central with enrollment enabled, at the given rate limit.
    async fn start(per_ip_per_minute: u32) -> Central {
        Central::start_with(true, per_ip_per_minute).await
    }

    async fn start_with(with_ca_key: bool, per_ip_per_minute: u32) -> Central {
        CentralOptions {
            enroll: Some(EnrollmentOptions {
                device_ca_key: with_ca_key,
                cert_lifetime: Duration::from_secs(3600),
                per_ip_per_minute,
            }),
            ..CentralOptions::default()
        }
        .start()
        .await
    }

    /// Registers `token` for the test site through the operator API, expiring `expires_in`
    /// seconds from now (negative: already expired). Returns its id.
    async fn register_token(&self, token: &str, expires_in: i64) -> String {
        let expires = now_unix().saturating_add_signed(expires_in);
        let response = self
            .admin
            .post(self.admin_url("/admin/tokens"))
            .json(&json!({
                "token_sha256": hex::encode(Sha256::digest(token.as_bytes())),
                "site": SITE,
                "site_name": "Bjølsen skole",
                "expires_unix": expires,
            }))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(response.status(), StatusCode::CREATED);
        let answer: Value = response.json().await.expect("a JSON answer");
        answer["id"].as_str().expect("an id").to_owned()
    }

    async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .admin
            .get(self.admin_url(path))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON answer")
    }

    /// How many enrollment tokens `GET /admin/tokens` lists.
    async fn token_count(&self) -> usize {
        let tokens = self.admin_get("/admin/tokens").await;
        tokens.as_array().expect("a list of tokens").len()
    }

    /// `POST /admin/tokens` with `body`: the status and the JSON answer.
    async fn post_token(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .admin
            .post(self.admin_url("/admin/tokens"))
            .json(body)
            .send()
            .await
            .expect("the admin listener answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn admin_post(&self, path: &str) -> StatusCode {
        self.admin
            .post(self.admin_url(path))
            .send()
            .await
            .expect("the admin listener answers")
            .status()
    }

    /// A device with a certificate issued at enrollment (or renewal) and its TLS key.
    fn client(&self, cert_pem: &str, key: &DeviceKey) -> reqwest::Client {
        skolebro_provisioning::tls::client(
            cert_pem,
            &key.private_key_pem(),
            self.pki.central_ca.cert_pem(),
        )
        .expect("a device client")
    }
}

/// A Pi before enrollment: its own envelope key and TLS key, made on the device.
struct Pi {
    signing: DeviceSigningKey,
    tls_key: DeviceKey,
}

impl Pi {
    fn new(seed: u8) -> Pi {
        Pi {
            signing: DeviceSigningKey::from_bytes([seed; 32]),
            tls_key: DeviceKey::generate().expect("a TLS key"),
        }
    }

    /// The id central will give it (docs/API.md): the agent computes it for its CSR.
    fn device(&self) -> DeviceId {
        enrolled_device_id(&site(), &self.signing.verifying_key()).expect("a device id")
    }

    fn enroll_body(&self, token: &str) -> Value {
        json!({
            "token": token,
            "csr_pem": self.tls_key.csr(&self.device()).expect("a CSR"),
            "signing_key": hex::encode(self.signing.verifying_key().to_bytes()),
        })
    }

    /// Posts an enrollment without a client certificate.
    async fn enroll(&self, central: &Central, token: &str) -> (StatusCode, Value) {
        post_json(
            &central.anonymous(),
            &central.device_url("/v1/enroll"),
            &self.enroll_body(token),
        )
        .await
    }

    /// A sealed delta of two students, the first envelope of this device's chain.
    fn first_batch(&self, secret: &SiteSecret, central: &Central) -> Vec<u8> {
        let students = [student("s1", "Kari"), student("s2", "Ola")];
        let mut delta = EntityDelta {
            renames: Vec::new(),
            upserts: students
                .iter()
                .map(|s| (secret.handle(Entity::Student, s.key()), s.clone()))
                .collect(),
            deletes: Vec::new(),
        };
        delta.sort();
        let payload = Payload::Delta(Delta {
            students: delta,
            ..Delta::default()
        });
        let header = Header::chained(
            &ChainHead::genesis(),
            self.device(),
            site(),
            now_unix() * 1000,
            payload.kind(),
        );
        seal(
            header,
            &payload,
            &central.sealing.public_key(),
            &self.signing,
        )
        .expect("the envelope seals")
        .to_bytes()
    }
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("central answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

async fn post_batch(client: &reqwest::Client, central: &Central, body: Vec<u8>) -> StatusCode {
    client
        .post(central.device_url("/v1/batches"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("central answers")
        .status()
}

async fn heartbeat(client: &reqwest::Client, central: &Central) -> (StatusCode, Value) {
    post_json(
        client,
        &central.device_url("/v1/heartbeat"),
        &json!({"version": "0.1.0", "state": "healthy"}),
    )
    .await
}

fn site() -> SiteId {
    SiteId::new(SITE).unwrap()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn token(n: u8) -> String {
    hex::encode([n; 32])
}

fn site_secret(answer: &Value) -> SiteSecret {
    let bytes: [u8; 32] = hex::decode(answer["site_secret"].as_str().expect("a site secret"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    SiteSecret::from_bytes(bytes)
}

/// Asserts that nothing was enrolled: no device, no site secret, the token unused.
async fn nothing_enrolled(central: &Central) {
    assert_eq!(central.store.list_devices().await.unwrap(), Vec::new());
    assert_eq!(central.store.site_secret(&site()).await.unwrap(), None);
    let tokens = central.admin_get("/admin/tokens").await;
    for token in tokens.as_array().expect("a list") {
        assert_eq!(token["used_by"], Value::Null, "{token}");
    }
}

#[tokio::test]
async fn a_device_enrolled_with_a_valid_token_delivers_batches_with_its_certificate() {
    let central = Central::start(10).await;
    let id = central.register_token(&token(1), 3600).await;
    let pi = Pi::new(1);

    let (status, answer) = pi.enroll(&central, &token(1)).await;

    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["device"], pi.device().as_str());
    assert_eq!(answer["site"], SITE);
    assert!(answer["not_after_unix"].as_u64().unwrap() > now_unix() + 3500);
    // This central has no statement key, so the device learns none.
    assert!(answer.get("statement_key").is_none(), "{answer}");
    let secret = site_secret(&answer);
    assert_eq!(
        central.store.site_secret(&site()).await.unwrap(),
        Some(secret.clone())
    );

    let client = central.client(answer["cert_pem"].as_str().unwrap(), &pi.tls_key);
    let batch = pi.first_batch(&secret, &central);
    assert_eq!(post_batch(&client, &central, batch).await, StatusCode::OK);
    let counts = central.store.counts(&site()).await.unwrap();
    assert_eq!(counts.students, 2);

    let tokens = central.admin_get("/admin/tokens").await;
    assert_eq!(tokens[0]["id"], id);
    assert_eq!(tokens[0]["site"], SITE);
    assert_eq!(tokens[0]["used_by"], pi.device().as_str());
    assert_eq!(tokens[0]["revoked"], false);
    let devices = central.admin_get("/admin/devices").await;
    assert_eq!(devices["devices"][0]["device"], pi.device().as_str());
    assert_eq!(devices["devices"][0]["site"], SITE);
    assert_eq!(devices["devices"][0]["revoked"], false);
    assert_eq!(devices["devices"][0]["last_batch_seq"], 1);
    central.stop().await;
}

#[tokio::test]
async fn a_token_used_by_a_second_device_is_refused_and_changes_nothing() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;
    let first = Pi::new(1);
    let (status, enrolled) = first.enroll(&central, &token(1)).await;
    assert_eq!(status, StatusCode::OK, "{enrolled}");
    let tokens_before = central.admin_get("/admin/tokens").await;

    let second = Pi::new(2);
    let (status, answer) = second.enroll(&central, &token(1)).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "token_used");
    assert_eq!(central.store.device(&second.device()).await.unwrap(), None);
    assert_eq!(central.store.list_devices().await.unwrap().len(), 1);
    assert_eq!(central.admin_get("/admin/tokens").await, tokens_before);
    assert_eq!(
        central.store.site_secret(&site()).await.unwrap(),
        Some(site_secret(&enrolled))
    );
    // The first device again, as if it retried: the token is spent for it too.
    let (status, answer) = first.enroll(&central, &token(1)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "token_used");
    central.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refused_and_changes_nothing() {
    let central = Central::start(10).await;
    central.register_token(&token(1), -60).await;

    let (status, answer) = Pi::new(1).enroll(&central, &token(1)).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "token_expired");
    nothing_enrolled(&central).await;
    central.stop().await;
}

#[tokio::test]
async fn an_unknown_token_is_refused_and_changes_nothing() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;

    let (status, answer) = Pi::new(1).enroll(&central, &token(2)).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "token_unknown");
    nothing_enrolled(&central).await;
    central.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_changes_nothing() {
    let central = Central::start(10).await;
    let id = central.register_token(&token(1), 3600).await;
    assert_eq!(
        central
            .admin_post(&format!("/admin/tokens/{id}/revoke"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        central
            .admin_post("/admin/tokens/0123456789abcdef/revoke")
            .await,
        StatusCode::NOT_FOUND
    );

    let (status, answer) = Pi::new(1).enroll(&central, &token(1)).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "token_revoked");
    assert_eq!(central.admin_get("/admin/tokens").await[0]["revoked"], true);
    nothing_enrolled(&central).await;
    central.stop().await;
}

#[tokio::test]
async fn a_csr_for_another_device_is_refused_and_leaves_the_token_usable() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;
    let pi = Pi::new(1);
    let mut body = pi.enroll_body(&token(1));
    let stranger = DeviceId::new("pi-stranger").unwrap();
    body["csr_pem"] = json!(pi.tls_key.csr(&stranger).unwrap());

    let (status, answer) = post_json(
        &central.anonymous(),
        &central.device_url("/v1/enroll"),
        &body,
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "bad_request");
    nothing_enrolled(&central).await;
    let (status, _) = pi.enroll(&central, &token(1)).await;
    assert_eq!(status, StatusCode::OK, "the token is still good");
    central.stop().await;
}

#[tokio::test]
async fn a_revoked_device_is_refused_on_its_next_connection() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;
    let pi = Pi::new(1);
    let (status, answer) = pi.enroll(&central, &token(1)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let cert_pem = answer["cert_pem"].as_str().unwrap().to_owned();
    let client = central.client(&cert_pem, &pi.tls_key);
    assert_eq!(heartbeat(&client, &central).await.0, StatusCode::OK);

    let path = format!("/admin/devices/{}/revoke", pi.device());
    assert_eq!(central.admin_post(&path).await, StatusCode::NO_CONTENT);
    assert_eq!(
        central.admin_post("/admin/devices/pi-nobody/revoke").await,
        StatusCode::NOT_FOUND
    );

    // A new connection, as after a restart of the agent.
    let client = central.client(&cert_pem, &pi.tls_key);
    let (status, answer) = heartbeat(&client, &central).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "device_revoked");
    let batch = pi.first_batch(&site_secret_of(&central).await, &central);
    assert_eq!(
        post_batch(&client, &central, batch).await,
        StatusCode::FORBIDDEN
    );
    let csr = pi.tls_key.csr(&pi.device()).unwrap();
    let (status, answer) = post_json(
        &client,
        &central.device_url("/v1/renew"),
        &json!({"csr_pem": csr}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "device_revoked");
    assert_eq!(central.store.counts(&site()).await.unwrap().students, 0);
    let devices = central.admin_get("/admin/devices").await;
    assert_eq!(devices["devices"][0]["revoked"], true);
    central.stop().await;
}

async fn site_secret_of(central: &Central) -> SiteSecret {
    central
        .store
        .site_secret(&site())
        .await
        .unwrap()
        .expect("the site has a secret")
}

#[tokio::test]
async fn renewal_returns_a_new_certificate_that_works() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;
    let pi = Pi::new(1);
    let (status, answer) = pi.enroll(&central, &token(1)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let secret = site_secret(&answer);
    let client = central.client(answer["cert_pem"].as_str().unwrap(), &pi.tls_key);

    // A fresh TLS key, as a device rotating its key would make.
    let new_key = DeviceKey::generate().unwrap();
    let (status, renewed) = post_json(
        &client,
        &central.device_url("/v1/renew"),
        &json!({"csr_pem": new_key.csr(&pi.device()).unwrap()}),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{renewed}");
    let cert_pem = renewed["cert_pem"].as_str().unwrap();
    assert_ne!(cert_pem, answer["cert_pem"].as_str().unwrap());
    assert!(renewed["not_after_unix"].as_u64().unwrap() > now_unix() + 3500);
    let renewed_client = central.client(cert_pem, &new_key);
    let batch = pi.first_batch(&secret, &central);
    assert_eq!(
        post_batch(&renewed_client, &central, batch).await,
        StatusCode::OK
    );

    // Without a certificate there is nothing to renew.
    let (status, answer) = post_json(
        &central.anonymous(),
        &central.device_url("/v1/renew"),
        &json!({"csr_pem": new_key.csr(&pi.device()).unwrap()}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "client_certificate_required");
    central.stop().await;
}

#[tokio::test]
async fn enrollment_is_rate_limited_per_address_with_retry_after() {
    let central = Central::start(2).await;
    let pi = Pi::new(1);
    for _ in 0..2 {
        let (status, answer) = pi.enroll(&central, &token(9)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(answer["error"], "token_unknown");
    }

    let response = central
        .anonymous()
        .post(central.device_url("/v1/enroll"))
        .json(&pi.enroll_body(&token(9)))
        .send()
        .await
        .expect("central answers");

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "rate_limited");
    central.stop().await;
}

#[tokio::test]
async fn without_the_device_ca_key_enrollment_is_disabled() {
    let central = Central::start_with(false, 10).await;
    central.register_token(&token(1), 3600).await;

    let (status, answer) = Pi::new(1).enroll(&central, &token(1)).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"], "enrollment_disabled");
    nothing_enrolled(&central).await;
    central.stop().await;
}

#[tokio::test]
async fn the_operator_api_refuses_malformed_and_duplicate_tokens() {
    let central = Central::start(10).await;
    central.register_token(&token(1), 3600).await;
    let post = |body: Value| {
        let request = central
            .admin
            .post(central.admin_url("/admin/tokens"))
            .json(&body);
        async move { request.send().await.expect("answers").status() }
    };
    let hash = hex::encode(Sha256::digest(token(1).as_bytes()));
    let valid = json!({"token_sha256": hash, "site": SITE, "site_name": "x", "expires_unix": 1});

    assert_eq!(post(valid.clone()).await, StatusCode::CONFLICT);
    let mut short = valid.clone();
    short["token_sha256"] = json!("abcd");
    assert_eq!(post(short).await, StatusCode::BAD_REQUEST);
    let mut long_site = valid.clone();
    long_site["site"] = json!("s".repeat(60));
    long_site["token_sha256"] = json!(hex::encode([3u8; 32]));
    assert_eq!(post(long_site).await, StatusCode::BAD_REQUEST);
    assert_eq!(central.token_count().await, 1);
    central.stop().await;
}

#[tokio::test]
async fn a_tokens_schools_are_registered_with_its_site_and_belong_to_no_other_site() {
    let central = Central::start(10).await;
    let school = json!({"kommunenummer": "4601", "skolenummer": "46505",
                        "organisasjonsnummer": null, "name": "Bjølsen skole"});
    let body = |n: u8, site: &str, schools: Value| {
        json!({"token_sha256": hex::encode(Sha256::digest(token(n).as_bytes())),
               "site": site, "site_name": "Bjølsen skole", "expires_unix": now_unix() + 60,
               "schools": schools})
    };

    let (status, _) = central.post_token(&body(1, SITE, json!([school]))).await;
    assert_eq!(status, StatusCode::CREATED);
    let registered = central.store.site_schools(&site()).await.unwrap();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].to_string(), "4601/46505=Bjølsen skole");

    // Another site's stick naming the same school: refused, and no token for it.
    let (status, answer) = central
        .post_token(&body(2, "4602-777", json!([school])))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "school_elsewhere");
    let (status, answer) = central
        .post_token(&body(
            3,
            "4602-777",
            json!([{"kommunenummer": "46",
        "skolenummer": "777", "organisasjonsnummer": null, "name": "Ny skole"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_token");
    assert_eq!(central.token_count().await, 1);
    let audit = central.store.audit_log(10).await.unwrap();
    assert!(audit
        .iter()
        .any(|line| line.action == "create_token" && line.detail.contains("4601/46505")));
    central.stop().await;
}
