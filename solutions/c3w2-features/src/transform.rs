//! Feature transforms with a **fit/apply split**: parameters are fitted on the
//! training column only, stored as plain structs, and applied unchanged to any
//! later column (validation, test, serving).
//!
//! The split is what keeps statistics of the future out of the past: a scaler
//! fitted on the whole data set has seen the test rows' mean and range, and the
//! model's offline score is then better than anything it can do in production.
//! It is also what makes training and serving agree: the online service loads
//! the fitted struct and applies exactly the same arithmetic.
//!
//! All of task c3w2.transforms (10 points) is in this file: the `fit` and
//! `apply` of [`Standardizer`], [`MinMaxScaler`], [`QuantileBinner`] and
//! [`OneHotEncoder`], and [`log1p`]. Numeric transforms keep nulls null and NaN
//! NaN (apply `f` to every slot with `col.unary(f)`: it keeps the validity bitmap
//! as it is). The production versions are in `kernels::data::transform`; the
//! hidden tests compare yours with them.

use std::collections::HashMap;

use arrow::array::{Array, Float64Array, StringArray, UInt8Array, UInt32Array};

use crate::stats::{column_stats, quantiles};

// ANCHOR: standardizer
/// `(x − mean) / std` with the training column's mean and **population** std.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardizer {
    /// Training mean.
    pub mean: f64,
    /// Training population standard deviation.
    pub std: f64,
}

impl Standardizer {
    /// Fits on the valid values of `train` (use your [`column_stats`]).
    pub fn fit(train: &Float64Array) -> Standardizer {
        // BEGIN SOLUTION c3w2.transforms
        let s = column_stats(train);
        Standardizer { mean: s.mean, std: s.std() }
        // END SOLUTION
    }

    /// Applies to any column: `(x − mean) / std`, nulls stay null. A constant
    /// training column (std 0) maps every value to 0 instead of dividing by zero.
    pub fn apply(&self, col: &Float64Array) -> Float64Array {
        // BEGIN SOLUTION c3w2.transforms
        let (m, s) = (self.mean, self.std);
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        col.unary(|x| (x - m) * inv)
        // END SOLUTION
    }
}
// ANCHOR_END: standardizer

/// `(x − min) / (max − min)`: the training range onto `[0, 1]`. Later values
/// may fall outside `[0, 1]`: do **not** clip them (the model should see that
/// the value is out of the training range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMaxScaler {
    /// Training minimum.
    pub min: f64,
    /// Training maximum.
    pub max: f64,
}

impl MinMaxScaler {
    /// Fits on the valid values of `train`.
    pub fn fit(train: &Float64Array) -> MinMaxScaler {
        // BEGIN SOLUTION c3w2.transforms
        let s = column_stats(train);
        MinMaxScaler { min: s.min, max: s.max }
        // END SOLUTION
    }

    /// Applies to any column; a constant training column maps everything to 0.
    pub fn apply(&self, col: &Float64Array) -> Float64Array {
        // BEGIN SOLUTION c3w2.transforms
        let (lo, range) = (self.min, self.max - self.min);
        let inv = if range > 0.0 { 1.0 / range } else { 0.0 };
        col.unary(|x| (x - lo) * inv)
        // END SOLUTION
    }
}

// ANCHOR: binner
/// Equal-frequency bins. `edges` are the training quantiles `1/k, 2/k, …,
/// (k−1)/k` with duplicates removed (a skewed column may get fewer than `k`
/// bins), strictly increasing. The bin of `x` is the number of edges `≤ x`,
/// in `0..=edges.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileBinner {
    /// Interior cut points, strictly increasing.
    pub edges: Vec<f64>,
}

impl QuantileBinner {
    /// Fits `bins` equal-frequency bins on `train` with your exact
    /// [`quantiles`]. A training column without valid values gives no edges
    /// (one bin). `bins == 0` is `Err(Error::InvalidParameter(..))`.
    pub fn fit(train: &Float64Array, bins: usize) -> crate::Result<QuantileBinner> {
        // BEGIN SOLUTION c3w2.transforms
        if bins == 0 {
            return Err(crate::Error::InvalidParameter("quantile binning needs at least one bin".into()));
        }
        let qs: Vec<f64> = (1..bins).map(|i| i as f64 / bins as f64).collect();
        let mut edges: Vec<f64> = quantiles(train, &qs)?.into_iter().filter(|e| !e.is_nan()).collect();
        edges.dedup();
        Ok(QuantileBinner { edges })
        // END SOLUTION
    }

    /// Number of bins (`edges.len() + 1`). Given.
    pub fn bins(&self) -> usize {
        self.edges.len() + 1
    }

    /// The bin of every value (`partition_point` on the edges finds it in
    /// O(log k)); null **and NaN** give null.
    pub fn apply(&self, col: &Float64Array) -> UInt32Array {
        // BEGIN SOLUTION c3w2.transforms
        col.iter().map(|v| v.filter(|x| !x.is_nan()).map(|x| self.edges.partition_point(|&e| e <= x) as u32)).collect()
        // END SOLUTION
    }
}
// ANCHOR_END: binner

/// One indicator column per training category (`UInt8`, 0 or 1).
///
/// Categories are kept in order of **falling training frequency, ties by name**
/// (ascending), at most `max_categories` of them. A category that was not kept,
/// one never seen in training, and null all get all zeros (no error: unseen
/// values are normal at serving time).
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotEncoder {
    /// The kept categories; indicator `i` is 1 for `categories[i]`.
    pub categories: Vec<String>,
}

impl OneHotEncoder {
    /// Fits on a string column (nulls are not a category).
    pub fn fit(train: &StringArray, max_categories: Option<usize>) -> OneHotEncoder {
        // BEGIN SOLUTION c3w2.transforms
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for s in train.iter().flatten() {
            *counts.entry(s).or_default() += 1;
        }
        let mut cats: Vec<(&str, usize)> = counts.into_iter().collect();
        cats.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        cats.truncate(max_categories.unwrap_or(usize::MAX));
        OneHotEncoder { categories: cats.into_iter().map(|(c, _)| c.to_string()).collect() }
        // END SOLUTION
    }

    /// One indicator array per category, in [`Self::categories`] order, each as
    /// long as `col`. No nulls in the output.
    pub fn apply(&self, col: &StringArray) -> Vec<UInt8Array> {
        // BEGIN SOLUTION c3w2.transforms
        let index: HashMap<&str, usize> = self.categories.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let mut out = vec![vec![0u8; col.len()]; self.categories.len()];
        for (row, v) in col.iter().enumerate() {
            if let Some(&k) = v.and_then(|s| index.get(s)) {
                out[k][row] = 1;
            }
        }
        out.into_iter().map(UInt8Array::from).collect()
        // END SOLUTION
    }
}

/// `ln(1 + x)` of every value (for heavy-tailed, non-negative features such as
/// amounts); nulls stay null, NaN stays NaN. Use `f64::ln_1p`, which is exact
/// for tiny `x` where `(1.0 + x).ln()` is not. A valid value below −1 has no
/// logarithm: `Err(Error::InvalidParameter(..))` naming the row.
pub fn log1p(col: &Float64Array) -> crate::Result<Float64Array> {
    // BEGIN SOLUTION c3w2.transforms
    if let Some((row, x)) = col.iter().enumerate().find_map(|(i, v)| v.filter(|&x| x < -1.0).map(|x| (i, x))) {
        return Err(crate::Error::InvalidParameter(format!(
            "log1p of {x} (row {row}) is undefined: values must be ≥ −1"
        )));
    }
    Ok(col.unary(f64::ln_1p))
    // END SOLUTION
}
