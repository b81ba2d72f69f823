//! The roster pipeline: the pure part of the agent, with no threads of its own beyond the
//! reader's pipelining, no network and no files but the export it reads. The agent's daemon
//! drives it; central reads its own elevliste exports back through it, and the benches
//! measure it.
//!
//! Data flow: [`reader`] streams an export into [`validate`], which collects
//! [`deviation`]s (and, when asked, [`accounting`]: what became of each record) and yields a validated roster -> for a partial export, [`references`] checks what it names
//! but lacks against the [`state`] -> [`diff`] against the [`state`] central is
//! known to have -> [`safety`] filter, which passes or holds the delta; before any of it,
//! [`site`] refuses an export naming a school its site is not registered with. [`report`] turns the
//! results into what the agent's `check` and `diff` commands print. Sealing, queueing and
//! uploading the delta are the agent's.

#![forbid(unsafe_code)]

pub mod accounting;
pub mod deviation;
pub mod diff;
pub mod reader;
pub mod references;
pub mod report;
pub mod safety;
pub mod site;
pub mod state;
pub mod validate;
