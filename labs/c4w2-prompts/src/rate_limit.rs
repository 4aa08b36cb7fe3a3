//! Rate limits as token buckets (the algorithm of Turner, 1986, "New directions in
//! communications"; what API gateways such as Envoy, Kong and Mosaic AI Gateway enforce per key):
//! one bucket counts requests, another counts model tokens.
//!
//! A bucket holds up to `capacity` units and refills at `per_second` units per second,
//! continuously; a request takes units out or is refused with the time after which it would fit.
//! Time is passed in (`now`, time since any fixed origin), never read from the system clock, so a
//! test can replay any schedule exactly and a gateway can use one clock for every limit.

use std::time::Duration;

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// Most units the bucket holds (the burst).
    pub capacity: f64,
    /// Units added per second.
    pub per_second: f64,
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    config: BucketConfig,
    /// Units in the bucket at `updated`.
    level: f64,
    /// When `level` was last brought up to date.
    updated: Duration,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// It fits after waiting this long (the `Retry-After` of a 429).
    RetryAfter(Duration),
    /// It can never fit: it asks for more than the capacity.
    TooLarge,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(config: BucketConfig, now: Duration) -> TokenBucket {
        TokenBucket { config, level: config.capacity, updated: now }
    }

    // ANCHOR: refill
    /// Task c4w2.token-bucket: the units in the bucket at `now` (refilled since the last update,
    /// never above capacity; a `now` earlier than the last update counts as no time passing).
    /// Also records `now` as the last update.
    pub fn refill(&mut self, now: Duration) -> f64 {
        todo!("c4w2.token-bucket")
    }
    // ANCHOR_END: refill

    /// Task c4w2.token-bucket: whether `units` can be taken now, without taking them.
    ///
    /// # Errors
    /// [`Refusal::TooLarge`] when `units` exceeds the capacity; otherwise
    /// [`Refusal::RetryAfter`] with the wait until the bucket holds `units`
    /// (`(units - level) / per_second` seconds).
    pub fn check(&mut self, units: f64, now: Duration) -> Result<(), Refusal> {
        todo!("c4w2.token-bucket")
    }

    /// Task c4w2.token-bucket: takes `units` if [`TokenBucket::check`] allows it.
    ///
    /// # Errors
    /// As [`TokenBucket::check`]; a refused request takes nothing.
    pub fn try_take(&mut self, units: f64, now: Duration) -> Result<(), Refusal> {
        todo!("c4w2.token-bucket")
    }
}

/// A gateway's limit per API key: requests per second and model tokens per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimiter {
    /// One unit per request.
    pub requests: TokenBucket,
    /// One unit per token (prompt plus the completion's maximum).
    pub tokens: TokenBucket,
}

impl RateLimiter {
    /// Both buckets full at `now`.
    pub fn new(requests: BucketConfig, tokens: BucketConfig, now: Duration) -> RateLimiter {
        RateLimiter { requests: TokenBucket::new(requests, now), tokens: TokenBucket::new(tokens, now) }
    }

    // ANCHOR: admit
    /// Task c4w2.token-bucket (8 points in all): admits one request of `tokens` tokens: one unit
    /// from `requests` and `tokens` units from `tokens`, **both or neither** (a refused request
    /// must not use up the other bucket).
    ///
    /// # Errors
    /// [`Refusal::TooLarge`] if either bucket can never hold it, else the longer of the two waits.
    pub fn admit(&mut self, tokens: u32, now: Duration) -> Result<(), Refusal> {
        todo!("c4w2.token-bucket")
    }
    // ANCHOR_END: admit
}
