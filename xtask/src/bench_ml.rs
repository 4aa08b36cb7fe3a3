//! `cargo xtask bench ml`: `kernels::ml` against scikit-learn, LightGBM, XGBoost and the compiled-tree
//! predictors lleaves and treelite/TL2cgen on fraud features.
//!
//! References: Breiman, "Random Forests", Machine Learning 45 (2001) (scikit-learn's
//! `RandomForestClassifier` vs `kernels::ml::forest`); Ke et al., "LightGBM", NeurIPS 2017 (LightGBM
//! vs `kernels::ml::gbm` and `FlatForest`); Chen & Guestrin, "XGBoost", KDD 2016 (`hist`, lossguide, equal
//! rounds and leaves); lleaves (LLVM) and Treelite/TL2cgen (C, gcc) compile the LightGBM model, the
//! single-row peers of `kernels::ml::compiled` (which compiles kernels' booster and, read with
//! `kernels::ml::lightgbm`, the same LightGBM booster).
//!
//! For each size, `kernels/examples/ml_throughput.rs gen` writes the fraud features of the seeded
//! card transactions (`datasets::transactions`) as raw little-endian f32 plus a JSON shape; then the
//! example (`run`, release, 2 rayon threads) and `autograder/peers/ml_peers.py` (the peers, 2 threads)
//! read the same files, alternately for a few rounds, each timing the best of a few repetitions: forest
//! fit (100 trees, depth 10, √d features), boosting fit (100 rounds, 31 leaves, 255 bins, binning
//! included; LightGBM and XGBoost), batch prediction of the test rows (the booster; LightGBM, XGBoost and
//! the two compiled LightGBM models) and single-row latency (p50/p99). The compiled models' single-row
//! latency is measured twice: through their Python API and from a C loop calling the compiled function
//! (no Python, as kernels' Rust loop); the Python floor of such a loop is reported beside. After the peers,
//! `ml_throughput lightgbm` times kernels' compiled code on the booster the peer script saved. The best over
//! rounds is kept, so machine noise hits both sides alike. Writes `record.json`, `table.md` (ratios
//! kernels ÷ peer, test ROC AUC beside each model) and `plot.svg` (fit time against training rows).
//! `cargo xtask peers` installs the peers; a missing optional one (XGBoost, lleaves, TL2cgen) is noted.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Map, Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};

const THREADS: &str = "2";

/// Whether smaller is better for a metric: times (`*_s`, `*_us`), not rates (`*_per_s`); the rest, rows/s
/// and AUC, are better larger (and the compiled models' largest difference from LightGBM is kept largest).
fn smaller_is_better(key: &str) -> bool {
    key.ends_with("_us") || (key.ends_with("_s") && !key.ends_with("_per_s"))
}

/// One ratio kernels ÷ peer: its name in the record, kernels' metric, the peer's metric, the table label,
/// the digits shown, and the AUC keys (kernels', the peer's) printed beside it (empty for none).
type Ratio = (&'static str, &'static str, &'static str, &'static str, usize, [&'static str; 2]);

/// The ratios kernels ÷ peer. kernels' single-row figures are timed in Rust: `single_row_*` walks the
/// `FlatForest`, `compiled_row_*` runs kernels' booster compiled by `kernels::ml::compiled`, and
/// `lgb_compiled_row_*` LightGBM's booster (the one lleaves and TL2cgen compile) compiled the same way;
/// the `_native` peers' are timed the same way from C, the `_py` ones through Python.
const RATIOS: &[Ratio] = &[
    ("forest_fit_s", "forest_fit_s", "forest_fit_s", "forest fit, s (vs scikit-learn)", 3, ["forest_auc"; 2]),
    (
        "forest_predict_rows_per_s",
        "forest_predict_rows_per_s",
        "forest_predict_rows_per_s",
        "forest predict, rows/s (vs scikit-learn)",
        0,
        ["forest_auc"; 2],
    ),
    ("gbm_fit_s", "gbm_fit_s", "gbm_fit_s", "gbm fit, s (vs LightGBM)", 3, ["gbm_auc"; 2]),
    ("gbm_fit_s_vs_xgboost", "gbm_fit_s", "xgb_fit_s", "gbm fit, s (vs XGBoost hist)", 3, ["gbm_auc", "xgb_auc"]),
    (
        "gbm_predict_rows_per_s",
        "gbm_predict_rows_per_s",
        "gbm_predict_rows_per_s",
        "gbm batch predict, rows/s: walked (vs LightGBM)",
        0,
        ["gbm_auc"; 2],
    ),
    (
        "gbm_predict_rows_per_s_vs_xgboost",
        "gbm_predict_rows_per_s",
        "xgb_predict_rows_per_s",
        "gbm batch predict, rows/s: walked (vs XGBoost)",
        0,
        ["gbm_auc", "xgb_auc"],
    ),
    (
        "compiled_predict_rows_per_s",
        "compiled_predict_rows_per_s",
        "gbm_predict_rows_per_s",
        "gbm batch predict, rows/s: compiled (vs LightGBM)",
        0,
        ["gbm_auc"; 2],
    ),
    (
        "lgb_compiled_predict_rows_per_s_vs_lleaves",
        "lgb_compiled_predict_rows_per_s",
        "lleaves_predict_rows_per_s",
        "gbm batch predict, rows/s: LightGBM's model compiled (vs lleaves)",
        0,
        ["", ""],
    ),
    (
        "lgb_compiled_predict_rows_per_s_vs_tl2cgen",
        "lgb_compiled_predict_rows_per_s",
        "tl2cgen_predict_rows_per_s",
        "gbm batch predict, rows/s: LightGBM's model compiled (vs TL2cgen)",
        0,
        ["", ""],
    ),
    (
        "single_row_p50_us",
        "single_row_p50_us",
        "single_row_p50_us",
        "single-row p50, µs: walked (vs LightGBM, Python)",
        2,
        ["", ""],
    ),
    (
        "single_row_p99_us",
        "single_row_p99_us",
        "single_row_p99_us",
        "single-row p99, µs: walked (vs LightGBM, Python)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p50_us_vs_lleaves_native",
        "lgb_compiled_row_p50_us",
        "lleaves_native_p50_us",
        "single-row p50, µs: LightGBM's model compiled (vs lleaves, from C)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p99_us_vs_lleaves_native",
        "lgb_compiled_row_p99_us",
        "lleaves_native_p99_us",
        "single-row p99, µs: LightGBM's model compiled (vs lleaves, from C)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p50_us_vs_tl2cgen_native",
        "lgb_compiled_row_p50_us",
        "tl2cgen_native_p50_us",
        "single-row p50, µs: LightGBM's model compiled (vs TL2cgen, from C)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p99_us_vs_tl2cgen_native",
        "lgb_compiled_row_p99_us",
        "tl2cgen_native_p99_us",
        "single-row p99, µs: LightGBM's model compiled (vs TL2cgen, from C)",
        2,
        ["", ""],
    ),
    (
        "compiled_row_p50_us_vs_lleaves_native",
        "compiled_row_p50_us",
        "lleaves_native_p50_us",
        "single-row p50, µs: kernels' model compiled (vs lleaves, from C)",
        2,
        ["", ""],
    ),
    (
        "compiled_row_p99_us_vs_lleaves_native",
        "compiled_row_p99_us",
        "lleaves_native_p99_us",
        "single-row p99, µs: kernels' model compiled (vs lleaves, from C)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p50_us_vs_lleaves_py",
        "lgb_compiled_row_p50_us",
        "lleaves_py_p50_us",
        "single-row p50, µs: LightGBM's model compiled (vs lleaves, Python)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p99_us_vs_lleaves_py",
        "lgb_compiled_row_p99_us",
        "lleaves_py_p99_us",
        "single-row p99, µs: LightGBM's model compiled (vs lleaves, Python)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p50_us_vs_tl2cgen_py",
        "lgb_compiled_row_p50_us",
        "tl2cgen_py_p50_us",
        "single-row p50, µs: LightGBM's model compiled (vs TL2cgen, Python)",
        2,
        ["", ""],
    ),
    (
        "lgb_compiled_row_p99_us_vs_tl2cgen_py",
        "lgb_compiled_row_p99_us",
        "tl2cgen_py_p99_us",
        "single-row p99, µs: LightGBM's model compiled (vs TL2cgen, Python)",
        2,
        ["", ""],
    ),
];

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("ml"));
    std::fs::create_dir_all(&out)?;
    let (sizes, rounds, reps): (&[usize], usize, &str) =
        if quick { (&[12_000], 2, "1") } else { (&[12_000, 50_000, 100_000], 3, "2") };

    let example = crate::bench::build_kernels_example(ws, "ml_throughput", "ml")?;

    let mut notes = Vec::new();
    let python = match ws.peer_python() {
        None => {
            notes.push("peers: skipped (no peers' venv: run `cargo xtask peers`)".to_string());
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
        // The generated data stay in the target folder, never in `--out` (the book's results folder).
        let data = ws.target_dir().join("bench").join("ml-data").join(format!("data-{n}"));
        let status = Command::new(&example).arg("gen").arg(&data).arg(n.to_string()).status()?;
        if !status.success() {
            bail!("ml_throughput gen failed ({status})");
        }
        // The peer script leaves LightGBM's booster here each round; never time a stale one.
        for stale in ["lightgbm.txt", "lightgbm_test.f64"] {
            let _ = std::fs::remove_file(data.join(stale));
        }
        let (mut ours, mut peer): (Option<Value>, Option<Value>) = (None, None);
        for round in 1..=rounds {
            eprintln!("{n} rows, round {round}/{rounds}: kernels…");
            ours = Some(keep_best(ours, ml_throughput(&example, "run", &data, reps)?));
            if let Some(python) = &python {
                eprintln!("{n} rows, round {round}/{rounds}: scikit-learn, LightGBM, XGBoost, lleaves, TL2cgen…");
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
                    for skipped in v["skipped"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                        let note = format!("skipped: {skipped}");
                        if !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                    peer = Some(keep_best(peer, v));
                } else {
                    notes.push(format!("peers, {n} rows, round {round}: failed ({})", output.status));
                }
                if data.join("lightgbm.txt").exists() {
                    eprintln!("{n} rows, round {round}/{rounds}: kernels on LightGBM's booster…");
                    ours = Some(keep_best(ours, ml_throughput(&example, "lightgbm", &data, reps)?));
                }
            }
        }
        let (ours, peer) = (ours.unwrap_or(Value::Null), peer.unwrap_or(Value::Null));
        rows.push(json!({ "rows": n, "train_rows": ours["train_rows"], "kernels": ours, "peers": peer, "ratios": ratios(&ours, &peer) }));
    }
    let record = json!({
        "title": "kernels::ml vs scikit-learn (random forest), LightGBM and XGBoost (boosting), lleaves and \
                  TL2cgen (compiled LightGBM model) on fraud features",
        "data": "fraud features of datasets::transactions (seed 5, 9 columns, ~3% fraud), first 70% (time order) for training",
        "forest": "100 trees, max_depth 10, sqrt(d) features per node, bootstrap",
        "gbm": "binary log-loss, 100 rounds, 31 leaves, learning rate 0.1, 255 bins, min_data_in_leaf 20",
        "xgboost": "tree_method hist, grow_policy lossguide, max_leaves 31, max_depth 0, 100 rounds, eta 0.1, \
                    max_bin 255, min_child_weight 1e-3, lambda 0 (no rows-per-leaf minimum in XGBoost)",
        "compiled": "LightGBM's booster compiled by lleaves (LLVM, host CPU) and by treelite + TL2cgen (C, gcc -O3 \
                     -march=native); single rows timed from C (float32 row converted inside the timed call, \
                     clock_gettime around each call) and through each Python API",
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

/// The JSON that `ml_throughput MODE DATA REPS` prints, run on [`THREADS`] rayon threads.
fn ml_throughput(example: &std::path::Path, mode: &str, data: &std::path::Path, reps: &str) -> Result<Value> {
    let output = Command::new(example)
        .arg(mode)
        .arg(data)
        .arg(reps)
        .env("RAYON_NUM_THREADS", THREADS)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running ml_throughput {mode}"))?;
    if !output.status.success() {
        bail!("ml_throughput {mode} failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("reading ml_throughput's JSON")
}

/// The better value of every numeric metric of two rounds (smaller for times, larger otherwise).
fn keep_best(old: Option<Value>, new: Value) -> Value {
    let Some(mut old) = old else { return new };
    if let (Some(o), Some(n)) = (old.as_object_mut(), new.as_object()) {
        for (k, v) in n {
            if !o.contains_key(k) {
                // A metric the first record lacks (another run's keys, merged in).
                o.insert(k.clone(), v.clone());
                continue;
            }
            let (Some(a), Some(b)) = (o.get(k).and_then(Value::as_f64), v.as_f64()) else { continue };
            let better = if smaller_is_better(k) { b < a } else { b > a };
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
    for &(name, ours_key, peer_key, ..) in RATIOS {
        if let (Some(a), Some(b)) = (ours[ours_key].as_f64(), peer[peer_key].as_f64())
            && b > 0.0
        {
            m.insert(name.to_string(), json!(a / b));
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
        ("peers", "xgb_fit_s", "XGBoost hist"),
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
        "XGBoost": first["xgboost"].as_str().or(crate::peers::pinned_version("xgboost-cpu")),
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
        "{}.\n\nData: {}. Forest: {}. Boosting: {}; XGBoost: {}. Compiled: {}. {} threads each side, best of {} \
         rounds × {} repetitions, measured alternately.\n\n\
         | train rows | model | kernels | peer | kernels ÷ peer | kernels AUC | peer AUC |\n|---|---|---|---|---|---|---|\n",
        record["title"].as_str().unwrap_or(""),
        record["data"].as_str().unwrap_or("?"),
        record["forest"].as_str().unwrap_or("?"),
        record["gbm"].as_str().unwrap_or("?"),
        record["xgboost"].as_str().unwrap_or("?"),
        record["compiled"].as_str().unwrap_or("?"),
        record["threads"].as_str().unwrap_or("?"),
        record["rounds"],
        record["reps"].as_str().unwrap_or("?"),
    );
    for row in record["rows"].as_array().into_iter().flatten() {
        let (k, p, r) = (&row["kernels"], &row["peers"], &row["ratios"]);
        let n = &row["train_rows"];
        for &(name, ours_key, peer_key, label, digits, [k_auc, p_auc]) in RATIOS {
            let (ka, pa) = if k_auc.is_empty() { ("".into(), "".into()) } else { (f(&k[k_auc], 4), f(&p[p_auc], 4)) };
            t += &format!(
                "| {n} | {label} | {} | {} | {} | {ka} | {pa} |\n",
                f(&k[ours_key], digits),
                f(&p[peer_key], digits),
                ratio(&r[name])
            );
        }
        t += &format!(
            "| {n} | Python floor of a per-row loop p50 / p99, µs: empty body; one NumPy call | | \
             {} / {}; {} / {} | | | |\n",
            f(&p["python_floor_p50_us"], 2),
            f(&p["python_floor_p99_us"], 2),
            f(&p["numpy_call_p50_us"], 2),
            f(&p["numpy_call_p99_us"], 2),
        );
        t += &format!(
            "| {n} | compile, s: kernels (its booster; LightGBM's) vs lleaves; TL2cgen (treelite → C → gcc) | {}; {} | \
             {}; {} | | | |\n",
            f(&k["compile_s"], 4),
            f(&k["lgb_compile_s"], 4),
            f(&p["lleaves_compile_s"], 2),
            f(&p["tl2cgen_compile_s"], 2),
        );
    }
    t += "\nTimes: kernels ÷ peer below 1 means kernels is faster; rows/s: above 1 means kernels is faster. \
          Single rows, timed in Rust one call per row: \"walked\" is `FlatForest::predict_row` (the node array); \
          \"compiled\" is `kernels::ml::compiled` (the trees as x86-64 code, made at load time). \"LightGBM's model \
          compiled\" is the very booster lleaves and TL2cgen compile, read by `kernels::ml::lightgbm`: the \
          like-for-like comparison with their \"from C\" figures (the compiled function called from a C loop, timed \
          the same way). \"kernels' model\" is kernels' own booster of the same shape (100 trees of 31 leaves), \
          whose paths differ. The \"Python\" figures (LightGBM's `Booster.predict`, lleaves' `Model.predict`, \
          TL2cgen's `Predictor.predict` on a 1 × d array) include Python's call overhead, whose floor is the line \
          above. The compiled peers predict LightGBM's probabilities to within the recorded \
          `compiled_max_abs_diff`, kernels on LightGBM's booster within `lgb_max_abs_diff` (leaf values held as \
          f32).\n";
    if let Some((p, k)) = record["rows"].as_array().and_then(|r| r.first()).map(|r| (&r["peers"], &r["kernels"])) {
        let v = |key: &str| p[key].as_str().unwrap_or("?").to_string();
        let diff = |v: &Value| v.as_f64().map_or("?".to_string(), |d| format!("{d:.1e}"));
        t += &format!(
            "\nscikit-learn {}, LightGBM {}, XGBoost {} (xgboost-cpu), lleaves {} (llvmlite {}), treelite {}, \
             TL2cgen {}; {}; compiled peers within {} of LightGBM, kernels on LightGBM's booster within {}.\n",
            v("sklearn"),
            v("lightgbm"),
            v("xgboost"),
            v("lleaves"),
            v("llvmlite"),
            v("treelite"),
            v("tl2cgen"),
            machine_text(&record["machine"]),
            diff(&p["compiled_max_abs_diff"]),
            diff(&k["lgb_max_abs_diff"]),
        );
    }
    for note in record["notes"].as_array().into_iter().flatten() {
        t += &format!("\n- {}", note.as_str().unwrap_or(""));
    }
    t
}

/// The CPU, its vCPUs and cache sizes of a record's `machine`.
fn machine_text(machine: &Value) -> String {
    crate::bench::describe_machine(machine)
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
        let a = json!({"lleaves_native_p50_us": 2.0, "xgb_predict_rows_per_s": 1.0, "lleaves_compile_s": 3.0});
        let b = json!({"lleaves_native_p50_us": 1.0, "xgb_predict_rows_per_s": 2.0, "lleaves_compile_s": 4.0});
        let best = keep_best(Some(a), b);
        assert_eq!(
            best,
            json!({"lleaves_native_p50_us": 1.0, "xgb_predict_rows_per_s": 2.0, "lleaves_compile_s": 3.0})
        );
        // Keys of another run (kernels on LightGBM's booster) are merged in.
        let merged = keep_best(Some(json!({"gbm_fit_s": 1.0})), json!({"lgb_compiled_row_p50_us": 0.3}));
        assert_eq!(merged, json!({"gbm_fit_s": 1.0, "lgb_compiled_row_p50_us": 0.3}));
        let r = ratios(
            &json!({"lgb_compiled_row_p50_us": 0.5, "gbm_fit_s": 1.0}),
            &json!({"lleaves_native_p50_us": 1.0, "tl2cgen_native_p50_us": 2.0, "xgb_fit_s": 2.0}),
        );
        assert_eq!(
            r,
            json!({"lgb_compiled_row_p50_us_vs_lleaves_native": 0.5, "lgb_compiled_row_p50_us_vs_tl2cgen_native": 0.25,
                   "gbm_fit_s_vs_xgboost": 0.5})
        );
    }
}
