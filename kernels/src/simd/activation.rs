//! Activations in place: numerically stable softmax, GELU (tanh approximation) and SiLU.
//!
//! * **softmax** `x_i ← exp(x_i − m) / Σ_j exp(x_j − m)` with `m = max x` (the max-subtraction
//!   trick: every exponent is `≤ 0`, so nothing overflows and the sum is `≥ 1`). Policy for
//!   non-finite input: empty is a no-op; any NaN makes every output NaN; if the maximum is `-inf`
//!   (all elements `-inf`) the output is uniform `1/n` (the limit of a constant vector); if the
//!   maximum is `+inf` the mass is shared equally by the `+inf` elements and the rest get 0.
//! * **GELU**, tanh approximation (Hendrycks & Gimpel 2016, "Gaussian Error Linear Units",
//!   arXiv:1606.08415, eq. in §2; the form used by GPT-2's `gelu`):
//!   `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, evaluated as the identical `x·σ(2u)` with
//!   `u = √(2/π)·(x + 0.044715·x³)`.
//! * **GELU, exact** `0.5·x·erfc(−x/√2)` (BERT's `gelu`), with `erfc` from the Chebyshev-fitted
//!   form of Press et al., "Numerical Recipes", 3rd ed., §6.2.2 (`erfc(z) = t·exp(−z² + P(t))`,
//!   `t = 1/(1 + z/2)`, fractional error below 1.2e-7 everywhere), evaluated in f32 on the vector
//!   `exp`; its scalar twin evaluates the same form in f64.
//! * **SiLU** / swish `x·σ(x)` (Elfwing, Uchibe & Doya 2018, "Sigmoid-weighted linear units for
//!   neural network function approximation in reinforcement learning", Neural Networks 107).
//!
//! The sigmoid is evaluated overflow-free as `σ(z) = 1/(1+e)` for `z ≥ 0` and `e/(1+e)` for
//! `z < 0`, with `e = exp(−|z|)`, so small negative outputs keep their relative accuracy down to
//! the subnormal range. `gelu(−inf) = silu(−inf) = −0`, `+inf ↦ +inf`, NaN stays NaN.

use wide::f32x8;

use super::elementwise::map_wide;

/// √(2/π), the GELU tanh-approximation constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the GELU tanh approximation.
const GELU_CUBIC: f32 = 0.044_715;

/// Numerically stable softmax in place (see the module doc for the non-finite policy).
#[inline]
pub fn softmax_in_place(x: &mut [f32]) {
    let Some(m) = super::max(x) else { return };
    if softmax_special(x, m) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::softmax_finite_max(x, m) };
    }
    softmax_finite_max_wide(x, m)
}

/// Portable [`softmax_in_place`] on `wide` vectors.
pub fn softmax_in_place_wide(x: &mut [f32]) {
    let Some(m) = super::max_wide(x) else { return };
    if !softmax_special(x, m) {
        softmax_finite_max_wide(x, m)
    }
}

fn softmax_finite_max_wide(x: &mut [f32], m: f32) {
    let mv = f32x8::splat(m);
    let n8 = x.len() / 8 * 8;
    let mut acc = f32x8::ZERO;
    let mut tail_sum = 0.0f32;
    map_wide(&mut x[..n8], |v| {
        let e = (v - mv).exp();
        acc += e;
        e
    });
    for v in &mut x[n8..] {
        *v = (*v - m).exp();
        tail_sum += *v;
    }
    let inv = f32x8::splat(1.0 / (acc.reduce_add() + tail_sum));
    map_wide(x, |v| v * inv);
}

/// Scalar twin of [`softmax_in_place`].
pub fn softmax_in_place_scalar(x: &mut [f32]) {
    let Some(m) = super::max_scalar(x) else { return };
    if softmax_special(x, m) {
        return;
    }
    let mut s = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in x.iter_mut() {
        *v /= s;
    }
}

/// Handles a non-finite maximum `m` (the rare cases of the policy); returns whether it did.
fn softmax_special(x: &mut [f32], m: f32) -> bool {
    if m.is_finite() {
        return false;
    }
    if m.is_nan() || x.iter().any(|v| v.is_nan()) {
        x.fill(f32::NAN);
    } else if m == f32::NEG_INFINITY {
        x.fill(1.0 / x.len() as f32);
    } else {
        let k = x.iter().filter(|&&v| v == f32::INFINITY).count();
        for v in x.iter_mut() {
            *v = if *v == f32::INFINITY { 1.0 / k as f32 } else { 0.0 };
        }
    }
    true
}

/// GELU, tanh approximation (GPT-2), in place.
#[inline]
pub fn gelu_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::gelu_in_place(x) };
    }
    gelu_in_place_wide(x)
}

/// Portable [`gelu_in_place`] on `wide` vectors.
pub fn gelu_in_place_wide(x: &mut [f32]) {
    let (k, c) = (f32x8::splat(GELU_CUBIC), f32x8::splat(2.0 * SQRT_2_OVER_PI));
    map_wide(x, |v| x_sigmoid_wide(v, c * (k * v * v).mul_add(v, v)))
}

/// Scalar twin of [`gelu_in_place`].
pub fn gelu_in_place_scalar(x: &mut [f32]) {
    for v in x {
        let z = 2.0 * SQRT_2_OVER_PI * (*v + GELU_CUBIC * *v * *v * *v);
        *v = x_sigmoid_scalar(*v, z);
    }
}

/// The Numerical Recipes `erfc` coefficients, `P(t) = c₀ + t·(c₁ + t·(…))` (the vector paths use
/// them rounded to f32).
const ERFC_POLY: [f64; 10] = [
    -1.265_512_23,
    1.000_023_68,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_203_98,
    1.488_515_87,
    -0.822_152_23,
    0.170_872_77,
];

/// The complementary error function, with a fractional error below 1.2e-7 everywhere
/// (Chebyshev fit `erfcc` of Press et al., *Numerical Recipes*, 2nd ed., §6.2), in f64.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = ERFC_POLY.iter().rev().fold(0.0f64, |acc, &c| acc * t + c);
    let r = t * (p - z * z).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// GELU, exact (erf) form, in place: `0.5·x·erfc(−x/√2)` (see the module doc).
#[inline]
pub fn gelu_erf_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::gelu_erf_in_place(x) };
    }
    gelu_erf_in_place_wide(x)
}

/// Portable [`gelu_erf_in_place`] on `wide` vectors.
pub fn gelu_erf_in_place_wide(x: &mut [f32]) {
    let (half, one, two) = (f32x8::splat(0.5), f32x8::ONE, f32x8::splat(2.0));
    let inv_sqrt2 = f32x8::splat(std::f32::consts::FRAC_1_SQRT_2);
    map_wide(x, |v| {
        let u = -v * inv_sqrt2;
        let z = u.abs();
        let t = one / (half * z + one);
        let mut p = f32x8::splat(ERFC_POLY[9] as f32);
        for &c in ERFC_POLY[..9].iter().rev() {
            p = p.mul_add(t, f32x8::splat(c as f32));
        }
        let r = t * (p - z * z).exp();
        let erfc = u.simd_ge(f32x8::ZERO).bitselect(r, two - r);
        half * v * erfc
    })
}

/// Scalar twin of [`gelu_erf_in_place`], in f64 ([`erfc`]).
pub fn gelu_erf_in_place_scalar(x: &mut [f32]) {
    for v in x {
        let z = f64::from(*v);
        *v = (0.5 * z * erfc(-z * std::f64::consts::FRAC_1_SQRT_2)) as f32;
    }
}

/// SiLU `x·σ(x)` in place.
#[inline]
pub fn silu_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::silu_in_place(x) };
    }
    silu_in_place_wide(x)
}

/// Portable [`silu_in_place`] on `wide` vectors.
pub fn silu_in_place_wide(x: &mut [f32]) {
    map_wide(x, |v| x_sigmoid_wide(v, v))
}

/// Scalar twin of [`silu_in_place`].
pub fn silu_in_place_scalar(x: &mut [f32]) {
    for v in x {
        *v = x_sigmoid_scalar(*v, *v);
    }
}

/// `x·σ(z)`, overflow-free; `−0` for `x = −inf`.
fn x_sigmoid_scalar(x: f32, z: f32) -> f32 {
    if x == f32::NEG_INFINITY {
        return -0.0;
    }
    let e = (-z.abs()).exp();
    let num = if z >= 0.0 { 1.0 } else { e };
    x * num / (1.0 + e)
}

fn x_sigmoid_wide(x: f32x8, z: f32x8) -> f32x8 {
    let e = (-z.abs()).exp();
    let num = z.simd_ge(f32x8::ZERO).bitselect(f32x8::ONE, e);
    let y = x * num / (f32x8::ONE + e);
    x.simd_eq(f32x8::NEG_INFINITY).bitselect(f32x8::splat(-0.0), y)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA activations on the Cephes-style vector `exp`.
    use std::arch::x86_64::*;

    use crate::simd::avx2::hsum;
    use crate::simd::elementwise::avx2::{exp, map};

    /// `x·σ(z)`, overflow-free; `−0` for `x = −inf`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn x_sigmoid(x: __m256, z: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let e = exp(_mm256_or_ps(z, sign)); // exp(−|z|)
        let one = _mm256_set1_ps(1.0);
        let num = _mm256_blendv_ps(one, e, _mm256_cmp_ps::<_CMP_LT_OQ>(z, _mm256_setzero_ps()));
        let y = _mm256_div_ps(_mm256_mul_ps(x, num), _mm256_add_ps(one, e));
        _mm256_blendv_ps(y, sign, _mm256_cmp_ps::<_CMP_EQ_OQ>(x, _mm256_set1_ps(f32::NEG_INFINITY)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu_in_place(x: &mut [f32]) {
        let (k, c) = (_mm256_set1_ps(super::GELU_CUBIC), _mm256_set1_ps(2.0 * super::SQRT_2_OVER_PI));
        map(x, |v| {
            let inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(k, v), v), v, v);
            x_sigmoid(v, _mm256_mul_ps(c, inner))
        })
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu_erf_in_place(x: &mut [f32]) {
        let (half, one, two) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0), _mm256_set1_ps(2.0));
        let neg_inv_sqrt2 = _mm256_set1_ps(-std::f32::consts::FRAC_1_SQRT_2);
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        map(x, |v| {
            let u = _mm256_mul_ps(v, neg_inv_sqrt2);
            let z = _mm256_and_ps(u, abs_mask);
            let t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
            let mut p = _mm256_set1_ps(super::ERFC_POLY[9] as f32);
            for &c in super::ERFC_POLY[..9].iter().rev() {
                p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c as f32));
            }
            let r = _mm256_mul_ps(t, exp(_mm256_fnmadd_ps(z, z, p)));
            let erfc = _mm256_blendv_ps(_mm256_sub_ps(two, r), r, _mm256_cmp_ps::<_CMP_GE_OQ>(u, _mm256_setzero_ps()));
            _mm256_mul_ps(_mm256_mul_ps(half, v), erfc)
        })
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn silu_in_place(x: &mut [f32]) {
        map(x, |v| x_sigmoid(v, v))
    }

    /// Softmax given a finite maximum `m`: exponentiate and sum in one pass, then scale.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_finite_max(x: &mut [f32], m: f32) {
        let mv = _mm256_set1_ps(m);
        let n8 = x.len() / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        map(&mut x[..n8], |v| {
            let e = exp(_mm256_sub_ps(v, mv));
            acc = _mm256_add_ps(acc, e);
            e
        });
        let mut tail_sum = 0.0f32;
        for v in &mut x[n8..] {
            *v = (*v - m).exp();
            tail_sum += *v;
        }
        let inv = _mm256_set1_ps(1.0 / (hsum(acc) + tail_sum));
        map(x, |v| _mm256_mul_ps(v, inv));
    }
}
