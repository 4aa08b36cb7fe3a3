//! One round of gradient boosting for binary log-loss, the Newton step that
//! LightGBM and XGBoost take.
//!
//! References: Friedman, "Greedy Function Approximation: A Gradient Boosting
//! Machine", Annals of Statistics 29 (2001); Chen & Guestrin, "XGBoost", KDD
//! 2016 (second-order leaf values); Ke et al., "LightGBM", NeurIPS 2017.
//!
//! A boosted model keeps a **raw score** `F(x)` per row (the log-odds of class 1).
//! It starts at the log-odds of the base rate ([`init_score`]) and each round adds
//! one small tree. With `p = σ(F) = 1 / (1 + e^(−F))` the log-loss of a row with
//! label `y ∈ {0, 1}` has
//!
//! - gradient `g = p − y` (the derivative in `F`),
//! - hessian `h = p (1 − p)` (the second derivative).
//!
//! A tree partitions the rows into leaves (here given to you as `leaf_of_row`). In
//! a leaf with gradient sum `G` and hessian sum `H`, the second-order Taylor
//! expansion of the loss plus an L2 penalty `λ/2 · w²` is minimised by
//! `w* = −G / (H + λ)`; shrunk by the learning rate `η`, the leaf value is
//! `−G / (H + λ) · η`, and every row of that leaf adds it to its raw score.
//!
//! The production booster is `kernels::ml::gbm` (which also finds the
//! partition: histograms, leaf-wise growth).

use crate::{Result, invalid};

// ANCHOR: round_config
/// Settings of one boosting round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundConfig {
    /// Shrinkage `η` applied to every leaf value, in `(0, ∞)`.
    pub learning_rate: f64,
    /// L2 penalty `λ` on leaf values, `≥ 0`.
    pub lambda_l2: f64,
}
// ANCHOR_END: round_config

impl Default for RoundConfig {
    fn default() -> Self {
        RoundConfig { learning_rate: 0.1, lambda_l2: 0.0 }
    }
}

// ANCHOR: sigmoid
/// The logistic function `1 / (1 + e^(−z))`, computed without overflow for any finite `z`
/// (task c3w3.gbm-round): for `z < 0` use `e^z / (1 + e^z)`.
pub fn sigmoid(z: f64) -> f64 {
    // BEGIN SOLUTION c3w3.gbm-round
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
    // END SOLUTION
}

/// The starting raw score: the log-odds `ln(p / (1 − p))` of the share `p` of
/// labels equal to 1 (task c3w3.gbm-round).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for no labels, a label other than 0 or 1, or a
/// single class (the log-odds would be infinite).
pub fn init_score(y: &[u32]) -> Result<f64> {
    // BEGIN SOLUTION c3w3.gbm-round
    check_labels(y)?;
    let pos = y.iter().filter(|&&v| v == 1).count();
    if pos == 0 || pos == y.len() {
        return invalid(format!("{pos} positives of {}: the log-odds of one class is infinite", y.len()));
    }
    let p = pos as f64 / y.len() as f64;
    Ok((p / (1.0 - p)).ln())
    // END SOLUTION
}
// ANCHOR_END: sigmoid

// BEGIN SOLUTION c3w3.gbm-round delete
fn check_labels(y: &[u32]) -> Result<()> {
    if y.is_empty() {
        return invalid("no labels");
    }
    if let Some(i) = y.iter().position(|&v| v > 1) {
        return invalid(format!("y[{i}] is {}; binary labels are 0 or 1", y[i]));
    }
    Ok(())
}
// END SOLUTION

// ANCHOR: gradients
/// Gradients `p − y` and hessians `p (1 − p)` of the log-loss at raw scores `raw`,
/// with `p = `[`sigmoid`]`(raw)` (task c3w3.gbm-round).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for lengths that differ, a label other than 0 or 1,
/// or a non-finite raw score.
pub fn gradients(y: &[u32], raw: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    // BEGIN SOLUTION c3w3.gbm-round
    if y.len() != raw.len() {
        return invalid(format!("{} labels, {} raw scores", y.len(), raw.len()));
    }
    if y.iter().any(|&v| v > 1) {
        return invalid("binary labels are 0 or 1");
    }
    if let Some(i) = raw.iter().position(|r| !r.is_finite()) {
        return invalid(format!("raw[{i}] is {}", raw[i]));
    }
    Ok(y.iter()
        .zip(raw)
        .map(|(&t, &f)| {
            let p = sigmoid(f);
            (p - t as f64, p * (1.0 - p))
        })
        .unzip())
    // END SOLUTION
}
// ANCHOR_END: gradients

// ANCHOR: leaf_values
/// The value of each of `n_leaves` leaves, `−G / (H + λ) · η`, where `G` and `H` sum
/// `g` and `h` over the rows `i` with `leaf_of_row[i] == leaf` (task c3w3.gbm-round).
/// A leaf without rows, or with `H + λ == 0`, gets 0.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for lengths that differ, a leaf id `>= n_leaves`,
/// or a config outside its documented range.
pub fn leaf_values(
    g: &[f64],
    h: &[f64],
    leaf_of_row: &[usize],
    n_leaves: usize,
    cfg: &RoundConfig,
) -> Result<Vec<f64>> {
    // BEGIN SOLUTION c3w3.gbm-round
    if g.len() != h.len() || g.len() != leaf_of_row.len() {
        return invalid(format!("{} gradients, {} hessians, {} leaf ids", g.len(), h.len(), leaf_of_row.len()));
    }
    let in_range =
        cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite() && cfg.lambda_l2 >= 0.0 && cfg.lambda_l2.is_finite();
    if !in_range {
        return invalid(format!("learning_rate must be > 0 and lambda_l2 >= 0, got {cfg:?}"));
    }
    let mut sg = vec![0.0; n_leaves];
    let mut sh = vec![0.0; n_leaves];
    for ((&gi, &hi), &l) in g.iter().zip(h).zip(leaf_of_row) {
        if l >= n_leaves {
            return invalid(format!("leaf id {l} is not below n_leaves = {n_leaves}"));
        }
        sg[l] += gi;
        sh[l] += hi;
    }
    Ok(sg
        .iter()
        .zip(&sh)
        .map(|(&gs, &hs)| {
            let denom = hs + cfg.lambda_l2;
            if denom > 0.0 { -gs / denom * cfg.learning_rate } else { 0.0 }
        })
        .collect())
    // END SOLUTION
}
// ANCHOR_END: leaf_values

// ANCHOR: boost_round
/// One boosting round (task c3w3.gbm-round): the [`gradients`] at `raw`, the
/// [`leaf_values`] of the given partition, then `raw[i] += value[leaf_of_row[i]]`
/// for every row. Returns the leaf values. On an error `raw` is left unchanged.
///
/// # Errors
/// Those of [`gradients`] and [`leaf_values`].
pub fn boost_round(
    y: &[u32],
    raw: &mut [f64],
    leaf_of_row: &[usize],
    n_leaves: usize,
    cfg: &RoundConfig,
) -> Result<Vec<f64>> {
    // BEGIN SOLUTION c3w3.gbm-round
    let (g, h) = gradients(y, raw)?;
    let values = leaf_values(&g, &h, leaf_of_row, n_leaves, cfg)?;
    for (r, &l) in raw.iter_mut().zip(leaf_of_row) {
        *r += values[l];
    }
    Ok(values)
    // END SOLUTION
}
// ANCHOR_END: boost_round
