//! Store suite cases of one area. Enrollment tokens and the enrollment that spends one.

use super::*;

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
