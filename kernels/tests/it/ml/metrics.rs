//! `kernels::ml::metrics` against scikit-learn on scores with many ties (ROC AUC, average precision,
//! log-loss with exact 0 and 1 probabilities, confusion counts at three thresholds) and on a
//! regression (RMSE, R²); hand-computed cases and bad input.

use kernels::Error;
use kernels::ml::metrics::{self, Confusion};

use super::{f32s, fixture};

fn check(name: &str, got: f64, want: &serde_json::Value) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{name}: no reference"));
    assert!((got - want).abs() <= 1e-12, "{name}: {got} vs scikit-learn {want} (diff {:.3e})", got - want);
}

#[test]
fn classification_metrics_equal_scikit_learn_with_ties() {
    let f = fixture("metrics_ties.json");
    let (y, s) = (f32s(&f["y_true"]), f32s(&f["scores"]));
    check("roc_auc", metrics::roc_auc(&y, &s).unwrap(), &f["roc_auc"]);
    check("average_precision", metrics::pr_auc(&y, &s).unwrap(), &f["average_precision"]);
    check("log_loss", metrics::log_loss(&y, &s).unwrap(), &f["log_loss"]);
    for case in f["thresholds"].as_array().unwrap() {
        let t = case["threshold"].as_f64().unwrap();
        let c = metrics::confusion_matrix(&y, &s, t as f32).unwrap();
        let count = |k: &str| case[k].as_u64().unwrap() as usize;
        assert_eq!(
            c,
            Confusion { tp: count("tp"), fp: count("fp"), tn: count("tn"), fn_: count("fn") },
            "threshold {t}"
        );
        check("precision", c.precision(), &case["precision"]);
        check("recall", c.recall(), &case["recall"]);
        check("f1", c.f1(), &case["f1"]);
        check("accuracy", c.accuracy(), &case["accuracy"]);
        let pred: Vec<f32> = s.iter().map(|&v| if v >= t as f32 { 1.0 } else { 0.0 }).collect();
        check("accuracy()", metrics::accuracy(&y, &pred).unwrap(), &case["accuracy"]);
    }
}

#[test]
fn regression_metrics_equal_scikit_learn() {
    let f = fixture("metrics_regression.json");
    let (y, p) = (f32s(&f["y_true"]), f32s(&f["y_pred"]));
    check("rmse", metrics::rmse(&y, &p).unwrap(), &f["rmse"]);
    check("r2", metrics::r2(&y, &p).unwrap(), &f["r2"]);
}

#[test]
fn hand_computed_cases() {
    let y = [0.0, 0.0, 1.0, 1.0];
    assert_eq!(metrics::roc_auc(&y, &[0.1, 0.2, 0.3, 0.4]).unwrap(), 1.0);
    assert_eq!(metrics::roc_auc(&y, &[0.4, 0.3, 0.2, 0.1]).unwrap(), 0.0);
    assert_eq!(metrics::roc_auc(&y, &[0.5; 4]).unwrap(), 0.5);
    // One positive tied with one negative: 3 of 4 pairs won, one tied.
    assert_eq!(metrics::roc_auc(&y, &[0.1, 0.5, 0.5, 0.9]).unwrap(), 0.875);
    // AP: ranks 1 (pos), 2 (neg), 3 (pos): (1/2)·1 + (1/2)·(2/3).
    assert!((metrics::pr_auc(&[1.0, 0.0, 1.0], &[0.9, 0.5, 0.1]).unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
    assert_eq!(metrics::pr_auc(&[1.0, 1.0], &[0.2, 0.3]).unwrap(), 1.0);
    assert!((metrics::log_loss(&[1.0, 0.0], &[0.5, 0.5]).unwrap() - std::f64::consts::LN_2).abs() < 1e-15);
    assert!((metrics::log_loss(&[1.0], &[0.0]).unwrap() + f64::EPSILON.ln()).abs() < 1e-12);
    assert_eq!(metrics::r2(&[3.0, 3.0], &[3.0, 3.0]).unwrap(), 1.0);
    assert_eq!(metrics::r2(&[3.0, 3.0], &[3.0, 4.0]).unwrap(), 0.0);
    assert_eq!(metrics::rmse(&[1.0, 2.0], &[1.0, 4.0]).unwrap(), 2.0f64.sqrt());
    let none = metrics::confusion_matrix(&y, &[0.0; 4], 0.5).unwrap();
    assert_eq!((none.precision(), none.recall(), none.f1()), (0.0, 0.0, 0.0));
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(metrics::roc_auc(&[1.0, 1.0], &[0.2, 0.3]), Err(Error::MlTarget(_))));
    assert!(matches!(metrics::roc_auc(&[0.0, 0.0], &[0.2, 0.3]), Err(Error::MlTarget(_))));
    assert!(matches!(metrics::pr_auc(&[0.0, 0.0], &[0.2, 0.3]), Err(Error::MlTarget(_))));
    assert!(matches!(
        metrics::roc_auc(&[0.0, 1.0, 1.0], &[0.2, 0.3]),
        Err(Error::DimensionMismatch { expected: 3, got: 2 })
    ));
    assert!(matches!(metrics::roc_auc(&[], &[]), Err(Error::MlEmpty(_))));
    assert!(matches!(metrics::accuracy(&[], &[]), Err(Error::MlEmpty(_))));
    assert!(matches!(metrics::roc_auc(&[0.0, 2.0], &[0.2, 0.3]), Err(Error::MlTarget(_))));
    assert!(matches!(metrics::roc_auc(&[0.0, 1.0], &[0.2, f32::NAN]), Err(Error::MlNonFinite { row: 1, column: 0 })));
    assert!(matches!(metrics::log_loss(&[0.0, 1.0], &[0.2, 1.5]), Err(Error::InvalidParameter(_))));
    assert!(matches!(metrics::rmse(&[1.0], &[1.0, 2.0]), Err(Error::DimensionMismatch { .. })));
    assert!(matches!(metrics::r2(&[f32::NAN], &[1.0]), Err(Error::MlTarget(_))));
    assert!(matches!(metrics::confusion_matrix(&[0.0, 1.0], &[0.2, 0.3], f32::NAN), Err(Error::InvalidParameter(_))));
}
