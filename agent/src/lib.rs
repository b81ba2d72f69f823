//! The skolebro agent: the part of the system that runs on the school's Pi. It reads the
//! SAS export from the drop folder, validates it, diffs it against the last state it sent,
//! and (in later stages) seals, queues and uploads the delta.
//!
//! Data flow: [`reader`] -> [`validate`] (deviations) -> [`diff`] against [`state`] ->
//! [`safety`] filter. [`report`] turns results into what `check` and `diff` print.
//! Before any of it, [`provision`] enrolls the device from a config stick, with [`clock`]
//! deciding what time certificates are checked against; [`daemon`] runs it all, and
//! [`update`] replaces the agent itself with a newer signed release.

pub mod clock;
pub mod config;
pub mod daemon;
pub mod deviation;
pub mod diff;
pub mod enqueue;
pub mod identity;
pub mod outbox;
pub mod panel;
pub mod provision;
pub mod reader;
pub mod report;
pub mod safety;
pub mod state;
pub mod status;
pub mod update;
pub mod uplink;
pub mod validate;
pub mod watch;
