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
//!
//! Overload control (the bounded queue of Welsh and Culler, "Adaptive Overload Control for Busy
//! Internet Servers", USITS 2003; deadlines as in "The Tail at Scale", Dean and Barroso, CACM 2013):
//! [`Engine::try_submit`] admits a request's sequences only while at most [`Limits::max_queue`]
//! sequences wait to start, and refuses the rest at once with a `Retry-After` estimated from the
//! recent drain rate ([`Refused`]). Each waiting sequence may carry a deadline: one whose deadline
//! passes (or whose client went away) while it waits is dropped before its prefill, and a running
//! one is cut at its deadline; both hear [`Event::Failed`] (the caller, who set the deadline,
//! tells a deadline from other failures by its own clock).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Sequences waiting to start (admitted, not yet prefilled).
    pub waiting: AtomicUsize,
    /// Sequences dropped while waiting: their deadline passed before their prefill.
    pub expired_waiting: AtomicU64,
    /// Running sequences cut at their deadline.
    pub expired_running: AtomicU64,
    /// Sequences whose client went away (a closed event channel), waiting or running.
    pub cancelled: AtomicU64,
    /// Sequences that left the queue recently, per second (`f64` bits; the `Retry-After` estimate).
    drain_rate: AtomicU64,
    /// Seconds from start to end of recently finished sequences, smoothed (`f64` bits).
    service_seconds: AtomicU64,
}

impl EngineStats {
    /// Sequences that left the queue per second over the last [`DRAIN_WINDOW`] (0 when none did).
    pub fn drain_rate(&self) -> f64 {
        f64::from_bits(self.drain_rate.load(Ordering::Relaxed))
    }

    /// How long a sequence runs from its prefill to its end, recently (an exponentially weighted
    /// mean over finished sequences, weight [`SERVICE_WEIGHT`] for the newest; 0 before the first).
    pub fn service_seconds(&self) -> f64 {
        f64::from_bits(self.service_seconds.load(Ordering::Relaxed))
    }

    /// Folds one finished sequence's run time into [`EngineStats::service_seconds`] (engine thread only).
    fn record_service(&self, seconds: f64) {
        let old = self.service_seconds();
        let new = if old == 0.0 { seconds } else { old + SERVICE_WEIGHT * (seconds - old) };
        self.service_seconds.store(new.to_bits(), Ordering::Relaxed);
    }
}

/// Admission wants the predicted finish this many times over inside the deadline: the prediction
/// rests on a mean of recent run times, and a request's own run varies around it.
pub const DEADLINE_MARGIN: f64 = 1.25;

/// The weight of the newest sequence in [`EngineStats::service_seconds`].
pub const SERVICE_WEIGHT: f64 = 0.2;

/// How far back the drain rate looks.
pub const DRAIN_WINDOW: Duration = Duration::from_secs(10);

/// How the engine schedules.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// At most this many sequences per step.
    pub max_batch: usize,
    /// KV-cache positions per sequence (prompt + generated).
    pub context: usize,
}

/// Admission limits (beyond [`EngineConfig`]'s scheduling).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// At most this many sequences wait to start; [`Engine::try_submit`] refuses beyond it (a request
    /// bigger than the whole queue is still admitted into an empty one).
    pub max_queue: usize,
}

impl Default for Limits {
    /// No bound: what [`Engine::start`] uses.
    fn default() -> Self {
        Limits { max_queue: usize::MAX }
    }
}

/// Why [`Engine::try_submit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: `waiting` sequences wait; try again in `retry_after` (≥ 1 s).
    QueueFull {
        /// Sequences waiting when it was refused.
        waiting: usize,
        /// When a retry may find room, from the recent drain rate.
        retry_after: Duration,
    },
    /// The sequences ahead would, in batches of the recent service time, keep this request from
    /// finishing before its deadline: refused now (a cheap 503) rather than admitted to fail later
    /// (a wasted 504).
    DeadlineUnreachable {
        /// Sequences waiting when it was refused.
        waiting: usize,
        /// The time the batches ahead and the recent service time predict until it would finish.
        expected_finish: Duration,
        /// When a retry may find the queue short enough.
        retry_after: Duration,
    },
    /// The engine thread has stopped.
    Stopped,
}

/// A sequence waiting to start.
#[derive(Debug)]
struct Queued {
    job: Job,
    deadline: Option<Instant>,
}

/// The queue between the request handlers and the engine thread.
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// Every handle is gone: stop once the running sequences end.
    closed: bool,
    /// The engine thread has ended.
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the queue when the last [`Engine`] handle drops.
#[derive(Debug)]
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// A handle to the engine thread; dropping every handle stops it after the running sequences.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
    stats: Arc<EngineStats>,
    config: EngineConfig,
    limits: Limits,
}

struct Running {
    job: Job,
    deadline: Option<Instant>,
    /// When it was admitted to run (its prefill).
    started: Instant,
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

    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn penalised(&self) -> bool {
        self.job.extras.presence_penalty != 0.0 || self.job.extras.frequency_penalty != 0.0
    }
}

impl Engine {
    /// Starts the engine thread over `model` and `tokenizer`, its queue unbounded.
    pub fn start(model: Arc<LlamaModel>, tokenizer: Arc<Bpe>, config: EngineConfig) -> (Engine, JoinHandle<()>) {
        Engine::start_with(model, tokenizer, config, Limits::default())
    }

    /// Starts the engine thread with admission `limits`.
    pub fn start_with(
        model: Arc<LlamaModel>,
        tokenizer: Arc<Bpe>,
        config: EngineConfig,
        limits: Limits,
    ) -> (Engine, JoinHandle<()>) {
        let shared = Arc::new(Shared::default());
        let stats = Arc::new(EngineStats::default());
        let (thread_shared, thread_stats) = (shared.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("sovereign-engine".into())
            .spawn(move || {
                run(&model, &tokenizer, config, &thread_shared, &thread_stats);
                let mut queue = thread_shared.lock();
                queue.stopped = true;
                for q in queue.waiting.drain(..) {
                    let _ = q.job.events.send(Event::Failed("the engine has stopped".into()));
                }
            })
            .expect("spawning the engine thread");
        let closer = Arc::new(Closer(shared.clone()));
        (Engine { shared, _closer: closer, stats, config, limits }, handle)
    }

    /// Queues a job with no deadline, past the queue bound; `false` when the engine has stopped.
    pub fn submit(&self, job: Job) -> bool {
        let mut queue = self.shared.lock();
        if queue.stopped {
            return false;
        }
        queue.waiting.push_back(Queued { job, deadline: None });
        self.stats.waiting.store(queue.waiting.len(), Ordering::Relaxed);
        self.shared.ready.notify_one();
        true
    }

    // ANCHOR: try_submit
    /// Queues a request's sequences (one per choice) all or none: refused when they would make more
    /// than [`Limits::max_queue`] wait (unless none waits), or when, with others waiting, the batches
    /// ahead of them at the recent service time say they would finish only after `deadline`. Each is dropped
    /// before its prefill if `deadline` passes while it waits, and cut at `deadline` if it runs.
    ///
    /// # Errors
    /// [`Refused::QueueFull`] or [`Refused::DeadlineUnreachable`] with a retry estimate, or
    /// [`Refused::Stopped`].
    pub fn try_submit(&self, jobs: Vec<Job>, deadline: Option<Instant>) -> std::result::Result<(), Refused> {
        let mut queue = self.shared.lock();
        if queue.stopped {
            return Err(Refused::Stopped);
        }
        let waiting = queue.waiting.len();
        if waiting > 0 && waiting.saturating_add(jobs.len()) > self.limits.max_queue {
            return Err(Refused::QueueFull { waiting, retry_after: self.retry_after(waiting + jobs.len()) });
        }
        // The request's last sequence starts once everything ahead of it and its own others have,
        // then runs for about the recent service time. A slot frees when a running sequence ends;
        // at worst all of them have just started, so the k-th in line starts after ⌈k / batch⌉
        // service times. (The drain rate alone is no guide: it measures what admission let in, and
        // predicted short by up to a batch, which the soak benchmark saw as 504s.) Before any
        // sequence has finished, the drain rate is all there is.
        let (service, rate) = (self.stats.service_seconds(), self.stats.drain_rate());
        let in_line = waiting + jobs.len();
        let seconds = if service > 0.0 {
            Some((in_line.div_ceil(self.config.max_batch.max(1)) + 1) as f64 * service)
        } else {
            (rate > 0.0).then(|| in_line as f64 / rate)
        };
        if let Some(deadline) = deadline
            && waiting > 0
            && let Some(seconds) = seconds
        {
            let expected_finish = Duration::from_secs_f64(seconds.min(1e6));
            if Instant::now() + expected_finish.mul_f64(DEADLINE_MARGIN) >= deadline {
                let retry_after = self.retry_after(waiting);
                return Err(Refused::DeadlineUnreachable { waiting, expected_finish, retry_after });
            }
        }
        queue.waiting.extend(jobs.into_iter().map(|job| Queued { job, deadline }));
        self.stats.waiting.store(queue.waiting.len(), Ordering::Relaxed);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// How long `ahead` waiting sequences take to leave the queue at the recent drain rate, in whole
    /// seconds, at least 1 (without a recent rate: one second per batch ahead).
    pub fn retry_after(&self, ahead: usize) -> Duration {
        let rate = self.stats.drain_rate();
        let seconds =
            if rate > 0.0 { (ahead as f64 / rate).ceil() } else { ahead.div_ceil(self.config.max_batch.max(1)) as f64 };
        Duration::from_secs(seconds.clamp(1.0, 3600.0) as u64)
    }
    // ANCHOR_END: try_submit

    /// The engine's counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The engine's counters, shareable.
    pub fn stats_handle(&self) -> Arc<EngineStats> {
        self.stats.clone()
    }

    /// Its scheduling configuration.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Its admission limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// Drops waiting sequences whose client left or whose deadline passed (before their prefill).
fn purge(queue: &mut Queue, now: Instant, stats: &EngineStats, drained: &mut VecDeque<Instant>) {
    queue.waiting.retain(|q| {
        if q.job.events.is_closed() {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
        } else if q.deadline.is_some_and(|d| now >= d) {
            let _ = q.job.events.send(Event::Failed("the request's deadline passed while it waited".into()));
            stats.expired_waiting.fetch_add(1, Ordering::Relaxed);
        } else {
            return true;
        }
        drained.push_back(now);
        false
    });
}

/// Keeps the drain-rate window and publishes the rate.
fn publish_drain_rate(drained: &mut VecDeque<Instant>, now: Instant, stats: &EngineStats) {
    while drained.front().is_some_and(|&t| now.duration_since(t) > DRAIN_WINDOW) || drained.len() > 4096 {
        drained.pop_front();
    }
    let rate = match drained.front() {
        // Over the window, or over the span seen so far when the engine started recently.
        Some(&first) => drained.len() as f64 / now.duration_since(first).as_secs_f64().max(1.0),
        None => 0.0,
    };
    stats.drain_rate.store(rate.to_bits(), Ordering::Relaxed);
}

fn run(model: &LlamaModel, tokenizer: &Bpe, config: EngineConfig, shared: &Shared, stats: &EngineStats) {
    let mut running: Vec<Running> = Vec::new();
    let mut drained: VecDeque<Instant> = VecDeque::new();
    loop {
        // Admit: wait only when idle (waking for the nearest deadline of a waiting sequence).
        let mut queue = shared.lock();
        loop {
            let now = Instant::now();
            purge(&mut queue, now, stats, &mut drained);
            if !running.is_empty() || !queue.waiting.is_empty() {
                break;
            }
            stats.waiting.store(0, Ordering::Relaxed);
            publish_drain_rate(&mut drained, now, stats);
            if queue.closed {
                return;
            }
            queue = shared.ready.wait_timeout(queue, Duration::from_secs(1)).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        let now = Instant::now();
        let free = config.max_batch.max(1).saturating_sub(running.len());
        let take = free.min(queue.waiting.len());
        let starting: Vec<Queued> = queue.waiting.drain(..take).collect();
        stats.waiting.store(queue.waiting.len(), Ordering::Relaxed);
        drop(queue);
        for q in starting {
            drained.push_back(now);
            admit(model, config, q, &mut running);
        }
        publish_drain_rate(&mut drained, now, stats);
        // Cancelled requests leave before the step; expired ones are cut.
        running.retain(|r| {
            if r.job.events.is_closed() {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                false
            } else if r.expired(now) {
                // Counted before the client hears of it, so whoever waits on the event sees the count.
                stats.expired_running.fetch_add(1, Ordering::Relaxed);
                let _ = r.job.events.send(Event::Failed(format!(
                    "the request's deadline passed after {} generated tokens",
                    r.generated
                )));
                false
            } else {
                true
            }
        });
        stats.active.store(running.len(), Ordering::Relaxed);
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
            // A complete grammar ends the sequence as its end token would.
            let end = end.or_else(|| {
                r.job.extras.constraint.as_ref().is_some_and(Constraint::is_finished).then_some(FinishReason::Stop)
            });
            if let Some(finish) = end {
                // Counted before the client hears `Done`, so whoever waits on it sees the count.
                stats.finished.fetch_add(1, Ordering::Relaxed);
                stats.record_service(r.started.elapsed().as_secs_f64());
                finish_sequence(r, finish);
                finished.push(i);
            }
        }
        for &i in finished.iter().rev() {
            running.swap_remove(i);
        }
        stats.active.store(running.len(), Ordering::Relaxed);
    }
}

fn admit(model: &LlamaModel, config: EngineConfig, queued: Queued, running: &mut Vec<Running>) {
    let Queued { job, deadline } = queued;
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
        deadline,
        started: Instant::now(),
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
