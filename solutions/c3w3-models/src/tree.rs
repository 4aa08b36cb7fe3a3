//! A CART classification tree grown on binned features (Breiman, Friedman,
//! Olshen & Stone, *Classification and Regression Trees*, 1984).
//!
//! Growing is greedy and top-down. At a node holding some training rows:
//! 1. make it a **leaf** if it is at `max_depth`, is pure (Gini 0), or has fewer
//!    than `2 · min_samples_leaf` rows (no split could keep both children big
//!    enough);
//! 2. otherwise, for every candidate feature build the node's
//!    [`ClassHistogram`] of that feature and ask [`best_split`] for its best bin;
//!    keep the feature with the largest decrease (the first one on ties, in the
//!    order the candidates are listed);
//! 3. split only if that decrease is positive and at least
//!    `min_impurity_decrease`; then grow the left child (rows with bin ≤ `bin`),
//!    then the right child, depth first.
//!
//! A leaf stores the class fractions of its rows: that is the tree's
//! `predict_proba`. A split stores the feature, the bin and the raw threshold
//! `edges[feature][bin]`, so a row goes left when `x[feature] <= threshold` —
//! prediction never needs binning.
//!
//! Nodes live in one `Vec`, the root at index 0 and children after their parent
//! (pre-order); a split holds the indices of its two children. Rows are passed
//! as a list of row numbers (repeats allowed: a bootstrap sample repeats rows,
//! and a repeated row simply counts twice everywhere).
//!
//! The production tree, `kernels::ml::tree`, sorts raw values instead of
//! binning and learns a direction for missing values; on the same data and
//! depth its accuracy is what yours is compared with.

use crate::binning::{Binned, bin_features};
use crate::rng::Rng;
use crate::split::{ClassHistogram, best_split, gini};
use crate::{Matrix, Result, invalid};

// ANCHOR: tree_config
/// Settings of a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeConfig {
    /// Levels of splits at most (the root is depth 0; a tree of depth 1 is a stump). At least 1.
    pub max_depth: usize,
    /// Rows each child of a split keeps at least (at least 1).
    pub min_samples_leaf: usize,
    /// A split must decrease the weighted impurity at least this much (≥ 0).
    pub min_impurity_decrease: f64,
    /// Features considered per node: `None` for all, `Some(k)` for `k` drawn at random
    /// per node with [`crate::forest::sample_features`] (random forests use `√d`).
    pub max_features: Option<usize>,
}
// ANCHOR_END: tree_config

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig { max_depth: 8, min_samples_leaf: 1, min_impurity_decrease: 0.0, max_features: None }
    }
}

// ANCHOR: node
/// One node of a [`Tree`].
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// An internal node: rows with `x[feature] <= threshold` (bin ≤ `bin`) go to `left`.
    Split {
        /// The feature tested.
        feature: usize,
        /// The last bin of the left child.
        bin: usize,
        /// The raw threshold, `edges[feature][bin]`.
        threshold: f32,
        /// Index of the left child in [`Tree::nodes`].
        left: usize,
        /// Index of the right child.
        right: usize,
    },
    /// A leaf: the class fractions of its training rows.
    Leaf {
        /// `proba[k]` = share of the leaf's rows with class `k` (sums to 1).
        proba: Vec<f64>,
        /// How many training rows reached it (bootstrap repeats counted).
        samples: usize,
    },
}
// ANCHOR_END: node

/// A fitted classification tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// Nodes in pre-order, the root first.
    pub nodes: Vec<Node>,
    /// Number of classes (the length of every leaf's `proba`).
    pub n_classes: usize,
    /// Number of features it was fitted on.
    pub n_features: usize,
}

/// Checks labels and returns the number of classes (`max + 1`).
pub(crate) fn n_classes_of(y: &[u32]) -> Result<usize> {
    match y.iter().max() {
        None => invalid("no labels"),
        Some(&m) if m >= 65_536 => invalid(format!("class id {m} is too large (at most 65535)")),
        Some(&m) => Ok(m as usize + 1),
    }
}

/// Checks a tree configuration.
pub(crate) fn check_config(cfg: &TreeConfig) -> Result<()> {
    if cfg.max_depth == 0 || cfg.min_samples_leaf == 0 {
        return invalid("max_depth and min_samples_leaf must be at least 1");
    }
    if !(cfg.min_impurity_decrease >= 0.0 && cfg.min_impurity_decrease.is_finite()) {
        return invalid(format!("min_impurity_decrease must be finite and >= 0, got {}", cfg.min_impurity_decrease));
    }
    if cfg.max_features == Some(0) {
        return invalid("max_features must be at least 1");
    }
    Ok(())
}

// ANCHOR: fit_binned
/// Fits a tree on binned features (task c3w3.tree, 15 points with
/// [`Tree::predict_proba_row`] and [`Tree::predict_proba`]).
///
/// `y[i]` is the class of row `i` of `data` (in `0..n_classes`); `rows` lists the
/// training rows (repeats count twice; the root's `N` is `rows.len()`). `rng`
/// feeds [`crate::forest::sample_features`] when `cfg.max_features` is `Some(k)`
/// with `k < data.cols` (one call per node that is not made a leaf by step 1,
/// in pre-order); otherwise it is not used. Follow the module docs.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for a bad config, no rows, a row number out of
/// range, `y` not one label per row, or a label `>= n_classes`.
pub fn fit_binned(
    data: &Binned,
    y: &[u32],
    n_classes: usize,
    rows: &[u32],
    cfg: &TreeConfig,
    rng: &mut Rng,
) -> Result<Tree> {
    // BEGIN SOLUTION c3w3.tree
    check_config(cfg)?;
    if y.len() != data.rows {
        return invalid(format!("{} labels for {} rows", y.len(), data.rows));
    }
    if rows.is_empty() {
        return invalid("a tree needs at least one training row");
    }
    if let Some(&r) = rows.iter().find(|&&r| r as usize >= data.rows) {
        return invalid(format!("row {r} out of range (the data has {} rows)", data.rows));
    }
    if let Some(&c) = y.iter().find(|&&c| c as usize >= n_classes) {
        return invalid(format!("label {c} is not below n_classes = {n_classes}"));
    }
    let mut g = Grower { data, y, n_classes, cfg, rng, n_root: rows.len() as f64, nodes: Vec::new() };
    g.grow(rows.to_vec(), 0);
    Ok(Tree { nodes: g.nodes, n_classes, n_features: data.cols })
    // END SOLUTION
}
// ANCHOR_END: fit_binned

// BEGIN SOLUTION c3w3.tree delete
/// The state of one tree's growth.
struct Grower<'a> {
    data: &'a Binned,
    y: &'a [u32],
    n_classes: usize,
    cfg: &'a TreeConfig,
    rng: &'a mut Rng,
    n_root: f64,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn leaf(&mut self, counts: &[f64], samples: usize) -> usize {
        let n: f64 = counts.iter().sum();
        self.nodes.push(Node::Leaf { proba: counts.iter().map(|c| c / n).collect(), samples });
        self.nodes.len() - 1
    }

    /// Grows the subtree of `rows` at `depth`; returns its root's index.
    fn grow(&mut self, rows: Vec<u32>, depth: usize) -> usize {
        let mut counts = vec![0.0; self.n_classes];
        for &r in &rows {
            counts[self.y[r as usize] as usize] += 1.0;
        }
        if depth >= self.cfg.max_depth || rows.len() < 2 * self.cfg.min_samples_leaf || gini(&counts) <= 0.0 {
            return self.leaf(&counts, rows.len());
        }
        let d = self.data.cols;
        let features: Vec<usize> = match self.cfg.max_features {
            Some(k) if k < d => crate::forest::sample_features(d, k, self.rng),
            _ => (0..d).collect(),
        };
        let mut best: Option<(usize, crate::split::Split)> = None;
        for &j in &features {
            let col = self.data.col(j);
            let mut h = ClassHistogram::new(self.data.n_bins(j), self.n_classes);
            for &r in &rows {
                h.add(col[r as usize] as usize, self.y[r as usize] as usize);
            }
            if let Some(s) = best_split(&h, self.n_root, self.cfg.min_samples_leaf)
                && best.is_none_or(|(_, b)| s.decrease > b.decrease)
            {
                best = Some((j, s));
            }
        }
        let Some((feature, split)) =
            best.filter(|(_, s)| s.decrease > 0.0 && s.decrease >= self.cfg.min_impurity_decrease)
        else {
            return self.leaf(&counts, rows.len());
        };
        let col = self.data.col(feature);
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) =
            rows.into_iter().partition(|&r| col[r as usize] as usize <= split.bin);
        let at = self.nodes.len();
        let threshold = self.data.edges[feature][split.bin];
        self.nodes.push(Node::Split { feature, bin: split.bin, threshold, left: 0, right: 0 });
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        self.nodes[at] = Node::Split { feature, bin: split.bin, threshold, left, right };
        at
    }
}
// END SOLUTION

/// Bins `x` into at most `max_bins` bins per feature and fits a tree on all its rows
/// with `rng = Rng::new(0)`. Given.
///
/// # Errors
/// Those of [`bin_features`] and [`fit_binned`].
pub fn fit(x: &Matrix, y: &[u32], cfg: &TreeConfig, max_bins: usize) -> Result<Tree> {
    let data = bin_features(x, max_bins)?;
    let n_classes = n_classes_of(y)?;
    let rows: Vec<u32> = (0..x.rows() as u32).collect();
    fit_binned(&data, y, n_classes, &rows, cfg, &mut Rng::new(0))
}

impl Tree {
    // ANCHOR: predict_row
    /// The class fractions of the leaf `row` falls into (task c3w3.tree): start at
    /// the root, go left when `row[feature] <= threshold`, right otherwise.
    ///
    /// `row` must have at least [`Tree::n_features`] values (checked by
    /// [`Tree::predict_proba`]; here a short row may panic like slice indexing).
    pub fn predict_proba_row(&self, row: &[f32]) -> &[f64] {
        // BEGIN SOLUTION c3w3.tree
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Split { feature, threshold, left, right, .. } => {
                    i = if row[*feature] <= *threshold { *left } else { *right };
                }
                Node::Leaf { proba, .. } => return proba,
            }
        }
        // END SOLUTION
    }
    // ANCHOR_END: predict_row

    // ANCHOR: predict
    /// Class probabilities of every row of `x`, row-major `rows × n_classes` (task c3w3.tree).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when `x` has another number of columns than the tree was fitted on.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f64>> {
        // BEGIN SOLUTION c3w3.tree
        if x.cols() != self.n_features {
            return invalid(format!("the tree has {} features, x has {} columns", self.n_features, x.cols()));
        }
        let mut out = Vec::with_capacity(x.rows() * self.n_classes);
        for i in 0..x.rows() {
            out.extend_from_slice(self.predict_proba_row(x.row(i)));
        }
        Ok(out)
        // END SOLUTION
    }
    // ANCHOR_END: predict

    /// The most probable class of every row (the lowest class id on ties). Given.
    ///
    /// # Errors
    /// As [`Tree::predict_proba`].
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        Ok(argmax_rows(&self.predict_proba(x)?, self.n_classes))
    }

    /// The depth: the longest path from the root to a leaf, in splits. Given.
    pub fn depth(&self) -> usize {
        fn walk(nodes: &[Node], i: usize) -> usize {
            match &nodes[i] {
                Node::Split { left, right, .. } => 1 + walk(nodes, *left).max(walk(nodes, *right)),
                Node::Leaf { .. } => 0,
            }
        }
        if self.nodes.is_empty() { 0 } else { walk(&self.nodes, 0) }
    }

    /// The number of leaves. Given.
    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n, Node::Leaf { .. })).count()
    }
}

/// The index of the largest value of each `k`-wide chunk of `proba` (the first on ties). Given.
pub fn argmax_rows(proba: &[f64], k: usize) -> Vec<u32> {
    proba.chunks_exact(k.max(1)).map(|p| (0..p.len()).fold(0, |b, j| if p[j] > p[b] { j } else { b }) as u32).collect()
}
