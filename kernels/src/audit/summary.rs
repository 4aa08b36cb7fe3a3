//! The per-syscall summary of a trace, rendered like `strace -c` (strace(1), `-c`: calls, errors and
//! time per system call, sorted by time).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Calls, errors and total entry-to-exit time of one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Completed calls.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Total entry-to-exit wall time, nanoseconds.
    pub total_ns: u64,
}

/// Per-syscall rows over a whole process tree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Rows by syscall name.
    pub rows: BTreeMap<String, SummaryRow>,
}

impl Summary {
    /// Counts one completed call.
    pub fn add(&mut self, name: &str, failed: bool, dur_ns: u64) {
        let row = match self.rows.get_mut(name) {
            Some(row) => row,
            None => self.rows.entry(name.to_owned()).or_default(),
        };
        row.calls += 1;
        row.errors += u64::from(failed);
        row.total_ns += dur_ns;
    }

    /// Calls of `name` (0 if never made).
    pub fn calls(&self, name: &str) -> u64 {
        self.rows.get(name).map_or(0, |r| r.calls)
    }

    /// The totals over every syscall.
    pub fn total(&self) -> SummaryRow {
        self.rows.values().fold(SummaryRow::default(), |a, r| SummaryRow {
            calls: a.calls + r.calls,
            errors: a.errors + r.errors,
            total_ns: a.total_ns + r.total_ns,
        })
    }

    /// The rows sorted like `strace -c`: by total time, then calls (both descending), then name.
    pub fn sorted(&self) -> Vec<(&str, SummaryRow)> {
        let mut rows: Vec<(&str, SummaryRow)> = self.rows.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        rows.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(b.1.calls.cmp(&a.1.calls)).then(a.0.cmp(b.0)));
        rows
    }

    /// The `strace -c` table: `% time, seconds, usecs/call, calls, errors, syscall`, and a total line.
    pub fn render(&self) -> String {
        let total = self.total();
        let rule = "------ ----------- ----------- --------- --------- ----------------";
        let mut t = String::new();
        let _ = writeln!(t, "% time     seconds  usecs/call     calls    errors syscall\n{rule}");
        let line = |t: &mut String, name: &str, r: SummaryRow| {
            let pct = if total.total_ns == 0 { 0.0 } else { 100.0 * r.total_ns as f64 / total.total_ns as f64 };
            let per_call = r.total_ns.checked_div(r.calls).unwrap_or(0) / 1000;
            let errors = if r.errors == 0 { String::new() } else { r.errors.to_string() };
            let secs = r.total_ns as f64 / 1e9;
            let _ = writeln!(t, "{pct:6.2} {secs:11.6} {per_call:11} {:9} {errors:>9} {name}", r.calls);
        };
        for (name, r) in self.sorted() {
            line(&mut t, name, r);
        }
        let _ = writeln!(t, "{rule}");
        line(&mut t, "total", total);
        t
    }
}
