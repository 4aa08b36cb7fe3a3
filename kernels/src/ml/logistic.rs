//! Binary logistic regression with an L2 penalty and class weights, fitted by Newton's method
//! (iteratively reweighted least squares) with a backtracking line search, in f64.
//!
//! Reference: Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning* (2nd ed.), §4.4.1
//! (Newton–Raphson / IRLS for the logistic log-likelihood); Nocedal & Wright, *Numerical Optimization*
//! (2nd ed.), §3.1 (Armijo backtracking). The objective is scikit-learn's `LogisticRegression`:
//!
//! ```text
//! minimise  Σ_i s_i · logloss(y_i, σ(x_i·β + b)) + ‖β‖² / (2C)      (b, the intercept, is not penalised)
//! ```
//!
//! with `s_i` the weight of example i's class, so with the same `C` and class weights the fitted
//! coefficients match scikit-learn's (`solver="newton-cholesky"` or `"lbfgs"` with a small `tol`).
//! Sums over rows run over fixed blocks in a fixed order: the fit does not depend on the thread count.

use rayon::prelude::*;

use super::Matrix;
use super::io::{Array, Parts, Persist, check_shape};
use super::linear::{block_rows, check_predict, check_xy, cholesky, cholesky_solve, linear_scores, weighted_gram};
use crate::{Error, Result};

/// How examples are weighted by class.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ClassWeight {
    /// Every example weighs 1 (scikit-learn's `class_weight=None`).
    #[default]
    Unweighted,
    /// Each class weighs `n / (2 n_class)`, so both classes weigh the same in total (`"balanced"`).
    Balanced,
    /// Given weights of the negative (0) and positive (1) class (`{0: negative, 1: positive}`).
    Explicit {
        /// Weight of class 0.
        negative: f64,
        /// Weight of class 1.
        positive: f64,
    },
}

/// Settings of [`fit`] (defaults: scikit-learn's `LogisticRegression`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticConfig {
    /// Inverse penalty strength `C > 0` (`f64::INFINITY`: no penalty).
    pub c: f64,
    /// Class weights.
    pub class_weight: ClassWeight,
    /// Fit an (unpenalised) intercept.
    pub fit_intercept: bool,
    /// Stop when every component of the gradient of the objective divided by the total weight is at most `tol`.
    pub tol: f64,
    /// Newton iterations before giving up ([`Error::MlNotConverged`]).
    pub max_iter: usize,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig { c: 1.0, class_weight: ClassWeight::Unweighted, fit_intercept: true, tol: 1e-4, max_iter: 100 }
    }
}

/// A fitted binary logistic regression: `P(y = 1 | x) = σ(x·coef + intercept)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticModel {
    /// One coefficient per feature.
    pub coef: Vec<f64>,
    /// The intercept (0 when fitted without one).
    pub intercept: f64,
    /// Newton iterations the fit took.
    pub n_iter: usize,
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() }
}

/// The logistic function without overflow.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The objective (divided by the total weight) at the scores `z`.
fn objective(z: &[f64], y: &[f32], s: &[f64], coef: &[f64], inv_c: f64, total: f64) -> f64 {
    let block = block_rows(z.len());
    let partials: Vec<f64> = z
        .par_chunks(block)
        .zip(y.par_chunks(block))
        .zip(s.par_chunks(block))
        .map(|((z, y), s)| z.iter().zip(y).zip(s).map(|((&z, &y), &s)| s * (softplus(z) - f64::from(y) * z)).sum())
        .collect();
    let penalty = if inv_c > 0.0 { 0.5 * inv_c * coef.iter().map(|w| w * w).sum::<f64>() } else { 0.0 };
    (partials.iter().sum::<f64>() + penalty) / total
}

/// Fits a binary logistic regression; `y` holds 0.0 or 1.0 per row.
///
/// # Errors
/// [`Error::MlEmpty`] without rows, [`Error::DimensionMismatch`] when `y` is not one value per row,
/// [`Error::MlNonFinite`] for a NaN or infinity in `x` (naming its row and column), [`Error::MlTarget`]
/// for a label other than 0 or 1 or a target with one class only, [`Error::InvalidParameter`] for a bad
/// `c`, `tol`, `max_iter` or class weight, [`Error::MlNotConverged`] when Newton's method has not met
/// `tol` after `max_iter` iterations (or the line search cannot decrease the objective).
pub fn fit(x: &Matrix, y: &[f32], cfg: &LogisticConfig) -> Result<LogisticModel> {
    if cfg.c.is_nan() || cfg.c <= 0.0 {
        return Err(Error::InvalidParameter(format!("logistic c must be > 0 (infinity: no penalty), got {}", cfg.c)));
    }
    if !(cfg.tol > 0.0 && cfg.tol.is_finite()) || cfg.max_iter == 0 {
        return Err(Error::InvalidParameter(format!(
            "logistic tol must be finite and > 0 and max_iter >= 1, got tol {} and max_iter {}",
            cfg.tol, cfg.max_iter
        )));
    }
    check_xy(x, y)?;
    if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(Error::MlTarget(format!("y[{i}] is {}; binary logistic regression needs 0.0 or 1.0", y[i])));
    }
    let n = y.len();
    let n_pos = y.iter().filter(|&&v| v == 1.0).count();
    if n_pos == 0 || n_pos == n {
        let class = if n_pos == 0 { 0 } else { 1 };
        return Err(Error::MlTarget(format!("all {n} labels are {class}; logistic regression needs both classes")));
    }
    let (w_neg, w_pos) = match cfg.class_weight {
        ClassWeight::Unweighted => (1.0, 1.0),
        ClassWeight::Balanced => (n as f64 / (2 * (n - n_pos)) as f64, n as f64 / (2 * n_pos) as f64),
        ClassWeight::Explicit { negative, positive } => {
            if !(negative > 0.0 && positive > 0.0 && negative.is_finite() && positive.is_finite()) {
                return Err(Error::InvalidParameter(format!(
                    "class weights must be finite and > 0, got {negative} and {positive}"
                )));
            }
            (negative, positive)
        }
    };
    let s: Vec<f64> = y.iter().map(|&v| if v == 1.0 { w_pos } else { w_neg }).collect();
    let total: f64 = s.iter().sum();
    let inv_c = 1.0 / cfg.c;

    let p = x.cols();
    let icpt = cfg.fit_intercept;
    let q = p + usize::from(icpt);
    let zero_shift = vec![0.0f64; p];
    // theta = [coef…, intercept?]
    let mut theta = vec![0.0f64; q];
    let split = |theta: &[f64]| -> (Vec<f64>, f64) { (theta[..p].to_vec(), if icpt { theta[p] } else { 0.0 }) };
    let (c0, b0) = split(&theta);
    let mut z = linear_scores(x, &c0, b0);
    let mut f = objective(&z, y, &s, &c0, inv_c, total);
    let mut last_grad = f64::INFINITY;
    for iter in 1..=cfg.max_iter {
        let prob: Vec<f64> = z.iter().map(|&z| sigmoid(z)).collect();
        let hw: Vec<f64> = prob.iter().zip(&s).map(|(&p, &s)| s * p * (1.0 - p)).collect();
        let r: Vec<f64> = prob.iter().zip(y).zip(&s).map(|((&p, &y), &s)| s * (p - f64::from(y))).collect();
        let (mut h, mut g) = weighted_gram(x, &zero_shift, &hw, &r, icpt);
        for j in 0..p {
            g[j] += inv_c * theta[j];
            h[j * q + j] += inv_c;
        }
        g.iter_mut().for_each(|v| *v /= total);
        h.iter_mut().for_each(|v| *v /= total);
        let grad_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        last_grad = grad_max;
        if grad_max <= cfg.tol {
            return Ok(LogisticModel { coef: theta[..p].to_vec(), intercept: split(&theta).1, n_iter: iter - 1 });
        }
        // Newton direction; a vanishing curvature (separable data without penalty) is damped.
        let scale = (0..q).map(|j| h[j * q + j]).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
        let mut damping = 0.0;
        let step = loop {
            let mut l = h.clone();
            for j in 0..q {
                l[j * q + j] += damping;
            }
            if cholesky(&mut l, q).is_ok() {
                break cholesky_solve(&l, q, &g);
            }
            damping = if damping == 0.0 { scale * 1e-10 } else { damping * 10.0 };
            if damping > scale * 1e10 {
                return Err(Error::MlNotConverged {
                    solver: "logistic newton",
                    iterations: iter,
                    reason: "the Hessian is not positive definite even after damping".into(),
                });
            }
        };
        let slope: f64 = -g.iter().zip(&step).map(|(a, b)| a * b).sum::<f64>();
        let mut t = 1.0f64;
        let mut accepted = false;
        for _ in 0..60 {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(th, d)| th - t * d).collect();
            let (ct, bt) = split(&trial);
            let zt = linear_scores(x, &ct, bt);
            let ft = objective(&zt, y, &s, &ct, inv_c, total);
            if ft <= f + 1e-4 * t * slope || (ft <= f && t < 1e-6) {
                theta = trial;
                z = zt;
                let converged_flat = (f - ft).abs() <= f64::EPSILON * f.abs();
                f = ft;
                accepted = true;
                if converged_flat && t < 1.0 {
                    // At the floor of f64 precision: no further decrease is measurable.
                    let (coef, intercept) = split(&theta);
                    return Ok(LogisticModel { coef, intercept, n_iter: iter });
                }
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            // The objective cannot be decreased along the Newton direction. At a gradient this small
            // that is f64 precision exhausted at the optimum; otherwise the problem is broken.
            if grad_max <= f64::EPSILON.sqrt() {
                let (coef, intercept) = split(&theta);
                return Ok(LogisticModel { coef, intercept, n_iter: iter });
            }
            return Err(Error::MlNotConverged {
                solver: "logistic newton",
                iterations: iter,
                reason: format!("the line search found no decrease (max |gradient| {grad_max:.3e})"),
            });
        }
    }
    Err(Error::MlNotConverged {
        solver: "logistic newton",
        iterations: cfg.max_iter,
        reason: format!("max |gradient| {last_grad:.3e} > tol {:.3e}", cfg.tol),
    })
}

impl LogisticModel {
    /// The number of features the model takes.
    pub fn n_features(&self) -> usize {
        self.coef.len()
    }

    /// The log-odds `x·coef + intercept` of every row, in f64.
    ///
    /// # Errors
    /// As [`LogisticModel::predict_proba`].
    pub fn decision_function(&self, x: &Matrix) -> Result<Vec<f64>> {
        check_predict(x, self.coef.len())?;
        Ok(linear_scores(x, &self.coef, self.intercept))
    }

    /// `P(y = 1 | x)` of every row (computed in f64, returned as f32).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` has another number of columns than the model was fitted on,
    /// [`Error::MlNonFinite`] for a NaN or infinity in `x`.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f32>> {
        Ok(self.decision_function(x)?.into_iter().map(|z| sigmoid(z) as f32).collect())
    }

    /// Class 1.0 where `P(y = 1 | x) ≥ threshold` (compared in f64), else 0.0.
    ///
    /// # Errors
    /// As [`LogisticModel::predict_proba`], and [`Error::InvalidParameter`] for a threshold outside `[0, 1]`.
    pub fn predict(&self, x: &Matrix, threshold: f64) -> Result<Vec<f32>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::InvalidParameter(format!("threshold must be in [0, 1], got {threshold}")));
        }
        Ok(self.decision_function(x)?.into_iter().map(|z| if sigmoid(z) >= threshold { 1.0 } else { 0.0 }).collect())
    }
}

impl Persist for LogisticModel {
    const KIND: &'static str = "logistic";

    fn to_parts(&self) -> Parts {
        Parts {
            params: serde_json::json!({ "n_features": self.coef.len(), "n_iter": self.n_iter }),
            arrays: vec![
                ("coef".into(), Array::F64(self.coef.clone(), vec![self.coef.len()])),
                ("intercept".into(), Array::F64(vec![self.intercept], vec![1])),
            ],
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let n = parts.param_u64("n_features")? as usize;
        let n_iter = parts.param_u64("n_iter")? as usize;
        let (coef, shape) = parts.f64("coef")?;
        check_shape("coef", shape, &[n])?;
        Ok(LogisticModel { coef: coef.to_vec(), intercept: parts.f64_scalar("intercept")?, n_iter })
    }
}
