//! One decoding step of a LLaMA-family attention layer: rotary position embeddings (Su et al.,
//! "RoFormer", 2021), the KV cache, and causal grouped-query attention (Vaswani et al.,
//! "Attention Is All You Need", 2017; Ainslie et al., "GQA", 2023).
//!
//! When the model generates token `t`, the layer computes a query, a key and a value for that
//! one position; the keys and values of positions `0..t` are already in the **KV cache**, so the
//! step costs `O(t)` instead of recomputing the whole prefix:
//!
//! ```text
//! q, k ← RoPE(q, t), RoPE(k, t)          rotate each head by angles that depend on t
//! cache.push(k, v)                        the cache now holds positions 0..=t
//! out_h = Σ_{s ≤ t} softmax_s(q_h · k_{s,g(h)} / √d) · v_{s,g(h)}    g(h) = h / (n_heads / n_kv_heads)
//! ```
//!
//! Vectors of one position are laid out head after head: query head `h` is
//! `q[h·d..(h+1)·d]` with `d = head_dim`, and a cached position `s` is the row
//! `keys[s·kv_dim..(s+1)·kv_dim]` with `kv_dim = n_kv_heads·d`. SmolLM2-135M has 9 query heads
//! sharing 3 key/value heads of width 64.

pub use kernels::llm::AttentionShape;

/// RoPE's inverse frequencies `θ_i = base^(−2i/head_dim)` for `i < head_dim / 2`, computed in
/// `f64` and rounded to `f32` once (as `kernels::llm::rope_frequencies`). Given.
pub fn rope_frequencies(head_dim: usize, base: f32) -> Vec<f32> {
    (0..head_dim / 2).map(|i| (base as f64).powf(-2.0 * i as f64 / head_dim as f64) as f32).collect()
}

/// Task c4w1.attention (14 points, with [`softmax_in_place`], [`attention`] and
/// [`decode_step`]): rotates every head of `x` (one position: heads of `2 · inv_freq.len()`
/// values, one after another) to position `pos`.
///
/// Within a head, the adjacent pair `(x[2i], x[2i+1])` is rotated by the angle
/// `φ = pos as f32 · inv_freq[i]` (computed in f32):
///
/// ```text
/// x[2i]   ← x[2i]·cos φ − x[2i+1]·sin φ
/// x[2i+1] ← x[2i]·sin φ + x[2i+1]·cos φ
/// ```
///
/// (adjacent pairs: llama.cpp's "normal" RoPE, which GGUF LLaMA weights are permuted for).
pub fn rope_in_place(x: &mut [f32], pos: usize, inv_freq: &[f32]) {
    // BEGIN SOLUTION c4w1.attention
    for head in x.chunks_exact_mut(2 * inv_freq.len()) {
        for (pair, &f) in head.chunks_exact_mut(2).zip(inv_freq) {
            let (sin, cos) = (pos as f32 * f).sin_cos();
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - b * sin;
            pair[1] = a * sin + b * cos;
        }
    }
    // END SOLUTION
}

/// Task c4w1.attention: the softmax of `x`, in place: `x_i ← exp(x_i − max) / Σ_j exp(x_j − max)`.
///
/// Subtracting the maximum first changes nothing mathematically and keeps `exp` from
/// overflowing: scores of 1000 must give a proper distribution, not NaN. An empty slice stays
/// empty.
pub fn softmax_in_place(x: &mut [f32]) {
    // BEGIN SOLUTION c4w1.attention
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
    // END SOLUTION
}

// ANCHOR: attention
/// Task c4w1.attention: causal grouped-query attention of one query over every cached position.
///
/// `q` holds `n_heads · head_dim` values; `keys` and `values` hold `positions` rows of
/// `kv_dim = n_kv_heads · head_dim` values each (row `s` is position `s`). For query head `h`,
/// with `g = h / (n_heads / n_kv_heads)` its key/value head:
///
/// ```text
/// score_s = (q_h · k_{s,g}) / √head_dim          for every position s
/// p = softmax(score)
/// out_h = Σ_s p_s · v_{s,g}
/// ```
///
/// Returns `n_heads · head_dim` values. The caller passes only the positions the query may see:
/// that is what makes the attention causal. Must agree with `kernels::llm::attention` to a
/// relative 1e-5.
///
/// # Panics
/// If the slices do not match `shape` (or `n_kv_heads` does not divide `n_heads`).
pub fn attention(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape) -> Vec<f32> {
    let AttentionShape { n_heads, n_kv_heads, head_dim } = shape;
    let kv_dim = n_kv_heads * head_dim;
    assert!(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention: {n_kv_heads} KV heads for {n_heads} heads");
    assert_eq!(q.len(), n_heads * head_dim, "attention: the query has the wrong length");
    assert!(
        keys.len() == values.len() && keys.len().is_multiple_of(kv_dim.max(1)),
        "attention: keys and values must be whole rows of {kv_dim}"
    );
    // BEGIN SOLUTION c4w1.attention
    let positions = keys.len() / kv_dim;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0.0f32; q.len()];
    let mut scores = vec![0.0f32; positions];
    for (h, (qh, oh)) in q.chunks_exact(head_dim).zip(out.chunks_exact_mut(head_dim)).enumerate() {
        let g = (h / group) * head_dim;
        for (s, score) in scores.iter_mut().enumerate() {
            let k = &keys[s * kv_dim + g..s * kv_dim + g + head_dim];
            *score = qh.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
        softmax_in_place(&mut scores);
        for (s, &p) in scores.iter().enumerate() {
            let v = &values[s * kv_dim + g..s * kv_dim + g + head_dim];
            for (o, &x) in oh.iter_mut().zip(v) {
                *o += p * x;
            }
        }
    }
    out
    // END SOLUTION
}
// ANCHOR_END: attention

/// The keys and values one attention layer has seen, one row of `kv_dim` floats per position.
/// Given.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCache {
    keys: Vec<f32>,
    values: Vec<f32>,
    kv_dim: usize,
}

impl LayerCache {
    /// An empty cache for rows of `kv_dim` floats.
    pub fn new(kv_dim: usize) -> LayerCache {
        LayerCache { keys: Vec::new(), values: Vec::new(), kv_dim }
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.keys.len() / self.kv_dim.max(1)
    }

    /// Whether no position is stored.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Width of one row.
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Appends one position.
    ///
    /// # Panics
    /// If `k` or `v` is not `kv_dim` long.
    pub fn push(&mut self, k: &[f32], v: &[f32]) {
        assert!(k.len() == self.kv_dim && v.len() == self.kv_dim, "LayerCache::push: rows of {}", self.kv_dim);
        self.keys.extend_from_slice(k);
        self.values.extend_from_slice(v);
    }

    /// Every cached key, row after row.
    pub fn keys(&self) -> &[f32] {
        &self.keys
    }

    /// Every cached value, row after row.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Bytes held by the keys and values (f32): `2 · len · kv_dim · 4`.
    pub fn memory_bytes(&self) -> usize {
        (self.keys.len() + self.values.len()) * 4
    }
}

// ANCHOR: decode_step
/// Task c4w1.attention: one decoding step of an attention layer at position `pos = cache.len()`.
///
/// 1. rotate `q` and `k` to `pos` with [`rope_in_place`] (queries and keys only; values are
///    not rotated);
/// 2. push the rotated `k` and `v` onto the cache;
/// 3. return [`attention`] of `q` over every cached position (`0..=pos`).
///
/// Called once per position on an empty cache, this gives each position's output without ever
/// letting a position see a later one.
pub fn decode_step(
    q: &mut [f32],
    k: &mut [f32],
    v: &[f32],
    cache: &mut LayerCache,
    shape: AttentionShape,
    inv_freq: &[f32],
) -> Vec<f32> {
    // BEGIN SOLUTION c4w1.attention
    let pos = cache.len();
    rope_in_place(q, pos, inv_freq);
    rope_in_place(k, pos, inv_freq);
    cache.push(k, v);
    attention(q, cache.keys(), cache.values(), shape)
    // END SOLUTION
}
// ANCHOR_END: decode_step

/// RMSNorm (Zhang & Sennrich 2019), the normalisation before every LLaMA sub-layer:
/// `x_i / √(mean(x²) + eps) · weight_i`. Given (the tests use it to build real inputs).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    let scale = 1.0 / (mean_sq + eps).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}
