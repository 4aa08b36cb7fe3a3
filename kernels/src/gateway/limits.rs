//! API keys (stored as BLAKE3 hashes, compared in constant time), token-bucket rate limits on
//! requests and on tokens, and daily token and cost budgets.
//!
//! Token bucket: Turner, "New directions in communications (or which way to the information age?)",
//! IEEE Communications Magazine 24(10), 1986; the bucket holds at most `capacity` and refills at
//! `capacity` per minute. Requests take one from the request bucket before they are forwarded. The
//! tokens a request uses are known only afterwards, so the token bucket is charged then and may go
//! into debt; a key in debt is refused until the refill pays it back.
//! Budgets count per UTC day (the day of the gateway's [`Clock`](super::breaker::Clock)) and are
//! checked before a request is forwarded; the one that crosses a budget is served, the next refused.

use super::config::{KeyConfig, Tier};

/// A token bucket with fractional refill.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_ms: f64,
    level: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity` refilled at `capacity` per minute.
    pub fn per_minute(capacity: u64, now_ms: u64) -> TokenBucket {
        let capacity = capacity as f64;
        TokenBucket { capacity, per_ms: capacity / 60_000.0, level: capacity, last_ms: now_ms }
    }

    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last_ms) as f64;
        self.level = (self.level + dt * self.per_ms).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// The level at `now_ms` (negative when in debt).
    pub fn level(&mut self, now_ms: u64) -> f64 {
        self.refill(now_ms);
        self.level
    }

    /// Takes `n` if the bucket holds them; else `Err(ms)` until it will.
    ///
    /// # Errors
    /// The milliseconds to wait (rounded up), when the bucket holds fewer than `n`.
    pub fn try_take(&mut self, n: f64, now_ms: u64) -> std::result::Result<(), u64> {
        self.refill(now_ms);
        if self.level >= n {
            self.level -= n;
            Ok(())
        } else {
            Err(((n - self.level) / self.per_ms).ceil() as u64)
        }
    }

    /// Whether the bucket is out of debt (level ≥ 0); else `Err(ms)` until it will be.
    ///
    /// # Errors
    /// The milliseconds until the debt is paid back.
    pub fn check_no_debt(&mut self, now_ms: u64) -> std::result::Result<(), u64> {
        self.refill(now_ms);
        if self.level >= 0.0 { Ok(()) } else { Err((-self.level / self.per_ms).ceil() as u64) }
    }

    /// Charges `n` (may go into debt).
    pub fn charge(&mut self, n: f64, now_ms: u64) {
        self.refill(now_ms);
        self.level -= n;
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A rate limit: retry after this many milliseconds.
    RateLimited {
        /// Which limit (`requests_per_minute`, `tokens_per_minute`).
        limit: &'static str,
        /// Wait before retrying.
        retry_after_ms: u64,
    },
    /// A daily budget is spent: retry after the next UTC midnight.
    BudgetExceeded {
        /// Which budget (`daily_tokens`, `daily_cost_usd`).
        budget: &'static str,
        /// Milliseconds until the budget resets.
        retry_after_ms: u64,
    },
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// One key's limits and today's use.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// Its configuration.
    pub config: KeyConfig,
    hash: blake3::Hash,
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    day: u64,
    tokens_today: u64,
    cost_today: f64,
}

impl KeyState {
    /// A key with full buckets and nothing spent.
    ///
    /// # Panics
    /// If `config.blake3` is not 64 hex digits ([`super::GatewayConfig::validate`] checks it).
    pub fn new(config: KeyConfig, now_ms: u64) -> KeyState {
        let hash = blake3::Hash::from_hex(config.blake3.to_ascii_lowercase()).expect("validated key hash");
        KeyState {
            hash,
            requests: config.requests_per_minute.map(|r| TokenBucket::per_minute(u64::from(r), now_ms)),
            tokens: config.tokens_per_minute.map(|t| TokenBucket::per_minute(t, now_ms)),
            day: now_ms / DAY_MS,
            tokens_today: 0,
            cost_today: 0.0,
            config,
        }
    }

    /// The key's tier.
    pub fn tier(&self) -> Tier {
        self.config.tier
    }

    fn roll_day(&mut self, now_ms: u64) {
        if now_ms / DAY_MS != self.day {
            self.day = now_ms / DAY_MS;
            self.tokens_today = 0;
            self.cost_today = 0.0;
        }
    }

    // ANCHOR: admit
    /// Admits one request now (taking from the request bucket) or says why not. Budgets are checked
    /// first, so a key out of budget does not also spend its request bucket.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn admit(&mut self, now_ms: u64) -> std::result::Result<(), Refusal> {
        self.roll_day(now_ms);
        let to_midnight = DAY_MS - now_ms % DAY_MS;
        if self.config.daily_tokens.is_some_and(|b| self.tokens_today >= b) {
            return Err(Refusal::BudgetExceeded { budget: "daily_tokens", retry_after_ms: to_midnight });
        }
        if self.cost_spent(now_ms) {
            return Err(Refusal::BudgetExceeded { budget: "daily_cost_usd", retry_after_ms: to_midnight });
        }
        self.admit_spillable(now_ms).map(|_| ())
    }

    /// Whether today's cost budget is spent.
    pub fn cost_spent(&mut self, now_ms: u64) -> bool {
        self.roll_day(now_ms);
        self.config.daily_cost_usd.is_some_and(|b| self.cost_today >= b)
    }

    /// [`KeyState::admit`] except for the cost budget, which may be spent: the request may still go
    /// to a cheaper backend (`spill_to`). Returns whether the cost budget is spent.
    ///
    /// # Errors
    /// The [`Refusal`] (rate limits, the token budget).
    pub fn admit_spillable(&mut self, now_ms: u64) -> std::result::Result<bool, Refusal> {
        self.roll_day(now_ms);
        let to_midnight = DAY_MS - now_ms % DAY_MS;
        if self.config.daily_tokens.is_some_and(|b| self.tokens_today >= b) {
            return Err(Refusal::BudgetExceeded { budget: "daily_tokens", retry_after_ms: to_midnight });
        }
        let spent = self.cost_spent(now_ms);
        if let Some(t) = &mut self.tokens
            && let Err(ms) = t.check_no_debt(now_ms)
        {
            return Err(Refusal::RateLimited { limit: "tokens_per_minute", retry_after_ms: ms });
        }
        if let Some(r) = &mut self.requests
            && let Err(ms) = r.try_take(1.0, now_ms)
        {
            return Err(Refusal::RateLimited { limit: "requests_per_minute", retry_after_ms: ms });
        }
        Ok(spent)
    }
    // ANCHOR_END: admit

    /// Charges what an answered request used.
    pub fn charge(&mut self, tokens: u64, cost_usd: f64, now_ms: u64) {
        self.roll_day(now_ms);
        self.tokens_today += tokens;
        self.cost_today += cost_usd;
        if let Some(t) = &mut self.tokens {
            t.charge(tokens as f64, now_ms);
        }
    }

    /// Tokens and USD spent today.
    pub fn spent_today(&self) -> (u64, f64) {
        (self.tokens_today, self.cost_today)
    }
}

/// Finds the key whose hash is BLAKE3(`presented`), comparing with every stored hash in constant
/// time (`blake3::Hash`'s equality is constant-time) and without stopping at the first match, so the
/// time taken does not depend on which key matched or how much of a hash did.
pub fn find_key(keys: &[blake3::Hash], presented: &str) -> Option<usize> {
    let h = blake3::hash(presented.as_bytes());
    let mut found = None;
    for (i, k) in keys.iter().enumerate() {
        if *k == h {
            found = Some(i);
        }
    }
    found
}

impl KeyState {
    /// The stored hash.
    pub fn hash(&self) -> blake3::Hash {
        self.hash
    }
}
