//! A micro-batcher with a deadline (the dynamic batching of Clipper, Crankshaw et al., NSDI 2017,
//! and Triton's `max_queue_delay`): requests of one row wait in a bounded queue; one worker thread
//! takes the first, gathers more until the batch holds [`BatchConfig::max_batch`] rows or
//! [`BatchConfig::max_delay`] has passed since the first one arrived, scores them with one call of
//! the scoring function, and answers each request through its [`Ticket`].
//!
//! This is the textbook deadline batcher: a lone request waits the whole delay for company.
//! `kernels::serve_model::batcher` adds adaptivity (it waits only when the scorer is saturated);
//! the graded benchmark compares your batcher with kernels' run with `adaptive: false`.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, Result, invalid};

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// A batch holds at most this many rows (≥ 1).
    pub max_batch: usize,
    /// Wait at most this long after the first request of a batch arrived (zero: take only what is
    /// already queued).
    pub max_delay: Duration,
    /// Requests that may wait in the queue (≥ 1); one more is [`Error::Busy`].
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_batch: 32, max_delay: Duration::from_millis(1), queue_capacity: 1024 }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The request's score.
    pub score: f32,
    /// Which batch scored it: 0, 1, 2, … in the order the worker scored them.
    pub batch: u64,
    /// How many rows that batch held.
    pub batch_rows: usize,
}

/// A request waiting in the queue (given).
#[derive(Debug)]
pub struct Job {
    /// The row's values.
    pub row: Vec<f32>,
    /// When [`Batcher::submit`] queued it.
    pub arrived: Instant,
    /// Where the answer goes.
    pub reply: mpsc::Sender<Result<Scored>>,
}

/// The promise of an answer, returned by [`Batcher::submit`].
#[derive(Debug)]
pub struct Ticket {
    rx: Receiver<Result<Scored>>,
}

impl Ticket {
    /// Makes a ticket from the receiving end of a job's reply channel (given).
    pub fn new(rx: Receiver<Result<Scored>>) -> Ticket {
        Ticket { rx }
    }

    /// Blocks until the request is answered (given). A reply channel dropped without an answer
    /// is [`Error::Closed`].
    pub fn wait(self) -> Result<Scored> {
        self.rx.recv().unwrap_or(Err(Error::Closed))
    }
}

/// The scoring function: `rows` rows, row-major in `data`, to one score per row.
pub type Scorer = Box<dyn FnMut(&[f32], usize) -> Vec<f32> + Send>;

/// A running micro-batcher: `submit` from any number of threads (`&self`), `shutdown` once.
pub struct Batcher {
    /// The queue's sending end; `None` after [`Batcher::shutdown`].
    tx: RwLock<Option<SyncSender<Job>>>,
    /// The worker; `None` after [`Batcher::shutdown`].
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Values per row.
    n_features: usize,
    /// The config it was started with.
    config: BatchConfig,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("n_features", &self.n_features).field("config", &self.config).finish()
    }
}

impl Batcher {
    // ANCHOR: start
    /// **Task `c3w4.micro-batcher` (15 points, with [`Batcher::submit`] and [`Batcher::shutdown`];
    /// and half of `c3w4.serving-bench`).** Checks the config, makes a bounded queue
    /// (`mpsc::sync_channel(queue_capacity)`) and starts the worker thread, which owns `scorer`:
    ///
    /// 1. Block for the first job (`recv`); stop when every sender is gone and the queue is empty.
    /// 2. `deadline = first.arrived + max_delay`. While the batch has fewer than `max_batch` rows:
    ///    take a job that is already queued (`try_recv`); else stop at the deadline; else wait for
    ///    one until the deadline (`recv_timeout`). A disconnected queue ends the gathering at once
    ///    (shutdown flushes, it does not wait for deadlines).
    /// 3. Concatenate the rows, call `scorer(&data, rows)` inside `std::panic::catch_unwind`
    ///    (`AssertUnwindSafe`): a panic answers every job of the batch [`Error::ScorerPanicked`]; a
    ///    result whose length is not `rows` answers [`Error::Scorer`]; else job `j` gets
    ///    `Scored { score: scores[j], batch, batch_rows }`. Number batches 0, 1, 2, …; ignore
    ///    send errors (a caller may have dropped its ticket). Then go back to 1.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `max_batch`, `queue_capacity` or `n_features` is 0.
    pub fn start(
        config: BatchConfig,
        n_features: usize,
        scorer: impl FnMut(&[f32], usize) -> Vec<f32> + Send + 'static,
    ) -> Result<Batcher> {
        todo!("c3w4.micro-batcher")
    }
    // ANCHOR_END: start

    // ANCHOR: submit
    /// **Task `c3w4.micro-batcher`.** Queues one row without blocking and returns its ticket.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `row` does not have `n_features` values, [`Error::Busy`] when
    /// the queue is full (`try_send`), [`Error::Closed`] after [`Batcher::shutdown`].
    pub fn submit(&self, row: Vec<f32>) -> Result<Ticket> {
        todo!("c3w4.micro-batcher")
    }
    // ANCHOR_END: submit

    /// **Task `c3w4.micro-batcher`.** Stops accepting requests, lets the worker answer every request
    /// already queued (without waiting for deadlines), and joins it. A second call does nothing.
    ///
    /// # Errors
    /// [`Error::ScorerPanicked`] if the worker thread itself panicked.
    pub fn shutdown(&self) -> Result<()> {
        todo!("c3w4.micro-batcher")
    }

    /// The config it was started with.
    pub fn config(&self) -> BatchConfig {
        self.config
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        drop(self.tx.get_mut().map(Option::take));
        if let Ok(slot) = self.worker.get_mut()
            && let Some(w) = slot.take()
        {
            let _ = w.join();
        }
    }
}
