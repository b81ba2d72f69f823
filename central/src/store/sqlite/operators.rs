//! [`OperatorStore`] on SQLite: operator accounts, sessions and the audit log. The types and
//! the trait are in `crate::store::operators`; the PostgreSQL version of each method is in
//! `postgres/operators.rs`.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::operators::{
    AuditEntry, AuditFilter, OperatorStore, UiSession, UiUser, UserRow, USER_COLUMNS,
};
use crate::store::timestamp::Timestamp;

impl OperatorStore for SqliteStore {
    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()> {
        let user = user.clone();
        Box::pin(self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO ui_users (name, role, kommune, password_hash, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    user.name,
                    user.role.as_str(),
                    user.kommune,
                    user.password_hash,
                    user.created.0
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::UserExists(user.name));
            }
            Ok(())
        }))
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>> {
        let name = name.to_owned();
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM ui_users WHERE name = ?1"
            ))?
            .query_row([name.as_str()], |row| UserRow::read(row))
            .optional()?
            .map(UserRow::into_user)
            .transpose()
        }))
    }

    fn users(&self) -> StoreFuture<'_, Vec<UiUser>> {
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM ui_users ORDER BY name"
            ))?;
            let rows = statement.query_map([], |row| UserRow::read(row))?;
            rows.map(|row| row.map_err(StoreError::from).and_then(UserRow::into_user))
                .collect()
        }))
    }

    fn replace_password_hash<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> StoreFuture<'a, bool> {
        let (name, password_hash) = (name.to_owned(), password_hash.to_owned());
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let updated = tx.execute(
                "UPDATE ui_users SET password_hash = ?1 WHERE name = ?2",
                params![password_hash, name],
            )?;
            tx.execute("DELETE FROM ui_sessions WHERE user = ?1", [name.as_str()])?;
            tx.commit()?;
            Ok(updated == 1)
        }))
    }

    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        let id_sha256 = *id_sha256;
        let (user, csrf) = (user.to_owned(), csrf.to_owned());
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM ui_sessions WHERE expires <= ?1", [now.0])?;
            tx.execute(
                "INSERT INTO ui_sessions (id_sha256, user, csrf, expires) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![&id_sha256[..], user, csrf, expires.0],
            )?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>> {
        let id_sha256 = *id_sha256;
        Box::pin(self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, ui_sessions.csrf, ui_sessions.expires \
                 FROM ui_sessions JOIN ui_users ON ui_users.name = ui_sessions.user \
                 WHERE ui_sessions.id_sha256 = ?1 AND ui_sessions.expires > ?2"
            ))?
            .query_row(params![&id_sha256[..], at.0], |row| {
                Ok((
                    UserRow::read(row)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })
            .optional()?
            .map(|(user, csrf, expires)| {
                Ok(UiSession {
                    user: user.into_user()?,
                    csrf,
                    expires: Timestamp(expires),
                })
            })
            .transpose()
        }))
    }

    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()> {
        let id_sha256 = *id_sha256;
        Box::pin(self.call(move |conn| {
            conn.execute(
                "DELETE FROM ui_sessions WHERE id_sha256 = ?1",
                [&id_sha256[..]],
            )?;
            Ok(())
        }))
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()> {
        let entry = entry.clone();
        Box::pin(self.call(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    entry.at.0,
                    entry.actor,
                    entry.action,
                    entry.target,
                    entry.detail
                ],
            )?;
            Ok(())
        }))
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.call(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT at, actor, action, target, detail FROM audit_log \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = statement.query_map([limit], |row| AuditEntry::read(row))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn audit_search<'a>(
        &'a self,
        filter: &'a AuditFilter,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        let filter = filter.clone();
        Box::pin(self.call(move |conn| {
            let targets = serde_json::Value::from(filter.targets.clone()).to_string();
            let mut statement = conn.prepare_cached(
                "SELECT at, actor, action, target, detail FROM audit_log \
                 WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) \
                 AND (?3 OR target IN (SELECT value FROM json_each(?4))) \
                 ORDER BY id DESC LIMIT ?5 OFFSET ?6",
            )?;
            let rows = statement.query_map(
                params![
                    filter.actor,
                    filter.action,
                    filter.targets.is_empty(),
                    targets,
                    limit,
                    offset
                ],
                |row| AuditEntry::read(row),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }
}
