//! What the charts of the site and fleet pages are drawn from: the store's transfers,
//! windows, audit log, last heartbeats and site history, grouped into Oslo nights and
//! deviation codes for [`super::charts`].
//!
//! A site's night is marked held when a heartbeat of one of its devices reported a held
//! delta that night (the store's site history), when an operator released or rejected one
//! that night, or when a delta held now was already waiting that night: the history began
//! with migration 0019, and the decisions and the current hold fill in the nights before it.
//! Deviations by code per night are those of each device's newest heartbeat that night,
//! added up over the site's devices.

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup};
use skolebro_protocol::api::Heartbeat;
use skolebro_protocol::{DeviceId, SiteId, SiteSchool};

use super::auth::View;
use super::charts::{code_chart, day_label, night_chart, CodeChart, CodeNights, Night, NightChart};
use super::text::{Lang, Noun};
use crate::store::{
    AuditFilter, Fylke, Store, StoreError, Timestamp, TransferWindow, WindowState, HISTORY_DAYS,
};
use crate::windows::{late_for, site_counties};

/// Nights the site page's charts cover: as many as the store keeps history for.
const SITE_NIGHTS: i64 = HISTORY_DAYS;

/// Decisions on held deltas read per action for a site's chart.
const DECISIONS_READ: u32 = 200;

const DAY_MS: i64 = 86_400_000;

/// The site page's two charts over the last [`SITE_NIGHTS`] nights: records changed per
/// night, held and late nights marked, and deviations by code per night.
pub(super) async fn site_charts(
    store: &dyn Store,
    lang: Lang,
    site: &SiteId,
    devices: &[(&DeviceId, Option<&Heartbeat>)],
    windows: &[TransferWindow],
    schools: &[SiteSchool],
    now: Timestamp,
) -> Result<Markup, StoreError> {
    let today = now.oslo_day();
    let first = today - (SITE_NIGHTS - 1);
    // A day more than the nights, so the first night is whole whatever the clock's offset.
    let since = Timestamp(now.0 - (SITE_NIGHTS + 1) * DAY_MS);
    let transfers = store.site_transfers_since(site, since).await?;
    let counties: BTreeSet<Fylke> = schools
        .iter()
        .filter_map(|school| Fylke::of_kommune(&school.kommunenummer))
        .collect();
    let mut changed: BTreeMap<i64, u64> = BTreeMap::new();
    let mut late: BTreeSet<i64> = BTreeSet::new();
    for transfer in &transfers {
        let day = transfer.at.oslo_day();
        let c = &transfer.changes;
        *changed.entry(day).or_default() += c.added + c.changed + c.removed + c.renamed;
        if late_for(windows, &counties, transfer.at).is_some() {
            late.insert(day);
        }
    }
    let history = store.site_history(site, first).await?;
    let mut held = held_days(store, devices, today).await?;
    held.extend(&history.held_days);
    let nights = (first..=today)
        .map(|day| Night {
            label: day_label(lang, day),
            value: changed.get(&day).copied().unwrap_or(0),
            held: held.contains(&day),
            late: late.contains(&day),
        })
        .collect();
    let mut codes: BTreeMap<String, CodeNights> = BTreeMap::new();
    for deviation in &history.deviations {
        // A heartbeat recorded since `now` was taken belongs to no night drawn.
        let Ok(night) = usize::try_from(deviation.day - first) else {
            continue;
        };
        if deviation.day > today {
            continue;
        }
        let code = codes
            .entry(deviation.code.clone())
            .or_insert_with(|| CodeNights {
                code: deviation.code.clone(),
                error: false,
                counts: vec![0; SITE_NIGHTS as usize],
            });
        code.error |= deviation.error;
        code.counts[night] = code.counts[night].saturating_add(deviation.count);
    }
    let changes_title = lang.t(
        "Endrede poster per natt, siste 90 netter",
        "Records changed per night, last 90 nights",
    );
    let codes_title = lang.t(
        "Avvik etter kode per natt, siste 90 netter",
        "Deviations by code per night, last 90 nights",
    );
    Ok(html! {
        h2 { (lang.t("Over tid", "Over time")) }
        (night_chart(lang, &NightChart {
            id: "chart-changes",
            title: changes_title,
            unit: Noun::ChangedRecord,
            nights,
        }))
        (code_chart(lang, &CodeChart {
            id: "chart-deviations",
            title: codes_title,
            nights: (first..=today).map(|day| day_label(lang, day)).collect(),
            codes: codes.into_values().collect(),
        }))
    })
}

/// The Oslo days (up to `today`) on which a delta of one of `devices` was held: the days
/// operators decided on one, and every day since the current hold began.
async fn held_days(
    store: &dyn Store,
    devices: &[(&DeviceId, Option<&Heartbeat>)],
    today: i64,
) -> Result<BTreeSet<i64>, StoreError> {
    let mut days = BTreeSet::new();
    if devices.is_empty() {
        return Ok(days);
    }
    let targets: Vec<String> = devices
        .iter()
        .map(|(device, _)| device.as_str().to_owned())
        .collect();
    for action in ["release", "reject"] {
        let filter = AuditFilter {
            actor: None,
            action: Some(action.to_owned()),
            targets: targets.clone(),
        };
        for entry in store.audit_search(&filter, 0, DECISIONS_READ).await? {
            days.insert(entry.at.oslo_day());
        }
    }
    for (_, heartbeat) in devices {
        let since = heartbeat
            .and_then(|heartbeat| heartbeat.held.as_ref())
            .and_then(|held| held.held_since_unix_ms)
            .and_then(|ms| i64::try_from(ms).ok());
        if let Some(since) = since {
            days.extend(Timestamp(since).oslo_day().max(today - SITE_NIGHTS)..=today);
        }
    }
    Ok(days)
}

/// The fleet page's charts: for each transfer window open now (of the counties the
/// operator sees), how many of its county's visible sites delivered each night so far; and
/// how many of those sites have not delivered in their open window yet (late, if the night
/// ends so), for the summary line.
pub(super) async fn window_charts(
    store: &dyn Store,
    lang: Lang,
    view: &View,
    county: Option<Fylke>,
    now: Timestamp,
) -> Result<(Markup, Option<usize>), StoreError> {
    let open: Vec<TransferWindow> = store
        .windows(county)
        .await?
        .into_iter()
        .filter(|window| window.state_at(now) == WindowState::Open)
        .collect();
    let Some(since) = open.iter().map(|window| window.opens).min() else {
        return Ok((html! {}, None));
    };
    let mut counties = site_counties(store.current_schools().await?);
    counties.retain(|site, _| view.sees(site));
    let transfers = store.transfers_since(since).await?;
    // One pass over the transfers per open window: the visible sites of its county that
    // delivered in it, by night.
    let delivered: Vec<BTreeMap<i64, BTreeSet<&SiteId>>> = open
        .iter()
        .map(|window| {
            let mut by_night: BTreeMap<i64, BTreeSet<&SiteId>> = BTreeMap::new();
            for (site, transfer) in &transfers {
                let in_county = counties
                    .get(site)
                    .is_some_and(|of_site| of_site.contains(&window.fylke));
                if in_county && window.contains(transfer.at) {
                    by_night
                        .entry(transfer.at.oslo_day())
                        .or_default()
                        .insert(site);
                }
            }
            by_night
        })
        .collect();
    let delivered_in: Vec<BTreeSet<&SiteId>> = delivered
        .iter()
        .map(|by_night| by_night.values().flatten().copied().collect())
        .collect();
    let not_delivered = counties
        .iter()
        .filter(|(site, of_site)| {
            open.iter()
                .zip(&delivered_in)
                .any(|(window, sites)| of_site.contains(&window.fylke) && !sites.contains(site))
        })
        .count();
    let charts: Vec<(String, String, Vec<Night>)> = open
        .iter()
        .zip(&delivered)
        .map(|(window, delivered)| {
            let nights = (window.opens.oslo_day()..=now.oslo_day())
                .map(|day| Night {
                    label: day_label(lang, day),
                    value: delivered.get(&day).map_or(0, |sites| sites.len() as u64),
                    held: false,
                    late: false,
                })
                .collect();
            let title = format!(
                "{} {} ({} {})",
                lang.t(
                    "Lokasjoner som leverte per natt i",
                    "Sites delivered per night in"
                ),
                window.name,
                lang.t("fylke", "county"),
                window.fylke
            );
            (format!("chart-window-{}", window.id), title, nights)
        })
        .collect();
    let markup = html! {
        @for (id, title, nights) in charts {
            h2 { (title) }
            (night_chart(lang, &NightChart { id: &id, title: &title, unit: Noun::Site, nights }))
        }
    };
    Ok((markup, Some(not_delivered)))
}
