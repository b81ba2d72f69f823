//! Releases at central over real mutual TLS on loopback (DESIGN decision 7): a manifest
//! signed with a real release key is registered through the admin API, its artifact
//! uploaded and checked, the rollout policy decides which heartbeats are offered it, devices
//! download it with `Range`, and their reports move the counts.

mod common;

use std::time::Duration;

use base64::Engine as _;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::release::in_rollout;
use skolebro_protocol::{
    DeviceId, DeviceSigningKey, ReleaseManifest, ReleaseSigningKey, SiteId, Version,
};
use skolebro_provisioning::Validity;

use common::{Central, CentralOptions};

const SITE: &str = "4601-12345";
const OTHER_SITE: &str = "4601-54321";
const TARGET: &str = "aarch64-unknown-linux-gnu";

fn release_key() -> ReleaseSigningKey {
    ReleaseSigningKey::from_bytes([0x11; 32])
}

/// 300 KiB that differ byte by byte, so a download spans several chunks and a misplaced
/// range shows.
fn artifact() -> Vec<u8> {
    (0..300 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn manifest(version: &str, artifact: &[u8]) -> ReleaseManifest {
    ReleaseManifest {
        version: version.parse().unwrap(),
        target: TARGET.to_owned(),
        size: artifact.len() as u64,
        sha256: Sha256::digest(artifact).into(),
        allow_downgrade: false,
        created_unix: 1_900_000_000,
        expires_unix: 1_900_000_000 + 30 * 86_400,
        replaces: None,
        floor: None,
    }
}

impl Central {
    async fn start(with_key: bool) -> Central {
        CentralOptions {
            max_batch_bytes: 1 << 20,
            release_key: with_key.then(|| release_key().verifying_key()),
            ..CentralOptions::default()
        }
        .start()
        .await
    }

    /// A registered device of `site` with a certificate from the device CA.
    async fn device(&self, name: &str, site: &str) -> Device {
        let id = DeviceId::new(name).unwrap();
        let site = SiteId::new(site).unwrap();
        let client = self.device_client(&id, &site, Validity::from_now(Duration::from_secs(3600)));
        let key = DeviceSigningKey::from_bytes(Sha256::digest(name.as_bytes()).into());
        self.store
            .register_device(&id, &site, &key.verifying_key())
            .await
            .expect("the device registers");
        Device { id, client }
    }

    async fn register(&self, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .admin
            .post(self.admin_url("/admin/releases"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("the admin listener answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn upload(&self, id: &str, bytes: Vec<u8>) -> StatusCode {
        self.admin
            .put(self.admin_url(&format!("/admin/releases/{id}/artifact")))
            .body(bytes)
            .send()
            .await
            .expect("the admin listener answers")
            .status()
    }

    /// Registers `version` with [`artifact`] and uploads it.
    async fn release(&self, version: &str) -> String {
        let artifact = artifact();
        let (status, body) = self
            .register(manifest(version, &artifact).sign(&release_key()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        assert_eq!(self.upload(&id, artifact).await, StatusCode::NO_CONTENT);
        id
    }

    async fn admin_post(&self, path: &str, body: Option<Value>) -> StatusCode {
        let request = self.admin.post(self.admin_url(path));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.expect("an answer").status()
    }

    async fn releases(&self) -> Vec<Value> {
        let response = self
            .admin
            .get(self.admin_url("/admin/releases"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON");
        body["releases"].as_array().expect("a list").clone()
    }
}

struct Device {
    id: DeviceId,
    client: reqwest::Client,
}

impl Device {
    async fn heartbeat(&self, central: &Central, body: Value) -> Value {
        let response = self
            .client
            .post(central.device_url("/v1/heartbeat"))
            .json(&body)
            .send()
            .await
            .expect("central answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON answer")
    }

    /// The release a heartbeat from version 1.0.0 on [`TARGET`] is offered, if any.
    async fn offered(&self, central: &Central) -> Value {
        let answer = self
            .heartbeat(
                central,
                json!({"version": "1.0.0", "state": "healthy", "target": TARGET}),
            )
            .await;
        answer["release"].clone()
    }

    async fn report(&self, central: &Central, release: &str, state: &str, reason: Option<&str>) {
        self.heartbeat(
            central,
            json!({"version": "1.0.0", "state": "updating", "target": TARGET,
                   "update": {"release": release, "state": state, "reason": reason}}),
        )
        .await;
    }

    async fn download(
        &self,
        central: &Central,
        id: &str,
        range: Option<&str>,
    ) -> reqwest::Response {
        let request = self
            .client
            .get(central.device_url(&format!("/v1/releases/{id}/artifact")));
        let request = match range {
            Some(range) => request.header(header::RANGE, range),
            None => request,
        };
        request.send().await.expect("central answers")
    }
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the folder reads")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_release_registers_and_its_artifact_is_kept_only_if_it_matches() {
    let central = Central::start(true).await;
    let artifact = artifact();
    let release = manifest("1.2.0", &artifact);
    let id = release.id();
    let signed = release.sign(&release_key());

    let (status, body) = central.register(signed.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({"id": "1.2.0-aarch64-unknown-linux-gnu"}));
    // Again is harmless; another manifest under the same id is not.
    assert_eq!(
        central.register(signed.clone()).await.0,
        StatusCode::CREATED
    );
    let mut downgrade = release.clone();
    downgrade.allow_downgrade = true;
    downgrade.replaces = Some("1.3.0".parse().unwrap());
    downgrade.expires_unix = downgrade.created_unix + 3_600;
    let (status, body) = central.register(downgrade.sign(&release_key())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "release_exists");

    // Signed by another key, tampered with, or not a manifest at all: refused, not stored.
    let other = manifest("1.3.0", &artifact).sign(&ReleaseSigningKey::from_bytes([0x22; 32]));
    let mut tampered = manifest("1.3.0", &artifact).sign(&release_key());
    tampered[20] ^= 1;
    for bytes in [other, tampered, b"#!/bin/sh\n".to_vec()] {
        let (status, body) = central.register(bytes).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_manifest");
    }
    assert_eq!(central.releases().await.len(), 1);

    // A short, a long and a same-length-but-different artifact are refused and nothing is
    // kept; only the manifest is in the folder.
    let mut corrupt = artifact.clone();
    corrupt[1000] ^= 0xff;
    let mut long = artifact.clone();
    long.push(0);
    for wrong in [artifact[..1000].to_vec(), long, corrupt] {
        assert_eq!(central.upload(&id, wrong).await, StatusCode::BAD_REQUEST);
        assert_eq!(
            files_in(&central.releases_dir()),
            [format!("{id}.skm")],
            "a refused artifact left a file"
        );
    }
    assert_eq!(central.releases().await[0]["artifact"], false);

    assert_eq!(
        central.upload(&id, artifact.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        std::fs::read(central.releases_dir().join(format!("{id}.bin"))).unwrap(),
        artifact
    );
    assert_eq!(
        std::fs::read(central.releases_dir().join(format!("{id}.skm"))).unwrap(),
        signed
    );
    let listed = &central.releases().await[0];
    assert_eq!(listed["artifact"], true);
    assert_eq!(listed["version"], "1.2.0");
    assert_eq!(listed["target"], TARGET);
    assert_eq!(listed["percent"], 0);
    assert_eq!(listed["paused"], false);

    assert_eq!(
        central
            .upload("9.9.9-x86_64-unknown-linux-gnu", artifact)
            .await,
        StatusCode::NOT_FOUND
    );
    central.stop().await;

    // Without a release key central registers nothing.
    let central = Central::start(false).await;
    let (status, body) = central.register(signed).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "releases_disabled");
    central.stop().await;
}

#[tokio::test]
async fn the_heartbeat_offers_the_release_only_inside_its_rollout_and_not_when_paused() {
    let central = Central::start(true).await;
    let here = central.device("pi-here", SITE).await;
    let there = central.device("pi-there", OTHER_SITE).await;

    // Registered without an artifact: offered to nobody, whatever the policy.
    let (status, body) = central
        .register(manifest("1.1.0", &artifact()).sign(&release_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let pending = body["id"].as_str().unwrap().to_owned();
    let rollout = format!("/admin/releases/{pending}/rollout");
    assert_eq!(
        central
            .admin_post(&rollout, Some(json!({"percent": 100})))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(here.offered(&central).await, Value::Null);

    let id = central.release("1.2.0").await;
    let rollout = format!("/admin/releases/{id}/rollout");
    // A new release is at 0 percent: nobody.
    assert_eq!(here.offered(&central).await, Value::Null);

    // Named sites: only their devices.
    assert_eq!(
        central
            .admin_post(&rollout, Some(json!({"sites": [SITE]})))
            .await,
        StatusCode::NO_CONTENT
    );
    let offered = here.offered(&central).await;
    assert_eq!(offered["id"], id.as_str());
    assert_eq!(offered["artifact"], format!("/v1/releases/{id}/artifact"));
    let manifest_bytes = base64::engine::general_purpose::STANDARD
        .decode(offered["manifest"].as_str().unwrap())
        .unwrap();
    let verified =
        ReleaseManifest::verify(&manifest_bytes, &release_key().verifying_key()).unwrap();
    assert_eq!(verified.version, Version::new(1, 2, 0));
    assert_eq!(there.offered(&central).await, Value::Null);

    // Not for another target, not for a device running that version, not without a target.
    let other_target = here
        .heartbeat(
            &central,
            json!({"version": "1.0.0", "state": "healthy", "target": "x86_64-unknown-linux-gnu"}),
        )
        .await;
    assert_eq!(other_target["release"], Value::Null);
    let current = here
        .heartbeat(
            &central,
            json!({"version": "1.2.0", "state": "healthy", "target": TARGET}),
        )
        .await;
    assert_eq!(current["release"], Value::Null);
    let old_agent = here
        .heartbeat(&central, json!({"version": "0.1.0", "state": "healthy"}))
        .await;
    assert_eq!(old_agent["release"], Value::Null);
    assert_eq!(old_agent["commands"], json!([]));

    // Paused: nobody; resumed: the same devices again.
    let pause = format!("/admin/releases/{id}/pause");
    let resume = format!("/admin/releases/{id}/resume");
    assert_eq!(
        central.admin_post(&pause, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(here.offered(&central).await, Value::Null);
    assert_eq!(central.releases().await[0]["paused"], true);
    assert_eq!(
        central.admin_post(&resume, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(here.offered(&central).await["id"], id.as_str());

    // Percentages by stable cohort: exactly the devices the documented formula picks.
    assert_eq!(
        central
            .admin_post(&rollout, Some(json!({"sites": [], "percent": 50})))
            .await,
        StatusCode::NO_CONTENT
    );
    let mut fleet = Vec::new();
    for n in 0..12 {
        fleet.push(central.device(&format!("pi-{n:02}"), OTHER_SITE).await);
    }
    let mut included = 0;
    for device in &fleet {
        let expected = in_rollout(&id, device.id.as_str(), 50);
        let offered = device.offered(&central).await;
        assert_eq!(offered != Value::Null, expected, "{}", device.id);
        // Stable: asking again gives the same answer.
        assert_eq!(device.offered(&central).await, offered);
        included += usize::from(expected);
    }
    assert!(included > 0 && included < fleet.len(), "{included} of 12");

    // Refused policies change nothing.
    for bad in [
        json!({"percent": 101}),
        json!({}),
        json!({"sites": ["../etc"]}),
        json!({"percent": 5, "everyone": true}),
    ] {
        assert_eq!(
            central.admin_post(&rollout, Some(bad.clone())).await,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        central
            .admin_post("/admin/releases/7.0.0-x86_64-unknown-linux-gnu/pause", None)
            .await,
        StatusCode::NOT_FOUND
    );
    let listed = central.releases().await;
    assert_eq!(listed[0]["percent"], 50);
    assert_eq!(listed[0]["sites"], json!([]));
    central.stop().await;
}

#[tokio::test]
async fn a_manifest_that_has_expired_is_offered_to_no_device() {
    let central = Central::start(true).await;
    let here = central.device("pi-here", SITE).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    // Signed an hour ago, valid for two more seconds: registered and offered while it lasts.
    let artifact = artifact();
    let mut short = manifest("1.4.0", &artifact);
    short.created_unix = now - 3_600;
    short.expires_unix = now + 2;
    let (status, body) = central.register(short.sign(&release_key())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("an id").to_owned();
    assert_eq!(central.upload(&id, artifact).await, StatusCode::NO_CONTENT);
    let rollout = format!("/admin/releases/{id}/rollout");
    assert_eq!(
        central
            .admin_post(&rollout, Some(json!({"percent": 100})))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(here.offered(&central).await["id"], id.as_str());

    // Once it has expired the device would refuse it, so central offers it no more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(here.offered(&central).await, Value::Null);
    central.stop().await;
}

#[tokio::test]
async fn artifacts_download_whole_or_from_a_range() {
    let central = Central::start(true).await;
    let device = central.device("pi-range", SITE).await;
    let id = central.release("1.2.0").await;
    let artifact = artifact();
    let len = artifact.len();

    let whole = device.download(&central, &id, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.headers()[header::CONTENT_LENGTH], len.to_string());
    assert_eq!(whole.bytes().await.unwrap().as_ref(), artifact.as_slice());

    // An interrupted download resumes where it stopped, and the pieces make the artifact.
    let cut = 100_003;
    let first = device
        .download(&central, &id, Some(&format!("bytes=0-{}", cut - 1)))
        .await;
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        first.headers()[header::CONTENT_RANGE],
        format!("bytes 0-{}/{len}", cut - 1)
    );
    let mut resumed = first.bytes().await.unwrap().to_vec();
    assert_eq!(resumed.len(), cut);
    let rest = device
        .download(&central, &id, Some(&format!("bytes={cut}-")))
        .await;
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        rest.headers()[header::CONTENT_RANGE],
        format!("bytes {cut}-{}/{len}", len - 1)
    );
    assert_eq!(
        rest.headers()[header::CONTENT_LENGTH],
        (len - cut).to_string()
    );
    resumed.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(resumed, artifact);

    let tail = device.download(&central, &id, Some("bytes=-10")).await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &artifact[len - 10..]);

    // A range past the end cannot be satisfied.
    let past = device
        .download(&central, &id, Some(&format!("bytes={len}-")))
        .await;
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        past.headers()[header::CONTENT_RANGE],
        format!("bytes */{len}")
    );

    // Unknown releases, releases without artifact, and callers without a certificate.
    let missing = device
        .download(&central, "9.0.0-aarch64-unknown-linux-gnu", None)
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let (_, body) = central
        .register(manifest("1.3.0", &artifact).sign(&release_key()))
        .await;
    let pending = body["id"].as_str().unwrap();
    assert_eq!(
        device.download(&central, pending, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = central.anonymous();
    let refused = anonymous
        .get(central.device_url(&format!("/v1/releases/{id}/artifact")))
        .send()
        .await
        .expect("central answers");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    central.stop().await;
}

#[tokio::test]
async fn counts_move_from_offered_to_healthy_and_rollbacks_keep_their_reason() {
    let central = Central::start(true).await;
    let good = central.device("pi-good", SITE).await;
    let bad = central.device("pi-bad", SITE).await;
    let id = central.release("1.2.0").await;
    assert_eq!(
        central
            .admin_post(
                &format!("/admin/releases/{id}/rollout"),
                Some(json!({"sites": [SITE]}))
            )
            .await,
        StatusCode::NO_CONTENT
    );
    let counts = |release: &Value| release["counts"].clone();

    // Offered is counted once per device, however often it is offered.
    for _ in 0..3 {
        assert_eq!(good.offered(&central).await["id"], id.as_str());
    }
    assert_eq!(bad.offered(&central).await["id"], id.as_str());
    assert_eq!(counts(&central.releases().await[0])["offered"], 2);

    good.report(&central, &id, "downloaded", None).await;
    good.report(&central, &id, "downloaded", None).await;
    good.report(&central, &id, "installed", None).await;
    bad.report(&central, &id, "downloaded", None).await;
    bad.report(&central, &id, "installed", None).await;
    assert_eq!(
        counts(&central.releases().await[0]),
        json!({"offered": 2, "downloaded": 2, "installed": 2, "healthy": 0,
               "rolled_back": 0, "refused": 0})
    );

    // The new release reports healthy (from its new version); the other rolls back.
    good.heartbeat(
        &central,
        json!({"version": "1.2.0", "state": "healthy", "target": TARGET,
               "update": {"release": id, "state": "healthy", "reason": null}}),
    )
    .await;
    bad.report(
        &central,
        &id,
        "rolled_back",
        Some("health check failed: central did not answer within 300 s"),
    )
    .await;
    // Repeated until a heartbeat gets through: still counted once, with the first reason.
    bad.report(&central, &id, "rolled_back", Some("again"))
        .await;
    // A report about a release central does not know, or in a state it does not know,
    // changes nothing and does not cost the heartbeat.
    bad.report(&central, "5.0.0-aarch64-unknown-linux-gnu", "healthy", None)
        .await;
    bad.report(&central, &id, "levitating", None).await;

    let release = &central.releases().await[0];
    assert_eq!(
        counts(release),
        json!({"offered": 2, "downloaded": 2, "installed": 2, "healthy": 1,
               "rolled_back": 1, "refused": 0})
    );
    assert_eq!(
        release["rollbacks"],
        json!([{"device": "pi-bad",
                "reason": "health check failed: central did not answer within 300 s"}])
    );
    // A device that rolled a release back is not offered it again; the good one runs it.
    assert_eq!(bad.offered(&central).await, Value::Null);
    let running = good
        .heartbeat(
            &central,
            json!({"version": "1.2.0", "state": "healthy", "target": TARGET}),
        )
        .await;
    assert_eq!(running["release"], Value::Null);

    // A refusal is counted and kept with its reason too.
    let third = central.device("pi-third", SITE).await;
    assert_eq!(third.offered(&central).await["id"], id.as_str());
    third
        .report(
            &central,
            &id,
            "refused",
            Some("sha256 does not match the manifest"),
        )
        .await;
    let release = &central.releases().await[0];
    assert_eq!(counts(release)["refused"], 1);
    assert_eq!(
        release["refusals"],
        json!([{"device": "pi-third", "reason": "sha256 does not match the manifest"}])
    );
    central.stop().await;
}

#[tokio::test]
async fn every_heartbeat_answer_carries_a_signed_statement_naming_the_offered_manifest() {
    let key = skolebro_protocol::StatementSigningKey::from_bytes([0x54; 32]);
    let central = CentralOptions {
        max_batch_bytes: 1 << 20,
        release_key: Some(release_key().verifying_key()),
        statement_key: Some(key.clone()),
        ..CentralOptions::default()
    }
    .start()
    .await;
    let here = central.device("pi-here", SITE).await;
    let statement = |answer: &Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answer["statement"].as_str().expect("a statement"))
            .expect("base64");
        skolebro_protocol::Statement::verify(&bytes, &key.verifying_key()).expect("it verifies")
    };
    let now_ms = |at: std::time::SystemTime| {
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let hello = json!({"version": "1.0.0", "state": "healthy", "target": TARGET});

    // Nothing offered: the statement still carries the time, and no current manifest.
    let before = now_ms(std::time::SystemTime::now());
    let answer = here.heartbeat(&central, hello.clone()).await;
    let after = now_ms(std::time::SystemTime::now());
    let quiet = statement(&answer);
    assert_eq!(quiet.device, here.id.as_str());
    assert_eq!(quiet.target.as_deref(), Some(TARGET));
    assert!((before..=after).contains(&quiet.issued_unix_ms));
    assert_eq!(quiet.expires_unix_ms - quiet.issued_unix_ms, 86_400_000);
    assert_eq!((quiet.current, &answer["release"]), (None, &Value::Null));

    // Offered: the statement names exactly the offered manifest's bytes.
    let id = central.release("1.2.0").await;
    let rollout = format!("/admin/releases/{id}/rollout");
    central
        .admin_post(&rollout, Some(json!({"percent": 100})))
        .await;
    let answer = here.heartbeat(&central, hello).await;
    let manifest = base64::engine::general_purpose::STANDARD
        .decode(answer["release"]["manifest"].as_str().expect("an offer"))
        .unwrap();
    let offer = statement(&answer);
    assert!(offer.names_current(&manifest));
    assert!(offer.issued_unix_ms >= quiet.issued_unix_ms);

    // A central without a statement key answers as before.
    let plain = Central::start(true).await;
    let device = plain.device("pi-plain", SITE).await;
    let answer = device
        .heartbeat(
            &plain,
            json!({"version": "1.0.0", "state": "healthy", "target": TARGET}),
        )
        .await;
    assert!(answer.get("statement").is_none(), "{answer}");
}
