//! The pages of the web interface and the actions behind their forms.
//!
//! Each GET handler takes the signed-in [`Operator`], works out which sites it may see
//! ([`View`]), reads the store and the fleet view, and renders a table; each POST handler also
//! checks the form's CSRF token and the operator's role, writes the audit line, acts, and
//! redirects back. Pages show ids, counts, states and times, never a national id or a name of
//! a pupil: heartbeats carry deviations masked as the agent's `check` prints them (and
//! [`super::deviations`] masks them again), and the roster itself stays behind the operator
//! API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use skolebro_protocol::{DeviceId, SiteId, SiteSchool};

use super::auth::{CsrfForm, EmptyForm, Operator, View};
use super::deviations::deviation_table;
use super::error::PageError;
use super::html::{escape, escape_path, human_bytes, page, plural, see_other};
use super::windows::late_note;
use crate::audit;
use crate::state::UiState;
use crate::store::{DeviceActivity, DeviceRecord, StoreError, Timestamp};
use skolebro_protocol::api::{AgentState, Command, MAX_HELD_ID_LEN};

/// Transfers listed on a site's page.
const TRANSFERS_SHOWN: u32 = 50;

/// Audit lines listed on the audit page.
const AUDIT_SHOWN: u32 = 500;

/// Longest reason an operator may give; it is stored in the audit log.
const MAX_REASON_LEN: usize = 500;

/// `GET /`: the fleet for a signed-in operator, the login page for anyone else.
pub(crate) async fn home() -> Response {
    see_other("/fleet")
}

/// Unknown paths, and sites or devices outside the operator's view, all look alike.
pub(crate) async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "",
        "<p>There is no such page. <a href=\"/fleet\">Back to the fleet</a>.</p>",
    )
}

/// A device as the pages show it: the store's record and what the store holds of its
/// heartbeats, batches and commands.
struct DeviceRow {
    device: DeviceId,
    record: DeviceRecord,
    activity: DeviceActivity,
}

/// The devices the operator may see, sorted by id, with the schools each site is
/// registered with (their names are the site's names; the records' are not trusted).
async fn visible_devices(
    state: &UiState,
    view: &View,
) -> Result<(Vec<DeviceRow>, BTreeMap<SiteId, Vec<SiteSchool>>), StoreError> {
    let store = state.app.store.as_ref();
    let mut activities = store.fleet_activity().await?;
    let devices = store
        .list_devices()
        .await?
        .into_iter()
        .filter(|(_, record)| view.sees(&record.site))
        .map(|(device, record)| DeviceRow {
            activity: activities.remove(&device).unwrap_or_default(),
            device,
            record,
        })
        .collect();
    let mut schools: BTreeMap<SiteId, Vec<SiteSchool>> = BTreeMap::new();
    for (site, school) in store.registered_schools().await? {
        if view.sees(&site) {
            schools.entry(site).or_default().push(school);
        }
    }
    Ok((devices, schools))
}

fn school_names(schools: &BTreeMap<SiteId, Vec<SiteSchool>>, site: &SiteId) -> String {
    schools.get(site).map_or_else(String::new, |schools| {
        schools
            .iter()
            .map(|school| escape(&school.name))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// A time with how long ago it was, or "never".
pub(super) fn when(at: Option<Timestamp>, now: Timestamp) -> String {
    let Some(at) = at else {
        return "<span class=\"note\">never</span>".to_owned();
    };
    let seconds = (now.0 - at.0).max(0) / 1000;
    let ago = match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    };
    format!(
        "{} <span class=\"note\">({ago})</span>",
        escape(&at.to_string())
    )
}

/// The device's state in words an operator acts on.
fn state_words(row: &DeviceRow) -> String {
    if row.record.revoked {
        return "<span class=\"bad\">Revoked: its connections are refused</span>".to_owned();
    }
    let Some(heartbeat) = &row.activity.last_heartbeat else {
        return "<span class=\"note\">No heartbeat yet: the device has never called in</span>"
            .to_owned();
    };
    let (class, words) = match heartbeat.state {
        AgentState::Healthy => ("ok", "Healthy: exports are read and delivered"),
        AgentState::Holding => (
            "warn",
            "Holding a delta for review: release or reject it under Held deltas",
        ),
        AgentState::CentralUnreachable => ("bad", "Cannot reach central; it keeps retrying"),
        AgentState::Error => ("bad", "Failing: see the device's status"),
        AgentState::Enrolling => ("note", "Enrolling with its config stick"),
        AgentState::NotProvisioned => ("bad", "Not provisioned: insert its config stick"),
        AgentState::Unknown => ("note", "In a state this central does not know"),
    };
    format!("<span class=\"{class}\">{words}</span>")
}

/// `GET /fleet`: every device the operator may see, in plain words.
pub(crate) async fn fleet(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let view = operator.view(state.app.store.as_ref()).await?;
    let (devices, schools) = visible_devices(&state, &view).await?;
    let now = Timestamp::now();
    let mut body = String::new();
    if devices.is_empty() {
        body.push_str("<p>No devices are registered for the sites you can see.</p>");
    } else {
        body.push_str(
            "<table id=\"fleet\"><tr><th>Device</th><th>Site</th><th>State</th>\
             <th>Version</th><th>Last heartbeat</th><th>Outbox</th><th>Last export</th>\
             <th>Last batch</th><th></th></tr>",
        );
        for row in &devices {
            let heartbeat = row.activity.last_heartbeat.as_ref();
            let _ = write!(
                body,
                "<tr><td>{device}</td><td><a href=\"/sites/{site_path}\">{site}</a><br>\
                 <span class=\"note\">{names}</span></td><td>{state}</td><td>{version}</td>\
                 <td>{heartbeat_at}</td><td>{outbox}</td><td>{export}</td><td>{batch}</td>\
                 <td>{revoke}</td></tr>",
                device = escape(row.device.as_str()),
                site_path = escape_path(row.record.site.as_str()),
                site = escape(row.record.site.as_str()),
                names = school_names(&schools, &row.record.site),
                state = state_words(row),
                version = heartbeat.map_or_else(
                    || "<span class=\"note\">unknown</span>".to_owned(),
                    |h| escape(&h.version)
                ),
                heartbeat_at = when(row.activity.last_heartbeat_at, now),
                outbox = heartbeat.map_or_else(
                    || "<span class=\"note\">unknown</span>".to_owned(),
                    |h| format!(
                        "{} waiting ({} KiB)",
                        h.outbox_depth,
                        h.outbox_bytes.div_ceil(1024)
                    )
                ),
                export = when(
                    heartbeat.and_then(|h| h.last_export_unix_ms.map(Timestamp)),
                    now
                ),
                batch = match row.activity.last_batch_seq {
                    Some(seq) => format!("#{} {}", seq.0, when(row.activity.last_batch_at, now)),
                    None => "<span class=\"note\">none yet</span>".to_owned(),
                },
                revoke = if operator.is_operations() && !row.record.revoked {
                    format!(
                        "<form class=\"inline\" method=\"post\" action=\"/devices/{}/revoke\">{}\
                         <button type=\"submit\">Revoke (lost or stolen)</button></form>",
                        escape_path(row.device.as_str()),
                        operator.csrf_field()
                    )
                } else {
                    String::new()
                },
            );
        }
        body.push_str("</table>");
    }
    Ok(page(StatusCode::OK, "Fleet", &operator.nav(), &body))
}

/// `GET /sites/{site}`: a school's transfers over time and what to fix in its SAS.
pub(crate) async fn site(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
) -> Result<Response, PageError> {
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    if !view.sees(&site) || store.site_secret(&site).await?.is_none() {
        return Err(operator.not_found());
    }
    let (devices, schools) = visible_devices(&state, &view).await?;
    let counts = store.counts(&site).await?;
    let transfers = store.transfers(&site, TRANSFERS_SHOWN).await?;
    let windows = store.windows(None).await?;
    let site_schools = schools.get(&site).map_or(&[][..], Vec::as_slice);
    let now = Timestamp::now();

    let mut body = String::new();
    let _ = write!(
        body,
        "<p>{names}</p><p>Central holds {} students, {} groups and {} enrollments for this \
         site.</p>",
        counts.students,
        counts.groups,
        counts.enrollments,
        names = school_names(&schools, &site),
    );
    let _ = write!(
        body,
        "<p><a href=\"/reads?site={}\">Reads of this site's data by consumers</a></p>",
        escape_path(site.as_str()),
    );
    body.push_str("<h2>Deviations to fix in the SAS</h2>");
    let site_devices: Vec<_> = devices
        .iter()
        .filter(|row| row.record.site == site)
        .collect();
    let mut reported = false;
    for row in &site_devices {
        if let Some(heartbeat) = &row.activity.last_heartbeat {
            reported = true;
            let _ = write!(
                body,
                "<p>The last export read by {} has <strong>{} {}</strong> and {} {} ({}).</p>",
                escape(row.device.as_str()),
                heartbeat.deviations.errors,
                plural(heartbeat.deviations.errors, "error", "errors"),
                heartbeat.deviations.warnings,
                plural(heartbeat.deviations.warnings, "warning", "warnings"),
                when(row.activity.last_heartbeat_at, now),
            );
            if let Some(table) = deviation_table(&heartbeat.deviation_groups) {
                body.push_str(&table);
            }
        }
    }
    if reported {
        body.push_str(
            "<p class=\"note\">National ids are masked and names left out. On the school's \
             side, <code>skolebro-agent check EXPORT</code> lists every row.</p>",
        );
    } else {
        body.push_str("<p class=\"note\">No device of this site has reported yet.</p>");
    }
    body.push_str("<h2>Transfers</h2>");
    if transfers.is_empty() {
        body.push_str("<p>No batch has been applied for this site yet.</p>");
    } else {
        body.push_str(
            "<table id=\"transfers\"><tr><th>Applied</th><th>Device</th><th>Batch</th>\
             <th>Kind</th><th>Size</th><th>Added</th><th>Changed</th><th>Removed</th>\
             <th>Renamed</th><th>Unchanged</th><th>Deadline</th></tr>",
        );
        for transfer in &transfers {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(Some(transfer.at), now),
                escape(transfer.device.as_str()),
                transfer.seq.0,
                if transfer.snapshot {
                    "snapshot"
                } else {
                    "delta"
                },
                if transfer.bytes == 0 {
                    "<span class=\"note\">not recorded</span>".to_owned()
                } else {
                    human_bytes(transfer.bytes)
                },
                transfer.changes.added,
                transfer.changes.changed,
                transfer.changes.removed,
                transfer.changes.renamed,
                transfer.changes.unchanged,
                late_note(&windows, site_schools, transfer.at),
            );
        }
        body.push_str("</table>");
    }
    Ok(page(
        StatusCode::OK,
        &format!("Site {site}"),
        &operator.nav(),
        &body,
    ))
}

/// `GET /held`: the deltas the devices hold for review, with release and reject forms.
pub(crate) async fn held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let view = operator.view(state.app.store.as_ref()).await?;
    let (devices, schools) = visible_devices(&state, &view).await?;
    let now = Timestamp::now();
    let mut body = String::new();
    let mut any = false;
    for row in &devices {
        let Some(held) = row
            .activity
            .last_heartbeat
            .as_ref()
            .and_then(|h| h.held.as_ref())
        else {
            continue;
        };
        any = true;
        let kinds = |counts: &BTreeMap<String, u64>| {
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts
                    .iter()
                    .map(|(kind, n)| format!("{n} {}", escape(kind)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = write!(
            body,
            "<section class=\"held\"><h2>{device} at <a href=\"/sites/{site_path}\">{site}</a> \
             <span class=\"note\">{names}</span></h2>\
             <p>Held delta <code>{id}</code>{since}, reported {reported}.</p>\
             <p>Why it is held: {reasons}</p><p>It would add or change: {upserts}. \
             It would delete: {deletes}.</p>",
            device = escape(row.device.as_str()),
            site_path = escape_path(row.record.site.as_str()),
            site = escape(row.record.site.as_str()),
            names = school_names(&schools, &row.record.site),
            id = escape(&held.id),
            since = held
                .held_since_unix_ms
                .and_then(|ms| i64::try_from(ms).ok())
                .map(|ms| format!(", held since {}", when(Some(Timestamp(ms)), now)))
                .unwrap_or_default(),
            reported = when(row.activity.last_heartbeat_at, now),
            reasons = escape(&skolebro_protocol::mask_in_text(&held.reasons.join("; "))),
            upserts = kinds(&held.upserts),
            deletes = kinds(&held.deletes),
        );
        let decided = row
            .activity
            .commands
            .iter()
            .rev()
            .find_map(|queued| match &queued.command {
                Command::Release { held_id } if *held_id == held.id => {
                    Some(("release", queued.delivered_at))
                }
                Command::Reject { held_id } if *held_id == held.id => {
                    Some(("reject", queued.delivered_at))
                }
                _ => None,
            });
        match decided {
            Some((decision, None)) => {
                let _ = write!(
                    body,
                    "<p class=\"ok\" id=\"queued\">The {decision} is queued: the device carries \
                     it out with its next heartbeat.</p>"
                );
            }
            // Delivered with the heartbeat shown: the next one tells how it went.
            Some((decision, Some(at))) if row.activity.last_heartbeat_at <= Some(at) => {
                let _ = write!(
                    body,
                    "<p class=\"ok\" id=\"delivered\">The {decision} was delivered {}: the device \
                     reports the outcome with its next heartbeat.</p>",
                    when(Some(at), now)
                );
            }
            // Delivered, yet a later heartbeat still holds the delta: it may be decided again.
            Some((decision, Some(at))) => {
                let _ = write!(
                    body,
                    "<p class=\"warn\" id=\"delivered\">The {decision} was delivered {}, yet the \
                     device still holds the delta.</p>",
                    when(Some(at), now)
                );
            }
            None => {}
        }
        let open = match decided {
            None => true,
            Some((_, delivered)) => {
                delivered.is_some_and(|at| row.activity.last_heartbeat_at > Some(at))
            }
        };
        if open && operator.may_decide_held() {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/devices/{device_path}/held\">{csrf}\
                 <input type=\"hidden\" name=\"held_id\" value=\"{id}\">\
                 <p><label>Reason (kept in the audit log)<br>\
                 <input type=\"text\" name=\"reason\" id=\"reason\" size=\"60\" maxlength=\"{MAX_REASON_LEN}\" required>\
                 </label></p><p><button type=\"submit\" name=\"decision\" value=\"release\" id=\"release\">\
                 Release: send it to central</button>\
                 <button type=\"submit\" name=\"decision\" value=\"reject\" id=\"reject\">\
                 Reject: drop it</button></p></form>",
                device_path = escape_path(row.device.as_str()),
                csrf = operator.csrf_field(),
                id = escape(&held.id),
            );
        }
        body.push_str("</section>");
    }
    if !any {
        body.push_str("<p id=\"none-held\">No device holds a delta for review.</p>");
    }
    Ok(page(StatusCode::OK, "Held deltas", &operator.nav(), &body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HeldForm {
    csrf: String,
    held_id: String,
    decision: String,
    reason: String,
}

impl CsrfForm for HeldForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /devices/{device}/held`: queues a release or reject, as
/// `POST /admin/devices/{device}/commands` does, with the operator and reason audited.
pub(crate) async fn post_held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<HeldForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    if !operator.may_decide_held() {
        return Err(operator.forbidden("Your account may look, not release or reject."));
    }
    let store = state.app.store.as_ref();
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let view = operator.view(store).await?;
    match store.device(&device).await? {
        Some(record) if view.sees(&record.site) => {}
        _ => return Err(operator.not_found()),
    }
    let reason = form.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(operator.forbidden(&format!(
            "Give a reason of 1 to {MAX_REASON_LEN} characters."
        )));
    }
    let command = match form.decision.as_str() {
        "release" => Command::Release {
            held_id: form.held_id.clone(),
        },
        "reject" => Command::Reject {
            held_id: form.held_id.clone(),
        },
        _ => return Err(operator.forbidden("Choose release or reject.")),
    };
    if !command.is_valid() || form.held_id.len() > MAX_HELD_ID_LEN {
        return Err(operator.forbidden("That is not a held delta's id."));
    }
    let detail = format!("held delta {}: {reason}", form.held_id);
    audit::record(
        store,
        &operator.user.name,
        &form.decision,
        device.as_str(),
        &detail,
    )
    .await?;
    match store
        .queue_command(&device, &command, Timestamp::now())
        .await
    {
        Ok(_) => {
            tracing::info!(%device, operator = operator.user.name, decision = form.decision, "held delta decision queued");
            Ok(see_other("/held"))
        }
        Err(full @ StoreError::CommandQueueFull(_)) => Err(operator.forbidden(&full.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// `POST /devices/{device}/revoke`: operations only; refused from the device's next
/// connection on.
pub(crate) async fn post_revoke_device(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden("Only operations may revoke a device."));
    }
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    if store.device(&device).await?.is_none() {
        return Err(operator.not_found());
    }
    audit::record(
        store,
        &operator.user.name,
        "revoke_device",
        device.as_str(),
        "revoked",
    )
    .await?;
    store.revoke_device(&device).await?;
    Ok(see_other("/fleet"))
}

/// `GET /tokens`: the sticks' enrollment tokens; issuing one stays in the CLI.
pub(crate) async fn tokens(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let view = operator.view(state.app.store.as_ref()).await?;
    if matches!(view, View::Only(_)) {
        return Err(operator.not_found());
    }
    let tokens = state.app.store.list_tokens().await?;
    let now = Timestamp::now();
    let mut body = String::from(
        "<p>A config stick is made with <code>skolebro-provision stick</code>, which signs the \
         stick's bundle with the stick key; that key never comes near this server, so sticks \
         are not issued from this page. The command registers the stick's one-time token \
         here.</p>",
    );
    if tokens.is_empty() {
        body.push_str("<p>No tokens are registered.</p>");
    } else {
        body.push_str(
            "<table id=\"tokens\"><tr><th>Token</th><th>Site</th><th>School</th><th>Created</th>\
             <th>Expires</th><th>State</th><th></th></tr>",
        );
        for token in &tokens {
            let status = if token.revoked {
                "<span class=\"bad\">revoked</span>".to_owned()
            } else if let Some(device) = &token.used_by {
                format!(
                    "used by {} {}",
                    escape(device.as_str()),
                    when(token.used_at, now)
                )
            } else if now >= token.expires {
                "<span class=\"note\">expired</span>".to_owned()
            } else {
                "<span class=\"ok\">unused</span>".to_owned()
            };
            let action = if operator.is_operations() && !token.revoked {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/tokens/{}/revoke\">{}\
                     <button type=\"submit\">Revoke</button></form>",
                    escape_path(&token.id),
                    operator.csrf_field()
                )
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{status}</td><td>{action}</td></tr>",
                escape(&token.id),
                escape(token.site.as_str()),
                escape(&token.site_name),
                escape(&token.created.to_string()),
                escape(&token.expires.to_string()),
            );
        }
        body.push_str("</table>");
    }
    Ok(page(
        StatusCode::OK,
        "Sticks and tokens",
        &operator.nav(),
        &body,
    ))
}

/// `POST /tokens/{id}/revoke`: operations only; a lost stick's token is refused from now on.
pub(crate) async fn post_revoke_token(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden("Only operations may revoke a token."));
    }
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(operator.not_found());
    }
    let store = state.app.store.as_ref();
    audit::record(store, &operator.user.name, "revoke_token", &id, "revoked").await?;
    match store.revoke_token(&id).await {
        Ok(()) => Ok(see_other("/tokens")),
        Err(StoreError::TokenUnknown) => Err(operator.not_found()),
        Err(error) => Err(error.into()),
    }
}

/// `GET /audit`: operations only; the newest actions first.
pub(crate) async fn audit_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    if !operator.is_operations() {
        return Err(operator.not_found());
    }
    let entries = state.app.store.audit_log(AUDIT_SHOWN).await?;
    let mut body = String::from(
        "<table id=\"audit\"><tr><th>When</th><th>Who</th><th>Action</th><th>On</th>\
         <th>Detail</th></tr>",
    );
    for entry in &entries {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&entry.at.to_string()),
            escape(&entry.actor),
            escape(&entry.action),
            escape(&entry.target),
            escape(&entry.detail),
        );
    }
    body.push_str("</table>");
    Ok(page(StatusCode::OK, "Audit log", &operator.nav(), &body))
}
