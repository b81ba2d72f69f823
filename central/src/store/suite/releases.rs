//! Store suite cases of one area. Releases, their rollout policy and the devices' update
//! reports.

use super::*;

fn new_release(version: &str, target: &str) -> NewRelease {
    let version: skolebro_protocol::Version = version.parse().expect("a valid version");
    NewRelease {
        id: format!("{version}-{target}"),
        version,
        target: target.to_owned(),
        size: 4096,
        sha256: [0x42; 32],
        allow_downgrade: false,
        manifest: format!("signed manifest of {version}-{target}").into_bytes(),
        registered: Timestamp(1000),
    }
}

const TARGET: &str = "aarch64-unknown-linux-gnu";

pub(crate) async fn releases_are_registered_once_and_listed_newest_first(store: &dyn Store) {
    for version in ["1.9.0", "1.10.0", "1.2.3"] {
        assert!(store
            .create_release(&new_release(version, TARGET))
            .await
            .expect("a new release registers"));
    }
    // The same manifest again is no error and changes nothing.
    assert!(!store
        .create_release(&new_release("1.9.0", TARGET))
        .await
        .expect("registering again is harmless"));
    let mut other = new_release("1.9.0", TARGET);
    other.manifest = b"another manifest".to_vec();
    assert!(matches!(
        store.create_release(&other).await,
        Err(StoreError::ReleaseExists(id)) if id == "1.9.0-aarch64-unknown-linux-gnu"
    ));

    let releases = store.releases().await.expect("releases list");
    let ids: Vec<&str> = releases.iter().map(|r| r.release.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1.10.0-aarch64-unknown-linux-gnu",
            "1.9.0-aarch64-unknown-linux-gnu",
            "1.2.3-aarch64-unknown-linux-gnu"
        ]
    );
    let stored = store
        .release("1.9.0-aarch64-unknown-linux-gnu")
        .await
        .expect("a release reads")
        .expect("the release is known");
    assert_eq!(stored.release, new_release("1.9.0", TARGET));
    assert!(!stored.artifact_stored);
    assert_eq!((stored.percent, stored.paused), (0, false));
    assert!(stored.sites.is_empty());
    assert_eq!(store.release("9.9.9-x").await.expect("a read"), None);
}

pub(crate) async fn a_rollout_change_keeps_what_it_does_not_name(store: &dyn Store) {
    let release = new_release("2.0.0", TARGET);
    store.create_release(&release).await.expect("registers");
    let id = release.id.as_str();
    let read = || async { store.release(id).await.expect("reads").expect("known") };

    store
        .set_artifact_stored(id)
        .await
        .expect("artifact stored");
    store
        .change_rollout(
            id,
            &RolloutChange {
                percent: Some(25),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("percent set");
    store
        .change_rollout(
            id,
            &RolloutChange {
                sites: Some(vec![site_a(), site_b()]),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("sites set");
    let record = read().await;
    assert!(record.artifact_stored);
    assert_eq!(record.percent, 25);
    assert_eq!(record.sites, vec![site_a(), site_b()]);
    assert!(!record.paused);

    store
        .change_rollout(
            id,
            &RolloutChange {
                paused: Some(true),
                ..RolloutChange::default()
            },
        )
        .await
        .expect("paused");
    let record = read().await;
    assert!(record.paused);
    assert_eq!((record.percent, record.sites.len()), (25, 2));
    assert!(record.includes(&device_b(), &site_b()));

    for result in [
        store
            .change_rollout("3.0.0-x", &RolloutChange::default())
            .await,
        store.set_artifact_stored("3.0.0-x").await,
    ] {
        assert!(matches!(result, Err(StoreError::UnknownRelease(id)) if id == "3.0.0-x"));
    }
}

pub(crate) async fn updates_count_once_per_device_and_state_with_their_reasons(store: &dyn Store) {
    let release = new_release("1.1.0", TARGET);
    store.create_release(&release).await.expect("registers");
    let event = |device: DeviceId, state, reason: Option<&str>| UpdateEvent {
        release: release.id.clone(),
        device,
        state,
        reason: reason.map(str::to_owned),
        at: Timestamp(5000),
    };
    for (device, state, reason, new) in [
        (device_a(), UpdateState::Offered, None, true),
        (device_a(), UpdateState::Offered, None, false),
        (device_a(), UpdateState::Downloaded, None, true),
        (device_a(), UpdateState::Installed, None, true),
        (device_a(), UpdateState::Healthy, None, true),
        (device_a(), UpdateState::Healthy, None, false),
        (device_b(), UpdateState::Offered, None, true),
        (device_b(), UpdateState::Installed, None, true),
        (
            device_b(),
            UpdateState::RolledBack,
            Some("health check failed"),
            true,
        ),
        (
            device_b(),
            UpdateState::RolledBack,
            Some("said again"),
            false,
        ),
    ] {
        assert_eq!(
            store
                .record_update(&event(device.clone(), state, reason))
                .await
                .expect("records"),
            new,
            "{device} {state:?}"
        );
    }
    let mut unknown = event(device_a(), UpdateState::Healthy, None);
    unknown.release = "0.0.1-x".to_owned();
    assert!(!store.record_update(&unknown).await.expect("ignored"));

    let report = store.release_report(&release.id).await.expect("report");
    assert_eq!(
        report.counts,
        UpdateCounts {
            offered: 2,
            downloaded: 1,
            installed: 2,
            healthy: 1,
            rolled_back: 1,
            refused: 0,
        }
    );
    assert_eq!(
        report.rollbacks,
        vec![DeviceReason {
            device: device_b(),
            reason: Some("health check failed".to_owned()),
        }]
    );
    assert!(report.refusals.is_empty());
    assert_eq!(
        store.failed_releases(&device_b()).await.expect("reads"),
        vec![release.id.clone()]
    );
    assert!(store
        .failed_releases(&device_a())
        .await
        .expect("reads")
        .is_empty());
}
