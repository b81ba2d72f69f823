//! The consumer exports over real HTTP on loopback: OneRoster with OAuth2 client-credentials
//! tokens on the consumer listener, and the admission office's elevliste on the operator
//! listener. Rosters go in the way a school's agent sends them: an elevliste read by the
//! agent's reader, sealed as a snapshot and posted over mutual TLS to the ingest.
//!
//! Three schools: Fana (county 46, kommune 4601), Voss (county 46, kommune 4621) and Oslo
//! (county 03, kommune 0301). Every national id is synthetic (month + 80).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_central::config::{CountyRetentionConfig, PrivacyConfig};
use skolebro_central::store::Timestamp;
use skolebro_protocol::envelope::seal;
use skolebro_protocol::{
    ChainHead, DeviceId, DeviceSigningKey, Header, Payload, Roster, SiteId, SiteSchool, SiteSecret,
};
use skolebro_provisioning::Validity;
use skolebro_roster::reader::oneroster_rest::RestRoster;
use skolebro_roster::reader::{read_export, Format, ReaderOptions};
use skolebro_roster::validate::RosterBuilder;

use common::{now_ms, Central, CentralOptions};
use skolebro_central::oneroster::PublicUrl;

impl Central {
    async fn start() -> Central {
        Central::start_with(None).await
    }

    /// Central with a consumer listener and, if given, its `consumer_public_url`.
    async fn start_with(public_url: Option<&str>) -> Central {
        CentralOptions {
            consumer_listener: true,
            consumer_public_url: public_url
                .map(|url| PublicUrl::parse(url).expect("a valid public URL")),
            ..CentralOptions::default()
        }
        .start()
        .await
    }

    /// `GET /admin/exports/elevliste?{query}`: the status, the headers and the file.
    async fn export_elevliste(&self, query: String) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self
            .admin
            .get(self.admin_url(&format!("/admin/exports/elevliste?{query}")))
            .send()
            .await
            .expect("the admin listener answers");
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.bytes().await.expect("a body").to_vec(),
        )
    }

    /// Registers a device for `site` and returns it, as enrollment would leave it.
    async fn device(&self, site: &str, secret: u8) -> Device {
        let id = DeviceId::new(format!("pi-{site}")).unwrap();
        let site = SiteId::new(site).unwrap();
        let client = self.device_client(&id, &site, Validity::from_now(Duration::from_secs(3600)));
        let signing = DeviceSigningKey::from_bytes([secret; 32]);
        let secret = SiteSecret::from_bytes([secret; 32]);
        self.store
            .set_site_secret(&site, &secret)
            .await
            .expect("the site secret is stored");
        self.store
            .register_device(&id, &site, &signing.verifying_key())
            .await
            .expect("the device is registered");
        Device {
            id,
            site,
            signing,
            client,
            head: ChainHead::genesis(),
        }
    }

    /// Reads an elevliste with the agent's reader, as the agent on the school's Pi would.
    fn read_elevliste(&self, name: &str, bytes: &[u8]) -> Roster {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("the export is written");
        let (_, validated) = read_export(&path, Some(Format::Elevliste), &ReaderOptions::default())
            .expect("the elevliste reads");
        validated.roster
    }

    /// Sends a school's elevliste through the ingest as a snapshot, as its agent would,
    /// after registering its schools with the device's site as its stick would have.
    async fn transfer(&self, device: &mut Device, elevliste: &str) {
        let roster = self.read_elevliste(&format!("{}.csv", device.site), elevliste.as_bytes());
        self.register(device, &roster).await;
        self.send(device, Payload::Snapshot(roster)).await;
    }

    /// Registers the schools of `roster` with the device's site, as its stick would have.
    async fn register(&self, device: &Device, roster: &Roster) {
        let schools: Vec<SiteSchool> = roster
            .schools
            .iter()
            .map(|school| SiteSchool::of_record(school).expect("a registrable school"))
            .collect();
        self.store
            .register_schools(&device.site, &schools, Timestamp::now())
            .await
            .expect("the site's schools are registered");
    }

    /// Seals `payload` as the device's next batch and posts it; it must be applied.
    async fn send(&self, device: &mut Device, payload: Payload) {
        let header = Header::chained(
            &device.head,
            device.id.clone(),
            device.site.clone(),
            now_ms() as u64,
            payload.kind(),
        );
        let envelope = seal(
            header,
            &payload,
            &self.sealing.public_key(),
            &device.signing,
        )
        .expect("the envelope seals");
        device.head = envelope.next_head();
        let url = self.device_url("/v1/batches");
        let response = device
            .client
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(envelope.to_bytes())
            .send()
            .await
            .expect("central answers");
        assert_eq!(response.status(), StatusCode::OK, "the batch is applied");
    }

    /// Creates a consumer client through the operator listener; returns its id and secret.
    async fn client(&self, scope: Value) -> (String, String) {
        let response = self
            .admin
            .post(self.admin_url("/admin/clients"))
            .json(&json!({"name": "Inntakskontoret", "scope": scope}))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("JSON");
        (
            body["client_id"].as_str().expect("an id").to_owned(),
            body["client_secret"].as_str().expect("a secret").to_owned(),
        )
    }

    /// `POST /oauth/token` with the credentials in HTTP Basic.
    async fn token_request(&self, id: &str, secret: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.consumer_url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("the consumer listener answers");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    /// A bearer token for a new client with `scope`.
    async fn token(&self, scope: Value) -> String {
        let (id, secret) = self.client(scope).await;
        let (status, body) = self
            .token_request(&id, &secret, "grant_type=client_credentials")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// A GET on the consumer listener with a bearer token.
    async fn get(&self, token: &str, path: &str) -> (StatusCode, HeaderMap, Value) {
        self.get_url(token, &self.consumer_url(path)).await
    }
}

struct Device {
    id: DeviceId,
    site: SiteId,
    signing: DeviceSigningKey,
    client: reqwest::Client,
    head: ChainHead,
}

/// The `n`th synthetic national id (month + 80) born in 2010, with valid control digits.
fn synthetic_id(n: u32) -> String {
    let control = |digits: &[u32], weights: &[u32]| match 11
        - digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11
    {
        11 => Some(0),
        10 => None,
        k => Some(k),
    };
    let mut individual = 500 + n * 7;
    loop {
        let head = format!("{:02}{:02}10{individual:03}", 1 + n % 28, 81 + n % 12);
        let mut digits: Vec<u32> = head.bytes().map(|b| u32::from(b - b'0')).collect();
        if let Some(k1) = control(&digits, &[3, 7, 6, 1, 8, 9, 4, 5, 2]) {
            digits.push(k1);
            if let Some(k2) = control(&digits, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) {
                digits.push(k2);
                return digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
            }
        }
        individual += 1;
    }
}

const HEADER: &str = "Fylkesnummer;Kommunenummer;Skolenummer;Skolenavn;Klasse;Trinn;Skoleår;\
                      Fødselsnummer;Etternavn;Fornavn;Kjønn;E-post;Brukernavn";

/// One school's elevliste: `(class, grade, national id, family name, given name)` rows.
fn elevliste(
    school: (&str, &str, &str, &str),
    rows: &[(&str, &str, String, &str, &str)],
) -> String {
    let (county, kommune, skolenummer, name) = school;
    let mut text = format!("{HEADER}\r\n");
    for (class, grade, id, family, given) in rows {
        text.push_str(&format!(
            "{county};{kommune};{skolenummer};{name};{class};{grade};2026/2027;{id};{family};\
             {given};K;{given}.{family}@skule.example.no;{given}{family}\r\n"
        ));
    }
    text
}

const FANA: (&str, &str, &str, &str) = ("46", "4601", "46505", "Fana skule");
const VOSS: (&str, &str, &str, &str) = ("46", "4621", "46701", "Voss skule");
const OSLO: (&str, &str, &str, &str) = ("03", "0301", "301010", "Oslo skole");

fn fana_rows() -> Vec<(
    &'static str,
    &'static str,
    String,
    &'static str,
    &'static str,
)> {
    vec![
        ("10A", "10", synthetic_id(1), "Åsheim", "Kari"),
        ("10A", "10", synthetic_id(2), "Nilsen", "Oskar"),
        ("10B", "10", synthetic_id(3), "Bjørnstad", "Ola"),
        ("9A", "9", synthetic_id(4), "Hansen", "Noah"),
        // Invalid control digits: kept without an id, left out of the elevliste.
        ("10B", "10", "05820998860".to_owned(), "Feil", "Ida"),
    ]
}

/// Central with the three schools transferred; returns their devices too.
async fn three_schools() -> (Central, Vec<Device>) {
    let central = Central::start().await;
    let mut fana = central.device("skole-46505", 0xa1).await;
    let mut voss = central.device("skole-46701", 0xb2).await;
    let mut oslo = central.device("skole-301010", 0xc3).await;
    central
        .transfer(&mut fana, &elevliste(FANA, &fana_rows()))
        .await;
    central
        .transfer(
            &mut voss,
            &elevliste(
                VOSS,
                &[
                    ("10A", "10", synthetic_id(11), "Lie", "Emma"),
                    ("8C", "8", synthetic_id(12), "Vik", "Jakob"),
                ],
            ),
        )
        .await;
    central
        .transfer(
            &mut oslo,
            &elevliste(
                OSLO,
                &[
                    ("10A", "10", synthetic_id(21), "Berg", "Sara"),
                    ("10A", "10", synthetic_id(22), "Dahl", "Filip"),
                ],
            ),
        )
        .await;
    (central, vec![fana, voss, oslo])
}

/// A field of every object of a list answer.
fn field(body: &Value, collection: &str, name: &str) -> BTreeSet<String> {
    body[collection]
        .as_array()
        .expect("a list")
        .iter()
        .map(|object| object[name].as_str().expect("a text field").to_owned())
        .collect()
}

/// The `sourcedId` of every object of a list answer, with the object.
fn by_id(body: &Value, collection: &str) -> std::collections::BTreeMap<String, Value> {
    body[collection]
        .as_array()
        .expect("a list")
        .iter()
        .map(|object| {
            let id = object["sourcedId"].as_str().expect("an id").to_owned();
            (id, object.clone())
        })
        .collect()
}

/// The `imsx_codeMinorFieldValue` of a OneRoster status payload.
fn code_minor(body: &Value) -> &str {
    body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]
        .as_str()
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_object_once_and_the_date_filter_selects_later_changes() {
    let (central, mut devices) = three_schools().await;
    let token = central.token(json!({"county": "46"})).await;

    let (status, headers, all) = central
        .get(&token, "/ims/oneroster/v1p1/users?limit=5000")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "7");
    let all_ids: Vec<String> = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["sourcedId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all_ids.len(), 7);
    let user = &all["users"][0];
    assert_eq!(user["status"], "active");
    assert_eq!(user["role"], "student");
    assert!(Timestamp::parse_rfc3339(user["dateLastModified"].as_str().unwrap()).is_some());

    let mut paged = Vec::new();
    for offset in (0..8).step_by(3) {
        let (status, headers, page) = central
            .get(
                &token,
                &format!("/ims/oneroster/v1p1/users?limit=3&offset={offset}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-total-count"], "7");
        let link = headers["link"].to_str().unwrap();
        assert_eq!(link.contains("rel=\"next\""), offset + 3 < 7, "{offset}");
        assert_eq!(link.contains("rel=\"prev\""), offset > 0, "{offset}");
        paged.extend(
            page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|user| user["sourcedId"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(paged, all_ids, "pages in order, each object once");
    let (_, _, default_page) = central.get(&token, "/ims/oneroster/v1p1/users").await;
    assert_eq!(default_page["users"].as_array().unwrap().len(), 7);

    // One student's e-mail changes at Fana after `since`.
    let since = Timestamp(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = elevliste(FANA, &fana_rows())
        .replace("Oskar.Nilsen@skule.example.no", "oskar@skule.example.no");
    central.transfer(&mut devices[0], &changed).await;
    let filter = format!("dateLastModified>'{since}'");
    let (status, headers, later) = central
        .get(
            &token,
            &format!("/ims/oneroster/v1p1/users?filter={}", encode(&filter)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "1");
    assert_eq!(later["users"][0]["email"], "oskar@skule.example.no");
    let (_, _, earlier) = central
        .get(
            &token,
            &format!(
                "/ims/oneroster/v1p1/users?filter={}",
                encode(&format!("dateLastModified<='{since}'"))
            ),
        )
        .await;
    assert_eq!(earlier["users"].as_array().unwrap().len(), 6);

    for (query, code) in [
        ("filter=shoeSize%3D%2742%27", "invalid_filter_field"),
        (
            "filter=dateLastModified%3E%27yesterday%27",
            "invalid_filter_field",
        ),
        ("filter=familyName%3DNilsen", "invalid_filter_field"),
        ("fields=sourcedId,shoeSize", "invalid_selection_field"),
        ("sort=shoeSize", "invaliddata"),
        ("orderBy=sideways", "invaliddata"),
        ("limit=0", "invaliddata"),
        ("limit=many", "invaliddata"),
        ("offset=-1", "invaliddata"),
        ("filtr=x", "invaliddata"),
    ] {
        let (status, _, body) = central
            .get(&token, &format!("/ims/oneroster/v1p1/users?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(code_minor(&body), code, "{query}");
        assert_eq!(body["imsx_codeMajor"], "failure", "{query}");
        assert_eq!(body["imsx_severity"], "error", "{query}");
    }
    central.stop().await;
}

/// Percent-encodes a query value (the characters a filter holds).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_and_kommune_clients_read_only_their_schools_by_listing_and_by_id() {
    let (central, _devices) = three_schools().await;
    let county = central.token(json!({"county": "46"})).await;
    let kommune = central.token(json!({"kommune": "4601"})).await;
    let oslo = central.token(json!({"county": "03"})).await;

    let list = |token: &str, collection: &str| {
        let path = format!("/ims/oneroster/v1p1/{collection}?limit=1000");
        let token = token.to_owned();
        let central = &central;
        async move {
            let (status, _, body) = central.get(&token, &path).await;
            assert_eq!(status, StatusCode::OK);
            body
        }
    };
    assert_eq!(
        field(&list(&county, "orgs").await, "orgs", "identifier"),
        set(&["46505", "46701"])
    );
    assert_eq!(
        field(&list(&kommune, "orgs").await, "orgs", "identifier"),
        set(&["46505"])
    );
    assert_eq!(
        field(&list(&oslo, "orgs").await, "orgs", "identifier"),
        set(&["301010"])
    );
    assert_eq!(
        field(&list(&kommune, "users").await, "users", "familyName"),
        set(&["Åsheim", "Nilsen", "Bjørnstad", "Hansen", "Feil"])
    );
    assert_eq!(
        field(&list(&oslo, "users").await, "users", "identifier"),
        set(&[&synthetic_id(21), &synthetic_id(22)])
    );
    assert_eq!(
        field(&list(&county, "classes").await, "classes", "classCode"),
        set(&["10A", "10B", "9A", "8C"])
    );
    assert_eq!(
        field(&list(&kommune, "classes").await, "classes", "classCode"),
        set(&["10A", "10B", "9A"])
    );
    assert_eq!(
        list(&county, "enrollments").await["enrollments"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        list(&oslo, "enrollments").await["enrollments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (_, _, unknown) = central
        .get(
            &kommune,
            "/ims/oneroster/v1p1/users/00000000000000000000000000000000",
        )
        .await;
    for collection in ["orgs", "users", "classes", "enrollments"] {
        let singular = match collection {
            "orgs" => "org",
            "users" => "user",
            "classes" => "class",
            _ => "enrollment",
        };
        let own = list(&oslo, collection).await;
        let voss_only: BTreeSet<String> =
            field(&list(&county, collection).await, collection, "sourcedId")
                .difference(&field(
                    &list(&kommune, collection).await,
                    collection,
                    "sourcedId",
                ))
                .cloned()
                .collect();
        assert!(!voss_only.is_empty(), "{collection}");
        for object in own[collection].as_array().unwrap() {
            let id = object["sourcedId"].as_str().unwrap();
            let path = format!("/ims/oneroster/v1p1/{collection}/{id}");
            let (status, _, body) = central.get(&oslo, &path).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                &body[singular], object,
                "the object alone reads as in the list"
            );
            for other in [&county, &kommune] {
                let (status, _, body) = central.get(other, &path).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
                assert_eq!(code_minor(&body), code_minor(&unknown));
                assert_eq!(code_minor(&body), "unknownobject");
            }
        }
        for id in &voss_only {
            let path = format!("/ims/oneroster/v1p1/{collection}/{id}");
            assert_eq!(central.get(&county, &path).await.0, StatusCode::OK);
            assert_eq!(central.get(&kommune, &path).await.0, StatusCode::NOT_FOUND);
            assert_eq!(central.get(&oslo, &path).await.0, StatusCode::NOT_FOUND);
        }
    }
    // References point inside the scope: every enrollment's user, class and school resolve.
    for enrollment in list(&kommune, "enrollments").await["enrollments"]
        .as_array()
        .unwrap()
    {
        for (key, collection) in [("user", "users"), ("class", "classes"), ("school", "orgs")] {
            let id = enrollment[key]["sourcedId"].as_str().unwrap();
            let path = format!("/ims/oneroster/v1p1/{collection}/{id}");
            assert_eq!(
                central.get(&kommune, &path).await.0,
                StatusCode::OK,
                "{key}"
            );
        }
    }
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bad_expired_and_revoked_credentials_are_refused() {
    let (central, _devices) = three_schools().await;
    let (id, secret) = central.client(json!({"county": "46"})).await;
    let users = "/ims/oneroster/v1p1/users";

    let response = central
        .http
        .get(central.consumer_url(users))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for token in ["not-a-token", &"ab".repeat(32)] {
        let (status, _, body) = central.get(token, users).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code_minor(&body), "unauthorisedrequest");
    }

    let (status, body) = central
        .token_request(&id, "wrong", "grant_type=client_credentials")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = central
        .token_request("nobody", &secret, "grant_type=client_credentials")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = central
        .token_request(&id, &secret, "grant_type=password")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    // The form is a way to send the credentials too.
    let response = central
        .http
        .post(central.consumer_url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(central.get(&token, users).await.0, StatusCode::OK);

    // A token past its lifetime.
    let expired = "cd".repeat(32);
    let hash: [u8; 32] = Sha256::digest(expired.as_bytes()).into();
    let now = Timestamp(now_ms());
    central
        .store
        .create_consumer_token(&hash, &id, Timestamp(now.0 - 1), Timestamp(0))
        .await
        .unwrap();
    let (status, _, body) = central.get(&expired, users).await;
    assert_eq!(
        (status, code_minor(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorisedrequest")
    );

    // Revoking the client ends its live tokens and its secret.
    let response = central
        .admin
        .post(central.admin_url(&format!("/admin/clients/{id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(central.get(&token, users).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = central
        .token_request(&id, &secret, "grant_type=client_credentials")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let listed: Value = central
        .admin
        .get(central.admin_url("/admin/clients"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["client_id"], id.as_str());
    assert_eq!(listed[0]["revoked"], true);
    assert_eq!(listed[0]["scope"], json!({"county": "46"}));
    assert!(listed[0].get("client_secret").is_none());

    for bad in [
        json!({"name": "x", "scope": {"county": "4601"}}),
        json!({"name": "x", "scope": {"fylke": "46"}}),
        json!({"name": "", "scope": {"kommune": "4601"}}),
    ] {
        let response = central
            .admin
            .post(central.admin_url("/admin/clients"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elevliste_export_reads_back_with_the_agents_reader_as_central_holds_it() {
    let (central, mut devices) = three_schools().await;
    let before = Timestamp(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = elevliste(FANA, &fana_rows()).replace("Oskar;", "Oscar;");
    central.transfer(&mut devices[0], &changed).await;

    let export = |query: String| central.export_elevliste(query);
    let (status, headers, bytes) = export("county=46&grade=10".to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["x-skolebro-left-out"], "1",
        "the student without a valid id"
    );
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("elevliste-46-10.csv"));

    // Independently of any reader: the file's rows, field by field, are the grade-10 pupils
    // with a valid id that the schools' exports listed (counted by hand from the rows above),
    // Oskar under his new name.
    let text = std::str::from_utf8(&bytes).expect("the export is UTF-8");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|line| line.split(';').collect())
        .collect();
    let written = [
        (synthetic_id(1), "Åsheim", "Kari", "46505"),
        (synthetic_id(2), "Nilsen", "Oscar", "46505"),
        (synthetic_id(3), "Bjørnstad", "Ola", "46505"),
        (synthetic_id(11), "Lie", "Emma", "46701"),
    ];
    assert_eq!(rows.len(), written.len(), "{text}");
    for (id, family, given, school) in &written {
        assert!(
            rows.iter().any(|row| [id.as_str(), family, given, school]
                .iter()
                .all(|field| row.contains(field))),
            "a row with {given} {family} of {school}: {text}"
        );
    }

    let parsed = central.read_elevliste("export.csv", &bytes);

    // What central holds for grade 10 in county 46, from both of its schools.
    let mut expected = Roster::default();
    for device in &devices[..2] {
        let roster = central.store.current_roster(&device.site).await.unwrap();
        let groups: Vec<_> = roster
            .groups
            .iter()
            .filter(|group| group.grade.as_deref() == Some("10"))
            .cloned()
            .collect();
        let enrollments: Vec<_> = roster
            .enrollments
            .iter()
            .filter(|enrollment| {
                groups
                    .iter()
                    .any(|group| Some(&group.source_key) == enrollment.group.as_ref())
                    && roster
                        .students
                        .iter()
                        .any(|s| s.source_key == enrollment.student && s.national_id.is_some())
            })
            .cloned()
            .collect();
        expected.students.extend(
            roster
                .students
                .iter()
                .filter(|s| enrollments.iter().any(|e| e.student == s.source_key))
                .cloned(),
        );
        expected.schools.extend(roster.schools.iter().cloned());
        expected.groups.extend(groups);
        expected.enrollments.extend(enrollments);
    }
    let sort = |roster: &mut Roster| {
        roster
            .schools
            .sort_by(|a, b| a.skolenummer.cmp(&b.skolenummer));
        roster
            .students
            .sort_by(|a, b| a.source_key.cmp(&b.source_key));
        roster
            .groups
            .sort_by(|a, b| a.source_key.cmp(&b.source_key));
        roster
            .enrollments
            .sort_by(|a, b| a.source_key.cmp(&b.source_key));
    };
    let mut parsed = parsed;
    sort(&mut parsed);
    sort(&mut expected);
    assert_eq!(expected.students.len(), 4, "3 at Fana, 1 at Voss");
    assert_eq!(parsed, expected);
    assert!(parsed.students.iter().any(|s| s.given_name == "Oscar"));

    // As of before the change: the earlier name.
    let (status, _, bytes) = export(format!("county=46&grade=10&as_of={before}")).await;
    assert_eq!(status, StatusCode::OK);
    let earlier = central.read_elevliste("earlier.csv", &bytes);
    assert!(earlier.students.iter().any(|s| s.given_name == "Oskar"));
    assert!(!earlier.students.iter().any(|s| s.given_name == "Oscar"));

    // Oslo's grade 10 only in county 03; no grade 9 for the wrong county.
    let (_, _, bytes) = export("county=03&grade=10".to_owned()).await;
    let oslo = central.read_elevliste("oslo.csv", &bytes);
    assert_eq!(oslo.students.len(), 2);
    assert_eq!(oslo.schools[0].skolenummer, "301010");
    let (_, _, bytes) = export("county=03&grade=9".to_owned()).await;
    assert!(central
        .read_elevliste("none.csv", &bytes)
        .students
        .is_empty());

    for query in [
        "county=4601&grade=10",
        "county=46",
        "county=46&grade=10&as_of=soon",
    ] {
        let (status, _, _) = export(query.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_batch_changes_the_current_roster_but_not_the_closed_windows_frozen_file() {
    let (central, mut devices) = three_schools().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closes = Timestamp(now_ms());
    let create = |body: Value| {
        let central = &central;
        async move {
            let response = central
                .admin
                .post(central.admin_url("/admin/windows"))
                .json(&body)
                .send()
                .await
                .expect("the admin listener answers");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, window) = create(json!({
        "fylke": "46",
        "name": "Inntak 2027",
        "opens": Timestamp(closes.0 - 3_600_000).to_string(),
        "closes": closes.to_string(),
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{window}");
    let id = window["id"].as_i64().expect("an id");
    // County 03's window is still open: its file is the current state.
    let (status, open) = create(json!({
        "fylke": "03",
        "name": "Inntak 2027",
        "opens": "2020-01-01",
        "closes": "2100-01-01T00:00:00+01:00",
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{open}");
    assert_eq!(open["state"], "open");

    // Fana delivers again after the deadline: applied and kept, but late.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = elevliste(FANA, &fana_rows()).replace("Oskar;", "Oscar;");
    central.transfer(&mut devices[0], &changed).await;

    let export = |query: String| central.export_elevliste(query);
    let (status, headers, bytes) = export(format!("window={id}&grade=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-skolebro-as-of"], closes.to_string().as_str());
    let frozen = central.read_elevliste("frozen.csv", &bytes);
    assert!(frozen.students.iter().any(|s| s.given_name == "Oskar"));
    assert!(!frozen.students.iter().any(|s| s.given_name == "Oscar"));
    assert_eq!(frozen.students.len(), 4, "3 at Fana, 1 at Voss");
    let (_, _, again) = export(format!("window={id}&grade=10&county=46")).await;
    assert_eq!(again, bytes, "the same file, with the window's own county");

    let (_, headers, bytes) = export("county=46&grade=10".to_owned()).await;
    assert!(headers.get("x-skolebro-as-of").is_none());
    let current = central.read_elevliste("current.csv", &bytes);
    assert!(current.students.iter().any(|s| s.given_name == "Oscar"));

    let open_id = open["id"].as_i64().expect("an id");
    let (status, headers, bytes) = export(format!("window={open_id}&grade=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-skolebro-as-of").is_none());
    assert_eq!(central.read_elevliste("oslo.csv", &bytes).students.len(), 2);

    let listed: Value = central
        .admin
        .get(central.admin_url("/admin/windows?fylke=46"))
        .send()
        .await
        .expect("the admin listener answers")
        .json()
        .await
        .expect("JSON");
    let windows = listed["windows"].as_array().expect("a list");
    assert_eq!(windows.len(), 1, "{listed}");
    assert_eq!(windows[0]["state"], "closed");
    assert_eq!(windows[0]["sites"], 2);
    assert_eq!(
        windows[0]["delivered"],
        json!(["skole-46505", "skole-46701"])
    );
    let late = windows[0]["late"].as_array().expect("late batches");
    assert_eq!(late.len(), 1, "{listed}");
    assert_eq!(late[0]["site"], "skole-46505");
    assert_eq!(late[0]["seq"], 2);

    for (query, expected) in [
        (
            format!("window={id}&grade=10&as_of=2027-01-01"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("window={id}&grade=10&county=03"),
            StatusCode::BAD_REQUEST,
        ),
        ("window=9999&grade=10".to_owned(), StatusCode::NOT_FOUND),
        ("window=x&grade=10".to_owned(), StatusCode::BAD_REQUEST),
        ("grade=10".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(export(query.clone()).await.0, expected, "{query}");
    }
    for (body, expected) in [
        (
            json!({"fylke": "46", "name": "Overlap", "opens": "2020-01-01", "closes": "2100-01-01"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"fylke": "46", "name": "Backwards", "opens": "2101-01-02", "closes": "2101-01-01"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"fylke": "4601", "name": "x", "opens": "2101-01-01", "closes": "2101-01-02"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"fylke": "46", "name": "x", "opens": "soon", "closes": "2101-01-02"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    // The two windows created are audited; the refused attempts are not.
    let audit = central.store.audit_log(50).await.expect("the audit log");
    let created: Vec<_> = audit
        .iter()
        .filter(|line| line.action == "create_window")
        .map(|line| (line.actor.as_str(), line.target.as_str()))
        .collect();
    assert_eq!(
        created,
        [("api:tests", "county 03"), ("api:tests", "county 46")]
    );
    central.stop().await;
}

/// Creates a window of county 46 for the 2019 intake and asks for its frozen file.
async fn old_window_export(central: &Central) -> (StatusCode, Vec<u8>) {
    let response = central
        .admin
        .post(central.admin_url("/admin/windows"))
        .json(&json!({
            "fylke": "46",
            "name": "Inntak 2020",
            "opens": "2019-10-01",
            "closes": "2019-11-15T23:59:59Z",
        }))
        .send()
        .await
        .expect("the admin listener answers");
    assert_eq!(response.status(), StatusCode::CREATED);
    let window: Value = response.json().await.expect("JSON");
    let id = window["id"].as_i64().expect("an id");
    let (status, _, body) = central
        .export_elevliste(format!("window={id}&grade=10"))
        .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_closed_before_its_countys_retention_is_answered_in_words() {
    // The default keeps two school years: a 2019 deadline is long gone.
    let central = CentralOptions::default().start().await;
    let (status, body) = old_window_export(&central).await;
    assert_eq!(status, StatusCode::GONE);
    let answer: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(answer["error"], "window_beyond_retention");
    let detail = answer["detail"].as_str().expect("words");
    assert!(
        detail.contains("closed on 2019-11-15") && detail.contains("can no longer be generated"),
        "{detail}"
    );
    central.stop().await;

    // County 46 keeping twenty school years still has the history of that deadline.
    let mut privacy = PrivacyConfig::default();
    privacy.fylke.insert(
        "46".to_owned(),
        CountyRetentionConfig {
            record_school_years: Some(20),
            departed_school_years: Some(20),
        },
    );
    let central = CentralOptions {
        retention: privacy.retention_policy().expect("a valid policy"),
        ..CentralOptions::default()
    }
    .start()
    .await;
    let (status, body) = old_window_export(&central).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pupil_whose_key_changes_keeps_its_sourced_id_and_its_enrollments_point_at_it() {
    use skolebro_protocol::Entity;
    use skolebro_roster::diff::{diff, Fingerprints};
    use skolebro_roster::state::State;
    use skolebro_roster::validate::{Rename, Validated};

    let central = Central::start().await;
    let mut fana = central.device("skole-46505", 0xa1).await;
    let secret = SiteSecret::from_bytes([0xa1; 32]);
    let before = central.read_elevliste("before.csv", elevliste(FANA, &fana_rows()).as_bytes());
    central.register(&fana, &before).await;
    central
        .send(&mut fana, Payload::Snapshot(before.clone()))
        .await;
    let token = central.token(json!({"county": "46"})).await;
    let (_, _, users) = central.get(&token, "/ims/oneroster/v1p1/users").await;
    let (_, _, enrollments) = central.get(&token, "/ims/oneroster/v1p1/enrollments").await;
    let users_before = by_id(&users, "users");
    let enrollments_before = by_id(&enrollments, "enrollments");
    let (oskar, _) = users_before
        .iter()
        .find(|(_, user)| user["givenName"] == "Oskar")
        .expect("Oskar is a user");
    let oskar = oskar.clone();

    // The source gives Oskar a new key (his key is his national id) and says which it
    // replaces: the agent's differ sends the rename with its upsert and delete.
    let (old_key, new_key) = (synthetic_id(2), synthetic_id(5));
    let rows: Vec<_> = fana_rows()
        .into_iter()
        .map(|(class, grade, id, family, given)| {
            let id = if id == old_key { new_key.clone() } else { id };
            (class, grade, id, family, given)
        })
        .collect();
    let after = central.read_elevliste("after.csv", elevliste(FANA, &rows).as_bytes());
    let export = Validated {
        roster: after.clone(),
        renames: vec![Rename {
            entity: Entity::Student,
            from: old_key.clone(),
            to: new_key.clone(),
        }],
        ..Validated::default()
    };
    let (delta, summary) = diff(
        &State::of(&before, &secret),
        &export,
        &Fingerprints::of(&after, &secret),
        &secret,
    );
    assert_eq!(summary.renamed(Entity::Student), 1);
    assert_eq!(delta.enrollments.renames.len(), 1);
    central.send(&mut fana, Payload::Delta(delta)).await;

    let (_, _, users) = central.get(&token, "/ims/oneroster/v1p1/users").await;
    let (_, _, enrollments) = central.get(&token, "/ims/oneroster/v1p1/enrollments").await;
    let users_after = by_id(&users, "users");
    let enrollments_after = by_id(&enrollments, "enrollments");
    assert_eq!(
        users_after.keys().collect::<Vec<_>>(),
        users_before.keys().collect::<Vec<_>>(),
        "the same users: none removed, none added"
    );
    assert_eq!(users_after[&oskar]["identifier"], new_key.as_str());
    assert!(users_after.values().all(|user| user["status"] == "active"));
    assert_eq!(
        enrollments_after.keys().collect::<Vec<_>>(),
        enrollments_before.keys().collect::<Vec<_>>(),
        "the renamed enrollment keeps its id too"
    );
    let oskars: Vec<_> = enrollments_after
        .values()
        .filter(|enrollment| enrollment["user"]["sourcedId"] == oskar.as_str())
        .collect();
    assert_eq!(oskars.len(), 1, "his enrollment points at the id he kept");
    let (status, _, one) = central
        .get(&token, &format!("/ims/oneroster/v1p1/users/{oskar}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["user"]["givenName"], "Oskar");
    central.stop().await;
}

/// The URLs of a `Link` header by relation.
fn links(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(value) = headers.get("link") else {
        return Vec::new();
    };
    value
        .to_str()
        .expect("a text header")
        .split(", ")
        .map(|link| {
            let (url, rel) = link.split_once(">; rel=\"").expect("<url>; rel=\"…\"");
            (
                rel.trim_end_matches('"').to_owned(),
                url.trim_start_matches('<').to_owned(),
            )
        })
        .collect()
}

fn link<'a>(links: &'a [(String, String)], rel: &str) -> Option<&'a str> {
    links
        .iter()
        .find(|(name, _)| name == rel)
        .map(|(_, url)| url.as_str())
}

impl Central {
    /// A GET of an absolute URL, as a client following a `Link` does.
    async fn get_url(&self, token: &str, url: &str) -> (StatusCode, HeaderMap, Value) {
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("the consumer listener answers");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.json().await.expect("JSON"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_public_url_names_every_link_and_href_whatever_the_host_asked() {
    let central = Central::start_with(Some("https://api.example.no/skolebro/")).await;
    let mut fana = central.device("skole-46505", 0xa1).await;
    central
        .transfer(&mut fana, &elevliste(FANA, &fana_rows()))
        .await;
    let token = central.token(json!({"county": "46"})).await;
    let public = "https://api.example.no/skolebro/ims/oneroster/v1p1";

    let (status, headers, body) = central
        .get(&token, "/ims/oneroster/v1p1/students?limit=1&offset=1")
        .await;
    assert_eq!(status, StatusCode::OK);
    let links = links(&headers);
    assert_eq!(links.len(), 4, "first, prev, next and last");
    for (rel, url) in &links {
        assert!(
            url.starts_with(&format!("{public}/students?limit=1&offset=")),
            "{rel}: {url}"
        );
    }
    let org = &body["users"][0]["orgs"][0];
    assert_eq!(
        org["href"],
        format!("{public}/orgs/{}", org["sourcedId"].as_str().unwrap()).as_str()
    );
    let (_, _, class) = central
        .get(&token, "/ims/oneroster/v1p1/classes?limit=1")
        .await;
    for field in ["course", "school"] {
        let href = class["classes"][0][field]["href"].as_str().unwrap();
        assert!(href.starts_with(public), "{field}: {href}");
    }
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_links_keeps_the_filter_and_serves_each_match_once() {
    let (central, mut devices) = three_schools().await;
    let token = central.token(json!({"county": "46"})).await;
    let since = Timestamp(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = elevliste(FANA, &fana_rows())
        .replace("Oskar.Nilsen@skule.example.no", "oskar@skule.example.no")
        .replace("Noah.Hansen@skule.example.no", "noah@skule.example.no")
        .replace("Ola.Bjørnstad@skule.example.no", "ola@skule.example.no");
    central.transfer(&mut devices[0], &changed).await;

    let filter = encode(&format!("dateLastModified>='{since}'"));
    let first = format!("/ims/oneroster/v1p1/users?limit=2&filter={filter}&sort=familyName");
    let (status, headers, page) = central.get(&token, &first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "3");
    let mut seen: Vec<String> = field(&page, "users", "email").into_iter().collect();
    let mut links = links(&headers);
    assert_eq!(link(&links, "prev"), None);
    let origin = central.consumer_url("");
    for rel in ["first", "next", "last"] {
        let url = link(&links, rel).unwrap_or_else(|| panic!("a {rel} link"));
        assert!(
            url.starts_with(&format!("{origin}/ims/oneroster/v1p1/users?")),
            "{url}"
        );
        assert!(url.contains(&format!("filter={filter}")), "{url}");
        assert!(url.contains("sort=familyName"), "{url}");
    }
    let mut pages = 1;
    while let Some(next) = link(&links, "next").map(str::to_owned) {
        let (status, headers, page) = central.get_url(&token, &next).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-total-count"], "3");
        seen.extend(field(&page, "users", "email"));
        links = self::links(&headers);
        pages += 1;
        assert!(pages <= 3, "the links end");
    }
    assert!(link(&links, "prev").is_some());
    seen.sort();
    assert_eq!(
        seen,
        [
            "noah@skule.example.no",
            "ola@skule.example.no",
            "oskar@skule.example.no"
        ]
    );

    // Filters, sort and fields beyond dateLastModified.
    let query = encode("role='student' AND familyName~'s' OR familyName='Vik'");
    let (status, headers, body) = central
        .get(
            &token,
            &format!(
                "/ims/oneroster/v1p1/students?filter={query}&sort=familyName&orderBy=desc\
                 &fields=familyName,givenName"
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "5");
    let names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["familyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Åsheim", "Vik", "Nilsen", "Hansen", "Bjørnstad"]);
    assert_eq!(
        body["users"][0].as_object().unwrap().len(),
        2,
        "only the fields asked for"
    );
    central.stop().await;
}

/// Follows the `next` links from `path` to the end (at most `max_pages`), checking that each
/// link is absolute under `base` and keeps `query`; the objects of every page, in order.
async fn walk(
    central: &Central,
    token: &str,
    base: &str,
    path: &str,
    query: &str,
    max_pages: usize,
) -> Vec<Value> {
    let collection = path.split('/').next().unwrap_or(path);
    let key = match collection {
        "schools" => "orgs",
        "students" => "users",
        other => other,
    };
    let (status, mut headers, mut page) =
        central.get(token, &format!("{base}/{path}?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    let total: usize = headers["x-total-count"].to_str().unwrap().parse().unwrap();
    let origin = central.consumer_url("");
    let mut objects = Vec::new();
    for _ in 0..max_pages {
        objects.extend(page[key].as_array().expect("a list").iter().cloned());
        let links = links(&headers);
        for (rel, url) in &links {
            assert!(
                url.starts_with(&format!("{origin}{base}/{path}?")),
                "{rel}: {url}"
            );
            for parameter in query.split('&').filter(|p| !p.starts_with("limit=")) {
                assert!(url.contains(parameter), "{rel}: {url} keeps {parameter}");
            }
        }
        let Some(next) = link(&links, "next").map(str::to_owned) else {
            assert_eq!(objects.len(), total, "{path}: every match once");
            return objects;
        };
        (_, headers, page) = central.get_url(token, &next).await;
    }
    panic!("{path}: the links end within {max_pages} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1p2_endpoints_page_under_a_filter_by_their_links_in_v1p2_shapes() {
    let (central, mut devices) = three_schools().await;
    let token = central.token(json!({"county": "46"})).await;
    let v1p1 = "/ims/oneroster/v1p1";
    let active = format!("limit=2&filter={}", encode("status='active'"));
    for path in [
        "users",
        "students",
        "orgs",
        "schools",
        "classes",
        "enrollments",
        "courses",
        "academicSessions",
        "demographics",
    ] {
        let objects = walk(&central, &token, V1P2, path, &active, 100).await;
        let walked: BTreeSet<String> = objects
            .iter()
            .map(|object| object["sourcedId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(walked.len(), objects.len(), "{path}: each once");
        assert_eq!(
            walked,
            ids(&central, &token, &format!("{v1p1}/{path}")).await
        );
        for object in &objects {
            assert_eq!(object["status"], "active", "{path}");
            let text = object.to_string();
            assert!(!text.contains(v1p1), "{path}: every href under 1.2: {text}");
        }
    }

    // Users: roles (each the primary one at its org) and primaryOrg, not role and orgs;
    // enabledUser and primary the strings 1.1 writes; no field written `null`.
    let users = walk(&central, &token, V1P2, "users", "limit=3", 100).await;
    for user in &users {
        assert!(
            user.get("role").is_none() && user.get("orgs").is_none(),
            "{user}"
        );
        assert_eq!(user["enabledUser"], "true");
        let roles = user["roles"].as_array().unwrap();
        assert!(!roles.is_empty(), "{user}");
        assert!(
            roles.iter().all(|role| role["roleType"] == "primary"),
            "{user}"
        );
        assert_eq!(user["roles"][0]["role"], "student");
        assert!(
            user.as_object().unwrap().values().all(|v| !v.is_null()),
            "{user}"
        );
        assert_eq!(user["roles"][0]["org"], user["primaryOrg"]);
        assert!(user["primaryOrg"]["href"]
            .as_str()
            .unwrap()
            .starts_with(&central.consumer_url(&format!("{V1P2}/orgs/"))));
    }
    let enrollments = walk(&central, &token, V1P2, "enrollments", "limit=50", 100).await;
    assert!(enrollments.iter().all(|e| e["primary"] == "true"));

    // Filters, sort and fields name 1.2's fields: a school's pupils by their primaryOrg.
    let school = users[0]["primaryOrg"]["sourcedId"].as_str().unwrap();
    let query = format!(
        "limit=1&filter={}&sort=familyName&fields={}",
        encode(&format!("primaryOrg='{school}' AND enabledUser='true'")),
        encode("sourcedId,roles,familyName"),
    );
    let pupils = walk(&central, &token, V1P2, "users", &query, 100).await;
    let expected = ids(
        &central,
        &token,
        &format!("{v1p1}/schools/{school}/students"),
    )
    .await;
    assert_eq!(
        pupils
            .iter()
            .map(|u| u["sourcedId"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        expected
    );
    assert!(pupils.iter().all(|u| u.as_object().unwrap().len() == 3));
    for (bad, code) in [
        (
            format!("users?filter={}", encode("role='student'")),
            "invalid_filter_field",
        ),
        ("users?fields=orgs".to_owned(), "invalid_selection_field"),
        ("users?sort=role".to_owned(), "invaliddata"),
    ] {
        let (status, _, body) = central.get(&token, &format!("{V1P2}/{bad}")).await;
        assert_eq!(
            (status, code_minor(&body)),
            (StatusCode::BAD_REQUEST, code),
            "{bad}: {body}"
        );
    }

    // The change feed: changes since, and what left the scope as tobedeleted, in 1.2 shape.
    let since = hansen_leaves_and_nilsen_changes(&central, &mut devices[0]).await;
    let feed = format!(
        "limit=1&filter={}",
        encode(&format!("dateLastModified>='{since}'"))
    );
    let changes = walk(&central, &token, V1P2, "users", &feed, 10).await;
    let by_status: BTreeSet<(&str, &str)> = changes
        .iter()
        .map(|u| {
            (
                u["status"].as_str().unwrap(),
                u["familyName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_status,
        BTreeSet::from([("active", "Nilsen"), ("tobedeleted", "Hansen")])
    );
    for user in &changes {
        assert!(user.get("role").is_none(), "{user}");
        assert_eq!(user["roles"][0]["roleType"], "primary", "{user}");
        assert_eq!(user["enabledUser"], "true", "{user}");
    }
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projects_own_oneroster_rest_reader_reads_the_v1p2_pages_into_the_roster_served() {
    let (central, _devices) = three_schools().await;
    let token = central.token(json!({"county": "46"})).await;
    let mut rest = RestRoster::new(false);
    let mut builder = RosterBuilder::new(Default::default());
    let mut served = std::collections::BTreeMap::new();
    for path in ["schools", "students", "classes", "enrollments"] {
        served.insert(
            path,
            walk(&central, &token, V1P2, path, "limit=2", 100).await,
        );
    }
    let page = |path: &str, key: &str| json!({ key: served[path] }).to_string();
    rest.read_orgs_page(page("schools", "orgs").as_bytes(), "schools")
        .unwrap();
    let students = page("students", "users");
    rest.read_users_page(students.as_bytes(), "students", &mut builder)
        .unwrap();
    let classes = page("classes", "classes");
    rest.read_classes_page(classes.as_bytes(), "classes", &mut builder)
        .unwrap();
    let enrollments = page("enrollments", "enrollments");
    rest.read_enrollments_page(enrollments.as_bytes(), "enrollments", &mut builder)
        .unwrap();
    rest.finish(&mut builder);
    let validated = builder.finish();
    assert_eq!(validated.deviations, vec![]);
    let roster = validated.roster;
    assert_eq!(roster.schools.len(), served["schools"].len());
    assert_eq!(roster.groups.len(), served["classes"].len());
    assert_eq!(roster.enrollments.len(), served["enrollments"].len());
    let students = &served["students"];
    let served: BTreeSet<&str> = students
        .iter()
        .map(|user| user["identifier"].as_str().unwrap())
        .filter(|id| !id.is_empty())
        .collect();
    assert_eq!(roster.students.len(), students.len());
    let read: BTreeSet<&str> = roster
        .students
        .iter()
        .filter_map(|student| student.national_id.as_ref().map(|id| id.as_str()))
        .collect();
    assert_eq!(read, served);
    central.stop().await;
}

/// The sourcedIds of a list answer.
async fn ids(central: &Central, token: &str, path: &str) -> BTreeSet<String> {
    let (status, _, body) = central.get(token, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let key = body
        .as_object()
        .and_then(|object| object.keys().next().cloned())
        .expect("one list");
    field(&body, &key, "sourcedId")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rostering_endpoint_shows_the_callers_scope_and_hides_the_rest() {
    let (central, _devices) = three_schools().await;
    let county = central.token(json!({"county": "46"})).await;
    let fana = central.token(json!({"kommune": "4601"})).await;
    let base = "/ims/oneroster/v1p1";

    let voss_only = |collection: &'static str| {
        let central = &central;
        let (county, fana) = (county.clone(), fana.clone());
        async move {
            let path = format!("{base}/{collection}?limit=1000");
            let all = ids(central, &county, &path).await;
            let own = ids(central, &fana, &path).await;
            assert!(own.is_subset(&all), "{collection}");
            all.difference(&own).cloned().collect::<Vec<_>>()
        }
    };
    // Every family has objects only the county client sees (Voss's), and each is 404 to
    // the kommune client by id and absent from its lists under any parent.
    for collection in [
        "schools",
        "students",
        "classes",
        "enrollments",
        "courses",
        "demographics",
    ] {
        let hidden = voss_only(collection).await;
        assert!(!hidden.is_empty(), "{collection}");
        for id in &hidden {
            let path = format!("{base}/{collection}/{id}");
            assert_eq!(
                central.get(&county, &path).await.0,
                StatusCode::OK,
                "{path}"
            );
            let (status, _, body) = central.get(&fana, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(code_minor(&body), "unknownobject");
        }
    }
    let voss_school = &voss_only("schools").await[0];
    let voss_class = &voss_only("classes").await[0];
    let voss_student = &voss_only("students").await[0];
    let voss_course = &voss_only("courses").await[0];
    for path in [
        format!("{base}/schools/{voss_school}/classes"),
        format!("{base}/schools/{voss_school}/students"),
        format!("{base}/schools/{voss_school}/teachers"),
        format!("{base}/schools/{voss_school}/enrollments"),
        format!("{base}/schools/{voss_school}/courses"),
        format!("{base}/schools/{voss_school}/classes/{voss_class}/students"),
        format!("{base}/classes/{voss_class}/students"),
        format!("{base}/classes/{voss_class}/teachers"),
        format!("{base}/courses/{voss_course}/classes"),
        format!("{base}/students/{voss_student}/classes"),
        format!("{base}/users/{voss_student}/classes"),
    ] {
        assert_eq!(
            central.get(&county, &path).await.0,
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            central.get(&fana, &path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    // Under a parent, a list holds what the parent's references say.
    let fana_school = ids(&central, &fana, &format!("{base}/schools")).await;
    let fana_school = fana_school.first().unwrap();
    for collection in ["classes", "students"] {
        let under = format!("{base}/schools/{fana_school}/{collection}");
        let all = format!("{base}/{collection}");
        assert_eq!(
            ids(&central, &fana, &under).await,
            ids(&central, &fana, &all).await
        );
    }
    let (_, _, classes) = central.get(&fana, &format!("{base}/classes")).await;
    let mut enrolled = 0;
    for class in classes["classes"].as_array().unwrap() {
        let id = class["sourcedId"].as_str().unwrap();
        let course = class["course"]["sourcedId"].as_str().unwrap();
        let term = class["terms"][0]["sourcedId"].as_str().unwrap();
        let (status, _, session) = central
            .get(&fana, &format!("{base}/academicSessions/{term}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (
                &session["academicSession"]["title"],
                &session["academicSession"]["startDate"],
                &session["academicSession"]["endDate"],
                &session["academicSession"]["type"],
            ),
            (
                &json!("2026/2027"),
                &json!("2026-08-01"),
                &json!("2027-07-31"),
                &json!("schoolYear")
            )
        );
        assert!(
            ids(&central, &fana, &format!("{base}/courses/{course}/classes"))
                .await
                .contains(id)
        );
        enrolled += ids(&central, &fana, &format!("{base}/classes/{id}/students"))
            .await
            .len();
    }
    assert_eq!(enrolled, 5, "each Fana student in one class");
    assert!(ids(&central, &fana, &format!("{base}/teachers"))
        .await
        .is_empty());
    assert!(ids(&central, &fana, &format!("{base}/terms"))
        .await
        .is_empty());
    for path in [
        format!("{base}/lineItems"),
        "/ims/oneroster/v1p2/users".to_owned(),
        "/".to_owned(),
    ] {
        let (status, _, body) = central.get(&fana, &path).await;
        assert_eq!(
            (status, code_minor(&body)),
            (StatusCode::NOT_FOUND, "unknownobject"),
            "{path}: {body}"
        );
    }
    central.stop().await;
}

/// Replaces every RFC 3339 time of an answer (`dateLastModified`) with a marker, and the
/// origin of every `href` (the port the test's listener got) with another, so a golden file
/// holds the shape and the content but not the moment or the port the test ran with.
fn normalise(value: &mut Value) {
    match value {
        Value::String(text) if text.len() > 10 && Timestamp::parse_rfc3339(text).is_some() => {
            *text = "<time>".to_owned();
        }
        Value::String(text) if text.starts_with("http://127.0.0.1:") => {
            if let Some(at) = text.find("/ims/oneroster/") {
                *text = format!("<origin>{}", &text[at..]);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        Value::Object(object) => object.values_mut().for_each(normalise),
        _ => {}
    }
}

/// Compares an answer with `tests/golden/oneroster/{name}.json`; with
/// `SKOLEBRO_UPDATE_GOLDEN=1` in the environment the file is written instead.
fn golden(name: &str, status: StatusCode, mut body: Value) {
    normalise(&mut body);
    let answer = json!({"status": status.as_u16(), "body": body});
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/oneroster")
        .join(format!("{name}.json"));
    let text = format!("{}\n", serde_json::to_string_pretty(&answer).unwrap());
    if std::env::var_os("SKOLEBRO_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} exists (SKOLEBRO_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(text, expected, "{name} differs from {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_in_the_shape_of_its_golden_file() {
    answers_match_golden_files("/ims/oneroster/v1p1", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1p2_endpoint_answers_in_the_shape_of_its_golden_file() {
    answers_match_golden_files(V1P2, "v1p2/").await;
}

/// Where the OneRoster 1.2 rostering service lives.
const V1P2: &str = "/ims/oneroster/rostering/v1p2";

/// Asks every endpoint under `base` of a kommune's three schools and compares each answer
/// with its golden file, named with `prefix`.
async fn answers_match_golden_files(base: &str, prefix: &str) {
    let (central, _devices) = three_schools().await;
    let token = central.token(json!({"kommune": "4621"})).await;
    let first = |body: &Value, key: &str| body[key][0]["sourcedId"].as_str().unwrap().to_owned();
    let (_, _, schools) = central.get(&token, &format!("{base}/schools")).await;
    let (_, _, classes) = central.get(&token, &format!("{base}/classes")).await;
    let (_, _, users) = central.get(&token, &format!("{base}/users")).await;
    let (_, _, enrollments) = central.get(&token, &format!("{base}/enrollments")).await;
    let (_, _, courses) = central.get(&token, &format!("{base}/courses")).await;
    let (_, _, sessions) = central
        .get(&token, &format!("{base}/academicSessions"))
        .await;
    let school = first(&schools, "orgs");
    let class = first(&classes, "classes");
    let user = first(&users, "users");
    let enrollment = first(&enrollments, "enrollments");
    let course = first(&courses, "courses");
    let session = first(&sessions, "academicSessions");
    let missing = "00000000000000000000000000000000";
    for (name, path) in [
        ("orgs", "orgs".to_owned()),
        ("org", format!("orgs/{school}")),
        ("schools", "schools".to_owned()),
        ("school", format!("schools/{school}")),
        ("school_classes", format!("schools/{school}/classes")),
        ("school_students", format!("schools/{school}/students")),
        ("school_teachers", format!("schools/{school}/teachers")),
        (
            "school_enrollments",
            format!("schools/{school}/enrollments"),
        ),
        ("school_courses", format!("schools/{school}/courses")),
        ("school_terms", format!("schools/{school}/terms")),
        (
            "school_class_students",
            format!("schools/{school}/classes/{class}/students"),
        ),
        (
            "school_class_enrollments",
            format!("schools/{school}/classes/{class}/enrollments"),
        ),
        ("users", "users".to_owned()),
        ("user", format!("users/{user}")),
        ("user_classes", format!("users/{user}/classes")),
        ("students", "students".to_owned()),
        ("student", format!("students/{user}")),
        ("teachers", "teachers".to_owned()),
        ("classes", "classes".to_owned()),
        ("class", format!("classes/{class}")),
        ("class_students", format!("classes/{class}/students")),
        ("class_teachers", format!("classes/{class}/teachers")),
        ("enrollments", "enrollments".to_owned()),
        ("enrollment", format!("enrollments/{enrollment}")),
        ("courses", "courses".to_owned()),
        ("course", format!("courses/{course}")),
        ("course_classes", format!("courses/{course}/classes")),
        ("academic_sessions", "academicSessions".to_owned()),
        ("academic_session", format!("academicSessions/{session}")),
        ("terms", "terms".to_owned()),
        ("grading_periods", "gradingPeriods".to_owned()),
        ("demographics", "demographics".to_owned()),
        ("demographic", format!("demographics/{user}")),
        (
            "fields",
            "users?fields=sourcedId,givenName&sort=givenName".to_owned(),
        ),
        (
            "class_fields",
            format!("classes/{class}?fields=title,course"),
        ),
        ("error_unknown_object", format!("users/{missing}")),
        ("error_unknown_endpoint", "lineItems".to_owned()),
        (
            "error_filter_field",
            "users?filter=shoeSize%3D%2742%27".to_owned(),
        ),
        ("error_selection_field", "users?fields=shoeSize".to_owned()),
        ("error_limit", "users?limit=0".to_owned()),
    ] {
        let (status, _, body) = central.get(&token, &format!("{base}/{path}")).await;
        golden(&format!("{prefix}{name}"), status, body);
    }
    let (status, _, body) = central
        .get(&"ab".repeat(32), &format!("{base}/users"))
        .await;
    golden(&format!("{prefix}error_unauthorised"), status, body);
    central.stop().await;
}

/// A time, then Fana's next export: Hansen, alone in 9A, leaves Fana; Nilsen's e-mail
/// changes. Returns the time, from which a change feed sees both.
async fn hansen_leaves_and_nilsen_changes(central: &Central, fana: &mut Device) -> Timestamp {
    let since = Timestamp(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rows: Vec<_> = fana_rows()
        .into_iter()
        .filter(|row| row.3 != "Hansen")
        .collect();
    let after =
        elevliste(FANA, &rows).replace("Oskar.Nilsen@skule.example.no", "oskar@skule.example.no");
    central.transfer(fana, &after).await;
    since
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_feed_reports_what_left_the_scope_since_as_to_be_deleted() {
    let (central, mut devices) = three_schools().await;
    let token = central.token(json!({"kommune": "4601"})).await;
    let base = "/ims/oneroster/v1p1";
    let (_, _, before) = central.get(&token, &format!("{base}/users")).await;
    let hansen = before["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["familyName"] == "Hansen")
        .expect("Hansen is enrolled")
        .clone();
    let since = hansen_leaves_and_nilsen_changes(&central, &mut devices[0]).await;
    let transferred = Timestamp(now_ms());

    let feed = |collection: &'static str| {
        let central = &central;
        let token = token.clone();
        let filter = encode(&format!("dateLastModified>='{since}'"));
        async move {
            let (status, _, body) = central
                .get(&token, &format!("{base}/{collection}?filter={filter}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body[collection]
                .as_array()
                .unwrap_or_else(|| panic!("{collection}: {body}"))
                .clone()
        }
    };
    let users = feed("users").await;
    assert_eq!(users.len(), 2, "{users:?}");
    let gone = users.iter().find(|u| u["status"] == "tobedeleted").unwrap();
    assert_eq!(gone["sourcedId"], hansen["sourcedId"]);
    assert_eq!(gone["familyName"], "Hansen", "the object as it was");
    let when = Timestamp::parse_rfc3339(gone["dateLastModified"].as_str().unwrap()).unwrap();
    assert!(since < when && when <= transferred, "closed by the batch");
    let active = users.iter().find(|u| u["status"] == "active").unwrap();
    assert_eq!(active["email"], "oskar@skule.example.no");

    let statuses = |objects: &[Value]| -> Vec<String> {
        let mut statuses: Vec<String> = objects
            .iter()
            .map(|o| o["status"].as_str().unwrap().to_owned())
            .collect();
        statuses.sort();
        statuses
    };
    assert_eq!(
        statuses(&feed("classes").await),
        ["tobedeleted"],
        "9A is gone"
    );
    assert_eq!(statuses(&feed("enrollments").await), ["tobedeleted"]);
    // 9A was Fana's only class of trinn 9, so its course went with it; the school year,
    // which Fana's other classes keep, did not.
    let courses = feed("courses").await;
    assert_eq!(statuses(&courses), ["tobedeleted"]);
    assert_eq!(courses[0]["courseCode"], "trinn-9");
    let when = Timestamp::parse_rfc3339(courses[0]["dateLastModified"].as_str().unwrap()).unwrap();
    assert!(
        since < when && when <= transferred,
        "gone with its last class"
    );
    assert!(feed("academicSessions").await.is_empty());
    // Demographics change with their student record: Nilsen's is active, Hansen's gone.
    assert_eq!(
        statuses(&feed("demographics").await),
        ["active", "tobedeleted"]
    );
    assert!(feed("orgs").await.is_empty());

    // Without a change-feed filter, and by id, a deleted object is simply absent.
    let (_, _, all) = central.get(&token, &format!("{base}/users")).await;
    assert_eq!(all["users"].as_array().unwrap().len(), 4);
    let id = hansen["sourcedId"].as_str().unwrap();
    assert_eq!(
        central.get(&token, &format!("{base}/users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    // Another scope's feed does not see Fana's deletions.
    let oslo = central.token(json!({"county": "03"})).await;
    let filter = encode(&format!("dateLastModified>='{since}'"));
    let (_, _, body) = central
        .get(&oslo, &format!("{base}/users?filter={filter}"))
        .await;
    assert_eq!(body["users"], json!([]));
    central.stop().await;
}

impl Central {
    /// `GET /admin/access-log?{query}`: the logged reads, newest first.
    async fn access_log(&self, query: &str) -> Vec<Value> {
        let response = self
            .admin
            .get(self.admin_url(&format!("/admin/access-log?{query}")))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON");
        body["reads"].as_array().expect("a list of reads").clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_with_personal_data_is_logged_with_client_count_and_sites_and_ids_masked() {
    let (central, _devices) = three_schools().await;
    let (client, secret) = central.client(json!({"kommune": "4601"})).await;
    let (status, body) = central
        .token_request(&client, &secret, "grant_type=client_credentials")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("a token").to_owned();
    assert!(central.access_log("").await.is_empty(), "nothing read yet");

    // Schools are not personal data: no row.
    let (status, _, _) = central.get(&token, "/ims/oneroster/v1p1/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        central.access_log("").await.is_empty(),
        "orgs are not logged"
    );

    let (status, _, body) = central
        .get(&token, "/ims/oneroster/v1p1/users?limit=3&fields=givenName")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["users"].as_array().map(Vec::len), Some(3));
    let reads = central.access_log("").await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["client_id"], client.as_str());
    assert_eq!(reads[0]["client_name"], "Inntakskontoret");
    assert_eq!(reads[0]["endpoint"], "/ims/oneroster/v1p1/users");
    assert_eq!(reads[0]["filter"], Value::Null);
    assert_eq!(reads[0]["records"], 3, "the page served, not the total");
    assert_eq!(reads[0]["sites"], json!(["skole-46505"]));

    // A filter on a national id is kept with the id masked.
    let id = synthetic_id(1);
    let path = format!(
        "/ims/oneroster/v1p1/users?filter={}",
        encode(&format!("identifier='{id}'"))
    );
    let (status, _, body) = central.get(&token, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["users"].as_array().map(Vec::len), Some(1));
    let reads = central.access_log(&format!("client={client}")).await;
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(
        reads[0]["filter"],
        format!("identifier='{}*****'", &id[..6]),
        "newest first, the id masked"
    );
    assert_eq!(reads[0]["records"], 1);
    let log = serde_json::to_string(&reads).expect("JSON");
    assert!(!log.contains(&id), "no national id in the log");

    // Per site: Fana's reads; Oslo was not read.
    assert_eq!(central.access_log("site=skole-46505").await.len(), 2);
    assert!(central.access_log("site=skole-301010").await.is_empty());
    // Per kommune, as its operators see them: Fana's kommune, not Voss's.
    assert_eq!(central.access_log("kommune=4601").await.len(), 2);
    assert!(central.access_log("kommune=4621").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_export_a_leaving_site_then_purge_it_through_the_operator_api() {
    let (central, _devices) = three_schools().await;
    let response = central
        .admin
        .get(central.admin_url("/admin/sites/skole-46505/export"))
        .send()
        .await
        .expect("the admin listener answers");
    assert_eq!(response.status(), StatusCode::OK);
    let export: Value = response.json().await.expect("JSON");
    let files = export["files"].as_array().expect("files");
    let listed = export["manifest"]["files"].as_array().expect("a manifest");
    assert_eq!(files.len(), listed.len());
    for (file, entry) in files.iter().zip(listed) {
        let text = file["text"].as_str().expect("text");
        assert_eq!(entry["name"], file["name"]);
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(text.as_bytes()))
        );
    }
    let users = files
        .iter()
        .find(|file| file["name"] == "oneroster/users.csv")
        .and_then(|file| file["text"].as_str())
        .expect("users.csv");
    assert_eq!(users.lines().count(), 1 + fana_rows().len(), "{users}");

    let purge = |body: Value| {
        let central = &central;
        async move {
            let response = central
                .admin
                .post(central.admin_url("/admin/sites/skole-46505/purge"))
                .json(&body)
                .send()
                .await
                .expect("the admin listener answers");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, answer) = purge(json!({"confirm": "skole-46701", "reason": "closed"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "not_confirmed");
    let (status, answer) = purge(json!({"confirm": "skole-46505", "reason": "closed"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["devices_revoked"], 1);
    assert!(answer["records"].as_u64().is_some_and(|n| n > 0));
    let roster = central
        .admin
        .get(central.admin_url("/v1/sites/skole-46505/roster"))
        .send()
        .await
        .expect("the admin listener answers");
    assert_eq!(roster.status(), StatusCode::NOT_FOUND, "the site is gone");
    let audit = central.store.audit_log(10).await.expect("the audit log");
    assert!(audit
        .iter()
        .any(|line| line.action == "site_purge" && line.detail == "closed"));
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pupil_is_exported_and_erased_through_the_operator_api_and_not_stored_again_unseen() {
    let (central, mut devices) = three_schools().await;
    let (client, _) = central.client(json!({"kommune": "4601"})).await;
    let id = synthetic_id(1);
    let masked = format!("{}*****", &id[..6]);
    let post = |path: &'static str, body: Value| {
        let central = &central;
        async move {
            let response = central
                .admin
                .post(central.admin_url(path))
                .json(&body)
                .send()
                .await
                .expect("the admin listener answers");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };

    let (status, answer) = post(
        "/admin/subjects/export",
        json!({"national_id": "02871662944"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_national_id");
    assert!(
        !answer.to_string().contains("02871662944"),
        "the id is not echoed"
    );

    let (status, export) = post("/admin/subjects/export", json!({"national_id": id})).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["subject"], masked);
    assert_eq!(export["sites"], json!(["skole-46505"]));
    let versions: Vec<&Value> = export["records"]
        .as_array()
        .expect("records")
        .iter()
        .flat_map(|record| record["versions"].as_array().expect("versions"))
        .collect();
    assert!(versions
        .iter()
        .any(|v| v["entity"] == "student" && v["record"]["record"]["given_name"] == "Kari"));
    assert!(versions.iter().any(|v| v["entity"] == "enrollment"));
    let consumers = export["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!(consumers[0]["client_id"], client);
    // A municipality's reach: Voss's operators find nothing of a Fana pupil.
    let (_, voss) = post(
        "/admin/subjects/export",
        json!({"national_id": id, "kommune": "4621"}),
    )
    .await;
    assert_eq!(voss["records"], json!([]));

    let (status, answer) = post(
        "/admin/subjects/erase",
        json!({"national_id": id, "confirm": synthetic_id(2), "reason": "art. 17"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "not_confirmed");
    let (status, erased) = post(
        "/admin/subjects/erase",
        json!({"national_id": id, "confirm": id, "reason": "art. 17"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["subject"], masked);
    assert_eq!(erased["sites"], json!(["skole-46505"]));
    assert_eq!(erased["versions"].as_u64(), Some(versions.len() as u64));
    let (_, after) = post("/admin/subjects/export", json!({"national_id": id})).await;
    assert_eq!(after["records"], json!([]));
    assert_eq!(after["erased"].as_array().map(Vec::len), Some(1));

    // The school sends the same export again: Kari is held back, the tombstone says so.
    let fana = &mut devices[0];
    central.transfer(fana, &elevliste(FANA, &fana_rows())).await;
    let (_, again) = post("/admin/subjects/export", json!({"national_id": id})).await;
    assert_eq!(again["records"], json!([]), "not stored again");
    let tombstones: Value = central
        .admin
        .get(central.admin_url("/admin/subjects/tombstones"))
        .send()
        .await
        .expect("the admin listener answers")
        .json()
        .await
        .expect("JSON");
    let tombstone = &tombstones["tombstones"][0];
    assert_eq!(tombstone["site"], "skole-46505");
    assert!(
        tombstone["returned"].as_u64().is_some_and(|n| n > 0),
        "{tombstone}"
    );
    assert!(!tombstones.to_string().contains(&id));

    // Cleared: the next export stores her again.
    let (status, _) = post(
        "/admin/subjects/tombstones/clear",
        json!({"national_id": id, "site": "skole-46505", "reason": "erased in error"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    central
        .transfer(&mut devices[0], &elevliste(FANA, &fana_rows()))
        .await;
    let (_, back) = post("/admin/subjects/export", json!({"national_id": id})).await;
    assert_eq!(back["sites"], json!(["skole-46505"]));

    let audit = central.store.audit_log(50).await.expect("the audit log");
    assert!(audit.iter().any(|line| line.action == "subject_erase"
        && line.target == masked
        && line.detail == "art. 17"
        && line.actor.starts_with("api:")));
    assert!(audit.iter().any(|line| line.action == "subject_export"));
    assert!(audit
        .iter()
        .all(|line| !line.target.contains(&id) && !line.detail.contains(&id)));
    central.stop().await;
}
