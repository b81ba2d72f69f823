//! The web interface's HTML: the page frame with its style and hardening headers, the
//! redirect after a POST, and the small words and numbers pages share. Pages are `maud`
//! templates: checked when central is compiled, and every value they show is escaped by
//! the template itself, so no page escapes by hand.

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::text::{current, Lang};

/// Escapes a path segment for a link: ids are restricted to URL-safe characters already,
/// but anything else is percent-encoded rather than trusted. The template escapes the
/// result again for its attribute.
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

/// The link to page `page` of a list at `path`, keeping its filters: each given, non-empty
/// value as `name=value`, percent-encoded, so paging never drops what the person asked for.
pub(crate) fn paged_link(path: &str, filters: &[(&str, Option<&str>)], page: u32) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .filter_map(|(name, value)| {
            value
                .filter(|v| !v.is_empty())
                .map(|v| format!("{name}={}", escape_path(v)))
        })
        .collect();
    parts.push(format!("page={page}"));
    format!("{path}?{}", parts.join("&"))
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

/// The link to the other language, back to `here` once chosen.
fn language_link(lang: Lang, here: &str) -> Markup {
    let (code, words) = match lang {
        Lang::Nb => ("en", "English"),
        Lang::English => ("nb", "Norsk (bokmål)"),
    };
    let other = Lang::from_code(code).unwrap_or_default();
    html! {
        a href={ "/language?to=" (code) "&back=" (escape_path(here)) } lang=(other.code())
            hreflang=(other.code()) { (words) }
    }
}

/// A full HTML page in the request's language. `nav` is the signed-in operator's menu,
/// empty on the login page; `here` is the page's path, for the language link to come
/// back to.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    nav: Markup,
    here: &str,
    body: Markup,
) -> Response {
    let lang = current();
    let html = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · skolebro" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { (lang.t("Hopp til innholdet", "Skip to the content")) }
                header {
                    strong { "skolebro" } " " (nav) " " (language_link(lang, here))
                }
                main #main { h1 { (title) } (body) }
            }
        }
    };
    let mut response = (status, html.into_string()).into_response();
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

/// A file to download (`Content-Disposition: attachment`) with the headers every page
/// carries: what the privacy page's and a site's exports answer.
pub(crate) fn download(filename: &str, content_type: &'static str, bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    hardened(response)
}

/// Plain, readable, printable; no external resources. It holds on a phone (390 px) without
/// the page scrolling sideways: the header and its menu wrap between whole labels (each link a touch target at
/// least 24 px tall), a wide
/// table scrolls inside its own box (a block with `overflow-x`, as its rows keep their table
/// layout inside it; the table is focusable so a keyboard can scroll it too), and fields
/// never grow wider than the screen.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}\
header{background:#0b3d5c;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;\
align-items:center;gap:.2em 1.2em}header a{color:#fff;display:inline-block;padding:.3em 0}\
header form{display:inline}\
nav ul{display:flex;flex-wrap:wrap;gap:.2em 1em;list-style:none;margin:0;padding:0}\
header a,header span,nav li,td:first-child{white-space:nowrap}\
main{padding:1em 1.5em;max-width:80em;overflow-wrap:break-word}\
table{border-collapse:collapse;margin:.5em 0 1.5em;display:block;overflow-x:auto;\
width:max-content;max-width:100%}caption{text-align:left;font-weight:bold;padding:.2em 0}\
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#eef2f5}table:focus-visible{outline:2px solid #0b3d5c}\
.ok{color:#176b1b}.warn{color:#8a5300}.bad{color:#a11}.note{color:#555}\
form.inline{display:inline}input[type=text],input[type=password]{padding:.3em}\
input,select,button{max-width:100%;box-sizing:border-box}button{padding:.3em .8em;margin:.2em}\
.skip{position:absolute;left:-999em}.skip:focus{left:1em;top:.5em;background:#fff;padding:.3em}\
figure.chart{margin:.5em 0 1.5em;max-width:40em}svg.chart{width:100%;height:auto;font-size:9px}\
svg.chart text{fill:#333}svg.chart .axis{stroke:#888}svg.chart .bar{fill:#0b3d5c}\
svg.chart .bar.held,svg.chart .held-mark{fill:#c77800}svg.chart .bar.late,svg.chart .late-mark,\
svg.chart .bar.error{fill:#a11}.held-key{color:#c77800}.late-key{color:#a11}\
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\
@media (max-width:40em){header{padding:.5em .8em}main{padding:.8em}}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_markup_and_quotes_and_paths_are_percent_encoded() {
        let evil = r#"<script>alert("x") & 'y'</script>"#;
        let markup = html! { p title=(evil) { (evil) } }.into_string();
        assert_eq!(
            markup,
            "<p title=\"&lt;script&gt;alert(&quot;x&quot;) &amp; 'y'&lt;/script&gt;\">\
             &lt;script&gt;alert(&quot;x&quot;) &amp; 'y'&lt;/script&gt;</p>"
        );
        assert_eq!(escape_path("pi-1.a_b"), "pi-1.a_b");
        assert_eq!(escape_path("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn paging_links_keep_the_given_filters_encoded_and_leave_out_empty_ones() {
        let filters = [("q", Some("a b")), ("state", Some("")), ("kommune", None)];
        assert_eq!(paged_link("/fleet", &filters, 2), "/fleet?q=a%20b&page=2");
        assert_eq!(paged_link("/audit", &[], 1), "/audit?page=1");
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
