//! The consumer API's store-paged lists against its whole-roster path: for a table of list
//! requests, whatever the store pages itself (`crate::oneroster::paged`) must answer exactly
//! as mapping the whole scope and paging in memory does, on every backend.

use axum::http::Uri;
use serde_json::Value;
use skolebro_protocol::{Delta, Enrollment, Group, Payload, School};

use super::*;
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
            enrollments: upserts(&secret, &enrollments),
        }),
        1_000,
    )
    .await;
    applied(
        store,
        students_delta(&secret, students[10..20].to_vec()),
        2_000,
    )
    .await;
    applied(
        store,
        students_delta(&secret, students[20..].to_vec()),
        3_000,
    )
    .await;

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
    request.apply(endpoint.select(&roster).expect("a list"))
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
                let served = paged::serve(store, scope, &plan)
                    .await
                    .expect("the store pages");
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
