//! Held deltas and the device actions that ask first: the page of exports an agent holds back,
//! releasing or rejecting one (with a confirmation and a reason that goes into the audit
//! line), and revoking a device the same way. The reasons the agent gives are masked as it
//! masks them; nothing here shows a pupil.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use skolebro_protocol::DeviceId;

use super::auth::{CsrfForm, Operator};
use super::error::PageError;
use super::fleet::{school_names, visible_devices};
use super::held_reasons::held_reasons;
use super::html::{escape_path, page, see_other};
use super::pages::{kinds, MAX_REASON_LEN};
use super::text::current;
use super::text::when;
use crate::audit;
use crate::state::UiState;
use crate::store::{StoreError, Timestamp};
use skolebro_protocol::api::{Command, MAX_HELD_ID_LEN};

/// `GET /held`: the deltas the devices hold for review, with release and reject forms.
pub(crate) async fn held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let view = operator.view(state.app.store.as_ref()).await?;
    let (devices, schools) = visible_devices(&state, &view).await?;
    let now = Timestamp::now();
    let holding: Vec<_> = devices
        .iter()
        .filter_map(|row| {
            row.activity
                .last_heartbeat
                .as_ref()
                .and_then(|h| h.held.as_ref())
                .map(|held| (row, held))
        })
        .collect();
    let decision_words = |decision: &str| match decision {
        "release" => lang.t("Frigivelsen", "The release"),
        _ => lang.t("Avvisningen", "The reject"),
    };
    let body = html! {
        @for (row, held) in &holding {
            @let decided = row.activity.commands.iter().rev().find_map(|queued| match &queued.command {
                Command::Release { held_id } if *held_id == held.id => Some(("release", queued.delivered_at)),
                Command::Reject { held_id } if *held_id == held.id => Some(("reject", queued.delivered_at)),
                _ => None,
            });
            @let open = match decided {
                None => true,
                Some((_, delivered)) => delivered.is_some_and(|at| row.activity.last_heartbeat_at > Some(at)),
            };
            section.held {
                h2 {
                    (row.device.as_str()) (lang.t(" ved ", " at "))
                    a href={ "/sites/" (escape_path(row.record.site.as_str())) } { (row.record.site.as_str()) }
                    " " span.note { (school_names(&schools, &row.record.site)) }
                }
                p {
                    (lang.t("Holdt endring ", "Held delta ")) code { (held.id) }
                    @if let Some(ms) = held.held_since_unix_ms.and_then(|ms| i64::try_from(ms).ok()) {
                        (lang.t(", holdt siden ", ", held since ")) (when(Some(Timestamp(ms)), now))
                    }
                    (lang.t(", rapportert ", ", reported ")) (when(row.activity.last_heartbeat_at, now)) "."
                }
                p { (lang.t("Hvorfor den holdes: ", "Why it is held: "))
                    (held_reasons(lang, held)) }
                p {
                    (lang.t("Den ville legge til eller endre: ", "It would add or change: "))
                    (kinds(lang, &held.upserts)) ". "
                    (lang.t("Den ville slette: ", "It would delete: "))
                    (kinds(lang, &held.deletes)) "."
                }
                @match decided {
                    Some((decision, None)) => p.ok id={ "queued-" (row.device.as_str()) } {
                        (decision_words(decision))
                        (lang.t(
                            " står i kø: enheten utfører den med neste livstegn.",
                            " is queued: the device carries it out with its next heartbeat.",
                        ))
                    },
                    // Delivered with the heartbeat shown: the next one tells how it went.
                    Some((decision, Some(at))) if row.activity.last_heartbeat_at <= Some(at) => p.ok id={ "delivered-" (row.device.as_str()) } {
                        (decision_words(decision)) (lang.t(" ble levert ", " was delivered ")) (when(Some(at), now))
                        (lang.t(
                            ": enheten melder utfallet med neste livstegn.",
                            ": the device reports the outcome with its next heartbeat.",
                        ))
                    },
                    // Delivered, yet a later heartbeat still holds the delta: it may be decided again.
                    Some((decision, Some(at))) => p.warn id={ "delivered-" (row.device.as_str()) } {
                        (decision_words(decision)) (lang.t(" ble levert ", " was delivered ")) (when(Some(at), now))
                        (lang.t(", men enheten holder fortsatt endringen.", ", yet the device still holds the delta."))
                    },
                    None => {},
                }
                @if open && operator.may_decide_held() {
                    form method="post" action={ "/devices/" (escape_path(row.device.as_str())) "/held" } {
                        (operator.csrf_field())
                        input type="hidden" name="held_id" value=(held.id);
                        p { label {
                            (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                            input type="text" name="reason" id={ "reason-" (row.device.as_str()) } size="60"
                                maxlength=(MAX_REASON_LEN) required;
                        } }
                        p {
                            button type="submit" name="decision" value="release" id={ "release-" (row.device.as_str()) } {
                                (lang.t("Slipp: send den til sentralen", "Release: send it to central"))
                            }
                            button type="submit" name="decision" value="reject" id={ "reject-" (row.device.as_str()) } {
                                (lang.t("Avvis: forkast den …", "Reject: drop it …"))
                            }
                        }
                    }
                }
            }
        }
        @if holding.is_empty() {
            p #none-held { (lang.t(
                "Ingen enhet holder tilbake en endring til vurdering.",
                "No device holds a delta for review.",
            )) }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Holdte endringer", "Held deltas"),
        operator.nav(),
        "/held",
        body,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HeldForm {
    csrf: String,
    held_id: String,
    decision: String,
    reason: String,
    /// `yes` once the operator has confirmed a reject on the confirmation page.
    confirmed: Option<String>,
}

impl CsrfForm for HeldForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The reason a form gave, trimmed, or the refusal that asks for one.
pub(super) fn reason_of<'a>(operator: &Operator, reason: &'a str) -> Result<&'a str, PageError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        let lang = current();
        return Err(operator.forbidden(&format!(
            "{} {MAX_REASON_LEN} {}",
            lang.t("Oppgi en begrunnelse på 1 til", "Give a reason of 1 to"),
            lang.t("tegn.", "characters."),
        )));
    }
    Ok(reason)
}

/// A page that asks before a destructive action: what will happen, the reason field
/// (filled in if the operator gave one already), and the button that does it, posting
/// `confirmed=yes` to `action` with `hidden` fields; or a way back.
pub(super) struct Confirmation<'a> {
    pub title: &'a str,
    pub warning: Markup,
    pub action: &'a str,
    pub hidden: &'a [(&'a str, &'a str)],
    pub reason: &'a str,
    pub button: &'a str,
    pub back: &'a str,
}

/// The page of a [`Confirmation`], with the operator's menu and form token.
pub(super) fn confirmation(operator: &Operator, asked: Confirmation<'_>) -> Response {
    let Confirmation {
        title,
        warning,
        action,
        hidden,
        reason,
        button,
        back,
    } = asked;
    let lang = current();
    let body = html! {
        p.warn #confirm-warning { (warning) }
        form method="post" action=(action) {
            (operator.csrf_field())
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            input type="hidden" name="confirmed" value="yes";
            p { label {
                (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                input type="text" name="reason" id="reason" size="60" maxlength=(MAX_REASON_LEN)
                    value=(reason) required;
            } }
            p {
                button type="submit" id="confirm" { (button) } " "
                a href=(back) { (lang.t("Avbryt", "Cancel")) }
            }
        }
    };
    page(StatusCode::OK, title, operator.nav(), back, body)
}

/// `POST /devices/{device}/held`: queues a release or reject, as
/// `POST /admin/devices/{device}/commands` does, with the operator and reason audited. A
/// reject is asked about first: without `confirmed=yes` the answer is the confirmation page.
pub(crate) async fn post_held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<HeldForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    if !operator.may_decide_held() {
        return Err(operator.forbidden(lang.t(
            "Kontoen din kan se, ikke slippe eller avvise.",
            "Your account may look, not release or reject.",
        )));
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
    let command = match form.decision.as_str() {
        "release" => Command::Release {
            held_id: form.held_id.clone(),
        },
        "reject" => Command::Reject {
            held_id: form.held_id.clone(),
        },
        _ => {
            return Err(
                operator.forbidden(lang.t("Velg slipp eller avvis.", "Choose release or reject."))
            )
        }
    };
    if !command.is_valid() || form.held_id.len() > MAX_HELD_ID_LEN {
        return Err(operator.forbidden(lang.t(
            "Det er ikke id-en til en holdt endring.",
            "That is not a held delta's id.",
        )));
    }
    if form.decision == "reject" && form.confirmed.as_deref() != Some("yes") {
        let action = format!("/devices/{}/held", escape_path(device.as_str()));
        return Ok(confirmation(
            &operator,
            Confirmation {
                title: lang.t("Avvise den holdte endringen?", "Reject the held delta?"),
                warning: html! {
                (lang.t("Enheten ", "The device ")) strong { (device.as_str()) }
                (lang.t(
                    " forkaster endringen ",
                    " drops the delta ",
                ))
                code { (form.held_id) }
                (lang.t(
                    ", og ingenting av den når sentralen. Det kan ikke gjøres om; skolen må eksportere på nytt.",
                    ", and none of it reaches central. This cannot be undone; the school has to export again.",
                ))
                },
                action: &action,
                hidden: &[("held_id", &form.held_id), ("decision", "reject")],
                reason: form.reason.trim(),
                button: lang.t("Ja, avvis den", "Yes, reject it"),
                back: "/held",
            },
        ));
    }
    let reason = reason_of(&operator, &form.reason)?;
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

/// `GET /devices/{device}/revoke`: operations only; asks before revoking, with a reason.
pub(crate) async fn get_revoke_device(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    if !operator.is_operations() {
        return Err(operator.forbidden(lang.t(
            "Bare driften kan tilbakekalle en enhet.",
            "Only operations may revoke a device.",
        )));
    }
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let Some(record) = state.app.store.device(&device).await? else {
        return Err(operator.not_found());
    };
    let action = format!("/devices/{}/revoke", escape_path(device.as_str()));
    Ok(confirmation(
        &operator,
        Confirmation {
            title: lang.t("Tilbakekalle enheten?", "Revoke the device?"),
            warning: html! {
            (lang.t("Sentralen avviser alle tilkoblinger fra ", "Central refuses every connection from "))
            strong { (device.as_str()) }
            (lang.t(" ved ", " at ")) (record.site.as_str())
            (lang.t(
                " fra neste tilkobling. Gjør det når enheten er mistet eller stjålet; en ny enhet må meldes inn med en ny pinne.",
                " from its next connection on. Do it when the device is lost or stolen; a new device must enroll with a new stick.",
            ))
            },
            action: &action,
            hidden: &[],
            reason: "",
            button: lang.t("Ja, tilbakekall den", "Yes, revoke it"),
            back: "/fleet",
        },
    ))
}

/// The revoke form: its CSRF token, the confirmation and the reason.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    confirmed: Option<String>,
}

impl CsrfForm for RevokeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /devices/{device}/revoke`: operations only, confirmed and with a reason; refused
/// from the device's next connection on.
pub(crate) async fn post_revoke_device(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden(lang.t(
            "Bare driften kan tilbakekalle en enhet.",
            "Only operations may revoke a device.",
        )));
    }
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    if store.device(&device).await?.is_none() {
        return Err(operator.not_found());
    }
    if form.confirmed.as_deref() != Some("yes") {
        return Err(operator.forbidden(lang.t(
            "Bekreft tilbakekallingen på bekreftelsessiden.",
            "Confirm the revocation on the confirmation page.",
        )));
    }
    let reason = reason_of(&operator, &form.reason)?;
    audit::record(
        store,
        &operator.user.name,
        "revoke_device",
        device.as_str(),
        &format!("revoked: {reason}"),
    )
    .await?;
    store.revoke_device(&device).await?;
    Ok(see_other("/fleet"))
}
