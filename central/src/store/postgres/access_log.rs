//! [`AccessLogStore`] on PostgreSQL: the consumer access log and the sites of each read. The
//! types and the trait are in `crate::store::access_log`; the SQLite version of each method
//! is in `sqlite/access_log.rs`.

use super::PostgresStore;
use crate::store::access_log::{AccessLogStore, Read, ReadFilter, ReadRow, READ_COLUMNS};
use crate::store::columns::u64_to_db;
use crate::store::error::StoreFuture;
use crate::store::timestamp::Timestamp;

impl AccessLogStore for PostgresStore {
    fn log_read<'a>(&'a self, read: &'a Read) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let records = u64_to_db(read.records, "record count")?;
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO access_log (at, client, client_name, endpoint, filter, records) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &read.at.0,
                        &read.client,
                        &read.client_name,
                        &read.endpoint,
                        &read.filter,
                        &records,
                    ],
                )
                .await?
                .try_get(0)?;
            let sites: Vec<&str> = read.sites.iter().map(|site| site.as_str()).collect();
            tx.execute(
                "INSERT INTO access_log_sites (entry, site) \
                 SELECT $1, site FROM unnest($2::text[]) AS site ON CONFLICT DO NOTHING",
                &[&id, &sites],
            )
            .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    fn reads<'a>(
        &'a self,
        filter: &'a ReadFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Read>> {
        Box::pin(async move {
            let sites: Option<Vec<&str>> = filter
                .sites
                .as_ref()
                .map(|sites| sites.iter().map(|site| site.as_str()).collect());
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {READ_COLUMNS}, \
                        ARRAY(SELECT site FROM access_log_sites WHERE entry = a.id) \
                 FROM access_log a \
                 WHERE ($1::text IS NULL OR client = $1) \
                   AND ($2::text[] IS NULL OR EXISTS (SELECT 1 FROM access_log_sites s \
                        WHERE s.entry = a.id AND s.site = ANY($2))) \
                   AND ($3::bigint IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4"
            );
            let rows = conn
                .query(&sql, &[&filter.client, &sites, &before, &i64::from(limit)])
                .await?;
            let mut reads = Vec::with_capacity(rows.len());
            for row in &rows {
                let sites: Vec<String> = row.try_get(7)?;
                reads.push(ReadRow::read(row)?.into_read(&sites)?);
            }
            Ok(reads)
        })
    }

    fn purge_reads(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            // The sites go with their read (ON DELETE CASCADE); one statement is one
            // transaction.
            let deleted = conn
                .execute(
                    "DELETE FROM access_log WHERE id IN \
                     (SELECT id FROM access_log WHERE at < $1 ORDER BY at, id LIMIT $2)",
                    &[&before.0, &i64::from(limit)],
                )
                .await?;
            Ok(deleted)
        })
    }
}
