//! The OneRoster mapping behind the consumer listener: a read-only subset of the OneRoster
//! 1.1 REST binding (`/ims/oneroster/v1p1/{orgs,users,classes,enrollments}`, each also by
//! `sourcedId`), served by `crate::api::consumer` behind the OAuth2 tokens of
//! `crate::consumer_auth`. This module turns the store's records into OneRoster objects and
//! checks a page request; it knows nothing of HTTP.
//!
//! What central stores maps onto OneRoster as: a school is an org of type `school`, a
//! basisgruppe a class of type `homeroom`, a student a user with role `student`, and an
//! enrollment with a basisgruppe an enrollment (one without a basisgruppe shows only in the
//! user's `orgs`). Only current records are served, all `active`; `dateLastModified` is the
//! time the record took its present content.
//!
//! Scope is applied before anything else: a client reads only schools its county or kommune
//! covers ([`ConsumerScope::covers`]), the classes and enrollments of those schools, and the
//! students enrolled at them. Every answer, including counts and "not found", is computed
//! from that scoped data alone, so an id from another scope looks exactly like an id that
//! does not exist. A `sourcedId` is derived from the record's identity (the handle of its
//! first version), never its key, so no national id (an elevliste's student key) leaks into
//! an id, and a record its source renamed (a PIFU `Old`/`New` pair) keeps its `sourcedId`:
//! references by key resolve through the site's renamed records to the same id.

use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{Entity, Gender, RecordHandle, SiteId, SiteSecret};

use crate::store::{AnyRecord, ConsumerScope, Store, StoreError, Timestamp};

/// Where the OneRoster 1.1 REST endpoints live.
pub const BASE: &str = "/ims/oneroster/v1p1";

/// Page size when a request names none.
pub const DEFAULT_LIMIT: usize = 100;

/// Largest page; a larger `limit` is served as this many.
pub const MAX_LIMIT: usize = 1000;

/// The four collections served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collection {
    Orgs,
    Users,
    Classes,
    Enrollments,
}

impl Collection {
    pub(crate) fn from_path(name: &str) -> Option<Collection> {
        match name {
            "orgs" => Some(Collection::Orgs),
            "users" => Some(Collection::Users),
            "classes" => Some(Collection::Classes),
            "enrollments" => Some(Collection::Enrollments),
            _ => None,
        }
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Collection::Orgs => "orgs",
            Collection::Users => "users",
            Collection::Classes => "classes",
            Collection::Enrollments => "enrollments",
        }
    }

    /// The key of one object in a by-id answer (`{"org": {…}}`).
    pub(crate) fn singular(self) -> &'static str {
        match self {
            Collection::Orgs => "org",
            Collection::Users => "user",
            Collection::Classes => "class",
            Collection::Enrollments => "enrollment",
        }
    }
}

/// One OneRoster object of the caller's scope.
pub(crate) struct ScopedObject {
    pub id: String,
    pub modified: Timestamp,
    pub json: Value,
}

/// The `sourcedId` of a record: the first 16 bytes of SHA-256 over a label and the record's
/// identity (its handle, or the handle it had before its source renamed it), as hex. Stable
/// as long as the record exists, also across renames, unique across sites (handles are keyed
/// per site), and unlinkable to the handles devices keep on disk.
fn sourced_id(identity: &RecordHandle) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"skolebro-oneroster-v1");
    hasher.update(identity.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// The renamed records of one site, `(entity, handle) -> identity`: a record not in it is
/// its own identity.
type Identities = HashMap<(Entity, RecordHandle), RecordHandle>;

/// A OneRoster `GUIDRef` to an object of `collection` with the record `key` of `entity`.
fn reference(
    secret: &SiteSecret,
    identities: &Identities,
    entity: Entity,
    key: &str,
    collection: Collection,
) -> Value {
    let handle = secret.handle(entity, key);
    let id = sourced_id(identities.get(&(entity, handle)).unwrap_or(&handle));
    let kind = match collection {
        Collection::Orgs => "org",
        Collection::Users => "user",
        Collection::Classes => "class",
        Collection::Enrollments => "enrollment",
    };
    json!({"href": format!("{BASE}/{}/{id}", collection.plural()), "sourcedId": id, "type": kind})
}

/// One site with the skolenummer of its schools the scope covers.
struct ScopedSite {
    site: SiteId,
    secret: SiteSecret,
    schools: HashSet<CompactString>,
    identities: Identities,
}

/// The sites with at least one school in `scope`, with those schools.
async fn scoped_sites(
    store: &dyn Store,
    scope: &ConsumerScope,
) -> Result<Vec<ScopedSite>, StoreError> {
    let mut by_site: Vec<(SiteId, HashSet<CompactString>)> = Vec::new();
    for (site, school) in store.current_schools().await? {
        if !scope.covers(&school) {
            continue;
        }
        match by_site.last_mut() {
            Some((last, schools)) if *last == site => {
                schools.insert(school.skolenummer);
            }
            _ => by_site.push((site, HashSet::from([school.skolenummer]))),
        }
    }
    let mut sites = Vec::with_capacity(by_site.len());
    for (site, schools) in by_site {
        let secret = store
            .site_secret(&site)
            .await?
            .ok_or_else(|| StoreError::NoSiteSecret(site.clone()))?;
        let identities = store.renamed_identities(&site).await?;
        sites.push(ScopedSite {
            site,
            secret,
            schools,
            identities,
        });
    }
    Ok(sites)
}

/// Every object of `collection` in the caller's scope, in no particular order.
pub(crate) async fn scoped_items(
    store: &dyn Store,
    scope: &ConsumerScope,
    collection: Collection,
) -> Result<Vec<ScopedObject>, StoreError> {
    let mut items = Vec::new();
    for scoped in scoped_sites(store, scope).await? {
        let ScopedSite {
            site,
            secret,
            schools,
            identities,
        } = &scoped;
        let reference =
            |entity, key: &str, collection| reference(secret, identities, entity, key, collection);
        let entity = match collection {
            Collection::Orgs => Entity::School,
            Collection::Users => Entity::Student,
            Collection::Classes => Entity::Group,
            Collection::Enrollments => Entity::Enrollment,
        };
        // A user's orgs are the scoped schools of its enrollments.
        let mut orgs_of: HashMap<CompactString, Vec<CompactString>> = HashMap::new();
        if collection == Collection::Users {
            for current in store.current_records(site, Entity::Enrollment).await? {
                if let AnyRecord::Enrollment(enrollment) = current.record {
                    if schools.contains(&enrollment.school) {
                        orgs_of
                            .entry(enrollment.student)
                            .or_default()
                            .push(enrollment.school);
                    }
                }
            }
        }
        for current in store.current_records(site, entity).await? {
            let id = sourced_id(&current.identity);
            let common = |mut object: Value| {
                object["sourcedId"] = json!(id);
                object["status"] = json!("active");
                object["dateLastModified"] = json!(current.modified.to_string());
                object
            };
            let json = match &current.record {
                AnyRecord::School(school) if schools.contains(&school.skolenummer) => {
                    common(json!({
                        "metadata": {
                            "organisasjonsnummer": school.organisasjonsnummer,
                            "kommunenummer": school.kommunenummer,
                            "fylkesnummer": school.fylkesnummer,
                        },
                        "name": school.name,
                        "type": "school",
                        "identifier": school.skolenummer,
                        "children": [],
                    }))
                }
                AnyRecord::Group(group) if schools.contains(&group.school) => common(json!({
                    "title": group.name,
                    "classCode": group.name,
                    "classType": "homeroom",
                    "grades": group.grade.iter().collect::<Vec<_>>(),
                    "subjects": [],
                    "school": reference(Entity::School, &group.school, Collection::Orgs),
                    "terms": [],
                    "metadata": {"schoolYear": group.school_year},
                })),
                AnyRecord::Enrollment(enrollment) if schools.contains(&enrollment.school) => {
                    let Some(group) = &enrollment.group else {
                        continue;
                    };
                    common(json!({
                        "user": reference(Entity::Student, &enrollment.student, Collection::Users),
                        "class": reference(Entity::Group, group, Collection::Classes),
                        "school": reference(Entity::School, &enrollment.school, Collection::Orgs),
                        "role": "student",
                        "primary": "true",
                    }))
                }
                AnyRecord::Student(student) => {
                    let Some(orgs) = orgs_of.get(&student.source_key) else {
                        continue;
                    };
                    let gender = match student.gender {
                        Gender::Female => Some("female"),
                        Gender::Male => Some("male"),
                        Gender::Unknown => None,
                    };
                    common(json!({
                        "username": student.username.as_deref().unwrap_or_default(),
                        "userIds": [],
                        "enabledUser": "true",
                        "givenName": student.given_name,
                        "familyName": student.family_name,
                        "middleName": student.middle_name,
                        "role": "student",
                        "identifier": student.national_id.as_ref().map_or("", |id| id.as_str()),
                        "email": student.email.as_deref().unwrap_or_default(),
                        "sms": "",
                        "phone": "",
                        "agents": [],
                        "orgs": orgs
                            .iter()
                            .map(|school| reference(Entity::School, school, Collection::Orgs))
                            .collect::<Vec<_>>(),
                        "grades": [],
                        "metadata": {
                            "birthDate": student.birth_date.map(|date| date.to_string()),
                            "sex": gender,
                        },
                    }))
                }
                _ => continue,
            };
            items.push(ScopedObject {
                id,
                modified: current.modified,
                json,
            });
        }
    }
    Ok(items)
}

/// The query of a collection request. OneRoster's `sort`, `orderBy` and `fields` are not
/// served, and are refused rather than ignored, so a client does not take an unsorted page
/// for a sorted one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    filter: Option<String>,
}

/// A comparison on `dateLastModified`, the only filter served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateFilter {
    op: Op,
    at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
}

impl DateFilter {
    /// Parses `dateLastModified<op>'<RFC 3339 time or date>'` with one of the OneRoster
    /// operators `>`, `>=`, `<`, `<=`, `=`, `!=`. `None` for any other filter.
    fn parse(filter: &str) -> Option<DateFilter> {
        let rest = filter.trim().strip_prefix("dateLastModified")?.trim_start();
        let (op, rest) = [
            (">=", Op::GreaterOrEqual),
            ("<=", Op::LessOrEqual),
            ("!=", Op::NotEqual),
            (">", Op::Greater),
            ("<", Op::Less),
            ("=", Op::Equal),
        ]
        .into_iter()
        .find_map(|(text, op)| rest.strip_prefix(text).map(|rest| (op, rest)))?;
        let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        Some(DateFilter {
            op,
            at: Timestamp::parse_rfc3339(value)?,
        })
    }

    pub(crate) fn matches(self, modified: Timestamp) -> bool {
        match self.op {
            Op::Greater => modified > self.at,
            Op::GreaterOrEqual => modified >= self.at,
            Op::Less => modified < self.at,
            Op::LessOrEqual => modified <= self.at,
            Op::Equal => modified == self.at,
            Op::NotEqual => modified != self.at,
        }
    }
}

/// The page a request asks for, checked.
pub(crate) struct PageRequest {
    pub limit: usize,
    pub offset: usize,
    pub filter: Option<DateFilter>,
}

/// Why a page request was refused: the error code and its detail.
pub(crate) type Refusal = (&'static str, &'static str);

const LIMIT_DETAIL: &str = "limit is a whole number from 1 (at most 1000 are served)";

impl PageRequest {
    pub(crate) fn from_query(query: ListQuery) -> Result<PageRequest, Refusal> {
        let number = |text: Option<String>, default: usize, refusal: Refusal| match text {
            None => Ok(default),
            Some(text) => text.trim().parse::<usize>().map_err(|_| refusal),
        };
        let limit = number(query.limit, DEFAULT_LIMIT, ("invalid_limit", LIMIT_DETAIL))?;
        if limit == 0 {
            return Err(("invalid_limit", LIMIT_DETAIL));
        }
        let offset = number(
            query.offset,
            0,
            ("invalid_offset", "offset is a whole number from 0"),
        )?;
        let filter = match query.filter {
            None => None,
            Some(text) => Some(DateFilter::parse(&text).ok_or((
                "unsupported_filter",
                "only filter=dateLastModified<op>'<RFC 3339 time>' is supported, with <op> \
                 one of > >= < <= = !=",
            ))?),
        };
        Ok(PageRequest {
            limit: limit.min(MAX_LIMIT),
            offset,
            filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_filters_parse_every_operator_and_nothing_else() {
        let at = Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        for (text, op) in [
            ("dateLastModified>'2026-11-01T00:00:00Z'", Op::Greater),
            (
                "dateLastModified >= '2026-11-01T00:00:00Z'",
                Op::GreaterOrEqual,
            ),
            ("dateLastModified<'2026-11-01'", Op::Less),
            (
                "dateLastModified<='2026-11-01T01:00:00+01:00'",
                Op::LessOrEqual,
            ),
            ("dateLastModified='2026-11-01T00:00:00.000Z'", Op::Equal),
            ("dateLastModified!='2026-11-01T00:00:00Z'", Op::NotEqual),
        ] {
            assert_eq!(
                DateFilter::parse(text),
                Some(DateFilter { op, at }),
                "{text}"
            );
        }
        for text in [
            "familyName='Nilsen'",
            "dateLastModified>2026-11-01",
            "dateLastModified~'2026-11-01'",
            "dateLastModified>'2026-11-01' AND status='active'",
            "dateLastModified>'yesterday'",
        ] {
            assert_eq!(DateFilter::parse(text), None, "{text}");
        }
        let filter = DateFilter {
            op: Op::Greater,
            at,
        };
        assert!(filter.matches(Timestamp(at.0 + 1)));
        assert!(!filter.matches(at));
    }

    #[test]
    fn sourced_ids_are_stable_and_do_not_show_the_handle() {
        let handle = RecordHandle::from_bytes([7; 32]);
        assert_eq!(sourced_id(&handle), sourced_id(&handle));
        assert_eq!(sourced_id(&handle).len(), 32);
        assert!(!sourced_id(&handle).contains(&hex::encode([7u8; 8])));
        assert_ne!(
            sourced_id(&handle),
            sourced_id(&RecordHandle::from_bytes([8; 32]))
        );
    }
}
