//! Adaptive micro-batching (the dynamic batching of Clipper, Crankshaw et al., NSDI 2017, and Triton's
//! `max_queue_delay`): predict requests wait in a bounded queue; one scoring thread takes the first,
//! gathers more for at most [`BatchConfig::max_delay`] after it arrived (or until
//! [`BatchConfig::max_batch`] rows), scores them as one batch and answers each.
//!
//! *Adaptive*: waiting only pays when the scorer is the bottleneck. The batcher keeps exponentially
//! weighted means of the gap between arrivals and of the scoring time per request, and waits for more
//! only when (a) the scorer is busy more than half the time (utilisation ρ = cost ÷ gap > 0.5, Little's
//! law for one server) and (b) the next request is expected before the deadline. A cheap model at any
//! rate, or any model at a low rate, is scored at once, so batching adds no latency; a model whose
//! per-request cost approaches the gap gathers batches that amortise it. Requests already queued are
//! always taken without waiting (the backlog that forms while a batch is scored). With
//! `adaptive: false` it always waits the full delay (the textbook deadline batcher, whose throughput is
//! capped at in-flight requests ÷ delay: the benchmark's curve shows it).
//!
//! The queue is bounded ([`BatchConfig::queue_capacity`] requests): [`Batcher::submit`] never blocks,
//! it hands the job back when the queue is full and the server answers 503 with `Retry-After`. A job
//! carries the model it was validated against, so a batch that straddles a hot reload is scored in
//! one group per model and every answer is the model version that checked its rows.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use super::metrics::ServerMetrics;
use super::model::LoadedModel;

/// The channel a [`Job`]'s answer travels on, re-exported so that a caller without a tokio
/// dependency of its own (the c3w4 benchmark's harness) can submit jobs.
pub use tokio::sync::oneshot;

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    /// Stop gathering at this many rows (a request with more is scored alone).
    pub max_batch: usize,
    /// Wait at most this long after the first request of a batch arrived.
    pub max_delay: Duration,
    /// Requests that may wait; beyond, 503.
    pub queue_capacity: usize,
    /// Wait only while another request is expected in time (see the module docs).
    pub adaptive: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_batch: 64, max_delay: Duration::from_micros(500), queue_capacity: 1024, adaptive: true }
    }
}

/// What a scored job gets back: `rows × n_outputs` scores and the model that scored them, or why not.
pub type Scored = Result<(Vec<f32>, Arc<LoadedModel>), String>;

/// One request's rows, waiting to be scored.
#[derive(Debug)]
pub struct Job {
    /// The model its rows were validated against.
    pub model: Arc<LoadedModel>,
    /// Row-major values.
    pub data: Vec<f32>,
    /// Rows.
    pub rows: usize,
    /// When the request arrived.
    pub arrived: Instant,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Scored>,
}

/// The handle of a running batcher; dropping every handle stops its thread after the queued jobs.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
    alive: Arc<AtomicBool>,
    metrics: Arc<ServerMetrics>,
}

impl Batcher {
    /// Starts the scoring thread.
    pub fn start(config: BatchConfig, metrics: Arc<ServerMetrics>) -> Batcher {
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let alive = Arc::new(AtomicBool::new(true));
        let (a, m) = (alive.clone(), metrics.clone());
        let spawned = std::thread::Builder::new().name("serve-model-batcher".into()).spawn(move || {
            run(rx, config, &m);
            a.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            alive.store(false, Ordering::Release);
        }
        Batcher { tx, alive, metrics }
    }

    /// Whether the scoring thread runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Queues `job` without blocking; hands it back when the queue is full or the thread has stopped.
    ///
    /// # Errors
    /// The job, when it cannot be queued.
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Err(job)
            }
        }
    }
}

/// The mean gap between arrivals and scoring time per request (EWMAs, weight 1/8 for the newest) and
/// the last arrival.
#[derive(Default)]
struct Arrivals {
    gap: Option<Duration>,
    cost: Option<Duration>,
    last: Option<Instant>,
}

impl Arrivals {
    fn note(&mut self, job: &Job, metrics: &ServerMetrics) {
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        if let Some(prev) = self.last
            && job.arrived > prev
        {
            let g = job.arrived - prev;
            self.gap = Some(self.gap.map_or(g, |m| (m * 7 + g) / 8));
        }
        self.last = Some(self.last.map_or(job.arrived, |l| l.max(job.arrived)));
    }

    /// When the next request is expected (`None` before two have arrived).
    fn next_expected(&self) -> Option<Instant> {
        Some(self.last? + self.gap?)
    }

    /// Records that a batch of `requests` took `took` to score.
    fn scored(&mut self, requests: usize, took: Duration) {
        let per = took / requests.max(1) as u32;
        self.cost = Some(self.cost.map_or(per, |m| (m * 7 + per) / 8));
    }

    // ANCHOR: saturated
    /// Whether waiting for more can pay: the scorer is busy more than half the time.
    fn saturated(&self) -> bool {
        match (self.cost, self.gap) {
            (Some(cost), Some(gap)) => cost * 2 > gap,
            _ => false,
        }
    }
    // ANCHOR_END: saturated
}

// ANCHOR: gather
/// The scoring thread: gather, score, answer, until every sender is gone.
fn run(rx: Receiver<Job>, config: BatchConfig, metrics: &ServerMetrics) {
    let mut arrivals = Arrivals::default();
    while let Ok(first) = rx.recv() {
        arrivals.note(&first, metrics);
        let deadline = first.arrived + config.max_delay;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < config.max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    arrivals.note(&job, metrics);
                    rows += job.rows;
                    jobs.push(job);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Adaptive: wait only if the scorer is saturated and the next arrival is due before the deadline.
            if config.adaptive && (!arrivals.saturated() || arrivals.next_expected().is_none_or(|t| t > deadline)) {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(job) => {
                    arrivals.note(&job, metrics);
                    rows += job.rows;
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let (n, started) = (jobs.len(), Instant::now());
        score(jobs, metrics);
        arrivals.scored(n, started.elapsed());
    }
}
// ANCHOR_END: gather

/// Scores `jobs`, one batch per model, and answers each.
fn score(mut jobs: Vec<Job>, metrics: &ServerMetrics) {
    while !jobs.is_empty() {
        let model = jobs[0].model.clone();
        let (group, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| Arc::ptr_eq(&j.model, &model));
        jobs = rest;
        let rows: usize = group.iter().map(|j| j.rows).sum();
        metrics.batch_rows.observe(rows as f64);
        metrics.batch_requests.observe(group.len() as f64);
        let result = if let [one] = group.as_slice() {
            std::panic::catch_unwind(AssertUnwindSafe(|| model.predict(&one.data, one.rows)))
        } else {
            let mut data = Vec::with_capacity(rows * model.n_features());
            for j in &group {
                data.extend_from_slice(&j.data);
            }
            std::panic::catch_unwind(AssertUnwindSafe(|| model.predict(&data, rows)))
        };
        let k = model.n_outputs;
        match result {
            Ok(Ok(scores)) => {
                metrics.rows_scored.fetch_add(rows as u64, Ordering::Relaxed);
                let mut at = 0;
                for j in group {
                    let n = j.rows * k;
                    let _ = j.reply.send(Ok((scores[at..at + n].to_vec(), model.clone())));
                    at += n;
                }
            }
            Ok(Err(e)) => {
                for j in group {
                    let _ = j.reply.send(Err(e.to_string()));
                }
            }
            Err(_) => {
                for j in group {
                    let _ = j.reply.send(Err("the scorer panicked".to_string()));
                }
            }
        }
    }
}
