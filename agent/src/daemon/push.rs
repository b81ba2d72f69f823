//! The push loop of the running phase: it takes the oldest unacknowledged batch from
//! [`Core`]'s outbox, posts it with the uplink ([`Central::post_batch`]) and hands central's
//! answer back to the core (an ack moves the outbox's ack pointer, a gap restarts the chain
//! with a snapshot). Failures never drop data: a batch stays until central acknowledges it,
//! and busy or unreachable central is retried with the uplink's [`Backoff`].

use skolebro_protocol::envelope::ChainHead;
use tokio::sync::{mpsc, watch};

#[cfg(doc)]
use super::core::Core;
use super::core::{with_core, Shared};
use crate::uplink::{random_u64, Backoff, BatchAnswer, Central};
use std::time::Duration;

/// Pushes the outbox to central until shutdown: one batch at a time, in seq order, always
/// the oldest unacknowledged one (so a restart simply resumes). `wake` is poked whenever a
/// batch was enqueued.
pub(super) async fn push_loop(
    core: Shared,
    central: Central,
    mut backoff: Backoff,
    mut wake: mpsc::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The head we last restarted at, to notice central repeating the same gap.
    let mut last_gap: Option<ChainHead> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = with_core(&core, |c| c.next_batch()).await;
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                tokio::select! {
                    _ = wake.recv() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            Err(error) => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(%error, ?delay, "cannot read the next batch from the outbox");
                if !pause(delay, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let seq = batch.seq;
        let size = batch.payload.len();
        // The post is not raced against shutdown: a request in flight finishes (it is
        // bounded by the client's timeout) so the ack is not lost with the process.
        let answer = central.post_batch(batch.payload).await;
        match answer {
            BatchAnswer::Ack {
                seq: acked,
                applied,
            } => {
                tracing::info!(seq, acked, applied, bytes = size, "central acknowledged");
                backoff.reset();
                last_gap = None;
                let result = with_core(&core, move |c| c.acked(acked)).await;
                if let Err(error) = result {
                    tracing::error!(%error, "recording the ack failed");
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
            BatchAnswer::Gap { head } => {
                tracing::warn!(
                    seq,
                    expected = head.next_seq.0,
                    "central reports a gap: restarting the chain at central's head with a snapshot"
                );
                if last_gap == Some(head) {
                    // The same gap right after restarting there: do not spin.
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
                last_gap = Some(head);
                let result = with_core(&core, move |c| c.gap(head)).await;
                if let Err(error) = result {
                    tracing::error!(%error, "restarting the chain failed");
                    let delay = backoff.next_delay(None, random_u64());
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
            BatchAnswer::Refused { status, code } => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(seq, status, code = %code, ?delay, "central refused the batch; keeping it");
                let message = format!("central refused batch {seq}: {status} {code}");
                with_core(&core, move |c| c.uplink_refused(message)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            BatchAnswer::Revoked => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::error!(
                    seq,
                    ?delay,
                    "central revoked this device; a new config stick enrolls it again"
                );
                with_core(&core, |c| c.revoked()).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            BatchAnswer::Unavailable {
                status,
                retry_after,
            } => {
                let delay = backoff.next_delay(retry_after, random_u64());
                tracing::warn!(
                    seq,
                    status,
                    retry_after_s = retry_after.map_or(0, |d| d.as_secs()),
                    ?delay,
                    "central unavailable; retrying"
                );
                let message = format!("central answered {status}");
                with_core(&core, move |c| c.unreachable(message)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
            BatchAnswer::Unreachable(error) => {
                let delay = backoff.next_delay(None, random_u64());
                tracing::warn!(seq, %error, ?delay, "central unreachable; retrying");
                with_core(&core, move |c| c.unreachable(error)).await;
                if !pause(delay, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `delay`, or less if shutdown is asked for. Returns false on shutdown.
async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// The uplink against a small mutual-TLS server on loopback (rustls on std threads, built
/// from `skolebro_provisioning`'s dev PKI) that scripts central's answers: a 503 with
/// `Retry-After`, an ack, a gap, and the ack of the snapshot sent after the gap.
#[cfg(test)]
mod tls_tests {
    use parking_lot::Mutex;
    use std::io::Write as _;
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use skolebro_protocol::envelope::{
        DeviceId, DeviceSigningKey, Envelope, Kind, SealingPrivateKey, SiteId,
    };
    use skolebro_protocol::SiteSecret;
    use skolebro_provisioning::pki::{DevPki, Validity};
    use skolebro_provisioning::tls;
    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::config::AfterIngest;
    use crate::daemon::Core;
    use crate::enqueue::tests::export;
    use crate::enqueue::{Enqueuer, Identity};
    use crate::outbox::OutboxConfig;
    use crate::status::RunState;
    use skolebro_roster::safety::SafetyPolicy;

    /// What the scripted central saw: (seq, kind, status answered).
    type Seen = Arc<Mutex<Vec<(u64, Kind, u16)>>>;

    fn serve(config: Arc<rustls::ServerConfig>) -> (u16, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut central_head: Option<ChainHead> = None;
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let Some(body) = read_request(&mut stream) else {
                    continue;
                };
                let Ok(envelope) = Envelope::from_bytes(&body, 1 << 24) else {
                    continue;
                };
                let header = envelope.header().clone();
                let mut log = log.lock();
                let first = log.is_empty();
                let (status, extra, answer) = match (header.seq.0, header.kind) {
                    _ if first => (503, "retry-after: 1\r\n", String::new()),
                    (1, _) => {
                        central_head = Some(envelope.next_head());
                        (200, "", r#"{"ack": 1, "applied": true}"#.to_owned())
                    }
                    (2, Kind::Delta) => {
                        let head = central_head.unwrap_or(ChainHead::genesis());
                        (
                            409,
                            "",
                            format!(
                                r#"{{"error": "gap", "expected_seq": {}, "prev": "{}"}}"#,
                                head.next_seq.0,
                                hex::encode(head.prev)
                            ),
                        )
                    }
                    (2, Kind::Snapshot) if Some(header.prev) == central_head.map(|h| h.prev) => {
                        (200, "", r#"{"ack": 2, "applied": true}"#.to_owned())
                    }
                    _ => (400, "", r#"{"error": "broken_chain"}"#.to_owned()),
                };
                log.push((header.seq.0, header.kind, status));
                drop(log);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes());
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        (port, seen)
    }

    fn read_request(stream: &mut impl std::io::Read) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        while data.len() < head_end + len {
            let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&chunk[..n]);
        }
        Some(data[head_end..head_end + len].to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_uplink_retries_a_busy_central_pushes_in_order_and_answers_a_gap_with_a_snapshot() {
        let validity = Validity::from_now(Duration::from_secs(24 * 3600));
        let pki = DevPki::generate(validity).unwrap();
        let device = DeviceId::new("pi-46505-1").unwrap();
        let site = SiteId::new("46505").unwrap();
        let creds = pki
            .device_ca
            .issue_device(&device, &site, validity)
            .unwrap();
        let server = tls::server_config(
            &pki.server.cert_pem,
            &pki.server.key_pem,
            pki.device_ca.cert_pem(),
        )
        .unwrap();
        let (port, seen) = serve(server);
        let client = tls::client_builder(
            &creds.cert_pem,
            &creds.key_pem,
            pki.central_ca.cert_pem(),
            None,
        )
        .unwrap()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
        let central = Central::new(client, &format!("https://127.0.0.1:{port}/"));

        let dir = tempfile::tempdir().unwrap();
        let identity = Identity {
            device,
            site,
            signing_key: DeviceSigningKey::from_bytes([7; 32]),
            central_key: SealingPrivateKey::from_bytes([9; 32]).public_key(),
            site_secret: SiteSecret::from_bytes([3; 32]),
        };
        let (enqueuer, _) = Enqueuer::open(
            dir.path(),
            identity,
            SafetyPolicy::default(),
            OutboxConfig::default(),
        )
        .unwrap();
        let (status_tx, status_rx) = watch::channel(Default::default());
        let mut core = Core::new(
            enqueuer,
            dir.path().to_owned(),
            AfterIngest::Keep,
            status_tx,
        );
        for n in 30..33 {
            core.ingest(Path::new("elever.csv"), export(0..n, "1A"), None)
                .unwrap();
        }
        assert_eq!(core.enqueuer().outbox().status().depth, 3);
        let core: Shared = Arc::new(Mutex::new(core));

        let (_wake_tx, wake_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = watch::channel(false);
        let backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(50));
        let pusher = tokio::spawn(push_loop(core.clone(), central, backoff, wake_rx, stop_rx));

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = {
                let core = core.lock();
                let outbox = core.enqueuer().outbox().status();
                outbox.ack_seq == 2 && outbox.depth == 0
            };
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "seen: {:?}", seen.lock());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        pusher.await.unwrap();

        assert_eq!(
            *seen.lock(),
            [
                (1, Kind::Delta, 503),
                (1, Kind::Delta, 200),
                (2, Kind::Delta, 409),
                (2, Kind::Snapshot, 200),
            ]
        );
        let core = core.lock();
        let checkpoint = core.enqueuer().checkpoint();
        assert_eq!(checkpoint.head.next_seq.0, 3);
        assert!(!checkpoint.needs_snapshot);
        let status = status_rx.borrow().clone();
        assert_eq!(status.state, RunState::Healthy);
        assert_eq!(status.last_ack_seq, Some(2));
        assert_eq!(status.unreachable_since_unix_ms, None);
    }
}
