//! Lists the store pages itself: a whole collection of orgs, users (students), their
//! demographics, classes or enrollments whose filter and sort SQL can say is read one page at a time
//! ([`crate::store::RecordStore::consumer_page`]) instead of mapping every record of the
//! scope and paging in memory. The handler in `crate::api::consumer` asks [`plan`] first
//! and falls back to the whole roster (`super::scoped_roster`, `super::query`) when it
//! answers `None`; both paths map records through the same code, and a table test holds
//! them to the same answers.
//!
//! What is pushed down: scope (the covered schools), `sourcedId` order in either direction,
//! `limit` and `offset`, and a filter of one `AND` group whose predicates compare
//! `dateLastModified` with a time, `sourcedId` with an id, or a field every object of the
//! kind has the same value for (`status`, `role`, `type`, …), which is decided here without
//! asking the store. A change feed (a lower bound on `dateLastModified`) merges in what was
//! deleted since (`super::feed`). Anything else (an `OR`, `~`, another sort field, a name)
//! takes the in-memory path.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde_json::{json, Value};
use skolebro_protocol::{Entity, SiteId};

use super::endpoint::{Endpoint, Narrow};
use super::filter::{Op, Predicate};
use super::query::PageRequest;
use super::{feed, id_of, Kind, Mapping, Moment, ScopedRoster, ScopedSite, SiteRecords};
use crate::store::{
    consumer_id_from_hex, AnyRecord, Compare, ConsumerPage, ConsumerScope, CurrentRecord, Store,
    StoreError, Timestamp,
};

/// A list request the store can page: its kind, the store's query, whether a current
/// object can match, and the time of a change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    kind: Kind,
    query: ConsumerPage,
    /// `false` when a predicate on a field every current object shares fails (`status`
    /// other than `active`): only deletions can match.
    current: bool,
    /// The time a change feed asks from: the list also holds what was deleted since.
    since: Option<Timestamp>,
}

/// The kind of record each object of a pageable kind comes from.
fn entity_of(kind: Kind) -> Option<Entity> {
    Some(match kind {
        Kind::Org => Entity::School,
        Kind::User | Kind::Demographics => Entity::Student,
        Kind::Class => Entity::Group,
        Kind::Enrollment => Entity::Enrollment,
        Kind::Course | Kind::AcademicSession => return None,
    })
}

/// The value `field` has in every object of `kind`, if it has one: what a filter on it
/// can be decided by without reading a record.
fn constant(kind: Kind, field: &str) -> Option<&'static str> {
    match (kind, field) {
        (_, "status") => Some("active"),
        (Kind::Org, "type") => Some("school"),
        (Kind::User, "role") | (Kind::Enrollment, "role") => Some("student"),
        (Kind::User, "enabledUser") | (Kind::Enrollment, "primary") => Some("true"),
        (Kind::Class, "classType") => Some("homeroom"),
        _ => None,
    }
}

/// The store's comparison for a filter operator; `None` for `~`.
fn compare(op: Op) -> Option<Compare> {
    Some(match op {
        Op::Equal => Compare::Equal,
        Op::NotEqual => Compare::NotEqual,
        Op::Greater => Compare::Greater,
        Op::GreaterOrEqual => Compare::GreaterOrEqual,
        Op::Less => Compare::Less,
        Op::LessOrEqual => Compare::LessOrEqual,
        Op::Contains => return None,
    })
}

/// The store query for `endpoint` and `request`, or `None` when the list must be served
/// from the whole roster: see the module documentation for what is pushed down.
pub(crate) fn plan(endpoint: &Endpoint, request: &PageRequest) -> Option<Plan> {
    let (kind, narrow) = endpoint.whole_collection()?;
    let entity = entity_of(kind)?;
    if request.sort().is_some_and(|sort| sort != "sourcedId") {
        return None;
    }
    let mut holds = match narrow {
        Narrow::Any => true,
        Narrow::Is(field, value) => constant(kind, field)? == value,
    };
    let mut query = ConsumerPage {
        entity,
        schools: Vec::new(),
        modified: Vec::new(),
        ids: Vec::new(),
        within: None,
        descending: request.descending(),
        offset: u64::try_from(request.offset).unwrap_or(u64::MAX),
        limit: u64::try_from(request.limit).unwrap_or(u64::MAX),
    };
    if let Some(filter) = request.filter() {
        let [group] = filter.groups() else {
            return None;
        };
        for predicate in group {
            holds &= push(kind, predicate, &mut query)?;
        }
    }
    Some(Plan {
        kind,
        query,
        current: holds,
        since: request.since(),
    })
}

/// Adds one predicate to `query`, or decides it: `Some(false)` when it fails for every
/// object, `None` when SQL cannot say it.
fn push(kind: Kind, predicate: &Predicate, query: &mut ConsumerPage) -> Option<bool> {
    if let Some(value) = constant(kind, &predicate.field) {
        return Some(predicate.matches(&json!({ predicate.field.as_str(): value })));
    }
    let op = compare(predicate.op)?;
    match predicate.field.as_str() {
        "dateLastModified" => {
            let at = Timestamp::parse_rfc3339(&predicate.value)?;
            query.modified.push((op, at));
        }
        "sourcedId" => query
            .ids
            .push((op, consumer_id_from_hex(&predicate.value)?)),
        _ => return None,
    }
    Some(true)
}

/// One page served by the store: the page's objects (whole, in order), the size of the
/// list, and the roster they were mapped into, which tells the access log their sites.
#[derive(Debug)]
pub(crate) struct Paged {
    pub page: Vec<Value>,
    pub total: usize,
    pub roster: ScopedRoster,
}

/// The page `plan` names, from the store: the scope's schools, one page of records, and
/// for each site the page touches what maps them (its secret, renamed records and schools,
/// and a page of students' enrollments). A change feed's deletions are kept if `keep`
/// says their object (as mapped, 1.1) matches the request's filter.
pub(crate) async fn serve(
    store: &dyn Store,
    scope: &ConsumerScope,
    plan: &Plan,
    keep: &(dyn Fn(&Value) -> bool + Sync),
) -> Result<Paged, StoreError> {
    let mut roster = ScopedRoster::default();
    if !plan.current && plan.since.is_none() {
        return Ok(Paged {
            page: Vec::new(),
            total: 0,
            roster,
        });
    }
    let mut query = plan.query.clone();
    query.schools = store
        .current_schools()
        .await?
        .into_iter()
        .filter(|(_, school)| scope.covers(school))
        .map(|(site, school)| (site, school.skolenummer))
        .collect();
    let mut deleted = match plan.since {
        Some(since) => feed::deleted(store, scope, since, plan.kind, &query, &mut roster).await?,
        None => Vec::new(),
    };
    deleted.retain(|object| keep(object));
    let (paged, deleted) = if deleted.is_empty() && plan.current {
        (store.consumer_page(&query).await?, deleted)
    } else {
        feed::merged_page(store, &query, plan.current, deleted).await?
    };
    let mut by_site: BTreeMap<SiteId, Vec<CurrentRecord>> = BTreeMap::new();
    for (site, record) in paged.records {
        by_site.entry(site).or_default().push(record);
    }
    let mut courses = BTreeMap::new();
    let mut sessions = BTreeMap::new();
    for (site, page) in by_site {
        let site = ScopedSite::read(store, site).await?;
        let mut records = SiteRecords::default();
        match query.entity {
            Entity::School => records.schools = page,
            Entity::Group => records.groups = page,
            Entity::Enrollment => records.enrollments = page,
            Entity::Student => {
                let keys: Vec<CompactString> = page
                    .iter()
                    .filter_map(|current| match &current.record {
                        AnyRecord::Student(student) => Some(student.source_key.clone()),
                        _ => None,
                    })
                    .collect();
                records.enrollments = store.enrollments_of(&site.site, &keys).await?;
                records.students = page;
            }
        }
        if query.entity != Entity::School {
            records.schools = store.current_records(&site.site, Entity::School).await?;
        }
        let mut mapping = Mapping {
            roster: &mut roster,
            courses: &mut courses,
            sessions: &mut sessions,
        };
        mapping.site(scope, Moment::Now, &site, &records);
    }
    let mut page = roster.of(plan.kind).to_vec();
    page.extend(deleted);
    page.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
    if query.descending {
        page.reverse();
    }
    Ok(Paged {
        page,
        total: usize::try_from(paged.total).unwrap_or(usize::MAX),
        roster,
    })
}
