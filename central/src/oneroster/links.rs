//! The `Link` header of a OneRoster list answer (RFC 8288): `first`, `prev`, `next` and
//! `last` as absolute URLs that repeat every parameter of the request but `offset`, so a
//! client that follows `next` keeps its filter, sort and field selection. The origin comes
//! from the request's `Host` (checked to be a host name or address with an optional port)
//! and `X-Forwarded-Proto` (only `http` or `https`), which the TLS-terminating proxy in
//! front of the listener sets. Pure: the handler passes the headers in.

use axum::http::{header, HeaderMap, Uri};

use super::query::PageRequest;

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
