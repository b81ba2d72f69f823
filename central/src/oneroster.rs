//! The OneRoster mapping behind the consumer listener: the read side of the OneRoster 1.1
//! rostering service (`/ims/oneroster/v1p1/…`: orgs and schools, users, students and
//! teachers, classes, enrollments, courses, academic sessions and terms, demographics, and
//! the collections under a school, class, course, term or user), served by
//! `crate::api::consumer` behind the OAuth2 tokens of `crate::consumer_auth`. This module
//! turns the store's records into OneRoster objects (`scoped_roster`, or one page the store
//! reads itself, `paged`, with its change feed, `feed`); `endpoint` reads a path into the
//! selection it names, `query` checks and applies `limit`, `offset`, `filter` (`filter`),
//! `sort`, `orderBy` and `fields`, `links` writes the paging links. No HTTP beyond headers.
//!
//! What central stores maps onto OneRoster as: a school is an org of type `school`, a
//! basisgruppe a class of type `homeroom`, a student a user with role `student` and a
//! demographics object of the same id (birth date and sex where known), and an enrollment
//! with a basisgruppe an enrollment (one without a basisgruppe shows only in its `orgs`).
//! Each class belongs to the academic session of its school year (`school_year`) and to a
//! course: the school's trinn in that year (or its basisgrupper without a trinn). No
//! teachers are carried, so teacher lists are empty. Current records are served `active`;
//! `dateLastModified` is the time the record took its present content, for a course or
//! session the time its first current class did. A change feed (`dateLastModified>=`) also
//! serves what left the scope since, `tobedeleted` (`deletions`).
//!
//! Scope is applied before anything else: a client reads only schools its county or kommune
//! covers ([`ConsumerScope::covers`]), the classes and enrollments of those schools, the
//! students enrolled at them, and the courses and sessions of those classes. Every answer,
//! including counts and "not found", is computed from that scoped data alone, so an id from
//! another scope looks exactly like an id that does not exist. A `sourcedId` is derived from
//! the record's identity (the handle of its first version), never its key, so no national id
//! (an elevliste's student key) leaks into an id, and a record its source renamed (a PIFU
//! `Old`/`New` pair) keeps its `sourcedId`: references by key resolve through the site's
//! renamed records to the same id.

pub(crate) mod deletions;
pub(crate) mod endpoint;
mod feed;
pub(crate) mod filter;
#[cfg(fuzzing)]
#[doc(hidden)]
pub use filter::fuzz as fuzz_filter;
pub(crate) mod links;
pub(crate) mod paged;
pub(crate) mod query;
pub(crate) mod school_year;
pub(crate) mod v1p2;
mod whole_site;

pub(crate) use whole_site::site_roster;

use std::collections::{BTreeMap, HashMap, HashSet};

use compact_str::CompactString;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{Entity, Gender, Record, RecordHandle, SiteId, SiteSecret};

use crate::store::{
    consumer_id, AnyRecord, ConsumerScope, CurrentRecord, Store, StoreError, Timestamp,
};
use school_year::SchoolYear;

pub use links::PublicUrl;

/// Where the OneRoster 1.1 REST endpoints live.
pub const BASE: &str = "/ims/oneroster/v1p1";

/// The kinds of OneRoster object served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Org,
    User,
    Class,
    Enrollment,
    Course,
    AcademicSession,
    Demographics,
}

impl Kind {
    /// The key of a list answer (`{"orgs": […]}`), and the path of the collection.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Org => "orgs",
            Kind::User => "users",
            Kind::Class => "classes",
            Kind::Enrollment => "enrollments",
            Kind::Course => "courses",
            Kind::AcademicSession => "academicSessions",
            Kind::Demographics => "demographics",
        }
    }

    /// The key of a by-id answer (`{"org": {…}}`), and a reference's `type`.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            Kind::Org => "org",
            Kind::User => "user",
            Kind::Class => "class",
            Kind::Enrollment => "enrollment",
            Kind::Course => "course",
            Kind::AcademicSession => "academicSession",
            Kind::Demographics => "demographics",
        }
    }

    /// The fields of the kind in the specification: what `filter`, `sort` and `fields` may
    /// name. A field central does not fill is absent from the object (and never matches
    /// `=`), but naming it is no error.
    pub(crate) fn fields(self) -> &'static [&'static str] {
        const COMMON: [&str; 4] = ["sourcedId", "status", "dateLastModified", "metadata"];
        match self {
            Kind::Org => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "name",
                "type",
                "identifier",
                "parent",
                "children",
            ],
            Kind::User => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "username",
                "userIds",
                "enabledUser",
                "givenName",
                "familyName",
                "middleName",
                "role",
                "identifier",
                "email",
                "sms",
                "phone",
                "agents",
                "orgs",
                "grades",
                "password",
            ],
            Kind::Class => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "title",
                "classCode",
                "classType",
                "location",
                "grades",
                "subjects",
                "course",
                "school",
                "terms",
                "subjectCodes",
                "periods",
                "resources",
            ],
            Kind::Enrollment => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "user",
                "class",
                "school",
                "role",
                "primary",
                "beginDate",
                "endDate",
            ],
            Kind::Course => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "title",
                "schoolYear",
                "courseCode",
                "grades",
                "subjects",
                "org",
                "subjectCodes",
                "resources",
            ],
            Kind::AcademicSession => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "title",
                "startDate",
                "endDate",
                "type",
                "parent",
                "children",
                "schoolYear",
            ],
            Kind::Demographics => &[
                COMMON[0],
                COMMON[1],
                COMMON[2],
                COMMON[3],
                "birthDate",
                "sex",
                "americanIndianOrAlaskaNative",
                "asian",
                "blackOrAfricanAmerican",
                "nativeHawaiianOrOtherPacificIslander",
                "white",
                "demographicRaceTwoOrMoreRaces",
                "hispanicOrLatinoEthnicity",
                "countryOfBirthCode",
                "stateOfBirthAbbreviation",
                "cityOfBirth",
                "publicSchoolResidenceStatus",
            ],
        }
    }
}

/// The `sourcedId` of a record: its [`consumer_id`] (the first 16 bytes of SHA-256 over a
/// label and the record's identity, its handle or the handle it had before its source
/// renamed it) as hex. Stable as long as the record exists, also across renames, unique
/// across sites (handles are keyed per site), and unlinkable to the handles devices keep on
/// disk. The store keeps the bytes, so it can page in `sourcedId` order.
fn sourced_id(identity: &RecordHandle) -> String {
    hex::encode(consumer_id(identity))
}

/// The `sourcedId` of an object central derives rather than stores (a course, a session):
/// SHA-256 over a label and the parts that make it, length-prefixed, cut like
/// [`sourced_id`]'s. Built from other sourcedIds and years, so it shows no key either.
fn derived_id(label: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"skolebro-oneroster-derived-v1");
    for part in std::iter::once(label).chain(parts.iter().copied()) {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// A OneRoster `GUIDRef` to the object `id` of `kind`.
fn reference_to(kind: Kind, id: &str) -> Value {
    json!({"href": format!("{BASE}/{}/{id}", kind.plural()), "sourcedId": id, "type": kind.singular()})
}

/// The renamed records of one site, `(entity, handle) -> identity`: a record not in it is
/// its own identity.
type Identities = HashMap<(Entity, RecordHandle), RecordHandle>;

/// The identity of the record with `handle`: see [`Identities`].
fn identity_of(identities: &Identities, entity: Entity, handle: RecordHandle) -> RecordHandle {
    identities.get(&(entity, handle)).copied().unwrap_or(handle)
}

/// A OneRoster `GUIDRef` to the object of `kind` for the record `key` of `entity`.
fn reference(
    secret: &SiteSecret,
    identities: &Identities,
    entity: Entity,
    key: &str,
    kind: Kind,
) -> Value {
    let handle = secret.handle(entity, key);
    reference_to(kind, &sourced_id(&identity_of(identities, entity, handle)))
}

/// The id in the `GUIDRef` at `field` of `object`.
pub(crate) fn ref_id<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field)?.get("sourcedId")?.as_str()
}

/// The `sourcedId` of an object.
pub(crate) fn id_of(object: &Value) -> Option<&str> {
    object.get("sourcedId")?.as_str()
}

/// One site with a school the scope covers, the secret its handles are keyed with, and its
/// renamed records.
struct ScopedSite {
    site: SiteId,
    secret: SiteSecret,
    identities: Identities,
}

/// The sites with at least one school in `scope` now. (A site none of whose current
/// schools is in the scope any more is not read, not even for deletions.)
async fn scoped_sites(
    store: &dyn Store,
    scope: &ConsumerScope,
) -> Result<Vec<ScopedSite>, StoreError> {
    let mut covered: Vec<SiteId> = Vec::new();
    for (site, school) in store.current_schools().await? {
        if scope.covers(&school) && covered.last() != Some(&site) {
            covered.push(site);
        }
    }
    let mut sites = Vec::with_capacity(covered.len());
    for site in covered {
        sites.push(ScopedSite::read(store, site).await?);
    }
    Ok(sites)
}

impl ScopedSite {
    /// `site` with its secret and renamed records as the store holds them now.
    async fn read(store: &dyn Store, site: SiteId) -> Result<ScopedSite, StoreError> {
        let secret = store
            .site_secret(&site)
            .await?
            .ok_or_else(|| StoreError::NoSiteSecret(site.clone()))?;
        let identities = store.renamed_identities(&site).await?;
        Ok(ScopedSite {
            site,
            secret,
            identities,
        })
    }
}

/// Every OneRoster object of the caller's scope, by kind, in no particular order.
#[derive(Debug, Default)]
pub(crate) struct ScopedRoster {
    orgs: Vec<Value>,
    users: Vec<Value>,
    classes: Vec<Value>,
    enrollments: Vec<Value>,
    courses: Vec<Value>,
    sessions: Vec<Value>,
    demographics: Vec<Value>,
    /// The site, kind and handle of the record behind each object id, when mapped as of a
    /// past time: where [`deletions`] looks up when a record was closed.
    origins: HashMap<String, (SiteId, Entity, RecordHandle)>,
    /// The site of each object backed by one stored record (an org, class, enrollment,
    /// user or demographics), by id: what the access log records an answer as touching.
    sites: HashMap<String, SiteId>,
}

impl ScopedRoster {
    /// Adds an object of `kind`.
    fn push(&mut self, kind: Kind, object: Value) {
        match kind {
            Kind::Org => self.orgs.push(object),
            Kind::User => self.users.push(object),
            Kind::Class => self.classes.push(object),
            Kind::Enrollment => self.enrollments.push(object),
            Kind::Course => self.courses.push(object),
            Kind::AcademicSession => self.sessions.push(object),
            Kind::Demographics => self.demographics.push(object),
        }
    }

    /// Notes the record behind object `id` when mapping a past moment.
    fn note_origin(
        &mut self,
        moment: Moment,
        id: &str,
        site: &SiteId,
        entity: Entity,
        current: &CurrentRecord,
    ) {
        if moment != Moment::Now {
            self.origins
                .insert(id.to_owned(), (site.clone(), entity, current.handle));
        }
    }

    /// Notes that object `id` comes from a record of `site`.
    fn note_site(&mut self, id: &str, site: &SiteId) {
        self.sites.insert(id.to_owned(), site.clone());
    }

    /// The site whose record object `id` comes from; `None` for a course or session,
    /// which central derives.
    pub(crate) fn site_of(&self, id: &str) -> Option<&SiteId> {
        self.sites.get(id)
    }

    /// The objects of one kind.
    pub(crate) fn of(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::Org => &self.orgs,
            Kind::User => &self.users,
            Kind::Class => &self.classes,
            Kind::Enrollment => &self.enrollments,
            Kind::Course => &self.courses,
            Kind::AcademicSession => &self.sessions,
            Kind::Demographics => &self.demographics,
        }
    }
}

/// An object with the fields every OneRoster object has.
fn common(mut object: Value, id: &str, modified: Timestamp) -> Value {
    object["sourcedId"] = json!(id);
    object["status"] = json!("active");
    object["dateLastModified"] = json!(modified.to_string());
    object
}

/// A derived object (course, session) while it is collected: its JSON without the common
/// fields, and the earliest time one of its classes took its present content.
struct Derived {
    json: Value,
    since: Timestamp,
}

impl Derived {
    fn note(
        map: &mut BTreeMap<String, Derived>,
        id: &str,
        since: Timestamp,
        json: impl FnOnce() -> Value,
    ) {
        match map.get_mut(id) {
            Some(derived) => derived.since = derived.since.min(since),
            None => {
                map.insert(
                    id.to_owned(),
                    Derived {
                        json: json(),
                        since,
                    },
                );
            }
        }
    }

    fn finish(map: BTreeMap<String, Derived>) -> Vec<Value> {
        map.into_iter()
            .map(|(id, derived)| common(derived.json, &id, derived.since))
            .collect()
    }
}

/// The academic session of a school year.
fn session_json(year: SchoolYear) -> Value {
    json!({
        "title": year.title(),
        "startDate": year.start_date(),
        "endDate": year.end_date(),
        "type": "schoolYear",
        "parent": null,
        "children": [],
        "schoolYear": year.ending_year(),
    })
}

/// The moment a roster is mapped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// The current records.
    Now,
    /// The records as they stood then ([`crate::store::RecordStore::roster_as_of`]), for the
    /// deletions since ([`deletions`]).
    AsOf(Timestamp),
}

/// Which records beyond the schools a mapping reads: only what the kinds an answer shows
/// are made of, since each kind costs a read of all its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    groups: bool,
    enrollments: bool,
    students: bool,
}

impl Needs {
    /// What objects of `kinds` are made of: a class, course or session of a basisgruppe,
    /// an enrollment of an enrollment, a user or demographics of a student and the
    /// enrollments that place it.
    pub(crate) fn of(kinds: impl IntoIterator<Item = Kind>) -> Needs {
        let mut needs = Needs::default();
        for kind in kinds {
            match kind {
                Kind::Org => {}
                Kind::Class | Kind::Course | Kind::AcademicSession => needs.groups = true,
                Kind::Enrollment => needs.enrollments = true,
                Kind::User | Kind::Demographics => {
                    needs.enrollments = true;
                    needs.students = true;
                }
            }
        }
        needs
    }
}

/// The records of one site the mapping reads, by kind.
#[derive(Default)]
struct SiteRecords {
    schools: Vec<CurrentRecord>,
    groups: Vec<CurrentRecord>,
    enrollments: Vec<CurrentRecord>,
    students: Vec<CurrentRecord>,
}

/// A site's records at `moment`. Records as of a past time carry that time as their
/// `modified`: only their content and handle are used.
async fn site_records(
    store: &dyn Store,
    site: &SiteId,
    secret: &SiteSecret,
    identities: &Identities,
    moment: Moment,
    needs: Needs,
) -> Result<SiteRecords, StoreError> {
    let at = match moment {
        Moment::Now => {
            let mut records = SiteRecords {
                schools: store.current_records(site, Entity::School).await?,
                ..SiteRecords::default()
            };
            if needs.groups {
                records.groups = store.current_records(site, Entity::Group).await?;
            }
            if needs.enrollments {
                records.enrollments = store.current_records(site, Entity::Enrollment).await?;
            }
            if needs.students {
                records.students = store.current_records(site, Entity::Student).await?;
            }
            return Ok(records);
        }
        Moment::AsOf(at) => at,
    };
    let roster = store.roster_as_of(site, at).await?;
    Ok(SiteRecords {
        schools: as_of(roster.schools, secret, identities, at, AnyRecord::School),
        groups: as_of(roster.groups, secret, identities, at, AnyRecord::Group),
        enrollments: as_of(
            roster.enrollments,
            secret,
            identities,
            at,
            AnyRecord::Enrollment,
        ),
        students: as_of(roster.students, secret, identities, at, AnyRecord::Student),
    })
}

/// Records of one kind as they stood `at`, in the shape of current ones.
fn as_of<R: Record>(
    records: Vec<R>,
    secret: &SiteSecret,
    identities: &Identities,
    at: Timestamp,
    into: fn(R) -> AnyRecord,
) -> Vec<CurrentRecord> {
    records
        .into_iter()
        .map(|record| {
            let handle = secret.handle(R::ENTITY, record.key());
            CurrentRecord {
                handle,
                identity: identity_of(identities, R::ENTITY, handle),
                record: into(record),
                modified: at,
            }
        })
        .collect()
}

/// Where [`Mapping::site`] puts the objects it maps: the roster, and the courses and
/// sessions collected across sites until they are finished.
struct Mapping<'a> {
    roster: &'a mut ScopedRoster,
    courses: &'a mut BTreeMap<String, Derived>,
    sessions: &'a mut BTreeMap<String, Derived>,
}

impl Mapping<'_> {
    /// Maps one site's records into objects: its covered schools, the basisgrupper and
    /// enrollments at them, and the students those enrollments place. Both the whole-roster
    /// path ([`scoped_roster`]) and the store-paged one (`paged`) map through here, so an
    /// object reads the same whichever served it.
    fn site(
        &mut self,
        scope: &ConsumerScope,
        moment: Moment,
        site: &ScopedSite,
        records: &SiteRecords,
    ) {
        let ScopedSite {
            site,
            secret,
            identities,
        } = site;
        let mut schools: HashSet<CompactString> = HashSet::new();
        let school_ref =
            |school: &str| reference(secret, identities, Entity::School, school, Kind::Org);
        for current in &records.schools {
            let id = sourced_id(&current.identity);
            if let AnyRecord::School(school) = &current.record {
                if scope.covers(school) {
                    schools.insert(school.skolenummer.clone());
                    let json = json!({
                        "metadata": {
                            "organisasjonsnummer": school.organisasjonsnummer,
                            "kommunenummer": school.kommunenummer,
                            "fylkesnummer": school.fylkesnummer,
                        },
                        "name": school.name,
                        "type": "school",
                        "identifier": school.skolenummer,
                        "children": [],
                    });
                    self.roster
                        .note_origin(moment, &id, site, Entity::School, current);
                    self.roster.note_site(&id, site);
                    self.roster.orgs.push(common(json, &id, current.modified));
                }
            }
        }
        for current in &records.groups {
            let AnyRecord::Group(group) = &current.record else {
                continue;
            };
            if !schools.contains(&group.school) {
                continue;
            }
            let school = school_ref(&group.school);
            let school_id = id_of(&school).unwrap_or_default().to_owned();
            let year = group
                .school_year
                .as_deref()
                .and_then(SchoolYear::parse)
                .unwrap_or_else(|| SchoolYear::containing(current.modified));
            let session_id = derived_id("academicSession", &[&year.title()]);
            Derived::note(self.sessions, &session_id, current.modified, || {
                session_json(year)
            });
            let grade = group.grade.as_deref().unwrap_or_default();
            let course_id = derived_id("course", &[&school_id, &year.title(), grade]);
            Derived::note(self.courses, &course_id, current.modified, || {
                let title = match grade {
                    "" => format!("Basisgrupper {}", year.title()),
                    grade => format!("{grade}. trinn {}", year.title()),
                };
                json!({
                    "title": title,
                    "schoolYear": reference_to(Kind::AcademicSession, &session_id),
                    "courseCode": if grade.is_empty() { "basisgruppe".to_owned() } else { format!("trinn-{grade}") },
                    "grades": group.grade.iter().collect::<Vec<_>>(),
                    "subjects": [],
                    "org": school.clone(),
                })
            });
            let json = json!({
                "title": group.name,
                "classCode": group.name,
                "classType": "homeroom",
                "grades": group.grade.iter().collect::<Vec<_>>(),
                "subjects": [],
                "course": reference_to(Kind::Course, &course_id),
                "school": school,
                "terms": [reference_to(Kind::AcademicSession, &session_id)],
                "metadata": {"schoolYear": group.school_year},
            });
            let id = sourced_id(&current.identity);
            self.roster
                .note_origin(moment, &id, site, Entity::Group, current);
            self.roster.note_site(&id, site);
            self.roster
                .classes
                .push(common(json, &id, current.modified));
        }
        // A user's orgs are the scoped schools of its enrollments.
        let mut orgs_of: HashMap<CompactString, Vec<CompactString>> = HashMap::new();
        for current in &records.enrollments {
            let AnyRecord::Enrollment(enrollment) = &current.record else {
                continue;
            };
            if !schools.contains(&enrollment.school) {
                continue;
            }
            orgs_of
                .entry(enrollment.student.clone())
                .or_default()
                .push(enrollment.school.clone());
            let Some(group) = &enrollment.group else {
                continue;
            };
            let json = json!({
                "user": reference(secret, identities, Entity::Student, &enrollment.student, Kind::User),
                "class": reference(secret, identities, Entity::Group, group, Kind::Class),
                "school": school_ref(&enrollment.school),
                "role": "student",
                "primary": "true",
            });
            let id = sourced_id(&current.identity);
            self.roster
                .note_origin(moment, &id, site, Entity::Enrollment, current);
            self.roster.note_site(&id, site);
            self.roster
                .enrollments
                .push(common(json, &id, current.modified));
        }
        for current in &records.students {
            let AnyRecord::Student(student) = &current.record else {
                continue;
            };
            let Some(orgs) = orgs_of.get(&student.source_key) else {
                continue;
            };
            let id = sourced_id(&current.identity);
            self.roster
                .note_origin(moment, &id, site, Entity::Student, current);
            self.roster.note_site(&id, site);
            let sex = match student.gender {
                Gender::Female => Some("female"),
                Gender::Male => Some("male"),
                Gender::Unknown => None,
            };
            let birth_date = student.birth_date.map(|date| date.to_string());
            let json = json!({"birthDate": birth_date, "sex": sex});
            self.roster
                .demographics
                .push(common(json, &id, current.modified));
            let json = json!({
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
                "orgs": orgs.iter().map(|school| school_ref(school)).collect::<Vec<_>>(),
                "grades": [],
                "metadata": {"birthDate": birth_date, "sex": sex},
            });
            self.roster.users.push(common(json, &id, current.modified));
        }
    }
}

/// Every object of the caller's scope at `moment` of the kinds `needs` asks for (the
/// others are left empty). The store keeps no OneRoster objects: this maps the records of
/// the scope's sites, for the lists and lookups the store cannot page itself (`paged`).
/// Mapped as of a past time, each object also notes the record it came from (its
/// `origins`).
pub(crate) async fn scoped_roster(
    store: &dyn Store,
    scope: &ConsumerScope,
    moment: Moment,
    needs: Needs,
) -> Result<ScopedRoster, StoreError> {
    let mut roster = ScopedRoster::default();
    let mut courses: BTreeMap<String, Derived> = BTreeMap::new();
    let mut sessions: BTreeMap<String, Derived> = BTreeMap::new();
    for site in scoped_sites(store, scope).await? {
        let records = site_records(
            store,
            &site.site,
            &site.secret,
            &site.identities,
            moment,
            needs,
        )
        .await?;
        let mut mapping = Mapping {
            roster: &mut roster,
            courses: &mut courses,
            sessions: &mut sessions,
        };
        mapping.site(scope, moment, &site, &records);
    }
    roster.courses = Derived::finish(courses);
    roster.sessions = Derived::finish(sessions);
    Ok(roster)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn derived_ids_differ_with_any_part_and_cannot_be_shifted_between_parts() {
        let id = derived_id("course", &["ab", "c"]);
        assert_eq!(id, derived_id("course", &["ab", "c"]));
        assert_eq!(id.len(), 32);
        assert_ne!(id, derived_id("course", &["a", "bc"]));
        assert_ne!(id, derived_id("academicSession", &["ab", "c"]));
    }
}
