//! Central's ingest over real mutual TLS on loopback: the server runs in-process on port 0
//! with a SQLite store in a temporary folder, devices get certificates from a dev PKI, and
//! envelopes are sealed exactly as the agent seals them. Every refusal is checked to leave
//! the store untouched. Enrollment has its own tests (`enroll.rs`).

mod common;

use std::time::{Duration, SystemTime};

use common::{now_ms, student, Central, CentralOptions};

use reqwest::StatusCode;
use serde_json::{json, Value};
use skolebro_central::store::Counts;
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, Entity, EntityDelta, Header, Payload, Record,
    Roster, School, SealingPrivateKey, Seq, SiteId, SiteSchool, SiteSecret, Student,
};
use skolebro_provisioning::{DevPki, Validity};

const SITE: &str = "skole-46505";

impl Central {
    async fn start() -> Central {
        CentralOptions::default().start().await
    }

    async fn start_with_limit(max_batch_bytes: usize) -> Central {
        CentralOptions {
            max_batch_bytes,
            ..CentralOptions::default()
        }
        .start()
        .await
    }

    /// A device with a certificate from the device CA, registered in the store with the
    /// site's secret.
    async fn enroll(&self, device: &str) -> Device {
        let device = self.device(device, Validity::from_now(Duration::from_secs(3600)));
        self.store
            .set_site_secret(&device.site, &device.secret)
            .await
            .expect("the site secret is stored");
        self.store
            .register_device(&device.id, &device.site, &device.signing.verifying_key())
            .await
            .expect("the device is registered");
        device
    }

    /// A device with a certificate from the device CA, not registered.
    fn device(&self, device: &str, validity: Validity) -> Device {
        let id = DeviceId::new(device).unwrap();
        let site = SiteId::new(SITE).unwrap();
        let client = self.device_client(&id, &site, validity);
        Device {
            signing: DeviceSigningKey::from_bytes(seed(device)),
            id,
            site,
            secret: SiteSecret::from_bytes([0xa1; 32]),
            client,
            head: ChainHead::genesis(),
            central: self.sealing.clone(),
        }
    }

    async fn counts(&self) -> Counts {
        self.store
            .counts(&SiteId::new(SITE).unwrap())
            .await
            .expect("counts")
    }

    async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .admin
            .get(self.admin_url(path))
            .send()
            .await
            .expect("the admin listener answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }
}

fn seed(name: &str) -> [u8; 32] {
    let mut seed = [0x5a; 32];
    for (at, byte) in name.bytes().enumerate().take(32) {
        seed[at] = byte;
    }
    seed
}

struct Device {
    id: DeviceId,
    site: SiteId,
    signing: DeviceSigningKey,
    secret: SiteSecret,
    client: reqwest::Client,
    /// The head of what this device has sealed so far.
    head: ChainHead,
    central: SealingPrivateKey,
}

impl Device {
    /// Seals `payload` as the next envelope of this device's chain and advances the chain.
    fn seal_next(&mut self, payload: &Payload) -> Vec<u8> {
        let head = self.head;
        let envelope = self.seal_at(&head, payload);
        self.head = envelope.0;
        envelope.1
    }

    /// Seals `payload` as if the chain stood at `head`; returns the head after it and the
    /// bytes.
    fn seal_at(&self, head: &ChainHead, payload: &Payload) -> (ChainHead, Vec<u8>) {
        let header = Header::chained(
            head,
            self.id.clone(),
            self.site.clone(),
            now_ms() as u64,
            payload.kind(),
        );
        let envelope = seal(header, payload, &self.central.public_key(), &self.signing)
            .expect("the envelope seals");
        (envelope.next_head(), envelope.to_bytes())
    }

    fn students(&self, students: &[Student]) -> Payload {
        let mut delta = EntityDelta {
            renames: Vec::new(),
            upserts: students
                .iter()
                .map(|student| {
                    (
                        self.secret.handle(Entity::Student, student.key()),
                        student.clone(),
                    )
                })
                .collect(),
            deletes: Vec::new(),
        };
        delta.sort();
        Payload::Delta(Delta {
            students: delta,
            ..Delta::default()
        })
    }

    async fn post(&self, central: &Central, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(central.device_url("/v1/batches"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("central answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn heartbeat(&self, central: &Central) -> (StatusCode, Value) {
        let response = self
            .client
            .post(central.device_url("/v1/heartbeat"))
            .json(&json!({
                "version": "0.1.0", "state": "healthy", "outbox_depth": 0, "outbox_bytes": 0,
                "oldest_unacked_age_s": null, "last_export_unix_ms": 1764000000000u64,
                "deviations": {"errors": 0, "warnings": 1}, "held": null
            }))
            .send()
            .await
            .expect("central answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }
}

fn two_students() -> Vec<Student> {
    vec![student("s1", "Kari"), student("s2", "Ola")]
}

fn school(kommune: &str, skolenummer: &str, name: &str) -> School {
    School {
        skolenummer: skolenummer.into(),
        organisasjonsnummer: None,
        kommunenummer: Some(kommune.into()),
        fylkesnummer: Some(kommune[..2].into()),
        name: name.into(),
    }
}

/// A snapshot of `schools` and two students.
fn snapshot_of(schools: Vec<School>) -> Payload {
    Payload::Snapshot(Roster {
        schools,
        students: two_students(),
        ..Roster::default()
    })
}

#[tokio::test]
async fn a_batch_naming_a_school_outside_the_devices_site_is_forbidden_and_stores_nothing() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let own: SiteSchool = "4602/777=Ny skole".parse().unwrap();
    central
        .store
        .register_schools(&device.site, &[own], skolebro_central::store::Timestamp(1))
        .await
        .unwrap();
    let foreign = snapshot_of(vec![
        school("4602", "777", "Ny skole"),
        school("4601", "46500", "Fana skule"),
    ]);
    let body = device.seal_next(&foreign);

    let (status, answer) = device.post(&central, body).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "wrong_school");
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("46500") && detail.contains("Fana skule"),
        "{detail}"
    );
    assert_eq!(central.counts().await, Counts::default());
    assert_eq!(
        central.store.chain_head(&device.id).await.unwrap(),
        ChainHead::genesis(),
        "the chain did not move"
    );
    assert!(central
        .store
        .transfers(&device.site, 10)
        .await
        .unwrap()
        .is_empty());

    // The same device's own school alone goes through, on the head the refusal left.
    device.head = ChainHead::genesis();
    let own = device.seal_next(&snapshot_of(vec![school("4602", "777", "Ny skole")]));
    let (status, answer) = device.post(&central, own).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(central.counts().await.schools, 1);
    central.stop().await;
}

#[tokio::test]
async fn a_batch_naming_a_school_for_a_site_registered_with_none_is_forbidden() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let body = device.seal_next(&snapshot_of(vec![school("4602", "777", "Ny skole")]));

    let (status, answer) = device.post(&central, body).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "wrong_school");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn a_sealed_delta_is_applied_and_acked() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let payload = device.students(&two_students());
    let body = device.seal_next(&payload);
    let sent = body.len() as u64;

    let (status, answer) = device.post(&central, body).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"ack": 1, "applied": true}));
    assert_eq!(central.counts().await.students, 2);
    assert_eq!(
        central.store.chain_head(&device.id).await.unwrap(),
        device.head
    );
    // The transfer keeps the envelope's size as it arrived.
    let transfers = central.store.transfers(&device.site, 10).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].bytes, sent);
    central.stop().await;
}

#[tokio::test]
async fn the_same_batch_sent_again_is_acked_and_changes_nothing() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let payload = device.students(&two_students());
    let body = device.seal_next(&payload);
    assert_eq!(device.post(&central, body.clone()).await.0, StatusCode::OK);
    let head = central.store.chain_head(&device.id).await.unwrap();

    let (status, answer) = device.post(&central, body).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"ack": 1, "applied": false}));
    assert_eq!(central.counts().await.students, 2);
    assert_eq!(central.store.chain_head(&device.id).await.unwrap(), head);
    let handle = device.secret.handle(Entity::Student, "s1");
    let history = central
        .store
        .history(&device.site, Entity::Student, &handle)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "a replay must not add a version");
    central.stop().await;
}

#[tokio::test]
async fn a_batch_after_a_gap_is_answered_with_the_expected_seq_and_prev() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let first = device.seal_next(&device.students(&two_students()));
    assert_eq!(device.post(&central, first).await.0, StatusCode::OK);
    let expected = device.head;
    let ahead = ChainHead {
        next_seq: Seq(5),
        prev: [3; 32],
    };
    let (_, skipped) = device.seal_at(&ahead, &device.students(&[student("s3", "Per")]));

    let (status, answer) = device.post(&central, skipped).await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "gap");
    assert_eq!(answer["expected_seq"], 2);
    assert_eq!(answer["prev"], hex::encode(expected.prev));
    assert_eq!(central.counts().await.students, 2);
    central.stop().await;
}

#[tokio::test]
async fn a_connection_without_a_client_certificate_is_unauthorized_and_stores_nothing() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let body = device.seal_next(&device.students(&two_students()));
    let anonymous = central.anonymous();

    let response = anonymous
        .post(central.device_url("/v1/batches"))
        .body(body)
        .send()
        .await
        .expect("central answers");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let answer: Value = response.json().await.expect("a JSON answer");
    assert_eq!(answer["error"], "client_certificate_required");
    let heartbeat = anonymous
        .post(central.device_url("/v1/heartbeat"))
        .json(&json!({"version": "0.1.0", "state": "healthy"}))
        .send()
        .await
        .expect("central answers");
    assert_eq!(heartbeat.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(central.counts().await, Counts::default());
    assert_eq!(
        central.store.chain_head(&device.id).await.unwrap(),
        ChainHead::genesis()
    );
    central.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_and_stores_nothing() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let body = device.seal_next(&device.students(&two_students()));
    let rogue = DevPki::generate(Validity::from_now(Duration::from_secs(3600))).unwrap();
    let credentials = rogue
        .device_ca
        .issue_device(
            &device.id,
            &device.site,
            Validity::from_now(Duration::from_secs(3600)),
        )
        .unwrap();
    let impostor = skolebro_provisioning::tls::client(
        &credentials.cert_pem,
        &credentials.key_pem,
        central.pki.central_ca.cert_pem(),
    )
    .unwrap();

    let result = impostor
        .post(central.device_url("/v1/batches"))
        .body(body)
        .send()
        .await;

    assert!(result.is_err(), "a foreign certificate got an answer");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused_and_stores_nothing() {
    let central = Central::start().await;
    let registered = central.enroll("pi-46505").await;
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let expired = Validity::between(now - 2 * day, now - day).unwrap();
    let mut device = central.device("pi-46505", expired);
    device.signing = registered.signing.clone();
    let body = device.seal_next(&device.students(&two_students()));

    let result = device
        .client
        .post(central.device_url("/v1/batches"))
        .body(body)
        .send()
        .await;

    assert!(result.is_err(), "an expired certificate got an answer");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn device_a_certificate_carrying_device_b_envelope_is_forbidden_and_stores_nothing() {
    let central = Central::start().await;
    let device_a = central.enroll("pi-a").await;
    let mut device_b = central.enroll("pi-b").await;
    let envelope_b = device_b.seal_next(&device_b.students(&two_students()));

    let (status, answer) = device_a.post(&central, envelope_b).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "wrong_device");
    assert_eq!(central.counts().await, Counts::default());
    assert_eq!(
        central.store.chain_head(&device_b.id).await.unwrap(),
        ChainHead::genesis()
    );
    central.stop().await;
}

#[tokio::test]
async fn a_registered_certificate_of_an_unregistered_or_revoked_device_is_forbidden() {
    let central = Central::start().await;
    let mut stranger = central.device("pi-stranger", Validity::from_now(Duration::from_secs(60)));
    let body = stranger.seal_next(&stranger.students(&two_students()));
    let (status, answer) = stranger.post(&central, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "unknown_device");

    let mut lost = central.enroll("pi-lost").await;
    central.store.revoke_device(&lost.id).await.unwrap();
    let body = lost.seal_next(&lost.students(&two_students()));
    let (status, answer) = lost.post(&central, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "device_revoked");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn a_garbage_body_is_malformed_and_stores_nothing() {
    let central = Central::start().await;
    let device = central.enroll("pi-46505").await;

    let (status, answer) = device
        .post(&central, b"this is not an envelope".to_vec())
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "malformed");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn an_envelope_signed_with_another_key_is_a_bad_signature() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    device.signing = DeviceSigningKey::from_bytes([0x99; 32]);
    let body = device.seal_next(&device.students(&two_students()));

    let (status, answer) = device.post(&central, body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "bad_signature");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_as_oversized() {
    let central = Central::start_with_limit(64 * 1024).await;
    let device = central.enroll("pi-46505").await;

    let (status, answer) = device.post(&central, vec![0x42; 256 * 1024]).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "oversized");
    assert_eq!(central.counts().await, Counts::default());
    central.stop().await;
}

#[tokio::test]
async fn the_admin_listener_serves_counts_and_the_roster_now_and_as_of_earlier() {
    let central = Central::start().await;
    let mut device = central.enroll("pi-46505").await;
    let first = device.seal_next(&device.students(&two_students()));
    assert_eq!(device.post(&central, first).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let renamed = device.seal_next(&device.students(&[student("s1", "Karianne")]));
    assert_eq!(device.post(&central, renamed).await.0, StatusCode::OK);

    let (status, counts) = central.admin_get(&format!("/v1/sites/{SITE}/counts")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        counts,
        json!({"schools": 0, "students": 2, "groups": 0, "enrollments": 0})
    );

    let (status, now) = central.admin_get(&format!("/v1/sites/{SITE}/roster")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(now["students"][0]["given_name"], "Karianne");

    let (status, then) = central
        .admin_get(&format!("/v1/sites/{SITE}/roster?as_of={between}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(then["students"][0]["given_name"], "Kari");
    assert_eq!(then["students"].as_array().unwrap().len(), 2);

    let (status, unknown) = central.admin_get("/v1/sites/nowhere/counts").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(unknown["error"], "unknown_site");
    central.stop().await;
}

#[tokio::test]
async fn a_heartbeat_returns_a_queued_command_once() {
    let central = Central::start().await;
    let device = central.enroll("pi-46505").await;
    let queued = central
        .admin
        .post(central.admin_url("/admin/devices/pi-46505/commands"))
        .json(&json!({"type": "release", "held_id": "held-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), StatusCode::ACCEPTED);

    let (status, first) = device.heartbeat(&central).await;
    let (_, second) = device.heartbeat(&central).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first,
        json!({"commands": [{"type": "release", "held_id": "held-1"}], "release": null})
    );
    assert_eq!(second, json!({"commands": [], "release": null}));
    let (status, devices) = central.admin_get("/admin/devices").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(devices["devices"][0]["device"], "pi-46505");
    assert_eq!(devices["devices"][0]["site"], SITE);
    assert_eq!(devices["devices"][0]["last_heartbeat"]["state"], "healthy");
    assert_eq!(devices["devices"][0]["chain_head"]["next_seq"], 1);
    central.stop().await;
}

#[tokio::test]
async fn a_command_for_an_unknown_device_or_of_an_unknown_type_is_refused() {
    let central = Central::start().await;
    let _device = central.enroll("pi-46505").await;
    let unknown = central
        .admin
        .post(central.admin_url("/admin/devices/pi-nobody/commands"))
        .json(&json!({"type": "resync"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = central
        .admin
        .post(central.admin_url("/admin/devices/pi-46505/commands"))
        .json(&json!({"type": "self_destruct"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    central.stop().await;
}
