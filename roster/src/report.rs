//! What `check` and `diff` tell their user: a readable report for school IT, or a JSON
//! document for scripts and tests. Reports carry counts and masked deviations only, never a
//! national id or a name in clear.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Map, Value};
use skolebro_protocol::{mask_in_text, Delta, Entity, Roster};

use crate::deviation::{Severity, KEPT_PER_CODE};
use crate::diff::DiffSummary;
use crate::reader::{Format, ReadError};
use crate::safety::Judgement;
use crate::validate::Validated;

fn counts(count: impl Fn(Entity) -> usize) -> Value {
    let map: Map<String, Value> = Entity::ALL
        .iter()
        .map(|&e| (e.plural().to_owned(), json!(count(e))))
        .collect();
    Value::Object(map)
}

/// The schools an export is for, with their ids (null when absent): school IT checks them
/// against the site the box is bound to, and consumers are scoped by them.
fn schools(roster: &Roster) -> Value {
    roster
        .schools
        .iter()
        .map(|s| {
            // The school's fields are the export's text: masked like a deviation's.
            let masked = |v: &Option<compact_str::CompactString>| v.as_deref().map(mask_in_text);
            json!({
                "name": mask_in_text(&s.name),
                "skolenummer": mask_in_text(&s.skolenummer),
                "organisasjonsnummer": masked(&s.organisasjonsnummer),
                "kommunenummer": masked(&s.kommunenummer),
                "fylkesnummer": masked(&s.fylkesnummer),
            })
        })
        .collect()
}

/// The `check --json` document.
pub fn check_json(path: &Path, format: Format, validated: &Validated) -> Value {
    json!({
        "file": path.display().to_string(),
        "format": format.as_str(),
        "partial": validated.partial,
        "counts": counts(|e| validated.roster.count(e)),
        "schools": schools(&validated.roster),
        "tombstones": validated.tombstones.len(),
        "renames": validated.renames.len(),
        "deviation_counts": validated
            .tally
            .iter()
            .map(|(severity, code, count)| {
                json!({ "code": code, "severity": severity, "count": count })
            })
            .collect::<Vec<_>>(),
        "deviations": validated.deviations,
        "deviations_omitted": validated.omitted(),
    })
}

/// The `check --json` document for an export that cannot be read at all (exit 2), so a
/// script reading stdout learns why instead of finding nothing.
pub fn read_error_json(error: &ReadError) -> Value {
    json!({
        "file": error.file.display().to_string(),
        "error": error.to_string(),
        "reason": error.kind.to_string(),
        "line": error.line,
        "field": error.field,
    })
}

/// The `check` report for people.
pub fn check_text(path: &Path, format: Format, validated: &Validated) -> String {
    let mut out = String::new();
    let roster: &Roster = &validated.roster;
    let _ = writeln!(
        out,
        "{}: {format}{}, {} schools, {} students, {} groups, {} enrollments",
        path.display(),
        if validated.partial {
            " (changes only)"
        } else {
            ""
        },
        roster.schools.len(),
        roster.students.len(),
        roster.groups.len(),
        roster.enrollments.len(),
    );
    for school in &roster.schools {
        let or_none =
            |v: &Option<compact_str::CompactString>| mask_in_text(v.as_deref().unwrap_or("-"));
        let _ = writeln!(
            out,
            "  school {}: skolenummer {}, organisasjonsnummer {}, kommunenummer {}, fylkesnummer {}",
            mask_in_text(&school.name),
            mask_in_text(&school.skolenummer),
            or_none(&school.organisasjonsnummer),
            or_none(&school.kommunenummer),
            or_none(&school.fylkesnummer),
        );
    }
    if !validated.renames.is_empty() {
        let _ = writeln!(
            out,
            "{} records carry a new id in place of an old one",
            validated.renames.len()
        );
    }
    if !validated.tombstones.is_empty() {
        let _ = writeln!(
            out,
            "{} records marked for deletion",
            validated.tombstones.len()
        );
    }
    let errors = validated.errors();
    let warnings = validated.tally.with_severity(Severity::Warning);
    if errors + warnings == 0 {
        let _ = writeln!(out, "no deviations: the export is ready to send");
        return out;
    }
    let _ = writeln!(
        out,
        "{errors} errors and {warnings} warnings to fix in the school administration system:"
    );
    for severity in [Severity::Error, Severity::Warning] {
        for deviation in validated
            .deviations
            .iter()
            .filter(|d| d.severity == severity)
        {
            let _ = writeln!(out, "  {deviation}");
        }
    }
    let omitted = validated.omitted();
    if omitted > 0 {
        let _ = writeln!(
            out,
            "{omitted} more not listed: the first {KEPT_PER_CODE} of each kind are (`check --all` lists every one)"
        );
        for (severity, code, count) in validated.tally.iter() {
            let _ = writeln!(out, "  {count} {} [{}]", severity.as_str(), code.as_str());
        }
    }
    out
}

/// The `diff --json` document.
pub fn diff_json(delta: &Delta, summary: &DiffSummary, judgement: &Judgement) -> Value {
    json!({
        "upserts": counts(|e| delta.upserts(e)),
        "deletes": counts(|e| delta.deletes(e).len()),
        "added": counts(|e| summary.added(e)),
        "updated": counts(|e| summary.updated(e)),
        "renamed": counts(|e| summary.renamed(e)),
        "postponed_deletes": judgement.postponed,
        "verdict": judgement.verdict.to_string(),
        "reasons": judgement.reason_texts(),
    })
}

/// The `diff` report for people.
pub fn diff_text(delta: &Delta, summary: &DiffSummary, judgement: &Judgement) -> String {
    let mut out = String::new();
    for entity in Entity::ALL {
        let _ = writeln!(
            out,
            "{:<12} {:>6} added {:>6} changed {:>6} deleted {:>6} renamed",
            entity.plural(),
            summary.added(entity),
            summary.updated(entity),
            delta.deletes(entity).len() - summary.renamed(entity).min(delta.deletes(entity).len()),
            summary.renamed(entity),
        );
    }
    let _ = writeln!(out, "verdict: {}", judgement.verdict);
    for reason in &judgement.reasons {
        let _ = writeln!(out, "  {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::School;

    /// Found by the `elevliste` fuzz target: `check` printed a school whose name cell held
    /// an 11-digit run as it was.
    #[test]
    fn a_school_name_holding_a_national_id_is_masked_in_both_check_reports() {
        let mut validated = Validated::default();
        validated.roster.schools.push(School {
            skolenummer: "7".into(),
            organisasjonsnummer: None,
            kommunenummer: Some("018112-78714".into()),
            fylkesnummer: None,
            name: "20881355796".into(),
        });
        let path = Path::new("elevliste.csv");
        let text = check_text(path, Format::Elevliste, &validated);
        let json = check_json(path, Format::Elevliste, &validated).to_string();
        for report in [text, json] {
            assert!(!report.contains("20881355796"), "{report}");
            assert!(!report.contains("78714"), "{report}");
            assert!(report.contains("208813*****"), "{report}");
        }
    }
}
