//! The skolebro agent: the part of the system that runs on the school's Pi. It reads the
//! SAS export from the drop folder, validates it, diffs it against the last state it sent,
//! and (in later stages) seals, queues and uploads the delta.
//!
//! Data flow: the roster pipeline of [`skolebro_roster`] ([`reader`] -> [`validate`]
//! (deviations) -> [`diff`] against the [`state`] in the checkpoint -> [`safety`] filter;
//! [`report`] turns results into what `check` and `diff` print), then [`enqueue`] seals the
//! delta into the [`outbox`] and [`uplink`] sends it. Before any of it, [`provision`] enrolls the device from a config stick, with [`clock`]
//! deciding what time certificates are checked against; [`daemon`] runs it all, and
//! [`update`] replaces the agent itself with a newer signed release.

pub mod clock;
pub mod config;
pub mod daemon;
pub mod enqueue;
pub mod identity;
pub mod outbox;
pub mod panel;
pub mod provision;
pub mod state;
pub mod update;
pub mod uplink;
pub mod watch;

pub use skolebro_roster::{deviation, diff, reader, report, safety, validate};
