//! Helpers shared by the end-to-end tests and the benchmarks: the synthetic roster generator
//! that makes the repo's sample exports and benchmark inputs.

pub mod rostergen;
