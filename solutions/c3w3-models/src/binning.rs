//! Quantile binning of features for histogram-based trees (given, no task).
//!
//! LightGBM (Ke et al., "LightGBM: A Highly Efficient Gradient Boosting
//! Decision Tree", NeurIPS 2017) and scikit-learn's `HistGradientBoosting*`
//! do not sort feature values at every node: they cut each feature once into
//! at most a few hundred bins and afterwards look only at bin numbers. A
//! node's split search then reads one histogram per feature (the counts of
//! each class in each bin, [`crate::split::ClassHistogram`]) instead of sorting
//! its rows, and a candidate threshold is a bin boundary.
//!
//! # The rule
//! For feature `j`, `edges[j]` is a strictly increasing list of thresholds and
//! the bin of a value `x` is the number of edges **below** it:
//! `bin(x) = edges.partition_point(|&e| e < x)`. So bin `b` holds the values with
//! `edges[b − 1] < x ≤ edges[b]`, and "bin ≤ b" is exactly "`x ≤ edges[b]`": a
//! split found on bins is a split on raw values with threshold `edges[b]`,
//! which is how a fitted tree predicts rows it has never binned.
//!
//! Edges are midpoints between consecutive distinct training values: one bin
//! per distinct value when a feature has at most `max_bins` of them, else cuts
//! at the `i/max_bins` quantiles (`i = 1 … max_bins − 1`), duplicates merged, so a
//! heavy value never straddles two bins.

use crate::{Matrix, Result, invalid};

// ANCHOR: binned
/// A matrix of bin numbers, stored column by column, with each feature's edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    /// Number of rows.
    pub rows: usize,
    /// Number of features.
    pub cols: usize,
    /// Bin numbers, column-major: feature `j` of row `i` is `bins[j * rows + i]`.
    pub bins: Vec<u8>,
    /// The edges of each feature (strictly increasing; `edges[j].len() + 1` bins).
    pub edges: Vec<Vec<f32>>,
}
// ANCHOR_END: binned

impl Binned {
    /// The bin numbers of feature `j`, one per row.
    pub fn col(&self, j: usize) -> &[u8] {
        &self.bins[j * self.rows..(j + 1) * self.rows]
    }

    /// How many bins feature `j` has.
    pub fn n_bins(&self, j: usize) -> usize {
        self.edges[j].len() + 1
    }

    /// The bin of value `x` of feature `j`.
    pub fn bin_of(&self, j: usize, x: f32) -> usize {
        self.edges[j].partition_point(|&e| e < x)
    }
}

/// The threshold between consecutive distinct values `a < b`: their midpoint in f64
/// rounded to f32, kept strictly below `b`, so `a ≤ t < b`.
fn midpoint(a: f32, b: f32) -> f32 {
    let m = (a as f64 / 2.0 + b as f64 / 2.0) as f32;
    if m >= b || !m.is_finite() { a } else { m }
}

/// The edges of one feature (see the module docs).
fn feature_edges(values: &mut [f32], max_bins: usize) -> Vec<f32> {
    values.sort_unstable_by(f32::total_cmp);
    let mut distinct: Vec<f32> = values.to_vec();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect();
    }
    let n = values.len();
    let mut edges: Vec<f32> = Vec::with_capacity(max_bins);
    for i in 1..max_bins {
        let v = values[(i * n / max_bins).saturating_sub(1)];
        let p = distinct.partition_point(|&d| d < v);
        if p + 1 < distinct.len() {
            let e = midpoint(distinct[p], distinct[p + 1]);
            if edges.last().is_none_or(|&last| e > last) {
                edges.push(e);
            }
        }
    }
    edges
}

/// Bins every feature of `x` into at most `max_bins` bins (`2..=256`).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for `max_bins` outside `2..=256`, no rows, or a
/// NaN or infinite value (this lab's trees have no missing-value rule).
pub fn bin_features(x: &Matrix, max_bins: usize) -> Result<Binned> {
    if !(2..=256).contains(&max_bins) {
        return invalid(format!("max_bins must be in 2..=256, got {max_bins}"));
    }
    if x.rows() == 0 {
        return invalid("cannot bin a matrix without rows");
    }
    if let Some((i, j)) = x.first_non_finite() {
        return invalid(format!("x[{i}][{j}] is {} (features must be finite)", x.get(i, j)));
    }
    let (rows, cols) = (x.rows(), x.cols());
    let mut bins = vec![0u8; rows * cols];
    let mut edges = Vec::with_capacity(cols);
    for j in 0..cols {
        let mut col = x.column(j);
        let e = feature_edges(&mut col, max_bins);
        for i in 0..rows {
            bins[j * rows + i] = e.partition_point(|&t| t < x.get(i, j)) as u8;
        }
        edges.push(e);
    }
    Ok(Binned { rows, cols, bins, edges })
}
