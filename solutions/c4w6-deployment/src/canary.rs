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
        // BEGIN SOLUTION c4w6.canary
        let bad = |why: &str| Err(Error::InvalidConfig(why.to_string()));
        if config.steps.last() != Some(&100) {
            return bad("steps must end at 100");
        }
        if config.steps.iter().any(|&s| s == 0 || s > 100) || config.steps.windows(2).any(|w| w[0] >= w[1]) {
            return bad("steps must ascend strictly within 1..=100");
        }
        if !(0.0..=1.0).contains(&config.max_error_rate) {
            return bad("max_error_rate must be in [0, 1]");
        }
        if !(config.max_p99_s.is_finite() && config.max_p99_s > 0.0) {
            return bad("max_p99_s must be finite and positive");
        }
        Ok(Canary { config, phase: Phase::Running(0) })
        // END SOLUTION
    }

    /// Task c4w6.canary: the canary's share of traffic now: the current step's percentage while
    /// running, 100 once promoted, 0 once rolled back.
    pub fn percent(&self) -> u8 {
        // BEGIN SOLUTION c4w6.canary
        match self.phase {
            Phase::Running(step) => self.config.steps[step],
            Phase::Promoted => 100,
            Phase::RolledBack => 0,
        }
        // END SOLUTION
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
        // BEGIN SOLUTION c4w6.canary
        let Phase::Running(step) = self.phase else { return Action::Done };
        if window.requests < self.config.min_requests {
            return Action::Hold;
        }
        let error_rate = window.errors as f64 / window.requests as f64;
        let breach = if error_rate > self.config.max_error_rate || window.errors > window.requests {
            Some(Breach::ErrorRate)
        } else if window.p99_s.is_nan() || window.p99_s > self.config.max_p99_s {
            Some(Breach::Latency)
        } else {
            None
        };
        if let Some(breach) = breach {
            self.phase = Phase::RolledBack;
            return Action::Rollback(breach);
        }
        if step + 1 == self.config.steps.len() {
            self.phase = Phase::Promoted;
            Action::Promote
        } else {
            self.phase = Phase::Running(step + 1);
            Action::Advance { percent: self.config.steps[step + 1] }
        }
        // END SOLUTION
    }
    // ANCHOR_END: evaluate

    /// Task c4w6.canary: whether the request with this key goes to the canary now:
    /// `fnv1a64(key) % 100 < percent()`. Sticky: a key that reached the canary at one percentage
    /// still does at every larger one.
    pub fn routes_to_canary(&self, key: &str) -> bool {
        // BEGIN SOLUTION c4w6.canary
        fnv1a64(key.as_bytes()) % 100 < u64::from(self.percent())
        // END SOLUTION
    }
}
