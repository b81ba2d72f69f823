//! The disk behind the outbox, as a small trait.
//!
//! All outbox I/O goes through [`Storage`] so that tests can drive the same code against
//! [`MemStorage`], which can inject faults (short writes, ENOSPC, EIO on fsync) and simulate a
//! power cut that drops whatever was not fsynced, while production uses [`FsStorage`] (real
//! files, real fsync). This is the same split as Vector's disk buffer: the durability logic is
//! tested without needing a disk that actually fails.
//!
//! Files are addressed by bare names inside one directory; the outbox never needs paths.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

/// Durable, append-only file operations in one directory.
///
/// The outbox relies on these guarantees, which every implementation must give:
/// - `append` may leave a prefix of `data` written when it fails (a short write); the outbox
///   then rolls back with `truncate`.
/// - data written by `append` is durable only after `sync` of that file returns Ok; a newly
///   created file's directory entry is durable only after `sync_dir`.
/// - `truncate` and `write_atomic` are durable when they return Ok.
/// - `write_atomic` replaces the file as a whole or not at all (temp file, fsync, rename,
///   fsync directory), so a crash leaves either the old or the new content.
pub trait Storage {
    /// The path of a file, for error messages only.
    fn path_of(&self, name: &str) -> PathBuf;
    /// Names of the regular files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of a file (used at start-up and by `inspect`).
    fn read_all(&self, name: &str) -> io::Result<Vec<u8>>;
    /// `len` bytes at `offset` (used to read one frame back for the uplink).
    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Appends `data` at the end of the file, creating it if needed. Not durable by itself.
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (fsync).
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries (created and removed files) durable.
    fn sync_dir(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Deletes the file; a file that is already gone is not an error.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Replaces the file's content atomically and durably.
    fn write_atomic(&mut self, name: &str, data: &[u8]) -> io::Result<()>;
}

impl<T: Storage + ?Sized> Storage for Box<T> {
    fn path_of(&self, name: &str) -> PathBuf {
        (**self).path_of(name)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        (**self).list()
    }
    fn read_all(&self, name: &str) -> io::Result<Vec<u8>> {
        (**self).read_all(name)
    }
    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        (**self).read_at(name, offset, len)
    }
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        (**self).append(name, data)
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        (**self).sync(name)
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        (**self).sync_dir()
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        (**self).truncate(name, len)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        (**self).remove(name)
    }
    fn write_atomic(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        (**self).write_atomic(name, data)
    }
}

/// Real files in one directory, with real fsync. Keeps the file being appended to open so
/// that an append is one `write` call (plus one `fsync` under `FsyncPolicy::PerBatch`).
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    open: HashMap<String, File>,
}

impl FsStorage {
    /// Uses (and creates if missing) `dir` for the outbox's files. The directory must belong
    /// to one outbox only: two processes appending to it would interleave frames.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            open: HashMap::new(),
        })
    }

    /// The directory this storage works in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn handle(&mut self, name: &str) -> io::Result<&mut File> {
        if !self.open.contains_key(name) {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))?;
            // Only the active segment is written to; do not accumulate handles.
            self.open.clear();
            self.open.insert(name.to_string(), f);
        }
        self.open
            .get_mut(name)
            .ok_or_else(|| io::Error::other("file handle vanished"))
    }
}

impl Storage for FsStorage {
    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }

    fn read_all(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(name))
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.dir.join(name))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.handle(name)?.write_all(data)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        // fdatasync is enough: the size change is part of the data for this purpose.
        self.handle(name)?.sync_data()
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let f = self.handle(name)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.open.remove(name);
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn write_atomic(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(name))?;
        self.sync_dir()
    }
}

/// A fault that [`MemStorage`] injects into the next matching operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `append` writes only `written` bytes, then fails with ENOSPC.
    ShortAppend {
        /// Bytes that reach the file before the error.
        written: usize,
    },
    /// The next `sync` fails with EIO (nothing becomes durable).
    SyncFails,
    /// The next `truncate` fails with EIO (nothing changes).
    TruncateFails,
    /// The next `remove` fails with EIO.
    RemoveFails,
    /// The next `write_atomic` fails with ENOSPC (the old content stays).
    WriteAtomicFails,
}

#[derive(Debug, Clone, Default)]
struct MemFile {
    data: Vec<u8>,
    /// Length of the prefix that survives a crash.
    synced_len: usize,
    /// Whether the directory entry survives a crash.
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct MemState {
    files: HashMap<String, MemFile>,
    faults: Vec<Fault>,
    /// Total bytes the "disk" holds; appends past it write what fits, then fail with ENOSPC.
    capacity: Option<usize>,
}

/// An in-memory directory for tests. Clones share the same files, so a test can keep one
/// handle, "crash" the outbox by dropping it and calling [`MemStorage::crash`], and reopen an
/// outbox on another clone, the way a process restarts on the same disk.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<MemState>>,
}

fn enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (simulated)",
    )
}

fn eio() -> io::Error {
    io::Error::other("input/output error (simulated)")
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl MemStorage {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A test that panicked while holding the lock has already failed; keep going.
        self.state.lock()
    }

    /// Queues a fault for the next matching operation.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Limits the total bytes on the "disk" (None: unlimited).
    pub fn set_capacity(&self, capacity: Option<usize>) {
        self.lock().capacity = capacity;
    }

    /// Simulates a power cut: every file loses what was not fsynced, except `keep(name,
    /// unsynced_len)` bytes of its unsynced tail (to model a torn write), and files whose
    /// directory entry was never synced disappear.
    pub fn crash_with(&self, mut keep: impl FnMut(&str, usize) -> usize) {
        let mut st = self.lock();
        st.files.retain(|_, f| f.entry_durable);
        for (name, f) in st.files.iter_mut() {
            let unsynced = f.data.len().saturating_sub(f.synced_len);
            let kept = keep(name, unsynced).min(unsynced);
            f.data.truncate(f.synced_len + kept);
            f.synced_len = f.data.len();
        }
        st.faults.clear();
    }

    /// Simulates a power cut that drops everything not fsynced.
    pub fn crash(&self) {
        self.crash_with(|_, _| 0);
    }

    /// Raw access for tests: the current bytes of a file.
    pub fn raw(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.data.clone())
    }

    /// Raw access for tests: replaces a file's bytes as if the disk had changed them (bit rot,
    /// a torn write found after reboot). The new content counts as durable.
    pub fn set_raw(&self, name: &str, data: Vec<u8>) {
        let mut st = self.lock();
        let f = st.files.entry(name.to_string()).or_default();
        f.synced_len = data.len();
        f.data = data;
        f.entry_durable = true;
    }

    /// Raw access for tests: deletes a file behind the outbox's back.
    pub fn delete_raw(&self, name: &str) {
        self.lock().files.remove(name);
    }

    /// Faults injected but not yet triggered.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    /// Names of all files, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().files.keys().cloned().collect();
        v.sort();
        v
    }

    fn take_fault(st: &mut MemState, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = st.faults.iter().position(pred)?;
        Some(st.faults.remove(i))
    }
}

impl Storage for MemStorage {
    fn path_of(&self, name: &str) -> PathBuf {
        PathBuf::from("mem:").join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn read_all(&self, name: &str) -> io::Result<Vec<u8>> {
        self.raw(name).ok_or_else(|| not_found(name))
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let f = st.files.get(name).ok_or_else(|| not_found(name))?;
        let start = usize::try_from(offset).map_err(|_| eio())?;
        let end = start.checked_add(len).ok_or_else(eio)?;
        f.data
            .get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short read"))
    }

    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let fault = Self::take_fault(&mut st, |f| matches!(f, Fault::ShortAppend { .. }));
        let used: usize = st.files.values().map(|f| f.data.len()).sum();
        let room = st.capacity.map(|c| c.saturating_sub(used));
        let mut n = data.len();
        if let Some(Fault::ShortAppend { written }) = fault {
            n = n.min(written);
        }
        if let Some(room) = room {
            n = n.min(room);
        }
        let f = st.files.entry(name.to_string()).or_default();
        f.data.extend_from_slice(&data[..n]);
        if n < data.len() {
            return Err(enospc());
        }
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        if Self::take_fault(&mut st, |f| *f == Fault::SyncFails).is_some() {
            return Err(eio());
        }
        let f = st.files.get_mut(name).ok_or_else(|| not_found(name))?;
        f.synced_len = f.data.len();
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        for f in self.lock().files.values_mut() {
            f.entry_durable = true;
        }
        Ok(())
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        if Self::take_fault(&mut st, |f| *f == Fault::TruncateFails).is_some() {
            return Err(eio());
        }
        let f = st.files.get_mut(name).ok_or_else(|| not_found(name))?;
        let len = usize::try_from(len).map_err(|_| eio())?;
        f.data.truncate(len);
        f.synced_len = f.synced_len.min(len);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut st = self.lock();
        if Self::take_fault(&mut st, |f| *f == Fault::RemoveFails).is_some() {
            return Err(eio());
        }
        st.files.remove(name);
        Ok(())
    }

    fn write_atomic(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        if Self::take_fault(&mut st, |f| *f == Fault::WriteAtomicFails).is_some() {
            return Err(enospc());
        }
        st.files.insert(
            name.to_string(),
            MemFile {
                data: data.to_vec(),
                synced_len: data.len(),
                entry_durable: true,
            },
        );
        Ok(())
    }
}
