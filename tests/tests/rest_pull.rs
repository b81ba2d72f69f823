//! The agent as a OneRoster REST client, end to end with real processes: central A takes in
//! the sample export from a drop-folder agent and serves it on its consumer endpoints, as a
//! SAS stands in for; a second agent, enrolled with central B, pulls from A's OneRoster API
//! with its own OAuth2 client (schools, students, classes, enrollments) and delivers to B.
//! Two centrals, because a school is registered with one site per central. B must then
//! hold A's pupils, classes and each pupil's class, as A's own store has them. Then A loses
//! five pupils and moves one to another class, the pulling agent is restarted, and its
//! delta pull (`dateLastModified`, with A's `tobedeleted` change feed) takes exactly those
//! five and their enrollments out of B and moves the one: the moved pupil's enrollment comes
//! without the pupil or the class, which B already holds.
//!
//! Every wait is bounded ([`PATIENCE`]); the processes are killed when the test ends,
//! failed or not, and on failure their logs are printed.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{json, Value};
use skolebro_tests::appliance::{sample, Agent, Cadence, Platform};
use skolebro_tests::harness::{self, one_at_a_time, LogsOnFailure};

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

/// The students central holds for `site` once it holds `count` of them: the drop-folder
/// agent's status can say "delivered" a moment before the new file's batch is sealed, so
/// the count is waited for, within [`harness::PATIENCE`].
fn students_once(
    admin: SocketAddr,
    site: &str,
    count: usize,
) -> BTreeSet<(String, String, String)> {
    let start = std::time::Instant::now();
    loop {
        let now = students(admin, site);
        if now.len() == count || start.elapsed() > harness::PATIENCE {
            assert_eq!(now.len(), count, "central A's pupils");
            return now;
        }
        std::thread::sleep(harness::POLL);
    }
}

/// A group as both centrals must hold it, whatever its key: (name, grade, skolenummer,
/// school year).
type GroupSeen = (String, Option<String>, String, Option<String>);

/// An enrollment as both centrals must hold it, whatever its key: (the student's national
/// id, skolenummer, the group's name).
type EnrollmentSeen = (String, String, Option<String>);

/// The classes and enrollments central holds for `site`, by what they say rather than by
/// their keys: central B's keys are A's sourcedIds, A's are the elevliste's.
fn placements(admin: SocketAddr, site: &str) -> (BTreeSet<GroupSeen>, BTreeSet<EnrollmentSeen>) {
    let roster = harness::roster(admin, site, "");
    let national_id: HashMap<&str, String> = roster
        .students
        .iter()
        .map(|s| {
            let id = s.national_id.as_ref().map(|id| id.as_str().to_owned());
            (s.source_key.as_str(), id.unwrap_or_default())
        })
        .collect();
    let group_name: HashMap<&str, &str> = roster
        .groups
        .iter()
        .map(|g| (g.source_key.as_str(), g.name.as_str()))
        .collect();
    let groups = roster
        .groups
        .iter()
        .map(|g| {
            (
                g.name.to_string(),
                g.grade.as_ref().map(ToString::to_string),
                g.school.to_string(),
                g.school_year.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    let enrollments = roster
        .enrollments
        .iter()
        .map(|e| {
            let student = national_id.get(e.student.as_str()).cloned();
            let group = e.group.as_deref().map(|g| {
                group_name
                    .get(g)
                    .map_or_else(|| format!("unknown group {g}"), |name| name.to_string())
            });
            (
                student.unwrap_or_else(|| format!("unknown student {}", e.student)),
                e.school.to_string(),
                group,
            )
        })
        .collect();
    (groups, enrollments)
}

/// The sample export without its last `less` pupils, and with its first pupil moved to
/// another class of the same grade (`Klasse` is the fifth column, `Trinn` the sixth). Also
/// returns the moved pupil's national id (the seventh column) and the class moved to.
fn sample_without_last_and_one_moved(less: usize) -> (Vec<u8>, String, String) {
    let text = String::from_utf8(sample()).expect("the sample is UTF-8");
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|line| line.split(';').map(str::to_owned).collect())
        .collect();
    lines.truncate(lines.len() - less);
    let (class, grade) = (lines[1][4].clone(), lines[1][5].clone());
    let other = lines[2..]
        .iter()
        .find(|fields| fields[5] == grade && fields[4] != class)
        .map(|fields| fields[4].clone())
        .expect("another class of the first pupil's grade");
    lines[1][4].clone_from(&other);
    let national_id = lines[1][6].clone();
    let lines: Vec<String> = lines.iter().map(|fields| fields.join(";")).collect();
    (
        format!("{}\n", lines.join("\n")).into_bytes(),
        national_id,
        other,
    )
}

/// Whether the agent's newest export had a `dangling_reference` deviation, by its status.
fn status_has_dangling_references(agent_dir: &Path) -> bool {
    let status = std::fs::read_to_string(agent_dir.join("state").join("status.json"))
        .expect("the agent's status");
    let status: Value = serde_json::from_str(&status).expect("the status is JSON");
    status["deviation_groups"].as_array().is_some_and(|groups| {
        groups
            .iter()
            .any(|group| group["code"] == "dangling_reference")
    })
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
    let _logs = LogsOnFailure(vec![
        (d.join("central-a"), "central.log"),
        (d.join("central-b"), "central.log"),
        (d.join("agent-a"), "agent.log"),
        (pulling_dir.clone(), "agent.log"),
    ]);

    dropping.start();
    dropping.drop_export("elevliste.csv", &sample());
    dropping.wait_until_delivered("central A to hold the sample");
    let site_a = dropping.site();
    let at_a = students_once(a.admin(), &site_a, 300);
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
    let site_b = pulling.site();
    assert_eq!(
        students(b.admin(), &site_b),
        at_a,
        "central B holds A's pupils"
    );
    let (groups_a, enrollments_a) = placements(a.admin(), &site_a);
    assert_eq!(enrollments_a.len(), 300);
    assert!(
        enrollments_a.iter().all(|(_, _, group)| group.is_some()),
        "every pupil of the sample is in a class"
    );
    assert_eq!(
        placements(b.admin(), &site_b),
        (groups_a, enrollments_a),
        "central B holds A's classes, and each pupil in the same class, with no other enrollment"
    );
    let schools_b = harness::roster(b.admin(), &site_b, "").schools;
    assert_eq!(schools_b.len(), 1);
    assert_eq!(
        schools_b[0].skolenummer, "46500",
        "the school by its skolenummer, not A's org id"
    );

    // A loses five pupils and moves one to another class; the restarted puller asks only
    // for what changed: the moved pupil's enrollment, without the pupil or either class.
    let (second, moved, new_class) = sample_without_last_and_one_moved(5);
    let old_class = placements(a.admin(), &site_a)
        .1
        .into_iter()
        .find(|(id, _, _)| *id == moved)
        .and_then(|(_, _, group)| group)
        .expect("the moved pupil's class before");
    dropping.drop_export("elevliste-2.csv", &second);
    dropping.wait_until_delivered("central A to drop five pupils");
    let fewer = students_once(a.admin(), &site_a, 295);
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
    let (groups_a, enrollments_a) = placements(a.admin(), &site_a);
    assert_eq!(enrollments_a.len(), 295);
    let class_of = |enrollments: &BTreeSet<EnrollmentSeen>| -> Vec<Option<String>> {
        enrollments
            .iter()
            .filter(|(id, _, _)| *id == moved)
            .map(|(_, _, group)| group.clone())
            .collect()
    };
    assert_eq!(class_of(&enrollments_a), [Some(new_class.clone())]);
    let (groups_b, enrollments_b) = placements(b.admin(), &site_b);
    assert_eq!(
        class_of(&enrollments_b),
        [Some(new_class)],
        "the delta moved the pupil out of {old_class} at central B without a full pull"
    );
    assert_eq!(
        (groups_b, enrollments_b),
        (groups_a, enrollments_a),
        "the delta took out the five's enrollments, and any class left without pupils"
    );
    assert!(
        !status_has_dangling_references(&pulling_dir),
        "the class move is no dangling reference"
    );
    let status = std::fs::read_to_string(pulling_dir.join("state").join("status.json")).unwrap();
    let log = std::fs::read_to_string(pulling_dir.join("agent.log")).unwrap();
    assert!(
        !status.contains(&client.1) && !log.contains(&client.1),
        "the secret is never shown"
    );
}
