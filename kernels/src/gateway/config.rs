//! The gateway's TOML configuration: listen address, backends, routing, retries, circuit breakers,
//! API keys with their tiers, limits and budgets, and the semantic cache.
//!
//! Parsed with `toml` + serde (TOML 1.0, <https://toml.io/en/v1.0.0>); unknown keys are refused, and
//! every invalid key or value is an [`Error::GatewayConfig`] naming it (`backends[1].tier: …`).
//! `tests/fixtures/gateway/gateway.toml` is a commented example.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::observe::canary::CanaryConfig;
use crate::observe::shed::{Priority, ShedConfig};
use crate::{Error, Result};

/// Where a request's data may go, from the most to the least restricted.
///
/// A key of tier `t` reaches only backends of tier `≤ t`: a `sovereign` key only `sovereign`
/// backends (machines you run), a `private` key also `private` ones (a provider under contract that
/// keeps no data), a `standard` key any backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Only machines you control.
    Sovereign,
    /// Also contracted providers that keep no data.
    Private,
    /// Any backend.
    Standard,
}

impl Tier {
    /// The lowercase name, as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Sovereign => "sovereign",
            Tier::Private => "private",
            Tier::Standard => "standard",
        }
    }

    /// Whether a request of a key of this tier may be sent to a backend of tier `backend`.
    pub fn admits(self, backend: Tier) -> bool {
        backend <= self
    }
}

/// How the backends that serve a model are ordered for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Lowest `priority` first; the next ones only on failure (failover).
    Priority,
    /// A random order drawn in proportion to `weight` (without replacement).
    Weighted,
    /// Fewest requests in flight at this gateway first (ties by priority).
    LeastOutstanding,
}

/// One backend: an OpenAI-compatible base URL (without `/v1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Its name in metrics and logs (unique).
    pub name: String,
    /// Base URL, `http://host:port` (the gateway appends `/v1/...`).
    pub url: String,
    /// Its privacy tier.
    pub tier: Tier,
    /// The model ids it serves (as clients name them).
    pub models: Vec<String>,
    /// Lower is preferred by the `priority` policy (default 0).
    #[serde(default)]
    pub priority: u32,
    /// Share for the `weighted` policy (default 1; 0 takes no traffic while others are up).
    #[serde(default = "one")]
    pub weight: u32,
    /// Name of an environment variable holding the bearer token the backend wants.
    pub api_key_env: Option<String>,
    /// USD per 1,000 prompt tokens (budgets and metrics; default 0).
    #[serde(default)]
    pub cost_per_1k_prompt_tokens: f64,
    /// USD per 1,000 completion tokens (default 0).
    #[serde(default)]
    pub cost_per_1k_completion_tokens: f64,
    /// A cheaper backend that takes this one's requests once the caller's (or the gateway's) daily
    /// cost budget is spent (see [`super::controls`]); it must be strictly cheaper.
    pub spill_to: Option<String>,
}

impl BackendConfig {
    /// Its price of 1,000 prompt plus 1,000 completion tokens (what "cheaper" compares).
    pub fn unit_price(&self) -> f64 {
        self.cost_per_1k_prompt_tokens + self.cost_per_1k_completion_tokens
    }
}

fn one() -> u32 {
    1
}

/// A model's routing policy (models without a route use [`RoutingConfig::default_policy`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The model id.
    pub model: String,
    /// Its policy.
    pub policy: Policy,
}

/// `[routing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Policy of models without a `[[routes]]` entry (default `priority`).
    #[serde(default = "priority")]
    pub default_policy: Policy,
}

fn priority() -> Policy {
    Policy::Priority
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig { default_policy: Policy::Priority }
    }
}

/// `[retry]`: attempts per request across backends, with exponential backoff and full jitter.
///
/// A failed attempt (connect error, timeout before the answer's head, 5xx, 429, or a stream that
/// failed before its first byte reached the client) is retried on the next backend after a delay
/// drawn uniformly from `[0, min(max_backoff_ms, base_backoff_ms · 2^retry)]` ("full jitter").
/// Nothing is retried once a byte was relayed to the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (default 3, at least 1).
    #[serde(default = "three")]
    pub max_attempts: u32,
    /// Backoff base in milliseconds (default 50).
    #[serde(default = "fifty")]
    pub base_backoff_ms: u64,
    /// Backoff cap in milliseconds (default 2000).
    #[serde(default = "two_thousand")]
    pub max_backoff_ms: u64,
}

fn three() -> u32 {
    3
}
fn fifty() -> u64 {
    50
}
fn two_thousand() -> u64 {
    2000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: 3, base_backoff_ms: 50, max_backoff_ms: 2000 }
    }
}

/// `[breaker]`: one circuit breaker per backend (see [`super::breaker`]).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (default 5, at least 1).
    #[serde(default = "five")]
    pub failure_threshold: u32,
    /// How long an open breaker refuses requests before it lets probes through (default 10,000 ms).
    #[serde(default = "ten_thousand")]
    pub open_ms: u64,
    /// Requests let through at once while half-open (default 1, at least 1). One success closes the
    /// breaker; one failure opens it again.
    #[serde(default = "one")]
    pub half_open_probes: u32,
}

fn five() -> u32 {
    5
}
fn ten_thousand() -> u64 {
    10_000
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, open_ms: 10_000, half_open_probes: 1 }
    }
}

/// `[health]`: the background health checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Milliseconds between checks of each backend (default 5000; 0 turns checks off).
    #[serde(default = "five_thousand")]
    pub interval_ms: u64,
    /// The path probed with `GET` (default `/health`); any 2xx is healthy.
    #[serde(default = "health_path")]
    pub path: String,
    /// Timeout of one probe in milliseconds (default 2000).
    #[serde(default = "two_thousand")]
    pub timeout_ms: u64,
}

fn five_thousand() -> u64 {
    5000
}
fn health_path() -> String {
    "/health".into()
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { interval_ms: 5000, path: health_path(), timeout_ms: 2000 }
    }
}

/// `[[keys]]`: one API key (clients send `Authorization: Bearer <key>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Its name in metrics (unique).
    pub name: String,
    /// BLAKE3 of the key's bytes, 64 hex digits (`sovereign gateway --hash-key KEY` prints it).
    pub blake3: String,
    /// The most open tier its requests may reach.
    pub tier: Tier,
    /// Token bucket on requests: capacity and refill per minute (absent: unlimited).
    pub requests_per_minute: Option<u32>,
    /// Token bucket on tokens (prompt + completion) per minute (absent: unlimited).
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day (absent: unlimited).
    pub daily_tokens: Option<u64>,
    /// USD per UTC day at the backends' prices (absent: unlimited). Once spent, requests spill to
    /// cheaper backends (`spill_to`) and are refused only when none serves the model.
    pub daily_cost_usd: Option<f64>,
    /// The key's class for load shedding (`critical`, `high`, `normal`, `low` or 0 to 3; default:
    /// `[shed] default_priority`).
    pub priority: Option<Priority>,
}

/// `[budget]`: the gateway's own daily cost budget, over every caller.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// USD per UTC day at the backends' prices (absent: unlimited); once spent, every request
    /// spills to cheaper backends as a key over its own budget does.
    pub daily_cost_usd: Option<f64>,
}

/// `[[canaries]]`: a model's traffic split between a stable and a canary backend (see
/// [`crate::observe::canary`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRouteConfig {
    /// The model id.
    pub model: String,
    /// The backend serving the current version.
    pub stable: String,
    /// The backend serving the new version.
    pub canary: String,
    /// The canary's starting share in percent.
    pub percent: f64,
    /// The judging window in milliseconds.
    pub window_ms: u64,
    /// Canary requests needed for a verdict (default 20).
    #[serde(default = "twenty")]
    pub min_requests: u64,
    /// Highest acceptable error rate (default 0.05).
    #[serde(default = "five_percent")]
    pub max_error_rate: f64,
    /// Highest acceptable p99 latency in milliseconds.
    pub max_p99_ms: u64,
    /// Percentages to promote through (default 5, 25, 50, 100).
    #[serde(default = "steps")]
    pub steps: Vec<f64>,
}

fn twenty() -> u64 {
    20
}
fn five_percent() -> f64 {
    0.05
}
fn steps() -> Vec<f64> {
    vec![5.0, 25.0, 50.0, 100.0]
}

impl CanaryRouteConfig {
    /// The controller's part of it.
    pub fn controller(&self) -> CanaryConfig {
        CanaryConfig {
            percent: self.percent,
            window_ms: self.window_ms,
            min_requests: self.min_requests,
            max_error_rate: self.max_error_rate,
            max_p99_ms: self.max_p99_ms,
            steps: self.steps.clone(),
        }
    }
}

/// `[cache]`: the semantic cache (see [`super::cache`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// On or off (default off).
    #[serde(default)]
    pub enabled: bool,
    /// Folder of the sentence encoder (default: all-MiniLM-L6-v2 in the models cache).
    pub embedding_model_dir: Option<PathBuf>,
    /// Least cosine similarity of the last user message for a semantic hit (default 0.95, in (0, 1]).
    #[serde(default = "threshold")]
    pub similarity_threshold: f32,
    /// Seconds an answer stays servable (default 600).
    #[serde(default = "six_hundred")]
    pub ttl_s: u64,
    /// Entries kept; the oldest go first (default 10,000).
    #[serde(default = "ten_thousand")]
    pub max_entries: u64,
}

fn threshold() -> f32 {
    0.95
}
fn six_hundred() -> u64 {
    600
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            embedding_model_dir: None,
            similarity_threshold: 0.95,
            ttl_s: 600,
            max_entries: 10_000,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen (default `127.0.0.1:8090`).
    #[serde(default = "listen")]
    pub listen: SocketAddr,
    /// Milliseconds to wait for a backend's connection (default 2000).
    #[serde(default = "two_thousand")]
    pub connect_timeout_ms: u64,
    /// Milliseconds to wait for the head of a backend's answer, and between two chunks of a stream
    /// (default 120,000).
    #[serde(default = "two_minutes")]
    pub request_timeout_ms: u64,
    /// Larger request bodies get 413 (default 1 MiB).
    #[serde(default = "mebibyte")]
    pub max_body_bytes: usize,
    /// Tier of requests without a key; absent: a key is required (401 without one).
    pub anonymous_tier: Option<Tier>,
    /// The backends.
    pub backends: Vec<BackendConfig>,
    /// Per-model policies.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The default policy.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Circuit breakers.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Health checks.
    #[serde(default)]
    pub health: HealthConfig,
    /// API keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// The semantic cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The gateway's daily cost budget.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// Load shedding by priority (absent: none).
    pub shed: Option<ShedConfig>,
    /// Canary rollouts.
    #[serde(default)]
    pub canaries: Vec<CanaryRouteConfig>,
}

fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
fn two_minutes() -> u64 {
    120_000
}
fn mebibyte() -> usize {
    1 << 20
}

/// `table.key (line N): ` for the byte offset of a parse error: the key on that line, prefixed by the
/// nearest `[table]` or `[[table]]` header above it.
fn locate(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line.split_once('=').map(|(k, _)| k.trim().to_owned()).filter(|k| !k.is_empty() && !k.starts_with('['));
    let name = match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => String::new(),
    };
    format!("{name} (line {line_no}): ")
}

fn bad(key: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::GatewayConfig(format!("{key}: {why}"))
}

impl GatewayConfig {
    /// Parses and validates a configuration.
    ///
    /// # Errors
    /// [`Error::GatewayConfig`] naming the key for a syntax error, an unknown key, a wrong type or
    /// an invalid value.
    pub fn from_toml_str(text: &str) -> Result<GatewayConfig> {
        let config: GatewayConfig = toml::from_str(text).map_err(|e| {
            Error::GatewayConfig(format!(
                "{}{}",
                e.span().map_or(String::new(), |s| locate(text, s.start)),
                e.message()
            ))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a configuration file.
    ///
    /// # Errors
    /// [`Error::GatewayConfig`] when the file cannot be read, else as [`GatewayConfig::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<GatewayConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::GatewayConfig(format!("reading {}: {e}", path.display())))?;
        GatewayConfig::from_toml_str(&text)
    }

    /// Checks every value a type cannot (names unique, URLs, ranges, hashes).
    ///
    /// # Errors
    /// [`Error::GatewayConfig`] naming the first bad key.
    pub fn validate(&self) -> Result<()> {
        if self.backends.is_empty() {
            return Err(bad("backends", "at least one [[backends]] entry is needed"));
        }
        let mut names = BTreeSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            if b.name.is_empty() || !names.insert(b.name.as_str()) {
                return Err(bad(format!("backends[{i}].name"), format!("{:?} is empty or not unique", b.name)));
            }
            let rest = b.url.strip_prefix("http://").or_else(|| b.url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
                return Err(bad(format!("backends[{i}].url"), format!("{:?} is not an http(s):// base URL", b.url)));
            }
            if b.models.is_empty() || b.models.iter().any(String::is_empty) {
                return Err(bad(format!("backends[{i}].models"), "list at least one non-empty model id"));
            }
            for (key, cost) in [
                ("cost_per_1k_prompt_tokens", b.cost_per_1k_prompt_tokens),
                ("cost_per_1k_completion_tokens", b.cost_per_1k_completion_tokens),
            ] {
                if !(cost.is_finite() && cost >= 0.0) {
                    return Err(bad(format!("backends[{i}].{key}"), format!("{cost} is not a price ≥ 0")));
                }
            }
            if b.api_key_env.as_ref().is_some_and(|v| v.is_empty()) {
                return Err(bad(format!("backends[{i}].api_key_env"), "empty variable name"));
            }
        }
        let served: BTreeSet<&str> = self.backends.iter().flat_map(|b| b.models.iter().map(String::as_str)).collect();
        let mut routed = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !served.contains(r.model.as_str()) {
                return Err(bad(format!("routes[{i}].model"), format!("no backend serves {:?}", r.model)));
            }
            if !routed.insert(r.model.as_str()) {
                return Err(bad(format!("routes[{i}].model"), format!("{:?} has two routes", r.model)));
            }
        }
        if self.retry.max_attempts == 0 {
            return Err(bad("retry.max_attempts", "must be at least 1"));
        }
        if self.retry.base_backoff_ms > self.retry.max_backoff_ms {
            return Err(bad("retry.base_backoff_ms", "is larger than retry.max_backoff_ms"));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(bad("breaker.failure_threshold", "must be at least 1"));
        }
        if self.breaker.half_open_probes == 0 {
            return Err(bad("breaker.half_open_probes", "must be at least 1"));
        }
        if !self.health.path.starts_with('/') {
            return Err(bad("health.path", format!("{:?} does not start with '/'", self.health.path)));
        }
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(bad(
                if self.connect_timeout_ms == 0 { "connect_timeout_ms" } else { "request_timeout_ms" },
                "must be at least 1",
            ));
        }
        let mut key_names = BTreeSet::new();
        let mut hashes = BTreeSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            if k.name.is_empty() || !key_names.insert(k.name.as_str()) {
                return Err(bad(format!("keys[{i}].name"), format!("{:?} is empty or not unique", k.name)));
            }
            if k.blake3.len() != 64 || !k.blake3.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(format!("keys[{i}].blake3"), "is not 64 hex digits (a BLAKE3 hash of the key)"));
            }
            if !hashes.insert(k.blake3.to_ascii_lowercase()) {
                return Err(bad(format!("keys[{i}].blake3"), "the same key hash is listed twice"));
            }
            if k.requests_per_minute == Some(0) {
                return Err(bad(format!("keys[{i}].requests_per_minute"), "must be at least 1 (omit for no limit)"));
            }
            if k.tokens_per_minute == Some(0) {
                return Err(bad(format!("keys[{i}].tokens_per_minute"), "must be at least 1 (omit for no limit)"));
            }
            if let Some(c) = k.daily_cost_usd
                && !(c.is_finite() && c >= 0.0)
            {
                return Err(bad(format!("keys[{i}].daily_cost_usd"), format!("{c} is not an amount ≥ 0")));
            }
        }
        if self.keys.is_empty() && self.anonymous_tier.is_none() {
            return Err(bad("keys", "no [[keys]] and no anonymous_tier: nobody could use the gateway"));
        }
        let c = &self.cache;
        if !(c.similarity_threshold > 0.0 && c.similarity_threshold <= 1.0) {
            return Err(bad("cache.similarity_threshold", format!("{} is not in (0, 1]", c.similarity_threshold)));
        }
        if c.max_entries == 0 {
            return Err(bad("cache.max_entries", "must be at least 1"));
        }
        if c.ttl_s == 0 {
            return Err(bad("cache.ttl_s", "must be at least 1"));
        }
        self.validate_controls()
    }

    /// Spill targets, the budget, shedding and canaries.
    fn validate_controls(&self) -> Result<()> {
        let find = |name: &str| self.backends.iter().position(|b| b.name == name);
        for (i, b) in self.backends.iter().enumerate() {
            if let Some(t) = &b.spill_to {
                let Some(j) = find(t) else {
                    return Err(bad(format!("backends[{i}].spill_to"), format!("no backend is named {t:?}")));
                };
                if self.backends[j].unit_price() >= b.unit_price() {
                    return Err(bad(
                        format!("backends[{i}].spill_to"),
                        format!("{t:?} is not cheaper than {:?}", b.name),
                    ));
                }
            }
        }
        if let Some(c) = self.budget.daily_cost_usd
            && !(c.is_finite() && c >= 0.0)
        {
            return Err(bad("budget.daily_cost_usd", format!("{c} is not an amount ≥ 0")));
        }
        if let Some(s) = &self.shed {
            s.validate().map_err(|e| match e {
                Error::ShedConfig(m) => Error::GatewayConfig(format!("shed.{m}")),
                e => e,
            })?;
        }
        let mut models = BTreeSet::new();
        for (i, c) in self.canaries.iter().enumerate() {
            if !models.insert(c.model.as_str()) {
                return Err(bad(format!("canaries[{i}].model"), format!("{:?} has two canaries", c.model)));
            }
            for (key, name) in [("stable", &c.stable), ("canary", &c.canary)] {
                match find(name) {
                    None => return Err(bad(format!("canaries[{i}].{key}"), format!("no backend is named {name:?}"))),
                    Some(j) if !self.backends[j].models.contains(&c.model) => {
                        return Err(bad(
                            format!("canaries[{i}].{key}"),
                            format!("{name:?} does not serve {:?}", c.model),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if c.stable == c.canary {
                return Err(bad(format!("canaries[{i}].canary"), "is the stable backend"));
            }
            c.controller().validate().map_err(|e| match e {
                Error::CanaryConfig(m) => Error::GatewayConfig(format!("canaries[{i}].{m}")),
                e => e,
            })?;
        }
        Ok(())
    }

    /// The policy of `model`.
    pub fn policy(&self, model: &str) -> Policy {
        self.routes.iter().find(|r| r.model == model).map_or(self.routing.default_policy, |r| r.policy)
    }
}

/// The hex BLAKE3 hash of an API key, as `[[keys]] blake3` stores it.
pub fn hash_key(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}
