//! Store suite cases of one area. Operator accounts, sessions and the audit log.

use super::*;

fn ui_user(name: &str, role: Role, kommune: Option<&str>) -> UiUser {
    UiUser {
        name: name.to_owned(),
        role,
        kommune: kommune.map(str::to_owned),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}"),
        created: Timestamp(1_000),
    }
}

pub(crate) async fn a_replaced_password_hash_ends_the_accounts_sessions_only(store: &dyn Store) {
    for name in ["ops", "kari"] {
        store
            .create_user(&ui_user(name, Role::Operations, None))
            .await
            .expect("the account is created");
    }
    let names: Vec<String> = store
        .users()
        .await
        .expect("lists")
        .into_iter()
        .map(|user| user.name)
        .collect();
    assert_eq!(names, ["kari", "ops"]);
    let (karis, ops) = ([1u8; 32], [2u8; 32]);
    for (id, name) in [(&karis, "kari"), (&ops, "ops")] {
        store
            .create_session(id, name, "csrf", Timestamp(9_000), Timestamp(1_000))
            .await
            .expect("the session is stored");
    }
    assert!(store
        .replace_password_hash("kari", "!disabled")
        .await
        .expect("replaces"));
    let kari = store.user("kari").await.expect("reads").expect("kept");
    assert_eq!(kari.password_hash, "!disabled");
    let at = Timestamp(2_000);
    assert_eq!(store.session(&karis, at).await.expect("reads"), None);
    assert!(store.session(&ops, at).await.expect("reads").is_some());
    assert!(!store
        .replace_password_hash("nobody", "!disabled")
        .await
        .expect("an unknown account is no error"));
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

pub(crate) async fn the_audit_log_is_filtered_by_actor_action_and_target_and_paged(
    store: &dyn Store,
) {
    let lines = [
        ("ops", "release", "pi-1"),
        ("kari", "release", "pi-2"),
        ("ops", "revoke_device", "pi-1"),
        ("ops", "release", "skole-1"),
        ("ops", "login", ""),
    ];
    for (n, (actor, action, target)) in lines.into_iter().enumerate() {
        store
            .append_audit(&AuditEntry {
                at: Timestamp(i64::try_from(n).expect("small")),
                actor: actor.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                detail: format!("line {n}"),
            })
            .await
            .expect("the line is appended");
    }
    let details = |log: Vec<AuditEntry>| -> Vec<String> {
        log.into_iter().map(|entry| entry.detail).collect()
    };
    let search = |filter: AuditFilter, offset: u32, limit: u32| async move {
        details(
            store
                .audit_search(&filter, offset, limit)
                .await
                .expect("reads"),
        )
    };
    assert_eq!(
        search(AuditFilter::default(), 0, 10).await,
        ["line 4", "line 3", "line 2", "line 1", "line 0"]
    );
    assert_eq!(
        search(AuditFilter::default(), 1, 2).await,
        ["line 3", "line 2"]
    );
    let ops_releases = AuditFilter {
        actor: Some("ops".to_owned()),
        action: Some("release".to_owned()),
        targets: Vec::new(),
    };
    assert_eq!(search(ops_releases, 0, 10).await, ["line 3", "line 0"]);
    let site = AuditFilter {
        targets: vec!["skole-1".to_owned(), "pi-1".to_owned()],
        ..AuditFilter::default()
    };
    assert_eq!(
        search(site.clone(), 0, 10).await,
        ["line 3", "line 2", "line 0"]
    );
    assert_eq!(search(site, 3, 10).await, Vec::<String>::new());
    let nobody = AuditFilter {
        actor: Some("nobody".to_owned()),
        ..AuditFilter::default()
    };
    assert!(search(nobody, 0, 10).await.is_empty());
}
