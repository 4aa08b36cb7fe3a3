//! Vector kernels with runtime CPU dispatch: distances (dot product, squared L2, cosine) and f32 vector ops.
//!
//! Each distance has four implementations, one per [`Level`]: AVX-512 (F/BW/VL/VNNI, 16 lanes,
//! masked tails) and AVX2+FMA(+F16C) paths chosen at run time when the CPU has them (x86-64),
//! a portable path on `wide`'s 8-lane vectors (compiled for whatever the build targets: NEON on
//! aarch64, SSE2 or better on x86-64), and a scalar twin (`*_scalar`) that the tests use as
//! reference. The level is detected once and cached ([`level`]); every dispatched distance also
//! has a `*_at` form that runs a chosen level. All paths keep several independent accumulators
//! so the additions pipeline, and the cosine kernels fuse `a·b`, `|a|²` and `|b|²` into one pass.
//!
//! The same distances exist for f16 and bf16 storage (widened exactly, accumulated in f32:
//! [`dot_f16`], [`cosine_bf16`], …, plus the conversions [`f16_to_f32`] and [`bf16_to_f32`] that
//! let every f32 op below run on half-precision data) and for i8 with exact integer results
//! ([`dot_i8`], [`l2_sq_i8`], [`cosine_i8`]). [`cdist`], [`cdist_f16`], [`cdist_bf16`] and
//! [`cdist_i8`] compute a whole query × base distance matrix, widening each half-precision vector
//! once instead of once per pair (and taking each i8 vector's norm once).
//!
//! Lengths are checked with `debug_assert!` on the hot path; the checked
//! wrappers in [`Metric::distance`] return [`crate::Error::DimensionMismatch`].
//!
//! Beyond distances, the submodules hold the f32 vector kernels of a transformer
//! block, re-exported here, each with the same three paths (dispatch, `*_wide`
//! where the portable path is worth naming, `*_scalar` twin):
//!
//! * reductions ([`sum`], [`mean`], [`variance`], [`max`], [`argmax`]),
//! * element-wise ([`axpy`], [`exp_in_place`]),
//! * activations ([`softmax_in_place`], [`gelu_in_place`], [`silu_in_place`]),
//! * normalisation ([`rms_norm`], [`layer_norm`]).
//!
//! Convention for these ops: a length mismatch between slices that must agree
//! is a caller bug and **panics** (a documented `assert_eq!`, one comparison per
//! call, so it is kept in release builds too); they never return `Result`.
//! Empty input is never an error: reductions with no meaningful value return
//! `None`, in-place and normalisation ops do nothing.

use std::sync::atomic::{AtomicU8, Ordering};

use wide::f32x8;

mod activation;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod cdist;
mod elementwise;
mod half;
mod int8;
mod norm;
mod reduce;

pub use activation::{
    erfc, gelu_erf_in_place, gelu_erf_in_place_scalar, gelu_erf_in_place_wide, gelu_in_place, gelu_in_place_scalar,
    gelu_in_place_wide, silu_in_place, silu_in_place_scalar, silu_in_place_wide, softmax_in_place,
    softmax_in_place_scalar, softmax_in_place_wide,
};
pub use cdist::{cdist, cdist_bf16, cdist_f16, cdist_i8};
pub use elementwise::{axpy, axpy_scalar, axpy_wide, exp_in_place, exp_in_place_scalar, exp_in_place_wide};
pub use half::{
    bf16_to_f32, bf16_to_f32_at, bf16_to_f32_scalar, cosine_bf16, cosine_bf16_at, cosine_bf16_scalar, cosine_f16,
    cosine_f16_at, cosine_f16_scalar, dot_bf16, dot_bf16_at, dot_bf16_scalar, dot_f16, dot_f16_at, dot_f16_scalar,
    f16_to_f32, f16_to_f32_at, f16_to_f32_scalar, l2_sq_bf16, l2_sq_bf16_at, l2_sq_bf16_scalar, l2_sq_f16,
    l2_sq_f16_at, l2_sq_f16_scalar,
};
pub use int8::{
    I8_BLOCK, cosine_i8, cosine_i8_at, cosine_i8_scalar, dot_i8, dot_i8_at, dot_i8_scalar, l2_sq_i8, l2_sq_i8_at,
    l2_sq_i8_scalar,
};
pub use norm::{layer_norm, layer_norm_scalar, layer_norm_wide, rms_norm, rms_norm_scalar, rms_norm_wide};
pub use reduce::{
    argmax, argmax_scalar, max, max_scalar, max_wide, mean, mean_scalar, sum, sum_scalar, sum_wide, variance,
    variance_scalar,
};

/// Which distance an index ranks by. Smaller is always nearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance `Σ (a_i - b_i)²`.
    L2,
    /// Negated dot product `-a·b` (maximum inner product search).
    Dot,
    /// Cosine distance `1 - a·b / (|a| |b|)`.
    Cosine,
}

impl Metric {
    /// The distance between `a` and `b` under this metric (smaller is nearer).
    /// Panics in debug builds if the lengths differ; see [`Metric::checked`].
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => l2_sq(a, b),
            Metric::Dot => -dot(a, b),
            Metric::Cosine => 1.0 - cosine(a, b),
        }
    }

    /// [`Metric::distance`] with a typed error for mismatched lengths.
    pub fn checked(self, a: &[f32], b: &[f32]) -> crate::Result<f32> {
        if a.len() != b.len() {
            return Err(crate::Error::DimensionMismatch { expected: a.len(), got: b.len() });
        }
        Ok(self.distance(a, b))
    }
}

// ANCHOR: dispatch
/// A code path of the dispatched kernels, from the plainest to the widest.
///
/// [`level`] is the best one this CPU has; the `*_at` functions run a kernel on a chosen level
/// (clamped to what the CPU has, so any level is safe to ask for), which is how the tests reach
/// every path on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The scalar twins: sequential loops, the reference for every other path.
    Scalar,
    /// `wide`'s 8-lane vectors (or plain loops the compiler vectorises), for any target.
    Portable,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and VNNI (and everything [`Level::Avx2`] needs).
    Avx512,
}

impl Level {
    /// `self`, lowered to the best level this CPU supports if it does not support `self`.
    #[inline]
    pub fn supported(self) -> Level {
        self.min(level())
    }
}

/// Detected level + 1; 0 until the first call to [`level`].
static DETECTED: AtomicU8 = AtomicU8::new(0);

/// The widest [`Level`] this CPU supports, detected once and cached (one relaxed load per call;
/// a constant when the build already targets AVX-512, as `-C target-cpu=native` does here).
#[inline]
pub fn level() -> Level {
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vl",
        target_feature = "avx512vnni"
    )) {
        return Level::Avx512;
    }
    match DETECTED.load(Ordering::Relaxed) {
        0 => detect(),
        1 => Level::Scalar,
        2 => Level::Portable,
        3 => Level::Avx2,
        _ => Level::Avx512,
    }
}

#[cold]
fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    let best = {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma") && has!("f16c")) {
            Level::Portable
        } else if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
            Level::Avx512
        } else {
            Level::Avx2
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let best = Level::Portable;
    DETECTED.store(best as u8 + 1, Ordering::Relaxed);
    best
}

/// Dot product `Σ a_i b_i`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_at(level(), a, b)
}

/// [`dot`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn dot_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    match level.supported() {
        // SAFETY: `supported()` only returns levels whose features this CPU has; both slices
        // hold at least `n` floats.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::f32::dot(a.as_ptr(), b.as_ptr(), n) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::dot(a, b) },
        Level::Scalar => dot_scalar(a, b),
        _ => dot_wide(a, b),
    }
}
// ANCHOR_END: dispatch

/// `out[t] = q · rows[t·stride..t·stride + q.len()]` for every `t < out.len()`: one query against
/// rows laid out `stride` apart (one head's keys in a KV cache). Each value is bit-identical to
/// [`dot`] of the pair; on AVX-512 four rows share each load of `q`.
///
/// # Panics
/// If the last row runs past `rows`.
pub fn dot_rows(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let n = q.len();
    assert!(out.is_empty() || (out.len() - 1) * stride + n <= rows.len(), "dot_rows: rows too short");
    let row = |t: usize| &rows[t * stride..t * stride + n];
    let mut t = 0;
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        while t + 4 <= out.len() {
            let a = [0, 1, 2, 3].map(|i| row(t + i).as_ptr());
            // SAFETY: the CPU has AVX-512 F/BW/VL (the level says so); `q` and each of the four
            // rows hold `n` floats (bounds checked by `row`). `dot4(a_r, q)` multiplies the same
            // pairs in the same order as `dot(q, a_r)`.
            let dots = unsafe { avx512::f32::dot4(a, q.as_ptr(), n) };
            out[t..t + 4].copy_from_slice(&dots);
            t += 4;
        }
    }
    for (t, o) in out.iter_mut().enumerate().skip(t) {
        *o = dot(q, row(t));
    }
}

/// `y_j += Σ_t ws[j][t] · rows[t·stride..t·stride + n]` for each weight vector `ws[j]`, where `y` is
/// `ws.len()` outputs of `n` floats, one after another (the query heads of one KV group, weighting
/// the same value rows). Per element bit-identical to [`axpy`]`(ws[j][t], row_t, y_j)` for
/// `t = 0, 1, …` in turn; on AVX-512 each row is loaded once for four outputs, which stay in
/// registers across the rows.
///
/// # Panics
/// If `y` is not `ws.len()` equal parts, the weight vectors differ in length, or the last row runs
/// past `rows`.
pub fn axpy_rows(ws: &[&[f32]], rows: &[f32], stride: usize, y: &mut [f32]) {
    if ws.is_empty() {
        assert!(y.is_empty(), "axpy_rows: outputs without weights");
        return;
    }
    assert!(y.len().is_multiple_of(ws.len()), "axpy_rows: {} floats for {} outputs", y.len(), ws.len());
    let (n, positions) = (y.len() / ws.len(), ws[0].len());
    assert!(ws.iter().all(|w| w.len() == positions), "axpy_rows: weight vectors of different lengths");
    assert!(positions == 0 || (positions - 1) * stride + n <= rows.len(), "axpy_rows: rows too short");
    if n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 && n.is_multiple_of(16) {
        for (ws, y) in ws.chunks(4).zip(y.chunks_mut(4 * n)) {
            let (r, yp) = (rows.as_ptr(), y.as_mut_ptr());
            let w = |j: usize| ws[j].as_ptr();
            // SAFETY: the CPU has AVX-512 F/BW/VL; every weight vector holds `positions` floats,
            // `y` holds `ws.len()·n`, and every row `n` (asserted above). With `n` a multiple of 16
            // (and so of 8) `axpy` has no scalar tail: it is one FMA per element, as here.
            unsafe {
                match ws.len() {
                    1 => avx512::f32::axpy_rows([w(0)], positions, r, stride, yp, n),
                    2 => avx512::f32::axpy_rows([w(0), w(1)], positions, r, stride, yp, n),
                    3 => avx512::f32::axpy_rows([w(0), w(1), w(2)], positions, r, stride, yp, n),
                    _ => avx512::f32::axpy_rows([w(0), w(1), w(2), w(3)], positions, r, stride, yp, n),
                }
            }
        }
        return;
    }
    for (w, y) in ws.iter().zip(y.chunks_exact_mut(n)) {
        for (t, &a) in w.iter().enumerate() {
            axpy(a, &rows[t * stride..t * stride + n], y);
        }
    }
}

/// Squared Euclidean distance `Σ (a_i - b_i)²`.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    l2_sq_at(level(), a, b)
}

/// [`l2_sq`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn l2_sq_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    match level.supported() {
        // SAFETY: `supported()` only returns levels whose features this CPU has; both slices
        // hold at least `n` floats.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::f32::l2_sq(a.as_ptr(), b.as_ptr(), n) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::l2_sq(a, b) },
        Level::Scalar => l2_sq_scalar(a, b),
        _ => l2_sq_wide(a, b),
    }
}

/// Cosine similarity `a·b / (|a| |b|)`, 0 when either vector is all zeros.
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_at(level(), a, b)
}

/// [`cosine`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn cosine_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (ab, aa, bb) = match level.supported() {
        // SAFETY: `supported()` only returns levels whose features this CPU has; both slices
        // hold at least `n` floats.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::f32::dot_norms(a.as_ptr(), b.as_ptr(), n) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::dot_norms(a, b) },
        Level::Scalar => return cosine_scalar(a, b),
        _ => dot_norms_wide(a, b),
    };
    cosine_from_parts(ab, aa, bb)
}

/// The name of the path [`dot`], [`l2_sq`], [`cosine`] and the other dispatched kernels take on this CPU.
pub fn active_path() -> &'static str {
    match level() {
        Level::Avx512 => "avx512 (f/bw/vl/vnni)",
        Level::Avx2 => "avx2+fma+f16c",
        Level::Portable => "wide (portable 8-lane)",
        Level::Scalar => "scalar",
    }
}

#[inline]
fn cosine_from_parts(ab: f32, aa: f32, bb: f32) -> f32 {
    let denom = (aa * bb).sqrt();
    if denom == 0.0 { 0.0 } else { ab / denom }
}

/// True when the AVX2+FMA(+F16C) kernels may run (the submodules' dispatch test).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2_fma() -> bool {
    level() >= Level::Avx2
}

/// True when the AVX-512 kernels may run.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512() -> bool {
    level() >= Level::Avx512
}

/// Scalar twin of [`dot`]: the reference the SIMD paths are tested against.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scalar twin of [`l2_sq`].
pub fn l2_sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Scalar twin of [`cosine`].
pub fn cosine_scalar(a: &[f32], b: &[f32]) -> f32 {
    let ab = dot_scalar(a, b);
    let aa = dot_scalar(a, a);
    let bb = dot_scalar(b, b);
    cosine_from_parts(ab, aa, bb)
}

fn lanes8(s: &[f32]) -> f32x8 {
    f32x8::from(<[f32; 8]>::try_from(s).expect("8 lanes"))
}

/// Portable dot product on `wide` vectors, two accumulators deep.
pub fn dot_wide(a: &[f32], b: &[f32]) -> f32 {
    let n16 = a.len() / 16 * 16;
    let (mut s0, mut s1) = (f32x8::ZERO, f32x8::ZERO);
    let mut i = 0;
    while i < n16 {
        s0 = lanes8(&a[i..i + 8]).mul_add(lanes8(&b[i..i + 8]), s0);
        s1 = lanes8(&a[i + 8..i + 16]).mul_add(lanes8(&b[i + 8..i + 16]), s1);
        i += 16;
    }
    (s0 + s1).reduce_add() + dot_scalar(&a[n16..], &b[n16..])
}

/// Portable squared L2 on `wide` vectors, two accumulators deep.
pub fn l2_sq_wide(a: &[f32], b: &[f32]) -> f32 {
    let n16 = a.len() / 16 * 16;
    let (mut s0, mut s1) = (f32x8::ZERO, f32x8::ZERO);
    let mut i = 0;
    while i < n16 {
        let d0 = lanes8(&a[i..i + 8]) - lanes8(&b[i..i + 8]);
        let d1 = lanes8(&a[i + 8..i + 16]) - lanes8(&b[i + 8..i + 16]);
        s0 = d0.mul_add(d0, s0);
        s1 = d1.mul_add(d1, s1);
        i += 16;
    }
    (s0 + s1).reduce_add() + l2_sq_scalar(&a[n16..], &b[n16..])
}

/// Portable fused `(a·b, |a|², |b|²)` on `wide` vectors.
pub fn dot_norms_wide(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n8 = a.len() / 8 * 8;
    let (mut ab, mut aa, mut bb) = (f32x8::ZERO, f32x8::ZERO, f32x8::ZERO);
    let mut i = 0;
    while i < n8 {
        let (x, y) = (lanes8(&a[i..i + 8]), lanes8(&b[i..i + 8]));
        ab = x.mul_add(y, ab);
        aa = x.mul_add(x, aa);
        bb = y.mul_add(y, bb);
        i += 8;
    }
    let (ta, tb) = (&a[n8..], &b[n8..]);
    (ab.reduce_add() + dot_scalar(ta, tb), aa.reduce_add() + dot_scalar(ta, ta), bb.reduce_add() + dot_scalar(tb, tb))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA kernels: four 8-lane accumulators (32 floats per iteration)
    //! hide the 4-cycle FMA latency on current x86 cores.
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n, and both slices hold at least n floats.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                    let y = _mm256_loadu_ps(pb.add(i + 8 * k));
                    *acc = _mm256_fmadd_ps(x, y, *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
                i += 8;
            }
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(s) + super::dot_scalar(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n, and both slices hold at least n floats.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8 * k)), _mm256_loadu_ps(pb.add(i + 8 * k)));
                    *acc = _mm256_fmadd_ps(d, d, *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
                i += 8;
            }
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(s) + super::l2_sq_scalar(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut ab, mut aa, mut bb) = ([_mm256_setzero_ps(); 2], [_mm256_setzero_ps(); 2], [_mm256_setzero_ps(); 2]);
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n, and both slices hold at least n floats.
        unsafe {
            while i + 16 <= n {
                for k in 0..2 {
                    let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                    let y = _mm256_loadu_ps(pb.add(i + 8 * k));
                    ab[k] = _mm256_fmadd_ps(x, y, ab[k]);
                    aa[k] = _mm256_fmadd_ps(x, x, aa[k]);
                    bb[k] = _mm256_fmadd_ps(y, y, bb[k]);
                }
                i += 16;
            }
        }
        let (ta, tb) = (&a[i..n], &b[i..n]);
        (
            hsum(_mm256_add_ps(ab[0], ab[1])) + super::dot_scalar(ta, tb),
            hsum(_mm256_add_ps(aa[0], aa[1])) + super::dot_scalar(ta, ta),
            hsum(_mm256_add_ps(bb[0], bb[1])) + super::dot_scalar(tb, tb),
        )
    }
}
