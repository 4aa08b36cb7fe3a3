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

use super::attention::{rope_angles, rope_frequencies, rope_rotate};
use super::config::LlamaConfig;
use crate::formats::gguf::{Gguf, TensorKind};
use crate::phases::{self, Shared};
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
        // Each cache takes its new positions now (the rope step fills them) and gives them back
        // if the pass fails.
        let old_lens: Vec<usize> = steps.iter().map(|s| s.cache.len).collect();
        for step in steps.iter_mut() {
            let to = (step.cache.len + step.tokens.len()) * kv;
            for layer in step.cache.k.iter_mut().chain(step.cache.v.iter_mut()) {
                layer.resize(to, 0.0);
            }
        }
        let mut logits = vec![0.0f32; last.len() * c.vocab_size];
        let result = {
            let mut xb = vec![0.0f32; n * d];
            let (mut q, mut k, mut v) = (vec![0.0f32; n * d], vec![0.0f32; n * kv], vec![0.0f32; n * kv]);
            let (mut attn, mut proj) = (vec![0.0f32; n * d], vec![0.0f32; n * d]);
            let (mut gate, mut up) = (vec![0.0f32; n * ff], vec![0.0f32; n * ff]);
            let mut acts = ACT_FORMATS.map(|f| vec![Activations::empty(f); n]);
            let f16_rounding = steps.iter().map(|s| s.cache.f16_rounding).collect();
            let mut rope = vec![(0.0f32, 0.0f32); n * c.head_dim / 2];
            let span = rows.iter().map(|r| r.pos + 1).max().unwrap_or(0);
            let mut scores = vec![0.0f32; n * c.n_heads * span];
            let (mut keys, mut values) = (Vec::new(), Vec::new());
            for step in steps.iter_mut() {
                let KvCache { k, v, .. } = &mut *step.cache;
                keys.push(k.iter_mut().map(|l| Shared::new(l)).collect());
                values.push(v.iter_mut().map(|l| Shared::new(l)).collect());
            }
            let pass = Pass {
                model: self,
                rows: &rows,
                last: &last,
                f16_rounding,
                rope: Shared::new(&mut rope),
                span,
                scores: Shared::new(&mut scores),
                x: Shared::new(&mut x),
                xb: Shared::new(&mut xb),
                q: Shared::new(&mut q),
                k: Shared::new(&mut k),
                v: Shared::new(&mut v),
                attn: Shared::new(&mut attn),
                proj: Shared::new(&mut proj),
                gate: Shared::new(&mut gate),
                up: Shared::new(&mut up),
                acts: acts.each_mut().map(|slot| Shared::new(slot)),
                keys,
                values,
                logits: Shared::new(&mut logits),
            };
            phases::run(&pass.tasks(), |phase, task| pass.step(phase, task))
        };
        for (step, old) in steps.iter_mut().zip(old_lens) {
            match result {
                Ok(()) => step.cache.len += step.tokens.len(),
                Err(_) => step.cache.truncate(old),
            }
        }
        result?;
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

    /// `output.weight`, or the token embedding the file ties it to.
    fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// `out = W[rows] · acts` for quantised `m` (`out[r·n + b]`, `n` activation rows).
    fn dots(&self, m: &Matrix, rows: Range<usize>, acts: &[Activations], out: &mut [f32]) -> Result<()> {
        match &m.weights {
            Weights::Quant { format, range } => {
                let row_bytes = range.len() / m.rows;
                let bytes = &self.bytes()[range.start + rows.start * row_bytes..range.start + rows.end * row_bytes];
                quant::dots_batch(*format, bytes, rows.len(), acts, out)
            }
            Weights::Packed(packed) => quant::packed_dots(quant::Kernel::best(), packed, rows.start, acts, out),
            Weights::Dense(_) => unreachable!("dense matrices are multiplied whole (Pass::product)"),
        }
    }
}

/// The steps of one block, each a phase of [`phases::run`] whose tasks are rows, heads or row
/// ranges of a product: a decoded token crosses twelve phase boundaries per block and opens one
/// parallel region for the whole pass.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Per row: the residual of the block before, RMSNorm, activations for Q, K and V.
    AttnNorm,
    /// The Q, K and V products, by row ranges of the three matrices.
    Qkv,
    /// Per row: RoPE on its query and key, and its key and value into the cache.
    Rope,
    /// Per row, KV head and run of positions: the scores of the group's query heads (a run's
    /// keys come from memory once, for the group's first head; the others find them in L1).
    Scores,
    /// Per row and query head: scale and softmax.
    Softmax,
    /// Per row and KV head: the weighted sum of the values for the group's query heads (each
    /// value row read once for the group).
    Mix,
    /// Per row: activations of the attention output.
    QuantAttn,
    /// The output projection.
    AttnOut,
    /// Per row: the attention residual, RMSNorm, activations for the gate and up products.
    FfnNorm,
    /// The gate and up products, with SwiGLU on each task's rows when both are quantised.
    GateUp,
    /// Per row: the activations for the down product (and SwiGLU, when `GateUp` did not apply it).
    Swiglu,
    /// The down product.
    Down,
}

const BLOCK_STEPS: [Step; 12] = [
    Step::AttnNorm,
    Step::Qkv,
    Step::Rope,
    Step::Scores,
    Step::Softmax,
    Step::Mix,
    Step::QuantAttn,
    Step::AttnOut,
    Step::FfnNorm,
    Step::GateUp,
    Step::Swiglu,
    Step::Down,
];

/// The activation formats of the quantised products, one slot of [`Pass::acts`] each.
const ACT_FORMATS: [QuantFormat; 2] = [QuantFormat::Q8_0, QuantFormat::Q8_K];

/// The buffers of one pass, which its phases' tasks write in disjoint parts ([`phases::Shared`]):
/// `n` rows of the batch, one per new token.
struct Pass<'a> {
    model: &'a LlamaModel,
    rows: &'a [Row],
    /// The rows whose logits are wanted, in output order.
    last: &'a [usize],
    /// Per sequence, whether its cache rounds to f16.
    f16_rounding: Vec<bool>,
    /// Per row, RoPE's `(sin, cos)` for its position (`head_dim / 2` pairs), made by the first
    /// block's norm step for them all.
    rope: Shared<'a, (f32, f32)>,
    /// Positions the farthest row sees: the row stride of `scores`.
    span: usize,
    /// Per row and query head, the attention scores, then weights (`span` each).
    scores: Shared<'a, f32>,
    /// The residual stream, `n × d_model`.
    x: Shared<'a, f32>,
    /// The normalised rows (the last phase: the `last` rows, in order).
    xb: Shared<'a, f32>,
    q: Shared<'a, f32>,
    k: Shared<'a, f32>,
    v: Shared<'a, f32>,
    attn: Shared<'a, f32>,
    /// The output of the latest projection back to `d_model`, added to `x` by the next norm.
    proj: Shared<'a, f32>,
    gate: Shared<'a, f32>,
    up: Shared<'a, f32>,
    /// Per [`ACT_FORMATS`] slot, the quantised rows the next product reads.
    acts: [Shared<'a, Activations>; 2],
    /// Per sequence and block, the cache's keys and values (sized for the new positions).
    keys: Vec<Vec<Shared<'a, f32>>>,
    values: Vec<Vec<Shared<'a, f32>>>,
    /// `last.len() × vocab`.
    logits: Shared<'a, f32>,
}

impl Pass<'_> {
    /// Tasks per phase: [`BLOCK_STEPS`] for every block, then the output norm and the logits.
    fn tasks(&self) -> Vec<usize> {
        let (m, n) = (self.model, self.rows.len());
        let mut tasks = Vec::with_capacity(m.blocks.len() * BLOCK_STEPS.len() + 2);
        for b in &m.blocks {
            for step in BLOCK_STEPS {
                tasks.push(match step {
                    Step::AttnNorm | Step::Rope | Step::QuantAttn | Step::FfnNorm | Step::Swiglu => n,
                    Step::Scores => n * m.config.n_kv_heads * self.span.div_ceil(SCORE_POSITIONS),
                    Step::Softmax => n * m.config.n_heads,
                    Step::Mix => n * m.config.n_kv_heads,
                    Step::Qkv => product_tasks(&[&b.wq, &b.wk, &b.wv], n),
                    Step::AttnOut => product_tasks(&[&b.wo], n),
                    Step::GateUp if fuses_swiglu(b) => matrix_tasks(&b.w_gate, n),
                    Step::GateUp => product_tasks(&[&b.w_gate, &b.w_up], n),
                    Step::Down => product_tasks(&[&b.w_down], n),
                });
            }
        }
        tasks.push(self.last.len());
        tasks.push(product_tasks(&[m.output()], self.last.len()));
        tasks
    }

    /// Task `task` of phase `phase`.
    fn step(&self, phase: usize, task: usize) -> Result<()> {
        let (m, n) = (self.model, self.rows.len());
        let c = &m.config;
        let (d, kv, ff, hd) = (c.d_model, c.kv_dim(), c.d_ff, c.head_dim);
        let (l, at) = (phase / BLOCK_STEPS.len(), phase % BLOCK_STEPS.len());
        let Some(block) = m.blocks.get(l) else {
            // The output layer, on the `last` rows only.
            let out = m.output();
            if at == 0 {
                let r = self.last[task];
                // SAFETY: the `last` rows are distinct, so task `task` alone touches row `r` of
                // `x` and `proj` and row `task` of `xb` and of the activations.
                let (x, proj) = unsafe { (self.x.part_mut(r * d..(r + 1) * d), self.proj.part(r * d..(r + 1) * d)) };
                add_in_place(x, proj);
                let xb = unsafe { self.xb.part_mut(task * d..(task + 1) * d) };
                simd::rms_norm(x, &m.output_norm, c.rms_eps, xb);
                return unsafe { self.quantize_for(&[out], task, xb) };
            }
            return unsafe { self.product(&[(out, &self.logits)], &self.xb, self.last.len(), task) };
        };
        let row = |r: usize, w: usize| r * w..(r + 1) * w;
        // SAFETY (every arm): a per-row step's task `r` touches row `r` of each buffer only (and
        // the cache slot of row `r`'s position, which no other row has); a scores task writes
        // its run of positions of its group's heads' scores, a softmax task one head's scores, a
        // mix task its group's heads of `attn`; a product's task writes its own output rows
        // (`product`). Everything else a phase reads, and the phases before it wrote.
        unsafe {
            match BLOCK_STEPS[at] {
                Step::AttnNorm => {
                    if l == 0 {
                        rope_angles(self.rows[task].pos, &m.inv_freq, self.rope.part_mut(row(task, hd / 2)));
                    }
                    let x = self.x.part_mut(row(task, d));
                    if l > 0 {
                        add_in_place(x, self.proj.part(row(task, d)));
                    }
                    let xb = self.xb.part_mut(row(task, d));
                    simd::rms_norm(x, &block.attn_norm, c.rms_eps, xb);
                    self.quantize_for(&[&block.wq, &block.wk, &block.wv], task, xb)
                }
                Step::Qkv => {
                    self.product(&[(&block.wq, &self.q), (&block.wk, &self.k), (&block.wv, &self.v)], &self.xb, n, task)
                }
                Step::Rope => {
                    let Row { seq, pos } = self.rows[task];
                    let q = self.q.part_mut(row(task, d));
                    let k = self.k.part_mut(row(task, kv));
                    let angles = self.rope.part(row(task, hd / 2));
                    rope_rotate(q, angles);
                    rope_rotate(k, angles);
                    let v = self.v.part(row(task, kv));
                    let (keys, values) = (
                        self.keys[seq][l].part_mut(pos * kv..(pos + 1) * kv),
                        self.values[seq][l].part_mut(pos * kv..(pos + 1) * kv),
                    );
                    if self.f16_rounding[seq] {
                        // ggml converts the other operand of a product with an f16 tensor to f16:
                        // the query for K·q (here), the softmax weights for V·p (`Softmax`).
                        q.iter_mut().for_each(|x| *x = round_f16(*x));
                        keys.iter_mut().zip(k.iter()).for_each(|(o, x)| *o = round_f16(*x));
                        values.iter_mut().zip(v).for_each(|(o, x)| *o = round_f16(*x));
                    } else {
                        keys.copy_from_slice(k);
                        values.copy_from_slice(v);
                    }
                    Ok(())
                }
                Step::Scores => {
                    let chunks = self.span.div_ceil(SCORE_POSITIONS);
                    let (r, g, chunk) = (task / (c.n_kv_heads * chunks), task / chunks % c.n_kv_heads, task % chunks);
                    let Row { seq, pos } = self.rows[r];
                    let seen = chunk * SCORE_POSITIONS..((chunk + 1) * SCORE_POSITIONS).min(pos + 1);
                    if seen.is_empty() {
                        return Ok(());
                    }
                    let keys = self.keys[seq][l].part(seen.start * kv..seen.end * kv);
                    let group = c.n_heads / c.n_kv_heads;
                    for h in g * group..(g + 1) * group {
                        let q = self.q.part(r * d + h * hd..r * d + (h + 1) * hd);
                        let at = (r * c.n_heads + h) * self.span;
                        simd::dot_rows(q, &keys[g * hd..], kv, self.scores.part_mut(at + seen.start..at + seen.end));
                    }
                    Ok(())
                }
                Step::Softmax => {
                    let (r, h) = (task / c.n_heads, task % c.n_heads);
                    let Row { seq, pos } = self.rows[r];
                    let at = (r * c.n_heads + h) * self.span;
                    let scores = self.scores.part_mut(at..at + pos + 1);
                    let scale = 1.0 / (hd as f32).sqrt();
                    scores.iter_mut().for_each(|s| *s *= scale);
                    simd::softmax_in_place(scores);
                    if self.f16_rounding[seq] {
                        scores.iter_mut().for_each(|p| *p = round_f16(*p));
                    }
                    Ok(())
                }
                Step::Mix => {
                    let (r, g) = (task / c.n_kv_heads, task % c.n_kv_heads);
                    let group = c.n_heads / c.n_kv_heads;
                    let Row { seq, pos } = self.rows[r];
                    let values = self.values[seq][l].part(0..(pos + 1) * kv);
                    let weights: Vec<&[f32]> = (g * group..(g + 1) * group)
                        .map(|h| {
                            let at = (r * c.n_heads + h) * self.span;
                            self.scores.part(at..at + pos + 1)
                        })
                        .collect();
                    let out = self.attn.part_mut(r * d + g * group * hd..r * d + (g + 1) * group * hd);
                    out.fill(0.0);
                    simd::axpy_rows(&weights, &values[g * hd..], kv, out);
                    Ok(())
                }
                Step::QuantAttn => self.quantize_for(&[&block.wo], task, self.attn.part(row(task, d))),
                Step::AttnOut => self.product(&[(&block.wo, &self.proj)], &self.attn, n, task),
                Step::FfnNorm => {
                    let x = self.x.part_mut(row(task, d));
                    add_in_place(x, self.proj.part(row(task, d)));
                    let xb = self.xb.part_mut(row(task, d));
                    simd::rms_norm(x, &block.ffn_norm, c.rms_eps, xb);
                    self.quantize_for(&[&block.w_gate, &block.w_up], task, xb)
                }
                Step::GateUp => self.gate_up(block, n, task),
                Step::Swiglu => {
                    let gate = self.gate.part_mut(row(task, ff));
                    if !fuses_swiglu(block) {
                        swiglu(gate, self.up.part(row(task, ff)));
                    }
                    self.quantize_for(&[&block.w_down], task, gate)
                }
                Step::Down => self.product(&[(&block.w_down, &self.proj)], &self.gate, n, task),
            }
        }
    }

    /// Task `task` of the gate and up products. When [`fuses_swiglu`], the task computes the same
    /// rows of both and applies SwiGLU to them (`gate ← silu(gate)·up`, element-wise, so the rows
    /// may go in any grouping); otherwise it is a plain product task and `Swiglu` applies it.
    ///
    /// # Safety
    /// As for [`Pass::product`].
    unsafe fn gate_up(&self, block: &Block, n: usize, task: usize) -> Result<()> {
        let (gate, up) = ((&block.w_gate, &self.gate), (&block.w_up, &self.up));
        if !fuses_swiglu(block) {
            return unsafe { self.product(&[gate, up], &self.xb, n, task) };
        }
        // SAFETY: task `task` alone computes these rows of `gate` and `up` (the same range in
        // both: one matrix's task `task`), then reads and writes only them.
        unsafe {
            self.product(&[gate], &self.xb, n, task)?;
            self.product(&[up], &self.xb, n, task)?;
            let (ff, rows) = (block.w_gate.rows, task_rows(block.w_gate.rows, n, task));
            for b in 0..n {
                let at = b * ff + rows.start..b * ff + rows.end;
                swiglu(self.gate.part_mut(at.clone()), self.up.part(at));
            }
        }
        Ok(())
    }

    /// Quantises row `r`'s input `xs` into the activation slots the products of `matrices` read.
    ///
    /// # Safety
    /// No other task of the phase touches row `r` of the slots.
    unsafe fn quantize_for(&self, matrices: &[&Matrix], r: usize, xs: &[f32]) -> Result<()> {
        let mut done = [false; ACT_FORMATS.len()];
        for format in matrices.iter().filter_map(|m| quant_format(m)) {
            let slot = act_slot(format);
            if !std::mem::replace(&mut done[slot], true) {
                // SAFETY: the caller's.
                unsafe { quant::quantize_activations_into(format, xs, &mut self.acts[slot].part_mut(r..r + 1)[0])? };
            }
        }
        Ok(())
    }

    /// Task `task` of the products `out = xs · Wᵀ` for each `(W, out)` of `jobs`, over `n` rows:
    /// a range of a quantised matrix's rows against the quantised rows, or a whole dense matrix
    /// against `xs` (whose GEMM is itself parallel).
    ///
    /// # Safety
    /// The phase runs every task of these `jobs` once, and nothing else writes their outputs.
    unsafe fn product(
        &self,
        jobs: &[(&Matrix, &Shared<'_, f32>)],
        xs: &Shared<'_, f32>,
        n: usize,
        task: usize,
    ) -> Result<()> {
        let mut t = task;
        for &(m, out) in jobs {
            let count = matrix_tasks(m, n);
            if t >= count {
                t -= count;
                continue;
            }
            // SAFETY (below): task `task` is the only one of the phase on these rows of `m`, and
            // the quantised rows and `xs` are only read.
            let Some(format) = quant_format(m) else {
                let Weights::Dense(w) = &m.weights else { unreachable!("quant_format covers the rest") };
                let (xs, out) = unsafe { (xs.part(0..n * m.cols), out.part_mut(0..n * m.rows)) };
                return matmul::gemm_nt(xs, w, out, matmul::GemmShape { m: n, n: m.rows, k: m.cols });
            };
            let acts = unsafe { self.acts[act_slot(format)].part(0..n) };
            let rows = task_rows(m.rows, n, t);
            if n == 1 {
                return self.model.dots(m, rows.clone(), acts, unsafe { out.part_mut(rows) });
            }
            // The kernels write a row's dots for the whole batch together (`rows × n`).
            let mut dots = vec![0.0f32; rows.len() * n];
            self.model.dots(m, rows.clone(), acts, &mut dots)?;
            for b in 0..n {
                let out = unsafe { out.part_mut(b * m.rows + rows.start..b * m.rows + rows.end) };
                for (o, row) in out.iter_mut().zip(dots.chunks_exact(n)) {
                    *o = row[b];
                }
            }
            return Ok(());
        }
        unreachable!("task {task} past the products' tasks")
    }
}

/// Rows of a `rows`-row quantised matrix per product task. For one token, about two tasks per
/// thread and matrix, of 64 to 256 rows: long runs stream the weights better than many short ones
/// (each task starts cold), and two per thread still balance the threads. For a batch, 16 (each
/// task runs its rows against the whole batch). All are whole interleaved groups.
fn rows_per_task(rows: usize, n: usize) -> usize {
    if n > 1 {
        return ROWS_PER_TASK;
    }
    let per_thread_pair = rows.div_ceil(2 * rayon::current_num_threads());
    (per_thread_pair.div_ceil(quant::GROUP_ROWS) * quant::GROUP_ROWS).clamp(GEMV_MIN_ROWS, GEMV_MAX_ROWS)
}

/// The rows of a `rows`-row quantised matrix that its product's task `task` computes.
fn task_rows(rows: usize, n: usize, task: usize) -> Range<usize> {
    let per = rows_per_task(rows, n);
    task * per..((task + 1) * per).min(rows)
}

/// Tasks of `m`'s product over `n` rows: row ranges when quantised, one whole GEMM when dense.
fn matrix_tasks(m: &Matrix, n: usize) -> usize {
    match quant_format(m) {
        Some(_) => m.rows.div_ceil(rows_per_task(m.rows, n)),
        None => 1,
    }
}

fn product_tasks(matrices: &[&Matrix], n: usize) -> usize {
    matrices.iter().map(|m| matrix_tasks(m, n)).sum()
}

/// The [`ACT_FORMATS`] slot of weights of `format`.
fn act_slot(format: QuantFormat) -> usize {
    let act = format.activation_format();
    ACT_FORMATS.iter().position(|&f| f == act).expect("every quantised format pairs with Q8_0 or Q8_K")
}

/// Positions per task of the attention scores.
const SCORE_POSITIONS: usize = 64;

/// Whether the gate and up products of `block` apply SwiGLU in their own tasks (both quantised,
/// so that task `t` of each covers the same rows).
fn fuses_swiglu(block: &Block) -> bool {
    quant_format(&block.w_gate).is_some() && quant_format(&block.w_up).is_some()
}

/// `gate ← silu(gate)·up`, element-wise.
fn swiglu(gate: &mut [f32], up: &[f32]) {
    simd::silu_in_place(gate);
    for (g, u) in gate.iter_mut().zip(up) {
        *g *= u;
    }
}

fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The fewest and the most rows per task of one token's products ([`rows_per_task`]).
const GEMV_MIN_ROWS: usize = 64;
const GEMV_MAX_ROWS: usize = 256;

/// Rows per task of a batch's products.
const ROWS_PER_TASK: usize = 16;

/// The matrix's quantised format, `None` for dense weights.
fn quant_format(m: &Matrix) -> Option<QuantFormat> {
    match &m.weights {
        Weights::Quant { format, .. } => Some(*format),
        Weights::Packed(p) => Some(p.format()),
        Weights::Dense(_) => None,
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    simd::axpy(1.0, y, x);
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
