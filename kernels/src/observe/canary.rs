//! A canary controller: a percentage of traffic to a new version, judged against error-rate and
//! latency SLOs over a window, promoted or rolled back automatically.
//!
//! The practice is Google's (*Site Reliability Engineering*, 2016, ch. 8 "Release Engineering",
//! and *The Site Reliability Workbook*, 2018, ch. 16 "Canarying Releases"): expose a small,
//! sticky share of users to the new version, compare it with the old one over the same window,
//! and widen the share step by step (`5 % → 25 % → 50 % → 100 %`) only while it holds its SLOs.
//! Nygard (*Release It!*, 2nd ed., ch. 14) on why the rollback must be automatic and fast.
//!
//! * Assignment is sticky: a request key (a user id) hashes to a bucket in `[0, 10 000)`; the key
//!   goes to the canary while its bucket is below `percent · 100`. Raising the percentage only adds
//!   users: nobody flips back and forth between versions.
//! * Each arm records outcomes (ok or error, latency) for the current window.
//! * At the end of a window ([`CanaryController::tick`]) the canary arm is judged
//!   ([`evaluate`]): fewer than `min_requests` canary samples → [`Verdict::Hold`] (the window's
//!   samples are kept and the next window adds to them); error rate over `max_error_rate` or p99
//!   latency over `max_p99_ms` → [`Verdict::RollBack`], unless the stable arm, with enough samples
//!   of its own, is at least as bad (the trouble is then not the canary's: [`Verdict::Hold`]);
//!   otherwise [`Verdict::Promote`] to the next step. Promotion to 100 % ends the rollout
//!   ([`CanaryState::Promoted`]); a rollback sends all traffic to stable for good
//!   ([`CanaryState::RolledBack`]).
//!
//! Time is passed in (`now_ms`), so tests move a clock by hand.

use serde::Deserialize;

use crate::{Error, Result};

/// The controller's parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The starting share of traffic, in percent (0, 100].
    pub percent: f64,
    /// The length of a judging window in milliseconds (> 0).
    pub window_ms: u64,
    /// Canary samples needed before a verdict other than hold (≥ 1).
    #[serde(default = "twenty")]
    pub min_requests: u64,
    /// The highest acceptable error rate, in [0, 1].
    pub max_error_rate: f64,
    /// The highest acceptable p99 latency in milliseconds.
    pub max_p99_ms: u64,
    /// The percentages promoted through, ascending, in (0, 100]; after the last one below 100 comes
    /// 100 (so `[5, 25, 50, 100]` and `[25, 50]` both end at 100).
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
}

fn twenty() -> u64 {
    20
}
fn default_steps() -> Vec<f64> {
    vec![5.0, 25.0, 50.0, 100.0]
}

impl CanaryConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::CanaryConfig`] naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: String| Err(Error::CanaryConfig(format!("{k}: {why}")));
        if !(self.percent > 0.0 && self.percent <= 100.0) {
            return bad("percent", format!("{} is not in (0, 100]", self.percent));
        }
        if self.window_ms == 0 {
            return bad("window_ms", "must be at least 1".into());
        }
        if self.min_requests == 0 {
            return bad("min_requests", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return bad("max_error_rate", format!("{} is not in [0, 1]", self.max_error_rate));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !(*s > 0.0 && *s <= 100.0) {
                return bad(&format!("steps[{i}]"), format!("{s} is not in (0, 100]"));
            }
            if i > 0 && *s <= self.steps[i - 1] {
                return bad(&format!("steps[{i}]"), format!("{s} does not ascend"));
            }
        }
        Ok(())
    }

    /// The step after `percent`: the smallest step above it, else 100.
    pub fn next_step(&self, percent: f64) -> f64 {
        self.steps.iter().copied().find(|s| *s > percent).unwrap_or(100.0)
    }
}

/// Which version serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    /// The current version.
    Stable,
    /// The new version.
    Canary,
}

impl Arm {
    /// `stable` or `canary` (metric labels).
    pub fn name(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Canary => "canary",
        }
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryState {
    /// The canary takes `percent` of the traffic.
    Canary {
        /// Its share, in percent.
        percent: f64,
    },
    /// Promoted to 100 %: every request goes to the new version.
    Promoted,
    /// Rolled back: every request goes to stable.
    RolledBack {
        /// Why.
        reason: String,
    },
}

impl CanaryState {
    /// The canary's share now, in percent.
    pub fn percent(&self) -> f64 {
        match self {
            CanaryState::Canary { percent } => *percent,
            CanaryState::Promoted => 100.0,
            CanaryState::RolledBack { .. } => 0.0,
        }
    }

    /// 0 rolling out, 1 promoted, 2 rolled back (the `sovereign_gateway_canary_state` gauge).
    pub fn gauge(&self) -> f64 {
        match self {
            CanaryState::Canary { .. } => 0.0,
            CanaryState::Promoted => 1.0,
            CanaryState::RolledBack { .. } => 2.0,
        }
    }

    /// `canary`, `promoted` or `rolled_back`.
    pub fn name(&self) -> &'static str {
        match self {
            CanaryState::Canary { .. } => "canary",
            CanaryState::Promoted => "promoted",
            CanaryState::RolledBack { .. } => "rolled_back",
        }
    }

    /// Whether the rollout is over (promoted or rolled back).
    pub fn is_final(&self) -> bool {
        !matches!(self, CanaryState::Canary { .. })
    }
}

/// One arm's outcomes in a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmStats {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Every request's latency in ms.
    pub latencies_ms: Vec<u64>,
}

impl ArmStats {
    /// Records one outcome.
    pub fn record(&mut self, ok: bool, latency_ms: u64) {
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
        self.latencies_ms.push(latency_ms);
    }

    /// Requests recorded.
    pub fn total(&self) -> u64 {
        self.ok + self.errors
    }

    /// Errors over requests (0 when none).
    pub fn error_rate(&self) -> f64 {
        if self.total() == 0 { 0.0 } else { self.errors as f64 / self.total() as f64 }
    }

    /// The 99th percentile latency (nearest rank), 0 when empty.
    pub fn p99_ms(&self) -> u64 {
        percentile(&self.latencies_ms, 0.99)
    }
}

/// The nearest-rank `q`-quantile of `values` (0 when empty).
pub fn percentile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// What a window's outcomes say.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Widen to this percentage.
    Promote {
        /// The next step.
        to: f64,
    },
    /// Keep the share (too few samples, or both arms are in trouble).
    Hold {
        /// Why.
        reason: String,
    },
    /// Send everything back to stable.
    RollBack {
        /// Why (which SLO, with the numbers).
        reason: String,
    },
}

// ANCHOR: evaluate
/// Judges the canary arm against the SLOs of `config`, compared with the stable arm (see the module
/// documentation); `percent` is the canary's current share.
pub fn evaluate(config: &CanaryConfig, percent: f64, stable: &ArmStats, canary: &ArmStats) -> Verdict {
    if canary.total() < config.min_requests {
        return Verdict::Hold {
            reason: format!("{} canary requests, {} needed for a verdict", canary.total(), config.min_requests),
        };
    }
    let stable_judged = stable.total() >= config.min_requests;
    let (err, p99) = (canary.error_rate(), canary.p99_ms());
    if err > config.max_error_rate {
        if stable_judged && stable.error_rate() >= err {
            return Verdict::Hold {
                reason: format!(
                    "canary error rate {err:.3} is over {} but stable's is {:.3}: not the canary's fault",
                    config.max_error_rate,
                    stable.error_rate()
                ),
            };
        }
        return Verdict::RollBack {
            reason: format!(
                "error rate {err:.3} over {} ({} of {} requests; stable {:.3})",
                config.max_error_rate,
                canary.errors,
                canary.total(),
                stable.error_rate()
            ),
        };
    }
    if p99 > config.max_p99_ms {
        if stable_judged && stable.p99_ms() >= p99 {
            return Verdict::Hold {
                reason: format!(
                    "canary p99 {p99} ms is over {} ms but stable's is {} ms: not the canary's fault",
                    config.max_p99_ms,
                    stable.p99_ms()
                ),
            };
        }
        return Verdict::RollBack {
            reason: format!("p99 latency {p99} ms over {} ms (stable {} ms)", config.max_p99_ms, stable.p99_ms()),
        };
    }
    Verdict::Promote { to: config.next_step(percent) }
}
// ANCHOR_END: evaluate

/// A change of state, for the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// When (the window's end as seen by [`CanaryController::tick`]).
    pub at_ms: u64,
    /// The state before.
    pub from: CanaryState,
    /// The state after.
    pub to: CanaryState,
    /// The verdict's reason, or the step.
    pub reason: String,
}

/// The rollout's state machine.
#[derive(Debug, Clone)]
pub struct CanaryController {
    config: CanaryConfig,
    state: CanaryState,
    window_start_ms: u64,
    stable: ArmStats,
    canary: ArmStats,
    history: Vec<Transition>,
    last_verdict: Option<Verdict>,
}

/// The sticky bucket of a request key in `[0, 10 000)`: FNV-1a (64 bit) finished with MurmurHash3's
/// `fmix64` so that similar keys (`u1`, `u2`) spread evenly.
pub fn bucket(key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % 10_000) as u32
}

impl CanaryController {
    /// A rollout at `config.percent` whose first window starts at `now_ms`.
    ///
    /// # Errors
    /// [`Error::CanaryConfig`] for an invalid config.
    pub fn new(config: CanaryConfig, now_ms: u64) -> Result<CanaryController> {
        config.validate()?;
        let state = if config.percent >= 100.0 {
            CanaryState::Promoted
        } else {
            CanaryState::Canary { percent: config.percent }
        };
        Ok(CanaryController {
            config,
            state,
            window_start_ms: now_ms,
            stable: ArmStats::default(),
            canary: ArmStats::default(),
            history: Vec::new(),
            last_verdict: None,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &CanaryConfig {
        &self.config
    }

    /// The state now.
    pub fn state(&self) -> &CanaryState {
        &self.state
    }

    /// Every transition so far, oldest first.
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// The verdict of the last window judged.
    pub fn last_verdict(&self) -> Option<&Verdict> {
        self.last_verdict.as_ref()
    }

    /// The current window's outcomes: (stable, canary).
    pub fn window(&self) -> (&ArmStats, &ArmStats) {
        (&self.stable, &self.canary)
    }

    /// The arm of a request with this sticky key, in the current state.
    pub fn assign(&self, key: &str) -> Arm {
        match &self.state {
            CanaryState::Promoted => Arm::Canary,
            CanaryState::RolledBack { .. } => Arm::Stable,
            CanaryState::Canary { percent } => {
                if f64::from(bucket(key)) < percent * 100.0 {
                    Arm::Canary
                } else {
                    Arm::Stable
                }
            }
        }
    }

    /// Records an outcome of `arm` (ignored once the rollout is over).
    pub fn record(&mut self, arm: Arm, ok: bool, latency_ms: u64) {
        if self.state.is_final() {
            return;
        }
        match arm {
            Arm::Stable => self.stable.record(ok, latency_ms),
            Arm::Canary => self.canary.record(ok, latency_ms),
        }
    }

    /// Judges the window if it has ended by `now_ms`, and moves the state; returns the transition if
    /// the state changed. Call it before assigning each request (and from a timer, if traffic may stop).
    pub fn tick(&mut self, now_ms: u64) -> Option<Transition> {
        let CanaryState::Canary { percent } = self.state else { return None };
        if now_ms < self.window_start_ms.saturating_add(self.config.window_ms) {
            return None;
        }
        let verdict = evaluate(&self.config, percent, &self.stable, &self.canary);
        self.last_verdict = Some(verdict.clone());
        let (to, reason) = match verdict {
            Verdict::Hold { .. } => {
                // Too few samples: keep them, the next window adds to them. Both arms in trouble:
                // start afresh, the next window may tell them apart.
                if self.canary.total() >= self.config.min_requests {
                    self.stable = ArmStats::default();
                    self.canary = ArmStats::default();
                }
                self.window_start_ms = now_ms;
                return None;
            }
            Verdict::Promote { to } if to >= 100.0 => (CanaryState::Promoted, "promoted to 100 %".to_owned()),
            Verdict::Promote { to } => (CanaryState::Canary { percent: to }, format!("promoted to {to} %")),
            Verdict::RollBack { reason } => (CanaryState::RolledBack { reason: reason.clone() }, reason),
        };
        self.stable = ArmStats::default();
        self.canary = ArmStats::default();
        self.window_start_ms = now_ms;
        let t = Transition { at_ms: now_ms, from: self.state.clone(), to: to.clone(), reason };
        self.state = to;
        self.history.push(t.clone());
        Some(t)
    }
}
