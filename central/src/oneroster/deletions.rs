//! The deletions of OneRoster's change feed: a list asked for `dateLastModified>=` (or `>`)
//! a time also answers, with `status` `tobedeleted`, every object the caller could read then
//! and cannot read now, so a client that synchronised at that time learns what to remove.
//! Found by mapping the scope's records as they stood then
//! ([`super::Moment::AsOf`]) and keeping the ids the current mapping lacks; each keeps its
//! old content, and its `dateLastModified` is when its record was closed (the first end of
//! one of its versions after that time), or, for a record still stored but now outside the
//! scope, the time of the site's newest batch. A course or academic session, which central
//! derives from the classes, is gone when none of the classes it had then still makes it,
//! and is dated when the last of them closed or changed. Called by the consumer handler for
//! top-level lists.

use std::collections::HashSet;

use serde_json::json;

use super::endpoint::refers;
use super::{id_of, scoped_roster, Kind, Moment, Needs, ScopedRoster};
use crate::store::{ConsumerScope, Store, StoreError, Timestamp};

/// The objects of `kind` of the caller's scope at `since` that `now` (the current mapping,
/// holding that kind) no longer holds, as `tobedeleted`.
pub(crate) async fn deletions(
    store: &dyn Store,
    scope: &ConsumerScope,
    since: Timestamp,
    now: &ScopedRoster,
    kind: Kind,
) -> Result<ScopedRoster, StoreError> {
    let mut gone = ScopedRoster::default();
    let then = scoped_roster(store, scope, Moment::AsOf(since), Needs::of([kind])).await?;
    let current: HashSet<&str> = now.of(kind).iter().filter_map(id_of).collect();
    for object in then.of(kind) {
        let Some(id) = id_of(object).filter(|id| !current.contains(id)) else {
            continue;
        };
        let closed = match derived_from(kind) {
            Some(field) => {
                let mut last = since;
                for class in then.of(Kind::Class) {
                    if let Some(class) = id_of(class).filter(|_| refers(class, field, id)) {
                        last = last.max(closed_at(store, &then, class, since).await?);
                    }
                }
                last
            }
            None => closed_at(store, &then, id, since).await?,
        };
        if let Some(site) = then.site_of(id) {
            gone.note_site(id, site);
        }
        let mut object = object.clone();
        object["status"] = json!("tobedeleted");
        object["dateLastModified"] = json!(closed.to_string());
        gone.push(kind, object);
    }
    Ok(gone)
}

/// The field of a class that names an object of `kind` when central derives that kind from
/// the classes (a course, a session), else `None`.
fn derived_from(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Course => Some("course"),
        Kind::AcademicSession => Some("terms"),
        Kind::Org | Kind::User | Kind::Class | Kind::Enrollment | Kind::Demographics => None,
    }
}

/// When the record behind object `id` of `then` (mapped as of `since`) stopped being what it
/// was: the first end of one of its versions after `since`; for a record not closed since
/// (still held, now outside the scope), its site's newest batch.
pub(super) async fn closed_at(
    store: &dyn Store,
    then: &ScopedRoster,
    id: &str,
    since: Timestamp,
) -> Result<Timestamp, StoreError> {
    let Some((site, entity, handle)) = then.origins.get(id) else {
        return Ok(since);
    };
    let first_end = store
        .history(site, *entity, handle)
        .await?
        .into_iter()
        .filter_map(|version| version.valid_to)
        .filter(|end| *end > since)
        .min();
    Ok(match first_end {
        Some(end) => end,
        None => store
            .transfers(site, 1)
            .await?
            .first()
            .map_or(since, |transfer| transfer.at.max(since)),
    })
}
