//! Reverse-mode automatic differentiation over dense row-major tensors: a tape of operations, and
//! their backward passes.
//!
//! Each op on a [`Tape`] computes its value at once (eager forward) and records which inputs it read
//! and whatever it saved for its backward pass. [`Tape::backward`] walks the tape from the loss back
//! to the leaves, each op turning the gradient of its output into vector–Jacobian products for its
//! inputs, and sums the contributions of a value used several times (Griewank & Walther,
//! "Evaluating Derivatives", 2nd ed., SIAM 2008, ch. 3 and 4; Baydin, Pearlmutter, Radul & Siskind,
//! "Automatic differentiation in machine learning: a survey", JMLR 18(153), 2018, §3.2).
//!
//! The ops are those of a LLaMA-family decoder (SmolLM2) and its LoRA adapters:
//!
//! | op | shapes | backward |
//! |---|---|---|
//! | [`Tape::matmul`] | `[m,k]·[k,n] → [m,n]` | `dA = dC·Bᵀ`, `dB = Aᵀ·dC` |
//! | [`Tape::matmul_nt`] | `[m,k]·[n,k]ᵀ → [m,n]` (a Linear layer, weights `[out,in]`) | `dX = dY·W`, `dW = dYᵀ·X` |
//! | [`Tape::add`], [`Tape::mul`] | same shape, or one operand's shape a trailing part of the other's | broadcast operand: summed over the repeats |
//! | [`Tape::scale`], [`Tape::sum`], [`Tape::mean`], [`Tape::reshape`] | | |
//! | [`Tape::embedding`] | `[vocab,d]`, ids → `[len,d]` | scatter-add into the rows |
//! | [`Tape::rms_norm`] | `[..,d]`, `[d]` | Zhang & Sennrich 2019 |
//! | [`Tape::rope`] | `[t, heads·head_dim]` | the inverse rotation (Su et al. 2021, RoFormer) |
//! | [`Tape::softmax`] | last dimension | `y ⊙ (g − Σ g·y)` |
//! | [`Tape::causal_attention`] | GQA (Ainslie et al. 2023), fused, saves the probabilities | |
//! | [`Tape::silu`], [`Tape::swiglu`] | SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer") | |
//! | [`Tape::cross_entropy`] | `[t,vocab]`, targets with an ignore index → scalar mean | `softmax − onehot` |
//! | [`Tape::linear_frozen`] | `[m,k]` through a [`FrozenLinear`] `[n,k]` kept outside the tape (QLoRA's quantised base) | `dX = dY·W` only |
//!
//! Everything is generic over [`Float`]: `f32` for training (every product on
//! [`crate::matmul::gemm`]/[`crate::matmul::gemm_nt`]), `f64` for [`gradcheck()`], which compares the
//! gradients with central finite differences. Wrong shapes are [`crate::Error::TrainShape`] naming the
//! op and the shapes, never a panic. Gradients are computed only for values that depend on a
//! [`Tape::leaf`]: a frozen base model given as [`Tape::constant`]s costs no weight gradients.

mod float;
mod frozen;
mod gradcheck;
mod nn;
mod ops;

use std::sync::Arc;

pub use float::Float;
pub use frozen::{DenseLinear, FrozenLinear};
pub use gradcheck::{GradCheck, GradCheckConfig, InputCheck, gradcheck};

use crate::{Error, Result};
use ops::Op;

/// The target that [`Tape::cross_entropy`] skips by convention (PyTorch's and Hugging Face's `-100`,
/// used to mask prompt tokens and padding out of the loss).
pub const IGNORE_INDEX: i64 = -100;

/// A value on a [`Tape`]: a handle, cheap to copy, valid only on the tape that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

impl Var {
    /// The position of the value on its tape (the order the values were made in).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A node's value: owned, or shared with the caller (frozen weights reused from step to step
/// without a copy, see [`Tape::constant_shared`]).
enum Storage<T> {
    Owned(Vec<T>),
    Shared(Arc<Vec<T>>),
}

impl<T> Storage<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Storage::Owned(v) => v,
            Storage::Shared(v) => v,
        }
    }
}

/// One recorded value: what it is, its shape, the op that made it, and whether a gradient flows to it.
struct Node<T: Float> {
    value: Storage<T>,
    shape: Vec<usize>,
    op: Op<T>,
    requires_grad: bool,
}

/// A tape of tensor operations, recorded as they run, for reverse-mode differentiation.
///
/// Build the forward pass with the op methods (each returns a [`Var`]), then call
/// [`Tape::backward`] on the scalar loss. A tape is used for one forward/backward pass;
/// [`Tape::clear`] empties it for the next while keeping its allocation.
pub struct Tape<T: Float> {
    nodes: Vec<Node<T>>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`crate::Error::TrainShape`] of `op`.
fn shape_error(op: &'static str, detail: impl Into<String>) -> Error {
    Error::TrainShape { op, detail: detail.into() }
}

/// The number of values of `shape`, or an error when it overflows `usize`.
fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| shape_error(op, format!("shape {shape:?} overflows usize")))
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Self { nodes: Vec::new() }
    }

    /// Removes every value (all [`Var`]s of this tape become invalid), keeping the allocation.
    pub fn clear(&mut self) {
        self.nodes.clear();
    }

    /// How many values the tape holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tape holds no value.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The bytes of activation memory the tape holds: every value it owns and everything its ops
    /// saved for the backward pass (normalisation factors, rotations, attention probabilities). Values
    /// shared with the caller ([`Tape::constant_shared`]) and frozen layers are not counted: they
    /// live outside the tape. Measured at the end of a forward pass this is the memory that
    /// activation checkpointing trades for recomputation.
    pub fn bytes(&self) -> usize {
        let values = |node: &Node<T>| match &node.value {
            Storage::Owned(v) => v.len(),
            Storage::Shared(_) => 0,
        };
        self.nodes.iter().map(|node| (values(node) + node.op.saved_len()) * std::mem::size_of::<T>()).sum()
    }

    /// A trainable input (a parameter): [`Tape::backward`] computes its gradient.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `leaf`) when `values.len()` is not the product of `shape`.
    pub fn leaf(&mut self, values: Vec<T>, shape: &[usize]) -> Result<Var> {
        self.input("leaf", Storage::Owned(values), shape, true)
    }

    /// An input without a gradient (data, frozen weights).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `constant`) when `values.len()` is not the product of `shape`.
    pub fn constant(&mut self, values: Vec<T>, shape: &[usize]) -> Result<Var> {
        self.input("constant", Storage::Owned(values), shape, false)
    }

    /// [`Tape::constant`] on values shared with the caller, without a copy: frozen weights kept in an
    /// [`Arc`] are put on a fresh tape at every training step for the cost of a reference count.
    ///
    /// # Errors
    /// As [`Tape::constant`].
    pub fn constant_shared(&mut self, values: Arc<Vec<T>>, shape: &[usize]) -> Result<Var> {
        self.input("constant", Storage::Shared(values), shape, false)
    }

    fn input(&mut self, op: &'static str, value: Storage<T>, shape: &[usize], requires_grad: bool) -> Result<Var> {
        let n = numel(op, shape)?;
        let len = value.as_slice().len();
        if len != n {
            return Err(shape_error(op, format!("{len} values for shape {shape:?} ({n} values)")));
        }
        let leaf_op = if requires_grad { Op::Leaf } else { Op::Constant };
        self.nodes.push(Node { value, shape: shape.to_vec(), op: leaf_op, requires_grad });
        Ok(Var(self.nodes.len() - 1))
    }

    /// The values of `v`, row-major.
    ///
    /// # Panics
    /// If `v` was not made by this tape (since its last [`Tape::clear`]).
    pub fn value(&self, v: Var) -> &[T] {
        self.nodes[v.0].value.as_slice()
    }

    /// The shape of `v` (`[]` for the scalars [`Tape::sum`], [`Tape::mean`] and
    /// [`Tape::cross_entropy`] make).
    ///
    /// # Panics
    /// If `v` was not made by this tape.
    pub fn shape(&self, v: Var) -> &[usize] {
        &self.nodes[v.0].shape
    }

    /// Whether a gradient flows to `v` (it is a leaf or depends on one).
    ///
    /// # Panics
    /// If `v` was not made by this tape.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// The node index of `v`, or an error naming `op` when `v` is not on this tape.
    fn id(&self, v: Var, op: &'static str) -> Result<usize> {
        if v.0 < self.nodes.len() {
            Ok(v.0)
        } else {
            Err(shape_error(op, format!("{v:?} is not a value of this tape ({} values)", self.nodes.len())))
        }
    }

    fn val(&self, id: usize) -> &[T] {
        self.nodes[id].value.as_slice()
    }

    fn dims(&self, id: usize) -> &[usize] {
        &self.nodes[id].shape
    }

    fn needs(&self, id: usize) -> bool {
        self.nodes[id].requires_grad
    }

    /// Records a computed value; it needs a gradient when any of its inputs does.
    fn push(&mut self, value: Vec<T>, shape: Vec<usize>, op: Op<T>, inputs: &[usize]) -> Var {
        let requires_grad = inputs.iter().any(|&i| self.nodes[i].requires_grad);
        self.nodes.push(Node { value: Storage::Owned(value), shape, op, requires_grad });
        Var(self.nodes.len() - 1)
    }

    /// Reverse-mode gradients of the scalar `loss` with respect to every leaf it depends on.
    ///
    /// Intermediate gradients are dropped as soon as they have been propagated (use
    /// [`Tape::backward_keep_all`] to keep them).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `backward`) when `loss` is not on this tape or does not have
    /// exactly one value; any error of a product's kernel.
    pub fn backward(&self, loss: Var) -> Result<Grads<T>> {
        self.run_backward(loss, false)
    }

    /// [`Tape::backward`], keeping the gradient of every value the loss depends on, intermediate
    /// values included (for inspection and tests; costs the memory of all of them).
    ///
    /// # Errors
    /// As [`Tape::backward`].
    pub fn backward_keep_all(&self, loss: Var) -> Result<Grads<T>> {
        self.run_backward(loss, true)
    }

    /// The vector–Jacobian product of `output` with `grad`: the gradients every leaf would get from a
    /// loss whose gradient with respect to `output` is `grad` (same shape as `output`). This is how a
    /// pass that was cut into pieces is differentiated piece by piece, as activation checkpointing
    /// does: the gradient a later piece computed for this piece's output is fed back in here.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `vjp`) when `output` is not on this tape or `grad` does not
    /// have one value per value of `output`; any error of a product's kernel.
    pub fn vjp(&self, output: Var, grad: Vec<T>) -> Result<Grads<T>> {
        let o = self.id(output, "vjp")?;
        let n = self.val(o).len();
        if grad.len() != n {
            return Err(shape_error(
                "vjp",
                format!("{} gradient values for an output of shape {:?} ({n} values)", grad.len(), self.dims(o)),
            ));
        }
        self.run_backward_from(o, grad, false)
    }

    fn run_backward(&self, loss: Var, keep_all: bool) -> Result<Grads<T>> {
        let l = self.id(loss, "backward")?;
        let n = self.val(l).len();
        if n != 1 {
            return Err(shape_error(
                "backward",
                format!("the loss must have exactly one value, it has shape {:?} ({n} values)", self.dims(l)),
            ));
        }
        self.run_backward_from(l, vec![T::ONE], keep_all)
    }

    /// Backward from node `l`, whose gradient is `seed`.
    fn run_backward_from(&self, l: usize, seed: Vec<T>, keep_all: bool) -> Result<Grads<T>> {
        let mut store = GradStore { slots: (0..self.nodes.len()).map(|_| None).collect(), pool: Vec::new() };
        if self.needs(l) {
            store.slots[l] = Some(seed);
        }
        for i in (0..=l).rev() {
            if !self.nodes[i].requires_grad {
                continue;
            }
            let Some(g) = store.slots[i].take() else { continue };
            self.backward_node(i, &g, &mut store)?;
            if keep_all || matches!(self.nodes[i].op, Op::Leaf) {
                store.slots[i] = Some(g);
            } else {
                store.recycle(g);
            }
        }
        Ok(Grads { slots: store.slots })
    }
}

/// Gradient buffers during [`Tape::backward`]: one slot per node, and freed buffers for reuse.
struct GradStore<T> {
    slots: Vec<Option<Vec<T>>>,
    pool: Vec<Vec<T>>,
}

/// At most this many freed buffers are kept for reuse.
const POOL_MAX: usize = 8;

impl<T: Float> GradStore<T> {
    /// A zeroed buffer of `len` values, reusing a freed one of about that size when there is one (a
    /// much larger one is left alone: it could end up held by a small leaf's gradient).
    fn zeros(&mut self, len: usize) -> Vec<T> {
        let fits = self.pool.iter().position(|v| v.capacity() >= len && v.capacity() <= 2 * len.max(32));
        let mut v = fits.map(|i| self.pool.swap_remove(i)).unwrap_or_default();
        v.clear();
        v.resize(len, T::ZERO);
        v
    }

    fn recycle(&mut self, v: Vec<T>) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(v);
        }
    }

    /// Adds the contribution `buf` to node `id`'s gradient (moves it in when it is the first).
    fn add_owned(&mut self, id: usize, buf: Vec<T>) {
        match &mut self.slots[id] {
            Some(g) => {
                for (g, &b) in g.iter_mut().zip(&buf) {
                    *g += b;
                }
                self.recycle(buf);
            }
            slot @ None => *slot = Some(buf),
        }
    }

    /// Adds to node `id`'s gradient the `len` values `f` writes (it overwrites a zeroed buffer).
    fn accumulate(&mut self, id: usize, len: usize, f: impl FnOnce(&mut [T]) -> Result<()>) -> Result<()> {
        let mut buf = self.zeros(len);
        f(&mut buf)?;
        self.add_owned(id, buf);
        Ok(())
    }
}

/// The gradients [`Tape::backward`] computed: one per leaf the loss depends on (and per
/// intermediate value after [`Tape::backward_keep_all`]).
pub struct Grads<T> {
    slots: Vec<Option<Vec<T>>>,
}

impl<T> Grads<T> {
    /// The gradient of the loss with respect to `v` (same shape as `v`), or `None` when the loss does
    /// not depend on `v`, `v` is a constant, or `v` is an intermediate value that was not kept.
    pub fn get(&self, v: Var) -> Option<&[T]> {
        self.slots.get(v.0)?.as_deref()
    }

    /// [`Grads::get`], moving the gradient out (no copy for the optimiser).
    pub fn take(&mut self, v: Var) -> Option<Vec<T>> {
        self.slots.get_mut(v.0)?.take()
    }
}
