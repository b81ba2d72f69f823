//! Store suite cases of one area. Sites and the schools they are registered with.

use skolebro_protocol::SiteSchool;

use super::*;

fn registered(text: &str) -> SiteSchool {
    text.parse().expect("a school")
}

pub(crate) async fn a_site_is_registered_with_its_schools_and_a_school_belongs_to_one_site(
    store: &dyn Store,
) {
    assert_eq!(store.site_schools(&site_a()).await.unwrap(), []);
    let fana = registered("4601/46505/974600951=Bjølsen skole");
    let annex = registered("4601//974600952=Bjølsen skole avd. Nord");
    store
        .register_schools(&site_a(), &[fana.clone(), annex.clone()], Timestamp(1))
        .await
        .expect("the schools are registered");
    let mut expected = vec![fana.clone(), annex.clone()];
    expected.sort_by(|a, b| a.skolenummer.cmp(&b.skolenummer));
    let mut schools = store.site_schools(&site_a()).await.unwrap();
    schools.sort_by(|a, b| a.skolenummer.cmp(&b.skolenummer));
    assert_eq!(schools, expected);

    // Again with a new name: rewritten, not doubled.
    let renamed = registered("4601/46505/974600951=Bjølsen skule");
    store
        .register_schools(&site_a(), std::slice::from_ref(&renamed), Timestamp(2))
        .await
        .expect("registering again for the same site");
    assert_eq!(store.site_schools(&site_a()).await.unwrap().len(), 2);

    // The same school for another site, by skolenummer or by organisasjonsnummer: refused,
    // and nothing of the call is kept.
    let other = registered("4601/99999=Annen skole");
    for taken in [
        registered("4601/46505=Kopi"),
        registered("4602//974600952=Kopi"),
    ] {
        let refused = store
            .register_schools(&site_b(), &[other.clone(), taken.clone()], Timestamp(3))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::SchoolElsewhere { site, .. }) if *site == site_a()),
            "{taken}: {refused:?}"
        );
    }
    assert_eq!(store.site_schools(&site_b()).await.unwrap(), []);
    let all = store.registered_schools().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(site, _)| *site == site_a()));
    assert!(all.iter().any(|(_, school)| *school == renamed));
}

pub(crate) async fn a_school_moves_to_another_site_only_when_it_is_registered(store: &dyn Store) {
    let school = registered("4601/46505=Bjølsen skole");
    let unknown = store.move_school(&school, &site_b(), Timestamp(1)).await;
    assert!(matches!(unknown, Err(StoreError::UnknownSchool(key)) if key == "4601/46505"));
    store
        .register_schools(&site_a(), std::slice::from_ref(&school), Timestamp(1))
        .await
        .unwrap();
    let from = store
        .move_school(&school, &site_b(), Timestamp(2))
        .await
        .expect("the school moves");
    assert_eq!(from, [site_a()]);
    assert_eq!(store.site_schools(&site_a()).await.unwrap(), []);
    assert_eq!(store.site_schools(&site_b()).await.unwrap(), [school]);
}
