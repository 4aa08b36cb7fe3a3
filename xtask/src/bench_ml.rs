//! `cargo xtask bench ml`: `kernels::ml` against scikit-learn and LightGBM on fraud features.
//!
//! References: Breiman, "Random Forests", Machine Learning 45 (2001) (scikit-learn's
//! `RandomForestClassifier` vs `kernels::ml::forest`); Ke et al., "LightGBM", NeurIPS 2017 (LightGBM
//! vs `kernels::ml::gbm` and `FlatForest`).
//!
//! For each size, `kernels/examples/ml_throughput.rs gen` writes the fraud features of the seeded
//! card transactions (`datasets::transactions`) as raw little-endian f32 plus a JSON shape; then the
//! example (`run`, release, 2 rayon threads) and `autograder/peers/ml_peers.py` (scikit-learn and
//! LightGBM, 2 threads) read the same files, alternately for a few rounds, each timing the best of a
//! few repetitions: forest fit (100 trees, depth 10, √d features), boosting fit (100 rounds, 31
//! leaves, 255 bins, binning included), batch prediction of the test rows (the booster) and
//! single-row latency (p50/p99). The best over rounds is kept, so machine noise hits both sides
//! alike. Writes `record.json`, `table.md` (ratios kernels ÷ peer, test ROC AUC beside each model)
//! and `plot.svg` (fit time against training rows). `cargo xtask peers` installs the peers.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Map, Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};
use crate::tools::cargo;

const THREADS: &str = "2";

/// Metrics where smaller is better (the rest, rows/s and AUC, are better larger).
const SMALLER_IS_BETTER: [&str; 4] = ["forest_fit_s", "gbm_fit_s", "single_row_p50_us", "single_row_p99_us"];

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("ml"));
    std::fs::create_dir_all(&out)?;
    let (sizes, rounds, reps): (&[usize], usize, &str) =
        if quick { (&[12_000], 2, "1") } else { (&[12_000, 50_000, 100_000], 3, "2") };

    eprintln!("building kernels/examples/ml_throughput (release)…");
    let status = cargo()
        .args(["build", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "ml"])
        .args(["--example", "ml_throughput"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building ml_throughput failed ({status})");
    }
    let example = ws.target_dir().join("release/examples/ml_throughput");

    let mut notes = Vec::new();
    let python = match ws.peer_python() {
        None => {
            notes.push("scikit-learn, LightGBM: skipped (no peers' venv: run `cargo xtask peers`)".to_string());
            None
        }
        Some(python) => {
            if Command::new(&python).args(["-c", "import sklearn, lightgbm"]).output().is_ok_and(|o| o.status.success())
            {
                Some(python)
            } else {
                notes.push("scikit-learn, LightGBM: skipped (the venv lacks them: run `cargo xtask peers`)".into());
                None
            }
        }
    };
    let script = ws.root.join("autograder/peers/ml_peers.py");
    let mut rows = Vec::new();
    for &n in sizes {
        let data = out.join(format!("data-{n}"));
        let status = Command::new(&example).arg("gen").arg(&data).arg(n.to_string()).status()?;
        if !status.success() {
            bail!("ml_throughput gen failed ({status})");
        }
        let (mut ours, mut peer): (Option<Value>, Option<Value>) = (None, None);
        for round in 1..=rounds {
            eprintln!("{n} rows, round {round}/{rounds}: kernels…");
            let output = Command::new(&example)
                .arg("run")
                .arg(&data)
                .arg(reps)
                .env("RAYON_NUM_THREADS", THREADS)
                .stderr(std::process::Stdio::inherit())
                .output()
                .context("running ml_throughput")?;
            if !output.status.success() {
                bail!("ml_throughput run failed ({})", output.status);
            }
            let v: Value = serde_json::from_slice(&output.stdout).context("reading ml_throughput's JSON")?;
            ours = Some(keep_best(ours, v));
            if let Some(python) = &python {
                eprintln!("{n} rows, round {round}/{rounds}: scikit-learn and LightGBM…");
                let output = Command::new(python)
                    .arg(&script)
                    .arg(&data)
                    .arg(reps)
                    .arg(THREADS)
                    .env("OMP_NUM_THREADS", THREADS)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .with_context(|| format!("running {}", script.display()))?;
                if output.status.success() {
                    let v: Value = serde_json::from_slice(&output.stdout).context("reading ml_peers.py's JSON")?;
                    peer = Some(keep_best(peer, v));
                } else {
                    notes.push(format!("peers, {n} rows, round {round}: failed ({})", output.status));
                }
            }
        }
        let (ours, peer) = (ours.unwrap_or(Value::Null), peer.unwrap_or(Value::Null));
        rows.push(json!({ "rows": n, "train_rows": ours["train_rows"], "kernels": ours, "peers": peer, "ratios": ratios(&ours, &peer) }));
    }
    let record = json!({
        "title": "kernels::ml vs scikit-learn (random forest) and LightGBM (boosting) on fraud features",
        "data": "fraud features of datasets::transactions (seed 5, 9 columns, ~3% fraud), first 70% (time order) for training",
        "forest": "100 trees, max_depth 10, sqrt(d) features per node, bootstrap",
        "gbm": "binary log-loss, 100 rounds, 31 leaves, learning rate 0.1, 255 bins, min_data_in_leaf 20",
        "threads": THREADS, "rounds": rounds, "reps": reps, "quick": quick,
        "rows": rows, "notes": notes, "machine": crate::bench::machine(),
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("plot.svg"), plot(&record))?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

/// The better value of every numeric metric of two rounds (smaller for times, larger otherwise).
fn keep_best(old: Option<Value>, new: Value) -> Value {
    let Some(mut old) = old else { return new };
    if let (Some(o), Some(n)) = (old.as_object_mut(), new.as_object()) {
        for (k, v) in n {
            let (Some(a), Some(b)) = (o.get(k).and_then(Value::as_f64), v.as_f64()) else { continue };
            let better = if SMALLER_IS_BETTER.contains(&k.as_str()) { b < a } else { b > a };
            if better && !k.ends_with("_auc") {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    old
}

/// kernels ÷ peer per metric (times: < 1 means kernels is faster; rows/s: > 1 means kernels is faster).
fn ratios(ours: &Value, peer: &Value) -> Value {
    let mut m = Map::new();
    for key in [
        "forest_fit_s",
        "gbm_fit_s",
        "forest_predict_rows_per_s",
        "gbm_predict_rows_per_s",
        "single_row_p50_us",
        "single_row_p99_us",
    ] {
        if let (Some(a), Some(b)) = (ours[key].as_f64(), peer[key].as_f64())
            && b > 0.0
        {
            m.insert(key.to_string(), json!(a / b));
        }
    }
    Value::Object(m)
}

/// Fit seconds against training rows, one line per model and side.
fn plot(record: &Value) -> String {
    let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let series: Vec<Series> = [
        ("kernels", "forest_fit_s", "kernels::ml::forest"),
        ("peers", "forest_fit_s", "scikit-learn forest"),
        ("kernels", "gbm_fit_s", "kernels::ml::gbm"),
        ("peers", "gbm_fit_s", "LightGBM"),
    ]
    .into_iter()
    .map(|(side, key, name)| Series {
        name: name.to_string(),
        points: rows.iter().filter_map(|r| Some((r["train_rows"].as_f64()?, r[side][key].as_f64()?))).collect(),
    })
    .collect();
    // The versions the peers reported, else the pinned ones.
    let first = rows.first().map_or(Value::Null, |r| r["peers"].clone());
    let peers = json!({
        "scikit-learn": first["sklearn"].as_str().or(crate::peers::pinned_version("scikit-learn")),
        "LightGBM": first["lightgbm"].as_str().or(crate::peers::pinned_version("lightgbm")),
    });
    let caption = crate::bench::caption(&peers, &record["machine"]);
    let title = format!("Training time on fraud features ({} threads)", record["threads"].as_str().unwrap_or("?"));
    let chart = Chart {
        title: &title,
        x: Axis { label: "training set size", unit: "rows", scale: Scale::Auto },
        y: Axis { label: "fit time", unit: "s, best of rounds", scale: Scale::LogIfPositive },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

/// The Markdown table of a record.
fn table(record: &Value) -> String {
    let f = |v: &Value, digits: usize| v.as_f64().map_or("–".to_string(), |x| format!("{x:.digits$}"));
    let ratio = |v: &Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.2}×"));
    let mut t = format!(
        "{}.\n\nData: {}. Forest: {}. Boosting: {}. {} threads each side, best of {} rounds × {} repetitions, \
         measured alternately.\n\n\
         | train rows | model | kernels | peer | kernels ÷ peer | kernels AUC | peer AUC |\n|---|---|---|---|---|---|---|\n",
        record["title"].as_str().unwrap_or(""),
        record["data"].as_str().unwrap_or("?"),
        record["forest"].as_str().unwrap_or("?"),
        record["gbm"].as_str().unwrap_or("?"),
        record["threads"].as_str().unwrap_or("?"),
        record["rounds"],
        record["reps"].as_str().unwrap_or("?"),
    );
    for row in record["rows"].as_array().into_iter().flatten() {
        let (k, p, r) = (&row["kernels"], &row["peers"], &row["ratios"]);
        let n = &row["train_rows"];
        let lines = [
            ("forest fit, s (vs scikit-learn)", "forest_fit_s", 3, "forest_auc"),
            ("forest predict, rows/s (vs scikit-learn)", "forest_predict_rows_per_s", 0, "forest_auc"),
            ("gbm fit, s (vs LightGBM)", "gbm_fit_s", 3, "gbm_auc"),
            ("gbm batch predict, rows/s (vs LightGBM)", "gbm_predict_rows_per_s", 0, "gbm_auc"),
            ("gbm single-row predict p50, µs (vs LightGBM)", "single_row_p50_us", 2, ""),
            ("gbm single-row predict p99, µs (vs LightGBM)", "single_row_p99_us", 2, ""),
        ];
        for (label, key, digits, auc) in lines {
            let (ka, pa) = if auc.is_empty() { ("".into(), "".into()) } else { (f(&k[auc], 4), f(&p[auc], 4)) };
            t += &format!(
                "| {n} | {label} | {} | {} | {} | {ka} | {pa} |\n",
                f(&k[key], digits),
                f(&p[key], digits),
                ratio(&r[key])
            );
        }
    }
    t += "\nTimes: kernels ÷ peer below 1 means kernels is faster; rows/s: above 1 means kernels is faster. \
          LightGBM's single-row figure is `Booster.predict` on a 1 × d NumPy array (Python call overhead included); \
          kernels' is `FlatForest::predict_row` on a slice.\n";
    if let Some(p) = record["rows"].as_array().and_then(|r| r.first()).map(|r| &r["peers"]) {
        t += &format!(
            "\nscikit-learn {}, LightGBM {}; {}.\n",
            p["sklearn"].as_str().unwrap_or("?"),
            p["lightgbm"].as_str().unwrap_or("?"),
            record["machine"]["cpu"].as_str().unwrap_or("unknown CPU"),
        );
    }
    for note in record["notes"].as_array().into_iter().flatten() {
        t += &format!("\n- {}", note.as_str().unwrap_or(""));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_the_best_of_each_metric() {
        let a = json!({"forest_fit_s": 2.0, "gbm_predict_rows_per_s": 10.0, "gbm_auc": 0.9});
        let b = json!({"forest_fit_s": 1.0, "gbm_predict_rows_per_s": 5.0, "gbm_auc": 0.95});
        let best = keep_best(Some(a), b);
        assert_eq!(best, json!({"forest_fit_s": 1.0, "gbm_predict_rows_per_s": 10.0, "gbm_auc": 0.9}));
        let r = ratios(&json!({"gbm_fit_s": 1.0}), &json!({"gbm_fit_s": 4.0}));
        assert_eq!(r, json!({"gbm_fit_s": 0.25}));
    }
}
