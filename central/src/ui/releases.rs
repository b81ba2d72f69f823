//! The releases page: what [`crate::release`] has registered, how each rollout is set, and
//! how far it has got on the devices.
//!
//! It reads the same store the operator API's `GET /admin/releases` reads (releases newest
//! first, and per release the counts of devices offered, downloaded, installed, healthy,
//! rolled back and refused, with the reasons the agents gave). Operations change a rollout
//! (a share of devices or named sites), pause and resume it through the forms here, which go
//! through [`apply_rollout`], the path of `POST /admin/releases/{id}/rollout|pause|resume`:
//! the audit line first, then the store. Municipality and read-only accounts see the page
//! without forms, and a POST from them is refused with nothing changed. A municipality
//! account sees device ids and named sites only of its own kommune.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use skolebro_protocol::release::valid_release_id;
use skolebro_protocol::{DeviceId, SiteId};

use super::auth::{CsrfForm, EmptyForm, Operator, View};
use super::error::PageError;
use super::html::{escape, escape_path, human_bytes, page, plural, see_other};
use crate::release::{apply_rollout, rollout_change};
use crate::state::UiState;
use crate::store::{DeviceReason, ReleaseRecord, RolloutChange, StoreError};

/// `GET /releases`: every release with its rollout and its progress; forms for operations.
pub(crate) async fn releases(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let releases = store.releases().await?;
    // Which site each device is at, to show a municipality only its own devices' reasons.
    let sites: HashMap<DeviceId, SiteId> = match view {
        View::All => HashMap::new(),
        View::Only(_) => store
            .list_devices()
            .await?
            .into_iter()
            .map(|(device, record)| (device, record.site))
            .collect(),
    };
    let sees_device = |device: &DeviceId| match view {
        View::All => true,
        View::Only(_) => sites.get(device).is_some_and(|site| view.sees(site)),
    };
    let mut body = String::from(
        "<p>Releases are registered and uploaded with <code>skolebro-provision release</code>. \
         Each heartbeat offers a device the newest release for its target that its rollout \
         includes; the device checks the signed manifest itself.</p>",
    );
    if releases.is_empty() {
        body.push_str("<p id=\"no-releases\">No release is registered.</p>");
    }
    for record in &releases {
        let release = &record.release;
        let report = store.release_report(&release.id).await?;
        let counts = report.counts;
        let _ = write!(
            body,
            "<section class=\"release\"><h2>{version} <span class=\"note\">{target}</span></h2>\
             <p>{size}, registered {registered}. {artifact}</p>\
             <p>Rollout: <strong class=\"rollout\">{policy}</strong></p>\
             <table class=\"progress\"><tr><th>Offered</th><th>Downloaded</th>\
             <th>Installed</th><th>Healthy</th><th>Rolled back</th><th>Refused</th></tr>\
             <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            counts.offered,
            counts.downloaded,
            counts.installed,
            counts.healthy,
            counts.rolled_back,
            counts.refused,
            version = escape(&release.version.to_string()),
            target = escape(&release.target),
            size = human_bytes(release.size),
            registered = escape(&release.registered.to_string()),
            artifact = if record.artifact_stored {
                "<span class=\"ok\">The artifact is uploaded.</span>"
            } else {
                "<span class=\"warn\">The artifact is not uploaded yet: no device is offered \
                 it.</span>"
            },
            policy = policy_words(record, &view),
        );
        reasons(&mut body, "Rolled back", &report.rollbacks, &sees_device);
        reasons(&mut body, "Refused", &report.refusals, &sees_device);
        if operator.is_operations() {
            forms(&mut body, record, &operator);
        }
        body.push_str("</section>");
    }
    Ok(page(
        StatusCode::OK,
        "Releases and rollouts",
        &operator.nav(),
        &body,
    ))
}

/// The rollout policy in plain words: "30 % of devices", "sites: fana, os", "paused".
fn policy_words(record: &ReleaseRecord, view: &View) -> String {
    let mut parts = Vec::new();
    if record.percent > 0 {
        parts.push(format!("{} % of devices", record.percent));
    }
    let shown: Vec<String> = record
        .sites
        .iter()
        .filter(|site| view.sees(site))
        .map(|site| escape(site.as_str()))
        .collect();
    if !shown.is_empty() {
        parts.push(format!("sites: {}", shown.join(", ")));
    }
    let others = record.sites.len() - shown.len();
    if others > 0 {
        parts.push(format!(
            "{others} {}",
            plural(others as u64, "other site", "other sites")
        ));
    }
    let policy = if parts.is_empty() {
        "no devices".to_owned()
    } else {
        parts.join(" and ")
    };
    if record.paused {
        format!("paused (when resumed: {policy})")
    } else {
        policy
    }
}

/// The devices that rolled back or refused, with the reasons their agents gave.
fn reasons(
    body: &mut String,
    title: &str,
    devices: &[DeviceReason],
    sees: &dyn Fn(&DeviceId) -> bool,
) {
    if devices.is_empty() {
        return;
    }
    let _ = write!(body, "<p>{title}:</p><ul>");
    let mut others = 0usize;
    for device in devices {
        if !sees(&device.device) {
            others += 1;
            continue;
        }
        let _ = write!(
            body,
            "<li>{}: {}</li>",
            escape(device.device.as_str()),
            device.reason.as_deref().map_or_else(
                || "<span class=\"note\">no reason given</span>".to_owned(),
                escape
            ),
        );
    }
    if others > 0 {
        let _ = write!(
            body,
            "<li>{others} {} outside your municipality</li>",
            plural(others as u64, "device", "devices")
        );
    }
    body.push_str("</ul>");
}

/// The forms of operations: the share of devices, the named sites, pause or resume.
fn forms(body: &mut String, record: &ReleaseRecord, operator: &Operator) {
    let id = escape_path(&record.release.id);
    let csrf = operator.csrf_field();
    let sites = record
        .sites
        .iter()
        .map(|site| escape(site.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/releases/{id}/rollout\">{csrf}\
         <p><label>Share of devices (0 to 100 %) \
         <input type=\"number\" name=\"percent\" min=\"0\" max=\"100\" value=\"{percent}\" \
         required></label> <button type=\"submit\">Set the share</button></p></form>\
         <form method=\"post\" action=\"/releases/{id}/rollout\">{csrf}\
         <p><label>Sites whose devices all get it (ids, separated by commas; empty for none) \
         <input type=\"text\" name=\"sites\" size=\"60\" value=\"{sites}\"></label> \
         <button type=\"submit\">Set the sites</button></p></form>",
        percent = record.percent,
    );
    let (action, words) = if record.paused {
        ("resume", "Resume: offer it again under its rollout")
    } else {
        ("pause", "Pause: offer it to no device")
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/releases/{id}/{action}\">{csrf}\
         <p><button type=\"submit\">{words}</button></p></form>"
    );
}

#[derive(Debug, Deserialize)]
pub(crate) struct RolloutForm {
    csrf: String,
    percent: Option<String>,
    sites: Option<String>,
}

impl CsrfForm for RolloutForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /releases/{id}/rollout`: operations only; sets the share of devices or the sites.
pub(crate) async fn post_rollout(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<RolloutForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    change(&state, &operator, &id, move || {
        let percent = match form.percent.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(
                text.parse::<u8>()
                    .map_err(|_| "The share is a whole number from 0 to 100.".to_owned())?,
            ),
        };
        let sites = form.sites.map(|text| {
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|site| !site.is_empty())
                .map(str::to_owned)
                .collect()
        });
        rollout_change(percent, sites).map_err(str::to_owned)
    })
    .await
}

/// `POST /releases/{id}/pause`: operations only; offered to no device until resumed.
pub(crate) async fn post_pause(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    set_paused(&state, &operator, &id, form, true).await
}

/// `POST /releases/{id}/resume`: operations only; offered again under its rollout.
pub(crate) async fn post_resume(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    set_paused(&state, &operator, &id, form, false).await
}

/// Pause and resume: the same change with the flag either way.
async fn set_paused(
    state: &UiState,
    operator: &Operator,
    id: &str,
    form: Result<Form<EmptyForm>, FormRejection>,
    paused: bool,
) -> Result<Response, PageError> {
    operator.form(form)?;
    change(state, operator, id, || {
        Ok(RolloutChange {
            paused: Some(paused),
            ..RolloutChange::default()
        })
    })
    .await
}

/// The checks every change goes through after the form's CSRF token, in order: operations,
/// a release id, a valid change; then [`apply_rollout`] audits and changes.
async fn change(
    state: &UiState,
    operator: &Operator,
    id: &str,
    build: impl FnOnce() -> Result<RolloutChange, String>,
) -> Result<Response, PageError> {
    if !operator.is_operations() {
        return Err(operator.forbidden("Only operations may change a rollout."));
    }
    let no_such_release = || PageError::NoSuchRelease {
        nav: operator.nav(),
    };
    if !valid_release_id(id) {
        return Err(no_such_release());
    }
    let change = build().map_err(|why| operator.forbidden(&why))?;
    match apply_rollout(state.app.store.as_ref(), &operator.user.name, id, &change).await {
        Ok(()) => Ok(see_other("/releases")),
        Err(StoreError::UnknownRelease(_)) => Err(no_such_release()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use skolebro_protocol::Version;

    use super::*;
    use crate::store::{NewRelease, Timestamp};

    fn record(percent: u8, sites: &[&str], paused: bool) -> ReleaseRecord {
        ReleaseRecord {
            release: NewRelease {
                id: "1.2.3-aarch64-unknown-linux-gnu".to_owned(),
                version: "1.2.3".parse::<Version>().unwrap(),
                target: "aarch64-unknown-linux-gnu".to_owned(),
                size: 1024,
                sha256: [0; 32],
                allow_downgrade: false,
                manifest: Vec::new(),
                registered: Timestamp(0),
            },
            artifact_stored: true,
            percent,
            sites: sites
                .iter()
                .map(|site| SiteId::new(*site).unwrap())
                .collect(),
            paused,
        }
    }

    #[test]
    fn a_rollout_policy_reads_in_plain_words() {
        let all = View::All;
        assert_eq!(
            policy_words(&record(30, &[], false), &all),
            "30 % of devices"
        );
        assert_eq!(
            policy_words(&record(0, &["fana", "os"], false), &all),
            "sites: fana, os"
        );
        assert_eq!(
            policy_words(&record(10, &["fana"], true), &all),
            "paused (when resumed: 10 % of devices and sites: fana)"
        );
        assert_eq!(policy_words(&record(0, &[], false), &all), "no devices");
        let fana = View::Only(HashSet::from([SiteId::new("fana").unwrap()]));
        assert_eq!(
            policy_words(&record(0, &["fana", "os"], false), &fana),
            "sites: fana and 1 other site"
        );
    }
}
