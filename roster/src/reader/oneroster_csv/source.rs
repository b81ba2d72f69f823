//! Where the member files are: a folder, or the entries of a `.zip`. The reader opens each
//! member file through here, by name and without case, and gets a bounded byte stream with the
//! path its errors should show; an archive that is broken, climbs out of itself, or would
//! inflate too far is refused before its members are read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::deviation::shown;
use crate::reader::error::{open, ReadError, ReadErrorKind};
use crate::reader::format::Format;

/// The largest member of a `.zip` export read, uncompressed. Real rosters are a few MiB; a
/// bigger member is a broken or hostile archive (a zip bomb), refused before it is inflated.
pub const MAX_MEMBER_BYTES: u64 = 512 << 20;

/// More entries than any OneRoster export has; a bigger central directory is refused.
const MAX_ZIP_ENTRIES: usize = 10_000;

/// Where the member files are: a folder, or the entries of a zip archive.
pub(super) enum Source {
    Folder {
        root: PathBuf,
        /// Lower-cased file name -> path.
        files: HashMap<String, PathBuf>,
    },
    Zip {
        root: PathBuf,
        archive: zip::ZipArchive<BufReader<File>>,
        /// Lower-cased file name -> (entry index, entry name).
        files: HashMap<String, (usize, String)>,
    },
}

impl Source {
    pub(super) fn open(path: &Path) -> Result<Source, ReadError> {
        if path.is_dir() {
            Source::open_folder(path)
        } else {
            Source::open_zip(path)
        }
    }

    /// Lists a folder's files; when it holds no export files but exactly one folder, the
    /// export is taken to be in that folder (an unpacked zip with a top folder).
    fn open_folder(path: &Path) -> Result<Source, ReadError> {
        let list = |dir: &Path| -> Result<(HashMap<String, PathBuf>, Vec<PathBuf>), ReadError> {
            let mut files = HashMap::new();
            let mut dirs = Vec::new();
            let entries = std::fs::read_dir(dir).map_err(|e| ReadError::new(dir, e.into()))?;
            for entry in entries {
                let entry = entry.map_err(|e| ReadError::new(dir, e.into()))?;
                let path = entry.path();
                let kind = entry
                    .file_type()
                    .map_err(|e| ReadError::new(&path, e.into()))?;
                // A link may lead anywhere on the machine, and its target's first line would
                // land in an error message: an export folder holds its own files.
                if kind.is_symlink() {
                    return Err(ReadError::new(
                        &path,
                        ReadErrorKind::Syntax {
                            format: Format::OneRosterCsv,
                            reason: "is a symbolic link; an export folder must hold its files \
                                     themselves, so the link is not followed"
                                .into(),
                        },
                    ));
                }
                if kind.is_dir() {
                    dirs.push(path);
                } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    files.insert(name.to_ascii_lowercase(), path);
                }
            }
            Ok((files, dirs))
        };
        let (files, dirs) = list(path)?;
        let has_export = |files: &HashMap<String, PathBuf>| {
            files.contains_key("users.csv") || files.contains_key("manifest.csv")
        };
        if let ([only], false) = (dirs.as_slice(), has_export(&files)) {
            let (inner, _) = list(only)?;
            if has_export(&inner) {
                return Ok(Source::Folder {
                    root: only.clone(),
                    files: inner,
                });
            }
        }
        Ok(Source::Folder {
            root: path.to_owned(),
            files,
        })
    }

    /// Reads a zip's central directory. Members may sit at the top or in one top folder;
    /// a member path that climbs out (`..`) or is absolute makes the archive refused.
    fn open_zip(path: &Path) -> Result<Source, ReadError> {
        let refuse = |reason: String| {
            ReadError::new(
                path,
                ReadErrorKind::Syntax {
                    format: Format::OneRosterCsv,
                    reason,
                },
            )
        };
        let mut archive = zip::ZipArchive::new(open(path)?)
            .map_err(|e| refuse(format!("not a zip archive: {e}")))?;
        if archive.len() > MAX_ZIP_ENTRIES {
            return Err(refuse(format!(
                "the archive has {} entries, more than the {MAX_ZIP_ENTRIES} allowed",
                archive.len()
            )));
        }
        let mut files: HashMap<String, (usize, usize, String)> = HashMap::new();
        for index in 0..archive.len() {
            let entry = archive
                .by_index(index)
                .map_err(|e| refuse(format!("entry {index} cannot be read: {e}")))?;
            let name = entry.name().to_owned();
            let Some(enclosed) = entry.enclosed_name() else {
                return Err(
                    refuse("an entry's path leaves the archive (`..` or absolute)".into())
                        .in_field(shown(&name)),
                );
            };
            if entry.is_dir() || name.starts_with("__MACOSX") {
                continue;
            }
            let depth = enclosed
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count();
            let Some(file) = enclosed.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if depth > 2 {
                continue;
            }
            let key = file.to_ascii_lowercase();
            match files.get(&key) {
                Some(&(_, d, _)) if d < depth => {}
                Some(&(_, d, ref other)) if d == depth => {
                    return Err(refuse(format!(
                        "two entries are named {file}: {} and {}",
                        shown(other),
                        shown(&name)
                    )));
                }
                _ => {
                    files.insert(key, (index, depth, name));
                }
            }
        }
        Ok(Source::Zip {
            root: path.to_owned(),
            archive,
            files: files
                .into_iter()
                .map(|(key, (index, _, name))| (key, (index, name)))
                .collect(),
        })
    }

    /// The folder or archive, for error messages.
    pub(super) fn root(&self) -> &Path {
        match self {
            Source::Folder { root, .. } | Source::Zip { root, .. } => root,
        }
    }

    /// Opens a member file by name (without case), with the path errors should show.
    pub(super) fn member(&mut self, name: &str) -> Result<Option<Member<'_>>, ReadError> {
        let key = name.to_ascii_lowercase();
        match self {
            Source::Folder { files, .. } => {
                let Some(path) = files.get(&key) else {
                    return Ok(None);
                };
                let input: Box<dyn BufRead> = Box::new(open(path)?);
                Ok(Some((path.clone(), input)))
            }
            Source::Zip {
                root,
                archive,
                files,
            } => {
                let Some((index, entry_name)) = files.get(&key) else {
                    return Ok(None);
                };
                let path = root.join(entry_name);
                let entry = archive.by_index(*index).map_err(|e| {
                    ReadError::new(&path, std::io::Error::other(e.to_string()).into())
                })?;
                if entry.size() > MAX_MEMBER_BYTES {
                    return Err(ReadError::new(
                        &path,
                        ReadErrorKind::TooLarge {
                            limit: MAX_MEMBER_BYTES,
                        },
                    ));
                }
                let limited = Capped {
                    inner: entry,
                    left: MAX_MEMBER_BYTES,
                };
                let input: Box<dyn BufRead + '_> =
                    Box::new(BufReader::with_capacity(64 * 1024, limited));
                Ok(Some((path, input)))
            }
        }
    }
}

/// A member file: the path errors show, and its bytes.
pub(super) type Member<'a> = (PathBuf, Box<dyn BufRead + 'a>);

/// A zip member's stream, cut off with an error past [`MAX_MEMBER_BYTES`]: the size in the
/// archive's directory is only a claim, and inflating must stop even if it lies.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(std::io::Error::other(format!(
                "the member inflates to more than {MAX_MEMBER_BYTES} bytes"
            ))),
        }
    }
}
