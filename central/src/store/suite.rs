//! The store test suite, written once and run against every backend.
//!
//! Each case is an async function over `&dyn Store`; `store_suite!(open)` in a backend's
//! test module turns every case into a `#[tokio::test]` on a fresh store from `open`, so
//! SQLite and PostgreSQL are held to exactly the same behaviour.

use std::future::Future;
use std::sync::Arc;

use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, DeviceVerifyingKey, Enrollment, Entity,
    EntityDelta, Gender, Group, Payload, Record, RecordHandle, Roster, School, Seq, SiteId,
    SiteSecret, Student,
};

use super::{
    enrolled_device_id, token_id, AnyRecord, Batch, Changes, ConsumerClient, ConsumerScope, Counts,
    CurrentRecord, DeviceReason, EnrollRequest, NewRelease, NewToken, Outcome, RolloutChange,
    Store, StoreError, Timestamp, TokenRecord, UpdateCounts, UpdateEvent, UpdateState,
};
use super::{AuditEntry, Role, UiUser};
use super::{Fylke, NewWindow, TransferWindow};

/// A fresh store for one test, and how to remove it afterwards.
pub(crate) trait Fixture {
    fn store(&self) -> Arc<dyn Store>;
    async fn cleanup(self);
}

/// Runs one case on its own task, so the fixture is cleaned up even when the case panics,
/// then passes the panic on.
pub(crate) async fn run<F, B, Fut>(fixture: F, body: B)
where
    F: Fixture,
    B: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body(fixture.store())).await;
    fixture.cleanup().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test task did not finish: {error}"),
        }
    }
}

macro_rules! store_suite {
    ($open:ident) => {
        $crate::store::suite::store_suite!(@each $open;
            a_delta_shows_up_in_the_current_roster,
            an_update_closes_the_old_version_and_the_past_stays_readable,
            an_upsert_with_unchanged_content_keeps_its_version,
            a_delete_closes_the_record,
            a_replayed_batch_changes_nothing,
            a_gap_is_refused_and_changes_nothing,
            a_forked_chain_is_refused_and_changes_nothing,
            a_snapshot_replaces_the_roster_and_leaves_unchanged_records_alone,
            counts_count_current_records_by_kind,
            concurrent_applies_of_one_batch_apply_it_once,
            an_upsert_whose_handle_does_not_match_its_key_is_refused,
            a_batch_naming_a_record_twice_is_refused,
            two_sites_stay_separate,
            unknown_revoked_and_misplaced_devices_are_refused,
            registering_a_device_again_is_idempotent_but_a_new_key_conflicts,
            a_site_secret_cannot_change_under_stored_records,
            a_batch_for_a_site_without_a_secret_is_refused,
            a_token_enrolls_one_device_only,
            an_expired_token_changes_nothing,
            a_revoked_token_is_refused,
            an_unknown_token_is_refused,
            enrollment_keeps_the_secret_a_site_already_has,
            a_revoked_device_cannot_enroll_again,
            tokens_are_listed_without_their_hash_and_registered_once,
            devices_are_listed_with_their_site_and_revocation,
            releases_are_registered_once_and_listed_newest_first,
            a_rollout_change_keeps_what_it_does_not_name,
            updates_count_once_per_device_and_state_with_their_reasons,
            current_records_carry_their_handle_and_the_time_they_took_their_content,
            current_schools_are_listed_with_their_site,
            consumer_clients_are_created_once_listed_and_revoked,
            a_consumer_token_names_its_client_until_it_expires_or_the_client_is_revoked,
            operator_accounts_are_created_once_and_sessions_expire,
            the_audit_log_lists_newest_first,
            each_applied_batch_is_logged_as_a_transfer_once,
            transfers_since_a_time_are_listed_oldest_first_with_their_site,
            transfer_windows_are_created_listed_by_county_and_read_by_id,
            a_window_closing_before_it_opens_or_overlapping_its_county_is_refused,
        );
    };
    (@each $open:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::store::suite::run($open().await, |store| async move {
                    $crate::store::suite::$name(&*store).await;
                })
                .await;
            }
        )*
    };
}

pub(crate) use store_suite;

// ---------------------------------------------------------------------------------------------
// Test data

pub(crate) fn site_a() -> SiteId {
    SiteId::new("skole-46505").expect("a valid site id")
}

fn site_b() -> SiteId {
    SiteId::new("skole-46506").expect("a valid site id")
}

fn device_a() -> DeviceId {
    DeviceId::new("pi-46505").expect("a valid device id")
}

fn device_b() -> DeviceId {
    DeviceId::new("pi-46506").expect("a valid device id")
}

fn secret_a() -> SiteSecret {
    SiteSecret::from_bytes([0xa1; 32])
}

fn secret_b() -> SiteSecret {
    SiteSecret::from_bytes([0xb2; 32])
}

fn key(seed: u8) -> DeviceVerifyingKey {
    DeviceSigningKey::from_bytes([seed; 32]).verifying_key()
}

fn school() -> School {
    School {
        skolenummer: "46505".into(),
        organisasjonsnummer: Some("974600951".into()),
        kommunenummer: Some("4601".into()),
        fylkesnummer: Some("46".into()),
        name: "Bjølsen skole".into(),
    }
}

fn student(key: &str, given_name: &str) -> Student {
    Student {
        source_key: key.into(),
        national_id: None,
        username: Some(format!("{key}@skole.no").into()),
        given_name: given_name.into(),
        middle_name: None,
        family_name: "Nordmann".into(),
        birth_date: None,
        gender: Gender::Female,
        email: None,
    }
}

fn group(key: &str) -> Group {
    Group {
        source_key: key.into(),
        name: key.into(),
        grade: Some("10".into()),
        school: "46505".into(),
        school_year: Some("2025/2026".into()),
    }
}

fn enrollment(key: &str, student: &str, group: &str) -> Enrollment {
    Enrollment {
        source_key: key.into(),
        student: student.into(),
        school: "46505".into(),
        group: Some(group.into()),
    }
}

fn handle<R: Record>(secret: &SiteSecret, record: &R) -> RecordHandle {
    secret.handle(R::ENTITY, record.key())
}

fn upserts<R: Record + Clone>(secret: &SiteSecret, records: &[R]) -> EntityDelta<R> {
    let mut delta = EntityDelta {
        upserts: records
            .iter()
            .map(|record| (handle(secret, record), record.clone()))
            .collect(),
        deletes: Vec::new(),
    };
    delta.sort();
    delta
}

fn students_delta(secret: &SiteSecret, students: Vec<Student>) -> Payload {
    Payload::Delta(Delta {
        students: upserts(secret, &students),
        ..Delta::default()
    })
}

fn delete_students(secret: &SiteSecret, keys: &[&str]) -> Payload {
    let mut students = EntityDelta {
        upserts: Vec::new(),
        deletes: keys
            .iter()
            .map(|key| secret.handle(Entity::Student, key))
            .collect(),
    };
    students.sort();
    Payload::Delta(Delta {
        students,
        ..Delta::default()
    })
}

fn roster_of_students(students: Vec<Student>) -> Roster {
    Roster {
        students,
        ..Roster::default()
    }
}

/// The digest the fake envelope number `seq` has: any 32 bytes do for the store.
fn digest(seq: Seq) -> [u8; 32] {
    let mut digest = [0xd1; 32];
    digest[..8].copy_from_slice(&seq.0.to_be_bytes());
    digest
}

/// The batch that continues the chain at `head`.
fn batch(device: DeviceId, site: SiteId, head: ChainHead, payload: Payload, at: i64) -> Batch {
    Batch {
        device,
        site,
        seq: head.next_seq,
        prev: head.prev,
        next_head: ChainHead::after(head.next_seq, digest(head.next_seq)),
        payload,
        at: Timestamp(at),
        bytes: 1000,
    }
}

async fn enroll(
    store: &dyn Store,
    site: &SiteId,
    device: &DeviceId,
    secret: &SiteSecret,
    seed: u8,
) {
    store
        .set_site_secret(site, secret)
        .await
        .expect("the site secret is stored");
    store
        .register_device(device, site, &key(seed))
        .await
        .expect("the device registers");
}

async fn enroll_a(store: &dyn Store) {
    enroll(store, &site_a(), &device_a(), &secret_a(), 1).await;
}

/// Sends the next batch of device A (site A), as its agent would.
async fn send_a(store: &dyn Store, payload: Payload, at: i64) -> Result<Outcome, StoreError> {
    let head = store
        .chain_head(&device_a())
        .await
        .expect("the chain head reads");
    store
        .apply(batch(device_a(), site_a(), head, payload, at))
        .await
}

async fn applied(store: &dyn Store, payload: Payload, at: i64) -> Changes {
    match send_a(store, payload, at).await {
        Ok(Outcome::Applied(changes)) => changes,
        other => panic!("expected the batch to apply, got {other:?}"),
    }
}

async fn current_a(store: &dyn Store) -> Roster {
    store
        .current_roster(&site_a())
        .await
        .expect("the current roster reads")
}

async fn as_of_a(store: &dyn Store, at: i64) -> Roster {
    store
        .roster_as_of(&site_a(), Timestamp(at))
        .await
        .expect("the roster as of a time reads")
}

fn changes(added: u64, changed: u64, removed: u64, unchanged: u64) -> Changes {
    Changes {
        added,
        changed,
        removed,
        unchanged,
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

pub(crate) async fn a_delta_shows_up_in_the_current_roster(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let payload = Payload::Delta(Delta {
        schools: upserts(&secret, &[school()]),
        students: upserts(&secret, &[student("s2", "Kari"), student("s1", "Ola")]),
        groups: upserts(&secret, &[group("10A")]),
        enrollments: upserts(&secret, &[enrollment("e1", "s1", "10A")]),
    });
    assert_eq!(applied(store, payload, 1000).await, changes(5, 0, 0, 0));

    let roster = current_a(store).await;
    assert_eq!(
        roster,
        Roster {
            schools: vec![school()],
            students: vec![student("s1", "Ola"), student("s2", "Kari")],
            groups: vec![group("10A")],
            enrollments: vec![enrollment("e1", "s1", "10A")],
        }
    );
    assert_eq!(
        store.chain_head(&device_a()).await.expect("the head reads"),
        ChainHead::after(Seq(1), digest(Seq(1)))
    );
}

pub(crate) async fn an_update_closes_the_old_version_and_the_past_stays_readable(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let secret = secret_a();
    applied(
        store,
        students_delta(&secret, vec![student("s1", "Ola")]),
        1000,
    )
    .await;
    let renamed = student("s1", "Ola Petter");
    assert_eq!(
        applied(store, students_delta(&secret, vec![renamed.clone()]), 2000).await,
        changes(0, 1, 0, 0)
    );

    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![renamed.clone()])
    );
    assert_eq!(
        as_of_a(store, 1500).await,
        roster_of_students(vec![student("s1", "Ola")])
    );
    assert_eq!(as_of_a(store, 999).await, Roster::default());
    assert_eq!(
        as_of_a(store, 2000).await,
        roster_of_students(vec![renamed.clone()])
    );

    let history = store
        .history(&site_a(), Entity::Student, &handle(&secret, &renamed))
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].record, AnyRecord::Student(student("s1", "Ola")));
    assert_eq!(history[0].valid_from, Timestamp(1000));
    assert_eq!(history[0].valid_to, Some(Timestamp(2000)));
    assert!(!history[0].is_current);
    assert_eq!(history[0].transaction_time, Timestamp(1000));
    assert_eq!(history[1].record, AnyRecord::Student(renamed));
    assert_eq!(history[1].valid_from, Timestamp(2000));
    assert_eq!(history[1].valid_to, None);
    assert!(history[1].is_current);
    assert_eq!(history[1].transaction_time, Timestamp(2000));
}

pub(crate) async fn an_upsert_with_unchanged_content_keeps_its_version(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let ola = student("s1", "Ola");
    applied(store, students_delta(&secret, vec![ola.clone()]), 1000).await;
    assert_eq!(
        applied(store, students_delta(&secret, vec![ola.clone()]), 2000).await,
        changes(0, 0, 0, 1)
    );
    let history = store
        .history(&site_a(), Entity::Student, &handle(&secret, &ola))
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].valid_from, Timestamp(1000));
    assert_eq!(
        store
            .chain_head(&device_a())
            .await
            .expect("the head reads")
            .next_seq,
        Seq(3)
    );
}

pub(crate) async fn a_delete_closes_the_record(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let (ola, kari) = (student("s1", "Ola"), student("s2", "Kari"));
    applied(
        store,
        students_delta(&secret, vec![ola.clone(), kari.clone()]),
        1000,
    )
    .await;
    assert_eq!(
        applied(store, delete_students(&secret, &["s1"]), 2000).await,
        changes(0, 0, 1, 0)
    );

    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![kari.clone()])
    );
    assert_eq!(
        as_of_a(store, 1500).await,
        roster_of_students(vec![ola.clone(), kari])
    );
    let history = store
        .history(&site_a(), Entity::Student, &handle(&secret, &ola))
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].valid_to, Some(Timestamp(2000)));
    assert!(!history[0].is_current);

    // Deleting what is already gone is not an error: the delete has nothing left to do.
    assert_eq!(
        applied(store, delete_students(&secret, &["s1", "nobody"]), 3000).await,
        changes(0, 0, 0, 0)
    );
}

pub(crate) async fn a_replayed_batch_changes_nothing(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let first = batch(
        device_a(),
        site_a(),
        ChainHead::genesis(),
        students_delta(&secret, vec![student("s1", "Ola")]),
        1000,
    );
    assert!(matches!(
        store.apply(first.clone()).await,
        Ok(Outcome::Applied(_))
    ));
    let head = ChainHead::after(Seq(1), digest(Seq(1)));

    let mut again = first;
    again.at = Timestamp(2000);
    assert_eq!(
        store
            .apply(again.clone())
            .await
            .expect("a replay is no error"),
        Outcome::AlreadyApplied { head }
    );
    // Even a replay claiming other content is acked without applying it.
    again.payload = students_delta(&secret, vec![student("s1", "Mallory")]);
    assert_eq!(
        store.apply(again).await.expect("a replay is no error"),
        Outcome::AlreadyApplied { head }
    );

    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![student("s1", "Ola")])
    );
    assert_eq!(
        store
            .history(
                &site_a(),
                Entity::Student,
                &secret.handle(Entity::Student, "s1")
            )
            .await
            .expect("the history reads")
            .len(),
        1
    );
    assert_eq!(store.chain_head(&device_a()).await.expect("the head"), head);
}

pub(crate) async fn a_gap_is_refused_and_changes_nothing(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let ahead = ChainHead {
        next_seq: Seq(3),
        prev: digest(Seq(2)),
    };
    let result = store
        .apply(batch(
            device_a(),
            site_a(),
            ahead,
            students_delta(&secret, vec![student("s1", "Ola")]),
            1000,
        ))
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Gap {
                expected: Seq(1),
                got: Seq(3)
            })
        ),
        "{result:?}"
    );
    assert_eq!(current_a(store).await, Roster::default());
    assert_eq!(
        store.chain_head(&device_a()).await.expect("the head"),
        ChainHead::genesis()
    );
}

pub(crate) async fn a_forked_chain_is_refused_and_changes_nothing(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    applied(
        store,
        students_delta(&secret, vec![student("s1", "Ola")]),
        1000,
    )
    .await;
    let forked = ChainHead {
        next_seq: Seq(2),
        prev: [0x66; 32],
    };
    let result = store
        .apply(batch(
            device_a(),
            site_a(),
            forked,
            students_delta(&secret, vec![student("s1", "Mallory")]),
            2000,
        ))
        .await;
    assert!(
        matches!(result, Err(StoreError::BrokenChain { seq: Seq(2) })),
        "{result:?}"
    );
    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![student("s1", "Ola")])
    );
}

pub(crate) async fn a_snapshot_replaces_the_roster_and_leaves_unchanged_records_alone(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let secret = secret_a();
    let (s1, s2, s3) = (
        student("s1", "Ola"),
        student("s2", "Kari"),
        student("s3", "Per"),
    );
    let s2_renamed = student("s2", "Kari Anne");
    let s4 = student("s4", "Lise");
    applied(
        store,
        Payload::Delta(Delta {
            schools: upserts(&secret, &[school()]),
            students: upserts(&secret, &[s1.clone(), s2.clone(), s3.clone()]),
            ..Delta::default()
        }),
        1000,
    )
    .await;

    let snapshot = Payload::Snapshot(Roster {
        schools: vec![],
        students: vec![s4.clone(), s2_renamed.clone(), s1.clone()],
        groups: vec![],
        enrollments: vec![],
    });
    // s1 unchanged, s2 changed, s4 new; s3 and the school are missing, so closed.
    assert_eq!(applied(store, snapshot, 2000).await, changes(1, 1, 2, 1));

    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![s1.clone(), s2_renamed, s4])
    );
    assert_eq!(
        as_of_a(store, 1500).await,
        Roster {
            schools: vec![school()],
            students: vec![s1.clone(), s2.clone(), s3.clone()],
            ..Roster::default()
        }
    );
    let versions = |record: Student| async move {
        store
            .history(&site_a(), Entity::Student, &handle(&secret_a(), &record))
            .await
            .expect("the history reads")
    };
    let s1_history = versions(s1).await;
    assert_eq!(s1_history.len(), 1, "an unchanged record keeps its version");
    assert_eq!(s1_history[0].valid_from, Timestamp(1000));
    assert!(s1_history[0].is_current);
    assert_eq!(versions(s2).await.len(), 2);
    let s3_history = versions(s3).await;
    assert_eq!(s3_history.len(), 1);
    assert_eq!(s3_history[0].valid_to, Some(Timestamp(2000)));
}

pub(crate) async fn counts_count_current_records_by_kind(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    assert_eq!(
        store.counts(&site_a()).await.expect("counts"),
        Counts::default()
    );
    applied(
        store,
        Payload::Delta(Delta {
            schools: upserts(&secret, &[school()]),
            students: upserts(
                &secret,
                &[
                    student("s1", "Ola"),
                    student("s2", "Kari"),
                    student("s3", "Per"),
                ],
            ),
            groups: upserts(&secret, &[group("10A"), group("10B")]),
            enrollments: upserts(
                &secret,
                &[
                    enrollment("e1", "s1", "10A"),
                    enrollment("e2", "s2", "10A"),
                    enrollment("e3", "s3", "10B"),
                ],
            ),
        }),
        1000,
    )
    .await;
    applied(store, delete_students(&secret, &["s3"]), 2000).await;
    applied(
        store,
        students_delta(&secret, vec![student("s1", "Ola Petter")]),
        3000,
    )
    .await;

    assert_eq!(
        store.counts(&site_a()).await.expect("counts"),
        Counts {
            schools: 1,
            students: 2,
            groups: 2,
            enrollments: 3,
        }
    );
    assert_eq!(
        store.counts(&site_b()).await.expect("counts"),
        Counts::default()
    );
}

pub(crate) async fn concurrent_applies_of_one_batch_apply_it_once(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let one = batch(
        device_a(),
        site_a(),
        ChainHead::genesis(),
        students_delta(&secret, vec![student("s1", "Ola"), student("s2", "Kari")]),
        1000,
    );
    let (a, b, c, d) = tokio::join!(
        store.apply(one.clone()),
        store.apply(one.clone()),
        store.apply(one.clone()),
        store.apply(one),
    );
    let outcomes = [a, b, c, d].map(|outcome| outcome.expect("every apply succeeds"));
    let applied = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Outcome::Applied(_)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    let head = ChainHead::after(Seq(1), digest(Seq(1)));
    for outcome in outcomes {
        assert!(
            matches!(outcome, Outcome::Applied(_)) || outcome == Outcome::AlreadyApplied { head }
        );
    }
    let history = store
        .history(
            &site_a(),
            Entity::Student,
            &secret.handle(Entity::Student, "s1"),
        )
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 1);
    assert_eq!(store.counts(&site_a()).await.expect("counts").students, 2);
}

pub(crate) async fn an_upsert_whose_handle_does_not_match_its_key_is_refused(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let ola = student("s1", "Ola");
    let wrong = secret.handle(Entity::Student, "s2");
    let payload = Payload::Delta(Delta {
        students: EntityDelta {
            upserts: vec![(wrong, ola.clone())],
            deletes: vec![],
        },
        ..Delta::default()
    });
    let result = send_a(store, payload, 1000).await;
    assert!(
        matches!(
            result,
            Err(StoreError::HandleMismatch { entity: Entity::Student, handle }) if handle == wrong
        ),
        "{result:?}"
    );
    // An agent holding another site's secret is refused the same way.
    let result = send_a(store, students_delta(&secret_b(), vec![ola]), 1000).await;
    assert!(
        matches!(result, Err(StoreError::HandleMismatch { .. })),
        "{result:?}"
    );
    assert_eq!(current_a(store).await, Roster::default());
    assert_eq!(
        store.chain_head(&device_a()).await.expect("the head"),
        ChainHead::genesis()
    );
}

pub(crate) async fn a_batch_naming_a_record_twice_is_refused(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let ola = student("s1", "Ola");
    let payload = Payload::Delta(Delta {
        students: EntityDelta {
            upserts: vec![(handle(&secret, &ola), ola.clone())],
            deletes: vec![handle(&secret, &ola)],
        },
        ..Delta::default()
    });
    let result = send_a(store, payload, 1000).await;
    assert!(
        matches!(result, Err(StoreError::DuplicateRecord { .. })),
        "{result:?}"
    );
    let twice = Payload::Snapshot(roster_of_students(vec![
        ola.clone(),
        student("s1", "Ola 2"),
    ]));
    let result = send_a(store, twice, 1000).await;
    assert!(
        matches!(result, Err(StoreError::DuplicateRecord { .. })),
        "{result:?}"
    );
    assert_eq!(current_a(store).await, Roster::default());
}

pub(crate) async fn two_sites_stay_separate(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    let ola_a = student("s1", "Ola");
    let ola_b = student("s1", "Ola fra B");
    applied(
        store,
        Payload::Snapshot(roster_of_students(vec![ola_a.clone()])),
        1000,
    )
    .await;
    let b_head = store.chain_head(&device_b()).await.expect("the head");
    assert_eq!(b_head, ChainHead::genesis(), "chains are per device");
    let outcome = store
        .apply(batch(
            device_b(),
            site_b(),
            b_head,
            Payload::Snapshot(roster_of_students(vec![ola_b.clone()])),
            2000,
        ))
        .await
        .expect("site B applies");
    assert_eq!(outcome, Outcome::Applied(changes(1, 0, 0, 0)));

    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![ola_a.clone()])
    );
    assert_eq!(
        store.current_roster(&site_b()).await.expect("B's roster"),
        roster_of_students(vec![ola_b])
    );

    // An empty snapshot of B empties B only.
    let b_head = store.chain_head(&device_b()).await.expect("the head");
    store
        .apply(batch(
            device_b(),
            site_b(),
            b_head,
            Payload::Snapshot(Roster::default()),
            3000,
        ))
        .await
        .expect("site B applies");
    assert_eq!(
        store.current_roster(&site_b()).await.expect("B's roster"),
        Roster::default()
    );
    assert_eq!(current_a(store).await, roster_of_students(vec![ola_a]));
    assert_eq!(store.counts(&site_a()).await.expect("counts").students, 1);
}

pub(crate) async fn unknown_revoked_and_misplaced_devices_are_refused(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    let payload = students_delta(&secret_a(), vec![student("s1", "Ola")]);
    let stranger = DeviceId::new("pi-stranger").expect("a valid id");

    let result = store
        .apply(batch(
            stranger.clone(),
            site_a(),
            ChainHead::genesis(),
            payload.clone(),
            1000,
        ))
        .await;
    assert!(
        matches!(&result, Err(StoreError::UnknownDevice(device)) if *device == stranger),
        "{result:?}"
    );

    // Device B writing into site A.
    let result = store
        .apply(batch(
            device_b(),
            site_a(),
            ChainHead::genesis(),
            payload.clone(),
            1000,
        ))
        .await;
    assert!(
        matches!(&result, Err(StoreError::WrongSite { registered, .. }) if *registered == site_b()),
        "{result:?}"
    );

    store
        .revoke_device(&device_a())
        .await
        .expect("the device is revoked");
    assert!(
        store
            .device(&device_a())
            .await
            .expect("the device reads")
            .expect("the device is known")
            .revoked
    );
    let result = send_a(store, payload, 1000).await;
    assert!(
        matches!(result, Err(StoreError::DeviceRevoked(_))),
        "{result:?}"
    );
    assert!(matches!(
        store.revoke_device(&stranger).await,
        Err(StoreError::UnknownDevice(_))
    ));
    assert_eq!(current_a(store).await, Roster::default());
}

pub(crate) async fn registering_a_device_again_is_idempotent_but_a_new_key_conflicts(
    store: &dyn Store,
) {
    assert_eq!(store.device(&device_a()).await.expect("reads"), None);
    assert_eq!(
        store.chain_head(&device_a()).await.expect("reads"),
        ChainHead::genesis()
    );
    enroll_a(store).await;
    store
        .register_device(&device_a(), &site_a(), &key(1))
        .await
        .expect("registering again with the same key is fine");
    let record = store
        .device(&device_a())
        .await
        .expect("reads")
        .expect("the device is known");
    assert_eq!(record.site, site_a());
    assert_eq!(record.verifying_key, key(1));
    assert!(!record.revoked);

    assert!(matches!(
        store.register_device(&device_a(), &site_a(), &key(9)).await,
        Err(StoreError::DeviceConflict(_))
    ));
    assert!(matches!(
        store.register_device(&device_a(), &site_b(), &key(1)).await,
        Err(StoreError::DeviceConflict(_))
    ));
    let record = store
        .device(&device_a())
        .await
        .expect("reads")
        .expect("the device is known");
    assert_eq!(record.verifying_key, key(1));
}

pub(crate) async fn a_site_secret_cannot_change_under_stored_records(store: &dyn Store) {
    assert_eq!(store.site_secret(&site_a()).await.expect("reads"), None);
    store
        .set_site_secret(&site_a(), &secret_b())
        .await
        .expect("the first secret is stored");
    store
        .set_site_secret(&site_a(), &secret_a())
        .await
        .expect("a site without records may get a new secret");
    enroll_a(store).await;
    applied(
        store,
        students_delta(&secret_a(), vec![student("s1", "Ola")]),
        1000,
    )
    .await;
    store
        .set_site_secret(&site_a(), &secret_a())
        .await
        .expect("setting the same secret again is fine");
    assert!(matches!(
        store.set_site_secret(&site_a(), &secret_b()).await,
        Err(StoreError::SiteSecretInUse(_))
    ));
    assert_eq!(
        store.site_secret(&site_a()).await.expect("reads"),
        Some(secret_a())
    );
}

pub(crate) async fn a_batch_for_a_site_without_a_secret_is_refused(store: &dyn Store) {
    store
        .register_device(&device_a(), &site_a(), &key(1))
        .await
        .expect("the device registers");
    let result = send_a(
        store,
        students_delta(&secret_a(), vec![student("s1", "Ola")]),
        1000,
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::NoSiteSecret(_))),
        "{result:?}"
    );
    assert_eq!(
        store.chain_head(&device_a()).await.expect("the head"),
        ChainHead::genesis()
    );
}

// ---------------------------------------------------------------------------------------------
// Enrollment

/// The hash of token number `n`: any 32 bytes do for the store.
fn token_hash(n: u8) -> [u8; 32] {
    [n; 32]
}

fn new_token(n: u8, site: SiteId, expires: i64) -> NewToken {
    NewToken {
        token_sha256: token_hash(n),
        site,
        site_name: "Bjølsen skole".to_owned(),
        created: Timestamp(1_000),
        expires: Timestamp(expires),
    }
}

fn enroll_request(n: u8, seed: u8, at: i64) -> EnrollRequest {
    EnrollRequest {
        token_sha256: token_hash(n),
        verifying_key: key(seed),
        new_site_secret: SiteSecret::from_bytes([seed; 32]),
        at: Timestamp(at),
    }
}

async fn token_of(store: &dyn Store, n: u8) -> TokenRecord {
    store
        .token(&token_hash(n))
        .await
        .expect("the token reads")
        .expect("the token is known")
}

/// Asserts that a refused enrollment left the token unused and registered nothing.
async fn nothing_enrolled(store: &dyn Store, n: u8) {
    assert_eq!(token_of(store, n).await.used_by, None);
    assert_eq!(store.list_devices().await.expect("devices"), Vec::new());
    assert_eq!(store.site_secret(&site_a()).await.expect("reads"), None);
}

pub(crate) async fn a_token_enrolls_one_device_only(store: &dyn Store) {
    store
        .create_token(&new_token(1, site_a(), 10_000))
        .await
        .expect("the token is registered");

    let enrolled = store
        .enroll(&enroll_request(1, 7, 5_000))
        .await
        .expect("the first device enrolls");

    let device = enrolled_device_id(&site_a(), &key(7)).expect("a device id");
    assert_eq!(enrolled.device, device);
    assert_eq!(enrolled.site, site_a());
    assert_eq!(enrolled.site_secret, SiteSecret::from_bytes([7; 32]));
    let record = store
        .device(&device)
        .await
        .expect("reads")
        .expect("the device is registered");
    assert_eq!(record.site, site_a());
    assert_eq!(record.verifying_key, key(7));
    assert_eq!(
        store.site_secret(&site_a()).await.expect("reads"),
        Some(enrolled.site_secret.clone())
    );
    let token = token_of(store, 1).await;
    assert_eq!(token.used_by, Some(device.clone()));
    assert_eq!(token.used_at, Some(Timestamp(5_000)));

    // A second device with the same token, and the first one again: both refused.
    for seed in [8, 7] {
        let result = store.enroll(&enroll_request(1, seed, 6_000)).await;
        assert!(
            matches!(&result, Err(StoreError::TokenUsed(id)) if *id == token_id(&token_hash(1))),
            "{result:?}"
        );
    }
    let devices = store.list_devices().await.expect("devices");
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(token_of(store, 1).await, token);
}

pub(crate) async fn an_expired_token_changes_nothing(store: &dyn Store) {
    store
        .create_token(&new_token(1, site_a(), 10_000))
        .await
        .expect("the token is registered");

    let result = store.enroll(&enroll_request(1, 7, 10_000)).await;

    assert!(
        matches!(result, Err(StoreError::TokenExpired(_))),
        "{result:?}"
    );
    nothing_enrolled(store, 1).await;
}

pub(crate) async fn a_revoked_token_is_refused(store: &dyn Store) {
    store
        .create_token(&new_token(1, site_a(), 10_000))
        .await
        .expect("the token is registered");
    let id = token_id(&token_hash(1));
    store.revoke_token(&id).await.expect("the token is revoked");
    store
        .revoke_token(&id)
        .await
        .expect("revoking again is no error");

    let result = store.enroll(&enroll_request(1, 7, 5_000)).await;

    assert!(
        matches!(result, Err(StoreError::TokenRevoked(_))),
        "{result:?}"
    );
    assert!(token_of(store, 1).await.revoked);
    nothing_enrolled(store, 1).await;
    assert!(matches!(
        store.revoke_token("0000000000000000").await,
        Err(StoreError::TokenUnknown)
    ));
}

pub(crate) async fn an_unknown_token_is_refused(store: &dyn Store) {
    store
        .create_token(&new_token(1, site_a(), 10_000))
        .await
        .expect("the token is registered");

    let result = store.enroll(&enroll_request(2, 7, 5_000)).await;

    assert!(
        matches!(result, Err(StoreError::TokenUnknown)),
        "{result:?}"
    );
    nothing_enrolled(store, 1).await;
}

pub(crate) async fn enrollment_keeps_the_secret_a_site_already_has(store: &dyn Store) {
    store
        .set_site_secret(&site_a(), &secret_a())
        .await
        .expect("the site secret is stored");
    for n in [1, 2] {
        store
            .create_token(&new_token(n, site_a(), 10_000))
            .await
            .expect("the token is registered");
    }

    let first = store
        .enroll(&enroll_request(1, 7, 5_000))
        .await
        .expect("the first device enrolls");
    let second = store
        .enroll(&enroll_request(2, 8, 5_000))
        .await
        .expect("the second device enrolls");

    assert_eq!(first.site_secret, secret_a());
    assert_eq!(second.site_secret, secret_a());
    assert_ne!(first.device, second.device);
    assert_eq!(
        store.site_secret(&site_a()).await.expect("reads"),
        Some(secret_a())
    );
}

pub(crate) async fn a_revoked_device_cannot_enroll_again(store: &dyn Store) {
    for n in [1, 2] {
        store
            .create_token(&new_token(n, site_a(), 10_000))
            .await
            .expect("the token is registered");
    }
    let enrolled = store
        .enroll(&enroll_request(1, 7, 5_000))
        .await
        .expect("the device enrolls");
    store
        .revoke_device(&enrolled.device)
        .await
        .expect("the device is revoked");

    let result = store.enroll(&enroll_request(2, 7, 6_000)).await;

    assert!(
        matches!(&result, Err(StoreError::DeviceRevoked(device)) if *device == enrolled.device),
        "{result:?}"
    );
    assert_eq!(token_of(store, 2).await.used_by, None);
}

pub(crate) async fn tokens_are_listed_without_their_hash_and_registered_once(store: &dyn Store) {
    assert_eq!(store.list_tokens().await.expect("tokens"), Vec::new());
    let mut older = new_token(1, site_a(), 10_000);
    older.created = Timestamp(500);
    store.create_token(&older).await.expect("registered");
    store
        .create_token(&new_token(2, site_b(), 20_000))
        .await
        .expect("registered");

    let result = store.create_token(&new_token(2, site_a(), 30_000)).await;
    assert!(
        matches!(result, Err(StoreError::TokenExists(_))),
        "{result:?}"
    );

    let tokens = store.list_tokens().await.expect("tokens");
    assert_eq!(
        tokens,
        vec![
            TokenRecord {
                id: token_id(&token_hash(2)),
                site: site_b(),
                site_name: "Bjølsen skole".to_owned(),
                created: Timestamp(1_000),
                expires: Timestamp(20_000),
                used_by: None,
                used_at: None,
                revoked: false,
            },
            TokenRecord {
                id: token_id(&token_hash(1)),
                site: site_a(),
                site_name: "Bjølsen skole".to_owned(),
                created: Timestamp(500),
                expires: Timestamp(10_000),
                used_by: None,
                used_at: None,
                revoked: false,
            },
        ]
    );
}

pub(crate) async fn devices_are_listed_with_their_site_and_revocation(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    store
        .revoke_device(&device_b())
        .await
        .expect("the device is revoked");

    let devices = store.list_devices().await.expect("devices");

    let listed: Vec<_> = devices
        .iter()
        .map(|(device, record)| (device.clone(), record.site.clone(), record.revoked))
        .collect();
    assert_eq!(
        listed,
        vec![(device_a(), site_a(), false), (device_b(), site_b(), true)]
    );
}

pub(crate) async fn current_records_carry_their_handle_and_the_time_they_took_their_content(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let secret = secret_a();
    applied(
        store,
        students_delta(&secret, vec![student("s1", "Ola"), student("s2", "Kari")]),
        1_000,
    )
    .await;
    applied(
        store,
        students_delta(&secret, vec![student("s2", "Kaja")]),
        2_000,
    )
    .await;
    applied(store, delete_students(&secret, &["s1"]), 3_000).await;
    applied(
        store,
        students_delta(&secret, vec![student("s3", "Per")]),
        4_000,
    )
    .await;

    let records = store
        .current_records(&site_a(), Entity::Student)
        .await
        .expect("current records");

    let mut expected = vec![
        CurrentRecord {
            handle: handle(&secret, &student("s2", "Kaja")),
            record: AnyRecord::Student(student("s2", "Kaja")),
            modified: Timestamp(2_000),
        },
        CurrentRecord {
            handle: handle(&secret, &student("s3", "Per")),
            record: AnyRecord::Student(student("s3", "Per")),
            modified: Timestamp(4_000),
        },
    ];
    expected.sort_by_key(|record| record.handle);
    assert_eq!(records, expected);
    let groups = store
        .current_records(&site_a(), Entity::Group)
        .await
        .expect("current records");
    assert_eq!(groups, Vec::new());
}

pub(crate) async fn current_schools_are_listed_with_their_site(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    let other = School {
        skolenummer: "301010".into(),
        organisasjonsnummer: None,
        kommunenummer: Some("0301".into()),
        fylkesnummer: Some("03".into()),
        name: "Oslo skole".into(),
    };
    let closed = School {
        skolenummer: "46999".into(),
        ..school()
    };
    applied(
        store,
        Payload::Delta(Delta {
            schools: upserts(&secret_a(), &[school(), closed.clone()]),
            ..Delta::default()
        }),
        1_000,
    )
    .await;
    let mut schools = EntityDelta {
        upserts: Vec::new(),
        deletes: vec![handle(&secret_a(), &closed)],
    };
    schools.sort();
    applied(
        store,
        Payload::Delta(Delta {
            schools,
            ..Delta::default()
        }),
        2_000,
    )
    .await;
    let head = store.chain_head(&device_b()).await.expect("the head");
    let payload = Payload::Delta(Delta {
        schools: upserts(&secret_b(), std::slice::from_ref(&other)),
        ..Delta::default()
    });
    store
        .apply(batch(device_b(), site_b(), head, payload, 1_500))
        .await
        .expect("site B's batch applies");

    let listed = store.current_schools().await.expect("current schools");

    assert_eq!(listed, vec![(site_a(), school()), (site_b(), other)]);
}

fn consumer_client(id: &str, scope: ConsumerScope, created: i64) -> ConsumerClient {
    ConsumerClient {
        id: id.to_owned(),
        name: format!("Inntakskontoret {id}"),
        scope,
        secret_salt: [0x5a; 16],
        secret_sha256: [0xc3; 32],
        created: Timestamp(created),
        revoked: false,
    }
}

pub(crate) async fn consumer_clients_are_created_once_listed_and_revoked(store: &dyn Store) {
    let county = consumer_client("c-county", ConsumerScope::County("46".to_owned()), 2_000);
    let kommune = consumer_client(
        "c-kommune",
        ConsumerScope::Kommune("4601".to_owned()),
        1_000,
    );
    store
        .create_consumer_client(&county)
        .await
        .expect("created");
    store
        .create_consumer_client(&kommune)
        .await
        .expect("created");
    let again = store.create_consumer_client(&county).await;
    assert!(
        matches!(again, Err(StoreError::ClientExists(ref id)) if id == "c-county"),
        "{again:?}"
    );

    assert_eq!(
        store.list_consumer_clients().await.expect("clients"),
        vec![kommune.clone(), county.clone()]
    );
    store
        .revoke_consumer_client("c-county")
        .await
        .expect("revoked");
    store
        .revoke_consumer_client("c-county")
        .await
        .expect("revoked again");
    let unknown = store.revoke_consumer_client("c-nobody").await;
    assert!(
        matches!(unknown, Err(StoreError::ClientUnknown)),
        "{unknown:?}"
    );
    assert_eq!(
        store.consumer_client("c-county").await.expect("a client"),
        Some(ConsumerClient {
            revoked: true,
            ..county
        })
    );
    assert_eq!(
        store.consumer_client("c-kommune").await.expect("a client"),
        Some(kommune)
    );
    assert_eq!(
        store.consumer_client("c-nobody").await.expect("no client"),
        None
    );
}

async fn token_client(store: &dyn Store, n: u8, at: i64) -> Option<ConsumerClient> {
    store
        .consumer_token_client(&[n; 32], Timestamp(at))
        .await
        .expect("the token reads")
}

pub(crate) async fn a_consumer_token_names_its_client_until_it_expires_or_the_client_is_revoked(
    store: &dyn Store,
) {
    let county = consumer_client("c-county", ConsumerScope::County("46".to_owned()), 1_000);
    let kommune = consumer_client(
        "c-kommune",
        ConsumerScope::Kommune("4601".to_owned()),
        1_000,
    );
    store
        .create_consumer_client(&county)
        .await
        .expect("created");
    store
        .create_consumer_client(&kommune)
        .await
        .expect("created");
    let token = |n: u8| [n; 32];
    store
        .create_consumer_token(&token(1), "c-county", Timestamp(5_000), Timestamp(1_000))
        .await
        .expect("a token");
    store
        .create_consumer_token(&token(2), "c-kommune", Timestamp(9_000), Timestamp(1_000))
        .await
        .expect("a token");

    assert_eq!(token_client(store, 1, 4_999).await, Some(county.clone()));
    assert_eq!(token_client(store, 1, 5_000).await, None, "expired");
    assert_eq!(token_client(store, 3, 1_000).await, None, "unknown");
    assert_eq!(token_client(store, 2, 4_999).await, Some(kommune));

    // A new token drops the expired ones; the live one stays.
    store
        .create_consumer_token(&token(4), "c-county", Timestamp(20_000), Timestamp(6_000))
        .await
        .expect("a token");
    assert_eq!(
        token_client(store, 1, 0).await,
        None,
        "dropped once expired"
    );
    assert!(token_client(store, 2, 6_000).await.is_some());

    store
        .revoke_consumer_client("c-county")
        .await
        .expect("revoked");
    assert_eq!(token_client(store, 4, 6_000).await, None, "revoked");
}

// ---------------------------------------------------------------------------------------------
// Releases

fn new_release(version: &str, target: &str) -> NewRelease {
    let version: skolebro_protocol::Version = version.parse().expect("a valid version");
    NewRelease {
        id: format!("{version}-{target}"),
        version,
        target: target.to_owned(),
        size: 4096,
        sha256: [0x42; 32],
        allow_downgrade: false,
        manifest: format!("signed manifest of {version}-{target}").into_bytes(),
        registered: Timestamp(1000),
    }
}

const TARGET: &str = "aarch64-unknown-linux-gnu";

pub(crate) async fn releases_are_registered_once_and_listed_newest_first(store: &dyn Store) {
    for version in ["1.9.0", "1.10.0", "1.2.3"] {
        assert!(store
            .create_release(&new_release(version, TARGET))
            .await
            .expect("a new release registers"));
    }
    // The same manifest again is no error and changes nothing.
    assert!(!store
        .create_release(&new_release("1.9.0", TARGET))
        .await
        .expect("registering again is harmless"));
    let mut other = new_release("1.9.0", TARGET);
    other.manifest = b"another manifest".to_vec();
    assert!(matches!(
        store.create_release(&other).await,
        Err(StoreError::ReleaseExists(id)) if id == "1.9.0-aarch64-unknown-linux-gnu"
    ));

    let releases = store.releases().await.expect("releases list");
    let ids: Vec<&str> = releases.iter().map(|r| r.release.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1.10.0-aarch64-unknown-linux-gnu",
            "1.9.0-aarch64-unknown-linux-gnu",
            "1.2.3-aarch64-unknown-linux-gnu"
        ]
    );
    let stored = store
        .release("1.9.0-aarch64-unknown-linux-gnu")
        .await
        .expect("a release reads")
        .expect("the release is known");
    assert_eq!(stored.release, new_release("1.9.0", TARGET));
    assert!(!stored.artifact_stored);
    assert_eq!((stored.percent, stored.paused), (0, false));
    assert!(stored.sites.is_empty());
    assert_eq!(store.release("9.9.9-x").await.expect("a read"), None);
}

pub(crate) async fn a_rollout_change_keeps_what_it_does_not_name(store: &dyn Store) {
    let release = new_release("2.0.0", TARGET);
    store.create_release(&release).await.expect("registers");
    let id = release.id.as_str();
    let read = || async { store.release(id).await.expect("reads").expect("known") };

    store
        .set_artifact_stored(id)
        .await
        .expect("artifact stored");
    store
        .change_rollout(
            id,
            &RolloutChange {
                percent: Some(25),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("percent set");
    store
        .change_rollout(
            id,
            &RolloutChange {
                sites: Some(vec![site_a(), site_b()]),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("sites set");
    let record = read().await;
    assert!(record.artifact_stored);
    assert_eq!(record.percent, 25);
    assert_eq!(record.sites, vec![site_a(), site_b()]);
    assert!(!record.paused);

    store
        .change_rollout(
            id,
            &RolloutChange {
                paused: Some(true),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("paused");
    let record = read().await;
    assert!(record.paused);
    assert_eq!((record.percent, record.sites.len()), (25, 2));
    assert!(record.includes(&device_b(), &site_b()));

    for result in [
        store
            .change_rollout("3.0.0-x", &RolloutChange::default())
            .await,
        store.set_artifact_stored("3.0.0-x").await,
    ] {
        assert!(matches!(result, Err(StoreError::UnknownRelease(id)) if id == "3.0.0-x"));
    }
}

pub(crate) async fn updates_count_once_per_device_and_state_with_their_reasons(store: &dyn Store) {
    let release = new_release("1.1.0", TARGET);
    store.create_release(&release).await.expect("registers");
    let event = |device: DeviceId, state, reason: Option<&str>| UpdateEvent {
        release: release.id.clone(),
        device,
        state,
        reason: reason.map(str::to_owned),
        at: Timestamp(5000),
    };
    for (device, state, reason, new) in [
        (device_a(), UpdateState::Offered, None, true),
        (device_a(), UpdateState::Offered, None, false),
        (device_a(), UpdateState::Downloaded, None, true),
        (device_a(), UpdateState::Installed, None, true),
        (device_a(), UpdateState::Healthy, None, true),
        (device_a(), UpdateState::Healthy, None, false),
        (device_b(), UpdateState::Offered, None, true),
        (device_b(), UpdateState::Installed, None, true),
        (
            device_b(),
            UpdateState::RolledBack,
            Some("health check failed"),
            true,
        ),
        (
            device_b(),
            UpdateState::RolledBack,
            Some("said again"),
            false,
        ),
    ] {
        assert_eq!(
            store
                .record_update(&event(device.clone(), state, reason))
                .await
                .expect("records"),
            new,
            "{device} {state:?}"
        );
    }
    let mut unknown = event(device_a(), UpdateState::Healthy, None);
    unknown.release = "0.0.1-x".to_owned();
    assert!(!store.record_update(&unknown).await.expect("ignored"));

    let report = store.release_report(&release.id).await.expect("report");
    assert_eq!(
        report.counts,
        UpdateCounts {
            offered: 2,
            downloaded: 1,
            installed: 2,
            healthy: 1,
            rolled_back: 1,
            refused: 0,
        }
    );
    assert_eq!(
        report.rollbacks,
        vec![DeviceReason {
            device: device_b(),
            reason: Some("health check failed".to_owned()),
        }]
    );
    assert!(report.refusals.is_empty());
    assert_eq!(
        store.failed_releases(&device_b()).await.expect("reads"),
        vec![release.id.clone()]
    );
    assert!(store
        .failed_releases(&device_a())
        .await
        .expect("reads")
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// The operator interface: accounts, sessions, audit log, transfers

fn ui_user(name: &str, role: Role, kommune: Option<&str>) -> UiUser {
    UiUser {
        name: name.to_owned(),
        role,
        kommune: kommune.map(str::to_owned),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}"),
        created: Timestamp(1_000),
    }
}

pub(crate) async fn operator_accounts_are_created_once_and_sessions_expire(store: &dyn Store) {
    let kari = ui_user("kari", Role::Municipality, Some("4601"));
    store
        .create_user(&kari)
        .await
        .expect("the account is created");
    store
        .create_user(&ui_user("ops", Role::Operations, None))
        .await
        .expect("a second account is created");
    assert!(matches!(
        store.create_user(&ui_user("kari", Role::ReadOnly, None)).await,
        Err(StoreError::UserExists(name)) if name == "kari"
    ));
    assert_eq!(store.user("kari").await.expect("reads"), Some(kari.clone()));
    assert_eq!(store.user("nobody").await.expect("reads"), None);

    let (first, second) = ([1u8; 32], [2u8; 32]);
    store
        .create_session(&first, "kari", "csrf-1", Timestamp(2_000), Timestamp(1_000))
        .await
        .expect("the session is stored");
    let session = store
        .session(&first, Timestamp(1_999))
        .await
        .expect("reads")
        .expect("the session is live");
    assert_eq!(session.user, kari);
    assert_eq!(session.csrf, "csrf-1");
    assert_eq!(session.expires, Timestamp(2_000));
    assert_eq!(
        store
            .session(&first, Timestamp(2_000))
            .await
            .expect("reads"),
        None
    );
    assert_eq!(
        store
            .session(&[9; 32], Timestamp(1_500))
            .await
            .expect("reads"),
        None
    );

    // A new session sweeps out the expired one; a logout ends a live one.
    store
        .create_session(&second, "ops", "csrf-2", Timestamp(9_000), Timestamp(3_000))
        .await
        .expect("the second session is stored");
    assert_eq!(
        store.session(&first, Timestamp(0)).await.expect("reads"),
        None
    );
    assert!(store
        .session(&second, Timestamp(3_000))
        .await
        .expect("reads")
        .is_some());
    store.delete_session(&second).await.expect("logout");
    store
        .delete_session(&second)
        .await
        .expect("logging out twice is no error");
    assert_eq!(
        store
            .session(&second, Timestamp(3_000))
            .await
            .expect("reads"),
        None
    );
}

pub(crate) async fn the_audit_log_lists_newest_first(store: &dyn Store) {
    for n in 0..3 {
        store
            .append_audit(&AuditEntry {
                at: Timestamp(n),
                actor: "ops".to_owned(),
                action: format!("action-{n}"),
                target: "pi-1".to_owned(),
                detail: "why: \"quotes\" & <tags> stay as written".to_owned(),
            })
            .await
            .expect("the line is appended");
    }
    let log = store.audit_log(2).await.expect("reads");
    let actions: Vec<_> = log.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["action-2", "action-1"]);
    assert_eq!(log[0].detail, "why: \"quotes\" & <tags> stay as written");
    assert_eq!(log[0].at, Timestamp(2));
}

pub(crate) async fn each_applied_batch_is_logged_as_a_transfer_once(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let first = students_delta(&secret, vec![student("1", "Ada"), student("2", "Bo")]);
    applied(store, first.clone(), 10).await;
    let head = store.chain_head(&device_a()).await.expect("the head reads");
    let second = Batch {
        bytes: 12_700,
        ..batch(
            device_a(),
            site_a(),
            head,
            delete_students(&secret, &["2"]),
            20,
        )
    };
    assert!(matches!(store.apply(second).await, Ok(Outcome::Applied(_))));
    // A replay of the first batch is acked but applies nothing, so it is no transfer.
    let replay = store
        .apply(batch(device_a(), site_a(), ChainHead::genesis(), first, 30))
        .await
        .expect("a replay is acked");
    assert!(matches!(replay, Outcome::AlreadyApplied { .. }));

    let transfers = store.transfers(&site_a(), 10).await.expect("reads");
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert_eq!(transfers[0].at, Timestamp(20));
    assert_eq!(transfers[0].seq, Seq(transfers[1].seq.0 + 1));
    assert_eq!(transfers[0].changes, changes(0, 0, 1, 0));
    assert_eq!(transfers[0].bytes, 12_700, "each batch keeps its own size");
    assert_eq!(transfers[1].seq, ChainHead::genesis().next_seq);
    assert_eq!(transfers[1].changes, changes(2, 0, 0, 0));
    assert_eq!(transfers[1].bytes, 1000);
    assert!(!transfers[1].snapshot);
    assert_eq!(transfers[1].device, device_a());
    assert!(store
        .transfers(&site_b(), 10)
        .await
        .expect("reads")
        .is_empty());
    assert_eq!(store.transfers(&site_a(), 1).await.expect("reads").len(), 1);
}

pub(crate) async fn transfers_since_a_time_are_listed_oldest_first_with_their_site(
    store: &dyn Store,
) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    applied(
        store,
        students_delta(&secret_a(), vec![student("1", "Ada")]),
        10,
    )
    .await;
    let outcome = store
        .apply(batch(
            device_b(),
            site_b(),
            ChainHead::genesis(),
            students_delta(&secret_b(), vec![student("9", "Ola")]),
            20,
        ))
        .await
        .expect("site B's batch applies");
    assert!(matches!(outcome, Outcome::Applied(_)));
    applied(store, delete_students(&secret_a(), &["1"]), 30).await;

    let since = store.transfers_since(Timestamp(20)).await.expect("reads");
    let seen: Vec<_> = since
        .iter()
        .map(|(site, transfer)| (site.clone(), transfer.at))
        .collect();
    assert_eq!(seen, [(site_b(), Timestamp(20)), (site_a(), Timestamp(30))]);
    assert_eq!(since[0].1.device, device_b());
    assert_eq!(since[1].1.changes, changes(0, 0, 1, 0));
    assert_eq!(
        store
            .transfers_since(Timestamp(0))
            .await
            .expect("reads")
            .len(),
        3
    );
    assert!(store
        .transfers_since(Timestamp(31))
        .await
        .expect("reads")
        .is_empty());
}

fn county(code: &str) -> Fylke {
    Fylke::parse(code).expect("a two-digit county")
}

fn new_window(code: &str, name: &str, opens: i64, closes: i64) -> NewWindow {
    NewWindow {
        fylke: county(code),
        name: name.to_owned(),
        opens: Timestamp(opens),
        closes: Timestamp(closes),
        created: Timestamp(5),
        created_by: "ops".to_owned(),
    }
}

pub(crate) async fn transfer_windows_are_created_listed_by_county_and_read_by_id(
    store: &dyn Store,
) {
    let create = |window: NewWindow| async move {
        store
            .create_window(&window)
            .await
            .expect("the window is created")
    };
    let later = create(new_window("46", "Inntak 2028", 3_000, 4_000)).await;
    let oslo = create(new_window("03", "Inntak 2027", 1_000, 2_000)).await;
    let first = create(new_window("46", "Inntak 2027", 1_000, 2_000)).await;
    assert_eq!(first.name, "Inntak 2027");
    assert_eq!(first.fylke.to_string(), "46");
    assert_eq!(
        (first.opens, first.closes),
        (Timestamp(1_000), Timestamp(2_000))
    );
    assert_eq!(
        (first.created, first.created_by.as_str()),
        (Timestamp(5), "ops")
    );
    assert!(first.id != later.id && first.id != oslo.id);

    let ids = |windows: Vec<TransferWindow>| windows.iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.windows(None).await.expect("reads")),
        [oslo.id, first.id, later.id],
        "by county, then by opening"
    );
    assert_eq!(
        ids(store.windows(Some(county("46"))).await.expect("reads")),
        [first.id, later.id]
    );
    assert!(store
        .windows(Some(county("11")))
        .await
        .expect("reads")
        .is_empty());
    assert_eq!(
        store.window(later.id).await.expect("reads"),
        Some(later.clone())
    );
    assert_eq!(store.window(later.id + 1000).await.expect("reads"), None);
}

pub(crate) async fn a_window_closing_before_it_opens_or_overlapping_its_county_is_refused(
    store: &dyn Store,
) {
    let existing = store
        .create_window(&new_window("46", "Inntak 2027", 1_000, 2_000))
        .await
        .expect("the first window is created");
    for (opens, closes) in [(2_000, 2_000), (2_000, 1_999)] {
        assert!(matches!(
            store.create_window(&new_window("46", "Bad", opens, closes)).await,
            Err(StoreError::WindowCloses { opens: o, closes: c })
                if o == Timestamp(opens) && c == Timestamp(closes)
        ));
    }
    for name in ["", "   ", &"x".repeat(101)] {
        assert!(matches!(
            store
                .create_window(&new_window("46", name, 5_000, 6_000))
                .await,
            Err(StoreError::WindowName)
        ));
    }
    for (opens, closes) in [(1_500, 2_500), (500, 1_001), (1_200, 1_300), (0, 9_000)] {
        let refused = store
            .create_window(&new_window("46", "Overlapping", opens, closes))
            .await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::WindowOverlap { fylke, existing: id })
                    if *fylke == county("46") && *id == existing.id
            ),
            "{opens}..{closes}: {refused:?}"
        );
    }
    // Another county may use the same period; a window may open when the last one closes.
    for window in [
        new_window("03", "Inntak 2027", 1_000, 2_000),
        new_window("46", "Inntak 2027, second round", 2_000, 3_000),
        new_window("46", "Before", 0, 1_000),
    ] {
        store
            .create_window(&window)
            .await
            .expect("a window not overlapping its county's");
    }
    assert_eq!(
        store
            .windows(Some(county("46")))
            .await
            .expect("reads")
            .len(),
        3
    );
}
