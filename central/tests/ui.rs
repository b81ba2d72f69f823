//! The operator web interface over real HTTP on loopback, and in a real browser.
//!
//! The scope tests sign in with plain HTTP requests (cookies and forms by hand) and prove
//! that a municipality operator neither sees nor acts on another kommune's site, not even by
//! guessing its URLs, and that forms without the session's CSRF token are refused.
//!
//! The browser test runs Debian's headless chromium through chromedriver's WebDriver API:
//! central with the web interface, and a real agent daemon whose safety policy holds its
//! second export (it would delete most of the school); the browser signs in, releases the
//! held delta with a reason, and the test checks that the delta arrives at central, that
//! the page says so, and that the audit log has the release. With
//! `SKOLEBRO_UI_SCREENSHOT=path` it saves a screenshot of the fleet page there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};
use skolebro_agent::config::AgentConfig;
use skolebro_agent::daemon;
use skolebro_central::store::{Batch, SqliteStore, Store};
use skolebro_central::ui::{new_user, UiSettings};
use skolebro_central::{
    device_tls_config, serve, EnrollSettings, ReleaseSettings, RunningServer, ServerParts,
};
use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
use skolebro_protocol::{ChainHead, DeviceId, Payload, Roster, School, Seq, SiteId, SiteSecret};
use skolebro_provisioning::pki::write_private_key;
use skolebro_provisioning::{DevPki, Validity};

const PASSWORD: &str = "correct horse battery staple";

struct Central {
    running: RunningServer,
    store: Arc<dyn Store>,
    pki: DevPki,
    sealing: SealingPrivateKey,
    dir: tempfile::TempDir,
}

impl Central {
    async fn start() -> Central {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("central.db"))
                .await
                .expect("the store opens"),
        );
        let pki =
            DevPki::generate(Validity::from_now(Duration::from_secs(3600))).expect("a dev PKI");
        let sealing = SealingPrivateKey::generate().expect("a sealing key");
        let running = serve(ServerParts {
            store: Arc::clone(&store),
            tls: device_tls_config(
                &pki.server.cert_pem,
                &pki.server.key_pem,
                pki.device_ca.cert_pem(),
            )
            .expect("the TLS configuration"),
            sealing_key: SealingPrivateKey::from_bytes(sealing.to_bytes()),
            device_listen: "127.0.0.1:0".parse().expect("an address"),
            admin_listen: "127.0.0.1:0".parse().expect("an address"),
            consumer_listen: None,
            ui: Some(UiSettings {
                listen: "127.0.0.1:0".parse().expect("an address"),
                // Plain HTTP on loopback: a Secure cookie would never be sent back.
                secure_cookie: false,
                session_lifetime: Duration::from_secs(3600),
            }),
            max_batch_bytes: 16 << 20,
            enroll: EnrollSettings::default(),
            releases: ReleaseSettings {
                key: None,
                dir: dir.path().join("releases"),
            },
        })
        .await
        .expect("central starts");
        Central {
            running,
            store,
            pki,
            sealing,
            dir,
        }
    }

    fn ui(&self) -> String {
        format!(
            "http://{}",
            self.running.ui_addr.expect("the web interface")
        )
    }

    async fn add_user(&self, name: &str, role: &str, kommune: Option<&str>) {
        let user = new_user(name, role, kommune, PASSWORD).expect("a valid account");
        self.store.create_user(&user).await.expect("the account");
    }

    /// A site whose current roster is one school of `kommune`, served by one device.
    async fn site_in(&self, site: &str, device: &str, kommune: &str, seed: u8) {
        let site = SiteId::new(site).expect("a site id");
        let device = DeviceId::new(device).expect("a device id");
        let secret = SiteSecret::from_bytes([seed; 32]);
        self.store
            .set_site_secret(&site, &secret)
            .await
            .expect("the secret");
        let key = DeviceSigningKey::from_bytes([seed; 32]).verifying_key();
        self.store
            .register_device(&device, &site, &key)
            .await
            .expect("the device");
        let roster = Roster {
            schools: vec![School {
                skolenummer: format!("{kommune}0").into(),
                organisasjonsnummer: None,
                kommunenummer: Some(kommune.into()),
                fylkesnummer: Some(kommune[..2].into()),
                name: format!("Skule {kommune}").into(),
            }],
            ..Roster::default()
        };
        let head = ChainHead::genesis();
        self.store
            .apply(Batch {
                device,
                site,
                seq: head.next_seq,
                prev: head.prev,
                next_head: ChainHead {
                    next_seq: Seq(head.next_seq.0 + 1),
                    prev: [seed; 32],
                },
                payload: Payload::Snapshot(roster),
                at: skolebro_central::store::Timestamp::now(),
            })
            .await
            .expect("the roster applies");
    }
}

/// Posts the web interface's new-window form for county 46.
async fn post_window(
    session: &Session,
    csrf: &str,
    name: &str,
    opens: &str,
    closes: &str,
) -> StatusCode {
    let form = [
        ("csrf", csrf),
        ("fylke", "46"),
        ("name", name),
        ("opens", opens),
        ("closes", closes),
    ];
    session.post("/windows", &form).await
}

/// Applies another snapshot of the same one-school roster to a site `site_in` made, now:
/// a school delivering again, for example after a window's deadline.
async fn deliver_again(store: &dyn Store, site: &str, device: &str, kommune: &str) {
    let site = SiteId::new(site).expect("a site id");
    let device = DeviceId::new(device).expect("a device id");
    let head = store.chain_head(&device).await.expect("the chain head");
    let roster = Roster {
        schools: vec![School {
            skolenummer: format!("{kommune}0").into(),
            organisasjonsnummer: None,
            kommunenummer: Some(kommune.into()),
            fylkesnummer: Some(kommune[..2].into()),
            name: format!("Skule {kommune}").into(),
        }],
        ..Roster::default()
    };
    store
        .apply(Batch {
            device,
            site,
            seq: head.next_seq,
            prev: head.prev,
            next_head: ChainHead {
                next_seq: Seq(head.next_seq.0 + 1),
                prev: [0xee; 32],
            },
            payload: Payload::Snapshot(roster),
            at: skolebro_central::store::Timestamp::now(),
        })
        .await
        .expect("the roster applies again");
}

/// A signed-in browser stand-in over plain HTTP: its session cookie and the page's CSRF
/// token, handled by hand.
struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let first = value.split(';').next()?;
            let (key, value) = first.split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// A form as a browser encodes it (`application/x-www-form-urlencoded`).
fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `<input … name="csrf" value="…">` on a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_owned()
}

async fn try_login(base: &str, name: &str, password: &str) -> (StatusCode, Option<Session>) {
    let http = client();
    let form = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("the login page");
    let login_cookie = cookie_value(&form, "skolebro_login").expect("a login cookie");
    let html = form.text().await.expect("the login page's text");
    let response = http
        .post(format!("{base}/login"))
        .header(COOKIE, format!("skolebro_login={login_cookie}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("csrf", csrf_of(&html).as_str()),
            ("name", name),
            ("password", password),
        ]))
        .send()
        .await
        .expect("the login answer");
    let status = response.status();
    let session = cookie_value(&response, "skolebro_session").map(|id| Session {
        http,
        base: base.to_owned(),
        cookie: format!("skolebro_session={id}"),
    });
    (status, session)
}

impl Session {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("an answer");
        (response.status(), response.text().await.expect("a body"))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("an answer")
            .status()
    }

    async fn csrf(&self) -> String {
        csrf_of(&self.get("/fleet").await.1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_operator_sees_and_acts_on_its_own_kommune_only() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("lesar", "read_only", None).await;
    central.add_user("ops", "operations", None).await;
    let base = central.ui();

    let (_, kari) = try_login(&base, "kari", PASSWORD).await;
    let kari = kari.expect("kari signs in");
    let (status, fleet) = kari.get("/fleet").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        fleet.contains("pi-fana") && fleet.contains("Skule 4601"),
        "{fleet}"
    );
    assert!(
        !fleet.contains("pi-oslo") && !fleet.contains("oslo"),
        "{fleet}"
    );
    assert_eq!(kari.get("/sites/fana").await.0, StatusCode::OK);

    // Another kommune's site answers exactly as a site that does not exist.
    let (oslo_status, oslo_page) = kari.get("/sites/oslo").await;
    let (missing_status, missing_page) = kari.get("/sites/nowhere").await;
    assert_eq!(oslo_status, StatusCode::NOT_FOUND);
    assert_eq!((oslo_status, oslo_page), (missing_status, missing_page));
    assert_eq!(kari.get("/tokens").await.0, StatusCode::NOT_FOUND);
    assert_eq!(kari.get("/audit").await.0, StatusCode::NOT_FOUND);

    // Nor can she act on it with a valid form.
    let csrf = kari.csrf().await;
    let release = [
        ("csrf", csrf.as_str()),
        ("held_id", "h1"),
        ("decision", "release"),
        ("reason", "guessing"),
    ];
    assert_eq!(
        kari.post("/devices/pi-oslo/held", &release).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        kari.post("/devices/pi-oslo/revoke", &[("csrf", csrf.as_str())])
            .await,
        StatusCode::FORBIDDEN
    );
    // Her own device's held delta she may decide; without the CSRF token nothing happens.
    let forged = [
        ("csrf", "0".repeat(64)),
        ("held_id", "h1".to_owned()),
        ("decision", "release".to_owned()),
        ("reason", "forged".to_owned()),
    ];
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        kari.post("/devices/pi-fana/held", &forged).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        kari.post("/devices/pi-fana/held", &release).await,
        StatusCode::SEE_OTHER
    );

    // A read-only account sees every site and changes nothing.
    let (_, reader) = try_login(&base, "lesar", PASSWORD).await;
    let reader = reader.expect("the reader signs in");
    assert!(reader.get("/fleet").await.1.contains("pi-oslo"));
    let csrf = reader.csrf().await;
    let release = [
        ("csrf", csrf.as_str()),
        ("held_id", "h1"),
        ("decision", "release"),
        ("reason", "looking"),
    ];
    assert_eq!(
        reader.post("/devices/pi-oslo/held", &release).await,
        StatusCode::FORBIDDEN
    );

    // No session: every page sends to the login page; a wrong password gets no session.
    let anonymous = client()
        .get(format!("{base}/sites/fana"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/login"[..])
    );
    let (status, session) = try_login(&base, "kari", "wrong horse battery staple").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(session.is_none());
    let (status, session) = try_login(&base, "nobody", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(session.is_none());

    // Logging out ends the session in the store, not only in the browser.
    let csrf = kari.csrf().await;
    assert_eq!(
        kari.post("/logout", &[("csrf", csrf.as_str())]).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(kari.get("/fleet").await.0, StatusCode::SEE_OTHER);

    let (_, ops) = try_login(&base, "ops", PASSWORD).await;
    let (status, audit) = ops.expect("ops signs in").get("/audit").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "login_failed",
        "logout",
        "release",
        "held delta h1: guessing",
    ] {
        assert!(audit.contains(expected), "{expected} in {audit}");
    }
    assert!(!audit.contains("forged"), "{audit}");
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_set_a_transfer_window_that_only_its_county_sees_and_late_transfers_are_flagged()
{
    use skolebro_central::store::Timestamp;

    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("ops", "operations", None).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("ola", "municipality", Some("0301")).await;
    central.add_user("lesar", "read_only", None).await;
    let base = central.ui();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closes = Timestamp::now();
    let opens = Timestamp(closes.0 - 3_600_000);
    // Operations create the window (the name is escaped wherever it is shown).
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let csrf = ops.csrf().await;
    let (opens, closes) = (opens.to_string(), closes.to_string());
    let created = post_window(&ops, &csrf, "Inntak <2027>", &opens, &closes).await;
    assert_eq!(created, StatusCode::SEE_OTHER);
    let backwards = post_window(&ops, &csrf, "Backwards", "2101-01-02", "2101-01-01").await;
    assert_eq!(backwards, StatusCode::BAD_REQUEST);
    let overlapping = post_window(&ops, &csrf, "Overlap", "2020-01-01", "2100-01-01").await;
    assert_eq!(overlapping, StatusCode::BAD_REQUEST);
    let forged = post_window(&ops, &"0".repeat(64), "Forged", "2101-01-01", "2101-01-02").await;
    assert_eq!(forged, StatusCode::FORBIDDEN);

    // Fana delivers after the deadline: kept, and flagged on its page.
    tokio::time::sleep(Duration::from_millis(20)).await;
    deliver_again(central.store.as_ref(), "fana", "pi-fana", "4601").await;
    let (status, site) = ops.get("/sites/fana").await;
    assert_eq!(status, StatusCode::OK);
    assert!(site.contains("Late for Inntak &lt;2027&gt;"), "{site}");
    assert_eq!(site.matches("Late for").count(), 1, "{site}");
    let (_, oslo) = ops.get("/sites/oslo").await;
    assert!(!oslo.contains("Late for"), "{oslo}");

    let (status, windows) = ops.get("/windows").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "County 46",
        "Inntak &lt;2027&gt;",
        "Closed on",
        "frozen",
        "1 of 1 sites delivered inside the window",
        "1 late transfers from 1 sites",
        "href=\"/sites/fana\"",
        "id=\"create-window\"",
    ] {
        assert!(windows.contains(expected), "{expected} in {windows}");
    }
    assert!(!windows.contains("Inntak <2027>"), "{windows}");
    assert!(
        !windows.contains("Forged") && !windows.contains("Overlap"),
        "{windows}"
    );

    // The municipality in the county sees it; one in another county neither sees nor
    // creates windows, nor does a read-only account create one.
    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    let (_, seen) = kari.get("/windows").await;
    assert!(seen.contains("Inntak &lt;2027&gt;"), "{seen}");
    assert!(!seen.contains("create-window"), "{seen}");
    let ola = try_login(&base, "ola", PASSWORD)
        .await
        .1
        .expect("ola signs in");
    let (status, unseen) = ola.get("/windows").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!unseen.contains("Inntak"), "{unseen}");
    assert!(unseen.contains("No transfer windows are set"), "{unseen}");
    let csrf = ola.csrf().await;
    let own = post_window(&ola, &csrf, "Oslo's own", "2101-01-01", "2101-01-02").await;
    assert_eq!(own, StatusCode::FORBIDDEN);
    let reader = try_login(&base, "lesar", PASSWORD)
        .await
        .1
        .expect("the reader signs in");
    assert!(reader
        .get("/windows")
        .await
        .1
        .contains("Inntak &lt;2027&gt;"));
    let csrf = reader.csrf().await;
    let read_only = post_window(&reader, &csrf, "Reader's", "2101-01-01", "2101-01-02").await;
    assert_eq!(read_only, StatusCode::FORBIDDEN);
    assert!(!ops.get("/windows").await.1.contains("Oslo&#39;s own"));

    let (_, audit) = ops.get("/audit").await;
    assert!(audit.contains("create_window"), "{audit}");
    assert!(audit.contains("county 46"), "{audit}");
    assert_eq!(audit.matches("create_window").count(), 1, "{audit}");
    central.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The browser test

/// A WebDriver session on chromedriver, driving headless chromium.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: std::process::Child,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(format!("{base}/status")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver is not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,800"]
                }
            }}}))
            .send()
            .await
            .expect("a WebDriver session")
            .json()
            .await
            .expect("the session's JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request
            .send()
            .await
            .expect("a WebDriver answer")
            .json()
            .await
            .expect("WebDriver JSON");
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .expect("the page source")
            .to_owned()
    }

    async fn screenshot(&self, path: &Path) {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        std::fs::write(path, png).expect("the screenshot is written");
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Writes the agent's keys and config for site `fana`, device `pi-fana`, into `dir`.
fn agent_config(
    central: &Central,
    dir: &Path,
    device_addr: SocketAddr,
) -> (PathBuf, DeviceSigningKey, SiteSecret) {
    let validity = Validity::from_now(Duration::from_secs(3600));
    let device = DeviceId::new("pi-fana").expect("a device id");
    let site = SiteId::new("fana").expect("a site id");
    let credentials = central
        .pki
        .device_ca
        .issue_device(&device, &site, validity)
        .expect("a device certificate");
    std::fs::write(dir.join("device.pem"), &credentials.cert_pem).expect("written");
    write_private_key(&dir.join("device.key"), &credentials.key_pem).expect("written");
    std::fs::write(
        dir.join("central-ca.pem"),
        central.pki.central_ca.cert_pem(),
    )
    .expect("written");
    let signing = DeviceSigningKey::generate().expect("a signing key");
    write_private_key(&dir.join("signing.key"), &hex::encode(signing.to_bytes())).expect("written");
    let secret = [7u8; 32];
    write_private_key(&dir.join("site.secret"), &hex::encode(secret)).expect("written");
    let config = format!(
        r#"state_dir = "state"
drop_dir = "drop"
after_ingest = "delete"
heartbeat_seconds = 1

[central]
url = "https://127.0.0.1:{port}"
ca = "central-ca.pem"
sealing_key = "{sealing}"

[identity]
device = "pi-fana"
site = "fana"
cert = "device.pem"
key = "device.key"
signing_key = "signing.key"
site_secret = "site.secret"
"#,
        port = device_addr.port(),
        sealing = hex::encode(central.sealing.public_key().to_bytes()),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).expect("written");
    (path, signing, SiteSecret::from_bytes(secret))
}

fn drop_export(dir: &Path, name: &str, text: &str) {
    let drop = dir.join("drop");
    std::fs::create_dir_all(&drop).expect("the drop folder");
    let staging = dir.join(format!(".{name}.part"));
    std::fs::write(&staging, text).expect("written");
    std::fs::rename(&staging, drop.join(name)).expect("renamed into the drop folder");
}

async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_releases_a_held_delta_in_a_real_browser() {
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        eprintln!("SKIPPED: /usr/bin/chromium or /usr/bin/chromedriver is not installed");
        return;
    }
    let central = Central::start().await;
    central.add_user("ops", "operations", None).await;
    let agent_dir = central.dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).expect("the agent's folder");
    let (config, signing, secret) = agent_config(&central, &agent_dir, central.running.device_addr);
    let site = SiteId::new("fana").expect("a site id");
    central
        .store
        .set_site_secret(&site, &secret)
        .await
        .expect("the secret");
    central
        .store
        .register_device(
            &DeviceId::new("pi-fana").expect("a device id"),
            &site,
            &signing.verifying_key(),
        )
        .await
        .expect("the device");
    let agent = daemon::start(AgentConfig::load(&config).expect("the agent's config"))
        .await
        .expect("the agent starts");

    // The sample school, then an export with only its first 19 pupils: deleting the other
    // 281 is far beyond the default 10%, so the agent holds that delta for review.
    let full = include_str!("../../samples/elevliste.csv");
    let students = |text: &str| text.lines().skip(1).count() as u64;
    let few: String = full
        .lines()
        .take(20)
        .map(|line| format!("{line}\n"))
        .collect();
    drop_export(&agent_dir, "elevliste-1.csv", full);
    let store = Arc::clone(&central.store);
    wait_for("the first export", || {
        let (store, site) = (Arc::clone(&store), site.clone());
        async move {
            store
                .counts(&site)
                .await
                .is_ok_and(|c| c.students == students(full))
        }
    })
    .await;
    drop_export(&agent_dir, "elevliste-2.csv", &few);
    let admin = format!("http://{}/admin/devices", central.running.admin_addr);
    wait_for("the held delta to be reported", || {
        let admin = admin.clone();
        async move {
            let Ok(response) = reqwest::get(&admin).await else {
                return false;
            };
            let devices: Value = response.json().await.unwrap_or(Value::Null);
            devices["devices"][0]["last_heartbeat"]["held"].is_object()
        }
    })
    .await;

    let browser = Browser::start().await;
    let base = central.ui();
    browser.open(&format!("{base}/login")).await;
    browser.type_into("#name", "ops").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    let fleet = browser.source().await;
    assert!(fleet.contains("pi-fana"), "{fleet}");
    assert!(fleet.contains("Holding a delta for review"), "{fleet}");

    browser.open(&format!("{base}/held")).await;
    let held = browser.source().await;
    assert!(held.contains("281 students"), "{held}");
    browser
        .type_into(
            "#reason",
            "Pupils moved to the new school; checked with the rektor",
        )
        .await;
    browser.click("#release").await;
    let after = browser.source().await;
    assert!(after.contains("The release is queued"), "{after}");

    // The agent picks the release up with its next heartbeat and sends the delta.
    wait_for("the released delta at central", || {
        let (store, site) = (Arc::clone(&store), site.clone());
        async move { store.counts(&site).await.is_ok_and(|c| c.students == 19) }
    })
    .await;
    let started = Instant::now();
    loop {
        browser.open(&format!("{base}/held")).await;
        if browser
            .source()
            .await
            .contains("No device holds a delta for review")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the held page still shows the delta"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.open(&format!("{base}/sites/fana")).await;
    let site_page = browser.source().await;
    assert!(site_page.contains("holds 19 students"), "{site_page}");
    // Two transfers: the first export, and the released delta that removed the leavers.
    assert_eq!(
        site_page.matches("<td>pi-fana</td>").count(),
        2,
        "{site_page}"
    );

    browser.open(&format!("{base}/audit")).await;
    let audit = browser.source().await;
    assert!(audit.contains("release"), "{audit}");
    assert!(
        audit.contains("Pupils moved to the new school; checked with the rektor"),
        "{audit}"
    );

    browser.open(&format!("{base}/fleet")).await;
    let fleet = browser.source().await;
    assert!(fleet.contains("Healthy"), "{fleet}");
    for forbidden in ["02871662943", "Sæther"] {
        assert!(!fleet.contains(forbidden) && !site_page.contains(forbidden));
    }
    if let Some(path) = std::env::var_os("SKOLEBRO_UI_SCREENSHOT") {
        browser.screenshot(Path::new(&path)).await;
    }
    browser.quit().await;
    if let Err(error) = agent.stop().await {
        panic!("the agent did not stop cleanly: {error}");
    }
    central.running.shutdown().await;
}
