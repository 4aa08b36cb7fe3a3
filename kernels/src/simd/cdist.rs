//! Distance matrices: every query against every base vector (the `cdist` of SciPy and SimSIMD), for
//! f32, f16 and bf16 vectors, as [`Metric`] distances.
//!
//! The batched form exists for half-precision storage: the per-pair kernels ([`super::dot_f16`], …)
//! widen both vectors of every pair, so a Q × N matrix widens each base vector Q times. Here the
//! queries are widened once per call and the base vectors a block at a time (about 16 KiB of f32, a
//! third of an L1 data cache), and every query then runs the f32 kernels against the block while it
//! is in L1. Widening is exact, so each entry equals [`Metric::distance`] of the widened vectors; the
//! accumulation stays f32 (SimSIMD's Sapphire Rapids f16 kernels accumulate in f16 instead: twice the
//! lanes per instruction, and a running sum held to f16's 11 significant bits).
//!
//! f32 inputs take the same blocked loop without widening: the block of base vectors stays in L1
//! while all queries pass over it. On AVX-512, four queries at a time run against each base vector
//! (`dot4`, `l2_sq4` and the `a·b` of cosine, whose norms are computed once per vector): one base
//! load serves four products, and every entry stays bit-identical to the one-pair kernel.
//!
//! Measured (`cargo xtask bench kernels`, 16 × 1024 vectors, one thread, Sapphire Rapids): f16 at
//! d = 384 went from 0.40–0.51× SimSIMD (pair by pair) to 0.93× (dot), 0.95× (L2) and 1.31×
//! (cosine), and 1.4–1.6× at d = 768 and 1536; see the book's Results page for the recorded run.

use half::{bf16, f16};

use super::{Metric, bf16_to_f32, f16_to_f32};
use crate::{Error, Result};

/// Bytes of f32 base vectors per block.
const BLOCK_BYTES: usize = 16 * 1024;

/// The Q × N matrix of `metric` distances between the rows of `queries` and of `base` (both
/// row-major, `d` values per row) into `out` (row-major: query `i`, base vector `j` at `i * N + j`).
///
/// # Errors
/// [`Error::InvalidParameter`] for `d == 0`; [`Error::RaggedBuffer`] when an input is not a whole
/// number of rows; [`Error::DimensionMismatch`] when `out` does not hold Q × N values.
pub fn cdist(queries: &[f32], base: &[f32], d: usize, metric: Metric, out: &mut [f32]) -> Result<()> {
    let (_, nb) = shape(queries.len(), base.len(), d, out.len())?;
    let qn = sq_norms(queries, d, metric);
    let rows = block_rows(d);
    for first in (0..nb).step_by(rows) {
        let count = rows.min(nb - first);
        fill(queries, &qn, &base[first * d..(first + count) * d], d, nb, first, metric, out);
    }
    Ok(())
}

/// [`cdist`] for f16 vectors: widened once each (exactly), distances computed in f32.
///
/// # Errors
/// As [`cdist`].
pub fn cdist_f16(queries: &[f16], base: &[f16], d: usize, metric: Metric, out: &mut [f32]) -> Result<()> {
    cdist_widened(queries, base, d, metric, out, f16_to_f32)
}

/// [`cdist`] for bf16 vectors: widened once each (exactly), distances computed in f32.
///
/// # Errors
/// As [`cdist`].
pub fn cdist_bf16(queries: &[bf16], base: &[bf16], d: usize, metric: Metric, out: &mut [f32]) -> Result<()> {
    cdist_widened(queries, base, d, metric, out, bf16_to_f32)
}

/// [`cdist`] for i8 vectors, exact in integers: entry `(i, j)` is `-(dot_i8(q, b) as f32)` for
/// [`Metric::Dot`], `l2_sq_i8(q, b) as f32` for [`Metric::L2`] and `1 - cosine_i8(q, b)` for
/// [`Metric::Cosine`], bit for bit ([`super::dot_i8`], [`super::l2_sq_i8`], [`super::cosine_i8`]).
/// Squared norms are computed once per vector, so every pair costs one exact dot product: squared
/// L2 is `|q|² + |b|² − 2 q·b` and cosine `q·b / √(|q|²|b|²)` of those integers, which are the
/// integers the pair kernels form.
///
/// # Errors
/// As [`cdist`].
pub fn cdist_i8(queries: &[i8], base: &[i8], d: usize, metric: Metric, out: &mut [f32]) -> Result<()> {
    let (_, nb) = shape(queries.len(), base.len(), d, out.len())?;
    let norms = |v: &[i8]| -> Vec<i64> {
        if metric == Metric::Dot { Vec::new() } else { v.chunks_exact(d).map(|x| super::dot_i8(x, x)).collect() }
    };
    let (qn, bn) = (norms(queries), norms(base));
    super::int8::dot_matrix(queries, base, d, |i, j, ab| {
        out[i * nb + j] = match metric {
            Metric::Dot => -(ab as f32),
            Metric::L2 => (qn[i] + bn[j] - 2 * ab) as f32,
            Metric::Cosine => 1.0 - super::int8::cosine_from_ints(ab, qn[i], bn[j]),
        };
    });
    Ok(())
}

fn cdist_widened<T>(
    queries: &[T],
    base: &[T],
    d: usize,
    metric: Metric,
    out: &mut [f32],
    widen: fn(&[T], &mut [f32]),
) -> Result<()> {
    let (_, nb) = shape(queries.len(), base.len(), d, out.len())?;
    let mut q = vec![0.0f32; queries.len()];
    widen(queries, &mut q);
    let qn = sq_norms(&q, d, metric);
    let rows = block_rows(d);
    let mut block = vec![0.0f32; rows.min(nb) * d];
    for first in (0..nb).step_by(rows) {
        let count = rows.min(nb - first);
        let block = &mut block[..count * d];
        widen(&base[first * d..(first + count) * d], block);
        fill(&q, &qn, block, d, nb, first, metric, out);
    }
    Ok(())
}

/// Base vectors per block: at least one.
fn block_rows(d: usize) -> usize {
    (BLOCK_BYTES / (4 * d)).max(1)
}

/// (Q, N) after checking the lengths.
fn shape(q_len: usize, b_len: usize, d: usize, out_len: usize) -> Result<(usize, usize)> {
    if d == 0 {
        return Err(Error::InvalidParameter("cdist: the dimension d must be at least 1".into()));
    }
    for len in [q_len, b_len] {
        if len % d != 0 {
            return Err(Error::RaggedBuffer { len, dim: d });
        }
    }
    let (nq, nb) = (q_len / d, b_len / d);
    if out_len != nq * nb {
        return Err(Error::DimensionMismatch { expected: nq * nb, got: out_len });
    }
    Ok((nq, nb))
}

/// The squared norm of every vector when `fill` will need them (cosine on AVX-512), computed with
/// `dot_norms`'s accumulators so that each equals the `|a|²` or `|b|²` of every pair; empty
/// otherwise. The queries' once per call (per block, it cost half the work at d = 1536, where a block
/// holds two base vectors), the base vectors' once per block.
fn sq_norms(vectors: &[f32], d: usize, metric: Metric) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if metric == Metric::Cosine && super::level() == super::Level::Avx512 {
        return vectors
            .chunks_exact(d)
            // SAFETY: `level()` found AVX-512 F/BW/VL; `v` holds `d` floats.
            .map(|v| unsafe { super::avx512::f32::dot_norms(v.as_ptr(), v.as_ptr(), d).1 })
            .collect();
    }
    let _ = (vectors, d, metric);
    Vec::new()
}

/// Columns `first..` of `out` (N columns): every query against the base vectors of `block`. On
/// AVX-512, four queries at a time run the four-row kernels (each base-vector load serves four
/// products; each entry is still bit-identical to the one-pair kernel); the rest go pair by pair.
/// `qn` holds the queries' [`sq_norms`].
#[allow(clippy::too_many_arguments)]
fn fill(
    queries: &[f32],
    qn: &[f32],
    block: &[f32],
    d: usize,
    nb: usize,
    first: usize,
    metric: Metric,
    out: &mut [f32],
) {
    let count = block.len() / d;
    let nq = queries.len() / d;
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::level() == super::Level::Avx512 {
        use super::avx512::f32 as k;
        let bn = if nq >= 4 { sq_norms(block, d, metric) } else { Vec::new() };
        while done + 4 <= nq {
            let a = [0, 1, 2, 3].map(|r| queries[(done + r) * d..].as_ptr());
            for (j, b) in block.chunks_exact(d).enumerate() {
                // SAFETY: `level()` found AVX-512 F/BW/VL; the four queries and `b` each hold `d` floats.
                let v = unsafe {
                    match metric {
                        Metric::L2 => k::l2_sq4(a, b.as_ptr(), d),
                        Metric::Dot => k::dot4(a, b.as_ptr(), d).map(|x| -x),
                        Metric::Cosine => {
                            let ab = k::dot_norms_ab4(a, b.as_ptr(), d);
                            [0, 1, 2, 3].map(|r| 1.0 - super::cosine_from_parts(ab[r], qn[done + r], bn[j]))
                        }
                    }
                };
                for (r, v) in v.into_iter().enumerate() {
                    out[(done + r) * nb + first + j] = v;
                }
            }
            done += 4;
        }
    }
    for i in done..nq {
        let q = &queries[i * d..(i + 1) * d];
        let row = &mut out[i * nb + first..i * nb + first + count];
        for (o, b) in row.iter_mut().zip(block.chunks_exact(d)) {
            *o = metric.distance(q, b);
        }
    }
}
