//! What the daemon's lifecycle shares with its phases: how a phase ended, what it lends a
//! running phase, and the slots through which the front panel reaches the current one; and
//! the daemon's error.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::core::Shared;
use crate::clock::{AgentClock, ClockError};
use crate::config::{AgentConfig, ConfigError};
use crate::enqueue::EnqueueError;
use crate::identity::IdentityError;
use crate::provision::EnrollmentError;
use crate::status::AgentStatus;
use crate::update::Updater;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    DeviceEnrollment(#[from] EnrollmentError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("state folder: {0}")]
    Enqueue(#[from] EnqueueError),
    #[error("TLS client: {0}")]
    Tls(#[from] skolebro_provisioning::tls::TlsError),
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    ShareSource(#[from] crate::share_source::ShareSourceError),
    #[error("a daemon task failed: {0}")]
    Task(String),
}

/// What ended a phase of the daemon's life.
pub(super) enum PhaseEnd {
    /// The device was (re-)provisioned: start over with the new identity.
    Provisioned,
    Stopped,
}

/// The core of the running phase, if any, for the panel's liveness check.
pub(super) type CoreSlot = Arc<Mutex<Option<Shared>>>;

/// The panel's "sync now" target: the wake channel of whichever push loop runs.
pub(super) type WakeSlot = Arc<Mutex<Option<mpsc::Sender<()>>>>;

/// What the lifecycle lends each running phase: the installed config and the parts that
/// outlive one identity (clock, updater, status feed, the panel's links into the phase).
#[derive(Clone, Copy)]
pub(super) struct Life<'a> {
    pub(super) installed: &'a AgentConfig,
    pub(super) clock: &'a Arc<AgentClock>,
    pub(super) updater: &'a Arc<Updater>,
    pub(super) status_tx: &'a watch::Sender<AgentStatus>,
    pub(super) live: &'a CoreSlot,
    pub(super) current_wake: &'a WakeSlot,
    pub(super) poke: &'a tokio::sync::Notify,
}
