//! Transfer windows at read time: which sites delivered inside a county's window and which
//! batches came in late, derived from the store's transfers and windows when someone asks.
//!
//! The ingest applies every batch as before and knows nothing of windows, so a school that
//! misses the deadline loses nothing and the apply path costs what it did. A batch is late
//! for window W when it was applied after W's deadline (`closes`) to a site of W's county and
//! no later window of that county had opened by then; the site's county comes from its
//! current school records ([`Fylke::of_school`]). The frozen side lives in
//! `crate::elevliste_export`, which reads a closed window's file as of its deadline. The web
//! interface (`crate::ui::windows`) and the operator API (`GET`/`POST /admin/windows`,
//! `crate::api::operator`) show the same reports and create windows with the same checks.

use std::collections::{BTreeMap, BTreeSet};

use skolebro_protocol::{School, SiteId};

use crate::store::{
    Fylke, NewWindow, Store, StoreError, Timestamp, Transfer, TransferWindow, MAX_WINDOW_NAME_LEN,
};

/// The counties each site's current schools lie in (usually one).
pub(crate) type SiteCounties = BTreeMap<SiteId, BTreeSet<Fylke>>;

/// The counties of every site, from the current school records; a school with neither a
/// fylkesnummer nor a kommunenummer puts its site in no county.
pub(crate) fn site_counties(schools: impl IntoIterator<Item = (SiteId, School)>) -> SiteCounties {
    let mut counties = SiteCounties::new();
    for (site, school) in schools {
        if let Some(fylke) = Fylke::of_school(&school) {
            counties.entry(site).or_default().insert(fylke);
        }
    }
    counties
}

/// The index in `windows` of the window of `county` a batch applied at `at` is late for:
/// the one that closed last before `at`, unless a window of the county is open at `at`
/// (windows of a county do not overlap, so that one is the later window that had opened).
fn late_index(windows: &[TransferWindow], county: Fylke, at: Timestamp) -> Option<usize> {
    let mut late: Option<usize> = None;
    for (index, window) in windows.iter().enumerate() {
        if window.fylke != county {
            continue;
        }
        if window.contains(at) {
            return None;
        }
        if window.closes < at && late.is_none_or(|last| windows[last].closes < window.closes) {
            late = Some(index);
        }
    }
    late
}

/// The window a batch applied at `at` to a site in `counties` is late for, if any: what
/// the site page marks a transfer with.
pub(crate) fn late_for<'a>(
    windows: &'a [TransferWindow],
    counties: &BTreeSet<Fylke>,
    at: Timestamp,
) -> Option<&'a TransferWindow> {
    counties
        .iter()
        .filter_map(|county| late_index(windows, *county, at))
        .map(|index| &windows[index])
        .max_by_key(|window| window.closes)
}

/// How one window went: its county's sites, those that delivered inside it and the batches
/// that came in late for it.
#[derive(Debug)]
pub(crate) struct WindowReport<'a> {
    pub window: &'a TransferWindow,
    /// Sites with a current school in the window's county.
    pub sites: BTreeSet<SiteId>,
    /// Sites with a batch applied between `opens` and `closes`.
    pub delivered: BTreeSet<SiteId>,
    /// Batches late for the window, oldest first.
    pub late: Vec<(SiteId, Transfer)>,
}

impl WindowReport<'_> {
    /// The sites with at least one late batch: the ones the admission office asks about,
    /// however many batches each sent after the deadline.
    pub(crate) fn late_sites(&self) -> BTreeSet<&SiteId> {
        self.late.iter().map(|(site, _)| site).collect()
    }
}

/// One report per window, in the windows' order, from the sites' counties and the
/// transfers (oldest first). Sites missing from `counties` are left out, which is how a
/// caller restricts the reports to the sites someone may see.
pub(crate) fn reports<'a>(
    windows: &'a [TransferWindow],
    counties: &SiteCounties,
    transfers: &[(SiteId, Transfer)],
) -> Vec<WindowReport<'a>> {
    let mut reports: Vec<WindowReport<'a>> = windows
        .iter()
        .map(|window| WindowReport {
            window,
            sites: counties
                .iter()
                .filter(|(_, of_site)| of_site.contains(&window.fylke))
                .map(|(site, _)| site.clone())
                .collect(),
            delivered: BTreeSet::new(),
            late: Vec::new(),
        })
        .collect();
    for (site, transfer) in transfers {
        for county in counties.get(site).into_iter().flatten() {
            let inside = windows
                .iter()
                .position(|window| window.fylke == *county && window.contains(transfer.at));
            if let Some(index) = inside {
                reports[index].delivered.insert(site.clone());
            } else if let Some(index) = late_index(windows, *county, transfer.at) {
                reports[index].late.push((site.clone(), transfer.clone()));
            }
        }
    }
    reports
}

/// What the window reports are computed from, read from the store in one go.
#[derive(Debug)]
pub(crate) struct Overview {
    pub windows: Vec<TransferWindow>,
    pub counties: SiteCounties,
    /// Every batch since the earliest window opened, oldest first.
    pub transfers: Vec<(SiteId, Transfer)>,
}

impl Overview {
    /// Reads the windows (of one county, or all), the sites' counties and the transfers
    /// since the earliest of those windows opened.
    pub(crate) async fn load(
        store: &dyn Store,
        fylke: Option<Fylke>,
    ) -> Result<Overview, StoreError> {
        let windows = store.windows(fylke).await?;
        let counties = site_counties(store.current_schools().await?);
        let transfers = match windows.iter().map(|window| window.opens).min() {
            Some(since) => store.transfers_since(since).await?,
            None => Vec::new(),
        };
        Ok(Overview {
            windows,
            counties,
            transfers,
        })
    }

    /// The reports of the loaded windows; a caller that removed sites from `counties`
    /// (another kommune's) gets reports without them.
    pub(crate) fn reports(&self) -> Vec<WindowReport<'_>> {
        reports(&self.windows, &self.counties, &self.transfers)
    }
}

/// Why a window asked for is not created. The operator API answers with these words in
/// English under its codes (`invalid_window`, `window_overlap`); the web interface says them
/// in the page's language from the structure (`crate::ui::windows`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WindowRefusal {
    /// A time the operator API was given is not RFC 3339 (nor a date).
    #[error("{0} is an RFC 3339 time, e.g. 2027-03-01T12:00:00+01:00, or a date")]
    Time(WindowEnd),
    /// The county is not a fylkesnummer.
    #[error("fylke is a county number (fylkesnummer), two digits")]
    County,
    /// The name is empty or too long.
    #[error("name is 1 to {MAX_WINDOW_NAME_LEN} characters")]
    Name,
    /// The window would close before (or when) it opens.
    #[error("a transfer window must close after it opens (opens {opens}, closes {closes})")]
    Closes { opens: Timestamp, closes: Timestamp },
    /// The window would overlap another window of its county.
    #[error(
        "the transfer window overlaps window {existing} of county {fylke}; windows of one \
         county may touch but not overlap"
    )]
    Overlap { fylke: Fylke, existing: i64 },
}

/// Which end of a window a time is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowEnd {
    Opens,
    Closes,
}

impl std::fmt::Display for WindowEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WindowEnd::Opens => "opens",
            WindowEnd::Closes => "closes",
        })
    }
}

/// Checks a window as the operator API wrote it (county, name, RFC 3339 times) and builds
/// it, or says what is wrong. Whether it closes after it opens and overlaps nothing is the
/// store's to say ([`refusal`]).
pub(crate) fn parse_new_window(
    fylke: &str,
    name: &str,
    opens: &str,
    closes: &str,
    created_by: &str,
) -> Result<NewWindow, WindowRefusal> {
    let time = |end: WindowEnd, text: &str| {
        Timestamp::parse_rfc3339(text.trim()).ok_or(WindowRefusal::Time(end))
    };
    let (opens, closes) = (
        time(WindowEnd::Opens, opens),
        time(WindowEnd::Closes, closes),
    );
    new_window(fylke, name, opens?, closes?, created_by)
}

/// Checks a window's county and name, with its times already read (as RFC 3339 by the
/// operator API, from date pickers in Oslo time by the web interface), and builds it.
pub(crate) fn new_window(
    fylke: &str,
    name: &str,
    opens: Timestamp,
    closes: Timestamp,
    created_by: &str,
) -> Result<NewWindow, WindowRefusal> {
    let fylke = Fylke::parse(fylke.trim()).ok_or(WindowRefusal::County)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_WINDOW_NAME_LEN {
        return Err(WindowRefusal::Name);
    }
    Ok(NewWindow {
        fylke,
        name: name.to_owned(),
        opens,
        closes,
        created: Timestamp::now(),
        created_by: created_by.to_owned(),
    })
}

/// What the store refused a window for (not a failure of its own), or `None` when the
/// error is the store's.
pub(crate) fn refusal(error: &StoreError) -> Option<WindowRefusal> {
    match *error {
        StoreError::WindowName => Some(WindowRefusal::Name),
        StoreError::WindowCloses { opens, closes } => Some(WindowRefusal::Closes { opens, closes }),
        StoreError::WindowOverlap { fylke, existing } => {
            Some(WindowRefusal::Overlap { fylke, existing })
        }
        _ => None,
    }
}

/// Refuses a window the store would refuse (a bad name or period, an overlap in its
/// county) before an audit line is written for it, so the log does not fill with refused
/// attempts; the store checks again in its own transaction. `Err` is the store failing.
pub(crate) async fn early_refusal(
    store: &dyn Store,
    window: &NewWindow,
) -> Result<Option<StoreError>, StoreError> {
    if let Err(error) = window.check() {
        return Ok(Some(error));
    }
    let existing = store.windows(Some(window.fylke)).await?;
    Ok(existing
        .iter()
        .find(|other| window.overlaps(other))
        .map(|other| StoreError::WindowOverlap {
            fylke: window.fylke,
            existing: other.id,
        }))
}

/// The target and detail of the audit line for creating `window`, the same from both doors.
pub(crate) fn audit_words(window: &NewWindow) -> (String, String) {
    (
        format!("county {}", window.fylke),
        format!("{}: {} to {}", window.name, window.opens, window.closes),
    )
}

#[cfg(test)]
mod tests {
    use skolebro_protocol::{DeviceId, Seq};

    use super::*;
    use crate::store::Changes;

    fn county(code: &str) -> Fylke {
        Fylke::parse(code).expect("a county")
    }

    fn window(id: i64, code: &str, opens: i64, closes: i64) -> TransferWindow {
        TransferWindow {
            id,
            fylke: county(code),
            name: format!("Window {id}"),
            opens: Timestamp(opens),
            closes: Timestamp(closes),
            created: Timestamp(0),
            created_by: "ops".to_owned(),
        }
    }

    fn site(name: &str) -> SiteId {
        SiteId::new(name).expect("a site id")
    }

    fn transfer(at: i64) -> Transfer {
        Transfer {
            device: DeviceId::new("pi-1").expect("a device id"),
            seq: Seq(1),
            at: Timestamp(at),
            snapshot: true,
            changes: Changes::default(),
            bytes: 0,
        }
    }

    /// Two windows of county 46 (100..200 and 500..600), one of county 03 (100..300).
    fn windows() -> Vec<TransferWindow> {
        vec![
            window(1, "46", 100, 200),
            window(2, "46", 500, 600),
            window(3, "03", 100, 300),
        ]
    }

    #[test]
    fn a_batch_after_the_deadline_is_late_until_the_next_window_opens() {
        let windows = windows();
        let vestland = BTreeSet::from([county("46")]);
        let late = |at| late_for(&windows, &vestland, Timestamp(at)).map(|w| w.id);
        assert_eq!(late(50), None, "before any window");
        assert_eq!(late(100), None, "as the window opens");
        assert_eq!(late(200), None, "at the deadline");
        assert_eq!(late(201), Some(1));
        assert_eq!(late(499), Some(1));
        assert_eq!(late(500), None, "the next window is open");
        assert_eq!(late(601), Some(2));
        // County 03's window is open until 300: no batch of its sites is late before.
        let oslo = BTreeSet::from([county("03")]);
        assert_eq!(late_for(&windows, &oslo, Timestamp(250)), None);
        assert_eq!(
            late_for(&windows, &oslo, Timestamp(301)).map(|w| w.id),
            Some(3)
        );
        assert_eq!(late_for(&windows, &BTreeSet::new(), Timestamp(301)), None);
    }

    #[test]
    fn reports_count_delivering_sites_and_list_late_batches_per_window() {
        let windows = windows();
        let counties = SiteCounties::from([
            (site("fana"), BTreeSet::from([county("46")])),
            (site("voss"), BTreeSet::from([county("46")])),
            (site("oslo"), BTreeSet::from([county("03")])),
        ]);
        let transfers = vec![
            (site("fana"), transfer(150)),
            (site("oslo"), transfer(250)),
            (site("voss"), transfer(250)),
            (site("fana"), transfer(300)),
            (site("gone"), transfer(300)),
            (site("voss"), transfer(550)),
        ];
        let reports = reports(&windows, &counties, &transfers);
        fn sites(set: &BTreeSet<SiteId>) -> Vec<&str> {
            set.iter().map(SiteId::as_str).collect()
        }
        assert_eq!(sites(&reports[0].sites), ["fana", "voss"]);
        assert_eq!(sites(&reports[0].delivered), ["fana"]);
        let late: Vec<_> = reports[0]
            .late
            .iter()
            .map(|(site, transfer)| (site.as_str(), transfer.at.0))
            .collect();
        assert_eq!(late, [("voss", 250), ("fana", 300)]);
        assert_eq!(reports[0].late_sites().len(), 2);
        assert_eq!(sites(&reports[1].delivered), ["voss"]);
        assert!(reports[1].late.is_empty());
        assert_eq!(sites(&reports[2].delivered), ["oslo"]);
        assert!(reports[2].late.is_empty());
    }

    #[test]
    fn a_window_is_parsed_with_a_reason_for_each_bad_field() {
        let ok = parse_new_window(
            "46",
            " Inntak 2027 ",
            "2027-02-01",
            "2027-03-01T12:00:00+01:00",
            "ops",
        )
        .expect("a valid window");
        assert_eq!(ok.name, "Inntak 2027");
        assert_eq!(ok.closes.to_string(), "2027-03-01T11:00:00.000Z");
        for (fields, word) in [
            (["4", "x", "2027-02-01", "2027-03-01"], "fylke"),
            (["46", " ", "2027-02-01", "2027-03-01"], "name"),
            (["46", "x", "soon", "2027-03-01"], "opens"),
            (["46", "x", "2027-02-01", "1 March"], "closes"),
        ] {
            let error = parse_new_window(fields[0], fields[1], fields[2], fields[3], "ops")
                .expect_err("refused");
            assert!(error.to_string().starts_with(word), "{error}");
        }
    }
}
