//! A syscall event stream summed per syscall: what `strace -c` prints (strace(1), `-c`: calls,
//! errors and time per system call, sorted by time), computed from the JSON Lines event log that
//! `kernels::audit` writes (`sovereign trace --log FILE`).
//!
//! The log's lines are JSON objects. The first is the start record (it has a `"start"` key), the
//! last the end record (an `"end"` key); every other line is one completed call, e.g.
//!
//! ```text
//! {"seq":3,"prev":"9f…","pid":4242,"t_us":181,"dur_ns":2310,"nr":257,"name":"openat","ret":-2,"errno":"ENOENT","detail":{"path":"/etc/x"}}
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Error, Result};

/// Calls, errors and total entry-to-exit time of one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Row {
    /// Completed calls.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Total entry-to-exit time, nanoseconds.
    pub total_ns: u64,
}

/// Per-syscall rows of a whole trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Rows by syscall name.
    pub rows: BTreeMap<String, Row>,
}

/// Whether a raw return value is an error: the x86_64 ABI returns `-errno`, from -4095 to -1
/// (given; `mmap` may return addresses that look negative as i64 but lie below -4095).
pub fn is_error(ret: i64) -> bool {
    (-4095..0).contains(&ret)
}

// ANCHOR: summarize
/// **Task `c3w4.syscall-summary` (10 points, with [`Summary::sorted`]).** Sums an event stream.
///
/// Lines are separated by `\n`; skip empty lines. Parse each line with `serde_json`; it must be a
/// JSON object. Skip an object with a `"start"` or an `"end"` key. Any other object is an event
/// and needs `"name"` (a string), `"ret"` (an integer, `as_i64`) and `"dur_ns"` (a non-negative
/// integer, `as_u64`): add one call to the row of `name`, one error when [`is_error`]`(ret)`, and
/// `dur_ns` to its time. Other keys are ignored.
///
/// # Errors
/// [`Error::Malformed`] with the 1-based line number for a line that is not JSON, not an object,
/// or an event without one of the three keys (or with a value of the wrong type).
pub fn summarize(text: &str) -> Result<Summary> {
    todo!("c3w4.syscall-summary")
}
// ANCHOR_END: summarize

impl Summary {
    /// Calls of `name` (0 if never made).
    pub fn calls(&self, name: &str) -> u64 {
        self.rows.get(name).map_or(0, |r| r.calls)
    }

    /// **Task `c3w4.syscall-summary`.** The rows in `strace -c` order: by total time descending,
    /// then calls descending, then name ascending.
    pub fn sorted(&self) -> Vec<(String, Row)> {
        todo!("c3w4.syscall-summary")
    }
}
