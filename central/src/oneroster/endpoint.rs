//! The endpoints of the OneRoster 1.1 rostering service, read side: a path under
//! [`super::BASE`] is read once into an [`Endpoint`] (a list with the objects it selects, or
//! one object by `sourcedId`), which is then answered from the caller's
//! [`ScopedRoster`]. The handler in `crate::api::consumer` does the HTTP; this module knows
//! which objects each path names. Every relation is read from the mapped objects' own
//! references, so a list under a school, class, course, term or user can only show what the
//! scoped roster holds. Pure.

use std::collections::HashSet;

use serde_json::Value;

use super::{id_of, ref_id, Kind, ScopedRoster};

/// A sort of object within its kind: a school among orgs, a student among users, a term
/// among academic sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Narrow {
    Any,
    /// The object's `field` is `value`.
    Is(&'static str, &'static str),
}

impl Narrow {
    fn admits(self, object: &Value) -> bool {
        match self {
            Narrow::Any => true,
            Narrow::Is(field, value) => object.get(field).and_then(Value::as_str) == Some(value),
        }
    }
}

/// A condition on a selected object, relating it to a parent named in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Constraint {
    /// The object's `field` (a reference, or a list of them) names `to`.
    Refers { field: &'static str, to: String },
    /// An enrollment whose `other` names `to` names the object in its `own`.
    Enrolled {
        own: &'static str,
        other: &'static str,
        to: String,
    },
}

impl Constraint {
    /// The constraint ready to test many objects: an enrollment join becomes the set of
    /// ids it admits, computed once, so a list costs one pass over the enrollments.
    fn prepare<'a>(&'a self, roster: &'a ScopedRoster) -> Prepared<'a> {
        match self {
            Constraint::Refers { field, to } => Prepared::Refers { field, to },
            Constraint::Enrolled { own, other, to } => Prepared::Among(
                roster
                    .of(Kind::Enrollment)
                    .iter()
                    .filter(|enrollment| refers(enrollment, other, to))
                    .filter_map(|enrollment| ref_id(enrollment, own))
                    .collect(),
            ),
        }
    }
}

/// A [`Constraint`] prepared against one roster.
enum Prepared<'a> {
    Refers { field: &'a str, to: &'a str },
    Among(HashSet<&'a str>),
}

impl Prepared<'_> {
    fn holds(&self, object: &Value) -> bool {
        match self {
            Prepared::Refers { field, to } => refers(object, field, to),
            Prepared::Among(ids) => id_of(object).is_some_and(|id| ids.contains(id)),
        }
    }
}

/// Whether `object`'s `field`, a reference or a list of references, names `id`.
pub(crate) fn refers(object: &Value, field: &str, id: &str) -> bool {
    match object.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .any(|item| item.get("sourcedId").and_then(Value::as_str) == Some(id)),
        Some(_) => ref_id(object, field) == Some(id),
        None => false,
    }
}

/// An object a path names as the parent of a list; the list is `404` unless it exists in
/// the scope (and, nested, belongs to the parent before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parent {
    kind: Kind,
    narrow: Narrow,
    id: String,
    within: Option<Constraint>,
}

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The objects of `kind` that are of `narrow`'s sort and meet every constraint, once
    /// every parent is found.
    List {
        kind: Kind,
        narrow: Narrow,
        parents: Vec<Parent>,
        constraints: Vec<Constraint>,
    },
    /// One object by `sourcedId`.
    One {
        kind: Kind,
        narrow: Narrow,
        id: String,
    },
}

/// Why an endpoint has no answer: the `404`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The object asked for, or a parent of the list, is not in the caller's scope.
    Object(Kind),
}

/// The collection a path segment names.
fn collection(name: &str) -> Option<(Kind, Narrow)> {
    Some(match name {
        "orgs" => (Kind::Org, Narrow::Any),
        "schools" => (Kind::Org, Narrow::Is("type", "school")),
        "users" => (Kind::User, Narrow::Any),
        "students" => (Kind::User, Narrow::Is("role", "student")),
        "teachers" => (Kind::User, Narrow::Is("role", "teacher")),
        "classes" => (Kind::Class, Narrow::Any),
        "enrollments" => (Kind::Enrollment, Narrow::Any),
        "courses" => (Kind::Course, Narrow::Any),
        "academicSessions" => (Kind::AcademicSession, Narrow::Any),
        "terms" => (Kind::AcademicSession, Narrow::Is("type", "term")),
        "gradingPeriods" => (Kind::AcademicSession, Narrow::Is("type", "gradingPeriod")),
        "demographics" => (Kind::Demographics, Narrow::Any),
        _ => return None,
    })
}

fn refers_to(field: &'static str, to: &str) -> Constraint {
    Constraint::Refers {
        field,
        to: to.to_owned(),
    }
}

fn enrolled(own: &'static str, other: &'static str, to: &str) -> Constraint {
    Constraint::Enrolled {
        own,
        other,
        to: to.to_owned(),
    }
}

impl Endpoint {
    /// The endpoint of `path`, the part after [`super::BASE`]`/`; `None` for a path the
    /// rostering service does not have.
    pub(crate) fn parse(path: &str) -> Option<Endpoint> {
        let segments: Vec<&str> = path.split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        let (kind, narrow) = collection(segments.first()?)?;
        let parent = |id: &str| Parent {
            kind,
            narrow,
            id: id.to_owned(),
            within: None,
        };
        let list = |kind, narrow, parents, constraints| {
            Some(Endpoint::List {
                kind,
                narrow,
                parents,
                constraints,
            })
        };
        let student = Narrow::Is("role", "student");
        let teacher = Narrow::Is("role", "teacher");
        match segments[..] {
            [_] => list(kind, narrow, Vec::new(), Vec::new()),
            [_, id] => Some(Endpoint::One {
                kind,
                narrow,
                id: id.to_owned(),
            }),
            [name, id, sub] => {
                let parents = vec![parent(id)];
                let (kind, narrow, constraint) = match (name, sub) {
                    ("schools", "classes") => (Kind::Class, Narrow::Any, refers_to("school", id)),
                    ("schools", "students") => (Kind::User, student, refers_to("orgs", id)),
                    ("schools", "teachers") => (Kind::User, teacher, refers_to("orgs", id)),
                    ("schools", "enrollments") => {
                        (Kind::Enrollment, Narrow::Any, refers_to("school", id))
                    }
                    ("schools", "courses") => (Kind::Course, Narrow::Any, refers_to("org", id)),
                    ("schools", "terms") => (
                        Kind::AcademicSession,
                        Narrow::Is("type", "term"),
                        refers_to("org", id),
                    ),
                    ("classes", "students") => (Kind::User, student, enrolled("user", "class", id)),
                    ("classes", "teachers") => (Kind::User, teacher, enrolled("user", "class", id)),
                    ("courses", "classes") => (Kind::Class, Narrow::Any, refers_to("course", id)),
                    ("users" | "students" | "teachers", "classes") => {
                        (Kind::Class, Narrow::Any, enrolled("class", "user", id))
                    }
                    ("terms", "classes") => (Kind::Class, Narrow::Any, refers_to("terms", id)),
                    ("terms", "gradingPeriods") => (
                        Kind::AcademicSession,
                        Narrow::Is("type", "gradingPeriod"),
                        refers_to("parent", id),
                    ),
                    _ => return None,
                };
                list(kind, narrow, parents, vec![constraint])
            }
            ["schools", school, "classes", class, sub] => {
                let parents = vec![
                    parent(school),
                    Parent {
                        kind: Kind::Class,
                        narrow: Narrow::Any,
                        id: class.to_owned(),
                        within: Some(refers_to("school", school)),
                    },
                ];
                let (kind, narrow, constraints) = match sub {
                    "enrollments" => (
                        Kind::Enrollment,
                        Narrow::Any,
                        vec![refers_to("class", class), refers_to("school", school)],
                    ),
                    "students" => (Kind::User, student, vec![enrolled("user", "class", class)]),
                    "teachers" => (Kind::User, teacher, vec![enrolled("user", "class", class)]),
                    _ => return None,
                };
                list(kind, narrow, parents, constraints)
            }
            _ => None,
        }
    }

    /// Whether this is a whole collection (`users`, `schools`), not one object or a list
    /// under a parent: the lists a change feed reads, with its deletions.
    pub(crate) fn is_collection(&self) -> bool {
        matches!(self, Endpoint::List { parents, .. } if parents.is_empty())
    }

    /// The kind and sort of a whole collection with no parent (`users`, `students`): the
    /// lists the store can page itself (`super::paged`).
    pub(crate) fn whole_collection(&self) -> Option<(Kind, Narrow)> {
        match self {
            Endpoint::List {
                kind,
                narrow,
                parents,
                constraints,
            } if parents.is_empty() && constraints.is_empty() => Some((*kind, *narrow)),
            _ => None,
        }
    }

    /// The kinds the answer is computed from: its own, its parents', and enrollments for a
    /// list joined through them.
    pub(crate) fn kinds(&self) -> Vec<Kind> {
        match self {
            Endpoint::One { kind, .. } => vec![*kind],
            Endpoint::List {
                kind,
                parents,
                constraints,
                ..
            } => {
                let mut kinds = vec![*kind];
                kinds.extend(parents.iter().map(|parent| parent.kind));
                if constraints
                    .iter()
                    .any(|c| matches!(c, Constraint::Enrolled { .. }))
                {
                    kinds.push(Kind::Enrollment);
                }
                kinds
            }
        }
    }

    /// The kind of the objects answered: its fields are what the query may name.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Endpoint::List { kind, .. } | Endpoint::One { kind, .. } => *kind,
        }
    }

    /// The objects of a list endpoint, in no particular order; for [`Endpoint::One`], the
    /// object in a list of one.
    pub(crate) fn select(&self, roster: &ScopedRoster) -> Result<Vec<Value>, Missing> {
        let find = |kind: Kind, narrow: Narrow, id: &str| {
            roster
                .of(kind)
                .iter()
                .find(|object| id_of(object) == Some(id) && narrow.admits(object))
        };
        match self {
            Endpoint::One { kind, narrow, id } => find(*kind, *narrow, id)
                .map(|object| vec![object.clone()])
                .ok_or(Missing::Object(*kind)),
            Endpoint::List {
                kind,
                narrow,
                parents,
                constraints,
            } => {
                for parent in parents {
                    let found = find(parent.kind, parent.narrow, &parent.id);
                    let belongs = found.is_some_and(|object| {
                        parent
                            .within
                            .as_ref()
                            .is_none_or(|within| within.prepare(roster).holds(object))
                    });
                    if !belongs {
                        return Err(Missing::Object(parent.kind));
                    }
                }
                let prepared: Vec<Prepared<'_>> =
                    constraints.iter().map(|c| c.prepare(roster)).collect();
                Ok(roster
                    .of(*kind)
                    .iter()
                    .filter(|object| narrow.admits(object))
                    .filter(|object| prepared.iter().all(|c| c.holds(object)))
                    .cloned()
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oneroster::BASE;

    fn reference(kind: Kind, id: &str) -> Value {
        json!({"href": format!("{BASE}/{}/{id}", kind.plural()), "sourcedId": id, "type": kind.singular()})
    }

    /// Two schools; class c1 at s1 with student u1, class c2 at s2 with student u2.
    fn roster() -> ScopedRoster {
        let s1 = reference(Kind::Org, "s1");
        let s2 = reference(Kind::Org, "s2");
        ScopedRoster {
            orgs: vec![
                json!({"sourcedId": "s1", "type": "school"}),
                json!({"sourcedId": "s2", "type": "school"}),
            ],
            users: vec![
                json!({"sourcedId": "u1", "role": "student", "orgs": [s1]}),
                json!({"sourcedId": "u2", "role": "student", "orgs": [s2]}),
            ],
            classes: vec![
                json!({"sourcedId": "c1", "school": s1, "course": reference(Kind::Course, "k1"),
                       "terms": [reference(Kind::AcademicSession, "y1")]}),
                json!({"sourcedId": "c2", "school": s2, "course": reference(Kind::Course, "k2"),
                       "terms": [reference(Kind::AcademicSession, "y1")]}),
            ],
            enrollments: vec![
                json!({"sourcedId": "e1", "user": reference(Kind::User, "u1"),
                       "class": reference(Kind::Class, "c1"), "school": s1}),
                json!({"sourcedId": "e2", "user": reference(Kind::User, "u2"),
                       "class": reference(Kind::Class, "c2"), "school": s2}),
            ],
            courses: vec![
                json!({"sourcedId": "k1", "org": s1}),
                json!({"sourcedId": "k2", "org": s2}),
            ],
            sessions: vec![json!({"sourcedId": "y1", "type": "schoolYear"})],
            demographics: vec![json!({"sourcedId": "u1"})],
            ..ScopedRoster::default()
        }
    }

    fn ids(path: &str) -> Result<Vec<String>, Missing> {
        let endpoint = Endpoint::parse(path).unwrap_or_else(|| panic!("{path} is an endpoint"));
        assert!(endpoint.kinds().contains(&endpoint.kind()));
        let mut ids: Vec<String> = endpoint
            .select(&roster())?
            .iter()
            .map(|o| id_of(o).unwrap().to_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    #[test]
    fn every_rostering_path_selects_the_objects_it_names() {
        let some = |items: &[&str]| Ok(items.iter().map(|i| (*i).to_owned()).collect::<Vec<_>>());
        for (path, expected) in [
            ("orgs", some(&["s1", "s2"])),
            ("schools", some(&["s1", "s2"])),
            ("schools/s1", some(&["s1"])),
            ("users", some(&["u1", "u2"])),
            ("students", some(&["u1", "u2"])),
            ("students/u2", some(&["u2"])),
            ("teachers", some(&[])),
            ("teachers/u1", Err(Missing::Object(Kind::User))),
            ("classes", some(&["c1", "c2"])),
            ("enrollments/e2", some(&["e2"])),
            ("courses", some(&["k1", "k2"])),
            ("academicSessions", some(&["y1"])),
            ("terms", some(&[])),
            ("gradingPeriods", some(&[])),
            ("demographics/u1", some(&["u1"])),
            ("schools/s1/classes", some(&["c1"])),
            ("schools/s2/students", some(&["u2"])),
            ("schools/s1/teachers", some(&[])),
            ("schools/s1/enrollments", some(&["e1"])),
            ("schools/s2/courses", some(&["k2"])),
            ("schools/s1/terms", some(&[])),
            ("schools/s1/classes/c1/enrollments", some(&["e1"])),
            ("schools/s1/classes/c1/students", some(&["u1"])),
            ("schools/s1/classes/c1/teachers", some(&[])),
            (
                "schools/s2/classes/c1/students",
                Err(Missing::Object(Kind::Class)),
            ),
            ("classes/c2/students", some(&["u2"])),
            ("classes/c2/teachers", some(&[])),
            ("courses/k1/classes", some(&["c1"])),
            ("users/u1/classes", some(&["c1"])),
            ("students/u2/classes", some(&["c2"])),
            (
                "terms/y1/classes",
                Err(Missing::Object(Kind::AcademicSession)),
            ),
            ("academicSessions/y1", some(&["y1"])),
            ("schools/s9/classes", Err(Missing::Object(Kind::Org))),
            ("classes/c9/students", Err(Missing::Object(Kind::Class))),
        ] {
            assert_eq!(ids(path), expected, "{path}");
        }
    }

    #[test]
    fn paths_outside_the_service_are_no_endpoint() {
        for path in [
            "",
            "pets",
            "orgs/",
            "orgs//classes",
            "classes/c1/results",
            "schools/s1/classes/c1/lineItems",
            "a/b/c/d/e/f",
        ] {
            assert_eq!(Endpoint::parse(path), None, "{path}");
        }
    }
}
