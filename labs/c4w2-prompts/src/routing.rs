//! Routing with failover across backends, by priority and privacy tier (batuta's
//! `BackendSelector`; the fallbacks of Mosaic AI Gateway and LiteLLM).
//!
//! Every backend has a privacy tier: **sovereign** (on machines you own, data never leaves),
//! **private** (your VPC or a contracted provider), **standard** (a public API). Every request
//! has one too, and it may go only to a backend at least as private as itself. This is checked
//! before any network call, and failover never relaxes it: when every sovereign backend is down,
//! a sovereign request fails rather than reaching a public API.

use std::time::Duration;

use crate::breaker::CircuitBreaker;

/// A privacy tier, from the most private to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Data stays on machines you own (healthcare records, classified data).
    Sovereign,
    /// Your VPC or a provider under contract (financial data).
    Private,
    /// A public API.
    Standard,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its name (for logs and errors).
    pub name: String,
    /// Its privacy tier.
    pub tier: Tier,
    /// Lower is tried first.
    pub priority: u32,
}

/// Why one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The backend is down, timed out or answered 5xx before sending anything: another may try.
    Unavailable,
    /// The request itself is wrong (4xx): every backend would refuse it; do not fail over.
    BadRequest,
    /// The backend failed after the response had started streaming to the client: retrying
    /// elsewhere would send the client a second, different beginning. Do not fail over.
    BrokenStream,
}

/// The outcome of [`send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<T> {
    /// The reply.
    pub reply: T,
    /// The backend that gave it.
    pub backend: usize,
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No backend is in the request's tier.
    #[error("no backend is private enough for a {0:?} request")]
    NoBackendInTier(Tier),
    /// Every backend in the tier failed or was held back by its breaker (those tried, in order).
    #[error("every backend failed (tried {tried:?})")]
    AllFailed {
        /// The backends called, in order.
        tried: Vec<usize>,
    },
    /// An attempt failed in a way that must not be retried elsewhere.
    #[error("backend {backend} failed with {failure:?}; not retried")]
    NotRetried {
        /// The backend.
        backend: usize,
        /// How it failed.
        failure: Failure,
    },
}

/// Health of the backends as the router sees it: a circuit breaker per backend in production,
/// anything in tests.
pub trait Health {
    /// May a request go to `backend` now?
    fn admit(&mut self, backend: usize) -> bool;
    /// The attempt on `backend` ended (`true`: succeeded).
    fn record(&mut self, backend: usize, succeeded: bool);
}

/// One circuit breaker per backend, at a given time.
#[derive(Debug)]
pub struct Breakers<'a> {
    /// The breakers, by backend index.
    pub breakers: &'a mut [CircuitBreaker],
    /// The time of this request.
    pub now: Duration,
}

impl Health for Breakers<'_> {
    fn admit(&mut self, backend: usize) -> bool {
        self.breakers[backend].try_acquire(self.now).is_ok()
    }

    fn record(&mut self, backend: usize, succeeded: bool) {
        if succeeded {
            self.breakers[backend].on_success(self.now);
        } else {
            self.breakers[backend].on_failure(self.now);
        }
    }
}

// ANCHOR: candidates
/// Task c4w2.routing, part 1: the backends a request of `tier` may use, in the order to try
/// them: only backends whose tier is at least as private as `tier` (`backend.tier <= tier`),
/// by priority ascending, equal priorities in the order of `backends`.
pub fn candidates(backends: &[Backend], tier: Tier) -> Vec<usize> {
    todo!("c4w2.routing")
}
// ANCHOR_END: candidates

// ANCHOR: send
/// Task c4w2.routing (10 points in all): sends a request of `tier` with failover.
///
/// Go through [`candidates`] in order. Skip a backend `health` does not admit (it was not
/// called). Otherwise `call` it, and `health.record` the outcome. A reply is returned at once.
/// [`Failure::Unavailable`] moves on to the next candidate; any other failure stops with
/// [`RouteError::NotRetried`] (recorded as a failure only when it is the backend's fault:
/// [`Failure::BadRequest`] is recorded as a success, since the backend answered).
///
/// # Errors
/// [`RouteError::NoBackendInTier`] when there are no candidates (before any call),
/// [`RouteError::NotRetried`] as above, else [`RouteError::AllFailed`] with the backends called.
pub fn send<T>(
    backends: &[Backend],
    tier: Tier,
    health: &mut dyn Health,
    mut call: impl FnMut(usize) -> Result<T, Failure>,
) -> Result<Routed<T>, RouteError> {
    todo!("c4w2.routing")
}
// ANCHOR_END: send
