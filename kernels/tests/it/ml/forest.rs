//! `kernels::ml::forest` against scikit-learn's `RandomForestClassifier` on breast_cancer (the forests
//! are randomised, so the test ROC AUC is compared, not the trees), out-of-bag scores, determinism
//! across thread counts, the flattened forest, model files, and bad input.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig, RandomForest};
use kernels::ml::io::{self, ModelMeta, Persist};
use kernels::ml::metrics::roc_auc;
use kernels::ml::tree::{Criterion, MaxFeatures, Splitter, TreeConfig};

use super::tree::{assert_flat_equal, random_matrix, with_nans};
use super::{f32s, fixture, matrix, temp_dir};

/// breast_cancer's train and test parts as in the fixture.
pub(crate) fn breast_cancer() -> (Matrix, Vec<f32>, Matrix, Vec<f32>) {
    let f = fixture("forest_breast_cancer.json");
    let (x, y) = (matrix(&f["x"]), f32s(&f["y"]));
    let idx = |k: &str| f[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
    let (train, test) = (idx("train"), idx("test"));
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f32>>();
    (x.select_rows(&train), pick(&train), x.select_rows(&test), pick(&test))
}

fn p1(forest: &RandomForest, x: &Matrix) -> Vec<f32> {
    forest.predict_proba(x).unwrap().chunks(2).map(|p| p[1]).collect()
}

#[test]
fn forest_auc_matches_scikit_learn_on_breast_cancer() {
    let f = fixture("forest_breast_cancer.json");
    let (xtr, ytr, xte, yte) = breast_cancer();
    for fit in f["fits"].as_array().unwrap() {
        let p = &fit["params"];
        let tree = TreeConfig {
            max_depth: p.get("max_depth").map(|v| v.as_u64().unwrap() as usize),
            min_samples_leaf: p.get("min_samples_leaf").map_or(1, |v| v.as_u64().unwrap() as usize),
            ..TreeConfig::default()
        };
        let cfg = ForestConfig { n_trees: 100, tree, oob_score: true, seed: 1, ..ForestConfig::default() };
        let model = forest::fit(&xtr, &ytr, &cfg).unwrap();
        let auc = roc_auc(&yte, &p1(&model, &xte)).unwrap();
        let (want_auc, want_oob) = (fit["test_roc_auc"].as_f64().unwrap(), fit["oob_score"].as_f64().unwrap());
        let oob = model.oob_score().unwrap();
        println!(
            "{}: test ROC AUC {auc:.4} (scikit-learn {want_auc:.4}), OOB accuracy {oob:.4} (scikit-learn {want_oob:.4})",
            fit["name"]
        );
        assert!(auc >= want_auc - 0.005, "{}: AUC {auc} vs {want_auc}", fit["name"]);
        assert!((oob - want_oob).abs() <= 0.03, "{}: OOB {oob} vs {want_oob}", fit["name"]);
    }
}

#[test]
fn more_trees_do_not_hurt_the_oob_score_much() {
    let (xtr, ytr, _, _) = breast_cancer();
    let oob = |n_trees| {
        let cfg = ForestConfig { n_trees, oob_score: true, seed: 3, ..ForestConfig::default() };
        forest::fit(&xtr, &ytr, &cfg).unwrap().oob_score().unwrap()
    };
    let scores: Vec<f64> = [5, 20, 80].into_iter().map(oob).collect();
    println!("OOB accuracy for 5, 20, 80 trees: {scores:?}");
    assert!(scores[1] >= scores[0] - 0.01 && scores[2] >= scores[1] - 0.01, "{scores:?}");
}

#[test]
fn forest_is_the_same_with_one_and_two_threads() {
    let x = with_nans(&random_matrix(400, 6, 21), 0.05, 22);
    let y: Vec<f32> = (0..400).map(|i| if x.get(i, 0) > 0.5 || x.get(i, 3).is_nan() { 1.0 } else { 0.0 }).collect();
    let cfg = ForestConfig { n_trees: 24, oob_score: true, seed: 5, ..ForestConfig::default() };
    let fit_with = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| forest::fit(&x, &y, &cfg).unwrap())
    };
    let (one, two) = (fit_with(1), fit_with(2));
    assert_eq!(one, two);
    let (a, b) = (p1(&one, &x), p1(&two, &x));
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    assert_ne!(one, forest::fit(&x, &y, &ForestConfig { seed: 6, ..cfg }).unwrap());
}

#[test]
fn regression_forest_and_its_oob_r2() {
    let x = random_matrix(500, 4, 23);
    let y: Vec<f32> = (0..500).map(|i| 4.0 * x.get(i, 0) - 2.0 * x.get(i, 1) * x.get(i, 2)).collect();
    let tree = TreeConfig { criterion: Criterion::Mse, ..TreeConfig::default() };
    let cfg = ForestConfig { n_trees: 40, tree, oob_score: true, seed: 7, ..ForestConfig::default() };
    let model = forest::fit(&x, &y, &cfg).unwrap();
    let r2 = model.oob_score().unwrap();
    println!("regression forest OOB R² {r2:.4}");
    assert!(r2 > 0.9, "OOB R² {r2}");
    let imp = model.feature_importances();
    assert!(imp[0] > imp[3] && imp[1] > imp[3], "{imp:?}");
    assert_flat_equal(&FlatForest::from_forest(&model), &x, &model.predict(&x).unwrap());
}

#[test]
fn flat_forest_predicts_bit_identically_including_nan() {
    let x = with_nans(&random_matrix(500, 5, 24), 0.1, 25);
    let y: Vec<f32> = (0..500).map(|i| if x.get(i, 1).is_nan() || x.get(i, 0) > 0.6 { 1.0 } else { 0.0 }).collect();
    let model = forest::fit(&x, &y, &ForestConfig { n_trees: 30, seed: 8, ..ForestConfig::default() }).unwrap();
    let probe = with_nans(&random_matrix(700, 5, 26), 0.2, 27);
    let flat = FlatForest::from_forest(&model);
    assert_eq!(flat.n_trees(), 30);
    assert_flat_equal(&flat, &probe, &p1(&model, &probe));
    // Multi-class: the argmax and every probability.
    let yk: Vec<f32> = (0..500).map(|i| (i % 3) as f32).collect();
    let multi = forest::fit(&x, &yk, &ForestConfig { n_trees: 10, seed: 9, ..ForestConfig::default() }).unwrap();
    let flat = FlatForest::from_forest(&multi);
    assert_flat_equal(&flat, &probe, &multi.predict(&probe).unwrap());
    let all = flat.predict_batch_all(&probe).unwrap();
    let proba = multi.predict_proba(&probe).unwrap();
    assert!(all.iter().zip(&proba).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn saved_forest_predicts_bit_identically() {
    let (xtr, ytr, xte, _) = breast_cancer();
    let model =
        forest::fit(&xtr, &ytr, &ForestConfig { n_trees: 20, oob_score: true, ..ForestConfig::default() }).unwrap();
    assert_eq!(RandomForest::from_parts(model.to_parts()).unwrap(), model);
    let dir = temp_dir("forest-save");
    let path = dir.join("forest.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&xtr)).unwrap();
    let (back, _) = io::load::<RandomForest>(&path).unwrap();
    assert_eq!(back, model);
    let (a, b) = (p1(&model, &xte), p1(&back, &xte));
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_forest_input_is_a_typed_error() {
    let x = random_matrix(20, 3, 28);
    let y = vec![1.0f32; 20];
    let cfg = ForestConfig { n_trees: 3, ..ForestConfig::default() };
    assert!(matches!(forest::fit(&x, &y[..5], &cfg), Err(Error::DimensionMismatch { expected: 20, got: 5 })));
    assert!(matches!(forest::fit(&Matrix::new(0, 3, vec![]).unwrap(), &[], &cfg), Err(Error::MlEmpty(_))));
    let mut bad = y.clone();
    bad[0] = f32::INFINITY;
    assert!(matches!(forest::fit(&x, &bad, &cfg), Err(Error::MlTarget(_))));
    assert!(matches!(
        forest::fit(&x, &y, &ForestConfig { n_trees: 0, ..cfg.clone() }),
        Err(Error::InvalidParameter(_))
    ));
    let no_bootstrap = ForestConfig { bootstrap: false, oob_score: true, ..cfg.clone() };
    assert!(matches!(forest::fit(&x, &y, &no_bootstrap), Err(Error::InvalidParameter(_))));
    let model = forest::fit(&x, &y, &cfg).unwrap();
    assert!(matches!(model.predict(&random_matrix(2, 4, 29)), Err(Error::DimensionMismatch { expected: 3, got: 4 })));
}

#[test]
fn histogram_forest_ranks_as_well_as_the_exact_forest_on_breast_cancer() {
    let (xtr, ytr, xte, yte) = breast_cancer();
    let auc = |splitter, max_features| {
        let cfg = ForestConfig { n_trees: 100, splitter, max_features, seed: 4, ..ForestConfig::default() };
        roc_auc(&yte, &p1(&forest::fit(&xtr, &ytr, &cfg).unwrap(), &xte)).unwrap()
    };
    for max_features in [None, Some(MaxFeatures::All)] {
        let exact = auc(Splitter::Exact, max_features);
        for max_bins in [255, 32] {
            let hist = auc(Splitter::Histogram { max_bins }, max_features);
            println!("{max_features:?}: test ROC AUC exact {exact:.4}, histogram with {max_bins} bins {hist:.4}");
            assert!(hist >= exact - 0.01, "{max_features:?}, {max_bins} bins: {hist} vs exact {exact}");
        }
    }
}

#[test]
fn every_splitter_gives_the_same_forest_on_one_and_two_threads() {
    let x = with_nans(&random_matrix(3_000, 6, 40), 0.05, 41);
    let y: Vec<f32> = (0..3_000).map(|i| if x.get(i, 0) > 0.5 || x.get(i, 3).is_nan() { 1.0 } else { 0.0 }).collect();
    let yr: Vec<f32> = (0..3_000).map(|i| x.get(i, 1).max(0.0) * 3.0 + x.get(i, 2).max(0.0)).collect();
    for (splitter, max_features, criterion) in [
        (Splitter::Exact, None, Criterion::Gini),
        (Splitter::HISTOGRAM, None, Criterion::Entropy),
        // All features per node: the histogram splitter's subtraction path.
        (Splitter::HISTOGRAM, Some(MaxFeatures::All), Criterion::Gini),
        (Splitter::Histogram { max_bins: 16 }, None, Criterion::Mse),
    ] {
        let tree = TreeConfig { criterion, max_depth: Some(12), ..TreeConfig::default() };
        let cfg = ForestConfig { n_trees: 12, tree, splitter, max_features, seed: 9, ..ForestConfig::default() };
        let target = if criterion == Criterion::Mse { &yr } else { &y };
        let fit_with = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| forest::fit(&x, target, &cfg).unwrap())
        };
        let (one, two) = (fit_with(1), fit_with(2));
        assert_eq!(one, two, "{splitter:?} {max_features:?} {criterion:?}");
        assert_eq!(one, fit_with(2), "{splitter:?}: refitting gives the same forest");
        let flat = FlatForest::from_forest(&one);
        let want = if criterion == Criterion::Mse { one.predict(&x).unwrap() } else { p1(&one, &x) };
        assert_flat_equal(&flat, &x, &want);
    }
}

#[test]
fn bad_forest_splitter_is_a_typed_error() {
    let x = random_matrix(20, 3, 42);
    let y: Vec<f32> = (0..20).map(|i| (i % 2) as f32).collect();
    let cfg = ForestConfig { n_trees: 2, splitter: Splitter::Histogram { max_bins: 300 }, ..ForestConfig::default() };
    assert!(matches!(forest::fit(&x, &y, &cfg), Err(Error::InvalidParameter(_))));
}
