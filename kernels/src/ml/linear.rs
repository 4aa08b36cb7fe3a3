//! Linear least squares with an intercept and optional ridge penalty (scikit-learn's
//! `LinearRegression` and `Ridge`), solved in f64 by Cholesky of the centred normal equations.
//!
//! Reference: Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning* (2nd ed.), §3.2
//! (least squares) and §3.4.1 (ridge: the intercept is not penalised, so the columns and the target
//! are centred and the intercept recovered as `ȳ − x̄·w`); Golub & Van Loan, *Matrix Computations*
//! (4th ed.), §4.2 (Cholesky) and §8.5 (the cyclic Jacobi eigenvalue method of the rank-deficient path).
//!
//! The normal equations `(XcᵀXc + αI) w = Xcᵀyc` are formed in f64 from the f32 features, summed
//! over fixed row blocks in a fixed order (the result does not depend on the thread count). When the
//! system is numerically singular (a constant column, a copied column, more columns than rows) and
//! `alpha` does not regularise it, the solver switches to the minimum-norm solution through a
//! symmetric eigendecomposition, the answer `LinearRegression` (LAPACK `gelsd`) gives; the model's
//! [`LinearModel::rank`] says which path ran.

use rayon::prelude::*;

use super::Matrix;
use super::io::{Array, Parts, Persist, check_shape};
use crate::{Error, Result};

/// Settings of [`fit`] (defaults: scikit-learn's `LinearRegression`, i.e. no penalty, with an intercept).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConfig {
    /// Ridge penalty `α ≥ 0` on the squared norm of the coefficients (not on the intercept); 0 is plain least squares.
    pub alpha: f64,
    /// Fit an intercept (centre the columns and the target); `false` fits a line through the origin.
    pub fit_intercept: bool,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig { alpha: 0.0, fit_intercept: true }
    }
}

/// A fitted linear model `ŷ = x·coef + intercept`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// One coefficient per feature.
    pub coef: Vec<f64>,
    /// The intercept (0 when fitted without one).
    pub intercept: f64,
    /// The numerical rank of the (centred) system solved: the number of features when it was full
    /// rank (Cholesky path), fewer when the minimum-norm path ran.
    pub rank: usize,
}

/// Relative size below which a Cholesky pivot (or an eigenvalue of the normal matrix) counts as zero:
/// a column explained by the others to about 3e-6 of its norm.
const RANK_TOL: f64 = 1e-11;

/// Rows per block of the parallel sums (the blocks and their order depend only on the row count).
pub(crate) fn block_rows(n: usize) -> usize {
    n.div_ceil(64).max(1024)
}

/// Checks a training set: at least one row, `y` as long as the rows, every value finite.
pub(crate) fn check_xy(x: &Matrix, y: &[f32]) -> Result<()> {
    if x.rows() == 0 {
        return Err(Error::MlEmpty("the training matrix has no rows".into()));
    }
    if y.len() != x.rows() {
        return Err(Error::DimensionMismatch { expected: x.rows(), got: y.len() });
    }
    check_finite(x)?;
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::MlTarget(format!("y[{i}] is {}", y[i])));
    }
    Ok(())
}

/// [`Error::MlNonFinite`] at the first NaN or infinity of `x`.
pub(crate) fn check_finite(x: &Matrix) -> Result<()> {
    match x.first_non_finite() {
        Some((row, column)) => Err(Error::MlNonFinite { row, column }),
        None => Ok(()),
    }
}

/// Checks a matrix to predict on: `cols` columns, every value finite.
pub(crate) fn check_predict(x: &Matrix, cols: usize) -> Result<()> {
    if x.cols() != cols {
        return Err(Error::DimensionMismatch { expected: cols, got: x.cols() });
    }
    check_finite(x)
}

/// Column means in f64.
pub(crate) fn column_means(x: &Matrix) -> Vec<f64> {
    let mut sum = vec![0.0f64; x.cols()];
    for i in 0..x.rows() {
        for (s, &v) in sum.iter_mut().zip(x.row(i)) {
            *s += f64::from(v);
        }
    }
    let n = x.rows().max(1) as f64;
    sum.iter().map(|s| s / n).collect()
}

/// `Σ_i w_i z_i z_iᵀ` (q×q, full) and `Σ_i r_i z_i` (q), where `z_i = x_i − shift`, followed by a 1 when
/// `intercept` (so q = cols + 1), summed in f64 over fixed row blocks added in order.
pub(crate) fn weighted_gram(x: &Matrix, shift: &[f64], w: &[f64], r: &[f64], intercept: bool) -> (Vec<f64>, Vec<f64>) {
    let p = x.cols();
    let q = p + usize::from(intercept);
    let n = x.rows();
    let block = block_rows(n);
    let partials: Vec<(Vec<f64>, Vec<f64>)> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut g = vec![0.0f64; q * q];
            let mut v = vec![0.0f64; q];
            let mut z = vec![1.0f64; q];
            for i in b * block..((b + 1) * block).min(n) {
                for ((zj, &xj), &m) in z.iter_mut().zip(x.row(i)).zip(shift) {
                    *zj = f64::from(xj) - m;
                }
                let (wi, ri) = (w[i], r[i]);
                for a in 0..q {
                    let wa = wi * z[a];
                    v[a] += ri * z[a];
                    let row = &mut g[a * q..a * q + a + 1];
                    for (gab, &zb) in row.iter_mut().zip(&z[..=a]) {
                        *gab += wa * zb;
                    }
                }
            }
            (g, v)
        })
        .collect();
    let mut g = vec![0.0f64; q * q];
    let mut v = vec![0.0f64; q];
    for (pg, pv) in partials {
        g.iter_mut().zip(&pg).for_each(|(a, b)| *a += b);
        v.iter_mut().zip(&pv).for_each(|(a, b)| *a += b);
    }
    for a in 0..q {
        for b in 0..a {
            g[b * q + a] = g[a * q + b];
        }
    }
    (g, v)
}

/// In-place Cholesky `A = L Lᵀ` of a symmetric q×q matrix (the lower triangle of `a` becomes L).
/// Fails (with the column) when a pivot is at most `RANK_TOL` times that column's diagonal entry.
pub(crate) fn cholesky(a: &mut [f64], q: usize) -> std::result::Result<(), usize> {
    for j in 0..q {
        let diag = a[j * q + j];
        let mut d = diag;
        for k in 0..j {
            d -= a[j * q + k] * a[j * q + k];
        }
        if !d.is_finite() || d <= RANK_TOL * diag.abs() {
            return Err(j);
        }
        let l = d.sqrt();
        a[j * q + j] = l;
        for i in j + 1..q {
            let mut s = a[i * q + j];
            for k in 0..j {
                s -= a[i * q + k] * a[j * q + k];
            }
            a[i * q + j] = s / l;
        }
    }
    Ok(())
}

/// Solves `L Lᵀ x = b` with the factor of [`cholesky`].
pub(crate) fn cholesky_solve(l: &[f64], q: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..q {
        let mut s = y[i];
        for k in 0..i {
            s -= l[i * q + k] * y[k];
        }
        y[i] = s / l[i * q + i];
    }
    for i in (0..q).rev() {
        let mut s = y[i];
        for k in i + 1..q {
            s -= l[k * q + i] * y[k];
        }
        y[i] = s / l[i * q + i];
    }
    y
}

/// Eigenvalues and eigenvectors (columns of the returned q×q row-major matrix) of a symmetric matrix,
/// by cyclic Jacobi rotations (Golub & Van Loan §8.5.3).
fn symmetric_eigen(mut a: Vec<f64>, q: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; q * q];
    for i in 0..q {
        v[i * q + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..q)
            .flat_map(|i| (0..q).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * q + j].powi(2))
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= f64::EPSILON * f64::EPSILON * total {
            break;
        }
        for p in 0..q {
            for r in p + 1..q {
                let apr = a[p * q + r];
                if apr == 0.0 {
                    continue;
                }
                let theta = (a[r * q + r] - a[p * q + p]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..q {
                    let (akp, akr) = (a[k * q + p], a[k * q + r]);
                    a[k * q + p] = c * akp - s * akr;
                    a[k * q + r] = s * akp + c * akr;
                }
                for k in 0..q {
                    let (apk, ark) = (a[p * q + k], a[r * q + k]);
                    a[p * q + k] = c * apk - s * ark;
                    a[r * q + k] = s * apk + c * ark;
                }
                for k in 0..q {
                    let (vkp, vkr) = (v[k * q + p], v[k * q + r]);
                    v[k * q + p] = c * vkp - s * vkr;
                    v[k * q + r] = s * vkp + c * vkr;
                }
            }
        }
    }
    ((0..q).map(|i| a[i * q + i]).collect(), v)
}

/// The minimum-norm solution of the symmetric positive semi-definite system `A w = b`, eigenvalues
/// below `RANK_TOL × λ_max` treated as zero; returns the solution and the rank.
fn min_norm_solve(a: Vec<f64>, q: usize, b: &[f64]) -> (Vec<f64>, usize) {
    let (lambda, v) = symmetric_eigen(a, q);
    let max = lambda.iter().cloned().fold(0.0f64, f64::max);
    let mut w = vec![0.0f64; q];
    let mut rank = 0;
    for (k, &l) in lambda.iter().enumerate() {
        if !(max > 0.0 && l > RANK_TOL * max) {
            continue;
        }
        rank += 1;
        let proj: f64 = (0..q).map(|i| v[i * q + k] * b[i]).sum::<f64>() / l;
        for i in 0..q {
            w[i] += proj * v[i * q + k];
        }
    }
    (w, rank)
}

/// Fits `y ≈ x·coef + intercept` by (ridge) least squares.
///
/// # Errors
/// [`Error::MlEmpty`] without rows, [`Error::DimensionMismatch`] when `y` is not one value per row,
/// [`Error::MlNonFinite`] for a NaN or infinity in `x` (naming its row and column), [`Error::MlTarget`]
/// for one in `y`, [`Error::InvalidParameter`] for a negative or non-finite `alpha`.
pub fn fit(x: &Matrix, y: &[f32], cfg: &LinearConfig) -> Result<LinearModel> {
    if !(cfg.alpha >= 0.0 && cfg.alpha.is_finite()) {
        return Err(Error::InvalidParameter(format!("linear alpha must be finite and >= 0, got {}", cfg.alpha)));
    }
    check_xy(x, y)?;
    let p = x.cols();
    let (x_mean, y_mean) = if cfg.fit_intercept {
        (column_means(x), y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64)
    } else {
        (vec![0.0; p], 0.0)
    };
    let ones = vec![1.0f64; x.rows()];
    let r: Vec<f64> = y.iter().map(|&v| f64::from(v) - y_mean).collect();
    let (mut a, b) = weighted_gram(x, &x_mean, &ones, &r, false);
    for j in 0..p {
        a[j * p + j] += cfg.alpha;
    }
    let normal = a.clone();
    let (coef, rank) = match cholesky(&mut a, p) {
        Ok(()) => (cholesky_solve(&a, p, &b), p),
        Err(_) => min_norm_solve(normal, p, &b),
    };
    let intercept =
        if cfg.fit_intercept { y_mean - coef.iter().zip(&x_mean).map(|(w, m)| w * m).sum::<f64>() } else { 0.0 };
    Ok(LinearModel { coef, intercept, rank })
}

/// `x·coef + offset` for every row, in f64 (rows in parallel).
///
/// f64 and not the f32 SIMD dot: the cost is reading `x`, and f64 sums make the scores identical on
/// every CPU (the SIMD paths round differently), which a served model's audit trail needs.
pub(crate) fn linear_scores(x: &Matrix, coef: &[f64], offset: f64) -> Vec<f64> {
    let mut out = vec![0.0f64; x.rows()];
    out.par_chunks_mut(1024).enumerate().for_each(|(b, chunk)| {
        for (k, o) in chunk.iter_mut().enumerate() {
            let row = x.row(b * 1024 + k);
            *o = offset + row.iter().zip(coef).map(|(&v, &w)| f64::from(v) * w).sum::<f64>();
        }
    });
    out
}

impl LinearModel {
    /// The number of features the model takes.
    pub fn n_features(&self) -> usize {
        self.coef.len()
    }

    /// Predictions `x·coef + intercept`, one per row (computed in f64, returned as f32).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` has another number of columns than the model was fitted on,
    /// [`Error::MlNonFinite`] for a NaN or infinity in `x`.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f32>> {
        check_predict(x, self.coef.len())?;
        Ok(linear_scores(x, &self.coef, self.intercept).into_iter().map(|v| v as f32).collect())
    }
}

impl Persist for LinearModel {
    const KIND: &'static str = "linear";

    fn to_parts(&self) -> Parts {
        Parts {
            params: serde_json::json!({ "n_features": self.coef.len(), "rank": self.rank }),
            arrays: vec![
                ("coef".into(), Array::F64(self.coef.clone(), vec![self.coef.len()])),
                ("intercept".into(), Array::F64(vec![self.intercept], vec![1])),
            ],
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let n = parts.param_u64("n_features")? as usize;
        let rank = parts.param_u64("rank")? as usize;
        let (coef, shape) = parts.f64("coef")?;
        check_shape("coef", shape, &[n])?;
        Ok(LinearModel { coef: coef.to_vec(), intercept: parts.f64_scalar("intercept")?, rank })
    }
}
