//! The JSON listeners' handlers, one module per listener, each building its own router:
//! [`device`] (mutual TLS: batches, heartbeats, enrollment, release downloads), [`operator`]
//! (the loopback admin API) and [`consumer`] (OneRoster and its OAuth2 token endpoint). The
//! operator web interface is the fourth listener; it renders HTML and lives in `crate::ui`.
//!
//! Handlers read the request, call the domain modules (`fleet`, `release`, `windows`,
//! `enroll`, `elevliste_export`, `oneroster`, `consumer_auth`, `audit`) and the store, and
//! answer; they refuse with [`error::ApiError`]. No domain module imports a handler, and no
//! listener module imports another.

pub(crate) mod consumer;
pub(crate) mod device;
pub(crate) mod error;
pub(crate) mod operator;
