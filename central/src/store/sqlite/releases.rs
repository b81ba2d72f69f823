//! [`ReleaseStore`] on SQLite: releases, their rollout policy and the devices' update reports.
//! The types and the trait are in `crate::store::releases`; the PostgreSQL version of each
//! method is in `postgres/releases.rs`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use skolebro_protocol::DeviceId;

use super::SqliteStore;
use crate::store::columns::u64_to_db;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::releases::{
    release_report, sites_json, NewRelease, ReleaseRecord, ReleaseReport, ReleaseRow, ReleaseStore,
    RolloutChange, UpdateEvent, UpdateState, RELEASE_COLUMNS, RELEASE_ORDER,
};

fn read_release(conn: &Connection, id: &str) -> Result<Option<ReleaseRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?1"
    ))?
    .query_row([id], |row| ReleaseRow::read(row))
    .optional()?
    .map(ReleaseRow::into_record)
    .transpose()
}

/// [`ReleaseStore::create_release`]: insert, or find the same manifest under the id.
fn create_release(conn: &mut Connection, release: &NewRelease) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = tx.execute(
        "INSERT INTO releases \
         (id, major, minor, patch, target, size, sha256, allow_downgrade, manifest, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        params![
            release.id,
            release.version.major,
            release.version.minor,
            release.version.patch,
            release.target,
            u64_to_db(release.size, "artifact size")?,
            &release.sha256[..],
            release.allow_downgrade,
            release.manifest,
            release.registered.0,
        ],
    )?;
    if inserted == 0 {
        let stored: Vec<u8> = tx.query_row(
            "SELECT manifest FROM releases WHERE id = ?1",
            [release.id.as_str()],
            |row| row.get(0),
        )?;
        if stored != release.manifest {
            return Err(StoreError::ReleaseExists(release.id.clone()));
        }
    }
    tx.commit()?;
    Ok(inserted == 1)
}

/// [`ReleaseStore::change_rollout`]: each given setting in one transaction.
fn change_rollout(
    conn: &mut Connection,
    id: &str,
    change: &RolloutChange,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let known = tx
        .query_row("SELECT 1 FROM releases WHERE id = ?1", [id], |_| Ok(()))
        .optional()?;
    if known.is_none() {
        return Err(StoreError::UnknownRelease(id.to_owned()));
    }
    if let Some(percent) = change.percent {
        tx.execute(
            "UPDATE releases SET percent = ?2 WHERE id = ?1",
            params![id, percent],
        )?;
    }
    if let Some(sites) = &change.sites {
        tx.execute(
            "UPDATE releases SET sites = ?2 WHERE id = ?1",
            params![id, sites_json(sites)],
        )?;
    }
    if let Some(paused) = change.paused {
        tx.execute(
            "UPDATE releases SET paused = ?2 WHERE id = ?1",
            params![id, paused],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl ReleaseStore for SqliteStore {
    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool> {
        let release = release.clone();
        Box::pin(self.call(move |conn| create_release(conn, &release)))
    }

    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>> {
        Box::pin(self.call(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases {RELEASE_ORDER}"
            ))?;
            let rows = statement.query_map([], |row| ReleaseRow::read(row))?;
            let mut releases = Vec::new();
            for row in rows {
                releases.push(row?.into_record()?);
            }
            Ok(releases)
        }))
    }

    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| read_release(conn, &id)))
    }

    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let updated = conn.execute(
                "UPDATE releases SET artifact_stored = 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id));
            }
            Ok(())
        }))
    }

    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        let change = change.clone();
        Box::pin(self.call(move |conn| change_rollout(conn, &id, &change)))
    }

    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool> {
        let event = event.clone();
        Box::pin(self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO release_updates (release, device, state, reason, at) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM releases WHERE id = ?1) \
                 ON CONFLICT DO NOTHING",
                params![
                    event.release,
                    event.device.as_str(),
                    event.state.name(),
                    event.reason,
                    event.at.0,
                ],
            )?;
            Ok(inserted == 1)
        }))
    }

    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT device, state, reason FROM release_updates WHERE release = ?1 \
                 ORDER BY device, state",
            )?;
            let rows = statement
                .query_map([id.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            release_report(rows)
        }))
    }

    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>> {
        let device = device.clone();
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT release FROM release_updates \
                 WHERE device = ?1 AND state IN (?2, ?3) ORDER BY release",
            )?;
            let rows = statement.query_map(
                params![
                    device.as_str(),
                    UpdateState::RolledBack.name(),
                    UpdateState::Refused.name()
                ],
                |row| row.get(0),
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        }))
    }
}
