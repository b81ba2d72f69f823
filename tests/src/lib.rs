//! Helpers shared by the end-to-end tests, the demo and the benchmarks: the synthetic roster
//! generator that makes the repo's sample exports and benchmark inputs, what central should
//! hold after an export, and the process harness of the end-to-end tests.

#![forbid(unsafe_code)]

pub mod appliance;
pub mod expected;
pub mod harness;
pub mod rostergen;
pub mod samba;
