//! The differ: compares a validated export with the state central is known to have and
//! produces the `Delta` that brings central up to date. A full export implies deletes for
//! everything it no longer holds; a partial export (OneRoster delta mode, IMS delta) deletes
//! only what it names.

use skolebro_protocol::{
    Delta, Digest, Entity, EntityDelta, Record, RecordHandle, Roster, SiteSecret,
};

use crate::state::State;
use crate::validate::Validated;

/// How many records of each kind were added, changed or removed: the safety filter's input
/// and the `diff` report's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffSummary {
    pub added: [usize; 4],
    pub updated: [usize; 4],
    pub deleted: [usize; 4],
    /// Records the export says carry a new key in place of one central has: the new key is
    /// upserted and the old deleted in the same delta, but they count here, not as added
    /// and deleted, so a change of ids is no mass deletion to the safety filter.
    pub renamed: [usize; 4],
}

impl DiffSummary {
    pub fn added(&self, entity: Entity) -> usize {
        self.added[entity as usize]
    }

    pub fn updated(&self, entity: Entity) -> usize {
        self.updated[entity as usize]
    }

    pub fn deleted(&self, entity: Entity) -> usize {
        self.deleted[entity as usize]
    }

    pub fn renamed(&self, entity: Entity) -> usize {
        self.renamed[entity as usize]
    }
}

/// The renames of an export that central can see: `(entity, old handle, new handle)` where
/// the state holds the old key and not the new. A student's rename carries its enrollments
/// keyed `student@skolenummer` along.
fn renamed_handles(
    old: &State,
    new: &Validated,
    secret: &SiteSecret,
) -> Vec<(Entity, RecordHandle, RecordHandle)> {
    let mut pairs = Vec::new();
    let mut push = |entity: Entity, from: &str, to: &str| {
        let (from, to) = (secret.handle(entity, from), secret.handle(entity, to));
        if old.contains(entity, &from) && !old.contains(entity, &to) {
            pairs.push((entity, from, to));
        }
    };
    for rename in &new.renames {
        push(rename.entity, &rename.from, &rename.to);
        if rename.entity != Entity::Student {
            continue;
        }
        for enrollment in new
            .roster
            .enrollments
            .iter()
            .filter(|e| e.student == rename.to)
        {
            let school = &enrollment.school;
            if enrollment.source_key == format!("{}@{school}", rename.to) {
                let from = format!("{}@{school}", rename.from);
                push(Entity::Enrollment, &from, &enrollment.source_key);
            }
        }
    }
    pairs
}

/// The handle and digest of every record of an export, in roster order: the expensive part
/// of a diff (an HMAC and a SHA-256 per record), kept separate so it can run on the thread
/// that read the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints {
    pub schools: Vec<(RecordHandle, Digest)>,
    pub students: Vec<(RecordHandle, Digest)>,
    pub groups: Vec<(RecordHandle, Digest)>,
    pub enrollments: Vec<(RecordHandle, Digest)>,
}

impl Fingerprints {
    /// The prints of one kind, in roster order.
    pub fn of_entity(&self, entity: Entity) -> &[(RecordHandle, Digest)] {
        match entity {
            Entity::School => &self.schools,
            Entity::Student => &self.students,
            Entity::Group => &self.groups,
            Entity::Enrollment => &self.enrollments,
        }
    }

    pub fn of(roster: &Roster, secret: &SiteSecret) -> Fingerprints {
        fn prints<R: Record>(records: &[R], secret: &SiteSecret) -> Vec<(RecordHandle, Digest)> {
            records
                .iter()
                .map(|r| (secret.handle(R::ENTITY, r.key()), Digest::of(r)))
                .collect()
        }
        Fingerprints {
            schools: prints(&roster.schools, secret),
            students: prints(&roster.students, secret),
            groups: prints(&roster.groups, secret),
            enrollments: prints(&roster.enrollments, secret),
        }
    }
}

impl State {
    /// The state central would have after receiving all of `roster`.
    pub fn of(roster: &Roster, secret: &SiteSecret) -> State {
        State::from(&Fingerprints::of(roster, secret))
    }
}

impl From<&Fingerprints> for State {
    fn from(prints: &Fingerprints) -> State {
        State::from_unordered(|entity| prints.of_entity(entity))
    }
}

/// The delta from `old` to the export, in handle order, with the upserted records copied
/// out of the export. `prints` are the export's [`Fingerprints`] under the site's secret.
/// For the `diff` report; the enqueue stage uses [`plan`] so a large delta is never held
/// twice.
pub fn diff(
    old: &State,
    new: &Validated,
    prints: &Fingerprints,
    secret: &SiteSecret,
) -> (Delta, DiffSummary) {
    let (plan, summary) = plan(old, new, prints, secret);
    (plan.to_delta(&new.roster), summary)
}

/// The delta from `old` to the export as a [`DeltaPlan`]: upserts name records of the export
/// by position instead of copying them.
pub fn plan(
    old: &State,
    new: &Validated,
    prints: &Fingerprints,
    secret: &SiteSecret,
) -> (DeltaPlan, DiffSummary) {
    let mut summary = DiffSummary::default();
    let renames = renamed_handles(old, new, secret);
    // A partial export deletes what it names, and the old key of what it renames: otherwise
    // central would keep the pupil twice.
    let deletes = |entity: Entity| -> Option<Vec<RecordHandle>> {
        new.partial.then(|| {
            new.tombstones
                .iter()
                .filter(|t| t.entity == entity)
                .map(|t| secret.handle(entity, &t.key))
                .chain(
                    renames
                        .iter()
                        .filter(|(e, _, _)| *e == entity)
                        .map(|(_, from, _)| *from),
                )
                .filter(|h| old.contains(entity, h))
                .collect()
        })
    };
    let mut plan = DeltaPlan {
        secret: secret.clone(),
        schools: PlannedChanges::default(),
        students: PlannedChanges::default(),
        groups: PlannedChanges::default(),
        enrollments: PlannedChanges::default(),
        renamed: Default::default(),
        renamed_upserts: Default::default(),
    };
    for entity in Entity::ALL {
        *plan.entity_mut(entity) = diff_entity(
            entity,
            old,
            prints.of_entity(entity),
            deletes(entity),
            &mut summary,
        );
    }
    for (entity, from, to) in renames {
        // A rename is one only when the delta both adds the new key and deletes the old: an
        // export that still holds the old key, or lacks the new record, adds or deletes.
        let changes = plan.entity(entity);
        let prints = prints.of_entity(entity);
        let Ok(at) = changes
            .upserts
            .binary_search_by(|&i| prints[i as usize].0.cmp(&to))
        else {
            continue;
        };
        if changes.deletes.binary_search(&from).is_err() {
            continue;
        }
        let e = entity as usize;
        plan.renamed_upserts[e].push(changes.upserts[at]);
        plan.renamed[e].push((from, to));
        summary.renamed[e] += 1;
        summary.added[e] = summary.added[e].saturating_sub(1);
        summary.deleted[e] = summary.deleted[e].saturating_sub(1);
    }
    for renamed in &mut plan.renamed {
        renamed.sort_unstable();
    }
    for positions in &mut plan.renamed_upserts {
        positions.sort_unstable();
    }
    (plan, summary)
}

/// A delta whose upserts are positions in the export's roster. The first export of a large
/// school upserts every record; holding positions instead of copies (and not even the
/// handles, which are recomputed from the site's key), and copying the records out a bounded
/// [`DeltaPlan::chunks`] at a time, keeps the agent's memory to about one roster however
/// large the delta is.
#[derive(Clone)]
pub struct DeltaPlan {
    secret: SiteSecret,
    pub schools: PlannedChanges,
    pub students: PlannedChanges,
    pub groups: PlannedChanges,
    pub enrollments: PlannedChanges,
    /// `(old handle, new handle)` of renamed records, sorted per kind by old handle: deleting
    /// the old handle completes a rename, so a delay-delete window does not postpone it, and
    /// the pair travels in the delta's `renames`.
    renamed: [Vec<(RecordHandle, RecordHandle)>; 4],
    /// Roster positions of the renamed records' new versions, sorted per kind: the pieces
    /// send them with their rename, not in handle order with the other upserts.
    renamed_upserts: [Vec<u32>; 4],
}

/// The planned changes of one kind of record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlannedChanges {
    /// Positions in the roster of the records to upsert, in handle order.
    pub upserts: Vec<u32>,
    /// Handles to delete, in order.
    pub deletes: Vec<RecordHandle>,
}

impl PlannedChanges {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

impl DeltaPlan {
    pub fn is_empty(&self) -> bool {
        Entity::ALL.iter().all(|&e| self.entity(e).is_empty())
    }

    fn entity(&self, entity: Entity) -> &PlannedChanges {
        match entity {
            Entity::School => &self.schools,
            Entity::Student => &self.students,
            Entity::Group => &self.groups,
            Entity::Enrollment => &self.enrollments,
        }
    }

    fn entity_mut(&mut self, entity: Entity) -> &mut PlannedChanges {
        match entity {
            Entity::School => &mut self.schools,
            Entity::Student => &mut self.students,
            Entity::Group => &mut self.groups,
            Entity::Enrollment => &mut self.enrollments,
        }
    }

    /// Whether deleting `handle` completes a rename (see [`DeltaPlan`]'s `renamed`).
    pub fn is_renamed(&self, entity: Entity, handle: &RecordHandle) -> bool {
        self.renamed[entity as usize]
            .binary_search_by(|(from, _)| from.cmp(handle))
            .is_ok()
    }

    /// The renames of one kind, `(old handle, new handle)` sorted by old handle.
    pub fn renamed(&self, entity: Entity) -> &[(RecordHandle, RecordHandle)] {
        &self.renamed[entity as usize]
    }

    /// Deletes of one kind, for the safety filter that postpones them.
    pub fn deletes_mut(&mut self, entity: Entity) -> &mut Vec<RecordHandle> {
        &mut self.entity_mut(entity).deletes
    }

    /// The whole delta with its records copied out of `roster` (the export it was planned on).
    pub fn to_delta(&self, roster: &Roster) -> Delta {
        let mut chunks = self.chunks(roster, usize::MAX);
        chunks.next().unwrap_or_default()
    }

    /// The delta in consecutive pieces of about `max_bytes` encoded each (a piece holds at
    /// least one change, so an oversized record still goes). Each piece is a delta of its own,
    /// still in handle order, and applying them in turn equals applying the whole: the
    /// enqueue stage seals one envelope per piece.
    ///
    /// The pieces go kind by kind (schools, students, groups, enrollments), so a record
    /// never names one that only a later piece carries: central refuses a batch naming a
    /// record it does not hold. Within a kind, renames come first, each whole in one piece:
    /// the new handle's upsert, the old one's delete and the pair. Central links the two only
    /// when it sees both in one batch, and an export retried after a full outbox diffs
    /// against the pieces already sent, which must not hold half a rename.
    pub fn chunks<'a>(&'a self, roster: &'a Roster, max_bytes: usize) -> Chunks<'a> {
        Chunks {
            plan: self,
            roster,
            max_bytes,
            renames: [0; 4],
            upserts: [0; 4],
            deletes: [0; 4],
        }
    }
}

/// Iterator of [`DeltaPlan::chunks`].
pub struct Chunks<'a> {
    plan: &'a DeltaPlan,
    roster: &'a Roster,
    max_bytes: usize,
    /// Per entity, how many renames, upserts and deletes earlier pieces took.
    renames: [usize; 4],
    upserts: [usize; 4],
    deletes: [usize; 4],
}

impl Iterator for Chunks<'_> {
    type Item = Delta;

    fn next(&mut self) -> Option<Delta> {
        let mut piece = Piece {
            secret: &self.plan.secret,
            left: self.max_bytes,
            first: true,
        };
        let mut chunk = Delta::default();
        let (plan, roster) = (self.plan, self.roster);
        let renamed = move |e: usize| Renamed {
            pairs: &plan.renamed[e],
            upserts: &plan.renamed_upserts[e],
        };
        let (renames, ups, dels) = (&mut self.renames, &mut self.upserts, &mut self.deletes);
        // Kind by kind, each kind's renames then its other changes, and nothing more once
        // one does not fit: a piece then never names a record (an enrollment its student or
        // group, a group its school) that only a later piece carries, which central refuses.
        let _all_taken = piece.take_renames(
            renamed(0),
            &roster.schools,
            &mut renames[0],
            &mut chunk.schools,
        ) && piece.take(
            &plan.schools,
            renamed(0),
            &roster.schools,
            &mut ups[0],
            &mut dels[0],
            &mut chunk.schools,
        ) && piece.take_renames(
            renamed(1),
            &roster.students,
            &mut renames[1],
            &mut chunk.students,
        ) && piece.take(
            &plan.students,
            renamed(1),
            &roster.students,
            &mut ups[1],
            &mut dels[1],
            &mut chunk.students,
        ) && piece.take_renames(
            renamed(2),
            &roster.groups,
            &mut renames[2],
            &mut chunk.groups,
        ) && piece.take(
            &plan.groups,
            renamed(2),
            &roster.groups,
            &mut ups[2],
            &mut dels[2],
            &mut chunk.groups,
        ) && piece.take_renames(
            renamed(3),
            &roster.enrollments,
            &mut renames[3],
            &mut chunk.enrollments,
        ) && piece.take(
            &plan.enrollments,
            renamed(3),
            &roster.enrollments,
            &mut ups[3],
            &mut dels[3],
            &mut chunk.enrollments,
        );
        // A piece's renamed upserts joined the others out of handle order.
        chunk.schools.sort();
        chunk.students.sort();
        chunk.groups.sort();
        chunk.enrollments.sort();
        (!chunk.is_empty()).then_some(chunk)
    }
}

/// The renames of one kind as [`Chunks`] reads them: the pairs, and the sorted roster
/// positions of their new records.
#[derive(Clone, Copy)]
struct Renamed<'a> {
    pairs: &'a [(RecordHandle, RecordHandle)],
    upserts: &'a [u32],
}

/// One piece of [`DeltaPlan::chunks`] being filled: what is left of its byte budget.
struct Piece<'a> {
    secret: &'a SiteSecret,
    left: usize,
    first: bool,
}

impl Piece<'_> {
    const HANDLE_BYTES: usize = 32;

    fn fits(&mut self, bytes: usize) -> bool {
        if !self.first && bytes > self.left {
            return false;
        }
        self.first = false;
        self.left = self.left.saturating_sub(bytes);
        true
    }

    /// Moves the next renames of one kind into `out`, each whole (its pair, the new
    /// record's upsert and the old handle's delete), while the budget lasts. Returns whether
    /// all of the kind's renames are taken, so the piece may go on.
    fn take_renames<R: Record + Clone>(
        &mut self,
        renamed: Renamed<'_>,
        records: &[R],
        taken: &mut usize,
        out: &mut EntityDelta<R>,
    ) -> bool {
        if *taken >= renamed.pairs.len() {
            return true;
        }
        // The new records by handle: the pairs are sorted by old handle.
        let mut new_records = renamed
            .upserts
            .iter()
            .filter_map(|&i| records.get(i as usize))
            .map(|record| (self.secret.handle(R::ENTITY, record.key()), record))
            .collect::<Vec<_>>();
        new_records.sort_unstable_by_key(|(handle, _)| *handle);
        while let Some(&(from, to)) = renamed.pairs.get(*taken) {
            let Ok(at) = new_records.binary_search_by(|(handle, _)| handle.cmp(&to)) else {
                // The plan found the new record among the upserts; it cannot be missing.
                *taken += 1;
                continue;
            };
            let record = new_records[at].1;
            let size =
                postcard::serialize_with_flavor(record, postcard::ser_flavors::Size::default());
            if !self.fits(4 * Self::HANDLE_BYTES + size.unwrap_or(0)) {
                return false;
            }
            out.upserts.push((to, record.clone()));
            out.deletes.push(from);
            out.renames.push((from, to));
            *taken += 1;
        }
        true
    }

    /// Moves the next upserts, then the next deletes, of one kind into `out` while the
    /// budget lasts, passing over those of renames (which [`Piece::take_renames`] sends).
    /// Returns whether all of the kind's changes are taken, so the piece may go on.
    fn take<R: Record + Clone>(
        &mut self,
        plan: &PlannedChanges,
        renamed: Renamed<'_>,
        records: &[R],
        upserts: &mut usize,
        deletes: &mut usize,
        out: &mut EntityDelta<R>,
    ) -> bool {
        while let Some(&position) = plan.upserts.get(*upserts) {
            if renamed.upserts.binary_search(&position).is_ok() {
                *upserts += 1;
                continue;
            }
            let Some(record) = records.get(position as usize) else {
                *upserts += 1;
                continue;
            };
            let size =
                postcard::serialize_with_flavor(record, postcard::ser_flavors::Size::default());
            if !self.fits(Self::HANDLE_BYTES + size.unwrap_or(0)) {
                return false;
            }
            let handle = self.secret.handle(R::ENTITY, record.key());
            out.upserts.push((handle, record.clone()));
            *upserts += 1;
        }
        while let Some(&handle) = plan.deletes.get(*deletes) {
            if renamed
                .pairs
                .binary_search_by(|(from, _)| from.cmp(&handle))
                .is_ok()
            {
                *deletes += 1;
                continue;
            }
            if !self.fits(Self::HANDLE_BYTES) {
                return false;
            }
            out.deletes.push(handle);
            *deletes += 1;
        }
        true
    }
}

/// Diffs one kind by walking the export's records and the old state side by side in handle
/// order. `explicit_deletes` is `Some` for partial exports; for full exports every handle in
/// `old` that the export lacks is deleted.
fn diff_entity(
    entity: Entity,
    old: &State,
    prints: &[(RecordHandle, Digest)],
    explicit_deletes: Option<Vec<RecordHandle>>,
    summary: &mut DiffSummary,
) -> PlannedChanges {
    // Positions sorted by handle, not copies of the prints: a large export's prints are
    // megabytes.
    let mut order: Vec<u32> = (0..prints.len() as u32).collect();
    order.sort_unstable_by_key(|&i| prints[i as usize].0);

    let mut upserts = Vec::new();
    let mut implied_deletes = Vec::new();
    let mut before = old.entries(entity).iter().peekable();
    for &i in &order {
        let (handle, digest) = prints[i as usize];
        while let Some((gone, _)) = before.next_if(|(h, _)| *h < handle) {
            implied_deletes.push(*gone);
        }
        match before.next_if(|(h, _)| *h == handle) {
            Some((_, old_digest)) if *old_digest == digest => {}
            Some(_) => {
                summary.updated[entity as usize] += 1;
                upserts.push(i);
            }
            None => {
                summary.added[entity as usize] += 1;
                upserts.push(i);
            }
        }
    }
    implied_deletes.extend(before.map(|(h, _)| *h));

    let deletes = match explicit_deletes {
        Some(mut deletes) => {
            deletes.retain(|h| {
                order
                    .binary_search_by(|&i| prints[i as usize].0.cmp(h))
                    .is_err()
            });
            deletes.sort_unstable();
            deletes.dedup();
            deletes
        }
        None => implied_deletes,
    };
    summary.deleted[entity as usize] += deletes.len();
    upserts.shrink_to_fit();
    PlannedChanges { upserts, deletes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact_str::CompactString;
    use proptest::prelude::*;
    use skolebro_protocol::{Enrollment, Gender, Group, School, Student};

    fn secret() -> SiteSecret {
        SiteSecret::from_bytes([42; 32])
    }

    /// A roster from (student number, family name variant, class) triples; keys are unique.
    fn roster(rows: &[(u8, u8, u8)]) -> Validated {
        let mut seen = std::collections::BTreeSet::new();
        let mut roster = Roster {
            schools: vec![School {
                skolenummer: "46505".into(),
                organisasjonsnummer: None,
                kommunenummer: Some("4601".into()),
                fylkesnummer: Some("46".into()),
                name: "Fana skule".into(),
            }],
            ..Roster::default()
        };
        for class in 0..4u8 {
            roster.groups.push(Group {
                source_key: CompactString::from(format!("46505-{class}A")),
                name: CompactString::from(format!("{class}A")),
                grade: Some(CompactString::from(class.to_string())),
                school: "46505".into(),
                school_year: None,
            });
        }
        for &(number, family, class) in rows {
            if !seen.insert(number) {
                continue;
            }
            let key = CompactString::from(format!("elev{number}"));
            roster.students.push(Student {
                source_key: key.clone(),
                national_id: None,
                username: None,
                given_name: "Kari".into(),
                middle_name: None,
                family_name: CompactString::from(format!("Nordmann{}", family % 3)),
                birth_date: None,
                gender: Gender::Female,
                email: None,
            });
            roster.enrollments.push(Enrollment {
                source_key: CompactString::from(format!("{key}@46505")),
                student: key,
                school: "46505".into(),
                group: Some(CompactString::from(format!("46505-{}A", class % 4))),
            });
        }
        Validated {
            roster,
            ..Validated::default()
        }
    }

    fn delta(old: &Validated, new: &Validated) -> (State, Delta) {
        let before = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        (before.clone(), diff(&before, new, &prints, &secret()).0)
    }

    proptest! {
        #[test]
        fn applying_the_diff_of_a_to_b_to_the_state_of_a_gives_the_state_of_b(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            b in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let (a, b) = (roster(&a), roster(&b));
            let (mut state, delta) = delta(&a, &b);
            state.apply(&delta);
            prop_assert_eq!(state, State::of(&b.roster, &secret()));
        }

        #[test]
        fn applying_the_chunks_of_a_plan_in_turn_equals_applying_the_whole(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            b in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            max_bytes in 1usize..600,
        ) {
            let (a, b) = (roster(&a), roster(&b));
            let mut state = State::of(&a.roster, &secret());
            let prints = Fingerprints::of(&b.roster, &secret());
            let (plan, _) = plan(&state, &b, &prints, &secret());
            for chunk in plan.chunks(&b.roster, max_bytes) {
                prop_assert!(!chunk.is_empty());
                prop_assert!(chunk.students.upserts.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert!(chunk.enrollments.deletes.windows(2).all(|w| w[0] < w[1]));
                state.apply(&chunk);
            }
            prop_assert_eq!(state, State::of(&b.roster, &secret()));
        }

        #[test]
        fn the_diff_of_an_export_with_itself_is_empty(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let a = roster(&a);
            prop_assert!(delta(&a, &a).1.is_empty());
        }

        #[test]
        fn a_diff_is_in_handle_order(
            a in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
            b in proptest::collection::vec((0u8..40, 0u8..3, 0u8..4), 0..40),
        ) {
            let (_, delta) = delta(&roster(&a), &roster(&b));
            prop_assert!(delta.students.upserts.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(delta.students.deletes.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(delta.enrollments.upserts.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn a_chunk_stays_within_its_budget_unless_it_holds_a_single_change() {
        let rows: Vec<_> = (0..40).map(|n| (n, 0, n % 4)).collect();
        let new = roster(&rows);
        let prints = Fingerprints::of(&new.roster, &secret());
        let (plan, _) = plan(&State::default(), &new, &prints, &secret());
        let mut chunks = 0;
        for chunk in plan.chunks(&new.roster, 300) {
            chunks += 1;
            let changes: usize = Entity::ALL
                .iter()
                .map(|&e| chunk.upserts(e) + chunk.deletes(e).len())
                .sum();
            // Each of the twelve lists has a length prefix besides its entries.
            let encoded = postcard::to_allocvec(&chunk).unwrap().len();
            assert!(
                encoded <= 300 + 12 || changes == 1,
                "{encoded} bytes, {changes} changes"
            );
        }
        assert!(chunks > 10, "{chunks} chunks");
        assert_eq!(plan.to_delta(&new.roster).students.upserts.len(), 40);
    }

    /// The changes of each piece of `plan` under `max_bytes`, counted by `count`.
    fn per_piece(
        plan: &DeltaPlan,
        new: &Validated,
        max_bytes: usize,
        count: impl Fn(&Delta) -> usize,
    ) -> Vec<usize> {
        plan.chunks(&new.roster, max_bytes)
            .map(|c| count(&c))
            .collect()
    }

    #[test]
    fn a_piece_holds_as_many_changes_as_its_budget_pays_for() {
        // Thirty pupils of equal size whose family name changes, then who all leave.
        let rows: Vec<_> = (10..40).map(|n| (n, 0, n % 4)).collect();
        let renamed: Vec<_> = (10..40).map(|n| (n, 1, n % 4)).collect();
        let (old, changed) = (roster(&rows), roster(&renamed));
        let state = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&changed.roster, &secret());
        let (updates, _) = plan(&state, &changed, &prints, &secret());
        let student = postcard::to_allocvec(&changed.roster.students[0]).unwrap();
        let budget = 3 * (Piece::HANDLE_BYTES + student.len());
        let upserts = per_piece(&updates, &changed, budget, |c| c.students.upserts.len());
        assert_eq!(upserts, [3; 10]);

        let gone = roster(&[]);
        let prints = Fingerprints::of(&gone.roster, &secret());
        let (deletes, _) = plan(&state, &gone, &prints, &secret());
        let budget = 3 * Piece::HANDLE_BYTES;
        let deleted = per_piece(&deletes, &gone, budget, |c| {
            c.students.deletes.len() + c.enrollments.deletes.len()
        });
        assert_eq!(deleted, [3; 20]);
    }

    #[test]
    fn a_piece_holds_as_many_renames_as_its_budget_pays_for() {
        let (old, new) = renamed_export();
        let state = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        let (plan, _) = plan(&state, &new, &prints, &secret());
        // A rename costs its new record, the new and old handles, and the pair.
        let student = postcard::to_allocvec(&new.roster.students[0]).unwrap();
        let budget = 2 * (4 * Piece::HANDLE_BYTES + student.len());
        let renames = per_piece(&plan, &new, budget, |c| c.renames(Entity::Student).len());
        assert_eq!(renames[..10], [2; 10]);
        assert!(renames[10..].iter().all(|&n| n == 0));
    }

    /// Twenty pupils, and the same export after each of them took a new key (`elev{n}` to
    /// `elev{n + 100}`), as a PIFU export with `Old` and `New` ids says.
    fn renamed_export() -> (Validated, Validated) {
        let rows: Vec<_> = (0..20).map(|n| (n, 0, n % 4)).collect();
        let old = roster(&rows);
        let mut new = roster(&rows);
        for student in &mut new.roster.students {
            let number: u8 = student.source_key[4..].parse().unwrap();
            student.source_key = CompactString::from(format!("elev{}", number + 100));
        }
        for enrollment in &mut new.roster.enrollments {
            let number: u8 = enrollment.student[4..].parse().unwrap();
            enrollment.student = CompactString::from(format!("elev{}", number + 100));
            enrollment.source_key = CompactString::from(format!("elev{}@46505", number + 100));
        }
        new.renames = (0..20)
            .map(|n| crate::validate::Rename {
                entity: Entity::Student,
                from: format!("elev{n}"),
                to: format!("elev{}", n + 100),
            })
            .collect();
        (old, new)
    }

    #[test]
    fn a_rename_travels_as_its_pair_beside_the_new_upsert_and_the_old_delete() {
        let (old, new) = renamed_export();
        let (_, delta) = delta(&old, &new);
        for entity in [Entity::Student, Entity::Enrollment] {
            assert_eq!(delta.renames(entity).len(), 20, "{entity:?}");
            for (from, to) in delta.renames(entity) {
                assert!(delta.deletes(entity).contains(from));
                assert!(match entity {
                    Entity::Student => delta.students.upserts.iter().any(|(h, _)| h == to),
                    _ => delta.enrollments.upserts.iter().any(|(h, _)| h == to),
                });
            }
        }
        let elev0 = secret().handle(Entity::Student, "elev0");
        let elev100 = secret().handle(Entity::Student, "elev100");
        assert!(delta.students.renames.contains(&(elev0, elev100)));
    }

    #[test]
    fn every_piece_holds_a_rename_whole_whatever_its_budget() {
        let (old, new) = renamed_export();
        let mut state = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        let (plan, _) = plan(&state, &new, &prints, &secret());
        let mut pieces = 0;
        let mut renames = 0;
        for chunk in plan.chunks(&new.roster, 200) {
            pieces += 1;
            for entity in Entity::ALL {
                for (from, _) in chunk.renames(entity) {
                    assert!(chunk.deletes(entity).contains(from), "{entity:?}");
                    renames += 1;
                }
                // Every delete here ends a rename: the whole export was renamed.
                assert_eq!(chunk.deletes(entity).len(), chunk.renames(entity).len());
                assert_eq!(chunk.upserts(entity), chunk.renames(entity).len());
            }
            assert!(chunk.students.upserts.windows(2).all(|w| w[0].0 < w[1].0));
            state.apply(&chunk);
        }
        assert!(pieces > 5, "{pieces} pieces");
        assert_eq!(renames, 40);
        assert_eq!(state, State::of(&new.roster, &secret()));
    }

    #[test]
    fn no_piece_names_a_record_that_only_a_later_piece_carries() {
        // Every pupil takes a new key and moves to a new class: the renamed enrollments name
        // a group the export adds.
        let (old, mut new) = renamed_export();
        let mut class = new.roster.groups[0].clone();
        class.source_key = "46505-9Z".into();
        new.roster.groups.push(class);
        for enrollment in &mut new.roster.enrollments {
            enrollment.group = Some("46505-9Z".into());
        }
        let secret = secret();
        let mut state = State::of(&old.roster, &secret);
        let prints = Fingerprints::of(&new.roster, &secret);
        let (plan, _) = plan(&state, &new, &prints, &secret);
        let mut pieces = 0;
        for chunk in plan.chunks(&new.roster, 200) {
            pieces += 1;
            state.apply(&chunk);
            for (_, enrollment) in &chunk.enrollments.upserts {
                let named = [
                    (Entity::Student, enrollment.student.as_str()),
                    (Entity::School, enrollment.school.as_str()),
                    (
                        Entity::Group,
                        enrollment.group.as_deref().unwrap_or_default(),
                    ),
                ];
                for (entity, key) in named {
                    assert!(
                        state.contains(entity, &secret.handle(entity, key)),
                        "piece {pieces} names {entity:?} {key} before it is sent"
                    );
                }
            }
        }
        assert!(pieces > 5, "{pieces} pieces");
        assert_eq!(state, State::of(&new.roster, &secret));
    }

    #[test]
    fn no_change_but_a_rename_goes_out_while_renames_remain() {
        // Ten pupils without enrollments take new keys, and a class is closed.
        let rows: Vec<_> = (0..10).map(|n| (n, 0, 0)).collect();
        let mut old = roster(&rows);
        old.roster.enrollments.clear();
        let rows: Vec<_> = (100..110).map(|n| (n, 0, 0)).collect();
        let mut new = roster(&rows);
        new.roster.enrollments.clear();
        new.roster.groups.pop();
        new.renames = (0..10)
            .map(|n| crate::validate::Rename {
                entity: Entity::Student,
                from: format!("elev{n}"),
                to: format!("elev{}", n + 100),
            })
            .collect();
        let state = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        let (plan, _) = plan(&state, &new, &prints, &secret());
        // Two renames, and room left for the class's delete.
        let student = postcard::to_allocvec(&new.roster.students[0]).unwrap();
        let budget = 2 * (4 * Piece::HANDLE_BYTES + student.len()) + Piece::HANDLE_BYTES;
        let pieces: Vec<(usize, usize)> = plan
            .chunks(&new.roster, budget)
            .map(|c| {
                let renames: usize = Entity::ALL.iter().map(|&e| c.renames(e).len()).sum();
                let changes: usize = Entity::ALL
                    .iter()
                    .map(|&e| c.upserts(e) + c.deletes(e).len())
                    .sum();
                (renames, changes - 2 * renames)
            })
            .collect();
        assert_eq!(pieces, [(2, 0), (2, 0), (2, 0), (2, 0), (2, 1)]);
    }

    #[test]
    fn a_rename_whose_old_key_the_export_still_holds_is_no_rename() {
        let (old, mut new) = renamed_export();
        new.roster.students.push(old.roster.students[0].clone());
        let (_, delta) = delta(&old, &new);
        let elev0 = secret().handle(Entity::Student, "elev0");
        assert!(!delta
            .students
            .renames
            .iter()
            .any(|(from, _)| *from == elev0));
        assert_eq!(delta.students.renames.len(), 19);
    }

    #[test]
    fn a_class_move_changes_the_enrollment_and_not_the_student() {
        let (_, delta) = delta(&roster(&[(1, 0, 0)]), &roster(&[(1, 0, 1)]));
        assert!(delta.students.is_empty());
        assert_eq!(delta.enrollments.upserts.len(), 1);
        assert!(delta.enrollments.deletes.is_empty());
    }

    #[test]
    fn a_partial_export_deletes_only_what_it_names() {
        let old = roster(&[(1, 0, 0), (2, 0, 0)]);
        let mut partial = roster(&[]);
        partial.roster.groups.clear();
        partial.partial = true;
        partial.tombstones.push(crate::validate::Tombstone {
            entity: Entity::Student,
            key: "elev2".into(),
        });
        let (_, delta) = delta(&old, &partial);
        assert_eq!(
            delta.students.deletes,
            [secret().handle(Entity::Student, "elev2")]
        );
        assert!(delta.enrollments.deletes.is_empty());
        assert!(delta.groups.deletes.is_empty());
    }

    /// The summary of the diff from `old` to `new`.
    fn summarise(old: &Validated, new: &Validated) -> DiffSummary {
        let before = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        diff(&before, new, &prints, &secret()).1
    }

    /// Added, updated, deleted and renamed records of one kind.
    fn counts(summary: &DiffSummary, entity: Entity) -> (usize, usize, usize, usize) {
        (
            summary.added(entity),
            summary.updated(entity),
            summary.deleted(entity),
            summary.renamed(entity),
        )
    }

    #[test]
    fn the_summary_counts_each_kind_of_change_per_kind_of_record() {
        // elev0 stays; elev1 and elev2 change name; elev3 and elev4 leave; elev5 and elev6
        // arrive.
        let old = roster(&[(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 0, 0)]);
        let new = roster(&[(0, 0, 0), (1, 1, 1), (2, 1, 2), (5, 0, 3), (6, 0, 0)]);
        let summary = summarise(&old, &new);
        assert_eq!(counts(&summary, Entity::Student), (2, 2, 2, 0));
        assert_eq!(counts(&summary, Entity::Enrollment), (2, 0, 2, 0));
        assert_eq!(counts(&summary, Entity::Group), (0, 0, 0, 0));

        let (old, new) = renamed_export();
        let summary = summarise(&old, &new);
        assert_eq!(counts(&summary, Entity::Student), (0, 0, 0, 20));
        assert_eq!(counts(&summary, Entity::Enrollment), (0, 0, 0, 20));
    }

    #[test]
    fn a_rename_onto_a_key_the_state_already_holds_is_a_delete_and_an_update() {
        // The state holds elev0 and elev100; the export has only elev100, changed, and says
        // elev0 became elev100.
        let old = roster(&[(0, 0, 0), (100, 0, 1)]);
        let mut new = roster(&[(100, 1, 1)]);
        new.renames.push(crate::validate::Rename {
            entity: Entity::Student,
            from: "elev0".to_owned(),
            to: "elev100".to_owned(),
        });
        let summary = summarise(&old, &new);
        assert_eq!(counts(&summary, Entity::Student), (0, 1, 1, 0));
    }

    #[test]
    fn a_partial_export_deletes_the_old_key_of_what_it_renames() {
        let old = roster(&[(0, 0, 0), (1, 0, 0)]);
        let mut partial = roster(&[(100, 0, 0)]);
        partial.partial = true;
        partial.renames.push(crate::validate::Rename {
            entity: Entity::Student,
            from: "elev0".to_owned(),
            to: "elev100".to_owned(),
        });
        let (_, delta) = delta(&old, &partial);
        let elev0 = secret().handle(Entity::Student, "elev0");
        assert_eq!(delta.students.deletes, [elev0]);
        assert_eq!(delta.students.renames.len(), 1);
    }

    #[test]
    fn a_plan_is_empty_only_when_nothing_changes() {
        let same = roster(&[(0, 0, 0), (1, 0, 1)]);
        let state = State::of(&same.roster, &secret());
        let prints = Fingerprints::of(&same.roster, &secret());
        let (unchanged, _) = plan(&state, &same, &prints, &secret());
        assert!(unchanged.is_empty());
        assert!(unchanged.students.is_empty());

        let fewer = roster(&[(0, 0, 0)]);
        let prints = Fingerprints::of(&fewer.roster, &secret());
        let (deleting, _) = plan(&state, &fewer, &prints, &secret());
        assert!(!deleting.is_empty());
        assert!(deleting.students.upserts.is_empty());
        assert!(!deleting.students.is_empty(), "a delete alone is a change");

        let more = roster(&[(0, 0, 0), (1, 0, 1), (2, 0, 2)]);
        let prints = Fingerprints::of(&more.roster, &secret());
        let (adding, _) = plan(&state, &more, &prints, &secret());
        assert!(adding.students.deletes.is_empty());
        assert!(!adding.students.is_empty(), "an upsert alone is a change");
    }

    #[test]
    fn a_plan_knows_which_deletes_complete_a_rename() {
        let (old, new) = renamed_export();
        let state = State::of(&old.roster, &secret());
        let prints = Fingerprints::of(&new.roster, &secret());
        let (mut plan, _) = plan(&state, &new, &prints, &secret());
        let elev0 = secret().handle(Entity::Student, "elev0");
        let elev100 = secret().handle(Entity::Student, "elev100");
        assert!(plan.is_renamed(Entity::Student, &elev0));
        assert!(!plan.is_renamed(Entity::Student, &elev100));
        assert_eq!(plan.renamed(Entity::Student).len(), 20);
        assert!(plan.renamed(Entity::Student).contains(&(elev0, elev100)));
        assert_eq!(plan.deletes_mut(Entity::Student).len(), 20);
    }
}
