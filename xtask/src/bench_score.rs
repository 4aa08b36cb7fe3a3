//! `cargo xtask bench score`: batch scoring of a Parquet file with `kernels::score` against pyarrow +
//! LightGBM `predict` on the same file, both with 2 threads, in the same run.
//!
//! References: Ke et al., "LightGBM", NeurIPS 2017 (both models are LightGBM-style boosted trees with the
//! same settings); the Apache Parquet format (the one file both sides read).
//!
//! `kernels/examples/ml_throughput.rs gen` writes the fraud features (the c3w3 benchmark's data); then
//! `kernels/examples/score_throughput.rs` (release, `RAYON_NUM_THREADS=2`) writes them as
//! `score.parquet`, fits a `kernels::ml::gbm` booster (100 rounds, 31 leaves) on the first 70% and times
//! the whole file through `kernels::score::score` (read row groups, score, write `part=N/` Parquet); and
//! `autograder/peers/score_peer.py` fits LightGBM with the same settings on the same rows and times
//! pyarrow `read_table` + `Booster.predict` + pyarrow `write_table` on the same file. Each side scores its
//! own model (same rounds and leaves, so the same number of tree walks per row; trees differ in their
//! splits). Both also report predict-only rows/s on the rows already in memory. The rounds alternate
//! (kernels, peer, kernels, …) and the best of each is kept. Writes `record.json` and `table.md` under
//! `target/bench/score`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

const THREADS: &str = "2";

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("score"));
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let (rows, reps, rounds) = if quick { (60_000, "1", 1) } else { (1_000_000, "3", 3) };
    crate::bench::build_kernels_example(ws, "ml_throughput", "ml")?;
    let example = crate::bench::build_kernels_example(ws, "score_throughput", "score")?;
    let examples = example.parent().map(PathBuf::from).unwrap_or_default();
    let data = out.join(format!("data-{rows}"));
    let status = Command::new(examples.join("ml_throughput")).arg("gen").arg(&data).arg(rows.to_string()).status()?;
    if !status.success() {
        bail!("ml_throughput gen failed ({status})");
    }
    let python = ws.peer_python().filter(|py| {
        Command::new(py).args(["-c", "import lightgbm, pyarrow, numpy"]).output().is_ok_and(|o| o.status.success())
    });
    let data_arg = data.to_string_lossy().into_owned();
    let (mut ours, mut peer): (Option<Value>, Option<Value>) = (None, None);
    let mut skipped = None;
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: kernels::score…", round + 1);
        let mut cmd = Command::new(&example);
        cmd.args([data_arg.as_str(), reps]).env("RAYON_NUM_THREADS", THREADS);
        let r = run_json(&mut cmd, "score_throughput")?;
        ours = Some(best(ours, r));
        match &python {
            Some(py) => {
                eprintln!("round {}/{rounds}: pyarrow + LightGBM…", round + 1);
                let mut cmd = Command::new(py);
                cmd.arg(ws.root.join("autograder/peers/score_peer.py")).args([data_arg.as_str(), reps, THREADS]);
                let r = run_json(&mut cmd, "score_peer.py")?;
                peer = Some(best(peer, r));
            }
            None => skipped = Some("the venv lacks lightgbm or pyarrow (run `cargo xtask peers`)"),
        }
    }
    std::fs::remove_dir_all(&data).ok();
    let ours = ours.unwrap_or_default();
    let ratio = |key: &str| -> Value {
        match (&peer, ours[key].as_f64()) {
            (Some(p), Some(o)) => p[key].as_f64().map_or(Value::Null, |p| json!(o / p)),
            _ => Value::Null,
        }
    };
    let record = json!({
        "benchmark": "score",
        "quick": quick,
        "threads": THREADS,
        "rows": rows,
        "rounds": rounds,
        "kernels": ours,
        "peer": peer.clone().unwrap_or_else(|| json!({"skipped": skipped})),
        "ratios": {
            "score_rows_per_s": ratio("score_rows_per_s"),
            "predict_only_rows_per_s": ratio("predict_only_rows_per_s"),
        },
        "machine": crate::bench::machine(),
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written: {}", out.display());
    Ok(())
}

/// Runs a measuring program and parses the one JSON object it prints.
fn run_json(cmd: &mut Command, name: &str) -> Result<Value> {
    let output = cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("running {name}"))?;
    if !output.status.success() {
        bail!("{name} failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).with_context(|| format!("{name} printed no JSON"))
}

/// The better of two measurements (the one with more scoring rows/s).
fn best(old: Option<Value>, new: Value) -> Value {
    match old {
        Some(old) if old["score_rows_per_s"].as_f64() >= new["score_rows_per_s"].as_f64() => old,
        _ => new,
    }
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
        None => "–".into(),
    }
}

fn table(r: &Value) -> String {
    let (k, p) = (&r["kernels"], &r["peer"]);
    let mut t = format!(
        "## Batch scoring of one Parquet file ({} rows × {} features, {} row groups), {} threads\n\n",
        r["rows"],
        k["cols"],
        k["row_groups"],
        r["threads"].as_str().unwrap_or("?")
    );
    t += "Each side scores its own boosted model (100 rounds, 31 leaves, the same training rows); best of \
          the rounds.\n\n";
    t += "| path | kernels rows/s | pyarrow + LightGBM rows/s | kernels ÷ peer |\n|---|---|---|---|\n";
    t += &format!(
        "| read + score + write Parquet | {} | {} | {} |\n",
        num(&k["score_rows_per_s"]),
        num(&p["score_rows_per_s"]),
        num(&r["ratios"]["score_rows_per_s"])
    );
    t += &format!(
        "| predict only (rows in memory) | {} | {} | {} |\n",
        num(&k["predict_only_rows_per_s"]),
        num(&p["predict_only_rows_per_s"]),
        num(&r["ratios"]["predict_only_rows_per_s"])
    );
    if let Some(s) = p.get("skipped") {
        t += &format!("\npeer skipped: {}\n", s.as_str().unwrap_or(""));
    } else {
        t += &format!(
            "\nkernels: {} parts; the pipeline runs at {:.2}× its own predict-only rate. Peer: LightGBM {}, pyarrow {}.\n",
            k["parts"],
            k["score_rows_per_s"].as_f64().unwrap_or(0.0) / k["predict_only_rows_per_s"].as_f64().unwrap_or(f64::NAN),
            p["lightgbm"].as_str().unwrap_or("?"),
            p["pyarrow"].as_str().unwrap_or("?")
        );
    }
    t
}
