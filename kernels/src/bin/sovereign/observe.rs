//! `sovereign observe`: Prometheus recording and alerting rules from SLOs, and the burn rates a
//! Prometheus server sees now (`kernels::observe::slo`; the policy of *The Site Reliability
//! Workbook* ch. 5; queries over Prometheus' HTTP API, <https://prometheus.io/docs/prometheus/latest/querying/api/>).

use anyhow::{Context, Result};
use clap::Subcommand;
use kernels::observe::slo::{self, Observation, Sli, SloConfig, TOKEN_RATE_RECORD};

/// What `sovereign observe` does.
#[derive(Subcommand)]
pub enum ObserveCommand {
    /// Print the recording and alerting rules of an SLO file (YAML for Prometheus).
    Rules {
        /// The SLO file (TOML).
        #[arg(long)]
        slo: std::path::PathBuf,
    },
    /// Print the burn rate of every SLI and window, and which alert conditions hold, as a
    /// Prometheus server that loaded the rules sees them now.
    Burn {
        /// The SLO file (TOML).
        #[arg(long)]
        slo: std::path::PathBuf,
        /// The Prometheus server, e.g. http://127.0.0.1:9090.
        #[arg(long)]
        prometheus: String,
    },
}

/// Runs `sovereign observe`.
pub fn run(command: ObserveCommand) -> Result<()> {
    match command {
        ObserveCommand::Rules { slo } => {
            let config = SloConfig::load(&slo)?;
            print!("{}", slo::rules_yaml(&config));
            Ok(())
        }
        ObserveCommand::Burn { slo, prometheus } => {
            let config = SloConfig::load(&slo)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let observed = runtime.block_on(observe(&config, prometheus.trim_end_matches('/')))?;
            print!("{}", report(&config, &observed));
            Ok(())
        }
    }
}

/// One instant query's first value, `None` for an empty vector.
async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Result<Option<f64>> {
    let url = format!("{base}/api/v1/query");
    let body: serde_json::Value = client
        .get(&url)
        .query(&[("query", promql)])
        .send()
        .await
        .with_context(|| format!("querying {url}"))?
        .error_for_status()
        .with_context(|| format!("{url}?query={promql}"))?
        .json()
        .await?;
    anyhow::ensure!(body["status"] == "success", "{url}?query={promql}: {body}");
    let value = &body["data"]["result"][0]["value"][1];
    value.as_str().map(|s| s.parse::<f64>()).transpose().with_context(|| format!("{promql}: {value}"))
}

/// Reads every recording rule of `config` for its job.
async fn observe(config: &SloConfig, base: &str) -> Result<Observation> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let selector = format!("{{job=\"{}\"}}", config.job);
    let mut observed = Observation::default();
    for sli in [Sli::Availability, Sli::Latency] {
        if config.objective(sli).is_none() {
            continue;
        }
        for w in slo::windows() {
            if let Some(v) = query(&client, base, &format!("{}{selector}", sli.record(w))).await?
                && v.is_finite()
            {
                match sli {
                    Sli::Availability => observed.availability.insert(w, v),
                    Sli::Latency => observed.latency.insert(w, v),
                };
            }
        }
    }
    if config.tokens.is_some() {
        observed.tokens_per_second_1h = query(&client, base, &format!("{TOKEN_RATE_RECORD}{selector}")).await?;
    }
    Ok(observed)
}

/// The burn-rate table and the alert conditions that hold.
fn report(config: &SloConfig, observed: &Observation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{:<13} {:>6} {:>12} {:>10}", "slo", "window", "bad ratio", "burn rate");
    for sli in [Sli::Availability, Sli::Latency] {
        let Some(objective) = config.objective(sli) else { continue };
        for w in slo::windows() {
            let (ratio, burn) = match observed.ratios(sli).get(&w) {
                Some(&r) => (format!("{r:.6}"), format!("{:.2}", r / slo::error_budget(objective))),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(out, "{:<13} {:>6} {ratio:>12} {burn:>10}", sli.as_str(), w.to_string());
        }
    }
    if let Some(t) = config.tokens {
        match observed.tokens_per_second_1h {
            Some(rate) => {
                let _ = writeln!(
                    out,
                    "tokens: {rate:.3}/s over 1h, {:.0} a day projected, {:.1}% of the budget of {}",
                    rate * 86_400.0,
                    rate * 86_400.0 / t.daily * 100.0,
                    t.daily
                );
            }
            None => {
                let _ = writeln!(out, "tokens: no data");
            }
        }
    }
    let firing = slo::evaluate(config, observed);
    if firing.is_empty() {
        let _ = writeln!(out, "no alert condition holds");
    }
    for f in firing {
        let r = &f.rule;
        let _ = writeln!(
            out,
            "{} {} slo={} window={} (for {}): {}",
            r.label("severity").unwrap_or("").to_uppercase(),
            r.alert,
            r.label("slo").unwrap_or(""),
            r.label("window").unwrap_or("1h"),
            r.hold,
            f.value
        );
    }
    out
}
