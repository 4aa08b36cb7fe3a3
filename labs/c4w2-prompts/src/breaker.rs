//! A circuit breaker (Nygard, "Release It!", 2007; the pattern of Hystrix, resilience4j and
//! Envoy's outlier detection): stop sending requests to a backend that keeps failing, and probe
//! it carefully before trusting it again.
//!
//! ```text
//!   Closed ──(failure_threshold failures in a row)──▶ Open
//!   Open ──(open_for elapsed)──▶ HalfOpen
//!   HalfOpen ──(close_after successes)──▶ Closed
//!   HalfOpen ──(any failure)──▶ Open (for open_for again)
//! ```
//!
//! In half-open, at most `half_open_probes` requests may be in flight at once: a backend that
//! is just recovering must not receive the whole queue. Time is passed in (`now`).

use std::time::Duration;

/// The breaker's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets probes through.
    pub open_for: Duration,
    /// Requests allowed in flight at once while half-open.
    pub half_open_probes: u32,
    /// Successful probes that close a half-open breaker.
    pub close_after: u32,
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests pass; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Requests are refused until `until`.
    Open {
        /// When probing may start.
        until: Duration,
    },
    /// A few probes pass.
    HalfOpen {
        /// Probes in flight.
        in_flight: u32,
        /// Successful probes so far.
        successes: u32,
    },
}

/// A circuit breaker in front of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: State,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker { config, state: State::Closed { failures: 0 } }
    }

    /// The state as last updated (see [`CircuitBreaker::state`] for the state at a time).
    pub fn raw_state(&self) -> State {
        self.state
    }

    // ANCHOR: breaker
    /// Task c4w2.circuit-breaker: the state at `now`: an open breaker whose `until` has come is
    /// half-open with nothing in flight (record that).
    pub fn state(&mut self, now: Duration) -> State {
        todo!("c4w2.circuit-breaker")
    }

    /// Task c4w2.circuit-breaker (10 points in all): may a request go to the backend at `now`?
    /// Closed: yes. Open: no. Half-open: yes while fewer than `half_open_probes` are in flight
    /// (count this one in).
    ///
    /// # Errors
    /// The time left until the breaker lets probes through (zero when half-open and full).
    pub fn try_acquire(&mut self, now: Duration) -> Result<(), Duration> {
        todo!("c4w2.circuit-breaker")
    }

    /// Task c4w2.circuit-breaker: a request let through succeeded. Closed: the failure count
    /// goes back to 0. Half-open: one probe fewer in flight, one success more; `close_after`
    /// successes close the breaker. Open: ignored (a request from before it opened).
    pub fn on_success(&mut self, now: Duration) {
        todo!("c4w2.circuit-breaker")
    }

    /// Task c4w2.circuit-breaker: a request let through failed. Closed: one more failure in a
    /// row; at `failure_threshold` the breaker opens until `now + open_for`. Half-open: it opens
    /// again until `now + open_for`. Open: ignored.
    pub fn on_failure(&mut self, now: Duration) {
        todo!("c4w2.circuit-breaker")
    }
    // ANCHOR_END: breaker
}
