//! The agent as a OneRoster REST client, end to end with real processes: central A takes in
//! the sample export from a drop-folder agent and serves it on its consumer endpoints, as a
//! SAS stands in for; a second agent, enrolled with central B, pulls from A's OneRoster API
//! with its own OAuth2 client and delivers to B. Two centrals, because a school is
//! registered with one site per central. Then A loses five pupils, the pulling agent is
//! restarted, and its delta pull (`dateLastModified`, with A's `tobedeleted` change feed)
//! takes exactly those five out of B.
//!
//! Every wait is bounded ([`PATIENCE`]); the processes are killed when the test ends,
//! failed or not, and on failure their logs are printed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use skolebro_tests::appliance::{sample, Agent, Cadence, Platform};
use skolebro_tests::harness::{self, one_at_a_time};

/// Prints the logs (`central.log`, `agent.log` in their folders) when the test fails; the
/// processes die with their owners.
struct Logs(Vec<(PathBuf, &'static str)>);

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (dir, log) in &self.0 {
                harness::print_log_tail(dir, log);
            }
        }
    }
}

/// A consumer client of central A for kommune 4601: its id and secret.
fn consumer_client(admin: SocketAddr) -> (String, String) {
    let body = json!({"name": "skolebro-agent as a SAS client", "scope": {"kommune": "4601"}});
    let (status, answer) =
        harness::http_post_json(admin, "/admin/clients", &body).expect("POST /admin/clients");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    (
        answer["client_id"].as_str().expect("client_id").to_owned(),
        answer["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned(),
    )
}

/// The students central holds for `site`, as (national id, given name, family name).
fn students(admin: SocketAddr, site: &str) -> BTreeSet<(String, String, String)> {
    harness::roster(admin, site, "")
        .students
        .iter()
        .map(|s| {
            (
                s.national_id
                    .as_ref()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default(),
                s.given_name.to_string(),
                s.family_name.to_string(),
            )
        })
        .collect()
}

fn site_of(agent: &Agent) -> String {
    agent.status().expect("status")["provisioning"]["site"]
        .as_str()
        .expect("an enrolled site")
        .to_owned()
}

/// The sample export without its last `less` pupils.
fn sample_without_last(less: usize) -> Vec<u8> {
    let text = String::from_utf8(sample()).expect("the sample is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    let kept = &lines[..lines.len() - less];
    format!("{}\n", kept.join("\n")).into_bytes()
}

fn pulling_settings(
    dir: &Path,
    platform: &Platform,
    consumers: SocketAddr,
    client: &(String, String),
) -> String {
    let secret = dir.join("sas.secret");
    std::fs::create_dir_all(dir).expect("agent folder");
    std::fs::write(&secret, &client.1).expect("writing the client secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!(
        r#"stick_key = "{stick_key}"

[source]
kind = "oneroster-rest"
base_url = "http://{consumers}/ims/oneroster/v1p1"
token_url = "http://{consumers}/oauth/token"
client_id = "{id}"
client_secret_file = "sas.secret"
page_size = 40
delta = true
retry_initial_ms = 100
"#,
        stick_key = platform.stick_key().display(),
        id = client.0,
    )
}

#[test]
fn an_agent_pulling_from_one_centrals_oneroster_api_delivers_the_same_pupils_to_another() {
    let _serial = one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("skolebro-restpull-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let (a, consumers) = Platform::start_serving_consumers(&d.join("central-a"));
    let b = Platform::start(&d.join("central-b"));

    let mut dropping = Agent::for_sticks(&d.join("agent-a"), Cadence::BUSY, &a);
    a.write_stick(&dropping);
    let client = consumer_client(a.admin());
    let pulling_dir = d.join("agent-b");
    let settings = pulling_settings(&pulling_dir, &b, consumers, &client);
    let mut pulling = Agent::new(&pulling_dir, Cadence::BUSY, &settings);
    b.write_stick(&pulling);
    let _logs = Logs(vec![
        (d.join("central-a"), "central.log"),
        (d.join("central-b"), "central.log"),
        (d.join("agent-a"), "agent.log"),
        (pulling_dir.clone(), "agent.log"),
    ]);

    dropping.start();
    dropping.drop_export("elevliste.csv", &sample());
    dropping.wait_until_delivered("central A to hold the sample");
    let site_a = site_of(&dropping);
    let at_a = students(a.admin(), &site_a);
    assert_eq!(at_a.len(), 300);
    // The delta later asks from the second central A's first answer to the puller is dated
    // (HTTP dates have whole seconds), and A's change feed reports as deleted what could be
    // read then: the sample must be A's from a second before, as it would be at a school.
    let delivered_s = harness::unix_ms_now() / 1000;
    while harness::unix_ms_now() / 1000 <= delivered_s + 1 {
        std::thread::sleep(harness::POLL);
    }

    pulling.start();
    pulling.wait_for("the pulled roster to reach central B", |s| {
        s["outbox_depth"] == 0
            && s["state"] == "healthy"
            && s["last_export_file"]
                .as_str()
                .is_some_and(|f| f.starts_with("OneRoster REST full pull"))
    });
    let site_b = site_of(&pulling);
    assert_eq!(
        students(b.admin(), &site_b),
        at_a,
        "central B holds A's pupils"
    );
    let schools_b = harness::roster(b.admin(), &site_b, "").schools;
    assert_eq!(schools_b.len(), 1);
    assert_eq!(
        schools_b[0].skolenummer, "46500",
        "the school by its skolenummer, not A's org id"
    );

    // A loses five pupils; the restarted puller asks only for what changed.
    dropping.drop_export("elevliste-2.csv", &sample_without_last(5));
    dropping.wait_until_delivered("central A to drop five pupils");
    let fewer = students(a.admin(), &site_a);
    assert_eq!(fewer.len(), 295);
    drop(pulling);
    let mut pulling = Agent::new(&pulling_dir, Cadence::BUSY, &settings);
    pulling.start();
    pulling.wait_for("the delta pull to reach central B", |s| {
        s["outbox_depth"] == 0
            && s["state"] == "healthy"
            && s["last_export_file"]
                .as_str()
                .is_some_and(|f| f.starts_with("OneRoster REST delta pull"))
    });
    assert_eq!(
        students(b.admin(), &site_b),
        fewer,
        "the delta took out the five"
    );
    let status = std::fs::read_to_string(pulling_dir.join("state").join("status.json")).unwrap();
    let log = std::fs::read_to_string(pulling_dir.join("agent.log")).unwrap();
    assert!(
        !status.contains(&client.1) && !log.contains(&client.1),
        "the secret is never shown"
    );
}
