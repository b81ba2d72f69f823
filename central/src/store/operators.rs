//! The web interface's operator accounts, sessions and audit log, as the UI's sign-in and
//! every audited action read and write them through [`OperatorStore`].

use super::columns::DbRow;
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// What an operator account may see and do in the web interface (`crate::ui`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The platform team: every site, every action.
    Operations,
    /// A municipality's operator: only the sites whose schools lie in its kommune, and the
    /// held deltas of those sites.
    Municipality,
    /// Looks at everything operations sees, changes nothing.
    ReadOnly,
}

impl Role {
    /// The stored and command-line name: `operations`, `municipality` or `read_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operations => "operations",
            Role::Municipality => "municipality",
            Role::ReadOnly => "read_only",
        }
    }

    /// The role with this name, or `None`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Operations, Role::Municipality, Role::ReadOnly]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// An operator account. Only an argon2id hash of the password is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiUser {
    /// The name the operator signs in with.
    pub name: String,
    pub role: Role,
    /// The kommunenummer of a [`Role::Municipality`] account; `None` for the others.
    pub kommune: Option<String>,
    /// The password's argon2id hash as a PHC string (algorithm, parameters, salt, hash).
    pub password_hash: String,
    pub created: Timestamp,
}

/// A signed-in session as the web interface finds it by its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// Whose session it is, as the account stands now (a changed role applies at once).
    pub user: UiUser,
    /// The token every form of the session carries, checked on every POST.
    pub csrf: String,
    pub expires: Timestamp,
}

/// One line of the audit log: who did what, when, to what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The account's name (or the name tried, for a failed login).
    pub actor: String,
    /// What was done: `login`, `logout`, `release`, `reject`, `revoke_token`, …
    pub action: String,
    /// What it was done to: a device, a token id, a site; empty when nothing.
    pub target: String,
    /// The operator's reason or the outcome, in words.
    pub detail: String,
}

/// Which lines of the audit log a search wants; each field narrows it, and an unset one
/// (or an empty target list) lets every line through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Lines by this account (or name tried) only.
    pub actor: Option<String>,
    /// Lines of this action only (`release`, `create_window`, …).
    pub action: Option<String>,
    /// Lines done to one of these targets only: a site and its devices, for example.
    pub targets: Vec<String>,
}

/// An operator account row as both databases read it, before its role is checked.
pub(crate) struct UserRow {
    pub name: String,
    pub role: String,
    pub kommune: Option<String>,
    pub password_hash: String,
    pub created: i64,
}

/// The columns a [`UserRow`] is read from, in its field order (qualified, for joins).
pub(crate) const USER_COLUMNS: &str =
    "ui_users.name, ui_users.role, ui_users.kommune, ui_users.password_hash, ui_users.created";

impl AuditEntry {
    /// Reads a line of the audit log selected as `at, actor, action, target, detail`, in
    /// either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<AuditEntry, R::Error> {
        Ok(AuditEntry {
            at: Timestamp(row.column(0)?),
            actor: row.column(1)?,
            action: row.column(2)?,
            target: row.column(3)?,
            detail: row.column(4)?,
        })
    }
}

impl UserRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<UserRow, R::Error> {
        Ok(UserRow {
            name: row.column(0)?,
            role: row.column(1)?,
            kommune: row.column(2)?,
            password_hash: row.column(3)?,
            created: row.column(4)?,
        })
    }

    pub(super) fn into_user(self) -> Result<UiUser, StoreError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {:?}", self.role)))?;
        Ok(UiUser {
            name: self.name,
            role,
            kommune: self.kommune,
            password_hash: self.password_hash,
            created: Timestamp(self.created),
        })
    }
}

/// The web interface's operator accounts, sessions and audit log.
pub trait OperatorStore: Send + Sync {
    /// Creates an operator account. A name that exists is [`StoreError::UserExists`].
    fn create_user<'a>(&'a self, user: &'a UiUser) -> StoreFuture<'a, ()>;

    /// The account with this name, or `None`.
    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UiUser>>;

    /// Every account, by name (`skolebro-central list-users`).
    fn users(&self) -> StoreFuture<'_, Vec<UiUser>>;

    /// Replaces the password hash of `name` and ends all its sessions in one transaction, so
    /// a reset password or a disabled account (a hash no password verifies against) takes
    /// effect for a browser already signed in too. `false`: no such account.
    fn replace_password_hash<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Stores a session of `user` by the SHA-256 of its id, with its CSRF token, valid until
    /// `expires`, and drops the sessions that expired before `now`, so the table holds only
    /// live sessions.
    fn create_session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        user: &'a str,
        csrf: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// The session with this id hash if it has not expired at `at`, with its account.
    fn session<'a>(
        &'a self,
        id_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<UiSession>>;

    /// Ends a session (logout); an unknown one is no error.
    fn delete_session<'a>(&'a self, id_sha256: &'a [u8; 32]) -> StoreFuture<'a, ()>;

    /// Appends one line to the audit log.
    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreFuture<'a, ()>;

    /// The newest `limit` lines of the audit log, newest first.
    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// The lines `filter` lets through, newest first, skipping the newest `offset` of them
    /// and returning at most `limit`: one page of the audit page's search.
    fn audit_search<'a>(
        &'a self,
        filter: &'a AuditFilter,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>>;
}
