//! Store suite cases of one area. Consumer clients and their bearer tokens.

use super::*;

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
