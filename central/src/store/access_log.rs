//! Who read what: one [`Read`] per consumer API answer that carried personal data, written by
//! the consumer handler (`crate::access_log`) after it built the answer and before it sends
//! it, read back by the operator interface per client, per site and per kommune (as the set
//! of sites with schools in it), and purged once older than the configured retention.
//! [`AccessLogStore`] keeps them; the two backends implement it in `sqlite/access_log.rs` and
//! `postgres/access_log.rs`.

use skolebro_protocol::SiteId;

use super::columns::{stored_site, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// Longest filter text kept: a filter is a query parameter a client chose, and the log must
/// not grow with whatever it sends. Longer ones are cut (on a character boundary).
pub const MAX_LOGGED_FILTER_LEN: usize = 1000;

/// One consumer read as it is logged. The filter is already masked (no 11-digit run left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The row's number, increasing with each read: the paging cursor. `0` before it is stored.
    pub id: i64,
    pub at: Timestamp,
    /// The consumer client's id.
    pub client: String,
    /// The client's name when it read, so the row says who it was after a rename.
    pub client_name: String,
    /// The path asked for, without its query.
    pub endpoint: String,
    /// The `filter` parameter, masked, if the request had one.
    pub filter: Option<String>,
    /// How many objects the answer carried.
    pub records: u64,
    /// The sites whose records were in the answer, sorted, each once.
    pub sites: Vec<SiteId>,
}

/// Which reads a listing returns: all, one client's, or those touching any of some sites
/// (one site's page, or the sites with schools in a municipality operator's kommune).
/// Both given means both hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    pub client: Option<String>,
    /// `Some(empty)` matches nothing: a municipality with no sites sees no reads.
    pub sites: Option<Vec<SiteId>>,
}

/// A read row as both databases return it, before its fields are checked.
pub(crate) struct ReadRow {
    pub id: i64,
    pub at: i64,
    pub client: String,
    pub client_name: String,
    pub endpoint: String,
    pub filter: Option<String>,
    pub records: i64,
}

/// The columns a [`ReadRow`] is read from, in its field order.
pub(crate) const READ_COLUMNS: &str = "id, at, client, client_name, endpoint, filter, records";

impl ReadRow {
    /// Reads a row selected with [`READ_COLUMNS`], in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<ReadRow, R::Error> {
        Ok(ReadRow {
            id: row.column(0)?,
            at: row.column(1)?,
            client: row.column(2)?,
            client_name: row.column(3)?,
            endpoint: row.column(4)?,
            filter: row.column(5)?,
            records: row.column(6)?,
        })
    }

    /// The checked [`Read`], with the sites read beside it.
    pub(crate) fn into_read(self, sites: &[String]) -> Result<Read, StoreError> {
        let mut checked = sites
            .iter()
            .map(|site| stored_site(site))
            .collect::<Result<Vec<_>, _>>()?;
        checked.sort();
        Ok(Read {
            id: self.id,
            at: Timestamp(self.at),
            client: self.client,
            client_name: self.client_name,
            endpoint: self.endpoint,
            filter: self.filter,
            records: u64::try_from(self.records).map_err(|_| {
                StoreError::Corrupt(format!("negative record count {}", self.records))
            })?,
            sites: checked,
        })
    }
}

/// The consumer access log.
pub trait AccessLogStore: Send + Sync {
    /// Appends `read` (its `id` is ignored) with its sites, in one transaction, and returns
    /// the id it got.
    fn log_read<'a>(&'a self, read: &'a Read) -> StoreFuture<'a, i64>;

    /// The reads `filter` selects, newest first, at most `limit`, only those with an id below
    /// `before` when given (the id of the last row of the previous page).
    fn reads<'a>(
        &'a self,
        filter: &'a ReadFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Read>>;

    /// Deletes at most `limit` of the oldest reads from before `before`, with their sites, in
    /// one transaction, and returns how many went: a caller repeats while it gets `limit`,
    /// so a large backlog never holds one long transaction.
    fn purge_reads(&self, before: Timestamp, limit: u32) -> StoreFuture<'_, u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_row_sorts_its_sites_and_refuses_a_negative_count() {
        let row = |records| ReadRow {
            id: 1,
            at: 5,
            client: "c".into(),
            client_name: "C".into(),
            endpoint: "/users".into(),
            filter: None,
            records,
        };
        let read = row(2)
            .into_read(&["skole-2".to_owned(), "skole-1".to_owned()])
            .expect("a read");
        assert_eq!(read.sites[0].as_str(), "skole-1");
        assert!(row(-1).into_read(&[]).is_err());
    }
}
