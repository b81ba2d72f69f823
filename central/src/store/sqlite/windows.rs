//! [`WindowStore`] on SQLite: creating transfer windows (with the overlap check in the
//! inserting transaction) and reading them. The types and the trait are in
//! `crate::store::windows`; the PostgreSQL version of each method is in `postgres/windows.rs`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fylke::Fylke;
use crate::store::windows::{
    NewWindow, TransferWindow, WindowRow, WindowStore, WINDOW_COLUMNS, WINDOW_ORDER,
};

impl WindowStore for SqliteStore {
    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow> {
        let window = window.clone();
        Box::pin(self.call(move |conn| {
            window.check()?;
            // The write lock first, so no other window of the county slips in between the
            // overlap check and the insert.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = read_windows(&tx, Some(window.fylke))?;
            if let Some(other) = existing.iter().find(|other| window.overlaps(other)) {
                return Err(StoreError::WindowOverlap {
                    fylke: window.fylke,
                    existing: other.id,
                });
            }
            tx.execute(
                "INSERT INTO transfer_windows (fylke, name, opens, closes, created, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    window.fylke.to_string(),
                    window.name,
                    window.opens.0,
                    window.closes.0,
                    window.created.0,
                    window.created_by
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(window.stored(id))
        }))
    }

    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>> {
        Box::pin(self.call(move |conn| read_windows(conn, fylke)))
    }

    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>> {
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WINDOW_COLUMNS} FROM transfer_windows WHERE id = ?1"
            ))?
            .query_row([id], |row| WindowRow::read(row))
            .optional()?
            .map(WindowRow::into_window)
            .transpose()
        }))
    }
}

/// The windows of one county (or all), in [`WINDOW_ORDER`].
fn read_windows(
    conn: &Connection,
    fylke: Option<Fylke>,
) -> Result<Vec<TransferWindow>, StoreError> {
    let county = fylke.map(|fylke| fylke.to_string());
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {WINDOW_COLUMNS} FROM transfer_windows \
         WHERE ?1 IS NULL OR fylke = ?1 {WINDOW_ORDER}"
    ))?;
    let rows = statement.query_map([county], |row| WindowRow::read(row))?;
    let mut windows = Vec::new();
    for row in rows {
        windows.push(row?.into_window()?);
    }
    Ok(windows)
}
