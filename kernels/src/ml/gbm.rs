//! Histogram gradient-boosted decision trees in the LightGBM style: binary log-loss and L2 regression.
//!
//! References: Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS
//! 2017 (histograms of binned features, histogram subtraction, leaf-wise growth); Friedman, "Greedy
//! Function Approximation: A Gradient Boosting Machine", Annals of Statistics 29 (2001); Chen &
//! Guestrin, "XGBoost", KDD 2016 (the second-order gain and leaf formulas).
//!
//! How a model is fitted:
//! - **Binning, once.** Each feature's present values are cut into at most `max_bin` bins: one bin
//!   per distinct value when there are few, else quantile bins (each holding about the same number of
//!   rows, a heavy value getting a bin of its own). Bin boundaries are midpoints between consecutive
//!   distinct values, so "bin ≤ t" is exactly "x ≤ boundary_t" and the trees store real thresholds.
//!   Bin 0 holds the missing values (NaN).
//! - **Gradients.** Binary: `p = σ(raw)`, `g = p − y`, `h = p(1 − p)`, starting from the log-odds of
//!   the base rate. L2: `g = raw − y`, `h = 1`, starting from the mean.
//! - **Leaf-wise growth.** Per leaf, a histogram of `(Σg, Σh, count)` per bin of every feature, built
//!   row by row from a row-major copy of the bins (each row's gradient pair and bins read once), in
//!   parallel over fixed chunks of 4096 rows for large leaves (summed in chunk order). After a split only the smaller child's histogram is built;
//!   the larger child's is the parent's minus it. The leaf with the largest gain
//!   `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)` is split next, until `num_leaves` leaves, `max_depth`,
//!   or no split beats `min_gain_to_split` with `min_data_in_leaf` rows and `min_sum_hessian_in_leaf`
//!   on both sides. Leaves output `−G/(H+λ)·learning_rate`. Histograms are recycled between leaves and
//!   rounds; without bagging the scores are updated leaf by leaf from the partitioned row order (no
//!   tree walk per row).
//! - **Missing values.** Every threshold is tried with the missing rows on the left and on the right,
//!   and the split "present left, missing right"; the better is stored as the node's `default_left`.
//! - **Early stopping** on a validation set: the loss (log-loss or mean squared error) after each
//!   round; training stops after `early_stopping_rounds` rounds without improvement and keeps the
//!   best round's trees.
//!
//! Sums are in f64 over rows in a fixed order, so the model does not depend on the thread count.

use rayon::prelude::*;

use super::Matrix;
use super::io::{Parts, Persist};
use super::tree::{self, Criterion, DecisionTree, Node, SplitMix64};
use crate::{Error, Result};

/// The loss boosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Binary log-loss on labels 0/1; the raw score is the log-odds.
    Binary,
    /// Squared error (L2 regression).
    Regression,
}

impl Objective {
    fn name(self) -> &'static str {
        match self {
            Objective::Binary => "binary",
            Objective::Regression => "regression",
        }
    }
}

/// Settings of [`fit`] (defaults: LightGBM's, with `bagging_fraction < 1` meaning bagging every round).
#[derive(Debug, Clone, PartialEq)]
pub struct GbmConfig {
    /// The loss.
    pub objective: Objective,
    /// Boosting rounds (trees), at least 1.
    pub num_iterations: usize,
    /// Shrinkage applied to every leaf, in `(0, ∞)`.
    pub learning_rate: f64,
    /// Maximum leaves per tree (at least 2).
    pub num_leaves: usize,
    /// Maximum depth of a tree (`None`: limited by `num_leaves` only).
    pub max_depth: Option<usize>,
    /// Minimum rows in a leaf.
    pub min_data_in_leaf: usize,
    /// Minimum sum of hessians in a leaf.
    pub min_sum_hessian_in_leaf: f64,
    /// L2 penalty `λ` on leaf values.
    pub lambda_l2: f64,
    /// Minimum gain to split.
    pub min_gain_to_split: f64,
    /// Maximum bins per feature, `2..=255` (bin 0 is reserved for missing values).
    pub max_bin: usize,
    /// Fraction of features each tree may use, `(0, 1]`.
    pub feature_fraction: f64,
    /// Fraction of rows each tree is grown on, `(0, 1]` (drawn anew every round when below 1).
    pub bagging_fraction: f64,
    /// Stop after this many rounds without improvement of the validation loss (needs a validation set).
    pub early_stopping_rounds: Option<usize>,
    /// Seed of the feature and row subsets.
    pub seed: u64,
}

impl Default for GbmConfig {
    fn default() -> Self {
        GbmConfig {
            objective: Objective::Binary,
            num_iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: None,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            max_bin: 255,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            early_stopping_rounds: None,
            seed: 0,
        }
    }
}

/// A fitted gradient-boosted model: `raw(x) = init_score + Σ_t tree_t(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gbm {
    pub(crate) objective: Objective,
    pub(crate) init_score: f64,
    pub(crate) trees: Vec<DecisionTree>,
    pub(crate) n_features: usize,
    pub(crate) best_iteration: Option<usize>,
    pub(crate) valid_loss: Vec<f64>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidParameter(msg)
}

fn check_config(cfg: &GbmConfig) -> Result<()> {
    if cfg.num_iterations == 0 {
        return Err(invalid("gbm num_iterations must be >= 1".into()));
    }
    if cfg.num_leaves < 2 {
        return Err(invalid(format!("gbm num_leaves must be >= 2, got {}", cfg.num_leaves)));
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return Err(invalid(format!("gbm learning_rate must be finite and > 0, got {}", cfg.learning_rate)));
    }
    if cfg.max_depth == Some(0) {
        return Err(invalid("gbm max_depth must be >= 1 (or None)".into()));
    }
    if !(2..=255).contains(&cfg.max_bin) {
        return Err(invalid(format!("gbm max_bin must be in 2..=255, got {}", cfg.max_bin)));
    }
    for (name, v) in [
        ("lambda_l2", cfg.lambda_l2),
        ("min_gain_to_split", cfg.min_gain_to_split),
        ("min_sum_hessian_in_leaf", cfg.min_sum_hessian_in_leaf),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(invalid(format!("gbm {name} must be finite and >= 0, got {v}")));
        }
    }
    for (name, v) in [("feature_fraction", cfg.feature_fraction), ("bagging_fraction", cfg.bagging_fraction)] {
        if !(v > 0.0 && v <= 1.0) {
            return Err(invalid(format!("gbm {name} must be in (0, 1], got {v}")));
        }
    }
    if cfg.early_stopping_rounds == Some(0) {
        return Err(invalid("gbm early_stopping_rounds must be >= 1 (or None)".into()));
    }
    Ok(())
}

fn check_target(y: &[f32], objective: Objective, what: &str) -> Result<()> {
    if objective == Objective::Binary
        && let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0)
    {
        return Err(Error::MlTarget(format!("{what}[{i}] is {}; the binary objective takes labels 0 and 1", y[i])));
    }
    Ok(())
}

/// Bin boundaries of one feature: `upper[b − 1]` bounds bin `b` (1-based), the last is +∞.
fn bin_bounds(col: &[f32], max_bin: usize) -> Vec<f32> {
    let mut v: Vec<f32> = col.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return vec![f32::INFINITY];
    }
    v.sort_unstable_by(f32::total_cmp);
    let mut distinct: Vec<(f32, usize)> = Vec::new();
    for x in v.iter().copied() {
        match distinct.last_mut() {
            Some((d, c)) if *d == x => *c += 1,
            _ => distinct.push((x, 1)),
        }
    }
    let mut upper = Vec::with_capacity(max_bin);
    if distinct.len() <= max_bin {
        upper.extend(distinct.windows(2).map(|w| tree::midpoint(w[0].0, w[1].0)));
    } else {
        let n = v.len();
        let mut target = n as f64 / max_bin as f64;
        let (mut current, mut seen) = (0usize, 0usize);
        for i in 0..distinct.len() - 1 {
            current += distinct[i].1;
            seen += distinct[i].1;
            if current as f64 >= target {
                upper.push(tree::midpoint(distinct[i].0, distinct[i + 1].0));
                current = 0;
                let bins_left = max_bin - upper.len();
                if bins_left <= 1 {
                    break;
                }
                target = (n - seen) as f64 / bins_left as f64;
            }
        }
    }
    upper.push(f32::INFINITY);
    upper
}

/// The bin of `x`: 0 for NaN, else the first `b` with `x <= upper[b − 1]`.
#[inline]
fn bin_of(upper: &[f32], x: f32) -> u8 {
    if x.is_nan() { 0 } else { (1 + upper.partition_point(|&u| u < x)) as u8 }
}

/// One histogram bin: sums of gradients and hessians, and the row count.
#[derive(Debug, Clone, Copy, Default)]
struct HBin {
    g: f64,
    h: f64,
    n: u32,
}

/// A binned training set (shared by the boosting rounds here and by the histogram trees of
/// [`super::hist`]): feature `f` of row `i` is `bins[f * n + i]`, 0 when missing, else `b` with
/// `upper[f][b − 2] < x ≤ upper[f][b − 1]`.
pub(crate) struct Binned {
    pub(crate) n: usize,
    pub(crate) d: usize,
    /// Column-major bins: `bins[f * n + i]`.
    pub(crate) bins: Vec<u8>,
    /// Per feature, the upper boundary of each present bin (the last is +∞).
    pub(crate) upper: Vec<Vec<f32>>,
    /// Histogram slots per feature (the largest bin count + 1).
    pub(crate) stride: usize,
}

impl Binned {
    /// Bins every feature of `x` into at most `max_bin` present bins (`2..=255`) plus the missing bin.
    pub(crate) fn new(x: &Matrix, max_bin: usize) -> Binned {
        let (n, d) = (x.rows(), x.cols());
        let cols = tree::Columns::new(x);
        let per: Vec<(Vec<f32>, Vec<u8>)> = (0..d)
            .into_par_iter()
            .map(|f| {
                let col = cols.col(f);
                let upper = bin_bounds(col, max_bin);
                let bins = col.iter().map(|&v| bin_of(&upper, v)).collect();
                (upper, bins)
            })
            .collect();
        let stride = per.iter().map(|(u, _)| u.len() + 1).max().unwrap_or(2);
        let mut bins = Vec::with_capacity(n * d);
        let mut upper = Vec::with_capacity(d);
        for (u, b) in per {
            bins.extend_from_slice(&b);
            upper.push(u);
        }
        Binned { n, d, bins, upper, stride }
    }

    /// The bins row by row (`out[i * d + f]`), for histograms that read each row once.
    fn row_major(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.n * self.d];
        for f in 0..self.d {
            for (i, &b) in self.bins[f * self.n..(f + 1) * self.n].iter().enumerate() {
                out[i * self.d + f] = b;
            }
        }
        out
    }
}

/// Splits `rows` stably into those where `left` holds, then the others; returns how many went left.
/// Branch-free: every row is written to both sides' next slot and only the matching cursor advances
/// (a split's rows are close to random, so a branch per row would mispredict half the time).
pub(crate) fn partition(rows: &mut [u32], scratch: &mut Vec<u32>, left: impl Fn(u32) -> bool) -> usize {
    scratch.clear();
    scratch.resize(rows.len(), 0);
    let (mut w, mut s) = (0usize, 0usize);
    for i in 0..rows.len() {
        let r = rows[i];
        let l = left(r);
        rows[w] = r;
        scratch[s] = r;
        w += usize::from(l);
        s += usize::from(!l);
    }
    rows[w..].copy_from_slice(&scratch[..s]);
    w
}

/// Rows per task of a parallel histogram: the chunks (and so the order of the f64 sums) depend on
/// the rows only, never on the number of threads.
const HIST_CHUNK: usize = 4_096;

/// Adds the rows' gradients into `hist` (`d × stride`, all features), reading each row's `d` bins once.
fn hist_rows(row_bins: &[u8], d: usize, stride: usize, rows: &[u32], gh: &[[f64; 2]], hist: &mut [HBin]) {
    for &r in rows {
        let r = r as usize;
        let b = &row_bins[r * d..(r + 1) * d];
        let [g, h] = gh[r];
        for (f, &bin) in b.iter().enumerate() {
            let e = &mut hist[f * stride + bin as usize];
            e.g += g;
            e.h += h;
            e.n += 1;
        }
    }
}

/// A candidate split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Cand {
    feature: usize,
    /// Present values in bins `1..=bin` go left.
    bin: u8,
    default_left: bool,
    gain: f64,
}

/// A leaf while a tree grows: its rows `order[start..end]`, sums and histogram.
struct GrowLeaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    g: f64,
    h: f64,
    hist: Vec<HBin>,
    best: Option<Cand>,
}

struct Grower<'a> {
    data: &'a Binned,
    row_bins: &'a [u8],
    cfg: &'a GbmConfig,
    gh: &'a [[f64; 2]],
    use_feature: &'a [bool],
}

/// Reused buffers of the tree builder: histograms and the partition scratch.
#[derive(Default)]
struct Buffers {
    free: Vec<Vec<HBin>>,
    scratch: Vec<u32>,
}

impl Buffers {
    fn take(&mut self, slots: usize) -> Vec<HBin> {
        match self.free.pop() {
            Some(mut h) => {
                h.iter_mut().for_each(|b| *b = HBin::default());
                h
            }
            None => vec![HBin::default(); slots],
        }
    }
}

impl Grower<'_> {
    /// The histogram of `rows` (every feature), in parallel over fixed chunks of rows when large.
    fn histogram(&self, rows: &[u32], buffers: &mut Buffers) -> Vec<HBin> {
        let data = self.data;
        let slots = data.d * data.stride;
        let mut hist = buffers.take(slots);
        if rows.len() < 2 * HIST_CHUNK {
            hist_rows(self.row_bins, data.d, data.stride, rows, self.gh, &mut hist);
            return hist;
        }
        let parts: Vec<Vec<HBin>> = rows
            .par_chunks(HIST_CHUNK)
            .map(|chunk| {
                let mut h = vec![HBin::default(); slots];
                hist_rows(self.row_bins, data.d, data.stride, chunk, self.gh, &mut h);
                h
            })
            .collect();
        for p in &parts {
            for (a, b) in hist.iter_mut().zip(p) {
                a.g += b.g;
                a.h += b.h;
                a.n += b.n;
            }
        }
        hist
    }

    fn leaf_value(&self, g: f64, h: f64) -> f32 {
        let denom = h + self.cfg.lambda_l2;
        if denom > 0.0 { (-g / denom * self.cfg.learning_rate) as f32 } else { 0.0 }
    }

    fn best_split(&self, leaf: &GrowLeaf) -> Option<Cand> {
        let cfg = self.cfg;
        let n = (leaf.end - leaf.start) as u32;
        if cfg.max_depth.is_some_and(|m| leaf.depth >= m) || (n as usize) < 2 * cfg.min_data_in_leaf.max(1) {
            return None;
        }
        let lambda = cfg.lambda_l2;
        let min_data = cfg.min_data_in_leaf.max(1) as u32;
        // ANCHOR: gain
        let parent = leaf.g * leaf.g / (leaf.h + lambda);
        let mut best: Option<Cand> = None;
        let mut consider = |f: usize, bin: usize, default_left: bool, gl: f64, hl: f64, nl: u32| {
            let (gr, hr, nr) = (leaf.g - gl, leaf.h - hl, n - nl);
            if nl < min_data || nr < min_data || hl < cfg.min_sum_hessian_in_leaf || hr < cfg.min_sum_hessian_in_leaf {
                return;
            }
            let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
            if gain > cfg.min_gain_to_split && gain > 0.0 && best.is_none_or(|b| gain > b.gain) {
                best = Some(Cand { feature: f, bin: bin as u8, default_left, gain });
            }
        };
        // ANCHOR_END: gain
        for f in 0..self.data.d {
            if !self.use_feature[f] {
                continue;
            }
            let nb = self.data.upper[f].len();
            if nb < 2 && leaf.hist[f * self.data.stride].n == 0 {
                continue;
            }
            let s = &leaf.hist[f * self.data.stride..f * self.data.stride + nb + 1];
            let m = s[0];
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
            for (t, b) in s.iter().enumerate().skip(1) {
                gl += b.g;
                hl += b.h;
                nl += b.n;
                if t == nb {
                    if m.n > 0 {
                        consider(f, t, false, gl, hl, nl);
                    }
                    break;
                }
                consider(f, t, false, gl, hl, nl);
                if m.n > 0 {
                    consider(f, t, true, gl + m.g, hl + m.h, nl + m.n);
                }
            }
        }
        best
    }

    /// Grows one tree on `order` (the round's rows, ascending). Returns the tree, the bin of each
    /// internal node and, per leaf, its node and its rows' range in `order`.
    fn grow(&self, order: &mut [u32], buffers: &mut Buffers) -> (DecisionTree, Vec<u8>, Vec<(usize, usize, usize)>) {
        let data = self.data;
        let mut nodes: Vec<Node> = Vec::new();
        let mut node_bins: Vec<u8> = Vec::new();
        let mut values: Vec<f32> = Vec::new();
        let new_node = |nodes: &mut Vec<Node>, node_bins: &mut Vec<u8>, values: &mut Vec<f32>, n: usize, v: f32| {
            nodes.push(Node {
                feature: 0,
                threshold: 0.0,
                left: 0,
                right: 0,
                default_left: true,
                impurity: 0.0,
                n_samples: n as f64,
            });
            node_bins.push(0);
            values.push(v);
            nodes.len() - 1
        };
        let hist = self.histogram(order, buffers);
        // The root's sums from its histogram (feature 0's bins hold every row once).
        let (g0, h0) = hist[..data.stride].iter().fold((0.0, 0.0), |(a, b), e| (a + e.g, b + e.h));
        let root = new_node(&mut nodes, &mut node_bins, &mut values, order.len(), self.leaf_value(g0, h0));
        let mut leaves =
            vec![GrowLeaf { node: root, start: 0, end: order.len(), depth: 0, g: g0, h: h0, hist, best: None }];
        leaves[0].best = self.best_split(&leaves[0]);
        while leaves.len() < self.cfg.num_leaves {
            let mut pick: Option<usize> = None;
            for (i, l) in leaves.iter().enumerate() {
                if let Some(c) = l.best
                    && pick.is_none_or(|p| c.gain > leaves[p].best.map_or(f64::NEG_INFINITY, |b| b.gain))
                {
                    pick = Some(i);
                }
            }
            let Some(i) = pick else { break };
            let mut parent = leaves.swap_remove(i);
            let Some(c) = parent.best else { break };
            // Partition the parent's rows (stable: each side stays ascending).
            let col = &data.bins[c.feature * data.n..(c.feature + 1) * data.n];
            let goes_left = |b: u8| if b == 0 { c.default_left } else { b <= c.bin };
            let w =
                partition(&mut order[parent.start..parent.end], &mut buffers.scratch, |r| goes_left(col[r as usize]))
                    + parent.start;
            let (nl, nr) = (w - parent.start, parent.end - w);
            // The left child's sums from the split feature's histogram.
            let fh = &parent.hist[c.feature * data.stride..(c.feature + 1) * data.stride];
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, e) in fh.iter().enumerate() {
                if if b == 0 { c.default_left } else { b <= c.bin as usize } {
                    gl += e.g;
                    hl += e.h;
                }
            }
            let (gr, hr) = (parent.g - gl, parent.h - hl);
            let left_id = new_node(&mut nodes, &mut node_bins, &mut values, nl, self.leaf_value(gl, hl));
            let right_id = new_node(&mut nodes, &mut node_bins, &mut values, nr, self.leaf_value(gr, hr));
            let had_missing = parent.hist[c.feature * data.stride].n > 0;
            let node = &mut nodes[parent.node];
            node.feature = c.feature as u32;
            node.threshold = data.upper[c.feature][c.bin as usize - 1];
            node.left = left_id as u32;
            node.right = right_id as u32;
            node.default_left = if had_missing { c.default_left } else { nl >= nr };
            node_bins[parent.node] = c.bin;
            // ANCHOR: subtraction
            // The smaller child's histogram is built; the larger one's is the parent's minus it.
            let left_small = nl <= nr;
            let small_rows = if left_small { &order[parent.start..w] } else { &order[w..parent.end] };
            let small = self.histogram(small_rows, buffers);
            let mut large = std::mem::take(&mut parent.hist);
            for (a, b) in large.iter_mut().zip(&small) {
                a.g -= b.g;
                a.h -= b.h;
                a.n -= b.n;
            }
            let (lh, rh) = if left_small { (small, large) } else { (large, small) };
            // ANCHOR_END: subtraction
            let depth = parent.depth + 1;
            let mut l =
                GrowLeaf { node: left_id, start: parent.start, end: w, depth, g: gl, h: hl, hist: lh, best: None };
            let mut r =
                GrowLeaf { node: right_id, start: w, end: parent.end, depth, g: gr, h: hr, hist: rh, best: None };
            if parent.end - parent.start >= 2 * HIST_CHUNK {
                let (bl, br) = rayon::join(|| self.best_split(&l), || self.best_split(&r));
                (l.best, r.best) = (bl, br);
            } else {
                l.best = self.best_split(&l);
                r.best = self.best_split(&r);
            }
            // Keep leaves in creation order for deterministic tie-breaking.
            leaves.push(l);
            leaves.push(r);
            leaves.sort_by_key(|l| l.node);
        }
        let ranges = leaves
            .into_iter()
            .map(|l| {
                buffers.free.push(l.hist);
                (l.node, l.start, l.end)
            })
            .collect();
        let tree = DecisionTree { n_features: data.d, n_classes: 0, criterion: Criterion::Mse, nodes, values };
        (tree, node_bins, ranges)
    }
}

/// The leaf value of training row `r` (binned walk).
fn binned_value(tree: &DecisionTree, node_bins: &[u8], data: &Binned, r: usize) -> f32 {
    let mut i = 0;
    loop {
        let n = &tree.nodes[i];
        if n.is_leaf() {
            return tree.values[i];
        }
        let b = data.bins[n.feature as usize * data.n + r];
        let left = if b == 0 { n.default_left } else { b <= node_bins[i] };
        i = if left { n.left } else { n.right } as usize;
    }
}

fn sigmoid(raw: f64) -> f64 {
    1.0 / (1.0 + (-raw).exp())
}

fn loss(objective: Objective, y: &[f32], raw: &[f64]) -> f64 {
    let s: f64 = match objective {
        Objective::Binary => y
            .iter()
            .zip(raw)
            .map(|(&t, &r)| {
                let p = sigmoid(r).clamp(1e-15, 1.0 - 1e-15);
                if t == 1.0 { -p.ln() } else { -(1.0 - p).ln() }
            })
            .sum(),
        Objective::Regression => y.iter().zip(raw).map(|(&t, &r)| (r - t as f64).powi(2)).sum(),
    };
    s / y.len() as f64
}

/// `k` distinct indices of `0..n` drawn with `rng`, ascending.
fn sample(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<u32> {
    let mut all: Vec<u32> = (0..n as u32).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        all.swap(i, j);
    }
    all.truncate(k);
    all.sort_unstable();
    all
}

/// Fits a gradient-boosted model to `x` (NaN = missing) and `y` (0/1 labels for
/// [`Objective::Binary`], values for [`Objective::Regression`]), optionally watching the loss on
/// `valid` for early stopping.
///
/// # Errors
/// [`Error::MlEmpty`] without rows; [`Error::DimensionMismatch`] when `y` (or the validation target)
/// is not one value per row, or the validation matrix has other columns; [`Error::MlNonFinite`] for an
/// infinity in a matrix; [`Error::MlTarget`] for a non-finite target, a binary label other than 0/1,
/// or a binary target with one class only; [`Error::InvalidParameter`] for a bad setting (e.g.
/// `num_leaves < 2`) or early stopping without a validation set.
pub fn fit(x: &Matrix, y: &[f32], valid: Option<(&Matrix, &[f32])>, cfg: &GbmConfig) -> Result<Gbm> {
    check_config(cfg)?;
    tree::check_training(x, y, false)?;
    check_target(y, cfg.objective, "y")?;
    if let Some((vx, vy)) = valid {
        if vx.cols() != x.cols() {
            return Err(Error::DimensionMismatch { expected: x.cols(), got: vx.cols() });
        }
        if vx.rows() == 0 {
            return Err(Error::MlEmpty("the validation matrix has no rows".into()));
        }
        tree::check_training(vx, vy, false)?;
        check_target(vy, cfg.objective, "valid y")?;
    } else if cfg.early_stopping_rounds.is_some() {
        return Err(invalid("gbm early_stopping_rounds needs a validation set".into()));
    }
    let n = x.rows();
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let init_score = match cfg.objective {
        Objective::Binary => {
            if mean <= 0.0 || mean >= 1.0 {
                return Err(Error::MlTarget("the binary objective needs both labels 0 and 1 in y".into()));
            }
            (mean / (1.0 - mean)).ln()
        }
        Objective::Regression => mean,
    };
    let data = Binned::new(x, cfg.max_bin);
    let row_bins = data.row_major();
    let mut buffers = Buffers::default();
    let mut raw = vec![init_score; n];
    let mut gh = vec![[0.0f64; 2]; n];
    let mut valid_raw = valid.map(|(vx, _)| vec![init_score; vx.rows()]);
    let mut valid_loss = Vec::new();
    let (mut best_loss, mut best_round) = (f64::INFINITY, 0usize);
    let mut trees = Vec::with_capacity(cfg.num_iterations);
    let mut rng = SplitMix64::new(cfg.seed);
    let d = x.cols();
    let n_feat = ((cfg.feature_fraction * d as f64).round() as usize).clamp(1, d);
    let n_rows = ((cfg.bagging_fraction * n as f64).round() as usize).clamp(1, n);
    for round in 0..cfg.num_iterations {
        gh.par_chunks_mut(4096).zip(raw.par_chunks(4096)).zip(y.par_chunks(4096)).for_each(|((gh, raw), y)| {
            for ((e, &r), &t) in gh.iter_mut().zip(raw).zip(y) {
                *e = match cfg.objective {
                    Objective::Binary => {
                        let p = sigmoid(r);
                        [p - t as f64, p * (1.0 - p)]
                    }
                    Objective::Regression => [r - t as f64, 1.0],
                };
            }
        });
        let use_feature: Vec<bool> = if n_feat < d {
            let mut u = vec![false; d];
            for f in sample(&mut rng, d, n_feat) {
                u[f as usize] = true;
            }
            u
        } else {
            vec![true; d]
        };
        let mut order = if n_rows < n { sample(&mut rng, n, n_rows) } else { (0..n as u32).collect() };
        let grower = Grower { data: &data, row_bins: &row_bins, cfg, gh: &gh, use_feature: &use_feature };
        let (t, node_bins, ranges) = grower.grow(&mut order, &mut buffers);
        if order.len() == n {
            // Every row is in exactly one leaf's range of `order`.
            for &(node, start, end) in &ranges {
                let v = t.values[node] as f64;
                for &r in &order[start..end] {
                    raw[r as usize] += v;
                }
            }
        } else {
            raw.par_iter_mut().enumerate().for_each(|(i, r)| *r += binned_value(&t, &node_bins, &data, i) as f64);
        }
        if let (Some(vr), Some((vx, vy))) = (valid_raw.as_mut(), valid) {
            vr.par_iter_mut().enumerate().for_each(|(i, r)| *r += t.values[t.leaf_index(vx.row(i))] as f64);
            let l = loss(cfg.objective, vy, vr);
            valid_loss.push(l);
            if l < best_loss {
                best_loss = l;
                best_round = round;
            }
        }
        trees.push(t);
        if let Some(k) = cfg.early_stopping_rounds
            && round - best_round >= k
        {
            break;
        }
    }
    let best_iteration = if cfg.early_stopping_rounds.is_some() {
        trees.truncate(best_round + 1);
        Some(best_round + 1)
    } else {
        None
    };
    Ok(Gbm { objective: cfg.objective, init_score, trees, n_features: d, best_iteration, valid_loss })
}

impl Gbm {
    /// The objective.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// The starting raw score (log-odds of the base rate, or the mean target).
    pub fn init_score(&self) -> f64 {
        self.init_score
    }

    /// The trees (leaf values already include the learning rate).
    pub fn trees(&self) -> &[DecisionTree] {
        &self.trees
    }

    /// The number of features the model was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// With early stopping: the number of rounds kept (the best validation loss's round, 1-based).
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// The validation loss after each round trained (log-loss or mean squared error); empty without a
    /// validation set.
    pub fn valid_loss(&self) -> &[f64] {
        &self.valid_loss
    }

    /// Raw scores `init + Σ trees` (log-odds for binary), summed in tree order in f64.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict_raw(&self, x: &Matrix) -> Result<Vec<f64>> {
        if x.cols() != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: x.cols() });
        }
        Ok((0..x.rows())
            .into_par_iter()
            .map(|i| {
                let row = x.row(i);
                let mut acc = self.init_score;
                for t in &self.trees {
                    acc += t.values[t.leaf_index(row)] as f64;
                }
                acc
            })
            .collect())
    }

    /// P(y = 1) of a binary model: the sigmoid of the raw score.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns; [`Error::InvalidParameter`] on a
    /// regression model.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f32>> {
        if self.objective != Objective::Binary {
            return Err(invalid("predict_proba on a regression gbm".into()));
        }
        Ok(self.predict_raw(x)?.into_iter().map(|r| sigmoid(r) as f32).collect())
    }

    /// Predictions: the class (1 when P(y = 1) ≥ 0.5) for a binary model, the value for regression.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f32>> {
        let raw = self.predict_raw(x)?;
        Ok(match self.objective {
            Objective::Binary => raw.into_iter().map(|r| if sigmoid(r) >= 0.5 { 1.0 } else { 0.0 }).collect(),
            Objective::Regression => raw.into_iter().map(|r| r as f32).collect(),
        })
    }

    /// The sigmoid the flattened model applies (kept here so both use one formula).
    pub(crate) fn link(raw: f64) -> f64 {
        sigmoid(raw)
    }
}

impl Persist for Gbm {
    const KIND: &'static str = "gbm";

    fn to_parts(&self) -> Parts {
        let mut arrays = Vec::new();
        tree::trees_to_arrays(&self.trees, 1, &mut arrays);
        arrays.push(("init_score".into(), super::io::Array::F64(vec![self.init_score], vec![1])));
        arrays.push(("valid_loss".into(), super::io::Array::F64(self.valid_loss.clone(), vec![self.valid_loss.len()])));
        Parts {
            params: serde_json::json!({
                "n_features": self.n_features,
                "n_classes": 0,
                "criterion": "mse",
                "objective": self.objective.name(),
                "n_trees": self.trees.len(),
                "best_iteration": self.best_iteration,
            }),
            arrays,
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let (n_features, _) = tree::check_classes(&parts, Criterion::Mse)?;
        let objective = match tree::param_str(&parts, "objective")? {
            "binary" => Objective::Binary,
            "regression" => Objective::Regression,
            other => {
                return Err(Error::MlModelParts {
                    name: "objective".into(),
                    reason: format!("unknown objective {other:?}"),
                });
            }
        };
        let trees = tree::trees_from_parts(&parts, n_features, 0, Criterion::Mse)?;
        let init_score = parts.f64_scalar("init_score")?;
        if !init_score.is_finite() {
            return Err(Error::MlModelParts {
                name: "init_score".into(),
                reason: format!("{init_score} is not finite"),
            });
        }
        let (valid_loss, _) = parts.f64("valid_loss")?;
        let best_iteration = parts.params.get("best_iteration").and_then(|v| v.as_u64()).map(|v| v as usize);
        Ok(Gbm { objective, init_score, trees, n_features, best_iteration, valid_loss: valid_loss.to_vec() })
    }
}
