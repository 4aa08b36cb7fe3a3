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
    todo!("c4w3.simd-distances")
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
    todo!("c4w3.simd-distances")
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
    todo!("c4w3.simd-distances")
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
