//! Suite cases for [`OperatorTokenStore`]: the operator API's clients, found by their
//! token's hash until revoked.

use super::*;
use crate::store::OperatorClient;

pub(crate) async fn an_operator_token_names_its_client_until_it_is_revoked(store: &dyn Store) {
    let (first, second) = ([0x11; 32], [0x22; 32]);
    store
        .create_operator_token("prometheus", &first, Timestamp(1_000))
        .await
        .expect("created");
    assert_eq!(
        store.operator_token_client(&first).await.expect("read"),
        Some("prometheus".to_owned())
    );
    assert_eq!(
        store.operator_token_client(&second).await.expect("read"),
        None
    );
    assert!(matches!(
        store
            .create_operator_token("prometheus", &second, Timestamp(2_000))
            .await,
        Err(StoreError::OperatorClientExists(name)) if name == "prometheus"
    ));
    store
        .revoke_operator_token("prometheus", Timestamp(3_000))
        .await
        .expect("revoked");
    store
        .revoke_operator_token("prometheus", Timestamp(4_000))
        .await
        .expect("revoked again");
    assert_eq!(
        store.operator_token_client(&first).await.expect("read"),
        None
    );
    assert_eq!(
        store.operator_clients().await.expect("listed"),
        vec![OperatorClient {
            name: "prometheus".to_owned(),
            created: Timestamp(1_000),
            revoked: Some(Timestamp(3_000)),
        }]
    );
    assert!(matches!(
        store.revoke_operator_token("nobody", Timestamp(5_000)).await,
        Err(StoreError::OperatorClientUnknown(name)) if name == "nobody"
    ));
    store
        .create_operator_token("prometheus", &second, Timestamp(6_000))
        .await
        .expect("a revoked name takes a new token");
    assert_eq!(
        store.operator_token_client(&first).await.expect("read"),
        None
    );
    assert_eq!(
        store.operator_token_client(&second).await.expect("read"),
        Some("prometheus".to_owned())
    );
    assert_eq!(
        store.operator_clients().await.expect("listed")[0].revoked,
        None
    );
}
