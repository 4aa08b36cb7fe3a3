//! `kernels::ml::linear` against scikit-learn's `LinearRegression` and `Ridge` (diabetes, and a
//! rank-deficient set for the minimum-norm path), a hand-computed line, and bad input.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::linear::{self, LinearConfig};

use super::{f32s, f64s, fixture, matrix, max_rel_err};

/// Fits with `alpha` and compares with scikit-learn's coefficients and intercept (relative `tol`).
fn check(x: &Matrix, y: &[f32], alpha: f64, want_coef: &[f64], want_intercept: f64, tol: f64) -> f64 {
    let model = linear::fit(x, y, &LinearConfig { alpha, ..LinearConfig::default() }).unwrap();
    let err = max_rel_err(&model.coef, want_coef).max(max_rel_err(&[model.intercept], &[want_intercept]));
    assert!(
        err <= tol,
        "alpha {alpha}: relative error {err:.3e} > {tol:.0e}\n got {:?}\nwant {want_coef:?}",
        model.coef
    );
    err
}

#[test]
fn ols_and_ridge_match_scikit_learn_on_diabetes() {
    let f = fixture("linear_diabetes.json");
    let (x, y) = (matrix(&f["x"]), f32s(&f["y"]));
    for fit in f["fits"].as_array().unwrap() {
        let err = check(
            &x,
            &y,
            fit["alpha"].as_f64().unwrap(),
            &f64s(&fit["coef"]),
            fit["intercept"].as_f64().unwrap(),
            1e-6,
        );
        println!("{}: max relative error vs scikit-learn {err:.2e}", fit["name"]);
    }
    let model = linear::fit(&x, &y, &LinearConfig::default()).unwrap();
    assert_eq!(model.rank, 10);
    let pred = model.predict(&x.select_rows(&(0..10).collect::<Vec<_>>())).unwrap();
    for (p, w) in pred.iter().zip(f64s(&f["predict_first_10"])) {
        assert!((f64::from(*p) - w).abs() <= 1e-4 * w.abs(), "{p} vs {w}");
    }
}

#[test]
fn rank_deficient_design_gives_the_minimum_norm_solution_as_lstsq() {
    let f = fixture("linear_collinear.json");
    let (x, y) = (matrix(&f["x"]), f32s(&f["y"]));
    let model = linear::fit(&x, &y, &LinearConfig::default()).unwrap();
    assert_eq!(model.rank as u64, f["rank"].as_u64().unwrap());
    let err = max_rel_err(&model.coef, &f64s(&f["coef"]));
    assert!(err <= 1e-6, "relative error {err:.3e}: {:?}", model.coef);
    assert!(
        (model.intercept - f["intercept"].as_f64().unwrap()).abs() <= 1e-6 * f["intercept"].as_f64().unwrap().abs()
    );
    println!("collinear: max relative error vs scikit-learn {err:.2e}");
}

#[test]
fn exact_line_is_recovered_and_ridge_shrinks() {
    // y = 2 x0 - 3 x1 + 1, exactly.
    let rows: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, ((i * 7) % 5) as f32]).collect();
    let y: Vec<f32> = rows.iter().map(|r| 2.0 * r[0] - 3.0 * r[1] + 1.0).collect();
    let x = Matrix::from_rows(&rows).unwrap();
    let m = linear::fit(&x, &y, &LinearConfig::default()).unwrap();
    assert!(
        (m.coef[0] - 2.0).abs() < 1e-12 && (m.coef[1] + 3.0).abs() < 1e-12 && (m.intercept - 1.0).abs() < 1e-11,
        "{m:?}"
    );
    for (p, want) in m.predict(&x).unwrap().iter().zip(&y) {
        assert!((p - want).abs() <= 1e-5, "{p} vs {want}");
    }
    let mut last = f64::INFINITY;
    for alpha in [0.1, 1.0, 10.0, 100.0] {
        let r = linear::fit(&x, &y, &LinearConfig { alpha, ..LinearConfig::default() }).unwrap();
        let norm = r.coef.iter().map(|w| w * w).sum::<f64>();
        assert!(norm < last, "alpha {alpha}: the coefficient norm must shrink");
        last = norm;
    }
    let origin = linear::fit(&x, &y, &LinearConfig { fit_intercept: false, ..LinearConfig::default() }).unwrap();
    assert_eq!(origin.intercept, 0.0);
}

#[test]
fn bad_input_is_a_typed_error() {
    let x = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, f32::NAN], vec![5.0, 6.0]]).unwrap();
    let y = [1.0, 2.0, 3.0];
    assert!(matches!(linear::fit(&x, &y, &LinearConfig::default()), Err(Error::MlNonFinite { row: 1, column: 1 })));

    let x = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, f32::INFINITY]]).unwrap();
    assert!(matches!(linear::fit(&x, &y, &LinearConfig::default()), Err(Error::MlNonFinite { row: 2, column: 1 })));

    let x = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 7.0]]).unwrap();
    assert!(matches!(
        linear::fit(&x, &y[..2], &LinearConfig::default()),
        Err(Error::DimensionMismatch { expected: 3, got: 2 })
    ));
    assert!(matches!(linear::fit(&x, &[1.0, f32::NAN, 3.0], &LinearConfig::default()), Err(Error::MlTarget(_))));
    let neg = LinearConfig { alpha: -1.0, ..LinearConfig::default() };
    assert!(matches!(linear::fit(&x, &y, &neg), Err(Error::InvalidParameter(_))));
    let empty = Matrix::new(0, 2, vec![]).unwrap();
    assert!(matches!(linear::fit(&empty, &[], &LinearConfig::default()), Err(Error::MlEmpty(_))));
    assert!(matches!(Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]), Err(Error::DimensionMismatch { .. })));

    let m = linear::fit(&x, &y, &LinearConfig::default()).unwrap();
    let wide = Matrix::new(1, 3, vec![1.0, 2.0, 3.0]).unwrap();
    assert!(matches!(m.predict(&wide), Err(Error::DimensionMismatch { expected: 2, got: 3 })));
    let nan = Matrix::new(1, 2, vec![1.0, f32::NAN]).unwrap();
    assert!(matches!(m.predict(&nan), Err(Error::MlNonFinite { row: 0, column: 1 })));
}
