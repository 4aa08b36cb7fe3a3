//! A canary controller: a new version gets a growing share of traffic, one step per healthy
//! window, and is rolled back as soon as a window breaks its error-rate or latency limit.
//!
//! The practice of *Site Reliability Engineering* (Google, 2016), ch. 8 and *The Site Reliability
//! Workbook*, ch. 16 "Canarying Releases": expose few users first, judge the canary on the same
//! SLIs as the service (error rate, tail latency) over a window long enough to have seen enough
//! requests, promote step by step, and make rollback automatic. A request goes to the canary by a
//! sticky hash of its key (FNV-1a, 64 bits), so a user does not flip between versions.

use crate::{Error, Result};

/// FNV-1a, 64 bits (Fowler, Noll, Vo; offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`). Given.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ANCHOR: canary
/// A canary rollout's plan and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    /// Traffic percentages, strictly ascending, each in 1..=100, the last 100 (e.g. 1, 5, 25, 50, 100).
    pub steps: Vec<u8>,
    /// A window with fewer requests than this is not judged.
    pub min_requests: u64,
    /// The largest acceptable error rate (errors / requests) in a window, in `[0, 1]`.
    pub max_error_rate: f64,
    /// The largest acceptable 99th-percentile latency in a window, in seconds (positive).
    pub max_p99_s: f64,
}

/// What the canary did during one evaluation window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Requests it answered.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their 99th-percentile latency in seconds (e.g. `histogram_quantile(0.99, …)`).
    pub p99_s: f64,
}

/// Which limit a window broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Error rate above `max_error_rate`.
    ErrorRate,
    /// p99 latency above `max_p99_s` (or not a number).
    Latency,
}

/// What the controller decided after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not enough requests to judge: keep the current share for another window.
    Hold,
    /// Healthy: the canary now gets this percentage.
    Advance {
        /// The new share.
        percent: u8,
    },
    /// Healthy at the last step: the new version takes all traffic (100 %), for good.
    Promote,
    /// A limit was broken: all traffic back to the old version (0 %), for good.
    Rollback(Breach),
    /// The rollout already ended (promoted or rolled back); nothing changes.
    Done,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running(usize),
    Promoted,
    RolledBack,
}

/// A canary rollout in progress.
#[derive(Debug, Clone)]
pub struct Canary {
    config: CanaryConfig,
    phase: Phase,
}
// ANCHOR_END: canary

impl Canary {
    /// Task c4w6.canary (10 points, with [`Canary::percent`], [`Canary::evaluate`] and
    /// [`Canary::routes_to_canary`]): a rollout at its first step.
    ///
    /// [`Error::InvalidConfig`] when the steps are empty, not strictly ascending, outside 1..=100 or
    /// do not end at 100; when `max_error_rate` is not in `[0, 1]`; when `max_p99_s` is not finite
    /// and positive.
    pub fn new(config: CanaryConfig) -> Result<Canary> {
        todo!("c4w6.canary")
    }

    /// Task c4w6.canary: the canary's share of traffic now: the current step's percentage while
    /// running, 100 once promoted, 0 once rolled back.
    pub fn percent(&self) -> u8 {
        todo!("c4w6.canary")
    }

    // ANCHOR: evaluate
    /// Task c4w6.canary: judges one window and moves the rollout.
    ///
    /// In this order: an ended rollout → [`Action::Done`]; `requests < min_requests` →
    /// [`Action::Hold`]; `errors as f64 / requests as f64 > max_error_rate` →
    /// `Rollback(ErrorRate)`; `p99_s > max_p99_s` or NaN → `Rollback(Latency)`; otherwise healthy:
    /// at the last step → [`Action::Promote`], else the next step → `Advance { percent }`.
    /// (`errors > requests` counts as an error-rate breach.)
    pub fn evaluate(&mut self, window: &WindowStats) -> Action {
        todo!("c4w6.canary")
    }
    // ANCHOR_END: evaluate

    /// Task c4w6.canary: whether the request with this key goes to the canary now:
    /// `fnv1a64(key) % 100 < percent()`. Sticky: a key that reached the canary at one percentage
    /// still does at every larger one.
    pub fn routes_to_canary(&self, key: &str) -> bool {
        todo!("c4w6.canary")
    }
}
