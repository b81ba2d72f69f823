//! [`ReleaseStore`] on PostgreSQL: releases, their rollout policy and the devices' update
//! reports. The types and the trait are in `crate::store::releases`; the SQLite version of each
//! method is in `sqlite/releases.rs`.

use skolebro_protocol::DeviceId;

use super::PostgresStore;
use crate::store::columns::u64_to_db;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::releases::{
    release_report, sites_json, NewRelease, ReleaseRecord, ReleaseReport, ReleaseRow, ReleaseStore,
    RolloutChange, UpdateEvent, UpdateState, RELEASE_COLUMNS, RELEASE_ORDER,
};

impl ReleaseStore for PostgresStore {
    fn create_release<'a>(&'a self, release: &'a NewRelease) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let size = u64_to_db(release.size, "artifact size")?;
            let inserted = conn
                .execute(
                    "INSERT INTO releases (id, major, minor, patch, target, size, sha256, \
                     allow_downgrade, manifest, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                    &[
                        &release.id,
                        &i64::from(release.version.major),
                        &i64::from(release.version.minor),
                        &i64::from(release.version.patch),
                        &release.target,
                        &size,
                        &&release.sha256[..],
                        &release.allow_downgrade,
                        &release.manifest,
                        &release.registered.0,
                    ],
                )
                .await?;
            if inserted == 0 {
                let row = conn
                    .query_one(
                        "SELECT manifest FROM releases WHERE id = $1",
                        &[&release.id],
                    )
                    .await?;
                let stored: &[u8] = row.try_get(0)?;
                if stored != release.manifest.as_slice() {
                    return Err(StoreError::ReleaseExists(release.id.clone()));
                }
            }
            Ok(inserted == 1)
        })
    }

    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    &format!("SELECT {RELEASE_COLUMNS} FROM releases {RELEASE_ORDER}"),
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| ReleaseRow::read(row)?.into_record())
                .collect()
        })
    }

    fn release<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .query_opt(
                    &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.map(|row| ReleaseRow::read(&row)?.into_record())
                .transpose()
        })
    }

    fn set_artifact_stored<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let updated = conn
                .execute(
                    "UPDATE releases SET artifact_stored = true WHERE id = $1",
                    &[&id],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id.to_owned()));
            }
            Ok(())
        })
    }

    fn change_rollout<'a>(&'a self, id: &'a str, change: &'a RolloutChange) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            // One statement: a setting left out keeps its stored value.
            let percent = change.percent.map(i16::from);
            let sites = change.sites.as_deref().map(sites_json);
            let updated = conn
                .execute(
                    "UPDATE releases SET percent = COALESCE($2, percent), \
                     sites = COALESCE($3, sites), paused = COALESCE($4, paused) WHERE id = $1",
                    &[&id, &percent, &sites, &change.paused],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::UnknownRelease(id.to_owned()));
            }
            Ok(())
        })
    }

    fn record_update<'a>(&'a self, event: &'a UpdateEvent) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let inserted = conn
                .execute(
                    "INSERT INTO release_updates (release, device, state, reason, at) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE EXISTS (SELECT 1 FROM releases WHERE id = $1) \
                     ON CONFLICT DO NOTHING",
                    &[
                        &event.release,
                        &event.device.as_str(),
                        &event.state.name(),
                        &event.reason,
                        &event.at.0,
                    ],
                )
                .await?;
            Ok(inserted == 1)
        })
    }

    fn release_report<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ReleaseReport> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT device, state, reason FROM release_updates WHERE release = $1 \
                     ORDER BY device, state",
                    &[&id],
                )
                .await?;
            let rows = rows
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            release_report(rows)
        })
    }

    fn failed_releases<'a>(&'a self, device: &'a DeviceId) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT DISTINCT release FROM release_updates \
                     WHERE device = $1 AND state IN ($2, $3) ORDER BY release",
                    &[
                        &device.as_str(),
                        &UpdateState::RolledBack.name(),
                        &UpdateState::Refused.name(),
                    ],
                )
                .await?;
            rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
        })
    }
}
