//! [`SiteStore`] on PostgreSQL: registering sites with their schools, reading the
//! registration and moving a school, each in one transaction that first locks the table
//! against other writers (registrations are rare; reads are not blocked). The types and the
//! trait are in `crate::store::sites`; the SQLite version of each method is in
//! `sqlite/sites.rs`.

use skolebro_protocol::{SiteId, SiteSchool};
use tokio_postgres::GenericClient;

use super::PostgresStore;
use crate::store::columns::stored_site;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::sites::{
    check_not_elsewhere, same_school_condition, SchoolRow, SiteStore, SCHOOL_COLUMNS,
};
use crate::store::timestamp::Timestamp;

/// Serialises the writers of `site_schools`, so two registrations of one school at once
/// cannot both find it free.
const LOCK: &str = "LOCK TABLE site_schools IN SHARE ROW EXCLUSIVE MODE";

/// The sites of the rows naming the same school as `school`.
async fn holders<C: GenericClient + Sync>(
    client: &C,
    school: &SiteSchool,
) -> Result<Vec<SiteId>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT site FROM site_schools WHERE {} ORDER BY site",
        same_school_condition("$1", "$2", "$3")
    );
    let rows = client
        .query(
            &sql,
            &[
                &school.kommunenummer,
                &school.skolenummer,
                &school.organisasjonsnummer,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| stored_site(row.try_get::<_, &str>(0)?))
        .collect()
}

/// Replaces the rows naming the same school as `school` with `school` registered for `site`.
async fn write_school<C: GenericClient + Sync>(
    client: &C,
    site: &SiteId,
    school: &SiteSchool,
    at: Timestamp,
) -> Result<(), StoreError> {
    client
        .execute(
            &format!(
                "DELETE FROM site_schools WHERE {}",
                same_school_condition("$1", "$2", "$3")
            ),
            &[
                &school.kommunenummer,
                &school.skolenummer,
                &school.organisasjonsnummer,
            ],
        )
        .await?;
    client
        .execute(
            "INSERT INTO site_schools \
             (site, kommunenummer, skolenummer, organisasjonsnummer, name, registered) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &site.as_str(),
                &school.kommunenummer,
                &school.skolenummer,
                &school.organisasjonsnummer,
                &school.name,
                &at.0,
            ],
        )
        .await?;
    Ok(())
}

async fn read_schools<C: GenericClient + Sync>(
    client: &C,
    site: Option<&SiteId>,
) -> Result<Vec<(SiteId, SiteSchool)>, StoreError> {
    let order = "ORDER BY site, kommunenummer, skolenummer, organisasjonsnummer";
    let rows = match site {
        Some(site) => {
            let sql = format!("SELECT {SCHOOL_COLUMNS} FROM site_schools WHERE site = $1 {order}");
            client.query(&sql, &[&site.as_str()]).await?
        }
        None => {
            let sql = format!("SELECT {SCHOOL_COLUMNS} FROM site_schools {order}");
            client.query(&sql, &[]).await?
        }
    };
    rows.iter()
        .map(|row| SchoolRow::read(row)?.into_school())
        .collect()
}

impl SiteStore for PostgresStore {
    fn register_schools<'a>(
        &'a self,
        site: &'a SiteId,
        schools: &'a [SiteSchool],
        at: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.batch_execute(LOCK).await?;
            for school in schools {
                check_not_elsewhere(school, site, holders(&tx, school).await?)?;
                write_school(&tx, site, school, at).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn site_schools<'a>(&'a self, site: &'a SiteId) -> StoreFuture<'a, Vec<SiteSchool>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let schools = read_schools(&*conn, Some(site)).await?;
            Ok(schools.into_iter().map(|(_, school)| school).collect())
        })
    }

    fn registered_schools(&self) -> StoreFuture<'_, Vec<(SiteId, SiteSchool)>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_schools(&*conn, None).await
        })
    }

    fn move_school<'a>(
        &'a self,
        school: &'a SiteSchool,
        to: &'a SiteId,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<SiteId>> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.batch_execute(LOCK).await?;
            let from = holders(&tx, school).await?;
            if from.is_empty() {
                return Err(StoreError::UnknownSchool(school.key()));
            }
            write_school(&tx, to, school, at).await?;
            tx.commit().await?;
            Ok(from)
        })
    }
}
