//! The central platform: it receives sealed batches from the schools' agents over mutual TLS,
//! verifies and opens them, and keeps every roster record with its history (DESIGN decisions
//! 2, 3 and 9).
//!
//! The flow through the crate: [`config`] reads `central.toml` into ready
//! [`server::ServerParts`]; [`server::serve`] starts the device listener (mutual TLS) and the
//! operator listener (loopback HTTP); on the device listener `ingest` checks each envelope
//! against the connection's certificate and the device's chain head, opens it, and hands it
//! to the [`store`], where it is applied together with the new chain head in one transaction;
//! heartbeats and operator commands meet in [`fleet`]; `admin` reads rosters and counts back
//! out and manages enrollment tokens and devices. Devices without a certificate get one from
//! [`enroll`] with a one-time token from a config stick (DESIGN decision 6). Consumers (a
//! county's admission office, an LMS) read through the optional consumer listener: a
//! OneRoster 1.1 subset in [`oneroster`], behind OAuth2 client-credentials tokens scoped to a
//! county or kommune (`consumer_auth`); the admission office's elevliste file comes from
//! `elevliste_export` on the operator listener. [`release`] keeps signed releases and their
//! artifacts, and decides which release each heartbeat answer offers (DESIGN decision 7).
//! Operators and municipalities use the web interface in [`ui`] on its own optional
//! listener. The counties' transfer windows, and which batches came in late for them, are
//! derived at read time in `windows`. The HTTP contract is `docs/API.md`.

mod admin;
pub mod config;
mod consumer_auth;
mod elevliste_export;
pub mod enroll;
pub mod fleet;
mod ingest;
pub mod oneroster;
mod rate_limit;
pub mod release;
mod reply;
pub mod server;
pub mod store;
pub mod ui;
mod windows;

pub use config::{CentralConfig, ConfigError, EnrollConfig, StoreConfig, TlsConfig};
pub use enroll::EnrollSettings;
pub use release::ReleaseSettings;
pub use server::{
    device_tls_config, serve, RunningServer, ServerError, ServerParts, ShutdownHandle,
};
