//! The audit log's one writer: every action that changes something, from the operator API,
//! the web interface or a rollout of either, writes its line here *before* it acts, and
//! refuses to act when the line cannot be written: an action without its line must not
//! happen. Lines name ids and outcomes, never a token, a secret or a hash of one.

use crate::store::{AuditEntry, Store, StoreError, Timestamp};

/// Writes one line of the audit log on behalf of `actor`: an account name, `cli:<login>`
/// for `skolebro-central`'s commands, or `api:<client>` for the operator API's named clients
/// (`crate::operator_auth`).
pub(crate) async fn record(
    store: &dyn Store,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    store
        .append_audit(&AuditEntry {
            at: Timestamp::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        })
        .await
}
