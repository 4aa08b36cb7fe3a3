//! Reductions over one f32 vector: `sum`, `mean`, `variance`, `max`, `argmax`.
//!
//! * `sum` keeps 64 (AVX-512), 32 (AVX2) or 16 (`wide`) independent partial sums, combined at the end: a
//!   blocked summation whose error bound is about `(n/32 + 5)·ε·Σ|x_i|`, never worse than the
//!   sequential scalar twin's `n·ε·Σ|x_i|`.
//! * `variance` is the population variance `Σ (x_i − μ)² / n` computed in **two passes** (mean
//!   first, then the squared deviations), which avoids the cancellation of `E[x²] − μ²`.
//! * `max` / `argmax` **ignore NaN** unless every element is NaN: then `max` is `Some(NaN)` and
//!   `argmax` is `Some(0)`. Ties go to the first index. Empty input gives `None`, as it does for
//!   `mean` and `variance`.

use wide::f32x8;

use super::lanes8;

/// Sum `Σ x_i` (0 for an empty slice).
#[inline]
pub fn sum(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512() {
        // SAFETY: the CPU supports AVX-512 F/BW/VL (checked just above).
        return unsafe { super::avx512::f32::sum(x) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::sum(x) };
    }
    sum_wide(x)
}

/// Portable [`sum`] on `wide` vectors, two accumulators deep.
pub fn sum_wide(x: &[f32]) -> f32 {
    let n16 = x.len() / 16 * 16;
    let (mut s0, mut s1) = (f32x8::ZERO, f32x8::ZERO);
    for c in x[..n16].chunks_exact(16) {
        s0 += lanes8(&c[..8]);
        s1 += lanes8(&c[8..]);
    }
    (s0 + s1).reduce_add() + sum_scalar(&x[n16..])
}

/// Scalar twin of [`sum`]: sequential left-to-right summation.
pub fn sum_scalar(x: &[f32]) -> f32 {
    x.iter().sum()
}

/// Arithmetic mean, `None` for an empty slice.
#[inline]
pub fn mean(x: &[f32]) -> Option<f32> {
    (!x.is_empty()).then(|| sum(x) / x.len() as f32)
}

/// Scalar twin of [`mean`].
pub fn mean_scalar(x: &[f32]) -> Option<f32> {
    (!x.is_empty()).then(|| sum_scalar(x) / x.len() as f32)
}

/// Population variance `Σ (x_i − μ)² / n` (two-pass), `None` for an empty slice.
///
/// Overflows to `+inf` when the true variance exceeds `f32::MAX` (e.g. values near `1e30`).
#[inline]
pub fn variance(x: &[f32]) -> Option<f32> {
    let mu = mean(x)?;
    Some(sum_sq_dev(x, mu) / x.len() as f32)
}

/// Scalar twin of [`variance`] (two-pass, sequential).
pub fn variance_scalar(x: &[f32]) -> Option<f32> {
    let mu = mean_scalar(x)?;
    Some(x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / x.len() as f32)
}

/// `Σ (x_i − mu)²` on the dispatched path.
#[inline]
pub(super) fn sum_sq_dev(x: &[f32], mu: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512() {
        // SAFETY: the CPU supports AVX-512 F/BW/VL (checked just above).
        return unsafe { super::avx512::f32::sum_sq_dev(x, mu) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::sum_sq_dev(x, mu) };
    }
    sum_sq_dev_wide(x, mu)
}

/// `Σ (x_i − mu)²` on `wide` vectors.
pub(super) fn sum_sq_dev_wide(x: &[f32], mu: f32) -> f32 {
    let m = f32x8::splat(mu);
    let n8 = x.len() / 8 * 8;
    let mut s = f32x8::ZERO;
    for c in x[..n8].chunks_exact(8) {
        let d = lanes8(c) - m;
        s = d.mul_add(d, s);
    }
    s.reduce_add() + x[n8..].iter().map(|v| (v - mu) * (v - mu)).sum::<f32>()
}

/// Largest element ignoring NaN (`Some(NaN)` if all are NaN, `None` if empty).
#[inline]
pub fn max(x: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512() {
        // SAFETY: the CPU supports AVX-512 F/BW/VL (checked just above).
        let m = unsafe { super::avx512::f32::max(x) };
        return finish_max(x, m);
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        let m = unsafe { avx2::max(x) };
        return finish_max(x, m);
    }
    max_wide(x)
}

/// Portable [`max`] on `wide` vectors.
pub fn max_wide(x: &[f32]) -> Option<f32> {
    let n8 = x.len() / 8 * 8;
    let mut acc = f32x8::splat(f32::NEG_INFINITY);
    for c in x[..n8].chunks_exact(8) {
        let v = lanes8(c);
        // `v > acc` is false for NaN lanes: they never replace the running maximum.
        acc = v.simd_gt(acc).bitselect(v, acc);
    }
    let m = acc.to_array().into_iter().chain(x[n8..].iter().copied()).fold(f32::NEG_INFINITY, f32::max);
    finish_max(x, m)
}

/// Scalar twin of [`max`].
pub fn max_scalar(x: &[f32]) -> Option<f32> {
    if x.is_empty() {
        return None;
    }
    // `f32::max` returns the other operand when one is NaN; starting from NaN keeps NaN only if
    // every element is NaN.
    Some(x.iter().copied().fold(f32::NAN, f32::max))
}

/// A fast path's NaN-ignoring maximum (seeded with `-inf`) to the documented result: `-inf`
/// is ambiguous (all NaN, or a real `-inf`), so it defers to the scalar twin.
#[inline]
fn finish_max(x: &[f32], m: f32) -> Option<f32> {
    if m == f32::NEG_INFINITY { max_scalar(x) } else { Some(m) }
}

/// Index of the first largest element ignoring NaN (`Some(0)` if all are NaN, `None` if empty).
#[inline]
pub fn argmax(x: &[f32]) -> Option<usize> {
    position_of_max(x, max(x)?)
}

/// Scalar twin of [`argmax`].
pub fn argmax_scalar(x: &[f32]) -> Option<usize> {
    position_of_max(x, max_scalar(x)?)
}

fn position_of_max(x: &[f32], m: f32) -> Option<usize> {
    if m.is_nan() { Some(0) } else { x.iter().position(|&v| v == m) }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 reductions: four 8-lane accumulators (32 floats per iteration).
    use std::arch::x86_64::*;

    use crate::simd::avx2::hsum;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sum(x: &[f32]) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n (or i + 8 <= n) and `x` holds n floats.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(i + 8 * k)));
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_add_ps(acc[0], _mm256_loadu_ps(p.add(i)));
                i += 8;
            }
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(s) + super::sum_scalar(&x[i..])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sum_sq_dev(x: &[f32], mu: f32) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let m = _mm256_set1_ps(mu);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n (or i + 8 <= n) and `x` holds n floats.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i + 8 * k)), m);
                    *acc = _mm256_fmadd_ps(d, d, *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m);
                acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
                i += 8;
            }
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(s) + x[i..].iter().map(|v| (v - mu) * (v - mu)).sum::<f32>()
    }

    /// NaN-ignoring maximum seeded with `-inf` (so all-NaN input gives `-inf`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: &[f32]) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let mut acc = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
        let mut i = 0;
        // `_mm256_max_ps(v, acc)` returns `acc` when `v` is NaN: NaN lanes are skipped.
        // SAFETY (all loads): i + 32 <= n (or i + 8 <= n) and `x` holds n floats.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_max_ps(_mm256_loadu_ps(p.add(i + 8 * k)), *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_max_ps(_mm256_loadu_ps(p.add(i)), acc[0]);
                i += 8;
            }
        }
        let m = _mm256_max_ps(_mm256_max_ps(acc[0], acc[1]), _mm256_max_ps(acc[2], acc[3]));
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        lanes.into_iter().chain(x[i..].iter().copied()).fold(f32::NEG_INFINITY, f32::max)
    }
}
