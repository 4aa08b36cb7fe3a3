//! Exact k-NN for batches of queries through GEMM: `‖q − x‖² = ‖q‖² + ‖x‖² − 2 q·x`, with the
//! `q·x` of a block of queries against a tile of vectors computed by the packed GEMM and read
//! back, while still in cache, by the top-k selection.
//!
//! This is how `faiss`' `IndexFlatL2`/`IndexFlatIP` search (Johnson, Douze, Jégou, *Billion-scale
//! similarity search with GPUs*, 2017, §5 "exact search": the norm expansion, a GEMM, then a
//! selection). [`exact_top_k_batch`](super::exact_top_k_batch) stays the ground truth: it computes
//! every distance directly, while here the expansion rounds differently (for L2 the error grows
//! with `‖q‖² + ‖x‖²`, not with the distance), so near-ties may order differently; the tests
//! bound the difference.
//!
//! Layout: the vectors are cut into tiles of [`TILE_ROWS`] rows, each packed once at build into
//! the micro-kernel's panel order ([`PackedMatrix`]), so a search never repacks. A search runs
//! the tiles in parallel (each task keeps its own top-k per query, merged at the end) and, per
//! tile, the queries in blocks of [`QUERY_BLOCK`], so the distance block (`QUERY_BLOCK ×
//! TILE_ROWS` floats, 512 KiB) stays in the L2 cache between the GEMM that writes it and the
//! selection that reads it.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::{Far, Neighbor, check_buffer};
use crate::Result;
use crate::matmul::{PackedMatrix, gemm_packed_serial};
use crate::simd::Metric;

/// Vectors per packed tile (one parallel task's unit of work).
pub const TILE_ROWS: usize = 1024;

/// Queries per GEMM call within a tile.
pub const QUERY_BLOCK: usize = 128;

/// An exact index over vectors packed for the GEMM formulation. Build once with
/// [`FlatIndex::new`], search many batches with [`FlatIndex::search`].
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dim: usize,
    len: usize,
    metric: Metric,
    /// The vectors, [`TILE_ROWS`] per tile (the last may be shorter); for [`Metric::Cosine`]
    /// scaled to unit length (zero vectors stay zero).
    tiles: Vec<PackedMatrix>,
    /// `‖x‖²` per vector for [`Metric::L2`]; empty otherwise.
    sq_norms: Vec<f32>,
}

/// A query's running top-k of `(partial distance, id)`; the partial distance is the distance
/// less a per-query constant (`‖q‖²` for L2), added back at the end.
struct TopK {
    heap: BinaryHeap<Far>,
    k: usize,
    /// The worst partial distance kept once the heap is full (`+∞` before): the cheap reject test.
    worst: f32,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { heap: BinaryHeap::with_capacity(k + 1), k, worst: f32::INFINITY }
    }

    #[inline]
    fn offer(&mut self, id: u32, partial: f32) {
        // An equal distance gets through, so ties are settled by id as everywhere else.
        if self.heap.len() == self.k && partial.total_cmp(&self.worst).is_gt() {
            return;
        }
        let candidate = Neighbor::new(id, partial);
        if self.heap.len() < self.k {
            self.heap.push(Far(candidate));
        } else if let Some(mut far) = self.heap.peek_mut()
            && candidate.total_cmp(&far.0).is_lt()
        {
            *far = Far(candidate);
        }
        if self.heap.len() == self.k {
            self.worst = self.heap.peek().map_or(f32::INFINITY, |f| f.0.distance);
        }
    }

    fn merge(mut self, other: TopK) -> TopK {
        for f in other.heap {
            self.offer(f.0.id, f.0.distance);
        }
        self
    }
}

impl FlatIndex {
    /// Packs `data` (row-major, `dim` floats per vector) for search under `metric`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) if `dim == 0` or there are more than `u32::MAX` vectors,
    /// [`Error::RaggedBuffer`](crate::Error::RaggedBuffer) if `data.len()` is not a multiple of `dim`.
    pub fn new(data: &[f32], dim: usize, metric: Metric) -> Result<FlatIndex> {
        check_buffer(data, dim)?;
        let len = data.len() / dim;
        let tiles = data
            .par_chunks(TILE_ROWS * dim)
            .map(|tile| {
                let rows = tile.len() / dim;
                if metric == Metric::Cosine {
                    let unit: Vec<f32> = tile.chunks_exact(dim).flat_map(unit_length).collect();
                    PackedMatrix::pack_nt(&unit, rows, dim)
                } else {
                    PackedMatrix::pack_nt(tile, rows, dim)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let sq_norms = if metric == Metric::L2 {
            data.par_chunks_exact(dim).map(|x| crate::simd::dot(x, x)).collect()
        } else {
            Vec::new()
        };
        Ok(FlatIndex { dim, len, metric, tiles, sq_norms })
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Dimension of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the index ranks by.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Bytes the packed tiles and norms hold.
    pub fn bytes(&self) -> usize {
        self.tiles.iter().map(PackedMatrix::bytes).sum::<usize>() + self.sq_norms.len() * 4
    }

    /// The `k` nearest vectors to each query (`queries` row-major, `dim` floats each), sorted
    /// ascending by `(distance, id)`; result `i` belongs to query `i`. Distances are the
    /// metric's ([`Metric::distance`]) as the expansion computes them; L2 ones are clamped at 0.
    ///
    /// # Errors
    /// [`Error::RaggedBuffer`](crate::Error::RaggedBuffer) if `queries` is not a whole number of `dim`-float rows.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>> {
        check_buffer(queries, self.dim)?;
        let dim = self.dim;
        let nq = queries.len() / dim;
        if k == 0 || self.len == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        let unit_queries: Vec<f32>;
        let queries = if self.metric == Metric::Cosine {
            unit_queries = queries.chunks_exact(dim).flat_map(unit_length).collect();
            &unit_queries[..]
        } else {
            queries
        };
        let fresh = || (0..nq).map(|_| TopK::new(k)).collect::<Vec<_>>();
        let merged = self
            .tiles
            .par_iter()
            .enumerate()
            .fold(
                || (fresh(), Vec::new()),
                |(mut tops, mut dots), (t, tile)| {
                    self.search_tile(queries, t, tile, &mut tops, &mut dots);
                    (tops, dots)
                },
            )
            .map(|(tops, _)| tops)
            .reduce(fresh, |a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect());
        Ok(merged
            .into_iter()
            .zip(queries.chunks_exact(dim))
            .map(|(top, q)| {
                let offset = if self.metric == Metric::L2 { crate::simd::dot(q, q) } else { 0.0 };
                let mut hits: Vec<Neighbor> =
                    top.heap.into_sorted_vec().into_iter().map(|f| self.finish(f.0, offset)).collect();
                // Adding the offset can merge distances that were apart: re-sort on the final values.
                hits.sort_by(|a, b| a.total_cmp(b));
                hits
            })
            .collect())
    }

    // ANCHOR: search_tile
    /// Offers every vector of tile `t` to every query's top-k.
    /// `dots` is the task's scratch for the distance block, grown on first use.
    fn search_tile(&self, queries: &[f32], t: usize, tile: &PackedMatrix, tops: &mut [TopK], dots: &mut Vec<f32>) {
        let (dim, rows, first) = (self.dim, tile.n(), t * TILE_ROWS);
        dots.resize(QUERY_BLOCK.min(tops.len()) * rows, 0.0);
        for (block, q) in queries.chunks(QUERY_BLOCK * dim).enumerate() {
            let m = q.len() / dim;
            let dots = &mut dots[..m * rows];
            gemm_packed_serial(q, tile, dots, m);
            for (i, row) in dots.chunks_exact(rows).enumerate() {
                let top = &mut tops[block * QUERY_BLOCK + i];
                match self.metric {
                    Metric::L2 => {
                        let norms = &self.sq_norms[first..first + rows];
                        for (j, (&d, &n)) in row.iter().zip(norms).enumerate() {
                            top.offer((first + j) as u32, n - 2.0 * d);
                        }
                    }
                    Metric::Dot => row.iter().enumerate().for_each(|(j, &d)| top.offer((first + j) as u32, -d)),
                    Metric::Cosine => row.iter().enumerate().for_each(|(j, &d)| top.offer((first + j) as u32, 1.0 - d)),
                }
            }
        }
    }
    // ANCHOR_END: search_tile

    /// The final distance of a kept hit.
    fn finish(&self, hit: Neighbor, offset: f32) -> Neighbor {
        match self.metric {
            Metric::L2 => Neighbor::new(hit.id, (hit.distance + offset).max(0.0)),
            _ => hit,
        }
    }
}

/// `x / ‖x‖` (zero stays zero), for the cosine metric.
fn unit_length(x: &[f32]) -> Vec<f32> {
    let norm = crate::simd::dot(x, x).sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    x.iter().map(|v| v * scale).collect()
}
