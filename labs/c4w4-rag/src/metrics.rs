//! Retrieval metrics exactly as NIST's `trec_eval` (and `pytrec_eval`, which wraps its C code)
//! computes them.
//!
//! "nDCG@10 = 0.61" means nothing unless two evaluators agree on every detail, and the details
//! are where they differ:
//!
//! - **Ties.** `trec_eval` ignores the order of the run file: it sorts each topic's ranking by
//!   score descending, then by passage id **descending** (byte order). Two runs with the same
//!   scores get the same value whatever order they were written in ([`trec_order`]).
//! - **Relevance threshold.** A passage is relevant when its grade is at least 1. Unjudged
//!   passages count as not relevant (a negative grade means "pooled, unjudged" and counts as
//!   unjudged).
//! - **Cutoffs.** `P@k` divides by `k` even when fewer than `k` passages were retrieved;
//!   `recall@k` divides by every relevant judged passage, retrieved or not.
//! - **Graded gain.** nDCG's gain is the grade itself, discounted by `log2(rank + 1)`; the ideal
//!   ranking is every judged passage with a positive grade, best grade first.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use crate::{Error, Result};

/// One topic's judgements: passage id → grade (0 not relevant, 1 partly, 2 answers it; negative:
/// unjudged).
pub type Judgements = BTreeMap<String, i32>;

// ANCHOR: trec_order
/// Task c4w4.metrics (15 points, with the four measures): `trec_eval`'s order of a ranking —
/// score descending (`-0.0` and `0.0` are equal, as in C), equal scores by passage id descending
/// (byte order of the ids).
///
/// # Errors
/// [`Error::InvalidInput`] for a NaN score or a passage listed twice.
pub fn trec_order(ranking: &[(String, f64)]) -> Result<Vec<(String, f64)>> {
    todo!("c4w4.metrics")
}
// ANCHOR_END: trec_order

/// Task c4w4.metrics: precision at `k` (`P_k`): relevant passages among the first `k` of the
/// [`trec_order`], divided by `k`.
///
/// # Errors
/// [`Error::InvalidConfig`] when `k` is 0; as [`trec_order`].
pub fn precision_at(ranking: &[(String, f64)], judged: &Judgements, k: usize) -> Result<f64> {
    todo!("c4w4.metrics")
}

/// Task c4w4.metrics: recall at `k` (`recall_k`): relevant passages among the first `k`, divided
/// by the number of relevant judged passages (0 when there is none).
///
/// # Errors
/// [`Error::InvalidConfig`] when `k` is 0; as [`trec_order`].
pub fn recall_at(ranking: &[(String, f64)], judged: &Judgements, k: usize) -> Result<f64> {
    todo!("c4w4.metrics")
}

/// Task c4w4.metrics: the reciprocal rank of the first relevant passage (`recip_rank`; its mean
/// over topics is MRR), 0 when none is retrieved.
///
/// # Errors
/// As [`trec_order`].
pub fn reciprocal_rank(ranking: &[(String, f64)], judged: &Judgements) -> Result<f64> {
    todo!("c4w4.metrics")
}

// ANCHOR: ndcg
/// Task c4w4.metrics: nDCG at `k` (`ndcg_cut_k`, Järvelin & Kekäläinen 2002), in `f64`:
///
/// ```text
/// DCG@k = Σ over ranks i = 1..=k with grade g_i > 0 of g_i / log2(i + 1)
/// nDCG@k = DCG@k / IDCG@k
/// ```
///
/// where IDCG@k is the DCG@k of the ideal ranking: every judged passage with a positive grade,
/// grades descending. When IDCG@k is 0 (nothing relevant), nDCG@k is 0.
///
/// # Errors
/// [`Error::InvalidConfig`] when `k` is 0; as [`trec_order`].
pub fn ndcg_at(ranking: &[(String, f64)], judged: &Judgements, k: usize) -> Result<f64> {
    todo!("c4w4.metrics")
}
// ANCHOR_END: ndcg
