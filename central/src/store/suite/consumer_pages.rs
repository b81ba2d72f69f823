//! The consumer API's store-paged lists against its whole-roster path: for a table of list
//! requests, whatever the store pages itself (`crate::oneroster::paged`) must answer exactly
//! as mapping the whole scope and paging in memory does, on every backend.

use axum::http::Uri;
use serde_json::Value;
use skolebro_protocol::{Delta, Enrollment, Group, Payload, Roster, School};

use super::*;
use crate::oneroster::deletions::deletions;
use crate::oneroster::endpoint::Endpoint;
use crate::oneroster::paged;
use crate::oneroster::query::{parse_query, PageRequest};
use crate::oneroster::{scoped_roster, Moment, Needs};

fn school_at(skolenummer: &str, kommune: &str) -> School {
    School {
        skolenummer: skolenummer.into(),
        organisasjonsnummer: None,
        kommunenummer: Some(kommune.into()),
        fylkesnummer: Some(kommune[..2].into()),
        name: format!("Skole {skolenummer}").into(),
    }
}

/// Site A: two schools in county 46 (kommune 4601 and 4602), 24 students enrolled at one of
/// them (every third without a basisgruppe), one student enrolled nowhere, changed in three
/// batches. Site B: a school in county 03 with four students.
async fn two_counties(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    let schools = [school_at("46505", "4601"), school_at("46507", "4602")];
    let groups: Vec<Group> = ["1A", "2B", "3C"]
        .iter()
        .enumerate()
        .map(|(n, name)| Group {
            school: schools[n % 2].skolenummer.clone(),
            ..group(name)
        })
        .collect();
    let students: Vec<Student> = (1..=25)
        .map(|n| student(&format!("s{n}"), &format!("Elev {n}")))
        .collect();
    let enrollments: Vec<Enrollment> = (1..=24)
        .map(|n| {
            let group = &groups[n % 3];
            Enrollment {
                source_key: format!("e{n}").into(),
                student: format!("s{n}").into(),
                school: group.school.clone(),
                group: (n % 3 != 0).then(|| group.source_key.clone()),
            }
        })
        .collect();
    let secret = secret_a();
    applied(
        store,
        Payload::Delta(Delta {
            schools: upserts(&secret, &schools),
            groups: upserts(&secret, &groups),
            students: upserts(&secret, &students[..10]),
            enrollments: upserts(&secret, &enrollments[..10]),
        }),
        1_000,
    )
    .await;
    for (at, (students, enrollments)) in [
        (&students[10..20], &enrollments[10..20]),
        (&students[20..], &enrollments[20..]),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = Payload::Delta(Delta {
            students: upserts(&secret, students),
            enrollments: upserts(&secret, enrollments),
            ..Delta::default()
        });
        applied(store, payload, 2_000 + 1_000 * at as i64).await;
    }

    let oslo = school_at("30101", "0301");
    let head = store.chain_head(&device_b()).await.expect("the head");
    let payload = Payload::Delta(Delta {
        schools: upserts(&secret_b(), std::slice::from_ref(&oslo)),
        students: upserts(
            &secret_b(),
            &(1..=4)
                .map(|n| student(&format!("o{n}"), "Oslo"))
                .collect::<Vec<_>>(),
        ),
        enrollments: upserts(
            &secret_b(),
            &(1..=4)
                .map(|n| Enrollment {
                    source_key: format!("oe{n}").into(),
                    student: format!("o{n}").into(),
                    school: oslo.skolenummer.clone(),
                    group: None,
                })
                .collect::<Vec<_>>(),
        ),
        ..Delta::default()
    });
    store
        .apply(batch(device_b(), site_b(), head, payload, 1_500))
        .await
        .expect("site B's batch applies");
}

/// A page and the size of its list.
type Answer = (Vec<Value>, usize);

/// The answer of the whole-roster path, as the handler computes it without the store's
/// paging.
async fn in_memory(
    store: &dyn Store,
    scope: &ConsumerScope,
    endpoint: &Endpoint,
    request: &PageRequest,
) -> Answer {
    let roster = scoped_roster(store, scope, Moment::Now, Needs::of(endpoint.kinds()))
        .await
        .expect("the roster maps");
    let mut objects = endpoint.select(&roster).expect("a list");
    if let Some(since) = request.since() {
        let gone = deletions(store, scope, since, &roster, endpoint.kind())
            .await
            .expect("the deletions map");
        objects.extend(endpoint.select(&gone).unwrap_or_default());
    }
    request.apply(objects)
}

/// The answer of the store-paged path, with the request's filter deciding which deletions
/// of a change feed it keeps, as the handler does.
async fn paged_answer(
    store: &dyn Store,
    scope: &ConsumerScope,
    plan: &paged::Plan,
    request: &PageRequest,
) -> paged::Paged {
    let keep = |object: &Value| request.filter().is_none_or(|filter| filter.matches(object));
    paged::serve(store, scope, plan, &keep)
        .await
        .expect("the store pages")
}

pub(crate) async fn paged_lists_answer_exactly_as_the_whole_roster_does(store: &dyn Store) {
    two_counties(store).await;
    let scopes = [
        ConsumerScope::County("46".to_owned()),
        ConsumerScope::Kommune("4602".to_owned()),
        ConsumerScope::County("03".to_owned()),
        ConsumerScope::County("11".to_owned()),
    ];
    let paths = [
        "users",
        "students",
        "teachers",
        "classes",
        "enrollments",
        "orgs",
        "schools",
        "demographics",
    ];
    let queries = [
        "",
        "limit=5&offset=3",
        "limit=7&offset=2&orderBy=desc",
        "sort=sourcedId&orderBy=desc&offset=40",
        "filter=dateLastModified%3C%271970-01-01T00%3A00%3A02.500Z%27",
        "filter=dateLastModified%3C%3D%271970-01-01T00%3A00%3A02Z%27%20AND%20dateLastModified%21%3D%271970-01-01T00%3A00%3A01Z%27",
        "filter=status%3D%27active%27%20AND%20role%3D%27student%27&limit=3",
        "filter=status%3D%27tobedeleted%27",
        "filter=sourcedId%3E%2780000000000000000000000000000000%27&limit=4&offset=1",
        "filter=sourcedId%3C%3D%2780000000000000000000000000000000%27&orderBy=desc",
        "fields=sourcedId&limit=2",
    ];
    let (mut pushed, mut answered) = (0, 0);
    for scope in &scopes {
        for path in paths {
            for query in queries {
                let endpoint = Endpoint::parse(path).expect("an endpoint");
                let uri: Uri = format!("/{path}?{query}").parse().expect("a URI");
                let Ok(request) = parse_query(&uri)
                    .and_then(|parsed| PageRequest::from_query(parsed, endpoint.kind().fields()))
                else {
                    continue;
                };
                let Some(plan) = paged::plan(&endpoint, &request) else {
                    continue;
                };
                pushed += 1;
                let served = paged_answer(store, scope, &plan, &request).await;
                answered += usize::from(!served.page.is_empty());
                assert_eq!(
                    (served.page, served.total),
                    in_memory(store, scope, &endpoint, &request).await,
                    "{scope:?} {path}?{query}"
                );
            }
        }
    }
    assert!(
        pushed >= 200,
        "only {pushed} requests were paged by the store"
    );
    assert!(
        answered >= 100,
        "only {answered} paged answers held objects"
    );
}

/// The `path` lists (`users`, `enrollments`) the store pages, whole and one page of them, for
/// scopes of a whole site (county 46, county 03) and of part of one (each kommune of site
/// A), against the whole-roster path: what shows that `records.school`, `student`,
/// `enrolled` and `grouped` are right.
async fn lists_agree(store: &dyn Store, path: &str, step: &str) -> Vec<usize> {
    let scopes = [
        ConsumerScope::County("46".to_owned()),
        ConsumerScope::Kommune("4601".to_owned()),
        ConsumerScope::Kommune("4602".to_owned()),
        ConsumerScope::County("03".to_owned()),
    ];
    let mut totals = Vec::new();
    for scope in &scopes {
        for query in ["", "limit=4&offset=3", "orderBy=desc&limit=5&offset=1"] {
            let endpoint = Endpoint::parse(path).expect("an endpoint");
            let uri: Uri = format!("/{path}?{query}").parse().expect("a URI");
            let request = parse_query(&uri)
                .and_then(|parsed| PageRequest::from_query(parsed, endpoint.kind().fields()))
                .expect("a request");
            let plan = paged::plan(&endpoint, &request).expect("the store pages the list");
            let served = paged_answer(store, scope, &plan, &request).await;
            assert_eq!(
                (served.page, served.total),
                in_memory(store, scope, &endpoint, &request).await,
                "{step}: {scope:?} {path}?{query}"
            );
            if query.is_empty() {
                totals.push(served.total);
            }
        }
    }
    totals
}

/// Every list the store pages, asked as a change feed from the start and from before the
/// last two batches (the last at `at`) (whole, paged in descending order, and with a filter on `status` or `sourcedId` beside the time), for scopes
/// of whole and partly covered sites, against the whole-roster path with its deletions:
/// what shows that the feed finds every deletion among the records closed since, and merges
/// them into the store's pages. Answers how many deletions the whole lists held.
async fn feeds_agree(store: &dyn Store, step: &str, at: i64) -> usize {
    let scopes = [
        ConsumerScope::County("46".to_owned()),
        ConsumerScope::Kommune("4602".to_owned()),
        ConsumerScope::County("03".to_owned()),
    ];
    let mut deleted = 0;
    for scope in &scopes {
        for path in ["users", "classes", "enrollments", "orgs", "demographics"] {
            for since in [0, at - 1_500, at - 500] {
                let time = crate::store::Timestamp(since).to_string();
                let filter = format!("dateLastModified>='{time}'");
                for (more, extra) in [
                    ("", ""),
                    ("", "&orderBy=desc&limit=4&offset=1"),
                    (" AND status='tobedeleted'", ""),
                    (" AND status='active'", "&limit=2"),
                    (" AND sourcedId>'80000000000000000000000000000000'", ""),
                ] {
                    let query = format!("filter={}{extra}", urlencode(&format!("{filter}{more}")));
                    let endpoint = Endpoint::parse(path).expect("an endpoint");
                    let uri: Uri = format!("/{path}?{query}").parse().expect("a URI");
                    let request = parse_query(&uri)
                        .and_then(|parsed| {
                            PageRequest::from_query(parsed, endpoint.kind().fields())
                        })
                        .expect("a request");
                    let plan = paged::plan(&endpoint, &request).expect("the store pages a feed");
                    let served = paged_answer(store, scope, &plan, &request).await;
                    if (more, extra) == ("", "") {
                        deleted += served
                            .page
                            .iter()
                            .filter(|object| object["status"] == "tobedeleted")
                            .count();
                    }
                    assert_eq!(
                        (served.page, served.total),
                        in_memory(store, scope, &endpoint, &request).await,
                        "{step}: {scope:?} {path}?{query}"
                    );
                }
            }
        }
    }
    deleted
}

/// `text` with every byte but letters and digits percent-encoded, for a query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The delta renaming student `from` to `to`, with `enrollment` now naming `to`.
fn rename_student(secret: &SiteSecret, from: &str, to: &str, enrollment: Enrollment) -> Payload {
    let mut students = upserts(secret, &[student(to, "Omdøpt")]);
    let old = secret.handle(Entity::Student, from);
    students.deletes = vec![old];
    students.renames = vec![(old, secret.handle(Entity::Student, to))];
    Payload::Delta(Delta {
        students,
        enrollments: upserts(
            secret,
            &[Enrollment {
                student: to.into(),
                ..enrollment
            }],
        ),
        ..Delta::default()
    })
}

pub(crate) async fn paging_columns_follow_renames_moves_and_closes_so_lists_and_feeds_match_the_roster(
    store: &dyn Store,
) {
    two_counties(store).await;
    let secret = secret_a();
    // 24 of site A's 25 students are enrolled, 16 at 46505 and 8 at 46507; site B has 4.
    assert_eq!(
        lists_agree(store, "users", "as enrolled").await,
        [24, 16, 8, 4]
    );
    assert_eq!(feeds_agree(store, "as enrolled", 3000).await, 0);
    let mut feeds_deleted = Vec::new();

    let at_46505 = |n: usize, student: &str| Enrollment {
        source_key: format!("e{n}").into(),
        student: student.into(),
        school: "46505".into(),
        group: None,
    };
    // A rename: the student keeps its sourcedId and its enrollment follows the new key.
    applied(
        store,
        rename_student(&secret, "s2", "s2-ny", at_46505(2, "s2")),
        4_000,
    )
    .await;
    assert_eq!(
        lists_agree(store, "users", "after a rename").await,
        [24, 16, 8, 4]
    );
    feeds_deleted.push(feeds_agree(store, "after a rename", 4000).await);

    // A move: student 1 changes school; student 25 is enrolled for the first time.
    let mut enrollments = upserts(&secret, &[at_46505(1, "s1"), at_46505(25, "s25")]);
    enrollments.sort();
    applied(
        store,
        Payload::Delta(Delta {
            enrollments,
            ..Delta::default()
        }),
        5_000,
    )
    .await;
    assert_eq!(
        lists_agree(store, "users", "after a move").await,
        [25, 18, 7, 4]
    );
    feeds_deleted.push(feeds_agree(store, "after a move", 5000).await);

    // A closed enrollment leaves its student unlisted; a closed student leaves its
    // enrollment naming nobody.
    let mut enrollments = upserts::<Enrollment>(&secret, &[]);
    enrollments.deletes = vec![secret.handle(Entity::Enrollment, "e4")];
    let mut students = upserts::<Student>(&secret, &[]);
    students.deletes = vec![secret.handle(Entity::Student, "s6")];
    applied(
        store,
        Payload::Delta(Delta {
            students,
            enrollments,
            ..Delta::default()
        }),
        6_000,
    )
    .await;
    assert_eq!(
        lists_agree(store, "users", "after closes").await,
        [23, 17, 6, 4]
    );
    feeds_deleted.push(feeds_agree(store, "after closes", 6000).await);

    // A closed school takes its students out of every scope; a snapshot brings it back
    // with three of its pupils, and student 6 (whose enrollment stayed) back.
    let mut schools = upserts::<School>(&secret, &[]);
    schools.deletes = vec![secret.handle(Entity::School, "46507")];
    applied(
        store,
        Payload::Delta(Delta {
            schools,
            ..Delta::default()
        }),
        7_000,
    )
    .await;
    assert_eq!(
        lists_agree(store, "users", "after a school closed").await,
        [17, 17, 0, 4]
    );
    feeds_deleted.push(feeds_agree(store, "after a school closed", 7000).await);

    let roster = current_a(store).await;
    let kept: Vec<Enrollment> = roster
        .enrollments
        .iter()
        .filter(|e| e.school == "46505" || ["e7", "e10", "e13"].contains(&e.source_key.as_str()))
        .cloned()
        .collect();
    let mut students = roster.students.clone();
    students.push(student("s6", "Elev 6"));
    let snapshot = Roster {
        schools: vec![school_at("46505", "4601"), school_at("46507", "4602")],
        students,
        groups: roster.groups.clone(),
        enrollments: kept,
    };
    applied(store, Payload::Snapshot(snapshot), 8_000).await;
    assert_eq!(
        lists_agree(store, "users", "after a snapshot").await,
        [21, 18, 3, 4]
    );
    feeds_deleted.push(feeds_agree(store, "after a snapshot", 8000).await);
    // Each step after the first took something out of some scope's feeds.
    assert!(
        feeds_deleted.iter().skip(1).all(|deleted| *deleted > 0),
        "deletions per step: {feeds_deleted:?}"
    );
}

/// The delta closing or upserting site A's school 46507 (kommune 4602), with `enrollments`.
fn school_46507(secret: &SiteSecret, arrives: bool, enrollments: &[Enrollment]) -> Payload {
    let mut schools = upserts(secret, &[school_at("46507", "4602")]);
    if !arrives {
        schools = upserts::<School>(secret, &[]);
        schools.deletes = vec![secret.handle(Entity::School, "46507")];
    }
    Payload::Delta(Delta {
        schools,
        enrollments: upserts(secret, enrollments),
        ..Delta::default()
    })
}

pub(crate) async fn an_enrollment_at_a_school_its_site_holds_no_record_of_is_neither_listed_nor_counted(
    store: &dyn Store,
) {
    two_counties(store).await;
    let secret = secret_a();
    // Site A's grouped enrollments: 8 at 46505 (kommune 4601), 8 at 46507 (4602); site B's
    // have no basisgruppe.
    let listed = |step: &'static str| lists_agree(store, "enrollments", step);
    assert_eq!(listed("as enrolled").await, [16, 8, 8, 0]);

    // The school goes, its enrollments stay: county 46 now covers the whole of site A, and
    // what is left at 46507 is not listed.
    applied(store, school_46507(&secret, false, &[]), 4_000).await;
    assert_eq!(listed("after the school went").await, [8, 8, 0, 0]);
    feeds_agree(store, "after the school went", 4000).await;

    // The school record arrives again, with one more enrollment at it.
    let more = Enrollment {
        source_key: "e25".into(),
        student: "s25".into(),
        school: "46507".into(),
        group: Some("2B".into()),
    };
    applied(store, school_46507(&secret, true, &[more]), 5_000).await;
    assert_eq!(listed("after the school came back").await, [17, 8, 9, 0]);
    feeds_agree(store, "after the school came back", 5000).await;

    applied(store, school_46507(&secret, false, &[]), 6_000).await;
    assert_eq!(listed("after the school went again").await, [8, 8, 0, 0]);
    feeds_agree(store, "after the school went again", 6000).await;
}
