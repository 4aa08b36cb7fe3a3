//! Tests of the gateway's cost and load controls (`kernels::gateway::controls`): the cost budget's
//! spill-over to a cheaper backend, load shedding by key priority, and canary rollouts that are
//! promoted or rolled back on their own. The gateway runs on loopback in front of fault-injecting
//! backends (`gateway::fault`: an acknowledged mock for the faults a real model server cannot be
//! made to produce on demand: a version answering 500s, a slow version; it also records what
//! reached it). Windows and budgets run on a hand-moved clock; the only real waiting is the slow
//! backend's latency and a short concurrent burst, each bounded to about a second.

use std::sync::Arc;
use std::time::Duration;

use kernels::Error;
use kernels::gateway::breaker::Clock;
use kernels::gateway::fault::{Fault, FaultBackend};
use kernels::gateway::{Gateway, GatewayConfig, hash_key};
use kernels::observe::canary::{CanaryState, bucket};
use kernels::observe::shed::Priority;
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../fixtures/gateway/controls.toml");

async fn start(config: &str, clock: Clock) -> (String, Arc<Gateway>) {
    let gw = Gateway::new(GatewayConfig::from_toml_str(config).unwrap(), clock, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(kernels::gateway::serve(listener, gw.clone(), std::future::pending()));
    (url, gw)
}

fn backend(name: &str, url: &str, models: &[&str], priority: u32, extra: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nurl = \"{url}\"\ntier = \"sovereign\"\nmodels = {}\npriority = {priority}\n{extra}\n",
        serde_json::to_string(models).unwrap()
    )
}

fn key(name: &str, extra: &str) -> String {
    format!(
        "[[keys]]\nname = \"{name}\"\nblake3 = \"{}\"\ntier = \"sovereign\"\n{extra}\n",
        hash_key(&format!("sk-{name}"))
    )
}

/// No health checks, one attempt per request (so a client's error is exactly one backend's).
const QUICK: &str = "[health]\ninterval_ms = 0\n[retry]\nmax_attempts = 1\n[breaker]\nfailure_threshold = 1000\n";

async fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(format!("{url}/v1/chat/completions")).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(format!("sk-{k}"));
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn chat(model: &str, content: &str, user: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}], "user": user})
}

fn answer(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
}

fn has_line(page: &str, line: &str) {
    assert!(page.lines().any(|l| l == line), "{line:?} not in /metrics:\n{page}");
}

// ---- configuration ---------------------------------------------------------------------

#[test]
fn the_example_controls_config_parses_with_its_stated_values() {
    let c = GatewayConfig::from_toml_str(EXAMPLE).unwrap();
    assert_eq!(c.backends[0].spill_to.as_deref(), Some("local-small"));
    assert_eq!(c.budget.daily_cost_usd, Some(50.0));
    let shed = c.shed.as_ref().unwrap();
    assert_eq!((shed.capacity, shed.refill_per_s, shed.max_in_flight), (200.0, 50.0, 64));
    assert_eq!(shed.reserves.low, 0.5);
    assert_eq!(c.keys[0].priority, Some(Priority::Critical));
    assert_eq!(c.keys[1].priority, Some(Priority::Low), "numeric priorities: 3 is low");
    let canary = c.canaries[0].controller();
    assert_eq!((canary.percent, canary.window_ms, canary.max_p99_ms), (5.0, 300_000, 800));
    assert_eq!(canary.steps, [5.0, 25.0, 50.0, 100.0]);
}

fn check_config_error(text: &str, names: &str) {
    match GatewayConfig::from_toml_str(text) {
        Err(Error::GatewayConfig(m)) => assert!(m.contains(names), "{m:?} does not name {names:?}"),
        other => panic!("expected a GatewayConfig error naming {names:?}, got {other:?}"),
    }
}

#[test]
fn invalid_controls_are_typed_errors_naming_the_key() {
    let two = |spill: &str| {
        format!(
            "anonymous_tier = \"sovereign\"\n{}{}",
            backend("a", "http://x", &["m"], 0, &format!("cost_per_1k_prompt_tokens = 1.0\n{spill}")),
            backend("b", "http://y", &["m"], 1, "cost_per_1k_prompt_tokens = 0.5"),
        )
    };
    GatewayConfig::from_toml_str(&two("spill_to = \"b\"")).unwrap();
    check_config_error(&two("spill_to = \"nobody\""), "backends[0].spill_to");
    let b_spills_to_dearer_a =
        two("").replace("[[backends]]\nname = \"b\"", "[[backends]]\nspill_to = \"a\"\nname = \"b\"");
    check_config_error(&b_spills_to_dearer_a, "backends[1].spill_to");
    check_config_error(&format!("{}[budget]\ndaily_cost_usd = -1.0\n", two("")), "budget.daily_cost_usd");
    check_config_error(&format!("{}[shed]\ncapacity = 0\nrefill_per_s = 1\n", two("")), "shed.capacity");
    check_config_error(
        &format!("{}[shed]\ncapacity = 5\nrefill_per_s = 1\n[shed.reserves]\nlow = 1.0\n", two("")),
        "shed.reserves.low",
    );
    check_config_error(&format!("{}{}", two(""), key("k", "priority = \"urgent\"")), "urgent");
    let canary =
        |extra: &str| format!("{}[[canaries]]\nmodel = \"m\"\nwindow_ms = 1000\nmax_p99_ms = 100\n{extra}\n", two(""));
    GatewayConfig::from_toml_str(&canary("stable = \"a\"\ncanary = \"b\"\npercent = 10")).unwrap();
    check_config_error(&canary("stable = \"z\"\ncanary = \"b\"\npercent = 10"), "canaries[0].stable");
    check_config_error(&canary("stable = \"a\"\ncanary = \"a\"\npercent = 10"), "canaries[0].canary");
    check_config_error(&canary("stable = \"a\"\ncanary = \"b\"\npercent = 0"), "canaries[0].percent");
    check_config_error(
        &canary("stable = \"a\"\ncanary = \"b\"\npercent = 10\nsteps = [50, 25]"),
        "canaries[0].steps[1]",
    );
}

// ---- the cost budget spills to the cheap backend -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_cost_budget_spills_to_the_cheap_backend_and_refuses_only_without_one() {
    let gold = FaultBackend::start("gold", &["m", "solo"], |_| Fault::None).await;
    let cheap = FaultBackend::start("cheap", &["m"], |_| Fault::None).await;
    // gold: $1 per prompt token; cheap: $0.001. "a b c" is 3 prompt tokens: $3 a request at gold.
    let clock = Clock::manual(1_000);
    let config = format!(
        "{}{}{}{QUICK}",
        backend("gold", &gold.url(), &["m", "solo"], 0, "cost_per_1k_prompt_tokens = 1000.0\nspill_to = \"cheap\""),
        backend("cheap", &cheap.url(), &["m"], 1, "cost_per_1k_prompt_tokens = 1.0"),
        key("k", "daily_cost_usd = 10.0"),
    );
    let (url, gw) = start(&config, clock.clone()).await;
    // $0, 3, 6, 9 spent before requests 1 to 4: all at gold; the 4th crosses the budget ($12).
    let mut served = Vec::new();
    for i in 0..7 {
        let (status, headers, v) = post(&url, Some("k"), &chat("m", "a b c", "u")).await;
        assert_eq!(status, 200, "request {i}: {v}");
        let by = headers["x-sovereign-backend"].to_str().unwrap().to_owned();
        assert_eq!(answer(&v), format!("{by} heard: a b c"));
        served.push(by);
    }
    assert_eq!(served, ["gold", "gold", "gold", "gold", "cheap", "cheap", "cheap"]);
    assert_eq!((gold.count("/v1/chat/completions"), cheap.count("/v1/chat/completions")), (4, 3));
    let (tokens, usd) = gw.spent_today("k").unwrap();
    assert_eq!(tokens, 7 * 3 + 4 * 5 + 3 * 5);
    assert!((usd - 12.009).abs() < 1e-9, "{usd}");
    // A model only gold serves: no cheaper backend remains, so the spent key is refused.
    let (status, headers, v) = post(&url, Some("k"), &chat("solo", "a b c", "u")).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{v}");
    assert_eq!(headers["retry-after"], (86_400u64 - 1).to_string().as_str());
    assert_eq!(gold.count("/v1/chat/completions"), 4);
    let page = metrics(&url).await;
    has_line(&page, "sovereign_gateway_spillovers_total{key=\"k\",from=\"gold\",to=\"cheap\"} 3");
    // A new UTC day: back to gold.
    clock.advance(86_400_000);
    let (_, headers, _) = post(&url, Some("k"), &chat("m", "a b c", "u")).await;
    assert_eq!(headers["x-sovereign-backend"], "gold");

    // The gateway's own budget spills every caller the same way ($5: two requests at gold).
    let config = format!(
        "anonymous_tier = \"sovereign\"\n{}{}{QUICK}[budget]\ndaily_cost_usd = 5.0\n",
        backend("gold", &gold.url(), &["m", "solo"], 0, "cost_per_1k_prompt_tokens = 1000.0\nspill_to = \"cheap\""),
        backend("cheap", &cheap.url(), &["m"], 1, "cost_per_1k_prompt_tokens = 1.0"),
    );
    let (url, gw) = start(&config, Clock::manual(0)).await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let (_, headers, _) = post(&url, None, &chat("m", "a b c", "u")).await;
        served.push(headers["x-sovereign-backend"].to_str().unwrap().to_owned());
    }
    assert_eq!(served, ["gold", "gold", "cheap", "cheap"]);
    assert!((gw.controls.spent_today() - 6.006).abs() < 1e-9);
}

// ---- shedding by priority ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_burst_low_priority_is_shed_first_and_critical_keeps_being_served() {
    let b = FaultBackend::start("b", &["m"], |_| Fault::None).await;
    let clock = Clock::manual(0);
    // 10 tokens, 1 per second, on a clock that stands still during the burst.
    let config = format!(
        "{}{}{}{}{QUICK}[shed]\ncapacity = 10\nrefill_per_s = 1\n",
        backend("b", &b.url(), &["m"], 0, ""),
        key("batch", "priority = \"low\""),
        key("web", ""),
        key("oncall", "priority = 0"),
    );
    let (url, gw) = start(&config, clock.clone()).await;
    // Rounds of one request per key. Low keeps 5 tokens, normal 3, critical none.
    let mut table: Vec<[u16; 3]> = Vec::new();
    for round in 0..6 {
        let mut row = [0u16; 3];
        for (j, k) in ["batch", "web", "oncall"].into_iter().enumerate() {
            let (status, headers, v) = post(&url, Some(k), &chat("m", &format!("{k} {round}"), k)).await;
            if status == 503 {
                assert_eq!(v["error"]["code"], "overloaded", "{v}");
                assert_eq!(v["error"]["type"], "server_error");
                assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
            }
            row[j] = status;
        }
        table.push(row);
    }
    assert_eq!(
        table,
        [[200, 200, 200], [200, 200, 200], [503, 200, 200], [503, 503, 200], [503, 503, 200], [503, 503, 503]],
        "rows are rounds; columns low, normal, critical"
    );
    // Low (needs 6, has 0): 6 s until it may pass.
    let (_, headers, _) = post(&url, Some("batch"), &chat("m", "again", "batch")).await;
    assert_eq!(headers["retry-after"], "6");
    assert_eq!(b.count("/v1/chat/completions"), 10, "shed requests never reached the backend");
    let page = metrics(&url).await;
    has_line(&page, "sovereign_requests_shed_total{reason=\"priority\",priority=\"low\"} 5");
    has_line(&page, "sovereign_requests_shed_total{reason=\"priority\",priority=\"normal\"} 3");
    has_line(&page, "sovereign_requests_shed_total{reason=\"priority\",priority=\"critical\"} 1");
    // Ten seconds later the bucket is full and low is served again.
    clock.advance(10_000);
    assert_eq!(post(&url, Some("batch"), &chat("m", "later", "batch")).await.0, 200);
    assert_eq!(gw.controls.shed_counts(Priority::Low), Some((3, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_burst_keeps_in_flight_slots_for_critical_requests() {
    // Each answer takes 600 ms, so a burst's requests are in flight together.
    let b = FaultBackend::start("b", &["m"], |_| Fault::Slow(600)).await;
    let config = format!(
        "{}{}{}{QUICK}[shed]\ncapacity = 1000\nrefill_per_s = 1000\nmax_in_flight = 4\n",
        backend("b", &b.url(), &["m"], 0, ""),
        key("batch", "priority = \"low\""),
        key("oncall", "priority = \"critical\""),
    );
    let (url, _gw) = start(&config, Clock::System).await;
    let burst = |k: &'static str, n: usize| {
        let url = url.clone();
        (0..n)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move { post(&url, Some(k), &chat("m", &format!("{k} {i}"), k)).await.0 })
            })
            .collect::<Vec<_>>()
    };
    // Six low requests at once: low may fill 2 of the 4 slots.
    let lows = burst("batch", 6);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While they are in flight, critical requests still find the 2 slots kept for them.
    let criticals = burst("oncall", 2);
    let mut low = Vec::new();
    for h in lows {
        low.push(h.await.unwrap());
    }
    let mut critical = Vec::new();
    for h in criticals {
        critical.push(h.await.unwrap());
    }
    low.sort_unstable();
    assert_eq!(low, [200, 200, 503, 503, 503, 503]);
    assert_eq!(critical, [200, 200]);
}

// ---- canaries -------------------------------------------------------------------------------

/// The users whose requests go to the canary at `percent`, among `u0..u{n}`.
fn canary_users(n: usize, percent: f64) -> Vec<usize> {
    (0..n).filter(|i| f64::from(bucket(&format!("u{i}"))) < percent * 100.0).collect()
}

fn canary_config(stable: &FaultBackend, canary: &FaultBackend, rules: &str) -> String {
    format!(
        "anonymous_tier = \"sovereign\"\n{}{}{QUICK}[[canaries]]\nmodel = \"m\"\nstable = \"v1\"\ncanary = \"v2\"\n{rules}\n",
        backend("v1", &stable.url(), &["m"], 0, ""),
        backend("v2", &canary.url(), &["m"], 1, ""),
    )
}

/// Sends one request per user `u0..u{n}`; returns the statuses and who answered.
async fn round(url: &str, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (status, headers, _) = post(url, None, &chat("m", "hi", &format!("u{i}"))).await;
        let by = headers.get("x-sovereign-backend").map_or("", |v| v.to_str().unwrap()).to_owned();
        out.push((status, by));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_500s_is_rolled_back_after_one_window_and_its_errors_are_bounded() {
    let v1 = FaultBackend::start("v1", &["m"], |_| Fault::None).await;
    let v2 = FaultBackend::start("v2", &["m"], |_| Fault::Status(500)).await;
    let clock = Clock::manual(0);
    let rules = "percent = 25\nwindow_ms = 60000\nmin_requests = 5\nmax_error_rate = 0.05\nmax_p99_ms = 2000\nsteps = [25, 50, 100]";
    let (url, gw) = start(&canary_config(&v1, &v2, rules), clock.clone()).await;
    has_line(&metrics(&url).await, "sovereign_gateway_canary_percent{model=\"m\"} 25");
    // Window 1: the canary's users (a sticky quarter) get its 500s, everyone else is served.
    let first = round(&url, 40).await;
    let expected = canary_users(40, 25.0);
    assert!(expected.len() >= 5, "enough canary samples for a verdict: {expected:?}");
    let errors: Vec<usize> = (0..40).filter(|&i| first[i].0 == 500).collect();
    assert_eq!(errors, expected, "exactly the canary's share failed");
    assert!(first.iter().all(|(s, by)| *s == 500 || by == "v1"));
    // The window ends: the next request rolls the canary back; from then on everything is on stable.
    clock.advance(60_000);
    let second = round(&url, 40).await;
    assert!(second.iter().all(|(s, by)| *s == 200 && by == "v1"), "{second:?}");
    assert_eq!(v2.count("/v1/chat/completions"), expected.len(), "the canary saw only window 1's share");
    match gw.controls.canary_state("m") {
        Some(CanaryState::RolledBack { reason }) => assert!(reason.contains("error rate 1.000"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let page = metrics(&url).await;
    has_line(&page, "sovereign_gateway_canary_state{model=\"m\"} 2");
    has_line(&page, "sovereign_gateway_canary_percent{model=\"m\"} 0");
    has_line(
        &page,
        &format!(
            "sovereign_gateway_canary_requests_total{{model=\"m\",arm=\"canary\",outcome=\"error\"}} {}",
            expected.len()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_window_is_judged_on_the_gateways_timer_when_traffic_stops() {
    let v1 = FaultBackend::start("v1", &["m"], |_| Fault::None).await;
    let v2 = FaultBackend::start("v2", &["m"], |_| Fault::Status(500)).await;
    let clock = Clock::manual(0);
    let rules = "percent = 25\nwindow_ms = 60000\nmin_requests = 5\nmax_error_rate = 0.05\nmax_p99_ms = 2000";
    let (url, gw) = start(&canary_config(&v1, &v2, rules), clock.clone()).await;
    round(&url, 40).await;
    // No request follows the window's end: the timer (every second for a minute's window) judges it.
    clock.advance(60_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !matches!(gw.controls.canary_state("m"), Some(CanaryState::RolledBack { .. })) {
        assert!(std::time::Instant::now() < deadline, "not judged: {:?}", gw.controls.canary_state("m"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    has_line(&metrics(&url).await, "sovereign_gateway_canary_state{model=\"m\"} 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_breaching_its_p99_is_rolled_back() {
    let v1 = FaultBackend::start("v1", &["m"], |_| Fault::None).await;
    let v2 = FaultBackend::start("v2", &["m"], |_| Fault::Slow(300)).await;
    let clock = Clock::manual(0);
    let rules =
        "percent = 25\nwindow_ms = 60000\nmin_requests = 3\nmax_error_rate = 0.05\nmax_p99_ms = 150\nsteps = [25, 100]";
    let (url, gw) = start(&canary_config(&v1, &v2, rules), clock.clone()).await;
    // Enough users for 3 canary requests (each takes 300 ms: about a second in all).
    let users = canary_users(100, 25.0);
    let n = users[2] + 1;
    let first = round(&url, n).await;
    assert!(first.iter().all(|(s, _)| *s == 200), "slow, not failing: {first:?}");
    assert_eq!(v2.count("/v1/chat/completions"), 3);
    clock.advance(60_000);
    let second = round(&url, n).await;
    assert!(second.iter().all(|(s, by)| *s == 200 && by == "v1"), "{second:?}");
    match gw.controls.canary_state("m") {
        Some(CanaryState::RolledBack { reason }) => assert!(reason.contains("p99 latency"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_step_by_step_to_all_traffic() {
    let v1 = FaultBackend::start("v1", &["m"], |_| Fault::None).await;
    let v2 = FaultBackend::start("v2", &["m"], |_| Fault::None).await;
    let clock = Clock::manual(0);
    let rules = "percent = 25\nwindow_ms = 60000\nmin_requests = 3\nmax_error_rate = 0.05\nmax_p99_ms = 2000\nsteps = [25, 50, 100]";
    let (url, gw) = start(&canary_config(&v1, &v2, rules), clock.clone()).await;
    // Each round's first request judges the window before it (none before the first round).
    let mut percents = Vec::new();
    for _ in 0..3 {
        let answers = round(&url, 30).await;
        assert!(answers.iter().all(|(s, _)| *s == 200));
        percents.push(gw.controls.canary_state("m").unwrap().percent());
        clock.advance(60_000);
    }
    assert_eq!(percents, [25.0, 50.0, 100.0]);
    let last = round(&url, 10).await;
    assert!(last.iter().all(|(s, by)| *s == 200 && by == "v2"), "{last:?}");
    assert!(v1.count("/v1/chat/completions") > 0, "stable served until the promotion");
    assert_eq!(gw.controls.canary_state("m"), Some(CanaryState::Promoted));
    has_line(&metrics(&url).await, "sovereign_gateway_canary_state{model=\"m\"} 1");
}
