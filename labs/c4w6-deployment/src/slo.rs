//! Service-level objectives: error budgets and multiwindow, multi-burn-rate alerts.
//!
//! An SLO of 99.9 % good requests allows 0.1 % bad ones: that allowance is the *error budget*.
//! The *burn rate* is how fast it is spent: the error ratio divided by `1 − objective` (a burn
//! rate of 1 spends exactly the budget over the SLO period). Google's *The Site Reliability
//! Workbook*, ch. 5 "Alerting on SLOs", recommends alerting when the burn rate is high over a long
//! window *and* over a short one (1/12 of it): the long window proves the burn is significant, the
//! short one that it is still going on, so the alert resets soon after a fix. For a 30-day SLO:
//! page at 14.4 over 1 h and 5 min (2 % of the budget in an hour), page at 6 over 6 h and 30 min
//! (5 % in six hours), open a ticket at 1 over 3 days and 6 h (10 % in three days).

use crate::{Error, Result};

// ANCHOR: budget
/// The state of an error budget over a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBudget {
    /// Bad requests the objective allows: `(1 − objective) × total`.
    pub allowed_bad: f64,
    /// The share of the budget spent: `bad / allowed_bad` (0 with no bad requests, `+Inf` when
    /// bad requests happened and none were allowed).
    pub consumed: f64,
    /// `1 − consumed` (negative once overspent).
    pub remaining: f64,
}

/// Task c4w6.slo (12 points, with [`burn_rate`] and [`evaluate`]): the error budget of `total`
/// requests of which `bad` failed, under `objective` (the good share, e.g. 0.999).
///
/// [`Error::InvalidConfig`] unless `0 < objective < 1`; [`Error::InvalidInput`] when `bad > total`.
/// `allowed_bad = (1.0 − objective) × total as f64`; `consumed = bad as f64 / allowed_bad` (0 when
/// `bad == 0`, so also when `total == 0`); `remaining = 1.0 − consumed`.
pub fn error_budget(objective: f64, total: u64, bad: u64) -> Result<ErrorBudget> {
    todo!("c4w6.slo")
}

/// Task c4w6.slo: the burn rate of `bad` out of `total`: `(bad / total) / (1 − objective)`, 0
/// when `total` is 0. (No validation: callers pass a checked objective.)
pub fn burn_rate(objective: f64, total: u64, bad: u64) -> f64 {
    todo!("c4w6.slo")
}
// ANCHOR_END: budget

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Handle it in working hours.
    Ticket,
}

/// One alerting condition: burn rate above `factor` over both windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    /// The long window, in minutes.
    pub long_minutes: usize,
    /// The short window, in minutes (at most the long one).
    pub short_minutes: usize,
    /// The burn-rate threshold.
    pub factor: f64,
    /// What firing means.
    pub severity: Severity,
}

/// The Workbook's recommended windows for a 30-day SLO (table 5-8). Given.
pub fn workbook_windows() -> Vec<BurnWindow> {
    vec![
        BurnWindow { long_minutes: 60, short_minutes: 5, factor: 14.4, severity: Severity::Page },
        BurnWindow { long_minutes: 360, short_minutes: 30, factor: 6.0, severity: Severity::Page },
        BurnWindow { long_minutes: 3 * 24 * 60, short_minutes: 360, factor: 1.0, severity: Severity::Ticket },
    ]
}

/// A firing alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// The index of its window in the `windows` given to [`evaluate`].
    pub window: usize,
    /// Its severity.
    pub severity: Severity,
    /// The burn rate over the long window.
    pub long_burn: f64,
    /// The burn rate over the short window.
    pub short_burn: f64,
}

// ANCHOR: evaluate
/// Task c4w6.slo: the alerts firing now, given per-minute `(total, bad)` request counts, the
/// oldest first and the last entry the most recent minute.
///
/// A window of `w` minutes covers the last `w` entries (all of them when there are fewer). Its
/// error ratio is its bad sum over its total sum (0 when the total is 0). Window `i` fires when
/// both its long and its short error ratios are `> factor × (1.0 − objective)` (the comparison of
/// the Workbook's Prometheus rules); the alert carries both burn rates ([`burn_rate`] of the
/// sums). Alerts come in the order of `windows`.
///
/// [`Error::InvalidConfig`] unless `0 < objective < 1`, and for a window with a zero length, a
/// short window longer than its long one, or a factor that is not finite and positive;
/// [`Error::InvalidInput`] for a minute with `bad > total`. Sums over the newest minutes (suffix
/// sums) make every window one lookup.
pub fn evaluate(objective: f64, minutes: &[(u64, u64)], windows: &[BurnWindow]) -> Result<Vec<Alert>> {
    todo!("c4w6.slo")
}
// ANCHOR_END: evaluate
