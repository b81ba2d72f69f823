//! The agent's memory of what central has: for every record, its handle and the digest of its
//! content, and nothing else (DESIGN decision 1). The differ compares a new export against it;
//! it is written atomically, so a crash leaves either the old state or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::{
    Delta, Digest, Entity, EntityDelta, Record, RecordHandle, Roster, SiteSecret,
};

use crate::diff::Fingerprints;

const MAGIC: &[u8; 4] = b"SKBS";
const VERSION: u8 = 1;
/// A state file larger than this is not ours: a million records take about 64 MiB.
const MAX_STATE_BYTES: u64 = 256 << 20;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a skolebro state file, or a version this agent does not know")]
    Foreign { path: PathBuf },
    #[error("{path}: the state file is damaged (checksum mismatch); a full snapshot is needed")]
    Damaged { path: PathBuf },
}

/// Handle -> digest of one kind of record, sorted by handle with no handle twice. Sorted,
/// not hashed: the differ walks an export and the state side by side (a merge join), which
/// touches memory in order, and the file is written in the same order.
pub type Entries = Vec<(RecordHandle, Digest)>;

/// Handle -> digest for each kind of record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    schools: Entries,
    students: Entries,
    groups: Entries,
    enrollments: Entries,
}

impl State {
    /// The state central would have after receiving all of `roster`.
    pub fn of(roster: &Roster, secret: &SiteSecret) -> State {
        State::from(&Fingerprints::of(roster, secret))
    }

    pub fn entries(&self, entity: Entity) -> &[(RecordHandle, Digest)] {
        match entity {
            Entity::School => &self.schools,
            Entity::Student => &self.students,
            Entity::Group => &self.groups,
            Entity::Enrollment => &self.enrollments,
        }
    }

    fn entries_mut(&mut self, entity: Entity) -> &mut Entries {
        match entity {
            Entity::School => &mut self.schools,
            Entity::Student => &mut self.students,
            Entity::Group => &mut self.groups,
            Entity::Enrollment => &mut self.enrollments,
        }
    }

    pub fn len(&self, entity: Entity) -> usize {
        self.entries(entity).len()
    }

    pub fn total(&self) -> usize {
        Entity::ALL.iter().map(|&e| self.len(e)).sum()
    }

    pub fn contains(&self, entity: Entity, handle: &RecordHandle) -> bool {
        self.entries(entity)
            .binary_search_by(|(h, _)| h.cmp(handle))
            .is_ok()
    }

    /// The state after central applies `delta`, whose upserts and deletes are sorted by
    /// handle (as the differ makes them).
    pub fn apply(&mut self, delta: &Delta) {
        fn apply_one<R: Record>(entries: &mut Entries, delta: &EntityDelta<R>) {
            let mut changes: Vec<(RecordHandle, Option<Digest>)> = delta
                .upserts
                .iter()
                .map(|(h, r)| (*h, Some(Digest::of(r))))
                .chain(delta.deletes.iter().map(|h| (*h, None)))
                .collect();
            changes.sort_by_key(|change| change.0);
            let old = std::mem::take(entries);
            let mut old = old.into_iter().peekable();
            for (handle, digest) in changes {
                while let Some(entry) = old.next_if(|(h, _)| *h < handle) {
                    entries.push(entry);
                }
                old.next_if(|(h, _)| *h == handle);
                if let Some(digest) = digest {
                    entries.push((handle, digest));
                }
            }
            entries.extend(old);
        }
        apply_one(self.entries_mut(Entity::School), &delta.schools);
        apply_one(self.entries_mut(Entity::Student), &delta.students);
        apply_one(self.entries_mut(Entity::Group), &delta.groups);
        apply_one(self.entries_mut(Entity::Enrollment), &delta.enrollments);
    }

    /// Loads the state, or an empty one if none was saved yet.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(io(e)),
            Ok(meta) if meta.len() > MAX_STATE_BYTES => {
                return Err(StateError::Foreign {
                    path: path.to_owned(),
                })
            }
            Ok(_) => fs::read(path).map_err(io)?,
        };
        Self::decode(&bytes).map_err(|damaged| {
            if damaged {
                StateError::Damaged {
                    path: path.to_owned(),
                }
            } else {
                StateError::Foreign {
                    path: path.to_owned(),
                }
            }
        })
    }

    /// Decodes a state file's bytes; the error says whether the file is ours but damaged.
    fn decode(bytes: &[u8]) -> Result<State, bool> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .and_then(|rest| rest.strip_prefix(&[VERSION]))
            .ok_or(false)?;
        let split = body.len().checked_sub(32).ok_or(true)?;
        let (payload, checksum) = body.split_at(split);
        if Sha256::digest(payload).as_slice() != checksum {
            return Err(true);
        }
        let state: State = postcard::from_bytes(payload).map_err(|_| true)?;
        let ordered = Entity::ALL.iter().all(|&e| {
            state
                .entries(e)
                .windows(2)
                .all(|pair| pair[0].0 < pair[1].0)
        });
        if ordered {
            Ok(state)
        } else {
            Err(true)
        }
    }

    fn encode(&self) -> Vec<u8> {
        let payload = postcard::to_allocvec(self).expect("the state always serialises");
        let mut bytes = Vec::with_capacity(payload.len() + 37);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes
    }

    /// Saves atomically: a temporary file beside the target, fsynced, renamed over it, and the
    /// folder fsynced so the rename itself survives power loss.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let mut file = File::create(&temp).map_err(io)?;
        file.write_all(&self.encode()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&temp, path).map_err(io)?;
        File::open(folder).and_then(|f| f.sync_all()).map_err(io)
    }
}

impl From<&Fingerprints> for State {
    fn from(prints: &Fingerprints) -> State {
        fn sorted(prints: &[(RecordHandle, Digest)]) -> Entries {
            let mut entries = prints.to_vec();
            entries.sort_unstable_by_key(|entry| entry.0);
            entries.dedup_by_key(|entry| entry.0);
            entries
        }
        State {
            schools: sorted(&prints.schools),
            students: sorted(&prints.students),
            groups: sorted(&prints.groups),
            enrollments: sorted(&prints.enrollments),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut state = State::default();
        state.students.push((
            RecordHandle::from_bytes([1; 32]),
            Digest::from_bytes([2; 32]),
        ));
        state
    }

    #[test]
    fn saved_state_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        sample().save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), sample());
    }

    #[test]
    fn missing_state_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            State::load(&dir.path().join("none")).unwrap(),
            State::default()
        );
    }

    #[test]
    fn a_flipped_byte_is_reported_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        sample().save(&path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            State::load(&path),
            Err(StateError::Damaged { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = State::decode(&bytes);
            let mut framed = b"SKBS\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = State::decode(&framed);
        }
    }
}
