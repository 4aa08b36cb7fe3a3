//! Dequantisation of one block of each GGUF format (ggml's `dequantize_row_*`, layouts from
//! `ggml-common.h`), plus the little field readers the other submodules share.
//!
//! The arithmetic is written in the same order, with the same roundings, as `gguf.quants`
//! (numpy, f32, no fused multiply-add), so the results are bit-identical: Rust never contracts
//! `a * b + c` into an FMA on its own.

use half::f16;

/// The little-endian f16 at byte `off`, as f32 (exact).
#[inline(always)]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// The little-endian f32 at byte `off`.
#[inline(always)]
pub(super) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The little-endian i16 at byte `off`.
#[inline(always)]
pub(super) fn i16_at(b: &[u8], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

/// Q4_K's 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes (ggml's
/// `get_scale_min_k4`): bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4;
/// scales and mins 4..8 keep their low 4 bits in bytes 8..12 and their high 2 bits in the top
/// bits of bytes 0..8.
#[inline(always)]
pub(super) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Q6_K's 6-bit value `q` (0..64) of element `i` (0..256) of a block: the low 4 bits from `ql`,
/// the high 2 from `qh`. Each 128-element half uses 64 bytes of `ql` and 32 of `qh`; within a
/// half, element `32k + l` takes `ql[l + 32(k & 1)]`'s low (k < 2) or high nibble and `qh[l]`'s
/// bits `2k..2k+2`.
#[inline(always)]
pub(super) fn q6_k_value(blk: &[u8], i: usize) -> u8 {
    let (half, r) = (i / 128, i % 128);
    let (k, l) = (r / 32, r % 32);
    let ql = blk[64 * half + l + 32 * (k & 1)];
    let qh = blk[128 + 32 * half + l];
    let low = if k < 2 { ql & 0x0F } else { ql >> 4 };
    low | (((qh >> (2 * k)) & 3) << 4)
}

pub(super) fn q8_0(blk: &[u8], ys: &mut [f32]) {
    let d = f16_at(blk, 0);
    for (y, &q) in ys.iter_mut().zip(&blk[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

pub(super) fn q4_0(blk: &[u8], ys: &mut [f32]) {
    let d = f16_at(blk, 0);
    let (lo, hi) = ys.split_at_mut(16);
    for ((&q, a), b) in blk[2..18].iter().zip(lo).zip(hi) {
        *a = d * ((q & 0x0F) as i32 - 8) as f32;
        *b = d * ((q >> 4) as i32 - 8) as f32;
    }
}

pub(super) fn q4_1(blk: &[u8], ys: &mut [f32]) {
    let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
    let (lo, hi) = ys.split_at_mut(16);
    for ((&q, a), b) in blk[4..20].iter().zip(lo).zip(hi) {
        *a = d * (q & 0x0F) as f32 + m;
        *b = d * (q >> 4) as f32 + m;
    }
}

pub(super) fn q4_k(blk: &[u8], ys: &mut [f32]) {
    let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
    let scales = &blk[4..16];
    // Four chunks of 64 elements: 32 bytes of qs, low nibbles first, then high nibbles.
    for (c, (qs, ys)) in blk[16..144].chunks_exact(32).zip(ys.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, dm1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, dm2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = ys.split_at_mut(32);
        for ((&q, a), b) in qs.iter().zip(lo).zip(hi) {
            *a = d1 * (q & 0x0F) as f32 - dm1;
            *b = d2 * (q >> 4) as f32 - dm2;
        }
    }
}

pub(super) fn q6_k(blk: &[u8], ys: &mut [f32]) {
    let d = f16_at(blk, 208);
    for (j, ys) in ys.chunks_exact_mut(16).enumerate() {
        let dj = d * blk[192 + j] as i8 as f32;
        for (l, y) in ys.iter_mut().enumerate() {
            *y = dj * (q6_k_value(blk, 16 * j + l) as i32 - 32) as f32;
        }
    }
}

pub(super) fn q8_k(blk: &[u8], ys: &mut [f32]) {
    let d = f32_at(blk, 0);
    for (y, &q) in ys.iter_mut().zip(&blk[4..260]) {
        *y = d * q as i8 as f32;
    }
}
