//! Week c3w5: quality, monitoring and orchestration.
//!
//! A model in production fails quietly: its inputs drift, a column fills with nulls, a pipeline
//! step half-writes its output and a restart runs it twice, the code that does all this grows
//! branches nobody can follow. You build the checks and the machinery that catch each of these:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`drift`] | the population stability index over quantile bins; the two-sample Kolmogorov–Smirnov statistic and its asymptotic p-value | `c3w5.psi`, `c3w5.ks` |
//! | [`expect`] | an expectation checker over columns with missing values (not null, between, allowed values, unique, row count) | `c3w5.expectations` |
//! | [`dag`] | the run order of a pipeline's steps (Kahn's algorithm, ties by declaration order) and the cycle that prevents one | `c3w5.topo-order` |
//! | [`cache`] | a content-addressed step cache key: BLAKE3 over a canonical, length-prefixed encoding | `c3w5.cache-key` |
//! | [`journal`] | an append-only journal of checksummed records that survives a torn last write | `c3w5.journal` |
//! | [`resume`] | a runner that commits outputs atomically and resumes after a crash without running a finished step again | `c3w5.resume` |
//! | [`complexity`] | cyclomatic (McCabe) and cognitive (Campbell) complexity of every function of a Rust file, over `syn` | `c3w5.complexity` |
//!
//! The graded benchmark `c3w5.drift-bench` times your PSI and KS on a column pair of 1,000,000
//! values as a ratio to the production `kernels::monitor::drift`.
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says what to do
//! and how many points it is worth. `cargo test -p c3w5-quality` runs the visible tests;
//! `cargo xtask grade c3w5` runs them and the hidden ones, which compare your answers with
//! `kernels::monitor::drift`, `kernels::quality::complexity`, numpy and scipy, brute force and
//! crash injection at every write of a run.
#![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod cache;
pub mod complexity;
pub mod dag;
pub mod drift;
pub mod expect;
pub mod journal;
pub mod resume;

// ANCHOR: error
/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration that cannot work (0 bins, a negative epsilon, `min > max`); the message
    /// names the knob.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Input that breaks a documented contract (an empty sample, a NaN, a duplicate key); the
    /// message says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An expectation or a step names a column or a step that does not exist.
    #[error("unknown {kind} `{name}`")]
    Unknown {
        /// What was looked up: `column` or `step`.
        kind: &'static str,
        /// The name that was not found.
        name: String,
    },
    /// The steps' dependencies form a cycle: each step listed runs after the next one, and the
    /// last after the first.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A journal record before the last one is damaged (the last one may be torn by a crash;
    /// anything earlier means the file was corrupted).
    #[error("corrupt journal at byte {offset}: {reason}")]
    CorruptJournal {
        /// Where the damaged record starts.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation failed (a crash injected by a test included).
    #[error("i/o error: {0}")]
    Io(String),
    /// A pipeline step failed.
    #[error("step `{step}` failed: {message}")]
    StepFailed {
        /// The step.
        step: String,
        /// Its error.
        message: String,
    },
    /// The source is not valid Rust.
    #[error("parse error: {0}")]
    Parse(String),
}
// ANCHOR_END: error

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
