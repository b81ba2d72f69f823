//! The `[http]` table of `central.toml`: the listeners' timeouts and connection caps, which
//! the server applies as [`HttpLimits`]. Its own file because the caps are sized for a
//! fleet (docs/BENCHMARKS.md) and change with it.

use std::time::Duration;

use serde::Deserialize;

use crate::server::HttpLimits;

/// The `[http]` table: how long the listeners wait for slow clients and how many they serve
/// at once ([`HttpLimits`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client may take to send a request's headers.
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a request body may pause.
    #[serde(default = "default_body_idle_timeout_seconds")]
    pub body_idle_timeout_seconds: u64,
    /// Connections at once, per plain HTTP listener.
    #[serde(default = "default_max_http_connections")]
    pub max_connections: usize,
    /// Connections at once on the device listener: about the fleet an instance serves.
    #[serde(default = "default_max_device_connections")]
    pub max_device_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            body_idle_timeout_seconds: default_body_idle_timeout_seconds(),
            max_connections: default_max_http_connections(),
            max_device_connections: default_max_device_connections(),
        }
    }
}

impl HttpConfig {
    /// The limits the server applies.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_seconds),
            max_connections: self.max_connections,
            max_device_connections: self.max_device_connections,
        }
    }
}

fn default_header_read_timeout_seconds() -> u64 {
    crate::server::HEADER_READ_TIMEOUT.as_secs()
}

fn default_body_idle_timeout_seconds() -> u64 {
    crate::server::BODY_IDLE_TIMEOUT.as_secs()
}

fn default_max_http_connections() -> usize {
    crate::server::MAX_HTTP_CONNECTIONS
}

fn default_max_device_connections() -> usize {
    crate::server::MAX_DEVICE_CONNECTIONS
}
