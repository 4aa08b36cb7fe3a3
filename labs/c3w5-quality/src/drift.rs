//! Drift between a reference sample (what the model was trained on) and a current one (what it
//! sees now): the population stability index and the two-sample Kolmogorov–Smirnov test.
//!
//! - **PSI** (Karakoulas 2004; Yurdakul 2018) bins the reference at its quantiles, counts both
//!   samples in those bins and adds `(c − r) · ln(c / r)` over the bins' shares. Rules of thumb:
//!   below 0.1 stable, 0.1–0.25 a moderate shift, above 0.25 a major one. It is cheap, works on any
//!   column once binned, and its value depends on the binning.
//! - **KS** (Kolmogorov 1933, Smirnov 1939) takes the largest vertical gap `D` between the two
//!   empirical distribution functions, with no binning at all, and a p-value from Kolmogorov's
//!   limiting distribution of `√(n·m/(n+m)) · D`.
//!
//! Both refuse empty samples and non-finite values with [`Error::InvalidInput`]: drop missing
//! values before calling (how many were missing is a drift signal of its own). The production
//! versions are in `kernels::monitor::drift`; the grader compares with them and with numpy/scipy.

use crate::{Error, Result};

/// Refuses an empty sample or one holding NaN or ±∞.
pub fn check_sample(name: &str, values: &[f64]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::InvalidInput(format!("{name} is empty")));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(format!("{name}[{i}] = {} is not finite", values[i])));
    }
    Ok(())
}

/// numpy's `_lerp(a, b, t)`: `a + (b − a)·t` for `t < 0.5`, `b − (b − a)·(1 − t)` from 0.5 on
/// (the form numpy uses so that `t = 1` gives `b` exactly). Given.
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 { b - d * (1.0 - t) } else { a + d * t }
}

// ANCHOR: quantile_edges
/// Task c3w5.psi (12 points, with [`bin_counts`] and [`psi`]): the interior bin edges of
/// `bins` quantile bins of `reference`.
///
/// Sort a copy of `reference`; for `i = 1, …, bins − 1` take the quantile at `p = i as f64 /
/// bins as f64` exactly as `numpy.quantile(x, p)` (method `"linear"`) does: the virtual index
/// `h = (n − 1) · p`, `lo = floor(h)`, `hi = min(lo + 1, n − 1)`, and [`lerp`]`(x[lo], x[hi],
/// h − lo)`. Then drop every edge equal to the one before it (a column with few distinct values
/// gets fewer bins). `k` edges make `k + 1` bins, the outer two open to −∞ and +∞.
///
/// Errors: `bins == 0` is [`Error::InvalidConfig`]; an empty or non-finite reference
/// [`Error::InvalidInput`] (see [`check_sample`]).
pub fn quantile_edges(reference: &[f64], bins: usize) -> Result<Vec<f64>> {
    todo!("c3w5.psi")
}
// ANCHOR_END: quantile_edges

// ANCHOR: bin_counts
/// Task c3w5.psi (with [`quantile_edges`] and [`psi`]): how many of `values` fall in each bin of
/// `edges` (interior edges, strictly increasing). Bin `i` holds `edges[i − 1] <= v < edges[i]`,
/// as `numpy.digitize(v, edges, right=False)` numbers them, so the result has `edges.len() + 1`
/// counts and a value equal to an edge goes to the bin above it.
///
/// Errors ([`Error::InvalidInput`]): empty or non-finite `values`; edges that are not finite or
/// not strictly increasing.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Result<Vec<u64>> {
    todo!("c3w5.psi")
}
// ANCHOR_END: bin_counts

// ANCHOR: psi
/// Task c3w5.psi (with [`quantile_edges`] and [`bin_counts`]): the population stability index
/// of `current` against `reference` over `bins` quantile bins of the reference.
///
/// Edges from [`quantile_edges`]`(reference, bins)`, counts of both samples by [`bin_counts`],
/// then [`psi_from_counts`] (given) with `epsilon`.
pub fn psi(reference: &[f64], current: &[f64], bins: usize, epsilon: f64) -> Result<f64> {
    todo!("c3w5.psi")
}
// ANCHOR_END: psi

/// The PSI of two histograms over the same bins: `Σ (c_i − r_i) · ln(c_i / r_i)`, in bin order,
/// over the shares `r_i = reference[i] / Σ reference` and `c_i = current[i] / Σ current`, each
/// share floored at `epsilon` (an empty bin counts as `epsilon` so that the index stays finite).
/// Given.
///
/// Errors: `epsilon` not in `(0, 1)` is [`Error::InvalidConfig`]; histograms of different lengths,
/// empty, or with a total of 0 are [`Error::InvalidInput`].
pub fn psi_from_counts(reference: &[u64], current: &[u64], epsilon: f64) -> Result<f64> {
    if !(epsilon > 0.0 && epsilon < 1.0) {
        return Err(Error::InvalidConfig(format!("epsilon must lie in (0, 1), got {epsilon}")));
    }
    if reference.len() != current.len() || reference.is_empty() {
        return Err(Error::InvalidInput(format!(
            "histograms of {} and {} bins: they must have the same, non-zero number",
            reference.len(),
            current.len()
        )));
    }
    let (rt, ct) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    if rt == 0.0 || ct == 0.0 {
        return Err(Error::InvalidInput("a histogram with no values".into()));
    }
    let mut sum = 0.0;
    for (&r, &c) in reference.iter().zip(current) {
        let r = (r as f64 / rt).max(epsilon);
        let c = (c as f64 / ct).max(epsilon);
        sum += (c - r) * (c / r).ln();
    }
    Ok(sum)
}

/// A two-sample test's statistic and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KsResult {
    /// `D`, the largest gap between the two empirical distribution functions, in `[0, 1]`.
    pub statistic: f64,
    /// The asymptotic two-sided p-value, [`kolmogorov_sf`]`(√(n·m/(n+m)) · D)`.
    pub p_value: f64,
}

// ANCHOR: ks_statistic
/// Task c3w5.ks (12 points, with [`kolmogorov_sf`] and [`ks_2samp_asymp`]): the two-sample
/// Kolmogorov–Smirnov statistic `D = max_x |F_a(x) − F_b(x)|`.
///
/// `F_a(x)` is the share of `a` at most `x`. The maximum is reached at one of the samples' values,
/// so sort both and walk them together like a merge: at each distinct value `x` (in increasing
/// order), first consume every element equal to `x` from both sides, then compute
/// `(i as f64 / n as f64 - j as f64 / m as f64).abs()` with `i`, `j` the counts consumed so far.
/// Computed this way, `D` equals scipy's `ks_2samp(a, b).statistic` bit for bit.
///
/// Errors: an empty or non-finite sample is [`Error::InvalidInput`].
pub fn ks_statistic(a: &[f64], b: &[f64]) -> Result<f64> {
    todo!("c3w5.ks")
}
// ANCHOR_END: ks_statistic

// ANCHOR: kolmogorov_sf
/// Task c3w5.ks (with [`ks_statistic`] and [`ks_2samp_asymp`]): the survival function of
/// Kolmogorov's distribution, `Q(λ) = P(K > λ)`, to a relative error below 1e-12 (scipy's
/// `scipy.special.kolmogorov`, `scipy.stats.kstwobign.sf`).
///
/// Two series, each fast where the other is slow:
/// - for `λ > 0.82`: `Q(λ) = 2 Σ_{k≥1} (−1)^(k−1) e^(−2k²λ²)`;
/// - for `0 < λ <= 0.82`: `Q(λ) = 1 − (√(2π)/λ) Σ_{k≥1} e^(−(2k−1)²π²/(8λ²))`.
///
/// Add terms until one is below `1e-17` times the sum so far (at most 100). `Q(λ) = 1` for
/// `λ <= 0`; NaN gives NaN.
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    todo!("c3w5.ks")
}
// ANCHOR_END: kolmogorov_sf

// ANCHOR: ks_2samp
/// Task c3w5.ks (with [`ks_statistic`] and [`kolmogorov_sf`]): the two-sided two-sample KS test
/// with Kolmogorov's asymptotic p-value.
///
/// `statistic` is [`ks_statistic`]; with `n ≥ m` the two sizes as `f64` (the larger first),
/// `en = n * m / (n + m)` and `p_value = kolmogorov_sf(en.sqrt() * statistic)`.
///
/// scipy's `ks_2samp(a, b, method="asymp")` returns the same statistic, but since scipy 1.5 its
/// p-value is the finite-sample distribution `kstwo.sf(D, round(en))`, which approaches this
/// limit as `en` grows; the grader's fixtures compare with `scipy.special.kolmogorov`.
pub fn ks_2samp_asymp(a: &[f64], b: &[f64]) -> Result<KsResult> {
    todo!("c3w5.ks")
}
// ANCHOR_END: ks_2samp
