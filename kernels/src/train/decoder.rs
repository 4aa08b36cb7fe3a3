//! The SmolLM2 / LLaMA decoder on the autograd tape with LoRA adapters over its quantised base: QLoRA
//! fine-tuning (Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", 2023; Hu et al.,
//! "LoRA", 2021) of the model `kernels::llm::LlamaModel` runs.
//!
//! The forward pass is `LlamaModel`'s (Touvron et al., "LLaMA", 2023), op for op on a [`Tape<f32>`]:
//! the embedding rows of the tokens (only those rows dequantised), then per block
//! `rms_norm → q, k, v → RoPE → causal GQA attention → o → residual → rms_norm → gate, up → SwiGLU →
//! down → residual`, the final norm and the logits through the output matrix (the tied token
//! embedding for SmolLM2). Every base matrix is a [`QuantLinear`] on the memory-mapped GGUF blocks,
//! multiplied with the inference path's activation quantisation, so with `B = 0` the logits are those
//! of `LlamaModel::forward` up to float rounding. The trainable parameters are only the adapters' `A`
//! and `B`; the base gets no gradient and no copy.

use std::path::Path;
use std::sync::Arc;

use super::autograd::{FrozenLinear, Grads, IGNORE_INDEX, Tape, Var};
use super::lora::{LoraAdapters, LoraConfig, LoraMode, LoraTarget};
use super::optim::Param;
use super::qlinear::QuantLinear;
use crate::formats::gguf::Gguf;
use crate::llm::LlamaConfig;
use crate::{Error, Result};

/// One block's frozen weights.
struct Block {
    attn_norm: Arc<Vec<f32>>,
    /// `q, k, v, o, gate, up, down`, in [`LoraTarget::ALL`] order.
    proj: [Arc<QuantLinear>; 7],
    ffn_norm: Arc<Vec<f32>>,
}

/// A LLaMA-family decoder from a GGUF file with LoRA adapters, run on a [`Tape<f32>`] for training.
pub struct LoraDecoder {
    config: LlamaConfig,
    token_embd: Arc<QuantLinear>,
    output: Arc<QuantLinear>,
    output_norm: Arc<Vec<f32>>,
    blocks: Vec<Block>,
    adapters: LoraAdapters,
}

/// What [`LoraDecoder::forward`] and [`LoraDecoder::loss`] put on the tape.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderPass {
    /// The logits, `[tokens, vocab]` (row `i` predicts the token after `tokens[i]`).
    pub logits: Var,
    /// The mean cross-entropy (set by [`LoraDecoder::loss`]).
    pub loss: Option<Var>,
    /// The leaves of every adapter parameter, in [`LoraDecoder::params`] order.
    pub params: Vec<Var>,
}

/// What a training pass does with the blocks' activations ([`LoraDecoder::loss_and_grads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activations {
    /// Keep every intermediate value on the tape until the backward pass (fastest).
    #[default]
    Keep,
    /// Keep only each block's input and recompute the block in the backward pass (activation
    /// checkpointing: about one more forward pass of compute for a fraction of the memory).
    Recompute,
}

/// The result of [`LoraDecoder::loss_and_grads`].
#[derive(Clone, Debug, PartialEq)]
pub struct StepGrads {
    /// The mean cross-entropy.
    pub loss: f32,
    /// The gradient of every parameter, in [`LoraDecoder::params`] order.
    pub grads: Vec<Vec<f32>>,
    /// The most activation memory ([`Tape::bytes`], plus the saved block inputs when recomputing)
    /// the pass held at once.
    pub peak_activation_bytes: usize,
}

impl DecoderPass {
    /// The gradient of every parameter from `grads` (zeros for one the loss does not reach), in
    /// [`LoraDecoder::params`] order: the `grads` argument of `Optimizer::step`.
    pub fn param_grads(&self, tape: &Tape<f32>, grads: &mut Grads<f32>) -> Vec<Vec<f32>> {
        self.params.iter().map(|&v| grads.take(v).unwrap_or_else(|| vec![0.0; tape.value(v).len()])).collect()
    }
}

/// The f32 vector `name` of `len` values.
fn vector(gguf: &Gguf, name: &str, len: usize) -> Result<Arc<Vec<f32>>> {
    let t = gguf.tensor(name)?;
    if t.info.n_elements as usize != len {
        return Err(Error::UnsupportedModel(format!("{name} has {} elements, expected {len}", t.info.n_elements)));
    }
    Ok(Arc::new(t.to_f32()?))
}

/// The matrix `name`, checked to be `rows × cols`.
fn matrix(gguf: &Arc<Gguf>, name: &str, rows: usize, cols: usize) -> Result<Arc<QuantLinear>> {
    let m = QuantLinear::from_gguf(gguf, name)?;
    if m.out_features() != rows || m.in_features() != cols {
        return Err(Error::UnsupportedModel(format!(
            "{name} is [{}, {}], expected [{rows}, {cols}]",
            m.out_features(),
            m.in_features()
        )));
    }
    Ok(Arc::new(m))
}

impl LoraDecoder {
    /// Opens (memory-maps) a GGUF LLaMA file and puts fresh adapters of `lora` on it.
    ///
    /// # Errors
    /// As [`LoraDecoder::from_gguf`]; the reader's errors.
    pub fn load(path: impl AsRef<Path>, lora: LoraConfig) -> Result<LoraDecoder> {
        LoraDecoder::from_gguf(Arc::new(Gguf::open(path)?), lora)
    }

    /// The decoder of a parsed file with fresh adapters of `lora` ([`LoraAdapters::new`]).
    ///
    /// # Errors
    /// [`Error::UnsupportedModel`] for a non-LLaMA file or tensors of unexpected shape or type;
    /// [`Error::MissingTensor`]; [`Error::LoraConfig`] for a bad `lora`.
    pub fn from_gguf(gguf: Arc<Gguf>, lora: LoraConfig) -> Result<LoraDecoder> {
        let config = LlamaConfig::from_gguf(&gguf)?;
        let (d, kv, ff) = (config.d_model, config.kv_dim(), config.d_ff);
        let shape = |t: LoraTarget| match t {
            LoraTarget::Q | LoraTarget::O => (d, d),
            LoraTarget::K | LoraTarget::V => (kv, d),
            LoraTarget::Gate | LoraTarget::Up => (ff, d),
            LoraTarget::Down => (d, ff),
        };
        let adapters = LoraAdapters::new(lora, config.n_layers, shape)?;
        let mut blocks = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let m = |t: LoraTarget| {
                let (rows, cols) = shape(t);
                matrix(&gguf, &t.gguf_tensor(l), rows, cols)
            };
            blocks.push(Block {
                attn_norm: vector(&gguf, &format!("blk.{l}.attn_norm.weight"), d)?,
                proj: [
                    m(LoraTarget::Q)?,
                    m(LoraTarget::K)?,
                    m(LoraTarget::V)?,
                    m(LoraTarget::O)?,
                    m(LoraTarget::Gate)?,
                    m(LoraTarget::Up)?,
                    m(LoraTarget::Down)?,
                ],
                ffn_norm: vector(&gguf, &format!("blk.{l}.ffn_norm.weight"), d)?,
            });
        }
        let token_embd = matrix(&gguf, "token_embd.weight", config.vocab_size, d)?;
        let output = match gguf.tensor("output.weight") {
            Ok(_) => matrix(&gguf, "output.weight", config.vocab_size, d)?,
            Err(Error::MissingTensor { .. }) => Arc::clone(&token_embd),
            Err(e) => return Err(e),
        };
        let output_norm = vector(&gguf, "output_norm.weight", d)?;
        Ok(LoraDecoder { config, token_embd, output, output_norm, blocks, adapters })
    }

    /// The model's shapes and constants.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The adapters.
    pub fn adapters(&self) -> &LoraAdapters {
        &self.adapters
    }

    /// The adapters, mutable (to load trained values, or to merge them).
    pub fn adapters_mut(&mut self) -> &mut LoraAdapters {
        &mut self.adapters
    }

    /// The trainable parameters: every adapter's `A` and `B` ([`LoraAdapters::params`]).
    pub fn params(&self) -> &[Param] {
        self.adapters.params()
    }

    /// [`LoraDecoder::params`], mutable, for `Optimizer::step`.
    pub fn params_mut(&mut self) -> &mut [Param] {
        self.adapters.params_mut()
    }

    /// The frozen base matrix of `target` in block `layer` (`None` past the last block).
    pub fn base(&self, layer: usize, target: LoraTarget) -> Option<Arc<QuantLinear>> {
        let i = LoraTarget::ALL.iter().position(|&t| t == target)?;
        self.blocks.get(layer).map(|b| Arc::clone(&b.proj[i]))
    }

    /// Bytes of the base model's weights as f32 (every tensor the forward pass reads, the tied
    /// output counted once): the memory a full-precision fine-tune would hold before gradients.
    pub fn base_f32_bytes(&self) -> usize {
        let c = &self.config;
        let per_block = 2 * c.d_model
            + self.blocks.first().map_or(0, |b| b.proj.iter().map(|m| m.out_features() * m.in_features()).sum());
        let untied = if Arc::ptr_eq(&self.output, &self.token_embd) { 0 } else { c.vocab_size * c.d_model };
        4 * (c.n_layers * per_block + c.vocab_size * c.d_model + untied + c.d_model)
    }

    /// The forward pass of `tokens` (positions `0..tokens.len()`) on `tape`: the logits of every
    /// position and the adapter leaves.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no tokens, more than the context length, or an id outside the
    /// vocabulary; the ops' errors.
    pub fn forward(&self, tape: &mut Tape<f32>, tokens: &[u32], mode: LoraMode) -> Result<DecoderPass> {
        self.check_tokens(tokens)?;
        let mut x = self.embed(tape, tokens)?;
        let leaves = (0..self.adapters.adapters().len())
            .map(|i| self.adapters.leaves(tape, i).map(Some))
            .collect::<Result<Vec<Option<(Var, Var)>>>>()?;
        let params = leaves.iter().flatten().flat_map(|&(a, b)| [a, b]).collect();
        for l in 0..self.blocks.len() {
            x = self.block(tape, l, x, &leaves, mode)?;
        }
        let logits = self.head(tape, x)?;
        Ok(DecoderPass { logits, loss: None, params })
    }

    /// Checks `tokens` for [`LoraDecoder::forward`].
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let c = &self.config;
        if tokens.is_empty() {
            return Err(Error::InvalidParameter("the decoder needs at least one token".into()));
        }
        if tokens.len() > c.context_len {
            return Err(Error::InvalidParameter(format!(
                "{} tokens exceed the context of {}",
                tokens.len(),
                c.context_len
            )));
        }
        if let Some((pos, &bad)) = tokens.iter().enumerate().find(|&(_, &t)| t as usize >= c.vocab_size) {
            return Err(Error::InvalidParameter(format!(
                "token id {bad} at position {pos} outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        Ok(())
    }

    /// The embedding rows of `tokens` (only those rows dequantised), `[t, d]`, as a constant.
    fn embed(&self, tape: &mut Tape<f32>, tokens: &[u32]) -> Result<Var> {
        let d = self.config.d_model;
        let mut emb = vec![0.0f32; tokens.len() * d];
        for (row, &id) in emb.chunks_exact_mut(d).zip(tokens) {
            self.token_embd.dequantize_rows(id as usize..id as usize + 1, row)?;
        }
        tape.constant(emb, &[tokens.len(), d])
    }

    /// Block `l` on `x` (`[t, d]`, positions `0..t`). `leaves[i]` holds adapter `i`'s `(A, B)` for
    /// every adapter of this block.
    fn block(
        &self,
        tape: &mut Tape<f32>,
        l: usize,
        x: Var,
        leaves: &[Option<(Var, Var)>],
        mode: LoraMode,
    ) -> Result<Var> {
        let c = &self.config;
        let block = &self.blocks[l];
        let (t, d) = (tape.shape(x)[0], c.d_model);
        let eps = f64::from(c.rms_eps);
        let base_freq = f64::from(c.rope_base);
        let positions: Vec<usize> = (0..t).collect();
        let proj = |tape: &mut Tape<f32>, target: LoraTarget, x: Var| -> Result<Var> {
            let i = LoraTarget::ALL.iter().position(|&t| t == target).unwrap_or(0);
            let base: Arc<dyn FrozenLinear<f32>> = block.proj[i].clone();
            match self.adapters.find(l, target) {
                Some(ai) => {
                    let ab = leaves[ai].ok_or_else(|| {
                        Error::InvalidParameter(format!("no leaves for adapter {ai} (block {l}, {target:?})"))
                    })?;
                    self.adapters.forward(tape, ai, x, base, ab, mode)
                }
                None => tape.linear_frozen(x, base),
            }
        };
        let attn_norm = tape.constant_shared(Arc::clone(&block.attn_norm), &[d])?;
        let xn = tape.rms_norm(x, attn_norm, eps)?;
        let q = proj(tape, LoraTarget::Q, xn)?;
        let k = proj(tape, LoraTarget::K, xn)?;
        let v = proj(tape, LoraTarget::V, xn)?;
        let q = tape.rope(q, &positions, c.head_dim, base_freq)?;
        let k = tape.rope(k, &positions, c.head_dim, base_freq)?;
        let att = tape.causal_attention(q, k, v, c.n_heads, c.n_kv_heads)?;
        let o = proj(tape, LoraTarget::O, att)?;
        let x = tape.add(x, o)?;
        let ffn_norm = tape.constant_shared(Arc::clone(&block.ffn_norm), &[d])?;
        let xn = tape.rms_norm(x, ffn_norm, eps)?;
        let gate = proj(tape, LoraTarget::Gate, xn)?;
        let up = proj(tape, LoraTarget::Up, xn)?;
        let h = tape.swiglu(gate, up)?;
        let down = proj(tape, LoraTarget::Down, h)?;
        tape.add(x, down)
    }

    /// The final norm and the logits through the output matrix.
    fn head(&self, tape: &mut Tape<f32>, x: Var) -> Result<Var> {
        let c = &self.config;
        let out_norm = tape.constant_shared(Arc::clone(&self.output_norm), &[c.d_model])?;
        let xn = tape.rms_norm(x, out_norm, f64::from(c.rms_eps))?;
        tape.linear_frozen(xn, self.output.clone())
    }

    /// [`LoraDecoder::forward`] and the mean cross-entropy of the logits against `targets` (one per
    /// token; [`IGNORE_INDEX`] skips a position, e.g. the prompt of an instruction pair).
    ///
    /// # Errors
    /// As [`LoraDecoder::forward`]; [`Error::TrainShape`] (op `cross_entropy`) when `targets` is not
    /// one per token or a target is outside the vocabulary.
    pub fn loss(&self, tape: &mut Tape<f32>, tokens: &[u32], targets: &[i64], mode: LoraMode) -> Result<DecoderPass> {
        let mut pass = self.forward(tape, tokens, mode)?;
        pass.loss = Some(tape.cross_entropy(pass.logits, targets, IGNORE_INDEX)?);
        Ok(pass)
    }

    /// The loss of `tokens` against `targets` (as [`LoraDecoder::loss`]) and the gradient of every
    /// parameter ([`LoraDecoder::params`] order), keeping or recomputing the blocks' activations as
    /// `activations` says, with the activation memory the pass held at its peak.
    ///
    /// With [`Activations::Recompute`] (gradient checkpointing: Chen, Xu, Zhang & Guestrin,
    /// "Training Deep Nets with Sublinear Memory Cost", 2016; Griewank & Walther, "Algorithm 799:
    /// revolve", 2000) the forward pass keeps only each block's input; the backward pass runs the
    /// blocks from last to first, each forward again on a fresh tape and then backward from the
    /// gradient of its output ([`Tape::vjp`]). The ops and their inputs are the same as in one long
    /// pass, so loss and gradients are the same; the cost is a second forward pass of every block.
    ///
    /// # Errors
    /// As [`LoraDecoder::loss`] and [`Tape::backward`].
    pub fn loss_and_grads(
        &self,
        tape: &mut Tape<f32>,
        tokens: &[u32],
        targets: &[i64],
        mode: LoraMode,
        activations: Activations,
    ) -> Result<StepGrads> {
        if activations == Activations::Keep {
            tape.clear();
            let pass = self.loss(tape, tokens, targets, mode)?;
            let loss = pass.loss.ok_or_else(|| Error::InvalidParameter("the pass has no loss".into()))?;
            let peak_activation_bytes = tape.bytes();
            let mut grads = tape.backward(loss)?;
            let loss = tape.value(loss)[0];
            return Ok(StepGrads { loss, grads: pass.param_grads(tape, &mut grads), peak_activation_bytes });
        }
        self.check_tokens(tokens)?;
        let (t, d) = (tokens.len(), self.config.d_model);
        let row_bytes = t * d * std::mem::size_of::<f32>();
        let mut peak = 0usize;
        // Forward: keep each block's input only.
        tape.clear();
        let x = self.embed(tape, tokens)?;
        let mut x_vals = tape.value(x).to_vec();
        let mut inputs: Vec<Vec<f32>> = Vec::with_capacity(self.blocks.len());
        for l in 0..self.blocks.len() {
            tape.clear();
            let x = tape.constant(x_vals.clone(), &[t, d])?;
            let leaves = self.block_leaves(tape, l)?;
            let out = self.block(tape, l, x, &leaves, mode)?;
            inputs.push(x_vals);
            peak = peak.max(tape.bytes() + row_bytes * inputs.len());
            x_vals = tape.value(out).to_vec();
        }
        // The head: its backward gives the gradient of the last block's output.
        tape.clear();
        let x = tape.leaf(x_vals, &[t, d])?;
        let logits = self.head(tape, x)?;
        let loss = tape.cross_entropy(logits, targets, IGNORE_INDEX)?;
        peak = peak.max(tape.bytes() + row_bytes * inputs.len());
        let loss_value = tape.value(loss)[0];
        let mut g = tape.backward(loss)?.take(x).unwrap_or_else(|| vec![0.0; t * d]);
        // ANCHOR: recompute
        // Backward, block by block from the last, each recomputed from its saved input.
        let mut grads: Vec<Vec<f32>> = self.params().iter().map(|p| vec![0.0; p.value.len()]).collect();
        for l in (0..self.blocks.len()).rev() {
            let x_in = inputs.pop().ok_or_else(|| Error::InvalidParameter("a block input is missing".into()))?;
            tape.clear();
            // The first block's input is the embedding, which gets no gradient.
            let x = if l == 0 { tape.constant(x_in, &[t, d])? } else { tape.leaf(x_in, &[t, d])? };
            let leaves = self.block_leaves(tape, l)?;
            let out = self.block(tape, l, x, &leaves, mode)?;
            peak = peak.max(tape.bytes() + row_bytes * inputs.len());
            let mut block_grads = tape.vjp(out, g)?;
            for (ai, ab) in leaves.iter().enumerate() {
                if let Some((a, b)) = *ab {
                    if let Some(ga) = block_grads.take(a) {
                        grads[2 * ai] = ga;
                    }
                    if let Some(gb) = block_grads.take(b) {
                        grads[2 * ai + 1] = gb;
                    }
                }
            }
            g = block_grads.take(x).unwrap_or_else(|| vec![0.0; t * d]);
        }
        // ANCHOR_END: recompute
        Ok(StepGrads { loss: loss_value, grads, peak_activation_bytes: peak })
    }

    /// Leaves for the adapters of block `l` only, indexed like [`LoraAdapters::adapters`].
    fn block_leaves(&self, tape: &mut Tape<f32>, l: usize) -> Result<Vec<Option<(Var, Var)>>> {
        self.adapters
            .adapters()
            .iter()
            .enumerate()
            .map(|(i, a)| if a.layer == l { self.adapters.leaves(tape, i).map(Some) } else { Ok(None) })
            .collect()
    }

    /// The next-token targets of `tokens` for [`LoraDecoder::loss`]: `tokens[i + 1]` at position `i`,
    /// [`IGNORE_INDEX`] at the last.
    pub fn next_token_targets(tokens: &[u32]) -> Vec<i64> {
        tokens.iter().skip(1).map(|&t| i64::from(t)).chain(std::iter::once(IGNORE_INDEX)).take(tokens.len()).collect()
    }
}
