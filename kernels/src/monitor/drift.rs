//! Two-sample drift statistics, each equal to its `scipy` counterpart to 1e-9.
//!
//! References: Karakoulas (2004) and Yurdakul (2018) for the population stability index; Massey
//! (1951) and scipy's `ks_2samp` (exact distribution for small samples, Kolmogorov's asymptotic
//! one otherwise) for the two-sample KS test; Pearson (1900) for chi-squared; Lin (1991) for
//! Jensen–Shannon; Vallender (1974) for the Wasserstein-1 distance between empirical distributions.
//!
//! Every function refuses empty samples and non-finite values with a typed error (drop missing
//! values before calling: how many were missing is a drift signal of its own).

use super::special::{self, CompensatedSum};
use crate::{Error, Result};

/// `ks_2samp`'s `method="auto"` uses the exact distribution up to this many values per sample.
const KS_MAX_EXACT_N: usize = 10_000;

/// Above this many edges [`bin_counts`] binary-searches each value instead of comparing it with
/// every edge.
const LINEAR_SCAN_MAX_EDGES: usize = 64;

fn invalid(message: impl Into<String>) -> Error {
    Error::MonitorInvalid(message.into())
}

/// A sample must be non-empty and finite.
fn check_sample(what: &str, values: &[f64]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::MonitorEmptySample { what: what.to_owned() });
    }
    check_finite(what, values)
}

fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::MonitorNonFinite { what: what.to_owned(), index }),
        None => Ok(()),
    }
}

/// Interior edges must be finite and strictly increasing.
fn check_edges(edges: &[f64]) -> Result<()> {
    check_finite("edges", edges)?;
    if let Some(i) = edges.windows(2).position(|w| w[0] >= w[1]) {
        return Err(invalid(format!(
            "edges must be strictly increasing: edges[{}] = {} is not below edges[{}] = {}",
            i,
            edges[i],
            i + 1,
            edges[i + 1]
        )));
    }
    Ok(())
}

fn check_bins(bins: usize) -> Result<()> {
    if bins == 0 {
        return Err(invalid("bins must be at least 1"));
    }
    Ok(())
}

/// A histogram of counts must be non-empty and hold at least one count.
fn check_counts(what: &str, counts: &[u64]) -> Result<u64> {
    let total: u64 = counts
        .iter()
        .try_fold(0u64, |t, &c| t.checked_add(c))
        .ok_or_else(|| invalid(format!("{what}: the counts' total overflows u64")))?;
    if total == 0 {
        return Err(Error::MonitorEmptySample { what: format!("{what} (no bins, or every count zero)") });
    }
    Ok(total)
}

/// A histogram of weights must be non-empty, finite, non-negative, with a positive finite total.
fn check_weights(what: &str, weights: &[f64]) -> Result<f64> {
    if weights.is_empty() {
        return Err(Error::MonitorEmptySample { what: what.to_owned() });
    }
    check_finite(what, weights)?;
    if let Some(i) = weights.iter().position(|&w| w < 0.0) {
        return Err(invalid(format!("{what}[{i}] = {} is negative", weights[i])));
    }
    let total = special::numpy_sum(weights);
    if total == 0.0 {
        return Err(Error::MonitorEmptySample { what: format!("{what} (every weight zero)") });
    }
    if !total.is_finite() {
        return Err(invalid(format!("{what}: the weights' total overflows")));
    }
    Ok(total)
}

fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
}

/// `numpy.quantile(sorted, q)` with `method="linear"`: virtual index `(n−1)·q`, and numpy's
/// two-sided interpolation (`a + (b−a)·t` below `t = ½`, `b − (b−a)·(1−t)` from ½ on).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let last = (n - 1) as f64;
    let virtual_index = last * q;
    let (previous, next, previous_f) = if virtual_index >= last {
        (n - 1, n - 1, -1.0) // numpy marks the index -1 and takes the last value
    } else if virtual_index < 0.0 {
        (0, 0, 0.0)
    } else {
        let p = virtual_index.floor();
        (p as usize, p as usize + 1, p)
    };
    let gamma = virtual_index - previous_f;
    let (a, b) = (sorted[previous], sorted[next]);
    let diff = b - a;
    if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma }
}

/// Sorted, duplicates removed (`numpy.unique`).
fn unique(mut edges: Vec<f64>) -> Vec<f64> {
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup();
    edges
}

fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    unique((1..bins).map(|i| quantile_sorted(sorted, i as f64 / bins as f64)).collect())
}

/// `numpy.linspace(lo, hi, bins + 1)[1:-1]`: `i · step + lo` with `step = (hi − lo) / bins`
/// (`i / bins · (hi − lo) + lo` when the step underflows to 0), duplicates removed.
fn equal_width_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let div = bins as f64;
    let delta = hi - lo;
    let step = delta / div;
    let edges =
        (1..bins).map(|i| if step == 0.0 { i as f64 / div * delta + lo } else { i as f64 * step + lo }).collect();
    unique(edges)
}

/// `counts[i] += #{v : edges[i−1] <= v < edges[i]}` over `values` (finite, checked by the caller).
fn count_into(values: &[f64], edges: &[f64], counts: &mut [u64]) {
    debug_assert_eq!(counts.len(), edges.len() + 1);
    if edges.is_empty() {
        counts[0] += values.len() as u64;
    } else if edges.len() <= LINEAR_SCAN_MAX_EDGES {
        // A value's bin is the number of edges at or below it. Edges are taken 8 at a time (padded
        // with +inf, which no finite value reaches); per block one pass counts, for each edge, the
        // values at or above it, in a loop the compiler vectorises.
        let mut at_or_above = vec![0u64; edges.len()];
        for (block, out) in edges.chunks(8).zip(at_or_above.chunks_mut(8)) {
            let mut e = [f64::INFINITY; 8];
            e[..block.len()].copy_from_slice(block);
            let mut c = [0u64; 8];
            for &v in values {
                for j in 0..8 {
                    c[j] += u64::from(v >= e[j]);
                }
            }
            out.copy_from_slice(&c[..out.len()]);
        }
        // Edges strictly increase, so "at or above edge i" contains "at or above edge i+1".
        let n = values.len() as u64;
        counts[0] += n - at_or_above[0];
        for i in 1..edges.len() {
            counts[i] += at_or_above[i - 1] - at_or_above[i];
        }
        counts[edges.len()] += at_or_above[edges.len() - 1];
    } else {
        for &v in values {
            counts[edges.partition_point(|&e| e <= v)] += 1;
        }
    }
}

/// Bin counts of an already sorted sample: `#{v < edges[i]}` by binary search per edge.
fn counts_of_sorted(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut below_previous = 0usize;
    for &e in edges {
        let below = sorted.partition_point(|&v| v < e);
        counts.push((below - below_previous) as u64);
        below_previous = below;
    }
    counts.push((sorted.len() - below_previous) as u64);
    counts
}

/// The steps of the two empirical CDFs, walked together over two sorted samples: `visit(t, i, j)`
/// at each distinct value `t`, `i` and `j` being how many values of `a` and of `b` are `<= t`.
fn merge_walk(a: &[f64], b: &[f64], mut visit: impl FnMut(f64, usize, usize)) {
    let (n1, n2) = (a.len(), b.len());
    let (mut i, mut j) = (0, 0);
    while i < n1 || j < n2 {
        let t = if j >= n2 || (i < n1 && a[i] <= b[j]) { a[i] } else { b[j] };
        while i < n1 && a[i] <= t {
            i += 1;
        }
        while j < n2 && b[j] <= t {
            j += 1;
        }
        visit(t, i, j);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `rel_entr(x, y)` of `scipy.special`: `x ln(x/y)`, 0 at `x = 0`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// How [`bin_edges`] cuts a numeric reference sample into bins.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Binning {
    /// `bins` bins at the reference's quantiles (`numpy.quantile`, linear interpolation), duplicate
    /// edges removed (a column with few distinct values gets fewer bins).
    Quantile {
        /// Bins wanted.
        bins: usize,
    },
    /// `bins` bins of equal width between the reference's minimum and maximum.
    EqualWidth {
        /// Bins wanted.
        bins: usize,
    },
    /// Interior edges given by the caller: finite and strictly increasing.
    Edges(Vec<f64>),
}

/// The population stability index's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PsiConfig {
    /// How the reference is binned.
    pub binning: Binning,
    /// A bin's share below `epsilon` (an empty bin) counts as `epsilon` on both sides of the
    /// formula, so that one empty bin does not make the index infinite.
    pub epsilon: f64,
}

impl Default for PsiConfig {
    /// Deciles of the reference, `epsilon` 1e-4.
    fn default() -> Self {
        PsiConfig { binning: Binning::Quantile { bins: 10 }, epsilon: 1e-4 }
    }
}

/// The interior edges of `binning` over `reference`: `k` edges make `k + 1` bins, the outer two
/// open (−∞ and +∞), so current values outside the reference's range still land in a bin.
pub fn bin_edges(reference: &[f64], binning: &Binning) -> Result<Vec<f64>> {
    check_sample("reference", reference)?;
    match binning {
        Binning::Quantile { bins } => {
            check_bins(*bins)?;
            if *bins == 1 {
                return Ok(Vec::new());
            }
            Ok(quantile_edges(&sorted_copy(reference), *bins))
        }
        Binning::EqualWidth { bins } => {
            check_bins(*bins)?;
            let (lo, hi) =
                reference.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            Ok(equal_width_edges(lo, hi, *bins))
        }
        Binning::Edges(edges) => {
            check_edges(edges)?;
            Ok(edges.clone())
        }
    }
}

/// How many of `values` fall in each bin of `edges` (interior edges, as [`bin_edges`] returns):
/// bin `i` holds `edges[i - 1] <= v < edges[i]` (`numpy.digitize` with `right=False`), so the
/// result has `edges.len() + 1` counts.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Result<Vec<u64>> {
    // No values is an all-zero histogram, not an error: counts add up over batches (a streaming
    // day or row group may hold only missing values).
    check_finite("values", values)?;
    check_edges(edges)?;
    let mut counts = vec![0u64; edges.len() + 1];
    count_into(values, edges, &mut counts);
    Ok(counts)
}

/// The population stability index of two histograms over the same bins:
/// `Σ (c_i − r_i) · ln(c_i / r_i)` over the bins' shares `r_i` (reference) and `c_i` (current),
/// each share floored at `epsilon`.
pub fn psi_from_counts(reference: &[u64], current: &[u64], epsilon: f64) -> Result<f64> {
    if !(epsilon > 0.0 && epsilon.is_finite()) {
        return Err(invalid(format!("epsilon must be positive and finite, not {epsilon}")));
    }
    if reference.len() != current.len() {
        return Err(invalid(format!(
            "the histograms have {} (reference) and {} (current) bins",
            reference.len(),
            current.len()
        )));
    }
    let reference_total = check_counts("reference histogram", reference)? as f64;
    let current_total = check_counts("current histogram", current)? as f64;
    // numpy: r = np.maximum(ref / ref.sum(), eps); c = ...; np.sum((c - r) * np.log(c / r))
    let terms: Vec<f64> = reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let r = (r as f64 / reference_total).max(epsilon);
            let c = (c as f64 / current_total).max(epsilon);
            (c - r) * (c / r).ln()
        })
        .collect();
    Ok(special::numpy_sum(&terms))
}

/// The population stability index of `current` against `reference`, binned by `config`.
pub fn psi(reference: &[f64], current: &[f64], config: &PsiConfig) -> Result<f64> {
    check_sample("reference", reference)?;
    check_sample("current", current)?;
    if !(config.epsilon > 0.0 && config.epsilon.is_finite()) {
        return Err(invalid(format!("epsilon must be positive and finite, not {}", config.epsilon)));
    }
    let (edges, reference_counts) = match &config.binning {
        Binning::Quantile { bins } => {
            check_bins(*bins)?;
            // One sort serves the quantiles and the reference's counts.
            let sorted = sorted_copy(reference);
            let edges = if *bins == 1 { Vec::new() } else { quantile_edges(&sorted, *bins) };
            let counts = counts_of_sorted(&sorted, &edges);
            (edges, counts)
        }
        binning => {
            let edges = bin_edges(reference, binning)?;
            let mut counts = vec![0u64; edges.len() + 1];
            count_into(reference, &edges, &mut counts);
            (edges, counts)
        }
    };
    let mut current_counts = vec![0u64; edges.len() + 1];
    count_into(current, &edges, &mut current_counts);
    psi_from_counts(&reference_counts, &current_counts, config.epsilon)
}

/// A test's statistic and its p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestResult {
    /// The test statistic.
    pub statistic: f64,
    /// The probability of a statistic at least this extreme if both samples came from one
    /// distribution.
    pub p_value: f64,
}

/// The two-sample Kolmogorov–Smirnov test, two-sided, as `scipy.stats.ks_2samp(a, b)` computes it
/// (`method="auto"`: the exact distribution when both samples have at most 10,000 values, the
/// asymptotic one otherwise).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<TestResult> {
    check_sample("a", a)?;
    check_sample("b", b)?;
    let (a, b) = (sorted_copy(a), sorted_copy(b));
    let (n1, n2) = (a.len(), b.len());
    let (f1, f2) = (n1 as f64, n2 as f64);
    // scipy: cddiffs = searchsorted(a, all, "right")/n1 − searchsorted(b, all, "right")/n2 at every
    // value; the statistic is the larger of max(cddiffs) and −min(cddiffs) (clipped to [0, 1]).
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    merge_walk(&a, &b, |_, i, j| {
        let diff = i as f64 / f1 - j as f64 / f2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    });
    let min_s = (-min_s).clamp(0.0, 1.0);
    let mut d = if min_s > max_s { min_s } else { max_s };

    let mut p_value = f64::NAN;
    let mut asymptotic = n1.max(n2) > KS_MAX_EXACT_N;
    if !asymptotic {
        // scipy `_attempt_exact_2kssamp`: the statistic becomes h / lcm(n1, n2), h rounded half to
        // even; a p-value outside [0, 1] (rounding) falls back to the asymptotic distribution.
        let g = gcd(n1 as u64, n2 as u64);
        let lcm = (n1 as u64 / g) * n2 as u64;
        let h = (d * lcm as f64).round_ties_even() as u64;
        d = h as f64 / lcm as f64;
        if h == 0 {
            p_value = 1.0;
        } else {
            let p = if n1 == n2 {
                special::ks_prob_outside_square(n1 as u64, h)
            } else {
                special::ks_outer_prob_inside(n1 as u64, n2 as u64, g, h)
            };
            if (0.0..=1.0).contains(&p) {
                p_value = p;
            } else {
                asymptotic = true;
            }
        }
    }
    if asymptotic {
        // kstwo.sf(d, round(n1 n2 / (n1 + n2))), the larger size first, rounded half to even.
        let (m, n) = (f1.max(f2), f1.min(f2));
        let en = m * n / (m + n);
        p_value = special::kstwo_sf(d, en.round_ties_even());
    }
    Ok(TestResult { statistic: d, p_value: if p_value.is_nan() { p_value } else { p_value.clamp(0.0, 1.0) } })
}

/// Pearson's chi-squared test of homogeneity on the 2 × k table of category counts, as
/// `scipy.stats.chi2_contingency([reference, current], correction=False)`. Categories that are
/// empty in both rows are dropped first; fewer than two categories left is an error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChiSquared {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom (categories kept − 1).
    pub dof: usize,
    /// Its p-value.
    pub p_value: f64,
}

/// See [`ChiSquared`].
pub fn chi_squared(reference: &[u64], current: &[u64]) -> Result<ChiSquared> {
    if reference.len() != current.len() {
        return Err(invalid(format!(
            "the tables' rows have {} (reference) and {} (current) categories",
            reference.len(),
            current.len()
        )));
    }
    let reference_total = check_counts("reference counts", reference)?;
    let current_total = check_counts("current counts", current)?;
    let kept: Vec<(u64, u64)> =
        reference.iter().zip(current).map(|(&r, &c)| (r, c)).filter(|&(r, c)| r > 0 || c > 0).collect();
    if kept.len() < 2 {
        return Err(invalid(format!(
            "chi-squared needs at least two categories with counts; {} left after dropping the empty ones",
            kept.len()
        )));
    }
    // scipy: expected = outer(row sums, column sums) / total (the integer product, then one
    // division); terms (observed − expected)² / expected summed over the flattened 2 × k table.
    let total = u128::from(reference_total) + u128::from(current_total);
    let mut terms = Vec::with_capacity(2 * kept.len());
    for (row, row_total) in [(0, reference_total), (1, current_total)] {
        for &(r, c) in &kept {
            let column_total = u128::from(r) + u128::from(c);
            let expected = (u128::from(row_total) * column_total) as f64 / total as f64;
            let observed = if row == 0 { r } else { c } as f64;
            let diff = observed - expected;
            terms.push(diff * diff / expected);
        }
    }
    let statistic = special::numpy_sum(&terms);
    let dof = kept.len() - 1;
    Ok(ChiSquared { statistic, dof, p_value: special::chi2_sf(statistic, dof as f64) })
}

/// The Jensen–Shannon distance (the square root of the divergence) between two histograms over the
/// same bins, base 2 (so in `[0, 1]`), as `scipy.spatial.distance.jensenshannon(p, q, base=2)`;
/// both are normalised to sum to 1 first.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Result<f64> {
    let p_total = check_weights("p", p)?;
    let q_total = check_weights("q", q)?;
    if p.len() != q.len() {
        return Err(invalid(format!("the histograms have {} (p) and {} (q) bins", p.len(), q.len())));
    }
    // scipy: p /= sum(p); q /= sum(q); m = (p + q) / 2; js = sum(rel_entr(p, m)) + sum(rel_entr(q, m));
    // sqrt(js / ln 2 / 2).
    let (mut left, mut right) = (Vec::with_capacity(p.len()), Vec::with_capacity(p.len()));
    for (&pi, &qi) in p.iter().zip(q) {
        let (pi, qi) = (pi / p_total, qi / q_total);
        let m = (pi + qi) / 2.0;
        left.push(rel_entr(pi, m));
        right.push(rel_entr(qi, m));
    }
    let js = (special::numpy_sum(&left) + special::numpy_sum(&right)) / std::f64::consts::LN_2;
    // Rounding can leave a divergence of a hair below 0 where scipy's square root is NaN: 0 here.
    Ok((js / 2.0).max(0.0).sqrt())
}

/// The Wasserstein-1 (earth mover's) distance between the empirical distributions of `a` and `b`,
/// as `scipy.stats.wasserstein_distance(a, b)`.
pub fn wasserstein_1(a: &[f64], b: &[f64]) -> Result<f64> {
    check_sample("a", a)?;
    check_sample("b", b)?;
    let (a, b) = (sorted_copy(a), sorted_copy(b));
    let (f1, f2) = (a.len() as f64, b.len() as f64);
    // scipy: Σ |F_a(t_k) − F_b(t_k)| · (t_{k+1} − t_k) over the sorted pooled values t_k (the
    // same terms; zero-width steps between equal values add nothing); compensated summation.
    let mut sum = CompensatedSum::default();
    let mut previous: Option<(f64, f64)> = None;
    merge_walk(&a, &b, |t, i, j| {
        if let Some((t0, gap)) = previous {
            sum.add(gap * (t - t0));
        }
        previous = Some((t, (i as f64 / f1 - j as f64 / f2).abs()));
    });
    Ok(sum.value())
}
