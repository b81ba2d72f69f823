//! Consumer clients (a county's admission office, an LMS) and the schools their scope
//! reaches; [`ConsumerStore`] keeps the clients and their bearer tokens for the consumer API.

use serde::{Deserialize, Serialize};
use skolebro_protocol::School;

use super::columns::{bytes32, DbRow};
use super::error::{StoreError, StoreFuture};
use super::timestamp::Timestamp;

/// Whose data a consumer client may read: the schools of one county (fylkesnummer, two
/// digits) or of one kommune (kommunenummer, four digits). In JSON `{"county": "46"}` or
/// `{"kommune": "4601"}`, as operations write it when they create the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsumerScope {
    County(String),
    Kommune(String),
}

impl ConsumerScope {
    /// Whether the code has the shape its kind needs: a county is two digits, a kommune
    /// four. Anything else would match no school and hide a typo as an empty answer.
    pub fn is_valid(&self) -> bool {
        let (code, len) = match self {
            ConsumerScope::County(code) => (code, 2),
            ConsumerScope::Kommune(code) => (code, 4),
        };
        code.len() == len && code.bytes().all(|b| b.is_ascii_digit())
    }

    /// Whether a school lies inside the scope. A school without a fylkesnummer belongs to
    /// the county its kommunenummer starts with (a kommunenummer is the county's two digits
    /// and two of its own), so an export that leaves out the county still reaches it; a
    /// school with neither number belongs to no scope.
    pub fn covers(&self, school: &School) -> bool {
        let kommune = school.kommunenummer.as_deref().map(str::trim);
        match self {
            ConsumerScope::Kommune(code) => kommune == Some(code.as_str()),
            ConsumerScope::County(code) => match school.fylkesnummer.as_deref().map(str::trim) {
                Some(county) if !county.is_empty() => county == code,
                _ => kommune.is_some_and(|k| k.len() == 4 && k.starts_with(code.as_str())),
            },
        }
    }

    /// The stored kind and code.
    pub(crate) fn to_db(&self) -> (&'static str, &str) {
        match self {
            ConsumerScope::County(code) => ("county", code),
            ConsumerScope::Kommune(code) => ("kommune", code),
        }
    }

    pub(crate) fn from_db(kind: &str, code: String) -> Result<ConsumerScope, StoreError> {
        match kind {
            "county" => Ok(ConsumerScope::County(code)),
            "kommune" => Ok(ConsumerScope::Kommune(code)),
            other => Err(StoreError::Corrupt(format!("unknown scope kind {other:?}"))),
        }
    }
}

/// A consumer's OAuth2 client (a county's admission office, an LMS), as operations create
/// it. Only a salted SHA-256 of its secret is kept: the secret is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerClient {
    /// The client id the consumer authenticates with; not secret.
    pub id: String,
    /// Who the client is, for the operators' list.
    pub name: String,
    /// The only schools the client may read.
    pub scope: ConsumerScope,
    /// Random salt hashed before the secret.
    pub secret_salt: [u8; 16],
    /// SHA-256 of the salt followed by the secret's text.
    pub secret_sha256: [u8; 32],
    pub created: Timestamp,
    /// Revoked by operations: its secret and tokens are refused from then on.
    pub revoked: bool,
}

/// A consumer client row as both databases read it, before its fields are checked.
pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub scope_kind: String,
    pub scope_code: String,
    pub secret_salt: Vec<u8>,
    pub secret_sha256: Vec<u8>,
    pub created: i64,
    pub revoked: bool,
}

/// The columns a [`ClientRow`] is read from, in its field order.
pub(crate) const CLIENT_COLUMNS: &str =
    "id, name, scope_kind, scope_code, secret_salt, secret_sha256, created, revoked";

impl ClientRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<ClientRow, R::Error> {
        Ok(ClientRow {
            id: row.column(0)?,
            name: row.column(1)?,
            scope_kind: row.column(2)?,
            scope_code: row.column(3)?,
            secret_salt: row.column(4)?,
            secret_sha256: row.column(5)?,
            created: row.column(6)?,
            revoked: row.column(7)?,
        })
    }

    pub(super) fn into_client(self) -> Result<ConsumerClient, StoreError> {
        let secret_salt = <[u8; 16]>::try_from(self.secret_salt.as_slice())
            .map_err(|_| StoreError::Corrupt("stored client salt is not 16 bytes".to_owned()))?;
        Ok(ConsumerClient {
            scope: ConsumerScope::from_db(&self.scope_kind, self.scope_code)?,
            secret_sha256: bytes32(&self.secret_sha256, "client secret hash")?,
            secret_salt,
            id: self.id,
            name: self.name,
            created: Timestamp(self.created),
            revoked: self.revoked,
        })
    }
}

/// Consumer clients (OAuth2) and their bearer tokens.
pub trait ConsumerStore: Send + Sync {
    /// Registers a consumer client. An id that exists is [`StoreError::ClientExists`].
    fn create_consumer_client<'a>(&'a self, client: &'a ConsumerClient) -> StoreFuture<'a, ()>;

    /// The client with this id, revoked or not, or `None`.
    fn consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConsumerClient>>;

    /// Every consumer client, oldest first.
    fn list_consumer_clients(&self) -> StoreFuture<'_, Vec<ConsumerClient>>;

    /// Revokes a client: its secret and every token it holds are refused from now on. Again
    /// is no error; an unknown id is [`StoreError::ClientUnknown`].
    fn revoke_consumer_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Stores a bearer token of `client` by its SHA-256, valid until `expires`, and drops
    /// the tokens that expired before `now`, so the table holds only live tokens.
    fn create_consumer_token<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        client: &'a str,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, ()>;

    /// The client a bearer token belongs to, if the token is known, has not expired at `at`
    /// and its client is not revoked; otherwise `None`, whichever the reason, so an answer
    /// never tells a guesser how close it came.
    fn consumer_token_client<'a>(
        &'a self,
        token_sha256: &'a [u8; 32],
        at: Timestamp,
    ) -> StoreFuture<'a, Option<ConsumerClient>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_covers_schools_by_county_or_kommune() {
        let school = |county: Option<&str>, kommune: Option<&str>| School {
            skolenummer: "46505".into(),
            organisasjonsnummer: None,
            kommunenummer: kommune.map(Into::into),
            fylkesnummer: county.map(Into::into),
            name: "Fana skule".into(),
        };
        let county = ConsumerScope::County("46".to_owned());
        let kommune = ConsumerScope::Kommune("4601".to_owned());
        assert!(county.covers(&school(Some("46"), Some("4601"))));
        assert!(county.covers(&school(None, Some("4601"))));
        assert!(!county.covers(&school(Some("03"), Some("4601"))));
        assert!(!county.covers(&school(None, None)));
        assert!(kommune.covers(&school(Some("46"), Some("4601"))));
        assert!(!kommune.covers(&school(Some("46"), Some("4602"))));
        assert!(!kommune.covers(&school(Some("46"), None)));
        assert!(county.is_valid() && kommune.is_valid());
        assert!(!ConsumerScope::County("4601".to_owned()).is_valid());
        assert!(!ConsumerScope::Kommune("46a1".to_owned()).is_valid());
    }
}
