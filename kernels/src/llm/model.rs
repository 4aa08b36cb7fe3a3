//! The LLaMA decoder forward pass on quantised GGUF weights, with a KV cache and batching.
//!
//! The architecture is LLaMA's (Touvron et al., "LLaMA: Open and Efficient
//! Foundation Language Models", 2023): pre-norm blocks with RMSNorm (Zhang &
//! Sennrich 2019), rotary position embeddings (Su et al., "RoFormer", 2021),
//! grouped-query attention (Ainslie et al., "GQA", 2023) and a SwiGLU feed-forward
//! layer (Shazeer, "GLU Variants Improve Transformer", 2020). Tensor names and
//! layouts are llama.cpp's: `blk.N.attn_q.weight` is a `d_model`-column matrix
//! whose rows are output features, and Q/K rows were permuted by the GGUF
//! converter so that RoPE rotates adjacent pairs `(x[2i], x[2i+1])`.
//!
//! Weights stay in the memory-mapped file and are multiplied on their blocks
//! ([`crate::quant`]): activations are quantised once per matrix (Q8_0 or Q8_K),
//! as llama.cpp does. A batch of rows (several prompt tokens, or one new token
//! of each of several sequences) reads each weight row once for all of them.

use std::ops::Range;

use rayon::prelude::*;

use super::attention::{AttentionShape, attention_head, attention_head_with, rope_frequencies, rope_in_place};
use super::config::LlamaConfig;
use crate::formats::gguf::{Gguf, TensorKind};
use crate::quant::{self, Activations, QuantFormat};
use crate::{Error, Result, matmul, simd};

/// A weight matrix of `rows` output features × `cols` inputs.
#[derive(Debug)]
enum Weights {
    /// Quantised blocks, a byte range of the file.
    Quant { format: QuantFormat, range: Range<usize> },
    /// Q4_1 rows interleaved sixteen at a time at load ([`quant::pack_rows`]): the file's bytes,
    /// copied and rearranged for the AVX-512 VNNI group kernel.
    Packed(quant::PackedRows),
    /// f32 (converted from F32/F16/BF16 at load).
    Dense(Vec<f32>),
}

#[derive(Debug)]
struct Matrix {
    weights: Weights,
    rows: usize,
    cols: usize,
}

#[derive(Debug)]
struct Block {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    w_gate: Matrix,
    w_up: Matrix,
    w_down: Matrix,
}

/// How [`LlamaModel::load_with`] holds a quantised file's weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightPrecision {
    /// In the file's formats; each product quantises its activations to the weights' companion
    /// format (Q8_0, Q8_1 or Q8_K), as llama.cpp does. Mapped, not copied, except Q4_1 matrices on
    /// a CPU with AVX-512 VNNI, which are interleaved sixteen rows at a time at load
    /// ([`quant::pack_rows`], llama.cpp's "repack"): the same bytes and the same logits as
    /// [`WeightPrecision::Mapped`], bit for bit, from a faster GEMV.
    #[default]
    AsStored,
    /// In the file's formats, every quantised matrix mapped as stored (the row kernels).
    Mapped,
    /// Every matrix dequantised to f32 at load, and every product in f32 with f32 activations: the
    /// same weights without activation quantisation, a numerics reference (4–8× the memory).
    Dequantised,
}

/// A LLaMA-family model loaded from a GGUF file (weights memory-mapped, not copied).
#[derive(Debug)]
pub struct LlamaModel {
    config: LlamaConfig,
    gguf: Gguf,
    token_embd: Matrix,
    output_norm: Vec<f32>,
    /// `output.weight`, or the token embedding when the file ties them (SmolLM2 does).
    output: Option<Matrix>,
    blocks: Vec<Block>,
    /// RoPE inverse frequencies θ^(−2i/head_dim), i < head_dim/2.
    inv_freq: Vec<f32>,
}

/// The keys and values of every position a sequence has seen, per block.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    kv_dim: usize,
    capacity: usize,
    len: usize,
    /// Round every stored key and value to f16 ([`KvCache::with_f16_rounding`]).
    f16_rounding: bool,
}

impl KvCache {
    /// An empty cache for up to `capacity` positions of `config`'s model.
    pub fn new(config: &LlamaConfig, capacity: usize) -> KvCache {
        let kv_dim = config.kv_dim();
        let layer = || Vec::with_capacity(kv_dim * capacity.min(4096));
        KvCache {
            k: (0..config.n_layers).map(|_| layer()).collect(),
            v: (0..config.n_layers).map(|_| layer()).collect(),
            kv_dim,
            capacity,
            len: 0,
            f16_rounding: false,
        }
    }

    /// The same cache, storing every key and value rounded to f16 as llama.cpp's default cache
    /// type (`f16`) does, and rounding what ggml converts to f16 to multiply with them: the query
    /// of `K·q` and the softmax weights of `V·p`. A numerics experiment (`cargo xtask bench
    /// llm-agreement` measures its effect on agreement with llama.cpp): the values stay f32 in
    /// memory, only their precision changes.
    pub fn with_f16_rounding(mut self) -> KvCache {
        self.f16_rounding = true;
        self
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position from `len` on (to reuse a shared prompt prefix, or to reset with 0).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            layer.truncate(self.len * self.kv_dim);
        }
    }

    /// Bytes held by the keys and values.
    pub fn memory_bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|l| l.capacity() * 4).sum()
    }
}

/// One sequence's share of a batched forward pass: new tokens and its cache.
#[derive(Debug)]
pub struct SeqStep<'a> {
    /// Tokens to append at positions `cache.len()..`.
    pub tokens: &'a [u32],
    /// The sequence's cache; it grows by `tokens.len()`.
    pub cache: &'a mut KvCache,
}

/// One row of the batch: which sequence, which position.
#[derive(Debug, Clone, Copy)]
struct Row {
    seq: usize,
    pos: usize,
}

impl LlamaModel {
    /// Opens a GGUF file and maps its weights.
    ///
    /// # Errors
    /// The reader's errors; [`Error::UnsupportedModel`] for a non-LLaMA file or
    /// tensors of unexpected shape or type; [`Error::MissingTensor`].
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<LlamaModel> {
        LlamaModel::from_gguf(Gguf::open(path)?)
    }

    /// [`LlamaModel::load`] with the weights held at `precision`.
    ///
    /// # Errors
    /// As [`LlamaModel::load`].
    pub fn load_with(path: impl AsRef<std::path::Path>, precision: WeightPrecision) -> Result<LlamaModel> {
        LlamaModel::from_gguf_with(Gguf::open(path)?, precision)
    }

    /// A model over an already parsed file.
    ///
    /// # Errors
    /// As [`LlamaModel::load`].
    pub fn from_gguf(gguf: Gguf) -> Result<LlamaModel> {
        LlamaModel::from_gguf_with(gguf, WeightPrecision::AsStored)
    }

    /// [`LlamaModel::from_gguf`] with the weights held at `precision`.
    ///
    /// # Errors
    /// As [`LlamaModel::load`].
    pub fn from_gguf_with(gguf: Gguf, precision: WeightPrecision) -> Result<LlamaModel> {
        let config = LlamaConfig::from_gguf(&gguf)?;
        let c = &config;
        let (d, kv, ff) = (c.d_model, c.kv_dim(), c.d_ff);
        let matrix = |name: &str, rows: usize, cols: usize| matrix(&gguf, name, rows, cols, precision);
        let vector = |name: &str| vector(&gguf, name, d);
        let mut blocks = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let n = |t: &str| format!("blk.{i}.{t}.weight");
            blocks.push(Block {
                attn_norm: vector(&n("attn_norm"))?,
                wq: matrix(&n("attn_q"), d, d)?,
                wk: matrix(&n("attn_k"), kv, d)?,
                wv: matrix(&n("attn_v"), kv, d)?,
                wo: matrix(&n("attn_output"), d, d)?,
                ffn_norm: vector(&n("ffn_norm"))?,
                w_gate: matrix(&n("ffn_gate"), ff, d)?,
                w_up: matrix(&n("ffn_up"), ff, d)?,
                w_down: matrix(&n("ffn_down"), d, ff)?,
            });
        }
        // Rows of the embedding are read one token at a time: never interleaved.
        let embd_precision = if precision == WeightPrecision::AsStored { WeightPrecision::Mapped } else { precision };
        let token_embd = self::matrix(&gguf, "token_embd.weight", c.vocab_size, d, embd_precision)?;
        let output = match gguf.tensor("output.weight") {
            Ok(_) => Some(matrix("output.weight", c.vocab_size, d)?),
            Err(Error::MissingTensor { .. }) => None,
            Err(e) => return Err(e),
        };
        let output_norm = vector("output_norm.weight")?;
        let inv_freq = rope_frequencies(c.head_dim, c.rope_base);
        Ok(LlamaModel { config, gguf, token_embd, output_norm, output, blocks, inv_freq })
    }

    /// The mapped file, which the weight matrices' byte ranges index.
    fn bytes(&self) -> &[u8] {
        self.gguf.as_bytes()
    }

    /// The model's shapes and constants.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The parsed file (metadata for the tokenizer and the chat template).
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// Bytes of weights one decoded token reads (every matrix once, the output layer included):
    /// the numerator of the bandwidth roofline.
    pub fn weight_bytes_per_token(&self) -> usize {
        let size = |m: &Matrix| match &m.weights {
            Weights::Quant { range, .. } => range.len(),
            Weights::Packed(p) => p.rows() * p.format().row_bytes(p.cols()).unwrap_or(0),
            Weights::Dense(w) => w.len() * 4,
        };
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down].into_iter().map(size).sum::<usize>())
            .sum();
        blocks + size(self.output.as_ref().unwrap_or(&self.token_embd))
    }

    /// A new, empty cache for up to `capacity` positions (at most the model's context).
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(&self.config, capacity.min(self.config.context_len))
    }

    /// Appends `tokens` to the sequence of `cache` and returns the logits after its last token.
    ///
    /// # Errors
    /// [`Error::ContextFull`]; [`Error::InvalidParameter`] for an empty `tokens` or an id
    /// outside the vocabulary.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let mut logits = self.forward_batch(&mut [SeqStep { tokens, cache }])?;
        Ok(logits.pop().unwrap_or_default())
    }

    /// Runs several sequences in one pass (continuous batching): every weight row is read once
    /// for all their new tokens. Returns each sequence's logits after its last new token.
    ///
    /// # Errors
    /// As [`LlamaModel::forward`]; nothing is appended to any cache on error.
    pub fn forward_batch(&self, steps: &mut [SeqStep<'_>]) -> Result<Vec<Vec<f32>>> {
        // The whole pass on a worker, so that its many parallel regions fork directly.
        crate::in_pool_awake(|| self.forward_batch_in_pool(steps))
    }

    /// [`LlamaModel::forward_batch`], with the logits of every new position for the sequences whose
    /// `every_position` flag is set (prompt scoring: `echo` with `logprobs`). Those sequences get
    /// `tokens.len() × vocab` logits (row `i` predicts the token after `tokens[i]`), the others the
    /// last row's only, at the cost of [`LlamaModel::forward_batch`].
    ///
    /// # Errors
    /// As [`LlamaModel::forward_batch`]; [`Error::InvalidParameter`] when `every_position` is not
    /// one flag per step.
    pub fn forward_batch_positions(&self, steps: &mut [SeqStep<'_>], every_position: &[bool]) -> Result<Vec<Vec<f32>>> {
        if every_position.len() != steps.len() {
            return Err(Error::InvalidParameter("one every-position flag per sequence step".into()));
        }
        crate::in_pool_awake(|| self.forward_rows(steps, Some(every_position)))
    }

    fn forward_batch_in_pool(&self, steps: &mut [SeqStep<'_>]) -> Result<Vec<Vec<f32>>> {
        self.forward_rows(steps, None)
    }

    fn forward_rows(&self, steps: &mut [SeqStep<'_>], every_position: Option<&[bool]>) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        let mut rows = Vec::new();
        // Rows that go through the output layer, and how many of them each sequence owns.
        let mut last = Vec::with_capacity(steps.len());
        let mut owned = Vec::with_capacity(steps.len());
        for (seq, step) in steps.iter().enumerate() {
            if step.tokens.is_empty() {
                return Err(Error::InvalidParameter("a sequence step needs at least one token".into()));
            }
            if step.cache.len + step.tokens.len() > step.cache.capacity {
                return Err(Error::ContextFull { capacity: step.cache.capacity });
            }
            if step.cache.kv_dim != c.kv_dim() || step.cache.k.len() != c.n_layers {
                return Err(Error::InvalidParameter("the KV cache was made for another model".into()));
            }
            if let Some(&bad) = step.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
                return Err(Error::InvalidParameter(format!(
                    "token id {bad} outside the vocabulary of {}",
                    c.vocab_size
                )));
            }
            let first = rows.len();
            rows.extend((0..step.tokens.len()).map(|i| Row { seq, pos: step.cache.len + i }));
            if every_position.is_some_and(|all| all[seq]) {
                last.extend(first..rows.len());
                owned.push(step.tokens.len());
            } else {
                last.push(rows.len() - 1);
                owned.push(1);
            }
        }
        let tokens: Vec<u32> = steps.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let (n, d, kv, ff) = (rows.len(), c.d_model, c.kv_dim(), c.d_ff);

        let mut x = vec![0.0f32; n * d];
        for (r, &t) in tokens.iter().enumerate() {
            self.embed(t, &mut x[r * d..(r + 1) * d])?;
        }
        let mut xb = vec![0.0f32; n * d];
        let (mut q, mut k, mut v) = (vec![0.0f32; n * d], vec![0.0f32; n * kv], vec![0.0f32; n * kv]);
        let mut attn = vec![0.0f32; n * d];
        let mut proj = vec![0.0f32; n * d];
        let (mut gate, mut up) = (vec![0.0f32; n * ff], vec![0.0f32; n * ff]);

        for (l, block) in self.blocks.iter().enumerate() {
            rms_norm_rows(&x, &block.attn_norm, c.rms_eps, &mut xb, d);
            self.matmul_rows(&mut [(&block.wq, &mut q), (&block.wk, &mut k), (&block.wv, &mut v)], &xb, n)?;
            for (r, row) in rows.iter().enumerate() {
                rope_in_place(&mut q[r * d..(r + 1) * d], row.pos, &self.inv_freq);
                rope_in_place(&mut k[r * kv..(r + 1) * kv], row.pos, &self.inv_freq);
                let cache = &mut *steps[row.seq].cache;
                let (kr, vr) = (&k[r * kv..(r + 1) * kv], &v[r * kv..(r + 1) * kv]);
                if cache.f16_rounding {
                    let round = |x: &f32| half::f16::from_f32(*x).to_f32();
                    cache.k[l].extend(kr.iter().map(round));
                    cache.v[l].extend(vr.iter().map(round));
                } else {
                    cache.k[l].extend_from_slice(kr);
                    cache.v[l].extend_from_slice(vr);
                }
            }
            let caches: Vec<&KvCache> = steps.iter().map(|s| &*s.cache).collect();
            // One task per (row, query head): a single decoded row still spreads over the threads.
            let hd = c.head_dim;
            attn.par_chunks_mut(hd).zip(q.par_chunks(hd)).enumerate().for_each(|(i, (out, qh))| {
                let (row, head) = (rows[i / c.n_heads], i % c.n_heads);
                self.attend_head(qh, caches[row.seq], l, row.pos, head, out);
            });
            self.matmul_rows(&mut [(&block.wo, &mut proj)], &attn, n)?;
            add_in_place(&mut x, &proj);

            rms_norm_rows(&x, &block.ffn_norm, c.rms_eps, &mut xb, d);
            self.matmul_rows(&mut [(&block.w_gate, &mut gate), (&block.w_up, &mut up)], &xb, n)?;
            simd::silu_in_place(&mut gate);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g *= u;
            }
            self.matmul_rows(&mut [(&block.w_down, &mut proj)], &gate, n)?;
            add_in_place(&mut x, &proj);
        }
        for step in steps.iter_mut() {
            step.cache.len += step.tokens.len();
        }

        // Only the rows whose logits are wanted go through the (large) output layer.
        let mut xl = vec![0.0f32; last.len() * d];
        for (i, &r) in last.iter().enumerate() {
            simd::rms_norm(&x[r * d..(r + 1) * d], &self.output_norm, c.rms_eps, &mut xl[i * d..(i + 1) * d]);
        }
        let mut logits = vec![0.0f32; last.len() * c.vocab_size];
        let output = self.output.as_ref().unwrap_or(&self.token_embd);
        self.matmul_rows(&mut [(output, &mut logits)], &xl, last.len())?;
        if every_position.is_none() {
            return Ok(logits.chunks_exact(c.vocab_size).map(<[f32]>::to_vec).collect());
        }
        let mut out = Vec::with_capacity(owned.len());
        let mut at = 0;
        for n in owned {
            out.push(logits[at * c.vocab_size..(at + n) * c.vocab_size].to_vec());
            at += n;
        }
        Ok(out)
    }

    /// Row `token` of the embedding table, dequantised into `out`.
    fn embed(&self, token: u32, out: &mut [f32]) -> Result<()> {
        let m = &self.token_embd;
        let t = token as usize;
        match &m.weights {
            Weights::Quant { format, range } => {
                let row_bytes = range.len() / m.rows;
                let start = range.start + t * row_bytes;
                quant::dequantize(*format, &self.bytes()[start..start + row_bytes], out)
            }
            Weights::Dense(w) => {
                out.copy_from_slice(&w[t * m.cols..(t + 1) * m.cols]);
                Ok(())
            }
            Weights::Packed(_) => unreachable!("the token embedding is never interleaved (from_gguf_with)"),
        }
    }

    /// Causal attention of one row's query head `head` over positions `0..=pos` of its cache.
    fn attend_head(&self, q: &[f32], cache: &KvCache, layer: usize, pos: usize, head: usize, out: &mut [f32]) {
        let c = &self.config;
        let seen = (pos + 1) * c.kv_dim();
        let shape = AttentionShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim };
        let kv_head = head / (c.n_heads / c.n_kv_heads);
        let (keys, values) = (&cache.k[layer][..seen], &cache.v[layer][..seen]);
        if cache.f16_rounding {
            // ggml converts the other operand of a product with an f16 tensor to f16: the query
            // for K·q, the softmax weights for V·p.
            let round = |x: f32| half::f16::from_f32(x).to_f32();
            let q: Vec<f32> = q.iter().map(|&x| round(x)).collect();
            attention_head_with(&q, keys, values, shape, kv_head, out, round);
        } else {
            attention_head(q, keys, values, shape, kv_head, out);
        }
    }

    /// `out = xs · Wᵀ` for each `(W, out)`, `xs` being `n` rows of `W.cols`. Quantised matrices
    /// whose formats share an activation format share one quantisation of `xs` and run in one
    /// parallel region; others (dense, or mixed formats) run one after another.
    fn matmul_rows(&self, jobs: &mut [(&Matrix, &mut [f32])], xs: &[f32], n: usize) -> Result<()> {
        let formats: Vec<Option<QuantFormat>> = jobs.iter().map(|(m, _)| quant_format(m)).collect();
        let shared = match formats.first() {
            Some(Some(f))
                if formats.iter().all(|g| g.is_some_and(|g| g.activation_format() == f.activation_format())) =>
            {
                Some(*f)
            }
            _ => None,
        };
        let Some(format) = shared else {
            for (m, out) in jobs.iter_mut() {
                let acts = match quant_format(m) {
                    Some(f) => Some(quantize_rows(f, xs, m.cols)?),
                    None => None,
                };
                self.matmul_quantised(&mut [(*m, &mut out[..n * m.rows])], xs, n, acts.as_deref())?;
            }
            return Ok(());
        };
        let acts = quantize_rows(format, xs, jobs[0].0.cols)?;
        self.matmul_quantised(jobs, xs, n, Some(&acts))
    }

    /// [`LlamaModel::matmul_rows`] once the activations are quantised (`acts` is `None` only for
    /// a single dense job).
    fn matmul_quantised(
        &self,
        jobs: &mut [(&Matrix, &mut [f32])],
        xs: &[f32],
        n: usize,
        acts: Option<&[Activations]>,
    ) -> Result<()> {
        let Some(acts) = acts else {
            for (m, out) in jobs.iter_mut() {
                let Weights::Dense(w) = &m.weights else { unreachable!("quantised jobs come with activations") };
                let shape = matmul::GemmShape { m: n, n: m.rows, k: m.cols };
                matmul::gemm_nt(&xs[..n * m.cols], w, &mut out[..n * m.rows], shape)?;
            }
            return Ok(());
        };
        if n == 1 {
            return self.gemv_fused(jobs, &acts[0]);
        }
        // Each task writes its rows' dots for the whole batch (row-major, `rows × n`); they are
        // transposed into the `n × rows` outputs afterwards.
        let mut transposed: Vec<Vec<f32>> = jobs.iter().map(|(m, _)| vec![0.0f32; m.rows * n]).collect();
        let mut tasks = Vec::new();
        for ((m, _), t) in jobs.iter().zip(transposed.iter_mut()) {
            self.push_tasks(m, t, ROWS_PER_TASK * n, &mut tasks);
        }
        tasks.into_par_iter().try_for_each(|task| task.run(acts))?;
        for ((m, out), t) in jobs.iter_mut().zip(&transposed) {
            for (r, dots) in t.chunks_exact(n).enumerate() {
                for (b, &v) in dots.iter().enumerate() {
                    out[b * m.rows + r] = v;
                }
            }
        }
        Ok(())
    }

    /// One token's products with several quantised matrices in one parallel region: the rows of
    /// every matrix are cut into tasks together, so the threads meet once rather than per matrix.
    fn gemv_fused(&self, jobs: &mut [(&Matrix, &mut [f32])], act: &Activations) -> Result<()> {
        let mut tasks = Vec::new();
        for (m, out) in jobs.iter_mut() {
            self.push_tasks(m, &mut out[..m.rows], GEMV_ROWS_PER_TASK, &mut tasks);
        }
        tasks.into_par_iter().try_for_each(|task| task.run(std::slice::from_ref(act)))
    }

    /// Cuts quantised matrix `m`'s product into tasks of `per_task` outputs (whole rows of the
    /// batch; a multiple of the packed groups), writing into `out` (row-major, `rows × n`).
    fn push_tasks<'a>(&'a self, m: &'a Matrix, out: &'a mut [f32], per_task: usize, tasks: &mut Vec<Task<'a>>) {
        let n = out.len() / m.rows;
        match &m.weights {
            Weights::Quant { format, range } => {
                let bytes = &self.bytes()[range.clone()];
                let row_bytes = bytes.len() / m.rows;
                for (outs, ws) in out.chunks_mut(per_task).zip(bytes.chunks(per_task / n * row_bytes)) {
                    tasks.push(Task::Rows { format: *format, weights: ws, out: outs });
                }
            }
            Weights::Packed(packed) => {
                for (i, outs) in out.chunks_mut(per_task).enumerate() {
                    tasks.push(Task::Packed { packed, first_row: i * per_task / n, out: outs });
                }
            }
            Weights::Dense(_) => unreachable!("callers pass quantised matrices only"),
        }
    }
}

/// One rayon task of a quantised product: some rows of one matrix against every activation row,
/// into `out[r·n + b]`.
enum Task<'a> {
    Rows { format: QuantFormat, weights: &'a [u8], out: &'a mut [f32] },
    Packed { packed: &'a quant::PackedRows, first_row: usize, out: &'a mut [f32] },
}

impl Task<'_> {
    fn run(self, acts: &[Activations]) -> Result<()> {
        match self {
            Task::Rows { format, weights, out } => {
                let rows = out.len() / acts.len();
                quant::dots_batch(format, weights, rows, acts, out)
            }
            Task::Packed { packed, first_row, out } => {
                quant::packed_dots(quant::Kernel::best(), packed, first_row, acts, out)
            }
        }
    }
}

/// Rows per rayon task of the fused one-token products ([`LlamaModel::gemv_fused`]).
const GEMV_ROWS_PER_TASK: usize = 64;

/// Rows per rayon task of the batched products (each task runs its rows against the whole batch).
const ROWS_PER_TASK: usize = 16;

/// The matrix's quantised format, `None` for dense weights.
fn quant_format(m: &Matrix) -> Option<QuantFormat> {
    match &m.weights {
        Weights::Quant { format, .. } => Some(*format),
        Weights::Packed(p) => Some(p.format()),
        Weights::Dense(_) => None,
    }
}

/// Each `cols`-wide row of `xs`, quantised for weights of `format`.
fn quantize_rows(format: QuantFormat, xs: &[f32], cols: usize) -> Result<Vec<Activations>> {
    xs.chunks_exact(cols).map(|x| quant::quantize_activations(format, x)).collect()
}

fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32], d: usize) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        simd::rms_norm(xr, weight, eps, or);
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    simd::axpy(1.0, &y[..x.len()], x);
}

/// The matrix `name`, checked to be `rows × cols`.
fn matrix(gguf: &Gguf, name: &str, rows: usize, cols: usize, precision: WeightPrecision) -> Result<Matrix> {
    let t = gguf.tensor(name)?;
    if t.row_len() != cols || t.rows() != rows || t.dims().len() != 2 {
        return Err(Error::UnsupportedModel(format!("{name} has dims {:?}, expected [{cols}, {rows}]", t.dims())));
    }
    let weights = match t.kind() {
        TensorKind::Quant(_) if precision == WeightPrecision::Dequantised => Weights::Dense(t.to_f32()?),
        TensorKind::Quant(format) if precision == WeightPrecision::AsStored && repacks(format) => {
            Weights::Packed(quant::pack_rows(format, t.bytes, rows, cols)?)
        }
        TensorKind::Quant(format) => {
            let start = t.bytes.as_ptr() as usize - gguf.as_bytes().as_ptr() as usize;
            Weights::Quant { format, range: start..start + t.bytes.len() }
        }
        TensorKind::F32 | TensorKind::F16 | TensorKind::BF16 => Weights::Dense(t.to_f32()?),
        TensorKind::Other(ty) => {
            return Err(Error::UnsupportedModel(format!("{name} is {ty}, which the decoder cannot multiply")));
        }
    };
    Ok(Matrix { weights, rows, cols })
}

/// Whether [`WeightPrecision::AsStored`] interleaves matrices of `format`: when the format packs
/// and this CPU runs the group kernel (elsewhere the packed rows would take the scalar twin).
fn repacks(format: QuantFormat) -> bool {
    quant::packs(format) && quant::Kernel::best() == quant::Kernel::Avx512Vnni
}

/// The f32 vector `name` of length `len` (a norm's weights).
fn vector(gguf: &Gguf, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = gguf.tensor(name)?;
    if t.info.n_elements as usize != len {
        return Err(Error::UnsupportedModel(format!("{name} has {} elements, expected {len}", t.info.n_elements)));
    }
    t.to_f32()
}
