//! The site page's "Deviations to fix in the SAS": the deviation groups a device's last
//! heartbeat carried ([`crate::fleet::DeviationGroup`]), by code, with what the school should
//! change in its SAS in plain words and the first rows of each.
//!
//! The agent masks national ids and leaves names out before it reports a row; this module
//! masks again anything that still looks like one (11 or more digits, joined or written
//! with single separators as in `018112-78714`: [`mask_in_text`]), because a page must not
//! depend on every agent in the field getting that right.

use std::fmt::Write as _;

use super::html::escape;
use skolebro_protocol::api::DeviationGroup;
use skolebro_protocol::mask_in_text;

/// Groups a page shows per device: more than the agent has codes for, so a newer agent's
/// codes still show.
const MAX_GROUPS: usize = 16;

/// Rows a page shows per group, as many as the agent carries.
const MAX_ROWS: usize = 10;

/// What a school does about a deviation code, in words for its SAS administrator.
fn what_to_fix(code: &str) -> &'static str {
    match code {
        "invalid_national_id" => {
            "The national id is not a valid fødselsnummer or D-number. Correct it in the SAS; \
             until then the pupil is sent without it, and the admission office cannot match \
             them."
        }
        "synthetic_national_id" => {
            "A synthetic test id in a real export. Replace it with the pupil's real id in the SAS."
        }
        "duplicate_national_id" => {
            "Two pupils carry the same national id. One of them is wrong in the SAS."
        }
        "duplicate_record" => "The same row appears twice in the export; it is sent once.",
        "duplicate_key" => {
            "Two rows share a key that must be unique (a pupil number or a group code)."
        }
        "dangling_reference" => {
            "A row refers to a school, group or pupil that the export does not contain."
        }
        "missing_required" => "A field the county needs is empty. Fill it in in the SAS.",
        "unknown_field" => "A column the reader does not use; nothing is lost, nothing to fix.",
        "unknown_column" => {
            "A column the agent does not read: its data is not sent. Rename it to a known \
             column name, or add it to the agent's column profile."
        }
        "short_row" => "A row with fewer fields than the header; the missing fields are empty.",
        "foreign_school" => {
            "The export names a school this site is not registered with, so none of it was \
             sent. Export only this site's schools, or ask operations to register or move the \
             school."
        }
        "no_school" => {
            "The export names no school, so its pupils reach no school's consumers. Export \
             from the school administration system, not from a learning platform."
        }
        _ => "A deviation this version of central does not describe; see the agent's check output.",
    }
}

/// The groups as a table, errors first as the agent sends them, or `None` when there are none.
pub(crate) fn deviation_table(groups: &[DeviationGroup]) -> Option<String> {
    if groups.is_empty() {
        return None;
    }
    let mut html = String::from(
        "<table class=\"deviations\"><tr><th>Code</th><th>What to fix</th><th>Count</th>\
         <th>First rows</th></tr>",
    );
    for group in groups.iter().take(MAX_GROUPS) {
        let mut rows = String::from("<ul>");
        for row in group.rows.iter().take(MAX_ROWS) {
            let _ = write!(
                rows,
                "<li>{} {}: {}</li>",
                escape(&mask_in_text(&row.file)),
                escape(&mask_in_text(&row.at)),
                escape(&mask_in_text(&row.detail)),
            );
        }
        rows.push_str("</ul>");
        let shown = group.rows.len().min(MAX_ROWS) as u64;
        if group.count > shown {
            let _ = write!(
                rows,
                "<p class=\"note\">and {} more</p>",
                group.count - shown
            );
        }
        let _ = write!(
            html,
            "<tr><td><span class=\"{class}\">{severity}</span><br><code>{code}</code></td>\
             <td>{fix}</td><td>{count}</td><td>{rows}</td></tr>",
            class = if group.severity == "error" {
                "bad"
            } else {
                "note"
            },
            severity = escape(&group.severity),
            code = escape(&group.code),
            fix = what_to_fix(&group.code),
            count = group.count,
        );
    }
    if groups.len() > MAX_GROUPS {
        let _ = write!(
            html,
            "<tr><td colspan=\"4\">and {} more codes</td></tr>",
            groups.len() - MAX_GROUPS
        );
    }
    html.push_str("</table>");
    Some(html)
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
        let html = deviation_table(&[
            group("invalid_national_id", "error", 38, 10),
            group("unknown_field", "warning", 1, 1),
        ])
        .expect("a table");
        assert!(html.contains("<code>invalid_national_id</code>"), "{html}");
        assert!(html.contains("Correct it in the SAS"), "{html}");
        assert!(html.contains("<td>38</td>"), "{html}");
        assert!(html.contains("and 28 more"), "{html}");
        assert!(html.contains("elevliste.csv line 2: national id 028716*****"));
        assert_eq!(html.matches("<li>").count(), 11);
        assert!(deviation_table(&[]).is_none());
    }

    #[test]
    fn what_a_device_reports_is_escaped_and_bounded() {
        let mut evil = group("<script>", "<b>", 1, 1);
        evil.rows[0].detail =
            "<img src=x onerror=alert(1)> 02871662943, 018112-78714, 018112 78714".to_owned();
        evil.rows[0].at = "line 018112 78714".to_owned();
        let many: Vec<_> = std::iter::repeat_n(evil, 40).collect();
        let html = deviation_table(&many).expect("a table");
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
