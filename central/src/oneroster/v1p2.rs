//! The OneRoster 1.2 rostering read side (`/ims/oneroster/rostering/v1p2/…`), served from
//! the same endpoints, scope, paging, links, errors and change feed as 1.1: the handler in
//! `crate::api::consumer` selects 1.1 objects as always and [`Version::shape`] rewrites each
//! into its 1.2 shape before the query (filter, sort, fields) sees it, so a 1.2 request
//! names 1.2 fields ([`Version::fields`]) and matches 1.2 values. Pure: no I/O.
//!
//! What differs from 1.1 in what central serves, as the OneRoster 1.2 Rostering Service
//! REST/JSON binding's OpenAPI schemas (`UserDType`, `RoleDType`, `EnrollmentDType`,
//! `AcademicSessionDType`; docs/API.md cites them) write it: a user has `roles` (one per
//! scoped school its enrollments place it at, each `roleType: primary`, since the binding
//! asks for exactly one primary role per org, and `role: student`), `primaryOrg` (the first
//! of those schools) and `userProfiles` instead of `role` and `orgs`; every `href` names the
//! 1.2 base; and a field without a value is left out rather than written `null`, since no
//! 1.2 property admits `null` (a user's `middleName`, an academic session's `parent`).
//! `enabledUser` and an enrollment's `primary` stay the strings `"true"` and `"false"`, as
//! in 1.1. Dates (`YYYY-MM-DD`), `dateLastModified` (RFC 3339 in UTC with milliseconds),
//! `status` (`active`, `tobedeleted`), an academic session's `schoolYear` (the ending year
//! as a four-digit string) and orgs, classes, courses and demographics read the same in
//! both versions.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::{Kind, BASE};

/// Where the OneRoster 1.2 rostering REST endpoints live.
pub(crate) const BASE_V1P2: &str = "/ims/oneroster/rostering/v1p2";

/// The OneRoster version a request's base names: what its objects look like and which
/// fields its query may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// `/ims/oneroster/v1p1`.
    V1p1,
    /// `/ims/oneroster/rostering/v1p2`.
    V1p2,
}

/// The fields 1.2 adds to a user.
const NEW_USER_FIELDS: [&str; 9] = [
    "userMasterIdentifier",
    "preferredFirstName",
    "preferredMiddleName",
    "preferredLastName",
    "pronouns",
    "roles",
    "userProfiles",
    "primaryOrg",
    "resources",
];

/// The fields of a 1.2 user: 1.1's, less `role` and `orgs`, which gave way to `roles`,
/// `primaryOrg` and `userProfiles`, with the new ones.
static USER_FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    Kind::User
        .fields()
        .iter()
        .copied()
        .filter(|field| !matches!(*field, "role" | "orgs"))
        .chain(NEW_USER_FIELDS)
        .collect()
});

impl Version {
    /// The version whose base `path` (a request's path, as routed) is under.
    pub(crate) fn of_path(path: &str) -> Version {
        if path.starts_with(BASE_V1P2) {
            Version::V1p2
        } else {
            Version::V1p1
        }
    }

    /// The path every endpoint of the version lives under.
    pub(crate) fn base(self) -> &'static str {
        match self {
            Version::V1p1 => BASE,
            Version::V1p2 => BASE_V1P2,
        }
    }

    /// The version as the specification names it, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Version::V1p1 => "1.1",
            Version::V1p2 => "1.2",
        }
    }

    /// The fields of `kind` in this version: what `filter`, `sort` and `fields` may name.
    pub(crate) fn fields(self, kind: Kind) -> &'static [&'static str] {
        match (self, kind) {
            (Version::V1p2, Kind::User) => USER_FIELDS.as_slice(),
            _ => kind.fields(),
        }
    }

    /// A mapped (1.1) object of `kind` in this version's shape.
    pub(crate) fn shape(self, kind: Kind, object: Value) -> Value {
        match self {
            Version::V1p1 => object,
            Version::V1p2 => to_v1p2(kind, object),
        }
    }
}

/// A 1.1 object of `kind` as 1.2 writes it: see the module documentation.
fn to_v1p2(kind: Kind, mut object: Value) -> Value {
    rebase_hrefs(&mut object);
    let Value::Object(fields) = &mut object else {
        return object;
    };
    fields.retain(|_, value| !value.is_null());
    if kind == Kind::User {
        user(fields);
    }
    object
}

/// A 1.1 user's `role` and `orgs` as 1.2's `roles` and `primaryOrg`. Each org gets one
/// role, so each role is that org's primary one; which org is the user's own is
/// `primaryOrg`'s to say.
fn user(fields: &mut Map<String, Value>) {
    let role = fields.remove("role").unwrap_or(Value::Null);
    let orgs = match fields.remove("orgs") {
        Some(Value::Array(orgs)) => orgs,
        _ => Vec::new(),
    };
    if let Some(primary) = orgs.first() {
        fields.insert("primaryOrg".to_owned(), primary.clone());
    }
    let roles: Vec<Value> = orgs
        .into_iter()
        .map(|org| json!({"roleType": "primary", "role": role, "org": org}))
        .collect();
    fields.insert("roles".to_owned(), Value::Array(roles));
    fields.insert("userProfiles".to_owned(), json!([]));
}

/// Points every reference's `href` (a path under the 1.1 base, as the mapping writes it) at
/// the same object under the 1.2 base.
fn rebase_hrefs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (name, field) in object.iter_mut() {
                match field {
                    Value::String(href) if name == "href" => {
                        if let Some(rest) = href.strip_prefix(BASE) {
                            *href = format!("{BASE_V1P2}{rest}");
                        }
                    }
                    field => rebase_hrefs(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rebase_hrefs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(id: &str) -> Value {
        json!({"href": format!("{BASE}/orgs/{id}"), "sourcedId": id, "type": "org"})
    }

    #[test]
    fn a_user_gets_the_primary_role_at_each_of_its_schools_and_its_first_as_primary_org() {
        let user = json!({
            "sourcedId": "u1",
            "status": "active",
            "enabledUser": "true",
            "middleName": null,
            "role": "student",
            "orgs": [school("s1"), school("s2")],
        });
        let shaped = Version::V1p2.shape(Kind::User, user);
        let org = |id: &str| json!({"href": format!("{BASE_V1P2}/orgs/{id}"), "sourcedId": id, "type": "org"});
        assert_eq!(
            shaped,
            json!({
                "sourcedId": "u1",
                "status": "active",
                "enabledUser": "true",
                "primaryOrg": org("s1"),
                "roles": [
                    {"roleType": "primary", "role": "student", "org": org("s1")},
                    {"roleType": "primary", "role": "student", "org": org("s2")},
                ],
                "userProfiles": [],
            })
        );
    }

    #[test]
    fn an_enrollments_primary_stays_a_string_and_its_references_take_the_new_base() {
        let enrollment = json!({"primary": "true", "school": school("s1"), "role": "student"});
        let shaped = Version::V1p2.shape(Kind::Enrollment, enrollment);
        assert_eq!(shaped["primary"], "true");
        assert_eq!(shaped["school"]["href"], format!("{BASE_V1P2}/orgs/s1"));
        assert_eq!(shaped["role"], "student");
    }

    #[test]
    fn a_field_without_a_value_is_left_out_but_metadata_keeps_its_own() {
        let session = json!({"parent": null, "children": [], "metadata": {"note": null}});
        let shaped = Version::V1p2.shape(Kind::AcademicSession, session.clone());
        assert_eq!(shaped, json!({"children": [], "metadata": {"note": null}}));
        assert_eq!(
            Version::V1p1.shape(Kind::AcademicSession, session.clone()),
            session
        );
    }

    #[test]
    fn a_path_under_the_v1p2_base_is_served_as_1_2_and_any_other_as_1_1() {
        assert_eq!(
            Version::of_path("/ims/oneroster/rostering/v1p2/users"),
            Version::V1p2
        );
        assert_eq!(Version::of_path("/ims/oneroster/v1p1/users"), Version::V1p1);
    }

    #[test]
    fn version_one_one_objects_and_fields_stay_as_they_are() {
        let user = json!({"role": "student", "orgs": [school("s1")], "enabledUser": "true"});
        assert_eq!(Version::V1p1.shape(Kind::User, user.clone()), user);
        assert!(Version::V1p1.fields(Kind::User).contains(&"role"));
        assert!(!Version::V1p2.fields(Kind::User).contains(&"role"));
        assert!(Version::V1p2.fields(Kind::User).contains(&"roles"));
        assert_eq!(
            Version::V1p2.fields(Kind::Class),
            Version::V1p1.fields(Kind::Class)
        );
    }

    #[test]
    fn a_user_without_a_school_has_no_roles_and_no_primary_org() {
        let shaped = Version::V1p2.shape(Kind::User, json!({"role": "student", "orgs": []}));
        assert_eq!(shaped["roles"], json!([]));
        assert!(shaped.get("primaryOrg").is_none());
    }
}
