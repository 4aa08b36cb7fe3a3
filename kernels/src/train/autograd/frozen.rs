//! Frozen linear layers whose weights live outside the tape: [`FrozenLinear`] and
//! [`Tape::linear_frozen`].
//!
//! LoRA and QLoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021; Dettmers
//! et al., "QLoRA: Efficient Finetuning of Quantized LLMs", 2023) train small adapters next to a
//! frozen base model. The base weights need no gradient, only the product with them and, for the
//! gradient of the activations, the product with their transpose. Behind this trait they can stay in
//! any storage, e.g. GGUF's quantised blocks, instead of being copied onto the tape as `f32`.

use std::sync::Arc;

use super::ops::Op;
use super::{Float, GradStore, Tape, Var, numel, shape_error};
use crate::Result;
use crate::matmul::GemmShape;

/// A linear map `y = x·Wᵀ` with a frozen weight `W` (`out_features × in_features`), as a Linear
/// layer stores it.
pub trait FrozenLinear<T: Float>: Send + Sync {
    /// Columns of `x` (and of `W`).
    fn in_features(&self) -> usize;
    /// Columns of `y` (rows of `W`).
    fn out_features(&self) -> usize;
    /// `y = x·Wᵀ` for `rows` rows: `x` is `rows × in_features`, `y` (`rows × out_features`) is overwritten.
    ///
    /// # Errors
    /// Whatever the weight's kernels report.
    fn forward(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()>;
    /// `dx = dy·W` for `rows` rows: `dy` is `rows × out_features`, `dx` (`rows × in_features`) is overwritten.
    ///
    /// # Errors
    /// Whatever the weight's kernels report.
    fn backward(&self, dy: &[T], rows: usize, dx: &mut [T]) -> Result<()>;
}

/// A [`FrozenLinear`] on a dense row-major weight shared with the caller (the reference
/// implementation, and the one for unquantised base models).
#[derive(Debug, Clone)]
pub struct DenseLinear<T> {
    weight: Arc<Vec<T>>,
    out_features: usize,
    in_features: usize,
}

impl<T: Float> DenseLinear<T> {
    /// The layer of `weight`, `out_features × in_features` row-major.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `linear_frozen`) when the weight's length is not `out_features · in_features`.
    pub fn new(weight: Arc<Vec<T>>, out_features: usize, in_features: usize) -> Result<Self> {
        let n = numel("linear_frozen", &[out_features, in_features])?;
        if weight.len() != n {
            return Err(shape_error(
                "linear_frozen",
                format!("{} weight values for [{out_features}, {in_features}]", weight.len()),
            ));
        }
        Ok(Self { weight, out_features, in_features })
    }
}

impl<T: Float> FrozenLinear<T> for DenseLinear<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }

    fn out_features(&self) -> usize {
        self.out_features
    }

    fn forward(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()> {
        T::gemm_nt(x, &self.weight, y, GemmShape::new(rows, self.out_features, self.in_features))
    }

    fn backward(&self, dy: &[T], rows: usize, dx: &mut [T]) -> Result<()> {
        T::gemm(dy, &self.weight, dx, GemmShape::new(rows, self.in_features, self.out_features))
    }
}

impl<T: Float> Tape<T> {
    /// `x·Wᵀ` through a frozen layer: `x` is `[rows, in_features]`, the result `[rows, out_features]`.
    /// The backward pass computes only `dx = dy·W` (the layer has no gradient).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `linear_frozen`) when `x` is not a matrix with
    /// `in_features` columns; any error of the layer.
    pub fn linear_frozen(&mut self, x: Var, layer: Arc<dyn FrozenLinear<T>>) -> Result<Var> {
        const OP: &str = "linear_frozen";
        let ix = self.id(x, OP)?;
        let (rows, cols) = self.matrix(ix, OP, "x")?;
        let (inf, outf) = (layer.in_features(), layer.out_features());
        if cols != inf {
            return Err(shape_error(OP, format!("x is [{rows}, {cols}], the layer takes {inf} features")));
        }
        let mut out = vec![T::ZERO; numel(OP, &[rows, outf])?];
        layer.forward(self.val(ix), rows, &mut out)?;
        Ok(self.push(out, vec![rows, outf], Op::FrozenLinear { x: ix, layer }, &[ix]))
    }

    pub(super) fn linear_frozen_backward(
        &self,
        x: usize,
        layer: &dyn FrozenLinear<T>,
        g: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let rows = self.dims(x)[0];
        store.accumulate(x, self.val(x).len(), |dx| layer.backward(g, rows, dx))
    }
}
