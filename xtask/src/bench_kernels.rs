//! `cargo xtask bench kernels`: `kernels` against SimSIMD, NumPy and the machine's own bandwidth, as ratios.
//!
//! Runs `kernels/examples/bench_vs_peers.rs` (release, with the `gpu` feature
//! unless `--quick`) and `autograder/peers/kernels_peers.py` on the same
//! workloads in the same run, then writes `record.json` (every row, the machine),
//! `table.md` (ratios, with the targets) and `plot.svg` (distance speed
//! as a ratio to SimSIMD against the dimension).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};
use crate::tools::cargo;

/// What `bench kernels` does: measure and write everything, or only redraw the table and plot of a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Measure { quick: bool },
    RenderRecord,
}

pub fn run(ws: &Workspace, mode: Mode, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("kernels"));
    std::fs::create_dir_all(&out)?;
    let quick = match mode {
        Mode::Measure { quick } => quick,
        Mode::RenderRecord => {
            let record = crate::bench::read_record(&out.join("record.json"))?;
            let rows = record["rows"].as_array().cloned().unwrap_or_default();
            let notes: Vec<String> =
                record["notes"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(String::from)).collect();
            return write_report(&out, &rows, &notes, &record);
        }
    };
    let mut rows = ours(quick)?;
    let mut notes = Vec::new();
    match ws.peer_python() {
        None => notes.push("SimSIMD, NumPy: skipped (run `cargo xtask peers` to install them)".to_string()),
        Some(python) => {
            let script = ws.root.join("autograder/peers/kernels_peers.py");
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mut sections = vec![("distances", 1), ("gemm", threads), ("exact", threads)];
            if quick {
                sections.remove(1);
            }
            for (section, threads) in sections {
                let spinner = autograder::progress::spinner(format!(
                    "running the peers SimSIMD and NumPy ({section}, {threads} BLAS thread(s))"
                ));
                let mut cmd = Command::new(&python);
                cmd.arg(&script).args(["--section", section]).env("OPENBLAS_NUM_THREADS", threads.to_string());
                cmd.env("OMP_NUM_THREADS", threads.to_string());
                cmd.args(["--threads", &threads.to_string()]);
                if quick {
                    cmd.args([
                        "--dims",
                        "128,768",
                        "--dtypes",
                        "f32,i8",
                        "--min-seconds",
                        "0.03",
                        "--exact-base",
                        "20000",
                    ]);
                }
                let output = cmd.output().with_context(|| format!("running {}", script.display()))?;
                spinner.finish_and_clear();
                if !output.status.success() {
                    let err = String::from_utf8_lossy(&output.stderr);
                    notes.push(format!("peers ({section}): failed: {}", err.lines().last().unwrap_or("")));
                    continue;
                }
                match serde_json::from_slice::<Value>(&output.stdout) {
                    Ok(Value::Array(peer_rows)) => rows.extend(peer_rows),
                    _ => notes.push(format!("peers ({section}): printed no rows")),
                }
            }
        }
    }
    let record = json!({ "rows": rows, "notes": notes, "machine": crate::bench::machine(), "quick": quick });
    write_report(&out, &rows, &notes, &record)
}

/// Writes `record.json`, `table.md` and `plot.svg` into `out` and prints the table.
fn write_report(out: &std::path::Path, rows: &[Value], notes: &[String], record: &Value) -> Result<()> {
    let mut table = table(rows);
    for note in notes {
        table.push_str(&format!("\nNote: {note}\n"));
    }
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(record)?)?;
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(out.join("plot.svg"), plot(rows, &record["machine"]))?;
    println!("{table}");
    println!(
        "\n  record {}\n  table  {}\n  plot   {}",
        out.join("record.json").display(),
        out.join("table.md").display(),
        out.join("plot.svg").display()
    );
    Ok(())
}

/// Builds and runs the Rust side; its stdout is a JSON array of rows.
fn ours(quick: bool) -> Result<Vec<Value>> {
    let mut cmd = cargo();
    // Only the modules measured: no tantivy to build.
    cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--example", "bench_vs_peers"]);
    // `ann` (exact k-NN) has no dependencies; `gpu` brings wgpu.
    cmd.args(["--features", if quick { "ann" } else { "ann,gpu" }]);
    cmd.arg("--");
    if quick {
        cmd.arg("--quick");
    }
    eprintln!("building and running kernels/examples/bench_vs_peers (release)…");
    let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo")?;
    if !output.status.success() {
        bail!("bench_vs_peers failed ({})", output.status);
    }
    match serde_json::from_slice(&output.stdout).context("reading bench_vs_peers' rows")? {
        Value::Array(rows) => Ok(rows),
        _ => bail!("bench_vs_peers printed no rows"),
    }
}

/// `(op, dtype, shape, impl)` → row.
fn index(rows: &[Value]) -> BTreeMap<(String, String, String, String), &Value> {
    let s = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    rows.iter().map(|r| ((s(r, "op"), s(r, "dtype"), s(r, "shape"), s(r, "impl")), r)).collect()
}

fn rate(row: Option<&&Value>) -> Option<f64> {
    row.and_then(|r| r["rate"].as_f64())
}

fn ratio_cell(ours: f64, peer: Option<f64>) -> (String, String) {
    match peer {
        Some(p) if p > 0.0 => (fmt(p), format!("{:.2}×", ours / p)),
        _ => ("–".into(), "–".into()),
    }
}

/// The numbers in a shape label (`16x1024x768` → [16, 1024, 768]), for sorting.
fn numbers(shape: &str) -> Vec<u64> {
    shape.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

fn fmt(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown report: one section per kind of comparison.
fn table(rows: &[Value]) -> String {
    let idx = index(rows);
    // In (op, dtype, sizes) order, sizes compared as numbers (128 before 1536).
    let mut ordered: Vec<_> = idx.iter().filter(|(k, _)| k.3 == "kernels").collect();
    ordered.sort_by_key(|(k, _)| (k.0.clone(), k.1.clone(), numbers(&k.2), k.2.clone()));
    let kernels_rows = || ordered.iter().copied();
    let mut out = String::new();

    out.push_str("### Distances: kernels vs SimSIMD and NumPy (one thread, 16 queries × 1024 vectors)\n\n");
    out.push_str(
        "Speed ratio = kernels pairs/s over the peer's; ≥ 1 means kernels is faster. Target: ≥ 0.9× SimSIMD. \
         – means no peer figure: the peers were not installed (see the notes), or the peer has no such kernel \
         here (NumPy has no f16, bf16 or i8 BLAS path; SimSIMD's bf16 is not measured).\n\n",
    );
    out.push_str(
        "| op | dtype | shape | kernels pairs/s | SimSIMD | kernels / SimSIMD | NumPy (BLAS) | kernels / NumPy |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for ((op, dtype, shape, _), row) in kernels_rows().filter(|(_, r)| r["unit"] == "pairs/s") {
        let ours = row["rate"].as_f64().unwrap_or(0.0);
        let key = |imp: &str| (op.clone(), dtype.clone(), shape.clone(), imp.to_string());
        let (simsimd, vs_simsimd) = ratio_cell(ours, rate(idx.get(&key("simsimd"))));
        let (numpy, vs_numpy) = ratio_cell(ours, rate(idx.get(&key("numpy"))));
        out.push_str(&format!(
            "| {op} | {dtype} | {shape} | {} | {simsimd} | {vs_simsimd} | {numpy} | {vs_numpy} |\n",
            fmt(ours)
        ));
    }

    let bandwidth = |threads: u64| {
        kernels_rows()
            .find(|(k, r)| k.0 == "stream_read" && r["threads"].as_u64() == Some(threads))
            .and_then(|(_, r)| r["rate"].as_f64())
    };
    out.push_str("\n### Memory-bound kernels as a fraction of the streaming-read bandwidth\n\n");
    out.push_str(
        "Bandwidth is a SIMD sum over a buffer several times the last-level cache, on as many threads as the \
         kernel used. Targets: f32 dot over ≥ 16M elements ≥ 0.85; quantised GEMV ≥ 0.7. *Hot* rows reuse one \
         matrix, which a large L3 holds after the first pass, so they can exceed 1; *cold* rows rotate through \
         copies several times the L3 and are the fair roofline test.\n\n",
    );
    out.push_str(
        "| kernel | dtype | shape | threads | GB/s | bandwidth GB/s | fraction |\n|---|---|---|---|---|---|---|\n",
    );
    for ((op, dtype, shape, _), row) in kernels_rows().filter(|(_, r)| r["unit"] == "GB/s") {
        let threads = row["threads"].as_u64().unwrap_or(1);
        let ours = row["rate"].as_f64().unwrap_or(0.0);
        let (bw, frac) = match bandwidth(threads) {
            Some(bw) if op != "stream_read" => (fmt(bw), format!("{:.2}", ours / bw)),
            _ => ("–".into(), "–".into()),
        };
        out.push_str(&format!("| {op} | {dtype} | {shape} | {threads} | {} | {bw} | {frac} |\n", fmt(ours)));
    }

    let flops: Vec<_> = kernels_rows().filter(|(_, r)| r["unit"] == "GFLOP/s").collect();
    if !flops.is_empty() {
        out.push_str("\n### GEMM: kernels vs NumPy (OpenBLAS), all cores\n\nTargets: f32 GEMM ≥ 1.0× NumPy at 1024³, ≥ 0.9× at 256³.\n\n");
        out.push_str("| op | shape | kernels GFLOP/s | NumPy GFLOP/s | kernels / NumPy |\n|---|---|---|---|---|\n");
        for ((op, dtype, shape, _), row) in flops {
            let ours = row["rate"].as_f64().unwrap_or(0.0);
            let (numpy, ratio) =
                ratio_cell(ours, rate(idx.get(&(op.clone(), dtype.clone(), shape.clone(), "numpy".into()))));
            out.push_str(&format!("| {op} | {shape} | {} | {numpy} | {ratio} |\n", fmt(ours)));
        }
    }

    let knn: Vec<_> = kernels_rows().filter(|(_, r)| r["unit"] == "queries/s").collect();
    if !knn.is_empty() {
        out.push_str(
            "\n### Exact k-NN: kernels::ann::FlatIndex vs faiss IndexFlatL2, all cores\n\n\
             Both compute ‖q‖² + ‖x‖² − 2 q·x with a GEMM and select the top 10. Target: ≥ 1.0× faiss.\n\n",
        );
        out.push_str("| op | shape | kernels queries/s | faiss queries/s | kernels / faiss |\n|---|---|---|---|---|\n");
        for ((op, dtype, shape, _), row) in knn {
            let ours = row["rate"].as_f64().unwrap_or(0.0);
            let (faiss, ratio) =
                ratio_cell(ours, rate(idx.get(&(op.clone(), dtype.clone(), shape.clone(), "faiss".into()))));
            out.push_str(&format!("| {op} | {shape} | {} | {faiss} | {ratio} |\n", fmt(ours)));
        }
    }

    let gpu: Vec<_> = idx.iter().filter(|(k, _)| k.3 == "gpu").collect();
    if !gpu.is_empty() {
        out.push_str("\n### GPU (wgpu) vs CPU (kernels), same op and shape, transfers included\n\n");
        out.push_str("| op | dtype | shape | unit | GPU | CPU | GPU / CPU |\n|---|---|---|---|---|---|---|\n");
        for ((op, dtype, shape, _), row) in gpu {
            let g = row["rate"].as_f64().unwrap_or(0.0);
            let (cpu, ratio) =
                ratio_cell(g, rate(idx.get(&(op.clone(), dtype.clone(), shape.clone(), "kernels".into()))));
            let unit = row["unit"].as_str().unwrap_or("");
            out.push_str(&format!("| {op} | {dtype} | {shape} | {unit} | {} | {cpu} | {ratio} |\n", fmt(g)));
        }
    }
    out
}

/// Distance speed as a ratio to SimSIMD against the dimension, one line per op and dtype.
fn plot(rows: &[Value], machine: &Value) -> String {
    let idx = index(rows);
    let mut series: Vec<Series> = Vec::new();
    for ((op, dtype, shape, imp), row) in &idx {
        if imp != "kernels" || row["unit"] != "pairs/s" || dtype == "f16" {
            continue;
        }
        let Some(peer) = rate(idx.get(&(op.clone(), dtype.clone(), shape.clone(), "simsimd".into()))) else {
            continue;
        };
        let Some(d) = shape.rsplit('x').next().and_then(|d| d.parse::<f64>().ok()) else { continue };
        let ratio = row["rate"].as_f64().unwrap_or(0.0) / peer;
        let name = format!("{op} {dtype}");
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((d, ratio)),
            None => series.push(Series { name, points: vec![(d, ratio)] }),
        }
    }
    let peer = json!({ "SimSIMD": crate::peers::pinned_version("simsimd") });
    let caption = crate::bench::caption(&peer, machine);
    let chart = Chart {
        title: "kernels distance speed relative to SimSIMD (one thread)",
        x: Axis { label: "vector dimension d", unit: "elements", scale: Scale::Auto },
        y: Axis { label: "kernels ÷ SimSIMD", unit: "ratio of pairs/s", scale: Scale::LogIfPositive },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_divides_by_the_peer_of_the_same_op_dtype_and_shape() {
        let rows = vec![
            json!({"op":"dot","dtype":"f32","shape":"16x1024x128","impl":"kernels","unit":"pairs/s","rate":2.0e8,"threads":1}),
            json!({"op":"dot","dtype":"f32","shape":"16x1024x128","impl":"simsimd","unit":"pairs/s","rate":1.0e8}),
            json!({"op":"dot","dtype":"f32","shape":"16x1024x1536","impl":"kernels","unit":"pairs/s","rate":5.0e6,"threads":1}),
            json!({"op":"dot","dtype":"f32","shape":"16x1024x768","impl":"kernels","unit":"pairs/s","rate":1.0e7,"threads":1}),
            json!({"op":"stream_read","dtype":"f32","shape":"1 thread","impl":"kernels","unit":"GB/s","rate":10.0,"threads":1}),
            json!({"op":"dot","dtype":"f32","shape":"16M","impl":"kernels","unit":"GB/s","rate":9.0,"threads":1}),
        ];
        let t = table(&rows);
        assert!(t.contains("| dot | f32 | 16x1024x128 | 200.0M | 100.0M | 2.00× |"), "{t}");
        assert!(t.contains("| dot | f32 | 16x1024x768 | 10.0M | – | – |"), "{t}");
        assert!(t.find("16x1024x768").unwrap() < t.find("16x1024x1536").unwrap(), "sizes sort as numbers");
        assert!(t.contains("| dot | f32 | 16M | 1 | 9.00 | 10.00 | 0.90 |"), "{t}");
        let svg = plot(&rows, &json!({ "cpu": "Intel(R) Xeon(R) Processor", "cores": 2 }));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("peer: SimSIMD 6.5.16 · machine: Intel Xeon, 2 vCPU"), "{svg}");
    }
}
