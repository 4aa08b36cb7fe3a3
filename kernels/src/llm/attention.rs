//! Causal grouped-query attention of one query position over a KV cache.
//!
//! Scaled dot-product attention (Vaswani et al., "Attention Is All You Need",
//! 2017) with grouped-query heads (Ainslie et al., "GQA", 2023): query head `h`
//! reads key/value head `h / (n_heads / n_kv_heads)`.
//!
//! ```text
//! out_h = Σ_t softmax_t(q_h · k_t,g / √d) · v_t,g      for t = 0 .. positions-1
//! ```

use crate::simd;

/// The head layout of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (divides `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// Attention of query `q` (`n_heads · head_dim`) over the first `keys.len() / kv_dim` cached
/// positions (`keys` and `values` are positions × `n_kv_heads · head_dim`, row-major), into `out`
/// (`n_heads · head_dim`). The caller passes only the positions the query may see (causality).
///
/// # Panics
/// If the slices do not match `shape` (the callers in this crate size them from the model).
pub fn attention(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, out: &mut [f32]) {
    let AttentionShape { n_heads, n_kv_heads, head_dim: hd } = shape;
    let kv = n_kv_heads * hd;
    assert!(
        q.len() == n_heads * hd && out.len() == q.len() && keys.len() == values.len() && keys.len().is_multiple_of(kv)
    );
    let group = n_heads / n_kv_heads;
    for (h, (qh, oh)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).enumerate() {
        attention_head(qh, keys, values, shape, h / group, oh);
    }
}

/// One query head of [`attention`]: `q` and `out` are one head (`head_dim`) wide, and the head
/// reads key/value head `kv_head` of `keys` and `values` (laid out as for [`attention`]). Heads
/// are independent, so callers may run them in parallel.
///
/// # Panics
/// If the slices do not match `shape` or `kv_head` is out of range.
pub fn attention_head(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, kv_head: usize, out: &mut [f32]) {
    attention_head_with(q, keys, values, shape, kv_head, out, |p| p);
}

/// [`attention_head`] with every softmax weight passed through `weight` before it scales its value
/// row. `|p| p` is the plain head; rounding to f16 reproduces the product llama.cpp computes over
/// an f16 V cache, whose other operand ggml converts to f16 (a numerics experiment, see
/// [`KvCache::with_f16_rounding`](super::KvCache::with_f16_rounding)).
pub fn attention_head_with(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: AttentionShape,
    kv_head: usize,
    out: &mut [f32],
    weight: impl Fn(f32) -> f32,
) {
    let hd = shape.head_dim;
    let kv = shape.n_kv_heads * hd;
    assert!(q.len() == hd && out.len() == hd && kv_head < shape.n_kv_heads && keys.len() == values.len());
    assert!(keys.len().is_multiple_of(kv));
    let positions = keys.len() / kv;
    let g = kv_head * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0.0f32; positions];
    simd::dot_rows(q, &keys[g..], kv, &mut scores);
    for s in &mut scores {
        *s *= scale;
    }
    simd::softmax_in_place(&mut scores);
    for p in &mut scores {
        *p = weight(*p);
    }
    out.fill(0.0);
    simd::axpy_rows(&[&scores], &values[g..], kv, out);
}

/// RoPE's inverse frequencies `base^(−2i/head_dim)` for `i < head_dim / 2` (Su et al., "RoFormer", 2021).
pub fn rope_frequencies(head_dim: usize, base: f32) -> Vec<f32> {
    (0..head_dim / 2).map(|i| (base as f64).powf(-2.0 * i as f64 / head_dim as f64) as f32).collect()
}

/// Rotates every head of `x` (one position, heads of `2 · inv_freq.len()` values) by the angles of
/// position `pos`, on adjacent pairs `(x[2i], x[2i+1])` (llama.cpp's "normal" RoPE, which GGUF
/// LLaMA weights are permuted for).
pub fn rope_in_place(x: &mut [f32], pos: usize, inv_freq: &[f32]) {
    let mut angles = vec![(0.0, 0.0); inv_freq.len()];
    rope_angles(pos, inv_freq, &mut angles);
    rope_rotate(x, &angles);
}

/// `(sin, cos)` of position `pos`'s angle for each frequency: what [`rope_rotate`] turns by, the
/// same for every head and block of a position.
pub(crate) fn rope_angles(pos: usize, inv_freq: &[f32], out: &mut [(f32, f32)]) {
    for (o, &f) in out.iter_mut().zip(inv_freq) {
        *o = (pos as f32 * f).sin_cos();
    }
}

/// [`rope_in_place`] by angles [`rope_angles`] computed once.
pub(crate) fn rope_rotate(x: &mut [f32], angles: &[(f32, f32)]) {
    for head in x.chunks_exact_mut(2 * angles.len()) {
        for (pair, &(sin, cos)) in head.chunks_exact_mut(2).zip(angles) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - b * sin;
            pair[1] = a * sin + b * cos;
        }
    }
}
