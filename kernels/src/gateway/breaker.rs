//! A circuit breaker per backend (closed → open → half-open → closed), and the gateway's clock.
//!
//! The pattern is Nygard's (*Release It!*, 2nd ed., ch. 5 "Circuit Breaker"); the thresholds are
//! [`BreakerConfig`]'s. Closed: requests pass, `failure_threshold` consecutive failures open it.
//! Open: requests are refused for `open_ms`. Half-open: up to `half_open_probes` requests pass at
//! once; a success closes the breaker, a failure opens it again for another `open_ms`.
//! Time comes from a [`Clock`] passed in, so the tests move it by hand instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::BreakerConfig;

/// Milliseconds since the Unix epoch: the system's, or a hand-moved one in tests.
#[derive(Debug, Clone)]
pub enum Clock {
    /// `SystemTime::now()`.
    System,
    /// A shared counter moved by [`Clock::advance`].
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (the system clock ignores it).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests pass; counts consecutive failures.
    Closed {
        /// Failures in a row so far.
        failures: u32,
    },
    /// Requests are refused until `until_ms`.
    Open {
        /// When probes may start.
        until_ms: u64,
    },
    /// Probes pass, at most `half_open_probes` at once.
    HalfOpen {
        /// Probes in flight.
        probes: u32,
    },
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open (the `/metrics` gauge).
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed { .. } => 0,
            BreakerState::HalfOpen { .. } => 1,
            BreakerState::Open { .. } => 2,
        }
    }
}

/// One backend's breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker { config, state: BreakerState::Closed { failures: 0 } }
    }

    /// The state at `now_ms` (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.state {
            BreakerState::Open { until_ms } if now_ms >= until_ms => BreakerState::HalfOpen { probes: 0 },
            s => s,
        }
    }

    /// Whether a request may go now; if it may, it is counted (a half-open probe) until
    /// [`CircuitBreaker::on_success`] or [`CircuitBreaker::on_failure`] reports its outcome.
    pub fn try_acquire(&mut self, now_ms: u64) -> bool {
        self.state = self.state(now_ms);
        match &mut self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { probes } if *probes < self.config.half_open_probes => {
                *probes += 1;
                true
            }
            BreakerState::HalfOpen { .. } => false,
        }
    }

    /// A request let through succeeded (the backend answered, 2xx or a client error).
    pub fn on_success(&mut self, _now_ms: u64) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// A request let through failed (connect error, timeout, 5xx, a broken stream).
    pub fn on_failure(&mut self, now_ms: u64) {
        let open = BreakerState::Open { until_ms: now_ms.saturating_add(self.config.open_ms) };
        self.state = match self.state(now_ms) {
            BreakerState::Closed { failures } if failures + 1 >= self.config.failure_threshold => open,
            BreakerState::Closed { failures } => BreakerState::Closed { failures: failures + 1 },
            BreakerState::HalfOpen { .. } | BreakerState::Open { .. } => open,
        };
    }

    /// A request let through ended without a verdict on the backend (the client went away, a 429):
    /// frees its half-open probe slot.
    pub fn on_neutral(&mut self, now_ms: u64) {
        if let BreakerState::HalfOpen { probes } = self.state(now_ms) {
            self.state = BreakerState::HalfOpen { probes: probes.saturating_sub(1) };
        }
    }
}
