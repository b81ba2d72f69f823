//! The OneRoster 1.1 `filter` parameter: parsed once at the edge of a list request
//! ([`crate::oneroster::query`]) into a [`Filter`], checked against the fields of the
//! collection asked for, then matched against each mapped object's JSON before paging.
//!
//! The grammar is the specification's (section 3.4.2 of the REST binding), with the logical
//! operators allowed to repeat: `AND` binds tighter than `OR`, so `a AND b OR c` is
//! `(a AND b) OR c`.
//!
//! ```text
//! filter    = predicate *( " AND " / " OR " predicate )
//! predicate = field *SP operator *SP value
//! operator  = "=" / "!=" / ">" / ">=" / "<" / "<=" / "~"
//! value     = "'" *( any character but "'" / "''" ) "'"
//! ```
//!
//! A quote inside a value is written twice. `~` is "contains", ignoring case. Pure: no I/O,
//! and no input makes it panic (a property test feeds it arbitrary text).

use std::fmt;

use serde_json::Value;

use crate::store::Timestamp;

/// Longest filter accepted, in bytes: a filter is a few predicates, and a bound keeps a
/// pathological one from costing more than a page of records to match.
pub(crate) const MAX_FILTER_BYTES: usize = 4096;

/// Longest field name: the specification's are short, and a refusal names the field.
pub(crate) const MAX_FIELD_CHARS: usize = 64;

/// Most predicates in one filter, for the same reason.
pub(crate) const MAX_PREDICATES: usize = 32;

/// A comparison operator of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Contains,
}

impl Op {
    /// Longest first, so `>=` is not read as `>` followed by a value starting with `=`.
    const TEXTS: [(&'static str, Op); 7] = [
        (">=", Op::GreaterOrEqual),
        ("<=", Op::LessOrEqual),
        ("!=", Op::NotEqual),
        (">", Op::Greater),
        ("<", Op::Less),
        ("=", Op::Equal),
        ("~", Op::Contains),
    ];

    fn text(self) -> &'static str {
        Op::TEXTS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("=", |(text, _)| text)
    }
}

/// One `field op 'value'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Predicate {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// A parsed filter in disjunctive form: it matches an object if every predicate of at
/// least one group does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    any_of: Vec<Vec<Predicate>>,
}

/// Why a filter text is not a filter; the detail of a 400 `invalid_filter_field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    #[error(
        "a filter is at most {MAX_FILTER_BYTES} bytes with at most {MAX_PREDICATES} predicates"
    )]
    TooLong,
    #[error("a filter predicate is <field><op>'<value>' with <op> one of = != > >= < <= ~")]
    Syntax,
    #[error("predicates are joined by ' AND ' or ' OR '")]
    Logical,
    #[error("the value of a filter predicate is quoted ('…'); a quote inside it is written twice")]
    Quote,
    #[error("this collection has no field {0:?} to filter on")]
    UnknownField(String),
    #[error("dateLastModified is compared with an RFC 3339 time or a date")]
    NotATime,
}

impl Filter {
    /// Parses the text of a `filter` parameter.
    pub(crate) fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(FilterError::TooLong);
        }
        let mut any_of = vec![Vec::new()];
        let mut rest = text.trim();
        let mut count = 0usize;
        loop {
            let (predicate, after) = predicate(rest)?;
            count += 1;
            if count > MAX_PREDICATES {
                return Err(FilterError::TooLong);
            }
            if let Some(group) = any_of.last_mut() {
                group.push(predicate);
            }
            let after = after.trim_start();
            if after.is_empty() {
                break;
            }
            if let Some(next) = after.strip_prefix("AND ") {
                rest = next.trim_start();
            } else if let Some(next) = after.strip_prefix("OR ") {
                any_of.push(Vec::new());
                rest = next.trim_start();
            } else {
                return Err(FilterError::Logical);
            }
        }
        Ok(Filter { any_of })
    }

    /// The filter's `OR` groups, each a list of predicates joined by `AND`: what the store
    /// may be asked for when there is one group (`super::paged`).
    pub(crate) fn groups(&self) -> &[Vec<Predicate>] {
        &self.any_of
    }

    /// Every predicate, in order.
    fn predicates(&self) -> impl Iterator<Item = &Predicate> {
        self.any_of.iter().flatten()
    }

    /// Refuses a filter naming a field outside `fields` (the collection's), or comparing
    /// `dateLastModified` with something that is not a time: the specification's
    /// `invalid_filter_field`, rather than an empty answer that hides the mistake.
    pub(crate) fn check(&self, fields: &[&str]) -> Result<(), FilterError> {
        for predicate in self.predicates() {
            if !fields.contains(&predicate.field.as_str()) {
                return Err(FilterError::UnknownField(predicate.field.clone()));
            }
            if predicate.field == "dateLastModified"
                && predicate.op != Op::Contains
                && Timestamp::parse_rfc3339(&predicate.value).is_none()
            {
                return Err(FilterError::NotATime);
            }
        }
        Ok(())
    }

    /// The time a change feed asks from: the filter selects only objects modified after it
    /// (`dateLastModified>=` or `>` in every `OR` branch; the earliest of the branches'
    /// latest bounds). `None` when some branch has no such bound.
    pub(crate) fn since(&self) -> Option<Timestamp> {
        self.any_of
            .iter()
            .map(|group| {
                group
                    .iter()
                    .filter(|p| p.field == "dateLastModified")
                    .filter(|p| matches!(p.op, Op::Greater | Op::GreaterOrEqual))
                    .filter_map(|p| Timestamp::parse_rfc3339(&p.value))
                    .max()
            })
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    /// Whether the object (as served) matches.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.any_of
            .iter()
            .any(|group| group.iter().all(|predicate| predicate.matches(object)))
    }
}

impl Predicate {
    /// Whether the object (as served) matches this predicate alone.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let field = object.get(&self.field).unwrap_or(&Value::Null);
        match field {
            // A list matches if one of its elements does: `grades='10'`, `orgs='<id>'`.
            // `!=` on a list: no element is equal.
            Value::Array(items) if self.op == Op::NotEqual => {
                items.iter().all(|item| self.matches_one(item))
            }
            Value::Array(items) => items.iter().any(|item| self.matches_one(item)),
            one => self.matches_one(one),
        }
    }

    fn matches_one(&self, value: &Value) -> bool {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            // A reference compares by the id it names.
            Value::Object(object) => match object.get("sourcedId") {
                Some(Value::String(id)) => id.clone(),
                _ => return self.op == Op::NotEqual,
            },
            Value::Null | Value::Array(_) => return self.op == Op::NotEqual,
        };
        let ordering = if self.field == "dateLastModified" {
            match (
                Timestamp::parse_rfc3339(&text),
                Timestamp::parse_rfc3339(&self.value),
            ) {
                (Some(have), Some(want)) => have.cmp(&want),
                _ => text.as_str().cmp(self.value.as_str()),
            }
        } else {
            text.as_str().cmp(self.value.as_str())
        };
        match self.op {
            Op::Equal => ordering.is_eq(),
            Op::NotEqual => ordering.is_ne(),
            Op::Greater => ordering.is_gt(),
            Op::GreaterOrEqual => ordering.is_ge(),
            Op::Less => ordering.is_lt(),
            Op::LessOrEqual => ordering.is_le(),
            Op::Contains => text.to_lowercase().contains(&self.value.to_lowercase()),
        }
    }
}

/// The fuzz target's entry (`fuzz/fuzz_targets/oneroster_filter.rs`), compiled only under
/// cargo-fuzz's `--cfg fuzzing` since the filter's types stay private to this crate. Parses
/// `text` and asserts what the tests assert of any text: no panic, a refusal is a value, a
/// filter written out parses back to itself, and checking, `since` and matching a user
/// object all answer.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz(text: &str) {
    const FIELDS: [&str; 5] = [
        "sourcedId",
        "familyName",
        "role",
        "dateLastModified",
        "orgs",
    ];
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    assert!(filter.predicates().count() <= MAX_PREDICATES);
    let written = filter.to_string();
    if written.len() <= MAX_FILTER_BYTES {
        assert_eq!(Filter::parse(&written).as_ref(), Ok(&filter), "{written:?}");
    }
    let _ = filter.check(&FIELDS);
    let _ = filter.since();
    let user = serde_json::json!({
        "sourcedId": "u1",
        "familyName": "Nilsen",
        "role": "student",
        "dateLastModified": "2026-08-15T06:00:00Z",
        "enabledUser": true,
        "orgs": [{"sourcedId": "o1", "type": "org"}],
        "grades": ["05"],
        "metadata": null,
    });
    let _ = filter.matches(&user);
}

/// One predicate at the start of `text`, and what follows it.
fn predicate(text: &str) -> Result<(Predicate, &str), FilterError> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    let (field, rest) = text.split_at(end);
    if field.len() > MAX_FIELD_CHARS || !field.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(FilterError::Syntax);
    }
    let rest = rest.trim_start();
    let (op, rest) = Op::TEXTS
        .iter()
        .find_map(|(text, op)| rest.strip_prefix(text).map(|rest| (*op, rest)))
        .ok_or(FilterError::Syntax)?;
    let rest = rest.trim_start();
    let mut chars = rest
        .strip_prefix('\'')
        .ok_or(FilterError::Quote)?
        .char_indices();
    let mut value = String::new();
    let body = &rest[1..];
    while let Some((at, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
            continue;
        }
        if body[at + 1..].starts_with('\'') {
            value.push('\'');
            chars.next();
            continue;
        }
        let predicate = Predicate {
            field: field.to_owned(),
            op,
            value,
        };
        return Ok((predicate, &body[at + 1..]));
    }
    Err(FilterError::Quote)
}

impl fmt::Display for Filter {
    /// The filter in the grammar, as [`Filter::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.any_of.iter().enumerate() {
            if i > 0 {
                f.write_str(" OR ")?;
            }
            for (j, predicate) in group.iter().enumerate() {
                if j > 0 {
                    f.write_str(" AND ")?;
                }
                write!(
                    f,
                    "{}{}'{}'",
                    predicate.field,
                    predicate.op.text(),
                    predicate.value.replace('\'', "''")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn one(field: &str, op: Op, value: &str) -> Predicate {
        Predicate {
            field: field.to_owned(),
            op,
            value: value.to_owned(),
        }
    }

    #[test]
    fn every_operator_parses_with_or_without_spaces() {
        for (text, op) in Op::TEXTS {
            let spaced = format!("familyName {text} 'Nilsen'");
            let tight = format!("familyName{text}'Nilsen'");
            for filter in [spaced, tight] {
                assert_eq!(
                    Filter::parse(&filter),
                    Ok(Filter {
                        any_of: vec![vec![one("familyName", op, "Nilsen")]]
                    }),
                    "{filter}"
                );
            }
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_doubled_quotes_are_one_quote() {
        let filter =
            Filter::parse("role='student' AND familyName='O''Neil' OR status!='active'").unwrap();
        assert_eq!(
            filter.any_of,
            vec![
                vec![
                    one("role", Op::Equal, "student"),
                    one("familyName", Op::Equal, "O'Neil")
                ],
                vec![one("status", Op::NotEqual, "active")],
            ]
        );
        let student = json!({"role": "student", "familyName": "O'Neil", "status": "active"});
        let other = json!({"role": "student", "familyName": "Nilsen", "status": "active"});
        assert!(filter.matches(&student));
        assert!(!filter.matches(&other));
    }

    #[test]
    fn malformed_filters_are_refused_with_the_reason() {
        for (text, error) in [
            ("", FilterError::Syntax),
            ("familyName", FilterError::Syntax),
            ("familyName=Nilsen", FilterError::Quote),
            ("familyName='Nilsen", FilterError::Quote),
            ("familyName='a' role='b'", FilterError::Logical),
            ("familyName='a' AND", FilterError::Logical),
            ("familyName='a' AND ", FilterError::Logical),
            ("familyName='a' AND x", FilterError::Syntax),
            ("familyName='a' XOR role='b'", FilterError::Logical),
            ("='a'", FilterError::Syntax),
            ("1role='a'", FilterError::Syntax),
        ] {
            assert_eq!(Filter::parse(text), Err(error), "{text}");
        }
        let long_field = format!("{}='a'", "x".repeat(MAX_FIELD_CHARS + 1));
        assert_eq!(Filter::parse(&long_field), Err(FilterError::Syntax));
        let long = vec!["role='student'"; MAX_PREDICATES + 1].join(" AND ");
        assert_eq!(Filter::parse(&long), Err(FilterError::TooLong));
    }

    #[test]
    fn unknown_fields_and_bad_times_fail_the_check() {
        let fields = ["sourcedId", "dateLastModified", "role"];
        assert_eq!(
            Filter::parse("role='student'").unwrap().check(&fields),
            Ok(())
        );
        assert_eq!(
            Filter::parse("shoeSize='42'").unwrap().check(&fields),
            Err(FilterError::UnknownField("shoeSize".to_owned()))
        );
        assert_eq!(
            Filter::parse("dateLastModified>'yesterday'")
                .unwrap()
                .check(&fields),
            Err(FilterError::NotATime)
        );
    }

    #[test]
    fn a_change_feed_starts_at_the_bound_every_branch_has() {
        let at = |text: &str| Timestamp::parse_rfc3339(text);
        let since = |text: &str| Filter::parse(text).unwrap().since();
        assert_eq!(since("dateLastModified>='2026-11-01'"), at("2026-11-01"));
        assert_eq!(
            since("role='student' AND dateLastModified>'2026-11-01' AND dateLastModified>='2026-11-02'"),
            at("2026-11-02")
        );
        assert_eq!(
            since("dateLastModified>='2026-11-03' OR dateLastModified>'2026-11-02'"),
            at("2026-11-02")
        );
        assert_eq!(
            since("dateLastModified>='2026-11-03' OR role='student'"),
            None
        );
        assert_eq!(since("dateLastModified<'2026-11-03'"), None);
    }

    #[test]
    fn times_compare_as_times_lists_by_element_and_references_by_id() {
        let object = json!({
            "dateLastModified": "2026-11-01T10:00:00.000Z",
            "grades": ["09", "10"],
            "school": {"href": "/x", "sourcedId": "abc", "type": "org"},
            "middleName": null,
        });
        let yes = [
            "dateLastModified>'2026-11-01T09:00:00Z'",
            "dateLastModified>='2026-11-01'",
            "dateLastModified='2026-11-01T11:00:00+01:00'",
            "grades='10'",
            "school='abc'",
            "middleName!='x'",
            "grades~'1'",
        ];
        let no = [
            "dateLastModified<'2026-11-01T09:00:00Z'",
            "grades='11'",
            "grades!='10'",
            "school='abd'",
            "middleName='x'",
        ];
        for text in yes {
            assert!(Filter::parse(text).unwrap().matches(&object), "{text}");
        }
        for text in no {
            assert!(!Filter::parse(text).unwrap().matches(&object), "{text}");
        }
    }

    fn predicate_strategy() -> impl Strategy<Value = Predicate> {
        (
            "[a-zA-Z][a-zA-Z0-9_.]{0,12}",
            prop::sample::select(Op::TEXTS.map(|(_, op)| op).to_vec()),
            any::<String>(),
        )
            .prop_map(|(field, op, value)| Predicate { field, op, value })
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_any_text(text in any::<String>()) {
            let _ = Filter::parse(&text);
        }

        #[test]
        fn parsing_never_panics_on_text_made_of_the_grammars_pieces(
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    "role", "=", "!=", ">=", "~", "'", "''", " AND ", " OR ", " ", "x", "é", "\u{0}",
                ]),
                0..40,
            )
        ) {
            let _ = Filter::parse(&pieces.concat());
        }

        #[test]
        fn a_filter_written_out_parses_back_to_itself(
            any_of in prop::collection::vec(prop::collection::vec(predicate_strategy(), 1..4), 1..4)
        ) {
            let filter = Filter { any_of };
            let text = filter.to_string();
            prop_assume!(text.len() <= MAX_FILTER_BYTES);
            prop_assert_eq!(Filter::parse(&text), Ok(filter));
        }
    }
}
