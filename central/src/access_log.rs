//! Who read what: the consumer API logs every answer that carries personal data before it
//! sends it, and `serve` purges the log once a read is older than `[privacy]
//! access_log_days`.
//!
//! In the data flow it sits between the OneRoster handler and the store: the handler builds
//! its answer from the client's `ScopedRoster`, hands the page (objects still whole) to
//! `log_answer`, and only sends the answer when the row is stored; a store failure is the
//! request's failure, so no personal data leaves unlogged. The row names the client, the
//! path, the filter with every 11-digit run masked ([`mask_in_text`]: a client may filter on
//! a national id), the number of objects and the sites whose records they came from; the
//! operator interface lists rows by client and by site, and a municipality's operators see
//! those touching the sites with schools in their kommune. The rows themselves are kept by
//! [`crate::store::AccessLogStore`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skolebro_protocol::{mask_in_text, SiteId};

use crate::oneroster::{id_of, Kind, ScopedRoster};
use crate::store::{ConsumerClient, Read, Store, StoreError, Timestamp, MAX_LOGGED_FILTER_LEN};

/// The access log's retention when `[privacy] access_log_days` is not set: a school year and
/// its summer, so a question at the start of a year can still be answered about the last.
pub const DEFAULT_RETENTION_DAYS: u64 = 365;

/// Rows deleted per purge transaction: small enough that a purge never holds the log (or,
/// on SQLite, the database) long.
pub const PURGE_BATCH: u32 = 1000;

/// How often `serve` purges.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Whether objects of `kind` carry personal data: users and demographics are pupils, and an
/// enrollment places a pupil in a class. Orgs, classes, courses and sessions are schools'
/// and are not logged.
pub(crate) fn is_personal(kind: Kind) -> bool {
    matches!(kind, Kind::User | Kind::Demographics | Kind::Enrollment)
}

/// One answer about to be sent, as the handler assembled it.
pub(crate) struct Answer<'a> {
    /// The path asked for, without its query.
    pub endpoint: &'a str,
    /// The `filter` parameter as sent.
    pub filter: Option<&'a str>,
    /// The kind of the objects in the answer.
    pub kind: Kind,
    /// The objects, whole (before `fields` cut them), so their ids are there.
    pub objects: &'a [Value],
    /// The mappings the objects came from (the current one and, for a change feed, the
    /// deletions'), to find each object's site.
    pub rosters: &'a [&'a ScopedRoster],
}

/// The row an answer is logged as, at `at`: the filter and path masked and cut, the sites
/// each once.
pub(crate) fn read_of(client: &ConsumerClient, answer: &Answer<'_>, at: Timestamp) -> Read {
    let sites: BTreeSet<&SiteId> = answer
        .objects
        .iter()
        .filter_map(id_of)
        .filter_map(|id| answer.rosters.iter().find_map(|roster| roster.site_of(id)))
        .collect();
    Read {
        id: 0,
        at,
        client: client.id.clone(),
        client_name: client.name.clone(),
        endpoint: mask_in_text(answer.endpoint),
        filter: answer.filter.map(|text| cut(&mask_in_text(text))),
        records: answer.objects.len() as u64,
        sites: sites.into_iter().cloned().collect(),
    }
}

/// `text` cut to [`MAX_LOGGED_FILTER_LEN`] bytes on a character boundary.
fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_LOGGED_FILTER_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Logs `answer` of `client` if it carries personal data. An error means the answer must not
/// be sent.
pub(crate) async fn log_answer(
    store: &dyn Store,
    client: &ConsumerClient,
    answer: &Answer<'_>,
) -> Result<(), StoreError> {
    if !is_personal(answer.kind) {
        return Ok(());
    }
    store
        .log_read(&read_of(client, answer, Timestamp::now()))
        .await?;
    Ok(())
}

/// Deletes every read older than `retention` before `now`, [`PURGE_BATCH`] rows per
/// transaction, and returns how many went.
pub async fn purge_expired(
    store: &dyn Store,
    retention: Duration,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let before = Timestamp(now.0.saturating_sub(retention_ms));
    let mut purged = 0;
    loop {
        let deleted = store.purge_reads(before, PURGE_BATCH).await?;
        purged += deleted;
        if deleted < u64::from(PURGE_BATCH) {
            return Ok(purged);
        }
    }
}

/// Purges the log now and then every [`PURGE_INTERVAL`], until the returned task is aborted
/// (or the process ends). A failed purge is logged and tried again at the next tick: the
/// rows stay, nothing is served from them.
pub fn spawn_purge(store: Arc<dyn Store>, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PURGE_INTERVAL);
        loop {
            ticks.tick().await;
            match purge_expired(store.as_ref(), retention, Timestamp::now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "access log purged"),
                Err(error) => tracing::error!(%error, "the access log could not be purged"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::ConsumerScope;

    #[tokio::test]
    async fn a_purge_deletes_the_reads_older_than_the_retention_before_now() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = crate::store::SqliteStore::open(dir.path().join("central.db"))
            .await
            .expect("the store opens");
        let day = 24 * 3600 * 1000;
        for at in [0, 5 * day, 9 * day] {
            let read = Read {
                id: 0,
                at: Timestamp(at),
                client: "c-county".to_owned(),
                client_name: "Inntakskontoret".to_owned(),
                endpoint: "/ims/oneroster/v1p1/users".to_owned(),
                filter: None,
                records: 1,
                sites: Vec::new(),
            };
            store.log_read(&read).await.expect("logged");
        }
        let retention = Duration::from_secs(4 * 24 * 3600);
        let purged = purge_expired(&store, retention, Timestamp(10 * day))
            .await
            .expect("purged");
        assert_eq!(purged, 2, "the reads of day 0 and 5 are older than 4 days");
        let left = store
            .reads(&Default::default(), None, 10)
            .await
            .expect("the reads list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].at, Timestamp(9 * day));
    }

    #[test]
    fn only_pupils_and_their_enrollments_count_as_personal() {
        assert!(is_personal(Kind::User) && is_personal(Kind::Demographics));
        assert!(is_personal(Kind::Enrollment));
        assert!(!is_personal(Kind::Org) && !is_personal(Kind::Class));
        assert!(!is_personal(Kind::Course) && !is_personal(Kind::AcademicSession));
    }

    #[test]
    fn a_logged_filter_is_masked_and_cut() {
        let client = ConsumerClient {
            id: "c-county".to_owned(),
            name: "Inntakskontoret".to_owned(),
            scope: ConsumerScope::County("46".to_owned()),
            secret_salt: [0; 16],
            secret_sha256: [0; 32],
            created: Timestamp(0),
            revoked: false,
        };
        let roster = ScopedRoster::default();
        let rosters = [&roster];
        let long = format!("givenName='{}'", "ø".repeat(MAX_LOGGED_FILTER_LEN));
        let answer = |filter| Answer {
            endpoint: "/ims/oneroster/v1p1/users",
            filter,
            kind: Kind::User,
            objects: &[],
            rosters: &rosters,
        };
        let read = read_of(
            &client,
            &answer(Some("identifier='01814012345'")),
            Timestamp(7),
        );
        assert_eq!(read.filter.as_deref(), Some("identifier='018140*****'"));
        assert_eq!((read.records, read.sites.len()), (0, 0));
        let cut = read_of(&client, &answer(Some(&long)), Timestamp(7));
        assert!(cut
            .filter
            .is_some_and(|text| text.len() <= MAX_LOGGED_FILTER_LEN));
    }
}
