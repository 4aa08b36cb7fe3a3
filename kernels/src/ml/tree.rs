//! CART decision trees for classification (Gini, entropy) and regression (MSE), with a learned
//! default direction for missing values.
//!
//! References: Breiman, Friedman, Olshen & Stone, *Classification and Regression Trees* (1984), the
//! greedy binary splitting; scikit-learn's `DecisionTreeClassifier`/`DecisionTreeRegressor` for the
//! details followed here (thresholds at the midpoint of two consecutive distinct values, the
//! stopping rules `max_depth`, `min_samples_split`, `min_samples_leaf`, `min_impurity_decrease`,
//! leaves holding class fractions or the mean); Ke et al., "LightGBM: A Highly Efficient Gradient
//! Boosting Decision Tree", NeurIPS 2017, for missing values: at every split the rows whose feature is
//! NaN are tried on the left and on the right, and the better side is stored as the node's
//! `default_left`. A split that sends every present value left and every missing one right is also
//! tried, so a feature whose *absence* carries the signal is learned.
//!
//! The search is exact: at each node, for each candidate feature, the node's present values are
//! sorted once and scanned left to right with running class counts (or sums), so a node costs
//! `O(m · n log n)` for `m` candidate features and `n` rows. The features are read from a
//! column-major copy of the matrix made once per fit (shared by every tree of a forest).
//!
//! [`Splitter::Histogram`] grows the same kind of tree on binned features instead (the random forests'
//! default; see [`super::hist`]).
//!
//! A row goes left at an internal node when `x[feature] <= threshold`, or when `x[feature]` is NaN
//! and the node's `default_left` is set.

use super::Matrix;
use super::gbm::Binned;
use super::hist::{self, HistInput};
use super::io::{Array, Parts, Persist, check_shape};
use crate::{Error, Result};

/// The impurity a tree minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Gini impurity `1 − Σ p_k²` (classification).
    Gini,
    /// Shannon entropy `−Σ p_k log₂ p_k` (classification).
    Entropy,
    /// Mean squared error around the node mean (regression).
    Mse,
}

impl Criterion {
    /// Whether this criterion fits a classifier.
    pub fn is_classification(self) -> bool {
        !matches!(self, Criterion::Mse)
    }

    fn name(self) -> &'static str {
        match self {
            Criterion::Gini => "gini",
            Criterion::Entropy => "entropy",
            Criterion::Mse => "mse",
        }
    }

    fn from_name(s: &str) -> Option<Criterion> {
        match s {
            "gini" => Some(Criterion::Gini),
            "entropy" => Some(Criterion::Entropy),
            "mse" => Some(Criterion::Mse),
            _ => None,
        }
    }
}

/// How many features a node may consider (scikit-learn's `max_features`); a random subset is drawn
/// per node when it is fewer than all of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFeatures {
    /// Every feature.
    All,
    /// `max(1, ⌊√d⌋)` of `d` features (the random-forest default for classification).
    Sqrt,
    /// `max(1, ⌊log₂ d⌋)`.
    Log2,
    /// A fixed number (at least 1; capped at `d`).
    Count(usize),
    /// A fraction in `(0, 1]`: `max(1, ⌊f·d⌋)`.
    Fraction(f64),
}

impl MaxFeatures {
    /// The number of features to consider out of `d`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `Count(0)` or a fraction outside `(0, 1]`.
    pub fn resolve(self, d: usize) -> Result<usize> {
        let k = match self {
            MaxFeatures::All => d,
            MaxFeatures::Sqrt => (d as f64).sqrt() as usize,
            MaxFeatures::Log2 => (d as f64).log2() as usize,
            MaxFeatures::Count(0) => {
                return Err(Error::InvalidParameter("max_features Count(0): need at least 1".into()));
            }
            MaxFeatures::Count(k) => k,
            MaxFeatures::Fraction(f) if f > 0.0 && f <= 1.0 => (f * d as f64) as usize,
            MaxFeatures::Fraction(f) => {
                return Err(Error::InvalidParameter(format!("max_features fraction must be in (0, 1], got {f}")));
            }
        };
        Ok(k.clamp(1, d.max(1)))
    }
}

/// How a tree searches for its splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Splitter {
    /// Every threshold between consecutive distinct values, found by sorting the node's values
    /// (scikit-learn's `splitter="best"`; `O(m · n log n)` per node).
    #[default]
    Exact,
    /// Features binned once into at most `max_bins` bins (`2..=255`, plus one for missing values);
    /// nodes search per-bin histograms ([`super::hist`]'s module docs; `O(m · n + bins)` per node).
    /// With at most `max_bins` distinct values per feature it finds the exact splitter's splits.
    Histogram {
        /// Bins per feature, `2..=255`.
        max_bins: usize,
    },
}

impl Splitter {
    /// The forests' default: 255 bins, as LightGBM's `max_bin`.
    pub const HISTOGRAM: Splitter = Splitter::Histogram { max_bins: 255 };

    pub(crate) fn check(self) -> Result<()> {
        match self {
            Splitter::Histogram { max_bins } if !(2..=255).contains(&max_bins) => {
                Err(Error::InvalidParameter(format!("histogram max_bins must be in 2..=255, got {max_bins}")))
            }
            _ => Ok(()),
        }
    }
}

/// Settings of [`fit`] (defaults: scikit-learn's `DecisionTreeClassifier`).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeConfig {
    /// Split quality measure; [`Criterion::Mse`] makes a regression tree.
    pub criterion: Criterion,
    /// Maximum depth (the root is depth 0); `None` grows until the other rules stop it.
    pub max_depth: Option<usize>,
    /// A node with fewer rows is not split (at least 2).
    pub min_samples_split: usize,
    /// Each child of a split keeps at least this many rows (at least 1).
    pub min_samples_leaf: usize,
    /// A split must decrease the weighted impurity `N_t/N · (I − N_L/N_t·I_L − N_R/N_t·I_R)` by at least this much.
    pub min_impurity_decrease: f64,
    /// Features considered per node (fewer than all: a random subset per node, as in random forests).
    pub max_features: MaxFeatures,
    /// Seed of the feature subsets (unused with [`MaxFeatures::All`]).
    pub seed: u64,
    /// The split search: [`Splitter::Exact`] by default (scikit-learn's trees, node for node).
    pub splitter: Splitter,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            criterion: Criterion::Gini,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            min_impurity_decrease: 0.0,
            max_features: MaxFeatures::All,
            seed: 0,
            splitter: Splitter::Exact,
        }
    }
}

/// One node of a [`DecisionTree`]; a leaf has `left == right == 0` (the root is never a child).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// The feature tested (internal nodes).
    pub feature: u32,
    /// Rows with `x[feature] <= threshold` go left (internal nodes).
    pub threshold: f32,
    /// Index of the left child (0 for a leaf).
    pub left: u32,
    /// Index of the right child (0 for a leaf).
    pub right: u32,
    /// Where a row whose feature is NaN goes.
    pub default_left: bool,
    /// The node's impurity on its training rows (the criterion's value; 0 for boosting trees).
    pub impurity: f64,
    /// Training rows that reached the node (bootstrap repeats counted).
    pub n_samples: f64,
}

impl Node {
    /// Whether the node is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.left == 0 && self.right == 0
    }

    /// Whether a row goes to the left child.
    #[inline]
    pub fn goes_left(&self, row: &[f32]) -> bool {
        let v = row[self.feature as usize];
        if v.is_nan() { self.default_left } else { v <= self.threshold }
    }
}

/// A fitted decision tree: nodes in depth-first order (children after their parent) and, per node,
/// its value: class fractions for a classifier, the mean target for a regression tree.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionTree {
    pub(crate) n_features: usize,
    pub(crate) n_classes: usize,
    pub(crate) criterion: Criterion,
    pub(crate) nodes: Vec<Node>,
    pub(crate) values: Vec<f32>,
}

/// A small, portable, seeded generator (SplitMix64, Steele, Lea & Flood, OOPSLA 2014): the same
/// sequence on every platform and release, which `rand`'s `StdRng` does not promise.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The seed of stream `index` derived from `seed` (independent-looking streams per tree).
    pub(crate) fn derive(seed: u64, index: u64) -> u64 {
        let mut r = SplitMix64(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r.next_u64()
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`), by multiply-high.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// The features of a matrix copied column by column (each column contiguous), for the split search.
pub(crate) struct Columns {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    data: Vec<f32>,
}

impl Columns {
    pub(crate) fn new(x: &Matrix) -> Columns {
        let (rows, cols) = (x.rows(), x.cols());
        let mut data = vec![0.0; rows * cols];
        for (i, row) in x.data().chunks_exact(cols).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                data[j * rows + i] = v;
            }
        }
        Columns { rows, cols, data }
    }

    #[inline]
    pub(crate) fn col(&self, j: usize) -> &[f32] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }
}

/// Checks a training set for a tree model: rows present, `y` one per row, no infinity in `x` (NaN is
/// a missing value), finite `y`; for classification, `y` holds class ids `0, 1, …` (as f32). Returns
/// the number of classes (0 for regression).
pub(crate) fn check_training(x: &Matrix, y: &[f32], classification: bool) -> Result<usize> {
    if x.rows() == 0 {
        return Err(Error::MlEmpty("the training matrix has no rows".into()));
    }
    if y.len() != x.rows() {
        return Err(Error::DimensionMismatch { expected: x.rows(), got: y.len() });
    }
    check_no_infinity(x)?;
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::MlTarget(format!("y[{i}] is {}", y[i])));
    }
    if !classification {
        return Ok(0);
    }
    let mut max = 0.0f32;
    for (i, &v) in y.iter().enumerate() {
        if v < 0.0 || v.fract() != 0.0 || v > 65_535.0 {
            return Err(Error::MlTarget(format!(
                "y[{i}] is {v}; a classifier takes class ids 0, 1, 2, … (whole numbers below 65536)"
            )));
        }
        max = max.max(v);
    }
    Ok(max as usize + 1)
}

/// [`Error::MlNonFinite`] at the first infinity of `x` (NaN is allowed: it marks a missing value).
pub(crate) fn check_no_infinity(x: &Matrix) -> Result<()> {
    match x.data().iter().position(|v| v.is_infinite()) {
        Some(p) => Err(Error::MlNonFinite { row: p / x.cols(), column: p % x.cols() }),
        None => Ok(()),
    }
}

/// The midpoint threshold between consecutive distinct values `a < b` (as scikit-learn: `a/2 + b/2`
/// in f64), rounded to f32 and kept strictly below `b`, so `a <= t < b`.
pub(crate) fn midpoint(a: f32, b: f32) -> f32 {
    let m = (a as f64 / 2.0 + b as f64 / 2.0) as f32;
    if m >= b || !m.is_finite() { a } else { m }
}

pub(crate) fn check_tree_config(cfg: &TreeConfig) -> Result<()> {
    if cfg.min_samples_split < 2 {
        return Err(Error::InvalidParameter(format!("min_samples_split must be >= 2, got {}", cfg.min_samples_split)));
    }
    if cfg.min_samples_leaf < 1 {
        return Err(Error::InvalidParameter("min_samples_leaf must be >= 1, got 0".into()));
    }
    if !(cfg.min_impurity_decrease >= 0.0 && cfg.min_impurity_decrease.is_finite()) {
        return Err(Error::InvalidParameter(format!(
            "min_impurity_decrease must be finite and >= 0, got {}",
            cfg.min_impurity_decrease
        )));
    }
    if cfg.max_depth == Some(0) {
        return Err(Error::InvalidParameter("max_depth must be >= 1 (or None)".into()));
    }
    cfg.max_features.resolve(1)?;
    cfg.splitter.check()
}

/// Fits a CART tree to `x` (NaN = missing) and `y` (class ids `0, 1, …` as f32 for
/// [`Criterion::Gini`]/[`Criterion::Entropy`], any finite values for [`Criterion::Mse`]).
///
/// # Errors
/// [`Error::MlEmpty`] without rows; [`Error::DimensionMismatch`] when `y` is not one value per row;
/// [`Error::MlNonFinite`] for an infinity in `x`; [`Error::MlTarget`] for a non-finite `y` or a class id
/// that is not a whole number in `0..65536`; [`Error::InvalidParameter`] for a bad setting.
pub fn fit(x: &Matrix, y: &[f32], cfg: &TreeConfig) -> Result<DecisionTree> {
    check_tree_config(cfg)?;
    let n_classes = check_training(x, y, cfg.criterion.is_classification())?;
    let max_features = cfg.max_features.resolve(x.cols())?;
    let rows: Vec<u32> = (0..x.rows() as u32).collect();
    match cfg.splitter {
        Splitter::Exact => Ok(fit_rows(&Columns::new(x), y, rows, n_classes, cfg, max_features, cfg.seed)),
        Splitter::Histogram { max_bins } => {
            let data = Binned::new(x, max_bins);
            let input = HistInput { data: &data, y, n_classes };
            Ok(hist::fit_rows(&input, &rows, cfg, max_features, cfg.seed))
        }
    }
}

/// The statistics of a set of rows: class counts (classification) or count, sum and sum of squares.
#[derive(Clone, Debug)]
struct Stats {
    n: f64,
    sum: f64,
    sq: f64,
    counts: Vec<f64>,
}

impl Stats {
    fn new(k: usize) -> Stats {
        Stats { n: 0.0, sum: 0.0, sq: 0.0, counts: vec![0.0; k] }
    }

    fn clear(&mut self) {
        self.n = 0.0;
        self.sum = 0.0;
        self.sq = 0.0;
        self.counts.iter_mut().for_each(|c| *c = 0.0);
    }

    #[inline]
    fn add(&mut self, y: f32, classify: bool) {
        self.n += 1.0;
        if classify {
            self.counts[y as usize] += 1.0;
        } else {
            let v = y as f64;
            self.sum += v;
            self.sq += v * v;
        }
    }

    fn add_stats(&mut self, o: &Stats) {
        self.n += o.n;
        self.sum += o.sum;
        self.sq += o.sq;
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
    }

    /// `a − b` (the other side of a split).
    fn diff(a: &Stats, b: &Stats, out: &mut Stats) {
        out.n = a.n - b.n;
        out.sum = a.sum - b.sum;
        out.sq = a.sq - b.sq;
        for ((o, x), y) in out.counts.iter_mut().zip(&a.counts).zip(&b.counts) {
            *o = x - y;
        }
    }

    // ANCHOR: impurity
    fn impurity(&self, c: Criterion) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        match c {
            Criterion::Gini => 1.0 - self.counts.iter().map(|&k| (k / self.n) * (k / self.n)).sum::<f64>(),
            Criterion::Entropy => -self
                .counts
                .iter()
                .filter(|&&k| k > 0.0)
                .map(|&k| {
                    let p = k / self.n;
                    p * p.log2()
                })
                .sum::<f64>(),
            Criterion::Mse => {
                let m = self.sum / self.n;
                (self.sq / self.n - m * m).max(0.0)
            }
        }
    }

    /// The part of `−(N_L·I_L + N_R·I_R)` that depends on the split (scikit-learn's proxy improvement).
    fn proxy(&self, c: Criterion) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        match c {
            Criterion::Gini => self.counts.iter().map(|&k| k * k).sum::<f64>() / self.n,
            Criterion::Entropy => -self.n * self.impurity(c),
            Criterion::Mse => self.sum * self.sum / self.n,
        }
    }
    // ANCHOR_END: impurity
}

/// The best split found at a node.
#[derive(Clone, Copy, Debug)]
struct Split {
    feature: usize,
    threshold: f32,
    default_left: bool,
    /// Whether the node had missing values of this feature (else `default_left` follows the larger child).
    had_missing: bool,
    proxy: f64,
}

struct Builder<'a> {
    cols: &'a Columns,
    y: &'a [f32],
    cfg: &'a TreeConfig,
    n_classes: usize,
    max_features: usize,
    rng: SplitMix64,
    nodes: Vec<Node>,
    values: Vec<f32>,
    pairs: Vec<(f32, u32)>,
    missing: Vec<u32>,
    features: Vec<usize>,
    scratch: Vec<u32>,
}

/// Fits a tree on `rows` (indices into `cols`/`y`, repeats allowed: a bootstrap sample).
pub(crate) fn fit_rows(
    cols: &Columns,
    y: &[f32],
    mut rows: Vec<u32>,
    n_classes: usize,
    cfg: &TreeConfig,
    max_features: usize,
    seed: u64,
) -> DecisionTree {
    let mut b = Builder {
        cols,
        y,
        cfg,
        n_classes,
        max_features: max_features.clamp(1, cols.cols),
        rng: SplitMix64::new(seed),
        nodes: Vec::new(),
        values: Vec::new(),
        pairs: Vec::with_capacity(rows.len()),
        missing: Vec::new(),
        features: (0..cols.cols).collect(),
        scratch: Vec::with_capacity(rows.len()),
    };
    b.build(&mut rows);
    DecisionTree { n_features: cols.cols, n_classes, criterion: cfg.criterion, nodes: b.nodes, values: b.values }
}

impl Builder<'_> {
    fn classify(&self) -> bool {
        self.n_classes > 0
    }

    fn stats_of(&self, rows: &[u32]) -> Stats {
        let mut s = Stats::new(self.n_classes);
        for &r in rows {
            s.add(self.y[r as usize], self.classify());
        }
        s
    }

    fn push_node(&mut self, stats: &Stats, impurity: f64) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            default_left: true,
            impurity,
            n_samples: stats.n,
        });
        if self.classify() {
            self.values.extend(stats.counts.iter().map(|&c| (c / stats.n) as f32));
        } else {
            self.values.push((stats.sum / stats.n) as f32);
        }
        id
    }

    fn build(&mut self, rows: &mut [u32]) {
        // Depth-first with an explicit stack: (range, depth, parent, is_left).
        let total = rows.len() as f64;
        let mut stack: Vec<(usize, usize, usize, usize, bool)> = vec![(0, rows.len(), 0, usize::MAX, true)];
        while let Some((start, end, depth, parent, is_left)) = stack.pop() {
            let node_rows = &rows[start..end];
            let stats = self.stats_of(node_rows);
            let impurity = stats.impurity(self.cfg.criterion);
            let id = self.push_node(&stats, impurity);
            if parent != usize::MAX {
                if is_left {
                    self.nodes[parent].left = id as u32;
                } else {
                    self.nodes[parent].right = id as u32;
                }
            }
            let n = end - start;
            let min_leaf = self.cfg.min_samples_leaf;
            let mut leaf = self.cfg.max_depth.is_some_and(|d| depth >= d)
                || n < self.cfg.min_samples_split
                || n < 2 * min_leaf
                || impurity <= f64::EPSILON;
            if !leaf && !self.classify() {
                let y0 = self.y[node_rows[0] as usize];
                leaf = node_rows.iter().all(|&r| self.y[r as usize] == y0);
            }
            if leaf {
                continue;
            }
            let Some(split) = self.best_split(node_rows, &stats) else { continue };
            // Partition (stable) and measure the children.
            let col = self.cols.col(split.feature);
            let go_left = |r: u32| {
                let v = col[r as usize];
                if v.is_nan() { split.default_left } else { v <= split.threshold }
            };
            self.scratch.clear();
            let mut w = start;
            for i in start..end {
                let r = rows[i];
                if go_left(r) {
                    rows[w] = r;
                    w += 1;
                } else {
                    self.scratch.push(r);
                }
            }
            rows[w..end].copy_from_slice(&self.scratch);
            let (n_left, n_right) = (w - start, end - w);
            if n_left == 0 || n_right == 0 {
                continue;
            }
            let left_stats = self.stats_of(&rows[start..w]);
            let right_stats = self.stats_of(&rows[w..end]);
            let c = self.cfg.criterion;
            let improvement = (n as f64 / total)
                * (impurity
                    - n_left as f64 / n as f64 * left_stats.impurity(c)
                    - n_right as f64 / n as f64 * right_stats.impurity(c));
            if improvement + f64::EPSILON < self.cfg.min_impurity_decrease {
                continue;
            }
            let node = &mut self.nodes[id];
            node.feature = split.feature as u32;
            node.threshold = split.threshold;
            node.default_left = if split.had_missing { split.default_left } else { n_left >= n_right };
            // Push right first so the left subtree is numbered first (preorder).
            stack.push((w, end, depth + 1, id, false));
            stack.push((start, w, depth + 1, id, true));
        }
    }

    /// The best split of the node's rows over a (random, when `max_features < d`) set of features.
    fn best_split(&mut self, rows: &[u32], total: &Stats) -> Option<Split> {
        let d = self.cols.cols;
        let c = self.cfg.criterion;
        let classify = self.classify();
        let min_leaf = self.cfg.min_samples_leaf as f64;
        let n = rows.len() as f64;
        let mut best: Option<Split> = None;
        let mut visited = 0usize;
        let subsample = self.max_features < d;
        let mut left = Stats::new(self.n_classes);
        let mut right = Stats::new(self.n_classes);
        let mut miss = Stats::new(self.n_classes);
        let mut present = Stats::new(self.n_classes);
        let mut with_miss = Stats::new(self.n_classes);
        for slot in 0..d {
            if visited >= self.max_features {
                break;
            }
            let f = if subsample {
                // Partial Fisher–Yates: draw the next feature among those not yet drawn at this node.
                let j = slot + self.rng.below(d - slot);
                self.features.swap(slot, j);
                self.features[slot]
            } else {
                slot
            };
            // ANCHOR: exact_sort
            let col = self.cols.col(f);
            self.pairs.clear();
            self.missing.clear();
            miss.clear();
            for &r in rows {
                let v = col[r as usize];
                if v.is_nan() {
                    self.missing.push(r);
                    miss.add(self.y[r as usize], classify);
                } else {
                    self.pairs.push((v, r));
                }
            }
            if self.pairs.is_empty() {
                continue; // only missing values: constant
            }
            self.pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // ANCHOR_END: exact_sort
            let constant = self.pairs[0].0 == self.pairs[self.pairs.len() - 1].0;
            if constant && self.missing.is_empty() {
                continue;
            }
            visited += 1;
            let had_missing = !self.missing.is_empty();
            Stats::diff(total, &miss, &mut present);
            let mut consider = |l: &Stats, default_left: bool, threshold: f32, best: &mut Option<Split>| {
                let nl = l.n;
                let nr = n - nl;
                if nl < min_leaf || nr < min_leaf {
                    return;
                }
                Stats::diff(total, l, &mut right);
                let proxy = l.proxy(c) + right.proxy(c);
                if best.is_none_or(|b| proxy > b.proxy) {
                    *best = Some(Split { feature: f, threshold, default_left, had_missing, proxy });
                }
            };
            left.clear();
            let m = self.pairs.len();
            for p in 0..m - 1 {
                let (v, r) = self.pairs[p];
                left.add(self.y[r as usize], classify);
                let next = self.pairs[p + 1].0;
                if v == next {
                    continue;
                }
                let t = midpoint(v, next);
                consider(&left, false, t, &mut best);
                if had_missing {
                    with_miss.clone_from(&left);
                    with_miss.add_stats(&miss);
                    consider(&with_miss, true, t, &mut best);
                }
            }
            if had_missing {
                // Every present value left, every missing one right.
                consider(&present, false, f32::INFINITY, &mut best);
            }
        }
        best
    }
}

impl DecisionTree {
    /// The number of features the tree was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The number of classes (0 for a regression tree).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The criterion the tree was grown with.
    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    /// Values per node: the number of classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        self.n_classes.max(1)
    }

    /// The nodes, depth-first (the root first; children after their parent).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The value of node `i`: class fractions (classifier) or the mean target (regression).
    pub fn value(&self, i: usize) -> &[f32] {
        let k = self.n_outputs();
        &self.values[i * k..(i + 1) * k]
    }

    /// The number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_leaf()).count()
    }

    /// The depth (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        let mut max = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_leaf() {
                depth[n.left as usize] = depth[i] + 1;
                depth[n.right as usize] = depth[i] + 1;
                max = max.max(depth[i] + 1);
            }
        }
        max
    }

    /// The index of the leaf `row` falls into (`row` has at least [`DecisionTree::n_features`] values).
    #[inline]
    pub fn leaf_index(&self, row: &[f32]) -> usize {
        let mut i = 0;
        loop {
            let n = &self.nodes[i];
            if n.is_leaf() {
                return i;
            }
            i = if n.goes_left(row) { n.left } else { n.right } as usize;
        }
    }

    fn check_x(&self, x: &Matrix) -> Result<()> {
        if x.cols() != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: x.cols() });
        }
        Ok(())
    }

    /// Class probabilities, row-major `rows × n_classes` (the leaf's class fractions).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns; [`Error::InvalidParameter`] on a
    /// regression tree.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.check_x(x)?;
        if self.n_classes == 0 {
            return Err(Error::InvalidParameter("predict_proba on a regression tree".into()));
        }
        let mut out = Vec::with_capacity(x.rows() * self.n_classes);
        for i in 0..x.rows() {
            out.extend_from_slice(self.value(self.leaf_index(x.row(i))));
        }
        Ok(out)
    }

    /// Predictions: the most probable class id (lowest on a tie) for a classifier, the leaf mean for
    /// a regression tree.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.check_x(x)?;
        Ok((0..x.rows())
            .map(|i| {
                let v = self.value(self.leaf_index(x.row(i)));
                if self.n_classes == 0 { v[0] } else { argmax(v) as f32 }
            })
            .collect())
    }

    /// Mean-decrease-in-impurity importances (scikit-learn's `feature_importances_`): per feature, the
    /// sum over its splits of `N_t·I_t − N_L·I_L − N_R·I_R`, normalised to sum to 1 (all 0 for a stump
    /// without splits).
    pub fn feature_importances(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.n_features];
        for n in &self.nodes {
            if !n.is_leaf() {
                let (l, r) = (&self.nodes[n.left as usize], &self.nodes[n.right as usize]);
                imp[n.feature as usize] +=
                    n.n_samples * n.impurity - l.n_samples * l.impurity - r.n_samples * r.impurity;
            }
        }
        let total: f64 = imp.iter().sum();
        if total > 0.0 {
            imp.iter_mut().for_each(|v| *v /= total);
        }
        imp
    }
}

/// The index of the largest value (the first on a tie).
pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &p) in v.iter().enumerate() {
        if p > v[best] {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------------ persistence (shared by forest and gbm)

/// Appends the arrays of `trees` (concatenated nodes, `tree_offsets` of length `trees + 1`).
pub(crate) fn trees_to_arrays(trees: &[DecisionTree], k: usize, arrays: &mut Vec<(String, Array)>) {
    let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
    let mut offsets = Vec::with_capacity(trees.len() + 1);
    offsets.push(0u32);
    let (mut feature, mut threshold, mut left, mut right, mut default_left) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut impurity, mut n_samples, mut values) =
        (Vec::with_capacity(total), Vec::with_capacity(total), Vec::with_capacity(total * k));
    for t in trees {
        for n in &t.nodes {
            feature.push(n.feature);
            threshold.push(n.threshold);
            left.push(n.left);
            right.push(n.right);
            default_left.push(u32::from(n.default_left));
            impurity.push(n.impurity);
            n_samples.push(n.n_samples);
        }
        values.extend_from_slice(&t.values);
        offsets.push(offsets[offsets.len() - 1] + t.nodes.len() as u32);
    }
    let s = vec![total];
    arrays.push(("tree_offsets".into(), Array::U32(offsets, vec![trees.len() + 1])));
    arrays.push(("feature".into(), Array::U32(feature, s.clone())));
    arrays.push(("threshold".into(), Array::F32(threshold, s.clone())));
    arrays.push(("left".into(), Array::U32(left, s.clone())));
    arrays.push(("right".into(), Array::U32(right, s.clone())));
    arrays.push(("default_left".into(), Array::U32(default_left, s.clone())));
    arrays.push(("impurity".into(), Array::F64(impurity, s.clone())));
    arrays.push(("n_samples".into(), Array::F64(n_samples, s)));
    arrays.push(("value".into(), Array::F32(values, vec![total, k])));
}

fn parts_err(name: &str, reason: impl Into<String>) -> Error {
    Error::MlModelParts { name: name.to_string(), reason: reason.into() }
}

/// Rebuilds and validates the trees written by [`trees_to_arrays`]: every child index lies after its
/// parent and inside its tree (so every walk ends), features are below `n_features`, thresholds are
/// not NaN, values are finite.
pub(crate) fn trees_from_parts(
    parts: &Parts,
    n_features: usize,
    n_classes: usize,
    criterion: Criterion,
) -> Result<Vec<DecisionTree>> {
    let k = n_classes.max(1);
    let (offsets, os) = parts.u32("tree_offsets")?;
    if os.len() != 1 || offsets.len() < 2 || offsets[0] != 0 {
        return Err(parts_err("tree_offsets", "needs at least 2 entries starting at 0"));
    }
    let total = offsets[offsets.len() - 1] as usize;
    let shape = [total];
    let (feature, s) = parts.u32("feature")?;
    check_shape("feature", s, &shape)?;
    let (threshold, s) = parts.f32("threshold")?;
    check_shape("threshold", s, &shape)?;
    let (left, s) = parts.u32("left")?;
    check_shape("left", s, &shape)?;
    let (right, s) = parts.u32("right")?;
    check_shape("right", s, &shape)?;
    let (default_left, s) = parts.u32("default_left")?;
    check_shape("default_left", s, &shape)?;
    let (impurity, s) = parts.f64("impurity")?;
    check_shape("impurity", s, &shape)?;
    let (n_samples, s) = parts.f64("n_samples")?;
    check_shape("n_samples", s, &shape)?;
    let (values, s) = parts.f32("value")?;
    check_shape("value", s, &[total, k])?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(parts_err("value", format!("value {i} is {}", values[i])));
    }
    let mut trees = Vec::with_capacity(offsets.len() - 1);
    for w in offsets.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        if b <= a {
            return Err(parts_err("tree_offsets", "every tree needs at least one node (offsets must increase)"));
        }
        let count = b - a;
        let mut nodes = Vec::with_capacity(count);
        for g in a..b {
            let i = g - a;
            let (l, r) = (left[g] as usize, right[g] as usize);
            let leaf = l == 0 && r == 0;
            if !leaf && (l <= i || r <= i || l >= count || r >= count || l == r) {
                return Err(parts_err(
                    "left",
                    format!("node {g}: children {l}, {r} must lie after it and inside its tree"),
                ));
            }
            if !leaf && feature[g] as usize >= n_features {
                return Err(parts_err("feature", format!("node {g}: feature {} >= {n_features}", feature[g])));
            }
            if threshold[g].is_nan() {
                return Err(parts_err("threshold", format!("node {g} is NaN")));
            }
            if default_left[g] > 1 {
                return Err(parts_err("default_left", format!("node {g}: {} is not 0 or 1", default_left[g])));
            }
            nodes.push(Node {
                feature: feature[g],
                threshold: threshold[g],
                left: l as u32,
                right: r as u32,
                default_left: default_left[g] == 1,
                impurity: impurity[g],
                n_samples: n_samples[g],
            });
        }
        trees.push(DecisionTree { n_features, n_classes, criterion, nodes, values: values[a * k..b * k].to_vec() });
    }
    Ok(trees)
}

pub(crate) fn param_str<'a>(parts: &'a Parts, key: &str) -> Result<&'a str> {
    parts.params.get(key).and_then(|v| v.as_str()).ok_or_else(|| parts_err(key, "missing or not a string"))
}

pub(crate) fn criterion_param(parts: &Parts) -> Result<Criterion> {
    let s = param_str(parts, "criterion")?;
    Criterion::from_name(s).ok_or_else(|| parts_err("criterion", format!("unknown criterion {s:?}")))
}

pub(crate) fn check_classes(parts: &Parts, criterion: Criterion) -> Result<(usize, usize)> {
    let n_features = parts.param_u64("n_features")? as usize;
    let n_classes = parts.param_u64("n_classes")? as usize;
    if n_features == 0 {
        return Err(parts_err("n_features", "must be at least 1"));
    }
    if criterion.is_classification() != (n_classes > 0) {
        return Err(parts_err("n_classes", format!("{n_classes} classes do not fit criterion {}", criterion.name())));
    }
    Ok((n_features, n_classes))
}

pub(crate) fn criterion_name(c: Criterion) -> &'static str {
    c.name()
}

impl Persist for DecisionTree {
    const KIND: &'static str = "tree";

    fn to_parts(&self) -> Parts {
        let mut arrays = Vec::new();
        trees_to_arrays(std::slice::from_ref(self), self.n_outputs(), &mut arrays);
        Parts {
            params: serde_json::json!({
                "n_features": self.n_features,
                "n_classes": self.n_classes,
                "criterion": self.criterion.name(),
            }),
            arrays,
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let criterion = criterion_param(&parts)?;
        let (n_features, n_classes) = check_classes(&parts, criterion)?;
        let mut trees = trees_from_parts(&parts, n_features, n_classes, criterion)?;
        if trees.len() != 1 {
            return Err(parts_err("tree_offsets", format!("a tree file holds one tree, found {}", trees.len())));
        }
        Ok(trees.remove(0))
    }
}
