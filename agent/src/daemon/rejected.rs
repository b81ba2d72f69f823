//! The drop folder's `rejected/`: where an export that will not be sent goes, with a note
//! for school IT beside it saying why (read by `core` when it refuses a file). Only the
//! newest refused file lingers there: the folder is emptied before each move, so a school's
//! exports never pile up on the Pi.

use std::path::Path;

/// Folder inside the drop folder for exports that could not be read.
pub const REJECTED_DIR: &str = "rejected";

/// Moves an export that will not be sent into `rejected/` with a note for school IT beside
/// it, removing older rejected files first so at most one lingers.
pub(super) fn move_to_rejected(path: &Path, note_text: &str) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let dir = parent.join(REJECTED_DIR);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    let name = path.file_name().unwrap_or_default();
    let target = dir.join(name);
    std::fs::rename(path, &target)?;
    let mut note = target.into_os_string();
    note.push(".error.txt");
    std::fs::write(note, note_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_export_is_moved_aside_and_only_the_newest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.csv");
        let second = dir.path().join("b.csv");
        std::fs::write(&first, "x").unwrap();
        std::fs::write(&second, "y").unwrap();
        move_to_rejected(&first, "bad").unwrap();
        move_to_rejected(&second, "worse").unwrap();
        let rejected = dir.path().join(REJECTED_DIR);
        let mut names: Vec<_> = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b.csv", "b.csv.error.txt"]);
        assert!(!second.exists());
    }
}
