//! Dequantisation of GGUF's 32-element block formats (ggml's `ggml-common.h` layouts and
//! `dequantize_row_*`), and IEEE 754 half precision decoded by hand.
//!
//! | format | bytes | layout (little-endian) | value of element `i` |
//! |---|---|---|---|
//! | `Q8_0` | 34 | `d: f16, qs: [i8; 32]` | `qs[i] · d` |
//! | `Q4_0` | 18 | `d: f16, qs: [u8; 16]` | `(nibble_i − 8) · d` |
//! | `Q4_1` | 20 | `d: f16, m: f16, qs: [u8; 16]` | `nibble_i · d + m` |
//!
//! In both 4-bit formats byte `j` of `qs` holds element `j` in its **low** nibble and element
//! `j + 16` in its **high** nibble (not elements `2j` and `2j + 1`).
//!
//! The results must be **bit-identical** to ggml and to `kernels::quant::dequantize`: compute in
//! `f32`, with one rounding per operation, in the order of the table. In particular never use
//! `mul_add` for Q4_1: a fused multiply-add rounds once instead of twice and differs in the last
//! bit.

use crate::gguf::GgufFile;
use crate::{Error, QuantFormat, Result};

// ANCHOR: f16_to_f32
/// Task c4w1.dequant-q8 (8 points, with [`dequantize_q8_0`]): the `f32` value of the IEEE 754
/// binary16 number with bit pattern `bits` — exactly, for all 65,536 patterns.
///
/// Layout: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
/// * exponent 1..=30 (normal): `(−1)^s · 2^(e−15) · (1 + m/1024)`;
/// * exponent 0 (zero and subnormals): `(−1)^s · 2^−14 · m/1024` (keep the sign of zero);
/// * exponent 31: infinity when `m = 0`, else NaN (any NaN is accepted).
///
/// Every f16 is exactly representable as an f32; build the f32's bits, or compute with
/// powers of two (exact), but do not go through `f64` string formatting or the `half` crate.
pub fn f16_to_f32(bits: u16) -> f32 {
    // BEGIN SOLUTION c4w1.dequant-q8
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1F);
    let man = u32::from(bits & 0x3FF);
    let magnitude = match (exp, man) {
        (0, 0) => 0,
        // Subnormal: m · 2^-24, exact in f32 (a normal f32 for every m ≥ 1).
        (0, m) => (m as f32 * (1.0 / 16_777_216.0)).to_bits(),
        (31, 0) => 0x7F80_0000,
        (31, m) => 0x7FC0_0000 | (m << 13),
        // Normal: rebias the exponent from 15 to 127, widen the mantissa from 10 to 23 bits.
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
    // END SOLUTION
}
// ANCHOR_END: f16_to_f32

/// Checks that `blocks` is a whole number of `format` blocks and that `out` holds exactly their
/// elements; returns the number of blocks. Given: call it first in every `dequantize_*`.
///
/// # Errors
/// [`Error::RaggedBlocks`], [`Error::LengthMismatch`].
pub fn check_blocks(format: QuantFormat, blocks: &[u8], out: &[f32]) -> Result<usize> {
    let block_bytes = format.block_bytes();
    if !blocks.len().is_multiple_of(block_bytes) {
        return Err(Error::RaggedBlocks { format, len: blocks.len(), block_bytes });
    }
    let n = blocks.len() / block_bytes;
    if out.len() != n * format.block_len() {
        return Err(Error::LengthMismatch { expected: n * format.block_len(), got: out.len() });
    }
    Ok(n)
}

/// The little-endian f16 at byte `at` of `block`, as f32 (through your [`f16_to_f32`]). Given.
///
/// Not inlined on purpose: inlined, LLVM may vectorise the loop over blocks (gathering one
/// byte of eight blocks at a time) instead of the loop within a block, which halves the speed.
#[inline(never)]
pub fn f16_at(block: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([block[at], block[at + 1]]))
}

/// Task c4w1.dequant-q8 (with [`f16_to_f32`]): decodes Q8_0 blocks (34 bytes: `d: f16`, then
/// 32 signed bytes) into `out`, element `i` of a block being `qs[i] as f32 * d`.
///
/// # Errors
/// As [`check_blocks`]; on error `out` is left untouched.
pub fn dequantize_q8_0(blocks: &[u8], out: &mut [f32]) -> Result<()> {
    check_blocks(QuantFormat::Q8_0, blocks, out)?;
    // BEGIN SOLUTION c4w1.dequant-q8
    for (block, ys) in blocks.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(block, 0);
        for (y, &q) in ys.iter_mut().zip(&block[2..34]) {
            *y = q as i8 as f32 * d;
        }
    }
    Ok(())
    // END SOLUTION
}

/// Task c4w1.dequant-q4 (10 points, with [`dequantize_q4_1`]): decodes Q4_0 blocks (18 bytes:
/// `d: f16`, then 16 bytes of nibbles) into `out`: element `j` is `(qs[j] & 0xF) − 8` and
/// element `j + 16` is `(qs[j] >> 4) − 8`, each times `d` (computed as `d * (q − 8) as f32`).
///
/// # Errors
/// As [`check_blocks`].
pub fn dequantize_q4_0(blocks: &[u8], out: &mut [f32]) -> Result<()> {
    check_blocks(QuantFormat::Q4_0, blocks, out)?;
    // BEGIN SOLUTION c4w1.dequant-q4
    for (block, ys) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(block, 0);
        let (lo, hi) = ys.split_at_mut(16);
        for ((&q, a), b) in block[2..18].iter().zip(lo).zip(hi) {
            *a = d * ((q & 0x0F) as i32 - 8) as f32;
            *b = d * ((q >> 4) as i32 - 8) as f32;
        }
    }
    Ok(())
    // END SOLUTION
}

// ANCHOR: dequantize_q4_1
/// Task c4w1.dequant-q4 (with [`dequantize_q4_0`]): decodes Q4_1 blocks (20 bytes: `d: f16`,
/// `m: f16`, then 16 bytes of nibbles) into `out`: element `j` is `d * (qs[j] & 0xF) as f32 + m`
/// and element `j + 16` is `d * (qs[j] >> 4) as f32 + m` — a multiply, then an add (no FMA).
///
/// # Errors
/// As [`check_blocks`].
pub fn dequantize_q4_1(blocks: &[u8], out: &mut [f32]) -> Result<()> {
    check_blocks(QuantFormat::Q4_1, blocks, out)?;
    // BEGIN SOLUTION c4w1.dequant-q4
    for (block, ys) in blocks.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(block, 0), f16_at(block, 2));
        let (lo, hi) = ys.split_at_mut(16);
        for ((&q, a), b) in block[4..20].iter().zip(lo).zip(hi) {
            *a = d * (q & 0x0F) as f32 + m;
            *b = d * (q >> 4) as f32 + m;
        }
    }
    Ok(())
    // END SOLUTION
}
// ANCHOR_END: dequantize_q4_1

/// Dequantises `blocks` of `format` into `out` with your functions. Given.
///
/// # Errors
/// [`Error::Unsupported`] for the K-quants (not part of this lab); as [`check_blocks`].
pub fn dequantize(format: QuantFormat, blocks: &[u8], out: &mut [f32]) -> Result<()> {
    match format {
        QuantFormat::Q8_0 => dequantize_q8_0(blocks, out),
        QuantFormat::Q4_0 => dequantize_q4_0(blocks, out),
        QuantFormat::Q4_1 => dequantize_q4_1(blocks, out),
        other => Err(Error::Unsupported(format!("dequantising {other}"))),
    }
}

/// Every element of tensor `name` of `file` as f32: F32 copied, F16 through [`f16_to_f32`],
/// Q8_0/Q4_0/Q4_1 through [`dequantize`]. `bytes` is the file `file` was parsed from. Given.
///
/// # Errors
/// [`Error::MissingTensor`]; [`Error::Unsupported`] for other types.
pub fn dequantize_tensor(file: &GgufFile, bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    let info = file.tensor(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
    let data = file.tensor_data(bytes, name)?;
    let n = usize::try_from(info.n_elements).map_err(|_| Error::Unsupported(format!("{name}: too large")))?;
    match info.ggml_type {
        0 => Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        1 => Ok(data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()),
        id => match QuantFormat::from_ggml_type(id) {
            Some(format) => {
                let mut out = vec![0.0f32; n];
                dequantize(format, data, &mut out)?;
                Ok(out)
            }
            None => Err(Error::Unsupported(format!("tensor {name:?} of type {}", info.type_name()))),
        },
    }
}
