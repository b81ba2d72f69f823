//! The upkeep of `records.enrolled` and `records.grouped` on PostgreSQL: the statements are
//! in `crate::store::paging`; apply (`records.rs`) and erasure (`subjects.rs`) run them in
//! their own transactions. The SQLite version is in `sqlite/paging.rs`.

use skolebro_protocol::RecordHandle;
use tokio_postgres::GenericClient;

use crate::store::error::StoreError;
use crate::store::paging::{refresh_enrolled_sql, refresh_grouped_sql, Dialect, Refresh};

/// Sets `records.enrolled` and `records.grouped` anew on the students and enrollments a
/// write may have changed (`store::paging::refresh_after`), inside the writing transaction.
pub(super) async fn refresh_flags<C: GenericClient + Sync>(
    client: &C,
    site: &str,
    refresh: &Refresh,
) -> Result<(), StoreError> {
    match refresh {
        Refresh::Site => {
            client
                .execute(&refresh_enrolled_sql(Dialect::Postgres, false), &[&site])
                .await?;
            client
                .execute(&refresh_grouped_sql(Dialect::Postgres, false), &[&site])
                .await?;
        }
        Refresh::Records {
            students,
            enrollments,
        } => {
            if !students.is_empty() {
                client
                    .execute(
                        &refresh_enrolled_sql(Dialect::Postgres, true),
                        &[&site, &as_bytes(students)],
                    )
                    .await?;
            }
            if !enrollments.is_empty() {
                client
                    .execute(
                        &refresh_grouped_sql(Dialect::Postgres, true),
                        &[&site, &as_bytes(enrollments)],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Handles as the `bytea[]` a statement's handle list takes.
fn as_bytes(handles: &[RecordHandle]) -> Vec<&[u8]> {
    handles.iter().map(|h| &h.as_bytes()[..]).collect()
}
