//! Transfer windows as the store keeps them: the delivery periods of a county's admission
//! office (inntakskontoret), during which the county's schools deliver their lists.
//!
//! Operations create them (web interface or operator API) and the store refuses a window
//! that closes before it opens or overlaps another of its county. Nothing about windows
//! happens when a batch is applied: batches are always applied and kept, and which of them
//! came in late is derived when someone reads (`crate::windows`), so the apply path stays as
//! fast as it was. After a window closes its elevliste is generated as of `closes` from the
//! bitemporal records, so a late batch cannot change it.

use serde::Serialize;

use super::columns::DbRow;
use super::error::{StoreError, StoreFuture, MAX_WINDOW_NAME_LEN};
use super::fylke::Fylke;
use super::timestamp::Timestamp;

/// A transfer window to create, as an operator asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWindow {
    /// The county whose schools deliver in this window.
    pub fylke: Fylke,
    /// What the admission office calls it, e.g. "Inntak 2027".
    pub name: String,
    /// From when deliveries count for the window.
    pub opens: Timestamp,
    /// The deadline: a batch applied at this time still counts; one applied later is late,
    /// and the window's elevliste is generated as of this time once it has passed.
    pub closes: Timestamp,
    /// When it was created and by whom (an operator account, or the operator API).
    pub created: Timestamp,
    pub created_by: String,
}

impl NewWindow {
    /// The checks both backends make before they store a window, so a bad one gets an error
    /// naming what is wrong rather than a database constraint's message.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let length = self.name.trim().chars().count();
        if length == 0 || self.name.chars().count() > MAX_WINDOW_NAME_LEN {
            return Err(StoreError::WindowName);
        }
        if self.closes <= self.opens {
            return Err(StoreError::WindowCloses {
                opens: self.opens,
                closes: self.closes,
            });
        }
        Ok(())
    }

    /// Whether the two periods share more than an end point. A window may open exactly when
    /// the previous one closes.
    pub(crate) fn overlaps(&self, other: &TransferWindow) -> bool {
        self.fylke == other.fylke && self.opens < other.closes && other.opens < self.closes
    }

    /// The stored window, with the id the database gave it.
    pub(crate) fn stored(self, id: i64) -> TransferWindow {
        TransferWindow {
            id,
            fylke: self.fylke,
            name: self.name,
            opens: self.opens,
            closes: self.closes,
            created: self.created,
            created_by: self.created_by,
        }
    }
}

/// A stored transfer window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferWindow {
    /// The id the export (`window=ID`) and the operators' lists name it by.
    pub id: i64,
    /// See [`NewWindow`] for the fields below.
    pub fylke: Fylke,
    pub name: String,
    pub opens: Timestamp,
    pub closes: Timestamp,
    pub created: Timestamp,
    pub created_by: String,
}

/// Where a window stands at some moment, as people ask about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Not open yet: deliveries before `opens` do not count for it.
    Upcoming,
    /// Open: schools deliver now, and its elevliste is the current state.
    Open,
    /// Past its deadline: its elevliste is frozen as of `closes`.
    Closed,
}

impl TransferWindow {
    /// Whether a batch applied at `at` was delivered inside the window (both ends count).
    pub fn contains(&self, at: Timestamp) -> bool {
        self.opens <= at && at <= self.closes
    }

    /// The window's state at `now`.
    pub fn state_at(&self, now: Timestamp) -> WindowState {
        if now < self.opens {
            WindowState::Upcoming
        } else if now <= self.closes {
            WindowState::Open
        } else {
            WindowState::Closed
        }
    }

    /// The time the window's elevliste is generated as of at `now`: its deadline once that
    /// has passed, so later batches leave the file as it was; `None` (the current state)
    /// before.
    pub fn frozen_as_of(&self, now: Timestamp) -> Option<Timestamp> {
        (self.state_at(now) == WindowState::Closed).then_some(self.closes)
    }
}

/// A window row as both databases read it, before its county is checked.
pub(crate) struct WindowRow {
    pub id: i64,
    pub fylke: String,
    pub name: String,
    pub opens: i64,
    pub closes: i64,
    pub created: i64,
    pub created_by: String,
}

/// The columns a [`WindowRow`] is read from, in its field order.
pub(crate) const WINDOW_COLUMNS: &str = "id, fylke, name, opens, closes, created, created_by";

/// The order windows are listed in: by county, then by when they open.
pub(crate) const WINDOW_ORDER: &str = "ORDER BY fylke, opens, id";

impl WindowRow {
    /// Reads a row selected with the columns above, in either database.
    pub(crate) fn read<R: DbRow + ?Sized>(row: &R) -> Result<WindowRow, R::Error> {
        Ok(WindowRow {
            id: row.column(0)?,
            fylke: row.column(1)?,
            name: row.column(2)?,
            opens: row.column(3)?,
            closes: row.column(4)?,
            created: row.column(5)?,
            created_by: row.column(6)?,
        })
    }

    /// The window, with its county checked: a row the database's own check let through
    /// but this build cannot read is reported as corrupt, not guessed at.
    pub(super) fn into_window(self) -> Result<TransferWindow, StoreError> {
        let fylke = Fylke::parse(&self.fylke).ok_or_else(|| {
            StoreError::Corrupt(format!("window {} has county {:?}", self.id, self.fylke))
        })?;
        Ok(TransferWindow {
            id: self.id,
            fylke,
            name: self.name,
            opens: Timestamp(self.opens),
            closes: Timestamp(self.closes),
            created: Timestamp(self.created),
            created_by: self.created_by,
        })
    }
}

/// The counties' transfer windows.
pub trait WindowStore: Send + Sync {
    /// Creates a transfer window and returns it with its id. A name out of bounds is
    /// [`StoreError::WindowName`], a window closing before it opens
    /// [`StoreError::WindowCloses`], one overlapping another window of its county
    /// [`StoreError::WindowOverlap`]; the overlap is checked in the inserting transaction.
    fn create_window<'a>(&'a self, window: &'a NewWindow) -> StoreFuture<'a, TransferWindow>;

    /// The transfer windows of one county, or of all with `None`, by county and opening.
    fn windows(&self, fylke: Option<Fylke>) -> StoreFuture<'_, Vec<TransferWindow>>;

    /// The window with this id, or `None`.
    fn window(&self, id: i64) -> StoreFuture<'_, Option<TransferWindow>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_both_ends_and_freezes_only_after_its_deadline() {
        let window = NewWindow {
            fylke: Fylke::parse("46").expect("a county"),
            name: "Inntak 2027".into(),
            opens: Timestamp(100),
            closes: Timestamp(200),
            created: Timestamp(0),
            created_by: "ops".into(),
        }
        .stored(1);
        assert_eq!(window.state_at(Timestamp(99)), WindowState::Upcoming);
        assert_eq!(window.state_at(Timestamp(100)), WindowState::Open);
        assert_eq!(window.state_at(Timestamp(200)), WindowState::Open);
        assert_eq!(window.state_at(Timestamp(201)), WindowState::Closed);
        assert!(window.contains(Timestamp(100)) && window.contains(Timestamp(200)));
        assert!(!window.contains(Timestamp(201)));
        assert_eq!(window.frozen_as_of(Timestamp(200)), None);
        assert_eq!(window.frozen_as_of(Timestamp(201)), Some(Timestamp(200)));
    }
}
