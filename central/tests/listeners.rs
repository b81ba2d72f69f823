//! Central's plain HTTP listeners (operator, consumer, web interface) against hostile
//! neighbours. Clients that hold connections without finishing a request (silent, dripping
//! headers, idle after a request, dripping a body, more connections than the cap) must be
//! closed by central, not left open for as long as the client likes (the device listener's
//! own cap too, counted on `/metrics`): central runs in
//! process with short timeouts from [`HttpLimits`], and every wait is bounded, so a listener
//! that never closes fails the test instead of hanging it. And the operator listener must
//! refuse what a browser on central's host sends for another site: a cross-site form post,
//! a request under a DNS-rebound name; and any request without a good operator token.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::CentralOptions;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use skolebro_central::{operator_auth, HttpLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Longest a test waits for central to close a connection: far beyond the one-second
/// timeouts configured here, far below the 30 s defaults and the "never" of a listener
/// without timeouts.
const BOUND: Duration = Duration::from_secs(15);

/// Reads until central closes the connection and returns what it sent; panics if the
/// connection is still open after [`BOUND`].
async fn closed_by_central(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the connection is still open after {BOUND:?}"
    );
    received
}

fn short_limits(max_connections: usize) -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        body_idle_timeout: Duration::from_secs(1),
        max_connections,
        max_device_connections: max_connections,
    }
}

#[tokio::test]
async fn silent_dripping_and_idle_connections_are_closed_on_every_plain_listener() {
    let central = CentralOptions {
        consumer_listener: true,
        ui: true,
        http_limits: short_limits(64),
        ..CentralOptions::default()
    }
    .start()
    .await;
    let running = &central.running;
    let listeners: [(&str, SocketAddr); 3] = [
        ("operator", running.admin_addr),
        (
            "consumer",
            running.consumer_addr.expect("a consumer listener"),
        ),
        ("web interface", running.ui_addr.expect("a web interface")),
    ];
    for (name, addr) in listeners {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut dripping = TcpStream::connect(addr).await.unwrap();
        dripping
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        assert!(
            closed_by_central(&mut silent, &format!("{name}, silent"))
                .await
                .is_empty(),
            "{name}: nothing is answered to a client that sent nothing"
        );
        closed_by_central(&mut dripping, &format!("{name}, dripping headers")).await;
        let answer = closed_by_central(&mut idle, &format!("{name}, idle after a request")).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{name}: the complete request was answered before the idle connection was closed"
        );
    }
    central.stop().await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_ends_the_connection() {
    let central = CentralOptions {
        consumer_listener: true,
        http_limits: short_limits(64),
        ..CentralOptions::default()
    }
    .start()
    .await;
    let addr = central.running.consumer_addr.expect("a consumer listener");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n\
              grant_type=client_cre",
        )
        .await
        .unwrap();
    closed_by_central(&mut stream, "consumer, dripping body").await;
    central.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_a_freed_slot_serves_again() {
    let central = CentralOptions {
        http_limits: HttpLimits {
            // Long enough that only the cap can close the third connection within BOUND.
            header_read_timeout: Duration::from_secs(120),
            body_idle_timeout: Duration::from_secs(120),
            max_connections: 2,
            ..HttpLimits::default()
        },
        ..CentralOptions::default()
    }
    .start()
    .await;
    let addr = central.running.admin_addr;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_central(&mut third, "the third connection over a cap of two")
            .await
            .is_empty(),
        "the third connection is closed unanswered"
    );
    drop(first);
    // Central frees the slot once it notices the first connection closed: ask until a
    // request is answered, within the bound.
    let served = tokio::time::timeout(BOUND, async {
        loop {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(
                    b"GET /admin/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "a freed slot serves a new connection");
    central.stop().await;
}

#[tokio::test]
async fn device_connections_over_their_cap_are_closed_and_counted_as_full() {
    let central = CentralOptions {
        http_limits: HttpLimits {
            max_device_connections: 2,
            ..HttpLimits::default()
        },
        ..CentralOptions::default()
    }
    .start()
    .await;
    let addr = central.running.device_addr;
    // Two connections that never start their handshake hold both slots for the handshake
    // timeout (15 s), longer than this test needs.
    let _first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_central(&mut third, "the third device connection over a cap of two")
            .await
            .is_empty(),
        "the third connection is closed before any TLS byte"
    );
    let metrics = reqwest::Client::new()
        .get(central.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("skolebro_tls_handshake_failures_total{reason=\"full\"} 1"),
        "the refusal is counted as a full listener:\n{metrics}"
    );
    central.stop().await;
}

/// Sends `request` as written to `addr` and returns the status code of the answer.
async fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = closed_by_central(&mut stream, "a request with Connection: close").await;
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"))
}

#[tokio::test]
async fn the_operator_api_refuses_cross_site_posts_and_rebound_host_names() {
    let central = CentralOptions::default().start().await;
    let token_hash = hex::encode(Sha256::digest(b"a stick's token"));
    let registered = central
        .admin
        .post(central.admin_url("/admin/tokens"))
        .json(&json!({
            "token_sha256": token_hash,
            "site": "4601-12345",
            "site_name": "Bjølsen skole",
            "expires_unix": 4_000_000_000u64,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let id = registered.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // What a page on another site makes the operator's browser send: a form post.
    let forged = central
        .admin
        .post(central.admin_url(&format!("/admin/tokens/{id}/revoke")))
        .header("Origin", "http://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"], "cross_origin");

    // A page whose own name was rebound to 127.0.0.1 reads under that name.
    let addr = central.running.admin_addr;
    let rebound = format!(
        "GET /admin/tokens HTTP/1.1\r\nHost: rebound.example:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    assert_eq!(raw_status(addr, &rebound).await, 400);
    let nameless = "GET /admin/tokens HTTP/1.0\r\n\r\n";
    assert_eq!(raw_status(addr, nameless).await, 400);
    let by_name = format!(
        "GET /admin/tokens HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        addr.port(),
        central.operator_token
    );
    assert_eq!(raw_status(addr, &by_name).await, 200);

    let tokens: Value = central
        .admin
        .get(central.admin_url("/admin/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(
        tokens[0]["revoked"], false,
        "the forged post changed nothing"
    );
    central.stop().await;
}

#[tokio::test]
async fn the_operator_api_refuses_a_missing_revoked_or_wrong_token_and_changes_nothing() {
    let central = CentralOptions::default().start().await;
    let store = central.store.as_ref();
    let registered = central
        .admin
        .post(central.admin_url("/admin/tokens"))
        .json(&json!({
            "token_sha256": hex::encode(Sha256::digest(b"a stick's token")),
            "site": "4601-12345",
            "site_name": "Bjølsen skole",
            "expires_unix": 4_000_000_000u64,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let id = registered.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = operator_auth::create(store, "cli:tests", "old-script")
        .await
        .unwrap();
    operator_auth::revoke(store, "cli:tests", "old-script")
        .await
        .unwrap();
    let audit_before = store.audit_log(100).await.unwrap();

    let revoke_url = central.admin_url(&format!("/admin/tokens/{id}/revoke"));
    let wrong = "0123456789abcdef".repeat(4);
    for (what, authorization) in [
        ("no token", None),
        (
            "a revoked token",
            Some(format!("Bearer {}", revoked.reveal())),
        ),
        ("a wrong token", Some(format!("Bearer {wrong}"))),
        (
            "a token that is no hex",
            Some("Bearer not-a-token".to_owned()),
        ),
        (
            "another scheme",
            Some(format!("Basic {}", central.operator_token)),
        ),
    ] {
        for request in [
            central.http.post(&revoke_url),
            central.http.get(central.admin_url("/admin/tokens")),
            central
                .http
                .get(central.admin_url("/v1/sites/4601-12345/roster")),
        ] {
            let request = match &authorization {
                Some(value) => request.header("Authorization", value),
                None => request,
            };
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert!(answer.headers().contains_key("www-authenticate"), "{what}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["error"], "operator_token_required", "{what}");
        }
    }
    let tokens = store.list_tokens().await.unwrap();
    assert!(!tokens[0].revoked, "no refused request revoked the token");
    assert_eq!(
        store.audit_log(100).await.unwrap(),
        audit_before,
        "no refused request wrote to the audit log"
    );

    // Monitoring stays open: a balancer's health check carries no token.
    let health = central
        .http
        .get(central.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // The good token acts, and the audit log names its client.
    let answer = central.admin.post(&revoke_url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let line = store.audit_log(1).await.unwrap().remove(0);
    assert_eq!(
        (
            line.actor.as_str(),
            line.action.as_str(),
            line.target.as_str()
        ),
        ("api:tests", "revoke_token", id.as_str())
    );
    central.stop().await;
}

#[tokio::test]
async fn operator_tokens_are_stored_only_as_their_sha256() {
    let central = CentralOptions::default().start().await;
    let db = rusqlite::Connection::open(central.dir.path().join("central.db")).unwrap();
    let rows: Vec<(String, Vec<u8>)> = db
        .prepare("SELECT name, token_sha256 FROM operator_tokens")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [(
            common::OPERATOR_CLIENT.to_owned(),
            Sha256::digest(central.operator_token.as_bytes()).to_vec()
        )]
    );
    let dump: Vec<String> = db
        .prepare("SELECT quote(name) || quote(token_sha256) || quote(created) FROM operator_tokens")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        dump.iter()
            .all(|row| !row.to_ascii_lowercase().contains(&central.operator_token)),
        "the token is not in the database in clear: {dump:?}"
    );
    central.stop().await;
}
