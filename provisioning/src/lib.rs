//! Operations tooling for skolebro: the PKI behind mutual TLS and the TLS plumbing that both
//! the agent and central use.
//!
//! [`pki`] makes the device CA, the central CA, central's server certificate and device
//! certificates (from a CSR, per DESIGN decision 6). [`tls`] turns those PEM files into a
//! rustls server configuration for central, a reqwest client for the agent's uplink, and reads
//! a connected device's identity back out of its certificate.
//!
//! The `skolebro-provision` CLI builds on these: [`keys`] makes the platform's key folder
//! (`init`), [`stick`] writes signed config sticks (DESIGN decision 6), with the share the
//! agent pulls from when [`pull_share`]'s flags name one, after registering their token
//! through [`admin`], central's admin API, which also serves `list` and `revoke`, and
//! [`release`] signs update manifests (DESIGN decision 7) and registers them with central;
//! [`rotate`] rotates the stick or the release key and publishes the rotation to central.
//! [`ops`] holds what the agent's, central's and this CLI's `main` share: exit codes, error
//! reports and log formats.

#![forbid(unsafe_code)]

pub mod admin;
pub mod error;
pub mod keys;
pub mod manual;
pub mod ops;
pub mod pki;
pub mod pull_share;
pub mod release;
pub mod rotate;
pub mod stick;
pub mod tls;

pub use admin::AdminClient;
pub use error::ProvisionError;
pub use keys::KeyFolder;

pub use pki::{
    CertificateAuthority, Credentials, DevPki, DevPkiFiles, DeviceKey, PkiError, Validity,
};
pub use tls::{AdmitDevice, DeviceIdentity, ServerOptions, TlsError};
