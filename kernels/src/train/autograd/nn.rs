//! The network ops of the autograd tape, with their backward passes: embedding, RMSNorm (Zhang &
//! Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019), RoPE (Su et al., "RoFormer:
//! Enhanced Transformer with Rotary Position Embedding", 2021), softmax, causal grouped-query attention
//! (Vaswani et al. 2017; Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models
//! from Multi-Head Checkpoints", 2023), SiLU and SwiGLU (Shazeer, "GLU Variants Improve Transformer",
//! 2020), and the cross-entropy loss.
//!
//! The forward passes follow `kernels::llm`'s inference code (`llm::attention`, `simd::rms_norm`), so
//! a model trained here runs unchanged there.

use super::ops::{Op, add_assign, transpose};
use super::{Float, GradStore, Tape, Var, numel, shape_error};
use crate::Result;
use crate::matmul::GemmShape;

/// `σ(x) = 1/(1 + e^{−x})`, without overflow for either sign.
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// Softmax of `row` in place (the maximum is subtracted first); returns `ln Σ e^x` of the input.
fn softmax_row<T: Float>(row: &mut [T]) -> T {
    let m = row.iter().fold(row[0], |m, &x| m.max(x));
    let mut s = T::ZERO;
    for x in row.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    let inv = T::ONE / s;
    for x in row.iter_mut() {
        *x *= inv;
    }
    m + s.ln()
}

/// Copies columns `col .. col + width` of the `rows × stride` matrix `src` into `dst` (`rows × width`).
fn gather_cols<T: Float>(src: &[T], stride: usize, col: usize, width: usize, dst: &mut Vec<T>) {
    dst.clear();
    for row in src.chunks_exact(stride) {
        dst.extend_from_slice(&row[col..col + width]);
    }
}

/// Adds `src` (`rows × width`) into columns `col .. col + width` of `dst` (`rows × stride`).
fn scatter_add_cols<T: Float>(src: &[T], dst: &mut [T], stride: usize, col: usize, width: usize) {
    for (s, d) in src.chunks_exact(width).zip(dst.chunks_exact_mut(stride)) {
        add_assign(&mut d[col..col + width], s);
    }
}

impl<T: Float> Tape<T> {
    /// The rows `ids` of `table` (`[vocab, d]`): a `[ids.len(), d]` matrix. Its backward adds each
    /// row's gradient into the row it was read from (twice for an id that occurs twice).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `embedding`) when `table` is not a matrix or an id is `≥ vocab`.
    pub fn embedding(&mut self, table: Var, ids: &[u32]) -> Result<Var> {
        const OP: &str = "embedding";
        let it = self.id(table, OP)?;
        let (vocab, d) = self.matrix(it, OP, "table")?;
        if let Some((pos, &id)) = ids.iter().enumerate().find(|&(_, &id)| id as usize >= vocab) {
            return Err(shape_error(OP, format!("id {id} at position {pos} is outside the table [{vocab}, {d}]")));
        }
        let mut out = Vec::with_capacity(numel(OP, &[ids.len(), d])?);
        let tv = self.val(it);
        for &id in ids {
            let r = id as usize * d;
            out.extend_from_slice(&tv[r..r + d]);
        }
        Ok(self.push(out, vec![ids.len(), d], Op::Embedding { table: it, ids: ids.to_vec() }, &[it]))
    }

    pub(super) fn embedding_backward(
        &self,
        table: usize,
        ids: &[u32],
        g: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let d = self.dims(table)[1];
        let n = self.val(table).len();
        store.accumulate(table, n, |dt| {
            if d > 0 {
                for (&id, gr) in ids.iter().zip(g.chunks_exact(d)) {
                    let r = id as usize * d;
                    add_assign(&mut dt[r..r + d], gr);
                }
            }
            Ok(())
        })
    }

    /// RMSNorm of every row of `x` (`[.., d]`) with `weight` (`[d]`):
    /// `out_i = x_i / √(mean(x²) + eps) · weight_i`, as `simd::rms_norm` (LLaMA's layer norm).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `rms_norm`) when `weight` is not `[d]` for the last
    /// dimension `d ≥ 1` of `x`, or `eps` is negative or not finite.
    pub fn rms_norm(&mut self, x: Var, weight: Var, eps: f64) -> Result<Var> {
        const OP: &str = "rms_norm";
        let (ix, iw) = (self.id(x, OP)?, self.id(weight, OP)?);
        let (sx, sw) = (self.dims(ix), self.dims(iw));
        let d = match (sx.last(), sw) {
            (Some(&d), &[dw]) if d == dw && d > 0 => d,
            _ => {
                return Err(shape_error(
                    OP,
                    format!("x is {sx:?} and weight is {sw:?}: weight must be [d], d ≥ 1 the last dimension of x"),
                ));
            }
        };
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(shape_error(OP, format!("eps {eps} must be finite and ≥ 0")));
        }
        let (eps, inv_d) = (T::from_f64(eps), T::from_f64(1.0 / d as f64));
        let (xv, wv) = (self.val(ix), self.val(iw));
        let mut out = vec![T::ZERO; xv.len()];
        let mut inv_rms = Vec::with_capacity(xv.len() / d);
        for (xr, or) in xv.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let r = T::ONE / (T::dot(xr, xr) * inv_d + eps).sqrt();
            for ((o, &x), &w) in or.iter_mut().zip(xr).zip(wv) {
                *o = x * r * w;
            }
            inv_rms.push(r);
        }
        let shape = sx.to_vec();
        Ok(self.push(out, shape, Op::RmsNorm { x: ix, weight: iw, inv_rms }, &[ix, iw]))
    }

    pub(super) fn rms_norm_backward(
        &self,
        x: usize,
        weight: usize,
        inv_rms: &[T],
        g: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let (xv, wv) = (self.val(x), self.val(weight));
        let d = wv.len();
        let inv_d = T::from_f64(1.0 / d as f64);
        if self.needs(x) {
            // y_i = x_i·r·w_i, r = (mean(x²) + eps)^(−1/2), ∂r/∂x_j = −r³·x_j/d:
            // dx_j = r·g_j·w_j − (r³/d)·x_j·Σ_i g_i·w_i·x_i.
            store.accumulate(x, xv.len(), |dx| {
                for (((dr, xr), gr), &r) in
                    dx.chunks_exact_mut(d).zip(xv.chunks_exact(d)).zip(g.chunks_exact(d)).zip(inv_rms)
                {
                    let mut s = T::ZERO;
                    for ((&g, &w), &x) in gr.iter().zip(wv).zip(xr) {
                        s += g * w * x;
                    }
                    let c = r * r * r * inv_d * s;
                    for (((d, &g), &w), &x) in dr.iter_mut().zip(gr).zip(wv).zip(xr) {
                        *d = r * g * w - c * x;
                    }
                }
                Ok(())
            })?;
        }
        if self.needs(weight) {
            store.accumulate(weight, d, |dw| {
                for ((xr, gr), &r) in xv.chunks_exact(d).zip(g.chunks_exact(d)).zip(inv_rms) {
                    for ((d, &g), &x) in dw.iter_mut().zip(gr).zip(xr) {
                        *d += g * x * r;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Rotary position embedding of `x` (`[t, heads·head_dim]`, row `r` at position `positions[r]`),
    /// exactly as `kernels::llm::attention::{rope_frequencies, rope_in_place}`: in every head, the
    /// adjacent pair `(x[2i], x[2i+1])` turns by the angle `pos · base^(−2i/head_dim)` (llama.cpp's
    /// "normal" RoPE, which GGUF LLaMA weights are permuted for). The backward turns the gradient back.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `rope`) when `x` is not a matrix, `head_dim` is not even and
    /// ≥ 2, does not divide the row width, `positions` is not one per row, or `base` is not finite and > 0.
    pub fn rope(&mut self, x: Var, positions: &[usize], head_dim: usize, base: f64) -> Result<Var> {
        const OP: &str = "rope";
        let ix = self.id(x, OP)?;
        let (t, width) = self.matrix(ix, OP, "x")?;
        if head_dim < 2 || !head_dim.is_multiple_of(2) || !width.is_multiple_of(head_dim) {
            return Err(shape_error(
                OP,
                format!("head_dim {head_dim} must be even, ≥ 2 and divide the row width {width}"),
            ));
        }
        if positions.len() != t {
            return Err(shape_error(OP, format!("{} positions for {t} rows", positions.len())));
        }
        if !(base > 0.0 && base.is_finite()) {
            return Err(shape_error(OP, format!("base {base} must be finite and > 0")));
        }
        let half = head_dim / 2;
        // As `rope_frequencies`: the exponent in f64, rounded once to the element type.
        let inv_freq: Vec<T> = (0..half).map(|i| T::from_f64(base.powf(-2.0 * i as f64 / head_dim as f64))).collect();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for &pos in positions {
            let p = T::from_f64(pos as f64);
            for &f in &inv_freq {
                let (s, c) = (p * f).sin_cos();
                sin.push(s);
                cos.push(c);
            }
        }
        let mut out = self.val(ix).to_vec();
        if width > 0 {
            for (r, row) in out.chunks_exact_mut(width).enumerate() {
                let (cr, sr) = (&cos[r * half..(r + 1) * half], &sin[r * half..(r + 1) * half]);
                for head in row.chunks_exact_mut(head_dim) {
                    for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cr).zip(sr) {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * c - b * s;
                        pair[1] = a * s + b * c;
                    }
                }
            }
        }
        Ok(self.push(out, vec![t, width], Op::Rope { x: ix, head_dim, cos, sin }, &[ix]))
    }

    pub(super) fn rope_backward(
        &self,
        x: usize,
        head_dim: usize,
        cos: &[T],
        sin: &[T],
        g: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let width = self.dims(x)[1];
        let half = head_dim / 2;
        store.accumulate(x, g.len(), |dx| {
            if width == 0 {
                return Ok(());
            }
            // The transpose of a rotation is the rotation by the opposite angle.
            for (r, (dr, gr)) in dx.chunks_exact_mut(width).zip(g.chunks_exact(width)).enumerate() {
                let (cr, sr) = (&cos[r * half..(r + 1) * half], &sin[r * half..(r + 1) * half]);
                for (dh, gh) in dr.chunks_exact_mut(head_dim).zip(gr.chunks_exact(head_dim)) {
                    for (((dp, gp), &c), &s) in dh.chunks_exact_mut(2).zip(gh.chunks_exact(2)).zip(cr).zip(sr) {
                        dp[0] = gp[0] * c + gp[1] * s;
                        dp[1] = gp[1] * c - gp[0] * s;
                    }
                }
            }
            Ok(())
        })
    }

    /// Softmax over the last dimension of `x` (each row minus its maximum before `exp`).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `softmax`) when `x` is a scalar or its last dimension is 0.
    pub fn softmax(&mut self, x: Var) -> Result<Var> {
        const OP: &str = "softmax";
        let ix = self.id(x, OP)?;
        let d = match self.dims(ix).last() {
            Some(&d) if d > 0 => d,
            _ => return Err(shape_error(OP, format!("x has shape {:?}: needs a last dimension ≥ 1", self.dims(ix)))),
        };
        let mut out = self.val(ix).to_vec();
        for row in out.chunks_exact_mut(d) {
            softmax_row(row);
        }
        let shape = self.dims(ix).to_vec();
        Ok(self.push(out, shape, Op::Softmax { x: ix }, &[ix]))
    }

    pub(super) fn softmax_backward(&self, out: usize, x: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        let y = self.val(out);
        let d = *self.dims(x).last().unwrap_or(&1);
        store.accumulate(x, y.len(), |dx| {
            // dx = y ⊙ (g − Σ g·y), row by row.
            for ((dr, yr), gr) in dx.chunks_exact_mut(d).zip(y.chunks_exact(d)).zip(g.chunks_exact(d)) {
                let s = T::dot(gr, yr);
                for ((d, &y), &g) in dr.iter_mut().zip(yr).zip(gr) {
                    *d = y * (g - s);
                }
            }
            Ok(())
        })
    }

    /// Causal scaled dot-product attention with grouped-query heads, fused (one op, one backward).
    ///
    /// `q` is `[t, n_heads·hd]`, `k` and `v` `[t, n_kv_heads·hd]`; query head `h` reads key/value
    /// head `h / (n_heads / n_kv_heads)`, position `i` attends to positions `0..=i` with weights
    /// `softmax(q·kᵀ / √hd)`. The output is `[t, n_heads·hd]`, equal to
    /// `kernels::llm::attention::attention` run position by position over a growing KV cache. The
    /// probabilities (`n_heads·t²` values) are kept for the backward pass.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `causal_attention`) when the three are not matrices with the
    /// same rows, `n_kv_heads` does not divide `n_heads`, or the widths are not `n_heads·hd` and
    /// `n_kv_heads·hd` for one `hd ≥ 1`.
    pub fn causal_attention(&mut self, q: Var, k: Var, v: Var, n_heads: usize, n_kv_heads: usize) -> Result<Var> {
        const OP: &str = "causal_attention";
        let (iq, ik, iv) = (self.id(q, OP)?, self.id(k, OP)?, self.id(v, OP)?);
        let (t, qw) = self.matrix(iq, OP, "q")?;
        let (tk, kw) = self.matrix(ik, OP, "k")?;
        let (tv, vw) = self.matrix(iv, OP, "v")?;
        if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
            return Err(shape_error(OP, format!("n_kv_heads {n_kv_heads} must divide n_heads {n_heads}, both ≥ 1")));
        }
        let hd = qw / n_heads;
        if hd == 0 || qw != n_heads * hd || kw != n_kv_heads * hd || vw != kw || tk != t || tv != t {
            return Err(shape_error(
                OP,
                format!(
                    "q [{t}, {qw}], k [{tk}, {kw}], v [{tv}, {vw}] do not fit {n_heads} query and {n_kv_heads} key/value heads of one width ≥ 1 over the same positions"
                ),
            ));
        }
        let group = n_heads / n_kv_heads;
        let scale = T::ONE / T::from_f64(hd as f64).sqrt();
        let mut out = vec![T::ZERO; numel(OP, &[t, qw])?];
        if t == 0 {
            let op = Op::Attention { q: iq, k: ik, v: iv, n_heads, n_kv_heads, probs: Vec::new() };
            return Ok(self.push(out, vec![t, qw], op, &[iq, ik, iv]));
        }
        let mut probs = vec![T::ZERO; numel(OP, &[n_heads, t, t])?];
        let (mut qh, mut kg, mut vg, mut oh) = (Vec::new(), Vec::new(), Vec::new(), vec![T::ZERO; t * hd]);
        for g in 0..n_kv_heads {
            gather_cols(self.val(ik), kw, g * hd, hd, &mut kg);
            gather_cols(self.val(iv), kw, g * hd, hd, &mut vg);
            for h in g * group..(g + 1) * group {
                gather_cols(self.val(iq), qw, h * hd, hd, &mut qh);
                let p = &mut probs[h * t * t..(h + 1) * t * t];
                T::gemm_nt(&qh, &kg, p, GemmShape::new(t, t, hd))?;
                for (i, row) in p.chunks_exact_mut(t).enumerate() {
                    for s in &mut row[..=i] {
                        *s *= scale;
                    }
                    softmax_row(&mut row[..=i]);
                    row[i + 1..].fill(T::ZERO);
                }
                T::gemm(p, &vg, &mut oh, GemmShape::new(t, hd, t))?;
                scatter_add_cols(&oh, &mut out, qw, h * hd, hd);
            }
        }
        let op = Op::Attention { q: iq, k: ik, v: iv, n_heads, n_kv_heads, probs };
        Ok(self.push(out, vec![t, qw], op, &[iq, ik, iv]))
    }

    pub(super) fn attention_backward(
        &self,
        [iq, ik, iv]: [usize; 3],
        n_heads: usize,
        n_kv_heads: usize,
        probs: &[T],
        g_out: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let (t, qw) = (self.dims(iq)[0], self.dims(iq)[1]);
        if t == 0 {
            return Ok(());
        }
        let hd = qw / n_heads;
        let kw = n_kv_heads * hd;
        let group = n_heads / n_kv_heads;
        let scale = T::ONE / T::from_f64(hd as f64).sqrt();
        let (nq, nk, nv) = (self.needs(iq), self.needs(ik), self.needs(iv));
        let mut dq = if nq { store.zeros(t * qw) } else { Vec::new() };
        let mut dk = if nk { store.zeros(t * kw) } else { Vec::new() };
        let mut dv = if nv { store.zeros(t * kw) } else { Vec::new() };
        let (mut qh, mut kg, mut vg, mut goh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut dp = vec![T::ZERO; t * t];
        let mut trans = Vec::new();
        let mut tmp = vec![T::ZERO; t * hd];
        let (mut dkg, mut dvg) = (vec![T::ZERO; t * hd], vec![T::ZERO; t * hd]);
        for g in 0..n_kv_heads {
            gather_cols(self.val(ik), kw, g * hd, hd, &mut kg);
            gather_cols(self.val(iv), kw, g * hd, hd, &mut vg);
            dkg.fill(T::ZERO);
            dvg.fill(T::ZERO);
            for h in g * group..(g + 1) * group {
                let p = &probs[h * t * t..(h + 1) * t * t];
                gather_cols(g_out, qw, h * hd, hd, &mut goh);
                if nv {
                    // dV_g += Pᵀ·dO_h.
                    transpose(p, t, t, &mut trans);
                    T::gemm(&trans, &goh, &mut tmp, GemmShape::new(t, hd, t))?;
                    add_assign(&mut dvg, &tmp);
                }
                if !(nq || nk) {
                    continue;
                }
                // dP = dO_h·V_gᵀ; dS = P ⊙ (dP − Σ_j dP·P) · scale (zero above the diagonal, where P is).
                T::gemm_nt(&goh, &vg, &mut dp, GemmShape::new(t, t, hd))?;
                for (i, (dr, pr)) in dp.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
                    let s = T::dot(&dr[..=i], &pr[..=i]);
                    for (d, &p) in dr[..=i].iter_mut().zip(&pr[..=i]) {
                        *d = p * (*d - s) * scale;
                    }
                    dr[i + 1..].fill(T::ZERO);
                }
                if nq {
                    // dQ_h = dS·K_g.
                    T::gemm(&dp, &kg, &mut tmp, GemmShape::new(t, hd, t))?;
                    scatter_add_cols(&tmp, &mut dq, qw, h * hd, hd);
                }
                if nk {
                    // dK_g += dSᵀ·Q_h.
                    gather_cols(self.val(iq), qw, h * hd, hd, &mut qh);
                    transpose(&dp, t, t, &mut trans);
                    T::gemm(&trans, &qh, &mut tmp, GemmShape::new(t, hd, t))?;
                    add_assign(&mut dkg, &tmp);
                }
            }
            if nk {
                scatter_add_cols(&dkg, &mut dk, kw, g * hd, hd);
            }
            if nv {
                scatter_add_cols(&dvg, &mut dv, kw, g * hd, hd);
            }
        }
        if nq {
            store.add_owned(iq, dq);
        }
        if nk {
            store.add_owned(ik, dk);
        }
        if nv {
            store.add_owned(iv, dv);
        }
        Ok(())
    }

    /// SiLU (swish), `x·σ(x)`, elementwise.
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `silu`) when `x` is not on this tape.
    pub fn silu(&mut self, x: Var) -> Result<Var> {
        let ix = self.id(x, "silu")?;
        let out = self.val(ix).iter().map(|&x| x * sigmoid(x)).collect();
        let shape = self.dims(ix).to_vec();
        Ok(self.push(out, shape, Op::Silu { x: ix }, &[ix]))
    }

    pub(super) fn silu_backward(&self, x: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        let xv = self.val(x);
        store.accumulate(x, xv.len(), |dx| {
            for ((d, &x), &g) in dx.iter_mut().zip(xv).zip(g) {
                *d = g * silu_grad(x);
            }
            Ok(())
        })
    }

    /// The SwiGLU gate of LLaMA's feed-forward block, `silu(gate) ⊙ up` (shapes equal).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `swiglu`) when the shapes differ.
    pub fn swiglu(&mut self, gate: Var, up: Var) -> Result<Var> {
        const OP: &str = "swiglu";
        let (ig, iu) = (self.id(gate, OP)?, self.id(up, OP)?);
        if self.dims(ig) != self.dims(iu) {
            return Err(shape_error(OP, format!("gate {:?} and up {:?} differ", self.dims(ig), self.dims(iu))));
        }
        let out = self.val(ig).iter().zip(self.val(iu)).map(|(&g, &u)| g * sigmoid(g) * u).collect();
        let shape = self.dims(ig).to_vec();
        Ok(self.push(out, shape, Op::Swiglu { gate: ig, up: iu }, &[ig, iu]))
    }

    pub(super) fn swiglu_backward(&self, gate: usize, up: usize, g: &[T], store: &mut GradStore<T>) -> Result<()> {
        let (gv, uv) = (self.val(gate), self.val(up));
        if self.needs(gate) {
            store.accumulate(gate, gv.len(), |d| {
                for (((d, &x), &u), &g) in d.iter_mut().zip(gv).zip(uv).zip(g) {
                    *d = g * u * silu_grad(x);
                }
                Ok(())
            })?;
        }
        if self.needs(up) {
            store.accumulate(up, uv.len(), |d| {
                for ((d, &x), &g) in d.iter_mut().zip(gv).zip(g) {
                    *d = g * x * sigmoid(x);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The mean cross-entropy of `logits` (`[t, vocab]`) against `targets` (one per row): the mean
    /// over the rows whose target is not `ignore_index` of `log Σ_j e^{x_j} − x_target` (a stable
    /// log-softmax). A scalar (shape `[]`).
    ///
    /// When every row is ignored the loss is defined as `0` and every gradient is `0` (nothing to
    /// learn from; PyTorch gives NaN instead).
    ///
    /// # Errors
    /// [`crate::Error::TrainShape`] (op `cross_entropy`) when `logits` is not a matrix with
    /// `vocab ≥ 1`, `targets` is not one per row, or a target other than `ignore_index` is outside
    /// `0..vocab`.
    pub fn cross_entropy(&mut self, logits: Var, targets: &[i64], ignore_index: i64) -> Result<Var> {
        const OP: &str = "cross_entropy";
        let il = self.id(logits, OP)?;
        let (t, vocab) = self.matrix(il, OP, "logits")?;
        if vocab == 0 || targets.len() != t {
            return Err(shape_error(OP, format!("logits [{t}, {vocab}] with {} targets", targets.len())));
        }
        let mut rows = Vec::with_capacity(t);
        for (pos, &target) in targets.iter().enumerate() {
            if target == ignore_index {
                rows.push(usize::MAX);
            } else if (0..vocab as i64).contains(&target) {
                rows.push(target as usize);
            } else {
                return Err(shape_error(OP, format!("target {target} at position {pos} is outside 0..{vocab}")));
            }
        }
        let lv = self.val(il);
        let mut lse = vec![T::ZERO; t];
        let (mut total, mut count) = (T::ZERO, 0usize);
        for ((row, &target), l) in lv.chunks_exact(vocab).zip(&rows).zip(lse.iter_mut()) {
            if target == usize::MAX {
                continue;
            }
            let m = row.iter().fold(row[0], |m, &x| m.max(x));
            let s: T = row.iter().map(|&x| (x - m).exp()).sum();
            *l = m + s.ln();
            total += *l - row[target];
            count += 1;
        }
        let loss = if count == 0 { T::ZERO } else { total / T::from_f64(count as f64) };
        let op = Op::CrossEntropy { logits: il, targets: rows, lse, count };
        Ok(self.push(vec![loss], Vec::new(), op, &[il]))
    }

    pub(super) fn cross_entropy_backward(
        &self,
        logits: usize,
        targets: &[usize],
        lse: &[T],
        count: usize,
        g: &[T],
        store: &mut GradStore<T>,
    ) -> Result<()> {
        let lv = self.val(logits);
        let vocab = self.dims(logits)[1];
        if count == 0 {
            return store.accumulate(logits, lv.len(), |_| Ok(()));
        }
        let c = g[0] / T::from_f64(count as f64);
        store.accumulate(logits, lv.len(), |dl| {
            // d/dx_j of (lse − x_target) = softmax_j − [j = target].
            for (((dr, row), &target), &l) in
                dl.chunks_exact_mut(vocab).zip(lv.chunks_exact(vocab)).zip(targets).zip(lse)
            {
                if target == usize::MAX {
                    continue;
                }
                for (d, &x) in dr.iter_mut().zip(row) {
                    *d = c * (x - l).exp();
                }
                dr[target] -= c;
            }
            Ok(())
        })
    }
}

/// `d/dx (x·σ(x)) = σ(x)·(1 + x·(1 − σ(x)))`.
fn silu_grad<T: Float>(x: T) -> T {
    let s = sigmoid(x);
    s * (T::ONE + x * (T::ONE - s))
}
