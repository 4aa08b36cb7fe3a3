//! GGUF quantised block formats (ggml's `ggml-common.h` layouts): quantise, dequantise, and dot
//! products and GEMV computed on the blocks themselves.
//!
//! A GGUF tensor of a quantised type is a flat run of fixed-size *blocks*; each block stores
//! `block_len` elements as small integers plus one or more f16 scales. The layouts are ggml's
//! (`ggml/src/ggml-common.h`), byte for byte, little-endian:
//!
//! | format | elements | bytes | layout | value of element `i` |
//! |---|---|---|---|---|
//! | `Q8_0` | 32 | 34 | `d: f16, qs: [i8; 32]` | `qs[i]·d` |
//! | `Q4_0` | 32 | 18 | `d: f16, qs: [u8; 16]` | `(nibble_i − 8)·d`; low nibbles are elements 0..16, high nibbles 16..32 |
//! | `Q4_1` | 32 | 20 | `d: f16, m: f16, qs: [u8; 16]` | `nibble_i·d + m` |
//! | `Q4_K` | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` | `d·sc_j·nibble_i − dmin·m_j`, 8 sub-blocks of 32 with 6-bit `sc_j`, `m_j` |
//! | `Q6_K` | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` | `d·sc_j·(q_i − 32)`, 16 sub-blocks of 16, `q` 6-bit (4 low bits in `ql`, 2 high in `qh`) |
//! | `Q8_K` | 256 | 292 | `d: f32, qs: [i8; 256], bsums: [i16; 16]` | `qs[i]·d`; `bsums` are sums of 16 `qs` (used by the K-quant dots) |
//!
//! Everything works on byte slices (`&[u8]`), zero-copy, so tensors can come straight from a
//! memory-mapped GGUF file. Dequantisation is bit-identical to the `gguf` Python package
//! (`gguf.quants.dequantize`, which mirrors ggml's `dequantize_row_*`), and `quantize` for Q8_0,
//! Q4_0 and Q4_1 gives the same bytes as ggml's reference `quantize_row_*_ref`; the K-quants use
//! the same kind of scale search as ggml's reference (`make_qkx2_quants` for Q4_K,
//! `make_qx_quants` for Q6_K), without an importance matrix. Tests check both against fixtures
//! taken from a real GGUF file.
//!
//! ## Dot products on blocks
//!
//! [`gemv`] never dequantises the matrix. It quantises the activation vector once
//! ([`quantize_activations`]: Q8_0 for Q8_0/Q4_0/Q4_1 weights, Q8_K for Q4_K/Q6_K/Q8_K weights)
//! and then, per block, takes an **integer** dot product of the weight's small integers with the
//! activation's int8 values, scaled once per block by `d_w·d_a` in f32. Q4_1 also needs
//! `m·Σa` per block, so the activations carry each block's sum (what ggml's Q8_1 stores); the
//! K-quants take their sub-block sums from Q8_K's `bsums`.
//!
//! Three implementations, chosen at run time ([`Kernel::best`]) or by name (the `*_with`
//! functions): [`Kernel::Scalar`], the reference twin; [`Kernel::Avx2`] (`vpmaddubsw` /
//! `vpmaddwd`); [`Kernel::Avx512Vnni`] (`vpdpbusd` / `vpdpwssd` in their 256-bit AVX-512VL forms,
//! since a block row is 32 bytes wide). The integer part of every block is the same in all three
//! ([`block_dots_with`] exposes it for tests); only the order of the f32 accumulation differs.
//!
//! ## Errors and non-finite values
//!
//! * A byte length that is not a whole number of blocks: [`crate::Error::QuantRaggedBytes`].
//! * An element count (vector or row length) that is not a multiple of the block length:
//!   [`crate::Error::QuantRaggedLength`].
//! * Shapes that disagree (`x.len() != cols`, …): [`crate::Error::DimensionMismatch`].
//! * **Quantising** a NaN or ±inf is refused with [`crate::Error::QuantNonFinite`] (a NaN would
//!   silently poison its block's scale), and a block whose f16 scale would overflow (values beyond
//!   roughly `65504 × q_max`, e.g. ≈8.3e6 for Q8_0; Q4_1 also stores its min in f16, so
//!   its blocks need `min ≥ −65504`) with [`crate::Error::QuantOutOfRange`].
//!   Tiny values are fine: a scale below f16's range becomes 0 and its block dequantises to 0,
//!   as in ggml.
//! * **Dequantising** and the dot products never fail on content: every byte pattern is a valid
//!   block, and a block whose scale is inf/NaN yields inf/NaN, exactly as ggml does.

use rayon::prelude::*;

use crate::{Error, Result};

mod decode;
mod dot;
mod encode;
mod packed;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use packed::{GROUP_ROWS, PackedRows, pack_rows, packed_dots, packs};

/// A GGUF / ggml quantised block format.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    /// 32 elements, `d: f16, qs: [i8; 32]` (34 bytes).
    Q8_0,
    /// 32 elements, `d: f16, qs: [u8; 16]` (18 bytes), value `(nibble − 8)·d`.
    Q4_0,
    /// 32 elements, `d: f16, m: f16, qs: [u8; 16]` (20 bytes), value `nibble·d + m`.
    Q4_1,
    /// 256-element super-block, `d, dmin: f16, scales: [u8; 12], qs: [u8; 128]` (144 bytes).
    Q4_K,
    /// 256-element super-block, `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` (210 bytes).
    Q6_K,
    /// 256-element super-block, `d: f32, qs: [i8; 256], bsums: [i16; 16]` (292 bytes).
    Q8_K,
}

impl QuantFormat {
    /// Every format, in ggml type-id order.
    pub const ALL: [QuantFormat; 6] = [
        QuantFormat::Q4_0,
        QuantFormat::Q4_1,
        QuantFormat::Q8_0,
        QuantFormat::Q4_K,
        QuantFormat::Q6_K,
        QuantFormat::Q8_K,
    ];

    /// Elements per block (32, or 256 for the K-quants).
    pub const fn block_len(self) -> usize {
        match self {
            QuantFormat::Q8_0 | QuantFormat::Q4_0 | QuantFormat::Q4_1 => 32,
            QuantFormat::Q4_K | QuantFormat::Q6_K | QuantFormat::Q8_K => 256,
        }
    }

    /// Bytes per block (ggml's `type_size`).
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantFormat::Q8_0 => 34,
            QuantFormat::Q4_0 => 18,
            QuantFormat::Q4_1 => 20,
            QuantFormat::Q4_K => 144,
            QuantFormat::Q6_K => 210,
            QuantFormat::Q8_K => 292,
        }
    }

    /// The name ggml and GGUF use (`"Q4_K"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            QuantFormat::Q8_0 => "Q8_0",
            QuantFormat::Q4_0 => "Q4_0",
            QuantFormat::Q4_1 => "Q4_1",
            QuantFormat::Q4_K => "Q4_K",
            QuantFormat::Q6_K => "Q6_K",
            QuantFormat::Q8_K => "Q8_K",
        }
    }

    /// The `ggml_type` id stored in a GGUF tensor header (Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q4_K = 12,
    /// Q6_K = 14, Q8_K = 15).
    pub const fn ggml_type(self) -> u32 {
        match self {
            QuantFormat::Q4_0 => 2,
            QuantFormat::Q4_1 => 3,
            QuantFormat::Q8_0 => 8,
            QuantFormat::Q4_K => 12,
            QuantFormat::Q6_K => 14,
            QuantFormat::Q8_K => 15,
        }
    }

    /// The format of a `ggml_type` id, if it is one of these.
    pub const fn from_ggml_type(id: u32) -> Option<QuantFormat> {
        Some(match id {
            2 => QuantFormat::Q4_0,
            3 => QuantFormat::Q4_1,
            8 => QuantFormat::Q8_0,
            12 => QuantFormat::Q4_K,
            14 => QuantFormat::Q6_K,
            15 => QuantFormat::Q8_K,
            _ => return None,
        })
    }

    /// The format activations are quantised to for a dot product with weights in this format:
    /// Q8_0 for the 32-element formats, Q8_K for the K-quants (as ggml's `vec_dot_type`).
    pub const fn activation_format(self) -> QuantFormat {
        match self {
            QuantFormat::Q8_0 | QuantFormat::Q4_0 | QuantFormat::Q4_1 => QuantFormat::Q8_0,
            QuantFormat::Q4_K | QuantFormat::Q6_K | QuantFormat::Q8_K => QuantFormat::Q8_K,
        }
    }

    /// Number of blocks holding `len` elements, or [`Error::QuantRaggedLength`] if `len` is not a
    /// multiple of [`QuantFormat::block_len`].
    pub fn blocks_for(self, len: usize) -> Result<usize> {
        if !len.is_multiple_of(self.block_len()) {
            return Err(Error::QuantRaggedLength { format: self, len, block_len: self.block_len() });
        }
        Ok(len / self.block_len())
    }

    /// Bytes of a row of `cols` elements (a typed error if `cols` is not a multiple of the block).
    pub fn row_bytes(self, cols: usize) -> Result<usize> {
        Ok(self.blocks_for(cols)? * self.block_bytes())
    }

    /// Number of whole blocks in `bytes`, or [`Error::QuantRaggedBytes`] if there is a remainder.
    pub fn blocks_in(self, bytes: &[u8]) -> Result<usize> {
        if !bytes.len().is_multiple_of(self.block_bytes()) {
            return Err(Error::QuantRaggedBytes { format: self, len: bytes.len(), block_bytes: self.block_bytes() });
        }
        Ok(bytes.len() / self.block_bytes())
    }
}

impl std::fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Quantises `x` into blocks of `format` (ggml's reference algorithms; see the module docs).
///
/// `x.len()` must be a multiple of the block length; non-finite values and blocks whose scale
/// overflows f16 are typed errors.
pub fn quantize(format: QuantFormat, x: &[f32]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; format.blocks_for(x.len())? * format.block_bytes()];
    quantize_into(format, x, &mut out)?;
    Ok(out)
}

/// [`quantize`] into a caller's buffer of exactly `x.len() / block_len · block_bytes` bytes.
pub fn quantize_into(format: QuantFormat, x: &[f32], out: &mut [u8]) -> Result<()> {
    let nb = format.blocks_for(x.len())?;
    let expected = nb * format.block_bytes();
    if out.len() != expected {
        return Err(Error::DimensionMismatch { expected, got: out.len() });
    }
    let (bl, bb) = (format.block_len(), format.block_bytes());
    for (b, (xs, ys)) in x.chunks_exact(bl).zip(out.chunks_exact_mut(bb)).enumerate() {
        // A branch-free scan first (it vectorises); the position only on the error path.
        if xs.iter().fold(false, |bad, v| bad | !v.is_finite()) {
            let i = xs.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(Error::QuantNonFinite { format, index: b * bl + i });
        }
        let fits = match format {
            QuantFormat::Q8_0 => encode::q8_0(xs, ys),
            QuantFormat::Q4_0 => encode::q4_0(xs, ys),
            QuantFormat::Q4_1 => encode::q4_1(xs, ys),
            QuantFormat::Q4_K => encode::q4_k(xs, ys),
            QuantFormat::Q6_K => encode::q6_k(xs, ys),
            QuantFormat::Q8_K => encode::q8_k(xs, ys),
        };
        if !fits {
            return Err(Error::QuantOutOfRange { format, block: b });
        }
    }
    Ok(())
}

/// Dequantises whole blocks of `format` into `out` (`out.len()` must be the blocks' element
/// count). Bit-identical to `gguf.quants.dequantize` / ggml's `dequantize_row_*`.
pub fn dequantize(format: QuantFormat, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let nb = format.blocks_in(bytes)?;
    let expected = nb * format.block_len();
    if out.len() != expected {
        return Err(Error::DimensionMismatch { expected, got: out.len() });
    }
    let (bl, bb) = (format.block_len(), format.block_bytes());
    for (blk, ys) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        match format {
            QuantFormat::Q8_0 => decode::q8_0(blk, ys),
            QuantFormat::Q4_0 => decode::q4_0(blk, ys),
            QuantFormat::Q4_1 => decode::q4_1(blk, ys),
            QuantFormat::Q4_K => decode::q4_k(blk, ys),
            QuantFormat::Q6_K => decode::q6_k(blk, ys),
            QuantFormat::Q8_K => decode::q8_k(blk, ys),
        }
    }
    Ok(())
}

/// [`dequantize`] into a new vector.
pub fn dequantize_to_vec(format: QuantFormat, bytes: &[u8]) -> Result<Vec<f32>> {
    let mut out = vec![0.0; format.blocks_in(bytes)? * format.block_len()];
    dequantize(format, bytes, &mut out)?;
    Ok(out)
}

/// An activation vector quantised once for dot products with weights of one format: Q8_0 or
/// Q8_K blocks (real ggml bytes, see [`Activations::as_bytes`]) plus per-block values the
/// kernels need, decoded once instead of once per weight row.
///
/// Made only by [`quantize_activations`], which guarantees the kernels' invariant that Q8_0
/// activation values lie in `-127..=127` (the AVX2 sign trick needs it).
#[derive(Debug, Clone)]
pub struct Activations {
    format: QuantFormat,
    blocks: Vec<u8>,
    /// Each block's scale `d` as f32.
    scale: Vec<f32>,
    /// Q8_0 only: each block's `d·Σqs` (ggml's Q8_1 `s`), for Q4_1's `m·Σa` term.
    sum: Vec<f32>,
    /// Q8_0 only: each block's `−8·Σqs`, the exact integer that lets Q4_0's nibbles enter the
    /// dot product unsigned: `Σ(x − 8)·a = Σx·a − 8·Σa`.
    q4_0_bias: Vec<i32>,
}

impl Activations {
    /// The activation format: Q8_0 or Q8_K.
    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// The quantised blocks, in ggml's layout of [`Activations::format`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.blocks
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.scale.len() * self.format.block_len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }

    /// No elements, in activation format `format`: a placeholder for a buffer of rows.
    pub(crate) fn empty(format: QuantFormat) -> Activations {
        Activations { format, blocks: Vec::new(), scale: Vec::new(), sum: Vec::new(), q4_0_bias: Vec::new() }
    }
}

/// Quantises activations `x` for dot products with weights of format `weights`, to
/// `weights.activation_format()` (Q8_0 or Q8_K). Errors as [`quantize`].
pub fn quantize_activations(weights: QuantFormat, x: &[f32]) -> Result<Activations> {
    let mut out = Activations::empty(weights.activation_format());
    quantize_activations_into(weights, x, &mut out)?;
    Ok(out)
}

/// [`quantize_activations`] into `out`, reusing its buffers (a pass that quantises a row per step
/// allocates nothing). On error `out` is left empty.
pub(crate) fn quantize_activations_into(weights: QuantFormat, x: &[f32], out: &mut Activations) -> Result<()> {
    let format = weights.activation_format();
    let bb = format.block_bytes();
    out.format = format;
    out.blocks.resize(format.blocks_for(x.len())? * bb, 0);
    out.scale.clear();
    out.sum.clear();
    out.q4_0_bias.clear();
    if let Err(e) = quantize_into(format, x, &mut out.blocks) {
        out.blocks.clear();
        return Err(e);
    }
    for b in out.blocks.chunks_exact(bb) {
        if format == QuantFormat::Q8_0 {
            let d = decode::f16_at(b, 0);
            let s: i32 = b[2..34].iter().map(|&q| q as i8 as i32).sum();
            out.scale.push(d);
            out.sum.push(d * s as f32);
            out.q4_0_bias.push(-8 * s);
        } else {
            out.scale.push(decode::f32_at(b, 0));
        }
    }
    Ok(())
}

/// An implementation of the quantised dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable scalar code: the reference twin, available everywhere.
    Scalar,
    /// x86-64 AVX2 (+FMA, F16C): `vpmaddubsw` / `vpmaddwd` integer dots.
    Avx2,
    /// x86-64 AVX-512 VNNI (with AVX-512VL): `vpdpbusd` / `vpdpwssd` integer dots.
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel, fastest last.
    pub const ALL: [Kernel; 3] = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512Vnni];

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => x86::has_avx2() && x86::has_vnni(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU can run (what [`gemv`] and [`dot`] use).
    pub fn best() -> Kernel {
        [Kernel::Avx512Vnni, Kernel::Avx2].into_iter().find(|k| k.is_available()).unwrap_or(Kernel::Scalar)
    }

    /// A short name for reports ("scalar", "avx2", "avx512-vnni").
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// The kernel the dispatched functions take on this CPU.
pub fn active_path() -> &'static str {
    Kernel::best().name()
}

fn check_dot(kernel: Kernel, format: QuantFormat, weights: &[u8], act: &Activations) -> Result<usize> {
    if !kernel.is_available() {
        return Err(Error::InvalidParameter(format!("kernel {} is not available on this CPU", kernel.name())));
    }
    if act.format != format.activation_format() {
        return Err(Error::InvalidParameter(format!(
            "{format} weights need {} activations, got {}",
            format.activation_format(),
            act.format
        )));
    }
    let nb = format.blocks_in(weights)?;
    let expected = act.len() / format.block_len();
    if nb != expected {
        return Err(Error::DimensionMismatch { expected: expected * format.block_bytes(), got: weights.len() });
    }
    Ok(nb)
}

/// Dot product of one weight row (whole blocks of `format`) with quantised activations of the
/// same length, on the fastest kernel.
pub fn dot(format: QuantFormat, weights: &[u8], act: &Activations) -> Result<f32> {
    dot_with(Kernel::best(), format, weights, act)
}

/// Scalar twin of [`dot`].
pub fn dot_scalar(format: QuantFormat, weights: &[u8], act: &Activations) -> Result<f32> {
    dot_with(Kernel::Scalar, format, weights, act)
}

/// [`dot`] on a chosen kernel ([`crate::Error::InvalidParameter`] if this CPU lacks it).
pub fn dot_with(kernel: Kernel, format: QuantFormat, weights: &[u8], act: &Activations) -> Result<f32> {
    check_dot(kernel, format, weights, act)?;
    let mut y = [0.0f32];
    run_rows(kernel, format, weights, weights.len(), act, &mut y);
    Ok(y[0])
}

/// `out[r·n + b] = W[r] · acts[b]` for the `rows` rows of `weights` and the `n` activation rows
/// `acts` (all of one format and length): a batch of tokens through one matrix, each weight
/// block unpacked once for several activations. Per pair, bit-identical to [`dot`] and
/// [`gemv_activations`], so a token computes the same alone or in a batch. Runs on the calling
/// thread (split `weights` by rows to parallelise).
pub fn dots_batch(
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    acts: &[Activations],
    out: &mut [f32],
) -> Result<()> {
    dots_batch_with(Kernel::best(), format, weights, rows, acts, out)
}

/// [`dots_batch`] on a chosen kernel.
pub fn dots_batch_with(
    kernel: Kernel,
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    acts: &[Activations],
    out: &mut [f32],
) -> Result<()> {
    let Some(first) = acts.first() else {
        return if out.is_empty() { Ok(()) } else { Err(Error::DimensionMismatch { expected: 0, got: out.len() }) };
    };
    if let Some(bad) = acts.iter().find(|a| a.format != first.format || a.len() != first.len()) {
        return Err(Error::InvalidParameter(format!(
            "a batch needs activations of one format and length: {} × {} and {} × {}",
            first.format,
            first.len(),
            bad.format,
            bad.len()
        )));
    }
    if first.format != format.activation_format() {
        return Err(Error::InvalidParameter(format!(
            "{format} weights need {} activations, got {}",
            format.activation_format(),
            first.format
        )));
    }
    let row_bytes = format.row_bytes(first.len())?;
    let total = rows
        .checked_mul(row_bytes)
        .ok_or_else(|| Error::InvalidParameter(format!("{rows} rows of {row_bytes} bytes overflow usize")))?;
    if weights.len() != total {
        return Err(Error::DimensionMismatch { expected: total, got: weights.len() });
    }
    if rows > 0 {
        check_dot(kernel, format, &weights[..row_bytes], first)?;
    } else if !kernel.is_available() {
        return Err(Error::InvalidParameter(format!("kernel {} is not available on this CPU", kernel.name())));
    }
    if out.len() != rows * acts.len() {
        return Err(Error::DimensionMismatch { expected: rows * acts.len(), got: out.len() });
    }
    if row_bytes == 0 {
        out.fill(0.0);
        return Ok(());
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: `check_dot` confirmed the CPU has the kernel's features; lengths checked above.
            unsafe { x86::rows_batch_avx2(format, weights, row_bytes, acts, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => {
            // SAFETY: as above.
            unsafe { x86::rows_batch_vnni(format, weights, row_bytes, acts, out) }
        }
        _ => dot::rows_batch(format, weights, row_bytes, acts, out),
    }
    Ok(())
}

/// The exact integer part of each block's dot product, as kernel `kernel` computes it: `out[b]`
/// is `[main, aux]` where the block's value is `d_w·d_a·main` (Q8_0, Q4_0, Q6_K, Q8_K),
/// `d_w·d_a·main + m·s_a` (Q4_1, `aux = 0`), or `d·d_a·main − dmin·d_a·aux` (Q4_K). Every
/// kernel must give identical integers; this is what the tests compare.
pub fn block_dots_with(
    kernel: Kernel,
    format: QuantFormat,
    weights: &[u8],
    act: &Activations,
    out: &mut [[i32; 2]],
) -> Result<()> {
    let nb = check_dot(kernel, format, weights, act)?;
    if out.len() != nb {
        return Err(Error::DimensionMismatch { expected: nb, got: out.len() });
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: `check_dot` confirmed the CPU has the kernel's features.
            unsafe { x86::block_dots_avx2(format, weights, act, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => {
            // SAFETY: as above.
            unsafe { x86::block_dots_vnni(format, weights, act, out) }
        }
        _ => dot::block_dots(format, weights, act, out),
    }
    Ok(())
}

/// Rows of `row_bytes` each, one output per row. Lengths were checked by the caller.
fn run_rows(kernel: Kernel, format: QuantFormat, weights: &[u8], row_bytes: usize, act: &Activations, y: &mut [f32]) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: callers check `kernel.is_available()` first.
            unsafe { x86::rows_avx2(format, weights, row_bytes, act, y) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => {
            // SAFETY: as above.
            unsafe { x86::rows_vnni(format, weights, row_bytes, act, y) }
        }
        _ => dot::rows(format, weights, row_bytes, act, y),
    }
}

/// Below this many weight bytes a GEMV runs on the calling thread.
const PAR_MIN_BYTES: usize = 128 << 10;
/// Rows per rayon task.
const PAR_ROWS: usize = 32;

/// `y = W·x` for a quantised matrix `W` of `rows` rows of `cols` elements each (`rows`
/// contiguous rows of `cols / block_len` blocks, GGUF's layout of a 2-D weight tensor), on the
/// fastest kernel. `x` is quantised once ([`quantize_activations`]); rows run in parallel
/// (rayon) above a size threshold.
pub fn gemv(format: QuantFormat, weights: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
    gemv_with(Kernel::best(), format, weights, rows, cols, x, y)
}

/// Scalar twin of [`gemv`].
pub fn gemv_scalar(
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    gemv_with(Kernel::Scalar, format, weights, rows, cols, x, y)
}

/// [`gemv`] on a chosen kernel ([`crate::Error::InvalidParameter`] if this CPU lacks it).
pub fn gemv_with(
    kernel: Kernel,
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    if x.len() != cols {
        return Err(Error::DimensionMismatch { expected: cols, got: x.len() });
    }
    format.blocks_for(cols)?;
    let act = quantize_activations(format, x)?;
    gemv_activations_with(kernel, format, weights, rows, &act, y)
}

/// [`gemv`] with activations quantised beforehand (reuse them for several matrices that
/// multiply the same vector, e.g. Q, K and V).
pub fn gemv_activations(
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    act: &Activations,
    y: &mut [f32],
) -> Result<()> {
    gemv_activations_with(Kernel::best(), format, weights, rows, act, y)
}

/// [`gemv_activations`] on a chosen kernel.
pub fn gemv_activations_with(
    kernel: Kernel,
    format: QuantFormat,
    weights: &[u8],
    rows: usize,
    act: &Activations,
    y: &mut [f32],
) -> Result<()> {
    if !kernel.is_available() {
        return Err(Error::InvalidParameter(format!("kernel {} is not available on this CPU", kernel.name())));
    }
    if act.format != format.activation_format() {
        return Err(Error::InvalidParameter(format!(
            "{format} weights need {} activations, got {}",
            format.activation_format(),
            act.format
        )));
    }
    let row_bytes = format.row_bytes(act.len())?;
    format.blocks_in(weights)?;
    let total = rows
        .checked_mul(row_bytes)
        .ok_or_else(|| Error::InvalidParameter(format!("{rows} rows of {row_bytes} bytes overflow usize")))?;
    if weights.len() != total {
        return Err(Error::DimensionMismatch { expected: total, got: weights.len() });
    }
    if y.len() != rows {
        return Err(Error::DimensionMismatch { expected: rows, got: y.len() });
    }
    if row_bytes == 0 {
        y.fill(0.0);
        return Ok(());
    }
    if total < PAR_MIN_BYTES {
        run_rows(kernel, format, weights, row_bytes, act, y);
    } else {
        y.par_chunks_mut(PAR_ROWS).zip(weights.par_chunks(PAR_ROWS * row_bytes)).for_each(|(ys, ws)| {
            run_rows(kernel, format, ws, row_bytes, act, ys);
        });
    }
    Ok(())
}

/// `y = W·x` for rows interleaved by [`pack_rows`], on the fastest kernel: `x` quantised once,
/// groups of rows in parallel (rayon) above the size threshold of [`gemv`].
///
/// # Errors
/// [`Error::DimensionMismatch`] when `x` is not `W.cols()` long or `y` not `W.rows()`.
pub fn gemv_packed(w: &PackedRows, x: &[f32], y: &mut [f32]) -> Result<()> {
    if x.len() != w.cols() {
        return Err(Error::DimensionMismatch { expected: w.cols(), got: x.len() });
    }
    if y.len() != w.rows() {
        return Err(Error::DimensionMismatch { expected: w.rows(), got: y.len() });
    }
    let act = [quantize_activations(w.format(), x)?];
    let kernel = Kernel::best();
    if w.memory_bytes() < PAR_MIN_BYTES {
        return packed_dots(kernel, w, 0, &act, y);
    }
    let per_task = PAR_ROWS.next_multiple_of(GROUP_ROWS);
    y.par_chunks_mut(per_task).enumerate().try_for_each(|(i, ys)| packed_dots(kernel, w, i * per_task, &act, ys))
}
