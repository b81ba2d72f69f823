//! The SQL of consumer paging, written once for both databases: the page and count of
//! [`crate::store::RecordStore::consumer_page`], the enrollments that place a page of
//! students, and the upkeep of `records.enrolled` and `records.grouped` that lets a page of
//! students or enrollments be counted and skipped on one index. The backends bind the
//! parameters and run the statements; the consumer API (`crate::oneroster::paged`) decides
//! what a page asks for.
//!
//! Scope is checked on columns, not JSON: `school` (the skolenummer of a school, basisgruppe
//! or enrollment), `student` (an enrollment's student, as the handle the site secret makes of
//! its key), `enrolled` (a current student named by a current enrollment at one of its
//! site's schools) and `grouped` (a current enrollment with a basisgruppe at one of its
//! site's schools: exactly what OneRoster's `enrollments` lists of a site; migrations 0021
//! and 0022). A site whose every school is in the scope ("whole") has exactly its enrolled
//! students and grouped enrollments listed, so their count and offset check the site alone
//! on the partial indexes `records_consumer_students` and `records_consumer_enrollments`; a
//! site only partly in the scope checks each of its enrolled students with one probe of
//! `records_enrollment_student`, and each grouped enrollment's school on
//! `records_consumer_enrollments`, which holds it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use skolebro_protocol::{Entity, RecordHandle, SiteId};

use super::columns::entity_name;
use super::planning::Insert;
use super::records::ConsumerPage;

/// The SQL spelling of the two databases, for the statements both run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// A row's record JSON as text.
    fn record(self, row: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{row}.record"),
            Dialect::Postgres => format!("{row}.record::text"),
        }
    }

    /// `site`, a unit separator and the `school` column: how a school of the scope is named
    /// in a list parameter ([`scope_keys`]).
    fn site_and_school(self, row: &str) -> String {
        match self {
            Dialect::Sqlite => format!("({row}.site || char(31) || {row}.school)"),
            Dialect::Postgres => format!("(({row}.site || chr(31) || {row}.school) COLLATE \"C\")"),
        }
    }

    /// Whether the enrollment's record names a basisgruppe (`group`, never sealed).
    fn has_group(self, row: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({row}.record, '$.group') IS NOT NULL"),
            Dialect::Postgres => format!("({row}.record->>'group') IS NOT NULL"),
        }
    }

    /// `INDEXED BY index` on SQLite, nothing on PostgreSQL: where SQLite, planning without
    /// statistics, would walk a site's every record of a kind on `records_current` for each
    /// row of an outer query rather than probe the index meant. Its choice between two
    /// indexes of two equal columns is a tie, broken by the schema's order, so a new index
    /// elsewhere could turn a refresh of 100,000 students quadratic.
    fn hint(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!(" INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }

    /// Membership in the text list parameter `n` (a JSON array in SQLite, an array in
    /// PostgreSQL).
    fn among(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("IN (SELECT value FROM json_each(?{n}))"),
            Dialect::Postgres => format!("= ANY(${n})"),
        }
    }

    /// Membership in the text list parameter `n` of hex, decoded to bytes.
    fn among_hex(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("IN (SELECT unhex(value) FROM json_each(?{n}))"),
            Dialect::Postgres => {
                format!("= ANY(ARRAY(SELECT decode(h, 'hex') FROM unnest(${n}::text[]) AS h))")
            }
        }
    }

    /// Membership in the handle list parameter `n` (hex in a JSON array in SQLite, a
    /// `bytea[]` in PostgreSQL).
    fn among_handles(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("IN (SELECT unhex(value) FROM json_each(?{n}))"),
            Dialect::Postgres => format!("= ANY(${n})"),
        }
    }
}

/// The scope's schools as `site`, unit separator, skolenummer.
fn scope_keys<'a>(page: &'a ConsumerPage, sites: &'a BTreeSet<String>) -> Vec<String> {
    page.schools
        .iter()
        .filter(|(site, _)| sites.contains(site.as_str()))
        .map(|(site, school)| format!("{}\u{1f}{school}", site.as_str()))
        .collect()
}

/// The statement reading the current schools (`site`, `school`) of the sites in text list
/// parameter 1: what tells a whole site from a partly covered one ([`page_sql`]).
pub(crate) fn site_schools_sql(dialect: Dialect) -> String {
    format!(
        "SELECT site, school FROM records \
         WHERE entity = 'schools' AND is_current AND site {}",
        dialect.among(1)
    )
}

/// The scope's sites: the first list parameter of [`site_schools_sql`].
pub(crate) fn scope_sites(page: &ConsumerPage) -> Vec<String> {
    let sites: BTreeSet<String> = page
        .schools
        .iter()
        .map(|(site, _)| site.as_str().to_owned())
        .collect();
    sites.into_iter().collect()
}

/// The statements of a consumer page and their list parameters: the page selects site,
/// handle, record, `valid_from` and identity; the count counts the same rows; `ids` selects
/// their consumer ids in order. Parameters: `lists` (text lists) first, then each
/// `modified` bound, each `ids` bound, and (the page only) limit and offset.
#[derive(Debug)]
pub(crate) struct PageSql {
    pub select: String,
    pub count: String,
    pub ids: String,
    pub lists: Vec<Vec<String>>,
}

/// The page and count for `page`, given the current schools of its sites as
/// [`site_schools_sql`] read them.
pub(crate) fn page_sql(
    page: &ConsumerPage,
    site_schools: &[(String, Option<String>)],
    dialect: Dialect,
) -> PageSql {
    let sites: BTreeSet<String> = scope_sites(page).into_iter().collect();
    let mut lists: Vec<Vec<String>> = Vec::new();
    let mut list = |items: Vec<String>| {
        lists.push(items);
        lists.len()
    };
    let entity = entity_name(page.entity);
    let mut from = "records r".to_owned();
    let scope = match page.entity {
        Entity::School | Entity::Group => {
            let sites_n = list(sites.iter().cloned().collect());
            let keys_n = list(scope_keys(page, &sites));
            format!(
                "r.site {} AND {} {}",
                dialect.among(sites_n),
                dialect.site_and_school("r"),
                dialect.among(keys_n)
            )
        }
        Entity::Enrollment => {
            // OneRoster lists only enrollments with a basisgruppe at a school of their site:
            // the column, not the JSON, so the count and the offset read
            // `records_consumer_enrollments` alone, which holds the partial sites' check too.
            from.push_str(&dialect.hint("records_consumer_enrollments"));
            let at_school = |keys_n: usize| {
                format!("{} {}", dialect.site_and_school("r"), dialect.among(keys_n))
            };
            let (scope, _) = by_site(page, &sites, site_schools, dialect, &mut list, at_school);
            format!("r.grouped AND {scope}")
        }
        Entity::Student => {
            let probe = |keys_n: usize| {
                format!(
                    "EXISTS (SELECT 1 FROM records e WHERE e.site = r.site \
                     AND e.entity = 'enrollments' AND e.is_current AND e.student = r.handle \
                     AND {} {})",
                    dialect.site_and_school("e"),
                    dialect.among(keys_n)
                )
            };
            let (scope, all_whole) = by_site(page, &sites, site_schools, dialect, &mut list, probe);
            if all_whole {
                // The count and the offset then read this index alone.
                from.push_str(&dialect.hint("records_consumer_students"));
            }
            format!("r.enrolled AND {scope}")
        }
    };
    let mut condition = format!("r.entity = '{entity}' AND r.is_current AND {scope}");
    if let Some(within) = &page.within {
        let within_n = list(within.iter().map(hex::encode).collect());
        condition.push_str(&format!(
            " AND r.consumer_id {}",
            dialect.among_hex(within_n)
        ));
    } else if page
        .modified
        .iter()
        .any(|(compare, _)| compare.is_lower_bound())
    {
        // A change feed: the records changed since are few beside the scope, so they are
        // found by time and sorted, rather than every record of the scope read in order.
        from = format!("records r{}", dialect.hint("records_current_since"));
    }
    let mut next = lists.len() + 1;
    for (compare, _) in &page.modified {
        condition.push_str(&format!(
            " AND r.valid_from {} {}",
            compare.sql(),
            dialect.param(next)
        ));
        next += 1;
    }
    for (compare, _) in &page.ids {
        condition.push_str(&format!(
            " AND r.consumer_id {} {}",
            compare.sql(),
            dialect.param(next)
        ));
        next += 1;
    }
    let order = if page.descending { "DESC" } else { "ASC" };
    // The offset skips index entries only; the page's rows are read by id afterwards.
    let select = format!(
        "SELECT r.site, r.handle, {}, r.valid_from, COALESCE(r.identity, r.handle) \
         FROM records r WHERE r.id IN (SELECT r.id FROM {from} WHERE {condition} \
         ORDER BY r.consumer_id {order} LIMIT {} OFFSET {}) ORDER BY r.consumer_id {order}",
        dialect.record("r"),
        dialect.param(next),
        dialect.param(next + 1)
    );
    let count = format!("SELECT COUNT(*) FROM {from} WHERE {condition}");
    let ids = format!(
        "SELECT r.consumer_id FROM {from} WHERE {condition} ORDER BY r.consumer_id {order}"
    );
    PageSql {
        select,
        count,
        ids,
        lists,
    }
}

/// The scope of a page of students or enrollments, whose flag (`enrolled`, `grouped`) holds
/// only at the schools of their site: a whole site ([`split_sites`]) is checked by `r.site`
/// alone, a partly covered one by `r.site` and `partly`, given the list parameter of its
/// schools in the scope ([`scope_keys`]). With it, whether every site is whole.
fn by_site(
    page: &ConsumerPage,
    sites: &BTreeSet<String>,
    site_schools: &[(String, Option<String>)],
    dialect: Dialect,
    list: &mut impl FnMut(Vec<String>) -> usize,
    partly: impl Fn(usize) -> String,
) -> (String, bool) {
    let (whole, partial) = split_sites(page, sites, site_schools);
    if partial.is_empty() {
        return (format!("r.site {}", dialect.among(list(whole))), true);
    }
    let keys = scope_keys(page, &partial);
    let partial_n = list(partial.into_iter().collect());
    let partly = format!(
        "r.site {} AND {}",
        dialect.among(partial_n),
        partly(list(keys))
    );
    let scope = if whole.is_empty() {
        partly
    } else {
        format!("(r.site {} OR ({partly}))", dialect.among(list(whole)))
    };
    (scope, false)
}

/// The scope's sites split into those whose every current school is in the scope (whole)
/// and the others (partly covered).
fn split_sites(
    page: &ConsumerPage,
    sites: &BTreeSet<String>,
    site_schools: &[(String, Option<String>)],
) -> (Vec<String>, BTreeSet<String>) {
    let covered: HashSet<(&str, &str)> = page
        .schools
        .iter()
        .map(|(site, school)| (site.as_str(), school.as_str()))
        .collect();
    let mut whole: BTreeMap<&str, bool> = sites.iter().map(|site| (site.as_str(), true)).collect();
    for (site, school) in site_schools {
        let inside = school
            .as_deref()
            .is_some_and(|school| covered.contains(&(site.as_str(), school)));
        if let Some(all) = whole.get_mut(site.as_str()) {
            *all &= inside;
        }
    }
    let (all, part): (Vec<_>, Vec<_>) = whole.into_iter().partition(|(_, all)| *all);
    (
        all.into_iter().map(|(site, _)| site.to_owned()).collect(),
        part.into_iter().map(|(site, _)| site.to_owned()).collect(),
    )
}

/// The statement reading the current enrollments of some students of one site, sorted by
/// handle: parameters 1 the site, 2 the students' handles as a list.
pub(crate) fn enrollments_of_sql(dialect: Dialect) -> String {
    // Unanalysed, SQLite would rather walk the site's every enrollment by `records_current`.
    let index = dialect.hint("records_enrollment_student");
    format!(
        "SELECT e.handle, {}, e.valid_from, COALESCE(e.identity, e.handle) FROM records e{index} \
         WHERE e.site = {} AND e.entity = 'enrollments' AND e.is_current AND e.student {} \
         ORDER BY e.handle",
        dialect.record("e"),
        dialect.param(1),
        dialect.among_handles(2)
    )
}

/// The statement reading the versions of site parameter 1 that stood at time parameter 2
/// and were closed since: entity and record, on `records_closed_until`.
pub(crate) fn closed_since_sql(dialect: Dialect) -> String {
    format!(
        "SELECT entity, {} FROM records r WHERE r.site = {} AND NOT r.is_current \
         AND r.valid_to > {} AND r.valid_from <= {}",
        dialect.record("r"),
        dialect.param(1),
        dialect.param(2),
        dialect.param(2)
    )
}

/// The statement reading the current students of site parameter 1 whose handles are list
/// parameter 2, sorted by handle, as [`enrollments_of_sql`] reads enrollments.
pub(crate) fn students_of_sql(dialect: Dialect) -> String {
    format!(
        "SELECT s.handle, {}, s.valid_from, COALESCE(s.identity, s.handle) FROM records s \
         WHERE s.site = {} AND s.entity = 'students' AND s.is_current AND s.handle {} \
         ORDER BY s.handle",
        dialect.record("s"),
        dialect.param(1),
        dialect.among_handles(2)
    )
}

/// Sets `enrolled` anew on the current students of site parameter 1 where it changed, and
/// only there (a snapshot rewrites no row whose flag stands). With `students`, only the
/// students whose handles are list parameter 2.
pub(crate) fn refresh_enrolled_sql(dialect: Dialect, students: bool) -> String {
    let which = if students {
        format!(" AND r.handle {}", dialect.among_handles(2))
    } else {
        String::new()
    };
    format!(
        "UPDATE records AS r SET enrolled = NOT r.enrolled \
         WHERE r.site = {} AND r.entity = 'students' AND r.is_current{which} \
         AND r.enrolled <> EXISTS (SELECT 1 FROM records e{} \
             WHERE e.site = r.site AND e.entity = 'enrollments' AND e.is_current \
             AND e.student = r.handle \
             AND EXISTS (SELECT 1 FROM records c{} WHERE c.site = e.site \
                         AND c.entity = 'schools' AND c.is_current AND c.school = e.school))",
        dialect.param(1),
        dialect.hint("records_enrollment_student"),
        dialect.hint("records_site_schools"),
    )
}

/// Sets `grouped` anew on the current enrollments of site parameter 1 where it changed, and
/// only there. With `enrollments`, only the enrollments whose handles are list parameter 2.
///
/// Whether an enrollment names a basisgruppe is written at insert and never changes while
/// it is current, so a flag that stands for it is switched off when its school is gone with
/// no look at the record; the JSON (whose `group` is never sealed) is read only for an
/// enrollment not flagged whose school is there, to tell one without a basisgruppe from one
/// whose school came back.
pub(crate) fn refresh_grouped_sql(dialect: Dialect, enrollments: bool) -> String {
    let which = if enrollments {
        format!(" AND r.handle {}", dialect.among_handles(2))
    } else {
        String::new()
    };
    let school = format!(
        "EXISTS (SELECT 1 FROM records c{} WHERE c.site = r.site \
         AND c.entity = 'schools' AND c.is_current AND c.school = r.school)",
        dialect.hint("records_site_schools")
    );
    format!(
        "UPDATE records AS r SET grouped = NOT r.grouped \
         WHERE r.site = {} AND r.entity = 'enrollments' AND r.is_current{which} \
         AND CASE WHEN r.grouped THEN NOT {school} ELSE {school} AND {} END",
        dialect.param(1),
        dialect.has_group("r")
    )
}

/// Which flags a write may have changed: the students' `enrolled` and the enrollments'
/// `grouped`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Every student and enrollment of the site: a snapshot, or a school came or went.
    Site,
    /// Only these (each sorted, without repeats; empty: none).
    Records {
        students: Vec<RecordHandle>,
        enrollments: Vec<RecordHandle>,
    },
}

/// What to refresh after a write that inserted `inserted` and closed the versions `closed`
/// (each with its kind and, for an enrollment, its student).
pub(crate) fn refresh_after(
    snapshot: bool,
    inserted: &[Insert<'_>],
    closed: &[(Entity, Option<RecordHandle>)],
) -> Refresh {
    let school_changed = inserted
        .iter()
        .any(|insert| insert.row.entity == Entity::School)
        || closed.iter().any(|(entity, _)| *entity == Entity::School);
    if snapshot || school_changed {
        return Refresh::Site;
    }
    let mut students: BTreeSet<RecordHandle> = closed
        .iter()
        .filter_map(|(entity, student)| (*entity == Entity::Enrollment).then_some(*student))
        .flatten()
        .collect();
    let mut enrollments = BTreeSet::new();
    for Insert { row, .. } in inserted {
        match row.entity {
            Entity::Student => {
                students.insert(row.handle);
            }
            Entity::Enrollment => {
                students.extend(row.student);
                enrollments.insert(row.handle);
            }
            Entity::School | Entity::Group => {}
        }
    }
    Refresh::Records {
        students: students.into_iter().collect(),
        enrollments: enrollments.into_iter().collect(),
    }
}

/// Hex of each handle, as the SQLite statements' handle lists take them.
pub(crate) fn hex_list(handles: &[RecordHandle]) -> String {
    serde_json::Value::from(
        handles
            .iter()
            .map(|handle| hex::encode(handle.as_bytes()))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// The sites whose `enrolled` or `grouped` flags an erasure of `records` can change: those
/// where it removed an enrollment or a school (a student left without them is no longer
/// listed, nor an enrollment without its school). Each site once.
pub(crate) fn sites_to_refresh_after_erasure(
    records: &[(SiteId, Entity, RecordHandle)],
) -> Vec<&str> {
    let mut sites: Vec<&str> = records
        .iter()
        .filter(|(_, entity, _)| matches!(entity, Entity::Enrollment | Entity::School))
        .map(|(site, _, _)| site.as_str())
        .collect();
    sites.sort_unstable();
    sites.dedup();
    sites
}

#[cfg(test)]
mod tests {
    use compact_str::CompactString;
    use skolebro_protocol::{Digest, SiteId};

    use super::*;
    use crate::store::planning::Row;
    use crate::store::Compare;

    fn page(schools: &[(&str, &str)]) -> ConsumerPage {
        ConsumerPage {
            entity: Entity::Student,
            schools: schools
                .iter()
                .map(|(site, school)| {
                    (
                        SiteId::new(*site).expect("a site id"),
                        CompactString::from(*school),
                    )
                })
                .collect(),
            modified: Vec::new(),
            ids: Vec::new(),
            within: None,
            descending: false,
            offset: 0,
            limit: 100,
        }
    }

    fn stored(schools: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        schools
            .iter()
            .map(|(site, school)| ((*site).to_owned(), Some((*school).to_owned())))
            .collect()
    }

    #[test]
    fn a_scope_of_whole_sites_pages_students_on_the_enrolled_index_alone() {
        let page = page(&[("skole-a", "1"), ("skole-a", "2")]);
        let sql = page_sql(
            &page,
            &stored(&[("skole-a", "1"), ("skole-a", "2")]),
            Dialect::Sqlite,
        );
        assert_eq!(sql.lists, vec![vec!["skole-a".to_owned()]]);
        assert!(sql.count.contains("INDEXED BY records_consumer_students"));
        assert!(!sql.count.contains("EXISTS"));
    }

    #[test]
    fn a_site_with_a_school_outside_the_scope_checks_each_student_for_an_enrollment_inside() {
        let page = page(&[("skole-a", "1"), ("skole-b", "3")]);
        let sql = page_sql(
            &page,
            &stored(&[("skole-a", "1"), ("skole-a", "2"), ("skole-b", "3")]),
            Dialect::Postgres,
        );
        assert_eq!(
            sql.lists,
            vec![
                vec!["skole-a".to_owned()],
                vec!["skole-a\u{1f}1".to_owned()],
                vec!["skole-b".to_owned()],
            ]
        );
        assert!(sql
            .count
            .contains("r.site = ANY($3) OR (r.site = ANY($1) AND EXISTS"));
        assert!(sql.select.contains("LIMIT $4 OFFSET $5"));
    }

    #[test]
    fn a_change_feed_finds_the_records_changed_since_by_time_not_by_reading_the_scope() {
        let page = ConsumerPage {
            modified: vec![(Compare::GreaterOrEqual, crate::store::Timestamp(5))],
            ..page(&[("skole-a", "1")])
        };
        let sql = page_sql(&page, &stored(&[("skole-a", "1")]), Dialect::Sqlite);
        for statement in [&sql.count, &sql.select, &sql.ids] {
            assert!(
                statement.contains("INDEXED BY records_current_since"),
                "{statement}"
            );
        }
        let before = ConsumerPage {
            modified: vec![(Compare::Less, crate::store::Timestamp(5))],
            ..page.clone()
        };
        let sql = page_sql(&before, &stored(&[("skole-a", "1")]), Dialect::Sqlite);
        assert!(sql.count.contains("INDEXED BY records_consumer_students"));
    }

    #[test]
    fn the_ids_a_feed_asks_about_are_one_list_parameter_of_hex() {
        let page = ConsumerPage {
            within: Some(vec![[0xab; 16], [0x01; 16]]),
            modified: vec![(Compare::GreaterOrEqual, crate::store::Timestamp(5))],
            ..page(&[("skole-a", "1")])
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = page_sql(&page, &stored(&[("skole-a", "1")]), dialect);
            assert_eq!(
                sql.lists.last(),
                Some(&vec!["ab".repeat(16), "01".repeat(16)])
            );
            assert!(
                sql.ids.contains("r.consumer_id IN") || sql.ids.contains("r.consumer_id = ANY")
            );
            // Asked by id, the page keeps the index in id order rather than the one by time.
            assert!(!sql.ids.contains("records_current_since"), "{}", sql.ids);
        }
    }

    #[test]
    fn a_page_of_enrollments_keeps_those_with_a_basisgruppe_by_column_not_by_json() {
        let page = ConsumerPage {
            entity: Entity::Enrollment,
            ..page(&[("skole-a", "1")])
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = page_sql(&page, &stored(&[("skole-a", "1")]), dialect);
            for statement in [&sql.count, &sql.select] {
                assert!(statement.contains("AND r.grouped"), "{statement}");
                assert!(!statement.contains("group'"), "{statement}");
            }
            assert_eq!(
                sql.count
                    .contains("INDEXED BY records_consumer_enrollments"),
                dialect == Dialect::Sqlite
            );
        }
    }

    fn enrollments(schools: &[(&str, &str)]) -> ConsumerPage {
        ConsumerPage {
            entity: Entity::Enrollment,
            ..page(schools)
        }
    }

    #[test]
    fn a_scope_of_whole_sites_pages_enrollments_by_their_site_alone() {
        let page = enrollments(&[("skole-a", "1"), ("skole-a", "2")]);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = page_sql(
                &page,
                &stored(&[("skole-a", "1"), ("skole-a", "2")]),
                dialect,
            );
            assert_eq!(sql.lists, vec![vec!["skole-a".to_owned()]]);
            for statement in [&sql.count, &sql.select] {
                assert!(statement.contains("r.grouped AND r.site "), "{statement}");
                assert!(!statement.contains("(31)"), "{statement}");
            }
        }
    }

    #[test]
    fn a_site_with_a_school_outside_the_scope_checks_each_enrollments_school_on_the_index() {
        let page = enrollments(&[("skole-a", "1"), ("skole-b", "3")]);
        let site_schools = stored(&[("skole-a", "1"), ("skole-a", "2"), ("skole-b", "3")]);
        let sql = page_sql(&page, &site_schools, Dialect::Postgres);
        assert_eq!(
            sql.lists,
            vec![
                vec!["skole-a".to_owned()],
                vec!["skole-a\u{1f}1".to_owned()],
                vec!["skole-b".to_owned()],
            ]
        );
        assert!(sql.count.contains(
            "r.grouped AND (r.site = ANY($3) OR (r.site = ANY($1) \
             AND ((r.site || chr(31) || r.school) COLLATE \"C\") = ANY($2)))"
        ));
        assert!(!sql.count.contains("EXISTS"));
        let sql = page_sql(&page, &site_schools, Dialect::Sqlite);
        assert!(sql
            .count
            .contains("INDEXED BY records_consumer_enrollments"));
    }

    fn inserted(entity: Entity, handle: u8, student: Option<u8>) -> Row {
        Row {
            entity,
            handle: RecordHandle::from_bytes([handle; 32]),
            digest: Digest::from_bytes([0; 32]),
            json: String::new(),
            key_id: None,
            school: None,
            student: student.map(|student| RecordHandle::from_bytes([student; 32])),
            grouped: true,
            school_handle: None,
            group: None,
        }
    }

    #[test]
    fn an_inserted_enrollment_refreshes_its_own_flag_and_its_students() {
        let rows = [
            inserted(Entity::Enrollment, 2, Some(1)),
            inserted(Entity::Group, 3, None),
        ];
        let inserts: Vec<Insert<'_>> = rows
            .iter()
            .map(|row| Insert {
                row,
                identity: None,
            })
            .collect();
        let closed = [(Entity::Enrollment, Some(RecordHandle::from_bytes([4; 32])))];
        assert_eq!(
            refresh_after(false, &inserts, &closed),
            Refresh::Records {
                students: vec![
                    RecordHandle::from_bytes([1; 32]),
                    RecordHandle::from_bytes([4; 32])
                ],
                enrollments: vec![RecordHandle::from_bytes([2; 32])],
            }
        );
        assert_eq!(
            refresh_after(false, &inserts, &[(Entity::School, None)]),
            Refresh::Site,
            "a school that went refreshes every enrollment of its site"
        );
    }

    #[test]
    fn the_grouped_refresh_reads_the_record_only_to_switch_a_flag_on() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = refresh_grouped_sql(dialect, true);
            let on = sql
                .find("ELSE")
                .expect("a branch for unflagged enrollments");
            assert!(sql.find("group'").is_some_and(|at| at > on), "{sql}");
            assert!(sql.contains(&format!("r.handle {}", dialect.among_handles(2))));
            assert!(!refresh_grouped_sql(dialect, false).contains("r.handle"));
        }
    }
}
