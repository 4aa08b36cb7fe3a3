//! Scalar twins of the quantised dot products (ggml's `ggml_vec_dot_*_q8_0` / `*_q8_K` generic
//! code, on the GGUF block layouts of `ggml-common.h`): the reference the SIMD kernels in
//! `x86.rs` must match integer for integer.
//!
//! Per block, an exact `i32` dot of the weight's small integers with the activation's int8
//! values (see [`super::block_dots_with`] for what `[main, aux]` mean per format), then one f32
//! combination with the scales, accumulated block after block.

use super::decode::{f16_at, f32_at, i16_at, q6_k_value, scale_min_k4};
use super::{Activations, QuantFormat};

/// Activation values of Q8_0 block `b`.
#[inline(always)]
fn act_q8_0(act: &Activations, b: usize) -> &[u8] {
    &act.blocks[34 * b + 2..34 * b + 34]
}

/// Activation block `b` of Q8_K (the whole 292 bytes).
#[inline(always)]
fn act_q8_k(act: &Activations, b: usize) -> &[u8] {
    &act.blocks[292 * b..292 * b + 292]
}

#[inline(always)]
fn dot_i8(w: impl Iterator<Item = i32>, a: &[u8]) -> i32 {
    w.zip(a).map(|(w, &a)| w * a as i8 as i32).sum()
}

/// The integer part `[main, aux]` of block `b`'s dot product.
pub(super) fn block_int(format: QuantFormat, blk: &[u8], act: &Activations, b: usize) -> [i32; 2] {
    match format {
        QuantFormat::Q8_0 => [dot_i8(blk[2..34].iter().map(|&q| q as i8 as i32), act_q8_0(act, b)), 0],
        QuantFormat::Q4_0 | QuantFormat::Q4_1 => {
            let off = if format == QuantFormat::Q4_0 { 2 } else { 4 };
            let bias = if format == QuantFormat::Q4_0 { 8 } else { 0 };
            let qs = &blk[off..off + 16];
            let nib = qs.iter().map(|&q| (q & 0x0F) as i32 - bias).chain(qs.iter().map(|&q| (q >> 4) as i32 - bias));
            [dot_i8(nib, act_q8_0(act, b)), 0]
        }
        QuantFormat::Q4_K => {
            let a = act_q8_k(act, b);
            let (mut main, mut aux) = (0i32, 0i32);
            for j in 0..8 {
                let (sc, m) = scale_min_k4(j, &blk[4..16]);
                let qs = &blk[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
                let shift = 4 * (j % 2);
                let nib = qs.iter().map(|&q| ((q >> shift) & 0x0F) as i32);
                main += sc as i32 * dot_i8(nib, &a[4 + 32 * j..4 + 32 * j + 32]);
                aux += m as i32 * (i16_at(a, 260 + 4 * j) as i32 + i16_at(a, 262 + 4 * j) as i32);
            }
            [main, aux]
        }
        QuantFormat::Q6_K => {
            let a = act_q8_k(act, b);
            let mut main = 0i32;
            for j in 0..16 {
                let sc = blk[192 + j] as i8 as i32;
                let q = (16 * j..16 * j + 16).map(|i| q6_k_value(blk, i) as i32 - 32);
                main += sc * dot_i8(q, &a[4 + 16 * j..4 + 16 * j + 16]);
            }
            [main, 0]
        }
        QuantFormat::Q8_K => [dot_i8(blk[4..260].iter().map(|&q| q as i8 as i32), &act_q8_k(act, b)[4..260]), 0],
    }
}

/// Block `b`'s f32 value from its integer part (the same formula every kernel uses per block).
#[inline(always)]
pub(super) fn block_value(format: QuantFormat, blk: &[u8], act: &Activations, b: usize, ints: [i32; 2]) -> f32 {
    let da = act.scale[b];
    match format {
        QuantFormat::Q8_0 | QuantFormat::Q4_0 => (f16_at(blk, 0) * da) * ints[0] as f32,
        QuantFormat::Q4_1 => (f16_at(blk, 0) * da) * ints[0] as f32 + f16_at(blk, 2) * act.sum[b],
        QuantFormat::Q4_K => (f16_at(blk, 0) * da) * ints[0] as f32 - (f16_at(blk, 2) * da) * ints[1] as f32,
        QuantFormat::Q6_K => (f16_at(blk, 208) * da) * ints[0] as f32,
        QuantFormat::Q8_K => (f32_at(blk, 0) * da) * ints[0] as f32,
    }
}

pub(super) fn block_dots(format: QuantFormat, weights: &[u8], act: &Activations, out: &mut [[i32; 2]]) {
    for (b, (blk, o)) in weights.chunks_exact(format.block_bytes()).zip(out).enumerate() {
        *o = block_int(format, blk, act, b);
    }
}

pub(super) fn rows(format: QuantFormat, weights: &[u8], row_bytes: usize, act: &Activations, y: &mut [f32]) {
    for (row, out) in weights.chunks_exact(row_bytes).zip(y) {
        let mut sum = 0.0f32;
        for (b, blk) in row.chunks_exact(format.block_bytes()).enumerate() {
            sum += block_value(format, blk, act, b, block_int(format, blk, act, b));
        }
        *out = sum;
    }
}

pub(super) fn rows_batch(format: QuantFormat, weights: &[u8], row_bytes: usize, acts: &[Activations], out: &mut [f32]) {
    let n = acts.len();
    for (row, outs) in weights.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n)) {
        for (act, o) in acts.iter().zip(outs) {
            rows(format, row, row_bytes, act, std::slice::from_mut(o));
        }
    }
}
