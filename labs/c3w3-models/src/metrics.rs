//! ROC AUC, the ranking quality of a fraud score.
//!
//! Reference: Hanley & McNeil, "The meaning and use of the area under a
//! receiver operating characteristic (ROC) curve", Radiology 143 (1982). The
//! area under the ROC curve is the probability that a random positive scores
//! above a random negative, a tie counting one half. That is the Mann–Whitney
//! statistic, computed from ranks in `O(n log n)`:
//!
//! 1. sort the scores ascending and give them ranks `1 … n`; rows with **equal**
//!    scores all get the average of the ranks they span (ties at ranks 4, 5, 6
//!    all get 5);
//! 2. with `R` the sum of the positives' ranks, `P` positives and `Q` negatives,
//!    `AUC = (R − P (P + 1) / 2) / (P · Q)`.
//!
//! The average ranks are what makes ties count one half; breaking ties by input
//! order instead would make the result depend on how the rows happen to be
//! sorted. `kernels::ml::metrics::roc_auc` and scikit-learn's `roc_auc_score`
//! give the same number.

use crate::{Result, invalid};

// ANCHOR: roc_auc
/// Area under the ROC curve of `scores` for binary `labels` (task c3w3.roc-auc, 5 points).
///
/// Accumulate in f64; sort with `f64::total_cmp`.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for lengths that differ, no rows, a label other
/// than 0 or 1, a NaN or infinite score, or only one class present (undefined).
pub fn roc_auc(labels: &[u32], scores: &[f64]) -> Result<f64> {
    todo!("c3w3.roc-auc")
}
// ANCHOR_END: roc_auc
