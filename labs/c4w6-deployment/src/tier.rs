//! Privacy tiers: which backends may see a request, decided before any routing.
//!
//! The same rule as `kernels::gateway` (`config::Tier`, `route::eligible`): a key of tier `t`
//! reaches only backends of tier `<= t`. A `sovereign` request goes only to machines you run, a
//! `private` one also to providers under a contract that keeps no data, a `standard` one anywhere.
//! The filter runs first and everything after it (priorities, budgets, spill-over, retries) chooses
//! only among what it returned, so no later rule (a cheaper backend, a failover) can send data
//! where it must not go.

use crate::budget::{Choice, DailyBudget};
use crate::{Error, Result};

// ANCHOR: tier
/// Where a request's data may go, from the most to the least restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Only machines you control.
    Sovereign,
    /// Also contracted providers that keep no data.
    Private,
    /// Any backend.
    Standard,
}

/// A backend the router may send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its name (unique).
    pub name: String,
    /// Its privacy tier.
    pub tier: Tier,
    /// The model ids it serves.
    pub models: Vec<String>,
    /// Price of 1,000 prompt tokens in micro-USD (1 USD = 1,000,000).
    pub micro_usd_per_1k_prompt: u64,
    /// Price of 1,000 completion tokens in micro-USD.
    pub micro_usd_per_1k_completion: u64,
}

impl Tier {
    /// Task c4w6.tier (8 points, with [`Tier::admits`], [`eligible`] and [`route`]): the tier
    /// named `sovereign`, `private` or `standard` (lowercase only; anything else is
    /// [`Error::InvalidInput`]).
    pub fn parse(name: &str) -> Result<Tier> {
        todo!("c4w6.tier")
    }

    /// The lowercase name. Given.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Sovereign => "sovereign",
            Tier::Private => "private",
            Tier::Standard => "standard",
        }
    }

    /// Task c4w6.tier: whether a request of this tier may be sent to a backend of tier `backend`
    /// (the backend's tier is at most this one).
    pub fn admits(self, backend: Tier) -> bool {
        todo!("c4w6.tier")
    }
}
// ANCHOR_END: tier

// ANCHOR: route
/// Task c4w6.tier: the indices of the backends that serve `model` and that a request of `tier`
/// may reach, in the order of `backends`.
///
/// [`Error::UnknownModel`] when no backend serves the model at all; [`Error::OutsideTier`] (with
/// the tier's lowercase name) when some serve it but none within the tier.
pub fn eligible(backends: &[Backend], model: &str, tier: Tier) -> Result<Vec<usize>> {
    todo!("c4w6.tier")
}

/// Task c4w6.tier: routes one request: [`eligible`] first, then [`DailyBudget::choose`] among the
/// eligible backends only (in their configuration order), so spill-over never leaves the tier.
/// Errors of either step are returned as they are.
pub fn route(
    backends: &[Backend],
    model: &str,
    tier: Tier,
    budget: &mut DailyBudget,
    prompt_tokens: u64,
    completion_tokens: u64,
    now_ms: u64,
) -> Result<Choice> {
    todo!("c4w6.tier")
}
// ANCHOR_END: route
