//! i8 vector kernels: dot product, squared L2 and cosine with exact integer accumulation.
//!
//! Products of two i8 are summed in i32 lanes inside blocks of [`I8_BLOCK`] elements (short
//! enough that no block's true result can overflow i32) and the blocks are summed in i64, so
//! [`dot_i8`] and [`l2_sq_i8`] are **exact for any length** and every path returns exactly what
//! the scalar twin returns. [`cosine_i8`] forms `a·b / √(|a|²|b|²)` in f32 from the exact
//! integer parts, so it too equals its twin bit for bit.
//!
//! Paths (see [`Level`]):
//!
//! * AVX-512 VNNI: `vpdpbusd` multiplies *unsigned* bytes by signed bytes, four at a time, into
//!   i32 lanes. The signed × signed product comes from the offset identity
//!   `a·b = (a + 128)·b − 128·b`: flipping the sign bit of `a` (`a ^ 0x80`) gives the unsigned
//!   byte `a + 128`, and a second `vpdpbusd` of the constant 128 with `b` gives the correction
//!   `Σ 128·b`. All of it is exact in wrapping i32 arithmetic, and the block length keeps the
//!   true result in range, so the wrapped result is the true one. `|a|²`, `|b|²` use the same
//!   identity; squared L2 is `|a|² + |b|² − 2a·b` from those exact parts. 64 bytes per
//!   instruction, masked tail.
//! * AVX2: sign-extend 16 bytes to i16 (`vpmovsxbw`), `vpmaddwd` pairs into i32 lanes; L2 takes
//!   the i16 difference first (|a − b| ≤ 255 fits).
//! * portable: plain i32 loops the compiler vectorises for the build target.
//! * scalar twins (`*_scalar`): sequential i64 sums.

use super::{Level, level};

/// Elements per block of i32 accumulation: `32768 · 255² < 2³¹`, so no block of squared
/// differences (nor of products, `≤ 2¹⁴` each) can overflow i32.
pub const I8_BLOCK: usize = 32_768;

/// Dot product `Σ a_i b_i` of two i8 vectors, exact (i32 lanes, i64 across blocks).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i64 {
    dot_i8_at(level(), a, b)
}

/// [`dot_i8`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn dot_i8_at(level: Level, a: &[i8], b: &[i8]) -> i64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let level = level.supported();
    if n <= I8_BLOCK {
        return dot_block(level, &a[..n], &b[..n]) as i64;
    }
    a[..n].chunks(I8_BLOCK).zip(b[..n].chunks(I8_BLOCK)).map(|(x, y)| dot_block(level, x, y) as i64).sum()
}

/// Scalar twin of [`dot_i8`]: sequential i64 sum.
pub fn dot_i8_scalar(a: &[i8], b: &[i8]) -> i64 {
    a.iter().zip(b).map(|(&x, &y)| x as i64 * y as i64).sum()
}

/// Squared Euclidean distance `Σ (a_i − b_i)²` of two i8 vectors, exact.
#[inline]
pub fn l2_sq_i8(a: &[i8], b: &[i8]) -> u64 {
    l2_sq_i8_at(level(), a, b)
}

/// [`l2_sq_i8`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn l2_sq_i8_at(level: Level, a: &[i8], b: &[i8]) -> u64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let level = level.supported();
    if n <= I8_BLOCK {
        return l2_block(level, &a[..n], &b[..n]) as u64;
    }
    a[..n].chunks(I8_BLOCK).zip(b[..n].chunks(I8_BLOCK)).map(|(x, y)| l2_block(level, x, y) as u64).sum()
}

/// Scalar twin of [`l2_sq_i8`]: sequential u64 sum.
pub fn l2_sq_i8_scalar(a: &[i8], b: &[i8]) -> u64 {
    a.iter().zip(b).map(|(&x, &y)| (x as i64 - y as i64).pow(2) as u64).sum()
}

/// Cosine similarity of two i8 vectors (0 when either is all zeros), from the exact integer
/// `a·b`, `|a|²`, `|b|²` (one fused pass) combined in f32.
#[inline]
pub fn cosine_i8(a: &[i8], b: &[i8]) -> f32 {
    cosine_i8_at(level(), a, b)
}

/// [`cosine_i8`] on the path `level` (clamped to what this CPU supports).
#[inline]
pub fn cosine_i8_at(level: Level, a: &[i8], b: &[i8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let level = level.supported();
    if n <= I8_BLOCK {
        let (ab, aa, bb) = parts_block(level, &a[..n], &b[..n]);
        return cosine_from_ints(ab as i64, aa as i64, bb as i64);
    }
    let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
    for (x, y) in a[..n].chunks(I8_BLOCK).zip(b[..n].chunks(I8_BLOCK)) {
        let (p, q, r) = parts_block(level, x, y);
        ab += p as i64;
        aa += q as i64;
        bb += r as i64;
    }
    cosine_from_ints(ab, aa, bb)
}

/// Scalar twin of [`cosine_i8`] (three sequential i64 sums, same f32 finish).
pub fn cosine_i8_scalar(a: &[i8], b: &[i8]) -> f32 {
    cosine_from_ints(dot_i8_scalar(a, b), dot_i8_scalar(a, a), dot_i8_scalar(b, b))
}

#[inline]
pub(super) fn cosine_from_ints(ab: i64, aa: i64, bb: i64) -> f32 {
    // f32 is ample here (the parts are exact; relative error a few ulp) and its sqrt and
    // division have half the latency of f64's, which matters at d = 128.
    let denom = (aa as f32 * bb as f32).sqrt();
    if denom == 0.0 { 0.0 } else { ab as f32 / denom }
}

/// Base vectors per block of [`dot_matrix`]: about 16 KiB of them, which stay in L1 while every
/// query passes over the block.
const MATRIX_BLOCK_BYTES: usize = 16 * 1024;

/// Calls `put(i, j, a·b)` with the exact dot product of every query `i` and base vector `j` (rows
/// of `d` values). With AVX-512 VNNI and `d ≤` [`I8_BLOCK`], each query is offset to unsigned
/// bytes once (`q ^ 0x80`, the `a + 128` of the module doc) and each base vector's correction
/// `Σ 128·b` is computed once, so a pair costs one `vpdpbusd` per 64 bytes instead of two, and four
/// queries share each load of a base vector; otherwise each pair runs [`dot_i8`].
pub(super) fn dot_matrix(queries: &[i8], base: &[i8], d: usize, mut put: impl FnMut(usize, usize, i64)) {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 && d <= I8_BLOCK {
        let (nq, nb) = (queries.len() / d, base.len() / d);
        let flipped: Vec<u8> = queries.iter().map(|&x| x as u8 ^ 0x80).collect();
        let rows = (MATRIX_BLOCK_BYTES / d).max(1);
        let mut offsets = vec![0i32; rows.min(nb)];
        for first in (0..nb).step_by(rows) {
            let block = &base[first * d..(first + rows).min(nb) * d];
            for (t, b) in offsets.iter_mut().zip(block.chunks_exact(d)) {
                // Wrapping is exact here: |Σ 128·b| ≤ 128 · 128 · I8_BLOCK < 2³¹.
                *t = 128 * b.iter().map(|&x| x as i32).sum::<i32>();
            }
            let mut i = 0;
            while i + 4 <= nq {
                let u = [0, 1, 2, 3].map(|r| flipped[(i + r) * d..].as_ptr());
                for (j, b) in block.chunks_exact(d).enumerate() {
                    // SAFETY: `level()` found AVX-512 F/BW/VL/VNNI; four query rows and `b` hold `d` bytes.
                    let s = unsafe { avx512::offset_dots(u, b.as_ptr(), d) };
                    for (r, s) in s.into_iter().enumerate() {
                        put(i + r, first + j, i64::from(s.wrapping_sub(offsets[j])));
                    }
                }
                i += 4;
            }
            for i in i..nq {
                let u = flipped[i * d..].as_ptr();
                for (j, b) in block.chunks_exact(d).enumerate() {
                    // SAFETY: as above, for one query row.
                    let [s] = unsafe { avx512::offset_dots([u], b.as_ptr(), d) };
                    put(i, first + j, i64::from(s.wrapping_sub(offsets[j])));
                }
            }
        }
        return;
    }
    for (i, q) in queries.chunks_exact(d).enumerate() {
        for (j, b) in base.chunks_exact(d).enumerate() {
            put(i, j, dot_i8(q, b));
        }
    }
}

/// `a·b` of one block (`len ≤ I8_BLOCK`, so the i32 result is exact).
#[inline]
fn dot_block(level: Level, a: &[i8], b: &[i8]) -> i32 {
    match level {
        // SAFETY: `level` came from `supported()`, so the CPU has its features; both slices
        // hold `a.len()` elements.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::dot(a.as_ptr(), b.as_ptr(), a.len()) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::dot(a.as_ptr(), b.as_ptr(), a.len()) },
        Level::Scalar => dot_i8_scalar(a, b) as i32,
        _ => dot_portable(a, b),
    }
}

/// `Σ (a_i − b_i)²` of one block (exact in i32 for `len ≤ I8_BLOCK`).
#[inline]
fn l2_block(level: Level, a: &[i8], b: &[i8]) -> u32 {
    match level {
        // SAFETY: as in `dot_block`.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::l2_sq(a.as_ptr(), b.as_ptr(), a.len()) as u32 },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::l2_sq(a.as_ptr(), b.as_ptr(), a.len()) as u32 },
        Level::Scalar => l2_sq_i8_scalar(a, b) as u32,
        _ => l2_portable(a, b),
    }
}

/// `(a·b, |a|², |b|²)` of one block.
#[inline]
fn parts_block(level: Level, a: &[i8], b: &[i8]) -> (i32, i32, i32) {
    match level {
        // SAFETY: as in `dot_block`.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512::parts(a.as_ptr(), b.as_ptr(), a.len()) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2::parts(a.as_ptr(), b.as_ptr(), a.len()) },
        _ => (dot_portable(a, b), dot_portable(a, a), dot_portable(b, b)),
    }
}

/// Portable block dot: an i32 loop the compiler vectorises (exact within a block).
fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Portable block squared L2 (exact within a block).
fn l2_portable(a: &[i8], b: &[i8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (x as i32 - y as i32).pow(2) as u32).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512 VNNI kernels (`vpdpbusd` with the `a + 128` offset; see the module doc).
    use std::arch::x86_64::*;

    /// The mask of the first `r` bytes (`r < 64`).
    #[inline]
    fn tail_mask(r: usize) -> __mmask64 {
        (1u64 << r) - 1
    }

    // ANCHOR: vnni_dot
    /// `a·b` in wrapping i32 (exact when the true value fits).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL/VNNI; both pointers are valid for `n` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn dot(a: *const i8, b: *const i8, n: usize) -> i32 {
        let bias = _mm512_set1_epi8(i8::MIN);
        let z = _mm512_setzero_si512();
        // s: Σ (a + 128)·b, t: Σ 128·b.
        let (mut s, mut t) = ([z; 2], [z; 2]);
        let mut i = 0;
        // SAFETY (all loads): full loads read i..i + 64 <= n, the tail load is masked.
        unsafe {
            while i + 128 <= n {
                for k in 0..2 {
                    let x = _mm512_loadu_si512(a.add(i + 64 * k).cast());
                    let y = _mm512_loadu_si512(b.add(i + 64 * k).cast());
                    s[k] = _mm512_dpbusd_epi32(s[k], _mm512_xor_si512(x, bias), y);
                    t[k] = _mm512_dpbusd_epi32(t[k], bias, y);
                }
                i += 128;
            }
            if i + 64 <= n {
                let (x, y) = (_mm512_loadu_si512(a.add(i).cast()), _mm512_loadu_si512(b.add(i).cast()));
                s[0] = _mm512_dpbusd_epi32(s[0], _mm512_xor_si512(x, bias), y);
                t[0] = _mm512_dpbusd_epi32(t[0], bias, y);
                i += 64;
            }
            if i < n {
                // Zero bytes past the end: (0 + 128)·0 and 128·0 add nothing.
                let m = tail_mask(n - i);
                let (x, y) = (_mm512_maskz_loadu_epi8(m, a.add(i)), _mm512_maskz_loadu_epi8(m, b.add(i)));
                s[1] = _mm512_dpbusd_epi32(s[1], _mm512_xor_si512(x, bias), y);
                t[1] = _mm512_dpbusd_epi32(t[1], bias, y);
            }
        }
        // Lane-wise wrapping differences are exact modulo 2³²: one horizontal sum.
        _mm512_reduce_add_epi32(_mm512_sub_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(t[0], t[1])))
    }
    // ANCHOR_END: vnni_dot

    /// `Σ u_r·b` for `R` rows of unsigned bytes `u_r` (queries already offset by 128) and one
    /// signed row `b`, in wrapping i32: one load of `b` per 64 bytes serves all `R`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL/VNNI; every pointer is valid for `n` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn offset_dots<const R: usize>(u: [*const u8; R], b: *const i8, n: usize) -> [i32; R] {
        let mut s = [_mm512_setzero_si512(); R];
        let mut i = 0;
        // SAFETY (all loads): full loads read i..i + 64 <= n, the tail loads are masked (zero
        // bytes past the end add nothing).
        unsafe {
            while i < n {
                let m = if i + 64 <= n { u64::MAX } else { tail_mask(n - i) };
                let y = _mm512_maskz_loadu_epi8(m, b.add(i));
                for (acc, &row) in s.iter_mut().zip(&u) {
                    *acc = _mm512_dpbusd_epi32(*acc, _mm512_maskz_loadu_epi8(m, row.add(i).cast()), y);
                }
                i += 64;
            }
        }
        s.map(|v| _mm512_reduce_add_epi32(v))
    }

    /// `(a·b, |a|², |b|²)` in wrapping i32 (each exact when its true value fits).
    ///
    /// # Safety
    /// As for [`dot`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn parts(a: *const i8, b: *const i8, n: usize) -> (i32, i32, i32) {
        // SAFETY: forwarded from the caller.
        let (ab, aa, bb) = unsafe { parts_lanes(a, b, n) };
        let r = |v: __m512i| _mm512_reduce_add_epi32(v);
        (r(ab), r(aa), r(bb))
    }

    /// `Σ (a − b)² = |a|² + |b|² − 2a·b` lane-wise, then one horizontal sum (wrapping i32).
    ///
    /// # Safety
    /// As for [`dot`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn l2_sq(a: *const i8, b: *const i8, n: usize) -> i32 {
        // SAFETY: forwarded from the caller.
        let (ab, aa, bb) = unsafe { parts_lanes(a, b, n) };
        _mm512_reduce_add_epi32(_mm512_sub_epi32(_mm512_add_epi32(aa, bb), _mm512_slli_epi32::<1>(ab)))
    }

    /// The 16 lane sums of `(a·b, |a|², |b|²)`, wrapping i32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn parts_lanes(a: *const i8, b: *const i8, n: usize) -> (__m512i, __m512i, __m512i) {
        let bias = _mm512_set1_epi8(i8::MIN);
        let z = _mm512_setzero_si512();
        // Σ (a+128)·b, Σ (a+128)·a, Σ (b+128)·b, Σ 128·a, Σ 128·b.
        let (mut sab, mut saa, mut sbb, mut ta, mut tb) = (z, z, z, z, z);
        let mut i = 0;
        // SAFETY (all loads): full loads read i..i + 64 <= n, the tail load is masked.
        unsafe {
            while i < n {
                let (x, y) = if i + 64 <= n {
                    (_mm512_loadu_si512(a.add(i).cast()), _mm512_loadu_si512(b.add(i).cast()))
                } else {
                    let m = tail_mask(n - i);
                    (_mm512_maskz_loadu_epi8(m, a.add(i)), _mm512_maskz_loadu_epi8(m, b.add(i)))
                };
                let (ux, uy) = (_mm512_xor_si512(x, bias), _mm512_xor_si512(y, bias));
                sab = _mm512_dpbusd_epi32(sab, ux, y);
                saa = _mm512_dpbusd_epi32(saa, ux, x);
                sbb = _mm512_dpbusd_epi32(sbb, uy, y);
                ta = _mm512_dpbusd_epi32(ta, bias, x);
                tb = _mm512_dpbusd_epi32(tb, bias, y);
                i += 64;
            }
        }
        (_mm512_sub_epi32(sab, tb), _mm512_sub_epi32(saa, ta), _mm512_sub_epi32(sbb, tb))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 kernels: sign-extend to i16, `vpmaddwd` into i32 lanes, 32 bytes per iteration.
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// 16 bytes at `p`, sign-extended to i16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load16(p: *const i8) -> __m256i {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
    }

    /// `a·b` in i32 (exact for a block).
    ///
    /// # Safety
    /// The CPU has AVX2; both pointers are valid for `n` elements.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(a: *const i8, b: *const i8, n: usize) -> i32 {
        let mut acc = [_mm256_setzero_si256(); 2];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n (or i + 16 <= n); the tail is read as slices of i..n.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let p = _mm256_madd_epi16(load16(a.add(i + 16 * k)), load16(b.add(i + 16 * k)));
                    *acc = _mm256_add_epi32(*acc, p);
                }
                i += 32;
            }
            if i + 16 <= n {
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(load16(a.add(i)), load16(b.add(i))));
                i += 16;
            }
            let (ta, tb) = (std::slice::from_raw_parts(a.add(i), n - i), std::slice::from_raw_parts(b.add(i), n - i));
            hsum(_mm256_add_epi32(acc[0], acc[1])) + super::dot_portable(ta, tb)
        }
    }

    /// `Σ (a − b)²` in i32 (exact for a block).
    ///
    /// # Safety
    /// As for [`dot`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn l2_sq(a: *const i8, b: *const i8, n: usize) -> i32 {
        let mut acc = [_mm256_setzero_si256(); 2];
        let mut i = 0;
        // SAFETY (all loads): as in `dot`.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let d = _mm256_sub_epi16(load16(a.add(i + 16 * k)), load16(b.add(i + 16 * k)));
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(d, d));
                }
                i += 32;
            }
            if i + 16 <= n {
                let d = _mm256_sub_epi16(load16(a.add(i)), load16(b.add(i)));
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(d, d));
                i += 16;
            }
            let (ta, tb) = (std::slice::from_raw_parts(a.add(i), n - i), std::slice::from_raw_parts(b.add(i), n - i));
            hsum(_mm256_add_epi32(acc[0], acc[1])) + super::l2_portable(ta, tb) as i32
        }
    }

    /// `(a·b, |a|², |b|²)` in i32 (exact for a block).
    ///
    /// # Safety
    /// As for [`dot`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn parts(a: *const i8, b: *const i8, n: usize) -> (i32, i32, i32) {
        let z = _mm256_setzero_si256();
        let (mut ab, mut aa, mut bb) = (z, z, z);
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n; the tail is read as slices of i..n.
        unsafe {
            while i + 16 <= n {
                let (x, y) = (load16(a.add(i)), load16(b.add(i)));
                ab = _mm256_add_epi32(ab, _mm256_madd_epi16(x, y));
                aa = _mm256_add_epi32(aa, _mm256_madd_epi16(x, x));
                bb = _mm256_add_epi32(bb, _mm256_madd_epi16(y, y));
                i += 16;
            }
            let (ta, tb) = (std::slice::from_raw_parts(a.add(i), n - i), std::slice::from_raw_parts(b.add(i), n - i));
            use super::dot_portable as d;
            (hsum(ab) + d(ta, tb), hsum(aa) + d(ta, ta), hsum(bb) + d(tb, tb))
        }
    }
}
