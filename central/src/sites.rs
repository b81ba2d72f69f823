//! The operators' actions on sites' registrations, as `skolebro-central site` runs them:
//! registering a site's schools and moving a school to another site. Each writes its audit
//! line first and does nothing when the line cannot be written (`crate::audit`), then
//! changes the registration in the store (`crate::store::SiteStore`), which the ingest checks
//! every batch against and the web interface takes scope and names from. Registering with a
//! stick's token (`POST /admin/tokens`) is the other way schools are registered.

use skolebro_protocol::{SiteId, SiteSchool};

use crate::audit;
use crate::store::{Store, StoreError, Timestamp};

/// The audit actor of a command run on central's host: `cli:<login name>`, or `cli` when the
/// environment names nobody. The host's own accounts say who ran it; the line says how.
pub fn cli_actor() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.is_empty() => format!("cli:{user}"),
        _ => "cli".to_owned(),
    }
}

/// Registers `schools` with `site` (a school another site holds is refused with
/// [`StoreError::SchoolElsewhere`]: that takes [`move_school`]), audited as
/// `register_schools` by `actor`.
pub async fn register_schools(
    store: &dyn Store,
    actor: &str,
    site: &SiteId,
    schools: &[SiteSchool],
) -> Result<(), StoreError> {
    let keys: Vec<String> = schools.iter().map(SiteSchool::key).collect();
    let detail = format!("schools [{}]", keys.join(", "));
    audit::record(store, actor, "register_schools", site.as_str(), &detail).await?;
    store
        .register_schools(site, schools, Timestamp::now())
        .await
}

/// Moves `school` (found by its numbers; registered under its name as given) to `to`,
/// audited as `move_school` by `actor`. Returns the sites it was registered with. From then
/// on the old site's batches naming it are refused, the new site's accepted, and the
/// municipality accounts see the sites as their new registrations say.
pub async fn move_school(
    store: &dyn Store,
    actor: &str,
    school: &SiteSchool,
    to: &SiteId,
) -> Result<Vec<SiteId>, StoreError> {
    let detail = format!("school {} to site {to}", school.key());
    audit::record(store, actor, "move_school", &school.key(), &detail).await?;
    store.move_school(school, to, Timestamp::now()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn a_move_is_audited_before_the_school_changes_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("central.db"))
            .await
            .unwrap();
        let store: &dyn Store = &store;
        let from = SiteId::new("4601-46500").unwrap();
        let to = SiteId::new("4602-777").unwrap();
        let school: SiteSchool = "4601/46500=Fana skule".parse().unwrap();
        register_schools(store, "cli:ops", &from, std::slice::from_ref(&school))
            .await
            .unwrap();
        let moved = move_school(store, "cli:ops", &school, &to).await.unwrap();
        assert_eq!(moved, [from]);
        assert_eq!(
            store.site_schools(&to).await.unwrap(),
            std::slice::from_ref(&school)
        );
        let audit = store.audit_log(10).await.unwrap();
        let actions: Vec<_> = audit
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("cli:ops", "move_school", "4601/46500"),
                ("cli:ops", "register_schools", "4601-46500"),
            ]
        );
        assert!(audit[0].detail.contains("to site 4602-777"));
    }
}
