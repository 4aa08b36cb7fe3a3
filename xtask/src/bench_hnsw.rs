//! `cargo xtask bench hnsw`: `kernels::ann::Hnsw` against hnswlib on the same vectors, as ratios.
//!
//! Two data sets: 100,000 clustered 128-d vectors (`datasets::vectors`), and all-MiniLM-L6-v2
//! embeddings (384-d) of 100,000 chunks of the toolchain's Rust documentation with 1,000 held-out
//! chunks as queries, embedded once by `kernels/examples/minilm_corpus.rs` and kept in the cache
//! folder (skipped with a note when the model is not fetched). For each, runs
//! `kernels/examples/hnsw_vs_peers.rs` (release, 2 threads), which writes the vectors, the queries
//! and their exact top 10, builds the index with `Hnsw::build_parallel` and sweeps ef; then
//! `autograder/peers/hnswlib_sweep.py --threads 2` on the same files (M = 16, efConstruction = 200
//! on both sides). Writes `record.json` (every row per data set, the machine), `table.md` (per
//! data set: queries/s at recall@10 0.95 and 0.99, build time and memory, each as kernels ÷
//! hnswlib, then per ef) and `plot-<set>.svg` (queries/s against recall, single-query and batched).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};
use crate::tools::cargo;

const THREADS: usize = 2;
const EFS: &str = "10,16,24,32,48,64,96,128,256,384,512";
/// The recall@10 levels the speed targets are set at.
const RECALL_TARGETS: [f64; 2] = [0.95, 0.99];

/// One data set of the comparison.
struct DataSet {
    /// Key in the record and the plot's file name (`plot-{name}.svg`).
    name: &'static str,
    /// What the table's heading says the vectors are.
    title: String,
    /// A folder of `data.f32` and `queries.f32` (with their dimension), or `None` for the clustered set.
    vectors: Option<(PathBuf, usize)>,
}

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("hnsw"));
    let n = if quick { 20_000 } else { 100_000 };
    let mut sets =
        vec![DataSet { name: "clustered", title: "clustered vectors (`datasets::vectors`)".into(), vectors: None }];
    let mut notes = Vec::new();
    match minilm_vectors(ws, n) {
        Ok((dir, meta)) => sets.push(DataSet {
            name: "minilm",
            title: format!(
                "all-MiniLM-L6-v2 embeddings of Rust documentation chunks (≤ {} tokens, {} distinct chunks of {} \
                 pages; queries are held-out chunks)",
                meta["max_tokens"], meta["distinct_chunks"], meta["documents"]
            ),
            vectors: Some((dir, meta["dim"].as_u64().unwrap_or(384) as usize)),
        }),
        Err(e) => notes.push(format!("MiniLM data set: skipped ({e:#})")),
    }
    let machine = crate::bench::machine();
    let mut records = Vec::new();
    let mut tables = Vec::new();
    for set in &sets {
        let record = measure(ws, &out, set, n)?;
        let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
        let notes: Vec<String> =
            record["notes"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(String::from)).collect();
        let (n, dim) = (record["n"].as_u64().unwrap_or(0), record["dim"].as_u64().unwrap_or(0));
        tables.push(table(rows, &notes, &set.title, n, dim));
        std::fs::write(out.join(format!("plot-{}.svg", set.name)), plot(rows, &machine, &set.title))?;
        records.push(record);
    }
    let record = json!({ "datasets": records, "notes": notes, "machine": machine, "quick": quick, "threads": THREADS });
    let mut table = tables.join("\n");
    for note in &notes {
        table.push_str(&format!("\nNote: {note}\n"));
    }
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("\n  record, table and plots in {}", out.display());
    Ok(())
}

/// The MiniLM vectors of `n` Rust-documentation chunks (and 1,000 held-out queries), embedded once by
/// `kernels/examples/minilm_corpus.rs` (about ten minutes for 100,000 on two cores) and kept in the cache
/// folder; their folder and `meta.json`.
fn minilm_vectors(ws: &Workspace, n: usize) -> Result<(PathBuf, Value)> {
    let weights = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors")
        .map_err(|e| anyhow::anyhow!("{e} (run `cargo xtask models`)"))?;
    let model = weights.parent().context("model folder")?;
    let dir = ws.cache_dir().join(format!("hnsw-minilm-{n}"));
    let meta = dir.join("meta.json");
    if !meta.is_file() {
        eprintln!("embedding Rust documentation chunks with kernels::nn::bert (once; kept in {})…", dir.display());
        let mut cmd = cargo();
        cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "rag"]);
        cmd.args(["--example", "minilm_corpus", "--"]).arg(model).arg(&dir).args(["--n", &n.to_string()]);
        let status = cmd.env("RAYON_NUM_THREADS", THREADS.to_string()).status().context("running cargo")?;
        if !status.success() {
            bail!("minilm_corpus failed ({status})");
        }
    }
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta)?).context("reading meta.json")?;
    Ok((dir, meta))
}

/// One data set's record: its name, title, size, kernels' rows then hnswlib's, and what was skipped.
fn measure(ws: &Workspace, out: &std::path::Path, set: &DataSet, n: usize) -> Result<Value> {
    let inputs = out.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    eprintln!("building and running kernels/examples/hnsw_vs_peers (release) on the {} set…", set.name);
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "ann"]);
    cmd.args(["--example", "hnsw_vs_peers", "--", "--out"]).arg(&inputs);
    cmd.args(["--n", &n.to_string(), "--threads", &THREADS.to_string()]);
    if let Some((dir, dim)) = &set.vectors {
        cmd.arg("--vectors").arg(dir).args(["--dim", &dim.to_string()]);
    }
    let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo")?;
    if !output.status.success() {
        bail!("hnsw_vs_peers failed ({})", output.status);
    }
    let mut rows: Vec<Value> = serde_json::from_slice(&output.stdout).context("reading hnsw_vs_peers' rows")?;
    let dim = rows.first().and_then(|r| r["dim"].as_u64()).unwrap_or(128);
    let n = rows.first().and_then(|r| r["n"].as_u64()).unwrap_or(n as u64);

    let mut notes = Vec::new();
    match ws.peer_python() {
        None => notes.push("hnswlib: skipped (run `cargo xtask peers` to install it)".to_string()),
        Some(python) => {
            let spinner = autograder::progress::spinner(format!("running hnswlib ({n} vectors, {THREADS} threads)"));
            let script = ws.root.join("autograder/peers/hnswlib_sweep.py");
            let file = |name: &str| inputs.join(name).to_string_lossy().into_owned();
            let output = Command::new(&python)
                .arg(&script)
                .args(["--data", &file("data.f32"), "--queries", &file("queries.f32"), "--truth", &file("truth.i32")])
                .args(["--dim", &dim.to_string(), "--efs", EFS, "--threads", &THREADS.to_string()])
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            spinner.finish_and_clear();
            match serde_json::from_slice::<Vec<Value>>(&output.stdout) {
                Ok(peer) if output.status.success() => rows.extend(peer),
                _ => notes.push(format!(
                    "hnswlib: failed: {}",
                    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
                )),
            }
        }
    }
    std::fs::remove_dir_all(&inputs).ok();
    Ok(json!({ "name": set.name, "title": set.title, "n": n, "dim": dim, "rows": rows, "notes": notes }))
}

fn of<'a>(rows: &'a [Value], imp: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    rows.iter().filter(move |r| r["impl"] == imp)
}

fn num(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or(f64::NAN)
}

/// Queries/s (`key`) at the smallest ef whose recall@10 reaches `target`, and that recall.
fn at_recall(rows: &[Value], imp: &str, key: &str, target: f64) -> Option<(f64, f64)> {
    let mut hits: Vec<&Value> = of(rows, imp).filter(|r| num(r, "recall@10") >= target).collect();
    hits.sort_by_key(|r| r["ef"].as_u64().unwrap_or(u64::MAX));
    hits.first().map(|r| (num(r, key), num(r, "recall@10")))
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 { format!("{:.2}×", a / b) } else { "–".into() }
}

fn table(rows: &[Value], notes: &[String], title: &str, n: u64, dim: u64) -> String {
    let mut out = format!(
        "### HNSW: kernels vs hnswlib on {n} {title} × {dim}\n\nM = 16, efConstruction = 200, \
         {THREADS} threads for builds and batches. \
         *Single*: one query per call on one thread (hnswlib's `knn_query` from a Python loop, as an \
         application calls it per request). *Batch 1*: all queries in one call on one thread (hnswlib's \
         loop runs in C++). *Batch {THREADS}*: all queries over {THREADS} threads. Ratios are kernels ÷ hnswlib; \
         ≥ 1 means kernels is faster.\n\n",
    );
    out.push_str("| at recall@10 ≥ | speed | kernels q/s | hnswlib q/s | kernels / hnswlib |\n|---|---|---|---|---|\n");
    for target in RECALL_TARGETS {
        for (label, ours_key, peer_key) in [
            ("single", "single_qps", "single_qps"),
            ("batch 1", "single_qps", "batch1_qps"),
            ("batch 2", "batch_qps", "batch_qps"),
        ] {
            let k = at_recall(rows, "kernels", ours_key, target);
            let h = at_recall(rows, "hnswlib", peer_key, target);
            let cell = |v: Option<(f64, f64)>| v.map_or("–".to_string(), |(q, r)| format!("{q:.0} (recall {r:.3})"));
            let r = ratio(k.map_or(f64::NAN, |v| v.0), h.map_or(f64::NAN, |v| v.0));
            out.push_str(&format!("| {target} | {label} | {} | {} | {r} |\n", cell(k), cell(h)));
        }
    }
    let first = |imp: &str, key: &str| of(rows, imp).next().map_or(f64::NAN, |r| num(r, key));
    out.push_str("\n| build and memory | kernels | hnswlib | kernels / hnswlib |\n|---|---|---|---|\n");
    for (label, key) in [("build seconds (2 threads)", "build_s"), ("resident memory added, MiB", "rss_mb")] {
        let (k, h) = (first("kernels", key), first("hnswlib", key));
        out.push_str(&format!("| {label} | {k:.2} | {h:.2} | {} |\n", ratio(k, h)));
    }
    out.push_str(&format!(
        "| kernels' own count of its heap bytes, MiB | {:.2} | – | – |\n",
        first("kernels", "memory_mb")
    ));
    out.push_str("\n| ef | kernels recall@10 | hnswlib recall@10 | kernels single q/s | hnswlib single q/s | hnswlib batch 1 q/s | kernels batch 2 q/s | hnswlib batch 2 q/s |\n|---|---|---|---|---|---|---|---|\n");
    for k in of(rows, "kernels") {
        let ef = k["ef"].as_u64().unwrap_or(0);
        let h = of(rows, "hnswlib").find(|h| h["ef"].as_u64() == Some(ef));
        let hv = |key: &str| h.map_or(f64::NAN, |h| num(h, key));
        out.push_str(&format!(
            "| {ef} | {:.4} | {:.4} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            num(k, "recall@10"),
            hv("recall@10"),
            num(k, "single_qps"),
            hv("single_qps"),
            hv("batch1_qps"),
            num(k, "batch_qps"),
            hv("batch_qps")
        ));
    }
    for note in notes {
        out.push_str(&format!("\nNote: {note}\n"));
    }
    out
}

/// Queries/s against recall@10, one line per implementation and way of calling.
fn plot(rows: &[Value], machine: &Value, title: &str) -> String {
    let mut series = Vec::new();
    for (imp, key, name) in [
        ("kernels", "single_qps", "kernels, single"),
        ("hnswlib", "single_qps", "hnswlib, single"),
        ("hnswlib", "batch1_qps", "hnswlib, batch 1 thread"),
        ("kernels", "batch_qps", "kernels, batch 2 threads"),
        ("hnswlib", "batch_qps", "hnswlib, batch 2 threads"),
    ] {
        let points: Vec<(f64, f64)> = of(rows, imp).map(|r| (num(r, "recall@10"), num(r, key))).collect();
        if points.iter().any(|p| p.1.is_finite()) {
            series.push(Series { name: name.to_string(), points });
        }
    }
    let peer = json!({ "hnswlib": crate::peers::pinned_version("hnswlib") });
    let caption = crate::bench::caption(&peer, machine);
    let title = format!("HNSW queries/s against recall@10 (M 16, efConstruction 200): {}", short(title));
    let chart = Chart {
        title: &title,
        x: Axis { label: "recall@10", unit: "fraction", scale: Scale::Linear },
        y: Axis { label: "queries/s", unit: "queries per second", scale: Scale::LogIfPositive },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

/// A data set's title up to its first bracket (the chart's title has one line).
fn short(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_read_at_the_first_ef_reaching_the_recall() {
        let rows = vec![
            json!({"impl": "kernels", "ef": 10, "recall@10": 0.90, "single_qps": 9000.0}),
            json!({"impl": "kernels", "ef": 32, "recall@10": 0.97, "single_qps": 5000.0}),
            json!({"impl": "kernels", "ef": 64, "recall@10": 0.995, "single_qps": 3000.0}),
            json!({"impl": "hnswlib", "ef": 16, "recall@10": 0.96, "single_qps": 4000.0}),
        ];
        assert_eq!(at_recall(&rows, "kernels", "single_qps", 0.95), Some((5000.0, 0.97)));
        assert_eq!(at_recall(&rows, "kernels", "single_qps", 0.99), Some((3000.0, 0.995)));
        assert_eq!(at_recall(&rows, "hnswlib", "single_qps", 0.99), None);
        let t = table(&rows, &[], "clustered vectors", 100, 8);
        assert!(t.contains("| 0.95 | single | 5000 (recall 0.970) | 4000 (recall 0.960) | 1.25× |"), "{t}");
    }
}
