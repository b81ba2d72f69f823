//! The OneRoster endpoint of the consumer listener: every path under
//! [`crate::oneroster::BASE`] (1.1) or [`crate::oneroster::v1p2::BASE_V1P2`] (1.2) is read into a
//! [`crate::oneroster::endpoint::Endpoint`] and
//! answered from the calling client's scope only: one page of a list (with `X-Total-Count`
//! and the paging `Link`s; a change feed with what was deleted since), or one object by
//! `sourcedId`. An answer carrying personal data is logged first (`crate::access_log`), and
//! not sent if it cannot be. Both versions are the same answer: the objects are shaped for
//! the version asked for ([`Version::shape`]) before the query filters, sorts and cuts them.
//! Errors leave as `ApiError`s; the listener's `imsx` layer writes them in OneRoster's
//! status shape.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::token::bearer_client;
use crate::access_log::{log_answer, Answer};
use crate::api::error::ApiError;
use crate::oneroster::deletions::deletions;
use crate::oneroster::endpoint::{Endpoint, Missing};
use crate::oneroster::links::{absolute_hrefs, link_header, origin};
use crate::oneroster::query::{parse_query, PageRequest};
use crate::oneroster::v1p2::Version;
use crate::oneroster::{paged, scoped_roster, Kind, Moment, Needs, ScopedRoster};
use crate::state::AppState;

/// `GET /ims/oneroster/v1p1/{path}` and `GET /ims/oneroster/rostering/v1p2/{path}`: a list
/// of the caller's objects in the shape of the version the base names, filtered, sorted and
/// paged as the query asks, or one object; `404` for a path the service does not have and
/// for an object (or a list's parent) outside the caller's scope, whether it exists
/// elsewhere or nowhere.
pub(crate) async fn get_resource(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let version = Version::of_path(uri.path());
    let client = bearer_client(&state, &headers).await?;
    let Some(endpoint) = Endpoint::parse(&path) else {
        return Err(ApiError::not_found(
            "not_found",
            format!(
                "no such endpoint in the OneRoster {} rostering service",
                version.name()
            ),
        ));
    };
    let kind = endpoint.kind();
    let base = version.base();
    let request = parse_query(&uri)
        .and_then(|query| PageRequest::from_query(query, version.fields(kind)))
        .map_err(|error| ApiError::bad_request(error.code(), error.to_string()))?;
    let origin = match &state.consumer_public_url {
        Some(url) => url.as_str().to_owned(),
        None => origin(&headers, &uri).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_host",
                "the Host header names no host, so no paging links can be written",
            )
        })?,
    };
    let one = matches!(endpoint, Endpoint::One { .. });
    let (page, total, roster, gone) = match paged::plan(&endpoint, &request) {
        Some(plan) => {
            let keep = |object: &Value| {
                request
                    .filter()
                    .is_none_or(|filter| filter.matches(&version.shape(kind, object.clone())))
            };
            let paged = paged::serve(state.store.as_ref(), &client.scope, &plan, &keep).await?;
            (
                shaped(version, kind, paged.page),
                paged.total,
                paged.roster,
                ScopedRoster::default(),
            )
        }
        None => {
            let needs = Needs::of(endpoint.kinds());
            let roster =
                scoped_roster(state.store.as_ref(), &client.scope, Moment::Now, needs).await?;
            let mut objects = endpoint.select(&roster).map_err(|Missing::Object(kind)| {
                ApiError::not_found(
                    "unknown_object",
                    format!("no {} with this sourcedId", kind.singular()),
                )
            })?;
            let mut gone = ScopedRoster::default();
            if let Some(since) = request.since().filter(|_| endpoint.is_collection()) {
                gone = deletions(state.store.as_ref(), &client.scope, since, &roster, kind).await?;
                objects.extend(endpoint.select(&gone).unwrap_or_default());
            }
            let objects = shaped(version, kind, objects);
            let (page, total) = if one {
                (objects.into_iter().take(1).collect(), 1)
            } else {
                request.apply(objects)
            };
            (page, total, roster, gone)
        }
    };
    let answer = Answer {
        endpoint: &format!("{base}/{path}"),
        filter: request.filter_text(),
        kind,
        objects: &page,
        rosters: &[&roster, &gone],
    };
    log_answer(state.store.as_ref(), &client, &answer).await?;
    let mut page = page.into_iter().map(|object| {
        let mut object = request.select(object);
        absolute_hrefs(&mut object, &origin);
        object
    });
    if one {
        let object = page.next().unwrap_or(Value::Null);
        return Ok(Json(json!({ kind.singular(): object })).into_response());
    }
    let page: Vec<Value> = page.collect();
    tracing::debug!(
        client = client.id,
        collection = kind.plural(),
        total,
        served = page.len(),
        "oneroster page read"
    );
    let links = link_header(&format!("{origin}{base}/{path}"), &request, total);
    let mut response = Json(json!({ kind.plural(): page })).into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(total),
    );
    if let Some(links) = links.and_then(|links| HeaderValue::from_str(&links).ok()) {
        headers.insert(header::LINK, links);
    }
    Ok(response)
}

/// `objects` (1.1, as mapped) in `version`'s shape.
fn shaped(version: Version, kind: Kind, objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .map(|object| version.shape(kind, object))
        .collect()
}
