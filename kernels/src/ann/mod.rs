//! Nearest-neighbour search: exact brute force (the ground truth), exact search for query
//! batches through GEMM ([`FlatIndex`]) and an HNSW graph index.
//!
//! Both rank by a [`Metric`](crate::simd::Metric) where smaller is nearer and
//! return [`Neighbor`]s sorted ascending by `(distance, id)`, so results are
//! comparable item for item and ties break the same way everywhere.

mod buffer;
mod exact;
mod flat;
mod hnsw;
mod visited;

use std::cmp::Ordering;

pub use exact::{exact_top_k, exact_top_k_batch};
pub use flat::{FlatIndex, QUERY_BLOCK, TILE_ROWS};
pub use hnsw::{FilteredHits, Hnsw, HnswConfig};

/// One search hit: the id of a stored vector and its distance to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Id of the stored vector (its position in the data / insertion order).
    pub id: u32,
    /// Distance to the query under the index's metric (smaller is nearer).
    pub distance: f32,
}

impl Neighbor {
    /// A hit with this id and distance.
    #[inline]
    pub fn new(id: u32, distance: f32) -> Neighbor {
        Neighbor { id, distance }
    }

    /// Total order: by distance (IEEE `total_cmp`, so NaN sorts last and never
    /// breaks a heap), then by id. Lets neighbours live in heaps and sorts.
    #[inline]
    pub fn total_cmp(&self, other: &Neighbor) -> Ordering {
        self.distance.total_cmp(&other.distance).then(self.id.cmp(&other.id))
    }
}

/// Max-heap entry: the *farthest* neighbour sits on top (bounded result sets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Far(pub Neighbor);

impl PartialEq for Far {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Far {}
impl PartialOrd for Far {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Far {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Min-heap entry: the *nearest* neighbour sits on top (candidate queues).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Near(pub Neighbor);

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0)
    }
}

/// Checks a flat row-major buffer of `dim`-dimensional vectors.
pub(crate) fn check_buffer(data: &[f32], dim: usize) -> crate::Result<()> {
    if dim == 0 {
        return Err(crate::Error::InvalidParameter("dim must be at least 1".into()));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(crate::Error::RaggedBuffer { len: data.len(), dim });
    }
    if data.len() / dim > u32::MAX as usize {
        return Err(crate::Error::InvalidParameter("more than u32::MAX vectors".into()));
    }
    Ok(())
}

/// Hints the CPU to pull the cache line at `p` into L1. A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
