//! The OneRoster endpoints of the consumer listener: one page of a collection, or one
//! object by `sourcedId`, of the calling client's scope only ([`crate::oneroster`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::token::bearer_client;
use crate::api::error::{not_found, ApiError};
use crate::oneroster::{scoped_items, Collection, ListQuery, PageRequest, BASE};
use crate::state::AppState;

/// `GET /ims/oneroster/v1p1/{collection}`: one page of the caller's objects, sorted by
/// `sourcedId`, with `X-Total-Count` (of the caller's scope and filter) and a `Link` to the
/// next page while there is one.
pub(crate) async fn get_collection(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(collection): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let client = bearer_client(&state, &headers).await?;
    let Some(collection) = Collection::from_path(&collection) else {
        return Err(not_found().await);
    };
    let Ok(Query(query)) = query else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the parameters served are limit, offset and filter",
        ));
    };
    let page = PageRequest::from_query(query)
        .map_err(|(code, detail)| ApiError::bad_request(code, detail))?;
    let mut items = scoped_items(state.store.as_ref(), &client.scope, collection).await?;
    if let Some(filter) = page.filter {
        items.retain(|item| filter.matches(item.modified));
    }
    items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let total = items.len();
    let objects: Vec<Value> = items
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|item| item.json)
        .collect();
    tracing::debug!(
        client = client.id,
        collection = collection.plural(),
        total,
        served = objects.len(),
        "oneroster page read"
    );
    let mut response = Json(json!({ collection.plural(): objects })).into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(total),
    );
    let next = page.offset.saturating_add(page.limit);
    if next < total {
        if let Ok(link) = HeaderValue::from_str(&format!(
            "<{BASE}/{}?limit={}&offset={next}>; rel=\"next\"",
            collection.plural(),
            page.limit
        )) {
            headers.insert(header::LINK, link);
        }
    }
    Ok(response)
}

/// `GET /ims/oneroster/v1p1/{collection}/{sourcedId}`: one object of the caller's scope;
/// 404 for an id that is not, whether it exists elsewhere or nowhere.
pub(crate) async fn get_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let client = bearer_client(&state, &headers).await?;
    let Some(collection) = Collection::from_path(&collection) else {
        return Err(not_found().await);
    };
    let items = scoped_items(state.store.as_ref(), &client.scope, collection).await?;
    match items.into_iter().find(|item| item.id == id) {
        Some(item) => Ok(Json(json!({ collection.singular(): item.json })).into_response()),
        None => Err(ApiError::not_found(
            "unknown_object",
            format!("no {} with this sourcedId", collection.singular()),
        )),
    }
}
