//! Retry policy: exponential backoff with jitter for transient MLflow failures.
//!
//! What counts as transient follows MLflow's REST API error model
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html>): a connection
//! that could not be made or broke, `429 Too Many Requests` and any `5xx` are
//! retried; every other `4xx` is the caller's mistake (bad parameter, missing
//! resource, duplicate name) and is returned at once.

use std::time::Duration;

/// How often and how patiently a request is retried.
///
/// The delay before retry `n` (1-based) is `initial_backoff * multiplier^(n-1)`,
/// capped at `max_backoff`, then shortened by a random fraction of up to
/// `jitter` so that many clients retrying at once spread out. A `Retry-After`
/// header from the server (429/503) replaces the computed delay, still capped.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of any single delay.
    pub max_backoff: Duration,
    /// Growth factor between consecutive delays (≥ 1).
    pub multiplier: f64,
    /// Fraction of each delay that is randomised away, in `[0, 1]` (0 = deterministic).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 attempts, 200 ms doubling up to 5 s, 50 % jitter: rides out a server
    /// restart of a few seconds without hammering it.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The un-jittered delay before retry `retry` (1-based), capped at `max_backoff`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let cap = self.max_backoff.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(cap) } else { cap })
    }

    /// The delay before retry `retry` with jitter drawn from `unit`, a number in `[0, 1)`.
    ///
    /// Pure so that it can be tested: the client passes a fresh random number.
    pub fn jittered(&self, retry: u32, unit: f64) -> Duration {
        let base = self.backoff(retry);
        let cut = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        base.mul_f64(1.0 - cut)
    }

    /// The delay before retry `retry`, with fresh jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.jittered(retry, rand::random::<f64>())
    }

    /// Whether an HTTP status is worth retrying: 429 and every 5xx.
    pub fn is_retryable_status(status: u16) -> bool {
        status == 429 || (500..600).contains(&status)
    }
}
