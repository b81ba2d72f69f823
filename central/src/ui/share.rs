//! What a device's last heartbeat says about the school's share (issue 20): the newest file
//! that arrived on the Pi's drop share and what became of it, whether the share's settings
//! from a stick or from central took, and why the share an agent pulls exports from cannot
//! be read. The fleet page shows the arrival beside the last export and the problems beside
//! the state; the site page shows all of it for each of its devices.
//!
//! The agent masks the file's name and writes the rest itself, in English. As with the
//! deviations, a page does not depend on every agent in the field getting that right: what
//! an agent wrote is masked again ([`mask_in_text`]), cut ([`clip`]) and marked as English.

use maud::{html, Markup};
use skolebro_protocol::api::{clip, Arrival, Heartbeat};
use skolebro_protocol::drop_share::ShareStatus;
use skolebro_protocol::{mask_in_text, DeviceId};

use super::text::{when, Lang};
use crate::store::Timestamp;

/// An agent's Unix ms as a time a page shows, `None` when absent. A count past `i64`
/// is taken as `i64::MAX`, as the agent itself reports its last export; every `i64` renders
/// ([`Timestamp::oslo`], [`Lang::relative`]).
fn agent_time(unix_ms: Option<u64>) -> Option<Timestamp> {
    unix_ms.map(|ms| Timestamp(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// A text an agent sent, masked again and cut.
fn shown(text: &str) -> String {
    let mut text = mask_in_text(text);
    clip(&mut text);
    text
}

/// Words an agent wrote, in English whatever the page's language.
fn agent_words(text: &str) -> Markup {
    html! { span lang="en" { (shown(text)) } }
}

/// "Siste fil på delingen: elevliste.csv, skrevet 06.12.2026 14:02 CET (for 3 min siden):
/// levert til sentralen", or refused with the agent's reason.
pub(super) fn arrival_line(lang: Lang, arrival: &Arrival, now: Timestamp) -> Markup {
    html! {
        (lang.t("Siste fil på delingen: ", "Last file on the share: ")) (shown(&arrival.file))
        (lang.t(", skrevet ", ", written ")) (when(agent_time(Some(arrival.written_unix_ms)), now)) ": "
        @if arrival.delivered {
            span.ok { (lang.t("levert til sentralen", "delivered to central")) }
        } @else if arrival.refused {
            span.bad { (lang.t("avvist, ingenting sendt", "refused, nothing sent")) } ": "
            (agent_words(arrival.outcome.strip_prefix("refused: ").unwrap_or(&arrival.outcome)))
        } @else if arrival.awaiting_seq.is_some() {
            (lang.t("forseglet, venter på kvittering fra sentralen", "sealed, waiting for central's acknowledgement"))
        } @else {
            (agent_words(&arrival.outcome))
        }
    }
}

/// The drop share's settings in force: on for which account and up to what size, or off.
fn settings_line(lang: Lang, share: &ShareStatus, now: Timestamp) -> Option<Markup> {
    let applied = share.applied.as_ref()?;
    Some(html! {
        @if applied.enabled {
            (lang.t("Delingen er på for kontoen ", "The share is on for the account "))
            code { (shown(&applied.account)) }
            (lang.t(", filer opp til ", ", files up to ")) (applied.size_cap_mib) " MiB"
        } @else {
            (lang.t("Delingen er av", "The share is off"))
        }
        (lang.t(" (tatt i bruk ", " (applied ")) (when(agent_time(share.applied_unix_ms), now)) ")"
    })
}

/// What is wrong with the device's shares: settings that were not applied, and a share to
/// pull from that cannot be read. Empty when nothing is.
pub(super) fn problem_lines(lang: Lang, heartbeat: &Heartbeat, now: Timestamp) -> Vec<Markup> {
    let mut lines = Vec::new();
    if let Some(share) = &heartbeat.drop_share {
        if let Some(error) = &share.last_error {
            lines.push(html! {
                span.bad { (lang.t("Delingsinnstillingene ble ikke tatt i bruk", "The share's settings were not applied")) }
                " " (when(agent_time(share.last_error_unix_ms), now)) ": " (agent_words(error))
            });
        }
    }
    if let Some(problem) = &heartbeat.source_problem {
        lines.push(html! {
            span.bad { (lang.t("Delingen eksportene hentes fra, kan ikke leses", "The share exports are pulled from cannot be read")) }
            ": " (agent_words(problem))
        });
    }
    lines
}

/// The site page's "The school's share": for each device that reported anything of it,
/// the newest arrival, the settings in force and the problems, a paragraph each.
pub(super) fn share_section(
    lang: Lang,
    devices: &[(&DeviceId, Option<&Heartbeat>)],
    now: Timestamp,
) -> Markup {
    let reports: Vec<(&DeviceId, Vec<Markup>)> = devices
        .iter()
        .filter_map(|(device, heartbeat)| {
            let heartbeat = (*heartbeat)?;
            let mut lines: Vec<Markup> = heartbeat
                .arrival
                .iter()
                .map(|arrival| arrival_line(lang, arrival, now))
                .collect();
            lines.extend(
                heartbeat
                    .drop_share
                    .as_ref()
                    .and_then(|share| settings_line(lang, share, now)),
            );
            lines.extend(problem_lines(lang, heartbeat, now));
            (!lines.is_empty()).then_some((*device, lines))
        })
        .collect();
    html! {
        h2 { (lang.t("Delingen på skolen", "The school's share")) }
        @if reports.is_empty() {
            p.note { (lang.t(
                "Ingen enhet på denne lokasjonen har meldt om filer eller innstillinger på delingen.",
                "No device of this site has reported files or settings on the share.",
            )) }
        }
        @for (device, lines) in &reports {
            h3 { (device.as_str()) }
            @for line in lines {
                p { (line) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::drop_share::Applied;

    const NOW: Timestamp = Timestamp(1_780_000_000_000);

    fn heartbeat(json: serde_json::Value) -> Heartbeat {
        let mut body = serde_json::json!({"version": "1.6.0", "state": "healthy"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), json.as_object()) {
            body.extend(extra.clone());
        }
        serde_json::from_value(body).expect("a heartbeat")
    }

    fn render(lang: Lang, heartbeat: &Heartbeat) -> String {
        let device = DeviceId::new("skole-46505-0123456789abcdef").expect("a device id");
        share_section(lang, &[(&device, Some(heartbeat))], NOW).into_string()
    }

    #[test]
    fn a_delivered_file_and_the_settings_in_force_are_said_in_bokmal_and_english() {
        let heartbeat = heartbeat(serde_json::json!({
            "arrival": {"file": "elevliste.csv", "written_unix_ms": 1_779_999_880_000u64,
                        "outcome": "delivered to central", "refused": false, "delivered": true},
            "drop_share": {"enabled": true, "account": "sas-eksport", "size_cap_mib": 64,
                           "applied_unix_ms": 1_779_000_000_000u64}
        }));
        let norsk = render(Lang::Nb, &heartbeat);
        assert!(
            norsk.contains("Siste fil på delingen: elevliste.csv, skrevet ")
                && norsk.contains("(for 2 min siden)")
                && norsk.contains(r#"<span class="ok">levert til sentralen</span>"#),
            "{norsk}"
        );
        assert!(
            norsk.contains(
                "Delingen er på for kontoen <code>sas-eksport</code>, filer opp til 64 MiB"
            ),
            "{norsk}"
        );
        assert!(
            !norsk.contains("class=\"bad\""),
            "nothing is wrong: {norsk}"
        );
        let english = render(Lang::English, &heartbeat);
        assert!(
            english.contains("Last file on the share: elevliste.csv, written ")
                && english.contains("delivered to central")
                && english.contains("The share is on for the account"),
            "{english}"
        );
    }

    #[test]
    fn a_refused_file_and_settings_that_did_not_take_say_why_in_the_agent_s_words() {
        let heartbeat = heartbeat(serde_json::json!({
            "arrival": {"file": "stor.csv", "written_unix_ms": 1_779_999_880_000u64,
                        "outcome": "refused: over the drop share's cap of 1 MiB; set aside",
                        "refused": true, "delivered": false},
            "drop_share": {"enabled": false, "account": "sas-eksport", "size_cap_mib": 1,
                           "applied_unix_ms": 1_779_000_000_000u64,
                           "last_error": "the drop share has no password on this Pi",
                           "last_error_unix_ms": 1_779_999_940_000u64},
            "source_problem": "the share refused the account"
        }));
        let norsk = render(Lang::Nb, &heartbeat);
        for expected in [
            r#"<span class="bad">avvist, ingenting sendt</span>: <span lang="en">over the drop share's cap of 1 MiB; set aside</span>"#,
            r#"<span class="bad">Delingsinnstillingene ble ikke tatt i bruk</span> "#,
            r#"<span lang="en">the drop share has no password on this Pi</span>"#,
            "Delingen er av (tatt i bruk ",
            r#"<span class="bad">Delingen eksportene hentes fra, kan ikke leses</span>: <span lang="en">the share refused the account</span>"#,
        ] {
            assert!(norsk.contains(expected), "{expected} in {norsk}");
        }
        assert_eq!(problem_lines(Lang::Nb, &heartbeat, NOW).len(), 2);
    }

    #[test]
    fn what_an_agent_sends_is_escaped_masked_and_cut() {
        let mut heartbeat = heartbeat(serde_json::json!({}));
        heartbeat.arrival = Some(Arrival {
            file: "<script>02871662943.csv".into(),
            written_unix_ms: u64::MAX,
            outcome: "x".repeat(100_000),
            ..Arrival::default()
        });
        heartbeat.drop_share = Some(ShareStatus {
            applied: Some(Applied {
                enabled: true,
                account: "<b>".into(),
                size_cap_mib: 1,
            }),
            ..ShareStatus::default()
        });
        let html = render(Lang::English, &heartbeat);
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(
            !html.contains("02871662943") && html.contains("028716*****"),
            "{html}"
        );
        assert!(
            html.contains(", written 17.08.292278994 07:12 UTC <span class=\"note\">(om "),
            "a time past `i64` is shown as its last instant, in UTC: {html}"
        );
        assert!(html.len() < 4_000, "cut: {} bytes", html.len());
    }

    #[test]
    fn a_site_whose_devices_reported_nothing_of_the_share_says_so() {
        let device = DeviceId::new("skole-46505-0123456789abcdef").expect("a device id");
        let silent = heartbeat(serde_json::json!({}));
        for devices in [vec![(&device, None)], vec![(&device, Some(&silent))]] {
            let html = share_section(Lang::English, &devices, NOW).into_string();
            assert!(
                html.contains("No device of this site has reported files or settings"),
                "{html}"
            );
            assert!(!html.contains("<h3>"), "{html}");
        }
    }
}
