//! Random forests: many trees, each grown on a bootstrap sample of the rows and
//! a random subset of the features at every node, their probabilities averaged.
//!
//! Reference: Breiman, "Random Forests", Machine Learning 45 (2001). Bagging
//! (Breiman 1996) lowers the variance of deep trees by averaging trees grown on
//! resampled data; drawing the candidate features at random per node
//! decorrelates the trees further, so the average improves more.
//!
//! # The draws, exactly
//! Everything random comes from [`Rng`], so a seed fixes the forest. Tree `t`
//! (counting from 0) uses its own stream `Rng::fork(cfg.seed, t)`:
//! 1. its bootstrap sample is [`bootstrap`]`(n, &mut rng)`: `n` draws
//!    `rng.below(n)`, kept in draw order;
//! 2. the same `rng` then grows the tree with [`crate::tree::fit_binned`], which
//!    calls [`sample_features`] at every node it tries to split.
//!
//! # Out-of-bag rows
//! About `(1 − 1/n)ⁿ ≈ 36.8%` of the rows are never drawn for a given tree: its
//! out-of-bag rows ([`out_of_bag`]). Predicting each row with only the trees
//! that did not see it gives an honest error estimate without a held-out set
//! (scikit-learn's `oob_score_`).
//!
//! The production forest is `kernels::ml::forest` (exact splits, rayon); the
//! hidden tests compare your forest's ROC AUC with it on the same data.

use crate::binning::bin_features;
use crate::rng::Rng;
use crate::tree::{Tree, TreeConfig, argmax_rows, fit_binned, n_classes_of};
use crate::{Matrix, Result, invalid};

// ANCHOR: forest_config
/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForestConfig {
    /// Number of trees (at least 1).
    pub n_trees: usize,
    /// Settings of every tree; `tree.max_features` of `None` means `⌊√d⌋` (at least 1) here.
    pub tree: TreeConfig,
    /// Bins per feature for [`bin_features`] (`2..=256`).
    pub max_bins: usize,
    /// Seed of every draw.
    pub seed: u64,
}
// ANCHOR_END: forest_config

impl Default for ForestConfig {
    fn default() -> Self {
        ForestConfig {
            n_trees: 100,
            tree: TreeConfig { max_depth: 12, ..TreeConfig::default() },
            max_bins: 64,
            seed: 0,
        }
    }
}

/// A fitted forest.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    /// The trees, tree `t` at index `t`.
    pub trees: Vec<Tree>,
    /// The bootstrap sample of each tree (what [`bootstrap`] drew).
    pub samples: Vec<Vec<u32>>,
    /// Number of classes.
    pub n_classes: usize,
    /// Number of features.
    pub n_features: usize,
}

// ANCHOR: draws
/// A bootstrap sample of `n` rows (task c3w3.forest): `n` draws `rng.below(n)`,
/// in draw order (repeats kept). `n == 0` gives an empty sample.
pub fn bootstrap(n: usize, rng: &mut Rng) -> Vec<u32> {
    // BEGIN SOLUTION c3w3.forest
    (0..n).map(|_| rng.below(n) as u32).collect()
    // END SOLUTION
}

/// The rows of `0..n` that `sample` never drew, ascending (task c3w3.forest).
/// Entries of `sample` at or above `n` are ignored.
pub fn out_of_bag(n: usize, sample: &[u32]) -> Vec<u32> {
    // BEGIN SOLUTION c3w3.forest
    let mut seen = vec![false; n];
    for &r in sample {
        if let Some(s) = seen.get_mut(r as usize) {
            *s = true;
        }
    }
    (0..n as u32).filter(|&r| !seen[r as usize]).collect()
    // END SOLUTION
}

/// `k` distinct features of `0..d` drawn at random (task c3w3.forest), by a partial
/// Fisher–Yates shuffle: start from `[0, 1, …, d − 1]`; for `i = 0 … k − 1` swap
/// position `i` with position `i + rng.below(d − i)`; return the first `k`
/// (in that order). `k` is capped at `d`.
pub fn sample_features(d: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    // BEGIN SOLUTION c3w3.forest
    let k = k.min(d);
    let mut all: Vec<usize> = (0..d).collect();
    for i in 0..k {
        let j = i + rng.below(d - i);
        all.swap(i, j);
    }
    all.truncate(k);
    all
    // END SOLUTION
}
// ANCHOR_END: draws

// ANCHOR: forest_fit
/// Fits a forest (task c3w3.forest): bin `x` once with [`bin_features`]`(x, cfg.max_bins)`,
/// then grow tree `t` as the module docs say (with `max_features` defaulting to
/// `⌊√d⌋`, at least 1). Trees are independent: growing them on several threads
/// (`std::thread::scope`) gives the same forest, since each has its own stream.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for `n_trees == 0`, `y` not one label per row, and
/// the errors of binning and of [`fit_binned`].
pub fn fit(x: &Matrix, y: &[u32], cfg: &ForestConfig) -> Result<Forest> {
    // BEGIN SOLUTION c3w3.forest
    if cfg.n_trees == 0 {
        return invalid("a forest needs at least one tree");
    }
    if y.len() != x.rows() {
        return invalid(format!("{} labels for {} rows", y.len(), x.rows()));
    }
    crate::tree::check_config(&cfg.tree)?;
    let data = bin_features(x, cfg.max_bins)?;
    let n_classes = n_classes_of(y)?;
    let d = x.cols();
    let k = cfg.tree.max_features.unwrap_or(((d as f64).sqrt() as usize).max(1));
    let tree_cfg = TreeConfig { max_features: Some(k), ..cfg.tree.clone() };
    let n = x.rows();
    type Grown = Result<(Tree, Vec<u32>)>;
    let grow = |t: usize| -> Grown {
        let mut rng = Rng::fork(cfg.seed, t as u64);
        let sample = bootstrap(n, &mut rng);
        let tree = fit_binned(&data, y, n_classes, &sample, &tree_cfg, &mut rng)?;
        Ok((tree, sample))
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(cfg.n_trees);
    let mut slots: Vec<Option<Grown>> = (0..cfg.n_trees).map(|_| None).collect();
    std::thread::scope(|s| {
        for (w, chunk) in slots.chunks_mut(cfg.n_trees.div_ceil(threads)).enumerate() {
            let grow = &grow;
            let first = w * cfg.n_trees.div_ceil(threads);
            s.spawn(move || {
                for (o, slot) in chunk.iter_mut().enumerate() {
                    *slot = Some(grow(first + o));
                }
            });
        }
    });
    let mut trees = Vec::with_capacity(cfg.n_trees);
    let mut samples = Vec::with_capacity(cfg.n_trees);
    for slot in slots {
        let (tree, sample) = slot.expect("every tree was grown")?;
        trees.push(tree);
        samples.push(sample);
    }
    Ok(Forest { trees, samples, n_classes, n_features: d })
    // END SOLUTION
}
// ANCHOR_END: forest_fit

impl Forest {
    // ANCHOR: forest_predict
    /// Class probabilities, row-major `rows × n_classes`: for each row, the mean over
    /// the trees of [`Tree::predict_proba_row`] (task c3w3.forest).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when `x` has another number of columns.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f64>> {
        // BEGIN SOLUTION c3w3.forest
        if x.cols() != self.n_features {
            return invalid(format!("the forest has {} features, x has {} columns", self.n_features, x.cols()));
        }
        let k = self.n_classes;
        let mut out = vec![0.0; x.rows() * k];
        let scale = 1.0 / self.trees.len() as f64;
        for (i, o) in out.chunks_exact_mut(k).enumerate() {
            let row = x.row(i);
            for t in &self.trees {
                for (a, p) in o.iter_mut().zip(t.predict_proba_row(row)) {
                    *a += p;
                }
            }
            o.iter_mut().for_each(|a| *a *= scale);
        }
        Ok(out)
        // END SOLUTION
    }
    // ANCHOR_END: forest_predict

    /// The most probable class of every row. Given.
    ///
    /// # Errors
    /// As [`Forest::predict_proba`].
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        Ok(argmax_rows(&self.predict_proba(x)?, self.n_classes))
    }
}
