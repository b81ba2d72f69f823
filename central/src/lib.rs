//! The central platform: it receives sealed batches from the schools' agents over mutual TLS,
//! verifies and opens them, and keeps every roster record with its history (DESIGN decisions
//! 2, 3 and 9).
//!
//! The flow through the crate: [`config`] reads `central.toml` into ready
//! [`server::ServerParts`]; [`server::serve`] builds the handlers' shared state (`state`)
//! and starts the listeners, each with its own router: the device listener (mutual TLS,
//! `api::device`), the operator listener (loopback HTTP, `api::operator`), the optional
//! consumer listener (`api::consumer`) and the optional operator web interface ([`ui`]).
//! On the device listener each envelope is checked against the connection's certificate and
//! the device's chain head, opened, and handed to the [`store`], where it is applied together
//! with the new chain head in one transaction.
//!
//! Below the handlers sit the domain modules, which hold no handler and import none:
//! heartbeats and operator commands meet in the store (`store::FleetStore`); devices without a certificate get one
//! through [`enroll`] with a one-time token from a config stick (DESIGN decision 6);
//! [`release`] keeps signed releases and decides which release each heartbeat answer offers
//! (DESIGN decision 7); `key_rotation` keeps the stick and release key rotations operations
//! publish and hands them to every device; `windows` derives the counties' transfer windows and late batches at
//! read time; `elevliste_export` generates the admission office's file; [`oneroster`] maps
//! the records onto a OneRoster 1.1 subset, read behind OAuth2 client-credentials tokens
//! scoped to a county or kommune (`consumer_auth`); [`operator_auth`] knows the operator
//! API's named clients by their bearer tokens; `accounts` checks the web interface's
//! operators; `rate_limit` slows guessing; `audit` writes the audit log every changing
//! action goes through. The HTTP contract is `docs/API.md`.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod accounts;
mod api;
mod audit;
pub mod config;
mod consumer_auth;
mod elevliste_export;
pub mod enroll;
mod key_rotation;
mod metrics;
pub mod oneroster;
pub mod operator_auth;
mod rate_limit;
pub mod release;
pub mod retention;
pub mod seal;
pub mod server;
pub mod site_exit;
pub mod sites;
mod state;
pub mod store;
pub mod subject;
pub mod ui;
mod windows;

pub use config::{
    CentralConfig, ConfigError, EnrollConfig, HttpConfig, PrivacyConfig, StoreConfig, TlsConfig,
};
pub use enroll::EnrollSettings;
pub use release::ReleaseSettings;
pub use server::{
    device_tls_config, serve, HttpLimits, RunningServer, ServerError, ServerParts, ShutdownHandle,
};
pub use state::UiSettings;
