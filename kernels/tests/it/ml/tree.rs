//! `kernels::ml::tree` against scikit-learn's `DecisionTreeClassifier`/`DecisionTreeRegressor` on data
//! where the tree is determined (the fixture checks that every feature order gives the same tree):
//! the whole structure, the leaf values, the importances and predictions on a grid, with and without
//! missing values; properties (separable data fitted exactly, NaN carrying the signal, the stopping
//! rules), the flattened tree, model files, and bad input.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::io::{self, ModelMeta, Persist};
use kernels::ml::tree::{self, Criterion, DecisionTree, MaxFeatures, Splitter, TreeConfig};
use serde_json::Value;

use super::{f32s, f64s, fixture, matrix, temp_dir};

/// The tree settings of a fixture case.
fn config(fit: &Value) -> TreeConfig {
    let criterion = match fit["criterion"].as_str().unwrap() {
        "gini" => Criterion::Gini,
        "entropy" => Criterion::Entropy,
        "squared_error" => Criterion::Mse,
        other => panic!("criterion {other}"),
    };
    let p = &fit["params"];
    let mut cfg = TreeConfig { criterion, ..TreeConfig::default() };
    if let Some(v) = p.get("max_depth") {
        cfg.max_depth = Some(v.as_u64().unwrap() as usize);
    }
    if let Some(v) = p.get("min_samples_leaf") {
        cfg.min_samples_leaf = v.as_u64().unwrap() as usize;
    }
    if let Some(v) = p.get("min_samples_split") {
        cfg.min_samples_split = v.as_u64().unwrap() as usize;
    }
    if let Some(v) = p.get("min_impurity_decrease") {
        cfg.min_impurity_decrease = v.as_f64().unwrap();
    }
    cfg
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1.0)
}

/// Fits the case and compares with scikit-learn node by node, then on the grid.
fn check(f: &Value, fit: &Value) {
    let name = fit["name"].as_str().unwrap();
    let missing = fit["missing"].as_bool().unwrap();
    let x = matrix(if missing { &f["x_missing"] } else { &f["x"] });
    let grid = matrix(if missing { &f["grid_missing"] } else { &f["grid"] });
    let cfg = config(fit);
    let y = f32s(if cfg.criterion == Criterion::Mse { &f["y_reg"] } else { &f["y_class"] });
    let model = tree::fit(&x, &y, &cfg).unwrap();
    let want = &fit["tree"];
    let (left, feature, threshold) = (f64s(&want["left"]), f64s(&want["feature"]), f64s(&want["threshold"]));
    let (right, go_left, value) = (f64s(&want["right"]), f64s(&want["missing_go_to_left"]), f64s(&want["value"]));
    let nodes = model.nodes();
    assert_eq!(nodes.len(), left.len(), "{name}: node count");
    let k = model.n_outputs();
    for (i, n) in nodes.iter().enumerate() {
        if left[i] < 0.0 {
            assert!(n.is_leaf(), "{name}: node {i} should be a leaf");
        } else {
            assert_eq!((n.left as f64, n.right as f64), (left[i], right[i]), "{name}: children of node {i}");
            assert_eq!(n.feature as f64, feature[i], "{name}: feature of node {i}");
            assert!(
                close(n.threshold as f64, threshold[i], 1e-6),
                "{name}: node {i} threshold {} vs {}",
                n.threshold,
                threshold[i]
            );
            if missing {
                assert_eq!(n.default_left, go_left[i] == 1.0, "{name}: node {i} missing direction");
            }
        }
        for (j, &v) in model.value(i).iter().enumerate() {
            assert!(close(v as f64, value[i * k + j], 1e-5), "{name}: node {i} value {v} vs {}", value[i * k + j]);
        }
    }
    let imp = model.feature_importances();
    for (a, b) in imp.iter().zip(f64s(&want["feature_importances"])) {
        assert!((a - b).abs() <= 1e-6, "{name}: importances {imp:?}");
    }
    // Grid predictions.
    let (got, want) = if cfg.criterion == Criterion::Mse {
        (model.predict(&grid).unwrap(), f64s(&fit["grid_predict"]))
    } else {
        (model.predict_proba(&grid).unwrap(), f64s(&fit["grid_proba"]))
    };
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(close(*g as f64, *w, 1e-5), "{name}: grid value {i}: {g} vs {w}");
    }
    println!(
        "{name}: {} nodes, depth {}, same structure and grid predictions as scikit-learn",
        nodes.len(),
        model.depth()
    );
}

#[test]
fn trees_match_scikit_learn_structure_and_predictions() {
    let f = fixture("tree_small.json");
    for fit in f["fits"].as_array().unwrap() {
        check(&f, fit);
    }
}

/// A seeded uniform value in [0, 1) (SplitMix64), for test data.
pub(crate) fn uniform(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// `n × d` seeded uniform features.
pub(crate) fn random_matrix(n: usize, d: usize, seed: u64) -> Matrix {
    let mut s = seed;
    Matrix::new(n, d, (0..n * d).map(|_| uniform(&mut s)).collect()).unwrap()
}

/// `x` with a share `p` of its cells set to NaN (seeded).
pub(crate) fn with_nans(x: &Matrix, p: f32, seed: u64) -> Matrix {
    let mut s = seed;
    let data = x.data().iter().map(|&v| if uniform(&mut s) < p { f32::NAN } else { v }).collect();
    Matrix::new(x.rows(), x.cols(), data).unwrap()
}

#[test]
fn separable_data_is_fitted_exactly() {
    let x = random_matrix(500, 3, 1);
    let y: Vec<f32> = (0..500)
        .map(|i| {
            let r = x.row(i);
            if r[0] > 0.6 && r[1] < 0.3 {
                2.0
            } else if r[2] > 0.5 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    for criterion in [Criterion::Gini, Criterion::Entropy] {
        let model = tree::fit(&x, &y, &TreeConfig { criterion, ..TreeConfig::default() }).unwrap();
        assert_eq!(model.predict(&x).unwrap(), y, "{criterion:?}");
        assert_eq!(model.n_classes(), 3);
    }
    // Regression with distinct rows: grown to purity, the tree reproduces every target.
    let yr: Vec<f32> = (0..500).map(|i| x.get(i, 0) * 3.0 - x.get(i, 2)).collect();
    let model = tree::fit(&x, &yr, &TreeConfig { criterion: Criterion::Mse, ..TreeConfig::default() }).unwrap();
    assert_eq!(model.predict(&x).unwrap(), yr);
}

#[test]
fn stopping_rules_are_respected() {
    let x = random_matrix(400, 4, 2);
    let y: Vec<f32> = (0..400).map(|i| if x.get(i, 0) + 0.3 * x.get(i, 1) > 0.7 { 1.0 } else { 0.0 }).collect();
    for (depth, leaf) in [(Some(1), 1), (Some(3), 10), (None, 25)] {
        let cfg = TreeConfig { max_depth: depth, min_samples_leaf: leaf, ..TreeConfig::default() };
        let model = tree::fit(&x, &y, &cfg).unwrap();
        assert!(depth.is_none_or(|d| model.depth() <= d), "depth {}", model.depth());
        assert!(model.nodes().iter().all(|n| n.n_samples >= leaf as f64), "min_samples_leaf {leaf}");
    }
    // A large min_impurity_decrease keeps a single leaf holding the class fractions.
    let cfg = TreeConfig { min_impurity_decrease: 1.0, ..TreeConfig::default() };
    let stump = tree::fit(&x, &y, &cfg).unwrap();
    assert_eq!(stump.nodes().len(), 1);
    let share = y.iter().sum::<f32>() / 400.0;
    assert!((stump.value(0)[1] - share).abs() < 1e-6);
}

#[test]
fn missing_values_carrying_the_signal_are_learned() {
    // Feature 0 is missing exactly for class 1; the other features are noise.
    let x0 = random_matrix(300, 3, 3);
    let y: Vec<f32> = (0..300).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
    let data: Vec<f32> = (0..300)
        .flat_map(|i| {
            let r = x0.row(i);
            [if y[i] == 1.0 { f32::NAN } else { r[0] }, r[1], r[2]]
        })
        .collect();
    let x = Matrix::new(300, 3, data).unwrap();
    let model = tree::fit(&x, &y, &TreeConfig::default()).unwrap();
    let root = model.nodes()[0];
    assert_eq!(root.feature, 0);
    assert!(!root.default_left, "present values left, missing right");
    assert_eq!(model.nodes().len(), 3, "one split separates the classes");
    assert_eq!(model.predict(&x).unwrap(), y);
    let unseen = Matrix::from_rows(&[vec![f32::NAN, 0.5, 0.5], vec![0.5, f32::NAN, f32::NAN]]).unwrap();
    assert_eq!(model.predict(&unseen).unwrap(), vec![1.0, 0.0]);

    // Threshold signal plus NaN rows that belong with the high values: the learned default goes right.
    let mut s = 11u64;
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for i in 0..400 {
        let v = uniform(&mut s);
        if i % 5 == 0 {
            rows.push(vec![f32::NAN, uniform(&mut s)]);
            y.push(1.0);
        } else {
            rows.push(vec![v, uniform(&mut s)]);
            y.push(if v > 0.5 { 1.0 } else { 0.0 });
        }
    }
    let x = Matrix::from_rows(&rows).unwrap();
    let model = tree::fit(&x, &y, &TreeConfig { max_depth: Some(1), ..TreeConfig::default() }).unwrap();
    let root = model.nodes()[0];
    assert_eq!(root.feature, 0);
    assert!((root.threshold - 0.5).abs() < 0.01, "threshold {}", root.threshold);
    assert!(!root.default_left, "NaN rows go with the positives, on the right");
    assert_eq!(model.predict(&x).unwrap(), y);
}

#[test]
fn feature_subsets_are_seeded() {
    let x = random_matrix(300, 6, 4);
    let y: Vec<f32> = (0..300).map(|i| ((x.get(i, 0) + x.get(i, 3)) * 1.5) as u32 as f32).collect();
    let cfg = |seed| TreeConfig { max_features: MaxFeatures::Count(2), seed, ..TreeConfig::default() };
    let a = tree::fit(&x, &y, &cfg(7)).unwrap();
    assert_eq!(a, tree::fit(&x, &y, &cfg(7)).unwrap());
    assert_ne!(a, tree::fit(&x, &y, &cfg(8)).unwrap());
}

/// Flattened predictions equal the tree's bit for bit (`score` is what the flat model returns).
pub(crate) fn assert_flat_equal(flat: &FlatForest, x: &Matrix, score: &[f32]) {
    let batch = flat.predict_batch(x).unwrap();
    assert_eq!(batch.len(), score.len());
    for i in 0..x.rows() {
        let row = flat.predict_row(x.row(i)).unwrap();
        assert_eq!(row.to_bits(), score[i].to_bits(), "row {i}: flat {row} vs model {}", score[i]);
        assert_eq!(batch[i].to_bits(), score[i].to_bits(), "batch row {i}");
    }
}

#[test]
fn flat_tree_predicts_bit_identically_including_nan() {
    let x = with_nans(&random_matrix(600, 5, 5), 0.1, 6);
    let probe = with_nans(&random_matrix(1000, 5, 7), 0.2, 8);
    let yb: Vec<f32> = (0..600).map(|i| if x.get(i, 1).is_nan() || x.get(i, 0) > 0.4 { 1.0 } else { 0.0 }).collect();
    let yk: Vec<f32> = (0..600).map(|i| (i % 4) as f32).collect();
    let yr: Vec<f32> = (0..600).map(|i| x.get(i, 2).max(0.0) * 10.0 + (i % 7) as f32).collect();

    let binary = tree::fit(&x, &yb, &TreeConfig { max_depth: Some(8), ..TreeConfig::default() }).unwrap();
    let p1: Vec<f32> = binary.predict_proba(&probe).unwrap().chunks(2).map(|p| p[1]).collect();
    assert_flat_equal(&FlatForest::from_tree(&binary), &probe, &p1);

    let multi = tree::fit(&x, &yk, &TreeConfig::default()).unwrap();
    let flat = FlatForest::from_tree(&multi);
    assert_flat_equal(&flat, &probe, &multi.predict(&probe).unwrap());
    let proba = multi.predict_proba(&probe).unwrap();
    let mut out = [0.0f32; 4];
    for i in 0..probe.rows() {
        flat.predict_row_into(probe.row(i), &mut out).unwrap();
        assert_eq!(&out[..], &proba[i * 4..i * 4 + 4]);
    }

    let reg = tree::fit(&x, &yr, &TreeConfig { criterion: Criterion::Mse, ..TreeConfig::default() }).unwrap();
    assert_flat_equal(&FlatForest::from_tree(&reg), &probe, &reg.predict(&probe).unwrap());
}

#[test]
fn saved_tree_predicts_bit_identically() {
    let x = with_nans(&random_matrix(300, 4, 9), 0.1, 10);
    let y: Vec<f32> = (0..300).map(|i| (i % 3) as f32).collect();
    let model = tree::fit(&x, &y, &TreeConfig { criterion: Criterion::Entropy, ..TreeConfig::default() }).unwrap();
    assert_eq!(DecisionTree::from_parts(model.to_parts()).unwrap(), model);
    let dir = temp_dir("tree-save");
    let path = dir.join("tree.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    let (back, _) = io::load::<DecisionTree>(&path).unwrap();
    assert_eq!(back, model);
    let (a, b) = (model.predict_proba(&x).unwrap(), back.predict_proba(&x).unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corrupted_tree_parts_are_typed_errors() {
    let x = random_matrix(100, 2, 12);
    let y: Vec<f32> = (0..100).map(|i| if x.get(i, 0) > 0.5 { 1.0 } else { 0.0 }).collect();
    let model = tree::fit(&x, &y, &TreeConfig::default()).unwrap();
    assert!(model.nodes().len() >= 3);
    // A child pointing back at the root (a cycle), then a feature out of range.
    for (array, bad) in [("left", 0u32), ("feature", 9)] {
        let mut parts = model.to_parts();
        for (name, a) in parts.arrays.iter_mut() {
            if name == array
                && let io::Array::U32(v, _) = a
            {
                v[0] = bad;
            }
        }
        match DecisionTree::from_parts(parts) {
            Err(Error::MlModelParts { name, .. }) => assert_eq!(name, array),
            other => panic!("{array}: {other:?}"),
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let x = random_matrix(10, 2, 13);
    let y = vec![0.0f32; 10];
    let cfg = TreeConfig::default();
    assert!(matches!(tree::fit(&x, &y[..9], &cfg), Err(Error::DimensionMismatch { expected: 10, got: 9 })));
    let empty = Matrix::new(0, 2, vec![]).unwrap();
    assert!(matches!(tree::fit(&empty, &[], &cfg), Err(Error::MlEmpty(_))));
    let mut bad_y = y.clone();
    bad_y[3] = f32::NAN;
    assert!(matches!(tree::fit(&x, &bad_y, &cfg), Err(Error::MlTarget(_))));
    bad_y[3] = 1.5;
    assert!(matches!(tree::fit(&x, &bad_y, &cfg), Err(Error::MlTarget(_))));
    bad_y[3] = -1.0;
    assert!(matches!(tree::fit(&x, &bad_y, &cfg), Err(Error::MlTarget(_))));
    let mut data = x.data().to_vec();
    data[5] = f32::INFINITY;
    let inf = Matrix::new(10, 2, data).unwrap();
    assert!(matches!(tree::fit(&inf, &y, &cfg), Err(Error::MlNonFinite { row: 2, column: 1 })));
    for bad in [
        TreeConfig { min_samples_split: 1, ..TreeConfig::default() },
        TreeConfig { min_samples_leaf: 0, ..TreeConfig::default() },
        TreeConfig { max_depth: Some(0), ..TreeConfig::default() },
        TreeConfig { min_impurity_decrease: -1.0, ..TreeConfig::default() },
        TreeConfig { max_features: MaxFeatures::Fraction(1.5), ..TreeConfig::default() },
        TreeConfig { max_features: MaxFeatures::Count(0), ..TreeConfig::default() },
    ] {
        assert!(matches!(tree::fit(&x, &y, &bad), Err(Error::InvalidParameter(_))), "{bad:?}");
    }
    let model = tree::fit(&x, &y, &cfg).unwrap();
    let wide = random_matrix(3, 5, 14);
    assert!(matches!(model.predict(&wide), Err(Error::DimensionMismatch { expected: 2, got: 5 })));
    let flat = FlatForest::from_tree(&model);
    assert!(matches!(flat.predict_row(&[0.1]), Err(Error::DimensionMismatch { expected: 2, got: 1 })));
    let reg = tree::fit(&x, &y, &TreeConfig { criterion: Criterion::Mse, ..TreeConfig::default() }).unwrap();
    assert!(matches!(reg.predict_proba(&x), Err(Error::InvalidParameter(_))));
}

/// `n × d` seeded whole numbers in `0..levels` (few distinct values: every one gets its own bin), a
/// share `p` of them NaN.
fn small_integers(n: usize, d: usize, levels: u32, p: f32, seed: u64) -> Matrix {
    let mut s = seed;
    let data = (0..n * d)
        .map(|_| {
            let v = (uniform(&mut s) * levels as f32).floor();
            if uniform(&mut s) < p { f32::NAN } else { v }
        })
        .collect();
    Matrix::new(n, d, data).unwrap()
}

#[test]
fn histogram_trees_split_as_exact_trees_when_every_value_has_its_bin() {
    // With at most max_bins distinct values the histogram splitter sees the same candidate partitions in
    // the same order with the same (whole-number) class counts, so it picks the same splits; only a
    // threshold may differ (the midpoint of neighbouring values of the whole column, not of the node).
    for (seed, p) in [(31u64, 0.0f32), (32, 0.15)] {
        let x = small_integers(500, 3, 12, p, seed);
        let y: Vec<f32> = (0..500)
            .map(|i| {
                let (a, b) = (x.get(i, 0), x.get(i, 1));
                if a.is_nan() || a + 0.5 * b > 9.0 {
                    1.0
                } else if b < 3.0 {
                    2.0
                } else {
                    0.0
                }
            })
            .collect();
        for criterion in [Criterion::Gini, Criterion::Entropy] {
            for depth in [Some(3), None] {
                let cfg = TreeConfig { criterion, max_depth: depth, ..TreeConfig::default() };
                let exact = tree::fit(&x, &y, &cfg).unwrap();
                let hist =
                    tree::fit(&x, &y, &TreeConfig { splitter: Splitter::Histogram { max_bins: 16 }, ..cfg }).unwrap();
                let (a, b) = (exact.nodes(), hist.nodes());
                assert_eq!(a.len(), b.len(), "{criterion:?} {depth:?} NaN {p}: node count");
                for (i, (m, n)) in a.iter().zip(b).enumerate() {
                    assert_eq!((m.left, m.right, m.feature), (n.left, n.right, n.feature), "node {i}");
                    assert_eq!(m.n_samples, n.n_samples, "node {i}");
                    assert_eq!(m.impurity.to_bits(), n.impurity.to_bits(), "node {i}");
                    if !m.is_leaf() {
                        assert_eq!(m.default_left, n.default_left, "node {i}");
                    }
                    assert_eq!(exact.value(i), hist.value(i), "node {i}");
                }
                assert_eq!(exact.predict_proba(&x).unwrap(), hist.predict_proba(&x).unwrap());
            }
        }
    }
}

#[test]
fn histogram_tree_learns_missing_values_and_flattens_bit_identically() {
    // Feature 0 is missing exactly for class 1: one split, present left, missing right.
    let x0 = random_matrix(300, 3, 33);
    let y: Vec<f32> = (0..300).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
    let data: Vec<f32> = (0..300)
        .flat_map(|i| {
            let r = x0.row(i);
            [if y[i] == 1.0 { f32::NAN } else { r[0] }, r[1], r[2]]
        })
        .collect();
    let x = Matrix::new(300, 3, data).unwrap();
    let cfg = TreeConfig { splitter: Splitter::HISTOGRAM, ..TreeConfig::default() };
    let model = tree::fit(&x, &y, &cfg).unwrap();
    let root = model.nodes()[0];
    assert_eq!((root.feature, root.default_left, model.nodes().len()), (0, false, 3));
    assert_eq!(root.threshold, f32::INFINITY, "every present value goes left");
    assert_eq!(model.predict(&x).unwrap(), y);
    let unseen = Matrix::from_rows(&[vec![f32::NAN, 0.5, 0.5], vec![0.5, f32::NAN, f32::NAN]]).unwrap();
    assert_eq!(model.predict(&unseen).unwrap(), vec![1.0, 0.0]);

    // Flattened histogram trees (continuous features binned into 32 bins, NaN in training and probes).
    let x = with_nans(&random_matrix(800, 5, 34), 0.1, 35);
    let probe = with_nans(&random_matrix(1000, 5, 36), 0.2, 37);
    let yb: Vec<f32> = (0..800).map(|i| if x.get(i, 1).is_nan() || x.get(i, 0) > 0.4 { 1.0 } else { 0.0 }).collect();
    let yk: Vec<f32> = (0..800).map(|i| ((x.get(i, 2) * 3.0) as u32).min(2) as f32).collect();
    let yr: Vec<f32> = (0..800).map(|i| x.get(i, 3).max(0.0) * 10.0 + (i % 7) as f32).collect();
    let hist = Splitter::Histogram { max_bins: 32 };
    let binary = tree::fit(&x, &yb, &TreeConfig { splitter: hist, ..TreeConfig::default() }).unwrap();
    let p1: Vec<f32> = binary.predict_proba(&probe).unwrap().chunks(2).map(|p| p[1]).collect();
    assert_flat_equal(&FlatForest::from_tree(&binary), &probe, &p1);
    let multi =
        tree::fit(&x, &yk, &TreeConfig { splitter: hist, max_depth: Some(6), ..TreeConfig::default() }).unwrap();
    assert_flat_equal(&FlatForest::from_tree(&multi), &probe, &multi.predict(&probe).unwrap());
    let reg_cfg = TreeConfig { criterion: Criterion::Mse, splitter: hist, ..TreeConfig::default() };
    let reg = tree::fit(&x, &yr, &reg_cfg).unwrap();
    assert_flat_equal(&FlatForest::from_tree(&reg), &probe, &reg.predict(&probe).unwrap());
    // Bin boundaries are thresholds, so each training row lands in the leaf it was grown into: a tree
    // grown to purity on distinct rows fits them exactly.
    let distinct = random_matrix(400, 2, 38);
    let yd: Vec<f32> =
        (0..400).map(|i| if ((distinct.get(i, 0) * 7.0) as u32).is_multiple_of(2) { 1.0 } else { 0.0 }).collect();
    let full = tree::fit(&distinct, &yd, &TreeConfig { splitter: hist, ..TreeConfig::default() }).unwrap();
    let train_acc = full.predict(&distinct).unwrap().iter().zip(&yd).filter(|(a, b)| a == b).count();
    assert!(train_acc >= 390, "training accuracy {train_acc}/400");
}

#[test]
fn bad_histogram_bins_are_a_typed_error() {
    let x = random_matrix(10, 2, 39);
    let y = vec![0.0f32; 10];
    for max_bins in [0, 1, 256] {
        let cfg = TreeConfig { splitter: Splitter::Histogram { max_bins }, ..TreeConfig::default() };
        assert!(matches!(tree::fit(&x, &y, &cfg), Err(Error::InvalidParameter(_))), "{max_bins}");
    }
}
