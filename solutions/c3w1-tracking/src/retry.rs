//! The retry policy: exponential backoff with jitter, and which failures are worth another attempt.
//!
//! A tracking client talks to a server that restarts, sits behind a load
//! balancer that answers 503 while it does, or rate-limits with 429. Those are
//! **transient**: the same request may well succeed a moment later. A 400
//! (`INVALID_PARAMETER_VALUE`, `RESOURCE_ALREADY_EXISTS`) or a 404
//! (`RESOURCE_DOES_NOT_EXIST`) is the caller's mistake and will fail the same
//! way every time, so it is returned at once.
//!
//! Retrying is only safe because MLflow's writes are (nearly) idempotent:
//! logging the same metric point twice stores one point, re-logging a param
//! with the same value is accepted, setting a tag twice is the same as once.
//! (`experiments/create` is the exception: a retried create whose first
//! attempt did land answers `RESOURCE_ALREADY_EXISTS`.)

use std::time::Duration;

use crate::Error;

// ANCHOR: retry_policy
/// How often and how patiently a request is retried.
///
/// The delay before retry `n` (1-based: the wait after the first failed
/// attempt is retry 1) is `initial_backoff · multiplierⁿ⁻¹`, capped at
/// `max_backoff`, then shortened by a random fraction of up to `jitter`, so
/// that many clients that failed together do not come back together.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of any single delay.
    pub max_backoff: Duration,
    /// Growth factor between consecutive delays (values below 1 count as 1).
    pub multiplier: f64,
    /// Fraction of each delay that may be randomised away, in `[0, 1]` (0 = deterministic).
    pub jitter: f64,
}
// ANCHOR_END: retry_policy

impl Default for RetryPolicy {
    /// 5 attempts, 200 ms doubling up to 5 s, 50 % jitter: rides out a server
    /// restart of a few seconds without hammering it. Given.
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
    /// A policy that makes exactly one attempt. Given.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Task c3w1.retry (part of 10 points): the delay before retry `retry`
    /// (1-based) **without** jitter: `initial_backoff · multiplier^(retry−1)`,
    /// capped at `max_backoff`.
    ///
    /// A multiplier below 1 counts as 1; `retry` 0 is treated like 1. Must not
    /// overflow or panic for a huge `retry` (the cap applies).
    pub fn backoff(&self, retry: u32) -> Duration {
        // BEGIN SOLUTION c3w1.retry
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let cap = self.max_backoff.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(cap) } else { cap })
        // END SOLUTION
    }

    /// Task c3w1.retry (part of 10 points): the delay before retry `retry`
    /// with jitter drawn from `unit`, a random number in `[0, 1)`:
    /// `backoff(retry) · (1 − jitter · unit)`.
    ///
    /// So the delay lies in `[backoff · (1 − jitter), backoff]`: jitter only
    /// ever shortens it. Clamp `jitter` and `unit` to `[0, 1]` first. Pure, so
    /// that it can be tested; [`RetryPolicy::delay`] passes a fresh random number.
    pub fn jittered(&self, retry: u32, unit: f64) -> Duration {
        // BEGIN SOLUTION c3w1.retry
        let cut = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        self.backoff(retry).mul_f64(1.0 - cut)
        // END SOLUTION
    }

    /// The delay before retry `retry`, with fresh jitter. Given.
    pub fn delay(&self, retry: u32) -> Duration {
        self.jittered(retry, rand::random::<f64>())
    }
}

/// Task c3w1.retry (part of 10 points): whether an HTTP status is worth
/// retrying: 429 (too many requests) and every 5xx. Nothing else.
pub fn is_retryable_status(status: u16) -> bool {
    // BEGIN SOLUTION c3w1.retry
    status == 429 || (500..600).contains(&status)
    // END SOLUTION
}

/// Task c3w1.retry (part of 10 points): whether `err` is worth another attempt.
///
/// - [`Error::Mlflow`]: when its status is retryable ([`is_retryable_status`]);
/// - [`Error::Transport`]: when the request never got a usable answer —
///   connection refused or reset, timeout, a body cut off. A request that
///   could not even be built (`source.is_builder()`) would fail again, and so
///   would a redirect loop (`is_redirect()`): not those;
/// - every other error: no.
pub fn is_retryable(err: &Error) -> bool {
    // BEGIN SOLUTION c3w1.retry
    match err {
        Error::Mlflow { status, .. } => is_retryable_status(*status),
        Error::Transport { source, .. } => !(source.is_builder() || source.is_redirect()),
        _ => false,
    }
    // END SOLUTION
}
