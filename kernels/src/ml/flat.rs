//! Tree models flattened for serving: every tree of a decision tree, random forest or gradient-boosted
//! model in one contiguous array of 16-byte nodes, walked without allocation.
//!
//! The layout follows the usual recipe for fast tree inference (e.g. Asadi, Lin & de Vries, "Runtime
//! Optimizations for Tree-Based Machine Learning Models", IEEE TKDE 26 (2014); the node arrays of
//! LightGBM's and scikit-learn's predictors): internal nodes only, depth-first so a node's left child is
//! usually the next node (the same cache line), children encoded in the parent with a leaf bit instead of
//! separate leaf nodes, and leaf values in their own array. [`FlatForest::predict_batch`] walks a block
//! of rows through one tree before moving to the next tree (the tree's top levels stay in cache for the
//! whole block) and spreads the blocks over threads with rayon. A single-output model (regression,
//! binary, boosting) instead walks each row through eight trees in lock step: the eight chains of dependent
//! loads overlap, which measured faster than blocks of rows walked one at a time. A lone walk (the trees
//! past the last group of eight, multi-output models) branches, and relies on an internal left child being
//! the next node so that a correctly predicted "left" needs no load to find its child.
//!
//! Predictions equal the unflattened model's bit for bit: the same comparisons (`x <= threshold`, NaN
//! to the node's default side), the same f32 leaf values summed in tree order in f64, and the same final
//! step (the mean for trees and forests, base score plus sum, then the sigmoid for a binary booster).

use rayon::prelude::*;

use super::Matrix;
use super::forest::RandomForest;
use super::gbm::{Gbm, Objective};
use super::tree::{DecisionTree, argmax};
use crate::{Error, Result};

/// Marks a child reference as a leaf: the low 31 bits index the leaf values.
pub const LEAF: u32 = 1 << 31;
/// In [`FlatNode::feature`]: set when rows whose feature is NaN go left.
pub const DEFAULT_LEFT: u32 = 1 << 31;

/// One internal node: 16 bytes, four to a cache line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatNode {
    /// Rows with `x[feature] <= threshold` go left.
    pub threshold: f32,
    /// The feature index, with [`DEFAULT_LEFT`] set when NaN goes left.
    pub feature: u32,
    /// The left child: a node index, or [`LEAF`] | leaf index.
    pub left: u32,
    /// The right child: a node index, or [`LEAF`] | leaf index.
    pub right: u32,
}

/// What is applied to a raw score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The raw score itself.
    Identity,
    /// `1 / (1 + e^(−raw))` (binary log-loss boosting).
    Sigmoid,
}

/// How the trees' leaf values are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    /// The mean over trees (a decision tree, a random forest).
    Mean,
    /// `link(base + Σ trees)` (gradient boosting).
    Sum {
        /// The starting score.
        base: f64,
        /// Applied to the sum.
        link: Link,
    },
}

/// A tree ensemble flattened for prediction. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatForest {
    n_features: usize,
    n_outputs: usize,
    roots: Vec<u32>,
    nodes: Vec<FlatNode>,
    leaves: Vec<f32>,
    combine: Combine,
}

/// Rows per block of [`FlatForest::predict_batch`].
const BLOCK: usize = 64;
/// Trees walked together by one row (single-output models).
const LANES: usize = 8;

/// Which values of a tree's nodes become the flat leaf values.
#[derive(Clone, Copy)]
enum Pick {
    /// All `n_outputs` values.
    All,
    /// Only value `j` (class 1 of a binary classifier).
    One(usize),
}

impl FlatForest {
    fn empty(n_features: usize, n_outputs: usize, combine: Combine) -> FlatForest {
        FlatForest { n_features, n_outputs, roots: Vec::new(), nodes: Vec::new(), leaves: Vec::new(), combine }
    }

    /// Appends `tree`, internal nodes in depth-first (preorder) order.
    fn push_tree(&mut self, tree: &DecisionTree, pick: Pick) {
        let k = tree.n_outputs();
        // (old node, new parent, 0 = root / 1 = left / 2 = right)
        let mut stack: Vec<(usize, usize, u8)> = vec![(0, 0, 0)];
        while let Some((old, parent, side)) = stack.pop() {
            let n = &tree.nodes()[old];
            let reference = if n.is_leaf() {
                let id = match pick {
                    Pick::All => self.leaves.len() / k,
                    Pick::One(_) => self.leaves.len(),
                };
                let v = tree.value(old);
                match pick {
                    Pick::All => self.leaves.extend_from_slice(v),
                    Pick::One(j) => self.leaves.push(v[j]),
                }
                LEAF | id as u32
            } else {
                let id = self.nodes.len();
                self.nodes.push(FlatNode {
                    threshold: n.threshold,
                    feature: n.feature | if n.default_left { DEFAULT_LEFT } else { 0 },
                    left: 0,
                    right: 0,
                });
                // Preorder: an internal left child is always node `id + 1` (what `walk` relies on).
                stack.push((n.right as usize, id, 2));
                stack.push((n.left as usize, id, 1));
                id as u32
            };
            match side {
                0 => self.roots.push(reference),
                1 => self.nodes[parent].left = reference,
                _ => self.nodes[parent].right = reference,
            }
        }
    }

    fn from_trees(trees: &[DecisionTree], n_features: usize, n_classes: usize, combine: Combine) -> FlatForest {
        let (n_outputs, pick) = match n_classes {
            0 => (1, Pick::All),
            2 => (1, Pick::One(1)),
            k => (k, Pick::All),
        };
        let mut f = FlatForest::empty(n_features, n_outputs, combine);
        for t in trees {
            f.push_tree(t, pick);
        }
        f
    }

    /// A single-output model from its arrays (what an importer such as [`super::lightgbm`] builds), checked:
    /// every root and child reference in range, each node's left child a leaf or the next node
    /// (preorder), each right child a leaf or a later node (so every walk ends), every feature below
    /// `n_features`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first reference or feature that breaks these rules.
    pub fn from_parts(
        n_features: usize,
        roots: Vec<u32>,
        nodes: Vec<FlatNode>,
        leaves: Vec<f32>,
        combine: Combine,
    ) -> Result<FlatForest> {
        let bad = |what: String| Err(Error::InvalidParameter(format!("flat forest: {what}")));
        let leaf_ok = |c: u32| c & LEAF != 0 && ((c & !LEAF) as usize) < leaves.len();
        for (t, &r) in roots.iter().enumerate() {
            if !(leaf_ok(r) || (r & LEAF == 0 && (r as usize) < nodes.len())) {
                return bad(format!("root of tree {t} ({r:#x}) is out of range"));
            }
        }
        for (id, n) in nodes.iter().enumerate() {
            let f = (n.feature & !DEFAULT_LEFT) as usize;
            if f >= n_features {
                return bad(format!("node {id} tests feature {f} of {n_features}"));
            }
            if !(leaf_ok(n.left) || n.left as usize == id + 1 && id + 1 < nodes.len()) {
                return bad(format!("node {id}: left child {:#x} is neither a leaf nor node {}", n.left, id + 1));
            }
            if !(leaf_ok(n.right) || (n.right & LEAF == 0 && n.right as usize > id && (n.right as usize) < nodes.len()))
            {
                return bad(format!("node {id}: right child {:#x} is neither a leaf nor a later node", n.right));
            }
        }
        Ok(FlatForest { n_features, n_outputs: 1, roots, nodes, leaves, combine })
    }

    /// Flattens a decision tree: the score is the leaf value (regression), P(class 1) (binary), or the
    /// class fractions (more classes).
    pub fn from_tree(tree: &DecisionTree) -> FlatForest {
        FlatForest::from_trees(std::slice::from_ref(tree), tree.n_features(), tree.n_classes(), Combine::Mean)
    }

    /// Flattens a random forest: the mean of the trees (as [`RandomForest::predict_proba`], class 1 only
    /// for a binary forest, or [`RandomForest::predict`] for regression).
    pub fn from_forest(forest: &RandomForest) -> FlatForest {
        FlatForest::from_trees(forest.trees(), forest.n_features(), forest.n_classes(), Combine::Mean)
    }

    /// Flattens a boosted model: P(y = 1) for binary ([`Gbm::predict_proba`]), the value for regression.
    pub fn from_gbm(gbm: &Gbm) -> FlatForest {
        let link = match gbm.objective() {
            Objective::Binary => Link::Sigmoid,
            Objective::Regression => Link::Identity,
        };
        FlatForest::from_trees(gbm.trees(), gbm.n_features(), 0, Combine::Sum { base: gbm.init_score(), link })
    }

    /// The number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores per row: 1, or the number of classes of a multi-class model.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// The internal nodes (all trees, each depth-first).
    pub fn nodes(&self) -> &[FlatNode] {
        &self.nodes
    }

    /// Each tree's root: a node index, or [`LEAF`] | leaf index for a tree that is one leaf.
    pub fn roots(&self) -> &[u32] {
        &self.roots
    }

    /// The leaf values, [`FlatForest::n_outputs`] per leaf.
    pub fn leaves(&self) -> &[f32] {
        &self.leaves
    }

    /// How the leaf values are combined.
    pub fn combine(&self) -> Combine {
        self.combine
    }

    /// Bytes held by the node and leaf arrays.
    pub fn memory_bytes(&self) -> usize {
        self.nodes.len() * size_of::<FlatNode>() + self.leaves.len() * 4 + self.roots.len() * 4
    }

    /// The leaf index `row` reaches from `root`.
    ///
    /// Branchy on purpose: an internal left child is the next node, so when the branch predictor guesses
    /// "left" the next node's address is known before the current node has been loaded, and the loads of
    /// successive levels overlap instead of forming one chain of dependent loads.
    #[inline(always)]
    fn walk(&self, root: u32, row: &[f32]) -> usize {
        let mut c = root;
        if c & LEAF != 0 {
            return (c & !LEAF) as usize;
        }
        loop {
            let n = &self.nodes[c as usize];
            let v = row[(n.feature & !DEFAULT_LEFT) as usize];
            let left = if v.is_nan() { n.feature & DEFAULT_LEFT != 0 } else { v <= n.threshold };
            if left {
                if n.left & LEAF != 0 {
                    return (n.left & !LEAF) as usize;
                }
                c += 1;
            } else {
                if n.right & LEAF != 0 {
                    return (n.right & !LEAF) as usize;
                }
                c = n.right;
            }
        }
    }

    #[inline]
    fn start(&self) -> f64 {
        match self.combine {
            Combine::Mean => 0.0,
            Combine::Sum { base, .. } => base,
        }
    }

    #[inline]
    fn finish(&self, acc: f64) -> f32 {
        finish(self.combine, self.roots.len(), acc)
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: len });
        }
        Ok(())
    }

    /// The score of output `j` for one row.
    #[inline]
    fn score(&self, row: &[f32], j: usize) -> f32 {
        let k = self.n_outputs;
        if k == 1 {
            return self.finish(self.sum_one_output(row, self.start()));
        }
        let mut acc = self.start();
        for &root in &self.roots {
            acc += self.leaves[self.walk(root, row) * k + j] as f64;
        }
        self.finish(acc)
    }

    /// The score of one row, without allocating: the value (regression), P(y = 1) (binary), or the
    /// most probable class id (multi-class; lowest on a tie).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `row` does not have [`FlatForest::n_features`] values.
    pub fn predict_row(&self, row: &[f32]) -> Result<f32> {
        self.check_len(row.len())?;
        if self.n_outputs == 1 {
            return Ok(self.score(row, 0));
        }
        let (mut best, mut best_p) = (0, f32::NEG_INFINITY);
        for j in 0..self.n_outputs {
            let p = self.score(row, j);
            if j == 0 || p > best_p {
                best = j;
                best_p = p;
            }
        }
        Ok(best as f32)
    }

    /// All [`FlatForest::n_outputs`] scores of one row (class probabilities of a multi-class model) into `out`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `row` or `out` has the wrong length.
    pub fn predict_row_into(&self, row: &[f32], out: &mut [f32]) -> Result<()> {
        self.check_len(row.len())?;
        if out.len() != self.n_outputs {
            return Err(Error::DimensionMismatch { expected: self.n_outputs, got: out.len() });
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.score(row, j);
        }
        Ok(())
    }

    /// The next child of reference `c` for `row`; a leaf reference stays where it is (and loads nothing,
    /// which measured faster than a branch-free step that re-reads node 0 for finished lanes).
    #[inline(always)]
    fn step(&self, c: u32, row: &[f32]) -> u32 {
        if c & LEAF != 0 {
            return c;
        }
        let n = &self.nodes[c as usize];
        let v = row[(n.feature & !DEFAULT_LEFT) as usize];
        // NaN compares false, so it goes left only through the default bit.
        let left = (v <= n.threshold) | (v.is_nan() & (n.feature & DEFAULT_LEFT != 0));
        [n.right, n.left][usize::from(left)]
    }

    /// `start` plus every tree's leaf value (one output) for `row`, in tree order, walking [`LANES`]
    /// trees in lock step (independent chains of loads that overlap).
    #[inline]
    fn sum_one_output(&self, row: &[f32], start: f64) -> f64 {
        let mut acc = start;
        let mut chunks = self.roots.chunks_exact(LANES);
        for roots in &mut chunks {
            let mut cur: [u32; LANES] = roots.try_into().expect("LANES roots");
            loop {
                let mut all_leaves = LEAF;
                for c in cur.iter_mut() {
                    *c = self.step(*c, row);
                    all_leaves &= *c;
                }
                if all_leaves != 0 {
                    break;
                }
            }
            for c in cur {
                acc += self.leaves[(c & !LEAF) as usize] as f64;
            }
        }
        for &root in chunks.remainder() {
            acc += self.leaves[self.walk(root, row)] as f64;
        }
        acc
    }

    /// All scores of every row, row-major `rows × n_outputs`, by blocks of rows in parallel (a single-output
    /// model walks each row through eight trees at a time; more outputs: the block tree by tree).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict_batch_all(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.check_len(x.cols())?;
        let k = self.n_outputs;
        let mut out = vec![0.0f32; x.rows() * k];
        out.par_chunks_mut(BLOCK * k).enumerate().for_each_init(
            || vec![0.0f64; BLOCK * k],
            |acc, (b, o)| {
                let first = b * BLOCK;
                let rows = o.len() / k;
                let acc = &mut acc[..rows * k];
                acc.iter_mut().for_each(|a| *a = self.start());
                if k == 1 {
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = self.sum_one_output(x.row(first + r), *a);
                    }
                } else {
                    for &root in &self.roots {
                        for r in 0..rows {
                            let leaf = self.walk(root, x.row(first + r));
                            for (a, &v) in
                                acc[r * k..(r + 1) * k].iter_mut().zip(&self.leaves[leaf * k..(leaf + 1) * k])
                            {
                                *a += v as f64;
                            }
                        }
                    }
                }
                for (o, &a) in o.iter_mut().zip(acc.iter()) {
                    *o = self.finish(a);
                }
            },
        );
        Ok(out)
    }

    /// [`FlatForest::predict_row`] for every row (blocks of rows in parallel).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for another number of columns.
    pub fn predict_batch(&self, x: &Matrix) -> Result<Vec<f32>> {
        let all = self.predict_batch_all(x)?;
        if self.n_outputs == 1 {
            return Ok(all);
        }
        Ok(all.chunks_exact(self.n_outputs).map(|p| argmax(p) as f32).collect())
    }
}

/// The score from the sum of `n_trees` leaf values (and the base score): the mean, the sum, or its sigmoid.
#[inline]
pub(crate) fn finish(combine: Combine, n_trees: usize, acc: f64) -> f32 {
    match combine {
        Combine::Mean => (acc / n_trees as f64) as f32,
        Combine::Sum { link: Link::Identity, .. } => acc as f32,
        Combine::Sum { link: Link::Sigmoid, .. } => Gbm::link(acc) as f32,
    }
}
