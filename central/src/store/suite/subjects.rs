//! Store suite cases of one area: a pupil's records found by national id across sites,
//! erased with a tombstone, and a later batch carrying the pupil held back.

use skolebro_protocol::NationalId;

use crate::subject;

use super::*;

const KARI: &str = "02871662943";
const OLA: &str = "12921057820";

fn pupil(key: &str, given_name: &str, national_id: &str) -> Student {
    Student {
        national_id: Some(NationalId::parse(national_id).expect("a synthetic national id")),
        ..student(key, given_name)
    }
}

/// Site A with Kari (changed once) and Ola, each enrolled; site B with Kari under
/// another key.
async fn two_sites(store: &dyn Store) {
    enroll_a(store).await;
    enroll(store, &site_b(), &device_b(), &secret_b(), 2).await;
    let secret = secret_a();
    let first = Payload::Delta(Delta {
        schools: upserts(&secret, &[school()]),
        students: upserts(
            &secret,
            &[pupil("k1", "Kari", KARI), pupil("o1", "Ola", OLA)],
        ),
        groups: upserts(&secret, &[group("10a")]),
        enrollments: upserts(
            &secret,
            &[
                enrollment("e-k1", "k1", "10a"),
                enrollment("e-o1", "o1", "10a"),
            ],
        ),
    });
    applied(store, first, 1_000).await;
    let renamed = students_delta(&secret, vec![pupil("k1", "Karianne", KARI)]);
    applied(store, renamed, 2_000).await;
    let head = store.chain_head(&device_b()).await.expect("the head reads");
    let at_b = students_delta(&secret_b(), vec![pupil("kb", "Kari", KARI)]);
    store
        .apply(batch(device_b(), site_b(), head, at_b, 3_000))
        .await
        .expect("site B's batch applies");
}

fn kari() -> NationalId {
    NationalId::parse(KARI).expect("a synthetic national id")
}

pub(crate) async fn a_subject_export_finds_every_version_at_every_site(store: &dyn Store) {
    two_sites(store).await;
    let export = subject::export(store, &kari(), None, Timestamp(4_000))
        .await
        .expect("the export reads");
    assert_eq!(export.sites(), vec![site_a(), site_b()]);
    // Site A: the student (two versions) and its enrollment; site B: the student.
    assert_eq!(export.records.len(), 3);
    assert_eq!(export.versions(), 4);
    let names: Vec<String> = export
        .records
        .iter()
        .flat_map(|record| record.versions.iter())
        .filter_map(|version| match &version.record {
            AnyRecord::Student(student) => Some(student.given_name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Kari", "Karianne", "Kari"]);
    assert!(export
        .records
        .iter()
        .all(|record| record.entity != Entity::Enrollment
            || matches!(&record.versions[0].record,
                AnyRecord::Enrollment(e) if e.student == "k1")));
    assert_eq!(export.subject, kari().masked());

    let only_b = [site_b()];
    let scoped = subject::export(store, &kari(), Some(&only_b), Timestamp(4_000))
        .await
        .expect("the export reads");
    assert_eq!(scoped.sites(), vec![site_b()]);
}

pub(crate) async fn erasing_a_subject_deletes_every_version_and_leaves_a_tombstone(
    store: &dyn Store,
) {
    two_sites(store).await;
    let erased = subject::erase(
        store,
        &kari(),
        None,
        "dpo",
        "art. 17 request",
        Timestamp(5_000),
    )
    .await
    .expect("the erasure runs");
    assert_eq!(erased.versions, 4);
    assert_eq!(erased.sites, vec![site_a(), site_b()]);
    let after = subject::export(store, &kari(), None, Timestamp(6_000))
        .await
        .expect("the export reads");
    assert!(after.records.is_empty());
    assert_eq!(after.tombstones.len(), 2);
    // Ola and his enrollment stay.
    let roster = current_a(store).await;
    assert_eq!(roster.students.len(), 1);
    assert_eq!(roster.students[0].given_name, "Ola");
    assert_eq!(roster.enrollments.len(), 1);

    let tombstones = store.tombstones().await.expect("the tombstones read");
    assert_eq!(tombstones.len(), 2);
    for tombstone in &tombstones {
        assert!(
            !tombstone.subject.contains(KARI),
            "no clear id: {tombstone:?}"
        );
        assert!(tombstone
            .student_keys
            .iter()
            .all(|key| !key.starts_with('k')));
        assert_eq!(tombstone.erased_by, "dpo");
        assert_eq!(tombstone.reason, "art. 17 request");
        assert_eq!(tombstone.returned, 0);
    }
    let audit = store.audit_log(10).await.expect("the audit log reads");
    assert!(audit.iter().any(|line| line.action == "subject_erase"
        && line.target == kari().masked()
        && line.detail == "art. 17 request"));
    assert!(audit.iter().all(|line| !line.target.contains(KARI)));
}

pub(crate) async fn a_batch_carrying_an_erased_subject_is_held_back_until_the_tombstone_is_cleared(
    store: &dyn Store,
) {
    two_sites(store).await;
    subject::erase(store, &kari(), None, "dpo", "request", Timestamp(5_000))
        .await
        .expect("the erasure runs");
    // The school's next snapshot still has Kari and her enrollment.
    let snapshot = Payload::Snapshot(Roster {
        schools: vec![school()],
        students: vec![pupil("k1", "Karianne", KARI), pupil("o1", "Ola", OLA)],
        groups: vec![group("10a")],
        enrollments: vec![
            enrollment("e-k1", "k1", "10a"),
            enrollment("e-o1", "o1", "10a"),
        ],
    });
    let changes = applied(store, snapshot.clone(), 6_000).await;
    assert_eq!(changes.added, 0, "nothing of Kari is stored again");
    let roster = current_a(store).await;
    assert_eq!(roster.students.len(), 1);
    assert_eq!(roster.enrollments.len(), 1);
    let tombstones = store.tombstones().await.expect("the tombstones read");
    let at_a = tombstones
        .iter()
        .find(|tombstone| tombstone.site == site_a())
        .expect("site A's tombstone");
    assert_eq!(
        at_a.returned, 2,
        "the student and the enrollment were held back"
    );
    assert_eq!(at_a.returned_at, Some(Timestamp(6_000)));

    // Cleared: the next snapshot stores her again.
    let hash = store.subject_hash(KARI);
    assert!(
        subject::clear_tombstone(store, &site_a(), &hash, "dpo", "came back")
            .await
            .expect("the tombstone clears")
    );
    let changes = applied(store, snapshot, 7_000).await;
    assert_eq!(changes.added, 2);
    assert_eq!(current_a(store).await.students.len(), 2);
    let left = store.tombstones().await.expect("the tombstones read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].site, site_b());
    // A delta upserting Kari at site B is held back too, by her key there.
    let delta = students_delta(&secret_b(), vec![pupil("kb", "Kari B", KARI)]);
    let head = store.chain_head(&device_b()).await.expect("the head reads");
    store
        .apply(batch(device_b(), site_b(), head, delta, 8_000))
        .await
        .expect("site B's batch applies");
    assert!(store
        .current_roster(&site_b())
        .await
        .expect("site B's roster reads")
        .students
        .is_empty());
}

pub(crate) async fn an_erased_pupil_under_a_new_key_is_held_back_with_the_enrollment_naming_it(
    store: &dyn Store,
) {
    two_sites(store).await;
    subject::erase(store, &kari(), None, "dpo", "request", Timestamp(5_000))
        .await
        .expect("the erasure runs");
    // The school's system gives Kari a key the tombstone does not list; her national id
    // still finds her, and her enrollment names only the new key.
    let snapshot = Payload::Snapshot(Roster {
        schools: vec![school()],
        students: vec![pupil("k2", "Karianne", KARI), pupil("o1", "Ola", OLA)],
        groups: vec![group("10a")],
        enrollments: vec![
            enrollment("e-k2", "k2", "10a"),
            enrollment("e-o1", "o1", "10a"),
        ],
    });
    applied(store, snapshot, 6_000).await;
    let roster = current_a(store).await;
    assert_eq!(roster.students.len(), 1);
    assert_eq!(roster.enrollments.len(), 1, "{:?}", roster.enrollments);
    assert_eq!(roster.enrollments[0].student, "o1");
    let tombstones = store.tombstones().await.expect("the tombstones read");
    let at_a = tombstones
        .iter()
        .find(|tombstone| tombstone.site == site_a())
        .expect("site A's tombstone");
    assert_eq!(at_a.returned, 2, "the student and her enrollment");
}
