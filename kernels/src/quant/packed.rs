//! Q4_1 weight rows interleaved sixteen at a time, for a GEMV whose per-block float work is shared
//! by sixteen rows: llama.cpp's CPU "repack" idea (`ggml-cpu/repack.cpp`, which interleaves Q4_0
//! rows into `block_q4_0x8`), with a layout chosen here for AVX-512 VNNI.
//!
//! A row-major Q4_1 row kernel ([`super::dot`]) spends about a dozen instructions per 32-weight
//! block: unpack 16 bytes of nibbles, one 256-bit `vpdpbusd`, then a scalar f16 scale, an
//! int-to-float conversion and an FMA, all for one row. Here a *group* holds rows `16g..16g + 16`,
//! and block `b` of the group is 320 bytes (five cache lines, 64-byte aligned):
//!
//! ```text
//! d[16]: f16 · m[16]: f16 · qs: 4 × 64 bytes, chunk t = for r in 0..16 { row r's qs[4t..4t + 4] }
//! ```
//!
//! so one 512-bit lane is one row: four `vpdpbusd` on the low nibbles (elements `4t..4t + 4` of
//! each row against a broadcast of the activations' `4t..4t + 4`) and four on the high ones
//! (elements `16 + 4t..`) give sixteen rows' integer dots, and one conversion, one multiply and
//! two FMAs apply sixteen rows' `d` and `m`. Measured on its own (one Sapphire Rapids core,
//! 576-wide rows): 58 GB/s from L2, 27 GB/s from L3 and 14.6 GB/s from DRAM, against
//! 7.5–13.5 GB/s for the row kernel; from DRAM that is the core's streaming bandwidth.
//!
//! The arithmetic per row is the row kernels' (`x86::row_32`, itself llama.cpp's
//! `ggml_vec_dot_q4_1_q8_1` order): each 32-element block leaves eight partial integer dots of
//! four products, each converted and multiplied into its own f32 lane (even and odd blocks in two
//! sets of lanes), the lanes summed in `hsum_ps`'s order, then the `m·s` terms added block after
//! block. Here the eight partials of sixteen rows are the eight `vpdpbusd` results, so every
//! value is bit-identical to [`super::dot`] on the AVX2 and VNNI kernels, and to the scalar twin
//! below: interleaving changes the speed, not one bit of a model's output.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{Activations, Kernel, QuantFormat, decode};
use crate::{Error, Result};

/// Rows per interleaved group (one 512-bit lane each).
pub const GROUP_ROWS: usize = 16;

/// Bytes of one block of one group: 16 `d`, 16 `m`, 16 × 16 bytes of nibbles.
const GROUP_BLOCK: usize = 320;

/// One cache line: the storage unit, so a group block starts on a 64-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A Q4_1 matrix of `rows` × `cols`, interleaved in groups of [`GROUP_ROWS`] rows (the last group
/// padded with zero rows). Made by [`pack_rows`]; multiplied by [`packed_dots`].
pub struct PackedRows {
    rows: usize,
    cols: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for PackedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedRows").field("rows", &self.rows).field("cols", &self.cols).finish_non_exhaustive()
    }
}

impl PackedRows {
    /// Output features (rows of the original matrix).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The weights' format (Q4_1, the only one packed).
    pub fn format(&self) -> QuantFormat {
        QuantFormat::Q4_1
    }

    /// Heap bytes held (the file's bytes for the matrix, plus the padding of the last group).
    pub fn memory_bytes(&self) -> usize {
        self.lines.len() * 64
    }

    /// Blocks per row.
    fn blocks(&self) -> usize {
        self.cols / 32
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes with no padding; the slice covers the vector exactly.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.lines.len() * 64) }
    }

    /// Group `g`'s first byte.
    fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks() * GROUP_BLOCK;
        &self.bytes()[g * len..(g + 1) * len]
    }
}

/// Whether [`pack_rows`] takes weights of `format`: Q4_1 only.
pub fn packs(format: QuantFormat) -> bool {
    format == QuantFormat::Q4_1
}

/// Interleaves `rows` rows of `cols` Q4_1 elements (GGUF's row-major blocks) into groups of
/// [`GROUP_ROWS`]. The bytes are the same, rearranged; nothing is requantised.
///
/// # Errors
/// [`Error::InvalidParameter`] for a format other than Q4_1; [`Error::QuantRaggedLength`] when
/// `cols` is not whole blocks; [`Error::DimensionMismatch`] when `weights` is not `rows` rows.
pub fn pack_rows(format: QuantFormat, weights: &[u8], rows: usize, cols: usize) -> Result<PackedRows> {
    if !packs(format) {
        return Err(Error::InvalidParameter(format!("pack_rows interleaves Q4_1 rows only, not {format}")));
    }
    let (nb, bb) = (format.blocks_for(cols)?, format.block_bytes());
    let row_bytes = nb * bb;
    let total = rows
        .checked_mul(row_bytes)
        .ok_or_else(|| Error::InvalidParameter(format!("{rows} rows of {row_bytes} bytes overflow usize")))?;
    if weights.len() != total {
        return Err(Error::DimensionMismatch { expected: total, got: weights.len() });
    }
    let groups = rows.div_ceil(GROUP_ROWS);
    let mut lines = vec![Line([0; 64]); groups * nb * GROUP_BLOCK / 64];
    // SAFETY: as in `PackedRows::bytes`, mutably.
    let out = unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) };
    for (r, row) in weights.chunks_exact(row_bytes.max(1)).enumerate() {
        let (g, lane) = (r / GROUP_ROWS, r % GROUP_ROWS);
        for (b, block) in row.chunks_exact(bb).enumerate() {
            let at = (g * nb + b) * GROUP_BLOCK;
            out[at + 2 * lane..at + 2 * lane + 2].copy_from_slice(&block[0..2]);
            out[at + 32 + 2 * lane..at + 32 + 2 * lane + 2].copy_from_slice(&block[2..4]);
            for t in 0..4 {
                let q = at + 64 + 64 * t + 4 * lane;
                out[q..q + 4].copy_from_slice(&block[4 + 4 * t..8 + 4 * t]);
            }
        }
    }
    Ok(PackedRows { rows, cols, lines })
}

/// `out[i·n + j] = W[first_row + i] · acts[j]` for `out.len() / n` rows from `first_row` (a
/// multiple of [`GROUP_ROWS`]) and the `n` activation rows `acts` (Q8_0, from
/// [`super::quantize_activations`] for Q4_1): a GEMV when `n = 1`, a batch of tokens otherwise.
/// Runs on the calling thread; split the rows by groups to parallelise. Every kernel gives the
/// bits of the AVX2 and VNNI row kernels (module docs); [`Kernel::Avx2`] runs the scalar twin.
///
/// # Errors
/// [`Error::InvalidParameter`] for an unavailable kernel, a `first_row` off a group boundary or
/// activations of another format or length; [`Error::DimensionMismatch`] when `out` is not whole
/// rows of `n` or runs past the matrix.
pub fn packed_dots(
    kernel: Kernel,
    w: &PackedRows,
    first_row: usize,
    acts: &[Activations],
    out: &mut [f32],
) -> Result<()> {
    if !kernel.is_available() {
        return Err(Error::InvalidParameter(format!("kernel {} is not available on this CPU", kernel.name())));
    }
    let n = acts.len();
    if n == 0 {
        return if out.is_empty() { Ok(()) } else { Err(Error::DimensionMismatch { expected: 0, got: out.len() }) };
    }
    if let Some(bad) = acts.iter().find(|a| a.format != QuantFormat::Q8_0 || a.len() != w.cols) {
        return Err(Error::InvalidParameter(format!(
            "Q4_1 rows of {} need Q8_0 activations of {}, got {} × {}",
            w.cols,
            w.cols,
            bad.format,
            bad.len()
        )));
    }
    if !first_row.is_multiple_of(GROUP_ROWS) {
        return Err(Error::InvalidParameter(format!(
            "packed rows start on a group of {GROUP_ROWS}, not at row {first_row}"
        )));
    }
    let rows = out.len() / n;
    if out.len() != rows * n || first_row + rows > w.rows {
        return Err(Error::DimensionMismatch { expected: w.rows.saturating_sub(first_row) * n, got: out.len() });
    }
    for (g, chunk) in (first_row / GROUP_ROWS..).zip(out.chunks_mut(GROUP_ROWS * n)) {
        let mut dots = [0.0f32; GROUP_ROWS];
        for (j, act) in acts.iter().enumerate() {
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the kernel is available (checked above); the group holds `blocks()`
                // blocks and the activation row as many (its length was checked).
                Kernel::Avx512Vnni => unsafe { group_vnni(w.group(g), w.blocks(), act, &mut dots) },
                _ => group_scalar(w.group(g), w.blocks(), act, &mut dots),
            }
            for (o, d) in chunk.chunks_exact_mut(n).zip(dots) {
                o[j] = d;
            }
        }
    }
    Ok(())
}

/// The activation scale, `s` and the 32 quantised values of block `b`.
fn act_block(a: &Activations, b: usize) -> (f32, f32, &[u8]) {
    (a.scale[b], a.sum[b], &a.blocks[34 * b + 2..34 * b + 34])
}

/// The row kernels' sum of eight lanes (`hsum_ps` in `x86.rs`): `((v0 + v4) + (v2 + v6)) +
/// ((v1 + v5) + (v3 + v7))`.
fn hsum8(v: [f32; 8]) -> f32 {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// The twin of [`group_vnni`]: the same f32 operations, lane by lane.
fn group_scalar(group: &[u8], nb: usize, a: &Activations, dots: &mut [f32; GROUP_ROWS]) {
    for (lane, dot) in dots.iter_mut().enumerate() {
        // Eight lanes per row, even blocks and odd blocks apart, as the row kernels keep them.
        let mut acc = [[0.0f32; 8]; 2];
        let mut extra = 0.0f32;
        for b in 0..nb {
            let blk = &group[b * GROUP_BLOCK..(b + 1) * GROUP_BLOCK];
            let (da, s, q) = act_block(a, b);
            let d = decode::f16_at(blk, 2 * lane) * da;
            for t in 0..4 {
                let (mut lo, mut hi) = (0i32, 0i32);
                for k in 0..4 {
                    let byte = blk[64 + 64 * t + 4 * lane + k];
                    lo += (byte & 0x0F) as i32 * q[4 * t + k] as i8 as i32;
                    hi += (byte >> 4) as i32 * q[16 + 4 * t + k] as i8 as i32;
                }
                let acc = &mut acc[b % 2];
                acc[t] = d.mul_add(lo as f32, acc[t]);
                acc[4 + t] = d.mul_add(hi as f32, acc[4 + t]);
            }
            extra += decode::f16_at(blk, 32 + 2 * lane) * s;
        }
        *dot = hsum8(std::array::from_fn(|k| acc[0][k] + acc[1][k])) + extra;
    }
}

/// One group against one activation row: lane `r` of every vector is row `r`.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VNNI and F16C; `group` holds `nb` group blocks and the activation
/// row `nb` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn group_vnni(group: &[u8], nb: usize, a: &Activations, dots: &mut [f32; GROUP_ROWS]) {
    let m4 = _mm512_set1_epi8(0x0F);
    let zero = _mm512_setzero_ps();
    // The row kernels' eight lanes (`x86::row_32`), for even and for odd blocks.
    let mut acc = [[zero; 8]; 2];
    let mut extra = zero;
    let p = group.as_ptr();
    // SAFETY (all loads): block `b < nb` of the group spans `p + 320·b ..+ 320` (64-byte
    // aligned); activation block `b` spans `34·b ..+ 34` of its bytes; `scale`/`sum` hold `nb`.
    unsafe {
        for b in 0..nb {
            let blk = p.add(b * GROUP_BLOCK);
            for line in 0..5 {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(super::x86::PREFETCH_BYTES + 64 * line).cast());
            }
            let q = a.blocks.as_ptr().add(34 * b + 2);
            let word = |k: usize| _mm512_set1_epi32(q.add(4 * k).cast::<i32>().read_unaligned());
            let d = _mm512_mul_ps(
                _mm512_cvtph_ps(_mm256_load_si256(blk.cast())),
                _mm512_set1_ps(*a.scale.get_unchecked(b)),
            );
            let acc = &mut acc[b % 2];
            // ANCHOR: group_block
            for t in 0..4 {
                let x = _mm512_load_si512(blk.add(64 + 64 * t).cast());
                let lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(x, m4), word(t));
                let hi = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(x), m4),
                    word(4 + t),
                );
                acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lo), acc[t]);
                acc[4 + t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(hi), acc[4 + t]);
            }
            // ANCHOR_END: group_block
            let m = _mm512_cvtph_ps(_mm256_load_si256(blk.add(32).cast()));
            extra = _mm512_add_ps(extra, _mm512_mul_ps(m, _mm512_set1_ps(*a.sum.get_unchecked(b))));
        }
        let v: [__m512; 8] = std::array::from_fn(|k| _mm512_add_ps(acc[0][k], acc[1][k]));
        let sum = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(v[0], v[4]), _mm512_add_ps(v[2], v[6])),
            _mm512_add_ps(_mm512_add_ps(v[1], v[5]), _mm512_add_ps(v[3], v[7])),
        );
        _mm512_storeu_ps(dots.as_mut_ptr(), _mm512_add_ps(sum, extra));
    }
}
