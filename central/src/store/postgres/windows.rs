//! [`WindowStore`] on PostgreSQL: creating transfer windows (with the overlap check in the
//! inserting transaction) and reading them. The types and the trait are in
//! `crate::store::windows`; the SQLite version of each method is in `sqlite/windows.rs`.

use tokio_postgres::GenericClient;

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::fylke::Fylke;
use crate::store::windows::{
    NewWindow, TransferWindow, WindowRow, WindowStore, WINDOW_COLUMNS, WINDOW_ORDER,
};

impl WindowStore for PostgresStore {
    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow> {
        Box::pin(async move {
            window.check()?;
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            // Self-conflicting but open to readers: two creations wait for each other, so
            // no other window of the county slips in between the overlap check and the insert.
            tx.batch_execute("LOCK TABLE transfer_windows IN SHARE ROW EXCLUSIVE MODE")
                .await?;
            let existing = read_windows(&tx, Some(window.fylke)).await?;
            if let Some(other) = existing.iter().find(|other| window.overlaps(other)) {
                return Err(StoreError::WindowOverlap {
                    fylke: window.fylke,
                    existing: other.id,
                });
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO transfer_windows \
                     (fylke, name, opens, closes, created, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &window.fylke.to_string(),
                        &window.name,
                        &window.opens.0,
                        &window.closes.0,
                        &window.created.0,
                        &window.created_by,
                    ],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(window.clone().stored(id))
        })
    }

    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            read_windows(&*conn, fylke).await
        })
    }

    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {WINDOW_COLUMNS} FROM transfer_windows WHERE id = $1");
            match conn.query_opt(&sql, &[&id]).await? {
                Some(row) => Ok(Some(WindowRow::read(&row)?.into_window()?)),
                None => Ok(None),
            }
        })
    }
}

/// The windows of one county (or all), in [`WINDOW_ORDER`].
async fn read_windows<C: GenericClient + Sync>(
    conn: &C,
    fylke: Option<Fylke>,
) -> Result<Vec<TransferWindow>, StoreError> {
    let county = fylke.map(|fylke| fylke.to_string());
    let sql = format!(
        "SELECT {WINDOW_COLUMNS} FROM transfer_windows \
         WHERE $1::text IS NULL OR fylke = $1 {WINDOW_ORDER}"
    );
    let rows = conn.query(&sql, &[&county]).await?;
    rows.iter()
        .map(|row| WindowRow::read(row)?.into_window())
        .collect()
}
