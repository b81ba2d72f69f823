//! The audit line of a `skolebro-central` command run on central's host, written as
//! `cli:<login name>` (`skolebro_central::sites::cli_actor`): the one writer the commands
//! that read personal data or change something share.

use skolebro_central::sites;
use skolebro_central::store::{AuditEntry, Store, Timestamp};

/// Writes a command's change to the audit log before it is made (or an export once it is
/// read), as the web interface's changes are, with the operator's login name as `cli:<name>`.
pub(super) async fn audit_cli(
    store: &dyn Store,
    action: &str,
    target: &str,
    detail: &str,
) -> anyhow::Result<()> {
    store
        .append_audit(&AuditEntry {
            at: Timestamp::now(),
            actor: sites::cli_actor(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        })
        .await?;
    Ok(())
}
