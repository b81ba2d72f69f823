//! The fleet page: every device an operator may see, summed up by state, filtered by state
//! and kommune, searched by name and paged. It reads the store's fleet view and the
//! heartbeats; it shows ids, counts, states and times, never a pupil.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use skolebro_protocol::release::Version;
use skolebro_protocol::{DeviceId, SiteId, SiteSchool};

use super::auth::{Operator, View};
use super::error::PageError;
use super::html::{escape_path, page, paged_link};
use super::share::{arrival_line, problem_lines};
use super::text::when;
use super::text::{current, Lang, Noun};
use super::trends::window_charts;
use super::windows::{counties_of, Counties};
use crate::state::UiState;
use crate::store::{DeviceActivity, DeviceRecord, StoreError, Timestamp};
use skolebro_protocol::api::AgentState;

/// Devices listed per page of the fleet.
const FLEET_PAGE: usize = 50;

/// A device that has not called in for this long is silent: agents send a heartbeat every
/// few minutes, so two hours is an outage, not a slow network.
const SILENT_AFTER_MS: i64 = 2 * 3600 * 1000;

/// A device as the pages show it: the store's record and what the store holds of its
/// heartbeats, batches and commands.
pub(super) struct DeviceRow {
    pub(super) device: DeviceId,
    pub(super) record: DeviceRecord,
    pub(super) activity: DeviceActivity,
}

/// The devices the operator may see, sorted by id, with the schools each site is
/// registered with (their names are the site's names; the records' are not trusted).
pub(super) async fn visible_devices(
    state: &UiState,
    view: &View,
) -> Result<(Vec<DeviceRow>, BTreeMap<SiteId, Vec<SiteSchool>>), StoreError> {
    let store = state.app.store.as_ref();
    let mut activities = store.fleet_activity().await?;
    let devices = store
        .list_devices()
        .await?
        .into_iter()
        .filter(|(_, record)| view.sees(&record.site))
        .map(|(device, record)| DeviceRow {
            activity: activities.remove(&device).unwrap_or_default(),
            device,
            record,
        })
        .collect();
    let mut schools: BTreeMap<SiteId, Vec<SiteSchool>> = BTreeMap::new();
    for (site, school) in store.registered_schools().await? {
        if view.sees(&site) {
            schools.entry(site).or_default().push(school);
        }
    }
    Ok((devices, schools))
}

pub(super) fn school_names(schools: &BTreeMap<SiteId, Vec<SiteSchool>>, site: &SiteId) -> String {
    schools.get(site).map_or_else(String::new, |schools| {
        schools
            .iter()
            .map(|school| school.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Which of the fleet page's states a device is in; a device may be in more than one
/// (holding and outdated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FleetState {
    Healthy,
    Holding,
    Failing,
    Silent,
    Outdated,
    Revoked,
}

impl FleetState {
    const ALL: [FleetState; 6] = [
        FleetState::Healthy,
        FleetState::Holding,
        FleetState::Failing,
        FleetState::Silent,
        FleetState::Outdated,
        FleetState::Revoked,
    ];

    fn code(self) -> &'static str {
        match self {
            FleetState::Healthy => "healthy",
            FleetState::Holding => "holding",
            FleetState::Failing => "failing",
            FleetState::Silent => "silent",
            FleetState::Outdated => "outdated",
            FleetState::Revoked => "revoked",
        }
    }

    /// The state as an adjective agreeing with `count` devices ("1 frisk", "2 friske").
    fn counted(self, lang: Lang, count: usize) -> &'static str {
        if count == 1 && lang == Lang::Nb {
            return match self {
                FleetState::Healthy => "frisk",
                FleetState::Silent => "taus",
                FleetState::Outdated => "utdatert",
                FleetState::Revoked => "tilbakekalt",
                FleetState::Holding | FleetState::Failing => self.words(lang),
            };
        }
        self.words(lang)
    }

    fn words(self, lang: Lang) -> &'static str {
        match self {
            FleetState::Healthy => lang.t("friske", "healthy"),
            FleetState::Holding => lang.t("holder tilbake", "holding"),
            FleetState::Failing => lang.t("feiler", "failing"),
            FleetState::Silent => lang.t("tause", "silent"),
            FleetState::Outdated => lang.t("utdaterte", "outdated"),
            FleetState::Revoked => lang.t("tilbakekalte", "revoked"),
        }
    }
}

/// The newest registered release per target, for telling which devices are outdated.
type Newest = BTreeMap<String, Version>;

fn states_of(row: &DeviceRow, newest: &Newest, now: Timestamp) -> Vec<FleetState> {
    if row.record.revoked {
        return vec![FleetState::Revoked];
    }
    let mut states = Vec::new();
    let silent = row
        .activity
        .last_heartbeat_at
        .is_none_or(|at| now.0 - at.0 > SILENT_AFTER_MS);
    if silent {
        states.push(FleetState::Silent);
    }
    if let Some(heartbeat) = &row.activity.last_heartbeat {
        match heartbeat.state {
            AgentState::Healthy if !silent => states.push(FleetState::Healthy),
            AgentState::Holding => states.push(FleetState::Holding),
            AgentState::CentralUnreachable | AgentState::Error | AgentState::NotProvisioned => {
                states.push(FleetState::Failing);
            }
            _ => {}
        }
        let outdated = heartbeat
            .target
            .as_ref()
            .and_then(|t| newest.get(t))
            .is_some_and(|newest| {
                heartbeat
                    .version
                    .parse::<Version>()
                    .is_ok_and(|running| running < *newest)
            });
        if outdated {
            states.push(FleetState::Outdated);
        }
    }
    states
}

/// The device's state in words an operator acts on.
fn state_words(lang: Lang, row: &DeviceRow) -> Markup {
    if row.record.revoked {
        return html! { span.bad { (lang.t(
            "Tilbakekalt: tilkoblingene avvises",
            "Revoked: its connections are refused",
        )) } };
    }
    let Some(heartbeat) = &row.activity.last_heartbeat else {
        return html! { span.note { (lang.t(
            "Ingen livstegn ennå: enheten har aldri meldt seg",
            "No heartbeat yet: the device has never called in",
        )) } };
    };
    let (class, words) = match heartbeat.state {
        AgentState::Healthy => (
            "ok",
            lang.t(
                "Frisk: eksporter leses og leveres",
                "Healthy: exports are read and delivered",
            ),
        ),
        AgentState::Holding => (
            "warn",
            lang.t(
                "Holder tilbake en endring til vurdering: slipp den eller avvis den under Holdte endringer",
                "Holding a delta for review: release or reject it under Held deltas",
            ),
        ),
        AgentState::CentralUnreachable => (
            "bad",
            lang.t(
                "Når ikke sentralen; prøver igjen",
                "Cannot reach central; it keeps retrying",
            ),
        ),
        AgentState::Error => (
            "bad",
            lang.t("Feiler: se enhetens status", "Failing: see the device's status"),
        ),
        AgentState::Enrolling => (
            "note",
            lang.t(
                "Melder seg inn med konfigurasjonspinnen",
                "Enrolling with its config stick",
            ),
        ),
        AgentState::NotProvisioned => (
            "bad",
            lang.t(
                "Ikke klargjort: sett inn konfigurasjonspinnen",
                "Not provisioned: insert its config stick",
            ),
        ),
        AgentState::Unknown => (
            "note",
            lang.t(
                "I en tilstand denne sentralen ikke kjenner",
                "In a state this central does not know",
            ),
        ),
    };
    html! { span class=(class) { (words) } }
}

/// The fleet page's query: all optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FleetQuery {
    state: Option<String>,
    kommune: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

impl FleetQuery {
    /// The query for the link to `page`, with the same filters.
    fn link(&self, page: usize) -> String {
        let filters = [
            ("state", self.state.as_deref()),
            ("kommune", self.kommune.as_deref()),
            ("q", self.q.as_deref()),
        ];
        paged_link("/fleet", &filters, u32::try_from(page).unwrap_or(u32::MAX))
    }
}

/// `GET /fleet`: every device the operator may see, in plain words: a summary line, filters
/// by state, kommune and name, and pages of [`FLEET_PAGE`].
pub(crate) async fn fleet(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    query: Result<Query<FleetQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let (devices, schools) = visible_devices(&state, &view).await?;
    let mut newest: Newest = BTreeMap::new();
    for record in store.releases().await? {
        let release = record.release;
        let entry = newest.entry(release.target).or_insert(release.version);
        if release.version > *entry {
            *entry = release.version;
        }
    }
    let now = Timestamp::now();
    let rows: Vec<(&DeviceRow, Vec<FleetState>)> = devices
        .iter()
        .map(|row| (row, states_of(row, &newest, now)))
        .collect();
    let kommunes: BTreeSet<&str> = schools
        .values()
        .flatten()
        .map(|school| school.kommunenummer.as_str())
        .collect();

    let wanted_state = query
        .state
        .as_deref()
        .and_then(|code| FleetState::ALL.into_iter().find(|s| s.code() == code));
    let wanted_kommune = query.kommune.as_deref().filter(|k| !k.is_empty());
    let search = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let shown: Vec<&(&DeviceRow, Vec<FleetState>)> = rows
        .iter()
        .filter(|(_, states)| wanted_state.is_none_or(|wanted| states.contains(&wanted)))
        .filter(|(row, _)| {
            wanted_kommune.is_none_or(|kommune| {
                schools
                    .get(&row.record.site)
                    .is_some_and(|list| list.iter().any(|s| s.kommunenummer == kommune))
            })
        })
        .filter(|(row, _)| {
            search.as_deref().is_none_or(|q| {
                row.device.as_str().to_lowercase().contains(q)
                    || row.record.site.as_str().to_lowercase().contains(q)
                    || school_names(&schools, &row.record.site)
                        .to_lowercase()
                        .contains(q)
            })
        })
        .collect();
    let pages = shown.len().div_ceil(FLEET_PAGE).max(1);
    let page_no = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let count = |wanted: FleetState| rows.iter().filter(|(_, s)| s.contains(&wanted)).count();
    let (charts, not_delivered) = match counties_of(&operator) {
        Counties::Every => window_charts(store, lang, &view, None, now).await?,
        Counties::Own(county) => window_charts(store, lang, &view, Some(county), now).await?,
        Counties::Nothing => (html! {}, None),
    };

    let body = html! {
        p #summary {
            (lang.count(rows.len() as u64, Noun::Device)) ": "
            @for (i, fleet_state) in [FleetState::Healthy, FleetState::Holding, FleetState::Silent,
                FleetState::Outdated].into_iter().enumerate() {
                @if i > 0 { ", " }
                @let n = count(fleet_state);
                (n) " " (fleet_state.counted(lang, n))
            }
            @let failing = count(FleetState::Failing);
            @if failing > 0 {
                ", " span.bad { (failing) " " (FleetState::Failing.counted(lang, failing)) }
            }
            @if let Some(n) = not_delivered {
                "; " span #not-delivered class=[(n > 0).then_some("warn")] {
                    (lang.count(n as u64, Noun::Site)) " "
                    (lang.t("har ikke levert i det åpne overføringsvinduet", "not delivered in the open transfer window"))
                }
            }
        }
        (charts)
        form method="get" action="/fleet" #filter {
            label { (lang.t("Tilstand", "State")) " "
                select name="state" id="state" {
                    option value="" { (lang.t("alle", "all")) }
                    @for fleet_state in FleetState::ALL {
                        option value=(fleet_state.code()) selected[wanted_state == Some(fleet_state)] {
                            (fleet_state.words(lang))
                        }
                    }
                }
            } " "
            label { (lang.t("Kommune", "Municipality")) " "
                select name="kommune" id="kommune" {
                    option value="" { (lang.t("alle", "all")) }
                    @for kommune in &kommunes {
                        option value=(kommune) selected[wanted_kommune == Some(*kommune)] { (kommune) }
                    }
                }
            } " "
            label { (lang.t("Søk etter enhet, lokasjon eller skole", "Search by device, site or school")) " "
                input type="search" name="q" id="q" value=[query.q.as_deref()];
            } " "
            button type="submit" { (lang.t("Vis", "Show")) }
        }
        @if devices.is_empty() {
            p { (lang.t(
                "Ingen enheter er registrert for lokasjonene du kan se.",
                "No devices are registered for the sites you can see.",
            )) }
        } @else if shown.is_empty() {
            p #none-shown { (lang.t("Ingen enheter passer til filteret.", "No device matches the filter.")) }
        } @else {
            table #fleet tabindex="0" {
                caption {
                    (lang.t("Viser ", "Showing ")) (lang.count(shown.len() as u64, Noun::Device))
                }
                tr {
                    th scope="col" { (lang.t("Enhet", "Device")) }
                    th scope="col" { (lang.t("Lokasjon", "Site")) }
                    th scope="col" { (lang.t("Tilstand", "State")) }
                    th scope="col" { (lang.t("Versjon", "Version")) }
                    th scope="col" { (lang.t("Siste livstegn", "Last heartbeat")) }
                    th scope="col" { (lang.t("Utboks", "Outbox")) }
                    th scope="col" { (lang.t("Siste eksport", "Last export")) }
                    th scope="col" { (lang.t("Siste bunt", "Last batch")) }
                    th scope="col" { }
                }
                @for (row, states) in shown.iter().skip((page_no - 1) * FLEET_PAGE).take(FLEET_PAGE).map(|r| (&r.0, &r.1)) {
                    @let heartbeat = row.activity.last_heartbeat.as_ref();
                    tr {
                        td { (row.device.as_str()) }
                        td {
                            a href={ "/sites/" (escape_path(row.record.site.as_str())) } { (row.record.site.as_str()) }
                            br;
                            span.note { (school_names(&schools, &row.record.site)) }
                        }
                        td {
                            (state_words(lang, row))
                            @if states.contains(&FleetState::Silent) && heartbeat.is_some() {
                                br; span.bad { (lang.t("Taus: har ikke meldt seg på over to timer", "Silent: no heartbeat for over two hours")) }
                            }
                            @if let Some(h) = heartbeat {
                                @for line in problem_lines(lang, h, now) { br; (line) }
                            }
                        }
                        td {
                            @match heartbeat {
                                Some(h) => {
                                    (h.version)
                                    @if states.contains(&FleetState::Outdated) {
                                        br; span.warn { (lang.t("utdatert", "outdated")) }
                                    }
                                }
                                None => span.note { (lang.t("ukjent", "unknown")) },
                            }
                        }
                        td { (when(row.activity.last_heartbeat_at, now)) }
                        td {
                            @match heartbeat {
                                Some(h) => {
                                    (h.outbox_depth) " " (lang.t("venter", "waiting")) " ("
                                    (h.outbox_bytes.div_ceil(1024)) " KiB)"
                                }
                                None => span.note { (lang.t("ukjent", "unknown")) },
                            }
                        }
                        td {
                            (when(heartbeat.and_then(|h| h.last_export_unix_ms.map(Timestamp)), now))
                            @if let Some(arrival) = heartbeat.and_then(|h| h.arrival.as_ref()) {
                                br; (arrival_line(lang, arrival, now))
                            }
                        }
                        td {
                            @match row.activity.last_batch_seq {
                                Some(seq) => { "#" (seq.0) " " (when(row.activity.last_batch_at, now)) }
                                None => span.note { (lang.t("ingen ennå", "none yet")) },
                            }
                        }
                        td {
                            @if operator.is_operations() && !row.record.revoked {
                                a href={ "/devices/" (escape_path(row.device.as_str())) "/revoke" }
                                    id={ "revoke-" (row.device.as_str()) } {
                                    (lang.t("Tilbakekall (mistet eller stjålet)", "Revoke (lost or stolen)"))
                                }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                p #pages {
                    (lang.t("Side ", "Page ")) (page_no) (lang.t(" av ", " of ")) (pages) ". "
                    @if page_no > 1 {
                        a href=(query.link(page_no - 1)) rel="prev" { (lang.t("Forrige", "Previous")) } " "
                    }
                    @if page_no < pages {
                        a href=(query.link(page_no + 1)) rel="next" { (lang.t("Neste", "Next")) }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Flåten", "Fleet"),
        operator.nav(),
        "/fleet",
        body,
    ))
}
