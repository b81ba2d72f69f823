//! The central platform: it receives sealed batches from the schools' agents over mutual TLS,
//! verifies and opens them, and keeps every roster record with its history (DESIGN decisions
//! 3 and 9). This crate grows with the ingest issue; so far it holds the [`store`], where an
//! opened batch is applied together with its device's chain head in one transaction.

pub mod store;
