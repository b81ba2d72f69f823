//! The pages of the web interface and the actions behind their forms.
//!
//! Each GET handler takes the signed-in [`Operator`], works out which sites it may see
//! ([`View`]), reads the store and the fleet view, and renders a table; each POST handler also
//! checks the form's CSRF token and the operator's role, writes the audit line, acts, and
//! redirects back. Pages show ids, counts, states and times, never a national id or a name of
//! a pupil: heartbeats carry deviations masked as the agent's `check` prints them (and
//! [`super::deviations`] masks them again), and the roster itself stays behind the operator
//! API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use skolebro_protocol::release::Version;
use skolebro_protocol::{DeviceId, SiteId, SiteSchool};

use super::auth::{CsrfForm, EmptyForm, Operator, View};
use super::deviations::deviation_table;
use super::error::PageError;
use super::html::{escape_path, human_bytes, page, see_other};
use super::text::{current, Lang, Noun};
use super::windows::late_note;
use crate::audit;
use crate::state::UiState;
use crate::store::{DeviceActivity, DeviceRecord, StoreError, Timestamp};
use skolebro_protocol::api::{AgentState, Command, MAX_HELD_ID_LEN};

/// Transfers listed on a site's page.
const TRANSFERS_SHOWN: u32 = 50;

/// Audit lines listed on the audit page.
const AUDIT_SHOWN: u32 = 500;

/// Devices listed per page of the fleet.
const FLEET_PAGE: usize = 50;

/// A device that has not called in for this long is silent: agents send a heartbeat every
/// few minutes, so two hours is an outage, not a slow network.
const SILENT_AFTER_MS: i64 = 2 * 3600 * 1000;

/// Longest reason an operator may give; it is stored in the audit log.
pub(super) const MAX_REASON_LEN: usize = 500;

/// `GET /`: the fleet for a signed-in operator, the login page for anyone else.
pub(crate) async fn home() -> Response {
    see_other("/fleet")
}

/// Unknown paths, and sites or devices outside the operator's view, all look alike.
pub(crate) async fn not_found() -> Response {
    let lang = current();
    page(
        StatusCode::NOT_FOUND,
        lang.t("Finnes ikke", "Not found"),
        html! {},
        "/fleet",
        html! { p {
            (lang.t("Her finnes ingen slik side. ", "There is no such page. "))
            a href="/fleet" { (lang.t("Tilbake til flåten", "Back to the fleet")) } "."
        } },
    )
}

/// A device as the pages show it: the store's record and what the store holds of its
/// heartbeats, batches and commands.
struct DeviceRow {
    device: DeviceId,
    record: DeviceRecord,
    activity: DeviceActivity,
}

/// The devices the operator may see, sorted by id, with the schools each site is
/// registered with (their names are the site's names; the records' are not trusted).
async fn visible_devices(
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

fn school_names(schools: &BTreeMap<SiteId, Vec<SiteSchool>>, site: &SiteId) -> String {
    schools.get(site).map_or_else(String::new, |schools| {
        schools
            .iter()
            .map(|school| school.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// A time in Oslo with how long ago (or how soon) it is, or "never".
pub(super) fn when(at: Option<Timestamp>, now: Timestamp) -> Markup {
    let lang = current();
    match at {
        None => html! { span.note { (lang.t("aldri", "never")) } },
        Some(at) => html! {
            (lang.time(at)) " " span.note { "(" (lang.relative(at, now)) ")" }
        },
    }
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
        let mut parts = Vec::new();
        for (name, value) in [
            ("state", &self.state),
            ("kommune", &self.kommune),
            ("q", &self.q),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{name}={}", escape_path(value)));
            }
        }
        parts.push(format!("page={page}"));
        format!("/fleet?{}", parts.join("&"))
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
        }
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
            table #fleet {
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
                        td { (when(heartbeat.and_then(|h| h.last_export_unix_ms.map(Timestamp)), now)) }
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

/// `GET /sites/{site}`: a school's transfers over time and what to fix in its SAS.
pub(crate) async fn site(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(site): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    let store = state.app.store.as_ref();
    let view = operator.view(store).await?;
    let Ok(site) = SiteId::new(site) else {
        return Err(operator.not_found());
    };
    if !view.sees(&site) || store.site_secret(&site).await?.is_none() {
        return Err(operator.not_found());
    }
    let (devices, schools) = visible_devices(&state, &view).await?;
    let counts = store.counts(&site).await?;
    let transfers = store.transfers(&site, TRANSFERS_SHOWN).await?;
    let windows = store.windows(None).await?;
    let site_schools = schools.get(&site).map_or(&[][..], Vec::as_slice);
    let now = Timestamp::now();
    let site_devices: Vec<_> = devices
        .iter()
        .filter(|row| row.record.site == site)
        .collect();
    let reported = site_devices
        .iter()
        .any(|row| row.activity.last_heartbeat.is_some());
    let holding: Vec<_> = site_devices
        .iter()
        .filter(|row| {
            row.activity
                .last_heartbeat
                .as_ref()
                .is_some_and(|h| h.held.is_some())
        })
        .collect();
    let here = format!("/sites/{}", escape_path(site.as_str()));

    let body = html! {
        p { (school_names(&schools, &site)) }
        @for row in &holding {
            p.warn #holds-back {
                (row.device.as_str())
                (lang.t(
                    " holder tilbake en eksport til vurdering: ",
                    " holds an export back for review: ",
                ))
                a href="/held" { (lang.t("se Holdte endringer", "see Held deltas")) } "."
            }
        }
        p {
            @match lang {
                Lang::Nb => {
                    "Sentralen har " (lang.count(counts.students, Noun::Student)) ", "
                    (lang.count(counts.groups, Noun::Group)) " og "
                    (lang.count(counts.enrollments, Noun::Enrollment)) " for denne lokasjonen."
                }
                Lang::English => {
                    "Central holds " (lang.count(counts.students, Noun::Student)) ", "
                    (lang.count(counts.groups, Noun::Group)) " and "
                    (lang.count(counts.enrollments, Noun::Enrollment)) " for this site."
                }
            }
        }
        p { a href={ "/reads?site=" (escape_path(site.as_str())) } {
            (lang.t("Mottakeres oppslag i denne lokasjonens data", "Reads of this site's data by consumers"))
        } }
        h2 { (lang.t("Avvik å rette i SAS", "Deviations to fix in the SAS")) }
        @for row in &site_devices {
            @if let Some(heartbeat) = &row.activity.last_heartbeat {
                p {
                    (lang.t("Den siste eksporten ", "The last export read by "))
                    (row.device.as_str())
                    (lang.t(" leste, har ", " has "))
                    strong { (lang.count(heartbeat.deviations.errors, Noun::Error)) }
                    (lang.t(" og ", " and "))
                    (lang.count(heartbeat.deviations.warnings, Noun::Warning))
                    " (" (when(row.activity.last_heartbeat_at, now)) ")."
                }
                @if let Some(table) = deviation_table(lang, &heartbeat.deviation_groups) {
                    (table)
                }
            }
        }
        @if reported {
            p.note {
                (lang.t(
                    "Fødselsnumre er maskert og navn utelatt. På skolens side viser ",
                    "National ids are masked and names left out. On the school's side, ",
                ))
                code { "skolebro-agent check EXPORT" }
                (lang.t(" hver rad.", " lists every row."))
            }
        } @else {
            p.note { (lang.t(
                "Ingen enhet på denne lokasjonen har rapportert ennå.",
                "No device of this site has reported yet.",
            )) }
        }
        h2 { (lang.t("Overføringer", "Transfers")) }
        @if transfers.is_empty() {
            p { (lang.t(
                "Ingen bunt er tatt inn for denne lokasjonen ennå.",
                "No batch has been applied for this site yet.",
            )) }
        } @else {
            table #transfers {
                caption { (lang.t("Siste overføringer", "Latest transfers")) }
                tr {
                    th scope="col" { (lang.t("Tatt inn", "Applied")) }
                    th scope="col" { (lang.t("Enhet", "Device")) }
                    th scope="col" { (lang.t("Bunt", "Batch")) }
                    th scope="col" { (lang.t("Slag", "Kind")) }
                    th scope="col" { (lang.t("Størrelse", "Size")) }
                    th scope="col" { (lang.t("Lagt til", "Added")) }
                    th scope="col" { (lang.t("Endret", "Changed")) }
                    th scope="col" { (lang.t("Fjernet", "Removed")) }
                    th scope="col" { (lang.t("Omdøpt", "Renamed")) }
                    th scope="col" { (lang.t("Uendret", "Unchanged")) }
                    th scope="col" { (lang.t("Frist", "Deadline")) }
                }
                @for transfer in &transfers {
                    tr {
                        td { (when(Some(transfer.at), now)) }
                        td { (transfer.device.as_str()) }
                        td { "#" (transfer.seq.0) }
                        td { (if transfer.snapshot { lang.t("fullt bilde", "snapshot") } else { lang.t("endring", "delta") }) }
                        td {
                            @if transfer.bytes == 0 {
                                span.note { (lang.t("ikke registrert", "not recorded")) }
                            } @else {
                                (human_bytes(transfer.bytes))
                            }
                        }
                        td { (transfer.changes.added) }
                        td { (transfer.changes.changed) }
                        td { (transfer.changes.removed) }
                        td { (transfer.changes.renamed) }
                        td { (transfer.changes.unchanged) }
                        td { (late_note(&windows, site_schools, transfer.at)) }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        &format!("{} {site}", lang.t("Lokasjon", "Site")),
        operator.nav(),
        &here,
        body,
    ))
}

/// Counts of records by kind ("281 elever, 3 grupper"), in the page's language for the
/// kinds it knows.
fn kinds(lang: Lang, counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return lang.t("ingen", "none").to_owned();
    }
    counts
        .iter()
        .map(|(kind, n)| {
            let noun = match kind.as_str() {
                "students" => Some(Noun::Student),
                "groups" => Some(Noun::Group),
                "enrollments" => Some(Noun::Enrollment),
                "schools" => Some(Noun::School),
                _ => None,
            };
            noun.map_or_else(|| format!("{n} {kind}"), |noun| lang.count(*n, noun))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /held`: the deltas the devices hold for review, with release and reject forms.
pub(crate) async fn held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let view = operator.view(state.app.store.as_ref()).await?;
    let (devices, schools) = visible_devices(&state, &view).await?;
    let now = Timestamp::now();
    let holding: Vec<_> = devices
        .iter()
        .filter_map(|row| {
            row.activity
                .last_heartbeat
                .as_ref()
                .and_then(|h| h.held.as_ref())
                .map(|held| (row, held))
        })
        .collect();
    let decision_words = |decision: &str| match decision {
        "release" => lang.t("Frigivelsen", "The release"),
        _ => lang.t("Avvisningen", "The reject"),
    };
    let body = html! {
        @for (row, held) in &holding {
            @let decided = row.activity.commands.iter().rev().find_map(|queued| match &queued.command {
                Command::Release { held_id } if *held_id == held.id => Some(("release", queued.delivered_at)),
                Command::Reject { held_id } if *held_id == held.id => Some(("reject", queued.delivered_at)),
                _ => None,
            });
            @let open = match decided {
                None => true,
                Some((_, delivered)) => delivered.is_some_and(|at| row.activity.last_heartbeat_at > Some(at)),
            };
            section.held {
                h2 {
                    (row.device.as_str()) (lang.t(" ved ", " at "))
                    a href={ "/sites/" (escape_path(row.record.site.as_str())) } { (row.record.site.as_str()) }
                    " " span.note { (school_names(&schools, &row.record.site)) }
                }
                p {
                    (lang.t("Holdt endring ", "Held delta ")) code { (held.id) }
                    @if let Some(ms) = held.held_since_unix_ms.and_then(|ms| i64::try_from(ms).ok()) {
                        (lang.t(", holdt siden ", ", held since ")) (when(Some(Timestamp(ms)), now))
                    }
                    (lang.t(", rapportert ", ", reported ")) (when(row.activity.last_heartbeat_at, now)) "."
                }
                p { (lang.t("Hvorfor den holdes: ", "Why it is held: "))
                    (skolebro_protocol::mask_in_text(&held.reasons.join("; "))) }
                p {
                    (lang.t("Den ville legge til eller endre: ", "It would add or change: "))
                    (kinds(lang, &held.upserts)) ". "
                    (lang.t("Den ville slette: ", "It would delete: "))
                    (kinds(lang, &held.deletes)) "."
                }
                @match decided {
                    Some((decision, None)) => p.ok #queued {
                        (decision_words(decision))
                        (lang.t(
                            " står i kø: enheten utfører den med neste livstegn.",
                            " is queued: the device carries it out with its next heartbeat.",
                        ))
                    },
                    // Delivered with the heartbeat shown: the next one tells how it went.
                    Some((decision, Some(at))) if row.activity.last_heartbeat_at <= Some(at) => p.ok #delivered {
                        (decision_words(decision)) (lang.t(" ble levert ", " was delivered ")) (when(Some(at), now))
                        (lang.t(
                            ": enheten melder utfallet med neste livstegn.",
                            ": the device reports the outcome with its next heartbeat.",
                        ))
                    },
                    // Delivered, yet a later heartbeat still holds the delta: it may be decided again.
                    Some((decision, Some(at))) => p.warn #delivered {
                        (decision_words(decision)) (lang.t(" ble levert ", " was delivered ")) (when(Some(at), now))
                        (lang.t(", men enheten holder fortsatt endringen.", ", yet the device still holds the delta."))
                    },
                    None => {},
                }
                @if open && operator.may_decide_held() {
                    form method="post" action={ "/devices/" (escape_path(row.device.as_str())) "/held" } {
                        (operator.csrf_field())
                        input type="hidden" name="held_id" value=(held.id);
                        p { label {
                            (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                            input type="text" name="reason" id={ "reason-" (row.device.as_str()) } size="60"
                                maxlength=(MAX_REASON_LEN) required;
                        } }
                        p {
                            button type="submit" name="decision" value="release" id={ "release-" (row.device.as_str()) } {
                                (lang.t("Slipp: send den til sentralen", "Release: send it to central"))
                            }
                            button type="submit" name="decision" value="reject" id={ "reject-" (row.device.as_str()) } {
                                (lang.t("Avvis: forkast den …", "Reject: drop it …"))
                            }
                        }
                    }
                }
            }
        }
        @if holding.is_empty() {
            p #none-held { (lang.t(
                "Ingen enhet holder tilbake en endring til vurdering.",
                "No device holds a delta for review.",
            )) }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Holdte endringer", "Held deltas"),
        operator.nav(),
        "/held",
        body,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HeldForm {
    csrf: String,
    held_id: String,
    decision: String,
    reason: String,
    /// `yes` once the operator has confirmed a reject on the confirmation page.
    confirmed: Option<String>,
}

impl CsrfForm for HeldForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The reason a form gave, trimmed, or the refusal that asks for one.
pub(super) fn reason_of<'a>(operator: &Operator, reason: &'a str) -> Result<&'a str, PageError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        let lang = current();
        return Err(operator.forbidden(&format!(
            "{} {MAX_REASON_LEN} {}",
            lang.t("Oppgi en begrunnelse på 1 til", "Give a reason of 1 to"),
            lang.t("tegn.", "characters."),
        )));
    }
    Ok(reason)
}

/// A page that asks before a destructive action: what will happen, the reason field
/// (filled in if the operator gave one already), and the button that does it, posting
/// `confirmed=yes` to `action` with `hidden` fields; or a way back.
pub(super) struct Confirmation<'a> {
    pub title: &'a str,
    pub warning: Markup,
    pub action: &'a str,
    pub hidden: &'a [(&'a str, &'a str)],
    pub reason: &'a str,
    pub button: &'a str,
    pub back: &'a str,
}

/// The page of a [`Confirmation`], with the operator's menu and form token.
pub(super) fn confirmation(operator: &Operator, asked: Confirmation<'_>) -> Response {
    let Confirmation {
        title,
        warning,
        action,
        hidden,
        reason,
        button,
        back,
    } = asked;
    let lang = current();
    let body = html! {
        p.warn #confirm-warning { (warning) }
        form method="post" action=(action) {
            (operator.csrf_field())
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            input type="hidden" name="confirmed" value="yes";
            p { label {
                (lang.t("Begrunnelse (lagres i revisjonsloggen)", "Reason (kept in the audit log)")) br;
                input type="text" name="reason" id="reason" size="60" maxlength=(MAX_REASON_LEN)
                    value=(reason) required;
            } }
            p {
                button type="submit" id="confirm" { (button) } " "
                a href=(back) { (lang.t("Avbryt", "Cancel")) }
            }
        }
    };
    page(StatusCode::OK, title, operator.nav(), back, body)
}

/// `POST /devices/{device}/held`: queues a release or reject, as
/// `POST /admin/devices/{device}/commands` does, with the operator and reason audited. A
/// reject is asked about first: without `confirmed=yes` the answer is the confirmation page.
pub(crate) async fn post_held(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<HeldForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    if !operator.may_decide_held() {
        return Err(operator.forbidden(lang.t(
            "Kontoen din kan se, ikke slippe eller avvise.",
            "Your account may look, not release or reject.",
        )));
    }
    let store = state.app.store.as_ref();
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let view = operator.view(store).await?;
    match store.device(&device).await? {
        Some(record) if view.sees(&record.site) => {}
        _ => return Err(operator.not_found()),
    }
    let command = match form.decision.as_str() {
        "release" => Command::Release {
            held_id: form.held_id.clone(),
        },
        "reject" => Command::Reject {
            held_id: form.held_id.clone(),
        },
        _ => {
            return Err(
                operator.forbidden(lang.t("Velg slipp eller avvis.", "Choose release or reject."))
            )
        }
    };
    if !command.is_valid() || form.held_id.len() > MAX_HELD_ID_LEN {
        return Err(operator.forbidden(lang.t(
            "Det er ikke id-en til en holdt endring.",
            "That is not a held delta's id.",
        )));
    }
    if form.decision == "reject" && form.confirmed.as_deref() != Some("yes") {
        let action = format!("/devices/{}/held", escape_path(device.as_str()));
        return Ok(confirmation(
            &operator,
            Confirmation {
                title: lang.t("Avvise den holdte endringen?", "Reject the held delta?"),
                warning: html! {
                (lang.t("Enheten ", "The device ")) strong { (device.as_str()) }
                (lang.t(
                    " forkaster endringen ",
                    " drops the delta ",
                ))
                code { (form.held_id) }
                (lang.t(
                    ", og ingenting av den når sentralen. Det kan ikke gjøres om; skolen må eksportere på nytt.",
                    ", and none of it reaches central. This cannot be undone; the school has to export again.",
                ))
                },
                action: &action,
                hidden: &[("held_id", &form.held_id), ("decision", "reject")],
                reason: form.reason.trim(),
                button: lang.t("Ja, avvis den", "Yes, reject it"),
                back: "/held",
            },
        ));
    }
    let reason = reason_of(&operator, &form.reason)?;
    let detail = format!("held delta {}: {reason}", form.held_id);
    audit::record(
        store,
        &operator.user.name,
        &form.decision,
        device.as_str(),
        &detail,
    )
    .await?;
    match store
        .queue_command(&device, &command, Timestamp::now())
        .await
    {
        Ok(_) => {
            tracing::info!(%device, operator = operator.user.name, decision = form.decision, "held delta decision queued");
            Ok(see_other("/held"))
        }
        Err(full @ StoreError::CommandQueueFull(_)) => Err(operator.forbidden(&full.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// `GET /devices/{device}/revoke`: operations only; asks before revoking, with a reason.
pub(crate) async fn get_revoke_device(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
) -> Result<Response, PageError> {
    let lang = current();
    if !operator.is_operations() {
        return Err(operator.forbidden(lang.t(
            "Bare driften kan tilbakekalle en enhet.",
            "Only operations may revoke a device.",
        )));
    }
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let Some(record) = state.app.store.device(&device).await? else {
        return Err(operator.not_found());
    };
    let action = format!("/devices/{}/revoke", escape_path(device.as_str()));
    Ok(confirmation(
        &operator,
        Confirmation {
            title: lang.t("Tilbakekalle enheten?", "Revoke the device?"),
            warning: html! {
            (lang.t("Sentralen avviser alle tilkoblinger fra ", "Central refuses every connection from "))
            strong { (device.as_str()) }
            (lang.t(" ved ", " at ")) (record.site.as_str())
            (lang.t(
                " fra neste tilkobling. Gjør det når enheten er mistet eller stjålet; en ny enhet må meldes inn med en ny pinne.",
                " from its next connection on. Do it when the device is lost or stolen; a new device must enroll with a new stick.",
            ))
            },
            action: &action,
            hidden: &[],
            reason: "",
            button: lang.t("Ja, tilbakekall den", "Yes, revoke it"),
            back: "/fleet",
        },
    ))
}

/// The revoke form: its CSRF token, the confirmation and the reason.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    confirmed: Option<String>,
}

impl CsrfForm for RevokeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /devices/{device}/revoke`: operations only, confirmed and with a reason; refused
/// from the device's next connection on.
pub(crate) async fn post_revoke_device(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(device): Path<String>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = current();
    let form = operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden(lang.t(
            "Bare driften kan tilbakekalle en enhet.",
            "Only operations may revoke a device.",
        )));
    }
    let Ok(device) = DeviceId::new(device) else {
        return Err(operator.not_found());
    };
    let store = state.app.store.as_ref();
    if store.device(&device).await?.is_none() {
        return Err(operator.not_found());
    }
    if form.confirmed.as_deref() != Some("yes") {
        return Err(operator.forbidden(lang.t(
            "Bekreft tilbakekallingen på bekreftelsessiden.",
            "Confirm the revocation on the confirmation page.",
        )));
    }
    let reason = reason_of(&operator, &form.reason)?;
    audit::record(
        store,
        &operator.user.name,
        "revoke_device",
        device.as_str(),
        &format!("revoked: {reason}"),
    )
    .await?;
    store.revoke_device(&device).await?;
    Ok(see_other("/fleet"))
}

/// `GET /tokens`: the sticks' enrollment tokens; issuing one stays in the CLI.
pub(crate) async fn tokens(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    let view = operator.view(state.app.store.as_ref()).await?;
    if matches!(view, View::Only(_)) {
        return Err(operator.not_found());
    }
    let tokens = state.app.store.list_tokens().await?;
    let now = Timestamp::now();
    let body = html! {
        p {
            (lang.t("En konfigurasjonspinne lages med ", "A config stick is made with "))
            code { "skolebro-provision stick" }
            (lang.t(
                ", som signerer pinnens pakke med pinnenøkkelen; den nøkkelen kommer aldri nær \
                 denne tjeneren, så pinner utstedes ikke fra denne siden. Kommandoen registrerer \
                 pinnens engangstoken her.",
                ", which signs the stick's bundle with the stick key; that key never comes near \
                 this server, so sticks are not issued from this page. The command registers the \
                 stick's one-time token here.",
            ))
        }
        @if tokens.is_empty() {
            p { (lang.t("Ingen tokens er registrert.", "No tokens are registered.")) }
        } @else {
            table #tokens {
                caption { (lang.t("Innmeldingstokens", "Enrollment tokens")) }
                tr {
                    th scope="col" { "Token" }
                    th scope="col" { (lang.t("Lokasjon", "Site")) }
                    th scope="col" { (lang.t("Skole", "School")) }
                    th scope="col" { (lang.t("Laget", "Created")) }
                    th scope="col" { (lang.t("Utløper", "Expires")) }
                    th scope="col" { (lang.t("Tilstand", "State")) }
                    th scope="col" { }
                }
                @for token in &tokens {
                    tr {
                        td { code { (token.id) } }
                        td { (token.site.as_str()) }
                        td { (token.site_name) }
                        td { (lang.time(token.created)) }
                        td { (lang.time(token.expires)) }
                        td {
                            @if token.revoked {
                                span.bad { (lang.t("tilbakekalt", "revoked")) }
                            } @else if let Some(device) = &token.used_by {
                                (lang.t("brukt av ", "used by ")) (device.as_str()) " " (when(token.used_at, now))
                            } @else if now >= token.expires {
                                span.note { (lang.t("utløpt", "expired")) }
                            } @else {
                                span.ok { (lang.t("ubrukt", "unused")) }
                            }
                        }
                        td {
                            @if operator.is_operations() && !token.revoked {
                                form.inline method="post" action={ "/tokens/" (escape_path(&token.id)) "/revoke" } {
                                    (operator.csrf_field())
                                    button type="submit" { (lang.t("Tilbakekall", "Revoke")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Pinner og tokens", "Sticks and tokens"),
        operator.nav(),
        "/tokens",
        body,
    ))
}

/// `POST /tokens/{id}/revoke`: operations only; a lost stick's token is refused from now on.
pub(crate) async fn post_revoke_token(
    State(state): State<Arc<UiState>>,
    operator: Operator,
    Path(id): Path<String>,
    form: Result<Form<EmptyForm>, FormRejection>,
) -> Result<Response, PageError> {
    operator.form(form)?;
    if !operator.is_operations() {
        return Err(operator.forbidden(current().t(
            "Bare driften kan tilbakekalle et token.",
            "Only operations may revoke a token.",
        )));
    }
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(operator.not_found());
    }
    let store = state.app.store.as_ref();
    audit::record(store, &operator.user.name, "revoke_token", &id, "revoked").await?;
    match store.revoke_token(&id).await {
        Ok(()) => Ok(see_other("/tokens")),
        Err(StoreError::TokenUnknown) => Err(operator.not_found()),
        Err(error) => Err(error.into()),
    }
}

/// `GET /audit`: operations only; the newest actions first.
pub(crate) async fn audit_page(
    State(state): State<Arc<UiState>>,
    operator: Operator,
) -> Result<Response, PageError> {
    let lang = current();
    if !operator.is_operations() {
        return Err(operator.not_found());
    }
    let entries = state.app.store.audit_log(AUDIT_SHOWN).await?;
    let body = html! {
        table #audit {
            caption { (lang.t("Nyeste handlinger først", "Newest actions first")) }
            tr {
                th scope="col" { (lang.t("Når", "When")) }
                th scope="col" { (lang.t("Hvem", "Who")) }
                th scope="col" { (lang.t("Handling", "Action")) }
                th scope="col" { (lang.t("På", "On")) }
                th scope="col" { (lang.t("Detaljer", "Detail")) }
            }
            @for entry in &entries {
                tr {
                    td { (lang.time(entry.at)) }
                    td { (entry.actor) }
                    td { (entry.action) }
                    td { (entry.target) }
                    td { (entry.detail) }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        lang.t("Revisjonslogg", "Audit log"),
        operator.nav(),
        "/audit",
        body,
    ))
}
