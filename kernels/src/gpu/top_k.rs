//! Batched distances with top-k on the GPU (`top_k.wgsl`), finished on the host, plus its CPU twin.
//!
//! The GPU computes every query-to-base distance and keeps, per query and per
//! chunk of the base, the `k` best in registers; the host merges the chunks'
//! short lists. Only `queries × chunks × k` candidates cross the bus instead of
//! the `queries × n` distance matrix.

use rayon::prelude::*;

use super::context::{Dispatch, GpuContext, f32s, u32s};
use crate::simd::Metric;
use crate::{Error, Result};

/// Largest per-chunk list the kernel keeps in registers (must match `KMAX` in `top_k.wgsl`).
pub const TOP_K_MAX_LOCAL: usize = 32;

/// Queries one workgroup serves (must match `WG` in `top_k.wgsl`).
const QUERIES_PER_GROUP: usize = 64;

/// Candidates per dispatch batch at most (bounds the output buffers at 2 × 64 MiB).
const MAX_CANDIDATES: usize = 16 << 20;

/// Id marking an empty slot (a row shorter than `k` because some distances were not finite).
pub const NO_ID: u32 = u32::MAX;

/// The `k` nearest base vectors of each query, as two flat row-major `queries × k` arrays.
///
/// Row `q` holds query `q`'s hits sorted ascending by `(distance, id)`, the
/// order of `kernels::ann::exact_top_k` (feature `ann`). `k` is the
/// requested `k` clamped to the number of base vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Number of queries (rows).
    pub queries: usize,
    /// Hits per query: `min(requested k, number of base vectors)`.
    pub k: usize,
    /// Base-vector ids, `queries × k`; [`NO_ID`] only where a distance was not finite.
    pub ids: Vec<u32>,
    /// Distances matching `ids` (smaller is nearer, as [`Metric`] defines them).
    pub distances: Vec<f32>,
}

impl TopK {
    /// The ids of query `q`'s hits, nearest first. Panics if `q >= self.queries`.
    pub fn ids_of(&self, q: usize) -> &[u32] {
        &self.ids[q * self.k..(q + 1) * self.k]
    }

    /// The distances of query `q`'s hits, nearest first. Panics if `q >= self.queries`.
    pub fn distances_of(&self, q: usize) -> &[f32] {
        &self.distances[q * self.k..(q + 1) * self.k]
    }

    /// The result as one `Vec<Neighbor>` per query (the shape of [`crate::ann::exact_top_k_batch`]).
    #[cfg(feature = "ann")]
    pub fn to_neighbors(&self) -> Vec<Vec<crate::ann::Neighbor>> {
        (0..self.queries)
            .map(|q| {
                self.ids_of(q)
                    .iter()
                    .zip(self.distances_of(q))
                    .map(|(&id, &d)| crate::ann::Neighbor::new(id, d))
                    .collect()
            })
            .collect()
    }

    /// A result with no hits: `queries` or `k` is 0.
    fn empty(queries: usize, k: usize) -> TopK {
        TopK { queries, k, ids: Vec::new(), distances: Vec::new() }
    }
}

/// Validates a top-k call; returns `(number of base vectors, number of queries)`.
pub(crate) fn check_top_k(base: &[f32], dim: usize, queries: &[f32]) -> Result<(usize, usize)> {
    if dim == 0 {
        return Err(Error::InvalidParameter("top_k: dim must be at least 1".into()));
    }
    for buf in [base, queries] {
        if !buf.len().is_multiple_of(dim) {
            return Err(Error::RaggedBuffer { len: buf.len(), dim });
        }
    }
    let n = base.len() / dim;
    if n >= NO_ID as usize {
        return Err(Error::InvalidParameter(format!("top_k: {n} base vectors, ids must stay below u32::MAX")));
    }
    Ok((n, queries.len() / dim))
}

fn metric_code(metric: Metric) -> u32 {
    match metric {
        Metric::L2 => 0,
        Metric::Dot => 1,
        Metric::Cosine => 2,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    q_count: u32,
    n: u32,
    dim: u32,
    k_local: u32,
    chunk_len: u32,
    n_chunks: u32,
    metric: u32,
    pad: u32,
}

/// How the base is cut: `(chunk_len, k_local)`.
///
/// With `k <= 32` each chunk keeps its `k` best out of at least `4k` (and at
/// least 256) vectors. With a larger `k` the chunks shrink to 32 vectors and
/// keep all of them, so the host selects from every distance: still exact,
/// just more traffic.
pub(crate) fn chunking(k: usize) -> (usize, usize) {
    if k <= TOP_K_MAX_LOCAL { ((4 * k).next_multiple_of(16).max(256), k) } else { (TOP_K_MAX_LOCAL, TOP_K_MAX_LOCAL) }
}

/// One uploaded batch of queries (the calibration times dispatches on it alone).
pub(crate) struct TopKJob<'a> {
    pub dispatch: Dispatch<'a>,
    pub dist: wgpu::Buffer,
    pub ids: wgpu::Buffer,
    pub candidates: usize,
}

impl GpuContext {
    /// The `k` nearest vectors of `base` (row-major, `dim` floats each) to every
    /// query in `queries` (row-major, `dim` floats each) under `metric`.
    ///
    /// `k` larger than the number of base vectors is **clamped** (as
    /// `kernels::ann::exact_top_k` does): [`TopK::k`] says how many came back.
    /// `k = 0`, an empty base or no queries give an empty result. Ties in distance
    /// go to the smaller id. Inputs should be finite; distances agree with
    /// [`Metric::distance`] up to rounding (the GPU sums in dimension order).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dim == 0` or the base does not fit in
    /// one storage buffer; [`Error::RaggedBuffer`] if `base` or `queries` is not a
    /// whole number of `dim`-dimensional rows; [`Error::Gpu`] when wgpu reports an error.
    pub fn top_k(&self, base: &[f32], dim: usize, queries: &[f32], k: usize, metric: Metric) -> Result<TopK> {
        let (n, q) = check_top_k(base, dim, queries)?;
        let k = k.min(n);
        if k == 0 || q == 0 {
            return Ok(TopK::empty(q, k));
        }
        self.check_fits("top_k base", (base.len() * 4) as u64)?;
        let (chunk_len, k_local) = chunking(k);
        let n_chunks = n.div_ceil(chunk_len);
        let per_query = n_chunks * k_local;
        let cap = MAX_CANDIDATES.min((self.max_buffer_bytes() / 4) as usize);
        let groups_cap = self.limits.max_compute_workgroups_per_dimension as usize * QUERIES_PER_GROUP;
        let mut batch = (cap / per_query).min(groups_cap).max(1);
        if batch >= QUERIES_PER_GROUP {
            batch -= batch % QUERIES_PER_GROUP;
        }
        self.scoped("top_k", || {
            let base_buf = self.storage("top_k base", bytemuck::cast_slice(base));
            let mut out = TopK { queries: q, k, ids: Vec::with_capacity(q * k), distances: Vec::with_capacity(q * k) };
            for qs in queries.chunks(batch * dim) {
                let job = self.top_k_job(&base_buf, n, dim, qs, k, metric)?;
                self.run(std::slice::from_ref(&job.dispatch))?;
                let d = f32s(&self.read(&job.dist, (job.candidates * 4) as u64)?);
                let ids = u32s(&self.read(&job.ids, (job.candidates * 4) as u64)?);
                merge(&d, &ids, per_query, k, &mut out);
            }
            Ok(out)
        })
    }

    /// Uploads one batch of queries and prepares the dispatch against an uploaded base.
    pub(crate) fn top_k_job(
        &self,
        base: &wgpu::Buffer,
        n: usize,
        dim: usize,
        queries: &[f32],
        k: usize,
        metric: Metric,
    ) -> Result<TopKJob<'_>> {
        let q = queries.len() / dim;
        let (chunk_len, k_local) = chunking(k);
        let n_chunks = n.div_ceil(chunk_len);
        let candidates = q * n_chunks * k_local;
        self.check_fits("top_k queries", (queries.len() * 4) as u64)?;
        self.check_fits("top_k candidates", (candidates * 4) as u64)?;
        let gx = self.check_groups("top_k queries", q.div_ceil(QUERIES_PER_GROUP))?;
        let gy = self.check_groups("top_k base chunks", n_chunks)?;
        let params = Params {
            q_count: q as u32,
            n: n as u32,
            dim: u32::try_from(dim).map_err(|_| Error::InvalidParameter(format!("top_k: dim {dim} exceeds u32")))?,
            k_local: k_local as u32,
            chunk_len: chunk_len as u32,
            n_chunks: n_chunks as u32,
            metric: metric_code(metric),
            pad: 0,
        };
        let q_buf = self.storage("top_k queries", bytemuck::cast_slice(queries));
        let dist = self.output("top_k distances", (candidates * 4) as u64);
        let ids = self.output("top_k ids", (candidates * 4) as u64);
        let u = self.uniform("top_k params", bytemuck::bytes_of(&params));
        let bind_group = self.bind(&self.top_k, &[base, &q_buf, &dist, &ids, &u]);
        Ok(TopKJob {
            dispatch: Dispatch { pipeline: &self.top_k, bind_group, groups: [gx, gy, 1] },
            dist,
            ids,
            candidates,
        })
    }
}

/// Merges each query's `per_query` candidates (sorted lists per chunk) into its `k` best, appended to `out`.
fn merge(dist: &[f32], ids: &[u32], per_query: usize, k: usize, out: &mut TopK) {
    let rows: Vec<Vec<(f32, u32)>> = dist
        .par_chunks_exact(per_query)
        .zip(ids.par_chunks_exact(per_query))
        .map(|(d, i)| {
            let mut c: Vec<(f32, u32)> =
                d.iter().copied().zip(i.iter().copied()).filter(|&(_, id)| id != NO_ID).collect();
            best_k(&mut c, k)
        })
        .collect();
    for row in rows {
        out.distances.extend(row.iter().map(|p| p.0));
        out.ids.extend(row.iter().map(|p| p.1));
    }
}

/// The `k` smallest `(distance, id)` pairs of `c`, sorted; padded with `(+inf, NO_ID)` if `c` is shorter.
fn best_k(c: &mut Vec<(f32, u32)>, k: usize) -> Vec<(f32, u32)> {
    let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if c.len() > k {
        c.select_nth_unstable_by(k - 1, cmp);
        c.truncate(k);
    }
    c.sort_unstable_by(cmp);
    c.resize(k, (f32::INFINITY, NO_ID));
    std::mem::take(c)
}

/// The CPU twin of [`GpuContext::top_k`] (the fallback of [`super::Device`]): the same
/// contract and output, computed with [`Metric::distance`] in parallel over queries.
///
/// # Errors
/// As [`GpuContext::top_k`], without the device errors.
pub fn top_k_cpu(base: &[f32], dim: usize, queries: &[f32], k: usize, metric: Metric) -> Result<TopK> {
    let (n, q) = check_top_k(base, dim, queries)?;
    let k = k.min(n);
    if k == 0 || q == 0 {
        return Ok(TopK::empty(q, k));
    }
    let rows: Vec<Vec<(f32, u32)>> = queries
        .par_chunks_exact(dim)
        .map(|qv| {
            let mut c: Vec<(f32, u32)> =
                base.chunks_exact(dim).enumerate().map(|(i, b)| (metric.distance(qv, b), i as u32)).collect();
            best_k(&mut c, k)
        })
        .collect();
    let mut out = TopK { queries: q, k, ids: Vec::with_capacity(q * k), distances: Vec::with_capacity(q * k) };
    for row in rows {
        out.distances.extend(row.iter().map(|p| p.0));
        out.ids.extend(row.iter().map(|p| p.1));
    }
    Ok(out)
}
