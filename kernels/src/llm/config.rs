//! The hyper-parameters of a LLaMA-family decoder, read from a GGUF file's `llama.*` metadata.
//!
//! Keys as llama.cpp's GGUF writer names them (llama.cpp `docs/gguf.md`, "LLaMA"
//! section): `llama.block_count`, `llama.embedding_length`, … .

use crate::formats::gguf::Gguf;
use crate::{Error, Result};

/// Shapes and constants of a LLaMA-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of the SwiGLU hidden layer.
    pub d_ff: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention: `n_heads / n_kv_heads` queries share one).
    pub n_kv_heads: usize,
    /// Width of one head (`d_model / n_heads`).
    pub head_dim: usize,
    /// RoPE base frequency θ.
    pub rope_base: f32,
    /// RMSNorm ε.
    pub rms_eps: f32,
    /// Positions the model was trained for.
    pub context_len: usize,
    /// Vocabulary size (rows of the token embedding).
    pub vocab_size: usize,
}

impl LlamaConfig {
    /// Reads the configuration of a `general.architecture = "llama"` file.
    ///
    /// # Errors
    /// [`Error::UnsupportedModel`] for another architecture or inconsistent shapes;
    /// the GGUF reader's errors for missing or mistyped keys.
    pub fn from_gguf(gguf: &Gguf) -> Result<LlamaConfig> {
        let arch = gguf.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(Error::UnsupportedModel(format!("architecture {arch:?} (this decoder runs \"llama\")")));
        }
        let u = |key: &str| gguf.get_u32(&format!("llama.{key}")).map(|v| v as usize);
        let d_model = u("embedding_length")?;
        let n_heads = u("attention.head_count")?;
        let n_kv_heads = match gguf.metadata("llama.attention.head_count_kv") {
            Some(_) => u("attention.head_count_kv")?,
            None => n_heads,
        };
        let rope_base = match gguf.metadata("llama.rope.freq_base") {
            Some(_) => gguf.get_f32("llama.rope.freq_base")?,
            None => 10_000.0,
        };
        let vocab_size = match gguf.metadata("llama.vocab_size") {
            Some(_) => u("vocab_size")?,
            None => gguf.tensor("token_embd.weight")?.rows(),
        };
        let config = LlamaConfig {
            n_layers: u("block_count")?,
            d_model,
            d_ff: u("feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim: d_model.checked_div(n_heads).unwrap_or(0),
            rope_base,
            rms_eps: gguf.get_f32("llama.attention.layer_norm_rms_epsilon")?,
            context_len: u("context_length")?,
            vocab_size,
        };
        config.validate()?;
        Ok(config)
    }

    /// Width of the key and value vectors of one position (`n_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::UnsupportedModel(why));
        if self.n_layers == 0 || self.d_model == 0 || self.d_ff == 0 || self.vocab_size == 0 {
            return bad(format!("empty shape in {self:?}"));
        }
        if self.n_heads == 0 || self.n_kv_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!("{} heads do not divide d_model {}", self.n_heads, self.d_model));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} KV heads do not divide {} query heads", self.n_kv_heads, self.n_heads));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("RoPE needs an even head width, got {}", self.head_dim));
        }
        if !(self.rms_eps > 0.0 && self.rope_base > 1.0) {
            return bad(format!("rms_eps {} / rope_base {} out of range", self.rms_eps, self.rope_base));
        }
        Ok(())
    }
}
