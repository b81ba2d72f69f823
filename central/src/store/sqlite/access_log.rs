//! [`AccessLogStore`] on SQLite: the consumer access log and the sites of each read. The
//! types and the trait are in `crate::store::access_log`; the PostgreSQL version of each
//! method is in `postgres/access_log.rs`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, TransactionBehavior};

use super::SqliteStore;
use crate::store::access_log::{AccessLogStore, Read, ReadFilter, ReadRow, READ_COLUMNS};
use crate::store::columns::u64_to_db;
use crate::store::error::StoreFuture;
use crate::store::timestamp::Timestamp;

impl AccessLogStore for SqliteStore {
    fn log_read<'a>(&'a self, read: &'a Read) -> StoreFuture<'a, i64> {
        let read = read.clone();
        Box::pin(self.call(move |conn| {
            let records = u64_to_db(read.records, "record count")?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO access_log (at, client, client_name, endpoint, filter, records) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                read.at.0,
                read.client,
                read.client_name,
                read.endpoint,
                read.filter,
                records,
            ])?;
            let id = tx.last_insert_rowid();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO access_log_sites (entry, site) VALUES (?1, ?2) \
                     ON CONFLICT DO NOTHING",
                )?;
                for site in &read.sites {
                    insert.execute(params![id, site.as_str()])?;
                }
            }
            tx.commit()?;
            Ok(id)
        }))
    }

    fn reads<'a>(
        &'a self,
        filter: &'a ReadFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Read>> {
        let filter = filter.clone();
        Box::pin(self.call(move |conn| {
            let mut sql = format!("SELECT {READ_COLUMNS} FROM access_log a WHERE true");
            let mut values: Vec<SqlValue> = Vec::new();
            if let Some(client) = filter.client {
                values.push(SqlValue::Text(client));
                sql.push_str(&format!(" AND client = ?{}", values.len()));
            }
            if let Some(sites) = filter.sites {
                if sites.is_empty() {
                    return Ok(Vec::new());
                }
                let mut marks = Vec::with_capacity(sites.len());
                for site in sites {
                    values.push(SqlValue::Text(site.as_str().to_owned()));
                    marks.push(format!("?{}", values.len()));
                }
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM access_log_sites s WHERE s.entry = a.id \
                     AND s.site IN ({}))",
                    marks.join(", ")
                ));
            }
            if let Some(before) = before {
                values.push(SqlValue::Integer(before));
                sql.push_str(&format!(" AND id < ?{}", values.len()));
            }
            values.push(SqlValue::Integer(i64::from(limit)));
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
            let rows = conn
                .prepare(&sql)?
                .query_map(params_from_iter(values), |row| ReadRow::read(row))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut sites_of =
                conn.prepare_cached("SELECT site FROM access_log_sites WHERE entry = ?1")?;
            let mut reads = Vec::with_capacity(rows.len());
            for row in rows {
                let sites = sites_of
                    .query_map([row.id], |site| site.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                reads.push(row.into_read(&sites)?);
            }
            Ok(reads)
        }))
    }

    fn purge_reads(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The sites go with their read (ON DELETE CASCADE).
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM access_log WHERE id IN \
                     (SELECT id FROM access_log WHERE at < ?1 ORDER BY at, id LIMIT ?2)",
                )?
                .execute(params![before.0, i64::from(limit)])?;
            tx.commit()?;
            Ok(deleted as u64)
        }))
    }
}
