//! A whole site's roster as OneRoster objects, for a school that leaves: `site export`
//! ([`crate::site_exit`]) writes it as OneRoster CSV with the ids its consumers knew. The
//! consumer API maps scopes page by page; this maps every school of one site under the county
//! it names.

use std::collections::{BTreeMap, HashSet};

use skolebro_protocol::SiteId;

use super::{
    id_of, site_records, AnyRecord, ConsumerScope, Derived, Kind, Mapping, Moment, Needs,
    ScopedRoster, ScopedSite,
};
use crate::store::{Store, StoreError};

/// Every OneRoster object of one site's current records, each of its schools mapped under
/// the county it names (a school naming none is left out, as no consumer could read it):
/// what `site export` writes as OneRoster CSV when the school leaves
/// (`crate::site_exit`), with the ids its consumers knew.
pub(crate) async fn site_roster(
    store: &dyn Store,
    site: &SiteId,
) -> Result<ScopedRoster, StoreError> {
    let scoped = ScopedSite::read(store, site.clone()).await?;
    let needs = Needs::of([
        Kind::Org,
        Kind::User,
        Kind::Class,
        Kind::Enrollment,
        Kind::Course,
        Kind::AcademicSession,
        Kind::Demographics,
    ]);
    let records = site_records(
        store,
        site,
        &scoped.secret,
        &scoped.identities,
        Moment::Now,
        needs,
    )
    .await?;
    let counties: std::collections::BTreeSet<String> = records
        .schools
        .iter()
        .filter_map(|current| match &current.record {
            AnyRecord::School(school) => crate::store::Fylke::of_school(school),
            _ => None,
        })
        .map(|fylke| fylke.to_string())
        .collect();
    let mut roster = ScopedRoster::default();
    let mut courses: BTreeMap<String, Derived> = BTreeMap::new();
    let mut sessions: BTreeMap<String, Derived> = BTreeMap::new();
    for county in counties {
        let mut mapping = Mapping {
            roster: &mut roster,
            courses: &mut courses,
            sessions: &mut sessions,
        };
        mapping.site(
            &ConsumerScope::County(county),
            Moment::Now,
            &scoped,
            &records,
        );
    }
    // A pupil enrolled at schools of two counties was mapped under each.
    let mut seen = HashSet::new();
    roster
        .users
        .retain(|user| id_of(user).is_some_and(|id| seen.insert(id.to_owned())));
    let mut seen = HashSet::new();
    roster
        .demographics
        .retain(|object| id_of(object).is_some_and(|id| seen.insert(id.to_owned())));
    roster.courses = Derived::finish(courses);
    roster.sessions = Derived::finish(sessions);
    Ok(roster)
}
