//! Store suite cases of one area. Transfer windows.

use super::*;

fn county(code: &str) -> Fylke {
    Fylke::parse(code).expect("a two-digit county")
}

fn new_window(code: &str, name: &str, opens: i64, closes: i64) -> NewWindow {
    NewWindow {
        fylke: county(code),
        name: name.to_owned(),
        opens: Timestamp(opens),
        closes: Timestamp(closes),
        created: Timestamp(5),
        created_by: "ops".to_owned(),
    }
}

pub(crate) async fn transfer_windows_are_created_listed_by_county_and_read_by_id(
    store: &dyn Store,
) {
    let create = |window: NewWindow| async move {
        store
            .create_window(&window)
            .await
            .expect("the window is created")
    };
    let later = create(new_window("46", "Inntak 2028", 3_000, 4_000)).await;
    let oslo = create(new_window("03", "Inntak 2027", 1_000, 2_000)).await;
    let first = create(new_window("46", "Inntak 2027", 1_000, 2_000)).await;
    assert_eq!(first.name, "Inntak 2027");
    assert_eq!(first.fylke.to_string(), "46");
    assert_eq!(
        (first.opens, first.closes),
        (Timestamp(1_000), Timestamp(2_000))
    );
    assert_eq!(
        (first.created, first.created_by.as_str()),
        (Timestamp(5), "ops")
    );
    assert!(first.id != later.id && first.id != oslo.id);

    let ids = |windows: Vec<TransferWindow>| windows.iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.windows(None).await.expect("reads")),
        [oslo.id, first.id, later.id],
        "by county, then by opening"
    );
    assert_eq!(
        ids(store.windows(Some(county("46"))).await.expect("reads")),
        [first.id, later.id]
    );
    assert!(store
        .windows(Some(county("11")))
        .await
        .expect("reads")
        .is_empty());
    assert_eq!(
        store.window(later.id).await.expect("reads"),
        Some(later.clone())
    );
    assert_eq!(store.window(later.id + 1000).await.expect("reads"), None);
}

pub(crate) async fn a_window_closing_before_it_opens_or_overlapping_its_county_is_refused(
    store: &dyn Store,
) {
    let existing = store
        .create_window(&new_window("46", "Inntak 2027", 1_000, 2_000))
        .await
        .expect("the first window is created");
    for (opens, closes) in [(2_000, 2_000), (2_000, 1_999)] {
        assert!(matches!(
            store.create_window(&new_window("46", "Bad", opens, closes)).await,
            Err(StoreError::WindowCloses { opens: o, closes: c })
                if o == Timestamp(opens) && c == Timestamp(closes)
        ));
    }
    for name in ["", "   ", &"x".repeat(101)] {
        assert!(matches!(
            store
                .create_window(&new_window("46", name, 5_000, 6_000))
                .await,
            Err(StoreError::WindowName)
        ));
    }
    for (opens, closes) in [(1_500, 2_500), (500, 1_001), (1_200, 1_300), (0, 9_000)] {
        let refused = store
            .create_window(&new_window("46", "Overlapping", opens, closes))
            .await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::WindowOverlap { fylke, existing: id })
                    if *fylke == county("46") && *id == existing.id
            ),
            "{opens}..{closes}: {refused:?}"
        );
    }
    // Another county may use the same period; a window may open when the last one closes.
    for window in [
        new_window("03", "Inntak 2027", 1_000, 2_000),
        new_window("46", "Inntak 2027, second round", 2_000, 3_000),
        new_window("46", "Before", 0, 1_000),
    ] {
        store
            .create_window(&window)
            .await
            .expect("a window not overlapping its county's");
    }
    assert_eq!(
        store
            .windows(Some(county("46")))
            .await
            .expect("reads")
            .len(),
        3
    );
}
