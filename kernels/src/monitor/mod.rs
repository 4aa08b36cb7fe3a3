//! Data validation and drift detection: is today's data what the model was trained on?
//!
//! - [`drift`]: two-sample statistics between a reference sample (the training data) and a current
//!   one: the population stability index with explicit binning and empty-bin smoothing, the
//!   two-sample Kolmogorov–Smirnov test, Pearson's chi-squared test for categories, the
//!   Jensen–Shannon distance and the Wasserstein-1 distance. Each equals `scipy.stats` (or
//!   `scipy.spatial.distance`) to 1e-9 on the committed fixtures.
//! - [`expect`]: expectations on Arrow tables (schema, nullability, ranges, allowed values,
//!   uniqueness, row counts, freshness) and a report naming every failing column with a sample of
//!   bad rows.
//! - [`stream`]: drift over Parquet row groups with bounded memory, per column and per day, with
//!   thresholds and alerts.

pub mod drift;
pub mod expect;
mod special;
pub mod stream;
