//! Pictures where people would rather look than read: server-rendered SVG bar charts of a
//! site's nights (records changed, held and late nights marked), of its deviations by code
//! over the same nights, and of the sites that delivered each night of a transfer window.
//!
//! The functions here are pure: a data series in, maud `Markup` out, so they are tested on
//! the SVG they write. Each chart is a `figure` whose `svg` has `role="img"`, a `title` and a
//! `desc` it is labelled by, and a `viewBox` that scales to the width of a phone; the
//! figure's caption says in one line of words what the picture shows, and a visually hidden
//! table lists the values for screen readers. No script draws anything: the page stays
//! within its `default-src 'none'` policy. Nights are Oslo days
//! ([`crate::store::Timestamp::oslo_day`]).

use maud::{html, Markup};
use skolebro_protocol::civil_time::civil_from_days;

use super::text::{Lang, Noun};

/// The drawing's width in SVG units; the `viewBox` scales it to the page.
const WIDTH: f64 = 360.0;

/// The night chart's height in SVG units.
const HEIGHT: f64 = 150.0;

/// Room for the largest value's label on the left.
const LEFT: f64 = 34.0;

/// Room for the first and last night's dates below the bars.
const BOTTOM: f64 = 18.0;

/// Room above the bars for the held and late marks.
const TOP: f64 = 14.0;

/// The deviations chart's row per code and the room its label takes above the bars, in SVG
/// units.
const CODE_ROW: f64 = 34.0;
const CODE_LABEL_ROOM: f64 = 11.0;

/// A day (as [`crate::store::Timestamp::oslo_day`] counts them) as a short date: "06.12." in bokmål, "12-06" in
/// English.
pub(crate) fn day_label(lang: Lang, day: i64) -> String {
    let (_, month, day) = civil_from_days(day);
    match lang {
        Lang::Nb => format!("{day:02}.{month:02}."),
        Lang::English => format!("{month:02}-{day:02}"),
    }
}

/// One bar of a night chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Night {
    /// The night's date as the page writes it.
    pub(crate) label: String,
    pub(crate) value: u64,
    /// A delta of the site was held back for review that night.
    pub(crate) held: bool,
    /// A batch that night came after a transfer window's deadline.
    pub(crate) late: bool,
}

/// What a night chart shows, beside its bars.
pub(crate) struct NightChart<'a> {
    /// The figure's id; its title's and description's ids derive from it.
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    /// What a bar counts ("records changed", "sites").
    pub(crate) unit: Noun,
    pub(crate) nights: Vec<Night>,
}

/// One row of the deviations chart: a code and how many rows carried it each night.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeNights {
    pub(crate) code: String,
    /// An error keeps the record out; a warning does not.
    pub(crate) error: bool,
    /// One count per night of the chart, oldest first.
    pub(crate) counts: Vec<u64>,
}

/// What the deviations chart shows: the nights' dates and a row of bars per code.
pub(crate) struct CodeChart<'a> {
    /// The figure's id; its title's and description's ids derive from it.
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    /// The nights' dates as the page writes them, oldest first.
    pub(crate) nights: Vec<String>,
    pub(crate) codes: Vec<CodeNights>,
}

/// A number for an SVG attribute, to a tenth of a unit.
fn unit(value: f64) -> String {
    format!("{value:.1}")
}

/// The one-line summary of a night chart, in words.
fn night_summary(lang: Lang, chart: &NightChart<'_>) -> String {
    let nights = &chart.nights;
    let with_any = nights.iter().filter(|n| n.value > 0).count() as u64;
    let held = nights.iter().filter(|n| n.held).count() as u64;
    let late = nights.iter().filter(|n| n.late).count() as u64;
    let mut parts = vec![format!(
        "{}, {} {}",
        lang.count(nights.len() as u64, Noun::Night),
        with_any,
        lang.t("med noe å vise", "with something to show"),
    )];
    if let Some(most) = nights
        .iter()
        .filter(|n| n.value > 0)
        .max_by_key(|n| n.value)
    {
        parts.push(format!(
            "{} {} ({})",
            lang.t("mest", "most"),
            lang.count(most.value, chart.unit),
            most.label
        ));
    }
    if held > 0 {
        parts.push(format!(
            "{} {}",
            lang.count(held, Noun::Night),
            lang.t("med en holdt endring", "with a held delta")
        ));
    }
    if late > 0 {
        parts.push(format!(
            "{} {}",
            lang.count(late, Noun::Night),
            lang.t("med sene bunter", "with late batches")
        ));
    }
    format!("{}.", parts.join("; "))
}

/// Bars per night, oldest on the left, with a mark above each held (a circle) and late (a
/// square) night, so the marks differ by shape as well as colour.
pub(crate) fn night_chart(lang: Lang, chart: &NightChart<'_>) -> Markup {
    let nights = &chart.nights;
    if nights.is_empty() {
        return html! { p.note id=(chart.id) { (lang.t("Ingen netter å vise.", "No nights to show.")) } };
    }
    let max = nights.iter().map(|n| n.value).max().unwrap_or(0).max(1);
    let plot_width = WIDTH - LEFT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / nights.len() as f64;
    let bar = (slot * 0.8).max(0.5);
    let base = HEIGHT - BOTTOM;
    let title_id = format!("{}-title", chart.id);
    let desc_id = format!("{}-desc", chart.id);
    let summary = night_summary(lang, chart);
    let first = nights.first().map(|n| n.label.as_str()).unwrap_or_default();
    let last = nights.last().map(|n| n.label.as_str()).unwrap_or_default();
    html! {
        figure.chart id=(chart.id) {
            svg.chart xmlns="http://www.w3.org/2000/svg" role="img"
                viewBox={ "0 0 " (unit(WIDTH)) " " (unit(HEIGHT)) }
                aria-labelledby={ (title_id) " " (desc_id) } {
                title id=(title_id) { (chart.title) }
                desc id=(desc_id) { (summary) }
                line.axis x1=(unit(LEFT)) y1=(unit(base)) x2=(unit(WIDTH)) y2=(unit(base)) {}
                text x=(unit(LEFT - 4.0)) y=(unit(TOP + 8.0)) text-anchor="end" { (max) }
                text x=(unit(LEFT - 4.0)) y=(unit(base)) text-anchor="end" { "0" }
                @for (i, night) in nights.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                    @let height = plot_height * night.value as f64 / max as f64;
                    @let class = if night.late { "bar late" } else if night.held { "bar held" } else { "bar" };
                    rect class=(class) x=(unit(x)) y=(unit(base - height)) width=(unit(bar)) height=(unit(height)) {
                        title { (night.label) ": " (lang.count(night.value, chart.unit)) }
                    }
                    @if night.held {
                        circle.held-mark cx=(unit(x + bar / 2.0)) cy=(unit(TOP - 7.0)) r=(unit((bar / 2.0).clamp(1.0, 3.0))) {}
                    }
                    @if night.late {
                        @let side = bar.clamp(2.0, 6.0);
                        rect.late-mark x=(unit(x + (bar - side) / 2.0)) y=(unit(TOP - 4.0 - side / 2.0)) width=(unit(side)) height=(unit(side)) {}
                    }
                }
                text x=(unit(LEFT)) y=(unit(HEIGHT - 4.0)) { (first) }
                text x=(unit(WIDTH)) y=(unit(HEIGHT - 4.0)) text-anchor="end" { (last) }
            }
            figcaption { (summary) " "
                span.legend { span.key.held-key { "●" } " " (lang.t("holdt", "held")) " "
                    span.key.late-key { "■" } " " (lang.t("sen", "late")) }
            }
            table.vh {
                caption { (chart.title) }
                tr {
                    th scope="col" { (lang.t("Natt", "Night")) }
                    th scope="col" { (lang.t("Antall", "Count")) }
                    th scope="col" { (lang.t("Merket", "Marked")) }
                }
                @for night in nights.iter().filter(|n| n.value > 0 || n.held || n.late) {
                    tr {
                        td { (night.label) }
                        td { (night.value) }
                        td {
                            @if night.held { (lang.t("holdt ", "held ")) }
                            @if night.late { (lang.t("sen", "late")) }
                        }
                    }
                }
            }
        }
    }
}

/// The one-line summary of a deviations chart, in words: how many codes over how many
/// nights, and what the newest night counted.
fn code_summary(lang: Lang, chart: &CodeChart<'_>) -> String {
    let latest = |error: bool| -> u64 {
        chart
            .codes
            .iter()
            .filter(|code| code.error == error)
            .filter_map(|code| code.counts.last())
            .sum()
    };
    format!(
        "{} {} {}; {} ({}): {}, {}.",
        lang.count(chart.codes.len() as u64, Noun::Code),
        lang.t("over", "over"),
        lang.count(chart.nights.len() as u64, Noun::Night),
        lang.t("siste natt", "the last night"),
        chart.nights.last().map(String::as_str).unwrap_or_default(),
        lang.count(latest(true), Noun::Error),
        lang.count(latest(false), Noun::Warning),
    )
}

/// Deviations by code over time as small multiples: one row of bars per code, a bar per
/// night, oldest on the left, errors first and the most frequent first. Each row has its own
/// scale, written beside the code, so a code with a few rows shows its ups and downs beside
/// one with thousands.
pub(crate) fn code_chart(lang: Lang, chart: &CodeChart<'_>) -> Markup {
    if chart.codes.is_empty() || chart.nights.is_empty() {
        return html! { p.note id=(chart.id) { (lang.t("Ingen avvik å vise.", "No deviations to show.")) } };
    }
    let mut codes = chart.codes.clone();
    let total = |code: &CodeNights| code.counts.iter().sum::<u64>();
    codes.sort_by(|a, b| {
        b.error
            .cmp(&a.error)
            .then(total(b).cmp(&total(a)))
            .then(a.code.cmp(&b.code))
    });
    let height = CODE_ROW * codes.len() as f64 + BOTTOM;
    let slot = (WIDTH - LEFT) / chart.nights.len() as f64;
    let bar = (slot * 0.8).max(0.5);
    let title_id = format!("{}-title", chart.id);
    let desc_id = format!("{}-desc", chart.id);
    let summary = code_summary(lang, chart);
    let first = chart.nights.first().map(String::as_str).unwrap_or_default();
    let last = chart.nights.last().map(String::as_str).unwrap_or_default();
    html! {
        figure.chart id=(chart.id) {
            svg.chart xmlns="http://www.w3.org/2000/svg" role="img"
                viewBox={ "0 0 " (unit(WIDTH)) " " (unit(height)) }
                aria-labelledby={ (title_id) " " (desc_id) } {
                title id=(title_id) { (chart.title) }
                desc id=(desc_id) { (summary) }
                @for (row, code) in codes.iter().enumerate() {
                    @let top = CODE_ROW * row as f64;
                    @let base = top + CODE_ROW - 2.0;
                    @let max = code.counts.iter().copied().max().unwrap_or(0).max(1);
                    @let room = CODE_ROW - CODE_LABEL_ROOM - 2.0;
                    @let class = if code.error { "bar error" } else { "bar" };
                    text x=(unit(LEFT)) y=(unit(top + 9.0)) { (code.code) " (" (lang.t("høyst", "at most")) " " (max) ")" }
                    line.axis x1=(unit(LEFT)) y1=(unit(base)) x2=(unit(WIDTH)) y2=(unit(base)) {}
                    @for (i, (count, night)) in code.counts.iter().zip(&chart.nights).enumerate() {
                        @if *count > 0 {
                            @let bar_height = room * *count as f64 / max as f64;
                            rect class=(class) x=(unit(LEFT + slot * i as f64 + (slot - bar) / 2.0))
                                y=(unit(base - bar_height)) width=(unit(bar)) height=(unit(bar_height)) {
                                title { (code.code) ", " (night) ": " (count) }
                            }
                        }
                    }
                }
                text x=(unit(LEFT)) y=(unit(height - 4.0)) { (first) }
                text x=(unit(WIDTH)) y=(unit(height - 4.0)) text-anchor="end" { (last) }
            }
            figcaption { (summary) }
            table.vh {
                caption { (chart.title) }
                tr {
                    th scope="col" { (lang.t("Kode", "Code")) }
                    th scope="col" { (lang.t("Alvor", "Severity")) }
                    th scope="col" { (lang.t("Natt", "Night")) }
                    th scope="col" { (lang.t("Antall", "Count")) }
                }
                @for code in &codes {
                    @for (count, night) in code.counts.iter().zip(&chart.nights).filter(|(count, _)| **count > 0) {
                        tr {
                            td { (code.code) }
                            td { (if code.error { lang.t("feil", "error") } else { lang.t("advarsel", "warning") }) }
                            td { (night) }
                            td { (count) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    fn night(label: &str, value: u64, held: bool, late: bool) -> Night {
        Night {
            label: label.to_owned(),
            value,
            held,
            late,
        }
    }

    fn chart(nights: Vec<Night>) -> String {
        night_chart(
            Lang::English,
            &NightChart {
                id: "changes",
                title: "Records changed per night",
                unit: Noun::ChangedRecord,
                nights,
            },
        )
        .into_string()
    }

    #[test]
    fn a_night_chart_draws_one_bar_per_night_and_marks_held_and_late_nights() {
        let svg = chart(vec![
            night("12-01", 4, false, false),
            night("12-02", 0, true, false),
            night("12-03", 12, false, true),
        ]);
        assert_eq!(svg.matches("<rect class=\"bar").count(), 3, "{svg}");
        assert_eq!(svg.matches("<circle class=\"held-mark\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"late-mark\"").count(), 1);
        assert!(svg.contains("role=\"img\""), "{svg}");
        assert!(svg.contains("aria-labelledby=\"changes-title changes-desc\""));
        assert!(svg.contains("viewBox=\"0 0 360.0 150.0\""));
        assert!(svg.contains("<title id=\"changes-title\">Records changed per night</title>"));
        assert!(
            svg.contains(
                "3 nights, 2 with something to show; most 12 changed records (12-03); \
                 1 night with a held delta; 1 night with late batches."
            ),
            "{svg}"
        );
        assert!(svg.contains(">12-01</text>") && svg.contains(">12-03</text>"));
    }

    #[test]
    fn the_hidden_table_lists_only_nights_with_something_to_show() {
        let svg = chart(vec![
            night("12-01", 0, false, false),
            night("12-02", 7, false, false),
        ]);
        assert_eq!(svg.matches("<td>12-0").count(), 1, "{svg}");
        assert!(svg.contains("<td>12-02</td><td>7</td>"), "{svg}");
    }

    #[test]
    fn empty_data_is_said_in_words_without_a_picture() {
        let svg = chart(Vec::new());
        assert!(!svg.contains("<svg"), "{svg}");
        assert!(svg.contains("No nights to show."));
        let codes =
            code_chart(Lang::Nb, &codes_over(vec!["01.12.".to_owned()], Vec::new())).into_string();
        assert!(!codes.contains("<svg") && codes.contains("Ingen avvik å vise."));
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let svg = night_chart(
            Lang::Nb,
            &NightChart {
                id: "n",
                title: "<script>\"x\"</script>",
                unit: Noun::Site,
                nights: vec![night("<b>", 1, false, false)],
            },
        )
        .into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&quot;x&quot;&lt;/script&gt;"));
        let codes = code_chart(
            Lang::English,
            &codes_over(
                vec!["12-01".to_owned()],
                vec![code_nights("<img>", true, &[2])],
            ),
        )
        .into_string();
        assert!(
            !codes.contains("<img>") && codes.contains("&lt;img&gt;"),
            "{codes}"
        );
    }

    fn code_nights(code: &str, error: bool, counts: &[u64]) -> CodeNights {
        CodeNights {
            code: code.to_owned(),
            error,
            counts: counts.to_vec(),
        }
    }

    fn codes_over(nights: Vec<String>, codes: Vec<CodeNights>) -> CodeChart<'static> {
        CodeChart {
            id: "codes",
            title: "Deviations by code",
            nights,
            codes,
        }
    }

    #[test]
    fn the_code_chart_draws_a_row_per_code_errors_and_the_most_frequent_first() {
        let nights = vec!["12-01".to_owned(), "12-02".to_owned(), "12-03".to_owned()];
        let codes = vec![
            code_nights("unknown_field", false, &[40, 0, 40]),
            code_nights("missing_required", true, &[0, 2, 0]),
            code_nights("invalid_national_id", true, &[5, 3, 4]),
        ];
        let svg = code_chart(Lang::English, &codes_over(nights, codes)).into_string();
        assert_eq!(svg.matches("<line class=\"axis\"").count(), 3, "{svg}");
        assert_eq!(
            svg.matches("<rect class=\"bar").count(),
            6,
            "only nights with a count"
        );
        assert_eq!(svg.matches("<rect class=\"bar error\"").count(), 4);
        let at = |code: &str| svg.find(&format!(">{code} (at most")).expect(code);
        assert!(at("invalid_national_id") < at("missing_required"));
        assert!(at("missing_required") < at("unknown_field"));
        assert!(
            svg.contains("<title>invalid_national_id, 12-02: 3</title>"),
            "{svg}"
        );
        assert!(svg.contains(">unknown_field (at most 40)</text>"), "{svg}");
        assert!(
            svg.contains("3 codes over 3 nights; the last night (12-03): 4 errors, 40 warnings."),
            "{svg}"
        );
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"codes-title codes-desc\""));
    }

    #[test]
    fn the_code_chart_table_lists_each_code_on_each_night_it_was_seen() {
        let nights = vec!["01.12.".to_owned(), "02.12.".to_owned()];
        let codes = vec![code_nights("unknown_field", false, &[0, 7])];
        let svg = code_chart(Lang::Nb, &codes_over(nights, codes)).into_string();
        assert_eq!(svg.matches("<td>unknown_field</td>").count(), 1, "{svg}");
        assert!(
            svg.contains("<td>unknown_field</td><td>advarsel</td><td>02.12.</td><td>7</td>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<th scope=\"col\">").count(), 4);
        assert!(svg.contains("<caption>Deviations by code</caption>"));
    }

    #[test]
    fn nights_are_oslo_days_written_as_each_language_writes_a_date() {
        let late_evening = Timestamp::parse_rfc3339("2026-12-05T23:30:00Z").expect("a time");
        let day = late_evening.oslo_day();
        assert_eq!(day_label(Lang::Nb, day), "06.12.");
        assert_eq!(day_label(Lang::English, day), "12-06");
        let summer = Timestamp::parse_rfc3339("2026-07-01T21:59:00Z").expect("a time");
        assert_eq!(day_label(Lang::Nb, summer.oslo_day()), "01.07.");
    }
}
