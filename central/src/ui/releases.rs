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
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use skolebro_protocol::release::valid_release_id;
use skolebro_protocol::{DeviceId, SiteId};

use super::auth::{CsrfForm, EmptyForm, Operator, View};
use super::error::PageError;
use super::held::{confirmation, reason_of, Confirmation};
use super::html::{escape_path, human_bytes, page, see_other};
use super::text::{current, Lang, Noun};
use crate::release::{apply_rollout, apply_rollout_because, rollout_change};
use crate::state::UiState;
use crate::store::{DeviceReason, ReleaseRecord, RolloutChange, StoreError};

/// `GET /releases`: every release with its rollout and its progress; forms for operations.
pub(crate) async fn releases(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
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
    let mut reports = Vec::with_capacity(releases.len());
    for record in &releases {
        reports.push(store.release_report(&record.release.id).await?);
    }
    let body = html! {
        p {
            (lang.t("Versjoner registreres og lastes opp med ", "Releases are registered and uploaded with "))
            code { "skolebro-provision release" } ". "
            (lang.t(
                "Hvert livstegn tilbyr en enhet den nyeste versjonen for dens mål som utrullingen \
                 omfatter; enheten sjekker selv det signerte manifestet.",
                "Each heartbeat offers a device the newest release for its target that its rollout \
                 includes; the device checks the signed manifest itself.",
            ))
        }
        @if releases.is_empty() {
            p #no-releases { (lang.t("Ingen versjon er registrert.", "No release is registered.")) }
        }
        @for (record, report) in releases.iter().zip(&reports) {
            @let release = &record.release;
            @let counts = &report.counts;
            section.release {
                h2 { (release.version.to_string()) " " span.note { (release.target) } }
                p {
                    (human_bytes(release.size)) (lang.t(", registrert ", ", registered "))
                    (lang.time(release.registered)) ". "
                    @if record.artifact_stored {
                        span.ok { (lang.t("Filen er lastet opp.", "The artifact is uploaded.")) }
                    } @else {
                        span.warn { (lang.t(
                            "Filen er ikke lastet opp ennå: ingen enhet får den tilbudt.",
                            "The artifact is not uploaded yet: no device is offered it.",
                        )) }
                    }
                }
                p { (lang.t("Utrulling: ", "Rollout: ")) strong.rollout { (policy_words(lang, record, &view)) } }
                table.progress tabindex="0" {
                    caption { (lang.t("Fremdrift", "Progress")) }
                    tr {
                        th scope="col" { (lang.t("Tilbudt", "Offered")) }
                        th scope="col" { (lang.t("Lastet ned", "Downloaded")) }
                        th scope="col" { (lang.t("Installert", "Installed")) }
                        th scope="col" { (lang.t("Frisk", "Healthy")) }
                        th scope="col" { (lang.t("Rullet tilbake", "Rolled back")) }
                        th scope="col" { (lang.t("Avslått", "Refused")) }
                    }
                    tr {
                        td { (counts.offered) } td { (counts.downloaded) } td { (counts.installed) }
                        td { (counts.healthy) } td { (counts.rolled_back) } td { (counts.refused) }
                    }
                }
                (reasons(lang, lang.t("Rullet tilbake", "Rolled back"), &report.rollbacks, &sees_device))
                (reasons(lang, lang.t("Avslått", "Refused"), &report.refusals, &sees_device))
                @if operator.is_operations() {
                    (forms(lang, record, &operator))
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Versjoner og utrulling", "Releases and rollouts"),
        operator.nav(),
        "/releases",
        body,
    ))
}

/// The rollout policy in plain words: "30 % of devices", "sites: fana, os", "paused".
fn policy_words(lang: Lang, record: &ReleaseRecord, view: &View) -> String {
    let mut parts = Vec::new();
    if record.percent > 0 {
        parts.push(format!(
            "{} % {}",
            record.percent,
            lang.t("av enhetene", "of devices")
        ));
    }
    let shown: Vec<&str> = record
        .sites
        .iter()
        .filter(|site| view.sees(site))
        .map(SiteId::as_str)
        .collect();
    if !shown.is_empty() {
        parts.push(format!(
            "{}: {}",
            lang.t("lokasjoner", "sites"),
            shown.join(", ")
        ));
    }
    let others = record.sites.len() - shown.len();
    if others > 0 {
        parts.push(lang.count(others as u64, Noun::OtherSite));
    }
    let policy = if parts.is_empty() {
        lang.t("ingen enheter", "no devices").to_owned()
    } else {
        parts.join(lang.t(" og ", " and "))
    };
    if record.paused {
        format!(
            "{} {policy})",
            lang.t(
                "satt på pause (når den fortsetter:",
                "paused (when resumed:"
            )
        )
    } else {
        policy
    }
}

/// The devices that rolled back or refused, with the reasons their agents gave.
fn reasons(
    lang: Lang,
    title: &str,
    devices: &[DeviceReason],
    sees: &dyn Fn(&DeviceId) -> bool,
) -> Markup {
    let others = devices.iter().filter(|d| !sees(&d.device)).count();
    html! {
        @if !devices.is_empty() {
            p { (title) ":" }
            ul {
                @for device in devices.iter().filter(|d| sees(&d.device)) {
                    li {
                        (device.device.as_str()) ": "
                        @match device.reason.as_deref() {
                            Some(reason) => (reason),
                            None => span.note { (lang.t("ingen begrunnelse oppgitt", "no reason given")) },
                        }
                    }
                }
                @if others > 0 {
                    li { (lang.count(others as u64, Noun::Device))
                        (lang.t(" utenfor kommunen din", " outside your municipality")) }
                }
            }
        }
    }
}

/// The forms of operations: the share of devices, the named sites, pause or resume.
fn forms(lang: Lang, record: &ReleaseRecord, operator: &Operator) -> Markup {
    let id = escape_path(&record.release.id);
    let sites = record
        .sites
        .iter()
        .map(SiteId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        form method="post" action={ "/releases/" (id) "/rollout" } {
            (operator.csrf_field())
            p {
                label {
                    (lang.t("Andel av enhetene (0 til 100 %) ", "Share of devices (0 to 100 %) "))
                    input type="number" name="percent" min="0" max="100" value=(record.percent) required;
                } " "
                button type="submit" { (lang.t("Sett andelen", "Set the share")) }
            }
        }
        form method="post" action={ "/releases/" (id) "/rollout" } {
            (operator.csrf_field())
            p {
                label {
                    (lang.t(
                        "Lokasjoner der alle enheter får den (id-er, skilt med komma; tomt for ingen) ",
                        "Sites whose devices all get it (ids, separated by commas; empty for none) ",
                    ))
                    input type="text" name="sites" size="60" value=(sites);
                } " "
                button type="submit" { (lang.t("Sett lokasjonene", "Set the sites")) }
            }
        }
        @if record.paused {
            form method="post" action={ "/releases/" (id) "/resume" } {
                (operator.csrf_field())
                p { button type="submit" { (lang.t(
                    "Fortsett: tilby den igjen etter utrullingen",
                    "Resume: offer it again under its rollout",
                )) } }
            }
        } @else {
            p { a href={ "/releases/" (id) "/pause" } { (lang.t(
                "Sett på pause: tilby den til ingen enhet …",
                "Pause: offer it to no device …",
            )) } }
        }
    }
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
    change(&state, &operator, &id, None, move || {
        let percent = match form.percent.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(text.parse::<u8>().map_err(|_| {
                current()
                    .t(
                        "Andelen er et helt tall fra 0 til 100.",
                        "The share is a whole number from 0 to 100.",
                    )
                    .to_owned()
            })?),
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

/// `GET /releases/{id}/pause`: operations only; asks before pausing, with a reason.
pub(crate) async fn get_pause(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    if !operator.is_operations() {
        return Err(only_operations(&operator));
    }
    if !valid_release_id(&id) || state.app.store.release(&id).await?.is_none() {
        return Err(PageError::NoSuchRelease {
            nav: operator.nav(),
        });
    }
    let action = format!("/releases/{}/pause", escape_path(&id));
    Ok(confirmation(
        &operator,
        Confirmation {
            title: lang.t("Sette utrullingen på pause?", "Pause the rollout?"),
            warning: html! {
            (lang.t("Ingen enhet får ", "No device is offered ")) strong { (id) }
            (lang.t(
                " tilbudt før utrullingen fortsetter. Enheter som alt har lastet den ned, beholder den.",
                " until the rollout is resumed. Devices that have downloaded it already keep it.",
            ))
            },
            action: &action,
            hidden: &[],
            reason: "",
            button: lang.t("Ja, sett på pause", "Yes, pause it"),
            back: "/releases",
        },
    ))
}

/// The pause form: its CSRF token, the confirmation and the reason.
#[derive(Debug, Deserialize)]
pub(crate) struct PauseForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    confirmed: Option<String>,
}

impl CsrfForm for PauseForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /releases/{id}/pause`: operations only, confirmed and with a reason; offered to no
/// device until resumed.
pub(crate) async fn post_pause(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<PauseForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = operator.form(form)?;
    if !operator.is_operations() {
        return Err(only_operations(&operator));
    }
    if form.confirmed.as_deref() != Some("yes") {
        return Err(operator.forbidden(current().t(
            "Bekreft pausen på bekreftelsessiden.",
            "Confirm the pause on the confirmation page.",
        )));
    }
    let reason = reason_of(&operator, &form.reason)?.to_owned();
    change(&state, &operator, &id, Some(&reason), || {
        Ok(RolloutChange {
            paused: Some(true),
            ..RolloutChange::default()
        })
    })
    .await
}

fn only_operations(operator: &Operator) -> PageError {
    operator.forbidden(current().t(
        "Bare driften kan endre en utrulling.",
        "Only operations may change a rollout.",
    ))
}

/// `POST /releases/{id}/resume`: operations only; offered again under its rollout.
pub(crate) async fn post_resume(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    change(&state, &operator, &id, None, || {
        Ok(RolloutChange {
            paused: Some(false),
            ..RolloutChange::default()
        })
    })
    .await
}

/// The checks every change goes through after the form's CSRF token, in order: operations,
/// a release id, a valid change; then [`apply_rollout`] audits (with the operator's reason,
/// when the change asked for one) and changes.
async fn change(
    state: &UiState,
    operator: &Operator,
    id: &str,
    reason: Option<&str>,
    build: impl FnOnce() -> Result<RolloutChange, String>,
) -> Result<Response, PageError> {
    if !operator.is_operations() {
        return Err(only_operations(operator));
    }
    let no_such_release = || PageError::NoSuchRelease {
        nav: operator.nav(),
    };
    if !valid_release_id(id) {
        return Err(no_such_release());
    }
    let change = build().map_err(|why| operator.forbidden(&why))?;
    let store = state.app.store.as_ref();
    let applied = match reason {
        Some(reason) => {
            apply_rollout_because(store, &operator.user.name, id, &change, reason).await
        }
        None => apply_rollout(store, &operator.user.name, id, &change).await,
    };
    match applied {
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
            policy_words(Lang::English, &record(30, &[], false), &all),
            "30 % of devices"
        );
        assert_eq!(
            policy_words(Lang::English, &record(0, &["fana", "os"], false), &all),
            "sites: fana, os"
        );
        assert_eq!(
            policy_words(Lang::English, &record(10, &["fana"], true), &all),
            "paused (when resumed: 10 % of devices and sites: fana)"
        );
        assert_eq!(
            policy_words(Lang::English, &record(0, &[], false), &all),
            "no devices"
        );
        let fana = View::Only(HashSet::from([SiteId::new("fana").unwrap()]));
        assert_eq!(
            policy_words(Lang::English, &record(0, &["fana", "os"], false), &fana),
            "sites: fana and 1 other site"
        );
    }
}
