//! A daily cost budget that spills over to a cheaper backend before it refuses.
//!
//! A hosted model bills per token; a runaway client or a prompt loop can spend a month's budget in
//! an afternoon. A *circuit breaker on cost* bounds the day's spend: below a soft threshold
//! requests go to their preferred backend; above it (or when the preferred one no longer fits)
//! they *spill over* to the cheapest allowed backend that still fits, often a self-hosted model
//! whose marginal cost is zero; only when nothing fits is the request refused, until the budget
//! resets at the next UTC midnight (the day is `now_ms / 86_400_000`, as in `kernels::gateway::limits`).
//!
//! Money is counted in integer micro-USD, so sums and comparisons are exact.

use crate::tier::Backend;
use crate::{Error, Result};

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

// ANCHOR: budget
/// A daily budget's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// What one UTC day may cost, in micro-USD.
    pub daily_micro_usd: u64,
    /// From this share of the daily budget spent (0..=100), every request goes to the cheapest
    /// backend that fits.
    pub spill_at_percent: u8,
}

/// Where [`DailyBudget::choose`] sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The index of the backend (into the `backends` slice).
    pub backend: usize,
    /// Its estimated cost of the request, in micro-USD.
    pub cost_micro_usd: u64,
    /// Whether it is not the preferred (first) candidate.
    pub spilled: bool,
}

/// Task c4w6.budget (12 points, with [`DailyBudget`]): what `prompt_tokens` and
/// `completion_tokens` cost on `backend`, in micro-USD, rounded up:
/// `ceil((prompt_tokens × micro_usd_per_1k_prompt + completion_tokens × micro_usd_per_1k_completion) / 1000)`,
/// computed without overflow (in `u128`) and saturating at `u64::MAX`.
pub fn cost_micro_usd(backend: &Backend, prompt_tokens: u64, completion_tokens: u64) -> u64 {
    // BEGIN SOLUTION c4w6.budget
    let milli = (u128::from(prompt_tokens) * u128::from(backend.micro_usd_per_1k_prompt))
        .saturating_add(u128::from(completion_tokens) * u128::from(backend.micro_usd_per_1k_completion));
    u64::try_from(milli.div_ceil(1000)).unwrap_or(u64::MAX)
    // END SOLUTION
}

/// Today's spend against a daily budget.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    config: BudgetConfig,
    /// The UTC day (`now_ms / DAY_MS`) that `spent` belongs to.
    day: u64,
    /// Micro-USD spent that day.
    spent: u64,
}
// ANCHOR_END: budget

impl DailyBudget {
    /// Task c4w6.budget: a budget with nothing spent on the day of `now_ms`.
    /// [`Error::InvalidConfig`] when `spill_at_percent > 100`.
    pub fn new(config: BudgetConfig, now_ms: u64) -> Result<DailyBudget> {
        // BEGIN SOLUTION c4w6.budget
        if config.spill_at_percent > 100 {
            return Err(Error::InvalidConfig(format!("spill_at_percent {} is above 100", config.spill_at_percent)));
        }
        Ok(DailyBudget { config, day: now_ms / DAY_MS, spent: 0 })
        // END SOLUTION
    }

    /// Task c4w6.budget: micro-USD spent on the day of `now_ms`. A new day (`now_ms / DAY_MS`
    /// differs from the stored day) starts at 0; a time on an earlier day than the stored one
    /// changes nothing.
    pub fn spent(&mut self, now_ms: u64) -> u64 {
        // BEGIN SOLUTION c4w6.budget
        self.roll(now_ms);
        self.spent
        // END SOLUTION
    }

    /// Task c4w6.budget: adds what a served request cost (saturating), on the day of `now_ms`
    /// (rolled as in [`DailyBudget::spent`]).
    pub fn charge(&mut self, micro_usd: u64, now_ms: u64) {
        // BEGIN SOLUTION c4w6.budget
        self.roll(now_ms);
        self.spent = self.spent.saturating_add(micro_usd);
        // END SOLUTION
    }

    // ANCHOR: choose
    /// Task c4w6.budget: which of `candidates` (indices into `backends`, the preferred first)
    /// takes a request of `prompt_tokens` + `completion_tokens` at `now_ms`. Charges nothing.
    ///
    /// After rolling the day: `remaining = daily − spent` (0 when overspent). A backend *fits* when
    /// its [`cost_micro_usd`] is `<= remaining`. When the budget is not spilling
    /// (`spent × 100 < spill_at_percent × daily`) and the first candidate fits, it is chosen;
    /// otherwise the cheapest candidate that fits (the earlier one on a tie). `spilled` is whether
    /// the choice is not the first candidate. None fits: [`Error::BudgetExceeded`] with the
    /// milliseconds to the next UTC midnight. No candidates, or an index out of range:
    /// [`Error::InvalidInput`].
    pub fn choose(
        &mut self,
        backends: &[Backend],
        candidates: &[usize],
        prompt_tokens: u64,
        completion_tokens: u64,
        now_ms: u64,
    ) -> Result<Choice> {
        // BEGIN SOLUTION c4w6.budget
        let Some(&first) = candidates.first() else {
            return Err(Error::InvalidInput("no candidate backends".into()));
        };
        if let Some(&bad) = candidates.iter().find(|&&i| i >= backends.len()) {
            return Err(Error::InvalidInput(format!("candidate {bad} is not one of {} backends", backends.len())));
        }
        self.roll(now_ms);
        let remaining = self.config.daily_micro_usd.saturating_sub(self.spent);
        let spilling = u128::from(self.spent) * 100
            >= u128::from(self.config.spill_at_percent) * u128::from(self.config.daily_micro_usd);
        let cost = |i: usize| cost_micro_usd(&backends[i], prompt_tokens, completion_tokens);
        if !spilling && cost(first) <= remaining {
            return Ok(Choice { backend: first, cost_micro_usd: cost(first), spilled: false });
        }
        let mut best: Option<(u64, usize)> = None;
        for &i in candidates {
            let c = cost(i);
            if c <= remaining && best.is_none_or(|(b, _)| c < b) {
                best = Some((c, i));
            }
        }
        match best {
            Some((c, i)) => Ok(Choice { backend: i, cost_micro_usd: c, spilled: i != first }),
            None => Err(Error::BudgetExceeded { retry_after_ms: DAY_MS - now_ms % DAY_MS }),
        }
        // END SOLUTION
    }
    // ANCHOR_END: choose

    // BEGIN SOLUTION c4w6.budget delete
    fn roll(&mut self, now_ms: u64) {
        let day = now_ms / DAY_MS;
        if day > self.day {
            self.day = day;
            self.spent = 0;
        }
    }
    // END SOLUTION
}
