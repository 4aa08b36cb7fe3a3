//! Routing: which backends may take a request (model, privacy tier), in which order (policy), and
//! how long to wait between attempts (exponential backoff with full jitter).
//!
//! Full jitter: Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015: the delay
//! before retry `r` is uniform in `[0, min(cap, base · 2^r)]`.

use super::config::{BackendConfig, Policy, Tier};

/// What the router knows of one backend at the moment of choosing.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Index into the configured backends.
    pub index: usize,
    /// Its `priority` (lower first).
    pub priority: u32,
    /// Its `weight`.
    pub weight: u32,
    /// Requests in flight through this gateway.
    pub outstanding: usize,
}

/// Why no backend may take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No backend serves the model.
    UnknownModel,
    /// Backends serve it, but none within the key's tier.
    OutsideTier,
}

// ANCHOR: eligible
/// The backends that serve `model` within `tier`, in configuration order. This is the privacy
/// check: nothing outside the returned set is ever contacted for the request.
///
/// # Errors
/// [`NoRoute`] when the set is empty.
pub fn eligible(backends: &[BackendConfig], model: &str, tier: Tier) -> std::result::Result<Vec<usize>, NoRoute> {
    let serving: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].models.iter().any(|m| m == model)).collect();
    if serving.is_empty() {
        return Err(NoRoute::UnknownModel);
    }
    let within: Vec<usize> = serving.into_iter().filter(|&i| tier.admits(backends[i].tier)).collect();
    if within.is_empty() { Err(NoRoute::OutsideTier) } else { Ok(within) }
}
// ANCHOR_END: eligible

/// The order in which to try `candidates` under `policy`; `unit` draws uniform numbers in `[0, 1)`
/// (the weighted policy's randomness, injectable for tests).
pub fn order(candidates: &[Candidate], policy: Policy, mut unit: impl FnMut() -> f64) -> Vec<usize> {
    let mut c = candidates.to_vec();
    match policy {
        Policy::Priority => c.sort_by_key(|c| (c.priority, c.index)),
        Policy::LeastOutstanding => c.sort_by_key(|c| (c.outstanding, c.priority, c.index)),
        Policy::Weighted => {
            // Weighted sampling without replacement: draw one in proportion to weight, remove, repeat.
            // Zero-weight backends go last, by priority.
            let (mut pool, mut zero): (Vec<Candidate>, Vec<Candidate>) = c.into_iter().partition(|c| c.weight > 0);
            zero.sort_by_key(|c| (c.priority, c.index));
            let mut out = Vec::with_capacity(pool.len() + zero.len());
            while !pool.is_empty() {
                let total: u64 = pool.iter().map(|c| u64::from(c.weight)).sum();
                let mut x = unit().clamp(0.0, 1.0 - f64::EPSILON) * total as f64;
                let mut pick = pool.len() - 1;
                for (i, c) in pool.iter().enumerate() {
                    if x < f64::from(c.weight) {
                        pick = i;
                        break;
                    }
                    x -= f64::from(c.weight);
                }
                out.push(pool.remove(pick));
            }
            out.extend(zero);
            c = out;
        }
    }
    c.into_iter().map(|c| c.index).collect()
}

/// The delay in milliseconds before retry `retry` (0 for the first retry's base): uniform in
/// `[0, min(max_ms, base_ms · 2^retry)]`, drawn from `unit` in `[0, 1)`.
pub fn backoff_ms(retry: u32, base_ms: u64, max_ms: u64, unit: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64.checked_shl(retry.min(62)).unwrap_or(u64::MAX)).min(max_ms);
    (ceiling as f64 * unit.clamp(0.0, 1.0)).floor() as u64
}

/// Whether an answer's status is worth another attempt on another backend: 429 and 5xx.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}
