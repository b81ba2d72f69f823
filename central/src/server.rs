//! Central's listeners, started in-process and wired to their routers: the device listener
//! (mutual TLS, `api::device`), the operator listener (plain HTTP on loopback,
//! `api::operator`) and, if configured, the consumer listener (plain HTTP, `api::consumer`)
//! and the operator web interface (plain HTTP, `ui`). The handlers' shared state is built
//! here from [`ServerParts`] (`crate::state`); this module holds no handler.
//!
//! In the data flow this is where an agent's uplink arrives: TCP -> TLS handshake, in which
//! a client certificate, if presented, must come from the device CA -> the certificate's
//! [`DeviceIdentity`], checked against the store's revocation once per connection -> HTTP/1.1
//! with the caller attached to every request of the connection -> the handlers, which check
//! the envelope against it and apply it to the [`Store`]. A connection without a certificate
//! may only enroll; every other request of it is answered 401, and every
//! request of a revoked device's connection 403. A connection whose handshake fails is
//! closed and logged at debug level only: scanners and misconfigured clients are not
//! central's incidents.
//!
//! [`serve`] takes ready-made [`ServerParts`] rather than a configuration file, so the
//! `serve` command, the quickstart (`skolebro-demo`) and the tests all start the same
//! server; with port 0 the bound addresses come back in [`RunningServer`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use skolebro_protocol::SealingPrivateKey;
use skolebro_provisioning::{DeviceIdentity, ServerOptions, TlsError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::api::device::{PeerAddr, ENROLL_PATH};
use crate::api::error::ApiError;
use crate::enroll::EnrollSettings;
use crate::metrics::Handshake;
use crate::oneroster::PublicUrl;
use crate::release::ReleaseSettings;
use crate::state::{AppState, UiSettings, UiState};
use crate::store::Store;

/// How long a client may take to finish the TLS handshake: a slow or stalled handshake holds
/// a connection slot, so it is cut off rather than waited for.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a client may take to send a request's headers once the connection is idle or
/// new (slowloris protection; an idle keep-alive connection is closed after this too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many device connections at once by default; more are closed right after
/// accept. A device keeps its connection open until [`HEADER_READ_TIMEOUT`] after its last
/// request, so at a 60 s heartbeat about half the fleet holds one at any moment, more while
/// the night's batches arrive: 1,024 refused connections at 3,000 devices on two instances
/// (docs/BENCHMARKS.md). 4,096 idle TLS connections cost about 100 MiB. Configurable as
/// `[http] max_device_connections`.
pub const MAX_DEVICE_CONNECTIONS: usize = 4096;

/// How long a request body may go without a byte arriving before the request fails and the
/// connection is closed: a client dripping a body holds a connection slot like one dripping
/// headers.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many connections at once on each plain HTTP listener (operator, consumer,
/// web interface); more are closed right after accept. Their clients are a few operators and
/// consumer systems, so a full listener is a flood, not load.
pub const MAX_HTTP_CONNECTIONS: usize = 256;

/// How the listeners bound slow, silent and too many clients, which would otherwise hold
/// sockets and memory for as long as they like: the plain HTTP listeners (operator,
/// consumer, web interface) use all but `max_device_connections`; the device listener has
/// its own header timeout ([`HEADER_READ_TIMEOUT`]) and shares the body timeout.
/// Configurable (`[http]` in `central.toml`) so tests can make the timeouts short and a
/// national fleet can have more device connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers on a new connection or an
    /// idle keep-alive one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a request body may go without a byte arriving.
    pub body_idle_timeout: Duration,
    /// Connections at once per plain HTTP listener.
    pub max_connections: usize,
    /// Connections at once on the device listener.
    pub max_device_connections: usize,
}

impl Default for HttpLimits {
    /// [`HEADER_READ_TIMEOUT`], [`BODY_IDLE_TIMEOUT`], [`MAX_HTTP_CONNECTIONS`] and
    /// [`MAX_DEVICE_CONNECTIONS`].
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_idle_timeout: BODY_IDLE_TIMEOUT,
            max_connections: MAX_HTTP_CONNECTIONS,
            max_device_connections: MAX_DEVICE_CONNECTIONS,
        }
    }
}

/// How long shutdown waits for requests in flight (an apply in its transaction) before the
/// remaining connections are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Everything the server needs, already built: no paths, so callers that hold keys and
/// certificates in memory (the demo, tests) need no files.
pub struct ServerParts {
    /// Where devices, chain heads and records live; chosen by the caller.
    pub store: Arc<dyn Store>,
    /// The device listener's TLS configuration, normally from [`device_tls_config`]: client
    /// certificates verified against the device CA, and optional so that devices without
    /// one can enroll. (A configuration that requires one works too, without enrollment.)
    pub tls: Arc<rustls::ServerConfig>,
    /// Central's HPKE private key, to open the envelopes agents sealed to its public key.
    pub sealing_key: SealingPrivateKey,
    /// Address of the device listener; port 0 picks a free port.
    pub device_listen: SocketAddr,
    /// Address of the operator listener; port 0 picks a free port. Loopback only: the
    /// operator API speaks plain HTTP (its clients' bearer tokens, `crate::operator_auth`,
    /// would cross the network in clear), so [`serve`] refuses any other address.
    pub admin_listen: SocketAddr,
    /// Address of the consumer listener (OneRoster and its OAuth2 token endpoint), or `None`
    /// for no consumer listener. Plain HTTP: beyond loopback, put a TLS-terminating proxy in
    /// front of it.
    pub consumer_listen: Option<SocketAddr>,
    /// The URL consumers reach the consumer listener by, behind its proxy: the base of the
    /// OneRoster paging links and `href`s. `None` builds them from each request's checked
    /// `Host` header, which a proxy that rewrites `Host` would make wrong.
    pub consumer_public_url: Option<PublicUrl>,
    /// The operator web interface's listener and cookie settings, or `None` for no web
    /// interface. Plain HTTP: beyond loopback, put a TLS-terminating proxy in front of it.
    pub ui: Option<UiSettings>,
    /// Timeouts and the connection cap of the plain HTTP listeners.
    pub http_limits: HttpLimits,
    /// Largest envelope accepted; anything larger is refused with 413.
    pub max_batch_bytes: usize,
    /// The device CA and limits for `/v1/enroll` and `/v1/renew`.
    pub enroll: EnrollSettings,
    /// The release key and the folder of release artifacts (DESIGN decision 7).
    pub releases: ReleaseSettings,
    /// `[privacy]`'s retention: what a closed window's frozen file can still be built from.
    pub retention: crate::retention::RetentionPolicy,
}

/// The device listener's rustls configuration: TLS 1.3, the server chain and key, client
/// certificates verified against the device CA and carrying a device identity, but not
/// required, because a device enrolls before it has one. The server answers every request
/// of a connection without one, except enrollment, with 401.
pub fn device_tls_config(
    server_cert_chain_pem: &str,
    server_key_pem: &str,
    device_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    skolebro_provisioning::tls::server_config_with(
        server_cert_chain_pem,
        server_key_pem,
        device_ca_pem,
        ServerOptions {
            allow_unauthenticated: true,
            ..ServerOptions::default()
        },
    )
}

impl std::fmt::Debug for ServerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerParts")
            .field("sealing_key", &self.sealing_key)
            .field("device_listen", &self.device_listen)
            .field("admin_listen", &self.admin_listen)
            .field("consumer_listen", &self.consumer_listen)
            .field("consumer_public_url", &self.consumer_public_url)
            .field("ui", &self.ui)
            .field("http_limits", &self.http_limits)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("enroll", &self.enroll)
            .field("releases", &self.releases)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start. Once running it does not fail as a whole: errors stay
/// within one connection or request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind (address in use, no permission for a low port).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `admin_listen` is not a loopback address: the operator API speaks plain HTTP, so its
    /// bearer tokens and every roster it answers would cross the network in clear.
    #[error(
        "admin_listen {0} is not a loopback address: the operator API speaks plain HTTP, so \
         its tokens and rosters would cross the network in clear; it is served on loopback \
         only (127.0.0.1 or ::1). Reach it from elsewhere through SSH or a TLS proxy on this \
         host, still with an operator token"
    )]
    AdminNotLoopback(SocketAddr),
    /// The releases folder could not be created.
    #[error("cannot create the releases folder {path}: {source}")]
    ReleasesDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Who is on a device connection, decided once after the handshake.
#[derive(Debug)]
enum Caller {
    /// No client certificate: may only enroll.
    Anonymous,
    /// A device whose certificate verified and which was not revoked when it connected.
    Device(DeviceIdentity),
    /// A device that operations revoked: every request is refused, and says why.
    Revoked(DeviceIdentity),
    /// The store could not say whether the device is revoked: every request is asked to
    /// come back later.
    Unchecked,
}

impl Caller {
    /// The answer to a request this caller may not make, or `None` to serve it.
    fn refusal(&self, path: &str) -> Option<Response> {
        match self {
            Caller::Device(_) => None,
            Caller::Anonymous if path == ENROLL_PATH => None,
            Caller::Anonymous => Some(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "client_certificate_required",
                "only POST /v1/enroll may be used without a device certificate",
            )),
            Caller::Revoked(identity) => Some(ApiError::forbidden(
                "device_revoked",
                format!("device {} is revoked", identity.device),
            )),
            Caller::Unchecked => Some(ApiError::Unavailable(
                "central cannot check the device's revocation now; try again later".to_owned(),
            )),
        }
        .map(IntoResponse::into_response)
    }
}

/// Stops a running server from anywhere (a signal handler, a test). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Asks both listeners to stop accepting and to finish the requests in flight.
    /// Idempotent.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// A started server: where it listens, and how to stop it.
///
/// Dropping it does not stop the server while a [`ShutdownHandle`] is alive; once the last
/// handle (this one's included) is gone the listeners stop, so a test that forgets to shut
/// down does not leak a server into the next one.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address of the device (mutual TLS) listener.
    pub device_addr: SocketAddr,
    /// The bound address of the operator (plain HTTP) listener.
    pub admin_addr: SocketAddr,
    /// The bound address of the consumer listener, if one was asked for.
    pub consumer_addr: Option<SocketAddr>,
    /// The bound address of the operator web interface, if one was asked for.
    pub ui_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    device_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    consumer_task: Option<JoinHandle<()>>,
    ui_task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// A handle that stops this server, e.g. for a signal handler.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Stops the server gracefully and returns once both listeners have closed (requests in
    /// flight get [`SHUTDOWN_GRACE`] to finish).
    pub async fn shutdown(self) {
        self.shutdown.shutdown();
        self.stopped().await;
    }

    /// Waits until the server has stopped through a [`ShutdownHandle`].
    pub async fn stopped(self) {
        let RunningServer {
            device_task,
            admin_task,
            consumer_task,
            ui_task,
            shutdown,
            ..
        } = self;
        // Keep our sender alive while waiting: dropping it would count as a shutdown.
        let _keep = shutdown;
        for task in [device_task, admin_task]
            .into_iter()
            .chain(consumer_task)
            .chain(ui_task)
        {
            if let Err(error) = task.await {
                tracing::error!(%error, "a listener task failed");
            }
        }
    }
}

/// Binds both listeners and starts serving in the background.
///
/// Returns once both are bound, so the addresses in [`RunningServer`] accept connections
/// immediately. Registers nothing: devices come from enrollment (or `register-device`).
pub async fn serve(parts: ServerParts) -> Result<RunningServer, ServerError> {
    check_admin_listen(parts.admin_listen)?;
    tokio::fs::create_dir_all(&parts.releases.dir)
        .await
        .map_err(|source| ServerError::ReleasesDir {
            path: parts.releases.dir.clone(),
            source,
        })?;
    let device_listener = bind(parts.device_listen).await?;
    let admin_listener = bind(parts.admin_listen).await?;
    let device_addr = local_addr(&device_listener, parts.device_listen)?;
    let admin_addr = local_addr(&admin_listener, parts.admin_listen)?;
    let consumer_listener = match parts.consumer_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let bound = local_addr(&listener, addr)?;
            Some((listener, bound))
        }
        None => None,
    };
    let consumer_addr = consumer_listener.as_ref().map(|(_, bound)| *bound);
    let ui_listener = match parts.ui {
        Some(settings) => {
            let listener = bind(settings.listen).await?;
            let bound = local_addr(&listener, settings.listen)?;
            Some((listener, bound, settings))
        }
        None => None,
    };
    let ui_addr = ui_listener.as_ref().map(|(_, bound, _)| *bound);

    let mut state = AppState::new(
        parts.store,
        parts.sealing_key,
        parts.max_batch_bytes,
        parts.enroll,
        parts.releases,
    );
    state.consumer_public_url = parts.consumer_public_url;
    state.retention = parts.retention;
    let state = Arc::new(state);
    let (sender, receiver) = watch::channel(false);
    let limits = parts.http_limits;
    let device_task = tokio::spawn(run_device_listener(
        device_listener,
        TlsAcceptor::from(parts.tls),
        Arc::clone(&state),
        receiver.clone(),
        limits,
    ));
    let consumer_task = consumer_listener.map(|(listener, _)| {
        tokio::spawn(run_http_listener(
            listener,
            crate::api::consumer::router(Arc::clone(&state)),
            receiver.clone(),
            limits,
            "consumer",
        ))
    });
    let ui_task = ui_listener.map(|(listener, _, settings)| {
        tokio::spawn(run_http_listener(
            listener,
            crate::ui::router(Arc::new(UiState::new(Arc::clone(&state), settings))),
            receiver.clone(),
            limits,
            "web interface",
        ))
    });
    let admin_task = tokio::spawn(run_http_listener(
        admin_listener,
        crate::api::operator::router(state, admin_addr),
        receiver,
        limits,
        "operator",
    ));
    let off = || "off".to_owned();
    tracing::info!(
        %device_addr,
        %admin_addr,
        consumer_addr = %consumer_addr.map_or_else(off, |a| a.to_string()),
        ui_addr = %ui_addr.map_or_else(off, |a| a.to_string()),
        "central is listening"
    );
    Ok(RunningServer {
        device_addr,
        admin_addr,
        consumer_addr,
        ui_addr,
        shutdown: ShutdownHandle(Arc::new(sender)),
        device_task,
        admin_task,
        consumer_task,
        ui_task,
    })
}

/// Refuses an operator listener beyond loopback, before anything is bound.
fn check_admin_listen(addr: SocketAddr) -> Result<(), ServerError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServerError::AdminNotLoopback(addr))
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Resolves once shutdown is asked for, or once every handle is gone.
async fn shutdown_requested(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

async fn run_device_listener(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
) {
    let router = crate::api::device::router(Arc::clone(&state));
    let connection_shutdown = shutdown.clone();
    let full_state = Arc::clone(&state);
    accept_connections(
        listener,
        limits.max_device_connections,
        shutdown,
        "device",
        move || full_state.metrics.handshake(Handshake::Refused),
        move |tcp, peer, permit| {
            let connection = serve_device_connection(
                tcp,
                peer,
                acceptor.clone(),
                Arc::clone(&state),
                router.clone(),
                connection_shutdown.clone(),
                limits.body_idle_timeout,
            );
            async move {
                let _permit = permit;
                connection.await;
            }
        },
    )
    .await;
}

/// Accepts connections until shutdown, at most `max_connections` at once (more are closed
/// right after accept, and `refused` counts each), each served by `serve` on its own task;
/// at shutdown waits [`SHUTDOWN_GRACE`] for them, then cuts the rest. `name` says which
/// listener in the log.
async fn accept_connections<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
    name: &'static str,
    refused: impl Fn(),
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let stop = shutdown_requested(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(listener = name, %error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Requests and answers are small and come one at a time: with Nagle's
                // algorithm an answer written in two segments waits for the peer's ack of
                // the first, which the peer's delayed ack holds for 40 ms.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(listener = name, %peer, %error, "cannot turn off Nagle's algorithm");
                }
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(listener = name, %peer, "too many connections; closing a new one");
                    refused();
                    continue;
                };
                connections.spawn(serve(tcp, peer, permit));
            }
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!(
            listener = name,
            "connections still open after the grace period; cutting them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    tracing::info!(listener = name, "listener stopped");
}

async fn serve_device_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    router: Router,
    shutdown: watch::Receiver<bool>,
    body_idle_timeout: Duration,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            state.metrics.handshake(Handshake::Completed);
            tls
        }
        Ok(Err(error)) => {
            state.metrics.handshake(Handshake::Failed);
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            state.metrics.handshake(Handshake::TimedOut);
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let caller = match identify(&state, peer, tls.get_ref().1).await {
        Some(caller) => caller,
        None => return,
    };

    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(|body| TimeoutBody::new(body_idle_timeout, body));
        let refusal = caller.refusal(request.uri().path());
        request.extensions_mut().insert(PeerAddr(peer));
        if let Caller::Device(identity) = &caller {
            request.extensions_mut().insert(identity.clone());
        }
        let router = router.clone();
        async move {
            match refusal {
                Some(response) => Ok(response),
                None => router
                    .oneshot(request)
                    .await
                    .map_err(|never: Infallible| never),
            }
        }
    });
    serve_http1(
        TokioIo::new(tls),
        service,
        HEADER_READ_TIMEOUT,
        shutdown,
        peer,
        "device",
    )
    .await;
}

/// Serves HTTP/1.1 on one connection until the client leaves, a header read times out, or
/// shutdown (then the request in flight is finished first).
async fn serve_http1<I, S>(
    io: I,
    service: S,
    header_read_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    name: &'static str,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = axum::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
            }
        }
        () = shutdown_requested(shutdown) => {
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
            }
        }
    }
}

/// Who the connection's client is: anonymous without a certificate, otherwise its device,
/// checked against the store's revocation (the check DESIGN decision 6 asks for on every
/// connection). `None` closes the connection: a certificate without a device identity.
async fn identify(
    state: &AppState,
    peer: SocketAddr,
    connection: &rustls::ServerConnection,
) -> Option<Caller> {
    if connection
        .peer_certificates()
        .is_none_or(|certs| certs.is_empty())
    {
        tracing::debug!(%peer, "connection without a client certificate");
        return Some(Caller::Anonymous);
    }
    // The verifier already refuses certificates without an identity; this cannot fail for
    // a configuration from `device_tls_config`, but a hand-made one is not trusted blindly.
    let identity = match DeviceIdentity::from_connection(connection) {
        Ok(identity) => identity,
        Err(error) => {
            tracing::debug!(%peer, %error, "client certificate names no device");
            return None;
        }
    };
    Some(match state.store.device(&identity.device).await {
        Ok(Some(record)) if record.revoked => {
            tracing::warn!(%peer, device = %identity.device, "a revoked device connected");
            Caller::Revoked(identity)
        }
        Ok(_) => {
            tracing::debug!(%peer, device = %identity.device, "device connected");
            Caller::Device(identity)
        }
        Err(error) => {
            tracing::error!(%peer, device = %identity.device, %error, "revocation check failed");
            Caller::Unchecked
        }
    })
}

/// Serves one of the plain HTTP listeners (operator, consumer, web interface) until
/// shutdown, within `limits`; `name` says which in the log.
async fn run_http_listener(
    listener: TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
    name: &'static str,
) {
    let connection_shutdown = shutdown.clone();
    accept_connections(
        listener,
        limits.max_connections,
        shutdown,
        name,
        || {},
        move |tcp, peer, permit| {
            let router = router.clone();
            let shutdown = connection_shutdown.clone();
            async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let request =
                        request.map(|body| TimeoutBody::new(limits.body_idle_timeout, body));
                    router.clone().oneshot(request)
                });
                serve_http1(
                    TokioIo::new(tcp),
                    service,
                    limits.header_read_timeout,
                    shutdown,
                    peer,
                    name,
                )
                .await;
            }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_listener_is_refused_beyond_loopback() {
        for ok in ["127.0.0.1:8080", "[::1]:0", "127.0.0.2:8080"] {
            assert!(check_admin_listen(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:8080"] {
            let error = check_admin_listen(bad.parse().unwrap()).expect_err(bad);
            assert!(matches!(error, ServerError::AdminNotLoopback(_)), "{bad}");
        }
    }
}
