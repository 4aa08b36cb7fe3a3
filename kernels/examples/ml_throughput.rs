//! Training and prediction throughput of `kernels::ml` as JSON (the Rust side of `cargo xtask bench ml`).
//!
//! References: Breiman, "Random Forests", Machine Learning 45 (2001); Ke et al., "LightGBM: A Highly
//! Efficient Gradient Boosting Decision Tree", NeurIPS 2017 (the two models timed).
//!
//! usage:
//! - `ml_throughput gen DIR ROWS` writes fraud features of the seeded card transactions
//!   (`datasets::transactions`) to `DIR/x.f32` (row-major little-endian f32), `DIR/y.f32` (0/1 labels)
//!   and `DIR/shape.json` (`rows`, `cols`, `train_rows`: the first 70% in time order, `names`);
//! - `ml_throughput run DIR REPS` fits `kernels::ml::forest` (100 trees, depth 10, √d features,
//!   histogram splitter) and `kernels::ml::gbm` (100 rounds, 31 leaves, learning rate 0.1, 255 bins,
//!   20 rows per leaf) on the training rows, then predicts the test rows with `FlatForest`; prints the
//!   best of REPS for each fit, batch rows/s, single-row latency percentiles (the node-array walk, and
//!   the booster compiled to machine code by `kernels::ml::compiled`) and the test ROC AUCs;
//! - `ml_throughput lightgbm DIR REPS` reads LightGBM's booster of the same data (`DIR/lightgbm.txt`,
//!   saved by the peer script with its test predictions in `DIR/lightgbm_test.f64`) with
//!   `kernels::ml::lightgbm` and prints its single-row latency walked and compiled, the compile time and
//!   the largest difference from LightGBM's predictions: the same model lleaves and TL2cgen compile.
//!
//! The twin of `autograder/peers/ml_peers.py` (scikit-learn's `RandomForestClassifier` and LightGBM with
//! the same settings on the same files). Threads: rayon's pool (`RAYON_NUM_THREADS`).

use std::path::Path;
use std::time::Instant;

use datasets::transactions::{
    FRAUD_FEATURES as FEATURES, TransactionsConfig, fraud_features as fraud_features_of, transactions,
};
use kernels::ml::Matrix;
use kernels::ml::compiled::{self, CompileConfig};
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::gbm::{self, GbmConfig};
use kernels::ml::lightgbm;
use kernels::ml::metrics::roc_auc;
use kernels::ml::tree::TreeConfig;

/// The forest's trees and depth, the booster's rounds and leaves (the peer script uses the same).
const TREES: usize = 100;
const DEPTH: usize = 10;
const ROUNDS: usize = 100;
const LEAVES: usize = 31;
/// Rows timed one at a time for the latency percentiles.
const SINGLE: usize = 2_000;

/// Fraud features of the first `rows` seeded transactions (the c3w3 benchmark's features).
fn fraud_features(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let t = transactions(&TransactionsConfig {
        cards: (rows / 30).max(200),
        merchants: 2_000,
        days: 30,
        fraud_rate: 0.03,
        ..TransactionsConfig::tier(datasets::Tier::Medium, 5)
    });
    let (x, y) = fraud_features_of(&t, rows);
    (x, y.into_iter().map(f32::from).collect())
}

fn write_f32(path: &Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("writing data");
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("reading data");
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn generate(dir: &Path, rows: usize) {
    std::fs::create_dir_all(dir).expect("data folder");
    let (x, y) = fraud_features(rows);
    let rows = y.len();
    write_f32(&dir.join("x.f32"), &x);
    write_f32(&dir.join("y.f32"), &y);
    let names: Vec<String> = FEATURES.iter().map(|s| format!("{s:?}")).collect();
    let shape = format!(
        "{{\"rows\": {rows}, \"cols\": {}, \"train_rows\": {}, \"positives\": {}, \"names\": [{}]}}",
        FEATURES.len(),
        rows * 7 / 10,
        y.iter().filter(|&&v| v == 1.0).count(),
        names.join(", ")
    );
    std::fs::write(dir.join("shape.json"), shape).expect("writing shape.json");
}

/// A field of the small `shape.json` (a number).
fn shape_field(text: &str, key: &str) -> usize {
    let at = text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("shape.json lacks {key}"));
    text[at + key.len() + 3..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// Best seconds of `reps` calls of `f`, and its last result.
fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        let v = f();
        best = best.min(start.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("reps >= 1"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The files `gen` wrote, split in time order: (train rows, test rows, all labels, train row count).
fn read_split(dir: &Path) -> (Matrix, Matrix, Vec<f32>, usize) {
    let shape = std::fs::read_to_string(dir.join("shape.json")).expect("shape.json");
    let (rows, cols, train) =
        (shape_field(&shape, "rows"), shape_field(&shape, "cols"), shape_field(&shape, "train_rows"));
    let (x, y) = (read_f32(&dir.join("x.f32")), read_f32(&dir.join("y.f32")));
    assert_eq!((x.len(), y.len()), (rows * cols, rows), "data files and shape.json disagree");
    let xtr = Matrix::new(train, cols, x[..train * cols].to_vec()).expect("train matrix");
    let xte = Matrix::new(rows - train, cols, x[train * cols..].to_vec()).expect("test matrix");
    (xtr, xte, y, train)
}

fn run(dir: &Path, reps: usize) {
    let (xtr, xte, y, train) = read_split(dir);
    let (ytr, yte) = (&y[..train], &y[train..]);

    let fcfg = ForestConfig {
        n_trees: TREES,
        tree: TreeConfig { max_depth: Some(DEPTH), ..TreeConfig::default() },
        seed: 0,
        ..ForestConfig::default()
    };
    let (forest_s, model) = best_of(reps, || forest::fit(&xtr, ytr, &fcfg).expect("forest fit"));
    let flat_forest = FlatForest::from_forest(&model);
    let (forest_pred_s, fp) = best_of(reps, || flat_forest.predict_batch(&xte).expect("predict"));
    let forest_auc = roc_auc(yte, &fp).expect("auc");

    let gcfg = GbmConfig { num_iterations: ROUNDS, num_leaves: LEAVES, ..GbmConfig::default() };
    let (gbm_s, booster) = best_of(reps, || gbm::fit(&xtr, ytr, None, &gcfg).expect("gbm fit"));
    let flat = FlatForest::from_gbm(&booster);
    let (batch_s, gp) = best_of(reps.max(3), || flat.predict_batch(&xte).expect("predict"));
    let gbm_auc = roc_auc(yte, &gp).expect("auc");
    let lat = latencies(&xte, |row| flat.predict_row(row).expect("row"));
    // The same rows through the model compiled to machine code (compile time recorded too).
    let (compile_s, compiled) =
        best_of(reps, || compiled::compile(&flat, &CompileConfig::default()).expect("compiling the booster"));
    let clat = latencies(&xte, |row| compiled.predict_row(row).expect("row"));
    let (cbatch_s, cp) = best_of(reps.max(3), || compiled.predict_batch(&xte).expect("predict"));
    assert!(cp.iter().zip(&gp).all(|(a, b)| a.to_bits() == b.to_bits()), "compiled batch differs");
    for (i, want) in gp.iter().enumerate().take(SINGLE) {
        let p = compiled.predict_row(xte.row(i)).expect("row");
        assert_eq!(p.to_bits(), want.to_bits(), "row {i}: compiled and batch predictions differ");
    }
    let test = xte.rows() as f64;
    println!(
        "{{\"threads\": {}, \"train_rows\": {train}, \"test_rows\": {}, \"reps\": {reps}, \
         \"forest_fit_s\": {forest_s}, \"forest_predict_rows_per_s\": {}, \"forest_auc\": {forest_auc}, \
         \"gbm_fit_s\": {gbm_s}, \"gbm_trees\": {}, \"gbm_predict_rows_per_s\": {}, \"gbm_auc\": {gbm_auc}, \
         \"single_row_p50_us\": {}, \"single_row_p99_us\": {}, \"compile_s\": {compile_s}, \
         \"compiled_code_bytes\": {}, \"compiled_row_p50_us\": {}, \"compiled_row_p99_us\": {}, \
         \"compiled_predict_rows_per_s\": {}}}",
        rayon::current_num_threads(),
        xte.rows(),
        test / forest_pred_s,
        booster.trees().len(),
        test / batch_s,
        lat.0,
        lat.1,
        compiled.code_bytes(),
        clat.0,
        clat.1,
        test / cbatch_s,
    );
}

/// p50 and p99 in µs of `predict` on the first [`SINGLE`] rows, one call per row, each timed alone.
fn latencies(x: &Matrix, mut predict: impl FnMut(&[f32]) -> f32) -> (f64, f64) {
    let mut lat = Vec::with_capacity(SINGLE);
    let mut sink = 0.0f32;
    for i in 0..SINGLE.min(x.rows()) {
        let row = x.row(i);
        let start = Instant::now();
        sink += std::hint::black_box(predict(std::hint::black_box(row)));
        lat.push(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 0.5) * 1e6, percentile(&lat, 0.99) * 1e6)
}

/// LightGBM's own booster (`DIR/lightgbm.txt`, written by the peer script) read by
/// `kernels::ml::lightgbm`: single-row latency walked and compiled, compile time, and the largest
/// difference from LightGBM's test predictions (`DIR/lightgbm_test.f64`).
fn run_lightgbm(dir: &Path, reps: usize) {
    let (_, xte, _, _) = read_split(dir);
    let flat = lightgbm::load(&dir.join("lightgbm.txt")).expect("reading LightGBM's model");
    let want: Vec<f64> = std::fs::read(dir.join("lightgbm_test.f64"))
        .expect("LightGBM's predictions")
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(want.len(), xte.rows(), "lightgbm_test.f64 has one prediction per test row");
    let (compile_s, compiled) =
        best_of(reps, || compiled::compile(&flat, &CompileConfig::default()).expect("compiling LightGBM's booster"));
    let mut diff = 0.0f64;
    for (i, &w) in want.iter().enumerate() {
        let p = compiled.predict_row(xte.row(i)).expect("row");
        assert_eq!(p.to_bits(), flat.predict_row(xte.row(i)).expect("row").to_bits(), "row {i}");
        diff = diff.max((f64::from(p) - w).abs());
    }
    let lat = latencies(&xte, |row| flat.predict_row(row).expect("row"));
    let clat = latencies(&xte, |row| compiled.predict_row(row).expect("row"));
    let (batch_s, _) = best_of(reps.max(3), || compiled.predict_batch(&xte).expect("predict"));
    println!(
        "{{\"lgb_trees\": {}, \"lgb_compile_s\": {compile_s}, \"lgb_code_bytes\": {}, \"lgb_max_abs_diff\": {diff}, \
         \"lgb_single_row_p50_us\": {}, \"lgb_single_row_p99_us\": {}, \"lgb_compiled_row_p50_us\": {}, \
         \"lgb_compiled_row_p99_us\": {}, \"lgb_compiled_predict_rows_per_s\": {}}}",
        flat.n_trees(),
        compiled.code_bytes(),
        lat.0,
        lat.1,
        clat.0,
        clat.1,
        xte.rows() as f64 / batch_s,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 4 => generate(Path::new(&args[2]), args[3].parse().expect("ROWS is a number")),
        Some("run") if args.len() == 4 => run(Path::new(&args[2]), args[3].parse().expect("REPS is a number")),
        Some("lightgbm") if args.len() == 4 => {
            run_lightgbm(Path::new(&args[2]), args[3].parse().expect("REPS is a number"))
        }
        _ => {
            eprintln!(
                "usage: ml_throughput gen DIR ROWS | ml_throughput run DIR REPS | ml_throughput lightgbm DIR REPS"
            );
            std::process::exit(2);
        }
    }
}
