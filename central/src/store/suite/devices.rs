//! Store suite cases of one area. Devices, site secrets and chain heads: registration,
//! revocation and the refusals a batch from a wrong device or site gets.

use super::*;

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
