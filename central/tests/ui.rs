//! The operator web interface over real HTTP on loopback, and in a real browser.
//!
//! The scope tests sign in with plain HTTP requests (cookies and forms by hand) and prove
//! that a municipality operator neither sees nor acts on another kommune's site, not even by
//! guessing its URLs, and that forms without the session's CSRF token are refused. The same
//! way, they check the releases page (operations change a rollout, others only look), the
//! lock after repeated failed sign-ins, that the JSON operator API's actions are in the
//! audit log, that destructive actions ask first and audit their reason, the fleet
//! page's summary, filters and paging, the charts of the site and fleet pages, the audit
//! page's filters and paging, the window form's date pickers in Oslo time, and what a device
//! reported of the school's share (the newest file, settings that did not take). They ask for English with `Accept-Language`, as they
//! are about behaviour; one test checks that bokmål is the default and how English is
//! chosen.
//!
//! The browser test runs Debian's headless chromium through chromedriver's WebDriver API:
//! central with the web interface, and a real agent daemon whose safety policy holds its
//! second export (it would delete most of the school); the browser signs in, releases the
//! held delta with a reason, and the test checks that the delta arrives at central, that
//! the page says so, and that the audit log has the release; then it revokes the device
//! through the confirmation page, with a reason the audit log keeps. The browser asks for
//! Norwegian, and the pages it reads are checked in bokmål. Every page it opens (sign-in,
//! fleet, held deltas, site, audit, releases, windows, reads, tokens, not found, the
//! revocation) is checked on the desktop and as a 390 px phone: the language, unique ids,
//! the skip link, the menu, table captions and scopes, axe-core's WCAG 2 A/AA rules, and
//! on the phone that the page is no wider than the screen. With
//! `SKOLEBRO_UI_SCREENSHOT_DIR=dir` it saves `fleet.png`, `site.png`, `held.png` and
//! `phone.png` (the fleet at 390 px) there, as in `docs/`.
//!
//! chromium and chromedriver are looked up on `PATH`, and axe-core where `.ci/run` installs
//! it (`target/npm`, or `SKOLEBRO_AXE_CORE` names its `axe.min.js`). Without them the
//! browser test, or its accessibility check, says SKIPPED on a developer's machine, but
//! fails under CI (`CI=true`) or with `SKOLEBRO_REQUIRE_BROWSER=1`: it is the only test of
//! the whole held-delta loop, and CI must not pass in silence without it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{
    HeaderValue, ACCEPT_LANGUAGE, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};
use skolebro_agent::config::AgentConfig;
use skolebro_agent::daemon;
use skolebro_central::store::{
    AuditEntry, Fylke, IncomingBatch, NewRelease, NewWindow, Read, Store, Timestamp, UpdateEvent,
    UpdateState,
};
use skolebro_central::ui::{new_user, LOGIN_FAILURES_ALLOWED, LOGIN_LOCK};
use skolebro_protocol::envelope::{DeviceSigningKey, SealingPrivateKey};
use skolebro_protocol::{
    ChainHead, DeviceId, Payload, Roster, School, Seq, SiteId, SiteSchool, SiteSecret,
};
use skolebro_provisioning::pki::write_private_key;
use skolebro_provisioning::Validity;

use common::{free_port, Central, CentralOptions};

const PASSWORD: &str = "correct horse battery staple";

impl Central {
    async fn start() -> Central {
        CentralOptions {
            ui: true,
            sealing: SealingPrivateKey::generate().expect("a sealing key"),
            ..CentralOptions::default()
        }
        .start()
        .await
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

    /// A site registered with, and whose current roster is, one school of `kommune`,
    /// served by one device.
    async fn site_in(&self, site: &str, device: &str, kommune: &str, seed: u8) {
        let school = format!("{kommune}/{kommune}0=Skule {kommune}");
        self.site_registered(site, device, &school, kommune, seed)
            .await;
    }

    /// A site registered with `school` (`KOMMUNE/SKOLENUMMER=NAME`) whose current roster is
    /// one school of `records_kommune`, written to the store directly (the ingest would
    /// refuse a school outside the registration), served by one device.
    async fn site_registered(
        &self,
        site: &str,
        device: &str,
        school: &str,
        records_kommune: &str,
        seed: u8,
    ) {
        let site = SiteId::new(site).expect("a site id");
        let school: SiteSchool = school.parse().expect("a school");
        self.store
            .register_schools(&site, &[school], skolebro_central::store::Timestamp(1))
            .await
            .expect("the registration");
        let kommune = records_kommune;
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
        self.store
            .apply(one_school_snapshot(
                device,
                site,
                ChainHead::genesis(),
                kommune,
                [seed; 32],
            ))
            .await
            .expect("the roster applies");
    }
}

/// A snapshot of a roster of one school of `kommune`, chained on `head`.
fn one_school_snapshot(
    device: DeviceId,
    site: SiteId,
    head: ChainHead,
    kommune: &str,
    next: [u8; 32],
) -> IncomingBatch {
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
    IncomingBatch {
        device,
        site,
        seq: head.next_seq,
        prev: head.prev,
        next_head: ChainHead {
            next_seq: Seq(head.next_seq.0 + 1),
            prev: next,
        },
        payload: Payload::Snapshot(roster),
        at: skolebro_central::store::Timestamp::now(),
        bytes: 2048,
    }
}

/// Posts the web interface's new-window form for county 46: each end a date picker's
/// value and a time picker's (empty for midnight), in Oslo time.
async fn post_window(
    session: &Session,
    csrf: &str,
    name: &str,
    opens: (&str, &str),
    closes: (&str, &str),
) -> StatusCode {
    let form = [
        ("csrf", csrf),
        ("fylke", "46"),
        ("name", name),
        ("opens", opens.0),
        ("opens_time", opens.1),
        ("closes", closes.0),
        ("closes_time", closes.1),
    ];
    session.post("/windows", &form).await
}

/// `at` as the new-window form's date and time pickers (to the second) write it in Oslo.
fn oslo_fields(at: Timestamp) -> (String, String) {
    let (local, _) = at.oslo();
    (
        local.date_text(),
        format!("{}:{:02}", local.hour_minute_text(), local.second),
    )
}

/// Applies another snapshot of the same one-school roster to a site `site_in` made, now:
/// a school delivering again, for example after a window's deadline.
async fn deliver_again(store: &dyn Store, site: &str, device: &str, kommune: &str) {
    let site = SiteId::new(site).expect("a site id");
    let device = DeviceId::new(device).expect("a device id");
    let head = store.chain_head(&device).await.expect("the chain head");
    store
        .apply(one_school_snapshot(device, site, head, kommune, [0xee; 32]))
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

/// A client that asks for English, as these tests are about behaviour and read the English
/// texts; the default language has tests of its own.
fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// A client that states no language, as a browser may.
fn client_without_language() -> reqwest::Client {
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
    let (http, response) = login_answer(base, name, password).await;
    let status = response.status();
    let session = cookie_value(&response, "skolebro_session").map(|id| Session {
        http,
        base: base.to_owned(),
        cookie: format!("skolebro_session={id}"),
    });
    (status, session)
}

/// The answer to a filled-in login form, with the client that sent it.
async fn login_answer(
    base: &str,
    name: &str,
    password: &str,
) -> (reqwest::Client, reqwest::Response) {
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
    (http, response)
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
        self.post_answer(path, form).await.0
    }

    /// A form's answer with its page.
    async fn post_answer(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("an answer");
        (response.status(), response.text().await.expect("a body"))
    }

    async fn csrf(&self) -> String {
        csrf_of(&self.get("/fleet").await.1)
    }
}

impl Session {
    /// The same session from a client that states no language.
    fn without_language(&self) -> Session {
        Session {
            http: client_without_language(),
            base: self.base.clone(),
            cookie: self.cookie.clone(),
        }
    }

    /// The same session with more cookies (a language chosen).
    fn with_cookie(&self, cookie: &str) -> Session {
        Session {
            http: client_without_language(),
            base: self.base.clone(),
            cookie: format!("{}; {cookie}", self.cookie),
        }
    }
}

/// Stores a heartbeat for `device` as if it had just called in.
async fn heartbeat(store: &dyn Store, device: &str, heartbeat: Value) {
    heartbeat_at(store, device, heartbeat, Timestamp::now()).await;
}

/// Records a heartbeat as received at `at`.
async fn heartbeat_at(store: &dyn Store, device: &str, heartbeat: Value, at: Timestamp) {
    let heartbeat = serde_json::from_value(heartbeat).expect("a heartbeat");
    store
        .record_heartbeat(&DeviceId::new(device).expect("a device id"), &heartbeat, at)
        .await
        .expect("the heartbeat is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_speaks_bokmal_unless_english_is_asked_for() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    let base = central.ui();

    let login = client_without_language()
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("the login page");
    let login = login.text().await.expect("a body");
    for expected in ["<html lang=\"nb\">", "Logg inn", "Passord", ">English</a>"] {
        assert!(login.contains(expected), "{expected} in {login}");
    }

    let english = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let norsk = english.without_language();
    let (status, fleet) = norsk.get("/fleet").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "<html lang=\"nb\">",
        "<title>Flåten · skolebro</title>",
        "<nav>",
        "Holdte endringer",
        "Logg ut",
        "1 enhet: 0 friske, 0 holder tilbake, 1 taus, 0 utdaterte",
        "<th scope=\"col\">Siste livstegn</th>",
        "<a class=\"skip\" href=\"#main\">Hopp til innholdet</a>",
        "<main id=\"main\">",
    ] {
        assert!(fleet.contains(expected), "{expected} in {fleet}");
    }
    assert!(!fleet.contains("Held deltas"), "{fleet}");
    let (_, site) = norsk.get("/sites/fana").await;
    assert!(site.contains("Sentralen har 0 elever, 0 grupper"), "{site}");
    // Times in Oslo, to the minute, with the zone, and how long ago in words.
    assert!(site.contains(" CET ") || site.contains(" CEST "), "{site}");
    assert!(site.contains("siden)"), "{site}");
    assert!(!site.contains(".000Z"), "no milliseconds, no UTC: {site}");

    // Accept-Language asks for English; the language link's cookie wins over it.
    let (_, fleet) = english.get("/fleet").await;
    assert!(fleet.contains("<html lang=\"en\">"), "{fleet}");
    assert!(fleet.contains("1 device: 0 healthy"), "{fleet}");
    let chosen = client_without_language()
        .get(format!("{base}/language?to=en&back=%2Fheld"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        chosen.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/held"[..])
    );
    let lang = cookie_value(&chosen, "skolebro_lang").expect("the language cookie");
    assert_eq!(lang, "en");
    let (_, held) = english.with_cookie("skolebro_lang=en").get("/held").await;
    assert!(
        held.contains("No device holds a delta for review"),
        "{held}"
    );
    let (_, held) = english.with_cookie("skolebro_lang=nb").get("/held").await;
    assert!(held.contains("Ingen enhet holder tilbake"), "{held}");
    let (_, held) = english.get("/held").await;
    assert!(held.contains("No device holds"), "{held}");
    // The link goes back only to this interface's pages.
    let elsewhere = client_without_language()
        .get(format!("{base}/language?to=nb&back=%2F%2Fevil.example"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        elsewhere.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/fleet"[..])
    );
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_and_site_pages_say_when_a_file_reached_the_share_and_that_its_settings_failed() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    let written = Timestamp::now().0 - 120_000;
    heartbeat(
        central.store.as_ref(),
        "pi-fana",
        json!({"version": "1.6.0", "state": "healthy",
               "arrival": {"file": "elevliste.csv", "written_unix_ms": written,
                           "outcome": "delivered to central", "refused": false,
                           "delivered": true},
               "drop_share": {"enabled": false, "account": "sas-eksport", "size_cap_mib": 1,
                              "applied_unix_ms": written,
                              "last_error": "the drop share has no password on this Pi",
                              "last_error_unix_ms": written}}),
    )
    .await;
    let norsk = try_login(&central.ui(), "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in")
        .without_language();
    let (_, fleet) = norsk.get("/fleet").await;
    let (_, site) = norsk.get("/sites/fana").await;
    for page in [&fleet, &site] {
        for expected in [
            "Siste fil på delingen: elevliste.csv, skrevet ",
            r#"<span class="ok">levert til sentralen</span>"#,
            r#"<span class="bad">Delingsinnstillingene ble ikke tatt i bruk</span>"#,
            r#"<span lang="en">the drop share has no password on this Pi</span>"#,
        ] {
            assert!(page.contains(expected), "{expected} in {page}");
        }
    }
    assert!(
        site.contains("<h2>Delingen på skolen</h2>") && site.contains("Delingen er av"),
        "{site}"
    );
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_actions_ask_first_and_put_the_reason_in_the_audit_log() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    heartbeat(
        central.store.as_ref(),
        "pi-fana",
        json!({"version": "1.2.3", "state": "holding",
               "held": {"id": "h1", "reasons": ["would delete 5 of 6 students"],
                        "deletes": {"students": 5}}}),
    )
    .await;
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let csrf = ops.csrf().await;
    let commands = || {
        let store = Arc::clone(&central.store);
        async move {
            store.fleet_activity().await.expect("the fleet")
                [&DeviceId::new("pi-fana").expect("a device id")]
                .commands
                .len()
        }
    };

    // Rejecting a held delta: the first post only asks, with the reason kept in the form.
    let (_, held) = ops.get("/held").await;
    assert!(held.contains("5 students"), "{held}");
    let reject = [
        ("csrf", csrf.as_str()),
        ("held_id", "h1"),
        ("decision", "reject"),
        ("reason", "the export was from the wrong term"),
    ];
    let asked = ops
        .http
        .post(format!("{base}/devices/pi-fana/held"))
        .header(COOKIE, &ops.cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&reject))
        .send()
        .await
        .expect("an answer");
    assert_eq!(asked.status(), StatusCode::OK);
    let asked = asked.text().await.expect("a body");
    for expected in [
        "Reject the held delta?",
        "name=\"confirmed\" value=\"yes\"",
        "value=\"the export was from the wrong term\"",
        "cannot be undone",
    ] {
        assert!(asked.contains(expected), "{expected} in {asked}");
    }
    assert_eq!(commands().await, 0, "nothing is queued before the answer");
    let mut confirmed = reject.to_vec();
    confirmed.push(("confirmed", "yes"));
    assert_eq!(
        ops.post("/devices/pi-fana/held", &confirmed).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(commands().await, 1);

    // Revoking a device: the fleet links to a confirmation page, not to a form that acts.
    let (_, fleet) = ops.get("/fleet").await;
    assert!(
        fleet.contains("href=\"/devices/pi-fana/revoke\""),
        "{fleet}"
    );
    assert!(
        !fleet.contains("action=\"/devices/pi-fana/revoke\""),
        "{fleet}"
    );
    let (status, confirm) = ops.get("/devices/pi-fana/revoke").await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Revoke the device?"), "{confirm}");
    assert!(
        confirm.contains("action=\"/devices/pi-fana/revoke\""),
        "{confirm}"
    );
    let revoked = || {
        let store = Arc::clone(&central.store);
        async move {
            store
                .device(&DeviceId::new("pi-fana").expect("a device id"))
                .await
                .expect("reads")
                .expect("the device")
                .revoked
        }
    };
    let unconfirmed = [("csrf", csrf.as_str()), ("reason", "stolen")];
    assert_eq!(
        ops.post("/devices/pi-fana/revoke", &unconfirmed).await,
        StatusCode::FORBIDDEN
    );
    let no_reason = [
        ("csrf", csrf.as_str()),
        ("confirmed", "yes"),
        ("reason", ""),
    ];
    assert_eq!(
        ops.post("/devices/pi-fana/revoke", &no_reason).await,
        StatusCode::FORBIDDEN
    );
    assert!(!revoked().await, "neither post revoked it");
    let confirmed = [
        ("csrf", csrf.as_str()),
        ("confirmed", "yes"),
        ("reason", "stolen from the school office"),
    ];
    assert_eq!(
        ops.post("/devices/pi-fana/revoke", &confirmed).await,
        StatusCode::SEE_OTHER
    );
    assert!(revoked().await);

    let (_, audit) = ops.get("/audit").await;
    for expected in [
        "revoked: stolen from the school office",
        "held delta h1: the export was from the wrong term",
        "reject",
    ] {
        assert!(audit.contains(expected), "{expected} in {audit}");
    }
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_sums_up_filters_searches_and_pages_a_large_fleet() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("ops", "operations", None).await;
    register_release(&central).await;
    let fana = SiteId::new("fana").expect("a site id");
    for n in 0..59u8 {
        let key = DeviceSigningKey::from_bytes([n + 10; 32]).verifying_key();
        central
            .store
            .register_device(
                &DeviceId::new(format!("pi-spare-{n:02}")).expect("a device id"),
                &fana,
                &key,
            )
            .await
            .expect("the device");
    }
    let store = central.store.as_ref();
    heartbeat(
        store,
        "pi-fana",
        json!({"version": "1.0.0", "state": "healthy", "target": TARGET}),
    )
    .await;
    heartbeat(
        store,
        "pi-oslo",
        json!({"version": "1.2.3", "state": "holding", "target": TARGET}),
    )
    .await;
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let rows = |page: &str| page.matches("<tr><td>").count();

    let (_, fleet) = ops.get("/fleet").await;
    assert!(
        fleet.contains("61 devices: 1 healthy, 1 holding, 59 silent, 1 outdated"),
        "{fleet}"
    );
    assert_eq!(rows(&fleet), 50, "{fleet}");
    assert!(fleet.contains("Page 1 of 2"), "{fleet}");
    let (_, second) = ops.get("/fleet?page=2").await;
    assert_eq!(rows(&second), 11, "{second}");

    let (_, holding) = ops.get("/fleet?state=holding").await;
    assert_eq!(rows(&holding), 1, "{holding}");
    assert!(holding.contains("<td>pi-oslo</td>"), "{holding}");
    let (_, outdated) = ops.get("/fleet?state=outdated").await;
    assert_eq!(rows(&outdated), 1, "{outdated}");
    assert!(outdated.contains("<td>pi-fana</td>"), "{outdated}");
    let (_, oslo) = ops.get("/fleet?kommune=0301").await;
    assert_eq!(rows(&oslo), 1, "{oslo}");
    assert!(oslo.contains("<td>pi-oslo</td>"), "{oslo}");
    let (_, found) = ops.get("/fleet?q=SKULE+0301").await;
    assert_eq!(rows(&found), 1, "by school name, in any case: {found}");
    assert!(found.contains("<td>pi-oslo</td>"), "{found}");
    let (_, silent) = ops.get("/fleet?state=silent&kommune=4601&page=2").await;
    assert_eq!(rows(&silent), 9, "{silent}");
    assert!(
        silent.contains("href=\"/fleet?state=silent&amp;kommune=4601&amp;page=1\""),
        "{silent}"
    );
    let (_, none) = ops.get("/fleet?q=nowhere").await;
    assert!(none.contains("No device matches the filter"), "{none}");
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_sees_a_site_by_its_registration_not_by_the_schools_its_records_name() {
    let central = Central::start().await;
    // Site 4602-777 ("Ny skole") holds records naming kommune 4601's "Skule 4601".
    central
        .site_registered("4602-777", "pi-ny", "4602/777=Ny skole", "4601", 1)
        .await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("nils", "municipality", Some("4602")).await;
    let base = central.ui();

    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    let (status, fleet) = kari.get("/fleet").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !fleet.contains("pi-ny") && !fleet.contains("4602-777"),
        "{fleet}"
    );
    assert_eq!(kari.get("/sites/4602-777").await.0, StatusCode::NOT_FOUND);

    let nils = try_login(&base, "nils", PASSWORD)
        .await
        .1
        .expect("nils signs in");
    let (_, fleet) = nils.get("/fleet").await;
    assert!(
        fleet.contains("pi-ny") && fleet.contains("Ny skole"),
        "{fleet}"
    );
    assert!(
        !fleet.contains("Skule 4601"),
        "the site is named by its registration: {fleet}"
    );
    let (status, page) = nils.get("/sites/4602-777").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Ny skole") && !page.contains("Skule 4601"),
        "{page}"
    );
    central.stop().await;
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
async fn repeated_wrong_passwords_lock_the_name_but_not_another_account() {
    let central = Central::start().await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("ops", "operations", None).await;
    let base = central.ui();

    let mut statuses = Vec::new();
    for _ in 0..LOGIN_FAILURES_ALLOWED {
        statuses.push(
            try_login(&base, "kari", "wrong horse battery staple")
                .await
                .0,
        );
    }
    let (last, earlier) = statuses.split_last().expect("some attempts");
    assert!(
        earlier.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        *last,
        StatusCode::TOO_MANY_REQUESTS,
        "the last failure locks"
    );

    // Locked: even the right password is refused, unchecked, with a time to come back.
    let (_, locked) = login_answer(&base, "kari", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(cookie_value(&locked, "skolebro_session").is_none());
    let retry_after: u64 = locked
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        (1..=LOGIN_LOCK.as_secs()).contains(&retry_after),
        "{retry_after}"
    );
    let page = locked.text().await.expect("a page");
    assert!(page.contains("Too many failed sign-ins"), "{page}");

    // Another account signs in as usual, and its success unlocks nobody else.
    let (status, ops) = try_login(&base, "ops", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let ops = ops.expect("ops signs in");
    assert_eq!(
        try_login(&base, "kari", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (_, audit) = ops.get("/audit").await;
    assert!(audit.contains("login_locked"), "{audit}");
    assert_eq!(
        audit.matches("data-action=\"login_locked\"").count(),
        1,
        "{audit}"
    );
    central.running.shutdown().await;
}

/// Registers release 1.2.3 for the Pi's target, as `POST /admin/releases` would.
async fn register_release(central: &Central) -> String {
    let release = NewRelease {
        id: format!("1.2.3-{TARGET}"),
        version: "1.2.3".parse().expect("a version"),
        target: TARGET.to_owned(),
        size: 12_700,
        sha256: [7; 32],
        allow_downgrade: false,
        manifest: b"a signed manifest".to_vec(),
        registered: Timestamp::now(),
    };
    central
        .store
        .create_release(&release)
        .await
        .expect("the release is registered");
    release.id
}

const TARGET: &str = "aarch64-unknown-linux-gnu";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_change_a_rollout_on_the_releases_page_and_others_only_look() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("lesar", "read_only", None).await;
    central.add_user("ops", "operations", None).await;
    let id = register_release(&central).await;
    for (device, reason) in [("pi-fana", "health check failed"), ("pi-oslo", "no space")] {
        central
            .store
            .record_update(&UpdateEvent {
                release: id.clone(),
                device: DeviceId::new(device).expect("a device id"),
                state: UpdateState::RolledBack,
                reason: Some(reason.to_owned()),
                at: Timestamp::now(),
            })
            .await
            .expect("the rollback is recorded");
    }
    let base = central.ui();
    let (_, ops) = try_login(&base, "ops", PASSWORD).await;
    let ops = ops.expect("ops signs in");

    let (status, page) = ops.get("/releases").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "1.2.3",
        TARGET,
        "12.4 KiB",
        "no devices",
        "pi-fana: health check failed",
        "pi-oslo: no space",
        &format!("action=\"/releases/{id}/rollout\""),
        &format!("href=\"/releases/{id}/pause\""),
    ] {
        assert!(page.contains(expected), "{expected} in {page}");
    }
    let stored = |central: &Central| {
        let store = Arc::clone(&central.store);
        let id = id.clone();
        async move {
            store
                .release(&id)
                .await
                .expect("reads")
                .expect("the release")
        }
    };
    let csrf = ops.csrf().await;
    let rollout = format!("/releases/{id}/rollout");
    let posted = ops
        .post(&rollout, &[("csrf", csrf.as_str()), ("percent", "30")])
        .await;
    assert_eq!(posted, StatusCode::SEE_OTHER);
    assert!(ops.get("/releases").await.1.contains("30 % of devices"));
    let posted = ops
        .post(&rollout, &[("csrf", csrf.as_str()), ("sites", "fana, os")])
        .await;
    assert_eq!(posted, StatusCode::SEE_OTHER);
    assert!(ops
        .get("/releases")
        .await
        .1
        .contains("30 % of devices and sites: fana, os"));
    let refused = ops
        .post(&rollout, &[("csrf", csrf.as_str()), ("percent", "130")])
        .await;
    assert_eq!(refused, StatusCode::FORBIDDEN);
    // Pausing asks first and wants a reason: unconfirmed or without one, nothing changes.
    let pause = format!("/releases/{id}/pause");
    let (status, confirm) = ops.get(&pause).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Pause the rollout?"), "{confirm}");
    assert!(
        confirm.contains(&format!("action=\"/releases/{id}/pause\"")),
        "{confirm}"
    );
    assert_eq!(
        ops.post(&pause, &[("csrf", csrf.as_str()), ("reason", "bad build")])
            .await,
        StatusCode::FORBIDDEN
    );
    let unpaused = &[
        ("csrf", csrf.as_str()),
        ("confirmed", "yes"),
        ("reason", " "),
    ];
    assert_eq!(ops.post(&pause, unpaused).await, StatusCode::FORBIDDEN);
    assert!(!stored(&central).await.paused);
    let confirmed = [
        ("csrf", csrf.as_str()),
        ("confirmed", "yes"),
        ("reason", "bad build on the Pi 3"),
    ];
    assert_eq!(ops.post(&pause, &confirmed).await, StatusCode::SEE_OTHER);
    let page = ops.get("/releases").await.1;
    assert!(page.contains("paused (when resumed:"), "{page}");
    assert!(page.contains(&format!("action=\"/releases/{id}/resume\"")));
    let before = stored(&central).await;
    assert_eq!(
        (before.percent, before.paused, before.sites.len()),
        (30, true, 2)
    );

    // The municipality and the reader see the page without forms, and cannot post.
    let (_, kari) = try_login(&base, "kari", PASSWORD).await;
    let kari = kari.expect("kari signs in");
    let (status, page) = kari.get("/releases").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("action=\"/releases/"), "{page}");
    assert!(page.contains("pi-fana: health check failed"), "{page}");
    assert!(!page.contains("pi-oslo"), "{page}");
    assert!(
        page.contains("1 device outside your municipality"),
        "{page}"
    );
    let csrf = kari.csrf().await;
    let resume = format!("/releases/{id}/resume");
    assert_eq!(
        kari.post(&resume, &[("csrf", csrf.as_str())]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        kari.post(&rollout, &[("csrf", csrf.as_str()), ("percent", "100")])
            .await,
        StatusCode::FORBIDDEN
    );
    let (_, reader) = try_login(&base, "lesar", PASSWORD).await;
    let reader = reader.expect("the reader signs in");
    let page = reader.get("/releases").await.1;
    assert!(!page.contains("action=\"/releases/"), "{page}");
    let csrf = reader.csrf().await;
    assert_eq!(
        reader.post(&resume, &[("csrf", csrf.as_str())]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(stored(&central).await, before, "nothing changed");

    let audit = ops.get("/audit").await.1;
    for expected in [
        "set_rollout",
        "30 % of devices",
        "sites: fana, os",
        "pause_rollout",
        "paused: bad build on the Pi 3",
        id.as_str(),
    ] {
        assert!(audit.contains(expected), "{expected} in {audit}");
    }
    assert!(!audit.contains("data-action=\"resume_rollout\""), "{audit}");
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_operator_api_writes_its_actions_to_the_audit_log() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    let id = register_release(&central).await;
    let admin = format!("http://{}", central.running.admin_addr);
    let http = central.admin.clone();
    let token_sha256 = "ab".repeat(32);
    let created = http
        .post(format!("{admin}/admin/tokens"))
        .json(&json!({
            "token_sha256": token_sha256,
            "site": "fana",
            "site_name": "Skule 4601",
            "expires_unix": 4_000_000_000u64,
        }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(created.status(), StatusCode::CREATED);
    let token: Value = created.json().await.expect("JSON");
    let token = token["id"].as_str().expect("the token's id").to_owned();
    for (path, body) in [
        (format!("/admin/tokens/{token}/revoke"), Value::Null),
        (
            "/admin/devices/pi-fana/commands".to_owned(),
            json!({"type": "resync"}),
        ),
        (
            format!("/admin/releases/{id}/rollout"),
            json!({"percent": 25}),
        ),
        (format!("/admin/releases/{id}/pause"), Value::Null),
        ("/admin/devices/pi-fana/revoke".to_owned(), Value::Null),
    ] {
        let request = http.post(format!("{admin}{path}"));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let status = request.send().await.expect("an answer").status();
        assert!(status.is_success(), "{path}: {status}");
    }

    let lines = central.store.audit_log(50).await.expect("the audit log");
    // The fixture's own token, made by `operator_auth::create` as the CLI makes one.
    let lines: Vec<_> = lines
        .into_iter()
        .filter(|line| line.action != "create_operator_token")
        .collect();
    let mut actions: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| (line.action.as_str(), line.target.as_str()))
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            ("create_token", token.as_str()),
            ("revoke_token", token.as_str()),
            ("resync", "pi-fana"),
            ("set_rollout", id.as_str()),
            ("pause_rollout", id.as_str()),
            ("revoke_device", "pi-fana"),
        ]
    );
    assert!(lines.iter().all(|line| line.actor == "api:tests"));
    assert!(lines.iter().any(|line| line.detail == "25 % of devices"));
    assert!(
        lines.iter().all(
            |line| !line.detail.contains(&token_sha256) && !line.target.contains(&token_sha256)
        ),
        "the token's hash stays out of the audit log"
    );
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
    // The deadline is the next whole second, as the time picker reads to the second.
    let closes = Timestamp((Timestamp::now().0 / 1000 + 1) * 1000);
    let opens = Timestamp(closes.0 - 3_600_000);
    // Operations create the window (the name is escaped wherever it is shown).
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let csrf = ops.csrf().await;
    let (opens_at, closes_at) = (oslo_fields(opens), oslo_fields(closes));
    let created = post_window(
        &ops,
        &csrf,
        "Inntak <2027>",
        (&opens_at.0, &opens_at.1),
        (&closes_at.0, &closes_at.1),
    )
    .await;
    assert_eq!(created, StatusCode::SEE_OTHER);
    let backwards = post_window(
        &ops,
        &csrf,
        "Backwards",
        ("2101-01-02", ""),
        ("2101-01-01", ""),
    )
    .await;
    assert_eq!(backwards, StatusCode::BAD_REQUEST);
    let overlapping = post_window(
        &ops,
        &csrf,
        "Overlap",
        ("2020-01-01", ""),
        ("2100-01-01", ""),
    )
    .await;
    assert_eq!(overlapping, StatusCode::BAD_REQUEST);
    let forged = post_window(
        &ops,
        &"0".repeat(64),
        "Forged",
        ("2101-01-01", ""),
        ("2101-01-02", ""),
    )
    .await;
    assert_eq!(forged, StatusCode::FORBIDDEN);

    // Fana delivers after the deadline: kept, and flagged on its page.
    let wait = closes.0 + 20 - Timestamp::now().0;
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
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
        "1 site, 1 delivered inside the window",
        "1 late transfer from 1 site:",
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
    let own = post_window(
        &ola,
        &csrf,
        "Oslo's own",
        ("2101-01-01", ""),
        ("2101-01-02", ""),
    )
    .await;
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
    let read_only = post_window(
        &reader,
        &csrf,
        "Reader's",
        ("2101-01-01", ""),
        ("2101-01-02", ""),
    )
    .await;
    assert_eq!(read_only, StatusCode::FORBIDDEN);
    let windows = ops.get("/windows").await.1;
    assert!(
        !windows.contains("Oslo&#39;s own") && !windows.contains("Oslo's own"),
        "{windows}"
    );

    let (_, audit) = ops.get("/audit").await;
    assert!(audit.contains("Created a transfer window"), "{audit}");
    assert!(audit.contains("county 46"), "{audit}");
    assert_eq!(
        audit.matches("data-action=\"create_window\"").count(),
        1,
        "{audit}"
    );
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_form_reads_a_plain_date_as_oslo_midnight_and_refuses_unreadable_ones_in_both_languages(
) {
    let central = Central::start().await;
    central.add_user("ops", "operations", None).await;
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (_, form) = ops.get("/windows").await;
    for expected in [
        "type=\"date\" name=\"opens\"",
        "type=\"time\" name=\"closes_time\"",
    ] {
        assert!(form.contains(expected), "{expected} in {form}");
    }
    let csrf = ops.csrf().await;
    let created = post_window(
        &ops,
        &csrf,
        "Inntak 2101",
        ("2101-02-01", ""),
        ("2101-06-01", "12:30"),
    )
    .await;
    assert_eq!(created, StatusCode::SEE_OTHER);
    let (_, windows) = ops.get("/windows").await;
    assert!(windows.contains("2101-02-01 00:00 CET"), "{windows}");
    assert!(windows.contains("2101-06-01 12:30 CEST"), "{windows}");
    let stored = central.store.windows(None).await.expect("the windows");
    assert_eq!(stored[0].opens.to_string(), "2101-01-31T23:00:00.000Z");

    let refused = |opens: &'static str, opens_time: &'static str| {
        [
            ("fylke", "46"),
            ("name", "Bad"),
            ("opens", opens),
            ("opens_time", opens_time),
            ("closes", "2102-01-01"),
        ]
    };
    let with_csrf = |fields: [(&'static str, &'static str); 5]| {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        form
    };
    let (status, english) = ops
        .post_answer("/windows", &with_csrf(refused("1 March", "")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        english.contains("Opens: choose a date (YYYY-MM-DD)."),
        "{english}"
    );
    let (status, bokmal) = ops
        .without_language()
        .post_answer("/windows", &with_csrf(refused("2102-03-01", "25:00")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bokmal.contains("Åpner: klokkeslettet skrives TT:MM eller TT:MM:SS."),
        "{bokmal}"
    );
    assert_eq!(
        central
            .store
            .windows(None)
            .await
            .expect("the windows")
            .len(),
        1
    );
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_reasons_and_refused_windows_are_said_in_bokmal_unless_english_is_asked_for() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("voss", "pi-voss", "4621", 2).await;
    central.add_user("ops", "operations", None).await;
    heartbeat(
        central.store.as_ref(),
        "pi-fana",
        json!({"version": "1.5.0", "state": "holding",
               "held": {"id": "h1",
                        "reasons": ["151 of 300 students would be deleted (50%, limit 10%)"],
                        "causes": [{"kind": "too_many_deletes", "would": 151, "of": 300,
                                    "limit_percent": 10}],
                        "deletes": {"students": 151}}}),
    )
    .await;
    // An older agent sends only its English words: they are shown as they came.
    heartbeat(
        central.store.as_ref(),
        "pi-voss",
        json!({"version": "1.4.0", "state": "holding",
               "held": {"id": "h2", "reasons": ["12 of 40 students would be deleted"],
                        "deletes": {"students": 12}}}),
    )
    .await;
    let ops = try_login(&central.ui(), "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (_, bokmal) = ops.without_language().get("/held").await;
    assert!(
        bokmal.contains("151 av 300 elever ville blitt slettet (50 %, grensen er 10 %)"),
        "{bokmal}"
    );
    assert!(
        bokmal.contains("12 of 40 students would be deleted"),
        "{bokmal}"
    );
    let (_, english) = ops.get("/held").await;
    assert!(
        english.contains("151 of 300 students would be deleted (50%, limit 10%)"),
        "{english}"
    );

    let csrf = ops.csrf().await;
    let window = |fylke, opens, closes| {
        [
            ("csrf", csrf.as_str()),
            ("fylke", fylke),
            ("name", "Inntak"),
            ("opens", opens),
            ("closes", closes),
        ]
    };
    let norsk = ops.without_language();
    let (status, backwards) = norsk
        .post_answer("/windows", &window("46", "2101-01-02", "2101-01-01"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        backwards.contains("Et overføringsvindu må stenge etter at det åpner (åpner 02.01.2101"),
        "{backwards}"
    );
    let (status, county) = norsk
        .post_answer("/windows", &window("4", "2101-01-01", "2101-01-02"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        county.contains("Fylket skrives som fylkesnummer, med to sifre."),
        "{county}"
    );
    let (status, english) = ops
        .post_answer("/windows", &window("4", "2101-01-01", "2101-01-02"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        english.contains("fylke is a county number (fylkesnummer), two digits"),
        "{english}"
    );
    assert!(central
        .store
        .windows(None)
        .await
        .expect("the windows")
        .is_empty());
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_page_draws_its_nights_and_deviations_as_pictures_with_words_beside_them() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    // Three days ago a delta was held and let go again without an operator's decision, and
    // the day's export had more invalid national ids than today's.
    let three_days_ago = Timestamp(Timestamp::now().0 - 3 * 86_400_000);
    heartbeat_at(
        central.store.as_ref(),
        "pi-fana",
        json!({"version": "1.2.3", "state": "holding",
               "deviation_groups": [
                   {"code": "invalid_national_id", "severity": "error", "count": 7}],
               "held": {"id": "h0", "deletes": {"students": 9}}}),
        three_days_ago,
    )
    .await;
    let held_since = Timestamp::now().0 - 86_400_000;
    heartbeat(
        central.store.as_ref(),
        "pi-fana",
        json!({"version": "1.2.3", "state": "holding",
               "deviations": {"errors": 3, "warnings": 1},
               "deviation_groups": [
                   {"code": "invalid_national_id", "severity": "error", "count": 3},
                   {"code": "unknown_field", "severity": "warning", "count": 1}],
               "held": {"id": "h1", "deletes": {"students": 5},
                        "held_since_unix_ms": held_since}}),
    )
    .await;
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (status, site) = ops.get("/sites/fana").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(site.matches("<svg class=\"chart\"").count(), 2, "{site}");
    for expected in [
        "role=\"img\"",
        "aria-labelledby=\"chart-changes-title chart-changes-desc\"",
        "Records changed per night, last 90 nights",
        // The snapshot's one school, today; the held delta since yesterday.
        "90 nights, 1 with something to show; most 1 changed record",
        // Yesterday and today from the current hold, three days ago from the history.
        "3 nights with a held delta.",
        "Deviations by code per night, last 90 nights",
        "aria-labelledby=\"chart-deviations-title chart-deviations-desc\"",
        ">invalid_national_id (at most 7)</text>",
        ">unknown_field (at most 1)</text>",
    ] {
        assert!(site.contains(expected), "{expected} in {site}");
    }
    let english_date = |at: Timestamp| {
        let (local, _) = at.oslo();
        format!("{:02}-{:02}", local.month, local.day)
    };
    let (today, before) = (english_date(Timestamp::now()), english_date(three_days_ago));
    assert!(
        site.contains(&format!(
            "2 codes over 90 nights; the last night ({today}): 3 errors, 1 warning."
        )),
        "{site}"
    );
    // The code on both days, in the picture and in the table beside it.
    for (night, count) in [(&before, 7), (&today, 3)] {
        assert!(
            site.contains(&format!(
                "<title>invalid_national_id, {night}: {count}</title>"
            )),
            "{night} in {site}"
        );
        assert!(
            site.contains(&format!(
                "<td>invalid_national_id</td><td>error</td><td>{night}</td><td>{count}</td>"
            )),
            "{night} in {site}"
        );
    }
    // 90 nights, and the deviations' bars: the code on two nights, the warning on one.
    assert_eq!(site.matches("<rect class=\"bar").count(), 93, "{site}");
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_draws_the_sites_delivered_each_night_of_an_open_window_for_its_county_only()
{
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("ops", "operations", None).await;
    central.add_user("ola", "municipality", Some("0301")).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (_, before) = ops.get("/fleet").await;
    assert!(!before.contains("<svg"), "no window is open: {before}");
    let csrf = ops.csrf().await;
    let (today, _) = oslo_fields(Timestamp::now());
    let yesterday = oslo_fields(Timestamp(Timestamp::now().0 - 86_400_000)).0;
    let created = post_window(&ops, &csrf, "Inntak", (&yesterday, ""), ("2101-01-01", "")).await;
    assert_eq!(created, StatusCode::SEE_OTHER);
    deliver_again(central.store.as_ref(), "fana", "pi-fana", "4601").await;

    let (_, fleet) = ops.get("/fleet").await;
    for expected in [
        "Sites delivered per night in Inntak (county 46)",
        "role=\"img\"",
        "2 nights, 1 with something to show; most 1 site",
    ] {
        assert!(fleet.contains(expected), "{expected} in {fleet}");
    }
    assert!(
        fleet.contains(&format!(">{}</text>", &today[5..])),
        "{fleet}"
    );
    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    assert!(kari
        .get("/fleet")
        .await
        .1
        .contains("Sites delivered per night in Inntak"));
    let ola = try_login(&base, "ola", PASSWORD)
        .await
        .1
        .expect("ola signs in");
    let (_, other_county) = ola.get("/fleet").await;
    assert!(!other_county.contains("<svg"), "{other_county}");
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_summary_counts_the_sites_that_have_not_delivered_in_their_open_window() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("ops", "operations", None).await;
    let ops = try_login(&central.ui(), "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (_, before) = ops.get("/fleet").await;
    assert!(
        !before.contains("not-delivered"),
        "no window is open: {before}"
    );
    // The window opens on a later second than fana's first delivery, so fana has not
    // delivered in it yet; oslo is in another county, whose window is not open.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let csrf = ops.csrf().await;
    let (day, second) = oslo_fields(Timestamp::now());
    let created = post_window(&ops, &csrf, "Inntak", (&day, &second), ("2101-01-01", "")).await;
    assert_eq!(created, StatusCode::SEE_OTHER);
    let (_, waiting) = ops.get("/fleet").await;
    assert!(
        waiting.contains("1 site not delivered in the open transfer window"),
        "{waiting}"
    );
    deliver_again(central.store.as_ref(), "fana", "pi-fana", "4601").await;
    let (_, delivered) = ops.get("/fleet").await;
    assert!(
        delivered.contains("0 sites not delivered in the open transfer window"),
        "{delivered}"
    );
    central.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_filters_by_actor_action_and_site_pages_and_says_actions_in_words() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    let store = central.store.as_ref();
    let line = |n: i64, actor: &str, action: &str, target: &str| AuditEntry {
        at: Timestamp(1_000_000 + n),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: format!("line {n}"),
    };
    for n in 0..55 {
        store
            .append_audit(&line(n, "robot", "login", ""))
            .await
            .expect("the line");
    }
    for entry in [
        line(60, "kari", "release", "pi-fana"),
        line(61, "kari", "register_schools", "fana"),
        line(62, "ops", "revoke_device", "pi-other"),
    ] {
        store.append_audit(&entry).await.expect("the line");
    }
    let base = central.ui();
    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let rows = |page: &str| page.matches("<td data-action=").count();

    let (_, robot) = ops.get("/audit?actor=robot&action=login").await;
    assert_eq!(rows(&robot), 50, "{robot}");
    assert!(robot.contains("Signed in"), "{robot}");
    assert!(
        robot.contains("href=\"/audit?actor=robot&amp;action=login&amp;page=2\" rel=\"next\""),
        "{robot}"
    );
    let (_, older) = ops.get("/audit?actor=robot&action=login&page=2").await;
    assert_eq!(rows(&older), 5, "{older}");
    assert!(older.contains("rel=\"prev\"") && !older.contains("rel=\"next\""));

    let (_, fana) = ops.get("/audit?site=fana").await;
    assert_eq!(rows(&fana), 2, "{fana}");
    for expected in ["Released a held delta", "Registered a site's schools"] {
        assert!(fana.contains(expected), "{expected} in {fana}");
    }
    assert!(!fana.contains("pi-other"), "{fana}");
    assert!(
        fana.contains("value=\"fana\""),
        "the filter is kept: {fana}"
    );
    let (_, nb) = ops
        .without_language()
        .get("/audit?action=revoke_device")
        .await;
    assert_eq!(rows(&nb), 1, "{nb}");
    assert!(nb.contains("Tilbakekalte en enhet"), "{nb}");
    let (_, none) = ops.get("/audit?actor=nobody").await;
    assert!(none.contains("No action matches the filter."), "{none}");

    // Municipality operators see no audit log, filtered to their own site or not.
    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    assert_eq!(kari.get("/audit?site=fana").await.0, StatusCode::NOT_FOUND);
    central.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The browser test

/// How long the whole browser scenario may take before the test fails with chromedriver's
/// log, instead of hanging the run.
const BROWSER_DEADLINE: Duration = Duration::from_secs(300);

/// How long one WebDriver command may take (a page load is bounded lower, by the session's
/// own `pageLoad` timeout).
const WEBDRIVER_CALL: Duration = Duration::from_secs(90);

/// A WebDriver session on chromedriver, driving headless chromium. chromedriver runs in a
/// process group of its own, and dropping the browser kills that group, chromium included:
/// a failed or timed-out test leaves no browser behind holding connections to central.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: std::process::Child,
    log: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a chromium session with a fresh profile under `dir`. The flags
    /// keep chromium off the network (this machine's network is closed; background requests
    /// are refused or hang) and out of the caller's home folder.
    async fn start(tools: &BrowserTools, dir: &Path) -> Browser {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).expect("the browser profile folder");
        let driver = std::process::Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .env("HOME", dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(WEBDRIVER_CALL)
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            http,
            session: String::new(),
            driver,
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = browser.http.get(format!("{base}/status")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("chromedriver is not ready{}", browser.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = browser
            .http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
                "goog:chromeOptions": {
                    "binary": tools.chromium.display().to_string(),
                    "prefs": {"intl.accept_languages": "nb-NO,nb"},
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--no-default-browser-check",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--disable-extensions", "--disable-breakpad",
                        format!("--user-data-dir={}", profile.display()),
                        "--window-size=1400,800",
                        // A Norwegian operator's browser: the interface's default language
                        // must come out either way, and this one asks for it.
                        "--lang=nb-NO",
                    ]
                }
            }}}))
            .send()
            .await;
        let created: Value = match created {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(error) => panic!("no WebDriver session: {error}{}", browser.log_tail()),
        };
        let Some(session) = created["value"]["sessionId"].as_str() else {
            panic!("no session id in {created}{}", browser.log_tail());
        };
        browser.session = format!("{base}/session/{session}");
        browser
    }

    /// The end of chromedriver's log, for a failure message.
    fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = match request.send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(error) => panic!("WebDriver {path}: {error}{}", self.log_tail()),
        };
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}{}",
            self.log_tail()
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

    /// The current page once it contains `text`. A click that submits a form can return
    /// before the browser has loaded the page the form leads to.
    async fn page_showing(&self, text: &str) -> String {
        self.page_showing_one_of(&[text]).await
    }

    /// The current page once it contains any of `texts`: a state the page reports can move
    /// on (queued, then delivered) between the click and the page load.
    async fn page_showing_one_of(&self, texts: &[&str]) -> String {
        let started = Instant::now();
        loop {
            let page = self.source().await;
            if texts.iter().any(|text| page.contains(text)) {
                return page;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never showed any of {texts:?}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens `url` until its page contains `text`: what a page shows can lag a heartbeat
    /// behind what the test already saw at central.
    async fn open_until(&self, url: &str, text: &str) -> String {
        let started = Instant::now();
        loop {
            self.open(url).await;
            let page = self.source().await;
            if page.contains(text) {
                return page;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{url} never showed {text:?}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Saves the whole page as a PNG, below the window's edge too (WebDriver's own
    /// screenshot stops there): DevTools' capture, clipped to the page's size.
    async fn screenshot(&self, path: &Path) {
        let metrics = self.devtools("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let shot = self
            .devtools(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": {
                    "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1
                }}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("base64"))
            .expect("a PNG");
        std::fs::write(path, png).expect("the screenshot is written");
    }

    /// A DevTools command, which chromedriver passes on to chromium.
    async fn devtools(&self, cmd: &str, params: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": cmd, "params": params}),
        )
        .await
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Runs `script` in the page and returns what it passes to its callback, the last of
    /// `arguments`.
    async fn execute_async(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Shows the page as a phone `PHONE_WIDTH` CSS pixels wide (mobile mode, so the page's
    /// viewport meta counts) or, with `false`, as the desktop window again. Resizing the
    /// window instead would stop at chromium's smallest window width.
    async fn as_phone(&self, phone: bool) {
        if phone {
            self.devtools(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": PHONE_WIDTH, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
            )
            .await;
        } else {
            self.devtools("Emulation.clearDeviceMetricsOverride", json!({}))
                .await;
        }
    }

    async fn quit(self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(&self.session).send().await;
        }
    }
}

impl Drop for Browser {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`); chromium is in it.
        if let Ok(group) = libc::pid_t::try_from(self.driver.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.driver.wait();
    }
}

/// The last lines of chromedriver's log, or why there are none.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            format!(
                "\n--- chromedriver log (last lines) ---\n{}",
                lines[from..].join("\n")
            )
        }
        Err(error) => format!("\n(no chromedriver log at {}: {error})", path.display()),
    }
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
    let tools = match BrowserTools::find() {
        Ok(tools) => tools,
        Err(missing) => {
            assert!(
                !browser_required(),
                "the browser test is required here (CI=true or SKOLEBRO_REQUIRE_BROWSER) but \
                 {missing}"
            );
            eprintln!("SKIPPED: {missing}");
            return;
        }
    };
    let inspector = Inspector::new();
    let central = Central::start().await;
    central.add_user("ops", "operations", None).await;
    // A release and an open window of the site's county, so their pages show tables.
    register_release(&central).await;
    let day = 24 * 3600 * 1000;
    let now = Timestamp::now().0;
    central
        .store
        .create_window(&NewWindow {
            fylke: Fylke::parse("46").expect("a county"),
            name: "Inntak 2027".into(),
            opens: Timestamp(now - 10 * day),
            closes: Timestamp(now + 20 * day),
            created: Timestamp(now),
            created_by: "test".into(),
        })
        .await
        .expect("the window is stored");
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
    // The sample export's one school, registered with the site as its stick would have.
    let school: SiteSchool = "4601/46500=Fana skule".parse().expect("a school");
    central
        .store
        .register_schools(&site, &[school], skolebro_central::store::Timestamp(1))
        .await
        .expect("the registration");
    let agent = daemon::start(AgentConfig::load(&config).expect("the agent's config"))
        .await
        .expect("the agent starts");

    // The scenario runs as a task of its own, bounded in time, so that whatever it ends
    // with (passing, failing, hanging) the agent and central are stopped afterwards.
    let browser_dir = central.dir.path().join("browser");
    std::fs::create_dir_all(&browser_dir).expect("the browser's folder");
    let scenario = tokio::spawn(release_in_browser(Scene {
        ui: central.ui(),
        admin: format!("http://{}", central.running.admin_addr),
        admin_http: central.admin.clone(),
        store: Arc::clone(&central.store),
        site,
        agent_dir,
        browser_dir: browser_dir.clone(),
        tools,
        inspector,
    }));
    let outcome = tokio::time::timeout(BROWSER_DEADLINE, scenario).await;
    let stopped = agent.stop().await;
    central.running.shutdown().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => panic!(
            "the browser scenario took longer than {BROWSER_DEADLINE:?}{}",
            log_tail(&browser_dir.join("chromedriver.log"))
        ),
    }
    if let Err(error) = stopped {
        panic!("the agent did not stop cleanly: {error}");
    }
}

/// What the browser scenario works on.
struct Scene {
    ui: String,
    admin: String,
    /// A client that sends the fixture's operator API token.
    admin_http: reqwest::Client,
    store: Arc<dyn Store>,
    site: SiteId,
    agent_dir: PathBuf,
    browser_dir: PathBuf,
    tools: BrowserTools,
    inspector: Inspector,
}

/// Where chromium and chromedriver are: found on `PATH`, so that a run with a `PATH` that
/// lacks them shows what CI does when they could not be installed.
struct BrowserTools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl BrowserTools {
    /// Both programs, or which of them `PATH` lacks.
    fn find() -> Result<BrowserTools, String> {
        match (on_path("chromium"), on_path("chromedriver")) {
            (Some(chromium), Some(chromedriver)) => Ok(BrowserTools {
                chromium,
                chromedriver,
            }),
            (chromium, chromedriver) => {
                let missing: Vec<&str> = [("chromium", chromium), ("chromedriver", chromedriver)]
                    .into_iter()
                    .filter(|(_, found)| found.is_none())
                    .map(|(name, _)| name)
                    .collect();
                Err(format!("{} not found on PATH", missing.join(" and ")))
            }
        }
    }
}

/// The first executable file called `name` in a folder of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Whether a missing browser fails the test rather than skipping it: under CI (`CI=true`,
/// as CI services set it) or when asked for with `SKOLEBRO_REQUIRE_BROWSER`.
fn browser_required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1")
        || std::env::var_os("SKOLEBRO_REQUIRE_BROWSER").is_some()
}

/// The width of the phone every page is checked at, in CSS pixels: a common phone's.
const PHONE_WIDTH: u32 = 390;

/// Where `.ci/run` installs axe-core with npm, relative to the workspace; the variable
/// `SKOLEBRO_AXE_CORE` names another `axe.min.js`.
const AXE_CORE: &str = "target/npm/node_modules/axe-core/axe.min.js";

/// The WCAG 2 A and AA rules of axe-core (2.0, 2.1 and 2.2), which every page must pass.
const AXE_RUN: &str = "var done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values:
    ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa']}})
  .then(function (result) {
    done(result.violations.map(function (v) {
      return v.id + ' (' + v.help + ') at ' + v.nodes.map(function (n) {
        return n.target.join(' ');
      }).join(', ');
    }));
  }, function (error) { done(['axe-core failed: ' + error]); });";

/// What axe-core does not check (WCAG 2.2 dropped its parsing rules) but the interface
/// promises on every page: the language, unique ids, a skip link to `main`, a menu once
/// signed in (the sign-in page has none), captions and header scopes on every table, and
/// at phone width the page's own width.
const PAGE_FACTS: &str =
    "var ids = Array.from(document.querySelectorAll('[id]'), function (e) { return e.id; });
return {
  lang: document.documentElement.lang,
  duplicate_ids: ids.filter(function (id, i) { return ids.indexOf(id) !== i; }),
  skip_link: document.querySelector('a.skip[href=\"#main\"]') !== null
    && document.querySelector('main#main') !== null,
  menu: document.querySelector('nav ul li a') !== null
    || document.getElementById('sign-in') !== null,
  tables_without_caption: document.querySelectorAll('table:not(:has(> caption))').length,
  headers_without_scope: document.querySelectorAll('th:not([scope])').length,
  viewport: document.documentElement.clientWidth,
  page_width: document.documentElement.scrollWidth,
  inner_width: window.innerWidth
};";

/// The checks of every page the browser scenario opens, and where its screenshots go.
struct Inspector {
    /// axe-core's script, or why it is missing (the check is then skipped, or fails in CI).
    axe: Result<String, String>,
    /// `SKOLEBRO_UI_SCREENSHOT_DIR`: where `fleet.png`, `site.png`, `held.png` and
    /// `phone.png` are written, if anywhere.
    screenshots: Option<PathBuf>,
}

impl Inspector {
    /// axe-core from `SKOLEBRO_AXE_CORE` or where `.ci/run` installs it. Without it the
    /// accessibility check says SKIPPED, except where the browser test is required: there
    /// it fails, as CI must not pass without the check.
    fn new() -> Inspector {
        let path = std::env::var_os("SKOLEBRO_AXE_CORE").map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(AXE_CORE)
            },
            PathBuf::from,
        );
        let axe = std::fs::read_to_string(&path).map_err(|error| {
            format!(
                "axe-core not found at {} ({error}); .ci/run installs it with npm",
                path.display()
            )
        });
        if let Err(missing) = &axe {
            assert!(
                !browser_required(),
                "the accessibility check is required here (CI=true or \
                 SKOLEBRO_REQUIRE_BROWSER) but {missing}"
            );
            eprintln!("SKIPPED (the accessibility check): {missing}");
        }
        Inspector {
            axe,
            screenshots: std::env::var_os("SKOLEBRO_UI_SCREENSHOT_DIR").map(PathBuf::from),
        }
    }

    /// Checks the page the browser shows, `name` in failure messages: the page facts and
    /// axe-core at the desktop window's width, then again as a phone, where the page must
    /// not be wider than the screen. `phone_shot` names the phone screenshot to save.
    async fn check(&self, browser: &Browser, name: &str, phone_shot: Option<&str>) {
        self.check_width(browser, name, false).await;
        browser.as_phone(true).await;
        let facts = self.check_width(browser, name, true).await;
        let width = |fact: &str| {
            facts[fact]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: no {fact} in {facts}"))
        };
        assert_eq!(width("viewport"), u64::from(PHONE_WIDTH), "{name}: {facts}");
        assert!(
            width("page_width") <= width("viewport") && width("page_width") <= width("inner_width"),
            "{name} scrolls sideways on a phone: {facts}"
        );
        if let Some(shot) = phone_shot {
            self.screenshot(browser, shot).await;
        }
        browser.as_phone(false).await;
    }

    /// The page facts and axe-core's verdict at the current width; the facts for the caller.
    async fn check_width(&self, browser: &Browser, name: &str, phone: bool) -> Value {
        let width = if phone {
            "as a phone"
        } else {
            "on the desktop"
        };
        let facts = browser.execute(PAGE_FACTS).await;
        assert_eq!(facts["lang"], "nb", "{name} {width}: {facts}");
        assert_eq!(facts["duplicate_ids"], json!([]), "{name} {width}: {facts}");
        for promised in ["skip_link", "menu"] {
            assert_eq!(facts[promised], true, "{name} {width}: {promised}: {facts}");
        }
        for lacking in ["tables_without_caption", "headers_without_scope"] {
            assert_eq!(facts[lacking], 0, "{name} {width}: {lacking}: {facts}");
        }
        if let Ok(axe) = &self.axe {
            let violations = browser.execute_async(&format!("{axe}\n;{AXE_RUN}")).await;
            assert_eq!(
                violations,
                json!([]),
                "axe-core finds WCAG violations on {name} {width}"
            );
        }
        facts
    }

    /// Saves the browser's view as `name` in the screenshot folder, if one is set.
    async fn screenshot(&self, browser: &Browser, name: &str) {
        if let Some(dir) = &self.screenshots {
            browser.screenshot(&dir.join(name)).await;
        }
    }
}

/// The sample school, then an export with only its first 19 pupils and a 20th whose national
/// id fails its control digits (sent without the id, and reported as a deviation): deleting
/// the other 281 is far beyond the default 10%, so the agent holds that delta until the
/// operator, in the browser, releases it.
async fn release_in_browser(scene: Scene) {
    let Scene {
        ui: base,
        admin,
        admin_http,
        store,
        site,
        agent_dir,
        browser_dir,
        tools,
        inspector,
    } = scene;
    let full = include_str!("../../samples/elevliste.csv");
    let students = |text: &str| text.lines().skip(1).count() as u64;
    let mut few: String = full
        .lines()
        .take(20)
        .map(|line| format!("{line}\n"))
        .collect();
    let twentieth: Vec<&str> = full
        .lines()
        .nth(20)
        .expect("a 21st line")
        .split(';')
        .collect();
    let clear_id = twentieth[6];
    let last = clear_id.as_bytes()[10];
    let broken_id = format!(
        "{}{}",
        &clear_id[..10],
        if last == b'0' { '1' } else { '0' }
    );
    let mut broken = twentieth.clone();
    broken[6] = &broken_id;
    few.push_str(&format!("{}\n", broken.join(";")));
    drop_export(&agent_dir, "elevliste-1.csv", full);
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
    let devices = format!("{admin}/admin/devices");
    let http = admin_http;
    wait_for("the held delta to be reported", || {
        let (http, devices) = (http.clone(), devices.clone());
        async move {
            let Ok(response) = http.get(&devices).send().await else {
                return false;
            };
            let devices: Value = response.json().await.unwrap_or(Value::Null);
            devices["devices"][0]["last_heartbeat"]["held"].is_object()
        }
    })
    .await;

    let browser = Browser::start(&tools, &browser_dir).await;
    browser.open(&format!("{base}/login")).await;
    inspector.check(&browser, "the sign-in page", None).await;
    browser.type_into("#name", "ops").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    // The browser asks for Norwegian, and gets it.
    let fleet = browser
        .page_showing("Holder tilbake en endring til vurdering")
        .await;
    assert!(fleet.contains("pi-fana"), "{fleet}");
    assert!(fleet.contains("<html lang=\"nb\">"), "{fleet}");
    // The agent's newest file and what became of it, beside its last export.
    assert!(
        fleet.contains("Siste fil på delingen: elevliste-2.csv, skrevet "),
        "{fleet}"
    );
    inspector.check(&browser, "the fleet page", None).await;

    browser.open(&format!("{base}/held")).await;
    let held = browser.source().await;
    assert!(held.contains("281 elever"), "{held}");
    // The agent says since when it holds the delta.
    assert!(held.contains(", holdt siden "), "{held}");
    inspector.check(&browser, "the held-delta page", None).await;
    browser
        .type_into(
            "#reason-pi-fana",
            "Pupils moved to the new school; checked with the rektor",
        )
        .await;
    inspector.screenshot(&browser, "held.png").await;
    browser.click("#release-pi-fana").await;
    // The agent's heartbeat can fetch the release before the page after the click loads.
    browser
        .page_showing_one_of(&["Frigivelsen står i kø", "Frigivelsen ble levert"])
        .await;

    // The agent picks the release up with its next heartbeat and sends the delta.
    wait_for("the released delta at central", || {
        let (store, site) = (Arc::clone(&store), site.clone());
        async move { store.counts(&site).await.is_ok_and(|c| c.students == 20) }
    })
    .await;
    browser
        .open_until(
            &format!("{base}/held"),
            "Ingen enhet holder tilbake en endring til vurdering",
        )
        .await;
    let site_page = browser
        .open_until(&format!("{base}/sites/fana"), "Sentralen har 20 elever")
        .await;
    // The site's nights are drawn as a picture the browser sees as an image.
    browser.element("svg[role=img]").await;
    // Two transfers: the first export, and the released delta that removed the leavers.
    assert_eq!(
        site_page.matches("<td>pi-fana</td>").count(),
        2,
        "{site_page}"
    );
    // The broken id is listed to be fixed in the SAS, by code, masked.
    assert!(
        site_page.contains("<code>invalid_national_id</code>"),
        "{site_page}"
    );
    assert!(
        site_page.contains(&format!(
            "<li>elevliste-2.csv line 21: national id {}*****",
            &broken_id[..6]
        )),
        "{site_page}"
    );
    assert!(!site_page.contains(&broken_id), "{site_page}");
    inspector.check(&browser, "the site page", None).await;
    inspector.screenshot(&browser, "site.png").await;

    browser.open(&format!("{base}/audit")).await;
    let audit = browser.source().await;
    inspector.check(&browser, "the audit page", None).await;
    assert!(audit.contains("release"), "{audit}");
    assert!(
        audit.contains("Pupils moved to the new school; checked with the rektor"),
        "{audit}"
    );

    let fleet = browser
        .open_until(
            &format!("{base}/fleet"),
            "Frisk: eksporter leses og leveres",
        )
        .await;
    for forbidden in ["02871662943", "Sæther"] {
        assert!(!fleet.contains(forbidden) && !site_page.contains(forbidden));
    }
    inspector.screenshot(&browser, "fleet.png").await;
    inspector
        .check(&browser, "the fleet page", Some("phone.png"))
        .await;
    // The pages the scenario does not act on pass the same checks.
    for (path, name) in [
        ("/releases", "the releases page"),
        ("/windows", "the transfer windows page"),
        ("/reads", "the reads page"),
        ("/tokens", "the sticks and tokens page"),
        ("/privacy", "the privacy page"),
        ("/sites/fana/exit", "a site's exit page"),
        ("/sites/nowhere", "the page of a site that is not there"),
    ] {
        browser.open(&format!("{base}{path}")).await;
        inspector.check(&browser, name, None).await;
    }
    browser.open(&format!("{base}/fleet")).await;

    // Revoking the device asks first and wants a reason, which the audit log keeps.
    browser.click("#revoke-pi-fana").await;
    browser.page_showing("Tilbakekalle enheten?").await;
    inspector.check(&browser, "the revocation page", None).await;
    browser
        .type_into("#reason", "Stolen from the school office")
        .await;
    browser.click("#confirm").await;
    browser
        .page_showing("Tilbakekalt: tilkoblingene avvises")
        .await;
    let audit = browser
        .open_until(&format!("{base}/audit"), "revoke_device")
        .await;
    assert!(
        audit.contains("revoked: Stolen from the school office"),
        "{audit}"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_operator_sees_only_the_reads_of_its_own_kommunes_sites() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.site_in("oslo", "pi-oslo", "0301", 2).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    central.add_user("ops", "operations", None).await;
    let read = |client: &str, site: &str| Read {
        id: 0,
        at: Timestamp::now(),
        client: client.to_owned(),
        client_name: format!("Klient {client}"),
        endpoint: "/ims/oneroster/v1p1/users".to_owned(),
        filter: Some("identifier='018140*****'".to_owned()),
        records: 7,
        sites: vec![SiteId::new(site).expect("a site id")],
    };
    for (client, site) in [("c-oslo", "oslo"), ("c-fana", "fana")] {
        central
            .store
            .log_read(&read(client, site))
            .await
            .expect("the read is logged");
    }
    let base = central.ui();

    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    let (status, reads) = kari.get("/reads").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        reads.contains("c-fana") && reads.contains("018140*****"),
        "{reads}"
    );
    assert!(
        !reads.contains("c-oslo") && !reads.contains("oslo"),
        "{reads}"
    );
    let (status, reads) = kari.get("/reads?client=c-oslo").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!reads.contains("Klient c-oslo"), "{reads}");
    // Another kommune's site answers as one that does not exist.
    assert_eq!(kari.get("/reads?site=oslo").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        kari.get("/reads?site=nowhere").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(kari.get("/sites/fana").await.1.contains("/reads?site=fana"));

    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let (status, reads) = ops.get("/reads?site=oslo").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        reads.contains("c-oslo") && !reads.contains("c-fana"),
        "{reads}"
    );
    assert!(ops.get("/reads").await.1.contains("c-fana"));
}

impl Session {
    /// The whole answer to a form, for downloads and confirmation pages.
    async fn post_response(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("an answer")
    }
}

/// A synthetic national id (month + 80) for the privacy page's tests.
const PUPIL_ID: &str = "02871662943";

/// Adds one pupil, with that national id and an enrollment, to a site `site_in` made.
async fn pupil_at(central: &Central, site: &str, device: &str, kommune: &str) {
    use skolebro_protocol::{Enrollment, Gender, NationalId, Student};
    let site = SiteId::new(site).expect("a site id");
    let device = DeviceId::new(device).expect("a device id");
    let head = central.store.chain_head(&device).await.expect("the head");
    let mut batch = one_school_snapshot(device, site, head, kommune, [0xee; 32]);
    if let Payload::Snapshot(roster) = &mut batch.payload {
        roster.students.push(Student {
            source_key: "p1".into(),
            national_id: Some(NationalId::parse(PUPIL_ID).expect("a synthetic id")),
            username: None,
            given_name: "Ingrid".into(),
            middle_name: None,
            family_name: "Haugen".into(),
            birth_date: None,
            gender: Gender::Female,
            email: None,
        });
        roster.enrollments.push(Enrollment {
            source_key: "p1-e".into(),
            student: "p1".into(),
            school: format!("{kommune}0").into(),
            group: None,
        });
    }
    central.store.apply(batch).await.expect("the pupil applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_page_exports_and_erases_a_pupil_after_asking_and_read_only_cannot() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    pupil_at(&central, "fana", "pi-fana", "4601").await;
    central.add_user("ops", "operations", None).await;
    central.add_user("nils", "municipality", Some("4602")).await;
    central.add_user("lese", "read_only", None).await;
    let base = central.ui();
    let masked = format!("{}*****", &PUPIL_ID[..6]);

    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let csrf = ops.csrf().await;
    let (status, page) = ops.get("/privacy").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("href=\"/privacy\"") && page.contains("export-id"),
        "{page}"
    );

    let download = ops
        .post_response(
            "/privacy/export",
            &[("csrf", &csrf), ("national_id", PUPIL_ID)],
        )
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download
        .headers()
        .get("content-disposition")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let export: Value = download.json().await.expect("JSON");
    assert_eq!(export["subject"], masked);
    assert_eq!(export["sites"], json!(["fana"]));
    assert_eq!(export["records"].as_array().map(Vec::len), Some(2));

    // A municipality of another kommune reaches none of it.
    let nils = try_login(&base, "nils", PASSWORD)
        .await
        .1
        .expect("nils signs in");
    let nils_csrf = nils.csrf().await;
    let theirs: Value = nils
        .post_response(
            "/privacy/export",
            &[("csrf", &nils_csrf), ("national_id", PUPIL_ID)],
        )
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(theirs["records"], json!([]));
    // Read-only accounts may not.
    let lese = try_login(&base, "lese", PASSWORD)
        .await
        .1
        .expect("lese signs in");
    assert_eq!(lese.get("/privacy").await.0, StatusCode::FORBIDDEN);

    // Erasure asks first, naming what goes, and changes nothing until confirmed.
    let erase = [
        ("csrf", csrf.as_str()),
        ("national_id", PUPIL_ID),
        ("reason", "the pupil asked"),
    ];
    let asked = ops.post_response("/privacy/erase", &erase).await;
    assert_eq!(asked.status(), StatusCode::OK);
    let asked = asked.text().await.expect("a body");
    assert!(
        asked.contains("Erase the pupil?") && asked.contains(&masked),
        "{asked}"
    );
    assert!(asked.contains("name=\"confirmed\" value=\"yes\""));
    let fana = SiteId::new("fana").expect("a site id");
    assert_eq!(
        central.store.counts(&fana).await.expect("counts").students,
        1
    );
    let mut confirmed = erase.to_vec();
    confirmed.push(("confirmed", "yes"));
    assert_eq!(
        ops.post("/privacy/erase", &confirmed).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        central.store.counts(&fana).await.expect("counts").students,
        0
    );

    let (_, page) = ops.get("/privacy").await;
    assert!(
        page.contains("id=\"tombstones\"") && page.contains("the pupil asked"),
        "{page}"
    );
    assert!(!page.contains(PUPIL_ID), "no national id on the page");
    let audit = central.store.audit_log(20).await.expect("the audit log");
    assert!(audit.iter().any(|line| line.action == "subject_erase"
        && line.actor == "ops"
        && line.target == masked
        && line.detail == "the pupil asked"));
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_export_a_site_and_purge_it_only_when_its_id_is_typed() {
    let central = Central::start().await;
    central.site_in("fana", "pi-fana", "4601", 1).await;
    central.add_user("ops", "operations", None).await;
    central.add_user("kari", "municipality", Some("4601")).await;
    let base = central.ui();

    let kari = try_login(&base, "kari", PASSWORD)
        .await
        .1
        .expect("kari signs in");
    assert_eq!(kari.get("/sites/fana/exit").await.0, StatusCode::FORBIDDEN);
    assert!(!kari.get("/sites/fana").await.1.contains("/sites/fana/exit"));

    let ops = try_login(&base, "ops", PASSWORD)
        .await
        .1
        .expect("ops signs in");
    let csrf = ops.csrf().await;
    assert!(ops.get("/sites/fana").await.1.contains("/sites/fana/exit"));
    let (status, page) = ops.get("/sites/fana/exit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("purge-confirm"), "{page}");
    let export = ops
        .post_response("/sites/fana/export", &[("csrf", &csrf)])
        .await;
    assert_eq!(export.status(), StatusCode::OK);
    let export: Value = export.json().await.expect("JSON");
    assert_eq!(export["manifest"]["site"], "fana");

    let purge = |confirm: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("confirm", confirm.to_owned()),
            ("reason", "the school closed".to_owned()),
        ]
    };
    let wrong = purge("fan");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        ops.post("/sites/fana/purge", &wrong).await,
        StatusCode::FORBIDDEN
    );
    let fana = SiteId::new("fana").expect("a site id");
    assert!(central.store.sites().await.expect("sites").contains(&fana));
    let right = purge("fana");
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        ops.post("/sites/fana/purge", &right).await,
        StatusCode::SEE_OTHER
    );
    assert!(!central.store.sites().await.expect("sites").contains(&fana));
    let audit = central.store.audit_log(20).await.expect("the audit log");
    assert!(audit.iter().any(|line| line.action == "site_purge"
        && line.actor == "ops"
        && line.detail == "the school closed"));
    assert!(audit.iter().any(|line| line.action == "site_export"));
    central.stop().await;
}
