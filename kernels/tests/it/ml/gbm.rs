//! `kernels::ml::gbm` against LightGBM: the held-out ROC AUC on breast_cancer (with and without
//! missing values) and the held-out RMSE on diabetes with the same leaves, learning rate, rounds,
//! `min_data_in_leaf` and `lambda_l2`; properties (NaN carrying the signal, early stopping keeping the
//! best round, determinism across threads), the flattened model, model files, and bad input.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::gbm::{self, Gbm, GbmConfig, Objective};
use kernels::ml::io::{self, ModelMeta, Persist};
use kernels::ml::metrics::{rmse, roc_auc};
use serde_json::Value;

use super::forest::breast_cancer;
use super::tree::{assert_flat_equal, random_matrix, uniform, with_nans};
use super::{f32s, fixture, matrix, temp_dir};

/// The settings of a fixture case (LightGBM's names: `min_child_samples` is `min_data_in_leaf`,
/// `reg_lambda` is `lambda_l2`).
fn config(fit: &Value, objective: Objective) -> GbmConfig {
    GbmConfig {
        objective,
        num_iterations: fit["rounds"].as_u64().unwrap() as usize,
        num_leaves: fit["num_leaves"].as_u64().unwrap() as usize,
        learning_rate: fit["learning_rate"].as_f64().unwrap(),
        min_data_in_leaf: fit["min_child_samples"].as_u64().unwrap() as usize,
        lambda_l2: fit["reg_lambda"].as_f64().unwrap(),
        ..GbmConfig::default()
    }
}

/// The fixture's missing-value rule: row i, column j is NaN when (31 i + 17 j) % 10 == 0 (i counts
/// rows of the whole data set, before the split).
pub(crate) fn nan_rule(x: &Matrix) -> Matrix {
    let d = x.cols();
    let data = x
        .data()
        .iter()
        .enumerate()
        .map(|(p, &v)| if (31 * (p / d) + 17 * (p % d)).is_multiple_of(10) { f32::NAN } else { v })
        .collect();
    Matrix::new(x.rows(), d, data).unwrap()
}

#[test]
fn binary_auc_matches_lightgbm_on_breast_cancer() {
    let f = fixture("gbm_breast_cancer.json");
    let data = fixture("forest_breast_cancer.json");
    let idx = |k: &str| data[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
    let (x, y) = (matrix(&data["x"]), f32s(&data["y"]));
    let xm = nan_rule(&x);
    let (train, test) = (idx("train"), idx("test"));
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f32>>();
    let (ytr, yte) = (pick(&train), pick(&test));
    for fit in f["fits"].as_array().unwrap() {
        let xx = if fit["nan_rule"].as_bool().unwrap() { &xm } else { &x };
        let model = gbm::fit(&xx.select_rows(&train), &ytr, None, &config(fit, Objective::Binary)).unwrap();
        let auc = roc_auc(&yte, &model.predict_proba(&xx.select_rows(&test)).unwrap()).unwrap();
        let want = fit["test_roc_auc"].as_f64().unwrap();
        println!("{}: test ROC AUC {auc:.4} (LightGBM {want:.4})", fit["name"]);
        assert!((auc - want).abs() <= 0.005 || auc > want, "{}: AUC {auc} vs LightGBM {want}", fit["name"]);
    }
}

#[test]
fn regression_rmse_is_close_to_lightgbm_on_diabetes() {
    let f = fixture("gbm_diabetes.json");
    let (x, y) = (matrix(&f["x"]), f32s(&f["y"]));
    let idx = |k: &str| f[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
    let (train, test) = (idx("train"), idx("test"));
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f32>>();
    for fit in f["fits"].as_array().unwrap() {
        let model = gbm::fit(&x.select_rows(&train), &pick(&train), None, &config(fit, Objective::Regression)).unwrap();
        let got = rmse(&pick(&test), &model.predict(&x.select_rows(&test)).unwrap()).unwrap();
        let want = fit["test_rmse"].as_f64().unwrap();
        println!("{}: test RMSE {got:.3} (LightGBM {want:.3})", fit["name"]);
        assert!(got <= want * 1.05, "{}: RMSE {got} vs LightGBM {want}", fit["name"]);
    }
}

#[test]
fn missing_values_carrying_the_signal_are_learned() {
    // Class 1 rows have feature 0 missing; feature 0 is otherwise uninformative.
    let x0 = random_matrix(600, 3, 31);
    let y: Vec<f32> = (0..600).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect();
    let data: Vec<f32> = (0..600)
        .flat_map(|i| {
            let r = x0.row(i);
            [if y[i] == 1.0 { f32::NAN } else { r[0] }, r[1], r[2]]
        })
        .collect();
    let x = Matrix::new(600, 3, data).unwrap();
    let model = gbm::fit(&x, &y, None, &GbmConfig { num_iterations: 30, ..GbmConfig::default() }).unwrap();
    assert_eq!(roc_auc(&y, &model.predict_proba(&x).unwrap()).unwrap(), 1.0);
    let root = model.trees()[0].nodes()[0];
    assert_eq!(root.feature, 0);
    let probe = Matrix::from_rows(&[vec![f32::NAN, 0.2, 0.7], vec![0.3, f32::NAN, f32::NAN]]).unwrap();
    let p = model.predict_proba(&probe).unwrap();
    assert!(p[0] > 0.9 && p[1] < 0.1, "{p:?}");

    // Regression: y = 10 where feature 1 is missing, else y = x0; the NaN rows follow their default.
    let mut s = 32u64;
    let (mut rows, mut y) = (Vec::new(), Vec::new());
    for i in 0..800 {
        let v = uniform(&mut s);
        if i % 5 == 0 {
            rows.push(vec![v, f32::NAN]);
            y.push(10.0);
        } else {
            rows.push(vec![v, uniform(&mut s)]);
            y.push(v);
        }
    }
    let x = Matrix::from_rows(&rows).unwrap();
    let cfg = GbmConfig { objective: Objective::Regression, num_iterations: 60, ..GbmConfig::default() };
    let model = gbm::fit(&x, &y, None, &cfg).unwrap();
    let pred = model.predict(&Matrix::from_rows(&[vec![0.5, f32::NAN], vec![0.5, 0.5]]).unwrap()).unwrap();
    assert!((pred[0] - 10.0).abs() < 0.1 && (pred[1] - 0.5).abs() < 0.1, "{pred:?}");
}

#[test]
fn early_stopping_keeps_the_best_round() {
    // Noisy labels and a high learning rate: the validation loss turns up early.
    let x = random_matrix(1500, 4, 33);
    let mut s = 34u64;
    let y: Vec<f32> = (0..1500).map(|i| if x.get(i, 0) + 0.6 * uniform(&mut s) > 0.8 { 1.0 } else { 0.0 }).collect();
    let (tr, va): (Vec<usize>, Vec<usize>) = (0..1500).partition(|i| i % 3 != 0);
    let (xtr, xva) = (x.select_rows(&tr), x.select_rows(&va));
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f32>>();
    let (ytr, yva) = (pick(&tr), pick(&va));
    let cfg = GbmConfig {
        num_iterations: 500,
        learning_rate: 0.3,
        num_leaves: 31,
        min_data_in_leaf: 5,
        early_stopping_rounds: Some(10),
        ..GbmConfig::default()
    };
    let model = gbm::fit(&xtr, &ytr, Some((&xva, &yva)), &cfg).unwrap();
    let losses = model.valid_loss();
    let best = model.best_iteration().unwrap();
    println!("early stopping: {} rounds run, best {best}, loss {:.4}", losses.len(), losses[best - 1]);
    assert!(losses.len() < 500, "stopped early");
    assert_eq!(losses.len(), best + 10);
    assert_eq!(model.trees().len(), best);
    let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best - 1], min);
    // The kept model's validation loss is the best one.
    let p = model.predict_proba(&xva).unwrap();
    let ll = kernels::ml::metrics::log_loss(&yva, &p).unwrap();
    assert!((ll - min).abs() < 1e-5, "{ll} vs {min}");
}

#[test]
fn subsampled_boosting_is_seeded_and_thread_count_independent() {
    let x = with_nans(&random_matrix(700, 6, 35), 0.05, 36);
    let y: Vec<f32> = (0..700).map(|i| if x.get(i, 2) > 0.5 { 1.0 } else { 0.0 }).collect();
    let cfg =
        GbmConfig { num_iterations: 20, feature_fraction: 0.5, bagging_fraction: 0.7, seed: 4, ..GbmConfig::default() };
    let fit_with = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| gbm::fit(&x, &y, None, &cfg).unwrap())
    };
    let one = fit_with(1);
    assert_eq!(one, fit_with(2));
    assert_ne!(one, gbm::fit(&x, &y, None, &GbmConfig { seed: 5, ..cfg }).unwrap());
}

#[test]
fn flat_gbm_predicts_bit_identically_including_nan() {
    let x = with_nans(&random_matrix(800, 5, 37), 0.1, 38);
    let probe = with_nans(&random_matrix(900, 5, 39), 0.2, 40);
    let yb: Vec<f32> = (0..800).map(|i| if x.get(i, 0).is_nan() || x.get(i, 1) > 0.5 { 1.0 } else { 0.0 }).collect();
    let binary = gbm::fit(&x, &yb, None, &GbmConfig { num_iterations: 40, ..GbmConfig::default() }).unwrap();
    assert_flat_equal(&FlatForest::from_gbm(&binary), &probe, &binary.predict_proba(&probe).unwrap());
    let yr: Vec<f32> =
        (0..800).map(|i| x.get(i, 3).max(0.0) * 5.0 + if x.get(i, 4).is_nan() { 2.0 } else { 0.0 }).collect();
    let cfg = GbmConfig { objective: Objective::Regression, num_iterations: 40, ..GbmConfig::default() };
    let reg = gbm::fit(&x, &yr, None, &cfg).unwrap();
    assert_flat_equal(&FlatForest::from_gbm(&reg), &probe, &reg.predict(&probe).unwrap());
}

#[test]
fn saved_gbm_predicts_bit_identically() {
    let (xtr, ytr, xte, yte) = breast_cancer();
    let cfg = GbmConfig { num_iterations: 200, early_stopping_rounds: Some(20), ..GbmConfig::default() };
    let model = gbm::fit(&xtr, &ytr, Some((&xte, &yte)), &cfg).unwrap();
    assert_eq!(Gbm::from_parts(model.to_parts()).unwrap(), model);
    let dir = temp_dir("gbm-save");
    let path = dir.join("gbm.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&xtr)).unwrap();
    let (back, _) = io::load::<Gbm>(&path).unwrap();
    assert_eq!(back, model);
    let (a, b) = (model.predict_proba(&xte).unwrap(), back.predict_proba(&xte).unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_gbm_input_is_a_typed_error() {
    let x = random_matrix(50, 3, 41);
    let y: Vec<f32> = (0..50).map(|i| (i % 2) as f32).collect();
    let cfg = GbmConfig { num_iterations: 3, ..GbmConfig::default() };
    assert!(matches!(gbm::fit(&x, &y[..49], None, &cfg), Err(Error::DimensionMismatch { expected: 50, got: 49 })));
    assert!(matches!(gbm::fit(&Matrix::new(0, 3, vec![]).unwrap(), &[], None, &cfg), Err(Error::MlEmpty(_))));
    let mut bad = y.clone();
    bad[7] = f32::NAN;
    assert!(matches!(gbm::fit(&x, &bad, None, &cfg), Err(Error::MlTarget(_))));
    bad[7] = 2.0;
    assert!(matches!(gbm::fit(&x, &bad, None, &cfg), Err(Error::MlTarget(_))));
    assert!(matches!(gbm::fit(&x, &[1.0; 50], None, &cfg), Err(Error::MlTarget(_))));
    for bad_cfg in [
        GbmConfig { num_leaves: 1, ..cfg.clone() },
        GbmConfig { learning_rate: 0.0, ..cfg.clone() },
        GbmConfig { max_bin: 256, ..cfg.clone() },
        GbmConfig { bagging_fraction: 0.0, ..cfg.clone() },
        GbmConfig { early_stopping_rounds: Some(5), ..cfg.clone() },
    ] {
        assert!(matches!(gbm::fit(&x, &y, None, &bad_cfg), Err(Error::InvalidParameter(_))), "{bad_cfg:?}");
    }
    let narrow = random_matrix(10, 2, 42);
    let yv = vec![0.0f32; 10];
    assert!(matches!(
        gbm::fit(&x, &y, Some((&narrow, &yv)), &cfg),
        Err(Error::DimensionMismatch { expected: 3, got: 2 })
    ));
    let model = gbm::fit(&x, &y, None, &cfg).unwrap();
    assert!(matches!(model.predict_raw(&narrow), Err(Error::DimensionMismatch { expected: 3, got: 2 })));
    let reg = gbm::fit(&x, &y, None, &GbmConfig { objective: Objective::Regression, ..cfg }).unwrap();
    assert!(matches!(reg.predict_proba(&x), Err(Error::InvalidParameter(_))));
}
