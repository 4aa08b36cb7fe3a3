//! The grading engine: week specs, isolated test runs, reports, history and stub generation.
//!
//! The flow of one `cargo xtask grade c4w3`:
//! 1. [`spec`] reads `autograder/weeks/c4w3/week.toml` (tasks, points, hints, limits).
//! 2. [`harness`] writes a throw-away cargo workspace under `.grade/` that links
//!    exactly one implementation of the week (the lab, the solution or a
//!    submission) plus the graded test files, and builds it.
//! 3. [`runner`] runs each graded test in its own process with a timeout, a
//!    memory limit and a nonce-checked result file; [`services`] starts what
//!    the week's tests talk to (a real MLflow server) once for the whole run.
//! 4. [`report`] scores the outcomes and renders them (terminal, JSON,
//!    Gradescope); [`history`] appends the run to the learner's history.
//!
//! [`stubs`] turns `solutions/` into `labs/`, and [`api`] compares their public APIs.
//! [`pins`] makes CI's harness builds reuse the workspace test build; [`progress`] draws the
//! spinners and bars of long steps (on a terminal only).

pub mod api;
pub mod grade;
pub mod harness;
pub mod history;
pub mod pins;
pub mod progress;
pub mod report;
pub mod runner;
pub mod services;
pub mod spec;
pub mod stubs;
pub mod workspace;

pub use grade::{GradeOptions, Mode, grade};
pub use report::Report;
pub use spec::WeekSpec;
pub use workspace::{Workspace, cargo_command, without_cargo_run_env};
