//! The state the listeners' handlers share, one per server: built by [`crate::server`] from
//! its `ServerParts` and handed to each listener's router. It holds the domain's parts (the
//! store, enrollment, releases) and imports no handler, so every listener
//! module can depend on it without depending on the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skolebro_protocol::SealingPrivateKey;

use crate::enroll::{EnrollSettings, Enroller};
use crate::key_rotation::{RotationCache, ROTATIONS_FRESH_FOR};
use crate::metrics::Metrics;
use crate::oneroster::PublicUrl;
use crate::release::ReleaseSettings;
use crate::retention::RetentionPolicy;
use crate::store::Store;

/// Default lifetime of a signed-in session of the web interface: one working day.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The state every JSON handler shares.
pub(crate) struct AppState {
    pub store: Arc<dyn Store>,
    pub sealing_key: SealingPrivateKey,
    pub max_batch_bytes: usize,
    pub enroller: Enroller,
    pub releases: ReleaseSettings,
    /// The published key rotations every heartbeat answer carries, read at most every few
    /// seconds rather than per heartbeat.
    pub rotations: RotationCache,
    /// This process's counters for `GET /metrics`; the fleet's state is read at scrape time.
    pub metrics: Metrics,
    /// The base of the consumer API's links and `href`s when configured; `None` takes it
    /// from each request's checked `Host`.
    pub consumer_public_url: Option<PublicUrl>,
    /// The retention policy, to tell when a closed window's frozen file is beyond it.
    pub retention: RetentionPolicy,
}

impl AppState {
    /// A server's state: no enrollment and no metric counted yet (what devices reported is in the store).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        sealing_key: SealingPrivateKey,
        max_batch_bytes: usize,
        enroll: EnrollSettings,
        releases: ReleaseSettings,
    ) -> AppState {
        AppState {
            store,
            sealing_key,
            max_batch_bytes,
            enroller: Enroller::new(enroll),
            releases,
            rotations: RotationCache::new(ROTATIONS_FRESH_FOR),
            metrics: Metrics::new(),
            consumer_public_url: None,
            retention: RetentionPolicy::default(),
        }
    }
}

/// How the web interface listens and sets its cookies; built from `ui_listen` and `[ui]`.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Address of the listener (plain HTTP); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Whether the session cookie carries `Secure`. On (the default) whenever a browser
    /// reaches the interface through the TLS proxy; off only for plain HTTP on loopback.
    pub secure_cookie: bool,
    /// How long a session lasts after signing in.
    pub session_lifetime: Duration,
}

/// The state of the web interface's handlers: central's shared state and the settings.
pub(crate) struct UiState {
    pub app: Arc<AppState>,
    pub settings: UiSettings,
}

impl UiState {
    pub(crate) fn new(app: Arc<AppState>, settings: UiSettings) -> UiState {
        UiState { app, settings }
    }
}
