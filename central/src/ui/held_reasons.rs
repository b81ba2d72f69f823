//! The safety filter's reasons for holding a delta, in the language the page is served in
//! (issue 16). A newer agent sends each reason as structure ([`HeldReason`]) beside its
//! English text; these words are made from the structure, with counts in the right number
//! ("1 elev", "2 elever"), and an older agent's text, or a reason this build does not know,
//! is shown as the agent wrote it.

use skolebro_protocol::api::HeldDelta;
use skolebro_protocol::civil_time::CivilDate;
use skolebro_protocol::held::percent;
use skolebro_protocol::HeldReason;

use super::text::{Lang, Noun};

/// All the reasons of a held delta in `lang`, joined, with national ids masked as the agent
/// masks them.
pub(super) fn held_reasons(lang: Lang, held: &HeldDelta) -> String {
    let said: Vec<String> = held
        .reasons_with_causes()
        .map(|(text, cause)| {
            cause
                .and_then(|cause| reason_words(lang, cause))
                .unwrap_or_else(|| text.to_owned())
        })
        .collect();
    skolebro_protocol::mask_in_text(&said.join("; "))
}

/// One reason in `lang`; `None` for a reason of a kind this build does not know.
pub(super) fn reason_words(lang: Lang, reason: &HeldReason) -> Option<String> {
    let share = |would: u64, of: u64, limit: u32| match lang {
        Lang::Nb => format!("{:.0} %, grensen er {limit} %", percent(would, of)),
        Lang::English => format!("{:.0}%, limit {limit}%", percent(would, of)),
    };
    let words = match (lang, reason) {
        (_, HeldReason::Unknown) => return None,
        (Lang::Nb, HeldReason::ColumnVanished { column }) => format!(
            "forrige eksport hadde kolonnen `{column}`, og denne har den ikke: dataene i den \
             ville blitt fjernet fra alle poster (nytt navn? se advarslene unknown_column)"
        ),
        (
            Lang::Nb,
            HeldReason::TooManyDeletes {
                would,
                of,
                limit_percent,
            },
        ) => format!(
            "{would} av {} ville blitt slettet ({})",
            lang.count(*of, Noun::Student),
            share(*would, *of, *limit_percent)
        ),
        (
            Lang::English,
            HeldReason::TooManyDeletes {
                would,
                of,
                limit_percent,
            },
        ) => format!(
            "{would} of {} would be deleted ({})",
            lang.count(*of, Noun::Student),
            share(*would, *of, *limit_percent)
        ),
        (
            Lang::Nb,
            HeldReason::TooManyUpdates {
                would,
                of,
                limit_percent,
            },
        ) => format!(
            "{would} av {} ville blitt endret ({})",
            lang.count(*of, Noun::Record),
            share(*would, *of, *limit_percent)
        ),
        (
            Lang::English,
            HeldReason::TooManyUpdates {
                would,
                of,
                limit_percent,
            },
        ) => format!(
            "{would} of {} would change ({})",
            lang.count(*of, Noun::Record),
            share(*would, *of, *limit_percent)
        ),
        (Lang::Nb, HeldReason::DeletionsPostponed { count, from, to }) => format!(
            "{} utsatt: vinduet for utsatt sletting fra {} til {} er åpent",
            lang.count(*count, Noun::Deletion),
            day(from),
            day(to)
        ),
        (Lang::English, HeldReason::DeletionsPostponed { count, from, to }) => format!(
            "{} postponed: delay-delete window {from} to {to} is open",
            lang.count(*count, Noun::Deletion)
        ),
        (Lang::Nb, HeldReason::Resync) => {
            "fullt øyeblikksbilde for å synkronisere med sentralen på nytt".to_owned()
        }
        (Lang::Nb, HeldReason::Released) => "sluppet av en operatør".to_owned(),
        (Lang::English, reason) => reason.to_string(),
    };
    Some(words)
}

/// An ISO day (`2026-06-20`) as bokmål writes it (`20.06.2026`); anything else as it came.
fn day(iso: &str) -> String {
    CivilDate::parse_iso(iso).map_or_else(
        || iso.to_owned(),
        |date| format!("{:02}.{:02}.{}", date.day(), date.month(), date.year()),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn deletes(would: u64, of: u64) -> HeldReason {
        HeldReason::TooManyDeletes {
            would,
            of,
            limit_percent: 10,
        }
    }

    fn said(lang: Lang, reason: &HeldReason) -> String {
        reason_words(lang, reason).expect("a known reason")
    }

    #[test]
    fn held_deletions_are_said_in_bokmal_and_english_with_the_plural_their_count_asks_for() {
        assert_eq!(
            said(Lang::Nb, &deletes(151, 300)),
            "151 av 300 elever ville blitt slettet (50 %, grensen er 10 %)"
        );
        assert_eq!(
            said(Lang::English, &deletes(151, 300)),
            "151 of 300 students would be deleted (50%, limit 10%)"
        );
        assert_eq!(
            said(Lang::Nb, &deletes(1, 1)),
            "1 av 1 elev ville blitt slettet (100 %, grensen er 10 %)"
        );
        assert_eq!(
            said(Lang::English, &deletes(1, 1)),
            "1 of 1 student would be deleted (100%, limit 10%)"
        );
    }

    #[test]
    fn changes_postponements_and_vanished_columns_are_said_in_both_languages() {
        let updates = HeldReason::TooManyUpdates {
            would: 76,
            of: 100,
            limit_percent: 75,
        };
        assert_eq!(
            said(Lang::Nb, &updates),
            "76 av 100 poster ville blitt endret (76 %, grensen er 75 %)"
        );
        assert_eq!(
            said(Lang::English, &updates),
            "76 of 100 records would change (76%, limit 75%)"
        );
        let postponed = |count| HeldReason::DeletionsPostponed {
            count,
            from: "2026-06-20".into(),
            to: "2026-08-15".into(),
        };
        assert_eq!(
            said(Lang::Nb, &postponed(1)),
            "1 sletting utsatt: vinduet for utsatt sletting fra 20.06.2026 til 15.08.2026 er åpent"
        );
        assert_eq!(
            said(Lang::English, &postponed(2)),
            "2 deletions postponed: delay-delete window 2026-06-20 to 2026-08-15 is open"
        );
        let column = HeldReason::ColumnVanished {
            column: "Klasse".into(),
        };
        assert!(said(Lang::Nb, &column).starts_with("forrige eksport hadde kolonnen `Klasse`"));
        assert_eq!(said(Lang::English, &column), column.to_string());
        assert_eq!(
            said(Lang::Nb, &HeldReason::Released),
            "sluppet av en operatør"
        );
        assert_eq!(reason_words(Lang::Nb, &HeldReason::Unknown), None);
    }

    #[test]
    fn an_older_agents_text_and_an_unknown_reason_are_shown_as_the_agent_wrote_them() {
        let mut held = HeldDelta {
            id: "h1".into(),
            reasons: vec![deletes(11, 100).to_string(), "a newer reason".into()],
            causes: vec![deletes(11, 100), HeldReason::Unknown],
            upserts: BTreeMap::new(),
            deletes: BTreeMap::new(),
            held_since_unix_ms: None,
        };
        assert_eq!(
            held_reasons(Lang::Nb, &held),
            "11 av 100 elever ville blitt slettet (11 %, grensen er 10 %); a newer reason"
        );
        held.causes.clear();
        assert_eq!(
            held_reasons(Lang::Nb, &held),
            "11 of 100 students would be deleted (11%, limit 10%); a newer reason"
        );
    }
}
