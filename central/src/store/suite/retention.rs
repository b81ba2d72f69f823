//! Store suite cases of one area. Retention across school years, with the clock injected, and
//! a site's removal.

use crate::config::{CountyRetentionConfig, PrivacyConfig};
use crate::retention::{self, RetentionPolicy};

use super::*;
use crate::store::SiteHistory;

fn at(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text)
        .expect("a test time")
        .unix_millis()
}

fn schools_delta(secret: &SiteSecret) -> Payload {
    Payload::Delta(Delta {
        schools: upserts(secret, &[school()]),
        ..Delta::default()
    })
}

/// Site A's history over two school years: Kari changes twice and stays, Ola leaves in
/// 2024/25, Per comes and leaves in 2025/26.
async fn two_school_years(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    applied(store, schools_delta(&secret), at("2024-09-01")).await;
    let first = vec![student("kari", "Kari"), student("ola", "Ola")];
    applied(store, students_delta(&secret, first), at("2024-09-01")).await;
    let renamed = vec![student("kari", "Karianne")];
    applied(store, students_delta(&secret, renamed), at("2024-10-01")).await;
    applied(store, delete_students(&secret, &["ola"]), at("2024-11-01")).await;
    let again = vec![student("kari", "Kari Anne"), student("per", "Per")];
    applied(store, students_delta(&secret, again), at("2025-09-01")).await;
    applied(store, delete_students(&secret, &["per"]), at("2025-10-01")).await;
}

async fn run_at(store: &dyn Store, policy: &RetentionPolicy, now: &str) -> (u64, u64, u64) {
    let now = Timestamp(at(now));
    let run = retention::run(store, policy, &move || now)
        .await
        .expect("the retention run finishes");
    (run.versions, run.departed, run.audit)
}

async fn versions_of(store: &dyn Store, key: &str) -> usize {
    store
        .history(
            &site_a(),
            Entity::Student,
            &secret_a().handle(Entity::Student, key),
        )
        .await
        .expect("the history reads")
        .len()
}

pub(crate) async fn retention_purges_history_and_departed_pupils_school_year_by_school_year(
    store: &dyn Store,
) {
    two_school_years(store).await;
    store
        .append_audit(&AuditEntry {
            at: Timestamp(at("2020-01-01")),
            actor: "ops".into(),
            action: "revoke_device".into(),
            target: "pi-1".into(),
            detail: "lost".into(),
        })
        .await
        .expect("an old audit line");
    let policy = RetentionPolicy::default();

    // In 2025/26 the default keeps 2024/25 and 2025/26: every version stays; only the
    // five-year-old audit line goes.
    assert_eq!(run_at(store, &policy, "2026-03-01").await, (0, 0, 1));
    assert_eq!(versions_of(store, "kari").await, 3);
    assert_eq!(versions_of(store, "ola").await, 1);

    // In 2026/27 history from 1 August 2025 is kept: Kari's first version (closed October
    // 2024) and Ola (left November 2024) go; Kari's second (closed September 2025) and
    // Per (left October 2025) stay.
    assert_eq!(run_at(store, &policy, "2026-09-01").await, (1, 1, 0));
    assert_eq!(versions_of(store, "kari").await, 2);
    assert_eq!(versions_of(store, "ola").await, 0);
    assert_eq!(versions_of(store, "per").await, 1);
    // Idempotent: the same moment again purges nothing.
    assert_eq!(run_at(store, &policy, "2026-09-01").await, (0, 0, 0));

    // A year on, the rest of the closed history goes; the current roster is untouched.
    assert_eq!(run_at(store, &policy, "2027-09-01").await, (1, 1, 0));
    assert_eq!(versions_of(store, "kari").await, 1);
    assert_eq!(versions_of(store, "per").await, 0);
    let roster = current_a(store).await;
    assert_eq!(roster.students, vec![student("kari", "Kari Anne")]);
    assert_eq!(roster.schools, vec![school()]);

    let totals = store.retention_totals().await.expect("the totals read");
    assert_eq!(totals.runs, 4);
    assert_eq!((totals.versions, totals.departed, totals.audit), (2, 2, 1));
    assert_eq!(totals.last_finished, Some(Timestamp(at("2027-09-01"))));
    let audit = store.audit_log(10).await.expect("the audit log reads");
    assert_eq!(
        audit
            .iter()
            .filter(|entry| entry.actor == retention::ACTOR)
            .count(),
        4,
        "one audit line per run"
    );
}

pub(crate) async fn a_countys_own_period_keeps_its_sites_history_longer(store: &dyn Store) {
    two_school_years(store).await;
    let mut config = PrivacyConfig::default();
    config.fylke.insert(
        "46".to_owned(),
        CountyRetentionConfig {
            record_school_years: Some(3),
            departed_school_years: Some(1),
        },
    );
    let policy = config.retention_policy().expect("a valid policy");
    // Site A's school is in county 46: three school years of versions, one for who left.
    assert_eq!(run_at(store, &policy, "2026-09-01").await, (0, 2, 0));
    assert_eq!(versions_of(store, "kari").await, 3);
    assert_eq!(
        (
            versions_of(store, "ola").await,
            versions_of(store, "per").await
        ),
        (0, 0)
    );
}

pub(crate) async fn purges_delete_in_bounded_steps_and_only_what_left_before_the_cutoff(
    store: &dyn Store,
) {
    two_school_years(store).await;
    let before = Timestamp(at("2030-01-01"));
    assert_eq!(
        store
            .purge_closed_versions(&site_a(), before, 1)
            .await
            .expect("purged"),
        1
    );
    assert_eq!(
        store
            .purge_closed_versions(&site_a(), before, 5)
            .await
            .expect("purged"),
        1,
        "Kari had two closed versions"
    );
    assert_eq!(
        store
            .purge_departed(&site_a(), Timestamp(at("2025-01-01")), 5)
            .await
            .expect("purged"),
        1,
        "Ola left before 2025, Per after"
    );
    assert_eq!(versions_of(store, "per").await, 1);
}

pub(crate) async fn a_forgotten_site_has_no_records_devices_or_tokens_left(store: &dyn Store) {
    two_school_years(store).await;
    store
        .register_schools(
            &site_a(),
            &["4601/46505/974600951=Bjølsen skole"
                .parse()
                .expect("a school")],
            Timestamp(1),
        )
        .await
        .expect("registered");
    store
        .create_token(&NewToken {
            token_sha256: [9; 32],
            site: site_a(),
            site_name: "Bjølsen skole".to_owned(),
            created: Timestamp(1_000),
            expires: Timestamp(i64::MAX),
        })
        .await
        .expect("a token");
    let heartbeat = serde_json::from_value(serde_json::json!({
        "version": "0.1.0", "state": "holding",
        "deviation_groups": [{"code": "unknown_field", "severity": "warning", "count": 1}],
        "held": {"id": "h1", "deletes": {"students": 5}}
    }))
    .expect("a heartbeat");
    store
        .record_heartbeat(&device_a(), &heartbeat, Timestamp(2_000))
        .await
        .expect("recorded");
    assert_ne!(
        store.site_history(&site_a(), 0).await.expect("a history"),
        SiteHistory::default()
    );
    assert!(matches!(
        store.forget_site(&site_a()).await,
        Err(StoreError::SiteHasRecords(_))
    ));
    let handles = store
        .site_record_handles(&site_a())
        .await
        .expect("the handles read");
    assert_eq!(handles.len(), 4, "one school and three students, each once");
    let mut deleted = 0;
    loop {
        let step = store
            .purge_site_records(&site_a(), 2)
            .await
            .expect("purged");
        assert!(step <= 2);
        deleted += step;
        if step < 2 {
            break;
        }
    }
    assert_eq!(deleted, 6, "every version of every record");
    let forgotten = store.forget_site(&site_a()).await.expect("forgotten");
    assert_eq!(
        (
            forgotten.devices_revoked,
            forgotten.tokens_revoked,
            forgotten.schools
        ),
        (1, 1, 1)
    );
    assert_eq!(forgotten.transfers, 6);
    assert!(store.device(&device_a()).await.unwrap().unwrap().revoked);
    assert_eq!(store.site_schools(&site_a()).await.unwrap(), []);
    assert!(store.site_secret(&site_a()).await.unwrap().is_none());
    assert_eq!(store.transfers(&site_a(), 10).await.unwrap(), []);
    assert!(!store.sites().await.unwrap().contains(&site_a()));
    assert_eq!(
        store.site_history(&site_a(), 0).await.expect("a history"),
        SiteHistory::default()
    );
}
