//! [`SiteStore`] on SQLite: registering sites with their schools, reading the registration
//! and moving a school, each in one `BEGIN IMMEDIATE` transaction. The types and the trait are
//! in `crate::store::sites`; the PostgreSQL version of each method is in `postgres/sites.rs`.

use rusqlite::{params, Connection, TransactionBehavior};
use skolebro_protocol::{SiteId, SiteSchool};

use super::SqliteStore;
use crate::store::columns::stored_site;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sites::{
    check_not_elsewhere, same_school_condition, SchoolRow, SiteStore, SCHOOL_COLUMNS,
};
use crate::store::timestamp::Timestamp;

/// The sites of the rows naming the same school as `school`.
fn holders(conn: &Connection, school: &SiteSchool) -> Result<Vec<SiteId>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT site FROM site_schools WHERE {} ORDER BY site",
        same_school_condition("?1", "?2", "?3")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(
        params![
            school.kommunenummer,
            school.skolenummer,
            school.organisasjonsnummer
        ],
        |row| row.get::<_, String>(0),
    )?;
    let mut sites = Vec::new();
    for site in rows {
        sites.push(stored_site(&site?)?);
    }
    Ok(sites)
}

/// Replaces the rows naming the same school as `school` with `school` registered for `site`.
fn write_school(
    conn: &Connection,
    site: &SiteId,
    school: &SiteSchool,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "DELETE FROM site_schools WHERE {}",
            same_school_condition("?1", "?2", "?3")
        ),
        params![
            school.kommunenummer,
            school.skolenummer,
            school.organisasjonsnummer
        ],
    )?;
    conn.execute(
        "INSERT INTO site_schools \
         (site, kommunenummer, skolenummer, organisasjonsnummer, name, registered) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            site.as_str(),
            school.kommunenummer,
            school.skolenummer,
            school.organisasjonsnummer,
            school.name,
            at.0
        ],
    )?;
    Ok(())
}

fn read_schools(
    conn: &Connection,
    site: Option<&SiteId>,
) -> Result<Vec<(SiteId, SiteSchool)>, StoreError> {
    let filter = if site.is_some() {
        "WHERE site = ?1"
    } else {
        ""
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {SCHOOL_COLUMNS} FROM site_schools {filter} \
         ORDER BY site, kommunenummer, skolenummer, organisasjonsnummer"
    ))?;
    let mut rows = match site {
        Some(site) => statement.query([site.as_str()])?,
        None => statement.query([])?,
    };
    let mut schools = Vec::new();
    while let Some(row) = rows.next()? {
        schools.push(SchoolRow::read(row)?.into_school()?);
    }
    Ok(schools)
}

impl SiteStore for SqliteStore {
    fn register_schools<'a>(
        &'a self,
        site: &'a SiteId,
        schools: &'a [SiteSchool],
        at: Timestamp,
    ) -> StoreFuture<'a, ()> {
        let site = site.clone();
        let schools = schools.to_vec();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for school in &schools {
                check_not_elsewhere(school, &site, holders(&tx, school)?)?;
                write_school(&tx, &site, school, at)?;
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn site_schools<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Vec<SiteSchool>> {
        let site = site.clone();
        Box::pin(self.call(move |conn| {
            let schools = read_schools(conn, Some(&site))?;
            Ok(schools.into_iter().map(|(_, school)| school).collect())
        }))
    }

    fn registered_schools(&self) -> StoreFuture<'_, Vec<(SiteId, SiteSchool)>> {
        Box::pin(self.call(|conn| read_schools(conn, None)))
    }

    fn move_school<'a>(
        &'a self,
        school: &'a SiteSchool,
        to: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<SiteId>> {
        let school = school.clone();
        let to = to.clone();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let from = holders(&tx, &school)?;
            if from.is_empty() {
                return Err(StoreError::UnknownSchool(school.key()));
            }
            write_school(&tx, &to, &school, at)?;
            tx.commit()?;
            Ok(from)
        }))
    }
}
