//! Continuous batching: one thread owns the model and advances every running sequence together.
//!
//! The idea of Orca (Yu et al., "Orca: A Distributed Serving System for
//! Transformer-Based Generative Models", OSDI 2022): schedule at the granularity
//! of one decoding step, not one request. Each step the engine admits waiting
//! requests (their whole prompt joins the step: prefill), runs one
//! [`LlamaModel::forward_batch`] over every sequence, samples each sequence's
//! next token, streams it to its request, and retires the finished ones. A new
//! request never waits for the others to end, and the weights are read once per
//! step for all sequences.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use crate::constrain::Constraint;
use crate::llm::sample::{apply_logit_bias, apply_penalties, log_sum_exp, top_logprobs};
use crate::llm::{FinishReason, KvCache, LlamaModel, Sampler, SamplerConfig, SeqStep};
use crate::tokenize::Bpe;

/// One generation request.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// At most this many new tokens.
    pub max_tokens: usize,
    /// How to sample.
    pub sampler: SamplerConfig,
    /// Token ids that end the sequence (not emitted).
    pub stop_tokens: Vec<u32>,
    /// Strings that end the sequence (the text is cut before them).
    pub stop_strings: Vec<String>,
    /// What the sequence asks beyond plain sampling (nothing by default: no extra cost per step).
    pub extras: Extras,
    /// Where the events go; a closed receiver cancels the sequence.
    pub events: UnboundedSender<Event>,
}

/// The per-sequence work a request may ask for; each piece costs only the sequences that ask.
#[derive(Debug, Default)]
pub struct Extras {
    /// Report each generated token's log-probability and this many alternatives ([`Event::Token`]).
    pub logprobs: Option<usize>,
    /// Score the prompt: each prompt token's log-probability and this many alternatives
    /// ([`Event::PromptLogprobs`]); the prefill then computes the logits of every prompt position.
    pub prompt_logprobs: Option<usize>,
    /// OpenAI's presence penalty (−2..2) on generated tokens.
    pub presence_penalty: f32,
    /// OpenAI's frequency penalty (−2..2) on generated tokens.
    pub frequency_penalty: f32,
    /// Added to the logits of these token ids (−100 bans).
    pub logit_bias: Vec<(u32, f32)>,
    /// A grammar the output must follow: masked before each draw, advanced after; the sequence
    /// ends when the grammar is complete.
    pub constraint: Option<Constraint>,
}

/// A token's log-probability under the model's own distribution (the raw logits: before
/// temperature, penalties, bias and grammar mask), with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token id.
    pub id: u32,
    /// Its log-probability; `None` for a prompt's first token (nothing predicts it).
    pub logprob: Option<f32>,
    /// The most likely tokens at its position and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What a request hears back.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// More text (whole UTF-8 characters; may be empty when a token ends mid-character).
    Text(String),
    /// A generated token's log-probability (when [`Extras::logprobs`] is set), sent before its text.
    Token(TokenLogprob),
    /// The prompt's tokens with their log-probabilities (when [`Extras::prompt_logprobs`] is set),
    /// sent once, before any generated token.
    PromptLogprobs(Vec<TokenLogprob>),
    /// The end.
    Done {
        /// Why it ended.
        finish: FinishReason,
        /// Prompt length in tokens.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// The request failed (the message is for the client).
    Failed(String),
}

/// Counters the engine keeps (read by `/metrics`).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Decoding steps run.
    pub steps: AtomicU64,
    /// Prompt tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Sequences running now.
    pub active: AtomicUsize,
    /// The largest number of sequences one step has run.
    pub max_batch: AtomicUsize,
    /// Sequences finished (any reason).
    pub finished: AtomicU64,
}

/// How the engine schedules.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// At most this many sequences per step.
    pub max_batch: usize,
    /// KV-cache positions per sequence (prompt + generated).
    pub context: usize,
}

/// A handle to the engine thread; dropping every handle stops it after the running sequences.
#[derive(Debug, Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    stats: Arc<EngineStats>,
    config: EngineConfig,
}

struct Running {
    job: Job,
    cache: KvCache,
    sampler: Sampler,
    /// Tokens to feed next step: the prompt first, then the last token.
    feed: Vec<u32>,
    generated: usize,
    /// Bytes of a token that ended mid-character.
    pending: Vec<u8>,
    /// Text produced, and how much of it has been sent.
    text: String,
    sent: usize,
    /// How often each generated token came (kept only when a penalty is set).
    counts: Vec<(u32, u32)>,
}

impl Running {
    /// Whether this step needs the logits of every new position (the prefill of a scored prompt).
    fn scores_prompt(&self) -> bool {
        self.generated == 0 && self.cache.is_empty() && self.job.extras.prompt_logprobs.is_some()
    }

    fn penalised(&self) -> bool {
        self.job.extras.presence_penalty != 0.0 || self.job.extras.frequency_penalty != 0.0
    }
}

impl Engine {
    /// Starts the engine thread over `model` and `tokenizer`.
    pub fn start(model: Arc<LlamaModel>, tokenizer: Arc<Bpe>, config: EngineConfig) -> (Engine, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(EngineStats::default());
        let thread_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("sovereign-engine".into())
            .spawn(move || run(&model, &tokenizer, config, &rx, &thread_stats))
            .expect("spawning the engine thread");
        (Engine { jobs: tx, stats, config }, handle)
    }

    /// Queues a job; `false` when the engine has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Its scheduling configuration.
    pub fn config(&self) -> EngineConfig {
        self.config
    }
}

fn run(model: &LlamaModel, tokenizer: &Bpe, config: EngineConfig, jobs: &mpsc::Receiver<Job>, stats: &EngineStats) {
    let mut running: Vec<Running> = Vec::new();
    loop {
        // Admit: block only when idle.
        if running.is_empty() {
            match jobs.recv() {
                Ok(job) => admit(model, config, job, &mut running),
                Err(_) => return,
            }
        }
        while running.len() < config.max_batch.max(1) {
            match jobs.try_recv() {
                Ok(job) => admit(model, config, job, &mut running),
                Err(_) => break,
            }
        }
        // Cancelled requests leave before the step.
        running.retain(|r| !r.job.events.is_closed());
        if running.is_empty() {
            continue;
        }
        let batch = running.len();
        stats.max_batch.fetch_max(batch, Ordering::Relaxed);
        stats.active.store(batch, Ordering::Relaxed);
        let prompt_tokens: usize = running.iter().filter(|r| r.generated == 0).map(|r| r.feed.len()).sum();
        let scored: Vec<bool> = running.iter().map(Running::scores_prompt).collect();
        let feeds: Vec<Vec<u32>> = running.iter_mut().map(|r| std::mem::take(&mut r.feed)).collect();
        let result = {
            let mut steps: Vec<SeqStep<'_>> =
                running.iter_mut().zip(&feeds).map(|(r, feed)| SeqStep { tokens: feed, cache: &mut r.cache }).collect();
            if scored.contains(&true) {
                model.forward_batch_positions(&mut steps, &scored)
            } else {
                model.forward_batch(&mut steps)
            }
        };
        stats.steps.fetch_add(1, Ordering::Relaxed);
        stats.prompt_tokens.fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        let logits = match result {
            Ok(logits) => logits,
            Err(e) => {
                for r in running.drain(..) {
                    let _ = r.job.events.send(Event::Failed(format!("the model failed: {e}")));
                }
                stats.active.store(0, Ordering::Relaxed);
                continue;
            }
        };
        let mut finished = Vec::new();
        for (i, ((r, mut logits), feed)) in running.iter_mut().zip(logits).zip(&feeds).enumerate() {
            if scored[i] {
                logits = score_prompt(r, feed, logits);
                if r.job.max_tokens == 0 {
                    finish_sequence(r, FinishReason::Length);
                    finished.push(i);
                    continue;
                }
            }
            let before = r.generated;
            let end = match step_token(r, &mut logits) {
                Ok(next) => advance(r, next, tokenizer),
                Err(message) => {
                    let _ = r.job.events.send(Event::Failed(message));
                    Some(FinishReason::Stop)
                }
            };
            stats.generated_tokens.fetch_add((r.generated - before) as u64, Ordering::Relaxed);
            match end {
                Some(finish) => {
                    finish_sequence(r, finish);
                    finished.push(i);
                }
                // A complete grammar ends the sequence as its end token would.
                None if r.job.extras.constraint.as_ref().is_some_and(Constraint::is_finished) => {
                    finish_sequence(r, FinishReason::Stop);
                    finished.push(i);
                }
                None => {}
            }
        }
        for &i in finished.iter().rev() {
            running.swap_remove(i);
            stats.finished.fetch_add(1, Ordering::Relaxed);
        }
        stats.active.store(running.len(), Ordering::Relaxed);
    }
}

fn admit(model: &LlamaModel, config: EngineConfig, job: Job, running: &mut Vec<Running>) {
    let context = config.context.min(model.config().context_len);
    if job.prompt.is_empty() {
        let _ = job.events.send(Event::Failed("the prompt is empty".into()));
        return;
    }
    if job.prompt.len() >= context {
        let _ = job.events.send(Event::Failed(format!(
            "the prompt has {} tokens; this server's context is {context}",
            job.prompt.len()
        )));
        return;
    }
    if job.max_tokens == 0 && job.extras.prompt_logprobs.is_none() {
        let _ = job.events.send(Event::Done {
            finish: FinishReason::Length,
            prompt_tokens: job.prompt.len(),
            completion_tokens: 0,
        });
        return;
    }
    let sampler = Sampler::new(job.sampler);
    running.push(Running {
        feed: job.prompt.clone(),
        cache: model.new_cache(context),
        sampler,
        generated: 0,
        pending: Vec::new(),
        text: String::new(),
        sent: 0,
        counts: Vec::new(),
        job,
    });
}

/// Sends the prompt's log-probabilities from the logits of every prompt position (row `j` predicts
/// token `j + 1`) and returns the last row: the logits of the first generated token.
fn score_prompt(r: &mut Running, prompt: &[u32], logits: Vec<f32>) -> Vec<f32> {
    let vocab = logits.len() / prompt.len().max(1);
    let top = r.job.extras.prompt_logprobs.unwrap_or(0);
    let mut scored = Vec::with_capacity(prompt.len());
    scored.push(TokenLogprob { id: prompt[0], logprob: None, top: Vec::new() });
    for (row, &id) in logits.chunks_exact(vocab).zip(&prompt[1..]) {
        let lse = log_sum_exp(row);
        scored.push(TokenLogprob { id, logprob: Some(row[id as usize] - lse), top: top_logprobs(row, lse, top) });
    }
    let _ = r.job.events.send(Event::PromptLogprobs(scored));
    logits[logits.len() - vocab..].to_vec()
}

/// Draws the next token: the log-probabilities first (of the raw logits, when asked), then
/// penalties, bias and the grammar's mask (each only when the sequence has it), the draw, and the
/// grammar's advance. An error is the message for the client.
fn step_token(r: &mut Running, logits: &mut [f32]) -> std::result::Result<u32, String> {
    let reported = r.job.extras.logprobs.map(|k| {
        let lse = log_sum_exp(logits);
        (lse, top_logprobs(logits, lse, k), logits.to_vec())
    });
    if r.penalised() {
        apply_penalties(logits, &r.counts, r.job.extras.presence_penalty, r.job.extras.frequency_penalty);
    }
    if !r.job.extras.logit_bias.is_empty() {
        apply_logit_bias(logits, &r.job.extras.logit_bias);
    }
    if let Some(c) = r.job.extras.constraint.as_mut() {
        c.apply(logits).map_err(|e| format!("constrained decoding failed: {e}"))?;
    }
    let next = r.sampler.sample(logits);
    if let Some(c) = r.job.extras.constraint.as_mut()
        && !r.job.stop_tokens.contains(&next)
    {
        c.commit(next).map_err(|e| format!("constrained decoding failed: {e}"))?;
    }
    if r.penalised() {
        match r.counts.iter_mut().find(|(id, _)| *id == next) {
            Some((_, n)) => *n += 1,
            None => r.counts.push((next, 1)),
        }
    }
    if let Some((lse, top, raw)) = reported
        && !r.job.stop_tokens.contains(&next)
    {
        let _ =
            r.job.events.send(Event::Token(TokenLogprob { id: next, logprob: Some(raw[next as usize] - lse), top }));
    }
    Ok(next)
}

/// Takes the sampled token: returns why the sequence ends, or `None` to go on (then `feed` is set).
fn advance(r: &mut Running, next: u32, tokenizer: &Bpe) -> Option<FinishReason> {
    if r.job.stop_tokens.contains(&next) {
        return Some(FinishReason::Stop);
    }
    r.generated += 1;
    r.pending.extend_from_slice(tokenizer.token_bytes(next).unwrap_or(b"\xEF\xBF\xBD"));
    let valid = match std::str::from_utf8(&r.pending) {
        Ok(s) => s.len(),
        // An incomplete character at the end waits; an invalid one is replaced.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => {
            let lossy = String::from_utf8_lossy(&r.pending).into_owned();
            r.pending = lossy.into_bytes();
            r.pending.len()
        }
    };
    let piece: Vec<u8> = r.pending.drain(..valid).collect();
    r.text.push_str(std::str::from_utf8(&piece).unwrap_or_default());
    if let Some(cut) = find_stop(&r.text, r.sent, &r.job.stop_strings) {
        r.text.truncate(cut);
        r.pending.clear();
        return Some(FinishReason::Stop);
    }
    // Hold back what could be the start of a stop string.
    let hold = r.job.stop_strings.iter().map(|s| s.len().saturating_sub(1)).max().unwrap_or(0);
    let mut upto = r.text.len().saturating_sub(hold).max(r.sent);
    while !r.text.is_char_boundary(upto) {
        upto -= 1;
    }
    if upto > r.sent {
        let _ = r.job.events.send(Event::Text(r.text[r.sent..upto].to_owned()));
        r.sent = upto;
    }
    if r.generated >= r.job.max_tokens || r.cache.len() + 1 >= r.cache.capacity() {
        return Some(FinishReason::Length);
    }
    r.feed = vec![next];
    None
}

/// The byte offset of the first stop string that starts at or after `from`'s reach.
fn find_stop(text: &str, from: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let mut start = from.saturating_sub(s.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            text[start..].find(s.as_str()).map(|i| start + i)
        })
        .min()
}

fn finish_sequence(r: &mut Running, finish: FinishReason) {
    if !r.pending.is_empty() {
        r.text.push_str(&String::from_utf8_lossy(&r.pending));
        r.pending.clear();
    }
    if r.text.len() > r.sent {
        let _ = r.job.events.send(Event::Text(r.text[r.sent..].to_owned()));
        r.sent = r.text.len();
    }
    let _ =
        r.job.events.send(Event::Done { finish, prompt_tokens: r.job.prompt.len(), completion_tokens: r.generated });
}
