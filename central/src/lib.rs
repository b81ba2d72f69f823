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
//! out. The HTTP contract is `docs/API.md`.

mod admin;
pub mod config;
pub mod demo;
pub mod fleet;
mod ingest;
mod reply;
pub mod server;
pub mod store;

pub use config::{CentralConfig, ConfigError, StoreConfig, TlsConfig};
pub use server::{serve, RunningServer, ServerError, ServerParts, ShutdownHandle};
