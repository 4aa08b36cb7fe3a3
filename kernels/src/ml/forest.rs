//! Random forests: bagged CART trees with a random feature subset per node, trained in parallel.
//!
//! Reference: Breiman, "Random Forests", Machine Learning 45 (2001): each tree is grown on a
//! bootstrap sample of the rows (drawn with replacement, as many as there are rows) and considers a
//! random subset of `max_features` features at every node; the forest averages the trees' class
//! probabilities (or values). The rows a tree did not draw are its out-of-bag rows: averaging only the
//! trees that did not see a row gives an honest estimate of the generalisation error (accuracy for a
//! classifier, R² for a regressor), scikit-learn's `oob_score_`.
//!
//! Trees are grown by the histogram splitter by default ([`Splitter::Histogram`], the features binned
//! once for the whole forest; Ke et al., "LightGBM", NeurIPS 2017), or by the exact sorted search.
//! Trees are trained in parallel with rayon. Tree `t` draws its bootstrap and its feature subsets from
//! seeds derived from `(seed, t)` alone, and predictions sum the trees in index order in f64, so the
//! forest and its predictions are the same whatever the number of threads.

use rayon::prelude::*;

use super::Matrix;
use super::gbm::Binned;
use super::hist::{self, HistInput};
use super::io::{Parts, Persist};
use super::tree::{self, Columns, Criterion, DecisionTree, MaxFeatures, SplitMix64, Splitter, TreeConfig};
use crate::{Error, Result};

/// Settings of [`fit`] (defaults: scikit-learn's `RandomForestClassifier`).
#[derive(Debug, Clone, PartialEq)]
pub struct ForestConfig {
    /// Number of trees (at least 1).
    pub n_trees: usize,
    /// Settings of every tree (criterion, depth and leaf limits); its `max_features`, `seed` and
    /// `splitter` are replaced by the forest's.
    pub tree: TreeConfig,
    /// Features considered per node; `None`: √d for classification, all for regression (scikit-learn's defaults).
    pub max_features: Option<MaxFeatures>,
    /// Grow each tree on a bootstrap sample (`false`: every tree sees every row).
    pub bootstrap: bool,
    /// Seed of the bootstrap samples and feature subsets.
    pub seed: u64,
    /// Compute the out-of-bag score (needs `bootstrap`).
    pub oob_score: bool,
    /// The split search of every tree (replaces `tree.splitter`): histograms on 255 bins by
    /// default, the features binned once for the whole forest; [`Splitter::Exact`] for
    /// scikit-learn's sorted search.
    pub splitter: Splitter,
}

impl Default for ForestConfig {
    fn default() -> Self {
        ForestConfig {
            n_trees: 100,
            tree: TreeConfig::default(),
            max_features: None,
            bootstrap: true,
            seed: 0,
            oob_score: false,
            splitter: Splitter::HISTOGRAM,
        }
    }
}

/// A fitted random forest.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomForest {
    pub(crate) trees: Vec<DecisionTree>,
    pub(crate) n_features: usize,
    pub(crate) n_classes: usize,
    pub(crate) criterion: Criterion,
    pub(crate) oob_score: Option<f64>,
}

/// Salt separating a tree's feature-subset stream from its bootstrap stream.
const FEATURE_STREAM: u64 = 0x6A09_E667_F3BC_C908;

/// The rows tree `t` is grown on.
fn bootstrap_rows(seed: u64, t: usize, n: usize, bootstrap: bool) -> Vec<u32> {
    if !bootstrap {
        return (0..n as u32).collect();
    }
    let mut rng = SplitMix64::new(SplitMix64::derive(seed, t as u64));
    (0..n).map(|_| rng.below(n) as u32).collect()
}

/// Fits a random forest to `x` (NaN = missing) and `y` (class ids for Gini/entropy, values for MSE).
///
/// # Errors
/// Those of [`tree::fit`]; [`Error::InvalidParameter`] for `n_trees == 0` or `oob_score` without `bootstrap`.
pub fn fit(x: &Matrix, y: &[f32], cfg: &ForestConfig) -> Result<RandomForest> {
    if cfg.n_trees == 0 {
        return Err(Error::InvalidParameter("a forest needs n_trees >= 1".into()));
    }
    if cfg.oob_score && !cfg.bootstrap {
        return Err(Error::InvalidParameter("oob_score needs bootstrap = true".into()));
    }
    tree::check_tree_config(&cfg.tree)?;
    cfg.splitter.check()?;
    let classify = cfg.tree.criterion.is_classification();
    let n_classes = tree::check_training(x, y, classify)?;
    let mf = cfg.max_features.unwrap_or(if classify { MaxFeatures::Sqrt } else { MaxFeatures::All });
    let max_features = mf.resolve(x.cols())?;
    let n = x.rows();
    let tree_cfg = TreeConfig { max_features: mf, splitter: cfg.splitter, ..cfg.tree.clone() };
    let seed_of = |t: usize| SplitMix64::derive(cfg.seed ^ FEATURE_STREAM, t as u64);
    // One tree per rayon task (each tree is sequential, so the forest does not depend on the threads).
    let trees: Vec<DecisionTree> = match cfg.splitter {
        Splitter::Exact => {
            let cols = Columns::new(x);
            (0..cfg.n_trees)
                .into_par_iter()
                .with_max_len(1)
                .map(|t| {
                    let rows = bootstrap_rows(cfg.seed, t, n, cfg.bootstrap);
                    tree::fit_rows(&cols, y, rows, n_classes, &tree_cfg, max_features, seed_of(t))
                })
                .collect()
        }
        Splitter::Histogram { max_bins } => {
            let data = Binned::new(x, max_bins);
            let input = HistInput { data: &data, y, n_classes };
            (0..cfg.n_trees)
                .into_par_iter()
                .with_max_len(1)
                .map(|t| {
                    let rows = bootstrap_rows(cfg.seed, t, n, cfg.bootstrap);
                    hist::fit_rows(&input, &rows, &tree_cfg, max_features, seed_of(t))
                })
                .collect()
        }
    };
    let mut forest =
        RandomForest { trees, n_features: x.cols(), n_classes, criterion: cfg.tree.criterion, oob_score: None };
    if cfg.oob_score {
        forest.oob_score = Some(forest.oob(x, y, cfg.seed));
    }
    Ok(forest)
}

impl RandomForest {
    /// Accuracy (classifier) or R² (regressor) of the out-of-bag predictions, over the rows that
    /// at least one tree left out (NaN when no row was ever left out).
    fn oob(&self, x: &Matrix, y: &[f32], seed: u64) -> f64 {
        let n = x.rows();
        let k = self.n_outputs();
        let mut acc = vec![0.0f64; n * k];
        let mut votes = vec![0u32; n];
        let mut in_bag = vec![false; n];
        for (t, tree) in self.trees.iter().enumerate() {
            in_bag.iter_mut().for_each(|b| *b = false);
            for r in bootstrap_rows(seed, t, n, true) {
                in_bag[r as usize] = true;
            }
            for i in (0..n).filter(|&i| !in_bag[i]) {
                let v = tree.value(tree.leaf_index(x.row(i)));
                for (a, &p) in acc[i * k..(i + 1) * k].iter_mut().zip(v) {
                    *a += p as f64;
                }
                votes[i] += 1;
            }
        }
        let rows: Vec<usize> = (0..n).filter(|&i| votes[i] > 0).collect();
        if rows.is_empty() {
            return f64::NAN;
        }
        if self.n_classes > 0 {
            let correct = rows
                .iter()
                .filter(|&&i| {
                    let a = &acc[i * k..(i + 1) * k];
                    let best = (0..k).fold(0, |b, j| if a[j] > a[b] { j } else { b });
                    best as f32 == y[i]
                })
                .count();
            correct as f64 / rows.len() as f64
        } else {
            let pred: Vec<f64> = rows.iter().map(|&i| acc[i] / votes[i] as f64).collect();
            let mean = rows.iter().map(|&i| y[i] as f64).sum::<f64>() / rows.len() as f64;
            let ss_res: f64 = rows.iter().zip(&pred).map(|(&i, p)| (y[i] as f64 - p).powi(2)).sum();
            let ss_tot: f64 = rows.iter().map(|&i| (y[i] as f64 - mean).powi(2)).sum();
            if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { f64::NAN }
        }
    }

    /// The trees, in training order.
    pub fn trees(&self) -> &[DecisionTree] {
        &self.trees
    }

    /// The number of features the forest was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The number of classes (0 for a regression forest).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Values per prediction: the number of classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        self.n_classes.max(1)
    }

    /// The out-of-bag score (accuracy or R²) when fitted with `oob_score`.
    pub fn oob_score(&self) -> Option<f64> {
        self.oob_score
    }

    /// The mean over trees of [`DecisionTree::feature_importances`].
    pub fn feature_importances(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.n_features];
        for t in &self.trees {
            for (a, b) in imp.iter_mut().zip(t.feature_importances()) {
                *a += b;
            }
        }
        imp.iter_mut().for_each(|v| *v /= self.trees.len() as f64);
        imp
    }

    /// The averaged leaf values, row-major `rows × n_outputs` (the trees summed in order in f64, then
    /// divided by their number).
    fn average(&self, x: &Matrix) -> Result<Vec<f32>> {
        if x.cols() != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: x.cols() });
        }
        let k = self.n_outputs();
        let mut out = vec![0.0f32; x.rows() * k];
        let n_trees = self.trees.len() as f64;
        out.par_chunks_mut(k).enumerate().for_each_init(
            || vec![0.0f64; k],
            |acc, (i, o)| {
                acc.iter_mut().for_each(|a| *a = 0.0);
                let row = x.row(i);
                for t in &self.trees {
                    for (a, &v) in acc.iter_mut().zip(t.value(t.leaf_index(row))) {
                        *a += v as f64;
                    }
                }
                for (o, a) in o.iter_mut().zip(acc.iter()) {
                    *o = (*a / n_trees) as f32;
                }
            },
        );
        Ok(out)
    }

    /// Class probabilities, row-major `rows × n_classes`: the mean of the trees' leaf fractions.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns; [`Error::InvalidParameter`] on a
    /// regression forest.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f32>> {
        if self.n_classes == 0 {
            return Err(Error::InvalidParameter("predict_proba on a regression forest".into()));
        }
        self.average(x)
    }

    /// Predictions: the most probable class id for a classifier, the mean of the trees for a regressor.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f32>> {
        let avg = self.average(x)?;
        if self.n_classes == 0 {
            return Ok(avg);
        }
        Ok(avg.chunks_exact(self.n_classes).map(|p| tree::argmax(p) as f32).collect())
    }
}

impl Persist for RandomForest {
    const KIND: &'static str = "forest";

    fn to_parts(&self) -> Parts {
        let mut arrays = Vec::new();
        tree::trees_to_arrays(&self.trees, self.n_outputs(), &mut arrays);
        Parts {
            params: serde_json::json!({
                "n_features": self.n_features,
                "n_classes": self.n_classes,
                "criterion": tree::criterion_name(self.criterion),
                "n_trees": self.trees.len(),
                "oob_score": self.oob_score.filter(|v| v.is_finite()),
            }),
            arrays,
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let criterion = tree::criterion_param(&parts)?;
        let (n_features, n_classes) = tree::check_classes(&parts, criterion)?;
        let trees = tree::trees_from_parts(&parts, n_features, n_classes, criterion)?;
        let oob_score = parts.params.get("oob_score").and_then(|v| v.as_f64());
        Ok(RandomForest { trees, n_features, n_classes, criterion, oob_score })
    }
}
