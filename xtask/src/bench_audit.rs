//! `cargo xtask bench audit`: the overhead of `kernels::audit`'s ptrace(2) tracer (what `sovereign
//! trace` runs) against `strace -f -c` on the same syscall-heavy workloads, as ratios to the untraced
//! wall time.
//!
//! Runs `kernels/examples/audit_overhead.rs` (release): `getppid` (the cheapest syscall, the worst
//! case), `read-file` (open/fstat/read/close) and `fork-exec` (a shell loop of `/bin/true`), each
//! untraced, traced, traced with the hash-chained log, and under `strace -f -c -o /dev/null`; writes
//! `record.json` and `table.md`. Needs Debian's `strace` (`cargo xtask ci` installs it).

use std::path::PathBuf;

use anyhow::Result;
use autograder::Workspace;
use serde_json::{Value, json};

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("audit"));
    std::fs::create_dir_all(&out)?;
    // A ptrace stop costs tens of µs in a VM (about 89 µs on the course machine): N = 200,000, best of 5
    // took 13 minutes there. 50,000 × 3 keeps every workload's traced time in seconds, far above noise.
    let (n, reps) = if quick { ("20000", "3") } else { ("50000", "3") };
    let example = crate::bench::build_kernels_example(ws, "audit_overhead", "audit")?;
    eprintln!("measuring with N = {n}, best of {reps}…");
    let measured = crate::bench::run_json(&example, &[n, reps])?;
    let record = json!({
        "title": "kernels::audit (ptrace) overhead against strace -f -c",
        "n": measured["n"], "reps": measured["reps"], "quick": quick,
        "rows": measured["rows"], "machine": crate::bench::machine(),
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

/// The Markdown table of a record: wall times, the ratios to untraced, and ours over strace's.
fn table(record: &Value) -> String {
    use std::fmt::Write as _;
    let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut t = String::new();
    writeln!(
        t,
        "{} — N = {}, best of {}; {} ({} cores)\n",
        record["title"].as_str().unwrap_or(""),
        record["n"],
        record["reps"],
        record["machine"]["cpu"].as_str().unwrap_or("unknown CPU"),
        record["machine"]["cores"],
    )
    .ok();
    writeln!(
        t,
        "| workload | syscalls | untraced ms | audit ms (×) | audit + log ms (×) | strace -f -c ms (×) | audit / strace |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    .ok();
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let (base, audit, log, strace) = (f("untraced_s"), f("audit_s"), f("audit_log_s"), f("strace_s"));
        writeln!(
            t,
            "| {} | {} | {:.1} | {:.1} ({:.1}×) | {:.1} ({:.1}×) | {:.1} ({:.1}×) | {:.2} |",
            r["workload"].as_str().unwrap_or("?"),
            r["syscalls"],
            base * 1e3,
            audit * 1e3,
            audit / base,
            log * 1e3,
            log / base,
            strace * 1e3,
            strace / base,
            audit / strace,
        )
        .ok();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_gives_ratios_to_untraced_and_to_strace() {
        let record = json!({
            "title": "t", "n": 10, "reps": 1, "machine": { "cpu": "cpu", "cores": 2 },
            "rows": [ { "workload": "getppid", "syscalls": 100, "untraced_s": 0.01, "audit_s": 0.1,
                        "audit_log_s": 0.12, "strace_s": 0.2 } ],
        });
        let t = table(&record);
        assert!(t.contains("| getppid | 100 | 10.0 | 100.0 (10.0×) | 120.0 (12.0×) | 200.0 (20.0×) | 0.50 |"), "{t}");
    }
}
