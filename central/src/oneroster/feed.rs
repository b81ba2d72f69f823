//! The change feed of the lists the store pages (`super::paged`): a list asked for
//! `dateLastModified>=` (or `>`) a time merges, in `sourcedId` order, the current objects
//! changed since, which the store finds by time (`records_current_since`), with the objects
//! the client could read then and cannot now, `tobedeleted`. Those are looked for among the
//! records closed since ([`crate::store::RecordStore::roster_closed_since`]) instead of by
//! mapping the whole scope as it stood then, as `super::deletions` does for the lists served
//! from the whole roster. So a page of a nightly delta sync costs what changed since and the
//! page, not the county.
//!
//! The candidates: a class or an enrollment whose version then was closed since; a user whose
//! student's version was, or one of the enrollments that placed it then. Each is mapped as it
//! stood then, with its school and the enrollments that placed it as they stood, and is gone
//! unless the store still lists its id. A change to a school can take everything under it out
//! of a scope without closing any of it, so a site one of whose schools was closed since is
//! mapped whole as it stood then, as `super::deletions` maps it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use compact_str::CompactString;
use serde_json::{json, Value};
use skolebro_protocol::{Entity, Roster, SiteId};

use super::deletions::closed_at;
use super::{
    as_of, id_of, site_records, Kind, Mapping, Moment, Needs, ScopedRoster, ScopedSite, SiteRecords,
};
use crate::store::{
    consumer_id_from_hex, sort_roster, AnyRecord, ConsumerPage, ConsumerScope, CurrentRecord,
    PagedRecords, Store, StoreError, Timestamp,
};

/// The objects of `kind` the caller could read at `since` and cannot now, as `tobedeleted`
/// and dated when their record was closed, in no particular order ([`merged_page`] sorts
/// them into the list); `query` is the list's store query (its scope). Their sites are noted in `roster` for the access log.
pub(super) async fn deleted(
    store: &dyn Store,
    scope: &ConsumerScope,
    since: Timestamp,
    kind: Kind,
    query: &ConsumerPage,
    roster: &mut ScopedRoster,
) -> Result<Vec<Value>, StoreError> {
    let then = candidates(store, scope, since, kind, query).await?;
    let ids: Vec<[u8; 16]> = then
        .of(kind)
        .iter()
        .filter_map(|object| consumer_id_from_hex(id_of(object)?))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let listed: HashSet<[u8; 16]> = store
        .consumer_ids(&ConsumerPage {
            modified: Vec::new(),
            ids: Vec::new(),
            within: Some(ids),
            ..query.clone()
        })
        .await?
        .into_iter()
        .collect();
    let mut gone = Vec::new();
    for object in then.of(kind) {
        let Some(id) = id_of(object) else {
            continue;
        };
        if consumer_id_from_hex(id).is_some_and(|bytes| listed.contains(&bytes)) {
            continue;
        }
        let closed = closed_at(store, &then, id, since).await?;
        if let Some(site) = then.site_of(id) {
            roster.note_site(id, site);
        }
        let mut object = object.clone();
        object["status"] = json!("tobedeleted");
        object["dateLastModified"] = json!(closed.to_string());
        gone.push(object);
    }
    Ok(gone)
}

/// The candidates for deletion of `kind` at the sites of `query`'s scope, mapped as they
/// stood at `since`: see the module documentation.
async fn candidates(
    store: &dyn Store,
    scope: &ConsumerScope,
    since: Timestamp,
    kind: Kind,
    query: &ConsumerPage,
) -> Result<ScopedRoster, StoreError> {
    let mut then = ScopedRoster::default();
    let (mut courses, mut sessions) = (BTreeMap::new(), BTreeMap::new());
    let moment = Moment::AsOf(since);
    // The scope's sites, as `query.schools` (sorted by site) names them.
    let mut sites: Vec<&SiteId> = query.schools.iter().map(|(site, _)| site).collect();
    sites.dedup();
    for site in sites {
        let site = ScopedSite::read(store, site.clone()).await?;
        let closed = store.roster_closed_since(&site.site, since).await?;
        let records = if !closed.schools.is_empty() {
            let ScopedSite {
                site: id,
                secret,
                identities,
            } = &site;
            site_records(store, id, secret, identities, moment, Needs::of([kind])).await?
        } else if kind == Kind::Org {
            continue;
        } else {
            closed_records(store, &site, since, kind, closed).await?
        };
        let mut mapping = Mapping {
            roster: &mut then,
            courses: &mut courses,
            sessions: &mut sessions,
        };
        mapping.site(scope, moment, &site, &records);
    }
    Ok(then)
}

/// The records of a site none of whose schools was closed since `since` that can make a
/// deletion of `kind`, as they stood then: the schools then, and the closed classes,
/// enrollments or (for users) students with the enrollments that placed them.
async fn closed_records(
    store: &dyn Store,
    site: &ScopedSite,
    since: Timestamp,
    kind: Kind,
    closed: Roster,
) -> Result<SiteRecords, StoreError> {
    let then = |records: Vec<CurrentRecord>| {
        records
            .into_iter()
            .filter(move |current| current.modified <= since)
            .map(|current| current.record)
    };
    let schools = then(store.current_records(&site.site, Entity::School).await?)
        .filter_map(|record| match record {
            AnyRecord::School(school) => Some(school),
            _ => None,
        })
        .collect();
    let mut roster = Roster {
        schools,
        ..Roster::default()
    };
    match kind {
        Kind::Class => roster.groups = closed.groups,
        Kind::Enrollment => roster.enrollments = closed.enrollments,
        Kind::User | Kind::Demographics => {
            let moved: BTreeSet<CompactString> = closed
                .students
                .iter()
                .map(|student| student.source_key.clone())
                .chain(closed.enrollments.iter().map(|e| e.student.clone()))
                .collect();
            let moved: Vec<CompactString> = moved.into_iter().collect();
            roster.students = closed.students;
            roster.students.extend(
                then(store.students_of(&site.site, &moved).await?).filter_map(
                    |record| match record {
                        AnyRecord::Student(student) => Some(student),
                        _ => None,
                    },
                ),
            );
            roster.enrollments = closed.enrollments;
            roster.enrollments.extend(
                then(store.enrollments_of(&site.site, &moved).await?).filter_map(|record| {
                    match record {
                        AnyRecord::Enrollment(enrollment) => Some(enrollment),
                        _ => None,
                    }
                }),
            );
        }
        Kind::Org | Kind::Course | Kind::AcademicSession => {}
    }
    // In key order, as a whole roster as of then reads: a user's orgs keep its order.
    sort_roster(&mut roster);
    let ScopedSite {
        secret, identities, ..
    } = site;
    Ok(SiteRecords {
        schools: as_of(roster.schools, secret, identities, since, AnyRecord::School),
        groups: as_of(roster.groups, secret, identities, since, AnyRecord::Group),
        enrollments: as_of(
            roster.enrollments,
            secret,
            identities,
            since,
            AnyRecord::Enrollment,
        ),
        students: as_of(
            roster.students,
            secret,
            identities,
            since,
            AnyRecord::Student,
        ),
    })
}

/// One page of the merge of the store's list `query` (the current objects changed since)
/// with `deleted` (in `sourcedId` order): the page's current records, read by id, with the
/// size of the merged list, and the deletions that fall in the page.
pub(super) async fn merged_page(
    store: &dyn Store,
    query: &ConsumerPage,
    current: bool,
    deleted: Vec<Value>,
) -> Result<(PagedRecords, Vec<Value>), StoreError> {
    let listed = match current {
        true => store.consumer_ids(query).await?,
        false => Vec::new(),
    };
    let window = Window::of(listed, deleted, query);
    let mut records = Vec::new();
    if !window.listed.is_empty() {
        let limit = window.listed.len() as u64;
        let page = ConsumerPage {
            within: Some(window.listed),
            offset: 0,
            limit,
            ..query.clone()
        };
        records = store.consumer_page(&page).await?.records;
    }
    let total = window.total;
    Ok((PagedRecords { records, total }, window.deleted))
}

/// What one page of a merged change feed holds: the ids of the current records in it, the
/// deletions in it, and the size of the whole merged list.
#[derive(Debug, PartialEq)]
struct Window {
    listed: Vec<[u8; 16]>,
    deleted: Vec<Value>,
    total: u64,
}

impl Window {
    /// The page `query` asks for (its order, offset and limit) of the merge of `listed`
    /// (current ids) and `deleted` (objects): ids sort as their `sourcedId`s do, the hex
    /// being lowercase.
    fn of(listed: Vec<[u8; 16]>, deleted: Vec<Value>, query: &ConsumerPage) -> Window {
        let mut merged: Vec<([u8; 16], Option<Value>)> = listed
            .into_iter()
            .map(|id| (id, None))
            .chain(deleted.into_iter().filter_map(|object| {
                let id = consumer_id_from_hex(id_of(&object)?)?;
                Some((id, Some(object)))
            }))
            .collect();
        merged.sort_by_key(|(id, _)| *id);
        if query.descending {
            merged.reverse();
        }
        let total = merged.len() as u64;
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let mut window = Window {
            listed: Vec::new(),
            deleted: Vec::new(),
            total,
        };
        for (id, object) in merged.into_iter().skip(offset).take(limit) {
            match object {
                Some(object) => window.deleted.push(object),
                None => window.listed.push(id),
            }
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use skolebro_protocol::Entity;

    use super::*;

    fn query(descending: bool, offset: u64, limit: u64) -> ConsumerPage {
        ConsumerPage {
            entity: Entity::Student,
            schools: Vec::new(),
            modified: Vec::new(),
            ids: Vec::new(),
            within: None,
            descending,
            offset,
            limit,
        }
    }

    fn gone(id: [u8; 16]) -> Value {
        json!({"sourcedId": hex::encode(id), "status": "tobedeleted"})
    }

    #[test]
    fn a_deletion_takes_its_place_among_the_current_ids_and_the_page_is_cut_after() {
        let window = Window::of(
            vec![[1; 16], [3; 16]],
            vec![gone([2; 16])],
            &query(false, 1, 2),
        );
        assert_eq!(
            window,
            Window {
                listed: vec![[3; 16]],
                deleted: vec![gone([2; 16])],
                total: 3,
            }
        );
    }

    proptest! {
        #[test]
        fn walking_the_pages_of_a_merged_feed_serves_each_id_once_in_order(
            ids in proptest::collection::btree_set(any::<[u8; 16]>(), 0..40),
            deleted_every in 1usize..5,
            descending in any::<bool>(),
            limit in 1u64..7,
        ) {
            let ids: Vec<[u8; 16]> = ids.into_iter().collect();
            let (deleted, listed): (Vec<_>, Vec<_>) =
                ids.iter().enumerate().partition(|(at, _)| at % deleted_every == 0);
            let listed: Vec<[u8; 16]> = listed.into_iter().map(|(_, id)| *id).collect();
            let deleted: BTreeSet<[u8; 16]> = deleted.into_iter().map(|(_, id)| *id).collect();
            let mut walked = Vec::new();
            let mut offset = 0;
            loop {
                let window = Window::of(
                    listed.clone(),
                    deleted.iter().map(|id| gone(*id)).collect(),
                    &query(descending, offset, limit),
                );
                prop_assert_eq!(window.total, ids.len() as u64);
                let mut page: Vec<[u8; 16]> = window.listed.clone();
                page.extend(window.deleted.iter().filter_map(|object| {
                    consumer_id_from_hex(id_of(object)?)
                }));
                page.sort();
                if descending {
                    page.reverse();
                }
                prop_assert!(page.len() as u64 <= limit);
                if page.is_empty() {
                    break;
                }
                walked.extend(page);
                offset += limit;
            }
            let mut expected = ids.clone();
            if descending {
                expected.reverse();
            }
            prop_assert_eq!(walked, expected);
        }
    }
}
