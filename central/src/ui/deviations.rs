//! The site page's "Deviations to fix in the SAS": the deviation groups a device's last
//! heartbeat carried ([`crate::fleet::DeviationGroup`]), by code, with what the school should
//! change in its SAS in plain words and the first rows of each.
//!
//! The agent masks national ids and leaves names out before it reports a row; this module
//! masks again anything that still looks like one (11 or more digits, joined or written
//! with single separators as in `018112-78714`: [`mask_in_text`]), because a page must not
//! depend on every agent in the field getting that right.

use maud::{html, Markup};
use skolebro_protocol::api::DeviationGroup;
use skolebro_protocol::mask_in_text;

use super::text::Lang;

/// Groups a page shows per device: more than the agent has codes for, so a newer agent's
/// codes still show.
const MAX_GROUPS: usize = 16;

/// Rows a page shows per group, as many as the agent carries.
const MAX_ROWS: usize = 10;

/// What a school does about a deviation code, in words for its SAS administrator.
fn what_to_fix(lang: Lang, code: &str) -> &'static str {
    match code {
        "invalid_national_id" => lang.t(
            "Fødselsnummeret er ikke et gyldig fødselsnummer eller D-nummer. Rett det i SAS; \
             til da sendes eleven uten det, og inntakskontoret kan ikke koble eleven.",
            "The national id is not a valid fødselsnummer or D-number. Correct it in the SAS; \
             until then the pupil is sent without it, and the admission office cannot match \
             them.",
        ),
        "synthetic_national_id" => lang.t(
            "Et syntetisk testnummer i en ekte eksport. Bytt det ut med elevens ekte nummer i SAS.",
            "A synthetic test id in a real export. Replace it with the pupil's real id in the SAS.",
        ),
        "duplicate_national_id" => lang.t(
            "To elever har samme fødselsnummer. Ett av dem er feil i SAS.",
            "Two pupils carry the same national id. One of them is wrong in the SAS.",
        ),
        "duplicate_record" => lang.t(
            "Samme rad står to ganger i eksporten; den sendes én gang.",
            "The same row appears twice in the export; it is sent once.",
        ),
        "duplicate_key" => lang.t(
            "To rader deler en nøkkel som skal være unik (et elevnummer eller en gruppekode).",
            "Two rows share a key that must be unique (a pupil number or a group code).",
        ),
        "dangling_reference" => lang.t(
            "En rad viser til en skole, gruppe eller elev som eksporten ikke har med.",
            "A row refers to a school, group or pupil that the export does not contain.",
        ),
        "missing_required" => lang.t(
            "Et felt fylket trenger, er tomt. Fyll det inn i SAS.",
            "A field the county needs is empty. Fill it in in the SAS.",
        ),
        "unknown_field" => lang.t(
            "En kolonne leseren ikke bruker; ingenting går tapt, ingenting å rette.",
            "A column the reader does not use; nothing is lost, nothing to fix.",
        ),
        "unknown_column" => lang.t(
            "En kolonne agenten ikke leser: dataene i den sendes ikke. Gi den et kjent \
             kolonnenavn, eller legg den til i agentens kolonneprofil.",
            "A column the agent does not read: its data is not sent. Rename it to a known \
             column name, or add it to the agent's column profile.",
        ),
        "short_row" => lang.t(
            "En rad med færre felt enn overskriften; feltene som mangler, blir tomme.",
            "A row with fewer fields than the header; the missing fields are empty.",
        ),
        "foreign_school" => lang.t(
            "Eksporten nevner en skole denne lokasjonen ikke er registrert med, så ingenting \
             av den ble sendt. Eksporter bare denne lokasjonens skoler, eller be driften \
             registrere eller flytte skolen.",
            "The export names a school this site is not registered with, so none of it was \
             sent. Export only this site's schools, or ask operations to register or move the \
             school.",
        ),
        "no_school" => lang.t(
            "Eksporten nevner ingen skole, så elevene når ingen skoles mottakere. Eksporter \
             fra det skoleadministrative systemet, ikke fra en læringsplattform.",
            "The export names no school, so its pupils reach no school's consumers. Export \
             from the school administration system, not from a learning platform.",
        ),
        _ => lang.t(
            "Et avvik denne versjonen av sentralen ikke beskriver; se agentens check-utskrift.",
            "A deviation this version of central does not describe; see the agent's check output.",
        ),
    }
}

/// The groups as a table, errors first as the agent sends them, or `None` when there are none.
pub(crate) fn deviation_table(lang: Lang, groups: &[DeviationGroup]) -> Option<Markup> {
    if groups.is_empty() {
        return None;
    }
    Some(html! {
        table.deviations tabindex="0" {
            caption { (lang.t("Avvik etter kode", "Deviations by code")) }
            tr {
                th scope="col" { (lang.t("Kode", "Code")) }
                th scope="col" { (lang.t("Hva som må rettes", "What to fix")) }
                th scope="col" { (lang.t("Antall", "Count")) }
                th scope="col" { (lang.t("Første rader", "First rows")) }
            }
            @for group in groups.iter().take(MAX_GROUPS) {
                @let shown = group.rows.len().min(MAX_ROWS) as u64;
                tr {
                    td {
                        span class=(if group.severity == "error" { "bad" } else { "note" }) {
                            @match group.severity.as_str() {
                                "error" => (lang.t("feil", "error")),
                                "warning" => (lang.t("advarsel", "warning")),
                                other => (other),
                            }
                        }
                        br;
                        code { (group.code) }
                    }
                    td { (what_to_fix(lang, &group.code)) }
                    td { (group.count) }
                    td {
                        ul {
                            @for row in group.rows.iter().take(MAX_ROWS) {
                                li {
                                    (mask_in_text(&row.file)) " " (mask_in_text(&row.at)) ": "
                                    (mask_in_text(&row.detail))
                                }
                            }
                        }
                        @if group.count > shown {
                            p.note { (lang.t("og ", "and ")) (group.count - shown)
                                (lang.t(" til", " more")) }
                        }
                    }
                }
            }
            @if groups.len() > MAX_GROUPS {
                tr { td colspan="4" {
                    (lang.t("og ", "and ")) (groups.len() - MAX_GROUPS)
                    (lang.t(" koder til", " more codes"))
                } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::api::DeviationRow;

    fn group(code: &str, severity: &str, count: u64, rows: usize) -> DeviationGroup {
        DeviationGroup {
            code: code.to_owned(),
            severity: severity.to_owned(),
            count,
            rows: (0..rows)
                .map(|n| DeviationRow {
                    file: "elevliste.csv".to_owned(),
                    at: format!("line {}", n + 2),
                    detail: "national id 028716***** fails its control digits".to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn groups_show_their_fix_their_count_and_how_many_rows_are_not_shown() {
        let html = deviation_table(
            Lang::English,
            &[
                group("invalid_national_id", "error", 38, 10),
                group("unknown_field", "warning", 1, 1),
            ],
        )
        .expect("a table")
        .into_string();
        assert!(html.contains("<code>invalid_national_id</code>"), "{html}");
        assert!(html.contains("Correct it in the SAS"), "{html}");
        assert!(html.contains("<td>38</td>"), "{html}");
        assert!(html.contains("and 28 more"), "{html}");
        assert!(html.contains("elevliste.csv line 2: national id 028716*****"));
        assert_eq!(html.matches("<li>").count(), 11);
        assert!(deviation_table(Lang::English, &[]).is_none());
        let norsk = deviation_table(Lang::Nb, &[group("invalid_national_id", "error", 38, 10)])
            .expect("a table")
            .into_string();
        assert!(
            norsk.contains("Rett det i SAS") && norsk.contains("og 28 til"),
            "{norsk}"
        );
        assert!(norsk.contains("<span class=\"bad\">feil</span>"), "{norsk}");
    }

    #[test]
    fn what_a_device_reports_is_escaped_and_bounded() {
        let mut evil = group("<script>", "<b>", 1, 1);
        evil.rows[0].detail =
            "<img src=x onerror=alert(1)> 02871662943, 018112-78714, 018112 78714".to_owned();
        evil.rows[0].at = "line 018112 78714".to_owned();
        let many: Vec<_> = std::iter::repeat_n(evil, 40).collect();
        let html = deviation_table(Lang::English, &many)
            .expect("a table")
            .into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(!html.contains("02871662943"), "{html}");
        assert!(
            !html.contains("78714"),
            "separated ids are masked too: {html}"
        );
        assert!(html.contains("018112-*****"), "{html}");
        assert_eq!(html.matches("<tr><td><span").count(), MAX_GROUPS);
        assert!(html.contains("and 24 more codes"), "{html}");
    }
}
