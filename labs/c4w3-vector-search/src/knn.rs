//! Exact (brute-force) k-nearest-neighbour search with a bounded heap.
//!
//! Brute force is the ground truth every approximate index is measured against
//! (recall@k), and for a few thousand vectors it is often fast enough on its own.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use kernels::ann::Neighbor;
use kernels::simd::Metric;

/// Total order on neighbours: by distance (with [`f32::total_cmp`], so even NaN
/// has a place), then by id ([`Neighbor::total_cmp`]). This is the order every
/// result list of this crate is sorted in (ascending). Given.
pub fn cmp_neighbors(a: &Neighbor, b: &Neighbor) -> Ordering {
    a.total_cmp(b)
}

/// A [`Neighbor`] ordered by [`cmp_neighbors`], so it can live in a
/// [`BinaryHeap`] (which needs `Ord`; `f32` is only `PartialOrd`). Given.
///
/// `BinaryHeap<ByDistance>` is a max-heap: `peek()` is the **farthest** element,
/// just what a bounded "best k so far" heap needs. Wrap it in
/// [`std::cmp::Reverse`] to get a min-heap that pops the **nearest** first.
#[derive(Debug, Clone, Copy)]
pub struct ByDistance(pub Neighbor);

impl PartialEq for ByDistance {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByDistance {}

impl PartialOrd for ByDistance {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByDistance {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_neighbors(&self.0, &other.0)
    }
}

/// Task c4w3.exact-knn (10 points): the `k` vectors of `data` nearest to `query`.
///
/// `data` is a flat row-major buffer of `data.len() / dim` vectors of `dim`
/// floats; vector `i` is `data[i * dim..(i + 1) * dim]` and has id `i`.
/// Measure with `metric.distance(query, v)` ([`Metric::distance`], smaller is
/// nearer).
///
/// Keep a **bounded** max-heap of at most `k` [`ByDistance`] entries: push while
/// it holds fewer than `k`, otherwise replace the top (the farthest kept) when
/// the new neighbour orders before it. Memory stays O(k), time O(n log k).
///
/// Returns `min(k, n)` neighbours sorted ascending by distance, ties broken by
/// smaller id first (exactly the order of [`cmp_neighbors`]); `k = 0` gives an
/// empty list.
///
/// # Panics
/// If `dim` is 0, `data.len()` is not a multiple of `dim`, or
/// `query.len() != dim`.
pub fn exact_top_k(data: &[f32], dim: usize, query: &[f32], k: usize, metric: Metric) -> Vec<Neighbor> {
    assert!(dim > 0, "exact_top_k: dim must be at least 1");
    assert!(
        data.len().is_multiple_of(dim),
        "exact_top_k: {} floats are not a whole number of {dim}-dimensional vectors",
        data.len()
    );
    assert_eq!(query.len(), dim, "exact_top_k: the query has the wrong dimension");
    todo!("c4w3.exact-knn")
}
