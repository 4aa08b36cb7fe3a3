//! Load shedding by priority: a token bucket whose last tokens are reserved for the higher
//! priorities, and bounded admission with a `Retry-After` estimate.
//!
//! Why: under overload a server that accepts everything serves everyone late and then fails
//! everyone (Google, *Site Reliability Engineering*, 2016, ch. 21 "Handling Overload" and ch. 22
//! "Addressing Cascading Failures": criticality classes, shed the least critical first, refuse
//! early and cheaply). The [`PriorityShedder`] admits a request of class `p` only while two levels
//! stay above `p`'s reserve:
//!
//! * a token bucket (Turner, 1986) of `capacity` tokens refilled at `refill_per_s`: taking a token
//!   must leave at least `reserve(p) · capacity` tokens;
//! * the requests in flight: admitting one must keep `in_flight ≤ (1 − reserve(p)) · max_in_flight`.
//!
//! With the default reserves (`critical` 0, `high` 0.1, `normal` 0.3, `low` 0.5), a burst drains the
//! bucket to half and from then on only `normal` and above pass; at 30 % only `high` and `critical`;
//! the last 10 % belongs to `critical` alone. A refused request gets a `Retry-After` estimate: the time
//! until the bucket refills to its class's threshold, or, when the in-flight cap refused it, the
//! average service time seen so far (an exponentially weighted moving average).
//!
//! Everything is pure and clock-driven: every call takes `now_ms` (the gateway's
//! [`Clock`](crate::gateway::breaker::Clock) in production, a number in tests); nothing sleeps.

use serde::Deserialize;

use crate::{Error, Result};

/// A request's criticality class, from the most to the least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Must be served while anything is (health-critical traffic, paying interactive users).
    Critical,
    /// Interactive traffic.
    High,
    /// The default.
    Normal,
    /// Batch and background work: shed first.
    Low,
}

impl Priority {
    /// Every class, most important first (index = numeric priority).
    pub const ALL: [Priority; 4] = [Priority::Critical, Priority::High, Priority::Normal, Priority::Low];

    /// The lowercase name (`critical`, `high`, `normal`, `low`), as in configs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// 0 for `critical` … 3 for `low`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a name (case-insensitive) or a number 0 (`critical`) … 3 (`low`).
    ///
    /// # Errors
    /// [`Error::ShedConfig`] for anything else.
    pub fn parse(text: &str) -> Result<Priority> {
        let t = text.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Priority::from_number(n);
        }
        Priority::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(t)).ok_or_else(|| {
            Error::ShedConfig(format!("priority {text:?}: expected critical, high, normal, low or 0 to 3"))
        })
    }

    fn from_number(n: u64) -> Result<Priority> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Priority::ALL.get(i).copied())
            .ok_or_else(|| Error::ShedConfig(format!("priority {n}: expected 0 (critical) to 3 (low)")))
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Priority, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(u64),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Name(s) => Priority::parse(&s),
            Raw::Number(n) => Priority::from_number(n),
        };
        parsed.map_err(|e| serde::de::Error::custom(e.to_string().trim_start_matches("shed config: ").to_owned()))
    }
}

/// The share of the bucket and of the in-flight slots each class may not touch.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserves {
    /// Default 0: critical may take the last token.
    #[serde(default)]
    pub critical: f64,
    /// Default 0.1.
    #[serde(default = "tenth")]
    pub high: f64,
    /// Default 0.3.
    #[serde(default = "three_tenths")]
    pub normal: f64,
    /// Default 0.5.
    #[serde(default = "half")]
    pub low: f64,
}

fn tenth() -> f64 {
    0.1
}
fn three_tenths() -> f64 {
    0.3
}
fn half() -> f64 {
    0.5
}

impl Default for Reserves {
    fn default() -> Self {
        Reserves { critical: 0.0, high: 0.1, normal: 0.3, low: 0.5 }
    }
}

impl Reserves {
    /// The reserve of class `p`.
    pub fn of(&self, p: Priority) -> f64 {
        match p {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }
}

/// `[shed]`: the bucket, the in-flight cap and the reserves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShedConfig {
    /// Tokens the bucket holds (the largest burst admitted at once), > 0.
    pub capacity: f64,
    /// Tokens added per second (the sustained rate admitted), > 0.
    pub refill_per_s: f64,
    /// Requests in flight at most (0: no cap).
    #[serde(default)]
    pub max_in_flight: usize,
    /// Reserves per class, in `[0, 1)` and not decreasing from `critical` to `low`.
    #[serde(default)]
    pub reserves: Reserves,
    /// The class of requests that name none (default `normal`).
    #[serde(default = "normal")]
    pub default_priority: Priority,
}

fn normal() -> Priority {
    Priority::Normal
}

impl ShedConfig {
    /// A config with the default reserves and no in-flight cap.
    pub fn new(capacity: f64, refill_per_s: f64) -> ShedConfig {
        ShedConfig {
            capacity,
            refill_per_s,
            max_in_flight: 0,
            reserves: Reserves::default(),
            default_priority: Priority::Normal,
        }
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::ShedConfig`] naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: String| Err(Error::ShedConfig(format!("{k}: {why}")));
        if !(self.capacity.is_finite() && self.capacity >= 1.0) {
            return bad("capacity", format!("{} is not a number ≥ 1", self.capacity));
        }
        if !(self.refill_per_s.is_finite() && self.refill_per_s > 0.0) {
            return bad("refill_per_s", format!("{} is not a rate > 0", self.refill_per_s));
        }
        let mut previous = 0.0;
        for p in Priority::ALL {
            let r = self.reserves.of(p);
            if !(0.0..1.0).contains(&r) {
                return bad(&format!("reserves.{}", p.name()), format!("{r} is not in [0, 1)"));
            }
            if r < previous {
                return bad(
                    &format!("reserves.{}", p.name()),
                    format!("{r} is below the reserve of a more critical class ({previous})"),
                );
            }
            previous = r;
        }
        Ok(())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shed {
    /// The bucket is at or below the class's reserve.
    Rate {
        /// Estimated milliseconds until the class may pass again.
        retry_after_ms: u64,
    },
    /// The in-flight cap (less the class's reserve) is reached.
    InFlight {
        /// Estimated milliseconds until a slot frees (the mean service time).
        retry_after_ms: u64,
    },
}

impl Shed {
    /// The `Retry-After` estimate in milliseconds.
    pub fn retry_after_ms(self) -> u64 {
        match self {
            Shed::Rate { retry_after_ms } | Shed::InFlight { retry_after_ms } => retry_after_ms,
        }
    }

    /// `rate` or `in_flight`.
    pub fn kind(self) -> &'static str {
        match self {
            Shed::Rate { .. } => "rate",
            Shed::InFlight { .. } => "in_flight",
        }
    }
}

/// An admitted request: give it back with [`PriorityShedder::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an admitted request holds an in-flight slot until it is released"]
pub struct Permit {
    /// Its class.
    pub priority: Priority,
    /// When it was admitted.
    pub admitted_ms: u64,
}

/// The shedder's state (see the module documentation).
#[derive(Debug, Clone)]
pub struct PriorityShedder {
    config: ShedConfig,
    level: f64,
    last_ms: u64,
    in_flight: usize,
    /// Mean service time in ms (EWMA, α = 0.2); `None` until a request was released.
    mean_service_ms: Option<f64>,
    admitted: [u64; 4],
    shed: [u64; 4],
}

/// Milliseconds assumed for a request before any was measured.
const DEFAULT_SERVICE_MS: u64 = 1_000;

impl PriorityShedder {
    /// A shedder with a full bucket at `now_ms`.
    ///
    /// # Errors
    /// [`Error::ShedConfig`] for an invalid config.
    pub fn new(config: ShedConfig, now_ms: u64) -> Result<PriorityShedder> {
        config.validate()?;
        Ok(PriorityShedder {
            level: config.capacity,
            last_ms: now_ms,
            in_flight: 0,
            mean_service_ms: None,
            admitted: [0; 4],
            shed: [0; 4],
            config,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &ShedConfig {
        &self.config
    }

    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last_ms) as f64;
        self.level = (self.level + dt * self.config.refill_per_s / 1000.0).min(self.config.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// The bucket's level at `now_ms`.
    pub fn level(&mut self, now_ms: u64) -> f64 {
        self.refill(now_ms);
        self.level
    }

    /// Requests admitted and not yet released.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Admitted and shed counts of class `p` so far.
    pub fn counts(&self, p: Priority) -> (u64, u64) {
        (self.admitted[p.index()], self.shed[p.index()])
    }

    /// The fewest tokens that must remain after class `p` takes one.
    fn floor(&self, p: Priority) -> f64 {
        self.config.reserves.of(p) * self.config.capacity
    }

    /// The in-flight slots class `p` may fill.
    fn slots(&self, p: Priority) -> Option<usize> {
        (self.config.max_in_flight > 0).then(|| {
            let share = (1.0 - self.config.reserves.of(p)) * self.config.max_in_flight as f64;
            // At least one slot for every class, so a reserve never locks a class out of an idle server.
            (share.floor() as usize).max(1)
        })
    }

    // ANCHOR: try_acquire
    /// Admits a request of class `p` at `now_ms` (taking a token and an in-flight slot) or says why
    /// not, with a `Retry-After` estimate.
    ///
    /// # Errors
    /// The [`Shed`] reason.
    pub fn try_acquire(&mut self, p: Priority, now_ms: u64) -> std::result::Result<Permit, Shed> {
        self.refill(now_ms);
        let need = self.floor(p) + 1.0;
        // A small epsilon: refill arithmetic in f64 must not refuse a token that is there.
        if self.level + 1e-9 < need {
            self.shed[p.index()] += 1;
            let ms = ((need - self.level) * 1000.0 / self.config.refill_per_s).ceil().max(1.0) as u64;
            return Err(Shed::Rate { retry_after_ms: ms });
        }
        if let Some(slots) = self.slots(p)
            && self.in_flight >= slots
        {
            self.shed[p.index()] += 1;
            let ms = self.mean_service_ms.map_or(DEFAULT_SERVICE_MS, |m| m.ceil().max(1.0) as u64);
            return Err(Shed::InFlight { retry_after_ms: ms });
        }
        self.level -= 1.0;
        self.in_flight += 1;
        self.admitted[p.index()] += 1;
        Ok(Permit { priority: p, admitted_ms: now_ms })
    }
    // ANCHOR_END: try_acquire

    /// Gives back an admitted request's in-flight slot; its service time feeds the `Retry-After`
    /// estimate of the in-flight cap.
    pub fn release(&mut self, permit: Permit, now_ms: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let took = now_ms.saturating_sub(permit.admitted_ms) as f64;
        self.mean_service_ms = Some(match self.mean_service_ms {
            None => took,
            Some(m) => 0.8 * m + 0.2 * took,
        });
    }
}
