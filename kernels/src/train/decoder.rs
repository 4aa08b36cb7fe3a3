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
        let (t, d) = (tokens.len(), c.d_model);
        let eps = f64::from(c.rms_eps);
        let base_freq = f64::from(c.rope_base);
        let positions: Vec<usize> = (0..t).collect();
        let mut emb = vec![0.0f32; t * d];
        for (row, &id) in emb.chunks_exact_mut(d).zip(tokens) {
            self.token_embd.dequantize_rows(id as usize..id as usize + 1, row)?;
        }
        let mut x = tape.constant(emb, &[t, d])?;
        let leaves = (0..self.adapters.adapters().len())
            .map(|i| self.adapters.leaves(tape, i))
            .collect::<Result<Vec<(Var, Var)>>>()?;
        let params = leaves.iter().flat_map(|&(a, b)| [a, b]).collect();
        for (l, block) in self.blocks.iter().enumerate() {
            let proj = |tape: &mut Tape<f32>, target: LoraTarget, x: Var| -> Result<Var> {
                let i = LoraTarget::ALL.iter().position(|&t| t == target).unwrap_or(0);
                let base: Arc<dyn FrozenLinear<f32>> = block.proj[i].clone();
                match self.adapters.find(l, target) {
                    Some(ai) => self.adapters.forward(tape, ai, x, base, leaves[ai], mode),
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
            x = tape.add(x, o)?;
            let ffn_norm = tape.constant_shared(Arc::clone(&block.ffn_norm), &[d])?;
            let xn = tape.rms_norm(x, ffn_norm, eps)?;
            let gate = proj(tape, LoraTarget::Gate, xn)?;
            let up = proj(tape, LoraTarget::Up, xn)?;
            let h = tape.swiglu(gate, up)?;
            let down = proj(tape, LoraTarget::Down, h)?;
            x = tape.add(x, down)?;
        }
        let out_norm = tape.constant_shared(Arc::clone(&self.output_norm), &[d])?;
        let xn = tape.rms_norm(x, out_norm, eps)?;
        let logits = tape.linear_frozen(xn, self.output.clone())?;
        Ok(DecoderPass { logits, loss: None, params })
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

    /// The next-token targets of `tokens` for [`LoraDecoder::loss`]: `tokens[i + 1]` at position `i`,
    /// [`IGNORE_INDEX`] at the last.
    pub fn next_token_targets(tokens: &[u32]) -> Vec<i64> {
        tokens.iter().skip(1).map(|&t| i64::from(t)).chain(std::iter::once(IGNORE_INDEX)).take(tokens.len()).collect()
    }
}
