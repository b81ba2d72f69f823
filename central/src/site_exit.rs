//! A school leaving: its data handed back in open formats, then removed from central
//! (docs/PRIVACY.md, "A school or county leaving").
//!
//! In the data flow it reads what the ingest stored, through the store's API only:
//! [`export`] maps the site's current records to OneRoster 1.1 CSV with the same mapping
//! and ids its consumers read (`crate::oneroster::site_roster`), writes its pupils as the
//! elevliste (`crate::elevliste_export::of_site`), and every version of every record it
//! still holds as JSON Lines (`history.jsonl`), with a manifest naming each file's size and
//! SHA-256. [`purge`] writes its audit line first, deletes the site's records in bounded
//! transactions, then revokes its devices and unused enrollment tokens and removes its
//! schools, transfers and handle secret (`store::RetentionStore::forget_site`), and leaves a
//! second line with what went. `skolebro-central site export|purge` and the operator API
//! (`/admin/sites/{site}/export|purge`) call these; the files carry personal data by design
//! and nothing of them is logged.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{Entity, RecordHandle, SiteId};

use crate::audit;
use crate::oneroster::{site_roster, Kind};
use crate::retention::PURGE_BATCH;
use crate::store::{ForgottenSite, Store, StoreError, Timestamp, Version};

/// One file of an export: its name inside the export folder and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl ExportFile {
    /// The file's SHA-256, in hex, as the manifest names it.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

/// A site's export: the files and what the manifest says of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteExport {
    pub site: SiteId,
    pub generated: Timestamp,
    pub files: Vec<ExportFile>,
    /// Record versions in `history.jsonl`.
    pub versions: usize,
    /// Pupils left out of the elevliste for want of a valid national id.
    pub elevliste_left_out: usize,
}

/// The manifest's own name in the export folder.
pub const MANIFEST: &str = "manifest.json";

impl SiteExport {
    /// `manifest.json`: the site, when, and each file with its size and SHA-256, so the
    /// receiving county can check that what it keeps is what central wrote.
    pub fn manifest(&self) -> Value {
        json!({
            "site": self.site.as_str(),
            "generated": self.generated.to_string(),
            "formats": {
                "oneroster/": "OneRoster 1.1 CSV, bulk, the site's current records",
                "elevliste.csv": "the elevliste (semicolon-separated, UTF-8 with BOM), current pupils",
                "history.jsonl": "every version central still holds, one JSON object a line",
            },
            "versions": self.versions,
            "elevliste_left_out": self.elevliste_left_out,
            "files": self.files.iter().map(|file| json!({
                "name": file.name,
                "bytes": file.bytes.len(),
                "sha256": file.sha256(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The whole export as one JSON document, `{"manifest": {…}, "files": [{"name",
    /// "sha256", "text"}]}` (every file is text): what the operator API answers and the web
    /// interface downloads.
    pub fn to_json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|file| {
                json!({
                    "name": file.name,
                    "sha256": file.sha256(),
                    "text": String::from_utf8_lossy(&file.bytes),
                })
            })
            .collect();
        json!({"manifest": self.manifest(), "files": files})
    }

    /// Writes the files and then the manifest into `dir`, which is created and must not
    /// hold an export already. Files are readable by their owner only: they hold personal
    /// data.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("oneroster"))?;
        if dir.join(MANIFEST).exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already holds an export", dir.display()),
            ));
        }
        let manifest =
            serde_json::to_vec_pretty(&self.manifest()).map_err(std::io::Error::other)?;
        for (name, bytes) in self
            .files
            .iter()
            .map(|file| (file.name.as_str(), file.bytes.as_slice()))
            .chain([(MANIFEST, manifest.as_slice())])
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(dir.join(name))?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        Ok(())
    }
}

/// A CSV file's columns, each with the object field it is read from (empty: left blank, as
/// bulk files leave `status` and `dateLastModified`).
type Columns = &'static [(&'static str, &'static str)];

/// The OneRoster 1.1 CSV files: name, the kind written, and its columns.
const ONEROSTER_FILES: [(&str, Kind, Columns); 7] = [
    (
        "orgs.csv",
        Kind::Org,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("name", "name"),
            ("type", "type"),
            ("identifier", "identifier"),
            ("parentSourcedId", "parent"),
        ],
    ),
    (
        "academicSessions.csv",
        Kind::AcademicSession,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("title", "title"),
            ("type", "type"),
            ("startDate", "startDate"),
            ("endDate", "endDate"),
            ("parentSourcedId", "parent"),
            ("schoolYear", "schoolYear"),
        ],
    ),
    (
        "courses.csv",
        Kind::Course,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("schoolYearSourcedId", "schoolYear"),
            ("title", "title"),
            ("courseCode", "courseCode"),
            ("grades", "grades"),
            ("orgSourcedId", "org"),
            ("subjects", "subjects"),
            ("subjectCodes", "subjectCodes"),
        ],
    ),
    (
        "classes.csv",
        Kind::Class,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("title", "title"),
            ("grades", "grades"),
            ("courseSourcedId", "course"),
            ("classCode", "classCode"),
            ("classType", "classType"),
            ("location", "location"),
            ("schoolSourcedId", "school"),
            ("termSourcedIds", "terms"),
            ("subjects", "subjects"),
            ("subjectCodes", "subjectCodes"),
            ("periods", "periods"),
        ],
    ),
    (
        "users.csv",
        Kind::User,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("enabledUser", "enabledUser"),
            ("orgSourcedIds", "orgs"),
            ("role", "role"),
            ("username", "username"),
            ("userIds", "userIds"),
            ("givenName", "givenName"),
            ("familyName", "familyName"),
            ("middleName", "middleName"),
            ("identifier", "identifier"),
            ("email", "email"),
            ("sms", "sms"),
            ("phone", "phone"),
            ("agentSourcedIds", "agents"),
            ("grades", "grades"),
            ("password", ""),
        ],
    ),
    (
        "enrollments.csv",
        Kind::Enrollment,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("classSourcedId", "class"),
            ("schoolSourcedId", "school"),
            ("userSourcedId", "user"),
            ("role", "role"),
            ("primary", "primary"),
            ("beginDate", "beginDate"),
            ("endDate", "endDate"),
        ],
    ),
    (
        "demographics.csv",
        Kind::Demographics,
        &[
            ("sourcedId", "sourcedId"),
            ("status", ""),
            ("dateLastModified", ""),
            ("birthDate", "birthDate"),
            ("sex", "sex"),
            ("americanIndianOrAlaskaNative", ""),
            ("asian", ""),
            ("blackOrAfricanAmerican", ""),
            ("nativeHawaiianOrOtherPacificIslander", ""),
            ("white", ""),
            ("demographicRaceTwoOrMoreRaces", ""),
            ("hispanicOrLatinoEthnicity", ""),
            ("countryOfBirthCode", ""),
            ("stateOfBirthAbbreviation", ""),
            ("cityOfBirth", ""),
            ("publicSchoolResidenceStatus", ""),
        ],
    ),
];

/// A field of an object as one CSV cell: text as it is, a reference as its `sourcedId`, a
/// list as its items joined by commas, a user id as `{type:identifier}`.
fn cell(object: &Value, field: &str) -> String {
    fn one(value: &Value) -> String {
        match value {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            Value::Object(map) => match (map.get("sourcedId"), map.get("identifier")) {
                (Some(id), _) => one(id),
                (None, Some(identifier)) => format!(
                    "{{{}:{}}}",
                    map.get("type").map(one).unwrap_or_default(),
                    one(identifier)
                ),
                (None, None) => String::new(),
            },
            Value::Array(items) => items.iter().map(one).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        }
    }
    if field.is_empty() {
        return String::new();
    }
    object.get(field).map(one).unwrap_or_default()
}

/// Appends one CSV line (RFC 4180: a field with a comma, quote or line break is quoted,
/// quotes doubled; lines end in CRLF).
fn csv_line<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (at, field) in fields.enumerate() {
        if at > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            let _ = write!(out, "\"{}\"", field.replace('"', "\"\""));
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

/// Builds the site's export at `now`. [`StoreError::NoSiteSecret`] for a site central does
/// not know.
pub async fn export(
    store: &dyn Store,
    site: &SiteId,
    now: Timestamp,
) -> Result<SiteExport, StoreError> {
    let roster = site_roster(store, site).await?;
    let mut files = Vec::new();
    let mut manifest = String::new();
    csv_line(&mut manifest, ["propertyName", "value"].into_iter());
    for line in [["manifest.version", "1.0"], ["oneroster.version", "1.1"]] {
        csv_line(&mut manifest, line.into_iter());
    }
    for (name, kind, columns) in ONEROSTER_FILES {
        let mut text = String::new();
        csv_line(&mut text, columns.iter().map(|(column, _)| *column));
        let mut objects: Vec<&Value> = roster.of(kind).iter().collect();
        objects.sort_by_key(|object| cell(object, "sourcedId"));
        for object in objects {
            let cells: Vec<String> = columns
                .iter()
                .map(|(_, field)| cell(object, field))
                .collect();
            csv_line(&mut text, cells.iter().map(String::as_str));
        }
        let stem = name.trim_end_matches(".csv");
        csv_line(
            &mut manifest,
            [format!("file.{stem}").as_str(), "bulk"].into_iter(),
        );
        files.push(ExportFile {
            name: format!("oneroster/{name}"),
            bytes: text.into_bytes(),
        });
    }
    for absent in [
        "lineItems",
        "results",
        "categories",
        "resources",
        "classResources",
        "courseResources",
        "userResources",
    ] {
        csv_line(
            &mut manifest,
            [format!("file.{absent}").as_str(), "absent"].into_iter(),
        );
    }
    csv_line(
        &mut manifest,
        ["source.systemName", "skolebro-central"].into_iter(),
    );
    files.insert(
        0,
        ExportFile {
            name: "oneroster/manifest.csv".to_owned(),
            bytes: manifest.into_bytes(),
        },
    );

    let elevliste = crate::elevliste_export::of_site(&store.current_roster(site).await?);
    files.push(ExportFile {
        name: "elevliste.csv".to_owned(),
        bytes: elevliste.bytes,
    });

    let mut history = String::new();
    let mut versions = 0;
    for (entity, handle) in store.site_record_handles(site).await? {
        for version in store.history(site, entity, &handle).await? {
            let line = version_json(entity, &handle, &version);
            history.push_str(&line.to_string());
            history.push('\n');
            versions += 1;
        }
    }
    files.push(ExportFile {
        name: "history.jsonl".to_owned(),
        bytes: history.into_bytes(),
    });
    Ok(SiteExport {
        site: site.clone(),
        generated: now,
        files,
        versions,
        elevliste_left_out: elevliste.left_out,
    })
}

/// One version of a record as the exports write it: its kind, handle (hex), times and
/// content. `history.jsonl` has one a line; a subject access export (`crate::subject`) lists
/// them per record.
pub(crate) fn version_json(entity: Entity, handle: &RecordHandle, version: &Version) -> Value {
    json!({
        "entity": entity_label(entity),
        "handle": hex::encode(handle.as_bytes()),
        "valid_from": version.valid_from.to_string(),
        "valid_to": version.valid_to.map(|at| at.to_string()),
        "current": version.is_current,
        "stored": version.transaction_time.to_string(),
        "renamed_to": version.renamed_to.map(|to| hex::encode(to.as_bytes())),
        "record": version.record,
    })
}

fn entity_label(entity: Entity) -> &'static str {
    match entity {
        Entity::School => "school",
        Entity::Student => "student",
        Entity::Group => "group",
        Entity::Enrollment => "enrollment",
    }
}

/// What [`purge`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Record versions deleted.
    pub records: u64,
    pub forgotten: ForgottenSite,
}

/// Removes `site` from central on behalf of `actor` for `reason`: the audit line first
/// (no line, no purge), its devices revoked, then every record version in transactions of
/// [`PURGE_BATCH`], then its tokens, schools, transfers and secret, then a line with the
/// counts. A purge
/// stopped half-way is finished by running it again.
pub async fn purge(
    store: &dyn Store,
    site: &SiteId,
    actor: &str,
    reason: &str,
) -> Result<Purged, StoreError> {
    audit::record(store, actor, "site_purge", site.as_str(), reason).await?;
    // Its devices first, so no batch adds a record while the records go.
    let mut revoked_first = 0;
    for (device, record) in store.list_devices().await? {
        if record.site == *site && !record.revoked {
            store.revoke_device(&device).await?;
            revoked_first += 1;
        }
    }
    let mut records = 0;
    loop {
        let deleted = store.purge_site_records(site, PURGE_BATCH).await?;
        records += deleted;
        if deleted < u64::from(PURGE_BATCH) {
            break;
        }
    }
    let mut forgotten = store.forget_site(site).await?;
    forgotten.devices_revoked += revoked_first;
    audit::record(
        store,
        actor,
        "site_purged",
        site.as_str(),
        &format!(
            "{records} record versions deleted; {} devices and {} enrollment tokens revoked; \
             {} schools and {} transfers removed",
            forgotten.devices_revoked,
            forgotten.tokens_revoked,
            forgotten.schools,
            forgotten.transfers
        ),
    )
    .await?;
    Ok(Purged { records, forgotten })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_references_lists_and_user_ids() {
        let object = json!({
            "sourcedId": "u1",
            "orgs": [{"sourcedId": "o1", "type": "org"}, {"sourcedId": "o2", "type": "org"}],
            "school": {"sourcedId": "s1", "type": "org"},
            "userIds": [{"type": "Feide", "identifier": "kari@skole.no"}],
            "middleName": null,
            "primary": false,
        });
        assert_eq!(cell(&object, "orgs"), "o1,o2");
        assert_eq!(cell(&object, "school"), "s1");
        assert_eq!(cell(&object, "userIds"), "{Feide:kari@skole.no}");
        assert_eq!(cell(&object, "middleName"), "");
        assert_eq!(cell(&object, "missing"), "");
        assert_eq!(cell(&object, "primary"), "false");
        let mut line = String::new();
        csv_line(&mut line, ["a", "b,c", "d\"e"].into_iter());
        assert_eq!(line, "a,\"b,c\",\"d\"\"e\"\r\n");
    }
}
