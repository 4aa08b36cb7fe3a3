//! Benchmarks of week c3w1: metric-logging throughput of the learner's client against `kernels::tracking`.
//!
//! Both clients log the same metric points into fresh runs on the same real
//! MLflow server (the grader's, through `MLFLOW_TRACKING_URI`), in
//! alternation (lab, kernels, kernels, lab, …) so that server and machine
//! noise hit both alike. What is compared is metric points per second, as a
//! ratio, never an absolute time: the server's SQLite inserts dominate, so a
//! client that chunks `log-batch` well matches `kernels`, and one that sends
//! small requests (or one request per point) pays a round trip and a
//! transaction for each. `graded!` holds the graded task (`c3w1.bench`);
//! `run` is the sweep behind `cargo xtask bench c3w1`, which adds MLflow's own
//! Python client (`MlflowClient.log_batch`) as the outside reference.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use c3w1_tracking as lab;
use kernels::tracking as reference;

/// Metric keys the points are spread over (a training loop logs a few series).
const KEYS: usize = 10;

/// MLflow's Python client on the same workload (shipped with the course's peers).
const PYTHON_PEER: &str = include_str!("../../peers/mlflow_log_batch.py");

fn server_url() -> String {
    reference::shared_server_url().unwrap_or_else(|e| panic!("no MLflow server for the benchmark: {e}"))
}

/// A name no other run of the benchmark uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), reference::now_millis())
}

/// Point `i` of the workload: key, value, step, timestamp.
fn point(i: usize, t0: i64) -> (String, f64, i64, i64) {
    (format!("series{}", i % KEYS), (i as f64 * 0.37).sin(), (i / KEYS) as i64, t0 + i as i64)
}

/// What one measurement did.
struct Measured {
    seconds: f64,
    requests: usize,
    run_id: String,
}

/// The lab's client logs `n` points into a fresh run of `experiment`, `per_call` points per `log_batch` call.
fn measure_lab(url: &str, experiment: &str, n: usize, per_call: usize) -> Measured {
    lab::block_on(async {
        let client = lab::TrackingClient::new(lab::TrackingConfig::new(url)).expect("the lab's client");
        let id = match client.get_experiment_by_name(experiment).await {
            Ok(e) => e.experiment_id,
            Err(_) => client.create_experiment(experiment).await.expect("the lab creates the experiment"),
        };
        let run = client.create_run(&lab::CreateRun::new(&id)).await.expect("the lab creates a run");
        let t0 = lab::now_millis();
        let metrics: Vec<lab::Metric> =
            (0..n).map(|i| point(i, t0)).map(|(k, v, s, t)| lab::Metric::at(k, v, s, t)).collect();
        let start = Instant::now();
        let mut requests = 0;
        for chunk in metrics.chunks(per_call.max(1)) {
            let batch = lab::LogBatch { metrics: chunk.to_vec(), ..lab::LogBatch::default() };
            requests += client.log_batch(&run.info.run_id, &batch).await.expect("the lab's log_batch");
        }
        Measured { seconds: start.elapsed().as_secs_f64(), requests, run_id: run.info.run_id }
    })
}

/// The same with `kernels::tracking`.
fn measure_kernels(url: &str, experiment: &str, n: usize, per_call: usize) -> Measured {
    lab::block_on(async {
        let client = reference::TrackingClient::new(reference::TrackingConfig::new(url)).expect("kernels client");
        let id = client.get_or_create_experiment(experiment).await.expect("kernels creates the experiment");
        let run = client.create_run(&reference::CreateRun::new(&id)).await.expect("kernels creates a run");
        let t0 = reference::now_millis();
        let metrics: Vec<reference::Metric> =
            (0..n).map(|i| point(i, t0)).map(|(k, v, s, t)| reference::Metric::at(k, v, s, t)).collect();
        let start = Instant::now();
        let mut requests = 0;
        for chunk in metrics.chunks(per_call.max(1)) {
            let batch = reference::LogBatch { metrics: chunk.to_vec(), ..reference::LogBatch::default() };
            requests += client.log_batch(&run.info.run_id, &batch).await.expect("kernels log_batch");
        }
        Measured { seconds: start.elapsed().as_secs_f64(), requests, run_id: run.info.run_id }
    })
}

/// Checks with `kernels` that every one of the `n` points of the workload landed in `run_id`.
fn assert_all_landed(url: &str, run_id: &str, n: usize) {
    lab::block_on(async {
        let client = reference::TrackingClient::new(reference::TrackingConfig::new(url)).expect("kernels client");
        for key in 0..KEYS.min(n) {
            let want = (n - key).div_ceil(KEYS);
            let got = client.get_metric_history(run_id, &format!("series{key}"), None, None).await.expect("history");
            assert_eq!(got.items.len(), want, "series{key}: {} of {want} points landed", got.items.len());
        }
    });
}

graded! {
    /// The lab's client logs 10,000 points (10 series) with one `log_batch`
    /// call; its points/s is compared with `kernels` on the same server, best
    /// of three alternating rounds (score: the ratio).
    fn log_batch_throughput_vs_kernels() {
        let url = server_url();
        let experiment = unique("c3w1-bench");
        let n = 10_000;
        let first = measure_lab(&url, &experiment, n, n);
        assert_all_landed(&url, &first.run_id, n);
        assert!(
            first.requests >= 10,
            "10,000 metrics cannot travel in {} request(s): the server takes 1000 per call",
            first.requests
        );
        let (mut lab_best, mut kernels_best) = (first.seconds, f64::INFINITY);
        for round in 0..3 {
            if round % 2 == 0 {
                kernels_best = kernels_best.min(measure_kernels(&url, &experiment, n, n).seconds);
                if round > 0 {
                    lab_best = lab_best.min(measure_lab(&url, &experiment, n, n).seconds);
                }
            } else {
                lab_best = lab_best.min(measure_lab(&url, &experiment, n, n).seconds);
                kernels_best = kernels_best.min(measure_kernels(&url, &experiment, n, n).seconds);
            }
        }
        let (lab_rate, kernels_rate) = (n as f64 / lab_best, n as f64 / kernels_best);
        let ratio = lab_rate / kernels_rate;
        println!(
            "lab: {lab_rate:.0} metrics/s in {} requests; kernels: {kernels_rate:.0} metrics/s; ratio {ratio:.3}",
            first.requests
        );
        crate::report_metric("metrics_per_s_ratio", ratio);
        crate::report_metric("lab_requests", first.requests as f64);
    }
}

/// `cargo xtask bench c3w1`: writes the sweep record to `args[0]` (`--quick` for small sizes).
///
/// For each number of points per `log_batch` call (1 … 10,000) every client
/// logs the same workload into a fresh run; rows are best-of-`rounds`
/// metrics/s. MLflow's Python client runs here too, while the server is up.
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let url = server_url();
    let experiment = unique("c3w1-sweep");
    let scale = if quick { 4 } else { 1 };
    // (points per call, points logged): enough calls per size to time, without minutes at one point per call.
    let sizes: Vec<(usize, usize)> =
        [(1, 200), (10, 1_000), (100, 5_000), (1_000, 10_000), (10_000, 20_000)].map(|(s, n)| (s, n / scale)).into();
    let rounds = 2;
    eprintln!("server {url}; sizes {sizes:?}; best of {rounds} rounds");

    type Measure = Box<dyn Fn(&str, &str, usize, usize) -> Measured>;
    let mut clients: Vec<(&str, Measure)> =
        vec![("kernels", Box::new(measure_kernels)), ("lab", Box::new(measure_lab))];
    with_reference_solution! {
        clients.push(("solution", Box::new(|url: &str, experiment: &str, n: usize, per_call: usize| {
            use reference_solution as sol;
            sol::block_on(async {
                let client = sol::TrackingClient::new(sol::TrackingConfig::new(url)).expect("the solution's client");
                let id = match client.get_experiment_by_name(experiment).await {
                    Ok(e) => e.experiment_id,
                    Err(_) => client.create_experiment(experiment).await.expect("create_experiment"),
                };
                let run = client.create_run(&sol::CreateRun::new(&id)).await.expect("create_run");
                let t0 = sol::now_millis();
                let metrics: Vec<sol::Metric> =
                    (0..n).map(|i| point(i, t0)).map(|(k, v, s, t)| sol::Metric::at(k, v, s, t)).collect();
                let start = Instant::now();
                let mut requests = 0;
                for chunk in metrics.chunks(per_call.max(1)) {
                    let batch = sol::LogBatch { metrics: chunk.to_vec(), ..sol::LogBatch::default() };
                    requests += client.log_batch(&run.info.run_id, &batch).await.expect("log_batch");
                }
                Measured { seconds: start.elapsed().as_secs_f64(), requests, run_id: run.info.run_id }
            })
        })));
    }

    let mut notes = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    let mut rows = Vec::new();
    for &(per_call, n) in &sizes {
        eprintln!("{per_call} point(s) per call, {n} points…");
        let mut best: Vec<Option<(f64, usize)>> = vec![None; clients.len()];
        for round in 0..rounds {
            // Alternate the order between rounds.
            let order: Vec<usize> =
                if round % 2 == 0 { (0..clients.len()).collect() } else { (0..clients.len()).rev().collect() };
            for i in order {
                let (name, measure) = &clients[i];
                if failed.contains(name) {
                    continue;
                }
                match catch_unwind(AssertUnwindSafe(|| measure(&url, &experiment, n, per_call))) {
                    Ok(m) => {
                        let keep = best[i].is_none_or(|(s, _)| m.seconds < s);
                        if keep {
                            best[i] = Some((m.seconds, m.requests));
                        }
                    }
                    Err(_) => {
                        failed.push(name);
                        notes.push(format!("{name}: panicked (see above); not measured further"));
                    }
                }
            }
        }
        for ((name, _), b) in clients.iter().zip(&best) {
            if let Some((seconds, requests)) = b {
                rows.push(serde_json::json!({
                    "impl": name, "metrics per call": per_call, "metrics": n, "requests": requests,
                    "metrics/s": n as f64 / seconds,
                }));
            }
        }
    }

    // MLflow's own Python client on the same workload, while the server is still up.
    let sizes_arg: Vec<String> = sizes.iter().map(|(s, _)| s.to_string()).collect();
    let totals_arg: Vec<String> = sizes.iter().map(|(_, n)| n.to_string()).collect();
    eprintln!("running MLflow's Python client…");
    let peer = std::process::Command::new(reference::default_python())
        .arg("-c")
        .arg(PYTHON_PEER)
        .args(["--sizes", &sizes_arg.join(","), "--totals", &totals_arg.join(","), "--keys", &KEYS.to_string()])
        .args(["--rounds", &rounds.to_string(), "--experiment", &unique("c3w1-sweep-python")])
        .env("MLFLOW_TRACKING_URI", &url)
        .output();
    match peer {
        Ok(o) if o.status.success() => match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
            Ok(serde_json::Value::Array(peer_rows)) => rows.extend(peer_rows),
            _ => notes.push("mlflow-python: printed no rows".into()),
        },
        Ok(o) => notes.push(format!(
            "mlflow-python: failed: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default()
        )),
        Err(e) => notes.push(format!("mlflow-python: could not start {}: {e}", reference::default_python().display())),
    }
    for note in &notes {
        eprintln!("note: {note}");
    }

    let record = serde_json::json!({
        "week": "c3w1",
        "title": "log-batch throughput on a local MLflow server (SQLite store, 1 worker): metrics/s by points per call",
        "x": "metrics per call",
        "y": "metrics/s",
        "reference": "kernels",
        "targets": [1, 100, 10000],
        "columns": ["impl", "metrics per call", "metrics", "requests", "metrics/s"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
