//! A Prometheus histogram with cumulative buckets, and `histogram_quantile` as PromQL computes it.
//!
//! A histogram counts observations into buckets by upper bound (`le`, "less than or equal"); the
//! exposition writes each bucket's count *cumulatively*, so the `le="+Inf"` bucket is the total
//! count (<https://prometheus.io/docs/concepts/metric_types/#histogram>). A quantile estimated from
//! the buckets assumes the observations are spread evenly within a bucket: PromQL's
//! `histogram_quantile` interpolates linearly between the bucket's bounds (Prometheus,
//! `promql/quantile.go`, `BucketQuantile`), so its answer is only as precise as the bucket layout.

use crate::{Error, Result};

// ANCHOR: histogram
/// Observation counts by upper bound, plus their sum. The `+Inf` bucket is implied.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); `bounds.len() + 1` entries, `+Inf` last.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    /// Task c4w6.histogram (12 points, with [`histogram_quantile`] and
    /// [`crate::prom::write_histogram`]): an empty histogram with these upper bounds.
    ///
    /// The bounds must be finite and strictly ascending ([`Error::InvalidConfig`] otherwise); the
    /// `+Inf` bucket is added, so `&[]` is a histogram with the `+Inf` bucket only.
    pub fn new(bounds: &[f64]) -> Result<Histogram> {
        todo!("c4w6.histogram")
    }

    /// Task c4w6.histogram: records one observation.
    ///
    /// It goes into the first bucket whose bound is `>= v` (`le` means less than or equal), the
    /// `+Inf` bucket when there is none (NaN included), and is added to the sum.
    pub fn observe(&mut self, v: f64) {
        todo!("c4w6.histogram")
    }

    /// The upper bounds given to [`Histogram::new`] (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Task c4w6.histogram: the cumulative count of each bucket, `+Inf` last (`bounds().len() + 1`
    /// entries; the last is [`Histogram::count`]).
    pub fn cumulative(&self) -> Vec<u64> {
        todo!("c4w6.histogram")
    }

    /// Task c4w6.histogram: the number of observations.
    pub fn count(&self) -> u64 {
        todo!("c4w6.histogram")
    }

    /// Task c4w6.histogram: the sum of the observations.
    pub fn sum(&self) -> f64 {
        todo!("c4w6.histogram")
    }
}
// ANCHOR_END: histogram

// ANCHOR: quantile
/// Task c4w6.histogram: the `q`-quantile of a histogram given as `(upper bound, cumulative count)`
/// pairs, exactly as PromQL's `histogram_quantile` (Prometheus `promql/quantile.go`,
/// `BucketQuantile`, without its tolerance for tiny floating-point deltas).
///
/// 1. `q` NaN → NaN; `q < 0` → `-Inf`; `q > 1` → `+Inf`; no buckets → NaN.
/// 2. Sort the buckets by bound (a stable sort). If the last bound is not `+Inf` → NaN.
/// 3. Merge buckets with equal bounds (adding their counts), then make the counts monotonic: a
///    count smaller than the one before it is raised to it.
/// 4. Fewer than 2 buckets, or a total (the `+Inf` count) of 0 → NaN.
/// 5. `rank = q × total`; `b` = the first bucket among all but the last whose count is `>= rank`
///    (the last, `+Inf`, when none is).
/// 6. `b` is `+Inf` → the bound of the bucket before it. `b` is the first bucket and its bound is
///    `<= 0` → that bound.
/// 7. Otherwise interpolate: `start` = the previous bucket's bound (0 for the first bucket),
///    `end` = `b`'s bound, `count` = `b`'s count minus the previous one's, `rank -=` the previous
///    count; the answer is `start + (end − start) × (rank / count)`.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    todo!("c4w6.histogram")
}
// ANCHOR_END: quantile
