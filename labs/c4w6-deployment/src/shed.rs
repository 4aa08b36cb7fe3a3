//! Load shedding by priority: a token bucket whose last tokens are kept for the more important
//! requests.
//!
//! A server that accepts more than it can serve makes every request slow; one that refuses early
//! (HTTP 503 or 429 with `Retry-After`, RFC 9110 §10.2.3) keeps the accepted ones fast. A token
//! bucket (Turner, IEEE Communications Magazine 24(10), 1986) admits bursts up to its capacity and
//! a sustained rate equal to its refill. Priorities share one bucket, but priority `p` may only
//! take a token while more than `reserves[p]` remain: health checks and paying customers still
//! get in when batch jobs are already refused (the idea of Google's "criticality" classes, *Site
//! Reliability Engineering*, ch. 21). The clock is passed in (milliseconds), so tests choose time.
//!
//! Arithmetic is in integers: the level is counted in milli-tokens, and a refill of `r` tokens per
//! second adds exactly `r` milli-tokens per millisecond.

use crate::{Error, Result};

// ANCHOR: shed-config
/// A shedder's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShedConfig {
    /// Tokens in a full bucket (the largest burst), at least 1.
    pub capacity: u64,
    /// Tokens added per second (0: never refills).
    pub refill_per_s: u64,
    /// One entry per priority, 0 the most important: tokens priority `p` must leave in the bucket.
    /// `reserves[0] == 0`, non-decreasing, and every reserve below `capacity`.
    pub reserves: Vec<u64>,
}

/// What [`Shedder::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it (one token was taken).
    Admit,
    /// Refuse it; retrying after this many milliseconds would be admitted if nothing else arrives
    /// (`None`: the bucket never refills).
    Shed {
        /// The `Retry-After` estimate in milliseconds.
        retry_after_ms: Option<u64>,
    },
}
// ANCHOR_END: shed-config

/// A token bucket shared by several priorities.
#[derive(Debug, Clone)]
pub struct Shedder {
    config: ShedConfig,
    /// The level in milli-tokens, at most `capacity × 1000`.
    level_milli: u64,
    /// The time of the last refill.
    last_ms: u64,
}

// ANCHOR: admit
impl Shedder {
    /// Task c4w6.shed (12 points, with [`Shedder::level_milli`] and [`Shedder::admit`]): a full
    /// bucket at `now_ms`.
    ///
    /// [`Error::InvalidConfig`] when `capacity` is 0, `reserves` is empty, `reserves[0] != 0`, the
    /// reserves decrease, or the last reserve is `>= capacity`.
    pub fn new(config: ShedConfig, now_ms: u64) -> Result<Shedder> {
        todo!("c4w6.shed")
    }

    /// Task c4w6.shed: the level in milli-tokens at `now_ms`, after the refill.
    ///
    /// Refill: `elapsed = now_ms − last` milliseconds (0 when the clock went backwards; `last`
    /// then stays where it was) add `elapsed × refill_per_s` milli-tokens (saturating), capped at
    /// `capacity × 1000`; `last` becomes `now_ms` when it moved forward.
    pub fn level_milli(&mut self, now_ms: u64) -> u64 {
        todo!("c4w6.shed")
    }

    /// Task c4w6.shed: admits a request of `priority` at `now_ms`, or sheds it.
    ///
    /// After the refill ([`Shedder::level_milli`]), the request needs
    /// `need = (reserves[priority] + 1) × 1000` milli-tokens in the bucket: then 1000 are taken and
    /// it is admitted. Otherwise it is shed with `retry_after_ms = ceil((need − level) /
    /// refill_per_s)`, or `None` when `refill_per_s` is 0. A priority without a reserve entry is
    /// [`Error::InvalidInput`].
    pub fn admit(&mut self, priority: usize, now_ms: u64) -> Result<Decision> {
        todo!("c4w6.shed")
    }
}
// ANCHOR_END: admit
