//! Hybrid retrieval: one ranking out of a sparse (BM25) and a dense (embedding) retriever.
//!
//! Their scores live on different scales: a BM25 score is an unbounded sum of term weights that
//! grows with the query's length, a cosine similarity lies in `[-1, 1]` and crowds near the top.
//! Two ways to combine them:
//!
//! - **Reciprocal rank fusion** (Cormack, Clarke & Büttcher, SIGIR 2009) ignores the scores and
//!   adds `1 / (k + rank)`: no calibration at all, robust, and blind to how *much* better the
//!   first hit was.
//! - **Weighted score fusion** first maps each list's scores to `[0, 1]` by min-max
//!   normalisation, then takes `w · dense + (1 - w) · sparse`: it keeps the score gaps, but one
//!   outlier stretches a whole list's scale.
//!
//! Both return every document of every list, best first, ties by ascending id: a deterministic
//! order, so that evaluation runs repeat exactly.

use std::collections::{HashMap, HashSet};

/// The constant `k` of the original paper.
pub const RRF_K: f32 = 60.0;

/// Sorts `(id, score)` by score descending, then id ascending. Given.
pub fn sort_ranked(list: &mut [(u32, f32)]) {
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

// ANCHOR: rrf
/// Task c4w4.fusion (10 points, with [`min_max_normalise`] and [`weighted_fusion`]): reciprocal
/// rank fusion of `rankings` (each a list of ids, best first).
///
/// `score(d) = Σ 1 / (k + rank_r(d))` over the rankings `r` that list `d`, ranks counted from 1;
/// within one ranking only a document's first (best) rank counts. Computed in `f32`, adding the
/// rankings' terms in the order of `rankings`. Returns every listed document, sorted by
/// [`sort_ranked`].
pub fn reciprocal_rank_fusion(rankings: &[&[u32]], k: f32) -> Vec<(u32, f32)> {
    todo!("c4w4.fusion")
}
// ANCHOR_END: rrf

// ANCHOR: weighted
/// Task c4w4.fusion (with [`reciprocal_rank_fusion`] and [`weighted_fusion`]): maps the scores of
/// `list` to `[0, 1]`, keeping its order: `(s - min) / (max - min)` in `f32`, where `min` and
/// `max` are over the whole list. When every score is equal (a list of one included) each one
/// becomes 1: the list's only evidence is that the retriever returned these documents.
pub fn min_max_normalise(list: &[(u32, f32)]) -> Vec<(u32, f32)> {
    todo!("c4w4.fusion")
}

/// Task c4w4.fusion (with [`reciprocal_rank_fusion`] and [`min_max_normalise`]): weighted score
/// fusion of a dense and a sparse list of `(id, score)`.
///
/// Normalise each list with [`min_max_normalise`]; a document's fused score is
/// `0 + dense_weight · d + (1 - dense_weight) · s` in `f32`, in that order, where `d` and `s` are
/// its normalised scores (0 when a list does not hold it; a document listed twice in one list
/// counts at its first entry). Returns every document of either list, sorted by [`sort_ranked`].
pub fn weighted_fusion(dense: &[(u32, f32)], sparse: &[(u32, f32)], dense_weight: f32) -> Vec<(u32, f32)> {
    todo!("c4w4.fusion")
}
// ANCHOR_END: weighted
