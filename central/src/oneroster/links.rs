//! The `Link` header of a OneRoster list answer (RFC 8288): `first`, `prev`, `next` and
//! `last` as absolute URLs that repeat every parameter of the request but `offset`, so a
//! client that follows `next` keeps its filter, sort and field selection. The origin comes
//! from the request's `Host` (checked to be a host name or address with an optional port)
//! and `X-Forwarded-Proto` (only `http` or `https`), which the TLS-terminating proxy in
//! front of the listener sets, unless central is configured with the URL consumers reach it
//! by (`consumer_public_url`, a [`PublicUrl`]), which then names every link whatever the
//! request's headers say. The `href` of each reference inside the objects is made absolute
//! from the same base ([`absolute_hrefs`]). Pure: the handler passes the headers in.

use axum::http::{header, HeaderMap, Uri};
use serde_json::Value;

use super::query::PageRequest;
use super::v1p2::BASE_V1P2;
use super::BASE;

/// The URL consumers reach the consumer listener by, behind its proxy
/// (`https://api.example.no`, or with a path prefix the proxy strips,
/// `https://example.no/skolebro`): the base of every paging link and `href`, so they name
/// the public address even when the proxy rewrites `Host`. Checked once, at configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// `text` as a base URL: `http` or `https`, a host as the `Host` check accepts one, and an
    /// optional path of plain characters, without a query, fragment or user; a trailing
    /// `/` is dropped. `None` for anything else.
    pub fn parse(text: &str) -> Option<PublicUrl> {
        let text = text.trim().trim_end_matches('/');
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path_ok = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'))
            && !path.contains("//");
        (is_host(host) && path_ok).then(|| PublicUrl(text.to_owned()))
    }

    /// The URL without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scheme and authority the client reached the listener by (`https://api.example.no`),
/// or `None` when the request names no valid host.
pub(crate) fn origin(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = match headers.get(header::HOST) {
        Some(value) => value.to_str().ok()?.trim().to_owned(),
        None => uri.authority()?.as_str().to_owned(),
    };
    if !is_host(&host) {
        return None;
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
    {
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{scheme}://{host}"))
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional port: nothing
/// that could end the URL or the header early, or point it at a path or a user.
fn is_host(text: &str) -> bool {
    let (name, port) = match text.rsplit_once(':') {
        Some((name, _)) if !name.ends_with(']') && name.contains(':') => (text, None),
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    port_ok && name_ok && !text.is_empty()
}

/// Makes the `href` of every reference in `value` (a path under [`BASE`] as the mapping
/// writes it, or under [`BASE_V1P2`] once shaped for 1.2) an absolute URL under `base`, the configured public URL or the request's
/// origin: OneRoster's `GUIDRef.href` is a URL a client can follow as it is.
pub(crate) fn absolute_hrefs(value: &mut Value, base: &str) {
    match value {
        Value::Object(object) => {
            for (name, field) in object.iter_mut() {
                match field {
                    Value::String(href)
                        if name == "href"
                            && (href.starts_with(BASE) || href.starts_with(BASE_V1P2)) =>
                    {
                        *href = format!("{base}{href}");
                    }
                    field => absolute_hrefs(field, base),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| absolute_hrefs(item, base)),
        _ => {}
    }
}

/// The `Link` header value for a page of `request` at `url` (origin and path, no query)
/// out of `total` objects; `None` when one page holds them all from the start.
pub(crate) fn link_header(url: &str, request: &PageRequest, total: usize) -> Option<String> {
    let limit = request.limit;
    let offset = request.offset;
    let last = total.saturating_sub(1) / limit * limit;
    let mut links = Vec::new();
    if offset > 0 || offset.saturating_add(limit) < total {
        links.push(("first", 0));
    }
    if offset > 0 {
        links.push(("prev", offset.saturating_sub(limit).min(last)));
    }
    if offset.saturating_add(limit) < total {
        links.push(("next", offset + limit));
    }
    if offset > 0 || offset.saturating_add(limit) < total {
        links.push(("last", last));
    }
    if links.is_empty() {
        return None;
    }
    let carried: String = request
        .carried
        .iter()
        .map(|(name, value)| format!("&{name}={}", encode(value)))
        .collect();
    Some(
        links
            .into_iter()
            .map(|(rel, at)| format!("<{url}?limit={limit}&offset={at}{carried}>; rel=\"{rel}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::super::query::parse_query;
    use super::*;

    fn request(query: &str) -> PageRequest {
        let uri: Uri = format!("/users?{query}").parse().unwrap();
        PageRequest::from_query(parse_query(&uri).unwrap(), &["dateLastModified", "role"]).unwrap()
    }

    #[test]
    fn links_keep_the_filter_and_name_first_prev_next_and_last() {
        let request = request("limit=5&offset=2&filter=dateLastModified%3E%3D%272026-11-01%27");
        let header = link_header(
            "https://api.example.no/ims/oneroster/v1p1/users",
            &request,
            9,
        )
        .unwrap();
        let filter = "filter=dateLastModified%3E%3D%272026-11-01%27";
        let url = "https://api.example.no/ims/oneroster/v1p1/users";
        assert_eq!(
            header,
            format!(
                "<{url}?limit=5&offset=0&{filter}>; rel=\"first\", \
                 <{url}?limit=5&offset=0&{filter}>; rel=\"prev\", \
                 <{url}?limit=5&offset=7&{filter}>; rel=\"next\", \
                 <{url}?limit=5&offset=5&{filter}>; rel=\"last\""
            )
        );
    }

    #[test]
    fn one_page_needs_no_links_and_the_last_page_has_no_next() {
        assert_eq!(link_header("http://h/u", &request("limit=5"), 5), None);
        assert_eq!(link_header("http://h/u", &request("limit=5"), 0), None);
        let last = link_header("http://h/u", &request("limit=5&offset=5"), 9).unwrap();
        assert!(!last.contains("rel=\"next\""));
        assert!(last.contains("<http://h/u?limit=5&offset=0>; rel=\"prev\""));
        assert!(last.contains("<http://h/u?limit=5&offset=5>; rel=\"last\""));
    }

    #[test]
    fn a_public_url_is_an_http_base_without_query_user_or_odd_characters() {
        for (text, parsed) in [
            ("https://api.example.no", Some("https://api.example.no")),
            ("https://api.example.no/", Some("https://api.example.no")),
            ("http://127.0.0.1:8081", Some("http://127.0.0.1:8081")),
            (
                "https://example.no/skolebro/",
                Some("https://example.no/skolebro"),
            ),
        ] {
            assert_eq!(
                PublicUrl::parse(text).as_ref().map(PublicUrl::as_str),
                parsed,
                "{text}"
            );
        }
        for bad in [
            "",
            "api.example.no",
            "ftp://api.example.no",
            "https://",
            "https://user@api.example.no",
            "https://api.example.no/x?y=1",
            "https://api.example.no/x#y",
            "https://api.example.no//x",
            "https://api.example.no/a b",
        ] {
            assert_eq!(PublicUrl::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn references_get_absolute_hrefs_and_other_strings_stay() {
        let mut object = serde_json::json!({
            "sourcedId": "u1",
            "href": "not a reference",
            "orgs": [{"href": format!("{BASE}/orgs/s1"), "sourcedId": "s1", "type": "org"}],
            "school": {"href": format!("{BASE}/orgs/s1"), "sourcedId": "s1", "type": "org"},
            "metadata": {"note": format!("{BASE}/orgs/s1")},
        });
        absolute_hrefs(&mut object, "https://api.example.no");
        let url = format!("https://api.example.no{BASE}/orgs/s1");
        assert_eq!(object["orgs"][0]["href"], url.as_str());
        assert_eq!(object["school"]["href"], url.as_str());
        assert_eq!(object["href"], "not a reference");
        assert_eq!(object["metadata"]["note"], format!("{BASE}/orgs/s1"));
    }

    #[test]
    fn the_origin_is_the_host_asked_for_and_nothing_else() {
        let uri = Uri::from_static("/ims/oneroster/v1p1/users");
        let origin_of = |host: &str, proto: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            if let Some(proto) = proto {
                headers.insert("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
            }
            origin(&headers, &uri)
        };
        assert_eq!(
            origin_of("127.0.0.1:8081", None).as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            origin_of("api.example.no", Some("https")).as_deref(),
            Some("https://api.example.no")
        );
        assert_eq!(
            origin_of("[::1]:8081", Some("gopher")).as_deref(),
            Some("http://[::1]:8081")
        );
        for bad in [
            "",
            "evil.example/x",
            "a b",
            "user@host",
            "host:port",
            "h:123456",
            "[]",
        ] {
            assert_eq!(origin_of(bad, None), None, "{bad}");
        }
    }
}
