//! BERT sentence encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
//! Transformers for Language Understanding", NAACL, arXiv:1810.04805) with Sentence-BERT pooling
//! (Reimers & Gurevych 2019, "Sentence-BERT", EMNLP, arXiv:1908.10084), as all-MiniLM-L6-v2
//! (a 6-layer, 384-wide MiniLM, Wang et al. 2020, arXiv:2002.10957, fine-tuned by
//! sentence-transformers) runs it: Hugging Face `BertModel`'s forward pass, then mean pooling over
//! the attention mask and L2 normalisation.
//!
//! For a sequence of tokens `(id, position, segment)`:
//!
//! ```text
//! h = LayerNorm(word[id] + position[pos] + token_type[segment])
//! for each layer:
//!     q, k, v = h·W_qᵀ + b_q, h·W_kᵀ + b_k, h·W_vᵀ + b_v          (one GEMM with W_qkv stacked)
//!     per head: a = softmax(q_h·k_hᵀ / √d_head) · v_h               (batched GEMMs over the heads)
//!     h = LayerNorm(h + a·W_oᵀ + b_o)
//!     h = LayerNorm(h + GELU(h·W_1ᵀ + b_1)·W_2ᵀ + b_2)            (GELU with erf, BERT's "gelu")
//! embedding = normalize(mean over the sequence's tokens of h)
//! ```
//!
//! **Padding.** A batch is computed *packed*: the tokens of every sequence are stacked into one
//! matrix for the dense layers, and attention runs per sequence, so no work is spent on padding.
//! This is exactly Hugging Face's masked computation for every position the mask keeps:
//! [`BertModel::embed_padded`] takes a padded batch with its attention mask, keeps the masked-in
//! tokens with their original position ids, and lets each attend only to the masked-in tokens of
//! its own row, which is what the additive `-inf` mask does; padded rows are never pooled.
//! So a padded batch gives the embeddings of its sequences run one by one.
//!
//! Weights are read from `model.safetensors` (F32, F16 or BF16, converted to f32 once at load);
//! the matrices, in PyTorch's `[out, in]` layout, are packed once at load into the GEMM
//! micro-kernel's panel order ([`matmul::PackedMatrix::pack_nt`]), so that no call repacks them.
//! Every input is checked (token ids against the vocabulary, lengths against the position table)
//! and gives [`Error::ModelInput`], never a panic.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;

use crate::formats::safetensors::Safetensors;
use crate::matmul::{self, BatchShape, PackedMatrix};
use crate::simd;
pub use crate::simd::erfc;
use crate::tokenize::WordPiece;
use crate::{Error, Result};

/// The hidden-layer activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x·Φ(x)` with the exact normal CDF (`"gelu"`, BERT's).
    GeluErf,
    /// The tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`), [`simd::gelu_in_place`].
    GeluTanh,
}

/// The hyper-parameters of a BERT encoder (Hugging Face's `config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embeddings).
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward hidden layer.
    pub intermediate_size: usize,
    /// Length of the position table: the longest sequence the model takes.
    pub max_position_embeddings: usize,
    /// Number of segment (token type) embeddings.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// The feed-forward activation.
    pub hidden_act: Activation,
}

impl BertConfig {
    /// Reads a Hugging Face `config.json`.
    ///
    /// # Errors
    /// [`Error::ModelConfig`] when the file cannot be read, a field is missing or of the wrong
    /// type, or the model is not one this encoder implements (an unknown activation, a relative
    /// position embedding, heads that do not divide the width).
    pub fn load(path: impl AsRef<Path>) -> Result<BertConfig> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::from_json_str(&text).map_err(|reason| Error::ModelConfig { path: path.to_path_buf(), reason })
    }

    /// Parses the text of a `config.json`; the error is a description of what is wrong.
    pub fn from_json_str(text: &str) -> std::result::Result<BertConfig, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let size = |key: &str| -> std::result::Result<usize, String> {
            match json.get(key).and_then(Value::as_u64) {
                Some(v) if v > 0 && v <= 1 << 24 => Ok(v as usize),
                Some(v) => Err(format!("{key} = {v} is out of range")),
                None => Err(format!("{key} is missing or not a positive integer")),
            }
        };
        let hidden_act = match json.get("hidden_act").and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(format!("hidden_act {other:?} is not supported (gelu, gelu_new)")),
        };
        match json.get("position_embedding_type").and_then(Value::as_str) {
            None | Some("absolute") => {}
            Some(other) => return Err(format!("position_embedding_type {other:?} is not supported (absolute)")),
        }
        let layer_norm_eps = match json.get("layer_norm_eps") {
            None => 1e-12,
            Some(v) => {
                v.as_f64()
                    .filter(|e| e.is_finite() && *e >= 0.0)
                    .ok_or_else(|| format!("layer_norm_eps {v} is not a non-negative number"))? as f32
            }
        };
        let config = BertConfig {
            vocab_size: size("vocab_size")?,
            hidden_size: size("hidden_size")?,
            num_hidden_layers: size("num_hidden_layers")?,
            num_attention_heads: size("num_attention_heads")?,
            intermediate_size: size("intermediate_size")?,
            max_position_embeddings: size("max_position_embeddings")?,
            type_vocab_size: size("type_vocab_size").unwrap_or(2),
            layer_norm_eps,
            hidden_act,
        };
        if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// How token states become one sentence embedding (sentence-transformers' `pooling_config.json`
/// and its `Normalize` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pooling {
    /// Average the states of the masked-in tokens (`pooling_mode_mean_tokens`); otherwise take
    /// the first token's (`pooling_mode_cls_token`).
    pub mean_tokens: bool,
    /// Divide by the L2 norm (`x / max(‖x‖, 1e-12)`, as `torch.nn.functional.normalize`).
    pub normalize: bool,
}

impl Default for Pooling {
    /// Mean pooling, normalised: all-MiniLM-L6-v2's.
    fn default() -> Self {
        Pooling { mean_tokens: true, normalize: true }
    }
}

impl Pooling {
    /// Reads a sentence-transformers `pooling_config.json` (normalisation on: the folder format
    /// has no record of the `Normalize` module, which all-MiniLM-L6-v2 ends with).
    ///
    /// # Errors
    /// [`Error::ModelConfig`] when the file cannot be read or asks for max pooling or
    /// `mean_sqrt_len` pooling, which are not implemented.
    pub fn load(path: impl AsRef<Path>) -> Result<Pooling> {
        let path = path.as_ref();
        let err = |reason: String| Error::ModelConfig { path: path.to_path_buf(), reason };
        let json: Value = serde_json::from_str(&read_text(path)?).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
        let modes = ["pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens"]
            .into_iter()
            .chain(["pooling_mode_mean_sqrt_len_tokens"])
            .filter(|k| flag(k))
            .collect::<Vec<_>>();
        match modes.as_slice() {
            ["pooling_mode_mean_tokens"] => Ok(Pooling { mean_tokens: true, normalize: true }),
            ["pooling_mode_cls_token"] => Ok(Pooling { mean_tokens: false, normalize: true }),
            other => Err(err(format!("pooling modes {other:?} are not supported (exactly one of mean, cls)"))),
        }
    }
}

/// A padded batch in Hugging Face's form: `batch × seq_len` ids, attention mask (1 = token,
/// 0 = padding) and optional segment ids, row-major.
#[derive(Debug, Clone, Copy)]
pub struct PaddedBatch<'a> {
    /// Token ids, `batch × seq_len`.
    pub input_ids: &'a [u32],
    /// 1 for a real token, 0 for padding, `batch × seq_len`.
    pub attention_mask: &'a [u32],
    /// Segment ids, `batch × seq_len` (all 0 when `None`).
    pub token_type_ids: Option<&'a [u32]>,
    /// Length of each row.
    pub seq_len: usize,
}

/// One token of the packed batch.
#[derive(Debug, Clone, Copy)]
struct Token {
    id: u32,
    position: u32,
    segment: u32,
}

/// Weights of one transformer layer: the matrices (PyTorch `[out, in]`) packed once at load for
/// the GEMM's micro-kernel ([`matmul::PackedMatrix`]), so no call repacks them.
struct Layer {
    /// `[3·hidden, hidden]`: query, key, value stacked.
    qkv_weight: PackedMatrix,
    qkv_bias: Vec<f32>,
    attn_out_weight: PackedMatrix,
    attn_out_bias: Vec<f32>,
    attn_norm_weight: Vec<f32>,
    attn_norm_bias: Vec<f32>,
    ffn_in_weight: PackedMatrix,
    ffn_in_bias: Vec<f32>,
    ffn_out_weight: PackedMatrix,
    ffn_out_bias: Vec<f32>,
    ffn_norm_weight: Vec<f32>,
    ffn_norm_bias: Vec<f32>,
}

/// A loaded BERT encoder with its pooling and, when the folder has one, its WordPiece tokenizer.
pub struct BertModel {
    config: BertConfig,
    pooling: Pooling,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    token_type_embeddings: Vec<f32>,
    embed_norm_weight: Vec<f32>,
    embed_norm_bias: Vec<f32>,
    layers: Vec<Layer>,
    tokenizer: Option<WordPiece>,
}

impl std::fmt::Debug for BertModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertModel")
            .field("config", &self.config)
            .field("pooling", &self.pooling)
            .field("tokenizer", &self.tokenizer.is_some())
            .finish_non_exhaustive()
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::ModelConfig { path: path.to_path_buf(), reason: format!("cannot read it: {e}") })
}

/// Reads the weights of one model out of a safetensors file, checking every shape.
struct WeightReader<'a> {
    file: &'a Safetensors,
    prefix: &'static str,
}

impl WeightReader<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.file.tensor(&full)?;
        let expected: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        if tensor.shape() != expected {
            return Err(Error::WeightShape { name: full, expected, got: tensor.shape().to_vec() });
        }
        tensor.to_f32()
    }
}

impl BertModel {
    /// Loads a model folder: `config.json`, `model.safetensors`, and, when present,
    /// `pooling_config.json` (else mean pooling) and `tokenizer.json` (for [`BertModel::embed`]).
    ///
    /// # Errors
    /// [`Error::ModelConfig`] for a missing or unsupported configuration, the errors of
    /// [`Safetensors::open`], [`Error::MissingTensor`] or [`Error::WeightShape`] when the
    /// weights do not match the configuration, and the tokenizer's errors.
    pub fn load(dir: impl AsRef<Path>) -> Result<BertModel> {
        let dir = dir.as_ref();
        let config = BertConfig::load(dir.join("config.json"))?;
        let pooling_path = dir.join("pooling_config.json");
        let pooling = if pooling_path.exists() { Pooling::load(&pooling_path)? } else { Pooling::default() };
        let weights = Safetensors::open(dir.join("model.safetensors"))?;
        let mut model = Self::from_safetensors(config, &weights)?;
        model.pooling = pooling;
        let tokenizer_path: PathBuf = dir.join("tokenizer.json");
        if tokenizer_path.exists() {
            model.tokenizer = Some(WordPiece::from_tokenizer_json(&tokenizer_path)?);
        }
        Ok(model)
    }

    /// Builds the encoder from a configuration and its weights (names as Hugging Face's
    /// `BertModel` saves them, with or without a `bert.` prefix), with mean pooling and no tokenizer.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] or [`Error::WeightShape`] when the weights do not match the
    /// configuration; [`Error::UnsupportedTensorType`] for weights that are not F32, F16 or BF16.
    pub fn from_safetensors(config: BertConfig, weights: &Safetensors) -> Result<BertModel> {
        let prefix = if weights.tensor("bert.embeddings.word_embeddings.weight").is_ok() { "bert." } else { "" };
        let w = WeightReader { file: weights, prefix };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}.");
            let mut qkv_weight = Vec::with_capacity(3 * h * h);
            let mut qkv_bias = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_weight.extend(w.get(&format!("{p}attention.self.{part}.weight"), &[h, h])?);
                qkv_bias.extend(w.get(&format!("{p}attention.self.{part}.bias"), &[h])?);
            }
            let packed = |name: &str, out: usize, inp: usize| -> Result<PackedMatrix> {
                PackedMatrix::pack_nt(&w.get(&format!("{p}{name}"), &[out, inp])?, out, inp)
            };
            layers.push(Layer {
                qkv_weight: PackedMatrix::pack_nt(&qkv_weight, 3 * h, h)?,
                qkv_bias,
                attn_out_weight: packed("attention.output.dense.weight", h, h)?,
                attn_out_bias: w.get(&format!("{p}attention.output.dense.bias"), &[h])?,
                attn_norm_weight: w.get(&format!("{p}attention.output.LayerNorm.weight"), &[h])?,
                attn_norm_bias: w.get(&format!("{p}attention.output.LayerNorm.bias"), &[h])?,
                ffn_in_weight: packed("intermediate.dense.weight", i, h)?,
                ffn_in_bias: w.get(&format!("{p}intermediate.dense.bias"), &[i])?,
                ffn_out_weight: packed("output.dense.weight", h, i)?,
                ffn_out_bias: w.get(&format!("{p}output.dense.bias"), &[h])?,
                ffn_norm_weight: w.get(&format!("{p}output.LayerNorm.weight"), &[h])?,
                ffn_norm_bias: w.get(&format!("{p}output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(BertModel {
            word_embeddings: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position_embeddings: w
                .get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type_embeddings: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?,
            embed_norm_weight: w.get("embeddings.LayerNorm.weight", &[h])?,
            embed_norm_bias: w.get("embeddings.LayerNorm.bias", &[h])?,
            layers,
            config,
            pooling: Pooling::default(),
            tokenizer: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Width of the embeddings (`hidden_size`).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Changes the pooling (e.g. to get unnormalised mean embeddings).
    pub fn set_pooling(&mut self, pooling: Pooling) {
        self.pooling = pooling;
    }

    /// The WordPiece tokenizer loaded from the folder's `tokenizer.json`, if any.
    pub fn tokenizer(&self) -> Option<&WordPiece> {
        self.tokenizer.as_ref()
    }

    /// Sentence embeddings of texts: tokenised with the folder's WordPiece tokenizer (which adds
    /// `[CLS]` … `[SEP]` and truncates as its `tokenizer.json` says), then [`BertModel::embed_ids`].
    ///
    /// # Errors
    /// [`Error::ModelConfig`] when the model was loaded without a tokenizer; the errors of
    /// [`BertModel::embed_ids`].
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| Error::ModelConfig {
            path: PathBuf::from("tokenizer.json"),
            reason: "the model was loaded without a tokenizer; use embed_ids".into(),
        })?;
        // Tokenising is a parallel region too: enter the pool once for both.
        crate::in_pool_awake(|| {
            let sequences: Vec<Vec<Token>> = tokenizer
                .encode_batch(texts)
                .into_iter()
                .map(|enc| {
                    let kept = enc.ids.iter().zip(&enc.type_ids).zip(&enc.attention_mask).filter(|(_, m)| **m != 0);
                    kept.enumerate()
                        .map(|(p, ((&id, &segment), _))| Token { id, position: p as u32, segment })
                        .collect()
                })
                .collect();
            self.embed_tokens(&sequences)
        })
    }

    /// Sentence embeddings of a batch of token-id sequences (each already framed with `[CLS]`
    /// … `[SEP]`, of any lengths: no padding needed), segment 0, positions from 0.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an empty sequence, a sequence longer than
    /// `max_position_embeddings`, or a token id outside the vocabulary.
    pub fn embed_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let sequences: Vec<Vec<Token>> = batch
            .iter()
            .map(|ids| ids.iter().enumerate().map(|(p, &id)| Token { id, position: p as u32, segment: 0 }).collect())
            .collect();
        self.embed_tokens(&sequences)
    }

    /// Sentence embeddings of a padded batch with its attention mask (Hugging Face's inputs).
    /// Position ids are the column indices, as in Hugging Face's BERT; tokens whose mask is 0 are
    /// neither attended to nor pooled.
    ///
    /// # Errors
    /// [`Error::ModelInput`] when the slices are not `batch × seq_len`, a mask value is not 0
    /// or 1, a row has no token, `seq_len` exceeds `max_position_embeddings`, or an id or a
    /// segment is out of range.
    pub fn embed_padded(&self, batch: &PaddedBatch<'_>) -> Result<Vec<Vec<f32>>> {
        let PaddedBatch { input_ids, attention_mask, token_type_ids, seq_len } = *batch;
        let bad = |reason: String| Error::ModelInput { sequence: 0, reason };
        if seq_len == 0 || input_ids.len() % seq_len != 0 {
            return Err(bad(format!("{} ids are not rows of seq_len {seq_len}", input_ids.len())));
        }
        if attention_mask.len() != input_ids.len() || token_type_ids.is_some_and(|t| t.len() != input_ids.len()) {
            return Err(bad("attention_mask and token_type_ids must have the length of input_ids".into()));
        }
        let rows = input_ids.len() / seq_len;
        let mut sequences = Vec::with_capacity(rows);
        for r in 0..rows {
            let mut tokens = Vec::new();
            for c in 0..seq_len {
                let at = r * seq_len + c;
                match attention_mask[at] {
                    0 => continue,
                    1 => {}
                    m => {
                        let reason = format!("attention mask value {m} at column {c} (must be 0 or 1)");
                        return Err(Error::ModelInput { sequence: r, reason });
                    }
                }
                let segment = token_type_ids.map_or(0, |t| t[at]);
                tokens.push(Token { id: input_ids[at], position: c as u32, segment });
            }
            sequences.push(tokens);
        }
        self.embed_tokens(&sequences)
    }

    fn validate(&self, sequences: &[Vec<Token>]) -> Result<()> {
        let c = &self.config;
        for (s, tokens) in sequences.iter().enumerate() {
            let err = |reason: String| Err(Error::ModelInput { sequence: s, reason });
            if tokens.is_empty() {
                return err("the sequence has no token".into());
            }
            for t in tokens {
                if t.id as usize >= c.vocab_size {
                    return err(format!("token id {} is outside the vocabulary of {}", t.id, c.vocab_size));
                }
                if t.position as usize >= c.max_position_embeddings {
                    return err(format!(
                        "position {} is beyond the {} positions the model has (sequence too long)",
                        t.position, c.max_position_embeddings
                    ));
                }
                if t.segment as usize >= c.type_vocab_size {
                    return err(format!("token type {} is outside the {} segments", t.segment, c.type_vocab_size));
                }
            }
        }
        Ok(())
    }

    fn embed_tokens(&self, sequences: &[Vec<Token>]) -> Result<Vec<Vec<f32>>> {
        self.validate(sequences)?;
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        let lens: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let tokens: Vec<Token> = sequences.iter().flatten().copied().collect();
        // On a worker, so that the pass's dozens of parallel regions fork directly, with the
        // other workers awake between them.
        let states = crate::in_pool_awake(|| self.encode_packed(&tokens, &lens))?;
        Ok(self.pool(&states, &lens))
    }

    /// The last hidden states `[tokens × hidden]` of the packed sequences of lengths `lens`.
    fn encode_packed(&self, tokens: &[Token], lens: &[usize]) -> Result<Vec<f32>> {
        let c = &self.config;
        let (n, h, inter) = (tokens.len(), c.hidden_size, c.intermediate_size);
        let eps = c.layer_norm_eps;

        // Embeddings, then LayerNorm.
        let mut hidden = vec![0.0f32; n * h];
        let mut sum = vec![0.0f32; h];
        for (t, row) in tokens.iter().zip(hidden.chunks_exact_mut(h)) {
            sum.copy_from_slice(&self.word_embeddings[t.id as usize * h..][..h]);
            simd::axpy(1.0, &self.position_embeddings[t.position as usize * h..][..h], &mut sum);
            simd::axpy(1.0, &self.token_type_embeddings[t.segment as usize * h..][..h], &mut sum);
            simd::layer_norm(&sum, &self.embed_norm_weight, &self.embed_norm_bias, eps, row);
        }

        let mut qkv = vec![0.0f32; n * 3 * h];
        let mut context = vec![0.0f32; n * h];
        let mut residual = vec![0.0f32; n * h];
        let mut ffn = vec![0.0f32; n * inter];
        for layer in &self.layers {
            // Self-attention.
            linear(&hidden, &layer.qkv_weight, &layer.qkv_bias, &mut qkv, n)?;
            self.attention(&qkv, lens, &mut context)?;
            linear(&context, &layer.attn_out_weight, &layer.attn_out_bias, &mut residual, n)?;
            add_and_norm(&mut residual, &mut hidden, &layer.attn_norm_weight, &layer.attn_norm_bias, eps);
            // Feed-forward.
            linear(&hidden, &layer.ffn_in_weight, &layer.ffn_in_bias, &mut ffn, n)?;
            let gelu: fn(&mut [f32]) = match c.hidden_act {
                Activation::GeluErf => gelu_erf_in_place,
                Activation::GeluTanh => simd::gelu_in_place,
            };
            if ffn.len() >= PARALLEL_MIN_GELU {
                ffn.par_chunks_mut(inter).for_each(gelu);
            } else {
                ffn.chunks_mut(inter).for_each(gelu);
            }
            linear(&ffn, &layer.ffn_out_weight, &layer.ffn_out_bias, &mut residual, n)?;
            add_and_norm(&mut residual, &mut hidden, &layer.ffn_norm_weight, &layer.ffn_norm_bias, eps);
        }
        Ok(hidden)
    }

    /// Multi-head attention of each sequence over its own tokens: `qkv` is `[tokens × 3·hidden]`
    /// (q, k, v side by side), `context` receives `[tokens × hidden]`.
    fn attention(&self, qkv: &[f32], lens: &[usize], context: &mut [f32]) -> Result<()> {
        let (h, heads, d) = (self.config.hidden_size, self.config.num_attention_heads, self.config.head_dim());
        let scale = 1.0 / (d as f32).sqrt();
        // Cut `qkv` and `context` into the rows of each sequence.
        let mut jobs = Vec::with_capacity(lens.len());
        let (mut qkv_rest, mut ctx_rest) = (qkv, context);
        for &len in lens {
            let (q, qr) = qkv_rest.split_at(len * 3 * h);
            let (c, cr) = std::mem::take(&mut ctx_rest).split_at_mut(len * h);
            jobs.push((len, q, c));
            (qkv_rest, ctx_rest) = (qr, cr);
        }
        // One sequence's heads `hs` into `out` (`[hs.len() × len × d]`).
        let heads_of = |len: usize, qkv: &[f32], hs: std::ops::Range<usize>, out: &mut [f32]| -> Result<()> {
            let count = hs.len();
            // Gather q (pre-scaled), k, v as [count × len × d].
            let mut q = vec![0.0f32; count * len * d];
            let mut k = vec![0.0f32; count * len * d];
            let mut v = vec![0.0f32; count * len * d];
            for (t, row) in qkv.chunks_exact(3 * h).enumerate() {
                for (j, head) in hs.clone().enumerate() {
                    let at = (j * len + t) * d;
                    let src = head * d;
                    for (o, &x) in q[at..at + d].iter_mut().zip(&row[src..src + d]) {
                        *o = x * scale;
                    }
                    k[at..at + d].copy_from_slice(&row[h + src..h + src + d]);
                    v[at..at + d].copy_from_slice(&row[2 * h + src..2 * h + src + d]);
                }
            }
            let mut scores = vec![0.0f32; count * len * len];
            matmul::batched_gemm_nt(&q, &k, &mut scores, BatchShape::new(count, len, len, d))?;
            scores.chunks_exact_mut(len).for_each(simd::softmax_in_place);
            matmul::batched_gemm(&scores, &v, out, BatchShape::new(count, len, d, len))
        };
        let scatter = |len: usize, hs: std::ops::Range<usize>, out: &[f32], ctx: &mut [f32]| {
            for (t, row) in ctx.chunks_exact_mut(h).enumerate() {
                for (j, head) in hs.clone().enumerate() {
                    row[head * d..(head + 1) * d].copy_from_slice(&out[(j * len + t) * d..][..d]);
                }
            }
        };
        if let [(len, qkv, ctx)] = jobs.as_mut_slice() {
            // One sequence (batch 1): its heads in groups, one group per thread.
            let len = *len;
            let groups = rayon::current_num_threads().clamp(1, heads);
            let per = heads.div_ceil(groups);
            let outs: Vec<(std::ops::Range<usize>, Vec<f32>)> = (0..heads)
                .step_by(per)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|h0| {
                    let hs = h0..(h0 + per).min(heads);
                    let mut out = vec![0.0f32; hs.len() * len * d];
                    heads_of(len, qkv, hs.clone(), &mut out).map(|()| (hs, out))
                })
                .collect::<Result<_>>()?;
            for (hs, out) in outs {
                scatter(len, hs, &out, ctx);
            }
            return Ok(());
        }
        jobs.into_par_iter().try_for_each(|(len, qkv, ctx)| {
            let mut out = vec![0.0f32; heads * len * d];
            heads_of(len, qkv, 0..heads, &mut out)?;
            scatter(len, 0..heads, &out, ctx);
            Ok(())
        })
    }

    /// Pools each sequence's states into one embedding.
    fn pool(&self, states: &[f32], lens: &[usize]) -> Vec<Vec<f32>> {
        let h = self.config.hidden_size;
        let mut out = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            let rows = &states[start * h..(start + len) * h];
            start += len;
            let mut e = if self.pooling.mean_tokens {
                let mut acc = vec![0.0f64; h];
                for row in rows.chunks_exact(h) {
                    acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64);
                }
                acc.iter().map(|&a| (a / len as f64) as f32).collect()
            } else {
                rows[..h].to_vec()
            };
            if self.pooling.normalize {
                let norm = simd::dot(&e, &e).sqrt().max(1e-12);
                e.iter_mut().for_each(|x| *x /= norm);
            }
            out.push(e);
        }
        out
    }
}

/// Below this many values an elementwise pass (bias, GELU, add + LayerNorm) stays on the calling
/// thread: waking the pool costs more than a pass over a few sentences' rows takes.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// The same for GELU, whose `erfc` costs some 20 operations a value: from about 10 tokens of
/// MiniLM's 1,536-wide feed-forward layer (a sentence of batch 1) it pays to split.
const PARALLEL_MIN_GELU: usize = 1 << 14;

/// `out = x·Wᵀ + b` with `W` packed from `[out, in]`, for `rows` rows of `x`.
fn linear(x: &[f32], weight: &PackedMatrix, bias: &[f32], out: &mut [f32], rows: usize) -> Result<()> {
    matmul::gemm_packed(x, weight, out, rows)?;
    let add_bias = |row: &mut [f32]| simd::axpy(1.0, bias, row);
    if out.len() >= PARALLEL_MIN_VALUES {
        out.par_chunks_mut(weight.n()).for_each(add_bias);
    } else {
        out.chunks_mut(weight.n()).for_each(add_bias);
    }
    Ok(())
}

/// `hidden = LayerNorm(hidden + delta)`, row by row (`delta` is used as scratch).
fn add_and_norm(delta: &mut [f32], hidden: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let h = weight.len();
    let row = |(d, x): (&mut [f32], &mut [f32])| {
        simd::axpy(1.0, x, d);
        simd::layer_norm(d, weight, bias, eps, x);
    };
    if hidden.len() >= PARALLEL_MIN_VALUES {
        delta.par_chunks_mut(h).zip(hidden.par_chunks_mut(h)).for_each(row);
    } else {
        delta.chunks_mut(h).zip(hidden.chunks_mut(h)).for_each(row);
    }
}

/// GELU with the exact normal CDF, `x·Φ(x) = x/2 · erfc(−x/√2)`, in place (BERT's `"gelu"`):
/// [`simd::gelu_erf_in_place`], the form of [`erfc`] evaluated in f32 on vectors.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    simd::gelu_erf_in_place(x)
}
