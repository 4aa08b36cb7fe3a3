//! Supervised fine-tuning of a GGUF chat model with QLoRA (Dettmers et al., "QLoRA", 2023; Hu et al.,
//! "LoRA", 2021) on chat-format JSON Lines: the loop `sovereign finetune` runs.
//!
//! Data: one conversation per line, `{"messages":[{"role":"user","content":"…"},{"role":"assistant",
//! "content":"…"}]}` (the shape Hugging Face TRL's `SFTTrainer` and OpenAI's fine-tuning API read).
//! Each conversation goes through the model's own chat template ([`ChatTemplate::from_gguf`]); the
//! template's text is tokenised with its special tokens and the contents without, as `sovereign serve`
//! does. Only the assistant turns are learned: the tokens from the end of the generation prompt to the
//! end of the rendered turn (its content and the end-of-turn marker) are the targets, every other
//! position is [`IGNORE_INDEX`] (TRL's "assistant-only loss", `DataCollatorForCompletionOnlyLM`).
//!
//! The loop, per optimiser step: [`FinetuneConfig::examples_per_step`] examples (one micro-batch each,
//! in an order shuffled per epoch from the seed), their gradients averaged ([`GradAccumulator`]),
//! clipped by global norm, AdamW at the rate of a warm-up + cosine schedule. Every
//! [`FinetuneConfig::eval_every`] steps the mean loss of the held-out examples is measured (per
//! assistant token). A checkpoint (adapters, AdamW state, step count and the loop's RNG state and data
//! cursor, [`crate::train::checkpoint`]) is written atomically every
//! [`FinetuneConfig::checkpoint_every`] steps and at the end of every run; a run resumed from it gives
//! the same bits as one that was never interrupted. At the end the adapters are written in PEFT's
//! layout ([`LoraAdapters::save_peft`](super::lora::LoraAdapters::save_peft)) with a `metrics.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value as Json;

use super::autograd::{IGNORE_INDEX, Tape};
use super::checkpoint;
use super::decoder::{Activations, LoraDecoder};
use super::lora::{LoraConfig, LoraMode, splitmix};
use super::optim::{AdamWConfig, CosineSchedule, GradAccumulator, Optimizer, clip_grad_norm};
use crate::formats::gguf::Gguf;
use crate::llm::argmax;
use crate::llm::chat::{ChatMessage, ChatPart, ChatTemplate, end_of_turn_tokens};
use crate::tokenize::Bpe;
use crate::{Error, Result};

/// The checkpoint file [`finetune`] writes into the output folder (and resumes from).
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The metrics file [`finetune`] writes into the output folder.
pub const METRICS_FILE: &str = "metrics.json";

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainLength {
    /// This many optimiser steps.
    Steps(u64),
    /// This many passes over the training examples (rounded up to whole steps).
    Epochs(u64),
}

/// Where the held-out examples come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalData {
    /// A chat-format JSON Lines file of its own.
    File(PathBuf),
    /// The last `n` examples of the training file (not trained on).
    Split(usize),
    /// No held-out evaluation.
    None,
}

/// Everything a fine-tuning run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneConfig {
    /// The GGUF chat model (LLaMA family, with `tokenizer.chat_template`).
    pub model: PathBuf,
    /// The training conversations (chat-format JSON Lines).
    pub data: PathBuf,
    /// The held-out conversations.
    pub eval: EvalData,
    /// The output folder: checkpoint, PEFT adapter, `metrics.json`.
    pub out: PathBuf,
    /// The adapters' rank, scale, dropout, targets and initialisation seed.
    pub lora: LoraConfig,
    /// The peak learning rate of AdamW.
    pub lr: f32,
    /// The floor the cosine schedule decays to.
    pub min_lr: f32,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// How long to train.
    pub length: TrainLength,
    /// Examples (micro-batches) whose gradients are averaged into one optimiser step (≥ 1).
    pub examples_per_step: usize,
    /// The global gradient norm is clipped to this (> 0).
    pub clip_norm: f32,
    /// Held-out loss every this many steps (0: only before and after training).
    pub eval_every: u64,
    /// A checkpoint every this many steps (0: only at the end of a run).
    pub checkpoint_every: u64,
    /// The seed of the data order and of dropout.
    pub seed: u64,
    /// Tokens per example at most; longer examples are cut at the end.
    pub max_seq_len: usize,
    /// Held-out examples greedily decoded before and after training to measure the replies (0: none).
    pub generate_examples: usize,
    /// Stop after this many steps in this run (a checkpoint is written), as if interrupted; the
    /// schedule still runs to the full length. `None`: run to the end.
    pub stop_after: Option<u64>,
    /// Resume from this checkpoint (normally `out/`[`CHECKPOINT_FILE`]).
    pub resume_from: Option<PathBuf>,
    /// Keep the blocks' activations for the backward pass, or recompute them (activation
    /// checkpointing: less memory, about a third more compute). Gradients are the same either way.
    pub activations: Activations,
}

impl FinetuneConfig {
    /// A configuration with the defaults used in the course: rank 8 on every projection, α 16, no
    /// dropout, lr 1e-3 decaying to 1e-4 without warm-up, 100 steps of one example, clip at 1, at most
    /// 256 tokens, no held-out set, no weight decay, seed 0.
    pub fn new(model: impl Into<PathBuf>, data: impl Into<PathBuf>, out: impl Into<PathBuf>) -> FinetuneConfig {
        FinetuneConfig {
            model: model.into(),
            data: data.into(),
            eval: EvalData::None,
            out: out.into(),
            lora: LoraConfig {
                rank: 8,
                alpha: 16.0,
                dropout: 0.0,
                targets: super::lora::LoraTarget::ALL.to_vec(),
                seed: 0,
            },
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 0,
            weight_decay: 0.0,
            length: TrainLength::Steps(100),
            examples_per_step: 1,
            clip_norm: 1.0,
            eval_every: 0,
            checkpoint_every: 0,
            seed: 0,
            max_seq_len: 256,
            generate_examples: 0,
            stop_after: None,
            resume_from: None,
            activations: Activations::Keep,
        }
    }

    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    /// [`Error::FinetuneConfig`] naming the field; as [`LoraConfig::validate`].
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::FinetuneConfig { field, reason });
        self.lora.validate()?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} must be finite and > 0", self.lr));
        }
        if !(self.min_lr.is_finite() && (0.0..=self.lr).contains(&self.min_lr)) {
            return bad("min_lr", format!("{} must be in [0, lr]", self.min_lr));
        }
        if self.examples_per_step == 0 {
            return bad("examples_per_step", "at least one example per step".into());
        }
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return bad("clip_norm", format!("{} must be finite and > 0", self.clip_norm));
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len", format!("{} leaves nothing to predict", self.max_seq_len));
        }
        if matches!(self.length, TrainLength::Steps(0) | TrainLength::Epochs(0)) {
            return bad("length", "at least one step".into());
        }
        Ok(())
    }
}

/// One tokenised conversation: the tokens and, per position, the token to predict there
/// ([`IGNORE_INDEX`] outside the assistant turns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The token ids of the rendered conversation.
    pub tokens: Vec<u32>,
    /// One target per token: the next token where it belongs to an assistant turn, else [`IGNORE_INDEX`].
    pub targets: Vec<i64>,
}

impl Example {
    /// The positions with a target.
    pub fn target_count(&self) -> usize {
        self.targets.iter().filter(|&&t| t != IGNORE_INDEX).count()
    }
}

/// Reads chat-format JSON Lines: one `{"messages": [{"role": …, "content": …}, …]}` per line (blank
/// lines skipped). Every conversation needs at least one assistant message.
///
/// # Errors
/// [`Error::FinetuneData`] with the file and the 1-based line of the first malformed line (not JSON,
/// no `messages` list, a message without a string `role` or `content`, no assistant turn), or line 0
/// when the file cannot be read.
pub fn load_chat_jsonl(path: impl AsRef<Path>) -> Result<Vec<Vec<ChatMessage>>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| data_error(path, 0, format!("cannot read: {e}")))?;
    parse_chat_jsonl(&text, path)
}

/// [`load_chat_jsonl`] of text already read; `path` names the origin in errors.
///
/// # Errors
/// As [`load_chat_jsonl`].
pub fn parse_chat_jsonl(text: &str, path: &Path) -> Result<Vec<Vec<ChatMessage>>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| data_error(path, i + 1, reason);
        let v: Json = serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        let Some(messages) = v.get("messages").and_then(Json::as_array) else {
            return Err(err("no \"messages\" list".into()));
        };
        let mut conv = Vec::with_capacity(messages.len());
        for (j, m) in messages.iter().enumerate() {
            let field = |name: &str| m.get(name).and_then(Json::as_str);
            let (Some(role), Some(content)) = (field("role"), field("content")) else {
                return Err(err(format!("message {j} needs a string \"role\" and a string \"content\"")));
            };
            conv.push(ChatMessage::new(role, content));
        }
        if !conv.iter().any(|m| m.role == "assistant") {
            return Err(err("no assistant message to learn".into()));
        }
        out.push(conv);
    }
    Ok(out)
}

fn data_error(path: &Path, line: usize, reason: String) -> Error {
    Error::FinetuneData { path: path.to_path_buf(), line, reason }
}

/// The model's chat template and tokenizer: renders and tokenises conversations.
#[derive(Debug, Clone)]
pub struct ChatEncoder {
    template: ChatTemplate,
    bpe: Bpe,
}

impl ChatEncoder {
    /// The template and tokenizer of a GGUF file.
    ///
    /// # Errors
    /// As [`ChatTemplate::from_gguf`] and [`Bpe::from_gguf`].
    pub fn from_gguf(gguf: &Gguf) -> Result<ChatEncoder> {
        Ok(ChatEncoder { template: ChatTemplate::from_gguf(gguf)?, bpe: Bpe::from_gguf(gguf)? })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Bpe {
        &self.bpe
    }

    /// The tokens of `messages` rendered by the template: its own text with special tokens, the
    /// contents without (a typed `<|im_start|>` stays text).
    ///
    /// # Errors
    /// As [`ChatTemplate::render_parts`].
    pub fn tokens(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Vec<u32>> {
        let parts = self.template.render_parts(messages, None, add_generation_prompt)?;
        Ok(parts
            .iter()
            .flat_map(|p| match p {
                ChatPart::Template(t) => self.bpe.encode(t),
                ChatPart::Content(c) => self.bpe.encode_ordinary(c),
            })
            .collect())
    }

    /// The training example of a conversation: the whole rendering, with targets on the tokens of
    /// each assistant turn (from the end of the generation prompt before it to the end of the turn),
    /// cut to `max_len` tokens.
    ///
    /// # Errors
    /// As [`ChatTemplate::render_parts`]; [`Error::ChatTemplate`] when the template does not render a
    /// conversation's beginning as a prefix of the whole (then turns cannot be located).
    pub fn example(&self, messages: &[ChatMessage], max_len: usize) -> Result<Example> {
        let tokens = self.tokens(messages, false)?;
        let mut learn = vec![false; tokens.len()];
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = self.tokens(&messages[..i], true)?;
            let through = self.tokens(&messages[..=i], false)?;
            if !through.starts_with(&before) || !tokens.starts_with(&through) {
                return Err(Error::ChatTemplate(format!(
                    "the template does not render the conversation up to assistant message {i} as a prefix of \
                     the whole, so its tokens cannot be located"
                )));
            }
            learn[before.len()..through.len()].fill(true);
        }
        let n = tokens.len().min(max_len);
        // Position p predicts token p + 1: it is a target when token p + 1 is learned.
        let targets =
            (0..n).map(|p| if p + 1 < n && learn[p + 1] { i64::from(tokens[p + 1]) } else { IGNORE_INDEX }).collect();
        Ok(Example { tokens: tokens[..n].to_vec(), targets })
    }

    /// The prompt of a conversation's last assistant turn (everything before it, with the generation
    /// prompt) and that turn's text: what greedy decoding is compared against.
    ///
    /// # Errors
    /// As [`ChatEncoder::tokens`]; [`Error::InvalidParameter`] when there is no assistant message.
    pub fn prompt_and_reference(&self, messages: &[ChatMessage]) -> Result<(Vec<u32>, String)> {
        let last = messages
            .iter()
            .rposition(|m| m.role == "assistant")
            .ok_or_else(|| Error::InvalidParameter("a conversation without an assistant message".into()))?;
        Ok((self.tokens(&messages[..last], true)?, messages[last].text().to_string()))
    }
}

/// Greedy decoding on the training decoder (evaluation mode, adapters applied, no KV cache: the whole
/// sequence is run again per token): up to `max_new` tokens after `prompt`, ending early on a token of
/// `stop` (not returned) or when `keep_going` (given the tokens so far) says no.
///
/// # Errors
/// As [`LoraDecoder::forward`].
pub fn greedy_decode(
    decoder: &LoraDecoder,
    prompt: &[u32],
    max_new: usize,
    stop: &[u32],
    mut keep_going: impl FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>> {
    let mut seq = prompt.to_vec();
    let mut tape = Tape::new();
    let vocab = decoder.config().vocab_size;
    for _ in 0..max_new {
        if seq.len() >= decoder.config().context_len {
            break;
        }
        tape.clear();
        let pass = decoder.forward(&mut tape, &seq, LoraMode::Eval)?;
        let logits = tape.value(pass.logits);
        let next = argmax(&logits[logits.len() - vocab..]);
        if stop.contains(&next) {
            break;
        }
        seq.push(next);
        if !keep_going(&seq[prompt.len()..]) {
            break;
        }
    }
    Ok(seq.split_off(prompt.len()))
}

/// How greedy replies compare with the reference replies.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GenerationScore {
    /// Examples decoded.
    pub examples: usize,
    /// Fraction whose reply equals the reference (both trimmed).
    pub exact_match: f64,
    /// Fraction whose reply is a JSON object with the reference's keys, in its order, and values of the
    /// same JSON types (0 when no reference is a JSON object).
    pub format_match: f64,
    /// Fraction whose reply is such an object with the reference's value of the key `answer`.
    pub answer_match: f64,
    /// The first few replies, for the record.
    pub samples: Vec<String>,
}

fn json_kind(v: &Json) -> u8 {
    match v {
        Json::Null => 0,
        Json::Bool(_) => 1,
        Json::Number(_) => 2,
        Json::String(_) => 3,
        Json::Array(_) => 4,
        Json::Object(_) => 5,
    }
}

/// Whether `reply` is a JSON object with `reference`'s keys in the same order and values of the same
/// JSON types.
pub fn same_json_shape(reply: &str, reference: &str) -> bool {
    let (Ok(Json::Object(a)), Ok(Json::Object(b))) =
        (serde_json::from_str::<Json>(reply.trim()), serde_json::from_str::<Json>(reference.trim()))
    else {
        return false;
    };
    a.len() == b.len() && a.iter().zip(&b).all(|((ka, va), (kb, vb))| ka == kb && json_kind(va) == json_kind(vb))
}

/// Greedily decodes the last assistant turn of each conversation and scores the replies
/// ([`GenerationScore`]). A reply stops at an end-of-turn token, after the reference's length plus 8
/// tokens, or as soon as it can neither equal the reference nor be a JSON object when the reference
/// is one (its first non-blank character is not `{`).
///
/// # Errors
/// As [`greedy_decode`] and [`ChatEncoder::prompt_and_reference`].
pub fn score_generations(
    decoder: &LoraDecoder,
    encoder: &ChatEncoder,
    conversations: &[Vec<ChatMessage>],
) -> Result<GenerationScore> {
    let stop = end_of_turn_tokens(encoder.tokenizer());
    let (mut exact, mut format, mut answer) = (0usize, 0usize, 0usize);
    let mut samples = Vec::new();
    for conv in conversations {
        let (prompt, reference) = encoder.prompt_and_reference(conv)?;
        let reference = reference.trim().to_string();
        let ref_is_object = matches!(serde_json::from_str::<Json>(&reference), Ok(Json::Object(_)));
        let max_new = encoder.tokenizer().encode_ordinary(&reference).len() + 8;
        let bpe = encoder.tokenizer();
        let ids = greedy_decode(decoder, &prompt, max_new, &stop, |so_far| {
            let text = bpe.decode(so_far).unwrap_or_default();
            let t = text.trim_start();
            reference.starts_with(t) || (ref_is_object && (t.is_empty() || t.starts_with('{')))
        })?;
        let reply = encoder.tokenizer().decode(&ids)?.trim().to_string();
        exact += usize::from(reply == reference);
        if same_json_shape(&reply, &reference) {
            format += 1;
            let get = |s: &str| serde_json::from_str::<Json>(s).ok().and_then(|v| v.get("answer").cloned());
            answer += usize::from(get(&reply).is_some() && get(&reply) == get(&reference));
        }
        if samples.len() < 5 {
            samples.push(reply);
        }
    }
    let n = conversations.len().max(1) as f64;
    Ok(GenerationScore {
        examples: conversations.len(),
        exact_match: exact as f64 / n,
        format_match: format as f64 / n,
        answer_match: answer as f64 / n,
        samples,
    })
}

/// The mean cross-entropy per target token over `examples` (evaluation mode), and the token count.
///
/// # Errors
/// As [`LoraDecoder::loss`].
pub fn eval_loss(decoder: &LoraDecoder, examples: &[Example]) -> Result<(f64, usize)> {
    let mut tape = Tape::new();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for ex in examples {
        let n = ex.target_count();
        if n == 0 {
            continue;
        }
        tape.clear();
        let pass = decoder.loss(&mut tape, &ex.tokens, &ex.targets, LoraMode::Eval)?;
        let loss = pass.loss.map_or(0.0, |l| tape.value(l)[0]);
        sum += f64::from(loss) * n as f64;
        count += n;
    }
    Ok((if count == 0 { f64::NAN } else { sum / count as f64 }, count))
}

/// What the loop reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Before the first step of this run.
    Start {
        /// The step the run starts at (0, or the checkpoint's).
        step: u64,
        /// Steps of the whole schedule.
        total_steps: u64,
        /// Training examples (after tokenisation).
        train_examples: usize,
        /// Held-out examples.
        eval_examples: usize,
    },
    /// After an optimiser step.
    Step {
        /// Steps taken.
        step: u64,
        /// Steps of the whole schedule.
        total_steps: u64,
        /// The mean training loss of the step's examples.
        loss: f32,
        /// The learning rate the step used.
        lr: f32,
        /// The gradient norm before clipping.
        grad_norm: f32,
        /// Tokens per second of training in this run so far (forward, backward and step).
        tokens_per_second: f64,
    },
    /// After a held-out evaluation.
    Eval {
        /// Steps taken.
        step: u64,
        /// The mean held-out loss per assistant token.
        loss: f64,
    },
    /// Greedy decoding of held-out examples is running (it is slow: no KV cache).
    Generating {
        /// Steps taken.
        step: u64,
        /// Examples to decode.
        examples: usize,
    },
    /// After a checkpoint was written.
    Checkpoint {
        /// Steps taken.
        step: u64,
        /// The file.
        path: PathBuf,
    },
}

/// The outcome of [`finetune`] (also written to `out/`[`METRICS_FILE`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FinetuneReport {
    /// Steps taken in all runs.
    pub steps: u64,
    /// Steps of the whole schedule.
    pub total_steps: u64,
    /// Whether the schedule is complete (false after [`FinetuneConfig::stop_after`]).
    pub finished: bool,
    /// The step this run resumed from (`None`: a fresh run).
    pub resumed_from: Option<u64>,
    /// Training examples (after tokenisation).
    pub train_examples: usize,
    /// Held-out examples (after tokenisation).
    pub eval_examples: usize,
    /// Held-out loss before training (mean per assistant token).
    pub eval_loss_before: Option<f64>,
    /// Held-out loss after this run.
    pub eval_loss_after: Option<f64>,
    /// The last step's training loss.
    pub train_loss_last: Option<f32>,
    /// Tokens processed in this run (whole sequences, forward and backward).
    pub train_tokens: usize,
    /// Seconds of training in this run (evaluation excluded).
    pub train_seconds: f64,
    /// `train_tokens / train_seconds`.
    pub tokens_per_second: f64,
    /// Greedy replies before training.
    pub generation_before: Option<GenerationScore>,
    /// Greedy replies after this run.
    pub generation_after: Option<GenerationScore>,
    /// Trainable values (adapter `A` and `B`).
    pub trainable_values: usize,
    /// Threads of the rayon pool.
    pub threads: usize,
    /// Whether activations were kept or recomputed in this run.
    pub activations: Activations,
    /// The most activation memory one example's pass held in this run
    /// ([`StepGrads::peak_activation_bytes`](super::decoder::StepGrads::peak_activation_bytes)).
    pub peak_activation_bytes: usize,
}

/// A Fisher–Yates permutation of `0..n` from the RNG.
fn permutation(n: usize, rng: &mut u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (splitmix(rng) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The loop's position: steps, data cursor and RNG, saved in the checkpoint's `extra`.
#[derive(Clone, Debug, PartialEq)]
struct LoopState {
    /// The RNG state at the start of the current epoch (the epoch's order is drawn from it).
    epoch_rng: u64,
    /// The RNG state now (dropout seeds are drawn from it).
    rng: u64,
    epoch: u64,
    cursor: usize,
}

/// Tokenises conversations; those left without a target by `max_len` are dropped.
fn encode_all(encoder: &ChatEncoder, convs: &[Vec<ChatMessage>], max_len: usize) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        let ex = encoder.example(c, max_len)?;
        if ex.target_count() > 0 {
            out.push(ex);
        }
    }
    Ok(out)
}

fn ckpt_error(path: &Path, reason: String) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason }
}

/// The entries of the checkpoint's `extra` that must equal this run's for a resume.
fn identity(config: &FinetuneConfig, total_steps: u64, train: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("finetune.total_steps".into(), total_steps.to_string()),
        ("finetune.train_examples".into(), train.to_string()),
        ("finetune.examples_per_step".into(), config.examples_per_step.to_string()),
        ("finetune.seed".into(), config.seed.to_string()),
        ("finetune.lr".into(), config.lr.to_bits().to_string()),
        ("finetune.max_seq_len".into(), config.max_seq_len.to_string()),
    ])
}

fn opt_f64(extra: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    extra.get(key).and_then(|s| s.parse::<u64>().ok()).map(f64::from_bits)
}

/// Runs (or resumes) a fine-tune as `config` says, calling `progress` along the way, and writes the
/// checkpoint, the PEFT adapter and `metrics.json` into `config.out`.
///
/// # Errors
/// As [`FinetuneConfig::validate`], [`load_chat_jsonl`], [`ChatEncoder::example`] and the decoder;
/// [`Error::FinetuneData`] (line 0) when no training example has a target; [`Error::Checkpoint`] when
/// the checkpoint to resume from is unreadable or was written by a run of other data or settings.
pub fn finetune(config: &FinetuneConfig, mut progress: impl FnMut(&Progress)) -> Result<FinetuneReport> {
    config.validate()?;
    let gguf = Arc::new(Gguf::open(&config.model)?);
    let encoder = ChatEncoder::from_gguf(&gguf)?;
    let mut decoder = LoraDecoder::from_gguf(Arc::clone(&gguf), config.lora.clone())?;
    let mut convs = load_chat_jsonl(&config.data)?;
    let eval_convs = match &config.eval {
        EvalData::File(p) => load_chat_jsonl(p)?,
        EvalData::Split(n) => convs.split_off(convs.len().saturating_sub(*n)),
        EvalData::None => Vec::new(),
    };
    let train = encode_all(&encoder, &convs, config.max_seq_len)?;
    let held_out = encode_all(&encoder, &eval_convs, config.max_seq_len)?;
    if train.is_empty() {
        return Err(data_error(&config.data, 0, "no training example with an assistant token to learn".into()));
    }
    let total_steps = match config.length {
        TrainLength::Steps(n) => n,
        TrainLength::Epochs(e) => (e * train.len() as u64).div_ceil(config.examples_per_step as u64),
    };
    let warmup = config.warmup_steps.min(total_steps);
    let schedule = CosineSchedule::new(config.lr, config.min_lr, warmup, total_steps)?;
    let adamw = AdamWConfig { lr: config.lr, weight_decay: config.weight_decay, ..AdamWConfig::default() };
    let mut opt = Optimizer::new(adamw, decoder.params())?;
    let ident = identity(config, total_steps, train.len());
    let mut extra_keep = BTreeMap::new();
    let mut state = LoopState { epoch_rng: config.seed, rng: config.seed, epoch: 0, cursor: 0 };
    let mut resumed_from = None;
    if let Some(path) = &config.resume_from {
        let ck = checkpoint::load(path)?;
        for (k, v) in &ident {
            if ck.extra.get(k) != Some(v) {
                return Err(ckpt_error(
                    path,
                    format!("written by a run with {k} = {:?}, this run has {v:?}", ck.extra.get(k)),
                ));
            }
        }
        ck.optimizer.check_params(decoder.params())?;
        for (p, saved) in decoder.params_mut().iter_mut().zip(ck.params) {
            p.value = saved.value;
        }
        opt = ck.optimizer;
        let get = |k: &str| -> Result<u64> {
            ck.extra
                .get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ckpt_error(path, format!("no {k} in the checkpoint's extra entries")))
        };
        state = LoopState {
            epoch_rng: get("finetune.epoch_rng")?,
            rng: get("finetune.rng")?,
            epoch: get("finetune.epoch")?,
            cursor: get("finetune.cursor")? as usize,
        };
        extra_keep = ck.extra.into_iter().filter(|(k, _)| k.starts_with("finetune.before.")).collect();
        resumed_from = Some(opt.steps());
    }
    let mut step = opt.steps();
    progress(&Progress::Start { step, total_steps, train_examples: train.len(), eval_examples: held_out.len() });
    let gen_convs: Vec<Vec<ChatMessage>> = eval_convs.iter().take(config.generate_examples).cloned().collect();
    if resumed_from.is_none() {
        if !held_out.is_empty() {
            let (loss, _) = eval_loss(&decoder, &held_out)?;
            progress(&Progress::Eval { step, loss });
            extra_keep.insert("finetune.before.eval_loss".into(), loss.to_bits().to_string());
        }
        if !gen_convs.is_empty() {
            progress(&Progress::Generating { step, examples: gen_convs.len() });
            let score = score_generations(&decoder, &encoder, &gen_convs)?;
            let json = serde_json::to_string(&score).unwrap_or_default();
            extra_keep.insert("finetune.before.generation".into(), json);
        }
    }

    std::fs::create_dir_all(&config.out).map_err(|e| ckpt_error(&config.out, format!("cannot create: {e}")))?;
    let ckpt_path = config.out.join(CHECKPOINT_FILE);
    let save = |decoder: &LoraDecoder, opt: &Optimizer, state: &LoopState| -> Result<()> {
        let mut extra = ident.clone();
        extra.extend(extra_keep.clone());
        extra.insert("finetune.epoch_rng".into(), state.epoch_rng.to_string());
        extra.insert("finetune.rng".into(), state.rng.to_string());
        extra.insert("finetune.epoch".into(), state.epoch.to_string());
        extra.insert("finetune.cursor".into(), state.cursor.to_string());
        checkpoint::save(&ckpt_path, decoder.params(), opt, &extra)
    };

    let mut order = permutation(train.len(), &mut state.epoch_rng.clone());
    let mut tape = Tape::new();
    let (mut tokens, mut seconds, mut last_loss, mut run_steps) = (0usize, 0.0f64, None, 0u64);
    let mut peak_activation_bytes = 0usize;
    while step < total_steps && config.stop_after.is_none_or(|n| run_steps < n) {
        let started = Instant::now();
        let mut acc = GradAccumulator::new();
        let mut loss_sum = 0.0f32;
        for _ in 0..config.examples_per_step {
            if state.cursor == train.len() {
                state.epoch += 1;
                state.cursor = 0;
                state.epoch_rng = state.rng;
                order = permutation(train.len(), &mut state.epoch_rng.clone());
                splitmix(&mut state.rng);
            }
            let ex = &train[order[state.cursor]];
            state.cursor += 1;
            let seed = splitmix(&mut state.rng);
            let step_grads = decoder.loss_and_grads(
                &mut tape,
                &ex.tokens,
                &ex.targets,
                LoraMode::Train { seed },
                config.activations,
            )?;
            loss_sum += step_grads.loss;
            peak_activation_bytes = peak_activation_bytes.max(step_grads.peak_activation_bytes);
            acc.add(&step_grads.grads)?;
            tokens += ex.tokens.len();
        }
        let mut grads = acc.mean()?;
        let grad_norm = clip_grad_norm(&mut grads, config.clip_norm)?;
        let lr = schedule.lr_at(step);
        opt.set_lr(lr)?;
        opt.step(decoder.params_mut(), &grads)?;
        step = opt.steps();
        run_steps += 1;
        seconds += started.elapsed().as_secs_f64();
        let loss = loss_sum / config.examples_per_step as f32;
        last_loss = Some(loss);
        let tokens_per_second = tokens as f64 / seconds.max(1e-9);
        progress(&Progress::Step { step, total_steps, loss, lr, grad_norm, tokens_per_second });
        if config.eval_every > 0 && step % config.eval_every == 0 && step < total_steps && !held_out.is_empty() {
            let (loss, _) = eval_loss(&decoder, &held_out)?;
            progress(&Progress::Eval { step, loss });
        }
        if config.checkpoint_every > 0 && step % config.checkpoint_every == 0 {
            save(&decoder, &opt, &state)?;
            progress(&Progress::Checkpoint { step, path: ckpt_path.clone() });
        }
    }
    save(&decoder, &opt, &state)?;
    progress(&Progress::Checkpoint { step, path: ckpt_path.clone() });
    let base_name = config.model.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    decoder.adapters().save_peft(&config.out, &base_name)?;

    let eval_loss_after = if held_out.is_empty() {
        None
    } else {
        let (loss, _) = eval_loss(&decoder, &held_out)?;
        progress(&Progress::Eval { step, loss });
        Some(loss)
    };
    let generation_after = if gen_convs.is_empty() {
        None
    } else {
        progress(&Progress::Generating { step, examples: gen_convs.len() });
        Some(score_generations(&decoder, &encoder, &gen_convs)?)
    };
    let generation_before = extra_keep
        .get("finetune.before.generation")
        .and_then(|s| serde_json::from_str::<Json>(s).ok())
        .and_then(|v| generation_score_from_json(&v));
    let report = FinetuneReport {
        steps: step,
        total_steps,
        finished: step >= total_steps,
        resumed_from,
        train_examples: train.len(),
        eval_examples: held_out.len(),
        eval_loss_before: opt_f64(&extra_keep, "finetune.before.eval_loss"),
        eval_loss_after,
        train_loss_last: last_loss,
        train_tokens: tokens,
        train_seconds: seconds,
        tokens_per_second: if seconds > 0.0 { tokens as f64 / seconds } else { 0.0 },
        generation_before,
        generation_after,
        trainable_values: decoder.adapters().trainable_values(),
        threads: rayon::current_num_threads(),
        activations: config.activations,
        peak_activation_bytes,
    };
    let metrics = config.out.join(METRICS_FILE);
    let json = serde_json::to_vec_pretty(&report).map_err(|e| ckpt_error(&metrics, e.to_string()))?;
    crate::formats::safetensors::write_atomic(&metrics, &json)
        .map_err(|e| ckpt_error(&metrics, format!("cannot write: {e}")))?;
    Ok(report)
}

fn generation_score_from_json(v: &Json) -> Option<GenerationScore> {
    Some(GenerationScore {
        examples: v.get("examples")?.as_u64()? as usize,
        exact_match: v.get("exact_match")?.as_f64()?,
        format_match: v.get("format_match")?.as_f64()?,
        answer_match: v.get("answer_match")?.as_f64()?,
        samples: v.get("samples")?.as_array()?.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
    })
}
