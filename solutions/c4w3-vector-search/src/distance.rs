//! Vector distances on 8-lane SIMD vectors (`wide::f32x8`), with scalar twins.
//!
//! The scalar twins (`*_scalar`) are given: they are the reference your SIMD
//! versions are tested against. A SIMD version must agree with its twin up to
//! floating-point rounding (summing in a different order changes the last bits,
//! nothing more).
//!
//! The recipe for all three task functions is the same:
//!
//! 1. walk both slices in blocks of 8 floats (`chunks_exact(8)`), load each block
//!    into an `f32x8` and accumulate with `mul_add` (one fused multiply-add per
//!    8 lanes);
//! 2. keep **several independent accumulators** (for example 4, consuming 32
//!    floats per step) so consecutive additions do not wait on each other;
//! 3. add the accumulators, reduce the 8 lanes to one float (`reduce_add`), and
//!    finish the tail (the last `len % 8` floats) with plain scalar code.

use kernels::simd::Metric;
use wide::f32x8;

/// Loads 8 floats into a SIMD vector. `s` must hold exactly 8 floats.
#[inline]
fn load(s: &[f32]) -> f32x8 {
    let lanes: [f32; 8] = s.try_into().expect("a block of exactly 8 floats");
    f32x8::from(lanes)
}

// ANCHOR: dot_signature
/// Task c4w3.simd-distances (15 points, shared with [`l2_sq`] and [`cosine`]):
/// the dot product `a·b = Σ a_i b_i`, on `wide::f32x8` vectors.
///
/// Use 8-lane loads, several accumulators and a scalar tail (see the module
/// docs). Must match [`dot_scalar`] up to rounding for every length, including
/// lengths that are not a multiple of 8 and the empty slice (dot = 0).
///
/// # Panics
/// If `a` and `b` have different lengths.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: vectors of different lengths");
    // BEGIN SOLUTION c4w3.simd-distances
    let mut acc = [f32x8::ZERO; 4];
    let (a32, b32) = (a.chunks_exact(32), b.chunks_exact(32));
    let (a_rest, b_rest) = (a32.remainder(), b32.remainder());
    for (x, y) in a32.zip(b32) {
        for (lane, acc) in acc.iter_mut().enumerate() {
            let r = lane * 8..lane * 8 + 8;
            *acc = load(&x[r.clone()]).mul_add(load(&y[r]), *acc);
        }
    }
    let (a8, b8) = (a_rest.chunks_exact(8), b_rest.chunks_exact(8));
    let (a_tail, b_tail) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        acc[0] = load(x).mul_add(load(y), acc[0]);
    }
    let simd = ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add();
    simd + dot_scalar(a_tail, b_tail)
    // END SOLUTION
}
// ANCHOR_END: dot_signature

/// Task c4w3.simd-distances (shared with [`dot`] and [`cosine`]): the squared
/// Euclidean distance `Σ (a_i - b_i)²`, on `wide::f32x8` vectors.
///
/// Same recipe as [`dot`]: compute `d = x - y` per block and accumulate `d * d`
/// (`d.mul_add(d, acc)`). Must match [`l2_sq_scalar`] up to rounding.
///
/// # Panics
/// If `a` and `b` have different lengths.
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq: vectors of different lengths");
    // BEGIN SOLUTION c4w3.simd-distances
    let mut acc = [f32x8::ZERO; 4];
    let (a32, b32) = (a.chunks_exact(32), b.chunks_exact(32));
    let (a_rest, b_rest) = (a32.remainder(), b32.remainder());
    for (x, y) in a32.zip(b32) {
        for (lane, acc) in acc.iter_mut().enumerate() {
            let r = lane * 8..lane * 8 + 8;
            let d = load(&x[r.clone()]) - load(&y[r]);
            *acc = d.mul_add(d, *acc);
        }
    }
    let (a8, b8) = (a_rest.chunks_exact(8), b_rest.chunks_exact(8));
    let (a_tail, b_tail) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        let d = load(x) - load(y);
        acc[0] = d.mul_add(d, acc[0]);
    }
    let simd = ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add();
    simd + l2_sq_scalar(a_tail, b_tail)
    // END SOLUTION
}

/// Task c4w3.simd-distances (shared with [`dot`] and [`l2_sq`]): the cosine
/// similarity `a·b / (|a| |b|)`, on `wide::f32x8` vectors.
///
/// Compute `a·b`, `|a|² = a·a` and `|b|² = b·b` in **one pass** (three
/// accumulators per block), then combine them with [`cosine_from_parts`]. The
/// similarity is defined as 0 when either vector is all zeros. Must match
/// [`cosine_scalar`] up to rounding.
///
/// # Panics
/// If `a` and `b` have different lengths.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "cosine: vectors of different lengths");
    // BEGIN SOLUTION c4w3.simd-distances
    let (mut ab, mut aa, mut bb) = ([f32x8::ZERO; 2], [f32x8::ZERO; 2], [f32x8::ZERO; 2]);
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let (a_rest, b_rest) = (a16.remainder(), b16.remainder());
    for (x, y) in a16.zip(b16) {
        for half in 0..2 {
            let r = half * 8..half * 8 + 8;
            let (xv, yv) = (load(&x[r.clone()]), load(&y[r]));
            ab[half] = xv.mul_add(yv, ab[half]);
            aa[half] = xv.mul_add(xv, aa[half]);
            bb[half] = yv.mul_add(yv, bb[half]);
        }
    }
    let (a8, b8) = (a_rest.chunks_exact(8), b_rest.chunks_exact(8));
    let (a_tail, b_tail) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        let (xv, yv) = (load(x), load(y));
        ab[0] = xv.mul_add(yv, ab[0]);
        aa[0] = xv.mul_add(xv, aa[0]);
        bb[0] = yv.mul_add(yv, bb[0]);
    }
    let ab = (ab[0] + ab[1]).reduce_add() + dot_scalar(a_tail, b_tail);
    let aa = (aa[0] + aa[1]).reduce_add() + dot_scalar(a_tail, a_tail);
    let bb = (bb[0] + bb[1]).reduce_add() + dot_scalar(b_tail, b_tail);
    cosine_from_parts(ab, aa, bb)
    // END SOLUTION
}

/// Cosine similarity from its three parts `a·b`, `|a|²` and `|b|²`: 0 when
/// either norm is 0 (a zero vector points nowhere), else `a·b / (|a| |b|)`.
#[inline]
pub fn cosine_from_parts(ab: f32, aa: f32, bb: f32) -> f32 {
    let denom = aa.sqrt() * bb.sqrt();
    if denom == 0.0 { 0.0 } else { ab / denom }
}

/// The distance between `a` and `b` under `metric`; **smaller is nearer**:
///
/// | metric | distance |
/// |---|---|
/// | `L2` | [`l2_sq`]`(a, b)` |
/// | `Dot` | `-`[`dot`]`(a, b)` |
/// | `Cosine` | `1 - `[`cosine`]`(a, b)` |
///
/// Given (built from your task functions).
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_sq(a, b),
        Metric::Dot => -dot(a, b),
        Metric::Cosine => 1.0 - cosine(a, b),
    }
}

/// Scalar reference for [`dot`] (given).
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_scalar: vectors of different lengths");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scalar reference for [`l2_sq`] (given).
pub fn l2_sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq_scalar: vectors of different lengths");
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Scalar reference for [`cosine`] (given).
pub fn cosine_scalar(a: &[f32], b: &[f32]) -> f32 {
    cosine_from_parts(dot_scalar(a, b), dot_scalar(a, a), dot_scalar(b, b))
}
