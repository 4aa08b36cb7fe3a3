//! The tensor ops of the autograd tape (products, broadcasting arithmetic, reductions, reshape) and
//! the dispatch of every op's backward pass (the network ops are in `nn.rs`).
//!
//! Each backward pass is the vector–Jacobian product of its op (Griewank & Walther 2008, ch. 3):
//! given `ḡ = ∂loss/∂out` it adds `ḡ·∂out/∂in` to each input that needs a gradient.

use std::sync::Arc;

use super::{Float, FrozenLinear, GradStore, Tape, Var, numel, shape_error};
use crate::Result;
use crate::matmul::GemmShape;

/// What made a value, the node indices it read, and what its backward pass needs.
pub(super) enum Op<T: Float> {
    /// A trainable input.
    Leaf,
    /// An input without a gradient.
    Constant,
    /// `a·b`.
    MatMul { a: usize, b: usize },
    /// `x·wᵀ`.
    MatMulNt { x: usize, w: usize },
    /// `big + small` (small repeated over big's leading dimensions).
    Add { big: usize, small: usize },
    /// `big ⊙ small` (small repeated over big's leading dimensions).
    Mul { big: usize, small: usize },
    /// `c·a`.
    Scale { a: usize, c: T },
    /// `Σ a`.
    Sum { a: usize },
    /// `Σ a / len`.
    Mean { a: usize },
    /// `a` with another shape.
    Reshape { a: usize },
    /// Rows `ids` of `table`.
    Embedding { table: usize, ids: Vec<u32> },
    /// RMSNorm, with `1/rms` of every row.
    RmsNorm { x: usize, weight: usize, inv_rms: Vec<T> },
    /// RoPE, with the cosines and sines of every row and pair (`rows × head_dim/2`).
    Rope { x: usize, head_dim: usize, cos: Vec<T>, sin: Vec<T> },
    /// Softmax over the last dimension (the backward reads the output).
    Softmax { x: usize },
    /// Causal GQA attention, with the probabilities (`n_heads × t × t`, zero above the diagonal).
    Attention { q: usize, k: usize, v: usize, n_heads: usize, n_kv_heads: usize, probs: Vec<T> },
    /// `x·σ(x)`.
    Silu { x: usize },
    /// `silu(gate) ⊙ up`.
    Swiglu { gate: usize, up: usize },
    /// `x·Wᵀ` through a frozen layer outside the tape.
    FrozenLinear { x: usize, layer: Arc<dyn FrozenLinear<T>> },
    /// Mean cross-entropy, with each row's target (`usize::MAX`: ignored), log-sum-exp, and how many counted.
    CrossEntropy { logits: usize, targets: Vec<usize>, lse: Vec<T>, count: usize },
}

impl<T: Float> Op<T> {
    /// How many values the op saved for its backward pass (counted by [`Tape::bytes`]).
    pub(super) fn saved_len(&self) -> usize {
        match self {
            Op::RmsNorm { inv_rms, .. } => inv_rms.len(),
            Op::Rope { cos, sin, .. } => cos.len() + sin.len(),
            Op::Attention { probs, .. } => probs.len(),
            Op::CrossEntropy { lse, targets, .. } => {
                lse.len() + targets.len() * std::mem::size_of::<usize>() / std::mem::size_of::<T>()
            }
            Op::Embedding { ids, .. } => ids.len() * std::mem::size_of::<u32>() / std::mem::size_of::<T>(),
            _ => 0,
        }
    }
}

/// `dst = srcᵀ`: `src` is `rows × cols`, `dst` becomes `cols × rows`.
pub(super) fn transpose<T: Copy + Default>(src: &[T], rows: usize, cols: usize, dst: &mut Vec<T>) {
    dst.clear();
    dst.resize(rows * cols, T::default());
    for (r, row) in src.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            dst[c * rows + r] = x;
        }
    }
}

/// `acc += b` elementwise.
pub(super) fn add_assign<T: Float>(acc: &mut [T], b: &[T]) {
    for (a, &b) in acc.iter_mut().zip(b) {
        *a += b;
    }
}

impl<T: Float> Tape<T> {
    /// `(rows, cols)` of a matrix input, or an error naming `op` and the operand.
    pub(super) fn matrix(&self, id: usize, op: &'static str, name: &str) -> Result<(usize, usize)> {
        match *self.dims(id) {
            [r, c] => Ok((r, c)),
            ref s => Err(shape_error(op, format!("{name} must be a matrix, it has shape {s:?}"))),
        }
    }

    /// `a·b`: `a` is `[m, k]`, `b` `[k, n]`, the product `[m, n]`.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `matmul`) unless both are matrices with matching inner dimensions.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        const OP: &str = "matmul";
        let (ia, ib) = (self.id(a, OP)?, self.id(b, OP)?);
        let (m, k) = self.matrix(ia, OP, "a")?;
        let (k2, n) = self.matrix(ib, OP, "b")?;
        if k != k2 {
            return Err(shape_error(OP, format!("a is [{m}, {k}] and b is [{k2}, {n}]: {k} ≠ {k2}")));
        }
        let mut out = vec![T::ZERO; numel(OP, &[m, n])?];
        T::gemm(self.val(ia), self.val(ib), &mut out, GemmShape::new(m, n, k))?;
        Ok(self.push(out, vec![m, n], Op::MatMul { a: ia, b: ib }, &[ia, ib]))
    }

    /// `x·wᵀ`: `x` is `[m, k]`, `w` `[n, k]` (a Linear layer's weight stored `[out, in]`, as in GGUF
    /// and PyTorch), the product `[m, n]`.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `matmul_nt`) unless both are matrices with the same number of columns.
    pub fn matmul_nt(&mut self, x: Var, w: Var) -> Result<Var> {
        const OP: &str = "matmul_nt";
        let (ix, iw) = (self.id(x, OP)?, self.id(w, OP)?);
        let (m, k) = self.matrix(ix, OP, "x")?;
        let (n, k2) = self.matrix(iw, OP, "w")?;
        if k != k2 {
            return Err(shape_error(OP, format!("x is [{m}, {k}] and w is [{n}, {k2}]: {k} ≠ {k2} columns")));
        }
        let mut out = vec![T::ZERO; numel(OP, &[m, n])?];
        T::gemm_nt(self.val(ix), self.val(iw), &mut out, GemmShape::new(m, n, k))?;
        Ok(self.push(out, vec![m, n], Op::MatMulNt { x: ix, w: iw }, &[ix, iw]))
    }

    /// `(big, small)`: the operand with the longer shape and the one whose shape is its trailing part.
    fn broadcast(&self, op: &'static str, a: Var, b: Var) -> Result<(usize, usize)> {
        let (ia, ib) = (self.id(a, op)?, self.id(b, op)?);
        let (sa, sb) = (self.dims(ia), self.dims(ib));
        if sa.ends_with(sb) {
            Ok((ia, ib))
        } else if sb.ends_with(sa) {
            Ok((ib, ia))
        } else {
            Err(shape_error(
                op,
                format!("shapes {sa:?} and {sb:?} neither match nor broadcast (one must end with the other)"),
            ))
        }
    }

    /// `a + b`, elementwise. The shapes are equal, or one is a trailing part of the other (`[n, d]`
    /// with `[d]`, anything with a scalar `[]`), which is then repeated over the leading dimensions.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `add`) when the shapes neither match nor broadcast.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let (big, small) = self.broadcast("add", a, b)?;
        let mut out = self.val(big).to_vec();
        let s = self.val(small);
        if !s.is_empty() {
            for chunk in out.chunks_exact_mut(s.len()) {
                add_assign(chunk, s);
            }
        }
        let shape = self.dims(big).to_vec();
        Ok(self.push(out, shape, Op::Add { big, small }, &[big, small]))
    }

    /// `a ⊙ b`, elementwise, broadcasting as [`Tape::add`].
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `mul`) when the shapes neither match nor broadcast.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (big, small) = self.broadcast("mul", a, b)?;
        let mut out = self.val(big).to_vec();
        let s = self.val(small);
        if !s.is_empty() {
            for chunk in out.chunks_exact_mut(s.len()) {
                for (o, &y) in chunk.iter_mut().zip(s) {
                    *o *= y;
                }
            }
        }
        let shape = self.dims(big).to_vec();
        Ok(self.push(out, shape, Op::Mul { big, small }, &[big, small]))
    }

    /// `c·a` (LoRA's `α/r`, a loss weight).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `scale`) when `a` is not on this tape.
    pub fn scale(&mut self, a: Var, c: f64) -> Result<Var> {
        let ia = self.id(a, "scale")?;
        let c = T::from_f64(c);
        let out = self.val(ia).iter().map(|&x| x * c).collect();
        let shape = self.dims(ia).to_vec();
        Ok(self.push(out, shape, Op::Scale { a: ia, c }, &[ia]))
    }

    /// The sum of every value of `a`, a scalar (shape `[]`).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `sum`) when `a` is not on this tape.
    pub fn sum(&mut self, a: Var) -> Result<Var> {
        let ia = self.id(a, "sum")?;
        let s = self.val(ia).iter().copied().sum();
        Ok(self.push(vec![s], Vec::new(), Op::Sum { a: ia }, &[ia]))
    }

    /// The mean of the values of `a`, a scalar (shape `[]`).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `mean`) when `a` has no values.
    pub fn mean(&mut self, a: Var) -> Result<Var> {
        let ia = self.id(a, "mean")?;
        let n = self.val(ia).len();
        if n == 0 {
            return Err(shape_error("mean", format!("the mean of an empty tensor (shape {:?})", self.dims(ia))));
        }
        let s: T = self.val(ia).iter().copied().sum();
        Ok(self.push(vec![s / T::from_f64(n as f64)], Vec::new(), Op::Mean { a: ia }, &[ia]))
    }

    /// `a` with another shape of the same number of values (row-major order is kept; copies the values).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `reshape`) when the numbers of values differ.
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let ia = self.id(a, "reshape")?;
        let n = numel("reshape", shape)?;
        if n != self.val(ia).len() {
            return Err(shape_error("reshape", format!("{:?} cannot become {shape:?}", self.dims(ia))));
        }
        let out = self.val(ia).to_vec();
        Ok(self.push(out, shape.to_vec(), Op::Reshape { a: ia }, &[ia]))
    }

    /// Adds node `i`'s contributions to the gradients of its inputs, given `g`, the gradient of its output.
    pub(super) fn backward_node(&self, i: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        match &self.nodes[i].op {
            Op::Leaf | Op::Constant => Ok(()),
            &Op::MatMul { a, b } => self.matmul_backward(a, b, g, store),
            &Op::MatMulNt { x, w } => self.matmul_nt_backward(x, w, g, store),
            &Op::Add { big, small } => {
                if self.needs(big) {
                    store.accumulate(big, g.len(), |d| {
                        d.copy_from_slice(g);
                        Ok(())
                    })?;
                }
                if self.needs(small) {
                    let n = self.val(small).len();
                    store.accumulate(small, n, |d| {
                        if n > 0 {
                            for chunk in g.chunks_exact(n) {
                                add_assign(d, chunk);
                            }
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            }
            &Op::Mul { big, small } => {
                let (vb, vs) = (self.val(big), self.val(small));
                let n = vs.len();
                if self.needs(big) {
                    store.accumulate(big, g.len(), |d| {
                        if n > 0 {
                            for (dc, gc) in d.chunks_exact_mut(n).zip(g.chunks_exact(n)) {
                                for ((d, &g), &s) in dc.iter_mut().zip(gc).zip(vs) {
                                    *d = g * s;
                                }
                            }
                        }
                        Ok(())
                    })?;
                }
                if self.needs(small) {
                    store.accumulate(small, n, |d| {
                        if n > 0 {
                            for (gc, bc) in g.chunks_exact(n).zip(vb.chunks_exact(n)) {
                                for ((d, &g), &b) in d.iter_mut().zip(gc).zip(bc) {
                                    *d += g * b;
                                }
                            }
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            }
            &Op::Scale { a, c } => store.accumulate(a, g.len(), |d| {
                for (d, &g) in d.iter_mut().zip(g) {
                    *d = g * c;
                }
                Ok(())
            }),
            &Op::Sum { a } => {
                let n = self.val(a).len();
                store.accumulate(a, n, |d| {
                    d.fill(g[0]);
                    Ok(())
                })
            }
            &Op::Mean { a } => {
                let n = self.val(a).len();
                let each = g[0] / T::from_f64(n as f64);
                store.accumulate(a, n, |d| {
                    d.fill(each);
                    Ok(())
                })
            }
            &Op::Reshape { a } => store.accumulate(a, g.len(), |d| {
                d.copy_from_slice(g);
                Ok(())
            }),
            Op::Embedding { table, ids } => self.embedding_backward(*table, ids, g, store),
            Op::RmsNorm { x, weight, inv_rms } => self.rms_norm_backward(*x, *weight, inv_rms, g, store),
            Op::Rope { x, head_dim, cos, sin } => self.rope_backward(*x, *head_dim, cos, sin, g, store),
            &Op::Softmax { x } => self.softmax_backward(i, x, g, store),
            Op::Attention { q, k, v, n_heads, n_kv_heads, probs } => {
                self.attention_backward([*q, *k, *v], *n_heads, *n_kv_heads, probs, g, store)
            }
            &Op::Silu { x } => self.silu_backward(x, g, store),
            &Op::Swiglu { gate, up } => self.swiglu_backward(gate, up, g, store),
            Op::FrozenLinear { x, layer } => self.linear_frozen_backward(*x, &**layer, g, store),
            Op::CrossEntropy { logits, targets, lse, count } => {
                self.cross_entropy_backward(*logits, targets, lse, *count, g, store)
            }
        }
    }

    fn matmul_backward(&self, a: usize, b: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        let (m, k) = (self.dims(a)[0], self.dims(a)[1]);
        let n = self.dims(b)[1];
        if self.needs(a) {
            // dA [m, k] = dC [m, n] · Bᵀ, with B [k, n] read as the `n × k`-stored operand of gemm_nt.
            store.accumulate(a, m * k, |da| T::gemm_nt(g, self.val(b), da, GemmShape::new(m, k, n)))?;
        }
        if self.needs(b) {
            // dB [k, n] = Aᵀ [k, m] · dC [m, n].
            let mut at = store.zeros(0);
            transpose(self.val(a), m, k, &mut at);
            store.accumulate(b, k * n, |db| T::gemm(&at, g, db, GemmShape::new(k, n, m)))?;
            store.recycle(at);
        }
        Ok(())
    }

    fn matmul_nt_backward(&self, x: usize, w: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        let (m, k) = (self.dims(x)[0], self.dims(x)[1]);
        let n = self.dims(w)[0];
        if self.needs(x) {
            // dX [m, k] = dY [m, n] · W [n, k].
            store.accumulate(x, m * k, |dx| T::gemm(g, self.val(w), dx, GemmShape::new(m, k, n)))?;
        }
        if self.needs(w) {
            // dW [n, k] = dYᵀ [n, m] · X [m, k].
            let mut gt = store.zeros(0);
            transpose(g, m, n, &mut gt);
            store.accumulate(w, n * k, |dw| T::gemm(&gt, self.val(x), dw, GemmShape::new(n, k, m)))?;
            store.recycle(gt);
        }
        Ok(())
    }
}
