//! The operator listener's door: every request passes here before a handler. The operator
//! API is for scripts and `skolebro-provision` on central's own host, never for browsers,
//! yet a browser on that host can reach loopback: a page elsewhere can post a form to it
//! (cross-site request forgery: a token revoked), or have its own name resolve to 127.0.0.1
//! (DNS rebinding: full national ids read from `/v1/sites/{id}/roster`). So a request must
//! name the listener itself in `Host` (an IP literal or `localhost`, with the listener's
//! port), which a rebound name never does, and must carry no `Origin` and no cross-site
//! `Sec-Fetch-Site`, which every browser sends with a cross-site form post or fetch.
//! [`crate::server`] also refuses to bind the listener anywhere but loopback.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::api::error::ApiError;

/// Serves `request` only if it names the listener bound at `listen` and no browser sent it
/// from another site; otherwise `400 invalid_host` or `403 cross_origin`.
pub(crate) async fn same_host_only(
    State(listen): State<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(request.headers(), listen) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

/// Why a request with these headers may not reach the operator API, if it may not.
fn refusal(headers: &HeaderMap, listen: SocketAddr) -> Option<ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    if !host.is_some_and(|host| names_listener(host, listen)) {
        return Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_host",
            "the Host header must name this listener: localhost or its address, with its port",
        ));
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|value| !matches!(value.as_bytes(), b"none" | b"same-origin"));
    if headers.contains_key(header::ORIGIN) || cross_site {
        return Some(ApiError::forbidden(
            "cross_origin",
            "the operator API does not serve requests a web page sends",
        ));
    }
    None
}

/// Whether a `Host` value names the listener at `listen`: `localhost`, a loopback address
/// or the bound address, with the bound port (port 80 may be left out, as HTTP allows).
fn names_listener(host: &str, listen: SocketAddr) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((inner, rest)) => (inner, rest),
            None => return false,
        },
        None => match host.rfind(':') {
            Some(at) => (&host[..at], &host[at..]),
            None => (host, ""),
        },
    };
    let port = match port {
        "" => Some(80),
        rest => rest.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()),
    };
    if port != Some(listen.port()) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == listen.ip())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_listener_is_named_by_localhost_or_a_loopback_address_with_its_port() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LocalHost:8080",
            "[::1]:8080",
            "127.0.0.2:8080",
        ] {
            assert!(names_listener(host, listen()), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost.evil.example:8080",
            "[::1",
            "127.0.0.1:80:8080",
            "",
        ] {
            assert!(!names_listener(host, listen()), "{host}");
        }
        assert!(names_listener("localhost", "127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn a_rebound_name_or_a_browser_from_another_site_is_refused() {
        let ok = headers(&[("host", "127.0.0.1:8080")]);
        assert!(refusal(&ok, listen()).is_none());
        let scripted = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "none")]);
        assert!(refusal(&scripted, listen()).is_none());
        for bad in [
            headers(&[]),
            headers(&[("host", "rebound.example:8080")]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]),
        ] {
            assert!(refusal(&bad, listen()).is_some(), "{bad:?}");
        }
    }
}
