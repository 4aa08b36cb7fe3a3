//! Week c4w6: production deployment and observability.
//!
//! A model server that answers is not yet a service you can run: you must see what it does
//! (metrics, traces), keep it up under overload (shedding), keep its bill and its data where they
//! belong (budgets, privacy tiers), know when it breaks its promises (SLO burn-rate alerts) and
//! ship a new version without breaking them (canaries). You build each piece:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`prom`] | Prometheus' text exposition format 0.0.4 for counters, gauges and histograms with labels | `c4w6.prom-text`, `c4w6.histogram` |
//! | [`histogram`] | a histogram with cumulative buckets, and `histogram_quantile` as PromQL computes it | `c4w6.histogram` |
//! | [`trace`] | W3C Trace Context: parse, format and continue a `traceparent` header | `c4w6.traceparent` |
//! | [`shed`] | a token-bucket load shedder whose last tokens are reserved for the higher priorities | `c4w6.shed` |
//! | [`budget`] | a daily cost budget that spills over to a cheaper backend before it refuses | `c4w6.budget` |
//! | [`tier`] | privacy tiers: the backends a request may reach, filtered before any routing | `c4w6.tier` |
//! | [`slo`] | error budgets and multiwindow, multi-burn-rate alerts (*The Site Reliability Workbook*, ch. 5) | `c4w6.slo` |
//! | [`canary`] | a canary controller: traffic steps, judged per window, rolled back on a breach | `c4w6.canary` |
//!
//! The graded benchmark `c4w6.encode-bench` times your exposition encoder on 1,000 counter series
//! and 100 histograms as a ratio to the production `kernels::observe::prom::Registry::encode_into`.
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says what to do
//! and how many points it is worth. `cargo test -p c4w6-deployment` runs the visible tests;
//! `cargo xtask grade c4w6` runs them and the hidden ones, which parse your exposition with
//! Python's `prometheus_client` and `kernels::observe::prom::parse`, and compare everything else
//! with independent references.
// STUB-ONLY: #![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod budget;
pub mod canary;
pub mod histogram;
pub mod prom;
pub mod shed;
pub mod slo;
pub mod tier;
pub mod trace;

// ANCHOR: error
/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration that cannot work (bounds not ascending, reserves above the capacity, an
    /// objective outside (0, 1)); the message names the knob.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Input that breaks a documented contract (a bad metric name, a malformed header, an unknown
    /// priority); the message says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No backend serves this model.
    #[error("no backend serves model `{0}`")]
    UnknownModel(String),
    /// Backends serve the model, but none within the request's privacy tier.
    #[error("no backend within tier `{tier}` serves model `{model}`")]
    OutsideTier {
        /// The model asked for.
        model: String,
        /// The request's tier (its lowercase name).
        tier: String,
    },
    /// Today's cost budget cannot pay for the request on any allowed backend.
    #[error("daily cost budget exhausted; retry after {retry_after_ms} ms")]
    BudgetExceeded {
        /// Milliseconds until the budget resets (the next UTC midnight).
        retry_after_ms: u64,
    },
}
// ANCHOR_END: error

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
