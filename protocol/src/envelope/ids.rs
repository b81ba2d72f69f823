//! The ids and sequence numbers an envelope header carries. They are parsed once, where
//! bytes or text enter (a decoded header, a config file, a certificate), so everything past
//! that point holds a valid id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A device's position in its chain of envelopes. The first envelope a device sends is
/// `Seq(1)`; `Seq(0)` never appears on the wire, so "nothing applied yet" needs no special case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number of a device's first envelope.
    pub const FIRST: Seq = Seq(1);

    /// The sequence number after this one. Saturates at `u64::MAX`, which a device sending
    /// one envelope a millisecond would reach after half a billion years.
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An id that is not 1..=64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an id must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
pub struct InvalidId;

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! short_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates the id: ids end up in logs, paths and database keys, so only short,
            /// plain ASCII ids are accepted, on both ends and in decoded headers alike.
            pub fn new(id: impl Into<String>) -> Result<$name, InvalidId> {
                let id = id.into();
                if valid_id(&id) {
                    Ok($name(id))
                } else {
                    Err(InvalidId)
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(id: String) -> Result<$name, InvalidId> {
                $name::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<$name, InvalidId> {
                $name::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

short_id! {
    /// The id of one agent device, as enrolled at central. Central checks it against the
    /// device the key belongs to, so one device cannot write into another's chain.
    DeviceId
}

short_id! {
    /// The id of the site (school) a device serves; central routes the payload by it.
    SiteId
}

/// A device id that skips validation, so a test can put one into a header and check that
/// decoding refuses it.
#[cfg(test)]
pub(super) fn unchecked_device_id(id: &str) -> DeviceId {
    DeviceId(id.to_owned())
}
