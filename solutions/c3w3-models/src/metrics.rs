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
    // BEGIN SOLUTION c3w3.roc-auc
    if labels.len() != scores.len() || labels.is_empty() {
        return invalid(format!("{} labels and {} scores", labels.len(), scores.len()));
    }
    if labels.iter().any(|&l| l > 1) {
        return invalid("binary labels are 0 or 1");
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return invalid(format!("scores[{i}] is {}", scores[i]));
    }
    let n = labels.len();
    let p = labels.iter().filter(|&&l| l == 1).count();
    if p == 0 || p == n {
        return invalid(format!("ROC AUC is undefined with one class ({p} positives of {n})"));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * order[i..=j].iter().filter(|&&t| labels[t] == 1).count() as f64;
        i = j + 1;
    }
    let (p, q) = (p as f64, (n - p) as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
    // END SOLUTION
}
// ANCHOR_END: roc_auc
