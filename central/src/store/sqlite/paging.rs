//! The upkeep of `records.enrolled` on SQLite: the statements are in `crate::store::paging`;
//! apply (`records.rs`) and erasure (`subjects.rs`) run them in their own transactions. The
//! PostgreSQL version is in `postgres/paging.rs`.

use rusqlite::{params, Connection};

use crate::store::error::StoreError;
use crate::store::paging::{hex_list, refresh_enrolled_sql, Dialect, Refresh};

/// Sets `records.enrolled` anew on the students a write may have changed
/// (`store::paging::refresh_after`), inside the writing transaction.
pub(super) fn refresh_enrolled(
    conn: &Connection,
    site: &str,
    refresh: &Refresh,
) -> Result<(), StoreError> {
    match refresh {
        Refresh::Site => {
            conn.prepare_cached(&refresh_enrolled_sql(Dialect::Sqlite, false))?
                .execute([site])?;
        }
        Refresh::Students(students) if students.is_empty() => {}
        Refresh::Students(students) => {
            conn.prepare_cached(&refresh_enrolled_sql(Dialect::Sqlite, true))?
                .execute(params![site, hex_list(students)])?;
        }
    }
    Ok(())
}
