//! Record accounting: what became of each record an export held. A reader names every data
//! record it meets (a row of an elevliste or of a OneRoster member file, an element of a
//! JSON `users` array, an IMS `<person>`, `<group>` or `<membership>`) to the
//! [`RosterBuilder`](crate::validate::RosterBuilder), which marks each as it is handled:
//! in the roster (or a tombstone), named by a deviation, or left out by design as no roster
//! data (a teacher, a district). A record in none of these was dropped silently, which is a
//! bug in a reader or in validation: the fuzz targets and the readers' property tests assert
//! that none is.
//!
//! Kept only when [`ValidationOptions::account_records`](crate::validate::ValidationOptions)
//! asks for it: the ledger holds an entry per record, which a production read does not need
//! to pay for.

use std::collections::HashMap;

use crate::deviation::Position;

/// How many unaccounted records [`Accounting`] names; the count stays exact.
const NAMED_UNACCOUNTED: usize = 10;

/// Marks one record can carry; a record may carry several (kept with a warning).
const KEPT: u8 = 1;
const DEVIATED: u8 = 2;
const OUTSIDE: u8 = 4;

/// What happened to a record, as the builder learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A record it holds is in the roster, or merged into an identical one, or a tombstone.
    Kept,
    /// A deviation names its position.
    Deviated,
    /// The reader left it out as no roster data (a teacher, a course, a district).
    Outside,
}

/// The records seen, by file (the builder's index of its name) and position. Records that
/// share a position (two XML elements on one line) share an entry.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    marks: HashMap<(usize, Position), u8>,
}

impl Ledger {
    /// Notes a record the reader met.
    pub(crate) fn seen(&mut self, file: usize, at: Position) {
        self.marks.entry((file, at)).or_insert(0);
    }

    /// Marks the record at `at`, if the reader named one there (a deviation on a header line
    /// names no record).
    pub(crate) fn mark(&mut self, file: usize, at: Position, mark: Mark) {
        if let Some(marks) = self.marks.get_mut(&(file, at)) {
            *marks |= match mark {
                Mark::Kept => KEPT,
                Mark::Deviated => DEVIATED,
                Mark::Outside => OUTSIDE,
            };
        }
    }

    /// Counts the records by what became of them; `files` names the builder's file indexes.
    pub(crate) fn close(self, files: &[String]) -> Accounting {
        let mut accounting = Accounting {
            seen: self.marks.len() as u64,
            ..Accounting::default()
        };
        let mut unaccounted = Vec::new();
        for ((file, at), marks) in self.marks {
            if marks & DEVIATED != 0 {
                accounting.deviated += 1;
            } else if marks & KEPT != 0 {
                accounting.kept += 1;
            } else if marks & OUTSIDE != 0 {
                accounting.outside += 1;
            } else {
                unaccounted.push((file, at));
            }
        }
        unaccounted.sort_unstable();
        accounting.unaccounted = unaccounted.len() as u64;
        accounting.named_unaccounted = unaccounted
            .into_iter()
            .take(NAMED_UNACCOUNTED)
            .map(|(file, at)| (files.get(file).cloned().unwrap_or_default(), at))
            .collect();
        accounting
    }
}

/// What became of the records of one export, by count: each record seen is counted once, as
/// deviated if a deviation names it (whether or not something of it was kept), else as kept,
/// else as outside the roster, else as unaccounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Records the readers met (distinct positions).
    pub seen: u64,
    /// In the roster, merged into an identical record, or a tombstone, without a deviation.
    pub kept: u64,
    /// Named by at least one deviation.
    pub deviated: u64,
    /// Left out by design as no roster data.
    pub outside: u64,
    /// Neither: dropped without a word. Always 0 unless a reader or validation has a bug.
    pub unaccounted: u64,
    /// The first unaccounted records' files and positions, for the assertion's message.
    pub named_unaccounted: Vec<(String, Position)>,
}

impl Accounting {
    /// True when every record seen is in the roster, named by a deviation, or outside it.
    pub fn is_complete(&self) -> bool {
        self.unaccounted == 0 && self.seen == self.kept + self.deviated + self.outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_counted_once_by_the_strongest_mark_it_carries() {
        let mut ledger = Ledger::default();
        for line in 2..=6 {
            ledger.seen(1, Position::Line(line));
        }
        ledger.mark(1, Position::Line(2), Mark::Kept);
        ledger.mark(1, Position::Line(3), Mark::Kept);
        ledger.mark(1, Position::Line(3), Mark::Deviated);
        ledger.mark(1, Position::Line(4), Mark::Outside);
        ledger.mark(1, Position::Line(1), Mark::Deviated);
        ledger.mark(2, Position::Line(5), Mark::Kept);
        let accounting = ledger.close(&["".into(), "a.csv".into()]);
        assert_eq!(
            (
                accounting.seen,
                accounting.kept,
                accounting.deviated,
                accounting.outside
            ),
            (5, 1, 1, 1)
        );
        assert_eq!(accounting.unaccounted, 2);
        assert_eq!(
            accounting.named_unaccounted,
            [
                ("a.csv".to_owned(), Position::Line(5)),
                ("a.csv".to_owned(), Position::Line(6))
            ]
        );
        assert!(!accounting.is_complete());
    }
}
