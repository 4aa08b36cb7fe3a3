//! x86-64 kernels for the quantised dot products on GGUF blocks (layouts of ggml's
//! `ggml-common.h`; the method is ggml's `ggml_vec_dot_*` for AVX2): AVX2 with
//! `vpmaddubsw`/`vpmaddwd`, and AVX-512 VNNI with `vpdpbusd`/`vpdpwssd`.
//!
//! One generic body serves both: `const VNNI: bool` picks the integer multiply-accumulate
//! ([`dot_u8i8`], [`dot_i16`]), everything else is shared, and the `#[target_feature]` entry
//! points instantiate it with the right features. Helpers are `#[inline(always)]` so they
//! compile inside those entry points with their features.
//!
//! Per block, one 8-lane `i32` vector holds the block's integer dot (lanes summed, it is exactly
//! the scalar twin's integer); it is converted to f32 and accumulated with one FMA by the
//! block's `d_w·d_a`. Integer tricks, with the ranges that make them exact:
//!
//! * `u8 × i8` products (`vpmaddubsw` saturates pairs at i16): signed weights (Q8_0, Q4_0 after
//!   `−8`) use ggml's sign trick `|w| · sign(a, w)`; `|w| ≤ 128` and activations are in
//!   `-127..=127` (Q8_0 from [`super::quantize_activations`]), so a pair is at most 32512.
//!   Unsigned weights (Q4_1, Q4_K nibbles, Q6_K 6-bit values) multiply the activations directly:
//!   at most `2·63·128` per pair, even with Q8_K's `-128`.
//! * Q6_K's `−32` offset and Q4_K's mins use Q8_K's `bsums` (sums of 16 activations) once per
//!   super-block instead of per element.
//! * Q8_K weights (signed, may hold −128 on both sides) are widened to i16 first.

use std::arch::x86_64::*;

use super::{Activations, QuantFormat};

/// AVX2 with FMA and F16C (every AVX2 CPU has them in practice; checked anyway).
pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// AVX-512 VNNI with the 256-bit (VL) forms.
pub(super) fn has_vnni() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Rows of `row_bytes` each into `y`, AVX2.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C ([`has_avx2`]); lengths as checked by the caller
/// (`weights` is `y.len()` rows of whole blocks matching `act`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn rows_avx2(format: QuantFormat, w: &[u8], row_bytes: usize, act: &Activations, y: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe { rows::<false>(format, w, row_bytes, act, y) }
}

/// Rows of `row_bytes` each into `y`, AVX-512 VNNI.
///
/// # Safety
/// As [`rows_avx2`], and the CPU must also have AVX-512F/VL/VNNI ([`has_vnni`]).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn rows_vnni(format: QuantFormat, w: &[u8], row_bytes: usize, act: &Activations, y: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe { rows::<true>(format, w, row_bytes, act, y) }
}

/// Every row of `w` · every activation row into `out[r·n + b]` (`n = acts.len()`), AVX2; per
/// pair bit-identical to [`rows_avx2`].
///
/// # Safety
/// As [`rows_avx2`], for every activation row, with `out.len()` rows × `n`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn rows_batch_avx2(
    format: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    acts: &[Activations],
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { rows_batch::<false>(format, w, row_bytes, acts, out) }
}

/// [`rows_batch_avx2`] on AVX-512 VNNI, bit-identical to [`rows_vnni`] per pair.
///
/// # Safety
/// As [`rows_batch_avx2`], and the CPU must also have AVX-512F/VL/VNNI ([`has_vnni`]).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn rows_batch_vnni(
    format: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    acts: &[Activations],
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { rows_batch::<true>(format, w, row_bytes, acts, out) }
}

/// Per-block integer parts, AVX2.
///
/// # Safety
/// As [`rows_avx2`], with `out.len()` the number of blocks in `w`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn block_dots_avx2(format: QuantFormat, w: &[u8], act: &Activations, out: &mut [[i32; 2]]) {
    // SAFETY: forwarded from the caller.
    unsafe { block_dots::<false>(format, w, act, out) }
}

/// Per-block integer parts, AVX-512 VNNI.
///
/// # Safety
/// As [`rows_vnni`], with `out.len()` the number of blocks in `w`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn block_dots_vnni(format: QuantFormat, w: &[u8], act: &Activations, out: &mut [[i32; 2]]) {
    // SAFETY: forwarded from the caller.
    unsafe { block_dots::<true>(format, w, act, out) }
}

/// How far ahead of the current block the row kernels ask for weight bytes. Rows are
/// contiguous, so near a row's end this fetches the start of the next row; a prefetch past the
/// end of the weights is harmless (it never faults). Measured on SmolLM2 decode (2 threads,
/// weights in L3): none 88–95 tok/s, 1 KiB 97–126, 2 KiB 129–136, 4 KiB 124–150. Cold GEMV
/// (weights from DRAM, 2 threads) as a fraction of the streaming bandwidth, 2 KiB → 4 KiB: Q4_K
/// 0.60–0.65 → 0.68–0.71, Q6_K 0.58–0.62 → 0.66–0.67, the others level; 8 KiB no better; decode
/// (Q4_1) level in both regimes.
pub(super) const PREFETCH_BYTES: usize = 4096;

// Block kinds of the 32-element formats, as const generic parameters.
const Q8: u8 = 0;
const Q40: u8 = 1;
const Q41: u8 = 2;

const fn bytes_32(kind: u8) -> usize {
    match kind {
        Q8 => 34,
        Q40 => 18,
        _ => 20,
    }
}

#[inline(always)]
unsafe fn rows<const V: bool>(format: QuantFormat, w: &[u8], row_bytes: usize, act: &Activations, y: &mut [f32]) {
    #[inline(always)]
    fn each(w: &[u8], row_bytes: usize, y: &mut [f32], f: impl Fn(&[u8]) -> f32) {
        for (row, out) in w.chunks_exact(row_bytes).zip(y) {
            *out = f(row);
        }
    }
    // SAFETY (all): every row holds `act.len() / block_len` whole blocks (checked by the caller),
    // so each block read and each activation block read is in bounds.
    unsafe {
        match format {
            QuantFormat::Q8_0 => each(w, row_bytes, y, |r| row_32::<V, Q8>(r, act)),
            QuantFormat::Q4_0 => each(w, row_bytes, y, |r| row_32::<V, Q40>(r, act)),
            QuantFormat::Q4_1 => each(w, row_bytes, y, |r| row_32::<V, Q41>(r, act)),
            QuantFormat::Q4_K => each(w, row_bytes, y, |r| row_q4_k::<V>(r, act)),
            QuantFormat::Q6_K => each(w, row_bytes, y, |r| row_k::<V, 6>(r, act)),
            QuantFormat::Q8_K => each(w, row_bytes, y, |r| row_k::<V, 8>(r, act)),
        }
    }
}

#[inline(always)]
unsafe fn block_dots<const V: bool>(format: QuantFormat, w: &[u8], act: &Activations, out: &mut [[i32; 2]]) {
    let (wp, ap, bb) = (w.as_ptr(), act.blocks.as_ptr(), format.block_bytes());
    let ab = format.activation_format().block_bytes();
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: block `b` of `w` and of the activations are in bounds (`out.len()` blocks).
        unsafe {
            let (wb, abk) = (wp.add(b * bb), ap.add(b * ab));
            *o = match format {
                QuantFormat::Q8_0 => [hsum_i32(block_32::<V, Q8>(wb, abk, 0)), 0],
                QuantFormat::Q4_0 => [hsum_i32(block_32::<V, Q40>(wb, abk, act.q4_0_bias[b])), 0],
                QuantFormat::Q4_1 => [hsum_i32(block_32::<V, Q41>(wb, abk, 0)), 0],
                QuantFormat::Q4_K => {
                    let (main, mins) = block_q4_k::<V>(wb, abk);
                    [hsum_i32(main), hsum_i32(mins)]
                }
                QuantFormat::Q6_K => [hsum_i32(block_q6_k::<V>(wb, abk)), 0],
                QuantFormat::Q8_K => [hsum_i32(block_q8_k::<V>(wb, abk)), 0],
            };
        }
    }
}

// ------------------------------------------------------------------ helpers

/// Asks for the cache line at `p` ahead of use (a hint: any address is allowed).
#[inline(always)]
fn prefetch(p: *const u8) {
    // SAFETY: a prefetch does not access memory architecturally; it cannot fault.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

#[inline(always)]
unsafe fn ld32(p: *const u8) -> __m256i {
    unsafe { _mm256_loadu_si256(p.cast()) }
}

#[inline(always)]
unsafe fn ld16(p: *const u8) -> __m128i {
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// The little-endian f16 at `p`, as f32 (F16C, exact).
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }
}

#[inline(always)]
unsafe fn f32_at(p: *const u8) -> f32 {
    unsafe { p.cast::<f32>().read_unaligned() }
}

#[inline(always)]
unsafe fn hsum_ps(v: __m256) -> f32 {
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// `acc + Σ` of each group of four `u8 × i8` products, per i32 lane.
#[inline(always)]
unsafe fn dot_u8i8<const V: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    unsafe {
        if V {
            _mm256_dpbusd_epi32(acc, u, s)
        } else {
            _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
        }
    }
}

/// `acc + Σ` of each pair of `i16 × i16` products, per i32 lane.
#[inline(always)]
unsafe fn dot_i16<const V: bool>(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    unsafe { if V { _mm256_dpwssd_epi32(acc, a, b) } else { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) } }
}

/// 16 bytes of packed nibbles → 32 bytes: low nibbles (elements 0..16) then high (16..32).
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    unsafe {
        let q = ld16(p);
        let m4 = _mm_set1_epi8(0x0F);
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4))
    }
}

// ------------------------------------------------------- 32-element formats

/// Integer dot of one Q8_0 / Q4_0 / Q4_1 block with one Q8_0 activation block, 8 lanes.
/// `bias` is the activation block's `−8·Σa` ([`Activations`]' `q4_0_bias`), read for Q4_0 only.
#[inline(always)]
unsafe fn block_32<const V: bool, const K: u8>(w: *const u8, a: *const u8, bias: i32) -> __m256i {
    unsafe {
        let y = ld32(a.add(2));
        match K {
            Q8 => {
                let x = ld32(w.add(2));
                dot_u8i8::<V>(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
            }
            // Σ(x − 8)·a as Σx·a − 8·Σa: the nibbles enter unsigned, with no sign tricks.
            Q40 => dot_u8i8::<V>(bias_lane(bias), nibbles(w.add(2)), y),
            _ => dot_u8i8::<V>(_mm256_setzero_si256(), nibbles(w.add(4)), y),
        }
    }
}

/// `[bias, 0, 0, 0, 0, 0, 0, 0]`: an accumulator that starts a Q4_0 block at `−8·Σa`.
#[inline(always)]
unsafe fn bias_lane(bias: i32) -> __m256i {
    unsafe { _mm256_zextsi128_si256(_mm_cvtsi32_si128(bias)) }
}

/// One row of Q8_0 / Q4_0 / Q4_1 blocks · Q8_0 activations. Two f32 accumulators.
#[inline(always)]
unsafe fn row_32<const V: bool, const K: u8>(row: &[u8], act: &Activations) -> f32 {
    let bb = bytes_32(K);
    let nb = row.len() / bb;
    let (w, a) = (row.as_ptr(), act.blocks.as_ptr());
    let (scale, sum, bias) = (act.scale.as_ptr(), act.sum.as_ptr(), act.q4_0_bias.as_ptr());
    // SAFETY: `nb` blocks of weights and activations, and `nb` entries of `scale`, `sum` and
    // `q4_0_bias` (Q8_0 activations, the only ones these formats take).
    unsafe {
        let step = |b: usize, acc: __m256| {
            let wb = w.add(b * bb);
            let p = block_32::<V, K>(wb, a.add(34 * b), *bias.add(b));
            let d = f16_at(wb) * *scale.add(b);
            _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc)
        };
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b + 2 <= nb {
            prefetch(w.wrapping_add(b * bb + PREFETCH_BYTES));
            acc0 = step(b, acc0);
            acc1 = step(b + 1, acc1);
            b += 2;
        }
        if b < nb {
            acc0 = step(b, acc0);
        }
        let mut extra = 0.0f32;
        if K == Q41 {
            for b in 0..nb {
                extra += f16_at(w.add(b * bb + 2)) * *sum.add(b);
            }
        }
        hsum_ps(_mm256_add_ps(acc0, acc1)) + extra
    }
}

// ------------------------------------------------- batches of activation rows

/// Weight rows and activation rows of one register tile of [`tile_32`]: each weight block is
/// unpacked once for `TILE_ACTS` activations, each activation block loaded once for `TILE_ROWS` rows.
const TILE_ROWS: usize = 2;
const TILE_ACTS: usize = 4;

#[inline(always)]
unsafe fn rows_batch<const V: bool>(
    format: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    acts: &[Activations],
    out: &mut [f32],
) {
    // SAFETY (all): as the callers guarantee for `rows`, for each activation row.
    unsafe {
        match format {
            QuantFormat::Q8_0 => batch_32::<V, Q8>(w, row_bytes, acts, out),
            QuantFormat::Q4_0 => batch_32::<V, Q40>(w, row_bytes, acts, out),
            QuantFormat::Q4_1 => batch_32::<V, Q41>(w, row_bytes, acts, out),
            _ => {
                let n = acts.len();
                for (row, outs) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n)) {
                    for (act, o) in acts.iter().zip(outs) {
                        rows::<V>(format, row, row_bytes, act, std::slice::from_mut(o));
                    }
                }
            }
        }
    }
}

/// Q8_0 / Q4_0 / Q4_1 rows × activation rows: full tiles through [`tile_32`], the edges
/// through [`row_32`].
#[inline(always)]
unsafe fn batch_32<const V: bool, const K: u8>(w: &[u8], row_bytes: usize, acts: &[Activations], out: &mut [f32]) {
    let (n, rows, nb) = (acts.len(), w.len() / row_bytes, row_bytes / bytes_32(K));
    let row = |r: usize| &w[r * row_bytes..(r + 1) * row_bytes];
    let mut r = 0;
    // SAFETY: `tile_32` reads `TILE_ROWS` whole rows from row `r` and `nb` blocks of each of its
    // `TILE_ACTS` activation rows; `row_32` as its callers guarantee.
    unsafe {
        while r + TILE_ROWS <= rows {
            let mut b = 0;
            while b + TILE_ACTS <= n {
                let tile = tile_32::<V, K>(w.as_ptr().add(r * row_bytes), row_bytes, &acts[b..b + TILE_ACTS], nb);
                for (i, dots) in tile.iter().enumerate() {
                    out[(r + i) * n + b..(r + i) * n + b + TILE_ACTS].copy_from_slice(dots);
                }
                b += TILE_ACTS;
            }
            for (b, act) in acts.iter().enumerate().skip(b) {
                for i in r..r + TILE_ROWS {
                    out[i * n + b] = row_32::<V, K>(row(i), act);
                }
            }
            r += TILE_ROWS;
        }
        for i in r..rows {
            for (b, act) in acts.iter().enumerate() {
                out[i * n + b] = row_32::<V, K>(row(i), act);
            }
        }
    }
}

/// One block of every pair of a tile into the pair's accumulator (`acc[i][j]` for weight row `i`
/// and activation row `j`): the arithmetic of [`row_32`]'s `step`.
#[inline(always)]
unsafe fn tile_step<const V: bool, const K: u8>(
    w: *const u8,
    row_bytes: usize,
    acts: &[Activations],
    b: usize,
    acc: &mut [[__m256; TILE_ACTS]; TILE_ROWS],
) {
    let bb = bytes_32(K);
    // SAFETY: block `b` of each row and activation is in bounds (checked by `batch_32`'s callers).
    unsafe {
        let wb: [*const u8; TILE_ROWS] = std::array::from_fn(|i| w.add(i * row_bytes + b * bb));
        let mut x = [_mm256_setzero_si256(); TILE_ROWS];
        let mut dw = [0.0f32; TILE_ROWS];
        for i in 0..TILE_ROWS {
            prefetch(wb[i].wrapping_add(PREFETCH_BYTES));
            x[i] = match K {
                Q8 => ld32(wb[i].add(2)),
                Q40 => nibbles(wb[i].add(2)),
                _ => nibbles(wb[i].add(4)),
            };
            dw[i] = f16_at(wb[i]);
        }
        // |x| for Q8_0's sign trick (the 4-bit formats' nibbles are unsigned already).
        let ax: [__m256i; TILE_ROWS] = std::array::from_fn(|i| _mm256_sign_epi8(x[i], x[i]));
        for (j, act) in acts.iter().enumerate() {
            let y = ld32(act.blocks.as_ptr().add(34 * b + 2));
            let da = *act.scale.get_unchecked(b);
            for i in 0..TILE_ROWS {
                let zero = _mm256_setzero_si256();
                let p = match K {
                    Q8 => dot_u8i8::<V>(zero, ax[i], _mm256_sign_epi8(y, x[i])),
                    Q40 => dot_u8i8::<V>(bias_lane(*act.q4_0_bias.get_unchecked(b)), x[i], y),
                    _ => dot_u8i8::<V>(zero, x[i], y),
                };
                let d = dw[i] * da;
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[i][j]);
            }
        }
    }
}

/// `TILE_ROWS` weight rows (from `w`, `row_bytes` apart) · `TILE_ACTS` activation rows, each dot
/// computed exactly as [`row_32`] computes it: even blocks into one accumulator, odd into
/// another, Q4_1's `m·s` terms summed block after block, then one horizontal sum.
#[inline(always)]
unsafe fn tile_32<const V: bool, const K: u8>(
    w: *const u8,
    row_bytes: usize,
    acts: &[Activations],
    nb: usize,
) -> [[f32; TILE_ACTS]; TILE_ROWS] {
    // SAFETY: as `batch_32` guarantees.
    unsafe {
        let mut acc0 = [[_mm256_setzero_ps(); TILE_ACTS]; TILE_ROWS];
        let mut acc1 = acc0;
        let mut b = 0;
        while b + 2 <= nb {
            tile_step::<V, K>(w, row_bytes, acts, b, &mut acc0);
            tile_step::<V, K>(w, row_bytes, acts, b + 1, &mut acc1);
            b += 2;
        }
        if b < nb {
            tile_step::<V, K>(w, row_bytes, acts, b, &mut acc0);
        }
        let mut out = [[0.0f32; TILE_ACTS]; TILE_ROWS];
        for i in 0..TILE_ROWS {
            for (j, act) in acts.iter().enumerate() {
                let mut extra = 0.0f32;
                if K == Q41 {
                    let bb = bytes_32(K);
                    for b in 0..nb {
                        extra += f16_at(w.add(i * row_bytes + b * bb + 2)) * *act.sum.get_unchecked(b);
                    }
                }
                out[i][j] = hsum_ps(_mm256_add_ps(acc0[i][j], acc1[i][j])) + extra;
            }
        }
        out
    }
}

// ------------------------------------------------------------------ K-quants

/// Q4_K super-block · Q8_K block: (Σ_j sc_j·Σ q·a, Σ_j m_j·bsum_j) as 8-lane vectors.
#[inline(always)]
unsafe fn block_q4_k<const V: bool>(w: *const u8, a: *const u8) -> (__m256i, __m256i) {
    unsafe {
        let packed = std::slice::from_raw_parts(w.add(4), 12);
        let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
        for j in 0..8 {
            (sc[j], mn[j]) = super::decode::scale_min_k4(j, packed);
        }
        // Mins as i16, each twice (m0 m0 m1 m1 … m7 m7), against the 16 bsums.
        let m = _mm_cvtepu8_epi16(_mm_loadl_epi64(mn.as_ptr().cast()));
        let mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
        let mins = _mm256_madd_epi16(ld32(a.add(260)), mins16);

        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_si256();
        for c in 0..4 {
            let q = ld32(w.add(16 + 32 * c));
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(q, m4), ld32(a.add(4 + 64 * c)));
            let hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), ld32(a.add(36 + 64 * c)));
            acc = dot_i16::<V>(acc, lo, _mm256_set1_epi16(sc[2 * c] as i16));
            acc = dot_i16::<V>(acc, hi, _mm256_set1_epi16(sc[2 * c + 1] as i16));
        }
        (acc, mins)
    }
}

#[inline(always)]
unsafe fn row_q4_k<const V: bool>(row: &[u8], act: &Activations) -> f32 {
    let nb = row.len() / 144;
    let (w, a, scale) = (row.as_ptr(), act.blocks.as_ptr(), act.scale.as_ptr());
    // SAFETY: `nb` super-blocks of weights and activations, `nb` scales.
    unsafe {
        let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..nb {
            let wb = w.add(144 * b);
            prefetch(wb.wrapping_add(PREFETCH_BYTES));
            let (main, mins) = block_q4_k::<V>(wb, a.add(292 * b));
            let da = *scale.add(b);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb) * da), _mm256_cvtepi32_ps(main), acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(wb.add(2)) * da), _mm256_cvtepi32_ps(mins), accm);
        }
        hsum_ps(acc) - hsum_ps(accm)
    }
}

/// Q6_K super-block · Q8_K block: Σ_j sc_j·Σ (q − 32)·a, as an 8-lane vector.
#[inline(always)]
unsafe fn block_q6_k<const V: bool>(w: *const u8, a: *const u8) -> __m256i {
    unsafe {
        let sc16 = _mm256_cvtepi8_epi16(ld16(w.add(192)));
        // The −32 offset: Σ_j sc_j · bsum_j, subtracted 32 times at the end.
        let corr = _mm256_madd_epi16(ld32(a.add(260)), sc16);
        // Broadcast the i16 pair (sc_2g, sc_2g+1): sc_2g in the low 128-bit lane, sc_2g+1 in the high.
        let pick = _mm256_setr_epi8(
            0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        );
        let (m4, m2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
        let mut acc = _mm256_setzero_si256();
        for h in 0..2 {
            let l1 = ld32(w.add(64 * h));
            let l2 = ld32(w.add(64 * h + 32));
            let hb = ld32(w.add(128 + 32 * h));
            let high = |s: i32| {
                let bits = match s {
                    0 => _mm256_and_si256(hb, m2),
                    2 => _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2),
                    4 => _mm256_and_si256(_mm256_srli_epi16(hb, 4), m2),
                    _ => _mm256_and_si256(_mm256_srli_epi16(hb, 6), m2),
                };
                _mm256_slli_epi16(bits, 4)
            };
            let q = [
                _mm256_or_si256(_mm256_and_si256(l1, m4), high(0)),
                _mm256_or_si256(_mm256_and_si256(l2, m4), high(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), high(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4), high(6)),
            ];
            for (k, &qk) in q.iter().enumerate() {
                let p = _mm256_maddubs_epi16(qk, ld32(a.add(4 + 128 * h + 32 * k)));
                let g = (4 * h + k) as i32;
                let s = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(g)), pick);
                acc = dot_i16::<V>(acc, p, s);
            }
        }
        _mm256_sub_epi32(acc, _mm256_slli_epi32(corr, 5))
    }
}

/// Q8_K super-block · Q8_K block, widened to i16 (both sides may hold −128).
#[inline(always)]
unsafe fn block_q8_k<const V: bool>(w: *const u8, a: *const u8) -> __m256i {
    unsafe {
        let mut acc = _mm256_setzero_si256();
        for k in 0..16 {
            let x = _mm256_cvtepi8_epi16(ld16(w.add(4 + 16 * k)));
            let y = _mm256_cvtepi8_epi16(ld16(a.add(4 + 16 * k)));
            acc = dot_i16::<V>(acc, x, y);
        }
        acc
    }
}

/// One row of Q6_K (`BITS = 6`) or Q8_K (`BITS = 8`) super-blocks · Q8_K activations.
#[inline(always)]
unsafe fn row_k<const V: bool, const BITS: u8>(row: &[u8], act: &Activations) -> f32 {
    let bb = if BITS == 6 { 210 } else { 292 };
    let nb = row.len() / bb;
    let (w, a, scale) = (row.as_ptr(), act.blocks.as_ptr(), act.scale.as_ptr());
    // SAFETY: `nb` super-blocks of weights and activations, `nb` scales.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for b in 0..nb {
            let wb = w.add(bb * b);
            prefetch(wb.wrapping_add(PREFETCH_BYTES));
            let (p, dw) = if BITS == 6 {
                (block_q6_k::<V>(wb, a.add(292 * b)), f16_at(wb.add(208)))
            } else {
                (block_q8_k::<V>(wb, a.add(292 * b)), f32_at(wb))
            };
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * *scale.add(b)), _mm256_cvtepi32_ps(p), acc);
        }
        hsum_ps(acc)
    }
}
