//! The web interface's HTML: the page frame with its style and hardening headers, the
//! redirect after a POST, escaping, and the small words and numbers pages share. Every value
//! a page shows goes through [`escape`] or [`escape_path`].

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `one` or `more`, as `n` asks: pages count things in words ("1 error", "2 errors").
pub(crate) fn plural(n: u64, one: &'static str, more: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        more
    }
}

/// Escapes text for HTML element content and quoted attribute values. Every value a page
/// shows goes through here, ids included: an id is checked, but a page must not depend on it.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a link: ids are restricted to URL-safe characters already,
/// but anything else is percent-encoded rather than trusted.
pub(crate) fn escape_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A size in bytes as people read it ("12.4 KiB"): operators compare transfers and
/// artifacts by magnitude, not by the byte.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The headers every page carries: no caching of personal views, no framing, no scripts,
/// forms only to this origin.
fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A full HTML page: `body` is already escaped HTML. `nav` is the signed-in operator's menu,
/// empty on the login page.
pub(crate) fn page(status: StatusCode, title: &str, nav: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · skolebro</title><style>{STYLE}</style></head>\
         <body><header><strong>skolebro</strong> {nav}</header><main><h1>{title}</h1>\
         {body}</main></body></html>\n",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    hardened(response)
}

/// 303 to `location` (a path of this interface): the answer to every successful POST, so a
/// reload does not repeat the action.
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    hardened(response)
}

/// Plain, readable, printable; no external resources.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}\
header{background:#0b3d5c;color:#fff;padding:.6em 1em}header a{color:#fff;margin-left:1em}\
header form{display:inline;margin-left:1em}main{padding:1em 1.5em;max-width:80em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #bbb;\
padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eef2f5}\
.ok{color:#176b1b}.warn{color:#8a5300}.bad{color:#a11}.note{color:#555}\
form.inline{display:inline}input[type=text],input[type=password]{padding:.3em}\
button{padding:.3em .8em;margin:.2em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape_path("pi-1.a_b"), "pi-1.a_b");
        assert_eq!(escape_path("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(12_700), "12.4 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
