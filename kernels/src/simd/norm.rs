//! Normalisation layers: RMSNorm and LayerNorm over one f32 vector.
//!
//! * **RMSNorm** (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", NeurIPS;
//!   arXiv:1910.07467), as in LLaMA: `out_i = x_i / √(mean(x²) + eps) · w_i`.
//! * **LayerNorm** (Ba, Kiros & Hinton 2016, "Layer Normalization", arXiv:1607.06450):
//!   `out_i = (x_i − μ) / √(σ² + eps) · w_i + b_i` with the population variance `σ²`.
//!
//! The statistics are accumulated in f32 on the SIMD paths (`dot`, `sum` and a two-pass
//! variance). When the f32 statistic is not trustworthy (it overflowed, as for values near
//! `1e30`, or it is below `1e-20`, where squares of tiny values go subnormal) it is recomputed in
//! f64, so large and tiny inputs still normalise correctly. The fast paths also scale in f64
//! in the rare case where `1/σ` is outside the normal f32 range (subnormal inputs with `eps = 0`).
//! The scalar twins work in f64 throughout. Empty input is a no-op; NaN or ±inf in `x` gives NaN (or 0) outputs, never a panic.

use wide::f32x8;

use super::lanes8;

/// Below this the f32 sum of squares may have lost precision to subnormals: recompute in f64.
const F32_STAT_FLOOR: f32 = 1e-20;

fn check_lens(op: &str, x: usize, others: &[usize]) {
    for &n in others {
        assert_eq!(n, x, "{op}: every slice must have the length of x");
    }
}

/// `1/√(mean(x²) + eps)` from an f32 sum of squares, recomputed in f64 when untrustworthy.
fn inv_rms(x: &[f32], sum_sq: f32, eps: f32) -> f64 {
    let n = x.len() as f32;
    if sum_sq.is_finite() && sum_sq >= F32_STAT_FLOOR {
        (1.0 / (sum_sq / n + eps).sqrt()) as f64
    } else {
        inv_rms_f64(x, eps)
    }
}

fn inv_rms_f64(x: &[f32], eps: f32) -> f64 {
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    1.0 / (ms + eps as f64).sqrt()
}

/// `(μ, 1/√(σ² + eps))` from f32 statistics, recomputed in f64 when untrustworthy.
fn mean_inv_std(x: &[f32], mu: f32, sum_sq_dev: f32, eps: f32) -> (f32, f64) {
    let n = x.len() as f32;
    if mu.is_finite() && sum_sq_dev.is_finite() && sum_sq_dev >= F32_STAT_FLOOR {
        (mu, (1.0 / (sum_sq_dev / n + eps).sqrt()) as f64)
    } else {
        mean_inv_std_f64(x, eps)
    }
}

fn mean_inv_std_f64(x: &[f32], eps: f32) -> (f32, f64) {
    let n = x.len() as f64;
    let mu = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mu) * (v as f64 - mu)).sum::<f64>() / n;
    (mu as f32, 1.0 / (var + eps as f64).sqrt())
}

/// The f32 scale if it is a normal f32; `None` when the inverse deviation is out of f32 range
/// (subnormal inputs with `eps = 0`), which the caller then applies in f64.
fn f32_scale(inv: f64) -> Option<f32> {
    let s = inv as f32;
    s.is_normal().then_some(s)
}

/// `out_i = (x_i − mu)·inv·w_i (+ b_i)` with the scale in f64 (reference and out-of-range path).
fn scale_shift_f64(x: &[f32], mu: f32, inv: f64, w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
    for i in 0..x.len() {
        let t = (x[i] as f64 - mu as f64) * inv * w[i] as f64;
        out[i] = (t + b.map_or(0.0, |b| b[i] as f64)) as f32;
    }
}

/// RMSNorm (LLaMA): `out_i = x_i / √(mean(x²) + eps) · weight_i`.
///
/// # Panics
/// If `weight` or `out` is not as long as `x`.
#[inline]
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("rms_norm", x.len(), &[weight.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    let Some(inv) = f32_scale(inv_rms(x, super::dot(x, x), eps)) else {
        return scale_shift_f64(x, 0.0, inv_rms_f64(x, eps), weight, None, out);
    };
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::scale_shift(x, 0.0, inv, weight, None, out) };
    }
    scale_shift_wide(x, 0.0, inv, weight, None, out)
}

/// Portable [`rms_norm`] on `wide` vectors.
///
/// # Panics
/// If `weight` or `out` is not as long as `x`.
pub fn rms_norm_wide(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("rms_norm", x.len(), &[weight.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    let Some(inv) = f32_scale(inv_rms(x, super::dot_wide(x, x), eps)) else {
        return scale_shift_f64(x, 0.0, inv_rms_f64(x, eps), weight, None, out);
    };
    scale_shift_wide(x, 0.0, inv, weight, None, out)
}

/// Scalar twin of [`rms_norm`] (statistics in f64).
///
/// # Panics
/// If `weight` or `out` is not as long as `x`.
pub fn rms_norm_scalar(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("rms_norm", x.len(), &[weight.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    scale_shift_f64(x, 0.0, inv_rms_f64(x, eps), weight, None, out)
}

/// LayerNorm: `out_i = (x_i − μ) / √(σ² + eps) · weight_i + bias_i` (population variance).
///
/// # Panics
/// If `weight`, `bias` or `out` is not as long as `x`.
#[inline]
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("layer_norm", x.len(), &[weight.len(), bias.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    let mu = super::sum(x) / x.len() as f32;
    let (mu, inv64) = mean_inv_std(x, mu, super::reduce::sum_sq_dev(x, mu), eps);
    let Some(inv) = f32_scale(inv64) else {
        return scale_shift_f64(x, mu, inv64, weight, Some(bias), out);
    };
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::scale_shift(x, mu, inv, weight, Some(bias), out) };
    }
    scale_shift_wide(x, mu, inv, weight, Some(bias), out)
}

/// Portable [`layer_norm`] on `wide` vectors.
///
/// # Panics
/// If `weight`, `bias` or `out` is not as long as `x`.
pub fn layer_norm_wide(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("layer_norm", x.len(), &[weight.len(), bias.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    let mu = super::sum_wide(x) / x.len() as f32;
    let (mu, inv64) = mean_inv_std(x, mu, super::reduce::sum_sq_dev_wide(x, mu), eps);
    let Some(inv) = f32_scale(inv64) else {
        return scale_shift_f64(x, mu, inv64, weight, Some(bias), out);
    };
    scale_shift_wide(x, mu, inv, weight, Some(bias), out)
}

/// Scalar twin of [`layer_norm`] (statistics in f64).
///
/// # Panics
/// If `weight`, `bias` or `out` is not as long as `x`.
pub fn layer_norm_scalar(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    check_lens("layer_norm", x.len(), &[weight.len(), bias.len(), out.len()]);
    if x.is_empty() {
        return;
    }
    let (mu, inv) = mean_inv_std_f64(x, eps);
    scale_shift_f64(x, mu, inv, weight, Some(bias), out)
}

/// `out_i = (x_i − mu)·inv·w_i (+ b_i)` on `wide` vectors; lengths already checked.
fn scale_shift_wide(x: &[f32], mu: f32, inv: f32, w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
    let n8 = x.len() / 8 * 8;
    let (m, s) = (f32x8::splat(mu), f32x8::splat(inv));
    for i in (0..n8).step_by(8) {
        let t = (lanes8(&x[i..i + 8]) - m) * s;
        let r = match b {
            Some(b) => t.mul_add(lanes8(&w[i..i + 8]), lanes8(&b[i..i + 8])),
            None => t * lanes8(&w[i..i + 8]),
        };
        out[i..i + 8].copy_from_slice(&r.to_array());
    }
    for i in n8..x.len() {
        out[i] = (x[i] - mu) * inv * w[i] + b.map_or(0.0, |b| b[i]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA normalisation apply step.
    use std::arch::x86_64::*;

    /// `out_i = (x_i − mu)·inv·w_i (+ b_i)`; all slices hold at least `x.len()` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scale_shift(x: &[f32], mu: f32, inv: f32, w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
        let n = x.len().min(w.len()).min(out.len()).min(b.map_or(usize::MAX, <[f32]>::len));
        let (m, s) = (_mm256_set1_ps(mu), _mm256_set1_ps(inv));
        let (px, pw, po) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        // SAFETY (all loads and stores): i + 8 <= n, and every slice holds at least n floats.
        unsafe {
            while i + 8 <= n {
                let t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(px.add(i)), m), s);
                let wv = _mm256_loadu_ps(pw.add(i));
                let r = match b {
                    Some(b) => _mm256_fmadd_ps(t, wv, _mm256_loadu_ps(b.as_ptr().add(i))),
                    None => _mm256_mul_ps(t, wv),
                };
                _mm256_storeu_ps(po.add(i), r);
                i += 8;
            }
        }
        for i in i..n {
            out[i] = (x[i] - mu) * inv * w[i] + b.map_or(0.0, |b| b[i]);
        }
    }
}
