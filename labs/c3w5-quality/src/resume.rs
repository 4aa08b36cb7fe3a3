//! Running a pipeline so that a crash costs at most the step it interrupted.
//!
//! Two rules make a runner crash-safe:
//! - **Commit outputs atomically.** A step writes its output to a temporary file, makes it durable
//!   (`sync`) and renames it over the real path. A rename is atomic, so a reader (or the next run)
//!   sees the old output or the new one, never half of one.
//! - **Journal after commit.** Only once the output is in place does the runner append the step's
//!   record to the [journal](crate::journal) and sync it. On restart a step with a record is done;
//!   a step without one runs again (perhaps for the second time, if the crash came between its
//!   rename and its record: running a deterministic step twice is harmless, skipping an
//!   uncommitted one is not).
//!
//! Before appending to a journal that ends in a torn record, the runner cuts the tear off (the
//! same write-sync-rename dance), otherwise the next record would follow garbage and the journal
//! would be corrupt from then on.

use std::collections::HashSet;

use crate::journal::{Fs, decode, encode_record};
use crate::{Error, Result};

// ANCHOR: types
/// One step to run: its name (the journal's record) and the path of the output it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The step's name, unique among the jobs.
    pub name: String,
    /// The path its output is committed to.
    pub output: String,
}

/// What [`run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// The steps it ran, in order.
    pub ran: Vec<String>,
    /// The steps it skipped because the journal holds their record, in order.
    pub skipped: Vec<String>,
}

/// The temporary path `path` is written to before it is renamed into place: `path` + `".tmp"`.
/// Given.
pub fn temp_path(path: &str) -> String {
    format!("{path}.tmp")
}
// ANCHOR_END: types

// ANCHOR: run
/// Task c3w5.resume (12 points): runs `jobs` in order through `fs`, resuming from the journal at
/// `journal`, and calls `work(name)` for each step that must run (it returns the output's bytes
/// or an error message).
///
/// Exactly these operations, in this order (the grader crashes the run at each one in turn and
/// checks the restarted run ends with the same files as a run without a crash, having run no step
/// whose record was in the journal):
/// 1. Two jobs with one name: [`Error::InvalidInput`], before touching anything.
/// 2. `fs.read(journal)` (a missing journal has no records) and [`decode`] it. If it ends in a
///    torn record (`valid_len` < its length): `write(temp, valid prefix)`, `sync(temp)`,
///    `rename(temp, journal)` with `temp = temp_path(journal)`.
/// 3. The records' payloads are the UTF-8 names of the finished steps (a payload that is not
///    UTF-8 is [`Error::CorruptJournal`] at the record's offset).
/// 4. For each job in order: if finished, add it to `skipped`. Otherwise `work(name)` (an `Err`
///    becomes [`Error::StepFailed`] and stops the run), `write(temp, output)`, `sync(temp)`,
///    `rename(temp, output)` with `temp = temp_path(output)`; then `append(journal,
///    encode_record(name))` and `sync(journal)`; add it to `ran`.
///
/// Any error of `fs` stops the run and is returned as it is.
pub fn run(
    fs: &mut dyn Fs,
    journal: &str,
    jobs: &[Job],
    work: &mut dyn FnMut(&str) -> std::result::Result<Vec<u8>, String>,
) -> Result<RunSummary> {
    todo!("c3w5.resume")
}
// ANCHOR_END: run
