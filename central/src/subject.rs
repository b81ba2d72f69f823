//! One pupil's data across central, by national id: the subject access export (GDPR art.
//! 15) and erasure (art. 17) the county's or municipality's operators run (docs/PRIVACY.md,
//! "A pupil's data: access and erasure").
//!
//! In the data flow it reads and deletes what the ingest stored, through the store only
//! (`store::SubjectStore`): the pupil's student records are found by national id (sealed
//! rows by its keyed hash), their enrollments by the pupil's student keys at each site, and
//! every version of each is read back opened. "Consumers that hold it" is what central can
//! honestly say: the consumer clients whose scope covers a school the pupil is or was
//! enrolled at, with the newest logged read of theirs touching the pupil's sites; the access
//! log keeps no pupil, so it cannot say whether a read included this one. Erasure writes
//! its audit line first (no line, no erasure), deletes every version and leaves a tombstone
//! per site, which makes a later batch carrying the pupil hold it back instead of storing it
//! again unseen. `skolebro-central subject`, the operator API (`/admin/subjects/…`) and the
//! web interface's privacy page call these; the national id is never logged, and audited
//! only masked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use skolebro_protocol::{Entity, NationalId, RecordHandle, SiteId};

use crate::audit;
use crate::site_exit::version_json;
use crate::store::{
    AnyRecord, ConsumerClient, ReadFilter, Store, StoreError, Timestamp, Tombstone, Version,
};

/// One record of the pupil at one site, with every version central holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    pub site: SiteId,
    pub entity: Entity,
    pub handle: RecordHandle,
    /// Oldest first.
    pub versions: Vec<Version>,
}

/// A consumer client whose scope covers a school the pupil is or was enrolled at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub client: ConsumerClient,
    /// The pupil's sites with a school in the client's scope.
    pub sites: Vec<SiteId>,
    /// The newest logged read of the client touching one of those sites.
    pub last_read: Option<Timestamp>,
}

/// What central holds of one pupil.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectExport {
    /// The national id, masked: what a listing or a log may show.
    pub subject: String,
    pub generated: Timestamp,
    pub records: Vec<SubjectRecord>,
    pub consumers: Vec<Holder>,
    /// Earlier erasures of the pupil, at the sites in scope.
    pub tombstones: Vec<Tombstone>,
}

impl SubjectExport {
    /// The sites holding a record of the pupil, sorted.
    pub fn sites(&self) -> Vec<SiteId> {
        let sites: BTreeSet<&SiteId> = self.records.iter().map(|record| &record.site).collect();
        sites.into_iter().cloned().collect()
    }

    /// Versions in the export.
    pub fn versions(&self) -> usize {
        self.records
            .iter()
            .map(|record| record.versions.len())
            .sum()
    }

    /// The export as the JSON document the CLI writes and the API and web interface serve.
    /// It holds the pupil's data in clear, by design: it is the answer to the pupil.
    pub fn to_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "generated": self.generated.to_string(),
            "sites": self.sites().iter().map(SiteId::as_str).collect::<Vec<_>>(),
            "records": self.records.iter().map(|record| json!({
                "site": record.site.as_str(),
                "versions": record.versions.iter()
                    .map(|version| version_json(record.entity, &record.handle, version))
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "consumers": self.consumers.iter().map(|holder| json!({
                "client_id": holder.client.id,
                "name": holder.client.name,
                "scope": holder.client.scope,
                "revoked": holder.client.revoked,
                "sites": holder.sites.iter().map(SiteId::as_str).collect::<Vec<_>>(),
                "last_read": holder.last_read.map(|at| at.to_string()),
            })).collect::<Vec<_>>(),
            "consumers_note": "clients whose scope covers a school the pupil is or was \
                enrolled at; the access log names sites, not pupils",
            "erased": self.tombstones.iter().map(tombstone_json).collect::<Vec<_>>(),
        })
    }
}

/// A tombstone as the export and the operator API show it: no hash.
pub fn tombstone_json(tombstone: &Tombstone) -> Value {
    json!({
        "site": tombstone.site.as_str(),
        "erased_at": tombstone.erased_at.to_string(),
        "erased_by": tombstone.erased_by,
        "reason": tombstone.reason,
        "returned": tombstone.returned,
        "returned_at": tombstone.returned_at.map(|at| at.to_string()),
    })
}

/// Which sites an operator may reach: every one, or those of a municipality's kommune.
fn in_scope(within: Option<&[SiteId]>, site: &SiteId) -> bool {
    within.is_none_or(|sites| sites.contains(site))
}

/// The pupil's records at the sites `within` allows (`None`: every site), each with every
/// version, and per site the pupil's student keys.
async fn find(
    store: &dyn Store,
    national_id: &NationalId,
    within: Option<&[SiteId]>,
) -> Result<(Vec<SubjectRecord>, BTreeMap<SiteId, BTreeSet<String>>), StoreError> {
    let mut records = Vec::new();
    let mut keys: BTreeMap<SiteId, BTreeSet<String>> = BTreeMap::new();
    for (site, handle) in store
        .students_with_national_id(national_id.as_str())
        .await?
    {
        if !in_scope(within, &site) {
            continue;
        }
        let versions = store.history(&site, Entity::Student, &handle).await?;
        for version in &versions {
            if let AnyRecord::Student(student) = &version.record {
                keys.entry(site.clone())
                    .or_default()
                    .insert(student.source_key.to_string());
            }
        }
        records.push(SubjectRecord {
            site,
            entity: Entity::Student,
            handle,
            versions,
        });
    }
    for (site, site_keys) in &keys {
        let site_keys: Vec<String> = site_keys.iter().cloned().collect();
        for handle in store.enrollments_naming(site, &site_keys).await? {
            let versions = store.history(site, Entity::Enrollment, &handle).await?;
            records.push(SubjectRecord {
                site: site.clone(),
                entity: Entity::Enrollment,
                handle,
                versions,
            });
        }
    }
    Ok((records, keys))
}

/// The consumer clients whose scope covers a school the pupil's enrollments name (or, for a
/// pupil without one, any school of the pupil's sites).
async fn holders(store: &dyn Store, records: &[SubjectRecord]) -> Result<Vec<Holder>, StoreError> {
    let sites: BTreeSet<&SiteId> = records.iter().map(|record| &record.site).collect();
    let named: BTreeSet<(&SiteId, &str)> = records
        .iter()
        .flat_map(|record| record.versions.iter().map(move |v| (&record.site, v)))
        .filter_map(|(site, version)| match &version.record {
            AnyRecord::Enrollment(enrollment) => Some((site, enrollment.school.as_str())),
            _ => None,
        })
        .collect();
    let schools: Vec<_> = store
        .current_schools()
        .await?
        .into_iter()
        .filter(|(site, school)| {
            sites.contains(site)
                && (named.is_empty() || named.contains(&(site, school.skolenummer.as_str())))
        })
        .collect();
    let mut holders = Vec::new();
    for client in store.list_consumer_clients().await? {
        let covered: BTreeSet<SiteId> = schools
            .iter()
            .filter(|(_, school)| client.scope.covers(school))
            .map(|(site, _)| site.clone())
            .collect();
        if covered.is_empty() {
            continue;
        }
        let sites: Vec<SiteId> = covered.into_iter().collect();
        let filter = ReadFilter {
            client: Some(client.id.clone()),
            sites: Some(sites.clone()),
        };
        let last_read = store
            .reads(&filter, None, 1)
            .await?
            .first()
            .map(|read| read.at);
        holders.push(Holder {
            client,
            sites,
            last_read,
        });
    }
    Ok(holders)
}

/// Everything central holds of the pupil with `national_id` at the sites `within` allows
/// (`None`: every site). Reads only; the caller audits the export.
pub async fn export(
    store: &dyn Store,
    national_id: &NationalId,
    within: Option<&[SiteId]>,
    now: Timestamp,
) -> Result<SubjectExport, StoreError> {
    let (records, _) = find(store, national_id, within).await?;
    let consumers = holders(store, &records).await?;
    let subject = store.subject_hash(national_id.as_str());
    let tombstones = store
        .tombstones()
        .await?
        .into_iter()
        .filter(|tombstone| tombstone.subject == subject && in_scope(within, &tombstone.site))
        .collect();
    Ok(SubjectExport {
        subject: national_id.masked(),
        generated: now,
        records,
        consumers,
        tombstones,
    })
}

/// What [`erase`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Record versions deleted.
    pub versions: u64,
    /// The sites the pupil was erased at, each with a tombstone now.
    pub sites: Vec<SiteId>,
}

/// Erases the pupil with `national_id` at the sites `within` allows on behalf of `actor`
/// for `reason`: the audit line first, then every version of the pupil's student and
/// enrollment records deleted and a tombstone written per site, in one transaction, then a
/// line with the counts.
pub async fn erase(
    store: &dyn Store,
    national_id: &NationalId,
    within: Option<&[SiteId]>,
    actor: &str,
    reason: &str,
    now: Timestamp,
) -> Result<Erased, StoreError> {
    let masked = national_id.masked();
    audit::record(store, actor, "subject_erase", &masked, reason).await?;
    let (records, keys) = find(store, national_id, within).await?;
    let subject = store.subject_hash(national_id.as_str());
    let tombstones: Vec<Tombstone> = keys
        .iter()
        .map(|(site, site_keys)| Tombstone {
            subject: subject.clone(),
            site: site.clone(),
            student_keys: site_keys
                .iter()
                .map(|key| store.subject_hash(key))
                .collect(),
            erased_at: now,
            erased_by: actor.to_owned(),
            reason: reason.to_owned(),
            returned: 0,
            returned_at: None,
        })
        .collect();
    let handles: Vec<(SiteId, Entity, RecordHandle)> = records
        .iter()
        .map(|record| (record.site.clone(), record.entity, record.handle))
        .collect();
    let versions = store.erase_subject(&handles, &tombstones).await?;
    let sites: Vec<SiteId> = keys.into_keys().collect();
    audit::record(
        store,
        actor,
        "subject_erased",
        &masked,
        &format!(
            "{versions} record versions deleted at {} site(s): {}",
            sites.len(),
            sites
                .iter()
                .map(SiteId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await?;
    Ok(Erased { versions, sites })
}

/// Removes the tombstone of the pupil with `subject` (its hash, as
/// [`crate::store::SubjectStore::subject_hash`] makes it) at `site`, audited: the school's
/// next export that carries the pupil stores the pupil again. `false` if there was none.
pub async fn clear_tombstone(
    store: &dyn Store,
    site: &SiteId,
    subject: &str,
    actor: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    audit::record(
        store,
        actor,
        "subject_tombstone_clear",
        site.as_str(),
        reason,
    )
    .await?;
    store.clear_tombstone(site, subject).await
}

/// The sites registered with a school of `kommune`: what a municipality's operators reach
/// (the registration decides, never the records a device sent).
pub async fn kommune_sites(store: &dyn Store, kommune: &str) -> Result<Vec<SiteId>, StoreError> {
    let sites: BTreeSet<SiteId> = store
        .registered_schools()
        .await?
        .into_iter()
        .filter(|(_, school)| school.kommunenummer == kommune)
        .map(|(site, _)| site)
        .collect();
    Ok(sites.into_iter().collect())
}
