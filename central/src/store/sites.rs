//! The schools each site is registered with, as the store keeps them: written when a stick's
//! token is registered (`POST /admin/tokens`) or by `skolebro-central site`, read by the
//! ingest before a batch is applied (`api::device::batches`: a school outside the device's
//! site is `403 wrong_school`) and by the web interface, whose municipality view and site
//! names come from here, never from the records a device sent. [`SiteStore`] is what the
//! backends implement in their `sites.rs`.
//!
//! A school belongs to at most one site. It is identified by its kommunenummer and
//! skolenummer, or by its organisasjonsnummer; registering a school that another site holds
//! is refused ([`StoreError::SchoolElsewhere`]), and only [`SiteStore::move_school`], an
//! operator's audited action, changes its site.

use skolebro_protocol::{SiteId, SiteSchool};

use super::columns::{stored_site, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// One registered school as both databases read it, before it is checked.
pub(crate) struct SchoolRow {
    pub site: String,
    pub kommunenummer: String,
    pub skolenummer: Option<String>,
    pub organisasjonsnummer: Option<String>,
    pub name: String,
}

impl SchoolRow {
    /// Reads [`SCHOOL_COLUMNS`] from a row of either database.
    pub(crate) fn read<R: DbRow>(row: &R) -> Result<SchoolRow, R::Error> {
        Ok(SchoolRow {
            site: row.column(0)?,
            kommunenummer: row.column(1)?,
            skolenummer: row.column(2)?,
            organisasjonsnummer: row.column(3)?,
            name: row.column(4)?,
        })
    }

    /// The site and school of a stored row; a row the checks would refuse is corrupt.
    pub(crate) fn into_school(self) -> Result<(SiteId, SiteSchool), StoreError> {
        let site = stored_site(&self.site)?;
        let school = SiteSchool {
            kommunenummer: self.kommunenummer,
            skolenummer: self.skolenummer,
            organisasjonsnummer: self.organisasjonsnummer,
            name: self.name,
        }
        .checked()
        .map_err(|error| StoreError::Corrupt(format!("stored school of site {site}: {error}")))?;
        Ok((site, school))
    }
}

/// The columns [`SchoolRow`] reads, in its order.
pub(crate) const SCHOOL_COLUMNS: &str =
    "site, kommunenummer, skolenummer, organisasjonsnummer, name";

/// The rows that name the same school as `school` ([`SiteSchool::key`]'s numbers), as a
/// `WHERE` condition over the placeholders of kommunenummer, skolenummer and
/// organisasjonsnummer. A number `school` lacks is bound as NULL and matches nothing.
pub(crate) fn same_school_condition(kommune: &str, skolenummer: &str, org: &str) -> String {
    format!(
        "(kommunenummer = {kommune} AND skolenummer = {skolenummer}) \
         OR organisasjonsnummer = {org}"
    )
}

/// Refuses a registration of `school` for `site` when one of `holders` (the sites of the
/// rows naming the same school) is another site.
pub(crate) fn check_not_elsewhere(
    school: &SiteSchool,
    site: &SiteId,
    holders: Vec<SiteId>,
) -> Result<(), StoreError> {
    match holders.into_iter().find(|holder| holder != site) {
        Some(holder) => Err(StoreError::SchoolElsewhere {
            school: school.key(),
            site: holder,
        }),
        None => Ok(()),
    }
}

/// The registration of sites with their schools.
pub trait SiteStore: Send + Sync {
    /// Registers `schools` with `site`, all or none, in one transaction. A school already
    /// registered with this site is written again (its name may change); one registered
    /// with another site refuses the whole call with [`StoreError::SchoolElsewhere`].
    fn register_schools<'a>(
        &'a self,
        site: &'a SiteId,
        schools: &'a [SiteSchool],
        at: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// The schools `site` is registered with, by kommunenummer, skolenummer and
    /// organisasjonsnummer. Empty for a site nobody registered: every school is foreign to it.
    fn site_schools<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Vec<SiteSchool>>;

    /// Every registered school with its site, by site: the web interface's scope and names.
    fn registered_schools(&self) -> StoreFuture<'_, Vec<(SiteId, SiteSchool)>>;

    /// Moves the school `school` names (by its numbers) to `to`, under `school`'s numbers
    /// and name, and returns the sites it was registered with. Fails with
    /// [`StoreError::UnknownSchool`] when no site holds it: a new school is registered, not
    /// moved.
    fn move_school<'a>(
        &'a self,
        school: &'a SiteSchool,
        to: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<SiteId>>;
}
