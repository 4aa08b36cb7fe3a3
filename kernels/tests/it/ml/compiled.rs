//! `kernels::ml::compiled`: models compiled to machine code predict bit-identically to the node-array
//! walk of `FlatForest` (NaN default sides, rows exactly on a threshold, features past the registers,
//! trees deep enough for long jumps), and refuse what they cannot compile with a typed error.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::compiled::{self, CompileConfig, MAX_SELECT_LEAVES, REG_FEATURES};
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::gbm::{self, GbmConfig, Objective};
use kernels::ml::tree::{self, Criterion, TreeConfig};

use super::tree::{random_matrix, with_nans};

/// Every row of `x` scores the same, bit for bit, walked and compiled: all branches (1), two-leaf
/// subtrees without branches (2), and the default (subtrees of up to 8 leaves without branches).
fn check(flat: &FlatForest, x: &Matrix) {
    for select_leaves in [1, 2, CompileConfig::default().select_leaves] {
        let compiled = compiled::compile(flat, &CompileConfig { select_leaves }).unwrap();
        assert_eq!(compiled.n_trees(), flat.n_trees());
        let batch = compiled.predict_batch(x).unwrap();
        for (i, b) in batch.iter().enumerate() {
            let (want, got) = (flat.predict_row(x.row(i)).unwrap(), compiled.predict_row(x.row(i)).unwrap());
            assert_eq!(got.to_bits(), want.to_bits(), "row {i}, select_leaves {select_leaves}: {got} vs {want}");
            assert_eq!(b.to_bits(), want.to_bits(), "batch row {i}, select_leaves {select_leaves}");
        }
    }
}

/// Rows whose values sit exactly on the model's thresholds (each column takes the thresholds of the
/// nodes that test it, in turn), so that `x <= threshold` is decided by equality.
fn on_thresholds(flat: &FlatForest, rows: usize) -> Matrix {
    let d = flat.n_features();
    let mut per: Vec<Vec<f32>> = vec![Vec::new(); d];
    for n in flat.nodes() {
        per[(n.feature & !kernels::ml::flat::DEFAULT_LEFT) as usize].push(n.threshold);
    }
    let data = (0..rows * d)
        .map(|p| {
            let t = &per[p % d];
            if t.is_empty() { 0.0 } else { t[(p / d * 7 + p % d) % t.len()] }
        })
        .collect();
    Matrix::new(rows, d, data).unwrap()
}

fn labels(x: &Matrix) -> Vec<f32> {
    (0..x.rows())
        .map(|i| if x.get(i, 0).is_nan() || x.get(i, 1) + x.get(i, x.cols() - 1) > 1.0 { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn boosted_models_compile_bit_identically_with_nan_and_ties() {
    let x = with_nans(&random_matrix(1500, 6, 1), 0.1, 2);
    let probe = with_nans(&random_matrix(2000, 6, 3), 0.2, 4);
    let binary = gbm::fit(&x, &labels(&x), None, &GbmConfig { num_iterations: 60, ..GbmConfig::default() }).unwrap();
    let flat = FlatForest::from_gbm(&binary);
    check(&flat, &probe);
    check(&flat, &on_thresholds(&flat, 500));
    let yr: Vec<f32> = (0..x.rows()).map(|i| x.get(i, 2).max(0.0) * 3.0 + x.get(i, 5).min(0.5)).collect();
    let cfg = GbmConfig { objective: Objective::Regression, num_iterations: 30, ..GbmConfig::default() };
    let reg = FlatForest::from_gbm(&gbm::fit(&x, &yr, None, &cfg).unwrap());
    check(&reg, &probe);
    // Infinities compare like any number; a row of all NaN takes every default side.
    let special = Matrix::new(3, 6, [[f32::INFINITY; 6], [f32::NEG_INFINITY; 6], [f32::NAN; 6]].concat()).unwrap();
    check(&flat, &special);
}

#[test]
fn wide_rows_load_features_past_the_registers() {
    let d = REG_FEATURES + 9;
    let x = with_nans(&random_matrix(1200, d, 5), 0.05, 6);
    let y = labels(&x);
    let model = gbm::fit(&x, &y, None, &GbmConfig { num_iterations: 40, ..GbmConfig::default() }).unwrap();
    let flat = FlatForest::from_gbm(&model);
    assert!(
        flat.nodes().iter().any(|n| (n.feature & !kernels::ml::flat::DEFAULT_LEFT) as usize >= REG_FEATURES),
        "some node tests a feature past the registers"
    );
    check(&flat, &with_nans(&random_matrix(1500, d, 7), 0.1, 8));
}

#[test]
fn deep_trees_and_forests_compile_with_long_jumps() {
    let x = with_nans(&random_matrix(3000, 4, 9), 0.05, 10);
    let y: Vec<f32> = (0..x.rows())
        .map(|i| (x.get(i, 0) * 37.0).sin() + if x.get(i, 1).is_nan() { 2.0 } else { x.get(i, 1) })
        .map(|v| if v.is_nan() { -1.0 } else { v })
        .collect();
    let cfg = TreeConfig { criterion: Criterion::Mse, max_depth: Some(18), ..TreeConfig::default() };
    let deep = tree::fit(&x, &y, &cfg).unwrap();
    let flat = FlatForest::from_tree(&deep);
    let compiled = compiled::compile(&flat, &CompileConfig::default()).unwrap();
    assert!(compiled.code_bytes() > 40_000, "{} bytes: big enough that some jumps are long", compiled.code_bytes());
    check(&flat, &with_nans(&random_matrix(2000, 4, 11), 0.1, 12));
    let yb = labels(&x);
    let cfg = ForestConfig {
        n_trees: 12,
        tree: TreeConfig { max_depth: Some(10), ..TreeConfig::default() },
        ..ForestConfig::default()
    };
    let rf = forest::fit(&x, &yb, &cfg).unwrap();
    check(&FlatForest::from_forest(&rf), &with_nans(&random_matrix(2000, 4, 13), 0.1, 14));
}

#[test]
fn what_cannot_compile_is_a_typed_error() {
    let x = random_matrix(300, 3, 15);
    let yk: Vec<f32> = (0..300).map(|i| (i % 3) as f32).collect();
    let multi = FlatForest::from_tree(&tree::fit(&x, &yk, &TreeConfig::default()).unwrap());
    let err = compiled::compile(&multi, &CompileConfig::default()).unwrap_err();
    assert!(matches!(err, Error::MlCompile(_)), "{err}");
    assert!(err.to_string().contains("3 outputs"), "{err}");
    let binary = FlatForest::from_gbm(&gbm::fit(&x, &labels(&x), None, &GbmConfig::default()).unwrap());
    let compiled = compiled::compile(&binary, &CompileConfig::default()).unwrap();
    let err = compiled.predict_row(&[0.5, 0.5]).unwrap_err();
    assert!(matches!(err, Error::DimensionMismatch { expected: 3, got: 2 }), "{err}");
    let err = compiled.predict_batch(&random_matrix(5, 4, 16)).unwrap_err();
    assert!(matches!(err, Error::DimensionMismatch { expected: 3, got: 4 }), "{err}");
    for select_leaves in [0, MAX_SELECT_LEAVES + 1] {
        let err = compiled::compile(&binary, &CompileConfig { select_leaves }).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter(_)), "{err}");
    }
}
