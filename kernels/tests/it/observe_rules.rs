//! Tests of `kernels::observe::slo` against the real Prometheus tools (Debian's `prometheus`
//! package: `promtool` and the server): the SLO file's typed errors, the workbook's budget figures,
//! the committed `deploy/prometheus/rules.yml` equal to the generator's output, `promtool check
//! rules` (and a planted broken rule refused), `promtool test rules` on the committed unit tests,
//! Rust's `evaluate` agreeing with Prometheus' rule engine alert by alert on generated series, and a
//! real `prometheus` server scraping a real `kernels::gateway` (in front of fault-injecting backends
//! that answer 500) with the rules loaded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kernels::Error;
use kernels::observe::slo::{
    self, AlertRule, Observation, POLICY, Severity, SloConfig, Window, budget_consumed, burn_rate, error_budget,
    time_to_exhaustion,
};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn default_slos() -> SloConfig {
    SloConfig::load(deploy().join("slo.toml")).expect("deploy/prometheus/slo.toml loads")
}

/// A fresh folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-slo-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a Prometheus tool: (success, stdout + stderr).
fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} does not run ({e}): install Debian's prometheus (apt-get install prometheus)")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

// ---- the SLO file --------------------------------------------------------------------------

const MINIMAL: &str = "service = \"s\"\njob = \"j\"\n[availability]\nobjective = 0.99\n";

/// Parses `text`: `Ok(())` when valid, else the error's key must be `key`.
fn check_config(text: &str, key: Option<&str>) {
    match (SloConfig::from_toml_str(text), key) {
        (Ok(_), None) => {}
        (Err(Error::SloConfig { key: got, reason, .. }), Some(want)) => {
            assert_eq!(got, want, "{text:?}: {reason}")
        }
        (other, want) => panic!("{text:?}: expected key {want:?}, got {other:?}"),
    }
}

#[test]
fn slo_files_parse_and_every_bad_key_is_a_typed_error_naming_it() {
    let c = default_slos();
    assert_eq!((c.service.as_str(), c.job.as_str(), c.period_days), ("sovereign", "sovereign", 30));
    assert_eq!(c.availability.unwrap().objective, 0.999);
    assert_eq!((c.latency.unwrap().objective, c.latency.unwrap().threshold_seconds), (0.99, 0.5));
    assert_eq!((c.tokens.unwrap().daily, c.tokens.unwrap().severity), (2_000_000.0, Severity::Ticket));
    for (text, key) in [
        (MINIMAL.to_owned(), None),
        (format!("{MINIMAL}colour = 3\n"), Some("availability.colour")),
        (format!("colour = 3\n{MINIMAL}"), Some("colour")),
        (format!("{MINIMAL}[latency]\nobjective = 0.99\nthreshold = 0.5\n"), Some("latency.threshold")),
        (format!("{MINIMAL}[latency]\nobjective = 0.99\n"), Some("latency.threshold_seconds")),
        (format!("{MINIMAL}[latency]\nobjective = 0.99\nthreshold_seconds = 0.3\n"), Some("latency.threshold_seconds")),
        (format!("{MINIMAL}[latency]\nobjective = 1.0\nthreshold_seconds = 0.5\n"), Some("latency.objective")),
        (MINIMAL.replace("0.99", "0"), Some("availability.objective")),
        (MINIMAL.replace("0.99", "\"high\""), Some("availability.objective")),
        (MINIMAL.replace("job = \"j\"\n", ""), Some("job")),
        (MINIMAL.replace("\"j\"", "\"a b\""), Some("job")),
        (MINIMAL.replace("\"s\"", "\"\""), Some("service")),
        (format!("period_days = 0\n{MINIMAL}"), Some("period_days")),
        (format!("exclude_routes = [\"\"]\n{MINIMAL}"), Some("exclude_routes[0]")),
        (format!("{MINIMAL}[tokens]\ndaily = -5.0\n"), Some("tokens.daily")),
        (format!("{MINIMAL}[tokens]\ndaily = 5.0\nseverity = \"sms\"\n"), Some("tokens.severity")),
        ("service = \"s\"\njob = \"j\"\n".to_owned(), Some("availability")),
    ] {
        check_config(&text, key);
    }
    match SloConfig::load("/nonexistent/slo.toml") {
        Err(Error::SloConfig { path, .. }) => assert_eq!(path, "/nonexistent/slo.toml"),
        other => panic!("{other:?}"),
    }
}

// ---- budgets and the workbook's policy ------------------------------------------------------

#[test]
fn budgets_and_burn_rates_match_the_workbooks_figures() {
    let month = Window::days(30);
    for (objective, bad, total, burn) in
        [(0.999, 1.0, 1000.0, 1.0), (0.999, 144.0, 10_000.0, 14.4), (0.99, 5.0, 100.0, 5.0), (0.999, 0.0, 0.0, 0.0)]
    {
        assert!((burn_rate(bad, total, objective) - burn).abs() < 1e-9, "{objective} {bad}/{total}");
    }
    assert!((error_budget(0.999) - 0.001).abs() < 1e-15);
    // Table 5-8: 2 %, 5 % and 10 % of a 30-day budget; the 1 d / 2 h ticket of section 6 spends 10 %.
    let consumed: Vec<f64> =
        POLICY.iter().map(|a| (budget_consumed(a.burn_rate, a.long, month) * 1000.0).round() / 10.0).collect();
    assert_eq!(consumed, [2.0, 5.0, 10.0, 10.0]);
    let rows: Vec<(Severity, String, String, f64)> =
        POLICY.iter().map(|a| (a.severity, a.long.to_string(), a.short.to_string(), a.burn_rate)).collect();
    assert_eq!(
        rows,
        [
            (Severity::Page, "1h".into(), "5m".into(), 14.4),
            (Severity::Page, "6h".into(), "30m".into(), 6.0),
            (Severity::Ticket, "1d".into(), "2h".into(), 3.0),
            (Severity::Ticket, "3d".into(), "6h".into(), 1.0),
        ]
    );
    // Every short window is 1/12 of its long one, as the workbook recommends.
    assert!(POLICY.iter().all(|a| a.long.seconds == 12 * a.short.seconds));
    // At 14.4x a 30-day budget lasts 50 hours.
    assert!((time_to_exhaustion(14.4, month) - 50.0 * 3600.0).abs() < 1e-6);
    assert_eq!(time_to_exhaustion(0.0, month), f64::INFINITY);
}

fn obs(availability: &[(Window, f64)], latency: &[(Window, f64)], tokens: Option<f64>) -> Observation {
    Observation {
        availability: availability.iter().copied().collect(),
        latency: latency.iter().copied().collect(),
        tokens_per_second_1h: tokens,
    }
}

/// The (alert, window) pairs whose condition holds.
fn check_evaluate(observed: Observation, want: &[(&str, &str)]) {
    let got: Vec<(String, String)> = slo::evaluate(&default_slos(), &observed)
        .iter()
        .map(|f| (f.rule.alert.to_owned(), f.rule.label("window").unwrap_or("").to_owned()))
        .collect();
    let want: Vec<(String, String)> = want.iter().map(|(a, w)| (a.to_string(), w.to_string())).collect();
    assert_eq!(got, want, "{observed:?}");
}

#[test]
fn evaluate_needs_both_windows_of_a_pair_over_the_threshold() {
    let (m5, m30, h1, h2, h6, d1, d3) = (
        Window::minutes(5),
        Window::minutes(30),
        Window::hours(1),
        Window::hours(2),
        Window::hours(6),
        Window::days(1),
        Window::days(3),
    );
    let all = |r: f64| [m5, m30, h1, h2, h6, d1, d3].map(|w| (w, r));
    let avail = "AvailabilityBudgetBurn";
    check_evaluate(obs(&[], &[], None), &[]);
    check_evaluate(obs(&all(0.0), &all(0.0), Some(0.0)), &[]);
    // 10 % errors everywhere: all four pairs.
    check_evaluate(
        obs(&all(0.1), &[], None),
        &[(avail, "1h/5m"), (avail, "6h/30m"), (avail, "1d/2h"), (avail, "3d/6h")],
    );
    // Exactly 14.4 x the budget is not over it (PromQL's `>`), a hair more is.
    let t = 14.4 * (1.0 - 0.999);
    check_evaluate(obs(&[(h1, t), (m5, t)], &[], None), &[]);
    check_evaluate(obs(&[(h1, t * 1.000001), (m5, t * 1.000001)], &[], None), &[(avail, "1h/5m")]);
    // The long window alone (the incident is over) does not page.
    check_evaluate(obs(&[(h1, 0.5), (m5, 0.0)], &[], None), &[]);
    // The short window alone (a blip) does not page; a missing window holds nothing.
    check_evaluate(obs(&[(h1, 0.001), (m5, 0.5)], &[], None), &[]);
    check_evaluate(obs(&[(m5, 0.5)], &[], None), &[]);
    // 0.2 % errors: only the 3-day ticket (2x).
    check_evaluate(obs(&all(0.002), &[], None), &[(avail, "3d/6h")]);
    // Latency against its own budget (1 %): 20 % slow is over 14.4 x.
    check_evaluate(
        obs(&[], &all(0.2), None),
        &[
            ("LatencyBudgetBurn", "1h/5m"),
            ("LatencyBudgetBurn", "6h/30m"),
            ("LatencyBudgetBurn", "1d/2h"),
            ("LatencyBudgetBurn", "3d/6h"),
        ],
    );
    // Tokens: 2 M a day is 23.148/s.
    check_evaluate(obs(&[], &[], Some(23.0)), &[]);
    check_evaluate(obs(&[], &[], Some(23.2)), &[("TokenBudgetBurn", "")]);
}

// ---- the committed rules and promtool -------------------------------------------------------

#[test]
fn the_committed_rules_are_the_generators_output() {
    let committed = std::fs::read_to_string(deploy().join("rules.yml")).unwrap_or_default();
    let generated = slo::rules_yaml(&default_slos());
    assert!(
        committed == generated,
        "deploy/prometheus/rules.yml is not what deploy/prometheus/slo.toml generates; regenerate it:\n  \
         cargo run -p kernels --features cli --bin sovereign -- observe rules --slo deploy/prometheus/slo.toml > deploy/prometheus/rules.yml"
    );
}

#[test]
fn promtool_checks_the_generated_rules_and_refuses_a_broken_one() {
    let dir = TempDir::new("check");
    let good = slo::rules_yaml(&default_slos());
    // Records and alerts of the default SLOs: 7 windows x 2 SLIs + the token rate; 4 x 2 + 1 alerts.
    assert_eq!(good.matches("- record: ").count(), 15);
    assert_eq!(good.matches("- alert: ").count(), 9);
    for (name, text, ok, says) in [
        ("good.yml", good.clone(), true, "SUCCESS: 24 rules found"),
        (
            "paren.yml",
            good.replacen("> (14.4 * (1 - 0.999))", "> (14.4 * (1 - 0.999)", 1),
            false,
            "unclosed left parenthesis",
        ),
        ("for.yml", good.replacen("for: 2m", "for: 2 minutes", 1), false, "not a valid duration"),
        ("record.yml", good.replacen("- record: sli:", "- record: 1sli:", 1), false, "invalid recording rule name"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &text).unwrap();
        let (passed, out) = tool("promtool", &["check", "rules", path.to_str().unwrap()]);
        assert_eq!(passed, ok, "{name}: {out}");
        assert!(out.contains(says), "{name}: {out:?} does not say {says:?}");
    }
}

#[test]
fn promtool_passes_the_committed_rule_unit_tests() {
    let (passed, out) = tool("promtool", &["test", "rules", deploy().join("tests/rules_test.yml").to_str().unwrap()]);
    assert!(passed, "promtool test rules deploy/prometheus/tests/rules_test.yml:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

// ---- Rust's evaluate against Prometheus' rule engine ------------------------------------------

/// Per-minute increments of every counter of one scenario (index 0 is minute 1).
#[derive(Default)]
struct Scenario {
    name: &'static str,
    ok: Vec<f64>,
    errors: Vec<f64>,
    fast: Vec<f64>,
    slow: Vec<f64>,
    tokens: Vec<f64>,
}

/// `value` per minute over minutes `from..to` (1-based, `to` excluded), 0 elsewhere, `n` minutes.
fn steps(n: usize, parts: &[(usize, usize, f64)]) -> Vec<f64> {
    let mut v = vec![0.0; n];
    for &(from, to, value) in parts {
        for x in &mut v[from - 1..(to - 1).min(n)] {
            *x = value;
        }
    }
    v
}

/// Cumulative counter values at minutes 0..=n.
fn cumulative(inc: &[f64]) -> Vec<f64> {
    let mut c = vec![0.0];
    for x in inc {
        c.push(c.last().unwrap() + x);
    }
    c
}

/// bad/total over `(t - w, t]` at minute `t` as `rate()` sees samples every minute from 0 (both
/// counters start at 0 at minute 0: no extrapolation); `None` with no traffic (NaN in PromQL).
fn window_ratio(bad: &[f64], total: &[f64], t: usize, w: Window) -> Option<f64> {
    if t == 0 {
        return None;
    }
    let from = t.saturating_sub((w.seconds / 60) as usize);
    let (b, n) = (bad[t] - bad[from], total[t] - total[from]);
    (n > 0.0).then(|| b / n)
}

/// Which alerts fire at each minute 0..=n, with their `for` held as Prometheus holds it.
fn rust_firing(config: &SloConfig, s: &Scenario) -> Vec<Vec<AlertRule>> {
    let (bad, fast, slow, tokens) =
        (cumulative(&s.errors), cumulative(&s.fast), cumulative(&s.slow), cumulative(&s.tokens));
    let ok = cumulative(&s.ok);
    let total: Vec<f64> = ok.iter().zip(&bad).map(|(a, b)| a + b).collect();
    let timed: Vec<f64> = fast.iter().zip(&slow).map(|(a, b)| a + b).collect();
    let n = s.ok.len();
    let mut active: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for t in 0..=n {
        let mut observed = Observation::default();
        for w in slo::windows() {
            if let Some(r) = window_ratio(&bad, &total, t, w) {
                observed.availability.insert(w, r);
            }
            if let Some(r) = window_ratio(&slow, &timed, t, w) {
                observed.latency.insert(w, r);
            }
        }
        observed.tokens_per_second_1h = (t > 0).then(|| (tokens[t] - tokens[t.saturating_sub(60)]) / 3600.0);
        let holding = slo::evaluate(config, &observed);
        let keys: Vec<String> = holding.iter().map(|f| format!("{}{:?}", f.rule.alert, f.rule.labels)).collect();
        active.retain(|k, _| keys.contains(k));
        let mut firing = Vec::new();
        for (f, k) in holding.into_iter().zip(keys) {
            let since = *active.entry(k).or_insert(t);
            if ((t - since) as u64) * 60 >= f.rule.hold.seconds {
                firing.push(f.rule);
            }
        }
        out.push(firing);
    }
    out
}

fn series_line(out: &mut String, labels: &str, inc: &[f64]) {
    let values: Vec<String> = cumulative(inc).iter().map(|v| format!("{v}")).collect();
    let _ = writeln!(out, "      - series: '{labels}'\n        values: '{}'", values.join(" "));
}

/// A promtool unit-test file whose expectations are Rust's decisions, every `every` minutes.
fn promtool_tests(config: &SloConfig, rules: &Path, scenarios: &[Scenario], every: usize) -> (String, usize, usize) {
    let (mut fired, mut silent) = (0, 0);
    let mut out = format!("rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n", rules.display());
    let job = &config.job;
    let http = format!("sovereign_http_requests_total{{job=\"{job}\",route=\"/v1/chat/completions\",model=\"m\"");
    let hist = format!(
        "sovereign_http_request_duration_seconds_bucket{{job=\"{job}\",route=\"/v1/chat/completions\",model=\"m\""
    );
    for s in scenarios {
        let _ = writeln!(out, "  # {}\n  - interval: 1m\n    input_series:", s.name);
        series_line(&mut out, &format!("{http},code=\"200\"}}"), &s.ok);
        series_line(&mut out, &format!("{http},code=\"503\"}}"), &s.errors);
        series_line(&mut out, &format!("{hist},le=\"0.5\"}}"), &s.fast);
        let timed: Vec<f64> = s.fast.iter().zip(&s.slow).map(|(a, b)| a + b).collect();
        series_line(&mut out, &format!("{hist},le=\"+Inf\"}}"), &timed);
        series_line(
            &mut out,
            &format!("sovereign_tokens_total{{job=\"{job}\",model=\"m\",kind=\"prompt\"}}"),
            &s.tokens,
        );
        let _ = writeln!(out, "    alert_rule_test:");
        let firing = rust_firing(config, s);
        for t in (0..firing.len()).step_by(every) {
            for name in ["AvailabilityBudgetBurn", "LatencyBudgetBurn", "TokenBudgetBurn"] {
                let _ = writeln!(out, "      - eval_time: {t}m\n        alertname: {name}\n        exp_alerts:");
                let mine: Vec<&AlertRule> = firing[t].iter().filter(|r| r.alert == name).collect();
                if mine.is_empty() {
                    silent += 1;
                    out.truncate(out.len() - 1);
                    out.push_str(" []\n");
                }
                for rule in mine {
                    fired += 1;
                    let _ = writeln!(out, "          - exp_labels:\n              job: \"{job}\"");
                    for (k, v) in &rule.labels {
                        let _ = writeln!(out, "              {k}: \"{v}\"");
                    }
                    let _ = writeln!(out, "            exp_annotations:");
                    for (k, v) in &rule.annotations {
                        let _ =
                            writeln!(out, "              {k}: \"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
                    }
                }
            }
        }
    }
    (out, fired, silent)
}

#[test]
fn rust_evaluate_and_prometheus_fire_the_same_alerts_on_the_same_series() {
    let config = default_slos();
    let n = 260;
    let flat = |v: f64| steps(n, &[(1, n + 1, v)]);
    let scenarios = [
        Scenario {
            name: "healthy",
            ok: flat(100.0),
            errors: flat(0.0),
            fast: flat(100.0),
            slow: flat(0.0),
            tokens: flat(1000.0),
        },
        Scenario {
            name: "10% 5xx from the start: every window pair, each after its for",
            ok: flat(90.0),
            errors: flat(10.0),
            fast: flat(100.0),
            slow: flat(0.0),
            tokens: flat(0.0),
        },
        Scenario {
            name: "a 4-minute outage at minute 61: a page that resets with the short window, then the slower pairs",
            ok: steps(n, &[(1, 61, 100.0), (65, n + 1, 100.0)]),
            errors: steps(n, &[(61, 65, 100.0)]),
            fast: flat(100.0),
            slow: flat(0.0),
            tokens: flat(0.0),
        },
        Scenario {
            name: "0.2% 5xx: only the 3-day ticket",
            ok: flat(998.0),
            errors: flat(2.0),
            fast: flat(1000.0),
            slow: flat(0.0),
            tokens: flat(0.0),
        },
        Scenario {
            name: "20% slow for 40 minutes, and tokens over budget for 30",
            ok: flat(100.0),
            errors: flat(0.0),
            fast: steps(n, &[(1, 41, 80.0), (41, n + 1, 100.0)]),
            slow: steps(n, &[(1, 41, 20.0)]),
            tokens: steps(n, &[(1, 31, 3000.0)]),
        },
        Scenario {
            name: "no traffic at all, then errors only",
            ok: flat(0.0),
            errors: steps(n, &[(100, n + 1, 5.0)]),
            fast: steps(n, &[(100, n + 1, 5.0)]),
            slow: flat(0.0),
            tokens: flat(0.0),
        },
    ];
    let dir = TempDir::new("agree");
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, slo::rules_yaml(&config)).unwrap();
    let (tests, fired, silent) = promtool_tests(&config, &rules, &scenarios, 1);
    // Not vacuous: every alert of the policy fires somewhere, and most checks expect silence.
    for rule in slo::alert_rules(&config) {
        let key = format!("{}: \"{}\"", "window", rule.label("window").unwrap_or(""));
        assert!(
            rule.alert == slo::TOKEN_ALERT || tests.contains(&key),
            "{} {:?} never fires in the scenarios",
            rule.alert,
            rule.labels
        );
    }
    assert!(
        tests.contains("alertname: TokenBudgetBurn\n        exp_alerts:\n          -"),
        "the token alert never fires"
    );
    assert!(fired > 500 && silent > 2000, "fired {fired}, silent {silent}");
    let path = dir.join("agree_test.yml");
    std::fs::write(&path, &tests).unwrap();
    let (passed, out) = tool("promtool", &["test", "rules", path.to_str().unwrap()]);
    if !passed {
        let keep = std::env::temp_dir().join("kernels-slo-agree_test.yml");
        let _ = std::fs::copy(&path, &keep);
        panic!(
            "Prometheus disagrees with kernels::observe::slo::evaluate (test file kept at {}):\n{out}",
            keep.display()
        );
    }
}

// ---- a real Prometheus scraping a real gateway ------------------------------------------------

/// A `prometheus` server on a free loopback port, its data in a temp folder; killed on drop.
#[cfg(feature = "gateway")]
struct Prometheus {
    child: std::process::Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

#[cfg(feature = "gateway")]
impl Prometheus {
    /// Starts it with `config` (YAML) written next to `rules`.
    fn start(config: &str, rules: &str) -> Prometheus {
        let dir = TempDir::new("server");
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus does not start ({e}): install Debian's prometheus"));
        Prometheus { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` (JSON), `None` when the server does not answer yet.
    async fn get(&self, client: &reqwest::Client, path: &str, query: &[(&str, &str)]) -> Option<serde_json::Value> {
        let r = client.get(format!("{}{path}", self.url)).query(query).send().await.ok()?;
        r.json().await.ok()
    }

    /// The result vector of an instant query (empty when none or not answering).
    async fn query(&self, client: &reqwest::Client, promql: &str) -> Vec<serde_json::Value> {
        let v = self.get(client, "/api/v1/query", &[("query", promql)]).await;
        v.and_then(|v| v["data"]["result"].as_array().cloned()).unwrap_or_default()
    }
}

#[cfg(feature = "gateway")]
impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first sample's value of a query result.
#[cfg(feature = "gateway")]
fn value(result: &[serde_json::Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[cfg(feature = "gateway")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_gateway_and_evaluates_the_slo_rules() {
    use kernels::gateway::breaker::Clock;
    use kernels::gateway::fault::{Fault, FaultBackend};
    use kernels::gateway::{Gateway, GatewayConfig};
    use std::time::{Duration, Instant};

    // The gateway: model "good" answers, model "bad" is served by a backend answering 500.
    let good = FaultBackend::start("good", &["good"], |_| Fault::None).await;
    let bad = FaultBackend::start("bad", &["bad"], |_| Fault::Status(500)).await;
    let gateway_toml = format!(
        "anonymous_tier = \"standard\"\n[health]\ninterval_ms = 0\n[retry]\nmax_attempts = 1\n\
         [[backends]]\nname = \"good\"\nurl = \"{}\"\ntier = \"standard\"\nmodels = [\"good\"]\n\
         [[backends]]\nname = \"bad\"\nurl = \"{}\"\ntier = \"standard\"\nmodels = [\"bad\"]\n",
        good.url(),
        bad.url()
    );
    let gw = Gateway::new(GatewayConfig::from_toml_str(&gateway_toml).unwrap(), Clock::System, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(kernels::gateway::serve(listener, gw, std::future::pending()));

    // Traffic until the test ends: one good and one bad chat completion every 100 ms.
    let gateway_url = format!("http://{target}");
    let traffic = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut codes = BTreeMap::<u16, usize>::new();
        loop {
            for model in ["good", "bad"] {
                let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
                if let Ok(r) = client.post(format!("{gateway_url}/v1/chat/completions")).json(&body).send().await {
                    *codes.entry(r.status().as_u16()).or_default() += 1;
                }
            }
            if codes.values().sum::<usize>() > 1_000_000 {
                return codes;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let slos = default_slos();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
         scrape_configs:\n  - job_name: {}\n    static_configs:\n      - targets: [\"{target}\"]\n",
        slos.job
    );
    let prom = Prometheus::start(&config, &slo::rules_yaml(&slos));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let job = &slos.job;
    let checks: Vec<(&str, String)> = vec![
        ("the target is up", format!("up{{job=\"{job}\"}} == 1")),
        ("sovereign_build_info is scraped", format!("sovereign_build_info{{job=\"{job}\"}} == 1")),
        ("the request rate is visible", format!("sum(rate(sovereign_http_requests_total{{job=\"{job}\"}}[10s])) > 0")),
        (
            "5xx answers are counted",
            format!("sum(rate(sovereign_http_requests_total{{job=\"{job}\",code=~\"5..\"}}[10s])) > 0"),
        ),
        ("the 5m error ratio is recorded", format!("sli:sovereign_http_errors:ratio_rate5m{{job=\"{job}\"}} > 0")),
        ("the 3d error ratio is recorded", format!("sli:sovereign_http_errors:ratio_rate3d{{job=\"{job}\"}} > 0")),
        (
            "the 1h slow-answer ratio is recorded",
            format!("sli:sovereign_http_slow_requests:ratio_rate1h{{job=\"{job}\"}} >= 0"),
        ),
        (
            "the fast page is pending (condition met, held for 2m)",
            format!(
                "ALERTS{{alertname=\"AvailabilityBudgetBurn\",window=\"1h/5m\",alertstate=\"pending\",job=\"{job}\"}}"
            ),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<&(&str, String)> = checks.iter().collect();
    let mut ratio = None;
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for c in pending {
            if prom.query(&client, &c.1).await.is_empty() {
                still.push(c);
            }
        }
        pending = still;
        ratio = value(&prom.query(&client, &format!("sli:sovereign_http_errors:ratio_rate5m{{job=\"{job}\"}}")).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let targets = prom.get(&client, "/api/v1/targets", &[]).await.unwrap_or_default();
    let rules = prom.get(&client, "/api/v1/rules", &[]).await.unwrap_or_default();
    let metrics = reqwest::get(format!("http://{target}/metrics")).await.unwrap().text().await.unwrap_or_default();
    let failed: Vec<&str> = pending.iter().map(|c| c.0).collect();
    assert!(
        failed.is_empty(),
        "not seen within 30 s: {failed:?}\n--- targets: {targets}\n--- the gateway's /metrics:\n{metrics}\n--- prometheus log:\n{}",
        prom.log()
    );
    // The targets API agrees, and every rule evaluated without error.
    let active = &targets["data"]["activeTargets"];
    assert_eq!(active[0]["health"], "up", "{targets}");
    assert_eq!(active[0]["labels"]["job"], *job, "{targets}");
    let all_rules: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(all_rules.len(), 24, "{rules}");
    for r in &all_rules {
        assert_eq!(r["health"], "ok", "rule {} does not evaluate: {r}", r["name"]);
    }
    // Half the answers are 5xx (bad, and /metrics left out of the SLI): the recorded ratio is about 1/2.
    let ratio = ratio.expect("a recorded ratio");
    assert!((0.3..=0.7).contains(&ratio), "5m error ratio {ratio}");
    // `sovereign observe burn` reads the same recording rules from the same server.
    #[cfg(feature = "cli")]
    {
        let (slo_file, url) = (deploy().join("slo.toml"), prom.url.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_sovereign"))
                .args(["observe", "burn", "--slo"])
                .arg(slo_file)
                .args(["--prometheus", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let row: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c.len() == 4 && c[0] == "availability" && c[1] == "5m")
            .unwrap_or_else(|| panic!("no 5m availability row:\n{text}"));
        let (bad, burn): (f64, f64) = (row[2].parse().unwrap(), row[3].parse().unwrap());
        assert!((0.3..=0.7).contains(&bad), "{text}");
        let budget = error_budget(slos.availability.as_ref().expect("an availability SLO").objective);
        assert!((burn - bad / budget).abs() <= 0.01 * burn, "burn rate is not bad ratio / budget:\n{text}");
        // Half the answers failing burns the budget hundreds of times too fast: the fast page holds.
        assert!(text.lines().any(|l| l.starts_with("PAGE AvailabilityBudgetBurn") && l.contains("1h/5m")), "{text}");
    }
    traffic.abort();
}
