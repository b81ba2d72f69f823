//! The query of a OneRoster list request (`limit`, `offset`, `filter`, `sort`, `orderBy`,
//! `fields`), checked once against the collection's fields into a [`PageRequest`], then
//! applied to the caller's scoped objects: filter, sort, page, select fields. The handler in
//! `crate::api::consumer` calls [`PageRequest::from_query`] and [`PageRequest::apply`];
//! `super::links` writes the paging links from the same request. Pure: no I/O.

use axum::extract::Query;
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::filter::{Filter, FilterError};

/// Page size when a request names none.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// Largest page; a larger `limit` is served as this many.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The query of a list request as sent. Parameters outside the specification's are refused
/// rather than ignored, so a misspelt `filtr` does not pass for an unfiltered request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    filter: Option<String>,
    sort: Option<String>,
    #[serde(rename = "orderBy")]
    order_by: Option<String>,
    fields: Option<String>,
}

/// Why a list query was refused. Each names the specification's status code it answers
/// with ([`QueryError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("limit is a whole number from 1 (at most 1000 are served)")]
    Limit,
    #[error("offset is a whole number from 0")]
    Offset,
    #[error("{0}")]
    Filter(#[from] FilterError),
    #[error("sort names no field of this collection")]
    SortField,
    #[error("orderBy is asc or desc")]
    OrderBy,
    #[error("fields names a field this collection does not have")]
    SelectionField,
    #[error("the parameters served are limit, offset, filter, sort, orderBy and fields")]
    Parameter,
}

impl QueryError {
    /// The error code of the refusal: the OneRoster code minor where the specification has
    /// one (`invalid_filter_field`, `invalid_selection_field`), else central's own.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            QueryError::Limit => "invalid_limit",
            QueryError::Offset => "invalid_offset",
            QueryError::Filter(_) => "invalid_filter_field",
            QueryError::SortField => "invalid_sort_field",
            QueryError::OrderBy => "invalid_order_by",
            QueryError::SelectionField => "invalid_selection_field",
            QueryError::Parameter => "invalid_query",
        }
    }
}

/// A checked list request.
#[derive(Debug)]
pub(crate) struct PageRequest {
    pub limit: usize,
    pub offset: usize,
    filter: Option<Filter>,
    sort: Option<String>,
    descending: bool,
    fields: Option<Vec<String>>,
    /// The parameters other than `limit` and `offset`, as sent, for the paging links.
    pub carried: Vec<(&'static str, String)>,
}

impl PageRequest {
    /// Checks `query` against `fields`, the fields of the collection asked for.
    pub(crate) fn from_query(query: ListQuery, fields: &[&str]) -> Result<PageRequest, QueryError> {
        let number = |text: &Option<String>, default: usize, error: QueryError| match text {
            None => Ok(default),
            Some(text) => text.trim().parse::<usize>().map_err(|_| error),
        };
        let limit = number(&query.limit, DEFAULT_LIMIT, QueryError::Limit)?;
        if limit == 0 {
            return Err(QueryError::Limit);
        }
        let offset = number(&query.offset, 0, QueryError::Offset)?;
        let filter = match &query.filter {
            None => None,
            Some(text) => {
                let filter = Filter::parse(text)?;
                filter.check(fields)?;
                Some(filter)
            }
        };
        let sort = match &query.sort {
            None => None,
            Some(field) if fields.contains(&field.trim()) => Some(field.trim().to_owned()),
            Some(_) => return Err(QueryError::SortField),
        };
        let descending = match query.order_by.as_deref().map(str::trim) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(QueryError::OrderBy),
        };
        let selected = match &query.fields {
            None => None,
            Some(list) => {
                let mut selected = Vec::new();
                for field in list.split(',').map(str::trim) {
                    if !fields.contains(&field) {
                        return Err(QueryError::SelectionField);
                    }
                    selected.push(field.to_owned());
                }
                Some(selected)
            }
        };
        let carried = [
            ("filter", query.filter),
            ("sort", query.sort),
            ("orderBy", query.order_by),
            ("fields", query.fields),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect();
        Ok(PageRequest {
            limit: limit.min(MAX_LIMIT),
            offset,
            filter,
            sort,
            descending,
            fields: selected,
            carried,
        })
    }

    /// The request's page of `objects` (each with a `sourcedId`) and the number matching
    /// the filter: filtered, sorted by the `sort` field (ties, and no `sort`, by
    /// `sourcedId`), in `orderBy`'s direction, then cut to the page. Each object is still
    /// whole, so the access log can tell whose records it holds before [`PageRequest::select`]
    /// cuts it to the selected fields.
    pub(crate) fn apply(&self, mut objects: Vec<Value>) -> (Vec<Value>, usize) {
        if let Some(filter) = &self.filter {
            objects.retain(|object| filter.matches(object));
        }
        // Each object's key is computed once, not once per comparison.
        objects.sort_by_cached_key(|object| {
            let by_field = self.sort.as_ref().map(|field| sort_key(object.get(field)));
            (by_field, sort_key(object.get("sourcedId")))
        });
        if self.descending {
            objects.reverse();
        }
        let total = objects.len();
        let page = objects
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        (page, total)
    }

    /// The parsed filter, if any.
    pub(crate) fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// The field sorted by before `sourcedId`, if the request names one.
    pub(crate) fn sort(&self) -> Option<&str> {
        self.sort.as_deref()
    }

    /// Whether the order is `orderBy=desc`.
    pub(crate) fn descending(&self) -> bool {
        self.descending
    }

    /// The time the filter asks for changes from ([`Filter::since`]): a change feed, which
    /// also answers what was deleted since.
    pub(crate) fn since(&self) -> Option<crate::store::Timestamp> {
        self.filter.as_ref()?.since()
    }

    /// The `filter` parameter as the client sent it, if any: what the access log keeps
    /// (masked).
    pub(crate) fn filter_text(&self) -> Option<&str> {
        self.carried
            .iter()
            .find(|(name, _)| *name == "filter")
            .map(|(_, text)| text.as_str())
    }

    /// The object with the selected fields only (all without `fields`).
    pub(crate) fn select(&self, object: Value) -> Value {
        match (&self.fields, object) {
            (Some(fields), Value::Object(mut all)) => {
                let mut kept = Map::new();
                for field in fields {
                    if let Some(value) = all.remove(field) {
                        kept.insert(field.clone(), value);
                    }
                }
                Value::Object(kept)
            }
            (_, object) => object,
        }
    }
}

/// What a field sorts by: its text; a reference's id; a list's first element; missing and
/// null first.
fn sort_key(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Object(object) => sort_key(object.get("sourcedId")),
        Value::Array(items) => sort_key(items.first()),
        Value::Null => None,
    }
}

/// The list query of a request's URI, refusing unknown or repeated parameters.
pub(crate) fn parse_query(uri: &Uri) -> Result<ListQuery, QueryError> {
    Query::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|_| QueryError::Parameter)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIELDS: [&str; 4] = ["sourcedId", "familyName", "role", "dateLastModified"];

    fn query(text: &str) -> Result<PageRequest, QueryError> {
        let uri: Uri = format!("/users?{text}").parse().unwrap();
        PageRequest::from_query(parse_query(&uri)?, &FIELDS)
    }

    fn people() -> Vec<Value> {
        vec![
            json!({"sourcedId": "b", "familyName": "Nilsen", "role": "student"}),
            json!({"sourcedId": "a", "familyName": "Åsheim", "role": "student"}),
            json!({"sourcedId": "c", "familyName": "Berg", "role": "teacher"}),
        ]
    }

    fn ids(page: &[Value]) -> Vec<&str> {
        page.iter()
            .map(|o| o["sourcedId"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn without_parameters_pages_are_sorted_by_sourced_id() {
        let request = query("").unwrap();
        let (page, total) = request.apply(people());
        assert_eq!((ids(&page), total), (vec!["a", "b", "c"], 3));
    }

    #[test]
    fn sort_order_by_filter_and_fields_combine() {
        let request = query(
            "filter=role%3D%27student%27&sort=familyName&orderBy=desc&fields=sourcedId,familyName",
        )
        .unwrap();
        let (page, total) = request.apply(people());
        let page: Vec<Value> = page.into_iter().map(|o| request.select(o)).collect();
        assert_eq!(total, 2);
        assert_eq!(request.filter_text(), Some("role='student'"));
        assert_eq!(
            page,
            vec![
                json!({"sourcedId": "a", "familyName": "Åsheim"}),
                json!({"sourcedId": "b", "familyName": "Nilsen"}),
            ]
        );
        assert_eq!(
            request.carried,
            vec![
                ("filter", "role='student'".to_owned()),
                ("sort", "familyName".to_owned()),
                ("orderBy", "desc".to_owned()),
                ("fields", "sourcedId,familyName".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_the_specifications_codes() {
        for (text, code) in [
            ("limit=0", "invalid_limit"),
            ("limit=many", "invalid_limit"),
            ("offset=-1", "invalid_offset"),
            ("filter=shoeSize%3D%2742%27", "invalid_filter_field"),
            ("filter=role%3Dstudent", "invalid_filter_field"),
            ("sort=shoeSize", "invalid_sort_field"),
            ("orderBy=up", "invalid_order_by"),
            ("fields=sourcedId,shoeSize", "invalid_selection_field"),
            ("filtr=x", "invalid_query"),
            ("limit=1&limit=2", "invalid_query"),
        ] {
            assert_eq!(
                query(text).map(|_| ()).map_err(|e| e.code()),
                Err(code),
                "{text}"
            );
        }
    }

    #[test]
    fn a_large_limit_is_served_as_the_largest_page() {
        assert_eq!(query("limit=5000").unwrap().limit, MAX_LIMIT);
    }
}
