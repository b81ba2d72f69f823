//! Store suite cases of one area. Sealing at rest: the keys through rotations of the KEK and
//! of the records key, an interrupted reseal resumed, a rotation while another instance
//! applies and reseals, and a wrong KEK refused. Each case unlocks its own keys, so it runs
//! on the plain fixture of every backend.

use super::*;
use skolebro_protocol::NationalId;

use crate::seal::{Kek, SealError, SealScope};
use crate::store::sealing::{
    follow, reseal, reseal_in_background, rotate_kek, rotate_records_key, unlock,
};

/// A roster with personal data in every sealed field: enough rows for several batches.
fn sealed_roster() -> Roster {
    // Synthetic national ids (month + 80), from tests/data/clean/elevliste.csv.
    const IDS: [&str; 9] = [
        "16881774198",
        "25811885633",
        "01911577689",
        "16891661995",
        "18911555162",
        "22841365414",
        "22831368652",
        "13861274963",
        "06891961624",
    ];
    let mut students = Vec::new();
    let mut enrollments = Vec::new();
    for (n, id) in IDS.into_iter().enumerate() {
        let mut record = student(id, "Ingrid");
        record.national_id = Some(NationalId::parse(id).expect("a valid synthetic id"));
        record.email = Some(format!("elev{n}@skule.example.no").into());
        students.push(record);
        enrollments.push(enrollment(&format!("{id}@46505"), id, "10A"));
    }
    let mut roster = Roster {
        schools: vec![school()],
        students,
        groups: vec![group("10A")],
        enrollments,
    };
    crate::store::records::sort_roster(&mut roster);
    roster
}

pub(crate) async fn a_records_key_rotation_interrupted_and_resumed_keeps_every_record_readable(
    store: &dyn Store,
) {
    let kek = Kek::generate().expect("a key");
    let scope = SealScope::IdsAndNames;
    unlock(store, &kek, scope, Timestamp(1))
        .await
        .expect("unlocks");
    enroll_a(store).await;
    let roster = sealed_roster();
    applied(store, Payload::Snapshot(roster.clone()), 1000).await;
    assert_eq!(current_a(store).await, roster);
    assert_eq!(store.rows_to_reseal().await.expect("counts"), 0);

    let new = rotate_records_key(store, &kek, scope, Timestamp(2))
        .await
        .expect("rotates");
    assert_eq!(new, 3, "records key 1 and lookup key 2 came first");
    // 18 rows (9 students, 9 enrollments) under the old key; two batches of 4, then stop.
    let left = reseal(store, 4, Some(2)).await.expect("reseals part");
    assert_eq!(left, 10);
    // Half resealed: every record still reads, and a student's enrollments still find it.
    assert_eq!(current_a(store).await, roster);
    let keys: Vec<_> = roster
        .students
        .iter()
        .map(|s| s.source_key.clone())
        .collect();
    let found = store
        .enrollments_of(&site_a(), &keys)
        .await
        .expect("enrollments read");
    assert_eq!(found.len(), 9);
    assert!(
        !store.retire_seal_key(1).await.expect("answers"),
        "a key still sealing rows stays"
    );

    // A new batch meanwhile is sealed under the new key.
    let mut changed = roster.clone();
    changed.students[0].given_name = "Solveig".into();
    applied(store, Payload::Snapshot(changed.clone()), 2000).await;

    let left = reseal(store, 4, None).await.expect("resumes");
    assert_eq!(left, 0);
    assert!(store.retire_seal_key(1).await.expect("retires"));
    assert_eq!(current_a(store).await, changed);
    assert_eq!(as_of_a(store, 1500).await, roster, "the past reads too");
}

pub(crate) async fn a_kek_rotation_rewraps_the_keys_and_the_old_kek_no_longer_opens_them(
    store: &dyn Store,
) {
    let old = Kek::generate().expect("a key");
    let scope = SealScope::Ids;
    unlock(store, &old, scope, Timestamp(1))
        .await
        .expect("unlocks");
    enroll_a(store).await;
    let roster = sealed_roster();
    applied(store, Payload::Snapshot(roster.clone()), 1000).await;

    let new = Kek::generate().expect("a key");
    rotate_kek(store, &old, &new).await.expect("rotates");
    assert!(store
        .seal_keys()
        .await
        .expect("keys read")
        .iter()
        .all(|key| key.kek == new.id()));
    match unlock(store, &old, scope, Timestamp(2)).await {
        Err(StoreError::Seal(SealError::WrongKek { given, stored })) => {
            assert_eq!((given, stored), (old.id(), new.id()));
        }
        other => panic!("the old KEK opened the keys: {other:?}"),
    }
    unlock(store, &new, scope, Timestamp(3))
        .await
        .expect("the new KEK opens them");
    assert_eq!(current_a(store).await, roster);
    assert_eq!(
        store.rows_to_reseal().await.expect("counts"),
        0,
        "no row rewritten"
    );
}

pub(crate) async fn clear_rows_from_before_sealing_read_and_are_sealed_by_the_reseal_job(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let roster = sealed_roster();
    applied(store, Payload::Snapshot(roster.clone()), 1000).await;
    assert!(store.has_clear_records().await.expect("answers"));
    unlock(
        store,
        &Kek::generate().expect("a key"),
        SealScope::Ids,
        Timestamp(1),
    )
    .await
    .expect("unlocks");
    assert_eq!(
        current_a(store).await,
        roster,
        "clear rows read as they are"
    );
    assert_eq!(store.rows_to_reseal().await.expect("counts"), 18);
    assert_eq!(reseal(store, 5, None).await.expect("reseals"), 0);
    assert!(!store.has_clear_records().await.expect("answers"));
    assert_eq!(current_a(store).await, roster);
    let keys: Vec<_> = roster
        .students
        .iter()
        .map(|s| s.source_key.clone())
        .collect();
    assert_eq!(
        store
            .enrollments_of(&site_a(), &keys)
            .await
            .expect("reads")
            .len(),
        9
    );
}

/// Rotates the records key through `store` (a `keys rotate-dek` process) while `other`, a
/// second handle on the same database standing for a running central, goes on applying,
/// following the key and resealing between its applies as its background task does.
pub(crate) async fn a_records_key_rotated_while_another_instance_applies_leaves_every_row_readable(
    store: &dyn Store,
    other: &dyn Store,
) {
    let kek = Kek::generate().expect("a key");
    let scope = SealScope::IdsAndNames;
    unlock(store, &kek, scope, Timestamp(1))
        .await
        .expect("unlocks");
    unlock(other, &kek, scope, Timestamp(1))
        .await
        .expect("the running instance unlocks the same keys");
    enroll_a(store).await;
    let roster = sealed_roster();
    applied(other, Payload::Snapshot(roster.clone()), 1000).await;

    // Rotated by the CLI; the running instance has not looked yet: it applies under the old
    // key, and refuses to reseal under it.
    let new = rotate_records_key(store, &kek, scope, Timestamp(2))
        .await
        .expect("rotates");
    let mut last = roster.clone();
    last.students[0].given_name = "Solveig".into();
    applied(other, Payload::Snapshot(last.clone()), 2000).await;
    assert!(matches!(
        other.reseal(0, 4).await,
        Err(StoreError::Seal(SealError::Rotated))
    ));

    // Both reseal at once while the running instance goes on applying.
    let applying = async {
        let mut last = last.clone();
        for n in 1..6 {
            last.students[n].given_name = format!("Endret{n}").into();
            applied(other, Payload::Snapshot(last.clone()), 2000 + n as i64).await;
            follow(other, &kek, scope).await.expect("follows the key");
            reseal_in_background(other, std::time::Duration::ZERO)
                .await
                .expect("the running instance reseals");
        }
        last
    };
    let resealing = async { reseal(store, 4, None).await.expect("reseals") };
    let (last, _) = tokio::join!(applying, resealing);

    // The running instance's next tick: the new key in force, its old-key rows resealed.
    follow(other, &kek, scope).await.expect("follows the key");
    assert_eq!(other.records_key_in_force(), Some(new));
    reseal_in_background(other, std::time::Duration::ZERO)
        .await
        .expect("reseals what it wrote under the old key");
    assert_eq!(store.rows_to_reseal().await.expect("counts"), 0);
    assert_eq!(other.rows_to_reseal().await.expect("counts"), 0);
    for handle in [store, other] {
        assert_eq!(current_a(handle).await, last);
        assert_eq!(as_of_a(handle, 1500).await, roster, "the past reads too");
    }
    assert!(store.retire_seal_key(1).await.expect("retires"));
    assert_eq!(current_a(other).await, last);

    // Rotated and resealed again, and the key the instance still seals under retired before
    // it looked: its apply is refused rather than leave rows no key opens.
    rotate_records_key(store, &kek, scope, Timestamp(3))
        .await
        .expect("rotates");
    assert_eq!(reseal(store, 4, None).await.expect("reseals"), 0);
    assert!(store.retire_seal_key(new).await.expect("retires"));
    let mut refused = last.clone();
    refused.students[8].given_name = "Refused".into();
    match send_a(other, Payload::Snapshot(refused.clone()), 3000).await {
        Err(StoreError::Seal(SealError::UnknownKey(key))) => assert_eq!(key, new),
        outcome => panic!("applied under a retired key: {outcome:?}"),
    }
    assert_eq!(current_a(store).await, last);
    follow(other, &kek, scope).await.expect("follows the key");
    applied(other, Payload::Snapshot(refused.clone()), 3000).await;
    assert_eq!(current_a(store).await, refused);
}
