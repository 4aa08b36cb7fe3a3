//! Rank fusion: merging several ranked lists (e.g. BM25 and vector search) into one.
//!
//! Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009) needs only
//! ranks, not scores, so it combines rankers whose scores are not comparable.

use std::collections::HashMap;

// ANCHOR: rrf
/// Reciprocal rank fusion: `score(d) = Σ 1 / (k + rank_r(d))` over the
/// rankings `r` that contain `d`, with ranks starting at 1 (`k = 60` is the
/// customary constant). Returns every document that appears in any ranking,
/// sorted by fused score descending, then id ascending.
///
/// A document listed twice in one ranking counts at its best (first) rank.
pub fn reciprocal_rank_fusion(rankings: &[&[u32]], k: f32) -> Vec<(u32, f32)> {
    let mut scores: HashMap<u32, f32> = HashMap::new();
    for ranking in rankings {
        let mut seen = std::collections::HashSet::with_capacity(ranking.len());
        for (i, &doc) in ranking.iter().enumerate() {
            if seen.insert(doc) {
                *scores.entry(doc).or_insert(0.0) += 1.0 / (k + (i + 1) as f32);
            }
        }
    }
    let mut fused: Vec<(u32, f32)> = scores.into_iter().collect();
    fused.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}
// ANCHOR_END: rrf
