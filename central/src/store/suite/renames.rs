//! Store cases for key continuity: a delta that renames a record (the source gave it a new
//! key and said which key it replaces) keeps one record with one identity, in both backends.

use super::*;

/// The delta that renames student `from` to `to` (with its enrollment `from@46505` to
/// `to@46505` in group `group`), as the agent's differ sends it: the new handles upserted,
/// the old ones deleted, the pairs in `renames`.
fn rename_delta(
    secret: &SiteSecret,
    from: &str,
    to: &str,
    given_name: &str,
    group: &str,
) -> Payload {
    let renamed = student(to, given_name);
    let enrollment = enrollment(&format!("{to}@46505"), to, group);
    let mut students = upserts(secret, &[renamed]);
    let old_student = secret.handle(Entity::Student, from);
    students.deletes = vec![old_student];
    students.renames = vec![(old_student, secret.handle(Entity::Student, to))];
    let mut enrollments = upserts(secret, std::slice::from_ref(&enrollment));
    let old_enrollment = secret.handle(Entity::Enrollment, &format!("{from}@46505"));
    enrollments.deletes = vec![old_enrollment];
    enrollments.renames = vec![(old_enrollment, handle(secret, &enrollment))];
    Payload::Delta(Delta {
        students,
        enrollments,
        ..Delta::default()
    })
}

/// The current records of one kind at site A.
async fn current_of(store: &dyn Store, entity: Entity) -> Vec<CurrentRecord> {
    store
        .current_records(&site_a(), entity)
        .await
        .expect("current records read")
}

/// Device A enrolled, and site A holding one pupil, Kari, under the key `old-1`.
async fn kari_under_her_first_key(store: &dyn Store) -> SiteSecret {
    enroll_a(store).await;
    let secret = secret_a();
    applied(
        store,
        students_delta(&secret, vec![student("old-1", "Kari")]),
        1_000,
    )
    .await;
    secret
}

pub(crate) async fn a_rename_keeps_the_identity_and_leaves_one_record(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let first = Payload::Delta(Delta {
        schools: upserts(&secret, &[school()]),
        students: upserts(&secret, &[student("old-1", "Kari")]),
        groups: upserts(&secret, &[group("46505-1A")]),
        enrollments: upserts(&secret, &[enrollment("old-1@46505", "old-1", "46505-1A")]),
    });
    applied(store, first, 1_000).await;
    let old_student = secret.handle(Entity::Student, "old-1");
    let old_enrollment = secret.handle(Entity::Enrollment, "old-1@46505");

    let renamed = applied(
        store,
        rename_delta(&secret, "old-1", "new-1", "Kari", "46505-1A"),
        2_000,
    )
    .await;
    assert_eq!(
        renamed,
        Changes {
            renamed: 2,
            ..Changes::default()
        },
        "a rename is neither an addition nor a removal"
    );

    let students = current_of(store, Entity::Student).await;
    assert_eq!(students.len(), 1, "one pupil, not two: {students:?}");
    assert_eq!(students[0].handle, secret.handle(Entity::Student, "new-1"));
    assert_eq!(students[0].identity, old_student);
    let enrollments = current_of(store, Entity::Enrollment).await;
    assert_eq!(enrollments.len(), 1);
    assert_eq!(enrollments[0].identity, old_enrollment);
    let identities = store
        .renamed_identities(&site_a())
        .await
        .expect("identities read");
    assert_eq!(identities.len(), 2);
    assert_eq!(
        identities.get(&(Entity::Student, students[0].handle)),
        Some(&old_student)
    );

    // The old version is closed as renamed, pointing at the handle the record continues under.
    let history = store
        .history(&site_a(), Entity::Student, &old_student)
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].valid_to, Some(Timestamp(2_000)));
    assert_eq!(history[0].renamed_to, Some(students[0].handle));
    let transfers = store.transfers(&site_a(), 1).await.expect("transfers read");
    assert_eq!(transfers[0].changes.renamed, 2);
    assert_eq!(transfers[0].changes.removed, 0);

    // New content under the new key, a snapshot, and a second rename keep the identity.
    assert_eq!(
        applied(
            store,
            students_delta(&secret, vec![student("new-1", "Kari Anne")]),
            3_000
        )
        .await,
        changes(0, 1, 0, 0)
    );
    let snapshot = Roster {
        schools: vec![school()],
        students: vec![student("new-1", "Kaja")],
        groups: vec![group("46505-1A")],
        enrollments: vec![enrollment("new-1@46505", "new-1", "46505-1A")],
    };
    applied(store, Payload::Snapshot(snapshot), 4_000).await;
    applied(
        store,
        rename_delta(&secret, "new-1", "newer-1", "Kaja", "46505-1A"),
        5_000,
    )
    .await;
    let students = current_of(store, Entity::Student).await;
    assert_eq!(students.len(), 1);
    assert_eq!(
        students[0].handle,
        secret.handle(Entity::Student, "newer-1")
    );
    assert_eq!(
        students[0].identity, old_student,
        "still the first identity"
    );

    // Renamed back to its first key, the record is its own identity again.
    applied(
        store,
        rename_delta(&secret, "newer-1", "old-1", "Kaja", "46505-1A"),
        6_000,
    )
    .await;
    let students = current_of(store, Entity::Student).await;
    assert_eq!(students[0].handle, old_student);
    assert_eq!(students[0].identity, old_student);
    assert!(store
        .renamed_identities(&site_a())
        .await
        .expect("identities read")
        .is_empty());
}

pub(crate) async fn a_rename_without_its_delete_is_refused_and_changes_nothing(store: &dyn Store) {
    let secret = kari_under_her_first_key(store).await;
    let head = store.chain_head(&device_a()).await.expect("the head reads");
    let Payload::Delta(mut half) = rename_delta(&secret, "old-1", "new-1", "Kari", "1A") else {
        unreachable!("built as a delta")
    };
    half.students.deletes.clear();
    let result = send_a(store, Payload::Delta(half), 2_000).await;
    assert!(
        matches!(
            result,
            Err(StoreError::UnpairedRename {
                entity: Entity::Student,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        store.chain_head(&device_a()).await.expect("the head reads"),
        head
    );
    assert_eq!(
        current_a(store).await,
        roster_of_students(vec![student("old-1", "Kari")])
    );
}

pub(crate) async fn a_new_record_under_a_renamed_records_first_key_gets_an_identity_of_its_own(
    store: &dyn Store,
) {
    let secret = kari_under_her_first_key(store).await;
    let class = Payload::Delta(Delta {
        schools: upserts(&secret, &[school()]),
        groups: upserts(&secret, &[group("46505-1A")]),
        ..Delta::default()
    });
    applied(store, class, 1_500).await;
    applied(
        store,
        rename_delta(&secret, "old-1", "new-1", "Kari", "46505-1A"),
        2_000,
    )
    .await;
    // Another pupil comes to carry the key Kari had first.
    applied(
        store,
        students_delta(&secret, vec![student("old-1", "Per")]),
        3_000,
    )
    .await;
    let students = current_of(store, Entity::Student).await;
    assert_eq!(students.len(), 2);
    let identities: std::collections::HashSet<_> =
        students.iter().map(|record| record.identity).collect();
    assert_eq!(
        identities.len(),
        2,
        "two pupils, two identities: {students:?}"
    );
    let kari = students
        .iter()
        .find(|record| record.handle == secret.handle(Entity::Student, "new-1"))
        .expect("Kari is current");
    assert_eq!(kari.identity, secret.handle(Entity::Student, "old-1"));

    // A snapshot that keeps both changes neither identity.
    applied(
        store,
        Payload::Snapshot(roster_of_students(vec![
            student("new-1", "Kari"),
            student("old-1", "Per"),
        ])),
        4_000,
    )
    .await;
    let after: std::collections::HashSet<_> = current_of(store, Entity::Student)
        .await
        .iter()
        .map(|record| record.identity)
        .collect();
    assert_eq!(after, identities);
}
