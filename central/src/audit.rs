//! The audit log's one writer: every action that changes something, from the operator API,
//! the web interface or a rollout of either, writes its line here *before* it acts, and
//! refuses to act when the line cannot be written: an action without its line must not
//! happen. Lines name ids and outcomes, never a token, a secret or a hash of one.

use crate::store::{AuditEntry, Store, StoreError, Timestamp};

/// Who the audit log names for the operator API's actions. The listener has no accounts,
/// and the server attaches no peer address to its requests (it is meant for loopback), so
/// the line says which door was used; the host's own access control says who stood there.
pub(crate) const API_ACTOR: &str = "operator-api";

/// Writes one line of the audit log on behalf of `actor` (an account name, or
/// [`API_ACTOR`]).
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
