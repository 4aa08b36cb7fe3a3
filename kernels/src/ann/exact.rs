//! Exact (brute-force) top-k search: the ground truth every ANN index is measured against.
//!
//! One pass over the data with a bounded max-heap of the `k` best so far, so the
//! cost is `O(n·d + n·log k)` time and `O(k)` extra memory.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::{Far, Neighbor, check_buffer};
use crate::simd::Metric;
use crate::{Error, Result};

/// The `k` vectors of `data` (row-major, `dim` floats each) nearest to `query`,
/// sorted ascending by `(distance, id)`.
///
/// Returns an empty vector when `k == 0` or `data` is empty.
///
/// # Errors
/// [`Error::InvalidParameter`] if `dim == 0`, [`Error::RaggedBuffer`] if
/// `data.len()` is not a multiple of `dim`, [`Error::DimensionMismatch`] if
/// `query.len() != dim`.
pub fn exact_top_k(data: &[f32], dim: usize, query: &[f32], k: usize, metric: Metric) -> Result<Vec<Neighbor>> {
    check_buffer(data, dim)?;
    if query.len() != dim {
        return Err(Error::DimensionMismatch { expected: dim, got: query.len() });
    }
    Ok(top_k_unchecked(data, dim, query, k, metric))
}

/// [`exact_top_k`] for many queries at once (`queries` is row-major, `dim`
/// floats each), in parallel over queries with rayon. Result `i` belongs to
/// query `i`.
///
/// # Errors
/// As [`exact_top_k`]; a `queries` buffer that is not a whole number of
/// `dim`-dimensional rows is [`Error::RaggedBuffer`].
pub fn exact_top_k_batch(
    data: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    metric: Metric,
) -> Result<Vec<Vec<Neighbor>>> {
    check_buffer(data, dim)?;
    check_buffer(queries, dim)?;
    Ok(queries.par_chunks_exact(dim).map(|q| top_k_unchecked(data, dim, q, k, metric)).collect())
}

// ANCHOR: exact_top_k
fn top_k_unchecked(data: &[f32], dim: usize, query: &[f32], k: usize, metric: Metric) -> Vec<Neighbor> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Far> = BinaryHeap::with_capacity(k.min(data.len() / dim) + 1);
    for (i, row) in data.chunks_exact(dim).enumerate() {
        let candidate = Neighbor::new(i as u32, metric.distance(query, row));
        if heap.len() < k {
            heap.push(Far(candidate));
        } else if let Some(mut worst) = heap.peek_mut()
            && candidate.total_cmp(&worst.0).is_lt()
        {
            // Replace the current worst in place: one sift-down instead of push + pop.
            *worst = Far(candidate);
        }
    }
    // Ascending `Far` order is ascending (distance, id).
    heap.into_sorted_vec().into_iter().map(|f| f.0).collect()
}
// ANCHOR_END: exact_top_k
