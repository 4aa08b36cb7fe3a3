//! Week c3w4: inference systems.
//!
//! A fraud model is trained; now it has to answer. You build the parts of the
//! serving path that decide its latency, its rollouts and its audit trail:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`flat`] | a fitted forest flattened into struct-of-arrays nodes, one row scored (Asadi, Lin & de Vries, IEEE TKDE 2014) | `c3w4.flatten` |
//! | [`batch`] | batch prediction over blocks of rows on scoped threads | `c3w4.batch-predict` |
//! | [`batcher`] | a micro-batcher with a deadline and a bounded queue (Crankshaw et al., Clipper, NSDI 2017) | `c3w4.micro-batcher` |
//! | [`sticky`] | sticky A/B assignment: FNV-1a 64 and MurmurHash3's `fmix64` | `c3w4.sticky-hash` |
//! | [`stats`] | the two-proportion z-test and Welch's t-test (Welch, Biometrika 1947) | `c3w4.z-test`, `c3w4.welch` |
//! | [`summary`] | a JSON Lines syscall event stream summed per syscall, like `strace -c` | `c3w4.syscall-summary` |
//! | [`chain`] | verification of a BLAKE3 hash-chained event log (the BLAKE3 paper, 2020) | `c3w4.hash-chain` |
//!
//! Given (no task): the error type, the [`flat::FlatModel`] layout and its
//! constructors' signatures, the batcher's config and handles, and the normal
//! and Student-t distributions, which you call from [`kernels::abtest`]
//! (`normal_sf`, `normal_ppf`, `student_t_sf`, `student_t_ppf`): the tests are
//! your work, the special functions are not. The benchmark task
//! `c3w4.serving-bench` grades your batch prediction throughput and your
//! micro-batcher's latency as ratios to `kernels`.
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment
//! says what to do and how many points it is worth. `cargo test -p c3w4-serving`
//! runs the visible tests; `cargo xtask grade c3w4` runs them and the hidden
//! ones. The production versions live in [`kernels::ml::flat`],
//! `kernels::serve_model::batcher`, [`kernels::abtest`] and `kernels::audit`:
//! the hidden tests compare your answers with theirs and with scipy.
// STUB-ONLY: #![allow(unused_variables, dead_code, unused_imports, unused_mut, clippy::ptr_arg)]

pub mod batch;
pub mod batcher;
pub mod chain;
pub mod flat;
pub mod stats;
pub mod sticky;
pub mod summary;

pub use kernels::ml::Matrix;

/// Everything that can go wrong in this crate. Bad input is an error, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument is out of range, inconsistent with another, or not finite.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The micro-batcher's queue is full: the caller should back off (an HTTP server answers 503).
    #[error("busy: the queue of {capacity} requests is full")]
    Busy {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The micro-batcher was shut down (or its worker is gone).
    #[error("the batcher is shut down")]
    Closed,
    /// The scoring function panicked while scoring this request's batch.
    #[error("the scorer panicked")]
    ScorerPanicked,
    /// The scoring function returned something unusable (another number of scores than rows).
    #[error("scorer error: {0}")]
    Scorer(String),
    /// A line of an event stream is not a record of the expected shape.
    #[error("line {line}: malformed record: {reason}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A hash-chained log does not verify: the first bad line and what is wrong with it.
    #[error("line {line}: {check:?}")]
    Chain {
        /// 1-based line number of the first bad line.
        line: u64,
        /// The check that failed.
        check: chain::ChainCheck,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`].
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidInput(msg.into()))
}
