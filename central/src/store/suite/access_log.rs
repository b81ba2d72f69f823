//! Store suite cases of one area. The consumer access log: appended, listed by client and by
//! site newest first in pages, purged by age in bounded steps.

use super::*;

fn read(client: &str, at: i64, sites: &[SiteId]) -> Read {
    Read {
        id: 0,
        at: Timestamp(at),
        client: client.to_owned(),
        client_name: format!("Inntakskontoret {client}"),
        endpoint: "/ims/oneroster/v1p1/users".to_owned(),
        filter: Some("identifier='018140*****'".to_owned()),
        records: 3,
        sites: sites.to_vec(),
    }
}

async fn listed(
    store: &dyn Store,
    filter: ReadFilter,
    before: Option<i64>,
    limit: u32,
) -> Vec<i64> {
    store
        .reads(&filter, before, limit)
        .await
        .expect("the reads list")
        .into_iter()
        .map(|read| read.id)
        .collect()
}

pub(crate) async fn reads_are_logged_and_listed_by_client_and_site_newest_first(store: &dyn Store) {
    let first = store
        .log_read(&read("c-county", 1_000, &[site_b(), site_a()]))
        .await
        .expect("logged");
    let second = store
        .log_read(&read("c-kommune", 2_000, &[site_a()]))
        .await
        .expect("logged");
    let third = store
        .log_read(&read("c-county", 3_000, &[]))
        .await
        .expect("logged");
    assert!(first < second && second < third);

    let all = store
        .reads(&ReadFilter::default(), None, 10)
        .await
        .expect("the reads list");
    assert_eq!(
        all.iter().map(|read| read.id).collect::<Vec<_>>(),
        vec![third, second, first]
    );
    assert_eq!(
        all[2],
        Read {
            id: first,
            sites: vec![site_a(), site_b()],
            ..read("c-county", 1_000, &[])
        },
        "the row comes back as logged, its sites sorted"
    );

    let by_client = |client: &str| ReadFilter {
        client: Some(client.to_owned()),
        sites: None,
    };
    let by_sites = |sites: Vec<SiteId>| ReadFilter {
        client: None,
        sites: Some(sites),
    };
    assert_eq!(
        listed(store, by_client("c-county"), None, 10).await,
        vec![third, first]
    );
    assert_eq!(
        listed(store, by_client("c-nobody"), None, 10).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        listed(store, by_sites(vec![site_a()]), None, 10).await,
        vec![second, first]
    );
    assert_eq!(
        listed(store, by_sites(vec![site_b()]), None, 10).await,
        vec![first]
    );
    assert_eq!(
        listed(store, by_sites(vec![site_a(), site_b()]), None, 10).await,
        vec![second, first],
        "a read touching two of the sites is listed once"
    );
    assert_eq!(
        listed(store, by_sites(Vec::new()), None, 10).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        listed(
            store,
            ReadFilter {
                client: Some("c-kommune".to_owned()),
                sites: Some(vec![site_b()]),
            },
            None,
            10
        )
        .await,
        Vec::<i64>::new(),
        "client and sites must both hold"
    );

    // Pages continue below the last id shown.
    assert_eq!(
        listed(store, ReadFilter::default(), None, 2).await,
        vec![third, second]
    );
    assert_eq!(
        listed(store, ReadFilter::default(), Some(second), 2).await,
        vec![first]
    );
}

pub(crate) async fn reads_older_than_the_retention_are_purged_in_bounded_steps(store: &dyn Store) {
    for at in [1_000, 2_000, 3_000, 4_000] {
        store
            .log_read(&read("c-county", at, &[site_a()]))
            .await
            .expect("logged");
    }
    assert_eq!(
        store
            .purge_reads(Timestamp(3_500), 2)
            .await
            .expect("purged"),
        2
    );
    assert_eq!(
        store
            .purge_reads(Timestamp(3_500), 2)
            .await
            .expect("purged"),
        1
    );
    assert_eq!(
        store
            .purge_reads(Timestamp(3_500), 2)
            .await
            .expect("purged"),
        0
    );
    let left = store
        .reads(
            &ReadFilter {
                client: None,
                sites: Some(vec![site_a()]),
            },
            None,
            10,
        )
        .await
        .expect("the reads list");
    assert_eq!(
        left.iter().map(|read| read.at).collect::<Vec<_>>(),
        vec![Timestamp(4_000)],
        "only the read inside the retention is left, with its site"
    );
    assert_eq!(left[0].sites, vec![site_a()]);
}
