//! The upkeep of `records.enrolled` and `records.grouped` on SQLite: the statements are in
//! `crate::store::paging`; apply (`records.rs`) and erasure (`subjects.rs`) run them in their
//! own transactions. The PostgreSQL version is in `postgres/paging.rs`.

use rusqlite::{params, Connection};

use crate::store::error::StoreError;
use crate::store::paging::{hex_list, refresh_enrolled_sql, refresh_grouped_sql, Dialect, Refresh};

/// Sets `records.enrolled` and `records.grouped` anew on the students and enrollments a
/// write may have changed (`store::paging::refresh_after`), inside the writing transaction.
pub(super) fn refresh_flags(
    conn: &Connection,
    site: &str,
    refresh: &Refresh,
) -> Result<(), StoreError> {
    match refresh {
        Refresh::Site => {
            conn.prepare_cached(&refresh_enrolled_sql(Dialect::Sqlite, false))?
                .execute([site])?;
            conn.prepare_cached(&refresh_grouped_sql(Dialect::Sqlite, false))?
                .execute([site])?;
        }
        Refresh::Records {
            students,
            enrollments,
        } => {
            if !students.is_empty() {
                conn.prepare_cached(&refresh_enrolled_sql(Dialect::Sqlite, true))?
                    .execute(params![site, hex_list(students)])?;
            }
            if !enrollments.is_empty() {
                conn.prepare_cached(&refresh_grouped_sql(Dialect::Sqlite, true))?
                    .execute(params![site, hex_list(enrollments)])?;
            }
        }
    }
    Ok(())
}
