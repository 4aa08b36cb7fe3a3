//! The gateway's cost and load controls: a cost circuit breaker that spills to cheaper backends,
//! load shedding by key priority, and canary rollouts per model.
//!
//! * **Cost spill-over.** Once a key's `daily_cost_usd` (or the gateway's `[budget]
//!   daily_cost_usd`) is spent, a request is not refused at once: each backend in its order is
//!   replaced by its `spill_to` chain of strictly cheaper backends ([`spill_order`]), and only when
//!   no cheaper backend serves the model within the key's tier is it refused (429
//!   `budget_exceeded`). A breaker on cost rather than on errors, in Nygard's sense (*Release It!*,
//!   2nd ed., ch. 5): degrade to the cheap path instead of failing. Counted in
//!   `sovereign_gateway_spillovers_total{key,from,to}`.
//! * **Shedding.** `[shed]` sets a [`PriorityShedder`] for the whole gateway; a key's `priority`
//!   picks its class. A shed request gets 503 with `Retry-After` and the OpenAI-shaped code
//!   `overloaded`, counted in `sovereign_requests_shed_total{reason="priority",priority}` (Google SRE
//!   book ch. 21–22: shed the least critical work first, refuse cheaply and early).
//! * **Canaries.** `[[canaries]]` splits a model's traffic between a stable and a canary backend
//!   by a [`CanaryController`] (sticky by the request's `user`, else the key's name); outcomes
//!   (5xx and 429 are errors, latency to the answer's head) are judged per window and the canary is
//!   promoted or rolled back automatically; `sovereign_gateway_canary_state{model}` (0 rolling out,
//!   1 promoted, 2 rolled back) and `sovereign_gateway_canary_percent{model}` follow it, and each
//!   transition is logged.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::breaker::Clock;
use super::config::{BackendConfig, GatewayConfig};
use super::limits::DAY_MS;
use super::metrics::Counters;
use crate::Result;
use crate::observe::canary::{Arm, CanaryController, CanaryState};
use crate::observe::shed::{Permit, Priority, PriorityShedder, Shed};

/// `sovereign_gateway_spillovers_total`.
pub const SPILLOVERS: &str = "sovereign_gateway_spillovers_total";
/// `sovereign_gateway_canary_state`.
pub const CANARY_STATE: &str = "sovereign_gateway_canary_state";
/// `sovereign_gateway_canary_percent`.
pub const CANARY_PERCENT: &str = "sovereign_gateway_canary_percent";
/// `sovereign_gateway_canary_requests_total`.
pub const CANARY_REQUESTS: &str = "sovereign_gateway_canary_requests_total";

// ANCHOR: spill_order
/// The order in which to try backends once the caller's cost budget is spent: for each backend of
/// `order` in turn, its `spill_to` chain (the next cheaper, then the one after…), keeping only
/// backends in `eligible` (those that serve the model within the caller's tier), each once. Empty
/// when no cheaper backend remains: the request is refused.
pub fn spill_order(backends: &[BackendConfig], order: &[usize], eligible: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    for &first in order {
        let mut current = first;
        // Spill targets are strictly cheaper (validated), so chains end; the bound is a second guard.
        for _ in 0..backends.len() {
            let Some(next) =
                backends[current].spill_to.as_ref().and_then(|n| backends.iter().position(|b| &b.name == n))
            else {
                break;
            };
            if eligible.contains(&next) && !out.contains(&next) {
                out.push(next);
            }
            current = next;
        }
    }
    out
}
// ANCHOR_END: spill_order

/// The gateway's own spend today.
#[derive(Debug, Default)]
struct Spend {
    day: u64,
    cost: f64,
}

/// An admitted request's place in the shedder, given back when dropped (so a stream holds it until
/// it ends).
pub struct ShedGuard {
    shedder: Arc<Mutex<PriorityShedder>>,
    permit: Permit,
    clock: Clock,
}

impl Drop for ShedGuard {
    fn drop(&mut self) {
        let now = self.clock.now_ms();
        self.shedder.lock().unwrap_or_else(|e| e.into_inner()).release(self.permit, now);
    }
}

/// One model's canary.
pub struct CanaryRoute {
    /// The model id.
    pub model: String,
    /// Index of the stable backend.
    pub stable: usize,
    /// Index of the canary backend.
    pub canary: usize,
    controller: Mutex<CanaryController>,
}

/// Which canary arm a request took, and since when (for its latency).
#[derive(Clone)]
pub struct CanaryMark {
    route: usize,
    arm: Arm,
    started: Instant,
}

/// What the controls attach to a request: its shed permit and its canary arm.
#[derive(Clone, Default)]
pub struct RequestControls {
    /// Held until the request (or its stream) ends.
    pub shed: Option<Arc<ShedGuard>>,
    /// Recorded when the request is finished.
    pub canary: Option<CanaryMark>,
}

/// The controls' state in a gateway.
pub struct Controls {
    clock: Clock,
    daily_cost_usd: Option<f64>,
    spend: Mutex<Spend>,
    shedder: Option<Arc<Mutex<PriorityShedder>>>,
    default_priority: Priority,
    canaries: Vec<CanaryRoute>,
}

impl Controls {
    /// The controls of a validated `config`, starting at `clock`'s now.
    ///
    /// # Errors
    /// [`crate::Error::ShedConfig`] / [`crate::Error::CanaryConfig`] for invalid parts (a validated
    /// config has none).
    pub fn new(config: &GatewayConfig, clock: &Clock) -> Result<Controls> {
        let now = clock.now_ms();
        let shedder = match &config.shed {
            Some(s) => Some(Arc::new(Mutex::new(PriorityShedder::new(s.clone(), now)?))),
            None => None,
        };
        let index = |name: &str| config.backends.iter().position(|b| b.name == name).unwrap_or(0);
        let mut canaries = Vec::new();
        for c in &config.canaries {
            canaries.push(CanaryRoute {
                model: c.model.clone(),
                stable: index(&c.stable),
                canary: index(&c.canary),
                controller: Mutex::new(CanaryController::new(c.controller(), now)?),
            });
        }
        Ok(Controls {
            clock: clock.clone(),
            daily_cost_usd: config.budget.daily_cost_usd,
            spend: Mutex::new(Spend { day: now / DAY_MS, cost: 0.0 }),
            default_priority: config.shed.as_ref().map_or(Priority::Normal, |s| s.default_priority),
            shedder,
            canaries,
        })
    }

    /// Sets the canary gauges to their starting values.
    pub fn init_metrics(&self, metrics: &Counters) {
        for c in &self.canaries {
            let state = c.controller.lock().unwrap_or_else(|e| e.into_inner()).state().clone();
            set_canary_gauges(metrics, &c.model, &state);
        }
    }

    /// Whether the gateway's own cost budget is spent today.
    pub fn budget_spent(&self, now_ms: u64) -> bool {
        let Some(budget) = self.daily_cost_usd else { return false };
        let mut s = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        if now_ms / DAY_MS != s.day {
            *s = Spend { day: now_ms / DAY_MS, cost: 0.0 };
        }
        s.cost >= budget
    }

    /// Adds a request's cost to the gateway's spend.
    pub fn charge(&self, cost: f64, now_ms: u64) {
        let mut s = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        if now_ms / DAY_MS != s.day {
            *s = Spend { day: now_ms / DAY_MS, cost: 0.0 };
        }
        s.cost += cost;
    }

    /// The gateway's spend today in USD.
    pub fn spent_today(&self) -> f64 {
        self.spend.lock().unwrap_or_else(|e| e.into_inner()).cost
    }

    /// Admits a request of `priority` (the key's, else the default) or says why not; `Ok(None)` when
    /// no `[shed]` is configured.
    ///
    /// # Errors
    /// The class and the [`Shed`] reason.
    pub fn admit(
        &self,
        priority: Option<Priority>,
        now_ms: u64,
    ) -> std::result::Result<Option<Arc<ShedGuard>>, (Priority, Shed)> {
        let Some(shedder) = &self.shedder else { return Ok(None) };
        let p = priority.unwrap_or(self.default_priority);
        let permit = shedder.lock().unwrap_or_else(|e| e.into_inner()).try_acquire(p, now_ms).map_err(|s| (p, s))?;
        Ok(Some(Arc::new(ShedGuard { shedder: shedder.clone(), permit, clock: self.clock.clone() })))
    }

    /// The shedder's admitted and shed counts of `p` (`None` without `[shed]`).
    pub fn shed_counts(&self, p: Priority) -> Option<(u64, u64)> {
        self.shedder.as_ref().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).counts(p))
    }

    /// The canary of `model`, if it has one: judges an ended window first (logging and counting a
    /// transition), then assigns `sticky_key` to an arm. Returns the backend to use and the mark to
    /// record the outcome with; `None` when `model` has no canary or the arm's backend is not in
    /// `eligible` (outside the caller's tier).
    pub fn route(
        &self,
        model: &str,
        sticky_key: &str,
        eligible: &[usize],
        now_ms: u64,
        metrics: &Counters,
    ) -> Option<(usize, CanaryMark)> {
        let (i, c) = self.canaries.iter().enumerate().find(|(_, c)| c.model == model)?;
        let arm = {
            let mut ctl = c.controller.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = ctl.tick(now_ms) {
                match &t.to {
                    CanaryState::RolledBack { .. } => tracing::warn!(
                        target: "sovereign::gateway::canary", model, from = t.from.percent(), reason = %t.reason,
                        "canary rolled back: all traffic to stable"
                    ),
                    _ => tracing::info!(
                        target: "sovereign::gateway::canary", model, from = t.from.percent(), to = t.to.percent(),
                        reason = %t.reason, "canary promoted"
                    ),
                }
                set_canary_gauges(metrics, model, &t.to);
            }
            ctl.assign(sticky_key)
        };
        let backend = match arm {
            Arm::Stable => c.stable,
            Arm::Canary => c.canary,
        };
        eligible.contains(&backend).then(|| (backend, CanaryMark { route: i, arm, started: Instant::now() }))
    }

    /// Records a finished request's outcome on its canary arm (`status` ≥ 500 or 429 is an error).
    pub fn record(&self, mark: &CanaryMark, status: u16, metrics: &Counters) {
        let c = &self.canaries[mark.route];
        let ok = status < 500 && status != 429;
        let ms = u64::try_from(mark.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        c.controller.lock().unwrap_or_else(|e| e.into_inner()).record(mark.arm, ok, ms);
        metrics.add(
            CANARY_REQUESTS,
            &[("model", &c.model), ("arm", mark.arm.name()), ("outcome", if ok { "ok" } else { "error" })],
            1.0,
        );
    }

    /// The canary state of `model` now.
    pub fn canary_state(&self, model: &str) -> Option<CanaryState> {
        self.canaries
            .iter()
            .find(|c| c.model == model)
            .map(|c| c.controller.lock().unwrap_or_else(|e| e.into_inner()).state().clone())
    }

    /// Judges ended windows of every canary (a timer's job when traffic may stop).
    pub fn tick(&self, metrics: &Counters) {
        let now = self.clock.now_ms();
        for c in &self.canaries {
            let t = c.controller.lock().unwrap_or_else(|e| e.into_inner()).tick(now);
            if let Some(t) = t {
                tracing::info!(target: "sovereign::gateway::canary", model = %c.model, state = t.to.name(),
                               reason = %t.reason, "canary transition");
                set_canary_gauges(metrics, &c.model, &t.to);
            }
        }
    }
}

fn set_canary_gauges(metrics: &Counters, model: &str, state: &CanaryState) {
    metrics.set(CANARY_STATE, &[("model", model)], state.gauge());
    metrics.set(CANARY_PERCENT, &[("model", model)], state.percent());
}
