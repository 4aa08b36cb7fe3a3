//! f16 and bf16 vector kernels: widening conversions to f32, and dot product, squared L2 and
//! cosine computed on the widened values with f32 accumulation.
//!
//! Storage is [`half::f16`] (IEEE binary16) or [`half::bf16`] (bfloat16); arithmetic is f32, so
//! results match the f32 kernels on the widened vectors up to summation order. Every kernel has
//! the same levels as the f32 ones (see [`Level`]):
//!
//! * AVX-512: 16 lanes, f16 widened with `vcvtph2ps`, bf16 by a 16-bit shift, masked tail;
//! * AVX2+FMA+F16C: 8 lanes, the same widening, zero-padded tail;
//! * portable: `wide` 8-lane vectors fed by `half`'s own conversion;
//! * scalar twins (`*_scalar`): sequential f32 sums, the reference of the tests.
//!
//! Widening is exact, so the conversions ([`f16_to_f32`], [`bf16_to_f32`]) are bit-exact with
//! `half`'s `to_f32` on every path, NaN payloads included (signalling NaNs come out quiet). Use
//! them to run the other f32 kernels ([`super::axpy`], [`super::softmax_in_place`],
//! [`super::rms_norm`], …) on half-precision data.
//!
//! Length mismatches panic in the conversions (`assert_eq!`), and are a `debug_assert!` in the
//! distances, as for the f32 distances (the shorter length is used in release builds).

use half::{bf16, f16};
use wide::f32x8;

use super::{Level, cosine_from_parts, level};

/// An element type the portable and scalar paths widen with `half`'s conversion.
trait Widen: Copy {
    fn widen(self) -> f32;
}

impl Widen for f16 {
    #[inline]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Widen for bf16 {
    #[inline]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

fn widen8<T: Widen>(s: &[T]) -> f32x8 {
    f32x8::from(std::array::from_fn::<f32, 8, _>(|i| s[i].widen()))
}

fn dot_scalar<T: Widen>(a: &[T], b: &[T]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.widen() * y.widen()).sum()
}

fn l2_sq_scalar<T: Widen>(a: &[T], b: &[T]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x.widen() - y.widen()) * (x.widen() - y.widen())).sum()
}

fn cosine_scalar<T: Widen>(a: &[T], b: &[T]) -> f32 {
    cosine_from_parts(dot_scalar(a, b), dot_scalar(a, a), dot_scalar(b, b))
}

fn dot_wide<T: Widen>(a: &[T], b: &[T]) -> f32 {
    let n8 = a.len().min(b.len()) / 8 * 8;
    let mut s = f32x8::ZERO;
    for (x, y) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        s = widen8(x).mul_add(widen8(y), s);
    }
    s.reduce_add() + dot_scalar(&a[n8..], &b[n8..])
}

fn l2_sq_wide<T: Widen>(a: &[T], b: &[T]) -> f32 {
    let n8 = a.len().min(b.len()) / 8 * 8;
    let mut s = f32x8::ZERO;
    for (x, y) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        let d = widen8(x) - widen8(y);
        s = d.mul_add(d, s);
    }
    s.reduce_add() + l2_sq_scalar(&a[n8..], &b[n8..])
}

fn dot_norms_wide<T: Widen>(a: &[T], b: &[T]) -> (f32, f32, f32) {
    let n8 = a.len().min(b.len()) / 8 * 8;
    let (mut ab, mut aa, mut bb) = (f32x8::ZERO, f32x8::ZERO, f32x8::ZERO);
    for (x, y) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        let (x, y) = (widen8(x), widen8(y));
        ab = x.mul_add(y, ab);
        aa = x.mul_add(x, aa);
        bb = y.mul_add(y, bb);
    }
    let (ta, tb) = (&a[n8..], &b[n8..]);
    (ab.reduce_add() + dot_scalar(ta, tb), aa.reduce_add() + dot_scalar(ta, ta), bb.reduce_add() + dot_scalar(tb, tb))
}

/// Writes the dispatched distance functions of one half type (`$T`, kernels in `$m`).
macro_rules! half_distances {
    ($T:ident, $m:ident, $name:literal,
     $dot:ident, $dot_at:ident, $dot_scalar:ident,
     $l2:ident, $l2_at:ident, $l2_scalar:ident,
     $cos:ident, $cos_at:ident, $cos_scalar:ident) => {
        #[doc = concat!("Dot product `Σ a_i b_i` of two ", $name, " vectors, accumulated in f32.")]
        #[inline]
        pub fn $dot(a: &[$T], b: &[$T]) -> f32 {
            $dot_at(level(), a, b)
        }

        #[doc = concat!("[`", stringify!($dot), "`] on the path `level` (clamped to what this CPU supports).")]
        #[inline]
        pub fn $dot_at(level: Level, a: &[$T], b: &[$T]) -> f32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            match level.supported() {
                // SAFETY: `supported()` only returns levels whose features this CPU has; both
                // slices hold at least `n` elements.
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => unsafe { super::avx512::$m::dot(a.as_ptr(), b.as_ptr(), n) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => unsafe { avx2::$m::dot(a.as_ptr(), b.as_ptr(), n) },
                Level::Scalar => $dot_scalar(a, b),
                _ => dot_wide(a, b),
            }
        }

        #[doc = concat!("Scalar twin of [`", stringify!($dot), "`]: sequential f32 sum of the widened products.")]
        pub fn $dot_scalar(a: &[$T], b: &[$T]) -> f32 {
            dot_scalar(a, b)
        }

        #[doc = concat!("Squared Euclidean distance `Σ (a_i − b_i)²` of two ", $name, " vectors, in f32.")]
        #[inline]
        pub fn $l2(a: &[$T], b: &[$T]) -> f32 {
            $l2_at(level(), a, b)
        }

        #[doc = concat!("[`", stringify!($l2), "`] on the path `level` (clamped to what this CPU supports).")]
        #[inline]
        pub fn $l2_at(level: Level, a: &[$T], b: &[$T]) -> f32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            match level.supported() {
                // SAFETY: `supported()` only returns levels whose features this CPU has; both
                // slices hold at least `n` elements.
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => unsafe { super::avx512::$m::l2_sq(a.as_ptr(), b.as_ptr(), n) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => unsafe { avx2::$m::l2_sq(a.as_ptr(), b.as_ptr(), n) },
                Level::Scalar => $l2_scalar(a, b),
                _ => l2_sq_wide(a, b),
            }
        }

        #[doc = concat!("Scalar twin of [`", stringify!($l2), "`].")]
        pub fn $l2_scalar(a: &[$T], b: &[$T]) -> f32 {
            l2_sq_scalar(a, b)
        }

        #[doc = concat!("Cosine similarity of two ", $name, " vectors (0 when either is all zeros); `a·b`, `|a|²` and `|b|²` in one pass.")]
        #[inline]
        pub fn $cos(a: &[$T], b: &[$T]) -> f32 {
            $cos_at(level(), a, b)
        }

        #[doc = concat!("[`", stringify!($cos), "`] on the path `level` (clamped to what this CPU supports).")]
        #[inline]
        pub fn $cos_at(level: Level, a: &[$T], b: &[$T]) -> f32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let (ab, aa, bb) = match level.supported() {
                // SAFETY: `supported()` only returns levels whose features this CPU has; both
                // slices hold at least `n` elements.
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => unsafe { super::avx512::$m::dot_norms(a.as_ptr(), b.as_ptr(), n) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => unsafe { avx2::$m::dot_norms(a.as_ptr(), b.as_ptr(), n) },
                Level::Scalar => return $cos_scalar(a, b),
                _ => dot_norms_wide(a, b),
            };
            cosine_from_parts(ab, aa, bb)
        }

        #[doc = concat!("Scalar twin of [`", stringify!($cos), "`] (three sequential sums).")]
        pub fn $cos_scalar(a: &[$T], b: &[$T]) -> f32 {
            cosine_scalar(a, b)
        }
    };
}

half_distances!(
    f16,
    f16,
    "f16",
    dot_f16,
    dot_f16_at,
    dot_f16_scalar,
    l2_sq_f16,
    l2_sq_f16_at,
    l2_sq_f16_scalar,
    cosine_f16,
    cosine_f16_at,
    cosine_f16_scalar
);
half_distances!(
    bf16,
    bf16,
    "bf16",
    dot_bf16,
    dot_bf16_at,
    dot_bf16_scalar,
    l2_sq_bf16,
    l2_sq_bf16_at,
    l2_sq_bf16_scalar,
    cosine_bf16,
    cosine_bf16_at,
    cosine_bf16_scalar
);

/// Widens `src` into `dst`, bit-exact with `f16::to_f32` (NaNs quieted, subnormals exact).
///
/// # Panics
/// If `src.len() != dst.len()`.
#[inline]
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    f16_to_f32_at(level(), src, dst)
}

/// [`f16_to_f32`] on the path `level` (clamped to what this CPU supports).
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn f16_to_f32_at(level: Level, src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: src and dst lengths differ");
    match level.supported() {
        // SAFETY: `supported()` only returns levels whose features this CPU has; both slices
        // hold `src.len()` elements.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { super::avx512::f16::to_f32(src.as_ptr(), dst.as_mut_ptr(), src.len()) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::f16::to_f32(src.as_ptr(), dst.as_mut_ptr(), src.len()) },
        _ => f16_to_f32_scalar(src, dst),
    }
}

/// Scalar twin of [`f16_to_f32`] (`f16::to_f32` per element; also the portable path).
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn f16_to_f32_scalar(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: src and dst lengths differ");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Widens `src` into `dst`, bit-exact with `bf16::to_f32` (signalling NaNs quieted).
///
/// # Panics
/// If `src.len() != dst.len()`.
#[inline]
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    bf16_to_f32_at(level(), src, dst)
}

/// [`bf16_to_f32`] on the path `level` (clamped to what this CPU supports).
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn bf16_to_f32_at(level: Level, src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: src and dst lengths differ");
    match level.supported() {
        // SAFETY: `supported()` only returns levels whose features this CPU has; both slices
        // hold `src.len()` elements.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { super::avx512::bf16::to_f32(src.as_ptr(), dst.as_mut_ptr(), src.len()) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::bf16::to_f32(src.as_ptr(), dst.as_mut_ptr(), src.len()) },
        _ => bf16_to_f32_scalar(src, dst),
    }
}

/// Scalar twin of [`bf16_to_f32`] (`bf16::to_f32` per element; also the portable path).
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn bf16_to_f32_scalar(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: src and dst lengths differ");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA+F16C kernels for half inputs: 8 lanes, four (dot, L2) or two (dot-and-norms)
    //! accumulators, and a zero-padded last chunk instead of a scalar tail.

    macro_rules! kernels {
        ($E:ty) => {
            /// The last `r < 8` elements at `p`, zero-padded to 8 lanes.
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn load_tail(p: *const $E, r: usize) -> __m256 {
                let mut buf = [<$E>::from_bits(0); 8];
                // SAFETY: the caller guarantees `r` readable elements at `p`; `buf` holds 8.
                unsafe {
                    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), r);
                    load(buf.as_ptr())
                }
            }

            /// `Σ a_i b_i` over `n` elements.
            ///
            /// # Safety
            /// The CPU has AVX2, FMA and F16C; both pointers are valid for `n` elements.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn dot(a: *const $E, b: *const $E, n: usize) -> f32 {
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY (all loads): full loads read i..i + 8 <= n, the tail reads i..n.
                unsafe {
                    while i + 32 <= n {
                        for (k, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_fmadd_ps(load(a.add(i + 8 * k)), load(b.add(i + 8 * k)), *acc);
                        }
                        i += 32;
                    }
                    while i + 8 <= n {
                        acc[0] = _mm256_fmadd_ps(load(a.add(i)), load(b.add(i)), acc[0]);
                        i += 8;
                    }
                    if i < n {
                        acc[1] = _mm256_fmadd_ps(load_tail(a.add(i), n - i), load_tail(b.add(i), n - i), acc[1]);
                    }
                }
                let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                crate::simd::avx2::hsum(s)
            }

            /// `Σ (a_i − b_i)²` over `n` elements.
            ///
            /// # Safety
            /// As for [`dot`].
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn l2_sq(a: *const $E, b: *const $E, n: usize) -> f32 {
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY (all loads): as in `dot`.
                unsafe {
                    while i + 32 <= n {
                        for (k, acc) in acc.iter_mut().enumerate() {
                            let d = _mm256_sub_ps(load(a.add(i + 8 * k)), load(b.add(i + 8 * k)));
                            *acc = _mm256_fmadd_ps(d, d, *acc);
                        }
                        i += 32;
                    }
                    while i + 8 <= n {
                        let d = _mm256_sub_ps(load(a.add(i)), load(b.add(i)));
                        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
                        i += 8;
                    }
                    if i < n {
                        let d = _mm256_sub_ps(load_tail(a.add(i), n - i), load_tail(b.add(i), n - i));
                        acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
                    }
                }
                let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                crate::simd::avx2::hsum(s)
            }

            /// `(a·b, |a|², |b|²)` over `n` elements in one pass.
            ///
            /// # Safety
            /// As for [`dot`].
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn dot_norms(a: *const $E, b: *const $E, n: usize) -> (f32, f32, f32) {
                let z = _mm256_setzero_ps();
                let (mut ab, mut aa, mut bb) = ([z; 2], [z; 2], [z; 2]);
                let mut i = 0;
                // SAFETY (all loads): as in `dot`.
                unsafe {
                    while i + 16 <= n {
                        for k in 0..2 {
                            let x = load(a.add(i + 8 * k));
                            let y = load(b.add(i + 8 * k));
                            ab[k] = _mm256_fmadd_ps(x, y, ab[k]);
                            aa[k] = _mm256_fmadd_ps(x, x, aa[k]);
                            bb[k] = _mm256_fmadd_ps(y, y, bb[k]);
                        }
                        i += 16;
                    }
                    let mut step = |x: __m256, y: __m256| {
                        ab[0] = _mm256_fmadd_ps(x, y, ab[0]);
                        aa[0] = _mm256_fmadd_ps(x, x, aa[0]);
                        bb[0] = _mm256_fmadd_ps(y, y, bb[0]);
                    };
                    if i + 8 <= n {
                        step(load(a.add(i)), load(b.add(i)));
                        i += 8;
                    }
                    if i < n {
                        step(load_tail(a.add(i), n - i), load_tail(b.add(i), n - i));
                    }
                }
                use crate::simd::avx2::hsum;
                (
                    hsum(_mm256_add_ps(ab[0], ab[1])),
                    hsum(_mm256_add_ps(aa[0], aa[1])),
                    hsum(_mm256_add_ps(bb[0], bb[1])),
                )
            }

            /// Widens `src` into `dst` (`n` elements each), bit-exact with `half`'s `to_f32`.
            ///
            /// # Safety
            /// The CPU has AVX2, FMA and F16C; `src` and `dst` are valid for `n` elements.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn to_f32(src: *const $E, dst: *mut f32, n: usize) {
                let mut i = 0;
                // SAFETY (all loads and stores): full ones touch i..i + 8 <= n, the tail i..n.
                unsafe {
                    while i + 8 <= n {
                        _mm256_storeu_ps(dst.add(i), quiet(load(src.add(i))));
                        i += 8;
                    }
                    if i < n {
                        let mut buf = [0.0f32; 8];
                        _mm256_storeu_ps(buf.as_mut_ptr(), quiet(load_tail(src.add(i), n - i)));
                        std::ptr::copy_nonoverlapping(buf.as_ptr(), dst.add(i), n - i);
                    }
                }
            }
        };
    }

    pub mod f16 {
        //! IEEE half inputs, widened with `vcvtph2ps`.
        use std::arch::x86_64::*;

        use half::f16;

        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load(p: *const f16) -> __m256 {
            // SAFETY: the caller guarantees 8 readable halves (16 bytes) at `p`.
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
        }

        /// `vcvtph2ps` already quiets NaNs exactly as `f16::to_f32` does.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        fn quiet(v: __m256) -> __m256 {
            v
        }

        kernels!(f16);
    }

    pub mod bf16 {
        //! bfloat16 inputs, widened by zero-extension and a 16-bit left shift.
        use std::arch::x86_64::*;

        use half::bf16;

        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load(p: *const bf16) -> __m256 {
            // SAFETY: the caller guarantees 8 readable bf16 (16 bytes) at `p`.
            let v = _mm256_cvtepu16_epi32(unsafe { _mm_loadu_si128(p.cast()) });
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v))
        }

        /// Sets the quiet bit of NaN lanes, as `bf16::to_f32` does.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        fn quiet(v: __m256) -> __m256 {
            let bits = _mm256_castps_si256(v);
            let abs = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFF_FFFF));
            let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F80_0000));
            _mm256_castsi256_ps(_mm256_or_si256(bits, _mm256_and_si256(nan, _mm256_set1_epi32(0x0040_0000))))
        }

        kernels!(bf16);
    }
}
