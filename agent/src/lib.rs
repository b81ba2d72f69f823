//! The skolebro agent: the part of the system that runs on the school's Pi. It reads the
//! SAS export from the drop folder, runs it through the roster pipeline of
//! [`skolebro_roster`] (read, validate, diff against what was sent, safety filter), seals the
//! delta and sends it to central.
//!
//! Data flow: [`watch`] finds an export (or [`pull`] pulls one from a OneRoster REST service, or [`share`] copies one from the school's file server into the drop folder); the [`daemon`]'s pipeline stage runs the roster
//! pipeline on it; [`enqueue`] seals the delta in pieces into the [`outbox`] and moves the
//! checkpoint ([`state`]); the daemon's push and heartbeat loops send through [`uplink`] and
//! keep [`status`] up to date. Before any of it, [`provision`] enrolls the device from a
//! config stick ([`identity`] holds its keys, [`share_source`] the share it names to pull
//! exports from), with [`clock`] deciding what time
//! certificates are checked against; [`update`] replaces the agent itself with a newer
//! signed release (checked with the keys [`trusted_keys`] holds, which central's key rotations
//! replace), and [`panel`] drives the front panel. Nothing below [`daemon`] imports it.

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod daemon;
pub mod drop_share;
pub mod enqueue;
pub mod freshness;
pub mod identity;
pub mod metrics;
pub mod outbox;
pub mod panel;
pub mod provision;
pub mod pull;
pub mod share;
pub mod share_source;
pub mod state;
pub mod status;
pub mod trusted_keys;
pub mod update;
pub mod uplink;
pub mod watch;
