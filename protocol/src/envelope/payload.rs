//! How a [`Payload`] is encoded inside the sealed envelope, and how older payloads still
//! decode. The payload is postcard, whose enum variant index is its version: central reads
//! every variant any agent has written, and an agent writes the oldest variant that holds
//! what it sends, so a delta without renames reads the same at a central that predates them.
//!
//! | index | variant | since |
//! | --- | --- | --- |
//! | 0 | delta without renames: per kind `upserts`, `deletes` | first payload version |
//! | 1 | snapshot: the whole `Roster` | first payload version |
//! | 2 | delta with renames: per kind `upserts`, `deletes`, `renames` | renames |

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Payload;
use crate::delta::{Delta, EntityDelta};
use crate::handle::RecordHandle;
use crate::roster::{Enrollment, Group, Roster, School, Student};

/// The variant indices above; never reused, never renumbered.
const DELTA_V1: u32 = 0;
const SNAPSHOT: u32 = 1;
const DELTA_WITH_RENAMES: u32 = 2;

/// What a payload decodes as, variant by variant in index order (serde numbers variants by
/// position, which is the order of [`DELTA_V1`], [`SNAPSHOT`], [`DELTA_WITH_RENAMES`]).
#[derive(Deserialize)]
#[serde(rename = "Payload")]
enum WirePayload {
    Delta(
        DeltaV1<
            EntityDeltaV1<School>,
            EntityDeltaV1<Student>,
            EntityDeltaV1<Group>,
            EntityDeltaV1<Enrollment>,
        >,
    ),
    Snapshot(Roster),
    DeltaWithRenames(Delta),
}

/// A delta of the first payload version: the four kinds, in the order `Delta` has them.
#[derive(Serialize, Deserialize)]
struct DeltaV1<S, T, G, E> {
    schools: S,
    students: T,
    groups: G,
    enrollments: E,
}

/// One kind's changes in the first payload version: upserts and deletes, no renames.
#[derive(Deserialize)]
struct EntityDeltaV1<T> {
    upserts: Vec<(RecordHandle, T)>,
    deletes: Vec<RecordHandle>,
}

/// The same as [`EntityDeltaV1`], borrowed from a [`Delta`] for writing: postcard encodes a
/// slice exactly as the `Vec` it is read back into.
#[derive(Serialize)]
struct EntityDeltaV1Ref<'a, T> {
    upserts: &'a [(RecordHandle, T)],
    deletes: &'a [RecordHandle],
}

impl<'a, T> EntityDeltaV1Ref<'a, T> {
    fn of(delta: &'a EntityDelta<T>) -> Self {
        EntityDeltaV1Ref {
            upserts: &delta.upserts,
            deletes: &delta.deletes,
        }
    }
}

impl<T> From<EntityDeltaV1<T>> for EntityDelta<T> {
    fn from(old: EntityDeltaV1<T>) -> EntityDelta<T> {
        EntityDelta {
            upserts: old.upserts,
            deletes: old.deletes,
            renames: Vec::new(),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Delta(delta) if !delta.has_renames() => {
                let v1 = DeltaV1 {
                    schools: EntityDeltaV1Ref::of(&delta.schools),
                    students: EntityDeltaV1Ref::of(&delta.students),
                    groups: EntityDeltaV1Ref::of(&delta.groups),
                    enrollments: EntityDeltaV1Ref::of(&delta.enrollments),
                };
                serializer.serialize_newtype_variant("Payload", DELTA_V1, "Delta", &v1)
            }
            Payload::Snapshot(roster) => {
                serializer.serialize_newtype_variant("Payload", SNAPSHOT, "Snapshot", roster)
            }
            Payload::Delta(delta) => serializer.serialize_newtype_variant(
                "Payload",
                DELTA_WITH_RENAMES,
                "DeltaWithRenames",
                delta,
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        Ok(match WirePayload::deserialize(deserializer)? {
            WirePayload::Delta(v1) => Payload::Delta(Delta {
                schools: v1.schools.into(),
                students: v1.students.into(),
                groups: v1.groups.into(),
                enrollments: v1.enrollments.into(),
            }),
            WirePayload::Snapshot(roster) => Payload::Snapshot(roster),
            WirePayload::DeltaWithRenames(delta) => Payload::Delta(delta),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Entity;
    use crate::SiteSecret;

    fn delta() -> Delta {
        let secret = SiteSecret::from_bytes([3; 32]);
        let student = Student {
            source_key: "NEW-1".into(),
            national_id: None,
            username: None,
            given_name: "Kari".into(),
            middle_name: None,
            family_name: "Nordmann".into(),
            birth_date: None,
            gender: crate::roster::Gender::Female,
            email: None,
        };
        let (old, new) = (
            secret.handle(Entity::Student, "OLD-1"),
            secret.handle(Entity::Student, "NEW-1"),
        );
        let mut delta = Delta::default();
        delta.students.upserts.push((new, student));
        delta.students.deletes.push(old);
        delta
    }

    #[test]
    fn a_delta_without_renames_is_written_as_the_first_payload_version() {
        let bytes = postcard::to_allocvec(&Payload::Delta(delta())).expect("encodes");
        assert_eq!(bytes[0], DELTA_V1 as u8);
        let back: Payload = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, Payload::Delta(delta()));
    }

    #[test]
    fn a_delta_with_renames_round_trips_with_its_renames() {
        let mut renaming = delta();
        let new = renaming.students.upserts[0].0;
        let old = renaming.students.deletes[0];
        renaming.students.renames.push((old, new));
        let bytes = postcard::to_allocvec(&Payload::Delta(renaming.clone())).expect("encodes");
        assert_eq!(bytes[0], DELTA_WITH_RENAMES as u8);
        let back: Payload = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, Payload::Delta(renaming));
    }
}
