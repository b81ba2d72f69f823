//! The OneRoster REST source: the first stage of the data flow for a SAS that serves its
//! roster over OneRoster REST instead of writing files. It takes an OAuth2 token (client
//! credentials), reads the service's `schools`, then its `students`, `classes` and
//! `enrollments` page by page into one [`RosterBuilder`] (through [`RestRoster`], which
//! maps them as the OneRoster file readers do), and hands the daemon a [`Validated`]
//! export, which then goes through the same site check, diff, safety filter and outbox as
//! a file.
//!
//! Only a complete pull is handed on. A page that cannot be had after
//! [`RestSource::attempts`] tries (a 5xx, a 429 past its `Retry-After`, a connection dropped
//! mid-page), a collection whose `X-Total-Count` changes while it is paged, or a count of
//! records that does not add up, fails the whole pull: the builder is dropped, and nothing
//! of it reaches the differ, where a roster missing the pages not read would delete their
//! pupils. A delta pull (`dateLastModified` filter on students, classes and enrollments;
//! schools are always read whole) is marked partial, so the differ applies it as upserts
//! and the `tobedeleted` it names, never as a whole roster.
//!
//! Memory: one page's body at a time (at most [`MAX_PAGE_BYTES`]) beside the roster being
//! built; no page's JSON is kept once read. The client secret is read from its file for each
//! token request and never logged, put in an error or in the status.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, DATE, LINK, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use skolebro_protocol::civil_time::{days_from_civil, UtcDateTime};
use skolebro_provisioning::tls::{pinned_client_builder, ClientIdentity, SystemClock};
use skolebro_roster::reader::oneroster_rest::RestRoster;
use skolebro_roster::reader::{ReadError, ReaderOptions};
use skolebro_roster::validate::{RosterBuilder, Validated};

use crate::config::RestSource;
use crate::uplink::error_chain;

/// The largest page body read. A page of 10,000 users (the most `page_size` allows) is
/// about 10 MiB; a body past this is a broken or hostile service, refused before it fills
/// the Pi's memory.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

/// The most pages one collection may take: a service whose `next` links never end is
/// refused instead of paged forever.
const MAX_PAGES: u64 = 100_000;

/// The collections that become roster records, in the order they are read: students
/// before their enrollments (the builder drops the enrollments of a student it refused only
/// when it has seen the refusal), classes before enrollments (which tells an enrollment in a
/// scheduled class from one in an unknown class).
const ROSTER_COLLECTIONS: [&str; 3] = ["students", "classes", "enrollments"];

/// The longest `Retry-After` honoured; a longer one fails the pull, to be tried at the
/// next scheduled pull.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The longest wait between two tries without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a pull was given up. Messages name the collection and page, the HTTP status or what
/// failed, never the secret, a token or a record.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("client secret file {path}: {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("TLS setup for the SAS: {0}")]
    Tls(String),
    #[error("the SAS refused the client credentials (HTTP {0})")]
    TokenRefused(StatusCode),
    #[error("{what}: HTTP {status}")]
    Refused { what: String, status: StatusCode },
    #[error("{what}: gave up after {attempts} tries; the last: {last}")]
    GaveUp {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{what}: {reason}")]
    BadAnswer { what: String, reason: String },
    /// The collection changed, or did not add up, while it was paged; the pull is not
    /// complete and is tried again at the next schedule.
    #[error("{what}: {reason}; the pull is incomplete and was not used")]
    Incomplete { what: String, reason: String },
    #[error(transparent)]
    Page(#[from] ReadError),
    #[error("the roster is larger than the {budget_mib} MiB read budget")]
    OverBudget { budget_mib: u64 },
}

/// What a pull asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullKind {
    /// Every student: the export replaces what central holds for the site.
    Full,
    /// Students changed since this Unix time (ms): upserts and `tobedeleted` only.
    Since(i64),
}

/// A complete pull.
#[derive(Debug)]
pub struct Pulled {
    pub export: Validated,
    /// Pages read, over every collection.
    pub pages: u64,
    /// Records read from `students`, `classes` and `enrollments` (before validation).
    pub records: u64,
    /// The service's own time (its `Date` header, Unix ms) when the pull began, if it sent
    /// one: the `since` of the next delta. The service's clock, not the Pi's, because the
    /// service compares `dateLastModified` with it, and its change feed reports as deleted
    /// what was readable at that time.
    pub began_at_service_ms: Option<i64>,
}

/// The HTTP side of the source: one client (pinned TLS, optionally mutual) and the token.
pub struct RestClient {
    config: RestSource,
    http: reqwest::Client,
    base: Url,
    token: Option<(String, Instant)>,
}

impl RestClient {
    /// A client for `config`: TLS pinned to `config.ca` (with the client certificate when
    /// one is set) for `https://`; plain HTTP only to loopback (checked by the config).
    pub fn new(config: &RestSource) -> Result<RestClient, PullError> {
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| PullError::Tls(format!("base_url: {e}")))?;
        let builder = match &config.ca {
            Some(ca) => {
                let ca_pem = read_text(ca)?;
                let identity = match (&config.client_cert, &config.client_key) {
                    (Some(cert), Some(key)) => Some((read_text(cert)?, read_text(key)?)),
                    _ => None,
                };
                let identity = identity
                    .as_ref()
                    .map(|(cert_pem, key_pem)| ClientIdentity { cert_pem, key_pem });
                pinned_client_builder(identity, &ca_pem, Arc::new(SystemClock))
                    .map_err(|e| PullError::Tls(e.to_string()))?
            }
            None => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
            }
        };
        let http = builder
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PullError::Tls(e.to_string()))?;
        Ok(RestClient {
            config: config.clone(),
            http,
            base,
            token: None,
        })
    }

    /// Pulls the roster: `schools`, then `students`, `classes` and `enrollments`, every
    /// page of each; see the module doc for what makes a pull complete.
    pub async fn pull(
        &mut self,
        kind: PullKind,
        options: &ReaderOptions,
    ) -> Result<Pulled, PullError> {
        let mut rest = RestRoster::new(kind != PullKind::Full);
        let mut pages = 0;
        let (_, began_at_service_ms) = self
            .collection(
                "schools",
                None,
                |body, name| rest.read_orgs_page(body, name).map_err(PullError::from),
                &mut pages,
            )
            .await?;

        let mut builder = RosterBuilder::new(options.validation);
        if let Some(budget) = options.memory_budget {
            builder.set_budget(budget);
        }
        let filter = match kind {
            PullKind::Full => None,
            PullKind::Since(unix_ms) => {
                builder.set_partial();
                Some(format!(
                    "dateLastModified>='{}'",
                    UtcDateTime::from_unix_millis(unix_ms)
                ))
            }
        };
        let budget_mib = options.memory_budget.map_or(0, |b| b >> 20);
        let mut records = 0;
        for collection in ROSTER_COLLECTIONS {
            let (read, _) = self
                .collection(
                    collection,
                    filter.as_deref(),
                    |body, name| {
                        let read = match collection {
                            "students" => rest.read_users_page(body, name, &mut builder)?,
                            "classes" => rest.read_classes_page(body, name, &mut builder)?,
                            _ => rest.read_enrollments_page(body, name, &mut builder)?,
                        };
                        if builder.over_budget().is_some() {
                            return Err(PullError::OverBudget { budget_mib });
                        }
                        Ok(read)
                    },
                    &mut pages,
                )
                .await?;
            records += read;
        }
        rest.finish(&mut builder);
        Ok(Pulled {
            export: builder.finish(),
            pages,
            records,
            began_at_service_ms,
        })
    }

    /// Reads every page of one collection, handing each body to `read` (which returns how
    /// many records it held). Follows `Link: rel="next"` when the service sends `Link`, else
    /// pages by offset until a page comes back empty or `X-Total-Count` is reached. Returns
    /// the records read and the service's `Date` on the first page.
    async fn collection(
        &mut self,
        name: &str,
        filter: Option<&str>,
        mut read: impl FnMut(&[u8], &str) -> Result<u64, PullError>,
        pages: &mut u64,
    ) -> Result<(u64, Option<i64>), PullError> {
        let limit = self.config.page_size;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| PullError::Tls("base_url cannot take a path".into()))?
            .push(name);
        let first = url.clone();
        let mut offset: u64 = 0;
        let mut total: Option<u64> = None;
        let mut records: u64 = 0;
        let mut next = Some(page_url(&first, limit, offset, filter));
        let mut page = 0;
        let mut began = None;
        while let Some(at) = next.take() {
            page += 1;
            if page > MAX_PAGES {
                return Err(PullError::BadAnswer {
                    what: name.to_owned(),
                    reason: format!("more than {MAX_PAGES} pages"),
                });
            }
            let what = format!("{name} page {page}");
            let (headers, body) = self.get(&at, &what).await?;
            if page == 1 {
                began = http_date(&headers);
            }
            let count = read(&body, &what)?;
            drop(body);
            *pages += 1;
            records += count;
            let stated = total_count(&headers);
            match (total, stated) {
                (Some(before), Some(now)) if before != now => {
                    return Err(PullError::Incomplete {
                        what,
                        reason: format!("the collection went from {before} to {now} records"),
                    })
                }
                (None, Some(now)) => total = Some(now),
                _ => {}
            }
            offset += count;
            next = if headers.contains_key(LINK) {
                match next_link(&headers) {
                    Some(link) => Some(self.same_origin(&link, &what)?),
                    None => None,
                }
            } else if let Some(total) = total {
                (offset < total && count > 0).then(|| page_url(&first, limit, offset, filter))
            } else {
                (count > 0).then(|| page_url(&first, limit, offset, filter))
            };
        }
        if let Some(total) = total.filter(|total| *total != records) {
            return Err(PullError::Incomplete {
                what: name.to_owned(),
                reason: format!("{records} records read where the service counts {total}"),
            });
        }
        Ok((records, began))
    }

    /// A `next` link, refused unless it is on the base URL's origin: the bearer token goes
    /// with it, and must not go anywhere else.
    fn same_origin(&self, link: &str, what: &str) -> Result<Url, PullError> {
        let url = self.base.join(link).map_err(|e| PullError::BadAnswer {
            what: what.to_owned(),
            reason: format!("its next link is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(PullError::BadAnswer {
                what: what.to_owned(),
                reason: "its next link leaves the service's origin".to_owned(),
            });
        }
        Ok(url)
    }

    /// One GET with the bearer token, tried up to `attempts` times: a 429 or 503 waits its
    /// `Retry-After`, a 5xx or a failed connection or body waits a doubling backoff, a 401
    /// takes a new token. Any other status fails at once.
    async fn get(&mut self, url: &Url, what: &str) -> Result<(HeaderMap, Vec<u8>), PullError> {
        let attempts = self.config.attempts;
        let mut backoff = Duration::from_millis(self.config.retry_initial_ms.max(1));
        let mut last = String::new();
        for attempt in 1..=attempts {
            let token = self.token().await?;
            let wait = match self.http.get(url.clone()).bearer_auth(token).send().await {
                Err(error) => {
                    last = error_chain(&error);
                    backoff
                }
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let headers = response.headers().clone();
                        match body(response).await {
                            Ok(body) => return Ok((headers, body)),
                            Err(BodyError::TooLarge) => {
                                return Err(PullError::BadAnswer {
                                    what: what.to_owned(),
                                    reason: format!("the page is over {MAX_PAGE_BYTES} bytes"),
                                })
                            }
                            Err(BodyError::Broken(error)) => {
                                last = format!("the page broke off: {error}");
                                backoff
                            }
                        }
                    } else if status == StatusCode::UNAUTHORIZED {
                        self.token = None;
                        last = "HTTP 401".to_owned();
                        Duration::ZERO
                    } else if status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                    {
                        last = format!("HTTP {status}");
                        match retry_after(response.headers()) {
                            Some(wait) if wait > MAX_RETRY_AFTER => {
                                return Err(PullError::GaveUp {
                                    what: what.to_owned(),
                                    attempts: attempt,
                                    last: format!("{last} with Retry-After {}s", wait.as_secs()),
                                })
                            }
                            Some(wait) => wait,
                            None => backoff,
                        }
                    } else if status.is_server_error() {
                        last = format!("HTTP {status}");
                        backoff
                    } else {
                        return Err(PullError::Refused {
                            what: what.to_owned(),
                            status,
                        });
                    }
                }
            };
            if attempt < attempts {
                tracing::warn!(what, attempt, last = %last, wait_ms = wait.as_millis() as u64, "SAS request failed; trying again");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        Err(PullError::GaveUp {
            what: what.to_owned(),
            attempts,
            last,
        })
    }

    /// The bearer token, taken anew a minute before it runs out.
    async fn token(&mut self) -> Result<String, PullError> {
        if let Some((token, until)) = &self.token {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let secret = read_secret(&self.config.client_secret_file)?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.config.scope {
            form.push(("scope", scope));
        }
        let what = "the token request";
        let mut last = String::new();
        let mut backoff = Duration::from_millis(self.config.retry_initial_ms.max(1));
        for attempt in 1..=self.config.attempts {
            let sent = self
                .http
                .post(&self.config.token_url)
                .basic_auth(&self.config.client_id, Some(&secret))
                .form(&form)
                .send()
                .await;
            let wait = match sent {
                Err(error) => {
                    last = error_chain(&error);
                    backoff
                }
                Ok(response) if response.status().is_success() => {
                    #[derive(serde::Deserialize)]
                    struct Token {
                        access_token: String,
                        expires_in: Option<u64>,
                    }
                    let body = body(response).await.map_err(|_| PullError::BadAnswer {
                        what: what.to_owned(),
                        reason: "the answer broke off".to_owned(),
                    })?;
                    let token: Token =
                        serde_json::from_slice(&body).map_err(|_| PullError::BadAnswer {
                            what: what.to_owned(),
                            reason: "the answer is not an OAuth2 token".to_owned(),
                        })?;
                    let lives = Duration::from_secs(token.expires_in.unwrap_or(3600));
                    let until = Instant::now() + lives.saturating_sub(Duration::from_secs(60));
                    self.token = Some((token.access_token.clone(), until));
                    return Ok(token.access_token);
                }
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        last = format!("HTTP {status}");
                        retry_after(response.headers())
                            .filter(|wait| *wait <= MAX_RETRY_AFTER)
                            .unwrap_or(backoff)
                    } else {
                        return Err(PullError::TokenRefused(status));
                    }
                }
            };
            if attempt < self.config.attempts {
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        Err(PullError::GaveUp {
            what: what.to_owned(),
            attempts: self.config.attempts,
            last,
        })
    }
}

/// A page's URL: the collection with `limit`, `offset` and the filter.
fn page_url(collection: &Url, limit: u32, offset: u64, filter: Option<&str>) -> Url {
    let mut url = collection.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("limit", &limit.to_string());
        query.append_pair("offset", &offset.to_string());
        if let Some(filter) = filter {
            query.append_pair("filter", filter);
        }
    }
    url
}

/// `X-Total-Count`, when the service sends a number.
fn total_count(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-total-count")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The target of `rel="next"` in the `Link` headers (RFC 8288), if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(mut rest) = value.to_str() else {
            continue;
        };
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = &after[..close];
            let params = &after[close + 1..];
            let end = params.find('<').unwrap_or(params.len());
            let is_next = params[..end].split(';').any(|param| {
                let param = param.trim().trim_end_matches(',').trim();
                param
                    .strip_prefix("rel=")
                    .map(|rel| rel.trim_matches('"'))
                    .is_some_and(|rel| {
                        rel.split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                    })
            });
            if is_next {
                return Some(target.to_owned());
            }
            rest = &params[end..];
        }
    }
    None
}

/// The `Date` header (IMF-fixdate, `Sun, 06 Dec 2026 00:41:05 GMT`) as Unix ms.
fn http_date(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(DATE)?.to_str().ok()?;
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let mut clock = time.split(':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    let days = days_from_civil(year.parse().ok()?, month, day.parse().ok()?);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// `Retry-After` in seconds (the HTTP-date form is taken as a short wait).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    Some(match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => Duration::from_secs(5),
    })
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads a body up to [`MAX_PAGE_BYTES`].
async fn body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_PAGE_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_PAGE_BYTES {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(BodyError::Broken(error_chain(&error))),
        }
    }
}

fn read_text(path: &Path) -> Result<String, PullError> {
    std::fs::read_to_string(path).map_err(|e| PullError::Tls(format!("{}: {e}", path.display())))
}

/// Reads the client secret, refusing a file others may read.
fn read_secret(path: &Path) -> Result<String, PullError> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |reason: String| PullError::Secret {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(fail(format!(
            "others may read it (mode {:o}); make it 0600",
            meta.permissions().mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(fail("it is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

/// The Unix time in ms now, for delta watermarks.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(link: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(link).unwrap());
        headers
    }

    #[test]
    fn the_next_link_is_found_among_the_others_whatever_their_order() {
        let link = r#"<http://h/x?limit=2&offset=0&fields=a,b>; rel="first", <http://h/x?offset=2>; rel="next", <http://h/x?offset=8>; rel="last""#;
        assert_eq!(
            next_link(&headers(link)).as_deref(),
            Some("http://h/x?offset=2")
        );
        let last_page = r#"<http://h/x?offset=0>; rel="first", <http://h/x?offset=6>; rel="prev""#;
        assert_eq!(next_link(&headers(last_page)), None);
    }

    #[test]
    fn the_services_date_is_read_as_unix_ms() {
        let mut headers = HeaderMap::new();
        let date = HeaderValue::from_static("Sun, 01 Nov 2026 00:00:05 GMT");
        headers.insert(DATE, date);
        assert_eq!(http_date(&headers), Some(1_793_491_205_000));
        headers.insert(DATE, HeaderValue::from_static("yesterday"));
        assert_eq!(http_date(&headers), None);
    }

    #[test]
    fn a_secret_file_others_may_read_is_refused_without_showing_the_secret() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hemmelig-verdi\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_secret(&path).unwrap_err().to_string();
        assert!(
            error.contains("0600") && !error.contains("hemmelig"),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&path).unwrap(), "hemmelig-verdi");
    }
}
