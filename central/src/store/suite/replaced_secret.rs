//! A case each backend runs against its own write half (`apply_prepared`), which the trait
//! does not expose: a batch whose handles were checked under a site secret that was set anew
//! before its write transaction began.

use super::*;

/// Registers a device under one secret, then sets the site's secret anew (possible while the
/// site has no records). Returns a one-student delta whose handles the old secret made, and
/// that old secret, for the caller to prepare the batch under it and hand it to its write half.
pub(crate) async fn a_secret_replaced_before_the_write(
    store: &dyn Store,
) -> (IncomingBatch, SiteSecret) {
    let site = site_a();
    let device = DeviceId::new("pi-46505").expect("a valid device id");
    let old = SiteSecret::from_bytes([0xa1; 32]);
    store.set_site_secret(&site, &old).await.expect("a secret");
    store
        .register_device(
            &device,
            &site,
            &DeviceSigningKey::from_bytes([1; 32]).verifying_key(),
        )
        .await
        .expect("the device registers");
    let record = student("s1", "Ola");
    let payload = Payload::Delta(Delta {
        students: EntityDelta {
            renames: Vec::new(),
            upserts: vec![(old.handle(Entity::Student, record.key()), record)],
            deletes: Vec::new(),
        },
        ..Delta::default()
    });
    store
        .set_site_secret(&site, &SiteSecret::from_bytes([0xa2; 32]))
        .await
        .expect("the secret is set anew while the site has no records");
    let batch = IncomingBatch {
        device,
        site,
        seq: Seq(1),
        prev: ChainHead::genesis().prev,
        next_head: ChainHead::after(Seq(1), [0xd1; 32]),
        payload,
        at: Timestamp(1000),
        bytes: 1000,
    };
    (batch, old)
}

/// The write half checked the handles again, against the secret in force, and refused the
/// batch without storing a record or moving the device's head.
pub(crate) async fn refused_under_the_secret_in_force(
    store: &dyn Store,
    batch: &IncomingBatch,
    result: Result<ApplyOutcome, StoreError>,
) {
    assert!(
        matches!(result, Err(StoreError::HandleMismatch { .. })),
        "{result:?}"
    );
    assert_eq!(
        store
            .current_roster(&batch.site)
            .await
            .expect("the roster reads"),
        Roster::default()
    );
    assert_eq!(
        store
            .chain_head(&batch.device)
            .await
            .expect("the head reads"),
        ChainHead::genesis()
    );
}
