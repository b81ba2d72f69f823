//! The OneRoster REST source against a small fake SAS on loopback (axum, as central uses)
//! that injects the faults a real one shows: 429 with `Retry-After`, 500s, a 401 for a token
//! it forgot, short pages, and a connection dropped in the middle of a page. A pull either
//! reads every student, class and enrollment or hands nothing on; no fault, in whichever
//! collection, turns into a roster with pupils or their classes missing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use skolebro_agent::config::RestSource;
use skolebro_agent::pull::{PullError, PullKind, Pulled, RestClient};
use skolebro_protocol::Entity;
use skolebro_roster::reader::ReaderOptions;

const SECRET: &str = "s3cret-never-shown";

/// A fault the fake SAS answers the next students request with.
#[derive(Debug, Clone, Copy)]
enum Fault {
    TooMany {
        retry_after: u64,
    },
    ServerError,
    /// The token is forgotten: 401, and the client must take a new one.
    Unauthorized,
    /// A page of at most this many records, whatever the limit.
    Short(usize),
    /// Half the page, then the connection breaks.
    Drop,
}

#[derive(Default)]
struct Fake {
    users: Vec<Value>,
    classes: Vec<Value>,
    enrollments: Vec<Value>,
    /// Faults for the students collection, one per request.
    faults: VecDeque<Fault>,
    /// Faults for the enrollments collection, one per request.
    enrollment_faults: VecDeque<Fault>,
    /// Every request to this collection at or past this offset breaks mid-page, however
    /// often tried.
    broken_from: Option<(&'static str, usize)>,
    /// The first record of this collection is removed once its first page is served, as
    /// if the SAS deleted it while the agent paged: every later record moves one offset
    /// down.
    remove_after_first_page: Option<&'static str>,
    tokens: u32,
    students_requests: u32,
    enrollments_requests: u32,
    /// The filter of each filtered request, with its collection.
    filters: Vec<(&'static str, String)>,
}

type Shared = Arc<Mutex<Fake>>;

/// Students per homeroom in the fake's school.
const CLASS_SIZE: usize = 25;

fn student(n: usize) -> Value {
    json!({
        "sourcedId": format!("elev-{n:04}"), "status": "active", "role": "student",
        "givenName": "Kari", "familyName": format!("Nordmann{n}"),
        "orgs": [{"href": "x", "sourcedId": "org-1", "type": "org"}]
    })
}

/// Homeroom `n`, and a scheduled class beside it that the roster leaves out.
fn classes(n: usize) -> [Value; 2] {
    [
        json!({
            "sourcedId": format!("klasse-{n}"), "status": "active", "classType": "homeroom",
            "title": format!("{}A", n + 1), "grades": [format!("{}", n + 1)],
            "school": {"sourcedId": "org-1", "type": "org"}
        }),
        json!({
            "sourcedId": format!("fag-{n}"), "status": "active", "classType": "scheduled",
            "title": "Matematikk", "school": {"sourcedId": "org-1", "type": "org"}
        }),
    ]
}

/// Student `n` in its homeroom.
fn enrollment(n: usize) -> Value {
    json!({
        "sourcedId": format!("innmelding-{n:04}"), "status": "active", "role": "student",
        "user": {"sourcedId": format!("elev-{n:04}"), "type": "user"},
        "class": {"sourcedId": format!("klasse-{}", n / CLASS_SIZE), "type": "class"},
        "school": {"sourcedId": "org-1", "type": "org"}
    })
}

async fn token(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    // HTTP Basic of "agent:<SECRET>".
    let expected = format!("Basic {}", base64_of(&format!("agent:{SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}").into_response();
    }
    let mut fake = fake.lock();
    fake.tokens += 1;
    let body = json!({"access_token": format!("tok-{}", fake.tokens), "token_type": "Bearer", "expires_in": 3600});
    (StatusCode::OK, body.to_string()).into_response()
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn authorised(fake: &Fake, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer tok-{}", fake.tokens);
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn schools(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    if !authorised(&fake.lock(), &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = json!({"orgs": [
        {"sourcedId": "org-1", "type": "school", "name": "Fana skule", "identifier": "46505",
         "metadata": {"kommunenummer": "4601"}}
    ]});
    ([("x-total-count", "1")], body.to_string()).into_response()
}

async fn students(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&fake, &query, &headers, "users")
}

async fn classes_list(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&fake, &query, &headers, "classes")
}

async fn enrollments(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&fake, &query, &headers, "enrollments")
}

/// One page of a collection (`users`, `classes`, `enrollments`), with the faults asked for.
fn list(
    fake: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    collection: &'static str,
) -> Response {
    let mut fake = fake.lock();
    if !authorised(&fake, headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(filter) = query.get("filter") {
        fake.filters.push((collection, filter.clone()));
    }
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (limit, offset) = (number("limit", 100), number("offset", 0));
    let mut take = limit;
    let mut drop_midway = fake
        .broken_from
        .is_some_and(|(broken, from)| broken == collection && offset >= from);
    let fault = match collection {
        "users" => {
            fake.students_requests += 1;
            fake.faults.pop_front()
        }
        "enrollments" => {
            fake.enrollments_requests += 1;
            fake.enrollment_faults.pop_front()
        }
        _ => None,
    };
    match fault {
        Some(Fault::TooMany { retry_after }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
            )
                .into_response()
        }
        Some(Fault::ServerError) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Some(Fault::Unauthorized) => {
            fake.tokens += 1;
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Some(Fault::Short(at_most)) => take = take.min(at_most),
        Some(Fault::Drop) => drop_midway = true,
        None => {}
    }
    let all = match collection {
        "users" => &fake.users,
        "classes" => &fake.classes,
        _ => &fake.enrollments,
    };
    let page: Vec<Value> = all.iter().skip(offset).take(take).cloned().collect();
    let total = all.len().to_string();
    if fake.remove_after_first_page == Some(collection) {
        fake.remove_after_first_page = None;
        match collection {
            "users" => fake.users.remove(0),
            "classes" => fake.classes.remove(0),
            _ => fake.enrollments.remove(0),
        };
    }
    let text = json!({ collection: page }).to_string().into_bytes();
    if drop_midway {
        let half = Bytes::copy_from_slice(&text[..text.len() / 2]);
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(half), Err(std::io::Error::other("connection dropped"))];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        return ([("x-total-count", total)], body).into_response();
    }
    ([("x-total-count", total)], text).into_response()
}

/// Starts the fake SAS with `count` students, each in a homeroom of [`CLASS_SIZE`] (beside
/// which is a scheduled class), on a loopback port.
async fn start(count: usize) -> (SocketAddr, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        users: (0..count).map(student).collect(),
        classes: (0..count.div_ceil(CLASS_SIZE)).flat_map(classes).collect(),
        enrollments: (0..count).map(enrollment).collect(),
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/or/schools", get(schools))
        .route("/or/students", get(students))
        .route("/or/classes", get(classes_list))
        .route("/or/enrollments", get(enrollments))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

fn source(dir: &std::path::Path, addr: SocketAddr, delta: bool) -> RestSource {
    use std::os::unix::fs::PermissionsExt as _;
    let secret = dir.join("client.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    toml::from_str(&format!(
        r#"base_url = "http://{addr}/or"
           token_url = "http://{addr}/token"
           client_id = "agent"
           client_secret_file = "{secret}"
           page_size = 25
           delta = {delta}
           attempts = 4
           retry_initial_ms = 10
           timeout_seconds = 10"#,
        secret = secret.display()
    ))
    .unwrap()
}

async fn pull(rest: &RestSource, kind: PullKind) -> Result<Pulled, PullError> {
    let mut client = RestClient::new(rest).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        client.pull(kind, &ReaderOptions::default()),
    )
    .await
    .expect("the pull ended within a minute")
}

#[tokio::test]
async fn a_pull_through_429s_500s_a_lost_token_short_pages_and_a_dropped_page_reads_every_student()
{
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(130).await;
    fake.lock().faults = VecDeque::from([
        Fault::TooMany { retry_after: 1 },
        Fault::Short(7),
        Fault::ServerError,
        Fault::Unauthorized,
        Fault::Short(1),
        Fault::Drop,
        Fault::ServerError,
    ]);
    fake.lock().enrollment_faults = VecDeque::from([
        Fault::Drop,
        Fault::Short(3),
        Fault::TooMany { retry_after: 1 },
        Fault::ServerError,
    ]);
    let pulled = pull(&source(dir.path(), addr, false), PullKind::Full)
        .await
        .unwrap();
    // 130 students, 6 homerooms and 6 scheduled classes, 130 enrollments.
    assert_eq!(pulled.records, 130 + 12 + 130);
    let export = pulled.export;
    assert!(!export.partial);
    assert_eq!(export.deviations, vec![]);
    assert_eq!(export.roster.students.len(), 130);
    assert_eq!(export.roster.schools.len(), 1);
    assert_eq!(export.roster.schools[0].skolenummer, "46505");
    assert_eq!(export.roster.groups.len(), 6, "the homerooms only");
    assert!(export.roster.groups.iter().all(|g| g.school == "46505"));
    assert_eq!(export.roster.enrollments.len(), 130);
    for enrollment in &export.roster.enrollments {
        let n: usize = enrollment.student["elev-".len()..].parse().unwrap();
        assert_eq!(enrollment.school, "46505");
        assert_eq!(
            enrollment.group.as_deref(),
            Some(format!("klasse-{}", n / CLASS_SIZE).as_str()),
            "each student in its homeroom, and in no class-less enrollment beside it"
        );
    }
    let fake = fake.lock();
    assert!(fake.faults.is_empty(), "every fault was met");
    assert!(fake.enrollment_faults.is_empty(), "every fault was met");
    assert_eq!(fake.tokens, 3, "a new token after the forgotten one");
}

#[tokio::test]
async fn a_pull_that_loses_a_page_for_good_hands_nothing_on_and_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(1500).await;
    // Page 37 of 60 breaks off every time it is asked for.
    fake.lock().broken_from = Some(("users", 36 * 25));
    let error = pull(&source(dir.path(), addr, false), PullKind::Full)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PullError::GaveUp { what, attempts: 4, .. } if what == "students page 37"),
        "{error}"
    );
    assert!(!error.to_string().contains(SECRET), "{error}");
    assert_eq!(fake.lock().students_requests, 36 + 4);
}

#[tokio::test]
async fn a_pull_whose_enrollments_break_off_for_good_hands_nothing_on_though_every_student_was_read(
) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(1500).await;
    // The enrollments from offset 250 break off every time, after faults the pull gets past:
    // a 500 and a short first page of 4, so the page that breaks is the 12th (offset 254).
    fake.lock().enrollment_faults = VecDeque::from([Fault::ServerError, Fault::Short(4)]);
    fake.lock().broken_from = Some(("enrollments", 10 * 25));
    let error = pull(&source(dir.path(), addr, false), PullKind::Full)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PullError::GaveUp { what, attempts: 4, .. } if what == "enrollments page 12"),
        "{error}"
    );
    let fake = fake.lock();
    assert_eq!(fake.students_requests, 60, "every student page was read");
    // Page 1 twice (a 500), ten more pages before the broken one, tried four times.
    assert_eq!(fake.enrollments_requests, 2 + 10 + 4);
}

#[tokio::test]
async fn an_enrollments_collection_that_changes_while_paged_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(60).await;
    fake.lock().remove_after_first_page = Some("enrollments");
    let error = pull(&source(dir.path(), addr, false), PullKind::Full)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PullError::Incomplete { what, .. } if what == "enrollments page 2"),
        "{error}"
    );
}

#[tokio::test]
async fn a_collection_that_changes_while_paged_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(60).await;
    fake.lock().remove_after_first_page = Some("users");
    let error = pull(&source(dir.path(), addr, false), PullKind::Full)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PullError::Incomplete { what, .. } if what == "students page 2"),
        "{error}"
    );
}

#[tokio::test]
async fn a_delta_pull_asks_by_date_last_modified_and_is_applied_as_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(3).await;
    fake.lock().users[1]["status"] = json!("tobedeleted");
    fake.lock().enrollments[1]["status"] = json!("tobedeleted");
    fake.lock().classes[1]["status"] = json!("tobedeleted");
    // 2026-11-01T00:00:00Z
    let since = 1_793_491_200_000;
    let pulled = pull(&source(dir.path(), addr, true), PullKind::Since(since))
        .await
        .unwrap();
    let export = pulled.export;
    assert!(export.partial, "a delta never stands for the whole roster");
    assert_eq!(export.roster.students.len(), 2);
    assert_eq!(export.deviations, vec![]);
    let tombstones: Vec<(Entity, &str)> = export
        .tombstones
        .iter()
        .map(|t| (t.entity, t.key.as_str()))
        .collect();
    assert!(tombstones.contains(&(Entity::Student, "elev-0001")));
    assert!(tombstones.contains(&(Entity::Enrollment, "innmelding-0001")));
    assert!(
        !tombstones
            .iter()
            .any(|(entity, _)| *entity == Entity::Group),
        "the scheduled class was never a group"
    );
    assert_eq!(export.roster.groups.len(), 1);
    assert_eq!(
        export.roster.enrollments.len(),
        2,
        "no class-less enrollment"
    );
    let filter = "dateLastModified>='2026-11-01T00:00:00.000Z'".to_owned();
    assert_eq!(
        fake.lock().filters,
        vec![
            ("users", filter.clone()),
            ("classes", filter.clone()),
            ("enrollments", filter)
        ]
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_without_retrying_or_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start(3).await;
    let rest = source(dir.path(), addr, false);
    std::fs::write(&rest.client_secret_file, "wrong-secret").unwrap();
    let error = pull(&rest, PullKind::Full).await.unwrap_err();
    assert!(
        matches!(error, PullError::TokenRefused(StatusCode::UNAUTHORIZED)),
        "{error}"
    );
    assert!(!error.to_string().contains("wrong-secret"));
    assert_eq!(fake.lock().tokens, 0);
}
