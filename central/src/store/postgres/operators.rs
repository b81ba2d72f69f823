//! [`OperatorStore`] on PostgreSQL: operator accounts, sessions and the audit log. The types
//! and the trait are in `crate::store::operators`; the SQLite version of each method is in
//! `sqlite/operators.rs`.

use super::PostgresStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::operators::{
    AuditEntry, AuditFilter, OperatorStore, UiSession, UiUser, UserRow, USER_COLUMNS,
};
use crate::store::timestamp::Timestamp;

impl OperatorStore for PostgresStore {
    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let inserted = conn
                .execute(
                    "INSERT INTO ui_users (name, role, kommune, password_hash, created) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &user.name,
                        &user.role.as_str(),
                        &user.kommune,
                        &user.password_hash,
                        &user.created.0,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::UserExists(user.name.clone()));
            }
            Ok(())
        })
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM ui_users WHERE name = $1");
            match conn.query_opt(&sql, &[&name]).await? {
                Some(row) => Ok(Some(UserRow::read(&row)?.into_user()?)),
                None => Ok(None),
            }
        })
    }

    fn users(&self) -> StoreFuture<'_, Vec<UiUser>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM ui_users ORDER BY name");
            conn.query(&sql, &[])
                .await?
                .iter()
                .map(|row| UserRow::read(row)?.into_user())
                .collect()
        })
    }

    fn replace_password_hash<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let updated = tx
                .execute(
                    "UPDATE ui_users SET password_hash = $1 WHERE name = $2",
                    &[&password_hash, &name],
                )
                .await?;
            tx.execute("DELETE FROM ui_sessions WHERE \"user\" = $1", &[&name])
                .await?;
            tx.commit().await?;
            Ok(updated == 1)
        })
    }

    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            tx.execute("DELETE FROM ui_sessions WHERE expires <= $1", &[&now.0])
                .await?;
            tx.execute(
                "INSERT INTO ui_sessions (id_sha256, \"user\", csrf, expires) \
                 VALUES ($1, $2, $3, $4)",
                &[&&id_sha256[..], &user, &csrf, &expires.0],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let sql = format!(
                "SELECT {USER_COLUMNS}, ui_sessions.csrf, ui_sessions.expires \
                 FROM ui_sessions JOIN ui_users ON ui_users.name = ui_sessions.\"user\" \
                 WHERE ui_sessions.id_sha256 = $1 AND ui_sessions.expires > $2"
            );
            match conn.query_opt(&sql, &[&&id_sha256[..], &at.0]).await? {
                Some(row) => Ok(Some(UiSession {
                    user: UserRow::read(&row)?.into_user()?,
                    csrf: row.try_get(5)?,
                    expires: Timestamp(row.try_get(6)?),
                })),
                None => Ok(None),
            }
        })
    }

    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute(
                "DELETE FROM ui_sessions WHERE id_sha256 = $1",
                &[&&id_sha256[..]],
            )
            .await?;
            Ok(())
        })
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.at.0,
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.detail,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT at, actor, action, target, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            rows.iter().map(|row| Ok(AuditEntry::read(row)?)).collect()
        })
    }

    fn audit_search<'a>(
        &'a self,
        filter: &'a AuditFilter,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT at, actor, action, target, detail FROM audit_log \
                     WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2) \
                     AND (cardinality($3::text[]) = 0 OR target = ANY($3)) \
                     ORDER BY id DESC LIMIT $4 OFFSET $5",
                    &[
                        &filter.actor,
                        &filter.action,
                        &filter.targets,
                        &i64::from(limit),
                        &i64::from(offset),
                    ],
                )
                .await?;
            rows.iter().map(|row| Ok(AuditEntry::read(row)?)).collect()
        })
    }
}
