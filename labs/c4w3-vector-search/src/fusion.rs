//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): merging the
//! rankings of several retrievers (say BM25 and a vector index) into one.
//!
//! RRF looks only at ranks, never at scores, so it fuses retrievers whose scores
//! live on incomparable scales (a BM25 sum and a cosine distance) without any
//! calibration. That is why hybrid search engines use it by default.

use std::collections::{HashMap, HashSet};

/// The constant `k` of the original paper: dampens the weight of the very top ranks.
pub const DEFAULT_K: f32 = 60.0;

// ANCHOR: rrf_signature
/// Task c4w3.rrf (5 points): fuses `rankings` (each a list of document ids, best
/// first) into one list of `(doc id, score)`.
///
/// ```text
/// score(d) = Σ over rankings r containing d of 1 / (k + rank_r(d))
/// ```
///
/// where `rank_r(d)` counts from **1** for the first element of `r`. If a
/// ranking lists a document more than once, only its first (best) rank counts.
/// Return every document that appears anywhere, sorted by score descending, then
/// by id ascending. No rankings (or only empty ones) give an empty list.
pub fn reciprocal_rank_fusion(rankings: &[&[u32]], k: f32) -> Vec<(u32, f32)> {
    todo!("c4w3.rrf")
}
// ANCHOR_END: rrf_signature
