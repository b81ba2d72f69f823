//! The upkeep of `records.enrolled` on PostgreSQL: the statements are in
//! `crate::store::paging`; apply (`records.rs`) and erasure (`subjects.rs`) run them in their
//! own transactions. The SQLite version is in `sqlite/paging.rs`.

use tokio_postgres::GenericClient;

use crate::store::error::StoreError;
use crate::store::paging::{refresh_enrolled_sql, Dialect, Refresh};

/// Sets `records.enrolled` anew on the students a write may have changed
/// (`store::paging::refresh_after`), inside the writing transaction.
pub(super) async fn refresh_enrolled<C: GenericClient + Sync>(
    client: &C,
    site: &str,
    refresh: &Refresh,
) -> Result<(), StoreError> {
    match refresh {
        Refresh::Site => {
            client
                .execute(&refresh_enrolled_sql(Dialect::Postgres, false), &[&site])
                .await?;
        }
        Refresh::Students(students) if students.is_empty() => {}
        Refresh::Students(students) => {
            let handles: Vec<&[u8]> = students.iter().map(|h| &h.as_bytes()[..]).collect();
            client
                .execute(
                    &refresh_enrolled_sql(Dialect::Postgres, true),
                    &[&site, &handles],
                )
                .await?;
        }
    }
    Ok(())
}
