//! Records as the file states them, before validation. The parser fills them while it walks
//! the document; once it has ended, they are emitted to the builder as roster records.

#[derive(Debug, Default)]
pub(super) struct PersonRec {
    pub(super) line: u64,
    /// `(sourcedidtype, id)` per `sourcedid`, in file order.
    pub(super) ids: Vec<(Option<String>, Option<String>)>,
    pub(super) pending_id: Option<String>,
    pub(super) deleted: bool,
    pub(super) national_id: Option<String>,
    /// The best username so far and its rank (lower is better).
    pub(super) username: Option<(u8, String)>,
    pub(super) given: Option<String>,
    pub(super) middle: Option<String>,
    pub(super) family: Option<String>,
    pub(super) gender: Option<String>,
    pub(super) bday: Option<String>,
    pub(super) email: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct GroupRec {
    pub(super) line: u64,
    /// `(sourcedidtype, id)` per `sourcedid`, in file order.
    pub(super) ids: Vec<(Option<String>, Option<String>)>,
    pub(super) pending_id: Option<String>,
    /// `(type, pifu_value)` per `extension/pifu_id`: PIFU's organisation ids.
    pub(super) pifu_ids: Vec<(String, String)>,
    pub(super) pending_pifu_value: Option<String>,
    pub(super) deleted: bool,
    /// `(scheme, typevalues)` per `grouptype`.
    pub(super) types: Vec<(Option<String>, Vec<String>)>,
    pub(super) scheme: Option<String>,
    pub(super) typevalues: Vec<String>,
    pub(super) short: Option<String>,
    pub(super) long: Option<String>,
    pub(super) full: Option<String>,
    pub(super) org_id: Option<String>,
    pub(super) school_number: Option<String>,
    pub(super) grade: Option<String>,
    pub(super) begin: Option<String>,
    pub(super) end: Option<String>,
    /// `(relation, id)` per `relationship`.
    pub(super) relationships: Vec<(Option<String>, Option<String>)>,
    pub(super) relationship_id: Option<String>,
}

/// The key among a record's `sourcedid`s: PIFU-IMS marks a changed id with
/// `sourcedidtype` `New` (the key memberships use) and `Old` (the one it replaces), and a
/// `Duplicate` for a record merged into another. `New` wins, then an untyped id, then the
/// first that is not `Old` or `Duplicate`, then the first.
pub(super) fn key_of(ids: &[(Option<String>, Option<String>)]) -> Option<&str> {
    let typed = |t: &str| {
        ids.iter().find(|(kind, id)| {
            id.is_some() && kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(t))
        })
    };
    typed("New")
        .or_else(|| ids.iter().find(|(kind, id)| kind.is_none() && id.is_some()))
        .or_else(|| {
            ids.iter().find(|(kind, id)| {
                id.is_some()
                    && !kind.as_deref().is_some_and(|k| {
                        k.eq_ignore_ascii_case("Old") || k.eq_ignore_ascii_case("Duplicate")
                    })
            })
        })
        .or_else(|| ids.iter().find(|(_, id)| id.is_some()))
        .and_then(|(_, id)| id.as_deref())
}

/// The `Old` ids a record says it replaces.
pub(super) fn old_ids(ids: &[(Option<String>, Option<String>)]) -> impl Iterator<Item = &str> {
    ids.iter()
        .filter(|(kind, _)| {
            kind.as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("Old"))
        })
        .filter_map(|(_, id)| id.as_deref())
}

impl PersonRec {
    pub(super) fn key(&self) -> Option<&str> {
        key_of(&self.ids)
    }
}

impl GroupRec {
    pub(super) fn key(&self) -> Option<&str> {
        key_of(&self.ids)
    }

    /// The value of the first `pifu_id` of `kind` (compared without case).
    pub(super) fn pifu_id(&self, kind: &str) -> Option<&str> {
        self.pifu_ids
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(kind))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
pub(super) struct MembershipRec {
    pub(super) line: u64,
    pub(super) group: Option<String>,
    pub(super) deleted: bool,
    pub(super) members: Vec<MemberRec>,
}

#[derive(Debug, Default)]
pub(super) struct MemberRec {
    pub(super) line: u64,
    pub(super) person: Option<String>,
    pub(super) idtype: Option<String>,
    pub(super) deleted: bool,
    /// Learner roles: whether each is deleted or inactive.
    pub(super) learner_roles: Vec<bool>,
    pub(super) role_status: Option<String>,
    pub(super) role_deleted: bool,
}

impl MemberRec {
    pub(super) fn is_person(&self) -> bool {
        self.idtype.as_deref().is_none_or(|t| t == "1")
    }

    /// A current learner: some learner role is active and not deleted.
    pub(super) fn is_learner(&self, membership_deleted: bool) -> bool {
        self.is_person()
            && !self.deleted
            && !membership_deleted
            && self.learner_roles.iter().any(|&gone| !gone)
    }

    /// A learner whose membership the export deletes.
    pub(super) fn is_deleted_learner(&self, membership_deleted: bool) -> bool {
        self.is_person() && !self.learner_roles.is_empty() && !self.is_learner(membership_deleted)
    }
}

#[derive(Default)]
pub(super) struct Export {
    pub(super) partial: bool,
    pub(super) persons: Vec<PersonRec>,
    pub(super) groups: Vec<GroupRec>,
    pub(super) memberships: Vec<MembershipRec>,
}
