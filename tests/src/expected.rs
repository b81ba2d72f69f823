//! Whether central holds a roster: compared as sets, since central returns records in its
//! own order. The end-to-end tests expect the generator's ground truth
//! ([`crate::rostergen::Generated::truth`]); the demo, which also delivers exports it did not
//! generate, reads each export the way the agent will ([`read_as_agent`]), and the
//! generator's own test checks its truth against that reading.

use std::path::Path;

use serde_json::Value;
use skolebro_protocol::{Record, Roster};
use skolebro_roster::reader::{read_export, ReadError, ReaderOptions};
use skolebro_roster::validate::Validated;

/// Why an export could not be read the agent's way.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error("the scratch file {path}: {source}")]
    Scratch {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// What an agent will make of an export (`bytes`, named `name`): read the way the agent
/// reads it, through a scratch file in `scratch` (the readers take a path, and the name
/// picks the format).
pub fn read_as_agent(scratch: &Path, name: &str, bytes: &[u8]) -> Result<Validated, ExpectedError> {
    let path = scratch.join(name);
    let scratch_error = |source| ExpectedError::Scratch {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(scratch).map_err(scratch_error)?;
    std::fs::write(&path, bytes).map_err(scratch_error)?;
    let (_, validated) = read_export(&path, None, &ReaderOptions::default())?;
    std::fs::remove_file(&path).map_err(scratch_error)?;
    Ok(validated)
}

/// Equal as sets: central returns records in its own order.
pub fn same(a: &Roster, b: &Roster) -> bool {
    fn sorted<R: Record + Clone>(records: &[R]) -> Vec<R> {
        let mut records = records.to_vec();
        records.sort_by(|x, y| x.key().cmp(y.key()));
        records
    }
    sorted(&a.schools) == sorted(&b.schools)
        && sorted(&a.students) == sorted(&b.students)
        && sorted(&a.groups) == sorted(&b.groups)
        && sorted(&a.enrollments) == sorted(&b.enrollments)
}

/// The counts of a roster in the shape of central's `/v1/sites/{site}/counts`.
pub fn counts_of(roster: &Roster) -> Value {
    serde_json::json!({
        "schools": roster.schools.len(),
        "students": roster.students.len(),
        "groups": roster.groups.len(),
        "enrollments": roster.enrollments.len(),
    })
}
