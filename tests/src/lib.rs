//! Helpers shared by the end-to-end tests and the benchmarks: the synthetic roster generator
//! that makes the repo's sample exports and benchmark inputs, and the process harness of the
//! end-to-end tests.

pub mod harness;
pub mod rostergen;
