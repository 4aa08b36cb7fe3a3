//! Tests of `kernels::gateway`: configuration errors, the circuit breaker, token buckets, budgets and
//! routing as pure state machines (a hand-moved clock, no sleeping), then the gateway over loopback
//! in front of fault-injecting backends (`gateway::fault`, a mock for faults a real server cannot be
//! made to produce on demand, which also records what reached it): privacy tiers, failover, 429s,
//! the semantic cache with the real all-MiniLM-L6-v2, and a chaos run. The `cli` part starts
//! `sovereign gateway` as a process in front of a real `kernels::serve` (SmolLM2) and drives it with
//! the official `openai` Python client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kernels::Error;
use kernels::gateway::breaker::{BreakerState, CircuitBreaker, Clock};
use kernels::gateway::config::{BreakerConfig, Policy, Tier};
use kernels::gateway::fault::{Fault, FaultBackend};
use kernels::gateway::limits::{KeyState, Refusal, TokenBucket, find_key};
use kernels::gateway::route::{Candidate, NoRoute, backoff_ms, eligible, order};
use kernels::gateway::{Gateway, GatewayConfig, SemanticCache, event_end, hash_key};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../fixtures/gateway/gateway.toml");

// ---- configuration --------------------------------------------------------------

#[test]
fn the_example_config_parses_with_its_stated_values() {
    let c = GatewayConfig::from_toml_str(FIXTURE).unwrap();
    assert_eq!(c.backends.len(), 3);
    assert_eq!(c.backends[2].tier, Tier::Private);
    assert_eq!(c.policy("smollm2-135m-instruct"), Policy::LeastOutstanding);
    assert_eq!(c.policy("big-model"), Policy::Priority);
    assert_eq!((c.breaker.failure_threshold, c.breaker.open_ms, c.breaker.half_open_probes), (5, 10_000, 1));
    assert_eq!(c.keys[0].requests_per_minute, Some(60));
    assert!(c.cache.enabled);
    assert_eq!(c.keys[0].blake3, hash_key("sk-demo-alice"));
    assert_eq!(c.keys[1].blake3, hash_key("sk-demo-batch"));
}

fn minimal(extra: &str) -> String {
    format!(
        "anonymous_tier = \"standard\"\n[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntier = \"sovereign\"\nmodels = [\"m\"]\n{extra}"
    )
}

/// Every bad config is an `Error::GatewayConfig` whose message names the key.
fn check_config_error(text: &str, names: &str) {
    match GatewayConfig::from_toml_str(text) {
        Err(Error::GatewayConfig(m)) => assert!(m.contains(names), "{m:?} does not name {names:?}"),
        other => panic!("expected a GatewayConfig error naming {names:?}, got {other:?}"),
    }
}

#[test]
fn every_invalid_key_or_value_is_a_typed_error_naming_it() {
    GatewayConfig::from_toml_str(&minimal("")).unwrap();
    check_config_error("listen = \"nowhere\"\n", "listen");
    check_config_error(&minimal("colour = 3"), "colour");
    check_config_error(&minimal("[retry]\nmax_attempts = 0"), "retry.max_attempts");
    check_config_error(&minimal("[retry]\nmax_atempts = 2"), "max_atempts");
    check_config_error(&minimal("[retry]\nbase_backoff_ms = 10\nmax_backoff_ms = 5"), "retry.base_backoff_ms");
    check_config_error(&minimal("[breaker]\nfailure_threshold = 0"), "breaker.failure_threshold");
    check_config_error(&minimal("[breaker]\nhalf_open_probes = 0"), "breaker.half_open_probes");
    check_config_error(&minimal("[health]\npath = \"health\""), "health.path");
    check_config_error(&minimal("[cache]\nsimilarity_threshold = 1.5"), "cache.similarity_threshold");
    check_config_error(&minimal("[cache]\nttl_s = 0"), "cache.ttl_s");
    check_config_error(&minimal("[routing]\ndefault_policy = \"random\""), "random");
    check_config_error(&minimal("[[routes]]\nmodel = \"other\"\npolicy = \"weighted\""), "routes[0].model");
    check_config_error(
        &minimal("[[backends]]\nname = \"a\"\nurl = \"http://x\"\ntier = \"private\"\nmodels = [\"m\"]"),
        "backends[1].name",
    );
    check_config_error(
        &minimal("[[backends]]\nname = \"b\"\nurl = \"ftp://x\"\ntier = \"private\"\nmodels = [\"m\"]"),
        "backends[1].url",
    );
    check_config_error(
        &minimal("[[backends]]\nname = \"b\"\nurl = \"http://x\"\ntier = \"public\"\nmodels = [\"m\"]"),
        "public",
    );
    check_config_error(
        &minimal("[[backends]]\nname = \"b\"\nurl = \"http://x\"\ntier = \"private\"\nmodels = []"),
        "backends[1].models",
    );
    check_config_error(
        &minimal(
            "[[backends]]\nname = \"b\"\nurl = \"http://x\"\ntier = \"private\"\nmodels = [\"m\"]\ncost_per_1k_prompt_tokens = -1.0",
        ),
        "backends[1].cost_per_1k_prompt_tokens",
    );
    check_config_error(&minimal("[[keys]]\nname = \"k\"\nblake3 = \"abc\"\ntier = \"private\""), "keys[0].blake3");
    let h = hash_key("x");
    check_config_error(
        &minimal(&format!("[[keys]]\nname = \"k\"\nblake3 = \"{h}\"\ntier = \"private\"\nrequests_per_minute = 0")),
        "keys[0].requests_per_minute",
    );
    check_config_error(
        &minimal(&format!(
            "[[keys]]\nname = \"k\"\nblake3 = \"{h}\"\ntier = \"private\"\n[[keys]]\nname = \"k\"\nblake3 = \"{}\"\ntier = \"private\"",
            hash_key("y")
        )),
        "keys[1].name",
    );
    check_config_error(
        "[[backends]]\nname = \"a\"\nurl = \"http://x\"\ntier = \"private\"\nmodels = [\"m\"]\n",
        "keys",
    );
    check_config_error("anonymous_tier = \"standard\"\nbackends = []\n", "backends");
    match GatewayConfig::load("/nonexistent/gateway.toml") {
        Err(Error::GatewayConfig(m)) => assert!(m.contains("/nonexistent/gateway.toml"), "{m}"),
        other => panic!("{other:?}"),
    }
}

// ---- state machines ---------------------------------------------------------------

#[test]
fn the_circuit_breaker_opens_half_opens_and_closes_on_a_hand_moved_clock() {
    let clock = Clock::manual(1_000);
    let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 3, open_ms: 500, half_open_probes: 1 });
    let now = || clock.now_ms();
    // Closed: two failures and a success reset the count; three in a row open it.
    for _ in 0..2 {
        assert!(b.try_acquire(now()));
        b.on_failure(now());
    }
    assert_eq!(b.state(now()), BreakerState::Closed { failures: 2 });
    b.on_success(now());
    for _ in 0..3 {
        assert!(b.try_acquire(now()));
        b.on_failure(now());
    }
    assert_eq!(b.state(now()), BreakerState::Open { until_ms: 1_500 });
    assert!(!b.try_acquire(now()));
    clock.advance(499);
    assert!(!b.try_acquire(now()), "still open 1 ms before open_ms is up");
    clock.advance(1);
    // Half-open: one probe at a time; its failure reopens for another open_ms.
    assert!(b.try_acquire(now()));
    assert!(!b.try_acquire(now()), "a second probe while the first is out");
    b.on_failure(now());
    assert_eq!(b.state(now()), BreakerState::Open { until_ms: 2_000 });
    clock.advance(500);
    assert!(b.try_acquire(now()));
    // A neutral outcome (the client left) frees the probe slot without a verdict.
    b.on_neutral(now());
    assert!(b.try_acquire(now()));
    b.on_success(now());
    assert_eq!(b.state(now()), BreakerState::Closed { failures: 0 });
    assert_eq!(BreakerState::Open { until_ms: 0 }.gauge(), 2);
}

#[test]
fn token_buckets_refill_per_minute_and_say_how_long_to_wait() {
    let mut b = TokenBucket::per_minute(60, 0);
    for _ in 0..60 {
        assert!(b.try_take(1.0, 0).is_ok());
    }
    assert_eq!(b.try_take(1.0, 0), Err(1_000), "one request per second refills");
    assert!(b.try_take(1.0, 1_000).is_ok());
    b.charge(30.0, 1_000);
    assert_eq!(b.check_no_debt(1_000), Err(30_000));
    assert!(b.check_no_debt(31_000).is_ok());
    assert!((b.level(10_000_000) - 60.0).abs() < 1e-9, "capped at the capacity");
}

fn key(extra: &str) -> KeyState {
    let text = minimal(&format!("[[keys]]\nname = \"k\"\nblake3 = \"{}\"\ntier = \"private\"\n{extra}", hash_key("k")));
    KeyState::new(GatewayConfig::from_toml_str(&text).unwrap().keys.remove(0), 0)
}

#[test]
fn budgets_and_rate_limits_refuse_with_the_limit_and_the_wait() {
    let mut k = key("requests_per_minute = 2\ntokens_per_minute = 100");
    assert!(k.admit(0).is_ok() && k.admit(0).is_ok());
    assert_eq!(k.admit(0), Err(Refusal::RateLimited { limit: "requests_per_minute", retry_after_ms: 30_000 }));
    k.charge(150, 0.0, 30_000);
    assert_eq!(k.admit(30_000), Err(Refusal::RateLimited { limit: "tokens_per_minute", retry_after_ms: 30_000 }));
    assert!(k.admit(60_000).is_ok());

    let day = 86_400_000;
    let mut k = key("daily_tokens = 100\ndaily_cost_usd = 1.0");
    k.charge(99, 0.0, 10);
    assert!(k.admit(10).is_ok(), "under budget: served, even if this request crosses it");
    k.charge(5, 0.0, 20);
    assert_eq!(k.admit(day - 1_000), Err(Refusal::BudgetExceeded { budget: "daily_tokens", retry_after_ms: 1_000 }));
    assert!(k.admit(day).is_ok(), "a new UTC day resets the budget");
    k.charge(0, 1.5, day + 5);
    assert_eq!(k.admit(day + 5), Err(Refusal::BudgetExceeded { budget: "daily_cost_usd", retry_after_ms: day - 5 }));
}

#[test]
fn keys_are_found_by_hash_only() {
    let stored: Vec<blake3::Hash> = ["alpha", "beta", "gamma"].iter().map(|k| blake3::hash(k.as_bytes())).collect();
    for (presented, want) in [("beta", Some(1)), ("gamma", Some(2)), ("Beta", None), ("", None), ("alpha ", None)] {
        assert_eq!(find_key(&stored, presented), want, "{presented:?}");
    }
}

fn candidate(index: usize, priority: u32, weight: u32, outstanding: usize) -> Candidate {
    Candidate { index, priority, weight, outstanding }
}

#[test]
fn routing_policies_order_the_backends() {
    let c = [candidate(0, 2, 1, 0), candidate(1, 0, 3, 5), candidate(2, 1, 0, 1)];
    assert_eq!(order(&c, Policy::Priority, || 0.0), vec![1, 2, 0]);
    assert_eq!(order(&c, Policy::LeastOutstanding, || 0.0), vec![0, 2, 1]);
    // Weighted: draws in [0, 1) over total weight 4 (backend 0 has [0, 1), backend 1 [1, 4));
    // the zero-weight backend comes last.
    assert_eq!(order(&c, Policy::Weighted, || 0.1), vec![0, 1, 2]);
    assert_eq!(order(&c, Policy::Weighted, || 0.5), vec![1, 0, 2]);
    // Over many seeded draws the first pick follows the weights (3:1).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut unit = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let firsts = (0..4000).filter(|_| order(&c, Policy::Weighted, &mut unit)[0] == 1).count();
    assert!((2800..3200).contains(&firsts), "{firsts} of 4000 first picks went to the weight-3 backend");
}

#[test]
fn backoff_is_full_jitter_capped() {
    for (retry, unit, want) in
        [(0, 0.999, 49), (0, 0.0, 0), (1, 0.5, 50), (3, 1.0, 400), (10, 1.0, 1000), (63, 1.0, 1000)]
    {
        assert_eq!(backoff_ms(retry, 50, 1000, unit), want, "retry {retry} unit {unit}");
    }
}

#[test]
fn privacy_tiers_filter_backends_before_anything_else() {
    let text = minimal(
        "[[backends]]\nname = \"p\"\nurl = \"http://x\"\ntier = \"private\"\nmodels = [\"m\", \"cloud\"]\n\
         [[backends]]\nname = \"s\"\nurl = \"http://y\"\ntier = \"standard\"\nmodels = [\"m\", \"cloud\"]",
    );
    let b = GatewayConfig::from_toml_str(&text).unwrap().backends;
    assert_eq!(eligible(&b, "m", Tier::Sovereign), Ok(vec![0]));
    assert_eq!(eligible(&b, "m", Tier::Private), Ok(vec![0, 1]));
    assert_eq!(eligible(&b, "m", Tier::Standard), Ok(vec![0, 1, 2]));
    assert_eq!(eligible(&b, "cloud", Tier::Sovereign), Err(NoRoute::OutsideTier));
    assert_eq!(eligible(&b, "nope", Tier::Standard), Err(NoRoute::UnknownModel));
}

#[test]
fn server_sent_events_end_at_a_blank_line_with_any_line_ending() {
    for (buf, want) in [
        (&b"data: a\n\ndata: b\n\n"[..], Some(9)),
        (b"data: a\r\n\r\n", Some(11)),
        (b"data: a\r\rdata: b", Some(9)),
        (b"event: x\ndata: a\n\n", Some(18)),
        (b"data: a\n", None),
        (b"data: a\r\n\r", None),
        (b"", None),
    ] {
        assert_eq!(event_end(buf), want, "{:?}", String::from_utf8_lossy(buf));
    }
}

// ---- the gateway over loopback ------------------------------------------------------

/// A gateway on a free loopback port, served until the test's runtime ends.
async fn start(config: &str, clock: Clock, cache: Option<SemanticCache>) -> (String, Arc<Gateway>) {
    let gw = Gateway::new(GatewayConfig::from_toml_str(config).unwrap(), clock, cache).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let g = gw.clone();
    tokio::spawn(kernels::gateway::serve(listener, g, std::future::pending()));
    (url, gw)
}

fn backend_toml(name: &str, url: &str, tier: &str, models: &[&str], priority: u32) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\ntier = \"{tier}\"\nmodels = {}\npriority = {priority}\n",
        serde_json::to_string(models).unwrap()
    )
}

fn key_toml(name: &str, tier: &str, extra: &str) -> String {
    format!(
        "[[keys]]\nname = \"{name}\"\nblake3 = \"{}\"\ntier = \"{tier}\"\n{extra}\n",
        hash_key(&format!("sk-{name}"))
    )
}

const QUICK: &str = "[health]\ninterval_ms = 0\n[retry]\nmax_attempts = 4\nbase_backoff_ms = 2\nmax_backoff_ms = 20\n";

async fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(format!("{url}/v1/chat/completions")).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(format!("sk-{k}"));
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn chat(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0})
}

fn answer(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_reaches_a_backend_outside_its_keys_tier() {
    let models = ["m", "cloud-only"];
    let sov = FaultBackend::start("sov", &["m"], |_| Fault::None).await;
    let prv = FaultBackend::start("prv", &models, |_| Fault::None).await;
    // The standard backend is everyone's first choice by priority, and it fails over nothing.
    let std = FaultBackend::start("std", &models, |_| Fault::None).await;
    let config = format!(
        "{}{}{}{}{}{}{QUICK}",
        backend_toml("std", &std.url(), "standard", &models, 0),
        backend_toml("prv", &prv.url(), "private", &models, 1),
        backend_toml("sov", &sov.url(), "sovereign", &["m"], 2),
        key_toml("s", "sovereign", ""),
        key_toml("p", "private", ""),
        key_toml("o", "standard", ""),
    );
    let (url, _gw) = start(&config, Clock::System, None).await;
    for (k, model, status, served_by) in [
        ("s", "m", 200, Some("sov")),
        ("p", "m", 200, Some("prv")),
        ("o", "m", 200, Some("std")),
        ("s", "cloud-only", 403, None),
        ("p", "cloud-only", 200, Some("prv")),
        ("o", "nope", 404, None),
    ] {
        let (got, _, v) = post(&url, Some(k), &chat(model, &format!("from {k} to {model}"))).await;
        assert_eq!(got, status, "{k} {model}: {v}");
        match served_by {
            Some(b) => assert_eq!(answer(&v), format!("{b} heard: from {k} to {model}")),
            None => assert!(v["error"]["code"].is_string(), "{v}"),
        }
    }
    let (_, _, v) = post(&url, Some("s"), &chat("cloud-only", "x")).await;
    assert_eq!(v["error"]["code"], "tier_not_permitted");
    // What reached each backend: only its own tier's keys.
    let texts = |b: &FaultBackend| -> Vec<String> {
        b.received().iter().map(|(_, v)| v["messages"][0]["content"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(texts(&sov), ["from s to m"]);
    assert_eq!(texts(&prv), ["from p to m", "from p to cloud-only"]);
    assert_eq!(texts(&std), ["from o to m"]);

    // A failing sovereign backend does not fail over to a wider tier: the sovereign key gets the error.
    let broken = FaultBackend::start("sov", &["m"], |_| Fault::Status(500)).await;
    let config = format!(
        "{}{}{}{QUICK}",
        backend_toml("std", &std.url(), "standard", &models, 0),
        backend_toml("sov", &broken.url(), "sovereign", &["m"], 1),
        key_toml("s", "sovereign", ""),
    );
    let (url, _gw) = start(&config, Clock::System, None).await;
    let (got, _, _) = post(&url, Some("s"), &chat("m", "secret")).await;
    assert_eq!(got, 500);
    assert_eq!(broken.count("/v1/chat/completions"), 4, "retried max_attempts times on the one sovereign backend");
    assert_eq!(std.count("/v1/chat/completions"), 1, "the standard backend saw nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limits_and_budgets_answer_openai_shaped_errors_and_usage_reaches_metrics() {
    let b = FaultBackend::start("b", &["m"], |_| Fault::None).await;
    let clock = Clock::manual(1_000_000);
    let config = format!(
        "{}{}{}{QUICK}",
        backend_toml("b", &b.url(), "sovereign", &["m"], 0),
        key_toml("rl", "sovereign", "requests_per_minute = 2"),
        key_toml("bud", "sovereign", "daily_tokens = 10"),
    );
    let (url, gw) = start(&config, clock.clone(), None).await;
    let (status, _, v) = post(&url, None, &chat("m", "hi")).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (status, _, _) = post(&url, Some("nobody"), &chat("m", "hi")).await;
    assert_eq!(status, 401);

    for _ in 0..2 {
        assert_eq!(post(&url, Some("rl"), &chat("m", "hi")).await.0, 200);
    }
    let (status, headers, v) = post(&url, Some("rl"), &chat("m", "hi")).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(headers["retry-after"], "30");
    clock.advance(30_000);
    assert_eq!(post(&url, Some("rl"), &chat("m", "hi")).await.0, 200);

    // "one two three four five six" = 6 prompt words + "b heard: …" = 8 completion words: 14 ≥ 10.
    let (status, _, v) = post(&url, Some("bud"), &chat("m", "one two three four five six")).await;
    assert_eq!((status, v["usage"]["total_tokens"].as_u64()), (200, Some(14)));
    let (status, headers, v) = post(&url, Some("bud"), &chat("m", "again")).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{v}");
    let to_midnight = (86_400_000u64 - 1_030_000).div_ceil(1000); // the manual clock is at 1,030,000 ms of day 0
    assert_eq!(headers["retry-after"], to_midnight.to_string().as_str());
    assert_eq!(gw.spent_today("bud"), Some((14, 0.0)));
    assert_eq!(b.count("/v1/chat/completions"), 4, "refused requests never reached the backend");

    let page = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "sovereign_gateway_tokens_total{key=\"bud\",model=\"m\",kind=\"prompt\"} 6",
        "sovereign_gateway_tokens_total{key=\"bud\",model=\"m\",kind=\"completion\"} 8",
        "sovereign_gateway_requests_total{key=\"rl\",model=\"m\",endpoint=\"/v1/chat/completions\",status=\"429\"} 1",
        "sovereign_gateway_refusals_total{key=\"bud\",code=\"budget_exceeded\"} 1",
        "# TYPE sovereign_gateway_breaker_state gauge",
    ] {
        assert!(page.lines().any(|l| l == line), "{line:?} not in /metrics:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_opens_the_breaker_and_a_probe_closes_it_again() {
    let flaky = FaultBackend::start("flaky", &["m"], |n| if n < 6 { Fault::Status(503) } else { Fault::None }).await;
    let good = FaultBackend::start("good", &["m"], |_| Fault::None).await;
    let clock = Clock::manual(0);
    let config = format!(
        "anonymous_tier = \"sovereign\"\n{}{}{QUICK}[breaker]\nfailure_threshold = 3\nopen_ms = 1000\n",
        backend_toml("flaky", &flaky.url(), "sovereign", &["m"], 0),
        backend_toml("good", &good.url(), "sovereign", &["m"], 1),
    );
    let (url, gw) = start(&config, clock.clone(), None).await;
    for i in 0..5 {
        let (status, headers, v) = post(&url, None, &chat("m", &format!("q{i}"))).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-sovereign-backend"], "good");
        assert_eq!(answer(&v), format!("good heard: q{i}"));
    }
    assert_eq!(flaky.count("/v1/chat/completions"), 3, "three failures open the breaker; then it is skipped");
    assert_eq!(gw.breaker_state("flaky"), Some(BreakerState::Open { until_ms: 1000 }));
    clock.advance(1000);
    // Half-open: one probe (still failing: 503 number 4) reopens it; the request fails over.
    assert_eq!(post(&url, None, &chat("m", "probe")).await.0, 200);
    assert_eq!(flaky.count("/v1/chat/completions"), 4);
    clock.advance(1000);
    // Probes 5 and 6 fail, then the backend has recovered.
    for _ in 0..2 {
        post(&url, None, &chat("m", "probe")).await;
        clock.advance(1000);
    }
    let (_, headers, _) = post(&url, None, &chat("m", "back")).await;
    assert_eq!(headers["x-sovereign-backend"], "flaky");
    assert_eq!(gw.breaker_state("flaky"), Some(BreakerState::Closed { failures: 0 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_skip_a_dead_backend_and_models_follow_the_tier() {
    let near = FaultBackend::start("near", &["m"], |_| Fault::None).await;
    let far = FaultBackend::start("far", &["m", "cloud"], |_| Fault::None).await;
    let config = format!(
        "{}{}{}{}{QUICK}",
        backend_toml("near", &near.url(), "sovereign", &["m"], 0),
        backend_toml("far", &far.url(), "standard", &["m", "cloud"], 1),
        key_toml("s", "sovereign", ""),
        key_toml("o", "standard", ""),
    );
    let (url, gw) = start(&config, Clock::System, None).await;
    let client = reqwest::Client::new();
    let models = |k: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let v: Value = client
                .get(format!("{url}/v1/models"))
                .bearer_auth(format!("sk-{k}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(models("s").await, ["m"]);
    assert_eq!(models("o").await, ["cloud", "m"]);
    assert_eq!(client.get(format!("{url}/v1/models")).send().await.unwrap().status(), 401);

    near.kill();
    // Wait (bounded) until the killed backend refuses connections, then check health once.
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(near.addr).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.check_health().await;
    let health: Value = reqwest::get(format!("{url}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["backends"][0]["healthy"], false);
    assert_eq!(health["backends"][1]["healthy"], true);
    assert_eq!(gw.metrics.get("gateway_backend_up", &[("backend", "near")]), 0.0);
    // The standard key goes to `far` at once: no attempt is spent on the unhealthy first choice.
    let (status, headers, _) = post(&url, Some("o"), &chat("m", "hi")).await;
    assert_eq!((status, headers["x-sovereign-backend"].to_str().unwrap()), (200, "far"));
    assert_eq!(
        gw.metrics.get("gateway_upstream_attempts_total", &[("backend", "near"), ("outcome", "connect_error")]),
        0.0
    );
    // The sovereign key has only the dead backend: it is tried anyway (health may be stale) and fails.
    let (status, _, v) = post(&url, Some("s"), &chat("m", "hi")).await;
    assert_eq!((status, v["error"]["code"].as_str()), (502, Some("upstream_unavailable")), "{v}");
    assert_eq!(far.count("/v1/chat/completions"), 1);
    far.kill();
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(far.addr).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.check_health().await;
    assert_eq!(reqwest::get(format!("{url}/health")).await.unwrap().status(), 503);
}

/// A backend that frames its stream with CRLF line endings, as the SSE format allows: a raw-socket
/// mock, because the servers at hand (kernels::serve, the fault backend) write LF only.
async fn crlf_backend() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = conn.read(&mut buf).await;
                let chunk = |c: &str| {
                    format!(
                        "data: {}\r\n\r\n",
                        json!({"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": null}]})
                    )
                };
                let usage =
                    json!({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}});
                let body = format!("{}{}data: {usage}\r\n\r\ndata: [DONE]\r\n\r\n", chunk("CR"), chunk("LF"));
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crlf_framed_stream_is_relayed_whole_and_its_usage_counted() {
    let backend = crlf_backend().await;
    let config =
        format!("{}{}{QUICK}", backend_toml("crlf", &backend, "sovereign", &["m"], 0), key_toml("s", "sovereign", ""));
    let (url, gw) = start(&config, Clock::System, None).await;
    let mut body = chat("m", "hi");
    body["stream"] = json!(true);
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("sk-s")
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    let events: Vec<String> =
        text.split("\r\n\r\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect();
    assert_eq!(stream_text(&events), "CRLF");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!text.contains("usage"), "the usage chunk the client did not ask for is dropped: {text}");
    assert_eq!(gw.spent_today("s"), Some((4, 0.0)));
}

/// A streamed answer as SSE `data:` payloads, and whether the stream ended cleanly.
async fn read_events(resp: reqwest::Response) -> (Vec<String>, bool) {
    let mut s = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut clean = true;
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(c) => buf.extend_from_slice(&c),
            Err(_) => {
                clean = false;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    (text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect(), clean)
}

fn stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_killed_a_slow_and_a_failing_backend_lose_and_duplicate_nothing() {
    // A hangs its first stream after 3 chunks until killed; B is slow on every third request; C
    // answers 500 to every other request.
    let plan_a = |n: usize| if n == 0 { Fault::HangAfter(3) } else { Fault::None };
    let plan_b = |n: usize| if n % 3 == 1 { Fault::Slow(300) } else { Fault::None };
    let plan_c = |n: usize| if n.is_multiple_of(2) { Fault::Status(500) } else { Fault::None };
    let a = FaultBackend::start("A", &["m"], plan_a).await;
    let b = FaultBackend::start("B", &["m"], plan_b).await;
    let c = FaultBackend::start("C", &["m"], plan_c).await;
    let config = format!(
        "anonymous_tier = \"sovereign\"\n{}{}{}{QUICK}[[routes]]\nmodel = \"m\"\npolicy = \"least_outstanding\"\n",
        backend_toml("A", &a.url(), "sovereign", &["m"], 0),
        backend_toml("B", &b.url(), "sovereign", &["m"], 1),
        backend_toml("C", &c.url(), "sovereign", &["m"], 2),
    );
    let (url, _gw) = start(&config, Clock::System, None).await;
    let started = Instant::now();
    let client = reqwest::Client::new();

    // The stream that A will be killed under: wait for its first three events.
    let mut s0 = chat("m", "s0 tells a long story that never ends");
    s0["stream"] = json!(true);
    let resp = client.post(format!("{url}/v1/chat/completions")).json(&s0).send().await.unwrap();
    assert_eq!(resp.headers()["x-sovereign-backend"], "A");
    let mut upstream = resp.bytes_stream();
    let mut seen = Vec::new();
    while seen.windows(2).filter(|w| w == b"\n\n").count() < 3 {
        seen.extend_from_slice(&upstream.next().await.unwrap().unwrap());
    }

    // Traffic while A holds the stream: 24 requests, half streamed, 8 at a time.
    let run = |from: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut out = Vec::new();
            for round in 0..3 {
                let mut tasks = Vec::new();
                for i in 0..8 {
                    let id = from + round * 8 + i;
                    let (client, url) = (client.clone(), url.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut body = chat("m", &format!("req-{id}"));
                        body["stream"] = json!(id.is_multiple_of(2));
                        let t = Instant::now();
                        let resp = client.post(format!("{url}/v1/chat/completions")).json(&body).send().await.unwrap();
                        assert_eq!(resp.status(), 200, "req-{id}");
                        let text = if id.is_multiple_of(2) {
                            let (events, clean) = read_events(resp).await;
                            assert!(
                                clean && events.last().map(String::as_str) == Some("[DONE]"),
                                "req-{id}: {events:?}"
                            );
                            stream_text(&events)
                        } else {
                            answer(&resp.json::<Value>().await.unwrap()).to_owned()
                        };
                        (id, text, t.elapsed())
                    }));
                }
                for t in tasks {
                    out.push(t.await.unwrap());
                }
            }
            out
        }
    };
    let mut answers = run(0).await;
    // Kill A mid-stream: the client gets the events so far, then an error event, no [DONE].
    a.kill();
    let mut rest = Vec::new();
    while let Some(Ok(c)) = upstream.next().await {
        rest.extend_from_slice(&c);
    }
    let all = String::from_utf8_lossy(&[seen, rest].concat()).into_owned();
    let events: Vec<&str> = all.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(stream_text(&events.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()), "A heard: s0");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted", "{all}");
    assert!(!all.contains("[DONE]"));
    // After the kill A refuses connections; 24 more requests are served by B and C.
    answers.extend(run(100).await);

    // Every request answered once, by the backend that received it without a fault.
    let receptions = |be: &FaultBackend, plan: &dyn Fn(usize) -> Fault| -> Vec<(String, bool)> {
        be.received()
            .iter()
            .enumerate()
            .map(|(n, (_, v))| {
                (
                    v["messages"][0]["content"].as_str().unwrap().to_owned(),
                    plan(n) == Fault::None || matches!(plan(n), Fault::Slow(_)),
                )
            })
            .collect()
    };
    let (ra, rb, rc) = (receptions(&a, &plan_a), receptions(&b, &plan_b), receptions(&c, &plan_c));
    assert_eq!(answers.len(), 48);
    for (id, text, _) in &answers {
        let q = format!("req-{id}");
        let served: Vec<&str> = [("A", &ra), ("B", &rb), ("C", &rc)]
            .iter()
            .flat_map(|(n, r)| r.iter().filter(|(t, ok)| *ok && *t == q).map(move |_| *n))
            .collect();
        assert_eq!(served.len(), 1, "{q} was served by {served:?}");
        assert_eq!(*text, format!("{} heard: {q}", served[0]));
    }
    assert_eq!(ra.iter().filter(|(t, _)| t.starts_with("s0")).count(), 1, "the broken stream was not retried");
    assert_eq!(rb.iter().chain(&rc).filter(|(t, _)| t.starts_with("s0")).count(), 0);
    let failed_at_c = rc.iter().filter(|(_, ok)| !ok).count();
    assert!(failed_at_c >= 1 && !rb.is_empty(), "C's 500s and B were exercised");
    assert!(ra.iter().skip(1).all(|(t, _)| answers.iter().any(|(id, ..)| format!("req-{id}") == *t && *id < 100)));
    // Bounded added latency: the slowest request took the slow backend's 300 ms plus backoffs, far
    // below this generous bound; the run itself is bounded too.
    let slowest = answers.iter().map(|(.., d)| *d).max().unwrap();
    eprintln!(
        "chaos: 48 requests + 1 killed stream; received A {} B {} C {} (C's 500s {failed_at_c}); slowest {slowest:?}",
        ra.len(),
        rb.len(),
        rc.len()
    );
    assert!(slowest < Duration::from_secs(10), "slowest request {slowest:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

// ---- the semantic cache -------------------------------------------------------------

fn minilm() -> Arc<kernels::nn::bert::BertModel> {
    let file = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors").unwrap_or_else(|e| panic!("{e}"));
    Arc::new(kernels::nn::bert::BertModel::load(file.parent().unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_answers_repeats_and_paraphrases_but_not_near_misses_other_tiers_or_streams() {
    let b = FaultBackend::start("b", &["m"], |_| Fault::None).await;
    let clock = Clock::manual(0);
    let mut cache_config = kernels::gateway::config::CacheConfig { enabled: true, ttl_s: 60, ..Default::default() };
    cache_config.similarity_threshold = 0.9;
    let cache = SemanticCache::new(cache_config, minilm()).unwrap();
    let config = format!(
        "{}{}{}{QUICK}[cache]\nenabled = true\nsimilarity_threshold = 0.9\nttl_s = 60\n",
        backend_toml("b", &b.url(), "sovereign", &["m"], 0),
        key_toml("s", "sovereign", ""),
        key_toml("p", "private", ""),
    );
    let (url, gw) = start(&config, clock.clone(), Some(cache)).await;
    let calls = || b.count("/v1/chat/completions");
    let check = |status: u16, headers: &reqwest::header::HeaderMap, want: Option<&str>| {
        assert_eq!(status, 200);
        assert_eq!(headers.get("x-sovereign-cache").map(|v| v.to_str().unwrap()), want);
    };
    let q = "What is the capital of France?";
    let (s, h, first) = post(&url, Some("s"), &chat("m", q)).await;
    check(s, &h, None);
    let (s, h, again) = post(&url, Some("s"), &chat("m", q)).await;
    check(s, &h, Some("exact"));
    assert_eq!(again, first);
    let (s, h, para) = post(&url, Some("s"), &chat("m", "what's the capital of france")).await;
    check(s, &h, Some("semantic"));
    assert_eq!(answer(&para), format!("b heard: {q}"));
    assert_eq!(calls(), 1);
    // Near miss, another tier, another max_tokens, sampling, streaming: all go to the backend.
    let mut hot = chat("m", q);
    hot["temperature"] = json!(0.7);
    let mut longer = chat("m", q);
    longer["max_tokens"] = json!(5);
    for (k, body) in [("s", chat("m", "What is the capital of Spain?")), ("p", chat("m", q)), ("s", longer), ("s", hot)]
    {
        let (s, h, _) = post(&url, Some(k), &body).await;
        check(s, &h, None);
    }
    let mut streamed = chat("m", q);
    streamed["stream"] = json!(true);
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("sk-s")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("x-sovereign-cache").is_none());
    assert_eq!(stream_text(&read_events(resp).await.0), format!("b heard: {q}"));
    assert_eq!(calls(), 6);
    // The TTL: a minute later the entry is not served.
    clock.advance(60_000);
    let (s, h, _) = post(&url, Some("s"), &chat("m", q)).await;
    check(s, &h, None);
    assert_eq!(calls(), 7);
    assert_eq!(gw.metrics.get("gateway_cache_total", &[("result", "semantic")]), 1.0);
}

// ---- the binary, a real backend and the official client ------------------------------

#[cfg(feature = "cli")]
mod process {
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use kernels::gateway::hash_key;
    use kernels::serve::{ChatModel, EmbeddingModel, Models, ServerConfig};
    use serde_json::Value;

    const CHAT: &str = "smollm2-135m-instruct";
    const EMBED: &str = "all-minilm-l6-v2";

    /// A real `kernels::serve` backend with SmolLM2 and MiniLM in a thread of its own.
    fn backend() -> SocketAddr {
        let gguf =
            datasets::models::file_path(CHAT, "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap_or_else(|e| panic!("{e}"));
        let dir = datasets::models::file_path(EMBED, "model.safetensors").unwrap_or_else(|e| panic!("{e}"));
        let models = Models {
            chat: Some(ChatModel::load(CHAT, gguf).unwrap()),
            embedding: Some(EmbeddingModel::load(EMBED, dir.parent().unwrap()).unwrap()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let config = ServerConfig { addr, context: 512, ..ServerConfig::default() };
                kernels::serve::serve(listener, config, models, std::future::pending()).await.unwrap();
            });
        });
        addr
    }

    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn sovereign_gateway_serves_the_official_openai_client_from_a_real_backend() {
        let backend = backend();
        let dir = crate::tmp::Tmp::new("gateway-e2e");
        let config = format!(
            "listen = \"127.0.0.1:0\"\n\
             [[backends]]\nname = \"local\"\nurl = \"http://{backend}\"\ntier = \"sovereign\"\nmodels = [\"{CHAT}\", \"{EMBED}\"]\n\
             [[keys]]\nname = \"e2e\"\nblake3 = \"{}\"\ntier = \"sovereign\"\n\
             [health]\ninterval_ms = 500\n[cache]\nenabled = true\n",
            hash_key("sk-e2e")
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .args(["gateway", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // It prints its address once listening: `gateway listening on http://127.0.0.1:PORT`.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let _child = Killed(child);
        let url = line.trim().rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{line:?}");

        let python = kernels::cache::venv_python();
        let out = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway/openai_gateway.py"))
            .args([url.as_str(), "sk-e2e", CHAT, EMBED])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(out.status.success(), "openai_gateway.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!v["chat"].as_str().unwrap().is_empty());
        assert_eq!(v["stream_text"], v["chat"], "streamed through the gateway = not streamed");
        assert_eq!(v["stream_usage"][0], v["chat_usage"]);
        assert_eq!(v["cached"], v["chat"]);
        assert_eq!(v["cache_header"], "exact");
        assert_eq!(v["completion_ok"], true);
        assert_eq!(v["embedding_dim"], 384);
        assert_eq!(v["models"], serde_json::json!([EMBED, CHAT]));
        assert_eq!(v["bad_key"], 401);
        assert_eq!(v["missing_model"], 404);
        let metrics = reqwest_blocking_get(&format!("{url}/metrics"));
        assert!(metrics.contains("sovereign_gateway_cache_total{result=\"exact\"} 1"), "{metrics}");
        assert!(metrics.contains(
            "sovereign_gateway_tokens_total{key=\"e2e\",model=\"smollm2-135m-instruct\",kind=\"completion\"}"
        ));
    }

    fn reqwest_blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_is_called_in_the_callers_trace_with_a_span_of_its_own() {
    use kernels::observe::trace::TraceContext;
    let b = FaultBackend::start("b", &["m"], |_| Fault::None).await;
    let config =
        format!("{}{}{QUICK}", backend_toml("b", &b.url(), "sovereign", &["m"], 0), key_toml("t", "sovereign", ""));
    let (url, _gw) = start(&config, Clock::manual(1_000_000), None).await;
    let client = reqwest::Client::new();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let caller = TraceContext::parse(incoming).unwrap();
    for sent in [Some(incoming), None] {
        let mut req = client.post(format!("{url}/v1/chat/completions")).bearer_auth("sk-t").json(&chat("m", "hi"));
        if let Some(tp) = sent {
            req = req.header("traceparent", tp);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let gateway = TraceContext::parse(r.headers()["traceparent"].to_str().unwrap()).unwrap();
        let reached = b.traceparents();
        let backend =
            TraceContext::parse(reached.last().unwrap().as_deref().expect("no traceparent reached the backend"))
                .unwrap();
        // One trace, three spans: the caller's, the gateway's, the backend's.
        assert_eq!(backend.trace_id, gateway.trace_id);
        assert_ne!(backend.span_id, gateway.span_id);
        if sent.is_some() {
            assert_eq!(gateway.trace_id, caller.trace_id);
            assert_ne!(gateway.span_id, caller.span_id);
            assert_ne!(backend.span_id, caller.span_id);
        } else {
            assert_ne!(gateway.trace_id, caller.trace_id, "no traceparent: a new trace");
        }
    }
    // A model no backend serves is counted under `unknown`, not under the name the client made up.
    let r = client.post(format!("{url}/v1/chat/completions")).bearer_auth("sk-t").json(&chat("made-up-7", "hi"));
    assert_eq!(r.send().await.unwrap().status(), 404);
    // The contract's families are on the gateway's /metrics.
    let page = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("made-up-7"), "a client's model name became a label value:\n{page}");
    let families = kernels::observe::prom::parse(&page).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v)))
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(value("sovereign_build_info", &[("component", "gateway")]), 1.0, "{page}");
    let chat_route = [("route", "/v1/chat/completions"), ("model", "m"), ("code", "200")];
    assert_eq!(value("sovereign_http_requests_total", &chat_route), 2.0, "{page}");
    let chat_model = |model| [("route", "/v1/chat/completions"), ("model", model)];
    assert_eq!(value("sovereign_http_request_duration_seconds_count", &chat_model("m")), 2.0, "{page}");
    assert_eq!(value("sovereign_http_request_duration_seconds_count", &chat_model("unknown")), 1.0, "{page}");
    let unknown = [("route", "/v1/chat/completions"), ("model", "unknown"), ("code", "404")];
    assert_eq!(value("sovereign_http_requests_total", &unknown), 1.0, "{page}");
    assert_eq!(value("sovereign_gateway_requests_total", &[("key", "t"), ("status", "200")]), 2.0, "{page}");
    assert_eq!(value("sovereign_http_requests_in_flight", &[]), 1.0, "the /metrics request itself");
}
