//! Softmax cross-entropy over the rows of a logits matrix, with an ignore index, and its gradient
//! (task `c4w5.softmax-xent`, 14 points).
//!
//! A language model's training loss: row `t` of the logits scores every token of the vocabulary for
//! position `t`, and the loss is the mean over the positions that count of
//! `−log softmax(x_t)[y_t] = logsumexp(x_t) − x_t[y_t]`. Positions whose target is the ignore index
//! (PyTorch's and Hugging Face's `-100`: the prompt, padding) are left out of the sum **and** of the
//! count. The gradient with respect to the logits is `(softmax(x_t) − onehot(y_t)) / count` on the
//! rows that count and `0` on the others.

use crate::{Error, Result, shape};

/// The target that [`cross_entropy`] skips by convention (PyTorch's `ignore_index` default).
pub const IGNORE_INDEX: i64 = -100;

/// The loss and its gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Xent {
    /// The mean cross-entropy over the rows that count (`0` when none counts).
    pub loss: f64,
    /// `∂loss/∂logits`, `rows × vocab` like the logits.
    pub grad: Vec<f64>,
    /// How many rows counted (targets other than the ignore index).
    pub count: usize,
}

// ANCHOR: cross_entropy
/// Mean softmax cross-entropy of `logits` (`rows × vocab`, row-major, `rows = targets.len()`) against
/// `targets`, skipping rows whose target is `ignore_index`, and its gradient (task
/// `c4w5.softmax-xent`).
///
/// * Per counted row, with `m = max_j x_j` (subtracted so `exp` cannot overflow):
///   `lse = m + ln Σ_j e^{x_j − m}`, loss term `lse − x_target`, gradient `e^{x_j − lse} − [j = target]`.
/// * The loss is the sum of the terms divided by `count`, and so is every gradient value.
/// * When every row is ignored (or there is no row) the loss is `0` and the gradient all zeros, as in
///   `kernels::train` (PyTorch gives NaN: 0/0).
///
/// # Errors
/// [`Error::Shape`] (op `cross_entropy`) when `vocab` is 0 or `logits.len()` is not
/// `targets.len()·vocab`; [`Error::InvalidInput`] naming the position of a target outside `0..vocab`
/// that is not `ignore_index`. Nothing is computed before the input is checked.
pub fn cross_entropy(logits: &[f64], vocab: usize, targets: &[i64], ignore_index: i64) -> Result<Xent> {
    todo!("c4w5.softmax-xent")
}
// ANCHOR_END: cross_entropy
