//! The agent's memory on disk: the [`State`] of what central has, persisted with the envelope
//! chain's position as one [`Checkpoint`], written atomically, so a crash leaves either the
//! old checkpoint or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skolebro_protocol::envelope::ChainHead;
use skolebro_protocol::Entity;

use skolebro_roster::state::State;

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

/// What the agent persists: the state of everything it has enqueued, and where its chain of
/// envelopes stands. One file, so the two can never disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub state: State,
    /// The chain position of the next envelope the agent seals.
    pub head: ChainHead,
    /// The next batch must be a full snapshot (central lost track, or the outbox was reset).
    pub needs_snapshot: bool,
    /// The fields of the export last sent (`Validated::columns`), for the safety filter to
    /// see a column vanish. Last in the encoding on purpose: a release from before it reads
    /// the fields before and ignores the rest, so a rollback keeps its checkpoint, and this
    /// release reads such a file with no columns.
    pub columns: Vec<String>,
}

/// A checkpoint as releases before [`Checkpoint::columns`] wrote it.
#[derive(Deserialize)]
struct CheckpointWithoutColumns {
    state: State,
    head: ChainHead,
    needs_snapshot: bool,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            state: State::default(),
            head: ChainHead::genesis(),
            needs_snapshot: false,
            columns: Vec::new(),
        }
    }
}

impl Checkpoint {
    /// Loads the checkpoint, or a fresh one if none was saved yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
            Ok(meta) if meta.len() > MAX_STATE_BYTES => {
                return Err(StateError::Foreign {
                    path: path.to_owned(),
                })
            }
            Ok(_) => fs::read(path).map_err(io)?,
        };
        Self::decode(&bytes).map(Some).map_err(|damaged| {
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

    /// Decodes a checkpoint file's bytes; the error says whether the file is ours but
    /// damaged.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, bool> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .and_then(|rest| rest.strip_prefix(&[VERSION]))
            .ok_or(false)?;
        let split = body.len().checked_sub(32).ok_or(true)?;
        let (payload, checksum) = body.split_at(split);
        if Sha256::digest(payload).as_slice() != checksum {
            return Err(true);
        }
        let checkpoint = match postcard::from_bytes::<Checkpoint>(payload) {
            Ok(checkpoint) => checkpoint,
            Err(_) => {
                let old: CheckpointWithoutColumns =
                    postcard::from_bytes(payload).map_err(|_| true)?;
                Checkpoint {
                    state: old.state,
                    head: old.head,
                    needs_snapshot: old.needs_snapshot,
                    columns: Vec::new(),
                }
            }
        };
        let ordered = Entity::ALL.iter().all(|&e| {
            checkpoint
                .state
                .entries(e)
                .windows(2)
                .all(|pair| pair[0].0 < pair[1].0)
        });
        if ordered {
            Ok(checkpoint)
        } else {
            Err(true)
        }
    }

    /// Writes the file's bytes: magic, version, postcard body, SHA-256 of the body. Streamed
    /// through a small buffer: the state of a large school is tens of megabytes, and encoding
    /// it into memory first would be the agent's largest allocation.
    pub fn write_to(&self, out: impl Write) -> std::io::Result<()> {
        let mut writer = HashingWriter {
            out,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(HASHING_BUFFER),
            error: None,
        };
        writer.out.write_all(MAGIC)?;
        writer.out.write_all(&[VERSION])?;
        let mut writer = postcard::to_extend(self, writer)
            .map_err(|_| std::io::Error::other("the checkpoint does not encode"))?;
        writer.flush();
        match writer.error {
            Some(error) => Err(error),
            None => writer.out.write_all(&writer.hasher.finalize()),
        }
    }

    /// Saves atomically (see [`write_atomic`]).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        write_atomic_with(path, |file| self.write_to(file)).map_err(|source| StateError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

const HASHING_BUFFER: usize = 64 * 1024;

/// The sink postcard encodes a checkpoint into: bytes are hashed and written a buffer at a
/// time. `Extend` cannot fail, so the first write error is kept and reported at the end.
struct HashingWriter<W> {
    out: W,
    hasher: Sha256,
    buffer: Vec<u8>,
    error: Option<std::io::Error>,
}

impl<W: Write> HashingWriter<W> {
    fn flush(&mut self) {
        self.hasher.update(&self.buffer);
        if self.error.is_none() {
            if let Err(error) = self.out.write_all(&self.buffer) {
                self.error = Some(error);
            }
        }
        self.buffer.clear();
    }
}

impl<W: Write> Extend<u8> for HashingWriter<W> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        for byte in bytes {
            self.buffer.push(byte);
            if self.buffer.len() == HASHING_BUFFER {
                self.flush();
            }
        }
    }
}

impl<'a, W: Write> Extend<&'a u8> for HashingWriter<W> {
    fn extend<I: IntoIterator<Item = &'a u8>>(&mut self, bytes: I) {
        self.extend(bytes.into_iter().copied());
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one:
/// a temporary file beside the target, fsynced, renamed over it, and the folder fsynced so
/// the rename itself survives power loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [`write_atomic`] for contents written by `write` instead of held in memory.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = File::create(&temp)?;
    write(&mut file)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    File::open(folder)?.sync_all()
}

/// Replaces `path` with `bytes` like [`write_atomic`], but the file is created with mode
/// 0600 and so is never readable by others, not even for a moment: keys, and status texts
/// that may name a school's files.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    // A leftover from a crash may have another mode: start afresh.
    let _ = fs::remove_file(&temp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(folder.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::{Digest, RecordHandle};
    use skolebro_roster::diff::Fingerprints;

    fn sample() -> Checkpoint {
        let prints = Fingerprints {
            students: vec![(
                RecordHandle::from_bytes([1; 32]),
                Digest::from_bytes([2; 32]),
            )],
            ..Fingerprints::default()
        };
        Checkpoint {
            state: State::from(&prints),
            columns: vec!["Klasse".into()],
            ..Checkpoint::default()
        }
    }

    fn payload(bytes: &[u8]) -> &[u8] {
        &bytes[MAGIC.len() + 1..bytes.len() - 32]
    }

    #[test]
    fn a_release_before_columns_reads_the_checkpoint_and_this_one_reads_its() {
        #[derive(Serialize)]
        struct Older {
            state: State,
            head: ChainHead,
            needs_snapshot: bool,
        }
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        let older: CheckpointWithoutColumns = postcard::from_bytes(payload(&bytes)).unwrap();
        assert_eq!(older.state, sample().state, "a rollback keeps the state");

        let older = Older {
            state: sample().state,
            head: ChainHead::genesis(),
            needs_snapshot: true,
        };
        let body = postcard::to_allocvec(&older).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.push(VERSION);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&Sha256::digest(&body));
        let loaded = Checkpoint::decode(&bytes).unwrap();
        assert_eq!(loaded.state, sample().state);
        assert!(loaded.needs_snapshot);
        assert!(loaded.columns.is_empty());
    }

    #[test]
    fn a_saved_checkpoint_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        sample().save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(sample()));
    }

    #[test]
    fn a_missing_checkpoint_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(&dir.path().join("none")).unwrap(), None);
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
            Checkpoint::load(&path),
            Err(StateError::Damaged { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Checkpoint::decode(&bytes);
            let mut framed = b"SKBS\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = Checkpoint::decode(&framed);
        }
    }
}
