//! The vocabulary the agent and central share: the roster model (FINT semantics), national
//! ids, record handles and the `Delta` that travels between them. Pure: no I/O, no async, so
//! both ends and the tests agree on one definition of every byte.

#![forbid(unsafe_code)]

pub mod api;
pub mod civil_time;
pub mod delta;
pub mod drop_share;
pub mod envelope;
pub mod handle;
pub mod held;
pub mod national_id;
pub mod pull_share;
pub mod release;
pub mod roster;
pub mod rotation;
mod signed;
pub mod site;
pub mod statement;
pub mod stick;

pub use delta::{Delta, EntityDelta};
pub use drop_share::DropShare;
pub use envelope::{
    ChainHead, DeviceId, DeviceSigningKey, DeviceVerifyingKey, Envelope, EnvelopeError, Header,
    Kind, Opened, Payload, SealingPrivateKey, SealingPublicKey, Seq, SiteId,
};
pub use handle::{Digest, RecordHandle, SiteSecret};
pub use held::HeldReason;
pub use national_id::{mask_in_text, IdKind, NationalId, NationalIdError};
pub use pull_share::{AfterPull, PullShare};
pub use release::{ReleaseError, ReleaseManifest, ReleaseSigningKey, ReleaseVerifyingKey, Version};
pub use roster::{Enrollment, Entity, Gender, Group, Record, Roster, School, Student};
pub use rotation::{KeyRole, KeyRotation, RootSigningKey, RootVerifyingKey, RotationError};
pub use site::{SiteSchool, SiteSchoolError};
pub use statement::{Statement, StatementError, StatementSigningKey, StatementVerifyingKey};
pub use stick::{SiteInfo, StickBody, StickError, StickSigningKey, StickVerifyingKey};
