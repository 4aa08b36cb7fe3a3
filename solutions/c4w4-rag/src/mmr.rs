//! Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): top-k results that are relevant
//! *and* different from each other.
//!
//! Documentation repeats itself: the same paragraph on ownership appears in the book, in Rust by
//! Example and in the reference. Ten near-copies in a context window cost ten times the tokens and
//! add one fact. MMR picks greedily, each time the candidate maximising
//!
//! ```text
//! lambda · sim(q, d) − (1 − lambda) · max over picked s of sim(d, s)
//! ```
//!
//! so `lambda = 1` is plain relevance ranking and smaller values trade relevance for diversity.

/// The dot product of two vectors in `f32`, summed left to right (for unit vectors: the cosine).
/// Given.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ANCHOR: mmr
/// Task c4w4.mmr (10 points): picks up to `k` of `candidates` (`(id, unit vector)`) by maximal
/// marginal relevance to the unit vector `query`.
///
/// Similarities are [`dot`] products. Repeat `min(k, candidates.len())` times: among the
/// candidates not picked yet, take the one with the largest
/// `lambda * dot(query, d) - (1 - lambda) * redundancy(d)` (in `f32`, computed in that form),
/// where `redundancy(d)` is the largest `dot(d, s)` over the picked `s`, and 0 before the first
/// pick; equal values go to the smaller id. Return the picks in order, each with the value it had
/// when picked. From the second pick on the values never increase (each candidate's redundancy
/// only grows); the second may exceed the first when the vectors point away from each other
/// (a negative redundancy adds to the value).
pub fn mmr_select(query: &[f32], candidates: &[(u32, &[f32])], k: usize, lambda: f32) -> Vec<(u32, f32)> {
    // BEGIN SOLUTION c4w4.mmr
    let relevance: Vec<f32> = candidates.iter().map(|(_, v)| dot(query, v)).collect();
    let mut redundancy: Vec<Option<f32>> = vec![None; candidates.len()];
    let mut taken = vec![false; candidates.len()];
    let n = k.min(candidates.len());
    let mut picks = Vec::with_capacity(n);
    while picks.len() < n {
        let mut best: Option<(usize, f32)> = None;
        for (i, &(id, _)) in candidates.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let value = lambda * relevance[i] - (1.0 - lambda) * redundancy[i].unwrap_or(0.0);
            let better = match best {
                None => true,
                Some((b, bv)) => value > bv || (value == bv && id < candidates[b].0),
            };
            if better {
                best = Some((i, value));
            }
        }
        let Some((b, value)) = best else { break };
        taken[b] = true;
        picks.push((candidates[b].0, value));
        for (i, (_, v)) in candidates.iter().enumerate() {
            if !taken[i] {
                let sim = dot(v, candidates[b].1);
                redundancy[i] = Some(redundancy[i].map_or(sim, |r| r.max(sim)));
            }
        }
    }
    picks
    // END SOLUTION
}
// ANCHOR_END: mmr
