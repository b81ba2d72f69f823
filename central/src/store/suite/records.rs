//! Store suite cases of one area. Roster records: applying batches (deltas, snapshots, replays,
//! gaps, forks), reading the current and past roster, counts, current records and schools, and
//! the transfer log.

use super::*;

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
        Ok(ApplyOutcome::Applied(_))
    ));
    let head = ChainHead::after(Seq(1), digest(Seq(1)));

    let mut again = first;
    again.at = Timestamp(2000);
    assert_eq!(
        store
            .apply(again.clone())
            .await
            .expect("a replay is no error"),
        ApplyOutcome::AlreadyApplied { head }
    );
    // Even a replay claiming other content is acked without applying it.
    again.payload = students_delta(&secret, vec![student("s1", "Mallory")]);
    assert_eq!(
        store.apply(again).await.expect("a replay is no error"),
        ApplyOutcome::AlreadyApplied { head }
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
        .filter(|outcome| matches!(outcome, ApplyOutcome::Applied(_)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    let head = ChainHead::after(Seq(1), digest(Seq(1)));
    for outcome in outcomes {
        assert!(
            matches!(outcome, ApplyOutcome::Applied(_))
                || outcome == ApplyOutcome::AlreadyApplied { head }
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
            renames: Vec::new(),
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
            renames: Vec::new(),
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

pub(crate) async fn a_class_move_naming_a_pupil_central_holds_is_stored_and_one_it_lacks_refused(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let secret = secret_a();
    let first = Payload::Delta(Delta {
        schools: upserts(&secret, &[school()]),
        students: upserts(&secret, &[student("s1", "Ola")]),
        groups: upserts(&secret, &[group("46505-1A"), group("46505-2B")]),
        enrollments: upserts(&secret, &[enrollment("s1@46505", "s1", "46505-1A")]),
    });
    applied(store, first, 1_000).await;

    // A delta pull's class move: the enrollment alone, naming a pupil, school and class the
    // batch does not carry but central holds.
    let moved = enrollment("s1@46505", "s1", "46505-2B");
    let mut enrollments = upserts(&secret, std::slice::from_ref(&moved));
    enrollments.sort();
    let move_only = Payload::Delta(Delta {
        enrollments,
        ..Delta::default()
    });
    assert_eq!(applied(store, move_only, 2_000).await, changes(0, 1, 0, 0));
    assert_eq!(current_a(store).await.enrollments, [moved]);

    // What central does not hold, or what the same delta deletes, is named nowhere: refused,
    // and nothing of the batch is stored.
    let head = store.chain_head(&device_a()).await.expect("the head");
    let stranger = enrollment("s9@46505", "s9", "46505-1A");
    let strangers_move = Payload::Delta(Delta {
        enrollments: upserts(&secret, std::slice::from_ref(&stranger)),
        ..Delta::default()
    });
    let unknown_class = Payload::Delta(Delta {
        students: upserts(&secret, &[student("s2", "Kari")]),
        enrollments: upserts(&secret, &[enrollment("s2@46505", "s2", "46505-9Z")]),
        ..Delta::default()
    });
    let mut closed = upserts(&secret, &[enrollment("s1@46505", "s1", "46505-1A")]);
    closed.sort();
    let mut groups = upserts::<Group>(&secret, &[]);
    groups.deletes = vec![secret.handle(Entity::Group, "46505-1A")];
    let into_a_closed_class = Payload::Delta(Delta {
        groups,
        enrollments: closed,
        ..Delta::default()
    });
    let snapshot_without_the_pupil = Payload::Snapshot(Roster {
        schools: vec![school()],
        groups: vec![group("46505-1A")],
        enrollments: vec![stranger],
        ..Roster::default()
    });
    for (payload, names) in [
        (strangers_move, Entity::Student),
        (unknown_class, Entity::Group),
        (into_a_closed_class, Entity::Group),
        (snapshot_without_the_pupil, Entity::Student),
    ] {
        let result = send_a(store, payload, 3_000).await;
        assert!(
            matches!(
                result,
                Err(StoreError::DanglingReference { entity: Entity::Enrollment, names: n, .. })
                    if n == names
            ),
            "{result:?}"
        );
    }
    assert_eq!(store.chain_head(&device_a()).await.expect("the head"), head);
    let roster = current_a(store).await;
    assert_eq!((roster.students.len(), roster.groups.len()), (1, 2));
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
    assert_eq!(outcome, ApplyOutcome::Applied(changes(1, 0, 0, 0)));

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
            identity: handle(&secret, &student("s2", "Kaja")),
        },
        CurrentRecord {
            handle: handle(&secret, &student("s3", "Per")),
            record: AnyRecord::Student(student("s3", "Per")),
            modified: Timestamp(4_000),
            identity: handle(&secret, &student("s3", "Per")),
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
        renames: Vec::new(),
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

pub(crate) async fn each_applied_batch_is_logged_as_a_transfer_once(store: &dyn Store) {
    enroll_a(store).await;
    let secret = secret_a();
    let first = students_delta(&secret, vec![student("1", "Ada"), student("2", "Bo")]);
    applied(store, first.clone(), 10).await;
    let head = store.chain_head(&device_a()).await.expect("the head reads");
    let second = IncomingBatch {
        bytes: 12_700,
        ..batch(
            device_a(),
            site_a(),
            head,
            delete_students(&secret, &["2"]),
            20,
        )
    };
    assert!(matches!(
        store.apply(second).await,
        Ok(ApplyOutcome::Applied(_))
    ));
    // A replay of the first batch is acked but applies nothing, so it is no transfer.
    let replay = store
        .apply(batch(device_a(), site_a(), ChainHead::genesis(), first, 30))
        .await
        .expect("a replay is acked");
    assert!(matches!(replay, ApplyOutcome::AlreadyApplied { .. }));

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

/// Site A's batches at 10 (adding a student) and 30 (deleting it), site B's at 20.
async fn transfers_at_10_20_and_30(store: &dyn Store) {
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
    assert!(matches!(outcome, ApplyOutcome::Applied(_)));
    applied(store, delete_students(&secret_a(), &["1"]), 30).await;
}

pub(crate) async fn transfers_since_a_time_are_listed_oldest_first_with_their_site(
    store: &dyn Store,
) {
    transfers_at_10_20_and_30(store).await;

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

pub(crate) async fn one_sites_transfers_since_a_time_are_listed_oldest_first_without_the_others(
    store: &dyn Store,
) {
    transfers_at_10_20_and_30(store).await;

    let since = store
        .site_transfers_since(&site_a(), Timestamp(10))
        .await
        .expect("reads");
    let seen: Vec<_> = since.iter().map(|transfer| transfer.at).collect();
    assert_eq!(seen, [Timestamp(10), Timestamp(30)]);
    assert_eq!(since[1].changes, changes(0, 0, 1, 0));
    let later = store
        .site_transfers_since(&site_a(), Timestamp(11))
        .await
        .expect("reads");
    assert_eq!(later.len(), 1);
    assert!(store
        .site_transfers_since(&site_b(), Timestamp(21))
        .await
        .expect("reads")
        .is_empty());
}
