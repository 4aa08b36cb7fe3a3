//! `cargo xtask bench registry`: `kernels::registry`'s hashing, signing and sealing throughput as
//! fractions of the machine's `memcpy` bandwidth, measured in the same process.
//!
//! References: the BLAKE3 paper (2020), RFC 8032 (Ed25519), RFC 8439 (ChaCha20-Poly1305).
//!
//! Runs `kernels/examples/registry_throughput.rs` (release, one thread) on a buffer of 256 MiB
//! (16 MiB with `--quick`, which fits the last-level cache of some machines of our kind: say so
//! beside the figure) and writes `record.json` and `table.md` (MB/s and the fraction of `memcpy`).
//! There is no Python peer: `memcpy` is the reference, since every operation reads its input once.

use std::path::PathBuf;

use anyhow::Result;
use autograder::Workspace;
use serde_json::{Value, json};

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("registry"));
    std::fs::create_dir_all(&out)?;
    let (mib, reps) = if quick { ("16", "3") } else { ("256", "5") };
    let example = crate::bench::build_kernels_example(ws, "registry_throughput", "registry")?;
    eprintln!("measuring on {mib} MiB, best of {reps}…");
    let measured = crate::bench::run_json(&example, &[mib, reps])?;
    let record = json!({
        "title": "kernels::registry throughput against memcpy (one thread)",
        "buffer_mib": measured["mib"], "reps": measured["reps"], "quick": quick,
        "rows": measured["rows"], "machine": crate::bench::machine(),
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

/// The Markdown table of a record: MB/s and the fraction of the `memcpy` row.
fn table(record: &Value) -> String {
    use std::fmt::Write as _;
    let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let memcpy = rows.iter().find(|r| r["op"] == "memcpy").and_then(|r| r["mb_per_s"].as_f64()).unwrap_or(f64::NAN);
    let mut t = String::new();
    writeln!(
        t,
        "{} — {} MiB buffer, best of {}; {} ({} cores)\n",
        record["title"].as_str().unwrap_or(""),
        record["buffer_mib"],
        record["reps"],
        record["machine"]["cpu"].as_str().unwrap_or("unknown CPU"),
        record["machine"]["cores"],
    )
    .ok();
    writeln!(t, "| operation | MB/s | fraction of memcpy |\n|---|---:|---:|").ok();
    for r in rows {
        let mbs = r["mb_per_s"].as_f64().unwrap_or(f64::NAN);
        writeln!(t, "| {} | {:.0} | {:.3} |", r["op"].as_str().unwrap_or("?"), mbs, mbs / memcpy).ok();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_divides_by_memcpy() {
        let record = json!({
            "title": "t", "buffer_mib": 1, "reps": 1, "machine": { "cpu": "cpu", "cores": 2 },
            "rows": [ { "op": "memcpy", "mb_per_s": 10000.0 }, { "op": "blake3", "mb_per_s": 2500.0 } ],
        });
        let t = table(&record);
        assert!(t.contains("| memcpy | 10000 | 1.000 |"), "{t}");
        assert!(t.contains("| blake3 | 2500 | 0.250 |"), "{t}");
    }
}
