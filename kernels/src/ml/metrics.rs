//! Evaluation metrics of classifiers and regressors, equal to scikit-learn's `sklearn.metrics`
//! (`roc_auc_score`, `average_precision_score`, `log_loss`, `accuracy_score`,
//! `root_mean_squared_error`, `r2_score`, `confusion_matrix` with precision, recall and F1).
//!
//! References: Hanley & McNeil, "The meaning and use of the area under a ROC curve", Radiology 143
//! (1982) (ROC AUC as the Mann–Whitney U statistic, ties counted one half through average ranks);
//! Manning, Raghavan & Schütze, *Introduction to Information Retrieval* (2008), §8.4 (average
//! precision, here without interpolation as scikit-learn computes it).
//!
//! Labels are f32 values 0.0 or 1.0 (the targets [`crate::ml::logistic::fit`] takes), scores any finite
//! f32; everything is computed in f64.

use crate::{Error, Result};

/// Checks two equally long, non-empty inputs.
fn check_pair(a: &[f32], b: &[f32]) -> Result<()> {
    if a.is_empty() {
        return Err(Error::MlEmpty("a metric needs at least one value".into()));
    }
    if a.len() != b.len() {
        return Err(Error::DimensionMismatch { expected: a.len(), got: b.len() });
    }
    Ok(())
}

/// Checks binary labels (0.0 or 1.0) and finite scores of equal, non-zero length; returns the positives.
fn check_binary(y_true: &[f32], scores: &[f32]) -> Result<usize> {
    check_pair(y_true, scores)?;
    if let Some(i) = y_true.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(Error::MlTarget(format!("y_true[{i}] is {}; binary labels are 0.0 or 1.0", y_true[i])));
    }
    if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
        return Err(Error::MlNonFinite { row: i, column: 0 });
    }
    Ok(y_true.iter().filter(|&&v| v == 1.0).count())
}

/// Area under the ROC curve: the probability that a random positive scores above a random negative,
/// ties counting one half (the Mann–Whitney statistic from average ranks).
///
/// # Errors
/// [`Error::MlEmpty`], [`Error::DimensionMismatch`], [`Error::MlTarget`] for a label other than 0/1 or
/// when only one class is present (AUC is undefined), [`Error::MlNonFinite`] for a NaN or infinite score.
pub fn roc_auc(y_true: &[f32], scores: &[f32]) -> Result<f64> {
    let n_pos = check_binary(y_true, scores)?;
    let n = y_true.len();
    if n_pos == 0 || n_pos == n {
        return Err(Error::MlTarget(format!("ROC AUC is undefined with one class only ({n_pos} positives of {n})")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let pos_in_group = order[i..=j].iter().filter(|&&t| y_true[t] == 1.0).count();
        rank_sum += avg_rank * pos_in_group as f64;
        i = j + 1;
    }
    let (p, q) = (n_pos as f64, (n - n_pos) as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Average precision, the area under the precision–recall curve as scikit-learn's
/// `average_precision_score`: `Σ_k (R_k − R_{k−1}) P_k` over the distinct score thresholds, high to low.
///
/// # Errors
/// As [`roc_auc`]; undefined (an [`Error::MlTarget`]) when there is no positive.
pub fn pr_auc(y_true: &[f32], scores: &[f32]) -> Result<f64> {
    let n_pos = check_binary(y_true, scores)?;
    if n_pos == 0 {
        return Err(Error::MlTarget("average precision is undefined without positives".into()));
    }
    let n = y_true.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut prev_recall = 0.0f64;
    let mut ap = 0.0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        for &t in &order[i..=j] {
            if y_true[t] == 1.0 {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Ok(ap)
}

/// Mean binary cross-entropy of probabilities `proba` (of class 1), each clipped to `[ε, 1 − ε]` with
/// `ε = f64::EPSILON` (scikit-learn's `log_loss` on float64 input).
///
/// # Errors
/// [`Error::MlEmpty`], [`Error::DimensionMismatch`], [`Error::MlTarget`] for a label other than 0/1,
/// [`Error::MlNonFinite`] for a NaN or infinity, [`Error::InvalidParameter`] for a probability outside `[0, 1]`.
pub fn log_loss(y_true: &[f32], proba: &[f32]) -> Result<f64> {
    check_binary(y_true, proba)?;
    if let Some(i) = proba.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::InvalidParameter(format!("proba[{i}] is {}, not a probability", proba[i])));
    }
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .zip(proba)
        .map(|(&y, &p)| {
            let p = f64::from(p);
            if y == 1.0 { -p.clamp(eps, 1.0 - eps).ln() } else { -(1.0 - p).clamp(eps, 1.0 - eps).ln() }
        })
        .sum();
    Ok(total / y_true.len() as f64)
}

/// The fraction of predictions equal to the labels.
///
/// # Errors
/// [`Error::MlEmpty`], [`Error::DimensionMismatch`].
pub fn accuracy(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_pair(y_true, y_pred)?;
    Ok(y_true.iter().zip(y_pred).filter(|(a, b)| a == b).count() as f64 / y_true.len() as f64)
}

/// Checks regression inputs: equal length, non-empty, finite.
fn check_regression(y_true: &[f32], y_pred: &[f32]) -> Result<()> {
    check_pair(y_true, y_pred)?;
    if let Some(i) = y_true.iter().position(|v| !v.is_finite()) {
        return Err(Error::MlTarget(format!("y_true[{i}] is {}", y_true[i])));
    }
    if let Some(i) = y_pred.iter().position(|v| !v.is_finite()) {
        return Err(Error::MlNonFinite { row: i, column: 0 });
    }
    Ok(())
}

/// Root mean squared error.
///
/// # Errors
/// [`Error::MlEmpty`], [`Error::DimensionMismatch`], [`Error::MlTarget`] / [`Error::MlNonFinite`] for a
/// NaN or infinity in `y_true` / `y_pred`.
pub fn rmse(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_regression(y_true, y_pred)?;
    let sse: f64 = y_true.iter().zip(y_pred).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    Ok((sse / y_true.len() as f64).sqrt())
}

/// The coefficient of determination `1 − SS_res / SS_tot`; as scikit-learn, 1.0 for a perfect fit of a
/// constant target and 0.0 for an imperfect one (where the ratio is undefined).
///
/// # Errors
/// As [`rmse`].
pub fn r2(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_regression(y_true, y_pred)?;
    let mean = y_true.iter().map(|&v| f64::from(v)).sum::<f64>() / y_true.len() as f64;
    let ss_res: f64 = y_true.iter().zip(y_pred).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    let ss_tot: f64 = y_true.iter().map(|&a| (f64::from(a) - mean).powi(2)).sum();
    Ok(if ss_tot == 0.0 { if ss_res == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / ss_tot })
}

/// The counts of a binary classification at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: usize,
    /// Negatives predicted positive.
    pub fp: usize,
    /// Negatives predicted negative.
    pub tn: usize,
    /// Positives predicted negative.
    pub fn_: usize,
}

/// `a / b`, 0 when `b` is 0 (scikit-learn's `zero_division=0`).
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    /// `tp / (tp + fp)`, 0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)` (the true-positive rate), 0 without positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `2 tp / (2 tp + fp + fn)`, the harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// `fp / (fp + tn)` (the false-positive rate), 0 without negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// `(tp + tn) / total`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn_)
    }
}

/// The confusion counts when a score at or above `threshold` predicts the positive class.
///
/// # Errors
/// [`Error::MlEmpty`], [`Error::DimensionMismatch`], [`Error::MlTarget`] for a label other than 0/1,
/// [`Error::MlNonFinite`] for a NaN or infinite score, [`Error::InvalidParameter`] for a NaN threshold.
pub fn confusion_matrix(y_true: &[f32], scores: &[f32], threshold: f32) -> Result<Confusion> {
    check_binary(y_true, scores)?;
    if threshold.is_nan() {
        return Err(Error::InvalidParameter("the threshold is NaN".into()));
    }
    let mut c = Confusion::default();
    for (&y, &s) in y_true.iter().zip(scores) {
        match (y == 1.0, s >= threshold) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
            (true, false) => c.fn_ += 1,
        }
    }
    Ok(c)
}
