//! A frozen linear layer on a GGUF tensor's quantised blocks: QLoRA's base weights (Dettmers et al.,
//! "QLoRA: Efficient Finetuning of Quantized LLMs", 2023, §3: the frozen base stays quantised, only its
//! products are taken, and the gradient flows through it to the adapters).
//!
//! [`QuantLinear`] shares the memory-mapped file ([`Gguf`] behind an [`Arc`]) and never holds the
//! whole matrix as f32:
//!
//! * forward `y = x·Wᵀ` quantises each row of `x` for the weights' format
//!   ([`quant::quantize_activations`], Q8_0 or Q8_K) and takes the block dot products
//!   ([`quant::dots_batch`]) exactly as `kernels::llm::LlamaModel` does, so the logits equal the
//!   inference path's;
//! * backward `dx = dy·W` dequantises a panel of [`PANEL_ROWS`] weight rows at a time, restricted to
//!   one range of columns (whole blocks), multiplies it with the matching columns of `dy` and adds the
//!   product into `dx`; the column ranges run in parallel on rayon's threads, each owning its columns
//!   of `dx` (no reduction, the same result on any number of threads). The working memory of a task
//!   is `PANEL_ROWS × columns` floats, not `out × in`.
//!
//! Dense tensors (F32, F16, BF16: the norms, an unquantised matrix) are converted to f32 once and
//! multiplied with [`crate::matmul::gemm_nt`] / [`crate::matmul::gemm`], as `kernels::llm` does.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use super::autograd::FrozenLinear;
use crate::formats::gguf::{Gguf, TensorKind};
use crate::matmul::{self, GemmShape};
use crate::quant::{self, QuantFormat};
use crate::{Error, Result};

/// Weight rows dequantised at a time in the backward pass.
pub const PANEL_ROWS: usize = 64;

/// Weight rows per rayon task of the forward pass (each task runs its rows against every input row),
/// as `kernels::llm`'s batched products.
const FORWARD_ROWS_PER_TASK: usize = 16;

/// Where the weights are.
#[derive(Debug, Clone)]
enum Weights {
    /// Quantised blocks: a byte range of the shared file.
    Quant { gguf: Arc<Gguf>, format: QuantFormat, range: Range<usize> },
    /// f32 (converted from F32/F16/BF16).
    Dense(Arc<Vec<f32>>),
}

/// A frozen `out_features × in_features` weight read from a GGUF tensor (quantised or dense), as a
/// [`FrozenLinear<f32>`] for [`crate::train::autograd::Tape::linear_frozen`].
#[derive(Debug, Clone)]
pub struct QuantLinear {
    weights: Weights,
    out_features: usize,
    in_features: usize,
}

/// A [`Error::TrainShape`] of op `quant_linear`.
fn shape_error(detail: String) -> Error {
    Error::TrainShape { op: "quant_linear", detail }
}

impl QuantLinear {
    /// The layer of the 2-D tensor `name` of `gguf` (GGUF dims `[in, out]`: rows of `in_features`
    /// values, one per output feature). Quantised tensors stay in the file; dense ones are converted
    /// to f32.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::UnsupportedModel`] for a tensor that is not 2-D or whose
    /// type no kernel multiplies.
    pub fn from_gguf(gguf: &Arc<Gguf>, name: &str) -> Result<QuantLinear> {
        let t = gguf.tensor(name)?;
        if t.dims().len() != 2 {
            return Err(Error::UnsupportedModel(format!("{name} has dims {:?}, a linear layer needs 2", t.dims())));
        }
        let (out_features, in_features) = (t.rows(), t.row_len());
        let weights = match t.kind() {
            TensorKind::Quant(format) => {
                let start = t.bytes.as_ptr() as usize - gguf.as_bytes().as_ptr() as usize;
                Weights::Quant { gguf: Arc::clone(gguf), format, range: start..start + t.bytes.len() }
            }
            TensorKind::F32 | TensorKind::F16 | TensorKind::BF16 => Weights::Dense(Arc::new(t.to_f32()?)),
            TensorKind::Other(ty) => {
                return Err(Error::UnsupportedModel(format!("{name} is {ty}, which no kernel multiplies")));
            }
        };
        Ok(QuantLinear { weights, out_features, in_features })
    }

    /// A layer on a dense row-major `out_features × in_features` weight.
    ///
    /// # Errors
    /// [`Error::TrainShape`] (op `quant_linear`) when the length is not `out_features · in_features`.
    pub fn dense(weight: Arc<Vec<f32>>, out_features: usize, in_features: usize) -> Result<QuantLinear> {
        if Some(weight.len()) != out_features.checked_mul(in_features) {
            return Err(shape_error(format!("{} weight values for [{out_features}, {in_features}]", weight.len())));
        }
        Ok(QuantLinear { weights: Weights::Dense(weight), out_features, in_features })
    }

    /// The block format, `None` for a dense weight.
    pub fn format(&self) -> Option<QuantFormat> {
        match &self.weights {
            Weights::Quant { format, .. } => Some(*format),
            Weights::Dense(_) => None,
        }
    }

    /// Bytes the weight occupies (its blocks, or 4 per value when dense).
    pub fn weight_bytes(&self) -> usize {
        match &self.weights {
            Weights::Quant { range, .. } => range.len(),
            Weights::Dense(w) => w.len() * 4,
        }
    }

    /// The quantised blocks and their format (`None` when dense).
    fn blocks(&self) -> Option<(QuantFormat, &[u8])> {
        match &self.weights {
            Weights::Quant { gguf, format, range } => Some((*format, &gguf.as_bytes()[range.clone()])),
            Weights::Dense(_) => None,
        }
    }

    /// Rows `rows` of the weight as f32 (`rows.len() × in_features`, overwriting `out`): an embedding
    /// lookup reads only the rows it needs.
    ///
    /// # Errors
    /// [`Error::TrainShape`] (op `quant_linear`) when the range is outside the weight or `out` has
    /// another length; the block decoder's errors.
    pub fn dequantize_rows(&self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        if rows.start > rows.end || rows.end > self.out_features || out.len() != rows.len() * self.in_features {
            return Err(shape_error(format!(
                "rows {rows:?} into {} values: the weight is [{}, {}]",
                out.len(),
                self.out_features,
                self.in_features
            )));
        }
        match self.blocks() {
            Some((format, bytes)) => {
                let rb = bytes.len() / self.out_features.max(1);
                quant::dequantize(format, &bytes[rows.start * rb..rows.end * rb], out)
            }
            None => {
                let Weights::Dense(w) = &self.weights else { unreachable!("blocks() is None only when dense") };
                out.copy_from_slice(&w[rows.start * self.in_features..rows.end * self.in_features]);
                Ok(())
            }
        }
    }

    /// The whole weight as f32 (`out_features × in_features`): for tests and for merging an adapter,
    /// never used by the forward or backward pass.
    ///
    /// # Errors
    /// As [`QuantLinear::dequantize_rows`].
    pub fn to_dense(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.out_features * self.in_features];
        self.dequantize_rows(0..self.out_features, &mut out)?;
        Ok(out)
    }

    /// Checks that `a` holds `rows × a_cols` values and `b` `rows × b_cols`.
    fn check(&self, what: &str, a: (&[f32], usize), b: (&[f32], usize), rows: usize) -> Result<()> {
        let (a_ok, b_ok) = (Some(a.0.len()) == rows.checked_mul(a.1), Some(b.0.len()) == rows.checked_mul(b.1));
        if a_ok && b_ok {
            return Ok(());
        }
        Err(shape_error(format!(
            "{what}: {} and {} values for {rows} rows of a [{}, {}] weight (need {} and {})",
            a.0.len(),
            b.0.len(),
            self.out_features,
            self.in_features,
            rows * a.1,
            rows * b.1
        )))
    }
}

impl FrozenLinear<f32> for QuantLinear {
    fn in_features(&self) -> usize {
        self.in_features
    }

    fn out_features(&self) -> usize {
        self.out_features
    }

    fn forward(&self, x: &[f32], rows: usize, y: &mut [f32]) -> Result<()> {
        let (inf, outf) = (self.in_features, self.out_features);
        self.check("forward", (x, inf), (y, outf), rows)?;
        let Some((format, bytes)) = self.blocks() else {
            let Weights::Dense(w) = &self.weights else { unreachable!("blocks() is None only when dense") };
            return matmul::gemm_nt(x, w, y, GemmShape::new(rows, outf, inf));
        };
        if rows == 0 || outf == 0 {
            return Ok(());
        }
        let acts = x.chunks_exact(inf).map(|r| quant::quantize_activations(format, r)).collect::<Result<Vec<_>>>()?;
        // Each task writes its weight rows' dots for every input row (`weight rows × rows`), transposed after.
        let rb = bytes.len() / outf;
        let mut t = vec![0.0f32; outf * rows];
        t.par_chunks_mut(FORWARD_ROWS_PER_TASK * rows)
            .zip(bytes.par_chunks(FORWARD_ROWS_PER_TASK * rb))
            .try_for_each(|(outs, ws)| quant::dots_batch(format, ws, outs.len() / rows, &acts, outs))?;
        for (o, dots) in t.chunks_exact(rows).enumerate() {
            for (r, &v) in dots.iter().enumerate() {
                y[r * outf + o] = v;
            }
        }
        Ok(())
    }

    fn backward(&self, dy: &[f32], rows: usize, dx: &mut [f32]) -> Result<()> {
        let (inf, outf) = (self.in_features, self.out_features);
        self.check("backward", (dy, outf), (dx, inf), rows)?;
        let Some((format, bytes)) = self.blocks() else {
            let Weights::Dense(w) = &self.weights else { unreachable!("blocks() is None only when dense") };
            return matmul::gemm(dy, w, dx, GemmShape::new(rows, inf, outf));
        };
        dx.fill(0.0);
        if rows == 0 || outf == 0 || inf == 0 {
            return Ok(());
        }
        let (bl, bb) = (format.block_len(), format.block_bytes());
        let blocks_per_row = inf / bl;
        let rb = bytes.len() / outf;
        // Column ranges of whole blocks, a few per thread so uneven tasks balance.
        let tasks = (rayon::current_num_threads() * 2).clamp(1, blocks_per_row.max(1));
        let per_task = blocks_per_row.div_ceil(tasks);
        let ranges: Vec<Range<usize>> =
            (0..blocks_per_row).step_by(per_task.max(1)).map(|b| b..(b + per_task).min(blocks_per_row)).collect();
        let parts = ranges
            .par_iter()
            .map(|blocks| -> Result<(Range<usize>, Vec<f32>)> {
                let (c0, width) = (blocks.start * bl, blocks.len() * bl);
                let mut acc = vec![0.0f32; rows * width];
                let mut panel = vec![0.0f32; PANEL_ROWS * width];
                let mut dyp = vec![0.0f32; rows * PANEL_ROWS];
                let mut prod = vec![0.0f32; rows * width];
                for p0 in (0..outf).step_by(PANEL_ROWS) {
                    let np = PANEL_ROWS.min(outf - p0);
                    for (i, dst) in panel.chunks_exact_mut(width).take(np).enumerate() {
                        let row = &bytes[(p0 + i) * rb..(p0 + i + 1) * rb];
                        quant::dequantize(format, &row[blocks.start * bb..blocks.end * bb], dst)?;
                    }
                    for (d, src) in dyp.chunks_exact_mut(np).zip(dy.chunks_exact(outf)) {
                        d.copy_from_slice(&src[p0..p0 + np]);
                    }
                    let shape = GemmShape::new(rows, width, np);
                    matmul::gemm(&dyp[..rows * np], &panel[..np * width], &mut prod, shape)?;
                    for (a, &p) in acc.iter_mut().zip(&prod) {
                        *a += p;
                    }
                }
                Ok((c0..c0 + width, acc))
            })
            .collect::<Result<Vec<_>>>()?;
        for (cols, acc) in parts {
            let width = cols.len();
            for (d, a) in dx.chunks_exact_mut(inf).zip(acc.chunks_exact(width)) {
                d[cols.clone()].copy_from_slice(a);
            }
        }
        Ok(())
    }
}
